/**
 * Order independence of the real consumer on real D1 (docs/events.md "Order independence"): one
 * fixed random set of events (seeded), delivered through handleEventBatch in several orders and
 * splits — random ones with redeliveries, conversions before every impression, reverse time
 * order one event per batch, everything in one batch — ends in identical rows in every derived
 * table, and those equal the from-scratch fold (foldEvents).
 *
 * Each run gets its own sdkKeys and uuid prefix (seen_events is global), mapped back before the
 * comparison; the prefix is the same length in every run, so uuid tie-breaks are the same too.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { readDerivedRows } from "../../src/events/visitor-state";
import { LAYOUTS, useLayout } from "../helpers/event-layout";
import { beforeAll, describe, expect, it } from "vitest";
import { foldEvents } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import {
  DERIVED_TABLES,
  diffRows,
  stateRows,
  type DerivedTable,
  type Row,
} from "../../src/events/tables";
import { randomBatches, randomEvents } from "./random-events";

const DAY_MS = 24 * 60 * 60 * 1000;
const START = Math.floor(Date.now() / DAY_MS - 5) * DAY_MS;
const SDK_KEYS = ["sdk-a", "sdk-b"];
const EVENTS = randomEvents({ seed: 42, start: START, days: 4, sdkKeys: SDK_KEYS });

let runs = 0;

/** The events of one run: own sdkKeys and uuids (same-length prefix). */
function forRun(run: string): EventMessage[] {
  return EVENTS.map((e) => ({ ...e, sdkKey: `${run}${e.sdkKey}`, uuid: `${run}${e.uuid}` }));
}

async function deliver(batches: EventMessage[][]): Promise<void> {
  for (const bodies of batches) {
    const batch = createMessageBatch(
      "splitstream-events",
      bodies.map((body, i) => ({
        id: `m-${crypto.randomUUID()}-${i}`,
        timestamp: new Date(),
        attempts: 1,
        body,
      })),
    );
    await handleEventBatch(batch, env);
    expect((await getQueueResult(batch, createExecutionContext())).ackAll).toBe(true);
  }
}

/** Every derived table of one run, mapped back to the original sdkKeys and uuids. */
async function runRows(run: string): Promise<Record<DerivedTable, Row[]>> {
  const strip = (row: Row): Row => {
    const out: Row = { ...row };
    for (const column of ["sdk_key", "uuid"])
      if (typeof out[column] === "string") out[column] = (out[column] as string).slice(run.length);
    return out;
  };
  const out = {} as Record<DerivedTable, Row[]>;
  for (const table of DERIVED_TABLES) {
    out[table] = [];
    for (const sdkKey of SDK_KEYS)
      out[table].push(...(await readDerivedRows(env, table, `${run}${sdkKey}`)).map(strip));
  }
  return out;
}

const expected = stateRows(foldEvents(EVENTS));

async function expectFold(batches: EventMessage[][], run: string): Promise<void> {
  await deliver(batches);
  const live = await runRows(run);
  for (const table of DERIVED_TABLES)
    expect(diffRows(table, live[table], expected[table]), `${run} ${table}`).toEqual([]);
}

/** A run id: "r" + two digits + "-", the same length for every run. */
const nextRun = () => `r${String(++runs).padStart(2, "0")}-`;

describe.each(LAYOUTS)(
  "the consumer's aggregates do not depend on batch order or split ($name)",
  ({ shards }) => {
    beforeAll(() => useLayout(shards));
    it("has a scenario worth testing", () => {
      expect(expected.exposures.length).toBeGreaterThan(20);
      expect(expected.converters.length).toBeGreaterThan(10);
      expect(expected.metric_daily.length).toBeGreaterThan(10);
      expect(expected.variation_daily.length).toBeGreaterThan(10);
    });

    for (const [name, maxBatch, seed] of [
      ["random batches of up to 100", 100, 1],
      ["random batches of up to 20", 20, 2],
      ["random batches of up to 5", 5, 3],
    ] as const)
      it(`${name}, with redeliveries`, async () => {
        const run = nextRun();
        await expectFold(randomBatches(forRun(run), seed, maxBatch, 0.2), run);
      });

    it("every conversion before every impression, in batches of 10", async () => {
      const run = nextRun();
      const events = forRun(run);
      const ordered = [
        ...events.filter((e) => e.type === "conversion"),
        ...events.filter((e) => e.type === "impression"),
      ];
      const batches: EventMessage[][] = [];
      for (let i = 0; i < ordered.length; i += 10) batches.push(ordered.slice(i, i + 10));
      await expectFold(batches, run);
    });

    it("reverse time order, one event per batch", async () => {
      const run = nextRun();
      const ordered = forRun(run).sort((a, b) => b.timestamp - a.timestamp);
      await expectFold(
        ordered.map((e) => [e]),
        run,
      );
    });

    it("everything in one batch", async () => {
      const run = nextRun();
      await expectFold([forRun(run)], run);
    });
  },
);
