/**
 * Experiment results (docs/api.md "Results"): the COUNTS the events queue consumer aggregated in
 * D1 (migrations/0002_events.sql, docs/events.md) for one experiment in one environment —
 * visitors per variation, and per metric and variation converters, events and value/revenue sums
 * (with sums of squares) — and the statistics over them (src/core/experiment-analysis.ts,
 * docs/statistics.md). Used by the results API (src/api/routes/results.ts) and the bandit round
 * (src/api/services/bandit-round.ts); the document's schema and type are
 * src/api/schemas/results.ts.
 *
 * - The environment is chosen by key (`environment`, default "production"); the aggregates
 *   are keyed by its sdkKey.
 * - `from`/`to` (UTC days, inclusive) filter by the aggregate day: the day of a visitor's first
 *   impression for visitors, the conversion day for metric counts (docs/events.md). The
 *   per-visitor sums of squares are kept as increments on the conversion days: without `from`
 *   they are exact (Σ over visitors of their total up to `to`, squared); with `from` they are the
 *   increments in the range, an approximation for visitors whose conversions span `from`
 *   (docs/statistics.md).
 * - Counts are summed over datafile revisions, and `revisions` lists every revision that
 *   contributed (docs/statistics.md: results never mix revisions silently).
 */
import {
  analyzeBreakdown,
  analyzeExperiment,
  analyzeSections,
  checkGuardrails,
  DEFAULT_ANALYSIS_OPTIONS,
  type AnalysisOptions,
  type AnalysisVariation,
  type BreakdownSegment,
  type ExperimentAnalysis,
  type VariationResult,
} from "../../core/experiment-analysis";
import type { WebMetric, WebSection } from "../../core/datafile-types";
import type { SufficientStats } from "../../core/stats/index";
import type { Env } from "../../env";
import {
  breakdownSums,
  covariateSums,
  shardConverters,
  type ShardConverters,
} from "../../events/visitor-state";
import { COVARIATE_WINDOW_MS, covariateTotalOf } from "../../events/covariate-sql";
import { retentionCutoff } from "../../events/retention";
import { type BreakdownDimension } from "../../events/breakdown-sql";
import { emptyMetricCell } from "../../events/aggregate";
import { METRIC_CELL_FIELDS, METRIC_DAILY_COLUMNS } from "../../events/tables";
import { notFound, unprocessable, type ValidationDetail } from "../errors";
import {
  DEFAULT_RESULTS_ENVIRONMENT,
  type CappingReport,
  type ExperimentResults,
  type MetricCounts,
  type ResultsQuery,
} from "../schemas/results";
import { listAppliedAllocations } from "../store/bandit-allocations";
import { listBreaches } from "../store/guardrails";
import {
  countConverters,
  findConverterTotalAtRank,
  findSdkEnvironment,
  listEventKeys,
  listMetricDaily,
  listVariationDaily,
  sumCappedTotals,
  type ConverterTotal,
  type DayRange,
  type ExperimentMetricDailyRow,
  type SdkEnvironment,
  type VariationDailyRow,
} from "../store/metric-daily";
import type { ExperimentRow } from "../store/rows";
import { parseJson, requireRow } from "../store/sql";

export type { ExperimentResults, ResultsQuery } from "../schemas/results";

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

function validDay(value: string): boolean {
  if (!DAY_PATTERN.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

/** A 422 naming the first problem of a query, with all of them as details. */
function invalidQuery(details: readonly ValidationDetail[]): void {
  const firstDetail = details[0];
  if (firstDetail)
    throw unprocessable(
      `invalid request query: ${firstDetail.path}: ${firstDetail.message}`,
      details,
    );
}

function parseRange(from: string | undefined, to: string | undefined): DayRange {
  const details: ValidationDetail[] = [];
  if (from !== undefined && !validDay(from))
    details.push({ path: "$.query.from", message: "must be a date YYYY-MM-DD" });
  if (to !== undefined && !validDay(to))
    details.push({ path: "$.query.to", message: "must be a date YYYY-MM-DD" });
  if (details.length === 0 && from !== undefined && to !== undefined && from > to)
    details.push({ path: "$.query.to", message: "must not be before from" });
  invalidQuery(details);
  return { from: from ?? null, to: to ?? null };
}

/** The statistics settings of a results request, from its query (docs/statistics.md). */
export function parseAnalysisOptions(
  query: Pick<ResultsQuery, "mode" | "alpha" | "correction" | "mde" | "nStar" | "cuped">,
): AnalysisOptions {
  const details: ValidationDetail[] = [];
  const number = (
    name: "alpha" | "mde" | "nStar",
    min: number,
    max: number,
    fallback: number,
    minInclusive = false,
  ): number => {
    const raw = query[name];
    if (raw === undefined) return fallback;
    const value = Number(raw);
    const low = minInclusive ? value >= min : value > min;
    if (raw.trim() === "" || !Number.isFinite(value) || !low || value > max) {
      details.push({
        path: `$.query.${name}`,
        message: `must be a number ${minInclusive ? "≥" : ">"} ${min} and ≤ ${max}`,
      });
      return fallback;
    }
    return value;
  };
  const options: AnalysisOptions = {
    ...DEFAULT_ANALYSIS_OPTIONS,
    mode: query.mode ?? DEFAULT_ANALYSIS_OPTIONS.mode,
    correction: query.correction ?? DEFAULT_ANALYSIS_OPTIONS.correction,
    alpha: number("alpha", 0, 0.5, DEFAULT_ANALYSIS_OPTIONS.alpha),
    mde: number("mde", 0, 10, DEFAULT_ANALYSIS_OPTIONS.mde),
    nStar: number("nStar", 100, 100_000_000, DEFAULT_ANALYSIS_OPTIONS.nStar, true),
    cuped: query.cuped === undefined ? DEFAULT_ANALYSIS_OPTIONS.cuped : query.cuped === "true",
  };
  invalidQuery(details);
  return options;
}

/** A metric of an experiment, as stored in its `metrics` column. */
export type ResultsMetric = Pick<
  WebMetric,
  "eventId" | "field" | "winningDirection" | "capping" | "guardrail"
> & {
  aggregator: string;
};

/** A metric's capping, when it has one. */
type Capping = NonNullable<ResultsMetric["capping"]>;

/** What capping a metric did: its report, and per variation the capped Σx and Σx². */
interface CappedMetric {
  report: NonNullable<CappingReport>;
  sums: Map<string, { sum: number; sumSq: number }>;
}

/**
 * Winsorisation of a count or sum metric (docs/statistics.md "Capping"): each visitor's total
 * (converters.events / revenue / value: the consumer's per-visitor totals over the whole
 * experiment) held to the cap, per variation as sufficient statistics. Not applied with a day
 * range, since the per-visitor totals are not kept per day.
 */
async function capMetric(
  converters: ShardConverters,
  sdkKey: string,
  experimentId: string,
  metric: ResultsMetric,
  capping: Capping,
  ranged: boolean,
): Promise<CappedMetric> {
  const report: NonNullable<CappingReport> = {
    type: capping.type,
    value: capping.value,
    applied: false,
    threshold: null,
    cappedVisitors: 0,
    reason: null,
  };
  const sums = new Map<string, { sum: number; sumSq: number }>();
  if (ranged)
    return {
      report: {
        ...report,
        reason:
          "not applied with from/to: visitors' totals are kept for the whole experiment, not per day",
      },
      sums,
    };
  const total: ConverterTotal =
    metric.aggregator === "count" ? "events" : metric.field === "revenue" ? "revenue" : "value";
  let threshold = capping.value;
  if (capping.type === "percentile") {
    const n = await converters.count({ sdkKey, experimentId, eventId: metric.eventId, total });
    if (n === 0) return { report: { ...report, reason: "no converting visitors yet" }, sums };
    // Nearest rank: the smallest total with at least `value` of the converting visitors at or below it.
    const rank = Math.max(1, Math.ceil(capping.value * n));
    const atRank = await converters.totalAtRank(
      { sdkKey, experimentId, eventId: metric.eventId, total },
      rank,
    );
    if (atRank === null)
      return {
        report: {
          ...report,
          reason: `not applied: a percentile cap this far from the tails of ${n} converting visitors is not computed across visitor shards (use an absolute cap, or a percentile nearer 0 or 1)`,
        },
        sums,
      };
    threshold = atRank;
  }
  // Absolute: |x| ≤ value (a refund is an outlier too); percentile: the upper tail only.
  const rows = await converters.cappedSums(
    { sdkKey, experimentId, eventId: metric.eventId, total },
    capping.type === "absolute" ? "absolute" : "upper",
    threshold,
  );
  let cappedVisitors = 0;
  for (const row of rows) {
    sums.set(row.variationId, { sum: row.sum, sumSq: row.sumSq });
    cappedVisitors += row.capped;
  }
  return { report: { ...report, applied: true, threshold, cappedVisitors }, sums };
}

/** The converters' per-visitor totals kept in D1 (the single-database layout). */
function d1Converters(db: D1Database): ShardConverters {
  return {
    count: (q) => countConverters(db, q.sdkKey, q.experimentId, q.eventId),
    totalAtRank: (q, rank) =>
      findConverterTotalAtRank(db, q.sdkKey, q.experimentId, q.eventId, q.total, rank),
    cappedSums: (q, bound, threshold) =>
      sumCappedTotals(db, q.sdkKey, q.experimentId, q.eventId, q.total, bound, threshold),
  };
}

/** What one visitor contributes to `metric`, summed over a variation's visitors. */
export function metricTotal(metric: ResultsMetric, c: MetricCounts): number {
  if (metric.aggregator === "unique") return c.converters;
  if (metric.aggregator === "count") return c.events;
  return metric.field === "revenue" ? c.revenueSum : c.valueSum;
}

/**
 * The metric's sufficient statistics over a variation's visitors (n is set by the analysis to
 * the variation's visitors; non-converting visitors count as 0). x is per visitor: a unique
 * conversion is 0/1, so Σx² = Σx; for count and sum metrics x is the visitor's total (events,
 * revenue or value) and Σx² the per-visitor sum of squares the consumer keeps (docs/events.md
 * "Per-visitor totals"; exact without `from`, docs/statistics.md).
 */
export function metricStats(metric: ResultsMetric, c: MetricCounts): SufficientStats {
  if (metric.aggregator === "unique") return { n: 0, sum: c.converters, sumSq: c.converters };
  if (metric.aggregator === "count") return { n: 0, sum: c.events, sumSq: c.eventsVisitorSumSq };
  return metric.field === "revenue"
    ? { n: 0, sum: c.revenueSum, sumSq: c.revenueVisitorSumSq }
    : { n: 0, sum: c.valueSum, sumSq: c.valueVisitorSumSq };
}

/** Revisions in numeric order (they are decimal counters), any other text after, by text. */
function compareRevisions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function emptyCounts(variationId: string): MetricCounts {
  return { variationId, ...emptyMetricCell() };
}

/** Adds a metric_daily row's counts (every column of METRIC_DAILY_COLUMNS) to `c`. */
function addRow(c: MetricCounts, row: ExperimentMetricDailyRow): void {
  for (const field of METRIC_CELL_FIELDS) c[field] += Number(row[METRIC_DAILY_COLUMNS[field]]);
}

/**
 * For an experiment whose weights the bandit changed (src/api/services/bandit-round.ts,
 * `bandit_allocations` rows with `applied = 1`): per variation, the weight the visitors were
 * actually allocated with, Σ over datafile revisions r of (visitors first decided by r) × (weight
 * in effect at r), so that the SRM check's expected counts follow the allocation over time. The
 * weights in effect at r are those of the last applied row published at or before r, or before
 * any, the first row's previous weights. Null when nothing was re-allocated. In another
 * environment than the one whose revisions the rows name (production), which revision published
 * which weights is not known: every variation gets a null weight there, so the SRM check is
 * skipped rather than wrong.
 */
async function allocationOverTime(
  db: D1Database,
  experimentId: string,
  environmentId: string,
  visitorRows: readonly VariationDailyRow[],
): Promise<Map<string, number | null> | null> {
  const rows = await listAppliedAllocations(db, experimentId);
  const [firstRow] = rows;
  if (!firstRow) return null;
  const out = new Map<string, number | null>();
  const periods: Array<{ from: number; weights: Record<string, number> }> = [];
  for (const r of rows) {
    if (r.environment_id !== environmentId || r.revision === null) {
      for (const row of visitorRows) out.set(row.variation_id, null);
      return out;
    }
    periods.push({ from: r.revision, weights: parseJson<Record<string, number>>(r.weights, {}) });
  }
  const initial = parseJson<Record<string, number>>(firstRow.previous_weights, {});
  const visitorsByRevision = new Map<string, number>();
  for (const row of visitorRows)
    visitorsByRevision.set(
      row.revision,
      (visitorsByRevision.get(row.revision) ?? 0) + Number(row.visitors),
    );
  for (const [revision, n] of visitorsByRevision) {
    const r = Number(revision);
    let weights = initial;
    for (const period of periods)
      if (Number.isFinite(r) && period.from <= r) weights = period.weights;
    for (const [id, w] of Object.entries(weights)) out.set(id, (out.get(id) ?? 0) + n * w);
  }
  return out;
}

/** The environment named by the query (default production): 404 for the default, else 422. */
async function requireResultsEnvironment(
  db: D1Database,
  projectId: string,
  key: string | undefined,
): Promise<SdkEnvironment> {
  const environmentKey = key ?? DEFAULT_RESULTS_ENVIRONMENT;
  const environment = await findSdkEnvironment(db, projectId, environmentKey);
  if (environment) return environment;
  if (key === undefined) throw notFound("environment", environmentKey);
  throw unprocessable(
    `unknown environment ${JSON.stringify(environmentKey)} (not an environment key of this project)`,
    [{ path: "$.query.environment", message: "not an environment key of this project" }],
  );
}

/** A variation as the experiment's `variations` column has it. */
type ConfiguredVariation = {
  id: string;
  key: string;
  weight?: number;
  sectionVariationIds?: string[];
};

/** The baseline variation: the one the query names (id or key, else 422), or the first. */
function chooseBaseline(
  variations: readonly ConfiguredVariation[],
  baseline: string | undefined,
): string | null {
  if (baseline === undefined) return variations[0]?.id ?? null;
  const chosen = variations.find((v) => v.id === baseline || v.key === baseline);
  if (!chosen)
    throw unprocessable(
      `unknown baseline ${JSON.stringify(baseline)} (not a variation id or key of this experiment)`,
      [{ path: "$.query.baseline", message: "not a variation id or key of this experiment" }],
    );
  return chosen.id;
}

/** One day of one variation: its new visitors and the counts of each metric's event. */
interface DailyEntry {
  visitors: number;
  counts: Record<string, MetricCounts>;
}

/** The rows summed: over days and revisions, and per day for the metrics' events. */
interface Tally {
  revisions: Set<string>;
  /** variation id → visitors */
  visitors: Map<string, number>;
  /** event id → variation id → counts */
  counts: Map<string, Map<string, MetricCounts>>;
  /** day → variation id → visitors and counts */
  daily: Map<string, Map<string, DailyEntry>>;
}

function tallyRows(
  visitorRows: readonly VariationDailyRow[],
  metricRows: readonly ExperimentMetricDailyRow[],
  metricEventIds: ReadonlySet<string>,
): Tally {
  const tally: Tally = {
    revisions: new Set(),
    visitors: new Map(),
    counts: new Map(),
    daily: new Map(),
  };
  const dailyEntry = (day: string, variationId: string) => {
    let byVariation = tally.daily.get(day);
    if (!byVariation) tally.daily.set(day, (byVariation = new Map()));
    let entry = byVariation.get(variationId);
    if (!entry) byVariation.set(variationId, (entry = { visitors: 0, counts: {} }));
    return entry;
  };
  for (const row of visitorRows) {
    tally.revisions.add(row.revision);
    tally.visitors.set(
      row.variation_id,
      (tally.visitors.get(row.variation_id) ?? 0) + Number(row.visitors),
    );
    dailyEntry(row.day, row.variation_id).visitors += Number(row.visitors);
  }
  for (const row of metricRows) {
    tally.revisions.add(row.revision);
    let byVariation = tally.counts.get(row.event_id);
    if (!byVariation) tally.counts.set(row.event_id, (byVariation = new Map()));
    let c = byVariation.get(row.variation_id);
    if (!c) byVariation.set(row.variation_id, (c = emptyCounts(row.variation_id)));
    addRow(c, row);
    if (metricEventIds.has(row.event_id)) {
      const entry = dailyEntry(row.day, row.variation_id);
      addRow((entry.counts[row.event_id] ??= emptyCounts(row.variation_id)), row);
    }
  }
  return tally;
}

/** Per metric and variation, running totals over the days with data (`days` in order). */
function cumulativeSeries(
  metrics: readonly ResultsMetric[],
  variationIds: readonly string[],
  days: readonly string[],
  daily: Tally["daily"],
): ExperimentResults["cumulative"] {
  const cumulative: ExperimentResults["cumulative"] = [];
  for (const metric of metrics) {
    for (const id of variationIds) {
      let runningVisitors = 0;
      let runningTotal = 0;
      for (const day of days) {
        const entry = daily.get(day)?.get(id);
        if (entry) {
          runningVisitors += entry.visitors;
          const c = entry.counts[metric.eventId];
          if (c) runningTotal += metricTotal(metric, c);
        }
        if (runningVisitors === 0 && runningTotal === 0) continue;
        cumulative.push({
          eventId: metric.eventId,
          day,
          variationId: id,
          visitors: runningVisitors,
          total: runningTotal,
          mean: runningVisitors > 0 ? runningTotal / runningVisitors : null,
        });
      }
    }
  }
  return cumulative;
}

/** The experiment's results in one environment (see the module comment). */
/** A comparison of a pooled or segmented arm, as the sections and breakdowns report it. */
function presentComparison(r: VariationResult) {
  return {
    variationId: r.variationId,
    baseline: r.baseline,
    visitors: r.n,
    mean: r.mean,
    lift: r.lift,
    difference: r.difference,
    pValue: r.pValue,
    qValue: r.qValue,
    significant: r.significant,
    verdict: r.verdict,
    reason: r.reason,
  };
}

/** Segments shown by name; the others are summed into one (other) segment. */
const OTHER_SEGMENT = "(other)";

const MAX_SEGMENTS = 20;

/** The results per value of `dimension` (docs/statistics.md "Breakdowns"). */
async function breakdownOf(
  env: Pick<Env, "DB" | "VISITOR_SHARDS" | "EVENT_SHARDS">,
  sdkKey: string,
  experimentId: string,
  dimension: BreakdownDimension,
  metrics: readonly ResultsMetric[],
  variations: readonly AnalysisVariation[],
  baselineId: string,
  options: AnalysisOptions,
): Promise<ExperimentResults["breakdown"]> {
  const rowsPerMetric = await Promise.all(
    metrics.map((metric) => {
      const total = covariateTotalOf(metric.aggregator, metric.field) ?? "events";
      return breakdownSums(env, sdkKey, experimentId, metric.eventId, dimension, total);
    }),
  );
  // Segments by visitors (the first metric's rows count every exposed visitor once).
  const visitorsOf = new Map<string, number>();
  for (const row of rowsPerMetric[0] ?? [])
    visitorsOf.set(row.value, (visitorsOf.get(row.value) ?? 0) + row.n);
  const ranked = [...visitorsOf].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const named = new Set(ranked.slice(0, MAX_SEGMENTS).map(([value]) => value));
  const segmentOf = (value: string) => (named.has(value) ? value : OTHER_SEGMENT);
  const values = [
    ...ranked.slice(0, MAX_SEGMENTS).map(([value]) => value),
    ...(ranked.length > MAX_SEGMENTS ? [OTHER_SEGMENT] : []),
  ];
  const cell = () => ({ n: 0, sum: 0, sumSq: 0 });
  const sums = metrics.map((_, m) => {
    const bySegment = new Map<string, Map<string, { n: number; sum: number; sumSq: number }>>();
    for (const row of rowsPerMetric[m] ?? []) {
      const segment = segmentOf(row.value);
      const byVariation = bySegment.get(segment) ?? new Map();
      bySegment.set(segment, byVariation);
      const acc = byVariation.get(row.variationId) ?? cell();
      acc.n += row.n;
      acc.sum += row.sum;
      acc.sumSq += row.sumSq;
      byVariation.set(row.variationId, acc);
    }
    return bySegment;
  });
  const segments: BreakdownSegment[] = values.map((value) => {
    const segmentVariations = variations.map((v) => ({
      ...v,
      visitors: sums[0]?.get(value)?.get(v.id)?.n ?? 0,
    }));
    return {
      value,
      variations: segmentVariations,
      metrics: metrics.map((metric, m) => ({
        id: metric.eventId,
        higherIsBetter: metric.winningDirection !== "decreasing",
        nonNegative: metric.aggregator === "unique" || metric.aggregator === "count",
        stats: Object.fromEntries(
          segmentVariations.map((v) => {
            const s = sums[m]?.get(value)?.get(v.id) ?? cell();
            return [v.id, { n: s.n, sum: s.sum, sumSq: s.sumSq }];
          }),
        ),
      })),
    };
  });
  return {
    dimension,
    segments: analyzeBreakdown(segments, baselineId, options).map((segment) => ({
      value: segment.value,
      visitors: segment.variations.reduce((n, v) => n + v.visitors, 0),
      variations: segment.variations.map((v) => ({ id: v.id, visitors: v.visitors })),
      metrics: segment.metrics.map((m) => ({
        eventId: m.id,
        variations: m.variations.map(presentComparison),
      })),
    })),
  };
}

export async function loadResults(
  env: Pick<Env, "DB" | "VISITOR_SHARDS" | "EVENT_SHARDS">,
  experimentId: string,
  query: ResultsQuery,
): Promise<ExperimentResults> {
  const db = env.DB;
  const experiment = await requireRow<ExperimentRow>(db, "experiments", "experiment", experimentId);
  const range = parseRange(query.from, query.to);
  if (query.breakdown !== undefined && (range.from !== null || range.to !== null))
    invalidQuery([
      {
        path: "$.query.breakdown",
        message: "a breakdown covers the whole experiment: leave out from and to",
      },
    ]);
  const options = parseAnalysisOptions(query);
  const environment = await requireResultsEnvironment(db, experiment.project_id, query.environment);
  const [visitorRows, metricRows] = await Promise.all([
    listVariationDaily(db, environment.sdk_key, experiment.id, range),
    listMetricDaily(db, environment.sdk_key, experiment.id, range),
  ]);

  const configuredVariations = parseJson<ConfiguredVariation[]>(experiment.variations, []);
  const metrics = parseJson<ResultsMetric[]>(experiment.metrics, []);
  const baselineId = chooseBaseline(configuredVariations, query.baseline);

  // Variations: the experiment's, then any other id the data names (e.g. a removed variation).
  const variationKeys = new Map<string, string | null>();
  for (const v of configuredVariations) variationKeys.set(v.id, v.key);
  for (const row of [...visitorRows, ...metricRows])
    if (!variationKeys.has(row.variation_id)) variationKeys.set(row.variation_id, null);
  const variationIds = [...variationKeys.keys()];

  const metricEventIds = new Set(metrics.map((m) => m.eventId));
  const { revisions, visitors, counts, daily } = tallyRows(visitorRows, metricRows, metricEventIds);
  const eventKeys = await listEventKeys(db, [...metricEventIds]);

  const capped = new Map<number, CappedMetric>();
  const converters = metrics.some((m) => m.capping && m.aggregator !== "unique")
    ? ((await shardConverters(env)) ?? d1Converters(db))
    : d1Converters(db);
  await Promise.all(
    metrics.map(async (metric, index) => {
      if (metric.capping && metric.aggregator !== "unique")
        capped.set(
          index,
          await capMetric(
            converters,
            environment.sdk_key,
            experiment.id,
            metric,
            metric.capping,
            range.from !== null || range.to !== null,
          ),
        );
    }),
  );
  const countsOf = (eventId: string, variationId: string): MetricCounts =>
    counts.get(eventId)?.get(variationId) ?? emptyCounts(variationId);
  /** The metric's statistics of a variation: the capped totals where capping applies. */
  const statsOf = (metric: ResultsMetric, index: number, variationId: string): SufficientStats => {
    const raw = metricStats(metric, countsOf(metric.eventId, variationId));
    const cap = capped.get(index);
    if (!cap?.report.applied) return raw;
    const sums = cap.sums.get(variationId) ?? { sum: 0, sumSq: 0 };
    return { ...raw, sum: sums.sum, sumSq: sums.sumSq };
  };

  const weights = new Map<string, number>();
  for (const v of configuredVariations)
    if (typeof v.weight === "number") weights.set(v.id, v.weight);
  const analysisVariations = variationIds.map((id) => ({
    id,
    weight: weights.get(id) ?? null,
    visitors: visitors.get(id) ?? 0,
  }));
  // CUPED (docs/statistics.md "CUPED"): the per-visitor sums with each visitor's pre-exposure
  // value, where the whole experiment is asked for and the metric is not capped.
  const covariates = await Promise.all(
    metrics.map(async (metric, index) => {
      const total = covariateTotalOf(metric.aggregator, metric.field);
      if (!options.cuped || total === null || range.from !== null || range.to !== null)
        return undefined;
      if (capped.get(index)?.report.applied) return undefined;
      const sums = await covariateSums(
        env,
        environment.sdk_key,
        experiment.id,
        metric.eventId,
        total,
      );
      if (![...sums.values()].some((s) => s.sumX2 > 0)) return undefined;
      // Every visitor's window must still be stored: a window the retention cut short would give
      // early visitors a smaller x, and when early and late visitors were split differently (a
      // ramp, a bandit) that difference would pass for an effect.
      const earliest = Math.min(...[...sums.values()].map((s) => s.firstAt));
      if (earliest - COVARIATE_WINDOW_MS < retentionCutoff(Date.now())) return undefined;
      return Object.fromEntries(
        variationIds.map((id) => [
          id,
          sums.get(id) ?? { n: 0, firstAt: 0, sumY: 0, sumY2: 0, sumX: 0, sumX2: 0, sumXY: 0 },
        ]),
      );
    }),
  );
  const analysisMetrics = metrics.map((metric, index) => ({
    id: metric.eventId,
    higherIsBetter: metric.winningDirection !== "decreasing",
    // converters and event counts are never negative; revenue/value can be (refunds)
    nonNegative: metric.aggregator === "unique" || metric.aggregator === "count",
    stats: Object.fromEntries(variationIds.map((id) => [id, statsOf(metric, index, id)])),
    ...(covariates[index] === undefined ? {} : { covariates: covariates[index] }),
  }));
  // A bandit changed the weights over time: the SRM check compares against what each datafile
  // revision allocated, not against today's weights (docs/bandits.md).
  const allocated = await allocationOverTime(db, experiment.id, environment.id, visitorRows);
  const analysis: ExperimentAnalysis | null =
    baselineId === null
      ? null
      : analyzeExperiment(
          allocated
            ? analysisVariations.map((v) => ({ ...v, weight: allocated.get(v.id) ?? null }))
            : analysisVariations,
          baselineId,
          analysisMetrics,
          options,
        );

  const guardrails =
    baselineId === null
      ? []
      : checkGuardrails(
          analysisVariations,
          baselineId,
          // Identified by index: two metrics may share an event.
          metrics.flatMap((metric, index) =>
            metric.guardrail
              ? [{ ...analysisMetrics[index]!, id: String(index), action: metric.guardrail.action }]
              : [],
          ),
          options,
        );
  const sections = parseJson<WebSection[] | null>(experiment.sections, null);
  const sectionResults =
    sections === null || sections.length === 0
      ? null
      : analyzeSections(
          sections.map((section) => ({
            id: section.id,
            variantIds: section.variations.map((v) => v.id),
          })),
          analysisVariations.map((v) => ({
            ...v,
            sectionVariationIds:
              configuredVariations.find((c) => c.id === v.id)?.sectionVariationIds ?? [],
          })),
          analysisMetrics,
          options,
        ).map((analysed, s) => {
          const section = sections[s]!;
          const nameOf = (id: string) => section.variations.find((v) => v.id === id)?.name ?? null;
          return {
            id: section.id,
            name: section.name ?? null,
            baselineVariationId: analysed.baselineId,
            variations: analysed.variations.map((v) => ({
              id: v.id,
              name: nameOf(v.id),
              visitors: v.visitors,
              weight: v.weight,
            })),
            metrics: analysed.metrics.map((m) => ({
              eventId: m.id,
              variations: m.variations.map(presentComparison),
            })),
          };
        });

  const breakdown =
    query.breakdown === undefined || baselineId === null
      ? null
      : await breakdownOf(
          env,
          environment.sdk_key,
          experiment.id,
          query.breakdown,
          metrics,
          analysisVariations,
          baselineId,
          options,
        );

  const days = [...daily.keys()].sort();
  return {
    experimentId: experiment.id,
    experimentKey: experiment.key,
    environment: { id: environment.id, key: environment.key, sdkKey: environment.sdk_key },
    revisions: [...revisions].sort(compareRevisions),
    from: range.from,
    to: range.to,
    analysis: {
      mode: options.mode,
      alpha: options.alpha,
      correction: options.correction,
      mde: options.mde,
      power: options.power,
      nStar: options.nStar,
      cuped: options.cuped,
      baselineVariationId: baselineId,
    },
    srm: analysis?.srm ?? {
      checked: false,
      flagged: false,
      chiSquare: null,
      pValue: null,
      expected: {},
    },
    variations: analysisVariations.map((v) => ({
      id: v.id,
      key: variationKeys.get(v.id) ?? null,
      visitors: v.visitors,
      weight: v.weight,
    })),
    metrics: metrics.map((metric, index) => {
      const result = analysis?.metrics[index];
      return {
        eventId: metric.eventId,
        eventKey: eventKeys.get(metric.eventId) ?? null,
        aggregator: metric.aggregator,
        ...(metric.field === undefined ? {} : { field: metric.field }),
        winningDirection:
          metric.winningDirection === "decreasing"
            ? ("decreasing" as const)
            : ("increasing" as const),
        primary: index === 0,
        visitorsNeededPerVariation: result?.visitorsNeededPerVariation ?? null,
        visitorsRemaining: result?.visitorsRemaining ?? null,
        capping: capped.get(index)?.report ?? null,
        variations: variationIds.map((id, v) => {
          const c = countsOf(metric.eventId, id);
          const r = result?.variations[v];
          const n = visitors.get(id) ?? 0;
          const total = capped.get(index)?.report.applied
            ? statsOf(metric, index, id).sum
            : metricTotal(metric, c);
          return {
            ...c,
            baseline: id === baselineId,
            visitors: n,
            conversions: metric.aggregator === "unique" ? c.converters : c.events,
            total,
            mean: n > 0 ? total / n : null,
            lift: r?.lift ?? null,
            difference: r?.difference ?? null,
            pValue: r?.pValue ?? null,
            qValue: r?.qValue ?? null,
            significant: r?.significant ?? false,
            verdict: r?.verdict ?? ("not_enough_data" as const),
            reason: r?.reason ?? (r === undefined ? "no_baseline" : null),
            cuped: r?.cuped ?? null,
          };
        }),
      };
    }),
    guardrails: guardrails.map((g) => ({
      eventId: metrics[Number(g.metricId)]!.eventId,
      aggregator: metrics[Number(g.metricId)]!.aggregator,
      field: metrics[Number(g.metricId)]!.field ?? null,
      variationId: g.variationId,
      action: g.action,
      harmed: g.harmed,
      pValue: g.pValue,
      difference: g.difference,
      lift: g.lift,
    })),
    guardrailBreaches: (await listBreaches(db, experiment.id, environment.id)).map((b) => ({
      eventId: b.event_id,
      metric: b.metric,
      variationId: b.variation_id,
      detectedAt: b.detected_at,
      pValue: b.p_value,
      difference: b.difference,
      lift: b.lift,
      action: b.action === "pause" ? ("pause" as const) : ("mark" as const),
      pausedAt: b.paused_at,
    })),
    breakdown,
    sections: sectionResults,
    cumulative: cumulativeSeries(metrics, variationIds, days, daily),
    daily: days.flatMap((day) => {
      const byVariation = daily.get(day) ?? new Map<string, DailyEntry>();
      return variationIds.flatMap((id) => {
        const entry = byVariation.get(id);
        if (!entry) return [];
        const converters: Record<string, number> = {};
        for (const eventId of metricEventIds)
          converters[eventId] = entry.counts[eventId]?.converters ?? 0;
        return [{ day, variationId: id, visitors: entry.visitors, converters }];
      });
    }),
  };
}
