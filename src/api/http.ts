/**
 * HTTP conventions of the management API (docs/api.md): pagination, ETag / If-Match, request
 * bodies (1 MB limit, JSON), validation error details with JSON paths, OpenAPI building blocks.
 */
import { z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { formatPath } from "../core/problem";
import { ApiError, unprocessable, versionConflict } from "./errors";

// ---------------------------------------------------------------------------------------------
// ETag / If-Match (optimistic concurrency)

/** The ETag of a resource at `version`: `W/"v<version>"`. */
export function etagFor(version: number): string {
  return `W/"v${version}"`;
}

/** The versions an If-Match header names (`*` → "any"); weak and strong forms compare alike. */
function ifMatchVersions(header: string): number[] | "any" {
  const out: number[] = [];
  for (const part of header.split(",")) {
    const tag = part.trim();
    if (tag === "*") return "any";
    const match = /^(?:W\/)?"v(\d+)"$/.exec(tag);
    if (match) out.push(Number(match[1]));
  }
  return out;
}

/**
 * Optimistic concurrency: when the request has `If-Match` and it does not name `version`
 * (the resource's current version), throws 409 `version_conflict` with details `{current}`.
 * No If-Match → allowed (clients SHOULD send it; docs/api.md). For a race-free write, also put
 * `AND version = ?` in the UPDATE and treat "no row changed" as a conflict.
 */
export function checkIfMatch(c: Context, version: number): void {
  const header = c.req.header("if-match");
  if (header === undefined) return;
  const versions = ifMatchVersions(header);
  if (versions === "any") return;
  if (!versions.includes(version)) throw versionConflict(version);
}

/** The version If-Match asks for (the first one named), or null when absent or `*`. */
export function ifMatchVersion(c: Context): number | null {
  const header = c.req.header("if-match");
  if (header === undefined) return null;
  const versions = ifMatchVersions(header);
  return versions === "any" ? null : (versions[0] ?? null);
}

/** Sets `ETag: W/"v<version>"` on the response being built. */
export function setEtag(c: Context, version: number): void {
  c.header("ETag", etagFor(version));
}

// ---------------------------------------------------------------------------------------------
// Pagination: `?limit=1..200` (default 50) and `?cursor=<opaque>`; lists answer
// `{ "items": [...], "nextCursor": string | null }`.

export const DEFAULT_PAGE_LIMIT = 50;
export const MAX_PAGE_LIMIT = 200;

/** base64url (no padding) of a UTF-8 string. */
export function encodeCursor(lastId: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(lastId)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Inverse of encodeCursor; null when `cursor` is not one. */
export function decodeCursor(cursor: string): string | null {
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0));
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
    return text === "" ? null : text;
  } catch {
    return null;
  }
}

/**
 * Reads `?limit` (1..200, default 50) and `?cursor`. The returned `cursor` is already DECODED:
 * it is the id of the last item of the previous page (null on the first page), so a query is
 * `… WHERE id > ?cursor ORDER BY id LIMIT ?limit+1` (or `id < ?` for newest-first lists), and
 * the page is `pageOf(rows, limit)`. Bad values → 422 with paths `$.query.limit` / `$.query.cursor`.
 */
export function parsePagination(c: Context): { limit: number; cursor: string | null } {
  const rawLimit = c.req.query("limit");
  const rawCursor = c.req.query("cursor");
  let limit = DEFAULT_PAGE_LIMIT;
  if (rawLimit !== undefined && rawLimit !== "") {
    limit = Number(rawLimit);
    if (!/^\d+$/.test(rawLimit) || limit < 1 || limit > MAX_PAGE_LIMIT)
      throw unprocessable("invalid query parameter limit", [
        { path: "$.query.limit", message: `must be an integer from 1 to ${MAX_PAGE_LIMIT}` },
      ]);
  }
  let cursor: string | null = null;
  if (rawCursor !== undefined && rawCursor !== "") {
    cursor = decodeCursor(rawCursor);
    if (cursor === null)
      throw unprocessable("invalid query parameter cursor", [
        { path: "$.query.cursor", message: "not a cursor returned by this API" },
      ]);
  }
  return { limit, cursor };
}

/** A page from rows fetched with LIMIT `limit + 1`: the first `limit`, and the cursor after them. */
export function pageOf<T extends { id: string }>(
  rows: T[],
  limit: number,
): { items: T[]; nextCursor: string | null } {
  if (rows.length <= limit) return { items: rows, nextCursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: last ? encodeCursor(last.id) : null };
}

/** `?limit&cursor` for route definitions: `request: { query: PaginationQuery }` (or `.extend({...})`). */
export const PaginationQuery = z.object({
  limit: z
    .string()
    .regex(/^\d+$/, "must be an integer")
    .optional()
    .openapi({
      param: { name: "limit", in: "query" },
      description: `Page size, 1..${MAX_PAGE_LIMIT} (default ${DEFAULT_PAGE_LIMIT}).`,
      example: "50",
    }),
  cursor: z
    .string()
    .optional()
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "`nextCursor` of the previous page; absent for the first page.",
    }),
});

/** The list envelope schema for OpenAPI: `{ items: T[], nextCursor: string | null }`. */
export function pageSchema<T extends z.ZodType>(item: T, name: string) {
  return z
    .object({
      items: z.array(item),
      nextCursor: z
        .string()
        .nullable()
        .openapi({ description: "Pass as `?cursor=` for the next page; null on the last page." }),
    })
    .openapi(name);
}

// ---------------------------------------------------------------------------------------------
// Errors in OpenAPI and validation details

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
 * can answer 401 can also answer 429 (the brute-force limit, src/api/auth-limit.ts), so 401
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

export interface ValidationDetail {
  path: string;
  message: string;
}

const TARGET_ROOT: Record<string, string> = {
  json: "body",
  form: "body",
  query: "query",
  param: "params",
  header: "headers",
  cookie: "cookies",
};

/**
 * Zod issues → `[{path: "$.body.variations[0].key", message}]`. Unknown keys of strict objects
 * get one entry each, pointing at the key itself.
 */
export function issuesToDetails(
  issues: readonly z.core.$ZodIssue[],
  root: string = "body",
): ValidationDetail[] {
  const details: ValidationDetail[] = [];
  for (const issue of issues) {
    const base = [root, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys)
        details.push({ path: formatPath([...base, key]), message: "unknown field" });
    } else {
      details.push({ path: formatPath(base), message: issue.message });
    }
  }
  return details;
}

/** The `validation_failed` ApiError for a failed zod parse of a request part. */
export function validationError(error: z.ZodError, target: string): ApiError {
  const root = TARGET_ROOT[target] ?? target;
  const details = issuesToDetails(error.issues, root);
  const firstDetail = details[0];
  const message = firstDetail
    ? `invalid request ${root}: ${firstDetail.path}: ${firstDetail.message}${details.length > 1 ? ` (and ${details.length - 1} more)` : ""}`
    : `invalid request ${root}`;
  return unprocessable(message, details);
}

// ---------------------------------------------------------------------------------------------
// Request bodies

export const MAX_BODY_BYTES = 1024 * 1024;

function isJsonContentType(value: string): boolean {
  return /^application\/([\w.-]+\+)?json\s*(;|$)/i.test(value.trim());
}

/**
 * App middleware for requests with a body: 413 `payload_too_large` over 1 MB (by Content-Length,
 * or while reading a chunked body), 415 `unsupported_media_type` for a non-JSON body,
 * 400 `invalid_json` for JSON that does not parse. The text is left in Hono's body cache, so the
 * route's validator (`c.req.json()`) does not read the stream again.
 *
 * An empty or whitespace-only body is no body (docs/api.md "Request bodies"): the request is
 * replaced by a body-less copy without `Content-Type`, so every route sees exactly what it sees
 * when nothing was sent — body-optional actions take their defaults, a required body answers 422
 * with the missing fields. Many HTTP clients send `Content-Type: application/json` (or curl's
 * form type) on every POST, and the routes' JSON validators would otherwise try to parse "".
 */
export const jsonBodyGuard: MiddlewareHandler = async (c, next) => {
  const method = c.req.method;
  if (method === "GET" || method === "HEAD" || method === "OPTIONS") return next();
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) throw payloadTooLarge();
  const raw = c.req.raw;
  if (raw.body === null) {
    // No body at all (e.g. a POST with Content-Length: 0) but a declared type: the same as empty.
    if (raw.headers.has("content-type")) c.req.raw = withoutBody(raw);
    return next();
  }

  const reader = raw.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      await reader.cancel().catch(() => {});
      throw payloadTooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ApiError(400, "invalid_json", "request body is not valid UTF-8");
  }
  if (text.trim() === "") {
    c.req.raw = withoutBody(raw);
    return next();
  }
  // Hono reads bodies through this cache (HonoRequest#cachedBody): json() parses the text.
  // (The declared type says string; at runtime the cache holds promises.)
  (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);

  const contentType = c.req.header("content-type") ?? "";
  if (!isJsonContentType(contentType))
    throw new ApiError(
      415,
      "unsupported_media_type",
      "request bodies must be JSON (Content-Type: application/json)",
    );
  try {
    JSON.parse(text);
  } catch (error) {
    throw new ApiError(
      400,
      "invalid_json",
      `malformed JSON in request body: ${(error as Error).message}`,
    );
  }
  await next();
};

/** The request as if nothing had been sent: no body, no headers describing one. */
function withoutBody(request: Request): Request {
  const headers = new Headers(request.headers);
  for (const name of ["content-type", "content-length", "content-encoding", "transfer-encoding"])
    headers.delete(name);
  return new Request(request.url, { method: request.method, headers, signal: request.signal });
}

function payloadTooLarge(): ApiError {
  return new ApiError(413, "payload_too_large", `request body over ${MAX_BODY_BYTES} bytes`, {
    limit: MAX_BODY_BYTES,
  });
}
