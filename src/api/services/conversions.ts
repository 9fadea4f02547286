/**
 * Offline conversions (docs/api.md "Conversions"): conversions that happened away from the site —
 * a call centre sale, a CRM stage, a refund-free order confirmed days later — taken by visitor id
 * and put on the EVENTS queue like every other producer (source "offline"). The consumer
 * attributes them exactly like browser conversions: to every experiment where the visitor's
 * earliest impression came at or before the conversion's timestamp, whatever order the queue
 * delivers them in (docs/events.md "Attribution").
 *
 * - The request names the project and an environment key (default "production"), whose sdkKey
 *   the conversions are counted under.
 * - Each item is checked on its own: a bad item is reported with its JSON path and the valid
 *   ones are queued anyway (202 with `rejected`); only when none is valid is the answer an error
 *   (422 validation_failed). `uuid` is required: re-sending an item (after a timeout, a 503, a
 *   partial reject) never counts it twice (docs/events.md).
 * - Timestamps may be up to OFFLINE_MAX_AGE_MS old (the browser's limit is 24 h), a day less
 *   than the consumer's QUEUE_MAX_AGE_MS so that an item accepted here is still acceptable when the
 *   consumer gets to it.
 */
import type { Actor } from "../context";
import { requireActorRole } from "./auth";
import { formatPath } from "../../core/problem";
import type { Env } from "../../env";
import { checkTags, queueMessages, QUEUE_RETRY_AFTER_SECONDS } from "../../events/ingest-common";
import { INGEST_MAX_FUTURE_MS, revenueProblem, valueProblem } from "../../shared/event-limits";
import type { ConversionMessage } from "../../shared/event-messages";
import { ApiError, unprocessable } from "../errors";
import {
  DEFAULT_CONVERSIONS_ENVIRONMENT,
  OFFLINE_MAX_AGE_MS,
  type ConversionsResult,
  type OfflineConversion,
  type RejectedConversion,
} from "../schemas/conversions";
import { findSdkEnvironment } from "../store/metric-daily";
import { listEventIdsByKey, projectExists } from "../store/offline-conversions";

/** The JSON path of item `index` of the request's `conversions` (and below it). */
export function conversionItemPath(index: number, ...rest: Array<string | number>): string {
  return formatPath(["body", "conversions", index, ...rest]);
}

/** An item of the request after its schema parse: the conversion, or its first problem. */
export type ParsedConversion =
  { ok: true; conversion: OfflineConversion } | { ok: false; rejected: RejectedConversion };

/** What an item is checked against. */
export interface ConversionContext {
  /** ms since the epoch. */
  now: number;
  sdkKey: string;
  revision: string;
  /** The project's events: key → id. */
  eventsByKey: ReadonlyMap<string, string>;
}

/**
 * Checks what the schema cannot say of item `index` (the event key, the timestamp window,
 * revenue and value bounds, tag limits). Returns the queue message or the item's first problem.
 */
export function checkOfflineConversion(
  c: OfflineConversion,
  index: number,
  context: ConversionContext,
): { ok: true; message: ConversionMessage } | { ok: false; rejected: RejectedConversion } {
  const fail = (path: string, message: string) => ({
    ok: false as const,
    rejected: { index, path, message },
  });
  const eventId = context.eventsByKey.get(c.eventKey);
  if (eventId === undefined)
    return fail(
      conversionItemPath(index, "eventKey"),
      `unknown event key ${JSON.stringify(c.eventKey)} (not an event of this project)`,
    );
  const timestamp = c.timestamp ?? context.now;
  if (timestamp < context.now - OFFLINE_MAX_AGE_MS)
    return fail(
      conversionItemPath(index, "timestamp"),
      `more than ${OFFLINE_MAX_AGE_MS / 86_400_000} days in the past`,
    );
  if (timestamp > context.now + INGEST_MAX_FUTURE_MS)
    return fail(conversionItemPath(index, "timestamp"), "more than 5 minutes in the future");
  if (c.revenue !== undefined) {
    const problem = revenueProblem(c.revenue);
    if (problem) return fail(conversionItemPath(index, "revenue"), problem);
  }
  if (c.value !== undefined) {
    const problem = valueProblem(c.value);
    if (problem) return fail(conversionItemPath(index, "value"), problem);
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
    if (!tags.ok) return fail(`${conversionItemPath(index, "tags")}${tags.subPath}`, tags.reason);
    if (Object.keys(tags.tags).length > 0) message.tags = tags.tags;
  }
  return { ok: true, message };
}

/** A request of offline conversions, its items already parsed one by one. */
export interface OfflineConversionsRequest {
  projectId: string;
  /** Environment key; default DEFAULT_CONVERSIONS_ENVIRONMENT. */
  environment?: string | undefined;
  items: readonly ParsedConversion[];
}

/**
 * Checks the items (see the module comment) and queues the valid ones: 422 for an unknown project
 * or environment, or when no item is valid; 503 `queue_unavailable` with Retry-After when the
 * queue refuses. Returns the accepted count and the refused items.
 */
export async function queueOfflineConversions(
  env: Pick<Env, "DB" | "EVENTS">,
  actor: Actor,
  request: OfflineConversionsRequest,
): Promise<ConversionsResult> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  if (!(await projectExists(db, request.projectId)))
    throw unprocessable(`invalid request body: $.body.projectId: no such project`, [
      { path: "$.body.projectId", message: `no project ${JSON.stringify(request.projectId)}` },
    ]);
  const environmentKey = request.environment ?? DEFAULT_CONVERSIONS_ENVIRONMENT;
  const environment = await findSdkEnvironment(db, request.projectId, environmentKey);
  if (!environment)
    throw unprocessable(`invalid request body: $.body.environment: unknown environment`, [
      {
        path: "$.body.environment",
        message: `${JSON.stringify(environmentKey)} is not an environment key of this project`,
      },
    ]);
  const eventsByKey = await listEventIdsByKey(db, request.projectId);
  const context: ConversionContext = {
    now: Date.now(),
    sdkKey: environment.sdk_key,
    revision: String(environment.revision),
    eventsByKey,
  };

  const messages: ConversionMessage[] = [];
  const rejected: RejectedConversion[] = [];
  const uuids = new Map<string, number>();
  request.items.forEach((item, index) => {
    if (!item.ok) return rejected.push(item.rejected);
    const checked = checkOfflineConversion(item.conversion, index, context);
    if (!checked.ok) return rejected.push(checked.rejected);
    const earlier = uuids.get(checked.message.uuid);
    if (earlier !== undefined)
      return rejected.push({
        index,
        path: conversionItemPath(index, "uuid"),
        message: `duplicate uuid: conversions[${earlier}] has it too`,
      });
    uuids.set(checked.message.uuid, index);
    messages.push(checked.message);
  });

  const [firstRejected] = rejected;
  if (messages.length === 0 && firstRejected)
    throw unprocessable(
      `no conversion accepted: ${rejected.length} rejected; first: ${firstRejected.path}: ${firstRejected.message}`,
      rejected.map((r) => ({ path: r.path, message: r.message })),
    );
  try {
    await queueMessages(env, messages);
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
  return {
    projectId: request.projectId,
    environment: { id: environment.id, key: environment.key, sdkKey: environment.sdk_key },
    accepted: messages.length,
    rejected,
  };
}
