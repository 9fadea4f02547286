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
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessibilityViolations, describeViolations } from "./a11y";
import {
  chromiumPath,
  eventually,
  launchChromium,
  repoRoot,
  startDemo,
  type Demo,
} from "./harness";

const TOKEN = "browser-admin"; // the harness's ADMIN_TOKEN
const DAYS = 7;

let demo: Demo | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let experiment: ExperimentJson;
let projectId: string;
let productPageId: string;
let purchaseId: string;
let production: { id: string; sdkKey: string };

async function api<T>(method: string, path: string, body?: unknown, token = TOKEN): Promise<T> {
  const response = await fetch(`${demo!.url}/_ss/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

type ExperimentJson = { id: string; variations: Array<{ id: string; key: string }> };

/** An A/B experiment on the product page, 50/50 control vs `treatment`, measuring purchases. */
function createExperiment(key: string, name: string, treatment: string): Promise<ExperimentJson> {
  return api("POST", `/projects/${projectId}/experiments`, {
    key,
    name,
    pageIds: [productPageId],
    metrics: [{ eventId: purchaseId, aggregator: "unique" }],
    variations: [
      { key: "control", weight: 5000 },
      { key: treatment, weight: 5000 },
    ],
  });
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

    const project = await api<{
      id: string;
      environments: Array<{ id: string; key: string; sdkKey: string }>;
    }>("POST", "/projects", { name: "Outdoor shop" });
    projectId = project.id;
    const page = await api<{ id: string }>("POST", `/projects/${project.id}/pages`, {
      key: "product",
      conditions: ["or", { match: "substring", value: "/product" }],
    });
    const purchase = await api<{ id: string }>("POST", `/projects/${project.id}/events`, {
      key: "purchase",
      type: "custom",
    });
    productPageId = page.id;
    purchaseId = purchase.id;
    experiment = await createExperiment("buy_button", "Buy button colour", "green_button");
    await api("POST", `/experiments/${experiment.id}/start`, {});

    // A week of traffic: 400 visitors per variation per day; 10 % vs 12.5 % buy.
    production = project.environments.find((e) => e.key === "production") as typeof production;
    const sdkKey = production.sdkKey;
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

  /**
   * The program pages (webhooks, schedules, reviews, holdout) with data in them, under a stricter
   * check than the other pages': best practices too, and what axe only calls "needs review" for
   * duplicate ids behind labels (test/browser/a11y.ts). The data is made in a hook, one page per
   * test, so a slow queue on a busy machine cannot push one test past its timeout.
   */
  describe("program pages", () => {
    let hook: { id: string };
    let hookUrl: string;
    let delivery: { id: string };
    let copy: ExperimentJson;
    let context: BrowserContext | undefined;
    let page: Page;
    const admin = () => `${demo!.url}/_ss/admin`;

    beforeAll(async () => {
      // A webhook with a delivery, answered by a receiver on loopback (http is allowed there).
      const receiver = createServer((_req, res) => res.writeHead(200).end("ok"));
      await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
      hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      hook = await api<{ id: string }>("POST", `/projects/${projectId}/webhooks`, {
        name: "Experiments channel",
        url: hookUrl,
        events: ["experiment.started", "significance.reached"],
        environments: ["production"],
      });
      await api("POST", `/webhooks/${hook.id}/test`, {});
      type Deliveries = { items: Array<{ id: string; attempts: number }> };
      delivery = await eventually(
        async () =>
          (await api<Deliveries>("GET", `/webhooks/${hook.id}/deliveries`)).items.find(
            (d) => d.attempts > 0,
          ),
        60_000,
        "the test delivery's first attempt",
      );
      receiver.close();

      // An experiment running in production with a schedule: two steps already run (one done, one
      // failed: written straight into D1, as the per-minute run would) and two pending.
      copy = await createExperiment("checkout_copy", "Checkout copy", "short_copy");
      await api("POST", `/experiments/${copy.id}/start`, {});
      const day = 86_400_000;
      const at = (days: number) => new Date(Date.now() + days * day).toISOString();
      const schedule = await api<{ steps: Array<{ id: string }> }>(
        "PUT",
        `/experiments/${copy.id}/schedules/production`,
        {
          steps: [
            { at: at(1), action: "traffic", percent: 50 },
            { at: at(2), action: "traffic", percent: 80 },
            { at: at(3), action: "pause" },
            { at: at(4), action: "archive" },
          ],
        },
      );
      const db = await writableDb();
      const [first, second] = schedule.steps;
      db.prepare(
        "UPDATE schedule_steps SET status = 'done', at = ?, applied_at = ?, revision = 3 WHERE id = ?",
      ).run(at(-2), at(-2), first!.id);
      db.prepare(
        "UPDATE schedule_steps SET status = 'failed', at = ?, applied_at = ?, error = 'experiment changed' WHERE id = ?",
      ).run(at(-1), at(-1), second!.id);

      // Review required in production: an editor's change of the running experiment waits
      // (pending), an editor's start of another waits and is rejected (shown under "All requests").
      await api("PATCH", `/environments/${production.id}`, { requireReview: true });
      const editor = await api<{ token: string }>("POST", "/tokens", {
        name: "Erin",
        role: "editor",
      });
      await api(
        "PATCH",
        `/experiments/${copy.id}`,
        { name: "Checkout copy, shorter" },
        editor.token,
      );
      const banner = await createExperiment("banner", "Banner", "blue");
      const started = await api<{ changeRequest: { id: string } }>(
        "POST",
        `/experiments/${banner.id}/start`,
        {},
        editor.token,
      );
      await api("POST", `/change-requests/${started.changeRequest.id}/reject`, {
        comment: "Not this week",
      });

      // A 5 % holdout of production compared on purchases, with a week of both groups' aggregates.
      await api("PUT", `/environments/${production.id}/holdout`, {
        percent: 5,
        metrics: [purchaseId],
      });
      const holdout = await api<{ holdoutId: string; groups: Array<{ variationId: string }> }>(
        "GET",
        `/environments/${production.id}/holdout/results`,
      );
      const [everyone, held] = holdout.groups.map((g) => g.variationId);
      const visitors = db.prepare(
        "INSERT INTO variation_daily (sdk_key, experiment_id, variation_id, revision, day, visitors) VALUES (?, ?, ?, '5', ?, ?)",
      );
      const metrics = db.prepare(
        "INSERT INTO metric_daily (sdk_key, experiment_id, variation_id, revision, event_id, day, converters, events) VALUES (?, ?, ?, '5', ?, ?, ?, ?)",
      );
      for (let d = DAYS; d >= 1; d--) {
        const date = new Date(Date.now() - d * day).toISOString().slice(0, 10);
        visitors.run(production.sdkKey, holdout.holdoutId, everyone!, date, 950);
        visitors.run(production.sdkKey, holdout.holdoutId, held!, date, 50);
        metrics.run(production.sdkKey, holdout.holdoutId, everyone!, purchaseId, date, 110, 120);
        metrics.run(production.sdkKey, holdout.holdoutId, held!, purchaseId, date, 5, 5);
      }
      db.close();

      context = await chromium!.browser.newContext({ viewport: { width: 1100, height: 900 } });
      page = await context.newPage();
      await page.goto(`${admin()}/login`);
      await page.fill('input[name="token"]', TOKEN);
      await Promise.all([
        page.waitForURL(`**/projects/${projectId}`),
        page.click("button[type=submit]"),
      ]);
    }, 120_000);

    afterAll(async () => {
      await context?.close();
    });

    const strict = {
      bestPractice: true,
      needsReview: ["duplicate-id-aria", "form-field-multiple-labels"],
    };
    /** The page's violations, after checking that it shows `present`. */
    const audit = async (name: string, present: string, include?: string[]) => {
      await expect(page.locator(present).count(), `${name}: ${present}`).resolves.toBeGreaterThan(
        0,
      );
      const violations = await accessibilityViolations(page, { ...strict, include });
      return violations.length > 0 ? [`${name}:\n${describeViolations(violations)}`] : [];
    };
    const visit = async (name: string, path: string, present: string, include?: string[]) => {
      const response = await page.goto(`${admin()}${path}`);
      expect(response?.status(), name).toBe(200);
      return audit(name, present, include);
    };

    it("webhooks list, create form and one-time secret", async () => {
      const a11y = await visit(
        "webhooks",
        `/projects/${projectId}/webhooks`,
        `tr[data-webhook="${hook.id}"]`,
      );
      // The create form, filled and sent: its answer is the one-time secret page.
      await page.fill('form[data-form="new-webhook"] input[name="name"]', "Deploy bot");
      await page.fill('form[data-form="new-webhook"] input[name="url"]', hookUrl);
      await page.fill('form[data-form="new-webhook"] input[name="confirmToken"]', TOKEN);
      await page.click('form[data-form="new-webhook"] button[type=submit]');
      await page.locator("[data-secret]").waitFor();
      a11y.push(...(await audit("webhook secret", "[data-secret]")));
      expect(a11y, a11y.join("\n\n")).toEqual([]);
    });

    it("webhook with its deliveries, and one delivery's attempts", async () => {
      const a11y = [
        ...(await visit("webhook", `/webhooks/${hook.id}`, `tr[data-delivery="${delivery.id}"]`)),
        ...(await visit("delivery", `/webhook-deliveries/${delivery.id}`, "tr[data-attempt]")),
      ];
      expect(a11y, a11y.join("\n\n")).toEqual([]);
    });

    it("experiment with a schedule and a pending review", async () => {
      // The experiment page's other sections are checked by the first test.
      const a11y = await visit(
        "experiment with schedule",
        `/experiments/${copy.id}`,
        "[data-pending-review]",
        ["#schedules", "[data-pending-review]"],
      );
      await expect(page.locator('[data-step-status="done"]').count()).resolves.toBe(1);
      await expect(page.locator('[data-step-status="failed"]').count()).resolves.toBe(1);
      await expect(page.locator('[data-step-status="pending"]').count()).resolves.toBe(2);
      expect(a11y, a11y.join("\n\n")).toEqual([]);
    });

    it("reviews, pending and all, and one experiment's from its page", async () => {
      const a11y = [
        ...(await visit("reviews", `/projects/${projectId}/reviews`, '[data-status="pending"]')),
        ...(await visit(
          "all reviews",
          `/projects/${projectId}/reviews?status=all`,
          '[data-status="rejected"]',
        )),
      ];
      // The experiment page's "Review" link: that experiment's requests only.
      await page.goto(`${admin()}/experiments/${copy.id}`);
      await Promise.all([
        page.waitForURL(`**/reviews?experiment=${copy.id}`),
        page.click("[data-pending-review] a"),
      ]);
      a11y.push(
        ...(await audit("one experiment's reviews", `[data-experiment-filter="${copy.id}"]`)),
      );
      await expect(page.locator("[data-change-request]").count()).resolves.toBe(1);
      const dir = join(repoRoot, "test-results");
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, "admin-reviews.png"), fullPage: true });
      expect(a11y, a11y.join("\n\n")).toEqual([]);
    });

    it("holdout results", async () => {
      const a11y = await visit(
        "holdout",
        `/environments/${production.id}/holdout`,
        '[data-group="holdout"]',
      );
      expect(a11y, a11y.join("\n\n")).toEqual([]);
    });
  });
});
