/**
 * Strict validation of one EVENTS queue message body (src/shared/event-messages.ts). Pure: no Workers
 * APIs. The consumer archives what fails here under `rejected/` in R2 and acks it, so a poison
 * message is never retried forever. Unknown keys are dropped (not copied into the result), so a
 * producer adding a field never poisons a batch; every known field is checked.
 */
import {
  MAX_REVENUE_CENTS,
  QUEUE_MAX_AGE_MS,
  QUEUE_MAX_FUTURE_MS,
  QUEUE_MAX_ID_LENGTH,
  QUEUE_MAX_TAG_STRING_LENGTH,
  QUEUE_MAX_TAGS,
  QUEUE_MAX_UUID_LENGTH,
  flagKeyProblem,
  valueProblem,
} from "../shared/event-limits";
import {
  BREAKDOWN_DIMENSIONS,
  BREAKDOWN_VALUE_MAX,
  FLAG_RULE_TYPES,
  type ConversionMessage,
  type EventMessage,
  type EventSource,
  type ImpressionDims,
  type ImpressionMessage,
} from "../shared/event-messages";

export type ValidationResult = { ok: true; message: EventMessage } | { ok: false; reason: string };

const SOURCES: readonly EventSource[] = ["edge", "browser", "sdk", "offline"];

class Invalid extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(body: Record<string, unknown>, key: string, max: number): string {
  const value = body[key];
  if (typeof value !== "string") throw new Invalid(`${key} must be a string`);
  if (value.length === 0) throw new Invalid(`${key} must not be empty`);
  if (value.length > max) throw new Invalid(`${key} is longer than ${max} characters`);
  return value;
}

function tagsOf(value: unknown): Record<string, string | number | boolean> {
  if (!isRecord(value)) throw new Invalid("tags must be an object");
  const entries = Object.entries(value);
  if (entries.length > QUEUE_MAX_TAGS)
    throw new Invalid(`tags has more than ${QUEUE_MAX_TAGS} keys`);
  const out: Record<string, string | number | boolean> = {};
  for (const [key, tag] of entries) {
    if (key.length === 0 || key.length > QUEUE_MAX_ID_LENGTH)
      throw new Invalid(`tags key must be 1..${QUEUE_MAX_ID_LENGTH} characters`);
    if (typeof tag === "string") {
      if (tag.length > QUEUE_MAX_TAG_STRING_LENGTH)
        throw new Invalid(`tags.${key} is longer than ${QUEUE_MAX_TAG_STRING_LENGTH} characters`);
    } else if (typeof tag === "number") {
      if (!Number.isFinite(tag)) throw new Invalid(`tags.${key} must be a finite number`);
    } else if (typeof tag !== "boolean") {
      throw new Invalid(`tags.${key} must be a string, number or boolean`);
    }
    // defineProperty, not assignment: a tag named "__proto__" is data, kept like any other.
    Object.defineProperty(out, key, {
      value: tag,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * Validates `body` as an EventMessage. `now` (ms) anchors the timestamp window
 * [now − 30 days, now + 1 h].
 */
export function validateMessage(body: unknown, now: number = Date.now()): ValidationResult {
  try {
    return { ok: true, message: parse(body, now) };
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, reason: error.message };
    throw error;
  }
}

/** An impression's dimensions: known keys only, short strings (docs/statistics.md "Breakdowns"). */
function dimsOf(value: unknown): ImpressionDims {
  if (!isRecord(value)) throw new Invalid("dims must be an object");
  const out: ImpressionDims = {};
  for (const [key, v] of Object.entries(value)) {
    if (!(BREAKDOWN_DIMENSIONS as readonly string[]).includes(key))
      throw new Invalid(
        `dims.${key.slice(0, 40)} is not a dimension (${BREAKDOWN_DIMENSIONS.join(", ")})`,
      );
    if (typeof v !== "string" || v.length === 0 || v.length > BREAKDOWN_VALUE_MAX)
      throw new Invalid(`dims.${key} must be a string of 1–${BREAKDOWN_VALUE_MAX} characters`);
    // Printable ASCII, and not "(…)": the results' own segment names are "(other)", "(unknown)".
    if (!/^[\x20-\x7e]+$/.test(v) || v.startsWith("("))
      throw new Invalid(`dims.${key} must be printable ASCII not starting with "("`);
    out[key as keyof ImpressionDims] = v;
  }
  return out;
}

/**
 * An impression's feature flag fields (docs/events.md "Feature flag impressions"): `flagKey` and
 * `ruleType` come together or not at all, `ruleType` is one of FLAG_RULE_TYPES and `flagKey` a
 * short key without control characters (src/shared/event-limits.ts `flagKeyProblem`).
 */
function flagFieldsOf(body: Record<string, unknown>, message: ImpressionMessage): void {
  const { flagKey, ruleType } = body;
  if (flagKey === undefined && ruleType === undefined) return;
  if (flagKey === undefined || ruleType === undefined)
    throw new Invalid("flagKey and ruleType must be given together");
  const problem = flagKeyProblem(flagKey);
  if (problem) throw new Invalid(problem);
  if (typeof ruleType !== "string" || !(FLAG_RULE_TYPES as readonly string[]).includes(ruleType))
    throw new Invalid(`ruleType must be one of ${FLAG_RULE_TYPES.join(", ")}`);
  message.flagKey = flagKey as string;
  message.ruleType = ruleType as ImpressionMessage["ruleType"];
}

function parse(body: unknown, now: number): EventMessage {
  if (!isRecord(body)) throw new Invalid("message body must be a JSON object");
  if (body.v !== 1) throw new Invalid("v must be 1");
  const type = body.type;
  if (type !== "impression" && type !== "conversion")
    throw new Invalid('type must be "impression" or "conversion"');
  const uuid = str(body, "uuid", QUEUE_MAX_UUID_LENGTH);
  const sdkKey = str(body, "sdkKey", QUEUE_MAX_ID_LENGTH);
  const revision = str(body, "revision", QUEUE_MAX_ID_LENGTH);
  const visitorId = str(body, "visitorId", QUEUE_MAX_ID_LENGTH);
  const timestamp = body.timestamp;
  if (typeof timestamp !== "number" || !Number.isFinite(timestamp))
    throw new Invalid("timestamp must be a finite number (ms since epoch)");
  if (timestamp < now - QUEUE_MAX_AGE_MS) throw new Invalid("timestamp is more than 30 days old");
  if (timestamp > now + QUEUE_MAX_FUTURE_MS)
    throw new Invalid("timestamp is more than 1 hour in the future");
  const source = body.source;
  if (typeof source !== "string" || !(SOURCES as readonly string[]).includes(source))
    throw new Invalid(`source must be one of ${SOURCES.join(", ")}`);
  const common = {
    v: 1 as const,
    uuid,
    sdkKey,
    revision,
    visitorId,
    timestamp,
    source: source as EventSource,
  };
  if (type === "impression") {
    const message: ImpressionMessage = {
      ...common,
      type,
      experimentId: str(body, "experimentId", QUEUE_MAX_ID_LENGTH),
      variationId: str(body, "variationId", QUEUE_MAX_ID_LENGTH),
    };
    if (body.dims !== undefined) message.dims = dimsOf(body.dims);
    flagFieldsOf(body, message);
    return message;
  }
  const message: ConversionMessage = {
    ...common,
    type,
    eventId: str(body, "eventId", QUEUE_MAX_ID_LENGTH),
    eventKey: str(body, "eventKey", QUEUE_MAX_ID_LENGTH),
  };
  // The same bounds as the ingest endpoints (src/shared/event-limits.ts): a message queued by an
  // older Worker or written by hand with a larger number is archived under rejected/, not counted.
  // (Revenue may be negative here — a correction queued by our own code — but never larger.)
  if (body.revenue !== undefined) {
    if (typeof body.revenue !== "number" || !Number.isSafeInteger(body.revenue))
      throw new Invalid("revenue must be an integer (cents)");
    if (Math.abs(body.revenue) > MAX_REVENUE_CENTS)
      throw new Invalid(`revenue must be within ±${MAX_REVENUE_CENTS} cents`);
    message.revenue = body.revenue;
  }
  if (body.value !== undefined) {
    const problem = valueProblem(body.value);
    if (problem) throw new Invalid(problem);
    message.value = body.value as number;
  }
  if (body.tags !== undefined) message.tags = tagsOf(body.tags);
  return message;
}
