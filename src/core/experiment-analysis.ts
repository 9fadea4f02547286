/**
 * From an experiment's sufficient statistics to its results (docs/statistics.md):
 * every variation compared with the baseline on every metric, q-values corrected for multiple
 * comparisons, verdicts, the sample-ratio-mismatch check and the visitors still needed.
 *
 * Pure: the results API (src/api/services/results.ts) reads the counts from D1 and turns them
 * into `SufficientStats`; this module only does arithmetic, so it runs in Node for tests.
 *
 * Steps, in the order `analyzeExperiment` runs them:
 * 1. compare each non-baseline variation with the baseline on each metric (sequential or fixed);
 * 2. correct the p-values: the primary metric on its own (its variations), the secondary metrics
 *    together (all secondary metrics × variations), Benjamini–Hochberg by default, Holm on request;
 * 3. significance = q ≤ α; the verdict follows the metric's winning direction;
 * 4. SRM: chi-square of the visitors against the allocation weights;
 * 5. visitors needed per variation for the minimum detectable effect on each metric.
 */
import {
  benjaminiHochberg,
  compareVariation,
  DEFAULT_COMPARE_OPTIONS,
  EMPTY_STATS,
  mean as meanOf,
  holm,
  sampleRatioMismatch,
  cupedTest,
  testHarm,
  visitorsNeeded,
  type Comparison,
  type CovariateStats,
  type CupedTest,
  type HarmTest,
  type OpenInterval,
  type SufficientStats,
  type TestMode,
  type Verdict,
} from "./stats/index";

/** Multiple-comparison correction of the p-values. */
export type Correction = "bh" | "holm";

/** How results are computed; every field has a documented default (docs/statistics.md). */
export interface AnalysisOptions {
  mode: TestMode;
  /** The significance level (1 − confidence); docs/statistics.md default 0.1 (90 % confidence). */
  alpha: number;
  /** Sequential tuning: the sample size (both arms) at which the test is most powerful. */
  nStar: number;
  /** Relative minimum detectable effect for "visitors needed", e.g. 0.05 = 5 %. */
  mde: number;
  /** Power for "visitors needed". */
  power: number;
  correction: Correction;
  /**
   * CUPED (docs/statistics.md "CUPED"): adjust by each visitor's pre-exposure value of the same
   * metric where the metric has covariates. Default true.
   */
  cuped: boolean;
}

export const DEFAULT_ANALYSIS_OPTIONS: AnalysisOptions = {
  mode: DEFAULT_COMPARE_OPTIONS.mode,
  alpha: DEFAULT_COMPARE_OPTIONS.alpha,
  nStar: DEFAULT_COMPARE_OPTIONS.nStar,
  mde: 0.05,
  power: 0.8,
  correction: "bh",
  cuped: true,
};

export interface AnalysisVariation {
  id: string;
  /** Allocation weight (any unit, e.g. basis points); null when not allocated any more. */
  weight: number | null;
  /** Unique visitors (by first impression). */
  visitors: number;
}

export interface AnalysisMetric {
  id: string;
  /** false for metrics where lower is better (winningDirection "decreasing"). */
  higherIsBetter: boolean;
  /**
   * True when no visitor's value can be negative (unique and count metrics): the lift's
   * interval is then cut at −100 %. Default: inferred from the data (0/1 data only).
   */
  nonNegative?: boolean;
  /** Per variation id; a missing variation counts as no conversions. */
  stats: Readonly<Record<string, SufficientStats>>;
  /**
   * Per variation id, the per-visitor sums of the metric and its pre-exposure covariate (CUPED);
   * absent = no covariate known for this metric.
   */
  covariates?: Readonly<Record<string, CovariateStats>>;
}

export interface VariationResult {
  variationId: string;
  baseline: boolean;
  n: number;
  /** Conversion rate or mean per visitor; null without visitors. */
  mean: number | null;
  /**
   * Relative lift vs the baseline, its standard error and the mode's interval; an interval end
   * is null when the data cannot bound it (sequential mode, a baseline with few conversions).
   */
  lift: { estimate: number; se: number; ci: OpenInterval } | null;
  /** Absolute difference of the means vs the baseline (fixed-horizon Welch). */
  difference: { estimate: number; ci: [number, number]; pValue: number } | null;
  pValue: number | null;
  /** The p-value after the multiple-comparison correction. */
  qValue: number | null;
  significant: boolean;
  verdict: Verdict | "baseline";
  /** Why the verdict is "not_enough_data"; null otherwise. */
  reason: string | null;
  /**
   * CUPED, when it was applied to this comparison (then pValue, lift and the verdict are its):
   * θ, the share of the variance it removed, the adjusted difference with its SE and the mode's
   * interval, and the p-value the unadjusted comparison would have had. Null otherwise.
   */
  cuped: {
    theta: number;
    varianceReduction: number;
    difference: { estimate: number; se: number; ci: [number, number] };
    unadjustedPValue: number | null;
  } | null;
}

export interface MetricResult {
  id: string;
  primary: boolean;
  variations: VariationResult[];
  /** Visitors per variation needed to detect `mde` on this metric; null when unknown. */
  visitorsNeededPerVariation: number | null;
  /** How many more visitors (all variations together) until every variation has that many. */
  visitorsRemaining: number | null;
}

export interface SrmResult {
  checked: boolean;
  flagged: boolean;
  chiSquare: number | null;
  pValue: number | null;
  /** Expected share of visitors per variation id (the allocation, normalised). */
  expected: Record<string, number>;
}

export interface ExperimentAnalysis {
  baselineId: string;
  options: AnalysisOptions;
  metrics: MetricResult[];
  srm: SrmResult;
}

function cupedResult(
  test: CupedTest | null,
  unadjustedPValue: number | null,
): VariationResult["cuped"] {
  if (test === null) return null;
  return {
    theta: test.theta,
    varianceReduction: test.varianceReduction,
    difference: { estimate: test.difference, se: test.testSe, ci: test.differenceCi },
    unadjustedPValue,
  };
}

/**
 * Analyses one experiment; `metrics[0]` is the primary metric. Never throws on data: variations
 * without visitors, zero baselines and zero variances come out as "not_enough_data".
 */
export function analyzeExperiment(
  variations: readonly AnalysisVariation[],
  baselineId: string,
  metrics: readonly AnalysisMetric[],
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
): ExperimentAnalysis {
  const compareOptions = {
    mode: options.mode,
    alpha: options.alpha,
    nStar: options.nStar,
  };
  const statsOf = (metric: AnalysisMetric, variation: AnalysisVariation): SufficientStats => {
    const s = metric.stats[variation.id] ?? EMPTY_STATS;
    // n is always the visitors of the variation: a visitor without conversions counts as 0.
    return { n: variation.visitors, sum: s.sum, sumSq: s.sumSq };
  };
  const baseline = variations.find((v) => v.id === baselineId);

  // 1. comparisons (CUPED replaces the test where the metric has a covariate)
  const cupedOf: Array<Array<CupedTest | null>> = metrics.map((metric) =>
    variations.map((variation) => {
      if (!options.cuped || baseline === undefined || variation.id === baselineId) return null;
      const c = metric.covariates?.[baselineId];
      const t = metric.covariates?.[variation.id];
      if (c === undefined || t === undefined) return null;
      return cupedTest(c, t, {
        mode: options.mode,
        alpha: options.alpha,
        nStar: options.nStar,
        nonNegative: metric.nonNegative ?? false,
      });
    }),
  );
  const unadjustedP: Array<Array<number | null>> = metrics.map(() => variations.map(() => null));
  const comparisons: Array<Array<Comparison | null>> = metrics.map((metric, m) =>
    variations.map((variation, v) => {
      if (baseline === undefined || variation.id === baselineId) return null;
      const plain = compareVariation(statsOf(metric, baseline), statsOf(metric, variation), {
        ...compareOptions,
        higherIsBetter: metric.higherIsBetter,
        nonNegative: metric.nonNegative,
      });
      const cuped = cupedOf[m]![v];
      if (cuped === null || cuped === undefined || plain.verdict === "not_enough_data") {
        cupedOf[m]![v] = null;
        return plain;
      }
      unadjustedP[m]![v] = plain.pValue;
      const significant = cuped.pValue < options.alpha;
      const improved = metric.higherIsBetter ? cuped.difference > 0 : cuped.difference < 0;
      return {
        ...plain,
        relative: { ...cuped.lift, pValue: cuped.pValue },
        pValue: cuped.pValue,
        ci: cuped.lift.ci,
        significant,
        verdict: !significant ? "inconclusive" : improved ? "winner" : "loser",
      };
    }),
  );

  // 2. corrections: primary alone, secondaries together
  const correct = options.correction === "holm" ? holm : benjaminiHochberg;
  const qValues: Array<Array<number | null>> = comparisons.map((row) => row.map(() => null));
  const correctGroup = (cells: Array<[number, number]>) => {
    const ps = cells.map(([m, v]) => comparisons[m]![v]?.pValue ?? null);
    const qs = correct(ps);
    cells.forEach(([m, v], i) => (qValues[m]![v] = qs[i] ?? null));
  };
  const cellsOf = (m: number) => variations.map((_, v) => [m, v] as [number, number]);
  if (metrics.length > 0) correctGroup(cellsOf(0));
  if (metrics.length > 1) correctGroup(metrics.slice(1).flatMap((_, i) => cellsOf(i + 1)));

  // 3. verdicts
  const metricResults: MetricResult[] = metrics.map((metric, m) => {
    const rows: VariationResult[] = variations.map((variation, v) => {
      const s = statsOf(metric, variation);
      const mean = meanOf(s);
      const comparison = comparisons[m]![v] ?? null;
      if (comparison === null)
        return {
          variationId: variation.id,
          baseline: variation.id === baselineId,
          n: s.n,
          mean,
          lift: null,
          difference: null,
          pValue: null,
          qValue: null,
          significant: false,
          verdict: variation.id === baselineId ? "baseline" : "not_enough_data",
          reason: variation.id === baselineId ? null : "no_baseline",
          cuped: null,
        };
      const q = qValues[m]![v] ?? null;
      const enough = comparison.verdict !== "not_enough_data";
      const significant = enough && q !== null && q <= options.alpha;
      let verdict: Verdict = comparison.verdict;
      if (enough) {
        const up = (comparison.relative?.estimate ?? 0) > 0;
        verdict = !significant ? "inconclusive" : up === metric.higherIsBetter ? "winner" : "loser";
      }
      return {
        variationId: variation.id,
        baseline: false,
        n: s.n,
        mean,
        lift:
          comparison.relative && comparison.ci
            ? {
                estimate: comparison.relative.estimate,
                se: comparison.relative.se,
                ci: comparison.ci,
              }
            : null,
        difference: comparison.absolute
          ? {
              estimate: comparison.absolute.estimate,
              ci: comparison.absolute.ci,
              pValue: comparison.absolute.pValue,
            }
          : null,
        pValue: comparison.pValue,
        qValue: q,
        significant,
        verdict,
        reason: comparison.reason,
        cuped: cupedResult(cupedOf[m]![v] ?? null, unadjustedP[m]![v] ?? null),
      };
    });

    // 5. visitors needed. Only the variations still allocated get more visitors (a null or 0
    // weight is not allocated), so the Bonferroni split of α (docs/statistics.md "Visitors
    // needed") is over their comparisons with the baseline: arms = 1 + the allocated
    // non-baseline variations, at least 2 (one comparison).
    const allocated = variations.filter((v) => v.weight !== null && v.weight > 0);
    const arms = 1 + allocated.filter((v) => v.id !== baselineId).length;
    const needed =
      baseline === undefined
        ? null
        : visitorsNeeded(statsOf(metric, baseline), {
            mde: options.mde,
            alpha: options.alpha,
            power: options.power,
            arms: Math.max(2, arms),
          });
    const remaining =
      needed === null
        ? null
        : allocated.reduce((sum, v) => sum + Math.max(0, needed - v.visitors), 0);
    return {
      id: metric.id,
      primary: m === 0,
      variations: rows,
      visitorsNeededPerVariation: needed,
      visitorsRemaining: remaining,
    };
  });

  // 4. sample-ratio mismatch against the allocation (variations no longer allocated are left out)
  const allocatedVariations = variations.filter((v) => v.weight !== null && v.weight > 0);
  const totalWeight = allocatedVariations.reduce((sum, v) => sum + (v.weight ?? 0), 0);
  const srm = sampleRatioMismatch(
    allocatedVariations.map((v) => v.visitors),
    allocatedVariations.map((v) => v.weight ?? 0),
  );
  const expected: Record<string, number> = {};
  for (const v of allocatedVariations) expected[v.id] = (v.weight ?? 0) / totalWeight;

  return {
    baselineId,
    options,
    metrics: metricResults,
    srm: {
      checked: srm.checked,
      flagged: srm.flagged,
      chiSquare: srm.chiSquare,
      pValue: srm.pValue,
      expected,
    },
  };
}

/** A multivariate section and its variants, in order (the first is the section's baseline). */
export interface AnalysisSection {
  id: string;
  variantIds: readonly string[];
}

/** A combination (a variation of a multivariate experiment) and the variants it is made of. */
export interface AnalysisCombination extends AnalysisVariation {
  sectionVariationIds: readonly string[];
}

/** One section's main effects: its variants pooled over every other section. */
export interface SectionAnalysis {
  sectionId: string;
  /** The section's first variant. */
  baselineId: string;
  /** The pooled variants (visitors and summed weights). */
  variations: AnalysisVariation[];
  /** Per metric, each variant against the section's baseline (corrected within the section). */
  metrics: MetricResult[];
}

/**
 * Main effects of a multivariate (full-factorial) experiment, as Optimizely reports them: for each
 * section, each variant's visitors and metric statistics summed over every combination that
 * contains it — the other sections averaged out — then compared with the section's first variant
 * by {@link analyzeExperiment} (same mode, correction within the section, verdicts). Sufficient
 * statistics add, and every visitor is in exactly one combination, so a pooled arm is exactly the
 * visitors who saw that variant. With unequal allocations over the other sections the pooled arms
 * mix them differently, which the per-combination results show (docs/statistics.md).
 */
export function analyzeSections(
  sections: readonly AnalysisSection[],
  combinations: readonly AnalysisCombination[],
  metrics: readonly AnalysisMetric[],
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
): SectionAnalysis[] {
  return sections.flatMap((section) => {
    const baselineId = section.variantIds[0];
    if (baselineId === undefined) return [];
    const members = (variantId: string) =>
      combinations.filter((c) => c.sectionVariationIds.includes(variantId));
    const pooled: AnalysisVariation[] = section.variantIds.map((variantId) => {
      const of = members(variantId);
      // Unknown (null) when any of its combinations is no longer allocated.
      const weights = of.map((c) => c.weight);
      return {
        id: variantId,
        weight:
          weights.length === 0 || weights.some((w) => w === null)
            ? null
            : weights.reduce<number>((a, b) => a + (b ?? 0), 0),
        visitors: of.reduce((n, c) => n + c.visitors, 0),
      };
    });
    const pooledMetrics: AnalysisMetric[] = metrics.map((metric) => ({
      ...metric,
      // CUPED's sums add like the others (a combination without any counts as empty).
      ...(metric.covariates === undefined
        ? {}
        : { covariates: poolCovariates(metric.covariates, section.variantIds, members) }),
      stats: Object.fromEntries(
        section.variantIds.map((variantId) => {
          let sum = 0;
          let sumSq = 0;
          let n = 0;
          for (const c of members(variantId)) {
            const s = metric.stats[c.id] ?? EMPTY_STATS;
            sum += s.sum;
            sumSq += s.sumSq;
            n += c.visitors;
          }
          return [variantId, { n, sum, sumSq }];
        }),
      ),
    }));
    const analysis = analyzeExperiment(pooled, baselineId, pooledMetrics, options);
    return [{ sectionId: section.id, baselineId, variations: pooled, metrics: analysis.metrics }];
  });
}

function poolCovariates(
  covariates: Readonly<Record<string, CovariateStats>>,
  variantIds: readonly string[],
  members: (variantId: string) => readonly AnalysisCombination[],
): Record<string, CovariateStats> {
  return Object.fromEntries(
    variantIds.map((variantId) => {
      const sum: CovariateStats = { n: 0, sumY: 0, sumY2: 0, sumX: 0, sumX2: 0, sumXY: 0 };
      for (const c of members(variantId)) {
        const s = covariates[c.id];
        if (s === undefined) continue;
        sum.n += s.n;
        sum.sumY += s.sumY;
        sum.sumY2 += s.sumY2;
        sum.sumX += s.sumX;
        sum.sumX2 += s.sumX2;
        sum.sumXY += s.sumXY;
      }
      return [variantId, sum];
    }),
  );
}

/** A guardrail metric: a metric whose harm is watched (docs/statistics.md "Guardrails"). */
export interface GuardrailMetric extends AnalysisMetric {
  /** What a harm does: only mark the experiment, or also pause it. */
  action: "mark" | "pause";
}

/** One guardrail's verdict for one variation. */
export interface GuardrailResult extends HarmTest {
  metricId: string;
  variationId: string;
  action: "mark" | "pause";
}

/**
 * Every guardrail metric × non-baseline variation still allocated (weight > 0): the one-sided
 * always-valid test of harm
 * ({@link testHarm}) at `options.alpha` and `options.nStar`, whatever the results' mode (a
 * guardrail is watched continuously). Not corrected for multiple comparisons: each guardrail is
 * a separate alarm with its own false-alarm rate α (docs/statistics.md says why).
 */
export function checkGuardrails(
  variations: readonly AnalysisVariation[],
  baselineId: string,
  guardrails: readonly GuardrailMetric[],
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
): GuardrailResult[] {
  const baseline = variations.find((v) => v.id === baselineId);
  if (baseline === undefined) return [];
  const statsOf = (metric: AnalysisMetric, variation: AnalysisVariation): SufficientStats => {
    const s = metric.stats[variation.id] ?? EMPTY_STATS;
    return { n: variation.visitors, sum: s.sum, sumSq: s.sumSq };
  };
  return guardrails.flatMap((metric) =>
    variations
      // Only variations still allocated: one already turned off cannot harm anyone any more.
      .filter((v) => v.id !== baselineId && v.weight !== null && v.weight > 0)
      .map((variation) => ({
        metricId: metric.id,
        variationId: variation.id,
        action: metric.action,
        ...testHarm(statsOf(metric, baseline), statsOf(metric, variation), {
          alpha: options.alpha,
          nStar: options.nStar,
          higherIsBetter: metric.higherIsBetter,
        }),
      })),
  );
}

/** One value of a breakdown dimension: its visitors per variation and their metric statistics. */
export interface BreakdownSegment {
  value: string;
  variations: AnalysisVariation[];
  metrics: AnalysisMetric[];
}

/** A segment's results, corrected across every segment of the breakdown. */
export interface SegmentAnalysis {
  value: string;
  variations: AnalysisVariation[];
  metrics: MetricResult[];
}

/**
 * Results per value of a dimension (docs/statistics.md "Breakdowns"): each segment analysed as an
 * experiment of its own (same mode, α, N*; no CUPED), then the q-values of each metric corrected
 * together over every segment × variation — looking at 20 segments is 20 chances of a false
 * winner, so a segment's effect must hold up against all the comparisons made. Significance and
 * verdicts follow the corrected q-values.
 */
export function analyzeBreakdown(
  segments: readonly BreakdownSegment[],
  baselineId: string,
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
): SegmentAnalysis[] {
  const analysed = segments.map((segment) => ({
    value: segment.value,
    variations: segment.variations,
    higherIsBetter: segment.metrics.map((m) => m.higherIsBetter),
    metrics: analyzeExperiment(segment.variations, baselineId, segment.metrics, {
      ...options,
      cuped: false,
    }).metrics,
  }));
  const correct = options.correction === "holm" ? holm : benjaminiHochberg;
  const metricCount = Math.max(0, ...analysed.map((a) => a.metrics.length));
  for (let m = 0; m < metricCount; m++) {
    const cells: VariationResult[] = [];
    const better: boolean[] = [];
    for (const a of analysed)
      for (const row of a.metrics[m]?.variations ?? [])
        if (!row.baseline) {
          cells.push(row);
          better.push(a.higherIsBetter[m] ?? true);
        }
    const qs = correct(cells.map((row) => row.pValue));
    cells.forEach((row, i) => {
      const q = qs[i] ?? null;
      row.qValue = q;
      if (row.verdict === "not_enough_data" || row.pValue === null) return;
      row.significant = q !== null && q <= options.alpha;
      const up = (row.lift?.estimate ?? row.difference?.estimate ?? 0) > 0;
      row.verdict = !row.significant ? "inconclusive" : up === better[i] ? "winner" : "loser";
    });
  }
  return analysed.map(({ value, variations, metrics }) => ({ value, variations, metrics }));
}
