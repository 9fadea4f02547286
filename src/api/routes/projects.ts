/**
 * Project routes (docs/api.md "Projects"); the rules are src/api/services/projects.ts. Reading
 * needs any token; creating, changing and deleting projects need role admin.
 */
import { createRoute } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import { ProjectParams } from "../schemas/fields";
import {
  ProjectCreateSchema,
  ProjectSchema,
  ProjectUpdateSchema,
  ProjectWithEnvironmentsSchema,
} from "../schemas/projects";
import {
  createProject,
  deleteProject,
  getProject,
  listProjects,
  projectJson,
  projectWithEnvironmentsJson,
  updateProject,
} from "../services/projects";
import { pageBody } from "./crud";

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
      const created = await createProject(c.env, c.get("actor"), c.req.valid("json"));
      setEtag(c, created.project.version);
      c.header("Location", `${API_BASE_PATH}/projects/${created.project.id}`);
      return c.json(projectWithEnvironmentsJson(created), 201);
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
      const page = await listProjects(c.env, c.get("actor"), parsePagination(c));
      return c.json(pageBody({ items: page.items.map(projectJson), after: page.after }), 200);
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
      const found = await getProject(c.env, c.get("actor"), c.req.valid("param").projectId);
      setEtag(c, found.project.version);
      return c.json(projectWithEnvironmentsJson(found), 200);
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
      const project = await updateProject(
        c.env,
        c.get("actor"),
        c.req.valid("param").projectId,
        c.req.valid("json"),
        (version) => checkIfMatch(c, version),
      );
      setEtag(c, project.version);
      return c.json(projectJson(project), 200);
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
      await deleteProject(c.env, c.get("actor"), c.req.valid("param").projectId, (version) =>
        checkIfMatch(c, version),
      );
      return c.body(null, 204);
    },
  );
}
