/**
 * OpenAPI building blocks of the route modules: the error envelope's schema, the error responses
 * of a route, JSON request bodies and responses.
 */
import { z } from "@hono/zod-openapi";

/** `{"error":{"code","message","details"}}`. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "validation_failed" }),
      message: z.string(),
      details: z.unknown().openapi({
        description:
          "null, or more about the error; for validation_failed a list of {path, message} with JSON paths such as $.body.name",
      }),
    }),
  })
  .openapi("Error");

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Malformed request (invalid_json)",
  401: "Missing, invalid, expired or revoked token (unauthorized)",
  403: "The token's role is too low (forbidden)",
  404: "No such resource (not_found)",
  409: "Conflict with the current state (conflict, version_conflict)",
  413: "Request body over 1 MB (payload_too_large)",
  415: "Body is not JSON (unsupported_media_type)",
  422: "Validation failed (validation_failed)",
  429: "Too many failed authentications from this client (rate_limited); see Retry-After",
};

/**
 * OpenAPI `responses` entries for the given error statuses (401 and 422 are typical). Whatever
 * can answer 401 can also answer 429 (the brute-force limit, src/api/services/auth-limit.ts), so 401
 * brings 429 along.
 */
export function errorResponses(...statuses: number[]) {
  const out: Record<
    number,
    { description: string; content: { "application/json": { schema: typeof ErrorSchema } } }
  > = {};
  if (statuses.includes(401) && !statuses.includes(429)) statuses = [...statuses, 429];
  for (const status of statuses)
    out[status] = {
      description: ERROR_DESCRIPTIONS[status] ?? "Error",
      content: { "application/json": { schema: ErrorSchema } },
    };
  return out;
}

/** OpenAPI request body helper: `request: { body: jsonBody(Schema) }` (required, application/json). */
export function jsonBody<T extends z.ZodType>(schema: T, description?: string) {
  return {
    required: true,
    ...(description ? { description } : {}),
    content: { "application/json": { schema } },
  };
}

/** OpenAPI response helper: `{ description, content: { "application/json": { schema } } }`. */
export function jsonResponse<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}
