import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, apiJson, createProject, type ApiErrorBody } from "../helpers/api";

interface TokenJson {
  id: string;
  name: string;
  role: string;
  prefix: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

async function listAllTokens(token?: string): Promise<TokenJson[]> {
  const all: TokenJson[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<TokenJson> = await apiJson(
      "GET",
      `/tokens?limit=200${cursor ? `&cursor=${cursor}` : ""}`,
      200,
      {
        token,
      },
    );
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return all;
}

describe("tokens", () => {
  it("POST returns the secret once; lists and GET never show it", async () => {
    const response = await api("POST", "/tokens", { body: { name: "CI deploy", role: "editor" } });
    expect(response.status).toBe(201);
    const created = await response.json<TokenJson & { token: string }>();
    expect(created).toMatchObject({
      id: expect.stringMatching(/^[1-9]\d{10,11}$/),
      name: "CI deploy",
      role: "editor",
      createdBy: "admin-token",
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
    });
    expect(created.token).toMatch(/^ss_[A-Za-z0-9_-]{32}$/);
    expect(created.prefix).toBe(created.token.slice(0, 8));
    expect(response.headers.get("location")).toBe(`/_ss/api/v1/tokens/${created.id}`);

    const listed = (await listAllTokens()).find((t) => t.id === created.id);
    const { token: secret, ...withoutSecret } = created;
    expect(listed).toEqual(withoutSecret);
    const one = await apiJson<TokenJson>("GET", `/tokens/${created.id}`, 200);
    expect(one).toEqual(withoutSecret);
    for (const text of [JSON.stringify(await listAllTokens()), JSON.stringify(one)])
      expect(text).not.toContain(secret);

    // Only a SHA-256 of the secret is stored.
    const row = await env.DB.prepare("SELECT * FROM tokens WHERE id = ?")
      .bind(created.id)
      .first<Record<string, unknown>>();
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("each role can do what it should, and no more", async () => {
    const project = await createProject();
    const tokens: Record<string, string> = {};
    for (const role of ["viewer", "editor", "admin"])
      tokens[role] = (
        await apiJson<{ token: string }>("POST", "/tokens", 201, { body: { name: role, role } })
      ).token;

    for (const role of ["viewer", "editor", "admin"])
      expect(
        (await api("GET", `/projects/${project.id}`, { token: tokens[role] })).status,
        role,
      ).toBe(200);
    expect(
      (await api("PATCH", `/projects/${project.id}`, { token: tokens.editor, body: { name: "e" } }))
        .status,
    ).toBe(403);
    expect(
      (await api("PATCH", `/projects/${project.id}`, { token: tokens.admin, body: { name: "a" } }))
        .status,
    ).toBe(200);
    expect((await api("GET", "/tokens", { token: tokens.viewer })).status).toBe(403);
    expect((await api("GET", "/tokens", { token: tokens.admin })).status).toBe(200);

    // A token-created admin can create tokens; createdBy names it.
    const admin = (await listAllTokens()).find(
      (t) => t.name === "admin" && t.createdBy === "admin-token",
    )!;
    const child = await apiJson<TokenJson>("POST", "/tokens", 201, {
      token: tokens.admin,
      body: { name: "child", role: "viewer" },
    });
    expect(child.createdBy).toBeTypeOf("string");
    expect(child.createdBy).not.toBe("admin-token");
    expect(admin).toBeDefined();
  });

  it("DELETE revokes at once: 401 afterwards; revoking again is a no-op", async () => {
    const created = await apiJson<TokenJson & { token: string }>("POST", "/tokens", 201, {
      body: { name: "short-lived", role: "admin" },
    });
    expect((await api("GET", "/projects", { token: created.token })).status).toBe(200);
    expect((await api("DELETE", `/tokens/${created.id}`)).status).toBe(204);

    const after = await api("GET", "/projects", { token: created.token });
    expect(after.status).toBe(401);
    expect(after.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await after.json<ApiErrorBody>()).error.message).toMatch(/revoked/);

    const revoked = await apiJson<TokenJson>("GET", `/tokens/${created.id}`, 200);
    expect(revoked.revokedAt).not.toBeNull();
    expect((await api("DELETE", `/tokens/${created.id}`)).status).toBe(204);
    expect((await apiJson<TokenJson>("GET", `/tokens/${created.id}`, 200)).revokedAt).toBe(
      revoked.revokedAt,
    );
    expect((await api("DELETE", "/tokens/999999999999")).status).toBe(404);

    const log = await apiJson<Page<{ action: string }>>(
      "GET",
      `/audit-log?resourceType=token&resourceId=${created.id}`,
      200,
    );
    expect(log.items.map((e) => e.action)).toEqual(["revoke", "create"]);
  });

  it("a token can revoke itself", async () => {
    const created = await apiJson<TokenJson & { token: string }>("POST", "/tokens", 201, {
      body: { name: "self", role: "admin" },
    });
    expect((await api("DELETE", `/tokens/${created.id}`, { token: created.token })).status).toBe(
      204,
    );
    expect((await api("GET", "/tokens", { token: created.token })).status).toBe(401);
  });

  it("expiresAt must be a future date-time; the token stops working after it", async () => {
    const past = await api("POST", "/tokens", {
      body: { name: "old", role: "viewer", expiresAt: "2020-01-01T00:00:00Z" },
    });
    expect(past.status).toBe(422);
    expect((await past.json<ApiErrorBody>()).error.details).toEqual([
      { path: "$.body.expiresAt", message: "must be in the future" },
    ]);

    const soon = new Date(Date.now() + 1500);
    const created = await apiJson<TokenJson & { token: string }>("POST", "/tokens", 201, {
      body: { name: "soon", role: "viewer", expiresAt: soon.toISOString() },
    });
    expect(created.expiresAt).toBe(soon.toISOString());
    expect((await api("GET", "/projects", { token: created.token })).status).toBe(200);
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, soon.getTime() - Date.now() + 50)),
    );
    const expired = await api("GET", "/projects", { token: created.token });
    expect(expired.status).toBe(401);
    expect((await expired.json<ApiErrorBody>()).error.message).toMatch(/expired/);
  });

  it("records lastUsedAt, at most once a minute", async () => {
    const created = await apiJson<TokenJson & { token: string }>("POST", "/tokens", 201, {
      body: { name: "used", role: "viewer" },
    });
    expect((await api("GET", "/projects", { token: created.token })).status).toBe(200);
    // The write happens after the response (waitUntil); poll briefly.
    let first: string | null = null;
    for (let i = 0; i < 50 && first === null; i++) {
      first = (await apiJson<TokenJson>("GET", `/tokens/${created.id}`, 200)).lastUsedAt;
      if (first === null) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(first).not.toBeNull();
    for (let i = 0; i < 3; i++)
      expect((await api("GET", "/projects", { token: created.token })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await apiJson<TokenJson>("GET", `/tokens/${created.id}`, 200)).lastUsedAt).toBe(first);
  });

  it("validates names and roles", async () => {
    const response = await api("POST", "/tokens", {
      body: { name: "", role: "root", secret: "mine" },
    });
    expect(response.status).toBe(422);
    const paths = (
      (await response.json<ApiErrorBody>()).error.details as Array<{ path: string }>
    ).map((d) => d.path);
    expect(paths.sort()).toEqual(["$.body.name", "$.body.role", "$.body.secret"]);
  });
});
