/**
 * MurmurHash3 x86 32-bit over UTF-8 bytes, as the official Optimizely SDKs use for bucketing
 * (docs/decisions.md). Two entry points:
 * - `murmurhash3(string, seed)` — one-shot hash of a string's UTF-8 bytes;
 * - `HashPrefix` — hash a shared prefix (the bucketing id) once, then finish it with many
 *   suffixes (experiment ids) without re-hashing the prefix. Decisions for a page hash the
 *   same visitor against every experiment, so this halves the work per experiment.
 */

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function isAscii(input: string): boolean {
  for (let i = 0; i < input.length; i++) if (input.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Encodes a string as UTF-8 exactly like TextEncoder (lone surrogates become U+FFFD). */
export function encodeUtf8(input: string): Uint8Array {
  // ASCII fast path: most visitor ids and all numeric experiment ids.
  if (isAscii(input)) {
    const out = new Uint8Array(input.length);
    for (let i = 0; i < input.length; i++) out[i] = input.charCodeAt(i);
    return out;
  }
  return textEncoder.encode(input);
}

const textEncoder = new TextEncoder();

function mixBlock(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, tail: number, tailLength: number, totalLength: number): number {
  if (tailLength > 0) {
    let k = Math.imul(tail, C1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, C2);
    h ^= k;
  }
  h ^= totalLength;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A MurmurHash3 state after consuming a prefix: full 4-byte blocks folded into `h`, the 0–3
 * leftover bytes kept in `tail`. Immutable; `hashWith` finishes a copy with a suffix.
 */
export class HashPrefix {
  private constructor(
    private readonly h: number,
    private readonly tail: number,
    private readonly tailLength: number,
    private readonly length: number,
  ) {}

  /** The state after the prefix's UTF-8 bytes. */
  static fromBytes(prefix: Uint8Array, seed: number): HashPrefix {
    let h = seed | 0;
    const n = prefix.length;
    const blocks = n & ~3;
    for (let i = 0; i < blocks; i += 4) {
      h = mixBlock(
        h,
        prefix[i]! | (prefix[i + 1]! << 8) | (prefix[i + 2]! << 16) | (prefix[i + 3]! << 24),
      );
    }
    let tail = 0;
    for (let j = 0; j < (n & 3); j++) tail |= prefix[blocks + j]! << (8 * j);
    return new HashPrefix(h, tail, n & 3, n);
  }

  /**
   * The state after a string's UTF-8 bytes. ASCII strings (visitor ids, in practice) are hashed
   * straight from their char codes, without allocating a byte array; others are encoded first.
   */
  static fromString(prefix: string, seed: number): HashPrefix {
    let h = seed | 0;
    const n = prefix.length;
    const blocks = n & ~3;
    for (let i = 0; i < blocks; i += 4) {
      const a = prefix.charCodeAt(i);
      const b = prefix.charCodeAt(i + 1);
      const c = prefix.charCodeAt(i + 2);
      const d = prefix.charCodeAt(i + 3);
      if ((a | b | c | d) > 0x7f) return HashPrefix.fromBytes(textEncoder.encode(prefix), seed);
      h = mixBlock(h, a | (b << 8) | (c << 16) | (d << 24));
    }
    let tail = 0;
    for (let j = 0; j < (n & 3); j++) {
      const code = prefix.charCodeAt(blocks + j);
      if (code > 0x7f) return HashPrefix.fromBytes(textEncoder.encode(prefix), seed);
      tail |= code << (8 * j);
    }
    return new HashPrefix(h, tail, n & 3, n);
  }

  /** The unsigned 32-bit hash of prefix ‖ suffix. */
  hashWith(suffix: Uint8Array): number {
    let h = this.h;
    let word = this.tail;
    let filled = this.tailLength;
    for (let i = 0; i < suffix.length; i++) {
      word |= suffix[i]! << (8 * filled);
      if (++filled === 4) {
        h = mixBlock(h, word);
        word = 0;
        filled = 0;
      }
    }
    return finish(h, word, filled, this.length + suffix.length);
  }
}

const EMPTY = new Uint8Array(0);

/** MurmurHash3 x86_32 of the UTF-8 bytes of `input`, as an unsigned 32-bit integer. */
export function murmurhash3(input: string, seed: number): number {
  return HashPrefix.fromString(input, seed).hashWith(EMPTY);
}
