/**
 * Request bodies of the management API (docs/api.md): at most 1 MB, JSON only; an empty body on a
 * JSON route is treated as no body.
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors";

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
