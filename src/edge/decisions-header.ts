/**
 * `x-ss-decisions` (CONTRACT §4): `experimentKey=variationKey` pairs joined by `, `, keys and
 * values percent-encoded where needed, capped at 4 KB. Pairs that would cross the cap are
 * left out whole (never cut in the middle), in decision order.
 */

export const DECISIONS_HEADER = "x-ss-decisions";
export const DECISIONS_HEADER_MAX_BYTES = 4096;

const SAFE = /^[A-Za-z0-9._~-]*$/;

/** Percent-encodes everything outside RFC 3986's unreserved set (so `=`, `,` and spaces never appear raw). */
export function encodeDecisionToken(token: string): string {
  if (SAFE.test(token)) return token;
  return encodeURIComponent(token).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Builds the header value from [experimentKey, variationKey] pairs. */
export function formatDecisionsHeader(
  pairs: ReadonlyArray<readonly [string, string]>,
  maxBytes: number = DECISIONS_HEADER_MAX_BYTES,
): string {
  let out = "";
  for (const [experimentKey, variationKey] of pairs) {
    const pair = `${encodeDecisionToken(experimentKey)}=${encodeDecisionToken(variationKey)}`;
    const next = out === "" ? pair : `${out}, ${pair}`;
    // Encoded output is ASCII, so string length is the byte length.
    if (next.length > maxBytes) continue;
    out = next;
  }
  return out;
}

/** Parses a header value back into [experimentKey, variationKey] pairs; malformed pairs are skipped. */
export function parseDecisionsHeader(value: string | null): Array<[string, string]> {
  if (!value) return [];
  const pairs: Array<[string, string]> = [];
  for (const part of value.split(",")) {
    const [key, variation, extra] = part.trim().split("=");
    if (key === undefined || variation === undefined || extra !== undefined || key === "") continue;
    try {
      pairs.push([decodeURIComponent(key), decodeURIComponent(variation)]);
    } catch {
      // Malformed percent-encoding: skip the pair.
    }
  }
  return pairs;
}
