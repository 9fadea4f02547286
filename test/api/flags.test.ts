/**
 * Feature flags in the management API (docs/flags.md, docs/api.md "Flags"): typed variables and
 * their validation at the boundary, variations, per-environment toggles and delivery rules, A/B
 * rules as experiments with flagId, what is published (Optimizely v4 `featureFlags`, `rollouts`,
 * `experiments`), and the official SDK reading that datafile: its `decide()` and
 * `getFeatureVariable*` give what the API says and what our decision core decides.
 */
import {
  createInstance,
  createStaticProjectConfigManager,
} from "@optimizely/optimizely-sdk/universal";
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { decideAllFlags, loadDatafile, parseDatafile } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { api, apiJson, createProject, type ProjectWithEnvironments } from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;
let audience: { id: string };
let event: { id: string };

const collection = (plural: string) => `/projects/${project.id}/${plural}`;
const environment = (key: string) => project.environments.find((e) => e.key === key)!;

beforeEach(async () => {
  project = await createProject();
  audience = await apiJson("POST", collection("audiences"), 201, {
    body: {
      name: "Germany",
      conditions: [
        "or",
        { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
      ],
    },
  });
  event = await apiJson("POST", collection("events"), 201, {
    body: { key: "purchase", type: "custom" },
  });
});

const VARIABLES = [
  { key: "enabled_banner", type: "boolean", defaultValue: false },
  { key: "max_items", type: "integer", defaultValue: 3 },
  { key: "discount", type: "double", defaultValue: 0.5 },
  { key: "title", type: "string", defaultValue: "Checkout" },
  { key: "config", type: "json", defaultValue: { theme: "light", sizes: [1, 2] } },
];

function flagBody(extra: Record<string, unknown> = {}) {
  return {
    key: "new_checkout",
    name: "New checkout",
    variables: VARIABLES,
    variations: [
      { key: "on", variables: { enabled_banner: true } },
      {
        key: "big",
        name: "Big",
        variables: {
          max_items: 9007199254740991,
          discount: 0.25,
          title: "Käse </script>",
          config: { theme: "dark" },
        },
      },
    ],
    ...extra,
  };
}

async function createFlag(extra: Record<string, unknown> = {}): Promise<Json> {
  return apiJson("POST", collection("flags"), 201, { body: flagBody(extra) });
}

async function expect422(response: Response, paths: string[]) {
  const text = await response.text();
  expect(response.status, text).toBe(422);
  const details = (JSON.parse(text) as Json).error.details as Array<{ path: string }>;
  expect(details.map((d) => d.path)).toEqual(expect.arrayContaining(paths));
}

/** The datafile the Worker serves for an environment (what the SDKs download). */
async function servedDatafile(environmentKey: string): Promise<{ text: string; json: Json }> {
  // The isolate keeps the datafile it read; a test publishing again reads the new one.
  resetDatafileStore();
  const response = await exports.default.fetch(
    `http://localhost/_ss/datafiles/${environment(environmentKey).sdkKey}.json`,
  );
  expect(response.status).toBe(200);
  const text = await response.text();
  return { text, json: JSON.parse(text) };
}

describe("flags: writing", () => {
  it("creates a flag with typed variables, off first, and off in every environment", async () => {
    const flag = await createFlag();
    expect(flag.variables.map((v: Json) => [v.key, v.type, v.defaultValue])).toEqual(
      VARIABLES.map((v) => [v.key, v.type, v.defaultValue]),
    );
    expect(flag.variations.map((v: Json) => [v.key, v.featureEnabled])).toEqual([
      ["off", false],
      ["on", true],
      ["big", true],
    ]);
    expect(flag.variations[2].variables).toEqual({
      max_items: 9007199254740991,
      discount: 0.25,
      title: "Käse </script>",
      config: { theme: "dark" },
    });
    expect(Object.keys(flag.environments).sort()).toEqual(
      project.environments.map((e) => e.key).sort(),
    );
    for (const settings of Object.values(flag.environments) as Json[])
      expect(settings).toEqual({ enabled: false, rules: [], defaultVariationKey: "off" });
    expect(flag.published.length).toBe(project.environments.length);

    const plain = await apiJson("POST", collection("flags"), 201, { body: { key: "plain" } });
    expect(plain.variations.map((v: Json) => v.key)).toEqual(["off", "on"]);
  });

  it("refuses values an SDK would read differently, with the JSON path", async () => {
    const post = (body: unknown) => api("POST", collection("flags"), { body });
    const withDefault = (type: string, defaultValue: unknown) => ({
      key: "f",
      variables: [{ key: "v", type, defaultValue }],
    });
    // 2^53 is not a safe integer: JSON and parseInt would not give back what was typed.
    await expect422(await post(withDefault("integer", 2 ** 53)), [
      "$.body.variables[0].defaultValue",
    ]);
    await expect422(await post(withDefault("integer", 1.5)), ["$.body.variables[0].defaultValue"]);
    await expect422(await post(withDefault("integer", "3")), ["$.body.variables[0].defaultValue"]);
    await expect422(await post(withDefault("double", "0.5")), ["$.body.variables[0].defaultValue"]);
    await expect422(await post(withDefault("boolean", "true")), [
      "$.body.variables[0].defaultValue",
    ]);
    await expect422(await post(withDefault("json", [1, 2])), ["$.body.variables[0].defaultValue"]);
    await expect422(await post(withDefault("string", "x".repeat(10_001))), [
      "$.body.variables[0].defaultValue",
    ]);
    await expect422(await post(withDefault("color", "red")), ["$.body.variables[0].type"]);
    await expect422(
      await post(
        flagBody({ variations: [{ key: "on", variables: { nope: 1, max_items: -(2 ** 53) } }] }),
      ),
      ["$.body.variations[0].variables.nope", "$.body.variations[0].variables.max_items"],
    );
    await expect422(
      await post(flagBody({ variations: [{ key: "off", variables: { max_items: 1 } }] })),
      ["$.body.variations[0].variables"],
    );
    await expect422(await post(flagBody({ variations: [{ key: "a" }, { key: "a" }] })), [
      "$.body.variations[1].key",
    ]);
    await expect422(await post({ key: "f", variables: [VARIABLES[0], VARIABLES[0]] }), [
      "$.body.variables[1].key",
    ]);
    await expect422(await post(flagBody({ environments: { nowhere: { enabled: true } } })), [
      "$.body.environments.nowhere",
    ]);
    await expect422(
      await post(
        flagBody({
          environments: {
            production: {
              rules: [
                { key: "r", traffic: 10001 },
                { key: "s", traffic: 5000, audienceConditions: ["or", "999999999999"] },
                { key: "t", traffic: 5000, variationKey: "missing" },
              ],
              defaultVariationKey: "gone",
            },
          },
        }),
      ),
      ["$.body.environments.production.rules[0].traffic"],
    );
    await expect422(
      await post(
        flagBody({
          environments: {
            production: {
              rules: [
                { key: "s", traffic: 5000, audienceConditions: ["or", "999999999999"] },
                { key: "t", traffic: 5000, variationKey: "missing" },
                { key: "t", traffic: 5000 },
              ],
              defaultVariationKey: "gone",
            },
          },
        }),
      ),
      [
        "$.body.environments.production.rules[0].audienceConditions[1]",
        "$.body.environments.production.rules[1].variationKey",
        "$.body.environments.production.rules[2].key",
        "$.body.environments.production.defaultVariationKey",
      ],
    );
    // Nothing was written by the refused requests.
    const list = await apiJson("GET", collection("flags"), 200);
    expect(list.items).toEqual([]);
  });

  it("changes one environment at a time, keeps rule ids, and guards what is in use", async () => {
    const flag = await createFlag();
    const rules = [
      {
        key: "germany",
        audienceConditions: ["or", audience.id],
        traffic: 5000,
        variationKey: "big",
      },
    ];
    const enabled = await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { environments: { production: { enabled: true, rules } } },
    });
    expect(enabled.environments.production.enabled).toBe(true);
    const other = project.environments.find((e) => e.key !== "production")!;
    expect(enabled.environments[other.key].enabled).toBe(false);
    const ruleId = enabled.environments.production.rules[0].id;
    expect(ruleId).toMatch(/^\d{12}$/);
    const again = await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { environments: { production: { rules: [{ ...rules[0], traffic: 7500 }] } } },
    });
    expect(again.environments.production.rules[0]).toMatchObject({ id: ruleId, traffic: 7500 });
    expect(again.environments.production.enabled).toBe(true);

    // A variation a rule delivers cannot go; neither can an audience a rule names.
    await expect422(
      await api("PATCH", `/flags/${flag.id}`, { body: { variations: [{ key: "on" }] } }),
      ["$.body.environments.production.rules[0].variationKey"],
    );
    const audienceDelete = await api("DELETE", `/audiences/${audience.id}`);
    expect(audienceDelete.status).toBe(409);

    // Changing a variable's type refuses stored values the new type cannot hold.
    await expect422(
      await api("PATCH", `/flags/${flag.id}`, {
        body: {
          variables: [
            ...VARIABLES.slice(0, 3),
            { key: "title", type: "integer", defaultValue: 1 },
            VARIABLES[4],
          ],
        },
      }),
      ["$.body.variations[2].variables.title"],
    );
    // If-Match is honoured like every resource.
    const stale = await api("PATCH", `/flags/${flag.id}`, {
      body: { name: "x" },
      headers: { "if-match": 'W/"v1"' },
    });
    expect(stale.status).toBe(409);
    // Duplicate keys are 409 like other keyed resources.
    expect((await api("POST", collection("flags"), { body: flagBody() })).status).toBe(409);
  });
});

describe("flags: publishing", () => {
  it("publishes featureFlags, rollouts and A/B rules as Optimizely v4 carries them", async () => {
    const flag = await createFlag();
    // Off: only an Everyone Else rule delivering "off".
    let { json } = await servedDatafile("production");
    expect(parseDatafile(json).ok).toBe(true);
    let published = json.featureFlags.find((f: Json) => f.key === "new_checkout");
    expect(published).toMatchObject({ id: flag.id, experimentIds: [] });
    expect(published.variables.find((v: Json) => v.key === "config")).toMatchObject({
      type: "string",
      subType: "json",
      defaultValue: JSON.stringify({ theme: "light", sizes: [1, 2] }),
    });
    let rollout = json.rollouts.find((r: Json) => r.id === published.rolloutId);
    expect(rollout.experiments).toHaveLength(1);
    expect(rollout.experiments[0].variations[0]).toMatchObject({
      key: "off",
      featureEnabled: false,
    });

    // An A/B rule: an experiment with flagId, no pages, variation keys of the flag.
    const refused = await api("POST", collection("experiments"), {
      body: {
        key: "checkout_test",
        flagId: flag.id,
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "on", weight: 5000 },
          { key: "purple", weight: 5000 },
        ],
      },
    });
    await expect422(refused, ["$.body.variations[1].key"]);
    const test = await apiJson("POST", collection("experiments"), 201, {
      body: {
        key: "checkout_test",
        flagId: flag.id,
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "off", weight: 5000 },
          { key: "big", weight: 5000 },
        ],
      },
    });
    expect(test.flagId).toBe(flag.id);
    await apiJson("POST", `/experiments/${test.id}/start`, 200, {
      body: { environment: "production" },
    });
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: {
        environments: {
          production: {
            enabled: true,
            rules: [{ key: "germany", audienceConditions: ["or", audience.id], traffic: 5000 }],
            defaultVariationKey: "on",
          },
        },
      },
    });
    ({ json } = await servedDatafile("production"));
    expect(parseDatafile(json).ok).toBe(true);
    published = json.featureFlags.find((f: Json) => f.key === "new_checkout");
    expect(published.experimentIds).toEqual([test.id]);
    const experiment = json.experiments.find((e: Json) => e.id === test.id);
    expect(experiment.status).toBe("Running");
    expect(experiment.variations.map((v: Json) => [v.key, v.featureEnabled])).toEqual([
      ["off", false],
      ["big", true],
    ]);
    const maxItems = published.variables.find((v: Json) => v.key === "max_items");
    expect(experiment.variations[1].variables.find((u: Json) => u.id === maxItems.id).value).toBe(
      "9007199254740991",
    );
    rollout = json.rollouts.find((r: Json) => r.id === published.rolloutId);
    expect(
      rollout.experiments.map((r: Json) => [r.key, r.trafficAllocation[0].endOfRange]),
    ).toEqual([
      ["germany", 5000],
      [`default-rollout-${flag.id}`, 10000],
    ]);
    expect(rollout.experiments[0].audienceConditions).toEqual(["or", audience.id]);
    expect(rollout.experiments[1].variations[0]).toMatchObject({ key: "on", featureEnabled: true });

    // The other environment did not change: the flag is off there.
    const other = project.environments.find((e) => e.key !== "production")!;
    const staging = (await servedDatafile(other.key)).json;
    const stagingFlag = staging.featureFlags.find((f: Json) => f.key === "new_checkout");
    expect(stagingFlag.experimentIds).toEqual([]);

    // Guards: no archive while the A/B rule runs, no delete while it exists.
    expect((await api("PATCH", `/flags/${flag.id}`, { body: { archived: true } })).status).toBe(
      409,
    );
    expect((await api("DELETE", `/flags/${flag.id}`)).status).toBe(409);
  });

  it("the official SDK reads our datafile: decide() and getFeatureVariable* agree with the API and the core", async () => {
    const flag = await createFlag();
    const test = await apiJson("POST", collection("experiments"), 201, {
      body: {
        key: "checkout_test",
        flagId: flag.id,
        traffic: 5000,
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "off", weight: 5000 },
          { key: "big", weight: 5000 },
        ],
        forcedVariations: { "qa-1": "big" },
      },
    });
    await apiJson("POST", `/experiments/${test.id}/start`, 200, {
      body: { environment: "production" },
    });
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: {
        environments: {
          production: {
            enabled: true,
            rules: [
              {
                key: "germany",
                audienceConditions: ["or", audience.id],
                traffic: 5000,
                variationKey: "big",
              },
              { key: "half", traffic: 5000 },
            ],
          },
        },
      },
    });
    const { text } = await servedDatafile("production");
    const loaded = loadDatafile(text);
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const client = createInstance({
      projectConfigManager: createStaticProjectConfigManager({ datafile: text }),
      // No event processor is configured, so the SDK never sends anything: any request fails.
      requestHandler: {
        makeRequest: () => ({
          abort: () => undefined,
          responsePromise: Promise.reject(new Error("no network in tests")),
        }),
      },
    });
    await client.onReady({ timeout: 5_000 });
    try {
      const apiFlag = await apiJson("GET", `/flags/${flag.id}`, 200);
      const valuesOf = (key: string): Json => {
        const defaults = Object.fromEntries(
          apiFlag.variables.map((v: Json) => [v.key, v.defaultValue]),
        );
        const variation = apiFlag.variations.find((v: Json) => v.key === key);
        return variation?.featureEnabled ? { ...defaults, ...variation.variables } : defaults;
      };
      const seen = new Set<string>();
      for (let i = 0; i < 600; i++) {
        const visitorId = i === 0 ? "qa-1" : `visitor-${i}`;
        const attributes = { "geo.country": i % 3 === 0 ? "DE" : "FR" };
        const user = client.createUserContext(visitorId, attributes)!;
        const sdk = user.decide("new_checkout");
        const ours = decideAllFlags(loaded.compiled, { visitorId, attributes })[0]!;
        const context = `visitor ${visitorId} ${JSON.stringify(attributes)}`;
        expect(ours.enabled, context).toBe(sdk.enabled);
        expect(ours.variationKey, context).toBe(sdk.variationKey);
        expect(ours.ruleKey, context).toBe(sdk.ruleKey);
        expect(ours.variables, context).toEqual(sdk.variables);
        // The values are exactly what the API holds for that variation.
        expect(sdk.variables, context).toEqual(valuesOf(sdk.variationKey ?? "off"));
        expect(client.isFeatureEnabled("new_checkout", visitorId, attributes), context).toBe(
          sdk.enabled,
        );
        expect(
          client.getFeatureVariableInteger("new_checkout", "max_items", visitorId, attributes),
        ).toBe(sdk.variables.max_items);
        expect(
          client.getFeatureVariableJSON("new_checkout", "config", visitorId, attributes),
        ).toEqual(sdk.variables.config);
        seen.add(`${sdk.ruleKey}:${sdk.variationKey}`);
      }
      // Every path was taken: the whitelist, both arms of the A/B rule, both delivery rules and
      // Everyone Else (the A/B rule holds back half its traffic).
      expect([...seen].sort()).toEqual(
        [
          "checkout_test:big",
          "checkout_test:off",
          "germany:big",
          "half:on",
          `default-rollout-${flag.id}:off`,
        ].sort(),
      );
      expect(client.createUserContext("qa-1")!.decide("new_checkout").variationKey).toBe("big");
    } finally {
      await client.close();
    }
  });

  it("toggling off publishes a datafile where everyone gets off", async () => {
    const flag = await createFlag({
      environments: { production: { enabled: true, defaultVariationKey: "on" } },
    });
    let loaded = loadDatafile((await servedDatafile("production")).text);
    if (!loaded.ok) throw new Error("invalid datafile");
    expect(decideAllFlags(loaded.compiled, { visitorId: "v" })[0]).toMatchObject({
      enabled: true,
      variationKey: "on",
    });
    const off = await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { environments: { production: { enabled: false } } },
    });
    expect(off.published.find((p: Json) => p.environmentKey === "production").changed).toBe(true);
    loaded = loadDatafile((await servedDatafile("production")).text);
    if (!loaded.ok) throw new Error("invalid datafile");
    expect(decideAllFlags(loaded.compiled, { visitorId: "v" })[0]).toMatchObject({
      enabled: false,
      variationKey: "off",
    });
    // Archived flags leave the datafile.
    await apiJson("PATCH", `/flags/${flag.id}`, 200, { body: { archived: true } });
    const { json } = await servedDatafile("production");
    expect(json.featureFlags).toEqual([]);
    await apiJson("DELETE", `/flags/${flag.id}`, 200);
  });
});

describe("flags: guards from the review", () => {
  const abRule = (flagId: string, extra: Record<string, unknown> = {}) => ({
    key: "rule_test",
    flagId,
    metrics: [{ eventId: event.id, aggregator: "unique" }],
    variations: [
      { key: "off", weight: 5000 },
      { key: "on", weight: 5000 },
    ],
    ...extra,
  });

  it("keys: a delivery rule cannot take an experiment's key, nor an experiment a rule's", async () => {
    const flag = await createFlag();
    await apiJson("POST", collection("experiments"), 201, { body: abRule(flag.id) });
    await expect422(
      await api("PATCH", `/flags/${flag.id}`, {
        body: { environments: { production: { rules: [{ key: "rule_test", traffic: 0 }] } } },
      }),
      ["$.body.environments.production.rules[0].key"],
    );
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { environments: { production: { rules: [{ key: "beta", traffic: 0 }] } } },
    });
    await expect422(
      await api("POST", collection("experiments"), { body: abRule(flag.id, { key: "beta" }) }),
      ["$.body.key"],
    );
  });

  it("A/B rules: no pages, no bandit, no archived flag, no move while running", async () => {
    const flag = await createFlag();
    const page = await apiJson("POST", collection("pages"), 201, {
      body: { key: "home", conditions: ["or", { match: "simple", value: "https://a.example/" }] },
    });
    await expect422(
      await api("POST", collection("experiments"), {
        body: abRule(flag.id, { pageIds: [page.id] }),
      }),
      ["$.body.pageIds"],
    );
    await expect422(
      await api("POST", collection("experiments"), {
        body: abRule(flag.id, { allocationPolicy: "bandit" }),
      }),
      ["$.body.allocationPolicy"],
    );
    const rule = await apiJson("POST", collection("experiments"), 201, { body: abRule(flag.id) });
    await apiJson("POST", `/experiments/${rule.id}/start`, 200, {
      body: { environment: "production" },
    });
    const other = await apiJson("POST", collection("flags"), 201, { body: { key: "other" } });
    expect(
      (await api("PATCH", `/experiments/${rule.id}`, { body: { flagId: other.id } })).status,
    ).toBe(409);
    await apiJson("POST", `/experiments/${rule.id}/pause`, 200, {
      body: { environment: "production" },
    });
    await apiJson("PATCH", `/flags/${flag.id}`, 200, { body: { archived: true } });
    expect(
      (await api("POST", `/experiments/${rule.id}/resume`, { body: { environment: "production" } }))
        .status,
    ).toBe(409);
    await expect422(
      await api("POST", collection("experiments"), {
        body: abRule(flag.id, { key: "another" }),
      }),
      ["$.body.flagId"],
    );
  });

  it("an A/B rule leaves the datafile while its flag is off", async () => {
    const flag = await createFlag();
    const rule = await apiJson("POST", collection("experiments"), 201, { body: abRule(flag.id) });
    await apiJson("POST", `/experiments/${rule.id}/start`, 200, {
      body: { environment: "production" },
    });
    let { json } = await servedDatafile("production");
    expect(json.experiments.map((x: Json) => x.id)).not.toContain(rule.id);
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { environments: { production: { enabled: true } } },
    });
    ({ json } = await servedDatafile("production"));
    expect(json.experiments.map((x: Json) => x.id)).toContain(rule.id);
  });

  it("prototype-named variables, renames and names survive; oversized flags are refused", async () => {
    const flag = await apiJson("POST", collection("flags"), 201, {
      body: {
        key: "proto",
        variables: [
          { key: "toString", type: "string", defaultValue: "a" },
          { key: "color", type: "string", defaultValue: "red" },
        ],
        variations: [{ key: "on", name: "Turned on", variables: { color: "blue" } }],
        environments: { production: { enabled: true, defaultVariationKey: "on" } },
      },
    });
    const loaded = loadDatafile((await servedDatafile("production")).text);
    if (!loaded.ok) throw new Error("invalid datafile");
    expect(decideAllFlags(loaded.compiled, { visitorId: "v" })[0]!.variables).toEqual({
      toString: "a",
      color: "blue",
    });
    const colorId = flag.variables[1].id;
    const renamed = await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: {
        variables: [
          flag.variables[0],
          { id: colorId, key: "colour", type: "string", defaultValue: "red" },
        ],
      },
    });
    expect(renamed.variations[1]).toMatchObject({
      name: "Turned on",
      variables: { colour: "blue" },
    });
    const again = await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: { variations: [{ key: "on", variables: { colour: "green" } }] },
    });
    expect(again.variations[1].name).toBe("Turned on");

    const long = "x".repeat(10_000);
    await expect422(
      await api("POST", collection("flags"), {
        body: {
          key: "huge",
          variables: Array.from({ length: 50 }, (_, i) => ({
            key: `v${i}`,
            type: "string",
            defaultValue: long,
          })),
          environments: {
            production: {
              rules: Array.from({ length: 20 }, (_, i) => ({ key: `r${i}`, traffic: 100 })),
            },
          },
        },
      }),
      ["$.body.variables"],
    );
  });

  it("importing one environment's datafile keeps what the other environments use", async () => {
    const flag = await createFlag({
      environments: {
        production: { enabled: true, defaultVariationKey: "big" },
      },
    });
    const other = project.environments.find((e) => e.key !== "production")!;
    const rule = await apiJson("POST", collection("experiments"), 201, { body: abRule(flag.id) });
    const before = (await servedDatafile("production")).text;
    // The other environment serves the flag off: importing its own datafile changes nothing.
    const { json } = await servedDatafile(other.key);
    await apiJson("POST", `/environments/${other.id}/datafile/import`, 200, { body: json });
    const after = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(after.variations.map((v: Json) => v.key)).toEqual(["off", "on", "big"]);
    expect(after.environments[other.key].enabled).toBe(false);
    expect((await apiJson("GET", `/experiments/${rule.id}`, 200)).flagId).toBe(flag.id);
    const production = JSON.parse((await servedDatafile("production")).text);
    expect({ ...production, revision: "" }).toEqual({ ...JSON.parse(before), revision: "" });
  });
});
