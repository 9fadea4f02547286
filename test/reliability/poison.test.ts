/**
 * One visitor's events can never make other visitors' events disappear (docs/reliability.md
 * "One bad event", docs/events.md "Bounded arithmetic and the per-visitor budget").
 *
 * The outside review's repro: a visitor posted ~1,100 purchases of 2^53 − 1 cents; the counting
 * SQL's per-visitor window sums overflowed SQLite's 64-bit integers, the whole batch failed six
 * times and went to the dead-letter queue with five innocent visitors' events in it. Here:
 * - such events are refused at the door (400, with the path), and ones already queued by an older
 *   Worker go to `rejected/` while the innocent events of their batches are counted exactly once;
 * - stored values beyond the bounds cannot make the counting fail (money is summed as REAL);
 * - an event that D1 cannot count for any other reason is isolated by splitting its batch: the
 *   rest is counted, it goes to `rejected/` with D1's reason, and the rebuild leaves it out;
 * - a visitor's conversions per event and day are capped (default and per event), the excess
 *   counted as dropped; `/_ss/health` shows rejected and dropped counts.
 */
import { rebuildReport } from "../helpers/rebuild";
import { createExecutionContext, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import { applyPlan, emptyState, planBatch, utcDay } from "../../src/events/aggregate";
import { resetCapsCache } from "../../src/events/caps";
import { handleEventBatch } from "../../src/events/consumer";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";
import { DERIVED_TABLES, diffRows, stateRows } from "../../src/events/tables";
import { readDerivedRows, readVisitorState } from "../../src/events/visitor-state";
import { execWhereVisitorLives, insertVisitorRows } from "../helpers/event-layout";
import { resetHealthCache } from "../../src/edge/health";
import worker from "../../src/index";
import { DEFAULT_DAILY_CONVERSION_CAP, MAX_REVENUE_CENTS } from "../../src/shared/event-limits";
import { apiJson, createProject } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  counted,
  EVENT,
  EXP,
  messageBatch,
  newSdkKey,
  publish,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
} from "./helpers";

let origin: MockedOrigin | undefined;
afterEach(() => {
  origin?.restore();
  origin = undefined;
  vi.restoreAllMocks();
});

const T0 = Date.now() - 2 * 60 * 60 * 1000;
let seq = 0;
const uid = (prefix: string) => `${prefix}-${(++seq).toString(36)}-${crypto.randomUUID()}`;

function impression(sdkKey: string, visitorId: string, at = T0): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: uid("imp"),
    sdkKey,
    revision: "1",
    visitorId,
    experimentId: EXP.hero,
    variationId: `${EXP.hero}_bold`,
    timestamp: at,
    source: "edge",
  };
}

function purchase(
  sdkKey: string,
  visitorId: string,
  revenue: number,
  at = T0 + 60_000,
  uuid = uid("buy"),
): ConversionMessage {
  return {
    v: 1,
    type: "conversion",
    uuid,
    sdkKey,
    revision: "1",
    visitorId,
    eventId: EVENT.purchase,
    eventKey: "purchase",
    revenue,
    timestamp: at,
    source: "browser",
  };
}

/** Delivers one batch to the real consumer and returns what it told the queue. */
async function deliver(messages: unknown[], target: Env = env as Env) {
  const batch = messageBatch(messages as EventMessage[]);
  await handleEventBatch(batch, target);
  return { batch, result: await getQueueResult(batch, createExecutionContext()) };
}

/** Every line of every `rejected/` object whose key contains `marker`. */
async function rejectedLines(marker: string): Promise<Array<Record<string, unknown>>> {
  const lines: Array<Record<string, unknown>> = [];
  const listed = await env.ARCHIVE.list({ prefix: "rejected/" });
  for (const object of listed.objects) {
    if (!object.key.includes(marker)) continue;
    const text = await (await env.ARCHIVE.get(object.key))!.text();
    for (const line of text.trim().split("\n"))
      lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  return lines;
}

async function drops(sdkKey: string): Promise<Record<string, number>> {
  const rows = await env.DB.prepare(
    "SELECT kind, reason, sum(count) AS n FROM event_drops WHERE sdk_key = ? GROUP BY kind, reason",
  )
    .bind(sdkKey)
    .all<{ kind: string; reason: string; n: number }>();
  return Object.fromEntries(rows.results.map((r) => [`${r.kind}/${r.reason}`, Number(r.n)]));
}

/** Innocent visitors: an impression and a 12.99 purchase each. */
function innocents(sdkKey: string, n: number, prefix: string): EventMessage[] {
  const out: EventMessage[] = [];
  for (let i = 0; i < n; i++) {
    out.push(impression(sdkKey, `${prefix}-${i}`), purchase(sdkKey, `${prefix}-${i}`, 1299));
  }
  return out;
}

const HERO_BOLD = `${EXP.hero}/${EXP.hero}_bold`;
const HERO_BOLD_BUY = `${HERO_BOLD}/${EVENT.purchase}`;

describe("one visitor cannot make other visitors' events disappear", () => {
  it("the repro: 2^53 − 1 cent purchases are refused at the door, through both endpoints", async () => {
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("door");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    expect((await request(site, "/", { visitorId: "mallory" })).status).toBe(200);
    queue.take();
    const hostile = await request(site, "/_ss/events", {
      method: "POST",
      visitorId: "mallory",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        events: [
          { key: "purchase", revenue: Number.MAX_SAFE_INTEGER },
          { key: "purchase", revenue: 2500 },
        ],
      }),
    });
    expect(hostile.status).toBe(400);
    expect(JSON.parse(hostile.body).error.details).toEqual({
      accepted: 1,
      rejected: [
        {
          index: 0,
          path: "events[0].revenue",
          reason: `revenue must be at most ${MAX_REVENUE_CENTS} cents`,
        },
      ],
    });
    expect(queue.take().map((m) => (m as ConversionMessage).revenue)).toEqual([2500]);
  });

  it("queued by an older Worker: the hostile events go to rejected/, every innocent event counts once", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdkKey = newSdkKey("poison");
    // The attacker: one exposure, then 1,140 purchases of 2^53 − 1 cents in 12 batches; from the
    // 11th batch on, the old SQL's running sums passed 2^63 and the batch failed whole.
    const attacker: EventMessage[] = [impression(sdkKey, "mallory")];
    for (let i = 0; i < 1140; i++)
      attacker.push(purchase(sdkKey, "mallory", Number.MAX_SAFE_INTEGER, T0 + 60_000 + i));
    const good = innocents(sdkKey, 5, "innocent");
    const batches = [
      ...Array.from({ length: 11 }, (_, b) => attacker.slice(b * 100, (b + 1) * 100)),
      // The last batch mixes the attacker's remaining events with five innocent visitors'.
      [...attacker.slice(1100, 1120), ...good, ...attacker.slice(1120)],
    ];
    for (const messages of batches) {
      const { result } = await deliver(messages);
      expect(result.ackAll, "every batch is acked: nothing retried, nothing dead-lettered").toBe(
        true,
      );
    }
    // Redelivered (an ack got lost): still counted once.
    expect((await deliver(batches.at(-1)!)).result.ackAll).toBe(true);

    expect(await counted(sdkKey)).toEqual({
      visitors: { [HERO_BOLD]: 6 },
      events: { [HERO_BOLD_BUY]: 5 },
    });
    const metric = await env.DB.prepare(
      "SELECT revenue_sum FROM metric_daily WHERE sdk_key = ? AND event_id = ?",
    )
      .bind(sdkKey, EVENT.purchase)
      .first<{ revenue_sum: number }>();
    expect(metric?.revenue_sum).toBe(5 * 1299);

    // Not silently lost: each hostile message is in rejected/ with its reason, and counted.
    const uuids = new Set(attacker.slice(1).map((m) => m.uuid));
    const rejected = (await rejectedLines("/")).filter((line) =>
      uuids.has((line.body as { uuid: string }).uuid),
    );
    expect(new Set(rejected.map((line) => (line.body as { uuid: string }).uuid))).toEqual(uuids);
    for (const line of rejected) {
      expect(line.stage).toBe("invalid");
      expect(line.reason).toBe(`revenue must be within ±${MAX_REVENUE_CENTS} cents`);
    }
    // 1,140 once, and the 41 of the last batch again when it was redelivered (each delivery of a
    // message that cannot be counted is archived and counted).
    expect(await drops(sdkKey)).toEqual({ "rejected/invalid": 1140 + 41 });

    resetHealthCache();
    const health = await worker.fetch(
      new Request("https://shop.example.com/_ss/health") as Request<
        unknown,
        IncomingRequestCfProperties
      >,
      env as Env,
      createExecutionContext(),
    );
    const body = await health.json<{ events: { rejected: Record<string, number> } }>();
    expect(body.events.rejected.invalid).toBeGreaterThanOrEqual(1181);
  });

  it("stored values beyond the bounds cannot make the counting fail (money is summed as REAL)", async () => {
    const sdkKey = newSdkKey("stored");
    // Four stored conversions of 2^62 cents each (e.g. written before the bounds existed): the
    // visitor's running total passes 2^63 as soon as an impression attributes them.
    const huge = 2 ** 62;
    for (let i = 0; i < 4; i++) {
      const c = purchase(sdkKey, "whale", 0, T0 + 60_000 + i);
      await insertVisitorRows("conversions", sdkKey, "whale", [
        [c.uuid, sdkKey, "whale", EVENT.purchase, c.timestamp, utcDay(c.timestamp), huge, 0, "1"],
      ]);
    }
    const { result } = await deliver([impression(sdkKey, "whale"), ...innocents(sdkKey, 3, "inn")]);
    expect(result.ackAll).toBe(true);
    expect(await counted(sdkKey)).toEqual({
      visitors: { [HERO_BOLD]: 4 },
      events: { [HERO_BOLD_BUY]: 3 + 4 },
    });
    const [whale] = (await readVisitorState(env, sdkKey, "whale")).converters;
    expect(whale?.revenue).toBe(4 * huge);
  });

  it("an event D1 cannot count is isolated: the batch is split, the rest counted, it goes to rejected/", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdkKey = newSdkKey("split");
    const poison = purchase(
      sdkKey,
      "innocent-2",
      500,
      T0 + 90_000,
      `poison-${crypto.randomUUID()}`,
    );
    // A real D1 failure for exactly one event, whatever the reason might be in production.
    await execWhereVisitorLives(
      sdkKey,
      "innocent-2",
      `CREATE TRIGGER poison_${sdkKey.replaceAll("-", "_")} BEFORE INSERT ON conversions WHEN NEW.uuid = '${poison.uuid}' BEGIN SELECT RAISE(ABORT, 'this event cannot be stored'); END`,
    );
    try {
      const good = innocents(sdkKey, 6, "innocent");
      const messages = [...good.slice(0, 5), poison, ...good.slice(5)];
      const { result } = await deliver(messages);
      expect(result.ackAll).toBe(true);
      expect(result.retryBatch.retry).toBe(false);
      expect(await counted(sdkKey)).toEqual({
        visitors: { [HERO_BOLD]: 6 },
        events: { [HERO_BOLD_BUY]: 6 },
      });
      const lines = await rejectedLines("-count_failed");
      const mine = lines.filter((line) => (line.body as { uuid: string }).uuid === poison.uuid);
      expect(mine).toHaveLength(1);
      expect(mine[0]).toMatchObject({ stage: "count_failed", body: poison });
      expect(String(mine[0]!.reason)).toContain("this event cannot be stored");
      expect(await drops(sdkKey)).toEqual({ "rejected/count_failed": 1 });

      // Redelivered: the innocent events are duplicates, nothing counts twice.
      expect((await deliver(messages)).result.ackAll).toBe(true);
      expect((await counted(sdkKey)).events).toEqual({ [HERO_BOLD_BUY]: 6 });
    } finally {
      await execWhereVisitorLives(
        sdkKey,
        "innocent-2",
        `DROP TRIGGER poison_${sdkKey.replaceAll("-", "_")}`,
      );
    }
    // The rebuild from the archive leaves out what the consumer rejected: it matches live D1.
    const check = await rebuildReport({ sdkKey });
    expect(check.matches).toBe(true);
  });
});

describe("the per-visitor budget", () => {
  it(`counts at most ${DEFAULT_DAILY_CONVERSION_CAP} conversions per visitor, event and day by default; the rest are dropped and counted`, async () => {
    resetCapsCache();
    const sdkKey = newSdkKey("cap");
    const day1 = T0 - 24 * 60 * 60 * 1000;
    const spam: EventMessage[] = [impression(sdkKey, "spammer", day1 - 60_000)];
    for (let i = 0; i < 130; i++) spam.push(purchase(sdkKey, "spammer", 100, day1 + i));
    for (let i = 0; i < 5; i++) spam.push(purchase(sdkKey, "spammer", 100, T0 + 60_000 + i));
    const good = innocents(sdkKey, 4, "fine");
    const batches = [spam.slice(0, 70), [...good, ...spam.slice(70)]];
    const model = emptyState();
    for (const messages of batches) {
      expect((await deliver(messages)).result.ackAll).toBe(true);
      applyPlan(model, planBatch(messages));
    }
    // The spammer: 100 of the first day's 130, all 5 of the next day's; the innocents: 1 each.
    expect((await counted(sdkKey)).events).toEqual({ [HERO_BOLD_BUY]: 100 + 5 + 4 });
    expect(await drops(sdkKey)).toEqual({ "dropped/visitor_daily_cap": 30 });
    expect(model.capped).toBe(30);
    // Which conversions were dropped is recorded (dropped/ in R2): the rebuild leaves exactly
    // those out and agrees with D1.
    const check = await rebuildReport({ sdkKey });
    expect(check.matches).toBe(true);
    // The reference model (applyPlan) and D1 agree row for row.
    const modelRows = stateRows(model);
    for (const table of DERIVED_TABLES) {
      const live = await readDerivedRows(env, table, sdkKey);
      const expected = modelRows[table].filter((row) => row.sdk_key === sdkKey);
      expect(diffRows(table, live, expected), table).toEqual([]);
    }
  });

  it("an event's own cap (maxPerVisitorPerDay, management API) overrides the default", async () => {
    const project = await createProject();
    const environment = project.environments.find((e) => e.key === "production")!;
    const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "signup", type: "custom", maxPerVisitorPerDay: 3 },
    });
    expect(event.maxPerVisitorPerDay).toBe(3);
    await apiJson("PATCH", `/events/${event.id}`, 422, { body: { maxPerVisitorPerDay: 0 } });
    resetCapsCache();
    const sdkKey = environment.sdkKey;
    const signup = (visitorId: string, i: number): ConversionMessage => ({
      ...purchase(sdkKey, visitorId, 0, T0 + 60_000 + i),
      eventId: event.id,
      eventKey: "signup",
    });
    const messages: EventMessage[] = [impression(sdkKey, "eager"), impression(sdkKey, "calm")];
    for (let i = 0; i < 5; i++) messages.push(signup("eager", i));
    messages.push(signup("calm", 0));
    expect((await deliver(messages)).result.ackAll).toBe(true);
    expect((await counted(sdkKey)).events).toEqual({ [`${HERO_BOLD}/${event.id}`]: 3 + 1 });
    expect(await drops(sdkKey)).toEqual({ "dropped/visitor_daily_cap": 2 });
  });
});
