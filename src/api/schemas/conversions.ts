/**
 * Request and response schemas of offline conversions (docs/api.md "Conversions"): the request
 * with its items, the refused items and the result, and the limits they state.
 */
import { z } from "@hono/zod-openapi";
import {
  INGEST_MAX_UUID_LENGTH,
  QUEUE_MAX_AGE_MS,
  QUEUE_MAX_ID_LENGTH,
} from "../../shared/event-limits";

/** At most this many conversions per request. */
export const MAX_OFFLINE_CONVERSIONS = 1000;
/** How old an offline conversion's timestamp may be: the consumer's limit minus a day of queueing. */
export const OFFLINE_MAX_AGE_MS = QUEUE_MAX_AGE_MS - 24 * 60 * 60 * 1000;
/** The environment used when the body names none. */
export const DEFAULT_CONVERSIONS_ENVIRONMENT = "production";

/** One offline conversion (OpenAPI component `OfflineConversion`); checked item by item. */
export const OfflineConversionSchema = z
  .strictObject({
    visitorId: z
      .string()
      .min(1)
      .max(QUEUE_MAX_ID_LENGTH)
      .openapi({ description: "The visitor id the edge or SDK decided with (`ss_vid`, user id)." }),
    eventKey: z
      .string()
      .min(1)
      .max(QUEUE_MAX_ID_LENGTH)
      .openapi({ description: "Key of an event of the project.", example: "purchase" }),
    timestamp: z
      .number()
      .int()
      .optional()
      .openapi({
        description: `When it happened, ms since the epoch; default now. At most ${OFFLINE_MAX_AGE_MS / 86_400_000} days old, at most 5 minutes ahead.`,
        example: 1764140000000,
      }),
    revenue: z
      .number()
      .int()
      .optional()
      .openapi({ description: "Integer cents, 0 to 10^11.", example: 12999 }),
    value: z
      .number()
      .optional()
      .openapi({ description: 'A finite number within ±10^12 (docs/ingest.md "Limits").' }),
    tags: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
      .optional()
      .openapi({ description: "At most 20; names 1–64 characters, strings ≤ 256 characters." }),
    uuid: z
      .string()
      .regex(
        /^[\x21-\x7e]{1,64}$/,
        `1-${INGEST_MAX_UUID_LENGTH} printable ASCII characters, no spaces`,
      )
      .openapi({
        description:
          "Required: identifies the conversion, so that sending it again never counts it twice.",
        example: "crm-order-88231",
      }),
  })
  .openapi("OfflineConversion");

export type OfflineConversion = z.infer<typeof OfflineConversionSchema>;

/** The body of `POST /conversions`. */
export const ConversionsBodySchema = z
  .strictObject({
    projectId: z.string().min(1).openapi({ example: "204819230581" }),
    environment: z
      .string()
      .min(1)
      .optional()
      .openapi({
        description: `Environment key whose sdkKey counts them; default "${DEFAULT_CONVERSIONS_ENVIRONMENT}".`,
      }),
    // Items are validated one by one in the handler (a bad item must not refuse the good ones);
    // the document still describes them through the OfflineConversion component.
    conversions: z
      .array(z.unknown())
      .min(1)
      .max(MAX_OFFLINE_CONVERSIONS)
      .openapi({ items: { $ref: "#/components/schemas/OfflineConversion" } }),
  })
  .openapi("OfflineConversionsRequest");

/** A refused item: its position, JSON path and first problem. */
export const RejectedItemSchema = z.object({
  index: z.number().int().openapi({ description: "Position in `conversions`." }),
  path: z.string().openapi({ example: "$.body.conversions[3].eventKey" }),
  message: z.string(),
});

/** What `POST /conversions` answers (202). */
export const ConversionsResultSchema = z
  .object({
    projectId: z.string(),
    environment: z.object({ id: z.string(), key: z.string(), sdkKey: z.string() }),
    accepted: z.number().int().openapi({ description: "Conversions put on the queue." }),
    rejected: z.array(RejectedItemSchema).openapi({
      description: "One entry per refused item (its first problem); the others were queued.",
    }),
  })
  .openapi("OfflineConversionsResult");

export type ConversionsBody = z.infer<typeof ConversionsBodySchema>;
export type RejectedConversion = z.infer<typeof RejectedItemSchema>;
export type ConversionsResult = z.infer<typeof ConversionsResultSchema>;
