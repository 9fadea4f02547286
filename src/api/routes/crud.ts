/**
 * The CRUD routes of the project resources (docs/api.md "Resources"): GET/POST
 * `/projects/{projectId}/<plural>`, GET/PATCH/DELETE `/<plural>/{id}`, viewer reads, editor
 * writes, ETag / If-Match, pagination. HTTP only: each handler reads the request, calls the
 * resource service (src/api/services/resources.ts: roles, validation, audit, publish) and
 * answers with what it returns.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { encodeCursor, PaginationQuery, pageSchema, parsePagination } from "../http/pagination";
import { DeletedSchema, IdParams, ProjectParams, PublishedField } from "../schemas/fields";
import {
  createResource,
  deleteResource,
  getResource,
  listResources,
  updateResource,
  type Page,
  type ResourceSpec,
} from "../services/resources";
import { PendingReviewSchema, type PendingReview } from "../schemas/change-requests";
import { isPendingReview } from "../services/review";
import type { BaseRow } from "../store/rows";
import { article } from "../store/sql";

/** A resource's HTTP half: its paths, OpenAPI schemas and descriptions. */
export interface ResourceRoutes<Json, Create, Update, Item = Json> {
  /** Path segment (`attributes`). */
  plural: string;
  /** OpenAPI tag. */
  tag: string;
  /** Response schema of one resource (registered under a name). */
  schema: z.ZodType<Json>;
  createSchema: z.ZodType<Create>;
  updateSchema: z.ZodType<Update>;
  /** Schema of a list page's items, when the spec's `listItems` projects them (lists). */
  listItemSchema?: z.ZodType<Item>;
  /** OpenAPI descriptions. */
  describe: { create: string; update: string; delete: string; list?: string };
}

/** What `registerCrud` takes: a resource's domain half and its HTTP half. */
export type CrudSpec<
  Row extends BaseRow,
  Json,
  Create,
  Update,
  ItemRow = Row,
  Item = Json,
> = ResourceSpec<Row, Json, Create, Update, ItemRow, Item> &
  ResourceRoutes<Json, Create, Update, Item>;

/** `{items, nextCursor}`: a service page with its cursor encoded (src/api/http/pagination.ts). */
export function pageBody<T>(page: Page<T>): { items: T[]; nextCursor: string | null } {
  return { items: page.items, nextCursor: page.after === null ? null : encodeCursor(page.after) };
}

/**
 * Registers the five CRUD routes of a resource. The `c.json<…>` type arguments name each
 * response's type as the route declares it: with a generic schema, TypeScript cannot infer it
 * from the value (it would compare `JSONParsed<Awaited<Json>>` with `JSONParsed<Json>`).
 */
export function registerCrud<
  Row extends BaseRow,
  Json extends object,
  Create extends object,
  Update extends object,
  ItemRow extends { id: string } = Row,
  Item = Json,
>(app: ApiApp, spec: CrudSpec<Row, Json, Create, Update, ItemRow, Item>): void {
  const tags = [spec.tag];
  const withPublished = z
    .intersection(spec.schema, z.object({ published: PublishedField }))
    .openapi({ description: `The ${spec.type}, and the datafile revisions the change published` });
  type WithPublished = z.output<typeof withPublished>;
  const listItemSchema: z.ZodType<Json | Item> = spec.listItemSchema ?? spec.schema;
  const listPageSchema = pageSchema(listItemSchema, `${spec.tag}Page`);
  type ListPage = z.output<typeof listPageSchema>;

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
        200: jsonResponse(listPageSchema, `A page of ${spec.plural}`),
        ...errorResponses(401, 404, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      // Read once the project is found: an unknown project answers 404 before a bad ?cursor's 422.
      const page = await listResources(c.env, c.get("actor"), spec, projectId, () =>
        parsePagination(c),
      );
      return c.json<ListPage, 200>(pageBody(page), 200);
    },
  );

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
    async (c) => {
      const { projectId } = c.req.valid("param");
      const { row, json, published } = await createResource(
        c.env,
        c.get("actor"),
        spec,
        projectId,
        c.req.valid("json"),
      );
      setEtag(c, row.version);
      c.header("Location", `${API_BASE_PATH}/${spec.plural}/${row.id}`);
      return c.json<WithPublished, 201>({ ...json, published }, 201);
    },
  );

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
    async (c) => {
      const { row, json } = await getResource(c.env, c.get("actor"), spec, c.req.valid("param").id);
      setEtag(c, row.version);
      return c.json<Json, 200>(json, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "patch",
      path: `/${spec.plural}/{id}`,
      tags,
      summary: `Change ${article(spec.type)} ${spec.type}`,
      description: `${spec.describe.update}\n\nFields sent replace the current ones; absent fields stay. Send \`If-Match\` with the ETag you read: a stale one answers 409 version_conflict.${spec.changeRequests ? " An editor's change that needs review (docs/approvals.md) answers 202 with the pending change request and changes nothing yet." : ""}`,
      middleware: [requireRole("editor")] as const,
      request: { params: IdParams, body: jsonBody(spec.updateSchema) },
      responses: {
        200: jsonResponse(withPublished, `The changed ${spec.type}`),
        ...(spec.changeRequests
          ? {
              202: jsonResponse(
                PendingReviewSchema,
                "The change waits for review (docs/approvals.md): nothing changed yet",
              ),
            }
          : {}),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const result = await updateResource(
        c.env,
        c.get("actor"),
        spec,
        c.req.valid("param").id,
        c.req.valid("json"),
        (version) => checkIfMatch(c, version),
      );
      if (isPendingReview(result)) {
        c.header("Location", `${API_BASE_PATH}/change-requests/${result.changeRequest.id}`);
        return c.json<PendingReview, 202>(result, 202);
      }
      const { row, json, published } = result;
      setEtag(c, row.version);
      return c.json<WithPublished, 200>({ ...json, published }, 200);
    },
  );

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
    async (c) => {
      const { row, published } = await deleteResource(
        c.env,
        c.get("actor"),
        spec,
        c.req.valid("param").id,
        (version) => checkIfMatch(c, version),
      );
      return c.json({ id: row.id, deleted: true as const, published }, 200);
    },
  );
}
