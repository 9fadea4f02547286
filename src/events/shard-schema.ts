/**
 * The SQLite schema of a visitor shard (src/events/visitor-shard.ts; docs/scaling.md "Visitor
 * shards"). The per-visitor tables are D1's own (migrations/0002_events.sql, 0003, 0006) so that
 * the counting statements of src/events/count-sql.ts run unchanged on either; variation_daily and
 * metric_daily are scratch tables holding one call's deltas.
 *
 * One index of D1's is left out: migration 0007's conversions_budget (sdk_key, visitor_id,
 * event_id, day). The budget statement finds a visitor's conversions of a day through
 * conversions_visitor (sdk_key, visitor_id, …) as well, among the few rows one visitor has — the
 * cap itself bounds them — and a shard keeps one index less per stored conversion.
 *
 * Durable Objects have no migration runner and no `PRAGMA user_version`: `shard_meta` (created
 * first, outside the list) keeps the schema version, and SHARD_MIGRATIONS[i] takes a shard from
 * version i to i + 1.
 */

import { columnsOf } from "./tables";

/** Statements per schema version, applied in order on a shard's first call. */
export const SHARD_MIGRATIONS: readonly string[] = [
  `CREATE TABLE seen_events (
    uuid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    sdk_key TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    attempt TEXT NOT NULL
  );
  CREATE INDEX seen_events_received_at ON seen_events (received_at);
  CREATE TABLE exposures (
    sdk_key TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    revision TEXT NOT NULL,
    uuid TEXT NOT NULL,
    PRIMARY KEY (sdk_key, experiment_id, visitor_id)
  );
  CREATE INDEX exposures_visitor ON exposures (sdk_key, visitor_id, first_at);
  CREATE TABLE conversions (
    uuid TEXT PRIMARY KEY,
    sdk_key TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    day TEXT NOT NULL,
    revenue INTEGER NOT NULL DEFAULT 0,
    value REAL NOT NULL DEFAULT 0,
    revision TEXT NOT NULL
  );
  CREATE INDEX conversions_visitor ON conversions (sdk_key, visitor_id, timestamp);
  CREATE INDEX conversions_timestamp ON conversions (timestamp);
  CREATE TABLE converters (
    sdk_key TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    visitor_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    converted_at INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    events INTEGER NOT NULL DEFAULT 0,
    revenue INTEGER NOT NULL DEFAULT 0,
    value REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (sdk_key, experiment_id, event_id, visitor_id)
  );
  CREATE INDEX converters_visitor ON converters (sdk_key, visitor_id, experiment_id);
  CREATE TABLE variation_daily (
    sdk_key TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    day TEXT NOT NULL,
    visitors INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sdk_key, experiment_id, variation_id, revision, day)
  );
  CREATE TABLE metric_daily (
    sdk_key TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    variation_id TEXT NOT NULL,
    revision TEXT NOT NULL,
    event_id TEXT NOT NULL,
    day TEXT NOT NULL,
    converters INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    revenue_sum INTEGER NOT NULL DEFAULT 0,
    revenue_sum_sq REAL NOT NULL DEFAULT 0,
    value_sum REAL NOT NULL DEFAULT 0,
    value_sum_sq REAL NOT NULL DEFAULT 0,
    events_visitor_sum_sq INTEGER NOT NULL DEFAULT 0,
    revenue_visitor_sum_sq REAL NOT NULL DEFAULT 0,
    value_visitor_sum_sq REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (sdk_key, experiment_id, variation_id, revision, event_id, day)
  );
  CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, created_at INTEGER NOT NULL, body TEXT NOT NULL);
  CREATE TABLE purged_experiments (
    sdk_key TEXT NOT NULL,
    experiment_id TEXT NOT NULL,
    purged_at INTEGER NOT NULL,
    rows_left INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (sdk_key, experiment_id)
  ) WITHOUT ROWID;`,
  // 1: the first exposure's dimensions (breakdowns; migrations/0012_exposure_dims.sql in D1).
  `ALTER TABLE exposures ADD COLUMN dims TEXT;`,
];

/** The per-visitor tables (what a shard keeps between calls, and what moves between layouts). */
export const VISITOR_TABLES = ["seen_events", "exposures", "conversions", "converters"] as const;

export type VisitorTable = (typeof VISITOR_TABLES)[number];

/**
 * Columns of each per-visitor table, in insert order: the rebuild's row form
 * (src/events/tables.ts TABLE_SPECS, key first) for the tables it compares, and the dedupe row.
 */
export const VISITOR_COLUMNS: Record<VisitorTable, readonly string[]> = {
  seen_events: ["uuid", "type", "sdk_key", "received_at", "attempt"],
  exposures: columnsOf("exposures"),
  conversions: columnsOf("conversions"),
  converters: columnsOf("converters"),
};
