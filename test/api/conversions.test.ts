/**
 * Offline conversions (docs/api.md "Conversions"): `POST /_ss/api/v1/conversions` through the
 * real Worker, the real EVENTS queue (Miniflare's broker delivers to the Worker's `queue` handler,
 * nothing here calls the consumer) and real D1, read back with `GET /experiments/{id}/results`.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { QUEUE_MAX_AGE_MS } from "../../src/shared/event-limits";
import { readVisitorState } from "../../src/events/visitor-state";
import type { EventMessage, ImpressionMessage } from "../../src/shared/event-messages";
import { OFFLINE_MAX_AGE_MS } from "../../src/api/schemas/conversions";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
/** Ten days ago: far older than the browser endpoint allows (24 h). */
const T = Date.now() - 10 * DAY;

let project: ProjectWithEnvironments;
let experiment: Json;
let control: string;
let bold: string;
let purchase: Json;
let signup: Json;
let sent: EventMessage[][];

const uid = (prefix: string) => `${prefix}-${crypto.randomUUID()}`;
const production = () => project.environments.find((e) => e.key === "production")!;

function impression(visitorId: string, variationId: string, timestamp: number): ImpressionMessage {
  return {
    v: 1,
    type: "impression",
    uuid: uid("imp"),
    sdkKey: production().sdkKey,
    revision: "1",
    visitorId,
    experimentId: experiment.id,
    variationId,
    timestamp,
    source: "edge",
  };
}

/** Polls `read` until `done` says yes or `timeoutMs` passes; returns the last value read. */
async function waitFor<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 40_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Resolves once the consumer has stored the conversion `uuid` of `visitorId` (it processed its
 * batch), wherever the event layout keeps it.
 */
async function consumed(uuid: string, visitorId: string): Promise<void> {
  const stored = await waitFor(
    async () =>
      (await readVisitorState(env, production().sdkKey, visitorId)).conversions.some(
        (row) => row.uuid === uuid,
      ),
    (found) => found,
  );
  expect(stored, `conversion ${uuid} consumed`).toBe(true);
}

/** Counts of the results: visitors per variation key, and metric → variation key → counts. */
async function counts(): Promise<Json> {
  const r = await apiJson("GET", `/experiments/${experiment.id}/results`, 200);
  const keyOf = new Map((r.variations as Json[]).map((v) => [v.id, v.key]));
  return {
    visitors: Object.fromEntries((r.variations as Json[]).map((v) => [v.key, v.visitors])),
    metrics: Object.fromEntries(
      (r.metrics as Json[]).map((m) => [
        m.eventKey,
        Object.fromEntries(
          (m.variations as Json[]).map((c) => [
            keyOf.get(c.variationId),
            { converters: c.converters, events: c.events, revenueSum: c.revenueSum },
          ]),
        ),
      ]),
    ),
  };
}

beforeEach(async () => {
  sent = [];
  const send = env.EVENTS.sendBatch.bind(env.EVENTS);
  vi.spyOn(env.EVENTS, "sendBatch").mockImplementation((messages, options) => {
    const list = [...messages];
    sent.push(list.map((m) => m.body as EventMessage));
    return send(list, options);
  });
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
      key: "offline",
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

afterEach(() => {
  vi.restoreAllMocks();
});

describe("POST /conversions", () => {
  it(
    "queues offline conversions that the consumer attributes, also before their impression",
    { timeout: 90_000 },
    async () => {
      const [a, b, c] = [uid("a"), uid("b"), uid("c")];
      // c converts offline first; c's impression only reaches the queue after that was counted.
      const early = await apiJson("POST", "/conversions", 202, {
        body: {
          projectId: project.id,
          conversions: [
            {
              visitorId: c,
              eventKey: "purchase",
              timestamp: T + 3 * HOUR,
              revenue: 700,
              uuid: uid("o"),
            },
          ],
        },
      });
      expect(early).toEqual({
        projectId: project.id,
        environment: { id: production().id, key: "production", sdkKey: production().sdkKey },
        accepted: 1,
        rejected: [],
      });
      const earlyUuid = sent.flat()[0]!.uuid;
      await consumed(earlyUuid, c);

      await env.EVENTS.sendBatch(
        [impression(a, control, T), impression(b, bold, T), impression(c, bold, T)].map((body) => ({
          body,
          contentType: "json" as const,
        })),
      );
      const editor = await createToken("editor");
      const marker = uid("marker");
      const body = {
        projectId: project.id,
        environment: "production",
        conversions: [
          {
            visitorId: a,
            eventKey: "purchase",
            timestamp: T + HOUR,
            revenue: 1000,
            uuid: uid("o"),
          },
          {
            visitorId: b,
            eventKey: "purchase",
            timestamp: T + 2 * HOUR,
            revenue: 2500,
            value: 1.5,
            tags: { channel: "phone" },
            uuid: uid("o"),
          },
          // Before a's impression: not attributed.
          { visitorId: a, eventKey: "signup", timestamp: T - HOUR, uuid: uid("o") },
          // Never exposed: counted nowhere.
          { visitorId: uid("stranger"), eventKey: "purchase", revenue: 99, uuid: marker },
        ],
      };
      const response = await apiJson("POST", "/conversions", 202, { body, token: editor.token });
      expect(response).toMatchObject({ accepted: 4, rejected: [] });
      const messages = sent.at(-1)!;
      expect(messages).toHaveLength(4);
      expect(messages[1]).toMatchObject({
        v: 1,
        type: "conversion",
        source: "offline",
        sdkKey: production().sdkKey,
        visitorId: b,
        eventId: purchase.id,
        eventKey: "purchase",
        timestamp: T + 2 * HOUR,
        revenue: 2500,
        value: 1.5,
        tags: { channel: "phone" },
      });
      // No timestamp: now.
      expect(Math.abs(messages[3]!.timestamp - Date.now())).toBeLessThan(60_000);

      const expected = {
        visitors: { control: 1, bold: 2 },
        metrics: {
          purchase: {
            control: { converters: 1, events: 1, revenueSum: 1000 },
            bold: { converters: 2, events: 2, revenueSum: 3200 },
          },
          signup: {
            control: { converters: 0, events: 0, revenueSum: 0 },
            bold: { converters: 0, events: 0, revenueSum: 0 },
          },
        },
      };
      expect(await waitFor(counts, (v) => JSON.stringify(v) === JSON.stringify(expected))).toEqual(
        expected,
      );

      // Sending the same request again changes nothing (uuids); a new marker shows it was consumed.
      const again = { ...body, conversions: [...body.conversions] };
      const marker2 = uid("marker");
      const stranger = uid("stranger");
      again.conversions.push({
        visitorId: stranger,
        eventKey: "purchase",
        revenue: 1,
        uuid: marker2,
      });
      await apiJson("POST", "/conversions", 202, { body: again });
      await consumed(marker2, stranger);
      expect(await counts()).toEqual(expected);
    },
  );

  it("reports each refused item with its JSON path and queues the valid ones", async () => {
    const now = Date.now();
    const good = (uuid: string) => ({ visitorId: "v1", eventKey: "purchase", uuid });
    const conversions: unknown[] = [
      good("ok-1"),
      { visitorId: "v1", eventKey: "nope", uuid: "u1" },
      { visitorId: "v1", eventKey: "purchase" },
      { visitorId: "v1", eventKey: "purchase", uuid: "u3", revenue: 12.5 },
      { visitorId: "v1", eventKey: "purchase", uuid: "u4", revenue: -1 },
      {
        visitorId: "v1",
        eventKey: "purchase",
        uuid: "u5",
        timestamp: now - OFFLINE_MAX_AGE_MS - DAY,
      },
      { visitorId: "v1", eventKey: "purchase", uuid: "u6", timestamp: now + HOUR },
      { visitorId: "v1", eventKey: "purchase", uuid: "u7", colour: "red" },
      { visitorId: "v1", eventKey: "purchase", uuid: "u8", tags: { plan: { nested: true } } },
      "not an object",
      good("ok-1"),
      { visitorId: "", eventKey: "purchase", uuid: "u11" },
      { visitorId: "v1", eventKey: "purchase", uuid: "u12", tags: { ["x".repeat(65)]: 1 } },
      { ...good("ok-2"), timestamp: now - 20 * DAY, revenue: 0, value: -2.5 },
    ];
    const r = await apiJson("POST", "/conversions", 202, {
      body: { projectId: project.id, conversions },
    });
    expect(r.accepted).toBe(2);
    expect(r.rejected.map((x: Json) => [x.index, x.path])).toEqual([
      [1, "$.body.conversions[1].eventKey"],
      [2, "$.body.conversions[2].uuid"],
      [3, "$.body.conversions[3].revenue"],
      [4, "$.body.conversions[4].revenue"],
      [5, "$.body.conversions[5].timestamp"],
      [6, "$.body.conversions[6].timestamp"],
      [7, "$.body.conversions[7].colour"],
      [8, "$.body.conversions[8].tags.plan"],
      [9, "$.body.conversions[9]"],
      [10, "$.body.conversions[10].uuid"],
      [11, "$.body.conversions[11].visitorId"],
      [12, `$.body.conversions[12].tags.${"x".repeat(65)}`],
    ]);
    for (const x of r.rejected as Json[]) expect(x.message.length).toBeGreaterThan(3);
    expect(r.rejected[0].message).toMatch(/unknown event key "nope"/);
    expect(r.rejected[9].message).toMatch(/duplicate uuid: conversions\[0\]/);
    expect(sent.flat().map((m) => m.uuid)).toEqual(["ok-1", "ok-2"]);
  });

  it("accepts timestamps up to the consumer's age limit minus a day of queueing", async () => {
    expect(OFFLINE_MAX_AGE_MS).toBe(QUEUE_MAX_AGE_MS - DAY);
    const now = Date.now();
    const r = await apiJson("POST", "/conversions", 202, {
      body: {
        projectId: project.id,
        conversions: [
          {
            visitorId: "v",
            eventKey: "purchase",
            uuid: uid("in"),
            timestamp: now - OFFLINE_MAX_AGE_MS + 60_000,
          },
          {
            visitorId: "v",
            eventKey: "purchase",
            uuid: uid("out"),
            timestamp: now - OFFLINE_MAX_AGE_MS - 60_000,
          },
        ],
      },
    });
    expect(r.accepted).toBe(1);
    expect(r.rejected).toEqual([
      {
        index: 1,
        path: "$.body.conversions[1].timestamp",
        message: "more than 29 days in the past",
      },
    ]);
  });

  it("sends large requests in queue batches of at most 100", async () => {
    const conversions = Array.from({ length: 250 }, (_, i) => ({
      visitorId: `v${i}`,
      eventKey: "signup",
      uuid: uid(`bulk${i}`),
    }));
    const r = await apiJson("POST", "/conversions", 202, {
      body: { projectId: project.id, environment: "development", conversions },
    });
    expect(r).toMatchObject({ accepted: 250, rejected: [], environment: { key: "development" } });
    expect(sent.map((batch) => batch.length)).toEqual([100, 100, 50]);
    const dev = project.environments.find((e) => e.key === "development")!.sdkKey;
    expect(new Set(sent.flat().map((m) => m.sdkKey))).toEqual(new Set([dev]));
  });

  it("answers 422 with every problem when no item is valid, and for bad bodies", async () => {
    const none = await api("POST", "/conversions", {
      body: {
        projectId: project.id,
        conversions: [{ visitorId: "v", eventKey: "nope", uuid: "x" }, 42],
      },
    });
    expect(none.status).toBe(422);
    const error = ((await none.json()) as Json).error;
    expect(error.code).toBe("validation_failed");
    expect(error.details.map((d: Json) => d.path)).toEqual([
      "$.body.conversions[0].eventKey",
      "$.body.conversions[1]",
    ]);
    expect(sent).toEqual([]);

    const tooMany = Array.from({ length: 1001 }, (_, i) => ({
      visitorId: "v",
      eventKey: "purchase",
      uuid: `u${i}`,
    }));
    for (const [body, path] of [
      [{ conversions: [] }, "$.body.projectId"],
      [{ projectId: project.id, conversions: [] }, "$.body.conversions"],
      [{ projectId: project.id, conversions: tooMany }, "$.body.conversions"],
      [{ projectId: project.id, conversions: "x" }, "$.body.conversions"],
      [{ projectId: project.id, conversions: [{}], extra: 1 }, "$.body.extra"],
      [{ projectId: "nope", conversions: [{}] }, "$.body.projectId"],
      [{ projectId: project.id, environment: "staging", conversions: [{}] }, "$.body.environment"],
    ] as const) {
      const r = await api("POST", "/conversions", { body });
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(422);
      const e = ((await r.json()) as Json).error;
      expect(e.details.map((d: Json) => d.path)).toContain(path);
    }
    expect((await api("POST", "/conversions", { body: "{" })).status).toBe(400);
  });

  it("needs an editor token", async () => {
    const body = {
      projectId: project.id,
      conversions: [{ visitorId: "v", eventKey: "purchase", uuid: uid("u") }],
    };
    expect((await api("POST", "/conversions", { body, token: null })).status).toBe(401);
    const viewer = await createToken("viewer");
    const r = await api("POST", "/conversions", { body, token: viewer.token });
    expect(r.status).toBe(403);
    expect(sent).toEqual([]);
  });

  it("answers 503 with Retry-After when the queue refuses", async () => {
    vi.mocked(env.EVENTS.sendBatch).mockRejectedValueOnce(new Error("queue down"));
    const r = await api("POST", "/conversions", {
      body: {
        projectId: project.id,
        conversions: [{ visitorId: "v", eventKey: "purchase", uuid: uid("u") }],
      },
    });
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("5");
    expect(((await r.json()) as Json).error.code).toBe("queue_unavailable");
  });

  it("is in the OpenAPI document with its item schema", async () => {
    const doc = (await (await api("GET", "/openapi.json", { token: null })).json()) as Json;
    const op = doc.paths["/_ss/api/v1/conversions"].post;
    expect(Object.keys(op.responses)).toEqual(
      expect.arrayContaining(["202", "401", "403", "422", "503"]),
    );
    const schema = doc.components.schemas.OfflineConversionsRequest;
    expect(schema.properties.conversions.items).toEqual({
      $ref: "#/components/schemas/OfflineConversion",
    });
    expect(Object.keys(doc.paths["/_ss/api/v1/admin/rebuild"].post.responses)).toContain("401");
    const text = JSON.stringify(doc);
    for (const [, name] of text.matchAll(/"#\/components\/schemas\/([^"]+)"/g))
      expect(doc.components.schemas[name!], name).toBeDefined();
    expect(doc.components.schemas.OfflineConversion.required).toEqual(
      expect.arrayContaining(["visitorId", "eventKey", "uuid"]),
    );
  });
});
