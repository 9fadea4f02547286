-- The rebuild's apply (docs/events.md "Rebuild from the archive"): one row per (job, sdkKey)
-- whose rows D1 swapped in, written in the same transaction as the swap, so that a retried apply
-- step never swaps twice (the second would delete the rows the first made live).
CREATE TABLE rebuild_adoptions (
  job TEXT NOT NULL,
  sdk_key TEXT NOT NULL,
  adopted_at TEXT NOT NULL,
  PRIMARY KEY (job, sdk_key)
);
