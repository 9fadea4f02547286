import { env } from "cloudflare:workers";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { buildApiApp, createApiApp, OPENAPI_PATH } from "../../src/api/app";
import { newId, newSdkKey } from "../../src/api/ids";
import { checkIfMatch, etagFor } from "../../src/api/http/etag";
import { decodeCursor, encodeCursor, pageOf } from "../../src/api/http/pagination";
import { resetRoutesCache } from "../../src/edge/routes";
import { api, apiJson, createProject, createToken, type ApiErrorBody } from "../helpers/api";

afterEach(() => resetRoutesCache());

async function errorOf(response: Response): Promise<ApiErrorBody["error"]> {
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  expect(response.headers.get("cache-control")).toBe("no-store");
  const body = await response.json<ApiErrorBody>();
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "details", "message"]);
  return body.error;
}

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
  components: { securitySchemes: Record<string, { type: string; scheme: string }> };
  security: Array<Record<string, string[]>>;
}

describe("OpenAPI document", () => {
  it("is served without a token as OpenAPI 3.1 with a bearer scheme", async () => {
    const response = await api("GET", "/openapi.json", { token: null });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const doc = await response.json<OpenApiDoc>();
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.info.title).toMatch(/Splitstream/);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
  });

  it("documents every route the Worker serves", async () => {
    const doc = await (await api("GET", "/openapi.json", { token: null })).json<OpenApiDoc>();
    const served = buildApiApp()
      .routes.filter((r) => r.method !== "ALL" && r.path !== OPENAPI_PATH)
      .map((r) => `${r.method.toLowerCase()} ${r.path.replaceAll(/:([^/]+)/g, "{$1}")}`);
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((method) => `${method} ${path}`),
    );
    expect(served.length).toBeGreaterThanOrEqual(16);
    expect(new Set(documented)).toEqual(new Set(served));
    for (const expected of [
      "post /_ss/api/v1/projects",
      "get /_ss/api/v1/projects",
      "get /_ss/api/v1/projects/{projectId}",
      "patch /_ss/api/v1/projects/{projectId}",
      "delete /_ss/api/v1/projects/{projectId}",
      "get /_ss/api/v1/projects/{projectId}/environments",
      "post /_ss/api/v1/projects/{projectId}/environments",
      "get /_ss/api/v1/environments/{environmentId}",
      "patch /_ss/api/v1/environments/{environmentId}",
      "delete /_ss/api/v1/environments/{environmentId}",
      "post /_ss/api/v1/tokens",
      "get /_ss/api/v1/tokens",
      "get /_ss/api/v1/tokens/{tokenId}",
      "delete /_ss/api/v1/tokens/{tokenId}",
      "get /_ss/api/v1/projects/{projectId}/audit-log",
      "get /_ss/api/v1/audit-log",
    ])
      expect(documented).toContain(expected);
    // Every operation documents its error responses with the envelope.
    for (const ops of Object.values(doc.paths))
      for (const op of Object.values(ops)) expect(Object.keys(op.responses)).toContain("401");
  });

  it("has components that resolve", async () => {
    const text = await (await api("GET", "/openapi.json", { token: null })).text();
    const doc = JSON.parse(text) as { components: { schemas: Record<string, unknown> } };
    for (const [, name] of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g))
      expect(doc.components.schemas, name).toHaveProperty(name as string);
  });
});

describe("authentication", () => {
  async function expect401(response: Response, message: RegExp) {
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
    const error = await errorOf(response);
    expect(error.code).toBe("unauthorized");
    expect(error.message).toMatch(message);
  }

  it("401 without a token", async () => {
    await expect401(await api("GET", "/projects", { token: null }), /missing bearer token/);
  });

  it("401 with a malformed Authorization header", async () => {
    for (const authorization of ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "test-admin-token"])
      await expect401(
        await api("GET", "/projects", { token: null, headers: { authorization } }),
        /malformed Authorization header/,
      );
  });

  it("401 with a wrong token, even one close to ADMIN_TOKEN", async () => {
    for (const token of [
      "wrong",
      "test-admin-token2",
      "test-admin-toke",
      "ss_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ])
      await expect401(await api("GET", "/projects", { token }), /invalid token/);
  });

  it("accepts ADMIN_TOKEN with any case of the scheme", async () => {
    const response = await api("GET", "/projects", {
      token: null,
      headers: { authorization: "bearer test-admin-token" },
    });
    expect(response.status).toBe(200);
  });

  it("401 with a revoked token", async () => {
    const token = await createToken("viewer");
    expect((await api("GET", "/projects", { token: token.token })).status).toBe(200);
    expect((await api("DELETE", `/tokens/${token.id}`)).status).toBe(204);
    await expect401(await api("GET", "/projects", { token: token.token }), /revoked/);
  });

  it("401 with an expired token", async () => {
    const token = await createToken("editor", {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    expect((await api("GET", "/projects", { token: token.token })).status).toBe(200);
    await env.DB.prepare("UPDATE tokens SET expires_at = ? WHERE id = ?")
      .bind(new Date(Date.now() - 1000).toISOString(), token.id)
      .run();
    await expect401(await api("GET", "/projects", { token: token.token }), /expired/);
  });

  it("checks the token before anything else (unknown path, bad body)", async () => {
    await expect401(await api("GET", "/no-such-thing", { token: null }), /missing/);
    await expect401(await api("POST", "/projects", { token: null, body: "{not json" }), /missing/);
  });
});

describe("roles", () => {
  it("viewer reads, but writing is 403", async () => {
    const viewer = await createToken("viewer");
    expect((await api("GET", "/projects", { token: viewer.token })).status).toBe(200);
    const response = await api("POST", "/projects", { token: viewer.token, body: { name: "x" } });
    expect(response.status).toBe(403);
    const error = await errorOf(response);
    expect(error.code).toBe("forbidden");
    expect(error.message).toMatch(/admin/);
  });

  it("403 comes before body validation", async () => {
    const viewer = await createToken("viewer");
    const response = await api("POST", "/projects", { token: viewer.token, body: { bogus: 1 } });
    expect(response.status).toBe(403);
  });

  it("editors cannot manage projects, environments or tokens", async () => {
    const editor = await createToken("editor");
    const project = await createProject();
    const attempts: Array<[string, string, unknown]> = [
      ["POST", "/projects", { name: "x" }],
      ["PATCH", `/projects/${project.id}`, { name: "y" }],
      ["DELETE", `/projects/${project.id}`, undefined],
      ["POST", `/projects/${project.id}/environments`, { key: "staging", name: "Staging" }],
      ["POST", "/tokens", { name: "t", role: "viewer" }],
      ["GET", "/tokens", undefined],
      ["GET", "/audit-log", undefined],
    ];
    for (const [method, path, body] of attempts) {
      const response = await api(method, path, { token: editor.token, body });
      expect(response.status, `${method} ${path}`).toBe(403);
    }
    // …but can read them.
    expect((await api("GET", `/projects/${project.id}`, { token: editor.token })).status).toBe(200);
    expect(
      (await api("GET", `/projects/${project.id}/audit-log`, { token: editor.token })).status,
    ).toBe(200);
  });
});

describe("request bodies", () => {
  it("400 invalid_json for malformed JSON", async () => {
    const response = await api("POST", "/projects", { body: '{"name": "x",' });
    expect(response.status).toBe(400);
    const error = await errorOf(response);
    expect(error.code).toBe("invalid_json");
  });

  it("422 with JSON paths for unknown fields", async () => {
    const response = await api("POST", "/projects", { body: { name: "x", bogus: 1, other: true } });
    expect(response.status).toBe(422);
    const error = await errorOf(response);
    expect(error.code).toBe("validation_failed");
    expect(error.details).toEqual([
      { path: "$.body.bogus", message: "unknown field" },
      { path: "$.body.other", message: "unknown field" },
    ]);
    expect(error.message).toMatch(/\$\.body\.bogus/);
  });

  it("422 with JSON paths for missing and mistyped fields", async () => {
    const response = await api("POST", "/tokens", {
      body: { role: "owner", expiresAt: "tomorrow" },
    });
    expect(response.status).toBe(422);
    const paths = ((await errorOf(response)).details as Array<{ path: string }>).map((d) => d.path);
    expect(paths.sort()).toEqual(["$.body.expiresAt", "$.body.name", "$.body.role"]);
  });

  it("422 for a body that is JSON but not an object, and for an empty body", async () => {
    const array = await api("POST", "/projects", { body: "[]" });
    expect(array.status).toBe(422);
    expect((await errorOf(array)).details).toEqual([
      { path: "$.body", message: expect.any(String) },
    ]);
    const empty = await api("POST", "/projects", {
      headers: { "content-type": "application/json" },
    });
    expect([400, 422]).toContain(empty.status);
    await errorOf(empty);
  });

  it("415 for a body that is not JSON", async () => {
    const response = await api("POST", "/projects", {
      body: "name=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(response.status).toBe(415);
    expect((await errorOf(response)).code).toBe("unsupported_media_type");
  });

  it("413 over 1 MB, by Content-Length", async () => {
    const response = await api("POST", "/projects", {
      body: { name: "x", description: "a".repeat(1024 * 1024) },
    });
    expect(response.status).toBe(413);
    const error = await errorOf(response);
    expect(error.code).toBe("payload_too_large");
    expect(error.details).toEqual({ limit: 1048576 });
  });

  it("413 over 1 MB, for a streamed body without Content-Length", async () => {
    const chunk = new TextEncoder().encode("a".repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 20) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const app = createApiApp();
    const response = await app.fetch(
      new Request("http://localhost/_ss/api/v1/anything", {
        method: "POST",
        headers: { authorization: "Bearer test-admin-token", "content-type": "application/json" },
        body: stream,
      }),
      env,
      createExecutionContext(),
    );
    expect(response.status).toBe(413);
  });
});

describe("envelope and headers", () => {
  it("404 envelope for an unknown API path", async () => {
    const response = await api("GET", "/no-such-thing");
    expect(response.status).toBe(404);
    const error = await errorOf(response);
    expect(error.code).toBe("not_found");
    expect(error.message).toMatch(/no-such-thing/);
  });

  it("404 envelope for a missing resource, naming it", async () => {
    const response = await api("GET", "/projects/123456789012");
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toEqual({
      code: "not_found",
      message: "project 123456789012 not found",
      details: { type: "project", id: "123456789012" },
    });
  });

  it("every response is no-store JSON", async () => {
    const project = await createProject();
    for (const path of [
      "/projects",
      `/projects/${project.id}`,
      `/projects/${project.id}/environments`,
    ]) {
      const response = await api("GET", path);
      expect(response.status).toBe(200);
      expect(response.headers.get("cache-control")).toBe("no-store");
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    }
  });

  it("422 for bad pagination parameters, with query paths", async () => {
    for (const [query, path] of [
      ["limit=0", "$.query.limit"],
      ["limit=201", "$.query.limit"],
      ["limit=abc", "$.query.limit"],
      ["cursor=%21%21", "$.query.cursor"],
    ]) {
      const response = await api("GET", `/projects?${query}`);
      expect(response.status, query).toBe(422);
      const details = (await errorOf(response)).details as Array<{ path: string }>;
      expect(details[0]?.path).toBe(path);
    }
  });

  it("is not served on a route with serve_api = false", async () => {
    const routes = JSON.stringify([{ pattern: "localhost/*", sdk_key: "demo", serve_api: false }]);
    const ctx = createExecutionContext();
    const response = await worker.fetch(
      new Request("http://localhost/_ss/api/v1/openapi.json"),
      { ...env, ROUTES: routes },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(404);
    expect((await errorOf(response)).message).toMatch(/^no Splitstream endpoint/);
  });
});

describe("optimistic concurrency", () => {
  it("two clients PATCH with the same If-Match: the first wins, the second gets 409", async () => {
    const project = await createProject("concurrency");
    const readA = await api("GET", `/projects/${project.id}`);
    const readB = await api("GET", `/projects/${project.id}`);
    const etag = readA.headers.get("etag");
    expect(etag).toBe('W/"v1"');
    expect(readB.headers.get("etag")).toBe(etag);

    const first = await api("PATCH", `/projects/${project.id}`, {
      body: { name: "from A" },
      headers: { "if-match": etag! },
    });
    expect(first.status).toBe(200);
    expect(first.headers.get("etag")).toBe('W/"v2"');
    expect(await first.json()).toMatchObject({ name: "from A", version: 2 });

    const second = await api("PATCH", `/projects/${project.id}`, {
      body: { name: "from B" },
      headers: { "if-match": etag! },
    });
    expect(second.status).toBe(409);
    expect(await errorOf(second)).toMatchObject({
      code: "version_conflict",
      details: { current: 2 },
    });

    const after = await apiJson("GET", `/projects/${project.id}`, 200);
    expect(after).toMatchObject({ name: "from A", version: 2 });
    // Only the winning write is in the audit log.
    const log = await apiJson<{ items: Array<{ action: string }> }>(
      "GET",
      `/projects/${project.id}/audit-log?resourceType=project`,
      200,
    );
    expect(log.items.map((e) => e.action)).toEqual(["update", "create"]);
  });

  it("PATCH without If-Match is allowed; If-Match * and strong tags work", async () => {
    const project = await createProject();
    expect(
      (await api("PATCH", `/projects/${project.id}`, { body: { description: "a" } })).status,
    ).toBe(200);
    expect(
      (
        await api("PATCH", `/projects/${project.id}`, {
          body: { description: "b" },
          headers: { "if-match": "*" },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await api("PATCH", `/projects/${project.id}`, {
          body: { description: "c" },
          headers: { "if-match": '"v3"' },
        })
      ).status,
    ).toBe(200);
    expect(
      (
        await api("PATCH", `/projects/${project.id}`, {
          body: { description: "d" },
          headers: { "if-match": '"v3"' },
        })
      ).status,
    ).toBe(409);
  });
});

describe("helpers", () => {
  it("etagFor / checkIfMatch", () => {
    expect(etagFor(7)).toBe('W/"v7"');
    const ctx = (ifMatch?: string) =>
      ({ req: { header: (name: string) => (name === "if-match" ? ifMatch : undefined) } }) as never;
    expect(() => checkIfMatch(ctx(), 3)).not.toThrow();
    expect(() => checkIfMatch(ctx('W/"v3"'), 3)).not.toThrow();
    expect(() => checkIfMatch(ctx('W/"v1", W/"v3"'), 3)).not.toThrow();
    expect(() => checkIfMatch(ctx('W/"v2"'), 3)).toThrow(/current version 3/);
    expect(() => checkIfMatch(ctx("garbage"), 3)).toThrow();
  });

  it("cursors round-trip and pageOf cuts at limit", () => {
    expect(decodeCursor(encodeCursor("204819230581"))).toBe("204819230581");
    expect(decodeCursor("***")).toBeNull();
    const rows = [{ id: "1" }, { id: "2" }, { id: "3" }];
    expect(pageOf(rows, 2)).toEqual({
      items: [{ id: "1" }, { id: "2" }],
      nextCursor: encodeCursor("2"),
    });
    expect(pageOf(rows, 3)).toEqual({ items: rows, nextCursor: null });
  });

  it("ids look like Optimizely's and sdkKeys are url-safe", () => {
    const ids = new Set(Array.from({ length: 500 }, () => newId()));
    expect(ids.size).toBe(500);
    for (const id of ids) expect(id).toMatch(/^[1-9]\d{10,11}$/);
    for (let i = 0; i < 200; i++) expect(newSdkKey()).toMatch(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
  });
});
