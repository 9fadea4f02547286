/**
 * Fault: the EVENTS queue refuses sends (docs/reliability.md "No event silently lost").
 *
 * - The event endpoints have a client to tell: 503 `queue_unavailable` with Retry-After, nothing
 *   accepted, and the client's retry (same uuids) counts once.
 * - The edge has no one to tell (its events go out in waitUntil after the page): it retries with a
 *   short backoff, then spills the page's events to R2 `spill/{day}/{uuid}.ndjson`; the scheduled
 *   handler re-queues them and deletes the object. The page is served normally all along, and the
 *   consumer counts every spilled event exactly once, even when a re-queue is sent twice.
 */
import { createScheduledController } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/env";
import type { EventMessage } from "../../src/shared/event-messages";
import { SEND_RETRY_DELAYS_MS, SPILL_PREFIX, requeueSpilled } from "../../src/events/spill";
import worker from "../../src/index";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  consume,
  counted,
  EVENT,
  expectExactCounts,
  Ledger,
  newSdkKey,
  purchase,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
  publish,
} from "./helpers";

let origin: MockedOrigin;
afterEach(async () => {
  origin?.restore();
  vi.restoreAllMocks();
  // Leave no spill objects behind for the next test.
  const left = await env.ARCHIVE.list({ prefix: SPILL_PREFIX });
  if (left.objects.length > 0) await env.ARCHIVE.delete(left.objects.map((o) => o.key));
});

async function spilled(): Promise<Map<string, EventMessage[]>> {
  const out = new Map<string, EventMessage[]>();
  const listed = await env.ARCHIVE.list({ prefix: SPILL_PREFIX });
  for (const { key } of listed.objects) {
    const text = await (await env.ARCHIVE.get(key))!.text();
    out.set(
      key,
      text
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as EventMessage),
    );
  }
  return out;
}

/** The Worker's scheduled handler (retention, bandit round, spill re-queue) with `target` as env. */
async function scheduled(target: Env): Promise<void> {
  await worker.scheduled(
    createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
    target,
  );
}

describe("queue send failures", () => {
  it("event endpoints answer 503 + Retry-After and accept nothing; the client's retry counts once", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("q503");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    const ledger = new Ledger();
    ledger.page("q-1", await request(site, "/", { visitorId: "q-1" }));

    queue.refuse = true;
    const body = JSON.stringify({ events: [{ key: "purchase", revenue: 500, uuid: "q-1-buy" }] });
    const post = () =>
      request(site, "/_ss/events", {
        method: "POST",
        visitorId: "q-1",
        headers: { "content-type": "application/json" },
        body,
      });
    const refused = await post();
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(JSON.parse(refused.body).error.code).toBe("queue_unavailable");

    queue.refuse = false;
    expect((await post()).status).toBe(204);
    expect((await post()).status, "a retry of an accepted request is harmless").toBe(204);
    ledger.conversion("q-1", EVENT.purchase);
    await consume(queue.take());
    await expectExactCounts(sdkKey, ledger);
  });

  it("the edge retries a refused send with backoff before anything else", async () => {
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("qretry");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    queue.refuse = SEND_RETRY_DELAYS_MS.length; // refuses every attempt but the last
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    const ledger = new Ledger();
    const page = await request(site, "/products/3", { visitorId: "retry-1" });
    expect(page.status).toBe(200);
    ledger.productPage("retry-1", page);
    expect(queue.calls).toBe(SEND_RETRY_DELAYS_MS.length + 1);
    expect((await spilled()).size, "sent on the last try: nothing spilled").toBe(0);
    await consume(queue.take());
    await expectExactCounts(sdkKey, ledger);
  });

  // Each refused page waits out the send backoff (≈ 300 ms) before it spills.
  it(
    "the edge spills to R2 while the queue is down; the scheduled run re-queues; counted exactly once",
    { timeout: 30_000 },
    async () => {
      const warnings = vi.spyOn(console, "warn").mockImplementation(() => {});
      vi.spyOn(console, "error").mockImplementation(() => {});
      vi.spyOn(console, "log").mockImplementation(() => {});
      origin = mockOrigin(shop);
      const sdkKey = newSdkKey("qspill");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const queue = new RecordingQueue();
      const site = siteEnv(sdkKey, { EVENTS: queue.binding });
      const ledger = new Ledger();

      queue.refuse = true;
      const pages = 8;
      for (let i = 0; i < pages; i++) {
        const visitorId = `spill-${i}`;
        const home = await request(site, "/", { visitorId });
        expect(home.status, "the site keeps serving").toBe(200);
        expect(home.decisions.get("hero")).toBeDefined();
        ledger.page(visitorId, home);
        const product = await request(site, `/products/${i}`, { visitorId });
        expect(product.status).toBe(200);
        ledger.productPage(visitorId, product);
      }
      expect(queue.sent).toEqual([]);
      expect(queue.refused, "every page: all attempts refused").toBe(
        2 * pages * (SEND_RETRY_DELAYS_MS.length + 1),
      );
      const spill = await spilled();
      expect(spill.size, "one spill object per page").toBe(2 * pages);
      for (const key of spill.keys())
        expect(key).toMatch(/^spill\/\d{4}-\d{2}-\d{2}\/[\w-]+\.ndjson$/);
      const spilledEvents = [...spill.values()].flat();
      expect(new Set(spilledEvents.map((e) => e.sdkKey))).toEqual(new Set([sdkKey]));
      expect(warnings.mock.calls.some((c) => String(c[0]).includes("spilled to R2"))).toBe(true);
      expect(await counted(sdkKey), "nothing counted yet").toEqual({ visitors: {}, events: {} });

      // The queue still down at the next scheduled run: the objects stay, the run fails.
      await expect(scheduled(siteEnv(sdkKey, { EVENTS: queue.binding }))).rejects.toThrow(
        /simulated outage/,
      );
      expect((await spilled()).size).toBe(2 * pages);

      // Back up: the scheduled run re-queues every spilled event and deletes the objects.
      queue.refuse = false;
      await scheduled(siteEnv(sdkKey, { EVENTS: queue.binding }));
      expect((await spilled()).size).toBe(0);
      const requeued = queue.take();
      expect(requeued.map((e) => e.uuid).sort()).toEqual(spilledEvents.map((e) => e.uuid).sort());

      // Delivered twice (a run that sent but failed to delete, a queue redelivery): counted once.
      await consume(requeued);
      await consume(requeued);
      await expectExactCounts(sdkKey, ledger);

      // Nothing left: a further run sends nothing.
      await scheduled(siteEnv(sdkKey, { EVENTS: queue.binding }));
      expect(queue.take()).toEqual([]);
    },
  );

  it("re-queues at most the per-run limit and leaves the rest for the next run", async () => {
    vi.spyOn(console, "log").mockImplementation(() => {});
    const queue = new RecordingQueue();
    for (let i = 0; i < 5; i++)
      await env.ARCHIVE.put(
        `${SPILL_PREFIX}2026-01-01/limit-${i}.ndjson`,
        `{"uuid":"limit-${i}"}\n`,
      );
    const target = { EVENTS: queue.binding, ARCHIVE: env.ARCHIVE };
    expect(await requeueSpilled(target, { maxObjects: 3 })).toEqual({
      objects: 3,
      events: 3,
      invalidLines: 0,
      complete: false,
    });
    expect(await requeueSpilled(target, { maxObjects: 3 })).toMatchObject({
      objects: 2,
      complete: true,
    });
    expect(queue.take().map((e) => e.uuid)).toEqual([0, 1, 2, 3, 4].map((i) => `limit-${i}`));
  });

  it("logs the events as LOST only when the queue and R2 both refuse; the page is still served", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("qlost");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    queue.refuse = true;
    const brokenR2 = {
      put: async () => {
        throw new Error("R2 put failed (simulated)");
      },
    } as unknown as R2Bucket;
    const page = await request(siteEnv(sdkKey, { EVENTS: queue.binding, ARCHIVE: brokenR2 }), "/", {
      visitorId: "lost-1",
    });
    expect(page.status).toBe(200);
    expect(page.decisions.size).toBeGreaterThan(0);
    expect(
      errors.mock.calls.some((c) => /^splitstream: LOST \d+ event\(s\)/.test(String(c[0]))),
    ).toBe(true);
  });

  it("a purchase accepted while the edge spilled still counts once the spill is re-queued", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    vi.spyOn(console, "log").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("qmix");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    const ledger = new Ledger();
    // The page's events are spilled (3 refusals); the purchase a moment later goes through.
    queue.refuse = SEND_RETRY_DELAYS_MS.length + 1;
    ledger.page("mix-1", await request(site, "/", { visitorId: "mix-1" }));
    expect((await purchase(site, "mix-1")).status).toBe(204);
    ledger.conversion("mix-1", EVENT.purchase);
    // The purchase reaches the consumer before the impressions it belongs to…
    await consume(queue.take());
    expect((await counted(sdkKey)).events).toEqual({});
    // …and is attributed once they arrive from the spill.
    await scheduled(siteEnv(sdkKey, { EVENTS: queue.binding }));
    await consume(queue.take());
    await expectExactCounts(sdkKey, ledger);
  });
});
