/**
 * Experiment results (docs/api.md "Results"): counts read from the aggregates the events queue
 * consumer writes, fed here through handleEventBatch with real D1.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { utcDay } from "../../src/events/aggregate";
import { compareVariation } from "../../src/core/stats/index";
import { handleEventBatch } from "../../src/events/consumer";
import type { ConversionMessage, ImpressionMessage } from "../../src/shared/event-messages";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const DAY_MS = 24 * 60 * 60 * 1000;
// Noon UTC three days ago (the consumer accepts timestamps from the last 30 days).
const T1 = Math.floor(Date.now() / DAY_MS - 3) * DAY_MS + DAY_MS / 2;
const T2 = T1 + DAY_MS;
const DAY1 = utcDay(T1);
const DAY2 = utcDay(T2);

let seq = 0;
const uid = (prefix: string) => `${prefix}-${crypto.randomUUID().slice(0, 8)}-${++seq}`;

let project: ProjectWithEnvironments;
let page: { id: string };
let purchase: { id: string; key: string };
let signup: { id: string; key: string };
let experiment: Json;
let control: string;
let bold: string;

const sdkKey = (environmentKey: string) =>
  project.environments.find((e) => e.key === environmentKey)!.sdkKey;

function imp(
  sdk: string,
  visitorId: string,
  variationId: string,
  timestamp: number,
  revision = "2",
): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: uid("i"),
    sdkKey: sdk,
    revision,
    visitorId,
    experimentId: experiment.id,
    variationId,
    timestamp,
    source: "edge",
  };
}

function conv(
  sdk: string,
  visitorId: string,
  event: { id: string; key: string },
  timestamp: number,
  extra: { revenue?: number; value?: number } = {},
): ConversionMessage {
  return {
    v: 1,
    type: "conversion",
    uuid: uid("c"),
    sdkKey: sdk,
    revision: "2",
    visitorId,
    eventId: event.id,
    eventKey: event.key,
    timestamp,
    source: "browser",
    ...extra,
  };
}

async function deliver(bodies: unknown[]): Promise<void> {
  const batch = createMessageBatch(
    "splitstream-events",
    bodies.map((body) => ({ id: uid("msg"), timestamp: new Date(), attempts: 1, body })),
  );
  await handleEventBatch(batch, env);
  const result = await getQueueResult(batch, createExecutionContext());
  expect(result.ackAll).toBe(true);
}

beforeEach(async () => {
  project = await createProject();
  page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
  });
  purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  signup = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "signup", type: "custom" },
  });
  experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "headline",
      pageIds: [page.id],
      metrics: [
        { eventId: purchase.id, aggregator: "sum", field: "revenue" },
        { eventId: signup.id, aggregator: "unique" },
      ],
      variations: [
        { key: "control", weight: 5000 },
        { key: "bold", weight: 5000 },
      ],
    },
  });
  await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
  control = experiment.variations[0].id;
  bold = experiment.variations[1].id;
});

describe("GET /experiments/{id}/results", () => {
  async function feed() {
    const prod = sdkKey("production");
    const [a, b, c, d] = ["a", "b", "c", "d"].map((v) => uid(v));
    await deliver([
      imp(prod, a!, control, T1, "2"),
      imp(prod, b!, control, T2, "3"),
      imp(prod, a!, control, T2, "3"), // a second impression: counted once
      imp(prod, c!, bold, T1, "2"),
      imp(prod, d!, bold, T2, "3"),
      conv(prod, a!, purchase, T1 + 1000, { revenue: 1000 }),
      conv(prod, a!, purchase, T2, { revenue: 500 }),
      conv(prod, b!, signup, T2 + 1000),
      conv(prod, c!, purchase, T1 + 1000, { revenue: 2000, value: 3 }),
      conv(prod, d!, purchase, T2 - 1000), // before d's first impression: not attributed
      conv(prod, uid("stranger"), purchase, T2), // never exposed
      // development traffic stays out of production results
      imp(sdkKey("development"), uid("dev"), bold, T1),
    ]);
  }

  it("returns the exact counts per variation and metric, with the contributing revisions", async () => {
    await feed();
    const viewer = await createToken("viewer");
    const r = await apiJson("GET", `/experiments/${experiment.id}/results`, 200, {
      token: viewer.token,
    });
    // The counts (the statistics over them are checked in "statistics" below).
    expect(r).toMatchObject({
      experimentId: experiment.id,
      experimentKey: "headline",
      environment: {
        id: project.environments.find((e) => e.key === "production")!.id,
        key: "production",
        sdkKey: sdkKey("production"),
      },
      revisions: ["2", "3"],
      from: null,
      to: null,
      variations: [
        { id: control, key: "control", visitors: 2 },
        { id: bold, key: "bold", visitors: 2 },
      ],
      metrics: [
        {
          eventId: purchase.id,
          eventKey: "purchase",
          aggregator: "sum",
          field: "revenue",
          primary: true,
          variations: [
            {
              variationId: control,
              converters: 1,
              events: 2,
              revenueSum: 1500,
              revenueSumSq: 1000 ** 2 + 500 ** 2,
              valueSum: 0,
              valueSumSq: 0,
              // Per visitor: a bought twice (1000, then 500): one visitor with 2 events, 1500.
              eventsVisitorSumSq: 2 ** 2,
              revenueVisitorSumSq: 1500 ** 2,
              valueVisitorSumSq: 0,
            },
            {
              variationId: bold,
              converters: 1,
              events: 1,
              revenueSum: 2000,
              revenueSumSq: 2000 ** 2,
              valueSum: 3,
              valueSumSq: 9,
              eventsVisitorSumSq: 1,
              revenueVisitorSumSq: 2000 ** 2,
              valueVisitorSumSq: 9,
            },
          ],
        },
        {
          eventId: signup.id,
          eventKey: "signup",
          aggregator: "unique",
          primary: false,
          variations: [
            {
              variationId: control,
              converters: 1,
              events: 1,
              revenueSum: 0,
              revenueSumSq: 0,
              valueSum: 0,
              valueSumSq: 0,
            },
            {
              variationId: bold,
              converters: 0,
              events: 0,
              revenueSum: 0,
              revenueSumSq: 0,
              valueSum: 0,
              valueSumSq: 0,
            },
          ],
        },
      ],
      daily: [
        {
          day: DAY1,
          variationId: control,
          visitors: 1,
          converters: { [purchase.id]: 1, [signup.id]: 0 },
        },
        {
          day: DAY1,
          variationId: bold,
          visitors: 1,
          converters: { [purchase.id]: 1, [signup.id]: 0 },
        },
        {
          day: DAY2,
          variationId: control,
          visitors: 1,
          converters: { [purchase.id]: 0, [signup.id]: 1 },
        },
        {
          day: DAY2,
          variationId: bold,
          visitors: 1,
          converters: { [purchase.id]: 0, [signup.id]: 0 },
        },
      ],
    });
  });

  it("filters by day range and by environment", async () => {
    await feed();
    const day2 = await apiJson(
      "GET",
      `/experiments/${experiment.id}/results?from=${DAY2}&to=${DAY2}`,
      200,
    );
    expect(day2.from).toBe(DAY2);
    expect(day2.to).toBe(DAY2);
    expect(day2.revisions).toEqual(["2", "3"]); // a's day-2 purchase is under a's revision 2
    expect(day2.variations.map((v: Json) => v.visitors)).toEqual([1, 1]);
    expect(day2.metrics[0].variations[0]).toMatchObject({
      converters: 0,
      events: 1,
      revenueSum: 500,
      // The day's increment of a's per-visitor Σx² (running total 1000 → 1500): with `from`, an
      // approximation for visitors whose conversions span it (docs/statistics.md).
      eventsVisitorSumSq: 2 ** 2 - 1,
      revenueVisitorSumSq: 1500 ** 2 - 1000 ** 2,
    });
    expect(day2.daily.map((d: Json) => d.day)).toEqual([DAY2, DAY2]);

    const day1 = await apiJson("GET", `/experiments/${experiment.id}/results?to=${DAY1}`, 200);
    expect(day1.revisions).toEqual(["2"]);
    expect(day1.metrics[0].variations.map((v: Json) => v.revenueSum)).toEqual([1000, 2000]);
    // Without `from`: exact, the visitors' totals up to `to`, squared.
    expect(day1.metrics[0].variations.map((v: Json) => v.revenueVisitorSumSq)).toEqual([
      1000 ** 2,
      2000 ** 2,
    ]);

    const dev = await apiJson(
      "GET",
      `/experiments/${experiment.id}/results?environment=development`,
      200,
    );
    expect(dev.environment).toMatchObject({ key: "development", sdkKey: sdkKey("development") });
    expect(dev.revisions).toEqual(["2"]);
    expect(dev.variations).toEqual([
      { id: control, key: "control", visitors: 0, weight: 5000 },
      { id: bold, key: "bold", visitors: 1, weight: 5000 },
    ]);
    expect(dev.metrics[0].variations.every((v: Json) => v.converters === 0)).toBe(true);
  });

  it("answers zero counts before any event, 404 for an unknown experiment, 422 for bad input", async () => {
    const empty = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
    expect(empty.revisions).toEqual([]);
    expect(empty.variations.map((v: Json) => v.visitors)).toEqual([0, 0]);
    expect(empty.daily).toEqual([]);

    const missing = await api("GET", "/experiments/nope/results");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as Json).error.code).toBe("not_found");

    for (const [query, path] of [
      ["from=2025-13-01", "$.query.from"],
      ["to=yesterday", "$.query.to"],
      ["from=2025-03-02&to=2025-03-01", "$.query.to"],
      ["environment=staging", "$.query.environment"],
    ] as const) {
      const r = await api("GET", `/experiments/${experiment.id}/results?${query}`);
      expect(r.status, query).toBe(422);
      const body = (await r.json()) as Json;
      expect(body.error.code).toBe("validation_failed");
      expect(body.error.details.map((d: Json) => d.path)).toContain(path);
    }
    expect(
      (await api("GET", `/experiments/${experiment.id}/results`, { token: null })).status,
    ).toBe(401);
  });

  it("serves the counts as CSV, one row per metric and variation", async () => {
    await feed();
    const r = await api("GET", `/experiments/${experiment.id}/results.csv`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/csv/);
    const lines = (await r.text()).trimEnd().split("\r\n");
    expect(lines).toEqual([
      "metric_event_id,metric_event_key,aggregator,field,primary,variation_id,variation_key,visitors,converters,events,revenue_sum,revenue_sum_sq,value_sum,value_sum_sq,events_visitor_sum_sq,revenue_visitor_sum_sq,value_visitor_sum_sq,total,mean,lift,lift_ci_low,lift_ci_high,p_value,q_value,verdict,cuped_variance_reduction,cuped_difference,cuped_difference_se",
      `${purchase.id},purchase,sum,revenue,true,${control},control,2,1,2,1500,1250000,0,0,4,2250000,0,1500,750,,,,,,baseline,,,`,
      `${purchase.id},purchase,sum,revenue,true,${bold},bold,2,1,1,2000,4000000,3,9,1,4000000,9,2000,1000,,,,,,not_enough_data,,,`,
      `${signup.id},signup,unique,,false,${control},control,2,1,1,0,0,0,0,1,0,0,1,0.5,,,,,,baseline,,,`,
      `${signup.id},signup,unique,,false,${bold},bold,2,0,0,0,0,0,0,0,0,0,0,0,,,,,,not_enough_data,,,`,
    ]);
  });
});

describe("statistics", () => {
  /** `n[i]` visitors of variation i today, `k[i]` of them sign up (signup is the 2nd metric). */
  async function feedRates(n: [number, number], k: [number, number]) {
    const prod = sdkKey("production");
    const now = Date.now() - 60_000;
    const messages: unknown[] = [];
    [control, bold].forEach((variationId, v) => {
      for (let i = 0; i < n[v]!; i++) {
        const visitor = uid(`r${v}`);
        messages.push(imp(prod, visitor, variationId, now));
        if (i < k[v]!) messages.push(conv(prod, visitor, signup, now + 1000));
      }
    });
    for (let i = 0; i < messages.length; i += 100) await deliver(messages.slice(i, i + 100));
  }

  it("compares each variation with the baseline: lift, interval, p, q, verdict — as the stats core does", async () => {
    await feedRates([1000, 1000], [100, 140]);
    const r = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
    expect(r.analysis).toEqual({
      mode: "sequential",
      alpha: 0.1,
      correction: "bh",
      mde: 0.05,
      power: 0.8,
      nStar: 5000,
      cuped: true,
      baselineVariationId: control,
    });
    const signupMetric = r.metrics[1];
    expect(signupMetric.primary).toBe(false);
    const [c, b] = signupMetric.variations;
    expect(c).toMatchObject({ baseline: true, visitors: 1000, conversions: 100, total: 100 });
    expect(c.mean).toBeCloseTo(0.1, 12);
    expect(c.verdict).toBe("baseline");
    expect(b.mean).toBeCloseTo(0.14, 12);
    expect(b.lift.estimate).toBeCloseTo(0.4, 12);
    // The same numbers as the pure core on the same sufficient statistics.
    const expected = compareVariation(
      { n: 1000, sum: 100, sumSq: 100 },
      { n: 1000, sum: 140, sumSq: 140 },
      { mode: "sequential", alpha: 0.1 },
    );
    expect(b.pValue).toBeCloseTo(expected.pValue!, 12);
    expect(b.lift.ci[0]).toBeCloseTo(expected.ci![0]!, 12);
    expect(b.lift.ci[1]).toBeCloseTo(expected.ci![1]!, 12);
    // Secondary metrics are corrected together: the purchase metric (primary) has no data, so
    // the signup comparison is the only secondary p-value and q = p.
    expect(b.qValue).toBeCloseTo(b.pValue, 12);
    expect(b.significant).toBe(b.qValue <= 0.1);
    expect(b.verdict).toBe(b.significant ? "winner" : "inconclusive");
    // Nobody converted before exposure: no covariate, no CUPED.
    expect(b.cuped).toBeNull();
    // The primary metric (revenue) has no conversions at all: not enough data, never NaN.
    expect(r.metrics[0].variations[1]).toMatchObject({
      verdict: "not_enough_data",
      reason: "no_conversions",
      pValue: null,
    });
    expect(r.srm).toMatchObject({ checked: true, flagged: false });
    expect(r.srm.expected).toEqual({ [control]: 0.5, [bold]: 0.5 });
    expect(signupMetric.visitorsNeededPerVariation).toBeGreaterThan(1000);
    // Cumulative series: one day of data.
    expect(
      r.cumulative
        .filter((p: Json) => p.eventId === signup.id)
        .map((p: Json) => [p.variationId, p.visitors, p.total]),
    ).toEqual([
      [control, 1000, 100],
      [bold, 1000, 140],
    ]);
    expect(JSON.stringify(r)).not.toMatch(/NaN|Infinity/);
  });

  it("mode=fixed, alpha, baseline by key and holm change the analysis; bad values are 422", async () => {
    await feedRates([1000, 1000], [100, 140]);
    const fixed = await apiJson(
      "GET",
      `/experiments/${experiment.id}/results?mode=fixed&alpha=0.05&correction=holm`,
      200,
    );
    const expected = compareVariation(
      { n: 1000, sum: 100, sumSq: 100 },
      { n: 1000, sum: 140, sumSq: 140 },
      { mode: "fixed", alpha: 0.05 },
    );
    const b = fixed.metrics[1].variations[1];
    expect(b.pValue).toBeCloseTo(expected.pValue!, 12);
    expect(b.verdict).toBe(expected.pValue! <= 0.05 ? "winner" : "inconclusive");
    expect(fixed.analysis).toMatchObject({ mode: "fixed", alpha: 0.05, correction: "holm" });

    const flipped = await apiJson(
      "GET",
      `/experiments/${experiment.id}/results?baseline=bold&mode=fixed`,
      200,
    );
    expect(flipped.analysis.baselineVariationId).toBe(bold);
    const c = flipped.metrics[1].variations[0];
    expect(c.lift.estimate).toBeCloseTo(100 / 140 - 1, 12);
    expect(["loser", "inconclusive"]).toContain(c.verdict);

    for (const [query, path] of [
      ["mode=bayesian", "$.query.mode"],
      ["alpha=0", "$.query.alpha"],
      ["alpha=0.9", "$.query.alpha"],
      ["alpha=abc", "$.query.alpha"],
      ["mde=-1", "$.query.mde"],
      ["nStar=5", "$.query.nStar"],
      ["baseline=nope", "$.query.baseline"],
      ["correction=bonferroni", "$.query.correction"],
    ] as const) {
      const r = await api("GET", `/experiments/${experiment.id}/results?${query}`);
      expect(r.status, query).toBe(422);
      const body = (await r.json()) as Json;
      expect(
        body.error.details.map((d: Json) => d.path),
        query,
      ).toContain(path);
    }
  });

  it("uses per-visitor sums of squares for count and sum metrics (repeat converters)", async () => {
    // Metrics over the same purchase event: count, sum of revenue, sum of value.
    const repeat = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "repeat",
        pageIds: [page.id],
        metrics: [
          { eventId: purchase.id, aggregator: "sum", field: "revenue" },
          { eventId: purchase.id, aggregator: "count" },
          { eventId: purchase.id, aggregator: "sum", field: "value" },
        ],
        variations: [
          { key: "control", weight: 5000 },
          { key: "bold", weight: 5000 },
        ],
      },
    });
    await apiJson("POST", `/experiments/${repeat.id}/start`, 200);
    const [c, b] = [repeat.variations[0].id as string, repeat.variations[1].id as string];
    const prod = sdkKey("production");
    const messages: ConversionMessage[] = [];
    const impressions: ImpressionMessage[] = [];
    const visitor = (variationId: string, i: number) => {
      const id = uid(`p${i}`);
      impressions.push({ ...imp(prod, id, variationId, T1), experimentId: repeat.id });
      return id;
    };
    const buy = (id: string, at: number, revenue: number, value: number) =>
      messages.push(conv(prod, id, purchase, at, { revenue, value }));
    for (let i = 0; i < 40; i++) {
      const id = visitor(c, i);
      // control: 10 visitors buy twice (1000 + 500 cents, value 1 + 2), 5 once (800, value 1)
      if (i < 10) {
        buy(id, T1 + 1000, 1000, 1);
        buy(id, T2, 500, 2);
      } else if (i < 15) buy(id, T1 + 1000, 800, 1);
    }
    for (let i = 0; i < 40; i++) {
      const id = visitor(b, i);
      // bold: 12 visitors buy once (1500, value 3), 2 three times (200, value 0.5 each)
      if (i < 12) buy(id, T2, 1500, 3);
      else if (i < 14) for (let k = 0; k < 3; k++) buy(id, T1 + 1000 + k, 200, 0.5);
    }
    // Conversions before their impressions (in queue order), later ones first: attribution and
    // running totals do not depend on it.
    const all = [...messages.reverse(), ...impressions];
    for (let i = 0; i < all.length; i += 50) await deliver(all.slice(i, i + 50));

    // Per visitor, by hand: x = the visitor's total.
    const stats = {
      revenue: [
        { n: 40, sum: 10 * 1500 + 5 * 800, sumSq: 10 * 1500 ** 2 + 5 * 800 ** 2 },
        { n: 40, sum: 12 * 1500 + 2 * 600, sumSq: 12 * 1500 ** 2 + 2 * 600 ** 2 },
      ],
      count: [
        { n: 40, sum: 10 * 2 + 5, sumSq: 10 * 2 ** 2 + 5 },
        { n: 40, sum: 12 + 2 * 3, sumSq: 12 + 2 * 3 ** 2 },
      ],
      value: [
        { n: 40, sum: 10 * 3 + 5, sumSq: 10 * 3 ** 2 + 5 },
        { n: 40, sum: 12 * 3 + 2 * 1.5, sumSq: 12 * 3 ** 2 + 2 * 1.5 ** 2 },
      ],
    };
    // What the per-event sums of squares would have said instead (a count metric's per-event
    // Σx² is its number of events).
    const perEvent = {
      revenue: [10 * (1000 ** 2 + 500 ** 2) + 5 * 800 ** 2, 12 * 1500 ** 2 + 6 * 200 ** 2],
      count: [25, 18],
      value: [10 * (1 + 4) + 5, 12 * 9 + 6 * 0.25],
    };
    for (const mode of ["sequential", "fixed"] as const) {
      const r = await apiJson("GET", `/experiments/${repeat.id}/results?mode=${mode}`, 200);
      (["revenue", "count", "value"] as const).forEach((name, m) => {
        const [control, bold] = r.metrics[m].variations;
        const [sc, sb] = stats[name];
        const field = { revenue: "revenue", count: "events", value: "value" }[name];
        expect([control[`${field}VisitorSumSq`], bold[`${field}VisitorSumSq`]], name).toEqual([
          sc!.sumSq,
          sb!.sumSq,
        ]);
        expect([control.total, bold.total], name).toEqual([sc!.sum, sb!.sum]);
        const eventSumSq = (v: Json) => (name === "count" ? v.events : v[`${field}SumSq`]);
        expect([eventSumSq(control), eventSumSq(bold)], name).toEqual(perEvent[name]);
        // the API declares count metrics non-negative (the lift interval is cut at −100 %)
        const expected = compareVariation(sc!, sb!, {
          mode,
          alpha: 0.1,
          nonNegative: name === "count",
        });
        expect(expected.pValue, name).not.toBeNull();
        expect(bold.pValue, `${mode} ${name}`).toBeCloseTo(expected.pValue!, 12);
        expect(bold.lift.estimate).toBeCloseTo(expected.relative!.estimate, 12);
        expect(bold.lift.se).toBeCloseTo(expected.relative!.se, 12);
        expect(bold.lift.ci[0]).toBeCloseTo(expected.ci![0]!, 12);
        expect(bold.lift.ci[1]).toBeCloseTo(expected.ci![1]!, 12);
        expect(bold.difference.pValue).toBeCloseTo(expected.absolute!.pValue, 12);
        // …and not what the per-event sums of squares give.
        const wrong = compareVariation(
          { ...sc!, sumSq: perEvent[name][0]! },
          { ...sb!, sumSq: perEvent[name][1]! },
          { mode, alpha: 0.1 },
        );
        expect(Math.abs(wrong.relative!.se - bold.lift.se), name).toBeGreaterThan(1e-3);
      });
    }
  });

  it("caps each visitor's total where a metric says so (winsorisation), absolute or by percentile", async () => {
    const capped = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "capped",
        pageIds: [page.id],
        metrics: [
          {
            eventId: purchase.id,
            aggregator: "sum",
            field: "revenue",
            capping: { type: "absolute", value: 2000 },
          },
          {
            eventId: purchase.id,
            aggregator: "sum",
            field: "revenue",
            capping: { type: "percentile", value: 0.5 },
          },
          { eventId: purchase.id, aggregator: "sum", field: "revenue" },
        ],
        variations: [
          { key: "control", weight: 5000 },
          { key: "bold", weight: 5000 },
        ],
      },
    });
    await apiJson("POST", `/experiments/${capped.id}/start`, 200);
    const [c, b] = [capped.variations[0].id as string, capped.variations[1].id as string];
    const prod = sdkKey("production");
    const messages: Array<ImpressionMessage | ConversionMessage> = [];
    const visitor = (variationId: string, revenue: number[]) => {
      const id = uid("cap");
      messages.push({ ...imp(prod, id, variationId, T1), experimentId: capped.id });
      revenue.forEach((r, k) =>
        messages.push(conv(prod, id, purchase, T1 + 1000 + k, { revenue: r })),
      );
    };
    // control: five visitors buy for 1000, one whale for 999,000 + 1,000 (two purchases);
    // bold: six visitors buy for 1500; four visitors of each buy nothing.
    for (let i = 0; i < 5; i++) visitor(c, [1000]);
    visitor(c, [999_000, 1000]);
    for (let i = 0; i < 6; i++) visitor(b, [1500]);
    for (let i = 0; i < 4; i++) {
      visitor(c, []);
      visitor(b, []);
    }
    await deliver(messages);

    const r = await apiJson("GET", `/experiments/${capped.id}/results`, 200);
    const [absolute, percentile, raw] = r.metrics;
    // Absolute 2000: the whale's 1,000,000 counts as 2000.
    expect(absolute.capping).toEqual({
      type: "absolute",
      value: 2000,
      applied: true,
      threshold: 2000,
      cappedVisitors: 1,
      reason: null,
    });
    expect(absolute.variations.map((v: Json) => v.total)).toEqual([5 * 1000 + 2000, 6 * 1500]);
    // Percentile 0.5 of the 12 converting visitors' totals (5 × 1000, 6 × 1500, 1,000,000):
    // the 6th smallest, 1500.
    expect(percentile.capping).toMatchObject({ applied: true, threshold: 1500, cappedVisitors: 1 });
    expect(percentile.variations.map((v: Json) => v.total)).toEqual([5 * 1000 + 1500, 6 * 1500]);
    // Uncapped, the whale makes control the "winner" of revenue; the raw sums stay in every row.
    expect(raw.capping).toBeNull();
    expect(raw.variations.map((v: Json) => v.total)).toEqual([1_005_000, 9000]);
    for (const metric of r.metrics)
      expect(metric.variations.map((v: Json) => v.revenueSum)).toEqual([1_005_000, 9000]);
    // The statistics are those of the capped per-visitor totals.
    const stats = (sum: number, sumSq: number) => ({ n: 10, sum, sumSq });
    const expected = compareVariation(
      stats(7000, 5 * 1000 ** 2 + 2000 ** 2),
      stats(9000, 6 * 1500 ** 2),
      {
        mode: "sequential",
        alpha: 0.1,
      },
    );
    expect(absolute.variations[1].pValue).toBeCloseTo(expected.pValue!, 12);

    // With a day range the per-visitor totals do not apply: said, not silently skipped.
    const ranged = await apiJson("GET", `/experiments/${capped.id}/results?from=${DAY1}`, 200);
    expect(ranged.metrics[0].capping).toMatchObject({
      applied: false,
      reason: expect.stringMatching(/from\/to/),
    });
    expect(ranged.metrics[0].variations[0].total).toBe(1_005_000);

    // A percentile is a fraction below 1.
    const bad = await api("PATCH", `/experiments/${capped.id}`, {
      body: {
        metrics: [
          {
            eventId: purchase.id,
            aggregator: "sum",
            field: "revenue",
            capping: { type: "percentile", value: 99 },
          },
        ],
      },
    });
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain("capping.value");
  });

  it("flags a sample-ratio mismatch against the allocation", async () => {
    await feedRates([1000, 1200], [100, 120]);
    const r = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
    expect(r.srm.checked).toBe(true);
    expect(r.srm.flagged).toBe(true);
    expect(r.srm.pValue).toBeLessThan(0.001);
  });
});
