import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { applyPlan, emptyState, foldEvents, planBatch, utcDay } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import type { ConversionMessage, EventMessage, ImpressionMessage } from "../../src/events/messages";
import { DERIVED_TABLES, diffRows, readTableRows, stateRows } from "../../src/events/tables";
import worker from "../../src/index";

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

async function rows(table: string, sdkKey: string): Promise<Record<string, unknown>[]> {
  const result = await env.DB.prepare(
    `SELECT * FROM ${table} WHERE sdk_key = ? ORDER BY 1, 2, 3, 4, 5`,
  )
    .bind(sdkKey)
    .all();
  return result.results;
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

describe("handleEventBatch", () => {
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
      },
    });
    expect(await rows("converters", sdk)).toHaveLength(1);
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
      },
      [`exp/B/1/buy/${DAY}`]: {
        converters: 0,
        events: 1,
        revenueSum: 100,
        revenueSumSq: 10000,
        valueSum: 0,
        valueSumSq: 0,
      },
    });
    const [converter] = await rows("converters", sdk);
    expect(converter).toMatchObject({ variation_id: "B", converted_at: yesterday + 1000 });
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

  it("uses at most 10 D1 statements per batch, whatever its size", async () => {
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
    // 1 impression: 9 statements; 10 and 100 mixed events: 10 each.
    expect(counts).toEqual([9, 10, 10]);
    await deliver(makeBatch([conv(sdk), conv(sdk)]));
    expect((spy.mock.calls.at(-1)![0] as unknown[]).length).toBe(5);
    // Visitors v0…v49 (the smaller batches reused v0…v4).
    expect((await visitors(sdk))[`exp/A/1/${DAY}`]).toBe(50);
  });

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
      { id: ids[0], reason: "v must be 1", body: bodies[0] },
      { id: ids[2], reason: "message body must be a JSON object", body: "not an event" },
      { id: ids[3], reason: "revenue must be an integer (cents)", body: bodies[3] },
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

  it("retries the whole batch when D1 fails mid-batch and never double counts", async () => {
    const sdk = uid("sdk");
    const bodies = [
      imp(sdk),
      imp(sdk, { visitorId: "bob" }),
      conv(sdk),
      conv(sdk, { visitorId: "bob" }),
    ];
    const ids = bodies.map(() => uid("m"));
    const realBatch = env.DB.batch.bind(env.DB);
    const spy = vi.spyOn(env.DB, "batch").mockImplementationOnce(async (statements) => {
      // Fail half-way through, inside D1's transaction: everything before must roll back.
      const half = Math.floor(statements.length / 2);
      return realBatch([
        ...statements.slice(0, half),
        env.DB.prepare("INSERT INTO no_such_table VALUES (1)"),
        ...statements.slice(half),
      ]);
    });
    const failed = await deliver(makeBatch(bodies, ids));
    expect(spy).toHaveBeenCalledTimes(1);
    expect(failed.ackAll).toBe(false);
    expect(failed.retryBatch.retry).toBe(true);
    expect(await rows("seen_events", sdk)).toEqual([]);
    expect(await visitors(sdk)).toEqual({});

    const redelivered = await deliver(makeBatch(bodies, ids));
    expect(redelivered.ackAll).toBe(true);
    const third = await deliver(makeBatch(bodies, ids));
    expect(third.ackAll).toBe(true);
    expect(await visitors(sdk)).toEqual({ [`exp/A/1/${DAY}`]: 2 });
    expect((await metrics(sdk))[`exp/A/1/buy/${DAY}`]).toMatchObject({ converters: 2, events: 2 });
  });

  it("keeps poison messages acked when the rest of the batch is retried", async () => {
    const sdk = uid("sdk");
    const ids = [uid("m"), uid("m")];
    vi.spyOn(env.DB, "batch").mockRejectedValueOnce(new Error("d1 down"));
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
    // Every derived table equals the model's, and the model equals the from-scratch fold.
    const modelRows = stateRows(model);
    const foldRows = stateRows(foldEvents(batches.flat()));
    for (const table of DERIVED_TABLES) {
      expect(modelRows[table].length, table).toBeGreaterThan(0);
      expect(diffRows(table, foldRows[table], modelRows[table]), table).toEqual([]);
      const live = await readTableRows(env.DB, table, sdk);
      expect(diffRows(table, live, modelRows[table]), table).toEqual([]);
    }
    expect(await visitors(sdk)).toEqual(expectedVisitors);
    const actual = await metrics(sdk);
    expect(Object.keys(actual).sort()).toEqual(Object.keys(expectedMetrics).sort());
    for (const [key, cell] of Object.entries(expectedMetrics)) {
      const c = cell as Record<string, number>;
      const a = actual[key]!;
      expect({ ...a, valueSum: 0, valueSumSq: 0 }).toEqual({ ...c, valueSum: 0, valueSumSq: 0 });
      expect(a.valueSum).toBeCloseTo(c.valueSum!, 9);
      expect(a.valueSumSq).toBeCloseTo(c.valueSumSq!, 9);
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
