/**
 * The whole event pipeline, end to end, inside workerd with the real local KV, Queue, D1 and R2:
 *
 *   management API (project, pages, events, experiment, start → datafile in KV)
 *   → edge page views (impressions) and browser conversions (POST /_ss/events, ss_vid cookie)
 *   → the official Optimizely SDK (datafile from /_ss/datafiles/{sdkKey}.json, events through a
 *     custom dispatcher to POST /_ss/v1/events)
 *   → the EVENTS queue, delivered by Miniflare's queue broker to the Worker's `queue` handler
 *     (max_batch_size / max_batch_timeout of wrangler.toml: nothing here calls the consumer)
 *   → D1 aggregates → GET /_ss/api/v1/experiments/{id}/results.
 *
 * The expected counts are computed independently (test/helpers/pipeline.ts `ExpectedCounts`)
 * from what each visitor actually got — the `x-ss-decisions` header of their page, or the
 * variation `activate()` returned — and what they actually sent, and the results API must equal
 * them exactly after each phase. Then every SDK batch and the browser events with explicit
 * uuids are delivered a second time: the counts must not move.
 *
 * Each phase waits for the queue to drain and checks the counts before the next one starts, so
 * a wrong count points at the phase (impressions, conversions, redelivery) that caused it.
 */
import {
  createBatchEventProcessor,
  createInstance,
  createPollingProjectConfigManager,
  type Client,
  type EventDispatcher,
} from "@optimizely/optimizely-sdk/universal";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { apiJson, createProject, type ProjectWithEnvironments } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import {
  decisionsOf,
  ExpectedCounts,
  routedWorker,
  sdkRequestHandler,
  setCookiesOf,
  waitForResultCounts,
  type WorkerFetch,
} from "../helpers/pipeline";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const SITE = "https://shop.example.com";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/** Browser visitors through the edge, and other visitors through the official SDK. */
const EDGE_VISITORS = 200;
const SDK_VISITORS = 60;

const PAGE = (title: string) =>
  `<!doctype html><html><head><title>${title}</title></head><body><h1 class="headline">Welcome</h1><p>Trail gear.</p></body></html>`;

/** Integer cents and exactly representable values (sums are exact in any order). */
const revenueOf = (i: number) => 500 + ((i * 37) % 4000);
const valueOf = (i: number) => ((i % 13) + 1) * 0.25;

let origin: MockedOrigin;
beforeEach(() => {
  origin = mockOrigin((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/" || path === "/thanks")
      return new Response(PAGE(path), { headers: { "content-type": "text/html; charset=utf-8" } });
    return new Response("not found", { status: 404 });
  });
  resetDatafileStore();
});
afterEach(() => {
  origin.restore();
  resetDatafileStore();
});

interface Setup {
  project: ProjectWithEnvironments;
  sdkKey: string;
  experiment: Json;
  site: WorkerFetch;
  revision: string;
}

/** A project as a user would set it up through the management API, started in production. */
async function setUp(): Promise<Setup> {
  const project = await createProject("e2e shop");
  const sdkKey = project.environments.find((e) => e.key === "production")!.sdkKey;
  const collection = (plural: string) => `/projects/${project.id}/${plural}`;
  const home = await apiJson("POST", collection("pages"), 201, {
    body: { key: "home", conditions: ["or", { match: "simple", value: `${SITE}/` }] },
  });
  const thanks = await apiJson("POST", collection("pages"), 201, {
    body: { key: "thanks", conditions: ["or", { match: "simple", value: `${SITE}/thanks` }] },
  });
  const purchase = await apiJson("POST", collection("events"), 201, {
    body: { key: "purchase", type: "custom" },
  });
  const signup = await apiJson("POST", collection("events"), 201, {
    body: { key: "signup", type: "custom" },
  });
  const thanksView = await apiJson("POST", collection("events"), 201, {
    body: { key: "thanks_view", type: "pageview", pageId: thanks.id },
  });
  const experiment = await apiJson("POST", collection("experiments"), 201, {
    body: {
      key: "headline",
      pageIds: [home.id],
      traffic: 9000, // 10 % of visitors are in no variation (and must not be counted)
      metrics: [
        { eventId: purchase.id, aggregator: "sum", field: "revenue" },
        { eventId: signup.id, aggregator: "unique" },
        { eventId: thanksView.id, aggregator: "count" },
      ],
      variations: [
        { key: "control", weight: 3400 },
        {
          key: "bold",
          weight: 3300,
          changes: [
            { type: "attribute", selector: "h1.headline", attributes: { text: "Built to last" } },
          ],
        },
        {
          key: "story",
          weight: 3300,
          changes: [
            { type: "attribute", selector: "h1.headline", attributes: { text: "Our story" } },
          ],
        },
      ],
    },
  });
  await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
  const site = routedWorker([
    { pattern: "shop.example.com/*", sdk_key: sdkKey, origin: "https://origin.example.com" },
  ]);
  const datafile = (await (await site(`${SITE}/_ss/datafiles/${sdkKey}.json`)).json()) as Json;
  expect(datafile.experiments.map((e: Json) => e.key)).toContain("headline");
  return { project, sdkKey, experiment, site, revision: String(datafile.revision) };
}

/** A browser: its cookie jar, and what the edge decided for it. */
interface Browser {
  index: number;
  cookies: Map<string, string>;
  visitorId: string;
  variation: string | null;
}

const cookieHeader = (cookies: Map<string, string>) =>
  [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");

describe("events end to end: edge + browser events + official SDK → queue → consumer → results", () => {
  it(`${EDGE_VISITORS} edge visitors and ${SDK_VISITORS} SDK visitors are counted exactly, and redelivered batches change nothing`, async () => {
    const { experiment, site, revision, sdkKey } = await setUp();
    const variationKeys: string[] = experiment.variations.map((v: Json) => v.key);
    const expected = new ExpectedCounts(
      variationKeys,
      ["purchase", "signup", "thanks_view"],
      [revision],
    );

    // ---------------------------------------------------------------- phase A: impressions
    const browsers: Browser[] = [];
    /** A page view through the edge, with the browser's cookies (updated from Set-Cookie). */
    async function view(browser: Browser | null, path: string, ua = BROWSER_UA) {
      const headers: Record<string, string> = { "user-agent": ua, "accept-encoding": "identity" };
      if (browser && browser.cookies.size > 0) headers.cookie = cookieHeader(browser.cookies);
      const response = await site(`${SITE}${path}`, { headers });
      expect(response.status, `${path}`).toBe(200);
      if (browser) for (const [k, v] of setCookiesOf(response)) browser.cookies.set(k, v);
      return { response, html: await response.text(), after: Date.now() };
    }

    for (let i = 0; i < EDGE_VISITORS; i++) {
      const browser: Browser = { index: i, cookies: new Map(), visitorId: "", variation: null };
      const first = await view(browser, "/");
      browser.visitorId = browser.cookies.get("ss_vid")!;
      expect(browser.visitorId, "the edge gives every new browser an ss_vid").toBeTruthy();
      browser.variation = decisionsOf(first.response).get("headline") ?? null;
      // What the header says is what the page shows.
      const headline =
        browser.variation === "bold"
          ? "Built to last"
          : browser.variation === "story"
            ? "Our story"
            : "Welcome";
      expect(first.html).toContain(`<h1 class="headline">${headline}</h1>`);
      if (browser.variation) expected.impression(browser.visitorId, browser.variation, first.after);
      if (i % 4 === 0) {
        // A returning visitor: same variation (sticky), a second impression, one visitor.
        const again = await view(browser, "/");
        expect(decisionsOf(again.response).get("headline") ?? null).toBe(browser.variation);
        if (browser.variation)
          expected.impression(browser.visitorId, browser.variation, again.after);
      }
      browsers.push(browser);
    }
    const decided = browsers.filter((b) => b.variation !== null);
    // The world really covers the cases: every variation, and visitors outside the traffic.
    for (const key of variationKeys)
      expect(
        decided.some((b) => b.variation === key),
        key,
      ).toBe(true);
    expect(decided.length).toBeLessThan(EDGE_VISITORS);

    // Bots: the original page, no cookies, no decision, nothing counted.
    for (let i = 0; i < 5; i++) {
      const bot = await view(null, "/", BOT_UA);
      expect(decisionsOf(bot.response).size).toBe(0);
      expect(bot.response.headers.getSetCookie()).toEqual([]);
    }

    // The official SDK: datafile from the Worker, events to /_ss/v1/events on the Worker.
    const dispatched: Array<{ payload: Json; status: number; body: string }> = [];
    const inFlight: Array<Promise<unknown>> = [];
    const postSdkBatch = async (payload: Json) => {
      const response = await site(`${SITE}/_ss/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: "https://app.example.net" },
        body: JSON.stringify(payload),
      });
      return { status: response.status, body: await response.text() };
    };
    const eventDispatcher: EventDispatcher = {
      dispatchEvent(event) {
        const sent = postSdkBatch(event.params).then(({ status, body }) => {
          dispatched.push({ payload: event.params, status, body });
          return { statusCode: status };
        });
        inFlight.push(sent);
        return sent;
      },
    };
    async function sdkClient(): Promise<Client> {
      const requestHandler = sdkRequestHandler(site);
      const client = createInstance({
        projectConfigManager: createPollingProjectConfigManager({
          sdkKey,
          urlTemplate: `${SITE}/_ss/datafiles/%s.json`,
          autoUpdate: false,
          requestHandler,
        }),
        eventProcessor: createBatchEventProcessor({
          eventDispatcher,
          batchSize: 10,
          flushInterval: 60_000,
        }),
        requestHandler,
      });
      await client.onReady({ timeout: 10_000 });
      expect(client.getOptimizelyConfig()?.revision).toBe(revision);
      return client;
    }
    const eventsDispatched = () =>
      dispatched.reduce(
        (n, d) =>
          n +
          (d.payload.visitors as Json[]).reduce(
            (m, v) => m + (v.snapshots as Json[]).reduce((k, s) => k + s.events.length, 0),
            0,
          ),
        0,
      );
    /**
     * Sends the client's last partial batch and closes it, as a server does before it shuts
     * down. (`flushImmediately` is public on the SDK's client but missing from its `Client`
     * type; `close()` alone did not dispatch the pending events here.)
     */
    async function flushAndClose(client: Client, totalEvents: number): Promise<void> {
      await (client as Client & { flushImmediately(): Promise<unknown> }).flushImmediately();
      await client.close();
      for (let n = 0; n < 100 && eventsDispatched() < totalEvents; n++) {
        await Promise.all(inFlight);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await Promise.all(inFlight);
      expect(eventsDispatched()).toBe(totalEvents);
      for (const d of dispatched) expect(d.status, d.body).toBe(204);
    }
    let sdkEvents = 0;

    const sdkVisitors = Array.from({ length: SDK_VISITORS }, (_, i) => `sdk-user-${i}`);
    const sdkVariation = new Map<string, string | null>();
    let client = await sdkClient();
    for (const userId of sdkVisitors) {
      const at = Date.now();
      const variation = client.activate("headline", userId);
      // The impression the SDK sends is the decision getVariation reports.
      expect(client.getVariation("headline", userId)).toBe(variation);
      sdkVariation.set(userId, variation);
      if (variation) {
        expected.impression(userId, variation, at);
        sdkEvents += 1;
      }
    }
    await flushAndClose(client, sdkEvents);
    const sdkImpressionBatches = dispatched.length;
    expect(sdkImpressionBatches).toBeGreaterThan(1); // batches of up to 10 events

    let counts = await waitForResultCounts(experiment.id, expected.counts());
    expect(counts, "after phase A (impressions)").toEqual(expected.counts());

    // ---------------------------------------------------------------- phase B: conversions
    const browserBodies: Array<{ browser: Browser; body: Json }> = [];
    async function sendBrowserEvents(browser: Browser, events: Json[]) {
      const response = await site(`${SITE}/_ss/events`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": BROWSER_UA,
          origin: SITE,
          cookie: cookieHeader(browser.cookies),
        },
        body: JSON.stringify({ events }),
      });
      expect(response.status, await response.text()).toBe(204);
    }
    for (const browser of browsers) {
      const i = browser.index;
      const events: Json[] = [];
      const at = Date.now(); // lower bound of the server's timestamp for events without one
      if (i % 3 === 0) {
        events.push({
          key: "purchase",
          revenue: revenueOf(i),
          value: valueOf(i),
          uuid: `p-${browser.visitorId}`,
        });
        expected.conversion(browser.visitorId, "purchase", at, {
          revenue: revenueOf(i),
          value: valueOf(i),
          uuid: `p-${browser.visitorId}`,
        });
      }
      if (i % 9 === 0) {
        // A second purchase: one more event, not one more converter.
        events.push({ key: "purchase", revenue: 250 });
        expected.conversion(browser.visitorId, "purchase", at, { revenue: 250 });
      }
      if (i % 5 === 0) {
        events.push({ key: "signup", value: 1 });
        expected.conversion(browser.visitorId, "signup", at, { value: 1 });
      }
      if (i % 7 === 0) {
        // Timestamped an hour before the visitor's first impression: never attributed.
        const before = Date.now() - 60 * 60 * 1000;
        events.push({ key: "signup", timestamp: before });
        expected.conversion(browser.visitorId, "signup", before);
      }
      if (events.length > 0) {
        await sendBrowserEvents(browser, events);
        browserBodies.push({ browser, body: events });
      }
      if (i % 6 === 0) {
        // The thank-you page: the edge itself queues the pageview conversion.
        const before = Date.now();
        await view(browser, "/thanks");
        expected.conversion(browser.visitorId, "thanks_view", before);
      }
    }
    client = await sdkClient();
    const sdkOnly = ["sdk-never-activated-1", "sdk-never-activated-2"];
    for (const [n, userId] of [...sdkVisitors, ...sdkOnly].entries()) {
      const at = Date.now();
      if (n % 2 === 0) {
        client.track("purchase", userId, undefined, {
          revenue: revenueOf(n + 1000),
          value: valueOf(n),
        });
        sdkEvents += 1;
        expected.conversion(userId, "purchase", at, {
          revenue: revenueOf(n + 1000),
          value: valueOf(n),
        });
      }
      if (n % 4 === 0) {
        client.track("purchase", userId, undefined, { revenue: 99 });
        sdkEvents += 1;
        expected.conversion(userId, "purchase", at, { revenue: 99 });
      }
      if (n % 3 === 0) {
        client.track("signup", userId);
        sdkEvents += 1;
        expected.conversion(userId, "signup", at);
      }
    }
    await flushAndClose(client, sdkEvents);

    counts = await waitForResultCounts(experiment.id, expected.counts());
    expect(counts, "after phase B (conversions)").toEqual(expected.counts());
    // Not a vacuous comparison: every metric counted something in every variation.
    for (const [eventKey, byVariation] of Object.entries(counts.metrics))
      for (const [variation, cells] of Object.entries(byVariation))
        expect(cells.converters, `${eventKey}/${variation}`).toBeGreaterThan(0);

    // ---------------------------------------------------------------- phase C: redelivery
    // Every SDK batch again, byte for byte (same uuids) — what an SDK retry after a lost
    // response does — and the browser requests whose events carried uuids.
    const sdkBatches = dispatched.map((d) => d.payload);
    expect(sdkBatches.length).toBeGreaterThan(sdkImpressionBatches);
    for (const payload of sdkBatches) {
      const again = await postSdkBatch(payload);
      expect(again.status, again.body).toBe(204);
    }
    for (const { browser, body } of browserBodies) {
      const withUuid = (body as Json[]).filter((e) => typeof e.uuid === "string");
      if (withUuid.length > 0) await sendBrowserEvents(browser, withUuid);
    }
    // A sentinel queued after the duplicates: once it is counted, the queue has delivered
    // everything before it (FIFO), duplicates included.
    let sentinel: Browser | null = null;
    for (let n = 0; n < 50 && !sentinel; n++) {
      const browser: Browser = { index: -1, cookies: new Map(), visitorId: "", variation: null };
      const page = await view(browser, "/");
      browser.variation = decisionsOf(page.response).get("headline") ?? null;
      browser.visitorId = browser.cookies.get("ss_vid")!;
      if (browser.variation) {
        expected.impression(browser.visitorId, browser.variation, page.after);
        sentinel = browser;
      }
    }
    expect(sentinel).not.toBeNull();
    const final = expected.counts();
    counts = await waitForResultCounts(experiment.id, final);
    expect(counts, "after redelivery (+ the sentinel visitor)").toEqual(final);
    // ... and it stays that way.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    counts = await waitForResultCounts(experiment.id, final, { timeoutMs: 0 });
    expect(counts).toEqual(final);
  }, 180_000);
});
