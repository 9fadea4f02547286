/**
 * Fault: the datafile in KV is replaced, while visitors keep coming, by a broken one — first text
 * that is not JSON, then JSON that does not validate (docs/reliability.md "Last good datafile").
 * Pages keep being decided with the last good revision, impressions carry that revision, browser
 * conversions are still accepted, /_ss/health shows the problem; a good datafile published again
 * is picked up; and every accepted event is counted exactly once.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  consume,
  EVENT,
  expectExactCounts,
  Ledger,
  movableClock,
  newSdkKey,
  publish,
  purchase,
  RecordingQueue,
  request,
  shop,
  siteDatafile,
  siteEnv,
} from "./helpers";

let origin: MockedOrigin;
afterEach(() => {
  origin?.restore();
  vi.restoreAllMocks();
});

describe("a datafile replaced mid-load by a broken one", () => {
  it("serves the last good revision until a good one comes back, and counts exactly", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    origin = mockOrigin(shop);
    const clock = movableClock();
    const sdkKey = newSdkKey("swap");
    const queue = new RecordingQueue();
    const site = siteEnv(sdkKey, { EVENTS: queue.binding });
    const ledger = new Ledger();
    let n = 0;

    /** Visitors in a row; returns the revisions their impressions carried and their h1 texts. */
    const load = async (visitors: number) => {
      const headlines = new Set<string>();
      for (let i = 0; i < visitors; i++) {
        const visitorId = `swap-${++n}`;
        // The datafile goes stale every few visitors: the store reads KV in the background.
        if (n % 4 === 0) clock.advance(11_000);
        const home = await request(site, "/", { visitorId });
        expect(home.status).toBe(200);
        expect(home.decisions.get("hero"), `${visitorId} decided`).toBeDefined();
        if (home.decisions.get("hero") === "bold")
          headlines.add(/<h1>([^<]*)<\/h1>/.exec(home.body)![1]!);
        ledger.page(visitorId, home);
        const product = await request(site, `/products/${n % 5}`, { visitorId });
        expect(product.status).toBe(200);
        ledger.productPage(visitorId, product);
        if (n % 2 === 0) {
          expect((await purchase(site, visitorId)).status).toBe(204);
          ledger.conversion(visitorId, EVENT.purchase);
        }
      }
      const events = queue.take();
      await consume(events);
      return { revisions: new Set(events.map((e) => e.revision)), headlines };
    };
    /** After a publish: the next request past the freshness window refreshes from KV. */
    const refresh = async () => {
      clock.advance(11_000);
      expect((await request(site, "/about")).status).toBe(404); // routed, nothing on it: no events
    };
    const lastError = async () => {
      const health = JSON.parse((await request(site, "/_ss/health")).body);
      return health.datafiles.find((d: { sdkKey: string }) => d.sdkKey === sdkKey);
    };

    await publish(sdkKey, siteDatafile(sdkKey, "1"));
    const before = await load(12);
    expect(before.revisions).toEqual(new Set(["1"]));

    // Not JSON at all (a truncated upload).
    await publish(sdkKey, '{ "version": "4", "revision": "2", "experiments": [');
    await refresh();
    const notJson = await load(12);
    expect(notJson.revisions, "still the last good revision").toEqual(new Set(["1"]));
    expect(await lastError()).toMatchObject({ revision: "1", lastError: /invalid datafile/ });

    // Valid JSON, invalid datafile (experiments is not a list).
    await publish(sdkKey, { ...siteDatafile(sdkKey, "3"), experiments: "none" });
    await refresh();
    const notValid = await load(12);
    expect(notValid.revisions).toEqual(new Set(["1"]));
    expect(await lastError()).toMatchObject({ revision: "1", lastError: /invalid datafile/ });
    expect(errors).toHaveBeenCalled(); // logged (rate-limited per message)

    // A good datafile again: picked up at the next refresh, impressions carry its revision.
    await publish(sdkKey, siteDatafile(sdkKey, "4", "Made for the trail"));
    await refresh();
    const after = await load(12);
    expect(after.revisions).toEqual(new Set(["4"]));
    expect(after.headlines).toEqual(new Set(["Made for the trail"]));
    expect(await lastError()).toMatchObject({ revision: "4", lastError: null });

    await expectExactCounts(sdkKey, ledger);
  });
});
