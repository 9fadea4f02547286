/**
 * Environment routes (docs/api.md "Environments"); the rules are
 * src/api/services/environments.ts. Reading needs any token; creating, renaming and deleting
 * need role admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import {
  EnvironmentCreateSchema,
  EnvironmentSchema,
  EnvironmentUpdateSchema,
} from "../schemas/environments";
import {
  createEnvironment,
  deleteEnvironment,
  environmentJson,
  getEnvironment,
  listProjectEnvironments,
  updateEnvironment,
} from "../services/environments";

const ProjectParams = z.object({
  projectId: z.string().openapi({ param: { name: "projectId", in: "path" } }),
});
const EnvironmentParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
});

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
      const rows = await listProjectEnvironments(
        c.env,
        c.get("actor"),
        c.req.valid("param").projectId,
      );
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
      const row = await createEnvironment(
        c.env,
        c.get("actor"),
        c.req.valid("param").projectId,
        c.req.valid("json"),
      );
      setEtag(c, row.version);
      c.header("Location", `${API_BASE_PATH}/environments/${row.id}`);
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
      const row = await getEnvironment(c.env, c.get("actor"), c.req.valid("param").environmentId);
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
      const row = await updateEnvironment(
        c.env,
        c.get("actor"),
        c.req.valid("param").environmentId,
        c.req.valid("json"),
        (version) => checkIfMatch(c, version),
      );
      setEtag(c, row.version);
      return c.json(environmentJson(row), 200);
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
      await deleteEnvironment(
        c.env,
        c.get("actor"),
        c.req.valid("param").environmentId,
        (version) => checkIfMatch(c, version),
      );
      return c.body(null, 204);
    },
  );
}
