/**
 * Cached variants (docs/caching.md): when the origin says a page may be stored by a shared cache,
 * the edge keeps the page as rewritten for one variant in the Cache API and serves the next
 * visitors of the same variant from there — no origin request, no HTMLRewriter pass. What belongs
 * to one visitor (the bootstrap with their id and decisions, their cookies, `x-ss-decisions`) is
 * never in the stored copy: the page is stored with a random marker where the bootstrap goes, and
 * each response gets its own bootstrap spliced in at the marker, a byte search over the first
 * chunk or two of the page.
 *
 * The key is the page's URL plus everything the stored bytes depend on: the datafile (revision
 * and content hash), the decisions the origin was told (`x-ss-decisions`: the experiments of this
 * page and their variations) and the flags it was told (`x-ss-flags`). A visitor's variant can
 * only be served to visitors with the same decisions, and a publish changes every key.
 */

/** Bumped when what is stored (its layout or the rewriting code's output) changes meaning. */
export const VARIANT_CACHE_FORMAT = "1";

/** The query parameter that carries the key's hash in the Cache API key URL. */
export const VARIANT_KEY_PARAM = "__ss_variant";

/** Response header (on every page the cache was consulted for): `hit`, `miss` or `uncacheable`. */
export const VARIANT_CACHE_HEADER = "x-ss-cache";

/** Stored-copy headers: the marker, and the origin's own Cache-Control and Vary (restored on a hit). */
const MARKER_HEADER = "x-ss-bootstrap-marker";
const ORIGIN_CACHE_CONTROL_HEADER = "x-ss-origin-cache-control";
const ORIGIN_VARY_HEADER = "x-ss-origin-vary";
/** The stored body's length, when it was stored whole (the Cache API does not always say). */
const STORED_LENGTH_HEADER = "x-ss-stored-length";
/** When the copy was stored (ms), and the origin's `Age` then: a hit's `Age` (RFC 9111 §5.1). */
const STORED_AT_HEADER = "x-ss-stored-at";
const ORIGIN_AGE_HEADER = "x-ss-origin-age";
/** Every internal header of a stored copy: never taken from the origin, never sent to a browser. */
const INTERNAL_HEADERS = [
  MARKER_HEADER,
  ORIGIN_CACHE_CONTROL_HEADER,
  ORIGIN_VARY_HEADER,
  STORED_LENGTH_HEADER,
  STORED_AT_HEADER,
  ORIGIN_AGE_HEADER,
];

/** The longest a variant is kept, whatever the origin allows (a day; a publish changes the key anyway). */
export const VARIANT_MAX_TTL_SECONDS = 86_400;

/** What the key is built from; see the module comment. */
export interface VariantKeyParts {
  /** The visitor-facing URL, without the preview parameter. */
  url: URL;
  /** The datafile's revision and its ETag (which hashes its content). */
  revision: string;
  datafileTag: string;
  /** The route's pattern and origin: the same URL under another route is another page. */
  route: string;
  /** The deployed Worker version (its rewriting code): a deployment starts a fresh set of keys. */
  codeVersion: string;
  /** `[experimentId, variationId]` of every decision sent to the origin, in page order. */
  decisions: ReadonlyArray<readonly [string, string]>;
  /** The `x-ss-flags` value sent to the origin, or null when none was sent. */
  flags: string | null;
}

const encoder = new TextEncoder();

function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/**
 * The Cache API key for one variant of one page: the page URL plus `__ss_variant=<SHA-256 of every
 * part>` (the URL is hashed too, so no crafted query string can reach another page's key). JSON
 * keeps the parts apart: no value can be shifted into its neighbour.
 */
export async function variantCacheKey(parts: VariantKeyParts): Promise<Request> {
  const material = JSON.stringify([
    VARIANT_CACHE_FORMAT,
    parts.codeVersion,
    parts.url.href,
    parts.route,
    parts.revision,
    parts.datafileTag,
    parts.decisions,
    parts.flags,
  ]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(material)));
  const key = new URL(parts.url.href);
  key.hash = "";
  key.searchParams.append(VARIANT_KEY_PARAM, toHex(digest));
  return new Request(key.href, { method: "GET" });
}

/** Headers that speak to CDNs only, highest precedence first (Cloudflare's order). */
const TARGETED_CACHE_HEADERS = ["cloudflare-cdn-cache-control", "cdn-cache-control"] as const;

/** Directive names of a Cache-Control value, lower-cased, with their values (if any). */
function directives(value: string | null): Map<string, string | null> {
  const out = new Map<string, string | null>();
  if (!value) return out;
  // A quoted value may hold commas (`private="set-cookie, x-a"`): split outside quotes only.
  for (const part of value.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
    const [name, ...rest] = part.split("=");
    const key = name!.trim().toLowerCase();
    if (key === "") continue;
    const raw =
      rest.length > 0
        ? rest
            .join("=")
            .trim()
            .replace(/^"(.*)"$/, "$1")
        : null;
    if (!out.has(key)) out.set(key, raw);
  }
  return out;
}

function seconds(value: string | null | undefined): number | null {
  if (value === null || value === undefined || !/^\d{1,10}$/.test(value)) return null;
  return Number(value);
}

/**
 * Why `request` may neither be answered from the cache nor fill it, or null when it may: only a
 * plain GET (a Range request wants part of a page; a page for an Authorization header may be
 * that user's).
 */
export function requestRefusesCache(request: Request): string | null {
  if (request.method !== "GET") return "not a GET";
  if (request.headers.has("range")) return "a Range request";
  if (request.headers.has("authorization")) return "an authorized request";
  return null;
}

/**
 * How long a shared cache may keep the origin's response to `request`, in seconds, or a reason it
 * may not (docs/caching.md "What is cached"): the request is a plain GET (no Range, no
 * Authorization); the response a 200 whose `Cloudflare-CDN-Cache-Control`, else
 * `CDN-Cache-Control`, else `Cache-Control` (which must then say `public` or `s-maxage`) gives
 * `s-maxage` or `max-age` above its `Age`, without `private`, `no-store` or `no-cache`; without
 * Set-Cookie, and with no Vary beyond Accept-Encoding.
 */
export function cacheLifetime(
  request: Request,
  response: Response,
): { ttl: number } | { uncacheable: string } {
  const refused = requestRefusesCache(request);
  if (refused !== null) return { uncacheable: refused };
  if (response.status !== 200) return { uncacheable: `status ${response.status}` };
  if (response.headers.has("set-cookie")) return { uncacheable: "the origin sets a cookie" };
  const vary = (response.headers.get("vary") ?? "")
    .split(",")
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== "" && v !== "accept-encoding");
  if (vary.length > 0) return { uncacheable: `the origin varies on ${vary.join(", ")}` };
  // A header aimed at CDNs wins over Cache-Control, in Cloudflare's order (RFC 9213): with one,
  // the origin speaks to shared caches, so its max-age is theirs.
  const targeted = TARGETED_CACHE_HEADERS.find((name) => response.headers.has(name));
  const field = targeted ?? "cache-control";
  const cc = directives(response.headers.get(field));
  for (const never of ["no-store", "private", "no-cache"])
    if (cc.has(never)) return { uncacheable: `${field}: ${never}` };
  // Plain Cache-Control must say a shared cache may keep it: `public` or `s-maxage`. A bare
  // `max-age` is often meant for the browser alone (a page built from the visitor's session).
  if (targeted === undefined && !cc.has("public") && !cc.has("s-maxage"))
    return { uncacheable: "Cache-Control has neither public nor s-maxage" };
  const lifetime = seconds(cc.get("s-maxage")) ?? seconds(cc.get("max-age"));
  if (lifetime === null) return { uncacheable: `${field} has no max-age or s-maxage` };
  const age = seconds(response.headers.get("age")) ?? 0;
  const ttl = Math.min(lifetime - age, VARIANT_MAX_TTL_SECONDS);
  if (ttl <= 0) return { uncacheable: "already stale (Age)" };
  return { ttl };
}

/** A fresh unguessable marker: origin content cannot contain it, so it is only ever ours. */
export function newBootstrapMarker(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `<!--ss-bootstrap-${toHex(bytes)}-->`;
}

/**
 * The copy that goes into the cache: the rewritten page (with the marker) under headers that make
 * the Cache API keep it `ttl` seconds. Validators and Vary are dropped (the key already is the
 * variant); the origin's Cache-Control and Vary are kept aside for the hit path.
 */
export function storedVariant(
  body: ReadableStream<Uint8Array> | ArrayBuffer,
  rewritten: Response,
  marker: string,
  ttl: number,
): Response {
  const headers = new Headers(rewritten.headers);
  const originCacheControl = headers.get("cache-control");
  const originVary = headers.get("vary");
  const originAge = seconds(headers.get("age")) ?? 0;
  for (const name of [
    "etag",
    "last-modified",
    "age",
    "expires",
    "vary",
    "set-cookie",
    // Our own Cache-Control below says how long the copy lives; these would override it.
    "cdn-cache-control",
    "cloudflare-cdn-cache-control",
    "surrogate-control",
    ...INTERNAL_HEADERS,
  ])
    headers.delete(name);
  headers.set(STORED_AT_HEADER, String(Date.now()));
  headers.set(ORIGIN_AGE_HEADER, String(originAge));
  headers.set("cache-control", `public, max-age=${ttl}`);
  headers.set(MARKER_HEADER, marker);
  if (originCacheControl !== null) headers.set(ORIGIN_CACHE_CONTROL_HEADER, originCacheControl);
  if (originVary !== null) headers.set(ORIGIN_VARY_HEADER, originVary);
  if (body instanceof ArrayBuffer) headers.set(STORED_LENGTH_HEADER, String(body.byteLength));
  return new Response(body, { status: 200, headers });
}

/**
 * The largest page stored whole (read into memory once, on the miss) and read whole on a hit (see
 * {@link spliceBootstrapWhole}); larger pages, and pages whose origin sent no Content-Length, are
 * stored and spliced as they stream.
 */
export const WHOLE_SPLICE_MAX_BYTES = 2 * 1024 * 1024;

/** A stored variant as it came out of the cache, ready for one visitor (see {@link spliceBootstrap}). */
export interface CachedVariant {
  /** Status 200 and the origin's headers as the miss path would have passed them on. */
  response: Response;
  marker: string;
  /** The stored body's length, when it was stored whole (else null: it is spliced as it streams). */
  length: number | null;
}

/**
 * Reads a cache hit back: its marker, and the origin's headers restored (the cache's own —
 * `cf-cache-status`, `age`, `expires` — removed). Null for an entry that is not ours (no marker).
 */
export function readCachedVariant(hit: Response, now = Date.now()): CachedVariant | null {
  const marker = hit.headers.get(MARKER_HEADER);
  if (marker === null || hit.body === null) return null;
  const headers = new Headers(hit.headers);
  for (const name of [
    "content-length",
    ...INTERNAL_HEADERS,
    "cache-control",
    "cf-cache-status",
    "age",
    "expires",
  ])
    headers.delete(name);
  const cacheControl = hit.headers.get(ORIGIN_CACHE_CONTROL_HEADER);
  const vary = hit.headers.get(ORIGIN_VARY_HEADER);
  if (cacheControl !== null) headers.set("cache-control", cacheControl);
  if (vary !== null) headers.set("vary", vary);
  // How old the page is: the origin's Age when stored plus the time since (so the browser's
  // max-age counts from when the origin made it, not from this hit).
  const storedAt = Number(hit.headers.get(STORED_AT_HEADER) ?? Number.NaN);
  const originAge = seconds(hit.headers.get(ORIGIN_AGE_HEADER)) ?? 0;
  if (Number.isFinite(storedAt))
    headers.set("age", String(originAge + Math.max(0, Math.floor((now - storedAt) / 1000))));
  const length = Number(hit.headers.get(STORED_LENGTH_HEADER) ?? Number.NaN);
  return {
    response: new Response(hit.body, { status: 200, headers }),
    marker,
    length: Number.isSafeInteger(length) && length >= 0 ? length : null,
  };
}

/** Index of `needle` in `haystack`, or -1 (a '<' scan, then a byte compare). */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  const last = haystack.length - needle.length;
  for (let i = haystack.indexOf(first); i !== -1 && i <= last; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/**
 * A cache hit's body with the first `marker` replaced by `bootstrap`, for a stored page of at most
 * {@link WHOLE_SPLICE_MAX_BYTES}: the body is read whole (one native read of a local cache entry)
 * and the response is a Blob of three parts, so the runtime sends it without a JavaScript call per
 * chunk — a streaming splice costs two promise turns per chunk for the whole page (measured:
 * docs/benchmarks.md). Null when the size is unknown or too large: use {@link spliceBootstrap}.
 */
export async function spliceBootstrapWhole(
  hit: CachedVariant,
  bootstrap: string,
): Promise<Blob | null> {
  if (hit.length === null || hit.length > WHOLE_SPLICE_MAX_BYTES) return null;
  const marker = hit.marker;
  const bytes = new Uint8Array(await hit.response.arrayBuffer());
  const at = indexOfBytes(bytes, encoder.encode(marker));
  const insert = bootstrapBytes(bootstrap);
  if (at === -1) return new Blob([bytes, insert]);
  return new Blob([bytes.subarray(0, at), insert, bytes.subarray(at + marker.length)]);
}

/**
 * The bootstrap as bytes for any ASCII-compatible page encoding: non-ASCII characters can only
 * be inside its JSON strings (the nonce is base64), where `\uXXXX` means the same thing.
 */
function bootstrapBytes(bootstrap: string): Uint8Array {
  return encoder.encode(
    bootstrap.replace(
      /[\u0080-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    ),
  );
}

/**
 * `body` with the first `marker` replaced by `bootstrap`. Streams: each chunk is passed on as it
 * comes (holding back at most the marker's length minus one byte while the marker is not yet
 * found — it is in `<head>`, so in the first chunk or two), from a reader into an
 * `IdentityTransformStream`: two promises per chunk, cheaper than a JavaScript `TransformStream`
 * (measured: docs/benchmarks.md). A body without the marker gets the bootstrap at its end (where the
 * rewriter puts it on a page without any anchor). `onEnd` runs once the last byte is out.
 */
export function spliceBootstrap(
  body: ReadableStream<Uint8Array>,
  marker: string,
  bootstrap: string,
  onEnd?: () => void,
  keepAlive?: (work: Promise<unknown>) => void,
): ReadableStream<Uint8Array> {
  const needle = encoder.encode(marker);
  const insert = bootstrapBytes(bootstrap);
  const out = new IdentityTransformStream();
  const reader = body.getReader();
  const writer = out.writable.getWriter();
  const pump = async (): Promise<void> => {
    let carry: Uint8Array | null = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        // No marker: the bootstrap goes last.
        if (carry !== null && carry.length > 0) await writer.write(carry);
        await writer.write(insert);
        await writer.close();
        return;
      }
      let data: Uint8Array = value;
      if (carry !== null) {
        data = new Uint8Array(carry.length + value.length);
        data.set(carry);
        data.set(value, carry.length);
      }
      const at = indexOfBytes(data, needle);
      if (at !== -1) {
        if (at > 0) await writer.write(data.subarray(0, at));
        await writer.write(insert);
        if (at + needle.length < data.length) await writer.write(data.subarray(at + needle.length));
        break;
      }
      const keep = Math.min(needle.length - 1, data.length);
      if (data.length > keep) await writer.write(data.subarray(0, data.length - keep));
      carry = data.slice(data.length - keep);
    }
    // The rest as it comes. (Not `pipeTo` after releasing the locks: in workerd, piping a tee
    // branch that a reader has already read from never completes.)
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await writer.write(value);
    }
    await writer.close();
  };
  const done = pump().then(
    () => onEnd?.(),
    (error: unknown) => {
      // The visitor went away, or the stored body broke off: end both sides.
      writer.abort(error).catch(() => undefined);
      reader.cancel(error).catch(() => undefined);
      onEnd?.();
    },
  );
  keepAlive?.(done);
  return out.readable;
}
