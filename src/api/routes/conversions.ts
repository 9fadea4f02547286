/**
 * Offline conversions (docs/api.md "Conversions"): `POST /conversions` takes
 * conversions that happened away from the site — a call centre sale, a CRM stage, a refund-free
 * order confirmed days later — by visitor id, and puts them on the EVENTS queue like every other
 * producer (source "offline"). The consumer attributes them exactly like browser conversions:
 * to every experiment where the visitor's earliest impression came at or before the conversion's
 * timestamp, whatever order the queue delivers them in (docs/events.md "Attribution").
 *
 * - The body names the project (`projectId`) and an environment key (default "production"),
 *   whose sdkKey the conversions are counted under.
 * - Each item is validated on its own: a bad item is reported with its JSON path and the valid
 *   ones are queued anyway (202 with `rejected`); only when none is valid is the answer an error
 *   (422 validation_failed). `uuid` is required: re-sending an item (after a timeout, a 503, a
 *   partial reject) never counts it twice (docs/events.md).
 * - Timestamps may be up to OFFLINE_MAX_AGE_MS old (the browser's limit is 24 h), a day less
 *   than the consumer's QUEUE_MAX_AGE_MS so that an item accepted here is still acceptable when the
 *   consumer gets to it.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { all, first } from "../store/db";
import { ApiError, unprocessable } from "../errors";
import { ErrorSchema, errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { issuesToDetails } from "../http/validation";
import { formatPath } from "../../core/problem";
import { checkTags, queueMessages, QUEUE_RETRY_AFTER_SECONDS } from "../../events/ingest-common";
import {
  INGEST_MAX_FUTURE_MS,
  INGEST_MAX_UUID_LENGTH,
  QUEUE_MAX_AGE_MS,
  QUEUE_MAX_ID_LENGTH,
  revenueProblem,
  valueProblem,
} from "../../shared/event-limits";
import type { ConversionMessage } from "../../shared/event-messages";

/** At most this many conversions per request. */
export const MAX_OFFLINE_CONVERSIONS = 1000;
/** How old an offline conversion's timestamp may be: the consumer's limit minus a day of queueing. */
export const OFFLINE_MAX_AGE_MS = QUEUE_MAX_AGE_MS - 24 * 60 * 60 * 1000;
/** The environment used when the body names none. */
export const DEFAULT_CONVERSIONS_ENVIRONMENT = "production";

const OfflineConversionSchema = z
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

const ConversionsBodySchema = z
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

const RejectedItemSchema = z.object({
  index: z.number().int().openapi({ description: "Position in `conversions`." }),
  path: z.string().openapi({ example: "$.body.conversions[3].eventKey" }),
  message: z.string(),
});

const ConversionsResultSchema = z
  .object({
    projectId: z.string(),
    environment: z.object({ id: z.string(), key: z.string(), sdkKey: z.string() }),
    accepted: z.number().int().openapi({ description: "Conversions put on the queue." }),
    rejected: z.array(RejectedItemSchema).openapi({
      description: "One entry per refused item (its first problem); the others were queued.",
    }),
  })
  .openapi("OfflineConversionsResult");

type Rejected = z.infer<typeof RejectedItemSchema>;

const itemPath = (index: number, ...rest: Array<string | number>) =>
  formatPath(["body", "conversions", index, ...rest]);

/**
 * Validates one item: the schema, then what the schema cannot say (revenue sign, the timestamp
 * window, tag limits, the event key). Returns the queue message or the item's first problem.
 */
export function checkOfflineConversion(
  item: unknown,
  index: number,
  context: {
    now: number;
    sdkKey: string;
    revision: string;
    eventsByKey: ReadonlyMap<string, string>;
  },
): { ok: true; message: ConversionMessage } | { ok: false; rejected: Rejected } {
  const fail = (path: string, message: string) => ({
    ok: false as const,
    rejected: { index, path, message },
  });
  const parsed = OfflineConversionSchema.safeParse(item);
  if (!parsed.success) {
    const [detail] = issuesToDetails(parsed.error.issues, "body");
    // issuesToDetails roots paths at $.body; the item lives at $.body.conversions[index].
    const sub = detail!.path.replace(/^\$\.body/, "");
    return fail(`${itemPath(index)}${sub}`, detail!.message);
  }
  const c = parsed.data;
  const eventId = context.eventsByKey.get(c.eventKey);
  if (eventId === undefined)
    return fail(
      itemPath(index, "eventKey"),
      `unknown event key ${JSON.stringify(c.eventKey)} (not an event of this project)`,
    );
  const timestamp = c.timestamp ?? context.now;
  if (timestamp < context.now - OFFLINE_MAX_AGE_MS)
    return fail(
      itemPath(index, "timestamp"),
      `more than ${OFFLINE_MAX_AGE_MS / 86_400_000} days in the past`,
    );
  if (timestamp > context.now + INGEST_MAX_FUTURE_MS)
    return fail(itemPath(index, "timestamp"), "more than 5 minutes in the future");
  if (c.revenue !== undefined) {
    const problem = revenueProblem(c.revenue);
    if (problem) return fail(itemPath(index, "revenue"), problem);
  }
  if (c.value !== undefined) {
    const problem = valueProblem(c.value);
    if (problem) return fail(itemPath(index, "value"), problem);
  }
  const message: ConversionMessage = {
    v: 1,
    type: "conversion",
    uuid: c.uuid,
    sdkKey: context.sdkKey,
    revision: context.revision,
    visitorId: c.visitorId,
    eventId,
    eventKey: c.eventKey,
    timestamp,
    source: "offline",
  };
  if (c.revenue !== undefined) message.revenue = c.revenue;
  if (c.value !== undefined) message.value = c.value;
  if (c.tags !== undefined) {
    const tags = checkTags(c.tags);
    if (!tags.ok) return fail(`${itemPath(index, "tags")}${tags.subPath}`, tags.reason);
    if (Object.keys(tags.tags).length > 0) message.tags = tags.tags;
  }
  return { ok: true, message };
}

export function registerConversionRoutes(app: ApiApp): void {
  app.openAPIRegistry.register("OfflineConversion", OfflineConversionSchema);
  app.openapi(
    createRoute({
      method: "post",
      path: "/conversions",
      tags: ["Results"],
      summary: "Send offline conversions",
      description: `Up to ${MAX_OFFLINE_CONVERSIONS} conversions by visitor id, counted under the environment's sdkKey like browser conversions (attributed to every experiment whose first impression of the visitor came at or before each one). Each item is checked on its own: 202 with the accepted count and the refused items (JSON path and reason) — the valid ones are queued; 422 when none is valid. \`uuid\` makes re-sending harmless. 503 with Retry-After when the event queue refuses (send the same request again).`,
      middleware: [requireRole("editor")] as const,
      request: { body: jsonBody(ConversionsBodySchema) },
      responses: {
        202: jsonResponse(ConversionsResultSchema, "Queued (possibly with refused items)"),
        ...errorResponses(400, 401, 403, 413, 415, 422),
        503: {
          description: "The event queue refused (queue_unavailable); retry after Retry-After",
          content: { "application/json": { schema: ErrorSchema } },
        },
      },
    }),
    async (c) => {
      const db = c.env.DB;
      const body = c.req.valid("json");
      const project = await first<{ id: string }>(
        db,
        "SELECT id FROM projects WHERE id = ?",
        body.projectId,
      );
      if (!project)
        throw unprocessable(`invalid request body: $.body.projectId: no such project`, [
          { path: "$.body.projectId", message: `no project ${JSON.stringify(body.projectId)}` },
        ]);
      const environmentKey = body.environment ?? DEFAULT_CONVERSIONS_ENVIRONMENT;
      const environment = await first<{
        id: string;
        key: string;
        sdk_key: string;
        revision: number;
      }>(
        db,
        "SELECT id, key, sdk_key, revision FROM environments WHERE project_id = ? AND key = ?",
        project.id,
        environmentKey,
      );
      if (!environment)
        throw unprocessable(`invalid request body: $.body.environment: unknown environment`, [
          {
            path: "$.body.environment",
            message: `${JSON.stringify(environmentKey)} is not an environment key of this project`,
          },
        ]);
      const events = await all<{ id: string; key: string }>(
        db,
        "SELECT id, key FROM events WHERE project_id = ?",
        project.id,
      );
      const context = {
        now: Date.now(),
        sdkKey: environment.sdk_key,
        revision: String(environment.revision),
        eventsByKey: new Map(events.map((e) => [e.key, e.id])),
      };

      const messages: ConversionMessage[] = [];
      const rejected: Rejected[] = [];
      const uuids = new Map<string, number>();
      body.conversions.forEach((item, index) => {
        const checked = checkOfflineConversion(item, index, context);
        if (!checked.ok) return rejected.push(checked.rejected);
        const earlier = uuids.get(checked.message.uuid);
        if (earlier !== undefined)
          return rejected.push({
            index,
            path: itemPath(index, "uuid"),
            message: `duplicate uuid: conversions[${earlier}] has it too`,
          });
        uuids.set(checked.message.uuid, index);
        messages.push(checked.message);
      });

      if (messages.length === 0)
        throw unprocessable(
          `no conversion accepted: ${rejected.length} rejected; first: ${rejected[0]!.path}: ${rejected[0]!.message}`,
          rejected.map((r) => ({ path: r.path, message: r.message })),
        );
      try {
        await queueMessages(c.env, messages);
      } catch (error) {
        console.error(
          `splitstream api: the EVENTS queue refused ${messages.length} conversion(s)`,
          error,
        );
        throw new ApiError(
          503,
          "queue_unavailable",
          "the event queue is unavailable; send the same request again later (uuids make that harmless)",
          null,
          { "retry-after": String(QUEUE_RETRY_AFTER_SECONDS) },
        );
      }
      return c.json(
        {
          projectId: project.id,
          environment: { id: environment.id, key: environment.key, sdkKey: environment.sdk_key },
          accepted: messages.length,
          rejected,
        },
        202,
      );
    },
  );
}
