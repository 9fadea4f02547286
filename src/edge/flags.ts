/**
 * Feature flags at the edge (docs/visitors.md "Feature flags"): every flag of the datafile,
 * decided for the visitor of a routed request with the same prepared visitor (id, attributes,
 * sticky `ss_dec`, preview) as the page's experiments, so a flag's A/B rule is decided — and stays
 * sticky — exactly like an experiment. The core decides (`decidePreparedFlag`, src/core/features.ts);
 * this module keeps the per-request cost low and turns decisions into what the edge sends:
 *
 * - A datafile without flags costs one length check.
 * - Per compiled datafile (once per isolate, WeakMap) each flag gets a copy without variables for
 *   the core to decide, plus the lookups that find the variation a decision names. The variables of
 *   each outcome — the flag's defaults, or an enabled variation's values — are cast once (JSON
 *   variables parsed once) and shared, frozen, by every request that gets that outcome. A flag
 *   whose delivery outcomes cannot be told apart by key (two rules with the same key) is decided
 *   whole by the core instead: correct, just not cached.
 */
import {
  castVariable,
  decidePreparedFlag,
  type CompiledDatafile,
  type CompiledExperiment,
  type CompiledVariation,
  type DecideFlagOptions,
  type FlagDecision,
  type PreparedVisitor,
  type VariableValue,
} from "../core/index";
import { flagKeyProblem } from "../shared/event-limits";
import type { ImpressionDims, ImpressionMessage } from "../shared/event-messages";

type CompiledFlag = CompiledDatafile["featureFlags"][number];
type Variables = Readonly<Record<string, VariableValue>>;

interface FlagEntry {
  flag: CompiledFlag;
  /** The flag without variables (what the core decides), or null: the core decides it whole. */
  bare: CompiledFlag | null;
  experimentRuleById: ReadonlyMap<string, CompiledExperiment>;
  /** delivery rule key → variation key → the enabled variation a bucket can give */
  deliveryVariations: ReadonlyMap<string, ReadonlyMap<string, CompiledVariation>>;
  defaults: Variables;
  /** enabled variation → its variables, cast on first use */
  byVariation: Map<CompiledVariation, Variables>;
}

const indexes = new WeakMap<CompiledDatafile, readonly FlagEntry[]>();

/** Freezes a cast value all the way down: it is shared by every request with the same outcome. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** The flag's variables for `variation` (the core's rule: an enabled variation's values, else defaults). */
function castVariables(flag: CompiledFlag, variation: CompiledVariation | null): Variables {
  const out: Record<string, VariableValue> = {};
  for (const variable of flag.variables) {
    // As the core's flagVariables: a variable keyed "__proto__" is left out (src/core/features.ts).
    if (variable.key === "__proto__") continue;
    const own = variation?.featureEnabled ? variation.variableValues.get(variable.id) : undefined;
    Object.defineProperty(out, variable.key, {
      value: castVariable(variable, own ?? variable.defaultValue),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return deepFreeze(out);
}

function indexFlag(flag: CompiledFlag): FlagEntry {
  const deliveryVariations = new Map<string, Map<string, CompiledVariation>>();
  let ambiguous = false;
  const ruleKeys = new Set<string>();
  for (const rule of flag.deliveryRules) {
    if (ruleKeys.has(rule.key)) ambiguous = true;
    ruleKeys.add(rule.key);
    const byKey = deliveryVariations.get(rule.key) ?? new Map<string, CompiledVariation>();
    deliveryVariations.set(rule.key, byKey);
    for (const variation of rule.allocation.entities) {
      if (variation === null || !variation.featureEnabled) continue;
      const seen = byKey.get(variation.key);
      if (seen !== undefined && seen !== variation) ambiguous = true;
      byKey.set(variation.key, variation);
    }
  }
  return {
    flag,
    bare: ambiguous || flag.variables.length === 0 ? null : { ...flag, variables: [] },
    experimentRuleById: new Map(flag.experimentRules.map((rule) => [rule.id, rule])),
    deliveryVariations,
    defaults: castVariables(flag, null),
    byVariation: new Map(),
  };
}

function indexOf(compiled: CompiledDatafile): readonly FlagEntry[] {
  let index = indexes.get(compiled);
  if (!index) {
    index = compiled.featureFlags.map(indexFlag);
    indexes.set(compiled, index);
  }
  return index;
}

/** The variation an enabled decision of the bare flag names (null: not found — decide whole). */
function variationOf(entry: FlagEntry, decision: FlagDecision): CompiledVariation | null {
  if (decision.experimentId !== null && decision.variationId !== null)
    return (
      entry.experimentRuleById
        .get(decision.experimentId)
        ?.variationById.get(decision.variationId) ?? null
    );
  if (decision.reason !== "delivery_rule" || decision.ruleKey === null) return null;
  if (decision.variationKey === null) return null;
  return entry.deliveryVariations.get(decision.ruleKey)?.get(decision.variationKey) ?? null;
}

function decideOne(
  entry: FlagEntry,
  prepared: PreparedVisitor,
  options: DecideFlagOptions,
): FlagDecision {
  if (entry.bare === null) return decidePreparedFlag(entry.flag, prepared, options);
  const decision = decidePreparedFlag(entry.bare, prepared, options);
  if (!decision.enabled) return { ...decision, variables: entry.defaults };
  const variation = variationOf(entry, decision);
  if (variation === null) return decidePreparedFlag(entry.flag, prepared, options);
  let variables = entry.byVariation.get(variation);
  if (variables === undefined) {
    variables = castVariables(entry.flag, variation);
    entry.byVariation.set(variation, variables);
  }
  return { ...decision, variables };
}

/**
 * Every flag of the datafile for `prepared`, in datafile order, as the core decides them.
 * `options.experimentRules: false` skips the A/B rules (visitors the edge does not track:
 * docs/visitors.md "Feature flags"). The `variables` objects are frozen and shared between
 * requests: serialise them, never change them. Never throws for a compiled datafile.
 */
export function decideFlags(
  compiled: CompiledDatafile,
  prepared: PreparedVisitor,
  options: DecideFlagOptions = {},
): FlagDecision[] {
  if (compiled.featureFlags.length === 0) return [];
  return indexOf(compiled).map((entry) => decideOne(entry, prepared, options));
}

/** A flag decision an A/B rule made: an impression of that experiment (docs/events.md). */
export interface FlagImpression {
  experimentId: string;
  variationId: string;
  /** Absent when the datafile's key is no valid queue `flagKey` (the impression still counts). */
  flagKey?: string;
  ruleType?: "feature-test";
}

/** What every edge impression of one request shares (src/shared/event-messages.ts). */
export interface ImpressionContext {
  sdkKey: string;
  revision: string;
  visitorId: string;
  timestamp: number;
  dims: ImpressionDims;
}

/** The queue message of one A/B-rule flag impression (docs/events.md), as the edge sends it. */
export function flagImpressionMessage(
  context: ImpressionContext,
  impression: FlagImpression,
): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: crypto.randomUUID(),
    sdkKey: context.sdkKey,
    revision: context.revision,
    visitorId: context.visitorId,
    ...impression,
    timestamp: context.timestamp,
    source: "edge",
    dims: context.dims,
  };
}

/** The impressions `decisions` make: one per decision of an A/B rule, none for delivery rules. */
export function flagImpressions(decisions: readonly FlagDecision[]): FlagImpression[] {
  const out: FlagImpression[] = [];
  for (const d of decisions) {
    if (d.experimentId === null || d.variationId === null) continue;
    out.push(
      flagKeyProblem(d.flagKey) === null
        ? {
            experimentId: d.experimentId,
            variationId: d.variationId,
            flagKey: d.flagKey,
            ruleType: "feature-test",
          }
        : { experimentId: d.experimentId, variationId: d.variationId },
    );
  }
  return out;
}

/**
 * Records the A/B-rule decisions of `decisions` in `sticky` (the `ss_dec` map, experiment id →
 * variation id) like experiment decisions; variations a preview link forced are not recorded.
 * Returns whether the map changed.
 */
export function recordFlagSticky(
  sticky: Record<string, string>,
  decisions: readonly FlagDecision[],
  preview: Readonly<Record<string, string>> | undefined,
): boolean {
  let changed = false;
  for (const d of decisions) {
    if (d.experimentId === null || d.variationId === null) continue;
    if (preview !== undefined && Object.prototype.hasOwnProperty.call(preview, d.experimentId))
      continue;
    if (sticky[d.experimentId] !== d.variationId) {
      sticky[d.experimentId] = d.variationId;
      changed = true;
    }
  }
  return changed;
}
