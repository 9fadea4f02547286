import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  type D1Migration,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { applyPlan, emptyState, foldEvents, planBatch, utcDay } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";
import {
  DERIVED_TABLES,
  columnsOf,
  diffRows,
  readTableRows,
  stateRows,
  type DerivedTable,
} from "../../src/events/tables";
import { readDerivedRows } from "../../src/events/visitor-state";
import worker from "../../src/index";
import { LAYOUTS, useLayout } from "../helpers/event-layout";

afterEach(() => vi.restoreAllMocks());

const T0 = Date.now() - 60 * 60 * 1000;
const DAY = utcDay(T0);
let seq = 0;
const uid = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${++seq}`;

function imp(sdkKey: string, over: Partial<ImpressionMessage> = {}): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: uid("i"),
    sdkKey,
    revision: "1",
    visitorId: "alice",
    experimentId: "exp",
    variationId: "A",
    timestamp: T0,
    source: "edge",
    ...over,
  };
}

function conv(sdkKey: string, over: Partial<ConversionMessage> = {}): ConversionMessage {
  return {
    v: 1,
    type: "conversion",
    uuid: uid("c"),
    sdkKey,
    revision: "1",
    visitorId: "alice",
    eventId: "buy",
    eventKey: "buy",
    timestamp: T0 + 1000,
    source: "browser",
    ...over,
  };
}

/** A queue batch of `bodies`; message ids are stable per call site via `ids`. */
function makeBatch(bodies: unknown[], ids?: string[]): MessageBatch<unknown> {
  return createMessageBatch(
    "splitstream-events",
    bodies.map((body, i) => ({
      id: ids?.[i] ?? uid("msg"),
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
}

async function deliver(batch: MessageBatch<unknown>, target = env) {
  await handleEventBatch(batch, target);
  return getQueueResult(batch, createExecutionContext());
}

async function rows(table: DerivedTable, sdkKey: string): Promise<Record<string, unknown>[]> {
  const columns = columnsOf(table);
  const out = await readDerivedRows(env, table, sdkKey);
  // Ordered by the first five columns, wherever the layout keeps the rows.
  const order = (row: Record<string, unknown>) =>
    JSON.stringify(columns.slice(0, 5).map((c) => row[c]));
  return out.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}

async function visitors(sdkKey: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const row of await rows("variation_daily", sdkKey))
    out[`${row.experiment_id}/${row.variation_id}/${row.revision}/${row.day}`] = Number(
      row.visitors,
    );
  return out;
}

async function metrics(sdkKey: string): Promise<Record<string, Record<string, number>>> {
  const out: Record<string, Record<string, number>> = {};
  for (const row of await rows("metric_daily", sdkKey))
    out[`${row.experiment_id}/${row.variation_id}/${row.revision}/${row.event_id}/${row.day}`] = {
      converters: Number(row.converters),
      events: Number(row.events),
      revenueSum: Number(row.revenue_sum),
      revenueSumSq: Number(row.revenue_sum_sq),
      valueSum: Number(row.value_sum),
      valueSumSq: Number(row.value_sum_sq),
      eventsVisitorSumSq: Number(row.events_visitor_sum_sq),
      revenueVisitorSumSq: Number(row.revenue_visitor_sum_sq),
      valueVisitorSumSq: Number(row.value_visitor_sum_sq),
    };
  return out;
}

/** converters rows: experiment/event/visitor → the visitor's totals and converting time. */
async function totals(sdkKey: string): Promise<Record<string, Record<string, unknown>>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const row of await rows("converters", sdkKey))
    out[`${row.experiment_id}/${row.event_id}/${row.visitor_id}`] = {
      variation: row.variation_id,
      convertedAt: row.converted_at,
      events: row.events,
      revenue: row.revenue,
      value: row.value,
    };
  return out;
}

async function readNdjson(key: string): Promise<unknown[]> {
  const object = await env.ARCHIVE.get(key);
  expect(object, `R2 object ${key}`).not.toBeNull();
  const text = await object!.text();
  expect(text.endsWith("\n")).toBe(true);
  return text
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as unknown);
}

describe.each(LAYOUTS)("handleEventBatch, $name", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it("counts visitors and attributed conversions and acks the batch", async () => {
    const sdk = uid("sdk");
    const result = await deliver(
      makeBatch([imp(sdk), conv(sdk, { revenue: 1500, value: 2 }), conv(sdk, { revenue: 500 })]),
    );
    expect(result.ackAll).toBe(true);
    expect(result.retryBatch.retry).toBe(false);
    expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 1 });
    expect(await metrics(sdk)).toEqual({
      [`exp/A/1/buy/${DAY}`]: {
        converters: 1,
        events: 2,
        revenueSum: 2000,
        revenueSumSq: 1500 * 1500 + 500 * 500,
        valueSum: 2,
        valueSumSq: 4,
        // Per visitor: one visitor with 2 events, 2000 cents and value 2 in total.
        eventsVisitorSumSq: 2 ** 2,
        revenueVisitorSumSq: 2000 ** 2,
        valueVisitorSumSq: 2 ** 2,
      },
    });
    expect(await totals(sdk)).toEqual({
      "exp/buy/alice": {
        variation: "A",
        convertedAt: T0 + 1000,
        events: 2,
        revenue: 2000,
        value: 2,
      },
    });
  });

  it("counts the same batch delivered twice once", async () => {
    const sdk = uid("sdk");
    const bodies = [imp(sdk), imp(sdk, { visitorId: "bob", variationId: "B" }), conv(sdk)];
    const ids = [uid("m"), uid("m"), uid("m")];
    await deliver(makeBatch(bodies, ids));
    const before = { v: await visitors(sdk), m: await metrics(sdk) };
    const again = await deliver(makeBatch(bodies, ids));
    expect(again.ackAll).toBe(true);
    expect({ v: await visitors(sdk), m: await metrics(sdk) }).toEqual(before);
    expect(before.v).toEqual({ [`exp/A/1/${DAY}`]: 1, [`exp/B/1/${DAY}`]: 1 });
    expect(before.m[`exp/A/1/buy/${DAY}`]?.events).toBe(1);
    // Duplicates inside one batch count once too.
    const dup = conv(sdk);
    await deliver(makeBatch([dup, dup]));
    expect((await metrics(sdk))[`exp/A/1/buy/${DAY}`]?.events).toBe(2);
  });

  it("does not count a conversion that came before the visitor's first impression", async () => {
    const sdk = uid("sdk");
    // Impression processed first (previous batch), conversion timestamped before it.
    await deliver(makeBatch([imp(sdk)]));
    await deliver(makeBatch([conv(sdk, { timestamp: T0 - 1 })]));
    // Conversion at exactly the impression time counts.
    await deliver(makeBatch([conv(sdk, { timestamp: T0, eventId: "signup" })]));
    expect(Object.keys(await metrics(sdk))).toEqual([`exp/A/1/signup/${DAY}`]);
    // Conversion without any impression of this visitor counts nowhere.
    await deliver(makeBatch([conv(sdk, { visitorId: "carol" })]));
    expect(Object.keys(await metrics(sdk))).toEqual([`exp/A/1/signup/${DAY}`]);
  });

  it("attributes a conversion sent in the same batch before its impression", async () => {
    const sdk = uid("sdk");
    await deliver(makeBatch([conv(sdk), imp(sdk)]));
    expect((await metrics(sdk))[`exp/A/1/buy/${DAY}`]?.events).toBe(1);
  });

  it("counts repeated impressions as one visitor; the earliest impression is the exposure", async () => {
    const sdk = uid("sdk");
    await deliver(makeBatch([imp(sdk, { timestamp: T0 + 10 }), imp(sdk, { timestamp: T0 + 20 })]));
    expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 1 });
    // A later batch with an earlier impression (another variation and revision) moves the visitor.
    await deliver(makeBatch([imp(sdk, { variationId: "B", revision: "2", timestamp: T0 })]));
    expect(await visitors(sdk)).toEqual({ [`exp/B/2/${DAY}`]: 1 });
    const [exposure] = await rows("exposures", sdk);
    expect(exposure).toMatchObject({ variation_id: "B", revision: "2", first_at: T0 });
    // Later impressions change nothing.
    await deliver(makeBatch([imp(sdk, { variationId: "A", timestamp: T0 + 5 })]));
    expect(await visitors(sdk)).toEqual({ [`exp/B/2/${DAY}`]: 1 });
  });

  it("attributes conversions processed in an earlier batch than the impression", async () => {
    const sdk = uid("sdk");
    await deliver(makeBatch([conv(sdk, { revenue: 300 }), conv(sdk, { timestamp: T0 - 1 })]));
    expect(await metrics(sdk)).toEqual({});
    expect(await rows("conversions", sdk)).toHaveLength(2);
    await deliver(makeBatch([imp(sdk)]));
    // The conversion at T0 + 1 s counts; the one before the impression does not.
    expect(await metrics(sdk)).toEqual({
      [`exp/A/1/buy/${DAY}`]: {
        converters: 1,
        events: 1,
        revenueSum: 300,
        revenueSumSq: 90000,
        valueSum: 0,
        valueSumSq: 0,
        eventsVisitorSumSq: 1,
        revenueVisitorSumSq: 90000,
        valueVisitorSumSq: 0,
      },
    });
  });

  it("moves counted conversions with the exposure when an earlier impression arrives late", async () => {
    const sdk = uid("sdk");
    const yesterday = T0 - 24 * 60 * 60 * 1000;
    await deliver(
      makeBatch([
        imp(sdk, { timestamp: T0 }),
        conv(sdk, { timestamp: T0 + 1000, revenue: 100 }),
        conv(sdk, { timestamp: yesterday + 1000, revenue: 7 }),
      ]),
    );
    expect(await metrics(sdk)).toEqual({
      [`exp/A/1/buy/${DAY}`]: {
        converters: 1,
        events: 1,
        revenueSum: 100,
        revenueSumSq: 10000,
        valueSum: 0,
        valueSumSq: 0,
        eventsVisitorSumSq: 1,
        revenueVisitorSumSq: 10000,
        valueVisitorSumSq: 0,
      },
    });
    // The visitor's real first impression (variation B, yesterday) was delayed.
    await deliver(makeBatch([imp(sdk, { variationId: "B", timestamp: yesterday })]));
    expect(await visitors(sdk)).toEqual({ [`exp/B/1/${utcDay(yesterday)}`]: 1 });
    expect(await metrics(sdk)).toEqual({
      [`exp/B/1/buy/${utcDay(yesterday)}`]: {
        converters: 1,
        events: 1,
        revenueSum: 7,
        revenueSumSq: 49,
        valueSum: 0,
        valueSumSq: 0,
        eventsVisitorSumSq: 1,
        revenueVisitorSumSq: 7 ** 2,
        valueVisitorSumSq: 0,
      },
      // Running totals in time order: 7, then 107 — this day holds the increment.
      [`exp/B/1/buy/${DAY}`]: {
        converters: 0,
        events: 1,
        revenueSum: 100,
        revenueSumSq: 10000,
        valueSum: 0,
        valueSumSq: 0,
        eventsVisitorSumSq: 2 ** 2 - 1,
        revenueVisitorSumSq: 107 ** 2 - 7 ** 2,
        valueVisitorSumSq: 0,
      },
    });
    expect(await totals(sdk)).toEqual({
      "exp/buy/alice": {
        variation: "B",
        convertedAt: yesterday + 1000,
        events: 2,
        revenue: 107,
        value: 0,
      },
    });
  });

  it("counts a converter on the day of their earliest conversion, whatever arrives first", async () => {
    const sdk = uid("sdk");
    const yesterday = T0 - 24 * 60 * 60 * 1000;
    await deliver(makeBatch([imp(sdk, { timestamp: yesterday })]));
    await deliver(makeBatch([conv(sdk, { timestamp: T0 })]));
    expect((await metrics(sdk))[`exp/A/1/buy/${DAY}`]).toMatchObject({ converters: 1, events: 1 });
    await deliver(makeBatch([conv(sdk, { timestamp: yesterday + 5 })]));
    const m = await metrics(sdk);
    expect(m[`exp/A/1/buy/${DAY}`]).toMatchObject({ converters: 0, events: 1 });
    expect(m[`exp/A/1/buy/${utcDay(yesterday)}`]).toMatchObject({ converters: 1, events: 1 });
  });

  it("keeps a repeat converter's totals and per-visitor Σx² exact, whatever arrives first", async () => {
    const [d1, d2, d3] = [T0 - 2 * 86_400_000, T0 - 86_400_000, T0];
    const orders: Array<(e: Record<string, EventMessage>) => EventMessage[][]> = [
      (e) => [[e.imp!, e.a!, e.b!, e.c!]],
      (e) => [[e.c!], [e.b!], [e.a!], [e.imp!]],
      (e) => [[e.imp!], [e.c!], [e.b!], [e.a!]],
      (e) => [
        [e.imp!, e.b!],
        [e.c!, e.a!],
      ],
      (e) => [[e.a!, e.c!], [e.imp!], [e.b!]],
      // An earlier impression in another variation arrives last and moves everything.
      (e) => [[e.late!, e.c!, e.a!], [e.b!], [e.imp!]],
    ];
    for (const [index, order] of orders.entries()) {
      const sdk = uid("sdk");
      const events = {
        late: imp(sdk, { timestamp: d1 + 500, variationId: "B" }),
        imp: imp(sdk, { timestamp: d1 }),
        a: conv(sdk, { timestamp: d1 + 1000, revenue: 1000, value: 0.5 }),
        b: conv(sdk, { timestamp: d2, revenue: 500, value: 2 }),
        c: conv(sdk, { timestamp: d3, revenue: -200 }), // a refund
      };
      for (const batch of order(events)) await deliver(makeBatch(batch));
      // Running totals in time order: revenue 1000, 1500, 1300; value 0.5, 2.5, 2.5.
      const cell = (events: number, revenue: number, value: number, sq: number[]) => ({
        converters: events === 1 && revenue === 1000 ? 1 : 0,
        events: 1,
        revenueSum: revenue,
        revenueSumSq: revenue ** 2,
        valueSum: value,
        valueSumSq: value ** 2,
        eventsVisitorSumSq: sq[0],
        revenueVisitorSumSq: sq[1],
        valueVisitorSumSq: sq[2],
      });
      expect(await metrics(sdk), `order ${index}`).toEqual({
        [`exp/A/1/buy/${utcDay(d1)}`]: cell(1, 1000, 0.5, [1, 1000 ** 2, 0.25]),
        [`exp/A/1/buy/${utcDay(d2)}`]: cell(2, 500, 2, [3, 1500 ** 2 - 1000 ** 2, 6]),
        [`exp/A/1/buy/${utcDay(d3)}`]: cell(3, -200, 0, [5, 1300 ** 2 - 1500 ** 2, 0]),
      });
      expect(await totals(sdk), `order ${index}`).toEqual({
        "exp/buy/alice": {
          variation: "A",
          convertedAt: d1 + 1000,
          events: 3,
          revenue: 1300,
          value: 2.5,
        },
      });
    }
  });

  it.runIf(shards === 0)("migration 0006's backfill computes what the consumer keeps", async () => {
    const sdk = uid("sdk");
    const events = [
      imp(sdk, { timestamp: T0 - 86_400_000 }),
      imp(sdk, { visitorId: "bob", experimentId: "exp2", variationId: "B" }),
      imp(sdk, { visitorId: "bob" }),
      conv(sdk, { timestamp: T0 - 86_400_000 + 5, revenue: 300, value: 1.5 }),
      conv(sdk, { revenue: 200, value: 0.25 }),
      conv(sdk, { eventId: "view" }),
      conv(sdk, { visitorId: "bob", revenue: 50 }),
      conv(sdk, { visitorId: "bob", timestamp: T0 + 5000, revenue: 70 }),
      conv(sdk, { visitorId: "bob", timestamp: T0 - 5000, revenue: 999 }), // before bob's exposure
    ];
    for (const event of events) await deliver(makeBatch([event]));
    const expected = stateRows(foldEvents(events));
    await env.DB.batch([
      env.DB.prepare(
        "UPDATE converters SET events = 0, revenue = 0, value = 0 WHERE sdk_key = ?",
      ).bind(sdk),
      env.DB.prepare(
        "UPDATE metric_daily SET events_visitor_sum_sq = 0, revenue_visitor_sum_sq = 0, value_visitor_sum_sq = 0 WHERE sdk_key = ?",
      ).bind(sdk),
    ]);
    expect(
      diffRows("converters", await readTableRows(env.DB, "converters", sdk), expected.converters),
    ).not.toEqual([]);
    const { TEST_MIGRATIONS } = env as unknown as { TEST_MIGRATIONS: D1Migration[] };
    const migration = TEST_MIGRATIONS.find((m) => m.name.startsWith("0006_"))!;
    const backfill = migration.queries.filter((q) => /^\s*UPDATE /m.test(q));
    expect(backfill).toHaveLength(2);
    await env.DB.batch(backfill.map((q) => env.DB.prepare(q)));
    for (const table of ["converters", "metric_daily"] as const)
      expect(
        diffRows(table, await readTableRows(env.DB, table, sdk), expected[table]),
        table,
      ).toEqual([]);
  });

  it.runIf(shards === 0)(
    "uses at most 12 D1 statements (and the move fence) per batch, whatever its size",
    async () => {
      const sdk = uid("sdk");
      const spy = vi.spyOn(env.DB, "batch");
      const counts: number[] = [];
      for (const size of [1, 10, 100]) {
        const events: EventMessage[] = [];
        for (let i = 0; i < size; i++)
          events.push(
            i % 2 ? conv(sdk, { visitorId: `v${i >> 1}` }) : imp(sdk, { visitorId: `v${i >> 1}` }),
          );
        await deliver(makeBatch(events));
        counts.push((spy.mock.calls.at(-1)![0] as unknown[]).length);
      }
      // 1 impression: 9 statements; 10 and 100 mixed events: 12 each (with the budget's 2); each
      // after the move fence (src/events/consumer.ts).
      expect(counts).toEqual([10, 13, 13]);
      await deliver(makeBatch([conv(sdk), conv(sdk)]));
      expect((spy.mock.calls.at(-1)![0] as unknown[]).length).toBe(8);
      // Visitors v0…v49 (the smaller batches reused v0…v4).
      expect((await visitors(sdk))[`exp/A/1/${DAY}`]).toBe(50);
    },
  );

  it("archives poison messages under rejected/, acks them and still counts the valid ones", async () => {
    const sdk = uid("sdk");
    const ids = [uid("m"), uid("m"), uid("m"), uid("m")];
    const good = imp(sdk);
    const bodies = [
      { ...imp(sdk), v: 2 },
      good,
      "not an event",
      conv(sdk, { revenue: 1.5 } as Partial<ConversionMessage>),
    ];
    const result = await deliver(makeBatch(bodies, ids));
    expect(result.ackAll).toBe(true);
    expect(result.explicitAcks.sort()).toEqual([ids[0], ids[2], ids[3]].sort());
    const lines = await readNdjson(`rejected/${utcDay(Date.now())}/${ids[0]}.ndjson`);
    expect(lines).toEqual([
      { id: ids[0], stage: "invalid", reason: "v must be 1", body: bodies[0] },
      {
        id: ids[2],
        stage: "invalid",
        reason: "message body must be a JSON object",
        body: "not an event",
      },
      {
        id: ids[3],
        stage: "invalid",
        reason: "revenue must be an integer (cents)",
        body: bodies[3],
      },
    ]);
    expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 1 });
  });

  it("writes the valid events of a batch as one NDJSON object in R2", async () => {
    const sdk = uid("sdk");
    const ids = [uid("m"), uid("m"), uid("m")];
    const events: unknown[] = [imp(sdk), "junk", conv(sdk, { tags: { plan: "pro" } })];
    const now = new Date().toISOString();
    await deliver(makeBatch(events, ids));
    const listed = await env.ARCHIVE.list({ prefix: `events/${now.slice(0, 10)}/` });
    const key = listed.objects.map((o) => o.key).find((k) => k.endsWith(`/${ids[0]}-2.ndjson`));
    expect(key).toMatch(/^events\/\d{4}-\d{2}-\d{2}\/\d{2}\/.+-2\.ndjson$/);
    expect(await readNdjson(key!)).toEqual([events[0], events[2]]);
    const head = await env.ARCHIVE.head(key!);
    expect(head?.httpMetadata?.contentType).toBe("application/x-ndjson");
  });

  it.runIf(shards === 0)(
    "retries the whole batch when every part fails mid-batch in D1, and never double counts",
    async () => {
      const sdk = uid("sdk");
      const bodies = [
        imp(sdk),
        imp(sdk, { visitorId: "bob" }),
        conv(sdk),
        conv(sdk, { visitorId: "bob" }),
      ];
      const ids = bodies.map(() => uid("m"));
      const realBatch = env.DB.batch.bind(env.DB);
      // An SQL error splits the batch (src/events/consumer.ts); when every part fails too, nothing
      // was counted and the whole batch is retried.
      const spy = vi.spyOn(env.DB, "batch").mockImplementation(async (statements) => {
        // Fail half-way through, inside D1's transaction: everything before must roll back.
        const half = Math.floor(statements.length / 2);
        return realBatch([
          ...statements.slice(0, half),
          env.DB.prepare("INSERT INTO no_such_table VALUES (1)"),
          ...statements.slice(half),
        ]);
      });
      const failed = await deliver(makeBatch(bodies, ids));
      // 4 events, then 2 + 2, then 1 + 1 + 1 + 1.
      expect(spy).toHaveBeenCalledTimes(7);
      spy.mockRestore();
      expect(failed.ackAll).toBe(false);
      expect(failed.retryBatch.retry).toBe(true);
      const seen = await env.DB.prepare("SELECT uuid FROM seen_events WHERE sdk_key = ?")
        .bind(sdk)
        .all();
      expect(seen.results).toEqual([]);
      expect(await visitors(sdk)).toEqual({});

      const redelivered = await deliver(makeBatch(bodies, ids));
      expect(redelivered.ackAll).toBe(true);
      const third = await deliver(makeBatch(bodies, ids));
      expect(third.ackAll).toBe(true);
      expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 2 });
      expect((await metrics(sdk))[`exp/A/1/buy/${DAY}`]).toMatchObject({
        converters: 2,
        events: 2,
      });
    },
  );

  it("keeps poison messages acked when the rest of the batch is retried", async () => {
    const sdk = uid("sdk");
    const ids = [uid("m"), uid("m")];
    vi.spyOn(console, "error").mockImplementation(() => {});
    vi.spyOn(env.DB, "batch").mockRejectedValue(new Error("d1 down"));
    const result = await deliver(makeBatch([{ v: 1 }, imp(sdk)], ids));
    expect(result.retryBatch.retry).toBe(true);
    expect(result.explicitAcks).toEqual([ids[0]]);
    expect(await readNdjson(`rejected/${utcDay(Date.now())}/${ids[0]}.ndjson`)).toHaveLength(1);
  });

  it("retries when the archive cannot be written", async () => {
    const sdk = uid("sdk");
    vi.spyOn(env.ARCHIVE, "put").mockRejectedValueOnce(new Error("r2 down"));
    const result = await deliver(makeBatch([imp(sdk)]));
    expect(result.retryBatch.retry).toBe(true);
    expect(result.ackAll).toBe(false);
    expect(await visitors(sdk)).toEqual({});
  });

  it("matches the reference fold on a mixed scenario spread over several batches", async () => {
    const sdk = uid("sdk");
    const people = ["p1", "p2", "p3", "p4"];
    const batches: EventMessage[][] = [];
    let k = 0;
    for (let b = 0; b < 4; b++) {
      const batch: EventMessage[] = [];
      for (const visitorId of people) {
        k++;
        batch.push(
          imp(sdk, {
            visitorId,
            experimentId: k % 2 ? "e1" : "e2",
            variationId: k % 3 ? "A" : "B",
            revision: String(1 + (b % 2)),
            timestamp: T0 + ((k * 7919) % 50) * 60_000,
          }),
          conv(sdk, {
            visitorId,
            eventId: k % 2 ? "buy" : "view",
            revenue: (k * 37) % 1000,
            value: k / 4,
            timestamp: T0 + ((k * 104729) % 80) * 60_000,
          }),
        );
      }
      batches.push(batch);
    }
    const model = emptyState();
    for (const batch of batches) {
      await deliver(makeBatch(batch));
      await deliver(makeBatch(batch.slice(0, 3))); // partial redelivery
      applyPlan(model, planBatch(batch));
      // The SQL equals the model after every batch, not only at the end.
      const modelRows = stateRows(model);
      for (const table of DERIVED_TABLES)
        expect(
          diffRows(table, await readDerivedRows(env, table, sdk), modelRows[table]),
          table,
        ).toEqual([]);
    }
    const expectedVisitors: Record<string, number> = {};
    for (const [key, count] of model.variationDaily) {
      const [, exp, variation, rev, day] = JSON.parse(key) as string[];
      expectedVisitors[`${exp}/${variation}/${rev}/${day}`] = count;
    }
    const expectedMetrics: Record<string, unknown> = {};
    for (const [key, cell] of model.metricDaily) {
      const [, exp, variation, rev, event, day] = JSON.parse(key) as string[];
      expectedMetrics[`${exp}/${variation}/${rev}/${event}/${day}`] = cell;
    }
    expect(Object.keys(expectedMetrics).length).toBeGreaterThan(0);
    // Repeat converters, so that per-visitor and per-event sums of squares differ.
    expect([...model.converters.values()].some((c) => c.events > 2)).toBe(true);
    expect(
      [...model.metricDaily.values()].some((m) => m.revenueVisitorSumSq !== m.revenueSumSq),
    ).toBe(true);
    // Every derived table equals the model's, and the model equals the from-scratch fold.
    const modelRows = stateRows(model);
    const foldRows = stateRows(foldEvents(batches.flat()));
    for (const table of DERIVED_TABLES) {
      expect(modelRows[table].length, table).toBeGreaterThan(0);
      expect(diffRows(table, foldRows[table], modelRows[table]), table).toEqual([]);
      const live = await readDerivedRows(env, table, sdk);
      expect(diffRows(table, live, modelRows[table]), table).toEqual([]);
    }
    expect(await visitors(sdk)).toEqual(expectedVisitors);
    const actual = await metrics(sdk);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expectedMetrics).sort());
    for (const [key, cell] of Object.entries(expectedMetrics)) {
      const c = cell as Record<string, number>;
      const a = actual[key]!;
      const exact = { valueSum: 0, valueSumSq: 0, valueVisitorSumSq: 0 };
      expect({ ...a, ...exact }).toEqual({ ...c, ...exact });
      expect(a.valueSum).toBeCloseTo(c.valueSum!, 9);
      expect(a.valueSumSq).toBeCloseTo(c.valueSumSq!, 9);
      expect(a.valueVisitorSumSq).toBeCloseTo(c.valueVisitorSumSq!, 9);
    }
  });

  it("is the Worker's queue handler", async () => {
    const sdk = uid("sdk");
    const batch = makeBatch([imp(sdk)]);
    const ctx = createExecutionContext();
    await worker.queue(batch, env);
    expect((await getQueueResult(batch, ctx)).ackAll).toBe(true);
    expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 1 });
  });
});
