/**
 * The audit log: who changed what, when. Writers should batch `auditStatement(...)` with their
 * change (`db.batch([change, auditStatement(...)])`) so the entry exists exactly when the change
 * does; `recordAudit` is for changes that are not a single batch.
 */
import type { Actor } from "../context";
import { nowIso } from "../ids";

/**
 * The INSERT for one audit entry. `action` is a verb such as `create`, `update`, `delete`,
 * `start`, `publish`; `resourceType` a singular noun (`project`, `environment`, `token`,
 * `experiment`, …); `projectId` null for resources outside projects (tokens). `details` is
 * stored as JSON (default `{}`): keep it small — changed field names, old/new status, revision.
 */
export function auditStatement(
  db: D1Database,
  actor: Actor,
  action: string,
  resourceType: string,
  resourceId: string,
  projectId: string | null,
  details?: unknown,
): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO audit_log (at, actor, action, resource_type, resource_id, project_id, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(
      nowIso(),
      actor.id,
      action,
      resourceType,
      resourceId,
      projectId,
      JSON.stringify(details ?? {}),
    );
}

/**
 * The audit entry of a guarded write: inserted only when the statement just before it in the
 * batch changed a row (`changes() > 0`), so a lost race leaves no entry behind.
 */
export function auditIfChanged(
  db: D1Database,
  actor: Actor,
  action: string,
  resourceType: string,
  resourceId: string,
  projectId: string,
  details: unknown,
): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO audit_log (at, actor, action, resource_type, resource_id, project_id, details) SELECT ?, ?, ?, ?, ?, ?, ? WHERE changes() > 0",
    )
    .bind(
      nowIso(),
      actor.id,
      action,
      resourceType,
      resourceId,
      projectId,
      JSON.stringify(details ?? {}),
    );
}

/** Writes one audit entry now. */
export async function recordAudit(
  db: D1Database,
  actor: Actor,
  action: string,
  resourceType: string,
  resourceId: string,
  projectId: string | null,
  details?: unknown,
): Promise<void> {
  await auditStatement(db, actor, action, resourceType, resourceId, projectId, details).run();
}
