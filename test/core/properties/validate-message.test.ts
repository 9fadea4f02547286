/**
 * Property tests of the queue consumer's message validation (src/events/validate-message.ts) on
 * arbitrary values (docs/security.md "Input validation"): it never throws, it accepts exactly the
 * well-formed messages (checked against an independent statement of the format), it copies only
 * known fields, and one bad field makes a valid message invalid with a reason naming that field.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { EventMessage } from "../../../src/shared/event-messages";
import {
  QUEUE_MAX_AGE_MS,
  QUEUE_MAX_FUTURE_MS,
  QUEUE_MAX_ID_LENGTH,
  QUEUE_MAX_TAG_STRING_LENGTH,
  QUEUE_MAX_TAGS,
  QUEUE_MAX_UUID_LENGTH,
} from "../../../src/shared/event-limits";
import { validateMessage } from "../../../src/events/validate-message";
import {
  SEED,
  defineOwn,
  hostileJson,
  hostileKey,
  hostileNumber,
  hostileString,
  prototypeIsClean,
  seedProperties,
} from "../../support/fast-check";

seedProperties(500);

const NOW = Date.UTC(2026, 8, 1, 12);
const SOURCES = ["edge", "browser", "sdk", "offline"];

/** The format, stated independently of the validator: null when well-formed, else the bad field. */
function badField(body: unknown): string | null {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "(body)";
  const b = body as Record<string, unknown>;
  const str = (key: string, max: number) =>
    typeof b[key] === "string" &&
    (b[key] as string).length >= 1 &&
    (b[key] as string).length <= max;
  if (b.v !== 1) return "v";
  if (b.type !== "impression" && b.type !== "conversion") return "type";
  if (!str("uuid", QUEUE_MAX_UUID_LENGTH)) return "uuid";
  for (const key of ["sdkKey", "revision", "visitorId"])
    if (!str(key, QUEUE_MAX_ID_LENGTH)) return key;
  const t = b.timestamp;
  if (
    typeof t !== "number" ||
    !Number.isFinite(t) ||
    t < NOW - QUEUE_MAX_AGE_MS ||
    t > NOW + QUEUE_MAX_FUTURE_MS
  )
    return "timestamp";
  if (typeof b.source !== "string" || !SOURCES.includes(b.source)) return "source";
  const own = b.type === "impression" ? ["experimentId", "variationId"] : ["eventId", "eventKey"];
  for (const key of own) if (!str(key, QUEUE_MAX_ID_LENGTH)) return key;
  if (b.type === "impression") return null;
  if (
    b.revenue !== undefined &&
    !(
      typeof b.revenue === "number" &&
      Number.isSafeInteger(b.revenue) &&
      Math.abs(b.revenue) <= 1e11
    )
  )
    return "revenue";
  if (
    b.value !== undefined &&
    !(typeof b.value === "number" && Number.isFinite(b.value) && Math.abs(b.value) <= 1e12)
  )
    return "value";
  if (b.tags !== undefined) {
    const tags = b.tags;
    if (typeof tags !== "object" || tags === null || Array.isArray(tags)) return "tags";
    const entries = Object.entries(tags);
    if (entries.length > QUEUE_MAX_TAGS) return "tags";
    for (const [key, tag] of entries) {
      if (key.length < 1 || key.length > QUEUE_MAX_ID_LENGTH) return "tags";
      if (
        typeof tag === "string"
          ? tag.length > QUEUE_MAX_TAG_STRING_LENGTH
          : typeof tag === "number"
            ? !Number.isFinite(tag)
            : typeof tag !== "boolean"
      )
        return "tags";
    }
  }
  return null;
}

const id = (max: number) =>
  fc.oneof(
    fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
    fc.string({ minLength: max, maxLength: max }),
  );

const validTags = fc
  .array(
    fc.tuple(
      fc.oneof(
        hostileKey.filter((k) => k.length > 0),
        fc.string({ minLength: 1, maxLength: 10 }),
      ),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.boolean(),
      ),
    ),
    { maxLength: 6 },
  )
  .map((entries) => {
    const tags: Record<string, unknown> = {};
    for (const [k, v] of entries) defineOwn(tags, k, v);
    return tags;
  });

/** Well-formed messages, with extra unknown fields sometimes. */
const validMessage: fc.Arbitrary<Record<string, unknown>> = fc
  .record({
    v: fc.constant(1),
    type: fc.constantFrom("impression", "conversion"),
    uuid: id(QUEUE_MAX_UUID_LENGTH),
    sdkKey: id(QUEUE_MAX_ID_LENGTH),
    revision: id(QUEUE_MAX_ID_LENGTH),
    visitorId: id(QUEUE_MAX_ID_LENGTH),
    timestamp: fc.integer({ min: NOW - QUEUE_MAX_AGE_MS, max: NOW + QUEUE_MAX_FUTURE_MS }),
    source: fc.constantFrom(...SOURCES),
    experimentId: id(QUEUE_MAX_ID_LENGTH),
    variationId: id(QUEUE_MAX_ID_LENGTH),
    eventId: id(QUEUE_MAX_ID_LENGTH),
    eventKey: id(QUEUE_MAX_ID_LENGTH),
    revenue: fc.option(fc.integer({ min: -1e11, max: 1e11 }), { nil: undefined }),
    value: fc.option(fc.double({ noNaN: true, min: -1e12, max: 1e12 }), { nil: undefined }),
    tags: fc.option(validTags, { nil: undefined }),
    extra: fc.option(hostileJson, { nil: undefined }),
  })
  .map((m) => {
    const out: Record<string, unknown> = {};
    const drop =
      m.type === "impression"
        ? ["eventId", "eventKey", "revenue", "value", "tags"]
        : ["experimentId", "variationId"];
    for (const [k, v] of Object.entries(m)) if (!drop.includes(k) && v !== undefined) out[k] = v;
    return out;
  });

const FIELDS = [
  "v",
  "type",
  "uuid",
  "sdkKey",
  "revision",
  "visitorId",
  "timestamp",
  "source",
  "experimentId",
  "variationId",
  "eventId",
  "eventKey",
  "revenue",
  "value",
  "tags",
];

describe(`validateMessage (seed ${SEED})`, () => {
  it("any value: never throws; accepts exactly the well-formed messages", () => {
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.oneof(
          hostileJson,
          fc.anything({
            withBigInt: true,
            withMap: true,
            withNullPrototype: true,
            withBoxedValues: true,
          }),
          validMessage,
          // a valid message with one field replaced by anything
          fc
            .tuple(
              validMessage,
              fc.constantFrom(...FIELDS, "__proto__"),
              fc.oneof(hostileJson, hostileNumber, hostileString),
            )
            .map(([m, field, value]) => {
              const copy = { ...m };
              defineOwn(copy, field, value);
              return copy;
            }),
        ),
        (body) => {
          let result: ReturnType<typeof validateMessage> | undefined;
          expect(() => (result = validateMessage(body, NOW))).not.toThrow();
          expect(result!.ok).toBe(badField(body) === null);
          if (result!.ok) {
            accepted++;
            // Only known fields are copied; the message survives the queue's JSON encoding.
            for (const key of Object.keys(result!.message)) expect(FIELDS).toContain(key);
            const again = validateMessage(JSON.parse(JSON.stringify(result!.message)), NOW);
            expect(again.ok).toBe(true);
          } else {
            expect(result!.reason.length).toBeGreaterThan(0);
          }
          expect(prototypeIsClean()).toBe(true);
        },
      ),
    );
    expect(accepted).toBeGreaterThan(50);
  });

  it("a well-formed message is accepted as it is (unknown fields dropped)", () => {
    fc.assert(
      fc.property(validMessage, (m) => {
        const result = validateMessage(m, NOW);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        const { extra: _extra, ...known } = m;
        expect(result.message).toEqual(known as unknown as EventMessage);
      }),
    );
  });

  it("one bad field: rejected, and the reason names that field", () => {
    const badValue: Record<string, fc.Arbitrary<unknown>> = {
      v: fc.constantFrom(0, 2, "1", null, true),
      type: fc.constantFrom("Impression", "", "click", null, 1),
      uuid: fc.constantFrom("", "u".repeat(QUEUE_MAX_UUID_LENGTH + 1), 7, null),
      sdkKey: fc.constantFrom("", "k".repeat(QUEUE_MAX_ID_LENGTH + 1), [], null),
      visitorId: fc.constantFrom("", "x".repeat(QUEUE_MAX_ID_LENGTH + 1), {}, 0),
      timestamp: fc.constantFrom(
        NOW - QUEUE_MAX_AGE_MS - 1,
        NOW + QUEUE_MAX_FUTURE_MS + 1,
        Number.NaN,
        Infinity,
        "1",
        null,
      ),
      source: fc.constantFrom("api", "", "EDGE", null, "__proto__"),
      revenue: fc.constantFrom(1.5, Number.NaN, 2 ** 53, "100", Infinity, 1e11 + 1, -(2 ** 53 - 1)),
      value: fc.constantFrom(Number.NaN, Infinity, "1", null, {}, 1e12 * 1.5),
      tags: fc.constantFrom(
        null,
        [],
        "x",
        { "": 1 },
        { k: null },
        { k: { nested: 1 } },
        { k: Number.NaN },
        { k: "s".repeat(QUEUE_MAX_TAG_STRING_LENGTH + 1) },
        Object.fromEntries(Array.from({ length: QUEUE_MAX_TAGS + 1 }, (_, i) => [`t${i}`, i])),
      ),
    };
    fc.assert(
      fc.property(
        validMessage.filter((m) => m.type === "conversion"),
        fc
          .constantFrom(...Object.keys(badValue))
          .chain((field) => badValue[field]!.map((value) => [field, value] as const)),
        (m, [field, value]) => {
          const copy = { ...m, [field]: value };
          const result = validateMessage(copy, NOW);
          expect(result.ok).toBe(false);
          if (!result.ok) expect(result.reason).toContain(field);
        },
      ),
    );
  });
});
