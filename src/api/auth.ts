/**
 * Bearer-token authentication and roles (CONTRACT §6, docs/api.md "Authentication").
 *
 * - `ADMIN_TOKEN` (secret) bootstraps: it authenticates as role `admin`, actor id `admin-token`.
 *   It is compared in constant time (SHA-256 of both sides, then crypto.subtle.timingSafeEqual).
 * - Other tokens live in D1 `tokens`, stored only as the SHA-256 hex of the secret. Looked up by
 *   hash on every request (so a revocation takes effect immediately); expired or revoked → 401.
 *   `last_used_at` is written at most once a minute per token, after the response.
 * - Roles are ordered viewer < editor < admin. Every API route except `GET /openapi.json` needs
 *   a valid token (viewer is enough to read); `requireRole(min)` guards writes.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { ApiEnv } from "./app";
import { forbidden, unauthorized } from "./errors";
import { first, type TokenRow } from "./db";

export type Role = "admin" | "editor" | "viewer";

export const ROLES: readonly Role[] = ["viewer", "editor", "admin"];

export interface Actor {
  /** `admin-token` for ADMIN_TOKEN, else the token's id. */
  id: string;
  role: Role;
  name: string;
}

export const ADMIN_ACTOR_ID = "admin-token";

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };

/** True when `role` is at least `min`. */
export function hasRole(role: Role, min: Role): boolean {
  return RANK[role] >= RANK[min];
}

const encoder = new TextEncoder();

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

/** SHA-256 of `text` as lowercase hex: how token secrets are stored. */
export async function sha256Hex(text: string): Promise<string> {
  const bytes = new Uint8Array(await sha256(text));
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
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

/**
 * Who is calling: the Actor for the request's bearer token, or a 401 ApiError (missing,
 * malformed, unknown, expired or revoked token).
 */
export async function authenticate(c: Context<ApiEnv>): Promise<Actor> {
  const token = bearerToken(c.req.header("authorization"));
  if (token === undefined)
    throw unauthorized("missing bearer token (Authorization: Bearer <token>)");
  if (token === null) throw unauthorized("malformed Authorization header: expected Bearer <token>");

  const digest = await sha256(token);
  const adminSecret = c.env.ADMIN_TOKEN;
  if (typeof adminSecret === "string" && adminSecret !== "") {
    if (digestsEqual(digest, await adminTokenDigest(adminSecret)))
      return { id: ADMIN_ACTOR_ID, role: "admin", name: "ADMIN_TOKEN" };
  }

  let hex = "";
  for (const byte of new Uint8Array(digest)) hex += byte.toString(16).padStart(2, "0");
  const row = await first<TokenRow>(c.env.DB, "SELECT * FROM tokens WHERE token_hash = ?", hex);
  if (!row) throw unauthorized("invalid token");
  if (row.revoked_at !== null) throw unauthorized("token revoked");
  const now = Date.now();
  if (row.expires_at !== null && Date.parse(row.expires_at) <= now)
    throw unauthorized("token expired");

  const lastUsed = Math.max(
    row.last_used_at ? Date.parse(row.last_used_at) : 0,
    lastUsedWritten.get(row.id) ?? 0,
  );
  if (now - lastUsed >= LAST_USED_INTERVAL_MS) {
    lastUsedWritten.set(row.id, now);
    waitUntil(
      c,
      c.env.DB.prepare("UPDATE tokens SET last_used_at = ? WHERE id = ?")
        .bind(new Date(now).toISOString(), row.id)
        .run(),
    );
  }
  return { id: row.id, role: row.role, name: row.name };
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
