-- The per-visitor counting budget and the dropped/rejected counters (docs/events.md
-- "Bounded arithmetic and the per-visitor budget", docs/ingest.md "Limits").

-- events.max_per_visitor_per_day: how many of one visitor's conversions of this event count per
-- UTC day (NULL = the default, 100; src/shared/event-limits.ts). The consumer drops the rest and
-- counts them in event_drops.
ALTER TABLE events ADD COLUMN max_per_visitor_per_day INTEGER
  CHECK (max_per_visitor_per_day IS NULL OR max_per_visitor_per_day >= 1);

-- What the consumer did not count, per processing day (UTC), sdkKey ('' when the message named
-- none), kind and reason:
-- kind 'rejected': the message was archived under rejected/ in R2 with its reason — reason
--   'invalid' (failed validation) or 'count_failed' (D1 could not count it alone, after its batch
--   was split; the other events of the batch were counted);
-- kind 'dropped': a valid conversion beyond its visitor's daily budget — reason 'visitor_daily_cap'
--   (it is in the raw-events archive, never in the aggregates).
CREATE TABLE event_drops (
  day TEXT NOT NULL,
  sdk_key TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('rejected', 'dropped')),
  reason TEXT NOT NULL,
  count INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, sdk_key, kind, reason)
);

-- The budget's count of a visitor's stored conversions of one event and day (src/events/count-sql.ts
-- statement 1b) reads this index instead of every stored conversion of the visitor.
CREATE INDEX conversions_budget ON conversions (sdk_key, visitor_id, event_id, day);
