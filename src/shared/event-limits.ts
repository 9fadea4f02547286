/**
 * The limits of an event: the bounds on the numbers it may carry and the per-visitor counting
 * budget (docs/ingest.md "Limits", docs/events.md "Bounded arithmetic"), shared by the ingest
 * endpoints (which answer 400 for an event outside them), the queue consumer (which archives such
 * a message under `rejected/` instead of counting it) and the rebuild; and the limits on its
 * strings, tags and timestamp, which come in two sets (INGEST_* and QUEUE_*, below).
 *
 * Why these bounds: the consumer adds revenue up per visitor, per day and per variation. With at
 * most MAX_REVENUE_CENTS per event and DEFAULT_DAILY_CONVERSION_CAP counted conversions per visitor,
 * event and day, one visitor adds at most 10^13 cents a day; the counting SQL also sums money as
 * REAL (which cannot overflow), so no event — however many of them — can make the arithmetic fail
 * for the other events of its batch.
 */

/** Largest revenue one event may carry: 10^11 cents (1,000,000,000.00 in the currency's unit). */
export const MAX_REVENUE_CENTS = 100_000_000_000;

/** Largest |value| one event may carry (a `sum` metric over `value`). */
export const MAX_ABS_VALUE = 1_000_000_000_000;

/**
 * Default number of a visitor's conversions of one event counted per UTC day; the ones beyond it
 * are dropped (and counted as dropped). An event's own setting (`maxPerVisitorPerDay`, the
 * management API's events resource) overrides it.
 */
export const DEFAULT_DAILY_CONVERSION_CAP = 100;

/** Largest per-event cap the management API accepts. */
export const MAX_DAILY_CONVERSION_CAP = 100_000;

// ---------------------------------------------------------------------------------------------
// Strings, tags and timestamps: INGEST_* and QUEUE_*
//
// Two sets on purpose. INGEST_* are what the ingest endpoints accept from clients
// (src/events/ingest-common.ts; the offline conversions API, src/api/services/conversions.ts,
// uses the uuid, tag and clock-skew ones). QUEUE_* are what the queue consumer accepts in an
// EVENTS message (src/events/validate-message.ts; also the rebuild). The consumer's bounds are
// looser — each QUEUE_* is at least its INGEST_* counterpart — so a message queued under older,
// more generous ingest limits (or still in the queue or the spill when an ingest limit is
// tightened) is still counted, not rejected. Tighten a QUEUE_* only once no such message can be
// left; never make it stricter than its INGEST_* counterpart.

/** Longest `uuid` (the dedupe key) an ingest endpoint accepts: printable ASCII, no spaces. */
export const INGEST_MAX_UUID_LENGTH = 64;
/** Most tags one ingested conversion may carry. */
export const INGEST_MAX_TAGS = 20;
/** Longest tag name an ingest endpoint accepts. */
export const INGEST_MAX_TAG_KEY_LENGTH = 64;
/** Longest string tag value an ingest endpoint accepts. */
export const INGEST_MAX_TAG_STRING_LENGTH = 256;
/** An ingested conversion's `timestamp` may be at most this old… */
export const INGEST_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** …and at most this far in the future (clock skew). */
export const INGEST_MAX_FUTURE_MS = 5 * 60 * 1000;

/** Longest `uuid` in a queue message. */
export const QUEUE_MAX_UUID_LENGTH = 64;
/** Longest id in a queue message (sdkKey, revision, visitorId, experiment/variation/event ids and keys, tag names). */
export const QUEUE_MAX_ID_LENGTH = 256;
/** Most tags one queue message may carry. */
export const QUEUE_MAX_TAGS = 64;
/** Longest string tag value in a queue message. */
export const QUEUE_MAX_TAG_STRING_LENGTH = 1024;
/** Messages whose timestamp is older than this (relative to processing time) are rejected. */
export const QUEUE_MAX_AGE_MS = 30 * 24 * 60 * 60 * 1000;
/** Messages whose timestamp is further in the future than this (clock skew) are rejected. */
export const QUEUE_MAX_FUTURE_MS = 60 * 60 * 1000;

/** Why `revenue` is not integer cents within [0, MAX_REVENUE_CENTS], or null when it is fine. */
export function revenueProblem(value: unknown): string | null {
  if (typeof value !== "number" || !Number.isFinite(value))
    return "revenue must be a finite number (integer cents)";
  if (!Number.isSafeInteger(value)) return "revenue must be an integer number of cents";
  if (value < 0) return "revenue must not be negative";
  if (value > MAX_REVENUE_CENTS) return `revenue must be at most ${MAX_REVENUE_CENTS} cents`;
  return null;
}

/** Why `value` is not a finite number within ±MAX_ABS_VALUE, or null when it is fine. */
export function valueProblem(value: unknown): string | null {
  if (typeof value !== "number" || !Number.isFinite(value)) return "value must be a finite number";
  if (Math.abs(value) > MAX_ABS_VALUE) return `value must be within ±${MAX_ABS_VALUE}`;
  return null;
}

/** A UTF-16 surrogate without its other half. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** C0 and C1 control characters and DEL. */
// eslint-disable-next-line no-control-regex -- excluding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Why `value` cannot be an impression's `flagKey` (1–QUEUE_MAX_ID_LENGTH characters, no control
 * character, no lone surrogate: the key ends up in D1, R2 and CSV exports), or null when it can.
 * The producers (the edge, `POST /_ss/v1/events`) check a key with this before they attach it, so
 * a datafile key the queue would refuse costs the flag fields, never the impression.
 */
export function flagKeyProblem(value: unknown): string | null {
  if (typeof value !== "string") return "flagKey must be a string";
  if (value.length === 0) return "flagKey must not be empty";
  if (value.length > QUEUE_MAX_ID_LENGTH)
    return `flagKey is longer than ${QUEUE_MAX_ID_LENGTH} characters`;
  if (CONTROL.test(value) || LONE_SURROGATE.test(value))
    return "flagKey must not contain control characters or lone surrogates";
  return null;
}
