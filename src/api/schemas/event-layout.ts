/**
 * Schemas of the event-state endpoints (docs/api.md "Event state", docs/scaling.md): the
 * layout and its shards, a move to another layout, and one visitor's state.
 */
import { z } from "@hono/zod-openapi";
import { QUEUE_MAX_ID_LENGTH } from "../../shared/event-limits";
import { MAX_SHARDS } from "../../events/shard-map";
import { VISITOR_TABLES } from "../../events/shard-schema";

const TableCounts = z.object(
  Object.fromEntries(VISITOR_TABLES.map((t) => [t, z.number().int()])) as Record<
    (typeof VISITOR_TABLES)[number],
    z.ZodNumber
  >,
);

/** `GET /admin/event-layout`. */
export const EventLayoutSchema = z
  .object({
    shards: z.number().int().openapi({
      description: "Visitor shards holding per-visitor state; 0 = D1's own tables.",
    }),
    movingTo: z.number().int().nullable().openapi({
      description: "Set while a move runs (the consumer does not count meanwhile).",
    }),
    configured: z.number().int().nullable().openapi({
      description:
        "EVENT_SHARDS as configured (null when it is not a valid count); it only chooses the layout of a deployment that has counted nothing yet.",
    }),
    shardStats: z
      .array(
        z.object({
          shard: z.number().int(),
          bytes: z.number().int().openapi({ description: "SQLite database size of the shard." }),
          rows: TableCounts,
          pending: z.number().int().openapi({ description: "Outbox entries D1 may not have yet." }),
        }),
      )
      .nullable()
      .openapi({ description: "Per shard, with `?stats=true` (one call per shard)." }),
  })
  .openapi("EventLayout");

export const EventLayoutQuerySchema = z.object({
  stats: z
    .enum(["true", "false"])
    .optional()
    .openapi({
      param: { name: "stats", in: "query" },
      description: "true: also read every shard's size and row counts.",
    }),
});

/** `POST /admin/event-layout/move`. */
export const MoveBodySchema = z
  .strictObject({
    to: z.number().int().min(1).max(MAX_SHARDS).openapi({
      description: "The number of visitor shards to move per-visitor state to.",
    }),
    maxRows: z.number().int().min(1).max(20_000).optional().openapi({
      description: "Rows this step reads at most (default 2000).",
    }),
  })
  .openapi("EventLayoutMove");

export const MoveReportSchema = z
  .object({
    from: z.number().int(),
    to: z.number().int(),
    moved: TableCounts.openapi({ description: "Rows copied to their new shard in this step." }),
    dropped: z.number().int().openapi({
      description:
        "Dedupe rows of impressions and of budget-dropped conversions deleted without a copy (docs/scaling.md).",
    }),
    done: z.boolean().openapi({
      description: "true: the new layout is recorded and counting resumed; false: call again.",
    }),
    retryAfter: z.number().int().openapi({
      description:
        "Seconds until the next step moves rows (the first step only stops counting, then waits until every isolate has seen it); 0 = call again at once.",
    }),
  })
  .openapi("EventLayoutMoveReport");

export const VisitorParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
  visitorId: z
    .string()
    .min(1)
    .max(QUEUE_MAX_ID_LENGTH)
    .openapi({ param: { name: "visitorId", in: "path" } }),
});

const RowList = z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()])));

/** `GET /environments/{environmentId}/visitors/{visitorId}`. */
export const VisitorStateSchema = z
  .object({
    sdkKey: z.string(),
    visitorId: z.string(),
    shard: z.number().int().nullable().openapi({
      description: "The visitor's shard; null when the layout keeps per-visitor state in D1.",
    }),
    exposures: RowList.openapi({ description: "Earliest impression per experiment." }),
    conversions: RowList.openapi({
      description: "Stored conversions (kept for the retention window, docs/events.md).",
    }),
    converters: RowList.openapi({
      description: "Per experiment and event: first conversion and totals.",
    }),
  })
  .openapi("VisitorState");
