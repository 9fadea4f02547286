/**
 * The resources of a project (attributes, audiences, events, pages, groups, lists, experiments;
 * docs/api.md "Resources"): one way to read and write them, for the API's routes
 * (src/api/routes/crud.ts) and any other caller (the admin pages) alike.
 *
 * A `ResourceSpec` is a resource's domain half: its table, how a validated body becomes a row
 * (`build`, which throws 422/409), what a delete must check, how rows become JSON. Its HTTP half
 * (paths, OpenAPI schemas and descriptions) is the route module's. Every function here checks the
 * actor's role itself (viewer reads, editor writes; the same 403 as the routes' `requireRole`), so
 * no caller can skip it; every write checks the expected version (If-Match), the key's uniqueness,
 * and goes through `writeAndPublish` (the row and its audit entry in one batch, every environment
 * published in the same call, undone when publishing fails; docs/api.md "Publishing").
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { versionConflict } from "../errors";
import { newId, nowIso } from "../ids";
import { auditIfChanged } from "../store/audit";
import { all, requireProject } from "../store/db";
import type { BaseRow } from "../store/rows";
import type { PendingReview } from "../schemas/change-requests";
import {
  assertKeyFree,
  insertStatement,
  requireRow,
  updateStatement,
  versionedDelete,
  versionGuardError,
} from "../store/sql";
import { requireActorRole } from "./auth";
import type { PublishResult } from "./publish";
import type { ReviewedChange } from "./review";
import { writeAndPublish } from "./write-and-publish";

/**
 * The version a write expects (docs/api.md "Versions"): a number (409 `version_conflict` when
 * another is current), a check of the caller's own — the routes pass one that reads the
 * `If-Match` header (src/api/http/etag.ts `checkIfMatch`: several versions, `*`) — or null: no
 * check (the write is still guarded against a concurrent one).
 */
export type IfMatch = number | ((currentVersion: number) => void) | null;

/** Throws 409 `version_conflict` when `ifMatch` does not accept the current version. */
export function checkVersion(ifMatch: IfMatch, currentVersion: number): void {
  if (typeof ifMatch === "function") ifMatch(currentVersion);
  else if (ifMatch !== null && ifMatch !== currentVersion) throw versionConflict(currentVersion);
}

/** What `build` and `beforeDelete` get. */
export interface BuildContext {
  db: D1Database;
  env: Env;
  actor: Actor;
  projectId: string;
  /** id of the new or changed row. */
  id: string;
  /** Timestamp of the write (`created_at` / `updated_at`). */
  now: string;
}

/**
 * Statements a write adds to its batch, after the row's own write and its audit entry, and the
 * statements restoring what they change when publishing fails.
 */
export interface WriteHooks {
  extra?: D1PreparedStatement[];
  undo?: D1PreparedStatement[];
}

/** What `build` builds from: a create body, or an update body and the current row. */
export type BuildInput<Row, Create, Update> =
  { kind: "create"; body: Create; current: null } | { kind: "update"; body: Update; current: Row };

/** A lighter projection of the rows for list pages (lists leave their values out). */
export interface ListItems<ItemRow, Item> {
  /** The columns to select (SQL). */
  select: string;
  present(rows: ItemRow[]): Item[];
}

/** A resource's domain half (the HTTP half is src/api/routes/crud.ts's `ResourceRoutes`). */
export interface ResourceSpec<
  Row extends BaseRow,
  Json,
  Create,
  Update,
  ItemRow = Row,
  Item = Json,
> {
  /** Singular noun: audit `resource_type`, 404 and 409 messages (`attribute`). */
  type: string;
  /** D1 table. */
  table: string;
  /** Whether the table has a per-project unique `key` (checked with a 409 before writing). */
  keyed: boolean;
  /** How audit entries and publish reasons name a row (its key, or its name). */
  label(row: Row): string;
  /**
   * The full new row from a validated create body, or from the current row and a validated
   * update body (id, version and timestamps from `ctx`; the service sets the new version). Throws
   * 422 (`Problems`) / 409.
   */
  build(
    ctx: BuildContext,
    input: BuildInput<Row, Create, Update>,
  ): Promise<{ row: Row } & WriteHooks>;
  /**
   * Before an update is written (after `build` accepted it): a change that must wait for review
   * (docs/approvals.md) is recorded as a change request and answered instead of being written
   * (experiments), or refused with 403 (what a live experiment under review uses: pages,
   * audiences, lists, groups, flags); null = write it.
   */
  review?(ctx: BuildContext, current: Row, body: Update): Promise<PendingReview | null>;
  /** Whether `review` can answer a change request (experiments), not only refuse (403). */
  changeRequests?: boolean;
  /** Before a delete: throws 409 while the row is in use; may add statements and their undo. */
  beforeDelete?(ctx: BuildContext, row: Row): Promise<WriteHooks | void>;
  /** Rows → JSON (several at once, so lookups can be shared). */
  present(db: D1Database, rows: Row[]): Promise<Json[]>;
  /** List pages' projection; absent: list pages hold what `present` makes. */
  listItems?: ListItems<ItemRow, Item>;
  /**
   * After a create is written and published (experiments tell webhooks). Must not throw: the
   * resource exists whatever it does.
   */
  afterCreate?(env: Env, actor: Actor, row: Row): Promise<void>;
}

/** `?limit` and the decoded `?cursor` of a list (src/api/http/pagination.ts reads them). */
export interface PageRequest {
  limit: number;
  /** The id of the previous page's last item; null for the first page. */
  cursor: string | null;
}

/** One page of a list ordered by id. */
export interface Page<T> {
  items: T[];
  /** The id of the page's last item when more follow (the next page's cursor), else null. */
  after: string | null;
}

/** A page from rows fetched with LIMIT `limit + 1`: the first `limit`, and whether more follow. */
export function pageAfter<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  if (rows.length <= limit) return { items: rows, after: null };
  const items = rows.slice(0, limit);
  return { items, after: items[items.length - 1]?.id ?? null };
}

/** A written row, its JSON, and the datafile revisions the write published. */
export interface Written<Row, Json> {
  row: Row;
  json: Json;
  published: PublishResult[];
}

/** The names of the body fields that were sent (an update's audit entry lists them). */
export function sentFields(body: object): string[] {
  return Object.entries(body)
    .filter(([, value]) => value !== undefined)
    .map(([key]) => key);
}

/** The row's `key`, for resources that have one. */
function keyOf(row: BaseRow): string | undefined {
  return "key" in row && typeof row.key === "string" ? row.key : undefined;
}

async function presentOne<Row extends BaseRow, Json>(
  db: D1Database,
  spec: { present(db: D1Database, rows: Row[]): Promise<Json[]> },
  row: Row,
): Promise<Json> {
  const [json] = await spec.present(db, [row]);
  if (json === undefined) throw new Error(`present() returned nothing for row ${row.id}`);
  return json;
}

/**
 * A page of the project's resources, by id (viewer). 404 when the project does not exist.
 * `page` may be a function: it is called once the project is found, so a caller whose page
 * request can itself be refused (the API's `?limit`/`?cursor`, 422) reports the 404 first.
 */
export async function listResources<
  Row extends BaseRow,
  Json,
  Create,
  Update,
  ItemRow extends { id: string },
  Item,
>(
  env: Env,
  actor: Actor,
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  projectId: string,
  pageRequest: PageRequest | (() => PageRequest),
): Promise<Page<Json | Item>> {
  requireActorRole(actor, "viewer");
  const db = env.DB;
  await requireProject(db, projectId);
  const page = typeof pageRequest === "function" ? pageRequest() : pageRequest;
  const sql = (select: string) =>
    `SELECT ${select} FROM ${spec.table} WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?`;
  const params = [projectId, page.cursor ?? "", page.limit + 1];
  if (spec.listItems) {
    const rows = pageAfter(
      await all<ItemRow>(db, sql(spec.listItems.select), ...params),
      page.limit,
    );
    return { items: spec.listItems.present(rows.items), after: rows.after };
  }
  const rows = pageAfter(await all<Row>(db, sql("*"), ...params), page.limit);
  return { items: await spec.present(db, rows.items), after: rows.after };
}

/** One resource and its JSON (viewer); 404 when it does not exist. */
export async function getResource<Row extends BaseRow, Json, Create, Update, ItemRow, Item>(
  env: Env,
  actor: Actor,
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  id: string,
): Promise<{ row: Row; json: Json }> {
  requireActorRole(actor, "viewer");
  const row = await requireRow<Row>(env.DB, spec.table, spec.type, id);
  return { row, json: await presentOne(env.DB, spec, row) };
}

/**
 * Creates a resource in the project from a validated create body (editor): 404 when the project
 * does not exist, 422/409 from `build`, 409 when the key is taken; then writes and publishes
 * (audit `create` with the label).
 */
export async function createResource<Row extends BaseRow, Json, Create, Update, ItemRow, Item>(
  env: Env,
  actor: Actor,
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  projectId: string,
  body: Create,
): Promise<Written<Row, Json>> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  await requireProject(db, projectId);
  const ctx: BuildContext = { db, env, actor, projectId, id: newId(), now: nowIso() };
  const { row, extra = [] } = await spec.build(ctx, { kind: "create", body, current: null });
  if (spec.keyed) await assertKeyFree(db, spec.table, spec.type, projectId, keyOf(row) ?? "", null);
  const published = await writeAndPublish(env, actor, {
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
  await spec.afterCreate?.(env, actor, row);
  return { row, json: await presentOne(db, spec, row), published };
}

/**
 * Changes a resource with a validated update body (editor): fields sent replace the current ones.
 * 404 when it does not exist, 409 when `ifMatch` does not accept its version (or another write
 * wins the race), 422/409 from `build`, 409 when a new key is taken; then writes and publishes
 * (audit `update` with the fields sent) — or, when the spec's `review` says the change waits for
 * review (docs/approvals.md), writes nothing but the change request and answers it.
 * `options.reviewed`: the change is an approved request being applied (no review again; the
 * audit entry names the request and its requester).
 */
export async function updateResource<
  Row extends BaseRow,
  Json,
  Create,
  Update extends object,
  ItemRow,
  Item,
>(
  env: Env,
  actor: Actor,
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  id: string,
  body: Update,
  ifMatch: IfMatch,
  options: { reviewed?: ReviewedChange } = {},
): Promise<Written<Row, Json> | PendingReview> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const current = await requireRow<Row>(db, spec.table, spec.type, id);
  checkVersion(ifMatch, current.version);
  const ctx: BuildContext = {
    db,
    env,
    actor,
    projectId: current.project_id,
    id: current.id,
    now: nowIso(),
  };
  const built = await spec.build(ctx, { kind: "update", body, current });
  const row: Row = { ...built.row, version: current.version + 1, updated_at: ctx.now };
  const key = keyOf(row);
  if (spec.keyed && key !== keyOf(current))
    await assertKeyFree(db, spec.table, spec.type, current.project_id, key ?? "", current.id);
  const { reviewed } = options;
  if (!reviewed && spec.review) {
    const pending = await spec.review(ctx, current, body);
    if (pending) return pending;
  }
  const published = await writeAndPublish(env, actor, {
    projectId: current.project_id,
    statements: [
      updateStatement(db, spec.table, row, current.version),
      auditIfChanged(db, actor, "update", spec.type, row.id, current.project_id, {
        fields: sentFields(body),
        ...(reviewed
          ? { changeRequest: reviewed.changeRequestId, requestedBy: reviewed.requestedBy }
          : {}),
      }),
      ...(built.extra ?? []),
    ],
    auditIndex: 1,
    onGuardFailed: () => versionGuardError(db, spec.table, spec.type, row.id),
    undo: [updateStatement(db, spec.table, current, row.version), ...(built.undo ?? [])],
    reason: `${spec.type} ${spec.label(row)} changed${reviewed ? ` (change request ${reviewed.changeRequestId} approved)` : ""}`,
  });
  return { row, json: await presentOne(db, spec, row), published };
}

/**
 * Deletes a resource (editor): 404 when it does not exist, 409 when `ifMatch` does not accept its
 * version, 409 from `beforeDelete` while it is in use; then writes and publishes (audit `delete`
 * with the label).
 */
export async function deleteResource<Row extends BaseRow, Json, Create, Update, ItemRow, Item>(
  env: Env,
  actor: Actor,
  spec: ResourceSpec<Row, Json, Create, Update, ItemRow, Item>,
  id: string,
  ifMatch: IfMatch,
): Promise<{ row: Row; published: PublishResult[] }> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const row = await requireRow<Row>(db, spec.table, spec.type, id);
  checkVersion(ifMatch, row.version);
  const ctx: BuildContext = {
    db,
    env,
    actor,
    projectId: row.project_id,
    id: row.id,
    now: nowIso(),
  };
  const hooks = (await spec.beforeDelete?.(ctx, row)) ?? {};
  const published = await writeAndPublish(env, actor, {
    projectId: row.project_id,
    statements: [
      versionedDelete(db, spec.table, row.id, row.version),
      auditIfChanged(db, actor, "delete", spec.type, row.id, row.project_id, {
        label: spec.label(row),
      }),
      ...(hooks.extra ?? []),
    ],
    auditIndex: 1,
    onGuardFailed: () => versionGuardError(db, spec.table, spec.type, row.id),
    undo: [insertStatement(db, spec.table, row), ...(hooks.undo ?? [])],
    reason: `${spec.type} ${spec.label(row)} deleted`,
  });
  return { row, published };
}
