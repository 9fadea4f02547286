import { describe, expect, it } from "vitest";
import {
  benjaminiHochberg,
  chiSquareSf,
  compareVariation,
  EMPTY_STATS,
  holm,
  mean,
  mergeStats,
  NOT_ENOUGH_DATA_REASONS,
  normalCdf,
  normalQuantile,
  sampleRatioMismatch,
  sequentialTest,
  sequentialThreshold,
  studentTCdf,
  studentTQuantile,
  variance,
  visitorsNeeded,
  welchTest,
  type CompareOptions,
  type SufficientStats,
} from "../../src/core/stats/index";
import chiSquareLargeDf from "../fixtures/chi-square-large-df.json";
import sequentialReference from "../fixtures/sequential-reference.json";
import reference from "../fixtures/stats-reference.json";
import { mulberry32 } from "../support/ab-simulation";

/** |actual − expected| ≤ rel·|expected| + abs, with a readable failure message. */
function expectClose(
  actual: number | null | undefined,
  expectedValue: number | undefined,
  rel: number,
  abs = 0,
) {
  expect(expectedValue, "reference value").toBeTypeOf("number");
  const expected = expectedValue as number;
  expect(actual, `expected a number close to ${expected}`).toBeTypeOf("number");
  const error = Math.abs((actual as number) - expected);
  const bound = rel * Math.abs(expected) + abs;
  expect(
    error <= bound,
    `${actual} vs ${expected}: error ${error.toExponential(2)} > ${bound.toExponential(2)}`,
  ).toBe(true);
}

/** Every number anywhere in the value is finite (no NaN, no ±Infinity). */
function expectAllFinite(value: unknown, path = "$"): void {
  if (typeof value === "number") {
    expect(Number.isFinite(value), `${path} = ${value}`).toBe(true);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => expectAllFinite(v, `${path}[${i}]`));
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) expectAllFinite(v, `${path}.${k}`);
  }
}

function statsOf(values: readonly number[]): SufficientStats {
  return values.reduce<SufficientStats>(
    (s, x) => ({ n: s.n + 1, sum: s.sum + x, sumSq: s.sumSq + x * x }),
    { n: 0, sum: 0, sumSq: 0 },
  );
}

const conversions = (n: number, converters: number): SufficientStats => ({
  n,
  sum: converters,
  sumSq: converters,
});

const d = reference.distributions;

describe("distributions against 50-digit mpmath (fixture)", () => {
  it.each(d.normalCdf)("Φ($x) = $p", ({ x, p }) => expectClose(normalCdf(x), p, 1e-12));
  it.each(d.normalQuantile)("Φ⁻¹($p) = $x", ({ p, x }) =>
    expectClose(normalQuantile(p), x, 1e-12, 1e-15),
  );
  it.each(d.studentTCdf)("F_t($t; df $df) = $p", ({ t, df, p }) =>
    expectClose(studentTCdf(t, df), p, 1e-12),
  );
  it.each(d.studentTQuantile)("F_t⁻¹($p; df $df) = $t", ({ p, df, t }) =>
    expectClose(studentTQuantile(p, df), t, 1e-12, 1e-15),
  );
  it.each(d.chiSquareSf)("P(χ²_$df > $x) = $p", ({ x, df, p }) =>
    expectClose(chiSquareSf(x, df), p, 1e-12),
  );

  // scripts/chi-square-reference.py (90-digit decimal series): large df, where ln Γ(df/2) is
  // ~1e9 and its rounding used to leak into the tail (4.9e-9 relative at df 1e7, 1.3e-7 at 1e8).
  // At df 1e8 the continued fraction's ~1e4 steps still add up to ~3e-12.
  it.each(chiSquareLargeDf.chiSquareSf)("P(χ²_$df > $x) = $p (large df)", ({ x, df, p }) =>
    expectClose(chiSquareSf(x, df), p, df < 1e8 ? 1e-12 : 5e-12),
  );

  it("handles the edges without NaN", () => {
    expect(normalCdf(-Infinity)).toBe(0);
    expect(normalCdf(Infinity)).toBe(1);
    expect(normalQuantile(0)).toBe(-Infinity);
    expect(normalQuantile(1)).toBe(Infinity);
    expect(studentTCdf(-Infinity, 3)).toBe(0);
    expect(studentTCdf(Infinity, 3)).toBe(1);
    expect(studentTCdf(0, 7.5)).toBe(0.5);
    expect(studentTCdf(1.3, Infinity)).toBe(normalCdf(1.3));
    expect(studentTQuantile(0.5, 4)).toBe(0);
    expect(chiSquareSf(0, 2)).toBe(1);
    expect(chiSquareSf(1e6, 2)).toBe(0);
  });

  it("rejects invalid arguments instead of returning NaN", () => {
    expect(() => normalCdf(NaN)).toThrow(RangeError);
    expect(() => normalQuantile(1.5)).toThrow(RangeError);
    expect(() => studentTCdf(1, 0)).toThrow(RangeError);
    expect(() => studentTQuantile(NaN, 3)).toThrow(RangeError);
    expect(() => chiSquareSf(1, -1)).toThrow(RangeError);
  });

  it("inverts: F(F⁻¹(p)) = p across df and tails", () => {
    for (const df of [0.7, 1, 2, 3.3, 12, 250, 4e4, 3e7]) {
      for (const p of [1e-200, 1e-30, 1e-8, 0.003, 0.04, 0.2, 0.49, 0.51, 0.9, 0.999]) {
        expectClose(studentTCdf(studentTQuantile(p, df), df), p, 1e-11);
      }
    }
  });
});

describe("issue example (must match exactly)", () => {
  const A: SufficientStats = { n: 3407, sum: 1396.87, sumSq: 52377.9767 };
  const B: SufficientStats = { n: 3461, sum: 2422.7, sumSq: 134698.29 };

  it("Welch: relative lift 0.70732, SE 0.37879, p 0.06191, 95% CI (−0.03526, 1.44989)", () => {
    const { relative } = welchTest(A, B, 0.05);
    expect(relative).not.toBeNull();
    expect(relative!.estimate).toBeCloseTo(0.70732, 5);
    expect(relative!.se).toBeCloseTo(0.37879, 5);
    expect(relative!.pValue).toBeCloseTo(0.06191, 5);
    expect(relative!.ci[0]).toBeCloseTo(-0.03526, 5);
    expect(relative!.ci[1]).toBeCloseTo(1.44989, 5);
  });

  it("Welch: absolute difference 0.29, p 0.02016", () => {
    const { absolute } = welchTest(A, B, 0.05);
    expect(absolute!.estimate).toBeCloseTo(0.29, 5);
    expect(absolute!.pValue).toBeCloseTo(0.02016, 5);
  });

  it("compareVariation in fixed mode reports the same numbers", () => {
    const c = compareVariation(A, B, { mode: "fixed", alpha: 0.05 });
    expect(c.pValue).toBeCloseTo(0.06191, 5);
    expect(c.ci![0]).toBeCloseTo(-0.03526, 5);
    expect(c.ci![1]).toBeCloseTo(1.44989, 5);
    expect(c.relative!.estimate).toBeCloseTo(0.70732, 5);
    expect(c.relative!.se).toBeCloseTo(0.37879, 5);
    expect(c.absolute!.estimate).toBeCloseTo(0.29, 5);
    expect(c.absolute!.pValue).toBeCloseTo(0.02016, 5);
    expect(c.significant).toBe(false);
    expect(c.verdict).toBe("inconclusive");
  });

  it("Benjamini–Hochberg on [0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138]", () => {
    const q = benjaminiHochberg([0.898, 0.138, 0.007, 0.964, 0.538, 0.006, 0.138]);
    const expected = [0.964, 0.2415, 0.0245, 0.964, 0.7532, 0.0245, 0.2415];
    expect(q).toHaveLength(expected.length);
    q.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 10));
  });
});

describe("Welch t test (fixture: scipy ttest_ind / ttest_ind_from_stats, delta method)", () => {
  it.each(reference.welch)("$name", (c) => {
    const result = welchTest(c.control, c.treatment, c.alpha);
    for (const key of ["absolute", "relative"] as const) {
      const got = result[key]!;
      const want = c[key];
      expect(got, key).not.toBeNull();
      expectClose(got.estimate, want.estimate, 1e-12, 1e-15);
      expectClose(got.se, want.se, 1e-9);
      expectClose(got.df, want.df, 1e-9);
      // scipy's t tail is good to ~1e-9 relative
      expectClose(got.pValue, want.pValue, 1e-8, 1e-16);
      // (an interval end near 0 is a difference: compare it on the scale of the SE)
      expectClose(got.ci[0], want.ci[0], 1e-9, 1e-9 * want.se);
      expectClose(got.ci[1], want.ci[1], 1e-9, 1e-9 * want.se);
    }
  });
});

describe("compareVariation (fixtures: fixed from scipy, sequential from scripts/sequential-reference.py)", () => {
  const modes = reference.welch.flatMap((c, i) =>
    (["fixed", "sequential"] as const).map((mode) => ({ ...c, mode, index: i })),
  );
  it.each(modes)("$name, $mode", (c) => {
    const options: CompareOptions = {
      mode: c.mode,
      alpha: c.alpha,
      nStar: c.nStar,
      higherIsBetter: c.higherIsBetter,
    };
    const result = compareVariation(c.control, c.treatment, options);
    const sequential = sequentialReference.cases[c.index]!;
    expect(sequential.name).toBe(c.name);
    // fixed: Welch on the lift, cut at −100 % for conversion rates (the fixture's raw interval
    // can go below); sequential: the mixture test of μt − μc and its Fieller interval
    const rate = [c.control, c.treatment].every((s) => s.sum === s.sumSq && s.sum <= s.n);
    const want =
      c.mode === "fixed"
        ? {
            ...c.fixed,
            ci: [rate ? Math.max(-1, c.fixed.ci[0]!) : c.fixed.ci[0]!, c.fixed.ci[1]!],
            se: c.relative.se,
          }
        : sequential;
    expect(result.reason).toBeNull();
    expect(result.verdict).toBe(want.verdict);
    expect(result.significant).toBe(want.pValue < c.alpha);
    expectClose(result.pValue, want.pValue, 1e-8, 1e-16);
    for (const end of [0, 1] as const) {
      if (want.ci[end] === null) expect(result.ci![end]).toBeNull();
      else expectClose(result.ci![end], want.ci[end]!, 1e-9, 1e-9 * want.se);
    }
    // relative = the lift with the mode's p and interval; absolute = Welch in both modes
    expect(result.relative!.pValue).toBe(result.pValue);
    expect(result.relative!.ci).toEqual(result.ci);
    expectClose(result.relative!.estimate, c.relative.estimate, 1e-12, 1e-15);
    expectClose(result.relative!.se, want.se, 1e-9);
    expectClose(result.absolute!.pValue, c.absolute.pValue, 1e-8, 1e-16);
    expectClose(result.absolute!.ci[0], c.absolute.ci[0], 1e-9, 1e-9 * c.absolute.se);
    expect(result.control.n).toBe(c.control.n);
    expectClose(result.treatment.mean, c.treatment.sum / c.treatment.n, 1e-15);
    expectAllFinite(result);
  });

  it("defaults: sequential, α = 0.1, N* = 5000, higher is better", () => {
    const control = conversions(4000, 400);
    const treatment = conversions(4000, 480);
    expect(compareVariation(control, treatment)).toEqual(
      compareVariation(control, treatment, {
        mode: "sequential",
        alpha: 0.1,
        nStar: 5000,
        minSamplePerArm: 30,
        higherIsBetter: true,
      }),
    );
    expect(compareVariation(control, treatment, { alpha: undefined })).toEqual(
      compareVariation(control, treatment),
    );
  });

  it("the verdict follows the metric's direction", () => {
    const control = conversions(4000, 400);
    const up = conversions(4000, 520);
    expect(compareVariation(control, up).verdict).toBe("winner");
    expect(compareVariation(control, up, { higherIsBetter: false }).verdict).toBe("loser");
    expect(compareVariation(up, control).verdict).toBe("loser");
    expect(compareVariation(up, control, { higherIsBetter: false }).verdict).toBe("winner");
    expect(compareVariation(control, conversions(4000, 405)).verdict).toBe("inconclusive");
  });

  it("rejects invalid options (configuration errors), not data", () => {
    const s = conversions(100, 10);
    expect(() => compareVariation(s, s, { alpha: 0 })).toThrow(RangeError);
    expect(() => compareVariation(s, s, { alpha: 1 })).toThrow(RangeError);
    expect(() => compareVariation(s, s, { nStar: -5 })).toThrow(RangeError);
    expect(() => compareVariation(s, s, { mode: "bayesian" as "fixed" })).toThrow(RangeError);
    expect(() => compareVariation(s, s, { minSamplePerArm: NaN })).toThrow(RangeError);
  });
});

describe("guards: never NaN or Infinity", () => {
  const ok = conversions(1000, 100);
  const cases: Array<[string, SufficientStats, SufficientStats, string]> = [
    ["no visitors at all", EMPTY_STATS, EMPTY_STATS, "no_visitors"],
    ["no visitors in treatment", ok, EMPTY_STATS, "no_visitors"],
    ["no visitors in control", EMPTY_STATS, ok, "no_visitors"],
    ["n = 1 in each arm", conversions(1, 1), conversions(1, 0), "too_few_visitors"],
    ["n = 1 in control", conversions(1, 1), ok, "too_few_visitors"],
    ["below the minimum sample", conversions(29, 5), ok, "too_few_visitors"],
    ["no conversions anywhere", conversions(1000, 0), conversions(1000, 0), "no_conversions"],
    ["zero baseline", conversions(1000, 0), conversions(1000, 12), "zero_baseline"],
    [
      "everyone converted in both arms",
      conversions(500, 500),
      conversions(600, 600),
      "zero_variance",
    ],
    [
      "same order value for everyone",
      { n: 50, sum: 50 * 0.1, sumSq: 50 * 0.1 * 0.1 },
      { n: 60, sum: 60 * 0.1, sumSq: 60 * 0.1 * 0.1 },
      "zero_variance",
    ],

    ["negative baseline (refunds)", { n: 100, sum: -50, sumSq: 400 }, ok, "negative_baseline"],
    ["NaN sum", { n: 100, sum: NaN, sumSq: 10 }, ok, "invalid_stats"],
    ["negative n", { n: -3, sum: 1, sumSq: 1 }, ok, "invalid_stats"],
    ["infinite sumSq", ok, { n: 100, sum: 10, sumSq: Infinity }, "invalid_stats"],
  ];

  it.each(cases)("%s → not_enough_data (%s)", (_name, control, treatment, reason) => {
    for (const mode of ["fixed", "sequential"] as const) {
      const c = compareVariation(control, treatment, { mode });
      expect(c.verdict).toBe("not_enough_data");
      expect(c.reason).toBe(reason);
      expect(NOT_ENOUGH_DATA_REASONS).toContain(c.reason);
      expect(c.significant).toBe(false);
      expect(c.pValue).toBeNull();
      expect(c.ci).toBeNull();
      expect(c.absolute).toBeNull();
      expect(c.relative).toBeNull();
      expectAllFinite(c);
    }
  });

  it("each arm constant on its own: fixed mode has no Welch SE, sequential uses the pooled one", () => {
    // everyone converted in control, no one in treatment
    const fixed = compareVariation(conversions(500, 500), conversions(500, 0), { mode: "fixed" });
    expect(fixed.reason).toBe("zero_variance");
    const sequential = compareVariation(conversions(500, 500), conversions(500, 0));
    expect(sequential.verdict).toBe("loser");
    expect(sequential.absolute).toBeNull(); // Welch is undefined
    expect(sequential.ci![0]).toBe(-1);
    expectAllFinite(sequential);
  });

  it("minSamplePerArm is configurable but never below 2", () => {
    const small = conversions(5, 2);
    const other = conversions(6, 4);
    expect(compareVariation(small, other).reason).toBe("too_few_visitors");
    expect(compareVariation(small, other, { minSamplePerArm: 5 }).reason).toBeNull();
    expect(compareVariation(conversions(1, 1), other, { minSamplePerArm: 0 }).reason).toBe(
      "too_few_visitors",
    );
  });

  it("extreme but valid data stays finite", () => {
    const extremes: Array<[SufficientStats, SufficientStats]> = [
      [conversions(1e9, 1), conversions(1e9, 3)],
      [conversions(1e9, 5e8), conversions(1e9, 5e8 + 1e6)],
      [conversions(40, 1), conversions(40, 40)],
      [conversions(40, 39), conversions(40, 0)],
      [statsOf([1e-300, 2e-300, 0, 0, 5e-300]), statsOf([3e-300, 0, 0, 1e-300, 1e-300])],
      [statsOf([1e150, 0, 3e150, 0, 2e150]), statsOf([0, 1e150, 0, 0, 4e150])],
    ];
    for (const [control, treatment] of extremes) {
      for (const mode of ["fixed", "sequential"] as const) {
        const c = compareVariation(control, treatment, { mode, minSamplePerArm: 2 });
        expectAllFinite(c);
        if (c.pValue !== null) expect(c.pValue).toBeGreaterThanOrEqual(0);
        if (c.pValue !== null) expect(c.pValue).toBeLessThanOrEqual(1);
      }
    }
  });

  it("welchTest returns nulls, not NaN, when undefined", () => {
    expect(welchTest(conversions(1, 1), conversions(10, 2), 0.1)).toEqual({
      absolute: null,
      relative: null,
    });
    expect(welchTest(conversions(10, 10), conversions(10, 10), 0.1)).toEqual({
      absolute: null,
      relative: null,
    });
    const zeroBaseline = welchTest(conversions(10, 0), conversions(10, 3), 0.1);
    expect(zeroBaseline.absolute).not.toBeNull();
    expect(zeroBaseline.relative).toBeNull();
    expectAllFinite(zeroBaseline);
  });
});

describe("sufficient statistics", () => {
  it("mean and variance", () => {
    expect(mean(EMPTY_STATS)).toBeNull();
    expect(variance(EMPTY_STATS)).toBeNull();
    expect(variance({ n: 1, sum: 3, sumSq: 9 })).toBeNull();
    const s = statsOf([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(mean(s)).toBe(5);
    expectClose(variance(s), 32 / 7, 1e-15);
    expect(variance(conversions(10, 0))).toBe(0);
  });

  it("clamps rounding noise to a variance of 0", () => {
    // Σx² − (Σx)²/n is 0 in exact arithmetic here but not in floating point.
    for (const x of [0.1, 0.3, 1 / 3, 19.99, 1e-7]) {
      for (const n of [3, 7, 1000, 12345]) {
        const s = statsOf(Array.from({ length: n }, () => x));
        expect(variance(s), `${n} × ${x}`).toBe(0);
      }
    }
  });

  it("merging disjoint sets equals the statistics of their union", () => {
    const a = [0, 0, 12.5, 0, 3.25, 0, 99.99];
    const b = [1, 0, 0, 0, 0, 7.5];
    const c = [0, 0, 0, 42];
    const whole = statsOf([...a, ...b, ...c]);
    const merged = mergeStats(mergeStats(statsOf(a), statsOf(b)), statsOf(c));
    expect(merged.n).toBe(whole.n);
    expectClose(merged.sum, whole.sum, 1e-14);
    expectClose(merged.sumSq, whole.sumSq, 1e-14);
    // commutative, associative, EMPTY is the identity
    expect(mergeStats(statsOf(a), statsOf(b))).toEqual(mergeStats(statsOf(b), statsOf(a)));
    const left = mergeStats(mergeStats(statsOf(a), statsOf(b)), statsOf(c));
    const right = mergeStats(statsOf(a), mergeStats(statsOf(b), statsOf(c)));
    expectClose(left.sumSq, right.sumSq, 1e-15);
    expect(mergeStats(statsOf(a), EMPTY_STATS)).toEqual(statsOf(a));
    expectClose(mean(merged), mean(whole)!, 1e-14);
    expectClose(variance(merged), variance(whole)!, 1e-12);
  });

  it("day-by-day counts merged give the same comparison as the totals", () => {
    const days = [
      [conversions(800, 70), conversions(790, 88)],
      [conversions(1200, 99), conversions(1230, 131)],
      [conversions(950, 80), conversions(940, 101)],
    ] as const;
    const control = days.map(([c]) => c).reduce(mergeStats, EMPTY_STATS);
    const treatment = days.map(([, t]) => t).reduce(mergeStats, EMPTY_STATS);
    expect(control).toEqual(conversions(2950, 249));
    expect(compareVariation(control, treatment)).toEqual(
      compareVariation(conversions(2950, 249), conversions(2960, 320)),
    );
  });
});

describe("sequential test (fixture: mSPRT closed form in numpy)", () => {
  it.each(reference.sequential)(
    "θ̂ $estimate, SE $se, N $n, α $alpha, N* $nStar",
    ({ estimate, se, n, alpha, nStar, pValue, ci }) => {
      const result = sequentialTest(estimate, se, n, alpha, nStar);
      expectClose(result.pValue, pValue, 1e-10, 1e-300);
      expectClose(result.ci[0], ci[0], 1e-10, 1e-14);
      expectClose(result.ci[1], ci[1], 1e-10, 1e-14);
    },
  );

  it("p is in [0, 1] and decreases as the evidence grows", () => {
    for (const n of [200, 5000, 1e5, 1e7]) {
      let previous = Infinity;
      for (let z = 0; z <= 40; z += 0.25) {
        const { pValue, ci } = sequentialTest(z * 0.01, 0.01, n, 0.1, 5000);
        expect(pValue).toBeGreaterThanOrEqual(0);
        expect(pValue).toBeLessThanOrEqual(1);
        expect(pValue).toBeLessThanOrEqual(previous);
        if (pValue < 1 && pValue > 0) expect(pValue).toBeLessThan(previous);
        previous = pValue;
        // symmetric in the sign of the estimate
        expect(sequentialTest(-z * 0.01, 0.01, n, 0.1, 5000).pValue).toBe(pValue);
        // the interval excludes 0 exactly when p < α
        expect(ci[0] > 0).toBe(pValue < 0.1);
        expectAllFinite({ pValue, ci });
      }
    }
  });

  it("with a true effect, p falls as visitors accumulate", () => {
    // lift 10 % on a 10 % conversion rate: SE shrinks like 1/√N
    let previous = 1;
    for (const perArm of [2000, 5000, 10000, 20000, 50000, 100000]) {
      const c = compareVariation(
        conversions(perArm, perArm * 0.1),
        conversions(perArm, perArm * 0.11),
      );
      // capped at 1 while the evidence is weak, then strictly falling
      if (previous < 1) expect(c.pValue!).toBeLessThan(previous);
      else expect(c.pValue!).toBeLessThanOrEqual(1);
      previous = c.pValue!;
    }
    expect(previous).toBeLessThan(0.1);
  });

  it("is never more significant than the fixed-horizon test of the same difference", () => {
    for (const perArm of [200, 1000, 2500, 10000, 50000, 200000]) {
      for (const rate of [0.02, 0.1, 0.4]) {
        for (const lift of [0, 0.01, 0.05, 0.1, 0.2, 0.5]) {
          const control = conversions(perArm, Math.round(perArm * rate));
          const treatment = conversions(perArm, Math.round(perArm * rate * (1 + lift)));
          const fixed = compareVariation(control, treatment, { mode: "fixed" });
          const sequential = compareVariation(control, treatment, { mode: "sequential" });
          if (fixed.pValue === null) continue;
          // (the same statistic: Welch's test of μt − μc; the fixed lift test is another one)
          expect(sequential.pValue!, `${perArm} × ${rate}, lift ${lift}`).toBeGreaterThanOrEqual(
            fixed.absolute!.pValue,
          );
          // and its interval is wider (an open end: unbounded)
          const [low, high] = sequential.ci!;
          expect((high ?? Infinity) - (low ?? -Infinity)).toBeGreaterThan(
            fixed.ci![1]! - fixed.ci![0]!,
          );
        }
      }
    }
  });

  it("does not overflow for tiny standard errors or huge z", () => {
    expectAllFinite(sequentialTest(1, 1e-200, 1e9, 0.1, 5000));
    expect(sequentialTest(1, 1e-200, 1e9, 0.1, 5000).pValue).toBe(0);
    expectAllFinite(sequentialTest(1e-300, 1e-300, 1, 0.1, 5000));
  });

  it("rejects invalid arguments", () => {
    expect(() => sequentialTest(0.1, 0, 100, 0.1, 5000)).toThrow(RangeError);
    expect(() => sequentialTest(0.1, 0.1, 0, 0.1, 5000)).toThrow(RangeError);
    expect(() => sequentialTest(NaN, 0.1, 100, 0.1, 5000)).toThrow(RangeError);
    expect(() => sequentialTest(0.1, 0.1, 100, 0.1, 0)).toThrow(RangeError);
  });
});

describe("low counts (issue 19 defects)", () => {
  it("a rate near 0 does not collapse the sequential test's variance", () => {
    // 20/1000 vs 1/1000: the delta-method lift SE treats the treatment's 0.1 % as nearly
    // certain (Welch lift p 4.7e-67); the absolute difference is only ~4 SE from 0.
    const c = compareVariation(conversions(1000, 20), conversions(1000, 1), { alpha: 0.05 });
    expect(c.significant).toBe(true);
    expect(c.pValue!).toBeGreaterThan(1e-4);
    expect(c.verdict).toBe("loser");
  });

  it("a treatment without conversions is compared, not hidden as zero_variance", () => {
    // absolute Welch p = 7.1e-6 (t = 4.515, df 999)
    for (const mode of ["fixed", "sequential"] as const) {
      const c = compareVariation(conversions(1000, 20), conversions(1000, 0), { mode });
      expect(c.reason, mode).toBeNull();
      expect(c.absolute!.estimate).toBeCloseTo(-0.02, 15);
      expectClose(c.absolute!.pValue, 7.1e-6, 0.02);
      expect(c.relative!.estimate).toBe(-1);
      expect(c.verdict, mode).toBe("loser");
      expect(c.ci![0], mode).toBe(-1);
      expectAllFinite(c);
    }
  });

  it("a conversion rate's lift interval never goes below −100 %, in either mode", () => {
    for (const mode of ["fixed", "sequential"] as const) {
      for (const [c, t] of [
        [20, 1],
        [20, 0],
        [5, 1],
        [3, 0],
        [1, 0],
        [1, 3],
        [400, 2],
      ] as const) {
        for (const alpha of [0.05, 0.1]) {
          const result = compareVariation(conversions(1000, c), conversions(1000, t), {
            mode,
            alpha,
          });
          if (result.ci === null) continue;
          expect(result.ci[0], `${mode} ${c} vs ${t}`).toBeGreaterThanOrEqual(-1);
        }
      }
    }
  });
});

describe("sequential lift interval agrees with the test (revenue: baseline inside the noise)", () => {
  // 5000 visitors per arm. Control: four large orders and refunds that nearly cancel (mean
  // 0.14 cents, SE ≈ 1.6: inside the noise); treatment: 1000 buyers of 100 cents (mean 20).
  const control: SufficientStats = {
    n: 5000,
    sum: 5000 - 4000 + 3000 - 3500 + 200,
    sumSq: 5000 ** 2 + 4000 ** 2 + 3000 ** 2 + 3500 ** 2 + 200 ** 2,
  };
  const buyers = (value: number): SufficientStats => ({
    n: 5000,
    sum: 1000 * value,
    sumSq: 1000 * value * value,
  });
  const excludesZero = ([low, high]: readonly [number | null, number | null]) =>
    (low !== null && low > 0) || (high !== null && high < 0);

  it("a significant lift has a bounded end on its side of 0 (was [null, null])", () => {
    const c = compareVariation(control, buyers(100), { alpha: 0.1 });
    expect(c.significant).toBe(true);
    expect(c.verdict).toBe("winner");
    const [low, high] = c.ci!;
    expect(high).toBeNull();
    expect(low!).toBeGreaterThan(0);
    expect(low!).toBeLessThan(c.relative!.estimate);
    // the end is where the test of μt − k·μc turns: (μ̂t − k·μ̂c)² = c·(at + k²·ac), with the
    // variances of docs/statistics.md step 1, recomputed here from the raw sums
    const mc = control.sum / control.n;
    const mt = 20;
    const vc = variance(control)!;
    const vt = variance(buyers(100))!;
    const vp = variance(mergeStats(control, buyers(100)))!;
    const h = 2 / 5000;
    const lambda = Math.max(0, vp - (vc / 5000 + vt / 5000) / h);
    const ac = (vc + lambda) / 5000;
    const at = (vt + lambda) / 5000;
    const threshold = sequentialThreshold(10_000, 0.1, 5000);
    const gap = (k: number) => (mt - k * mc) ** 2 - threshold * (at + k * k * ac);
    const k = low! + 1;
    expectClose(gap(k), 0, 0, 1e-9 * threshold * (at + k * k * ac));
    expect(gap(k * 1.001)).toBeLessThan(0); // kept just above
    expect(gap(k * 0.999)).toBeGreaterThan(0); // rejected just below
  });

  it("a significant drop below 0 has a bounded upper end below 0", () => {
    const c = compareVariation(control, buyers(-100), { alpha: 0.1 });
    expect(c.significant).toBe(true);
    expect(c.ci![0]).toBeNull();
    expect(c.ci![1]!).toBeLessThan(0);
    expect(c.ci![1]!).toBeGreaterThan(c.relative!.estimate);
  });

  it("not significant: the interval stays open and holds 0, even with the estimate < 0", () => {
    // treatment mean −2 is clearly below 0 on its own, so the set of ratios is two half-lines
    // and the estimate's (−∞, k₁] lies below 1; reporting it alone would exclude a lift of 0
    // that the test does not reject
    const c = compareVariation(control, buyers(-10), { alpha: 0.1 });
    expect(c.significant).toBe(false);
    expect(c.ci).toEqual([null, null]);
  });

  it("random revenue data: the interval excludes 0 exactly when p < α, and holds the estimate", () => {
    const random = mulberry32(2024);
    let openAndSignificant = 0;
    for (let i = 0; i < 3000; i++) {
      // n visitors, a share buying, values with some refunds, a treatment shift
      const arm = (n: number, buyers: number, value: number, refunds: number) => {
        let s: SufficientStats = { n, sum: 0, sumSq: 0 };
        for (let b = 0; b < buyers; b++) {
          const x = (random() < refunds ? -1 : 1) * value * (0.2 + 2 * random());
          s = { n, sum: s.sum + x, sumSq: s.sumSq + x * x };
        }
        return s;
      };
      const n = 50 + Math.floor(random() * 3000);
      const value = 10 ** (random() * 4);
      const c = arm(n, Math.floor(random() * 40), value, random() * 0.5);
      const t = arm(n, Math.floor(random() * 400), value, random() * 0.6);
      const alpha = random() < 0.5 ? 0.05 : 0.1;
      const result = compareVariation(c, t, { alpha, nonNegative: false });
      if (result.ci === null) continue;
      const [low, high] = result.ci;
      const what = `case ${i}: ${JSON.stringify([c, t, alpha, result.ci, result.pValue])}`;
      expect(excludesZero(result.ci), what).toBe(result.significant);
      const estimate = result.relative!.estimate;
      expect(low === null || low <= estimate + 1e-9 * Math.abs(estimate), what).toBe(true);
      expect(high === null || high >= estimate - 1e-9 * Math.abs(estimate), what).toBe(true);
      if (result.significant && (low === null || high === null)) openAndSignificant += 1;
    }
    // the sweep reaches the case of the fix (significant with an open end) many times
    expect(openAndSignificant).toBeGreaterThan(50);
  });
});

describe("multiple-testing corrections (fixture: statsmodels multipletests)", () => {
  it.each(reference.corrections)("$name", ({ pValues, bh, holm: holmExpected }) => {
    const gotBh = benjaminiHochberg(pValues);
    const gotHolm = holm(pValues);
    expect(gotBh).toHaveLength(pValues.length);
    expect(gotHolm).toHaveLength(pValues.length);
    pValues.forEach((p, i) => {
      if (p === null) {
        expect(gotBh[i]).toBeNull();
        expect(gotHolm[i]).toBeNull();
      } else {
        expectClose(gotBh[i], bh[i]!, 1e-12);
        expectClose(gotHolm[i], holmExpected[i]!, 1e-12);
      }
    });
  });

  it("nulls pass through and do not count in m", () => {
    // m = 2, not 4: q = (2/1)·0.01 and (2/2)·0.04
    expect(benjaminiHochberg([null, 0.01, null, 0.04])).toEqual([null, 0.02, null, 0.04]);
    expect(benjaminiHochberg([0.02, null])).toEqual([0.02, null]);
    expect(holm([null, 0.02, 0.03])).toEqual([null, 0.04, 0.04]);
    expect(holm([null])).toEqual([null]);
    expect(benjaminiHochberg([])).toEqual([]);
  });

  it("adjusted p-values are ≥ the raw ones and ≤ 1", () => {
    const ps = [0.9, 0.0001, 0.3, 0.049, 0.051, 0.5, 1, 0];
    for (const adjust of [benjaminiHochberg, holm]) {
      adjust(ps).forEach((q, i) => {
        expect(q!).toBeGreaterThanOrEqual(ps[i]!);
        expect(q!).toBeLessThanOrEqual(1);
      });
    }
  });

  it("rejects p-values outside [0, 1]", () => {
    expect(() => benjaminiHochberg([0.1, NaN])).toThrow(RangeError);
    expect(() => holm([1.2])).toThrow(RangeError);
  });
});

describe("sample-ratio mismatch (fixture: scipy chisquare)", () => {
  it.each(reference.srm)("$name", (c) => {
    const result = sampleRatioMismatch(c.observed, c.weights);
    expect(result.checked).toBe(c.checked);
    expect(result.flagged).toBe(c.flagged);
    expect(result.df).toBe(c.df);
    if (c.chiSquare === null || c.pValue === null) {
      expect(result.chiSquare).toBeNull();
      expect(result.pValue).toBeNull();
    } else {
      expectClose(result.chiSquare, c.chiSquare, 1e-12, 1e-15);
      expectClose(result.pValue, c.pValue, 1e-10);
    }
  });

  it("flags a 50/50 experiment with 1000 vs 1200, not 1000 vs 1010", () => {
    expect(sampleRatioMismatch([1000, 1200], [50, 50])).toMatchObject({
      checked: true,
      flagged: true,
    });
    expect(sampleRatioMismatch([1000, 1010], [50, 50])).toMatchObject({
      checked: true,
      flagged: false,
    });
  });

  it("waits for 8 visitors per arm; options override the defaults", () => {
    expect(sampleRatioMismatch([7, 30], [1, 1]).checked).toBe(false);
    expect(sampleRatioMismatch([8, 12], [1, 1])).toMatchObject({ checked: true, flagged: false });
    // χ² = 8, p ≈ 0.0047: not below 0.001, below 0.01
    expect(sampleRatioMismatch([8, 24], [1, 1]).flagged).toBe(false);
    expect(sampleRatioMismatch([8, 24], [1, 1], { threshold: 0.01 }).flagged).toBe(true);
    expect(sampleRatioMismatch([20, 30], [1, 1], { minPerVariation: 25 }).checked).toBe(false);
    expect(sampleRatioMismatch([], []).checked).toBe(false);
    expect(sampleRatioMismatch([0, 0], [1, 1], { minPerVariation: 0 }).checked).toBe(false);
  });

  it("rejects mismatched or negative inputs", () => {
    expect(() => sampleRatioMismatch([10, 10], [1])).toThrow(RangeError);
    expect(() => sampleRatioMismatch([10, 10], [1, -1])).toThrow(RangeError);
  });
});

describe("visitors needed (fixture: normal formula, checked against statsmodels)", () => {
  it.each(reference.sampleSize)("$name → $visitors per arm", (c) => {
    expect(
      visitorsNeeded(c.baseline, { mde: c.mde, alpha: c.alpha, power: c.power, arms: c.arms }),
    ).toBe(c.visitors);
  });

  it("is null while the baseline is unknown", () => {
    expect(visitorsNeeded(EMPTY_STATS, { mde: 0.05 })).toBeNull();
    expect(visitorsNeeded(conversions(1, 1), { mde: 0.05 })).toBeNull();
    expect(visitorsNeeded(conversions(1000, 0), { mde: 0.05 })).toBeNull();
    expect(visitorsNeeded(conversions(1000, 1000), { mde: 0.05 })).toBeNull();
    expect(visitorsNeeded({ n: 100, sum: -5, sumSq: 50 }, { mde: 0.05 })).toBeNull();
  });

  it("defaults to α 0.1, power 0.8, two arms; more arms or a smaller mde need more", () => {
    const baseline = conversions(2000, 200);
    const base = visitorsNeeded(baseline, { mde: 0.05 })!;
    expect(base).toBe(visitorsNeeded(baseline, { mde: 0.05, alpha: 0.1, power: 0.8, arms: 2 }));
    expect(visitorsNeeded(baseline, { mde: 0.05, arms: 3 })!).toBeGreaterThan(base);
    expect(visitorsNeeded(baseline, { mde: 0.025 })!).toBeGreaterThan(3.9 * base);
    expect(() => visitorsNeeded(baseline, { mde: 0 })).toThrow(RangeError);
    expect(() => visitorsNeeded(baseline, { mde: 0.05, power: 1 })).toThrow(RangeError);
    expect(() => visitorsNeeded(baseline, { mde: 0.05, arms: 1 })).toThrow(RangeError);
  });
});
