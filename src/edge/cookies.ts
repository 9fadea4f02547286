/**
 * Cookie parsing and `Set-Cookie` serialization for the edge (docs/visitors.md).
 *
 * Parsing is tolerant (browsers and proxies send all sorts of things): pairs are split on `;`,
 * whitespace around names and values is dropped, one pair of surrounding double quotes is removed,
 * the first occurrence of a name wins (browsers send the most specific path first), pairs without
 * `=` or with an empty name are ignored, and values are percent-decoded when that is possible —
 * a malformed `%` sequence leaves the value as it came, it never throws.
 *
 * Serialization can never produce a broken or injected header: the value is percent-encoded
 * outside the RFC 6265 cookie-octet set (so `;`, `,`, whitespace, `"`, `\`, controls and non-ASCII
 * are escaped, and `%` itself, which keeps decoding exact), and a name or domain that is not a
 * valid token is rejected with a TypeError (those come from code and validated config, never from
 * visitors).
 */

/** At most this many cookies are read from one header; further pairs are ignored. */
export const MAX_COOKIES = 256;
/** A single `name=value` pair longer than this (characters) is ignored. */
export const MAX_COOKIE_PAIR_LENGTH = 8192;
/** Browsers cap cookie lifetimes at 400 days (RFC 6265bis); longer Max-Age values are clamped. */
export const MAX_COOKIE_AGE_SECONDS = 400 * 24 * 60 * 60;

export interface CookieOptions {
  /** Lifetime; absent = session cookie. Negative/NaN → 0, clamped to 400 days, floored. */
  maxAgeSeconds?: number;
  /** `Domain=` attribute (e.g. `example.com` to share across subdomains); null/absent = host-only. */
  domain?: string | null;
  /** Add `Secure` (set it for https requests). */
  secure: boolean;
  /** Add `HttpOnly` (unless the client script must read the cookie). */
  httpOnly: boolean;
  /** Always `Lax`; present in the type for readability at call sites. */
  sameSite?: "Lax";
  /** Always `/`. */
  path?: "/";
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DOMAIN =
  /^\.?[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

/**
 * The request's `Cookie` header as a map name → value (see the module comment). Never throws.
 * Keys are exactly as sent (cookie names are case-sensitive).
 */
export function parseCookies(header: string | null): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  let start = 0;
  let pairs = 0;
  const length = header.length;
  while (start < length && pairs < MAX_COOKIES) {
    let end = header.indexOf(";", start);
    if (end === -1) end = length;
    if (end - start <= MAX_COOKIE_PAIR_LENGTH) {
      // '=' is looked for inside this pair only: indexOf from `start` would scan past `end` for
      // every pair without one (`;;;;…;a=b`), quadratic in the header on every request.
      let eq = -1;
      for (let i = start; i < end; i++)
        if (header.charCodeAt(i) === 0x3d) {
          eq = i;
          break;
        }
      if (eq !== -1) {
        pairs++;
        const name = header.slice(start, eq).trim();
        if (name !== "" && !cookies.has(name) && isPlausibleName(name)) {
          cookies.set(name, decodeValue(header.slice(eq + 1, end).trim()));
        }
      }
    }
    start = end + 1;
  }
  return cookies;
}

/** Any non-empty name without whitespace or control characters (more tolerant than a token). */
function isPlausibleName(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}

function decodeValue(raw: string): string {
  let value = raw;
  if (
    value.length >= 2 &&
    value.charCodeAt(0) === 0x22 &&
    value.charCodeAt(value.length - 1) === 0x22
  ) {
    value = value.slice(1, -1);
  }
  if (value.indexOf("%") === -1) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Percent-encodes every character outside RFC 6265's cookie-octet set, plus `%`.
 * Fast path: most values (ids, base64url, `e1.v1~e2.v2`) need no encoding at all.
 */
export function encodeCookieValue(value: string): string {
  for (let i = 0; i < value.length; i++) {
    if (!isSafeOctet(value.charCodeAt(i))) return slowEncode(value);
  }
  return value;
}

function isSafeOctet(c: number): boolean {
  // cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E, minus "%" (0x25)
  return c > 0x20 && c < 0x7f && c !== 0x22 && c !== 0x2c && c !== 0x3b && c !== 0x5c && c !== 0x25;
}

function slowEncode(value: string): string {
  let out = "";
  for (const ch of value) {
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && isSafeOctet(c)) {
      out += ch;
    } else if (ch.length === 1 && c >= 0xd800 && c <= 0xdfff) {
      out += "%EF%BF%BD"; // lone surrogate: U+FFFD, as TextEncoder would
    } else {
      out += encodeURIComponent(ch); // escapes every unsafe ASCII character and non-ASCII
    }
  }
  return out;
}

function attributes(
  options: Omit<CookieOptions, "maxAgeSeconds">,
  maxAge: number | undefined,
): string {
  let out = "";
  if (maxAge !== undefined) out += `; Max-Age=${maxAge}`;
  if (options.domain) {
    if (!DOMAIN.test(options.domain) || options.domain.length > 253) {
      throw new TypeError(`invalid cookie domain: ${JSON.stringify(options.domain)}`);
    }
    out += `; Domain=${options.domain}`;
  }
  out += "; Path=/";
  if (options.secure) out += "; Secure";
  if (options.httpOnly) out += "; HttpOnly";
  out += "; SameSite=Lax";
  return out;
}

function checkName(name: string): void {
  if (!TOKEN.test(name)) throw new TypeError(`invalid cookie name: ${JSON.stringify(name)}`);
}

/**
 * A `Set-Cookie` header value: `name=value; Max-Age=…; Domain=…; Path=/; Secure; HttpOnly;
 * SameSite=Lax` (Max-Age, Domain, Secure, HttpOnly only when asked for). The value is encoded
 * with {@link encodeCookieValue}; {@link parseCookies} decodes it back exactly.
 * @throws TypeError for a name that is not an RFC 7230 token or an invalid domain.
 */
export function serializeCookie(name: string, value: string, options: CookieOptions): string {
  checkName(name);
  let maxAge: number | undefined;
  if (options.maxAgeSeconds !== undefined) {
    const seconds = Math.floor(options.maxAgeSeconds);
    maxAge = Number.isFinite(seconds)
      ? Math.min(Math.max(seconds, 0), MAX_COOKIE_AGE_SECONDS)
      : seconds > 0
        ? MAX_COOKIE_AGE_SECONDS
        : 0;
  }
  return `${name}=${encodeCookieValue(value)}${attributes(options, maxAge)}`;
}

/**
 * A `Set-Cookie` header value that removes the cookie: empty value, `Max-Age=0` and an `Expires`
 * in the past. Pass the same `domain` the cookie was set with.
 */
export function deleteCookie(name: string, options: Omit<CookieOptions, "maxAgeSeconds">): string {
  checkName(name);
  return `${name}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT${attributes(options, undefined)}`;
}

/** Bytes → base64url without padding (cookie- and URL-safe). */
export function encodeBase64Url(bytes: Uint8Array): string {
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** base64url without padding → bytes, or null when it is not valid base64url. Never throws. */
export function decodeBase64Url(text: string): Uint8Array | null {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return null;
  try {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch {
    return null;
  }
}
