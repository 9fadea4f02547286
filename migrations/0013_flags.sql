-- Feature flags (docs/flags.md): a flag's variables and variations are project-wide; its toggle,
-- delivery rules (targeted rollouts) and Everyone Else variation are per environment. A/B rules of
-- a flag are experiments with `flag_id` set: they keep their per-environment status, metrics and
-- results like any experiment.
CREATE TABLE flags (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  -- JSON: [{id, key, type, defaultValue}] (defaultValue as the datafile carries it: a string)
  variables TEXT NOT NULL DEFAULT '[]',
  -- JSON: [{id, key, name, variables: {variableKey: string value}}]; the first is "off"
  variations TEXT NOT NULL DEFAULT '[]',
  -- JSON: {environmentId: {enabled, rules: [{id, key, audienceConditions, traffic, variationKey}],
  --        defaultVariationKey}}; an environment without an entry has the flag off
  environments TEXT NOT NULL DEFAULT '{}',
  -- ids of the published rollout and of its Everyone Else rule (stable across revisions)
  rollout_id TEXT NOT NULL,
  default_rule_id TEXT NOT NULL,
  archived INTEGER NOT NULL DEFAULT 0,
  version INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  UNIQUE (project_id, key)
);

CREATE INDEX flags_project ON flags (project_id);

ALTER TABLE experiments ADD COLUMN flag_id TEXT REFERENCES flags(id);
CREATE INDEX experiments_flag ON experiments (flag_id);
