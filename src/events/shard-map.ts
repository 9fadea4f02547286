/**
 * Which visitor shard holds a visitor's state (docs/scaling.md "Visitor shards"): a 64-bit hash
 * of (sdkKey, visitorId) placed on `count` shards by jump consistent hash (Lamping & Veach 2014,
 * "A Fast, Minimal Memory, Consistent Hash Algorithm"). Pure: no Workers APIs.
 *
 * Why jump hash and not `hash mod count`: growing from n to m shards moves only the visitors whose
 * shard changes — (m − n)/m of them, each to one of the new shards — where `mod` would move almost
 * everyone. The resharding command moves exactly those (src/events/layout-move.ts).
 *
 * Every event of a visitor (impressions and conversions alike) goes to the same shard, because a
 * conversion is attributed against that visitor's exposures in every experiment (docs/events.md
 * "Attribution"): the shard's counting stays local.
 */
import { murmurhash3 } from "../core/murmurhash";

const MASK_64 = (1n << 64n) - 1n;
const JUMP_MULTIPLIER = 2862933555777941757n;

/** Most shards a layout may have (one D1 `shard_marks` row and one Durable Object each). */
export const MAX_SHARDS = 4096;

/**
 * Jump consistent hash: the bucket in [0, buckets) of a 64-bit `key`. Growing `buckets` by one
 * moves a key only into the new bucket, with probability 1 / (buckets + 1).
 */
export function jumpHash(key: bigint, buckets: number): number {
  let b = -1n;
  let j = 0n;
  let k = key & MASK_64;
  const n = BigInt(buckets);
  while (j < n) {
    b = j;
    k = (k * JUMP_MULTIPLIER + 1n) & MASK_64;
    j = BigInt(Math.floor(Number(b + 1n) * (2147483648 / Number((k >> 33n) + 1n))));
  }
  return Number(b);
}

/** 64-bit key of a visitor: two murmurhash3 words of `sdkKey \n visitorId`. */
export function visitorKey(sdkKey: string, visitorId: string): bigint {
  const text = `${sdkKey}\n${visitorId}`;
  const high = BigInt(murmurhash3(text, 0x5eed5) >>> 0);
  const low = BigInt(murmurhash3(text, 0x0ddba11) >>> 0);
  return (high << 32n) | low;
}

/** The shard, in [0, count), of a visitor of an sdkKey. */
export function shardOf(sdkKey: string, visitorId: string, count: number): number {
  return count <= 1 ? 0 : jumpHash(visitorKey(sdkKey, visitorId), count);
}

/** The Durable Object name of shard `index` (stable across layouts: growing adds names). */
export function shardName(index: number): string {
  return `visitor-shard-${index}`;
}
