/**
 * Authentication of API requests (docs/api.md "Authentication"): the bearer token of the
 * `Authorization` header, checked by src/api/services/token-authentication.ts (as the admin's
 * sign-in is); more than 10 failed
 * authentications per client per minute → 429 for the rest of that minute
 * (src/api/services/auth-limit.ts); `requireRole(min)` guards each route (viewer reads).
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Actor, ApiEnv, Role } from "../context";
import { unauthorized } from "../errors";
import { requireActorRole } from "../services/auth";
import { authenticateToken } from "../services/token-authentication";

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
 * malformed, unknown, expired or revoked token), or a 429 ApiError when this client made too
 * many failed attempts (src/api/services/auth-limit.ts: a limited client gets 429 whatever it sends, and
 * only failures count).
 */
export async function authenticate(c: Context<ApiEnv>): Promise<Actor> {
  const token = bearerToken(c.req.header("authorization"));
  if (token === undefined)
    throw unauthorized("missing bearer token (Authorization: Bearer <token>)");
  return authenticateToken(
    c.env,
    { waitUntil: (promise) => waitUntil(c, promise) },
    token,
    c.req.header("cf-connecting-ip"),
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
    requireActorRole(actor, min);
    await next();
  };
}
