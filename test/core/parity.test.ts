/**
 * Parity with the official Optimizely JS SDK (docs/decisions.md): for generated datafiles and tens of
 * thousands of generated visitors, every experiment key must get exactly the variation the SDK's
 * `getVariation(experimentKey, userId, attributes)` returns — through `decideExperiment` and
 * through `decideAll`. The SDK (@optimizely/optimizely-sdk, pinned in package.json) is the oracle.
 *
 * Scenarios:
 * - datafiles Splitstream's validator accepts (loaded with `loadDatafile`, from the JSON text);
 * - datafiles with what the SDK loads but the validator rejects (dangling audience ids, stale
 *   whitelist keys, allocations naming foreign entities, non-object condition leaves): the test
 *   checks that those are the only errors and compiles them with `compileDatafile` directly, so
 *   the decision core is proven on them too.
 *
 * On a mismatch the failure message shows the first few with everything needed to reproduce them
 * (scenario, seed, visitor, experiment JSON, its audiences and group, both results).
 */
import {
  createInstance,
  createStaticProjectConfigManager,
  type Client,
} from "@optimizely/optimizely-sdk";
import { afterAll, describe, expect, it } from "vitest";
import {
  compileDatafile,
  decideAll,
  decideExperiment,
  formatProblems,
  loadDatafile,
  parseDatafile,
  type CompiledDatafile,
  type Datafile,
  type Decision,
  type DecisionReason,
  type Visitor,
} from "../../src/core/index";
import {
  describeValue,
  experimentKeys,
  generateDatafile,
  generateVisitors,
  rolloutRuleKeys,
  SDK_ONLY_QUIRKS,
  type GenerateDatafileOptions,
  type GenerateVisitorsOptions,
  type GeneratedVisitor,
} from "../support/generate-datafile";

interface Scenario {
  name: string;
  seed: number;
  visitors: number;
  datafile: GenerateDatafileOptions;
  visitorOptions?: GenerateVisitorsOptions;
  /** Whether Splitstream's validator must accept the datafile. */
  valid: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: "valid datafile", seed: 1, visitors: 5000, datafile: {}, valid: true },
  {
    name: "valid, many mutually exclusive groups",
    seed: 2,
    visitors: 5000,
    datafile: { randomGroups: 6, experimentsPerGroup: [2, 6], experiments: 20 },
    valid: true,
  },
  {
    name: "valid, Object.prototype attribute names",
    seed: 3,
    visitors: 5000,
    datafile: { prototypeNames: true },
    visitorOptions: { prototypeNames: true, invalidRate: 0.03 },
    valid: true,
  },
  {
    name: "SDK-only quirks",
    seed: 4,
    visitors: 5000,
    datafile: SDK_ONLY_QUIRKS,
    visitorOptions: { prototypeNames: true },
    valid: false,
  },
  {
    name: "SDK-only quirks, more dangling audiences",
    seed: 5,
    visitors: 5000,
    datafile: { ...SDK_ONLY_QUIRKS, danglingAudienceRate: 0.5 },
    valid: false,
  },
  // ---- SDK behaviours mirrored on purpose: sticky attribute map, CMAB, feature-rollout rules ----
  {
    name: "$opt_experiment_bucket_map attribute",
    seed: 6,
    visitors: 1000,
    datafile: {},
    visitorOptions: { bucketMapRate: 0.3 },
    valid: true,
  },
  {
    name: "cmab experiments",
    seed: 7,
    visitors: 1000,
    datafile: { cmabRate: 0.3 },
    valid: true,
  },
  {
    name: "Feature Rollout (type fr) experiments",
    seed: 8,
    visitors: 1000,
    datafile: { featureRolloutRate: 1, featureFlags: 6 },
    valid: true,
  },
];

/**
 * Errors Splitstream's validator reports for SDK-loadable content that the generator's
 * SDK_ONLY_QUIRKS produce. Any other error fails the test.
 */
const SDK_ONLY_ERRORS: readonly RegExp[] = [
  /^unknown audience id /,
  /is not a variation key of this experiment$/,
  /is not a variation id of this experiment/,
  /is not an experiment id of this group/,
  /^expected a condition object \{type, name, match, value\} or a nested array, got /,
  /^expected string, got null$/, // match: null
  /^endOfRange must be /,
];

const MAX_REPORTED = 5;

async function sdkClient(datafileJson: string): Promise<Client> {
  // No logger, no event processor, no ODP: only decisions.
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({ datafile: datafileJson }),
  });
  await client.onReady({ timeout: 10000 });
  return client;
}

const clients: Client[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** The SDK's answer; it swallows its own errors and returns null, but be safe. */
function sdkVariation(client: Client, key: string, visitor: GeneratedVisitor): string | null {
  try {
    return client.getVariation(
      key,
      visitor.visitorId as string,
      visitor.attributes as Record<string, never> | undefined,
    );
  } catch (error) {
    return `<SDK threw: ${String(error)}>`;
  }
}

function ourVisitor(visitor: GeneratedVisitor): Visitor {
  return { visitorId: visitor.visitorId, attributes: visitor.attributes } as Visitor;
}

function experimentContext(datafile: Datafile, key: string): string {
  const lines: string[] = [];
  const group = datafile.groups.find((g) => g.experiments.some((e) => e.key === key));
  const experiment =
    datafile.experiments.find((e) => e.key === key) ??
    group?.experiments.find((e) => e.key === key) ??
    datafile.rollouts.flatMap((r) => r.experiments).find((e) => e.key === key);
  lines.push(`    experiment: ${experiment ? JSON.stringify(experiment) : "(none with this key)"}`);
  if (group) {
    lines.push(
      `    group: ${JSON.stringify({ id: group.id, policy: group.policy, trafficAllocation: group.trafficAllocation })}`,
    );
  }
  if (experiment) {
    const ids = new Set<string>(experiment.audienceIds);
    const walk = (t: unknown): void => {
      if (Array.isArray(t)) t.forEach(walk);
      else if (typeof t === "string") ids.add(t);
    };
    walk(experiment.audienceConditions);
    for (const id of ids) {
      const typed = datafile.typedAudiences?.find((a) => a.id === id);
      const legacy = datafile.audiences.find((a) => a.id === id);
      if (typed)
        lines.push(
          `    audience ${id} (typed${legacy ? ", overrides legacy" : ""}): ${JSON.stringify(typed.conditions)}`,
        );
      else if (legacy) lines.push(`    audience ${id} (legacy): ${String(legacy.conditions)}`);
      else if (!["and", "or", "not"].includes(id))
        lines.push(`    audience ${id}: (not in the datafile)`);
    }
  }
  return lines.join("\n");
}

function describeDecision(d: Decision | undefined): string {
  if (!d) return "(no entry)";
  return `${JSON.stringify(d.variationKey)} (reason ${d.reason}, bucket ${d.bucket})`;
}

interface Mismatch {
  key: string;
  visitorIndex: number;
  sdk: string | null;
  one: Decision;
  all: Decision | undefined;
}

function mismatchReport(
  scenario: Scenario,
  datafile: Datafile,
  visitors: GeneratedVisitor[],
  mismatches: Mismatch[],
  checked: number,
): string {
  const byKey = new Map<string, number>();
  for (const m of mismatches) byKey.set(m.key, (byKey.get(m.key) ?? 0) + 1);
  const lines = [
    `${mismatches.length} of ${checked} decisions differ from the SDK in scenario "${scenario.name}" ` +
      `(seed ${scenario.seed}; reproduce with generateDatafile(${scenario.seed}, ${JSON.stringify(scenario.datafile)}) and ` +
      `generateVisitors(${scenario.seed}, ${scenario.visitors}, datafile, ${JSON.stringify(scenario.visitorOptions ?? {})})).`,
    `By experiment: ${[...byKey].map(([k, n]) => `${JSON.stringify(k)}×${n}`).join(", ")}`,
  ];
  mismatches.slice(0, MAX_REPORTED).forEach((m, i) => {
    const v = visitors[m.visitorIndex]!;
    lines.push(
      `#${i + 1} experiment ${JSON.stringify(m.key)}, visitor #${m.visitorIndex}`,
      `    visitorId: ${describeValue(v.visitorId)}`,
      `    attributes: ${describeValue(v.attributes)}`,
      `    SDK getVariation → ${JSON.stringify(m.sdk)}`,
      `    decideExperiment → ${describeDecision(m.one)}`,
      `    decideAll entry  → ${describeDecision(m.all)}`,
      experimentContext(datafile, m.key),
    );
  });
  return lines.join("\n");
}

/** Totals over all scenarios, printed at the end. */
const totals = { visitors: 0, experiments: 0, decisions: 0, sdkMs: 0, oursMs: 0, allMs: 0 };

describe("parity with @optimizely/optimizely-sdk getVariation (docs/decisions.md)", () => {
  it("bucketing vectors through both implementations", async () => {
    // Allocation boundaries sit exactly on the docs/decisions.md buckets, so an off-by-one anywhere
    // (hash, UTF-8, float maths, `<` vs `<=`) picks a neighbouring variation.
    const v = (id: string, key: string) => ({ id, key });
    const datafile = {
      version: "4",
      accountId: "1",
      projectId: "1",
      revision: "1",
      attributes: [],
      audiences: [],
      events: [],
      featureFlags: [],
      rollouts: [],
      experiments: [
        {
          id: "1886780721",
          key: "vectors_721",
          status: "Running",
          layerId: "l1",
          audienceIds: [],
          forcedVariations: {},
          variations: [
            v("a0", "below_4299"),
            v("a1", "at_4299"),
            v("a2", "below_5254"),
            v("a3", "at_5254"),
            v("a4", "below_5439"),
            v("a5", "at_5439"),
            v("a6", "rest"),
          ],
          trafficAllocation: [
            { entityId: "a0", endOfRange: 4299 },
            { entityId: "a1", endOfRange: 4300 },
            { entityId: "a2", endOfRange: 5254 },
            { entityId: "a3", endOfRange: 5255 },
            { entityId: "a4", endOfRange: 5439 },
            { entityId: "a5", endOfRange: 5440 },
            { entityId: "a6", endOfRange: 10000 },
          ],
        },
        {
          id: "1886780722",
          key: "vectors_722",
          status: "Running",
          layerId: "l2",
          audienceIds: [],
          forcedVariations: {},
          variations: [v("b0", "below_2434"), v("b1", "at_2434"), v("b2", "rest")],
          trafficAllocation: [
            { entityId: "b0", endOfRange: 2434 },
            { entityId: "b1", endOfRange: 2435 },
            { entityId: "b2", endOfRange: 10000 },
          ],
        },
      ],
      groups: [
        {
          // Group bucketing hashes bucketingId + groupId: only bucket 4299 (ppid2) gets in.
          id: "1886780721",
          policy: "random",
          trafficAllocation: [
            { entityId: "", endOfRange: 4299 },
            { entityId: "77", endOfRange: 4300 },
            { entityId: "", endOfRange: 10000 },
          ],
          experiments: [
            {
              id: "77",
              key: "grouped_vector",
              status: "Running",
              layerId: "l3",
              audienceIds: [],
              forcedVariations: {},
              variations: [v("c0", "in_group")],
              trafficAllocation: [{ entityId: "c0", endOfRange: 10000 }],
            },
          ],
        },
      ],
    };
    const json = JSON.stringify(datafile);
    const loaded = loadDatafile(json);
    if (!loaded.ok) expect.fail(formatProblems(loaded.problems));
    const client = await sdkClient(json);
    clients.push(client);
    const cases: Array<
      [visitor: Visitor, key: string, variation: string | null, bucket: number | null]
    > = [
      [{ visitorId: "ppid1" }, "vectors_721", "at_5254", 5254],
      [{ visitorId: "ppid2" }, "vectors_721", "at_4299", 4299],
      [{ visitorId: "ppid3" }, "vectors_721", "at_5439", 5439],
      [{ visitorId: "ppid2" }, "vectors_722", "at_2434", 2434],
      [
        { visitorId: "someone", attributes: { $opt_bucketing_id: "ppid1" } },
        "vectors_721",
        "at_5254",
        5254,
      ],
      [
        { visitorId: "ppid1", attributes: { $opt_bucketing_id: 42 } },
        "vectors_721",
        "at_5254",
        5254,
      ],
      [{ visitorId: "ppid2" }, "grouped_vector", "in_group", 0],
      [{ visitorId: "ppid1" }, "grouped_vector", null, null],
      [
        { visitorId: "x", attributes: { $opt_bucketing_id: "ppid2" } },
        "grouped_vector",
        "in_group",
        0,
      ],
    ];
    for (const [visitor, key, variation, bucket] of cases) {
      const label = `${key} for ${JSON.stringify(visitor)}`;
      expect(
        client.getVariation(key, visitor.visitorId, visitor.attributes as Record<string, string>),
        `SDK: ${label}`,
      ).toBe(variation);
      const d = decideExperiment(loaded.compiled, key, visitor);
      expect(d.variationKey, `decideExperiment: ${label}`).toBe(variation);
      if (variation !== null && key !== "grouped_vector")
        expect(d.bucket, `bucket: ${label}`).toBe(bucket);
      expect(
        decideAll(loaded.compiled, visitor).find((x) => x.experimentKey === key)?.variationKey,
        `decideAll: ${label}`,
      ).toBe(variation);
    }
  });

  for (const scenario of SCENARIOS) {
    const title = `${scenario.name} (seed ${scenario.seed}, ${scenario.visitors} visitors × every experiment)`;
    it(
      title,
      async () => {
        const generated = generateDatafile(scenario.seed, scenario.datafile);
        const json = JSON.stringify(generated);
        // Both sides get the same JSON text (JSON turns -0 into 0, etc.).
        const datafile = JSON.parse(json) as Datafile;

        // --- our side: validate, then compile
        let compiled: CompiledDatafile;
        const parsed = parseDatafile(json);
        const errors = parsed.problems.filter((p) => p.severity === "error");
        if (scenario.valid) {
          expect(errors, `validator errors:\n${formatProblems(errors)}`).toEqual([]);
          const loaded = loadDatafile(json);
          if (!loaded.ok) return expect.fail(formatProblems(loaded.problems));
          compiled = loaded.compiled;
        } else {
          expect(
            parsed.ok,
            "the SDK-only quirks should make the validator reject this datafile",
          ).toBe(false);
          const unexpected = errors.filter(
            (p) => !SDK_ONLY_ERRORS.some((re) => re.test(p.message)),
          );
          expect(unexpected, `unexpected validator errors:\n${formatProblems(unexpected)}`).toEqual(
            [],
          );
          compiled = compileDatafile(datafile);
        }

        // --- the oracle
        const client = await sdkClient(json);
        clients.push(client);

        const visitors = generateVisitors(
          scenario.seed,
          scenario.visitors,
          datafile,
          scenario.visitorOptions,
        );
        const experiments = experimentKeys(datafile);
        // Rollout rules and unknown keys must be null on both sides.
        const keys = [
          ...experiments,
          ...rolloutRuleKeys(datafile),
          "no_such_experiment",
          "",
          "constructor",
          "__proto__",
          "toString",
        ];

        // Pass 1: the SDK.
        let t0 = performance.now();
        const expected = new Array<string | null>(visitors.length * keys.length);
        for (let i = 0; i < visitors.length; i++) {
          const visitor = visitors[i]!;
          for (let k = 0; k < keys.length; k++)
            expected[i * keys.length + k] = sdkVariation(client, keys[k]!, visitor);
        }
        const sdkMs = performance.now() - t0;

        // Pass 2: decideExperiment, key by key.
        t0 = performance.now();
        const one = new Array<Decision>(visitors.length * keys.length);
        for (let i = 0; i < visitors.length; i++) {
          const visitor = ourVisitor(visitors[i]!);
          for (let k = 0; k < keys.length; k++)
            one[i * keys.length + k] = decideExperiment(compiled, keys[k]!, visitor);
        }
        const oursMs = performance.now() - t0;

        // Pass 3: decideAll, once per visitor.
        t0 = performance.now();
        const all = visitors.map((v) => decideAll(compiled, ourVisitor(v)));
        const allMs = performance.now() - t0;

        // Compare.
        const mismatches: Mismatch[] = [];
        const reasons = new Map<DecisionReason, number>();
        let nonNull = 0;
        for (let i = 0; i < visitors.length; i++) {
          const decisions = all[i]!;
          expect(
            decisions.map((d) => d.experimentKey),
            "decideAll: every experiment, top-level then grouped, in datafile order",
          ).toEqual(experiments);
          for (let k = 0; k < keys.length; k++) {
            const sdk = expected[i * keys.length + k]!;
            const d = one[i * keys.length + k]!;
            const entry = k < experiments.length ? decisions[k] : undefined;
            reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
            if (sdk !== null) nonNull++;
            if (d.variationKey !== sdk || (entry?.variationKey ?? null) !== sdk) {
              mismatches.push({ key: keys[k]!, visitorIndex: i, sdk, one: d, all: entry });
            }
          }
        }
        const checked = visitors.length * keys.length;
        if (mismatches.length > 0)
          expect.fail(mismatchReport(scenario, datafile, visitors, mismatches, checked));

        // The generator must exercise every step, or "100 % equal" proves little.
        const wanted: DecisionReason[] = [
          "experiment_not_found",
          "invalid_visitor",
          "not_running",
          "forced_variation",
          "audience_mismatch",
          "excluded_by_group",
          "outside_traffic",
          "bucketed",
        ];
        for (const reason of wanted)
          expect(reasons.get(reason) ?? 0, `decisions with reason ${reason}`).toBeGreaterThan(0);
        expect(nonNull / checked, "share of decisions with a variation").toBeGreaterThan(0.05);

        totals.visitors += visitors.length;
        totals.experiments += experiments.length;
        totals.decisions += checked;
        totals.sdkMs += sdkMs;
        totals.oursMs += oursMs;
        totals.allMs += allMs;
        console.info(
          `parity ${scenario.name}: ${visitors.length} visitors × ${keys.length} keys (${experiments.length} experiments) = ${checked} decisions, ` +
            `${nonNull} with a variation; SDK ${sdkMs.toFixed(0)} ms, decideExperiment ${oursMs.toFixed(0)} ms, decideAll ${allMs.toFixed(0)} ms; ` +
            `reasons ${JSON.stringify(Object.fromEntries(reasons))}`,
        );
      },
      120_000,
    );
  }

  it("covers at least 20,000 visitors in total", () => {
    // Runs last (vitest runs a file's tests in order); `totals` is filled by the scenarios above.
    expect(totals.visitors).toBeGreaterThanOrEqual(20_000);
    console.info(
      `parity total: ${totals.visitors} visitors, ${totals.decisions} decisions over ${totals.experiments} experiments; ` +
        `SDK ${totals.sdkMs.toFixed(0)} ms, decideExperiment ${totals.oursMs.toFixed(0)} ms, decideAll ${totals.allMs.toFixed(0)} ms`,
    );
  });
});
