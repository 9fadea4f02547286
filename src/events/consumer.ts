/**
 * The EVENTS queue consumer (docs/events.md). Per batch:
 * 1. validate every message; poison ones go to R2 `rejected/{day}/{first-id}.ndjson` and are acked;
 * 2. archive the valid ones as NDJSON in R2 `events/{day}/{hour}/{first-id}-{count}.ndjson`;
 * 3. count them in ONE atomic D1 batch: dedupe by uuid (seen_events), first impression per
 *    visitor and experiment (exposures, variation_daily), conversions attributed to every
 *    experiment whose first impression came at or before them (converters, metric_daily).
 * Any R2 or D1 failure retries the whole batch; the dedupe rows are written in the same D1
 * transaction as the counts, so a redelivered message can never count twice. After max_retries
 * (wrangler.toml) the queue moves the messages to the dead-letter queue.
 */
import type { Env } from "../env";
import {
  archiveKey,
  planBatch,
  rejectedKey,
  toNdjson,
  type ConversionOp,
  type EventOp,
  type ImpressionOp,
} from "./aggregate";
import type { EventMessage } from "./messages";
import { validateMessage } from "./validate-message";

const NDJSON = { httpMetadata: { contentType: "application/x-ndjson" } };

/** True when the message's seen_events row was inserted by this run (?uuid, ?attempt). */
const NEW_IN_THIS_RUN = (uuid: string, attempt: string): string =>
  `EXISTS (SELECT 1 FROM seen_events WHERE uuid = ${uuid} AND attempt = ${attempt})`;

const SQL_SEEN = `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
  VALUES (?1, ?2, ?3, ?4, ?5)`;

// ?1 sdk_key ?2 experiment_id ?3 visitor_id ?4 variation_id ?5 first_at ?6 revision ?7 uuid ?8 attempt
const SQL_EXPOSURE = `INSERT OR IGNORE INTO exposures
  (sdk_key, experiment_id, visitor_id, variation_id, first_at, revision, uuid)
  SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE ${NEW_IN_THIS_RUN("?7", "?8")}`;

// Same parameters plus ?9 day: one more visitor only if this impression created the exposure.
const SQL_VISITOR = `INSERT INTO variation_daily
  (sdk_key, experiment_id, variation_id, revision, day, visitors)
  SELECT ?1, ?2, ?4, ?6, ?9, 1
  WHERE ${NEW_IN_THIS_RUN("?7", "?8")}
    AND EXISTS (SELECT 1 FROM exposures
      WHERE sdk_key = ?1 AND experiment_id = ?2 AND visitor_id = ?3 AND uuid = ?7)
  ON CONFLICT (sdk_key, experiment_id, variation_id, revision, day)
  DO UPDATE SET visitors = visitors + 1`;

// ?1 sdk_key ?2 visitor_id ?3 event_id ?4 timestamp ?5 uuid ?6 attempt
const ATTRIBUTED = `FROM exposures e
  WHERE e.sdk_key = ?1 AND e.visitor_id = ?2 AND e.first_at <= ?4
    AND ${NEW_IN_THIS_RUN("?5", "?6")}`;

const SQL_CONVERTER = `INSERT OR IGNORE INTO converters
  (sdk_key, experiment_id, event_id, visitor_id, variation_id, converted_at, uuid)
  SELECT e.sdk_key, e.experiment_id, ?3, e.visitor_id, e.variation_id, ?4, ?5 ${ATTRIBUTED}`;

// Plus ?7 day ?8 revenue ?9 revenue² ?10 value ?11 value².
const SQL_METRIC = `INSERT INTO metric_daily
  (sdk_key, experiment_id, variation_id, revision, event_id, day,
   converters, events, revenue_sum, revenue_sum_sq, value_sum, value_sum_sq)
  SELECT e.sdk_key, e.experiment_id, e.variation_id, e.revision, ?3, ?7,
    (SELECT count(*) FROM converters c
      WHERE c.sdk_key = e.sdk_key AND c.experiment_id = e.experiment_id AND c.event_id = ?3
        AND c.visitor_id = e.visitor_id AND c.uuid = ?5),
    1, ?8, ?9, ?10, ?11 ${ATTRIBUTED}
  ON CONFLICT (sdk_key, experiment_id, variation_id, revision, event_id, day)
  DO UPDATE SET converters = converters + excluded.converters,
    events = events + 1,
    revenue_sum = revenue_sum + excluded.revenue_sum,
    revenue_sum_sq = revenue_sum_sq + excluded.revenue_sum_sq,
    value_sum = value_sum + excluded.value_sum,
    value_sum_sq = value_sum_sq + excluded.value_sum_sq`;

/** The statements that count one operation (in order), for one consumer run `attempt`. */
export function statementsFor(
  db: D1Database,
  op: EventOp,
  attempt: string,
  receivedAt: number,
): D1PreparedStatement[] {
  const seen = db.prepare(SQL_SEEN).bind(op.uuid, op.kind, op.sdkKey, receivedAt, attempt);
  return op.kind === "impression"
    ? [seen, ...impressionStatements(db, op, attempt)]
    : [seen, ...conversionStatements(db, op, attempt)];
}

function impressionStatements(
  db: D1Database,
  op: ImpressionOp,
  attempt: string,
): D1PreparedStatement[] {
  const params = [
    op.sdkKey,
    op.experimentId,
    op.visitorId,
    op.variationId,
    op.timestamp,
    op.revision,
    op.uuid,
    attempt,
  ];
  return [
    db.prepare(SQL_EXPOSURE).bind(...params),
    db.prepare(SQL_VISITOR).bind(...params, op.day),
  ];
}

function conversionStatements(
  db: D1Database,
  op: ConversionOp,
  attempt: string,
): D1PreparedStatement[] {
  const params = [op.sdkKey, op.visitorId, op.eventId, op.timestamp, op.uuid, attempt];
  return [
    db.prepare(SQL_CONVERTER).bind(...params),
    db
      .prepare(SQL_METRIC)
      .bind(...params, op.day, op.revenue, op.revenue * op.revenue, op.value, op.value * op.value),
  ];
}

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
    const statements = plan.ops.flatMap((op) => statementsFor(env.DB, op, attempt, now));
    // One D1 batch = one transaction: dedupe rows and counts commit together or not at all.
    await env.DB.batch(statements);
  } catch (error) {
    console.error(`splitstream: could not process ${valid.length} event(s); retrying`, error);
    batch.retryAll();
    return;
  }
  batch.ackAll();
}
