/**
 * Bandits (docs/bandits.md "Running a bandit", "Headline tests"; docs/api.md "Bandits"), in
 * workerd with the real D1, KV and Queue:
 *
 * - `runBanditRound` over counts fed through the real queue consumer (handleEventBatch): weights
 *   move to the clearly better arm within the exploration floor, one history row, audit entry by
 *   `bandit`, a new datafile revision in KV with the new trafficAllocation; nothing published for
 *   unchanged data; manual experiments untouched; a non-unique primary metric skipped (recorded
 *   once); the SRM check against the allocation over time; the admin page's weights chart;
 *   serving the winner to 100 %;
 * - the Worker's `scheduled` handler: a failing bandit round does not stop the retention;
 * - headline tests: one request → page, click event, bandit experiment; validation with paths;
 * - end to end through the Worker: a started headline test, visitors through the edge, their
 *   conversions through `POST /_ss/events`, the real queue → consumer → results, the Worker's
 *   `scheduled` handler, new visitors split by the new weights, returning visitors keep their
 *   headline (ss_dec), serve-winner → every new visitor gets the winner.
 */
import {
  createExecutionContext,
  createMessageBatch,
  createScheduledController,
  getQueueResult,
} from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runBanditRound, MIN_WEIGHT_CHANGE_BP } from "../../src/api/services/bandit-round";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { handleEventBatch } from "../../src/events/consumer";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";
import worker from "../../src/index";
import {
  API_ORIGIN,
  adminSession,
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { decisionsOf, routedWorker, setCookiesOf } from "../helpers/pipeline";
import { d1FailingOn } from "../helpers/failing-d1";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

let project: ProjectWithEnvironments;
const collection = (plural: string) => `/projects/${project.id}/${plural}`;
const production = () => project.environments.find((e) => e.key === "production")!;

beforeEach(async () => {
  project = await createProject();
  vi.spyOn(console, "log").mockImplementation(() => {});
  vi.spyOn(console, "warn").mockImplementation(() => {});
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** The production datafile as KV holds it. */
async function currentDatafile(): Promise<Json> {
  const text = await env.DATAFILES.get(`datafiles/${production().sdkKey}`, "text");
  return text === null ? null : JSON.parse(text);
}

async function productionRevision(): Promise<number> {
  return (await apiJson("GET", `/environments/${production().id}`, 200)).revision;
}

function impression(
  experiment: Json,
  variationId: string,
  visitorId: string,
  at: number,
  revision = "2",
) {
  return {
    v: 1,
    type: "impression",
    uuid: uid("i"),
    sdkKey: production().sdkKey,
    revision,
    visitorId,
    experimentId: experiment.id,
    variationId,
    timestamp: at,
    source: "edge",
  } satisfies ImpressionMessage;
}

function conversion(event: Json, visitorId: string, at: number) {
  return {
    v: 1,
    type: "conversion",
    uuid: uid("c"),
    sdkKey: production().sdkKey,
    revision: "2",
    visitorId,
    eventId: event.id,
    eventKey: event.key,
    timestamp: at,
    source: "browser",
  } satisfies ConversionMessage;
}

/** Through the real consumer, in queue-sized batches. */
async function deliver(bodies: unknown[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 100) {
    const batch = createMessageBatch(
      "splitstream-events",
      bodies
        .slice(i, i + 100)
        .map((body) => ({ id: uid("msg"), timestamp: new Date(), attempts: 1, body })),
    );
    await handleEventBatch(batch, env);
    const result = await getQueueResult(batch, createExecutionContext());
    expect(result.ackAll).toBe(true);
  }
}

/**
 * `visitors[i]` (or `visitors`) visitors in variation i, decided by datafile `revision`, the first
 * `converters[i]` of them converting on `event`.
 */
async function feed(
  experiment: Json,
  event: Json,
  visitors: number | number[],
  converters: number[],
  revision = "2",
) {
  const at = Date.now() - 60 * 60 * 1000;
  const bodies: unknown[] = [];
  experiment.variations.forEach((v: Json, i: number) => {
    const count = Array.isArray(visitors) ? visitors[i]! : visitors;
    for (let n = 0; n < count; n++) {
      const visitorId = uid(`${v.key}-visitor`);
      bodies.push(impression(experiment, v.id, visitorId, at, revision));
      if (n < converters[i]!) bodies.push(conversion(event, visitorId, at + 60_000));
    }
  });
  await deliver(bodies);
}

const weightsOf = (experiment: Json): number[] => experiment.variations.map((v: Json) => v.weight);

describe("runBanditRound", () => {
  let page: Json;
  let read: Json;
  let pageviews: Json;

  beforeEach(async () => {
    page = await apiJson("POST", collection("pages"), 201, {
      body: { key: "article", conditions: ["or", { match: "substring", value: "/article/" }] },
    });
    read = await apiJson("POST", collection("events"), 201, {
      body: { key: "read_more", type: "custom" },
    });
    pageviews = await apiJson("POST", collection("events"), 201, {
      body: { key: "article_view", type: "pageview", pageId: page.id },
    });
  });

  async function experiment(key: string, policy: "bandit" | "manual", aggregator = "unique") {
    const x = await apiJson("POST", collection("experiments"), 201, {
      body: {
        key,
        pageIds: [page.id],
        allocationPolicy: policy,
        metrics: [{ eventId: aggregator === "unique" ? read.id : pageviews.id, aggregator }],
        variations: ["a", "b", "c"].map((k, i) => ({
          key: k,
          weight: [3334, 3333, 3333][i],
          changes: [{ type: "attribute", selector: "h1", attributes: { text: `Headline ${k}` } }],
        })),
      },
    });
    await apiJson("POST", `/experiments/${x.id}/start`, 200);
    return apiJson("GET", `/experiments/${x.id}`, 200);
  }

  const rowsOf = async (experimentId: string): Promise<Json[]> =>
    (await apiJson("GET", `/experiments/${experimentId}/allocations`, 200)).items;

  it("moves traffic to the clearly better arm, within the floor, and publishes one revision", async () => {
    const bandit = await experiment("bandit_headline", "bandit");
    const manual = await experiment("manual_headline", "manual");
    const counted = await experiment("count_metric", "bandit", "count");

    // No data yet: warming up (equal split kept, a row saying so), nothing published.
    const revision0 = await productionRevision();
    let outcomes = await runBanditRound(env, Date.now());
    const of = (x: Json) => outcomes.find((o) => o.experimentId === x.id);
    expect(of(bandit)).toMatchObject({ action: "recorded", reason: "warming_up", revision: null });
    expect(of(manual)).toBeUndefined();
    expect(of(counted)).toMatchObject({ action: "skipped", reason: "skipped" });
    expect(of(counted)!.message).toMatch(/aggregator is "count".*aggregator "unique"/);
    expect(await productionRevision()).toBe(revision0);
    expect((await rowsOf(bandit.id)).map((r) => r.reason)).toEqual(["warming_up"]);
    const skipped = await rowsOf(counted.id);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ reason: "skipped", applied: false, actor: "bandit" });

    // Arm c converts at 30 %, a and b at 4 % and 6 % (150 visitors each).
    await feed(bandit, read, 150, [6, 9, 45]);
    await feed(manual, read, 150, [6, 9, 45]);
    outcomes = await runBanditRound(env, Date.now());
    const moved = of(bandit)!;
    const w = moved.weights as Json;
    expect(moved).toMatchObject({ action: "reallocated", reason: "winner" });
    const [a, b, c] = bandit.variations.map((v: Json) => v.id);
    expect(moved.winner).toBe(c);
    expect(moved.probabilityBest[c]).toBeGreaterThan(0.99);
    // The floor (5 %) holds; the rest goes to the best arm.
    expect(w[a]).toBeGreaterThanOrEqual(500);
    expect(w[b]).toBeGreaterThanOrEqual(500);
    expect(w[c]).toBeGreaterThanOrEqual(8000);
    expect(w[a] + w[b] + w[c]).toBe(10000);

    // One new revision, in KV with the new trafficAllocation.
    const revision1 = await productionRevision();
    expect(revision1).toBe(revision0 + 1);
    expect(moved.revision).toBe(revision1);
    const datafile = await currentDatafile();
    expect(datafile.revision).toBe(String(revision1));
    const published = datafile.experiments.find((x: Json) => x.id === bandit.id);
    expect(published.trafficAllocation).toEqual([
      { entityId: a, endOfRange: w[a] },
      { entityId: b, endOfRange: w[a] + w[b] },
      { entityId: c, endOfRange: 10000 },
    ]);
    expect(datafile.web.experiments.find((x: Json) => x.id === bandit.id).allocationPolicy).toBe(
      "bandit",
    );
    const revisionRow = await env.DB.prepare(
      "SELECT published_by, reason FROM datafile_revisions WHERE environment_id = ? AND revision = ?",
    )
      .bind(production().id, revision1)
      .first<{ published_by: string; reason: string }>();
    expect(revisionRow).toEqual({
      published_by: "bandit",
      reason: "bandit re-allocation: bandit_headline",
    });

    // The experiment: new weights, version bumped once, audit entry by the bandit.
    const after = await apiJson("GET", `/experiments/${bandit.id}`, 200);
    expect(weightsOf(after)).toEqual([w[a], w[b], w[c]]);
    expect(after.version).toBe(bandit.version + 1);
    const audit = await env.DB.prepare(
      "SELECT actor, action, details FROM audit_log WHERE resource_id = ? ORDER BY id DESC LIMIT 1",
    )
      .bind(bandit.id)
      .first<{ actor: string; action: string; details: string }>();
    expect(audit).toMatchObject({ actor: "bandit", action: "reallocate" });
    expect(JSON.parse(audit!.details)).toMatchObject({ round: 2, winner: c });

    // The history (viewer), newest last.
    const viewer = await createToken("viewer");
    const history = await apiJson("GET", `/experiments/${bandit.id}/allocations`, 200, {
      token: viewer.token,
    });
    expect(history.allocationPolicy).toBe("bandit");
    expect(history.items.map((r: Json) => r.reason)).toEqual(["warming_up", "winner"]);
    expect(history.items[1]).toMatchObject({
      round: 2,
      applied: true,
      revision: revision1,
      winner: c,
      weights: moved.weights,
      previousWeights: { [a]: 3334, [b]: 3333, [c]: 3333 },
      visitors: { [a]: 150, [b]: 150, [c]: 150 },
      conversions: { [a]: 6, [b]: 9, [c]: 45 },
      actor: "bandit",
    });

    // The admin page shows the weights over time and the winner.
    const adminPage = await exports.default.fetch(
      `${API_ORIGIN}/_ss/admin/experiments/${bandit.id}`,
      { headers: { cookie: await adminSession() } },
    );
    expect(adminPage.status).toBe(200);
    const adminHtml = await adminPage.text();
    expect(adminHtml).toContain('data-section="bandit"');
    expect(adminHtml).toContain('data-winner="c"');
    expect(adminHtml).toMatch(/data-chart="line"[^>]*><title>Traffic weights over time/);
    for (const key of ["a", "b", "c"]) expect(adminHtml).toContain(`data-series="${key}"`);

    // Manual experiments are never touched, whatever their data.
    const manualAfter = await apiJson("GET", `/experiments/${manual.id}`, 200);
    expect(weightsOf(manualAfter)).toEqual([3334, 3333, 3333]);
    expect(manualAfter.version).toBe(manual.version);
    expect(await rowsOf(manual.id)).toEqual([]);

    // Unchanged data: no new revision, no new row; the skipped experiment is not re-recorded.
    outcomes = await runBanditRound(env, Date.now());
    expect(of(bandit)).toMatchObject({ action: "unchanged" });
    expect(of(counted)).toMatchObject({ action: "skipped" });
    expect(await productionRevision()).toBe(revision1);
    expect(await rowsOf(bandit.id)).toHaveLength(2);
    expect(await rowsOf(counted.id)).toHaveLength(1);
    expect((await apiJson("GET", `/experiments/${bandit.id}`, 200)).version).toBe(
      bandit.version + 1,
    );
    expect(MIN_WEIGHT_CHANGE_BP).toBeGreaterThan(0);

    // The SRM check follows the allocation over time: visitors decided by the new revision split
    // by the new weights are no mismatch (against today's weights alone they would be).
    await feed(bandit, read, [w[a] / 20, w[b] / 20, w[c] / 20], [0, 0, 0], String(revision1));
    const results = await apiJson("GET", `/experiments/${bandit.id}/results`, 200);
    expect(results.srm).toMatchObject({ checked: true, flagged: false });
    const total = 450 + 500;
    expect(results.srm.expected[a]).toBeCloseTo((450 * 3334 + 500 * w[a]) / (total * 10000), 9);
    expect(results.variations.map((v: Json) => v.weight)).toEqual([w[a], w[b], w[c]]);
  });

  it("serves the declared winner to 100 % and stops re-allocating", async () => {
    const bandit = await experiment("bandit_winner", "bandit");
    const [, , c] = bandit.variations.map((v: Json) => v.id);

    // Before any verdict with a winner: 409, unless the variation is named.
    const early = await api("POST", `/experiments/${bandit.id}/serve-winner`);
    expect(early.status).toBe(409);
    expect(((await early.json()) as ApiErrorBody).error.message).toMatch(/not declared a winner/);
    const unknown = await api("POST", `/experiments/${bandit.id}/serve-winner`, {
      body: { variationId: "nope" },
    });
    expect(unknown.status).toBe(422);
    expect(((await unknown.json()) as ApiErrorBody).error.details).toEqual([
      { path: "$.body.variationId", message: expect.stringMatching(/not a variation id or key/) },
    ]);
    const viewer = await createToken("viewer");
    expect(
      (await api("POST", `/experiments/${bandit.id}/serve-winner`, { token: viewer.token })).status,
    ).toBe(403);

    await feed(bandit, read, 150, [6, 9, 45]);
    await runBanditRound(env, Date.now());
    const revision = await productionRevision();

    const served = await apiJson("POST", `/experiments/${bandit.id}/serve-winner`, 200);
    expect(served.winner).toEqual({ id: c, key: "c" });
    expect(served.experiment.allocationPolicy).toBe("manual");
    expect(weightsOf(served.experiment)).toEqual([0, 0, 10000]);
    expect(served.published.find((p: Json) => p.environmentKey === "production")).toMatchObject({
      changed: true,
      revision: revision + 1,
    });
    const datafile = await currentDatafile();
    expect(datafile.experiments.find((x: Json) => x.id === bandit.id).trafficAllocation).toEqual([
      { entityId: c, endOfRange: 10000 },
    ]);
    const rows = await rowsOf(bandit.id);
    expect(rows.at(-1)).toMatchObject({
      reason: "winner_served",
      winner: c,
      weights: { [c]: 10000 },
      applied: true,
      revision: revision + 1,
      actor: "admin-token",
    });

    // The bandit leaves it alone now (policy manual).
    await feed(bandit, read, 20, [10, 10, 0]);
    const outcomes = await runBanditRound(env, Date.now());
    expect(outcomes.find((o) => o.experimentId === bandit.id)).toBeUndefined();
    expect(weightsOf(await apiJson("GET", `/experiments/${bandit.id}`, 200))).toEqual([
      0, 0, 10000,
    ]);
  });
});

describe("the scheduled handler", () => {
  it("runs the retention and the bandit round; a failing bandit round does not stop the retention", async () => {
    const failing = d1FailingOn(env.DB, "allocation_policy = 'bandit'", "bandit boom");
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    await expect(
      worker.scheduled(
        createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
        { ...env, DB: failing },
      ),
    ).rejects.toThrow("bandit boom");
    expect(log.mock.calls.flat().join(" ")).toMatch(/retention \(17 \* \* \* \*\) deleted/);
    expect(error.mock.calls.flat().join(" ")).toMatch(/bandit round failed/);
  });
});

describe("POST /projects/{projectId}/headline-tests", () => {
  it("creates the page, a click event on the CMS marker and a bandit experiment in one request", async () => {
    const revision0 = await productionRevision();
    const created = await apiJson("POST", collection("headline-tests"), 201, {
      body: {
        key: "hero_headline",
        url: { match: "substring", value: "/article/" },
        headlineId: "hero",
        headlines: [
          { text: "Original" },
          { text: "Second", imageUrl: "https://img.example.com/2.jpg" },
          { text: "Third" },
        ],
      },
    });
    expect(created.created).toEqual({ page: true, event: true });
    expect(created.page).toMatchObject({
      key: "hero_headline",
      conditions: ["or", { match: "substring", value: "/article/" }],
    });
    expect(created.event).toMatchObject({
      key: "hero_headline_click",
      type: "click",
      pageId: created.page.id,
      selector: '[data-ss-headline="hero"]',
    });
    const x = created.experiment;
    expect(x).toMatchObject({
      key: "hero_headline",
      type: "ab",
      allocationPolicy: "bandit",
      pageIds: [created.page.id],
      metrics: [{ eventId: created.event.id, aggregator: "unique" }],
      status: { production: "Not started" },
    });
    expect(x.variations.map((v: Json) => [v.key, v.weight])).toEqual([
      ["original", 3334],
      ["headline_2", 3333],
      ["headline_3", 3333],
    ]);
    expect(x.variations[0].changes).toEqual([]);
    expect(x.variations[1].changes).toEqual([
      { type: "attribute", selector: '[data-ss-headline="hero"]', attributes: { text: "Second" } },
      {
        type: "attribute",
        selector: '[data-ss-headline-image="hero"]',
        attributes: { src: "https://img.example.com/2.jpg" },
      },
    ]);
    // One publish for everything.
    expect(await productionRevision()).toBe(revision0 + 1);

    // A second test on the same page and selector reuses the click event, and can start at once.
    const again = await apiJson("POST", collection("headline-tests"), 201, {
      body: {
        key: "hero_headline_2",
        pageId: created.page.id,
        headlineId: "hero",
        headlines: [{ text: "Original" }, { text: "Another" }],
        start: true,
      },
    });
    expect(again.created).toEqual({ page: false, event: false });
    expect(again.event.id).toBe(created.event.id);
    expect(again.experiment.status.production).toBe("Running");
    expect(again.experiment.status.development).toBe("Not started");
    const datafile = await currentDatafile();
    expect(datafile.experiments.find((e: Json) => e.id === again.experiment.id).status).toBe(
      "Running",
    );
  });

  it("validates with JSON paths into the request", async () => {
    const custom = await apiJson("POST", collection("events"), 201, {
      body: { key: "subscribe", type: "custom" },
    });
    const problems = async (body: Json): Promise<Json[]> => {
      const response = await api("POST", collection("headline-tests"), { body });
      expect(response.status).toBe(422);
      return ((await response.json()) as ApiErrorBody).error.details as Json[];
    };
    const base = {
      key: "h",
      url: { match: "substring", value: "/a/" },
      headlineId: "hero",
      metricEventId: custom.id,
      headlines: [{ text: "A" }, { text: "B" }],
    };
    expect((await problems({ ...base, headlines: [{ text: "A" }] }))[0].path).toBe(
      "$.body.headlines",
    );
    expect((await problems({ ...base, pageId: "123" })).map((d) => d.path)).toEqual([
      "$.body.pageId",
    ]);
    expect((await problems({ ...base, selector: "h1" })).map((d) => d.path)).toEqual([
      "$.body.selector",
    ]);
    const { headlineId: _omit, ...noTarget } = base;
    void _omit;
    expect((await problems(noTarget)).map((d) => d.path)).toEqual(["$.body.headlineId"]);
    expect(
      (
        await problems({
          ...base,
          headlines: [{ text: "A", imageUrl: "https://x.example/a.png" }, { text: "B" }],
        })
      ).map((d) => d.path),
    ).toEqual(["$.body.headlines[0].imageUrl"]);
    expect(
      (
        await problems({
          ...base,
          headlines: [{ text: "A" }, { text: "B", imageUrl: "javascript:alert(1)" }],
        })
      ).map((d) => d.path),
    ).toContain("$.body.headlines[1].imageUrl");
    expect(
      (await problems({ ...base, headlineId: undefined, selector: "h1[" })).map((d) => d.path),
    ).toContain("$.body.selector");
    // The new page is immediate: the edge must be able to run the selector.
    const sibling = await problems({ ...base, headlineId: undefined, selector: "h1 + p" });
    expect(sibling).toEqual([
      {
        path: "$.body.selector",
        message: expect.stringContaining(
          'the "+" combinator (next sibling) cannot run at the edge',
        ),
      },
    ]);
    expect(
      (await problems({ ...base, url: { match: "regex", value: "(" } })).map((d) => d.path),
    ).toEqual(["$.body.url.value"]);
    expect((await problems({ ...base, metricEventId: "999" })).map((d) => d.path)).toEqual([
      "$.body.metricEventId",
    ]);
    // Nothing was created by the refused requests.
    const pages = await apiJson("GET", collection("pages"), 200);
    expect(pages.items).toEqual([]);
    // A viewer may not create one.
    const viewer = await createToken("viewer");
    expect(
      (await api("POST", collection("headline-tests"), { token: viewer.token, body: base })).status,
    ).toBe(403);
  });
});

describe("end to end: headline test → edge → events → scheduled handler → edge", () => {
  const SITE = "https://news.example.com";
  const ORIGINAL = "Council approves budget";
  const BETTER = "What the new budget means for you";
  const ARTICLE = `<!doctype html><html><head><title>News</title></head><body><h1 data-ss-headline="hero">${ORIGINAL}</h1><p>Text.</p></body></html>`;
  let origin: MockedOrigin;

  beforeEach(() => {
    origin = mockOrigin(
      () => new Response(ARTICLE, { headers: { "content-type": "text/html; charset=utf-8" } }),
    );
    resetDatafileStore();
  });
  afterEach(() => {
    origin.restore();
    resetDatafileStore();
  });

  interface Browser {
    cookies: Map<string, string>;
    variation: string | null;
  }
  const cookieHeader = (cookies: Map<string, string>) =>
    [...cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  const UA =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

  it("re-allocates from the conversions, new visitors follow the new weights, returning ones keep their headline", async () => {
    const subscribe = await apiJson("POST", collection("events"), 201, {
      body: { key: "subscribe", type: "custom" },
    });
    const { experiment } = await apiJson("POST", collection("headline-tests"), 201, {
      body: {
        key: "budget_story",
        url: { match: "substring", value: "/article/" },
        headlineId: "hero",
        headlines: [{ text: ORIGINAL }, { text: BETTER }],
        metricEventId: subscribe.id,
        start: true,
      },
    });
    const site = routedWorker([
      {
        pattern: "news.example.com/*",
        sdk_key: production().sdkKey,
        origin: "https://origin.example.com",
      },
    ]);

    async function view(browser: Browser, drop: string[] = []) {
      const jar = new Map([...browser.cookies].filter(([k]) => !drop.includes(k)));
      const headers: Record<string, string> = { "user-agent": UA, "accept-encoding": "identity" };
      if (jar.size > 0) headers.cookie = cookieHeader(jar);
      const response = await site(`${SITE}/article/42`, { headers });
      expect(response.status).toBe(200);
      const html = await response.text();
      const variation = decisionsOf(response).get("budget_story") ?? null;
      // What the header says is what the page shows.
      expect(html).toContain(
        `<h1 data-ss-headline="hero">${variation === "headline_2" ? BETTER : ORIGINAL}</h1>`,
      );
      return { response, variation };
    }
    async function newVisitor(): Promise<Browser> {
      const browser: Browser = { cookies: new Map(), variation: null };
      const { response, variation } = await view(browser);
      for (const [k, v] of setCookiesOf(response)) browser.cookies.set(k, v);
      browser.variation = variation;
      return browser;
    }

    // Phase 1: equal split.
    const browsers: Browser[] = [];
    for (let i = 0; i < 280; i++) browsers.push(await newVisitor());
    const of = (key: string) => browsers.filter((b) => b.variation === key);
    expect(of("original").length).toBeGreaterThanOrEqual(100);
    expect(of("headline_2").length).toBeGreaterThanOrEqual(100);
    expect(of("original").length + of("headline_2").length).toBe(280);

    // Conversions: half of the better headline's readers subscribe, one in 25 of the original's.
    let expectedConverters = 0;
    for (const [key, every] of [
      ["headline_2", 2],
      ["original", 25],
    ] as const)
      for (const [i, browser] of of(key).entries()) {
        if (i % every !== 0) continue;
        expectedConverters++;
        const response = await site(`${SITE}/_ss/events`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": UA,
            origin: SITE,
            cookie: cookieHeader(browser.cookies),
          },
          body: JSON.stringify({ events: [{ key: "subscribe" }] }),
        });
        expect(response.status, await response.text()).toBe(204);
      }

    // The real queue feeds the real consumer; wait until the results show everything.
    let results: Json;
    for (let n = 0; n < 180; n++) {
      results = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
      const visitors = results.variations.reduce((s: number, v: Json) => s + v.visitors, 0);
      const converters = results.metrics[0].variations.reduce(
        (s: number, v: Json) => s + v.converters,
        0,
      );
      if (visitors === 280 && converters === expectedConverters) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(results.variations.map((v: Json) => v.visitors)).toEqual([
      of("original").length,
      of("headline_2").length,
    ]);

    // The Worker's scheduled handler (cron) re-allocates and publishes.
    const revision = await productionRevision();
    await worker.scheduled(
      createScheduledController({ scheduledTime: Date.now(), cron: "17 * * * *" }),
      env,
    );
    const history = await apiJson("GET", `/experiments/${experiment.id}/allocations`, 200);
    const [original, better] = experiment.variations.map((v: Json) => v.id);
    expect(history.items.at(-1)).toMatchObject({
      reason: "winner",
      winner: better,
      applied: true,
      weights: { [original]: 500, [better]: 9500 },
      revision: revision + 1,
    });

    // After the edge's datafile cache refresh, new visitors follow the new weights.
    resetDatafileStore();
    const fresh: Browser[] = [];
    for (let i = 0; i < 100; i++) fresh.push(await newVisitor());
    expect(fresh.filter((b) => b.variation === "headline_2").length).toBeGreaterThanOrEqual(80);

    // Returning visitors (same ss_vid and ss_dec) keep their headline; without ss_dec most of the
    // original's readers would now be bucketed into the better headline.
    let rebucketed = 0;
    for (const browser of of("original")) {
      expect((await view(browser)).variation).toBe("original");
      if ((await view(browser, ["ss_dec"])).variation === "headline_2") rebucketed++;
    }
    expect(rebucketed).toBeGreaterThan(of("original").length / 2);
    for (const browser of of("headline_2").slice(0, 20))
      expect((await view(browser)).variation).toBe("headline_2");

    // The winner is served to 100 % of new visitors; returning ones still keep theirs.
    const served = await apiJson("POST", `/experiments/${experiment.id}/serve-winner`, 200);
    expect(served.winner.key).toBe("headline_2");
    resetDatafileStore();
    for (let i = 0; i < 20; i++) expect((await newVisitor()).variation).toBe("headline_2");
    expect((await view(of("original")[0]!)).variation).toBe("original");

    // Results over the three allocations (50/50, 5/95, 0/100): no sample-ratio mismatch, because
    // the expected split follows the weights each revision served.
    for (let n = 0; n < 180; n++) {
      results = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
      if (results.variations.reduce((s: number, v: Json) => s + v.visitors, 0) === 400) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(results.variations.reduce((s: number, v: Json) => s + v.visitors, 0)).toBe(400);
    expect(results.revisions.length).toBeGreaterThanOrEqual(3);
    expect(results.srm).toMatchObject({ checked: true, flagged: false });
    expect(results.srm.expected[better]).toBeGreaterThan(0.6);
  }, 180_000);
});
