/**
 * Reading the audit log (docs/api.md "Audit log"): a project's entries, newest first, optionally
 * about one resource type or one resource — the query of `GET /projects/{projectId}/audit-log`
 * (src/api/routes/audit-log.ts), as a service the admin pages can call (docs/admin.md "Audit
 * log"). One function per query: an experiment's history is this function with
 * `resourceType: "experiment"` and its id. Writing entries is src/api/store/audit.ts.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { all, requireProject } from "../store/db";
import type { AuditRow } from "../store/rows";
import { ADMIN_ACTOR_ID, requireActorRole } from "./auth";
import { type Page, pageAfter, type PageRequest } from "./resources";

/** One audit entry as the audit-log API presents it (`AuditEntry` in docs/api.md). */
export interface AuditEntryJson {
  id: string;
  at: string;
  actor: {
    /** `admin-token` or a token id. */
    id: string;
    /** The token's name (`ADMIN_TOKEN` for the secret); null when the token no longer exists. */
    name: string | null;
  };
  action: string;
  resourceType: string;
  resourceId: string;
  projectId: string | null;
  /** What the writer recorded (JSON), or the stored text when it is not JSON. */
  details: unknown;
}

/** Only the entries about this resource type, or this resource (both optional). */
export interface AuditFilter {
  resourceType?: string | undefined;
  resourceId?: string | undefined;
}

/** An audit row (joined with its actor's token name) as the API presents it. */
export function auditEntryJson(row: AuditRow): AuditEntryJson {
  let details: unknown;
  try {
    details = JSON.parse(row.details);
  } catch {
    details = row.details;
  }
  return {
    id: String(row.id),
    at: row.at,
    actor: {
      id: row.actor,
      name: row.actor === ADMIN_ACTOR_ID ? "ADMIN_TOKEN" : row.actor_name,
    },
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    projectId: row.project_id,
    details,
  };
}

/**
 * The entry id below which a page starts: newest-first lists page by the last id seen (the
 * cursor), so the next page has smaller ids; a cursor that is not an id yields an empty page.
 */
function beforeId(cursor: string | null): number {
  const n = cursor === null ? Number.MAX_SAFE_INTEGER : Number(cursor);
  return Number.isSafeInteger(n) ? n : 0;
}

const SELECT_ENTRIES = `SELECT a.*, t.name AS actor_name FROM audit_log a LEFT JOIN tokens t ON t.id = a.actor`;

/** Entries newest first, `where` already holding the caller's conditions. */
async function listEntries(
  db: D1Database,
  conditions: { sql: string; params: unknown[] },
  page: PageRequest,
  filter: AuditFilter,
): Promise<Page<AuditEntryJson>> {
  let sql = conditions.sql;
  const params = [...conditions.params];
  if (filter.resourceType) {
    sql += " AND a.resource_type = ?";
    params.push(filter.resourceType);
  }
  if (filter.resourceId) {
    sql += " AND a.resource_id = ?";
    params.push(filter.resourceId);
  }
  const rows = await all<AuditRow>(
    db,
    `${SELECT_ENTRIES} WHERE a.id < ?${sql} ORDER BY a.id DESC LIMIT ?`,
    beforeId(page.cursor),
    ...params,
    page.limit + 1,
  );
  return pageAfter(rows.map(auditEntryJson), page.limit);
}

/** A project's audit entries, newest first (viewer; 404 for an unknown project). */
export async function listProjectAuditEntries(
  env: Env,
  actor: Actor,
  projectId: string,
  page: PageRequest,
  filter: AuditFilter = {},
): Promise<Page<AuditEntryJson>> {
  requireActorRole(actor, "viewer");
  await requireProject(env.DB, projectId);
  return listEntries(env.DB, { sql: " AND a.project_id = ?", params: [projectId] }, page, filter);
}

/** The whole audit log — every project, and tokens — newest first (admin). */
export async function listAllAuditEntries(
  env: Env,
  actor: Actor,
  page: PageRequest,
  filter: AuditFilter = {},
): Promise<Page<AuditEntryJson>> {
  requireActorRole(actor, "admin");
  return listEntries(env.DB, { sql: "", params: [] }, page, filter);
}
