/**
 * Signed preview links (docs/visitors.md): a link carrying a token that forces chosen variations for
 * the one browser that opens it. The edge sees `?ss_preview=<token>`, verifies it, stores the
 * token in the `ss_preview` cookie, and passes the grant's variations to the decision core as
 * `preview`; `?ss_preview=off` clears the cookie.
 *
 * Token: `base64url(JSON payload) + "." + base64url(HMAC-SHA256(SIGNING_KEY, first part))`,
 * payload `{"k": sdkKey, "v": {experimentId: variationId}, "e": expiresAt}` (ms since epoch).
 * The MAC is checked with `crypto.subtle.verify` (constant-time) before the payload is parsed.
 */

import { decodeBase64Url, encodeBase64Url } from "./cookies";

export interface PreviewGrant {
  sdkKey: string;
  /** experiment id → variation id */
  variations: Record<string, string>;
  /** ms since epoch; the token is refused from then on */
  expiresAt: number;
}

export const PREVIEW_QUERY_PARAM = "ss_preview";
/** `?ss_preview=off` removes the preview cookie. */
export const PREVIEW_OFF = "off";
/** Tokens longer than this are refused unverified (the cookie must stay well under 4 KB). */
export const MAX_PREVIEW_TOKEN_LENGTH = 3072;
/** At most this many experiments per grant. */
export const MAX_PREVIEW_VARIATIONS = 100;
const MAX_ID_LENGTH = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Imported HMAC keys per signing key, per isolate (usually exactly one). */
const keyCache = new Map<string, Promise<CryptoKey>>();
const MAX_CACHED_KEYS = 8;

function hmacKey(signingKey: string): Promise<CryptoKey> {
  let key = keyCache.get(signingKey);
  if (key === undefined) {
    if (keyCache.size >= MAX_CACHED_KEYS) keyCache.clear();
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(signingKey),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keyCache.set(signingKey, key);
    // a rejected import must not stick in the cache
    key.catch(() => keyCache.delete(signingKey));
  }
  return key;
}

function isValidGrant(grant: unknown): grant is PreviewGrant {
  if (typeof grant !== "object" || grant === null) return false;
  const { sdkKey, variations, expiresAt } = grant as Record<string, unknown>;
  if (typeof sdkKey !== "string" || sdkKey === "" || sdkKey.length > MAX_ID_LENGTH) return false;
  if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) return false;
  if (typeof variations !== "object" || variations === null || Array.isArray(variations)) {
    return false;
  }
  const keys = Object.keys(variations);
  if (keys.length > MAX_PREVIEW_VARIATIONS) return false;
  for (const key of keys) {
    const value = (variations as Record<string, unknown>)[key];
    if (key === "" || key.length > MAX_ID_LENGTH || key === "__proto__") return false;
    if (typeof value !== "string" || value === "" || value.length > MAX_ID_LENGTH) return false;
  }
  return true;
}

/**
 * A preview token for `grant`.
 * @throws TypeError when the grant is malformed (empty sdkKey, non-string ids, more than
 *   {@link MAX_PREVIEW_VARIATIONS} experiments, a non-finite expiry) or the token would be too long.
 */
export async function signPreview(signingKey: string, grant: PreviewGrant): Promise<string> {
  if (!isValidGrant(grant)) throw new TypeError("invalid preview grant");
  const token = await signToken(signingKey, {
    k: grant.sdkKey,
    v: grant.variations,
    e: grant.expiresAt,
  });
  if (token.length > MAX_PREVIEW_TOKEN_LENGTH) throw new TypeError("preview grant too large");
  return token;
}

/**
 * `base64url(JSON payload) + "." + base64url(HMAC-SHA256(signingKey, first part))`: the signed
 * token format of preview links and of the visual editor's preview (src/edge/editor-preview.ts),
 * which signs with a key of its own so that neither token can stand for the other.
 */
export async function signToken(signingKey: string, payload: unknown): Promise<string> {
  const body = encodeBase64Url(encoder.encode(JSON.stringify(payload)));
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(signingKey), encoder.encode(body));
  return `${body}.${encodeBase64Url(new Uint8Array(mac))}`;
}

/**
 * The payload of a token made by {@link signToken} with `signingKey`, or null when it is longer
 * than `maxLength`, malformed or not signed with that key. The MAC is checked (constant-time)
 * before the payload is parsed. Never throws.
 */
export async function verifyToken(
  signingKey: string,
  token: string,
  maxLength: number,
): Promise<unknown> {
  try {
    if (typeof token !== "string" || token.length > maxLength) return null;
    const dot = token.indexOf(".");
    if (dot <= 0 || dot !== token.lastIndexOf(".")) return null;
    const payload = token.slice(0, dot);
    const macText = token.slice(dot + 1);
    const mac = decodeBase64Url(macText);
    // 32 bytes, canonically encoded (no alternative spellings of the same MAC)
    if (mac === null || mac.length !== 32 || encodeBase64Url(mac) !== macText) return null;
    const ok = await crypto.subtle.verify(
      "HMAC",
      await hmacKey(signingKey),
      mac,
      encoder.encode(payload),
    );
    if (!ok) return null;
    const bytes = decodeBase64Url(payload);
    if (bytes === null) return null;
    return JSON.parse(decoder.decode(bytes)) as unknown;
  } catch {
    return null;
  }
}

/**
 * The grant in `token` when it was signed with `signingKey`, is well-formed and `now` (ms since
 * epoch) is before its expiry; otherwise null. Never throws.
 */
export async function verifyPreview(
  signingKey: string,
  token: string,
  now: number,
): Promise<PreviewGrant | null> {
  const parsed = await verifyToken(signingKey, token, MAX_PREVIEW_TOKEN_LENGTH);
  if (typeof parsed !== "object" || parsed === null) return null;
  const { k, v, e } = parsed as { k?: unknown; v?: unknown; e?: unknown };
  const grant = { sdkKey: k, variations: v, expiresAt: e };
  if (!isValidGrant(grant)) return null;
  if (!(now < grant.expiresAt)) return null;
  return {
    sdkKey: grant.sdkKey,
    variations: { ...grant.variations },
    expiresAt: grant.expiresAt,
  };
}

/**
 * `pageUrl` with `?ss_preview=<token>` set (replacing any previous one; other parameters and the
 * hash are kept). Pass {@link PREVIEW_OFF} as the token for a link that ends the preview.
 * @throws TypeError when `pageUrl` is not an absolute URL.
 */
export function previewLink(pageUrl: string, token: string): string {
  const url = new URL(pageUrl);
  url.searchParams.set(PREVIEW_QUERY_PARAM, token);
  return url.href;
}
