-- Order-independent attribution (docs/events.md "Attribution"): the consumer keeps every counted
-- conversion, so that an impression processed AFTER a visitor's conversions (a later queue batch)
-- can still attribute them, and so that an earlier impression arriving late can move the
-- visitor's exposure (and everything it counted) to its own time, variation and revision.
-- Rows older than the message age limit are pruned by the scheduled handler
-- (src/events/retention.ts): no impression that could still attribute them can be accepted.
CREATE TABLE conversions (
  uuid TEXT PRIMARY KEY,
  sdk_key TEXT NOT NULL,
  visitor_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  -- ms since epoch, and its UTC day `yyyy-mm-dd`
  timestamp INTEGER NOT NULL,
  day TEXT NOT NULL,
  -- integer cents, 0 when absent
  revenue INTEGER NOT NULL DEFAULT 0,
  -- 0 when absent
  value REAL NOT NULL DEFAULT 0,
  -- datafile revision the producer used (aggregates use the exposure's revision)
  revision TEXT NOT NULL
);
-- A visitor's conversions from an exposure's first_at on.
CREATE INDEX conversions_visitor ON conversions (sdk_key, visitor_id, timestamp);
-- Retention pruning.
CREATE INDEX conversions_timestamp ON conversions (timestamp);

-- When an earlier impression replaces a visitor's exposure, that visitor's converters rows in the
-- experiment are dropped and recomputed.
CREATE INDEX converters_visitor ON converters (sdk_key, visitor_id, experiment_id);
