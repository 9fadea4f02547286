/**
 * What webhooks are told (docs/webhooks.md "Events"): the event types, the body of each format
 * (the Splitstream JSON envelope, or Slack's `{"text"}`), and `emitWebhookEvent`, which every
 * service that makes an event calls after its change is done. Emitting never fails the caller:
 * a change is not undone because a notification about it could not be queued (the delivery rows
 * are written first; the sweep queues what the queue did not take, src/api/services/webhook-delivery.ts).
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { nowIso } from "../ids";
import {
  insertDeliveryStatement,
  listEnabledWebhooks,
  type InsertCondition,
  type WebhookRow,
} from "../store/webhooks";
import { parseJson } from "../store/sql";
import type { WebhookEventType, WebhookFormat } from "../schemas/webhooks";

/** The test-send's type (not subscribable: it goes to the one webhook tested). */
export const WEBHOOK_TEST_EVENT = "webhook.test";

/** An occurrence, as the services that make it describe it. */
export interface WebhookEvent {
  projectId: string;
  type: WebhookEventType | typeof WEBHOOK_TEST_EVENT;
  /** The environment key it happened in; null when it is project-wide (experiment.created). */
  environment: string | null;
  /** Who did it (a person's token, or a system actor such as `guardrail`), when someone did. */
  actor?: Actor | undefined;
  /** The type's fields (docs/webhooks.md lists them per type). */
  data: Record<string, unknown>;
  /** One line for people (Slack's text); plain text, names as they are. */
  summary: string;
}

/** The JSON envelope every `json` webhook gets (docs/webhooks.md "The body"). */
export interface WebhookEnvelope {
  /** The occurrence's id: the same for every webhook that gets it, and on every attempt. */
  id: string;
  type: string;
  createdAt: string;
  projectId: string;
  environment: string | null;
  actor: { id: string; name: string } | null;
  data: Record<string, unknown>;
}

/** Slack's mrkdwn needs &, < and > escaped (its docs, "Escaping text"). */
function escapeSlack(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The body a webhook of `format` gets for one occurrence. */
export function webhookBody(
  format: WebhookFormat,
  envelope: WebhookEnvelope,
  summary: string,
): string {
  if (format === "slack") return JSON.stringify({ text: `Splitstream: ${escapeSlack(summary)}` });
  return JSON.stringify(envelope);
}

/** Whether a webhook wants an event of `type` in `environment`. */
export function webhookWants(
  webhook: Pick<WebhookRow, "events" | "environments">,
  type: string,
  environment: string | null,
): boolean {
  if (type === WEBHOOK_TEST_EVENT) return false;
  const events = parseJson<string[]>(webhook.events, []);
  if (!events.includes("*") && !events.includes(type)) return false;
  const environments = parseJson<string[]>(webhook.environments, []);
  return environments.length === 0 || environment === null || environments.includes(environment);
}

/** How long a queued first attempt may wait before the sweep queues it again (queue lost it). */
export const FIRST_ATTEMPT_GRACE_MS = 10 * 60_000;

/** A message on the WEBHOOKS queue: make attempt `attempt` of delivery `deliveryId`. */
export interface WebhookMessage {
  deliveryId: string;
  attempt: number;
}

/** Most deliveries one queue send carries (the Queues limit of `sendBatch`). */
const SEND_BATCH_LIMIT = 100;

/**
 * A statement that must be written with the deliveries, in the same batch, and that they depend
 * on (`condition`): when it writes nothing (the occurrence was announced before), neither do they.
 */
export type DeliveryGuard = (eventId: string) => {
  insert: D1PreparedStatement;
  condition: InsertCondition;
};

/** The pending delivery rows of one occurrence, one per webhook of `webhooks`. */
function deliveryRows(webhooks: readonly WebhookRow[], event: WebhookEvent, createdAt: string) {
  const envelope: WebhookEnvelope = {
    id: crypto.randomUUID(),
    type: event.type,
    createdAt,
    projectId: event.projectId,
    environment: event.environment,
    actor: event.actor ? { id: event.actor.id, name: event.actor.name } : null,
    data: event.data,
  };
  const nextAttemptAt = new Date(Date.parse(createdAt) + FIRST_ATTEMPT_GRACE_MS).toISOString();
  return {
    eventId: envelope.id,
    rows: webhooks.map((webhook) => ({
      id: crypto.randomUUID(),
      webhook_id: webhook.id,
      project_id: event.projectId,
      event_id: envelope.id,
      event_type: event.type,
      body: webhookBody(webhook.format, envelope, event.summary),
      status: "pending" as const,
      created_at: createdAt,
      next_attempt_at: nextAttemptAt,
    })),
  };
}

/**
 * Writes one pending delivery per webhook of `webhooks` and queues their first attempts. Answers
 * the ids of the deliveries written. Throws only when D1 refuses the rows (a failed queue send is
 * left to the sweep).
 */
export async function enqueueDeliveries(
  env: Env,
  webhooks: readonly WebhookRow[],
  event: WebhookEvent,
  once?: DeliveryGuard,
): Promise<string[]> {
  if (webhooks.length === 0) return [];
  const { eventId, rows } = deliveryRows(webhooks, event, nowIso());
  const guard = once?.(eventId);
  const results = await env.DB.batch([
    ...(guard ? [guard.insert] : []),
    ...rows.map((row) => insertDeliveryStatement(env.DB, row, guard?.condition)),
  ]);
  const offset = guard ? 1 : 0;
  const written = rows.filter((_, i) => (results[i + offset]?.meta.changes ?? 0) > 0);
  await queueFirstAttempts(
    env,
    written.map((row) => row.id),
  );
  return written.map((row) => row.id);
}

/**
 * Puts the first attempts of deliveries just written on the WEBHOOKS queue. Never throws: what
 * the queue did not take, the sweep queues once the first attempt's grace period has passed.
 */
export async function queueFirstAttempts(env: Env, deliveryIds: readonly string[]): Promise<void> {
  try {
    for (let i = 0; i < deliveryIds.length; i += SEND_BATCH_LIMIT)
      await env.WEBHOOKS.sendBatch(
        deliveryIds.slice(i, i + SEND_BATCH_LIMIT).map((deliveryId) => ({
          body: { deliveryId, attempt: 1 } satisfies WebhookMessage,
        })),
      );
  } catch (error) {
    console.error("splitstream: could not queue webhook deliveries (the sweep will)", error);
  }
}

/**
 * Offers an occurrence to the project's enabled webhooks that subscribe to it (type and
 * environment), with `once` written in the same batch when given. Answers how many deliveries
 * were written. Never throws: an error is logged and answers 0 (the change it reports has
 * happened all the same).
 */
export async function emitWebhookEvent(
  env: Env,
  event: WebhookEvent,
  once?: DeliveryGuard,
): Promise<number> {
  try {
    const webhooks = (await listEnabledWebhooks(env.DB, event.projectId)).filter((webhook) =>
      webhookWants(webhook, event.type, event.environment),
    );
    return (await enqueueDeliveries(env, webhooks, event, once)).length;
  } catch (error) {
    console.error(`splitstream: could not emit webhook event ${event.type}`, error);
    return 0;
  }
}

/** Deliveries one D1 batch of emitWebhookEvents writes at most (the rest in further batches). */
const INSERT_BATCH_LIMIT = 500;

/**
 * Offers several occurrences of one project at once (a change that makes many, such as a datafile
 * import creating experiments): each to the enabled webhooks that subscribe to it, as
 * emitWebhookEvent does, but with the webhooks read once and the deliveries written in a few
 * batches and queued together, so a large import costs a few round trips rather than several per
 * event. Answers how many deliveries were written. Never throws: an error is logged and answers
 * what was written before it (the changes reported have happened all the same).
 */
export async function emitWebhookEvents(
  env: Env,
  projectId: string,
  events: readonly WebhookEvent[],
): Promise<number> {
  if (events.length === 0) return 0;
  const written: string[] = [];
  try {
    const webhooks = await listEnabledWebhooks(env.DB, projectId);
    const createdAt = nowIso();
    const rows = events.flatMap(
      (event) =>
        deliveryRows(
          webhooks.filter((webhook) => webhookWants(webhook, event.type, event.environment)),
          event,
          createdAt,
        ).rows,
    );
    for (let i = 0; i < rows.length; i += INSERT_BATCH_LIMIT) {
      const chunk = rows.slice(i, i + INSERT_BATCH_LIMIT);
      await env.DB.batch(chunk.map((row) => insertDeliveryStatement(env.DB, row)));
      written.push(...chunk.map((row) => row.id));
    }
  } catch (error) {
    console.error(
      `splitstream: could not emit webhook events ${[...new Set(events.map((e) => e.type))].join(", ")}`,
      error,
    );
  }
  await queueFirstAttempts(env, written);
  return written.length;
}
