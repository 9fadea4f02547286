import { describe, expect, it } from "vitest";
import {
  applyPlan,
  archiveKey,
  emptyState,
  planBatch,
  rejectedKey,
  toNdjson,
  utcDay,
  type AggregateState,
} from "../../src/events/aggregate";
import type { ConversionMessage, ImpressionMessage } from "../../src/events/messages";

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

  it("counts repeated impressions as one visitor; the first processed wins", () => {
    const state = run(
      emptyState(),
      [imp({ timestamp: T0 + 50, variationId: "B" }), imp({ timestamp: T0 + 20 })],
      [imp({ timestamp: T0 }), imp({ timestamp: T0 + 100 })],
    );
    expect([...state.variationDaily.values()]).toEqual([1]);
    // Inside one batch the earliest timestamp wins; later batches never change the exposure.
    expect(state.exposures.get(JSON.stringify(["demo", "exp", "alice"]))).toMatchObject({
      variationId: "A",
      firstAt: T0 + 20,
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

  it("keeps sdk keys apart", () => {
    const state = run(emptyState(), [imp({ sdkKey: "other" }), conv()]);
    expect(state.metricDaily.size).toBe(0);
  });
});
