/**
 * Admin sessions (docs/admin.md "Sessions", docs/security.md "Admin pages: sessions, CSRF, CSP"):
 *
 * - the `ss_admin` cookie holds an opaque random session id, never the API token; D1 keeps only
 *   the id's SHA-256 (`admin_sessions`), with a fixed expiry 8 hours after sign-in;
 * - signing out deletes the session: the old cookie value no longer works;
 * - revoking the token through the tokens API ends its sessions at once;
 * - an old cookie that holds a raw token (the format before sessions) does not authenticate;
 * - a cross-site `POST /logout` is refused with 403, like every other cross-site POST, and the
 *   session survives it.
 */
import { MAX_SESSIONS_PER_TOKEN } from "../../src/api/services/sessions";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, API_ORIGIN, apiJson, createProject, createToken } from "../helpers/api";

const ADMIN = `${API_ORIGIN}/_ss/admin`;
const FORM = { "content-type": "application/x-www-form-urlencoded" };
const SAME_SITE = { "sec-fetch-site": "same-origin" };

function adminFetch(path: string, init: RequestInit & { cookie?: string } = {}, base = ADMIN) {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  return exports.default.fetch(`${base}${path}`, { ...init, headers, redirect: "manual" });
}

/** Signs in through the form; returns the whole Set-Cookie and the `ss_admin=…` pair. */
async function signIn(token = ADMIN_TOKEN): Promise<{ setCookie: string; cookie: string }> {
  const response = await adminFetch("/login", {
    method: "POST",
    headers: { ...SAME_SITE, ...FORM },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(response.status).toBe(303);
  const setCookie = response.headers.get("set-cookie")!;
  return { setCookie, cookie: setCookie.split(";")[0]! };
}

/** Whether a cookie opens an admin page (200) or is sent to the login form (303). */
async function signedIn(cookie: string): Promise<boolean> {
  const response = await adminFetch("", { cookie });
  await response.arrayBuffer();
  if (response.status === 303 && response.headers.get("location") === "/_ss/admin/login")
    return false;
  // The projects page, or (one project) the redirect to it.
  expect([200, 303]).toContain(response.status);
  return true;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const valueOf = (cookie: string) => decodeURIComponent(cookie.slice("ss_admin=".length));

async function sessionRows(): Promise<Array<Record<string, unknown>>> {
  return (await env.DB.prepare("SELECT * FROM admin_sessions").all()).results;
}

describe("the session cookie", () => {
  it("holds an opaque random id, never the token; D1 keeps only its SHA-256", async () => {
    await createProject();
    const viewer = await createToken("viewer");
    for (const token of [ADMIN_TOKEN, viewer.token]) {
      const { setCookie, cookie } = await signIn(token);
      const id = valueOf(cookie);
      expect(id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(setCookie).not.toContain(token);
      expect(setCookie).not.toContain(encodeURIComponent(token));
      expect(setCookie).toMatch(
        /^ss_admin=[A-Za-z0-9_-]{43}; Path=\/_ss\/admin; Max-Age=28800; HttpOnly; SameSite=Strict$/,
      );
      const rows = await sessionRows();
      const idHash = await sha256Hex(id);
      expect(rows.find((r) => r.id_hash === idHash)?.token_hash).toBe(await sha256Hex(token));
      // Nothing in the table is the id or the token themselves.
      for (const r of rows)
        for (const value of Object.values(r)) {
          expect(value).not.toBe(id);
          expect(value).not.toBe(token);
        }
      expect(await signedIn(cookie)).toBe(true);
    }
  });

  it(`a token holds at most ${MAX_SESSIONS_PER_TOKEN} live sessions: signing in again ends the oldest`, async () => {
    const viewer = await createToken("viewer");
    const cookies: string[] = [];
    for (let i = 0; i < MAX_SESSIONS_PER_TOKEN + 5; i++)
      cookies.push((await signIn(viewer.token)).cookie);
    const hash = await sha256Hex(viewer.token);
    const mine = (await sessionRows()).filter((r) => r.token_hash === hash);
    expect(mine).toHaveLength(MAX_SESSIONS_PER_TOKEN);
    expect(await signedIn(cookies.at(-1)!)).toBe(true);
  });

  it("two sign-ins get two different sessions", async () => {
    const a = await signIn();
    const b = await signIn();
    expect(a.cookie).not.toBe(b.cookie);
  });

  it("is Secure on https", async () => {
    const response = await adminFetch(
      "/login",
      {
        method: "POST",
        headers: { ...SAME_SITE, ...FORM },
        body: new URLSearchParams({ token: ADMIN_TOKEN }).toString(),
      },
      "https://localhost/_ss/admin",
    );
    expect(response.status).toBe(303);
    expect(response.headers.get("set-cookie")).toMatch(/; HttpOnly; SameSite=Strict; Secure$/);
  });

  it("an old cookie holding a raw token does not authenticate", async () => {
    const editor = await createToken("editor");
    for (const token of [ADMIN_TOKEN, editor.token]) {
      for (const cookie of [`ss_admin=${token}`, `ss_admin=${encodeURIComponent(token)}`]) {
        expect(await signedIn(cookie), cookie).toBe(false);
        // Nor a POST action with it.
        const response = await adminFetch("/experiments/000000000000/start", {
          method: "POST",
          cookie,
          headers: { ...SAME_SITE, ...FORM },
          body: "environment=production",
        });
        expect(response.status).toBe(303);
        expect(response.headers.get("location")).toBe("/_ss/admin/login");
      }
    }
  });

  it("a made-up or tampered id does not authenticate", async () => {
    const { cookie } = await signIn();
    const id = valueOf(cookie);
    const flipped = `${id.slice(0, -1)}${id.endsWith("A") ? "B" : "A"}`;
    for (const value of [flipped, "A".repeat(43), await sha256Hex(id), "", "x"])
      expect(await signedIn(`ss_admin=${value}`), value).toBe(false);
    expect(await signedIn(cookie)).toBe(true);
  });
});

describe("ending a session", () => {
  it("signing out deletes the session: the old cookie value no longer works", async () => {
    const { cookie } = await signIn();
    const other = await signIn();
    const before = (await sessionRows()).length;
    const out = await adminFetch("/logout", { method: "POST", cookie, headers: SAME_SITE });
    expect(out.status).toBe(303);
    expect(out.headers.get("location")).toBe("/_ss/admin/login");
    expect(out.headers.get("set-cookie")).toMatch(/^ss_admin=; Path=\/_ss\/admin; Max-Age=0;/);
    expect((await sessionRows()).length).toBe(before - 1);
    expect(await signedIn(cookie)).toBe(false);
    // Another session of the same token is untouched.
    expect(await signedIn(other.cookie)).toBe(true);
  });

  it("revoking the token through the tokens API ends its sessions", async () => {
    await createProject();
    const viewer = await createToken("viewer");
    const editor = await createToken("editor");
    const first = await signIn(viewer.token);
    const second = await signIn(viewer.token);
    const bystander = await signIn(editor.token);
    const viewerHash = await sha256Hex(viewer.token);
    const count = async () =>
      (
        await env.DB.prepare("SELECT COUNT(*) AS n FROM admin_sessions WHERE token_hash = ?")
          .bind(viewerHash)
          .first<{ n: number }>()
      )?.n;
    expect(await count()).toBe(2);
    expect(await signedIn(first.cookie)).toBe(true);

    await apiJson("DELETE", `/tokens/${viewer.id}`, 204);
    expect(await count()).toBe(0);
    expect(await signedIn(first.cookie)).toBe(false);
    expect(await signedIn(second.cookie)).toBe(false);
    expect(await signedIn(bystander.cookie)).toBe(true);
  });

  it("a session past its expiry no longer works (fixed: 8 hours after sign-in)", async () => {
    const before = Date.now();
    const { cookie } = await signIn();
    const idHash = await sha256Hex(valueOf(cookie));
    const row = await env.DB.prepare(
      "SELECT created_at, expires_at FROM admin_sessions WHERE id_hash = ?",
    )
      .bind(idHash)
      .first<{ created_at: number; expires_at: number }>();
    expect(row!.created_at).toBeGreaterThanOrEqual(before);
    expect(row!.expires_at - row!.created_at).toBe(8 * 60 * 60 * 1000);
    // Using it does not extend it (fixed expiry, not sliding).
    expect(await signedIn(cookie)).toBe(true);
    const after = await env.DB.prepare("SELECT expires_at FROM admin_sessions WHERE id_hash = ?")
      .bind(idHash)
      .first<{ expires_at: number }>();
    expect(after!.expires_at).toBe(row!.expires_at);

    await env.DB.prepare("UPDATE admin_sessions SET expires_at = ? WHERE id_hash = ?")
      .bind(Date.now() - 1, idHash)
      .run();
    expect(await signedIn(cookie)).toBe(false);
  });

  it("an expired token's sessions no longer work", async () => {
    const token = await createToken("viewer", {
      expiresAt: new Date(Date.now() + 60 * 60 * 1000).toISOString(),
    });
    const { cookie } = await signIn(token.token);
    expect(await signedIn(cookie)).toBe(true);
    await env.DB.prepare("UPDATE tokens SET expires_at = ? WHERE id = ?")
      .bind(new Date(Date.now() - 1000).toISOString(), token.id)
      .run();
    expect(await signedIn(cookie)).toBe(false);
  });
});

describe("cross-site sign-out", () => {
  it.each([
    ["Sec-Fetch-Site: cross-site", { "sec-fetch-site": "cross-site" }],
    ["Sec-Fetch-Site: same-site", { "sec-fetch-site": "same-site" }],
    ["a foreign Origin", { origin: "https://evil.example" }],
    ["a foreign Referer", { referer: "https://evil.example/page" }],
    ["no origin information at all", {}],
  ])("%s: 403, and the session survives", async (_name, headers) => {
    const { cookie } = await signIn();
    const out = await adminFetch("/logout", { method: "POST", cookie, headers });
    expect(out.status).toBe(403);
    expect(out.headers.get("set-cookie")).toBeNull();
    expect(await signedIn(cookie)).toBe(true);
  });
});
