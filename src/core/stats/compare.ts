/**
 * One variation against the baseline on one metric: estimates, the mode's test (sequential by
 * default, CONTRACT §8) and a verdict. Never NaN or Infinity: data that cannot be tested gives
 * the verdict "not_enough_data" with a reason from {@link NOT_ENOUGH_DATA_REASONS}.
 */
import { sequentialTest } from "./sequential";
import { isValidStats, mean, variance, type SufficientStats } from "./sufficient-stats";
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
 * - `zero_variance`: no spread to estimate an error from (both arms constant, e.g. everyone
 *   converted), or the lift's delta-method SE is 0 (treatment all zeros, baseline without
 *   spread).
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
  /** Significance level, default 0.1 (CONTRACT §8: 90 % significance). */
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
}

/** The defaults of {@link CompareOptions}. */
export const DEFAULT_COMPARE_OPTIONS: Required<CompareOptions> = {
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

/** Result of {@link compareVariation}. */
export interface Comparison {
  control: ArmSummary;
  treatment: ArmSummary;
  /**
   * μt − μc, always the fixed-horizon Welch test (p-value and (1 − α) interval), whatever the
   * mode; null when not_enough_data.
   */
  absolute: EstimateTest | null;
  /**
   * Relative lift (μt − μc)/μc with its delta-method SE; `ci` and `pValue` are the mode's
   * (fixed: Welch; sequential: always-valid). Null when not_enough_data.
   */
  relative: EstimateTest | null;
  /** The p-value the verdict uses: `relative.pValue`; null when not_enough_data. */
  pValue: number | null;
  /** The mode's (1 − α) interval for the relative lift: `relative.ci`; null when not_enough_data. */
  ci: [number, number] | null;
  /** pValue < α. */
  significant: boolean;
  verdict: Verdict;
  /** Why not_enough_data; null otherwise. */
  reason: NotEnoughDataReason | null;
}

function resolveOptions(options: CompareOptions): Required<CompareOptions> {
  const resolved = { ...DEFAULT_COMPARE_OPTIONS };
  for (const key of Object.keys(options) as (keyof CompareOptions)[]) {
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
 * 3. Welch test ({@link welchTest}) at level α: the absolute difference (reported as is) and
 *    the relative lift with its delta-method SE;
 * 4. the mode's test of the lift: fixed → the Welch p-value and interval; sequential →
 *    {@link sequentialTest}(lift, SE, nc + nt, α, N*);
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
  if (welch.absolute === null || welch.relative === null) return notEnough("zero_variance");
  const absolute: EstimateTest = {
    estimate: welch.absolute.estimate,
    se: welch.absolute.se,
    ci: welch.absolute.ci,
    pValue: welch.absolute.pValue,
  };

  // 4. the mode's test of the lift
  const lift = welch.relative.estimate;
  const liftSe = welch.relative.se;
  const test =
    mode === "fixed"
      ? { pValue: welch.relative.pValue, ci: welch.relative.ci }
      : sequentialTest(lift, liftSe, control.n + treatment.n, alpha, nStar);
  const relative: EstimateTest = { estimate: lift, se: liftSe, ci: test.ci, pValue: test.pValue };

  // 5.
  const significant = test.pValue < alpha;
  // 6. μc > 0 here, so the lift has the sign of μt − μc.
  const improved = higherIsBetter ? lift > 0 : lift < 0;
  const verdict: Verdict = !significant ? "inconclusive" : improved ? "winner" : "loser";
  return {
    ...summaries,
    absolute,
    relative,
    pValue: test.pValue,
    ci: test.ci,
    significant,
    verdict,
    reason: null,
  };
}
