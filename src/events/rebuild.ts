/**
 * Rebuild from the raw-events archive (docs/events.md "Rebuild"), streaming: recompute the
 * consumer's derived rows — exposures, stored conversions, converters, variation_daily,
 * metric_daily — from the NDJSON objects the consumer wrote to R2 (`events/…`, one per batch),
 * compare them with the live rows, and on request replace the live rows with the rebuilt ones.
 *
 * How, in bounded steps (each a few R2 objects; the job's state is a cursor and counters, kept by
 * the RebuildJob Durable Object, src/events/rebuild-job.ts, which runs one step after another):
 * 1. seeding — the uuids the consumer archived but did not count (conversions its per-visitor
 *    budget dropped, under `dropped/`; events it could not count alone, `rejected/…-count_failed`)
 *    become dedupe keys of the shadow namespace first, so the replay skips exactly those: which
 *    conversions a budget keeps depends on the order the queue delivered them in;
 * 2. replaying — every archived event, under a shadow sdkKey and uuid (src/events/rebuild-sql.ts),
 *    goes through the consumer's own counting (`countEvents`, src/events/consumer.ts) with no
 *    budget, on its visitor's real shard; the counting dedupes by uuid (a batch archived twice
 *    counts once) and does not depend on order or split (docs/events.md "Order independence"),
 *    so the shadow rows are what the consumer computed from the same events;
 * 3. comparing — one sdkKey per step, in SQL inside D1 and each shard: counts per table and the
 *    first differing rows. A difference means the live rows were damaged, or events are in the
 *    archive that were never counted (their batch ended in the dead-letter queue);
 * 4. applying (on request) — per sdkKey the live rows are deleted and the shadow rows renamed;
 *    then every leftover shadow row is dropped. Cancel and failure drop them too.
 *
 * Memory is bounded by one step (chunkObjects archive objects); a step that is interrupted is run
 * again from the last saved cursor, and counting it twice changes nothing (the shadow dedupe keys).
 */
import { ARCHIVE_PREFIX, DROPPED_PREFIX, REJECTED_PREFIX, type CapOf } from "./aggregate";
import type { EventMessage } from "../shared/event-messages";
import type { Env } from "../env";
import { retentionCutoff } from "./retention";
import { DERIVED_TABLES, liveSdkKeys, type DerivedTable, type Row } from "./tables";
import { validateMessage } from "./validate-message";
import { readLayout } from "./event-layout";
import { shardOf } from "./shard-map";
import { handOverPending, shardStub } from "./visitor-shard";
import { MovingRetry, countEvents, type Countable } from "./consumer";
import {
  EXCLUDED_ATTEMPT,
  adoptStatements,
  compareStatements,
  dropStatements,
  foldedCountStatement,
  isShadowKey,
  shadowKey,
  shadowPrefix,
  type Statement,
} from "./rebuild-sql";

/** Where a job is. */
export type RebuildStatus =
  "running" | "compared" | "applying" | "applied" | "cancelling" | "cancelled" | "failed";

/** The step a running job does next. */
export type RebuildPhase =
  | "cleaning"
  | "seeding-dropped"
  | "seeding-rejected"
  | "replaying"
  | "comparing"
  | "waiting"
  | "applying"
  | "dropping"
  | "done";

/** A job that still has steps to run. */
export const ACTIVE_STATUSES: readonly RebuildStatus[] = ["running", "applying", "cancelling"];

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

/** One row that differs: its key, and the other columns live and rebuilt (null = no such row). */
export interface Difference {
  table: DerivedTable;
  key: Row;
  live: Row | null;
  rebuilt: Row | null;
}

/** What a new job is asked to do. */
export interface RebuildOptions {
  /** Only this sdkKey; absent = every sdkKey in the archive or in the live tables. */
  sdkKey?: string;
  /** Replace the live rows with the rebuilt ones once compared. */
  apply?: boolean;
  /** Archive objects per step (default DEFAULT_CHUNK_OBJECTS). */
  chunkObjects?: number;
  /** At most this many differences are kept (all are counted). Default 1000. */
  maxDifferences?: number;
}

/** A job's whole state (kept by src/events/rebuild-job.ts between steps). */
export interface RebuildJobState {
  id: string;
  sdkKey: string | null;
  apply: boolean;
  chunkObjects: number;
  maxDifferences: number;
  status: RebuildStatus;
  phase: RebuildPhase;
  /** The recorded layout's shard count when the job started; a change fails the job. */
  shards: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** The last R2 key done in the current listing phase. */
  cursor: string | null;
  steps: number;
  objectsRead: number;
  eventsRead: number;
  /** Valid lines of the compared sdkKeys (duplicates included). */
  eventsSelected: number;
  /** Dedupe keys pre-seeded for events the consumer did not count. */
  excluded: number;
  /** Events the replay could not count (SQLite refused them alone). */
  countFailed: number;
  invalidLines: number;
  invalid: InvalidLine[];
  /** sdkKeys seen in the archive; while comparing and applying, the compared ones. */
  sdkKeys: string[];
  /** The next sdkKey to compare or apply. */
  keyIndex: number;
  /** Stored conversions are compared from this time on (ms; fixed when comparing starts). */
  since: number | null;
  tables: Record<DerivedTable, TableSummary>;
  eventsFolded: number;
  differencesTotal: number;
  written: Record<DerivedTable, number> | null;
  error: string | null;
  /** Consecutive failed steps (reset by a step that succeeds). */
  failures: number;
}

/** Archive objects one step reads by default. */
export const DEFAULT_CHUNK_OBJECTS = 20;
/** The most a job may read per step. */
export const MAX_CHUNK_OBJECTS = 200;
/** Events per counting call (the queue's own batch limit, wrangler.toml max_batch_size). */
const COUNT_GROUP = 100;
/** Archive objects fetched at the same time. */
const READ_CONCURRENCY = 8;
const MAX_INVALID_LISTED = 100;
/** sdkKeys a job tracks (environments: far fewer in practice). */
const MAX_SDK_KEYS = 10_000;
/** Dedupe rows per insert. */
const SEED_ROWS = 500;

/** The rebuild applies no budget: what the live one dropped is excluded instead (seeding). */
const NO_BUDGET: CapOf = () => Number.MAX_SAFE_INTEGER;

const emptyTables = (): Record<DerivedTable, TableSummary> =>
  Object.fromEntries(
    DERIVED_TABLES.map((t) => [t, { live: 0, rebuilt: 0, differences: 0 }]),
  ) as Record<DerivedTable, TableSummary>;

/** A new job's state. */
export function newJobState(
  id: string,
  options: RebuildOptions,
  shards: number,
  now: number,
): RebuildJobState {
  const at = new Date(now).toISOString();
  return {
    id,
    sdkKey: options.sdkKey ?? null,
    apply: options.apply ?? false,
    chunkObjects: options.chunkObjects ?? DEFAULT_CHUNK_OBJECTS,
    maxDifferences: options.maxDifferences ?? 1000,
    status: "running",
    phase: "cleaning",
    shards,
    createdAt: at,
    updatedAt: at,
    finishedAt: null,
    cursor: null,
    steps: 0,
    objectsRead: 0,
    eventsRead: 0,
    eventsSelected: 0,
    excluded: 0,
    countFailed: 0,
    invalidLines: 0,
    invalid: [],
    sdkKeys: [],
    keyIndex: 0,
    since: null,
    tables: emptyTables(),
    eventsFolded: 0,
    differencesTotal: 0,
    written: null,
    error: null,
    failures: 0,
  };
}

/** The job cannot go on: it ends as failed (its shadow rows are dropped). */
export class RebuildStop extends Error {}

type RebuildEnv = Env;

/** Runs `statement` in D1. */
const d1 = (env: RebuildEnv, st: Statement) => env.DB.prepare(st.sql).bind(...st.params);

async function d1Count(env: RebuildEnv, st: Statement): Promise<number> {
  return Number((await d1(env, st).first<{ n: number }>())?.n ?? 0);
}

/** Every shard index of the job's layout. */
const shardIndexes = (job: RebuildJobState) => Array.from({ length: job.shards }, (_, i) => i);

/** Fails the job when the recorded layout is not the one it started on. */
async function checkLayout(env: RebuildEnv, job: RebuildJobState): Promise<void> {
  const layout = await readLayout(env.DB);
  const shards = layout?.shards ?? 0;
  if (layout?.movingTo !== null && layout?.movingTo !== undefined)
    throw new RebuildStop(
      `a move to ${layout.movingTo} shard(s) started during the rebuild: start it again when the move has finished`,
    );
  if (shards !== job.shards)
    throw new RebuildStop(
      `the event layout changed from ${job.shards} to ${shards} shard(s) during the rebuild: start it again`,
    );
}

/** One page of keys under `prefix` after `cursor`. */
async function listPage(
  bucket: R2Bucket,
  prefix: string,
  cursor: string | null,
  limit: number,
): Promise<{ keys: string[]; done: boolean }> {
  const page = await bucket.list({
    prefix,
    limit,
    ...(cursor === null ? {} : { startAfter: cursor }),
  });
  return { keys: page.objects.map((o) => o.key), done: !page.truncated };
}

/** The texts of `keys` (null for an object deleted since it was listed), READ_CONCURRENCY at a time. */
async function readTexts(bucket: R2Bucket, keys: string[]): Promise<Array<string | null>> {
  const out: Array<string | null> = [];
  for (let i = 0; i < keys.length; i += READ_CONCURRENCY)
    out.push(
      ...(await Promise.all(
        keys.slice(i, i + READ_CONCURRENCY).map(async (key) => {
          const object = await bucket.get(key);
          return object === null ? null : object.text();
        }),
      )),
    );
  return out;
}

function recordInvalid(job: RebuildJobState, object: string, line: number, reason: string): void {
  job.invalidLines++;
  if (job.invalid.length < MAX_INVALID_LISTED) job.invalid.push({ object, line, reason });
}

/** A dedupe key to pre-seed: an event the consumer archived but did not count. */
interface Excluded {
  uuid: string;
  sdkKey: string;
  visitorId: string;
  type: string;
}

function excludedOf(line: unknown, fromRejected: boolean): Excluded | null {
  const source = (fromRejected ? (line as { body?: unknown } | null)?.body : line) as {
    uuid?: unknown;
    sdkKey?: unknown;
    visitorId?: unknown;
    type?: unknown;
  } | null;
  if (typeof source !== "object" || source === null) return null;
  const { uuid, sdkKey, visitorId } = source;
  if (typeof uuid !== "string" || typeof sdkKey !== "string" || typeof visitorId !== "string")
    return null;
  const type = fromRejected && typeof source.type === "string" ? source.type : "conversion";
  return { uuid, sdkKey, visitorId, type };
}

/** Seeding: one page of `dropped/` or `rejected/` objects into shadow dedupe keys. */
async function seedStep(env: RebuildEnv, job: RebuildJobState, now: number): Promise<void> {
  const fromRejected = job.phase === "seeding-rejected";
  const prefix = fromRejected ? REJECTED_PREFIX : DROPPED_PREFIX;
  const page = await listPage(env.ARCHIVE, prefix, job.cursor, job.chunkObjects);
  const keys = fromRejected
    ? page.keys.filter((key) => key.endsWith("-count_failed.ndjson"))
    : page.keys;
  const texts = await readTexts(env.ARCHIVE, keys);
  const rows: Excluded[] = [];
  for (const text of texts)
    for (const line of text?.split("\n") ?? []) {
      if (line.trim() === "") continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        continue; // Not a line the consumer wrote: nothing to exclude.
      }
      const excluded = excludedOf(parsed, fromRejected);
      if (excluded === null || isShadowKey(excluded.sdkKey)) continue;
      if (job.sdkKey !== null && excluded.sdkKey !== job.sdkKey) continue;
      rows.push(excluded);
    }
  await seedDedupeKeys(env, job, rows, now);
  job.excluded += rows.length;
  job.cursor = page.keys.at(-1) ?? job.cursor;
  if (page.done) {
    job.phase = fromRejected ? "replaying" : "seeding-rejected";
    job.cursor = null;
  }
}

async function seedDedupeKeys(
  env: RebuildEnv,
  job: RebuildJobState,
  rows: Excluded[],
  now: number,
): Promise<void> {
  if (rows.length === 0) return;
  const prefix = shadowPrefix(job.id);
  const cell = (r: Excluded) => [
    prefix + r.uuid,
    r.type,
    shadowKey(job.id, r.sdkKey),
    now,
    EXCLUDED_ATTEMPT,
  ];
  if (job.shards === 0) {
    const statements: D1PreparedStatement[] = [];
    for (let i = 0; i < rows.length; i += SEED_ROWS)
      statements.push(
        env.DB.prepare(
          `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
           SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'),
             json_extract(j.value, '$[3]'), json_extract(j.value, '$[4]') FROM json_each(?) AS j`,
        ).bind(JSON.stringify(rows.slice(i, i + SEED_ROWS).map(cell))),
      );
    await env.DB.batch(statements);
    return;
  }
  const perShard = new Map<number, Array<Array<string | number>>>();
  for (const row of rows) {
    const shard = shardOf(row.sdkKey, row.visitorId, job.shards);
    const list = perShard.get(shard) ?? [];
    list.push(cell(row));
    perShard.set(shard, list);
  }
  await Promise.all(
    [...perShard].map(async ([shard, cells]) => {
      for (let i = 0; i < cells.length; i += SEED_ROWS)
        await shardStub(env, shard).importRows("seen_events", cells.slice(i, i + SEED_ROWS));
    }),
  );
}

interface Replayed extends Countable {
  object: string;
  line: number;
}

/** Replaying: one page of archive objects counted into the shadow namespace. */
async function replayStep(env: RebuildEnv, job: RebuildJobState, now: number): Promise<boolean> {
  const page = await listPage(env.ARCHIVE, ARCHIVE_PREFIX, job.cursor, job.chunkObjects);
  const texts = await readTexts(env.ARCHIVE, page.keys);
  const prefix = shadowPrefix(job.id);
  const known = new Set(job.sdkKeys);
  const items: Replayed[] = [];
  let objects = 0;
  let lines = 0;
  let selected = 0;
  page.keys.forEach((key, index) => {
    const text = texts[index];
    if (text === null || text === undefined) return; // Deleted since it was listed.
    objects++;
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      lines++;
      let body: unknown;
      try {
        body = JSON.parse(line);
      } catch {
        return recordInvalid(job, key, i + 1, "not JSON");
      }
      // The consumer checked the time window when it archived the event: check the shape only,
      // with the event's own timestamp as "now".
      const timestamp = (body as { timestamp?: unknown } | null)?.timestamp;
      const result = validateMessage(body, typeof timestamp === "number" ? timestamp : 0);
      if (!result.ok) return recordInvalid(job, key, i + 1, result.reason);
      const event = result.message;
      if (isShadowKey(event.sdkKey))
        return recordInvalid(job, key, i + 1, "sdkKey starts with a reserved prefix");
      if (!known.has(event.sdkKey) && known.size < MAX_SDK_KEYS) known.add(event.sdkKey);
      if (job.sdkKey !== null && event.sdkKey !== job.sdkKey) return;
      selected++;
      const shadow: EventMessage = {
        ...event,
        sdkKey: shadowKey(job.id, event.sdkKey),
        uuid: prefix + event.uuid,
      };
      items.push({ event: shadow, object: key, line: i + 1 });
    });
  });
  const routeKey = (event: EventMessage) => event.sdkKey.slice(prefix.length);
  for (let i = 0; i < items.length; i += COUNT_GROUP) {
    let result;
    try {
      result = await countEvents(env, items.slice(i, i + COUNT_GROUP), {
        shards: job.shards,
        capOf: NO_BUDGET,
        now,
        routeKey,
      });
    } catch (error) {
      if (error instanceof MovingRetry)
        throw new RebuildStop(
          `${error.message}: start the rebuild again when the move has finished`,
        );
      throw error;
    }
    for (const { item, reason } of result.failed) {
      job.countFailed++;
      recordInvalid(job, item.object, item.line, `count_failed: ${reason}`);
    }
  }
  // Counted: only now does the cursor move (a step cut short is run again, and counts nothing twice).
  job.objectsRead += objects;
  job.eventsRead += lines;
  job.eventsSelected += selected;
  job.sdkKeys = [...known].sort();
  job.cursor = page.keys.at(-1) ?? job.cursor;
  if (page.done) {
    job.phase = "comparing";
    job.cursor = null;
  }
  return page.done;
}

/** Comparing starts: fixes the list of sdkKeys and the conversions window. */
async function startComparing(env: RebuildEnv, job: RebuildJobState, now: number): Promise<void> {
  // Every entry the shards still hold (the replay's own included) goes to D1 first, or the
  // aggregates compared would lack them.
  if (job.shards > 0) await handOverPending(env, job.shards);
  job.since = retentionCutoff(now);
  job.keyIndex = 0;
  job.sdkKeys =
    job.sdkKey !== null
      ? [job.sdkKey]
      : [...new Set([...job.sdkKeys, ...(await liveSdkKeys(env.DB))])]
          .filter((key) => !isShadowKey(key))
          .sort();
}

const parseRow = (text: string | null): Row | null =>
  text === null ? null : (JSON.parse(text) as Row);

/** Comparing: one sdkKey, in D1 and on every shard. Returns the differences to keep. */
async function compareStep(
  env: RebuildEnv,
  job: RebuildJobState,
  room: number,
): Promise<Difference[]> {
  const live = job.sdkKeys[job.keyIndex]!;
  const names = { live, job: job.id, since: job.since! };
  const kept: Difference[] = [];
  const add = (table: DerivedTable, summary: TableSummary) => {
    job.tables[table].live += summary.live;
    job.tables[table].rebuilt += summary.rebuilt;
    job.tables[table].differences += summary.differences;
    job.differencesTotal += summary.differences;
  };
  const inD1: DerivedTable[] =
    job.shards === 0 ? [...DERIVED_TABLES] : ["variation_daily", "metric_daily"];
  for (const table of inD1) {
    const st = compareStatements(table, names, Math.max(0, room - kept.length));
    add(table, {
      live: await d1Count(env, st.live),
      rebuilt: await d1Count(env, st.rebuilt),
      differences: await d1Count(env, st.differing),
    });
    if (kept.length < room) {
      const { results } = await d1(env, st.samples).all<{
        key: string;
        live: string | null;
        rebuilt: string | null;
      }>();
      for (const r of results)
        kept.push({
          table,
          key: parseRow(r.key)!,
          live: parseRow(r.live),
          rebuilt: parseRow(r.rebuilt),
        });
    }
  }
  if (job.shards === 0) job.eventsFolded += await d1Count(env, foldedCountStatement(job.id, live));
  else {
    const answers = await Promise.all(
      shardIndexes(job).map((i) => shardStub(env, i).compareShadow(names, room)),
    );
    for (const answer of answers) {
      job.eventsFolded += answer.folded;
      for (const [table, summary] of Object.entries(answer.tables))
        add(table as DerivedTable, summary);
      for (const s of answer.samples)
        if (kept.length < room)
          kept.push({
            table: s.table as DerivedTable,
            key: parseRow(s.key)!,
            live: parseRow(s.live),
            rebuilt: parseRow(s.rebuilt),
          });
    }
  }
  job.keyIndex++;
  if (job.keyIndex >= job.sdkKeys.length) {
    job.keyIndex = 0;
    if (job.apply) {
      job.status = "applying";
      job.phase = "applying";
    } else {
      job.status = "compared";
      job.phase = "waiting";
    }
  }
  return kept;
}

/** Applying: one sdkKey's shadow rows become its live rows, on every shard and in D1. */
async function applyStep(env: RebuildEnv, job: RebuildJobState): Promise<void> {
  const written = (job.written ??= Object.fromEntries(DERIVED_TABLES.map((t) => [t, 0])) as Record<
    DerivedTable,
    number
  >);
  if (job.keyIndex < job.sdkKeys.length) {
    const live = job.sdkKeys[job.keyIndex]!;
    const names = { live, job: job.id, since: job.since! };
    if (job.shards > 0) {
      // Entries the shards still hold (the replay's included) must be in D1 before the swap.
      await handOverPending(env, job.shards);
      const answers = await Promise.all(
        shardIndexes(job).map((i) => shardStub(env, i).adoptShadow(names)),
      );
      for (const answer of answers)
        for (const [table, n] of Object.entries(answer))
          if (table in written) written[table as DerivedTable] += n;
    }
    const inD1: Array<DerivedTable | "seen_events"> =
      job.shards === 0 ? ["seen_events", ...DERIVED_TABLES] : ["variation_daily", "metric_daily"];
    const statements = adoptStatements(inD1, names);
    // One D1 batch: the sdkKey's live rows are swapped in one transaction, together with its
    // marker — a retried step (the batch committed, its answer was lost) finds the marker and
    // does not swap again.
    try {
      const results = await env.DB.batch([
        env.DB.prepare(
          "INSERT INTO rebuild_adoptions (job, sdk_key, adopted_at) VALUES (?, ?, ?)",
        ).bind(job.id, live, new Date().toISOString()),
        ...statements.map((st) => d1(env, st)),
      ]);
      statements.forEach((st, i) => {
        if (st.counts && st.table !== "seen_events")
          written[st.table] += Number(results[i + 1]?.meta.changes ?? 0);
      });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (!/UNIQUE constraint failed: rebuild_adoptions/.test(message)) throw error;
    }
    job.keyIndex++;
    return;
  }
  job.phase = "dropping";
}

/**
 * Drops the shadow rows of job `id` — of every job with `null` — in D1 and on the job's shards,
 * after handing over what the shards still hold (a shadow entry handed over later would bring
 * shadow aggregates back into D1).
 */
async function dropShadowRows(
  env: RebuildEnv,
  job: RebuildJobState,
  id: string | null,
): Promise<void> {
  const tables = ["seen_events", ...DERIVED_TABLES] as const;
  if (job.shards > 0) await handOverPending(env, job.shards);
  await env.DB.batch([
    ...dropStatements(tables, id).map((st) => d1(env, st)),
    ...(id === null ? [env.DB.prepare("DELETE FROM rebuild_adoptions")] : []),
  ]);
  await Promise.all(shardIndexes(job).map((i) => shardStub(env, i).dropShadow(id)));
}

/**
 * Runs one step of `job` (changing it in place) and returns the differences it found (comparing
 * only). Throws on a failure: the caller keeps the previous state and tries the step again.
 */
export async function runRebuildStep(
  env: RebuildEnv,
  job: RebuildJobState,
  now: number,
): Promise<Difference[]> {
  let found: Difference[] = [];
  switch (job.phase) {
    case "cleaning":
      await checkLayout(env, job);
      // Nothing of this job exists yet: every job's leftovers go (a failed or abandoned one's).
      await dropShadowRows(env, job, null);
      job.phase = "seeding-dropped";
      break;
    case "seeding-dropped":
    case "seeding-rejected":
      await checkLayout(env, job);
      await seedStep(env, job, now);
      break;
    case "replaying":
      await checkLayout(env, job);
      if (await replayStep(env, job, now)) await startComparing(env, job, now);
      break;
    case "comparing":
      await checkLayout(env, job);
      if (job.sdkKeys.length === 0) {
        job.status = job.apply ? "applying" : "compared";
        job.phase = job.apply ? "applying" : "waiting";
        break;
      }
      found = await compareStep(env, job, job.maxDifferences - job.differencesTotal);
      break;
    case "applying":
      await checkLayout(env, job);
      await applyStep(env, job);
      break;
    case "dropping":
      await dropShadowRows(env, job, job.id);
      job.phase = "done";
      job.status = job.status === "cancelling" ? "cancelled" : "applied";
      job.finishedAt = new Date(now).toISOString();
      break;
    case "waiting":
    case "done":
      break;
  }
  job.steps++;
  job.updatedAt = new Date(now).toISOString();
  return found;
}

/** Best effort after a failure: the shadow rows go now (else the next job's cleaning drops them). */
export async function dropAfterFailure(env: RebuildEnv, job: RebuildJobState): Promise<void> {
  try {
    await dropShadowRows(env, job, job.id);
  } catch (error) {
    console.error(`splitstream: rebuild ${job.id}: could not drop its shadow rows`, error);
  }
}

/** The report of a compared job, in the shape of docs/api.md "Rebuild". */
export interface RebuildReport {
  sdkKeys: string[];
  objectsRead: number;
  eventsRead: number;
  eventsFolded: number;
  duplicates: number;
  excluded: number;
  invalidLines: number;
  invalid: InvalidLine[];
  conversionsSince: string;
  tables: Record<DerivedTable, TableSummary>;
  differences: Difference[];
  differencesTruncated: boolean;
  matches: boolean;
  applied: boolean;
  written: Record<DerivedTable, number> | null;
}

/** The report, once the comparison has finished (null before). */
export function reportOf(job: RebuildJobState, differences: Difference[]): RebuildReport | null {
  const comparedStatuses: RebuildStatus[] = ["compared", "applying", "applied"];
  if (!comparedStatuses.includes(job.status) || job.since === null) return null;
  return {
    sdkKeys: job.sdkKeys,
    objectsRead: job.objectsRead,
    eventsRead: job.eventsRead,
    eventsFolded: job.eventsFolded,
    duplicates: Math.max(0, job.eventsSelected - job.eventsFolded - job.countFailed),
    excluded: job.excluded,
    invalidLines: job.invalidLines,
    invalid: job.invalid,
    conversionsSince: new Date(job.since).toISOString(),
    tables: job.tables,
    differences,
    differencesTruncated: job.differencesTotal > differences.length,
    matches: job.differencesTotal === 0,
    applied: job.status === "applied",
    written: job.written,
  };
}
