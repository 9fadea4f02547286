/**
 * SQL building blocks of the resource tables: the columns every row has, insert and
 * version-guarded update statements, JSON columns, key uniqueness.
 */
import { first } from "./db";
import { conflict, notFound } from "../errors";

/** Every resource row has these. */
export interface BaseRow {
  id: string;
  project_id: string;
  version: number;
  created_at: string;
  updated_at: string;
}

type RowValues = Record<string, unknown>;

const quote = (column: string) => `"${column}"`;

/** `INSERT INTO table (every column of row) VALUES (…)`. */
export function insertStatement(db: D1Database, table: string, row: object): D1PreparedStatement {
  const values = row as RowValues;
  const columns = Object.keys(values);
  return db
    .prepare(
      `INSERT INTO ${table} (${columns.map(quote).join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
    )
    .bind(...columns.map((c) => values[c] ?? null));
}

/**
 * `UPDATE table SET (every column but id and project_id) WHERE id = ? AND version = ?`: the
 * version-guarded write of a whole row (no row changed = someone else wrote first).
 */
export function updateStatement(
  db: D1Database,
  table: string,
  row: BaseRow,
  expectedVersion: number,
): D1PreparedStatement {
  const values = row as unknown as RowValues;
  const columns = Object.keys(values).filter((c) => c !== "id" && c !== "project_id");
  return db
    .prepare(
      `UPDATE ${table} SET ${columns.map((c) => `${quote(c)} = ?`).join(", ")} WHERE id = ? AND version = ?`,
    )
    .bind(...columns.map((c) => values[c] ?? null), row.id, expectedVersion);
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
