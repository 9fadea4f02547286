/**
 * Visitor shards (docs/scaling.md "Visitor shards", docs/events.md "Exactly once across shards"):
 * the failure cases of the hand-over between the shards' outboxes and D1 — a consumer that fails
 * after the shards committed, a lost acknowledgement, two hand-overs of the same entry, a batch
 * that never comes back (the shard's alarm) — each counted exactly once; the layout's recording
 * rules; retention and archived experiments in the shards; and the move of a populated D1 to
 * shards and of shards to more shards, exactly once across it.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runDurableObjectAlarm,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { foldEvents, planBatch, utcDay } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import {
  DEFAULT_EVENT_SHARDS,
  loadEventLayout,
  parseShardCount,
  resetLayoutCache,
} from "../../src/events/event-layout";
import { SETTLE_MS, moveEventState } from "../../src/events/layout-move";
import { retentionCutoff } from "../../src/events/retention";
import { applyShardEntries } from "../../src/events/shard-apply";
import type { ShardEntry } from "../../src/events/shard-deltas";
import { shardOf } from "../../src/events/shard-map";
import { DERIVED_TABLES, diffRows, stateRows } from "../../src/events/tables";
import { ARCHIVE_GRACE_MS, shardStub } from "../../src/events/visitor-shard";
import { readDerivedRows, readVisitorState } from "../../src/events/visitor-state";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";
import { apiJson, createProject } from "../helpers/api";
import { useLayout } from "../helpers/event-layout";
import { randomBatches, randomEvents } from "./random-events";

const T0 = Date.now() - 60 * 60 * 1000;
const DAY = utcDay(T0);
let n = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++n}`;

const imp = (sdkKey: string, over: Partial<ImpressionMessage> = {}): ImpressionMessage => ({
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
});

const conv = (sdkKey: string, over: Partial<ConversionMessage> = {}): ConversionMessage => ({
  v: 1,
  type: "conversion",
  uuid: uid("c"),
  sdkKey,
  revision: "1",
  visitorId: "alice",
  eventId: "buy",
  eventKey: "buy",
  timestamp: T0 + 1000,
  revenue: 250,
  source: "browser",
  ...over,
});

async function deliver(bodies: unknown[], ids = bodies.map(() => uid("m"))) {
  const batch = createMessageBatch(
    "splitstream-events",
    bodies.map((body, i) => ({ id: ids[i]!, timestamp: new Date(), attempts: 1, body })),
  );
  await handleEventBatch(batch, env);
  return getQueueResult(batch, createExecutionContext());
}

async function visitors(sdkKey: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const row of await readDerivedRows(env, "variation_daily", sdkKey))
    out[`${row.experiment_id}/${row.variation_id}`] = Number(row.visitors);
  return out;
}

async function events(sdkKey: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const row of await readDerivedRows(env, "metric_daily", sdkKey))
    out[`${row.experiment_id}/${row.variation_id}/${row.event_id}`] =
      (out[`${row.experiment_id}/${row.variation_id}/${row.event_id}`] ?? 0) + Number(row.events);
  return out;
}

/** Every derived table of `sdkKey` equals the from-scratch fold of `all`. */
async function expectFold(sdkKey: string, all: EventMessage[], when = ""): Promise<void> {
  const expected = stateRows(foldEvents(all));
  for (const table of DERIVED_TABLES)
    expect(
      diffRows(table, await readDerivedRows(env, table, sdkKey), expected[table]),
      `${table} ${when}`,
    ).toEqual([]);
}

/** Every shard's pending entries (what D1 may not have yet). */
async function pendingEntries(shards: number): Promise<ShardEntry[]> {
  const out: ShardEntry[] = [];
  for (let i = 0; i < shards; i++)
    out.push(...((await shardStub(env, i).pending()) as unknown as ShardEntry[]));
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe("the hand-over from the shards to D1, exactly once", () => {
  beforeEach(() => useLayout(4));

  it("a consumer that fails after the shards committed: the redelivery hands the entries over again", async () => {
    const sdk = uid("sdk");
    vi.spyOn(console, "error").mockImplementation(() => {});
    const bodies = [imp(sdk), imp(sdk, { visitorId: "bob", variationId: "B" }), conv(sdk)];
    const ids = bodies.map(() => uid("m"));
    const batchSpy = vi.spyOn(env.DB, "batch").mockRejectedValueOnce(new Error("d1 unreachable"));
    const failed = await deliver(bodies, ids);
    expect(failed.retryBatch.retry).toBe(true);
    batchSpy.mockRestore();
    // The shards counted (their dedupe keys are written), D1 has nothing yet.
    expect(await visitors(sdk)).toEqual({});
    expect((await readVisitorState(env, sdk, "alice")).exposures).toHaveLength(1);
    expect((await pendingEntries(4)).length).toBeGreaterThan(0);

    const redelivered = await deliver(bodies, ids);
    expect(redelivered.ackAll).toBe(true);
    expect(await visitors(sdk)).toEqual({ "exp/A": 1, "exp/B": 1 });
    expect(await events(sdk)).toEqual({ "exp/A/buy": 1 });
    expect(await pendingEntries(4)).toEqual([]);
    // Once more: nothing changes.
    await deliver(bodies, ids);
    await expectFold(sdk, bodies);
  });

  it("a lost acknowledgement: the entry comes back with the next batch and D1's mark skips it", async () => {
    const sdk = uid("sdk");
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const real = env.VISITOR_SHARDS.getByName.bind(env.VISITOR_SHARDS);
    const spy = vi.spyOn(env.VISITOR_SHARDS, "getByName").mockImplementation((name) => {
      const stub = real(name);
      return new Proxy(stub, {
        get: (target, key) =>
          key === "ack"
            ? async () => {
                throw new Error("ack lost");
              }
            : Reflect.get(target, key),
      });
    });
    const first = [imp(sdk), conv(sdk)];
    expect((await deliver(first)).ackAll).toBe(true);
    spy.mockRestore();
    expect((await pendingEntries(4)).length).toBeGreaterThan(0);
    // Same visitor: same shard, which hands the unacknowledged entry over with the new one.
    const second = [conv(sdk, { timestamp: T0 + 2000 })];
    expect((await deliver(second)).ackAll).toBe(true);
    expect(await events(sdk)).toEqual({ "exp/A/buy": 2 });
    await expectFold(sdk, [...first, ...second]);
    expect(await pendingEntries(4)).toEqual([]);
  });

  it("the same entry handed over twice (two consumers, or a consumer and the alarm) is added once", async () => {
    const sdk = uid("sdk");
    const shard = shardOf(sdk, "alice", 4);
    const stub = shardStub(env, shard);
    const result = await stub.count({
      shard,
      attempt: uid("attempt"),
      receivedAt: Date.now(),
      plan: {
        ops: [],
        candidates: [],
        conversions: [],
        duplicatesInBatch: 0,
      },
    });
    expect(result.pending).toEqual([]);
    // Count one impression on the shard directly, then add its entry twice.
    const counted = await stub.count({
      shard,
      attempt: uid("attempt"),
      receivedAt: Date.now(),
      plan: planBatch([imp(sdk)]),
    });
    const entries = counted.pending as unknown as ShardEntry[];
    expect(entries).toHaveLength(1);
    await Promise.all([applyShardEntries(env.DB, entries), applyShardEntries(env.DB, entries)]);
    await applyShardEntries(env.DB, [...entries, ...entries]);
    expect(await visitors(sdk)).toEqual({ "exp/A": 1 });
    await stub.ack(entries[0]!.seq);
  });

  it("a batch that never comes back: the shard's alarm hands its entries over", async () => {
    const sdk = uid("sdk");
    vi.spyOn(console, "error").mockImplementation(() => {});
    vi.spyOn(env.DB, "batch").mockRejectedValueOnce(new Error("d1 unreachable"));
    const bodies = [imp(sdk, { visitorId: "carol" }), conv(sdk, { visitorId: "carol" })];
    expect((await deliver(bodies)).retryBatch.retry).toBe(true);
    vi.restoreAllMocks();
    // The batch went to the dead-letter queue; nobody redelivers it.
    const shard = shardOf(sdk, "carol", 4);
    expect(await runDurableObjectAlarm(shardStub(env, shard))).toBe(true);
    expect(await visitors(sdk)).toEqual({ "exp/A": 1 });
    expect(await events(sdk)).toEqual({ "exp/A/buy": 1 });
    expect((await shardStub(env, shard).pending()).length).toBe(0);
    // The batch replayed from the dead-letter queue later: duplicates, nothing changes.
    await deliver(bodies);
    await expectFold(sdk, bodies);
  });

  it("an event a shard cannot store is isolated; the rest of its shard and the other shards count", async () => {
    const sdk = uid("sdk");
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const poison = conv(sdk, { visitorId: "mallory" });
    const shard = shardOf(sdk, "mallory", 4);
    await shardStub(env, shard).pending(); // creates the schema on a shard nobody counted on yet
    await runInDurableObject(shardStub(env, shard), (_, state) => {
      state.storage.sql.exec(
        `CREATE TRIGGER poison BEFORE INSERT ON conversions WHEN NEW.uuid = '${poison.uuid}' BEGIN SELECT RAISE(ABORT, 'cannot be stored'); END`,
      );
    });
    const good: EventMessage[] = [];
    for (let i = 0; i < 12; i++)
      good.push(imp(sdk, { visitorId: `v${i}` }), conv(sdk, { visitorId: `v${i}` }));
    good.push(imp(sdk, { visitorId: "mallory" }));
    const result = await deliver([...good, poison]);
    expect(result.ackAll).toBe(true);
    expect(await visitors(sdk)).toEqual({ "exp/A": 13 });
    expect(await events(sdk)).toEqual({ "exp/A/buy": 12 });
    await runInDurableObject(shardStub(env, shard), (_, state) => {
      state.storage.sql.exec("DROP TRIGGER poison");
    });
  });
});

describe("the recorded layout", () => {
  afterEach(() => resetLayoutCache());

  it("parses EVENT_SHARDS strictly", () => {
    expect(parseShardCount(undefined)).toEqual({ ok: true, shards: DEFAULT_EVENT_SHARDS });
    expect(parseShardCount("16")).toEqual({ ok: true, shards: 16 });
    expect(parseShardCount(" 0 ")).toEqual({ ok: true, shards: 0 });
    for (const bad of ["-1", "1.5", "eight", "99999", "1e3", 2 ** 53])
      expect(parseShardCount(bad).ok, String(bad)).toBe(false);
  });

  it("a fresh deployment takes EVENT_SHARDS; one whose D1 already holds per-visitor rows stays on D1", async () => {
    await env.DB.prepare("DELETE FROM event_layout").run();
    resetLayoutCache();
    expect(await loadEventLayout({ DB: env.DB, EVENT_SHARDS: "6" })).toEqual({
      shards: 6,
      movingTo: null,
    });
    // Recorded: a different var is reported, not obeyed.
    resetLayoutCache();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    expect((await loadEventLayout({ DB: env.DB, EVENT_SHARDS: "12" })).shards).toBe(6);
    expect(String(warn.mock.calls[0]?.[0])).toContain("EVENT_SHARDS is 12");

    await env.DB.prepare("DELETE FROM event_layout").run();
    await env.DB.prepare(
      "INSERT INTO seen_events (uuid, type, sdk_key, received_at, attempt) VALUES (?, 'impression', 'old', 1, 'x')",
    )
      .bind(uid("legacy"))
      .run();
    resetLayoutCache();
    expect((await loadEventLayout({ DB: env.DB, EVENT_SHARDS: "6" })).shards).toBe(0);
    await env.DB.prepare("DELETE FROM seen_events WHERE sdk_key = 'old'").run();
  });

  it("refuses a malformed EVENT_SHARDS on a fresh deployment instead of guessing", async () => {
    await env.DB.prepare("DELETE FROM event_layout").run();
    resetLayoutCache();
    await expect(loadEventLayout({ DB: env.DB, EVENT_SHARDS: "lots" })).rejects.toThrow(
      /EVENT_SHARDS must be a whole number/,
    );
  });

  it("a consumer on the D1 layout that has not seen a move yet is stopped by the fence in its transaction", async () => {
    await useLayout(0);
    const sdk = uid("sdk");
    // This isolate caches layout 0 (no move)…
    expect((await deliver([imp(sdk)])).ackAll).toBe(true);
    // …then a move starts, recorded in D1 only.
    await env.DB.prepare("UPDATE event_layout SET moving_to = 4").run();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const result = await deliver([imp(sdk, { visitorId: "bob" }), conv(sdk)]);
    expect(result.retryBatch.retry).toBe(true);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/counting in D1 waits/);
    // Nothing of that batch was counted (one transaction, rolled back).
    expect(await visitors(sdk)).toEqual({ "exp/A": 1 });
    expect(await events(sdk)).toEqual({});
    const seen = await env.DB.prepare("SELECT count(*) AS n FROM seen_events WHERE sdk_key = ?")
      .bind(sdk)
      .first<{ n: number }>();
    expect(seen?.n).toBe(1);
    await useLayout(0);
    expect((await deliver([imp(sdk, { visitorId: "bob" }), conv(sdk)])).ackAll).toBe(true);
    expect(await visitors(sdk)).toEqual({ "exp/A": 2 });
  });

  it("while a move runs the consumer counts nothing and retries", async () => {
    await useLayout(4);
    await env.DB.prepare("UPDATE event_layout SET moving_to = 8").run();
    resetLayoutCache();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const sdk = uid("sdk");
    const result = await deliver([imp(sdk)]);
    expect(result.retryBatch.retry).toBe(true);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/moving to 8 shard\(s\).*retrying in 60 s/);
    expect(await visitors(sdk)).toEqual({});
    await useLayout(4);
    expect((await deliver([imp(sdk)])).ackAll).toBe(true);
  });
});

describe("upkeep in the shards", () => {
  beforeEach(() => useLayout(4));

  it("prunes dedupe keys and stored conversions past the retention window", async () => {
    const sdk = uid("sdk");
    const shard = shardOf(sdk, "alice", 4);
    await deliver([imp(sdk), conv(sdk)]);
    const stub = shardStub(env, shard);
    const before = await stub.stats();
    expect(before.rows.conversions).toBeGreaterThan(0);
    // Rows become old: a cutoff beyond them deletes them; a cutoff before them keeps them.
    expect((await stub.prune(T0 - 1)).seenEvents).toBe(0);
    const pruned = await stub.prune(Date.now() + 1);
    expect(pruned.complete).toBe(true);
    expect(pruned.conversions).toBeGreaterThan(0);
    expect(pruned.seenEvents).toBeGreaterThan(0);
    const after = await stub.stats();
    expect(after.rows.conversions).toBe(0);
    expect(after.rows.seen_events).toBe(0);
    // Exposures and converters are results: kept.
    expect(after.rows.exposures).toBe(before.rows.exposures);
    expect(retentionCutoff(Date.now())).toBeLessThan(Date.now() - 30 * 24 * 60 * 60 * 1000);
  });

  it("deletes an archived experiment's per-visitor rows after the grace period; its results stay as they were", async () => {
    const project = await createProject();
    const environment = project.environments.find((e: { key: string }) => e.key === "production")!;
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const buy = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "buy", type: "custom" },
    });
    const experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "old_test",
        pageIds: [page.id],
        metrics: [{ eventId: buy.id, aggregator: "unique" }],
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    const sdk = environment.sdkKey as string;
    const x = experiment.id as string;
    const [va] = experiment.variations as Array<{ id: string }>;
    await deliver([
      imp(sdk, { experimentId: x, variationId: va!.id }),
      imp(sdk, { experimentId: "kept", variationId: "K" }),
      conv(sdk),
    ]);
    await apiJson("POST", `/experiments/${x}/archive`, 200);
    const shard = shardOf(sdk, "alice", 4);
    const stub = shardStub(env, shard);
    // Archived just now: within the grace period, nothing is purged.
    await runDurableObjectAlarm(stub);
    expect((await readVisitorState(env, sdk, "alice")).exposures).toHaveLength(2);
    // A day later.
    await env.DB.prepare("UPDATE experiment_status SET updated_at = ? WHERE experiment_id = ?")
      .bind(new Date(Date.now() - ARCHIVE_GRACE_MS - 60_000).toISOString(), x)
      .run();
    await runInDurableObject(stub, async (instance) => instance.alarm());
    const state = await readVisitorState(env, sdk, "alice");
    expect(state.exposures.map((e) => e.experiment_id)).toEqual(["kept"]);
    // Converters stay (a capped metric's results read their totals) and no longer change.
    expect(state.converters.map((c) => c.experiment_id).sort()).toEqual(["kept", x].sort());
    const totalsBefore = state.converters.find((c) => c.experiment_id === x);
    await deliver([conv(sdk, { timestamp: T0 + 5000 })]);
    const later = await readVisitorState(env, sdk, "alice");
    expect(later.converters.find((c) => c.experiment_id === x)).toEqual(totalsBefore);
    expect(later.converters.find((c) => c.experiment_id === "kept")?.events).toBe(2);
    const results = await visitors(sdk);
    expect(results[`${x}/${va!.id}`]).toBe(1);
    // A late impression of the archived experiment is not counted again.
    await deliver([imp(sdk, { experimentId: x, variationId: va!.id, timestamp: T0 - 5000 })]);
    expect(await visitors(sdk)).toEqual(results);
  });
});

describe("moving per-visitor state between layouts", () => {
  it("moves a populated D1 to 4 shards in small steps; counting goes on exactly once across it", async () => {
    await useLayout(0);
    const sdk = uid("sdk");
    const all = randomEvents({
      seed: 11,
      start: T0 - 2 * 24 * 60 * 60 * 1000,
      days: 2,
      sdkKeys: [sdk],
      uuidPrefix: `${sdk}-`,
    });
    const batches = randomBatches(all, 11, 25, 0.1);
    const half = Math.floor(batches.length / 2);
    for (const batch of batches.slice(0, half)) expect((await deliver(batch)).ackAll).toBe(true);
    const countedBefore = batches.slice(0, half).flat();
    await expectFold(sdk, countedBefore, "in D1");
    const d1Rows = async () =>
      Number(
        (
          await env.DB.prepare(
            "SELECT (SELECT count(*) FROM exposures) + (SELECT count(*) FROM converters) + (SELECT count(*) FROM conversions) AS n",
          ).first<{ n: number }>()
        )?.n,
      );
    expect(await d1Rows()).toBeGreaterThan(0);

    let steps = 0;
    for (;;) {
      // Past the settling wait after the first step (every isolate has seen the move).
      const report = await moveEventState(env, 4, {
        maxRows: 37,
        now: Date.now() + (steps ? SETTLE_MS : 0),
      });
      steps++;
      if (report.done) break;
      // Mid-move, the consumer waits.
      if (steps === 2) {
        vi.spyOn(console, "warn").mockImplementation(() => {});
        expect((await deliver(batches[half]!)).retryBatch.retry).toBe(true);
        vi.restoreAllMocks();
      }
      expect(steps).toBeLessThan(500);
    }
    expect(steps).toBeGreaterThan(3);
    resetLayoutCache();
    expect(await loadEventLayout(env)).toEqual({ shards: 4, movingTo: null });
    // D1 keeps only the aggregates; the shards hold exactly what D1 held.
    expect(await d1Rows()).toBe(0);
    await expectFold(sdk, countedBefore, "after the move");
    // The rest of the events, and every batch again: exactly once across the move.
    for (const batch of batches) expect((await deliver(batch)).ackAll).toBe(true);
    await expectFold(sdk, all, "after every batch again");
    // A finished move is a no-op when asked again.
    expect((await moveEventState(env, 4)).done).toBe(true);
  });

  it("grows 4 → 6 shards: only the visitors whose shard changes move", async () => {
    await useLayout(4);
    // A fixed key: with a random one, about 1 run in 100 had none of the 12 visitors change
    // shard (and the test failed on its own precondition); with this one 3 of 12 move.
    const sdk = "sdk-grows-4-to-6";
    const all = randomEvents({
      seed: 5,
      start: T0 - 24 * 60 * 60 * 1000,
      days: 1,
      sdkKeys: [sdk],
      uuidPrefix: `${sdk}-`,
    });
    const batches = randomBatches(all, 5, 30, 0.1);
    for (const batch of batches) await deliver(batch);
    await expectFold(sdk, all, "before the move");
    const exposures = await readDerivedRows(env, "exposures", sdk);
    const movers = new Set(
      exposures
        .map((e) => String(e.visitor_id))
        .filter((v) => shardOf(sdk, v, 4) !== shardOf(sdk, v, 6)),
    );
    expect(movers.size).toBeGreaterThan(0);
    let moved = 0;
    const first = await moveEventState(env, 6, { maxRows: 500 });
    expect(first).toMatchObject({ done: false, moved: { exposures: 0 } });
    expect(first.retryAfter).toBe(SETTLE_MS / 1000);
    // The old shards refuse to count from the first step on, whatever layout a consumer cached.
    const probe = await shardStub(env, 0).count({
      shard: 0,
      attempt: uid("attempt"),
      receivedAt: Date.now(),
      plan: planBatch([imp(sdk, { visitorId: "late" })]),
    });
    expect(probe).toEqual({ capped: [], pending: [], frozen: true });
    for (;;) {
      const report = await moveEventState(env, 6, { maxRows: 500, now: Date.now() + SETTLE_MS });
      moved += report.moved.exposures;
      if (report.done) break;
    }
    expect(moved).toBeGreaterThanOrEqual(
      exposures.filter((e) => movers.has(String(e.visitor_id))).length,
    );
    resetLayoutCache();
    expect((await loadEventLayout(env)).shards).toBe(6);
    // Thawed once the move is over.
    const after = await shardStub(env, 0).count({
      shard: 0,
      attempt: uid("attempt"),
      receivedAt: Date.now(),
      plan: planBatch([]),
    });
    expect(after.error).toBeUndefined();
    for (const v of movers)
      expect((await readVisitorState(env, sdk, v)).shard).toBe(shardOf(sdk, v, 6));
    await expectFold(sdk, all, "after the move");
    for (const batch of batches) await deliver(batch);
    await expectFold(sdk, all, "after redelivering everything");
    expect(DAY).toMatch(/^\d{4}-/);
  });
});
