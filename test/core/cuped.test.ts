/**
 * CUPED (src/core/stats/cuped.ts; docs/statistics.md "CUPED") against statsmodels' OLS on the same
 * per-visitor data (test/fixtures/cuped-reference.json, written by scripts/cuped-reference.py):
 * the adjusted estimate and its standard error, θ, and the unadjusted fit; then the test built on
 * it, and the cases without a covariate.
 */
import { describe, expect, it } from "vitest";
import reference from "../fixtures/cuped-reference.json";
import {
  cupedRegression,
  cupedTest,
  sequentialTest,
  type CovariateStats,
} from "../../src/core/stats/index";
import { analyzeExperiment, DEFAULT_ANALYSIS_OPTIONS } from "../../src/core/experiment-analysis";
import { mulberry32 } from "../support/ab-simulation";

const close = (actual: number, expected: number, relative = 1e-9) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(
    relative * Math.max(1e-12, Math.abs(expected)),
  );

describe("cupedRegression equals statsmodels' ols('y ~ T + x')", () => {
  it.each(reference.cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const fit = cupedRegression(c.control, c.treatment)!;
    expect(fit).not.toBeNull();
    close(fit.difference, c.difference);
    close(fit.se, c.se);
    close(fit.theta, c.theta);
    expect(fit.df).toBe(c.df);
    close(fit.unadjustedSe, c.unadjustedSe);
    close(c.treatment.sumY / c.treatment.n - c.control.sumY / c.control.n, c.unadjustedDifference);
    close(fit.varianceReduction, 1 - (c.se * c.se) / (c.unadjustedSe * c.unadjustedSe), 1e-8);
  });

  it("removes variance where x predicts y, and about none where it does not", () => {
    const byName = Object.fromEntries(reference.cases.map((c) => [c.name, c]));
    const of = (name: string) => {
      const c = byName[name]!;
      return cupedRegression(c.control, c.treatment)!.varianceReduction;
    };
    expect(of("event count, Poisson habit")).toBeGreaterThan(0.2);
    expect(of("conversion rate, converted before")).toBeGreaterThan(0.05);
    expect(Math.abs(of("covariate unrelated to y"))).toBeLessThan(0.01);
  });
});

describe("cupedTest", () => {
  const c = reference.cases[1]!;
  it("sequential: the mixture test of the adjusted difference, interval excluding 0 exactly when p < α", () => {
    const test = cupedTest(c.control, c.treatment, {
      mode: "sequential",
      alpha: 0.1,
      nStar: 5000,
      nonNegative: true,
    })!;
    const n = c.control.n + c.treatment.n;
    expect(test.pValue).toBe(sequentialTest(test.difference, test.testSe, n, 0.1, 5000).pValue);
    const excludes = test.differenceCi[0] > 0 || test.differenceCi[1] < 0;
    expect(excludes).toBe(test.pValue < 0.1);
    close(test.lift.estimate, test.difference / (c.control.sumY / c.control.n));
  });

  it("fixed: Student's t with n − 3 degrees of freedom", () => {
    const test = cupedTest(c.control, c.treatment, {
      mode: "fixed",
      alpha: 0.05,
      nStar: 5000,
      nonNegative: true,
    })!;
    expect(test.df).toBe(c.control.n + c.treatment.n - 3);
    expect(test.differenceCi[0]).toBeLessThan(test.difference);
    expect((test.differenceCi[0] > 0 || test.differenceCi[1] < 0) === test.pValue < 0.05).toBe(
      true,
    );
  });

  it("is null without a covariate, with too few visitors, or a zero control mean", () => {
    const noX: CovariateStats = { n: 100, sumY: 10, sumY2: 10, sumX: 0, sumX2: 0, sumXY: 0 };
    expect(cupedRegression(noX, noX)).toBeNull();
    const constX: CovariateStats = {
      n: 100,
      sumY: 10,
      sumY2: 10,
      sumX: 100,
      sumX2: 100,
      sumXY: 10,
    };
    expect(cupedRegression(constX, constX)).toBeNull();
    const tiny: CovariateStats = { n: 1, sumY: 1, sumY2: 1, sumX: 1, sumX2: 1, sumXY: 1 };
    expect(cupedRegression(tiny, c.treatment)).toBeNull();
    const zero: CovariateStats = { n: 50, sumY: 0, sumY2: 0, sumX: 5, sumX2: 7, sumXY: 0 };
    expect(
      cupedTest(zero, c.treatment, { mode: "fixed", alpha: 0.1, nStar: 1, nonNegative: true }),
    ).toBeNull();
    expect(cupedRegression({ ...noX, sumY: Number.NaN }, c.treatment)).toBeNull();
  });
});

describe("analyzeExperiment with covariates", () => {
  const c = reference.cases[1]!;
  const stats = {
    a: { n: c.control.n, sum: c.control.sumY, sumSq: c.control.sumY2 },
    b: { n: c.treatment.n, sum: c.treatment.sumY, sumSq: c.treatment.sumY2 },
  };
  const variations = [
    { id: "a", weight: 5000, visitors: c.control.n },
    { id: "b", weight: 5000, visitors: c.treatment.n },
  ];

  it("uses CUPED by default where a covariate exists, and says how much variance it removed", () => {
    const analysis = analyzeExperiment(variations, "a", [
      {
        id: "m",
        higherIsBetter: true,
        nonNegative: true,
        stats,
        covariates: { a: c.control, b: c.treatment },
      },
    ]);
    const b = analysis.metrics[0]!.variations[1]!;
    const fit = cupedRegression(c.control, c.treatment)!;
    expect(b.cuped).toMatchObject({ theta: fit.theta, varianceReduction: fit.varianceReduction });
    close(b.cuped!.difference.estimate, c.difference);
    // The test's SE: the larger of OLS's and the per-arm (Welch-type) one.
    close(b.cuped!.difference.se, fit.testSe);
    expect(fit.testSe).toBeGreaterThanOrEqual(fit.se);
    const test = cupedTest(c.control, c.treatment, {
      mode: "sequential",
      alpha: DEFAULT_ANALYSIS_OPTIONS.alpha,
      nStar: DEFAULT_ANALYSIS_OPTIONS.nStar,
      nonNegative: true,
    })!;
    expect(b.pValue).toBe(test.pValue);
    expect(b.lift!.estimate).toBe(test.lift.estimate);
    expect(b.cuped!.unadjustedPValue).toBeGreaterThan(b.pValue!);
  });

  it("off on request, and without covariates: the unadjusted comparison", () => {
    const off = analyzeExperiment(
      variations,
      "a",
      [
        {
          id: "m",
          higherIsBetter: true,
          nonNegative: true,
          stats,
          covariates: { a: c.control, b: c.treatment },
        },
      ],
      { ...DEFAULT_ANALYSIS_OPTIONS, cuped: false },
    );
    const none = analyzeExperiment(variations, "a", [
      { id: "m", higherIsBetter: true, nonNegative: true, stats },
    ]);
    expect(off.metrics[0]!.variations[1]!.cuped).toBeNull();
    expect(off.metrics[0]!.variations[1]!.pValue).toBe(none.metrics[0]!.variations[1]!.pValue);
  });
});

describe("CUPED under unequal arms and spreads (seeded simulation)", () => {
  it("keeps the false-positive rate at α for a 90/10 split whose small arm is noisier", () => {
    const random = mulberry32(5);
    const normal = () => {
      let u = 0;
      while (u === 0) u = random();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
    };
    const arm = (n: number, spread: number): CovariateStats => {
      const s = { n, sumY: 0, sumY2: 0, sumX: 0, sumX2: 0, sumXY: 0 };
      for (let i = 0; i < n; i++) {
        const x = normal();
        const y = 10 + 0.5 * x + spread * normal();
        s.sumY += y;
        s.sumY2 += y * y;
        s.sumX += x;
        s.sumX2 += x * x;
        s.sumXY += x * y;
      }
      return s;
    };
    let falsePositives = 0;
    const runs = 400;
    for (let r = 0; r < runs; r++) {
      const test = cupedTest(arm(9000, 1), arm(1000, 3), {
        mode: "fixed",
        alpha: 0.1,
        nStar: 5000,
        nonNegative: false,
      })!;
      if (test.pValue < 0.1) falsePositives++;
    }
    // OLS's classical SE alone gave ≈ 45 % here.
    expect(falsePositives / runs).toBeLessThan(0.1 + 3 * Math.sqrt((0.1 * 0.9) / runs));
  });
});
