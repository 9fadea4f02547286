/**
 * The audit log (docs/api.md "Audit log"): newest first, paginated. A project's log needs any
 * token; the whole log (tokens included, which belong to no project) needs admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { ADMIN_ACTOR_ID } from "../services/auth";
import { requireRole } from "../http/auth";
import { all, requireProject } from "../store/db";
import type { AuditRow } from "../store/rows";
import { errorResponses, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageOf, pageSchema, parsePagination } from "../http/pagination";

export const AuditEntrySchema = z
  .object({
    id: z.string(),
    at: z.string(),
    actor: z.object({
      id: z.string().openapi({ description: "`admin-token` or a token id." }),
      name: z
        .string()
        .nullable()
        .openapi({ description: "The token's name (null when it no longer exists)." }),
    }),
    action: z.string().openapi({ example: "update" }),
    resourceType: z.string().openapi({ example: "experiment" }),
    resourceId: z.string(),
    projectId: z.string().nullable(),
    details: z.unknown(),
  })
  .openapi("AuditEntry");

function auditJson(row: AuditRow): z.infer<typeof AuditEntrySchema> {
  let details: unknown;
  try {
    details = JSON.parse(row.details);
  } catch {
    details = row.details;
  }
  return {
    id: String(row.id),
    at: row.at,
    actor: {
      id: row.actor,
      name: row.actor === ADMIN_ACTOR_ID ? "ADMIN_TOKEN" : row.actor_name,
    },
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    projectId: row.project_id,
    details,
  };
}

/** The cursor of newest-first lists is the last id seen; the next page has smaller ids. */
function beforeId(cursor: string | null): number {
  const n = cursor === null ? Number.MAX_SAFE_INTEGER : Number(cursor);
  return Number.isSafeInteger(n) ? n : 0;
}

const AuditQuery = PaginationQuery.extend({
  resourceType: z
    .string()
    .optional()
    .openapi({
      param: { name: "resourceType", in: "query" },
      description: "Only entries about this resource type.",
    }),
  resourceId: z
    .string()
    .optional()
    .openapi({
      param: { name: "resourceId", in: "query" },
      description: "Only entries about this resource.",
    }),
});

const SELECT = `SELECT a.*, t.name AS actor_name FROM audit_log a LEFT JOIN tokens t ON t.id = a.actor`;

function filters(query: { resourceType?: string | undefined; resourceId?: string | undefined }) {
  const sql: string[] = [];
  const params: unknown[] = [];
  if (query.resourceType) {
    sql.push("a.resource_type = ?");
    params.push(query.resourceType);
  }
  if (query.resourceId) {
    sql.push("a.resource_id = ?");
    params.push(query.resourceId);
  }
  return { sql: sql.map((s) => ` AND ${s}`).join(""), params };
}

const tags = ["Audit log"];
const Page = pageSchema(AuditEntrySchema, "AuditPage");

export function registerAuditLogRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{projectId}/audit-log",
      tags,
      summary: "A project's audit log, newest first",
      request: {
        params: z.object({
          projectId: z.string().openapi({ param: { name: "projectId", in: "path" } }),
        }),
        query: AuditQuery,
      },
      responses: {
        200: jsonResponse(Page, "A page of entries"),
        ...errorResponses(401, 404, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const query = c.req.valid("query");
      const { limit, cursor } = parsePagination(c);
      await requireProject(c.env.DB, projectId);
      const f = filters(query);
      const rows = await all<AuditRow>(
        c.env.DB,
        `${SELECT} WHERE a.project_id = ? AND a.id < ?${f.sql} ORDER BY a.id DESC LIMIT ?`,
        projectId,
        beforeId(cursor),
        ...f.params,
        limit + 1,
      );
      const page = pageOf(rows.map(auditJson), limit);
      return c.json(page, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/audit-log",
      tags,
      summary: "The whole audit log (every project, and tokens), newest first",
      middleware: [requireRole("admin")] as const,
      request: { query: AuditQuery },
      responses: {
        200: jsonResponse(Page, "A page of entries"),
        ...errorResponses(401, 403, 422),
      },
    }),
    async (c) => {
      const query = c.req.valid("query");
      const { limit, cursor } = parsePagination(c);
      const f = filters(query);
      const rows = await all<AuditRow>(
        c.env.DB,
        `${SELECT} WHERE a.id < ?${f.sql} ORDER BY a.id DESC LIMIT ?`,
        beforeId(cursor),
        ...f.params,
        limit + 1,
      );
      return c.json(pageOf(rows.map(auditJson), limit), 200);
    },
  );
}
