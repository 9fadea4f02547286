/**
 * Retention of the consumer's bookkeeping (docs/events.md "Retention"), run by the Worker's
 * `scheduled` handler (cron in wrangler.toml): `seen_events` (dedupe) and `conversions` (kept for
 * late impressions) only matter while a message that needs them can still be accepted, and the
 * consumer rejects any message whose timestamp is more than QUEUE_MAX_AGE_MS old. Rows older than
 * `retentionCutoff(now)` can therefore never be needed again and are deleted:
 *
 * - seen_events by `received_at`: a message received at R had a timestamp ≤ R + QUEUE_MAX_FUTURE_MS,
 *   so once R < now − QUEUE_MAX_AGE_MS − QUEUE_MAX_FUTURE_MS a redelivery of it is rejected as too old and
 *   can never count twice;
 * - conversions by `timestamp`: an impression accepted now is at most QUEUE_MAX_AGE_MS old and only
 *   attributes conversions at or after it, so older conversions are never looked at again.
 *
 * RETENTION_MARGIN_MS on top absorbs clock differences and a consumer run that validated its
 * batch just before the cutoff moved. Exposures, converters and the daily aggregates are results
 * and are kept for good.
 */
import type { Env } from "../env";
import { QUEUE_MAX_AGE_MS, QUEUE_MAX_FUTURE_MS } from "../shared/event-limits";

/** Extra time kept beyond what the message age limit strictly needs. */
export const RETENTION_MARGIN_MS = 24 * 60 * 60 * 1000;

/** Rows deleted per statement, so that one statement stays short in D1. */
export const PRUNE_CHUNK_ROWS = 5000;
/** Statements per table and run; what is left is deleted by the next run. */
export const PRUNE_MAX_ROUNDS = 40;

/** Rows strictly older than this (ms since epoch) are deleted. */
export function retentionCutoff(now: number): number {
  return now - QUEUE_MAX_AGE_MS - QUEUE_MAX_FUTURE_MS - RETENTION_MARGIN_MS;
}

export interface PruneResult {
  /** The cutoff used (ms since epoch). */
  cutoff: number;
  seenEvents: number;
  conversions: number;
  /** False when a table still had old rows after PRUNE_MAX_ROUNDS statements. */
  complete: boolean;
}

async function pruneTable(
  db: D1Database,
  table: "seen_events" | "conversions",
  column: "received_at" | "timestamp",
  cutoff: number,
  chunk: number,
  maxRounds: number,
): Promise<{ deleted: number; complete: boolean }> {
  let deleted = 0;
  for (let round = 0; round < maxRounds; round++) {
    // rowid IN (… LIMIT n): bounded deletes (D1 has no DELETE … LIMIT), using the column's index.
    const result = await db
      .prepare(
        `DELETE FROM ${table} WHERE rowid IN (SELECT rowid FROM ${table} WHERE ${column} < ?1 LIMIT ?2)`,
      )
      .bind(cutoff, chunk)
      .run();
    deleted += result.meta.changes;
    if (result.meta.changes < chunk) return { deleted, complete: true };
  }
  return { deleted, complete: false };
}

/** Deletes the seen_events and conversions rows older than `retentionCutoff(now)`. */
export async function pruneEventState(
  db: D1Database,
  now: number,
  { chunk = PRUNE_CHUNK_ROWS, maxRounds = PRUNE_MAX_ROUNDS } = {},
): Promise<PruneResult> {
  const cutoff = retentionCutoff(now);
  const seen = await pruneTable(db, "seen_events", "received_at", cutoff, chunk, maxRounds);
  const conversions = await pruneTable(db, "conversions", "timestamp", cutoff, chunk, maxRounds);
  return {
    cutoff,
    seenEvents: seen.deleted,
    conversions: conversions.deleted,
    complete: seen.complete && conversions.complete,
  };
}

/**
 * The Worker's `scheduled` handler: prunes with the trigger's scheduled time as "now". A failure
 * is logged and rethrown (the run shows as failed in the dashboard; the next run catches up).
 */
export async function handleScheduled(
  controller: Pick<ScheduledController, "scheduledTime" | "cron">,
  env: Pick<Env, "DB">,
): Promise<PruneResult> {
  try {
    const result = await pruneEventState(env.DB, controller.scheduledTime);
    console.log(
      `splitstream: retention (${controller.cron}) deleted ${result.seenEvents} seen_events and ${result.conversions} conversions older than ${new Date(result.cutoff).toISOString()}${result.complete ? "" : "; more left for the next run"}`,
    );
    return result;
  } catch (error) {
    console.error("splitstream: retention pruning failed", error);
    throw error;
  }
}
