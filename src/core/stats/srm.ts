/**
 * Sample-ratio mismatch (docs/statistics.md): are the visitors split the way the allocation says?
 * A mismatch means the assignment or the counting is broken (redirect losses, bot filtering on
 * one arm, caching), and then every other result of the experiment is suspect.
 */
import { chiSquareSf } from "./distributions";

/** Options of {@link sampleRatioMismatch}. */
export interface SampleRatioMismatchOptions {
  /** Flag when p < threshold. Default 0.001: the check runs on every look, so it must be strict. */
  threshold?: number;
  /** Only check once every allocated arm has at least this many visitors. Default 8. */
  minPerVariation?: number;
}

/** Result of {@link sampleRatioMismatch}. */
export interface SampleRatioMismatchResult {
  /** Pearson's χ² statistic; null when not checked. */
  chiSquare: number | null;
  /** Degrees of freedom: allocated arms − 1 (0 when fewer than two arms are allocated). */
  df: number;
  /** P(χ²_df ≥ statistic); null when not checked. */
  pValue: number | null;
  /** True when checked and p < threshold. */
  flagged: boolean;
  /** False while there are too few visitors (or arms) for the test to mean anything. */
  checked: boolean;
}

/**
 * Chi-square goodness-of-fit of the observed visitors against the allocation weights.
 *
 * 1. keep the arms with weight > 0 (an arm taken out of the allocation has no expectation);
 * 2. expected share eᵢ = wᵢ / Σw; expected count Eᵢ = eᵢ · N with N = Σ observed of those arms;
 * 3. checked only with ≥ 2 such arms and every one of them having ≥ `minPerVariation`
 *    visitors (the χ² approximation needs expected counts that are not tiny; the default 8
 *    is the one docs/statistics.md states);
 * 4. χ² = Σ (Oᵢ − Eᵢ)² / Eᵢ with df = k − 1, p = P(χ²_df ≥ χ²);
 * 5. flagged when p < threshold.
 *
 * @param observed visitors per arm
 * @param weights allocation weight per arm, same order and length (any unit, ≥ 0)
 */
export function sampleRatioMismatch(
  observed: readonly number[],
  weights: readonly number[],
  options: SampleRatioMismatchOptions = {},
): SampleRatioMismatchResult {
  const threshold = options.threshold ?? 0.001;
  const minPerVariation = options.minPerVariation ?? 8;
  if (observed.length !== weights.length)
    throw new RangeError(`observed (${observed.length}) and weights (${weights.length}) differ`);
  weights.forEach((w, i) => {
    if (!(w >= 0) || !Number.isFinite(w)) throw new RangeError(`weight ${i} must be ≥ 0, got ${w}`);
  });
  // 1.
  const arms = observed.map((o, i) => ({ o, w: weights[i]! })).filter((arm) => arm.w > 0);
  const df = Math.max(0, arms.length - 1);
  const notChecked: SampleRatioMismatchResult = {
    chiSquare: null,
    df,
    pValue: null,
    flagged: false,
    checked: false,
  };
  // 3. (the guard first: nothing below may divide by zero)
  if (arms.length < 2) return notChecked;
  if (!arms.every((arm) => Number.isFinite(arm.o) && arm.o >= minPerVariation)) return notChecked;
  // 2.
  const totalWeight = arms.reduce((sum, arm) => sum + arm.w, 0);
  const total = arms.reduce((sum, arm) => sum + arm.o, 0);
  if (!(total > 0)) return notChecked; // only reachable with minPerVariation ≤ 0
  // 4.
  const chiSquare = arms.reduce((sum, arm) => {
    const expected = (arm.w / totalWeight) * total;
    return sum + ((arm.o - expected) * (arm.o - expected)) / expected;
  }, 0);
  const pValue = chiSquareSf(chiSquare, df);
  // 5.
  return { chiSquare, df, pValue, flagged: pValue < threshold, checked: true };
}
