/**
 * Seeded generators of Optimizely v4 datafiles and visitors, for the SDK-parity test
 * (test/core/parity.test.ts), benchmarks and any other test that needs realistic — and
 * deliberately nasty — input. Everything is deterministic for a given seed: no Math.random,
 * no clock.
 *
 * The datafiles are valid for the official SDK (it loads them unchanged) and exercise every
 * corner of `getVariation`: statuses, holes and partial traffic, 0 % traffic, whitelists naming
 * missing variations, mutually exclusive and overlapping groups, legacy (JSON-string) and typed
 * audiences (typed overriding same-id legacy placeholders), `audienceIds` vs `audienceConditions`
 * trees, every match type with wrong-typed and out-of-range values, non-`custom_attribute`
 * condition types, implicit-or trees, feature flags and rollouts.
 */
import type {
  Audience,
  AudienceConditionTree,
  Datafile,
  Experiment,
  FeatureFlag,
  Group,
  LeafCondition,
  Rollout,
  TrafficAllocationEntry,
  TypedAudience,
  Variation,
} from "../../src/core/datafile-types";

// ---------------------------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny, fast, well-distributed 32-bit PRNG. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Convenience helpers over a PRNG. */
export class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  /** Float in [0, 1). */
  float(): number {
    return this.next();
  }
  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** Picks by weight: `[[weight, value], …]`. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, v] of entries) {
      r -= w;
      if (r < 0) return v;
    }
    return entries[entries.length - 1]![1];
  }
  /** A random subset (order preserved) of up to `max` items. */
  subset<T>(items: readonly T[], max: number): T[] {
    const out: T[] = [];
    for (const item of items)
      if (out.length < max && this.chance(max / Math.max(items.length, 1))) out.push(item);
    return out;
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Value pools shared by datafile and visitor generation
// ---------------------------------------------------------------------------------------------

const TWO_53 = 2 ** 53;

/** Attribute names conditions are written against (visitors mostly use the same names). */
export const ATTRIBUTE_NAMES = [
  "country",
  "plan",
  "age",
  "score",
  "ratio",
  "beta",
  "app_version",
  "big",
  "label",
  "emoji",
  "geo.country",
  "device.type",
  "visitor.new",
  "time.hour",
  "$opt_bucketing_id",
  "Ünïcødé ключ",
] as const;

/**
 * Names inherited from Object.prototype: the SDK reads attributes with plain property access
 * (`attributes[name]`) in some places and `hasOwnProperty` in others, so these are a parity
 * trap. Only used when `GenerateDatafileOptions.prototypeNames` is on.
 */
export const PROTOTYPE_NAMES = ["constructor", "toString", "__proto__", "hasOwnProperty"] as const;

const STRING_VALUES = [
  "",
  "us",
  "US",
  "gb",
  "de",
  "free",
  "pro",
  "Pro",
  "enterprise",
  "pro plan",
  "42",
  "-1",
  "1.5",
  "true",
  "false",
  "null",
  "undefined",
  "desktop",
  "mobile",
  "🦄",
  "👩‍👩‍👧",
  "用户",
  "ключ",
  "e\u0301",
  "\u00e9",
  "\uD800",
  "\uDFFFx",
  "a\u0000b",
  " us ",
  "US🦄",
] as const;

const NUMBER_VALUES = [
  0,
  -0,
  1,
  -1,
  2,
  7,
  17,
  18,
  21,
  42,
  99,
  100,
  1.5,
  -2.5,
  0.1 + 0.2,
  0.3,
  1e-9,
  1e21,
  1e300,
  -1e300,
  TWO_53 - 1,
  TWO_53,
  TWO_53 + 2,
  -TWO_53,
  -(TWO_53 + 2),
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
] as const;

/** Semver-ish strings: valid, prerelease, build, odd lengths, invalid, whitespace, huge parts. */
export const VERSION_VALUES = [
  "1",
  "2",
  "1.2",
  "1.2.3",
  "1.2.4",
  "1.3.0",
  "1.10.0",
  "01.2.3",
  "2.0.0",
  "10.0.0",
  "1.2.3-beta",
  "1.2.3-beta.1",
  "1.2.3-beta.11",
  "1.2.3-beta.2",
  "1.2.3-Beta",
  "1.2.3-alpha",
  "1.2.3-alpha-2",
  "1.2.3-rc.1+build.5",
  "1.2.3+build.5",
  "1.2.3+build-5",
  "1.2-beta",
  "1-beta",
  "1.2.3-",
  "1.2.3+",
  "1.2.3.4",
  "1..3",
  ".1.2",
  "1.2.",
  "",
  " 1.2.3",
  "1.2.3\u00a0",
  "v1.2.3",
  "1.2.a",
  "-1.2.3",
  "+1.2.3",
  "١.٢.٣",
  "9007199254740993.0.0",
  "99999999999999999999.1",
  "0.0.0",
  "0",
] as const;

// ---------------------------------------------------------------------------------------------
// Datafile generation
// ---------------------------------------------------------------------------------------------

/** Options for {@link generateDatafile}. Every option has a default; `{}` is a good datafile. */
export interface GenerateDatafileOptions {
  /** Number of top-level experiments. Default: 24–40 (random). */
  experiments?: number;
  /** Number of mutually exclusive groups (policy `random`). Default: 2–4 (random). */
  randomGroups?: number;
  /** Experiments per group, inclusive range. Default: `[1, 5]`. */
  experimentsPerGroup?: readonly [number, number];
  /** Also add one group with policy `overlapping` (no group-level bucketing). Default: true. */
  overlappingGroup?: boolean;
  /** Number of legacy audiences (`conditions` as a JSON string). Default: 8–14. */
  legacyAudiences?: number;
  /**
   * Number of typed audiences. About half of them override a same-id legacy placeholder
   * audience (as real Optimizely datafiles do), the others are typed only. Default: 6–12.
   */
  typedAudiences?: number;
  /**
   * Probability that an experiment's audience references include an audience id that exists
   * nowhere in the datafile (a dangling reference). The SDK treats it as "no match"; Splitstream's
   * validator reports it as an error. Default: 0.
   */
  danglingAudienceRate?: number;
  /**
   * Probability that a `forcedVariations` entry names a variation key the experiment does not have
   * (the SDK ignores the entry and decides normally; Splitstream's validator reports an error).
   * Default: 0.
   */
  staleForcedVariationRate?: number;
  /** Number of feature flags, each with a rollout (2–4 delivery rules). Default: 3. */
  featureFlags?: number;
  /**
   * Probability that a traffic allocation entry names a variation of *another* experiment
   * (the SDK resolves entity ids against one project-wide variation map, so the visitor gets that
   * foreign variation's key!) or a variation that does not exist at all (no variation); and that
   * a random group's allocation names an experiment outside the group. Splitstream's validator
   * reports these as errors. Default: 0.
   */
  foreignEntityRate?: number;
  /**
   * Use attribute names inherited from Object.prototype (`constructor`, `toString`, …) in some
   * conditions. Default: false.
   */
  prototypeNames?: boolean;
  /**
   * Also generate condition trees that real datafiles rarely contain but the SDK evaluates
   * deterministically (and Splitstream's validator accepts, with warnings): arrays that start with
   * a non-operator (a leaf object or nested array — the SDK then skips the first element!),
   * `[]`, `["and"]`, `["not"]` without operand, `["not", a, b]`, and bare leaves. Default: true.
   */
  oddTrees?: boolean;
  /**
   * Probability of condition-tree content the SDK loads but Splitstream's validator rejects:
   * leaves that are not objects (`"xor"`, `7`, `true`), arrays starting with an unknown operator
   * string (`["xor", …]`, which the SDK reads as an implicit "or" that includes the string as a
   * leaf), and `match: null`. Default: 0.
   */
  invalidTreeRate?: number;
  /**
   * Probability that a traffic allocation gets an `endOfRange` the SDK accepts but Splitstream's
   * validator rejects: above 10000, negative, or not an integer. Default: 0.
   */
  oddRangeRate?: number;
  /**
   * Probability that an experiment is a contextual-bandit (`cmab`) experiment. The SDK's
   * synchronous `getVariation` never returns a variation for those (whitelist aside). Default: 0.
   */
  cmabRate?: number;
  /**
   * Probability that an experiment attached to a feature flag is a Feature Rollout (`type: "fr"`):
   * the SDK appends the flag's "Everyone Else" rollout variation to it, with `endOfRange` 10000,
   * so visitors outside its traffic get that variation. Default: 0.
   */
  featureRolloutRate?: number;
  /** Include `third_party_dimension` (ODP segment) conditions. Default: true. */
  odpConditions?: boolean;
  /** Revision string. Default: derived from the seed. */
  revision?: string;
}

/**
 * Options that add what the official SDK loads and decides deterministically but Splitstream's
 * validator rejects (dangling audience ids, stale whitelist keys, allocations naming foreign or
 * missing entities, non-object condition leaves). Datafiles generated with these must be compiled
 * with `compileDatafile` directly; the defaults of {@link generateDatafile} never produce them.
 */
export const SDK_ONLY_QUIRKS: Readonly<GenerateDatafileOptions> = Object.freeze({
  danglingAudienceRate: 0.15,
  staleForcedVariationRate: 0.3,
  foreignEntityRate: 0.04,
  invalidTreeRate: 0.03,
  oddRangeRate: 0.05,
  prototypeNames: true,
});

interface Ctx {
  rng: Rng;
  opts: Required<Omit<GenerateDatafileOptions, "revision">>;
  nextId: () => string;
  audienceIds: string[];
  conditionNames: string[];
}

function leafValueFor(rng: Rng, match: string | undefined): unknown {
  // Mostly the right type for the match, sometimes deliberately wrong.
  const wrong = rng.chance(0.12);
  const anyValue = (): unknown =>
    rng.weighted<() => unknown>([
      [3, () => rng.pick(STRING_VALUES)],
      [3, () => rng.pick(NUMBER_VALUES)],
      [1, () => rng.chance(0.5)],
      [1, () => null],
      [0.5, () => ({ nested: 1 })],
      [0.5, () => [1, 2]],
      [1, () => rng.pick(VERSION_VALUES)],
    ])();
  if (wrong) return anyValue();
  switch (match) {
    case undefined:
    case "exact":
      return rng.weighted<() => unknown>([
        [4, () => rng.pick(STRING_VALUES)],
        [3, () => rng.pick(NUMBER_VALUES)],
        [2, () => rng.chance(0.5)],
      ])();
    case "exists":
      return rng.chance(0.7) ? undefined : anyValue();
    case "substring":
      return rng.chance(0.8)
        ? rng.pick(["", "u", "s", "pro", "🦄", "用", "e", "\u0301", "1", "beta"])
        : rng.pick(STRING_VALUES);
    case "gt":
    case "ge":
    case "lt":
    case "le":
      return rng.pick(NUMBER_VALUES);
    default:
      if (match.startsWith("semver")) return rng.pick(VERSION_VALUES);
      return anyValue();
  }
}

function nameForMatch(ctx: Ctx, match: string | undefined): string {
  const { rng } = ctx;
  if (ctx.opts.prototypeNames && rng.chance(0.03)) return rng.pick(PROTOTYPE_NAMES);
  if (rng.chance(0.04)) return `unused_${rng.int(0, 3)}`;
  // Bias names to their "natural" value type so audiences actually match some visitors.
  if (match === "gt" || match === "ge" || match === "lt" || match === "le") {
    return rng.pick(["age", "score", "ratio", "big", "time.hour", "age", "score"]);
  }
  if (match?.startsWith("semver")) return rng.pick(["app_version", "app_version", "label"]);
  if (match === "substring")
    return rng.pick(["plan", "country", "label", "emoji", "$opt_bucketing_id"]);
  return rng.pick(ctx.conditionNames);
}

function genLeaf(ctx: Ctx): LeafCondition | unknown {
  const { rng } = ctx;
  if (rng.chance(ctx.opts.invalidTreeRate)) {
    // (not null: the SDK's ODP segment scan reads `condition.match` and would crash on load)
    if (rng.chance(0.6)) return rng.pick<unknown>(["xor", "country", 7, true]);
    return {
      type: "custom_attribute",
      name: nameForMatch(ctx, "exact"),
      match: null,
      value: rng.pick(STRING_VALUES),
    };
  }
  const kind = rng.weighted<string>([
    [88, "custom"],
    [ctx.opts.odpConditions ? 4 : 0, "odp"],
    [3, "unknownType"],
  ]);
  if (kind === "odp") {
    const leaf: Record<string, unknown> = {
      type: "third_party_dimension",
      name: "odp.audiences",
      value: rng.pick(["seg1", "seg2"]),
    };
    const match = rng.pick([undefined, "qualified", "qualified", "exact"]);
    if (match !== undefined) leaf.match = match;
    return leaf;
  }
  const match = rng.weighted<string | undefined>([
    [6, undefined],
    [12, "exact"],
    [5, "exists"],
    [5, "substring"],
    [4, "gt"],
    [3, "ge"],
    [4, "lt"],
    [3, "le"],
    [2, "semver_eq"],
    [2, "semver_gt"],
    [2, "semver_ge"],
    [2, "semver_lt"],
    [2, "semver_le"],
    [1, "regex"],
    [0.5, "EXACT"],
    [0.5, ""],
  ]);
  const leaf: Record<string, unknown> = {
    type:
      kind === "unknownType"
        ? rng.pick(["custom_dimension", "Custom_Attribute", ""])
        : "custom_attribute",
    name: nameForMatch(ctx, match),
  };
  if (match !== undefined) leaf.match = match;
  const value = leafValueFor(rng, match);
  if (value !== undefined) leaf.value = value;
  return leaf;
}

type Tree = unknown;

/** A random leaf-condition tree. */
function genConditionTree(ctx: Ctx, depth: number): Tree {
  const { rng, opts } = ctx;
  if (depth <= 0 || rng.chance(0.25)) return genLeaf(ctx);
  const n = rng.int(1, 4);
  const kids = (): Tree[] => Array.from({ length: n }, () => genConditionTree(ctx, depth - 1));
  const shape = rng.weighted<string>([
    [5, "and"],
    [6, "or"],
    [3, "not"],
    [opts.oddTrees ? 1.5 : 0, "implicit"],
    [opts.invalidTreeRate > 0 ? 1 : 0, "unknownOp"],
    [opts.oddTrees ? 0.4 : 0, "empty"],
    [opts.oddTrees ? 0.3 : 0, "bareOp"],
  ]);
  switch (shape) {
    case "and":
    case "or":
      return [shape, ...kids()];
    case "not":
      return rng.chance(0.9) ? ["not", genConditionTree(ctx, depth - 1)] : ["not", ...kids()];
    case "implicit":
      // No operator: the SDK applies "or" to conditions[1..] (the first entry is skipped!).
      return kids();
    case "unknownOp":
      // An unknown string first: the SDK applies "or" to all entries, the string included.
      if (rng.chance(opts.invalidTreeRate)) return [rng.pick(["xor", "AND", "nor"]), ...kids()];
      return ["or", ...kids()];
    case "empty":
      return [];
    default:
      return [rng.pick(["and", "or", "not"])];
  }
}

/** The typical Optimizely shape `["and", ["or", ["or", leaf…]]]`, or a random tree. */
function genAudienceConditions(ctx: Ctx): Tree {
  const { rng } = ctx;
  if (rng.chance(0.45)) {
    const leaves = Array.from({ length: rng.int(1, 3) }, () => genLeaf(ctx));
    return ["and", ["or", ["or", ...leaves]]];
  }
  if (ctx.opts.oddTrees && rng.chance(0.05)) return genLeaf(ctx); // a bare leaf
  return genConditionTree(ctx, rng.int(1, 4));
}

/** A tree over audience ids for `audienceConditions`. */
function genAudienceIdTree(ctx: Ctx, ids: readonly string[], depth: number): AudienceConditionTree {
  const { rng, opts } = ctx;
  if (depth <= 0 || rng.chance(0.3)) return rng.pick(ids);
  const n = rng.int(1, 3);
  const kids = (): AudienceConditionTree[] =>
    Array.from({ length: n }, () => genAudienceIdTree(ctx, ids, depth - 1));
  const shape = rng.weighted<string>([
    [4, "and"],
    [5, "or"],
    [3, "not"],
    [opts.oddTrees ? 2 : 0, "implicit"],
    [opts.oddTrees ? 0.5 : 0, "empty"],
    [opts.oddTrees ? 0.3 : 0, "bareOp"],
  ]);
  switch (shape) {
    case "and":
    case "or":
      return [shape, ...kids()] as AudienceConditionTree;
    case "not":
      return ["not", genAudienceIdTree(ctx, ids, depth - 1)];
    case "implicit":
      // Ids only → implicit "or" over all; a nested array first → the SDK skips it.
      return kids();
    case "empty":
      return [];
    default:
      return [rng.pick(["and", "or", "not"] as const)];
  }
}

function genAllocation(
  ctx: Ctx,
  variations: readonly Variation[],
  foreignIds: readonly string[],
): TrafficAllocationEntry[] {
  const { rng } = ctx;
  const mode = rng.weighted<string>([
    [10, "full"],
    [5, "partial"],
    [4, "holes"],
    [1, "zero"],
    [0.6, "empty"],
  ]);
  if (mode === "empty") return [];
  if (mode === "zero") return variations.map((v) => ({ entityId: v.id, endOfRange: 0 }));
  const total = mode === "partial" ? rng.int(1, 9999) : 10000;
  // Random cut points.
  const entities: string[] = [];
  for (const v of variations) {
    if (mode === "holes" && rng.chance(0.4)) entities.push("");
    entities.push(v.id);
  }
  if (mode === "holes" && rng.chance(0.5)) entities.push("");
  const cuts = Array.from({ length: entities.length - 1 }, () => rng.int(0, total)).sort(
    (a, b) => a - b,
  );
  const out: TrafficAllocationEntry[] = [];
  for (let i = 0; i < entities.length; i++) {
    let entityId = entities[i]!;
    if (entityId !== "" && rng.chance(ctx.opts.foreignEntityRate)) {
      entityId =
        rng.chance(0.5) && foreignIds.length > 0 ? rng.pick(foreignIds) : `missing_${ctx.nextId()}`;
    }
    out.push({ entityId, endOfRange: i < cuts.length ? cuts[i]! : total });
  }
  if (out.length > 1 && rng.chance(0.02)) {
    // A decreasing endOfRange (validator warning): that entry can never be chosen.
    const i = rng.int(1, out.length - 1);
    out[i] = { ...out[i]!, endOfRange: rng.int(0, out[i - 1]!.endOfRange) };
  }
  if (out.length > 0 && rng.chance(ctx.opts.oddRangeRate)) {
    const i = rng.int(0, out.length - 1);
    out[i] = {
      ...out[i]!,
      endOfRange: rng.pick([10001, 12000, -1, out[i]!.endOfRange + 0.5, 4999.999]),
    };
  }
  // Occasionally drop zero-width entries, as the Optimizely app does.
  return rng.chance(0.3)
    ? out.filter((e, i) => i === 0 || e.endOfRange !== out[i - 1]!.endOfRange)
    : out;
}

const VARIATION_KEYS = [
  "control",
  "treatment",
  "variation_1",
  "variation_2",
  "b",
  "c",
  "🦄 variant",
  "变体",
];

function genExperiment(
  ctx: Ctx,
  key: string,
  foreignVariationIds: readonly string[],
  forcedIdPool: string[],
): Experiment {
  const { rng } = ctx;
  const id = ctx.nextId();
  const nVariations = rng.int(1, 5);
  const keys = rng.shuffle(VARIATION_KEYS).slice(0, nVariations);
  const variations: Variation[] = keys.map((k) => ({
    id: ctx.nextId(),
    key: k,
    featureEnabled: rng.chance(0.5),
  }));
  const status = rng.weighted<string>([
    [14, "Running"],
    [2, "Paused"],
    [2, "Not started"],
    [1, "Archived"],
    [1, "Launched"],
    [0.3, "running"], // unknown status (validator warning): not active
  ]);
  const forcedVariations: Record<string, string> = {};
  if (rng.chance(0.35)) {
    for (let i = rng.int(1, 3); i > 0; i--) {
      const visitor =
        rng.chance(0.3) && forcedIdPool.length > 0
          ? rng.pick(forcedIdPool)
          : rng.pick(["qa", "qa-1", "tester@example.com", "用户-qa", "🦄qa", ""]) +
            String(rng.int(0, 9));
      forcedIdPool.push(visitor);
      forcedVariations[visitor] = rng.chance(ctx.opts.staleForcedVariationRate)
        ? rng.pick(["missing_variation", "Control", "treatment ", "变体 "])
        : rng.pick(keys);
    }
  }
  const experiment: Experiment = {
    id,
    key,
    status,
    layerId: ctx.nextId(),
    variations,
    trafficAllocation: genAllocation(ctx, variations, foreignVariationIds),
    audienceIds: [],
    forcedVariations,
  };
  if (rng.chance(ctx.opts.cmabRate)) {
    (experiment as Experiment & { cmab?: unknown }).cmab = {
      attributeIds: [],
      trafficAllocation: rng.pick([0, 5000, 10000]),
    };
  }
  const dangling = (): string => `dangling_${ctx.nextId()}`;
  const audienceIdPool = (): string[] => {
    const ids = ctx.audienceIds.length > 0 ? ctx.audienceIds : [dangling()];
    return rng.chance(ctx.opts.danglingAudienceRate) ? [...ids, dangling()] : ids;
  };
  const targeting = rng.weighted<string>([
    [5, "none"],
    [5, "ids"],
    [7, "tree"],
    [1.5, "single"],
    [1, "emptyTree"],
  ]);
  if (targeting === "ids") {
    const pool = audienceIdPool();
    experiment.audienceIds = rng.subset(pool, rng.int(1, 3));
    if (experiment.audienceIds.length === 0) experiment.audienceIds = [rng.pick(pool)];
    if (pool.length > ctx.audienceIds.length && rng.chance(0.6))
      experiment.audienceIds.push(pool[pool.length - 1]!);
  } else if (targeting === "tree" || targeting === "single" || targeting === "emptyTree") {
    const pool = audienceIdPool();
    experiment.audienceConditions =
      targeting === "single"
        ? rng.pick(pool)
        : targeting === "emptyTree"
          ? []
          : genAudienceIdTree(ctx, pool, rng.int(1, 3));
    // Real datafiles list the ids too; the SDK ignores audienceIds when audienceConditions is set.
    experiment.audienceIds = rng.chance(0.7) ? rng.subset(pool, 2) : [];
  }
  return experiment;
}

/** Placeholder conditions Optimizely writes into `audiences` for audiences that live in `typedAudiences`. */
const LEGACY_PLACEHOLDER =
  '["or", {"match": "exact", "name": "$opt_dummy_attribute", "type": "custom_attribute", "value": "$opt_dummy_value"}]';

/**
 * Generates a valid Optimizely v4 datafile. Deterministic for a given seed and options.
 * Ids are unique digit strings (mixed with a few non-numeric ones); keys are unique.
 */
export function generateDatafile(seed: number, options: GenerateDatafileOptions = {}): Datafile {
  const rng = new Rng(seed);
  let counter = 0;
  const idBase = 1000000000 + (Math.abs(Math.imul(seed, 2654435761)) % 8000000000);
  const opts: Ctx["opts"] = {
    experiments: options.experiments ?? rng.int(24, 40),
    randomGroups: options.randomGroups ?? rng.int(2, 4),
    experimentsPerGroup: options.experimentsPerGroup ?? [1, 5],
    overlappingGroup: options.overlappingGroup ?? true,
    legacyAudiences: options.legacyAudiences ?? rng.int(8, 14),
    typedAudiences: options.typedAudiences ?? rng.int(6, 12),
    danglingAudienceRate: options.danglingAudienceRate ?? 0,
    staleForcedVariationRate: options.staleForcedVariationRate ?? 0,
    featureFlags: options.featureFlags ?? 3,
    foreignEntityRate: options.foreignEntityRate ?? 0,
    prototypeNames: options.prototypeNames ?? false,
    oddTrees: options.oddTrees ?? true,
    odpConditions: options.odpConditions ?? true,
    invalidTreeRate: options.invalidTreeRate ?? 0,
    oddRangeRate: options.oddRangeRate ?? 0,
    cmabRate: options.cmabRate ?? 0,
    featureRolloutRate: options.featureRolloutRate ?? 0,
  };
  const ctx: Ctx = {
    rng,
    opts,
    nextId: () => {
      counter++;
      // Mostly numeric ids like Optimizely's; a few non-numeric (the SDK hashes any string).
      return rng.chance(0.04)
        ? `id_${counter}_${rng.pick(["x", "é", "🦄"])}`
        : String(idBase + counter * 7919);
    },
    audienceIds: [],
    conditionNames: [...ATTRIBUTE_NAMES],
  };

  // Audiences
  const audiences: Audience[] = [];
  const typedAudiences: TypedAudience[] = [];
  for (let i = 0; i < opts.legacyAudiences; i++) {
    const id = ctx.nextId();
    audiences.push({
      id,
      name: `legacy audience ${i}`,
      conditions: JSON.stringify(genAudienceConditions(ctx)),
    });
    ctx.audienceIds.push(id);
  }
  for (let i = 0; i < opts.typedAudiences; i++) {
    const id = ctx.nextId();
    const conditions = genAudienceConditions(ctx) as TypedAudience["conditions"];
    typedAudiences.push({ id, name: `typed audience ${i}`, conditions });
    // Real datafiles: typed audiences also appear in `audiences` with placeholder conditions.
    if (rng.chance(0.5))
      audiences.push({ id, name: `typed audience ${i}`, conditions: LEGACY_PLACEHOLDER });
    ctx.audienceIds.push(id);
  }
  // Interleave so that placeholders are not all at the end.
  const shuffledAudiences = rng.shuffle(audiences);

  const forcedIdPool: string[] = [];
  const allVariationIds: string[] = [];
  const usedKeys = new Set<string>();
  const uniqueKey = (base: string): string => {
    let key = base;
    for (let n = 2; usedKeys.has(key); n++) key = `${base}_${n}`;
    usedKeys.add(key);
    return key;
  };
  const keyBase = (): string =>
    rng.weighted<string>([
      [8, `exp_${rng.int(0, 999)}`],
      [1, `checkout redesign ${rng.int(0, 99)}`],
      [1, `实验_${rng.int(0, 99)}`],
      [0.5, `🦄-${rng.int(0, 99)}`],
    ]);
  const makeExperiment = (): Experiment => {
    const e = genExperiment(ctx, uniqueKey(keyBase()), allVariationIds, forcedIdPool);
    for (const v of e.variations) allVariationIds.push(v.id);
    return e;
  };

  const experiments: Experiment[] = [];
  for (let i = 0; i < opts.experiments; i++) experiments.push(makeExperiment());

  const groups: Group[] = [];
  const groupCount = opts.randomGroups + (opts.overlappingGroup ? 1 : 0);
  for (let g = 0; g < groupCount; g++) {
    const random = g < opts.randomGroups;
    const members = Array.from(
      { length: rng.int(opts.experimentsPerGroup[0], opts.experimentsPerGroup[1]) },
      makeExperiment,
    );
    const id = ctx.nextId();
    let trafficAllocation: TrafficAllocationEntry[];
    if (random) {
      const entities: string[] = [];
      for (const e of members) {
        if (rng.chance(0.3)) entities.push("");
        entities.push(e.id);
      }
      // An experiment outside the group: nobody in the group gets that slice.
      if (experiments.length > 0 && rng.chance(opts.foreignEntityRate * 5))
        entities.push(rng.pick(experiments).id);
      const total = rng.chance(0.7) ? 10000 : rng.int(0, 10000);
      const cuts = Array.from({ length: entities.length - 1 }, () => rng.int(0, total)).sort(
        (a, b) => a - b,
      );
      trafficAllocation = entities.map((entityId, i) => ({
        entityId,
        endOfRange: i < cuts.length ? cuts[i]! : total,
      }));
    } else {
      trafficAllocation = [];
    }
    // An unknown policy (validator warning) means no group bucketing, like "overlapping".
    const policy = random ? "random" : rng.chance(0.3) ? "Random" : "overlapping";
    groups.push({ id, policy, experiments: members, trafficAllocation });
  }

  // Feature flags with rollouts; some flags also reference top-level experiments.
  const featureFlags: FeatureFlag[] = [];
  const rollouts: Rollout[] = [];
  const flagExperimentPool = experiments.slice();
  for (let f = 0; f < opts.featureFlags; f++) {
    const rolloutId = ctx.nextId();
    const ruleCount = rng.int(2, 4);
    const rules: Experiment[] = [];
    for (let r = 0; r < ruleCount; r++) {
      const everyoneElse = r === ruleCount - 1;
      const ruleId = ctx.nextId();
      const variation: Variation = { id: ctx.nextId(), key: `on_${f}_${r}`, featureEnabled: true };
      allVariationIds.push(variation.id);
      rules.push({
        id: ruleId,
        key: everyoneElse ? uniqueKey(`everyone_else_${rolloutId}`) : uniqueKey(`rule_${f}_${r}`),
        status: rng.chance(0.85) ? "Running" : "Paused",
        layerId: ruleId,
        variations: [variation],
        trafficAllocation: [
          { entityId: variation.id, endOfRange: rng.pick([0, 2500, 5000, 10000]) },
        ],
        audienceIds: everyoneElse ? [] : rng.subset(ctx.audienceIds, 1),
        forcedVariations: {},
      });
    }
    rollouts.push({ id: rolloutId, experiments: rules });
    const experimentIds: string[] = [];
    for (let k = opts.featureRolloutRate > 0 ? 2 : 1; k > 0; k--) {
      if (flagExperimentPool.length > 0 && rng.chance(0.6)) {
        const index = rng.int(0, flagExperimentPool.length - 1);
        const experiment = flagExperimentPool[index]!;
        if (rng.chance(opts.featureRolloutRate))
          (experiment as Experiment & { type?: string }).type = "fr";
        experimentIds.push(experiment.id);
        flagExperimentPool.splice(index, 1);
      }
    }
    featureFlags.push({
      id: ctx.nextId(),
      key: uniqueKey(`flag_${f}`),
      rolloutId,
      experimentIds,
      variables: [{ id: ctx.nextId(), key: "color", type: "string", defaultValue: "red" }],
    });
  }

  const attributes = ATTRIBUTE_NAMES.filter((n) => !n.startsWith("$opt_")).map((key) => ({
    id: ctx.nextId(),
    key,
  }));

  return {
    version: "4",
    accountId: "12345",
    projectId: String(idBase),
    revision: options.revision ?? String(seed),
    sdkKey: `sdk-key-${seed}`,
    environmentKey: "production",
    anonymizeIP: true,
    botFiltering: false,
    sendFlagDecisions: true,
    attributes,
    audiences: shuffledAudiences,
    typedAudiences,
    events: [
      {
        id: ctx.nextId(),
        key: "purchase",
        experimentIds: experiments.slice(0, 3).map((e) => e.id),
      },
    ],
    experiments,
    groups,
    featureFlags,
    rollouts,
    integrations: [],
  };
}

/** Every experiment key `getVariation` can be asked about: top-level, then grouped, in datafile order. */
export function experimentKeys(datafile: Datafile): string[] {
  return [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)].map(
    (e) => e.key,
  );
}

/** Keys of rollout delivery rules (the SDK never decides these through getVariation). */
export function rolloutRuleKeys(datafile: Datafile): string[] {
  return datafile.rollouts.flatMap((r) => r.experiments.map((e) => e.key));
}

// ---------------------------------------------------------------------------------------------
// Visitor generation
// ---------------------------------------------------------------------------------------------

/**
 * A generated visitor. Deliberately loosely typed: ids and attributes may be of the wrong type
 * (number ids, `null` attributes…) because the point is to feed the same junk to the SDK and to
 * Splitstream's core and compare.
 */
export interface GeneratedVisitor {
  visitorId: unknown;
  /** `undefined` = call without attributes. */
  attributes: unknown;
}

/** Options for {@link generateVisitors}. */
export interface GenerateVisitorsOptions {
  /**
   * Rate of visitors the SDK rejects outright (an attribute whose value is `undefined`, the id
   * `"undefined"`, a non-string id, attributes that are an array or a string). Default: 0.01.
   */
  invalidRate?: number;
  /** Rate of visitors whose id is a key of some experiment's `forcedVariations`. Default: 0.04. */
  forcedRate?: number;
  /** Add attributes named after Object.prototype members (`constructor`, …). Default: false. */
  prototypeNames?: boolean;
  /**
   * Pass a falsy non-object (`null`, `0`, `""`, `false`) as the attributes of some visitors: the
   * SDK validates attributes only when truthy, so these mean "no attributes". Default: true.
   */
  nullAttributes?: boolean;
  /**
   * Rate of visitors carrying the SDK's `$opt_experiment_bucket_map` attribute (sticky decisions
   * passed as an attribute: experiment id → `{variation_id}`), naming variations of the experiment,
   * of other experiments, or none. Default: 0.
   */
  bucketMapRate?: number;
}

const ID_POOL = [
  "",
  " ",
  "user",
  "ppid1",
  "ppid2",
  "ppid3",
  "null",
  "NaN",
  "0",
  "-1",
  "🦄",
  "👩‍👩‍👧‍👦",
  "用户123",
  "ユーザー",
  "사용자",
  "e\u0301",
  "\u00e9",
  "\uD800",
  "\uDC00abc",
  "abc\uD83D",
  "\uD83D\uDE00",
  "a\u0000b",
  "tab\tnewline\n",
  "ℌ𝔢𝔩𝔩𝔬",
  "x".repeat(300),
  "Ünïcødé",
  "constructor",
  "__proto__",
  "toString",
];

/** Sets an own, enumerable property even for "__proto__" (plain assignment would set the prototype). */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

function collectLeaves(tree: unknown, out: Record<string, unknown>[]): void {
  if (Array.isArray(tree)) for (const t of tree) collectLeaves(t, out);
  else if (tree !== null && typeof tree === "object") out.push(tree as Record<string, unknown>);
}

function randomId(rng: Rng): string {
  return rng.weighted<() => string>([
    [6, () => `user-${rng.int(0, 1e9)}`],
    [2, () => String(rng.int(0, 1e12))],
    [
      2,
      () => {
        const hex = (n: number): string =>
          Array.from({ length: n }, () => rng.int(0, 15).toString(16)).join("");
        return `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
      },
    ],
    [1, () => rng.pick(ID_POOL)],
    [1, () => `${rng.pick(ID_POOL)}${rng.int(0, 99)}`],
    [
      0.5,
      () => String.fromCharCode(...Array.from({ length: rng.int(1, 6) }, () => rng.int(0, 0xffff))),
    ],
  ])();
}

/** A value "near" a condition's value: equal, ±1, ±0.5, other type, case changes, substrings. */
function nearValue(rng: Rng, leaf: Record<string, unknown>): unknown {
  const v = leaf.value;
  const match = leaf.match;
  if (typeof v === "number") {
    return rng.pick<unknown>([v, v, v + 1, v - 1, v + 0.5, v - 0.5, String(v), -v, v * 2]);
  }
  if (typeof v === "string") {
    if (typeof match === "string" && match.startsWith("semver"))
      return rng.chance(0.5) ? v : rng.pick(VERSION_VALUES);
    return rng.pick<unknown>([
      v,
      v,
      `${v}x`,
      `x${v}x`,
      v.toUpperCase(),
      v.slice(1),
      Number(v),
      ` ${v}`,
    ]);
  }
  if (typeof v === "boolean") return rng.pick<unknown>([v, v, !v, String(v), v ? 1 : 0]);
  return randomAttributeValue(rng);
}

function randomAttributeValue(rng: Rng): unknown {
  return rng.weighted<() => unknown>([
    [5, () => rng.pick(STRING_VALUES)],
    [5, () => rng.pick(NUMBER_VALUES)],
    [1, () => rng.pick([NaN, Infinity, -Infinity])],
    [2, () => rng.chance(0.5)],
    [2, () => null],
    [2, () => rng.pick(VERSION_VALUES)],
    [0.5, () => ({ a: 1 })],
    [0.5, () => ["us"]],
    [1, () => rng.int(-100, 100)],
    [1, () => rng.float() * 200 - 100],
  ])();
}

/**
 * Generates `n` visitors aimed at `datafile`: attribute names and values are drawn mostly from the
 * datafile's own conditions (equal, near, and wrong-typed values), so audiences match some
 * visitors and not others. Ids mix ASCII, uuids, digits, non-ASCII (emoji, CJK, combining marks,
 * lone surrogates), ids that appear in `forcedVariations`, and a few the SDK rejects.
 */
export function generateVisitors(
  seed: number,
  n: number,
  datafile: Datafile,
  options: GenerateVisitorsOptions = {},
): GeneratedVisitor[] {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const invalidRate = options.invalidRate ?? 0.01;
  const forcedRate = options.forcedRate ?? 0.04;
  const nullAttributes = options.nullAttributes ?? true;
  const bucketMapRate = options.bucketMapRate ?? 0;
  const allExperiments = [
    ...datafile.experiments,
    ...datafile.groups.flatMap((g) => g.experiments),
  ];
  const allVariationIds = allExperiments.flatMap((e) => e.variations.map((v) => v.id));

  const leaves: Record<string, unknown>[] = [];
  for (const a of datafile.audiences) {
    try {
      collectLeaves(
        typeof a.conditions === "string" ? JSON.parse(a.conditions) : a.conditions,
        leaves,
      );
    } catch {
      // not JSON: nothing to aim at
    }
  }
  for (const a of datafile.typedAudiences ?? []) collectLeaves(a.conditions, leaves);
  const isPrototypeName = (name: unknown): boolean =>
    (PROTOTYPE_NAMES as readonly unknown[]).includes(name);
  const customLeaves = leaves.filter((l) => typeof l.name === "string" && !isPrototypeName(l.name));
  const names = [...new Set([...customLeaves.map((l) => l.name as string), ...ATTRIBUTE_NAMES])];

  const forcedIds = [
    ...new Set(
      [...datafile.experiments, ...datafile.groups.flatMap((g) => g.experiments)].flatMap((e) =>
        Object.keys(e.forcedVariations ?? {}),
      ),
    ),
  ];

  const visitors: GeneratedVisitor[] = [];
  for (let i = 0; i < n; i++) {
    let visitorId: unknown =
      forcedIds.length > 0 && rng.chance(forcedRate) ? rng.pick(forcedIds) : randomId(rng);
    let attributes: unknown;
    const shape = rng.weighted<string>([
      [1, "none"],
      [0.5, "empty"],
      [nullAttributes ? 0.3 : 0, "null"],
      [12, "targeted"],
    ]);
    if (shape === "empty") attributes = {};
    else if (shape === "null")
      attributes = rng.pick<unknown>([null, null, 0, "", false]); // falsy = none, for the SDK
    else if (shape === "targeted") {
      const attrs: Record<string, unknown> = {};
      const count = rng.int(1, 10);
      for (let k = 0; k < count; k++) {
        if (customLeaves.length > 0 && rng.chance(0.7)) {
          const leaf = rng.pick(customLeaves);
          setOwn(
            attrs,
            leaf.name as string,
            rng.chance(0.75) ? nearValue(rng, leaf) : randomAttributeValue(rng),
          );
        } else {
          setOwn(attrs, rng.pick(names), randomAttributeValue(rng));
        }
      }
      // Prototype-named attributes on a few visitors only: an own "hasOwnProperty" makes the SDK
      // throw (and catch) on every leaf, some 20× slower per call.
      if (options.prototypeNames && rng.chance(0.04))
        setOwn(attrs, rng.pick(PROTOTYPE_NAMES), randomAttributeValue(rng));
      if (rng.chance(0.15)) {
        attrs["$opt_bucketing_id"] = rng.weighted<() => unknown>([
          [6, () => randomId(rng)],
          [1, () => rng.pick(["ppid1", "ppid2", "ppid3"])],
          [1, () => rng.pick<unknown>([42, null, true, { id: "x" }, ["ppid1"], NaN])],
        ])();
      }
      if (allExperiments.length > 0 && rng.chance(bucketMapRate)) {
        const map: Record<string, unknown> = {};
        for (let k = rng.int(1, 4); k > 0; k--) {
          const e = rng.pick(allExperiments);
          const variationId = rng.weighted<() => string>([
            [6, () => (e.variations.length > 0 ? rng.pick(e.variations).id : "none")],
            [2, () => rng.pick(allVariationIds)],
            [2, () => "no_such_variation"],
          ])();
          map[e.id] = { variation_id: variationId };
        }
        attrs["$opt_experiment_bucket_map"] = map;
      }
      attributes = attrs;
    }
    if (rng.chance(invalidRate)) {
      const kind = rng.int(0, 5);
      if (kind === 0)
        attributes = {
          ...(typeof attributes === "object" && attributes ? attributes : {}),
          country: undefined,
        };
      else if (kind === 1) visitorId = "undefined";
      else if (kind === 2)
        visitorId = rng.pick<unknown>([42, null, undefined, true, { id: "x" }, ["a"]]);
      else if (kind === 3) attributes = rng.pick<unknown>([["us"], "country=us", 5, true]);
      else if (kind === 4) attributes = { $opt_bucketing_id: undefined };
      else visitorId = 0;
    }
    visitors.push({ visitorId, attributes });
  }
  return visitors;
}

/**
 * A JSON-ish rendering of any value, for failure messages: shows `undefined`, NaN, ±Infinity,
 * -0 and lone surrogates (as \\uXXXX) that JSON.stringify would hide or mangle.
 */
export function describeValue(value: unknown): string {
  const seen = new Set<unknown>();
  const render = (v: unknown): string => {
    if (v === undefined) return "undefined";
    if (typeof v === "number") {
      if (Object.is(v, -0)) return "-0";
      return String(v);
    }
    if (typeof v === "string") {
      return JSON.stringify(v).replace(
        /[\ud800-\udfff]/g,
        (c) => `\\u${c.charCodeAt(0).toString(16)}`,
      );
    }
    if (v === null || typeof v !== "object") return String(v);
    if (seen.has(v)) return "[circular]";
    seen.add(v);
    if (Array.isArray(v)) return `[${v.map(render).join(", ")}]`;
    return `{${Object.keys(v)
      .map((k) => `${render(k)}: ${render((v as Record<string, unknown>)[k])}`)
      .join(", ")}}`;
  };
  return render(value);
}
