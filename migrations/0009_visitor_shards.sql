-- Visitor shards (docs/scaling.md "Visitor shards", docs/events.md "Exactly once across shards").
--
-- event_layout: where per-visitor state lives. One row (id = 1): shards = 0 means D1's own
-- seen_events / exposures / conversions / converters tables (the single-database layout);
-- shards = N means N SQLite Durable Objects (binding VISITOR_SHARDS), D1 keeping the daily
-- aggregates only. `moving_to` is set while `splitstream events move` copies the state to another
-- layout; the consumer does not count during a move (its batches wait in the queue).
-- The consumer writes the row on its first batch: 0 when D1 already holds per-visitor rows (a
-- deployment from before the shards, until it runs the move), else EVENT_SHARDS.
CREATE TABLE event_layout (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  shards INTEGER NOT NULL CHECK (shards >= 0),
  moving_to INTEGER CHECK (moving_to IS NULL OR moving_to >= 0),
  updated_at TEXT NOT NULL
);

-- Per shard, the highest outbox entry (seq) whose deltas were added to the daily aggregates.
CREATE TABLE shard_marks (
  shard INTEGER PRIMARY KEY,
  applied_seq INTEGER NOT NULL
);

-- Progress of a move between layouts (`splitstream events move`): per source (-1 = D1's own
-- tables, else a shard index) and per-visitor table, the last rowid looked at. Emptied when the
-- move finishes.
CREATE TABLE layout_move_cursors (
  source INTEGER NOT NULL,
  tbl TEXT NOT NULL,
  after INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (source, tbl)
);
