/**
 * CUPED (Deng, Xu, Kohavi & Walker, "Improving the sensitivity of online controlled experiments
 * by utilizing pre-experiment data", 2013), in its regression form (docs/statistics.md "CUPED"):
 * each visitor's value y is adjusted by the same metric's value x before their first exposure,
 * which is independent of the assignment, so the adjustment removes variance and adds no bias.
 *
 * For one comparison (control c, treatment t) the estimate is the treatment coefficient b of the
 * ordinary least squares fit y = a + b·T + θ·x + e on both arms' visitors — exactly what
 * statsmodels' `ols("y ~ T + x")` gives (scripts/cuped-reference.py checks it):
 * 1. per arm g: means ȳg, x̄g and the centred sums Sxx_g = Σx² − n·x̄², Sxy_g, Syy_g;
 * 2. θ = (Sxy_c + Sxy_t) / (Sxx_c + Sxx_t) — the pooled within-arm slope (with a dummy for the
 *    arm, OLS's slope on x is the within-arm one);
 * 3. b = (ȳt − ȳc) − θ·(x̄t − x̄c);
 * 4. residual sum of squares RSS = Syy_c + Syy_t − θ·(Sxy_c + Sxy_t), σ̂² = RSS / (n − 3);
 * 5. Var(b) = σ̂² · (1/nc + 1/nt + (x̄t − x̄c)² / (Sxx_c + Sxx_t)) (OLS's classical SE, `se`);
 *    it assumes one spread for both arms, which a 90/10 split with a noisier small arm breaks, so
 *    the test uses V = max(Var(b), s²_rc/nc + s²_rt/nt) (`testSe`): the per-arm variances of the
 *    adjusted values y − θx, s²_rg = (Syy_g − 2θ·Sxy_g + θ²·Sxx_g)/(n_g − 1) — Welch's form, as the
 *    unadjusted test takes the larger of Welch's and the pooled variance;
 * 6. without x the same fit gives Var₀ = (Syy_c + Syy_t)/(n − 2) · (1/nc + 1/nt); the variance
 *    removed is 1 − Var(b)/Var₀.
 * Pure and never throws on data: null when there is no covariate (Sxx = 0) or too little data.
 */
import { sequentialTest, sequentialThreshold, type OpenInterval } from "./sequential";
import { studentTQuantile, twoSidedStudentTP } from "./distributions";

/** One arm's per-visitor sums of the metric y and its pre-exposure covariate x. */
export interface CovariateStats {
  n: number;
  sumY: number;
  sumY2: number;
  sumX: number;
  sumX2: number;
  sumXY: number;
}

/** The regression of one comparison. */
export interface CupedRegression {
  /** θ, the pooled within-arm slope of y on x. */
  theta: number;
  /** b: the adjusted difference of the means, treatment − control. */
  difference: number;
  /** OLS (classical) standard error of b — statsmodels' `bse`. */
  se: number;
  /** The standard error the test uses: max of `se` and the per-arm (Welch-type) one. */
  testSe: number;
  /** Residual degrees of freedom, n − 3. */
  df: number;
  /** The same fit without x: the SE of ȳt − ȳc. */
  unadjustedSe: number;
  /** 1 − Var(b)/Var₀: the share of the variance the covariate removed (may be < 0 by chance). */
  varianceReduction: number;
  /** Control mean of y (the lift's denominator). */
  controlMean: number;
}

const finite = (s: CovariateStats) =>
  [s.n, s.sumY, s.sumY2, s.sumX, s.sumX2, s.sumXY].every(Number.isFinite) && s.n >= 0;

/** Steps 1–6 above; null without a covariate, with fewer than 4 visitors, or no residual spread. */
export function cupedRegression(
  control: CovariateStats,
  treatment: CovariateStats,
): CupedRegression | null {
  if (!finite(control) || !finite(treatment)) return null;
  const nc = control.n;
  const nt = treatment.n;
  const n = nc + nt;
  if (nc < 2 || nt < 2 || n < 4) return null;
  // 1.
  const arm = (s: CovariateStats) => {
    const my = s.sumY / s.n;
    const mx = s.sumX / s.n;
    return {
      my,
      mx,
      sxx: Math.max(0, s.sumX2 - s.n * mx * mx),
      sxy: s.sumXY - s.n * mx * my,
      syy: Math.max(0, s.sumY2 - s.n * my * my),
    };
  };
  const c = arm(control);
  const t = arm(treatment);
  const sxx = c.sxx + t.sxx;
  const sxy = c.sxy + t.sxy;
  const syy = c.syy + t.syy;
  // A covariate that does not vary within the arms carries no information.
  if (!(sxx > 1e-12 * Math.max(1, control.sumX2 + treatment.sumX2))) return null;
  // 2., 3.
  const theta = sxy / sxx;
  const difference = t.my - c.my - theta * (t.mx - c.mx);
  // 4., 5.
  const rss = Math.max(0, syy - theta * sxy);
  const df = n - 3;
  const sigma2 = rss / df;
  const dx = t.mx - c.mx;
  const variance = sigma2 * (1 / nc + 1 / nt + (dx * dx) / sxx);
  const unadjustedVariance = (syy / (n - 2)) * (1 / nc + 1 / nt);
  if (!(variance > 0) || !(unadjustedVariance > 0)) return null;
  const residual = (a: typeof c, count: number) =>
    Math.max(0, a.syy - 2 * theta * a.sxy + theta * theta * a.sxx) / (count - 1);
  const welchVariance = residual(c, nc) / nc + residual(t, nt) / nt;
  return {
    theta,
    difference,
    se: Math.sqrt(variance),
    testSe: Math.sqrt(Math.max(variance, welchVariance)),
    df,
    unadjustedSe: Math.sqrt(unadjustedVariance),
    varianceReduction: 1 - variance / unadjustedVariance,
    controlMean: c.my,
  };
}

/** CUPED's test of one comparison, in the results' mode. */
export interface CupedTest extends CupedRegression {
  /** The mode's (1 − α) interval of the adjusted difference. */
  differenceCi: [number, number];
  pValue: number;
  /** Relative lift b/ȳc and its interval (the difference's divided by ȳc; ȳc > 0). */
  lift: { estimate: number; se: number; ci: OpenInterval };
}

/**
 * The adjusted difference tested like the unadjusted one: sequential mode → the always-valid
 * mixture test of b with SE(b) and its confidence sequence; fixed → Student's t with n − 3
 * degrees of freedom. The lift divides the difference and its interval by the control mean
 * (null when ȳc ≤ 0); for a non-negative metric its lower end is cut at −1.
 */
export function cupedTest(
  control: CovariateStats,
  treatment: CovariateStats,
  options: { mode: "sequential" | "fixed"; alpha: number; nStar: number; nonNegative: boolean },
): CupedTest | null {
  const fit = cupedRegression(control, treatment);
  if (fit === null || !(fit.controlMean > 0)) return null;
  const n = control.n + treatment.n;
  let pValue: number;
  let half: number;
  const se = fit.testSe;
  if (options.mode === "sequential") {
    pValue = sequentialTest(fit.difference, se, n, options.alpha, options.nStar).pValue;
    half = se * Math.sqrt(sequentialThreshold(n, options.alpha, options.nStar));
  } else {
    pValue = twoSidedStudentTP(fit.difference / se, fit.df);
    half = se * studentTQuantile(1 - options.alpha / 2, fit.df);
  }
  const differenceCi: [number, number] = [fit.difference - half, fit.difference + half];
  const m = fit.controlMean;
  const low = differenceCi[0] / m;
  return {
    ...fit,
    differenceCi,
    pValue,
    lift: {
      estimate: fit.difference / m,
      se: se / m,
      ci: [options.nonNegative ? Math.max(-1, low) : low, differenceCi[1] / m],
    },
  };
}
