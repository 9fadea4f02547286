/**
 * Datafiles, revisions, publish and rollback per environment (docs/api.md "Publishing").
 * Reading needs any token; publishing needs editor; rollback needs admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { datafileKey } from "../../edge/datafile-store";
import { REVISION_NUMBER_PATTERN } from "../../shared/revision-number";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import type { DatafileRevisionRow } from "../store/rows";
import { requireEnvironment } from "../store/db";
import { ApiError, unprocessable } from "../errors";
import { encodeCursor, PaginationQuery, parsePagination } from "../http/pagination";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import {
  listRevisions,
  publishEnvironment,
  pushDatafile,
  revisionKey,
  rollbackEnvironment,
  type PublishedDatafileMetadata,
} from "../services/publish";

const EnvironmentParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
});

const RevisionParams = EnvironmentParams.extend({
  revision: z
    .string()
    .regex(REVISION_NUMBER_PATTERN, "must be a positive integer")
    .openapi({ param: { name: "revision", in: "path" }, example: "12" }),
});

const ProblemSchema = z
  .object({
    path: z.string().openapi({ example: "$.web.pages[0].conditions[1].value" }),
    message: z.string(),
    severity: z.enum(["error", "warning"]),
  })
  .openapi("DatafileProblem");

export const PublishResultSchema = z
  .object({
    environmentId: z.string(),
    environmentKey: z.string(),
    sdkKey: z.string(),
    revision: z.number().int().openapi({
      description: "The revision now current (when `changed` is false, the unchanged current one).",
    }),
    changed: z.boolean().openapi({
      description: "False when the content equals the current revision's: nothing was published.",
    }),
    warnings: z.array(ProblemSchema).openapi({
      description: "Validator warnings: the datafile loads, but these are probably mistakes.",
    }),
  })
  .openapi("PublishResult");

export const RevisionSchema = z
  .object({
    revision: z.number().int(),
    sha256: z.string().openapi({
      description:
        'SHA-256 (hex) of the datafile\'s content with `revision` set to "": equal content, equal hash.',
    }),
    size: z.number().int().openapi({ description: "Bytes of the stored datafile text." }),
    publishedAt: z.string(),
    publishedBy: z.string().openapi({ description: "Actor id (token id, or `admin-token`)." }),
    reason: z.string(),
    rollbackOf: z.number().int().nullable().openapi({
      description: "Set when this revision re-published an older one.",
    }),
    current: z
      .boolean()
      .openapi({ description: "Whether this is the environment's current revision." }),
  })
  .openapi("DatafileRevision");

const RevisionListSchema = z
  .object({
    items: z.array(RevisionSchema),
    nextCursor: z.string().nullable(),
  })
  .openapi("DatafileRevisionList");

const DatafileSchema = z.record(z.string(), z.unknown()).openapi("Datafile", {
  description: "An Optimizely datafile v4 plus the `web` extension (docs/datafile.md).",
});

const PublishBodySchema = z
  .strictObject({
    reason: z.string().max(500).optional().openapi({ example: "new hero copy" }),
  })
  .openapi("PublishRequest");

const RollbackBodySchema = z
  .strictObject({
    revision: z
      .number()
      .int()
      .min(1)
      .openapi({ description: "The revision whose content to publish again." }),
    reason: z.string().max(500).optional(),
  })
  .openapi("RollbackRequest");

function revisionJson(row: DatafileRevisionRow, current: number) {
  return {
    revision: row.revision,
    sha256: row.sha256,
    size: row.size,
    publishedAt: row.published_at,
    publishedBy: row.published_by,
    reason: row.reason,
    rollbackOf: row.rollback_of,
    current: row.revision === current,
  };
}

/** A stored datafile as the response body, untouched (it is JSON already). */
function datafileResponse(
  text: string,
  metadata: Partial<PublishedDatafileMetadata> | null,
): Response {
  const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8" };
  if (typeof metadata?.revision === "number") headers["x-ss-revision"] = String(metadata.revision);
  if (typeof metadata?.publishedAt === "string") {
    const date = new Date(metadata.publishedAt);
    if (!Number.isNaN(date.getTime())) headers["last-modified"] = date.toUTCString();
  }
  return new Response(text, { status: 200, headers });
}

const tags = ["Publishing"];

export function registerPublishRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/datafile",
      tags,
      summary: "The environment's current datafile",
      description:
        "Exactly the text in KV `datafiles/{sdkKey}` (what SDKs download from `/_ss/datafiles/{sdkKey}.json`). Headers: `x-ss-revision`, `Last-Modified`. 404 when never published.",
      request: { params: EnvironmentParams },
      responses: {
        200: jsonResponse(DatafileSchema, "The datafile"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const environment = await requireEnvironment(c.env.DB, environmentId);
      const { value, metadata } = await c.env.DATAFILES.getWithMetadata<
        Partial<PublishedDatafileMetadata>
      >(datafileKey(environment.sdk_key), "text");
      if (value === null)
        throw new ApiError(
          404,
          "not_found",
          `environment ${environment.key} has no published datafile`,
          {
            type: "datafile",
            id: environmentId,
          },
        );
      // The stored text, byte for byte.
      return datafileResponse(value, metadata) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/revisions",
      tags,
      summary: "Published datafile revisions, newest first",
      request: { params: EnvironmentParams, query: PaginationQuery },
      responses: {
        200: jsonResponse(RevisionListSchema, "A page of revisions"),
        ...errorResponses(401, 404, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const environment = await requireEnvironment(c.env.DB, environmentId);
      const { limit, cursor } = parsePagination(c);
      let before: number | null = null;
      if (cursor !== null) {
        if (!/^\d+$/.test(cursor))
          throw unprocessable("invalid query parameter cursor", [
            { path: "$.query.cursor", message: "not a cursor returned by this API" },
          ]);
        before = Number(cursor);
      }
      const rows = await listRevisions(c.env.DB, environmentId, limit + 1, before);
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return c.json(
        {
          items: page.map((row) => revisionJson(row, environment.revision)),
          nextCursor: rows.length > limit && last ? encodeCursor(String(last.revision)) : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/revisions/{revision}",
      tags,
      summary: "The datafile of one published revision",
      description: "Exactly the text in KV `datafiles/{sdkKey}/{revision}`.",
      request: { params: RevisionParams },
      responses: {
        200: jsonResponse(DatafileSchema, "The datafile of that revision"),
        ...errorResponses(401, 404, 422),
      },
    }),
    async (c) => {
      const { environmentId, revision: revisionParam } = c.req.valid("param");
      const revision = Number(revisionParam);
      const environment = await requireEnvironment(c.env.DB, environmentId);
      const row = await c.env.DB.prepare(
        "SELECT revision FROM datafile_revisions WHERE environment_id = ? AND revision = ? AND sha256 <> ''",
      )
        .bind(environmentId, revision)
        .first();
      const stored = row
        ? await c.env.DATAFILES.getWithMetadata<Partial<PublishedDatafileMetadata>>(
            revisionKey(environment.sdk_key, revision),
            "text",
          )
        : null;
      if (!stored || stored.value === null)
        throw new ApiError(
          404,
          "not_found",
          `revision ${revision} of environment ${environment.key} not found`,
          {
            type: "revision",
            id: String(revision),
          },
        );
      return datafileResponse(stored.value, stored.metadata) as never;
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/environments/{environmentId}/publish",
      tags,
      summary: "Publish the environment's datafile now",
      description:
        "Builds the datafile from the current management data, validates it (422 `datafile_invalid` with the problems' JSON paths; nothing is published) and stores it as a new revision. Unchanged content → `changed: false`, no new revision. Changes that affect the edge publish by themselves; this is for re-publishing (e.g. after a rollback) or repairing KV.",
      middleware: [requireRole("editor")] as const,
      request: {
        params: EnvironmentParams,
        body: { required: false, content: { "application/json": { schema: PublishBodySchema } } },
      },
      responses: {
        200: jsonResponse(PublishResultSchema, "What was published"),
        ...errorResponses(400, 401, 403, 404, 413, 415, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await publishEnvironment(
        c.env,
        environmentId,
        c.get("actor"),
        body.reason ?? "manual publish",
      );
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/environments/{environmentId}/rollback",
      tags,
      summary: "Publish an older revision's datafile again",
      description:
        "Publishes the stored text of `revision` as a new revision (its `revision` field rewritten; `rollbackOf` set). The management data is not changed: the next change that publishes replaces it. 404 when that revision does not exist.",
      middleware: [requireRole("admin")] as const,
      request: { params: EnvironmentParams, body: jsonBody(RollbackBodySchema) },
      responses: {
        200: jsonResponse(PublishResultSchema, "What was published"),
        ...errorResponses(400, 401, 403, 404, 413, 415, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await rollbackEnvironment(
        c.env,
        environmentId,
        body.revision,
        c.get("actor"),
        body.reason ?? `rollback to revision ${body.revision}`,
      );
      return c.json(result, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/environments/{environmentId}/datafile",
      tags,
      summary: "Publish a whole datafile as the next revision",
      description:
        "For datafiles managed outside the API (`splitstream datafile push`). The body is an Optimizely v4 datafile (plus `web`); its `sdkKey` and `revision` are set to the environment's. It must pass the validator (422 `datafile_invalid` with every problem's JSON path; nothing is written). The management data is not changed, so a project that has records (experiments, pages, events, …) refuses it with 409: the next change would replace it; import the file instead (POST …/datafile/import).",
      middleware: [requireRole("admin")] as const,
      request: { params: EnvironmentParams, body: jsonBody(z.record(z.string(), z.unknown())) },
      responses: {
        200: jsonResponse(PublishResultSchema, "What was published"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const result = await pushDatafile(c.env, environmentId, c.req.valid("json"), c.get("actor"));
      return c.json(result, 200);
    },
  );
}
