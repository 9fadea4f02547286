/**
 * The EVENTS queue message shape (internal: ours to design, docs/events.md). Every producer — the
 * edge, the browser and SDK ingest endpoints, offline conversions — sends these; the consumer
 * validates each one before counting it. `uuid` makes redelivery idempotent (docs/events.md).
 */

/** Where an event came from, for diagnostics and per-source counts. */
export type EventSource = "edge" | "browser" | "sdk" | "offline";

/**
 * What a visitor looked like at an impression, for breakdowns of the results (docs/statistics.md
 * "Breakdowns"): kept with the visitor's first exposure to each experiment. Every field is
 * optional (an SDK's impressions carry none) and at most BREAKDOWN_VALUE_MAX characters.
 */
export interface ImpressionDims {
  /** desktop | mobile | tablet | bot | other */
  device?: string;
  /** The browser's family (chrome, safari, firefox, edge, …; src/edge/user-agent.ts). */
  browser?: string;
  /** ISO 3166-1 alpha-2 country code (Cloudflare's `cf.country`). */
  country?: string;
  /** utm_source, else the referring site's host, else "direct". */
  source?: string;
  /** new | returning (the visitor cookie existed before this request). */
  visitor?: string;
}

/** The dimensions a result can be broken down by. */
export const BREAKDOWN_DIMENSIONS = ["device", "browser", "country", "source", "visitor"] as const;

/** Longest value of a dimension. */
export const BREAKDOWN_VALUE_MAX = 64;

export interface ImpressionMessage {
  v: 1;
  type: "impression";
  uuid: string;
  sdkKey: string;
  /** Datafile revision the decision was made with (results never mix revisions silently). */
  revision: string;
  visitorId: string;
  experimentId: string;
  variationId: string;
  /** ms since epoch */
  timestamp: number;
  source: EventSource;
  /** The visitor's dimensions at this impression (breakdowns); absent = unknown. */
  dims?: ImpressionDims;
  /**
   * The feature flag this impression decided, when the experiment is one of the flag's A/B rules
   * (Optimizely's decision `metadata.flag_key`). Always together with `ruleType`
   * (docs/events.md "Feature flag impressions"); counted like any impression of the experiment.
   */
  flagKey?: string;
  /** `"feature-test"`: an A/B rule of `flagKey` decided (Optimizely's `metadata.rule_type`). */
  ruleType?: FlagRuleType;
}

/**
 * The rule types an impression can carry. Only A/B rules of flags are impressions: delivery rules
 * (Optimizely's `"rollout"`) are releases, not experiments, and are never counted.
 */
export const FLAG_RULE_TYPES = ["feature-test"] as const;
export type FlagRuleType = (typeof FLAG_RULE_TYPES)[number];

export interface ConversionMessage {
  v: 1;
  type: "conversion";
  uuid: string;
  sdkKey: string;
  revision: string;
  visitorId: string;
  eventId: string;
  eventKey: string;
  timestamp: number;
  /** Integer cents. */
  revenue?: number;
  value?: number;
  tags?: Record<string, string | number | boolean>;
  source: EventSource;
}

export type EventMessage = ImpressionMessage | ConversionMessage;
