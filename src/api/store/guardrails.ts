/**
 * Guardrail breaches in D1 (migrations/0010_guardrail_breaches.sql; docs/statistics.md
 * "Guardrails"), and the running experiments that have guardrail metrics.
 */
import type { Actor } from "../context";
import { auditIfChanged } from "./audit";

/** A running experiment with at least one guardrail metric, in one environment. */
export interface GuardrailCandidate {
  experiment_id: string;
  project_id: string;
  environment_id: string;
  environment_key: string;
}

/** A recorded breach. */
export interface GuardrailBreachRow {
  experiment_id: string;
  environment_id: string;
  event_id: string;
  /** The metric's aggregator, with `:field` for sums (`unique`, `count`, `sum:revenue`). */
  metric: string;
  variation_id: string;
  detected_at: string;
  p_value: number;
  difference: number | null;
  lift: number | null;
  action: string;
  paused_at: string | null;
}

/**
 * Every (experiment, environment) where the experiment is Running and one of its metrics is a
 * guardrail (the JSON column is searched for the key first; the caller parses the metrics).
 */
export async function listGuardrailCandidates(db: D1Database): Promise<GuardrailCandidate[]> {
  const { results } = await db
    .prepare(
      `SELECT e.id AS experiment_id, e.project_id, en.id AS environment_id, en.key AS environment_key
       FROM experiments AS e
       JOIN experiment_status AS s ON s.experiment_id = e.id AND s.status = 'Running'
       JOIN environments AS en ON en.id = s.environment_id
       WHERE e.metrics LIKE '%"guardrail"%'
       ORDER BY e.id, en.id`,
    )
    .all<GuardrailCandidate>();
  return results;
}

/**
 * Records a breach unless one is recorded for the same cell, and in the same transaction its
 * audit entry (only when the row is new); true when it is new.
 */
export async function recordBreach(
  db: D1Database,
  row: Omit<GuardrailBreachRow, "paused_at">,
  audit: { actor: Actor; projectId: string; details: unknown },
): Promise<boolean> {
  const [insert] = await db.batch([
    db
      .prepare(
        `INSERT OR IGNORE INTO guardrail_breaches (experiment_id, environment_id, event_id, metric,
           variation_id, detected_at, p_value, difference, lift, action) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        row.experiment_id,
        row.environment_id,
        row.event_id,
        row.metric,
        row.variation_id,
        row.detected_at,
        row.p_value,
        row.difference,
        row.lift,
        row.action,
      ),
    auditIfChanged(
      db,
      audit.actor,
      "guardrail.breached",
      "experiment",
      row.experiment_id,
      audit.projectId,
      audit.details,
    ),
  ]);
  return Number(insert?.meta.changes ?? 0) > 0;
}

/** The breaches recorded for an experiment in one environment, oldest first. */
export async function listBreaches(
  db: D1Database,
  experimentId: string,
  environmentId: string,
): Promise<GuardrailBreachRow[]> {
  const { results } = await db
    .prepare(
      `SELECT * FROM guardrail_breaches WHERE experiment_id = ? AND environment_id = ?
       ORDER BY detected_at, event_id, metric, variation_id`,
    )
    .bind(experimentId, environmentId)
    .all<GuardrailBreachRow>();
  return results;
}

/** Marks the `pause` breaches not yet acted on as paused (after the pause, or when it was moot). */
export async function markPaused(
  db: D1Database,
  experimentId: string,
  environmentId: string,
  at: string,
): Promise<void> {
  await db
    .prepare(
      `UPDATE guardrail_breaches SET paused_at = ? WHERE experiment_id = ? AND environment_id = ?
       AND action = 'pause' AND paused_at IS NULL`,
    )
    .bind(at, experimentId, environmentId)
    .run();
}
