/**
 * Bearer-token authentication and roles (docs/api.md "Authentication").
 *
 * - `ADMIN_TOKEN` (secret) bootstraps: it authenticates as role `admin`, actor id `admin-token`.
 *   It is compared in constant time (SHA-256 of both sides, then crypto.subtle.timingSafeEqual).
 * - Other tokens live in D1 `tokens`, stored only as the SHA-256 hex of the secret. Looked up by
 *   hash on every request (so a revocation takes effect immediately); expired or revoked → 401.
 *   `last_used_at` is written at most once a minute per token, after the response.
 * - Roles are ordered viewer < editor < admin. Every API route except `GET /openapi.json` needs
 *   a valid token (viewer is enough to read); `requireRole(min)` guards writes.
 * - Brute force: more than 10 failed authentications per client per minute → 429 for the rest of
 *   that minute (src/api/auth-limit.ts).
 * - Admin sessions (src/api/sessions.ts) hold no token, only its SHA-256: `actorForTokenHash`
 *   re-checks it on every admin page, like a bearer token.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Env } from "../env";
import type { Actor, ApiEnv, Role } from "./context";
import {
  AUTH_FAILURE_LIMIT,
  AUTH_FAILURE_WINDOW_MS,
  authClientKey,
  isLimited,
  recentAuthFailures,
  recordAuthFailure,
  retryAfterSeconds,
  type FailureWindow,
} from "./auth-limit";
import { ApiError, forbidden, tooManyAuthFailures, unauthorized } from "./errors";
import { first, type TokenRow } from "./db";
import { sha256 } from "../shared/hash";

export const ROLES: readonly Role[] = ["viewer", "editor", "admin"];

export const ADMIN_ACTOR_ID = "admin-token";

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

/** True when `role` is at least `min`. */
export function hasRole(role: Role, min: Role): boolean {
  return RANK[role] >= RANK[min];
}

/** Constant-time equality of two equal-length digests. */
function digestsEqual(a: ArrayBuffer, b: ArrayBuffer): boolean {
  const subtle = crypto.subtle as SubtleCrypto & {
    timingSafeEqual?: (a: ArrayBuffer, b: ArrayBuffer) => boolean;
  };
  if (typeof subtle.timingSafeEqual === "function") return subtle.timingSafeEqual(a, b);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < x.length; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

// The admin token's digest, computed once per isolate per secret value.
let adminDigest: { secret: string; digest: Promise<ArrayBuffer> } | null = null;

function adminTokenDigest(secret: string): Promise<ArrayBuffer> {
  if (adminDigest?.secret !== secret) adminDigest = { secret, digest: sha256(secret) };
  return adminDigest.digest;
}

/** Token ids whose last_used_at this isolate wrote recently (ms since epoch). */
const lastUsedWritten = new Map<string, number>();
const LAST_USED_INTERVAL_MS = 60_000;

/** The bearer token of a request: undefined when absent, null when the header is malformed. */
function bearerToken(header: string | undefined): string | null | undefined {
  if (header === undefined || header.trim() === "") return undefined;
  const match = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i.exec(header);
  return match ? (match[1] ?? null) : null;
}

function waitUntil(c: Context, promise: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(promise);
  } catch {
    // No ExecutionContext (a test calling app.fetch directly): let it run unattended.
    promise.catch(() => {});
  }
}

function limited(window: FailureWindow, now: number): ApiError {
  return tooManyAuthFailures(
    retryAfterSeconds(window, now),
    AUTH_FAILURE_LIMIT,
    AUTH_FAILURE_WINDOW_MS / 1000,
  );
}

/**
 * Who is calling: the Actor for the request's bearer token, or a 401 ApiError (missing,
 * malformed, unknown, expired or revoked token), or a 429 ApiError when this client made too
 * many failed attempts (src/api/auth-limit.ts: a limited client gets 429 whatever it sends, and
 * only failures count).
 */
export async function authenticate(c: Context<ApiEnv>): Promise<Actor> {
  const token = bearerToken(c.req.header("authorization"));
  if (token === undefined)
    throw unauthorized("missing bearer token (Authorization: Bearer <token>)");

  const db = c.env.DB;
  const key = authClientKey(c.req.header("cf-connecting-ip"));
  const now = Date.now();
  // The client's failures are read alongside the token check (one round trip, not two).
  const [window, outcome] = await Promise.all([
    recentAuthFailures(db, key, now),
    verifyToken(c, token).then(
      (verified) => ({ verified }),
      (error: unknown) => ({ error }),
    ),
  ]);
  if (isLimited(window)) throw limited(window!, now);
  if ("verified" in outcome) {
    if (outcome.verified.row)
      touchLastUsed(c.env.DB, (promise) => waitUntil(c, promise), outcome.verified.row);
    return outcome.verified.actor;
  }
  const error = outcome.error;
  if (error instanceof ApiError && error.status === 401) {
    const after = await recordAuthFailure(db, key, now);
    if (isLimited(after)) throw limited(after, now);
  }
  throw error;
}

/**
 * The Actor for a bearer token (null: a malformed header) and its D1 row (null for ADMIN_TOKEN),
 * or a 401 ApiError.
 */
async function verifyToken(
  c: Context<ApiEnv>,
  token: string | null,
): Promise<{ actor: Actor; row: TokenRow | null }> {
  if (token === null) throw unauthorized("malformed Authorization header: expected Bearer <token>");

  const digest = await sha256(token);
  const adminSecret = c.env.ADMIN_TOKEN;
  if (typeof adminSecret === "string" && adminSecret !== "") {
    if (digestsEqual(digest, await adminTokenDigest(adminSecret)))
      return { actor: { id: ADMIN_ACTOR_ID, role: "admin", name: "ADMIN_TOKEN" }, row: null };
  }

  return verifyStoredToken(c.env.DB, hexOf(digest));
}

function hexOf(digest: ArrayBuffer): string {
  let hex = "";
  for (const byte of new Uint8Array(digest)) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** The D1 token whose secret hashes to `hash`, or a 401 ApiError (unknown, revoked, expired). */
async function verifyStoredToken(
  db: D1Database,
  hash: string,
): Promise<{ actor: Actor; row: TokenRow }> {
  const row = await first<TokenRow>(db, "SELECT * FROM tokens WHERE token_hash = ?", hash);
  if (!row) throw unauthorized("invalid token");
  if (row.revoked_at !== null) throw unauthorized("token revoked");
  if (row.expires_at !== null && Date.parse(row.expires_at) <= Date.now())
    throw unauthorized("token expired");
  return { actor: { id: row.id, role: row.role, name: row.name }, row };
}

/**
 * The Actor of an admin session (src/api/sessions.ts), from the SHA-256 hex of the token it
 * signed in with — re-checked on every request, so a revoked or expired token, or a rotated
 * ADMIN_TOKEN, ends the session at once; null when it no longer authenticates. The hash comes
 * from D1, never from the client, so the comparison with ADMIN_TOKEN's need not be constant-time.
 */
export async function actorForTokenHash(
  env: Pick<Env, "DB" | "ADMIN_TOKEN">,
  ctx: Pick<ExecutionContext, "waitUntil">,
  tokenHash: string,
): Promise<Actor | null> {
  const adminSecret = env.ADMIN_TOKEN;
  if (typeof adminSecret === "string" && adminSecret !== "") {
    if (hexOf(await adminTokenDigest(adminSecret)) === tokenHash)
      return { id: ADMIN_ACTOR_ID, role: "admin", name: "ADMIN_TOKEN" };
  }
  try {
    const { actor, row } = await verifyStoredToken(env.DB, tokenHash);
    touchLastUsed(env.DB, (promise) => ctx.waitUntil(promise), row);
    return actor;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

/** Writes the token's `last_used_at`, at most once a minute per token, after the response. */
function touchLastUsed(
  db: D1Database,
  waitUntil: (promise: Promise<unknown>) => void,
  row: TokenRow,
): void {
  const now = Date.now();
  const lastUsed = Math.max(
    row.last_used_at ? Date.parse(row.last_used_at) : 0,
    lastUsedWritten.get(row.id) ?? 0,
  );
  if (now - lastUsed < LAST_USED_INTERVAL_MS) return;
  lastUsedWritten.set(row.id, now);
  waitUntil(
    db
      .prepare("UPDATE tokens SET last_used_at = ? WHERE id = ?")
      .bind(new Date(now).toISOString(), row.id)
      .run(),
  );
}

/**
 * Route middleware: the caller must hold at least `min` (viewer < editor < admin).
 * 401 when there is no valid token, 403 when its role is too low. Sets `c.var.actor`.
 * Use it in createRoute: `middleware: [requireRole("editor")] as const`.
 */
export function requireRole(min: Role): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const actor = c.get("actor") ?? (await authenticate(c));
    c.set("actor", actor);
    if (!hasRole(actor.role, min))
      throw forbidden(`this needs role ${min} or higher; the token has role ${actor.role}`);
    await next();
  };
}
