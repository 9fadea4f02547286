/**
 * Typed shape of a Splitstream datafile: Optimizely datafile v4, field for field, plus the
 * top-level `web` extension (docs/datafile.md). These are the types *after* validation by
 * `parseDatafile`; raw input is `unknown` until then.
 */

/** Optimizely experiment statuses. Only `Running` is active (docs/decisions.md). */
export type ExperimentStatus =
  "Running" | "Paused" | "Not started" | "Archived" | "Launched" | (string & {});

export interface TrafficAllocationEntry {
  /** Variation id, or "" for a hole (no variation). */
  entityId: string;
  /** Exclusive upper bound of the bucket range, 0..10000. */
  endOfRange: number;
}

export interface VariableUsage {
  id: string;
  value: string;
}

export interface Variation {
  id: string;
  key: string;
  featureEnabled?: boolean;
  variables?: VariableUsage[];
}

export interface Experiment {
  id: string;
  key: string;
  status: ExperimentStatus;
  layerId: string;
  variations: Variation[];
  trafficAllocation: TrafficAllocationEntry[];
  audienceIds: string[];
  /** Audience condition tree over audience ids; takes precedence over `audienceIds` when present. */
  audienceConditions?: AudienceConditionTree;
  /** visitor id → variation key (QA whitelist). */
  forcedVariations: Record<string, string>;
  /** Optimizely rule type (`ab`, `mab`, `cmab`, `td`, `fr`); `fr` rules get the flag's "Everyone Else" variation. */
  type?: string;
  /** Contextual bandit config: such experiments need Optimizely's CMAB service and never bucket here. */
  cmab?: unknown;
}

/** Holdout statuses, as the SDK's `HoldoutStatus`: only `Running` holds visitors out. */
export type HoldoutStatus = "Running" | "Draft" | "Concluded" | "Archived" | (string & {});

/**
 * A global holdout of the top-level `holdouts` section, in the official SDK's format
 * (docs/holdouts.md): evaluated for every flag before any rule, and by Splitstream before every
 * experiment. A visitor whose bucket (bucketing id + holdout id) lands in a variation is held out.
 */
export interface Holdout {
  id: string;
  key: string;
  status: HoldoutStatus;
  variations: Variation[];
  trafficAllocation: TrafficAllocationEntry[];
  audienceIds: string[];
  audienceConditions?: AudienceConditionTree;
  /** Kept for the SDK's published type; the SDK resets both to [] (every flag is held out). */
  includedFlags?: string[];
  excludedFlags?: string[];
  /** True: a held-out visitor still gets the flags' delivery rules (only experiment rules are skipped). */
  excludeTargetedDeliveries?: boolean;
}

export interface Group {
  id: string;
  policy: "random" | "overlapping" | (string & {});
  experiments: Experiment[];
  trafficAllocation: TrafficAllocationEntry[];
}

/** A leaf condition of an audience: only `custom_attribute` is evaluated (others → unknown). */
export interface LeafCondition {
  type: string;
  name: string;
  match?: string;
  value?: unknown;
}

/** and/or/not tree whose leaves are LeafConditions (or, for audienceConditions, audience ids). */
export type ConditionTree<Leaf> = Leaf | ConditionTreeArray<Leaf>;
export type ConditionTreeArray<Leaf> = Array<"and" | "or" | "not" | ConditionTree<Leaf>>;
export type AudienceConditionTree = ConditionTree<string>;

export interface Audience {
  id: string;
  name: string;
  /** Legacy audiences: the condition tree as a JSON string. */
  conditions: string | ConditionTree<LeafCondition>;
}

export interface TypedAudience {
  id: string;
  name: string;
  conditions: ConditionTree<LeafCondition>;
}

export interface EventDef {
  id: string;
  key: string;
  experimentIds: string[];
}

export interface AttributeDef {
  id: string;
  key: string;
}

export type VariableType = "boolean" | "integer" | "double" | "string" | "json";

export interface VariableDef {
  id: string;
  key: string;
  type: VariableType;
  subType?: string;
  defaultValue: string;
}

export interface FeatureFlag {
  id: string;
  key: string;
  rolloutId: string;
  experimentIds: string[];
  variables: VariableDef[];
}

export interface Rollout {
  id: string;
  experiments: Experiment[];
}

// ---- web extension (docs/datafile.md) ----

export type PageActivation = "immediate" | "manual" | "url_changed" | "dom_changed";
export type UrlMatchType = "simple" | "exact" | "substring" | "regex";

export interface UrlCondition {
  match: UrlMatchType;
  value: string;
}

export interface WebPage {
  id: string;
  key: string;
  activation: PageActivation;
  /** For `dom_changed`: the selector whose appearance activates the page. */
  selector?: string;
  conditions: ConditionTree<UrlCondition>;
}

export interface AttributeChangeSet {
  text?: string;
  html?: string;
  class?: string;
  addClass?: string;
  removeClass?: string;
  style?: string;
  href?: string;
  src?: string;
  hide?: boolean;
  remove?: boolean;
  set?: Record<string, string>;
  unset?: string[];
}

export type Change =
  | { type: "attribute"; selector: string; attributes: AttributeChangeSet; pageId?: string }
  | {
      type: "insert_html";
      selector: string;
      position: "before" | "after" | "prepend" | "append" | "replace";
      html: string;
      pageId?: string;
    }
  | {
      /**
       * Moves the element(s) matching `selector` to `position` relative to `target`. A streaming
       * rewriter cannot look ahead, so the moved HTML is `html`, captured when the change was
       * made (docs/changes.md "move").
       */
      type: "move";
      selector: string;
      target: string;
      position: "before" | "after" | "prepend" | "append";
      html: string;
      pageId?: string;
    }
  | { type: "custom_css"; value: string; pageId?: string }
  | { type: "custom_code"; value: string; pageId?: string }
  | {
      type: "redirect";
      destination: string;
      preserveParameters?: boolean;
      mode?: "redirect" | "rewrite";
      pageId?: string;
    };

export type MetricAggregator = "unique" | "count" | "sum";

export interface WebMetric {
  eventId: string;
  aggregator: MetricAggregator;
  field?: "revenue" | "value";
  winningDirection?: "increasing" | "decreasing";
  /**
   * Winsorisation of count and sum metrics in results (docs/statistics.md "Capping"): each
   * visitor's total is capped at `value` (absolute) or at the `value` quantile of the converting
   * visitors' totals (percentile, 0 < value < 1).
   */
  capping?: { type: "absolute" | "percentile"; value: number };
  /**
   * A guardrail (docs/statistics.md "Guardrails"): a significant harm on this metric marks the
   * experiment, and with `action: "pause"` pauses it in that environment.
   */
  guardrail?: { action: "mark" | "pause" };
}

export interface WebSection {
  id: string;
  name?: string;
  variations: Array<{ id: string; name?: string; changes: Change[] }>;
}

export interface WebVariation {
  id: string;
  changes: Change[];
  /** Multivariate: the section-variation ids this combination is made of. */
  sectionVariationIds?: string[];
}

export interface WebExperiment {
  id: string;
  type: "ab" | "multivariate" | "split_url";
  pageIds: string[];
  metrics: WebMetric[];
  sharedChanges?: Change[];
  variations: WebVariation[];
  sections?: WebSection[];
  /** Allocation policy; `bandit` is recomputed by the scheduled handler. */
  allocationPolicy?: "manual" | "bandit";
}

export interface WebEvent {
  id: string;
  type: "custom" | "pageview" | "click";
  pageId?: string;
  selector?: string;
}

/**
 * A user list for `in_list`. Its members are private (docs/datafile.md "Lists"): a published
 * datafile carries `{id, key}` only and the Worker reads the members from a private KV key; a
 * datafile written by hand (or given to the CLI) may carry them inline as `values`.
 */
export interface WebList {
  id: string;
  key: string;
  /** The members, when inline; never served publicly (the datafile endpoint strips them). */
  values?: string[];
}

export interface WebExtension {
  pages: WebPage[];
  experiments: WebExperiment[];
  events: WebEvent[];
  lists: WebList[];
  integrations: Record<string, boolean>;
}

/** A whole validated datafile. Unknown extra fields are preserved by the parser but not typed. */
export interface Datafile {
  version: "4" | "2" | "3";
  accountId: string;
  projectId: string;
  revision: string;
  sdkKey?: string;
  environmentKey?: string;
  anonymizeIP?: boolean;
  botFiltering?: boolean;
  sendFlagDecisions?: boolean;
  attributes: AttributeDef[];
  audiences: Audience[];
  typedAudiences?: TypedAudience[];
  events: EventDef[];
  experiments: Experiment[];
  groups: Group[];
  featureFlags: FeatureFlag[];
  rollouts: Rollout[];
  integrations?: unknown[];
  /** Global holdouts (docs/holdouts.md); absent means none. */
  holdouts?: Holdout[];
  web?: WebExtension;
}
