/**
 * The sequential test's contract, checked by simulation (docs/statistics.md "Simulation"): an
 * A/A experiment looked at after every 100 visitors per arm up to 10,000 is called significant
 * at some look in at most α of the runs, at conversion rates from 0.5 % to 50 %; the lift
 * interval is a confidence sequence that agrees with the test at every look; and a real lift is
 * still found. Seeded (test/support/ab-simulation.ts), so every run gives the same figures; the
 * bench `stats-simulation` runs the same kind of scenarios with more experiments.
 */
import { describe, expect, it } from "vitest";
import { simulate } from "../support/ab-simulation";

const LOOKS = { step: 100, maxPerArm: 10_000 } as const;

/**
 * A seed of its own for every scenario (α in hundredths, rate in basis points), so that no two
 * scenarios share a stream of draws.
 */
const seedOf = (rate: number, alpha: number) =>
  10_000 * Math.round(alpha * 100) + Math.round(rate * 1e4);

describe("sequential test: A/A false positives over 100 looks stay ≤ α", () => {
  // The runs are seeded, so the bound is the contract itself, ≤ α·experiments, with no
  // Monte-Carlo allowance: these seeds give 4, 4, 6, 2, 6 of 200 at α 0.05 (bound 10) and 11
  // of 200 at α 0.1 (bound 20); the test is conservative (docs/statistics.md "Simulation":
  // 2.1–2.65 % at α 0.05, 4.05–5.65 % at α 0.1 over 2,000 runs), so a valid change of the
  // method keeps them below it. The old mixture on the delta-method lift failed the 0.5 %, 1 % and
  // 5 % cases (16 %, 16 % and 6 % at α 0.05). ~0.5 s each.
  it.each([
    [0.005, 0.05, 200],
    [0.01, 0.05, 200],
    [0.05, 0.05, 200],
    [0.2, 0.05, 200],
    [0.5, 0.05, 200],
    [0.01, 0.1, 200],
  ])("conversion rate %f, α %f (%i experiments)", (rate, alpha, experiments) => {
    const result = simulate({
      rate,
      lift: 0,
      experiments,
      ...LOOKS,
      options: { alpha },
      seed: seedOf(rate, alpha),
    });
    expect(
      result.rejections,
      `rate ${rate}: ${result.rejections}/${experiments} false positives, more than α ${alpha}`,
    ).toBeLessThanOrEqual(alpha * experiments);
    // the lift interval excludes 0 exactly at the significant looks (docs/statistics.md
    // "Sequential mode", step 3), so it misses the true lift 0 in exactly the rejected runs
    expect(result.inconsistentLooks).toBe(0);
    expect(result.missedTrueLift).toBe(result.rejections);
  });
});

describe("sequential test: a real lift is found, and its interval covers it", () => {
  it("a 20 % lift on a 10 % conversion rate is detected in most runs by 10,000 per arm", () => {
    const result = simulate({ rate: 0.1, lift: 0.2, experiments: 100, ...LOOKS, seed: 7 });
    expect(result.rate).toBeGreaterThan(0.9);
    expect(result.negativeRejections).toBe(0);
    expect(result.inconsistentLooks).toBe(0);
    // The interval is a confidence sequence for the lift, not only a test of 0: over all 100
    // looks it excludes the true +20 % in at most α (0.1) of the runs (2 of 100 with this seed;
    // ~4–6 % over 1,000 runs, also at a 1 % rate). This checks the Fieller inversion away from
    // k = 1, which the A/A runs above cannot.
    expect(result.missedTrueLift).toBeLessThanOrEqual(0.1 * 100);
  });
});
