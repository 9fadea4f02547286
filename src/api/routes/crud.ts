/**
 * The CRUD route factory of the project resources (docs/api.md "Resources"):
 * GET/POST `/projects/{projectId}/<plural>`, GET/PATCH/DELETE `/<plural>/{id}`, viewer reads,
 * editor writes, ETag / If-Match, pagination.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Env } from "../../env";
import type { ApiApp, ApiEnv } from "../context";
import { auditIfChanged } from "../store/audit";
import type { Actor } from "../context";
import { requireRole } from "../http/auth";
import { all, first, requireProject } from "../store/db";
import { notFound, versionConflict } from "../errors";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageOf, pageSchema, parsePagination } from "../http/pagination";
import { newId, nowIso } from "../ids";

import { ProjectParams, IdParams, PublishedField, DeletedSchema } from "../schemas/fields";
import {
  type BaseRow,
  insertStatement,
  updateStatement,
  requireRow,
  assertKeyFree,
  article,
} from "../store/sql";
import { writeAndPublish } from "../services/write-and-publish";

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
