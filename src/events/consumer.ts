/**
 * The EVENTS queue consumer (docs/events.md). Per batch:
 * 1. validate every message; poison ones go to R2 `rejected/{day}/{first-id}.ndjson` and are acked;
 * 2. archive the valid ones as NDJSON in R2 `events/{day}/{hour}/{first-id}-{count}.ndjson`;
 * 3. count them with the set-based statements of src/events/count-sql.ts: dedupe by uuid
 *    (seen_events), the per-visitor daily budget of conversions, the earliest impression per
 *    visitor and experiment (exposures, variation_daily), conversions kept (conversions) and
 *    attributed to every experiment whose earliest impression came at or before them (converters,
 *    metric_daily) — whatever the order in which the queue delivers impressions and conversions.
 *    Where depends on the recorded layout (src/events/event-layout.ts, docs/scaling.md):
 *    - D1 (0 shards): ONE atomic D1 batch of at most 12 statements, after a fence that fails it
 *      while a move to shards runs;
 *    - N visitor shards: the batch split by visitor shard (src/events/shard-map.ts), each part
 *      counted by its shard in one transaction (src/events/visitor-shard.ts), the aggregate deltas
 *      the shards hand over added to D1 in one transaction, exactly once (src/events/shard-apply.ts);
 *    - while a move between layouts runs, nothing: the batch is retried later.
 *
 * No event can make another one fail (docs/reliability.md "One bad event"): when D1 or a shard
 * refuses a part with an SQL error (deterministic for that input: an `SQLITE_…` code other than a
 * busy or I/O one), the part is split in halves and each half counted on its own, down to single
 * events; an event that still fails alone while other parts of its batch were counted goes to
 * `rejected/` with the reason (`count_failed`) and is acked. Any other failure (R2, a lost D1
 * connection, a shard that does not answer, or every part failing) retries the whole batch; the
 * dedupe rows are written in the same transaction as the counts, so a redelivered message can
 * never count twice. After max_retries (wrangler.toml) the queue moves the messages to the
 * dead-letter queue.
 *
 * Rejected and dropped events are counted per day in D1 `event_drops` (shown by `/_ss/health`)
 * and logged.
 */
import type { Env } from "../env";
import {
  archiveKey,
  droppedKey,
  planBatch,
  rejectedKey,
  toNdjson,
  utcDay,
  type CapOf,
} from "./aggregate";
import { loadCaps } from "./caps";
import { cappedUuids, countStatements } from "./count-sql";
import type { EventMessage } from "../shared/event-messages";
import { validateMessage } from "./validate-message";
import { loadEventLayout } from "./event-layout";
import { applyShardEntries, highestSeqs } from "./shard-apply";
import type { ShardEntry } from "./shard-deltas";
import { shardOf } from "./shard-map";
import { shardStub } from "./visitor-shard";

const NDJSON = { httpMetadata: { contentType: "application/x-ndjson" } };

/** Why a message was not counted, as `event_drops.reason` and the rejected line's `stage`. */
export type RejectStage = "invalid" | "count_failed";

/** One line of a `rejected/` object. */
export interface RejectedLine {
  id: string;
  stage: RejectStage;
  reason: string;
  body: unknown;
}

/** JSON-safe form of an arbitrary (possibly non-JSON, e.g. v8-serialized) message body. */
function jsonSafe(body: unknown): unknown {
  try {
    const text = JSON.stringify(body);
    return text === undefined ? String(body) : (JSON.parse(text) as unknown);
  } catch (_error) {
    return String(body);
  }
}

/** SQLite result codes that say "try again", not "this input cannot be counted". */
const TRANSIENT_SQLITE =
  /SQLITE_(BUSY|LOCKED|IOERR|INTERRUPT|PROTOCOL|NOMEM|CANTOPEN|FULL|READONLY|CORRUPT|NOTADB)/;

/**
 * True when D1 refused the statements themselves (an `SQLITE_…` error such as an overflow, a
 * constraint or a too-big value): the same input fails again, so splitting the batch isolates it.
 * A lost connection, an overloaded or reset database carry no such code.
 */
export function isInputError(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /SQLITE_[A-Z]+/.test(message) && !TRANSIENT_SQLITE.test(message);
}

/** A batch that must be retried whole (R2, a transient D1 failure, or nothing could be counted). */
export class RetryBatch extends Error {}

/** Seconds a batch waits while a move between layouts runs (it counts nothing meanwhile). */
const MOVING_RETRY_DELAY_S = 60;

/** The batch waits for a move between layouts to finish. */
export class MovingRetry extends RetryBatch {}

/** Something to count: a validated event (and whatever its caller keeps with it). */
export interface Countable {
  event: EventMessage;
}

interface Valid extends Countable {
  message: Message<unknown>;
}

/**
 * D1 calls one delivery may spend splitting a batch of n events: enough to isolate a few bad
 * events (each costs about 2·log2 n calls), far fewer than the 2n − 1 of splitting all the way
 * down — which is what an input-looking error of the whole database (a missing table during a
 * deploy) would cost on every retry.
 */
function splitBudget(n: number): number {
  return 4 + 4 * Math.ceil(Math.log2(Math.max(2, n)));
}

/** Counts a group of events atomically: the uuids the budget dropped, or a throw (nothing counted). */
type Counter = (items: Countable[]) => Promise<{ capped: string[] }>;

/** What counting a group came to: the items that failed alone, how many counted, the budget's drops. */
export interface SplitResult<T extends Countable = Countable> {
  failed: Array<{ item: T; reason: string }>;
  counted: number;
  capped: string[];
}

/**
 * Counts `items` with `count` (one transaction); on an input error splits them in halves and
 * counts each. Returns the items that failed alone and how many parts were counted. Throws
 * RetryBatch on any other failure, or when the split has used up `budget.calls`.
 */
async function countSplitting<T extends Countable>(
  items: T[],
  count: Counter,
  budget: { calls: number },
): Promise<SplitResult<T>> {
  if (budget.calls-- <= 0) throw new RetryBatch("too many failing parts: retrying the batch");
  try {
    const { capped } = await count(items);
    return { failed: [], counted: items.length, capped };
  } catch (error) {
    if (error instanceof RetryBatch) throw error;
    if (!isInputError(error)) throw new RetryBatch(String(error), { cause: error });
    if (items.length === 1) {
      const reason = error instanceof Error ? error.message : String(error);
      return { failed: [{ item: items[0]!, reason }], counted: 0, capped: [] };
    }
    const half = Math.ceil(items.length / 2);
    const a = await countSplitting(items.slice(0, half), count, budget);
    const b = await countSplitting(items.slice(half), count, budget);
    return {
      failed: [...a.failed, ...b.failed],
      counted: a.counted + b.counted,
      capped: [...a.capped, ...b.capped],
    };
  }
}

/** The single-database layout: the whole plan in one D1 batch (one transaction). */
/**
 * The D1 layout's fence against a move (src/events/layout-move.ts): first in the counting
 * transaction, it fails it — a primary-key conflict naming `event_layout.id` — while a move is
 * recorded, whatever layout this isolate has cached. The shards have their freeze instead.
 */
const SQL_MOVE_FENCE = `INSERT INTO event_layout (id, shards, moving_to, updated_at)
  SELECT 1, 0, NULL, 'fence' WHERE EXISTS (SELECT 1 FROM event_layout WHERE moving_to IS NOT NULL)`;

/** The fence's refusal (SQLite's message names the conflicting column). */
const isFenceError = (error: unknown): boolean =>
  /UNIQUE constraint failed: event_layout\.id/.test(
    error instanceof Error ? error.message : String(error),
  );

function d1Counter(env: Env, capOf: CapOf, now: number): Counter {
  return async (items) => {
    const plan = planBatch(
      items.map((item) => item.event),
      capOf,
    );
    // One D1 batch = one transaction: dedupe rows and counts commit together or not at all.
    let results: D1Result[];
    try {
      results = await env.DB.batch([
        env.DB.prepare(SQL_MOVE_FENCE),
        ...countStatements(env.DB, plan, crypto.randomUUID(), now),
      ]);
    } catch (error) {
      if (isFenceError(error))
        throw new MovingRetry("a move between layouts started: counting in D1 waits", {
          cause: error,
        });
      throw error;
    }
    return { capped: cappedUuids(plan, results.slice(1)) };
  };
}

/**
 * Counts the batch on its visitors' shards (docs/events.md "Exactly once across shards"): each
 * shard's events in one call (split on input errors as in D1), then every pending entry the
 * shards handed over added to D1 in one transaction, then acknowledged. A failure after a shard
 * committed leaves its entry pending: the redelivered batch reaches the same shard, which hands
 * it over again (or its alarm does), and D1's marks add it once.
 */
async function countOnShards<T extends Countable>(
  env: Env,
  valid: T[],
  shards: number,
  capOf: CapOf,
  now: number,
  routeKey: (event: EventMessage) => string,
): Promise<SplitResult<T>> {
  const groups = new Map<number, T[]>();
  for (const item of valid) {
    const shard = shardOf(routeKey(item.event), item.event.visitorId, shards);
    const group = groups.get(shard);
    if (group) group.push(item);
    else groups.set(shard, [item]);
  }
  const entries: ShardEntry[] = [];
  const results = await Promise.all(
    [...groups].map(([shard, items]) => {
      const count: Counter = async (part) => {
        const plan = planBatch(
          part.map((item) => item.event),
          capOf,
        );
        const stub = shardStub(env, shard);
        const result = await stub.count({
          shard,
          attempt: crypto.randomUUID(),
          receivedAt: now,
          plan,
        });
        if (result.frozen)
          throw new MovingRetry(`visitor shard ${shard} is frozen by a move between layouts`);
        if (result.error !== undefined) throw new Error(result.error);
        // RPC's types turn the delta tuples into plain arrays; the shard built them as ShardEntry.
        entries.push(...(result.pending as ShardEntry[]));
        return { capped: result.capped };
      };
      return countSplitting(items, count, { calls: splitBudget(items.length) });
    }),
  );
  // Every shard answered: add what they handed over (all or nothing), then let them forget it.
  await applyShardEntries(env.DB, entries);
  await Promise.all(
    [...highestSeqs(entries)].map(async ([shard, seq]) => {
      try {
        await shardStub(env, shard).ack(seq);
      } catch (error) {
        // D1 has them; the shard hands them over again and D1's mark skips them.
        console.warn(
          `splitstream: shard ${shard} did not take the acknowledgement of ${seq}`,
          error,
        );
      }
    }),
  );
  return {
    failed: results.flatMap((r) => r.failed),
    counted: results.reduce((n, r) => n + r.counted, 0),
    capped: results.flatMap((r) => r.capped),
  };
}

/** Where and how `countEvents` counts. */
export interface CountTarget {
  /** The recorded layout's shard count (0 = D1's own tables). */
  shards: number;
  /** The per-visitor daily budget's caps. */
  capOf: CapOf;
  /** The processing time (dedupe rows' received_at, the day of the budget's drops). */
  now: number;
  /**
   * The sdkKey that places an event's visitor on a shard (default its own). The rebuild counts
   * under a shadow sdkKey on the shard of the real one (src/events/rebuild.ts).
   */
  routeKey?: (event: EventMessage) => string;
}

/**
 * Counts validated events where the layout keeps per-visitor state — the consumer's counting,
 * also used by the rebuild's replay: in D1 in one transaction, or on the visitors' shards with
 * the hand-over to D1; parts SQLite refuses are split down to the events at fault, which come
 * back in `failed`. Throws RetryBatch (MovingRetry while a move runs) when it must be retried whole.
 */
export async function countEvents<T extends Countable>(
  env: Env,
  items: T[],
  target: CountTarget,
): Promise<SplitResult<T>> {
  if (target.shards === 0)
    return countSplitting(items, d1Counter(env, target.capOf, target.now), {
      calls: splitBudget(items.length),
    });
  return countOnShards(
    env,
    items,
    target.shards,
    target.capOf,
    target.now,
    target.routeKey ?? ((event) => event.sdkKey),
  );
}

/** Adds to the event_drops counters; a counter is diagnostics, so a failure is only logged. */
async function countRejected(env: Env, now: number, lines: RejectedLine[]): Promise<void> {
  const counts = new Map<string, { sdkKey: string; stage: RejectStage; n: number }>();
  for (const line of lines) {
    const body = line.body as { sdkKey?: unknown } | null;
    const sdkKey =
      typeof body === "object" && body !== null && typeof body.sdkKey === "string"
        ? body.sdkKey.slice(0, 256)
        : "";
    const k = `${sdkKey}\n${line.stage}`;
    const entry = counts.get(k) ?? { sdkKey, stage: line.stage, n: 0 };
    entry.n++;
    counts.set(k, entry);
  }
  try {
    await env.DB.batch(
      [...counts.values()].map(({ sdkKey, stage, n }) =>
        env.DB.prepare(
          `INSERT INTO event_drops (day, sdk_key, kind, reason, count) VALUES (?, ?, 'rejected', ?, ?)
           ON CONFLICT (day, sdk_key, kind, reason) DO UPDATE SET count = count + excluded.count`,
        ).bind(utcDay(now), sdkKey, stage, n),
      ),
    );
  } catch (error) {
    console.error("splitstream: could not count rejected events in event_drops", error);
  }
}

/** Archives rejected lines under `rejected/` (throws when R2 does), logs and counts them. */
async function archiveRejected(
  env: Env,
  now: number,
  firstId: string,
  lines: RejectedLine[],
): Promise<void> {
  if (lines.length === 0) return;
  await env.ARCHIVE.put(rejectedKey(now, firstId), toNdjson(lines), NDJSON);
  const stages = [...new Set(lines.map((line) => line.stage))].join(", ");
  console.warn(`splitstream: rejected ${lines.length} event message(s) (${stages})`);
  await countRejected(env, now, lines);
}

/**
 * Records the conversions the per-visitor budget dropped under `dropped/` in R2, so that the
 * rebuild leaves exactly these out (which ones the budget keeps depends on arrival order). The
 * counts are already committed: a failure here is logged, not retried (a redelivery would find
 * them seen and record nothing).
 */
async function recordDropped(
  env: Env,
  now: number,
  firstId: string,
  items: Valid[],
  capped: string[],
): Promise<void> {
  if (capped.length === 0) return;
  const uuids = new Set(capped);
  const lines: Array<Record<string, unknown>> = [];
  for (const { event } of items)
    if (event.type === "conversion" && uuids.has(event.uuid))
      lines.push({
        uuid: event.uuid,
        sdkKey: event.sdkKey,
        visitorId: event.visitorId,
        eventId: event.eventId,
        timestamp: event.timestamp,
      });
  try {
    await env.ARCHIVE.put(droppedKey(now, firstId), toNdjson(lines), NDJSON);
  } catch (error) {
    console.error(
      `splitstream: could not record ${lines.length} dropped conversion(s) for the rebuild`,
      error,
    );
  }
}

export async function handleEventBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const messages = batch.messages;
  const first = messages[0];
  if (!first) return;
  const now = Date.now();

  const valid: Valid[] = [];
  const invalid: RejectedLine[] = [];
  const invalidMessages: Message<unknown>[] = [];
  for (const message of messages) {
    const result = validateMessage(message.body, now);
    if (result.ok) valid.push({ message, event: result.message });
    else {
      invalid.push({
        id: message.id,
        stage: "invalid",
        reason: result.reason,
        body: jsonSafe(message.body),
      });
      invalidMessages.push(message);
    }
  }

  try {
    await archiveRejected(env, now, first.id, invalid);
  } catch (error) {
    console.error("splitstream: could not archive rejected events; retrying the batch", error);
    batch.retryAll();
    return;
  }
  // Poison messages are archived: never retry them, whatever happens to the rest.
  for (const message of invalidMessages) message.ack();

  const firstValid = valid[0];
  if (!firstValid) {
    batch.ackAll();
    return;
  }

  try {
    // Before archiving: a batch that waits for a move is archived once, when it is counted.
    const layout = await loadEventLayout(env, now);
    if (layout.movingTo !== null)
      throw new MovingRetry(
        `the event state is moving to ${layout.movingTo} shard(s): counting waits (docs/scaling.md)`,
      );
    const events = valid.map(({ event }) => event);
    await env.ARCHIVE.put(
      archiveKey(now, firstValid.message.id, valid.length),
      toNdjson(events),
      NDJSON,
    );
    const capOf = await loadCaps(env.DB, now);
    const { failed, counted, capped } = await countEvents(env, valid, {
      shards: layout.shards,
      capOf,
      now,
    });
    await recordDropped(env, now, firstValid.message.id, valid, capped);
    if (failed.length > 0) {
      // Nothing counted at all: not one bad event but a failing database (a broken schema, a full
      // disk) — retry, and let the dead-letter queue keep them after max_retries.
      if (counted === 0) throw new RetryBatch(`every event failed: ${failed[0]!.reason}`);
      // Its own object: the invalid ones of this batch may already sit under the first id.
      await archiveRejected(
        env,
        now,
        `${failed[0]!.item.message.id}-count_failed`,
        failed.map(({ item, reason }) => ({
          id: item.message.id,
          stage: "count_failed",
          reason,
          body: item.event,
        })),
      );
    }
  } catch (error) {
    if (error instanceof MovingRetry) {
      console.warn(`splitstream: ${error.message}; retrying in ${MOVING_RETRY_DELAY_S} s`);
      batch.retryAll({ delaySeconds: MOVING_RETRY_DELAY_S });
      return;
    }
    console.error(`splitstream: could not process ${valid.length} event(s); retrying`, error);
    batch.retryAll();
    return;
  }
  batch.ackAll();
}
