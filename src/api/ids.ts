/**
 * Identifiers and secrets. Ids look like Optimizely's (numeric strings), so datafiles built from
 * them are indistinguishable from Optimizely's to the official SDKs.
 */

const URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** `length` characters from the base64url alphabet; uniform (64 divides 256). */
export function randomUrlSafe(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  let out = "";
  for (const byte of bytes) out += URL_SAFE[byte & 63];
  return out;
}

/** Uniform random decimal digits by rejection sampling (bytes ≥ 250 are dropped). */
function randomDigits(count: number): number[] {
  const digits: number[] = [];
  while (digits.length < count) {
    for (const byte of crypto.getRandomValues(new Uint8Array(count * 2))) {
      if (byte < 250) digits.push(byte % 10);
      if (digits.length === count) break;
    }
  }
  return digits;
}

/**
 * A new resource id: a 12-digit numeric string that never starts with 0 (like Optimizely's
 * 11–12 digit ids; well below 2^53, so it survives a trip through a JS number too).
 */
export function newId(): string {
  const digits = randomDigits(12);
  // First digit 1..9: redraw until non-zero (uniform over 1..9).
  while (digits[0] === 0) digits[0] = randomDigits(1)[0] ?? 1;
  return digits.join("");
}

/**
 * A new environment sdkKey: 22 url-safe random characters (~131 bits), the first one a letter or
 * digit (src/edge/routes.ts SDK_KEY_PATTERN: an sdkKey names a KV key and a URL path segment).
 */
export function newSdkKey(): string {
  let first = randomUrlSafe(1);
  while (first === "-" || first === "_") first = randomUrlSafe(1);
  return first + randomUrlSafe(21);
}

/** A new API token secret: `ss_` + 32 url-safe random characters (192 bits). */
export function newTokenSecret(): string {
  return `ss_${randomUrlSafe(32)}`;
}

/** Current time as an ISO 8601 UTC string (`2026-08-20T12:34:56.789Z`). */
export function nowIso(): string {
  return new Date().toISOString();
}
