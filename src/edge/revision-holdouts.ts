/**
 * The holdout shares of an older datafile revision (docs/holdouts.md "Share changes"): an official
 * SDK decides with the datafile it has, and its events carry that revision, so SDK ingest
 * recomputes a visitor's holdout group at that revision's shares, not the current ones. A publish
 * records them in the metadata of the KV key `datafiles/{sdkKey}/{revision}`
 * (src/api/services/publish.ts); reading the metadata is one KV read per isolate and revision,
 * kept here for a few minutes (a publish that fails in D1 after writing KV releases its number,
 * and the next one writes that key again). Only revisions older than the current one are asked
 * for (src/events/ingest-sdk.ts). Never throws.
 */
import { datafileKey } from "./datafile-store";
import { parseRevisionNumber } from "../shared/revision-number";

/** What the KV binding must offer (the DATAFILES namespace). */
export interface RevisionHoldoutsEnv {
  DATAFILES: KVNamespace;
}

/** Revisions remembered per isolate (oldest dropped first). */
const MAX_CACHED = 256;
/** How long an answer is kept before KV is asked again. */
const KNOWN_TTL_MS = 10 * 60_000;
/** How long "no shares recorded" (or a read that failed) is believed before KV is asked again. */
const UNKNOWN_TTL_MS = 60_000;

const cache = new Map<string, { shares: ReadonlyMap<string, number> | null; at: number }>();

/** Counts of KV reads made (tests, diagnostics). */
export const revisionHoldoutCounters = { kvReads: 0 };

/**
 * The running holdouts' shares (holdout id → end of the held range) of `revision` of `sdkKey`, or
 * null when unknown: not a revision this API published (not a positive integer, not in KV), or
 * published before shares were recorded. Callers then use the current datafile's shares.
 */
export async function readRevisionHoldoutShares(
  env: RevisionHoldoutsEnv,
  sdkKey: string,
  revision: string,
): Promise<ReadonlyMap<string, number> | null> {
  if (parseRevisionNumber(revision) === null) return null;
  const key = `${datafileKey(sdkKey)}/${revision}`;
  const now = Date.now();
  const hit = cache.get(key);
  if (hit !== undefined && now - hit.at < (hit.shares !== null ? KNOWN_TTL_MS : UNKNOWN_TTL_MS)) {
    // Most recently used last, so the oldest-first eviction drops what is not asked for.
    cache.delete(key);
    cache.set(key, hit);
    return hit.shares;
  }
  let shares: ReadonlyMap<string, number> | null = null;
  try {
    revisionHoldoutCounters.kvReads++;
    const { value, metadata } = await env.DATAFILES.getWithMetadata<{ holdoutShares?: unknown }>(
      key,
      "stream",
    );
    if (value !== null) await value.cancel();
    shares = parseShares(metadata?.holdoutShares);
  } catch (error) {
    console.error(`splitstream: could not read the metadata of ${key}`, error);
  }
  cache.delete(key);
  cache.set(key, { shares, at: now });
  if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return shares;
}

/** `{holdoutId: end}` with integer ends in 0..10000, or null when it is not one. */
function parseShares(value: unknown): ReadonlyMap<string, number> | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const shares = new Map<string, number>();
  for (const [id, end] of Object.entries(value)) {
    if (typeof end !== "number" || !Number.isInteger(end) || end < 0 || end > 10000) return null;
    shares.set(id, end);
  }
  return shares;
}

/** Forgets every remembered revision (tests). */
export function resetRevisionHoldouts(): void {
  cache.clear();
  revisionHoldoutCounters.kvReads = 0;
}
