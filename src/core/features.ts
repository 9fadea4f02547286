/**
 * Feature flag decisions as the Optimizely SDK's `decide(flagKey)` (docs/decisions.md, "Feature
 * flags"): experiment rules first, then the rollout's delivery rules, where a visitor who matches a
 * rule's audience but falls outside its traffic jumps straight to the last rule ("Everyone Else").
 * Typed variables come from the chosen variation when the feature is enabled, else from the flag's
 * defaults. Parity with the SDK is tested in test/core/flag-parity.test.ts.
 */
import type {
  CompiledDatafile,
  CompiledExperiment,
  CompiledFeatureFlag,
  CompiledVariation,
} from "./compile";
import type { VariableDef } from "./datafile-types";
import {
  bucketFromHash,
  decidePrepared,
  findBucket,
  prepareVisitor,
  type PreparedVisitor,
  type Visitor,
} from "./decide";

/** Every reason a flag decision can carry (docs/decisions.md, "Feature flags"). */
export const FLAG_REASONS = [
  /** No flag with that key: no variables either (the SDK's error decision). */
  "flag_not_found",
  /**
   * The visitor id or attributes are invalid, or the SDK's decide would throw for this visitor
   * and flag: off, with default variable values.
   */
  "invalid_visitor",
  /**
   * The visitor is in a global holdout (docs/holdouts.md): the holdout's variation (`ruleKey` is
   * the holdout's key), before any rule, as the SDK's decide().
   */
  "holdout",
  /** Decided by one of the flag's experiment rules (`ruleKey`). */
  "experiment_rule",
  /** Decided by a delivery rule of the flag's rollout. */
  "delivery_rule",
  /** No rule applied: the flag is off with default variable values. */
  "no_rule_matched",
] as const;
export type FlagReason = (typeof FLAG_REASONS)[number];

export type VariableValue = boolean | number | string | Record<string, unknown> | unknown[] | null;

export interface FlagDecision {
  flagKey: string;
  enabled: boolean;
  variationKey: string | null;
  ruleKey: string | null;
  reason: FlagReason;
  variables: Record<string, VariableValue>;
  /**
   * The A/B rule (an experiment of the datafile) and variation ids when an experiment rule decided
   * (reason `experiment_rule`): what an impression of this decision names. Null otherwise.
   */
  experimentId: string | null;
  variationId: string | null;
}

/** Options of {@link decideFlag} and {@link decideAllFlags}. */
export interface DecideFlagOptions {
  /**
   * False: skip the flag's A/B rules (experiment rules) and decide by its delivery rules only —
   * for visitors who must not take part in tests (bots, opted out), while releases still reach
   * them. Default true (the SDK's `decide()`).
   */
  experimentRules?: boolean;
}

/** Converts a variable's string value to its type; invalid values give null (the SDK's behaviour). */
export function castVariable(variable: VariableDef, raw: string): VariableValue {
  switch (variable.type) {
    case "boolean":
      return raw === "true" ? true : raw === "false" ? false : null;
    case "integer": {
      const n = Number.parseInt(raw, 10);
      return Number.isNaN(n) ? null : n;
    }
    case "double": {
      const n = Number.parseFloat(raw);
      return Number.isNaN(n) ? null : n;
    }
    case "json":
      try {
        return JSON.parse(raw) as VariableValue;
      } catch {
        return null;
      }
    default:
      return raw;
  }
}

/**
 * The variables of a flag decided to `variation` (null: no variation), by key, cast to their
 * types: the variation's own values when it is `featureEnabled`, the flag's defaults for the
 * variables it leaves out and for every variable when it is not enabled (as the SDK's decide).
 */
export function flagVariables(
  flag: CompiledFeatureFlag,
  variation: CompiledVariation | null,
): Record<string, VariableValue> {
  const out: Record<string, VariableValue> = {};
  for (const variable of flag.variables) {
    // A variable keyed "__proto__" is no variable the SDK returns either (its assignment sets the
    // object's prototype instead): left out, so no decision's object inherits datafile content.
    if (variable.key === "__proto__") continue;
    const own = variation?.featureEnabled ? variation.variableValues.get(variable.id) : undefined;
    out[variable.key] = castVariable(variable, own ?? variable.defaultValue);
  }
  return out;
}

function result(
  flag: CompiledFeatureFlag,
  variation: CompiledVariation | null,
  rule: CompiledExperiment | null,
  reason: FlagReason,
): FlagDecision {
  // An impression names the rule and one of its own variations: a variation found among the
  // flag's others (a sticky entry naming another experiment's) is decided, not counted for it.
  const experimentRule =
    reason === "experiment_rule" &&
    rule !== null &&
    variation !== null &&
    rule.variationById.get(variation.id) === variation;
  return {
    flagKey: flag.key,
    enabled: variation?.featureEnabled === true,
    variationKey: variation?.key ?? null,
    ruleKey: rule?.key ?? null,
    reason,
    variables: flagVariables(flag, variation),
    experimentId: experimentRule ? rule.id : null,
    variationId: experimentRule ? variation.id : null,
  };
}

/** Only the variation of a flag decision (see {@link decideFlagVariations}). */
function pickVariation(
  _flag: CompiledFeatureFlag,
  variation: CompiledVariation | null,
): CompiledVariation | null {
  return variation;
}

/** Decides a feature flag for a visitor, like the SDK's `decide(flagKey)`. Never throws. */
export function decideFlag(
  compiled: CompiledDatafile,
  flagKey: string,
  visitor: Visitor,
  options: DecideFlagOptions = {},
): FlagDecision {
  const flag = compiled.featureFlagByKey.get(flagKey);
  if (!flag) {
    return {
      flagKey,
      enabled: false,
      variationKey: null,
      ruleKey: null,
      reason: "flag_not_found",
      variables: {},
      experimentId: null,
      variationId: null,
    };
  }
  return decidePreparedFlag(flag, prepareVisitor(compiled, visitor), options);
}

/**
 * Decides every feature flag of the datafile for one visitor, in datafile order (the SDK's
 * `decideAll()`, keyed the same way). Never throws.
 */
export function decideAllFlags(
  compiled: CompiledDatafile,
  visitor: Visitor,
  options: DecideFlagOptions = {},
): FlagDecision[] {
  if (compiled.featureFlags.length === 0) return [];
  const prepared = prepareVisitor(compiled, visitor);
  return compiled.featureFlags.map((flag) => decidePreparedFlag(flag, prepared, options));
}

/** Decides one compiled flag for a prepared visitor: experiment rules, then delivery rules. */
export function decidePreparedFlag(
  flag: CompiledFeatureFlag,
  prepared: PreparedVisitor,
  options: DecideFlagOptions = {},
): FlagDecision {
  return decideFlagWith(flag, prepared, options, result);
}

/**
 * The variations of {@link decideAllFlags}' decisions (null where a decision has none), written
 * into `out` (index i for `compiled.featureFlags[i]`), without building a decision or its
 * variables per flag: a flag's enabled state and variables follow from its variation alone, so a
 * batch (the CLI's `decide --flags --input`, docs/benchmarks.md `cli-decide`) renders them once
 * per variation. Never throws.
 */
export function decideFlagVariations(
  compiled: CompiledDatafile,
  prepared: PreparedVisitor,
  out: Array<CompiledVariation | null>,
  options: DecideFlagOptions = {},
): void {
  const flags = compiled.featureFlags;
  for (let i = 0; i < flags.length; i++)
    out[i] = decideFlagWith(flags[i]!, prepared, options, pickVariation);
}

/**
 * The flag decision procedure, once for every caller: `outcome` turns where it ends (variation,
 * rule, reason) into what the caller wants — a {@link FlagDecision}, or just the variation.
 */
function decideFlagWith<T>(
  flag: CompiledFeatureFlag,
  prepared: PreparedVisitor,
  options: DecideFlagOptions,
  outcome: (
    flag: CompiledFeatureFlag,
    variation: CompiledVariation | null,
    rule: CompiledExperiment | null,
    reason: FlagReason,
  ) => T,
): T {
  if (!prepared.valid) return outcome(flag, null, null, "invalid_visitor");

  // 0. Global holdouts, before any rule (the SDK's resolveVariationForFlag). One with
  // `excludeTargetedDeliveries` skips only the experiment rules: delivery rules still decide.
  const held = prepared.holdout;
  if (held === "unbucketable") return outcome(flag, null, null, "invalid_visitor");
  const heldOut = held !== null;
  if (heldOut && !held.excludeTargetedDeliveries)
    return outcome(flag, held.variation, held.holdout, "holdout");

  // 1. Experiment rules, each decided exactly like an experiment.
  const experimentRules = options.experimentRules === false || heldOut ? [] : flag.experimentRules;
  for (const rule of experimentRules) {
    const d = decidePrepared(rule, prepared);
    // Where getVariation answers null for these (a null `$opt_experiment_bucket_map` entry, an own
    // "hasOwnProperty" attribute at bucketing), the SDK's decide throws: there is no decision for
    // the flag at all, not a fall-through to the next rule (docs/decisions.md, "Feature flags").
    if (d.reason === "invalid_visitor") return outcome(flag, null, null, "invalid_visitor");
    // The SDK goes on to the next rule on a falsy variation key, "" included.
    if (!d.variationKey) continue;
    // The SDK carries only the variation's key out of the rule and looks it up again: in the rule
    // (where a Feature Rollout's added Everyone Else variation wins over a same-key one), else
    // among all the flag's variations (a sticky `$opt_experiment_bucket_map` entry may name another
    // experiment's variation). Found nowhere, the experiment rules end there and the delivery rules
    // decide (docs/decisions.md, "Feature flags").
    const variation =
      rule.variationByKey.get(d.variationKey) ?? flag.variationByKey.get(d.variationKey);
    if (variation === undefined) break;
    return outcome(flag, variation, rule, "experiment_rule");
  }

  // 2. Delivery rules: audience, then traffic; in-audience-but-not-bucketed skips to Everyone Else.
  const rules = flag.deliveryRules;
  // The SDK computes the bucketing id before each delivery rule, which throws for an own
  // "hasOwnProperty" attribute (see PreparedVisitor.bucketable).
  if (rules.length > 0 && !prepared.bucketable) return outcome(flag, null, null, "invalid_visitor");
  let index = 0;
  while (index < rules.length) {
    const rule = rules[index]!;
    const everyoneElse = index === rules.length - 1;
    if (rule.inAudience(prepared.context)) {
      const bucket = bucketFromHash(prepared.bucketingPrefix.hashWith(rule.idBytes));
      const variation = findBucket(bucket, rule.allocation);
      if (variation) return outcome(flag, variation, rule, "delivery_rule");
      if (!everyoneElse) {
        index = rules.length - 1;
        continue;
      }
    }
    index++;
  }
  return outcome(flag, null, null, "no_rule_matched");
}
