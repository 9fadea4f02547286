/**
 * Reading an IAB TCF v2 TC string (the `euconsent-v2` cookie) for the few answers consent needs:
 * the version, the purpose consents and, when asked, one vendor's consent (docs/visitors.md
 * "Consent", docs/security.md "Consent").
 *
 * Why not `@iabtechlabtcf/core`'s `TCString.decode`: it decodes the whole string into a model,
 * and a vendor range entry `first..last` becomes `last - first + 1` set insertions. Measured
 * (docs/security.md "Consent"): 2.4–4 ms per `1..65535` entry, so an 8 KB cookie holding ~1,480
 * such entries cost 3.5–6 s of synchronous CPU on every page, `/_ss/decide` and `/_ss/events`
 * request that carries it. This reader compares the vendor against each range instead of
 * expanding it, and touches each bit at most once: its work is linear in the string's length,
 * whatever the string says. The library stays a dev dependency: the tests check this reader
 * against it on strings it encodes (test/shared/tcf-string.test.ts).
 *
 * Layout of the core segment (everything before the first `.`, base64url, most significant bit
 * first), from the IAB's "TCF v2.2 TC string format" and the library's own field sequence and
 * bit lengths (`encoder/sequence/FieldSequence.js`, `encoder/BitLength.js`):
 *
 * | bit | bits | field                                                                 |
 * | --- | ---- | --------------------------------------------------------------------- |
 * | 0   | 6    | Version (2)                                                           |
 * | 6   | 146  | Created … SpecialFeatureOptIns (not read)                             |
 * | 152 | 24   | PurposesConsent, bit `152 + p - 1` = purpose p                        |
 * | 176 | 37   | PurposesLITransparency, PurposeOneTreatment, PublisherCC (not read)   |
 * | 213 | 16   | MaxVendorId (vendor consent section)                                  |
 * | 229 | 1    | IsRangeEncoding                                                       |
 * | 230 | …    | bitfield of MaxVendorId bits (vendor v = bit `230 + v - 1`), or        |
 * |     |      | NumEntries (12) + entries { IsARange 1, Start 16, [End 16] }          |
 *
 * Everything the reader cannot read — a character outside base64url, a string that ends before
 * a field it needs, a version other than 2, a vendor range entry that starts at 0 or ends
 * before it starts — is no consent (fail closed).
 */

/** A TC string longer than this is not read (a cookie is at most 4096 bytes in browsers). */
export const MAX_TC_STRING_LENGTH = 8192;

/** TC string format version this reader understands (TCF v2.0–v2.3 all write version 2). */
const VERSION = 2;
const VERSION_BITS = 6;
const PURPOSES_CONSENT_OFFSET = 152;
const PURPOSES_CONSENT_BITS = 24;
const VENDOR_CONSENT_OFFSET = 213;
const MAX_VENDOR_ID_BITS = 16;
const NUM_ENTRIES_BITS = 12;
const VENDOR_ID_BITS = 16;

/** Base64url character code → its 6-bit value, or -1. */
const SEXTETS = (() => {
  const table = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
})();

/** What a TC string says about consent, read on demand from its core segment. */
export interface TcfConsent {
  /** Whether purpose `id` (1–24) has consent (legitimate interest does not count). */
  purposeConsent(id: number): boolean;
  /**
   * Whether vendor `id` has consent. Reads the vendor consent section each time it is asked,
   * in one pass without expanding ranges; false when that section is malformed or cut short.
   */
  vendorConsent(id: number): boolean;
}

/** Sequential reader over the bits of a base64url string's 6-bit values; -1 once a read goes past the end. */
class BitReader {
  private readonly length: number;

  constructor(
    private readonly sextets: Uint8Array,
    private position: number,
  ) {
    this.length = sextets.length * 6;
  }

  /** The next `count` (≤ 30) bits as an unsigned number, or -1 when they are not all there. */
  read(count: number): number {
    if (this.position + count > this.length) return -1;
    let value = 0;
    // Whole runs of bits from one character at a time: a 16-bit id is 3 or 4 steps.
    while (count > 0) {
      const used = this.position % 6;
      const take = Math.min(6 - used, count);
      const sextet = this.sextets[(this.position - used) / 6]!;
      value = value * (1 << take) + ((sextet >> (6 - used - take)) & ((1 << take) - 1));
      this.position += take;
      count -= take;
    }
    return value;
  }

  /** Moves past `count` bits; false when the string ends before them. */
  skip(count: number): boolean {
    if (this.position + count > this.length) return false;
    this.position += count;
    return true;
  }

  get offset(): number {
    return this.position;
  }
}

/** Bit `position` (0 = most significant bit of the first character; must be in range). */
function bitAt(sextets: Uint8Array, position: number): number {
  const used = position % 6;
  return (sextets[(position - used) / 6]! >> (5 - used)) & 1;
}

/**
 * Whether vendor `id` has consent in the vendor consent section of `core`. Linear in the
 * section's size: a range entry is compared, never expanded, and every entry up to NumEntries
 * (at most 4095, its 12 bits) must be readable before the answer counts.
 */
function vendorConsentIn(core: Uint8Array, id: number): boolean {
  if (!Number.isInteger(id) || id < 1) return false;
  const reader = new BitReader(core, VENDOR_CONSENT_OFFSET);
  const maxVendorId = reader.read(MAX_VENDOR_ID_BITS);
  const isRangeEncoding = reader.read(1);
  if (maxVendorId === -1 || isRangeEncoding === -1) return false;
  if (isRangeEncoding === 0) {
    // The whole bitfield must be there, as the library requires (no consent from half a field).
    const start = reader.offset;
    if (!reader.skip(maxVendorId)) return false;
    return id <= maxVendorId && bitAt(core, start + id - 1) === 1;
  }
  const numEntries = reader.read(NUM_ENTRIES_BITS);
  if (numEntries === -1) return false;
  let granted = false;
  for (let entry = 0; entry < numEntries; entry++) {
    const isARange = reader.read(1);
    const first = reader.read(VENDOR_ID_BITS);
    const last = isARange === 1 ? reader.read(VENDOR_ID_BITS) : first;
    if (isARange === -1 || first === -1 || last === -1) return false;
    // Vendor id 0 does not exist (the library throws on it); a range ending before it starts is
    // nothing a CMP writes (the library ignores it): both make the string unreadable.
    if (first === 0 || last < first) return false;
    if (first <= id && id <= last) granted = true;
  }
  return granted;
}

/**
 * The consent a TCF v2 TC string records, or null when it is not one this reader can use: too
 * long, not base64url, not version 2, or too short to hold the purpose consents. Only the core
 * segment (before the first `.`) is read; the others (disclosed vendors, publisher TC) say
 * nothing about the visitor's consent to vendors and purposes.
 */
export function readTcString(tcString: string): TcfConsent | null {
  if (tcString.length === 0 || tcString.length > MAX_TC_STRING_LENGTH) return null;
  const dot = tcString.indexOf(".");
  const length = dot === -1 ? tcString.length : dot;
  const core = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const code = tcString.charCodeAt(i);
    const sextet = code < 128 ? SEXTETS[code]! : -1;
    if (sextet === -1) return null;
    core[i] = sextet;
  }
  if (new BitReader(core, 0).read(VERSION_BITS) !== VERSION) return null;
  if (length * 6 < PURPOSES_CONSENT_OFFSET + PURPOSES_CONSENT_BITS) return null;
  return {
    purposeConsent: (id) =>
      Number.isInteger(id) &&
      id >= 1 &&
      id <= PURPOSES_CONSENT_BITS &&
      bitAt(core, PURPOSES_CONSENT_OFFSET + id - 1) === 1,
    vendorConsent: (id) => vendorConsentIn(core, id),
  };
}
