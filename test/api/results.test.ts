/**
 * Experiment results (docs/api.md "Results"): counts read from the aggregates the events queue
 * consumer writes, fed here through handleEventBatch with real D1.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { utcDay } from "../../src/events/aggregate";
import { handleEventBatch } from "../../src/events/consumer";
import type { ConversionMessage, ImpressionMessage } from "../../src/events/messages";
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
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
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
    expect(r).toEqual({
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
            },
            {
              variationId: bold,
              converters: 1,
              events: 1,
              revenueSum: 2000,
              revenueSumSq: 2000 ** 2,
              valueSum: 3,
              valueSumSq: 9,
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
    });
    expect(day2.daily.map((d: Json) => d.day)).toEqual([DAY2, DAY2]);

    const day1 = await apiJson("GET", `/experiments/${experiment.id}/results?to=${DAY1}`, 200);
    expect(day1.revisions).toEqual(["2"]);
    expect(day1.metrics[0].variations.map((v: Json) => v.revenueSum)).toEqual([1000, 2000]);

    const dev = await apiJson(
      "GET",
      `/experiments/${experiment.id}/results?environment=development`,
      200,
    );
    expect(dev.environment).toMatchObject({ key: "development", sdkKey: sdkKey("development") });
    expect(dev.revisions).toEqual(["2"]);
    expect(dev.variations).toEqual([
      { id: control, key: "control", visitors: 0 },
      { id: bold, key: "bold", visitors: 1 },
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
      "metric_event_id,metric_event_key,aggregator,field,primary,variation_id,variation_key,visitors,converters,events,revenue_sum,revenue_sum_sq,value_sum,value_sum_sq",
      `${purchase.id},purchase,sum,revenue,true,${control},control,2,1,2,1500,1250000,0,0`,
      `${purchase.id},purchase,sum,revenue,true,${bold},bold,2,1,1,2000,4000000,3,9`,
      `${signup.id},signup,unique,,false,${control},control,2,1,1,0,0,0,0`,
      `${signup.id},signup,unique,,false,${bold},bold,2,0,0,0,0,0,0`,
    ]);
  });
});
