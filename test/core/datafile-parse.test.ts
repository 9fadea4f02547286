import { readFileSync } from "node:fs";
import { createInstance, createStaticProjectConfigManager } from "@optimizely/optimizely-sdk";
import { describe, expect, it } from "vitest";
import { MAX_CONDITION_DEPTH, parseDatafile } from "../../src/core/datafile-parse";
import { datafileSchema } from "../../src/core/datafile-schema";
import { formatPath, formatProblems, type Problem } from "../../src/core/problem";

const FIXTURES = new URL("../fixtures/datafiles/", import.meta.url);
const fixtureText = (name: string): string => readFileSync(new URL(name, FIXTURES), "utf8");
const VALID_TEXT = fixtureText("valid-web.json");

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- mutations reach anywhere
type Json = any;
const valid = (): Json => JSON.parse(VALID_TEXT);

/** "severity path" per problem, sorted: what the tables below compare. */
const summary = (problems: readonly Problem[]): string[] =>
  problems.map((p) => `${p.severity} ${p.path}`).sort();

interface Case {
  name: string;
  mutate: (d: Json) => void;
  /** Every problem expected, as "error $.path" / "warning $.path". */
  expected: string[];
  /** A fragment of the message of the first expected problem, when worth pinning. */
  message?: RegExp;
}

const leaf = (name: string, match: string, value?: unknown) => ({
  type: "custom_attribute",
  name,
  match,
  value,
});

// Fixture landmarks (valid-web.json):
// experiments[0] 60001 product_page_cta (61001 control, 61002 big_green_button), forced qa-tester-1
// experiments[1] 60002 homepage_hero (multivariate), audienceConditions ["or","40001","40002"]
// experiments[2] 60003 checkout_redesign_split (Paused, split_url, a 10% hole)
// experiments[3] 60004 free_shipping_banner_test (feature test of flag 80001)
// groups[0] 70001 random: 60005, 60006; rollouts[0] 90001: 91001, 91002
// audiences[0] 40001 legacy ["and",["or",["or",leaf,leaf]]]; typedAudiences[0..2] 40002..40004
// web.pages: p_home p_product p_cart p_checkout p_account p_minicart
// web.experiments: 60001 60002 60003 60005 60006; web.lists: vip, beta_testers
/** A valid global holdout (the format the API publishes, docs/holdouts.md). */
const holdout = (): Json => ({
  id: "h1",
  key: "holdout_production",
  status: "Running",
  variations: [
    { id: "h1_in", key: "holdout", featureEnabled: false, variables: [] },
    { id: "h1_rest", key: "everyone_else", featureEnabled: false, variables: [] },
  ],
  trafficAllocation: [{ entityId: "h1_in", endOfRange: 500 }],
  audienceIds: [],
  audienceConditions: [],
  includedFlags: [],
  excludedFlags: [],
});

const CASES: Case[] = [
  // ---- top level
  {
    name: "unsupported version",
    mutate: (d) => (d.version = "5"),
    expected: ["error $.version"],
    message: /unsupported datafile version "5"/,
  },
  {
    name: "version 3 loads with a warning",
    mutate: (d) => (d.version = "3"),
    expected: ["warning $.version"],
  },
  { name: "version as a number", mutate: (d) => (d.version = 4), expected: ["error $.version"] },
  {
    name: "missing revision",
    mutate: (d) => delete d.revision,
    expected: ["error $.revision"],
    message: /missing required field \(expected string\)/,
  },
  {
    name: "revision as a number",
    mutate: (d) => (d.revision = 7),
    expected: ["error $.revision"],
    message: /expected string, got number 7/,
  },
  {
    name: "anonymizeIP as a string",
    mutate: (d) => (d.anonymizeIP = "yes"),
    expected: ["error $.anonymizeIP"],
  },
  {
    name: "experiments not an array",
    mutate: (d) => (d.experiments = {}),
    expected: [
      "error $.experiments",
      "error $.events[0].experimentIds[0]",
      "error $.events[0].experimentIds[1]",
      "error $.events[0].experimentIds[2]",
      "error $.events[0].experimentIds[3]",
      "error $.events[1].experimentIds[0]",
      "error $.events[2].experimentIds[0]",
      "error $.events[3].experimentIds[0]",
      "error $.featureFlags[0].experimentIds[0]",
      "error $.web.experiments[0].id",
      "error $.web.experiments[1].id",
      "error $.web.experiments[2].id",
    ],
  },
  {
    name: "integration without key (the SDK throws)",
    mutate: (d) => d.integrations.push({ host: "x" }),
    expected: ["error $.integrations[0].key"],
  },
  {
    name: "unknown fields are fine",
    mutate: (d) => Object.assign(d, { cmab: {}, region: "EU" }),
    expected: [],
  },
  {
    name: "a holdout in the SDK's format (docs/holdouts.md)",
    mutate: (d) => Object.assign(d, { holdouts: [holdout()] }),
    expected: [],
  },
  {
    name: "a concluded holdout (one set to 0 %): the SDK's HoldoutStatus, no warning",
    mutate: (d) => Object.assign(d, { holdouts: [{ ...holdout(), status: "Concluded" }] }),
    expected: [],
  },
  {
    name: "a holdout with an experiment's status (not a HoldoutStatus)",
    mutate: (d) => Object.assign(d, { holdouts: [{ ...holdout(), status: "Paused" }] }),
    expected: ["warning $.holdouts[0].status"],
  },
  {
    name: "an experiment with a holdout's status",
    mutate: (d) => (d.experiments[0].status = "Concluded"),
    expected: ["warning $.experiments[0].status"],
  },
  {
    name: "a holdout without its required fields",
    mutate: (d) => Object.assign(d, { holdouts: [{ id: "h1" }] }),
    expected: [
      "error $.holdouts[0].audienceIds",
      "error $.holdouts[0].key",
      "error $.holdouts[0].status",
      "error $.holdouts[0].trafficAllocation",
      "error $.holdouts[0].variations",
    ],
  },
  {
    name: "holdout ids and keys are unique",
    mutate: (d) => Object.assign(d, { holdouts: [holdout(), holdout()] }),
    expected: ["error $.holdouts[1].id", "error $.holdouts[1].key"],
    message: /duplicate holdout id "h1"/,
  },
  {
    name: "a holdout variation id that an experiment has",
    mutate: (d) => {
      const h = holdout();
      h.variations[1].id = "61001";
      Object.assign(d, { holdouts: [h] });
    },
    expected: ["error $.holdouts[0].variations[1].id"],
    message: /already a variation of an experiment/,
  },
  {
    name: "a holdout allocation naming no variation of it",
    mutate: (d) => {
      const h = holdout();
      h.trafficAllocation[0].entityId = "61001";
      Object.assign(d, { holdouts: [h] });
    },
    expected: ["error $.holdouts[0].trafficAllocation[0].entityId"],
  },
  {
    name: "a holdout audience that does not exist",
    mutate: (d) => Object.assign(d, { holdouts: [{ ...holdout(), audienceIds: ["nope"] }] }),
    expected: ["error $.holdouts[0].audienceIds[0]"],
  },
  {
    name: "includedFlags must be strings",
    mutate: (d) => Object.assign(d, { holdouts: [{ ...holdout(), includedFlags: [1] }] }),
    expected: ["error $.holdouts[0].includedFlags[0]"],
  },
  {
    name: "rule-scoped local holdouts are refused",
    mutate: (d) =>
      Object.assign(d, { localHoldouts: [{ ...holdout(), includedRules: ["60001"] }] }),
    expected: ["error $.localHoldouts"],
    message: /not supported/,
  },
  {
    name: "an empty localHoldouts is fine",
    mutate: (d) => Object.assign(d, { localHoldouts: [] }),
    expected: [],
  },
  {
    name: "featureFlags and rollouts may be absent",
    mutate: (d) => {
      delete d.featureFlags;
      delete d.rollouts;
    },
    expected: [],
  },

  // ---- experiments
  {
    name: "rule id reusing an experiment id",
    mutate: (d) => (d.rollouts[0].experiments[0].id = "60001"),
    expected: ["error $.rollouts[0].experiments[0].id"],
    message: /duplicate experiment id "60001" \(first at \$\.experiments\[0\]\.id\)/,
  },
  {
    name: "duplicate experiment key across a group",
    mutate: (d) => (d.groups[0].experiments[0].key = "product_page_cta"),
    expected: ["error $.groups[0].experiments[0].key"],
  },
  {
    name: "rule key clashing with an experiment key",
    mutate: (d) => (d.rollouts[0].experiments[0].key = "homepage_hero"),
    expected: ["warning $.rollouts[0].experiments[0].key"],
  },
  {
    name: "duplicate variation id",
    mutate: (d) => (d.experiments[0].variations[1].id = "61001"),
    expected: [
      "error $.experiments[0].variations[1].id",
      "error $.experiments[0].trafficAllocation[1].entityId",
      "error $.web.experiments[0].variations[1].id",
    ],
  },
  {
    name: "duplicate variation key",
    mutate: (d) => (d.experiments[0].variations[1].key = "control"),
    expected: [
      "error $.experiments[0].variations[1].key",
      'warning $.experiments[0].forcedVariations["qa-tester-1"]',
    ],
  },
  {
    name: "endOfRange above 10000",
    mutate: (d) => (d.experiments[0].trafficAllocation[1].endOfRange = 10001),
    expected: ["error $.experiments[0].trafficAllocation[1].endOfRange"],
  },
  {
    name: "endOfRange negative",
    mutate: (d) => (d.experiments[0].trafficAllocation[0].endOfRange = -1),
    expected: ["error $.experiments[0].trafficAllocation[0].endOfRange"],
  },
  {
    name: "endOfRange not an integer",
    mutate: (d) => (d.experiments[0].trafficAllocation[0].endOfRange = 4999.5),
    expected: ["error $.experiments[0].trafficAllocation[0].endOfRange"],
  },
  {
    name: "endOfRange decreasing (entry never chosen)",
    mutate: (d) => (d.experiments[1].trafficAllocation[2].endOfRange = 4000),
    expected: ["warning $.experiments[1].trafficAllocation[2].endOfRange"],
  },
  {
    name: "entityId not a variation",
    mutate: (d) => (d.experiments[0].trafficAllocation[1].entityId = "65002"),
    expected: ["error $.experiments[0].trafficAllocation[1].entityId"],
  },
  {
    name: "empty entityId is a hole",
    mutate: (d) => (d.experiments[0].trafficAllocation[0].entityId = ""),
    expected: [],
  },
  {
    name: "group allocation to a non-member",
    mutate: (d) => (d.groups[0].trafficAllocation[0].entityId = "60001"),
    expected: ["error $.groups[0].trafficAllocation[0].entityId"],
  },
  {
    name: "unknown group policy",
    mutate: (d) => (d.groups[0].policy = "exclusive"),
    expected: ["warning $.groups[0].policy"],
  },
  {
    name: "unknown status",
    mutate: (d) => (d.experiments[0].status = "Started"),
    expected: ["warning $.experiments[0].status"],
  },
  {
    name: "dangling audienceIds",
    mutate: (d) => d.experiments[1].audienceIds.push("49999"),
    expected: ["error $.experiments[1].audienceIds[2]"],
  },
  {
    name: "dangling audience in audienceConditions",
    mutate: (d) => (d.experiments[2].audienceConditions = ["and", "40004", ["not", "49999"]]),
    expected: ["error $.experiments[2].audienceConditions[2][1]"],
  },
  {
    name: "operator in the wrong place is an unknown audience",
    mutate: (d) => (d.experiments[1].audienceConditions = ["40001", "or", "40002"]),
    expected: ["error $.experiments[1].audienceConditions[1]"],
  },
  {
    name: "audienceConditions leaf not a string",
    mutate: (d) => (d.experiments[1].audienceConditions = ["or", 40001]),
    expected: ["error $.experiments[1].audienceConditions[1]"],
  },
  {
    name: "audienceConditions as a bare id",
    mutate: (d) => (d.experiments[1].audienceConditions = "40001"),
    expected: [],
  },
  {
    name: '"not" with two operands',
    mutate: (d) => (d.experiments[2].audienceConditions = ["not", "40003", "40004"]),
    expected: ["warning $.experiments[2].audienceConditions"],
  },
  {
    name: "forced variation to an unknown key",
    mutate: (d) => (d.experiments[0].forcedVariations["qa 2"] = "nope"),
    expected: ['warning $.experiments[0].forcedVariations["qa 2"]'],
  },
  {
    name: "variation without key",
    mutate: (d) => delete d.experiments[0].variations[0].key,
    expected: ["error $.experiments[0].variations[0].key"],
  },
  {
    name: "missing variations does not cascade",
    mutate: (d) => delete d.experiments[0].variations,
    expected: ["error $.experiments[0].variations"],
  },

  // ---- audiences
  {
    name: "legacy conditions not JSON",
    mutate: (d) => (d.audiences[0].conditions = '["and", ['),
    expected: ["error $.audiences[0].conditions"],
    message: /not valid JSON/,
  },
  {
    name: "legacy conditions as a tree (the SDK crashes)",
    mutate: (d) => (d.audiences[0].conditions = ["or"]),
    expected: ["error $.audiences[0].conditions"],
  },
  {
    name: "unknown match type inside legacy conditions",
    mutate: (d) =>
      (d.audiences[0].conditions = JSON.stringify([
        "and",
        ["or", ["or", leaf("device.type", "regex", "mob.*")]],
      ])),
    expected: ["warning $.audiences[0].conditions[1][1][1].match"],
  },
  {
    name: "unknown condition type",
    mutate: (d) => (d.typedAudiences[0].conditions[1][1].type = "cookie"),
    expected: ["warning $.typedAudiences[0].conditions[1][1].type"],
  },
  {
    name: "condition array starting with a leaf (the SDK ignores that leaf)",
    mutate: (d) =>
      (d.typedAudiences[0].conditions[1] = [
        d.typedAudiences[0].conditions[1][1],
        d.typedAudiences[0].conditions[1][1],
      ]),
    expected: ["warning $.typedAudiences[0].conditions[1]"],
  },
  {
    name: "audienceConditions starting with a nested array",
    mutate: (d) =>
      (d.experiments[0].audienceConditions = [
        ["or", d.experiments[0].audienceIds[0] ?? d.typedAudiences[0].id],
      ]),
    expected: ["warning $.experiments[0].audienceConditions"],
  },
  {
    name: "condition without type",
    mutate: (d) => delete d.typedAudiences[0].conditions[1][1].type,
    expected: ["error $.typedAudiences[0].conditions[1][1].type"],
  },
  {
    name: "condition without name",
    mutate: (d) => delete d.typedAudiences[0].conditions[1][1].name,
    expected: ["error $.typedAudiences[0].conditions[1][1].name"],
  },
  {
    name: "match null",
    mutate: (d) => (d.typedAudiences[0].conditions[1][1].match = null),
    expected: ["error $.typedAudiences[0].conditions[1][1].match"],
  },
  {
    name: "condition leaf not an object",
    mutate: (d) => d.typedAudiences[0].conditions[1].push("DE"),
    expected: ["error $.typedAudiences[0].conditions[1][4]"],
  },
  {
    name: "typed conditions missing",
    mutate: (d) => delete d.typedAudiences[0].conditions,
    expected: ["error $.typedAudiences[0].conditions"],
  },
  {
    name: "numeric match with a string value",
    mutate: (d) => (d.typedAudiences[2].conditions[1].value = "500"),
    expected: ["warning $.typedAudiences[2].conditions[1].value"],
  },
  {
    name: "exact match with an object value",
    mutate: (d) => (d.typedAudiences[1].conditions[2].value = { plan: "premium" }),
    expected: ["warning $.typedAudiences[1].conditions[2].value"],
  },
  {
    name: "semver value with spaces",
    mutate: (d) => (d.typedAudiences[2].conditions[2][1].value = "2. 1"),
    expected: ["warning $.typedAudiences[2].conditions[2][1].value"],
  },
  {
    name: "in_list naming no list",
    mutate: (d) => (d.typedAudiences[1].conditions[1].value = "gold"),
    expected: ["error $.typedAudiences[1].conditions[1].value"],
  },
  {
    name: "qualified on a custom_attribute",
    mutate: (d) => (d.typedAudiences[1].conditions[2].match = "qualified"),
    expected: ["warning $.typedAudiences[1].conditions[2].match"],
  },
  {
    name: "exists needs no value",
    mutate: (d) => (d.typedAudiences[1].conditions[2] = leaf("plan", "exists")),
    expected: [],
  },
  {
    name: "duplicate audience id",
    mutate: (d) => (d.audiences[1].id = "40001"),
    expected: ["error $.audiences[1].id"],
  },
  {
    name: "condition tree nested too deep",
    mutate: (d) => {
      let tree: unknown[] = ["or", leaf("plan", "exact", "x")];
      for (let i = 0; i < MAX_CONDITION_DEPTH + 5; i++) tree = ["or", tree];
      d.typedAudiences[0].conditions = tree;
    },
    expected: [
      `error ${formatPath(["typedAudiences", 0, "conditions", ...Array<number>(MAX_CONDITION_DEPTH).fill(1)])}`,
    ],
  },

  // ---- events
  {
    name: "duplicate event key",
    mutate: (d) => (d.events[1].key = "purchase"),
    expected: ["error $.events[1].key"],
  },
  {
    name: "event naming an unknown experiment",
    mutate: (d) => d.events[4].experimentIds.push("60999"),
    expected: ["error $.events[4].experimentIds[0]"],
  },
  {
    name: "event may name a rollout rule",
    mutate: (d) => d.events[4].experimentIds.push("91001"),
    expected: [],
  },

  // ---- feature flags
  {
    name: "boolean default not true/false",
    mutate: (d) => (d.featureFlags[0].variables[0].defaultValue = "yes"),
    expected: ["error $.featureFlags[0].variables[0].defaultValue"],
  },
  {
    name: "integer default the SDK cannot read",
    mutate: (d) => (d.featureFlags[0].variables[1].defaultValue = "fifty"),
    expected: ["error $.featureFlags[0].variables[1].defaultValue"],
  },
  {
    name: "integer default read lossily",
    mutate: (d) => (d.featureFlags[0].variables[1].defaultValue = "50.5"),
    expected: ["warning $.featureFlags[0].variables[1].defaultValue"],
    message: /SDKs read it as 50/,
  },
  {
    name: "double default not a number",
    mutate: (d) => (d.featureFlags[0].variables[2].defaultValue = "ten percent"),
    expected: ["error $.featureFlags[0].variables[2].defaultValue"],
  },
  {
    name: "json (string + subType) default invalid",
    mutate: (d) => (d.featureFlags[0].variables[4].defaultValue = "{background:"),
    expected: ["error $.featureFlags[0].variables[4].defaultValue"],
  },
  {
    name: "json type default invalid",
    mutate: (d) =>
      Object.assign(d.featureFlags[0].variables[4], {
        type: "json",
        subType: undefined,
        defaultValue: "[1,",
      }),
    expected: ["error $.featureFlags[0].variables[4].defaultValue"],
  },
  {
    name: "unknown variable type",
    mutate: (d) => (d.featureFlags[0].variables[0].type = "bool"),
    expected: ["error $.featureFlags[0].variables[0].type"],
  },
  {
    name: "variation value wrong for its type",
    mutate: (d) => (d.experiments[3].variations[1].variables[1].value = "35 dollars"),
    expected: ["warning $.experiments[3].variations[1].variables[1].value"],
  },
  {
    name: "rule variation value invalid",
    mutate: (d) => (d.rollouts[0].experiments[0].variations[0].variables[0].value = "on"),
    expected: ["error $.rollouts[0].experiments[0].variations[0].variables[0].value"],
  },
  {
    name: "variation using an unknown variable",
    mutate: (d) => (d.experiments[3].variations[0].variables[0].id = "81999"),
    expected: ["error $.experiments[3].variations[0].variables[0].id"],
  },
  {
    name: "duplicate variable key",
    mutate: (d) => (d.featureFlags[0].variables[1].key = "show_banner"),
    expected: ["error $.featureFlags[0].variables[1].key"],
  },
  {
    name: "flag naming an unknown experiment",
    mutate: (d) => d.featureFlags[0].experimentIds.push("60998"),
    expected: ["error $.featureFlags[0].experimentIds[1]"],
  },
  {
    name: "flag naming an unknown rollout",
    mutate: (d) => (d.featureFlags[0].rolloutId = "90999"),
    expected: ["error $.featureFlags[0].rolloutId"],
  },
  { name: "flag without rollout", mutate: (d) => (d.featureFlags[0].rolloutId = ""), expected: [] },
  {
    name: "duplicate flag key",
    mutate: (d) =>
      d.featureFlags.push({ ...d.featureFlags[0], id: "80002", experimentIds: [], variables: [] }),
    expected: ["error $.featureFlags[1].key"],
  },

  // ---- web: pages and lists
  {
    name: "invalid page regex",
    mutate: (d) => (d.web.pages[1].conditions[2].value = "^/p/(\\d+$"),
    expected: ["error $.web.pages[1].conditions[2].value"],
    message: /invalid regular expression/,
  },
  {
    name: "unknown URL match type",
    mutate: (d) => (d.web.pages[0].conditions[1].match = "glob"),
    expected: ["error $.web.pages[0].conditions[1].match"],
  },
  {
    name: "URL condition without value",
    mutate: (d) => delete d.web.pages[0].conditions[1].value,
    expected: ["error $.web.pages[0].conditions[1].value"],
  },
  {
    name: "empty substring matches everything",
    mutate: (d) => (d.web.pages[3].conditions[1].value = ""),
    expected: ["warning $.web.pages[3].conditions[1].value"],
  },
  {
    name: "unknown activation",
    mutate: (d) => (d.web.pages[0].activation = "onload"),
    expected: ["error $.web.pages[0].activation"],
  },
  {
    name: "duplicate page key",
    mutate: (d) => (d.web.pages[1].key = "home"),
    expected: ["error $.web.pages[1].key"],
  },
  {
    name: "page selector unbalanced",
    mutate: (d) => (d.web.pages[5].selector = "#mini-cart [data-x"),
    expected: ["error $.web.pages[5].selector"],
  },
  {
    name: "duplicate list key",
    mutate: (d) => (d.web.lists[1].key = "vip"),
    expected: ["error $.web.lists[1].key"],
  },
  {
    name: "list values not strings",
    mutate: (d) => (d.web.lists[0].values = ["a", 2]),
    expected: ["error $.web.lists[0].values[1]"],
  },
  {
    name: "integrations not booleans",
    mutate: (d) => (d.web.integrations.segment = "off"),
    expected: ["error $.web.integrations.segment"],
  },
  {
    name: "no web section (plain Optimizely datafile; in_list then names no list)",
    mutate: (d) => delete d.web,
    expected: ["error $.typedAudiences[1].conditions[1].value"],
  },
  {
    name: "empty web section",
    mutate: (d) => (d.web = { lists: [{ id: "l", key: "vip", values: [] }] }),
    expected: [],
  },

  // ---- web: experiments
  {
    name: "web experiment for an unknown experiment",
    mutate: (d) => (d.web.experiments[0].id = "60999"),
    expected: ["error $.web.experiments[0].id"],
  },
  {
    name: "web experiment for a rollout rule",
    mutate: (d) => (d.web.experiments[0].id = "91001"),
    expected: ["error $.web.experiments[0].id"],
  },
  {
    name: "duplicate web experiment",
    mutate: (d) => d.web.experiments.push({ ...d.web.experiments[0] }),
    expected: ["error $.web.experiments[5].id"],
  },
  {
    name: "unknown web experiment type",
    mutate: (d) => (d.web.experiments[0].type = "bandit"),
    expected: ["error $.web.experiments[0].type"],
  },
  {
    name: "unknown page in pageIds",
    mutate: (d) => d.web.experiments[0].pageIds.push("p_nowhere"),
    expected: ["error $.web.experiments[0].pageIds[1]"],
  },
  {
    name: "no pages",
    mutate: (d) => (d.web.experiments[2].pageIds = []),
    expected: ["warning $.web.experiments[2].pageIds"],
  },
  {
    name: "metric on an unknown event",
    mutate: (d) => (d.web.experiments[0].metrics[0].eventId = "59999"),
    expected: ["error $.web.experiments[0].metrics[0].eventId"],
  },
  {
    name: "sum without field",
    mutate: (d) => delete d.web.experiments[0].metrics[1].field,
    expected: ["error $.web.experiments[0].metrics[1].field"],
  },
  {
    name: "field without sum",
    mutate: (d) => (d.web.experiments[0].metrics[0].field = "value"),
    expected: ["warning $.web.experiments[0].metrics[0].field"],
  },
  {
    name: "unknown aggregator",
    mutate: (d) => (d.web.experiments[0].metrics[0].aggregator = "avg"),
    expected: ["error $.web.experiments[0].metrics[0].aggregator"],
  },
  {
    name: "capping of an unknown type",
    mutate: (d) => (d.web.experiments[0].metrics[1].capping = { type: "trim", value: 100 }),
    expected: ["error $.web.experiments[0].metrics[1].capping.type"],
  },
  {
    name: "capping percentile of 99 (not a fraction)",
    mutate: (d) => (d.web.experiments[0].metrics[1].capping = { type: "percentile", value: 99 }),
    expected: ["error $.web.experiments[0].metrics[1].capping.value"],
    message: /fraction below 1/,
  },
  {
    name: "capping without a positive value",
    mutate: (d) => (d.web.experiments[0].metrics[2].capping = { type: "absolute", value: -5 }),
    expected: ["error $.web.experiments[0].metrics[2].capping.value"],
  },
  {
    name: "capping a unique metric",
    mutate: (d) => (d.web.experiments[0].metrics[0].capping = { type: "absolute", value: 1 }),
    expected: ["warning $.web.experiments[0].metrics[0].capping"],
  },
  {
    name: "web variation of another experiment",
    mutate: (d) => (d.web.experiments[0].variations[1].id = "62002"),
    expected: ["error $.web.experiments[0].variations[1].id"],
  },
  {
    name: "unknown section variation",
    mutate: (d) => (d.web.experiments[1].variations[3].sectionVariationIds[1] = "sv_image_c"),
    expected: ["error $.web.experiments[1].variations[3].sectionVariationIds[1]"],
  },
  {
    name: "multivariate without sections",
    mutate: (d) => delete d.web.experiments[1].sections,
    expected: [
      "warning $.web.experiments[1].sections",
      "error $.web.experiments[1].variations[0].sectionVariationIds[0]",
      "error $.web.experiments[1].variations[0].sectionVariationIds[1]",
      "error $.web.experiments[1].variations[1].sectionVariationIds[0]",
      "error $.web.experiments[1].variations[1].sectionVariationIds[1]",
      "error $.web.experiments[1].variations[2].sectionVariationIds[0]",
      "error $.web.experiments[1].variations[2].sectionVariationIds[1]",
      "error $.web.experiments[1].variations[3].sectionVariationIds[0]",
      "error $.web.experiments[1].variations[3].sectionVariationIds[1]",
    ],
  },

  // ---- web: changes
  {
    name: "unknown change type",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[2].type = "replace_text"),
    expected: ["error $.web.experiments[0].variations[1].changes[2].type"],
    message: /unknown type "replace_text"; expected one of "attribute"/,
  },
  {
    name: "change without type",
    mutate: (d) => delete d.web.experiments[0].variations[1].changes[2].type,
    expected: ["error $.web.experiments[0].variations[1].changes[2].type"],
  },
  {
    name: "change missing its selector",
    mutate: (d) => delete d.web.experiments[0].variations[1].changes[1].selector,
    expected: ["error $.web.experiments[0].variations[1].changes[1].selector"],
  },
  {
    name: "empty selector",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].selector = "  "),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "selector closing a CSS rule",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].selector = "a} body {display:none"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "selector with NUL",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].selector = "#a\u0000b"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "selector too long",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].selector = `.${"a".repeat(1000)}`),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "selector ending in a combinator",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].selector = "#cart >"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "selector with an empty list item",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].selector = "#a,,#b"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
  },
  {
    name: "complex selectors the edge runs",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].selector =
        "main > .grid:not(.x) li:nth-child(2n+1), a[href^=\"/p/\"][data-x='{}'] > span"),
    expected: [],
  },

  // ---- web: selectors the edge cannot run (docs/changes.md "Selectors")
  {
    name: "a selector the edge cannot run, on an immediate page",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].selector =
        "main > .grid:not(.x) li:nth-child(2n+1), a[href^=\"/p/\"][data-x='{}'] ~ span"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
    message:
      /^selector "main > .*\.\.\.: the "~" combinator \(subsequent sibling\) cannot run at the edge; on immediate page "product" the edge would skip this change — use a selector the edge supports, or let the browser apply it: activation url_changed \(or manual, when the site calls activate\)$/,
  },
  {
    name: "an insert_html selector the edge cannot run, on an immediate page",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[1].selector = "h1 + p"),
    expected: ["error $.web.experiments[0].variations[1].changes[1].selector"],
    message: /^selector "h1 \+ p": the "\+" combinator \(next sibling\) cannot run at the edge; on/,
  },
  {
    name: "a shared change the edge cannot run, in a section",
    mutate: (d) =>
      d.web.experiments[1].sections[0].variations[1].changes.push({
        type: "attribute",
        selector: "h1::first-line",
        attributes: { text: "x" },
      }),
    expected: ["error $.web.experiments[1].sections[0].variations[1].changes[1].selector"],
    message: /: ::first-line \(a pseudo-element\) cannot run at the edge; on immediate page "home"/,
  },
  {
    name: "the same selector on the page once it is manual",
    mutate: (d) => {
      d.web.pages[1].activation = "manual";
      d.web.experiments[0].variations[1].changes[0].selector = "h1 + p";
    },
    expected: [],
  },
  {
    name: "selectors the edge cannot run, on pages the browser handles (manual, dom_changed)",
    mutate: (d) => {
      d.web.experiments[4].variations[1].changes[0].selector = "#cart-summary ~ .upsell";
      d.web.experiments[4].variations[1].changes[3].selector = ".legacy-promo:last-child";
    },
    expected: [],
  },
  {
    name: "no pageId: one immediate page among the experiment's pages is enough",
    mutate: (d) =>
      d.web.experiments[3].sharedChanges.push({
        type: "attribute",
        selector: "li:only-child",
        attributes: { hide: true },
      }),
    expected: ["error $.web.experiments[3].sharedChanges[1].selector"],
    message: /on immediate page "product"/,
  },
  {
    // The edge applies it on a URL that matches both pages (src/edge/page-plan.ts).
    name: "a pageId on the manual page of an experiment that also has an immediate page",
    mutate: (d) =>
      d.web.experiments[3].sharedChanges.push({
        type: "attribute",
        selector: "li:only-child",
        attributes: { hide: true },
        pageId: "p_cart",
      }),
    expected: ["error $.web.experiments[3].sharedChanges[1].selector"],
    message: /on immediate page "product"/,
  },
  {
    name: "a pageId on the immediate page of that experiment",
    mutate: (d) => (d.web.experiments[3].variations[1].changes[0].selector = ".price:empty"),
    expected: ["error $.web.experiments[3].variations[1].changes[0].selector"],
  },
  {
    name: "a pageId that is not the experiment's: the warning, and the experiment's immediate page",
    mutate: (d) => {
      d.web.experiments[0].variations[1].changes[0].selector = "a:hover";
      d.web.experiments[0].variations[1].changes[0].pageId = "p_home";
    },
    expected: [
      "warning $.web.experiments[0].variations[1].changes[0].pageId",
      "error $.web.experiments[0].variations[1].changes[0].selector",
    ],
  },
  {
    name: "an invalid selector is reported once, as invalid",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].selector = "a[href"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].selector"],
    message: /^invalid selector "a\[href": /,
  },

  // ---- web: move changes
  {
    name: "a move on an immediate page",
    mutate: (d) =>
      d.web.experiments[0].variations[1].changes.push({
        type: "move",
        selector: ".reviews",
        target: "#add-to-cart",
        position: "before",
        html: '<section class="reviews">4.8 ★</section>',
        pageId: "p_product",
      }),
    expected: [],
  },
  {
    name: "a move target the edge cannot run, on an immediate page",
    mutate: (d) =>
      d.web.experiments[0].variations[1].changes.push({
        type: "move",
        selector: ".reviews",
        target: "h1 ~ p",
        position: "after",
        html: "<p>x</p>",
      }),
    expected: ["error $.web.experiments[0].variations[1].changes[3].target"],
    message:
      /^target "h1 ~ p": the "~" combinator \(subsequent sibling\) cannot run at the edge; on/,
  },
  {
    name: "a move source the edge cannot run, on an immediate page",
    mutate: (d) =>
      d.web.experiments[0].variations[1].changes.push({
        type: "move",
        selector: "li:nth-last-child(2)",
        target: "#add-to-cart",
        position: "after",
        html: "<li>x</li>",
      }),
    expected: ["error $.web.experiments[0].variations[1].changes[3].selector"],
    message: /:nth-last-child\(\) cannot run at the edge/,
  },
  {
    name: "a move the edge cannot run, on a manual page",
    mutate: (d) => (d.web.experiments[4].variations[1].changes[6].target = "#a + #checkout-button"),
    expected: [],
  },
  {
    name: "a move cannot replace",
    mutate: (d) => (d.web.experiments[4].variations[1].changes[6].position = "replace"),
    expected: ["error $.web.experiments[4].variations[1].changes[6].position"],
    message:
      /^a move cannot "replace" its target \(expected one of "before", "after", "prepend", "append"\); to replace an element, use an insert_html change/,
  },
  {
    name: "a move with an unknown position",
    mutate: (d) => (d.web.experiments[4].variations[1].changes[6].position = "inside"),
    expected: ["error $.web.experiments[4].variations[1].changes[6].position"],
    message: /expected one of "before", "after", "prepend", "append", got "inside"/,
  },
  {
    name: "a move without its target, position and html",
    mutate: (d) => {
      const move = d.web.experiments[4].variations[1].changes[6];
      delete move.target;
      delete move.position;
      delete move.html;
    },
    expected: [
      "error $.web.experiments[4].variations[1].changes[6].html",
      "error $.web.experiments[4].variations[1].changes[6].position",
      "error $.web.experiments[4].variations[1].changes[6].target",
    ],
  },
  {
    name: "a move with an invalid target",
    mutate: (d) => (d.web.experiments[4].variations[1].changes[6].target = "#a { color: red }"),
    expected: ["error $.web.experiments[4].variations[1].changes[6].target"],
    message: /^invalid selector "#a \{ color: red \}"/,
  },
  {
    name: "a move onto itself",
    mutate: (d) => {
      const move = d.web.experiments[4].variations[1].changes[6];
      move.target = move.selector;
    },
    expected: ["warning $.web.experiments[4].variations[1].changes[6].target"],
    message: /the element is removed and nothing is inserted/,
  },
  {
    name: "set an event handler",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].attributes.set.onclick = "track()"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].attributes.set.onclick"],
    message: /custom_code/,
  },
  {
    name: "set an upper-case event handler",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].attributes.set.ONMouseOver = "x()"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].attributes.set.ONMouseOver"],
  },
  {
    name: "unset an event handler is fine",
    mutate: (d) => d.web.experiments[0].variations[1].changes[0].attributes.unset.push("onclick"),
    expected: [],
  },
  {
    name: "invalid attribute name in set",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].attributes.set['x"y'] = "1"),
    expected: ['error $.web.experiments[0].variations[1].changes[0].attributes.set["x\\"y"]'],
  },
  {
    name: "invalid attribute name in unset",
    mutate: (d) => d.web.experiments[0].variations[1].changes[0].attributes.unset.push("a b"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].attributes.unset[1]"],
  },
  {
    name: "javascript: href",
    mutate: (d) =>
      (d.web.experiments[4].variations[1].changes[5].attributes.href = " JavaScript:alert(1)"),
    expected: ["error $.web.experiments[4].variations[1].changes[5].attributes.href"],
  },
  {
    name: "javascript: URL through set",
    mutate: (d) =>
      (d.web.experiments[0].variations[1].changes[0].attributes.set.formaction =
        "java\tscript:x()"),
    expected: ["error $.web.experiments[0].variations[1].changes[0].attributes.set.formaction"],
  },
  {
    name: "unknown attribute change key",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].attributes.txt = "Buy"),
    expected: ["warning $.web.experiments[0].variations[1].changes[0].attributes.txt"],
  },
  {
    name: "attribute change that sets nothing",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].attributes = {}),
    expected: ["warning $.web.experiments[0].variations[1].changes[0].attributes"],
  },
  {
    name: "text and html together",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[0].attributes.html = "<b>Add</b>"),
    expected: ["warning $.web.experiments[0].variations[1].changes[0].attributes.text"],
  },
  {
    name: "hide as a string",
    mutate: (d) => (d.web.experiments[4].variations[1].changes[3].attributes.hide = "true"),
    expected: ["error $.web.experiments[4].variations[1].changes[3].attributes.hide"],
  },
  {
    name: "unknown insert position",
    mutate: (d) => (d.web.experiments[0].variations[1].changes[1].position = "inside"),
    expected: ["error $.web.experiments[0].variations[1].changes[1].position"],
  },
  {
    name: "custom_css without value",
    mutate: (d) => delete d.web.experiments[0].variations[1].changes[2].value,
    expected: ["error $.web.experiments[0].variations[1].changes[2].value"],
  },
  {
    name: "redirect to nothing",
    mutate: (d) => (d.web.experiments[2].variations[1].changes[0].destination = ""),
    expected: ["error $.web.experiments[2].variations[1].changes[0].destination"],
  },
  {
    name: "redirect to a javascript: URL",
    mutate: (d) =>
      (d.web.experiments[2].variations[1].changes[0].destination = "javascript:alert(1)"),
    expected: ["error $.web.experiments[2].variations[1].changes[0].destination"],
  },
  {
    name: "redirect to a bare relative path",
    mutate: (d) => (d.web.experiments[2].variations[1].changes[0].destination = "checkout-new"),
    expected: ["error $.web.experiments[2].variations[1].changes[0].destination"],
  },
  {
    name: "redirect to a protocol-relative URL",
    mutate: (d) =>
      (d.web.experiments[2].variations[1].changes[0].destination =
        "//shop.example.com/checkout-new?x=1"),
    expected: [],
  },
  {
    name: "unknown redirect mode",
    mutate: (d) => (d.web.experiments[2].variations[1].changes[0].mode = "proxy"),
    expected: ["error $.web.experiments[2].variations[1].changes[0].mode"],
  },
  {
    name: "change on an unknown page",
    mutate: (d) => (d.web.experiments[3].variations[1].changes[0].pageId = "p_nowhere"),
    expected: ["error $.web.experiments[3].variations[1].changes[0].pageId"],
  },
  {
    name: "change on a page the experiment does not run on",
    mutate: (d) => (d.web.experiments[3].variations[1].changes[0].pageId = "p_home"),
    expected: ["warning $.web.experiments[3].variations[1].changes[0].pageId"],
  },
  {
    name: "bad change in sharedChanges",
    mutate: (d) =>
      d.web.experiments[3].sharedChanges.push({
        type: "attribute",
        selector: "#x",
        attributes: { set: { onload: "x()" } },
      }),
    expected: ["error $.web.experiments[3].sharedChanges[1].attributes.set.onload"],
  },
  {
    name: "bad change in a section",
    mutate: (d) => (d.web.experiments[1].sections[0].variations[1].changes[0].selector = "h1("),
    expected: ["error $.web.experiments[1].sections[0].variations[1].changes[0].selector"],
  },

  // ---- web: events
  {
    name: "web event for an unknown event",
    mutate: (d) => (d.web.events[0].id = "59999"),
    expected: ["error $.web.events[0].id"],
  },
  {
    name: "duplicate web event",
    mutate: (d) => d.web.events.push({ id: "50001", type: "custom" }),
    expected: ["error $.web.events[5].id"],
  },
  {
    name: "click without selector",
    mutate: (d) => delete d.web.events[1].selector,
    expected: ["error $.web.events[1].selector"],
  },
  {
    name: "pageview without page",
    mutate: (d) => delete d.web.events[2].pageId,
    expected: ["error $.web.events[2].pageId"],
  },
  {
    name: "click on an unknown page",
    mutate: (d) => (d.web.events[3].pageId = "p_nowhere"),
    expected: ["error $.web.events[3].pageId"],
  },
  {
    name: "click with a broken selector",
    mutate: (d) => (d.web.events[3].selector = 'button[type="submit'),
    expected: ["error $.web.events[3].selector"],
  },
  {
    name: "unknown web event type",
    mutate: (d) => (d.web.events[0].type = "scroll"),
    expected: ["error $.web.events[0].type"],
  },
];

describe("parseDatafile: the valid fixture", () => {
  it("has no problems and returns the datafile, extra fields included", () => {
    const result = parseDatafile(VALID_TEXT);
    expect(formatProblems(result.problems)).toBe("");
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.datafile).toEqual(valid()); // nothing added or dropped: the fixture is complete
    expect((result.datafile as unknown as Json).region).toBe("US");
    expect(typeof result.datafile.audiences[0]!.conditions).toBe("string"); // as the SDKs expect
  });

  it("accepts an already-parsed value without changing it", () => {
    const input = valid();
    const before = JSON.stringify(input);
    const result = parseDatafile(input);
    expect(result.ok).toBe(true);
    expect(JSON.stringify(input)).toBe(before);
  });

  it("is loaded by the official Optimizely SDK, as is and after a round trip through the parser", async () => {
    const parsed = parseDatafile(VALID_TEXT);
    if (!parsed.ok) return expect.fail(formatProblems(parsed.problems));
    for (const datafile of [VALID_TEXT, JSON.stringify(parsed.datafile)]) {
      const client = createInstance({
        projectConfigManager: createStaticProjectConfigManager({ datafile }),
      });
      try {
        await expect(client.onReady({ timeout: 5000 })).resolves.toBeUndefined();
        expect(client.getVariation("product_page_cta", "qa-tester-1")).toBe("big_green_button");
        expect(client.getVariation("checkout_redesign_split", "anyone")).toBeNull(); // paused
        const user = client.createUserContext("visitor-1", {
          "geo.country": "DE",
          "visitor.new": false,
        });
        expect(user?.decide("free_shipping_banner").flagKey).toBe("free_shipping_banner");
      } finally {
        client.close();
      }
    }
  });
});

describe("parseDatafile: each problem at its path", () => {
  it.each(CASES)("$name", ({ mutate, expected, message }) => {
    const datafile = valid();
    mutate(datafile);
    const result = parseDatafile(JSON.stringify(datafile));
    expect(summary(result.problems), formatProblems(result.problems)).toEqual([...expected].sort());
    expect(result.ok).toBe(!expected.some((e) => e.startsWith("error")));
    if (message) {
      const first = result.problems.find((p) => `${p.severity} ${p.path}` === expected[0]);
      expect(first?.message).toMatch(message);
    }
    for (const p of result.problems) expect(p.message.length, p.path).toBeGreaterThan(10);
  });
});

describe("parseDatafile: edgeSelectors option", () => {
  const withSiblingSelector = () => {
    const d = valid();
    d.web.experiments[0].variations[1].changes[0].selector = "h1 + p";
    return d;
  };
  const path = "$.web.experiments[0].variations[1].changes[0].selector";

  it("is an error by default (publish, import, validate)", () => {
    const result = parseDatafile(withSiblingSelector());
    expect(result.ok).toBe(false);
    expect(summary(result.problems)).toEqual([`error ${path}`]);
  });

  it("is a warning with edgeSelectors: warning (the edge loading a published datafile)", () => {
    const result = parseDatafile(withSiblingSelector(), { edgeSelectors: "warning" });
    expect(result.ok).toBe(true);
    expect(summary(result.problems)).toEqual([`warning ${path}`]);
    expect(result.problems[0]!.message).toMatch(/^selector "h1 \+ p": the "\+" combinator/);
  });

  it("is not checked with edgeSelectors: off (the edge, which asks HTMLRewriter itself)", () => {
    const result = parseDatafile(withSiblingSelector(), { edgeSelectors: "off" });
    expect(result.ok).toBe(true);
    expect(result.problems).toEqual([]);
  });

  it("leaves every other error an error", () => {
    const d = withSiblingSelector();
    d.web.experiments[0].variations[1].changes[1].selector = "a[b";
    const result = parseDatafile(d, { edgeSelectors: "warning" });
    expect(result.ok).toBe(false);
    expect(summary(result.problems)).toEqual([
      `error $.web.experiments[0].variations[1].changes[1].selector`,
      `warning ${path}`,
    ]);
  });
});

describe("parseDatafile: agrees with the zod schemas it is compiled from", () => {
  it.each(CASES)("$name", ({ mutate }) => {
    const datafile = valid();
    mutate(datafile);
    const ours = parseDatafile(datafile);
    const zod = datafileSchema.safeParse(datafile);
    const errorPaths = new Set(
      ours.problems.filter((p) => p.severity === "error").map((p) => p.path),
    );
    if (!zod.success) {
      // every zod issue is reported by us at the same path
      for (const issue of zod.error.issues) {
        expect(errorPaths, issue.message).toContain(
          formatPath(issue.path as Array<string | number>),
        );
      }
      expect(ours.ok).toBe(false);
    } else if (ours.ok) {
      // defaults are filled exactly as zod fills them
      expect(ours.datafile).toEqual(zod.data);
    }
  });
});

describe("parseDatafile: every field of the zod schemas, broken one at a time", () => {
  type Seg = string | number;
  interface Mutation {
    name: string;
    path: Seg[];
    apply: (d: Json) => void;
  }
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- zod internals (def) are untyped here
  const defOf = (schema: unknown): any => (schema as { _zod: { def: unknown } })._zod.def;
  const unwrap = (schema: unknown): unknown => {
    let inner = schema;
    while (["optional", "default"].includes(defOf(inner).type)) inner = defOf(inner).innerType;
    return inner;
  };
  /** A value of the wrong type for `schema`, or undefined when anything goes (condition trees). */
  const wrongValueFor = (schema: unknown): unknown => {
    switch (defOf(unwrap(schema)).type) {
      case "string":
        return 12345;
      case "number":
        return "12";
      case "boolean":
        return "yes";
      case "enum":
      case "literal":
        return "__bogus__";
      case "array":
        return { not: "an array" };
      case "object":
      case "record":
      case "union":
        return "not an object";
      default:
        return undefined;
    }
  };
  const walk = (d: Json, path: Seg[]): { parent: Json; key: Seg } => {
    let parent = d;
    for (const seg of path.slice(0, -1)) parent = parent[seg];
    return { parent, key: path[path.length - 1]! };
  };

  /**
   * One "wrong type" and, for required fields, one "missing" mutation per field the fixture has;
   * named by the field's path with array indexes as [*] and change types spelled out, so that
   * each schema field (per change type) is tried once, at its first occurrence.
   */
  const mutations = (
    schema: unknown,
    value: unknown,
    path: Seg[],
    out: Mutation[],
    label = "$",
  ): Mutation[] => {
    const def = defOf(unwrap(schema));
    if (def.type === "object" && typeof value === "object" && value !== null) {
      for (const [key, field] of Object.entries(def.shape as Record<string, unknown>)) {
        const fieldPath = [...path, key];
        const fieldLabel = `${label}.${key}`;
        const present = (value as Json)[key] !== undefined;
        const required = !["optional", "default"].includes(defOf(field).type);
        const wrong = wrongValueFor(field);
        if (wrong !== undefined) {
          out.push({
            name: `wrong type at ${fieldLabel}`,
            path: fieldPath,
            apply: (d) => {
              const { parent, key: k } = walk(d, fieldPath);
              parent[k] = wrong;
            },
          });
        }
        if (required && present) {
          out.push({
            name: `missing ${fieldLabel}`,
            path: fieldPath,
            apply: (d) => {
              const { parent, key: k } = walk(d, fieldPath);
              delete parent[k];
            },
          });
        }
        if (present) mutations(field, (value as Json)[key], fieldPath, out, fieldLabel);
      }
    } else if (def.type === "array" && Array.isArray(value)) {
      value.forEach((item, i) => mutations(def.element, item, [...path, i], out, `${label}[*]`));
    } else if (def.type === "record" && typeof value === "object" && value !== null) {
      const key = Object.keys(value)[0];
      if (key !== undefined) {
        const wrong = wrongValueFor(def.valueType);
        out.push({
          name: `wrong type at ${label}[key]`,
          path: [...path, key],
          apply: (d) => {
            const { parent, key: k } = walk(d, [...path, key]);
            parent[k] = wrong;
          },
        });
      }
    } else if (def.type === "union" && typeof value === "object" && value !== null) {
      const tag = (value as Json)[def.discriminator];
      const option = (def.options as unknown[]).find((o) =>
        defOf(defOf(o).shape[def.discriminator]).values.includes(tag),
      );
      if (option) mutations(option, value, path, out, `${label}<${String(tag)}>`);
    }
    return out;
  };

  // The valid fixture, plus the change types' fields wherever they first appear.
  const all = mutations(datafileSchema, valid(), [], []);
  const seen = new Set<string>();
  const unique = all.filter((m) => !seen.has(m.name) && seen.add(m.name));

  it("covers the schemas", () => {
    expect(unique.length).toBeGreaterThan(150);
    for (const type of [
      "attribute",
      "insert_html",
      "move",
      "custom_css",
      "custom_code",
      "redirect",
    ]) {
      expect(unique.some((m) => m.name.includes(`<${type}>`))).toBe(true);
    }
  });

  it.each(unique.map((m) => [m.name, m] as const))("%s", (_name, mutation) => {
    const datafile = valid();
    mutation.apply(datafile);
    const path = formatPath(mutation.path);
    const zod = datafileSchema.safeParse(datafile);
    expect(zod.success, "the mutation breaks the zod schema").toBe(false);
    const zodPaths = zod.success ? [] : zod.error.issues.map((i) => formatPath(i.path as Seg[]));
    expect(zodPaths).toContain(path);
    const result = parseDatafile(datafile);
    expect(result.ok).toBe(false);
    const errors = result.problems.filter((p) => p.severity === "error").map((p) => p.path);
    expect(errors, formatProblems(result.problems)).toContain(path);
  });
});

describe("parseDatafile: broken fixtures", () => {
  const cases: Array<[string, string[], RegExp?]> = [
    ["bad-json.json", ["error $"], /^invalid JSON: .*position 4000 \(line 156 column 4\)$/],
    [
      "missing-fields.json",
      [
        "error $.accountId",
        "error $.revision",
        "error $.typedAudiences[0].conditions",
        "error $.events[1].key",
        "error $.experiments[0].variations",
        "error $.experiments[1].forcedVariations",
        "error $.groups[0].policy",
        "error $.featureFlags[0].variables[1].defaultValue",
        "error $.featureFlags[0].rolloutId",
        "error $.web.pages[0].activation",
        "error $.web.experiments[0].variations[1].changes[1].position",
        // $.web.lists[0] has no values: allowed, published lists never carry their (private)
        // members (docs/datafile.md "Lists").
      ],
      /missing required field/,
    ],
    [
      "wrong-types.json",
      [
        "error $.revision",
        "error $.botFiltering",
        "error $.audiences[0].conditions",
        "error $.experiments[0].trafficAllocation[0].endOfRange",
        "error $.experiments[1].audienceIds",
        "error $.experiments[3].variations[0].featureEnabled",
        "error $.groups[0].experiments[0].id",
        "error $.featureFlags[0].variables[0].type",
        "error $.web.pages[1].activation",
        "error $.web.experiments[1].pageIds",
        "error $.web.lists[0].values[0]",
        "error $.web.lists[0].values[1]",
        "error $.web.integrations.segment",
      ],
      /^expected /,
    ],
    [
      "dangling-ids.json",
      [
        "error $.experiments[0].audienceIds[0]",
        "error $.experiments[1].audienceConditions[2][2]",
        "error $.experiments[0].trafficAllocation[1].entityId",
        'warning $.experiments[0].forcedVariations["qa-tester-2"]',
        "error $.groups[0].trafficAllocation[1].entityId",
        "error $.events[0].experimentIds[6]",
        "error $.featureFlags[0].rolloutId",
        "error $.featureFlags[0].experimentIds[1]",
        "error $.experiments[3].variations[1].variables[0].id",
        "error $.typedAudiences[1].conditions[1].value",
        "error $.web.experiments[0].metrics[0].eventId",
        "error $.web.experiments[0].pageIds[1]",
        "error $.web.experiments[2].variations[1].id",
        "error $.web.events[2].pageId",
        "error $.web.events[5].id",
        "error $.web.experiments[5].id",
      ],
      /^unknown audience id "49999"$/,
    ],
    [
      "bad-web.json",
      [
        "error $.web.pages[1].conditions[2].value",
        "error $.web.pages[2].conditions.match",
        "error $.web.experiments[0].variations[1].changes[0].selector",
        "error $.web.experiments[0].variations[1].changes[0].attributes.set.onclick",
        'error $.web.experiments[0].variations[1].changes[0].attributes.set["bad name"]',
        "error $.web.experiments[0].variations[1].changes[1].selector",
        "error $.web.experiments[0].variations[1].changes[2].type",
        "error $.web.experiments[2].variations[1].changes[0].destination",
        "error $.web.experiments[2].variations[2].changes[0].mode",
        "error $.web.experiments[0].metrics[1].field",
        "error $.web.experiments[3].type",
        "error $.web.events[1].selector",
        "error $.web.events[2].pageId",
      ],
      /invalid regular expression/,
    ],
  ];

  it.each(cases)("%s", (name, expected, firstMessage) => {
    const result = parseDatafile(fixtureText(name));
    expect(result.ok).toBe(false);
    expect(summary(result.problems), formatProblems(result.problems)).toEqual([...expected].sort());
    if (firstMessage) {
      const first = result.problems.find((p) => `${p.severity} ${p.path}` === expected[0]);
      expect(first?.message).toMatch(firstMessage);
    }
  });

  it("bad-web.json is still loaded by the official SDK, which ignores `web`", async () => {
    const client = createInstance({
      projectConfigManager: createStaticProjectConfigManager({
        datafile: fixtureText("bad-web.json"),
      }),
    });
    try {
      await expect(client.onReady({ timeout: 5000 })).resolves.toBeUndefined();
    } finally {
      client.close();
    }
  });
});

describe("parseDatafile: never throws", () => {
  const deepArray = "[".repeat(200_000) + "]".repeat(200_000);
  const deepObject = '{"a":'.repeat(100_000) + "1" + "}".repeat(100_000);
  const circular: Json = valid();
  circular.web.self = circular;
  circular.experiments[0].variations[0].self = circular.experiments[0];
  const hostile = new Proxy(
    {},
    {
      get() {
        throw new Error("boom");
      },
      ownKeys() {
        throw new Error("boom");
      },
    },
  );
  const getter = valid();
  Object.defineProperty(getter.experiments[0], "key", {
    enumerable: true,
    get() {
      throw new Error("getter boom");
    },
  });

  const inputs: Array<[string, unknown]> = [
    ["null", null],
    ["undefined", undefined],
    ["42", 42],
    ["NaN", Number.NaN],
    ["true", true],
    ["[]", []],
    ['""', ""],
    ['"{"', "{"],
    ['"null"', "null"],
    ['"[1,2]"', "[1,2]"],
    ["a BOM", `\uFEFF${VALID_TEXT}`],
    ["a symbol", Symbol("x")],
    ["a bigint", 10n],
    ["a function", () => 1],
    ["a Date", new Date(0)],
    ["{}", {}],
    ["deeply nested arrays (text)", deepArray],
    ["deeply nested objects (text)", deepObject],
    ["deeply nested arrays (value)", JSON.parse("[".repeat(5000) + "]".repeat(5000))],
    ["a huge junk string", "x".repeat(20_000_000)],
    ["a huge valid-looking prefix", `{"version":"4","revision":"${"9".repeat(5_000_000)}"`],
    ["a circular value", circular],
    ["a throwing proxy", hostile],
    ["a throwing getter", getter],
    [
      "experiments full of junk",
      {
        ...valid(),
        experiments: [null, 1, "x", [], { id: {} }, { variations: [null, { id: [] }] }],
      },
    ],
    [
      "web full of junk",
      {
        ...valid(),
        web: {
          pages: [null, { conditions: [[[{}]]] }],
          experiments: [
            {
              variations: [
                { changes: [null, 1, { type: "attribute", attributes: { set: null, unset: {} } }] },
              ],
            },
          ],
          events: "x",
          lists: [{}],
          integrations: [],
        },
      },
    ],
    [
      "condition trees full of junk",
      {
        ...valid(),
        typedAudiences: [
          {
            id: "1",
            name: "n",
            conditions: [null, ["not"], [[]], { type: 1, name: {}, match: [] }],
          },
        ],
      },
    ],
  ];

  it.each(inputs)("%s", (_name, input) => {
    let result: ReturnType<typeof parseDatafile> | undefined;
    expect(() => (result = parseDatafile(input))).not.toThrow();
    if (input === circular) {
      // Cycles through unknown fields are fine: the datafile is otherwise valid.
      expect(result!.ok).toBe(true);
      return;
    }
    expect(result!.ok).toBe(false);
    expect(result!.problems.some((p) => p.severity === "error")).toBe(true);
    for (const p of result!.problems) {
      expect(p.path.startsWith("$")).toBe(true);
      expect(p.message.length).toBeLessThan(500);
    }
  });

  it("does not let __proto__ keys pollute prototypes", () => {
    const text = VALID_TEXT.replace(
      '"forcedVariations": {\n        "qa-tester-1"',
      '"forcedVariations": {\n        "__proto__": {"polluted": "yes"},\n        "qa-tester-1"',
    );
    const result = parseDatafile(text);
    expect(summary(result.problems)).toEqual(["error $.experiments[0].forcedVariations.__proto__"]);

    // A top-level __proto__ key while defaults are filled in (copy-on-write of the root object).
    const withDefaults = VALID_TEXT.replace(
      '"region": "US",',
      '"region": "US", "__proto__": {"polluted": "yes"},',
    ).replace('"groups": [', '"featureFlagsX": [], "groups": [');
    const parsed = JSON.parse(withDefaults);
    delete parsed.featureFlags;
    delete parsed.rollouts;
    const ok = parseDatafile(parsed);
    expect(formatProblems(ok.problems)).toBe("");
    if (!ok.ok) return;
    expect(ok.datafile.featureFlags).toEqual([]);
    expect(Object.getPrototypeOf(ok.datafile)).toBe(Object.prototype);
    expect((ok.datafile as Json).polluted).toBeUndefined();
    expect(({} as Json).polluted).toBeUndefined();
    expect(parsed.featureFlags).toBeUndefined(); // the input is left alone
  });

  it("caps the list of problems", () => {
    const datafile = valid();
    datafile.attributes = Array.from({ length: 5000 }, () => ({ id: 1, key: 2 }));
    const result = parseDatafile(datafile);
    expect(result.ok).toBe(false);
    expect(result.problems.length).toBeLessThanOrEqual(1001);
    expect(result.problems.at(-1)!.message).toMatch(/more problems not listed/);
  });
});

describe("parseDatafile: problems never quote list members", () => {
  // Problems reach /_ss/health and the logs; web.lists[].values are private (docs/security.md
  // "List members stay private").
  const SECRET = "secretmember";

  it("JSON that does not parse → position, line and column, none of the text", () => {
    // A bare word among the members: V8's message would quote `..."…-1", secretmember-2]…"`.
    const text = VALID_TEXT.replace('"cust_1002"', `${SECRET}-2`);
    const result = parseDatafile(text);
    expect(result.ok).toBe(false);
    const position = text.indexOf(`${SECRET}-2`);
    const line = text.slice(0, position).split("\n").length;
    const column = position - text.lastIndexOf("\n", position - 1);
    expect(result.problems).toEqual([
      {
        path: "$",
        message: `invalid JSON: unexpected character (expected a JSON value) at position ${position} (line ${line} column ${column})`,
        severity: "error",
      },
    ]);
  });

  it.each<[string, (lists: Json[]) => void, string]>([
    [
      "a member that is not a string",
      (l) => l[0].values.push(98765432),
      "$.web.lists[0].values[3]",
    ],
    [
      "values that are not an array",
      (l) => (l[0].values = `${SECRET}-1,${SECRET}-2`),
      "$.web.lists[0].values",
    ],
    ["a list that is a member", (l) => l.push(`${SECRET}-3`), "$.web.lists[2]"],
    ["a key that is not a string", (l) => (l[1].key = 98765432), "$.web.lists[1].key"],
  ])("%s → reported by type only", (_name, mutate, path) => {
    const datafile = valid();
    mutate(datafile.web.lists);
    const result = parseDatafile(datafile);
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => `${p.severity} ${p.path}`)).toContain(`error ${path}`);
    const text = formatProblems(result.problems);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain("98765432");
  });
});

describe("parseDatafile: speed", () => {
  it("parses a ~1 MB datafile with 500 experiments quickly", () => {
    const text = JSON.stringify(bigDatafile(500));
    expect(text.length).toBeGreaterThan(1_000_000);
    parseDatafile(text); // warm up
    const started = performance.now();
    const result = parseDatafile(text);
    const elapsed = performance.now() - started;
    expect(formatProblems(result.problems)).toBe("");
    // Generous bound for slow CI machines; the measured figure is far lower (see the report in
    // datafile-parse.ts). This catches accidental quadratic work, not small regressions.
    expect(elapsed).toBeLessThan(500);
  });
});

/** A synthetic datafile: n experiments, each with 3 variations, audiences, and a web part. */
function bigDatafile(n: number): Json {
  const leafAt = (i: number) => leaf("plan", "exact", `plan-${i}`);
  const audiences = Array.from({ length: 50 }, (_, a) => ({
    id: `4${a}`,
    name: `a${a}`,
    conditions: JSON.stringify(["and", ["or", ["or", leafAt(a)]]]),
  }));
  const typedAudiences = Array.from({ length: 50 }, (_, a) => ({
    id: `5${a}`,
    name: `t${a}`,
    conditions: [
      "and",
      ["or", leaf("age", "gt", a), leafAt(a)],
      ["not", leaf("visitor.new", "exact", true)],
    ],
  }));
  const pages = Array.from({ length: 50 }, (_, p) => ({
    id: `p${p}`,
    key: `page_${p}`,
    activation: "immediate",
    conditions: [
      "or",
      { match: "simple", value: `https://shop.example.com/c/${p}` },
      { match: "regex", value: `^https://shop\\.example\\.com/c/${p}/\\d+$` },
    ],
  }));
  const events = Array.from({ length: 100 }, (_, e) => ({
    id: `9${e}`,
    key: `event_${e}`,
    experimentIds: [] as string[],
  }));
  const webEvents = events.map((e, i) =>
    i % 2
      ? { id: e.id, type: "click", pageId: `p${i % 50}`, selector: `#buy-${i}` }
      : { id: e.id, type: "pageview", pageId: `p${i % 50}` },
  );
  const experiments = [];
  const webExperiments = [];
  for (let i = 0; i < n; i++) {
    const id = `${1_000_000 + i}`;
    const variations = [0, 1, 2].map((v) => ({ id: `${id}${v}`, key: `variation_${v}` }));
    experiments.push({
      id,
      key: `experiment_${i}`,
      status: i % 7 ? "Running" : "Paused",
      layerId: `L${id}`,
      variations,
      trafficAllocation: variations.map((v, k) => ({
        entityId: v.id,
        endOfRange: k === 2 ? 10000 : (k + 1) * 3333,
      })),
      audienceIds: [`4${i % 50}`, `5${i % 50}`],
      audienceConditions: ["or", `4${i % 50}`, `5${i % 50}`],
      forcedVariations: { [`qa-${i}`]: "variation_1" },
    });
    events[i % 100]!.experimentIds.push(id);
    webExperiments.push({
      id,
      type: "ab",
      pageIds: [`p${i % 50}`],
      metrics: [
        { eventId: `9${i % 100}`, aggregator: "unique" },
        { eventId: "90", aggregator: "sum", field: "revenue" },
      ],
      variations: variations.map((v, k) => ({
        id: v.id,
        changes:
          k === 0
            ? []
            : [
                {
                  type: "attribute",
                  selector: `#hero-${i} .title`,
                  attributes: {
                    text: `Headline ${i}/${k}`,
                    addClass: "variant",
                    set: { "data-v": String(k) },
                  },
                },
                {
                  type: "insert_html",
                  selector: `#promo-${i}`,
                  position: "after",
                  html: `<div class="promo"><strong>Save ${k * 5}% today</strong> on item ${i}. Free returns within 30 days, free shipping on orders over $50.</div>`,
                },
                {
                  type: "custom_css",
                  value: `.promo-${i} { color: #${k}${k}${k}; font-weight: bold; padding: 4px 8px; }`,
                },
                {
                  type: "custom_code",
                  value: `document.querySelectorAll('#promo-${i}').forEach(function (el) { el.dataset.seen = '1'; el.classList.add('promo-seen'); });`,
                },
              ],
      })),
    });
  }
  return {
    version: "4",
    accountId: "1",
    projectId: "2",
    revision: "3",
    sdkKey: "bench",
    anonymizeIP: true,
    botFiltering: false,
    attributes: [
      { id: "a1", key: "plan" },
      { id: "a2", key: "age" },
    ],
    audiences,
    typedAudiences,
    events,
    experiments,
    groups: [],
    featureFlags: [],
    rollouts: [],
    integrations: [],
    web: { pages, experiments: webExperiments, events: webEvents, lists: [], integrations: {} },
  };
}
