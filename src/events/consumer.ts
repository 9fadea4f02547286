/**
 * The EVENTS queue consumer (docs/events.md). Per batch:
 * 1. validate every message; poison ones go to R2 `rejected/{day}/{first-id}.ndjson` and are acked;
 * 2. archive the valid ones as NDJSON in R2 `events/{day}/{hour}/{first-id}-{count}.ndjson`;
 * 3. count them in ONE atomic D1 batch of at most 10 set-based statements (src/events/count-sql.ts):
 *    dedupe by uuid (seen_events), the earliest impression per visitor and experiment (exposures,
 *    variation_daily), conversions kept (conversions) and attributed to every experiment whose
 *    earliest impression came at or before them (converters, metric_daily) — whatever the order
 *    in which the queue delivers impressions and conversions.
 * Any R2 or D1 failure retries the whole batch; the dedupe rows are written in the same D1
 * transaction as the counts, so a redelivered message can never count twice. After max_retries
 * (wrangler.toml) the queue moves the messages to the dead-letter queue.
 */
import type { Env } from "../env";
import { archiveKey, planBatch, rejectedKey, toNdjson } from "./aggregate";
import { countStatements } from "./count-sql";
import type { EventMessage } from "./messages";
import { validateMessage } from "./validate-message";

const NDJSON = { httpMetadata: { contentType: "application/x-ndjson" } };

/** JSON-safe form of an arbitrary (possibly non-JSON, e.g. v8-serialized) message body. */
function jsonSafe(body: unknown): unknown {
  try {
    const text = JSON.stringify(body);
    return text === undefined ? String(body) : (JSON.parse(text) as unknown);
  } catch (_error) {
    return String(body);
  }
}

export async function handleEventBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const messages = batch.messages;
  const first = messages[0];
  if (!first) return;
  const now = Date.now();

  const valid: Array<{ id: string; event: EventMessage }> = [];
  const rejected: Array<{ message: Message<unknown>; reason: string }> = [];
  for (const message of messages) {
    const result = validateMessage(message.body, now);
    if (result.ok) valid.push({ id: message.id, event: result.message });
    else rejected.push({ message, reason: result.reason });
  }

  try {
    if (rejected.length > 0) {
      const lines = rejected.map(({ message, reason }) => ({
        id: message.id,
        reason,
        body: jsonSafe(message.body),
      }));
      await env.ARCHIVE.put(rejectedKey(now, first.id), toNdjson(lines), NDJSON);
      console.warn(`splitstream: rejected ${rejected.length} event message(s)`);
    }
  } catch (error) {
    console.error("splitstream: could not archive rejected events; retrying the batch", error);
    batch.retryAll();
    return;
  }
  // Poison messages are archived: never retry them, whatever happens to the rest.
  for (const { message } of rejected) message.ack();

  const firstValid = valid[0];
  if (!firstValid) {
    batch.ackAll();
    return;
  }

  try {
    const events = valid.map(({ event }) => event);
    await env.ARCHIVE.put(archiveKey(now, firstValid.id, valid.length), toNdjson(events), NDJSON);

    const plan = planBatch(events);
    const attempt = crypto.randomUUID();
    const statements = countStatements(env.DB, plan, attempt, now);
    // One D1 batch = one transaction: dedupe rows and counts commit together or not at all.
    await env.DB.batch(statements);
  } catch (error) {
    console.error(`splitstream: could not process ${valid.length} event(s); retrying`, error);
    batch.retryAll();
    return;
  }
  batch.ackAll();
}
