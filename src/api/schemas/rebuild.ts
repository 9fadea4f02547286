/**
 * Request and response schemas of `POST /admin/rebuild` (docs/api.md "Rebuild", docs/events.md
 * "Rebuild"): what to rebuild, and the report comparing the rebuilt aggregates with the live ones.
 */
import { z } from "@hono/zod-openapi";
import { DERIVED_TABLES } from "../../events/tables";
import { QUEUE_MAX_ID_LENGTH } from "../../shared/event-limits";

/** The body of `POST /admin/rebuild` (optional). */
export const RebuildBodySchema = z
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

/** The rebuild's report (src/events/rebuild.ts `rebuildAggregates`). */
export const RebuildReportSchema = z
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
