-- Guardrail breaches (docs/statistics.md "Guardrails"): the first time the scheduled check found
-- a variation of a running experiment significantly worse than the baseline on a guardrail
-- metric (event, aggregator and field: two metrics may share an event), in one environment. The
-- mark stays (results and the admin show it) after a pause; `paused_at` says the check paused
-- the experiment for it, so that a person's resume is not undone by the next hourly run.
CREATE TABLE guardrail_breaches (
  experiment_id TEXT NOT NULL,
  environment_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  metric TEXT NOT NULL,
  variation_id TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  p_value REAL NOT NULL,
  difference REAL,
  lift REAL,
  action TEXT NOT NULL,
  paused_at TEXT,
  PRIMARY KEY (experiment_id, environment_id, event_id, metric, variation_id)
);
