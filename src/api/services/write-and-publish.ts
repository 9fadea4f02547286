/**
 * The write cycle of every change (docs/api.md "Publishing"): one D1 batch (the change and its
 * audit entry), then every environment of the project is published in the same request; when
 * publishing fails the change is undone.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError } from "../errors";
import { auditIfChanged } from "../store/audit";
import { versionedUpdate, versionGuardError } from "../store/sql";
import { publishProject, type PublishResult } from "./publish";

export interface WritePlan {
  projectId: string;
  /**
   * The batch. With `onGuardFailed`, statement `guardIndex` is the guarded write (version or
   * status check) and the one right after it its `auditIfChanged`; the other statements must be
   * harmless when the guard changed nothing (make them conditional on what the guard wrote).
   */
  statements: D1PreparedStatement[];
  /** Index of the audit statement in `statements` (its row is removed again on undo). */
  auditIndex: number;
  /** Index of the guard statement (default 0). */
  guardIndex?: number;
  /** The guard changed no row → this error (a 409). Absent: the batch cannot lose a race. */
  onGuardFailed?: () => Promise<ApiError>;
  /** Statements restoring the state before the write (run when publishing fails). */
  undo: D1PreparedStatement[];
  /** Reason recorded with the published revisions, e.g. "experiment checkout_button start". */
  reason: string;
}

/**
 * Runs a batch whose statement `guardIndex` is a guarded write (a version or status check);
 * when it changed no row, throws what `onGuardFailed` returns (a 409, or a 404 when the row is
 * gone). The statements after the guard must be harmless then (`auditIfChanged`). Changes that
 * publish nothing (projects, environments) use it alone; `writeAndPublish` uses it for theirs.
 */
export async function batchGuarded(
  db: D1Database,
  statements: D1PreparedStatement[],
  guardIndex: number,
  onGuardFailed: () => Promise<ApiError>,
): Promise<D1Result[]> {
  const results = await db.batch(statements);
  if ((results[guardIndex]?.meta.changes ?? 0) === 0) throw await onGuardFailed();
  return results;
}

/**
 * Runs the batch, then publishes every environment of the project in the same request. When
 * publishing fails (422 `datafile_invalid`: nothing was published; or a storage error), the
 * change and its audit entry are undone, whatever a partial publish wrote is re-published from
 * the restored state (best effort), and the error is thrown: the request did nothing.
 */
export async function writeAndPublish(
  env: Env,
  actor: Actor,
  plan: WritePlan,
): Promise<PublishResult[]> {
  const db = env.DB;
  const results = plan.onGuardFailed
    ? await batchGuarded(db, plan.statements, plan.guardIndex ?? 0, plan.onGuardFailed)
    : await db.batch(plan.statements);
  const auditRowId = results[plan.auditIndex]?.meta.last_row_id;
  try {
    return await publishProject(env, plan.projectId, actor, plan.reason);
  } catch (error) {
    const undo = [...plan.undo];
    if (typeof auditRowId === "number" && auditRowId > 0)
      undo.push(db.prepare("DELETE FROM audit_log WHERE id = ?").bind(auditRowId));
    try {
      if (undo.length > 0) await db.batch(undo);
    } catch (undoError) {
      console.error("splitstream api: could not undo a change whose publish failed", undoError);
      throw error;
    }
    if (!(error instanceof ApiError && error.status === 422)) {
      // A storage error may have published some environments already: publish the restored state.
      await publishProject(
        env,
        plan.projectId,
        actor,
        `${plan.reason} (undone: publishing failed)`,
      ).catch((again: unknown) =>
        console.error("splitstream api: re-publish after undo failed", again),
      );
    }
    throw error;
  }
}

/**
 * A version-guarded update of some columns of one row with its audit entry, in one batch: the
 * audit row only lands when the update did, and a lost race answers 409 `version_conflict` (404
 * when the row is gone). For rows whose changes do not publish (projects, environments).
 */
export async function updateAudited(
  db: D1Database,
  actor: Actor,
  target: {
    table: string;
    /** Singular noun for the audit entry and a 404 (`project`). */
    type: string;
    id: string;
    projectId: string;
    expectedVersion: number;
  },
  values: Record<string, unknown>,
  fields: string[],
  /** More for the audit entry (e.g. the new value of a setting worth seeing in the log). */
  details: Record<string, unknown> = {},
): Promise<void> {
  await batchGuarded(
    db,
    [
      versionedUpdate(db, target.table, target.id, target.expectedVersion, values),
      auditIfChanged(db, actor, "update", target.type, target.id, target.projectId, {
        fields,
        ...details,
      }),
    ],
    0,
    () => versionGuardError(db, target.table, target.type, target.id),
  );
}
