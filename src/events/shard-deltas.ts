/**
 * What a visitor shard hands to D1 (docs/scaling.md "Visitor shards", docs/events.md "Exactly
 * once across shards"): the change one counting call made to the daily aggregates, numbered per
 * shard. Plain data, shared by the shard (src/events/visitor-shard.ts), the consumer
 * (src/events/consumer.ts) and the D1 side (src/events/shard-apply.ts).
 */

/** variation_daily delta: [sdk_key, experiment_id, variation_id, revision, day, visitors]. */
export type VisitorDelta = [string, string, string, string, string, number];

/**
 * metric_daily delta: [sdk_key, experiment_id, variation_id, revision, event_id, day, then the
 * counted columns in METRIC_DAILY_VALUES order (src/events/tables.ts)].
 */
export type MetricDelta = [string, string, string, string, string, string, ...number[]];

/** Conversions the per-visitor budget dropped: [sdk_key, processing day, count]. */
export type DropDelta = [string, string, number];

/**
 * One shard's outbox entry: what one counting call changed. `seq` grows by one per entry of the
 * shard (never reused); D1 remembers per shard the highest `seq` it added (`shard_marks`) and
 * skips entries at or below it, so an entry is added exactly once however often it is handed
 * over (a consumer that failed after the shard committed, a redelivered batch, the shard's own
 * alarm).
 */
export interface ShardEntry {
  shard: number;
  seq: number;
  visitors: VisitorDelta[];
  metrics: MetricDelta[];
  drops: DropDelta[];
}

/** What a shard answers to a counting call. */
export interface ShardCountResult {
  /** Uuids of the conversions the per-visitor budget dropped in this call. */
  capped: string[];
  /** The shard's entries D1 may not have yet, oldest first (at most PENDING_LIMIT). */
  pending: ShardEntry[];
  /**
   * Set when the shard counted nothing because SQLite refused the plan (the message, with its
   * `SQLITE_…` code): an answer rather than a thrown error, so that an expected refusal is not
   * reported as an uncaught exception of the object.
   */
  error?: string;
  /** Set when the shard counted nothing because a move between layouts froze it. */
  frozen?: boolean;
}

/** Entries a shard hands over per call: a bounded answer even after a long D1 outage… */
export const PENDING_LIMIT = 64;
/** …and bytes (at least one entry is handed over, whatever its size). */
export const PENDING_BYTES = 2 * 1024 * 1024;
