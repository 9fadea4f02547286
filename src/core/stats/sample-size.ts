/**
 * Visitors needed: how many visitors per arm a fixed-horizon test needs to detect a given
 * relative lift, from what the baseline has shown so far.
 */
import { normalQuantile } from "./distributions";
import { mean, variance, type SufficientStats } from "./sufficient-stats";

/** Options of {@link visitorsNeeded}. */
export interface SampleSizeOptions {
  /** Minimum detectable effect, relative to the baseline mean (0.05 = a 5 % lift), > 0. */
  mde: number;
  /** Significance level, two-sided. Default 0.1 (docs/statistics.md: 90 %). */
  alpha?: number;
  /** Probability of detecting an effect of size `mde`. Default 0.8. */
  power?: number;
  /** Arms including the baseline (default 2): α is split over the arms − 1 comparisons. */
  arms?: number;
}

/**
 * Visitors per arm for a two-sided two-sample z test of the difference of means, equal
 * allocation, the treatment assumed to have the baseline's variance:
 *
 * 1. baseline mean μ and sample variance σ² (null when unknown: n < 2, μ ≤ 0 or σ² = 0 —
 *    no conversions yet means no estimate of the variance, and a lift relative to 0 is
 *    undefined);
 * 2. absolute effect δ = mde·μ;
 * 3. Bonferroni: α' = α / (arms − 1), since each of the arms − 1 variations is compared with
 *    the baseline (conservative for the Benjamini–Hochberg / Holm corrections applied later);
 * 4. n = (z₁₋α'/₂ + z_power)² · 2σ² / δ²;
 * 5. rounded up to a whole visitor.
 *
 * The equal-variance assumption is the textbook one; for a conversion rate with a small mde
 * the treatment's variance p(1+mde)·(1 − p(1+mde)) differs from p(1 − p) by about mde.
 * Sequential mode needs somewhat more visitors than this fixed-horizon figure.
 *
 * Throws a RangeError for invalid options (mde ≤ 0, α or power outside (0, 1), arms < 2).
 */
export function visitorsNeeded(
  baseline: SufficientStats,
  options: SampleSizeOptions,
): number | null {
  const alpha = options.alpha ?? 0.1;
  const power = options.power ?? 0.8;
  const arms = options.arms ?? 2;
  const mde = options.mde;
  if (!(mde > 0) || !Number.isFinite(mde)) throw new RangeError(`mde must be > 0, got ${mde}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  if (!(power > 0 && power < 1)) throw new RangeError(`power must be in (0, 1), got ${power}`);
  if (!(arms >= 2) || !Number.isInteger(arms))
    throw new RangeError(`arms must be an integer ≥ 2, got ${arms}`);
  // 1.
  const mu = mean(baseline);
  const sigma2 = variance(baseline);
  if (mu === null || sigma2 === null || !(mu > 0) || !(sigma2 > 0)) return null;
  if (!Number.isFinite(mu) || !Number.isFinite(sigma2)) return null;
  // 2.
  const delta = mde * mu;
  // 3.
  const alphaPerComparison = alpha / (arms - 1);
  // 4.
  const z = -normalQuantile(alphaPerComparison / 2) + normalQuantile(power);
  const n = (z * z * 2 * sigma2) / (delta * delta);
  // 5.
  return Number.isFinite(n) ? Math.ceil(n) : null;
}
