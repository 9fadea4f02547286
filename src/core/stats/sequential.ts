/**
 * Always-valid sequential test: the normal-mixture sequential probability ratio test (mSPRT) of
 * Johari, Pekelis & Walsh ("Always valid inference", 2017), in the form GrowthBook and Eppo use
 * (CONTRACT §8). Its p-values and confidence sequences stay valid however often results are
 * looked at, which is why it is the default mode: a dashboard is peeked at every day.
 */

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
