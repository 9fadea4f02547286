/**
 * D1 rows and queries of webhooks, their deliveries and attempts (migrations/0014_webhooks.sql;
 * docs/webhooks.md). The rules are src/api/services/webhooks.ts (the resource) and
 * src/api/services/webhook-delivery.ts (sending).
 */
import { all, first } from "./db";

/** A `webhooks` row. */
export interface WebhookRow {
  id: string;
  project_id: string;
  name: string;
  url: string;
  format: "json" | "slack";
  /** JSON array of event types, `["*"]` = all. */
  events: string;
  /** JSON array of environment keys, `[]` = all. */
  environments: string;
  secret: string;
  enabled: number;
  version: number;
  created_at: string;
  updated_at: string;
}

export type WebhookDeliveryStatus = "pending" | "delivered" | "failed";

/** A `webhook_deliveries` row. */
export interface WebhookDeliveryRow {
  id: string;
  webhook_id: string;
  project_id: string;
  event_id: string;
  event_type: string;
  body: string;
  status: WebhookDeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  next_attempt_at: string;
  finished_at: string | null;
  /** The delivery this one redelivers (migrations/0018_webhook_redeliveries.sql); null for a first. */
  redelivery_of: string | null;
}

/** A `webhook_attempts` row. */
export interface WebhookAttemptRow {
  delivery_id: string;
  attempt: number;
  at: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  response: string | null;
}

export function findWebhook(db: D1Database, id: string): Promise<WebhookRow | null> {
  return first<WebhookRow>(db, "SELECT * FROM webhooks WHERE id = ?", id);
}

/** The enabled webhooks of a project (what an event is offered to). */
export function listEnabledWebhooks(db: D1Database, projectId: string): Promise<WebhookRow[]> {
  return all<WebhookRow>(
    db,
    "SELECT * FROM webhooks WHERE project_id = ? AND enabled = 1 ORDER BY id",
    projectId,
  );
}

/** A page of a project's webhooks by id (LIMIT `limit + 1`: one more tells that more follow). */
export function listWebhookPage(
  db: D1Database,
  projectId: string,
  limit: number,
  after: string | null,
): Promise<WebhookRow[]> {
  return after === null
    ? all<WebhookRow>(
        db,
        "SELECT * FROM webhooks WHERE project_id = ? ORDER BY id LIMIT ?",
        projectId,
        limit + 1,
      )
    : all<WebhookRow>(
        db,
        "SELECT * FROM webhooks WHERE project_id = ? AND id > ? ORDER BY id LIMIT ?",
        projectId,
        after,
        limit + 1,
      );
}

export function findDelivery(db: D1Database, id: string): Promise<WebhookDeliveryRow | null> {
  return first<WebhookDeliveryRow>(db, "SELECT * FROM webhook_deliveries WHERE id = ?", id);
}

/**
 * A page of a webhook's deliveries, newest first (by creation time, then id), before the cursor
 * `before` (`created_at|id` of the previous page's last item).
 */
export function listDeliveryPage(
  db: D1Database,
  webhookId: string,
  limit: number,
  before: { createdAt: string; id: string } | null,
): Promise<WebhookDeliveryRow[]> {
  return before === null
    ? all<WebhookDeliveryRow>(
        db,
        "SELECT * FROM webhook_deliveries WHERE webhook_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        webhookId,
        limit + 1,
      )
    : all<WebhookDeliveryRow>(
        db,
        `SELECT * FROM webhook_deliveries WHERE webhook_id = ?
           AND (created_at < ? OR (created_at = ? AND id < ?))
         ORDER BY created_at DESC, id DESC LIMIT ?`,
        webhookId,
        before.createdAt,
        before.createdAt,
        before.id,
        limit + 1,
      );
}

export function listAttempts(db: D1Database, deliveryId: string): Promise<WebhookAttemptRow[]> {
  return all<WebhookAttemptRow>(
    db,
    "SELECT * FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
    deliveryId,
  );
}

/**
 * A condition a delivery's INSERT can be made to depend on (SQL for `WHERE EXISTS (…)`), so that
 * it is written only when another statement of the same batch wrote what it checks.
 */
export interface InsertCondition {
  existsSql: string;
  params: unknown[];
}

/** The INSERT of a new pending delivery (only when `condition` holds, if given). */
export function insertDeliveryStatement(
  db: D1Database,
  row: Omit<
    WebhookDeliveryRow,
    "attempts" | "last_status_code" | "last_error" | "finished_at" | "redelivery_of"
  >,
  condition?: InsertCondition,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO webhook_deliveries
         (id, webhook_id, project_id, event_id, event_type, body, status, attempts, created_at, next_attempt_at)
       SELECT ?, ?, ?, ?, ?, ?, ?, 0, ?, ?${condition ? ` WHERE EXISTS (${condition.existsSql})` : ""}`,
    )
    .bind(
      row.id,
      row.webhook_id,
      row.project_id,
      row.event_id,
      row.event_type,
      row.body,
      row.status,
      row.created_at,
      row.next_attempt_at,
      ...(condition?.params ?? []),
    );
}

/**
 * The INSERT of `row`, a pending redelivery of the delivery `row.redelivery_of`, written only when
 * that delivery is finished (not pending) and none of its redeliveries is pending: the check and
 * the write are one statement, so two clicks at once make one redelivery.
 */
export function insertRedeliveryStatement(
  db: D1Database,
  row: Omit<WebhookDeliveryRow, "attempts" | "last_status_code" | "last_error" | "finished_at"> & {
    redelivery_of: string;
  },
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO webhook_deliveries
         (id, webhook_id, project_id, event_id, event_type, body, status, attempts, created_at,
          next_attempt_at, redelivery_of)
       SELECT ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?
       WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ? AND status <> 'pending')
         AND NOT EXISTS (
           SELECT 1 FROM webhook_deliveries WHERE redelivery_of = ? AND status = 'pending')`,
    )
    .bind(
      row.id,
      row.webhook_id,
      row.project_id,
      row.event_id,
      row.event_type,
      row.body,
      row.created_at,
      row.next_attempt_at,
      row.redelivery_of,
      row.redelivery_of,
      row.redelivery_of,
    );
}

/** The redeliveries made from a delivery, oldest first. */
export function listRedeliveries(
  db: D1Database,
  deliveryId: string,
): Promise<Array<Pick<WebhookDeliveryRow, "id" | "status" | "created_at">>> {
  return all<Pick<WebhookDeliveryRow, "id" | "status" | "created_at">>(
    db,
    "SELECT id, status, created_at FROM webhook_deliveries WHERE redelivery_of = ? ORDER BY created_at, id",
    deliveryId,
  );
}

/**
 * Claims attempt `attempt` of a pending delivery: true when this caller is the one to make it
 * (attempts was `attempt - 1`); a duplicate queue message, or one for an attempt already made,
 * claims nothing. `leaseUntil` keeps the sweep away while the attempt is in flight.
 */
export async function claimAttempt(
  db: D1Database,
  deliveryId: string,
  attempt: number,
  leaseUntil: string,
): Promise<boolean> {
  if (!Number.isSafeInteger(attempt) || attempt < 1) return false;
  const result = await db
    .prepare(
      "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ? WHERE id = ? AND status = 'pending' AND attempts = ?",
    )
    .bind(attempt, leaseUntil, deliveryId, attempt - 1)
    .run();
  return result.meta.changes > 0;
}

/** Records one attempt and what it left the delivery as, in one batch. */
export async function recordAttempt(
  db: D1Database,
  attempt: WebhookAttemptRow,
  outcome: {
    status: WebhookDeliveryStatus;
    nextAttemptAt: string;
    finishedAt: string | null;
  },
): Promise<void> {
  await db.batch([
    db
      .prepare(
        "INSERT OR REPLACE INTO webhook_attempts (delivery_id, attempt, at, status_code, error, duration_ms, response) VALUES (?, ?, ?, ?, ?, ?, ?)",
      )
      .bind(
        attempt.delivery_id,
        attempt.attempt,
        attempt.at,
        attempt.status_code,
        attempt.error,
        attempt.duration_ms,
        attempt.response,
      ),
    db
      .prepare(
        `UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, finished_at = ?,
           last_status_code = ?, last_error = ?
         WHERE id = ? AND attempts = ?`,
      )
      .bind(
        outcome.status,
        outcome.nextAttemptAt,
        outcome.finishedAt,
        attempt.status_code,
        attempt.error,
        attempt.delivery_id,
        attempt.attempt,
      ),
  ]);
}

/** Pending deliveries due at `at` (oldest first): what the sweep hands to the queue. */
export function listDueDeliveries(
  db: D1Database,
  at: string,
  limit: number,
): Promise<Array<Pick<WebhookDeliveryRow, "id" | "attempts">>> {
  return all<Pick<WebhookDeliveryRow, "id" | "attempts">>(
    db,
    "SELECT id, attempts FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
    at,
    limit,
  );
}

/** Moves a pending delivery's next hand-over (after the sweep queued it again). */
export function postponeDeliveryStatement(
  db: D1Database,
  deliveryId: string,
  attempts: number,
  nextAttemptAt: string,
): D1PreparedStatement {
  return db
    .prepare(
      "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending' AND attempts = ?",
    )
    .bind(nextAttemptAt, deliveryId, attempts);
}

/** Deletes deliveries (and their attempts) that finished before `before`. */
export async function pruneDeliveries(db: D1Database, before: string): Promise<number> {
  const result = await db
    .prepare("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND finished_at < ?")
    .bind(before)
    .run();
  return result.meta.changes;
}

/**
 * Ends as failed the pending deliveries whose last attempt was claimed but never recorded (the
 * isolate died after the POST), once that was the last attempt allowed: nothing will send them.
 */
export async function failExhaustedDeliveries(
  db: D1Database,
  maxAttempts: number,
  leaseExpiredBefore: string,
): Promise<number> {
  const result = await db
    .prepare(
      `UPDATE webhook_deliveries SET status = 'failed', finished_at = ?,
         last_error = 'the outcome of the last attempt was never recorded'
       WHERE status = 'pending' AND attempts >= ? AND next_attempt_at <= ?`,
    )
    .bind(leaseExpiredBefore, maxAttempts, leaseExpiredBefore)
    .run();
  return result.meta.changes;
}

/**
 * The INSERT of a result alert (ignored when it was announced before) and the condition that
 * makes the deliveries of the same batch depend on it: they are written only when this insert
 * wrote the row with their `eventId` (src/api/services/result-alerts.ts).
 */
export function resultAlertOnce(
  db: D1Database,
  alert: {
    experimentId: string;
    environmentId: string;
    kind: string;
    subject: string;
    at: string;
  },
  eventId: string,
): { insert: D1PreparedStatement; condition: InsertCondition } {
  return {
    insert: db
      .prepare(
        "INSERT OR IGNORE INTO result_alerts (experiment_id, environment_id, kind, subject, event_id, detected_at) VALUES (?, ?, ?, ?, ?, ?)",
      )
      .bind(alert.experimentId, alert.environmentId, alert.kind, alert.subject, eventId, alert.at),
    condition: {
      existsSql:
        "SELECT 1 FROM result_alerts WHERE experiment_id = ? AND environment_id = ? AND kind = ? AND subject = ? AND event_id = ?",
      params: [alert.experimentId, alert.environmentId, alert.kind, alert.subject, eventId],
    },
  };
}

/** Whether a result alert was announced already. */
export async function resultAlertExists(
  db: D1Database,
  alert: { experimentId: string; environmentId: string; kind: string; subject: string },
): Promise<boolean> {
  return (
    (await first<{ one: number }>(
      db,
      "SELECT 1 AS one FROM result_alerts WHERE experiment_id = ? AND environment_id = ? AND kind = ? AND subject = ?",
      alert.experimentId,
      alert.environmentId,
      alert.kind,
      alert.subject,
    )) !== null
  );
}
