/**
 * The whole experimentation journey in headless Chromium through `wrangler dev`
 * (test/browser/harness.ts), as docs/admin.md describes it: the demo shop seeded as real data
 * (scripts/demo-seed.mjs), an editor signs in, creates an A/B experiment on the home page through
 * the experiment form (one attribute change, the purchase event as its metric, every visitor in
 * the variation), starts it; a fresh visitor gets the changed page from the edge and buys; the
 * experiment page then counts the visitor and the conversion.
 *
 * Every admin page visited is checked with axe (test/browser/a11y.ts: no WCAG 2 A/AA violation),
 * must log no console error and fail no request, and is saved as admin-<name>.png (docs/images
 * for docs/admin.md "Screenshots" with SPLITSTREAM_DOC_SCREENSHOTS=1, else test-results/).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessibilityViolations, describeViolations } from "./a11y";
import {
  CHROME_UA,
  chromiumPath,
  demoDatafileAnyPort,
  eventually,
  launchChromium,
  SCREENSHOTS_DIR,
  seedDemoProject,
  startDemo,
  type Demo,
} from "./harness";

const TOKEN = "browser-admin"; // the harness's ADMIN_TOKEN
const EXPERIMENT_KEY = "journey_headline";
const VARIATION_KEY = "new_headline";
/** The "Why Trailhead?" heading of demo/site/index.html: no demo experiment changes it. */
const SELECTOR = "main > section:nth-of-type(4) > h2";
const NEW_TEXT = "Why hikers choose Trailhead";
/** A screenshot larger than this is taken of the viewport only (docs stay light). */
const MAX_SCREENSHOT_BYTES = 200_000;
const IMAGES = SCREENSHOTS_DIR;

let demo: Demo | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let projectId: string;

async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${demo!.url}/_ss/api/v1${path}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** The value of the option of `select[name=…]` whose label contains `label`. */
async function optionValue(page: Page, name: string, label: string): Promise<string> {
  const options = page.locator(`select[name="${name}"] option`);
  const count = await options.count();
  for (let i = 0; i < count; i++) {
    const option = options.nth(i);
    if ((await option.textContent())?.includes(label))
      return (await option.getAttribute("value")) ?? "";
  }
  throw new Error(`no option "${label}" in ${name}`);
}

const run = chromiumPath() !== null || process.env.CI ? describe : describe.skip;

run("the experimentation journey in Chromium", () => {
  beforeAll(async () => {
    const datafile = demoDatafileAnyPort();
    demo = await startDemo(datafile);
    projectId = await seedDemoProject(demo.url, TOKEN, datafile);
    chromium = await launchChromium();
    mkdirSync(IMAGES, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await chromium?.close();
    await demo?.stop();
  });

  it("creates and starts an experiment in the admin; a visitor gets it and converts", async () => {
    const admin = await chromium!.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await admin.newPage();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    const a11y: string[] = [];
    /**
     * axe on the page as it is, then its screenshot (docs/admin.md "Screenshots"): the full page,
     * or when that is too heavy the viewport, scrolled to `top` when given.
     */
    const visit = async (name: string, top?: string) => {
      const violations = await accessibilityViolations(page);
      if (violations.length > 0) a11y.push(`${name}:\n${describeViolations(violations)}`);
      let shot = await page.screenshot({ fullPage: true });
      if (shot.length > MAX_SCREENSHOT_BYTES) {
        if (top) await page.locator(top).evaluate((element) => element.scrollIntoView());
        shot = await page.screenshot();
      }
      writeFileSync(join(IMAGES, `admin-${name}.png`), shot);
    };
    const admin_ = `${demo!.url}/_ss/admin`;

    // Sign in: the only project opens directly.
    await page.goto(admin_);
    expect(new URL(page.url()).pathname).toBe("/_ss/admin/login");
    await visit("sign-in");
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([
      page.waitForURL(`**/_ss/admin/projects/${projectId}`),
      page.click("button[type=submit]"),
    ]);
    await expect(page.locator("h1").first().textContent()).resolves.toContain("Demo shop");
    await visit("project");

    // The page the experiment runs on, with the URL tester asked about the shop's home page.
    const pages = await api<{ items: Array<{ id: string; key: string }> }>(
      `/projects/${projectId}/pages?limit=100`,
    );
    const home = pages.items.find((p) => p.key === "home")!;
    await page.goto(`${admin_}/projects/${projectId}/pages`);
    await visit("pages");
    await page.goto(
      `${admin_}/projects/${projectId}/pages/${home.id}?test=${encodeURIComponent(`${demo!.url}/`)}`,
    );
    await expect(page.locator("[data-test-result]").getAttribute("data-test-result")).resolves.toBe(
      "match",
    );
    await visit("page-form");
    await page.goto(`${admin_}/projects/${projectId}/audiences/new`);
    await visit("audience-form");

    // The experiment form.
    await page.goto(`${admin_}/projects/${projectId}`);
    await Promise.all([
      page.waitForURL(`**/projects/${projectId}/experiments/new`),
      page.click("a[data-link=new-experiment]"),
    ]);
    await page.fill('input[name="key"]', EXPERIMENT_KEY);
    await page.fill('input[name="name"]', "Journey: a new heading");
    await page.selectOption('select[name="type"]', "ab");
    await page.selectOption('select[name="pageIds"]', await optionValue(page, "pageIds", "(home)"));
    await page.fill('input[name="variations[0].weight"]', "0");
    await page.fill('input[name="variations[1].key"]', VARIATION_KEY);
    await page.fill('input[name="variations[1].weight"]', "100");
    await page.selectOption(
      'select[name="metrics[0].eventId"]',
      await optionValue(page, "metrics[0].eventId", "(purchase,"),
    );
    await page.selectOption('select[name="metrics[0].aggregator"]', "unique");
    // "Add change" posts the form and renders it again with one more change (no script).
    await page.selectOption('select[name="_type.variations[1].changes"]', "attribute");
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && r.status() === 200),
      page.click('button[name="_add"][value="variations[1].changes"]'),
    ]);
    await page.waitForLoadState("load");
    await page.fill('input[name="variations[1].changes[0].selector"]', SELECTOR);
    await page.fill('[name="variations[1].changes[0].attributes.text"]', NEW_TEXT);
    await visit("experiment-form", 'fieldset[data-variation="1"]');
    await Promise.all([
      page.waitForURL(/\/_ss\/admin\/experiments\/[^/?]+$/),
      page.click('button[name="_save"]'),
    ]);
    await expect(page.locator("h1").textContent()).resolves.toBe("Journey: a new heading");
    await Promise.all([
      page.waitForURL(/\/_ss\/admin\/experiments\/[^/?]+\?environment=production$/),
      page.click("button[data-action=start]"),
    ]);
    await expect(page.locator("[data-status]").getAttribute("data-status")).resolves.toBe(
      "Running",
    );
    const experimentUrl = page.url();

    // A fresh visitor once the edge serves the new revision.
    await eventually(
      async () => {
        const response = await fetch(`${demo!.url}/`, { headers: { "user-agent": CHROME_UA } });
        await response.arrayBuffer();
        return response.headers.get("x-ss-decisions")?.includes(`${EXPERIMENT_KEY}=`);
      },
      30_000,
      "the edge to serve the started experiment",
    );
    const visitorContext = await chromium!.browser.newContext();
    const visitor = await visitorContext.newPage();
    const response = await visitor.goto(`${demo!.url}/`);
    expect(response!.headers()["x-ss-decisions"]).toContain(`${EXPERIMENT_KEY}=${VARIATION_KEY}`);
    await expect(visitor.textContent(SELECTOR)).resolves.toBe(NEW_TEXT);
    // The thank-you page sends the custom event `purchase` (demo/site/checkout-done.html).
    await Promise.all([
      visitor.waitForRequest((r) => new URL(r.url()).pathname === "/_ss/events", {
        timeout: 15_000,
      }),
      visitor.goto(`${demo!.url}/checkout/done`),
    ]);
    await visitor.waitForLoadState("networkidle");
    await visitorContext.close();

    // The experiment page counts the visitor and the conversion (the queue batches for 1 s).
    const cells = page.locator(`tr[data-variation="${VARIATION_KEY}"]`).first().locator("td");
    await eventually(
      async () => {
        await page.goto(experimentUrl);
        const visitors = Number((await cells.nth(1).textContent())?.replace(/,/g, ""));
        const converters = Number((await cells.nth(2).textContent())?.replace(/,/g, ""));
        return visitors >= 1 && converters >= 1;
      },
      60_000,
      "the visitor and the purchase in the results",
    );
    await visit("experiment");

    await page.goto(
      `${admin_}/projects/${projectId}/explain?environment=production&url=${encodeURIComponent(`${demo!.url}/`)}&visitor=journey-visitor`,
    );
    await expect(page.locator("main, body").first().textContent()).resolves.toContain(
      EXPERIMENT_KEY,
    );
    await visit("explain");

    expect(a11y, a11y.join("\n\n")).toEqual([]);
    expect(problems).toEqual([]);
    await admin.close();
  }, 240_000);
});
