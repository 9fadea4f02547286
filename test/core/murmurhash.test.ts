import murmurhash from "murmurhash";
import { describe, expect, it } from "vitest";
import { bucketFromHash } from "../../src/core/decide";
import { encodeUtf8, HashPrefix, murmurhash3 } from "../../src/core/murmurhash";
import vectors from "../fixtures/bucketing-vectors.json";

describe("murmurhash3 x86_32", () => {
  it.each(vectors.hashes)("hash of $input with seed $seed is $hash", ({ input, seed, hash }) => {
    expect(murmurhash3(input, seed)).toBe(hash);
  });

  it.each(vectors.buckets)(
    "bucket of $bucketingId + $entityId is $bucket ($source)",
    ({ bucketingId, entityId, bucket }) => {
      expect(bucketFromHash(murmurhash3(bucketingId + entityId, 1))).toBe(bucket);
      // The prefix form hashes the bucketing id once and finishes with the entity id.
      expect(
        bucketFromHash(
          HashPrefix.fromBytes(encodeUtf8(bucketingId), 1).hashWith(encodeUtf8(entityId)),
        ),
      ).toBe(bucket);
    },
  );

  // Strings the SDK's own murmurhash dependency must agree on: every prefix/suffix split, every
  // tail length, multi-byte UTF-8, astral characters and lone surrogates (TextEncoder → U+FFFD).
  const samples = [
    "",
    "x",
    "visitor-123",
    "ünïcödé",
    "日本語のユーザー",
    "emoji 🎉🚀",
    "e\u0301",
    "lone \ud800 high",
    "lone \udc00 low",
    "\ud83d",
    "a".repeat(1000),
  ];
  it.each(samples.flatMap((s) => samples.map((t) => [s, t] as const)))(
    "prefix %j + suffix %j equals the SDK's murmurhash.v3 of the concatenation",
    (prefix, suffix) => {
      const expected = murmurhash.v3(prefix + suffix, 1);
      expect(murmurhash3(prefix + suffix, 1)).toBe(expected);
      expect(HashPrefix.fromBytes(encodeUtf8(prefix), 1).hashWith(encodeUtf8(suffix))).toBe(
        expected,
      );
    },
  );

  it("encodes UTF-8 exactly like TextEncoder", () => {
    for (const s of samples)
      expect(Array.from(encodeUtf8(s))).toEqual(Array.from(new TextEncoder().encode(s)));
  });
});

describe("HashPrefix.fromString", () => {
  it.each([
    "",
    "a",
    "ab",
    "abc",
    "abcd",
    "abcde",
    "visitor-123",
    "ünï",
    "aaaé",
    "aaaaé",
    "日本",
    "\ud800x",
    "emoji 🎉",
  ])("equals the byte form for %j", (s) => {
    const suffix = encodeUtf8("1886780721");
    expect(HashPrefix.fromString(s, 1).hashWith(suffix)).toBe(
      HashPrefix.fromBytes(encodeUtf8(s), 1).hashWith(suffix),
    );
  });
});
