/**
 * Small typed helpers over D1 (schema: migrations/0001_management.sql). Rows come back exactly as
 * stored (snake_case columns); routes map them to camelCase JSON.
 */
import { notFound } from "../errors";
import type { EnvironmentRow, ProjectRow } from "./rows";

/** The first row of `sql` with `params` bound, or null. */
export async function first<T>(
  db: D1Database,
  sql: string,
  ...params: unknown[]
): Promise<T | null> {
  return (
    (await db
      .prepare(sql)
      .bind(...params)
      .first<T>()) ?? null
  );
}

/** Every row of `sql` with `params` bound. */
export async function all<T>(db: D1Database, sql: string, ...params: unknown[]): Promise<T[]> {
  const { results } = await db
    .prepare(sql)
    .bind(...params)
    .all<T>();
  return results;
}

/** The project, or a 404 `not_found` ApiError. */
export async function requireProject(db: D1Database, projectId: string): Promise<ProjectRow> {
  const row = await first<ProjectRow>(db, "SELECT * FROM projects WHERE id = ?", projectId);
  if (!row) throw notFound("project", projectId);
  return row;
}

/** The environment, or a 404 `not_found` ApiError. */
export async function requireEnvironment(
  db: D1Database,
  environmentId: string,
): Promise<EnvironmentRow> {
  const row = await first<EnvironmentRow>(
    db,
    "SELECT * FROM environments WHERE id = ?",
    environmentId,
  );
  if (!row) throw notFound("environment", environmentId);
  return row;
}

/** Every environment of a project, production first, then by key. */
export async function listEnvironments(
  db: D1Database,
  projectId: string,
): Promise<EnvironmentRow[]> {
  return all<EnvironmentRow>(
    db,
    "SELECT * FROM environments WHERE project_id = ? ORDER BY key <> 'production', key",
    projectId,
  );
}
