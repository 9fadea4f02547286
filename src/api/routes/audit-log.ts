/**
 * The audit log (docs/api.md "Audit log"): newest first, paginated. A project's log needs any
 * token; the whole log (tokens included, which belong to no project) needs admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import { listAllAuditEntries, listProjectAuditEntries } from "../services/audit-history";
import { pageBody } from "./crud";

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

const Page = pageSchema(AuditEntrySchema, "AuditPage");

const tags = ["Audit log"];

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
      const page = await listProjectAuditEntries(
        c.env,
        c.get("actor"),
        projectId,
        parsePagination(c),
        query,
      );
      return c.json(pageBody(page), 200);
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
      const page = await listAllAuditEntries(c.env, c.get("actor"), parsePagination(c), query);
      return c.json(pageBody(page), 200);
    },
  );
}
