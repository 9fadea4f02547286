/**
 * The OpenAPI document is the API's published contract (docs/api.md): it must not change by
 * accident. A refactor that moves code between routes, services and store keeps it byte-for-byte;
 * a change that is meant updates the snapshot with `scripts/openapi-snapshot.sh`.
 */
import { describe, expect, it } from "vitest";
import snapshot from "../fixtures/openapi.json";
import { api } from "../helpers/api";

describe("OpenAPI document", () => {
  it("is the snapshot in test/fixtures/openapi.json (regenerate with scripts/openapi-snapshot.sh)", async () => {
    const served = await (
      await api("GET", "/openapi.json", { token: null })
    ).json<{
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    }>();
    // Paths and schemas first: on a mismatch vitest then names the one that moved.
    expect(Object.keys(served.paths).sort()).toEqual(Object.keys(snapshot.paths).sort());
    expect(Object.keys(served.components.schemas).sort()).toEqual(
      Object.keys(snapshot.components.schemas).sort(),
    );
    expect(served).toEqual(snapshot);
  });
});
