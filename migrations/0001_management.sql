-- Splitstream management data (issue: management API and publishing).
-- Every resource row carries `version` for optimistic concurrency (ETag / If-Match → 409).
-- JSON columns hold validated JSON text; ids are strings (numeric-looking, like Optimizely's).

CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  account_id TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- Each environment has its own sdkKey, datafile and experiment statuses.
CREATE TABLE environments (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL,
  sdk_key TEXT NOT NULL UNIQUE,
  -- last published datafile revision (0 = never published)
  revision INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

CREATE TABLE attributes (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

CREATE TABLE audiences (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  -- condition tree (typed audience format): ["and", ["or", {type, name, match, value}]]
  conditions TEXT NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE pages (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  activation TEXT NOT NULL CHECK (activation IN ('immediate', 'manual', 'url_changed', 'dom_changed')),
  -- for dom_changed
  selector TEXT,
  -- URL condition tree: ["or", {match, value}, ...]
  conditions TEXT NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

CREATE TABLE events (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  type TEXT NOT NULL CHECK (type IN ('custom', 'pageview', 'click')),
  page_id TEXT REFERENCES pages(id),
  selector TEXT,
  archived INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

-- Mutually exclusive groups (policy random): experiments in a group never overlap.
CREATE TABLE groups (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  policy TEXT NOT NULL DEFAULT 'random' CHECK (policy IN ('random', 'overlapping')),
  -- group allocation: [{experimentId, weight (basis points)}]; remainder unallocated
  allocation TEXT NOT NULL DEFAULT '[]',
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE lists (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  -- JSON array of strings
  "values" TEXT NOT NULL DEFAULT '[]',
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

CREATE TABLE experiments (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  type TEXT NOT NULL CHECK (type IN ('ab', 'multivariate', 'split_url')),
  layer_id TEXT NOT NULL,
  group_id TEXT REFERENCES groups(id),
  -- share of eligible visitors in the experiment, basis points 0..10000 (the rest is held back)
  traffic INTEGER NOT NULL DEFAULT 10000 CHECK (traffic BETWEEN 0 AND 10000),
  allocation_policy TEXT NOT NULL DEFAULT 'manual' CHECK (allocation_policy IN ('manual', 'bandit')),
  -- JSON: audience condition tree over audience ids, or null for everyone
  audience_conditions TEXT,
  -- JSON: [pageId]
  page_ids TEXT NOT NULL DEFAULT '[]',
  -- JSON: [{eventId, aggregator, field?, winningDirection?}] (first = primary)
  metrics TEXT NOT NULL DEFAULT '[]',
  -- JSON: [{id, key, name, weight (basis points), changes: Change[], featureEnabled?}]
  variations TEXT NOT NULL,
  -- JSON: multivariate sections [{id, name, variations: [{id, name, changes}]}]
  sections TEXT,
  -- JSON: Change[] applied to every variation
  shared_changes TEXT NOT NULL DEFAULT '[]',
  -- JSON: {visitorId: variationKey} (QA)
  forced_variations TEXT NOT NULL DEFAULT '{}',
  archived INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

-- Status per environment: 'Not started' | 'Running' | 'Paused' | 'Archived'.
CREATE TABLE experiment_status (
  experiment_id TEXT NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
  environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  status TEXT NOT NULL CHECK (status IN ('Not started', 'Running', 'Paused', 'Archived')),
  updated_at TEXT NOT NULL,
  PRIMARY KEY (experiment_id, environment_id)
);

-- API tokens: only a SHA-256 of the secret is stored.
CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
  token_hash TEXT NOT NULL UNIQUE,
  -- first characters of the secret, for recognising it in lists
  prefix TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT,
  revoked_at TEXT,
  last_used_at TEXT
);

-- Every published datafile revision per environment (the text itself is in KV).
CREATE TABLE datafile_revisions (
  environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
  revision INTEGER NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  published_at TEXT NOT NULL,
  published_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  -- set when this revision re-published an older one
  rollback_of INTEGER,
  PRIMARY KEY (environment_id, revision)
);

-- Who changed what, when.
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  resource_type TEXT NOT NULL,
  resource_id TEXT NOT NULL,
  project_id TEXT,
  details TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_project ON audit_log (project_id, id);
CREATE INDEX experiments_project ON experiments (project_id);
CREATE INDEX audiences_project ON audiences (project_id);
