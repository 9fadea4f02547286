-- Approvals (docs/approvals.md): an environment can require review. An editor's change to an
-- experiment that is Running or Paused in such an environment, and an editor's start or resume
-- there, become a pending change request that another editor or an admin approves or rejects.
ALTER TABLE environments ADD COLUMN require_review INTEGER NOT NULL DEFAULT 0 CHECK (require_review IN (0, 1));

CREATE TABLE change_requests (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  -- a deleted experiment takes its requests with it (its audit entries stay)
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  -- 'update' = a PATCH of the experiment; 'start' | 'resume' = that action in one environment
  kind TEXT NOT NULL CHECK (kind IN ('update', 'start', 'resume')),
  -- JSON: [environment key] whose review the change needs
  environments TEXT NOT NULL,
  -- JSON: the validated update body, or {"environment": key} of an action
  payload TEXT NOT NULL,
  -- the experiment's version the request was made on; approving needs it still current
  base_version INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
  requested_by TEXT NOT NULL,
  requested_by_name TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  decided_by TEXT,
  decided_by_name TEXT,
  decided_at TEXT,
  comment TEXT
);

CREATE INDEX change_requests_project ON change_requests (project_id, status, id);
CREATE INDEX change_requests_experiment ON change_requests (experiment_id, status);
