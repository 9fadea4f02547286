/**
 * Builds the datafile of one environment from the management data (docs/datafile.md): an Optimizely
 * datafile v4, field for field, plus the `web` extension. PURE: rows in, Datafile out — no D1,
 * no KV, no Workers APIs (it runs in the core Node test project too). src/api/services/publish.ts loads
 * the rows and stores the result.
 *
 * What goes in (docs/api.md "Publishing"):
 * - experiments: not archived (`archived = 0`) and not `Archived` in this environment; status from
 *   `experiment_status` for this environment, default `Not started`. Experiments of a group are
 *   listed under `groups[].experiments`, not at the top level, as Optimizely does.
 * - audiences, pages, events: not archived, plus archived ones still referenced by what is
 *   published (an audience in an experiment's conditions, a page of an experiment or event, an
 *   event of a metric) — archiving something in use never makes the datafile invalid, and the
 *   experiment keeps behaving exactly as configured.
 * - attributes, groups, lists: all.
 * - feature flags (docs/flags.md): not archived. Per environment, an enabled flag publishes its
 *   delivery rules and its Everyone Else rule as its rollout, and its A/B rules (published
 *   experiments with `flag_id`, in creation order) as `experimentIds`; a disabled one only an
 *   Everyone Else rule delivering "off" (and its A/B rules are left out of `experiments` too).
 *   Variations of A/B rules take `featureEnabled` and the
 *   variable values of the flag variation with their key. JSON variables are published as
 *   `{type: "string", subType: "json"}`, as Optimizely does for SDKs that predate the json type.
 *
 * - the environment's holdout (docs/holdouts.md), once a share above 0 was set: `holdouts`
 *   (concluded at 0).
 *
 * Deterministic: the same snapshot gives the same text (`serializeDatafile`), byte for byte.
 * Rows are ordered by `created_at`, then `id`; JSON columns are carried in their stored key order.
 */
import type {
  Audience,
  AudienceConditionTree,
  Change,
  ConditionTree,
  Datafile,
  EventDef,
  Experiment,
  FeatureFlag,
  Group,
  Holdout,
  LeafCondition,
  Rollout,
  TrafficAllocationEntry,
  TypedAudience,
  UrlCondition,
  VariableDef,
  VariableUsage,
  Variation,
  WebEvent,
  WebExperiment,
  WebList,
  WebMetric,
  WebPage,
  WebSection,
  WebVariation,
} from "../../core/datafile-types";
import { EVERYONE_ELSE_VARIATION_KEY, HOLDOUT_VARIATION_KEY } from "../../core/holdouts";
import type { Problem } from "../../core/problem";
import { holdoutKey, holdoutSpecOf } from "./holdout-spec";
import type {
  AttributeRow,
  AudienceRow,
  EnvironmentRow,
  EventRow,
  ExperimentRow,
  ExperimentStatusValue,
  FlagEnvironmentSpec,
  FlagRow,
  FlagVariableSpec,
  FlagVariationSpec,
  GroupAllocationEntry,
  GroupRow,
  ListRow,
  PageRow,
  ProjectRow,
  SqlBool,
  VariationSpec,
} from "../store/rows";

// ---------------------------------------------------------------------------------------------
// Rows: the D1 columns (migrations/0001_management.sql), snake_case, JSON columns as text.

// ---------------------------------------------------------------------------------------------
// Snapshot

/** Everything one environment's datafile is built from. */
export interface ProjectSnapshot {
  project: ProjectRow;
  environment: EnvironmentRow;
  attributes: AttributeRow[];
  audiences: AudienceRow[];
  events: EventRow[];
  pages: PageRow[];
  groups: GroupRow[];
  lists: ListRow[];
  experiments: ExperimentRow[];
  flags: FlagRow[];
  /** experiment id → status in this environment (absent = `Not started`). */
  statuses: ReadonlyMap<string, string>;
}

export const DEFAULT_STATUS: ExperimentStatusValue = "Not started";

/** Web integrations the datafile announces (no per-project setting yet). */
export const DEFAULT_INTEGRATIONS: Readonly<Record<string, boolean>> = Object.freeze({
  dataLayer: false,
  segment: false,
});

/**
 * Conditions string of the legacy `audiences[]` entry of every typed audience: what Optimizely
 * puts there for SDKs that predate typed audiences. It never matches (unless someone passes the
 * attribute `$opt_dummy_attribute`), so such SDKs keep targeted experiments off rather than
 * mis-targeting them; current SDKs use the typed audience with the same id.
 */
export const LEGACY_AUDIENCE_PLACEHOLDER =
  '["or", {"match": "exact", "name": "$opt_dummy_attribute", "type": "custom_attribute", "value": "$opt_dummy_value"}]';

/** A row whose JSON column does not hold what it should: building stops with these problems. */
export class DatafileBuildError extends Error {
  constructor(readonly problems: Problem[]) {
    super(
      `cannot build the datafile: ${problems
        .slice(0, 3)
        .map((p) => `${p.path}: ${p.message}`)
        .join("; ")}${problems.length > 3 ? " …" : ""}`,
    );
    this.name = "DatafileBuildError";
  }
}

// ---------------------------------------------------------------------------------------------
// Allocation math

/** Ranges from cumulative weights: entries with weight 0 (or less) are left out. */
function cumulativeRanges(
  entries: ReadonlyArray<{ entityId: string; weight: number }>,
  scale: (cumulative: number) => number,
): TrafficAllocationEntry[] {
  const out: TrafficAllocationEntry[] = [];
  let cumulative = 0;
  for (const entry of entries) {
    if (!(entry.weight > 0)) continue;
    cumulative += entry.weight;
    out.push({ entityId: entry.entityId, endOfRange: scale(cumulative) });
  }
  return out;
}

/**
 * An experiment's `trafficAllocation`: variation weights (basis points, summing to 10000) scaled
 * by `traffic` (basis points of eligible visitors in the experiment). Cumulative:
 * `endOfRange = round(traffic × cumulativeWeight / 10000)`, so rounding never accumulates and the
 * last range ends exactly at `traffic`; buckets at or above it get no variation. Variations with
 * weight 0 get no entry (they stay in `variations`, so forced variations and sticky decisions
 * still resolve).
 */
export function experimentTrafficAllocation(
  variations: ReadonlyArray<{ id: string; weight: number }>,
  traffic: number,
): TrafficAllocationEntry[] {
  return cumulativeRanges(
    variations.map((v) => ({ entityId: v.id, weight: v.weight })),
    (cumulative) => Math.round((traffic * cumulative) / 10000),
  );
}

/**
 * A group's `trafficAllocation`: its allocation entries in their stored order, cumulative
 * `endOfRange` over experiment ids. An entry whose experiment is not published (archived, or no
 * longer in the group) becomes a hole (`entityId ""`), so the other experiments keep their
 * ranges and their visitors. Weight-0 entries are left out.
 */
export function groupTrafficAllocation(
  allocation: ReadonlyArray<GroupAllocationEntry>,
  members: ReadonlySet<string>,
): TrafficAllocationEntry[] {
  return cumulativeRanges(
    allocation.map((a) => ({
      entityId: members.has(a.experimentId) ? a.experimentId : "",
      weight: a.weight,
    })),
    (cumulative) => cumulative,
  );
}

const OPERATORS = new Set<unknown>(["and", "or", "not"]);

/** The audience ids of an audience-condition tree, in order of first appearance. */
export function audienceIdsOf(tree: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (node: unknown, depth: number): void => {
    if (depth > 64) return;
    if (typeof node === "string") {
      if (!seen.has(node)) {
        seen.add(node);
        out.push(node);
      }
      return;
    }
    if (!Array.isArray(node)) return;
    const start = node.length > 0 && OPERATORS.has(node[0]) ? 1 : 0;
    for (let i = start; i < node.length; i++) walk(node[i], depth + 1);
  };
  walk(tree, 0);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building

/** Orders rows by `created_at`, then `id` (a copy). */
export function byCreation<T extends { created_at: string; id: string }>(rows: readonly T[]): T[] {
  return rows
    .slice()
    .sort((a, b) =>
      a.created_at < b.created_at
        ? -1
        : a.created_at > b.created_at
          ? 1
          : a.id < b.id
            ? -1
            : a.id > b.id
              ? 1
              : 0,
    );
}

const isArchived = (row: { archived: SqlBool | boolean }): boolean => Boolean(row.archived);

/** Parses the JSON columns, collecting problems instead of throwing at the first. */
class Columns {
  readonly problems: Problem[] = [];

  json<T>(
    text: string | null,
    where: string,
    check: (value: unknown) => string | undefined,
    fallback: T,
  ): T {
    if (text === null) return fallback;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      this.problems.push({
        path: where,
        message: `stored JSON does not parse: ${error instanceof Error ? error.message : String(error)}`,
        severity: "error",
      });
      return fallback;
    }
    const problem = check(value);
    if (problem !== undefined) {
      this.problems.push({ path: where, message: problem, severity: "error" });
      return fallback;
    }
    return value as T;
  }
}

const anyValue = (): undefined => undefined;
const anArray = (value: unknown): string | undefined =>
  Array.isArray(value) ? undefined : "expected a JSON array";
const anObject = (value: unknown): string | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? undefined
    : "expected a JSON object";
const anArrayOfObjects = (value: unknown): string | undefined => {
  if (!Array.isArray(value)) return "expected a JSON array";
  return value.every((item) => typeof item === "object" && item !== null && !Array.isArray(item))
    ? undefined
    : "expected an array of objects";
};
const anArrayOfStrings = (value: unknown): string | undefined =>
  Array.isArray(value) && value.every((item) => typeof item === "string")
    ? undefined
    : "expected a JSON array of strings";

/** A flag with its JSON columns parsed, and this environment's settings. */
interface ParsedFlag {
  row: FlagRow;
  variables: FlagVariableSpec[];
  variations: FlagVariationSpec[];
  environment: FlagEnvironmentSpec;
}

/** The key of the Everyone Else rule of a flag's rollout (Optimizely's naming). */
export function everyoneElseRuleKey(flagId: string): string {
  return `default-rollout-${flagId}`;
}

/** An experiment with its JSON columns parsed. */
interface ParsedExperiment {
  row: ExperimentRow;
  status: string;
  audienceConditions: AudienceConditionTree | null;
  pageIds: string[];
  metrics: WebMetric[];
  variations: VariationSpec[];
  sections: WebSection[] | null;
  sharedChanges: Change[];
  forcedVariations: Record<string, string>;
}

/**
 * The datafile of `snapshot.environment` at `revision`. Throws DatafileBuildError when a JSON
 * column does not hold what the schema says (the problems name the table, row id and column);
 * everything else — dangling references, bad regexes, unsafe changes — is left to
 * `parseDatafile`, which publish.ts runs on the result.
 */
export function buildDatafile(snapshot: ProjectSnapshot, revision: number): Datafile {
  const columns = new Columns();
  const { project, environment } = snapshot;

  // ---- experiments in this environment
  const experiments: ParsedExperiment[] = [];
  for (const row of byCreation(snapshot.experiments)) {
    if (isArchived(row)) continue;
    const status = snapshot.statuses.get(row.id) ?? DEFAULT_STATUS;
    if (status === "Archived") continue;
    const where = `experiments[${JSON.stringify(row.id)}]`;
    experiments.push({
      row,
      status,
      audienceConditions: columns.json<AudienceConditionTree | null>(
        row.audience_conditions,
        `${where}.audience_conditions`,
        anyValue,
        null,
      ),
      pageIds: columns.json<string[]>(row.page_ids, `${where}.page_ids`, anArrayOfStrings, []),
      metrics: columns.json<WebMetric[]>(row.metrics, `${where}.metrics`, anArrayOfObjects, []),
      variations: columns.json<VariationSpec[]>(
        row.variations,
        `${where}.variations`,
        anArrayOfObjects,
        [],
      ),
      sections: columns.json<WebSection[] | null>(
        row.sections,
        `${where}.sections`,
        anArrayOfObjects,
        null,
      ),
      sharedChanges: columns.json<Change[]>(
        row.shared_changes,
        `${where}.shared_changes`,
        anArray,
        [],
      ),
      forcedVariations: columns.json<Record<string, string>>(
        row.forced_variations,
        `${where}.forced_variations`,
        anObject,
        {},
      ),
    });
  }

  // ---- feature flags
  const flags: ParsedFlag[] = [];
  for (const row of byCreation(snapshot.flags)) {
    if (isArchived(row)) continue;
    const where = `flags[${JSON.stringify(row.id)}]`;
    const environments = columns.json<Record<string, FlagEnvironmentSpec>>(
      row.environments,
      `${where}.environments`,
      anObject,
      {},
    );
    const stored = Object.prototype.hasOwnProperty.call(environments, environment.id)
      ? environments[environment.id]
      : undefined;
    flags.push({
      row,
      variables: columns.json<FlagVariableSpec[]>(
        row.variables,
        `${where}.variables`,
        anArrayOfObjects,
        [],
      ),
      variations: columns.json<FlagVariationSpec[]>(
        row.variations,
        `${where}.variations`,
        anArrayOfObjects,
        [],
      ),
      environment:
        stored && typeof stored === "object" && Array.isArray(stored.rules)
          ? stored
          : { enabled: false, rules: [], defaultVariationKey: "off" },
    });
  }
  const flagById = new Map(flags.map((f) => [f.row.id, f]));
  // An A/B rule is published only while its flag is on here: a flag that is off (or archived)
  // delivers "off" to everyone, and an SDK calling activate() on the rule by key must not
  // bucket anyone into it either (docs/flags.md).
  for (let i = experiments.length - 1; i >= 0; i--) {
    const flagId = experiments[i]!.row.flag_id;
    if (flagId !== null && flagById.get(flagId)?.environment.enabled !== true)
      experiments.splice(i, 1);
  }

  // ---- what the published experiments and events refer to
  const events = byCreation(snapshot.events);
  const metricEventIds = new Set<string>();
  const audienceIdsInUse = new Set<string>();
  const pageIdsInUse = new Set<string>();
  for (const x of experiments) {
    for (const metric of x.metrics) metricEventIds.add(metric.eventId);
    for (const id of audienceIdsOf(x.audienceConditions)) audienceIdsInUse.add(id);
    for (const id of x.pageIds) pageIdsInUse.add(id);
  }
  for (const flag of flags)
    if (flag.environment.enabled)
      for (const rule of flag.environment.rules)
        for (const id of audienceIdsOf(rule.audienceConditions)) audienceIdsInUse.add(id);
  const publishedEvents = events.filter((e) => !isArchived(e) || metricEventIds.has(e.id));
  for (const event of publishedEvents) if (event.page_id !== null) pageIdsInUse.add(event.page_id);

  const audiences = byCreation(snapshot.audiences).filter(
    (a) => !isArchived(a) || audienceIdsInUse.has(a.id),
  );
  const pages = byCreation(snapshot.pages).filter((p) => !isArchived(p) || pageIdsInUse.has(p.id));

  const typedAudiences: TypedAudience[] = audiences.map((a) => ({
    id: a.id,
    name: a.name,
    conditions: columns.json<ConditionTree<LeafCondition>>(
      a.conditions,
      `audiences[${JSON.stringify(a.id)}].conditions`,
      anyValue,
      [],
    ),
  }));
  const legacyAudiences: Audience[] = audiences.map((a) => ({
    id: a.id,
    name: a.name,
    conditions: LEGACY_AUDIENCE_PLACEHOLDER,
  }));

  const webPages: WebPage[] = pages.map((p) => {
    const page: WebPage = {
      id: p.id,
      key: p.key,
      activation: p.activation,
      conditions: columns.json<ConditionTree<UrlCondition>>(
        p.conditions,
        `pages[${JSON.stringify(p.id)}].conditions`,
        anyValue,
        [],
      ),
    };
    if (p.selector !== null && p.selector !== "") page.selector = p.selector;
    return page;
  });

  const webLists: WebList[] = byCreation(snapshot.lists).map((l) => ({
    id: l.id,
    key: l.key,
    values: columns.json<string[]>(
      l.values,
      `lists[${JSON.stringify(l.id)}].values`,
      anArrayOfStrings,
      [],
    ),
  }));

  // ---- Optimizely experiments, top level or grouped
  const toOptimizely = (x: ParsedExperiment): Experiment => {
    const flag = x.row.flag_id !== null ? flagById.get(x.row.flag_id) : undefined;
    const variations: Variation[] = x.variations.map((v) => {
      // An A/B rule of a flag: the flag variation of the same key says what it delivers.
      if (flag) return flagVariation(flag, v.key, v.id);
      const variation: Variation = { id: v.id, key: v.key };
      if (typeof v.featureEnabled === "boolean") variation.featureEnabled = v.featureEnabled;
      return variation;
    });
    const experiment: Experiment = {
      id: x.row.id,
      key: x.row.key,
      status: x.status,
      layerId: x.row.layer_id,
      variations,
      trafficAllocation: experimentTrafficAllocation(
        x.variations.map((v) => ({ id: v.id, weight: Number(v.weight) })),
        x.row.traffic,
      ),
      audienceIds: audienceIdsOf(x.audienceConditions),
      forcedVariations: x.forcedVariations,
    };
    if (x.audienceConditions !== null) experiment.audienceConditions = x.audienceConditions;
    return experiment;
  };

  const groupRows = byCreation(snapshot.groups);
  const groupIds = new Set(groupRows.map((g) => g.id));
  const topLevel: Experiment[] = [];
  const grouped = new Map<string, Experiment[]>();
  for (const x of experiments) {
    const experiment = toOptimizely(x);
    const groupId = x.row.group_id;
    if (groupId !== null && groupIds.has(groupId)) {
      const list = grouped.get(groupId);
      if (list) list.push(experiment);
      else grouped.set(groupId, [experiment]);
    } else {
      topLevel.push(experiment);
    }
  }
  const groups: Group[] = groupRows.map((g) => {
    const members = grouped.get(g.id) ?? [];
    const allocation = columns.json<GroupAllocationEntry[]>(
      g.allocation,
      `groups[${JSON.stringify(g.id)}].allocation`,
      anArrayOfObjects,
      [],
    );
    return {
      id: g.id,
      policy: g.policy,
      experiments: members,
      trafficAllocation: groupTrafficAllocation(
        allocation.map((a) => ({ experimentId: a.experimentId, weight: Number(a.weight) })),
        new Set(members.map((m) => m.id)),
      ),
    };
  });

  // ---- feature flags and their rollouts
  const featureFlags: FeatureFlag[] = [];
  const rollouts: Rollout[] = [];
  for (const flag of flags) {
    const { row, environment: settings } = flag;
    const enabled = settings.enabled === true;
    const rules: Experiment[] = [];
    if (enabled)
      for (const rule of settings.rules) {
        const variation = flagVariation(flag, rule.variationKey);
        const experiment: Experiment = {
          id: rule.id,
          key: rule.key,
          status: "Running",
          layerId: rule.id,
          variations: [variation],
          trafficAllocation:
            rule.traffic > 0 ? [{ entityId: variation.id, endOfRange: rule.traffic }] : [],
          audienceIds: audienceIdsOf(rule.audienceConditions),
          forcedVariations: {},
        };
        if (rule.audienceConditions !== null && rule.audienceConditions !== undefined)
          experiment.audienceConditions = rule.audienceConditions as AudienceConditionTree;
        rules.push(experiment);
      }
    const everyoneElse = flagVariation(flag, enabled ? settings.defaultVariationKey : "off");
    rules.push({
      id: row.default_rule_id,
      key: everyoneElseRuleKey(row.id),
      status: "Running",
      layerId: row.default_rule_id,
      variations: [everyoneElse],
      trafficAllocation: [{ entityId: everyoneElse.id, endOfRange: 10000 }],
      audienceIds: [],
      forcedVariations: {},
    });
    rollouts.push({ id: row.rollout_id, experiments: rules });
    featureFlags.push({
      id: row.id,
      key: row.key,
      rolloutId: row.rollout_id,
      experimentIds: enabled
        ? experiments.filter((x) => x.row.flag_id === row.id).map((x) => x.row.id)
        : [],
      variables: flag.variables.map((v): VariableDef => {
        const def: VariableDef = {
          id: v.id,
          key: v.key,
          type: v.type === "json" ? "string" : v.type,
          defaultValue: v.defaultValue,
        };
        if (v.type === "json") def.subType = "json";
        return def;
      }),
    });
  }

  // ---- events: experimentIds = published experiments with a metric on the event
  const eventDefs: EventDef[] = publishedEvents.map((e) => ({
    id: e.id,
    key: e.key,
    experimentIds: experiments
      .filter((x) => x.metrics.some((m) => m.eventId === e.id))
      .map((x) => x.row.id),
  }));
  const webEvents: WebEvent[] = publishedEvents.map((e) => {
    const event: WebEvent = { id: e.id, type: e.type };
    if (e.page_id !== null) event.pageId = e.page_id;
    if (e.selector !== null && e.selector !== "") event.selector = e.selector;
    return event;
  });

  // ---- web experiments
  const webExperiments: WebExperiment[] = experiments.map((x) => {
    const variations: WebVariation[] = x.variations.map((v) => {
      const variation: WebVariation = { id: v.id, changes: v.changes ?? [] };
      if (Array.isArray(v.sectionVariationIds))
        variation.sectionVariationIds = v.sectionVariationIds;
      return variation;
    });
    const web: WebExperiment = {
      id: x.row.id,
      type: x.row.type,
      pageIds: x.pageIds,
      metrics: x.metrics,
      sharedChanges: x.sharedChanges,
      variations,
    };
    if (x.sections !== null) web.sections = x.sections;
    web.allocationPolicy = x.row.allocation_policy;
    return web;
  });

  if (columns.problems.length > 0) throw new DatafileBuildError(columns.problems);

  const holdout = holdoutsOf(environment);
  return {
    version: "4",
    accountId: project.account_id,
    projectId: project.id,
    revision: String(revision),
    sdkKey: environment.sdk_key,
    environmentKey: environment.key,
    anonymizeIP: true,
    botFiltering: true,
    // With a holdout, SDKs report every flag decision (docs/holdouts.md "Results"): a user the
    // holdout does not hold is then counted on the same trigger as a held-out one, whom the SDK
    // always reports. Without one, only A/B rules make impressions (docs/flags.md).
    sendFlagDecisions: holdout.holdouts?.some((h) => h.status === "Running") ?? false,
    attributes: byCreation(snapshot.attributes).map((a) => ({ id: a.id, key: a.key })),
    audiences: legacyAudiences,
    typedAudiences,
    events: eventDefs,
    experiments: topLevel,
    groups,
    featureFlags,
    rollouts,
    integrations: [],
    ...holdout,
    web: {
      pages: webPages,
      experiments: webExperiments,
      events: webEvents,
      lists: webLists,
      integrations: { ...DEFAULT_INTEGRATIONS },
    },
  };
}

/**
 * The environment's holdout in the SDK's `holdouts` format (docs/holdouts.md): one global holdout
 * whose `holdout` variation covers buckets 0..basisPoints−1 of bucketingId + holdout id, plus an
 * `everyone_else` variation in no range (never bucketed; the id results record for the others).
 * Neither variation enables a flag, so a held-out visitor gets every flag's defaults. Never set,
 * or only ever 0 %: no `holdouts` field at all. Set to 0 % after a share above 0: the same
 * holdout, `Concluded` with an empty range — no SDK or edge holds anyone, but SDK events of
 * older revisions that did still name a holdout ingest knows (docs/holdouts.md "Share changes").
 */
function holdoutsOf(environment: EnvironmentRow): { holdouts?: Holdout[] } {
  const spec = holdoutSpecOf(environment);
  if (spec === null || (spec.basisPoints === 0 && !spec.everHeld)) return {};
  return {
    holdouts: [
      {
        id: spec.id,
        key: holdoutKey(environment.key),
        status: spec.basisPoints > 0 ? "Running" : "Concluded",
        variations: [
          {
            id: spec.holdoutVariationId,
            key: HOLDOUT_VARIATION_KEY,
            featureEnabled: false,
            variables: [],
          },
          {
            id: spec.everyoneElseVariationId,
            key: EVERYONE_ELSE_VARIATION_KEY,
            featureEnabled: false,
            variables: [],
          },
        ],
        trafficAllocation: [{ entityId: spec.holdoutVariationId, endOfRange: spec.basisPoints }],
        audienceIds: [],
        audienceConditions: [],
        includedFlags: [],
        excludedFlags: [],
      },
    ],
  };
}

/**
 * The datafile variation delivering flag variation `key`: `featureEnabled` unless it is "off",
 * every variable with the variation's value or its default (as Optimizely lists them). `id`
 * overrides the flag variation's id (an A/B rule's own variation). An unknown key (a stored row
 * the API would refuse) delivers "off".
 */
function flagVariation(flag: ParsedFlag, key: string, id?: string): Variation {
  const spec =
    flag.variations.find((v) => v.key === key) ?? flag.variations.find((v) => v.key === "off");
  const enabled = spec !== undefined && spec.key !== "off";
  const variables: VariableUsage[] = flag.variables.map((v) => ({
    id: v.id,
    // Own keys only: a variable keyed "toString" must not read Object.prototype's.
    value:
      enabled && Object.prototype.hasOwnProperty.call(spec.variables, v.key)
        ? spec.variables[v.key]!
        : v.defaultValue,
  }));
  return {
    id: id ?? spec?.id ?? `${flag.row.id}0`,
    key: spec?.key ?? key,
    featureEnabled: enabled,
    variables,
  };
}

/** The stored text of a datafile: compact JSON (what KV holds and SDKs download). */
export function serializeDatafile(datafile: Datafile): string {
  return JSON.stringify(datafile);
}

/**
 * The datafile's content without its revision: the text with `revision` set to "" (key order
 * kept). Two revisions with equal content text publish the same thing.
 */
export function contentText(datafile: object): string {
  return JSON.stringify({ ...datafile, revision: "" });
}
