/**
 * `POST /environments/{id}/datafile/import` (docs/api.md "Importing a datafile"): a datafile
 * becomes the project's management records (src/api/services/datafile-import.ts plans it), in one
 * all-or-nothing D1 batch with one audit entry, then every environment of the project publishes
 * from the records — the write cycle of every other change (src/api/services/write-and-publish.ts)
 * — and webhooks are told the experiments it created (emitImportEvents).
 *
 * All or nothing: each changed row is guarded by the version the plan read, and a guard that
 * fails raises an SQL error, which rolls the whole batch back (D1 runs a batch as one
 * transaction). A plain `WHERE version = ?` would only skip that row and keep the rest.
 */
import type { Datafile } from "../../core/datafile-types";
import { parseDatafile } from "../../core/datafile-parse";
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError, conflict, forbidden, notFound } from "../errors";
import { nowIso } from "../ids";
import { auditStatement } from "../store/audit";
import { all } from "../store/db";
import type { EnvironmentRow, ExperimentRow } from "../store/rows";
import { insertStatement, updateStatement } from "../store/sql";
import { requireActorRole } from "./auth";
import { reviewApplies } from "./review";
import { projectRequiresReview } from "../store/change-requests";
import {
  IMPORT_TABLES,
  planDatafileImport,
  type ExistingRows,
  type ImportRows,
  type ImportItem,
  type ImportTable,
  type ImportPlan,
  type ImportProblem,
  type ImportStatus,
} from "./datafile-import";
import { storedListMembers, type PublishResult } from "./publish";
import type { WebhookEventType } from "../schemas/webhooks";
import { emitWebhookEvents, type WebhookEvent } from "./webhook-events";
import { writeAndPublish } from "./write-and-publish";

/** What an import did, or would do with `dryRun`. */
export interface ImportSummary {
  environmentId: string;
  projectId: string;
  dryRun: boolean;
  /** Per table: the keys (or names) created, changed and left as they were. */
  changes: Record<
    string,
    { created: string[]; updated: Array<{ key: string; columns: string[] }>; unchanged: number }
  >;
  /** Experiment statuses set in the environment (only those that change). */
  statuses: Array<{ experimentId: string; from: string; to: string }>;
  /** Warnings of the import (errors refuse it with 422). */
  warnings: ImportProblem[];
  /** Empty on a dry run or when nothing changed. */
  published: PublishResult[];
  /**
   * Other environments of a project without records that serve a datafile published without
   * them: the import replaces those (refused unless `replaceOtherEnvironments`).
   */
  replacesEnvironments?: Array<{ environmentId: string; environmentKey: string; revision: number }>;
}

/** The guard error's text: a stale row aborts the batch with it (see the module comment). */
const STALE = "splitstream-import-stale";

function guardStatement(db: D1Database, table: string, id: string, version: number) {
  // json('…') of a non-JSON string raises "malformed JSON"; CASE evaluates it only when stale.
  return db
    .prepare(
      `SELECT CASE WHEN (SELECT version FROM ${table} WHERE id = ?) IS ? THEN 1 ELSE json(?) END`,
    )
    .bind(id, version, STALE);
}

/** 422 `datafile_invalid` naming the first error; details: every problem with its path. */
function invalidImport(what: string, problems: readonly ImportProblem[]): ApiError {
  const errors = problems.filter((p) => p.severity === "error");
  const first = errors[0];
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : "";
  return new ApiError(
    422,
    "datafile_invalid",
    first ? `${what}: ${first.path}: ${first.message}${more}` : what,
    { problems: problems.map(({ path, message, severity }) => ({ path, message, severity })) },
  );
}

/** The ids `datafile` would create that records of other projects already have, per table. */
async function idsOfOtherProjects(
  db: D1Database,
  projectId: string,
  datafile: Datafile,
): Promise<Partial<Record<ImportTable, ReadonlySet<string>>>> {
  const web = datafile.web;
  const wanted: Record<ImportTable, string[]> = {
    attributes: datafile.attributes.map((a) => a.id),
    lists: (web?.lists ?? []).map((l) => l.id),
    audiences: [...(datafile.typedAudiences ?? []), ...datafile.audiences].map((a) => a.id),
    pages: (web?.pages ?? []).map((p) => p.id),
    events: datafile.events.map((e) => e.id),
    groups: datafile.groups.map((g) => g.id),
    flags: datafile.featureFlags.map((f) => f.id),
    experiments: [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)].map(
      (x) => x.id,
    ),
  };
  const out: Partial<Record<ImportTable, ReadonlySet<string>>> = {};
  // One query per table, the ids as one JSON parameter (D1 binds at most 100 parameters).
  const queries = IMPORT_TABLES.map(async (table) => {
    const ids = [...new Set(wanted[table])];
    if (ids.length === 0) return;
    const rows = await all<{ id: string }>(
      db,
      `SELECT id FROM ${table} WHERE project_id <> ? AND id IN (SELECT value FROM json_each(?))`,
      projectId,
      JSON.stringify(ids),
    );
    if (rows.length > 0) out[table] = new Set(rows.map((r) => r.id));
  });
  await Promise.all(queries);
  return out;
}

/** Rows of the project in every imported table. */
async function existingRows(db: D1Database, projectId: string): Promise<ExistingRows> {
  const rowsOf = <T extends ImportTable>(table: T) =>
    all<ImportRows[T]>(db, `SELECT * FROM ${table} WHERE project_id = ?`, projectId);
  const [attributes, lists, audiences, pages, events, groups, flags, experiments] =
    await Promise.all([
      rowsOf("attributes"),
      rowsOf("lists"),
      rowsOf("audiences"),
      rowsOf("pages"),
      rowsOf("events"),
      rowsOf("groups"),
      rowsOf("flags"),
      rowsOf("experiments"),
    ]);
  return { attributes, lists, audiences, pages, events, groups, flags, experiments };
}

function summaryOf(
  environment: EnvironmentRow,
  plan: ImportPlan,
  dryRun: boolean,
  published: PublishResult[],
): ImportSummary {
  const changes: ImportSummary["changes"] = {};
  for (const table of IMPORT_TABLES) changes[table] = { created: [], updated: [], unchanged: 0 };
  for (const item of plan.items) {
    const entry = changes[item.table]!;
    if (item.action === "create") entry.created.push(item.label);
    else if (item.action === "update")
      entry.updated.push({ key: item.label, columns: item.changedColumns ?? [] });
    else entry.unchanged++;
  }
  return {
    environmentId: environment.id,
    projectId: environment.project_id,
    dryRun,
    changes,
    statuses: plan.statuses
      .filter((s) => s.status !== s.current)
      .map((s) => ({ experimentId: s.experimentId, from: s.current, to: s.status })),
    warnings: plan.problems.filter((p) => p.severity === "warning"),
    published,
  };
}

/**
 * Imports `supplied` (an Optimizely v4 datafile with the `web` section) into the records of the
 * environment's project and sets its experiments' statuses in that environment. Role editor.
 * 422 `datafile_invalid` for a datafile that does not validate or cannot be imported exactly
 * (each problem with its path); 409 when the records changed while importing.
 */
export async function importDatafile(
  env: Env,
  actor: Actor,
  environmentId: string,
  supplied: unknown,
  options: { dryRun: boolean; replaceOtherEnvironments?: boolean },
): Promise<ImportSummary> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const environment = await db
    .prepare("SELECT * FROM environments WHERE id = ?")
    .bind(environmentId)
    .first<EnvironmentRow>();
  if (!environment) throw notFound("environment", environmentId);

  const parsed = parseDatafile(supplied);
  if (!parsed.ok) {
    throw invalidImport("the datafile is invalid, nothing was imported", parsed.problems);
  }
  const datafile: Datafile = parsed.datafile;
  const projectId = environment.project_id;
  const [existing, statusRows, listMembers] = await Promise.all([
    existingRows(db, projectId),
    all<{ experiment_id: string; status: string }>(
      db,
      "SELECT experiment_id, status FROM experiment_status WHERE environment_id = ?",
      environmentId,
    ),
    storedListMembers(env, environment, environment.revision),
  ]);
  const now = nowIso();
  const takenElsewhere = await idsOfOtherProjects(db, projectId, datafile);
  const plan = planDatafileImport(datafile, existing, {
    takenElsewhere,
    projectId,
    environmentId,
    now,
    currentStatuses: new Map(statusRows.map((s) => [s.experiment_id, s.status])),
    listMembers,
  });
  if (!plan.ok) {
    throw invalidImport("the datafile cannot be imported, nothing was imported", plan.problems);
  }
  const changing = plan.items.filter((i) => i.action !== "unchanged");
  const statusChanges = plan.statuses.filter((s) => s.status !== s.current);

  // Every environment of a project publishes from its records. A project without records whose
  // other environments serve pushed datafiles would have those replaced by this import's
  // records (with their experiments Not started there): refused unless asked for.
  const hadRecords = IMPORT_TABLES.some((t) => existing[t].length > 0);
  const replaced = hadRecords
    ? []
    : (
        await all<{ id: string; key: string; revision: number }>(
          db,
          "SELECT id, key, revision FROM environments WHERE project_id = ? AND id <> ? AND revision > 0 ORDER BY key",
          projectId,
          environmentId,
        )
      ).map((e) => ({ environmentId: e.id, environmentKey: e.key, revision: e.revision }));
  const summaryFor = (dryRun: boolean) => ({
    ...summaryOf(environment, plan, dryRun, []),
    replacesEnvironments: replaced,
  });
  if (options.dryRun || (changing.length === 0 && statusChanges.length === 0))
    return summaryFor(options.dryRun);
  // An import rewrites experiments and statuses wholesale, past the review rule
  // (docs/approvals.md): in a project with a review-required environment only admins import.
  if (reviewApplies(actor) && (await projectRequiresReview(db, projectId)))
    throw forbidden(
      "this project has a review-required environment: importing a datafile changes experiments without review, so it needs an admin (a dry run is allowed)",
    );
  if (replaced.length > 0 && !options.replaceOtherEnvironments)
    throw conflict(
      `the project has no records yet and ${replaced.map((e) => `${e.environmentKey} (revision ${e.revision})`).join(", ")} serves a datafile published without them: after this import every environment publishes from the imported records, which replaces it. Import with replaceOtherEnvironments=true to accept that, or import into a project of its own`,
      { replacesEnvironments: replaced },
    );

  const guards: D1PreparedStatement[] = [];
  const writes: D1PreparedStatement[] = [];
  const undo: D1PreparedStatement[] = [];
  for (const item of changing) {
    if (item.action === "create") {
      writes.push(insertStatement(db, item.table, item.row));
      if (item.table === "experiments")
        writes.push(
          db
            .prepare(
              "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT ?, id, 'Not started', ? FROM environments WHERE project_id = ? ON CONFLICT DO NOTHING",
            )
            .bind(item.row.id, now, projectId),
        );
      undo.unshift(db.prepare(`DELETE FROM ${item.table} WHERE id = ?`).bind(item.row.id));
    } else {
      const current = item.current!;
      guards.push(guardStatement(db, item.table, current.id, current.version));
      const next = { ...item.row, version: current.version + 1, updated_at: now };
      writes.push(updateStatement(db, item.table, next, current.version));
      undo.unshift(updateStatement(db, item.table, current, next.version));
    }
  }
  const rewritten = new Set(changing.filter((i) => i.table === "experiments").map((i) => i.row.id));
  for (const s of statusChanges) {
    // A status change is a change of the experiment (its ETag moves, as with start or pause).
    const unchanged = plan.items.find(
      (i) => i.table === "experiments" && i.row.id === s.experimentId && !rewritten.has(i.row.id),
    );
    if (unchanged) {
      const version = unchanged.row.version;
      guards.push(guardStatement(db, "experiments", s.experimentId, version));
      writes.push(
        db
          .prepare(
            "UPDATE experiments SET version = ?, updated_at = ? WHERE id = ? AND version = ?",
          )
          .bind(version + 1, now, s.experimentId, version),
      );
      undo.unshift(
        db
          .prepare(
            "UPDATE experiments SET version = ?, updated_at = ? WHERE id = ? AND version = ?",
          )
          .bind(version, unchanged.row.updated_at, s.experimentId, version + 1),
      );
    }
    writes.push(
      db
        .prepare(
          "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id, environment_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at",
        )
        .bind(s.experimentId, environmentId, s.status, now),
    );
    undo.unshift(
      db
        .prepare(
          "UPDATE experiment_status SET status = ? WHERE experiment_id = ? AND environment_id = ?",
        )
        .bind(s.current, s.experimentId, environmentId),
    );
  }
  const summary = summaryFor(false);
  const statements = [
    ...guards,
    ...writes,
    auditStatement(db, actor, "import", "datafile", environmentId, projectId, {
      revision: datafile.revision,
      changes: summary.changes,
      statuses: summary.statuses,
    }),
  ];
  try {
    summary.published = await writeAndPublish(env, actor, {
      projectId,
      statements,
      auditIndex: statements.length - 1,
      undo,
      reason: `datafile revision ${datafile.revision} imported into ${environment.key}`,
    });
  } catch (error) {
    if (
      error instanceof Error &&
      !(error instanceof ApiError) &&
      /malformed JSON/i.test(error.message)
    )
      throw conflict(
        "the project's records changed while the import was being written: nothing was imported; run it again",
      );
    throw error;
  }
  await emitImportEvents(env, actor, {
    projectId,
    environmentKey: environment.key,
    created: changing.filter((i) => i.table === "experiments" && i.action === "create"),
    experiments: plan.items.filter((i) => i.table === "experiments"),
    statusChanges,
    published: summary.published,
  });
  return summary;
}

/**
 * The event of a status an import sets on an experiment that existed before: what the action
 * that makes the same change tells (start, resume, pause, archive; src/api/services/
 * experiment-lifecycle.ts). A change no action makes (to Not started, or Not started → Paused)
 * tells none; `statuses` of the import's answer and its audit entry list it.
 */
function importedStatusEvent(change: ImportStatus): WebhookEventType | null {
  const { current: from, status: to } = change;
  if (to === "Archived") return "experiment.archived";
  if (to === "Running") return from === "Paused" ? "experiment.resumed" : "experiment.started";
  if (to === "Paused" && from === "Running") return "experiment.paused";
  return null;
}

/**
 * What webhooks hear of an import besides its `datafile.published` (docs/webhooks.md "Events"):
 * `experiment.created` for each experiment it created, and `experiment.started` in the import's
 * environment for each of those it created Running — the events, and their data, of creating and
 * then starting one through the API (src/api/services/experiments.ts afterCreate,
 * src/api/services/experiment-lifecycle.ts); for an experiment that existed before, the event of
 * the action its status change is (importedStatusEvent). After the change and its publish, never
 * failing the import (emitWebhookEvents).
 */
async function emitImportEvents(
  env: Env,
  actor: Actor,
  imported: {
    projectId: string;
    environmentKey: string;
    created: readonly ImportItem[];
    /** Every experiment of the file, as written (to name those whose status changed). */
    experiments: readonly ImportItem[];
    statusChanges: readonly ImportStatus[];
    published: readonly PublishResult[];
  },
): Promise<void> {
  const revisions = imported.published
    .filter((p) => p.changed)
    .map((p) => ({ environment: p.environmentKey, revision: p.revision }));
  const events: WebhookEvent[] = [];
  const statusEvents: WebhookEvent[] = [];
  for (const item of imported.created) {
    const row = item.row as ExperimentRow;
    const experiment = { id: row.id, key: row.key, name: row.name };
    events.push({
      projectId: imported.projectId,
      type: "experiment.created",
      environment: null,
      actor,
      data: { experiment },
      summary: `experiment ${row.key} created by ${actor.name} (datafile import)`,
    });
    const status = imported.statusChanges.find((s) => s.experimentId === row.id);
    if (status?.status === "Running")
      statusEvents.push({
        projectId: imported.projectId,
        type: "experiment.started",
        environment: imported.environmentKey,
        actor,
        data: { experiment, previousStatus: status.current, status: status.status, revisions },
        summary: `experiment ${row.key} started in ${imported.environmentKey} by ${actor.name} (datafile import)`,
      });
  }
  const createdIds = new Set(imported.created.map((i) => i.row.id));
  for (const change of imported.statusChanges) {
    if (createdIds.has(change.experimentId)) continue;
    const type = importedStatusEvent(change);
    const row = imported.experiments.find((i) => i.row.id === change.experimentId)?.row as
      ExperimentRow | undefined;
    if (type === null || row === undefined) continue;
    const verb = type.slice("experiment.".length);
    statusEvents.push({
      projectId: imported.projectId,
      type,
      environment: imported.environmentKey,
      actor,
      data: {
        experiment: { id: row.id, key: row.key, name: row.name },
        previousStatus: change.current,
        status: change.status,
        revisions,
      },
      summary: `experiment ${row.key} ${verb} in ${imported.environmentKey} by ${actor.name} (datafile import)`,
    });
  }
  // Every created before any status change, as creating then starting them one by one would.
  await emitWebhookEvents(env, imported.projectId, [...events, ...statusEvents]);
}
