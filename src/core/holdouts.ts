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
import type { PreparedVisitor } from "./decide";

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
