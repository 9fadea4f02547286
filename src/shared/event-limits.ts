/**
 * Bounds on the numbers an event may carry, and the per-visitor counting budget
 * (docs/ingest.md "Limits", docs/events.md "Bounded arithmetic"). Shared by the ingest endpoints
 * (which answer 400 for an event outside them), the queue consumer (which archives such a message
 * under `rejected/` instead of counting it) and the rebuild.
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
