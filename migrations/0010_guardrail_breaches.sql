-- Guardrail breaches (docs/statistics.md "Guardrails"): the first time the scheduled check found
-- a variation of a running experiment significantly worse than the baseline on a guardrail
-- metric, in one environment. The mark stays (results and the admin show it) after a pause.
CREATE TABLE guardrail_breaches (
  experiment_id TEXT NOT NULL,
  environment_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  variation_id TEXT NOT NULL,
  detected_at TEXT NOT NULL,
  p_value REAL NOT NULL,
  difference REAL,
  lift REAL,
  action TEXT NOT NULL,
  PRIMARY KEY (experiment_id, environment_id, event_id, variation_id)
);
