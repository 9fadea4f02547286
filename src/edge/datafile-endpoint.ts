/**
 * `GET|HEAD /_ss/datafiles/{sdkKey}.json` (docs/architecture.md): the current datafile, byte for byte as
 * stored in KV, for official Optimizely SDKs (`urlTemplate: "https://host/_ss/datafiles/%s.json"`)
 * and browsers — except list members: a datafile written by hand with `web.lists[].values` is
 * served with every list reduced to `{id, key}` (`DatafileEntry.publicText`), because list
 * members are private (docs/datafile.md "Lists"); the API never stores them in the datafile.
 *
 * Conditional requests: the official JS SDK's polling datafile manager remembers `Last-Modified`
 * and sends it back as `If-Modified-Since`; HTTP clients and CDNs use `ETag` / `If-None-Match`.
 * Both answer 304 when nothing changed (If-None-Match wins when both are sent, RFC 9110 §13.2.2).
 * The ETag is derived from the text and is the same in every isolate. `Last-Modified` comes from
 * the KV metadata `publishedAt` when the publisher wrote it (then the usual "not modified since"
 * date comparison applies); otherwise it is about when this isolate first saw the text, which
 * differs between isolates, so then only an exact match counts — another date means a full 200,
 * never a 304 hiding a newer datafile.
 *
 * Caching: `public, max-age=60` — SDKs poll every few minutes, and a browser may keep a copy a
 * minute. Edge decisions do not go through this cache. CORS: `*` (datafiles are public, as on
 * Optimizely's CDN; list members never are), preflight answered for the conditional headers
 * browsers' SDKs send.
 */
import type { Env } from "../env";
import { getDatafile, type DatafileEntry } from "./datafile-store";
import { formatRevisionHeader, REVISION_HEADER } from "./decisions-header";
import { errorResponse } from "../shared/error-response";
import { SDK_KEY_PATTERN } from "./routes";

export const DATAFILES_PATH_PREFIX = "/_ss/datafiles/";
export const DATAFILE_CACHE_CONTROL = "public, max-age=60";

const ALLOW = "GET, HEAD, OPTIONS";
const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers": "ETag, Last-Modified",
} as const;
const DEFAULT_ALLOWED_HEADERS = "If-None-Match, If-Modified-Since, Cache-Control, Pragma";

/** Whether an `If-None-Match` value names this ETag (weak comparison: a compressed copy's `W/` counts). */
function etagMatches(header: string, etag: string): boolean {
  const opaque = etag.replace(/^W\//, "");
  for (const candidate of header.split(",")) {
    const tag = candidate.trim();
    if (tag === "*" || tag.replace(/^W\//, "") === opaque) return true;
  }
  return false;
}

function notModifiedSince(header: string, entry: DatafileEntry): boolean {
  const value = header.trim();
  if (value === entry.lastModified) return true;
  if (!entry.lastModifiedFromMetadata) return false;
  const since = Date.parse(value);
  return !Number.isNaN(since) && Date.parse(entry.lastModified) <= since;
}

function preflight(request: Request): Response {
  const requested = request.headers.get("access-control-request-headers");
  // Datafiles are public and credential-free, so any well-formed header list may be allowed.
  const allowHeaders =
    requested && /^[\w-]+(\s*,\s*[\w-]+)*$/.test(requested.trim())
      ? requested.trim()
      : DEFAULT_ALLOWED_HEADERS;
  return new Response(null, {
    status: 204,
    headers: {
      ...CORS_HEADERS,
      "access-control-allow-methods": ALLOW,
      "access-control-allow-headers": allowHeaders,
      "access-control-max-age": "86400",
      allow: ALLOW,
      "cache-control": "public, max-age=86400",
    },
  });
}

/** `/_ss/datafiles/{sdkKey}.json` → the sdkKey, or an error response. */
function sdkKeyFrom(pathname: string): { sdkKey: string } | { response: Response } {
  const name = pathname.startsWith(DATAFILES_PATH_PREFIX)
    ? pathname.slice(DATAFILES_PATH_PREFIX.length)
    : "";
  if (!name.endsWith(".json") || name.length === ".json".length || name.includes("/")) {
    return {
      response: errorResponse(
        404,
        "not_found",
        `no datafile endpoint at ${pathname}; use ${DATAFILES_PATH_PREFIX}{sdkKey}.json`,
        null,
        CORS_HEADERS,
      ),
    };
  }
  const sdkKey = name.slice(0, -".json".length);
  if (!SDK_KEY_PATTERN.test(sdkKey)) {
    return {
      response: errorResponse(
        400,
        "invalid_sdk_key",
        "an sdkKey is 1-128 characters: letters, digits, _ . - (starting with a letter or digit)",
        { sdkKey },
        CORS_HEADERS,
      ),
    };
  }
  return { sdkKey };
}

export async function handleDatafileRequest(
  request: Request,
  env: Pick<Env, "DATAFILES">,
  ctx: Pick<ExecutionContext, "waitUntil">,
): Promise<Response> {
  if (request.method === "OPTIONS") return preflight(request);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(
      405,
      "method_not_allowed",
      `${request.method} is not allowed on ${DATAFILES_PATH_PREFIX}{sdkKey}.json`,
      { allow: ALLOW.split(", ") },
      { allow: ALLOW, ...CORS_HEADERS },
    );
  }
  const parsed = sdkKeyFrom(new URL(request.url).pathname);
  if ("response" in parsed) return parsed.response;
  const { sdkKey } = parsed;

  const entry = await getDatafile(env, ctx, sdkKey);
  if (!entry) {
    return errorResponse(
      404,
      "datafile_not_found",
      `no datafile is published for sdkKey "${sdkKey}"`,
      { sdkKey },
      CORS_HEADERS,
    );
  }

  const headers: Record<string, string> = {
    ...CORS_HEADERS,
    etag: entry.etag,
    "last-modified": entry.lastModified,
    "cache-control": DATAFILE_CACHE_CONTROL,
    [REVISION_HEADER]: formatRevisionHeader(entry.revision),
  };
  const ifNoneMatch = request.headers.get("if-none-match");
  const ifModifiedSince = request.headers.get("if-modified-since");
  const notModified =
    ifNoneMatch !== null
      ? etagMatches(ifNoneMatch, entry.etag)
      : ifModifiedSince !== null && notModifiedSince(ifModifiedSince, entry);
  if (notModified) return new Response(null, { status: 304, headers });

  headers["content-type"] = "application/json; charset=utf-8";
  // publicText, never text: the KV text may carry list members (see the header).
  return new Response(request.method === "HEAD" ? null : entry.publicText, {
    status: 200,
    headers,
  });
}
