/**
 * Guardrails and multivariate main effects (src/core/stats/compare.ts `testHarm`,
 * src/core/stats/sequential.ts `oneSidedSequentialTest`, src/core/experiment-analysis.ts
 * `checkGuardrails`, `analyzeSections`; docs/statistics.md "Guardrails", "Multivariate results"):
 * the one-sided mixture's closed form against a numeric integral of its definition, its validity
 * under continuous monitoring by seeded simulation, its power, and the pooling of sections.
 */
import { describe, expect, it } from "vitest";
import {
  analyzeBreakdown,
  analyzeSections,
  checkGuardrails,
  DEFAULT_ANALYSIS_OPTIONS,
} from "../../src/core/experiment-analysis";
import {
  benjaminiHochberg,
  normalPdf,
  oneSidedSequentialTest,
  sequentialRho,
  testHarm,
} from "../../src/core/stats/index";
import { binomial, mulberry32, simulateGuardrail } from "../support/ab-simulation";

/** Λ by its definition, 2∫₀^∞ exp((θθ̂ − θ²/2)/V) φ(θ; 0, τ²) dθ, with Simpson's rule. */
function lambdaByIntegral(estimate: number, se: number, n: number, alpha: number, nStar: number) {
  const rho = sequentialRho(alpha, nStar);
  const v = se * se;
  const tau = Math.sqrt(rho * rho * n * v);
  const f = (t: number) => Math.exp((t * estimate - (t * t) / 2) / v) * (normalPdf(t / tau) / tau);
  const upper = Math.max(0, estimate) + 12 * Math.max(tau, se);
  const steps = 20_000;
  const h = upper / steps;
  let sum = f(0) + f(upper);
  for (let i = 1; i < steps; i++) sum += (i % 2 === 1 ? 4 : 2) * f(i * h);
  return (2 * (sum * h)) / 3;
}

describe("oneSidedSequentialTest", () => {
  it.each([
    [0.01, 0.004, 2000, 0.1, 5000],
    [0.02, 0.004, 2000, 0.05, 5000],
    [-0.003, 0.004, 800, 0.1, 5000],
    [0.5, 0.3, 300, 0.1, 100],
    [0, 1, 10_000, 0.05, 5000],
  ])(
    "p = 1/Λ of the closed form equals the integral (θ̂ %f, SE %f, N %i)",
    (est, se, n, a, nStar) => {
      const p = oneSidedSequentialTest(est, se, n, a, nStar);
      const expected = Math.min(1, 1 / lambdaByIntegral(est, se, n, a, nStar));
      expect(p).toBeCloseTo(expected, 6);
    },
  );

  it("is smaller than 1 only on the tested side, and at least as sharp as the two-sided mixture there", () => {
    expect(oneSidedSequentialTest(-0.05, 0.01, 5000, 0.1, 5000)).toBe(1);
    const p = oneSidedSequentialTest(0.04, 0.01, 5000, 0.1, 5000);
    expect(p).toBeLessThan(0.01);
  });

  it("refuses meaningless input", () => {
    expect(() => oneSidedSequentialTest(Number.NaN, 1, 10, 0.1, 100)).toThrow(RangeError);
    expect(() => oneSidedSequentialTest(1, 0, 10, 0.1, 100)).toThrow(RangeError);
    expect(() => oneSidedSequentialTest(1, 1, 10, 1.5, 100)).toThrow(RangeError);
  });
});

/** Seeded continuous monitoring: a look every 100 visitors per arm up to 5,000 (50 looks). */
const alarms = (rate: number, change: number, experiments: number, seed: number, alpha = 0.1) =>
  simulateGuardrail({ rate, change, experiments, step: 100, maxPerArm: 5000, alpha, seed });

describe("testHarm under continuous monitoring (seeded simulation)", () => {
  it.each([0.01, 0.05, 0.2])(
    "A/A at %f conversion: false alarms over 50 looks stay at or below α = 0.1",
    (rate) => {
      const { rate: falseAlarms, se } = alarms(rate, 0, 600, 1234 + Math.round(rate * 1000));
      // ≤ α, with 3 Monte-Carlo standard errors of room only upwards of the estimate.
      expect(falseAlarms - 3 * se).toBeLessThanOrEqual(0.1);
      expect(falseAlarms).toBeLessThan(0.1);
    },
  );

  it("finds a 30 % drop of a 10 % conversion rate in most experiments, and never a rise", () => {
    expect(alarms(0.1, -0.3, 200, 99).rate).toBeGreaterThan(0.9);
    expect(alarms(0.1, 0.3, 200, 98).rate).toBe(0);
  });

  it("orients harm by the winning direction, and needs data", () => {
    const control = { n: 2000, sum: 200, sumSq: 200 };
    const more = { n: 2000, sum: 300, sumSq: 300 };
    const opts = { alpha: 0.05, nStar: 5000 };
    expect(testHarm(control, more, { ...opts, higherIsBetter: true }).harmed).toBe(false);
    const rise = testHarm(control, more, { ...opts, higherIsBetter: false });
    expect(rise.harmed).toBe(true);
    expect(rise.difference).toBeCloseTo(0.05, 12);
    expect(rise.lift).toBeCloseTo(0.5, 12);
    expect(testHarm({ n: 1, sum: 0, sumSq: 0 }, more, { ...opts, higherIsBetter: true })).toEqual({
      pValue: null,
      harmed: false,
      difference: null,
      lift: null,
    });
  });

  it("checkGuardrails tests every guardrail × variation against the baseline", () => {
    const results = checkGuardrails(
      [
        { id: "a", weight: 5000, visitors: 4000 },
        { id: "b", weight: 5000, visitors: 4000 },
      ],
      "a",
      [
        {
          id: "checkout",
          higherIsBetter: true,
          action: "pause",
          stats: { a: { n: 4000, sum: 400, sumSq: 400 }, b: { n: 4000, sum: 250, sumSq: 250 } },
        },
      ],
      { ...DEFAULT_ANALYSIS_OPTIONS, alpha: 0.05 },
    );
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({
      metricId: "checkout",
      variationId: "b",
      action: "pause",
      harmed: true,
    });
    expect(results[0]!.pValue!).toBeLessThan(1e-6);
  });
});

describe("analyzeSections (multivariate main effects)", () => {
  // Headline (h0, h1) × button (b0, b1); only h1 changes the rate (10 % → 13 %).
  const combos = [
    ["c00", "h0", "b0", 0.1],
    ["c01", "h0", "b1", 0.1],
    ["c10", "h1", "b0", 0.13],
    ["c11", "h1", "b1", 0.13],
  ] as const;
  const visitors = 6000;

  it("pools each variant over the other section and finds the effect only where it is", () => {
    const random = mulberry32(7);
    const stats: Record<string, { n: number; sum: number; sumSq: number }> = {};
    for (const [id, , , rate] of combos) {
      const k = binomial(visitors, rate, random);
      stats[id] = { n: visitors, sum: k, sumSq: k };
    }
    const sections = analyzeSections(
      [
        { id: "headline", variantIds: ["h0", "h1"] },
        { id: "button", variantIds: ["b0", "b1"] },
      ],
      combos.map(([id, h, b]) => ({ id, weight: 2500, visitors, sectionVariationIds: [h, b] })),
      [{ id: "buy", higherIsBetter: true, nonNegative: true, stats }],
    );
    const [headline, button] = sections;
    expect(headline!.baselineId).toBe("h0");
    expect(headline!.variations).toEqual([
      { id: "h0", weight: 5000, visitors: 2 * visitors },
      { id: "h1", weight: 5000, visitors: 2 * visitors },
    ]);
    const h1 = headline!.metrics[0]!.variations[1]!;
    expect(h1.mean).toBeCloseTo((stats.c10!.sum + stats.c11!.sum) / (2 * visitors), 12);
    expect(h1.verdict).toBe("winner");
    expect(h1.lift!.estimate).toBeGreaterThan(0.15);
    const b1 = button!.metrics[0]!.variations[1]!;
    expect(b1.significant).toBe(false);
    expect(headline!.metrics[0]!.variations[0]!.verdict).toBe("baseline");
  });

  it("leaves out a section without variants and counts a combination with no data as empty", () => {
    const sections = analyzeSections(
      [
        { id: "empty", variantIds: [] },
        { id: "s", variantIds: ["x", "y"] },
      ],
      [{ id: "c1", weight: null, visitors: 0, sectionVariationIds: ["x"] }],
      [{ id: "m", higherIsBetter: true, stats: {} }],
    );
    expect(sections.map((s) => s.sectionId)).toEqual(["s"]);
    expect(sections[0]!.variations).toEqual([
      { id: "x", weight: null, visitors: 0 },
      { id: "y", weight: null, visitors: 0 },
    ]);
    expect(sections[0]!.metrics[0]!.variations[1]!.verdict).toBe("not_enough_data");
  });
});

describe("analyzeBreakdown (results per segment)", () => {
  const variations = (a: number, b: number) => [
    { id: "a", weight: 5000, visitors: a },
    { id: "b", weight: 5000, visitors: b },
  ];
  const metric = (ka: number, kb: number, na: number, nb: number) => ({
    id: "buy",
    higherIsBetter: true,
    nonNegative: true,
    stats: { a: { n: na, sum: ka, sumSq: ka }, b: { n: nb, sum: kb, sumSq: kb } },
  });

  it("finds the segment with a real effect, not the one without, after correcting across segments", () => {
    const segments = [
      {
        value: "mobile",
        variations: variations(3000, 3000),
        metrics: [metric(300, 450, 3000, 3000)],
      },
      {
        value: "desktop",
        variations: variations(3000, 3000),
        metrics: [metric(300, 310, 3000, 3000)],
      },
      { value: "tablet", variations: variations(200, 200), metrics: [metric(20, 24, 200, 200)] },
    ];
    const result = analyzeBreakdown(segments, "a");
    const b = (value: string) =>
      result.find((s) => s.value === value)!.metrics[0]!.variations.find((v) => !v.baseline)!;
    expect(b("mobile")).toMatchObject({ verdict: "winner", significant: true });
    expect(b("desktop").significant).toBe(false);
    expect(b("desktop").verdict).toBe("inconclusive");
    // q = Benjamini–Hochberg over every segment's comparison, not within each segment.
    const ps = ["mobile", "desktop", "tablet"].map((v) => b(v).pValue);
    const qs = benjaminiHochberg(ps);
    expect(["mobile", "desktop", "tablet"].map((v) => b(v).qValue)).toEqual(qs);
    expect(qs.every((q, i) => q! >= ps[i]!)).toBe(true);
    expect(b("mobile").qValue!).toBeGreaterThan(b("mobile").pValue!);
    // CUPED is not used inside segments.
    expect(b("mobile").cuped).toBeNull();
  });

  it("a segment without visitors in a variation is not enough data, and keeps no q-value", () => {
    const result = analyzeBreakdown(
      [{ value: "bot", variations: variations(10, 0), metrics: [metric(1, 0, 10, 0)] }],
      "a",
    );
    const b = result[0]!.metrics[0]!.variations[1]!;
    expect(b.verdict).toBe("not_enough_data");
    expect(b.qValue).toBeNull();
  });
});
