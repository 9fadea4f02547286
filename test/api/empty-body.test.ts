/**
 * Empty request bodies (docs/api.md "Request bodies"): an empty or whitespace-only body is no
 * body, whether or not the client sends `Content-Type: application/json` (many HTTP clients send
 * it on every POST). Body-optional actions take their defaults; a required body answers 422 with
 * the missing fields, as without the header; a non-empty malformed body is still 400
 * `invalid_json`.
 */
import { settleIfAny, settleRebuild } from "../helpers/rebuild";
import { beforeEach, describe, expect, it } from "vitest";
import {
  api,
  apiJson,
  createProject,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const JSON_HEADER = { "content-type": "application/json" };
/** The empty bodies a client may send: nothing at all, and whitespace. */
const EMPTY_BODIES: ReadonlyArray<readonly [string, string]> = [
  ["an empty body", ""],
  ["a whitespace-only body", " \r\n\t "],
];

let project: ProjectWithEnvironments;
let experiment: Json;

/** POST with `Content-Type: application/json` and exactly `body` (possibly empty). */
function postRaw(path: string, body: string, headers: Record<string, string> = JSON_HEADER) {
  return api("POST", path, { body, headers });
}

async function codeOf(response: Response): Promise<string | undefined> {
  const text = await response.text();
  if (text === "") return undefined;
  return (JSON.parse(text) as Partial<ApiErrorBody>).error?.code;
}

beforeEach(async () => {
  project = await createProject();
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
  });
  const purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "checkout_button",
      pageIds: [page.id],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "green", weight: 5000 },
      ],
    },
  });
});

describe.each(EMPTY_BODIES)("%s with Content-Type: application/json", (_name, body) => {
  it("start, pause, resume and archive take their default environment", async () => {
    const steps = [
      ["start", "Running"],
      ["pause", "Paused"],
      ["resume", "Running"],
      ["archive", "Archived"],
    ] as const;
    for (const [action, status] of steps) {
      const response = await postRaw(`/experiments/${experiment.id}/${action}`, body);
      expect(response.status, `${action}: ${await response.clone().text()}`).toBe(200);
      const result = (await response.json()) as Json;
      expect(result.environment).toBe("production");
      expect(result.status).toBe(status);
    }
  });

  it("publish publishes", async () => {
    const production = project.environments.find((e) => e.key === "production")!;
    const response = await postRaw(`/environments/${production.id}/publish`, body);
    expect(response.status, await response.clone().text()).toBe(200);
    const result = (await response.json()) as Json;
    expect(typeof result.revision).toBe("number");
    expect(typeof result.changed).toBe("boolean");
  });

  it("rebuild compares without applying", async () => {
    await settleIfAny();
    const response = await postRaw("/admin/rebuild", body);
    expect(response.status, await response.clone().text()).toBe(202);
    expect(((await response.json()) as Json).apply).toBe(false);
    expect((await settleRebuild()).status).toBe("compared");
  });

  it("serve-winner without a declared winner is the usual 409, not a body error", async () => {
    const response = await postRaw(`/experiments/${experiment.id}/serve-winner`, body);
    expect(response.status).toBe(409);
  });

  it("every body-optional operation of the OpenAPI document gets past the body", async () => {
    const doc = (await (await api("GET", "/openapi.json", { token: null })).json()) as Json;
    const optional: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths as Record<string, Json>))
      for (const [method, operation] of Object.entries(operations as Record<string, Json>))
        if (operation.requestBody && operation.requestBody.required !== true)
          optional.push(`${method.toUpperCase()} ${path}`);
    // The four experiment actions, serve-winner, publish and rebuild at least.
    expect(optional.length).toBeGreaterThanOrEqual(7);
    for (const operation of optional) {
      const [method, path] = operation.split(" ") as [string, string];
      // Ids of nothing: the route is reached, the body is read, and the answer is about the id.
      const url = path.replace(/^\/_ss\/api\/v1/, "").replace(/\{[^}]+\}/g, "999999999999");
      const response = await api(method, url, { body, headers: JSON_HEADER });
      const code = await codeOf(response);
      expect(code, operation).not.toBe("invalid_json");
      expect(response.status, operation).not.toBe(400);
      expect(response.status, operation).not.toBe(415);
    }
  });

  it("a required body is still required: 422 with the missing fields, as without the header", async () => {
    const withHeader = await postRaw("/projects", body);
    const without = await postRaw("/projects", body, {});
    expect(withHeader.status).toBe(422);
    expect(without.status).toBe(422);
    const a = (await withHeader.json()) as ApiErrorBody;
    const b = (await without.json()) as ApiErrorBody;
    expect(a.error.code).toBe("validation_failed");
    expect(a.error.details).toEqual(b.error.details);
    expect(a.error.details).toContainEqual(expect.objectContaining({ path: "$.body.name" }));
  });
});

describe("empty bodies without a Content-Type, and malformed bodies", () => {
  it("no body at all but Content-Type: application/json (curl -X POST -H …, fetch without body)", async () => {
    await settleIfAny();
    for (const [path, status] of [
      [`/experiments/${experiment.id}/start`, 200],
      [`/environments/${project.environments[0]!.id}/publish`, 200],
      ["/admin/rebuild", 202],
    ] as const) {
      // api() sends no body when none is given: the request's body is null, not "".
      const response = await api("POST", path, { headers: JSON_HEADER });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(status);
    }
    await settleRebuild();
  });

  it("no body and no header: the action takes its defaults", async () => {
    const response = await api("POST", `/experiments/${experiment.id}/start`);
    expect(response.status).toBe(200);
  });

  it("an empty body with a form Content-Type (curl -d '') is no body either", async () => {
    const response = await postRaw(`/experiments/${experiment.id}/start`, "", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(response.status, await response.clone().text()).toBe(200);
  });

  it("a non-empty malformed body is still 400 invalid_json, on optional and required bodies", async () => {
    for (const path of [`/experiments/${experiment.id}/start`, "/projects"]) {
      for (const body of ["{", "{}x", "null,", " ] "]) {
        const response = await postRaw(path, body);
        expect(response.status, `${path} ${body}`).toBe(400);
        expect(await codeOf(response)).toBe("invalid_json");
      }
    }
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.status.production).toBe("Not started");
  });

  it("a non-empty body that is not JSON is still 415", async () => {
    const response = await postRaw(`/experiments/${experiment.id}/start`, "environment=x", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(response.status).toBe(415);
    expect(await codeOf(response)).toBe("unsupported_media_type");
  });

  it("a body-optional action with a body still validates it", async () => {
    const response = await api("POST", `/experiments/${experiment.id}/start`, {
      body: { environment: "staging", bogus: 1 },
    });
    expect(response.status).toBe(422);
  });
});
