/**
 * `x-ss-decisions` (docs/visitors.md): `experimentKey=variationKey` pairs joined by `, `, keys and
 * values percent-encoded where needed, capped at 4 KB. Pairs that would cross the cap are
 * left out whole (never cut in the middle), in decision order.
 *
 * `x-ss-flags` (docs/visitors.md "Feature flags"), to the origin only: the same format for the
 * enabled feature flags, `flagKey=variationKey`, in datafile order.
 */

export const DECISIONS_HEADER = "x-ss-decisions";
export const DECISIONS_HEADER_MAX_BYTES = 4096;

const SAFE = /^[A-Za-z0-9._~-]*$/;
/** A UTF-16 surrogate without its other half (encodeURIComponent throws on those). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * Percent-encodes everything outside RFC 3986's unreserved set (so `=`, `,`, spaces, CR/LF and
 * non-ASCII never appear raw); a lone surrogate is encoded as U+FFFD. Never throws.
 */
export function encodeDecisionToken(token: string): string {
  if (SAFE.test(token)) return token;
  return encodeURIComponent(token.replace(LONE_SURROGATE, "\ufffd")).replace(
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

/** The enabled feature flags, towards the origin only (never a response header). */
export const FLAGS_HEADER = "x-ss-flags";

/**
 * `x-ss-flags` from flag decisions: `flagKey=variationKey` for each ENABLED flag, in the order
 * given, formatted and capped exactly like `x-ss-decisions` (formatDecisionsHeader).
 */
export function formatFlagsHeader(
  decisions: ReadonlyArray<{ flagKey: string; enabled: boolean; variationKey: string | null }>,
  maxBytes: number = DECISIONS_HEADER_MAX_BYTES,
): string {
  const pairs: Array<[string, string]> = [];
  for (const d of decisions)
    if (d.enabled && d.variationKey !== null) pairs.push([d.flagKey, d.variationKey]);
  return formatDecisionsHeader(pairs, maxBytes);
}

/** The header that names the datafile revision: to the origin, and on the `/_ss/` endpoints. */
export const REVISION_HEADER = "x-ss-revision";

/** `x-ss-revision` is left empty when the encoded revision is longer than this. */
export const REVISION_HEADER_MAX_BYTES = 256;

/**
 * The one encoding of a datafile revision in any header (docs/security.md "Escaping at every
 * sink"): `x-ss-revision` to the origin, on `/_ss/datafiles/{sdkKey}.json` and on
 * `/_ss/client-config/{sdkKey}.json`, and the revision part of the datafile ETag. Encoded like a
 * decision token (an API revision, digits only, stays as it is), so no revision can break a
 * header (CR/LF, NUL, non-ASCII) even when the validator's rule (docs/datafile.md, visible
 * ASCII) was never applied to it; "" when it would be longer than 256 bytes. Never throws.
 */
export function formatRevisionHeader(revision: string): string {
  const encoded = encodeDecisionToken(revision);
  return encoded.length > REVISION_HEADER_MAX_BYTES ? "" : encoded;
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
