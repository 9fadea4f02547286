/**
 * A visitor shard (docs/scaling.md "Visitor shards"): a SQLite-backed Durable Object that holds
 * the per-visitor state of the visitors `shardOf` (src/events/shard-map.ts) places on it — dedupe
 * keys, exposures, stored conversions, converters — and counts their events with the same
 * statements the single-database layout runs in D1 (src/events/count-sql.ts, target `deltas`).
 *
 * Per counting call, in one synchronous transaction: the plan is counted, the change it made to
 * the daily aggregates is read from the scratch tables and kept as an outbox entry with the next
 * `seq`; the answer carries the shard's pending entries. The consumer adds them to D1 and then
 * acknowledges them (src/events/shard-apply.ts says why this is exactly once).
 *
 * An alarm (at most hourly while the shard holds state) does the upkeep that needs no caller:
 * hands over entries nobody acknowledged (the consumer failed after the shard committed and its
 * batch went to the dead-letter queue), prunes dedupe keys and stored conversions past the
 * retention window (docs/events.md "Retention"), and deletes the rows of experiments archived
 * more than ARCHIVE_GRACE_MS ago (their results are final; later events for them are ignored).
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import { utcDay, type BatchPlan } from "./aggregate";
import { countSteps } from "./count-sql";
import { shardName } from "./shard-map";
import { applyShardEntries } from "./shard-apply";
import {
  PENDING_BYTES,
  PENDING_LIMIT,
  type DropDelta,
  type MetricDelta,
  type ShardCountResult,
  type ShardEntry,
  type VisitorDelta,
} from "./shard-deltas";
import {
  SHARD_MIGRATIONS,
  VISITOR_COLUMNS,
  VISITOR_TABLES,
  type VisitorTable,
} from "./shard-schema";
import { retentionCutoff } from "./retention";
import {
  breakdownSumsSql,
  requireDimension,
  type BreakdownDimension,
  type BreakdownRow,
} from "./breakdown-sql";
import {
  COVARIATE_GAP_MS,
  COVARIATE_WINDOW_MS,
  covariateSumsSql,
  requireCovariateTotal,
  type CovariateRow,
  type CovariateTotal,
} from "./covariate-sql";
import {
  adoptStatements,
  compareStatements,
  dropStatements,
  foldedCountStatement,
  type ShadowNames,
  type Statement,
} from "./rebuild-sql";
import { METRIC_DAILY_VALUES } from "./tables";

/** How often the upkeep alarm runs while the shard holds state. */
export const MAINTENANCE_INTERVAL_MS = 60 * 60 * 1000;
/** An archived experiment's per-visitor rows are deleted this long after it was archived. */
export const ARCHIVE_GRACE_MS = 24 * 60 * 60 * 1000;
/** Rows one prune statement deletes, and statements per table per alarm. */
const PRUNE_CHUNK = 5000;
const PRUNE_ROUNDS = 20;

/** The per-visitor tables a rebuild compares on a shard. */
const SHARD_COMPARED = ["exposures", "conversions", "converters"] as const;

/** A shard's answer to the rebuild's comparison: counts per table, sample rows as JSON text. */
export interface ShadowComparison {
  tables: Partial<
    Record<
      "exposures" | "conversions" | "converters",
      { live: number; rebuilt: number; differences: number }
    >
  >;
  samples: Array<{ table: string; key: string; live: string | null; rebuilt: string | null }>;
  /** Events the replay counted on this shard (shadow dedupe keys, excluded ones left out). */
  folded: number;
}

/** One counting call. */
export interface ShardCountInput {
  /** This shard's index in the layout (kept in its entries). */
  shard: number;
  /** The consumer run's random token (docs/events.md "Counting, statement by statement"). */
  attempt: string;
  /** When the consumer received the batch (ms): dedupe rows' age, budget drops' day. */
  receivedAt: number;
  plan: BatchPlan;
}

/** A page of a per-visitor table (rows as column arrays, VISITOR_COLUMNS order). */
export interface ShardRowsPage {
  rows: Array<Array<string | number | null>>;
  /** Pass as `after` for the next page; null when this was the last page. */
  next: number | null;
}

/** Size and row counts of a shard. */
export interface ShardStats {
  shard: number | null;
  /** Bytes of the shard's SQLite database (`ctx.storage.sql.databaseSize`). */
  bytes: number;
  rows: Record<VisitorTable, number>;
  pending: number;
}

/** A capped-metric question about the converters of one event (docs/statistics.md "Capping"). */
export interface ConverterQuery {
  sdkKey: string;
  experimentId: string;
  eventId: string;
  total: "events" | "revenue" | "value";
}

type SqlValue = string | number | null | ArrayBuffer;
type Cell = string | number | null;

/** The per-visitor tables one visitor's inspection shows. */
export type VisitorRowsTable = "exposures" | "conversions" | "converters";

const VISITOR_ROWS_ORDER: Record<VisitorRowsTable, string> = {
  exposures: "first_at, uuid",
  conversions: "timestamp, uuid",
  converters: "experiment_id, event_id",
};

/** One visitor's rows of `table` (?1 sdkKey, ?2 visitor id), the same SQL on D1 and on a shard. */
export function visitorRowsSql(table: VisitorRowsTable): string {
  return `SELECT ${VISITOR_COLUMNS[table].join(", ")} FROM ${table} WHERE sdk_key = ?1 AND visitor_id = ?2 ORDER BY ${VISITOR_ROWS_ORDER[table]}`;
}

/** `(uuid, sdk_key)` among a JSON parameter of [uuid, sdkKey] pairs (D1 and shards alike). */
export const SEEN_KEYS_IN = `(uuid, sdk_key) IN (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))`;

/**
 * `SELECT rowid, …columns, visitor_id … WHERE rowid > ?1 ORDER BY rowid LIMIT ?2` over a
 * per-visitor table (the same SQL on D1 and on a shard; see readMovableRows).
 */
export function movableRowsSql(table: VisitorTable): string {
  if (!VISITOR_TABLES.includes(table)) throw new Error(`not a visitor table: ${String(table)}`);
  const columns = VISITOR_COLUMNS[table];
  if (table === "seen_events")
    return `SELECT s.rowid AS _rowid, ${columns.map((c) => `s.${c}`).join(", ")}, c.visitor_id AS _visitor
      FROM seen_events AS s LEFT JOIN conversions AS c ON c.uuid = s.uuid AND c.sdk_key = s.sdk_key
      WHERE s.rowid > ?1 ORDER BY s.rowid LIMIT ?2`;
  // Aliased: D1's raw rows collapse columns of the same name.
  return `SELECT rowid AS _rowid, ${columns.join(", ")}, visitor_id AS _visitor FROM ${table}
    WHERE rowid > ?1 ORDER BY rowid LIMIT ?2`;
}

/** The stub of shard `index` (its name is stable across layouts, src/events/shard-map.ts). */
export function shardStub(
  env: Pick<Env, "VISITOR_SHARDS">,
  index: number,
): DurableObjectStub<VisitorShard> {
  return env.VISITOR_SHARDS.getByName(shardName(index));
}

/**
 * Adds every pending outbox entry of shards 0…`shards`−1 to D1 and acknowledges them (before a
 * move or a rebuild replaces state, so that no entry is added on top of it later).
 */
export async function handOverPending(
  env: Pick<Env, "DB" | "VISITOR_SHARDS">,
  shards: number,
): Promise<void> {
  for (let index = 0; index < shards; index++) {
    const stub = shardStub(env, index);
    for (;;) {
      const pending = (await stub.pending()) as unknown as ShardEntry[];
      if (pending.length === 0) break;
      await applyShardEntries(env.DB, pending);
      await stub.ack(pending[pending.length - 1]!.seq);
    }
  }
}

export class VisitorShard extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private migrated = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
  }

  /** Brings the schema to the current version (once per object instance). */
  private migrate(): void {
    if (this.migrated) return;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(
        "CREATE TABLE IF NOT EXISTS shard_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
      );
      const row = this.sql
        .exec<{ value: number }>("SELECT value FROM shard_meta WHERE key = 'schema'")
        .toArray()[0];
      let version = row ? Number(row.value) : 0;
      while (version < SHARD_MIGRATIONS.length) {
        this.sql.exec(SHARD_MIGRATIONS[version]!);
        version++;
      }
      this.sql.exec(
        "INSERT INTO shard_meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        version,
      );
    });
    this.migrated = true;
  }

  /** Rows changed by the last statement (rowsWritten would count index entries too). */
  private changes(): number {
    return Number(this.sql.exec<{ n: number }>("SELECT changes() AS n").one().n);
  }

  private meta(key: string): number | null {
    const row = this.sql
      .exec<{ value: number }>("SELECT value FROM shard_meta WHERE key = ?", key)
      .toArray()[0];
    return row ? Number(row.value) : null;
  }

  private setMeta(key: string, value: number): void {
    this.sql.exec(
      "INSERT INTO shard_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }

  /** Impressions of experiments whose rows were purged are not counted again (results are final). */
  private withoutPurged(plan: BatchPlan): BatchPlan {
    if (plan.candidates.length === 0) return plan;
    const gone = new Set<string>();
    for (const key of new Set(
      plan.candidates.map((c) => JSON.stringify([c.sdkKey, c.experimentId])),
    )) {
      const [sdkKey, experimentId] = JSON.parse(key) as [string, string];
      const hit = this.sql
        .exec(
          "SELECT 1 FROM purged_experiments WHERE sdk_key = ? AND experiment_id = ?",
          sdkKey,
          experimentId,
        )
        .toArray();
      if (hit.length > 0) gone.add(key);
    }
    if (gone.size === 0) return plan;
    return {
      ...plan,
      candidates: plan.candidates.filter(
        (c) => !gone.has(JSON.stringify([c.sdkKey, c.experimentId])),
      ),
    };
  }

  /**
   * The archived experiments to ignore, read from D1 once per object instance before its first
   * count (a shard new to the layout learns them before it counts, not at its first alarm).
   */
  private purgeListSynced = false;

  private async syncPurgeList(now: number): Promise<void> {
    if (this.purgeListSynced) return;
    const archived = await this.archivedExperiments(now);
    this.ctx.storage.transactionSync(() => {
      for (const { sdkKey, experimentId } of archived)
        this.sql.exec(
          "INSERT OR IGNORE INTO purged_experiments (sdk_key, experiment_id, purged_at) VALUES (?, ?, ?)",
          sdkKey,
          experimentId,
          now,
        );
    });
    this.purgeListSynced = true;
  }

  /** The experiments archived in some environment more than ARCHIVE_GRACE_MS ago. */
  private async archivedExperiments(
    now: number,
  ): Promise<Array<{ sdkKey: string; experimentId: string }>> {
    const since = new Date(now - ARCHIVE_GRACE_MS).toISOString();
    const { results } = await this.env.DB.prepare(
      `SELECT en.sdk_key, s.experiment_id FROM experiment_status AS s
       JOIN environments AS en ON en.id = s.environment_id
       WHERE s.status = 'Archived' AND s.updated_at <= ?`,
    )
      .bind(since)
      .all<{ sdk_key: string; experiment_id: string }>();
    return results.map((r) => ({ sdkKey: r.sdk_key, experimentId: r.experiment_id }));
  }

  /** The entries D1 may not have yet, oldest first, bounded by count and bytes. */
  private pendingEntries(): ShardEntry[] {
    const acked = this.meta("acked_seq") ?? 0;
    const out: ShardEntry[] = [];
    let bytes = 0;
    for (const row of this.sql.exec<{ body: string }>(
      "SELECT body FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
      acked,
      PENDING_LIMIT,
    )) {
      bytes += row.body.length;
      if (out.length > 0 && bytes > PENDING_BYTES) break;
      out.push(JSON.parse(row.body) as ShardEntry);
    }
    return out;
  }

  private async ensureAlarm(): Promise<void> {
    if ((await this.ctx.storage.getAlarm()) === null)
      await this.ctx.storage.setAlarm(Date.now() + MAINTENANCE_INTERVAL_MS);
  }

  /**
   * Counts one plan (the events of this shard's visitors in one queue batch) and answers with
   * the uuids the budget dropped and the pending entries. Throws, changing nothing, when SQLite
   * refuses the statements (the consumer then splits the plan to find the event at fault).
   */
  async count(input: ShardCountInput): Promise<ShardCountResult> {
    this.migrate();
    if (input.plan.candidates.length > 0)
      try {
        await this.syncPurgeList(Date.now());
      } catch (error) {
        // Not a reason to hold the batch back: the list is read again before the next count.
        console.warn("splitstream: shard could not read the archived experiments from D1", error);
      }
    const plan = this.withoutPurged(input.plan);
    let capped: string[] = [];
    let frozen = false;
    try {
      this.ctx.storage.transactionSync(() => {
        // Checked inside the transaction: no freeze can slip in between the check and the writes.
        if (this.meta("frozen") === 1) {
          frozen = true;
          return;
        }
        if (this.meta("shard") === null) this.setMeta("shard", input.shard);
        this.sql.exec("DELETE FROM variation_daily");
        this.sql.exec("DELETE FROM metric_daily");
        const steps = countSteps(plan, input.attempt, input.receivedAt, "deltas");
        steps.forEach((step, index) => {
          const rows = this.sql.exec(step.sql, ...(step.params as SqlValue[])).toArray();
          if (index === 1 && plan.conversions.length > 0)
            capped = rows.map((row) => String(row.uuid));
        });
        const visitors = [
          ...this.sql
            .exec(
              "SELECT sdk_key, experiment_id, variation_id, revision, day, visitors FROM variation_daily WHERE visitors <> 0",
            )
            .raw(),
        ] as unknown as VisitorDelta[];
        const metrics = [
          ...this.sql
            .exec(
              `SELECT sdk_key, experiment_id, variation_id, revision, event_id, day, ${METRIC_DAILY_VALUES.join(", ")}
           FROM metric_daily WHERE ${METRIC_DAILY_VALUES.map((c) => `${c} <> 0`).join(" OR ")}`,
            )
            .raw(),
        ] as unknown as MetricDelta[];
        const drops = dropDeltas(plan, capped, utcDay(input.receivedAt));
        if (visitors.length + metrics.length + drops.length > 0) {
          const seq = Number(
            this.sql
              .exec<{ seq: number }>(
                "INSERT INTO outbox (created_at, body) VALUES (?, '') RETURNING seq",
                input.receivedAt,
              )
              .one().seq,
          );
          const entry: ShardEntry = { shard: input.shard, seq, visitors, metrics, drops };
          this.sql.exec("UPDATE outbox SET body = ? WHERE seq = ?", JSON.stringify(entry), seq);
        }
      });
    } catch (error) {
      // Nothing was written (the transaction rolled back): the consumer splits the plan.
      return {
        capped: [],
        pending: [],
        error: error instanceof Error ? error.message : String(error),
      };
    }
    if (frozen) return { capped: [], pending: [], frozen: true };
    await this.ensureAlarm();
    return { capped, pending: this.pendingEntries() };
  }

  /** The entries D1 may not have yet (for the consumer's and the upkeep's hand-over). */
  async pending(): Promise<ShardEntry[]> {
    this.migrate();
    return this.pendingEntries();
  }

  /** D1 has every entry up to `seq`: forget them. */
  async ack(seq: number): Promise<void> {
    this.migrate();
    this.ctx.storage.transactionSync(() => {
      const acked = Math.max(this.meta("acked_seq") ?? 0, seq);
      this.setMeta("acked_seq", acked);
      this.sql.exec("DELETE FROM outbox WHERE seq <= ?", acked);
    });
  }

  /** Deletes dedupe keys and stored conversions older than `cutoff` (bounded; true when done). */
  async prune(
    cutoff: number,
  ): Promise<{ seenEvents: number; conversions: number; complete: boolean }> {
    this.migrate();
    const one = (table: string, column: string) => {
      let deleted = 0;
      for (let round = 0; round < PRUNE_ROUNDS; round++) {
        this.sql.exec(
          `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${column} < ? LIMIT ?)`,
          cutoff,
          PRUNE_CHUNK,
        );
        const n = this.changes();
        deleted += n;
        if (n < PRUNE_CHUNK) return { deleted, complete: true };
      }
      return { deleted, complete: false };
    };
    const seen = one("seen_events", "received_at");
    const conversions = one("conversions", "timestamp");
    return {
      seenEvents: seen.deleted,
      conversions: conversions.deleted,
      complete: seen.complete && conversions.complete,
    };
  }

  /**
   * Ignores the impressions of `experiments` from now on and deletes their exposures, PRUNE_CHUNK
   * rows per statement, at most 2 · PRUNE_ROUNDS statements per call; what is left goes with the
   * next call (the alarm's). Without exposures no later conversion is attributed to them, so their
   * results in D1 stay as they are. Their converters rows stay: a capped metric's results read
   * the visitors' totals there (docs/statistics.md "Capping"), and they no longer change.
   */
  async purgeExperiments(
    experiments: Array<{ sdkKey: string; experimentId: string }>,
    now: number,
  ): Promise<number> {
    this.migrate();
    this.ctx.storage.transactionSync(() => {
      for (const { sdkKey, experimentId } of experiments)
        this.sql.exec(
          "INSERT OR IGNORE INTO purged_experiments (sdk_key, experiment_id, purged_at) VALUES (?, ?, ?)",
          sdkKey,
          experimentId,
          now,
        );
    });
    return this.deletePurgedRows();
  }

  /** Deletes (bounded) the rows of purged experiments that still have some. */
  private deletePurgedRows(): number {
    let deleted = 0;
    let rounds = 0;
    const todo = this.sql
      .exec<{ sdk_key: string; experiment_id: string }>(
        "SELECT sdk_key, experiment_id FROM purged_experiments WHERE rows_left = 1",
      )
      .toArray();
    for (const { sdk_key, experiment_id } of todo) {
      let left = false;
      for (const table of ["exposures"]) {
        for (;;) {
          if (rounds++ >= PRUNE_ROUNDS * 2) return deleted;
          this.sql.exec(
            `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE sdk_key = ? AND experiment_id = ? LIMIT ?)`,
            sdk_key,
            experiment_id,
            PRUNE_CHUNK,
          );
          const n = this.changes();
          deleted += n;
          if (n < PRUNE_CHUNK) break;
          left = true;
        }
      }
      if (!left)
        this.sql.exec(
          "UPDATE purged_experiments SET rows_left = 0 WHERE sdk_key = ? AND experiment_id = ?",
          sdk_key,
          experiment_id,
        );
    }
    return deleted;
  }

  /** A page of `table`'s rows (of `sdkKey`, or all), in rowid order after `after`. */
  async readRows(
    table: VisitorTable,
    options: { sdkKey?: string; after?: number; limit?: number } = {},
  ): Promise<ShardRowsPage> {
    this.migrate();
    if (!VISITOR_TABLES.includes(table)) throw new Error(`not a visitor table: ${String(table)}`);
    const limit = Math.min(Math.max(1, options.limit ?? 1000), 5000);
    const columns = VISITOR_COLUMNS[table].join(", ");
    const where = options.sdkKey === undefined ? "" : "AND sdk_key = ?";
    const params: SqlValue[] = [options.after ?? -1];
    if (options.sdkKey !== undefined) params.push(options.sdkKey);
    params.push(limit);
    const rows = [
      ...this.sql
        .exec(
          `SELECT rowid, ${columns} FROM ${table} WHERE rowid > ? ${where} ORDER BY rowid LIMIT ?`,
          ...params,
        )
        .raw(),
    ] as Array<Array<string | number | null>>;
    const last = rows[rows.length - 1];
    return {
      rows: rows.map((row) => row.slice(1)),
      next: rows.length === limit && last ? Number(last[0]) : null,
    };
  }

  /**
   * A page of `table`'s rows for a move between layouts: [rowid, …columns, visitor id]. A
   * seen_events row has no visitor column: a conversion's is its stored conversion's, an
   * impression's (and a dropped conversion's) is null — src/events/layout-move.ts says why
   * those need not move.
   */
  async readMovableRows(table: VisitorTable, after: number, limit: number): Promise<Cell[][]> {
    this.migrate();
    return [...this.sql.exec(movableRowsSql(table), after, limit).raw()] as Cell[][];
  }

  /**
   * The seen_events rows of `keys` ([uuid, sdkKey] pairs: a move takes an exposure's dedupe key
   * along with it).
   */
  async readSeenRows(keys: Array<[string, string]>): Promise<Cell[][]> {
    this.migrate();
    return [
      ...this.sql
        .exec(
          `SELECT ${VISITOR_COLUMNS.seen_events.join(", ")} FROM seen_events WHERE ${SEEN_KEYS_IN}`,
          JSON.stringify(keys),
        )
        .raw(),
    ] as Cell[][];
  }

  /** Deletes the seen_events rows of `keys` ([uuid, sdkKey] pairs, after a move copied them). */
  async deleteSeenRows(keys: Array<[string, string]>): Promise<void> {
    this.migrate();
    this.sql.exec(`DELETE FROM seen_events WHERE ${SEEN_KEYS_IN}`, JSON.stringify(keys));
  }

  /** Inserts rows of a per-visitor table (a move or a rebuild); existing keys are kept. */
  async importRows(
    table: VisitorTable,
    rows: Array<Array<string | number | null>>,
  ): Promise<number> {
    this.migrate();
    if (!VISITOR_TABLES.includes(table)) throw new Error(`not a visitor table: ${String(table)}`);
    const columns = VISITOR_COLUMNS[table];
    const select = columns.map((_, i) => `json_extract(j.value, '$[${i}]')`).join(", ");
    let written = 0;
    this.ctx.storage.transactionSync(() => {
      for (let i = 0; i < rows.length; i += 500) {
        this.sql.exec(
          `INSERT OR IGNORE INTO ${table} (${columns.join(", ")}) SELECT ${select} FROM json_each(?) AS j`,
          JSON.stringify(rows.slice(i, i + 500)),
        );
        written += this.changes();
      }
      // Exposures of an experiment this shard already purged (a move brought them from a shard
      // that had not finished): purge them again at the next upkeep.
      if (table === "exposures")
        this.sql.exec(
          `UPDATE purged_experiments SET rows_left = 1 WHERE rows_left = 0 AND EXISTS (
             SELECT 1 FROM exposures AS e WHERE e.sdk_key = purged_experiments.sdk_key
               AND e.experiment_id = purged_experiments.experiment_id)`,
        );
    });
    await this.ensureAlarm();
    return written;
  }

  /** Deletes rows of a per-visitor table by rowid (after a move copied them elsewhere). */
  async deleteRows(table: VisitorTable, rowids: number[]): Promise<number> {
    this.migrate();
    if (!VISITOR_TABLES.includes(table)) throw new Error(`not a visitor table: ${String(table)}`);
    let deleted = 0;
    this.ctx.storage.transactionSync(() => {
      for (let i = 0; i < rowids.length; i += 500) {
        this.sql.exec(
          `DELETE FROM ${table} WHERE rowid IN (SELECT value FROM json_each(?))`,
          JSON.stringify(rowids.slice(i, i + 500)),
        );
        deleted += this.changes();
      }
    });
    return deleted;
  }

  /**
   * The rebuild's comparison of one sdkKey's shadow rows with its live ones on this shard
   * (src/events/rebuild-sql.ts), table by table, with at most `limit` differing rows in all.
   */
  async compareShadow(names: ShadowNames, limit: number): Promise<ShadowComparison> {
    this.migrate();
    const one = (st: Statement) =>
      Number(this.sql.exec<{ n: number }>(st.sql, ...st.params).one().n);
    const out: ShadowComparison = { tables: {}, samples: [], folded: 0 };
    for (const table of SHARD_COMPARED) {
      const st = compareStatements(
        table,
        { ...names, purged: true },
        Math.max(0, limit - out.samples.length),
      );
      out.tables[table] = {
        live: one(st.live),
        rebuilt: one(st.rebuilt),
        differences: one(st.differing),
      };
      if (out.samples.length < limit)
        for (const row of this.sql.exec<{
          key: string;
          live: string | null;
          rebuilt: string | null;
        }>(st.samples.sql, ...st.samples.params))
          out.samples.push({ table, key: row.key, live: row.live, rebuilt: row.rebuilt });
    }
    const folded = foldedCountStatement(names.job, names.live);
    out.folded = one(folded);
    return out;
  }

  /**
   * The rebuild's apply of one sdkKey on this shard, in one transaction: the live per-visitor rows
   * go, the shadow ones become live (src/events/rebuild-sql.ts `adoptStatements`). Exposures of an
   * experiment this shard had purged come back with the archive: they are purged again at the
   * next upkeep.
   */
  async adoptShadow(
    names: Pick<ShadowNames, "live" | "job" | "since">,
  ): Promise<Record<string, number>> {
    this.migrate();
    const written: Record<string, number> = {};
    // Once per (job, sdkKey): a retried apply step must not swap again (it would delete the rows
    // the first swap made live). The marker commits with the swap.
    const marker = `adopted:${names.job}:${names.live}`;
    if (this.meta(marker) !== null) return written;
    this.ctx.storage.transactionSync(() => {
      this.setMeta(marker, Date.now());
      for (const st of adoptStatements(["seen_events", ...SHARD_COMPARED], names)) {
        this.sql.exec(st.sql, ...st.params);
        if (st.counts) written[st.table] = (written[st.table] ?? 0) + this.changes();
      }
      this.sql.exec(
        `UPDATE purged_experiments SET rows_left = 1 WHERE rows_left = 0 AND sdk_key = ? AND EXISTS (
           SELECT 1 FROM exposures AS e WHERE e.sdk_key = purged_experiments.sdk_key
             AND e.experiment_id = purged_experiments.experiment_id)`,
        names.live,
      );
    });
    await this.ensureAlarm();
    return written;
  }

  /**
   * Deletes every shadow row of rebuild job `job` on this shard — of every job with `null` (and
   * then the apply markers too).
   */
  async dropShadow(job: string | null): Promise<void> {
    this.migrate();
    this.ctx.storage.transactionSync(() => {
      for (const st of dropStatements(VISITOR_TABLES, job)) this.sql.exec(st.sql, ...st.params);
      if (job === null) this.sql.exec("DELETE FROM shard_meta WHERE key LIKE 'adopted:%'");
    });
  }

  /** One visitor's rows (the API's visitor inspection, docs/events.md "Inspecting a visitor"). */
  async visitor(
    sdkKey: string,
    visitorId: string,
  ): Promise<Record<"exposures" | "conversions" | "converters", Record<string, SqlValue>[]>> {
    this.migrate();
    const rows = (table: VisitorRowsTable) =>
      this.sql.exec<Record<string, SqlValue>>(visitorRowsSql(table), sdkKey, visitorId).toArray();
    return {
      exposures: rows("exposures"),
      conversions: rows("conversions"),
      converters: rows("converters"),
    };
  }

  /** Size and row counts. */
  async stats(): Promise<ShardStats> {
    this.migrate();
    const rows = {} as Record<VisitorTable, number>;
    for (const table of VISITOR_TABLES)
      rows[table] = Number(
        this.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).one().n,
      );
    const acked = this.meta("acked_seq") ?? 0;
    return {
      shard: this.meta("shard"),
      bytes: this.sql.databaseSize,
      rows,
      pending: Number(
        this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE seq > ?", acked).one()
          .n,
      ),
    };
  }

  /** CUPED's per-variation sums of one metric over this shard's visitors (src/events/covariate-sql.ts). */
  async covariateSums(
    sdkKey: string,
    experimentId: string,
    eventId: string,
    total: CovariateTotal,
  ): Promise<CovariateRow[]> {
    this.migrate();
    return this.sql
      .exec<Record<keyof CovariateRow, string | number>>(
        covariateSumsSql(requireCovariateTotal(total)),
        sdkKey,
        experimentId,
        eventId,
        COVARIATE_WINDOW_MS,
        COVARIATE_GAP_MS,
      )
      .toArray()
      .map((row) => ({
        variationId: String(row.variationId),
        n: Number(row.n),
        firstAt: Number(row.firstAt),
        sumY: Number(row.sumY),
        sumY2: Number(row.sumY2),
        sumX: Number(row.sumX),
        sumX2: Number(row.sumX2),
        sumXY: Number(row.sumXY),
      }));
  }

  /** A breakdown's per-(value, variation) sums over this shard's visitors (src/events/breakdown-sql.ts). */
  async breakdownSums(
    sdkKey: string,
    experimentId: string,
    eventId: string,
    dimension: BreakdownDimension,
    total: CovariateTotal,
  ): Promise<BreakdownRow[]> {
    this.migrate();
    return this.sql
      .exec<Record<keyof BreakdownRow, string | number>>(
        breakdownSumsSql(requireDimension(dimension), requireCovariateTotal(total)),
        sdkKey,
        experimentId,
        eventId,
      )
      .toArray()
      .map((row) => ({
        value: String(row.value),
        variationId: String(row.variationId),
        n: Number(row.n),
        sum: Number(row.sum),
        sumSq: Number(row.sumSq),
      }));
  }

  /** How many converters of the event (capped metrics, docs/statistics.md). */
  async countConverters(q: ConverterQuery): Promise<number> {
    this.migrate();
    return Number(
      this.sql
        .exec<{ n: number }>(
          "SELECT count(*) AS n FROM converters WHERE sdk_key = ? AND experiment_id = ? AND event_id = ?",
          q.sdkKey,
          q.experimentId,
          q.eventId,
        )
        .one().n,
    );
  }

  /** The `n` smallest (`order` asc) or largest (desc) per-visitor totals of the event's converters. */
  async converterTotals(q: ConverterQuery, order: "asc" | "desc", n: number): Promise<number[]> {
    this.migrate();
    const total = totalColumn(q.total);
    return this.sql
      .exec<{ x: number }>(
        `SELECT ${total} AS x FROM converters WHERE sdk_key = ? AND experiment_id = ? AND event_id = ?
         ORDER BY ${total} ${order === "asc" ? "ASC" : "DESC"} LIMIT ?`,
        q.sdkKey,
        q.experimentId,
        q.eventId,
        Math.max(0, Math.floor(n)),
      )
      .toArray()
      .map((row) => Number(row.x));
  }

  /** Per variation: Σ and Σ² of the totals held to `threshold`, and how many were held. */
  async cappedSums(
    q: ConverterQuery,
    bound: "absolute" | "upper",
    threshold: number,
  ): Promise<Array<{ variationId: string; sum: number; sumSq: number; capped: number }>> {
    this.migrate();
    const x = totalColumn(q.total);
    const capped = bound === "absolute" ? `max(min(${x}, ?4), -?4)` : `min(${x}, ?4)`;
    return this.sql
      .exec<{ variation_id: string; sum: number; sum_sq: number; capped: number }>(
        `SELECT variation_id, total(${capped}) AS sum, total(${capped} * ${capped}) AS sum_sq,
           total(${capped} <> ${x}) AS capped
         FROM converters WHERE sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3 GROUP BY variation_id`,
        q.sdkKey,
        q.experimentId,
        q.eventId,
        threshold,
      )
      .toArray()
      .map((row) => ({
        variationId: row.variation_id,
        sum: Number(row.sum),
        sumSq: Number(row.sum_sq),
        capped: Number(row.capped),
      }));
  }

  /**
   * Upkeep: plan the next run first (a failing step must not stop the upkeep for good), then
   * prune, purge archived experiments and hand over stale entries — each on its own, so that a
   * D1 that refuses the hand-over does not stop retention.
   */
  override async alarm(): Promise<void> {
    this.migrate();
    const now = Date.now();
    const holdsState = VISITOR_TABLES.some(
      (table) => this.sql.exec(`SELECT 1 FROM ${table} LIMIT 1`).toArray().length > 0,
    );
    if (holdsState || this.pendingEntries().length > 0)
      await this.ctx.storage.setAlarm(now + MAINTENANCE_INTERVAL_MS);
    const failures: unknown[] = [];
    const step = async (what: string, run: () => Promise<unknown>) => {
      try {
        await run();
      } catch (error) {
        console.error(
          `splitstream: shard ${this.meta("shard") ?? "?"} upkeep: ${what} failed`,
          error,
        );
        failures.push(error);
      }
    };
    await step("pruning", () => this.prune(retentionCutoff(now)));
    await step("purging archived experiments", async () => {
      const known = new Set(
        this.sql
          .exec<{ sdk_key: string; experiment_id: string }>(
            "SELECT sdk_key, experiment_id FROM purged_experiments",
          )
          .toArray()
          .map((p) => JSON.stringify([p.sdk_key, p.experiment_id])),
      );
      const archived = (await this.archivedExperiments(now)).filter(
        (a) => !known.has(JSON.stringify([a.sdkKey, a.experimentId])),
      );
      await this.purgeExperiments(archived, now);
    });
    await step("handing entries over to D1", async () => {
      // A backlog drains page by page (bounded per run).
      for (let page = 0; page < 20; page++) {
        const pending = this.pendingEntries();
        if (pending.length === 0) return;
        await applyShardEntries(this.env.DB, pending);
        await this.ack(pending[pending.length - 1]!.seq);
      }
    });
    // Nothing is retried sooner than the next hourly run: the failures are logged above.
    if (failures.length > 0 && !holdsState)
      await this.ctx.storage.setAlarm(now + MAINTENANCE_INTERVAL_MS);
  }

  /** Stops (`true`) or resumes counting on this shard (a move between layouts, src/events/layout-move.ts). */
  async setFrozen(frozen: boolean): Promise<void> {
    this.migrate();
    this.ctx.storage.transactionSync(() => this.setMeta("frozen", frozen ? 1 : 0));
  }
}

function totalColumn(total: ConverterQuery["total"]): string {
  if (total !== "events" && total !== "revenue" && total !== "value")
    throw new Error(`not a converters total: ${String(total)}`);
  return total;
}

/** The budget's drops of a call, per sdkKey, on the processing day. */
function dropDeltas(plan: BatchPlan, capped: readonly string[], day: string): DropDelta[] {
  if (capped.length === 0) return [];
  const sdkOf = new Map(plan.conversions.map((c) => [c.uuid, c.sdkKey]));
  const counts = new Map<string, number>();
  for (const uuid of capped) {
    const sdkKey = sdkOf.get(uuid);
    if (sdkKey !== undefined) counts.set(sdkKey, (counts.get(sdkKey) ?? 0) + 1);
  }
  return [...counts].map(([sdkKey, n]) => [sdkKey, day, n]);
}
