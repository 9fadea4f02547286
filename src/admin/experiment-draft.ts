/**
 * The experiment form's model (docs/admin.md "The experiment form"): the body of the API's
 * experiment requests as the form's inputs hold it — texts, weights and traffic in percent — and
 * the ways in and out of it: from an experiment as the API presents it, from a posted form (its
 * fields are named by their body paths, src/admin/change-fields.ts `formTree`), to the body of
 * `POST /projects/{projectId}/experiments` or `PATCH /experiments/{id}` (docs/api.md
 * "Experiments"), and the row buttons (add, remove, make primary, show fields) applied to it.
 * Also the body of a duplicate. The pages that render and post it are
 * src/admin/experiment-pages.ts.
 */
import { equalWeights } from "../api/services/experiment-plan";
import {
  changeBody,
  changeDraftFromTree,
  changeDraftOf,
  emptyChange,
  formTree,
  itemsAt,
  nodeAt,
  pathSegments,
  textAt,
  textsAt,
  type ChangeDraft,
} from "./change-fields";
import { one, type PostedForm } from "./forms";
import type { ExperimentJson } from "./ui";

// ---------------------------------------------------------------------------------------------
// The form's draft: the API body as the inputs hold it (texts; weights and traffic in percent)

export interface VariationDraft {
  id: string;
  key: string;
  name: string;
  /** Percent. */
  weight: string;
  /** "", "true" or "false". */
  featureEnabled: string;
  changes: ChangeDraft[];
}

export interface SectionVariationDraft {
  id: string;
  key: string;
  name: string;
  changes: ChangeDraft[];
}

export interface SectionDraft {
  id: string;
  name: string;
  variations: SectionVariationDraft[];
}

export interface MetricDraft {
  eventId: string;
  aggregator: string;
  field: string;
  winningDirection: string;
  cappingType: string;
  cappingValue: string;
}

export interface ExperimentDraft {
  key: string;
  name: string;
  description: string;
  type: string;
  pageIds: string[];
  /** Audiences combined with "or"; none = everyone. */
  audienceIds: string[];
  /** JSON of stored audience conditions the list cannot show ("" when it can). */
  audienceTree: string;
  /** Keep `audienceTree` as it is (the list is ignored then). */
  keepAudienceTree: boolean;
  /** Percent. */
  traffic: string;
  allocationPolicy: string;
  groupId: string;
  /** `visitorId=variationKey` lines. */
  forcedVariations: string;
  variations: VariationDraft[];
  sections: SectionDraft[];
  sharedChanges: ChangeDraft[];
  metrics: MetricDraft[];
}

/** Basis points as the percent the form shows (5000 → "50", 3334 → "33.34"). */
export const percentText = (basisPoints: number): string => String(basisPoints / 100);

/**
 * A percent input as basis points; left as typed when it is not a number, so the API's schema
 * refuses it beside the field; undefined when empty.
 */
function basisPoints(percent: string): number | string | undefined {
  const trimmed = percent.trim();
  if (trimmed === "") return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? Math.round(n * 100) : trimmed;
}

/** A number input as a number (as typed when it is not one; undefined when empty). */
function numberOf(value: string): number | string | undefined {
  const trimmed = value.trim();
  if (trimmed === "") return undefined;
  const n = Number(trimmed);
  return Number.isFinite(n) ? n : trimmed;
}

/** `n` equal weights in percent (the API's own split, src/api/services/experiment-plan.ts). */
const equalSplit = (n: number): string[] => (n > 0 ? equalWeights(n).map(percentText) : []);

function newVariation(index: number, weight = "0"): VariationDraft {
  return {
    id: "",
    key: index === 0 ? "control" : `variation_${index}`,
    name: "",
    weight,
    featureEnabled: "",
    changes: [],
  };
}

function newSectionVariation(index: number): SectionVariationDraft {
  return { id: "", key: "", name: index === 0 ? "Original" : `Option ${index}`, changes: [] };
}

function newSection(index: number): SectionDraft {
  return {
    id: "",
    name: `Section ${index + 1}`,
    variations: [newSectionVariation(0), newSectionVariation(1)],
  };
}

function newMetric(): MetricDraft {
  return {
    eventId: "",
    aggregator: "unique",
    field: "",
    winningDirection: "increasing",
    cappingType: "",
    cappingValue: "",
  };
}

/** What the chosen type needs before anything can be edited: two variations, or a section. */
function ensureShape(draft: ExperimentDraft): void {
  if (draft.type === "multivariate") {
    if (draft.sections.length === 0) draft.sections.push(newSection(0));
  } else if (draft.variations.length === 0) {
    const [a = "50", b = "50"] = equalSplit(2);
    draft.variations.push(newVariation(0, a), newVariation(1, b));
  }
}

export function emptyDraft(): ExperimentDraft {
  const draft: ExperimentDraft = {
    key: "",
    name: "",
    description: "",
    type: "ab",
    pageIds: [],
    audienceIds: [],
    audienceTree: "",
    keepAudienceTree: false,
    traffic: "100",
    allocationPolicy: "manual",
    groupId: "",
    forcedVariations: "",
    variations: [],
    sections: [],
    sharedChanges: [],
    metrics: [newMetric()],
  };
  ensureShape(draft);
  return draft;
}

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const text = (value: unknown): string => (typeof value === "string" ? value : "");

/**
 * The audiences of stored conditions when they are a plain "or" of audience ids (or one id, or
 * none); null for any other tree (and, not, nesting), which the list cannot show.
 */
export function audienceIdsOf(tree: unknown): string[] | null {
  if (tree === null || tree === undefined) return [];
  if (typeof tree === "string") return [tree];
  if (!Array.isArray(tree)) return null;
  const [operator, ...operands] = tree as unknown[];
  const ids = operands.filter((o): o is string => typeof o === "string");
  if (ids.length !== operands.length) return null;
  if (operator === "or" || (operator === "and" && ids.length === 1)) return ids;
  return null;
}

export function metricDraftOf(metric: unknown): MetricDraft {
  const m = isRecord(metric) ? metric : {};
  const capping = isRecord(m.capping) ? m.capping : {};
  return {
    eventId: text(m.eventId),
    aggregator: text(m.aggregator),
    field: text(m.field),
    winningDirection: text(m.winningDirection),
    cappingType: text(capping.type),
    cappingValue: typeof capping.value === "number" ? String(capping.value) : "",
  };
}

function sectionsDraftOf(sections: unknown): SectionDraft[] {
  if (!Array.isArray(sections)) return [];
  return sections.filter(isRecord).map((s) => ({
    id: text(s.id),
    name: text(s.name),
    variations: (Array.isArray(s.variations) ? s.variations : []).filter(isRecord).map((v) => ({
      id: text(v.id),
      key: text(v.key),
      name: text(v.name),
      changes: (Array.isArray(v.changes) ? v.changes : []).map(changeDraftOf),
    })),
  }));
}

/** The form filled from an experiment as the API presents it. */
export function draftOfExperiment(x: ExperimentJson): ExperimentDraft {
  const audienceIds = audienceIdsOf(x.audienceConditions);
  return {
    key: x.key,
    name: x.name,
    description: x.description,
    type: x.type,
    pageIds: [...x.pageIds],
    audienceIds: audienceIds ?? [],
    audienceTree: audienceIds === null ? JSON.stringify(x.audienceConditions) : "",
    keepAudienceTree: audienceIds === null,
    traffic: percentText(x.traffic),
    allocationPolicy: x.allocationPolicy,
    groupId: x.groupId ?? "",
    forcedVariations: Object.entries(x.forcedVariations)
      .map(([visitor, key]) => `${visitor}=${key}`)
      .join("\n"),
    // Multivariate variations are generated from the sections: the form edits those.
    variations:
      x.type === "multivariate"
        ? []
        : x.variations.map((v) => ({
            id: v.id,
            key: v.key,
            name: v.name ?? "",
            weight: percentText(v.weight),
            featureEnabled: v.featureEnabled === undefined ? "" : String(v.featureEnabled),
            changes: v.changes.map(changeDraftOf),
          })),
    sections: x.type === "multivariate" ? sectionsDraftOf(x.sections) : [],
    sharedChanges: x.sharedChanges.map(changeDraftOf),
    metrics: x.metrics.map(metricDraftOf),
  };
}

/** The form as posted. */
export function draftFromForm(form: PostedForm): ExperimentDraft {
  const tree = formTree(form);
  return {
    key: textAt(tree, "key"),
    name: textAt(tree, "name"),
    description: textAt(tree, "description"),
    type: textAt(tree, "type"),
    pageIds: textsAt(tree, "pageIds").filter(Boolean),
    audienceIds: textsAt(tree, "audienceConditions").filter(Boolean),
    audienceTree: one(form, "_audienceTree"),
    keepAudienceTree: one(form, "_keepAudience") !== "",
    traffic: textAt(tree, "traffic"),
    allocationPolicy: textAt(tree, "allocationPolicy"),
    groupId: textAt(tree, "groupId"),
    forcedVariations: textAt(tree, "forcedVariations"),
    variations: itemsAt(tree, "variations").map((v) => ({
      id: textAt(v, "id"),
      key: textAt(v, "key"),
      name: textAt(v, "name"),
      weight: textAt(v, "weight"),
      featureEnabled: textAt(v, "featureEnabled"),
      changes: itemsAt(v, "changes").map(changeDraftFromTree),
    })),
    sections: itemsAt(tree, "sections").map((s) => ({
      id: textAt(s, "id"),
      name: textAt(s, "name"),
      variations: itemsAt(s, "variations").map((v) => ({
        id: textAt(v, "id"),
        key: textAt(v, "key"),
        name: textAt(v, "name"),
        changes: itemsAt(v, "changes").map(changeDraftFromTree),
      })),
    })),
    sharedChanges: itemsAt(tree, "sharedChanges").map(changeDraftFromTree),
    metrics: itemsAt(tree, "metrics").map((m) => {
      const capping = nodeAt(m, "capping");
      return {
        eventId: textAt(m, "eventId"),
        aggregator: textAt(m, "aggregator"),
        field: textAt(m, "field"),
        winningDirection: textAt(m, "winningDirection"),
        cappingType: textAt(capping, "type"),
        cappingValue: textAt(capping, "value"),
      };
    }),
  };
}

/**
 * `visitorId=variationKey` lines → the API's `forcedVariations`. A line is split at its LAST `=`:
 * a variation key never holds one (KEY_PATTERN, src/api/schemas/fields.ts) while visitor ids may
 * (base64 `dXNlcjE=`). The record has no prototype, so a visitor id `__proto__` is an entry like
 * any other (on a plain object, assigning it would change the prototype and the id would be lost).
 */
export function forcedVariationsOf(lines: string): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const line of lines.split("\n")) {
    if (line.trim() === "") continue;
    const at = line.lastIndexOf("=");
    out[(at < 0 ? line : line.slice(0, at)).trim()] = at < 0 ? "" : line.slice(at + 1).trim();
  }
  return out;
}

function metricBody(m: MetricDraft): Record<string, unknown> {
  const body: Record<string, unknown> = { eventId: m.eventId, aggregator: m.aggregator };
  if (m.field !== "") body.field = m.field;
  if (m.winningDirection !== "") body.winningDirection = m.winningDirection;
  if (m.cappingType !== "") body.capping = { type: m.cappingType, value: numberOf(m.cappingValue) };
  return body;
}

/**
 * The API body of the form: `POST /projects/{id}/experiments` (create) or `PATCH
 * /experiments/{id}` (update; every field the form shows is sent, so the form replaces them).
 * Only the list of the type is sent: variations for ab and split_url, sections for multivariate.
 */
export function bodyOf(draft: ExperimentDraft, kind: "create" | "update"): Record<string, unknown> {
  const body: Record<string, unknown> = {
    key: draft.key,
    name: draft.name,
    description: draft.description,
    type: draft.type,
    pageIds: draft.pageIds,
    metrics: draft.metrics.map(metricBody),
    sharedChanges: draft.sharedChanges.map(changeBody),
    forcedVariations: forcedVariationsOf(draft.forcedVariations),
    groupId: draft.groupId === "" ? null : draft.groupId,
    allocationPolicy: draft.allocationPolicy,
  };
  const traffic = basisPoints(draft.traffic);
  if (traffic !== undefined) body.traffic = traffic;
  if (!(kind === "update" && draft.audienceTree !== "" && draft.keepAudienceTree))
    body.audienceConditions = draft.audienceIds.length === 0 ? null : ["or", ...draft.audienceIds];
  if (draft.type === "multivariate")
    body.sections = draft.sections.map((s) => ({
      ...(s.id === "" ? {} : { id: s.id }),
      name: s.name,
      variations: s.variations.map((v) => ({
        ...(v.id === "" ? {} : { id: v.id }),
        ...(v.key === "" ? {} : { key: v.key }),
        name: v.name,
        changes: v.changes.map(changeBody),
      })),
    }));
  else
    body.variations = draft.variations.map((v) => ({
      ...(v.id === "" ? {} : { id: v.id }),
      key: v.key,
      ...(v.name === "" ? {} : { name: v.name }),
      weight: basisPoints(v.weight),
      ...(v.featureEnabled === "" ? {} : { featureEnabled: v.featureEnabled === "true" }),
      changes: v.changes.map(changeBody),
    }));
  return body;
}

// ---------------------------------------------------------------------------------------------
// The form's buttons other than save

type ControlKind = "add" | "remove" | "primary" | "refresh";
const CONTROL_KINDS: readonly ControlKind[] = ["add", "remove", "primary", "refresh"];

/** The row button that posted the form (`_add=variations`, `_remove=variations[1]` …), if any. */
export function controlOf(form: PostedForm): { kind: ControlKind; target: string } | null {
  for (const kind of CONTROL_KINDS) {
    const target = form.get(`_${kind}`)?.[0];
    if (target !== undefined) return { kind, target };
  }
  return null;
}

/** The list at a path of the draft (`variations[0].changes`), or null when there is none. */
function listAt(draft: ExperimentDraft, segments: readonly string[]): unknown[] | null {
  let node: unknown = draft;
  for (const segment of segments) {
    if (Array.isArray(node)) node = /^\d+$/.test(segment) ? node[Number(segment)] : undefined;
    else if (isRecord(node) && Object.hasOwn(node, segment)) node = node[segment];
    else return null;
  }
  return Array.isArray(node) ? node : null;
}

/** Whether the variations' weights are the equal split (then adding or removing one re-splits). */
function equallySplit(variations: readonly VariationDraft[]): boolean {
  const split = equalSplit(variations.length);
  return variations.every((v, i) => Number(v.weight) === Number(split[i]));
}

function resplit(variations: VariationDraft[]): void {
  equalSplit(variations.length).forEach((weight, i) => {
    variations[i]!.weight = weight;
  });
}

/** Applies a row button to the draft (nothing for a path the draft does not have). */
export function applyControl(
  draft: ExperimentDraft,
  control: { kind: ControlKind; target: string },
  form: PostedForm,
): void {
  const segments = pathSegments(control.target);
  const last = segments.at(-1);
  if (control.kind === "refresh") {
    ensureShape(draft);
    return;
  }
  if (control.kind === "add") {
    const list = listAt(draft, segments);
    if (!list) return;
    if (last === "changes" || last === "sharedChanges")
      list.push(emptyChange(one(form, `_type.${control.target}`)));
    else if (segments.length === 1 && last === "variations") {
      const equal = equallySplit(draft.variations);
      draft.variations.push(newVariation(draft.variations.length));
      if (equal) resplit(draft.variations);
    } else if (last === "variations") list.push(newSectionVariation(list.length));
    else if (last === "sections") list.push(newSection(list.length));
    else if (last === "metrics") list.push(newMetric());
    return;
  }
  if (last === undefined || !/^\d+$/.test(last)) return;
  const index = Number(last);
  const list = listAt(draft, segments.slice(0, -1));
  if (!list || index >= list.length) return;
  if (control.kind === "remove") {
    const variations = list === draft.variations;
    const equal = variations && equallySplit(draft.variations);
    list.splice(index, 1);
    if (equal) resplit(draft.variations);
  } else if (control.kind === "primary" && list === draft.metrics) {
    const [metric] = draft.metrics.splice(index, 1);
    if (metric) draft.metrics.unshift(metric);
  }
}

// ---------------------------------------------------------------------------------------------
// Duplicate

/** `<key>_copy`, else `<key>_copy2`, `_copy3` … — the first not taken (cut to fit 64 characters). */
export function freeCopyKey(key: string, taken: ReadonlySet<string>): string {
  for (let n = 1; ; n++) {
    const suffix = n === 1 ? "_copy" : `_copy${n}`;
    const candidate = key.slice(0, 64 - suffix.length) + suffix;
    if (!taken.has(candidate)) return candidate;
  }
}

/** The create body of a copy: everything but ids and status (a new experiment is Not started). */
export function copyBody(x: ExperimentJson, key: string): Record<string, unknown> {
  const body: Record<string, unknown> = {
    key,
    name: x.name === "" ? "" : `${x.name.slice(0, 193)} (copy)`,
    description: x.description,
    type: x.type,
    pageIds: x.pageIds,
    metrics: x.metrics,
    audienceConditions: x.audienceConditions ?? null,
    traffic: x.traffic,
    allocationPolicy: x.allocationPolicy,
    groupId: x.groupId,
    sharedChanges: x.sharedChanges,
    forcedVariations: x.forcedVariations,
    // A copy of a flag's A/B rule is an A/B rule of the same flag (it has no pages of its own).
    ...(x.flagId === null ? {} : { flagId: x.flagId }),
  };
  if (x.type === "multivariate")
    body.sections = sectionsDraftOf(x.sections).map((s) => ({
      name: s.name,
      variations: s.variations.map((v) => ({
        key: v.key,
        name: v.name,
        changes: v.changes.map(changeBody),
      })),
    }));
  else
    body.variations = x.variations.map((v) => ({
      key: v.key,
      ...(v.name === undefined ? {} : { name: v.name }),
      weight: v.weight,
      changes: v.changes,
      ...(v.featureEnabled === undefined ? {} : { featureEnabled: v.featureEnabled }),
    }));
  return body;
}
