import { describe, expect, it } from "vitest";
import {
  applyPlan,
  archiveKey,
  compareText,
  isBefore,
  emptyState,
  planBatch,
  rejectedKey,
  toNdjson,
  utcDay,
  type AggregateState,
} from "../../src/events/aggregate";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";

const T0 = Date.UTC(2026, 10, 26, 10, 0, 0);
let n = 0;

function imp(over: Partial<ImpressionMessage> = {}): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: `i-${++n}`,
    sdkKey: "demo",
    revision: "1",
    visitorId: "alice",
    experimentId: "exp",
    variationId: "A",
    timestamp: T0,
    source: "edge",
    ...over,
  };
}

function conv(over: Partial<ConversionMessage> = {}): ConversionMessage {
  return {
    v: 1,
    type: "conversion",
    uuid: `c-${++n}`,
    sdkKey: "demo",
    revision: "1",
    visitorId: "alice",
    eventId: "buy",
    eventKey: "buy",
    timestamp: T0 + 1000,
    source: "browser",
    ...over,
  };
}

function run(
  state: AggregateState,
  ...batches: Array<Array<ImpressionMessage | ConversionMessage>>
) {
  for (const batch of batches) applyPlan(state, planBatch(batch));
  return state;
}

const vd = (exp: string, variation: string, rev: string, day: string) =>
  JSON.stringify(["demo", exp, variation, rev, day]);
const md = (exp: string, variation: string, rev: string, event: string, day: string) =>
  JSON.stringify(["demo", exp, variation, rev, event, day]);

describe("planBatch", () => {
  it("drops in-batch duplicates and orders impressions (by time) before conversions", () => {
    const c = conv({ timestamp: T0 + 5 });
    const late = imp({ timestamp: T0 + 10 });
    const early = imp({ timestamp: T0, experimentId: "exp2" });
    const plan = planBatch([c, late, c, early, late]);
    expect(plan.duplicatesInBatch).toBe(2);
    expect(plan.ops.map((op) => op.uuid)).toEqual([early.uuid, late.uuid, c.uuid]);
    // One candidate exposure per (sdkKey, experiment, visitor): the batch's earliest impression.
    const again = imp({ timestamp: T0 + 3 });
    const tie = imp({ timestamp: T0 + 3, uuid: "a-tie" });
    expect(planBatch([late, again, tie]).candidates.map((op) => op.uuid)).toEqual(["a-tie"]);
    expect(plan.candidates.map((op) => op.uuid)).toEqual([early.uuid, late.uuid]);
    expect(plan.conversions.map((op) => op.uuid)).toEqual([c.uuid]);
    expect(plan.ops[2]).toMatchObject({
      kind: "conversion",
      revenue: 0,
      value: 0,
      day: "2026-11-26",
    });
  });

  it("computes keys and NDJSON", () => {
    expect(utcDay(T0)).toBe("2026-11-26");
    expect(archiveKey(T0 + 3 * 3600_000, "m1", 5)).toBe("events/2026-11-26/13/m1-5.ndjson");
    expect(rejectedKey(T0, "m1")).toBe("rejected/2026-11-26/m1.ndjson");
    expect(toNdjson([{ a: 1 }, "x"])).toBe('{"a":1}\n"x"\n');
    expect(toNdjson([])).toBe("");
  });
});

describe("applyPlan (reference semantics)", () => {
  it("counts a redelivered batch once", () => {
    const batch = [imp(), conv({ revenue: 500, value: 2 })];
    const once = run(emptyState(), batch);
    const twice = run(emptyState(), batch, batch);
    expect(twice).toEqual(once);
    expect(once.variationDaily.get(vd("exp", "A", "1", "2026-11-26"))).toBe(1);
    expect(once.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-26"))).toEqual({
      converters: 1,
      events: 1,
      revenueSum: 500,
      revenueSumSq: 250000,
      valueSum: 2,
      valueSumSq: 4,
      eventsVisitorSumSq: 1,
      revenueVisitorSumSq: 250000,
      valueVisitorSumSq: 4,
    });
  });

  it("does not attribute a conversion that came before the first impression", () => {
    const state = run(emptyState(), [conv({ timestamp: T0 - 1 }), imp()]);
    expect(state.metricDaily.size).toBe(0);
    expect(state.variationDaily.get(vd("exp", "A", "1", "2026-11-26"))).toBe(1);
  });

  it("counts a conversion at exactly the impression time", () => {
    const state = run(emptyState(), [imp(), conv({ timestamp: T0 })]);
    expect(state.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-26"))?.events).toBe(1);
  });

  it("counts repeated impressions as one visitor; the earliest impression wins", () => {
    const state = run(
      emptyState(),
      [imp({ timestamp: T0 + 50, variationId: "B" }), imp({ timestamp: T0 + 20 })],
      [imp({ timestamp: T0, revision: "2" }), imp({ timestamp: T0 + 100 })],
    );
    expect([...state.variationDaily]).toEqual([[vd("exp", "A", "2", "2026-11-26"), 1]]);
    expect(state.exposures.get(JSON.stringify(["demo", "exp", "alice"]))).toMatchObject({
      variationId: "A",
      firstAt: T0,
      revision: "2",
    });
  });

  it("breaks timestamp ties by uuid, in SQLite's byte order", () => {
    const a = imp({ uuid: "b-1", variationId: "B" });
    const b = imp({ uuid: "a-1", variationId: "A" });
    for (const order of [
      [a, b],
      [b, a],
    ])
      expect(
        run(emptyState(), [order[0]!], [order[1]!]).exposures.get(
          JSON.stringify(["demo", "exp", "alice"]),
        )?.variationId,
      ).toBe("A");
    expect(compareText("\u{1F600}", "\uFFFD")).toBe(1); // UTF-16 order would say -1
    expect(compareText("ab", "abc")).toBe(-1);
    expect(compareText("abc", "abc")).toBe(0);
    expect(isBefore(1, "z", 2, "a")).toBe(true);
    expect(isBefore(1, "a", 1, "a")).toBe(false);
  });

  it("attributes a conversion processed before its impression, and moves it with the exposure", () => {
    const c = conv({ timestamp: T0 + 5000, revenue: 100 });
    const state = run(emptyState(), [c], [imp({ timestamp: T0 + 1000 })]);
    expect(state.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-26"))).toMatchObject({
      converters: 1,
      events: 1,
      revenueSum: 100,
    });
    run(state, [imp({ timestamp: T0, variationId: "B" })]);
    expect(state.metricDaily.has(md("exp", "A", "1", "buy", "2026-11-26"))).toBe(false);
    expect(state.variationDaily.has(vd("exp", "A", "1", "2026-11-26"))).toBe(false);
    expect(state.metricDaily.get(md("exp", "B", "1", "buy", "2026-11-26"))).toMatchObject({
      converters: 1,
      events: 1,
      revenueSum: 100,
    });
    expect(state.converters.get(JSON.stringify(["demo", "exp", "buy", "alice"]))).toEqual({
      variationId: "B",
      convertedAt: T0 + 5000,
      uuid: c.uuid,
      events: 1,
      revenue: 100,
      value: 0,
    });
  });

  it("moves a converter to the day of an earlier conversion that arrives later", () => {
    const day2 = T0 + 24 * 3600_000;
    const state = run(
      emptyState(),
      [imp(), conv({ timestamp: day2 })],
      [conv({ timestamp: T0 + 1 })],
    );
    expect(state.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-27"))).toMatchObject({
      converters: 0,
      events: 1,
    });
    expect(state.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-26"))).toMatchObject({
      converters: 1,
      events: 1,
    });
  });

  it("attributes to every experiment of the visitor and counts unique converters once", () => {
    const state = run(
      emptyState(),
      [imp(), imp({ experimentId: "exp2", variationId: "X", revision: "2" })],
      [conv({ value: 1 }), conv({ value: 3 }), conv({ visitorId: "bob" })],
    );
    expect(state.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-26"))).toMatchObject({
      converters: 1,
      events: 2,
      valueSum: 4,
      valueSumSq: 10,
    });
    expect(state.metricDaily.get(md("exp2", "X", "2", "buy", "2026-11-26"))).toMatchObject({
      converters: 1,
      events: 2,
    });
    expect(state.converters.size).toBe(2);
  });

  it("keeps per-visitor totals and Σx² increments in time order, whatever arrives first", () => {
    const day2 = T0 + 24 * 3600_000;
    const day3 = T0 + 2 * 24 * 3600_000;
    const a = conv({ timestamp: T0 + 1, revenue: 1000, value: 0.5 });
    const b = conv({ timestamp: day2, revenue: 500, value: 2 });
    const c = conv({ timestamp: day3, revenue: -200 }); // a refund
    const exposure = imp();
    // Running totals in time order: 1000, 1500, 1300 (revenue); 1, 2, 3 (events).
    const expected = {
      "2026-11-26": {
        eventsVisitorSumSq: 1,
        revenueVisitorSumSq: 1000 ** 2,
        valueVisitorSumSq: 0.25,
      },
      "2026-11-27": {
        eventsVisitorSumSq: 2 ** 2 - 1,
        revenueVisitorSumSq: 1500 ** 2 - 1000 ** 2,
        valueVisitorSumSq: 2.5 ** 2 - 0.5 ** 2,
      },
      "2026-11-28": {
        eventsVisitorSumSq: 3 ** 2 - 2 ** 2,
        revenueVisitorSumSq: 1300 ** 2 - 1500 ** 2,
        valueVisitorSumSq: 0,
      },
    };
    const converter = { events: 3, revenue: 1300, value: 2.5, convertedAt: T0 + 1, uuid: a.uuid };
    for (const batches of [
      [[exposure, a, b, c]],
      [[c], [b], [a], [exposure]],
      [[exposure], [c], [b], [a]],
      [
        [exposure, b],
        [c, a],
      ],
      [[a, c], [exposure], [b]],
    ]) {
      const state = run(emptyState(), ...batches);
      for (const [day, sq] of Object.entries(expected))
        expect(state.metricDaily.get(md("exp", "A", "1", "buy", day)), day).toMatchObject(sq);
      expect(state.converters.get(JSON.stringify(["demo", "exp", "buy", "alice"]))).toMatchObject(
        converter,
      );
      const cells = [...state.metricDaily.values()];
      const total = (f: (m: (typeof cells)[number]) => number) =>
        cells.reduce((n, m) => n + f(m), 0);
      // Over all days: the square of the visitor's totals, not the sum of the events' squares.
      expect(total((m) => m.revenueVisitorSumSq)).toBe(1300 ** 2);
      expect(total((m) => m.revenueSumSq)).toBe(1000 ** 2 + 500 ** 2 + 200 ** 2);
      expect(total((m) => m.eventsVisitorSumSq)).toBe(9);
      expect(total((m) => m.valueVisitorSumSq)).toBe(2.5 ** 2);
    }
    // An earlier impression in another variation moves all of it, increments included.
    const moved = run(
      emptyState(),
      [exposure, a, b, c],
      [imp({ timestamp: T0 - 5, variationId: "B" })],
    );
    expect([...moved.metricDaily.keys()].every((k) => JSON.parse(k)[2] === "B")).toBe(true);
    for (const [day, sq] of Object.entries(expected))
      expect(moved.metricDaily.get(md("exp", "B", "1", "buy", day)), day).toMatchObject(sq);
    // A later first impression leaves the first conversion unattributed: totals start later.
    const late = run(emptyState(), [a, b, c, imp({ timestamp: day2 })]);
    expect(late.converters.get(JSON.stringify(["demo", "exp", "buy", "alice"]))).toMatchObject({
      events: 2,
      revenue: 300,
      value: 2,
    });
    expect(late.metricDaily.get(md("exp", "A", "1", "buy", "2026-11-28"))).toMatchObject({
      eventsVisitorSumSq: 3,
      revenueVisitorSumSq: 300 ** 2 - 500 ** 2,
    });
  });

  it("keeps sdk keys apart", () => {
    const state = run(emptyState(), [imp({ sdkKey: "other" }), conv()]);
    expect(state.metricDaily.size).toBe(0);
  });
});
