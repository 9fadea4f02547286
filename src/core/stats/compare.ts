/**
 * One variation against the baseline on one metric: estimates, the mode's test (sequential by
 * default, docs/statistics.md) and a verdict. Never NaN or Infinity: data that cannot be tested gives
 * the verdict "not_enough_data" with a reason from {@link NOT_ENOUGH_DATA_REASONS}.
 */
import {
  fiellerRatioInterval,
  oneSidedSequentialTest,
  sequentialTest,
  sequentialThreshold,
  type OpenInterval,
} from "./sequential";
import { isValidStats, mean, mergeStats, variance, type SufficientStats } from "./sufficient-stats";
import { welchTest } from "./welch";

/** "sequential": always-valid mSPRT (peeking-safe, the default); "fixed": Welch t. */
export type TestMode = "sequential" | "fixed";

/** Outcome of a comparison, for the metric's winning direction. */
export type Verdict = "winner" | "loser" | "inconclusive" | "not_enough_data";

/**
 * Why a comparison is "not_enough_data", in the order they are checked:
 * - `invalid_stats`: a count is negative or a field is not a finite number (corrupt input);
 * - `no_visitors`: an arm has no visitors;
 * - `too_few_visitors`: an arm has fewer than `minSamplePerArm` visitors (and always < 2);
 * - `no_conversions`: every visitor of both arms has value 0 (nothing to compare yet);
 * - `zero_baseline`: the baseline mean is 0, so the relative lift is undefined;
 * - `negative_baseline`: the baseline mean is negative, so a relative lift has no direction;
 * - `zero_variance`: no spread to estimate an error from: every visitor of both arms has the
 *   same value (e.g. everyone converted); in fixed mode also when each arm is constant on its
 *   own (Welch's SE is 0).
 */
export const NOT_ENOUGH_DATA_REASONS = [
  "invalid_stats",
  "no_visitors",
  "too_few_visitors",
  "no_conversions",
  "zero_baseline",
  "negative_baseline",
  "zero_variance",
] as const;

/** One of {@link NOT_ENOUGH_DATA_REASONS}. */
export type NotEnoughDataReason = (typeof NOT_ENOUGH_DATA_REASONS)[number];

/** Options of {@link compareVariation}; every field has a default. */
export interface CompareOptions {
  /** Default "sequential". */
  mode?: TestMode;
  /** Significance level, default 0.1 (docs/statistics.md: 90 % significance). */
  alpha?: number;
  /** Sequential tuning N*: visitors (both arms) where the test is sharpest. Default 5000. */
  nStar?: number;
  /**
   * Minimum visitors in each arm before testing, default 30: below that the normal
   * approximation behind both tests is poor and a single conversion swings the lift. At least
   * 2 is always required (a variance needs two observations).
   */
  minSamplePerArm?: number;
  /** False for metrics where lower is better (e.g. bounce rate). Default true. */
  higherIsBetter?: boolean;
  /**
   * True when no visitor's value can be negative (conversion rates, event counts), so the mean
   * is ≥ 0 and the lift ≥ −100 %: the lift's interval is then cut at −1. Default: true when
   * both arms hold 0/1 data (Σx² = Σx ≤ n, a conversion rate), false otherwise (revenue can
   * have refunds).
   */
  nonNegative?: boolean;
}

/** The defaults of {@link CompareOptions} (`nonNegative` is inferred from the data). */
export const DEFAULT_COMPARE_OPTIONS: Required<Omit<CompareOptions, "nonNegative">> = {
  mode: "sequential",
  alpha: 0.1,
  nStar: 5000,
  minSamplePerArm: 30,
  higherIsBetter: true,
};

/** Per-arm summary: visitors, mean per visitor (null without visitors), variance (null if n < 2). */
export interface ArmSummary {
  n: number;
  mean: number | null;
  variance: number | null;
}

/** An estimate with its standard error, two-sided interval and p-value. */
export interface EstimateTest {
  estimate: number;
  se: number;
  ci: [number, number];
  pValue: number;
}

/** The relative lift's estimate, SE and test; its interval may be open (null ends). */
export interface LiftTest {
  estimate: number;
  se: number;
  /** (1 − α) interval; an end is null when the data cannot bound it (see {@link compareVariation}). */
  ci: OpenInterval;
  pValue: number;
}

/** Result of {@link compareVariation}. */
export interface Comparison {
  control: ArmSummary;
  treatment: ArmSummary;
  /**
   * μt − μc, always the fixed-horizon Welch test (p-value and (1 − α) interval), whatever the
   * mode; null when not_enough_data, or when Welch is undefined (each arm constant on its own).
   */
  absolute: EstimateTest | null;
  /**
   * Relative lift (μt − μc)/μc with its SE; `ci` and `pValue` are the mode's (fixed: Welch on
   * the lift; sequential: the always-valid test of μt − μc and its Fieller interval). Null
   * when not_enough_data.
   */
  relative: LiftTest | null;
  /** The p-value the verdict uses: `relative.pValue`; null when not_enough_data. */
  pValue: number | null;
  /** The mode's (1 − α) interval for the relative lift: `relative.ci`; null when not_enough_data. */
  ci: OpenInterval | null;
  /** pValue < α. */
  significant: boolean;
  verdict: Verdict;
  /** Why not_enough_data; null otherwise. */
  reason: NotEnoughDataReason | null;
}

function resolveOptions(options: CompareOptions): typeof DEFAULT_COMPARE_OPTIONS {
  const resolved = { ...DEFAULT_COMPARE_OPTIONS };
  for (const key of Object.keys(DEFAULT_COMPARE_OPTIONS) as (keyof typeof resolved)[]) {
    if (options[key] !== undefined) Object.assign(resolved, { [key]: options[key] });
  }
  if (resolved.mode !== "sequential" && resolved.mode !== "fixed")
    throw new RangeError(`mode must be "sequential" or "fixed", got ${String(resolved.mode)}`);
  if (!(resolved.alpha > 0 && resolved.alpha < 1))
    throw new RangeError(`alpha must be in (0, 1), got ${resolved.alpha}`);
  if (!(resolved.nStar > 0) || !Number.isFinite(resolved.nStar))
    throw new RangeError(`nStar must be > 0, got ${resolved.nStar}`);
  if (!(resolved.minSamplePerArm >= 0) || !Number.isFinite(resolved.minSamplePerArm))
    throw new RangeError(`minSamplePerArm must be ≥ 0, got ${resolved.minSamplePerArm}`);
  return resolved;
}

/** Both arms hold 0/1 data: Σx = Σx² (true only for 0/1 values among integers), 0 ≤ Σx ≤ n. */
function looksBinary(s: SufficientStats): boolean {
  return s.sum === s.sumSq && Number.isInteger(s.sum) && s.sum >= 0 && s.sum <= s.n;
}

/**
 * Steps 1–2 of {@link sequentialComparison}: the arms' means and the variances of their means
 * (each with the pooled floor λ), and V = ac + at; null when V is 0 or not finite.
 */
export function sequentialVariances(
  control: SufficientStats,
  treatment: SufficientStats,
): { mc: number; mt: number; ac: number; at: number; v: number } | null {
  const mc = control.sum / control.n;
  const mt = treatment.sum / treatment.n;
  const vc = variance(control) ?? 0;
  const vt = variance(treatment) ?? 0;
  const vp = variance(mergeStats(control, treatment)) ?? 0;
  const h = 1 / control.n + 1 / treatment.n;
  const welch = vc / control.n + vt / treatment.n;
  const lambda = Math.max(0, vp - welch / h);
  const ac = (vc + lambda) / control.n;
  const at = (vt + lambda) / treatment.n;
  const v = ac + at;
  if (!(v > 0) || !Number.isFinite(v)) return null;
  return { mc, mt, ac, at, v };
}

/**
 * The sequential mode's test (docs/statistics.md "Sequential mode"). Returns null when there is
 * no variance at all (every visitor of both arms has the same value).
 *
 * 1. per arm: mean, sample variance s²; pooled: the sample variance s²p of both arms merged —
 *    under H₀ both arms are one population, and s²p cannot collapse when one arm's rate is near
 *    0 (20/1000 vs 0/1000 gives s²t = 0, s²p ≈ 0.0099);
 * 2. V = max(Welch's s²c/nc + s²t/nt, pooled s²p·(1/nc + 1/nt)), written as a common
 *    per-visitor variance λ = max(0, s²p − (s²c/nc + s²t/nt)/(1/nc + 1/nt)) added to both arms,
 *    so that the lift interval below uses the same variances: ac = (s²c + λ)/nc,
 *    at = (s²t + λ)/nt, V = ac + at;
 * 3. the always-valid mixture test ({@link sequentialTest}) of Δ = μ̂t − μ̂c with SE √V: its
 *    p-value decides significance;
 * 4. the lift's interval inverts the same test for every ratio ({@link fiellerRatioInterval}
 *    with c = {@link sequentialThreshold}), so it excludes 0 exactly when p < α; its SE is the
 *    delta method's with the same variances, √(at + (μ̂t/μ̂c)²·ac)/μ̂c.
 */
function sequentialComparison(
  control: SufficientStats,
  treatment: SufficientStats,
  alpha: number,
  nStar: number,
  nonNegative: boolean,
): LiftTest | null {
  // 1. and 2.
  const variances = sequentialVariances(control, treatment);
  if (variances === null) return null;
  const { mc, mt, ac, at, v } = variances;
  // 3.
  const n = control.n + treatment.n;
  const { pValue } = sequentialTest(mt - mc, Math.sqrt(v), n, alpha, nStar);
  // 4.
  const ratio = fiellerRatioInterval(
    mt,
    at,
    mc,
    ac,
    sequentialThreshold(n, alpha, nStar),
    nonNegative,
  );
  const ci: OpenInterval = [
    ratio[0] === null ? null : ratio[0] - 1,
    ratio[1] === null ? null : ratio[1] - 1,
  ];
  const se = Math.sqrt(at + (mt / mc) * (mt / mc) * ac) / mc;
  return { estimate: (mt - mc) / mc, se, ci, pValue };
}

function summarize(s: SufficientStats): ArmSummary {
  if (!isValidStats(s)) return { n: Number.isFinite(s.n) ? s.n : 0, mean: null, variance: null };
  return { n: s.n, mean: mean(s), variance: variance(s) };
}

/**
 * Compares a treatment arm with the control (baseline) arm on one metric.
 *
 * 1. options: defaults from {@link DEFAULT_COMPARE_OPTIONS}; invalid options throw a
 *    RangeError (configuration errors), invalid data never throws;
 * 2. guards, in the order of {@link NOT_ENOUGH_DATA_REASONS} → verdict "not_enough_data";
 * 3. Welch test ({@link welchTest}) at level α: the absolute difference (reported as is, both
 *    modes) and the relative lift with its delta-method SE;
 * 4. the mode's test of the lift:
 *    - fixed → the Welch p-value and interval of the lift; when its delta-method SE is 0 (the
 *      treatment is all zeros, so the method sees no spread) the Welch test of the absolute
 *      difference instead, its interval divided by μ̂c;
 *    - sequential → {@link sequentialComparison}: the always-valid test of μt − μc with a
 *      variance that cannot collapse at low counts, and the lift interval inverted from it.
 *      Why not the mixture on the lift itself: its delta-method SE shrinks with the treatment's
 *      rate, so at low counts negative lifts came out significant far more often than α
 *      (docs/statistics.md "Simulation");
 *    for a non-negative metric the interval is cut at −1 (a mean cannot fall below 0);
 * 5. significant = p < α (equivalently: the interval excludes 0);
 * 6. verdict: significant and the lift in the metric's good direction → "winner", significant
 *    the other way → "loser", otherwise "inconclusive".
 */
export function compareVariation(
  control: SufficientStats,
  treatment: SufficientStats,
  options: CompareOptions = {},
): Comparison {
  // 1.
  const { mode, alpha, nStar, minSamplePerArm, higherIsBetter } = resolveOptions(options);
  const nonNegative = options.nonNegative ?? (looksBinary(control) && looksBinary(treatment));
  const summaries = { control: summarize(control), treatment: summarize(treatment) };
  const notEnough = (reason: NotEnoughDataReason): Comparison => ({
    ...summaries,
    absolute: null,
    relative: null,
    pValue: null,
    ci: null,
    significant: false,
    verdict: "not_enough_data",
    reason,
  });

  // 2. guards
  if (!isValidStats(control) || !isValidStats(treatment)) return notEnough("invalid_stats");
  if (control.n === 0 || treatment.n === 0) return notEnough("no_visitors");
  const minimum = Math.max(2, minSamplePerArm);
  if (control.n < minimum || treatment.n < minimum) return notEnough("too_few_visitors");
  if (control.sumSq === 0 && treatment.sumSq === 0) return notEnough("no_conversions");
  const mc = control.sum / control.n;
  if (mc === 0) return notEnough("zero_baseline");
  if (mc < 0) return notEnough("negative_baseline");

  // 3. Welch (null estimates = no variance to test with)
  const welch = welchTest(control, treatment, alpha);
  const absolute: EstimateTest | null =
    welch.absolute === null
      ? null
      : {
          estimate: welch.absolute.estimate,
          se: welch.absolute.se,
          ci: welch.absolute.ci,
          pValue: welch.absolute.pValue,
        };

  // 4. the mode's test of the lift
  let relative: LiftTest;
  if (mode === "fixed") {
    if (absolute === null) return notEnough("zero_variance");
    const lift = welch.relative ?? {
      estimate: absolute.estimate / mc,
      se: absolute.se / mc,
      ci: [absolute.ci[0] / mc, absolute.ci[1] / mc] as [number, number],
      pValue: absolute.pValue,
    };
    relative = { estimate: lift.estimate, se: lift.se, ci: lift.ci, pValue: lift.pValue };
  } else {
    const sequential = sequentialComparison(control, treatment, alpha, nStar, nonNegative);
    if (sequential === null) return notEnough("zero_variance");
    relative = sequential;
  }
  if (nonNegative && relative.ci[0] !== null && relative.ci[0] < -1) {
    relative.ci = [-1, relative.ci[1]];
  }

  // 5.
  const significant = relative.pValue < alpha;
  // 6. μc > 0 here, so the lift has the sign of μt − μc.
  const lift = relative.estimate;
  const improved = higherIsBetter ? lift > 0 : lift < 0;
  const verdict: Verdict = !significant ? "inconclusive" : improved ? "winner" : "loser";
  return {
    ...summaries,
    absolute,
    relative,
    pValue: relative.pValue,
    ci: relative.ci,
    significant,
    verdict,
    reason: null,
  };
}

/** A guardrail's test of one variation against the baseline (docs/statistics.md "Guardrails"). */
export interface HarmTest {
  /** The one-sided always-valid p-value of harm; null when there is not enough data. */
  pValue: number | null;
  /** p ≤ α: the variation is significantly worse than the baseline on this metric. */
  harmed: boolean;
  /** Absolute difference of the means, treatment − baseline (null without data). */
  difference: number | null;
  /** Relative difference (null when the baseline mean is 0 or there is no data). */
  lift: number | null;
}

/**
 * Harm on a guardrail metric: the one-sided always-valid test ({@link oneSidedSequentialTest})
 * of Δ = μt − μc oriented against the metric's winning direction (a drop when higher is better,
 * a rise when lower is better), with the sequential mode's variances (the pooled floor makes it
 * valid at low counts). Always sequential: a guardrail is watched continuously (hourly), so only
 * an always-valid test keeps its false-alarm rate at α. Never throws on data.
 */
export function testHarm(
  control: SufficientStats,
  treatment: SufficientStats,
  options: { alpha: number; nStar: number; higherIsBetter: boolean },
): HarmTest {
  const none: HarmTest = { pValue: null, harmed: false, difference: null, lift: null };
  if (!isValidStats(control) || !isValidStats(treatment) || control.n < 2 || treatment.n < 2)
    return none;
  const variances = sequentialVariances(control, treatment);
  if (variances === null) return none;
  const { mc, mt, v } = variances;
  const difference = mt - mc;
  const harm = options.higherIsBetter ? -difference : difference;
  const pValue = oneSidedSequentialTest(
    harm,
    Math.sqrt(v),
    control.n + treatment.n,
    options.alpha,
    options.nStar,
  );
  return {
    pValue,
    harmed: pValue <= options.alpha,
    difference,
    lift: mc !== 0 ? difference / mc : null,
  };
}
