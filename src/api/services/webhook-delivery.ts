/**
 * Sending webhook deliveries (docs/webhooks.md "Delivery"): the WEBHOOKS queue's consumer makes
 * one attempt per message — signed POST, 10 s timeout, no redirects followed — and records it in
 * the delivery log. A failed attempt that may succeed later (no response, 408, 425, 429, 5xx) is
 * retried after a backoff: the delivery's `next_attempt_at` moves on, and the per-minute sweep
 * hands it to the queue again when it is due. Up to WEBHOOK_MAX_ATTEMPTS attempts; any other
 * answer ends the delivery as failed at once (a 401 from a receiver that refused the signature,
 * a 410 from one that is gone).
 *
 * Each attempt is claimed in D1 before it is made (attempts = n − 1 → n), so a queue message
 * delivered twice, or a sweep that queues a delivery the queue still holds, sends it once. When
 * the isolate dies between the POST and its record, the next attempt sends it again: delivery is
 * at least once (receivers dedupe by `x-splitstream-delivery`), never beyond the last attempt.
 */
import type { Env } from "../../env";
import {
  claimAttempt,
  failExhaustedDeliveries,
  findDelivery,
  findWebhook,
  listDueDeliveries,
  postponeDeliveryStatement,
  pruneDeliveries,
  recordAttempt,
  type WebhookDeliveryStatus,
} from "../store/webhooks";
import { FIRST_ATTEMPT_GRACE_MS, WEBHOOK_TEST_EVENT, type WebhookMessage } from "./webhook-events";

/** Attempts per delivery, the first included. */
export const WEBHOOK_MAX_ATTEMPTS = 8;

/** Wait after failed attempt n (index n − 1) before the next: 1 min … 24 h (≈ 45 h in all). */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [
  60_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  6 * 3_600_000,
  12 * 3_600_000,
  24 * 3_600_000,
];

/** How long a receiver has to answer. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/** How long a claimed attempt keeps the sweep away (longer than the timeout). */
const ATTEMPT_LEASE_MS = 60_000;

/** How many characters of a response the log keeps. */
const RESPONSE_KEEP = 1_000;

/** How long the delivery log keeps finished deliveries. */
export const WEBHOOK_LOG_DAYS = 30;

/** The request headers (docs/webhooks.md "Verifying a delivery"). */
export const WEBHOOK_HEADERS = {
  event: "x-splitstream-event",
  delivery: "x-splitstream-delivery",
  timestamp: "x-splitstream-timestamp",
  signature: "x-splitstream-signature",
} as const;

const encoder = new TextEncoder();

/**
 * The signature of a delivery: `v1=` + lowercase hex of HMAC-SHA256, keyed with the secret's
 * UTF-8 bytes, over `${timestamp}.${body}` (timestamp in Unix seconds, as sent in
 * `x-splitstream-timestamp`). Signing the timestamp lets receivers refuse replayed deliveries.
 */
export async function signWebhook(
  secret: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestamp}.${body}`));
  let hex = "";
  for (const byte of new Uint8Array(mac)) hex += byte.toString(16).padStart(2, "0");
  return `v1=${hex}`;
}

/** Whether an attempt that got `status` (null: no response) may succeed when tried again. */
export function isRetryable(status: number | null): boolean {
  return status === null || status === 408 || status === 425 || status === 429 || status >= 500;
}

/** The wait after failed attempt `attempt` (1-based). */
function retryDelay(attempt: number): number {
  return (
    WEBHOOK_RETRY_DELAYS_MS[attempt - 1] ??
    WEBHOOK_RETRY_DELAYS_MS[WEBHOOK_RETRY_DELAYS_MS.length - 1] ??
    3_600_000
  );
}

/** The first RESPONSE_KEEP characters of a body, without reading more of it than that needs. */
async function readStart(response: Response): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < RESPONSE_KEEP) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return text.slice(0, RESPONSE_KEEP);
}

/** What one attempt got. */
interface AttemptOutcome {
  statusCode: number | null;
  error: string | null;
  response: string | null;
}

/** One signed POST of `body` to `url`. Never throws. */
async function postDelivery(
  url: string,
  headers: Record<string, string>,
  body: string,
): Promise<AttemptOutcome> {
  try {
    const response = await fetch(url, {
      method: "POST",
      headers,
      body,
      redirect: "manual",
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    const text = await readStart(response).catch(() => "");
    if (response.status >= 300 && response.status < 400)
      return {
        statusCode: response.status,
        error: `redirects are not followed (to ${(response.headers.get("location") ?? "?").slice(0, 200)}); give the final URL`,
        response: text,
      };
    return {
      statusCode: response.status,
      error: response.ok ? null : `the receiver answered ${response.status}`,
      response: text,
    };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    return {
      statusCode: null,
      error:
        name === "TimeoutError" || name === "AbortError"
          ? `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`
          : `could not connect: ${error instanceof Error ? error.message : String(error)}`,
      response: null,
    };
  }
}

/**
 * Makes attempt `message.attempt` of a delivery, when it is still to be made (see the module
 * comment), and records it. Throws only when D1 does (the message is then retried).
 */
export async function deliverWebhook(env: Env, message: WebhookMessage): Promise<void> {
  const db = env.DB;
  // Never beyond the last attempt (a sweep after a crash could otherwise queue one more).
  if (message.attempt > WEBHOOK_MAX_ATTEMPTS) return;
  const started = Date.now();
  const claimed = await claimAttempt(
    db,
    message.deliveryId,
    message.attempt,
    new Date(started + ATTEMPT_LEASE_MS).toISOString(),
  );
  if (!claimed) return;
  const delivery = await findDelivery(db, message.deliveryId);
  if (!delivery) return;
  const webhook = await findWebhook(db, delivery.webhook_id);
  let outcome: AttemptOutcome;
  if (!webhook) {
    outcome = { statusCode: null, error: "the webhook was deleted", response: null };
  } else if (!webhook.enabled && delivery.event_type !== WEBHOOK_TEST_EVENT) {
    outcome = { statusCode: null, error: "the webhook is disabled", response: null };
  } else {
    const timestamp = Math.floor(Date.now() / 1000);
    outcome = await postDelivery(
      webhook.url,
      {
        "content-type": "application/json",
        "user-agent": "Splitstream-Webhooks/1",
        [WEBHOOK_HEADERS.event]: delivery.event_type,
        [WEBHOOK_HEADERS.delivery]: delivery.id,
        [WEBHOOK_HEADERS.timestamp]: String(timestamp),
        [WEBHOOK_HEADERS.signature]: await signWebhook(webhook.secret, timestamp, delivery.body),
      },
      delivery.body,
    );
  }
  const finished = Date.now();
  const delivered =
    outcome.statusCode !== null && outcome.statusCode >= 200 && outcome.statusCode < 300;
  const stopped = !webhook || (!webhook.enabled && delivery.event_type !== WEBHOOK_TEST_EVENT);
  const retry =
    !delivered &&
    !stopped &&
    isRetryable(outcome.statusCode) &&
    message.attempt < WEBHOOK_MAX_ATTEMPTS &&
    !(outcome.statusCode !== null && outcome.statusCode >= 300 && outcome.statusCode < 400);
  const status: WebhookDeliveryStatus = delivered ? "delivered" : retry ? "pending" : "failed";
  await recordAttempt(
    db,
    {
      delivery_id: delivery.id,
      attempt: message.attempt,
      at: new Date(started).toISOString(),
      status_code: outcome.statusCode,
      error: outcome.error,
      duration_ms: finished - started,
      response: outcome.response,
    },
    {
      status,
      nextAttemptAt: new Date(
        retry ? finished + retryDelay(message.attempt) : finished,
      ).toISOString(),
      finishedAt: status === "pending" ? null : new Date(finished).toISOString(),
    },
  );
}

/** A queue message's body, checked: the queue is ours, but a bad message must not stop a batch. */
export function parseWebhookMessage(body: unknown): WebhookMessage | null {
  if (typeof body !== "object" || body === null) return null;
  const { deliveryId, attempt } = body as Record<string, unknown>;
  if (typeof deliveryId !== "string" || deliveryId.length === 0 || deliveryId.length > 100)
    return null;
  if (typeof attempt !== "number" || !Number.isInteger(attempt) || attempt < 1) return null;
  return { deliveryId, attempt };
}

/**
 * The WEBHOOKS queue's consumer: each message's attempt, concurrently. A malformed message is
 * logged and acknowledged; a message whose bookkeeping failed (D1) is retried by the queue.
 */
export async function handleWebhookBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const parsed = parseWebhookMessage(message.body);
      if (!parsed) {
        console.error("splitstream: dropped a malformed webhook queue message", message.body);
        message.ack();
        return;
      }
      try {
        await deliverWebhook(env, parsed);
        message.ack();
      } catch (error) {
        console.error(`splitstream: webhook delivery ${parsed.deliveryId} failed`, error);
        message.retry({ delaySeconds: 30 });
      }
    }),
  );
}

/**
 * The sweep (every scheduled run): hands the pending deliveries due at `now` to the queue —
 * retries whose backoff has passed, and first attempts the queue did not take — at most 500 per
 * run, oldest first. Each is postponed by the grace period first, so a slow queue does not get
 * it again every minute. Answers how many it queued.
 */
export async function sweepWebhookDeliveries(env: Env, now: number): Promise<number> {
  await failExhaustedDeliveries(env.DB, WEBHOOK_MAX_ATTEMPTS, new Date(now).toISOString());
  const due = await listDueDeliveries(env.DB, new Date(now).toISOString(), 500);
  if (due.length === 0) return 0;
  const postponed = new Date(now + FIRST_ATTEMPT_GRACE_MS).toISOString();
  await env.DB.batch(
    due.map((row) => postponeDeliveryStatement(env.DB, row.id, row.attempts, postponed)),
  );
  for (let i = 0; i < due.length; i += 100)
    await env.WEBHOOKS.sendBatch(
      due.slice(i, i + 100).map((row) => ({
        body: { deliveryId: row.id, attempt: row.attempts + 1 } satisfies WebhookMessage,
      })),
    );
  return due.length;
}

/** Deletes deliveries that finished more than WEBHOOK_LOG_DAYS ago (the hourly run). */
export function pruneWebhookLog(env: Env, now: number): Promise<number> {
  return pruneDeliveries(env.DB, new Date(now - WEBHOOK_LOG_DAYS * 86_400_000).toISOString());
}
