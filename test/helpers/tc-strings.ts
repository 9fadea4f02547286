/**
 * Hand-made IAB TCF v2 TC strings for the consent tests (docs/security.md "Consent"): a real
 * string from `@iabtechlabtcf/core`'s encoder with its vendor consent section replaced by range
 * entries, e.g. the range-heavy strings that cost the library seconds to decode.
 */
import { Base64Url, GVL, TCModel, TCString } from "@iabtechlabtcf/core";

/** Bits of the core segment before the vendor consent section (version … publisher country). */
const BEFORE_VENDOR_CONSENTS = 213;
/** Range entries `[first, 65535]` that fit in an 8 KB `euconsent-v2=…` cookie pair (33 bits each). */
export const RANGE_ENTRIES_IN_8_KB = 1_478;

const bits = (value: number, width: number) => value.toString(2).padStart(width, "0");

/**
 * `base`'s core segment up to its vendor consents (so its purposes), then vendor consents as
 * `entries` ranges `[first, last]` (`first === last`: a single id) under MaxVendorId 65535, with
 * NumEntries `numEntries`; then empty legitimate-interest vendors and no publisher restrictions.
 */
export function withVendorRanges(
  base: string,
  entries: ReadonlyArray<readonly [number, number]>,
  numEntries = entries.length,
): string {
  const head = Base64Url.decode(base.split(".")[0]!).slice(0, BEFORE_VENDOR_CONSENTS);
  let body = `${head}${bits(65_535, 16)}1${bits(numEntries, 12)}`;
  for (const [first, last] of entries)
    body += first === last ? `0${bits(first, 16)}` : `1${bits(first, 16)}${bits(last, 16)}`;
  body += `${bits(0, 16)}0${bits(0, 12)}`;
  return Base64Url.encode(body);
}

/**
 * As many `[first, 65535]` ranges as fit in an 8 KB cookie pair: `TCString.decode` sets every id
 * of every range, about 97 million set insertions for `first = 1`.
 */
export function rangeHeavy(base: string, first: number): string {
  return withVendorRanges(
    base,
    Array.from({ length: RANGE_ENTRIES_IN_8_KB }, () => [first, 65_535] as const),
  );
}

/**
 * A minimal Global Vendor List for the encoder (it needs one to know which vendors exist):
 * purposes 1–11 and `vendorIds`, each declaring consent purposes `purposes`.
 */
export function testGvl(vendorIds: readonly number[], purposes: readonly number[]): GVL {
  return new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: 150,
    tcfPolicyVersion: 5,
    lastUpdated: "2026-01-01T00:00:00Z",
    purposes: Object.fromEntries(
      Array.from({ length: 11 }, (_, i) => [
        i + 1,
        { id: i + 1, name: `Purpose ${i + 1}`, description: "", illustrations: [] },
      ]),
    ),
    specialPurposes: {},
    features: {},
    specialFeatures: {},
    stacks: {},
    dataCategories: {},
    vendors: Object.fromEntries(
      vendorIds.map((id) => [
        id,
        {
          id,
          name: `Vendor ${id}`,
          purposes: [...purposes],
          legIntPurposes: [],
          flexiblePurposes: [],
          specialPurposes: [],
          features: [],
          specialFeatures: [],
          cookieMaxAgeSeconds: 0,
          usesCookies: true,
          cookieRefresh: false,
          usesNonCookieAccess: false,
          urls: [],
        },
      ]),
    ),
  } as unknown as ConstructorParameters<typeof GVL>[0]);
}

/** A real TC string from the library's encoder: these purposes and vendors consented. */
export function encodeTcString(gvl: GVL, purposes: number[], vendors: number[] = []): string {
  const model = new TCModel(gvl);
  model.cmpId = 10;
  model.cmpVersion = 1;
  model.consentScreen = 1;
  model.consentLanguage = "DE";
  model.publisherCountryCode = "DE";
  model.purposeConsents.set(purposes);
  model.vendorConsents.set(vendors);
  return TCString.encode(model);
}
