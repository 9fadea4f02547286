/**
 * Sufficient statistics of one metric in one variation: everything the tests need, and
 * mergeable, so per-day (or per-shard) counts add up to the experiment's without revisiting
 * events.
 */

/**
 * Sufficient statistics over the visitors of one variation (docs/statistics.md).
 *
 * - `n`: visitors (unique, by first impression); visitors without a conversion count as 0.
 * - `sum`: Σx. For a conversion-rate metric x ∈ {0, 1}, so `sum` = unique converters.
 * - `sumSq`: Σx². For a conversion-rate metric `sumSq` = `sum`; for a continuous metric
 *   (revenue per visitor) it is the sum of the squared per-visitor values.
 */
export interface SufficientStats {
  n: number;
  sum: number;
  sumSq: number;
}

/** The statistics of no visitors: the identity of {@link mergeStats}. */
export const EMPTY_STATS: Readonly<SufficientStats> = Object.freeze({ n: 0, sum: 0, sumSq: 0 });

/**
 * Statistics of the union of two disjoint sets of visitors. Addition is exact for counts and
 * associative/commutative up to floating-point rounding, so days, shards or revisions can be
 * combined in any order.
 */
export function mergeStats(a: SufficientStats, b: SufficientStats): SufficientStats {
  return { n: a.n + b.n, sum: a.sum + b.sum, sumSq: a.sumSq + b.sumSq };
}

/** Mean per visitor (conversion rate, revenue per visitor); null without visitors. */
export function mean(s: SufficientStats): number | null {
  return s.n > 0 ? s.sum / s.n : null;
}

/**
 * Relative tolerance below which the centred sum of squares counts as rounding noise: for
 * constant data (every visitor converted, every order the same value) Σx² − (Σx)²/n is 0 in
 * exact arithmetic but can come out as ±1e-17·Σx², and a tiny positive variance would turn
 * into an absurdly small standard error. A genuine spread that small (coefficient of variation
 * below 1e-6) is indistinguishable from none.
 */
const ZERO_VARIANCE_TOLERANCE = 1e-12;

/**
 * Sample variance (denominator n − 1) per visitor; null when n < 2.
 *
 * 1. centred sum of squares S = Σx² − (Σx)²/n;
 * 2. S is clamped to 0 when it is rounding noise (negative, or ≤ 1e-12·Σx²);
 * 3. variance = S / (n − 1).
 */
export function variance(s: SufficientStats): number | null {
  if (!(s.n >= 2)) return null;
  const centred = s.sumSq - (s.sum * s.sum) / s.n;
  if (!(centred > ZERO_VARIANCE_TOLERANCE * Math.abs(s.sumSq))) return 0;
  return centred / (s.n - 1);
}

/**
 * True when the statistics can be analysed at all: n ≥ 0 and every field finite, Σx² ≥ 0.
 * Anything else is corrupt input (NaN from a division upstream, a negative count).
 */
export function isValidStats(s: SufficientStats): boolean {
  return (
    Number.isFinite(s.n) &&
    s.n >= 0 &&
    Number.isFinite(s.sum) &&
    Number.isFinite(s.sumSq) &&
    s.sumSq >= 0
  );
}
