/**
 * Environments (docs/api.md "Environments"). Each has its own sdkKey, datafile revision and
 * experiment statuses; its datafile is served at `/_ss/datafiles/{sdkKey}.json`.
 * Reading needs any token; creating, renaming and deleting need role admin. The `production`
 * environment cannot be deleted (delete the project instead); the key and sdkKey never change.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { auditIfChanged, auditStatement } from "../store/audit";
import { requireRole } from "../http/auth";
import { all, listEnvironments, requireEnvironment, requireProject } from "../store/db";
import { type EnvironmentRow } from "../store/rows";
import { conflict, versionConflict } from "../errors";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { newId, newSdkKey, nowIso } from "../ids";

export const EnvironmentSchema = z
  .object({
    id: z.string(),
    projectId: z.string(),
    key: z.string().openapi({ example: "production" }),
    name: z.string(),
    sdkKey: z.string().openapi({
      description:
        "Names the datafile (`datafiles/{sdkKey}` in KV); use it in ROUTES `sdk_key` and SDKs.",
    }),
    revision: z
      .number()
      .int()
      .openapi({ description: "Last published datafile revision; 0 = never published." }),
    datafileUrl: z.string().openapi({ example: "/_ss/datafiles/Xa3kP0q9ZfT2mN8vB1cD4e.json" }),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Environment");

const ENVIRONMENT_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const EnvironmentCreateSchema = z
  .strictObject({
    key: z
      .string()
      .regex(
        ENVIRONMENT_KEY,
        "lowercase letters, digits, - and _, starting with a letter or digit, at most 64",
      ),
    name: z.string().trim().min(1).max(200),
  })
  .openapi("EnvironmentCreate");

const EnvironmentUpdateSchema = z
  .strictObject({ name: z.string().trim().min(1).max(200).optional() })
  .openapi("EnvironmentUpdate");

const ProjectParams = z.object({
  projectId: z.string().openapi({ param: { name: "projectId", in: "path" } }),
});
const EnvironmentParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
});

export type EnvironmentJson = z.infer<typeof EnvironmentSchema>;

/** Where official SDKs and the edge fetch an environment's datafile (same host as the API). */
export function datafilePath(sdkKey: string): string {
  return `/_ss/datafiles/${sdkKey}.json`;
}

export function environmentJson(row: EnvironmentRow): EnvironmentJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    sdkKey: row.sdk_key,
    revision: row.revision,
    datafileUrl: datafilePath(row.sdk_key),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Removes the current datafile and every stored revision of these sdkKeys from KV. */
export async function deleteDatafilesOf(kv: KVNamespace, sdkKeys: string[]): Promise<void> {
  for (const sdkKey of sdkKeys) {
    const keys = [`datafiles/${sdkKey}`];
    let cursor: string | undefined;
    do {
      const listed: KVNamespaceListResult<unknown, string> = await kv.list({
        prefix: `datafiles/${sdkKey}/`,
        ...(cursor ? { cursor } : {}),
      });
      keys.push(...listed.keys.map((k) => k.name));
      cursor = listed.list_complete ? undefined : listed.cursor;
    } while (cursor);
    await Promise.all(keys.map((key) => kv.delete(key)));
  }
}

const tags = ["Environments"];

export function registerEnvironmentRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/projects/{projectId}/environments",
      tags,
      summary: "List a project's environments (production first; never paginated)",
      request: { params: ProjectParams },
      responses: {
        200: jsonResponse(
          z
            .object({ items: z.array(EnvironmentSchema), nextCursor: z.null() })
            .openapi("EnvironmentList"),
          "Every environment of the project",
        ),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      await requireProject(c.env.DB, projectId);
      const rows = await listEnvironments(c.env.DB, projectId);
      return c.json({ items: rows.map(environmentJson), nextCursor: null }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/projects/{projectId}/environments",
      tags,
      summary: "Create an environment (with a new sdkKey)",
      description:
        "Existing experiments start as `Not started` in it. Its datafile is published on the next change that publishes.",
      middleware: [requireRole("admin")] as const,
      request: { params: ProjectParams, body: jsonBody(EnvironmentCreateSchema) },
      responses: {
        201: jsonResponse(EnvironmentSchema, "The environment"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const body = c.req.valid("json");
      const db = c.env.DB;
      await requireProject(db, projectId);
      const clash = await all<{ id: string }>(
        db,
        "SELECT id FROM environments WHERE project_id = ? AND key = ?",
        projectId,
        body.key,
      );
      if (clash.length > 0)
        throw conflict(`the project already has an environment with key ${body.key}`, {
          path: "$.body.key",
          existingId: clash[0]?.id,
        });
      const now = nowIso();
      const row: EnvironmentRow = {
        id: newId(),
        project_id: projectId,
        key: body.key,
        name: body.name,
        sdk_key: newSdkKey(),
        revision: 0,
        version: 1,
        created_at: now,
        updated_at: now,
      };
      await db.batch([
        db
          .prepare(
            "INSERT INTO environments (id, project_id, key, name, sdk_key, revision, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)",
          )
          .bind(row.id, projectId, row.key, row.name, row.sdk_key, now, now),
        db
          .prepare(
            "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT id, ?, 'Not started', ? FROM experiments WHERE project_id = ?",
          )
          .bind(row.id, now, projectId),
        auditStatement(db, c.get("actor"), "create", "environment", row.id, projectId, {
          key: row.key,
        }),
      ]);
      setEtag(c, row.version);
      c.header("Location", `/_ss/api/v1/environments/${row.id}`);
      return c.json(environmentJson(row), 201);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}",
      tags,
      summary: "Get an environment",
      request: { params: EnvironmentParams },
      responses: {
        200: jsonResponse(EnvironmentSchema, "The environment"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const row = await requireEnvironment(c.env.DB, environmentId);
      setEtag(c, row.version);
      return c.json(environmentJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: "/environments/{environmentId}",
      tags,
      summary: "Rename an environment",
      description: "Only `name` changes; key and sdkKey are fixed. Send If-Match.",
      middleware: [requireRole("admin")] as const,
      request: { params: EnvironmentParams, body: jsonBody(EnvironmentUpdateSchema) },
      responses: {
        200: jsonResponse(EnvironmentSchema, "The environment"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const body = c.req.valid("json");
      const db = c.env.DB;
      const current = await requireEnvironment(db, environmentId);
      checkIfMatch(c, current.version);
      const next: EnvironmentRow = {
        ...current,
        name: body.name ?? current.name,
        version: current.version + 1,
        updated_at: nowIso(),
      };
      const [update] = await db.batch([
        db
          .prepare(
            "UPDATE environments SET name = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
          )
          .bind(next.name, next.updated_at, environmentId, current.version),
        // The audit row only lands when the update did (same version guard).
        auditIfChanged(
          db,
          c.get("actor"),
          "update",
          "environment",
          environmentId,
          current.project_id,
          { fields: Object.keys(body) },
        ),
      ]);
      if (!update || update.meta.changes === 0) {
        const latest = await requireEnvironment(db, environmentId);
        throw versionConflict(latest.version);
      }
      setEtag(c, next.version);
      return c.json(environmentJson(next), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "delete",
      path: "/environments/{environmentId}",
      tags,
      summary: "Delete an environment",
      description:
        "Refused (409) for `production` and while any experiment is Running in it. Removes its datafiles from KV: its sdkKey stops serving.",
      middleware: [requireRole("admin")] as const,
      request: { params: EnvironmentParams },
      responses: {
        204: { description: "Deleted" },
        ...errorResponses(401, 403, 404, 409),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const db = c.env.DB;
      const env = await requireEnvironment(db, environmentId);
      checkIfMatch(c, env.version);
      if (env.key === "production")
        throw conflict("the production environment cannot be deleted; delete the project instead");
      const running = await all<{ experiment_id: string }>(
        db,
        "SELECT experiment_id FROM experiment_status WHERE environment_id = ? AND status = 'Running' LIMIT 20",
        environmentId,
      );
      if (running.length > 0)
        throw conflict("experiments are running in this environment; pause or archive them first", {
          running: running.map((r) => r.experiment_id),
        });
      await db.batch([
        db.prepare("DELETE FROM environments WHERE id = ?").bind(environmentId),
        auditStatement(db, c.get("actor"), "delete", "environment", environmentId, env.project_id, {
          key: env.key,
          sdkKey: env.sdk_key,
        }),
      ]);
      await deleteDatafilesOf(c.env.DATAFILES, [env.sdk_key]);
      return c.body(null, 204);
    },
  );
}
