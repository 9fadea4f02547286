/**
 * Request and response schemas of webhooks and their delivery log (docs/webhooks.md); the rules
 * beyond them (URL schemes, environment keys) are src/api/services/webhooks.ts.
 */
import { z } from "@hono/zod-openapi";
import { nameSchema } from "./fields";

/** Every event type a webhook can subscribe to (docs/webhooks.md "Events"). */
export const WEBHOOK_EVENT_TYPES = [
  "experiment.created",
  "experiment.started",
  "experiment.paused",
  "experiment.resumed",
  "experiment.archived",
  "datafile.published",
  "datafile.rolled_back",
  "significance.reached",
  "srm.detected",
  "guardrail.breached",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** A webhook's body formats. */
export const WEBHOOK_FORMATS = ["json", "slack"] as const;
export type WebhookFormat = (typeof WEBHOOK_FORMATS)[number];

const EventsSchema = z
  .array(z.enum(["*", ...WEBHOOK_EVENT_TYPES]))
  .min(1)
  .max(WEBHOOK_EVENT_TYPES.length + 1)
  .openapi({
    description: `Event types to send, or \`["*"]\` for all: ${WEBHOOK_EVENT_TYPES.join(", ")}.`,
    example: ["experiment.started", "guardrail.breached"],
  });

const EnvironmentsSchema = z
  .array(z.string().min(1).max(64))
  .max(50)
  .openapi({
    description:
      "Environment keys whose events are sent; empty = every environment. Project-wide events (experiment.created) are sent either way.",
    example: ["production"],
  });

const UrlSchema = z.string().min(1).max(2048).openapi({
  description:
    "Where deliveries are POSTed: https (http only for localhost, 127.0.0.1 and [::1], for local development).",
  example: "https://hooks.example.com/splitstream",
});

export const WebhookSchema = z
  .object({
    id: z.string(),
    projectId: z.string(),
    name: z.string(),
    url: z.string(),
    format: z.enum(WEBHOOK_FORMATS).openapi({
      description:
        'json: the signed Splitstream envelope; slack: `{"text": …}` for Slack-compatible incoming webhooks (signed the same way).',
    }),
    events: z.array(z.string()),
    environments: z.array(z.string()),
    enabled: z.boolean(),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Webhook");

export const WebhookWithSecretSchema = WebhookSchema.extend({
  secret: z.string().openapi({
    description:
      'The signing secret (`whsec_…`). Shown only in this response: store it now (docs/webhooks.md "Verifying a delivery").',
  }),
}).openapi("WebhookWithSecret");

export const WebhookCreateSchema = z
  .strictObject({
    name: nameSchema.trim().min(1),
    url: UrlSchema,
    format: z.enum(WEBHOOK_FORMATS).default("json"),
    events: EventsSchema,
    environments: EnvironmentsSchema.default([]),
    enabled: z.boolean().default(true),
  })
  .openapi("WebhookCreate");

export const WebhookUpdateSchema = z
  .strictObject({
    name: nameSchema.trim().min(1).optional(),
    url: UrlSchema.optional(),
    format: z.enum(WEBHOOK_FORMATS).optional(),
    events: EventsSchema.optional(),
    environments: EnvironmentsSchema.optional(),
    enabled: z.boolean().optional(),
  })
  .openapi("WebhookUpdate");

export const WebhookAttemptSchema = z
  .object({
    attempt: z.number().int(),
    at: z.string(),
    statusCode: z.number().int().nullable().openapi({ description: "null when no response came." }),
    error: z.string().nullable(),
    durationMs: z.number().int(),
    response: z
      .string()
      .nullable()
      .openapi({ description: "The first 1,000 characters of the response body." }),
  })
  .openapi("WebhookAttempt");

export const WebhookDeliverySchema = z
  .object({
    id: z.string().openapi({ description: "Sent as `x-splitstream-delivery`." }),
    webhookId: z.string(),
    eventId: z.string(),
    eventType: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.number().int(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    createdAt: z.string(),
    nextAttemptAt: z
      .string()
      .nullable()
      .openapi({ description: "When a pending delivery is tried next; null once finished." }),
    finishedAt: z.string().nullable(),
    redeliveryOf: z.string().nullable().openapi({
      description:
        "The delivery this one redelivers (`POST /webhook-deliveries/{id}/redeliver`); null for a first delivery.",
    }),
  })
  .openapi("WebhookDelivery");

export const WebhookDeliveryDetailSchema = WebhookDeliverySchema.extend({
  body: z.string().openapi({ description: "The body, as sent on every attempt." }),
  attemptLog: z.array(WebhookAttemptSchema),
  redeliveries: z
    .array(
      z.object({
        id: z.string(),
        status: z.enum(["pending", "delivered", "failed"]),
        createdAt: z.string(),
      }),
    )
    .openapi({ description: "The redeliveries made from this delivery, oldest first." }),
}).openapi("WebhookDeliveryDetail");

export type WebhookJson = z.infer<typeof WebhookSchema>;
export type WebhookCreate = z.infer<typeof WebhookCreateSchema>;
export type WebhookUpdate = z.infer<typeof WebhookUpdateSchema>;
export type WebhookDeliveryJson = z.infer<typeof WebhookDeliverySchema>;
export type WebhookDeliveryDetailJson = z.infer<typeof WebhookDeliveryDetailSchema>;
