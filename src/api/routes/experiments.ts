/**
 * Experiments (docs/api.md "Experiments"): A/B, multivariate and split-URL web experiments, with
 * variations and their changes, metrics, traffic, audience conditions, pages, forced variations
 * and group membership; plus the actions start, pause, resume and archive, which change the
 * status in one environment and publish in the same request (docs/api.md).
 *
 * - Variation ids are generated. On PATCH a variation keeps its id when the request names it
 *   (`id`) or, failing that, when its key matches a current variation's: renaming a key while
 *   sending the id keeps the variation's buckets and sticky decisions.
 * - Multivariate experiments take `sections` ([{name, variations: [{name, key?, changes}]}]);
 *   the API generates the variations as the cartesian product of the sections' variations: key
 *   = the keys joined with "_", equal weights, changes concatenated in section order, and
 *   `sectionVariationIds` naming the combination. Client-sent variations are refused.
 * - New experiments are `Not started` in every environment of the project.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ALLOCATION_POLICIES, WEB_EXPERIMENT_TYPES } from "../../core/datafile-parse";
import { changeSchema, webMetricSchema } from "../../core/datafile-schema";
import type { Change, WebMetric, WebSection } from "../../core/datafile-types";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import type {
  ExperimentRow,
  ExperimentStatusValue,
  GroupAllocationEntry,
  GroupRow,
  VariationSpec,
} from "../store/rows";
import { auditIfChanged } from "../store/audit";
import { all, first } from "../store/db";
import { conflict, notFound } from "../errors";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonResponse } from "../http/openapi";
import { newId, nowIso } from "../ids";
import { conditionTreeSchema } from "../schemas/conditions";
import { datafileProblems, Problems } from "../services/validation";
import {
  descriptionSchema,
  IdParams,
  keySchema,
  nameSchema,
  PublishedField,
  resourceFields,
} from "../schemas/fields";
import { leavesOf } from "../services/condition-tree";
import { parseJson, requireRow, updateStatement } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";
import { writeAndPublish } from "../services/write-and-publish";

// ---------------------------------------------------------------------------------------------
// Schemas

const MAX_VARIATIONS = 100;
const MAX_SECTIONS = 10;
const MAX_SECTION_VARIATIONS = 20;
/** Most combinations a multivariate experiment may have (each gets 10000 / n basis points). */
export const MAX_COMBINATIONS = 256;

/** The datafile's Change schema (src/core/datafile-schema.ts), as one OpenAPI component. */
const ChangeComponent = changeSchema.openapi("Change");

const changesSchema = z.array(ChangeComponent).max(500).openapi({
  description:
    "Changes (docs/changes.md): attribute, insert_html, custom_css, custom_code, redirect.",
});

const metricSchema = z.strictObject(webMetricSchema.shape).openapi("Metric", {
  description:
    "eventId: an event of the project; aggregator unique | count | sum (sum needs field revenue | value); winningDirection increasing | decreasing.",
  example: { eventId: "204819230583", aggregator: "unique", winningDirection: "increasing" },
});

const weightSchema = z.number().int().min(0).max(10000).openapi({
  description: "Basis points (10000 = 100%); the weights of an experiment sum to 10000.",
});

const VariationInputSchema = z
  .strictObject({
    id: z.string().optional().openapi({
      description: "On PATCH: keep this variation's id (and buckets) while changing its key.",
    }),
    key: keySchema,
    name: nameSchema.optional(),
    weight: weightSchema,
    changes: changesSchema.optional(),
    featureEnabled: z.boolean().optional(),
  })
  .openapi("VariationInput");

const SectionVariationInputSchema = z
  .strictObject({
    id: z.string().optional(),
    key: keySchema.optional().openapi({ description: "Default: derived from the name." }),
    name: z.string().trim().min(1).max(200),
    changes: changesSchema.optional(),
  })
  .openapi("SectionVariationInput");

const SectionInputSchema = z
  .strictObject({
    id: z.string().optional(),
    name: z.string().trim().min(1).max(200),
    variations: z.array(SectionVariationInputSchema).min(1).max(MAX_SECTION_VARIATIONS),
  })
  .openapi("SectionInput");

const audienceConditionsSchema = conditionTreeSchema(
  z.string().min(1),
  'An and/or/not tree over audience ids of the project, e.g. ["or", "204819230584", "204819230585"]; null = everyone.',
  ["and", "204819230584", ["not", "204819230585"]],
);

const forcedVariationsSchema = z.record(z.string().min(1).max(255), z.string()).openapi({
  description: "QA whitelist: visitor id → variation key.",
  example: { "qa-visitor-1": "treatment" },
});

const experimentFields = {
  name: nameSchema.optional(),
  description: descriptionSchema.optional(),
  pageIds: z
    .array(z.string())
    .min(1)
    .max(50)
    .openapi({ description: "Pages of the project the experiment runs on." }),
  metrics: z
    .array(metricSchema)
    .min(1)
    .max(50)
    .openapi({ description: "The first is the primary metric." }),
  audienceConditions: audienceConditionsSchema.nullable().optional(),
  traffic: weightSchema.optional().openapi({
    description:
      "Basis points of eligible visitors in the experiment (default 10000); the rest see the original.",
  }),
  variations: z.array(VariationInputSchema).max(MAX_VARIATIONS).optional().openapi({
    description:
      "ab and split_url (at least 2; weights sum to 10000; split_url: every variation but the first has exactly one redirect change). Multivariate experiments get theirs from sections.",
  }),
  sections: z.array(SectionInputSchema).min(1).max(MAX_SECTIONS).nullable().optional().openapi({
    description:
      "Multivariate only: the variations are the combinations of one variation per section.",
  }),
  sharedChanges: changesSchema.optional().openapi({ description: "Applied in every variation." }),
  forcedVariations: forcedVariationsSchema.optional(),
  groupId: z
    .string()
    .nullable()
    .optional()
    .openapi({ description: "Mutually exclusive group (see Groups)." }),
  allocationPolicy: z
    .enum(ALLOCATION_POLICIES)
    .optional()
    .openapi({ description: "manual (default) or bandit." }),
};

const ExperimentCreateSchema = z
  .strictObject({
    key: keySchema,
    type: z.enum(WEB_EXPERIMENT_TYPES).optional().openapi({ description: "Default ab." }),
    ...experimentFields,
  })
  .openapi("ExperimentCreate");

const ExperimentUpdateSchema = z
  .strictObject({
    key: keySchema.optional(),
    type: z.enum(WEB_EXPERIMENT_TYPES).optional(),
    ...experimentFields,
    pageIds: experimentFields.pageIds.optional(),
    metrics: experimentFields.metrics.optional(),
  })
  .openapi("ExperimentUpdate");

type ExperimentCreate = z.infer<typeof ExperimentCreateSchema>;
type ExperimentUpdate = z.infer<typeof ExperimentUpdateSchema>;
type VariationInput = z.infer<typeof VariationInputSchema>;
type SectionInput = z.infer<typeof SectionInputSchema>;

const STATUSES = ["Not started", "Running", "Paused", "Archived"] as const;

const VariationSchema = z
  .object({
    id: z.string(),
    key: z.string(),
    name: z.string().optional(),
    weight: z.number().int(),
    changes: z.array(z.unknown()),
    featureEnabled: z.boolean().optional(),
    sectionVariationIds: z.array(z.string()).optional(),
  })
  .openapi("Variation");

export const ExperimentSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    description: z.string(),
    type: z.enum(WEB_EXPERIMENT_TYPES),
    layerId: z.string(),
    groupId: z.string().nullable(),
    traffic: z.number().int(),
    allocationPolicy: z.enum(ALLOCATION_POLICIES),
    audienceConditions: z
      .unknown()
      .openapi({ description: "Tree over audience ids, or null (everyone)." }),
    pageIds: z.array(z.string()),
    metrics: z.array(z.unknown()),
    variations: z.array(VariationSchema),
    sections: z.unknown().openapi({
      description:
        "Multivariate: [{id, name, variations: [{id, key, name, changes}]}]; otherwise null.",
    }),
    sharedChanges: z.array(z.unknown()),
    forcedVariations: z.record(z.string(), z.string()),
    archived: z.boolean().openapi({ description: "True once archived in every environment." }),
    status: z.record(z.string(), z.enum(STATUSES)).openapi({
      description: "Status per environment key.",
      example: { production: "Running", development: "Not started" },
    }),
  })
  .openapi("Experiment");

type ExperimentJson = z.infer<typeof ExperimentSchema>;

/** Stored multivariate sections: WebSection plus the section variations' keys. */
interface StoredSection extends WebSection {
  name: string;
  variations: Array<{ id: string; key: string; name: string; changes: Change[] }>;
}

// ---------------------------------------------------------------------------------------------
// Presentation

/** experiment id → {environment key → status} for the experiments of a project. */
async function statusesOf(db: D1Database, projectId: string, experimentId?: string) {
  const rows = await all<{ experiment_id: string; environment_key: string; status: string }>(
    db,
    `SELECT x.id AS experiment_id, e.key AS environment_key, COALESCE(s.status, 'Not started') AS status
       FROM experiments x
       JOIN environments e ON e.project_id = x.project_id
       LEFT JOIN experiment_status s ON s.experiment_id = x.id AND s.environment_id = e.id
      WHERE x.project_id = ?${experimentId ? " AND x.id = ?" : ""}`,
    ...(experimentId ? [projectId, experimentId] : [projectId]),
  );
  const out = new Map<string, Record<string, ExperimentStatusValue>>();
  for (const row of rows) {
    let map = out.get(row.experiment_id);
    if (!map) out.set(row.experiment_id, (map = {}));
    map[row.environment_key] = row.status as ExperimentStatusValue;
  }
  return out;
}

export function experimentJson(
  row: ExperimentRow,
  status: Record<string, ExperimentStatusValue>,
): ExperimentJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    type: row.type,
    layerId: row.layer_id,
    groupId: row.group_id,
    traffic: row.traffic,
    allocationPolicy: row.allocation_policy,
    audienceConditions: parseJson<unknown>(row.audience_conditions, null),
    pageIds: parseJson<string[]>(row.page_ids, []),
    metrics: parseJson<unknown[]>(row.metrics, []),
    variations: parseJson<VariationSpec[]>(row.variations, []).map((v) => ({
      ...v,
      changes: v.changes ?? [],
    })),
    sections: parseJson<unknown>(row.sections, null),
    sharedChanges: parseJson<unknown[]>(row.shared_changes, []),
    forcedVariations: parseJson<Record<string, string>>(row.forced_variations, {}),
    archived: Boolean(row.archived),
    status,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Rows → JSON with their statuses (also used by headline tests and serve-winner). */
export async function presentExperiments(
  db: D1Database,
  rows: ExperimentRow[],
): Promise<ExperimentJson[]> {
  const [single] = rows;
  if (!single) return [];
  const statuses =
    rows.length === 1
      ? await statusesOf(db, single.project_id, single.id)
      : await statusesOf(db, single.project_id);
  return rows.map((row) => experimentJson(row, statuses.get(row.id) ?? {}));
}

// ---------------------------------------------------------------------------------------------
// Building and validating

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

/** Picks ids: the one asked for if it is current and unused, else the one of the same key, else new. */
class IdKeeper {
  private readonly used = new Set<string>();
  private readonly byId: Set<string>;
  private readonly byKey: Map<string, string>;

  constructor(current: ReadonlyArray<{ id: string; key: string }>) {
    this.byId = new Set(current.map((c) => c.id));
    this.byKey = new Map(current.map((c) => [c.key, c.id]));
  }

  pick(id: string | undefined, key: string): string {
    let chosen: string | undefined;
    if (id !== undefined && this.byId.has(id) && !this.used.has(id)) chosen = id;
    else {
      const same = this.byKey.get(key);
      if (same !== undefined && !this.used.has(same)) chosen = same;
    }
    chosen ??= newId();
    this.used.add(chosen);
    return chosen;
  }
}

/**
 * Multivariate: stored sections (ids kept by id or name / key) and the generated combinations
 * (ids kept by key).
 */
function buildMultivariate(
  sections: SectionInput[],
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
        changes: (v.changes ?? []) as Change[],
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

/** A stored variation as a request variation (what PATCH merges onto). */
function asInput(v: VariationSpec): VariationInput {
  const input: VariationInput = {
    id: v.id,
    key: v.key,
    weight: v.weight,
    changes: (v.changes ?? []) as VariationInput["changes"],
  };
  if (v.name !== undefined) input.name = v.name;
  if (v.featureEnabled !== undefined) input.featureEnabled = v.featureEnabled;
  return input;
}

/** A stored section as a request section. */
function sectionAsInput(s: StoredSection): SectionInput {
  return {
    id: s.id,
    name: s.name,
    variations: s.variations.map((v) => ({
      id: v.id,
      key: v.key,
      name: v.name,
      changes: v.changes as VariationInput["changes"],
    })),
  };
}

const isRedirect = (change: unknown): boolean =>
  typeof change === "object" &&
  change !== null &&
  (change as { type?: unknown }).type === "redirect";

async function buildExperiment(
  ctx: BuildContext,
  input:
    | { kind: "create"; body: ExperimentCreate; current: null }
    | { kind: "update"; body: ExperimentUpdate; current: ExperimentRow },
): Promise<{ row: ExperimentRow; extra?: D1PreparedStatement[]; undo?: D1PreparedStatement[] }> {
  const { db, projectId } = ctx;
  const body = input.body;
  const current = input.current;
  const problems = new Problems();

  const type = body.type ?? current?.type ?? "ab";
  const currentVariations = parseJson<VariationSpec[]>(current?.variations, []);
  const currentSections = parseJson<StoredSection[] | null>(current?.sections, null) ?? [];
  const pageIds = body.pageIds ?? parseJson<string[]>(current?.page_ids, []);
  const metrics: WebMetric[] =
    (body.metrics as WebMetric[] | undefined) ?? parseJson<WebMetric[]>(current?.metrics, []);
  const audienceConditions =
    body.audienceConditions !== undefined
      ? body.audienceConditions
      : parseJson<unknown[] | null>(current?.audience_conditions, null);
  const sharedChanges = (body.sharedChanges ??
    parseJson<Change[]>(current?.shared_changes, [])) as Change[];
  const forcedVariations =
    body.forcedVariations ?? parseJson<Record<string, string>>(current?.forced_variations, {});
  const groupId = body.groupId !== undefined ? body.groupId : (current?.group_id ?? null);

  // ---- variations
  let variations: VariationSpec[] = [];
  let sections: StoredSection[] | null = null;
  let variationInputs: VariationInput[] = [];
  let sectionInputs: SectionInput[] | undefined;
  if (type === "multivariate") {
    if (body.variations !== undefined)
      problems.add(
        ["variations"],
        "multivariate experiments get their variations from sections; send sections instead",
      );
    sectionInputs =
      body.sections ??
      (current?.type === "multivariate" ? currentSections.map(sectionAsInput) : undefined);
    if (!sectionInputs || sectionInputs.length === 0) {
      problems.add(["sections"], "required for multivariate experiments");
    } else {
      ({ sections, variations } = buildMultivariate(
        sectionInputs,
        currentSections,
        currentVariations,
        problems,
      ));
    }
  } else {
    if (body.sections !== undefined && body.sections !== null)
      problems.add(
        ["sections"],
        `only multivariate experiments have sections (this one is ${type})`,
      );
    variationInputs = body.variations ?? currentVariations.map(asInput);
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
    const ids = new IdKeeper(currentVariations);
    variations = variationInputs.map((v) => {
      const spec: VariationSpec = {
        id: ids.pick(v.id, v.key),
        key: v.key,
        weight: v.weight,
        changes: (v.changes ?? []) as Change[],
      };
      if (v.name !== undefined) spec.name = v.name;
      if (v.featureEnabled !== undefined) spec.featureEnabled = v.featureEnabled;
      return spec;
    });
  }

  // ---- references
  const [pages, events, audiences, group] = await Promise.all([
    all<{ id: string }>(db, "SELECT id FROM pages WHERE project_id = ?", projectId),
    all<{ id: string }>(db, "SELECT id FROM events WHERE project_id = ?", projectId),
    audienceConditions === null
      ? Promise.resolve([])
      : all<{ id: string }>(db, "SELECT id FROM audiences WHERE project_id = ?", projectId),
    groupId === null
      ? Promise.resolve(null)
      : first<GroupRow>(
          db,
          "SELECT * FROM groups WHERE id = ? AND project_id = ?",
          groupId,
          projectId,
        ),
  ]);
  const pageSet = new Set(pages.map((p) => p.id));
  const seenPages = new Set<string>();
  pageIds.forEach((id, i) => {
    if (!pageSet.has(id))
      problems.add(
        ["pageIds", i],
        `unknown page ${JSON.stringify(id)} (not a page of this project)`,
      );
    else if (seenPages.has(id)) problems.add(["pageIds", i], "page listed twice");
    seenPages.add(id);
  });
  const eventSet = new Set(events.map((e) => e.id));
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
    const audienceSet = new Set(audiences.map((a) => a.id));
    for (const { node, path } of leavesOf(audienceConditions))
      if (typeof node === "string" && !audienceSet.has(node))
        problems.add(
          ["audienceConditions", ...path],
          `unknown audience ${JSON.stringify(node)} (not an audience of this project)`,
        );
  }
  if (groupId !== null && !group)
    problems.add(
      ["groupId"],
      `unknown group ${JSON.stringify(groupId)} (not a group of this project)`,
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
  }))
    problems.addFormatted(detail.path, detail.message);
  problems.throwIfAny();

  const row: ExperimentRow = {
    id: ctx.id,
    project_id: projectId,
    key: body.key ?? current?.key ?? "",
    name: body.name ?? current?.name ?? "",
    description: body.description ?? current?.description ?? "",
    type,
    layer_id: current?.layer_id ?? newId(),
    group_id: groupId,
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

  if (!current) {
    // Not started in every environment of the project.
    return {
      row,
      extra: [
        db
          .prepare(
            "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT ?, id, 'Not started', ? FROM environments WHERE project_id = ?",
          )
          .bind(row.id, ctx.now, projectId),
      ],
    };
  }
  // Leaving a group: its allocation entry goes too (only if this update lands).
  if (current.group_id !== null && current.group_id !== groupId) {
    const leaving = await leaveGroup(db, current.group_id, row.id, ctx.now, {
      sql: "EXISTS (SELECT 1 FROM experiments WHERE id = ? AND version = ? AND updated_at = ?)",
      params: [row.id, current.version + 1, ctx.now],
    });
    if (leaving) return { row, extra: [leaving.statement], undo: [leaving.undo] };
  }
  return { row };
}

/**
 * The statement removing `experimentId` from group `groupId`'s allocation (when it is in it),
 * applied only when `condition` holds, and the statement restoring the group.
 */
async function leaveGroup(
  db: D1Database,
  groupId: string,
  experimentId: string,
  now: string,
  condition: { sql: string; params: unknown[] },
): Promise<{ statement: D1PreparedStatement; undo: D1PreparedStatement } | null> {
  const group = await first<GroupRow>(db, "SELECT * FROM groups WHERE id = ?", groupId);
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
    statement: db
      .prepare(
        `UPDATE groups SET allocation = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ? AND ${condition.sql}`,
      )
      .bind(changed.allocation, now, groupId, group.version, ...condition.params),
    undo: updateStatement(db, "groups", group, changed.version),
  };
}

// ---------------------------------------------------------------------------------------------
// Actions

export const EXPERIMENT_ACTIONS = ["start", "pause", "resume", "archive"] as const;
export type ExperimentAction = (typeof EXPERIMENT_ACTIONS)[number];

/** Allowed transitions: action → (from → to). */
const TRANSITIONS: Record<
  ExperimentAction,
  { from: readonly ExperimentStatusValue[]; to: ExperimentStatusValue }
> = {
  start: { from: ["Not started"], to: "Running" },
  pause: { from: ["Running"], to: "Paused" },
  resume: { from: ["Paused"], to: "Running" },
  archive: { from: ["Not started", "Running", "Paused"], to: "Archived" },
};

const HINTS: Partial<Record<ExperimentStatusValue, string>> = {
  "Not started": "start it",
  Running: "pause or archive it",
  Paused: "resume or archive it",
  Archived: "archived experiments stay archived; copy it into a new experiment",
};

/** The default environment of the actions (docs/api.md). */
export const DEFAULT_ACTION_ENVIRONMENT = "production";

const ActionBodySchema = z
  .strictObject({
    environment: z
      .string()
      .min(1)
      .optional()
      .openapi({
        description: `Environment key; default "${DEFAULT_ACTION_ENVIRONMENT}".`,
        example: "production",
      }),
  })
  .openapi("ExperimentActionBody");

const ActionResultSchema = z
  .object({
    experiment: ExperimentSchema,
    environment: z.string().openapi({ description: "The environment key the action applied to." }),
    previousStatus: z.enum(STATUSES),
    status: z.enum(STATUSES),
    published: PublishedField,
  })
  .openapi("ExperimentActionResult");

function registerActions(app: ApiApp): void {
  for (const action of EXPERIMENT_ACTIONS) {
    const transition = TRANSITIONS[action];
    app.openapi(
      createRoute({
        method: "post",
        path: `/experiments/{id}/${action}`,
        tags: ["Experiments"],
        summary: `${action[0]!.toUpperCase()}${action.slice(1)} an experiment in one environment`,
        description: `${transition.from.join(" | ")} → ${transition.to}, in the environment named by \`environment\` (default "${DEFAULT_ACTION_ENVIRONMENT}"); any other status answers 409. Publishes every environment of the project in the same request; the response carries the publish results. Honours If-Match.`,
        middleware: [requireRole("editor")] as const,
        request: {
          params: IdParams,
          body: { required: false, content: { "application/json": { schema: ActionBodySchema } } },
        },
        responses: {
          200: jsonResponse(
            ActionResultSchema,
            "The experiment after the action, and what was published",
          ),
          ...errorResponses(400, 401, 403, 404, 409, 415, 422),
        },
      }),
      async (c) => {
        const db = c.env.DB;
        const actor = c.get("actor");
        const { id } = c.req.valid("param");
        const body = c.req.valid("json") as z.infer<typeof ActionBodySchema>;
        const experiment = await requireRow<ExperimentRow>(db, "experiments", "experiment", id);
        checkIfMatch(c, experiment.version);
        const environmentKey = body.environment ?? DEFAULT_ACTION_ENVIRONMENT;
        const environment = await first<{ id: string; key: string }>(
          db,
          "SELECT id, key FROM environments WHERE project_id = ? AND key = ?",
          experiment.project_id,
          environmentKey,
        );
        if (!environment) {
          if (body.environment === undefined) throw notFound("environment", environmentKey);
          const problems = new Problems();
          problems.add(
            ["environment"],
            `unknown environment ${JSON.stringify(environmentKey)} (not an environment key of this project)`,
          );
          problems.throwIfAny();
          throw notFound("environment", environmentKey);
        }
        const statusRow = await first<{ status: ExperimentStatusValue; updated_at: string }>(
          db,
          "SELECT status, updated_at FROM experiment_status WHERE experiment_id = ? AND environment_id = ?",
          id,
          environment.id,
        );
        const previous: ExperimentStatusValue = statusRow?.status ?? "Not started";
        if (!transition.from.includes(previous))
          throw conflict(
            `cannot ${action} experiment ${experiment.key} in ${environment.key}: it is ${previous}${HINTS[previous] ? ` (${HINTS[previous]})` : ""}`,
            { status: previous, environment: environment.key, allowedFrom: transition.from },
          );
        const now = nowIso();
        const next: ExperimentRow = {
          ...experiment,
          version: experiment.version + 1,
          updated_at: now,
        };
        const published = await writeAndPublish(c.env, actor, {
          projectId: experiment.project_id,
          statements: [
            db
              .prepare(
                "INSERT OR IGNORE INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, 'Not started', ?)",
              )
              .bind(id, environment.id, now),
            // The guard: the transition only happens from the status read above.
            db
              .prepare(
                "UPDATE experiment_status SET status = ?, updated_at = ? WHERE experiment_id = ? AND environment_id = ? AND status = ?",
              )
              .bind(transition.to, now, id, environment.id, previous),
            auditIfChanged(db, actor, action, "experiment", id, experiment.project_id, {
              environment: environment.key,
              from: previous,
              to: transition.to,
            }),
            // The version (ETag) moves with the status; `archived` = archived everywhere.
            db
              .prepare(
                `UPDATE experiments SET version = version + 1, updated_at = ?,
                   archived = CASE WHEN EXISTS (
                     SELECT 1 FROM environments e
                       LEFT JOIN experiment_status s ON s.experiment_id = experiments.id AND s.environment_id = e.id
                      WHERE e.project_id = experiments.project_id AND COALESCE(s.status, 'Not started') <> 'Archived'
                   ) THEN 0 ELSE 1 END
                 WHERE id = ? AND EXISTS (
                   SELECT 1 FROM experiment_status
                    WHERE experiment_id = ? AND environment_id = ? AND status = ? AND updated_at = ?)`,
              )
              .bind(now, id, id, environment.id, transition.to, now),
          ],
          guardIndex: 1,
          auditIndex: 2,
          onGuardFailed: async () => {
            const latest = await first<{ status: string }>(
              db,
              "SELECT status FROM experiment_status WHERE experiment_id = ? AND environment_id = ?",
              id,
              environment.id,
            );
            return conflict(
              `experiment ${experiment.key} changed status in ${environment.key} meanwhile (now ${latest?.status ?? "unknown"}); read it again`,
              { status: latest?.status ?? null, environment: environment.key },
            );
          },
          undo: [
            db
              .prepare(
                "UPDATE experiment_status SET status = ?, updated_at = ? WHERE experiment_id = ? AND environment_id = ? AND status = ?",
              )
              .bind(previous, statusRow?.updated_at ?? now, id, environment.id, transition.to),
            updateStatement(db, "experiments", experiment, next.version),
          ],
          reason: `experiment ${experiment.key} ${action} in ${environment.key}`,
        });
        const latest = await requireRow<ExperimentRow>(db, "experiments", "experiment", id);
        const [json] = await presentExperiments(db, [latest]);
        setEtag(c, latest.version);
        return c.json(
          {
            experiment: json!,
            environment: environment.key,
            previousStatus: previous,
            status: transition.to,
            published,
          },
          200,
        );
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Routes

export function registerExperimentRoutes(app: ApiApp): void {
  registerCrud<ExperimentRow, ExperimentJson, ExperimentCreate, ExperimentUpdate>(app, {
    type: "experiment",
    plural: "experiments",
    table: "experiments",
    tag: "Experiments",
    schema: ExperimentSchema,
    createSchema: ExperimentCreateSchema,
    updateSchema: ExperimentUpdateSchema,
    keyed: true,
    describe: {
      create:
        "ab and split_url experiments take `variations` (at least 2, weights in basis points summing to 10000; split_url: every variation but the first has exactly one redirect change). multivariate experiments take `sections`; the variations are generated (cartesian product, equal weights). Pages, events (metrics), audiences (audienceConditions), the group and forced-variation keys must exist (422 with the JSON path otherwise). The experiment starts as Not started in every environment.",
      update:
        "Variations keep their ids when sent with their `id` or when their key is unchanged. Changing `type` to multivariate needs `sections`; away from it drops them. Leaving a group removes the experiment from the group's allocation.",
      delete:
        "Refused (409) while the experiment is Running in any environment (pause or archive it first). Removes it from its group's allocation.",
    },
    label: (row) => row.key,
    present: presentExperiments,
    build: buildExperiment,
    async beforeDelete(ctx, row) {
      const running = await all<{ key: string }>(
        ctx.db,
        `SELECT e.key FROM experiment_status s JOIN environments e ON e.id = s.environment_id
          WHERE s.experiment_id = ? AND s.status = 'Running'`,
        row.id,
      );
      if (running.length > 0)
        throw conflict(
          `experiment ${row.key} is running in ${running.map((r) => r.key).join(", ")}; pause or archive it first`,
          { running: running.map((r) => r.key) },
        );
      // Put back the statuses (they cascade with the row) when the delete is undone.
      const statuses = await all<{ environment_id: string; status: string; updated_at: string }>(
        ctx.db,
        "SELECT environment_id, status, updated_at FROM experiment_status WHERE experiment_id = ?",
        row.id,
      );
      const undo = statuses.map((s) =>
        ctx.db
          .prepare(
            "INSERT OR IGNORE INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, ?, ?)",
          )
          .bind(row.id, s.environment_id, s.status, s.updated_at),
      );
      const extra: D1PreparedStatement[] = [];
      if (row.group_id !== null) {
        const leaving = await leaveGroup(ctx.db, row.group_id, row.id, ctx.now, {
          sql: "NOT EXISTS (SELECT 1 FROM experiments WHERE id = ?)",
          params: [row.id],
        });
        if (leaving) {
          extra.push(leaving.statement);
          undo.push(leaving.undo);
        }
      }
      return { extra, undo };
    },
  });
  registerActions(app);
}
