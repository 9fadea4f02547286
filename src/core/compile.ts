/**
 * Compiles a validated datafile once into the in-memory form the decision path reads:
 * lookups by key and id, audience trees compiled to closures, bucketing key parts pre-encoded,
 * pages' URL matchers pre-compiled. Per-request code never walks the raw JSON.
 */
import {
  compileAudienceConditions,
  compileExperimentAudiences,
  type EvalContext,
  type Predicate,
} from "./conditions";
import type {
  Datafile,
  Experiment,
  FeatureFlag,
  VariableDef,
  WebEvent,
  WebExperiment,
  WebList,
  WebPage,
  WebVariation,
} from "./datafile-types";
import type { ListMembers } from "./list-members";
import { encodeUtf8 } from "./murmurhash";
import { compileUrlConditions } from "./url-match";

/** A traffic allocation as parallel arrays: bucket < ends[i] → entities[i]. */
export interface CompiledAllocation<T> {
  readonly ends: readonly number[];
  /** null = a hole (empty entityId) or an id that names nothing. */
  readonly entities: ReadonlyArray<T | null>;
}

export interface CompiledVariation {
  readonly id: string;
  readonly key: string;
  readonly featureEnabled: boolean;
  /** variable id → raw string value */
  readonly variableValues: ReadonlyMap<string, string>;
  /** The variation's web data (changes), when the datafile has a `web` entry for it. */
  readonly web: WebVariation | null;
}

export interface CompiledGroup {
  readonly id: string;
  /** Only `random` groups bucket (mutually exclusive); `overlapping` groups do not. */
  readonly random: boolean;
  readonly idBytes: Uint8Array;
  /** bucket → experiment id ("" hole → null) */
  readonly allocation: CompiledAllocation<string>;
}

export interface CompiledPage {
  readonly id: string;
  readonly key: string;
  readonly page: WebPage;
  readonly matches: (url: string) => boolean;
}

export interface CompiledExperiment {
  readonly id: string;
  readonly key: string;
  readonly status: string;
  readonly running: boolean;
  readonly layerId: string;
  /** UTF-8 bytes of the id: the suffix of every bucketing key. */
  readonly idBytes: Uint8Array;
  readonly variations: readonly CompiledVariation[];
  readonly variationById: ReadonlyMap<string, CompiledVariation>;
  readonly variationByKey: ReadonlyMap<string, CompiledVariation>;
  readonly allocation: CompiledAllocation<CompiledVariation>;
  /** True when the experiment has any audience targeting (for explanations). */
  readonly targeted: boolean;
  readonly inAudience: (ctx: EvalContext) => boolean;
  /** QA whitelist: visitor id → variation (only entries naming a real variation). */
  readonly forced: ReadonlyMap<string, CompiledVariation>;
  readonly group: CompiledGroup | null;
  /** A delivery rule of a rollout: not decidable as an experiment (like the SDK). */
  readonly isRollout: boolean;
  /** A contextual-bandit experiment (truthy `cmab`): never bucketed here, like the SDK's getVariation. */
  readonly cmab: boolean;
  readonly web: WebExperiment | null;
  readonly pages: readonly CompiledPage[];
  readonly raw: Experiment;
}

export interface CompiledFeatureFlag {
  readonly id: string;
  readonly key: string;
  readonly experimentRules: readonly CompiledExperiment[];
  readonly deliveryRules: readonly CompiledExperiment[];
  readonly variables: readonly VariableDef[];
  /**
   * Every variation of the flag's rules by key, as the SDK's `getFlagVariationByKey` finds them:
   * the first with that key among the experiment rules' variations (Feature Rollout additions
   * included), then the delivery rules', in the SDK's `Object.values` order of a by-id object.
   * An experiment rule whose decided variation key the rule itself lacks resolves here
   * (docs/decisions.md, "Feature flags").
   */
  readonly variationByKey: ReadonlyMap<string, CompiledVariation>;
  readonly raw: FeatureFlag;
}

export interface CompiledDatafile {
  readonly datafile: Datafile;
  readonly revision: string;
  readonly sdkKey: string | null;
  /** Top-level then grouped experiments, in datafile order (rollout rules excluded). */
  readonly experiments: readonly CompiledExperiment[];
  readonly experimentByKey: ReadonlyMap<string, CompiledExperiment>;
  readonly experimentById: ReadonlyMap<string, CompiledExperiment>;
  /** Every variation of the project by id (experiments, groups and rollouts), as the SDK's variationIdMap. */
  readonly variationById: ReadonlyMap<string, CompiledVariation>;
  readonly featureFlagByKey: ReadonlyMap<string, CompiledFeatureFlag>;
  readonly featureFlags: readonly CompiledFeatureFlag[];
  readonly pages: readonly CompiledPage[];
  readonly pageById: ReadonlyMap<string, CompiledPage>;
  readonly eventByKey: ReadonlyMap<string, { id: string; key: string; web: WebEvent | null }>;
  readonly eventById: ReadonlyMap<string, { id: string; key: string; web: WebEvent | null }>;
  /** `in_list`: list key → members (inline `values`, else `CompileOptions.listMembers`). */
  readonly lists: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * The global holdouts (docs/holdouts.md), compiled as experiments without layer or whitelist,
   * in datafile order: the first that holds a visitor out decides.
   */
  readonly holdouts: readonly CompiledExperiment[];
}

/** Most experiments have no whitelist and most variations no variables: share one empty map. */
const EMPTY_MAP: ReadonlyMap<string, never> = new Map<string, never>();

function compileAllocation<T>(
  entries: readonly { entityId: string; endOfRange: number }[],
  resolve: (id: string) => T | undefined,
): CompiledAllocation<T> {
  return {
    ends: entries.map((e) => e.endOfRange),
    entities: entries.map((e) => (e.entityId === "" ? null : (resolve(e.entityId) ?? null))),
  };
}

export interface CompileOptions {
  /**
   * Members of the lists that have no inline `values` (published datafiles never do: the members
   * are private, docs/datafile.md "Lists"), by list id. A list with neither is unknown to
   * `in_list` (the condition evaluates to null, so its audience does not match).
   */
  listMembers?: ListMembers;
}

/** `in_list`'s lookup: list key → members, built once per compiled datafile (a Set per list). */
function compileLists(
  lists: readonly WebList[],
  members: ListMembers | undefined,
): Map<string, ReadonlySet<string>> {
  const out = new Map<string, ReadonlySet<string>>();
  for (const list of lists) {
    const values = list.values ?? members?.get(list.id);
    if (values !== undefined) out.set(list.key, new Set(values));
  }
  return out;
}

/**
 * A flag's variations by key, first match winning, in the order the SDK's `getFlagVariationByKey`
 * searches them (docs/decisions.md, "Feature flags"): the SDK collects them into a plain object
 * keyed by variation id and takes `Object.values` of it, so integer-like ids (below 2^32) come
 * first in numeric order and the others follow in insertion order. A plain object here gives
 * exactly that order.
 */
function flagVariationsByKey(
  rules: readonly CompiledExperiment[],
): ReadonlyMap<string, CompiledVariation> {
  const byId: Record<string, CompiledVariation> = {};
  for (const rule of rules) for (const v of rule.variations) byId[v.id] = v;
  const byKey = new Map<string, CompiledVariation>();
  for (const v of Object.values(byId)) if (!byKey.has(v.key)) byKey.set(v.key, v);
  return byKey;
}

/**
 * Builds the compiled form of a datafile that `parseDatafile` accepted. Never throws on a
 * validated datafile; dangling references compile to "no match" rather than crashing.
 */
export function compileDatafile(
  datafile: Datafile,
  options: CompileOptions = {},
): CompiledDatafile {
  // Audiences: typedAudiences override legacy audiences with the same id (as the SDK does).
  const audiences = new Map<string, Predicate>();
  for (const audience of datafile.audiences)
    audiences.set(audience.id, compileAudienceConditions(audience.conditions));
  for (const audience of datafile.typedAudiences ?? [])
    audiences.set(audience.id, compileAudienceConditions(audience.conditions));

  const web = datafile.web;
  const pages: CompiledPage[] = (web?.pages ?? []).map((page) => ({
    id: page.id,
    key: page.key,
    page,
    matches: compileUrlConditions(page.conditions),
  }));
  const pageById = new Map(pages.map((p) => [p.id, p]));
  const webExperimentById = new Map((web?.experiments ?? []).map((w) => [w.id, w]));

  const groups = new Map<string, CompiledGroup>();
  for (const group of datafile.groups) {
    groups.set(group.id, {
      id: group.id,
      random: group.policy === "random",
      idBytes: encodeUtf8(group.id),
      // Kept as ids: a bucket naming any other experiment (or none) excludes the visitor.
      allocation: compileAllocation(group.trafficAllocation, (id) => id),
    });
  }

  // The SDK resolves bucketed entity ids against one project-wide variation map.
  const allVariations = new Map<string, CompiledVariation>();

  const compileExperiment = (
    experiment: Experiment,
    groupId: string | null,
    isRollout: boolean,
  ): CompiledExperiment => {
    const webExperiment = webExperimentById.get(experiment.id) ?? null;
    const webVariations: ReadonlyMap<string, WebVariation> = webExperiment
      ? new Map(webExperiment.variations.map((v) => [v.id, v]))
      : EMPTY_MAP;
    const variations = experiment.variations.map<CompiledVariation>((v) => ({
      id: v.id,
      key: v.key,
      featureEnabled: v.featureEnabled === true,
      variableValues: v.variables?.length
        ? new Map(v.variables.map((u) => [u.id, u.value]))
        : EMPTY_MAP,
      web: webVariations.get(v.id) ?? null,
    }));
    for (const v of variations) allVariations.set(v.id, v);
    const variationByKey = new Map(variations.map((v) => [v.key, v]));
    let forced: ReadonlyMap<string, CompiledVariation> = EMPTY_MAP;
    for (const visitorId in experiment.forcedVariations) {
      if (!Object.prototype.hasOwnProperty.call(experiment.forcedVariations, visitorId)) continue;
      const variation = variationByKey.get(experiment.forcedVariations[visitorId]!);
      if (!variation) continue;
      if (forced === EMPTY_MAP) forced = new Map();
      (forced as Map<string, CompiledVariation>).set(visitorId, variation);
    }
    const targeted =
      experiment.audienceConditions !== undefined
        ? !(
            Array.isArray(experiment.audienceConditions) &&
            experiment.audienceConditions.length === 0
          )
        : experiment.audienceIds.length > 0;
    return {
      id: experiment.id,
      key: experiment.key,
      status: experiment.status,
      running: experiment.status === "Running",
      layerId: experiment.layerId,
      idBytes: encodeUtf8(experiment.id),
      variations,
      variationById: new Map(variations.map((v) => [v.id, v])),
      variationByKey,
      // Resolved after all experiments are compiled (entity ids may name any variation).
      allocation: { ends: [], entities: [] },
      targeted,
      inAudience: compileExperimentAudiences(
        experiment.audienceConditions,
        experiment.audienceIds,
        audiences,
      ),
      forced,
      group: groupId === null ? null : (groups.get(groupId) ?? null),
      isRollout,
      cmab: Boolean(experiment.cmab),
      web: webExperiment,
      pages: (webExperiment?.pageIds ?? []).flatMap((id) => pageById.get(id) ?? []),
      raw: experiment,
    };
  };

  const experiments: CompiledExperiment[] = [];
  for (const e of datafile.experiments) experiments.push(compileExperiment(e, null, false));
  for (const g of datafile.groups)
    for (const e of g.experiments) experiments.push(compileExperiment(e, g.id, false));
  const rolloutRules = new Map<string, CompiledExperiment[]>();
  for (const rollout of datafile.rollouts) {
    rolloutRules.set(
      rollout.id,
      rollout.experiments.map((e) => compileExperiment(e, null, true)),
    );
  }
  // Holdouts share the project-wide variation map (the SDK's parseHoldoutsConfig assigns their
  // variations to variationIdMap too); a holdout has no layer and no whitelist.
  const holdouts = (datafile.holdouts ?? []).map((h) =>
    compileExperiment({ ...h, layerId: "", forcedVariations: {} }, null, false),
  );
  // Feature-rollout ("fr") experiment rules get the flag's "Everyone Else" variation appended,
  // with an allocation entry up to 10000 (as the SDK's project config does).
  const extraAllocation = new Map<CompiledExperiment, { entityId: string; endOfRange: number }[]>();
  const experimentById = new Map(experiments.map((e) => [e.id, e]));
  for (const flag of datafile.featureFlags) {
    const rules = flag.rolloutId ? rolloutRules.get(flag.rolloutId) : undefined;
    const everyoneElse = rules?.[rules.length - 1]?.variations[0];
    if (!everyoneElse) continue;
    for (const id of flag.experimentIds) {
      const e = experimentById.get(id);
      if (!e || e.raw.type !== "fr") continue;
      (e.variations as CompiledVariation[]).push(everyoneElse);
      (e.variationByKey as Map<string, CompiledVariation>).set(everyoneElse.key, everyoneElse);
      const extra = extraAllocation.get(e) ?? [];
      extra.push({ entityId: everyoneElse.id, endOfRange: 10000 });
      extraAllocation.set(e, extra);
    }
  }
  const resolveAllocation = (e: CompiledExperiment): void => {
    (e as { allocation: CompiledAllocation<CompiledVariation> }).allocation = compileAllocation(
      [...e.raw.trafficAllocation, ...(extraAllocation.get(e) ?? [])],
      (id) => allVariations.get(id),
    );
  };
  experiments.forEach(resolveAllocation);
  holdouts.forEach(resolveAllocation);
  for (const rules of rolloutRules.values()) rules.forEach(resolveAllocation);

  // Later entries win on duplicate keys/ids, like the SDK's keyBy maps (validation rejects duplicates).
  const experimentByKey = new Map(experiments.map((e) => [e.key, e]));

  const featureFlags = datafile.featureFlags.map<CompiledFeatureFlag>((flag) => {
    const experimentRules = flag.experimentIds.flatMap((id) => experimentById.get(id) ?? []);
    const deliveryRules = rolloutRules.get(flag.rolloutId) ?? [];
    return {
      id: flag.id,
      key: flag.key,
      experimentRules,
      deliveryRules,
      variables: flag.variables.map((v) =>
        // JSON variables are stored as string with subType json (datafile backwards compatibility).
        v.type === "string" && v.subType === "json" ? { ...v, type: "json" as const } : v,
      ),
      variationByKey: flagVariationsByKey([...experimentRules, ...deliveryRules]),
      raw: flag,
    };
  });

  const webEventById = new Map((web?.events ?? []).map((e) => [e.id, e]));
  const events = datafile.events.map((e) => ({
    id: e.id,
    key: e.key,
    web: webEventById.get(e.id) ?? null,
  }));

  return {
    datafile,
    revision: datafile.revision,
    sdkKey: datafile.sdkKey ?? null,
    experiments,
    experimentByKey,
    experimentById,
    variationById: allVariations,
    featureFlags,
    featureFlagByKey: new Map(featureFlags.map((f) => [f.key, f])),
    pages,
    pageById,
    eventByKey: new Map(events.map((e) => [e.key, e])),
    eventById: new Map(events.map((e) => [e.id, e])),
    lists: compileLists(web?.lists ?? [], options.listMembers),
    holdouts,
  };
}
