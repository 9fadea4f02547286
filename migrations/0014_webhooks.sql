-- Webhooks (docs/webhooks.md): per project, an HTTPS endpoint that gets chosen events, signed
-- with HMAC-SHA256 (the secret is shown once, when created or rotated) and delivered through the
-- WEBHOOKS queue with retries and backoff. Every delivery and each of its attempts is kept for
-- the delivery log (pruned after 30 days by the hourly run).
CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  url TEXT NOT NULL,
  -- 'json' (the signed Splitstream envelope) or 'slack' ({"text": …} for Slack-compatible hooks)
  format TEXT NOT NULL,
  -- JSON array of event types; ["*"] = all
  events TEXT NOT NULL,
  -- JSON array of environment keys whose events are sent; [] = all environments
  environments TEXT NOT NULL DEFAULT '[]',
  secret TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE INDEX webhooks_project ON webhooks (project_id);

-- One event for one webhook. `event_id` is the occurrence (shared by every webhook that gets
-- it); `body` is sent unchanged on every attempt, so a receiver can dedupe by the delivery id.
CREATE TABLE webhook_deliveries (
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
  UNIQUE (webhook_id, event_id)
);

CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE webhook_attempts (
  delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
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

-- What the hourly result check has already announced (significance.reached, srm.detected), so
-- each is sent once per occurrence: per experiment, environment and kind, and for significance
-- per metric and variation. Written in the same batch as the deliveries it announces
-- (`event_id`: theirs), and only when some webhook wants it.
CREATE TABLE result_alerts (
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  event_id TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  PRIMARY KEY (experiment_id, environment_id, kind, subject)
);
