/**
 * Holdouts (docs/holdouts.md): who is held out is the core's `PreparedVisitor.holdout` (the SDK's
 * getVariationForHoldout, src/core/decide.ts); this module names the two groups results compare.
 * A holdout Splitstream publishes has two variations: `holdout`, the only one in its traffic
 * allocation (the SDK holds a visitor out only when the bucket lands in a variation), and
 * `everyone_else`, in no range — never bucketed by any SDK, it is the id the edge records for a
 * visitor the holdout does not hold out, so results count both groups as two arms of one
 * "experiment" whose id is the holdout's.
 */
import type { CompiledDatafile, CompiledExperiment } from "./compile";
import type { Datafile } from "./datafile-types";
import { bucketFromHash, type PreparedVisitor } from "./decide";

/** The key of a published holdout's variation that holds visitors out. */
export const HOLDOUT_VARIATION_KEY = "holdout";
/** The key of a published holdout's variation that names everyone not held out (never bucketed). */
export const EVERYONE_ELSE_VARIATION_KEY = "everyone_else";

/** The group of one visitor in one holdout: the holdout's id and the variation id to record. */
export interface HoldoutArm {
  holdoutId: string;
  variationId: string;
  held: boolean;
}

/**
 * The group of `prepared` in each running holdout that could hold it out (audience matched),
 * in datafile order: held out by the first holdout whose bucket gives a variation (no arm for
 * the later ones, which the SDK never evaluates for it); otherwise "everyone else" in every
 * holdout that has an `everyone_else` variation. Invalid or unbucketable visitors get none.
 */
export function holdoutArms(compiled: CompiledDatafile, prepared: PreparedVisitor): HoldoutArm[] {
  if (compiled.holdouts.length === 0 || !prepared.valid) return [];
  const hit = prepared.holdout;
  if (hit === "unbucketable") return [];
  if (hit !== null)
    return [{ holdoutId: hit.holdout.id, variationId: hit.variation.id, held: true }];
  const out: HoldoutArm[] = [];
  for (const holdout of compiled.holdouts) {
    if (!holdout.running || !holdout.inAudience(prepared.context)) continue;
    const rest = everyoneElseOf(holdout);
    if (rest !== undefined) out.push({ holdoutId: holdout.id, variationId: rest, held: false });
  }
  return out;
}

/** The id of a holdout's `everyone_else` variation, when it has one outside its allocation. */
export function everyoneElseOf(holdout: CompiledExperiment): string | undefined {
  const rest = holdout.variationByKey.get(EVERYONE_ELSE_VARIATION_KEY);
  if (rest === undefined || holdout.allocation.entities.includes(rest)) return undefined;
  return rest.id;
}

/** How many of the 10,000 buckets each running holdout holds out: holdout id → end of its range. */
export type HoldoutShares = ReadonlyMap<string, number>;

/**
 * The shares of a datafile's running holdouts (holdout id → the end of the range that holds a
 * visitor out, 0..10000), as a publish records them with each revision (docs/holdouts.md "Share
 * changes"): an SDK decides with the revision it has, so membership from its events is
 * recomputed at that revision's shares.
 */
export function holdoutSharesOf(datafile: Pick<Datafile, "holdouts">): Map<string, number> {
  const shares = new Map<string, number>();
  if (!Array.isArray(datafile.holdouts)) return shares;
  for (const holdout of datafile.holdouts) {
    if (holdout.status !== "Running" || shares.has(holdout.id)) continue;
    let end = 0;
    for (const entry of holdout.trafficAllocation)
      if (entry.entityId !== "" && Number.isInteger(entry.endOfRange))
        end = Math.max(end, Math.min(entry.endOfRange, 10000));
    shares.set(holdout.id, end);
  }
  return shares;
}

/**
 * {@link holdoutArms} with each holdout's share as an older revision had it (`shares`, from
 * {@link holdoutSharesOf} of that revision): held when the bucket of bucketingId + holdout id is
 * below the share. A holdout missing from `shares` held nobody then and gives no arm; one in
 * `shares` gives its arm whatever its status now. The holdout ids, the bucketing key, never
 * change, so only the share can differ.
 */
export function holdoutArmsAt(
  compiled: CompiledDatafile,
  prepared: PreparedVisitor,
  shares: HoldoutShares,
): HoldoutArm[] {
  if (compiled.holdouts.length === 0 || !prepared.valid) return [];
  const out: HoldoutArm[] = [];
  for (const holdout of compiled.holdouts) {
    // `shares` names the holdouts running at that revision: one no longer running now (set to
    // 0 since, and published as concluded) still held visitors then.
    const share = shares.get(holdout.id);
    if (share === undefined || !holdout.inAudience(prepared.context)) continue;
    if (!prepared.bucketable) return [];
    const bucket = bucketFromHash(prepared.bucketingPrefix.hashWith(holdout.idBytes));
    if (bucket < share) {
      const held =
        holdout.variationByKey.get(HOLDOUT_VARIATION_KEY) ??
        holdout.allocation.entities.find((v) => v !== null);
      if (held) return [{ holdoutId: holdout.id, variationId: held.id, held: true }];
    }
    const rest = everyoneElseOf(holdout);
    if (rest !== undefined) out.push({ holdoutId: holdout.id, variationId: rest, held: false });
  }
  return out;
}
