/**
 * analyzeExperiment: corrections grouped as docs/statistics.md says (primary alone, secondaries
 * together), verdict direction, SRM against the weights, visitors needed; never NaN.
 */
import { describe, expect, it } from "vitest";
import { analyzeExperiment, DEFAULT_ANALYSIS_OPTIONS } from "../../src/core/experiment-analysis";
import {
  benjaminiHochberg,
  compareVariation,
  holm,
  visitorsNeeded,
} from "../../src/core/stats/index";

const rate = (sum: number) => ({ n: 0, sum, sumSq: sum });
const variations = [
  { id: "a", weight: 3334, visitors: 2000 },
  { id: "b", weight: 3333, visitors: 2000 },
  { id: "c", weight: 3333, visitors: 2000 },
];
const metrics = [
  { id: "primary", higherIsBetter: true, stats: { a: rate(200), b: rate(260), c: rate(205) } },
  { id: "second", higherIsBetter: true, stats: { a: rate(100), b: rate(90), c: rate(130) } },
  { id: "third", higherIsBetter: false, stats: { a: rate(300), b: rate(240), c: rate(310) } },
];
const p = (metric: (typeof metrics)[number], id: "b" | "c", mode: "sequential" | "fixed") =>
  compareVariation(
    { ...metric.stats.a, n: 2000 },
    { ...metric.stats[id], n: 2000 },
    {
      mode,
      alpha: 0.1,
      higherIsBetter: metric.higherIsBetter,
    },
  ).pValue!;

describe("analyzeExperiment", () => {
  it.each(["sequential", "fixed"] as const)(
    "%s: BH over the primary's variations alone and over all secondary cells together",
    (mode) => {
      const result = analyzeExperiment(variations, "a", metrics, {
        ...DEFAULT_ANALYSIS_OPTIONS,
        mode,
      });
      const primaryQ = benjaminiHochberg([p(metrics[0]!, "b", mode), p(metrics[0]!, "c", mode)]);
      const secondaryQ = benjaminiHochberg([
        p(metrics[1]!, "b", mode),
        p(metrics[1]!, "c", mode),
        p(metrics[2]!, "b", mode),
        p(metrics[2]!, "c", mode),
      ]);
      const q = (m: number, v: number) => result.metrics[m]!.variations[v]!.qValue;
      expect([q(0, 1), q(0, 2)]).toEqual(primaryQ);
      expect([q(1, 1), q(1, 2), q(2, 1), q(2, 2)]).toEqual(secondaryQ);
      expect(result.metrics[0]!.variations[0]).toMatchObject({
        baseline: true,
        verdict: "baseline",
      });
    },
  );

  it("holm on request", () => {
    const result = analyzeExperiment(variations, "a", metrics, {
      ...DEFAULT_ANALYSIS_OPTIONS,
      correction: "holm",
    });
    const ps = [p(metrics[0]!, "b", "sequential"), p(metrics[0]!, "c", "sequential")];
    expect(result.metrics[0]!.variations.slice(1).map((v) => v.qValue)).toEqual(holm(ps));
  });

  it("verdicts follow the winning direction: fewer events is a win when lower is better", () => {
    const result = analyzeExperiment(variations, "a", metrics, {
      ...DEFAULT_ANALYSIS_OPTIONS,
      mode: "fixed",
    });
    const b = result.metrics[2]!.variations[1]!;
    expect(b.lift!.estimate).toBeLessThan(0);
    expect(b.significant).toBe(true);
    expect(b.verdict).toBe("winner");
    const primaryB = result.metrics[0]!.variations[1]!;
    expect(primaryB.verdict).toBe("winner");
    const secondB = result.metrics[1]!.variations[1]!;
    expect(secondB.verdict === "loser" || secondB.verdict === "inconclusive").toBe(true);
  });

  it("SRM uses the weights; unallocated variations are left out", () => {
    const skewed = analyzeExperiment(
      [
        { id: "a", weight: 5000, visitors: 1000 },
        { id: "b", weight: 5000, visitors: 1200 },
        { id: "old", weight: null, visitors: 50 },
      ],
      "a",
      [],
    );
    expect(skewed.srm.flagged).toBe(true);
    expect(skewed.srm.expected).toEqual({ a: 0.5, b: 0.5 });
    const fair = analyzeExperiment(
      [
        { id: "a", weight: 2000, visitors: 1000 },
        { id: "b", weight: 8000, visitors: 4010 },
      ],
      "a",
      [],
    );
    expect(fair.srm).toMatchObject({ checked: true, flagged: false });
  });

  it("no data, unknown baseline: not enough data and nulls, never NaN", () => {
    const empty = analyzeExperiment(
      variations.map((v) => ({ ...v, visitors: 0 })),
      "a",
      [{ id: "m", higherIsBetter: true, stats: {} }],
    );
    expect(empty.metrics[0]!.variations[1]).toMatchObject({
      verdict: "not_enough_data",
      pValue: null,
      qValue: null,
      lift: null,
    });
    expect(empty.metrics[0]!.visitorsNeededPerVariation).toBeNull();
    const unknown = analyzeExperiment(variations, "zzz", metrics);
    expect(unknown.metrics[0]!.variations.every((v) => v.verdict === "not_enough_data")).toBe(true);
    expect(JSON.stringify([empty, unknown])).not.toMatch(/NaN|Infinity/);
  });

  it("visitors remaining leaves out variations no longer allocated (weight null or 0)", () => {
    const result = analyzeExperiment(
      [
        { id: "a", weight: 5000, visitors: 2000 },
        { id: "b", weight: 5000, visitors: 2000 },
        { id: "old", weight: null, visitors: 10 },
        { id: "off", weight: 0, visitors: 10 },
      ],
      "a",
      [metrics[0]!],
    );
    const needed = result.metrics[0]!.visitorsNeededPerVariation!;
    expect(needed).toBeGreaterThan(2000);
    expect(result.metrics[0]!.visitorsRemaining).toBe(2 * (needed - 2000));
    // α is split over the allocated arms only: one comparison, not three
    const baseline = { n: 2000, sum: 200, sumSq: 200 };
    expect(needed).toBe(visitorsNeeded(baseline, { mde: 0.05, alpha: 0.1, power: 0.8, arms: 2 }));
    expect(needed).toBeLessThan(
      visitorsNeeded(baseline, { mde: 0.05, alpha: 0.1, power: 0.8, arms: 4 })!,
    );
  });

  it("visitors needed with fewer than two allocated variations: one comparison, no throw", () => {
    const result = analyzeExperiment(
      [
        { id: "a", weight: 10000, visitors: 2000 },
        { id: "b", weight: null, visitors: 2000 },
      ],
      "a",
      [metrics[0]!],
    );
    const baseline = { n: 2000, sum: 200, sumSq: 200 };
    expect(result.metrics[0]!.visitorsNeededPerVariation).toBe(
      visitorsNeeded(baseline, { mde: 0.05, alpha: 0.1, power: 0.8, arms: 2 }),
    );
  });

  it("visitors remaining: what every allocated variation still lacks", () => {
    const result = analyzeExperiment(variations, "a", metrics);
    const needed = result.metrics[0]!.visitorsNeededPerVariation!;
    expect(needed).toBeGreaterThan(2000);
    expect(result.metrics[0]!.visitorsRemaining).toBe(3 * (needed - 2000));
  });
});
