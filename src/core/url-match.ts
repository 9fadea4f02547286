/**
 * URL conditions of the web extension's pages (docs/datafile.md `web.pages[].conditions`): an
 * and/or/not tree over `{match, value}` leaves, compiled once per datafile.
 *
 * - `simple`: host + path, ignoring scheme, user info, a leading `www.`, the default ports 80 and
 *   443, query, hash and one trailing slash; case-insensitive. `shop.example.com/p` matches
 *   `https://www.shop.example.com/p/?utm=x#top`.
 * - `exact`: the whole URL, case-insensitive. A value that parses as an absolute URL is first
 *   serialized as WHATWG URL does (`https://example.com` becomes `https://example.com/`), because
 *   the URLs it is compared with (`request.url`, `location.href`) are always in that form.
 * - `substring`: the value occurs in the whole URL, case-insensitive.
 * - `regex`: a JavaScript regular expression (no flags, so case-sensitive) tested against the
 *   whole URL.
 *
 * Tree semantics are those of {@link compileConditionTree}, with one difference: an array whose
 * first element is not an operator is an "or" of ALL its elements (Optimizely's audience trees
 * drop a non-string first element; nothing requires that quirk here, and `[{...}]` should match).
 * A leaf that cannot be evaluated (not an object, unknown `match`, `value` not a string, a regex
 * that does not compile) is unknown (null), so it never matches, not even under a `not`: a broken
 * `["not", {regex}]` must not turn a page into "every URL". The datafile validator reports such
 * leaves. Empty or absent conditions match nothing.
 *
 * Speed: condition values are normalized at compile time. A request URL is lowercased and
 * simple-normalized at most once, lazily, however many pages are tested against it: the last URL
 * seen is cached at module level (a single entry; isolates run one request's code at a time).
 */

import { compileConditionTree, type Tri } from "./conditions";

/** The request URL in the forms leaves compare against, each computed on first use. */
class UrlSubject {
  private lowerCache: string | undefined;
  private simpleCache: string | undefined;

  constructor(readonly url: string) {}

  get lower(): string {
    return (this.lowerCache ??= this.url.toLowerCase());
  }

  get simple(): string {
    return (this.simpleCache ??= normalizeSimpleUrl(this.url));
  }
}

type UrlPredicate = (subject: UrlSubject) => Tri;

const ALWAYS_NULL: UrlPredicate = () => null;

let lastUrl: string | undefined;
let lastSubject: UrlSubject | undefined;

function subjectFor(url: string): UrlSubject {
  if (url !== lastUrl || lastSubject === undefined) {
    lastSubject = new UrlSubject(url);
    lastUrl = url;
  }
  return lastSubject;
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/** [A-Za-z] */
function isAlpha(c: number): boolean {
  const lower = c | 32;
  return lower >= 97 && lower <= 122;
}

/** A character that may follow the first one of a scheme: [A-Za-z0-9+.-] */
function isSchemeChar(c: number): boolean {
  return isAlpha(c) || (c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46;
}

/**
 * The `simple` form of a URL: lowercase host (without user info, a leading `www.` or a port 80 /
 * 443) followed by the path without one trailing slash; no scheme, query or hash.
 * `HTTPS://user@WWW.Example.com:443/Shop/?q=1#x` becomes `example.com/shop`.
 *
 * It is plain string work, meant for URLs already in WHATWG form (`request.url`, `location.href`):
 * it does not resolve `..`, percent-encode, or convert an IDN host to punycode. Condition values,
 * which people type, get that canonicalization once at compile time (see compileUrlConditions).
 * Surrounding ASCII whitespace and control characters are ignored. Never throws.
 *
 * One scan for the boundaries, then only host and path are copied and lowercased: it runs once
 * per request URL, and query strings can be long.
 */
export function normalizeSimpleUrl(url: string): string {
  const s = typeof url === "string" ? url : String(url);
  let start = 0;
  let end = s.length;
  while (start < end && s.charCodeAt(start) <= 32) start++;
  while (end > start && s.charCodeAt(end - 1) <= 32) end--;

  // Scheme: [A-Za-z][A-Za-z0-9+.-]*:// , or a scheme-relative //
  if (start < end && isAlpha(s.charCodeAt(start))) {
    let i = start + 1;
    while (i < end && isSchemeChar(s.charCodeAt(i))) i++;
    if (s.startsWith("://", i) && i + 3 <= end) start = i + 3;
  } else if (s.startsWith("//", start) && start + 2 <= end) {
    start += 2;
  }

  // The path ends at the first "?" or "#", the host at the first "/" before that (native
  // indexOf: much faster than a JavaScript loop over a long URL).
  let pathEnd = end;
  const query = s.indexOf("?", start);
  if (query >= 0 && query < pathEnd) pathEnd = query;
  const hash = s.indexOf("#", start);
  if (hash >= 0 && hash < pathEnd) pathEnd = hash;
  let hostEnd = s.indexOf("/", start);
  if (hostEnd < 0 || hostEnd > pathEnd) hostEnd = pathEnd;

  let hostStart = start;
  if (hostEnd > hostStart) {
    const at = s.lastIndexOf("@", hostEnd - 1);
    if (at >= hostStart) hostStart = at + 1;
  }
  if (
    hostEnd - hostStart >= 4 &&
    (s.charCodeAt(hostStart) | 32) === 119 /* w */ &&
    (s.charCodeAt(hostStart + 1) | 32) === 119 &&
    (s.charCodeAt(hostStart + 2) | 32) === 119 &&
    s.charCodeAt(hostStart + 3) === 46 /* . */
  ) {
    hostStart += 4;
  }
  let portCut = hostEnd;
  if (s.endsWith(":80", hostEnd) && hostEnd - 3 >= hostStart) portCut = hostEnd - 3;
  else if (s.endsWith(":443", hostEnd) && hostEnd - 4 >= hostStart) portCut = hostEnd - 4;

  // One trailing slash of the path (the host itself never contains one).
  if (pathEnd > hostEnd && s.charCodeAt(pathEnd - 1) === 47 /* / */) pathEnd--;
  const out =
    portCut === hostEnd
      ? s.slice(hostStart, pathEnd)
      : s.slice(hostStart, portCut) + s.slice(hostEnd, pathEnd);
  return out.toLowerCase();
}

/**
 * Canonicalizes a typed `simple` value with the URL parser when it can (punycode host, resolved
 * dot segments, percent-encoded path, default port dropped), so it compares equal to a WHATWG
 * request URL; falls back to plain normalization.
 */
export function compileSimpleValue(value: string): string {
  const trimmed = value.trim();
  let absolute = trimmed;
  if (!SCHEME.test(trimmed)) {
    absolute = `http://${trimmed.startsWith("//") ? trimmed.slice(2) : trimmed}`;
  }
  try {
    const parsed = new URL(absolute);
    // Keep the host and path only; `host` already excludes user info and a default port.
    return normalizeSimpleUrl(`${parsed.host}${parsed.pathname}`);
  } catch {
    return normalizeSimpleUrl(trimmed);
  }
}

/** Canonical form of a typed `exact` value (lowercased; absolute URLs serialized as WHATWG does). */
export function compileExactValue(value: string): string {
  const trimmed = value.trim();
  if (SCHEME.test(trimmed)) {
    try {
      return new URL(trimmed).href.toLowerCase();
    } catch {
      // Not a URL the parser accepts: compare the text as typed.
    }
  }
  return trimmed.toLowerCase();
}

function compileUrlLeaf(leaf: unknown): UrlPredicate {
  if (typeof leaf !== "object" || leaf === null) return ALWAYS_NULL;
  const { match, value } = leaf as { match?: unknown; value?: unknown };
  if (typeof value !== "string") return ALWAYS_NULL;
  switch (match) {
    case "simple": {
      const expected = compileSimpleValue(value);
      return (s) => s.simple === expected;
    }
    case "exact": {
      const expected = compileExactValue(value);
      return (s) => s.lower === expected;
    }
    case "substring": {
      const needle = value.toLowerCase();
      return (s) => s.lower.includes(needle);
    }
    case "regex": {
      let re: RegExp;
      try {
        re = new RegExp(value);
      } catch {
        return ALWAYS_NULL;
      }
      // No `g`/`y` flag, so `test` keeps no state between calls.
      return (s) => re.test(s.url);
    }
    default:
      return ALWAYS_NULL;
  }
}

/**
 * Compiles a page's URL conditions into a matcher. Never throws, neither here nor when called
 * (a non-string argument does not match). See the module comment for the semantics.
 */
export function compileUrlConditions(conditions: unknown): (url: string) => boolean {
  const predicate = compileConditionTree<unknown, UrlSubject>(conditions, compileUrlLeaf, {
    implicitOr: "all",
  });
  return (url) => {
    if (typeof url !== "string") return false;
    try {
      return predicate(subjectFor(url)) === true;
    } catch {
      return false;
    }
  };
}
