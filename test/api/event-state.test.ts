/**
 * The event-state endpoints (docs/api.md "Event state"): the layout and its shards, a move step
 * by step through the API, and one visitor's state — with their roles and their refusals.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { handleEventBatch } from "../../src/events/consumer";
import type { EventMessage } from "../../src/shared/event-messages";
import { api, apiJson, createProject, createToken } from "../helpers/api";
import { useLayout } from "../helpers/event-layout";

const T0 = Date.now() - 60 * 60 * 1000;

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

const impression = (sdkKey: string, visitorId: string, experimentId: string): EventMessage => ({
  v: 1,
  type: "impression",
  uuid: crypto.randomUUID(),
  sdkKey,
  revision: "1",
  visitorId,
  experimentId,
  variationId: "A",
  timestamp: T0,
  source: "edge",
});

const purchase = (sdkKey: string, visitorId: string): EventMessage => ({
  v: 1,
  type: "conversion",
  uuid: crypto.randomUUID(),
  sdkKey,
  revision: "1",
  visitorId,
  eventId: "buy",
  eventKey: "buy",
  timestamp: T0 + 1000,
  revenue: 990,
  source: "sdk",
});

describe("event state API", () => {
  beforeEach(() => useLayout(2));

  it("GET /admin/event-layout: the layout, each shard's size with ?stats=true; admin only", async () => {
    const project = await createProject();
    const sdkKey = project.environments[0]!.sdkKey;
    await deliver([impression(sdkKey, "ann", "x1"), purchase(sdkKey, "ann")]);
    const plain = await apiJson("GET", "/admin/event-layout", 200);
    expect(plain).toEqual({ shards: 2, movingTo: null, configured: 8, shardStats: null });
    const stats = await apiJson("GET", "/admin/event-layout?stats=true", 200);
    expect(stats.shardStats).toHaveLength(2);
    const total = (table: string) =>
      stats.shardStats.reduce(
        (n: number, s: { rows: Record<string, number> }) => n + s.rows[table]!,
        0,
      );
    expect(total("exposures")).toBeGreaterThanOrEqual(1);
    expect(total("seen_events")).toBeGreaterThanOrEqual(2);
    for (const s of stats.shardStats) expect(s.bytes).toBeGreaterThan(0);
    const editor = await createToken("editor");
    await apiJson("GET", "/admin/event-layout", 403, { token: editor.token });
    await apiJson("GET", "/admin/event-layout", 401, { token: null });
  });

  it("POST /admin/event-layout/move: steps until done; refuses a bad count and a second move", async () => {
    const project = await createProject();
    const sdkKey = project.environments[0]!.sdkKey;
    const visitors = Array.from({ length: 20 }, (_, i) => `v${i}`);
    await deliver(visitors.flatMap((v) => [impression(sdkKey, v, "x1"), purchase(sdkKey, v)]));

    for (const to of [0, 4097, 1.5])
      await apiJson("POST", "/admin/event-layout/move", 422, { body: { to } });
    await apiJson("POST", "/admin/event-layout/move", 422, { body: { to: 3, extra: 1 } });
    const editor = await createToken("editor");
    await apiJson("POST", "/admin/event-layout/move", 403, {
      token: editor.token,
      body: { to: 3 },
    });

    const first = await apiJson("POST", "/admin/event-layout/move", 200, {
      body: { to: 3, maxRows: 5 },
    });
    // The first step only stops counting and says how long to wait.
    expect(first).toMatchObject({ from: 2, to: 3, done: false });
    expect(first.retryAfter).toBeGreaterThan(30);
    expect(Object.values(first.moved)).toEqual([0, 0, 0, 0]);
    expect((await apiJson("GET", "/admin/event-layout", 200)).movingTo).toBe(3);
    const waiting = await apiJson("POST", "/admin/event-layout/move", 200, { body: { to: 3 } });
    expect(waiting.retryAfter).toBeGreaterThan(0);
    // As if the wait were over.
    await env.DB.prepare("UPDATE event_layout SET updated_at = '2000-01-01T00:00:00.000Z'").run();
    // Another count while this move runs: 409; so is a rebuild's apply.
    const other = await api("POST", "/admin/event-layout/move", { body: { to: 5 } });
    expect(other.status).toBe(409);
    await apiJson("POST", "/admin/rebuild", 409, { body: { sdkKey, apply: true } });
    let done = false;
    for (let i = 0; i < 100 && !done; i++)
      done = (
        await apiJson("POST", "/admin/event-layout/move", 200, { body: { to: 3, maxRows: 5 } })
      ).done;
    expect(done).toBe(true);
    expect(await apiJson("GET", "/admin/event-layout", 200)).toMatchObject({
      shards: 3,
      movingTo: null,
    });
    // Every visitor's state is where the new layout looks for it.
    const environmentId = project.environments[0]!.id;
    for (const v of visitors) {
      const state = await apiJson("GET", `/environments/${environmentId}/visitors/${v}`, 200);
      expect(state.exposures, v).toHaveLength(1);
      expect(state.conversions, v).toHaveLength(1);
    }
    const audit = await apiJson("GET", "/audit-log?limit=5", 200);
    expect(JSON.stringify(audit)).toContain("event_layout.moved");
  });

  it("GET /environments/{id}/visitors/{visitorId}: the visitor's rows and shard; editor and up", async () => {
    const project = await createProject();
    const environment = project.environments[0]!;
    await deliver([
      impression(environment.sdkKey, "zoë/1", "x1"),
      impression(environment.sdkKey, "zoë/1", "x2"),
      purchase(environment.sdkKey, "zoë/1"),
    ]);
    const path = `/environments/${environment.id}/visitors/${encodeURIComponent("zoë/1")}`;
    const state = await apiJson("GET", path, 200);
    expect(state).toMatchObject({ sdkKey: environment.sdkKey, visitorId: "zoë/1" });
    expect(typeof state.shard).toBe("number");
    expect(state.exposures.map((e: { experiment_id: string }) => e.experiment_id).sort()).toEqual([
      "x1",
      "x2",
    ]);
    expect(state.conversions).toEqual([
      expect.objectContaining({ event_id: "buy", revenue: 990, visitor_id: "zoë/1" }),
    ]);
    expect(state.converters).toHaveLength(2);
    const nobody = await apiJson("GET", `/environments/${environment.id}/visitors/nobody`, 200);
    expect(nobody).toMatchObject({ exposures: [], conversions: [], converters: [] });
    const viewer = await createToken("viewer");
    await apiJson("GET", path, 403, { token: viewer.token });
    await apiJson("GET", `/environments/nope/visitors/x`, 404);
    await apiJson("GET", `/environments/${environment.id}/visitors/${"v".repeat(300)}`, 422);
  });
});
