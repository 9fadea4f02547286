/**
 * Rebuild from the raw-events archive (docs/events.md "Rebuild"): recompute the consumer's
 * derived tables from the NDJSON objects the consumer wrote to R2 (`events/…`, one per batch),
 * compare them with the live D1 rows, and optionally replace the live rows with the rebuilt ones.
 *
 * The fold is the consumer's own reference model: every archive object is one `applyPlan` batch,
 * duplicates (same uuid, e.g. a batch archived twice) count once. Because the aggregates do not
 * depend on batch order or split (docs/events.md "Order independence"), this equals what the
 * consumer computed from the same events — so any difference means the live tables were damaged
 * (lost or edited rows, a bug, events counted before migration 0003 kept conversions, per-visitor
 * totals and sums of squares that migration 0006 could not backfill because the conversions were
 * already pruned) or events are in the archive but were never counted (their batch ended in the
 * dead-letter queue). Every column is compared and rebuilt, the per-visitor ones included
 * (src/events/tables.ts).
 *
 * Limits: everything happens in one invocation and in memory — one R2 read per archive object
 * (listed with a cursor, any number of pages) and the rebuilt rows of the selected sdkKeys.
 */
import {
  ARCHIVE_PREFIX,
  DROPPED_PREFIX,
  REJECTED_PREFIX,
  applyPlan,
  emptyState,
  planBatch,
  type AggregateState,
} from "./aggregate";
import type { EventMessage } from "../shared/event-messages";
import { retentionCutoff } from "./retention";
import {
  DERIVED_TABLES,
  columnsOf,
  diffRows,
  liveSdkKeys,
  stateRows,
  type DerivedTable,
  type Row,
  type RowDifference,
  type TableRows,
} from "./tables";
import { validateMessage } from "./validate-message";
import type { Env } from "../env";
import { loadEventLayout } from "./event-layout";
import { shardOf } from "./shard-map";
import { VISITOR_COLUMNS, type VisitorTable } from "./shard-schema";
import { readDerivedRows } from "./visitor-state";
import { handOverPending, shardStub } from "./visitor-shard";

/** A rebuild that cannot run now (the API answers 409). */
export class RebuildRefused extends Error {}

export interface RebuildOptions {
  /** Only this sdkKey; absent = every sdkKey found in the archive or in the live tables. */
  sdkKey?: string;
  /** Replace the live rows of the compared sdkKeys with the rebuilt ones. */
  apply: boolean;
  /** "Now" for the conversions retention window (default Date.now()). */
  now?: number;
  /** At most this many differences are listed (all are counted). Default 1000. */
  maxDifferences?: number;
}

export interface InvalidLine {
  object: string;
  line: number;
  reason: string;
}

export interface TableSummary {
  live: number;
  rebuilt: number;
  differences: number;
}

export interface RebuildReport {
  /** The sdkKeys compared (and replaced, with apply). */
  sdkKeys: string[];
  /** Archive objects read. */
  objectsRead: number;
  /** Event lines read from them (every sdkKey). */
  eventsRead: number;
  /** Distinct events (by uuid) of the compared sdkKeys that went into the fold. */
  eventsFolded: number;
  /** Lines of the compared sdkKeys whose uuid had been read before (counted once). */
  duplicates: number;
  /** Lines that are not valid event messages (never expected: the consumer archives valid ones). */
  invalidLines: number;
  invalid: InvalidLine[];
  /** Stored conversions are compared from this time on (older ones are pruned, ISO 8601). */
  conversionsSince: string;
  tables: Record<DerivedTable, TableSummary>;
  /** The differing rows (at most maxDifferences), table by table. */
  differences: RowDifference[];
  differencesTruncated: boolean;
  /** True when no row differs. */
  matches: boolean;
  /** True when the live rows were replaced with the rebuilt ones. */
  applied: boolean;
  /** Rows written per table by apply (null without apply). */
  written: Record<DerivedTable, number> | null;
}

/** Archive objects fetched at the same time. */
const READ_CONCURRENCY = 8;
/** Rows per INSERT statement (one JSON parameter) and statements per D1 batch, for apply. */
const INSERT_ROWS = 500;
const BATCH_STATEMENTS = 50;
const MAX_INVALID_LISTED = 100;

/** Every archive object key, in key (= processing time) order, listed page by page. */
export async function listArchive(bucket: R2Bucket): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: ARCHIVE_PREFIX, cursor, limit: 1000 });
    for (const object of page.objects) keys.push(object.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor !== undefined);
  return keys;
}

interface Fold {
  state: AggregateState;
  objectsRead: number;
  eventsRead: number;
  eventsFolded: number;
  duplicates: number;
  invalid: InvalidLine[];
  invalidLines: number;
  sdkKeys: Set<string>;
  /** Per sdkKey, the [uuid, type, visitorId] of every event folded (seen_events rows of apply). */
  folded: Map<string, Array<[string, EventMessage["type"], string]>>;
}

/** Every line of every object under `prefix` whose key passes `wanted`, parsed (bad lines skipped). */
async function readLines(
  bucket: R2Bucket,
  prefix: string,
  wanted: (key: string) => boolean,
): Promise<unknown[]> {
  const lines: unknown[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, limit: 1000 });
    for (const object of page.objects) {
      if (!wanted(object.key)) continue;
      const text = await (await bucket.get(object.key))?.text();
      for (const line of text?.split("\n") ?? []) {
        if (line.trim() === "") continue;
        try {
          lines.push(JSON.parse(line));
        } catch {
          // Not a line the consumer wrote: nothing to exclude.
        }
      }
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor !== undefined);
  return lines;
}

/**
 * The uuids the consumer archived but did not count: events it could not count alone
 * (`stage: "count_failed"` lines under `rejected/`) and conversions the per-visitor budget
 * dropped (`dropped/`, src/events/consumer.ts). The rebuild leaves them out rather than deciding
 * again — which conversions the budget keeps depends on the order the queue delivered them in.
 */
export async function uncountedUuids(bucket: R2Bucket): Promise<Set<string>> {
  const uuids = new Set<string>();
  const add = (uuid: unknown) => {
    if (typeof uuid === "string") uuids.add(uuid);
  };
  for (const line of await readLines(bucket, REJECTED_PREFIX, (key) =>
    key.endsWith("-count_failed.ndjson"),
  ))
    add((line as { body?: { uuid?: unknown } } | null)?.body?.uuid);
  for (const line of await readLines(bucket, DROPPED_PREFIX, () => true))
    add((line as { uuid?: unknown } | null)?.uuid);
  return uuids;
}

/** The rebuild applies no budget of its own: what the live budget dropped is left out instead. */
const NO_BUDGET = () => Number.POSITIVE_INFINITY;

/**
 * Reads the whole archive and folds the events of `sdkKey` (or all) into a fresh state, without
 * the events the consumer archived but did not count (`uncountedUuids`).
 */
export async function foldArchive(bucket: R2Bucket, sdkKey: string | undefined): Promise<Fold> {
  const excluded = await uncountedUuids(bucket);
  const fold: Fold = {
    state: emptyState(),
    objectsRead: 0,
    eventsRead: 0,
    eventsFolded: 0,
    duplicates: 0,
    invalid: [],
    invalidLines: 0,
    sdkKeys: new Set(),
    folded: new Map(),
  };
  const keys = await listArchive(bucket);
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
    const window = keys.slice(i, i + READ_CONCURRENCY);
    const texts = await Promise.all(
      window.map(async (key) => {
        const object = await bucket.get(key);
        // Listed a moment ago and gone now (deleted meanwhile): nothing to fold.
        return object === null ? null : object.text();
      }),
    );
    window.forEach((key, index) => {
      const text = texts[index];
      if (text === null || text === undefined) return;
      fold.objectsRead++;
      foldObject(fold, key, text, sdkKey, excluded);
    });
  }
  return fold;
}

function foldObject(
  fold: Fold,
  key: string,
  text: string,
  sdkKey: string | undefined,
  excluded: ReadonlySet<string>,
): void {
  const events: EventMessage[] = [];
  const lines = text.split("\n");
  lines.forEach((line, index) => {
    if (line.trim() === "") return;
    fold.eventsRead++;
    let body: unknown;
    try {
      body = JSON.parse(line);
    } catch {
      return invalid(fold, key, index + 1, "not JSON");
    }
    // The consumer checked the time window when it archived the event: check the shape only,
    // with the event's own timestamp as "now".
    const timestamp = (body as { timestamp?: unknown } | null)?.timestamp;
    const result = validateMessage(body, typeof timestamp === "number" ? timestamp : 0);
    if (!result.ok) return invalid(fold, key, index + 1, result.reason);
    if (excluded.has(result.message.uuid)) return;
    fold.sdkKeys.add(result.message.sdkKey);
    if (sdkKey === undefined || result.message.sdkKey === sdkKey) {
      events.push(result.message);
      const folded = fold.folded.get(result.message.sdkKey) ?? [];
      fold.folded.set(result.message.sdkKey, folded);
      folded.push([result.message.uuid, result.message.type, result.message.visitorId]);
    }
  });
  const before = fold.state.seen.size;
  applyPlan(fold.state, planBatch(events, NO_BUDGET));
  const added = fold.state.seen.size - before;
  fold.eventsFolded += added;
  fold.duplicates += events.length - added;
}

function invalid(fold: Fold, object: string, line: number, reason: string): void {
  fold.invalidLines++;
  if (fold.invalid.length < MAX_INVALID_LISTED) fold.invalid.push({ object, line, reason });
}

/** The rebuilt rows of one sdkKey; stored conversions only from `since` on (as live keeps them). */
function rowsFor(all: TableRows, sdkKey: string, since: number): TableRows {
  const out = {} as TableRows;
  for (const table of DERIVED_TABLES)
    out[table] = all[table].filter(
      (row) =>
        row.sdk_key === sdkKey && (table !== "conversions" || (row.timestamp as number) >= since),
    );
  return out;
}

/**
 * Rebuilds the derived tables from the archive and compares them with D1; with `apply`, replaces
 * the live rows of the compared sdkKeys with the rebuilt ones (the report still shows the
 * differences found before).
 */
export async function rebuildAggregates(
  env: Pick<Env, "DB" | "ARCHIVE" | "VISITOR_SHARDS" | "EVENT_SHARDS">,
  options: RebuildOptions,
): Promise<RebuildReport> {
  const now = options.now ?? Date.now();
  const since = retentionCutoff(now);
  const maxDifferences = options.maxDifferences ?? 1000;
  const fold = await foldArchive(env.ARCHIVE, options.sdkKey);
  const sdkKeys =
    options.sdkKey !== undefined
      ? [options.sdkKey]
      : [...new Set([...fold.sdkKeys, ...(await liveSdkKeys(env.DB))])].sort();

  const rebuiltAll = stateRows(fold.state);
  const tables = Object.fromEntries(
    DERIVED_TABLES.map((t) => [t, { live: 0, rebuilt: 0, differences: 0 }]),
  ) as Record<DerivedTable, TableSummary>;
  const differences: RowDifference[] = [];
  const rebuiltBySdk = new Map<string, TableRows>();
  for (const sdkKey of sdkKeys) {
    const rebuilt = rowsFor(rebuiltAll, sdkKey, since);
    rebuiltBySdk.set(sdkKey, rebuilt);
    for (const table of DERIVED_TABLES) {
      let live = await readDerivedRows(env, table, sdkKey);
      if (table === "conversions") live = live.filter((row) => (row.timestamp as number) >= since);
      const diff = diffRows(table, live, rebuilt[table]);
      tables[table].live += live.length;
      tables[table].rebuilt += rebuilt[table].length;
      tables[table].differences += diff.length;
      for (const d of diff) if (differences.length < maxDifferences) differences.push(d);
    }
  }
  const total = DERIVED_TABLES.reduce((n, t) => n + tables[t].differences, 0);

  let written: Record<DerivedTable, number> | null = null;
  if (options.apply) {
    written = Object.fromEntries(DERIVED_TABLES.map((t) => [t, 0])) as Record<DerivedTable, number>;
    const { shards, movingTo } = await loadEventLayout(env);
    if (movingTo !== null)
      throw new RebuildRefused(
        `the event state is moving to ${movingTo} shard(s): apply after the move has finished`,
      );
    // Entries the shards still hold would be added on top of the rebuilt aggregates: add them now.
    if (shards > 0) await handOverPending(env, shards);
    for (const sdkKey of sdkKeys) {
      const rebuilt = rebuiltBySdk.get(sdkKey)!;
      const folded = fold.folded.get(sdkKey) ?? [];
      if (shards === 0) await replaceRows(env.DB, sdkKey, rebuilt, folded, now);
      else await replaceOnShards(env, shards, sdkKey, rebuilt, folded, now);
      for (const table of DERIVED_TABLES) written[table] += rebuilt[table].length;
    }
  }

  return {
    sdkKeys,
    objectsRead: fold.objectsRead,
    eventsRead: fold.eventsRead,
    eventsFolded: fold.eventsFolded,
    duplicates: fold.duplicates,
    invalidLines: fold.invalidLines,
    invalid: fold.invalid,
    conversionsSince: new Date(since).toISOString(),
    tables,
    differences,
    differencesTruncated: total > differences.length,
    matches: total === 0,
    applied: options.apply,
    written,
  };
}

/**
 * Replaces every derived row of `sdkKey` with `rows`: deletes, then INSERT … SELECT over JSON
 * chunks, in D1 batches of at most BATCH_STATEMENTS statements. When everything fits in one batch
 * (up to ~20 000 rows) it is one transaction; otherwise an interrupted apply leaves a partial
 * state — run it again (it starts by deleting).
 */
async function replaceRows(
  db: D1Database,
  sdkKey: string,
  rows: TableRows,
  folded: Array<[string, EventMessage["type"], string]>,
  now: number,
  tables: readonly DerivedTable[] = DERIVED_TABLES,
): Promise<void> {
  const statements: D1PreparedStatement[] = tables.map((table) =>
    db.prepare(`DELETE FROM ${table} WHERE sdk_key = ?`).bind(sdkKey),
  );
  // Every folded event is now counted: mark its uuid seen, so that a later delivery of it (a
  // dead-lettered batch replayed after the rebuild) is a duplicate and cannot count twice.
  const seenSql = `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
    SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), ?2, ?3, 'rebuild'
    FROM json_each(?1) AS j`;
  for (let i = 0; i < folded.length; i += INSERT_ROWS)
    statements.push(
      db
        .prepare(seenSql)
        .bind(
          JSON.stringify(folded.slice(i, i + INSERT_ROWS).map(([uuid, type]) => [uuid, type])),
          sdkKey,
          now,
        ),
    );
  for (const table of tables) {
    const columns = columnsOf(table);
    const select = columns.map((_, i) => `json_extract(j.value, '$[${i}]')`).join(", ");
    const sql = `INSERT INTO ${table} (${columns.join(", ")}) SELECT ${select} FROM json_each(?1) AS j`;
    for (let i = 0; i < rows[table].length; i += INSERT_ROWS) {
      const chunk = rows[table]
        .slice(i, i + INSERT_ROWS)
        .map((row: Row) => columns.map((c) => row[c]));
      statements.push(db.prepare(sql).bind(JSON.stringify(chunk)));
    }
  }
  for (let i = 0; i < statements.length; i += BATCH_STATEMENTS)
    await db.batch(statements.slice(i, i + BATCH_STATEMENTS));
}

/**
 * The shard layout's replace: D1's aggregates as in the single-database layout; every shard's
 * per-visitor rows of `sdkKey` deleted, then the rebuilt ones (and the folded events' dedupe
 * keys) imported into their visitors' shards.
 */
async function replaceOnShards(
  env: Pick<Env, "DB" | "VISITOR_SHARDS">,
  shards: number,
  sdkKey: string,
  rows: TableRows,
  folded: Array<[string, EventMessage["type"], string]>,
  now: number,
): Promise<void> {
  await replaceRows(env.DB, sdkKey, rows, [], now, ["variation_daily", "metric_daily"]);
  await Promise.all(
    Array.from({ length: shards }, (_, index) => shardStub(env, index).clearSdkKey(sdkKey)),
  );
  const perShard = Array.from({ length: shards }, () => new Map<VisitorTable, Cell[][]>());
  const add = (visitorId: string, table: VisitorTable, values: Cell[]) => {
    const tables = perShard[shardOf(sdkKey, visitorId, shards)]!;
    const list = tables.get(table) ?? [];
    list.push(values);
    tables.set(table, list);
  };
  for (const [uuid, type, visitorId] of folded)
    add(visitorId, "seen_events", [uuid, type, sdkKey, now, "rebuild"]);
  for (const table of ["exposures", "conversions", "converters"] as const)
    for (const row of rows[table])
      add(
        String(row.visitor_id),
        table,
        VISITOR_COLUMNS[table].map((c) => row[c] ?? null),
      );
  await Promise.all(
    perShard.map(async (tables, index) => {
      for (const [table, values] of tables)
        for (let i = 0; i < values.length; i += INSERT_ROWS * 4)
          await shardStub(env, index).importRows(table, values.slice(i, i + INSERT_ROWS * 4));
    }),
  );
}

type Cell = string | number | null;
