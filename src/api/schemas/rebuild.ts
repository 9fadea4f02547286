/**
 * Request and response schemas of the rebuild (docs/api.md "Rebuild", docs/events.md "Rebuild"):
 * what to rebuild, the job's progress, and the report comparing the rebuilt rows with the live ones.
 */
import { z } from "@hono/zod-openapi";
import { DERIVED_TABLES } from "../../events/tables";
import { QUEUE_MAX_ID_LENGTH } from "../../shared/event-limits";
import { MAX_CHUNK_OBJECTS } from "../../events/rebuild";
import { isShadowKey } from "../../events/rebuild-sql";

/** The body of `POST /admin/rebuild` (optional). */
export const RebuildBodySchema = z
  .strictObject({
    sdkKey: z
      .string()
      .min(1)
      .max(QUEUE_MAX_ID_LENGTH)
      .refine((key) => !isShadowKey(key), { message: "starts with the rebuild's reserved prefix" })
      .optional()
      .openapi({
        description:
          "Only this sdkKey (an environment's); default every sdkKey in the archive or the live tables.",
      }),
    apply: z.boolean().optional().openapi({
      description:
        "false (default): compare only (apply later with POST /admin/rebuild/apply). true: once compared, replace the live rows of the compared sdkKeys with the rebuilt ones.",
    }),
    chunkObjects: z
      .number()
      .int()
      .min(1)
      .max(MAX_CHUNK_OBJECTS)
      .optional()
      .openapi({
        description: `Archive objects (queue batches) read per step, 1–${MAX_CHUNK_OBJECTS}; default 20. Smaller steps use less memory per step and take more steps.`,
      }),
  })
  .openapi("RebuildRequest");

const RowSchema = z.record(z.string(), z.union([z.string(), z.number(), z.null()]));
const TableEnum = z.enum(DERIVED_TABLES);
const TableCounts = z.object({
  live: z.number().int(),
  rebuilt: z.number().int(),
  differences: z.number().int(),
});

/** The rebuild's report (src/events/rebuild.ts `reportOf`), once the comparison has finished. */
export const RebuildReportSchema = z
  .object({
    sdkKeys: z.array(z.string()),
    objectsRead: z.number().int().openapi({ description: "Archive objects (batches) read." }),
    eventsRead: z.number().int().openapi({ description: "Event lines read (every sdkKey)." }),
    eventsFolded: z
      .number()
      .int()
      .openapi({ description: "Distinct events (uuids) of the compared sdkKeys." }),
    duplicates: z.number().int().openapi({
      description:
        "Lines of the compared sdkKeys not counted again: their uuid was read before, or it is one of the excluded.",
    }),
    excluded: z.number().int().openapi({
      description:
        "Events the consumer archived but did not count (dropped by the per-visitor budget, or refused alone): left out of the rebuild.",
    }),
    invalidLines: z.number().int(),
    invalid: z
      .array(z.object({ object: z.string(), line: z.number().int(), reason: z.string() }))
      .openapi({
        description:
          "The first 100 archive lines that are not valid events, or that SQLite refused to count (`count_failed: …`).",
      }),
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

const STATUSES = [
  "running",
  "compared",
  "applying",
  "applied",
  "cancelling",
  "cancelled",
  "failed",
] as const;
const PHASES = [
  "cleaning",
  "seeding-dropped",
  "seeding-rejected",
  "replaying",
  "comparing",
  "waiting",
  "applying",
  "dropping",
  "done",
] as const;

/** A rebuild job (src/events/rebuild-job.ts `RebuildJobView`). */
export const RebuildJobSchema = z
  .object({
    id: z.string(),
    status: z.enum(STATUSES).openapi({
      description:
        "running → compared (report ready; apply or cancel) → applying → applied; or cancelling → cancelled; or failed (see error).",
    }),
    phase: z.enum(PHASES).openapi({ description: "The step the job runs next." }),
    sdkKey: z.string().nullable(),
    apply: z.boolean(),
    chunkObjects: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
    steps: z.number().int(),
    progress: z.object({
      objectsRead: z.number().int(),
      eventsRead: z.number().int(),
      excluded: z.number().int(),
      sdkKeysCompared: z.number().int(),
      sdkKeys: z.number().int(),
    }),
    error: z.string().nullable().openapi({
      description: "Why the job failed, or the last failed step's error while it tries again.",
    }),
    failures: z.number().int(),
    report: RebuildReportSchema.nullable().openapi({
      description: "The comparison, once every sdkKey is compared (null before).",
    }),
  })
  .openapi("RebuildJob");
