/**
 * Rebuild from the R2 archive (docs/events.md "Rebuild", docs/api.md "Rebuild"): batches go
 * through the real consumer (which archives them in R2 and counts them in D1), including
 * redeliveries and batches out of time order; then `POST /_ss/api/v1/admin/rebuild` must find the
 * live tables healthy, report exactly the rows we damage, and after `apply` the live tables equal
 * the rebuild again.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  runInDurableObject,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { foldEvents, toNdjson, utcDay } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import { DERIVED_TABLES, diffRows, stateRows } from "../../src/events/tables";
import { readDerivedRows } from "../../src/events/visitor-state";
import { LAYOUTS, execWhereVisitorLives, useLayout } from "../helpers/event-layout";
import { api, apiJson, createToken } from "../helpers/api";
import { rebuildReport, runRebuild, settleIfAny, settleRebuild } from "../helpers/rebuild";
import { newJobState, reportOf, runRebuildStep, type Difference } from "../../src/events/rebuild";
import { shardStub } from "../../src/events/visitor-shard";
import { shadowPrefix } from "../../src/events/rebuild-sql";
import { randomBatches, randomEvents } from "./random-events";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const DAY_MS = 24 * 60 * 60 * 1000;
const START = Math.floor(Date.now() / DAY_MS - 4) * DAY_MS;

async function deliver(bodies: EventMessage[]): Promise<void> {
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

/** A fresh sdkKey's worth of random events, delivered out of order with redeliveries. */
async function feed(seed: number): Promise<{ sdkKey: string; events: EventMessage[] }> {
  const sdkKey = `sdk-${crypto.randomUUID()}`;
  const events = randomEvents({
    seed,
    start: START,
    days: 3,
    sdkKeys: [sdkKey],
    uuidPrefix: `${sdkKey}-`,
  });
  const batches = randomBatches(events, seed, 30, 0.2);
  // Conversions-only batches first: attribution must not depend on it.
  batches.sort(
    (a, b) =>
      Number(b.every((e) => e.type === "conversion")) -
      Number(a.every((e) => e.type === "conversion")),
  );
  for (const batch of batches) await deliver(batch);
  // A whole batch redelivered under new message ids: archived twice, counted once.
  await deliver(batches[0]!);
  return { sdkKey, events };
}

const rebuild = (body: Record<string, unknown>) => rebuildReport(body);

describe.each(LAYOUTS)("POST /admin/rebuild ($name)", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it(
    "finds healthy tables, reports damaged rows, and apply restores them",
    { timeout: 60_000 },
    async () => {
      const { sdkKey, events } = await feed(7);
      const healthy = await rebuild({ sdkKey });
      expect(healthy).toMatchObject({
        sdkKeys: [sdkKey],
        eventsFolded: events.length,
        invalidLines: 0,
        differences: [],
        differencesTruncated: false,
        matches: true,
        applied: false,
        written: null,
      });
      expect(healthy.duplicates).toBeGreaterThan(0);
      expect(healthy.objectsRead).toBeGreaterThan(3);
      const expected = stateRows(foldEvents(events));
      for (const table of DERIVED_TABLES)
        expect(healthy.tables[table], table).toEqual({
          live: expected[table].length,
          rebuilt: expected[table].length,
          differences: 0,
        });

      // Damage: a lost visitor cell, an edited metric (a sum and a per-visitor sum of squares), a
      // lost exposure, a bogus converter, an edited converter's totals, a lost stored conversion.
      const [vd] = await readDerivedRows(env, "variation_daily", sdkKey);
      const [md] = await readDerivedRows(env, "metric_daily", sdkKey);
      const [exposure] = await readDerivedRows(env, "exposures", sdkKey);
      const [conversion] = await readDerivedRows(env, "conversions", sdkKey);
      const [converter] = await readDerivedRows(env, "converters", sdkKey);
      await env.DB.batch([
        env.DB.prepare(
          "DELETE FROM variation_daily WHERE sdk_key = ? AND experiment_id = ? AND variation_id = ? AND revision = ? AND day = ?",
        ).bind(sdkKey, vd!.experiment_id, vd!.variation_id, vd!.revision, vd!.day),
        env.DB.prepare(
          "UPDATE metric_daily SET revenue_sum = revenue_sum + 1, revenue_visitor_sum_sq = revenue_visitor_sum_sq + 1 WHERE sdk_key = ? AND experiment_id = ? AND variation_id = ? AND revision = ? AND event_id = ? AND day = ?",
        ).bind(sdkKey, md!.experiment_id, md!.variation_id, md!.revision, md!.event_id, md!.day),
      ]);
      // The per-visitor rows, wherever the layout keeps them.
      const visitorOf = (row: Json) => String(row.visitor_id);
      await execWhereVisitorLives(
        sdkKey,
        visitorOf(exposure),
        "DELETE FROM exposures WHERE sdk_key = ? AND experiment_id = ? AND visitor_id = ?",
        sdkKey,
        exposure!.experiment_id!,
        exposure!.visitor_id!,
      );
      await execWhereVisitorLives(
        sdkKey,
        "nobody",
        "INSERT INTO converters (sdk_key, experiment_id, event_id, visitor_id, variation_id, converted_at, uuid) VALUES (?, 'ghost', 'buy', 'nobody', 'var-a', 1, 'ghost')",
        sdkKey,
      );
      await execWhereVisitorLives(
        sdkKey,
        visitorOf(conversion),
        "DELETE FROM conversions WHERE uuid = ?",
        conversion!.uuid!,
      );
      await execWhereVisitorLives(
        sdkKey,
        visitorOf(converter),
        "UPDATE converters SET events = events + 1, value = value + 0.5 WHERE sdk_key = ? AND experiment_id = ? AND event_id = ? AND visitor_id = ?",
        sdkKey,
        converter!.experiment_id!,
        converter!.event_id!,
        converter!.visitor_id!,
      );

      const damaged = await rebuild({ sdkKey, apply: false });
      expect(damaged.matches).toBe(false);
      expect(damaged.applied).toBe(false);
      const byTable = (table: string) =>
        (damaged.differences as Json[]).filter((d) => d.table === table);
      expect(byTable("variation_daily")).toEqual([
        {
          table: "variation_daily",
          key: {
            sdk_key: sdkKey,
            experiment_id: vd!.experiment_id,
            variation_id: vd!.variation_id,
            revision: vd!.revision,
            day: vd!.day,
          },
          live: null,
          rebuilt: { visitors: vd!.visitors },
        },
      ]);
      expect(byTable("metric_daily")).toHaveLength(1);
      expect(byTable("metric_daily")[0].live.revenue_sum).toBe((md!.revenue_sum as number) + 1);
      expect(byTable("metric_daily")[0].rebuilt.revenue_sum).toBe(md!.revenue_sum);
      expect(byTable("metric_daily")[0].live.revenue_visitor_sum_sq).toBe(
        (md!.revenue_visitor_sum_sq as number) + 1,
      );
      expect(byTable("metric_daily")[0].rebuilt.revenue_visitor_sum_sq).toBe(
        md!.revenue_visitor_sum_sq,
      );
      expect(byTable("exposures")).toEqual([
        expect.objectContaining({
          live: null,
          rebuilt: expect.objectContaining({ uuid: exposure!.uuid }),
        }),
      ]);
      expect(byTable("converters")).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            key: { sdk_key: sdkKey, experiment_id: "ghost", event_id: "buy", visitor_id: "nobody" },
            rebuilt: null,
          }),
          {
            table: "converters",
            key: {
              sdk_key: sdkKey,
              experiment_id: converter!.experiment_id,
              event_id: converter!.event_id,
              visitor_id: converter!.visitor_id,
            },
            live: expect.objectContaining({
              events: (converter!.events as number) + 1,
              value: (converter!.value as number) + 0.5,
            }),
            rebuilt: expect.objectContaining({
              events: converter!.events,
              revenue: converter!.revenue,
              value: converter!.value,
            }),
          },
        ]),
      );
      expect(byTable("converters")).toHaveLength(2);
      expect(byTable("conversions")).toEqual([
        expect.objectContaining({ key: { uuid: conversion!.uuid }, live: null }),
      ]);
      expect(damaged.tables.variation_daily.differences).toBe(1);

      const applied = await rebuild({ sdkKey, apply: true });
      expect(applied).toMatchObject({ matches: false, applied: true });
      for (const table of DERIVED_TABLES)
        expect(applied.written[table]).toBe(expected[table].length);
      expect(await rebuild({ sdkKey })).toMatchObject({ matches: true, differences: [] });
      for (const table of DERIVED_TABLES)
        expect(diffRows(table, await readDerivedRows(env, table, sdkKey), expected[table])).toEqual(
          [],
        );

      // The restored state is consistent: the consumer keeps counting on top of it correctly.
      const late = events.find((e) => e.type === "impression")!;
      const more: EventMessage[] = [
        { ...late, uuid: `${sdkKey}-late`, timestamp: START - DAY_MS, variationId: "var-z" },
      ];
      await deliver(more);
      const after = stateRows(foldEvents([...events, ...more]));
      for (const table of DERIVED_TABLES)
        expect(
          diffRows(table, await readDerivedRows(env, table, sdkKey), after[table]),
          table,
        ).toEqual([]);
    },
  );

  it("compares every sdkKey when none is given, and lists unreadable archive lines", async () => {
    const { sdkKey } = await feed(8);
    const key = `events/${utcDay(Date.now())}/00/garbage-${crypto.randomUUID()}-2.ndjson`;
    await env.ARCHIVE.put(key, `not json\n${JSON.stringify({ v: 2 })}\n`);
    // No body at all: compare everything.
    const report = (await runRebuild()).report as Json;
    expect(report.sdkKeys).toContain(sdkKey);
    expect(report.invalidLines).toBeGreaterThanOrEqual(2);
    expect(report.invalid).toEqual(
      expect.arrayContaining([
        { object: key, line: 1, reason: "not JSON" },
        { object: key, line: 2, reason: "v must be 1" },
      ]),
    );
    await env.ARCHIVE.delete(key);
  });

  it("is for admins, with a strict body", async () => {
    const editor = await createToken("editor");
    expect((await api("POST", "/admin/rebuild", { body: {}, token: editor.token })).status).toBe(
      403,
    );
    expect((await api("POST", "/admin/rebuild", { body: {}, token: null })).status).toBe(401);
    for (const [body, path] of [
      [{ apply: "yes" }, "$.body.apply"],
      [{ sdkKey: "" }, "$.body.sdkKey"],
      [{ dryRun: true }, "$.body.dryRun"],
    ] as const) {
      const r = await api("POST", "/admin/rebuild", { body });
      expect(r.status).toBe(422);
      const details = ((await r.json()) as Json).error.details as Json[];
      expect(details.map((d) => d.path)).toContain(path);
    }
  });
});

/** Rows of rebuild `job`'s shadow namespace, in D1 and on shards 0…`shards`−1. */
async function shadowRows(shards: number, job: string): Promise<number> {
  const tables = ["seen_events", ...DERIVED_TABLES];
  const prefix = shadowPrefix(job);
  const where = `WHERE substr(sdk_key, 1, ${prefix.length}) = '${prefix}'`;
  let n = 0;
  for (const table of tables)
    n += Number(
      (await env.DB.prepare(`SELECT count(*) AS n FROM ${table} ${where}`).first<{ n: number }>())
        ?.n ?? 0,
    );
  for (let i = 0; i < shards; i++) {
    const stub = shardStub(env, i);
    await stub.pending();
    n += await runInDurableObject(stub, (_, state) => {
      let sum = 0;
      for (const table of ["seen_events", "exposures", "conversions", "converters"])
        sum += Number(
          state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${table} ${where}`).one()
            .n,
        );
      return sum;
    });
  }
  return n;
}

describe.each(LAYOUTS)("the rebuild job ($name)", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it(
    "runs in one-object steps over many steps; a replay or apply step whose save was lost runs again without counting or swapping twice",
    { timeout: 120_000 },
    async () => {
      const { sdkKey, events } = await feed(21);
      const whole = await rebuildReport({ sdkKey });
      expect(whole.matches).toBe(true);
      const tiny = await runRebuild({ sdkKey, chunkObjects: 1 });
      expect(tiny.status).toBe("compared");
      // One archive object per step: at least as many steps as objects.
      expect(tiny.steps).toBeGreaterThanOrEqual(tiny.report.objectsRead);
      expect(tiny.report.objectsRead).toBeGreaterThan(30);
      expect(tiny.report).toMatchObject({
        matches: true,
        eventsFolded: events.length,
        tables: whole.tables,
      });

      // The steps themselves: a state saved mid-replay, more steps, then the later saves lost —
      // the job goes on from the saved state (counting some objects again) and still matches.
      let state = newJobState(
        `t${Date.now().toString(36)}`,
        { sdkKey, chunkObjects: 1 },
        shards,
        Date.now(),
      );
      const found: Difference[] = [];
      const step = async () => found.push(...(await runRebuildStep(env, state, Date.now())));
      while (state.phase !== "replaying" || state.objectsRead < 5) await step();
      const saved = structuredClone(state);
      for (let i = 0; i < 6; i++) await step();
      expect(state.objectsRead).toBe(saved.objectsRead + 6);
      state = saved;
      while (state.status === "running") await step();
      const report = reportOf(state, found)!;
      expect(report).toMatchObject({
        matches: true,
        eventsFolded: events.length,
        objectsRead: tiny.report.objectsRead,
        tables: whole.tables,
      });
      expect(await shadowRows(shards, state.id)).toBeGreaterThan(0);

      // Applied, with the first apply step's save lost: the step runs again and must not swap
      // twice (the second swap would delete the rows the first made live).
      await env.DB.prepare("DELETE FROM variation_daily WHERE sdk_key = ?").bind(sdkKey).run();
      state.status = "applying";
      state.phase = "applying";
      state.keyIndex = 0;
      const beforeApply = structuredClone(state);
      await step();
      expect(state.keyIndex).toBe(1);
      state = beforeApply;
      while (state.status === "applying") await step();
      expect(state.status).toBe("applied");
      const expected = stateRows(foldEvents(events));
      for (const table of DERIVED_TABLES)
        expect(
          diffRows(table, await readDerivedRows(env, table, sdkKey), expected[table]),
          table,
        ).toEqual([]);
      expect(await shadowRows(shards, state.id)).toBe(0);
    },
  );

  it(
    "is one job at a time; cancel drops its rows and keeps the live ones; a compared job is applied on request",
    { timeout: 120_000 },
    async () => {
      const { sdkKey, events } = await feed(22);
      await settleIfAny();
      // Every archived object of this file, one per step: long enough to act on it meanwhile.
      const started = await apiJson("POST", "/admin/rebuild", 202, {
        body: { sdkKey, chunkObjects: 1 },
      });
      expect(started).toMatchObject({ status: "running", sdkKey, chunkObjects: 1, report: null });
      await apiJson("POST", "/admin/rebuild", 409, { body: { sdkKey } });
      await apiJson("POST", "/admin/rebuild/apply", 409);
      // No move between layouts under a running rebuild.
      const move = await apiJson("POST", "/admin/event-layout/move", 409, {
        body: { to: shards + 1 },
      });
      expect(move.error.message).toMatch(/rebuild .* is running/);
      const cancelling = await apiJson("POST", "/admin/rebuild/cancel", 202);
      expect(cancelling.status).toBe("cancelling");
      const cancelled = await settleRebuild();
      expect(cancelled).toMatchObject({ id: started.id, status: "cancelled", report: null });
      expect(await shadowRows(shards, started.id)).toBe(0);
      await apiJson("POST", "/admin/rebuild/cancel", 409);
      const expected = stateRows(foldEvents(events));
      for (const table of DERIVED_TABLES)
        expect(diffRows(table, await readDerivedRows(env, table, sdkKey), expected[table])).toEqual(
          [],
        );

      // Damage one aggregate; compare only, then apply the compared job.
      await env.DB.prepare("DELETE FROM variation_daily WHERE sdk_key = ?").bind(sdkKey).run();
      const compared = await runRebuild({ sdkKey });
      expect(compared.status).toBe("compared");
      expect(compared.report.matches).toBe(false);
      expect(compared.report.tables.variation_daily.live).toBe(0);
      expect(await shadowRows(shards, compared.id)).toBeGreaterThan(0);
      const applying = await apiJson("POST", "/admin/rebuild/apply", 202);
      expect(applying.status).toBe("applying");
      const applied = await settleRebuild();
      expect(applied.status).toBe("applied");
      expect(applied.report.written.variation_daily).toBe(expected.variation_daily.length);
      expect(await shadowRows(shards, compared.id)).toBe(0);
      for (const table of DERIVED_TABLES)
        expect(
          diffRows(table, await readDerivedRows(env, table, sdkKey), expected[table]),
          table,
        ).toEqual([]);
      const audit = await apiJson("GET", "/audit-log?resourceType=rebuild&limit=100", 200);
      expect((audit.items as Json[]).map((a) => a.action)).toEqual(
        expect.arrayContaining(["rebuild.started", "rebuild.cancelled", "rebuild.applied"]),
      );
    },
  );

  it(
    "fails, dropping its rows, when the layout changes under it",
    { timeout: 120_000 },
    async () => {
      const { sdkKey } = await feed(23);
      await settleIfAny();
      const started = await apiJson("POST", "/admin/rebuild", 202, {
        body: { sdkKey, chunkObjects: 1 },
      });
      await useLayout(shards + 3);
      try {
        const failed = await settleRebuild();
        expect(failed.status).toBe("failed");
        expect(failed.error).toMatch(/layout changed from \d+ to \d+ shard/);
      } finally {
        await useLayout(shards);
      }
      expect(await shadowRows(shards, started.id)).toBe(0);
    },
  );
});

// Last: its 1,100 objects per layout would make every later job's one-object steps many more.
describe.each(LAYOUTS)("a large archive ($name)", ({ shards }) => {
  beforeAll(() => useLayout(shards));

  it("reads archives of more than one listing page (cursor)", { timeout: 60_000 }, async () => {
    const sdkKey = `sdk-${crypto.randomUUID()}`;
    const events = randomEvents({
      seed: 11,
      start: START,
      sdkKeys: [sdkKey],
      uuidPrefix: `${sdkKey}-`,
      impressions: 400,
      conversions: 700,
    });
    // One object per event: more objects than one R2 list page (1000) holds.
    const hour = `events/${utcDay(Date.now())}/23/`;
    for (let i = 0; i < events.length; i += 50)
      await Promise.all(
        events
          .slice(i, i + 50)
          .map((event, j) =>
            env.ARCHIVE.put(`${hour}${sdkKey}-${i + j}-1.ndjson`, toNdjson([event])),
          ),
      );
    const job = await runRebuild({ sdkKey, chunkObjects: 200 });
    // More steps than one listing page per step would take.
    expect(job.steps).toBeGreaterThan(events.length / 200);
    const report = job.report as Json;
    expect(report.objectsRead).toBeGreaterThanOrEqual(events.length);
    expect(report.eventsFolded).toBe(events.length);
    // Never counted by the consumer: everything differs, which the report says table by table.
    const expected = stateRows(foldEvents(events));
    expect(report.matches).toBe(false);
    expect(report.tables.metric_daily).toEqual({
      live: 0,
      rebuilt: expected.metric_daily.length,
      differences: expected.metric_daily.length,
    });
    expect(report.differences).toHaveLength(1000);
    expect(report.differencesTruncated).toBe(true);
  });
});
