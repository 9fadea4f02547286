/**
 * Planning an experiment write (docs/api.md "Experiments"): from a validated create or update
 * body (and the current row, on update) to the full row to store and the statements that go
 * with it, or the 422 / 409 that refuses it. Two halves: `loadExperimentReferences` reads what
 * the project holds (pages, events, audiences, the group); `buildExperimentRow` is pure — it
 * validates and builds the row from the body, the current row and those references.
 *
 * - Variation ids are generated. On PATCH a variation keeps its id when the request names it
 *   (`id`) or, failing that, when its key matches a current variation's: renaming a key while
 *   sending the id keeps the variation's buckets and sticky decisions.
 * - Multivariate experiments take `sections` ([{name, variations: [{name, key?, changes}]}]);
 *   the variations are the cartesian product of the sections' variations: key = the keys joined
 *   with "_", equal weights, changes concatenated in section order, and `sectionVariationIds`
 *   naming the combination. Client-sent variations are refused.
 * - New experiments are `Not started` in every environment of the project.
 * - Leaving a group (by update or delete) removes the experiment from the group's allocation,
 *   in the same batch and only if that write lands.
 * - An A/B rule of a feature flag (`flagId`, docs/flags.md "A/B rules") is an `ab` experiment
 *   whose variation keys name the flag's variations: the datafile gives each variation the flag
 *   variation's `featureEnabled` and variable values.
 */
import type { Change, WebMetric, WebSection } from "../../core/datafile-types";
import { conflict } from "../errors";
import { newId } from "../ids";
import { IdKeeper } from "./id-keeper";
import {
  MAX_COMBINATIONS,
  type ExperimentCreate,
  type ExperimentUpdate,
} from "../schemas/experiments";
import {
  findFlag,
  findGroup,
  listDeliveryRuleKeys,
  groupAllocationStatement,
  initialStatusesStatement,
  insertStatusStatement,
  listExperimentStatusRows,
  listPageActivations,
  listProjectIds,
  listRunningEnvironmentKeys,
} from "../store/experiments";
import type {
  ExperimentRow,
  FlagRow,
  FlagVariationSpec,
  GroupAllocationEntry,
  GroupRow,
  VariationSpec,
} from "../store/rows";
import { parseJson, updateStatement } from "../store/sql";
import { leavesOf } from "../schemas/condition-tree";
import { datafileProblems, Problems } from "./validation";

/** The write being planned: its project, and the id and time of the row. */
export interface ExperimentPlanContext {
  db: D1Database;
  projectId: string;
  /** The new experiment's id, or the id of the one being changed. */
  id: string;
  now: string;
}

/** A validated create body, or a validated update body with the row it changes. */
export type ExperimentPlanInput =
  | { kind: "create"; body: ExperimentCreate; current: null }
  | { kind: "update"; body: ExperimentUpdate; current: ExperimentRow };

/**
 * The planned write: the full row, statements for the same batch (after the row's own write and
 * its audit entry) and the statements undoing them.
 */
export interface ExperimentPlan {
  row: ExperimentRow;
  extra?: D1PreparedStatement[];
  undo?: D1PreparedStatement[];
}

/** What the project holds that an experiment may reference. */
export interface ExperimentReferences {
  pageIds: readonly string[];
  /**
   * The project's pages with their activation: a change whose selector the edge cannot run is
   * refused when the experiment has an immediate page (docs/changes.md "Selectors").
   */
  pages: ReadonlyArray<{ id: string; key: string; activation: string }>;
  eventIds: readonly string[];
  /** Empty when the experiment has no audience conditions (they are not read then). */
  audienceIds: readonly string[];
  /** The experiment's group, when it names one of the project. */
  group: GroupRow | null;
  /** The flag the experiment is an A/B rule of, when it names one of the project. */
  flag: FlagRow | null;
  /**
   * Keys of the project's flags' delivery rules: an experiment may not take one (the SDKs look
   * rollout rules and experiments up in one key map, docs/flags.md).
   */
  ruleKeys: ReadonlySet<string>;
}

/** Stored multivariate sections: WebSection plus the section variations' keys. */
interface StoredSection extends WebSection {
  name: string;
  variations: Array<{ id: string; key: string; name: string; changes: Change[] }>;
}

/**
 * A variation as the plan reads it: from the request body or, when the body has none, the
 * current one (stored variations have this shape too, so PATCH merges onto them as they are).
 */
interface PlannedVariation {
  id?: string | undefined;
  key: string;
  name?: string | undefined;
  weight: number;
  changes?: Change[] | undefined;
  featureEnabled?: boolean | undefined;
}

/** A multivariate section as the plan reads it (request or stored, like PlannedVariation). */
interface PlannedSection {
  id?: string | undefined;
  name: string;
  variations: ReadonlyArray<{
    id?: string | undefined;
    key?: string | undefined;
    name: string;
    changes?: Change[] | undefined;
  }>;
}

/** The experiment the write would leave: the body's fields over the current row's. */
interface ExperimentDraft {
  type: ExperimentRow["type"];
  currentVariations: VariationSpec[];
  currentSections: StoredSection[];
  pageIds: string[];
  metrics: WebMetric[];
  audienceConditions: unknown[] | null;
  sharedChanges: Change[];
  forcedVariations: Record<string, string>;
  groupId: string | null;
  flagId: string | null;
}

function draftOf({ body, current }: ExperimentPlanInput): ExperimentDraft {
  return {
    type: body.type ?? current?.type ?? "ab",
    currentVariations: parseJson<VariationSpec[]>(current?.variations, []),
    currentSections: parseJson<StoredSection[] | null>(current?.sections, null) ?? [],
    pageIds: body.pageIds ?? parseJson<string[]>(current?.page_ids, []),
    metrics: body.metrics ?? parseJson<WebMetric[]>(current?.metrics, []),
    audienceConditions:
      body.audienceConditions !== undefined
        ? body.audienceConditions
        : parseJson<unknown[] | null>(current?.audience_conditions, null),
    sharedChanges: body.sharedChanges ?? parseJson<Change[]>(current?.shared_changes, []),
    forcedVariations:
      body.forcedVariations ?? parseJson<Record<string, string>>(current?.forced_variations, {}),
    groupId: body.groupId !== undefined ? body.groupId : (current?.group_id ?? null),
    flagId: body.flagId !== undefined ? body.flagId : (current?.flag_id ?? null),
  };
}

// ---------------------------------------------------------------------------------------------
// Variations

/** A key from a name: lowercase letters, digits and _, at most 64 characters. */
function slug(name: string, fallback: string): string {
  const out = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 64);
  return out === "" ? fallback : out;
}

/** Equal basis-point weights summing to 10000 (the first ones get the remainder). */
export function equalWeights(count: number): number[] {
  const base = Math.floor(10000 / count);
  const remainder = 10000 - base * count;
  return Array.from({ length: count }, (_, i) => base + (i < remainder ? 1 : 0));
}

/**
 * Multivariate: stored sections (ids kept by id or name / key) and the generated combinations
 * (ids kept by key).
 */
function buildMultivariate(
  sections: readonly PlannedSection[],
  currentSections: StoredSection[],
  currentVariations: VariationSpec[],
  problems: Problems,
): { sections: StoredSection[]; variations: VariationSpec[] } {
  const sectionIds = new IdKeeper(currentSections.map((s) => ({ id: s.id, key: s.name })));
  const stored: StoredSection[] = [];
  const sectionNames = new Set<string>();
  sections.forEach((section, s) => {
    if (sectionNames.has(section.name))
      problems.add(["sections", s, "name"], "duplicate section name");
    sectionNames.add(section.name);
    const id = sectionIds.pick(section.id, section.name);
    const previous = currentSections.find((c) => c.id === id);
    const variationIds = new IdKeeper(previous?.variations ?? []);
    const keys = new Set<string>();
    const variations = section.variations.map((v, j) => {
      const key = v.key ?? slug(v.name, `v${j + 1}`);
      if (keys.has(key))
        problems.add(
          ["sections", s, "variations", j, v.key === undefined ? "name" : "key"],
          `duplicate key ${JSON.stringify(key)} in this section`,
        );
      keys.add(key);
      return {
        id: variationIds.pick(v.id, key),
        key,
        name: v.name,
        changes: v.changes ?? [],
      };
    });
    stored.push({ id, name: section.name, variations });
  });

  let combinations: Array<StoredSection["variations"]> = [[]];
  for (const section of stored) {
    const next: Array<StoredSection["variations"]> = [];
    for (const combination of combinations)
      for (const variation of section.variations) next.push([...combination, variation]);
    combinations = next;
    if (combinations.length > MAX_COMBINATIONS) break;
  }
  if (combinations.length > MAX_COMBINATIONS) {
    problems.add(
      ["sections"],
      `too many combinations (more than ${MAX_COMBINATIONS}): use fewer sections or section variations`,
    );
    return { sections: stored, variations: [] };
  }
  if (combinations.length < 2)
    problems.add(["sections"], "a multivariate experiment needs at least 2 combinations");

  const weights = equalWeights(combinations.length);
  const variationIds = new IdKeeper(currentVariations);
  const seen = new Set<string>();
  const variations = combinations.map((combination, i): VariationSpec => {
    const key = combination.map((v) => v.key).join("_");
    if (seen.has(key))
      problems.add(
        ["sections"],
        `two combinations get the key ${JSON.stringify(key)}; give the section variations distinct keys`,
      );
    seen.add(key);
    return {
      id: variationIds.pick(undefined, key),
      key,
      name: combination.map((v) => v.name).join(" / "),
      weight: weights[i] ?? 0,
      changes: combination.flatMap((v) => v.changes),
      sectionVariationIds: combination.map((v) => v.id),
    };
  });
  return { sections: stored, variations };
}

const isRedirect = (change: Change): boolean => change.type === "redirect";

/** ab and split_url: the variations from the request (or the current ones), checked. */
function buildVariations(
  input: ExperimentPlanInput,
  draft: ExperimentDraft,
  problems: Problems,
): { variations: VariationSpec[]; variationInputs: readonly PlannedVariation[] } {
  const { body } = input;
  const { type } = draft;
  if (body.sections !== undefined && body.sections !== null)
    problems.add(["sections"], `only multivariate experiments have sections (this one is ${type})`);
  const variationInputs: readonly PlannedVariation[] = body.variations ?? draft.currentVariations;
  if (body.variations === undefined && input.kind === "create")
    problems.add(["variations"], `required for ${type} experiments`);
  else if (variationInputs.length < 2)
    problems.add(
      ["variations"],
      `${type} experiments need at least 2 variations, got ${variationInputs.length}`,
    );
  const keys = new Map<string, number>();
  let total = 0;
  variationInputs.forEach((v, i) => {
    if (keys.has(v.key))
      problems.add(["variations", i, "key"], `duplicate variation key ${JSON.stringify(v.key)}`);
    keys.set(v.key, i);
    total += v.weight;
    if (type === "split_url") {
      const redirects = (v.changes ?? []).filter(isRedirect).length;
      if (i === 0 && redirects > 0)
        problems.add(
          ["variations", 0, "changes"],
          "the first variation of a split_url experiment is the original page: no redirect",
        );
      else if (i > 0 && redirects !== 1)
        problems.add(
          ["variations", i, "changes"],
          `every variation of a split_url experiment but the first needs exactly one redirect change, got ${redirects}`,
        );
    }
  });
  if (variationInputs.length > 0 && total !== 10000)
    problems.add(
      ["variations"],
      `the variation weights sum to ${total}; they must sum to 10000 (100%)`,
    );
  const ids = new IdKeeper(draft.currentVariations);
  const variations = variationInputs.map((v) => {
    const spec: VariationSpec = {
      id: ids.pick(v.id, v.key),
      key: v.key,
      weight: v.weight,
      changes: v.changes ?? [],
    };
    if (v.name !== undefined) spec.name = v.name;
    if (v.featureEnabled !== undefined) spec.featureEnabled = v.featureEnabled;
    return spec;
  });
  return { variations, variationInputs };
}

// ---------------------------------------------------------------------------------------------
// The plan

/**
 * Reads what the experiment of `input` may reference in its project: pages, events, audiences
 * (only when it has audience conditions) and its group (only when it names one).
 */
export async function loadExperimentReferences(
  db: D1Database,
  projectId: string,
  input: ExperimentPlanInput,
): Promise<ExperimentReferences> {
  const { audienceConditions, groupId, flagId } = draftOf(input);
  const [pages, eventIds, audienceIds, group, flag, ruleKeys] = await Promise.all([
    listPageActivations(db, projectId),
    listProjectIds(db, "events", projectId),
    audienceConditions === null ? [] : listProjectIds(db, "audiences", projectId),
    groupId === null ? null : findGroup(db, groupId, projectId),
    flagId === null ? null : findFlag(db, flagId, projectId),
    listDeliveryRuleKeys(db, projectId),
  ]);
  return { pageIds: pages.map((p) => p.id), pages, eventIds, audienceIds, group, flag, ruleKeys };
}

/**
 * The full row the write stores, from the body, the current row (on update) and the project's
 * references. Pure: reports every problem it finds as one 422 `validation_failed` with the JSON
 * paths of the request (first the variations and references, then the changes as the edge's
 * datafile validator sees them).
 */
export function buildExperimentRow(
  ctx: Pick<ExperimentPlanContext, "projectId" | "id" | "now">,
  input: ExperimentPlanInput,
  references: ExperimentReferences,
): ExperimentRow {
  const { body, current } = input;
  const draft = draftOf(input);
  const { type, pageIds, metrics, audienceConditions, sharedChanges, forcedVariations, groupId } =
    draft;
  const problems = new Problems();

  // ---- variations
  let variations: VariationSpec[] = [];
  let sections: StoredSection[] | null = null;
  let variationInputs: readonly PlannedVariation[] = [];
  let sectionInputs: readonly PlannedSection[] | undefined;
  if (type === "multivariate") {
    if (body.variations !== undefined)
      problems.add(
        ["variations"],
        "multivariate experiments get their variations from sections; send sections instead",
      );
    sectionInputs =
      body.sections ?? (current?.type === "multivariate" ? draft.currentSections : undefined);
    if (!sectionInputs || sectionInputs.length === 0) {
      problems.add(["sections"], "required for multivariate experiments");
    } else {
      ({ sections, variations } = buildMultivariate(
        sectionInputs,
        draft.currentSections,
        draft.currentVariations,
        problems,
      ));
    }
  } else {
    ({ variations, variationInputs } = buildVariations(input, draft, problems));
  }

  // ---- references
  const pageSet = new Set(references.pageIds);
  const seenPages = new Set<string>();
  if (pageIds.length === 0 && draft.flagId === null)
    problems.add(
      ["pageIds"],
      "required: at least one page (only an A/B rule of a flag, with flagId, runs without pages)",
    );
  pageIds.forEach((id, i) => {
    if (!pageSet.has(id))
      problems.add(
        ["pageIds", i],
        `unknown page ${JSON.stringify(id)} (not a page of this project)`,
      );
    else if (seenPages.has(id)) problems.add(["pageIds", i], "page listed twice");
    seenPages.add(id);
  });
  const eventSet = new Set(references.eventIds);
  metrics.forEach((metric, i) => {
    if (!eventSet.has(metric.eventId))
      problems.add(
        ["metrics", i, "eventId"],
        `unknown event ${JSON.stringify(metric.eventId)} (not an event of this project)`,
      );
    if (metric.aggregator === "sum" && metric.field === undefined)
      problems.add(["metrics", i, "field"], 'aggregator "sum" needs field "revenue" or "value"');
    else if (metric.aggregator !== "sum" && metric.field !== undefined)
      problems.add(["metrics", i, "field"], 'field is only used with aggregator "sum"');
  });
  if (audienceConditions !== null) {
    const audienceSet = new Set(references.audienceIds);
    for (const { node, path } of leavesOf(audienceConditions))
      if (typeof node === "string" && !audienceSet.has(node))
        problems.add(
          ["audienceConditions", ...path],
          `unknown audience ${JSON.stringify(node)} (not an audience of this project)`,
        );
  }
  if (groupId !== null && !references.group)
    problems.add(
      ["groupId"],
      `unknown group ${JSON.stringify(groupId)} (not a group of this project)`,
    );
  if (draft.flagId !== null) {
    if (!references.flag)
      problems.add(
        ["flagId"],
        `unknown flag ${JSON.stringify(draft.flagId)} (not a feature flag of this project)`,
      );
    else {
      if (references.flag.archived)
        problems.add(["flagId"], `flag ${references.flag.key} is archived`);
      if (type !== "ab")
        problems.add(["type"], `an A/B rule of a flag is an ab experiment, not ${type}`);
      if (pageIds.length > 0)
        problems.add(
          ["pageIds"],
          "an A/B rule of a flag runs wherever the flag is decided: it has no pages",
        );
      if ((body.allocationPolicy ?? current?.allocation_policy) === "bandit")
        problems.add(
          ["allocationPolicy"],
          "an A/B rule of a flag keeps manual weights: the SDKs have no sticky decisions, so reweighting would move their users between variations",
        );
      const flagVariations = new Set(
        parseJson<FlagVariationSpec[]>(references.flag.variations, []).map((v) => v.key),
      );
      variations.forEach((v, i) => {
        if (!flagVariations.has(v.key))
          problems.add(
            ["variations", i, "key"],
            `${JSON.stringify(v.key)} is not a variation of flag ${references.flag!.key} (${[...flagVariations].join(", ")})`,
          );
      });
    }
  }
  const key = body.key ?? current?.key ?? "";
  if ((current === null || key !== current.key) && references.ruleKeys.has(key))
    problems.add(
      ["key"],
      `${JSON.stringify(key)} is the key of a flag's delivery rule: an experiment needs its own (the SDKs look both up by key)`,
    );
  const variationKeys = new Set(variations.map((v) => v.key));
  for (const [visitorId, key] of Object.entries(forcedVariations))
    if (!variationKeys.has(key))
      problems.add(
        ["forcedVariations", visitorId],
        `${JSON.stringify(key)} is not a variation key of this experiment`,
      );

  // ---- changes, as the edge's validator sees them
  problems.throwIfAny();
  for (const detail of datafileProblems({
    experiment: {
      type,
      pageIds,
      sharedChanges,
      variations:
        type === "multivariate" ? [] : variationInputs.map((v) => ({ changes: v.changes ?? [] })),
      ...(sectionInputs
        ? {
            sections: sectionInputs.map((s) => ({
              variations: s.variations.map((v) => ({ changes: v.changes ?? [] })),
            })),
          }
        : {}),
    },
    pageIds: [...pageSet],
    pages: references.pages,
  }))
    problems.addFormatted(detail.path, detail.message);
  problems.throwIfAny();

  return {
    id: ctx.id,
    project_id: ctx.projectId,
    key: body.key ?? current?.key ?? "",
    name: body.name ?? current?.name ?? "",
    description: body.description ?? current?.description ?? "",
    type,
    layer_id: current?.layer_id ?? newId(),
    group_id: groupId,
    flag_id: draft.flagId,
    traffic: body.traffic ?? current?.traffic ?? 10000,
    allocation_policy: body.allocationPolicy ?? current?.allocation_policy ?? "manual",
    audience_conditions: audienceConditions === null ? null : JSON.stringify(audienceConditions),
    page_ids: JSON.stringify(pageIds),
    metrics: JSON.stringify(metrics),
    variations: JSON.stringify(variations),
    sections: sections === null ? null : JSON.stringify(sections),
    shared_changes: JSON.stringify(sharedChanges),
    forced_variations: JSON.stringify(forcedVariations),
    archived: current?.archived ?? 0,
    version: current?.version ?? 1,
    created_at: current?.created_at ?? ctx.now,
    updated_at: ctx.now,
  };
}

/**
 * The plan of a create or an update: the row (422 when invalid) and, for a new experiment, its
 * `Not started` statuses; for an update that leaves a group, the group's allocation without it.
 */
export async function planExperiment(
  ctx: ExperimentPlanContext,
  input: ExperimentPlanInput,
): Promise<ExperimentPlan> {
  const references = await loadExperimentReferences(ctx.db, ctx.projectId, input);
  const row = buildExperimentRow(ctx, input, references);
  const { current } = input;
  // Moving a running A/B rule to another flag (or off its flag) would mix two flags' visitors
  // in one result.
  if (current && current.flag_id !== row.flag_id) {
    const running = await listRunningEnvironmentKeys(ctx.db, current.id);
    if (running.length > 0)
      throw conflict(
        `experiment ${current.key} is running in ${running.join(", ")}: pause it before changing its flag`,
        { running },
      );
  }
  if (!current)
    // Not started in every environment of the project.
    return { row, extra: [initialStatusesStatement(ctx.db, row.id, ctx.projectId, ctx.now)] };
  // Leaving a group: its allocation entry goes too (only if this update lands).
  if (current.group_id !== null && current.group_id !== row.group_id) {
    const leaving = await planGroupLeave(ctx.db, current.group_id, row.id, ctx.now, {
      sql: "EXISTS (SELECT 1 FROM experiments WHERE id = ? AND version = ? AND updated_at = ?)",
      params: [row.id, current.version + 1, ctx.now],
    });
    if (leaving) return { row, extra: [leaving.statement], undo: [leaving.undo] };
  }
  return { row };
}

/**
 * The plan of a delete: 409 while the experiment is Running in any environment; statements
 * taking it out of its group's allocation, and the undo restoring its statuses (they cascade
 * with the row) and the group.
 */
export async function planExperimentDelete(
  ctx: ExperimentPlanContext,
  row: ExperimentRow,
): Promise<{ extra: D1PreparedStatement[]; undo: D1PreparedStatement[] }> {
  const running = await listRunningEnvironmentKeys(ctx.db, row.id);
  if (running.length > 0)
    throw conflict(
      `experiment ${row.key} is running in ${running.join(", ")}; pause or archive it first`,
      { running },
    );
  const statuses = await listExperimentStatusRows(ctx.db, row.id);
  const undo = statuses.map((s) => insertStatusStatement(ctx.db, s));
  const extra: D1PreparedStatement[] = [];
  if (row.group_id !== null) {
    const leaving = await planGroupLeave(ctx.db, row.group_id, row.id, ctx.now, {
      sql: "NOT EXISTS (SELECT 1 FROM experiments WHERE id = ?)",
      params: [row.id],
    });
    if (leaving) {
      extra.push(leaving.statement);
      undo.push(leaving.undo);
    }
  }
  return { extra, undo };
}

/**
 * The statement removing `experimentId` from group `groupId`'s allocation (when it is in it),
 * applied only when `condition` holds, and the statement restoring the group.
 */
async function planGroupLeave(
  db: D1Database,
  groupId: string,
  experimentId: string,
  now: string,
  condition: { sql: string; params: unknown[] },
): Promise<{ statement: D1PreparedStatement; undo: D1PreparedStatement } | null> {
  const group = await findGroup(db, groupId);
  if (!group) return null;
  const allocation = parseJson<GroupAllocationEntry[]>(group.allocation, []);
  const kept = allocation.filter((a) => a.experimentId !== experimentId);
  if (kept.length === allocation.length) return null;
  const changed: GroupRow = {
    ...group,
    allocation: JSON.stringify(kept),
    version: group.version + 1,
    updated_at: now,
  };
  return {
    statement: groupAllocationStatement(db, group, changed.allocation, now, condition),
    undo: updateStatement(db, "groups", group, changed.version),
  };
}
