/**
 * Multi-armed bandit allocation (issue #8, docs/bandits.md "Allocation algorithm"): Thompson
 * sampling on Beta posteriors of the primary metric's conversion rate, with a minimum
 * exploration share per arm and a "probability of being best" stop rule.
 *
 * Pure and deterministic: the randomness comes from a seeded PRNG ({@link createRng}), so the
 * scheduled handler gets the same weights for the same counts and seed (a retried run publishes
 * the same revision), and tests can pin every number. No I/O: the caller reads the counts and
 * publishes the weights.
 *
 * Steps of {@link allocateBandit}:
 * 1. validate the arms; impossible counts → equal split, reason `warming_up`, with `problems`;
 * 2. resolve the options (defaults, clamps, the exploration floor in basis points);
 * 3. probability of being best per arm, by Monte Carlo over the Beta posteriors;
 * 4. an arm below `minVisitorsPerArm` → equal split, reason `warming_up`;
 * 5. weights = probability of being best, floored at the exploration share (water-filling);
 * 6. basis points by largest-remainder rounding, the floor re-checked on the integers;
 * 7. winner when one arm's probability of being best reaches `winnerThreshold`.
 */
import { murmurhash3 } from "./murmurhash";
import { formatPath, type Problem } from "./problem";

/** Total of a traffic allocation, as in Optimizely datafiles: 10000 basis points = 100 %. */
const TOTAL_BP = 10_000;
/** Upper bound on Monte Carlo draws: 10⁶ × 10 arms is already ~1 s of CPU in a Worker. */
const MAX_DRAWS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Random numbers
// ---------------------------------------------------------------------------------------------

/**
 * splitmix32: expands one 32-bit seed into well-mixed words. Used only to fill the xoshiro
 * state, because xoshiro must not start from (nearly) all-zero state and neighbouring seeds
 * (round 7, round 8) must give unrelated streams.
 */
function splitmix32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x9e3779b9) | 0;
    let t = a ^ (a >>> 16);
    t = Math.imul(t, 0x21f0aaad);
    t ^= t >>> 15;
    t = Math.imul(t, 0x735a2d97);
    return (t ^ (t >>> 15)) >>> 0;
  };
}

/**
 * Deterministic PRNG: xoshiro128** (Blackman & Vigna), period 2¹²⁸ − 1, returning floats in
 * [0, 1) with 32 random bits each.
 *
 * Seeding:
 * 1. an integer `number` is taken modulo 2³² (so `-1` and `4294967295` are the same seed);
 *    any other number (NaN, ±Infinity, 1.5) and every string is hashed (MurmurHash3 of its
 *    decimal / UTF-8 text), so `"exp_42:round_7"` is a valid seed;
 * 2. the 32-bit seed is expanded to the 128-bit state with splitmix32.
 *
 * Why xoshiro128** rather than mulberry32: one allocation with 10 arms uses ~4·10⁵ uniforms and
 * a simulation tens of millions; mulberry32's 2³² period and known output gaps are too close
 * for comfort, xoshiro's are not, at the same speed.
 */
export function createRng(seed: number | string): () => number {
  const generator = new Xoshiro128(seed);
  return () => generator.next();
}

/** A source of uniform floats in [0, 1). */
interface Uniform {
  next(): number;
}

/**
 * The generator behind {@link createRng}. A class, not a closure over `let` variables: V8 keeps
 * captured variables in a heap context, and the class measured 1.3–3× faster per number
 * (V8, Node 22); the Monte Carlo loop draws millions of them.
 */
class Xoshiro128 implements Uniform {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number | string) {
    // 1. Seed → 32 bits.
    const seed32 =
      typeof seed === "number" && Number.isInteger(seed)
        ? seed >>> 0
        : murmurhash3(String(seed), 0);
    // 2. 32 bits → 128-bit state (never all zero: xoshiro would then output zeros forever).
    const mix = splitmix32(seed32);
    this.s0 = mix() | 0;
    this.s1 = mix() | 0;
    this.s2 = mix() | 0;
    this.s3 = mix() | 0;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  next(): number {
    const s1 = this.s1;
    const r = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
    const t = s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return (r >>> 0) / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Ziggurat tables for the standard normal (Marsaglia & Tsang 2000, "The Ziggurat Method for
 * Generating Random Variables", 128 layers of equal area V, base layer width R), computed once.
 * Scaled to 24-bit magnitudes because a 32-bit draw is split into 7 layer bits and 25 value bits
 * (sign + 24): the layer and the value then come from disjoint bits, which avoids the
 * correlation Doornik (2005) found in the original, where both came from the same bits.
 * - `ZIG_K[i]`: |value| below it lies in layer i's rectangle core → accept at once (~99 %);
 * - `ZIG_W[i]`: value → x scale (layer i's width / 2²⁴);
 * - `ZIG_F[i]`: the density e^(−x²/2) at layer i's edge, for the wedge test.
 */
const ZIG_R = 3.442619855899;
const ZIG_V = 9.91256303526217e-3;
const ZIG_SCALE = 2 ** 24;
const ZIG_K = new Float64Array(128);
const ZIG_W = new Float64Array(128);
const ZIG_F = new Float64Array(128);
{
  // Layer 0 is the base strip: a rectangle of width q = V/f(R) standing for the area V under
  // [0, R] plus the tail beyond R; layer 127 is the widest true rectangle, layer 1 the top.
  let x = ZIG_R;
  let previous = x;
  const q = ZIG_V / Math.exp(-0.5 * x * x);
  ZIG_K[0] = Math.floor((x / q) * ZIG_SCALE);
  ZIG_K[1] = 0;
  ZIG_W[0] = q / ZIG_SCALE;
  ZIG_W[127] = x / ZIG_SCALE;
  ZIG_F[0] = 1;
  ZIG_F[127] = Math.exp(-0.5 * x * x);
  for (let i = 126; i >= 1; i--) {
    // Next edge up: the layer between x_i and x_(i+1) has area V.
    x = Math.sqrt(-2 * Math.log(ZIG_V / x + Math.exp(-0.5 * x * x)));
    ZIG_K[i + 1] = Math.floor((x / previous) * ZIG_SCALE);
    previous = x;
    ZIG_F[i] = Math.exp(-0.5 * x * x);
    ZIG_W[i] = x / ZIG_SCALE;
  }
}

/**
 * Gamma and Beta variates from a uniform source. A class rather than free functions so the
 * Monte Carlo loop can keep the source monomorphic and the per-arm constants out of the loop.
 */
class Variates {
  constructor(private readonly source: Uniform) {}

  /**
   * Standard normal by the ziggurat method (tables above). Why not Box–Muller or the polar
   * method: they need a logarithm and a square root per pair; the ziggurat needs one 32-bit draw
   * and a multiplication ~99 % of the time, and the normal is most of a gamma variate's cost.
   * 1. one 32-bit draw: layer i = low 7 bits, signed value hz = the other 25 bits;
   * 2. inside the layer's rectangle core (|hz| < K[i]) → x = hz·W[i];
   * 3. base layer outside its core → the tail beyond R (Marsaglia 1964: x = −ln U₁ / R,
   *    accepted when −2 ln U₂ ≥ x²);
   * 4. otherwise the wedge: accept x when a uniform height between the layer's edges falls under
   *    e^(−x²/2); rejected → start again at step 1.
   */
  normal(): number {
    for (;;) {
      // xoshiro's next() is r/2³², so this recovers its 32 bits exactly.
      const bits = (this.source.next() * 4294967296) | 0;
      const i = bits & 127;
      const hz = bits >> 7;
      const x = hz * ZIG_W[i]!;
      if (Math.abs(hz) < ZIG_K[i]!) return x;
      if (i === 0) {
        let tail: number;
        let y: number;
        do {
          tail = -Math.log(1 - this.source.next()) / ZIG_R;
          y = -Math.log(1 - this.source.next());
        } while (y + y < tail * tail);
        return hz > 0 ? ZIG_R + tail : -ZIG_R - tail;
      }
      if (ZIG_F[i]! + this.source.next() * (ZIG_F[i - 1]! - ZIG_F[i]!) < Math.exp(-0.5 * x * x)) {
        return x;
      }
    }
  }

  /**
   * Marsaglia & Tsang (2000) "A simple method for generating gamma variables", for shape ≥ 1,
   * with d = shape − ⅓ and c = 1/√(9d) precomputed by the caller (they are per arm, not per draw):
   * 1. x ~ N(0, 1), v = (1 + c·x)³, retried while 1 + c·x ≤ 0;
   * 2. u ~ U(0, 1); accept d·v when u < 1 − 0.0331·x⁴ (the cheap squeeze, ~98 % of the time) or
   *    ln u < x²/2 + d·(1 − v + ln v) (the exact test); otherwise start again at step 1.
   */
  gammaDC(d: number, c: number): number {
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.source.next();
      const x2 = x * x;
      if (u < 1 - 0.0331 * x2 * x2) return d * v;
      if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Gamma(shape ≥ 1). */
  gammaAtLeastOne(shape: number): number {
    const d = shape - 1 / 3;
    return this.gammaDC(d, 1 / Math.sqrt(9 * d));
  }

  /**
   * ln of a Gamma(shape) variate, any shape > 0. For shape < 1 the Marsaglia–Tsang "boost"
   * Gamma(a) = Gamma(a + 1) · U^(1/a) is applied in log space, because U^(1/a) underflows to 0
   * for small a (a = 0.01 and U < 0.0009 already give 0), and a Beta sample 0/(0 + 0) is NaN.
   */
  logGamma(shape: number): number {
    if (shape >= 1) return Math.log(this.gammaAtLeastOne(shape));
    // 1 − U ∈ (0, 1], so the logarithm is finite.
    return Math.log(this.gammaAtLeastOne(shape + 1)) + Math.log(1 - this.source.next()) / shape;
  }

  gamma(shape: number): number {
    if (shape >= 1) return this.gammaAtLeastOne(shape);
    return this.gammaAtLeastOne(shape + 1) * Math.pow(1 - this.source.next(), 1 / shape);
  }

  /** Beta(a, b) = X / (X + Y); through logarithms when a shape is below 1 (see {@link logGamma}). */
  beta(a: number, b: number): number {
    if (a >= 1 && b >= 1) {
      // Both gammas are ≥ d·v > 0 here, so the ratio is always defined.
      const x = this.gammaAtLeastOne(a);
      return x / (x + this.gammaAtLeastOne(b));
    }
    return 1 / (1 + Math.exp(this.logGamma(b) - this.logGamma(a)));
  }
}

function requireShape(name: string, shape: number): void {
  if (!(shape > 0) || !Number.isFinite(shape)) {
    throw new RangeError(`${name} must be a finite number > 0, got ${shape}`);
  }
}

/**
 * A Gamma(shape, scale 1) variate: Marsaglia–Tsang for shape ≥ 1, and for shape < 1 the boost
 * Gamma(a) = Gamma(a + 1) · U^(1/a). Mean = variance = shape.
 *
 * For very small shapes the result can underflow to 0 (it is that small); {@link sampleBeta}
 * works in log space and is not affected. Throws a RangeError for a shape that is not a finite
 * number > 0: that is a programming error, and NaN would only hide it.
 */
export function sampleGamma(shape: number, rng: () => number): number {
  requireShape("shape", shape);
  return new Variates({ next: rng }).gamma(shape);
}

/**
 * A Beta(a, b) variate as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b). Mean a/(a+b), variance
 * ab / ((a+b)²(a+b+1)).
 *
 * When a or b is below 1 the ratio is computed from the logarithms, 1 / (1 + e^(ln Y − ln X)),
 * so underflowing gammas still give a sample in [0, 1] instead of NaN. Throws a RangeError for
 * parameters that are not finite numbers > 0.
 */
export function sampleBeta(a: number, b: number, rng: () => number): number {
  requireShape("a", a);
  requireShape("b", b);
  return new Variates({ next: rng }).beta(a, b);
}

// ---------------------------------------------------------------------------------------------
// Allocation
// ---------------------------------------------------------------------------------------------

/**
 * Counts of one arm (variation) on the primary metric. `conversions` are unique converters
 * among `visitors`, so 0 ≤ conversions ≤ visitors. Non-integer counts are accepted on purpose:
 * per-period weighted counts (docs/bandits.md) are fractional.
 */
export interface ArmStats {
  id: string;
  visitors: number;
  conversions: number;
}

/** Options of {@link allocateBandit}; every field has a default ({@link DEFAULT_BANDIT_OPTIONS}). */
export interface BanditOptions {
  /**
   * Monte Carlo draws for the probability of being best, default 10000 (standard error
   * ≤ 0.005, ≈ 0.002 near a 0.95 threshold). Not a finite number ≥ 1 → default; above 10⁶ → 10⁶.
   */
  draws?: number;
  /**
   * Minimum share of traffic per arm, default 0.05. Applied in whole basis points
   * (⌊share·10000⌋) and clamped to [0, 1/arms): a floor of 1/arms or more would pin the split
   * to equal forever, so it becomes the largest basis-point value below 10000/arms
   * (see {@link explorationFloorBasisPoints}). Not finite → default; negative → 0.
   */
  minExplorationShare?: number;
  /** Beta prior of every arm's conversion rate, default Beta(1, 1) (uniform). Each parameter not a finite number > 0 → 1. */
  prior?: { alpha: number; beta: number };
  /** Probability of being best that declares a winner, default 0.95. Not in (0, 1] → default. */
  winnerThreshold?: number;
  /**
   * Visitors every arm needs before weights move or a winner is declared, default 100; until
   * then the split stays equal. Not a finite number ≥ 0 → default.
   */
  minVisitorsPerArm?: number;
  /**
   * PRNG seed (see {@link createRng}); the scheduled handler passes e.g. `${experimentId}:${round}`.
   * Default: a hash of the arms' ids and counts, so equal input gives equal output.
   */
  seed?: number | string;
}

/** The defaults of {@link BanditOptions} (without `seed`, which defaults to a hash of the input). */
export const DEFAULT_BANDIT_OPTIONS: Readonly<Required<Omit<BanditOptions, "seed">>> =
  Object.freeze({
    draws: 10_000,
    minExplorationShare: 0.05,
    prior: Object.freeze({ alpha: 1, beta: 1 }),
    winnerThreshold: 0.95,
    minVisitorsPerArm: 100,
  });

/** Result of {@link allocateBandit}. */
export interface BanditAllocation {
  /** Per arm id: share of the Monte Carlo draws in which its posterior sample was the largest; sums to 1. */
  probabilityBest: Record<string, number>;
  /**
   * Per arm id: traffic in basis points, integers summing to exactly 10000, each at least the
   * exploration floor ({@link explorationFloorBasisPoints}).
   */
  weights: Record<string, number>;
  /** Arm id whose probability of being best reached the threshold with every arm past `minVisitorsPerArm`. */
  winner: string | null;
  /**
   * - `warming_up`: equal split, because an arm has fewer than `minVisitorsPerArm` visitors or
   *   the input was unusable (then `problems` says why);
   * - `thompson`: weights from the posteriors, no winner yet;
   * - `winner`: as `thompson`, and `winner` is set.
   */
  reason: "warming_up" | "thompson" | "winner";
  /**
   * Present only when the input was rejected: why (JSON paths into the `arms` array). The split
   * is then equal and nothing about the arms should be published as a finding.
   */
  problems?: Problem[];
}

/**
 * The exploration floor in basis points that {@link allocateBandit} guarantees every arm:
 * ⌊share · 10000⌋ (float noise such as 0.57·10000 = 5699.999… tolerated), clamped to
 * [0, ⌈10000/arms⌉ − 1], i.e. strictly below an equal split so the bandit can still move traffic.
 * A non-finite share means the default (0.05); a negative one means 0.
 */
export function explorationFloorBasisPoints(
  armCount: number,
  share: number = DEFAULT_BANDIT_OPTIONS.minExplorationShare,
): number {
  const s = Number.isFinite(share)
    ? Math.max(0, share)
    : DEFAULT_BANDIT_OPTIONS.minExplorationShare;
  const requested = Math.floor(s * TOTAL_BP + 1e-6);
  if (!(armCount >= 1)) return 0;
  return Math.min(requested, Math.ceil(TOTAL_BP / armCount) - 1);
}

interface ResolvedOptions {
  draws: number;
  floorBp: number;
  alpha: number;
  beta: number;
  winnerThreshold: number;
  minVisitorsPerArm: number;
  seed: number | string;
}

/** Step 2: defaults for missing or unusable options, clamps as documented on {@link BanditOptions}. */
function resolveOptions(
  options: BanditOptions | undefined,
  arms: readonly ArmStats[],
): ResolvedOptions {
  const o = (options !== null && typeof options === "object" ? options : {}) as BanditOptions;
  const d = DEFAULT_BANDIT_OPTIONS;
  const positive = (x: unknown, fallback: number): number =>
    typeof x === "number" && x > 0 && Number.isFinite(x) ? x : fallback;
  const draws =
    typeof o.draws === "number" && o.draws >= 1 && Number.isFinite(o.draws)
      ? Math.min(Math.floor(o.draws), MAX_DRAWS)
      : d.draws;
  const share =
    typeof o.minExplorationShare === "number" ? o.minExplorationShare : d.minExplorationShare;
  const prior = o.prior !== null && typeof o.prior === "object" ? o.prior : d.prior;
  const threshold =
    typeof o.winnerThreshold === "number" && o.winnerThreshold > 0 && o.winnerThreshold <= 1
      ? o.winnerThreshold
      : d.winnerThreshold;
  const minVisitors =
    typeof o.minVisitorsPerArm === "number" &&
    o.minVisitorsPerArm >= 0 &&
    Number.isFinite(o.minVisitorsPerArm)
      ? o.minVisitorsPerArm
      : d.minVisitorsPerArm;
  // Default seed from the data itself: a retried scheduled run with the same counts must
  // publish the same weights, so no wall clock or Math.random here.
  const seed =
    typeof o.seed === "number" || typeof o.seed === "string"
      ? o.seed
      : `bandit:${arms.map((a) => `${a.id}=${a.visitors}/${a.conversions}`).join(",")}`;
  return {
    draws,
    floorBp: explorationFloorBasisPoints(arms.length, share),
    alpha: positive(prior.alpha, d.prior.alpha),
    beta: positive(prior.beta, d.prior.beta),
    winnerThreshold: threshold,
    minVisitorsPerArm: minVisitors,
    seed,
  };
}

/**
 * Step 1: everything that makes the counts unusable. Checked at run time although the types
 * promise it, because the counts come from storage and JSON.
 */
function validateArms(arms: unknown): Problem[] {
  const problems: Problem[] = [];
  const error = (path: ReadonlyArray<string | number>, message: string) =>
    problems.push({ path: formatPath(path), message, severity: "error" });
  if (!Array.isArray(arms)) {
    error([], "arms must be an array");
    return problems;
  }
  if (arms.length < 2) error([], `a bandit needs at least 2 arms, got ${arms.length}`);
  const seen = new Set<string>();
  arms.forEach((arm: unknown, i) => {
    if (arm === null || typeof arm !== "object") {
      error([i], "arm must be an object");
      return;
    }
    const { id, visitors, conversions } = arm as Record<string, unknown>;
    if (typeof id !== "string" || id === "") error([i, "id"], "id must be a non-empty string");
    else if (seen.has(id)) error([i, "id"], `duplicate arm id ${JSON.stringify(id)}`);
    else seen.add(id);
    const countOk = (x: unknown): x is number =>
      typeof x === "number" && x >= 0 && Number.isFinite(x);
    if (!countOk(visitors)) {
      error([i, "visitors"], `visitors must be a finite number ≥ 0, got ${String(visitors)}`);
    }
    if (!countOk(conversions)) {
      error(
        [i, "conversions"],
        `conversions must be a finite number ≥ 0, got ${String(conversions)}`,
      );
    } else if (countOk(visitors) && conversions > visitors) {
      // Impossible counts mean the aggregation is broken: refuse them rather than clamp them,
      // since moving traffic on broken numbers is worse than holding an equal split.
      error(
        [i, "conversions"],
        `conversions (${conversions}) exceed visitors (${visitors}): unique conversions are a subset of visitors`,
      );
    }
  });
  return problems;
}

/** The usable, distinct ids of possibly bad input, in order (for the equal-split fallback). */
function distinctIds(arms: unknown): string[] {
  if (!Array.isArray(arms)) return [];
  const ids = new Set<string>();
  for (const arm of arms as unknown[]) {
    const id = arm !== null && typeof arm === "object" ? (arm as { id?: unknown }).id : undefined;
    if (typeof id === "string" && id !== "") ids.add(id);
  }
  return [...ids];
}

/**
 * Largest-remainder (Hamilton) rounding of non-negative reals summing to `total` into integers
 * summing to exactly `total`: everyone gets the integer part, and the points still missing go
 * to the largest fractional parts (ties: earlier arm first, so the result is deterministic).
 */
function largestRemainder(values: readonly number[], total: number): number[] {
  if (values.length === 0) return [];
  const ints = values.map((v) => Math.floor(v));
  let missing = total - ints.reduce((s, v) => s + v, 0);
  const order = values
    .map((v, i) => ({ i, frac: v - Math.floor(v) }))
    .sort((x, y) => y.frac - x.frac || x.i - y.i);
  // Float noise can make the reals sum to total ± 1e-12: cycle instead of assuming ≤ n points.
  for (let k = 0; missing > 0; k = (k + 1) % order.length, missing--) ints[order[k]!.i]! += 1;
  for (let k = order.length - 1; missing < 0; k = (k - 1 + order.length) % order.length) {
    if (ints[order[k]!.i]! > 0) {
      ints[order[k]!.i]! -= 1;
      missing++;
    }
  }
  return ints;
}

/** Equal split in basis points (largest remainder: 3 arms → 3334, 3333, 3333; no ids → {}). */
function equalSplit(ids: readonly string[]): Record<string, number> {
  const bp = largestRemainder(
    ids.map(() => TOTAL_BP / ids.length),
    TOTAL_BP,
  );
  return Object.fromEntries(ids.map((id, i) => [id, bp[i]!]));
}

/**
 * Step 3: P(arm i has the largest conversion rate) under independent Beta posteriors
 * Beta(α + conversions, β + visitors − conversions), estimated as the share of `draws` joint
 * posterior samples in which arm i's sample is the largest. An exact tie (possible only when
 * samples round to the same double) splits the draw's credit equally, so the shares still sum
 * to 1 and no arm is favoured by its position.
 */
function probabilityOfBeingBest(arms: readonly ArmStats[], o: ResolvedOptions): number[] {
  const k = arms.length;
  const a = arms.map((arm) => o.alpha + arm.conversions);
  const b = arms.map((arm) => o.beta + arm.visitors - arm.conversions);
  // Marsaglia–Tsang constants once per arm instead of once per draw (a √ and a division each).
  const fast = a.every((x) => x >= 1) && b.every((x) => x >= 1);
  const da = a.map((x) => x - 1 / 3);
  const db = b.map((x) => x - 1 / 3);
  const ca = da.map((d) => 1 / Math.sqrt(9 * d));
  const cb = db.map((d) => 1 / Math.sqrt(9 * d));
  const wins = new Float64Array(k);
  const sample = new Float64Array(k);
  const variates = new Variates(new Xoshiro128(o.seed));
  for (let draw = 0; draw < o.draws; draw++) {
    let best = -1;
    let bestIndex = 0;
    let ties = 0;
    for (let i = 0; i < k; i++) {
      let x: number;
      if (fast) {
        const g = variates.gammaDC(da[i]!, ca[i]!);
        x = g / (g + variates.gammaDC(db[i]!, cb[i]!));
      } else x = variates.beta(a[i]!, b[i]!);
      sample[i] = x;
      if (x > best) {
        best = x;
        bestIndex = i;
        ties = 1;
      } else if (x === best) ties++;
    }
    if (ties === 1) wins[bestIndex]! += 1;
    else for (let i = 0; i < k; i++) if (sample[i] === best) wins[i]! += 1 / ties;
  }
  return Array.from(wins, (w) => w / o.draws);
}

/**
 * Step 5: weights from `p` with every weight ≥ `floor` (water-filling): arms whose proportional
 * weight would fall below the floor are pinned to it, and the rest of the traffic is shared
 * among the others in proportion to `p`; repeated until no unpinned arm is below the floor
 * (at most k rounds, since each round pins at least one more arm).
 *
 * Why not "max(p, floor) then divide by the sum": dividing pushes the floored arms below the
 * floor again. Why not the mixture floor + (1 − k·floor)·p: it also taxes arms that are well
 * above the floor, moving traffic away from the likely-best arm for no reason.
 *
 * Requires k · floor < 1, so some arm always stays unpinned.
 */
function floorWeights(p: readonly number[], floor: number): number[] {
  const k = p.length;
  const pinned = new Array<boolean>(k).fill(false);
  const w = new Array<number>(k).fill(floor);
  for (;;) {
    let freeMass = 0;
    let freeCount = 0;
    for (let i = 0; i < k; i++) {
      if (!pinned[i]) {
        freeMass += p[i]!;
        freeCount++;
      }
    }
    const budget = 1 - floor * (k - freeCount);
    let pinnedMore = false;
    for (let i = 0; i < k; i++) {
      if (pinned[i]) continue;
      // Unpinned arms with no mass at all share equally (cannot happen with Σp = 1, but safe).
      w[i] = freeMass > 0 ? (budget * p[i]!) / freeMass : budget / freeCount;
    }
    for (let i = 0; i < k; i++) {
      if (!pinned[i] && w[i]! < floor) {
        pinned[i] = true;
        w[i] = floor;
        pinnedMore = true;
      }
    }
    if (!pinnedMore) return w;
  }
}

/**
 * Step 6: basis points from weights that sum to 1 and are each ≥ floorBp/10000: largest
 * remainder, then any arm that rounding (or float noise) left below `floorBp` is topped up one
 * point at a time from the arm with the most points.
 */
function toBasisPoints(w: readonly number[], floorBp: number): number[] {
  const bp = largestRemainder(
    w.map((x) => x * TOTAL_BP),
    TOTAL_BP,
  );
  for (let i = 0; i < bp.length; i++) {
    while (bp[i]! < floorBp) {
      let richest = 0;
      for (let j = 1; j < bp.length; j++) if (bp[j]! > bp[richest]!) richest = j;
      bp[richest]! -= 1;
      bp[i]! += 1;
    }
  }
  return bp;
}

/**
 * Thompson-sampling allocation: weight of an arm = its probability of being best (share of
 * draws where its Beta posterior sample is the largest), then floored at the exploration share
 * and renormalised (water-filling, so the floor survives the renormalisation), in basis points.
 *
 * Never throws. Unusable input — fewer than 2 arms, a missing/empty/duplicate id, a count that
 * is negative, NaN or infinite, conversions > visitors — gives an equal split over the distinct
 * ids it can name, `probabilityBest` equal too, reason `warming_up`, no winner and `problems`
 * saying why: an equal split is what a plain A/B test would serve, so it is the safe way to keep
 * serving while the counts are broken (the caller should log `problems` and not publish a
 * re-allocation). Unusable options fall back to their defaults (see {@link BanditOptions}).
 *
 * Until every arm has `minVisitorsPerArm` visitors the split stays equal (reason `warming_up`,
 * `probabilityBest` already computed). After that, reason `thompson`, or `winner` when the
 * leading arm's probability of being best is ≥ `winnerThreshold`. A winner does not change the
 * weights: serving it to 100 % is the caller's decision (a revision without the bandit).
 *
 * Deterministic for a given input and `seed`. Cost: draws × arms Beta samples, each two gamma variates
 * (10000 draws × 3 arms ≈ 2–4 ms of CPU in Node on a shared CI core).
 */
export function allocateBandit(
  arms: readonly ArmStats[],
  options?: BanditOptions,
): BanditAllocation {
  // 1. Validate; unusable counts → equal split.
  const problems = validateArms(arms);
  if (problems.length > 0) {
    const ids = distinctIds(arms);
    return {
      probabilityBest: Object.fromEntries(ids.map((id) => [id, 1 / ids.length])),
      weights: equalSplit(ids),
      winner: null,
      reason: "warming_up",
      problems,
    };
  }
  const ids = arms.map((arm) => arm.id);
  // 2. Options.
  const o = resolveOptions(options, arms);
  // 3. Probability of being best.
  const p = probabilityOfBeingBest(arms, o);
  const probabilityBest = Object.fromEntries(ids.map((id, i) => [id, p[i]!]));
  // 4. Too little data for any arm → equal split; weights (and a winner) would follow noise.
  if (arms.some((arm) => arm.visitors < o.minVisitorsPerArm)) {
    return { probabilityBest, weights: equalSplit(ids), winner: null, reason: "warming_up" };
  }
  // 5. + 6. Floored weights in basis points.
  const bp = toBasisPoints(floorWeights(p, o.floorBp / TOTAL_BP), o.floorBp);
  const weights = Object.fromEntries(ids.map((id, i) => [id, bp[i]!]));
  // 7. Stop rule. p sums to 1, so only one arm can exceed ½ (a threshold ≤ ½ picks the first).
  let leader = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[leader]!) leader = i;
  const winner = p[leader]! >= o.winnerThreshold ? ids[leader]! : null;
  return { probabilityBest, weights, winner, reason: winner === null ? "thompson" : "winner" };
}

/**
 * Basis-point weights → the Optimizely `trafficAllocation` shape: one entry per id of `order`,
 * in that order, `endOfRange` cumulative and ending at exactly 10000. An id of `order` without
 * a weight gets a zero-width range (kept so every variation stays listed; the bucketer never
 * picks it).
 *
 * Throws a RangeError (programming errors; {@link allocateBandit}'s weights always pass) when
 * `order` repeats an id, a weight is not an integer in 0..10000, `weights` has an id missing
 * from `order` (its traffic would silently go nowhere), or the weights do not sum to 10000.
 */
export function toTrafficAllocation(
  weights: Record<string, number>,
  order: readonly string[],
): Array<{ entityId: string; endOfRange: number }> {
  if (new Set(order).size !== order.length) throw new RangeError("order repeats an id");
  const listed = new Set(order);
  for (const [id, w] of Object.entries(weights)) {
    if (!listed.has(id)) throw new RangeError(`weight for ${JSON.stringify(id)} not in order`);
    if (!Number.isInteger(w) || w < 0 || w > TOTAL_BP) {
      throw new RangeError(
        `weight of ${JSON.stringify(id)} must be an integer in 0..10000, got ${w}`,
      );
    }
  }
  let end = 0;
  const allocation = order.map((entityId) => {
    end += Object.hasOwn(weights, entityId) ? weights[entityId]! : 0;
    return { entityId, endOfRange: end };
  });
  if (end !== TOTAL_BP) throw new RangeError(`weights must sum to 10000, got ${end}`);
  return allocation;
}
