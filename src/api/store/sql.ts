/**
 * SQL building blocks of the management tables: insert statements, the version-guarded update
 * and delete (docs/api.md "Versions"), JSON columns, key uniqueness.
 */
import { first } from "./db";
import type { BaseRow } from "./rows";
import { type ApiError, conflict, notFound, versionConflict } from "../errors";

const quote = (column: string) => `"${column}"`;

/** `INSERT INTO table (every column of row) VALUES (…)`. */
export function insertStatement(db: D1Database, table: string, row: object): D1PreparedStatement {
  const entries = Object.entries(row);
  return db
    .prepare(
      `INSERT INTO ${table} (${entries.map(([c]) => quote(c)).join(", ")}) VALUES (${entries.map(() => "?").join(", ")})`,
    )
    .bind(...entries.map(([, value]: [string, unknown]) => value ?? null));
}

/**
 * `UPDATE table SET (every column of values) WHERE id = ? AND version = ?`: the one
 * version-guarded write of the API, behind every If-Match (docs/api.md "Versions"). `values`
 * names the columns to write, the new `version` and `updated_at` among them; columns it leaves
 * out keep what they hold (an environment's `revision`, which publishing bumps without a new
 * version, must not be written back). No row changed = someone else wrote first, or the row is
 * gone: `versionGuardError` says which.
 */
export function versionedUpdate(
  db: D1Database,
  table: string,
  id: string,
  expectedVersion: number,
  values: object,
): D1PreparedStatement {
  const entries = Object.entries(values);
  return db
    .prepare(
      `UPDATE ${table} SET ${entries.map(([c]) => `${quote(c)} = ?`).join(", ")} WHERE id = ? AND version = ?`,
    )
    .bind(...entries.map(([, value]: [string, unknown]) => value ?? null), id, expectedVersion);
}

/** The versioned update of a whole resource row: every column but `id` and `project_id`. */
export function updateStatement(
  db: D1Database,
  table: string,
  row: BaseRow,
  expectedVersion: number,
): D1PreparedStatement {
  const values = Object.fromEntries(
    Object.entries(row).filter(([column]) => column !== "id" && column !== "project_id"),
  );
  return versionedUpdate(db, table, row.id, expectedVersion, values);
}

/** `DELETE FROM table WHERE id = ? AND version = ?`: the version-guarded delete. */
export function versionedDelete(
  db: D1Database,
  table: string,
  id: string,
  expectedVersion: number,
): D1PreparedStatement {
  return db.prepare(`DELETE FROM ${table} WHERE id = ? AND version = ?`).bind(id, expectedVersion);
}

/**
 * Why a version-guarded write of row `id` changed nothing: 409 `version_conflict` naming the
 * version now current, or 404 `not_found` (`<type> <id> not found`) when the row is gone.
 */
export async function versionGuardError(
  db: D1Database,
  table: string,
  type: string,
  id: string,
): Promise<ApiError> {
  const latest = await first<{ version: number }>(
    db,
    `SELECT version FROM ${table} WHERE id = ?`,
    id,
  );
  return latest ? versionConflict(latest.version) : notFound(type, id);
}

/** Parses a JSON column, with a fallback for a null or corrupt value. */
export function parseJson<T>(text: string | null | undefined, fallback: T): T {
  if (text === null || text === undefined) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

/** The row of `table` with `id`, or 404. */
export async function requireRow<T>(
  db: D1Database,
  table: string,
  type: string,
  id: string,
): Promise<T> {
  const row = await first<T>(db, `SELECT * FROM ${table} WHERE id = ?`, id);
  if (!row) throw notFound(type, id);
  return row;
}

/** 409 when another row of the project already has `key` in `table`. */
export async function assertKeyFree(
  db: D1Database,
  table: string,
  type: string,
  projectId: string,
  key: string,
  exceptId: string | null,
): Promise<void> {
  const clash = await first<{ id: string }>(
    db,
    `SELECT id FROM ${table} WHERE project_id = ? AND key = ? AND id <> ?`,
    projectId,
    key,
    exceptId ?? "",
  );
  if (clash)
    throw conflict(
      `the project already has ${article(type)} ${type} with key ${JSON.stringify(key)}`,
      {
        path: "$.body.key",
        existingId: clash.id,
      },
    );
}

/** "a" or "an". */
export function article(noun: string): string {
  return /^[aeiou]/i.test(noun) ? "an" : "a";
}
