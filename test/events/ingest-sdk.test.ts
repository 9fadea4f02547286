/**
 * `POST /_ss/v1/events` receives what the official Optimizely JS SDK sends: the SDK runs here in
 * workerd (universal entry), its datafile is the one the Worker serves, and its event dispatcher
 * POSTs the SDK's own log event payload to the Worker instead of logx.
 */
import { env, exports } from "cloudflare:workers";
import {
  createBatchEventProcessor,
  createForwardingEventProcessor,
  createInstance,
  createStaticProjectConfigManager,
  type Client,
  type EventDispatcher,
  type RequestHandler,
} from "@optimizely/optimizely-sdk/universal";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import demoDatafile from "../../demo/datafile.json";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import type { Rejection } from "../../src/events/ingest-common";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";
import { recordQueued } from "../helpers/queue";

const ENDPOINT = "http://localhost/_ss/v1/events";

/** The parts of the SDK's Event API batch the tests look at. */
interface SdkBatch {
  project_id: string;
  visitors: Array<{
    snapshots: Array<{ events: Array<{ key: string; uuid: string; timestamp: number }> }>;
  }>;
}

let queued: EventMessage[];
/** What the SDK dispatched, and how the Worker answered. */
let dispatched: Array<{ payload: SdkBatch; status: number; body: string }>;

const eventDispatcher: EventDispatcher = {
  async dispatchEvent(event) {
    const response = await exports.default.fetch(
      new Request(ENDPOINT, {
        method: event.httpVerb,
        headers: { "content-type": "application/json", origin: "https://app.other.example" },
        body: JSON.stringify(event.params),
      }),
    );
    const body = await response.text();
    dispatched.push({
      payload: event.params as SdkBatch,
      status: response.status,
      body,
    });
    return { statusCode: response.status };
  },
};

/** The first event of the first snapshot of the n-th dispatched batch. */
function firstEvent(n: number): { key: string; uuid: string; timestamp: number } {
  return dispatched[n]!.payload.visitors[0]!.snapshots[0]!.events[0]!;
}

const noNetwork: RequestHandler = {
  makeRequest() {
    throw new Error("the SDK must not fetch anything in these tests");
  },
};

async function sdk(
  eventProcessor = createForwardingEventProcessor(eventDispatcher),
): Promise<Client> {
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({
      datafile: JSON.stringify(demoDatafile),
    }),
    eventProcessor,
    requestHandler: noNetwork,
  });
  await client.onReady({ timeout: 5000 });
  return client;
}

async function settle(count: number): Promise<void> {
  for (let i = 0; i < 200 && dispatched.length < count; i++)
    await new Promise((r) => setTimeout(r, 5));
  expect(dispatched).toHaveLength(count);
}

async function post(body: unknown): Promise<Response> {
  return exports.default.fetch(
    new Request(ENDPOINT, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
  );
}

interface ErrorBody {
  error: {
    code: string;
    message: string;
    details: {
      path: string;
      accepted: number;
      rejected: Rejection[];
      expected?: string;
      got?: unknown;
    };
  };
}

/** A minimal valid batch for the demo datafile, with one conversion and one impression. */
function batch(
  overrides: Record<string, unknown> = {},
  events?: unknown[],
): Record<string, unknown> {
  const now = Date.now();
  return {
    account_id: demoDatafile.accountId,
    project_id: demoDatafile.projectId,
    revision: demoDatafile.revision,
    client_name: "javascript-sdk",
    client_version: "6.0.0",
    anonymize_ip: true,
    enrich_decisions: true,
    visitors: [
      {
        visitor_id: "user-1",
        attributes: [],
        snapshots: [
          {
            decisions: [
              { campaign_id: "layer", experiment_id: "1001", variation_id: "1102", metadata: {} },
            ],
            events: [
              { entity_id: "layer", key: "campaign_activated", timestamp: now, uuid: "imp-1" },
            ],
          },
          {
            events: events ?? [
              { entity_id: "2003", key: "purchase", timestamp: now, uuid: "conv-1", revenue: 500 },
            ],
          },
        ],
      },
    ],
    ...overrides,
  };
}

beforeEach(async () => {
  queued = [];
  dispatched = [];
  recordQueued(queued);
  await env.DATAFILES.put("datafiles/demo", JSON.stringify(demoDatafile));
  resetDatafileStore();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("POST /_ss/v1/events with the official SDK", () => {
  it("activate() and track() → the right impression and conversion messages", async () => {
    const client = await sdk();
    const userId = "sdk-user-42";
    const variationKey = client.activate("home_hero", userId);
    expect(variationKey).not.toBeNull();
    client.track("purchase", userId, { plan: "pro" }, { revenue: 1299, value: 3.5, coupon: "X1" });
    await settle(2);
    for (const d of dispatched) {
      expect(d.status, d.body).toBe(204);
      expect(d.payload.project_id).toBe(demoDatafile.projectId);
    }
    // The SDK's own shape: a campaign_activated event with its decision.
    expect(firstEvent(0).key).toBe("campaign_activated");

    const experiment = demoDatafile.experiments.find((e) => e.key === "home_hero")!;
    const variation = experiment.variations.find((v) => v.key === variationKey)!;
    const impression = queued[0] as ImpressionMessage;
    expect(impression).toMatchObject({
      v: 1,
      type: "impression",
      sdkKey: "demo",
      revision: demoDatafile.revision,
      visitorId: userId,
      experimentId: experiment.id,
      variationId: variation.id,
      source: "sdk",
    });
    const sentImpression = firstEvent(0);
    expect(impression.uuid).toBe(sentImpression.uuid);
    expect(impression.timestamp).toBe(sentImpression.timestamp);

    const conversion = queued[1] as ConversionMessage;
    expect(conversion).toMatchObject({
      v: 1,
      type: "conversion",
      sdkKey: "demo",
      visitorId: userId,
      eventId: "2003",
      eventKey: "purchase",
      revenue: 1299,
      value: 3.5,
      tags: { coupon: "X1" },
      source: "sdk",
    });
    // revenue and value are message fields, not tags.
    expect(conversion.tags).toEqual({ coupon: "X1" });
    expect(conversion.uuid).toBe(firstEvent(1).uuid);
    expect(queued).toHaveLength(2);
    client.close();
  });

  it("a batched payload with several visitors (batch event processor)", async () => {
    const client = await sdk(
      createBatchEventProcessor({ eventDispatcher, batchSize: 3, flushInterval: 60_000 }),
    );
    expect(client.activate("product_cta", "u-a")).not.toBeNull();
    expect(client.activate("product_cta", "u-b")).not.toBeNull();
    client.track("buy_click", "u-a");
    await settle(1);
    expect(dispatched[0]!.status, dispatched[0]!.body).toBe(204);
    expect(dispatched[0]!.payload.visitors).toHaveLength(3);
    expect(queued.map((m) => `${m.type}:${m.visitorId}`)).toEqual([
      "impression:u-a",
      "impression:u-b",
      "conversion:u-a",
    ]);
    client.close();
  });
});

describe("POST /_ss/v1/events validation", () => {
  it("accepts a hand-built batch; CORS * and preflight", async () => {
    const response = await post(batch());
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(queued.map((m) => m.uuid)).toEqual(["imp-1", "conv-1"]);
    const preflight = await exports.default.fetch(
      new Request(ENDPOINT, { method: "OPTIONS", headers: { origin: "https://x.example" } }),
    );
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("variation_id null (non-numeric ids) falls back to metadata.variation_key", async () => {
    const b = batch() as { visitors: Array<{ snapshots: Array<{ decisions: unknown[] }> }> };
    b.visitors[0]!.snapshots[0]!.decisions = [
      {
        campaign_id: "layer",
        experiment_id: "1001",
        variation_id: null,
        metadata: { variation_key: "lifestyle_image" },
      },
    ];
    expect((await post(b)).status).toBe(204);
    expect(queued[0]).toMatchObject({ experimentId: "1001", variationId: "1102" });
  });

  it("malformed batches → 400 with the path", async () => {
    const cases: Array<[unknown, string]> = [
      [[], ""],
      [{ ...batch(), visitors: {} }, "visitors"],
      [{ ...batch(), visitors: [{ visitor_id: 5, snapshots: [] }] }, "visitors[0].visitor_id"],
      [
        { ...batch(), visitors: [{ visitor_id: "a", snapshots: [{}] }] },
        "visitors[0].snapshots[0].events",
      ],
      [
        { ...batch(), visitors: [{ visitor_id: "a", snapshots: [{ events: [], decisions: 1 }] }] },
        "visitors[0].snapshots[0].decisions",
      ],
    ];
    for (const [body, path] of cases) {
      const response = await post(body);
      expect(response.status).toBe(400);
      const { error } = (await response.json()) as ErrorBody;
      expect(error.code).toBe("invalid_batch");
      expect(error.details.path).toBe(path);
    }
    const notJson = await post("{");
    expect(((await notJson.json()) as ErrorBody).error.code).toBe("invalid_json");
    expect(env.EVENTS.sendBatch).not.toHaveBeenCalled();
  });

  it("a batch from an older revision is accepted; its messages keep that revision", async () => {
    const response = await post(batch({ revision: "0" }));
    expect(response.status).toBe(204);
    const sent = vi.mocked(env.EVENTS.sendBatch).mock.calls.flatMap(([messages]) => [...messages]);
    expect(sent.length).toBeGreaterThan(0);
    for (const m of sent) expect((m.body as { revision: string }).revision).toBe("0");
  });

  it("a batch for another project or account is refused whole", async () => {
    const project = await post(batch({ project_id: "999" }));
    expect(project.status).toBe(400);
    const p = (await project.json()) as ErrorBody;
    expect(p.error.code).toBe("project_mismatch");
    expect(p.error.details).toMatchObject({
      path: "project_id",
      expected: demoDatafile.projectId,
      got: "999",
    });
    const account = await post(batch({ account_id: "1" }));
    expect(((await account.json()) as ErrorBody).error.details.path).toBe("account_id");
    expect(env.EVENTS.sendBatch).not.toHaveBeenCalled();
  });

  it("per-event rejects are reported with paths; the valid events are queued", async () => {
    const now = Date.now();
    const response = await post(
      batch({}, [
        { entity_id: "2003", key: "purchase", timestamp: now, uuid: "ok" },
        { entity_id: "2003", key: "purchase", timestamp: now },
        { entity_id: "2003", key: "purchase", timestamp: now - 2 * 86_400_000, uuid: "old" },
        { entity_id: "9999", key: "purchase", timestamp: now, uuid: "u3" },
        { entity_id: "2003", key: "buy_click", timestamp: now, uuid: "u4" },
        { entity_id: "2003", key: "purchase", timestamp: now, uuid: "u5", revenue: 9.99 },
        { entity_id: "2003", key: "purchase", timestamp: now, uuid: "u6", tags: { a: [1] } },
      ]),
    );
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.code).toBe("events_rejected");
    expect(error.message).toBe("2 accepted, 6 rejected");
    const base = "visitors[0].snapshots[1].events";
    expect(error.details.rejected.map((r) => r.path)).toEqual([
      `${base}[1].uuid`,
      `${base}[2].timestamp`,
      `${base}[3].entity_id`,
      `${base}[4].key`,
      `${base}[5].revenue`,
      `${base}[6].tags.a`,
    ]);
    expect(error.details.rejected[0]!.index).toBe(2);
    expect(queued.map((m) => m.uuid)).toEqual(["imp-1", "ok"]);
  });

  it("impressions on unknown experiments or variations are rejected", async () => {
    const b = batch() as { visitors: Array<{ snapshots: Array<{ decisions: unknown[] }> }> };
    b.visitors[0]!.snapshots[0]!.decisions = [
      { campaign_id: "layer", experiment_id: "1001", variation_id: "1201", metadata: {} },
    ];
    const response = await post(b);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.details.rejected).toEqual([
      {
        index: 0,
        path: "visitors[0].snapshots[0].decisions.variation_id",
        reason: "not a variation of experiment home_hero",
      },
    ]);
    b.visitors[0]!.snapshots[0]!.decisions = [{ campaign_id: "layer", experiment_id: "nope" }];
    const unknown = (await (await post(b)).json()) as ErrorBody;
    expect(unknown.error.details.rejected[0]!.path).toBe(
      "visitors[0].snapshots[0].decisions.experiment_id",
    );
  });

  it("impressions of a paused experiment are rejected, as /_ss/events rejects them", async () => {
    const paused = {
      ...demoDatafile,
      experiments: demoDatafile.experiments.map((x) =>
        x.id === "1001" ? { ...x, status: "Paused" } : x,
      ),
    };
    await env.DATAFILES.put("datafiles/demo", JSON.stringify(paused));
    resetDatafileStore();
    const response = await post(batch());
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.details.rejected).toEqual([
      {
        index: 0,
        path: "visitors[0].snapshots[0].decisions.experiment_id",
        reason: `experiment home_hero is not running (status Paused) in datafile revision ${demoDatafile.revision}`,
      },
    ]);
    // The conversion of the same batch is still accepted; the impression is not queued.
    expect(queued.map((m) => m.uuid)).toEqual(["conv-1"]);
  });

  it("revenue beyond the bound (2^53 − 1 cents) is rejected with its path, nothing else lost", async () => {
    const response = await post(
      batch({}, [
        {
          entity_id: "2003",
          key: "purchase",
          timestamp: Date.now(),
          uuid: "conv-huge",
          revenue: Number.MAX_SAFE_INTEGER,
        },
      ]),
    );
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as ErrorBody;
    expect(error.details.rejected).toEqual([
      {
        index: 1,
        path: "visitors[0].snapshots[1].events[0].revenue",
        reason: "revenue must be at most 100000000000 cents",
      },
    ]);
    expect(queued.map((m) => m.uuid)).toEqual(["imp-1"]);
  });

  it("the queue refusing → 503 with Retry-After", async () => {
    vi.mocked(env.EVENTS.sendBatch).mockRejectedValueOnce(new Error("queue down"));
    const response = await post(batch());
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
  });
});

describe("POST /_ss/v1/events: feature flag decisions", () => {
  /** The flags fixture as the Worker's datafile, and an SDK client on it. */
  async function flagSdk(sendFlagDecisions: boolean): Promise<Client> {
    const datafile = { ...flagsDatafile, sendFlagDecisions };
    await env.DATAFILES.put("datafiles/demo", JSON.stringify(datafile));
    resetDatafileStore();
    const client = createInstance({
      projectConfigManager: createStaticProjectConfigManager({
        datafile: JSON.stringify(datafile),
      }),
      eventProcessor: createForwardingEventProcessor(eventDispatcher),
      requestHandler: noNetwork,
    });
    await client.onReady({ timeout: 5000 });
    return client;
  }

  /** A batch for the flags fixture with one campaign_activated event and its decision. */
  function flagBatch(
    decision: Record<string, unknown>,
    uuid = "flag-imp",
  ): Record<string, unknown> {
    return {
      account_id: flagsDatafile.accountId,
      project_id: flagsDatafile.projectId,
      revision: flagsDatafile.revision,
      visitors: [
        {
          visitor_id: "flag-user",
          attributes: [],
          snapshots: [
            {
              decisions: [{ campaign_id: "layer_3001", ...decision }],
              events: [
                { entity_id: "layer_3001", key: "campaign_activated", timestamp: Date.now(), uuid },
              ],
            },
          ],
        },
      ],
    };
  }

  it("decide() on an A/B rule: an impression of the rule's experiment with flagKey and ruleType", async () => {
    const client = await flagSdk(false);
    const user = client.createUserContext("qa-variant")!;
    const decision = user.decide("search_ranking");
    expect(decision).toMatchObject({
      enabled: true,
      variationKey: "semantic",
      ruleKey: "search_ab",
    });
    await settle(1);
    expect(dispatched[0]!.status, dispatched[0]!.body).toBe(204);
    expect(queued).toEqual([
      expect.objectContaining({
        type: "impression",
        visitorId: "qa-variant",
        experimentId: "3001",
        variationId: "v_s_on",
        flagKey: "search_ranking",
        ruleType: "feature-test",
        source: "sdk",
        uuid: firstEvent(0).uuid,
      }),
    ]);
    // A delivery rule with sendFlagDecisions false: the SDK sends nothing at all.
    expect(user.decide("dark_mode").enabled).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(dispatched).toHaveLength(1);
    client.close();
  });

  it("with sendFlagDecisions, a delivery rule's decision event is accepted (204) and not counted", async () => {
    const client = await flagSdk(true);
    const user = client.createUserContext("rollout-user", { "geo.country": "DE" })!;
    expect(user.decide("new_checkout")).toMatchObject({
      enabled: true,
      ruleKey: "checkout_germany",
    });
    expect(user.decide("legacy_banner")).toMatchObject({ enabled: false, ruleKey: null });
    await settle(2);
    for (const d of dispatched) expect(d.status, d.body).toBe(204);
    // What the SDK sent: a rollout decision naming the rule, and one naming no rule at all.
    const decisions = dispatched.map(
      (d) =>
        (
          d.payload as unknown as {
            visitors: Array<{ snapshots: Array<{ decisions: Array<Record<string, unknown>> }> }>;
          }
        ).visitors[0]!.snapshots[0]!.decisions[0]!,
    );
    expect(
      decisions.map((d) => [d.experiment_id, (d.metadata as { rule_type: string }).rule_type]),
    ).toEqual([
      ["rule_checkout_de", "rollout"],
      ["", "rollout"],
    ]);
    expect(queued).toEqual([]);
    client.close();
  });

  it('a flag-level forced decision (experiment_id "") is accepted and not counted', async () => {
    const client = await flagSdk(false);
    const user = client.createUserContext("qa-forced")!;
    user.setForcedDecision({ flagKey: "search_ranking" }, { variationKey: "semantic" });
    expect(user.decide("search_ranking")).toMatchObject({
      enabled: true,
      variationKey: "semantic",
    });
    await settle(1);
    expect(dispatched[0]!.status, dispatched[0]!.body).toBe(204);
    expect(queued).toEqual([]);
    client.close();
  });

  it("a delivery rule's id without rule_type is recognised as a release too", async () => {
    await flagSdk(false);
    const response = await post(
      flagBatch({ experiment_id: "rule_dark_all", variation_id: "rv_dark_on", metadata: {} }),
    );
    expect(response.status).toBe(204);
    expect(queued).toEqual([]);
  });

  it("rule_type feature-test must name a flag having that experiment as A/B rule; others keep no flag fields", async () => {
    await flagSdk(false);
    const wrong = await post(
      flagBatch({
        experiment_id: "3001",
        variation_id: "v_s_on",
        metadata: { flag_key: "dark_mode", rule_type: "feature-test", variation_key: "semantic" },
      }),
    );
    expect(wrong.status).toBe(400);
    const { error } = (await wrong.json()) as ErrorBody;
    expect(error.details.rejected).toEqual([
      {
        index: 0,
        path: "visitors[0].snapshots[0].decisions.metadata.flag_key",
        reason: '"dark_mode" is not a feature flag with this experiment among its A/B rules',
      },
    ]);
    const missing = await post(
      flagBatch({
        experiment_id: "3001",
        variation_id: "v_s_on",
        metadata: { rule_type: "feature-test" },
      }),
    );
    expect(((await missing.json()) as ErrorBody).error.details.rejected[0]!.reason).toBe(
      "null is not a feature flag with this experiment among its A/B rules",
    );
    expect(queued).toEqual([]);
    // A plain experiment decision (activate(): rule_type "experiment", flag_key "").
    const plain = await post(
      flagBatch(
        {
          experiment_id: "3001",
          variation_id: "v_s_off",
          metadata: { flag_key: "", rule_type: "experiment" },
        },
        "plain",
      ),
    );
    expect(plain.status).toBe(204);
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ experimentId: "3001", variationId: "v_s_off" });
    expect("flagKey" in queued[0]!).toBe(false);
  });
});
