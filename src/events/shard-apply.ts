/**
 * Adding the shards' outbox entries to D1's daily aggregates, exactly once (docs/events.md
 * "Exactly once across shards"): in ONE `DB.batch()` (one transaction) the deltas of every entry
 * whose `seq` is above its shard's mark in `shard_marks` (migrations/0009_visitor_shards.sql) are
 * added to variation_daily / metric_daily / event_drops, the cells they emptied are deleted, and
 * the marks move up. An entry handed over twice (by two consumer runs, or by a run and the shard's
 * alarm) is added by whichever transaction commits first and skipped by the other.
 *
 * Why marks and not a table of applied (shard, seq) pairs: a shard always hands over a contiguous
 * run of its entries starting right after the last one it saw acknowledged, and acknowledges only
 * after D1 committed, so "at or below the mark" is exactly "already added" — one row per shard.
 */
import type { ShardEntry } from "./shard-deltas";
import { METRIC_DAILY_VALUES } from "./tables";

/** Delta rows per statement (one JSON parameter each; ≈ 30–60 KB). */
const ROWS_PER_STATEMENT = 300;

const NOT_APPLIED = `json_extract(j.value, '$[1]') > coalesce(
    (SELECT applied_seq FROM shard_marks WHERE shard = json_extract(j.value, '$[0]')), 0)`;

const at = (i: number) => `json_extract(j.value, '$[${i}]')`;

const VISITOR_KEY = "sdk_key, experiment_id, variation_id, revision, day";
const METRIC_KEY = "sdk_key, experiment_id, variation_id, revision, event_id, day";

const SQL_ADD_VISITORS = `INSERT INTO variation_daily (${VISITOR_KEY}, visitors)
  SELECT ${at(2)}, ${at(3)}, ${at(4)}, ${at(5)}, ${at(6)}, sum(${at(7)})
  FROM json_each(?1) AS j WHERE ${NOT_APPLIED}
  GROUP BY 1, 2, 3, 4, 5
  ON CONFLICT (${VISITOR_KEY}) DO UPDATE SET visitors = visitors + excluded.visitors`;

const SQL_ADD_METRICS = `INSERT INTO metric_daily (${METRIC_KEY}, ${METRIC_DAILY_VALUES.join(", ")})
  SELECT ${at(2)}, ${at(3)}, ${at(4)}, ${at(5)}, ${at(6)}, ${at(7)},
    ${METRIC_DAILY_VALUES.map((_, i) => `total(${at(8 + i)})`).join(", ")}
  FROM json_each(?1) AS j WHERE ${NOT_APPLIED}
  GROUP BY 1, 2, 3, 4, 5, 6
  ON CONFLICT (${METRIC_KEY}) DO UPDATE SET
    ${METRIC_DAILY_VALUES.map((c) => `${c} = ${c} + excluded.${c}`).join(",\n    ")}`;

const SQL_ADD_DROPS = `INSERT INTO event_drops (day, sdk_key, kind, reason, count)
  SELECT ${at(3)}, ${at(2)}, 'dropped', 'visitor_daily_cap', sum(${at(4)})
  FROM json_each(?1) AS j WHERE ${NOT_APPLIED}
  GROUP BY 1, 2
  ON CONFLICT (day, sdk_key, kind, reason) DO UPDATE SET count = count + excluded.count`;

/** Cells an apply took visitors from and left at zero (the single-database path deletes them too). */
const SQL_DELETE_EMPTY_VISITORS = `DELETE FROM variation_daily WHERE visitors <= 0
  AND (${VISITOR_KEY}) IN (SELECT ${at(0)}, ${at(1)}, ${at(2)}, ${at(3)}, ${at(4)} FROM json_each(?1) AS j)`;

const SQL_DELETE_EMPTY_METRICS = `DELETE FROM metric_daily WHERE events <= 0
  AND (${METRIC_KEY}) IN (SELECT ${at(0)}, ${at(1)}, ${at(2)}, ${at(3)}, ${at(4)}, ${at(5)} FROM json_each(?1) AS j)`;

const SQL_MARKS = `INSERT INTO shard_marks (shard, applied_seq)
  SELECT ${at(0)}, ${at(1)} FROM json_each(?1) AS j WHERE true
  ON CONFLICT (shard) DO UPDATE SET applied_seq = max(applied_seq, excluded.applied_seq)`;

function chunks<T>(rows: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT)
    out.push(rows.slice(i, i + ROWS_PER_STATEMENT));
  return out;
}

/** Per shard, the highest seq among `entries`. */
export function highestSeqs(entries: readonly ShardEntry[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of entries) out.set(e.shard, Math.max(out.get(e.shard) ?? 0, e.seq));
  return out;
}

/**
 * The statements that add `entries` to D1, for one `DB.batch()`. Entries of the same (shard, seq)
 * may appear more than once (two calls handed the same pending entry over): only one copy counts.
 */
export function applyStatements(
  db: D1Database,
  entries: readonly ShardEntry[],
): D1PreparedStatement[] {
  const unique = new Map<string, ShardEntry>();
  for (const e of entries) unique.set(`${e.shard}:${e.seq}`, e);
  const list = [...unique.values()];
  if (list.length === 0) return [];
  const visitors = list.flatMap((e) => e.visitors.map((row) => [e.shard, e.seq, ...row]));
  const metrics = list.flatMap((e) => e.metrics.map((row) => [e.shard, e.seq, ...row]));
  const drops = list.flatMap((e) => e.drops.map((row) => [e.shard, e.seq, ...row]));
  const statements: D1PreparedStatement[] = [];
  const each = (sql: string, rows: unknown[][]) => {
    for (const chunk of chunks(rows)) statements.push(db.prepare(sql).bind(JSON.stringify(chunk)));
  };
  // Adds first (they read the marks as they were), then the clean-up, then the marks.
  each(SQL_ADD_VISITORS, visitors);
  each(SQL_ADD_METRICS, metrics);
  each(SQL_ADD_DROPS, drops);
  each(
    SQL_DELETE_EMPTY_VISITORS,
    list.flatMap((e) => e.visitors.filter((row) => row[5] < 0).map((row) => row.slice(0, 5))),
  );
  each(
    SQL_DELETE_EMPTY_METRICS,
    list.flatMap((e) =>
      e.metrics.filter((row) => (row[7] as number) < 0).map((row) => row.slice(0, 6)),
    ),
  );
  each(
    SQL_MARKS,
    [...highestSeqs(list)].map(([shard, seq]) => [shard, seq]),
  );
  return statements;
}

/** Adds `entries` to D1 in one transaction (throws when D1 does: nothing was added then). */
export async function applyShardEntries(
  db: D1Database,
  entries: readonly ShardEntry[],
): Promise<void> {
  const statements = applyStatements(db, entries);
  if (statements.length > 0) await db.batch(statements);
}
