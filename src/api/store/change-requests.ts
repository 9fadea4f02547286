/**
 * The `change_requests` table (migrations/0017_change_requests.sql; docs/approvals.md): pending
 * changes to live experiments in review-required environments, and how they were decided. The
 * decision is a guarded status update (`WHERE status = 'pending'`), so two reviewers deciding
 * at once decide once.
 */
import type { Actor } from "../context";
import { all, first } from "./db";
import type { ChangeRequestRow, ChangeRequestStatus } from "./rows";
import { insertStatement } from "./sql";

/** The INSERT of a new request. */
export function insertChangeRequest(db: D1Database, row: ChangeRequestRow): D1PreparedStatement {
  return insertStatement(db, "change_requests", row);
}

/** One request, or null. */
export async function findChangeRequest(
  db: D1Database,
  id: string,
): Promise<ChangeRequestRow | null> {
  return first<ChangeRequestRow>(db, "SELECT * FROM change_requests WHERE id = ?", id);
}

/** Where a page of requests ends: the last request's `created_at` and `id`. */
export interface ChangeRequestPosition {
  createdAt: string;
  id: string;
}

/**
 * A page of the project's requests, newest first (LIMIT `limit + 1`, after the position `after`;
 * ties of `created_at` by id), all or those with `status` and/or of one experiment.
 */
export async function listChangeRequests(
  db: D1Database,
  projectId: string,
  filter: { status: ChangeRequestStatus | null; experimentId?: string | null },
  page: { limit: number; after: ChangeRequestPosition | null },
): Promise<ChangeRequestRow[]> {
  // Only the filters given, written out, so SQLite can use the indexes (migrations/0021_…sql):
  // `(? IS NULL OR status = ?)` would hide the column from the planner.
  const where = ["project_id = ?"];
  const values: Array<string | number> = [projectId];
  if (filter.status !== null) {
    where.push("status = ?");
    values.push(filter.status);
  }
  if (filter.experimentId != null) {
    where.push("experiment_id = ?");
    values.push(filter.experimentId);
  }
  if (page.after !== null) {
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    values.push(page.after.createdAt, page.after.createdAt, page.after.id);
  }
  return all<ChangeRequestRow>(
    db,
    `SELECT * FROM change_requests WHERE ${where.join(" AND ")}
     ORDER BY created_at DESC, id DESC LIMIT ?`,
    ...values,
    page.limit + 1,
  );
}

/** The pending requests of one experiment, oldest first. */
export async function pendingRequestsOf(
  db: D1Database,
  experimentId: string,
): Promise<ChangeRequestRow[]> {
  return all<ChangeRequestRow>(
    db,
    "SELECT * FROM change_requests WHERE experiment_id = ? AND status = 'pending' ORDER BY created_at, id",
    experimentId,
  );
}

/**
 * Whether the change of request `id` is in place on experiment `experimentId`: its audit entry
 * (`changeRequest` in the details) is written in the change's batch and deleted by its undo.
 */
export async function isChangeRequestApplied(
  db: D1Database,
  experimentId: string,
  id: string,
): Promise<boolean> {
  const row = await db
    .prepare(
      "SELECT 1 AS hit FROM audit_log WHERE resource_type = 'experiment' AND resource_id = ? AND json_extract(details, '$.changeRequest') = ? LIMIT 1",
    )
    .bind(experimentId, id)
    .first<{ hit: number }>();
  return row !== null;
}

/**
 * The guarded decision: `pending` → `status`, only while still pending (no row changed = someone
 * decided first). Batch `auditIfChanged` right after it.
 */
export function decideStatement(
  db: D1Database,
  id: string,
  status: Exclude<ChangeRequestStatus, "pending">,
  actor: Actor,
  at: string,
  comment: string | null,
): D1PreparedStatement {
  return db
    .prepare(
      "UPDATE change_requests SET status = ?, decided_by = ?, decided_by_name = ?, decided_at = ?, comment = ? WHERE id = ? AND status = 'pending'",
    )
    .bind(status, actor.id, actor.name, at, comment, id);
}

/** Undoes an approval whose change could not be applied: back to pending. */
export function reopenStatement(
  db: D1Database,
  id: string,
  actor: Actor,
  at: string,
): D1PreparedStatement {
  return db
    .prepare(
      "UPDATE change_requests SET status = 'pending', decided_by = NULL, decided_by_name = NULL, decided_at = NULL, comment = NULL WHERE id = ? AND status = 'approved' AND decided_by = ? AND decided_at = ?",
    )
    .bind(id, actor.id, at);
}

/**
 * The keys of the review-required environments where the experiment is live (Running or
 * Paused) or has a scheduled start or resume still to run (docs/schedules.md: the schedule would
 * start whatever it is by then), by key: an editor's update of it waits for review when there is
 * one.
 */
export async function liveReviewEnvironments(
  db: D1Database,
  experimentId: string,
): Promise<string[]> {
  const rows = await all<{ key: string }>(
    db,
    `SELECT e.key FROM experiment_status s JOIN environments e ON e.id = s.environment_id
     WHERE s.experiment_id = ? AND e.require_review = 1 AND s.status IN ('Running', 'Paused')
     UNION
     SELECT e.key FROM schedule_steps t JOIN environments e ON e.id = t.environment_id
     WHERE t.experiment_id = ? AND e.require_review = 1 AND t.status IN ('pending', 'running')
       AND t.action IN ('start', 'resume')
     ORDER BY 1`,
    experimentId,
    experimentId,
  );
  return rows.map((r) => r.key);
}

/**
 * The first of `experimentIds` live (Running or Paused) in a review-required environment, with
 * that environment's key; null when none is.
 */
export async function firstLiveUnderReview(
  db: D1Database,
  experimentIds: readonly string[],
): Promise<{ experiment_key: string; environment_key: string } | null> {
  if (experimentIds.length === 0) return null;
  return first<{ experiment_key: string; environment_key: string }>(
    db,
    `SELECT x.key AS experiment_key, e.key AS environment_key
       FROM experiment_status s
       JOIN environments e ON e.id = s.environment_id
       JOIN experiments x ON x.id = s.experiment_id
      WHERE s.experiment_id IN (SELECT value FROM json_each(?))
        AND e.require_review = 1 AND s.status IN ('Running', 'Paused')
      ORDER BY x.key, e.key LIMIT 1`,
    JSON.stringify(experimentIds),
  );
}

/** Whether any environment of the project requires review. */
export async function projectRequiresReview(db: D1Database, projectId: string): Promise<boolean> {
  return (
    (await first<{ one: number }>(
      db,
      "SELECT 1 AS one FROM environments WHERE project_id = ? AND require_review = 1 LIMIT 1",
      projectId,
    )) !== null
  );
}
