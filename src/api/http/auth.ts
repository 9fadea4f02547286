/**
 * Authentication of API requests (docs/api.md "Authentication"): the bearer token of the
 * `Authorization` header, checked by src/api/services/auth.ts; more than 10 failed
 * authentications per client per minute → 429 for the rest of that minute
 * (src/api/services/auth-limit.ts); `requireRole(min)` guards each route (viewer reads).
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Actor, ApiEnv, Role } from "../context";
import { ApiError, forbidden, tooManyAuthFailures, unauthorized } from "../errors";
import {
  AUTH_FAILURE_LIMIT,
  AUTH_FAILURE_WINDOW_MS,
  authClientKey,
  isLimited,
  recentAuthFailures,
  recordAuthFailure,
  retryAfterSeconds,
  type FailureWindow,
} from "../services/auth-limit";
import { hasRole, touchLastUsed, verifyToken } from "../services/auth";

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
 * many failed attempts (src/api/services/auth-limit.ts: a limited client gets 429 whatever it sends, and
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
    verifyToken(c.env, token).then(
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
