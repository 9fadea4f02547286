/**
 * `GET|HEAD /_ss/client.js` (docs/architecture.md): the client JS API, built from src/client by
 * scripts/build-client.mjs into src/client/generated/client-bundle.ts (docs/client.md).
 *
 * Caching: the bootstrap loads `/_ss/client.js?v=<content hash>`, so a URL always names one
 * version: with the current hash it is `public, max-age=31536000, immutable`; without `v` or with
 * another one (an older page, a hand-written tag) `public, max-age=300`. The ETag is the content
 * hash (`304` for a matching `If-None-Match`). Compression is left to Cloudflare (it compresses
 * `text/javascript` for clients that accept it).
 */
import { CLIENT_JS, CLIENT_JS_HASH } from "../client/generated/client-bundle";
import { CLIENT_SCRIPT_PATH } from "./bootstrap";
import { errorResponse } from "../shared/error-response";

export { CLIENT_SCRIPT_PATH };

/** What the bootstrap's `<script src>` points at: the current version, cacheable forever. */
export const CLIENT_SCRIPT_SRC = `${CLIENT_SCRIPT_PATH}?v=${CLIENT_JS_HASH}`;

const ETAG = `"${CLIENT_JS_HASH}"`;

export function handleClientScript(request: Request, url: URL): Response {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(405, "method_not_allowed", `GET ${CLIENT_SCRIPT_PATH}`, null, {
      allow: "GET, HEAD",
    });
  }
  const headers: Record<string, string> = {
    "content-type": "text/javascript; charset=utf-8",
    "cache-control":
      url.searchParams.get("v") === CLIENT_JS_HASH
        ? "public, max-age=31536000, immutable"
        : "public, max-age=300",
    etag: ETAG,
    "access-control-allow-origin": "*",
    "x-content-type-options": "nosniff",
  };
  const ifNoneMatch = request.headers.get("if-none-match");
  if (ifNoneMatch?.split(",").some((t) => t.trim().replace(/^W\//, "") === ETAG))
    return new Response(null, { status: 304, headers });
  return new Response(request.method === "HEAD" ? null : CLIENT_JS, { headers });
}
