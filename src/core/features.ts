/**
 * Feature flag decisions as the Optimizely SDK's `decide(flagKey)`: experiment rules first, then
 * the rollout's delivery rules, where a visitor who matches a rule's audience but falls outside its
 * traffic jumps straight to the last rule ("Everyone Else"). Typed variables come from the chosen
 * variation when the feature is enabled, else from the flag's defaults.
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

export const FLAG_REASONS = [
  "flag_not_found",
  "invalid_visitor",
  /** Decided by one of the flag's experiment rules. */
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

function variablesFor(
  flag: CompiledFeatureFlag,
  variation: CompiledVariation | null,
): Record<string, VariableValue> {
  const out: Record<string, VariableValue> = {};
  for (const variable of flag.variables) {
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
  const experimentRule = reason === "experiment_rule" && rule !== null && variation !== null;
  return {
    flagKey: flag.key,
    enabled: variation?.featureEnabled === true,
    variationKey: variation?.key ?? null,
    ruleKey: rule?.key ?? null,
    reason,
    variables: variablesFor(flag, variation),
    experimentId: experimentRule ? rule.id : null,
    variationId: experimentRule ? variation.id : null,
  };
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
  if (!prepared.valid) return result(flag, null, null, "invalid_visitor");

  // 1. Experiment rules, each decided exactly like an experiment.
  const experimentRules = options.experimentRules === false ? [] : flag.experimentRules;
  for (const rule of experimentRules) {
    const d = decidePrepared(rule, prepared);
    if (d.variationId !== null)
      return result(flag, rule.variationById.get(d.variationId) ?? null, rule, "experiment_rule");
  }

  // 2. Delivery rules: audience, then traffic; in-audience-but-not-bucketed skips to Everyone Else.
  const rules = flag.deliveryRules;
  // The SDK computes the bucketing id before each delivery rule, which throws for an own
  // "hasOwnProperty" attribute (see PreparedVisitor.bucketable).
  if (rules.length > 0 && !prepared.bucketable) return result(flag, null, null, "invalid_visitor");
  let index = 0;
  while (index < rules.length) {
    const rule = rules[index]!;
    const everyoneElse = index === rules.length - 1;
    if (rule.inAudience(prepared.context)) {
      const bucket = bucketFromHash(prepared.bucketingPrefix.hashWith(rule.idBytes));
      const variation = findBucket(bucket, rule.allocation);
      if (variation) return result(flag, variation, rule, "delivery_rule");
      if (!everyoneElse) {
        index = rules.length - 1;
        continue;
      }
    }
    index++;
  }
  return result(flag, null, null, "no_rule_matched");
}
