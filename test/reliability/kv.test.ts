/**
 * Fault: the datafile store's KV fails or is slow (docs/reliability.md "Fail open" and "Last
 * good datafile"). The site keeps serving — decided pages from the last good datafile, or the
 * original page when there never was one — and every impression and conversion it accepted is
 * counted exactly once.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { env } from "cloudflare:workers";
import { EDGE_COLD_KV_WAIT_MS } from "../../src/edge/handle-request";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  consume,
  expectExactCounts,
  Ledger,
  movableClock,
  newSdkKey,
  PAGE,
  publish,
  purchase,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
  EVENT,
} from "./helpers";

/** KV that can fail or answer slowly; everything else is the real local KV. */
function flakyKv() {
  const state = { reads: 0, failures: 0, fail: false, delayMs: 0 };
  const binding = {
    async getWithMetadata(key: string, options: KVNamespaceGetOptions<"text">) {
      state.reads++;
      if (state.delayMs > 0) await new Promise((r) => setTimeout(r, state.delayMs));
      if (state.fail) {
        state.failures++;
        throw new Error("KV GET failed: 503 Service Unavailable (simulated)");
      }
      return env.DATAFILES.getWithMetadata(key, options);
    },
  } as unknown as KVNamespace;
  return { state, binding };
}

let origin: MockedOrigin;
afterEach(() => {
  origin?.restore();
  vi.restoreAllMocks();
});

describe("KV read failures", () => {
  it("keeps deciding with the last good datafile while every KV read fails, and counts exactly", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const clock = movableClock();
    const sdkKey = newSdkKey("kvfail");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const kv = flakyKv();
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { DATAFILES: kv.binding, EVENTS: queue.binding });
    const ledger = new Ledger();

    const browse = async (visitorId: string) => {
      ledger.page(visitorId, await request(site, "/", { visitorId }));
      const product = await request(site, "/products/1", { visitorId });
      expect(product.status).toBe(200);
      expect(product.decisions.get("hero"), "decided").toBeDefined();
      ledger.productPage(visitorId, product);
      const bought = await purchase(site, visitorId);
      expect(bought.status).toBe(204);
      ledger.conversion(visitorId, EVENT.purchase);
    };

    for (let i = 0; i < 10; i++) await browse(`kv-ok-${i}`);
    kv.state.fail = true;
    for (let i = 0; i < 30; i++) {
      // Every 3rd visitor finds the datafile stale: a background refresh reads KV and fails.
      if (i % 3 === 0) clock.advance(11_000);
      await browse(`kv-down-${i}`);
    }
    expect(kv.state.failures, "KV really failed, repeatedly").toBeGreaterThanOrEqual(10);
    const health = await request(site, "/_ss/health");
    expect(JSON.parse(health.body).datafiles).toContainEqual(
      expect.objectContaining({
        sdkKey,
        revision: "1",
        lastError: expect.stringMatching(/KV read failed/),
      }),
    );

    const events = queue.take();
    expect(events.length).toBeGreaterThan(0);
    expect(new Set(events.map((e) => e.revision)), "stamped with the last good revision").toEqual(
      new Set(["1"]),
    );
    await consume(events);
    await expectExactCounts(sdkKey, ledger);
  });

  it("passes pages through untouched when KV fails before any datafile was loaded", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const sdkKey = newSdkKey("kvcold");
    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const kv = flakyKv();
    kv.state.fail = true;
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { DATAFILES: kv.binding, EVENTS: queue.binding });
    for (let i = 0; i < 5; i++) {
      const page = await request(site, "/products/1", { visitorId: `cold-${i}` });
      expect(page.status).toBe(200);
      expect(page.body).toBe(PAGE("/products/1"));
      expect(page.headers.get("x-ss-decisions")).toBeNull();
      expect(page.headers.getSetCookie()).toEqual([]);
    }
    expect(queue.calls, "nothing decided, nothing counted").toBe(0);
  });
});

describe("slow KV", () => {
  it(
    "answers at once from the cached datafile while a stale refresh waits on a slow KV",
    { timeout: 20_000 },
    async () => {
      origin = mockOrigin(shop);
      const clock = movableClock();
      const sdkKey = newSdkKey("kvslow");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const kv = flakyKv();
      const queue = new RecordingQueue();
      const site = siteEnv(sdkKey, { DATAFILES: kv.binding, EVENTS: queue.binding });
      const ledger = new Ledger();
      ledger.page("warm-0", await request(site, "/", { visitorId: "warm-0" }));

      kv.state.delayMs = 2500;
      clock.advance(11_000); // stale: the next request starts a background refresh
      const visit = await request(site, "/products/2", { visitorId: "warm-1" });
      expect(visit.status).toBe(200);
      expect(visit.decisions.get("cta")).toBeDefined();
      expect(visit.responseMs, "the page did not wait for KV").toBeLessThan(kv.state.delayMs / 2);
      expect(kv.state.reads).toBe(2);
      ledger.productPage("warm-1", visit);

      await consume(queue.take());
      await expectExactCounts(sdkKey, ledger);
    },
  );

  it(
    `cold: passes through after ${EDGE_COLD_KV_WAIT_MS} ms of a slow KV read, then decides once it arrives`,
    { timeout: 20_000 },
    async () => {
      origin = mockOrigin(shop);
      const sdkKey = newSdkKey("kvslowcold");
      await publish(sdkKey, siteDatafile(sdkKey, "1"));
      const kv = flakyKv();
      kv.state.delayMs = EDGE_COLD_KV_WAIT_MS + 2000;
      const queue = new RecordingQueue();
      const site = siteEnv(sdkKey, { DATAFILES: kv.binding, EVENTS: queue.binding });

      // `request` waits for the request's waitUntil work too: the KV read finishes in there.
      const first = await request(site, "/", { visitorId: "slow-0" });
      expect(first.status).toBe(200);
      expect(first.body, "the original page").toBe(PAGE("/"));
      expect(first.headers.get("x-ss-decisions")).toBeNull();
      expect(first.responseMs).toBeGreaterThanOrEqual(EDGE_COLD_KV_WAIT_MS - 50);
      expect(first.responseMs).toBeLessThan(kv.state.delayMs);
      expect(queue.calls, "an undecided page counts nothing").toBe(0);

      kv.state.delayMs = 0;
      const ledger = new Ledger();
      const second = await request(site, "/", { visitorId: "slow-1" });
      expect(
        second.decisions.get("hero"),
        "decided from the datafile the slow read brought",
      ).toBeDefined();
      expect(kv.state.reads, "no second KV read: the first one is cached").toBe(1);
      ledger.page("slow-1", second);
      await consume(queue.take());
      await expectExactCounts(sdkKey, ledger);
    },
  );
});
