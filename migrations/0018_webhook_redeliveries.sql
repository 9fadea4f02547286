-- Redelivering a finished delivery (docs/webhooks.md "Redelivering"): a new delivery of the same
-- stored body to the same webhook, with `redelivery_of` naming the delivery it was made from.
--
-- It tells the same occurrence again, so it has the same `event_id`: the table-level
-- UNIQUE (webhook_id, event_id) of migrations/0014_webhooks.sql must become a unique index on the
-- first deliveries only (`redelivery_of IS NULL`), and SQLite drops a table constraint only by
-- rebuilding the table. `webhook_attempts` is rebuilt with it: dropping the old deliveries table
-- while attempts still referenced it would delete them (ON DELETE CASCADE runs on DROP TABLE's
-- implicit delete). New tables first, rows copied, old tables dropped (attempts before the
-- deliveries they reference), then renamed (SQLite renames the REFERENCES clause with the table).
PRAGMA defer_foreign_keys = true;

CREATE TABLE webhook_deliveries_new (
  id TEXT PRIMARY KEY,
  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  project_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  event_type TEXT NOT NULL,
  body TEXT NOT NULL,
  -- pending (queued or waiting for a retry) | delivered | failed (gave up)
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_status_code INTEGER,
  last_error TEXT,
  created_at TEXT NOT NULL,
  -- when the queue should next hand it over; the sweep re-queues pending deliveries long past it
  next_attempt_at TEXT NOT NULL,
  finished_at TEXT,
  -- the delivery this one redelivers (null for a first delivery). No foreign key: the original
  -- may be pruned from the log before its redelivery, which keeps the id it came from.
  redelivery_of TEXT
);

INSERT INTO webhook_deliveries_new
  (id, webhook_id, project_id, event_id, event_type, body, status, attempts, last_status_code,
   last_error, created_at, next_attempt_at, finished_at, redelivery_of)
SELECT id, webhook_id, project_id, event_id, event_type, body, status, attempts, last_status_code,
   last_error, created_at, next_attempt_at, finished_at, NULL
FROM webhook_deliveries;

CREATE TABLE webhook_attempts_new (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries_new(id) ON DELETE CASCADE,
  attempt INTEGER NOT NULL,
  at TEXT NOT NULL,
  -- null when no response came (network error, timeout)
  status_code INTEGER,
  error TEXT,
  duration_ms INTEGER NOT NULL,
  -- the first 1,000 characters of the response body
  response TEXT,
  PRIMARY KEY (delivery_id, attempt)
);

INSERT INTO webhook_attempts_new (delivery_id, attempt, at, status_code, error, duration_ms, response)
SELECT delivery_id, attempt, at, status_code, error, duration_ms, response FROM webhook_attempts;

DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_new RENAME TO webhook_deliveries;
ALTER TABLE webhook_attempts_new RENAME TO webhook_attempts;

-- Each occurrence makes one first delivery per webhook (as before); redeliveries repeat it.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_id)
  WHERE redelivery_of IS NULL;
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (status, next_attempt_at);
-- A delivery's redeliveries (its detail, and the one-pending-at-a-time check).
CREATE INDEX webhook_deliveries_redelivery ON webhook_deliveries (redelivery_of)
  WHERE redelivery_of IS NOT NULL;
