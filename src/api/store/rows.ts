/**
 * The D1 rows of the management tables (migrations/), exactly as stored: snake_case columns,
 * SQLite booleans as 0/1, JSON columns as text.
 */
import type { Change, PageActivation } from "../../core/datafile-types";

/** SQLite booleans: 0 / 1 (D1 returns numbers). */
export type SqlBool = number;

/** The columns every project resource row has (attributes, audiences, … experiments). */
export interface BaseRow {
  id: string;
  project_id: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/** An `attributes` row. */
export interface AttributeRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  description: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/** An `audiences` row. `conditions`: JSON text of a typed-audience condition tree. */
export interface AudienceRow {
  id: string;
  project_id: string;
  name: string;
  description: string;
  conditions: string;
  archived: SqlBool;
  version: number;
  created_at: string;
  updated_at: string;
}

export type EventType = "custom" | "pageview" | "click";

/** An `events` row. */
export interface EventRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  type: EventType;
  page_id: string | null;
  selector: string | null;
  /** Conversions of one visitor counted per UTC day (null = the default; migrations/0007). */
  max_per_visitor_per_day: number | null;
  archived: SqlBool;
  version: number;
  created_at: string;
  updated_at: string;
}

/** A `pages` row. `conditions`: JSON text of a URL condition tree. */
export interface PageRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  activation: PageActivation;
  /** For `dom_changed`. */
  selector: string | null;
  conditions: string;
  archived: SqlBool;
  version: number;
  created_at: string;
  updated_at: string;
}

export type GroupPolicy = "random" | "overlapping";

/** A `groups` row. `allocation`: JSON text of `GroupAllocationEntry[]`. */
export interface GroupRow {
  id: string;
  project_id: string;
  name: string;
  policy: GroupPolicy;
  allocation: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/** A `lists` row. `values`: JSON text of `string[]`. */
export interface ListRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  values: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/**
 * A list page's projection of a `lists` row (src/api/services/lists.ts): the values stay out,
 * only their count is read.
 */
export interface ListSummaryRow extends Omit<ListRow, "values"> {
  value_count: number;
}

export type ExperimentType = "ab" | "multivariate" | "split_url";
export type AllocationPolicy = "manual" | "bandit";

/**
 * An `experiments` row. JSON columns: `audience_conditions` (tree over audience ids, or null =
 * everyone), `page_ids` (`string[]`), `metrics` (`WebMetric[]`), `variations`
 * (`VariationSpec[]`), `sections` (`WebSection[]` or null), `shared_changes` (`Change[]`),
 * `forced_variations` (`{visitorId: variationKey}`).
 */
export interface ExperimentRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  description: string;
  type: ExperimentType;
  layer_id: string;
  group_id: string | null;
  /** The feature flag this experiment is an A/B rule of (docs/flags.md), or null. */
  flag_id: string | null;
  /** Basis points 0..10000 of eligible visitors in the experiment. */
  traffic: number;
  allocation_policy: AllocationPolicy;
  audience_conditions: string | null;
  page_ids: string;
  metrics: string;
  variations: string;
  sections: string | null;
  shared_changes: string;
  forced_variations: string;
  archived: SqlBool;
  version: number;
  created_at: string;
  updated_at: string;
}

/** Experiment statuses per environment (`experiment_status.status`). */
export type ExperimentStatusValue = "Not started" | "Running" | "Paused" | "Archived";

/** An `experiment_status` row. */
export interface ExperimentStatusRow {
  experiment_id: string;
  environment_id: string;
  status: ExperimentStatusValue;
  updated_at: string;
}

/** What a change request asks for (docs/approvals.md). */
export type ChangeRequestKind = "update" | "start" | "resume";

/** Where a change request stands; only `pending` ones can be decided. */
export type ChangeRequestStatus = "pending" | "approved" | "rejected" | "withdrawn";

/** A `change_requests` row (migrations/0017_change_requests.sql). */
export interface ChangeRequestRow {
  id: string;
  project_id: string;
  experiment_id: string;
  kind: ChangeRequestKind;
  /** JSON: [environment key]. */
  environments: string;
  /** JSON: the update body, or `{environment}` of an action. */
  payload: string;
  base_version: number;
  status: ChangeRequestStatus;
  requested_by: string;
  requested_by_name: string;
  created_at: string;
  decided_by: string | null;
  decided_by_name: string | null;
  decided_at: string | null;
  comment: string | null;
}

/** A `datafile_revisions` row. */
export interface DatafileRevisionRow {
  environment_id: string;
  revision: number;
  /** SHA-256 hex of the datafile's content with `revision` blanked (see publish.ts). */
  sha256: string;
  /** Bytes of the stored text. */
  size: number;
  published_at: string;
  published_by: string;
  reason: string;
  rollback_of: number | null;
  /**
   * The environment's holdout share in this revision's datafile, basis points (0 = none); null for
   * revisions published before migrations/0019_holdout_revisions.sql that 0020 did not fill.
   */
  holdout_basis_points: number | null;
}

// ---- elements of the JSON columns

/** One element of `experiments.variations`. */
export interface VariationSpec {
  id: string;
  key: string;
  name?: string;
  /** Basis points; the weights of an experiment sum to 10000. */
  weight: number;
  changes?: Change[];
  featureEnabled?: boolean;
  /** Multivariate: the section-variation ids this combination is made of. */
  sectionVariationIds?: string[];
}

/** Feature variable types, as the datafile carries them (docs/flags.md "Variables"). */
export type FlagVariableType = "boolean" | "integer" | "double" | "string" | "json";

/** One element of `flags.variables`. */
export interface FlagVariableSpec {
  id: string;
  key: string;
  type: FlagVariableType;
  /** The value as the datafile carries it: `"true"`, `"42"`, `"1.5"`, text, JSON text. */
  defaultValue: string;
}

/** One element of `flags.variations`; the first is always `off` (disabled, defaults). */
export interface FlagVariationSpec {
  id: string;
  key: string;
  name: string;
  /** variable key → value in the datafile's string form; absent = the default. */
  variables: Record<string, string>;
}

/** A targeted delivery rule of one environment: audience, then a share of it gets a variation. */
export interface DeliveryRuleSpec {
  id: string;
  key: string;
  /** Audience-condition tree over audience ids; null = everyone. */
  audienceConditions: unknown[] | null;
  /** Basis points 0..10000 of the rule's audience that get `variationKey`. */
  traffic: number;
  variationKey: string;
}

/** One environment's settings of a flag (`flags.environments[environmentId]`). */
export interface FlagEnvironmentSpec {
  enabled: boolean;
  rules: DeliveryRuleSpec[];
  /** What Everyone Else (visitors no rule delivered to) gets; `off` by default. */
  defaultVariationKey: string;
}

/**
 * A `flags` row. JSON columns: `variables` (`FlagVariableSpec[]`), `variations`
 * (`FlagVariationSpec[]`), `environments` (`{environmentId: FlagEnvironmentSpec}`).
 */
export interface FlagRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  description: string;
  variables: string;
  variations: string;
  environments: string;
  rollout_id: string;
  default_rule_id: string;
  archived: SqlBool;
  version: number;
  created_at: string;
  updated_at: string;
}

/** One element of `groups.allocation`. */
export interface GroupAllocationEntry {
  experimentId: string;
  /** Basis points of all visitors; the remainder of 10000 is unallocated. */
  weight: number;
}

/** A `projects` row. */
export interface ProjectRow {
  id: string;
  name: string;
  account_id: string;
  description: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/** An `environments` row. */
export interface EnvironmentRow {
  id: string;
  project_id: string;
  key: string;
  name: string;
  sdk_key: string;
  /** Last published datafile revision; 0 = never published. */
  revision: number;
  /** 1: editors' changes to live experiments here wait for review (docs/approvals.md). */
  require_review: SqlBool;
  /**
   * The holdout setting as JSON (migrations/0016_holdouts.sql; src/api/services/holdouts.ts);
   * absent in rows built before the insert (the column's default `{}` applies).
   */
  holdout?: string;
  version: number;
  created_at: string;
  updated_at: string;
}

/** A `tokens` row. */
export interface TokenRow {
  id: string;
  name: string;
  role: "admin" | "editor" | "viewer";
  token_hash: string;
  prefix: string;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

/**
 * An `audit_log` row (src/api/store/audit.ts writes them), with `actor_name`: the name of the
 * token that acted, joined from `tokens` when the log is read (null for ADMIN_TOKEN or a deleted
 * token).
 */
export interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  project_id: string | null;
  /** JSON text. */
  details: string;
  actor_name: string | null;
}

/** An `admin_sessions` row (src/api/services/sessions.ts; migrations/0008_admin_sessions.sql). */
export interface SessionRow {
  /** SHA-256 hex of the session id (the cookie holds the id). */
  id_hash: string;
  /** SHA-256 hex of the token the session signed in with (`tokens.token_hash`). */
  token_hash: string;
  /** ms since the epoch */
  created_at: number;
  /** ms since the epoch */
  expires_at: number;
}
