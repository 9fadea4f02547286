/**
 * buildDatafile (src/api/services/datafile-build.ts): management rows → an Optimizely v4 datafile + `web`.
 * Pure, but run in workerd so the official SDK's universal entry can load the result.
 */
import {
  createInstance,
  createStaticProjectConfigManager,
  type Client,
  type RequestHandler,
} from "@optimizely/optimizely-sdk/universal";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  audienceIdsOf,
  buildDatafile,
  contentText,
  DatafileBuildError,
  experimentTrafficAllocation,
  groupTrafficAllocation,
  LEGACY_AUDIENCE_PLACEHOLDER,
  serializeDatafile,
  type ProjectSnapshot,
} from "../../src/api/services/datafile-build";
import { decideExperiment, loadDatafile, parseDatafile } from "../../src/core/index";
import {
  environmentRow,
  experimentRow,
  pageRow,
  realisticSnapshot,
  twoVariations,
} from "../helpers/management-rows";

const allExperiments = (df: ReturnType<typeof buildDatafile>) => [
  ...df.experiments,
  ...df.groups.flatMap((g) => g.experiments),
];

describe("allocation math", () => {
  it("scales cumulative variation weights by traffic, rounding each end (not each width)", () => {
    const thirds = [
      { id: "a", weight: 3333 },
      { id: "b", weight: 3333 },
      { id: "c", weight: 3334 },
    ];
    expect(experimentTrafficAllocation(thirds, 10000)).toEqual([
      { entityId: "a", endOfRange: 3333 },
      { entityId: "b", endOfRange: 6666 },
      { entityId: "c", endOfRange: 10000 },
    ]);
    // 5000 × 3333 / 10000 = 1666.5 → 1667; 3333; 5000 (the last end is exactly the traffic).
    expect(experimentTrafficAllocation(thirds, 5000)).toEqual([
      { entityId: "a", endOfRange: 1667 },
      { entityId: "b", endOfRange: 3333 },
      { entityId: "c", endOfRange: 5000 },
    ]);
    // 9000: 2999.7 → 3000, 5999.4 → 5999, 9000.
    expect(experimentTrafficAllocation(thirds, 9000).map((e) => e.endOfRange)).toEqual([
      3000, 5999, 9000,
    ]);
    expect(experimentTrafficAllocation(thirds, 1).map((e) => e.endOfRange)).toEqual([0, 1, 1]);
  });

  it("leaves out 0-weight variations and keeps the others' ranges", () => {
    expect(
      experimentTrafficAllocation(
        [
          { id: "a", weight: 5000 },
          { id: "off", weight: 0 },
          { id: "b", weight: 5000 },
        ],
        10000,
      ),
    ).toEqual([
      { entityId: "a", endOfRange: 5000 },
      { entityId: "b", endOfRange: 10000 },
    ]);
    expect(experimentTrafficAllocation([{ id: "a", weight: 0 }], 10000)).toEqual([]);
  });

  it("group allocation: cumulative over experiment ids, unpublished ones become holes", () => {
    expect(
      groupTrafficAllocation(
        [
          { experimentId: "x", weight: 3000 },
          { experimentId: "gone", weight: 2000 },
          { experimentId: "zero", weight: 0 },
          { experimentId: "y", weight: 4000 },
        ],
        new Set(["x", "y", "zero"]),
      ),
    ).toEqual([
      { entityId: "x", endOfRange: 3000 },
      { entityId: "", endOfRange: 5000 },
      { entityId: "y", endOfRange: 9000 },
    ]);
  });

  it("audience ids of a condition tree, operators skipped, first appearance order", () => {
    expect(audienceIdsOf(["and", "1", ["or", "2", ["not", "1"]], "3"])).toEqual(["1", "2", "3"]);
    expect(audienceIdsOf("7")).toEqual(["7"]);
    expect(audienceIdsOf(null)).toEqual([]);
    expect(audienceIdsOf([])).toEqual([]);
  });
});

describe("buildDatafile on a realistic snapshot", () => {
  const snapshot = realisticSnapshot();
  const df = buildDatafile(snapshot, 7);

  it("fills the Optimizely header fields", () => {
    expect(df).toMatchObject({
      version: "4",
      accountId: "900000000001",
      projectId: "100000000001",
      revision: "7",
      sdkKey: "shopProdKey0000000000001",
      environmentKey: "production",
      anonymizeIP: true,
      botFiltering: true,
      featureFlags: [],
      rollouts: [],
    });
    expect(df.attributes).toEqual([
      { id: "800000000001", key: "plan" },
      { id: "800000000002", key: "lifetime_value" },
      { id: "800000000003", key: "device.type" },
    ]);
  });

  it("passes parseDatafile with zero errors and zero warnings", () => {
    const parsed = parseDatafile(serializeDatafile(df));
    expect(parsed.problems).toEqual([]);
    expect(parsed.ok).toBe(true);
  });

  it("moves grouped experiments into groups[].experiments, group allocation with holes", () => {
    expect(df.experiments.map((x) => x.key)).toEqual([
      "product_page_cta",
      "homepage_hero",
      "checkout_split",
      "zero_weight_arm",
    ]);
    expect(df.groups).toHaveLength(1);
    const group = df.groups[0]!;
    expect(group.id).toBe("700000000001");
    expect(group.policy).toBe("random");
    // archived_here is Archived in this environment: not published, its share is a hole.
    expect(group.experiments.map((x) => x.key)).toEqual(["price_savings", "cart_upsell"]);
    expect(group.trafficAllocation).toEqual([
      { entityId: "600000000004", endOfRange: 3000 },
      { entityId: "", endOfRange: 5000 },
      { entityId: "600000000005", endOfRange: 9000 },
    ]);
  });

  it("computes experiment allocations from weights and traffic", () => {
    const byKey = new Map(allExperiments(df).map((x) => [x.key, x]));
    expect(byKey.get("homepage_hero")!.trafficAllocation.map((e) => e.endOfRange)).toEqual([
      2000, 4000, 6000, 8000,
    ]);
    expect(byKey.get("checkout_split")!.trafficAllocation.map((e) => e.endOfRange)).toEqual([
      3000, 5999, 9000,
    ]);
    expect(byKey.get("cart_upsell")!.trafficAllocation).toEqual([
      { entityId: "650000000001", endOfRange: 4000 },
      { entityId: "650000000002", endOfRange: 10000 },
    ]);
    const zero = byKey.get("zero_weight_arm")!;
    expect(zero.trafficAllocation).toEqual([
      { entityId: "660000000001", endOfRange: 2500 },
      { entityId: "660000000003", endOfRange: 5000 },
    ]);
    // The 0-weight variation stays a variation (forced variations still resolve).
    expect(zero.variations.map((v) => v.key)).toEqual(["a", "paused_arm", "b"]);
    expect(zero.forcedVariations).toEqual({ "qa-tester-2": "paused_arm" });
  });

  it("publishes typed audiences and their legacy placeholders, same ids", () => {
    const ids = ["500000000001", "500000000002", "500000000003", "500000000004"];
    expect(df.typedAudiences!.map((a) => a.id)).toEqual(ids);
    expect(df.audiences.map((a) => a.id)).toEqual(ids);
    for (const audience of df.audiences) {
      expect(audience.conditions).toBe(LEGACY_AUDIENCE_PLACEHOLDER);
      expect(() => JSON.parse(audience.conditions as string)).not.toThrow();
    }
    expect(df.typedAudiences![0]!.conditions).toEqual([
      "or",
      { type: "custom_attribute", name: "device.type", match: "exact", value: "mobile" },
      { type: "custom_attribute", name: "device.type", match: "exact", value: "tablet" },
    ]);
    const hero = df.experiments.find((x) => x.key === "homepage_hero")!;
    expect(hero.audienceConditions).toEqual([
      "or",
      "500000000001",
      ["and", "500000000002", ["not", "500000000004"]],
    ]);
    expect(hero.audienceIds).toEqual(["500000000001", "500000000002", "500000000004"]);
    const cta = df.experiments.find((x) => x.key === "product_page_cta")!;
    expect(cta.audienceIds).toEqual([]);
    expect(cta.audienceConditions).toBeUndefined();
    expect(cta.forcedVariations).toEqual({ "qa-tester-1": "treatment" });
  });

  it("leaves out archived experiments, and archived pages/events nobody uses", () => {
    const keys = allExperiments(df).map((x) => x.key);
    expect(keys).not.toContain("old_archived_test");
    expect(keys).not.toContain("archived_here");
    expect(df.web!.experiments.map((x) => x.id)).toEqual(
      allExperiments(df)
        .map((x) => x.id)
        .sort(),
    );
    expect(df.web!.pages.map((p) => p.key)).toEqual([
      "home",
      "product",
      "cart",
      "checkout",
      "mini_cart",
    ]);
    expect(df.events.map((e) => e.key)).toEqual([
      "purchase",
      "add_to_cart",
      "home_view",
      "newsletter_signup",
    ]);
  });

  it("events list the published experiments whose metrics use them; web events carry type/page/selector", () => {
    const byKey = new Map(df.events.map((e) => [e.key, e.experimentIds]));
    expect(byKey.get("purchase")).toEqual([
      "600000000001",
      "600000000002",
      "600000000003",
      "600000000004",
    ]);
    expect(byKey.get("add_to_cart")).toEqual(["600000000001", "600000000005", "600000000006"]);
    expect(byKey.get("home_view")).toEqual(["600000000002"]);
    expect(byKey.get("newsletter_signup")).toEqual([]);
    expect(df.web!.events).toEqual([
      { id: "400000000001", type: "custom" },
      { id: "400000000002", type: "click", pageId: "300000000002", selector: "#add-to-cart" },
      { id: "400000000003", type: "pageview", pageId: "300000000001" },
      { id: "400000000005", type: "custom" },
    ]);
  });

  it("carries web data: pages, changes, shared changes, metrics, lists, integrations", () => {
    const web = df.web!;
    expect(web.pages.find((p) => p.key === "mini_cart")).toEqual({
      id: "300000000005",
      key: "mini_cart",
      activation: "dom_changed",
      selector: "#mini-cart .items",
      conditions: ["or", { match: "substring", value: "shop.example.com" }],
    });
    expect(web.pages.find((p) => p.key === "home")).not.toHaveProperty("selector");
    const savings = web.experiments.find((x) => x.id === "600000000004")!;
    expect(savings).toMatchObject({
      type: "ab",
      pageIds: ["300000000002", "300000000003"],
      metrics: [{ eventId: "400000000001", aggregator: "sum", field: "value" }],
      sharedChanges: [{ type: "custom_css", value: ".savings { color: #c00; }" }],
      allocationPolicy: "manual",
    });
    expect(savings.variations[1]!.changes[0]).toMatchObject({
      type: "insert_html",
      position: "append",
    });
    expect(savings).not.toHaveProperty("sections");
    expect(web.lists).toEqual([{ id: "900000000011", key: "vip", values: ["cust_1", "cust_2"] }]);
    expect(web.integrations).toEqual({ dataLayer: false, segment: false });
  });

  it("carries multivariate sections and combinations as stored", () => {
    const hero = df.web!.experiments.find((x) => x.id === "600000000002")!;
    expect(hero.type).toBe("multivariate");
    expect(hero.sections!.map((s) => s.id)).toEqual(["s_headline", "s_image"]);
    expect(hero.variations.map((v) => v.sectionVariationIds)).toEqual([
      ["sv_h_a", "sv_i_a"],
      ["sv_h_b", "sv_i_a"],
      ["sv_h_a", "sv_i_b"],
      ["sv_h_b", "sv_i_b"],
    ]);
    expect(hero.variations[3]!.changes).toHaveLength(2);
    const optimizely = df.experiments.find((x) => x.id === "600000000002")!;
    expect(optimizely.variations.map((v) => v.key)).toEqual([
      "Original_Original",
      "Benefit_Original",
      "Original_Lifestyle",
      "Benefit_Lifestyle",
    ]);
  });
});

describe("statuses per environment", () => {
  it("takes each experiment's status in this environment, default Not started", () => {
    const production = buildDatafile(realisticSnapshot(), 1);
    const staging = buildDatafile(
      {
        ...realisticSnapshot(),
        environment: environmentRow({ id: "200000000002", key: "staging", sdk_key: "stagingKey" }),
        statuses: new Map([
          ["600000000001", "Paused"],
          ["600000000008", "Running"],
        ]),
      },
      1,
    );
    const status = (df: ReturnType<typeof buildDatafile>) =>
      Object.fromEntries(allExperiments(df).map((x) => [x.key, x.status]));
    expect(status(production)).toEqual({
      product_page_cta: "Running",
      homepage_hero: "Running",
      checkout_split: "Paused",
      zero_weight_arm: "Running",
      price_savings: "Running",
      cart_upsell: "Running",
    });
    expect(status(staging)).toEqual({
      product_page_cta: "Paused",
      homepage_hero: "Not started",
      checkout_split: "Not started",
      zero_weight_arm: "Not started",
      price_savings: "Not started",
      cart_upsell: "Not started",
      // Archived in production only: published (and in its group) here.
      archived_here: "Running",
    });
    expect(staging.sdkKey).toBe("stagingKey");
    expect(staging.environmentKey).toBe("staging");
    expect(staging.groups[0]!.trafficAllocation).toEqual([
      { entityId: "600000000004", endOfRange: 3000 },
      { entityId: "600000000008", endOfRange: 5000 },
      { entityId: "600000000005", endOfRange: 9000 },
    ]);
  });
});

describe("determinism", () => {
  it("the same snapshot gives the same bytes, whatever order the rows come in", () => {
    const a = serializeDatafile(buildDatafile(realisticSnapshot(), 3));
    const shuffled = realisticSnapshot();
    for (const key of [
      "attributes",
      "audiences",
      "events",
      "pages",
      "groups",
      "lists",
      "experiments",
    ] as const)
      (shuffled[key] as unknown[]).reverse();
    shuffled.statuses = new Map([...shuffled.statuses].reverse());
    expect(serializeDatafile(buildDatafile(shuffled, 3))).toBe(a);
    expect(serializeDatafile(buildDatafile(realisticSnapshot(), 3))).toBe(a);
  });

  it("orders by created_at, then id", () => {
    const snapshot = realisticSnapshot();
    snapshot.experiments = [
      experimentRow({ id: "2", key: "b_second", n: 30, variations: twoVariations("2") }),
      experimentRow({ id: "3", key: "c_first", n: 29, variations: twoVariations("3") }),
      experimentRow({ id: "1", key: "a_tie", n: 30, variations: twoVariations("1") }),
    ];
    expect(buildDatafile(snapshot, 1).experiments.map((x) => x.key)).toEqual([
      "c_first",
      "a_tie",
      "b_second",
    ]);
  });

  it("content text ignores only the revision", () => {
    const a = buildDatafile(realisticSnapshot(), 1);
    const b = buildDatafile(realisticSnapshot(), 2);
    expect(serializeDatafile(a)).not.toBe(serializeDatafile(b));
    expect(contentText(a)).toBe(contentText(b));
    expect(contentText(a)).not.toBe(
      contentText(buildDatafile(realisticSnapshot({ "600000000001": "Paused" }), 1)),
    );
  });
});

describe("what buildDatafile leaves to the validator, and what it refuses itself", () => {
  it("a bad regex builds, and parseDatafile names its path", () => {
    const snapshot = realisticSnapshot();
    snapshot.pages = [
      ...snapshot.pages,
      pageRow("300000000009", "broken", ["or", { match: "regex", value: "^/p/(\\d+$" }]),
    ];
    const parsed = parseDatafile(serializeDatafile(buildDatafile(snapshot, 1)));
    expect(parsed.ok).toBe(false);
    expect(parsed.problems.filter((p) => p.severity === "error").map((p) => p.path)).toEqual([
      "$.web.pages[5].conditions[1].value",
    ]);
  });

  it("a JSON column that does not parse → DatafileBuildError naming table, row and column", () => {
    const snapshot: ProjectSnapshot = realisticSnapshot();
    snapshot.experiments = [
      { ...snapshot.experiments[0]!, variations: "[{" },
      { ...snapshot.experiments[1]!, page_ids: '{"not":"an array"}' },
    ];
    let error: unknown;
    try {
      buildDatafile(snapshot, 1);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DatafileBuildError);
    expect((error as DatafileBuildError).problems.map((p) => p.path)).toEqual([
      'experiments["600000000001"].variations',
      'experiments["600000000002"].page_ids',
    ]);
  });
});

describe("the official Optimizely SDK loads it and decides like the core", () => {
  const text = serializeDatafile(buildDatafile(realisticSnapshot(), 12));
  let client: Client;
  beforeAll(async () => {
    // Static datafile: the SDK needs no HTTP; any request it tried would fail loudly.
    const noNetwork: RequestHandler = {
      makeRequest: (url) => ({
        abort: () => {},
        responsePromise: Promise.reject(new Error(`unexpected SDK request to ${url}`)),
      }),
    };
    client = createInstance({
      projectConfigManager: createStaticProjectConfigManager({ datafile: text }),
      requestHandler: noNetwork,
    });
    await client.onReady({ timeout: 5000 });
  });
  afterAll(async () => {
    await client?.close();
  });

  it("200 visitors × every experiment: same variation as decideExperiment", () => {
    const loaded = loadDatafile(text);
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    const compiled = loaded.compiled;
    const keys = compiled.experiments.map((x) => x.key);
    expect(keys).toHaveLength(6);
    const devices = ["desktop", "mobile", "tablet"];
    const plans = ["basic", "premium", "blocked"];
    let decided = 0;
    const seen = new Map<string, Set<string | null>>();
    for (let i = 0; i < 200; i++) {
      const visitorId =
        i === 0 ? "qa-tester-1" : i === 1 ? "qa-tester-2" : `visitor-${i}-${(i * 7919) % 1009}`;
      const attributes = {
        "device.type": devices[i % 3]!,
        plan: plans[Math.floor(i / 3) % 3]!,
        lifetime_value: (i * 37) % 1000,
      };
      for (const key of keys) {
        const ours = decideExperiment(compiled, key, { visitorId, attributes }).variationKey;
        const sdk = client.getVariation(key, visitorId, attributes);
        expect(ours, `${key} for ${visitorId}`).toBe(sdk);
        if (ours !== null) decided++;
        const values = seen.get(key) ?? new Set();
        values.add(ours);
        seen.set(key, values);
      }
    }
    // The comparison means something: most experiments bucket visitors into several variations.
    expect(decided).toBeGreaterThan(400);
    expect(seen.get("product_page_cta")).toEqual(new Set(["control", "treatment"]));
    expect(seen.get("checkout_split")).toEqual(new Set([null])); // Paused
    expect(seen.get("zero_weight_arm")!.has("paused_arm")).toBe(true); // only through forcing
    expect(client.getVariation("zero_weight_arm", "qa-tester-2")).toBe("paused_arm");
  });
});
