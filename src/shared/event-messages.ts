/**
 * The EVENTS queue message shape (internal: ours to design, docs/events.md). Every producer — the
 * edge, the browser and SDK ingest endpoints, offline conversions — sends these; the consumer
 * validates each one before counting it. `uuid` makes redelivery idempotent (docs/events.md).
 */

/** Where an event came from, for diagnostics and per-source counts. */
export type EventSource = "edge" | "browser" | "sdk" | "offline";

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
}

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
