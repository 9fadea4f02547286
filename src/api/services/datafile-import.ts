/**
 * Importing a datafile into management records (docs/api.md "Importing a datafile"): the inverse
 * of src/api/services/datafile-build.ts. An Optimizely v4 datafile with our `web` section becomes
 * attributes, audiences, events, pages, groups, lists, feature flags and experiments of a project,
 * and the experiments' statuses and the flags' settings in one environment — so the admin, the API, the CLI and results show
 * what a hand-written or exported datafile runs, and later edits publish from the records
 * instead of overwriting them.
 *
 * PURE: the parsed datafile and the project's current rows in, a plan out (rows to create, rows to
 * change, rows already equal, and problems with JSON paths). src/api/services/datafile-import-apply.ts
 * writes a plan.
 *
 * Ids are kept: an experiment's id is part of its bucketing key and its variations' ids name the
 * traffic ranges, so an imported experiment buckets every visitor exactly as the datafile did.
 * Records are matched by id; a record of the same key but another id is a conflict (the import
 * would otherwise create a second `checkout_button`).
 */
import type {
  AudienceConditionTree,
  Change,
  ConditionTree,
  Datafile,
  Experiment,
  FeatureFlag,
  LeafCondition,
  TrafficAllocationEntry,
  WebExperiment,
  WebMetric,
  WebSection,
} from "../../core/datafile-types";
import type {
  AttributeRow,
  AudienceRow,
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
  VariationSpec,
} from "../store/rows";
import { KEY_PATTERN } from "../schemas/fields";
import { OFF_VARIATION_KEY } from "../schemas/flags";
import {
  experimentTrafficAllocation,
  groupTrafficAllocation,
  LEGACY_AUDIENCE_PLACEHOLDER,
} from "./datafile-build";
import { holdsType, parseFlag } from "./flags";

/** The resource tables an import writes, in the order they must be written (references first). */
export const IMPORT_TABLES = [
  "attributes",
  "lists",
  "audiences",
  "pages",
  "events",
  "groups",
  "flags",
  "experiments",
] as const;
export type ImportTable = (typeof IMPORT_TABLES)[number];

/** The row type of each imported table. */
export interface ImportRows {
  attributes: AttributeRow;
  lists: ListRow;
  audiences: AudienceRow;
  pages: PageRow;
  events: EventRow;
  groups: GroupRow;
  flags: FlagRow;
  experiments: ExperimentRow;
}

/** The project's current rows (what the import compares with). */
export type ExistingRows = { [T in ImportTable]: readonly ImportRows[T][] };

/** One problem of an import, at a JSON path of the datafile. */
export interface ImportProblem {
  path: string;
  message: string;
  severity: "error" | "warning";
}

/** What happens to one record. */
export interface ImportItem<T extends ImportTable = ImportTable> {
  table: T;
  action: "create" | "update" | "unchanged";
  /** The row as it will be stored (for `update`: with the version the write expects to bump). */
  row: ImportRows[T];
  /** `update` only: the row now stored. */
  current?: ImportRows[T];
  /** `update` only: the columns that change. */
  changedColumns?: string[];
  /** How a person names it: its key, or its name. */
  label: string;
}

/** The experiment statuses the import sets in the target environment. */
export interface ImportStatus {
  experimentId: string;
  status: ExperimentStatusValue;
  /** The status stored now in that environment (`Not started` when none). */
  current: ExperimentStatusValue;
}

export interface ImportPlan {
  items: ImportItem[];
  statuses: ImportStatus[];
  problems: ImportProblem[];
  /** Errors present: nothing may be written. */
  ok: boolean;
}

/** What the plan needs besides the datafile and the rows. */
export interface ImportContext {
  projectId: string;
  /** ISO timestamp for created/updated rows. */
  now: string;
  /** The environment imported into: its flag settings are the datafile's rollouts. */
  environmentId?: string;
  /** experiment id → its status in the target environment now. */
  currentStatuses: ReadonlyMap<string, string>;
  /** Ids of the datafile already used by records of other projects (ids are global). */
  takenElsewhere?: Partial<Record<ImportTable, ReadonlySet<string>>>;
  /** Members of private lists the datafile names but does not carry (loaded from KV). */
  listMembers?: ReadonlyMap<string, readonly string[]>;
}

const STATUSES: ReadonlySet<string> = new Set(["Not started", "Running", "Paused", "Archived"]);
const EXPERIMENT_TYPES: ReadonlySet<string> = new Set(["ab", "multivariate", "split_url"]);

/**
 * The columns a datafile carries, per table: an import sets these and nothing else on a record
 * that exists (names, descriptions, archive flags and event caps are the records' own — a
 * datafile has no place for them).
 */
const FROM_DATAFILE: { [T in ImportTable]: ReadonlyArray<keyof ImportRows[T] & string> } = {
  attributes: ["key"],
  lists: ["key", "values"],
  audiences: ["name", "conditions"],
  pages: ["key", "activation", "selector", "conditions"],
  events: ["key", "type", "page_id", "selector"],
  groups: ["policy", "allocation"],
  // `environments` holds every environment's settings: the plan merges this environment's in.
  flags: ["key", "variables", "variations", "environments", "rollout_id", "default_rule_id"],
  experiments: [
    "key",
    "type",
    "layer_id",
    "group_id",
    "flag_id",
    "traffic",
    "allocation_policy",
    "audience_conditions",
    "page_ids",
    "metrics",
    "variations",
    "sections",
    "shared_changes",
    "forced_variations",
  ],
};

/**
 * Weights (basis points summing to 10000) and the traffic share that reproduce `ranges` exactly
 * under `experimentTrafficAllocation`, or null when no integer weights can.
 */
function weightsFromRanges(
  variationIds: readonly string[],
  ranges: readonly TrafficAllocationEntry[],
): { traffic: number; weights: Map<string, number> } | null {
  // Our ranges follow the variation order, skip weight-0 variations, and have no gaps or
  // unallocated ("" entity) entries except through `traffic`.
  const order = ranges.map((r) => r.entityId);
  const inOrder = variationIds.filter((id) => order.includes(id));
  if (order.length !== inOrder.length || order.some((id, i) => id !== inOrder[i])) return null;
  const last = ranges.at(-1)?.endOfRange ?? 0;
  const traffic = Math.min(10000, Math.max(0, Math.round(last)));
  const widths: number[] = [];
  let previous = 0;
  for (const r of ranges) {
    widths.push(r.endOfRange - previous);
    previous = r.endOfRange;
  }
  if (widths.some((w) => !(w > 0))) return null;
  const weights = new Map<string, number>(variationIds.map((id) => [id, 0]));
  if (traffic === 0 || ranges.length === 0) {
    // Nothing allocated: equal weights, traffic 0 (buckets nobody, as the ranges did).
    const share = variationIds.length > 0 ? Math.floor(10000 / variationIds.length) : 0;
    variationIds.forEach((id, i) =>
      weights.set(id, i === 0 ? 10000 - share * (variationIds.length - 1) : share),
    );
    return ranges.length === 0 || last === 0 ? { traffic: 0, weights } : null;
  }
  // Largest remainder: integer weights proportional to the widths.
  const exact = widths.map((w) => (w * 10000) / traffic);
  const floors = exact.map(Math.floor);
  let rest = 10000 - floors.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((x, i) => ({ i, r: x - Math.floor(x) }))
    .sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (rest <= 0) break;
    floors[i] = (floors[i] ?? 0) + 1;
    rest--;
  }
  order.forEach((id, i) => weights.set(id, floors[i] ?? 0));
  const rebuilt = experimentTrafficAllocation(
    variationIds.map((id) => ({ id, weight: weights.get(id) ?? 0 })),
    traffic,
  );
  const same =
    rebuilt.length === ranges.length &&
    rebuilt.every(
      (r, i) => r.entityId === ranges[i]?.entityId && r.endOfRange === ranges[i]?.endOfRange,
    );
  return same ? { traffic, weights } : null;
}

/** Group allocation entries that reproduce a group's ranges ("" = unallocated). */
function groupAllocationFromRanges(
  ranges: readonly TrafficAllocationEntry[],
): GroupAllocationEntry[] | null {
  const out: GroupAllocationEntry[] = [];
  let previous = 0;
  for (const r of ranges) {
    const weight = r.endOfRange - previous;
    previous = r.endOfRange;
    if (!Number.isInteger(weight) || weight <= 0) return null;
    out.push({ experimentId: r.entityId, weight });
  }
  return previous <= 10000 ? out : null;
}

/** The datafile's columns of `table` that differ between `current` and `next`. */
function changedColumns<T extends ImportTable>(
  table: T,
  current: ImportRows[T],
  next: ImportRows[T],
): string[] {
  const a = current as unknown as Record<string, unknown>;
  const b = next as unknown as Record<string, unknown>;
  return FROM_DATAFILE[table].filter((k) => !sameColumn(a[k], b[k]));
}

/** JSON with object keys sorted, so two texts of the same value compare equal. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object")
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value) ?? "null";
}

/**
 * Equal stored values: the same scalar, or JSON columns holding the same value whatever their
 * key order (records written by the API and by an import order keys differently).
 */
function sameColumn(a: unknown, b: unknown): boolean {
  if ((a ?? null) === (b ?? null)) return true;
  if (typeof a !== "string" || typeof b !== "string") return false;
  try {
    return canonicalJson(JSON.parse(a)) === canonicalJson(JSON.parse(b));
  } catch {
    return false;
  }
}

/** A stored `lists.values` column, or undefined when it is not a JSON array of strings. */
function parseStoredList(text: string): string[] | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Plans the import of `datafile` (already parsed and valid: src/core/datafile-parse.ts) into the
 * project whose rows are `existing`. Never throws; problems carry the datafile path.
 */
export function planDatafileImport(
  datafile: Datafile,
  existing: ExistingRows,
  context: ImportContext,
): ImportPlan {
  const problems: ImportProblem[] = [];
  const items: ImportItem[] = [];
  const statuses: ImportStatus[] = [];
  const { projectId, now } = context;
  const error = (path: string, message: string) =>
    problems.push({ path, message, severity: "error" });
  const warn = (path: string, message: string) =>
    problems.push({ path, message, severity: "warning" });

  // Holdouts are an environment setting (docs/holdouts.md), not records: an import cannot carry
  // one over exactly (its ids are the bucketing key), so it refuses a running one rather than
  // drop it silently. One that holds nobody (a holdout set to 0 % is published concluded) is
  // left out with a warning, so an exported file imports again.
  const holdouts = datafile.holdouts ?? [];
  if (holdouts.some((h) => h.status === "Running"))
    error(
      "$.holdouts",
      "holdouts are not imported: set the environment's holdout instead (PUT /environments/{environmentId}/holdout, docs/holdouts.md) and remove this section",
    );
  else if (holdouts.length > 0)
    warn("$.holdouts", "holdouts that are not running hold nobody and are not imported");

  /** Adds the row as create/update/unchanged after the id and key checks. */
  function place<T extends ImportTable>(
    table: T,
    row: ImportRows[T],
    path: string,
    label: string,
  ): void {
    const rows = existing[table] as readonly ImportRows[T][];
    const current = rows.find((r) => r.id === row.id);
    const key = (row as { key?: string }).key;
    if (key !== undefined && !KEY_PATTERN.test(key)) {
      error(
        `${path}.key`,
        `key ${JSON.stringify(key.slice(0, 80))} is not a valid key (letters, digits, _ . -, 1–64, starting with a letter or digit): the API and the admin could not address it`,
      );
      return;
    }
    if (key !== undefined) {
      const clash = rows.find((r) => (r as { key?: string }).key === key && r.id !== row.id);
      if (clash) {
        error(
          path,
          `the project already has ${table.replace(/s$/, "")} ${JSON.stringify(key)} with id ${clash.id}; the datafile's has id ${row.id} (ids are kept so bucketing does not change: rename or delete one)`,
        );
        return;
      }
    }
    if (!current && context.takenElsewhere?.[table]?.has(row.id)) {
      error(
        path,
        `id ${row.id} is used by another project: ids are kept so bucketing does not change, so a datafile's records can live in one project only`,
      );
      return;
    }
    if (!current) {
      items.push({ table, action: "create", row, label });
      return;
    }
    if (current.project_id !== projectId) {
      error(path, `id ${row.id} belongs to another project`);
      return;
    }
    const changed = changedColumns(table, current, row);
    const merged: ImportRows[T] = {
      ...current,
      updated_at: changed.length > 0 ? now : current.updated_at,
    };
    for (const column of FROM_DATAFILE[table]) merged[column] = row[column];
    items.push(
      changed.length > 0
        ? { table, action: "update", row: merged, current, changedColumns: changed, label }
        : { table, action: "unchanged", row: merged, label },
    );
  }

  // Rows are ordered by created_at in the datafile the build publishes: one millisecond apart in
  // file order, so a re-published datafile lists everything in the order of the imported one.
  const created = new Map<ImportTable, number>();
  const base = (table: ImportTable) => {
    const index = created.get(table) ?? 0;
    created.set(table, index + 1);
    const at = new Date(Date.parse(now) + index).toISOString();
    return { project_id: projectId, version: 1, created_at: at, updated_at: at };
  };
  const web = datafile.web;

  // ---- attributes
  datafile.attributes.forEach((a, i) =>
    place(
      "attributes",
      { ...base("attributes"), id: a.id, key: a.key, name: a.key, description: "" },
      `$.attributes[${i}]`,
      a.key,
    ),
  );

  // ---- lists (members inline, or loaded from KV for private lists)
  (web?.lists ?? []).forEach((l, i) => {
    const stored = existing.lists.find((r) => r.id === l.id);
    // Members: inline in the file, else the environment's private members, else the record's.
    const values =
      l.values ??
      context.listMembers?.get(l.id) ??
      (stored ? parseStoredList(stored.values) : undefined);
    if (values === undefined)
      warn(
        `$.web.lists[${i}]`,
        `list ${JSON.stringify(l.key)} carries no members (a private list): imported empty; upload its members under /lists/{id}`,
      );
    place(
      "lists",
      { ...base("lists"), id: l.id, key: l.key, name: l.key, values: JSON.stringify(values ?? []) },
      `$.web.lists[${i}]`,
      l.key,
    );
  });

  // ---- audiences: typed ones first; legacy ones only when no typed audience has their id
  const typedIds = new Set((datafile.typedAudiences ?? []).map((a) => a.id));
  const audienceRow = (id: string, name: string, conditions: unknown): AudienceRow => ({
    ...base("audiences"),
    id,
    name,
    description: "",
    conditions: JSON.stringify(conditions),
    archived: 0,
  });
  (datafile.typedAudiences ?? []).forEach((a, i) =>
    place("audiences", audienceRow(a.id, a.name, a.conditions), `$.typedAudiences[${i}]`, a.name),
  );
  datafile.audiences.forEach((a, i) => {
    if (typedIds.has(a.id)) return;
    const path = `$.audiences[${i}]`;
    if (a.conditions === LEGACY_AUDIENCE_PLACEHOLDER) {
      error(path, `audience ${a.id} has only the placeholder conditions and no typed audience`);
      return;
    }
    let conditions: ConditionTree<LeafCondition> | undefined;
    if (typeof a.conditions === "string") {
      try {
        conditions = JSON.parse(a.conditions) as ConditionTree<LeafCondition>;
      } catch {
        error(`${path}.conditions`, "not a JSON condition tree");
        return;
      }
    } else {
      conditions = a.conditions;
    }
    place("audiences", audienceRow(a.id, a.name, conditions), path, a.name);
  });

  // ---- pages
  (web?.pages ?? []).forEach((p, i) =>
    place(
      "pages",
      {
        ...base("pages"),
        id: p.id,
        key: p.key,
        name: p.key,
        activation: p.activation,
        selector: p.selector ?? null,
        conditions: JSON.stringify(p.conditions),
        archived: 0,
      },
      `$.web.pages[${i}]`,
      p.key,
    ),
  );

  // ---- events (the Optimizely list names them; `web.events` adds type, page and selector)
  const webEvents = new Map((web?.events ?? []).map((e) => [e.id, e]));
  datafile.events.forEach((e, i) => {
    const w = webEvents.get(e.id);
    place(
      "events",
      {
        ...base("events"),
        id: e.id,
        key: e.key,
        name: e.key,
        type: w?.type ?? "custom",
        page_id: w?.pageId ?? null,
        selector: w?.selector ?? null,
        max_per_visitor_per_day: null,
        archived: 0,
      },
      `$.events[${i}]`,
      e.key,
    );
  });

  // ---- groups and experiments
  const webExperiments = new Map<string, WebExperiment>(
    (web?.experiments ?? []).map((x) => [x.id, x]),
  );
  const experimentsAt: Array<{ x: Experiment; path: string; groupId: string | null }> = [];
  datafile.experiments.forEach((x, i) =>
    experimentsAt.push({ x, path: `$.experiments[${i}]`, groupId: null }),
  );
  datafile.groups.forEach((g, gi) => {
    const path = `$.groups[${gi}]`;
    const policy = g.policy === "overlapping" ? "overlapping" : "random";
    if (g.policy !== policy) warn(`${path}.policy`, `policy ${g.policy} imported as random`);
    const allocation = groupAllocationFromRanges(g.trafficAllocation);
    if (!allocation)
      error(`${path}.trafficAllocation`, "ranges must rise and end at most at 10000");
    place(
      "groups",
      {
        ...base("groups"),
        id: g.id,
        name: `group_${g.id}`,
        policy,
        allocation: JSON.stringify(allocation ?? []),
      },
      path,
      `group_${g.id}`,
    );
    if (allocation) {
      const rebuilt = groupTrafficAllocation(allocation, new Set(g.experiments.map((x) => x.id)));
      const same =
        rebuilt.length === g.trafficAllocation.length &&
        rebuilt.every((r, i) => r.entityId === g.trafficAllocation[i]?.entityId);
      if (!same)
        warn(
          `${path}.trafficAllocation`,
          "ranges name experiments outside the group: those ranges import as unallocated",
        );
    }
    g.experiments.forEach((x, xi) =>
      experimentsAt.push({ x, path: `${path}.experiments[${xi}]`, groupId: g.id }),
    );
  });

  // ---- feature flags (docs/flags.md): before the experiments, which may be their A/B rules
  const flagPlan = planFlags(datafile, existing, context, error, warn, base);
  for (const { row, path } of flagPlan.rows) place("flags", row, path, row.key);

  // Created in the order of `web.experiments` (the build lists them in creation order).
  const webOrder = new Map((web?.experiments ?? []).map((x, i) => [x.id, i]));
  const rank = (id: string) => webOrder.get(id) ?? Number.MAX_SAFE_INTEGER;
  experimentsAt.sort((a, b) => rank(a.x.id) - rank(b.x.id));
  for (const { x, path, groupId } of experimentsAt) {
    const w = webExperiments.get(x.id);
    const type = w && EXPERIMENT_TYPES.has(w.type) ? w.type : "ab";
    const rule = flagPlan.ruleOf.get(x.id);
    if (rule) checkRuleVariations(x, path, rule, error);
    if (!w && !rule)
      warn(
        path,
        `experiment ${JSON.stringify(x.key)} has no web section: imported with no changes`,
      );
    if (x.type !== undefined && x.type !== "ab")
      warn(`${path}.type`, `rule type ${x.type} is imported as an A/B experiment`);
    const variationIds = x.variations.map((v) => v.id);
    const fromRanges = weightsFromRanges(variationIds, x.trafficAllocation);
    if (!fromRanges) {
      error(
        `${path}.trafficAllocation`,
        "these ranges cannot be expressed as variation weights and a traffic share without moving visitors between variations (ranges must follow the variation order, without gaps)",
      );
      continue;
    }
    const webVariations = new Map((w?.variations ?? []).map((v) => [v.id, v]));
    // A variation's name is the record's own (the datafile has none): kept by id.
    const stored = existing.experiments.find((r) => r.id === x.id);
    const storedNames = new Map<string, string>();
    if (stored) {
      try {
        for (const v of JSON.parse(stored.variations) as Array<{ id?: unknown; name?: unknown }>)
          if (typeof v.id === "string" && typeof v.name === "string") storedNames.set(v.id, v.name);
      } catch {
        // a corrupt column: no names to keep
      }
    }
    const variations: VariationSpec[] = x.variations.map((v) => {
      const name = storedNames.get(v.id);
      const spec: VariationSpec = {
        id: v.id,
        key: v.key,
        ...(name === undefined ? {} : { name }),
        weight: fromRanges.weights.get(v.id) ?? 0,
        changes: webVariations.get(v.id)?.changes ?? ([] as Change[]),
      };
      if (typeof v.featureEnabled === "boolean") spec.featureEnabled = v.featureEnabled;
      const sectionVariationIds = webVariations.get(v.id)?.sectionVariationIds;
      if (sectionVariationIds) spec.sectionVariationIds = sectionVariationIds;
      return spec;
    });
    const audienceConditions: AudienceConditionTree | null =
      x.audienceConditions ?? (x.audienceIds.length > 0 ? ["or", ...x.audienceIds] : null);
    const status = STATUSES.has(x.status) ? (x.status as ExperimentStatusValue) : "Not started";
    const currentStatus = context.currentStatuses.get(x.id);
    if ((currentStatus === "Archived" || (stored && stored.archived)) && status !== "Archived") {
      error(
        `${path}.status`,
        `experiment ${JSON.stringify(x.key)} is archived here, and archived experiments stay archived (docs/api.md "Experiments"): give it a new id and key to run it again`,
      );
      continue;
    }
    if (status !== x.status)
      warn(`${path}.status`, `status ${x.status} is imported as Not started`);
    const metrics: WebMetric[] = w?.metrics ?? [];
    const sections: WebSection[] | null = w?.sections ?? null;
    place(
      "experiments",
      {
        ...base("experiments"),
        id: x.id,
        key: x.key,
        name: x.key,
        description: "",
        type,
        layer_id: x.layerId,
        group_id: groupId,
        // The datafile's flags say which experiments are their A/B rules. A rule the file does
        // not list stays one: a flag that is off here (or a rule Archived here) lists none.
        flag_id: rule?.flag.id ?? stored?.flag_id ?? null,
        traffic: fromRanges.traffic,
        allocation_policy: w?.allocationPolicy === "bandit" ? "bandit" : "manual",
        audience_conditions:
          audienceConditions === null ? null : JSON.stringify(audienceConditions),
        page_ids: JSON.stringify(w?.pageIds ?? []),
        metrics: JSON.stringify(metrics),
        variations: JSON.stringify(variations),
        sections: sections === null ? null : JSON.stringify(sections),
        shared_changes: JSON.stringify(w?.sharedChanges ?? []),
        forced_variations: JSON.stringify(x.forcedVariations),
        archived: 0,
      },
      path,
      x.key,
    );
    statuses.push({
      experimentId: x.id,
      status,
      current:
        currentStatus && STATUSES.has(currentStatus)
          ? (currentStatus as ExperimentStatusValue)
          : "Not started",
    });
  }

  checkRuleOrder(datafile, items, error);

  return { items, statuses, problems, ok: !problems.some((p) => p.severity === "error") };
}

// ---------------------------------------------------------------------------------------------
// Feature flags

/** A flag of the datafile as records: the row, and the A/B rules it claims. */
interface FlagRule {
  flag: FeatureFlag;
  path: string;
  /** Flag variation key → variable key → value (as the datafile carries it; defaults left out). */
  values: ReadonlyMap<string, Readonly<Record<string, string>>>;
  variables: readonly FlagVariableSpec[];
}

/** Variable id → key, and the values of a variation that differ from the defaults. */
function overridesOf(
  variation: { variables?: ReadonlyArray<{ id: string; value: string }> },
  variables: readonly FlagVariableSpec[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const usage of variation.variables ?? []) {
    const variable = variables.find((v) => v.id === usage.id);
    if (variable && usage.value !== variable.defaultValue) out[variable.key] = usage.value;
  }
  return out;
}

const sameValues = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) =>
  canonicalJson(a) === canonicalJson(b);

/**
 * The flag rows of the datafile's `featureFlags` (this environment's settings merged into the
 * stored ones) and which experiments are their A/B rules. A flag whose rollout our model cannot
 * express exactly — a rule with several variations or split ranges, an Everyone Else that is not
 * 100 % of everyone, a disabled variation other than "off", one key with two sets of values — is
 * an error: importing it differently would move visitors.
 */
function planFlags(
  datafile: Datafile,
  existing: ExistingRows,
  context: ImportContext,
  error: (path: string, message: string) => void,
  warn: (path: string, message: string) => void,
  base: (table: ImportTable) => {
    project_id: string;
    version: number;
    created_at: string;
    updated_at: string;
  },
): {
  rows: Array<{ row: FlagRow; path: string }>;
  ruleOf: Map<string, FlagRule>;
  flagIds: ReadonlySet<string>;
} {
  const rows: Array<{ row: FlagRow; path: string }> = [];
  const ruleOf = new Map<string, FlagRule>();
  // Ids the file does not give (an "off" nothing delivers, a flag without rollout) are derived
  // from the flag's id, lengthened until no id of the file or the project has them.
  const taken = new Set<string>(
    [
      ...datafile.experiments,
      ...datafile.groups.flatMap((g) => g.experiments),
      ...datafile.rollouts.flatMap((r) => r.experiments),
    ].flatMap((x) => [x.id, ...x.variations.map((v) => v.id)]),
  );
  for (const r of datafile.rollouts) taken.add(r.id);
  for (const f of datafile.featureFlags) taken.add(f.id);
  for (const table of IMPORT_TABLES) for (const row of existing[table]) taken.add(row.id);
  const freshId = (candidate: string): string => {
    let id = candidate;
    while (taken.has(id)) id += "0";
    taken.add(id);
    return id;
  };
  const experimentById = new Map(
    [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)].map((x) => [
      x.id,
      x,
    ]),
  );
  datafile.featureFlags.forEach((flag, fi) => {
    const path = `$.featureFlags[${fi}]`;
    let ok = true;
    const fail = (at: string, message: string) => {
      ok = false;
      error(at, message);
    };
    // Variables: {type: "string", subType: "json"} is the json type.
    const variables: FlagVariableSpec[] = flag.variables.map((v, vi) => {
      const type = v.type === "string" && v.subType === "json" ? "json" : v.type;
      if (!holdsType(type, v.defaultValue))
        fail(
          `${path}.variables[${vi}].defaultValue`,
          `${JSON.stringify(v.defaultValue)} is not a ${type} the API can hold (it would read back differently)`,
        );
      if (!KEY_PATTERN.test(v.key))
        fail(
          `${path}.variables[${vi}].key`,
          `variable key ${JSON.stringify(v.key)} is not a valid key`,
        );
      return { id: v.id, key: v.key, type, defaultValue: v.defaultValue };
    });
    // Variations by key, from the rollout's rules and the A/B rules.
    const variations = new Map<string, FlagVariationSpec>();
    const addVariation = (
      v: {
        id: string;
        key: string;
        featureEnabled?: boolean;
        variables?: Array<{ id: string; value: string }>;
      },
      at: string,
    ) => {
      const enabled = v.featureEnabled === true;
      if (enabled === (v.key === OFF_VARIATION_KEY)) {
        fail(
          at,
          enabled
            ? 'the variation "off" is enabled: a flag\'s "off" is its disabled variation'
            : `variation ${JSON.stringify(v.key)} is disabled: a flag has one disabled variation, "off"`,
        );
        return;
      }
      if (!KEY_PATTERN.test(v.key)) {
        fail(`${at}.key`, `variation key ${JSON.stringify(v.key)} is not a valid key`);
        return;
      }
      const values = enabled ? overridesOf(v, variables) : {};
      for (const usage of v.variables ?? []) {
        const variable = variables.find((x) => x.id === usage.id);
        if (enabled && variable && !holdsType(variable.type, usage.value))
          fail(
            `${at}.variables`,
            `${JSON.stringify(usage.value)} is not a ${variable.type} the API can hold`,
          );
      }
      const seen = variations.get(v.key);
      if (!seen) variations.set(v.key, { id: v.id, key: v.key, name: v.key, variables: values });
      else if (!sameValues(seen.variables, values))
        fail(
          `${at}.variables`,
          `variation ${JSON.stringify(v.key)} has other variable values elsewhere in this flag: one key, one set of values`,
        );
    };

    const rollout = flag.rolloutId
      ? datafile.rollouts.find((r) => r.id === flag.rolloutId)
      : undefined;
    const rolloutPath = `$.rollouts[${rollout ? datafile.rollouts.indexOf(rollout) : -1}]`;
    const ruleRows = rollout?.experiments ?? [];
    if (ruleRows.length === 0)
      warn(
        `${path}.rolloutId`,
        `flag ${JSON.stringify(flag.key)} has no rollout rules: it imports with an Everyone Else rule delivering "off" (disabled, defaults, as before; decide() now names the variation "off")`,
      );
    const rules: FlagEnvironmentSpec["rules"] = [];
    let defaultVariationKey = OFF_VARIATION_KEY;
    ruleRows.forEach((rule, ri) => {
      const at = `${rolloutPath}.experiments[${ri}]`;
      const last = ri === ruleRows.length - 1;
      const variation = rule.variations[0];
      const ranges = rule.trafficAllocation;
      const simple =
        rule.variations.length === 1 &&
        variation !== undefined &&
        (ranges.length === 0 || (ranges.length === 1 && ranges[0]!.entityId === variation.id));
      if (!simple || !variation) {
        fail(
          at,
          "a delivery rule here delivers one variation to a share of its audience: this one has several variations or ranges",
        );
        return;
      }
      addVariation(variation, `${at}.variations[0]`);
      const traffic = ranges[0]?.endOfRange ?? 0;
      const audienceConditions =
        rule.audienceConditions ??
        (rule.audienceIds.length > 0 ? ["or", ...rule.audienceIds] : null);
      if (last) {
        const everyone =
          audienceConditions === null ||
          (Array.isArray(audienceConditions) && audienceConditions.length === 0);
        if (traffic !== 10000 || !everyone)
          fail(at, "the last rule (Everyone Else) must deliver its variation to 100 % of everyone");
        defaultVariationKey = variation.key;
        return;
      }
      if (!KEY_PATTERN.test(rule.key))
        fail(`${at}.key`, `rule key ${JSON.stringify(rule.key)} is not a valid key`);
      rules.push({
        id: rule.id,
        key: rule.key,
        audienceConditions: audienceConditions as unknown[] | null,
        traffic,
        variationKey: variation.key,
      });
    });

    // A/B rules: their variations are flag variations too.
    for (const [ei, id] of flag.experimentIds.entries()) {
      const experiment = experimentById.get(id);
      if (!experiment) continue;
      if (ruleOf.has(id)) {
        fail(`${path}.experimentIds[${ei}]`, `experiment ${id} is an A/B rule of another flag too`);
        continue;
      }
      experiment.variations.forEach((v, vi) =>
        addVariation(
          v,
          `${path}.experimentIds[${ei}] (experiment ${experiment.key}).variations[${vi}]`,
        ),
      );
    }
    if (!ok) return;
    const stored = existing.flags.find((r) => r.id === flag.id);
    const storedFlag = stored ? parseFlag(stored) : null;
    // Variations other environments deliver stay (by key, with their ids and names); the file's
    // values win for the keys it carries.
    const merged = new Map<string, FlagVariationSpec>();
    for (const v of storedFlag?.variations ?? []) merged.set(v.key, v);
    for (const [key, v] of variations) {
      const kept = merged.get(key);
      merged.set(key, kept ? { ...kept, variables: v.variables } : v);
    }
    if (!merged.has(OFF_VARIATION_KEY))
      merged.set(OFF_VARIATION_KEY, {
        id: freshId(`${flag.id}0`),
        key: OFF_VARIATION_KEY,
        name: "Off",
        variables: {},
      });

    const values = new Map([...variations].map(([key, v]) => [key, v.variables]));
    const rule: FlagRule = { flag, path, values, variables };
    for (const id of flag.experimentIds) if (experimentById.has(id)) ruleOf.set(id, rule);

    // This environment's settings from the file; the others' as stored. A flag the file
    // publishes as off (no rules, Everyone Else "off", no A/B rules) is off here: its stored
    // rules stay for when it is turned on again.
    const environments = { ...(storedFlag?.environments ?? {}) };
    if (context.environmentId !== undefined) {
      const off =
        rules.length === 0 &&
        defaultVariationKey === OFF_VARIATION_KEY &&
        flag.experimentIds.length === 0;
      const previous = Object.prototype.hasOwnProperty.call(environments, context.environmentId)
        ? environments[context.environmentId]
        : undefined;
      environments[context.environmentId] = off
        ? {
            enabled: false,
            rules: previous?.rules ?? [],
            defaultVariationKey: previous?.defaultVariationKey ?? OFF_VARIATION_KEY,
          }
        : { enabled: true, rules, defaultVariationKey };
    }
    const ordered = [
      merged.get(OFF_VARIATION_KEY)!,
      ...[...merged.values()].filter((v) => v.key !== OFF_VARIATION_KEY),
    ];
    rows.push({
      path,
      row: {
        ...base("flags"),
        id: flag.id,
        key: flag.key,
        name: stored?.name ?? flag.key,
        description: stored?.description ?? "",
        variables: JSON.stringify(variables),
        variations: JSON.stringify(ordered),
        environments: JSON.stringify(environments),
        rollout_id: flag.rolloutId || stored?.rollout_id || freshId(`${flag.id}2`),
        default_rule_id: ruleRows.at(-1)?.id ?? stored?.default_rule_id ?? freshId(`${flag.id}1`),
        archived: 0,
      },
    });
  });
  return { rows, ruleOf, flagIds: new Set(datafile.featureFlags.map((f) => f.id)) };
}

/** An A/B rule's variations must carry exactly what the flag variation of their key does. */
function checkRuleVariations(
  experiment: Experiment,
  path: string,
  rule: FlagRule,
  error: (path: string, message: string) => void,
): void {
  experiment.variations.forEach((v, vi) => {
    const values = rule.values.get(v.key);
    const own = v.featureEnabled === true ? overridesOf(v, rule.variables) : {};
    if (values !== undefined && !sameValues(values, own))
      error(
        `${path}.variations[${vi}].variables`,
        `the values differ from flag ${rule.flag.key}'s variation ${JSON.stringify(v.key)}`,
      );
  });
}

/**
 * The build lists a flag's A/B rules in the experiments' creation order: a file listing them in
 * another order cannot be kept (a visitor two rules would take would change rule).
 */
function checkRuleOrder(
  datafile: Datafile,
  items: readonly ImportItem[],
  error: (path: string, message: string) => void,
): void {
  const createdAt = new Map<string, string>();
  for (const item of items)
    if (item.table === "experiments") createdAt.set(item.row.id, item.row.created_at);
  datafile.featureFlags.forEach((flag, fi) => {
    const ids = flag.experimentIds.filter((id) => createdAt.has(id));
    const sorted = ids.slice().sort((a, b) => {
      const x = createdAt.get(a)!;
      const y = createdAt.get(b)!;
      return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
    });
    if (sorted.some((id, i) => id !== ids[i]))
      error(
        `$.featureFlags[${fi}].experimentIds`,
        `the A/B rules are evaluated in the experiments' order (${sorted.join(", ")}), not the file's: list them in the order of web.experiments`,
      );
  });
}
