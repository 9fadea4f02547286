/**
 * Reading a visitor's consent from the cookie their consent manager keeps (docs/visitors.md
 * "Consent", docs/config.md `consent`). Used by the edge (pages, `/_ss/decide`) and by the browser
 * event endpoint; pure: a cookie header in, yes or no out.
 *
 * The rule everywhere is "fail closed": a cookie that is absent, too long, malformed, of an
 * unknown version, or that does not say yes in so many words for every configured category or
 * purpose means no consent. The caller then serves the original page and tracks nothing — the
 * visitor still gets their page, exactly as with Global Privacy Control.
 *
 * Supported managers, each read the way the manager itself writes its cookie:
 * - `onetrust` — `OptanonConsent`, a URL-encoded query string whose `groups` field lists
 *   `GROUPID:1|0` pairs (`groups=C0001%3A1%2CC0002%3A0`). The value is parsed as a query string
 *   *before* percent-decoding, so an encoded `&groups=…` inside another field (OneTrust stores the
 *   landing page URL in `landingPath`) can never be mistaken for the real `groups`.
 * - `cookiebot` — `CookieConsent`, a URL-encoded JavaScript object literal
 *   (`{stamp:'…',necessary:true,preferences:false,statistics:false,…}`), or `-1`, which Cookiebot
 *   writes for visitors outside the regions where the site asks for consent and itself reads as
 *   "every category accepted".
 * - `tcf` — an IAB TCF v2 TC string (`euconsent-v2`), read by src/shared/tcf-string.ts (linear
 *   in the string's length; checked against the IAB Tech Lab's `@iabtechlabtcf/core` in the
 *   tests); consent needs every configured purpose (default 1, "store and/or access information
 *   on a device") and, when configured, the vendor's consent bit.
 * - `cookie` — a plain cookie whose whole value must be one of the configured accept values.
 */
import { readTcString } from "./tcf-string";

/** The consent managers whose cookies Splitstream reads. */
export const CONSENT_MANAGERS = ["onetrust", "cookiebot", "tcf", "cookie"] as const;
export type ConsentManager = (typeof CONSENT_MANAGERS)[number];

/** Cookiebot's consent categories (`necessary` is always granted). */
export const COOKIEBOT_CATEGORIES = [
  "necessary",
  "preferences",
  "statistics",
  "marketing",
] as const;

/** TCF v2.2 defines purposes 1–11. */
export const TCF_MAX_PURPOSE = 11;
/** TCF vendor ids are 16-bit numbers. */
export const TCF_MAX_VENDOR = 65_535;

/** A route's consent requirement, validated (src/edge/routes.ts parses it from `ROUTES`). */
export type ConsentConfig =
  | {
      manager: "onetrust";
      /** Cookie name (default `OptanonConsent`). */
      cookie: string;
      /** OneTrust group ids that must all be `:1` (default `["C0002"]`, "Performance"). */
      categories: string[];
    }
  | {
      manager: "cookiebot";
      /** Cookie name (default `CookieConsent`). */
      cookie: string;
      /** Cookiebot categories that must all be `true` (default `["statistics"]`). */
      categories: string[];
    }
  | {
      manager: "tcf";
      /** Cookie name holding the TC string (default `euconsent-v2`). */
      cookie: string;
      /** TCF purposes that must all have consent (default `[1]`). */
      purposes: number[];
      /** A vendor id whose consent is also required; null = vendor consent is not checked. */
      vendor: number | null;
    }
  | {
      manager: "cookie";
      /** Cookie name (required in config). */
      cookie: string;
      /** Lower-cased values that mean consent (default `["1", "true", "yes"]`). */
      accept: string[];
    }
  | typeof DENY_ALL_CONSENT;

/**
 * The requirement of a route whose `consent` config has an error (docs/config.md `consent`):
 * nobody has consent. Such a route stays in the route table, serving its pages untouched and
 * tracking no one, instead of being dropped — a dropped route would let a later, broader route
 * (`example.com/*` after `example.com/eu/*`) take its requests and track them without consent.
 */
export const DENY_ALL_CONSENT = Object.freeze({ manager: "deny-all" as const });

/** Per-manager defaults for the keys a route may leave out. */
export const CONSENT_DEFAULTS = {
  onetrust: { cookie: "OptanonConsent", categories: ["C0002"] },
  cookiebot: { cookie: "CookieConsent", categories: ["statistics"] },
  tcf: { cookie: "euconsent-v2", purposes: [1], vendor: null },
  cookie: { accept: ["1", "true", "yes"] },
} as const;

/**
 * A cookie pair longer than this is not read (same bound as src/edge/cookies.ts; browsers store
 * at most 4096 bytes per cookie anyway). An over-long consent cookie is no consent.
 */
const MAX_COOKIE_PAIR_LENGTH = 8192;
/**
 * At most this many `;`-separated segments are looked at (the edge's cookie parser reads as many
 * pairs). Every segment counts, empty or without `=`, so a header like `;;;…;a=b` is given up on
 * (no consent) after this many segments instead of being scanned again for each of them.
 */
const MAX_COOKIES = 256;

/**
 * The raw (not percent-decoded) value of the first cookie called `name` in a `Cookie` header,
 * trimmed and without one pair of surrounding double quotes; null when absent. Follows the
 * edge's cookie parser (first occurrence wins, over-long pairs are skipped) but keeps the value
 * as sent, because OneTrust's value must be split into fields before it is decoded. Linear in
 * the header's length: `=` is searched for only inside its own segment.
 */
export function rawCookieValue(header: string | null, name: string): string | null {
  if (!header) return null;
  let start = 0;
  for (let segments = 0; start < header.length && segments < MAX_COOKIES; segments++) {
    let end = header.indexOf(";", start);
    if (end === -1) end = header.length;
    if (end - start <= MAX_COOKIE_PAIR_LENGTH) {
      let eq = start;
      while (eq < end && header.charCodeAt(eq) !== 0x3d /* = */) eq++;
      if (eq < end && header.slice(start, eq).trim() === name) {
        const value = header.slice(eq + 1, end).trim();
        return value.length >= 2 && value.startsWith('"') && value.endsWith('"')
          ? value.slice(1, -1)
          : value;
      }
    }
    start = end + 1;
  }
  return null;
}

function percentDecode(value: string): string | null {
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/** OneTrust: every group in `groups` is `:1` in the cookie's single `groups` field. */
function oneTrustConsents(raw: string, groups: readonly string[]): boolean {
  const fields = new URLSearchParams(raw).getAll("groups");
  // Two `groups` fields are not something OneTrust writes: ambiguous, so no consent.
  if (fields.length !== 1) return false;
  const granted = new Map<string, string>();
  for (const pair of fields[0]!.split(",")) {
    const colon = pair.lastIndexOf(":");
    if (colon <= 0) continue;
    const id = pair.slice(0, colon).trim();
    // A group listed twice with different answers is ambiguous: the refusal wins.
    if (granted.get(id) !== "0") granted.set(id, pair.slice(colon + 1).trim());
  }
  return groups.every((group) => granted.get(group) === "1");
}

/**
 * Cookiebot's object literal as key → raw value text (`true`, `'abc'`, `1`), or null when it is
 * not one: `{`, `key:value` pairs separated by commas (single-quoted strings may hold commas),
 * `}`. A key given twice makes it unreadable.
 */
function parseCookiebotObject(text: string): Map<string, string> | null {
  if (!text.startsWith("{") || !text.endsWith("}")) return null;
  const body = text.slice(1, -1);
  const entries = new Map<string, string>();
  let i = 0;
  while (i < body.length) {
    const colon = body.indexOf(":", i);
    if (colon === -1) return null;
    const key = body.slice(i, colon).trim();
    if (!/^[A-Za-z_$][\w$]*$/.test(key) || entries.has(key)) return null;
    let j = colon + 1;
    if (body[j] === "'") {
      const close = body.indexOf("'", j + 1);
      if (close === -1) return null;
      j = close + 1;
    } else {
      while (j < body.length && body[j] !== ",") j++;
    }
    entries.set(key, body.slice(colon + 1, j).trim());
    if (j < body.length && body[j] !== ",") return null;
    i = j + 1;
  }
  return entries;
}

/** Cookiebot: `-1` (no consent needed in the visitor's region), or every category `true`. */
function cookiebotConsents(raw: string, categories: readonly string[]): boolean {
  const text = percentDecode(raw);
  if (text === null) return false;
  if (text === "-1") return true;
  const entries = parseCookiebotObject(text);
  return entries !== null && categories.every((category) => entries.get(category) === "true");
}

/** Characters of a TC string: base64url segments joined by dots. */
const TC_STRING = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/**
 * TCF v2: every purpose has consent, and the vendor too when one is configured. No memo: reading
 * is linear in the string (src/shared/tcf-string.ts), cheaper than hashing it for a cache key.
 */
function tcfConsents(raw: string, purposes: readonly number[], vendor: number | null): boolean {
  if (!TC_STRING.test(raw)) return false;
  const tc = readTcString(raw);
  if (tc === null) return false;
  if (!purposes.every((purpose) => tc.purposeConsent(purpose))) return false;
  return vendor === null || tc.vendorConsent(vendor);
}

/** Plain cookie: the whole (percent-decoded) value is one of the accept values, any case. */
function cookieConsents(raw: string, accept: readonly string[]): boolean {
  const value = (percentDecode(raw) ?? raw).toLowerCase();
  return accept.includes(value);
}

/**
 * True when `consent` is null (the route needs none) or the visitor's consent cookie, read from
 * the request's `Cookie` header, grants what the route requires; always false for
 * DENY_ALL_CONSENT. Never throws: anything it cannot read is no consent.
 */
export function hasConsent(consent: ConsentConfig | null, cookieHeader: string | null): boolean {
  if (consent === null) return true;
  if (consent.manager === "deny-all") return false;
  const raw = rawCookieValue(cookieHeader, consent.cookie);
  if (raw === null || raw === "") return false;
  switch (consent.manager) {
    case "onetrust":
      return oneTrustConsents(raw, consent.categories);
    case "cookiebot":
      return cookiebotConsents(raw, consent.categories);
    case "tcf":
      return tcfConsents(raw, consent.purposes, consent.vendor);
    case "cookie":
      return cookieConsents(raw, consent.accept);
  }
}
