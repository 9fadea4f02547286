/**
 * Bearer tokens and roles (docs/api.md "Authentication"): who a token is, checked on every
 * request.
 *
 * - `ADMIN_TOKEN` (secret) bootstraps: it authenticates as role `admin`, actor id `admin-token`.
 *   It is compared in constant time (SHA-256 of both sides, then crypto.subtle.timingSafeEqual).
 * - Other tokens live in D1 `tokens`, stored only as the SHA-256 hex of the secret. Looked up by
 *   hash on every request (so a revocation takes effect immediately); expired or revoked → 401.
 *   `last_used_at` is written at most once a minute per token, after the response.
 * - Roles are ordered viewer < editor < admin.
 * - Admin sessions (src/api/services/sessions.ts) hold no token, only its SHA-256:
 *   `actorForTokenHash` re-checks it on every admin page, like a bearer token.
 *
 * The HTTP side (the Authorization header, the brute-force limit, route middleware) is
 * src/api/http/auth.ts.
 */
import type { Env } from "../../env";
import { sha256 } from "../../shared/hash";
import type { Actor, Role } from "../context";
import { ApiError, forbidden, unauthorized } from "../errors";
import type { TokenRow } from "../store/rows";
import { first } from "../store/db";

export const ROLES: readonly Role[] = ["viewer", "editor", "admin"];

export const ADMIN_ACTOR_ID = "admin-token";

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

/** True when `role` is at least `min`. */
export function hasRole(role: Role, min: Role): boolean {
  return RANK[role] >= RANK[min];
}

/**
 * 403 `forbidden` unless the actor holds at least `min` (viewer < editor < admin): used by the
 * services and by the routes' `requireRole` middleware (src/api/http/auth.ts), so a refusal
 * reads the same from either side.
 */
export function requireActorRole(actor: Actor, min: Role): void {
  if (!hasRole(actor.role, min))
    throw forbidden(`this needs role ${min} or higher; the token has role ${actor.role}`);
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

/**
 * The Actor for a bearer token (null: a malformed header) and its D1 row (null for ADMIN_TOKEN),
 * or a 401 ApiError.
 */
export async function verifyToken(
  env: Pick<Env, "DB" | "ADMIN_TOKEN">,
  token: string | null,
): Promise<{ actor: Actor; row: TokenRow | null }> {
  if (token === null) throw unauthorized("malformed Authorization header: expected Bearer <token>");

  const digest = await sha256(token);
  const adminSecret = env.ADMIN_TOKEN;
  if (typeof adminSecret === "string" && adminSecret !== "") {
    if (digestsEqual(digest, await adminTokenDigest(adminSecret)))
      return { actor: { id: ADMIN_ACTOR_ID, role: "admin", name: "ADMIN_TOKEN" }, row: null };
  }

  return verifyStoredToken(env.DB, hexOf(digest));
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
 * The Actor of an admin session (src/api/services/sessions.ts), from the SHA-256 hex of the token it
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
export function touchLastUsed(
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
