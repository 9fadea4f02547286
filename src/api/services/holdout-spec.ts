/**
 * The stored holdout setting of an environment (migrations/0016_holdouts.sql, docs/holdouts.md):
 * pure reading of the row's JSON, shared by the datafile build and the holdout service.
 */
import type { Datafile } from "../../core/datafile-types";
import { holdoutSharesOf } from "../../core/holdouts";
import type { EnvironmentRow } from "../store/rows";

/** The stored setting (migrations/0016_holdouts.sql). */
export interface HoldoutSpec {
  /** 0..5000: the holdout's traffic allocation end (1 basis point = 0.01 % of visitors). */
  basisPoints: number;
  metrics: string[];
  id: string;
  holdoutVariationId: string;
  everyoneElseVariationId: string;
  /**
   * Whether a share above 0 was ever set: a holdout at 0 % is then published concluded (SDK
   * events of older revisions still name it), and not at all when it never held anyone.
   */
  everHeld: boolean;
}

/** The holdout's key in the datafile (its `ruleKey` in an SDK's decision). */
export function holdoutKey(environmentKey: string): string {
  return `holdout_${environmentKey}`;
}

/**
 * The stored setting of an environment row, or null when never set. A stored value that is not
 * one (hand-edited D1) reads as never set rather than failing every publish.
 */
export function holdoutSpecOf(row: Pick<EnvironmentRow, "holdout">): HoldoutSpec | null {
  let value: unknown;
  try {
    value = JSON.parse(row.holdout ?? "{}");
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object") return null;
  const v = value as Record<string, unknown>;
  const bp = v.basisPoints;
  if (
    typeof bp !== "number" ||
    !Number.isInteger(bp) ||
    bp < 0 ||
    bp > 5000 ||
    typeof v.id !== "string" ||
    typeof v.holdoutVariationId !== "string" ||
    typeof v.everyoneElseVariationId !== "string" ||
    !Array.isArray(v.metrics) ||
    !v.metrics.every((m) => typeof m === "string") ||
    (v.everHeld !== undefined && typeof v.everHeld !== "boolean")
  )
    return null;
  return {
    basisPoints: bp,
    metrics: v.metrics as string[],
    id: v.id,
    holdoutVariationId: v.holdoutVariationId,
    everyoneElseVariationId: v.everyoneElseVariationId,
    // Settings stored before the flag existed: held when their share is above 0.
    everHeld: v.everHeld === true || bp > 0,
  };
}

/**
 * The share (basis points, 0..10000) of the environment's holdout that a datafile holds out: the
 * end of the held range of the holdout whose id is the setting's, 0 when the datafile has none
 * (never set, 0 %, or an older datafile a rollback re-published) or it is not running. Recorded
 * with every published revision, so results know which share decided each visitor's group.
 */
export function publishedHoldoutBasisPoints(
  datafile: Pick<Datafile, "holdouts">,
  spec: HoldoutSpec | null,
): number {
  if (spec === null) return 0;
  return holdoutSharesOf(datafile).get(spec.id) ?? 0;
}
