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

/** The INSERT of a new pending delivery. */
export function insertDeliveryStatement(
  db: D1Database,
  row: Omit<WebhookDeliveryRow, "attempts" | "last_status_code" | "last_error" | "finished_at">,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO webhook_deliveries
         (id, webhook_id, project_id, event_id, event_type, body, status, attempts, created_at, next_attempt_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
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

/** Deletes finished deliveries (and their attempts) created before `before`. */
export async function pruneDeliveries(db: D1Database, before: string): Promise<number> {
  const result = await db
    .prepare("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND created_at < ?")
    .bind(before)
    .run();
  return result.meta.changes;
}

/** Records an announced result alert; true when it is new (not announced before). */
export async function recordResultAlert(
  db: D1Database,
  alert: {
    experimentId: string;
    environmentId: string;
    kind: string;
    subject: string;
    at: string;
  },
): Promise<boolean> {
  const result = await db
    .prepare(
      "INSERT OR IGNORE INTO result_alerts (experiment_id, environment_id, kind, subject, detected_at) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(alert.experimentId, alert.environmentId, alert.kind, alert.subject, alert.at)
    .run();
  return result.meta.changes > 0;
}
