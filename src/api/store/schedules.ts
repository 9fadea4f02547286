/**
 * Experiment schedules in D1 (migrations/0015_experiment_schedules.sql; docs/schedules.md): the
 * schedule rows, their steps, the guarded replace of the pending steps, and the run's claim and
 * finish of one step.
 */
import type { Actor } from "../context";
import { auditIfChanged } from "./audit";
import { all, first } from "./db";

/** `experiment_schedules`: one per experiment and environment that ever had a schedule. */
export interface ScheduleRow {
  experiment_id: string;
  environment_id: string;
  version: number;
  write_id: string;
  created_at: string;
  updated_at: string;
}

/** `schedule_steps`. */
export interface ScheduleStepRow {
  id: string;
  experiment_id: string;
  environment_id: string;
  position: number;
  /** ISO-8601 UTC as `Date.toISOString()` writes it, so text order is time order. */
  at: string;
  action: "start" | "pause" | "resume" | "archive" | "traffic";
  percent_bp: number | null;
  status: "pending" | "running" | "done" | "failed" | "skipped";
  claimed_at: string | null;
  applied_at: string | null;
  revision: number | null;
  error: string | null;
  /** The role of who wrote the step (`admin` or `editor`; system actors act as admin). */
  written_by_role: string;
  created_at: string;
}

/** A due step with what the run needs to apply it. */
export interface DueStepRow extends ScheduleStepRow {
  project_id: string;
  experiment_key: string;
  environment_key: string;
}

/** The schedule of an experiment in one environment, or null when none was ever written. */
export function findSchedule(
  db: D1Database,
  experimentId: string,
  environmentId: string,
): Promise<ScheduleRow | null> {
  return first<ScheduleRow>(
    db,
    "SELECT * FROM experiment_schedules WHERE experiment_id = ? AND environment_id = ?",
    experimentId,
    environmentId,
  );
}

/** Every schedule row of an experiment. */
export function listScheduleRows(db: D1Database, experimentId: string): Promise<ScheduleRow[]> {
  return all<ScheduleRow>(
    db,
    "SELECT * FROM experiment_schedules WHERE experiment_id = ?",
    experimentId,
  );
}

/** The steps of an experiment (one environment, or all), each schedule's in its order. */
export function listSteps(
  db: D1Database,
  experimentId: string,
  environmentId?: string,
): Promise<ScheduleStepRow[]> {
  return environmentId === undefined
    ? all<ScheduleStepRow>(
        db,
        "SELECT * FROM schedule_steps WHERE experiment_id = ? ORDER BY environment_id, position",
        experimentId,
      )
    : all<ScheduleStepRow>(
        db,
        "SELECT * FROM schedule_steps WHERE experiment_id = ? AND environment_id = ? ORDER BY position",
        experimentId,
        environmentId,
      );
}

/** Everything a replace of the pending steps writes. */
export interface ScheduleWrite {
  experimentId: string;
  environmentId: string;
  projectId: string;
  /** The version the write expects (0: no schedule row yet). */
  expectedVersion: number;
  /** Random, unique to this write: the statements after the guard only act when it landed. */
  writeId: string;
  now: string;
  /** The new pending steps (status pending). */
  steps: Array<
    Pick<ScheduleStepRow, "id" | "position" | "at" | "action" | "percent_bp" | "written_by_role">
  >;
  audit: { actor: Actor; action: string; details: unknown };
}

/**
 * The batch of a replace: [0] the guard (the version bump, or the first insert), [1] its audit
 * entry, then the delete of the pending steps still to come (`at > now`) and the inserts of the
 * new ones — both conditional on the guard's `write_id`, so a write that lost the race (guard
 * changed nothing) changes nothing. A step whose time has come belongs to the run (it is taken
 * within the minute) and is kept, as is a step a run claimed meanwhile: each runs once.
 */
export function replaceStepsStatements(
  db: D1Database,
  write: ScheduleWrite,
): D1PreparedStatement[] {
  const { experimentId, environmentId, writeId, now } = write;
  const landed =
    "EXISTS (SELECT 1 FROM experiment_schedules WHERE experiment_id = ? AND environment_id = ? AND write_id = ?)";
  const guard =
    write.expectedVersion === 0
      ? db
          .prepare(
            `INSERT OR IGNORE INTO experiment_schedules (experiment_id, environment_id, version, write_id, created_at, updated_at)
             VALUES (?, ?, 1, ?, ?, ?)`,
          )
          .bind(experimentId, environmentId, writeId, now, now)
      : db
          .prepare(
            `UPDATE experiment_schedules SET version = version + 1, write_id = ?, updated_at = ?
             WHERE experiment_id = ? AND environment_id = ? AND version = ?`,
          )
          .bind(writeId, now, experimentId, environmentId, write.expectedVersion);
  return [
    guard,
    auditIfChanged(
      db,
      write.audit.actor,
      write.audit.action,
      "experiment",
      experimentId,
      write.projectId,
      write.audit.details,
    ),
    db
      .prepare(
        `DELETE FROM schedule_steps WHERE experiment_id = ? AND environment_id = ? AND status = 'pending' AND at > ? AND ${landed}`,
      )
      .bind(experimentId, environmentId, now, experimentId, environmentId, writeId),
    ...write.steps.map((step) =>
      db
        .prepare(
          `INSERT INTO schedule_steps (id, experiment_id, environment_id, position, at, action, percent_bp, status, written_by_role, created_at)
           SELECT ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ? WHERE ${landed}`,
        )
        .bind(
          step.id,
          experimentId,
          environmentId,
          step.position,
          step.at,
          step.action,
          step.percent_bp,
          step.written_by_role,
          now,
          experimentId,
          environmentId,
          writeId,
        ),
    ),
  ];
}

/**
 * Steps still `running` that a run claimed before `before`: that run ended without finishing
 * them (the isolate was stopped). They are not applied again (it may have happened).
 */
export function listStaleSteps(db: D1Database, before: string): Promise<DueStepRow[]> {
  return all<DueStepRow>(
    db,
    `SELECT s.*, e.project_id, e.key AS experiment_key, en.key AS environment_key
     FROM schedule_steps AS s
     JOIN experiments AS e ON e.id = s.experiment_id
     JOIN environments AS en ON en.id = s.environment_id
     WHERE s.status = 'running' AND s.claimed_at < ?
     ORDER BY s.at, s.position`,
    before,
  );
}

/** Pending steps whose time has come (`at ≤ now`), in time order, at most `limit`. */
export function listDueSteps(db: D1Database, now: string, limit: number): Promise<DueStepRow[]> {
  return all<DueStepRow>(
    db,
    `SELECT s.*, e.project_id, e.key AS experiment_key, en.key AS environment_key
     FROM schedule_steps AS s
     JOIN experiments AS e ON e.id = s.experiment_id
     JOIN environments AS en ON en.id = s.environment_id
     WHERE s.status = 'pending' AND s.at <= ?
     ORDER BY s.at, s.experiment_id, s.environment_id, s.position
     LIMIT ?`,
    now,
    limit,
  );
}

/**
 * Claims a pending step for this run: true when this run won it. Refused also while an earlier
 * step of the same schedule is pending or running, so that two overlapping runs never apply one
 * schedule's steps out of order (the later one waits for a later run).
 */
export async function claimStep(
  db: D1Database,
  step: ScheduleStepRow,
  now: string,
): Promise<boolean> {
  const result = await db
    .prepare(
      `UPDATE schedule_steps SET status = 'running', claimed_at = ?
       WHERE id = ? AND status = 'pending'
       AND NOT EXISTS (
         SELECT 1 FROM schedule_steps AS p
         WHERE p.experiment_id = ? AND p.environment_id = ? AND p.id <> ?
         AND p.status IN ('pending', 'running') AND (p.at < ? OR (p.at = ? AND p.position < ?)))`,
    )
    .bind(
      now,
      step.id,
      step.experiment_id,
      step.environment_id,
      step.id,
      step.at,
      step.at,
      step.position,
    )
    .run();
  return (result.meta.changes ?? 0) > 0;
}

/** How a run finished a step. */
export interface StepOutcome {
  status: "done" | "failed" | "skipped";
  appliedAt: string;
  revision: number | null;
  error: string | null;
}

/**
 * Records a claimed step's outcome and, in the same transaction, its audit entry
 * (`schedule.step` by `actor`, with the step's details) — only when the step was still running.
 */
export async function finishStep(
  db: D1Database,
  step: DueStepRow,
  outcome: StepOutcome,
  actor: Actor,
): Promise<void> {
  await db.batch([
    db
      .prepare(
        `UPDATE schedule_steps SET status = ?, applied_at = ?, revision = ?, error = ?
         WHERE id = ? AND status = 'running'`,
      )
      .bind(outcome.status, outcome.appliedAt, outcome.revision, outcome.error, step.id),
    auditIfChanged(db, actor, "schedule.step", "experiment", step.experiment_id, step.project_id, {
      environment: step.environment_key,
      stepId: step.id,
      at: step.at,
      action: step.action,
      ...(step.percent_bp === null ? {} : { percent: step.percent_bp / 100 }),
      status: outcome.status,
      revision: outcome.revision,
      error: outcome.error,
    }),
  ]);
}
