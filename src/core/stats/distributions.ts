/**
 * Distribution functions the statistical tests need: standard normal, Student t and chi-square.
 *
 * Written from the textbook special functions rather than approximation tables, so every step
 * can be checked: the normal and chi-square go through the regularized incomplete gamma function
 * (series / Lentz continued fraction, Numerical Recipes §6.2), the Student t through the
 * regularized incomplete beta function I_x(df/2, ½) (an even-contracted continued fraction that
 * stays accurate for Welch df in the millions, and a power series near t = 0). Quantiles invert
 * the cdfs with Halley / safeguarded Newton steps. Against 50-digit mpmath values the cdfs and
 * quantiles agree to ~1e-13 relative (df 0.5 … 1e8, tails down to 1e-300); the committed
 * fixtures (scripts/stats-reference.py → test/fixtures/stats-reference.json) check them against
 * scipy. The chi-square survival function is checked at df 1e3 … 1e8 against a 90-digit decimal
 * series (scripts/chi-square-reference.py → test/fixtures/chi-square-large-df.json): measured
 * relative error ≤ 2.1e-13 up to df 1e7 and ≤ 2.6e-12 at df 1e8 (the continued fraction's
 * ~1e4 steps each round).
 *
 * Tails are computed directly (`normalCdf(-z)`, `studentTCdf(-t, df)`), never as `1 − cdf`, so
 * tiny p-values keep their relative precision. Invalid arguments (NaN, df ≤ 0, p outside [0, 1])
 * throw a RangeError: they are programming errors, and returning NaN would only hide them.
 */

/** ln √π = ln Γ(½). */
const LN_SQRT_PI = 0.5723649429247001;
/** ln √(2π). */
const LN_SQRT_2PI = 0.9189385332046728;
/** Smallest magnitude the Lentz continued fractions let a denominator take (avoids 0/0). */
const FPMIN = 1e-300;
/** Convergence tolerance of the series and continued fractions (a couple of ulps). */
const EPS = 2 * Number.EPSILON;
/** Iteration cap; the fractions converge in O(√max(a, b)) steps, far below this. */
const MAX_ITERATIONS = 1_000_000;

function requireFinite(name: string, x: number): void {
  if (!Number.isFinite(x)) throw new RangeError(`${name} must be a finite number, got ${x}`);
}

function requireDf(df: number): void {
  if (!(df > 0)) throw new RangeError(`degrees of freedom must be > 0, got ${df}`);
}

function requireProbability(p: number): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`probability must be in [0, 1], got ${p}`);
}

// Lanczos approximation (g = 7, n = 9): relative error below 1e-15 for x > 0.
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/**
 * ln Γ(x) for x > 0 (Lanczos, g = 7). Its absolute error grows with |ln Γ(x)|, so differences of
 * ln Γ at large arguments go through {@link logBeta} instead.
 */
function logGamma(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  if (x === 0.5) return LN_SQRT_PI;
  // Reflection Γ(x)Γ(1−x) = π / sin(πx) keeps the series in its accurate range.
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + LANCZOS_G + 0.5;
  return LN_SQRT_2PI + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/**
 * Stirling remainder ω(x) = ln Γ(x) − [(x − ½) ln x − x + ln √(2π)], for x ≥ 10
 * (asymptotic series Σ B₂ₖ / (2k(2k−1) x^(2k−1)); the first omitted term is below 1e-17).
 */
function stirlingRemainder(x: number): number {
  const x2 = 1 / (x * x);
  return (
    (1 / 12 +
      x2 *
        (-1 / 360 +
          x2 *
            (1 / 1260 +
              x2 *
                (-1 / 1680 +
                  x2 *
                    (1 / 1188 + x2 * (-691 / 360360 + x2 * (1 / 156 + x2 * (-3617 / 122400)))))))) /
    x
  );
}

/**
 * ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b), computed without the catastrophic cancellation
 * of the three ln Γ terms when an argument is large (the t distribution with large df has
 * a = df/2 in the millions): for a large argument the Stirling form is rearranged so that only
 * moderate numbers are added (log1p instead of differences of logarithms).
 */
function logBeta(a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new RangeError(`logBeta needs a, b > 0, got ${a}, ${b}`);
  const big = Math.max(a, b);
  const small = Math.min(a, b);
  if (big < 10) return logGamma(a) + logGamma(b) - logGamma(a + b);
  if (small < 10) {
    // 1. ln Γ(big) − ln Γ(big + small) by Stirling:
    //    −small·ln(big) − (big + small − ½)·log1p(small/big) + small + ω(big) − ω(big + small)
    const diff =
      -small * Math.log(big) -
      (big + small - 0.5) * Math.log1p(small / big) +
      small +
      stirlingRemainder(big) -
      stirlingRemainder(big + small);
    // 2. plus ln Γ(small), which is moderate.
    return logGamma(small) + diff;
  }
  // Both large: ln B = ln √(2π) + (a−½) ln(a/(a+b)) + (b−½) ln(b/(a+b)) − ½ ln(a+b) + ω's.
  const sum = a + b;
  return (
    LN_SQRT_2PI +
    (a - 0.5) * -Math.log1p(b / a) +
    (b - 0.5) * -Math.log1p(a / b) -
    0.5 * Math.log(sum) +
    stirlingRemainder(a) +
    stirlingRemainder(b) -
    stirlingRemainder(sum)
  );
}

// ---------------------------------------------------------------------------------------------
// Incomplete gamma: normal and chi-square

/**
 * log1pmx(t) = ln(1 + t) − t for t > −1. Near 0 both terms are ≈ t and the difference ≈ −t²/2
 * would lose its leading digits, so for |t| < ½ it is summed as its power series
 * Σₖ≥₂ (−1)^(k+1) tᵏ/k (all digits kept; ≤ 55 terms).
 */
function log1pmx(t: number): number {
  if (!(Math.abs(t) < 0.5)) return Math.log1p(t) - t;
  let power = t * t;
  let sum = 0;
  for (let k = 2; k < 200; k++) {
    const term = power / k;
    sum += k % 2 === 0 ? -term : term;
    if (Math.abs(term) <= Math.abs(sum) * EPS) break;
    power *= t;
  }
  return sum;
}

/**
 * ln(x^a e^(−x) / Γ(a)), the front factor of both incomplete-gamma expansions.
 *
 * Why not a·ln x − x − ln Γ(a) for large a: each term is ~a·ln a (≈ 1e9 at df 1e8) while their
 * sum is O(ln a), so the terms' rounding (and Lanczos' 1e-15 relative error on ln Γ(a)) leaves an
 * absolute error ~1e-16·a·ln a in the exponent: 4.9e-9 relative at df 1e7. For a ≥ 10 it is
 * rewritten with Stirling, ln Γ(a) = (a − ½) ln a − a + ln √(2π) + ω(a), and t = (x − a)/a:
 *   a·log1pmx(t) + ½ ln a − ln √(2π) − ω(a),
 * where x − a is exact near the peak (Sterbenz) and every term is of moderate size.
 */
function logGammaFront(a: number, x: number): number {
  if (a < 10) return -x + a * Math.log(x) - logGamma(a);
  return a * log1pmx((x - a) / a) + 0.5 * Math.log(a) - LN_SQRT_2PI - stirlingRemainder(a);
}

/** Series for P(a, x), valid (fast) for x < a + 1: P = e^(−x) x^a / Γ(a) · Σ xⁿ / (a(a+1)…(a+n)). */
function gammaSeries(a: number, x: number): number {
  let ap = a;
  let term = 1 / a;
  let sum = term;
  for (let i = 0; i < MAX_ITERATIONS; i++) {
    ap += 1;
    term *= x / ap;
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * EPS) break;
  }
  return sum * Math.exp(logGammaFront(a, x));
}

/** Continued fraction for Q(a, x), valid (fast) for x ≥ a + 1 (modified Lentz). */
function gammaContinuedFraction(a: number, x: number): number {
  let b = x + 1 - a;
  let c = 1 / FPMIN;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITERATIONS; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = b + an / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) <= EPS) break;
  }
  return Math.exp(logGammaFront(a, x)) * h;
}

/** Regularized upper incomplete gamma Q(a, x) = 1 − P(a, x), accurate in the upper tail. */
function regularizedGammaQ(a: number, x: number): number {
  if (!(a > 0) || !(x >= 0)) throw new RangeError(`regularizedGammaQ needs a > 0, x ≥ 0`);
  if (x === 0) return 1;
  if (x === Infinity) return 0;
  return x < a + 1 ? 1 - gammaSeries(a, x) : gammaContinuedFraction(a, x);
}

/**
 * Standard normal cdf Φ(x). Uses erfc(z) = Q(½, z²) with z = |x|/√2, so the lower tail
 * Φ(−z) = ½·Q(½, z²/2) keeps full relative precision down to about 1e-300.
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) throw new RangeError("normalCdf: x is NaN");
  const halfSquare = (x * x) / 2;
  const tail = 0.5 * regularizedGammaQ(0.5, halfSquare); // P(Z > |x|)
  return x < 0 ? tail : 1 - tail;
}

/** Standard normal density φ(x). */
export function normalPdf(x: number): number {
  return Math.exp(-(x * x) / 2 - LN_SQRT_2PI);
}

// Acklam's rational approximation (relative error < 1.15e-9), refined by Halley steps below.
const ACKLAM_A = [
  -3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2,
  -3.066479806614716e1, 2.506628277459239,
];
const ACKLAM_B = [
  -5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1,
  -1.328068155288572e1,
];
const ACKLAM_C = [
  -7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734,
  4.374664141464968, 2.938163982698783,
];
const ACKLAM_D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];

function acklamLower(p: number): number {
  // Only called with 0 < p ≤ ½.
  const [a0, a1, a2, a3, a4, a5] = ACKLAM_A as [number, number, number, number, number, number];
  const [b0, b1, b2, b3, b4] = ACKLAM_B as [number, number, number, number, number];
  const [c0, c1, c2, c3, c4, c5] = ACKLAM_C as [number, number, number, number, number, number];
  const [d0, d1, d2, d3] = ACKLAM_D as [number, number, number, number];
  if (p < 0.02425) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c0 * q + c1) * q + c2) * q + c3) * q + c4) * q + c5) /
      ((((d0 * q + d1) * q + d2) * q + d3) * q + 1)
    );
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a0 * r + a1) * r + a2) * r + a3) * r + a4) * r + a5) * q) /
    (((((b0 * r + b1) * r + b2) * r + b3) * r + b4) * r + 1)
  );
}

/**
 * Standard normal quantile Φ⁻¹(p): Acklam's approximation refined by Halley steps on the
 * accurate {@link normalCdf} (each step roughly triples the correct digits).
 * Returns −Infinity / Infinity for p = 0 / 1.
 */
export function normalQuantile(p: number): number {
  requireProbability(p);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  // Symmetry: 1 − p is exact for p ≥ ½ (Sterbenz), so the lower tail is the only case.
  if (p > 0.5) return -normalQuantile(1 - p);
  let x = acklamLower(p);
  for (let i = 0; i < 3; i++) {
    // Halley: u = (Φ(x) − p) / φ(x), computed in logs so φ(x) may underflow; x ← x − u/(1 + xu/2)
    const error = normalCdf(x) - p;
    if (error === 0) break;
    const u = Math.sign(error) * Math.exp(Math.log(Math.abs(error)) + (x * x) / 2 + LN_SQRT_2PI);
    const step = u / (1 + (x * u) / 2);
    x -= step;
    if (Math.abs(step) <= Math.abs(x) * 1e-16) break;
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
// Incomplete beta for the Student t: I_x(a, ½) with a = df/2

/**
 * I_x(a, b) for b ≤ 1 by the even contraction of the continued fraction of Numerical Recipes
 * (6.4.5): I_x(a, b) = x^a y^b / (a·B(a, b)) · 1/(1 + d₁/(1 + d₂/(1 + …))) with
 *   d₂ₘ₊₁ = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)),   d₂ₘ = m(b−m)x / ((a+2m−1)(a+2m)).
 * Why the contraction: with a in the millions (Welch df) every d₂ₘ₊₁ is ≈ −1, and evaluating
 * 1 + d₂ₘ₊₁ in floating point cancels ~9 digits. Contracted,
 *   1/(N₀ − d₁d₂/(d₂ + N₁ − d₃d₄/(d₄ + N₂ − …))),  Nₘ = 1 + d₂ₘ₊₁,
 * and Nₘ is computed from y = 1 − x in closed form, a sum of positive terms when b ≤ 1:
 *   Nₘ = [a(2m+1−b) + m(3m+2−b) + (a+m)(a+b+m)·y] / ((a+2m)(a+2m+1)).
 * Converges in O(√a / t) steps; the caller uses it for t² ≥ 1 only.
 */
function incompleteBetaSmallB(x: number, y: number, lnX: number, a: number, b: number): number {
  // 1. front factor x^a y^b / (a·B(a, b)), in logs (the caller supplies ln x accurately).
  const lnFront = a * lnX + b * Math.log(y) - logBeta(a, b) - Math.log(a);
  if (lnFront < -745) return 0; // exp underflows: the tail is below the smallest double
  // 2. contracted continued fraction by the modified Lentz method.
  const dOdd = (m: number) => (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
  const dEven = (m: number) => (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
  const nTerm = (m: number) =>
    (a * (2 * m + 1 - b) + m * (3 * m + 2 - b) + (a + m) * (a + b + m) * y) /
    ((a + 2 * m) * (a + 2 * m + 1));
  let f = nTerm(0);
  let c = f;
  let d = 0;
  for (let m = 1; m < MAX_ITERATIONS; m++) {
    const dm = dEven(m);
    const numerator = -dOdd(m - 1) * dm;
    const denominator = dm + nTerm(m);
    d = denominator + numerator * d;
    if (Math.abs(d) < FPMIN) d = FPMIN;
    c = denominator + numerator / c;
    if (Math.abs(c) < FPMIN) c = FPMIN;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) <= EPS) break;
  }
  return Math.exp(lnFront) / f;
}

/**
 * I_y(p, q) by its power series, for small y (the caller keeps (p+q)·y below ~½):
 *   I_y(p, q) = y^p (1−y)^q / (p·B(p, q)) · Σₙ [(p+q)ₙ / (p+1)ₙ] yⁿ,
 * all terms positive, so no cancellation; ratio of successive terms (p+q+n)·y / (p+1+n).
 */
function incompleteBetaSeries(y: number, p: number, q: number): number {
  const lnFront = p * Math.log(y) + q * Math.log1p(-y) - logBeta(p, q) - Math.log(p);
  let term = 1;
  let sum = 1;
  for (let n = 0; n < MAX_ITERATIONS; n++) {
    term *= ((p + q + n) * y) / (p + 1 + n);
    sum += term;
    if (term < sum * EPS) break;
  }
  return Math.exp(lnFront) * sum;
}

/**
 * Student t cdf with `df` degrees of freedom (df may be fractional, as Welch–Satterthwaite df
 * are; df = Infinity is the normal). Lower tail: F(−|t|) = ½·I_{df/(df+t²)}(df/2, ½), accurate
 * to ~1e-13 relative for df from 0.5 to 1e8 and tails down to 1e-300.
 */
export function studentTCdf(t: number, df: number): number {
  if (Number.isNaN(t)) throw new RangeError("studentTCdf: t is NaN");
  requireDf(df);
  if (df === Infinity) return normalCdf(t);
  if (t === 0) return 0.5;
  // 1. x = df/(df+t²) and y = t²/(df+t²) = 1 − x, each computed directly (no 1 − x).
  const t2 = t * t;
  const x = df / (df + t2);
  const y = t2 / (df + t2);
  // ln x = −log1p(t²/df); where t²/df is huge (or overflows, |t| > 1e154 with tiny df) the
  // equal ln df − 2 ln|t|.
  const ratio = t2 / df;
  const lnX = ratio < 1e300 ? -Math.log1p(ratio) : Math.log(df) - 2 * Math.log(Math.abs(t));
  // 2. the tail P(T < −|t|) = ½·I_x(df/2, ½) (continued fraction, fast for t² ≥ 1); near the
  //    centre ½·(1 − I_y(½, df/2)) by the series instead (the fraction converges slowly there,
  //    and the subtraction is harmless: I_y(½, df/2) = P(|T| < |t|) ≤ 0.69 for t² < 1).
  const tail =
    t2 >= 1
      ? 0.5 * incompleteBetaSmallB(x, Number.isNaN(y) ? 1 : y, lnX, df / 2, 0.5)
      : 0.5 - 0.5 * incompleteBetaSeries(y, 0.5, df / 2);
  return t < 0 ? tail : 1 - tail;
}

/** Student t density: f(t) = (1 + t²/df)^(−(df+1)/2) / (√df · B(df/2, ½)). */
export function studentTPdf(t: number, df: number): number {
  requireDf(df);
  if (df === Infinity) return normalPdf(t);
  return Math.exp(
    -logBeta(df / 2, 0.5) - 0.5 * Math.log(df) - ((df + 1) / 2) * Math.log1p((t * t) / df),
  );
}

/**
 * Student t quantile F⁻¹(p; df). Exact for df = 1 and 2; otherwise a Cornish–Fisher start from
 * the normal quantile, refined by Newton steps on ln F (well scaled even in heavy tails) inside
 * a bracket that falls back to bisection, so it cannot diverge.
 */
export function studentTQuantile(p: number, df: number): number {
  requireProbability(p);
  requireDf(df);
  if (df === Infinity) return normalQuantile(p);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  if (p > 0.5) return -studentTQuantile(1 - p, df); // 1 − p exact for p ≥ ½
  // From here 0 < p < ½ and the answer is negative.
  if (df === 1) return -1 / Math.tan(Math.PI * p); // Cauchy: tan(π(p − ½)) = −cot(πp)
  if (df === 2) return (2 * p - 1) / Math.sqrt(2 * p * (1 - p));

  // 1. start: Cornish–Fisher expansion in 1/df around z = Φ⁻¹(p).
  const z = normalQuantile(p);
  const z2 = z * z;
  let x = z + (z * (z2 + 1)) / (4 * df) + (z * (5 * z2 * z2 + 16 * z2 + 3)) / (96 * df * df);
  if (!(x < 0) || !Number.isFinite(x)) x = z;

  // 2. bracket [lo, hi] with F(lo) ≤ p < F(hi); hi = 0 has F = ½.
  let lo = Math.min(x, -1);
  let hi = 0;
  while (studentTCdf(lo, df) > p) {
    hi = lo;
    lo *= 2;
    if (!Number.isFinite(lo)) return -Infinity; // below the smallest representable quantile
  }
  if (!(x > lo && x < hi)) x = (lo + hi) / 2;

  // 3. Newton on g(x) = ln F(x) − ln p, g' = f/F; bisection whenever a step leaves the bracket.
  const lnP = Math.log(p);
  for (let i = 0; i < 200; i++) {
    const F = studentTCdf(x, df);
    if (F === p) return x;
    if (F > p) hi = x;
    else lo = x;
    const f = studentTPdf(x, df);
    let next = x - ((Math.log(F) - lnP) * F) / f;
    if (!(next > lo && next < hi)) {
      // geometric midpoint when the bracket spans orders of magnitude (heavy tails)
      next = hi < 0 && lo / hi > 4 ? -Math.sqrt(lo * hi) : (lo + hi) / 2;
    }
    if (Math.abs(next - x) <= Math.abs(next) * 4 * Number.EPSILON) return next;
    x = next;
  }
  return x;
}

/** Chi-square survival function P(X > x) with `df` degrees of freedom: Q(df/2, x/2). */
export function chiSquareSf(x: number, df: number): number {
  if (Number.isNaN(x)) throw new RangeError("chiSquareSf: x is NaN");
  requireDf(df);
  if (x <= 0) return 1;
  return regularizedGammaQ(df / 2, x / 2);
}

/** Two-sided p-value of a t statistic: 2·F(−|t|; df). */
export function twoSidedStudentTP(t: number, df: number): number {
  requireFinite("t", t);
  return Math.min(1, 2 * studentTCdf(-Math.abs(t), df));
}
