/**
 * Visitor → shard (src/events/shard-map.ts): jump consistent hash against the published test
 * vectors, an even spread, and the property the move command relies on — growing from n to m
 * shards moves a visitor only onto one of the new shards, about (m − n)/m of them.
 */
import { describe, expect, it } from "vitest";
import { jumpHash, shardOf, visitorKey } from "../../src/events/shard-map";

describe("jumpHash", () => {
  // Vectors of the reference implementation (Lamping & Veach 2014; github.com/dgryski/go-jump).
  it.each([
    [1n, 1, 0],
    [42n, 57, 43],
    [0xdead10ccn, 1, 0],
    [0xdead10ccn, 666, 361],
    [256n, 1024, 520],
  ])("jumpHash(%s, %i) = %i", (key, buckets, expected) => {
    expect(jumpHash(key, buckets)).toBe(expected);
  });

  it("uses the whole 64-bit key", () => {
    expect(jumpHash((1n << 64n) - 1n, 1000)).toBe(jumpHash(-1n, 1000));
    expect(visitorKey("sdk", "alice")).not.toBe(visitorKey("sdk", "bob"));
    expect(visitorKey("sdk", "alice")).toBeLessThan(1n << 64n);
  });
});

describe("shardOf", () => {
  const visitors = Array.from({ length: 20_000 }, (_, i) => `visitor-${i}`);

  it("spreads visitors evenly", () => {
    const counts = new Array<number>(16).fill(0);
    for (const v of visitors) counts[shardOf("sdk-a", v, 16)]!++;
    for (const n of counts) expect(Math.abs(n - 1250)).toBeLessThan(150);
  });

  it("depends on the sdkKey as well as the visitor", () => {
    const moved = visitors.filter((v) => shardOf("sdk-a", v, 8) !== shardOf("sdk-b", v, 8));
    expect(moved.length).toBeGreaterThan(visitors.length * 0.8);
  });

  it("is 0 for one shard (or none)", () => {
    expect(shardOf("sdk", "x", 1)).toBe(0);
    expect(shardOf("sdk", "x", 0)).toBe(0);
  });

  it.each([
    [4, 5],
    [8, 16],
    [16, 24],
  ])("growing %i → %i moves only onto new shards, about (m − n)/m of visitors", (n, m) => {
    let moved = 0;
    for (const v of visitors) {
      const before = shardOf("sdk-a", v, n);
      const after = shardOf("sdk-a", v, m);
      if (before !== after) {
        moved++;
        expect(after).toBeGreaterThanOrEqual(n);
      }
    }
    expect(Math.abs(moved / visitors.length - (m - n) / m)).toBeLessThan(0.02);
  });
});
