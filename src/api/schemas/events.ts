/**
 * Request and response schemas of events (docs/api.md "Events"); the rules beyond them are
 * src/api/services/events.ts.
 */
import { z } from "@hono/zod-openapi";
import { WEB_EVENT_TYPES } from "../../core/datafile-parse";
import { DEFAULT_DAILY_CONVERSION_CAP, MAX_DAILY_CONVERSION_CAP } from "../../shared/event-limits";
import { keySchema, nameSchema, resourceFields } from "./fields";

const typeSchema = z.enum(WEB_EVENT_TYPES).openapi({
  description:
    "custom (tracked by your code), pageview (needs pageId), click (needs pageId and selector).",
});
const selectorSchema = z.string().min(1).max(1000);
const capSchema = z
  .number()
  .int()
  .min(1)
  .max(MAX_DAILY_CONVERSION_CAP)
  .nullable()
  .openapi({
    description: `How many of one visitor's conversions of this event are counted per UTC day; the rest are dropped and counted as dropped (docs/events.md). null = the default, ${DEFAULT_DAILY_CONVERSION_CAP}.`,
    example: 20,
  });

export const EventSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    type: typeSchema,
    pageId: z.string().nullable(),
    selector: z.string().nullable(),
    maxPerVisitorPerDay: z
      .number()
      .int()
      .nullable()
      .openapi({
        description: `Conversions of one visitor counted per UTC day; null = the default (${DEFAULT_DAILY_CONVERSION_CAP}).`,
      }),
    archived: z.boolean(),
  })
  .openapi("Event");

const eventFields = z.strictObject({
  key: keySchema,
  name: nameSchema.optional(),
  type: typeSchema,
  pageId: z
    .string()
    .optional()
    .openapi({ description: "Required for pageview and click: a page of the project." }),
  selector: selectorSchema
    .optional()
    .openapi({ description: "Required for click: the element clicked.", example: "#buy" }),
  maxPerVisitorPerDay: capSchema.optional(),
});

export const EventCreateSchema = eventFields.openapi("EventCreate");

/**
 * Every field of a create, optional; `pageId` and `selector` may be null (to drop them) and go
 * without the create's descriptions; and `archived`.
 */
export const EventUpdateSchema = eventFields
  .partial()
  .extend({
    pageId: z.string().nullable().optional(),
    selector: selectorSchema.nullable().optional(),
    archived: z.boolean().optional(),
  })
  .openapi("EventUpdate");

export type EventJson = z.infer<typeof EventSchema>;
export type EventCreate = z.infer<typeof EventCreateSchema>;
export type EventUpdate = z.infer<typeof EventUpdateSchema>;
