/**
 * The visual editor in headless Chromium through `wrangler dev` (test/browser/harness.ts), as
 * docs/visual-editor.md describes it: an editor opens the demo shop's home page in the editor,
 * clicks the hero headline, changes its text, adds a class, hides an element, inserts HTML after
 * another, moves one element before another (towards the top of the page), saves, and starts the
 * experiment. A fresh visitor in the variation then gets exactly those changes in the HTML the
 * edge streams — the DOM of the editor's preview and of the visitor's page are identical — and a
 * visitor in the control gets the original. Also: every demo page and a page with a table and
 * forms can be edited; the page inside the editor cannot reach the admin; axe finds nothing on
 * the editor's own UI; screenshots for docs/admin.md.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Frame, Page } from "playwright-core";
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

// The page's globals, inside `evaluate` (this project's types have no DOM lib).
declare const document: {
  documentElement: { cloneNode(deep: boolean): DomElement };
};
interface DomElement {
  querySelectorAll(selector: string): { forEach(fn: (n: DomElement) => void): void };
  querySelector(selector: string): DomElement | null;
  remove(): void;
  removeAttribute(name: string): void;
  outerHTML: string;
}

const TOKEN = "browser-admin"; // the harness's ADMIN_TOKEN
const KEY = "editor_hero";
const TREATMENT_VISITOR = "editor-test-treatment";
const CONTROL_VISITOR = "editor-test-control";
const FRAME = 'iframe[data-editor="frame"]';
const IMAGES = SCREENSHOTS_DIR;

let demo: Demo | undefined;
let chromium: Awaited<ReturnType<typeof launchChromium>> | undefined;
let projectId: string;

/**
 * The demo's pages and events without its experiments (the comparison below is of this one
 * experiment's changes), and the home page matching the Worker's free port.
 */
function editorDatafile(): Record<string, unknown> {
  const d = demoDatafileAnyPort();
  d.web.experiments = [];
  d.experiments = [];
  for (const event of d.events as Array<{ experimentIds: string[] }>) event.experimentIds = [];
  d.groups = [];
  d.featureFlags = [];
  d.rollouts = [];
  return d;
}

async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${demo!.url}/_ss/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/**
 * The body as the visitor's browser has it, minus what only the editor adds: its agent's
 * elements (`data-ss-editor`) and the element numbers (`data-ss-i`).
 */
async function bodyOf(target: Page | Frame): Promise<string> {
  return target.evaluate(() => {
    const root = document.documentElement.cloneNode(true);
    root.querySelectorAll("[data-ss-editor]").forEach((n) => n.remove());
    root.querySelectorAll("[data-ss-i]").forEach((n) => n.removeAttribute("data-ss-i"));
    return root.querySelector("body")!.outerHTML;
  });
}

/** The editor's preview frame (the live document: it is replaced on every re-render). */
async function previewFrame(page: Page): Promise<Frame> {
  const frame = await (await page.$(FRAME))?.contentFrame();
  if (!frame) throw new Error("no preview frame");
  return frame;
}

/** Clicks `selector` inside the preview until the editor has selected it (source loaded). */
async function selectInPreview(page: Page, selector: string): Promise<string> {
  return eventually(
    async () => {
      await page.frameLocator(FRAME).locator(selector).first().click({ timeout: 5_000 });
      const value = await page.locator('[data-editor="selector"]').inputValue();
      const tools = await page.locator('[data-editor="selection-tools"]').isVisible();
      return tools && value !== "" ? value : null;
    },
    20_000,
    `the editor to select ${selector}`,
  );
}

/** The preview once it shows `check` (it re-renders through the edge after each edit). */
async function previewShows(page: Page, what: string, check: (f: Frame) => Promise<boolean>) {
  await eventually(
    async () => check(await previewFrame(page)),
    20_000,
    `the preview to show ${what}`,
  );
}

async function newVisitor(visitorId: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium!.browser.newContext();
  await context.addCookies([{ name: "ss_vid", value: visitorId, url: demo!.url }]);
  return { context, page: await context.newPage() };
}

const run = chromiumPath() !== null || process.env.CI ? describe : describe.skip;

run("the visual editor in Chromium", () => {
  let admin: BrowserContext;
  let page: Page;
  let experiment: { id: string; version: number; variations: Array<{ id: string; key: string }> };
  const problems: string[] = [];
  const a11y: string[] = [];

  const shoot = async (name: string) =>
    writeFileSync(join(IMAGES, `admin-${name}.png`), await page.screenshot());
  const checkA11y = async (name: string) => {
    const violations = await accessibilityViolations(page, { exclude: [FRAME] });
    if (violations.length > 0) a11y.push(`${name}:\n${describeViolations(violations)}`);
  };

  beforeAll(async () => {
    const datafile = editorDatafile();
    demo = await startDemo(datafile);
    projectId = await seedDemoProject(demo.url, TOKEN, datafile);
    const pages = await api<{ items: Array<{ id: string; key: string }> }>(
      "GET",
      `/projects/${projectId}/pages?limit=100`,
    );
    const events = await api<{ items: Array<{ id: string; key: string }> }>(
      "GET",
      `/projects/${projectId}/events?limit=100`,
    );
    experiment = await api("POST", `/projects/${projectId}/experiments`, {
      key: KEY,
      name: "Editor: the hero",
      pageIds: [pages.items.find((p) => p.key === "home")!.id],
      metrics: [
        { eventId: events.items.find((e) => e.key === "purchase")!.id, aggregator: "unique" },
      ],
      variations: [
        { key: "control", weight: 5000 },
        { key: "treatment", weight: 5000 },
      ],
      forcedVariations: { [TREATMENT_VISITOR]: "treatment", [CONTROL_VISITOR]: "control" },
    });
    chromium = await launchChromium();
    mkdirSync(IMAGES, { recursive: true });
    admin = await chromium.browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await admin.newPage();
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("console", (message) => {
      // The preview is the customer's page: only the editor page's own errors count here.
      if (message.type() === "error" && !message.location().url.includes("ss_editor="))
        problems.push(`console: ${message.text()}`);
    });
    await page.goto(`${demo.url}/_ss/admin/login`);
    await page.fill('input[name="token"]', TOKEN);
    await Promise.all([
      page.waitForURL(/\/_ss\/admin\/projects\//),
      page.click("button[type=submit]"),
    ]);
  }, 180_000);

  afterAll(async () => {
    await chromium?.close();
    await demo?.stop();
  });

  it("edits the hero in the editor; after start the edge serves exactly the preview", async () => {
    const treatment = experiment.variations.find((v) => v.key === "treatment")!;
    // From the experiment page, as a user gets there.
    await page.goto(`${demo!.url}/_ss/admin/experiments/${experiment.id}`);
    await Promise.all([
      page.waitForURL(/\/editor\?/),
      page.click(`a[data-link="visual-editor"][href*="${treatment.id}"]`),
    ]);
    await previewShows(
      page,
      "the home page",
      async (f) => (await f.locator("h1.hero-title").count()) === 1,
    );
    await checkA11y("editor");
    await shoot("editor");

    // The hero headline: new text and a class (one change, merged).
    const heading = await selectInPreview(page, "h1.hero-title");
    await expect(page.locator('[data-editor="match-count"]').textContent()).resolves.toMatch(
      /\b1\b/,
    );
    await page.fill('[data-editor="text"]', "Gear that outlasts the trail.");
    await page.click('[data-editor="apply-text"]');
    await page.fill('[data-editor="add-class"]', "hero-title--bold");
    await page.click('[data-editor="apply-add-class"]');
    await previewShows(page, "the new headline", async (f) => {
      const h1 = f.locator("h1");
      return (
        (await h1.textContent()) === "Gear that outlasts the trail." &&
        ((await h1.getAttribute("class")) ?? "").includes("hero-title--bold")
      );
    });
    await checkA11y("editor-selected");
    await shoot("editor-selected");

    // Hide the hero image.
    await selectInPreview(page, "img.hero-image");
    await page.click('[data-editor="hide"]');
    await previewShows(page, "the image hidden", async (f) =>
      ((await f.locator("img.hero-image").getAttribute("style")) ?? "").includes("display:none"),
    );

    // Insert HTML after the call to action.
    await selectInPreview(page, "#hero-cta");
    await page.selectOption('[data-editor="insert-position"]', "after");
    await page.fill(
      '[data-editor="insert-html"]',
      '<p class="hero-note">Free repairs, for life.</p>',
    );
    await page.click('[data-editor="apply-insert"]');
    await previewShows(
      page,
      "the inserted note",
      async (f) => (await f.locator("#hero-cta + p.hero-note").count()) === 1,
    );

    // Move the lead paragraph before the headline: towards the top of the page.
    await selectInPreview(page, "p.lead");
    await page.click('[data-editor="move"]');
    await page.frameLocator(FRAME).locator("h1").click();
    await page.selectOption('[data-editor="move-position"]', "before");
    await page.click('[data-editor="apply-move"]');
    await previewShows(
      page,
      "the lead above the headline",
      async (f) => (await f.locator("p.lead + h1").count()) === 1,
    );
    const changes = page.locator("[data-change-index]");
    await expect(changes.count()).resolves.toBe(4);
    await checkA11y("editor-changes");
    await shoot("editor-changes");

    // Undo and redo the move.
    await page.click('[data-editor="undo"]');
    await previewShows(
      page,
      "the move undone",
      async (f) => (await f.locator("h1 + p.lead").count()) === 1,
    );
    await page.click('[data-editor="redo"]');
    await previewShows(
      page,
      "the move again",
      async (f) => (await f.locator("p.lead + h1").count()) === 1,
    );

    // Save: through the API's validation, then back in the editor.
    await Promise.all([page.waitForURL(/saved=1/), page.click('[data-editor="save"]')]);
    const saved = await api<{
      variations: Array<{ key: string; changes: Array<{ type: string }> }>;
    }>("GET", `/experiments/${experiment.id}`);
    const savedChanges = saved.variations.find((v) => v.key === "treatment")!.changes;
    expect(savedChanges.map((c) => c.type)).toEqual([
      "attribute",
      "attribute",
      "insert_html",
      "move",
    ]);
    expect(heading).not.toBe("");
    await previewShows(
      page,
      "the saved variation",
      async (f) => (await f.locator("p.lead + h1").count()) === 1,
    );
    const preview = await bodyOf(await previewFrame(page));

    // Start it; wait for the edge to serve the new revision.
    await page.goto(`${demo!.url}/_ss/admin/experiments/${experiment.id}`);
    await Promise.all([
      page.waitForURL(/environment=production$/),
      page.click("button[data-action=start]"),
    ]);
    await eventually(
      async () => {
        const response = await fetch(`${demo!.url}/`, {
          headers: { "user-agent": CHROME_UA, cookie: `ss_vid=${TREATMENT_VISITOR}` },
        });
        const html = await response.text();
        return response.headers.get("x-ss-decisions")?.includes(`${KEY}=treatment`) &&
          html.includes("hero-title--bold")
          ? html
          : null;
      },
      30_000,
      "the edge to serve the started experiment",
    );

    // A fresh visitor in the variation: the streamed HTML has those changes, the DOM is the preview's.
    const visitor = await newVisitor(TREATMENT_VISITOR);
    const response = await visitor.page.goto(`${demo!.url}/`);
    expect(response!.headers()["x-ss-decisions"]).toContain(`${KEY}=treatment`);
    const streamed = await response!.text();
    expect(streamed).toContain(
      '<h1 class="hero-title hero-title--bold">Gear that outlasts the trail.</h1>',
    );
    expect(streamed).toContain('<p class="hero-note">Free repairs, for life.</p>');
    expect(streamed).toMatch(/<img[^>]*class="hero-image"[^>]*style="display:none !important"/);
    expect(streamed.indexOf('class="lead"')).toBeLessThan(streamed.indexOf("<h1"));
    expect(await bodyOf(visitor.page)).toBe(preview);
    await visitor.context.close();

    // The control: the original page, as the editor shows it.
    const control = await newVisitor(CONTROL_VISITOR);
    const controlResponse = await control.page.goto(`${demo!.url}/`);
    expect(controlResponse!.headers()["x-ss-decisions"]).toContain(`${KEY}=control`);
    const original = await control.page.content();
    expect(original).toContain('<h1 class="hero-title">Gear for the long way round.</h1>');
    await page.goto(
      `${demo!.url}/_ss/admin/experiments/${experiment.id}/editor?variation=original&url=${encodeURIComponent(`${demo!.url}/`)}`,
    );
    await previewShows(
      page,
      "the original",
      async (f) => (await f.locator("h1").textContent()) === "Gear for the long way round.",
    );
    expect(await bodyOf(control.page)).toBe(await bodyOf(await previewFrame(page)));
    await control.context.close();
  }, 240_000);

  it("selects elements on every demo page and on a page with a table and forms", async () => {
    const treatment = experiment.variations.find((v) => v.key === "treatment")!;
    const cases: Array<[string, string]> = [
      ["/", "section.hero a.btn"],
      ["/products/2", "h1"],
      ["/pricing", "h1"],
      ["/checkout", "#continue"],
      ["/stores", "#store-denver td:nth-child(3)"],
      ["/stores", 'input[name="q"]'],
      ["/stores", "#find-store"],
    ];
    for (const [path, target] of cases) {
      const url = `${demo!.url}${path}`;
      await page.goto(
        `${demo!.url}/_ss/admin/experiments/${experiment.id}/editor?variation=${treatment.id}&url=${encodeURIComponent(url)}`,
      );
      await previewShows(page, path, async (f) => (await f.locator(target).count()) > 0);
      const selector = await selectInPreview(page, target);
      const count = await page.locator('[data-editor="match-count"]').textContent();
      expect(count, `${path} ${target} → ${selector}`).toMatch(/\b1\b/);
      expect(await page.locator('[data-editor="selector-problem"]').isVisible()).toBe(false);
      // Select mode: the click neither submitted a form nor followed a link.
      expect(new URL((await previewFrame(page)).url()).pathname).toBe(path);
      if (path === "/stores" && target.startsWith("#store")) {
        await checkA11y("editor-table");
        await shoot("editor-table");
      }
    }

    // A typed selector: counted in the origin's page, and refused when the edge cannot run it.
    await page.goto(
      `${demo!.url}/_ss/admin/experiments/${experiment.id}/editor?variation=${treatment.id}&url=${encodeURIComponent(`${demo!.url}/`)}`,
    );
    await previewShows(page, "the home page", async (f) => (await f.locator("h1").count()) === 1);
    await selectInPreview(page, "h1.hero-title");
    const before = await page.locator("[data-change-index]").count();
    await page.fill('[data-editor="selector"]', ".product-card");
    await expect(page.locator('[data-editor="match-count"]').textContent()).resolves.toContain(
      "Matches 3 elements",
    );
    await page.fill('[data-editor="selector"]', ".hero-title + p");
    await expect(page.locator('[data-editor="selector-problem"]').textContent()).resolves.toMatch(
      /cannot run at the edge/,
    );
    await page.fill('[data-editor="text"]', "Never saved");
    await page.click('[data-editor="apply-text"]');
    await expect(page.locator("[data-change-index]").count()).resolves.toBe(before);

    expect(a11y, a11y.join("\n\n")).toEqual([]);
    expect(problems).toEqual([]);
  }, 180_000);

  it("the page inside the editor cannot reach the admin's session or DOM", async () => {
    const treatment = experiment.variations.find((v) => v.key === "treatment")!;
    await page.goto(
      `${demo!.url}/_ss/admin/experiments/${experiment.id}/editor?variation=${treatment.id}`,
    );
    await previewShows(page, "the home page", async (f) => (await f.locator("h1").count()) === 1);
    const reach = await (
      await previewFrame(page)
    ).evaluate(async () => {
      const out: Record<string, string> = {};
      const g = globalThis as unknown as {
        document: { cookie: string };
        parent: { document: unknown };
        fetch(url: string, init: Record<string, string>): Promise<{ status: number; type: string }>;
        origin: string;
      };
      out.origin = g.origin;
      try {
        out.cookie = g.document.cookie;
      } catch (error) {
        out.cookie = `threw ${(error as Error).name}`;
      }
      try {
        out.parent = typeof g.parent.document;
      } catch (error) {
        out.parent = `threw ${(error as Error).name}`;
      }
      try {
        const response = await g.fetch("/_ss/admin/", {
          credentials: "include",
          redirect: "manual",
        });
        out.admin = `${response.status} ${response.type}`;
      } catch (error) {
        out.admin = `threw ${(error as Error).name}`;
      }
      return out;
    });
    expect(reach.origin).toBe("null");
    expect(reach.cookie).toMatch(/^threw/);
    expect(reach.parent).toMatch(/^threw/);
    // Cross-origin from an opaque origin: the request fails, or comes back opaque without a session.
    expect(reach.admin).not.toMatch(/^200 basic/);
  }, 60_000);
});
