/**
 * Always-valid sequential test: the normal-mixture sequential probability ratio test (mSPRT) of
 * Johari, Pekelis & Walsh ("Always valid inference", 2017), in the form GrowthBook and Eppo use
 * (docs/statistics.md). Its p-values and confidence sequences stay valid however often results are
 * looked at, which is why it is the default mode: a dashboard is peeked at every day.
 */

import { normalCdf } from "./distributions";

/**
 * Mixture tuning ρ for a target sample size N* (both arms together):
 * ρ = √((−2 ln α + ln(−2 ln α + 1)) / N*).
 *
 * Why: at N visitors the squared half-width below is V·(1+r)/r·(ln(1+r) + L) with r = ρ²N and
 * L = −2 ln α; setting its derivative in r to 0 gives r = L + ln(1 + r), and one fixed-point
 * step from r = L gives r = L + ln(1 + L). So this ρ (Howard et al. 2021) makes the confidence
 * sequence (nearly) tightest at N = N*; before and after N* the test is just as valid, only
 * less sharp.
 */
export function sequentialRho(alpha: number, nStar: number): number {
  const l = -2 * Math.log(alpha);
  return Math.sqrt((l + Math.log(l + 1)) / nStar);
}

/**
 * Always-valid p-value and (1 − α) confidence sequence for an estimate θ̂ that is
 * asymptotically normal with standard error SE, after N visitors (both arms).
 *
 * Derivation (V = SE², H₀: θ = 0, mixing distribution θ ~ N(0, τ²)):
 * 1. ρ from {@link sequentialRho}; mixture variance τ² = ρ²·N·SE² (ρ² is per-visitor, and
 *    N·SE² is the per-visitor variance of the estimate, so τ² is on the estimate's scale);
 * 2. mixture likelihood ratio
 *    Λ = ∫ φ(θ̂; θ, V) φ(θ; 0, τ²) dθ / φ(θ̂; 0, V) = φ(θ̂; 0, V + τ²) / φ(θ̂; 0, V)
 *      = √(V/(V+τ²)) · exp(τ²·θ̂² / (2V(V+τ²)));
 * 3. always-valid p-value p = min(1, 1/Λ) (Ville's inequality: P(sup Λ ≥ 1/α) ≤ α under H₀);
 * 4. confidence sequence = the θ₀ not rejected, Λ(θ̂ − θ₀) < 1/α:
 *    θ̂ ± √( (V+τ²)/τ² · V · (ln((V+τ²)/V) − 2 ln α) ).
 * p < α exactly when the interval excludes 0.
 *
 * Numerically everything depends on r = τ²/V = ρ²N only, so it is computed through r
 * (log1p, and ln Λ instead of Λ) and cannot overflow for tiny SEs or huge z.
 *
 * This is the instantaneous p-value; the strictly monotone always-valid p-value is the running
 * minimum over looks, which needs history this pure function does not have.
 *
 * @param estimate θ̂ (for Splitstream: the relative lift)
 * @param se its standard error, > 0
 * @param n visitors so far, both arms together, > 0
 * @param alpha significance level in (0, 1)
 * @param nStar tuning sample size N* (both arms), > 0
 */
export function sequentialTest(
  estimate: number,
  se: number,
  n: number,
  alpha: number,
  nStar: number,
): { pValue: number; ci: [number, number] } {
  if (!Number.isFinite(estimate)) throw new RangeError(`estimate must be finite, got ${estimate}`);
  if (!(se > 0) || !Number.isFinite(se)) throw new RangeError(`se must be > 0, got ${se}`);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError(`n must be > 0, got ${n}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  if (!(nStar > 0) || !Number.isFinite(nStar)) throw new RangeError(`nStar must be > 0`);
  // 1. r = τ²/V = ρ²·N
  const rho = sequentialRho(alpha, nStar);
  const r = rho * rho * n;
  // 2. ln Λ = −½ ln(1 + r) + (θ̂²/V) · r / (2(1 + r))
  const z = estimate / se;
  const logLambda = -0.5 * Math.log1p(r) + (z * z * r) / (2 * (1 + r));
  // 3. p = min(1, 1/Λ)
  const pValue = Math.min(1, Math.exp(-logLambda));
  // 4. half-width = SE · √((1 + r)/r · (ln(1 + r) − 2 ln α))
  const halfWidth = se * Math.sqrt(((1 + r) / r) * (Math.log1p(r) - 2 * Math.log(alpha)));
  return { pValue, ci: [estimate - halfWidth, estimate + halfWidth] };
}

/**
 * One-sided always-valid p-value for H₀: θ ≤ 0 against θ > 0, for an estimate θ̂ with standard
 * error SE after N visitors (both arms) — the guardrails' test of harm (docs/statistics.md
 * "Guardrails"): the caller orients θ so that harm is positive.
 *
 * The mixing distribution of {@link sequentialTest} restricted to the alternative: θ ~ half-normal
 * on (0, ∞) with scale τ (density 2·φ(θ; 0, τ²)), τ² = ρ²·N·SE² as there. With r = τ²/V:
 *   Λ = 2 ∫₀^∞ exp((θ·θ̂ − θ²/2)/V) φ(θ; 0, τ²) dθ
 *     = 2 · (1 + r)^(−½) · exp(z²·r / (2(1 + r))) · Φ(z·√(r/(1 + r))),   z = θ̂/SE.
 * For every θ′ > 0 the likelihood ratio of θ′ against 0 is a non-negative supermartingale under
 * any θ ≤ 0 (E exp(θ′X − θ′²/2) = exp(θ′θ) ≤ 1), so is their mixture Λ, and Ville's inequality
 * gives P(sup Λ ≥ 1/α) ≤ α under all of H₀: p = min(1, 1/Λ) may be looked at after every visitor.
 * It is smaller than the two-sided p for θ̂ > 0 (all the mixture's mass is on the side tested),
 * so harm is found sooner than with the two-sided test at the same α.
 */
export function oneSidedSequentialTest(
  estimate: number,
  se: number,
  n: number,
  alpha: number,
  nStar: number,
): number {
  if (!Number.isFinite(estimate)) throw new RangeError(`estimate must be finite, got ${estimate}`);
  if (!(se > 0) || !Number.isFinite(se)) throw new RangeError(`se must be > 0, got ${se}`);
  if (!(n > 0) || !Number.isFinite(n)) throw new RangeError(`n must be > 0, got ${n}`);
  if (!(alpha > 0 && alpha < 1)) throw new RangeError(`alpha must be in (0, 1), got ${alpha}`);
  if (!(nStar > 0) || !Number.isFinite(nStar)) throw new RangeError(`nStar must be > 0`);
  const rho = sequentialRho(alpha, nStar);
  const r = rho * rho * n;
  const z = estimate / se;
  const tail = normalCdf(z * Math.sqrt(r / (1 + r)));
  if (tail <= 0) return 1;
  const logLambda = Math.LN2 - 0.5 * Math.log1p(r) + (z * z * r) / (2 * (1 + r)) + Math.log(tail);
  return Math.min(1, Math.exp(-logLambda));
}

/**
 * The squared-z threshold of {@link sequentialTest} after N visitors: an estimate with variance
 * V is rejected (p < α) exactly when θ̂² > c·V, c = (1 + r)/r · (ln(1 + r) − 2 ln α), r = ρ²N.
 * The confidence sequence is θ̂ ± √(c·V).
 */
export function sequentialThreshold(n: number, alpha: number, nStar: number): number {
  const rho = sequentialRho(alpha, nStar);
  const r = rho * rho * n;
  return ((1 + r) / r) * (Math.log1p(r) - 2 * Math.log(alpha));
}

/** A (1 − α) interval whose ends may be unbounded (null), so that it is never ±Infinity. */
export type OpenInterval = [number | null, number | null];

/**
 * Interval for the ratio k = μt/μc by Fieller's method: the k not rejected by the test of
 * μt − k·μc = 0 that rejects when (μ̂t − k·μ̂c)² > c·(at + k²·ac), at and ac being the variances
 * of μ̂t and μ̂c. With c = {@link sequentialThreshold} it inverts the same mixture test that
 * decides significance: at k = 1 it is the test of μt − μc with variance at + ac, so the lift
 * interval (k − 1) excludes 0 exactly when that test rejects (docs/statistics.md "Sequential
 * mode", step 3). Unlike the delta method it lets μ̂c be uncertain: when μ̂c itself is within the
 * noise (μ̂c² ≤ c·ac: a baseline with a handful of conversions) no upper end can be claimed, and
 * the interval is open (null) there.
 *
 * 1. in units of μ̂c (μ̂c > 0; scale-free, no under/overflow): m = μ̂t/μ̂c, ãt = at/μ̂c²,
 *    ãc = ac/μ̂c²; the k not rejected solve q(k) = A·k² − 2B·k + C ≤ 0 with
 *    A = 1 − c·ãc, B = m, C = m² − c·ãt. The estimate is always inside:
 *    q(m) = −c·(ãc·m² + ãt) ≤ 0;
 * 2. A > 0: the interval between the roots (B ∓ √(B² − AC))/A (B² − AC ≥ 0 here);
 * 3. A = 0: q is linear and the set is the half-line on the estimate's side of C/(2B);
 * 4. A < 0: the whole line, or two half-lines (−∞, k₁] ∪ [k₂, ∞) when q has real roots
 *    k₁ < k₂. The vertex B/A = m/A has the other sign than m, so the estimate lies in
 *    [k₂, ∞) when m > 0 and in (−∞, k₁] when m < 0. One interval has to be reported:
 *    - when the test rejects k = 1 (q(1) > 0: 1 is in the gap (k₁, k₂)), the half-line that
 *      holds the estimate. The convex hull, the whole line, would contain 1 and contradict the
 *      significant p-value (a revenue metric whose baseline mean is inside the noise while
 *      the treatment's is clearly above 0);
 *    - otherwise the convex hull (both ends open): it contains 1 as the test does, and gives
 *      up nothing of the set. The half-line of the estimate alone could miss 1 (m < 0 and
 *      1 ≥ k₂), and would claim an end the data do not support;
 * 5. `nonNegative` (the metric is ≥ 0 for every visitor, e.g. a conversion rate): μt ≥ 0, so
 *    k < 0 is impossible and the interval is cut at k = 0; in step 4 the lower half-line is
 *    dropped when it lies entirely below 0 (then the set is exactly [k₂, ∞)).
 */
export function fiellerRatioInterval(
  meanTreatment: number,
  varTreatment: number,
  meanControl: number,
  varControl: number,
  threshold: number,
  nonNegative: boolean,
): OpenInterval {
  // 1.
  const m = meanTreatment / meanControl;
  const at = varTreatment / meanControl / meanControl;
  const ac = varControl / meanControl / meanControl;
  const A = 1 - threshold * ac;
  const B = m;
  const C = m * m - threshold * at;
  const disc = Math.max(0, B * B - A * C);
  const root = Math.sqrt(disc);
  const low = nonNegative ? 0 : null;
  // 2. (roots written to avoid cancellation: k₁·k₂ = C/A)
  if (A > 0) {
    const big = B >= 0 ? (B + root) / A : (B - root) / A;
    const small = big !== 0 ? C / (A * big) : 0;
    const lo = Math.min(big, small);
    const hi = Math.max(big, small);
    return [low === null ? lo : Math.max(lo, low), hi];
  }
  const cut = (lo: number | null, hi: number | null): OpenInterval => [
    low === null ? lo : Math.max(lo ?? low, low),
    hi,
  ];
  // 3. A = 0: q(k) = C − 2B·k ≤ 0 (B = 0 leaves C = −c·ãt ≤ 0: every k)
  if (A === 0) {
    if (B === 0) return cut(null, null);
    const edge = C / (2 * B);
    return B > 0 ? cut(edge, null) : cut(null, edge);
  }
  // 4. A < 0 (no real roots, or a double root: q ≤ 0 everywhere, the whole line)
  if (!(B * B - A * C > 0)) return cut(null, null);
  const far = B >= 0 ? (B + root) / A : (B - root) / A; // a root, of the sign of −B
  const near = C / (A * far);
  const k1 = Math.min(far, near);
  const k2 = Math.max(far, near);
  const rejectsOne = (m - 1) * (m - 1) > threshold * (at + ac); // q(1) > 0, without cancellation
  if (rejectsOne) return m > 0 ? cut(k2, null) : cut(null, k1);
  // 5. (nonNegative: the lower half-line is dropped when entirely below 0)
  if (nonNegative && k1 < 0) return cut(k2, null);
  return cut(null, null);
}
