/**
 * Order independence of the reference model (docs/events.md "Order independence"): applyPlan over
 * any split of a set of events into batches, in any order, with redeliveries, reaches exactly the
 * state foldEvents computes from scratch — every derived table, row for row.
 */
import { describe, expect, it } from "vitest";
import {
  applyPlan,
  emptyState,
  foldEvents,
  planBatch,
  type AggregateState,
} from "../../src/events/aggregate";
import { DERIVED_TABLES, stateRows, type Row } from "../../src/events/tables";
import { randomBatches, randomEvents } from "../events/random-events";

const START = Date.UTC(2026, 10, 20);

function sorted(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

function tables(state: AggregateState) {
  const rows = stateRows(state);
  return Object.fromEntries(DERIVED_TABLES.map((t) => [t, sorted(rows[t])]));
}

describe("applyPlan is order independent", () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: 40 random orders and splits reach the from-scratch fold`, () => {
      const events = randomEvents({ seed, start: START, impressions: 80, conversions: 120 });
      const expected = tables(foldEvents(events));
      // The scenario must exercise what order independence is about.
      expect(expected.exposures!.length).toBeGreaterThan(20);
      expect(expected.metric_daily!.length).toBeGreaterThan(10);
      expect(expected.metric_daily!.some((r) => r.converters === 0)).toBe(true);
      // Repeat converters: per-visitor totals and sums of squares differ from the per-event ones.
      expect(expected.converters!.some((r) => (r.events as number) > 2)).toBe(true);
      expect(
        expected.metric_daily!.some((r) => r.revenue_visitor_sum_sq !== r.revenue_sum_sq),
      ).toBe(true);
      expect(expected.metric_daily!.some((r) => r.events_visitor_sum_sq !== r.events)).toBe(true);
      for (let trial = 0; trial < 40; trial++) {
        const state = emptyState();
        const batches = randomBatches(events, seed * 1000 + trial, 1 + (trial % 25));
        for (const batch of batches) applyPlan(state, planBatch(batch));
        expect(tables(state), `trial ${trial}`).toEqual(expected);
      }
    });
  }

  it("per-visitor Σx² increments add up, over days and revisions, to Σ (visitor total)²", () => {
    const rows = stateRows(foldEvents(randomEvents({ seed: 4, start: START, conversions: 200 })));
    const sums = new Map<string, number[]>();
    const add = (k: string, values: number[]) => {
      const current = sums.get(k) ?? values.map(() => 0);
      sums.set(
        k,
        current.map((v, i) => v + values[i]!),
      );
    };
    for (const r of rows.metric_daily) {
      const k = JSON.stringify([r.sdk_key, r.experiment_id, r.variation_id, r.event_id]);
      add(`m${k}`, [
        r.events as number,
        r.revenue_sum as number,
        r.value_sum as number,
        r.events_visitor_sum_sq as number,
        r.revenue_visitor_sum_sq as number,
        r.value_visitor_sum_sq as number,
      ]);
    }
    for (const r of rows.converters) {
      const k = JSON.stringify([r.sdk_key, r.experiment_id, r.variation_id, r.event_id]);
      const [events, revenue, value] = [r.events, r.revenue, r.value] as number[];
      add(`c${k}`, [events!, revenue!, value!, events! ** 2, revenue! ** 2, value! ** 2]);
    }
    const keys = [...sums.keys()].filter((k) => k.startsWith("m"));
    expect(keys.length).toBeGreaterThan(10);
    for (const k of keys) expect(sums.get(`c${k.slice(1)}`), k).toEqual(sums.get(k));
    expect(sums.size).toBe(2 * keys.length);
  });

  it("differs from a fold that keeps the first processed impression (the test can fail)", () => {
    const events = randomEvents({ seed: 9, start: START });
    const expected = tables(foldEvents(events));
    // Reverse time order: every later impression first, one per batch.
    const reversed = [...events].sort((a, b) => b.timestamp - a.timestamp);
    const firstWins = emptyState();
    for (const event of reversed) {
      // A model of the old rule: an exposure, once set, never changes.
      const plan = planBatch([event]);
      plan.candidates = plan.candidates.filter(
        (c) => !firstWins.exposures.has(JSON.stringify([c.sdkKey, c.experimentId, c.visitorId])),
      );
      applyPlan(firstWins, plan);
    }
    expect(tables(firstWins)).not.toEqual(expected);
    const state = emptyState();
    for (const event of reversed) applyPlan(state, planBatch([event]));
    expect(tables(state)).toEqual(expected);
  });
});
