/**
 * Seeded A/A and A/B simulation of conversion-rate experiments that are looked at over and
 * over, for the validity check of the sequential test (test/core/stats-simulation.test.ts) and
 * the `stats-simulation` bench (bench/stats-simulation.bench.ts); docs/statistics.md
 * "Simulation" quotes its figures.
 *
 * One experiment: two arms of Bernoulli visitors (control rate p, treatment rate p·(1 + lift)),
 * `step` new visitors per arm between looks, up to `maxPerArm` per arm; at every look
 * {@link compareVariation} runs on the cumulative counts, exactly as the results API would on a
 * dashboard refreshed that often. An experiment "rejects" when any look is significant: for an
 * A/A test (lift 0) that is a false positive, so the rejection rate must stay ≤ α for the
 * always-valid test; for an A/B test it is the power of the whole run. Every experiment runs to
 * `maxPerArm` (not just to its first significant look), so that the lift interval is checked
 * at every look: it is a confidence sequence, so it must miss the true lift at some look in at
 * most α of the experiments, and it must exclude 0 exactly when the look is significant.
 */
import { compareVariation, testHarm, type CompareOptions } from "../../src/core/stats/index";

/** What to simulate; `lift` 0 is an A/A test. */
export interface SimulationScenario {
  /** Control conversion rate, in (0, 1). */
  rate: number;
  /** Relative lift of the treatment's rate: pt = rate·(1 + lift). */
  lift: number;
  /** Number of simulated experiments. */
  experiments: number;
  /** New visitors per arm between two looks (the first look is after one step). */
  step: number;
  /** Visitors per arm at the last look. */
  maxPerArm: number;
  /** Passed to {@link compareVariation} (mode, α, N*…). */
  options?: CompareOptions;
  /** PRNG seed; the same seed gives the same figures on every machine. */
  seed: number;
}

/** Outcome of {@link simulate}. */
export interface SimulationResult {
  experiments: number;
  /** Experiments with a significant look. */
  rejections: number;
  /** rejections / experiments. */
  rate: number;
  /** Monte-Carlo standard error of `rate`: √(rate·(1 − rate)/experiments). */
  se: number;
  /** Significant looks whose lift was negative (for an A/A test: the side of the errors). */
  negativeRejections: number;
  /**
   * Experiments in which the lift interval excluded the true lift (`lift`) at some look: the
   * confidence sequence's errors, ≤ α of the experiments for a valid one. For an A/A test it
   * equals `rejections` (the interval excludes 0 exactly when the look is significant).
   */
  missedTrueLift: number;
  /** Looks at which "the interval excludes 0" and "p < α" disagree; 0 for a consistent test. */
  inconsistentLooks: number;
}

/** Mulberry32: a small, fast 32-bit generator, identical on every platform. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Binomial(n, p) draw by inversion of the cdf (one uniform; the loop runs ~n·p + 1 times, cheap
 * for the rates and steps simulated here).
 */
export function binomial(n: number, p: number, random: () => number): number {
  if (p <= 0) return 0;
  if (p >= 1) return n;
  const q = 1 - p;
  const ratio = p / q;
  let pmf = Math.pow(q, n);
  let cdf = pmf;
  const u = random();
  let k = 0;
  while (u > cdf && k < n) {
    pmf *= (ratio * (n - k)) / (k + 1);
    k += 1;
    cdf += pmf;
  }
  return k;
}

/** Runs the scenario; deterministic for a given seed. */
export function simulate(scenario: SimulationScenario): SimulationResult {
  const { rate, lift, experiments, step, maxPerArm, options = {}, seed } = scenario;
  const treatmentRate = rate * (1 + lift);
  const alpha = options.alpha ?? 0.1;
  const random = mulberry32(seed);
  let rejections = 0;
  let negativeRejections = 0;
  let missedTrueLift = 0;
  let inconsistentLooks = 0;
  const excludes = (ci: readonly [number | null, number | null], value: number) =>
    (ci[0] !== null && ci[0] > value) || (ci[1] !== null && ci[1] < value);
  for (let e = 0; e < experiments; e++) {
    let n = 0;
    let control = 0;
    let treatment = 0;
    let rejected = false;
    let missed = false;
    while (n < maxPerArm) {
      n += step;
      control += binomial(step, rate, random);
      treatment += binomial(step, treatmentRate, random);
      const c = compareVariation(
        { n, sum: control, sumSq: control },
        { n, sum: treatment, sumSq: treatment },
        options,
      );
      if (c.ci === null || c.pValue === null) continue;
      const significant = c.pValue < alpha;
      if (excludes(c.ci, 0) !== significant) inconsistentLooks += 1;
      if (excludes(c.ci, lift)) missed = true;
      if (significant && !rejected) {
        rejected = true;
        if ((c.relative?.estimate ?? 0) < 0) negativeRejections += 1;
      }
    }
    if (rejected) rejections += 1;
    if (missed) missedTrueLift += 1;
  }
  const fraction = rejections / experiments;
  return {
    experiments,
    rejections,
    rate: fraction,
    se: Math.sqrt((fraction * (1 - fraction)) / experiments),
    negativeRejections,
    missedTrueLift,
    inconsistentLooks,
  };
}

/** A guardrail watched continuously (docs/statistics.md "Guardrails"); `change` 0 is an A/A test. */
export interface GuardrailScenario {
  /** Control conversion rate, in (0, 1). */
  rate: number;
  /** Relative change of the treatment's rate (negative = harm for a higher-is-better metric). */
  change: number;
  experiments: number;
  step: number;
  maxPerArm: number;
  alpha: number;
  /** Sequential tuning N* (both arms). */
  nStar?: number;
  seed: number;
}

/**
 * Runs {@link testHarm} at every look of each experiment (stopping at the first alarm, as the
 * hourly check does once it has paused); returns the share of experiments that alarmed and its
 * Monte-Carlo standard error. For an A/A test that is the false-alarm rate, ≤ α for a valid test.
 */
export function simulateGuardrail(scenario: GuardrailScenario): { rate: number; se: number } {
  const { rate, change, experiments, step, maxPerArm, alpha, nStar = 5000, seed } = scenario;
  const random = mulberry32(seed);
  let alarmed = 0;
  for (let e = 0; e < experiments; e++) {
    let n = 0;
    let c = 0;
    let t = 0;
    while (n < maxPerArm) {
      n += step;
      c += binomial(step, rate, random);
      t += binomial(step, rate * (1 + change), random);
      const harm = testHarm(
        { n, sum: c, sumSq: c },
        { n, sum: t, sumSq: t },
        { alpha, nStar, higherIsBetter: true },
      );
      if (harm.harmed) {
        alarmed++;
        break;
      }
    }
  }
  const share = alarmed / experiments;
  return { rate: share, se: Math.sqrt((share * (1 - share)) / experiments) };
}
