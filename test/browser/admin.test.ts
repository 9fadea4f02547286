/**
 * The admin pages in headless Chromium through `wrangler dev` (test/browser/harness.ts): sign in
 * with the API token, open the project, open an experiment with results, check the table, both
 * charts, that the console logged no errors and no request failed, and save a screenshot
 * (test-results/admin-experiment.png).
 *
 * The experiment is created through the management API; its results come from a week of daily
 * aggregates written into the local D1 database the queue consumer writes (the consumer path
 * itself is covered by test/e2e and test/browser/client.test.ts — this test is about the pages).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessibilityViolations, describeViolations } from "./a11y";
import { chromiumPath, launchChromium, repoRoot, startDemo, type Demo } from "./harness";

const TOKEN = "browser-admin"; // the harness's ADMIN_TOKEN
const DAYS = 7;

let demo: Demo | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let experiment: { id: string; variations: Array<{ id: string; key: string }> };
let projectId: string;

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${demo!.url}/_ss/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Opens the D1 database of the running wrangler dev for writing (one statement at a time). */
async function writableDb(): Promise<DatabaseSync> {
  const rows = await demo!.query<{ file: string }>(
    "SELECT file FROM pragma_database_list WHERE name = 'main'",
  );
  const file = rows[0]?.file;
  if (!file) throw new Error("no file for the local D1 database");
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  db.exec("PRAGMA busy_timeout = 5000");
  return db;
}

const run = chromiumPath() !== null || process.env.CI ? describe : describe.skip;

run("admin pages in Chromium", () => {
  beforeAll(async () => {
    const datafile = JSON.parse(readFileSync(join(repoRoot, "demo", "datafile.json"), "utf8"));
    demo = await startDemo(datafile);
    chromium = await launchChromium();

    const project = await api<{ id: string; environments: Array<{ key: string; sdkKey: string }> }>(
      "POST",
      "/projects",
      { name: "Outdoor shop" },
    );
    projectId = project.id;
    const page = await api<{ id: string }>("POST", `/projects/${project.id}/pages`, {
      key: "product",
      conditions: ["or", { match: "substring", value: "/product" }],
    });
    const purchase = await api<{ id: string }>("POST", `/projects/${project.id}/events`, {
      key: "purchase",
      type: "custom",
    });
    experiment = await api("POST", `/projects/${project.id}/experiments`, {
      key: "buy_button",
      name: "Buy button colour",
      pageIds: [page.id],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "green_button", weight: 5000 },
      ],
    });
    await api("POST", `/experiments/${experiment.id}/start`, {});

    // A week of traffic: 400 visitors per variation per day; 10 % vs 12.5 % buy.
    const sdkKey = project.environments.find((e) => e.key === "production")!.sdkKey;
    const db = await writableDb();
    const visitors = db.prepare(
      "INSERT INTO variation_daily (sdk_key, experiment_id, variation_id, revision, day, visitors) VALUES (?, ?, ?, '2', ?, ?)",
    );
    const metrics = db.prepare(
      "INSERT INTO metric_daily (sdk_key, experiment_id, variation_id, revision, event_id, day, converters, events) VALUES (?, ?, ?, '2', ?, ?, ?, ?)",
    );
    for (let d = DAYS; d >= 1; d--) {
      const day = new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10);
      experiment.variations.forEach((variation, v) => {
        const converters = v === 0 ? 40 + (d % 3) : 50 + (d % 4);
        visitors.run(sdkKey, experiment.id, variation.id, day, 400);
        metrics.run(sdkKey, experiment.id, variation.id, purchase.id, day, converters, converters);
      });
    }
    db.close();
  }, 180_000);

  afterAll(async () => {
    await chromium?.close();
    await demo?.stop();
  });

  it("signs in, opens the experiment, shows the table and the charts without console errors", async () => {
    const context = await chromium!.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });

    await page.goto(`${demo!.url}/_ss/admin`);
    expect(new URL(page.url()).pathname).toBe("/_ss/admin/login");
    const a11y: string[] = [];
    const audit = async (name: string) => {
      const violations = await accessibilityViolations(page);
      if (violations.length > 0) a11y.push(`${name}:\n${describeViolations(violations)}`);
    };
    await audit("sign-in");
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([
      page.waitForURL(`**/_ss/admin/projects/${projectId}`),
      page.click("button[type=submit]"),
    ]);

    await audit("project");
    // The experiments list: status and the primary metric's verdict.
    const row = page.locator('tr[data-experiment="buy_button"]');
    await expect(row.locator(".badge.Running").textContent()).resolves.toBe("Running");
    expect(await row.locator("[data-verdict]").getAttribute("data-verdict")).toMatch(
      /^(winner|inconclusive)$/,
    );

    await Promise.all([
      page.waitForURL(`**/_ss/admin/experiments/${experiment.id}**`),
      row.locator("a").first().click(),
    ]);
    await expect(page.locator("h1").textContent()).resolves.toBe("Buy button colour");

    // The results table: both variations, a week of visitors each.
    const control = page.locator('tr[data-variation="control"] td');
    const green = page.locator('tr[data-variation="green_button"] td');
    expect(await control.nth(1).textContent()).toBe((400 * DAYS).toLocaleString("en-US"));
    expect(await green.nth(1).textContent()).toBe((400 * DAYS).toLocaleString("en-US"));
    expect(await control.nth(8).textContent()).toContain("baseline");
    expect(await green.nth(4).textContent()).toMatch(/^\+\d+\.\d%$/);

    // The charts: one line per variation over the week, one interval for the treatment.
    const line = page.locator('svg[data-chart="line"]');
    await expect(line.count()).resolves.toBe(1);
    await expect(line.locator("path[data-series]").count()).resolves.toBe(2);
    await expect(line.locator("circle").count()).resolves.toBe(2 * DAYS);
    const box = await line.boundingBox();
    expect(box!.width).toBeGreaterThan(300);
    const intervals = page.locator('svg[data-chart="intervals"]');
    await expect(intervals.locator('line[data-interval="green_button"]').count()).resolves.toBe(1);

    // No SRM warning for an even split.
    await expect(page.locator("[data-srm]").count()).resolves.toBe(0);
    await audit("experiment");
    expect(a11y, a11y.join("\n\n")).toEqual([]);

    const dir = join(repoRoot, "test-results");
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "admin-experiment.png"), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
