-- Experiment schedules (docs/schedules.md): per experiment and environment, timed steps (start,
-- pause, resume, archive, traffic) that the per-minute scheduled run applies exactly once.
--
-- `experiment_schedules` holds the schedule's version (its ETag; a PUT replaces the pending steps
-- under If-Match) and `write_id`, a random id each write sets in its guard statement: the rest of
-- that write's batch is conditional on it, so a write that lost the race changes nothing.
CREATE TABLE experiment_schedules (
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  write_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (experiment_id, environment_id)
);

-- One step. `status`: pending (to run), running (claimed by a run: the guarded update that makes
-- it exactly once), done, failed, skipped (made no sense for the experiment's status then).
-- `percent_bp`: a traffic step's share in basis points (percent × 100), null for the others.
-- `revision`: the datafile revision the step published in the schedule's environment.
CREATE TABLE schedule_steps (
  id TEXT PRIMARY KEY,
  experiment_id TEXT NOT NULL,
  environment_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  at TEXT NOT NULL,
  action TEXT NOT NULL CHECK (action IN ('start', 'pause', 'resume', 'archive', 'traffic')),
  percent_bp INTEGER,
  status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed', 'skipped')),
  claimed_at TEXT,
  applied_at TEXT,
  revision INTEGER,
  error TEXT,
  -- The role of who wrote the step ('admin' | 'editor'): an editor's start, resume or traffic step
  -- is skipped at run time where review is required by then (docs/approvals.md "Schedules").
  written_by_role TEXT NOT NULL,
  created_at TEXT NOT NULL,
  FOREIGN KEY (experiment_id, environment_id)
    REFERENCES experiment_schedules (experiment_id, environment_id) ON DELETE CASCADE
);

-- The run's query: due pending steps in time order.
CREATE INDEX schedule_steps_due ON schedule_steps (status, at);
CREATE INDEX schedule_steps_schedule ON schedule_steps (experiment_id, environment_id, position);
