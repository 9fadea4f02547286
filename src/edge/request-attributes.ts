/**
 * Request attributes (docs/datafile.md): what the edge knows about a request, as audience-condition
 * attributes. The reference, with every decision, is docs/visitors.md#request-attributes.
 *
 * Built eagerly as one plain object (a typical request: ~40 properties, a few microseconds —
 * see docs/visitors.md for the measurement); the condition evaluator reads it with own-property
 * semantics, which a lazy Proxy would only make slower and more fragile.
 */

import { parseUserAgent } from "./user-agent";
import { INTERNAL_COOKIES, isStorableAttributeName, type VisitorState } from "./visitor";
import type { RequestAttributeName } from "../shared/request-attributes";

/** Headers never exposed as `header.<name>`: credentials. */
export const HIDDEN_HEADERS: ReadonlySet<string> = new Set([
  "cookie",
  "authorization",
  "proxy-authorization",
  "cf-access-jwt-assertion",
  "cf-access-client-secret",
]);

/** At most this many query parameters become `query.<name>` attributes (first ones win). */
export const MAX_QUERY_ATTRIBUTES = 100;

const UTM_KEYS: ReadonlyMap<string, RequestAttributeName> = new Map<string, RequestAttributeName>([
  ["utm_source", "utm.source"],
  ["utm_medium", "utm.medium"],
  ["utm_campaign", "utm.campaign"],
  ["utm_term", "utm.term"],
  ["utm_content", "utm.content"],
]);

/**
 * Which families of per-name attributes to build (all by default). A caller that knows no
 * audience condition names a `header.*` attribute (say, from the datafile's conditions) can pass
 * `{ headers: false }`: reading every header out of the runtime is most of this function's cost.
 * `language` and `referrer` are computed either way.
 */
export interface RequestAttributeFamilies {
  headers?: boolean;
  cookies?: boolean;
  query?: boolean;
}

/**
 * The attributes for one request: the visitor's stored custom attributes, overwritten by the
 * request attributes (docs/datafile.md). Never throws for a well-formed request.
 */
export function buildRequestAttributes(
  request: Request,
  url: URL,
  cookies: Map<string, string>,
  visitor: VisitorState,
  now: Date,
  families?: RequestAttributeFamilies,
): Record<string, unknown> {
  // Stored custom attributes first, so the request attributes below win on any name clash.
  // Reserved names are dropped here too (decodeAttributes already does), so a request attribute
  // that is absent for this request (e.g. geo.* without request.cf) cannot be supplied instead.
  const attrs: Record<string, unknown> = {};
  // The same object, typed so that every fixed name written below is one of the list of
  // src/shared/request-attributes.ts.
  const known: { [name in RequestAttributeName]?: unknown } = attrs;
  const stored = visitor.attributes;
  for (const key in stored) {
    if (Object.prototype.hasOwnProperty.call(stored, key) && isStorableAttributeName(key)) {
      attrs[key] = stored[key];
    }
  }

  // geo.* from Cloudflare's request.cf; absent when unknown.
  const cf = request.cf as Record<string, unknown> | undefined;
  if (cf) {
    setString(attrs, "geo.country", cf.country);
    setString(attrs, "geo.region", cf.region);
    setString(attrs, "geo.city", cf.city);
    setString(attrs, "geo.continent", cf.continent);
    if (typeof cf.asn === "number" && Number.isFinite(cf.asn)) known["geo.asn"] = cf.asn;
  }

  // device/browser/os from the User-Agent
  const headers = request.headers;
  const ua = parseUserAgent(headers.get("user-agent"));
  known["device.type"] = visitor.bot ? "bot" : ua.deviceType;
  known["browser.name"] = ua.browserName;
  if (ua.browserVersion !== "") known["browser.version"] = ua.browserVersion;
  known["os.name"] = ua.osName;

  // headers (all but credentials), language, referrer
  let acceptLanguage: string | null;
  if (families?.headers !== false) {
    // (forEach: measurably cheaper than the iterator in workerd)
    acceptLanguage = null;
    headers.forEach((value, name) => {
      if (HIDDEN_HEADERS.has(name)) return;
      attrs["header." + name] = value;
      if (name === "accept-language") acceptLanguage = value;
      else if (name === "referer" && value !== "") known.referrer = value;
    });
  } else {
    acceptLanguage = headers.get("accept-language");
    const referrer = headers.get("referer");
    if (referrer) known.referrer = referrer;
  }
  const language = preferredLanguage(acceptLanguage);
  if (language !== null) known.language = language;

  // URL
  known.url = url.href;
  known.path = url.pathname;
  if (url.search.length > 1) {
    const params = url.searchParams;
    let complete = false;
    if (families?.query !== false) {
      complete = true;
      let count = 0;
      for (const [name, value] of params) {
        const key = "query." + name;
        if (attrs[key] !== undefined) continue; // first value wins
        attrs[key] = value;
        const utm = UTM_KEYS.get(name);
        if (utm !== undefined) attrs[utm] = value;
        if (++count >= MAX_QUERY_ATTRIBUTES) {
          complete = false;
          break;
        }
      }
    }
    if (!complete) {
      // utm.* whatever the query.* cap or families say
      for (const [param, name] of UTM_KEYS) {
        if (attrs[name] !== undefined) continue;
        const value = params.get(param);
        if (value !== null) attrs[name] = value;
      }
    }
  }

  // cookies (not Splitstream's own)
  if (families?.cookies !== false) {
    for (const [name, value] of cookies) {
      if (!INTERNAL_COOKIES.has(name)) attrs["cookie." + name] = value;
    }
  }

  known["visitor.new"] = visitor.isNew;
  known["time.hour"] = now.getUTCHours();
  known["time.weekday"] = now.getUTCDay();
  return attrs;
}

function setString(
  attrs: Record<string, unknown>,
  name: RequestAttributeName,
  value: unknown,
): void {
  if (typeof value === "string" && value !== "") attrs[name] = value;
}

/**
 * The most preferred language tag of an `Accept-Language` header, lowercased with `_` read as
 * `-` (`de-AT,de;q=0.9,en;q=0.5` → `"de-at"`): the highest `q` (default 1), the first on ties;
 * `*`, `q=0` and malformed tags are skipped. Null when there is none.
 */
export function preferredLanguage(header: string | null): string | null {
  if (!header) return null;
  let best: string | null = null;
  let bestQ = 0;
  const parts = header.length > 1024 ? header.slice(0, 1024).split(",") : header.split(",");
  for (const part of parts) {
    const semi = part.indexOf(";");
    const tag = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase().replace(/_/g, "-");
    if (!/^[a-z]{1,8}(?:-[a-z0-9]{1,8})*$/.test(tag)) continue;
    let q = 1;
    if (semi !== -1) {
      const match = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(part.slice(semi + 1));
      q = match ? Number(match[1]) : 1;
    }
    if (q > bestQ) {
      best = tag;
      bestQ = q;
      if (q === 1) break; // nothing can beat it, and the first wins ties
    }
  }
  return best;
}
