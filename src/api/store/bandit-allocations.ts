/**
 * The bandit's D1 rows (migrations/0004_bandit.sql, docs/bandits.md): the `bandit_allocations`
 * history — re-allocations, verdict changes, skipped rounds, served winners — and the
 * experiment reads and writes of a round (the candidates, the guarded weight update).
 */
import { all, first } from "./db";
import type { ExperimentRow } from "./rows";

/**
 * Why a history row was recorded (docs/bandits.md). The API's list of them is ALLOCATION_REASONS
 * in src/api/schemas/bandit-allocations.ts (schemas do not import the store); the service that
 * presents the rows checks at compile time that the two agree.
 */
export type AllocationReason =
  "warming_up" | "thompson" | "winner" | "skipped" | "invalid_counts" | "winner_served";

/** A `bandit_allocations` row (migrations/0004_bandit.sql). */
export interface BanditAllocationRow {
  id: number;
  experiment_id: string;
  environment_id: string;
  created_at: string;
  round: number;
  reason: AllocationReason;
  weights: string;
  previous_weights: string;
  probability_best: string;
  winner: string | null;
  visitors: string;
  conversions: string;
  applied: number;
  revision: number | null;
  actor: string;
  message: string | null;
}

/** The columns of a new row (`id` is assigned by D1). */
export type NewAllocationRow = Omit<BanditAllocationRow, "id">;

/** Rows returned by the history (the newest ones when there are more). */
export const MAX_ALLOCATION_ROWS = 2000;

/** The experiment's history, oldest first (at most MAX_ALLOCATION_ROWS, the newest). */
export async function listAllocations(
  db: D1Database,
  experimentId: string,
): Promise<BanditAllocationRow[]> {
  const rows = await all<BanditAllocationRow>(
    db,
    "SELECT * FROM bandit_allocations WHERE experiment_id = ? ORDER BY id DESC LIMIT ?",
    experimentId,
    MAX_ALLOCATION_ROWS,
  );
  return rows.reverse();
}

/** The experiment's last row and how many it has (its next round is `count + 1`). */
export async function findAllocationHistory(
  db: D1Database,
  experimentId: string,
): Promise<{ last: BanditAllocationRow | null; count: number }> {
  const [last, count] = await Promise.all([
    first<BanditAllocationRow>(
      db,
      "SELECT * FROM bandit_allocations WHERE experiment_id = ? ORDER BY id DESC LIMIT 1",
      experimentId,
    ),
    countAllocations(db, experimentId),
  ]);
  return { last, count };
}

/** How many history rows the experiment has. */
export async function countAllocations(db: D1Database, experimentId: string): Promise<number> {
  const row = await first<{ n: number }>(
    db,
    "SELECT COUNT(*) AS n FROM bandit_allocations WHERE experiment_id = ?",
    experimentId,
  );
  return row?.n ?? 0;
}

/** The weights an applied row published: what the SRM check of the results follows. */
export type AppliedAllocation = Pick<
  BanditAllocationRow,
  "environment_id" | "revision" | "weights" | "previous_weights"
>;

/** The experiment's applied rows (written and published weights), oldest first. */
export async function listAppliedAllocations(
  db: D1Database,
  experimentId: string,
): Promise<AppliedAllocation[]> {
  return all<AppliedAllocation>(
    db,
    "SELECT environment_id, revision, weights, previous_weights FROM bandit_allocations WHERE experiment_id = ? AND applied = 1 ORDER BY id",
    experimentId,
  );
}

/** The bandit's latest verdict row (warming_up, thompson or winner), or null. */
export async function findLatestVerdict(
  db: D1Database,
  experimentId: string,
): Promise<Pick<BanditAllocationRow, "reason" | "winner"> | null> {
  return first<Pick<BanditAllocationRow, "reason" | "winner">>(
    db,
    `SELECT reason, winner FROM bandit_allocations
      WHERE experiment_id = ? AND reason IN ('warming_up', 'thompson', 'winner')
      ORDER BY id DESC LIMIT 1`,
    experimentId,
  );
}

/** INSERT of one history row. */
export function insertAllocation(db: D1Database, row: NewAllocationRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO bandit_allocations (experiment_id, environment_id, created_at, round, reason, weights,
         previous_weights, probability_best, winner, visitors, conversions, applied, revision, actor, message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      row.experiment_id,
      row.environment_id,
      row.created_at,
      row.round,
      row.reason,
      row.weights,
      row.previous_weights,
      row.probability_best,
      row.winner,
      row.visitors,
      row.conversions,
      row.applied,
      row.revision,
      row.actor,
      row.message,
    );
}

/** The `winner_served` row of a serve-winner write (POST /experiments/{id}/serve-winner). */
export interface WinnerServedRow {
  experimentId: string;
  environmentId: string;
  createdAt: string;
  round: number;
  weights: Record<string, number>;
  previousWeights: Record<string, number>;
  winner: string;
  actor: string;
  /** The experiment's version and `updated_at` after the guarded write this row goes with. */
  version: number;
}

/**
 * INSERT of a `winner_served` row, only when the guarded experiment update of the same batch
 * landed (the experiment has that version and `updated_at = createdAt`).
 */
export function insertWinnerServed(db: D1Database, row: WinnerServedRow): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO bandit_allocations (experiment_id, environment_id, created_at, round, reason, weights,
         previous_weights, probability_best, winner, visitors, conversions, applied, revision, actor, message)
       SELECT ?, ?, ?, ?, 'winner_served', ?, ?, '{}', ?, '{}', '{}', 1, NULL, ?, NULL
        WHERE EXISTS (SELECT 1 FROM experiments WHERE id = ? AND version = ? AND updated_at = ?)`,
    )
    .bind(
      row.experimentId,
      row.environmentId,
      row.createdAt,
      row.round,
      JSON.stringify(row.weights),
      JSON.stringify(row.previousWeights),
      row.winner,
      row.actor,
      row.experimentId,
      row.version,
      row.createdAt,
    );
}

/** DELETE of the `winner_served` row written at `createdAt` (the undo of a failed publish). */
export function deleteWinnerServed(
  db: D1Database,
  experimentId: string,
  createdAt: string,
): D1PreparedStatement {
  return db
    .prepare(
      "DELETE FROM bandit_allocations WHERE experiment_id = ? AND reason = 'winner_served' AND created_at = ?",
    )
    .bind(experimentId, createdAt);
}

/** Records the revision that published the `winner_served` row written at `createdAt`. */
export async function updateWinnerServedRevision(
  db: D1Database,
  experimentId: string,
  createdAt: string,
  revision: number,
): Promise<void> {
  await db
    .prepare(
      "UPDATE bandit_allocations SET revision = ? WHERE experiment_id = ? AND reason = 'winner_served' AND created_at = ?",
    )
    .bind(revision, experimentId, createdAt)
    .run();
}

/** The environment a project's history rows name: production, else the first by key. */
export async function findAllocationEnvironment(
  db: D1Database,
  projectId: string,
): Promise<{ id: string } | null> {
  return first<{ id: string }>(
    db,
    "SELECT id FROM environments WHERE project_id = ? ORDER BY key <> 'production', key LIMIT 1",
    projectId,
  );
}

/** A bandit experiment with the id of the environment its round runs in. */
export interface BanditCandidate extends ExperimentRow {
  bandit_environment_id: string;
}

/**
 * Every experiment with allocation policy `bandit`, not archived and `Running` in its project's
 * environment `environmentKey`, by project, then creation.
 */
export async function listBanditCandidates(
  db: D1Database,
  environmentKey: string,
): Promise<BanditCandidate[]> {
  return all<BanditCandidate>(
    db,
    `SELECT x.*, e.id AS bandit_environment_id
       FROM experiments x
       JOIN environments e ON e.project_id = x.project_id AND e.key = ?
       JOIN experiment_status s ON s.experiment_id = x.id AND s.environment_id = e.id
      WHERE x.allocation_policy = 'bandit' AND x.archived = 0 AND s.status = 'Running'
      ORDER BY x.project_id, x.created_at, x.id`,
    environmentKey,
  );
}

/**
 * UPDATE of an experiment's variations (new weights), guarded by its version and by the policy
 * still being `bandit` (a change in between makes it change no row).
 */
export function updateBanditWeights(
  db: D1Database,
  experiment: Pick<ExperimentRow, "id" | "version">,
  variationsJson: string,
  at: string,
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE experiments SET variations = ?, version = version + 1, updated_at = ?
        WHERE id = ? AND version = ? AND allocation_policy = 'bandit'`,
    )
    .bind(variationsJson, at, experiment.id, experiment.version);
}

/** DELETE of one audit entry (the undo of a re-allocation whose publish failed). */
export function deleteAuditEntry(db: D1Database, auditId: number): D1PreparedStatement {
  return db.prepare("DELETE FROM audit_log WHERE id = ?").bind(auditId);
}
