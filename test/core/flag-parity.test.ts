/**
 * Feature-flag parity with the official Optimizely JS SDK (docs/decisions.md, "Feature flags"):
 * for generated flag datafiles (test/support/generate-flags.ts) and thousands of generated
 * visitors, every flag's `decideFlag` and `decideAllFlags` decision must equal what the SDK's
 * `createUserContext(id, attributes).decide(flagKey)` and `.decideAll()` return — `enabled`,
 * `variationKey`, `ruleKey` and `variables`, compared exactly (deep, strict) — and the reason must
 * say which kind of rule decided. The SDK (@optimizely/optimizely-sdk, pinned in package.json) is
 * the oracle.
 *
 * Where the SDK has no decision, the documented mapping (docs/decisions.md, "Feature flags"):
 * - `createUserContext` throws (invalid id or attributes), or `decide` throws for this visitor and
 *   flag (a null `$opt_experiment_bucket_map` entry, an own "hasOwnProperty" attribute at
 *   bucketing): ours is `invalid_visitor`, off, no variation or rule, the flag's default variables
 *   (the SDK's own cast of them, from a copy of the datafile without rules);
 * - an unknown flag key: the SDK's error decision (no variables) and ours `flag_not_found` agree.
 *
 * `decideAllFlags(…, { experimentRules: false })` is compared with the SDK on a copy of the
 * datafile whose flags have no experiment rules.
 *
 * On a mismatch the failure message shows the first few with what is needed to reproduce them:
 * scenario, seed, generator calls, visitor index, id and attributes, the flag and its rules, and
 * both answers.
 */
import type { Client } from "@optimizely/optimizely-sdk";
import { isDeepStrictEqual } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import {
  decideAllFlags,
  decideFlag,
  formatProblems,
  loadDatafile,
  type CompiledDatafile,
  type Datafile,
  type FlagDecision,
  type FlagReason,
  type Visitor,
} from "../../src/core/index";
import {
  describeValue,
  generateVisitors,
  type GeneratedVisitor,
  type GenerateVisitorsOptions,
} from "../support/generate-datafile";
import {
  generateFlagDatafile,
  sdkDecide,
  sdkDecideAll,
  sdkDefaultVariables,
  sdkFlagClient,
  sdkUser,
  VARIABLE_KINDS,
  variableKind,
  withoutExperimentRules,
  type GenerateFlagsOptions,
  type SdkFlagDecision,
  type SdkFlagOutcome,
  type VariableKind,
} from "../support/generate-flags";

interface Scenario {
  name: string;
  seed: number;
  visitors: number;
  flags: GenerateFlagsOptions;
  visitorOptions: GenerateVisitorsOptions;
}

const SCENARIOS: Scenario[] = [
  {
    name: "flags with every kind of rule",
    seed: 101,
    visitors: 3000,
    flags: {},
    visitorOptions: { forcedRate: 0.1 },
  },
  {
    name: "many flags, mutually exclusive groups",
    seed: 102,
    visitors: 2000,
    flags: { flags: 24, base: { experiments: 14, randomGroups: 4, experimentsPerGroup: [2, 5] } },
    visitorOptions: { forcedRate: 0.1 },
  },
  {
    name: "Feature Rollout and CMAB experiment rules",
    seed: 103,
    visitors: 2000,
    flags: { featureRolloutRate: 0.8, base: { cmabRate: 0.2 } },
    visitorOptions: { forcedRate: 0.1, bucketMapRate: 0.2 },
  },
  {
    name: "sticky $opt_experiment_bucket_map attribute",
    seed: 104,
    visitors: 2000,
    flags: {},
    visitorOptions: { bucketMapRate: 0.4, forcedRate: 0.05 },
  },
  {
    name: "Object.prototype attribute names, invalid visitors",
    seed: 105,
    visitors: 2000,
    flags: { base: { prototypeNames: true } },
    visitorOptions: { prototypeNames: true, invalidRate: 0.05 },
  },
];

/** Flag keys that name no flag; the SDK answers its error decision. */
const UNKNOWN_KEYS = ["no_such_flag", ""];
/**
 * Object.prototype names as flag keys: the SDK looks flags up in a plain object, finds the
 * inherited member and throws on it; ours says `flag_not_found`.
 */
const PROTOTYPE_KEYS = ["constructor", "toString", "__proto__"];
const MAX_REPORTED = 5;

const clients: Client[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

async function client(datafile: Datafile): Promise<Client> {
  const c = await sdkFlagClient(JSON.stringify(datafile));
  clients.push(c);
  return c;
}

function ourVisitor(visitor: GeneratedVisitor): Visitor {
  return { visitorId: visitor.visitorId, attributes: visitor.attributes } as Visitor;
}

function loaded(json: string): CompiledDatafile {
  const result = loadDatafile(json);
  if (!result.ok) return expect.fail(formatProblems(result.problems));
  return result.compiled;
}

/** The fields both sides have, plus our reason, for comparison and messages. */
interface Expected {
  flagKey: string;
  enabled: boolean;
  variationKey: string | null;
  ruleKey: string | null;
  variables: Record<string, unknown>;
  reason: FlagReason;
}

/** Which rule keys of a flag are experiment rules and which delivery rules (for the reason). */
interface RuleKinds {
  experiment: ReadonlySet<string>;
  delivery: ReadonlySet<string>;
}

function ruleKinds(compiled: CompiledDatafile): Map<string, RuleKinds> {
  return new Map(
    compiled.featureFlags.map((f) => [
      f.key,
      {
        experiment: new Set(f.experimentRules.map((r) => r.key)),
        delivery: new Set(f.deliveryRules.map((r) => r.key)),
      },
    ]),
  );
}

/** What ours must answer, given the SDK's outcome (the mapping of the module comment). */
function expectedFrom(
  outcome: SdkFlagOutcome,
  flagKey: string,
  kinds: RuleKinds | undefined,
  defaults: ReadonlyMap<string, Record<string, unknown>>,
): Expected {
  if (kinds === undefined) {
    // Unknown flag: the SDK's error decision, whatever the visitor.
    return {
      flagKey,
      enabled: false,
      variationKey: null,
      ruleKey: null,
      variables: {},
      reason: "flag_not_found",
    };
  }
  if (outcome.kind !== "decision") {
    return {
      flagKey,
      enabled: false,
      variationKey: null,
      ruleKey: null,
      variables: defaults.get(flagKey) ?? {},
      reason: "invalid_visitor",
    };
  }
  const d = outcome.decision;
  const reason: FlagReason =
    d.ruleKey === null
      ? "no_rule_matched"
      : kinds.experiment.has(d.ruleKey)
        ? "experiment_rule"
        : kinds.delivery.has(d.ruleKey)
          ? "delivery_rule"
          : "flag_not_found"; // a rule key of no rule: cannot match any reason of ours
  return { ...d, reason };
}

function same(ours: FlagDecision, expected: Expected): boolean {
  return (
    ours.flagKey === expected.flagKey &&
    ours.enabled === expected.enabled &&
    ours.variationKey === expected.variationKey &&
    ours.ruleKey === expected.ruleKey &&
    ours.reason === expected.reason &&
    isDeepStrictEqual(ours.variables, expected.variables)
  );
}

interface Mismatch {
  /** Which comparison: decide, decideAll, delivery-only… */
  what: string;
  flagKey: string;
  visitorIndex: number;
  sdk: string;
  expected: Expected;
  ours: FlagDecision | undefined;
}

function describeOutcome(outcome: SdkFlagOutcome | string): string {
  if (typeof outcome === "string") return outcome;
  if (outcome.kind !== "decision") return `${outcome.kind}: ${outcome.error}`;
  return describeValue(outcome.decision);
}

function flagContext(datafile: Datafile, flagKey: string): string {
  const flag = datafile.featureFlags.find((f) => f.key === flagKey);
  if (!flag) return "    (no flag with this key)";
  const experiments = [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)];
  const lines = [`    flag: ${JSON.stringify(flag)}`];
  for (const id of flag.experimentIds) {
    const e = experiments.find((x) => x.id === id);
    const group = datafile.groups.find((g) => g.experiments.some((x) => x.id === id));
    lines.push(
      `    experiment rule: ${JSON.stringify(e)}` +
        (group ? `\n      in group ${JSON.stringify({ ...group, experiments: undefined })}` : ""),
    );
  }
  const rollout = datafile.rollouts.find((r) => r.id === flag.rolloutId);
  for (const rule of rollout?.experiments ?? [])
    lines.push(`    delivery rule: ${JSON.stringify(rule)}`);
  return lines.join("\n");
}

function mismatchReport(
  scenario: Scenario,
  datafile: Datafile,
  visitors: GeneratedVisitor[],
  mismatches: Mismatch[],
  checked: number,
): string {
  const byFlag = new Map<string, number>();
  for (const m of mismatches) byFlag.set(m.flagKey, (byFlag.get(m.flagKey) ?? 0) + 1);
  const lines = [
    `${mismatches.length} of ${checked} flag decisions differ from the SDK in scenario "${scenario.name}" ` +
      `(seed ${scenario.seed}; reproduce with generateFlagDatafile(${scenario.seed}, ${JSON.stringify(scenario.flags)}) ` +
      `and generateVisitors(${scenario.seed}, ${scenario.visitors}, datafile, ${JSON.stringify(scenario.visitorOptions)})).`,
    `By flag: ${[...byFlag].map(([k, n]) => `${JSON.stringify(k)}×${n}`).join(", ")}`,
  ];
  mismatches.slice(0, MAX_REPORTED).forEach((m, i) => {
    const v = visitors[m.visitorIndex]!;
    lines.push(
      `#${i + 1} ${m.what}: flag ${JSON.stringify(m.flagKey)}, visitor #${m.visitorIndex}`,
      `    visitorId: ${describeValue(v.visitorId)}`,
      `    attributes: ${describeValue(v.attributes)}`,
      `    SDK      → ${m.sdk}`,
      `    expected → ${describeValue(m.expected)}`,
      `    ours     → ${describeValue(m.ours)}`,
      flagContext(datafile, m.flagKey),
    );
  });
  return lines.join("\n");
}

/** What the generated worlds must exercise over all scenarios, or "all equal" proves little. */
const coverage = {
  visitors: 0,
  decisions: 0,
  reasons: new Map<FlagReason, number>(),
  sdkThrew: 0,
  enabledWithVariation: 0,
  disabledWithVariation: 0,
  stickyElsewhere: 0,
  whitelisted: 0,
  grouped: 0,
  featureRolloutEveryoneElse: 0,
  nonDefaultByKind: new Map<VariableKind, number>(),
  sdkMs: 0,
  oursMs: 0,
};

// ---- hand-written datafiles: each case states what the SDK's decide does, and both must say it

function vVariation(id: string, key: string, featureEnabled: boolean, values: string[] = []) {
  return {
    id,
    key,
    featureEnabled,
    variables: values.map((value, i) => ({ id: `var${i}`, value })),
  };
}

function vRule(
  id: string,
  variations: ReturnType<typeof vVariation>[],
  endOfRange: number,
  extra: Record<string, unknown> = {},
) {
  return {
    id,
    key: id,
    status: "Running",
    layerId: `layer_${id}`,
    audienceIds: [],
    forcedVariations: {},
    variations,
    trafficAllocation: variations.map((v) => ({ entityId: v.id, endOfRange })),
    ...extra,
  };
}

/** One variable of every kind; values in vVariation's `values` are given in this order. */
const VECTOR_VARIABLES = [
  { id: "var0", key: "b", type: "boolean", defaultValue: "false" },
  { id: "var1", key: "i", type: "integer", defaultValue: "1" },
  { id: "var2", key: "d", type: "double", defaultValue: "1.5" },
  { id: "var3", key: "s", type: "string", defaultValue: "default" },
  { id: "var4", key: "j", type: "json", defaultValue: '{"x":1}' },
  { id: "var5", key: "sj", type: "string", subType: "json", defaultValue: "[1]" },
];
const VECTOR_DEFAULTS = { b: false, i: 1, d: 1.5, s: "default", j: { x: 1 }, sj: [1] };

function vectorDatafile(parts: {
  experiments: unknown[];
  rollouts: unknown[];
  featureFlags: Array<{ key: string; rolloutId: string; experimentIds: string[] }>;
}): string {
  return JSON.stringify({
    version: "4",
    accountId: "1",
    projectId: "1",
    revision: "1",
    attributes: [{ id: "attr", key: "country" }],
    audiences: [],
    typedAudiences: [
      {
        id: "us",
        name: "us",
        conditions: ["and", { type: "custom_attribute", name: "country", value: "us" }],
      },
    ],
    events: [],
    groups: [],
    experiments: parts.experiments,
    rollouts: parts.rollouts,
    featureFlags: parts.featureFlags.map((f) => ({
      ...f,
      id: `id_${f.key}`,
      variables: VECTOR_VARIABLES,
    })),
  });
}

/** A decision that is off: the defaults, whatever the variation's own values. */
function vOff(
  flagKey: string,
  ruleKey: string | null,
  variationKey: string | null,
  reason: FlagReason,
): Expected {
  return { flagKey, enabled: false, variationKey, ruleKey, variables: VECTOR_DEFAULTS, reason };
}

async function checkVectors(json: string, cases: Array<[Visitor, Expected]>): Promise<void> {
  const compiled = loaded(json);
  const sdk = await client(JSON.parse(json) as Datafile);
  for (const [visitor, want] of cases) {
    const label = `${want.flagKey} for ${describeValue(visitor)}`;
    const outcome = sdkDecide(
      sdkUser(sdk, { visitorId: visitor.visitorId, attributes: visitor.attributes }),
      want.flagKey,
    );
    const { reason, ...sdkWant } = want;
    expect(outcome, `SDK: ${label}`).toEqual({ kind: "decision", decision: sdkWant });
    const ours = decideFlag(compiled, want.flagKey, visitor);
    expect(same(ours, want), `ours: ${label}: ${describeValue(ours)} (want reason ${reason})`).toBe(
      true,
    );
  }
}

describe("flag parity with @optimizely/optimizely-sdk decide (docs/decisions.md)", () => {
  it("skips to Everyone Else, ignores delivery-rule status and whitelists, types every variable", async () => {
    const json = vectorDatafile({
      experiments: [
        vRule(
          "ab",
          [vVariation("ab_on", "treatment", true, ["true", "7", "-0.25", "", "[]"])],
          10000,
          {
            audienceIds: ["us"],
            forcedVariations: { qa: "treatment" },
          },
        ),
      ],
      rollouts: [
        {
          id: "r1",
          experiments: [
            // Everyone matches, nobody is in its 0 % traffic: all skip to Everyone Else…
            vRule("zero", [vVariation("zero_on", "zero_on", true)], 0),
            // …so this 100 % rule (paused: status does not matter for delivery rules; its whitelist
            // is ignored) is never reached,
            vRule("never", [vVariation("never_on", "never_on", true)], 10000, {
              status: "Paused",
              forcedVariations: { qa: "never_on" },
            }),
            // and a featureEnabled:false variation gives the defaults, not its own values.
            vRule("else1", [vVariation("off", "off", false, ["true", "9"])], 10000),
          ],
        },
        {
          id: "r2",
          experiments: [
            // Only "us" visitors match, none gets its traffic: they skip to Everyone Else (0 %).
            vRule("us_zero", [vVariation("us_on", "us_on", true)], 0, { audienceIds: ["us"] }),
            vRule(
              "paused",
              [vVariation("paused_on", "on", true, ["true", "3", "2.5", "x", "{}"])],
              10000,
              {
                status: "Paused",
              },
            ),
            vRule("else2", [vVariation("else2_on", "else_on", true)], 0),
          ],
        },
      ],
      featureFlags: [
        { key: "skip", rolloutId: "r1", experimentIds: ["ab"] },
        { key: "audience_skip", rolloutId: "r2", experimentIds: [] },
        { key: "none", rolloutId: "", experimentIds: [] },
      ],
    });
    // Variables the variation leaves out keep their defaults.
    const treatment = { b: true, i: 7, d: -0.25, s: "", j: [], sj: [1] };
    await checkVectors(json, [
      [{ visitorId: "a" }, vOff("skip", "else1", "off", "delivery_rule")],
      [
        { visitorId: "qa" },
        {
          flagKey: "skip",
          enabled: true,
          variationKey: "treatment",
          ruleKey: "ab",
          variables: treatment,
          reason: "experiment_rule",
        },
      ],
      [
        { visitorId: "a", attributes: { country: "us" } },
        {
          flagKey: "skip",
          enabled: true,
          variationKey: "treatment",
          ruleKey: "ab",
          variables: treatment,
          reason: "experiment_rule",
        },
      ],
      [
        { visitorId: "a", attributes: { country: "us" } },
        vOff("audience_skip", null, null, "no_rule_matched"),
      ],
      [
        { visitorId: "a", attributes: { country: "de" } },
        {
          flagKey: "audience_skip",
          enabled: true,
          variationKey: "on",
          ruleKey: "paused",
          variables: { b: true, i: 3, d: 2.5, s: "x", j: {}, sj: [1] },
          reason: "delivery_rule",
        },
      ],
      [{ visitorId: "a" }, vOff("none", null, null, "no_rule_matched")],
    ]);
  });

  it("looks experiment-rule variations up by key, as the SDK does", async () => {
    const sticky = (experimentId: string, variationId: string) => ({
      $opt_experiment_bucket_map: { [experimentId]: { variation_id: variationId } },
    });
    const json = vectorDatafile({
      experiments: [
        // Not a rule of any flag: its variations are what sticky entries name.
        vRule(
          "donor",
          [
            vVariation("o1", "on", false),
            vVariation("o2", "a", false),
            vVariation("o3", "nowhere", true),
          ],
          10000,
        ),
        vRule("r1", [vVariation("r1a", "a", true, ["true"])], 10000),
        vRule("r2", [vVariation("r2b", "b", true, ["true", "2"])], 10000),
        // A whitelisted variation whose key is "": the SDK goes on to the next rule.
        vRule("blank", [vVariation("blank_v", "", true, ["true", "5"])], 0, {
          forcedVariations: { qa: "" },
        }),
        vRule("r3", [vVariation("r3c", "c", true, ["true", "3"])], 10000),
      ],
      rollouts: [
        {
          id: "ro",
          experiments: [
            vRule("d1", [vVariation("zz_on", "on", false, ["true", "11"])], 10000, {
              audienceIds: ["us"],
            }),
            vRule("d2", [vVariation("123", "on", true, ["true", "12"])], 10000, {
              audienceIds: ["us"],
            }),
            vRule("dee", [vVariation("dee_off", "off", false)], 10000),
          ],
        },
      ],
      featureFlags: [
        { key: "lookup", rolloutId: "ro", experimentIds: ["r1", "r2"] },
        { key: "blank_key", rolloutId: "", experimentIds: ["blank", "r3"] },
      ],
    });
    const on = { ...VECTOR_DEFAULTS, b: true };
    await checkVectors(json, [
      // Sticky in r1 to the donor's "on": r1 has no "on", so the flag's first "on" by the SDK's
      // Object.values order of ids — "123" (integer-like, so first), not "zz_on" (inserted first).
      [
        { visitorId: "v", attributes: sticky("r1", "o1") },
        {
          flagKey: "lookup",
          enabled: true,
          variationKey: "on",
          ruleKey: "r1",
          variables: { ...on, i: 12 },
          reason: "experiment_rule",
        },
      ],
      // Sticky to a key no rule of the flag has: the experiment rules end (r2 is not tried) and
      // the delivery rules decide.
      [
        { visitorId: "v", attributes: sticky("r1", "o3") },
        vOff("lookup", "dee", "off", "delivery_rule"),
      ],
      // Sticky to the donor's "a": r1's own "a".
      [
        { visitorId: "v", attributes: sticky("r1", "o2") },
        {
          flagKey: "lookup",
          enabled: true,
          variationKey: "a",
          ruleKey: "r1",
          variables: on,
          reason: "experiment_rule",
        },
      ],
      [
        { visitorId: "qa" },
        {
          flagKey: "blank_key",
          enabled: true,
          variationKey: "c",
          ruleKey: "r3",
          variables: { ...on, i: 3 },
          reason: "experiment_rule",
        },
      ],
    ]);
  });

  for (const scenario of SCENARIOS) {
    it(`${scenario.name} (seed ${scenario.seed}, ${scenario.visitors} visitors × every flag)`, async () => {
      const generated = generateFlagDatafile(scenario.seed, scenario.flags);
      const json = JSON.stringify(generated);
      // Both sides get the same JSON text.
      const datafile = JSON.parse(json) as Datafile;
      const compiled = loaded(json);
      const sdk = await client(datafile);
      const deliveryOnly = await client(withoutExperimentRules(datafile));
      const defaults = await sdkDefaultVariables(datafile);
      const kinds = ruleKinds(compiled);
      const visitors = generateVisitors(
        scenario.seed,
        scenario.visitors,
        datafile,
        scenario.visitorOptions,
      );
      const flagKeys = datafile.featureFlags.map((f) => f.key);
      const keys = [...flagKeys, ...UNKNOWN_KEYS];

      // Pass 1: the SDK — decide per key, decideAll, and delivery-only for every 4th visitor.
      let t0 = performance.now();
      const sdkOne: SdkFlagOutcome[][] = [];
      const sdkAll: ReturnType<typeof sdkDecideAll>[] = [];
      const sdkDelivery: Array<SdkFlagOutcome[] | undefined> = [];
      for (let i = 0; i < visitors.length; i++) {
        const user = sdkUser(sdk, visitors[i]!);
        sdkOne.push(keys.map((key) => sdkDecide(user, key)));
        sdkAll.push(sdkDecideAll(user));
        if (i % 4 === 0) {
          const deliveryUser = sdkUser(deliveryOnly, visitors[i]!);
          sdkDelivery.push(flagKeys.map((key) => sdkDecide(deliveryUser, key)));
        } else sdkDelivery.push(undefined);
      }
      const sdkMs = performance.now() - t0;

      // Pass 2: ours.
      t0 = performance.now();
      const oursOne = visitors.map((v) =>
        keys.map((key) => decideFlag(compiled, key, ourVisitor(v))),
      );
      const oursAll = visitors.map((v) => decideAllFlags(compiled, ourVisitor(v)));
      const oursDelivery = visitors.map((v, i) =>
        i % 4 === 0
          ? decideAllFlags(compiled, ourVisitor(v), { experimentRules: false })
          : undefined,
      );
      const oursMs = performance.now() - t0;

      // Compare.
      const mismatches: Mismatch[] = [];
      let checked = 0;
      const check = (
        what: string,
        i: number,
        flagKey: string,
        outcome: SdkFlagOutcome | undefined,
        ours: FlagDecision | undefined,
        ruleKindsOf: Map<string, RuleKinds> = kinds,
      ): void => {
        checked++;
        const sdkOutcome: SdkFlagOutcome = outcome ?? {
          kind: "decision",
          decision: { flagKey, enabled: false, variationKey: null, ruleKey: null, variables: {} },
        };
        const expected = expectedFrom(sdkOutcome, flagKey, ruleKindsOf.get(flagKey), defaults);
        if (ours === undefined || !same(ours, expected)) {
          mismatches.push({
            what,
            flagKey,
            visitorIndex: i,
            sdk: outcome === undefined ? "(no entry)" : describeOutcome(outcome),
            expected,
            ours,
          });
        }
      };
      const deliveryKinds = new Map(
        [...kinds].map(([key, k]) => [
          key,
          { experiment: new Set<string>(), delivery: k.delivery },
        ]),
      );
      for (let i = 0; i < visitors.length; i++) {
        const all = oursAll[i]!;
        expect(
          all.map((d) => d.flagKey),
          "decideAllFlags: every flag, in datafile order",
        ).toEqual(flagKeys);
        keys.forEach((key, k) => check("decide", i, key, sdkOne[i]![k], oursOne[i]![k]));
        // decideAll: one answer for all flags, or one failure standing for all.
        const sdkAllOfVisitor = sdkAll[i]!;
        if ("kind" in sdkAllOfVisitor && typeof sdkAllOfVisitor.kind === "string") {
          const failure = sdkAllOfVisitor as Exclude<SdkFlagOutcome, { kind: "decision" }>;
          if (failure.kind === "invalid_user") {
            flagKeys.forEach((key, f) => check("decideAll", i, key, failure, all[f]));
          } else {
            // The SDK's decideAll fails as a whole when deciding any flag throws.
            expect(
              all.some((d) => d.reason === "invalid_visitor"),
              `decideAll threw (${failure.error}) for visitor #${i}: some flag must be invalid_visitor`,
            ).toBe(true);
          }
        } else {
          const byKey = sdkAllOfVisitor as Record<string, SdkFlagDecision>;
          expect(Object.keys(byKey).sort(), "SDK decideAll keys").toEqual([...flagKeys].sort());
          flagKeys.forEach((key, f) =>
            check(
              "decideAll",
              i,
              key,
              byKey[key] ? { kind: "decision", decision: byKey[key] } : undefined,
              all[f],
            ),
          );
        }
        // decideFlag and decideAllFlags agree entirely (ids included).
        flagKeys.forEach((_, f) => {
          if (!isDeepStrictEqual(all[f], oursOne[i]![f]))
            expect.fail(
              `decideAllFlags and decideFlag differ for visitor #${i}, flag ${flagKeys[f]}: ` +
                `${describeValue(all[f])} vs ${describeValue(oursOne[i]![f])}`,
            );
        });
        const delivery = sdkDelivery[i];
        if (delivery !== undefined) {
          flagKeys.forEach((key, f) =>
            check("delivery only", i, key, delivery[f], oursDelivery[i]![f], deliveryKinds),
          );
        }
      }
      if (mismatches.length > 0)
        expect.fail(mismatchReport(scenario, datafile, visitors, mismatches, checked));

      // Object.prototype names are no flags of ours.
      for (const key of PROTOTYPE_KEYS) {
        expect(sdkDecide(sdkUser(sdk, { visitorId: "x", attributes: {} }), key).kind).toBe("threw");
        expect(decideFlag(compiled, key, { visitorId: "x" }).reason).toBe("flag_not_found");
      }

      // Coverage of what the scenario exercised.
      const experiments = [
        ...datafile.experiments,
        ...datafile.groups.flatMap((g) => g.experiments),
      ];
      const byKey = new Map(experiments.map((e) => [e.key, e]));
      const randomGrouped = new Set(
        datafile.groups
          .filter((g) => g.policy === "random")
          .flatMap((g) => g.experiments.map((e) => e.key)),
      );
      const reasons = new Map<FlagReason, number>();
      for (let i = 0; i < visitors.length; i++) {
        for (const d of oursAll[i]!) {
          reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
          coverage.reasons.set(d.reason, (coverage.reasons.get(d.reason) ?? 0) + 1);
          if (d.variationKey !== null) {
            if (d.enabled) coverage.enabledWithVariation++;
            else coverage.disabledWithVariation++;
          }
          if (d.reason === "experiment_rule" && d.ruleKey !== null) {
            const rule = byKey.get(d.ruleKey)!;
            const id = visitors[i]!.visitorId;
            if (typeof id === "string" && Object.hasOwn(rule.forcedVariations, id))
              coverage.whitelisted++;
            if (randomGrouped.has(d.ruleKey)) coverage.grouped++;
            const flag = compiled.featureFlagByKey.get(d.flagKey)!;
            const everyoneElse = flag.deliveryRules[flag.deliveryRules.length - 1]?.variations[0];
            if (rule.type === "fr" && d.variationKey === everyoneElse?.key)
              coverage.featureRolloutEveryoneElse++;
          }
          const flagDef = datafile.featureFlags.find((f) => f.key === d.flagKey)!;
          for (const variable of flagDef.variables) {
            if (
              !isDeepStrictEqual(d.variables[variable.key], defaults.get(d.flagKey)?.[variable.key])
            ) {
              const kind = variableKind(variable);
              coverage.nonDefaultByKind.set(kind, (coverage.nonDefaultByKind.get(kind) ?? 0) + 1);
            }
          }
        }
      }
      // Sticky entries naming a variation whose key no rule of the flag has (running rules).
      const variationKeyById = new Map(
        [...experiments, ...datafile.rollouts.flatMap((r) => r.experiments)].flatMap((e) =>
          e.variations.map((v) => [v.id, v.key] as const),
        ),
      );
      for (const visitor of visitors) {
        const attributes = visitor.attributes as Record<string, unknown> | null | undefined;
        const map = attributes?.$opt_experiment_bucket_map as
          Record<string, { variation_id?: unknown } | null> | undefined;
        if (!map) continue;
        for (const flag of compiled.featureFlags) {
          const keysOfFlag = new Set(
            [...flag.experimentRules, ...flag.deliveryRules].flatMap((r) =>
              r.variations.map((v) => v.key),
            ),
          );
          for (const rule of flag.experimentRules) {
            const key = variationKeyById.get(String(map[rule.id]?.variation_id));
            if (rule.running && key !== undefined && !keysOfFlag.has(key))
              coverage.stickyElsewhere++;
          }
        }
      }
      for (const reason of ["experiment_rule", "delivery_rule", "no_rule_matched"] as const)
        expect(reasons.get(reason) ?? 0, `decisions with reason ${reason}`).toBeGreaterThan(0);
      coverage.sdkThrew += sdkOne.flat().filter((o) => o.kind === "threw").length;
      coverage.visitors += visitors.length;
      coverage.decisions += checked;
      coverage.sdkMs += sdkMs;
      coverage.oursMs += oursMs;
      console.info(
        `flag parity ${scenario.name}: ${visitors.length} visitors × ${flagKeys.length} flags, ${checked} comparisons; ` +
          `SDK ${sdkMs.toFixed(0)} ms, ours ${oursMs.toFixed(0)} ms; reasons ${JSON.stringify(Object.fromEntries(reasons))}`,
      );
    }, 60_000);
  }

  it("exercised every kind of rule, outcome and variable (over all scenarios)", () => {
    // Runs last (vitest runs a file's tests in order); `coverage` is filled by the scenarios above.
    expect(coverage.visitors).toBeGreaterThanOrEqual(10_000);
    for (const reason of [
      "experiment_rule",
      "delivery_rule",
      "no_rule_matched",
      "invalid_visitor",
    ] as const)
      expect(coverage.reasons.get(reason) ?? 0, `reason ${reason}`).toBeGreaterThan(0);
    expect(coverage.sdkThrew, "visitors for whom the SDK's decide throws").toBeGreaterThan(0);
    expect(coverage.enabledWithVariation, "enabled variations").toBeGreaterThan(0);
    expect(coverage.disabledWithVariation, "featureEnabled:false variations").toBeGreaterThan(0);
    expect(
      coverage.whitelisted,
      "whitelisted (forcedVariations) experiment-rule decisions",
    ).toBeGreaterThan(0);
    expect(coverage.grouped, "decisions by rules in mutually exclusive groups").toBeGreaterThan(0);
    expect(
      coverage.featureRolloutEveryoneElse,
      "Feature Rollout rules giving Everyone Else",
    ).toBeGreaterThan(0);
    expect(coverage.stickyElsewhere, "sticky keys naming no variation of the flag").toBeGreaterThan(
      0,
    );
    for (const kind of VARIABLE_KINDS)
      expect(
        coverage.nonDefaultByKind.get(kind) ?? 0,
        `non-default ${kind} variables`,
      ).toBeGreaterThan(0);
    console.info(
      `flag parity total: ${coverage.visitors} visitors, ${coverage.decisions} comparisons; SDK ${coverage.sdkMs.toFixed(0)} ms, ours ${coverage.oursMs.toFixed(0)} ms; ` +
        `reasons ${JSON.stringify(Object.fromEntries(coverage.reasons))}, SDK threw ${coverage.sdkThrew}, ` +
        `whitelisted ${coverage.whitelisted}, grouped ${coverage.grouped}, fr→Everyone Else ${coverage.featureRolloutEveryoneElse}, ` +
        `sticky keys naming no variation of the flag ${coverage.stickyElsewhere}`,
    );
  });
});
