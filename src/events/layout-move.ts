/**
 * Moving per-visitor event state to another layout (docs/scaling.md "Moving to shards" and
 * "Growing the shards"): from D1's own tables to N visitor shards (an existing deployment's
 * migration), or from N shards to M. Run by `POST /_ss/api/v1/admin/event-layout/move` (and
 * `splitstream events move`), one bounded step per call, until it answers `done`.
 *
 * How a step works:
 * 1. the first call records `moving_to` in D1 `event_layout` and moves nothing: from then on the
 *    consumer counts nothing (its batches are retried and wait in the queue; pause the queue's
 *    delivery as well, docs/scaling.md), and every old shard is frozen (refuses to count). Isolates
 *    keep the layout cached for up to LAYOUT_TTL_MS, so rows move only once SETTLE_MS have passed
 *    since: a consumer on the D1 layout that had not seen the move yet could otherwise still change
 *    a visitor's state behind the cursor (the freeze covers the shards whatever the caches say);
 * 2. every source's pending outbox entries are added to D1 first (aggregates do not move);
 * 3. per source (D1 = −1, or each old shard) and per-visitor table, the next rows after the
 *    source's cursor are read; each row whose visitor belongs elsewhere under the new layout is
 *    imported into its new shard (INSERT OR IGNORE: a repeated step is harmless), then deleted
 *    from the source; the cursor moves on (layout_move_cursors, migrations/0009). An exposure
 *    takes its impression's dedupe key along: a redelivered earliest impression without it would
 *    look fresh, and the counting treats an exposure whose uuid is a fresh impression's as just
 *    created (src/events/count-sql.ts `CH`) — it would count the visitor's conversions again;
 * 4. when every source is exhausted, the new layout is recorded and counting resumes.
 *
 * Jump hash (src/events/shard-map.ts) keeps this small when growing: going from n to m shards only
 * the visitors whose shard changes — (m − n)/m of them — move. The seen_events rows with no
 * visitor to follow — later impressions (a redelivery cannot beat the earliest one) and
 * conversions the daily budget dropped (a redelivery is dropped again; only event_drops counts it
 * twice) — stay in an old shard until retention prunes them, and are deleted when leaving D1.
 */
import type { Env } from "../env";
import { LAYOUT_TTL_MS, resetLayoutCache, type EventLayout } from "./event-layout";
import { MAX_SHARDS, shardOf } from "./shard-map";
import { VISITOR_COLUMNS, VISITOR_TABLES, type VisitorTable } from "./shard-schema";
import { SEEN_KEYS_IN, handOverPending, movableRowsSql, shardStub } from "./visitor-shard";

type MoveEnv = Pick<Env, "DB" | "VISITOR_SHARDS">;
type Cell = string | number | null;

/** Where a source's rows come from: −1 = D1's own tables, else a shard index. */
const D1_SOURCE = -1;

/** How long after recording `moving_to` the first rows move (every isolate has seen it). */
export const SETTLE_MS = LAYOUT_TTL_MS + 30_000;

/** What one step did, and where the move stands. */
export interface MoveReport {
  from: number;
  to: number;
  /** Rows copied to their new shard in this step, per table. */
  moved: Record<VisitorTable, number>;
  /** Rows deleted from their source in this step without a copy (see the module comment). */
  dropped: number;
  /** True when the new layout is recorded (this step finished the move, or nothing to do). */
  done: boolean;
  /** Seconds to wait before the next step moves anything (0 = call again at once). */
  retryAfter: number;
}

/** A move that cannot start or go on. */
export class MoveError extends Error {
  constructor(
    readonly status: 409 | 422,
    message: string,
  ) {
    super(message);
  }
}

async function currentLayout(db: D1Database): Promise<EventLayout & { since: number }> {
  const row = await db
    .prepare("SELECT shards, moving_to, updated_at FROM event_layout WHERE id = 1")
    .first<{ shards: number; moving_to: number | null; updated_at: string }>();
  if (!row) return { shards: 0, movingTo: null, since: 0 };
  return {
    shards: Number(row.shards),
    movingTo: row.moving_to === null ? null : Number(row.moving_to),
    since: Date.parse(row.updated_at) || 0,
  };
}

const emptyMoved = (): Record<VisitorTable, number> =>
  Object.fromEntries(VISITOR_TABLES.map((t) => [t, 0])) as Record<VisitorTable, number>;

/**
 * Exposures first (with their impressions' dedupe keys); seen rows before conversions: a
 * conversion's seen row finds its visitor through the stored conversion, which must not have
 * left yet.
 */
const MOVE_ORDER: readonly VisitorTable[] = [
  "exposures",
  "seen_events",
  "conversions",
  "converters",
];

/** Copies the dedupe keys of moving exposures' impressions to `target`, then deletes them. */
async function moveSeenRows(
  env: MoveEnv,
  source: number,
  target: number,
  exposures: Cell[][],
): Promise<number> {
  const uuidAt = VISITOR_COLUMNS.exposures.indexOf("uuid");
  const sdkAt = VISITOR_COLUMNS.exposures.indexOf("sdk_key");
  const keys = exposures.map((row): [string, string] => [String(row[uuidAt]), String(row[sdkAt])]);
  const columns = VISITOR_COLUMNS.seen_events.join(", ");
  const rows =
    source === D1_SOURCE
      ? ((await env.DB.prepare(`SELECT ${columns} FROM seen_events WHERE ${SEEN_KEYS_IN}`)
          .bind(JSON.stringify(keys))
          .raw()) as Cell[][])
      : ((await shardStub(env, source).readSeenRows(keys)) as Cell[][]);
  if (rows.length === 0) return 0;
  await shardStub(env, target).importRows("seen_events", rows);
  if (source === D1_SOURCE)
    await env.DB.prepare(`DELETE FROM seen_events WHERE ${SEEN_KEYS_IN}`)
      .bind(JSON.stringify(keys))
      .run();
  else await shardStub(env, source).deleteSeenRows(keys);
  return rows.length;
}

/** One bounded step of the move to `to` shards (at most `maxRows` rows read). */
export async function moveEventState(
  env: MoveEnv,
  to: number,
  { maxRows = 2000, now = Date.now() }: { maxRows?: number; now?: number } = {},
): Promise<MoveReport> {
  if (!Number.isSafeInteger(to) || to < 1 || to > MAX_SHARDS)
    throw new MoveError(422, `to must be a whole number of shards, 1–${MAX_SHARDS}`);
  let layout = await currentLayout(env.DB);
  const report: MoveReport = {
    from: layout.shards,
    to,
    moved: emptyMoved(),
    dropped: 0,
    done: false,
    retryAfter: 0,
  };
  if (layout.movingTo === null) {
    if (layout.shards === to) {
      // A finished move whose thaw failed half-way is thawed by asking again.
      await setFrozen(env, layout.shards, false);
      return { ...report, done: true };
    }
    // Cursors of an earlier move that did not finish are not this move's progress.
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO event_layout (id, shards, moving_to, updated_at) VALUES (1, ?1, ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET moving_to = ?2, updated_at = ?3 WHERE moving_to IS NULL`,
      ).bind(layout.shards, to, new Date(now).toISOString()),
      // Only when this call started the move (not a concurrent start with another count).
      env.DB.prepare(
        "DELETE FROM layout_move_cursors WHERE EXISTS (SELECT 1 FROM event_layout WHERE moving_to = ?1 AND updated_at = ?2)",
      ).bind(to, new Date(now).toISOString()),
    ]);
    resetLayoutCache();
    layout = await currentLayout(env.DB);
  }
  if (layout.movingTo !== to)
    throw new MoveError(
      409,
      `a move to ${layout.movingTo} shard(s) is in progress: finish it first (run it again with to = ${layout.movingTo})`,
    );
  // Every source shard refuses to count until the move is over, whatever layout a consumer
  // still has cached (repeated each step: cheap, and covers a step that failed half-way).
  await setFrozen(env, layout.shards, true);
  const settled = layout.since + SETTLE_MS;
  if (now < settled) return { ...report, retryAfter: Math.ceil((settled - now) / 1000) };
  const from = layout.shards;
  await handOverPending(env, from);

  const sources = from === 0 ? [D1_SOURCE] : Array.from({ length: from }, (_, i) => i);
  let budget = maxRows;
  for (const source of sources)
    for (const table of MOVE_ORDER)
      for (;;) {
        if (budget <= 0) return report;
        const cursor = await env.DB.prepare(
          "SELECT after, done FROM layout_move_cursors WHERE source = ? AND tbl = ?",
        )
          .bind(source, table)
          .first<{ after: number; done: number }>();
        if (cursor?.done) break;
        const after = Number(cursor?.after ?? -1);
        const limit = Math.min(budget, 1000);
        const rows =
          source === D1_SOURCE
            ? ((await env.DB.prepare(movableRowsSql(table)).bind(after, limit).raw()) as Cell[][])
            : ((await shardStub(env, source).readMovableRows(table, after, limit)) as Cell[][]);
        budget -= rows.length;
        const leaving: number[] = [];
        const byTarget = new Map<number, Cell[][]>();
        for (const row of rows) {
          const rowid = Number(row[0]);
          const values = row.slice(1, -1);
          const visitorId = row[row.length - 1];
          const sdkKey = String(values[VISITOR_COLUMNS[table].indexOf("sdk_key")]);
          if (visitorId === null || visitorId === undefined) {
            // No visitor to follow (see the module comment): deleted when leaving D1, else left.
            if (source === D1_SOURCE) {
              leaving.push(rowid);
              report.dropped++;
            }
            continue;
          }
          const target = shardOf(sdkKey, String(visitorId), to);
          if (target === source) continue;
          leaving.push(rowid);
          const list = byTarget.get(target) ?? [];
          list.push(values);
          byTarget.set(target, list);
          report.moved[table]++;
        }
        for (const [target, values] of byTarget) {
          if (table === "exposures")
            report.moved.seen_events += await moveSeenRows(env, source, target, values);
          await shardStub(env, target).importRows(table, values);
        }
        if (leaving.length > 0) {
          if (source === D1_SOURCE) {
            for (let i = 0; i < leaving.length; i += 500)
              await env.DB.prepare(
                `DELETE FROM ${table} WHERE rowid IN (SELECT value FROM json_each(?))`,
              )
                .bind(JSON.stringify(leaving.slice(i, i + 500)))
                .run();
          } else await shardStub(env, source).deleteRows(table, leaving);
        }
        const last = rows[rows.length - 1];
        await env.DB.prepare(
          `INSERT INTO layout_move_cursors (source, tbl, after, done) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (source, tbl) DO UPDATE SET after = ?3, done = ?4`,
        )
          .bind(source, table, last ? Number(last[0]) : after, rows.length < limit ? 1 : 0)
          .run();
        if (rows.length < limit) break;
      }

  // Every source is exhausted: record the new layout; counting resumes with it.
  await handOverPending(env, from);
  // Both only while this move is the recorded one (a late overlapping step changes nothing).
  await env.DB.batch([
    env.DB.prepare(
      "DELETE FROM layout_move_cursors WHERE EXISTS (SELECT 1 FROM event_layout WHERE moving_to = ?1)",
    ).bind(to),
    env.DB.prepare(
      "UPDATE event_layout SET shards = ?1, moving_to = NULL, updated_at = ?2 WHERE id = 1 AND moving_to = ?1",
    ).bind(to, new Date(now).toISOString()),
  ]);
  resetLayoutCache();
  await setFrozen(env, from, false);
  return { ...report, done: true };
}

/** Freezes (or thaws) shards 0…`shards`−1: a frozen shard counts nothing. */
async function setFrozen(env: MoveEnv, shards: number, frozen: boolean): Promise<void> {
  await Promise.all(
    Array.from({ length: shards }, (_, index) => shardStub(env, index).setFrozen(frozen)),
  );
}
