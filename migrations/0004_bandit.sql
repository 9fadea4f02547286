-- Bandit allocation history (docs/bandits.md "Running a bandit"): one row per re-allocation the
-- scheduled handler made (src/api/bandit.ts `runBanditRound`), per change of its verdict
-- (warming up → Thompson sampling → winner), per skipped experiment (once per reason), and per
-- `POST /experiments/{id}/serve-winner`. Newest last by `id`.
CREATE TABLE bandit_allocations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  -- the environment whose counts were used (production)
  environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL,
  -- 1, 2, …: this row's number among the experiment's rows; the PRNG seed is "<experimentId>:<round>"
  round INTEGER NOT NULL,
  -- warming_up | thompson | winner (allocateBandit's verdict), skipped (not a usable bandit:
  -- see message), invalid_counts (the counts were refused: see message), winner_served
  reason TEXT NOT NULL,
  -- JSON {variationId: basis points}: the weights after this row, and before it
  weights TEXT NOT NULL,
  previous_weights TEXT NOT NULL,
  -- JSON {variationId: probability of being best}; {} when skipped
  probability_best TEXT NOT NULL DEFAULT '{}',
  -- variation id whose probability of being best reached the threshold, else null
  winner TEXT,
  -- JSON {variationId: unique visitors} and {variationId: unique converters} on the primary metric
  visitors TEXT NOT NULL DEFAULT '{}',
  conversions TEXT NOT NULL DEFAULT '{}',
  -- 1 when these weights were written to the experiment and published
  applied INTEGER NOT NULL DEFAULT 0,
  -- the environment's datafile revision that published the weights (null when nothing was published)
  revision INTEGER,
  -- "bandit" for the scheduled handler, else the token id of the API call
  actor TEXT NOT NULL,
  -- why a row was skipped, or the refused counts' problems
  message TEXT
);
CREATE INDEX bandit_allocations_experiment ON bandit_allocations (experiment_id, id);
