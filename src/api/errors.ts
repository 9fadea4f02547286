/**
 * Management API errors (docs/api.md): every failure is `{"error":{"code","message","details"}}`.
 * Throw an ApiError anywhere below a route (handlers, helpers, middleware); the app's onError
 * turns it into the envelope with the right status. Anything else thrown becomes a 500
 * `internal_error` (logged), except D1 UNIQUE-constraint failures, which become 409 `conflict`.
 */
export type ApiErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export class ApiError extends Error {
  constructor(
    readonly status: ApiErrorStatus,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    /** Extra response headers (e.g. `retry-after` of a 429). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** 404 `not_found`: `<type> <id> not found`. */
export const notFound = (type: string, id: string): ApiError =>
  new ApiError(404, "not_found", `${type} ${id} not found`, { type, id });

/** 409 `conflict`: the request is valid but clashes with the current state (duplicate key, running experiment, …). */
export const conflict = (message: string, details?: unknown): ApiError =>
  new ApiError(409, "conflict", message, details ?? null);

/** 422 `validation_failed`: well-formed JSON that breaks a rule. `details` is usually `[{path: "$.body.x", message}]`. */
export const unprocessable = (message: string, details?: unknown): ApiError =>
  new ApiError(422, "validation_failed", message, details ?? null);

/** 409 `version_conflict`: If-Match named a version that is no longer current. */
export const versionConflict = (current: number): ApiError =>
  new ApiError(
    409,
    "version_conflict",
    `the resource was changed by someone else (current version ${current}); fetch it again and retry`,
    { current },
  );

/** 401 `unauthorized` (the response also carries `WWW-Authenticate: Bearer`). */
export const unauthorized = (message: string): ApiError =>
  new ApiError(401, "unauthorized", message);

/** 403 `forbidden`: authenticated, but the token's role is too low. */
export const forbidden = (message: string): ApiError => new ApiError(403, "forbidden", message);

/**
 * 429 `rate_limited`: too many failed authentications from this client (src/api/services/auth-limit.ts);
 * `Retry-After` says when its window ends.
 */
export const tooManyAuthFailures = (
  retryAfter: number,
  limit: number,
  windowSeconds: number,
): ApiError =>
  new ApiError(
    429,
    "rate_limited",
    `too many failed authentications from this client (more than ${limit} in ${windowSeconds} s); retry in ${retryAfter} s`,
    { retryAfter, limit, windowSeconds },
    { "retry-after": String(retryAfter) },
  );

/** One validation problem: the JSON path (`$.body.variations[1].key`) and what is wrong there. */
export interface ValidationDetail {
  path: string;
  message: string;
}

/**
 * D1 reports a unique-constraint violation as an error; for the caller it is a 409: a resource
 * with that key (or id) already exists. Null for any other error.
 */
export function uniqueViolation(error: unknown): ApiError | null {
  const message = error instanceof Error ? error.message : String(error);
  if (!/UNIQUE constraint failed/i.test(message)) return null;
  return conflict("a resource with that key already exists", {
    constraint: message.replace(/^.*UNIQUE constraint failed:\s*/i, "").replace(/: SQLITE.*$/, ""),
  });
}
