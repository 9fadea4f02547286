/**
 * src/shared/tcf-string.ts against the IAB Tech Lab's own `@iabtechlabtcf/core` (docs/visitors.md
 * "Consent", docs/security.md "Consent"): on TC strings the library encodes — random purpose
 * consents, vendor consents written as a bitfield and as ranges, small and large max vendor ids —
 * the reader gives the library's answers. And a range-heavy string crafted to make the library
 * expand 65,535 ids per entry is decided correctly by comparing ranges instead.
 */
import { Base64Url, TCString } from "@iabtechlabtcf/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_TC_STRING_LENGTH, readTcString } from "../../src/shared/tcf-string";
import {
  encodeTcString,
  rangeHeavy,
  RANGE_ENTRIES_IN_8_KB,
  testGvl,
  withVendorRanges,
} from "../helpers/tc-strings";
import { SEED, seedProperties } from "../support/fast-check";

seedProperties(150);

/** Vendor ids the encoder may write: it drops consent for vendors missing from the GVL. */
const VENDOR_IDS = [
  ...Array.from({ length: 700 }, (_, i) => i + 1),
  ...Array.from({ length: 120 }, (_, i) => 2_000 + i),
  ...Array.from({ length: 60 }, (_, i) => 30_000 + i),
  ...Array.from({ length: 40 }, (_, i) => 65_496 + i),
];

const gvl = testGvl(VENDOR_IDS, [1]);

function encode(purposes: number[], vendors: number[]): string {
  return encodeTcString(gvl, purposes, vendors);
}

/** Bit offset of IsRangeEncoding in the core segment (after 213 bits and MaxVendorId's 16). */
const IS_RANGE_BIT = 229;
const isRangeEncoded = (tc: string) => Base64Url.decode(tc.split(".")[0]!)[IS_RANGE_BIT] === "1";

/** Vendors as runs of consecutive ids in VENDOR_IDS (what the encoder turns into ranges). */
const runsOfVendors = fc
  .array(fc.tuple(fc.nat(VENDOR_IDS.length - 1), fc.integer({ min: 1, max: 300 })), {
    maxLength: 6,
  })
  .map((runs) => runs.flatMap(([start, length]) => VENDOR_IDS.slice(start, start + length)));
/** Vendors picked one by one (dense ones make the encoder write a bitfield). */
const scatteredVendors = fc.subarray(VENDOR_IDS.slice(0, 700), { maxLength: 400 });

describe(`readTcString agrees with TCString.decode (seed ${SEED})`, () => {
  it("purposeConsents.has and vendorConsents.has, bitfield and range encodings", () => {
    const encodings = { range: 0, bitfield: 0 };
    fc.assert(
      fc.property(
        fc.subarray(Array.from({ length: 24 }, (_, i) => i + 1)),
        fc.oneof(runsOfVendors, scatteredVendors),
        fc.array(fc.integer({ min: 0, max: 65_536 }), { maxLength: 20 }),
        (purposes, vendors, probes) => {
          const tc = encode(purposes, vendors);
          const model = TCString.decode(tc);
          const ours = readTcString(tc);
          expect(ours).not.toBeNull();
          encodings[isRangeEncoded(tc) ? "range" : "bitfield"]++;
          for (let purpose = 0; purpose <= 25; purpose++)
            expect(ours!.purposeConsent(purpose), `purpose ${purpose}`).toBe(
              model.purposeConsents.has(purpose),
            );
          const maxId = model.vendorConsents.maxId;
          const asked = new Set([0, 1, maxId, maxId + 1, 65_535, ...probes]);
          for (const id of vendors) for (const near of [id - 1, id, id + 1]) asked.add(near);
          for (const id of asked)
            expect(ours!.vendorConsent(id), `vendor ${id}`).toBe(model.vendorConsents.has(id));
        },
      ),
    );
    // Both encodings of the vendor section were exercised, not just one.
    expect(encodings.range).toBeGreaterThan(20);
    expect(encodings.bitfield).toBeGreaterThan(20);
  });

  it("a string cut short never says more than the whole string", () => {
    const tc = encode([1, 3, 8], [2, 700, 2_001, 65_500]);
    const whole = readTcString(tc)!;
    for (let length = 0; length < tc.length; length++) {
      const cut = readTcString(tc.slice(0, length));
      if (cut === null) continue;
      for (let purpose = 1; purpose <= 24; purpose++)
        if (cut.purposeConsent(purpose)) expect(whole.purposeConsent(purpose)).toBe(true);
      for (const vendor of [1, 2, 700, 2_001, 65_500])
        if (cut.vendorConsent(vendor)) expect(whole.vendorConsent(vendor)).toBe(true);
    }
    // The purposes end at bit 176 (30 characters): anything shorter is not read at all.
    expect(readTcString(tc.slice(0, 29))).toBeNull();
    // The vendor section is read only in full: a range list cut inside its second entry is no
    // consent, not even for vendor 2, which the first (complete) entry covers.
    expect(isRangeEncoded(tc)).toBe(true);
    expect(readTcString(tc.split(".")[0]!.slice(0, 45))!.vendorConsent(2)).toBe(false);
  });

  it("not a v2 TC string: null", () => {
    const tc = encode([1], [1]);
    // Version 1 (the IAB's v1 example) and a v2 string with its version bits set to 3.
    expect(readTcString("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA")).toBeNull();
    expect(readTcString(`D${tc.slice(1)}`)).toBeNull();
    for (const junk of ["", "%%%", "C+zHq4APzHq4AAHABBENC", `${tc.slice(0, 40)}!${tc.slice(41)}`])
      expect(readTcString(junk)).toBeNull();
    expect(readTcString("C".repeat(MAX_TC_STRING_LENGTH + 1))).toBeNull();
  });
});

// ------------------------------------------------------------------------- hostile strings

/** A real string with purposes 1 and 8; its vendor section is replaced below. */
const BASE = encode([1, 8], []);

describe("range-heavy TC strings", () => {
  it("8 KB of 1..65535 ranges: decided by comparison, not by expanding 96 million ids", () => {
    const everyone = rangeHeavy(BASE, 1);
    expect(`euconsent-v2=${everyone}`.length).toBeLessThanOrEqual(8192);
    expect(RANGE_ENTRIES_IN_8_KB).toBeGreaterThan(1_400);
    const tc = readTcString(everyone)!;
    expect(tc.purposeConsent(1)).toBe(true);
    expect(tc.purposeConsent(2)).toBe(false);
    for (const vendor of [1, 755, 65_535]) expect(tc.vendorConsent(vendor)).toBe(true);
    // Ranges 2..65535 leave vendor 1 out.
    const allButOne = readTcString(rangeHeavy(BASE, 2))!;
    expect(allButOne.vendorConsent(1)).toBe(false);
    expect(allButOne.vendorConsent(2)).toBe(true);
  });

  it("the same answers as the library on a small range-heavy string", () => {
    const entries = [
      [5, 9],
      [700, 700],
      [2, 65_535],
      [40_000, 40_010],
    ] as const;
    const tc = withVendorRanges(BASE, entries);
    const model = TCString.decode(tc);
    const ours = readTcString(tc)!;
    for (const vendor of [1, 2, 5, 9, 10, 700, 40_005, 65_535])
      expect(ours.vendorConsent(vendor), `vendor ${vendor}`).toBe(model.vendorConsents.has(vendor));
  });

  it("malformed range lists are no consent, even for a vendor an earlier entry covers", () => {
    // NumEntries claims more entries than the string holds.
    const short = withVendorRanges(BASE, [[1, 65_535]], 4_095);
    expect(readTcString(short)!.vendorConsent(7)).toBe(false);
    // Vendor id 0 (the library throws on it) and a range ending before it starts.
    expect(
      readTcString(
        withVendorRanges(BASE, [
          [1, 10],
          [0, 0],
        ]),
      )!.vendorConsent(7),
    ).toBe(false);
    expect(
      readTcString(
        withVendorRanges(BASE, [
          [1, 10],
          [0, 5],
        ]),
      )!.vendorConsent(7),
    ).toBe(false);
    expect(
      readTcString(
        withVendorRanges(BASE, [
          [1, 10],
          [9, 3],
        ]),
      )!.vendorConsent(7),
    ).toBe(false);
    expect(() =>
      TCString.decode(
        withVendorRanges(BASE, [
          [1, 10],
          [0, 0],
        ]),
      ),
    ).toThrow();
  });
});
