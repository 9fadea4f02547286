/**
 * Seeded generator of Optimizely v4 datafiles centred on feature flags, for the `decide(flagKey)`
 * parity tests (test/core/flag-parity.test.ts, test/core/cli-flags.test.ts). It starts from
 * {@link generateDatafile} without flags (audiences, experiments, groups, whitelists and statuses
 * come from there, unchanged) and adds, with its own PRNG stream:
 *
 * - flags with variables of every type: boolean, integer, double, string, json (`type: "json"`)
 *   and json the old way (`type: "string", subType: "json"`), with defaults;
 * - experiment rules: existing experiments (top-level, in mutually exclusive or overlapping groups,
 *   any status, some with whitelists, some contextual bandits) referenced by `experimentIds`, their
 *   variations given `featureEnabled` and variable values — some variables left out, so the
 *   defaults apply — and some turned into Feature Rollouts (`type: "fr"`), a few of those with a
 *   variation whose key is also the Everyone Else variation's key;
 * - rollouts: targeted delivery rules (audiences, traffic 0..10000 including partial, one or two
 *   variations, any status, whitelists that the SDK ignores for delivery rules), then an Everyone
 *   Else rule delivering an enabled variation or a featureEnabled:false "off" one; and flags with
 *   no rollout (`rolloutId: ""`), a rollout without rules, or no experiment rules.
 *
 * Deterministic for a seed and options; every datafile loads in the SDK and passes Splitstream's
 * validator (with warnings at most: lossy variable values such as "1.5" for an integer).
 *
 * Last, the official SDK as the oracle of `decide(flagKey)` for those tests ({@link sdkDecide}).
 */
import {
  createInstance,
  createStaticProjectConfigManager,
  type Client,
  type OptimizelyDecision,
  type OptimizelyUserContext,
} from "@optimizely/optimizely-sdk";
import type {
  AudienceConditionTree,
  Datafile,
  Experiment,
  FeatureFlag,
  Rollout,
  TrafficAllocationEntry,
  VariableDef,
  VariableUsage,
  Variation,
} from "../../src/core/datafile-types";
import {
  generateDatafile,
  Rng,
  type GenerateDatafileOptions,
  type GeneratedVisitor,
} from "./generate-datafile";

/** The six ways a variable is typed in a datafile (json twice: the type, and string + subType). */
export const VARIABLE_KINDS = [
  "boolean",
  "integer",
  "double",
  "string",
  "json",
  "string/json",
] as const;
export type VariableKind = (typeof VARIABLE_KINDS)[number];

/** The kind of a variable definition as written in the datafile. */
export function variableKind(variable: Pick<VariableDef, "type" | "subType">): VariableKind {
  if (variable.type === "string" && variable.subType === "json") return "string/json";
  return variable.type;
}

/** Options for {@link generateFlagDatafile}. Every option has a default. */
export interface GenerateFlagsOptions {
  /**
   * Options of the base datafile (audiences, experiments, groups). `featureFlags` is always 0
   * there: the flags are made here. Default: 12 experiments, 2 random groups of 2–4.
   */
  base?: Omit<GenerateDatafileOptions, "featureFlags" | "featureRolloutRate">;
  /** Number of feature flags. Default: 16. */
  flags?: number;
  /** Probability that an experiment rule is a Feature Rollout (`type: "fr"`). Default: 0.2. */
  featureRolloutRate?: number;
  /** Probability that a flag has no rollout at all (`rolloutId: ""`). Default: 0.1. */
  noRolloutRate?: number;
  /** Probability that a delivery rule has a whitelist (which the SDK ignores). Default: 0.15. */
  ruleWhitelistRate?: number;
}

const VARIABLE_KEYS = [
  "color",
  "size",
  "price",
  "ratio",
  "enabled",
  "config",
  "label",
  "limit",
  "payload",
  "title",
  "ünïcødé 🦄",
  "toString",
  "constructor",
  "1",
  "2",
];

const BOOLEAN_VALUES = ["true", "false"];
/** Integers, with some the SDK reads lossily (validator warnings): parseInt semantics. */
const INTEGER_VALUES = [
  "0",
  "1",
  "-5",
  "42",
  "1000000",
  "9007199254740993",
  "-2147483649",
  "1.5",
  "12abc",
  " 7",
];
/** Doubles, with -0, exponents, Infinity (JSON has none: it prints as null) and lossy ones. */
const DOUBLE_VALUES = [
  "0",
  "-0",
  "0.5",
  "3.14159",
  "-1e-7",
  "1e21",
  "100",
  "Infinity",
  "2.5kg",
  "0.1",
];
const STRING_VALUES = [
  "",
  "red",
  "blue",
  "🦄 unicode ключ 用户",
  'with "quotes" and \\ backslash',
  "null",
  "true",
  '{"looks":"like json"}',
  "line\nbreak",
  "\u00e9",
];
const JSON_VALUES = [
  "{}",
  "[]",
  '{"a":1,"b":[1,2,{"c":null}],"d":"x"}',
  '{"nested":{"deep":{"deeper":[true,false]}}}',
  '"just a string"',
  "42",
  "-0.5",
  "null",
  "true",
  '{"ü":"🦄","1":"integer-like key","a":1}',
  '[{"id":1},{"id":2}]',
  '{"big":1e300,"small":-1e-300}',
];

function valueFor(rng: Rng, kind: VariableKind): string {
  switch (kind) {
    case "boolean":
      return rng.pick(BOOLEAN_VALUES);
    case "integer":
      return rng.pick(INTEGER_VALUES);
    case "double":
      return rng.pick(DOUBLE_VALUES);
    case "string":
      return rng.pick(STRING_VALUES);
    default:
      return rng.pick(JSON_VALUES);
  }
}

/** Every experiment of the datafile that can be a flag's A/B rule: top-level, then grouped. */
function allExperiments(datafile: Datafile): Experiment[] {
  return [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)];
}

/**
 * Generates a datafile with feature flags (see the module comment). Deterministic for a given
 * seed and options.
 */
export function generateFlagDatafile(seed: number, options: GenerateFlagsOptions = {}): Datafile {
  const datafile = generateDatafile(seed, {
    experiments: 12,
    randomGroups: 2,
    experimentsPerGroup: [2, 4],
    ...options.base,
    featureFlags: 0,
  });
  const rng = new Rng(seed ^ 0x2545f491);
  const flagCount = options.flags ?? 16;
  const featureRolloutRate = options.featureRolloutRate ?? 0.2;
  const noRolloutRate = options.noRolloutRate ?? 0.1;
  const ruleWhitelistRate = options.ruleWhitelistRate ?? 0.15;

  // Ids: numeric strings like Optimizely's, below 2^32 for some seeds (integer-like object keys,
  // which JavaScript orders first) and above for others; a few Optimizely-style text ids.
  const idBase = rng.chance(0.5) ? 3_000_000_000 : 9_500_000_000;
  let counter = 0;
  const nextId = (): string => {
    counter++;
    return rng.chance(0.05)
      ? `flag_id_${counter}_${rng.pick(["x", "é"])}`
      : String(idBase + counter * 7);
  };

  const audienceIds = [
    ...new Set([
      ...datafile.audiences.map((a) => a.id),
      ...(datafile.typedAudiences ?? []).map((a) => a.id),
    ]),
  ];
  // Visitor ids in whitelists: generateVisitors picks some visitors' ids from these.
  const whitelistIds = [
    ...new Set(allExperiments(datafile).flatMap((e) => Object.keys(e.forcedVariations))),
  ];
  const pool = rng.shuffle(allExperiments(datafile));
  const usedKeys = new Set<string>([
    ...allExperiments(datafile).map((e) => e.key),
    ...datafile.featureFlags.map((f) => f.key),
  ]);
  const uniqueKey = (base: string): string => {
    let key = base;
    for (let n = 2; usedKeys.has(key); n++) key = `${base}_${n}`;
    usedKeys.add(key);
    return key;
  };

  const usagesFor = (variables: readonly VariableDef[]): VariableUsage[] => {
    // Some variables left out (the default applies), in a shuffled order.
    const usages: VariableUsage[] = [];
    for (const variable of rng.shuffle(variables)) {
      if (rng.chance(0.75))
        usages.push({ id: variable.id, value: valueFor(rng, variableKind(variable)) });
    }
    return usages;
  };

  const audienceTargeting = (): Pick<Experiment, "audienceIds" | "audienceConditions"> => {
    if (audienceIds.length === 0) return { audienceIds: [] };
    const shape = rng.weighted<string>([
      [3, "none"],
      [4, "ids"],
      [3, "tree"],
    ]);
    if (shape === "none") return { audienceIds: [], audienceConditions: [] };
    if (shape === "ids") return { audienceIds: [rng.pick(audienceIds)] };
    const ids = Array.from({ length: rng.int(1, 3) }, () => rng.pick(audienceIds));
    const tree: AudienceConditionTree = rng.weighted<AudienceConditionTree>([
      [3, ["or", ...ids]],
      [2, ["and", ...ids]],
      [1, ["not", ids[0]!]],
    ]);
    return { audienceIds: ids, audienceConditions: tree };
  };

  const ruleWhitelist = (keys: readonly string[]): Record<string, string> => {
    const forced: Record<string, string> = {};
    if (whitelistIds.length > 0 && rng.chance(ruleWhitelistRate)) {
      for (let i = rng.int(1, 2); i > 0; i--) forced[rng.pick(whitelistIds)] = rng.pick(keys);
    }
    return forced;
  };

  const featureFlags: FeatureFlag[] = [];
  const rollouts: Rollout[] = [];
  for (let f = 0; f < flagCount; f++) {
    const flagId = nextId();
    const flagKey = uniqueKey(
      rng.weighted<string>([
        [8, `flag_${f}`],
        [1, `🚩 flag ${f}`],
        [1, String(100 + f)], // integer-like: JavaScript objects put it first
      ]),
    );

    // Variables: every kind appears across the datafile; 0–6 per flag.
    const variableCount = rng.weighted<number>([
      [1, 0],
      [2, 1],
      [3, 3],
      [3, 5],
      [2, 6],
    ]);
    const keys = rng.shuffle(VARIABLE_KEYS).slice(0, variableCount);
    const variables: VariableDef[] = keys.map((key, i) => {
      const kind =
        i < VARIABLE_KINDS.length
          ? VARIABLE_KINDS[(f + i) % VARIABLE_KINDS.length]!
          : rng.pick(VARIABLE_KINDS);
      const variable: VariableDef = {
        id: nextId(),
        key,
        type: kind === "string/json" ? "string" : kind,
        defaultValue: valueFor(rng, kind),
      };
      if (kind === "string/json") variable.subType = "json";
      return variable;
    });

    // Rollout: none, empty, or targeted delivery rules then Everyone Else.
    let rolloutId = "";
    let everyoneElseVariation: Variation | undefined;
    const rolloutShape = rng.chance(noRolloutRate) ? "none" : rng.chance(0.04) ? "empty" : "rules";
    if (rolloutShape !== "none") {
      rolloutId = nextId();
      const rules: Experiment[] = [];
      if (rolloutShape === "rules") {
        const targeted = rng.weighted<number>([
          [2, 0],
          [4, 1],
          [3, 2],
          [2, 3],
        ]);
        for (let r = 0; r <= targeted; r++) {
          const everyoneElse = r === targeted;
          const ruleId =
            everyoneElse && rng.chance(0.3) ? `default-rollout-${rolloutId}-${flagId}` : nextId();
          const enabledOn = everyoneElse ? rng.chance(0.5) : rng.chance(0.85);
          const variations: Variation[] = [
            {
              id: nextId(),
              key: enabledOn ? "on" : "off",
              featureEnabled: enabledOn,
              variables: usagesFor(variables),
            },
          ];
          // An occasional second variation (a split inside the rule).
          if (!everyoneElse && rng.chance(0.12)) {
            variations.push({
              id: nextId(),
              key: enabledOn ? "on_b" : "off_b",
              featureEnabled: rng.chance(0.5),
              variables: usagesFor(variables),
            });
          }
          const end = everyoneElse
            ? rng.weighted<number>([
                [6, 10000],
                [1, 5000],
                [1, 0],
                [1, rng.int(1, 9999)],
              ])
            : rng.weighted<number>([
                [3, 10000],
                [2, 5000],
                [2, 2500],
                [1, 0],
                [3, rng.int(1, 9999)],
              ]);
          let trafficAllocation: TrafficAllocationEntry[] = [
            { entityId: variations[0]!.id, endOfRange: end },
          ];
          if (variations.length === 2) {
            trafficAllocation = [
              { entityId: variations[0]!.id, endOfRange: Math.floor(end / 2) },
              { entityId: variations[1]!.id, endOfRange: end },
            ];
          }
          if (!everyoneElse && rng.chance(0.03)) trafficAllocation = [];
          const targeting: Pick<Experiment, "audienceIds" | "audienceConditions"> = everyoneElse
            ? rng.chance(0.92)
              ? { audienceIds: [], audienceConditions: [] }
              : audienceTargeting() // odd, but the SDK evaluates it
            : audienceTargeting();
          rules.push({
            id: ruleId,
            key: everyoneElse ? ruleId : uniqueKey(`${flagKey}_targeted_${r}`),
            // Delivery rules are decided whatever their status (like the SDK).
            status: rng.weighted<string>([
              [12, "Running"],
              [2, "Paused"],
              [1, "Not started"],
              [1, "Archived"],
            ]),
            layerId: everyoneElse ? `default-layer-${ruleId}` : nextId(),
            variations,
            trafficAllocation,
            ...targeting,
            forcedVariations: ruleWhitelist(variations.map((v) => v.key)),
          });
          if (everyoneElse) usedKeys.add(ruleId);
        }
        everyoneElseVariation = rules[rules.length - 1]!.variations[0];
      }
      rollouts.push({ id: rolloutId, experiments: rules });
    }

    // Experiment rules (A/B tests): 0–3 existing experiments, each used by one flag only.
    const experimentIds: string[] = [];
    const ruleCount = rng.weighted<number>([
      [3, 0],
      [4, 1],
      [2, 2],
      [1, 3],
    ]);
    for (let k = 0; k < ruleCount && pool.length > 0; k++) {
      const experiment = pool.pop()!;
      for (const variation of experiment.variations) {
        variation.featureEnabled = rng.chance(0.6);
        variation.variables = usagesFor(variables);
      }
      if (everyoneElseVariation && rng.chance(featureRolloutRate)) {
        experiment.type = "fr";
        // The SDK adds the Everyone Else variation to the rule's key map: a variation of the rule
        // with the same key is then read as that variation (its featureEnabled and variables).
        const key = everyoneElseVariation.key;
        if (rng.chance(0.4) && !experiment.variations.some((v) => v.key === key)) {
          const renamed = experiment.variations[0];
          if (renamed) {
            for (const [visitor, forced] of Object.entries(experiment.forcedVariations))
              if (forced === renamed.key) experiment.forcedVariations[visitor] = key;
            renamed.key = key;
          }
        }
      } else if (rng.chance(0.3)) {
        experiment.type = "ab";
      }
      experimentIds.push(experiment.id);
    }

    featureFlags.push({ id: flagId, key: flagKey, rolloutId, experimentIds, variables });
  }

  datafile.featureFlags = featureFlags;
  datafile.rollouts = rollouts;
  return datafile;
}

/** The datafile with every flag's experiment rules removed: the SDK oracle for delivery-only deciding. */
export function withoutExperimentRules(datafile: Datafile): Datafile {
  const copy = JSON.parse(JSON.stringify(datafile)) as Datafile;
  for (const flag of copy.featureFlags) flag.experimentIds = [];
  return copy;
}

/** The datafile with every flag's rules removed: the SDK then decides every flag off, with its defaults. */
export function withoutRules(datafile: Datafile): Datafile {
  const copy = withoutExperimentRules(datafile);
  for (const flag of copy.featureFlags) flag.rolloutId = "";
  return copy;
}

// ---------------------------------------------------------------------------------------------
// The official SDK as the oracle of flag decisions
// ---------------------------------------------------------------------------------------------

/** What the parity tests compare of an SDK `OptimizelyDecision` (userContext and reasons aside). */
export interface SdkFlagDecision {
  flagKey: string;
  enabled: boolean;
  variationKey: string | null;
  ruleKey: string | null;
  variables: Record<string, unknown>;
}

/**
 * One SDK answer for a visitor and flag: a decision; no user context at all (`createUserContext`
 * throws for an invalid id or attributes); or `decide` itself threw.
 */
export type SdkFlagOutcome =
  | { kind: "decision"; decision: SdkFlagDecision }
  | { kind: "invalid_user"; error: string }
  | { kind: "threw"; error: string };

/** A loaded SDK client: static config, no logger, no event processor, no ODP — only decisions. */
export async function sdkFlagClient(datafileJson: string): Promise<Client> {
  const client = createInstance({
    projectConfigManager: createStaticProjectConfigManager({ datafile: datafileJson }),
  });
  await client.onReady({ timeout: 10000 });
  return client;
}

/** The SDK's user context for a generated visitor, or why it has none. */
export function sdkUser(
  client: Client,
  visitor: GeneratedVisitor,
): OptimizelyUserContext | { error: string } {
  try {
    return client.createUserContext(
      visitor.visitorId as string,
      visitor.attributes as Record<string, never> | undefined,
    );
  } catch (error) {
    return { error: String(error) };
  }
}

function pick(d: OptimizelyDecision): SdkFlagDecision {
  return {
    flagKey: d.flagKey,
    enabled: d.enabled,
    variationKey: d.variationKey,
    ruleKey: d.ruleKey,
    variables: d.variables,
  };
}

/** `user.decide(flagKey)`, as an outcome. */
export function sdkDecide(
  user: OptimizelyUserContext | { error: string },
  flagKey: string,
): SdkFlagOutcome {
  if ("error" in user) return { kind: "invalid_user", error: user.error };
  try {
    return { kind: "decision", decision: pick(user.decide(flagKey)) };
  } catch (error) {
    return { kind: "threw", error: String(error) };
  }
}

/** `user.decideAll()` by flag key, or the outcome that stands for every flag. */
export function sdkDecideAll(
  user: OptimizelyUserContext | { error: string },
): Record<string, SdkFlagDecision> | Exclude<SdkFlagOutcome, { kind: "decision" }> {
  if ("error" in user) return { kind: "invalid_user", error: user.error };
  try {
    const all = user.decideAll();
    const out: Record<string, SdkFlagDecision> = {};
    for (const key of Object.keys(all)) out[key] = pick(all[key]!);
    return out;
  } catch (error) {
    return { kind: "threw", error: String(error) };
  }
}

/**
 * Every flag's default variables as the SDK casts them: decided on a copy of the datafile without
 * rules, where every flag is off. What Splitstream gives where the SDK has no decision.
 */
export async function sdkDefaultVariables(
  datafile: Datafile,
): Promise<Map<string, Record<string, unknown>>> {
  const client = await sdkFlagClient(JSON.stringify(withoutRules(datafile)));
  try {
    const all = client.createUserContext("defaults").decideAll();
    return new Map(Object.keys(all).map((key) => [key, all[key]!.variables]));
  } finally {
    await client.close();
  }
}
