/**
 * The client script in a real browser: headless Chromium against the demo shop behind
 * `wrangler dev` (test/browser/harness.ts), with demo/datafile.json plus a single-page-app page
 * (`url_changed`), a `dom_changed` page, a manual page with `move` changes, a pageview goal for
 * the SPA page and both integrations on. Events go through the real endpoint, queue and consumer into the local D1 aggregates.
 *
 * The feature flags of test/fixtures/datafiles/flags.json are added (their A/B rule forces
 * `qa-variant` into its "semantic" variation), plus a flag released to visitors whose custom
 * attribute `plan` is "beta", for the client's flag API (`get("flags")`, `isEnabled`,
 * `getVariable`) and its refresh through `/_ss/decide`.
 *
 * The visitor is `qa-variant`, whom every demo experiment forces into its changing variation.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { decodeAttributes } from "../../src/edge/visitor";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import {
  CHROME_UA,
  chromiumPath,
  eventually,
  launchChromium,
  repoRoot,
  startDemo,
  type Demo,
} from "./harness";

const VISITOR = "qa-variant";

// The page.evaluate callbacks run in the browser; its globals, loosely typed for the Node
// type-check of this file.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const window: any, document: any, history: any, location: any;

/** demo/datafile.json plus what the demo lacks: SPA pages, a pageview goal, integrations. */
function testDatafile(): Record<string, unknown> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const d = JSON.parse(readFileSync(join(repoRoot, "demo", "datafile.json"), "utf8")) as any;
  const experiment = (id: string, key: string, variationKeys: [string, string]) => ({
    id,
    key,
    status: "Running",
    layerId: `l${id}`,
    variations: variationKeys.map((k, i) => ({ id: `${id}${i + 1}`, key: k })),
    trafficAllocation: [
      { entityId: `${id}1`, endOfRange: 5000 },
      { entityId: `${id}2`, endOfRange: 10000 },
    ],
    audienceIds: [],
    forcedVariations: { "qa-original": variationKeys[0], "qa-variant": variationKeys[1] },
  });
  // The demo's home page conditions name fixed ports; here the Worker runs on a free one.
  d.web.pages
    .find((p: { id: string }) => p.id === "p_home")
    .conditions.push({ match: "regex", value: "^https?://[^/]+/(?:[?#].*)?$" });
  d.experiments.push(
    experiment("1009", "spa_compare", ["control", "compare_box"]),
    experiment("1010", "late_widget", ["control", "loud_widget"]),
    experiment("1011", "move_demo", ["control", "moved"]),
  );
  d.events.push(
    { id: "2004", key: "compare_view", experimentIds: ["1009"] },
    { id: "2005", key: "left_page", experimentIds: ["1007"] },
    { id: "2006", key: "early_bird", experimentIds: ["1007"] },
    { id: "2007", key: "resent", experimentIds: ["1007"] },
  );
  d.web.pages.push(
    {
      id: "p_compare",
      key: "compare",
      activation: "url_changed",
      conditions: ["or", { match: "substring", value: "view=compare" }],
    },
    {
      id: "p_late",
      key: "late",
      activation: "dom_changed",
      selector: "#ss-late",
      conditions: ["or", { match: "regex", value: "^https?://[^/]+/products/\\d" }],
    },
    {
      id: "p_move",
      key: "move",
      activation: "manual",
      conditions: ["or", { match: "substring", value: "move=1" }],
    },
  );
  d.web.experiments.push(
    {
      id: "1009",
      type: "ab",
      pageIds: ["p_compare"],
      metrics: [{ eventId: "2004", aggregator: "unique" }],
      variations: [
        { id: "10091", changes: [] },
        {
          id: "10092",
          changes: [
            {
              type: "insert_html",
              selector: ".product-info",
              position: "append",
              html: '<p id="ss-compare">Compare with the other packs</p>',
            },
            { type: "custom_css", value: "#ss-compare{font-weight:700}" },
          ],
        },
      ],
    },
    {
      id: "1010",
      type: "ab",
      pageIds: ["p_late"],
      metrics: [{ eventId: "2003", aggregator: "count" }],
      variations: [
        { id: "10101", changes: [] },
        {
          id: "10102",
          changes: [
            {
              type: "attribute",
              selector: "#ss-late",
              attributes: { text: "Loud widget", addClass: "loud" },
            },
            {
              // Table rows must be parsed in their table's context (not as body content).
              type: "insert_html",
              selector: "#ss-late-table tbody",
              position: "append",
              html: '<tr id="ss-late-row"><td>Added row</td></tr>',
            },
            {
              type: "insert_html",
              selector: "#ss-late-table tr",
              position: "after",
              html: '<tr class="ss-after-row"><td>After</td></tr>',
            },
          ],
        },
      ],
    },
    {
      id: "1011",
      type: "ab",
      pageIds: ["p_move"],
      metrics: [{ eventId: "2003", aggregator: "count" }],
      variations: [
        { id: "10111", changes: [] },
        {
          id: "10112",
          changes: [
            // up
            {
              type: "move",
              selector: ".product-info .stock",
              target: ".product-info h1",
              position: "before",
              html: '<p class="stock">captured</p>',
            },
            // down
            {
              type: "move",
              selector: ".product-info .tagline",
              target: "#buy",
              position: "after",
              html: '<p class="tagline">captured</p>',
            },
            // into another element
            {
              type: "move",
              selector: "#buy",
              target: ".product-gallery",
              position: "append",
              html: '<button id="buy">captured</button>',
            },
            // not in the page: the captured HTML goes in its place
            {
              type: "move",
              selector: "#ss-nowhere",
              target: ".product-info h1",
              position: "after",
              html: '<p id="ss-moved-copy">Moved copy</p>',
            },
            // several targets: the live element to the first, copies to the others
            {
              type: "move",
              selector: ".product-info .price",
              target: ".product-info li",
              position: "after",
              html: '<span class="price" data-copy="">$34</span>',
            },
            // several matches: the first moves, the others are removed (the edge removes them all
            // and inserts the captured HTML)
            {
              type: "move",
              selector: ".footer-social a",
              target: ".site-footer .container",
              position: "prepend",
              html: '<a href="#" class="ss-captured">captured</a>',
            },
            // into itself: skipped
            {
              type: "move",
              selector: ".product",
              target: ".product-info",
              position: "prepend",
              html: '<div class="product">captured</div>',
            },
            // a moved element is not matched by a later change
            {
              type: "attribute",
              selector: ".stock, #buy",
              attributes: { addClass: "ss-matched-again" },
            },
          ],
        },
      ],
    },
  );
  d.web.events.push(
    { id: "2004", type: "pageview", pageId: "p_compare" },
    { id: "2005", type: "custom" },
    { id: "2006", type: "custom" },
    { id: "2007", type: "custom" },
  );
  d.web.integrations = { dataLayer: true, segment: true };

  // Feature flags: the fixture's flags and their A/B rule (experiment 3001, no page), and
  // beta_banner, on for visitors whose stored attribute `plan` is "beta".
  d.featureFlags = [
    ...structuredClone(flagsDatafile.featureFlags),
    {
      id: "f_beta",
      key: "beta_banner",
      rolloutId: "r_beta",
      experimentIds: [],
      variables: [{ id: "fv_beta_text", key: "text", type: "string", defaultValue: "Welcome" }],
    },
  ];
  d.rollouts = [
    ...structuredClone(flagsDatafile.rollouts),
    {
      id: "r_beta",
      experiments: [
        {
          id: "rule_beta",
          key: "beta_testers",
          status: "Running",
          layerId: "r_beta",
          variations: [
            {
              id: "rv_beta_on",
              key: "on",
              featureEnabled: true,
              variables: [{ id: "fv_beta_text", value: "Hello, beta tester" }],
            },
          ],
          trafficAllocation: [{ entityId: "rv_beta_on", endOfRange: 10000 }],
          audienceIds: ["aud_beta"],
          forcedVariations: {},
        },
        {
          id: "rule_beta_all",
          key: "beta_everyone_else",
          status: "Running",
          layerId: "r_beta",
          variations: [{ id: "rv_beta_off", key: "off", featureEnabled: false, variables: [] }],
          trafficAllocation: [{ entityId: "rv_beta_off", endOfRange: 10000 }],
          audienceIds: [],
          forcedVariations: {},
        },
      ],
    },
  ];
  d.experiments.push(structuredClone(flagsDatafile.experiments.find((e) => e.id === "3001")));
  d.attributes.push(...structuredClone(flagsDatafile.attributes), { id: "attr_plan", key: "plan" });
  d.typedAudiences.push(...structuredClone(flagsDatafile.typedAudiences), {
    id: "aud_beta",
    name: "Beta testers",
    conditions: ["and", { type: "custom_attribute", name: "plan", match: "exact", value: "beta" }],
  });
  return d;
}

/**
 * The JSON bodies of the POST /_ss/events requests the pages sent, once answered (a test that
 * closes its browser context right after cannot cut one off midway). Beacons sent while a page
 * unloads are not reported to playwright: those are checked in D1.
 */
function eventLog(context: BrowserContext): Array<{ events: Array<Record<string, unknown>> }> {
  const log: Array<{ events: Array<Record<string, unknown>> }> = [];
  context.on("response", (response) => {
    const request = response.request();
    if (request.method() === "POST" && new URL(request.url()).pathname === "/_ss/events") {
      try {
        log.push(JSON.parse(request.postData() ?? "{}"));
      } catch {
        // not JSON: ignored
      }
    }
  });
  return log;
}

const sent = (log: ReturnType<typeof eventLog>) => log.flatMap((b) => b.events);

const haveChromium = chromiumPath() !== null;
if (!haveChromium && process.env.CI)
  throw new Error("the browser tests need Chromium: apt-get install -y chromium");

describe.skipIf(!haveChromium)("client.js in Chromium, demo shop through wrangler dev", () => {
  let demo: Demo;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    const [started, launched] = await Promise.allSettled([
      startDemo(testDatafile()),
      launchChromium(),
    ]);
    if (started.status === "fulfilled") demo = started.value;
    if (launched.status === "fulfilled") chromium = launched.value;
    for (const result of [started, launched]) if (result.status === "rejected") throw result.reason;
  });

  afterAll(async () => {
    await chromium?.close();
    await demo?.stop();
  });

  async function open(
    path: string,
    options: {
      base?: string;
      viewport?: { width: number; height: number };
      /** runs in the page before any of its scripts */
      init?: () => void;
    } = {},
  ): Promise<{ context: BrowserContext; page: Page; log: ReturnType<typeof eventLog> }> {
    const base = options.base ?? demo.url;
    const context = await chromium.browser.newContext({
      userAgent: CHROME_UA,
      viewport: options.viewport ?? { width: 1280, height: 800 },
    });
    await context.addCookies([{ name: "ss_vid", value: VISITOR, url: base }]);
    // A stand-in for Segment's analytics.js, recording track calls.
    await context.addInitScript(() => {
      const calls: unknown[] = [];
      Object.assign(window, {
        analytics: { track: (...args: unknown[]) => calls.push(args) },
        segmentCalls: calls,
      });
    });
    const log = eventLog(context);
    const page = await context.newPage();
    if (options.init) await page.addInitScript(options.init);
    page.on("pageerror", (error) => console.error(`page error on ${path}:`, error));
    await page.goto(base + path);
    await page.waitForFunction(() => typeof window.splitstream?.get === "function");
    return { context, page, log };
  }

  it("home: the queue before load, state API, dataLayer and Segment for the edge's decisions, optimizely shim", async () => {
    // A command queued before /_ss/client.js has loaded.
    const { context, page, log } = await open("/", {
      init: () => {
        window.splitstream = [{ type: "event", eventName: "early_bird", tags: { early: true } }];
      },
    });
    try {
      await eventually(() => sent(log).find((e) => e.key === "early_bird"), 5000, "queued event");
      expect(sent(log).find((e) => e.key === "early_bird")).toMatchObject({
        tags: { early: true },
      });
      const state = await page.evaluate(() => {
        const w = window;
        const s = w.splitstream.get("state");
        const o = w.optimizely.get("state");
        return {
          visitorId: s.visitorId,
          active: s.getActiveExperimentIds(),
          variations: s.getVariationMap(),
          shimActive: o.getActiveExperimentIds(),
          shimVariations: o.getVariationMap(),
        };
      });
      expect(state.visitorId).toBe(VISITOR);
      expect(state.active).toEqual(expect.arrayContaining(["1001", "1006", "1007"]));
      expect(state.variations["1001"]).toMatchObject({ id: "1102", key: "lifestyle_image" });
      expect(state.shimActive).toEqual(state.active);
      expect(state.shimVariations).toEqual(state.variations);

      // One dataLayer entry and one Segment call per active experiment, once the config is in.
      const dataLayer = await eventually(
        () =>
          page.evaluate(() => {
            const entries = (window.dataLayer ?? []) as Array<Record<string, unknown>>;
            return entries.length >= 3 ? entries : null;
          }),
        5000,
        "dataLayer entries",
      );
      expect(dataLayer).toContainEqual({
        event: "experiment_impression",
        experiment_id: "1001",
        experiment_key: "home_hero",
        variation_id: "1102",
        variation_key: "lifestyle_image",
      });
      expect(dataLayer.map((e) => e.experiment_id).sort()).toEqual(state.active.sort());
      const segment = await page.evaluate(() => window.segmentCalls);
      expect(segment).toContainEqual([
        "Experiment Viewed",
        {
          experiment_id: "1001",
          experiment_name: "home_hero",
          variation_id: "1102",
          variation_name: "lifestyle_image",
        },
      ]);

      // An event through the Optimizely-style API: revenue in cents out of the tags.
      await page.evaluate(() =>
        window.optimizely.push({
          type: "event",
          eventName: "purchase",
          tags: { revenue: 4200, plan: "pro" },
        }),
      );
      await eventually(() => sent(log).find((e) => e.key === "purchase"), 5000, "purchase sent");
      expect(sent(log).find((e) => e.key === "purchase")).toMatchObject({
        key: "purchase",
        revenue: 4200,
        tags: { plan: "pro" },
        uuid: expect.stringMatching(/^[0-9a-f]{32}$/),
      });
      // The edge counted the immediate impressions: the client sends none for them.
      expect(sent(log).filter((e) => e.type === "impression")).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it("the shim is off on a route that does not enable it", async () => {
    const { context, page } = await open("/", { base: demo.localhostUrl });
    try {
      expect(await page.evaluate(() => typeof window.optimizely)).toBe("undefined");
    } finally {
      await context.close();
    }
  });

  it("manual activation: nothing until the page activates, then changes + one impression; click goal", async () => {
    // A short viewport: the reviews start below the fold, the demo activates when they show.
    const { context, page, log } = await open("/products/1", {
      viewport: { width: 1000, height: 300 },
    });
    try {
      await page.waitForTimeout(300);
      expect(await page.textContent("#reviews h2")).toBe("Reviews");
      expect(await page.evaluate(() => document.documentElement.dataset.reviews)).toBeUndefined();
      const before = await page.evaluate(() =>
        window.splitstream.get("state").getActiveExperimentIds(),
      );
      expect(before).not.toContain("1005");

      await page.locator("#reviews").scrollIntoViewIfNeeded();
      await page.waitForSelector("text=What hikers say");
      // custom_code ran, with the page's DOM in place
      await page.waitForFunction(() => document.documentElement.dataset.reviews === "summary");
      // Activating again changes nothing and sends nothing more.
      await page.evaluate(() =>
        window.splitstream.push({ type: "activate", experimentKey: "product_reviews" }),
      );
      expect(await page.locator("#reviews").count()).toBe(1);
      const after = await page.evaluate(() =>
        window.splitstream.get("state").getActiveExperimentIds(),
      );
      expect(after).toContain("1005");

      // Click goal: #buy (the edge's big_buy_button variation is on it).
      await page.locator("#buy").click();
      await eventually(() => sent(log).find((e) => e.key === "buy_click"), 5000, "buy_click");
      const impressions = sent(log).filter((e) => e.type === "impression");
      expect(impressions).toEqual([
        expect.objectContaining({ type: "impression", experimentId: "1005", variationId: "1502" }),
      ]);
      const dataLayer = await page.evaluate(() => window.dataLayer);
      expect(dataLayer).toContainEqual(
        expect.objectContaining({ experiment_id: "1005", variation_key: "reviews_summary" }),
      );
    } finally {
      await context.close();
    }
  });

  it("SPA: url_changed decides through the edge, applies, counts the pageview goal; dom_changed", async () => {
    const { context, page, log } = await open("/products/2");
    try {
      // Not decided at page load: the URL did not match the SPA page then.
      const decided = await page.evaluate(() =>
        window.splitstream
          .get("state")
          .getDecisions()
          .map((d: { experimentId: string }) => d.experimentId),
      );
      expect(decided).not.toContain("1009");

      const decide = page.waitForResponse((r) => r.url().includes("/_ss/decide?"));
      await page.evaluate(() => history.pushState({}, "", "/products/2?view=compare"));
      expect((await decide).status()).toBe(200);
      await page.waitForSelector("#ss-compare");
      await eventually(
        () => sent(log).find((e) => e.key === "compare_view"),
        5000,
        "pageview goal",
      );
      await eventually(
        () => sent(log).find((e) => e.type === "impression" && e.experimentId === "1009"),
        5000,
        "SPA impression",
      );

      // Away and back: the page deactivates and activates again, no second change or impression.
      await page.evaluate(() => history.back());
      await page.waitForFunction(() => !location.search);
      await page.evaluate(() => history.forward());
      await page.waitForFunction(() => location.search === "?view=compare");
      await page.waitForTimeout(200);
      expect(await page.locator("#ss-compare").count()).toBe(1);

      // dom_changed: the page activates when its element appears.
      await page.evaluate(() => {
        const el = document.createElement("div");
        el.id = "ss-late";
        el.textContent = "Quiet widget";
        const table = document.createElement("table");
        table.id = "ss-late-table";
        table.innerHTML = "<tbody><tr><td>First row</td></tr></tbody>";
        document.querySelector("main")!.append(table, el);
      });
      await page.waitForSelector("#ss-late.loud");
      expect(await page.textContent("#ss-late")).toBe("Loud widget");
      // Rows inserted as rows: inside the tbody, in order, cells intact.
      expect(
        await page.evaluate(() =>
          [...document.querySelectorAll("#ss-late-table tbody > tr")].map(
            (tr: {
              id: string;
              className: string;
              cells: { length: number };
              textContent: string;
            }) => `${tr.id || tr.className || "-"}:${tr.cells.length}:${tr.textContent}`,
          ),
        ),
      ).toEqual(["-:1:First row", "ss-after-row:1:After", "ss-late-row:1:Added row"]);
      await page.waitForTimeout(1500);
      const impressions = sent(log)
        .filter((e) => e.type === "impression")
        .map((e) => e.experimentId);
      // 1009 and 1010 once each (1005 too: the demo activates the reviews once they are visible)
      expect(impressions.filter((id) => id !== "1005").sort()).toEqual(["1009", "1010"]);
    } finally {
      await context.close();
    }
  });

  it("manual activation of move changes: up, down, into, a missing source's HTML, copies, several matches; re-runs change nothing", async () => {
    const { context, page } = await open("/products/3?move=1");
    try {
      /** The product's layout: `tag.class#id` of the info's and the gallery's children. */
      const layout = () =>
        page.evaluate(() => {
          const describe = (el: { tagName: string; id: string; classList: string[] }) =>
            el.tagName.toLowerCase() +
            [...el.classList].map((c: string) => "." + c).join("") +
            (el.id ? "#" + el.id : "");
          const children = (selector: string) =>
            [...document.querySelector(selector).children].map(describe);
          return {
            info: children(".product-info"),
            gallery: children(".product-gallery"),
            list: children(".product-info ul"),
          };
        });
      await page.evaluate(() => {
        window.liveBuy = document.getElementById("buy");
        window.livePrice = document.querySelector(".product-info .price");
        window.liveBuy.addEventListener("ss-test", () => (window.listened = true));
        window.liveSocial = document.querySelector(".footer-social a");
      });
      const before = await layout();
      const buy = before.info[5]!; // with the classes the edge's big_buy_button gave it
      expect(buy).toMatch(/^button\..*#buy$/);
      expect(before.info).toEqual([
        "span.ss-badge",
        "h1",
        "p.tagline",
        "span.price",
        "p.stock",
        buy,
        "p.ss-trust",
        "ul",
      ]);
      expect(before.gallery).toEqual(["img#product-image"]);

      await page.evaluate(() =>
        window.splitstream.push({ type: "activate", experimentKey: "move_demo" }),
      );
      await page.waitForSelector("#ss-moved-copy");
      const moved = {
        info: [
          "span.ss-badge",
          "p.stock",
          "h1",
          "p#ss-moved-copy",
          "p.tagline",
          "p.ss-trust",
          "ul",
        ],
        gallery: ["img#product-image", buy],
        list: ["li", "span.price", "li", "span.price", "li", "span.price"],
      };
      expect(await layout()).toEqual(moved);
      // The live elements moved (listeners kept); the other targets got the captured HTML.
      expect(
        await page.evaluate(() => {
          const prices = [...document.querySelectorAll(".product-info ul .price")];
          window.liveBuy.dispatchEvent(new Event("ss-test"));
          return {
            buy: document.getElementById("buy") === window.liveBuy,
            listened: window.listened === true,
            price: prices[0] === window.livePrice,
            copies: prices.map((p: { hasAttribute(n: string): boolean }) =>
              p.hasAttribute("data-copy"),
            ),
            liveText: window.livePrice.textContent,
            matchedAgain: document.querySelectorAll(".ss-matched-again").length,
            social: {
              first:
                document.querySelector(".site-footer .container").firstElementChild ===
                window.liveSocial,
              moved: document.querySelectorAll(".site-footer .container > a").length,
              left: document.querySelectorAll(".footer-social a").length,
              captured: document.querySelectorAll(".ss-captured").length,
            },
          };
        }),
      ).toEqual({
        buy: true,
        listened: true,
        price: true,
        copies: [false, true, true],
        liveText: "$34 $42",
        matchedAgain: 0,
        social: { first: true, moved: 1, left: 0, captured: 0 },
      });

      // Re-runs (every DOM change, a second activation) move and copy nothing again.
      const product = () => page.evaluate(() => document.querySelector(".product").outerHTML);
      const settled = await product();
      await page.evaluate(() => {
        document.body.append(document.createElement("div"));
        window.splitstream.push({ type: "activate", experimentKey: "move_demo" });
      });
      await page.waitForTimeout(300);
      expect(await product()).toBe(settled);
      // A target that appears later gets its copy, once; those already served get none.
      await page.evaluate(() => {
        const li = document.createElement("li");
        li.textContent = "Late feature";
        document.querySelector(".product-info ul").append(li);
      });
      await page.waitForFunction(
        () => document.querySelector(".product-info ul").lastElementChild.tagName === "SPAN",
      );
      await page.waitForTimeout(300);
      expect((await layout()).list).toEqual([...moved.list, "li", "span.price"]);
      expect((await layout()).info).toEqual(moved.info);
    } finally {
      await context.close();
    }
  });

  it("delivery: a 503 is retried with the same uuid; an event queued as the page unloads arrives by beacon", async () => {
    const { context, page, log } = await open("/products/3");
    try {
      let refused = 0;
      await page.route("**/_ss/events", (route) =>
        refused++ === 0 ? route.fulfill({ status: 503, body: "" }) : route.fallback(),
      );
      await page.evaluate(() =>
        window.splitstream.push({ type: "event", eventName: "purchase", revenue: 700 }),
      );
      await eventually(
        () => sent(log).filter((e) => e.revenue === 700).length >= 2,
        10_000,
        "retry after 503",
      );
      const tries = sent(log).filter((e) => e.revenue === 700);
      expect(new Set(tries.map((e) => e.uuid)).size).toBe(1); // the same event, same uuid
      await page.unroute("**/_ss/events");

      // Queued, then the page is left for one without the client script (a 404): only the
      // beacon sent while the page unloads can deliver the event.
      await page.evaluate(() => {
        window.splitstream.push({ type: "event", eventName: "left_page" });
        location.href = "/no-such-page";
      });
      await page.waitForURL(/no-such-page/);
      await eventually(
        async () =>
          (
            await demo.query<{ n: number }>(
              "SELECT COALESCE(SUM(events), 0) AS n FROM metric_daily WHERE event_id = '2005'",
            )
          )[0]!.n > 0,
        20_000,
        "the beaconed event in D1",
      );
    } finally {
      await context.close();
    }
  });

  it("delivery: an event no response confirmed is sent again by the next page of the tab, same uuid, counted once", async () => {
    const { context, page } = await open("/products/3");
    try {
      // Every POST fails while routed; each attempt is recorded with the page it came from.
      const attempts: Array<{ from: string; body: string }> = [];
      await page.route("**/_ss/events", (route) => {
        let from = "";
        try {
          from = new URL(route.request().frame().url()).pathname;
        } catch {
          // a beacon has no frame
        }
        attempts.push({ from, body: route.request().postData() ?? "" });
        return route.fulfill({ status: 503, body: "" });
      });
      await page.evaluate(() => window.splitstream.push({ type: "event", eventName: "resent" }));
      const first = await eventually(
        () => attempts.find((a) => a.from === "/products/3" && a.body.includes('"resent"')),
        10_000,
        "the first, refused attempt",
      );
      const uuid = (
        JSON.parse(first.body) as { events: Array<{ key?: string; uuid: string }> }
      ).events.find((e) => e.key === "resent")!.uuid;
      const stored = async (): Promise<string> =>
        (await page.evaluate(() => sessionStorage.getItem("ss_q") as string | null)) ?? "";
      expect(await stored()).toContain(uuid);

      // The next page of the tab picks it up from sessionStorage and sends it again.
      await page.goto(`${demo.url}/`);
      await eventually(
        () => attempts.find((a) => a.from === "/" && a.body.includes(uuid)),
        10_000,
        `the next page sending the stored event (attempts: ${JSON.stringify(attempts.map((a) => a.from))})`,
      );
      await page.unroute("**/_ss/events");
      // Delivered on a retry (backoff 2 s), then no longer stored.
      await eventually(async () => !(await stored()).includes(uuid), 15_000, "confirmation");
      // However many copies reached the server (a beacon may have gone out as page 1 unloaded),
      // the uuid is counted once: one stored conversion, one row in the aggregate.
      await eventually(
        async () =>
          (
            await demo.queryShards<{ n: number }>(
              "SELECT COUNT(*) AS n FROM conversions WHERE uuid = ?",
              uuid,
            )
          ).reduce((n, row) => n + row.n, 0) === 1,
        20_000,
        "the event in its visitor's shard",
      );
      const aggregated = await demo.query<{ n: number }>(
        "SELECT COALESCE(SUM(events), 0) AS n FROM metric_daily WHERE event_id = '2007' AND experiment_id = '1007'",
      );
      expect(aggregated[0]!.n).toBe(1);
      const seen = await demo.queryShards<{ n: number }>(
        "SELECT COUNT(*) AS n FROM seen_events WHERE uuid = ?",
        uuid,
      );
      expect(seen.reduce((n, row) => n + row.n, 0)).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('feature flags: get("flags"), isEnabled, getVariable; refreshed by /_ss/decide after an SPA navigation', async () => {
    const { context, page } = await open("/products/1", {
      // A </script> inside a variable value must not have run anything.
      init: () => {
        window.alerted = [];
        window.alert = (m: unknown) => window.alerted.push(m);
      },
    });
    try {
      const read = () =>
        page.evaluate(() => {
          const s = window.splitstream;
          const config = s.getVariable("search_ranking", "config");
          config.facets.push("mutated"); // a copy: the next read is unchanged
          return {
            flags: s.get("flags"),
            enabled: [
              "search_ranking",
              "dark_mode",
              "new_checkout",
              "nope",
              "__proto__",
              "toString",
            ].map((k: string) => s.isEnabled(k)),
            boost: s.getVariable("search_ranking", "boost"),
            results: s.getVariable("search_ranking", "results"),
            config: s.getVariable("search_ranking", "config"),
            express: s.getVariable("new_checkout", "express"),
            unknown: [
              s.getVariable("search_ranking", "nope"),
              s.getVariable("nope", "boost"),
              s.getVariable("search_ranking", "__proto__"),
              s.getVariable("search_ranking", "toString"),
            ],
            beta: s.isEnabled("beta_banner"),
            betaText: s.getVariable("beta_banner", "text"),
            alerted: window.alerted,
          };
        });
      const before = await read();
      expect(before.enabled).toEqual([true, true, false, false, false, false]);
      expect(before.boost).toBe(1.5);
      expect(before.results).toBe(25);
      expect(before.config).toEqual({
        facets: ["brand", "price"],
        note: "</script><script>alert(1)</script><!--",
      });
      expect(before.express).toBe(false);
      expect(before.unknown).toEqual([null, null, null, null].map(() => undefined));
      expect(before.alerted).toEqual([]);
      expect(before.flags.search_ranking).toEqual({
        enabled: true,
        variationKey: "semantic",
        variables: {
          algorithm: "semantic",
          boost: 1.5,
          results: 25,
          config: { facets: ["brand", "price"], note: "</script><script>alert(1)</script><!--" },
        },
      });
      expect(before.flags.legacy_banner).toEqual({
        enabled: false,
        variationKey: null,
        variables: { limit: 7 },
      });
      expect(before.flags.new_checkout).toMatchObject({ enabled: false, variationKey: "off" });
      expect(Object.keys(before.flags)).toEqual([
        "new_checkout",
        "search_ranking",
        "dark_mode",
        "half_release",
        "legacy_banner",
        "beta_banner",
      ]);
      expect([before.beta, before.betaText]).toEqual([false, "Welcome"]);

      // A stored attribute makes the visitor a beta tester from the edge's next decision on: the
      // SPA navigation's /_ss/decide brings the refreshed flags.
      await page.evaluate(() =>
        window.splitstream.push({ type: "user", attributes: { plan: "beta" } }),
      );
      const decide = page.waitForResponse((r) => r.url().includes("/_ss/decide?"));
      await page.evaluate(() => history.pushState({}, "", "/products/1?view=compare"));
      const answer = (await (await decide).json()) as { f?: Array<{ k: string }> };
      expect(answer.f?.find((f) => f.k === "beta_banner")).toMatchObject({ e: 1, v: "on" });
      await page.waitForFunction(() => window.splitstream.isEnabled("beta_banner"));
      const after = await read();
      expect([after.beta, after.betaText]).toEqual([true, "Hello, beta tester"]);
      expect(after.flags.beta_banner).toEqual({
        enabled: true,
        variationKey: "on",
        variables: { text: "Hello, beta tester" },
      });
      // The rest is as the edge decided it before (the A/B rule is sticky).
      expect(after.flags.search_ranking).toEqual(before.flags.search_ranking);
    } finally {
      await context.close();
    }
  });

  it("user attributes land in ss_attrs in the edge's format; opt-out turns the edge off", async () => {
    const { context, page } = await open("/");
    try {
      const attrs = async () =>
        decodeAttributes(
          (await context.cookies()).find((c) => c.name === "ss_attrs")?.value ?? undefined,
        );
      await page.evaluate(() =>
        window.splitstream.push({
          type: "user",
          attributes: { plan: "pro", visits: 3, "geo.country": "XX" },
        }),
      );
      // The edge ignores request-attribute names such as geo.* (they cannot be spoofed).
      expect(await attrs()).toEqual({ plan: "pro", visits: 3 });
      await page.evaluate(() =>
        window.splitstream.push({ type: "user", attributes: { visits: 4, plan: null } }),
      );
      expect(await attrs()).toEqual({ visits: 4 });

      await page.evaluate(() => window.splitstream.push({ type: "optOut" }));
      expect((await context.cookies()).find((c) => c.name === "ss_optout")?.value).toBe("1");
      await page.reload();
      // Opted out: the original page, no bootstrap, no client script.
      expect(await page.evaluate(() => typeof window.__ss)).toBe("undefined");
      expect(await page.locator("script[src^='/_ss/client.js']").count()).toBe(0);
    } finally {
      await context.close();
    }
  });

  it("the events reach the D1 aggregates", async () => {
    onTestFailed(async () => {
      console.error(
        "exposures:",
        JSON.stringify(await demo.queryShards("SELECT * FROM exposures")),
      );
      console.error(
        "seen_events:",
        JSON.stringify(await demo.queryShards("SELECT * FROM seen_events")),
      );
      console.error(
        "metric_daily:",
        JSON.stringify(await demo.query("SELECT * FROM metric_daily")),
      );
      console.error("wrangler dev output:\n" + demo.output());
    });
    type Row = { experiment_id: string; variation_id: string };
    const exposures = await eventually(
      async () => {
        const rows = await demo.queryShards<Row>(
          "SELECT experiment_id, variation_id FROM exposures WHERE sdk_key = 'demo' AND visitor_id = ?",
          VISITOR,
        );
        const ids = new Set(rows.map((r) => r.experiment_id));
        return ["1001", "1002", "1005", "1009", "1010"].every((id) => ids.has(id)) ? rows : null;
      },
      20_000,
      "exposures",
    );
    // client impressions (manual, url_changed, dom_changed) next to the edge's (immediate)
    expect(exposures).toEqual(
      expect.arrayContaining([
        { experiment_id: "1005", variation_id: "1502" },
        { experiment_id: "1009", variation_id: "10092" },
        { experiment_id: "1010", variation_id: "10102" },
        { experiment_id: "1002", variation_id: "1202" },
      ]),
    );
    type Metric = { experiment_id: string; event_id: string; converters: number; revenue: number };
    const metrics = await eventually(
      async () => {
        const rows = await demo.query<Metric>(
          `SELECT experiment_id, event_id, SUM(converters) AS converters, SUM(revenue_sum) AS revenue
           FROM metric_daily WHERE sdk_key = 'demo' GROUP BY experiment_id, event_id`,
        );
        const find = (e: string, ev: string) =>
          rows.find((r) => r.experiment_id === e && r.event_id === ev);
        return find("1002", "2001") &&
          find("1009", "2004") &&
          (find("1001", "2003")?.revenue ?? 0) >= 4200 + 700
          ? rows
          : null;
      },
      20_000,
      "metric_daily",
    );
    const find = (e: string, ev: string) =>
      metrics.find((r) => r.experiment_id === e && r.event_id === ev)!;
    expect(find("1002", "2001").converters).toBe(1); // buy_click, one visitor
    expect(find("1005", "2001").converters).toBe(1); // attributed to the manual experiment too
    expect(find("1009", "2004").converters).toBe(1); // the SPA pageview goal
    expect(find("1001", "2003").revenue).toBe(4200 + 700); // each purchase once (uuids)
  });

  it("cached variants: a page served from the Cache API runs the client with the visitor's own state", async () => {
    // `?cacheable`: the demo origin marks the page public (docs/caching.md). Two browsers of the
    // same visitor: the first fills the cache, the second is served from it.
    const views: Array<{ cache: string | null; cacheControl: string | null; state: unknown }> = [];
    for (let i = 0; i < 2; i++) {
      const context = await chromium.browser.newContext({ userAgent: CHROME_UA });
      try {
        await context.addCookies([{ name: "ss_vid", value: VISITOR, url: demo.url }]);
        const page = await context.newPage();
        const errors: string[] = [];
        page.on("pageerror", (error) => errors.push(String(error)));
        const response = await page.goto(`${demo.url}/?cacheable`);
        await page.waitForFunction(() => typeof window.splitstream?.get === "function");
        const state = await page.evaluate(() => {
          const s = window.splitstream.get("state");
          return {
            visitorId: s.visitorId,
            active: s.getActiveExperimentIds().sort(),
            hero: s.getVariationMap()["1001"]?.key,
            h1: document.querySelector("h1")?.textContent ?? null,
            bootstraps: document.querySelectorAll("#ss-bootstrap").length,
          };
        });
        expect(errors).toEqual([]);
        views.push({
          cache: response!.headers()["x-ss-cache"] ?? null,
          cacheControl: response!.headers()["cache-control"] ?? null,
          state,
        });
      } finally {
        await context.close();
      }
    }
    expect(views.map((v) => v.cache)).toEqual(["miss", "hit"]);
    expect(views[1]!.state).toEqual(views[0]!.state);
    expect(views[1]!.state).toMatchObject({
      visitorId: VISITOR,
      hero: "lifestyle_image",
      bootstraps: 1,
    });
    for (const v of views) expect(v.cacheControl).toMatch(/^private/);
  });
});
