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
 */
import { env, exports } from "cloudflare:workers";
import {
  createInstance,
  createPollingProjectConfigManager,
  type Client,
  type RequestHandler,
} from "@optimizely/optimizely-sdk/universal";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import demoDatafile from "../../demo/datafile.json";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { parseDecisionsHeader } from "../../src/edge/decisions-header";
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

/** An SDK client whose datafile comes from the Worker's datafile endpoint. */
async function sdkFromWorker(): Promise<Client> {
  const client = createInstance({
    projectConfigManager: createPollingProjectConfigManager({
      sdkKey: SDK_KEY,
      urlTemplate: `${SITE}/_ss/datafiles/%s.json`,
      autoUpdate: false,
      requestHandler: recordingRequestHandler,
    }),
    requestHandler: recordingRequestHandler,
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
