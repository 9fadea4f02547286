/**
 * The D1 queries and statements of experiments (migrations/0001_management.sql): their statuses
 * per environment (`experiment_status`), what an experiment may reference in its project (pages,
 * events, audiences, its group), the group allocation an experiment leaves, and the undo of a
 * headline test's inserts. The rules around them live in src/api/services/experiment-plan.ts,
 * experiment-lifecycle.ts and headline-test.ts.
 */
import { all, first } from "./db";
import type {
  EnvironmentRow,
  EventRow,
  ExperimentRow,
  ExperimentStatusRow,
  ExperimentStatusValue,
  FlagRow,
  GroupRow,
  PageRow,
} from "./rows";
import { parseJson, requireRow } from "./sql";

/** The experiment with `id`, or a 404 `not_found` ApiError. */
export async function requireExperiment(db: D1Database, id: string): Promise<ExperimentRow> {
  return requireRow<ExperimentRow>(db, "experiments", "experiment", id);
}

/** experiment id → {environment key → status}; `Not started` where no status row exists. */
export type ExperimentStatuses = Map<string, Record<string, ExperimentStatusValue>>;

/**
 * The statuses of every experiment of a project in every environment of it, or of one
 * experiment when `experimentId` is given.
 */
export async function listExperimentStatuses(
  db: D1Database,
  projectId: string,
  experimentId?: string,
): Promise<ExperimentStatuses> {
  const rows = await all<{
    experiment_id: string;
    environment_key: string;
    status: ExperimentStatusValue;
  }>(
    db,
    `SELECT x.id AS experiment_id, e.key AS environment_key, COALESCE(s.status, 'Not started') AS status
       FROM experiments x
       JOIN environments e ON e.project_id = x.project_id
       LEFT JOIN experiment_status s ON s.experiment_id = x.id AND s.environment_id = e.id
      WHERE x.project_id = ?${experimentId ? " AND x.id = ?" : ""}`,
    ...(experimentId ? [projectId, experimentId] : [projectId]),
  );
  const out: ExperimentStatuses = new Map();
  for (const row of rows) {
    let map = out.get(row.experiment_id);
    if (!map) out.set(row.experiment_id, (map = {}));
    map[row.environment_key] = row.status;
  }
  return out;
}

/** The ids of a project's rows in `table` (pages, events, audiences: what experiments reference). */
export async function listProjectIds(
  db: D1Database,
  table: "pages" | "events" | "audiences",
  projectId: string,
): Promise<string[]> {
  const rows = await all<{ id: string }>(
    db,
    `SELECT id FROM ${table} WHERE project_id = ?`,
    projectId,
  );
  return rows.map((r) => r.id);
}

/** Every page of a project with its activation (which pages the edge applies changes on). */
export async function listPageActivations(
  db: D1Database,
  projectId: string,
): Promise<Array<{ id: string; key: string; activation: string }>> {
  return all<{ id: string; key: string; activation: string }>(
    db,
    "SELECT id, key, activation FROM pages WHERE project_id = ?",
    projectId,
  );
}

/** The page `pageId` of a project, when it exists. */
export async function findProjectPage(
  db: D1Database,
  projectId: string,
  pageId: string,
): Promise<PageRow | null> {
  return first<PageRow>(
    db,
    "SELECT * FROM pages WHERE id = ? AND project_id = ?",
    pageId,
    projectId,
  );
}

/** The event `eventId` of a project, when it exists. */
export async function findProjectEvent(
  db: D1Database,
  projectId: string,
  eventId: string,
): Promise<EventRow | null> {
  return first<EventRow>(
    db,
    "SELECT * FROM events WHERE id = ? AND project_id = ?",
    eventId,
    projectId,
  );
}

/** The oldest unarchived click event of a project on `pageId` and `selector`, when there is one. */
export async function findClickEvent(
  db: D1Database,
  projectId: string,
  pageId: string,
  selector: string,
): Promise<EventRow | null> {
  return first<EventRow>(
    db,
    "SELECT * FROM events WHERE project_id = ? AND type = 'click' AND page_id = ? AND selector = ? AND archived = 0 ORDER BY created_at, id LIMIT 1",
    projectId,
    pageId,
    selector,
  );
}

/** The group `groupId`, when it exists (in `projectId`, when given). */
export async function findGroup(
  db: D1Database,
  groupId: string,
  projectId?: string,
): Promise<GroupRow | null> {
  return projectId === undefined
    ? first<GroupRow>(db, "SELECT * FROM groups WHERE id = ?", groupId)
    : first<GroupRow>(
        db,
        "SELECT * FROM groups WHERE id = ? AND project_id = ?",
        groupId,
        projectId,
      );
}

/** The feature flag `flagId` of `projectId`, when it exists. */
export async function findFlag(
  db: D1Database,
  flagId: string,
  projectId: string,
): Promise<FlagRow | null> {
  return first<FlagRow>(
    db,
    "SELECT * FROM flags WHERE id = ? AND project_id = ?",
    flagId,
    projectId,
  );
}

/** Keys of the delivery rules of the project's flags, in any environment. */
export async function listDeliveryRuleKeys(
  db: D1Database,
  projectId: string,
): Promise<ReadonlySet<string>> {
  const rows = await all<Pick<FlagRow, "environments">>(
    db,
    "SELECT environments FROM flags WHERE project_id = ?",
    projectId,
  );
  const keys = new Set<string>();
  for (const row of rows)
    for (const settings of Object.values(
      parseJson<Record<string, { rules?: Array<{ key?: unknown }> }>>(row.environments, {}),
    ))
      for (const rule of settings.rules ?? []) if (typeof rule.key === "string") keys.add(rule.key);
  return keys;
}

/**
 * The write of a group's new `allocation` (JSON text), guarded by the version read and applied
 * only when `condition` (SQL over `params`) holds, so it lands exactly with the write it belongs
 * to.
 */
export function groupAllocationStatement(
  db: D1Database,
  group: GroupRow,
  allocation: string,
  now: string,
  condition: { sql: string; params: unknown[] },
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE groups SET allocation = ?, version = version + 1, updated_at = ? WHERE id = ? AND version = ? AND ${condition.sql}`,
    )
    .bind(allocation, now, group.id, group.version, ...condition.params);
}

/** The environment of a project with key `key`. */
export async function findEnvironmentByKey(
  db: D1Database,
  projectId: string,
  key: string,
): Promise<Pick<EnvironmentRow, "id" | "key" | "require_review"> | null> {
  return first<Pick<EnvironmentRow, "id" | "key" | "require_review">>(
    db,
    "SELECT id, key, require_review FROM environments WHERE project_id = ? AND key = ?",
    projectId,
    key,
  );
}

/** The status row of an experiment in one environment (none = never set: `Not started`). */
export async function findExperimentStatus(
  db: D1Database,
  experimentId: string,
  environmentId: string,
): Promise<Pick<ExperimentStatusRow, "status" | "updated_at"> | null> {
  return first<Pick<ExperimentStatusRow, "status" | "updated_at">>(
    db,
    "SELECT status, updated_at FROM experiment_status WHERE experiment_id = ? AND environment_id = ?",
    experimentId,
    environmentId,
  );
}

/** Every status row of an experiment. */
export async function listExperimentStatusRows(
  db: D1Database,
  experimentId: string,
): Promise<ExperimentStatusRow[]> {
  return all<ExperimentStatusRow>(
    db,
    "SELECT experiment_id, environment_id, status, updated_at FROM experiment_status WHERE experiment_id = ?",
    experimentId,
  );
}

/** The keys of the environments an experiment is Running in. */
export async function listRunningEnvironmentKeys(
  db: D1Database,
  experimentId: string,
): Promise<string[]> {
  const rows = await all<{ key: string }>(
    db,
    `SELECT e.key FROM experiment_status s JOIN environments e ON e.id = s.environment_id
      WHERE s.experiment_id = ? AND s.status = 'Running'`,
    experimentId,
  );
  return rows.map((r) => r.key);
}

/**
 * The status rows of a new experiment in every environment of its project: `Not started`, or
 * `Running` in the environment `runningIn` names.
 */
export function initialStatusesStatement(
  db: D1Database,
  experimentId: string,
  projectId: string,
  now: string,
  runningIn: string | null = null,
): D1PreparedStatement {
  return runningIn === null
    ? db
        .prepare(
          "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT ?, id, 'Not started', ? FROM environments WHERE project_id = ?",
        )
        .bind(experimentId, now, projectId)
    : db
        .prepare(
          "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT ?, id, CASE WHEN key = ? THEN 'Running' ELSE 'Not started' END, ? FROM environments WHERE project_id = ?",
        )
        .bind(experimentId, runningIn, now, projectId);
}

/** Inserts a status row unless one exists (`INSERT OR IGNORE`). */
export function insertStatusStatement(
  db: D1Database,
  row: ExperimentStatusRow,
): D1PreparedStatement {
  return db
    .prepare(
      "INSERT OR IGNORE INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, ?, ?)",
    )
    .bind(row.experiment_id, row.environment_id, row.status, row.updated_at);
}

/**
 * The status change `from` → `to` of an experiment in one environment; changes no row unless
 * the status is still `from` (the guard of a transition).
 */
export function statusTransitionStatement(
  db: D1Database,
  experimentId: string,
  environmentId: string,
  transition: {
    from: ExperimentStatusValue;
    to: ExperimentStatusValue;
    updatedAt: string;
    /** Also only while the experiment is at this version (an If-Match, an approval's base). */
    version?: number;
  },
): D1PreparedStatement {
  const versioned = transition.version !== undefined;
  return db
    .prepare(
      `UPDATE experiment_status SET status = ?, updated_at = ? WHERE experiment_id = ? AND environment_id = ? AND status = ?${versioned ? " AND EXISTS (SELECT 1 FROM experiments WHERE id = ? AND version = ?)" : ""}`,
    )
    .bind(
      transition.to,
      transition.updatedAt,
      experimentId,
      environmentId,
      transition.from,
      ...(versioned ? [experimentId, transition.version] : []),
    );
}

/**
 * After a status change to `status` at `now` in one environment: bumps the experiment's version
 * (its ETag moves with the status) and sets `archived` (= archived in every environment). Only
 * when that status change landed.
 */
export function statusChangedStatement(
  db: D1Database,
  experimentId: string,
  environmentId: string,
  status: ExperimentStatusValue,
  now: string,
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE experiments SET version = version + 1, updated_at = ?,
         archived = CASE WHEN EXISTS (
           SELECT 1 FROM environments e
             LEFT JOIN experiment_status s ON s.experiment_id = experiments.id AND s.environment_id = e.id
            WHERE e.project_id = experiments.project_id AND COALESCE(s.status, 'Not started') <> 'Archived'
         ) THEN 0 ELSE 1 END
       WHERE id = ? AND EXISTS (
         SELECT 1 FROM experiment_status
          WHERE experiment_id = ? AND environment_id = ? AND status = ? AND updated_at = ?)`,
    )
    .bind(now, experimentId, experimentId, environmentId, status, now);
}

/** Deletes the row `id` of `table` (the undo of its insert; what references it cascades). */
export function deleteRowStatement(
  db: D1Database,
  table: "experiments" | "events" | "pages",
  id: string,
): D1PreparedStatement {
  return db.prepare(`DELETE FROM ${table} WHERE id = ?`).bind(id);
}

/** Deletes the audit entries of the resources `resourceIds` of a project (the undo of their creation). */
export function deleteAuditEntriesStatement(
  db: D1Database,
  projectId: string,
  resourceIds: readonly string[],
): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM audit_log WHERE project_id = ? AND resource_id IN (${resourceIds.map(() => "?").join(", ")})`,
    )
    .bind(projectId, ...resourceIds);
}
