-- Splitstream event aggregation (docs/events.md). Written only by the EVENTS queue consumer
-- (src/events/consumer.ts), every batch in one atomic D1 batch.
-- Timestamps are ms since epoch (INTEGER); days are UTC `yyyy-mm-dd`.

-- Dedupe: a uuid counts once, whatever the queue redelivers (CONTRACT §8). `attempt` is a random
-- token of the consumer run that inserted the row: the statements after the INSERT OR IGNORE
-- count a message only if its row carries the current run's token (i.e. it was newly inserted).
CREATE TABLE seen_events (
  uuid TEXT PRIMARY KEY,
  type TEXT NOT NULL CHECK (type IN ('impression', 'conversion')),
  sdk_key TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  attempt TEXT NOT NULL
);
CREATE INDEX seen_events_received_at ON seen_events (received_at);

-- A visitor's first processed impression per experiment: its variation, time and revision.
-- `uuid` is the impression that created the row.
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
-- Conversion attribution looks up all experiments of one visitor.
CREATE INDEX exposures_visitor ON exposures (sdk_key, visitor_id, first_at);

-- Unique visitors per variation, by the UTC day of their first impression and the datafile
-- revision that decided it.
CREATE TABLE variation_daily (
  sdk_key TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  variation_id TEXT NOT NULL,
  revision TEXT NOT NULL,
  day TEXT NOT NULL,
  visitors INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (sdk_key, experiment_id, variation_id, revision, day)
);

-- A visitor converts once per (experiment, event) for unique-converter counts. `uuid` is the
-- conversion that made the visitor a converter.
CREATE TABLE converters (
  sdk_key TEXT NOT NULL,
  experiment_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  visitor_id TEXT NOT NULL,
  variation_id TEXT NOT NULL,
  converted_at INTEGER NOT NULL,
  uuid TEXT NOT NULL,
  PRIMARY KEY (sdk_key, experiment_id, event_id, visitor_id)
);

-- Per variation (of the visitor's exposure), exposure revision, event and UTC conversion day.
-- `converters` counts a visitor on the day of their first attributed conversion; sums of squares
-- are per event.
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
  PRIMARY KEY (sdk_key, experiment_id, variation_id, revision, event_id, day)
);
