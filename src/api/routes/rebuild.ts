/**
 * `POST /admin/rebuild` (admin; docs/api.md "Rebuild", docs/events.md "Rebuild"): recomputes the
 * event consumer's derived tables from the raw-events archive in R2 and reports how the live D1
 * rows differ; with `"apply": true` it replaces the live rows of the compared sdkKeys with the
 * rebuilt ones. The work is src/events/rebuild.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { rebuildAggregates } from "../../events/rebuild";
import { DERIVED_TABLES } from "../../events/tables";
import { QUEUE_MAX_ID_LENGTH } from "../../shared/event-limits";

const RebuildBodySchema = z
  .strictObject({
    sdkKey: z.string().min(1).max(QUEUE_MAX_ID_LENGTH).optional().openapi({
      description:
        "Only this sdkKey (an environment's); default every sdkKey in the archive or the live tables.",
    }),
    apply: z.boolean().optional().openapi({
      description:
        "false (default): compare only. true: replace the live rows of the compared sdkKeys with the rebuilt ones.",
    }),
  })
  .openapi("RebuildRequest");

const RowSchema = z.record(z.string(), z.union([z.string(), z.number()]));
const TableEnum = z.enum(DERIVED_TABLES);
const TableCounts = z.object({
  live: z.number().int(),
  rebuilt: z.number().int(),
  differences: z.number().int(),
});

const RebuildReportSchema = z
  .object({
    sdkKeys: z.array(z.string()),
    objectsRead: z.number().int().openapi({ description: "Archive objects (batches) read." }),
    eventsRead: z.number().int().openapi({ description: "Event lines read (every sdkKey)." }),
    eventsFolded: z
      .number()
      .int()
      .openapi({ description: "Distinct events (uuids) of the compared sdkKeys." }),
    duplicates: z
      .number()
      .int()
      .openapi({ description: "Lines of the compared sdkKeys whose uuid was read before." }),
    invalidLines: z.number().int(),
    invalid: z.array(z.object({ object: z.string(), line: z.number().int(), reason: z.string() })),
    conversionsSince: z.string().openapi({
      description: "Stored conversions are compared from this time on (older ones are pruned).",
    }),
    tables: z.record(TableEnum, TableCounts),
    differences: z
      .array(
        z.object({
          table: TableEnum,
          key: RowSchema,
          live: RowSchema.nullable().openapi({ description: "null: no such live row." }),
          rebuilt: RowSchema.nullable().openapi({ description: "null: not in the rebuild." }),
        }),
      )
      .openapi({ description: "The differing rows, at most 1000." }),
    differencesTruncated: z.boolean(),
    matches: z.boolean().openapi({ description: "True when no row differs." }),
    applied: z.boolean(),
    written: z.record(TableEnum, z.number().int()).nullable(),
  })
  .openapi("RebuildReport");

export function registerRebuildRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/rebuild",
      tags: ["Results"],
      summary: "Rebuild the event aggregates from the R2 archive",
      description:
        "Folds every archived event batch (R2 `events/…`, duplicates by uuid counted once) with the consumer's own model, compares exposures, stored conversions, converters, variation_daily and metric_daily with the live D1 rows, and reports the differences. With `apply: true` the live rows of the compared sdkKeys are replaced by the rebuilt ones (the report shows the differences found before). Only apply when the archive holds every event of those sdkKeys.",
      middleware: [requireRole("admin")] as const,
      request: {
        body: { ...jsonBody(RebuildBodySchema), required: false },
      },
      responses: {
        200: jsonResponse(RebuildReportSchema, "The comparison (and what apply wrote)"),
        ...errorResponses(400, 401, 403, 413, 415, 422),
      },
    }),
    async (c) => {
      const body = (c.req.valid("json") ?? {}) as z.infer<typeof RebuildBodySchema>;
      const report = await rebuildAggregates(c.env, {
        apply: body.apply ?? false,
        ...(body.sdkKey === undefined ? {} : { sdkKey: body.sdkKey }),
      });
      return c.json(report, 200);
    },
  );
}
