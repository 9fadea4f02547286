/**
 * The bandit core (src/core/bandit.ts): the seeded PRNG, the Gamma/Beta samplers against their
 * exact moments, the allocation invariants (basis points, exploration floor, winner rule, bad
 * input), the Optimizely traffic-allocation shape, and the seeded simulations issue #8 asks
 * for. The simulation numbers quoted here and in docs/bandits.md were measured with the same
 * helper over more seeds (200 better-arm runs, 500 null runs).
 */
import { describe, expect, it } from "vitest";
import {
  allocateBandit,
  createRng,
  DEFAULT_BANDIT_OPTIONS,
  explorationFloorBasisPoints,
  sampleBeta,
  sampleGamma,
  toTrafficAllocation,
  type ArmStats,
  type BanditAllocation,
  type BanditOptions,
} from "../../src/core/bandit";
import { normalCdf } from "../../src/core/stats/distributions";

const N = 20_000;

function moments(xs: readonly number[]): { mean: number; variance: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1);
  return { mean, variance };
}

/**
 * Asserts sample mean and variance within 5 standard errors of the exact values. The standard
 * error of a sample variance is σ²·√((2 + excess kurtosis)/n), so heavy-tailed shapes get the
 * wider tolerance they need instead of one loose tolerance for all.
 */
function expectMoments(
  xs: readonly number[],
  exact: { mean: number; variance: number; excessKurtosis: number },
): void {
  const { mean, variance } = moments(xs);
  const n = xs.length;
  expect(Math.abs(mean - exact.mean)).toBeLessThan(5 * Math.sqrt(exact.variance / n));
  expect(Math.abs(variance - exact.variance)).toBeLessThan(
    5 * exact.variance * Math.sqrt((2 + exact.excessKurtosis) / n),
  );
}

function sumOf(record: Record<string, number>): number {
  return Object.values(record).reduce((s, x) => s + x, 0);
}

/** The invariants every allocation must satisfy, whatever the input. */
function expectValidWeights(
  allocation: BanditAllocation,
  ids: readonly string[],
  floorBp: number,
): void {
  expect(Object.keys(allocation.weights)).toEqual(ids);
  for (const w of Object.values(allocation.weights)) {
    expect(Number.isInteger(w)).toBe(true);
    expect(w).toBeGreaterThanOrEqual(floorBp);
  }
  expect(sumOf(allocation.weights)).toBe(10_000);
  expect(sumOf(allocation.probabilityBest)).toBeCloseTo(1, 9);
}

describe("createRng", () => {
  it("is deterministic per seed and differs between seeds", () => {
    const take = (seed: number | string) => Array.from({ length: 5 }, createRng(seed));
    expect(take(42)).toEqual(take(42));
    expect(take("exp_1:round_7")).toEqual(take("exp_1:round_7"));
    expect(take(42)).not.toEqual(take(43));
    expect(take("exp_1:round_7")).not.toEqual(take("exp_1:round_8"));
    // Integers are taken modulo 2³²; other numbers are hashed like strings, never rejected.
    expect(take(-1)).toEqual(take(4294967295));
    expect(take(Number.NaN)).toEqual(take("NaN"));
    expect(take(1.5)).toEqual(take("1.5"));
  });

  it("returns floats in [0, 1), uniform over 10 bins", () => {
    const rng = createRng(1);
    const bins = new Array<number>(10).fill(0);
    let outside = 0;
    for (let i = 0; i < N; i++) {
      const u = rng();
      if (!(u >= 0 && u < 1)) outside++;
      else bins[Math.floor(u * 10)]! += 1;
    }
    expect(outside).toBe(0);
    // Chi-square with 9 df: 27.9 is its 0.999 quantile.
    const chi2 = bins.reduce((s, o) => s + (o - N / 10) ** 2 / (N / 10), 0);
    expect(chi2).toBeLessThan(27.9);
  });
});

describe("sampleGamma", () => {
  // Gamma(k, 1): mean = variance = k, excess kurtosis 6/k.
  it.each([0.1, 0.5, 1, 2.5, 30, 10_000])("Gamma(%s) moments over 20k seeded draws", (shape) => {
    const rng = createRng(`gamma:${shape}`);
    const xs = Array.from({ length: N }, () => sampleGamma(shape, rng));
    expect(xs.every((x) => x >= 0 && Number.isFinite(x))).toBe(true);
    expectMoments(xs, { mean: shape, variance: shape, excessKurtosis: 6 / shape });
  });

  it("has normal tails for a huge shape (checks the ziggurat normal, tail and wedges included)", () => {
    // Gamma(10⁶) standardised is N(0, 1) up to a skewness of 0.002, and Marsaglia–Tsang maps
    // the normal draw x almost linearly onto it, so its tails are those of the normal sampler;
    // beyond ±3.44 only the ziggurat's tail branch produces values.
    const shape = 1e6;
    const n = 200_000;
    const rng = createRng("tails");
    const z = Array.from({ length: n }, () => (sampleGamma(shape, rng) - shape) / Math.sqrt(shape));
    for (const t of [-3.6, -2.5, -1, 0, 1, 2.5, 3.6]) {
      const observed = z.filter((x) => x > t).length / n;
      const expected = normalCdf(-t);
      expect(Math.abs(observed - expected)).toBeLessThan(
        5 * Math.sqrt((expected * (1 - expected)) / n),
      );
    }
  });

  it.each([0, -1, Number.NaN, Number.POSITIVE_INFINITY])("rejects shape %s", (shape) => {
    expect(() => sampleGamma(shape, createRng(1))).toThrow(RangeError);
  });
});

describe("sampleBeta", () => {
  it.each([
    [1, 1],
    [0.5, 0.5],
    [2, 5],
    [0.1, 3],
    [51, 951],
    // A posterior after 10⁷ visitors: tiny variance, and the same code path has to hold up.
    [50_001, 9_950_001],
  ])("Beta(%s, %s) moments over 20k seeded draws", (a, b) => {
    const rng = createRng(`beta:${a}:${b}`);
    const xs = Array.from({ length: N }, () => sampleBeta(a, b, rng));
    expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
    const s = a + b;
    const excessKurtosis =
      (6 * ((a - b) ** 2 * (s + 1) - a * b * (s + 2))) / (a * b * (s + 2) * (s + 3));
    expectMoments(xs, { mean: a / s, variance: (a * b) / (s * s * (s + 1)), excessKurtosis });
  });

  it("stays a number in [0, 1] when both gammas underflow (shapes far below 1)", () => {
    // Gamma(0.01) underflows to 0 often; 0/(0 + 0) would be NaN without the log-space ratio.
    const rng = createRng(7);
    const xs = Array.from({ length: 2000 }, () => sampleBeta(0.01, 0.02, rng));
    expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
    // Beta(0.01, 0.02) puts almost all mass at the ends: mean 1/3.
    expect(moments(xs).mean).toBeCloseTo(1 / 3, 1);
  });

  it("is reproducible with the same seed", () => {
    const draw = () => {
      const rng = createRng("same");
      return [sampleBeta(3, 7, rng), sampleBeta(0.4, 2, rng), sampleGamma(5, rng)];
    };
    expect(draw()).toEqual(draw());
  });

  it.each([
    [0, 1],
    [1, -2],
    [Number.NaN, 1],
    [1, Number.POSITIVE_INFINITY],
  ])("rejects Beta(%s, %s)", (a, b) => {
    expect(() => sampleBeta(a, b, createRng(1))).toThrow(RangeError);
  });
});

describe("explorationFloorBasisPoints", () => {
  it.each([
    [3, 0.05, 500, "default share"],
    [10, 0.05, 500, "10 × 5 % = 50 % of the traffic reserved for exploration"],
    [20, 0.05, 499, "20 × 5 % = 100 %: clamped just below an equal split"],
    [2, 0.6, 4999, "above 1/arms: clamped just below 1/arms"],
    [3, 1 / 3, 3333, "exactly 1/arms: 3333 < 10000/3"],
    [4, 0.25, 2499, "exactly 1/arms with an integer split"],
    [1, 0.57, 5700, "0.57 · 10000 = 5699.999… in floating point: still 5700"],
    [3, -0.1, 0, "negative → 0"],
    [3, Number.NaN, 500, "not finite → default"],
    [0, 0.05, 0, "no arms"],
  ])("%s arms, share %s → %s bp (%s)", (arms, share, expected) => {
    expect(explorationFloorBasisPoints(arms, share)).toBe(expected);
  });
});

describe("allocateBandit", () => {
  const clear: ArmStats[] = [
    { id: "a", visitors: 2000, conversions: 100 },
    { id: "b", visitors: 2000, conversions: 160 },
  ];

  it("is deterministic: same seed (or no seed) → same result; seeds only move Monte Carlo noise", () => {
    const close: ArmStats[] = [
      { id: "a", visitors: 1000, conversions: 50 },
      { id: "b", visitors: 1000, conversions: 55 },
    ];
    expect(allocateBandit(close, { seed: "x" })).toEqual(allocateBandit(close, { seed: "x" }));
    expect(allocateBandit(close)).toEqual(allocateBandit(close));
    const p1 = allocateBandit(close, { seed: 1 }).probabilityBest.b!;
    const p2 = allocateBandit(close, { seed: 2 }).probabilityBest.b!;
    expect(p1).not.toBe(p2);
    // Exact P(b best) ≈ 0.69; 10000 draws → Monte Carlo standard error ≈ 0.005.
    expect(Math.abs(p1 - p2)).toBeLessThan(0.03);
    expect(p1).toBeGreaterThan(0.6);
    expect(p1).toBeLessThan(0.78);
  });

  // Edge cases × 2..10 arms: the basis points are integers, sum to 10000, respect the floor.
  const scenarios: Array<[string, (k: number) => ArmStats[], BanditOptions]> = [
    ["all zero data", (k) => arms(k, () => [0, 0]), {}],
    ["all zero data, no warm-up", (k) => arms(k, () => [0, 0]), { minVisitorsPerArm: 0 }],
    ["one arm with all conversions", (k) => arms(k, (i) => [1000, i === 0 ? 1000 : 0]), {}],
    ["every arm converting 100 %", (k) => arms(k, () => [500, 500]), {}],
    ["huge counts (1e7 visitors)", (k) => arms(k, (i) => [1e7, 500_000 + 2000 * i]), {}],
    ["huge, identical counts", (k) => arms(k, () => [1e7, 500_000]), {}],
  ];
  function arms(k: number, counts: (i: number) => [number, number]): ArmStats[] {
    return Array.from({ length: k }, (_, i) => {
      const [visitors, conversions] = counts(i);
      return { id: `arm${i}`, visitors, conversions };
    });
  }
  const cases = scenarios.flatMap(([name, make, options]) =>
    [2, 3, 4, 5, 6, 7, 8, 9, 10].map((k) => ({ name, k, arms: make(k), options })),
  );
  it.each(cases)("$name, $k arms: valid basis points", ({ name, k, arms, options }) => {
    // Fewer draws: the invariants do not depend on Monte Carlo precision.
    const allocation = allocateBandit(arms, { draws: 2000, seed: name, ...options });
    const floor = explorationFloorBasisPoints(k);
    expectValidWeights(
      allocation,
      arms.map((a) => a.id),
      floor,
    );
    if (name === "all zero data") {
      expect(allocation.reason).toBe("warming_up");
      expect(Math.max(...Object.values(allocation.weights))).toBeLessThanOrEqual(
        Math.ceil(10_000 / k),
      );
    }
    if (name === "one arm with all conversions") {
      // P(best) = 1 for arm0: the others sit exactly on the floor, arm0 gets the rest.
      expect(allocation).toMatchObject({ winner: "arm0", reason: "winner" });
      expect(allocation.weights.arm0).toBe(10_000 - (k - 1) * floor);
    }
    if (name === "huge counts (1e7 visitors)") {
      expect(allocation.winner).toBe(`arm${k - 1}`);
    }
    if (name === "huge, identical counts" || name === "every arm converting 100 %") {
      expect(allocation.winner).toBeNull();
    }
  });

  it("keeps floored arms at the floor and the rest proportional to P(best) (water-filling)", () => {
    const allocation = allocateBandit([
      { id: "bad", visitors: 5000, conversions: 100 },
      { id: "b", visitors: 5000, conversions: 300 },
      { id: "c", visitors: 5000, conversions: 300 },
    ]);
    // P(best) ≈ (0, ½, ½): bad on the 500 bp floor, b and c share the other 9500 about equally.
    expect(allocation.weights.bad).toBe(500);
    expect(allocation.weights.b! + allocation.weights.c!).toBe(9500);
    expect(Math.abs(allocation.weights.b! - allocation.weights.c!)).toBeLessThan(300);
  });

  it.each([
    [0, 0],
    [0.2, 2000],
    [0.5, 3333],
  ])("minExplorationShare %s → the losing arms get %s bp", (share, expected) => {
    const allocation = allocateBandit(
      [
        { id: "a", visitors: 1000, conversions: 0 },
        { id: "b", visitors: 1000, conversions: 0 },
        { id: "c", visitors: 1000, conversions: 1000 },
      ],
      { minExplorationShare: share },
    );
    expect(allocation.weights).toEqual({ a: expected, b: expected, c: 10_000 - 2 * expected });
  });

  it("declares a clear winner, and reports reason thompson below the threshold", () => {
    expect(allocateBandit(clear)).toMatchObject({ winner: "b", reason: "winner" });
    expect(allocateBandit(clear).probabilityBest.b).toBeGreaterThan(0.99);
    const close: ArmStats[] = [
      { id: "a", visitors: 2000, conversions: 100 },
      { id: "b", visitors: 2000, conversions: 118 },
    ];
    const p = allocateBandit(close).probabilityBest.b!;
    expect(p).toBeGreaterThan(0.8);
    expect(p).toBeLessThan(0.95);
    expect(allocateBandit(close)).toMatchObject({ winner: null, reason: "thompson" });
    expect(allocateBandit(close, { winnerThreshold: 0.8 })).toMatchObject({
      winner: "b",
      reason: "winner",
    });
  });

  it("declares no winner and moves no traffic before every arm has minVisitorsPerArm", () => {
    const oneArmShort = [...clear, { id: "c", visitors: 99, conversions: 1 }];
    const allocation = allocateBandit(oneArmShort);
    expect(allocation).toMatchObject({ winner: null, reason: "warming_up" });
    expect(allocation.weights).toEqual({ a: 3334, b: 3333, c: 3333 });
    // The probabilities are still reported (the results page can show them while warming up).
    expect(allocation.probabilityBest.b).toBeGreaterThan(0.5);
    expect(allocateBandit(clear, { minVisitorsPerArm: 2001 })).toMatchObject({
      winner: null,
      reason: "warming_up",
      weights: { a: 5000, b: 5000 },
    });
    expect(allocateBandit(clear, { minVisitorsPerArm: 2000 }).winner).toBe("b");
  });

  it("accepts fractional counts (per-period weighted statistics)", () => {
    const allocation = allocateBandit([
      { id: "a", visitors: 812.5, conversions: 40.25 },
      { id: "b", visitors: 790.75, conversions: 61.5 },
    ]);
    expect(allocation.reason).not.toBe("warming_up");
    expectValidWeights(allocation, ["a", "b"], 500);
  });

  const ok = (id: string): ArmStats => ({ id, visitors: 500, conversions: 20 });
  it.each([
    ["no arms", [], [], "$"],
    ["one arm", [ok("a")], ["a"], "$"],
    ["not an array", { length: 2 }, [], "$"],
    ["duplicate id", [ok("a"), ok("a"), ok("b")], ["a", "b"], "$[1].id"],
    ["empty id", [{ ...ok("a"), id: "" }, ok("b"), ok("c")], ["b", "c"], "$[0].id"],
    ["null arm", [ok("a"), null, ok("b")], ["a", "b"], "$[1]"],
    ["negative visitors", [{ ...ok("a"), visitors: -1 }, ok("b")], ["a", "b"], "$[0].visitors"],
    [
      "NaN conversions",
      [ok("a"), { ...ok("b"), conversions: Number.NaN }],
      ["a", "b"],
      "$[1].conversions",
    ],
    [
      "infinite visitors",
      [ok("a"), { ...ok("b"), visitors: Number.POSITIVE_INFINITY }],
      ["a", "b"],
      "$[1].visitors",
    ],
    [
      "conversions > visitors",
      [{ id: "a", visitors: 10, conversions: 11 }, ok("b"), ok("c")],
      ["a", "b", "c"],
      "$[0].conversions",
    ],
  ])("bad input (%s): no throw, equal split, warming_up, problems", (_, input, ids, path) => {
    const allocation = allocateBandit(input as unknown as ArmStats[]);
    expect(allocation.reason).toBe("warming_up");
    expect(allocation.winner).toBeNull();
    expect(allocation.problems?.map((p) => p.path)).toContain(path);
    expect(allocation.problems?.every((p) => p.severity === "error")).toBe(true);
    expect(Object.keys(allocation.weights)).toEqual(ids);
    if (ids.length > 0) {
      expect(sumOf(allocation.weights)).toBe(10_000);
      const values = Object.values(allocation.weights);
      expect(Math.max(...values) - Math.min(...values)).toBeLessThanOrEqual(1);
      for (const p of Object.values(allocation.probabilityBest)) expect(p).toBe(1 / ids.length);
    }
  });

  it("reports no problems for good input", () => {
    expect(allocateBandit(clear).problems).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ["draws NaN", { draws: Number.NaN }],
    ["draws 0", { draws: 0 }],
    ["draws negative", { draws: -5 }],
    ["prior not positive", { prior: { alpha: -1, beta: Number.NaN } }],
    ["prior null", { prior: null }],
    ["threshold above 1", { winnerThreshold: 2 }],
    ["threshold NaN", { winnerThreshold: Number.NaN }],
    ["minVisitorsPerArm negative", { minVisitorsPerArm: -1 }],
    ["minExplorationShare NaN", { minExplorationShare: Number.NaN }],
    ["options null", null],
  ])("unusable option (%s) falls back to the default", (_, options) => {
    const seeded = { ...(options as object), seed: "opts" };
    expect(allocateBandit(clear, seeded as BanditOptions)).toEqual(
      allocateBandit(clear, { seed: "opts" }),
    );
  });

  it("documents its defaults", () => {
    expect(DEFAULT_BANDIT_OPTIONS).toEqual({
      draws: 10_000,
      minExplorationShare: 0.05,
      prior: { alpha: 1, beta: 1 },
      winnerThreshold: 0.95,
      minVisitorsPerArm: 100,
    });
  });
});

describe("toTrafficAllocation", () => {
  it("is cumulative in the given order and ends at 10000", () => {
    expect(toTrafficAllocation({ b: 7000, a: 2500, c: 500 }, ["a", "b", "c"])).toEqual([
      { entityId: "a", endOfRange: 2500 },
      { entityId: "b", endOfRange: 9500 },
      { entityId: "c", endOfRange: 10_000 },
    ]);
  });

  it("gives an id without a weight a zero-width range", () => {
    expect(toTrafficAllocation({ a: 4000, c: 6000 }, ["a", "b", "c"])).toEqual([
      { entityId: "a", endOfRange: 4000 },
      { entityId: "b", endOfRange: 4000 },
      { entityId: "c", endOfRange: 10_000 },
    ]);
  });

  it("round-trips allocateBandit's weights", () => {
    const { weights } = allocateBandit([
      { id: "x", visitors: 900, conversions: 30 },
      { id: "y", visitors: 900, conversions: 45 },
      { id: "z", visitors: 900, conversions: 41 },
    ]);
    const ranges = toTrafficAllocation(weights, ["x", "y", "z"]);
    expect(ranges.at(-1)!.endOfRange).toBe(10_000);
    expect(ranges.map((r, i) => r.endOfRange - (i > 0 ? ranges[i - 1]!.endOfRange : 0))).toEqual([
      weights.x,
      weights.y,
      weights.z,
    ]);
  });

  it.each<[string, Record<string, number>, string[]]>([
    ["sum below 10000", { a: 5000, b: 4000 }, ["a", "b"]],
    ["sum above 10000", { a: 5000, b: 5001 }, ["a", "b"]],
    ["weight not in order", { a: 5000, b: 5000 }, ["a"]],
    ["non-integer weight", { a: 4999.5, b: 5000.5 }, ["a", "b"]],
    ["negative weight", { a: -1, b: 10_001 }, ["a", "b"]],
    ["duplicate id in order", { a: 10_000 }, ["a", "a"]],
  ])("throws a RangeError for %s", (_, weights, order) => {
    expect(() => toTrafficAllocation(weights, order)).toThrow(RangeError);
  });
});

/**
 * One bandit run, as the scheduled handler will drive it: each round `visitorsPerRound` new
 * visitors are split by the current weights (seeded multinomial: one categorical draw each),
 * convert with their arm's true rate, the counts accumulate, and `allocateBandit` recomputes
 * the weights with the seed `${seed}:${round}`. Returns the allocation after each round, with
 * the initial (no data) allocation first.
 */
function simulate(
  trueRates: readonly number[],
  seed: string,
  rounds: number,
  visitorsPerRound = 1000,
): BanditAllocation[] {
  const rng = createRng(`sim:${seed}`);
  const arms: ArmStats[] = trueRates.map((_, i) => ({
    id: `arm${i}`,
    visitors: 0,
    conversions: 0,
  }));
  const history = [allocateBandit(arms, { seed: `${seed}:0` })];
  for (let round = 1; round <= rounds; round++) {
    const weights = arms.map((arm) => history.at(-1)!.weights[arm.id]! / 10_000);
    for (let v = 0; v < visitorsPerRound; v++) {
      let u = rng();
      let i = 0;
      while (i < weights.length - 1 && u >= weights[i]!) u -= weights[i++]!;
      arms[i]!.visitors++;
      if (rng() < trueRates[i]!) arms[i]!.conversions++;
    }
    history.push(allocateBandit(arms, { seed: `${seed}:${round}` }));
  }
  return history;
}

describe("seeded simulation (issue #8)", () => {
  const ROUNDS = 30;

  // Measured over 200 seeds (1000 visitors per round): ≥ 80 % to the best arm after round 1
  // (median), 2 (90th percentile), 7 (worst); winner declared after round 2 / 4 / 11; never a
  // wrong winner; every weight always ≥ 500 bp; after 30 rounds the best arm has 9000 bp.
  it.each(["1", "2", "3"])(
    "one clearly better arm (4 %, 5 %, 8 %), seed %s: ≥ 80 % of traffic within 10 rounds, floor kept, winner declared",
    (seed) => {
      const history = simulate([0.04, 0.05, 0.08], seed, ROUNDS);
      const floor = explorationFloorBasisPoints(3);
      for (const allocation of history)
        expectValidWeights(allocation, ["arm0", "arm1", "arm2"], floor);
      const first80 = history.findIndex((a) => a.weights.arm2! >= 8000);
      expect(first80).toBeGreaterThan(0);
      expect(first80).toBeLessThanOrEqual(10);
      const winners = history.map((a) => a.winner).filter((w) => w !== null);
      expect(winners.length).toBeGreaterThan(0);
      expect(new Set(winners)).toEqual(new Set(["arm2"]));
      expect(history.at(-1)!.weights.arm2).toBeGreaterThanOrEqual(8000);
    },
  );

  // Measured over 500 seeds (3 equal arms at 5 %, 1000 visitors per round, a look every round):
  // some arm reached P(best) ≥ 0.95 within 30 rounds in 50 runs (10.0 %, 95 % CI 7.5–13 %),
  // ≥ 0.99 in 4 (0.8 %). Here 10 seeds, which give 0 (20 would take ~2 s of the 5 s budget on a
  // busy CI core). The bound of 3 is what a 10 % rate allows (P(> 3 of 10) ≈ 1.3 %): the test
  // catches a broken stop rule, not an unlucky seed.
  it("all arms equal: a false winner in at most 3 of 10 seeds, floor kept", () => {
    let falseWinners = 0;
    for (let s = 1; s <= 10; s++) {
      const history = simulate([0.05, 0.05, 0.05], `null${s}`, ROUNDS);
      const lowest = Math.min(...history.flatMap((a) => Object.values(a.weights)));
      expect(lowest).toBeGreaterThanOrEqual(500);
      if (history.some((a) => a.winner !== null)) falseWinners++;
    }
    expect(falseWinners).toBeLessThanOrEqual(3);
  });
});
