/**
 * What the project resources (attributes, audiences, events, pages, groups, lists, experiments;
 * docs/api.md "Resources") share:
 *
 * - validation: handler-side checks report `{path: "$.body…", message}` details exactly like the
 *   zod request validation does (`Problems`); condition trees (audiences, pages, experiment
 *   audience conditions) are walked by hand so every problem has its precise JSON path; changes,
 *   selectors and URL trees are also run through the datafile validator (`parseDatafile`) on a
 *   small datafile built from the request, so the API accepts exactly what the edge will load;
 * - the write cycle (`writeAndPublish`): one D1 batch = the change + its audit entry (the audit
 *   row only lands when a version-guarded change did), then `publishProject` in the same request
 *   (docs/api.md). When publishing fails, the change is undone (so from the client's view nothing
 *   happened) and the error is returned;
 * - a CRUD route factory (`registerCrud`): GET/POST `/projects/{projectId}/<plural>`,
 *   GET/PATCH/DELETE `/<plural>/{id}`, viewer reads, editor writes, ETag / If-Match, pagination.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { MAX_CONDITION_DEPTH, parseDatafile, URL_MATCH_TYPES } from "../../core/datafile-parse";
import { formatPath } from "../../core/problem";
import { parseSemver } from "../../core/semver";
import type { Env } from "../../env";
import type { ApiApp, ApiEnv } from "../context";
import { auditIfChanged } from "../audit";
import type { Actor } from "../context";
import { requireRole } from "../auth";
import { all, first, requireProject } from "../db";
import { ApiError, conflict, notFound, unprocessable, versionConflict } from "../errors";
import {
  checkIfMatch,
  errorResponses,
  jsonBody,
  jsonResponse,
  PaginationQuery,
  pageOf,
  pageSchema,
  parsePagination,
  setEtag,
  type ValidationDetail,
} from "../http";
import { newId, nowIso } from "../ids";
import { publishProject, type PublishResult } from "../publish";
import {
  REQUEST_ATTRIBUTE_FAMILIES,
  REQUEST_ATTRIBUTE_NAMES,
} from "../../shared/request-attributes";

export type Seg = string | number;

// ---------------------------------------------------------------------------------------------
// Validation details

/** Handler-side validation problems, reported like zod's: `$.body.<path>`. */
export class Problems {
  readonly details: ValidationDetail[] = [];

  add(path: readonly Seg[], message: string): void {
    this.details.push({ path: formatPath(["body", ...path]), message });
  }

  /** A detail whose path is already formatted (`$.body…`). */
  addFormatted(path: string, message: string): void {
    if (!this.details.some((d) => d.path === path && d.message === message))
      this.details.push({ path, message });
  }

  get empty(): boolean {
    return this.details.length === 0;
  }

  /** Throws the 422 `validation_failed` when anything was reported. */
  throwIfAny(): void {
    const [firstDetail] = this.details;
    if (!firstDetail) return;
    const more = this.details.length > 1 ? ` (and ${this.details.length - 1} more)` : "";
    throw unprocessable(
      `invalid request body: ${firstDetail.path}: ${firstDetail.message}${more}`,
      this.details,
    );
  }
}

/** Zod issues of a nested parse, reported at `path` + the issue's path (as http.ts does). */
function reportIssues(
  issues: readonly z.core.$ZodIssue[],
  path: readonly Seg[],
  report: (path: Seg[], message: string) => void,
): void {
  for (const issue of issues) {
    const at = [...path, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) report([...at, key], "unknown field");
    } else {
      report(at, issue.message);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Common field schemas

/** Keys of pages, events, lists and experiments (Optimizely's key rules, a little wider). */
export const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const keySchema = z
  .string()
  .regex(KEY_PATTERN, "1–64 characters: letters, digits, _ . - (starting with a letter or digit)")
  .openapi({ example: "checkout_button" });
export const nameSchema = z.string().max(200);
export const descriptionSchema = z.string().max(5000);

/** `{projectId}` path parameter. */
export const ProjectParams = z.object({
  projectId: z
    .string()
    .openapi({ param: { name: "projectId", in: "path" }, example: "204819230581" }),
});

/** `{id}` path parameter. */
export const IdParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "204819230582" }),
});

/** Fields every resource has. */
export const resourceFields = {
  id: z.string().openapi({ example: "204819230582" }),
  projectId: z.string().openapi({ example: "204819230581" }),
  version: z
    .number()
    .int()
    .openapi({ description: 'Bumped by every change; the ETag is W/"v<version>".' }),
  createdAt: z.string(),
  updatedAt: z.string(),
};

/** What a write published (one entry per environment of the project). */
export const PublishResultSchema = z
  .object({
    environmentId: z.string(),
    environmentKey: z.string(),
    sdkKey: z.string(),
    revision: z.number().int(),
    changed: z.boolean().openapi({
      description: "False when the datafile content did not change (nothing written).",
    }),
    warnings: z.array(
      z.object({ path: z.string(), message: z.string(), severity: z.enum(["error", "warning"]) }),
    ),
  })
  .openapi("PublishResult");

export const PublishedField = z.array(PublishResultSchema).openapi({
  description:
    "The datafile revisions this change published, one per environment of the project (docs/api.md: changes publish in the same request).",
});

/** The body of a DELETE: what was deleted and what it published. */
export const DeletedSchema = z
  .object({ id: z.string(), deleted: z.literal(true), published: PublishedField })
  .openapi("Deleted");

// ---------------------------------------------------------------------------------------------
// Condition trees

export const CONDITION_OPERATORS = ["and", "or", "not"] as const;
const OPERATOR_SET = new Set<unknown>(CONDITION_OPERATORS);

/**
 * Walks an and/or/not condition tree the API accepts: an array starting with "and", "or" (at
 * least one operand) or "not" (exactly one operand); operands are leaves or nested arrays.
 * Structural problems go to `report`; each leaf (anything but an array) goes to `leaf` with its
 * path.
 */
export function walkConditionTree(
  tree: unknown,
  leaf: (node: unknown, path: Seg[]) => void,
  report: (path: Seg[], message: string) => void,
  path: Seg[] = [],
  depth = 0,
): void {
  if (!Array.isArray(tree)) {
    leaf(tree, path);
    return;
  }
  if (depth >= MAX_CONDITION_DEPTH) {
    report(path, `condition tree is nested deeper than ${MAX_CONDITION_DEPTH} levels`);
    return;
  }
  const operator: unknown = tree[0];
  if (!OPERATOR_SET.has(operator)) {
    report(
      tree.length === 0 ? path : [...path, 0],
      tree.length === 0
        ? 'empty condition array: start it with "and", "or" or "not"'
        : 'a condition array starts with "and", "or" or "not"',
    );
    return;
  }
  if (operator === "not" && tree.length !== 2)
    report(path, `"not" takes exactly one operand, got ${tree.length - 1}`);
  else if (tree.length < 2) report(path, `"${String(operator)}" needs at least one operand`);
  for (let i = 1; i < tree.length; i++) {
    const node: unknown = tree[i];
    if (OPERATOR_SET.has(node)) {
      report(
        [...path, i],
        `"${String(node)}" is an operator: it must be the first element of an array`,
      );
      continue;
    }
    walkConditionTree(node, leaf, report, [...path, i], depth + 1);
  }
}

/** Every leaf of a (structurally valid) tree, with its path. */
export function leavesOf(tree: unknown): Array<{ node: unknown; path: Seg[] }> {
  const out: Array<{ node: unknown; path: Seg[] }> = [];
  walkConditionTree(
    tree,
    (node, path) => out.push({ node, path }),
    () => {},
  );
  return out;
}

/**
 * A condition-tree request field: a JSON array whose structure and leaves (`leafSchema`) are
 * validated with precise paths (`$.body.conditions[1][2].match`).
 */
export function conditionTreeSchema(leafSchema: z.ZodType, description: string, example: unknown) {
  return z
    .array(z.unknown())
    .superRefine((tree, ctx) => {
      const report = (path: Seg[], message: string) =>
        ctx.addIssue({ code: "custom", path, message });
      walkConditionTree(
        tree,
        (node, path) => {
          const parsed = leafSchema.safeParse(node);
          if (!parsed.success) reportIssues(parsed.error.issues, path, report);
        },
        report,
      );
    })
    .openapi({ description, example });
}

/** Match types of audience leaves the API accepts (docs/datafile.md; Optimizely's plus `in_list`). */
export const AUDIENCE_MATCH_TYPES = [
  "exact",
  "exists",
  "substring",
  "gt",
  "ge",
  "lt",
  "le",
  "semver_eq",
  "semver_gt",
  "semver_ge",
  "semver_lt",
  "semver_le",
  "in_list",
] as const;

const MAX_SAFE = 2 ** 53;

/** One audience leaf: `{type: "custom_attribute", name, match, value}`; value checked per match type. */
export const audienceConditionSchema = z
  .strictObject({
    type: z.literal("custom_attribute"),
    name: z.string().min(1).max(255),
    match: z.enum(AUDIENCE_MATCH_TYPES).optional(),
    value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
  })
  .superRefine((leaf, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: "custom", path: ["value"], message });
    const { match, value } = leaf;
    switch (match) {
      case undefined:
      case "exact":
        if (typeof value !== "string" && typeof value !== "boolean" && typeof value !== "number")
          bad(`match "exact" needs a string, number or boolean value`);
        else if (typeof value === "number" && Math.abs(value) > MAX_SAFE)
          bad("numbers must be within ±2^53");
        break;
      case "exists":
        if (value !== undefined && value !== null) bad(`match "exists" takes no value`);
        break;
      case "substring":
        if (typeof value !== "string") bad(`match "substring" needs a string value`);
        break;
      case "gt":
      case "ge":
      case "lt":
      case "le":
        if (typeof value !== "number" || !Number.isFinite(value) || Math.abs(value) > MAX_SAFE)
          bad(`match "${match}" needs a finite number value (within ±2^53)`);
        break;
      case "in_list":
        if (typeof value !== "string" || value === "")
          bad(`match "in_list" needs the key of a list of this project`);
        break;
      default:
        // semver_*
        if (typeof value !== "string")
          bad(`match "${match}" needs a version string such as "2.1.0"`);
        else if (parseSemver(value) === null)
          bad(
            `${JSON.stringify(value)} is not a version (1–3 numeric parts, optional -prerelease or +build)`,
          );
    }
  })
  .openapi("AudienceCondition", {
    description:
      "A leaf of an audience condition tree. `name`: an attribute key of the project or a request attribute (geo.country, device.type, query.<name>, cookie.<name>, header.<name>, utm.source, …; docs/visitors.md). `match` defaults to exact.",
    example: { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
  });

/** One URL leaf of a page: `{match, value}` (regex values must compile). */
export const urlConditionSchema = z
  .strictObject({
    match: z.enum(URL_MATCH_TYPES),
    value: z.string().min(1).max(2048),
  })
  .superRefine((leaf, ctx) => {
    if (leaf.match !== "regex") return;
    try {
      new RegExp(leaf.value);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        path: ["value"],
        message: `invalid regular expression: ${(error as Error).message.replace(/^Invalid regular expression: /, "")}`,
      });
    }
  })
  .openapi("UrlCondition", {
    description:
      "A URL match: simple (host + path, ignoring scheme, www., query, hash, trailing slash), exact, substring (case-insensitive), regex (case-sensitive, full URL).",
    example: { match: "simple", value: "https://shop.example.com/products" },
  });

/** Attributes the edge computes per request (docs/datafile.md, docs/visitors.md). */
const REQUEST_ATTRIBUTES: ReadonlySet<string> = new Set(REQUEST_ATTRIBUTE_NAMES);

/**
 * True for a request attribute: a fixed name, or `query.<name>`, `cookie.<name>`, `header.<name>`
 * with a non-empty name (src/shared/request-attributes.ts).
 */
export function isRequestAttribute(name: string): boolean {
  if (REQUEST_ATTRIBUTES.has(name)) return true;
  return REQUEST_ATTRIBUTE_FAMILIES.some(
    (prefix) => name.length > prefix.length && name.startsWith(prefix),
  );
}

// ---------------------------------------------------------------------------------------------
// Deep checks through the datafile validator

export interface FragmentPage {
  id: string;
  key?: string;
  activation?: string;
  selector?: string | null;
  conditions?: unknown;
}

export interface FragmentEvent {
  id: string;
  type: string;
  pageId?: string | null;
  selector?: string | null;
}

export interface FragmentExperiment {
  type: string;
  pageIds: string[];
  sharedChanges: unknown[];
  variations: Array<{ changes: unknown[] }>;
  sections?: Array<{ name?: string; variations: Array<{ name?: string; changes: unknown[] }> }>;
}

const STUB_CONDITIONS = ["or", { match: "substring", value: "/" }];

/**
 * Runs `parseDatafile` on a minimal datafile holding the request's page, event or experiment
 * (the subject is always the first entry of its list) plus stubs of the project's pages, and
 * returns its errors under the subject's prefix rewritten to `$.body`. This is how selectors,
 * redirect destinations, unsafe attribute changes, change page ids and URL trees are checked by
 * the very code the edge loads datafiles with.
 */
export function datafileProblems(fragment: {
  page?: FragmentPage;
  event?: FragmentEvent;
  experiment?: FragmentExperiment;
  /** Other pages of the project (ids), so references to them resolve. */
  pageIds?: readonly string[];
}): ValidationDetail[] {
  const pages: Record<string, unknown>[] = [];
  let prefix: string;
  if (fragment.page) {
    const page: Record<string, unknown> = {
      id: fragment.page.id,
      key: fragment.page.key ?? fragment.page.id,
      activation: fragment.page.activation ?? "immediate",
      conditions: fragment.page.conditions ?? STUB_CONDITIONS,
    };
    if (typeof fragment.page.selector === "string") page.selector = fragment.page.selector;
    pages.push(page);
    prefix = "$.web.pages[0]";
  } else if (fragment.event) {
    prefix = "$.web.events[0]";
  } else {
    prefix = "$.web.experiments[0]";
  }
  for (const id of fragment.pageIds ?? []) {
    if (pages.some((p) => p.id === id)) continue;
    pages.push({ id, key: `page_${id}`, activation: "immediate", conditions: STUB_CONDITIONS });
  }

  const events: Record<string, unknown>[] = [];
  const webEvents: Record<string, unknown>[] = [];
  if (fragment.event) {
    const e = fragment.event;
    events.push({ id: e.id, key: `event_${e.id}`, experimentIds: [] });
    const web: Record<string, unknown> = { id: e.id, type: e.type };
    if (typeof e.pageId === "string") web.pageId = e.pageId;
    if (typeof e.selector === "string") web.selector = e.selector;
    webEvents.push(web);
  }

  const experiments: Record<string, unknown>[] = [];
  const webExperiments: Record<string, unknown>[] = [];
  if (fragment.experiment) {
    const x = fragment.experiment;
    const variationIds = x.variations.map((_, i) => `v${i}`);
    experiments.push({
      id: "x",
      key: "x",
      status: "Not started",
      layerId: "x",
      variations: variationIds.map((id) => ({ id, key: id })),
      trafficAllocation: [],
      audienceIds: [],
      forcedVariations: {},
    });
    const web: Record<string, unknown> = {
      id: "x",
      type: x.type,
      pageIds: x.pageIds,
      metrics: [],
      sharedChanges: x.sharedChanges,
      variations: x.variations.map((v, i) => ({ id: variationIds[i], changes: v.changes })),
    };
    if (x.sections)
      web.sections = x.sections.map((s, i) => ({
        id: `s${i}`,
        variations: s.variations.map((v, j) => ({ id: `s${i}v${j}`, changes: v.changes })),
      }));
    webExperiments.push(web);
  }

  const result = parseDatafile({
    version: "4",
    accountId: "0",
    projectId: "0",
    revision: "0",
    attributes: [],
    audiences: [],
    events,
    experiments,
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: { pages, events: webEvents, experiments: webExperiments, lists: [], integrations: {} },
  });
  const out: ValidationDetail[] = [];
  for (const problem of result.problems) {
    if (problem.severity !== "error") continue;
    const path = problem.path;
    if (path !== prefix && !path.startsWith(`${prefix}.`) && !path.startsWith(`${prefix}[`))
      continue;
    out.push({ path: `$.body${path.slice(prefix.length)}`, message: problem.message });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rows and SQL

/** Every resource row has these. */
export interface BaseRow {
  id: string;
  project_id: string;
  version: number;
  created_at: string;
  updated_at: string;
}

type RowValues = Record<string, unknown>;

const quote = (column: string) => `"${column}"`;

/** `INSERT INTO table (every column of row) VALUES (…)`. */
export function insertStatement(db: D1Database, table: string, row: object): D1PreparedStatement {
  const values = row as RowValues;
  const columns = Object.keys(values);
  return db
    .prepare(
      `INSERT INTO ${table} (${columns.map(quote).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
    )
    .bind(...columns.map((c) => values[c] ?? null));
}

/**
 * `UPDATE table SET (every column but id and project_id) WHERE id = ? AND version = ?`: the
 * version-guarded write of a whole row (no row changed = someone else wrote first).
 */
export function updateStatement(
  db: D1Database,
  table: string,
  row: BaseRow,
  expectedVersion: number,
): D1PreparedStatement {
  const values = row as unknown as RowValues;
  const columns = Object.keys(values).filter((c) => c !== "id" && c !== "project_id");
  return db
    .prepare(
      `UPDATE ${table} SET ${columns.map((c) => `${quote(c)} = ?`).join(", ")} WHERE id = ? AND version = ?`,
    )
    .bind(...columns.map((c) => values[c] ?? null), row.id, expectedVersion);
}

/** Parses a JSON column, with a fallback for a null or corrupt value. */
export function parseJson<T>(text: string | null | undefined, fallback: T): T {
  if (text === null || text === undefined) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** The row of `table` with `id`, or 404. */
export async function requireRow<T>(
  db: D1Database,
  table: string,
  type: string,
  id: string,
): Promise<T> {
  const row = await first<T>(db, `SELECT * FROM ${table} WHERE id = ?`, id);
  if (!row) throw notFound(type, id);
  return row;
}

/** 409 when another row of the project already has `key` in `table`. */
export async function assertKeyFree(
  db: D1Database,
  table: string,
  type: string,
  projectId: string,
  key: string,
  exceptId: string | null,
): Promise<void> {
  const clash = await first<{ id: string }>(
    db,
    `SELECT id FROM ${table} WHERE project_id = ? AND key = ? AND id <> ?`,
    projectId,
    key,
    exceptId ?? "",
  );
  if (clash)
    throw conflict(
      `the project already has ${article(type)} ${type} with key ${JSON.stringify(key)}`,
      {
        path: "$.body.key",
        existingId: clash.id,
      },
    );
}

/** "a" or "an". */
export function article(noun: string): string {
  return /^[aeiou]/i.test(noun) ? "an" : "a";
}

/** 409 `conflict` for deleting (or re-keying) something still in use. */
export function inUse(
  what: string,
  users: Array<{ type: string; id: string; key?: string; name?: string }>,
): ApiError {
  const list = users
    .slice(0, 5)
    .map((u) => `${u.type} ${u.key ?? u.name ?? u.id}`)
    .join(", ");
  return conflict(
    `${what} is in use by ${list}${users.length > 5 ? ` and ${users.length - 5} more` : ""}`,
    {
      usedBy: users.map((u) => ({ type: u.type, id: u.id })),
    },
  );
}

// ---------------------------------------------------------------------------------------------
// The write cycle

export interface WritePlan {
  projectId: string;
  /**
   * The batch. With `onGuardFailed`, statement `guardIndex` is the guarded write (version or
   * status check) and the one right after it its `auditIfChanged`; the other statements must be
   * harmless when the guard changed nothing (make them conditional on what the guard wrote).
   */
  statements: D1PreparedStatement[];
  /** Index of the audit statement in `statements` (its row is removed again on undo). */
  auditIndex: number;
  /** Index of the guard statement (default 0). */
  guardIndex?: number;
  /** The guard changed no row → this error (a 409). Absent: the batch cannot lose a race. */
  onGuardFailed?: () => Promise<ApiError>;
  /** Statements restoring the state before the write (run when publishing fails). */
  undo: D1PreparedStatement[];
  /** Reason recorded with the published revisions, e.g. "experiment checkout_button start". */
  reason: string;
}

/**
 * Runs the batch, then publishes every environment of the project in the same request. When
 * publishing fails (422 `datafile_invalid`: nothing was published; or a storage error), the
 * change and its audit entry are undone, whatever a partial publish wrote is re-published from
 * the restored state (best effort), and the error is thrown: the request did nothing.
 */
export async function writeAndPublish(
  env: Env,
  actor: Actor,
  plan: WritePlan,
): Promise<PublishResult[]> {
  const db = env.DB;
  const results = await db.batch(plan.statements);
  if (plan.onGuardFailed && (results[plan.guardIndex ?? 0]?.meta.changes ?? 0) === 0)
    throw await plan.onGuardFailed();
  const auditRowId = results[plan.auditIndex]?.meta.last_row_id;
  try {
    return await publishProject(env, plan.projectId, actor, plan.reason);
  } catch (error) {
    const undo = [...plan.undo];
    if (typeof auditRowId === "number" && auditRowId > 0)
      undo.push(db.prepare("DELETE FROM audit_log WHERE id = ?").bind(auditRowId));
    try {
      if (undo.length > 0) await db.batch(undo);
    } catch (undoError) {
      console.error("splitstream api: could not undo a change whose publish failed", undoError);
      throw error;
    }
    if (!(error instanceof ApiError && error.status === 422)) {
      // A storage error may have published some environments already: publish the restored state.
      await publishProject(
        env,
        plan.projectId,
        actor,
        `${plan.reason} (undone: publishing failed)`,
      ).catch((again: unknown) =>
        console.error("splitstream api: re-publish after undo failed", again),
      );
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// CRUD routes

/** What a resource module tells `registerCrud`. */
export interface CrudSpec<Row extends BaseRow, Json, Create, Update> {
  /** Singular noun: audit `resource_type`, 404 messages (`attribute`). */
  type: string;
  /** Path segment (`attributes`). */
  plural: string;
  /** D1 table. */
  table: string;
  /** OpenAPI tag. */
  tag: string;
  /** Response schema of one resource (registered under a name). */
  schema: z.ZodType<Json>;
  createSchema: z.ZodType<Create>;
  updateSchema: z.ZodType<Update>;
  /** OpenAPI descriptions. */
  describe: { create: string; update: string; delete: string; list?: string };
  /** Whether the table has a per-project unique `key` (checked with a 409 before writing). */
  keyed: boolean;
  /** Rows → JSON (several at once, so lookups can be shared). */
  present(db: D1Database, rows: Row[]): Promise<Json[]>;
  /** List query columns/presentation override (lists omit their values). */
  listItems?: {
    schema: z.ZodType;
    select: string;
    present(rows: Record<string, unknown>[]): unknown[];
  };
  /**
   * The full new row from a validated create body, or from the current row and a validated
   * update body. Throws 422 (Problems) / 409. Extra statements run in the same batch, after the
   * row's own write and its audit entry; `undo` restores what they change.
   */
  build(
    ctx: BuildContext,
    input:
      | { kind: "create"; body: Create; current: null }
      | { kind: "update"; body: Update; current: Row },
  ): Promise<{ row: Row; extra?: D1PreparedStatement[]; undo?: D1PreparedStatement[] }>;
  /** Before a delete: throws 409 when in use; extra statements / undo as in build. */
  beforeDelete?(
    ctx: BuildContext,
    row: Row,
  ): Promise<{ extra?: D1PreparedStatement[]; undo?: D1PreparedStatement[] } | void>;
  /** How audit entries and publish reasons name a row (its key, or its name). */
  label(row: Row): string;
}

export interface BuildContext {
  db: D1Database;
  env: Env;
  actor: Actor;
  projectId: string;
  /** id, version and timestamps for a new or changed row. */
  id: string;
  now: string;
}

/** The names of the body fields that were sent (for the audit entry). */
export function sentFields(body: object): string[] {
  return Object.entries(body)
    .filter(([, value]) => value !== undefined)
    .map(([key]) => key);
}

type Ctx = Context<ApiEnv, string, object>;

/**
 * Registers the five CRUD routes of a resource. Handlers are typed loosely inside (the factory
 * is generic); the OpenAPI document is exact.
 */
export function registerCrud<
  Row extends BaseRow,
  Json,
  Create extends object,
  Update extends object,
>(app: ApiApp, spec: CrudSpec<Row, Json, Create, Update>): void {
  const tags = [spec.tag];
  const withPublished = z
    .intersection(spec.schema, z.object({ published: PublishedField }))
    .openapi({ description: `The ${spec.type}, and the datafile revisions the change published` });
  const listItemSchema = spec.listItems?.schema ?? spec.schema;

  const get = (c: Ctx, name: "id" | "projectId"): string => c.req.param(name) ?? "";
  const body = <T>(c: Ctx): T => (c.req as unknown as { valid(target: "json"): T }).valid("json");

  // ---- list
  app.openapi(
    createRoute({
      method: "get",
      path: `/projects/{projectId}/${spec.plural}`,
      tags,
      summary: `List a project's ${spec.plural} (by id)`,
      ...(spec.describe.list ? { description: spec.describe.list } : {}),
      middleware: [requireRole("viewer")] as const,
      request: { params: ProjectParams, query: PaginationQuery },
      responses: {
        200: jsonResponse(
          pageSchema(listItemSchema, `${spec.tag}Page`),
          `A page of ${spec.plural}`,
        ),
        ...errorResponses(401, 404, 422),
      },
    }),
    (async (c: Ctx) => {
      const db = c.env.DB;
      const projectId = get(c, "projectId");
      await requireProject(db, projectId);
      const { limit, cursor } = parsePagination(c);
      const select = spec.listItems?.select ?? "*";
      const rows = await all<Row>(
        db,
        `SELECT ${select} FROM ${spec.table} WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?`,
        projectId,
        cursor ?? "",
        limit + 1,
      );
      const page = pageOf(rows, limit);
      const items = spec.listItems
        ? spec.listItems.present(page.items as unknown as Record<string, unknown>[])
        : await spec.present(db, page.items);
      return c.json({ items, nextCursor: page.nextCursor }, 200);
    }) as never,
  );

  // ---- create
  app.openapi(
    createRoute({
      method: "post",
      path: `/projects/{projectId}/${spec.plural}`,
      tags,
      summary: `Create ${article(spec.type)} ${spec.type}`,
      description: spec.describe.create,
      middleware: [requireRole("editor")] as const,
      request: { params: ProjectParams, body: jsonBody(spec.createSchema) },
      responses: {
        201: jsonResponse(withPublished, `The ${spec.type}`),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    (async (c: Ctx) => {
      const db = c.env.DB;
      const actor = c.get("actor");
      const projectId = get(c, "projectId");
      await requireProject(db, projectId);
      const ctx: BuildContext = { db, env: c.env, actor, projectId, id: newId(), now: nowIso() };
      const input = body<Create>(c);
      const { row, extra = [] } = await spec.build(ctx, {
        kind: "create",
        body: input,
        current: null,
      });
      if (spec.keyed)
        await assertKeyFree(
          db,
          spec.table,
          spec.type,
          projectId,
          (row as unknown as { key: string }).key,
          null,
        );
      const published = await writeAndPublish(c.env, actor, {
        projectId,
        statements: [
          insertStatement(db, spec.table, row),
          auditIfChanged(db, actor, "create", spec.type, row.id, projectId, {
            label: spec.label(row),
          }),
          ...extra,
        ],
        auditIndex: 1,
        // Deleting the row removes what cascades from it (experiment statuses).
        undo: [db.prepare(`DELETE FROM ${spec.table} WHERE id = ?`).bind(row.id)],
        reason: `${spec.type} ${spec.label(row)} created`,
      });
      const [json] = await spec.present(db, [row]);
      setEtag(c, row.version);
      c.header("Location", `/_ss/api/v1/${spec.plural}/${row.id}`);
      return c.json({ ...(json as object), published }, 201);
    }) as never,
  );

  // ---- get
  app.openapi(
    createRoute({
      method: "get",
      path: `/${spec.plural}/{id}`,
      tags,
      summary: `Get ${article(spec.type)} ${spec.type}`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(spec.schema, `The ${spec.type}`),
        ...errorResponses(401, 404),
      },
    }),
    (async (c: Ctx) => {
      const db = c.env.DB;
      const row = await requireRow<Row>(db, spec.table, spec.type, get(c, "id"));
      const [json] = await spec.present(db, [row]);
      setEtag(c, row.version);
      return c.json(json as object, 200);
    }) as never,
  );

  // ---- update
  app.openapi(
    createRoute({
      method: "patch",
      path: `/${spec.plural}/{id}`,
      tags,
      summary: `Change ${article(spec.type)} ${spec.type}`,
      description: `${spec.describe.update}\n\nFields sent replace the current ones; absent fields stay. Send \`If-Match\` with the ETag you read: a stale one answers 409 version_conflict.`,
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams, body: jsonBody(spec.updateSchema) },
      responses: {
        200: jsonResponse(withPublished, `The changed ${spec.type}`),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    (async (c: Ctx) => {
      const db = c.env.DB;
      const actor = c.get("actor");
      const current = await requireRow<Row>(db, spec.table, spec.type, get(c, "id"));
      checkIfMatch(c, current.version);
      const input = body<Update>(c);
      const ctx: BuildContext = {
        db,
        env: c.env,
        actor,
        projectId: current.project_id,
        id: current.id,
        now: nowIso(),
      };
      const built = await spec.build(ctx, { kind: "update", body: input, current });
      const row: Row = { ...built.row, version: current.version + 1, updated_at: ctx.now };
      const key = (row as unknown as { key?: string }).key;
      if (spec.keyed && key !== (current as unknown as { key?: string }).key)
        await assertKeyFree(db, spec.table, spec.type, current.project_id, key ?? "", current.id);
      const published = await writeAndPublish(c.env, actor, {
        projectId: current.project_id,
        statements: [
          updateStatement(db, spec.table, row, current.version),
          auditIfChanged(db, actor, "update", spec.type, row.id, current.project_id, {
            fields: sentFields(input),
          }),
          ...(built.extra ?? []),
        ],
        auditIndex: 1,
        onGuardFailed: async () => {
          const latest = await first<BaseRow>(
            db,
            `SELECT version FROM ${spec.table} WHERE id = ?`,
            row.id,
          );
          return latest ? versionConflict(latest.version) : notFound(spec.type, row.id);
        },
        undo: [updateStatement(db, spec.table, current, row.version), ...(built.undo ?? [])],
        reason: `${spec.type} ${spec.label(row)} changed`,
      });
      const [json] = await spec.present(db, [row]);
      setEtag(c, row.version);
      return c.json({ ...(json as object), published }, 200);
    }) as never,
  );

  // ---- delete
  app.openapi(
    createRoute({
      method: "delete",
      path: `/${spec.plural}/{id}`,
      tags,
      summary: `Delete ${article(spec.type)} ${spec.type}`,
      description: `${spec.describe.delete}\n\nHonours \`If-Match\`. Answers 200 with the publish results (the deletion publishes).`,
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(DeletedSchema, "Deleted"),
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    (async (c: Ctx) => {
      const db = c.env.DB;
      const actor = c.get("actor");
      const row = await requireRow<Row>(db, spec.table, spec.type, get(c, "id"));
      checkIfMatch(c, row.version);
      const ctx: BuildContext = {
        db,
        env: c.env,
        actor,
        projectId: row.project_id,
        id: row.id,
        now: nowIso(),
      };
      const hooks = (await spec.beforeDelete?.(ctx, row)) ?? {};
      const published = await writeAndPublish(c.env, actor, {
        projectId: row.project_id,
        statements: [
          db
            .prepare(`DELETE FROM ${spec.table} WHERE id = ? AND version = ?`)
            .bind(row.id, row.version),
          auditIfChanged(db, actor, "delete", spec.type, row.id, row.project_id, {
            label: spec.label(row),
          }),
          ...(hooks.extra ?? []),
        ],
        auditIndex: 1,
        onGuardFailed: async () => {
          const latest = await first<BaseRow>(
            db,
            `SELECT version FROM ${spec.table} WHERE id = ?`,
            row.id,
          );
          return latest ? versionConflict(latest.version) : notFound(spec.type, row.id);
        },
        undo: [insertStatement(db, spec.table, row), ...(hooks.undo ?? [])],
        reason: `${spec.type} ${spec.label(row)} deleted`,
      });
      return c.json({ id: row.id, deleted: true, published }, 200);
    }) as never,
  );
}
