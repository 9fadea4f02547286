/**
 * `POST /environments/{environmentId}/datafile/import` (docs/api.md "Importing a datafile"): an
 * Optimizely v4 datafile with the `web` section becomes the project's records — parse → service
 * (src/api/services/datafile-import-apply.ts) → present.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { importDatafile } from "../services/datafile-import-apply";
import { PublishedField } from "../schemas/fields";

const ImportParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
});

const ImportQuery = z.object({
  dryRun: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "`true`: answer what the import would do and write nothing." }),
  replaceOtherEnvironments: z.enum(["true", "false"]).optional().openapi({
    description:
      "`true`: import into a project without records even though its other environments serve pushed datafiles, which the import's records then replace (409 otherwise; a dry run lists them in `replacesEnvironments`).",
  }),
});

const ImportProblemSchema = z
  .object({
    path: z.string().openapi({ example: "$.experiments[0].trafficAllocation" }),
    message: z.string(),
    severity: z.enum(["error", "warning"]),
  })
  .openapi("ImportProblem");

const TableChangesSchema = z.object({
  created: z.array(z.string()).openapi({ description: "Keys (or names) of the records created." }),
  updated: z
    .array(z.object({ key: z.string(), columns: z.array(z.string()) }))
    .openapi({ description: "Records changed, with the stored columns that change." }),
  unchanged: z.number().int(),
});

const ImportSummarySchema = z
  .object({
    environmentId: z.string(),
    projectId: z.string(),
    dryRun: z.boolean(),
    changes: z.record(z.string(), TableChangesSchema).openapi({
      description:
        "Per table (attributes, lists, audiences, pages, events, groups, flags, experiments): what was (or would be) created, changed and left alone.",
    }),
    statuses: z
      .array(z.object({ experimentId: z.string(), from: z.string(), to: z.string() }))
      .openapi({ description: "Experiment statuses set in this environment." }),
    warnings: z.array(ImportProblemSchema),
    replacesEnvironments: z
      .array(
        z.object({
          environmentId: z.string(),
          environmentKey: z.string(),
          revision: z.number().int(),
        }),
      )
      .optional()
      .openapi({
        description:
          "Other environments whose pushed datafiles the import replaces (a project without records).",
      }),
    published: PublishedField,
  })
  .openapi("DatafileImport");

/** Registers the import route. */
export function registerDatafileImportRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/environments/{environmentId}/datafile/import",
      tags: ["Publishing"],
      summary: "Import a datafile into the project's records",
      description:
        "The body is an Optimizely v4 datafile (plus `web`). Its attributes, lists, audiences, pages, events, groups and experiments become (or update) the records of the environment's project, keeping their ids so every visitor is bucketed as before; the experiments' statuses are set in this environment; then the project publishes. Records are matched by id; a record with the same key but another id is a conflict. `?dryRun=true` answers the same summary and writes nothing. 422 `datafile_invalid` lists every problem with its JSON path; nothing is written.",
      middleware: [requireRole("editor")] as const,
      request: {
        params: ImportParams,
        query: ImportQuery,
        body: jsonBody(z.record(z.string(), z.unknown())),
      },
      responses: {
        200: jsonResponse(ImportSummarySchema, "What the import did (or would do)"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const { environmentId } = c.req.valid("param");
      const { dryRun, replaceOtherEnvironments } = c.req.valid("query");
      const summary = await importDatafile(
        c.env,
        c.get("actor"),
        environmentId,
        c.req.valid("json"),
        {
          dryRun: dryRun === "true",
          replaceOtherEnvironments: replaceOtherEnvironments === "true",
        },
      );
      return c.json(summary, 200);
    },
  );
}
