/**
 * Authenticating a bearer token under the brute-force limit (docs/api.md "Authentication",
 * docs/security.md "Brute force"), without an HTTP request: for the admin sign-in form
 * (src/admin/app.ts), which checks the token it was given exactly as the API's auth middleware
 * (src/api/http/auth.ts `authenticate`) checks an `Authorization: Bearer` header — the same
 * failures counted against the same client, the same 401 and 429.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError, tooManyAuthFailures } from "../errors";
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
import { touchLastUsed, verifyToken } from "./auth";

/**
 * What the API's `Authorization` parser takes for a token (src/api/http/auth.ts): visible ASCII
 * only. Anything else in a header — a space, a tab, a non-ASCII character — makes it malformed.
 */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;

function limited(window: FailureWindow, now: number): ApiError {
  return tooManyAuthFailures(
    retryAfterSeconds(window, now),
    AUTH_FAILURE_LIMIT,
    AUTH_FAILURE_WINDOW_MS / 1000,
  );
}

/**
 * The Actor of `token` (as a bearer token would carry it, trimmed; null: a malformed one) for the
 * client at `clientIp` (`cf-connecting-ip`; absent: the shared `unknown` client,
 * src/api/services/auth-limit.ts).
 * Throws a 429 ApiError (`retry-after` among its headers) while that client is over the limit,
 * whatever the token; else a 401 ApiError for a malformed, unknown, expired or revoked token,
 * counted as one failure of the client (429 instead when that failure reaches the limit).
 * A success writes the token's `last_used_at` in `ctx.waitUntil`, at most once a minute.
 */
export async function authenticateToken(
  env: Pick<Env, "DB" | "ADMIN_TOKEN">,
  ctx: Pick<ExecutionContext, "waitUntil">,
  token: string | null,
  clientIp: string | null | undefined,
): Promise<Actor> {
  const db = env.DB;
  const key = authClientKey(clientIp);
  const now = Date.now();
  // The client's failures are read alongside the token check (one round trip, not two).
  const [window, outcome] = await Promise.all([
    recentAuthFailures(db, key, now),
    verifyToken(env, token !== null && TOKEN_PATTERN.test(token) ? token : null).then(
      (verified) => ({ verified }),
      (error: unknown) => ({ error }),
    ),
  ]);
  if (isLimited(window)) throw limited(window!, now);
  if ("verified" in outcome) {
    if (outcome.verified.row)
      touchLastUsed(db, (promise) => ctx.waitUntil(promise), outcome.verified.row);
    return outcome.verified.actor;
  }
  const error = outcome.error;
  if (error instanceof ApiError && error.status === 401) {
    const after = await recordAuthFailure(db, key, now);
    if (isLimited(after)) throw limited(after, now);
  }
  throw error;
}
