/**
 * Attacks on the management API's authentication (docs/security.md "Authentication and roles",
 * "Brute force"): missing, malformed, wrong, expired, revoked and under-privileged tokens, and the
 * brute-force limit (src/api/services/auth-limit.ts) through the API and through the admin sign-in form.
 *
 * D1 is shared by the tests of this file: every test uses its own client addresses
 * (`cf-connecting-ip`), and `auth_failures` is emptied before each test.
 */
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { sha256Hex } from "../../src/shared/hash";
import {
  AUTH_FAILURE_LIMIT,
  AUTH_FAILURE_WINDOW_MS,
  authClientKey,
  ipv6Prefix,
  isLimited,
  recentAuthFailures,
  recordAuthFailure,
  retryAfterSeconds,
  UNKNOWN_CLIENT,
} from "../../src/api/services/auth-limit";
import {
  ADMIN_TOKEN,
  API_BASE,
  API_ORIGIN,
  adminSession,
  createProject,
  createToken,
  type ApiErrorBody,
} from "../helpers/api";

/** One API request from the client at `ip` (undefined: no cf-connecting-ip). */
async function call(
  method: string,
  path: string,
  options: { ip?: string; authorization?: string | null; body?: unknown } = {},
): Promise<Response> {
  const headers = new Headers();
  if (options.ip !== undefined) headers.set("cf-connecting-ip", options.ip);
  const authorization =
    options.authorization === undefined ? `Bearer ${ADMIN_TOKEN}` : options.authorization;
  if (authorization !== null) headers.set("authorization", authorization);
  let body: string | undefined;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers.set("content-type", "application/json");
  }
  return exports.default.fetch(`${API_BASE}${path}`, { method, headers, body });
}

async function errorOf(response: Response): Promise<ApiErrorBody["error"]> {
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  expect(response.headers.get("cache-control")).toBe("no-store");
  const body = (await response.json()) as ApiErrorBody;
  expect(Object.keys(body)).toEqual(["error"]);
  expect(Object.keys(body.error).sort()).toEqual(["code", "details", "message"]);
  return body.error;
}

async function expect401(response: Response, message: RegExp): Promise<void> {
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBe('Bearer realm="splitstream"');
  const error = await errorOf(response);
  expect(error.code).toBe("unauthorized");
  expect(error.message).toMatch(message);
}

async function expect403(response: Response): Promise<void> {
  expect(response.status).toBe(403);
  expect(response.headers.get("www-authenticate")).toBe(
    'Bearer realm="splitstream", error="insufficient_scope"',
  );
  expect((await errorOf(response)).code).toBe("forbidden");
}

async function expect429(response: Response): Promise<number> {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get("retry-after"));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(AUTH_FAILURE_WINDOW_MS / 1000);
  expect(response.headers.get("www-authenticate")).toBeNull();
  const error = await errorOf(response);
  expect(error.code).toBe("rate_limited");
  expect(error.details).toEqual({
    retryAfter,
    limit: AUTH_FAILURE_LIMIT,
    windowSeconds: AUTH_FAILURE_WINDOW_MS / 1000,
  });
  return retryAfter;
}

/** `n` failed authentications (wrong tokens) from `ip`, each answered 401. */
async function fail(ip: string | undefined, n: number): Promise<void> {
  for (let i = 0; i < n; i++)
    await expect401(
      await call("GET", "/projects", { ip, authorization: `Bearer wrong-${i}` }),
      /invalid token/,
    );
}

async function failuresOf(key: string): Promise<number | null> {
  const row = await env.DB.prepare("SELECT failures FROM auth_failures WHERE key = ?")
    .bind(key)
    .first<{ failures: number }>();
  return row?.failures ?? null;
}

beforeEach(async () => {
  await env.DB.prepare("DELETE FROM auth_failures").run();
});

describe("missing and malformed credentials", () => {
  it.each<[string, string | null]>([
    ["no Authorization header", null],
    ["an empty header", ""],
    ["only spaces", "   "],
  ])("%s → 401 missing bearer token", async (_name, authorization) => {
    await expect401(
      await call("GET", "/projects", { ip: "192.0.2.1", authorization }),
      /missing bearer token/,
    );
  });

  it.each<[string, string]>([
    ["the scheme alone", "Bearer"],
    ["the scheme and a space", "Bearer "],
    ["Basic credentials", "Basic dXNlcjpwYXNz"],
    ["Basic with the admin token", `Basic ${ADMIN_TOKEN}`],
    ["another scheme", `Token ${ADMIN_TOKEN}`],
    ["no scheme", ADMIN_TOKEN],
    ["two tokens", `Bearer ${ADMIN_TOKEN} ${ADMIN_TOKEN}`],
    ["two Bearer credentials", `Bearer ${ADMIN_TOKEN}, Bearer ${ADMIN_TOKEN}`],
    ["a Latin-1 token", "Bearer t\u00f6k\u00e9n"],
    ["a token with a no-break space", `Bearer ${ADMIN_TOKEN}\u00a0`],
    ["a token with an inner tab", `Bearer test-admin\ttoken`],
    ["the scheme glued to the token", `Bearer${ADMIN_TOKEN}`],
  ])("%s → 401 malformed", async (_name, authorization) => {
    await expect401(
      await call("GET", "/projects", { ip: "192.0.2.2", authorization }),
      /malformed Authorization header/,
    );
  });

  it("two Authorization headers are one malformed header", async () => {
    const headers = new Headers({ "cf-connecting-ip": "192.0.2.3" });
    headers.append("authorization", `Bearer ${ADMIN_TOKEN}`);
    headers.append("authorization", `Bearer ${ADMIN_TOKEN}`);
    await expect401(
      await exports.default.fetch(`${API_BASE}/projects`, { headers }),
      /malformed Authorization header/,
    );
  });

  it("a 10 000-character token is just an invalid token; nothing is echoed back", async () => {
    const token = "A".repeat(10_000);
    const response = await call("GET", "/projects", {
      ip: "192.0.2.4",
      authorization: `Bearer ${token}`,
    });
    const text = await response.clone().text();
    expect(text).not.toContain("AAAAAAAAAA");
    await expect401(response, /^invalid token$/);
  });
});

describe("wrong, expired and revoked tokens", () => {
  it.each<[string, string]>([
    ["a wrong token", "wrong"],
    ["ADMIN_TOKEN with one character more", `${ADMIN_TOKEN}x`],
    ["ADMIN_TOKEN without its last character", ADMIN_TOKEN.slice(0, -1)],
    ["ADMIN_TOKEN in upper case", ADMIN_TOKEN.toUpperCase()],
  ])("%s → 401 invalid token", async (_name, token) => {
    await expect401(
      await call("GET", "/projects", { ip: "192.0.2.10", authorization: `Bearer ${token}` }),
      /^invalid token$/,
    );
  });

  it("a stored hash does not authenticate (neither ADMIN_TOKEN's nor an API token's); the secret does", async () => {
    await expect401(
      await call("GET", "/projects", {
        ip: "192.0.2.11",
        authorization: `Bearer ${await sha256Hex(ADMIN_TOKEN)}`,
      }),
      /^invalid token$/,
    );
    const created = await createToken("viewer");
    const row = await env.DB.prepare("SELECT token_hash FROM tokens WHERE id = ?")
      .bind(created.id)
      .first<{ token_hash: string }>();
    expect(row?.token_hash).toBe(await sha256Hex(created.token));
    await expect401(
      await call("GET", "/projects", {
        ip: "192.0.2.11",
        authorization: `Bearer ${row!.token_hash}`,
      }),
      /^invalid token$/,
    );
    const ok = await call("GET", "/projects", {
      ip: "192.0.2.11",
      authorization: `Bearer ${created.token}`,
    });
    expect(ok.status).toBe(200);
  });

  it("expired and revoked tokens → 401, also for writes and unknown paths", async () => {
    const expired = await createToken("admin", {
      expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
    });
    await env.DB.prepare("UPDATE tokens SET expires_at = ? WHERE id = ?")
      .bind(new Date(Date.now() - 1).toISOString(), expired.id)
      .run();
    const revoked = await createToken("admin");
    expect((await call("DELETE", `/tokens/${revoked.id}`, { ip: "192.0.2.12" })).status).toBe(204);
    for (const [token, message] of [
      [expired.token, /expired/],
      [revoked.token, /revoked/],
    ] as const) {
      const authorization = `Bearer ${token}`;
      await expect401(await call("GET", "/projects", { ip: "192.0.2.12", authorization }), message);
      await expect401(
        await call("POST", "/tokens", {
          ip: "192.0.2.12",
          authorization,
          body: { name: "escalate", role: "admin" },
        }),
        message,
      );
      await expect401(await call("GET", "/nope", { ip: "192.0.2.12", authorization }), message);
    }
    // Nothing was created by the refused writes.
    const names = await env.DB.prepare("SELECT name FROM tokens WHERE name = 'escalate'").all();
    expect(names.results).toEqual([]);
  });
});

describe("under-privileged tokens", () => {
  it.each<[string, "viewer" | "editor", string, string, (projectId: string) => unknown]>([
    ["viewer creates a project", "viewer", "POST", "/projects", () => ({ name: "x" })],
    ["viewer renames a project", "viewer", "PATCH", "/projects/{p}", () => ({ name: "x" })],
    ["viewer creates an audience", "viewer", "POST", "/projects/{p}/audiences", () => ({})],
    ["viewer reads tokens", "viewer", "GET", "/tokens", () => undefined],
    ["viewer reads the global audit log", "viewer", "GET", "/audit-log", () => undefined],
    ["viewer sends conversions", "viewer", "POST", "/conversions", () => ({})],
    ["editor creates a token", "editor", "POST", "/tokens", () => ({ name: "t", role: "admin" })],
    ["editor lists tokens", "editor", "GET", "/tokens", () => undefined],
    ["editor deletes a project", "editor", "DELETE", "/projects/{p}", () => undefined],
    ["editor adds an environment", "editor", "POST", "/projects/{p}/environments", () => ({})],
  ])("%s → 403 insufficient_scope", async (_name, role, method, path, body) => {
    const project = await createProject();
    const token = await createToken(role);
    const response = await call(method, path.replace("{p}", project.id), {
      ip: "192.0.2.20",
      authorization: `Bearer ${token.token}`,
      body: body(project.id),
    });
    await expect403(response);
  });

  it("an editor cannot mint an admin token, and nothing is written", async () => {
    const editor = await createToken("editor");
    const before = await env.DB.prepare("SELECT count(*) AS n FROM tokens").first<{ n: number }>();
    await expect403(
      await call("POST", "/tokens", {
        ip: "192.0.2.21",
        authorization: `Bearer ${editor.token}`,
        body: { name: "mine now", role: "admin" },
      }),
    );
    const after = await env.DB.prepare("SELECT count(*) AS n FROM tokens").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });
});

describe("brute-force limit", () => {
  it(`the ${AUTH_FAILURE_LIMIT + 1}th bad attempt within the window gets 429; another client is unaffected`, async () => {
    const attacker = "198.51.100.7";
    await fail(attacker, AUTH_FAILURE_LIMIT);
    expect(await failuresOf(attacker)).toBe(AUTH_FAILURE_LIMIT);
    const retryAfter = await expect429(
      await call("GET", "/projects", { ip: attacker, authorization: "Bearer guess-11" }),
    );
    expect(retryAfter).toBeGreaterThan(AUTH_FAILURE_WINDOW_MS / 1000 - 10);

    // Limited: even the right token is refused before it is looked at, so a guesser cannot
    // tell a hit from a miss; malformed headers too. Refusals do not count further.
    await expect429(await call("GET", "/projects", { ip: attacker }));
    await expect429(await call("GET", "/projects", { ip: attacker, authorization: "Basic x" }));
    expect(await failuresOf(attacker)).toBe(AUTH_FAILURE_LIMIT + 1);
    // A request without credentials is still just 401 (it cannot guess anything).
    await expect401(
      await call("GET", "/projects", { ip: attacker, authorization: null }),
      /missing/,
    );

    // Another client: the good token works, and its own budget is untouched.
    expect((await call("GET", "/projects", { ip: "198.51.100.8" })).status).toBe(200);
    await fail("198.51.100.8", 1);
    expect(await failuresOf("198.51.100.8")).toBe(1);
  });

  it("successful authentications, missing headers and 403s never consume the budget", async () => {
    const client = "198.51.100.20";
    const viewer = await createToken("viewer");
    for (let i = 0; i < 3 * AUTH_FAILURE_LIMIT; i++) {
      expect((await call("GET", "/projects", { ip: client })).status).toBe(200);
      await expect401(
        await call("GET", "/projects", { ip: client, authorization: null }),
        /missing/,
      );
      await expect403(
        await call("POST", "/projects", {
          ip: client,
          authorization: `Bearer ${viewer.token}`,
          body: { name: "x" },
        }),
      );
    }
    expect(await failuresOf(client)).toBeNull();
    // The whole budget is still there.
    await fail(client, AUTH_FAILURE_LIMIT);
    await expect429(await call("GET", "/projects", { ip: client, authorization: "Bearer x" }));
  });

  it("malformed, expired and revoked attempts count like wrong tokens", async () => {
    const client = "198.51.100.30";
    const revoked = await createToken("admin");
    expect((await call("DELETE", `/tokens/${revoked.id}`, { ip: "198.51.100.31" })).status).toBe(
      204,
    );
    for (let i = 0; i < AUTH_FAILURE_LIMIT / 2; i++) {
      await expect401(
        await call("GET", "/projects", { ip: client, authorization: `Basic ${i}` }),
        /malformed/,
      );
      await expect401(
        await call("GET", "/projects", { ip: client, authorization: `Bearer ${revoked.token}` }),
        /revoked/,
      );
    }
    await expect429(await call("GET", "/projects", { ip: client, authorization: "Bearer x" }));
  });

  it("the window expires: then the right token works again and the count restarts", async () => {
    const client = "198.51.100.40";
    await fail(client, AUTH_FAILURE_LIMIT);
    await expect429(await call("GET", "/projects", { ip: client, authorization: "Bearer x" }));
    await expect429(await call("GET", "/projects", { ip: client }));
    // Another client's window that ended long ago: deleted by the next recorded failure.
    await env.DB.prepare(
      "INSERT INTO auth_failures (key, window_start, failures) VALUES ('203.0.113.9', ?, 99)",
    )
      .bind(Date.now() - 10 * AUTH_FAILURE_WINDOW_MS)
      .run();

    // Let the window end (D1 holds when it began).
    await env.DB.prepare("UPDATE auth_failures SET window_start = window_start - ? WHERE key = ?")
      .bind(AUTH_FAILURE_WINDOW_MS, client)
      .run();
    expect((await call("GET", "/projects", { ip: client })).status).toBe(200);
    await fail(client, 1);
    expect(await failuresOf(client)).toBe(1);
    expect(await failuresOf("203.0.113.9")).toBeNull();
    await fail(client, AUTH_FAILURE_LIMIT - 1);
    await expect429(await call("GET", "/projects", { ip: client, authorization: "Bearer x" }));
  });

  it("without cf-connecting-ip all requests share one fixed key", async () => {
    await fail(undefined, AUTH_FAILURE_LIMIT);
    expect(await failuresOf(UNKNOWN_CLIENT)).toBe(AUTH_FAILURE_LIMIT);
    await expect429(await call("GET", "/projects", { authorization: "Bearer x" }));
    await expect429(await call("GET", "/projects"));
    expect((await call("GET", "/projects", { ip: "198.51.100.50" })).status).toBe(200);
  });

  it("an IPv6 client is limited by its /64: rotating addresses inside it does not help", async () => {
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i++)
      await fail(`2001:db8:1:2::${(i + 1).toString(16)}`, 1);
    await expect429(
      await call("GET", "/projects", {
        ip: "2001:0db8:0001:0002:ffff:ffff:ffff:ffff",
        authorization: "Bearer x",
      }),
    );
    expect((await call("GET", "/projects", { ip: "2001:db8:1:3::1" })).status).toBe(200);
  });

  it("admin sign-ins count too: the 11th wrong one gets 429, and the API is limited with it", async () => {
    const signIn = (ip: string, token: string) =>
      exports.default.fetch(`${API_ORIGIN}/_ss/admin/login`, {
        method: "POST",
        redirect: "manual",
        headers: {
          "cf-connecting-ip": ip,
          "sec-fetch-site": "same-origin",
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ token }).toString(),
      });
    const attacker = "198.51.100.60";
    for (let i = 0; i < AUTH_FAILURE_LIMIT; i++) {
      const response = await signIn(attacker, `guess-${i}`);
      expect(response.status).toBe(401);
      expect(await response.text()).toContain("That token is not valid.");
    }
    expect(await failuresOf(attacker)).toBe(AUTH_FAILURE_LIMIT);
    const limited = await signIn(attacker, "guess-10");
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get("set-cookie")).toBeNull();
    expect(limited.headers.get("content-security-policy")).toMatch(/default-src 'none'/);
    expect(await limited.text()).toContain("Too many failed sign-ins");

    // The right token from the limited client: refused, no session.
    const right = await signIn(attacker, ADMIN_TOKEN);
    expect(right.status).toBe(429);
    expect(right.headers.get("set-cookie")).toBeNull();
    // The same client through the API: limited as well.
    await expect429(await call("GET", "/projects", { ip: attacker }));
    // Another client signs in.
    const other = await signIn("198.51.100.61", ADMIN_TOKEN);
    expect(other.status).toBe(303);
    expect(other.headers.get("set-cookie")).toMatch(/^ss_admin=/);
  });

  it("a limited client's admin session pages answer 429 instead of signing out", async () => {
    const client = "198.51.100.70";
    // A session started before the client went over the limit.
    const cookie = await adminSession(ADMIN_TOKEN, { "cf-connecting-ip": client });
    await fail(client, AUTH_FAILURE_LIMIT);
    await expect429(await call("GET", "/projects", { ip: client, authorization: "Bearer x" }));
    const page = await exports.default.fetch(`${API_ORIGIN}/_ss/admin`, {
      redirect: "manual",
      headers: { "cf-connecting-ip": client, cookie },
    });
    expect(page.status).toBe(429);
    expect(page.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(page.headers.get("set-cookie")).toBeNull();
  });

  it("the OpenAPI document lists 429 wherever it lists 401", async () => {
    const doc = (await (await call("GET", "/openapi.json", { authorization: null })).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    let operations = 0;
    for (const ops of Object.values(doc.paths))
      for (const op of Object.values(ops)) {
        if (!("401" in op.responses)) continue;
        operations++;
        expect(op.responses).toHaveProperty("429");
      }
    expect(operations).toBeGreaterThan(30);
  });
});

describe("the limiter's window (src/api/services/auth-limit.ts)", () => {
  it("counts per key and window; the window ends exactly 60 s after the first failure", async () => {
    const t0 = 1_900_000_000_000;
    const key = "limiter-unit";
    for (let i = 1; i <= AUTH_FAILURE_LIMIT + 1; i++) {
      const window = await recordAuthFailure(env.DB, key, t0 + i * 1000);
      expect(window).toEqual({ failures: i, windowStart: t0 + 1000 });
      expect(isLimited(window)).toBe(i > AUTH_FAILURE_LIMIT);
    }
    const start = t0 + 1000;
    const limited = await recentAuthFailures(env.DB, key, start + AUTH_FAILURE_WINDOW_MS - 1);
    expect(isLimited(limited)).toBe(true);
    expect(retryAfterSeconds(limited!, start)).toBe(60);
    expect(retryAfterSeconds(limited!, start + 59_001)).toBe(1);
    expect(retryAfterSeconds(limited!, start + AUTH_FAILURE_WINDOW_MS - 1)).toBe(1);
    expect(await recentAuthFailures(env.DB, key, start + AUTH_FAILURE_WINDOW_MS)).toBeNull();
    expect(await recentAuthFailures(env.DB, "other-key", start)).toBeNull();
    // A failure after the window starts a new one (the old row is deleted, not added to).
    const fresh = await recordAuthFailure(env.DB, key, start + AUTH_FAILURE_WINDOW_MS);
    expect(fresh).toEqual({ failures: 1, windowStart: start + AUTH_FAILURE_WINDOW_MS });
  });

  it.each<[string | null | undefined, string]>([
    [undefined, UNKNOWN_CLIENT],
    [null, UNKNOWN_CLIENT],
    ["", UNKNOWN_CLIENT],
    ["  ", UNKNOWN_CLIENT],
    ["203.0.113.5", "203.0.113.5"],
    [" 203.0.113.5 ", "203.0.113.5"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["2001:0DB8:0000:0001:aaaa:bbbb:cccc:dddd", "2001:db8:0:1::/64"],
    ["2001:db8:0:1::", "2001:db8:0:1::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["::1", "0:0:0:0::/64"],
    ["::ffff:192.0.2.1", "192.0.2.1"],
    ["64:ff9b::192.0.2.1", "64:ff9b:0:0::/64"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4::/64"],
    ["1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8:9"],
    ["1::2::3", "1::2::3"],
    ["not:an:address", "not:an:address"],
    ["x".repeat(100), "x".repeat(64)],
  ])("authClientKey(%j) = %j", (ip, key) => {
    expect(authClientKey(ip)).toBe(key);
  });

  it("ipv6Prefix refuses what is not IPv6", () => {
    for (const text of ["", "1.2.3.4", "g::1", "12345::1", "1:2:3:4:5:6:7", "::1.2.3.256"])
      expect(ipv6Prefix(text)).toBeNull();
  });
});
