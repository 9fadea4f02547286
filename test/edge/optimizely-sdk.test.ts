/**
 * The official Optimizely JS SDK and the edge agree (docs/datafile.md, §3).
 *
 * The SDK runs right here, inside workerd, through its `universal` entry (no Node or browser
 * APIs; HTTP goes through a RequestHandler we supply). It loads the datafile the way a customer's
 * server would — polling config manager, `urlTemplate` pointing at the Worker's
 * `GET /_ss/datafiles/{sdkKey}.json` — with a request handler that calls the Worker's own fetch
 * handler instead of the network. Then, for 500 visitor ids, every experiment's
 * `getVariation(experimentKey, visitorId, attributes)` must equal what the edge decided for that
 * visitor, read from the `x-ss-decisions` response header of a page fetched with
 * `Cookie: ss_vid=<id>` (origin mocked).
 *
 * Two datafiles:
 * - the bundled demo (demo/datafile.json, what `npm start` publishes): every experiment is
 *   checked on a page whose URL conditions select it;
 * - a stress datafile built below, all experiments on one page: traffic holes, partial traffic,
 *   a Paused experiment, forced variations, a random group with unallocated traffic, and
 *   audiences on request attributes (`cookie.plan`, `query.ref`) that the SDK gets passed
 *   explicitly.
 *
 * And feature flags (test/fixtures/datafiles/flags.json): the SDK's `decide(flagKey)` equals the
 * edge's `x-ss-flags` and bootstrap, and its decision events, posted to `POST /_ss/v1/events`, go
 * through the real queue and consumer: an A/B rule's impression is counted for its experiment, a
 * delivery rule's decision (sendFlagDecisions) is accepted and counted nowhere.
 */
import { env, exports } from "cloudflare:workers";
import {
  createForwardingEventProcessor,
  createInstance,
  createPollingProjectConfigManager,
  type Client,
  type EventDispatcher,
  type RequestHandler,
} from "@optimizely/optimizely-sdk/universal";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import demoDatafile from "../../demo/datafile.json";
import { decodeBootstrap } from "../../src/edge/bootstrap";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
import { readDerivedRows } from "../../src/events/visitor-state";
import flagsDatafile from "../fixtures/datafiles/flags.json";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";

// wrangler.toml routes localhost/* (sdk_key "demo") to the origin http://localhost:8788.
const SITE = "http://localhost";
const SDK_KEY = "demo";
const VISITORS = 500;

const PAGE_HTML = `<!doctype html><html><head><title>t</title></head><body>
<section class="hero"><h1 class="hero-title">Hi</h1><p class="lead">x</p><a id="hero-cta" href="/">go</a>
<img class="hero-image" src="/a.svg"></section><div class="promo">p</div>
<div class="product-info"><span class="price">$1</span><button id="buy" class="btn btn-outline" title="t">Buy</button></div>
<section id="reviews">r</section><main class="done"><h1>Thanks</h1><ol id="next-steps"><li>1</li></ol></main>
<footer><div class="footer-social">s</div><div class="footer-legacy">l</div></footer></body></html>`;

/** A RequestHandler that sends the SDK's requests to this Worker's fetch handler. */
const workerRequestHandler: RequestHandler = {
  makeRequest(url, headers, method, data) {
    const controller = new AbortController();
    const responsePromise = (async () => {
      const init: RequestInit = { method, signal: controller.signal, headers: {} };
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined) (init.headers as Record<string, string>)[name] = value;
      }
      if (data !== undefined) init.body = data;
      const response = await exports.default.fetch(new Request(url, init));
      const body = await response.text();
      return {
        statusCode: response.status,
        body,
        headers: Object.fromEntries(response.headers),
      };
    })();
    return { abort: () => controller.abort(), responsePromise };
  },
};

/** Which URLs the SDK asked for (to prove it really loaded through the Worker). */
const sdkRequests: string[] = [];
const recordingRequestHandler: RequestHandler = {
  makeRequest(url, headers, method, data) {
    sdkRequests.push(`${method} ${url}`);
    return workerRequestHandler.makeRequest(url, headers, method, data);
  },
};

/**
 * An SDK client whose datafile comes from the Worker's datafile endpoint; with `eventDispatcher`,
 * its decision and conversion events go to the Worker too (else it sends none).
 */
async function sdkFromWorker(eventDispatcher?: EventDispatcher): Promise<Client> {
  const client = createInstance({
    projectConfigManager: createPollingProjectConfigManager({
      sdkKey: SDK_KEY,
      urlTemplate: `${SITE}/_ss/datafiles/%s.json`,
      autoUpdate: false,
      requestHandler: recordingRequestHandler,
    }),
    requestHandler: recordingRequestHandler,
    ...(eventDispatcher ? { eventProcessor: createForwardingEventProcessor(eventDispatcher) } : {}),
  });
  await client.onReady({ timeout: 10_000 });
  return client;
}

async function publish(datafile: unknown): Promise<void> {
  await env.DATAFILES.put(`datafiles/${SDK_KEY}`, JSON.stringify(datafile));
  resetDatafileStore();
}

/** The edge's decisions for one visitor on one page, from the x-ss-decisions response header. */
async function edgeDecisions(
  path: string,
  visitorId: string,
  cookies: Record<string, string> = {},
): Promise<Map<string, string>> {
  const cookie = Object.entries({ ss_vid: visitorId, ...cookies })
    .map(([k, v]) => `${k}=${v}`)
    .join("; ");
  const response = await exports.default.fetch(`${SITE}${path}`, {
    headers: { cookie, "accept-encoding": "identity", "user-agent": BROWSER_UA },
    redirect: "manual",
  });
  await response.body?.cancel();
  expect(response.status, `${path} for ${visitorId}`).toBeLessThan(400);
  return new Map(parseDecisionsHeader(response.headers.get("x-ss-decisions")));
}

const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

/** 500 visitor ids: the demo's QA ids, then a mix of id shapes. */
function visitorIds(): string[] {
  const ids = ["qa-original", "qa-variant"];
  for (let i = 0; ids.length < VISITORS; i++) {
    ids.push(
      i % 3 === 0
        ? crypto.randomUUID().replace(/-/g, "")
        : i % 3 === 1
          ? `user-${i}`
          : `v${i}.${(i * 2654435761) % 1000003}@shop`,
    );
  }
  return ids;
}

let origin: MockedOrigin;
beforeEach(() => {
  origin = mockOrigin(
    () => new Response(PAGE_HTML, { headers: { "content-type": "text/html; charset=utf-8" } }),
  );
  // Impressions are not what this test is about: keep them out of the local queue.
  vi.spyOn(env.EVENTS, "sendBatch").mockResolvedValue(undefined as never);
});
afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

describe("official Optimizely SDK vs the edge: the demo datafile", () => {
  let client: Client;
  beforeAll(async () => {
    await publish(demoDatafile);
    client = await sdkFromWorker();
  });
  afterAll(async () => {
    await client?.close();
  });

  /** Each demo experiment, and a page of the demo shop whose URL conditions select it. */
  const PAGES: Record<string, string[]> = {
    "/": ["home_hero", "promo_style", "footer_cleanup"],
    "/products/2": ["product_cta", "product_reviews", "footer_cleanup"],
    "/pricing": ["pricing_page_split", "footer_cleanup"],
    "/checkout": ["one_page_checkout", "footer_cleanup"],
    "/checkout/done": ["thank_you_message", "footer_cleanup"],
  };

  it("loads the datafile through the Worker's datafile endpoint, unchanged", async () => {
    expect(sdkRequests.some((r) => r === `GET ${SITE}/_ss/datafiles/${SDK_KEY}.json`)).toBe(true);
    const served = await exports.default.fetch(`${SITE}/_ss/datafiles/${SDK_KEY}.json`);
    expect(await served.json()).toEqual(demoDatafile);
    const config = client.getOptimizelyConfig();
    expect(config?.revision).toBe(demoDatafile.revision);
    const sdkKeys = Object.keys(config?.experimentsMap ?? {}).sort();
    const all = [
      ...demoDatafile.experiments,
      ...demoDatafile.groups.flatMap((g) => g.experiments),
    ].map((e) => e.key);
    expect(sdkKeys).toEqual([...all].sort());
    // Every experiment of the datafile is checked below.
    expect(new Set(Object.values(PAGES).flat())).toEqual(new Set(all));
  });

  it(`decides like getVariation for ${VISITORS} visitors, every experiment`, async () => {
    const seen = new Map<string, Set<string>>();
    const mismatches: string[] = [];
    for (const visitorId of visitorIds()) {
      for (const [path, experimentKeys] of Object.entries(PAGES)) {
        const edge = await edgeDecisions(path, visitorId);
        for (const key of experimentKeys) {
          const sdk = client.getVariation(key, visitorId);
          const ours = edge.get(key) ?? null;
          if (ours !== sdk)
            mismatches.push(`${visitorId} ${key} on ${path}: edge ${ours}, SDK ${sdk}`);
          if (ours !== null) (seen.get(key) ?? seen.set(key, new Set()).get(key)!).add(ours);
        }
        // Only the experiments of the page's own URL conditions are decided on it.
        for (const key of edge.keys()) expect(experimentKeys, `${key} on ${path}`).toContain(key);
      }
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
    // Every variation of every experiment was reached, so the comparison covered them all.
    for (const experiment of [
      ...demoDatafile.experiments,
      ...demoDatafile.groups.flatMap((g) => g.experiments),
    ]) {
      expect([...(seen.get(experiment.key) ?? [])].sort(), experiment.key).toEqual(
        experiment.variations.map((v) => v.key).sort(),
      );
    }
    // Forced variations (the QA ids) are the SDK's too.
    expect(client.getVariation("product_cta", "qa-variant")).toBe("big_buy_button");
    expect(origin.requests.length).toBeGreaterThan(0);
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// A stress datafile: every awkward corner of bucketing on one page.

const STRESS_PATH = "/stress";

function variations(prefix: string, keys: string[]) {
  return keys.map((key, i) => ({ id: `${prefix}${i + 1}`, key }));
}
function allocation(ids: string[], ends: number[]) {
  return ids.map((entityId, i) => ({ entityId, endOfRange: ends[i]! }));
}
function experiment(
  id: string,
  key: string,
  vars: Array<{ id: string; key: string }>,
  traffic: Array<{ entityId: string; endOfRange: number }>,
  extra: Record<string, unknown> = {},
) {
  return {
    id,
    key,
    status: "Running",
    layerId: `L${id}`,
    variations: vars,
    trafficAllocation: traffic,
    audienceIds: [],
    forcedVariations: {},
    ...extra,
  };
}

const stressExperiments = [
  experiment("901", "holes", variations("9011", ["a", "b", "c"]), [
    { entityId: "90111", endOfRange: 2000 },
    { entityId: "", endOfRange: 3000 },
    { entityId: "90112", endOfRange: 6000 },
    { entityId: "90113", endOfRange: 9000 },
  ]),
  experiment(
    "902",
    "partial_traffic",
    variations("9021", ["off", "on"]),
    allocation(["90211", "90212"], [1500, 3000]),
  ),
  experiment(
    "903",
    "pro_plan_only",
    variations("9031", ["control", "upsell"]),
    allocation(["90311", "90312"], [5000, 10000]),
    { audienceIds: ["a_pro"] },
  ),
  experiment(
    "904",
    "audience_tree",
    variations("9041", ["x", "y", "z"]),
    allocation(["90411", "90412", "90413"], [3333, 6666, 10000]),
    {
      audienceIds: ["a_pro", "a_news"],
      audienceConditions: ["or", "a_pro", ["and", "a_news", ["not", "a_free"]]],
    },
  ),
  experiment(
    "905",
    "paused",
    variations("9051", ["a", "b"]),
    allocation(["90511", "90512"], [5000, 10000]),
    { status: "Paused" },
  ),
  experiment(
    "906",
    "forced",
    variations("9061", ["a", "b"]),
    allocation(["90611", "90612"], [9000, 10000]),
    { forcedVariations: { "user-7": "b", "user-4": "a", "user-10": "missing" } },
  ),
  experiment(
    "907",
    "single_variation",
    variations("9071", ["only"]),
    allocation(["90711"], [10000]),
  ),
];
const stressGroup = {
  id: "G1",
  policy: "random",
  trafficAllocation: [
    { entityId: "908", endOfRange: 4000 },
    { entityId: "909", endOfRange: 7000 },
  ],
  experiments: [
    experiment(
      "908",
      "group_one",
      variations("9081", ["a", "b"]),
      allocation(["90811", "90812"], [5000, 10000]),
      {
        layerId: "G1",
      },
    ),
    experiment(
      "909",
      "group_two",
      variations("9091", ["a", "b"]),
      allocation(["90911", "90912"], [7000, 10000]),
      {
        layerId: "G1",
        audienceIds: ["a_news"],
      },
    ),
  ],
};
const stressAll = [...stressExperiments, ...stressGroup.experiments];
const stressDatafile = {
  version: "4",
  accountId: "1",
  projectId: "1",
  revision: "9001",
  sdkKey: SDK_KEY,
  attributes: [
    { id: "attr1", key: "cookie.plan" },
    { id: "attr2", key: "query.ref" },
  ],
  audiences: [],
  typedAudiences: [
    {
      id: "a_pro",
      name: "Pro plan",
      conditions: [
        "and",
        { type: "custom_attribute", name: "cookie.plan", match: "exact", value: "pro" },
      ],
    },
    {
      id: "a_free",
      name: "Free plan",
      conditions: [
        "and",
        { type: "custom_attribute", name: "cookie.plan", match: "exact", value: "free" },
      ],
    },
    {
      id: "a_news",
      name: "From the newsletter",
      conditions: [
        "or",
        { type: "custom_attribute", name: "query.ref", match: "substring", value: "news" },
      ],
    },
  ],
  events: [{ id: "e1", key: "purchase", experimentIds: stressAll.map((e) => e.id) }],
  experiments: stressExperiments,
  groups: [stressGroup],
  featureFlags: [],
  rollouts: [],
  web: {
    pages: [
      {
        id: "p1",
        key: "stress",
        activation: "immediate",
        conditions: ["or", { match: "simple", value: `localhost${STRESS_PATH}` }],
      },
    ],
    experiments: stressAll.map((e) => ({
      id: e.id,
      type: "ab",
      pageIds: ["p1"],
      metrics: [{ eventId: "e1", aggregator: "unique" }],
      variations: e.variations.map((v) => ({ id: v.id, changes: [] })),
    })),
    events: [{ id: "e1", type: "custom" }],
    lists: [],
    integrations: {},
  },
};

describe("official Optimizely SDK vs the edge: holes, groups, audiences, forced, paused", () => {
  let client: Client;
  beforeAll(async () => {
    await publish(stressDatafile);
    client = await sdkFromWorker();
  });
  afterAll(async () => {
    await client?.close();
    resetDatafileStore();
  });

  it(`decides like getVariation for ${VISITORS} visitors with request attributes`, async () => {
    expect(client.getOptimizelyConfig()?.revision).toBe(stressDatafile.revision);
    const plans = [undefined, "pro", "free", "team"];
    const refs = [undefined, "newsletter-may", "ads", "NEWS"];
    const mismatches: string[] = [];
    const inCount = new Map<string, number>();
    const ids = visitorIds();
    for (let i = 0; i < ids.length; i++) {
      const visitorId = ids[i]!;
      const plan = plans[i % plans.length];
      const ref = refs[Math.floor(i / plans.length) % refs.length];
      const cookies: Record<string, string> = plan ? { plan } : {};
      const attributes: Record<string, string> = {};
      if (plan) attributes["cookie.plan"] = plan;
      if (ref) attributes["query.ref"] = ref;
      const path = ref ? `${STRESS_PATH}?ref=${encodeURIComponent(ref)}` : STRESS_PATH;
      const edge = await edgeDecisions(path, visitorId, cookies);
      for (const { key } of stressAll) {
        const sdk = client.getVariation(key, visitorId, attributes);
        const ours = edge.get(key) ?? null;
        if (ours !== sdk)
          mismatches.push(
            `${visitorId} ${key} (${JSON.stringify(attributes)}): edge ${ours}, SDK ${sdk}`,
          );
        if (ours !== null) inCount.set(key, (inCount.get(key) ?? 0) + 1);
      }
      // Mutually exclusive: never in both experiments of the group.
      expect(edge.has("group_one") && edge.has("group_two"), visitorId).toBe(false);
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
    // The corners were exercised: some visitors in and some out of every partial experiment.
    expect(inCount.get("paused") ?? 0).toBe(0);
    expect(inCount.get("single_variation")).toBe(VISITORS);
    for (const key of [
      "holes",
      "partial_traffic",
      "pro_plan_only",
      "audience_tree",
      "group_one",
      "group_two",
    ]) {
      expect(inCount.get(key) ?? 0, key).toBeGreaterThan(0);
      expect(inCount.get(key) ?? 0, key).toBeLessThan(VISITORS);
    }
  }, 120_000);
});

// ---------------------------------------------------------------------------------------------
// Feature flags: decide() against the edge, and the SDK's decision events counted for real.

describe("official Optimizely SDK decide(): flags at the edge, decision events counted", () => {
  /** What the SDK posted to POST /_ss/v1/events, and the Worker's answers. */
  const posted: Array<{ status: number; body: string; payload: SdkEventBatch }> = [];
  const dispatcher: EventDispatcher = {
    async dispatchEvent(event) {
      const response = await exports.default.fetch(
        new Request(`${SITE}/_ss/v1/events`, {
          method: event.httpVerb,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(event.params),
        }),
      );
      const body = await response.text();
      posted.push({ status: response.status, body, payload: event.params as SdkEventBatch });
      return { statusCode: response.status };
    },
  };
  // sendFlagDecisions: the SDK also reports its delivery-rule decisions, which must count nowhere.
  const datafile = { ...flagsDatafile, sendFlagDecisions: true };
  let client: Client;
  beforeAll(async () => {
    await publish(datafile);
    client = await sdkFromWorker(dispatcher);
  });
  afterAll(async () => {
    await client?.close();
    resetDatafileStore();
  });

  it("decide() equals the edge's x-ss-flags and bootstrap, for every flag and 200 visitors", async () => {
    const flagKeys = datafile.featureFlags.map((f) => f.key);
    const mismatches: string[] = [];
    const seen = new Set<string>();
    for (const visitorId of visitorIds().slice(0, 200)) {
      const country = visitorId.length % 2 ? "DE" : "US";
      const response = await exports.default.fetch(`${SITE}/about`, {
        headers: {
          cookie: `ss_vid=${visitorId}`,
          "accept-encoding": "identity",
          "user-agent": BROWSER_UA,
        },
        cf: { country },
      } as RequestInit);
      const html = await response.text();
      const header = new Map(
        parseDecisionsHeader(origin.requests.at(-1)!.headers.get("x-ss-flags")),
      );
      const payload = JSON.parse(/window\.__ss=(\{.*?\});<\/script>/s.exec(html)![1]!);
      const inPage = new Map(decodeBootstrap(payload)!.flags!.map((f) => [f.flagKey, f]));
      // The SDK gets the attributes the edge derives itself from the request.
      const user = client.createUserContext(visitorId, { "geo.country": country })!;
      const decisions = user.decideAll([
        // Keep the comparison free of side effects: no decision events from this test.
        "DISABLE_DECISION_EVENT" as never,
      ]);
      for (const key of flagKeys) {
        const sdk = decisions[key]!;
        const edge = inPage.get(key)!;
        const got = `${edge.enabled}/${edge.variationKey}/${JSON.stringify(edge.variables)}`;
        const want = `${sdk.enabled}/${sdk.variationKey}/${JSON.stringify(sdk.variables)}`;
        if (got !== want) mismatches.push(`${visitorId} ${key}: edge ${got}, SDK ${want}`);
        if (header.get(key) !== (sdk.enabled ? sdk.variationKey : undefined))
          mismatches.push(`${visitorId} ${key}: x-ss-flags ${header.get(key)}`);
        seen.add(`${key}=${sdk.variationKey}`);
      }
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
    // Both variations of the A/B rule, the targeted rule and Everyone Else were all reached.
    for (const outcome of [
      "search_ranking=semantic",
      "search_ranking=off",
      "new_checkout=on_de",
      "new_checkout=off",
      "half_release=on",
      "half_release=null",
    ])
      expect(seen, outcome).toContain(outcome);
    expect(posted).toEqual([]);
  }, 60_000);

  it("an A/B rule's decision event is counted for its experiment and variation; a delivery rule's is not", async () => {
    // The real queue this time: the consumer (Miniflare's queue broker → the Worker's queue
    // handler) counts what POST /_ss/v1/events accepted, into the real per-visitor state and D1.
    vi.mocked(env.EVENTS.sendBatch).mockRestore();
    const run = crypto.randomUUID().slice(0, 8);
    const expected = new Map<string, string>();
    for (let i = 0; i < 12; i++) {
      const visitorId = `flag-sdk-${run}-${i}`;
      const user = client.createUserContext(visitorId, { "geo.country": "DE" })!;
      const ab = user.decide("search_ranking");
      expect(ab.ruleKey).toBe("search_ab");
      const experiment = datafile.experiments.find((e) => e.key === "search_ab")!;
      expected.set(visitorId, experiment.variations.find((v) => v.key === ab.variationKey)!.id);
      // A delivery rule (the German release): with sendFlagDecisions the SDK reports it too.
      expect(user.decide("new_checkout")).toMatchObject({
        enabled: true,
        ruleKey: "checkout_germany",
      });
    }
    for (let i = 0; i < 200 && posted.length < 24; i++) await new Promise((r) => setTimeout(r, 10));
    expect(posted).toHaveLength(24);
    for (const p of posted) expect(p.status, p.body).toBe(204);
    const ruleTypes = posted.map(
      (p) => p.payload.visitors[0]!.snapshots[0]!.decisions[0]!.metadata.rule_type,
    );
    expect(ruleTypes.filter((t) => t === "feature-test")).toHaveLength(12);
    expect(ruleTypes.filter((t) => t === "rollout")).toHaveLength(12);

    type Row = Record<string, unknown>;
    const mine = (rows: Row[]) =>
      rows.filter((r) => typeof r.visitor_id === "string" && r.visitor_id.includes(run));
    let exposures: Row[] = [];
    for (let i = 0; i < 120; i++) {
      exposures = mine(await readDerivedRows(env, "exposures", SDK_KEY));
      if (exposures.length >= expected.size) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    // Every visitor exposed once, to the A/B rule's experiment, in the variation decide() gave;
    // nothing for the delivery rule (its id is no experiment of the results).
    expect(
      new Map(
        exposures.map((r) => [r.visitor_id as string, `${r.experiment_id}/${r.variation_id}`]),
      ),
    ).toEqual(new Map([...expected].map(([visitor, variation]) => [visitor, `3001/${variation}`])));
    const daily = await readDerivedRows(env, "variation_daily", SDK_KEY);
    const counted = (variationId: string) =>
      daily
        .filter((r) => r.experiment_id === "3001" && r.variation_id === variationId)
        .reduce((n, r) => n + Number(r.visitors), 0);
    for (const variationId of new Set(expected.values()))
      expect(counted(variationId)).toBeGreaterThanOrEqual(
        [...expected.values()].filter((v) => v === variationId).length,
      );
    expect(daily.some((r) => String(r.experiment_id).startsWith("rule_"))).toBe(false);

    // The archive keeps what ingest took from the decision: the flag key and the rule type.
    const uuids = new Set(
      posted
        .filter(
          (p) =>
            p.payload.visitors[0]!.snapshots[0]!.decisions[0]!.metadata.rule_type ===
            "feature-test",
        )
        .map((p) => p.payload.visitors[0]!.snapshots[0]!.events[0]!.uuid),
    );
    const archived: Array<Record<string, unknown>> = [];
    const listed = await env.ARCHIVE.list({ prefix: "events/" });
    for (const object of listed.objects) {
      const text = await (await env.ARCHIVE.get(object.key))!.text();
      for (const line of text.trim().split("\n")) {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (uuids.has(event.uuid as string)) archived.push(event);
      }
    }
    expect(archived).toHaveLength(12);
    for (const event of archived)
      expect(event).toMatchObject({
        type: "impression",
        experimentId: "3001",
        flagKey: "search_ranking",
        ruleType: "feature-test",
        source: "sdk",
      });
  }, 60_000);
});

/** The parts of the SDK's Event API batch this test reads. */
interface SdkEventBatch {
  visitors: Array<{
    snapshots: Array<{
      decisions: Array<{ experiment_id: string; metadata: { rule_type: string } }>;
      events: Array<{ uuid: string }>;
    }>;
  }>;
}
