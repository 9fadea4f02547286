/**
 * Experiment decisions, identical to the official Optimizely JS SDK's
 * `getVariation(experimentKey, userId, attributes)` (docs/decisions.md), plus Splitstream's preview
 * and sticky inputs. Deciding never throws: every outcome is a Decision with a reason from
 * DECISION_REASONS. The numbered steps below are the ones in docs/decisions.md.
 */
import type {
  CompiledAllocation,
  CompiledDatafile,
  CompiledExperiment,
  CompiledVariation,
} from "./compile";
import { isOrdinaryAttributes, type EvalContext } from "./conditions";
import { HashPrefix } from "./murmurhash";

/** Every reason a decision can carry. */
export const DECISION_REASONS = [
  /** No experiment with that key (or it is a rollout's delivery rule). */
  "experiment_not_found",
  /** The visitor id or attributes are invalid (the SDK returns null for these too). */
  "invalid_visitor",
  /** A signed preview link forced this variation (works for experiments not yet running). */
  "preview",
  /** Status is not `Running`. */
  "not_running",
  /** The experiment's `forcedVariations` whitelist names this visitor. */
  "forced_variation",
  /** The visitor keeps the variation recorded earlier (ss_dec / user profile). */
  "sticky",
  /** The visitor is not in the experiment's audiences. */
  "audience_mismatch",
  /** A mutually exclusive group put the visitor in another experiment, or in none. */
  "excluded_by_group",
  /**
   * The visitor is in the environment's holdout (docs/holdouts.md): kept out of every experiment.
   * (The SDK's getVariation/activate ignore holdouts; its decide() applies them to flags.)
   */
  "holdout",
  /** The visitor's bucket falls outside the traffic allocation (holdback or a hole). */
  "outside_traffic",
  /** A contextual-bandit (CMAB) experiment: it needs Optimizely's CMAB service; the SDK's getVariation returns null too. */
  "unsupported",
  /** Bucketed into a variation by hashing. */
  "bucketed",
] as const;

export type DecisionReason = (typeof DECISION_REASONS)[number];

export interface Decision {
  experimentId: string | null;
  experimentKey: string;
  variationId: string | null;
  variationKey: string | null;
  reason: DecisionReason;
  /** The visitor's bucket (0..9999) in the experiment, when hashing got that far. */
  bucket: number | null;
}

/** Who is being decided for. */
export interface Visitor {
  visitorId: string;
  attributes?: Readonly<Record<string, unknown>>;
  /** Previous decisions: experiment id → variation id (the `ss_dec` cookie). */
  sticky?: Readonly<Record<string, string>>;
  /** Preview overrides: experiment id → variation id (signed `ss_preview`). */
  preview?: Readonly<Record<string, string>>;
}

/** A visitor with its per-request work done once: the bucketing-id hash prefix and eval context. */
export interface PreparedVisitor {
  readonly visitorId: string;
  readonly valid: boolean;
  readonly context: EvalContext;
  readonly bucketingPrefix: HashPrefix;
  /**
   * False when the attributes have an own property named "hasOwnProperty": the SDK's
   * getBucketingId then calls `attributes.hasOwnProperty(...)`, which throws, and getVariation
   * returns null for every visitor that gets as far as bucketing (steps 7–8).
   */
  readonly bucketable: boolean;
  readonly sticky: Readonly<Record<string, string>> | undefined;
  readonly preview: Readonly<Record<string, string>> | undefined;
  /**
   * The SDK's sticky map from the `$opt_experiment_bucket_map` attribute
   * (experiment id → {variation_id}); its variation ids resolve project-wide, like the SDK.
   */
  readonly bucketMap: Readonly<Record<string, unknown>> | null;
  readonly allVariations: ReadonlyMap<string, CompiledVariation>;
  /**
   * The global holdout that holds this visitor out, and its variation (docs/holdouts.md); null
   * when none does; "unbucketable" when a holdout's audience matched but the SDK's bucketing would
   * throw (an own "hasOwnProperty" attribute). Computed on first use.
   */
  readonly holdout: HoldoutHit | null | "unbucketable";
}

/** A visitor held out: the holdout (compiled as an experiment) and the variation it bucketed into. */
export interface HoldoutHit {
  readonly holdout: CompiledExperiment;
  readonly variation: CompiledVariation;
  /** The holdout's `excludeTargetedDeliveries`: flags' delivery rules still apply. */
  readonly excludeTargetedDeliveries: boolean;
}

const HASH_SEED = 1;
const MAX_HASH_VALUE = 4294967296; // 2^32
const MAX_TRAFFIC_VALUE = 10000;
const BUCKETING_ID_ATTRIBUTE = "$opt_bucketing_id";
const BUCKET_MAP_ATTRIBUTE = "$opt_experiment_bucket_map";
const EMPTY_ATTRIBUTES: Readonly<Record<string, unknown>> = Object.freeze({});
const hasOwn = Object.prototype.hasOwnProperty;

/** floor(hash × 10000 / 2^32), computed with the SDK's exact float operations. */
export function bucketFromHash(hash: number): number {
  return Math.floor((hash / MAX_HASH_VALUE) * MAX_TRAFFIC_VALUE);
}

/** The first allocation entry whose endOfRange exceeds the bucket; undefined when none does. */
export function findBucket<T>(
  bucket: number,
  allocation: CompiledAllocation<T>,
): T | null | undefined {
  const ends = allocation.ends;
  for (let i = 0; i < ends.length; i++) {
    if (bucket < ends[i]!) return allocation.entities[i];
  }
  return undefined;
}

function isValidVisitor(visitor: Visitor): boolean {
  if (visitor === null || typeof visitor !== "object") return false;
  // The SDK rejects non-string ids and, literally, the string "undefined".
  if (typeof visitor.visitorId !== "string" || visitor.visitorId === "undefined") return false;
  const attributes = visitor.attributes;
  // The SDK validates attributes only when truthy: null (like undefined, 0, "", false) means none.
  if (!attributes) return true;
  if (typeof attributes !== "object" || Array.isArray(attributes)) return false;
  for (const key in attributes) {
    // Cheap test first: an own-property check only for the rare undefined value.
    if (attributes[key] === undefined && hasOwn.call(attributes, key)) return false;
  }
  return true;
}

function asStringMap(value: unknown): Readonly<Record<string, string>> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, string>)
    : undefined;
}

// Strings are immutable, so the last bucketing id's hash prefix can be reused safely: callers
// deciding experiment after experiment for one visitor (getVariation style) hash it once.
let lastBucketingId: string | null = null;
let lastPrefix: HashPrefix | null = null;

function prefixFor(bucketingId: string): HashPrefix {
  if (bucketingId === lastBucketingId && lastPrefix !== null) return lastPrefix;
  const prefix = HashPrefix.fromString(bucketingId, HASH_SEED);
  lastBucketingId = bucketingId;
  lastPrefix = prefix;
  return prefix;
}

/**
 * The prepared visitor. The bucketing-id hash prefix is computed on first use: most decisions
 * stop at the status or audience check and never need it.
 */
class Prepared implements PreparedVisitor {
  private prefix: HashPrefix | null = null;
  private holdoutDone = false;
  private holdoutHit: HoldoutHit | null | "unbucketable" = null;

  constructor(
    readonly visitorId: string,
    readonly valid: boolean,
    readonly context: EvalContext,
    private readonly bucketingId: string,
    readonly bucketable: boolean,
    readonly sticky: Readonly<Record<string, string>> | undefined,
    readonly preview: Readonly<Record<string, string>> | undefined,
    readonly bucketMap: Readonly<Record<string, unknown>> | null,
    readonly allVariations: ReadonlyMap<string, CompiledVariation>,
    private readonly holdouts: readonly CompiledExperiment[],
  ) {}

  get bucketingPrefix(): HashPrefix {
    return (this.prefix ??= prefixFor(this.bucketingId));
  }

  get holdout(): HoldoutHit | null | "unbucketable" {
    if (!this.holdoutDone) {
      this.holdoutDone = true;
      this.holdoutHit = this.holdouts.length === 0 ? null : findHoldout(this.holdouts, this);
    }
    return this.holdoutHit;
  }
}

/**
 * The SDK's getVariationForHoldout for each global holdout in order (docs/holdouts.md): status
 * `Running`, then its audiences, then the bucket of bucketingId + holdout id in its traffic
 * allocation; the first holdout with a variation holds the visitor out.
 */
function findHoldout(
  holdouts: readonly CompiledExperiment[],
  visitor: PreparedVisitor,
): HoldoutHit | null | "unbucketable" {
  if (!visitor.valid) return null;
  for (const holdout of holdouts) {
    if (!holdout.running || !holdout.inAudience(visitor.context)) continue;
    if (!visitor.bucketable) return "unbucketable";
    const bucket = bucketFromHash(visitor.bucketingPrefix.hashWith(holdout.idBytes));
    const variation = findBucket(bucket, holdout.allocation);
    if (variation) {
      const raw = holdout.raw as { excludeTargetedDeliveries?: unknown };
      return {
        holdout,
        variation,
        excludeTargetedDeliveries: raw.excludeTargetedDeliveries === true,
      };
    }
  }
  return null;
}

/** Does the per-visitor work once so deciding many experiments is cheap. Never throws. */
export function prepareVisitor(compiled: CompiledDatafile, visitor: Visitor): PreparedVisitor {
  const valid = isValidVisitor(visitor);
  const attributes = valid && visitor.attributes ? visitor.attributes : EMPTY_ATTRIBUTES;
  const candidate = attributes[BUCKETING_ID_ATTRIBUTE];
  const bucketingId =
    typeof candidate === "string" && hasOwn.call(attributes, BUCKETING_ID_ATTRIBUTE)
      ? candidate
      : valid
        ? visitor.visitorId
        : "";
  // As the SDK: `attributes[KEY] || {}` merged with Object.assign (own enumerable properties).
  const rawBucketMap = attributes[BUCKET_MAP_ATTRIBUTE];
  return new Prepared(
    valid ? visitor.visitorId : "",
    valid,
    { attributes, lists: compiled.lists, ordinary: isOrdinaryAttributes(attributes) },
    bucketingId,
    !hasOwn.call(attributes, "hasOwnProperty"),
    valid ? asStringMap(visitor.sticky) : undefined,
    valid ? asStringMap(visitor.preview) : undefined,
    rawBucketMap ? (Object.assign({}, rawBucketMap) as Record<string, unknown>) : null,
    compiled.variationById,
    compiled.holdouts,
  );
}

function decision(
  experiment: CompiledExperiment,
  variation: CompiledVariation | null,
  reason: DecisionReason,
  bucket: number | null = null,
): Decision {
  return {
    experimentId: experiment.id,
    experimentKey: experiment.key,
    variationId: variation?.id ?? null,
    variationKey: variation?.key ?? null,
    reason,
    bucket,
  };
}

/** Only the variation of an outcome (see {@link decideVariations}). */
function pickVariation(
  _experiment: CompiledExperiment,
  variation: CompiledVariation | null,
): CompiledVariation | null {
  return variation;
}

/**
 * The decision procedure, once for every caller: `outcome` turns where it ends (the variation,
 * the reason, the bucket) into what the caller wants — a {@link Decision}, or just the variation.
 * Steps:
 * 1. invalid visitor → invalid_visitor
 * 2. preview override naming a variation of the experiment → preview
 * 3. status not Running → not_running
 * 3b. a global holdout holds the visitor out → holdout (Splitstream's; the SDK's getVariation
 *    ignores holdouts, docs/holdouts.md)
 * 4. forcedVariations whitelist → forced_variation
 * 5. sticky: the `$opt_experiment_bucket_map` attribute entry for the experiment (as the SDK's
 *    user profile; its variation id resolves project-wide), else the `sticky` input naming a
 *    variation of this experiment → sticky
 * 6. audiences (audienceConditions, else audienceIds) → audience_mismatch
 * 6b. a CMAB experiment → unsupported
 * 7. random group: bucket on bucketingId+groupId; another experiment or none → excluded_by_group
 * 8. bucket on bucketingId+experimentId; hole or beyond the ranges → outside_traffic
 * 9. → bucketed
 */
function decideWith<T>(
  experiment: CompiledExperiment,
  visitor: PreparedVisitor,
  outcome: (
    experiment: CompiledExperiment,
    variation: CompiledVariation | null,
    reason: DecisionReason,
    bucket?: number | null,
  ) => T,
): T {
  // 1
  if (!visitor.valid) return outcome(experiment, null, "invalid_visitor");
  // 2
  const previewId =
    visitor.preview && hasOwn.call(visitor.preview, experiment.id)
      ? visitor.preview[experiment.id]
      : undefined;
  if (typeof previewId === "string") {
    const previewed = experiment.variationById.get(previewId);
    if (previewed) return outcome(experiment, previewed, "preview");
  }
  // 3
  if (!experiment.running) return outcome(experiment, null, "not_running");
  // 3b (after the status, so a paused experiment still explains itself as not running)
  const held = visitor.holdout;
  if (held !== null && held !== "unbucketable") return outcome(experiment, null, "holdout");
  // 4
  if (experiment.forced.size > 0) {
    const forced = experiment.forced.get(visitor.visitorId);
    if (forced) return outcome(experiment, forced, "forced_variation");
  }
  // 5
  if (visitor.bucketMap !== null && hasOwn.call(visitor.bucketMap, experiment.id)) {
    const entry = visitor.bucketMap[experiment.id];
    // The SDK reads entry.variation_id unguarded: a null entry throws and getVariation gives null.
    if (entry === null || entry === undefined) return outcome(experiment, null, "invalid_visitor");
    const kept = visitor.allVariations.get(
      String((entry as { variation_id?: unknown }).variation_id),
    );
    if (kept) return outcome(experiment, kept, "sticky");
  } else {
    const stickyId =
      visitor.sticky && hasOwn.call(visitor.sticky, experiment.id)
        ? visitor.sticky[experiment.id]
        : undefined;
    if (typeof stickyId === "string") {
      const kept = experiment.variationById.get(stickyId);
      if (kept) return outcome(experiment, kept, "sticky");
    }
  }
  // 6
  if (!experiment.inAudience(visitor.context))
    return outcome(experiment, null, "audience_mismatch");
  // 6b
  if (experiment.cmab) return outcome(experiment, null, "unsupported");
  // 7 (the SDK fails here, after the audience check, for an own "hasOwnProperty" attribute)
  if (!visitor.bucketable) return outcome(experiment, null, "invalid_visitor");
  const group = experiment.group;
  if (group !== null && group.random) {
    const groupBucket = bucketFromHash(visitor.bucketingPrefix.hashWith(group.idBytes));
    if (findBucket(groupBucket, group.allocation) !== experiment.id) {
      return outcome(experiment, null, "excluded_by_group");
    }
  }
  // 8
  const bucket = bucketFromHash(visitor.bucketingPrefix.hashWith(experiment.idBytes));
  const variation = findBucket(bucket, experiment.allocation);
  if (!variation) return outcome(experiment, null, "outside_traffic", bucket);
  // 9
  return outcome(experiment, variation, "bucketed", bucket);
}

/**
 * Decides one compiled experiment for a prepared visitor, with the reason and bucket (the steps
 * are {@link decideWith}'s).
 */
export function decidePrepared(experiment: CompiledExperiment, visitor: PreparedVisitor): Decision {
  return decideWith(experiment, visitor, decision);
}

/** Decides one experiment by key, like the SDK's getVariation. Never throws. */
export function decideExperiment(
  compiled: CompiledDatafile,
  experimentKey: string,
  visitor: Visitor,
): Decision {
  const experiment = compiled.experimentByKey.get(experimentKey);
  if (!experiment) {
    return {
      experimentId: null,
      experimentKey,
      variationId: null,
      variationKey: null,
      reason: "experiment_not_found",
      bucket: null,
    };
  }
  return decidePrepared(experiment, prepareVisitor(compiled, visitor));
}

/** Decides every experiment of the datafile (grouped ones included), in datafile order. */
export function decideAll(compiled: CompiledDatafile, visitor: Visitor): Decision[] {
  const prepared = prepareVisitor(compiled, visitor);
  const out = new Array<Decision>(compiled.experiments.length);
  for (let i = 0; i < compiled.experiments.length; i++)
    out[i] = decidePrepared(compiled.experiments[i]!, prepared);
  return out;
}

/**
 * The variations of {@link decideAll}'s decisions (null where a decision has none), written into
 * `out` (index i for `compiled.experiments[i]`), without building a Decision per experiment: for
 * batches of many visitors, where only the variation is wanted and the allocations would cost
 * more than the deciding (the CLI's `decide --input`, docs/benchmarks.md `cli-decide`).
 */
export function decideVariations(
  compiled: CompiledDatafile,
  visitor: Visitor,
  out: Array<CompiledVariation | null>,
): void {
  const prepared = prepareVisitor(compiled, visitor);
  const experiments = compiled.experiments;
  for (let i = 0; i < experiments.length; i++)
    out[i] = decideWith(experiments[i]!, prepared, pickVariation);
}
