/**
 * Projects (docs/api.md "Projects"). A project owns every other resource; creating one also
 * creates its two environments, `production` and `development`, each with its own sdkKey.
 * Reading needs any token; creating, changing and deleting projects need role admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { auditIfChanged, auditStatement } from "../store/audit";
import { requireRole } from "../http/auth";
import { all, first, listEnvironments, requireProject } from "../store/db";
import { type EnvironmentRow, type ProjectRow } from "../store/rows";
import { conflict } from "../errors";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageOf, pageSchema, parsePagination } from "../http/pagination";
import { versionConflict } from "../errors";
import { newId, newSdkKey, nowIso } from "../ids";
import { deleteDatafilesOf, EnvironmentSchema, environmentJson } from "./environments";

export const ProjectSchema = z
  .object({
    id: z.string().openapi({ example: "204819230581" }),
    name: z.string(),
    description: z.string(),
    accountId: z
      .string()
      .openapi({ description: "Datafile `accountId`; shared by the projects of one deployment." }),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Project");

const ProjectWithEnvironmentsSchema = ProjectSchema.extend({
  environments: z.array(EnvironmentSchema),
}).openapi("ProjectWithEnvironments");

const ProjectCreateSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    description: z.string().max(5000).optional(),
  })
  .openapi("ProjectCreate");

const ProjectUpdateSchema = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    description: z.string().max(5000).optional(),
  })
  .openapi("ProjectUpdate");

const ProjectParams = z.object({
  projectId: z
    .string()
    .openapi({ param: { name: "projectId", in: "path" }, example: "204819230581" }),
});

export type ProjectJson = z.infer<typeof ProjectSchema>;

export function projectJson(row: ProjectRow): ProjectJson {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    accountId: row.account_id,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

const DEFAULT_ENVIRONMENTS = [
  { key: "production", name: "Production" },
  { key: "development", name: "Development" },
] as const;

const tags = ["Projects"];

export function registerProjectRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/projects",
      tags,
      summary: "Create a project (and its production and development environments)",
      middleware: [requireRole("admin")] as const,
      request: { body: jsonBody(ProjectCreateSchema) },
      responses: {
        201: jsonResponse(ProjectWithEnvironmentsSchema, "The project, with its environments"),
        ...errorResponses(400, 401, 403, 413, 422),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const db = c.env.DB;
      const actor = c.get("actor");
      const now = nowIso();
      // One account id per deployment: reuse the first project's.
      const account = await first<{ account_id: string }>(
        db,
        "SELECT account_id FROM projects ORDER BY created_at, id LIMIT 1",
      );
      const project: ProjectRow = {
        id: newId(),
        name: body.name,
        description: body.description ?? "",
        account_id: account?.account_id ?? newId(),
        version: 1,
        created_at: now,
        updated_at: now,
      };
      const environments: EnvironmentRow[] = DEFAULT_ENVIRONMENTS.map((env) => ({
        id: newId(),
        project_id: project.id,
        key: env.key,
        name: env.name,
        sdk_key: newSdkKey(),
        revision: 0,
        version: 1,
        created_at: now,
        updated_at: now,
      }));
      await db.batch([
        db
          .prepare(
            "INSERT INTO projects (id, name, account_id, description, version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
          )
          .bind(project.id, project.name, project.account_id, project.description, now, now),
        ...environments.map((env) =>
          db
            .prepare(
              "INSERT INTO environments (id, project_id, key, name, sdk_key, revision, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)",
            )
            .bind(env.id, env.project_id, env.key, env.name, env.sdk_key, now, now),
        ),
        auditStatement(db, actor, "create", "project", project.id, project.id, {
          name: project.name,
          environments: environments.map((env) => ({ id: env.id, key: env.key })),
        }),
      ]);
      setEtag(c, project.version);
      c.header("Location", `/_ss/api/v1/projects/${project.id}`);
      return c.json(
        { ...projectJson(project), environments: environments.map(environmentJson) },
        201,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/projects",
      tags,
      summary: "List projects (by id)",
      request: { query: PaginationQuery },
      responses: {
        200: jsonResponse(pageSchema(ProjectSchema, "ProjectPage"), "A page of projects"),
        ...errorResponses(401, 422),
      },
    }),
    async (c) => {
      const { limit, cursor } = parsePagination(c);
      const rows = await all<ProjectRow>(
        c.env.DB,
        "SELECT * FROM projects WHERE id > ? ORDER BY id LIMIT ?",
        cursor ?? "",
        limit + 1,
      );
      const page = pageOf(rows, limit);
      return c.json({ items: page.items.map(projectJson), nextCursor: page.nextCursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{projectId}",
      tags,
      summary: "Get a project, with its environments",
      request: { params: ProjectParams },
      responses: {
        200: jsonResponse(ProjectWithEnvironmentsSchema, "The project"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const project = await requireProject(c.env.DB, projectId);
      const environments = await listEnvironments(c.env.DB, projectId);
      setEtag(c, project.version);
      return c.json(
        { ...projectJson(project), environments: environments.map(environmentJson) },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/projects/{projectId}",
      tags,
      summary: "Change a project's name or description",
      description:
        "Send `If-Match` with the ETag you read; a stale one answers 409 version_conflict.",
      middleware: [requireRole("admin")] as const,
      request: { params: ProjectParams, body: jsonBody(ProjectUpdateSchema) },
      responses: {
        200: jsonResponse(ProjectSchema, "The changed project"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const body = c.req.valid("json");
      const db = c.env.DB;
      const current = await requireProject(db, projectId);
      checkIfMatch(c, current.version);
      const next: ProjectRow = {
        ...current,
        name: body.name ?? current.name,
        description: body.description ?? current.description,
        version: current.version + 1,
        updated_at: nowIso(),
      };
      const changed = Object.keys(body).filter((k) => body[k as keyof typeof body] !== undefined);
      const [update] = await db.batch([
        db
          .prepare(
            "UPDATE projects SET name = ?, description = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
          )
          .bind(next.name, next.description, next.updated_at, projectId, current.version),
        // The audit row only lands when the update did (same version guard).
        auditIfChanged(db, c.get("actor"), "update", "project", projectId, projectId, {
          fields: changed,
        }),
      ]);
      if (!update || update.meta.changes === 0) {
        // Someone else wrote between our read and our update.
        const latest = await requireProject(db, projectId);
        throw versionConflict(latest.version);
      }
      setEtag(c, next.version);
      return c.json(projectJson(next), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/projects/{projectId}",
      tags,
      summary: "Delete a project and everything in it",
      description:
        "Refused (409) while any experiment is Running in any of its environments. Also removes its environments' datafiles from KV, so their sdkKeys stop serving.",
      middleware: [requireRole("admin")] as const,
      request: { params: ProjectParams },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const db = c.env.DB;
      const project = await requireProject(db, projectId);
      checkIfMatch(c, project.version);
      const running = await all<{ experiment_id: string; environment_id: string }>(
        db,
        `SELECT s.experiment_id, s.environment_id FROM experiment_status s
           JOIN environments e ON e.id = s.environment_id
          WHERE e.project_id = ? AND s.status = 'Running' LIMIT 20`,
        projectId,
      );
      if (running.length > 0)
        throw conflict("the project has running experiments; pause or archive them first", {
          running: running.map((r) => ({
            experimentId: r.experiment_id,
            environmentId: r.environment_id,
          })),
        });
      const environments = await listEnvironments(db, projectId);
      await db.batch([
        db.prepare("DELETE FROM projects WHERE id = ?").bind(projectId),
        auditStatement(db, c.get("actor"), "delete", "project", projectId, projectId, {
          name: project.name,
        }),
      ]);
      await deleteDatafilesOf(
        c.env.DATAFILES,
        environments.map((e) => e.sdk_key),
      );
      return c.body(null, 204);
    },
  );
}
