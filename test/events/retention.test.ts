/**
 * Retention (docs/events.md "Retention"): the Worker's `scheduled` handler deletes seen_events
 * and stored conversions older than the message age limit plus a margin, and nothing newer —
 * and what it deletes can no longer matter: a redelivered message that old is rejected.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { handleEventBatch } from "../../src/events/consumer";
import type { ConversionMessage } from "../../src/shared/event-messages";
import {
  handleScheduled,
  pruneEventState,
  retentionCutoff,
  RETENTION_MARGIN_MS,
} from "../../src/events/retention";
import { QUEUE_MAX_AGE_MS, QUEUE_MAX_FUTURE_MS } from "../../src/shared/event-limits";
import worker from "../../src/index";

const DAY = 24 * 60 * 60 * 1000;
const uid = (p: string) => `${p}-${crypto.randomUUID()}`;

async function seed(sdkKey: string, now: number) {
  const cutoff = retentionCutoff(now);
  const seen = [
    ["old-seen", cutoff - 1],
    ["edge-seen", cutoff],
    ["new-seen", now - DAY],
  ] as const;
  const conversions = [
    ["old-conv", cutoff - 1],
    ["edge-conv", cutoff],
    ["new-conv", now - 2 * DAY],
  ] as const;
  await env.DB.batch([
    ...seen.map(([uuid, at]) =>
      env.DB.prepare(
        "INSERT INTO seen_events (uuid, type, sdk_key, received_at, attempt) VALUES (?, 'conversion', ?, ?, 'x')",
      ).bind(`${sdkKey}-${uuid}`, sdkKey, at),
    ),
    ...conversions.map(([uuid, at]) =>
      env.DB.prepare(
        "INSERT INTO conversions (uuid, sdk_key, visitor_id, event_id, timestamp, day, revenue, value, revision) VALUES (?, ?, 'v', 'e', ?, '2000-01-01', 0, 0, '1')",
      ).bind(`${sdkKey}-${uuid}`, sdkKey, at),
    ),
  ]);
}

async function uuids(table: string, sdkKey: string): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT uuid FROM ${table} WHERE sdk_key = ? ORDER BY uuid`,
  )
    .bind(sdkKey)
    .all<{ uuid: string }>();
  return results.map((r) => r.uuid.slice(sdkKey.length + 1));
}

describe("retention", () => {
  it("keeps what a message within the age limit could still need", () => {
    const now = Date.UTC(2026, 0, 31);
    expect(retentionCutoff(now)).toBe(
      now - QUEUE_MAX_AGE_MS - QUEUE_MAX_FUTURE_MS - RETENTION_MARGIN_MS,
    );
    expect(now - retentionCutoff(now)).toBeGreaterThan(QUEUE_MAX_AGE_MS + QUEUE_MAX_FUTURE_MS);
  });

  it("the Worker's scheduled handler deletes old seen_events and conversions only", async () => {
    const sdkKey = uid("sdk");
    const now = Date.now();
    await seed(sdkKey, now);
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    await worker.scheduled(
      createScheduledController({ scheduledTime: now, cron: "17 * * * *" }),
      env,
    );
    expect(await uuids("seen_events", sdkKey)).toEqual(["edge-seen", "new-seen"]);
    expect(await uuids("conversions", sdkKey)).toEqual(["edge-conv", "new-conv"]);
    expect(log.mock.calls.flat().join(" ")).toMatch(/retention \(17 \* \* \* \*\) deleted \d+/);
    log.mockRestore();
  });

  it("deletes in bounded chunks and reports what is left", async () => {
    const now = Date.now();
    const sdkKeys = [uid("sdk"), uid("sdk"), uid("sdk")];
    for (const sdkKey of sdkKeys) await seed(sdkKey, now);
    const partial = await pruneEventState(env.DB, now, { chunk: 2, maxRounds: 1 });
    expect(partial).toMatchObject({ seenEvents: 2, conversions: 2, complete: false });
    const rest = await pruneEventState(env.DB, now, { chunk: 2, maxRounds: 100 });
    expect(rest.complete).toBe(true);
    // At least this test's third old row per table (rows of other tests that aged meanwhile too).
    expect(rest.seenEvents).toBeGreaterThanOrEqual(1);
    expect(rest.conversions).toBeGreaterThanOrEqual(1);
    for (const sdkKey of sdkKeys) {
      expect(await uuids("seen_events", sdkKey)).toEqual(["edge-seen", "new-seen"]);
      expect(await uuids("conversions", sdkKey)).toEqual(["edge-conv", "new-conv"]);
    }
  });

  it("a message whose dedupe row was pruned is rejected when redelivered, never counted twice", async () => {
    const sdkKey = uid("sdk");
    const received = Date.now() - QUEUE_MAX_AGE_MS + 60_000;
    const message: ConversionMessage = {
      v: 1,
      type: "conversion",
      uuid: uid("c"),
      sdkKey,
      revision: "1",
      visitorId: "v",
      eventId: "e",
      eventKey: "e",
      timestamp: received + QUEUE_MAX_FUTURE_MS, // the newest a message received then can be
      source: "sdk",
    };
    // As if it was counted back then: its seen row is exactly at the pruning age.
    const pruneAt = received + QUEUE_MAX_AGE_MS + QUEUE_MAX_FUTURE_MS + RETENTION_MARGIN_MS + 1;
    expect(retentionCutoff(pruneAt)).toBeGreaterThan(received);
    // At that time the message itself is too old for the consumer.
    vi.useFakeTimers({ now: pruneAt, toFake: ["Date"] });
    try {
      const batch = createMessageBatch("splitstream-events", [
        { id: uid("m"), timestamp: new Date(), attempts: 1, body: message },
      ]);
      const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
      await handleEventBatch(batch, env);
      warn.mockRestore();
      const result = await getQueueResult(batch, createExecutionContext());
      expect(result.explicitAcks).toHaveLength(1); // rejected as poison, acked, not counted
      expect(await uuids("conversions", sdkKey)).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("logs and rethrows a failure", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const db = {
      prepare: () => ({
        bind: () => ({ run: () => Promise.reject(new Error("d1 down")) }),
      }),
    } as unknown as D1Database;
    await expect(
      handleScheduled({ scheduledTime: Date.now(), cron: "17 * * * *" }, { DB: db }),
    ).rejects.toThrow("d1 down");
    expect(error).toHaveBeenCalled();
    error.mockRestore();
  });
});
