/**
 * Fault: D1 errors in the queue consumer (docs/reliability.md "Retries, dead-letter queue,
 * rebuild"). Events come from real page views and purchases through the edge; the consumer's D1
 * batch fails.
 *
 * - A failed batch is retried whole (`retryAll`) and leaves nothing in D1 (one transaction), so
 *   any number of failed attempts followed by a success counts each event exactly once.
 * - After max_retries failed deliveries (wrangler.toml: 5, then `splitstream-events-dlq`) the
 *   queue dead-letters the batch. The consumer archives a batch in R2 BEFORE its D1 write, so a
 *   dead-lettered batch is in the archive: `POST /_ss/api/v1/admin/rebuild` with `apply` restores
 *   the exact counts. Replaying the dead-letter queue is harmless before and after a rebuild.
 */
import { rebuildReport } from "../helpers/rebuild";
import { createExecutionContext, getQueueResult, runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadEventLayout } from "../../src/events/event-layout";
import { shardStub } from "../../src/events/visitor-shard";
import { LAYOUTS, useLayout } from "../helpers/event-layout";
import wranglerToml from "../../wrangler.toml?raw";
import type { Env } from "../../src/env";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  consume,
  counted,
  EVENT,
  expectExactCounts,
  Ledger,
  messageBatch,
  newSdkKey,
  publish,
  purchase,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
} from "./helpers";

/** wrangler.toml's `[[queues.consumers]]` table: the queue, not our code, dead-letters. */
const consumerConfig = /\[\[queues\.consumers\]\]\n([^[]*)/.exec(wranglerToml)?.[1] ?? "";
const setting = (name: string) =>
  new RegExp(`^${name}\\s*=\\s*(.+)$`, "m").exec(consumerConfig)?.[1];
const MAX_RETRIES = Number(setting("max_retries"));

let origin: MockedOrigin;
afterEach(() => {
  origin?.restore();
  vi.restoreAllMocks();
});

/** `env` whose D1 `batch` fails while `failing` is true (every other D1 call works). */
function failingD1() {
  const state = { failing: true, failures: 0 };
  const DB = new Proxy(env.DB, {
    get(target, property) {
      if (property === "batch")
        return async (statements: D1PreparedStatement[]) => {
          if (state.failing) {
            state.failures++;
            throw new Error("D1_ERROR: Network connection lost. (simulated)");
          }
          return target.batch(statements);
        };
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { state, env: { ...env, DB } as Env };
}

/** Page views and purchases of `visitors` visitors; returns their events and the ledger. */
async function traffic(sdkKey: string, visitors: number, prefix: string) {
  const queue = new RecordingQueue();
  const site = siteEnv(sdkKey, { EVENTS: queue.binding });
  const ledger = new Ledger();
  for (let i = 0; i < visitors; i++) {
    const visitorId = `${prefix}-${i}`;
    ledger.page(visitorId, await request(site, "/", { visitorId }));
    ledger.productPage(visitorId, await request(site, `/products/${i}`, { visitorId }));
    if (i % 3 !== 2) {
      expect((await purchase(site, visitorId, 100 + i)).status).toBe(204);
      ledger.conversion(visitorId, EVENT.purchase);
    }
  }
  return { events: queue.take(), ledger };
}

async function deliverOnce(messages: EventMessage[], ids: string[], attempts: number, target: Env) {
  const batch = messageBatch(messages, ids, attempts);
  await handleEventBatch(batch, target);
  return getQueueResult(batch, createExecutionContext());
}

describe.each(LAYOUTS)("D1 errors in the consumer ($name)", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it("is configured to retry a failed batch, then dead-letter it (wrangler.toml)", () => {
    expect(setting("queue")).toBe('"splitstream-events"');
    expect(MAX_RETRIES).toBe(5);
    expect(setting("dead_letter_queue")).toBe('"splitstream-events-dlq"');
  });

  it("retries a batch whose D1 write fails N times in a row, then counts it exactly once", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("d1retry");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const { events, ledger } = await traffic(sdkKey, 15, "retry");
    const ids = events.map((_, i) => `retry-msg-${i}`);
    const d1 = failingD1();

    for (let attempt = 1; attempt <= 3; attempt++) {
      const result = await deliverOnce(events, ids, attempt, d1.env);
      expect(result.ackAll, `attempt ${attempt}`).toBe(false);
      expect(result.retryBatch.retry, `attempt ${attempt} retried`).toBe(true);
      expect(await counted(sdkKey), "a failed attempt leaves no trace").toEqual({
        visitors: {},
        events: {},
      });
    }
    expect(d1.state.failures).toBe(3);

    d1.state.failing = false;
    expect((await deliverOnce(events, ids, 4, d1.env)).ackAll).toBe(true);
    await expectExactCounts(sdkKey, ledger);
    // A redelivery after the success (the ack got lost) changes nothing.
    expect((await deliverOnce(events, ids, 5, d1.env)).ackAll).toBe(true);
    await expectExactCounts(sdkKey, ledger);
  });

  it.runIf(shards > 0)(
    "after max_retries the batch is dead-lettered, but the shards had counted it: their hand-over restores exact counts",
    async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      vi.spyOn(console, "warn").mockImplementation(() => {});
      origin = mockOrigin(shop);
      const sdkKey = newSdkKey("shdlq");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const { events, ledger } = await traffic(sdkKey, 24, "shdlq");
      const d1 = failingD1();
      const ids = events.map((_, i) => `shdlq-msg-${sdkKey}-${i}`);
      for (let attempt = 1; attempt <= 1 + MAX_RETRIES; attempt++)
        expect((await deliverOnce(events, ids, attempt, d1.env)).retryBatch.retry).toBe(true);
      // Dead-lettered. D1 has nothing; the shards counted the events and keep the deltas.
      expect(await counted(sdkKey)).toEqual({ visitors: {}, events: {} });
      // Nobody redelivers: each shard's hourly alarm hands its entries over.
      const { shards: count } = await loadEventLayout(env);
      for (let i = 0; i < count; i++) await runDurableObjectAlarm(shardStub(env, i));
      await expectExactCounts(sdkKey, ledger);
      expect((await rebuildReport({ sdkKey })).matches).toBe(true);
      // Replaying the dead-letter queue later counts nothing twice.
      expect((await deliverOnce(events, ids, 1, env as Env)).ackAll).toBe(true);
      await expectExactCounts(sdkKey, ledger);
    },
  );

  it.runIf(shards === 0)(
    "after max_retries the batch is dead-lettered; it was archived first, and the rebuild restores exact counts",
    async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      origin = mockOrigin(shop);
      const sdkKey = newSdkKey("d1dlq");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const { events, ledger } = await traffic(sdkKey, 24, "dlq");
      // Two batches make it, one (the middle third) never does.
      const third = Math.ceil(events.length / 3);
      const [early, doomed, late] = [
        events.slice(0, third),
        events.slice(third, 2 * third),
        events.slice(2 * third),
      ];
      await consume(early);

      const d1 = failingD1();
      const ids = doomed.map((_, i) => `dlq-msg-${sdkKey}-${i}`);
      // The first delivery and max_retries retries: every one retried, none acked.
      for (let attempt = 1; attempt <= 1 + MAX_RETRIES; attempt++) {
        const result = await deliverOnce(doomed, ids, attempt, d1.env);
        expect(result.ackAll).toBe(false);
        expect(result.retryBatch.retry).toBe(true);
        expect(result.explicitAcks).toEqual([]);
      }
      // …so the queue moves the batch to splitstream-events-dlq. The rest of the traffic goes on.
      await consume(late);
      const before = await counted(sdkKey);
      expect(before, "the dead-lettered events are missing").not.toEqual({
        visitors: ledger.visitors,
        events: ledger.events,
      });

      // The archive holds them: written before each D1 attempt (the same key each time).
      const archived = new Set<string>();
      const listed = await env.ARCHIVE.list({ prefix: "events/" });
      for (const object of listed.objects) {
        if (!object.key.includes(`/${ids[0]}-`)) continue;
        const text = await (await env.ARCHIVE.get(object.key))!.text();
        for (const line of text.trim().split("\n"))
          archived.add((JSON.parse(line) as EventMessage).uuid);
      }
      expect([...archived].sort()).toEqual(doomed.map((e) => e.uuid).sort());

      // The rebuild from R2 sees the difference and, with apply, restores the exact counts.
      const check = await rebuildReport({ sdkKey });
      expect(check.matches).toBe(false);
      expect(check.eventsFolded).toBe(events.length);
      const applied = await rebuildReport({ sdkKey, apply: true });
      expect(applied.applied).toBe(true);
      await expectExactCounts(sdkKey, ledger);
      expect((await rebuildReport({ sdkKey })).matches).toBe(true);

      // Replaying the dead-letter queue afterwards (an operator's `wrangler queues consumer` move)
      // must not count anything twice.
      expect((await deliverOnce(doomed, ids, 1, env as Env)).ackAll).toBe(true);
      await expectExactCounts(sdkKey, ledger);
    },
  );

  it("replaying the dead-letter queue instead of rebuilding counts exactly too", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("d1replay");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const { events, ledger } = await traffic(sdkKey, 12, "replay");
    const d1 = failingD1();
    const ids = events.map((_, i) => `replay-msg-${sdkKey}-${i}`);
    for (let attempt = 1; attempt <= 1 + MAX_RETRIES; attempt++)
      expect((await deliverOnce(events, ids, attempt, d1.env)).retryBatch.retry).toBe(true);
    expect(await counted(sdkKey)).toEqual({ visitors: {}, events: {} });
    // Moved back from the DLQ (new message ids, same bodies), twice over: counted once.
    await consume(events);
    await consume(events);
    await expectExactCounts(sdkKey, ledger);
  });
});
