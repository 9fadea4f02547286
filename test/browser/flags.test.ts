/**
 * Feature flags from the admin to the edge, in headless Chromium through `wrangler dev`
 * (test/browser/harness.ts), the demo shop seeded as `npm start` seeds it: an editor signs in,
 * opens Flags from the project's navigation, creates a flag, adds a delivery rule for everyone in
 * production (a refused rule key first: its problem is shown beside the field), turns the flag on
 * with one click — and the Worker then decides the flag enabled for a visitor: in the datafile it
 * serves at `/_ss/datafiles/demo.json` (what the SDKs download, decided with the edge's own core)
 * and, when `GET /_ss/decide` answers with flags (`flags`, or the bootstrap's `f`), there too.
 *
 * Every admin page visited is checked with axe (test/browser/a11y.ts: no WCAG 2 A/AA violation)
 * and must log no console error; the flag pages are saved as admin-flags.png and admin-flag.png
 * (docs/images for docs/admin.md "Screenshots" with SPLITSTREAM_DOC_SCREENSHOTS=1, else
 * test-results/).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decideAllFlags, loadDatafile } from "../../src/core/index";
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
const FLAG_KEY = "free_shipping_banner";
const RULE = "environments.production.rules[0]";

let demo: Demo | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let projectId: string;

/** A flag as `GET /_ss/decide` may carry it: `flags` (full names) or the bootstrap's `f`. */
interface DecidedFlag {
  key: string;
  enabled: boolean;
  variationKey: string | null;
}

/** The flags of a `/_ss/decide` answer, or null when it carries none (no flag support yet). */
function decidedFlags(body: Record<string, unknown>): DecidedFlag[] | null {
  if (Array.isArray(body.flags))
    return (body.flags as Array<Record<string, unknown>>).map((f) => ({
      key: String(f.key ?? f.flagKey),
      enabled: f.enabled === true,
      variationKey: typeof f.variationKey === "string" ? f.variationKey : null,
    }));
  if (Array.isArray(body.f))
    return (body.f as Array<Record<string, unknown>>).map((f) => ({
      key: String(f.k),
      enabled: f.e === 1,
      variationKey: typeof f.v === "string" ? f.v : null,
    }));
  return null;
}

const run = chromiumPath() !== null || process.env.CI ? describe : describe.skip;

run("feature flags from the admin to the edge in Chromium", () => {
  beforeAll(async () => {
    const datafile = demoDatafileAnyPort();
    demo = await startDemo(datafile);
    projectId = await seedDemoProject(demo.url, TOKEN, datafile);
    chromium = await launchChromium();
    mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await chromium?.close();
    await demo?.stop();
  });

  it("creates a flag, adds a rule, turns it on in production; the edge decides it on", async () => {
    const admin = await chromium!.browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await admin.newPage();
    const problems: string[] = [];
    let refusedLoads = 0;
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      // Chromium logs the refused form's 422 document load; it is expected once (below).
      if (/status of 422/.test(message.text())) refusedLoads++;
      else problems.push(`console: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
    page.on("response", (response) => {
      // The one refused form below answers 422 on purpose.
      if (response.status() >= 400 && response.status() !== 422)
        problems.push(`HTTP ${response.status()}: ${response.url()}`);
    });
    const a11y: string[] = [];
    const audit = async (name: string, screenshot?: string) => {
      const violations = await accessibilityViolations(page);
      if (violations.length > 0) a11y.push(`${name}:\n${describeViolations(violations)}`);
      // The viewport only: the flag page is long, and its top is what the docs show.
      if (screenshot) writeFileSync(join(SCREENSHOTS_DIR, screenshot), await page.screenshot());
    };
    const adminUrl = `${demo!.url}/_ss/admin`;

    await page.goto(adminUrl);
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([
      page.waitForURL(`**/_ss/admin/projects/${projectId}`),
      page.click("button[type=submit]"),
    ]);
    // Flags from the project's navigation.
    await Promise.all([
      page.waitForURL(`**/projects/${projectId}/flags`),
      page.click('nav[data-nav="content"] a:text-is("Flags")'),
    ]);
    await audit("flags (empty)");
    await Promise.all([
      page.waitForURL(`**/projects/${projectId}/flags/new`),
      page.click("a[data-link=new-flag]"),
    ]);
    await audit("new flag");
    await page.fill('input[name="key"]', FLAG_KEY);
    await page.fill('input[name="name"]', "Free shipping banner");
    await Promise.all([
      page.waitForURL(/\/flags\/[^/?]+\?done=created$/),
      page.click('form[data-form="flag"] button[type=submit]'),
    ]);
    await expect(page.locator("h1").textContent()).resolves.toContain(FLAG_KEY);
    await audit("flag");

    // A delivery rule for everyone in production: "Add rule" renders the form with a row.
    const rules = page.locator('form[data-rules="production"]');
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && r.status() === 200),
      rules.locator('button[name="_add"]').click(),
    ]);
    await page.waitForLoadState("load");
    await rules.locator(`input[name="${RULE}.key"]`).fill("not a key");
    await rules.locator(`input[name="${RULE}.traffic"]`).fill("100");
    await rules.locator(`select[name="${RULE}.variationKey"]`).selectOption("on");
    // Refused by the API: the problem beside the field, the values kept.
    await Promise.all([
      page.waitForResponse((r) => r.request().method() === "POST" && r.status() === 422),
      rules.locator('button[name="_save"]').first().click(),
    ]);
    await page.waitForLoadState("load");
    const keyInput = rules.locator(`input[name="${RULE}.key"]`);
    await expect(keyInput.getAttribute("aria-invalid")).resolves.toBe("true");
    await expect(keyInput.inputValue()).resolves.toBe("not a key");
    const problemId = await keyInput.getAttribute("aria-describedby");
    await expect(
      page.locator(`[id="${problemId!.split(" ").at(-1)}"]`).textContent(),
    ).resolves.toContain("letters, digits");
    await audit("flag with a refused rule");
    await keyInput.fill("everyone");
    await Promise.all([
      page.waitForURL(/\?done=saved$/),
      rules.locator('button[name="_save"]').first().click(),
    ]);

    // On in production, with one click.
    await Promise.all([
      page.waitForURL(/\?done=on&environment=production$/),
      page.click('form[data-toggle="production"] button'),
    ]);
    const production = page.locator('section[data-environment="production"]');
    await expect(
      production.locator("h2 [data-enabled]").getAttribute("data-enabled"),
    ).resolves.toBe("true");
    await expect(production.locator('button[data-action="turn-off"]').count()).resolves.toBe(1);
    await audit("flag turned on", "admin-flag.png");
    await page.goto(`${adminUrl}/projects/${projectId}/flags`);
    const row = page.locator(`tr[data-item="${FLAG_KEY}"]`);
    await expect(
      row.locator('td[data-environment="production"] [data-enabled]').getAttribute("data-enabled"),
    ).resolves.toBe("true");
    await audit("flags", "admin-flags.png");

    // The edge: the datafile it serves (what the SDKs download) decides the flag on for anyone.
    const visitorId = "flag-visitor";
    await eventually(
      async () => {
        const response = await fetch(`${demo!.url}/_ss/datafiles/demo.json`, {
          headers: { "cache-control": "no-cache" },
        });
        const loaded = loadDatafile(await response.text());
        if (!loaded.ok) return false;
        const decision = decideAllFlags(loaded.compiled, { visitorId }).find(
          (d) => d.flagKey === FLAG_KEY,
        );
        return decision?.enabled === true && decision.variationKey === "on";
      },
      30_000,
      "the served datafile to decide the flag on",
    );
    // And `GET /_ss/decide`, once it answers with flags (docs/client.md).
    const decide = await eventually(
      async () => {
        const response = await fetch(
          `${demo!.url}/_ss/decide?url=${encodeURIComponent(`${demo!.url}/`)}`,
          { headers: { "user-agent": CHROME_UA, cookie: `ss_vid=${visitorId}` } },
        );
        if (response.status !== 200) return null;
        const flags = decidedFlags((await response.json()) as Record<string, unknown>);
        // Without flag support there is nothing to wait for; with it, wait for the new revision.
        if (flags === null) return { flags: null };
        const flag = flags.find((f) => f.key === FLAG_KEY);
        return flag?.enabled ? { flags } : null;
      },
      30_000,
      "GET /_ss/decide to decide the flag on",
    );
    if (decide.flags !== null)
      expect(decide.flags.find((f) => f.key === FLAG_KEY)).toMatchObject({
        enabled: true,
        variationKey: "on",
      });

    expect(a11y, a11y.join("\n\n")).toEqual([]);
    expect(problems).toEqual([]);
    expect(refusedLoads).toBe(1);
    await admin.close();
  }, 180_000);
});
