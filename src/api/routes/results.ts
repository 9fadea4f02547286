/**
 * Experiment results (docs/api.md "Results"): the COUNTS the events queue consumer aggregated in
 * D1 (migrations/0002_events.sql, docs/events.md) for one experiment in one environment —
 * visitors per variation, and per metric and variation converters, events and value/revenue sums
 * (with sums of squares) — and the statistics over them (src/core/experiment-analysis.ts,
 * docs/statistics.md).
 *
 * - The environment is chosen by key (`?environment=`, default "production"); the aggregates
 *   are keyed by its sdkKey.
 * - `?from`/`?to` (UTC days, inclusive) filter by the aggregate day: the day of a visitor's first
 *   impression for visitors, the conversion day for metric counts (docs/events.md). The
 *   per-visitor sums of squares are kept as increments on the conversion days: without `from`
 *   they are exact (Σ over visitors of their total up to `to`, squared); with `from` they are the
 *   increments in the range, an approximation for visitors whose conversions span `from`
 *   (docs/statistics.md).
 * - Counts are summed over datafile revisions, and `revisions` lists every revision that
 *   contributed (docs/statistics.md: results never mix revisions silently).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import type { ExperimentRow } from "../store/rows";
import { all, first } from "../store/db";
import { notFound, unprocessable } from "../errors";
import { errorResponses, jsonResponse } from "../http/openapi";
import { IdParams } from "../schemas/fields";
import { parseJson, requireRow } from "../store/sql";
import {
  analyzeExperiment,
  DEFAULT_ANALYSIS_OPTIONS,
  type AnalysisOptions,
} from "../../core/experiment-analysis";
import type { WebMetric } from "../../core/datafile-types";
import type { SufficientStats } from "../../core/stats/index";

/** The default environment of the results (docs/api.md). */
export const DEFAULT_RESULTS_ENVIRONMENT = "production";

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

const ResultsQuery = z.object({
  mode: z
    .enum(["sequential", "fixed"])
    .optional()
    .openapi({
      param: { name: "mode", in: "query" },
      description:
        "sequential (default): always-valid p-values and intervals, safe to look at any time; fixed: fixed-horizon Welch t-test, valid once, at the planned sample size.",
    }),
  alpha: z
    .string()
    .optional()
    .openapi({
      param: { name: "alpha", in: "query" },
      description: "Significance level, 0 < alpha ≤ 0.5; default 0.1 (90 % significance).",
      example: "0.05",
    }),
  baseline: z
    .string()
    .optional()
    .openapi({
      param: { name: "baseline", in: "query" },
      description: "Variation id or key compared against; default the first variation.",
    }),
  correction: z
    .enum(["bh", "holm"])
    .optional()
    .openapi({
      param: { name: "correction", in: "query" },
      description:
        "Multiple-comparison correction: bh (Benjamini–Hochberg, default) or holm. The primary metric is corrected on its own, the secondary metrics together.",
    }),
  mde: z
    .string()
    .optional()
    .openapi({
      param: { name: "mde", in: "query" },
      description:
        "Relative minimum detectable effect for visitorsNeededPerVariation, 0 < mde ≤ 10; default 0.05.",
    }),
  nStar: z
    .string()
    .optional()
    .openapi({
      param: { name: "nStar", in: "query" },
      description:
        "Sequential tuning N* (total visitors where the test is most sensitive), 100..100000000; default 5000.",
    }),
  environment: z
    .string()
    .min(1)
    .optional()
    .openapi({
      param: { name: "environment", in: "query" },
      description: `Environment key; default "${DEFAULT_RESULTS_ENVIRONMENT}".`,
      example: "production",
    }),
  from: z
    .string()
    .optional()
    .openapi({
      param: { name: "from", in: "query" },
      description: "First UTC day included (YYYY-MM-DD); default: no lower bound.",
      example: "2025-01-01",
    }),
  to: z
    .string()
    .optional()
    .openapi({
      param: { name: "to", in: "query" },
      description: "Last UTC day included (YYYY-MM-DD); default: no upper bound.",
      example: "2025-01-31",
    }),
});

const MetricCountsSchema = z.object({
  variationId: z.string(),
  converters: z.number().int(),
  events: z.number().int(),
  revenueSum: z.number().openapi({ description: "Cents." }),
  revenueSumSq: z.number().openapi({ description: "Σ revenue² over events." }),
  valueSum: z.number(),
  valueSumSq: z.number().openapi({ description: "Σ value² over events." }),
  eventsVisitorSumSq: z.number().int().openapi({
    description:
      "Σ over visitors of (the visitor's events)²: Σx² of a count metric. Exact without `from` (totals up to `to`); with `from`, the increments of the days in range (docs/statistics.md).",
  }),
  revenueVisitorSumSq: z.number().openapi({
    description:
      "Σ over visitors of (the visitor's revenue total in cents)²: Σx² of a sum revenue metric (same range rule).",
  }),
  valueVisitorSumSq: z.number().openapi({
    description:
      "Σ over visitors of (the visitor's value total)²: Σx² of a sum value metric (same range rule).",
  }),
});

const IntervalSchema = z.tuple([z.number(), z.number()]);
/** An interval whose ends may be unbounded (null: JSON has no Infinity). */
const OpenIntervalSchema = z.tuple([z.number().nullable(), z.number().nullable()]);

const MetricVariationSchema = MetricCountsSchema.extend({
  baseline: z.boolean(),
  visitors: z.number().int(),
  conversions: z.number().openapi({
    description: "unique: converters; count and sum: events.",
  }),
  total: z.number().openapi({
    description:
      "What the metric adds up per variation: converters (unique), events (count), revenue in cents or value (sum).",
  }),
  mean: z.number().nullable().openapi({
    description: "total ÷ visitors: the conversion rate (unique) or the mean per visitor.",
  }),
  lift: z
    .object({ estimate: z.number(), se: z.number(), ci: OpenIntervalSchema })
    .nullable()
    .openapi({
      description:
        "Relative lift (μt − μc) / μc vs the baseline, delta-method standard error, and the interval of the chosen mode (sequential: always-valid, inverted from the test of μt − μc). An end is null when the data cannot bound it: in sequential mode while the baseline has too few conversions to bound the lift from above (and, for revenue or value metrics, from below). Never below −1 for unique and count metrics.",
    }),
  difference: z
    .object({ estimate: z.number(), ci: IntervalSchema, pValue: z.number() })
    .nullable()
    .openapi({ description: "Absolute difference of the means (fixed-horizon Welch)." }),
  pValue: z.number().nullable(),
  qValue: z.number().nullable().openapi({ description: "p-value after the correction." }),
  significant: z.boolean(),
  verdict: z.enum(["baseline", "winner", "loser", "inconclusive", "not_enough_data"]),
  reason: z.string().nullable().openapi({ description: "Why not_enough_data." }),
});

const CappingSchema = z
  .object({
    type: z.enum(["absolute", "percentile"]),
    value: z.number(),
    applied: z.boolean(),
    threshold: z.number().nullable().openapi({
      description:
        "The cap each visitor's total was held to (absolute: ±value; percentile: that quantile of the converting visitors' totals).",
    }),
    cappedVisitors: z.number().int().openapi({ description: "Visitors whose total was capped." }),
    reason: z.string().nullable().openapi({ description: "Why not applied." }),
  })
  .nullable()
  .openapi({
    description:
      "The metric's capping (winsorisation, docs/statistics.md), or null without one. When applied, the statistics, `total` and `mean` use the capped totals; the sums (revenueSum, …) stay raw.",
  });

const ResultsSchema = z
  .object({
    experimentId: z.string(),
    experimentKey: z.string(),
    environment: z.object({ id: z.string(), key: z.string(), sdkKey: z.string() }),
    revisions: z.array(z.string()).openapi({
      description: "Datafile revisions that contributed to these counts, in ascending order.",
    }),
    from: z.string().nullable(),
    to: z.string().nullable(),
    analysis: z.object({
      mode: z.enum(["sequential", "fixed"]),
      alpha: z.number(),
      correction: z.enum(["bh", "holm"]),
      mde: z.number(),
      power: z.number(),
      nStar: z.number(),
      baselineVariationId: z.string().nullable(),
    }),
    srm: z
      .object({
        checked: z.boolean().openapi({
          description: "false until every allocated variation has at least 8 visitors.",
        }),
        flagged: z
          .boolean()
          .openapi({ description: "p < 0.001: the split is not the allocation." }),
        chiSquare: z.number().nullable(),
        pValue: z.number().nullable(),
        expected: z.record(z.string(), z.number()),
      })
      .openapi({ description: "Sample-ratio mismatch: visitors against the allocation weights." }),
    variations: z.array(
      z.object({
        id: z.string(),
        key: z.string().nullable().openapi({
          description: "null for a variation id seen in the data but no longer in the experiment.",
        }),
        visitors: z.number().int(),
        weight: z.number().int().nullable().openapi({
          description: "Allocation in basis points; null when no longer in the experiment.",
        }),
      }),
    ),
    metrics: z.array(
      z.object({
        eventId: z.string(),
        eventKey: z.string().nullable(),
        aggregator: z.string(),
        field: z.string().optional(),
        winningDirection: z.enum(["increasing", "decreasing"]),
        primary: z.boolean(),
        visitorsNeededPerVariation: z.number().nullable(),
        visitorsRemaining: z.number().nullable(),
        capping: CappingSchema,
        variations: z.array(MetricVariationSchema),
      }),
    ),
    cumulative: z
      .array(
        z.object({
          eventId: z.string(),
          day: z.string(),
          variationId: z.string(),
          visitors: z.number().int(),
          total: z.number(),
          mean: z.number().nullable(),
        }),
      )
      .openapi({
        description:
          "Per metric, day and variation: visitors and metric total cumulated up to and including that day, and their ratio.",
      }),
    daily: z.array(
      z.object({
        day: z.string(),
        variationId: z.string(),
        visitors: z.number().int(),
        converters: z.record(z.string(), z.number().int()).openapi({
          description: "Event id of each metric → converters counted that day.",
        }),
      }),
    ),
  })
  .openapi("ExperimentResults");

export type ExperimentResults = z.infer<typeof ResultsSchema>;
type MetricCounts = z.infer<typeof MetricCountsSchema>;

function validDay(value: string): boolean {
  if (!DAY_PATTERN.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

function parseRange(from: string | undefined, to: string | undefined) {
  const details: Array<{ path: string; message: string }> = [];
  if (from !== undefined && !validDay(from))
    details.push({ path: "$.query.from", message: "must be a date YYYY-MM-DD" });
  if (to !== undefined && !validDay(to))
    details.push({ path: "$.query.to", message: "must be a date YYYY-MM-DD" });
  if (details.length === 0 && from !== undefined && to !== undefined && from > to)
    details.push({ path: "$.query.to", message: "must not be before from" });
  const firstDetail = details[0];
  if (firstDetail)
    throw unprocessable(
      `invalid request query: ${firstDetail.path}: ${firstDetail.message}`,
      details,
    );
  return { from: from ?? null, to: to ?? null };
}

/** The statistics settings of a results request, from its query (docs/statistics.md). */
export function parseAnalysisOptions(query: {
  mode?: "sequential" | "fixed";
  alpha?: string;
  correction?: "bh" | "holm";
  mde?: string;
  nStar?: string;
}): AnalysisOptions {
  const details: Array<{ path: string; message: string }> = [];
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
  };
  const firstDetail = details[0];
  if (firstDetail)
    throw unprocessable(
      `invalid request query: ${firstDetail.path}: ${firstDetail.message}`,
      details,
    );
  return options;
}

type Metric = Pick<WebMetric, "eventId" | "field" | "winningDirection" | "capping"> & {
  aggregator: string;
};

/** A metric's capping as reported with its results. */
export type CappingReport = z.infer<typeof CappingSchema>;

/**
 * Winsorisation of a count or sum metric (docs/statistics.md "Capping"): each visitor's total
 * (converters.events / revenue / value: the consumer's per-visitor totals over the whole
 * experiment) held to the cap, per variation as sufficient statistics. Not applied with a day
 * range, since the per-visitor totals are not kept per day.
 */
async function capMetric(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  metric: Metric,
  ranged: boolean,
): Promise<{
  report: NonNullable<CappingReport>;
  sums: Map<string, { sum: number; sumSq: number }>;
}> {
  const capping = metric.capping!;
  const report = {
    type: capping.type,
    value: capping.value,
    applied: false,
    threshold: null as number | null,
    cappedVisitors: 0,
    reason: null as string | null,
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
  const x =
    metric.aggregator === "count" ? "events" : metric.field === "revenue" ? "revenue" : "value";
  const where = "sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3";
  let threshold = capping.value;
  if (capping.type === "percentile") {
    const n = Number(
      (
        await first<{ n: number }>(
          db,
          `SELECT count(*) AS n FROM converters WHERE ${where}`,
          sdkKey,
          experimentId,
          metric.eventId,
        )
      )?.n ?? 0,
    );
    if (n === 0) return { report: { ...report, reason: "no converting visitors yet" }, sums };
    // Nearest rank: the smallest total with at least `value` of the converting visitors at or below it.
    const rank = Math.max(1, Math.ceil(capping.value * n));
    const row = await first<{ x: number }>(
      db,
      `SELECT ${x} AS x FROM converters WHERE ${where} ORDER BY ${x} LIMIT 1 OFFSET ?4`,
      sdkKey,
      experimentId,
      metric.eventId,
      rank - 1,
    );
    threshold = Number(row?.x ?? 0);
  }
  // Absolute: |x| ≤ value (a refund is an outlier too); percentile: the upper tail only.
  const capped = capping.type === "absolute" ? `max(min(${x}, ?4), -?4)` : `min(${x}, ?4)`;
  const rows = await all<{ variation_id: string; sum: number; sum_sq: number; capped: number }>(
    db,
    `SELECT variation_id, total(${capped}) AS sum, total(${capped} * ${capped}) AS sum_sq,
       total(${capped} <> ${x}) AS capped
     FROM converters WHERE ${where} GROUP BY variation_id`,
    sdkKey,
    experimentId,
    metric.eventId,
    threshold,
  );
  let cappedVisitors = 0;
  for (const row of rows) {
    sums.set(row.variation_id, { sum: Number(row.sum), sumSq: Number(row.sum_sq) });
    cappedVisitors += Number(row.capped);
  }
  return { report: { ...report, applied: true, threshold, cappedVisitors }, sums };
}

/** What one visitor contributes to `metric`, summed over a variation's visitors. */
export function metricTotal(metric: Metric, c: MetricCounts): number {
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
export function metricStats(metric: Metric, c: MetricCounts): SufficientStats {
  if (metric.aggregator === "unique") return { n: 0, sum: c.converters, sumSq: c.converters };
  if (metric.aggregator === "count") return { n: 0, sum: c.events, sumSq: c.eventsVisitorSumSq };
  return metric.field === "revenue"
    ? { n: 0, sum: c.revenueSum, sumSq: c.revenueVisitorSumSq }
    : { n: 0, sum: c.valueSum, sumSq: c.valueVisitorSumSq };
}

interface VariationDailyRow {
  variation_id: string;
  revision: string;
  day: string;
  visitors: number;
}

interface MetricDailyRow {
  variation_id: string;
  revision: string;
  event_id: string;
  day: string;
  converters: number;
  events: number;
  revenue_sum: number;
  revenue_sum_sq: number;
  value_sum: number;
  value_sum_sq: number;
  events_visitor_sum_sq: number;
  revenue_visitor_sum_sq: number;
  value_visitor_sum_sq: number;
}

function compareRevisions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function emptyCounts(variationId: string): MetricCounts {
  return {
    variationId,
    converters: 0,
    events: 0,
    revenueSum: 0,
    revenueSumSq: 0,
    valueSum: 0,
    valueSumSq: 0,
    eventsVisitorSumSq: 0,
    revenueVisitorSumSq: 0,
    valueVisitorSumSq: 0,
  };
}

function addRow(c: MetricCounts, row: MetricDailyRow): void {
  c.converters += Number(row.converters);
  c.events += Number(row.events);
  c.revenueSum += Number(row.revenue_sum);
  c.revenueSumSq += Number(row.revenue_sum_sq);
  c.valueSum += Number(row.value_sum);
  c.valueSumSq += Number(row.value_sum_sq);
  c.eventsVisitorSumSq += Number(row.events_visitor_sum_sq);
  c.revenueVisitorSumSq += Number(row.revenue_visitor_sum_sq);
  c.valueVisitorSumSq += Number(row.value_visitor_sum_sq);
}

/**
 * For an experiment whose weights the bandit changed (src/api/services/bandit-round.ts, `bandit_allocations`
 * rows with `applied = 1`): per variation, the weight the visitors were actually allocated with,
 * Σ over datafile revisions r of (visitors first decided by r) × (weight in effect at r), so that
 * the SRM check's expected counts follow the allocation over time. The weights in effect at r are
 * those of the last applied row published at or before r, or before any, the first row's previous
 * weights. Null when nothing was re-allocated. In another environment than the one whose
 * revisions the rows name (production), which revision published which weights is not known:
 * every variation gets a null weight there, so the SRM check is skipped rather than wrong.
 */
async function allocationOverTime(
  db: D1Database,
  experimentId: string,
  environmentId: string,
  visitorRows: readonly VariationDailyRow[],
): Promise<Map<string, number | null> | null> {
  const rows = await all<{
    environment_id: string;
    revision: number | null;
    weights: string;
    previous_weights: string;
  }>(
    db,
    "SELECT environment_id, revision, weights, previous_weights FROM bandit_allocations WHERE experiment_id = ? AND applied = 1 ORDER BY id",
    experimentId,
  );
  const [firstRow] = rows;
  if (!firstRow) return null;
  const out = new Map<string, number | null>();
  if (rows.some((r) => r.environment_id !== environmentId || r.revision === null)) {
    for (const row of visitorRows) out.set(row.variation_id, null);
    return out;
  }
  const periods = rows.map((r) => ({
    from: r.revision!,
    weights: parseJson<Record<string, number>>(r.weights, {}),
  }));
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

/** Reads the aggregates of an experiment in one environment (see the module comment). */
export async function loadResults(
  db: D1Database,
  experimentId: string,
  query: z.infer<typeof ResultsQuery>,
): Promise<ExperimentResults> {
  const experiment = await requireRow<ExperimentRow>(db, "experiments", "experiment", experimentId);
  const range = parseRange(query.from, query.to);
  const options = parseAnalysisOptions(query);
  const environmentKey = query.environment ?? DEFAULT_RESULTS_ENVIRONMENT;
  const environment = await first<{ id: string; key: string; sdk_key: string }>(
    db,
    "SELECT id, key, sdk_key FROM environments WHERE project_id = ? AND key = ?",
    experiment.project_id,
    environmentKey,
  );
  if (!environment) {
    if (query.environment === undefined) throw notFound("environment", environmentKey);
    throw unprocessable(
      `unknown environment ${JSON.stringify(environmentKey)} (not an environment key of this project)`,
      [{ path: "$.query.environment", message: "not an environment key of this project" }],
    );
  }

  const where =
    "sdk_key = ? AND experiment_id = ? AND (? IS NULL OR day >= ?) AND (? IS NULL OR day <= ?)";
  const params = [environment.sdk_key, experiment.id, range.from, range.from, range.to, range.to];
  const [visitorRows, metricRows] = await Promise.all([
    all<VariationDailyRow>(
      db,
      `SELECT variation_id, revision, day, visitors FROM variation_daily WHERE ${where}`,
      ...params,
    ),
    all<MetricDailyRow>(
      db,
      `SELECT variation_id, revision, event_id, day, converters, events, revenue_sum, revenue_sum_sq, value_sum, value_sum_sq, events_visitor_sum_sq, revenue_visitor_sum_sq, value_visitor_sum_sq FROM metric_daily WHERE ${where}`,
      ...params,
    ),
  ]);

  const configuredVariations = parseJson<Array<{ id: string; key: string; weight?: number }>>(
    experiment.variations,
    [],
  );
  const metrics = parseJson<Metric[]>(experiment.metrics, []);
  let baselineId = configuredVariations[0]?.id ?? null;
  if (query.baseline !== undefined) {
    const chosen = configuredVariations.find(
      (v) => v.id === query.baseline || v.key === query.baseline,
    );
    if (!chosen)
      throw unprocessable(
        `unknown baseline ${JSON.stringify(query.baseline)} (not a variation id or key of this experiment)`,
        [{ path: "$.query.baseline", message: "not a variation id or key of this experiment" }],
      );
    baselineId = chosen.id;
  }

  // Variations: the experiment's, then any other id the data names (e.g. a removed variation).
  const variationKeys = new Map<string, string | null>();
  for (const v of configuredVariations) variationKeys.set(v.id, v.key);
  for (const row of [...visitorRows, ...metricRows])
    if (!variationKeys.has(row.variation_id)) variationKeys.set(row.variation_id, null);
  const variationIds = [...variationKeys.keys()];

  const revisions = new Set<string>();
  const visitors = new Map<string, number>();
  // day → variation → {visitors, counts by event}
  const daily = new Map<
    string,
    Map<string, { visitors: number; counts: Record<string, MetricCounts> }>
  >();
  const dailyEntry = (day: string, variationId: string) => {
    let byVariation = daily.get(day);
    if (!byVariation) daily.set(day, (byVariation = new Map()));
    let entry = byVariation.get(variationId);
    if (!entry) byVariation.set(variationId, (entry = { visitors: 0, counts: {} }));
    return entry;
  };
  const metricEventIds = new Set(metrics.map((m) => m.eventId));

  for (const row of visitorRows) {
    revisions.add(row.revision);
    visitors.set(row.variation_id, (visitors.get(row.variation_id) ?? 0) + Number(row.visitors));
    dailyEntry(row.day, row.variation_id).visitors += Number(row.visitors);
  }
  // event id → variation id → counts
  const counts = new Map<string, Map<string, MetricCounts>>();
  for (const row of metricRows) {
    revisions.add(row.revision);
    let byVariation = counts.get(row.event_id);
    if (!byVariation) counts.set(row.event_id, (byVariation = new Map()));
    let c = byVariation.get(row.variation_id);
    if (!c) byVariation.set(row.variation_id, (c = emptyCounts(row.variation_id)));
    addRow(c, row);
    if (metricEventIds.has(row.event_id)) {
      const entry = dailyEntry(row.day, row.variation_id);
      addRow((entry.counts[row.event_id] ??= emptyCounts(row.variation_id)), row);
    }
  }

  const eventKeys = new Map<string, string>();
  if (metricEventIds.size > 0) {
    const ids = [...metricEventIds];
    const rows = await all<{ id: string; key: string }>(
      db,
      `SELECT id, key FROM events WHERE id IN (${ids.map(() => "?").join(", ")})`,
      ...ids,
    );
    for (const row of rows) eventKeys.set(row.id, row.key);
  }

  const capped = new Map<number, Awaited<ReturnType<typeof capMetric>>>();
  await Promise.all(
    metrics.map(async (metric, index) => {
      if (metric.capping && metric.aggregator !== "unique")
        capped.set(
          index,
          await capMetric(
            db,
            environment.sdk_key,
            experiment.id,
            metric,
            range.from !== null || range.to !== null,
          ),
        );
    }),
  );
  /** The metric's statistics of a variation: the capped totals where capping applies. */
  const statsOf = (index: number, variationId: string): SufficientStats => {
    const metric = metrics[index]!;
    const raw = metricStats(metric, countsOf(metric.eventId, variationId));
    const cap = capped.get(index);
    if (!cap?.report.applied) return raw;
    const sums = cap.sums.get(variationId) ?? { sum: 0, sumSq: 0 };
    return { ...raw, sum: sums.sum, sumSq: sums.sumSq };
  };

  const weights = new Map<string, number>();
  for (const v of configuredVariations)
    if (typeof v.weight === "number") weights.set(v.id, v.weight);
  const countsOf = (eventId: string, variationId: string): MetricCounts =>
    counts.get(eventId)?.get(variationId) ?? emptyCounts(variationId);
  const analysisVariations = variationIds.map((id) => ({
    id,
    weight: weights.get(id) ?? null,
    visitors: visitors.get(id) ?? 0,
  }));
  // A bandit changed the weights over time: the SRM check compares against what each datafile
  // revision allocated, not against today's weights (docs/bandits.md).
  const allocated = await allocationOverTime(db, experiment.id, environment.id, visitorRows);
  const analysis =
    baselineId === null
      ? null
      : analyzeExperiment(
          allocated
            ? analysisVariations.map((v) => ({ ...v, weight: allocated.get(v.id) ?? null }))
            : analysisVariations,
          baselineId,
          metrics.map((metric, index) => ({
            id: metric.eventId,
            higherIsBetter: metric.winningDirection !== "decreasing",
            // converters and event counts are never negative; revenue/value can be (refunds)
            nonNegative: metric.aggregator === "unique" || metric.aggregator === "count",
            stats: Object.fromEntries(variationIds.map((id) => [id, statsOf(index, id)])),
          })),
          options,
        );

  // Cumulative series: per metric and variation, running totals over the days with data.
  const days = [...daily.keys()].sort();
  const cumulative: ExperimentResults["cumulative"] = [];
  for (const metric of metrics) {
    for (const id of variationIds) {
      let runningVisitors = 0;
      let runningTotal = 0;
      for (const day of days) {
        const entry = daily.get(day)!.get(id);
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
            ? statsOf(index, id).sum
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
          };
        }),
      };
    }),
    cumulative,
    daily: days.flatMap((day) =>
      variationIds
        .filter((id) => daily.get(day)!.has(id))
        .map((id) => {
          const entry = daily.get(day)!.get(id)!;
          const converters: Record<string, number> = {};
          for (const eventId of metricEventIds)
            converters[eventId] = entry.counts[eventId]?.converters ?? 0;
          return { day, variationId: id, visitors: entry.visitors, converters };
        }),
    ),
  };
}

const CSV_HEADER = [
  "metric_event_id",
  "metric_event_key",
  "aggregator",
  "field",
  "primary",
  "variation_id",
  "variation_key",
  "visitors",
  "converters",
  "events",
  "revenue_sum",
  "revenue_sum_sq",
  "value_sum",
  "value_sum_sq",
  "events_visitor_sum_sq",
  "revenue_visitor_sum_sq",
  "value_visitor_sum_sq",
  "total",
  "mean",
  "lift",
  "lift_ci_low",
  "lift_ci_high",
  "p_value",
  "q_value",
  "verdict",
];

function csvCell(value: string | number | boolean | null | undefined): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV row per (metric, variation), with a header line; CRLF line ends (RFC 4180). */
export function resultsCsv(results: ExperimentResults): string {
  const lines = [CSV_HEADER.join(",")];
  const variations = new Map(results.variations.map((v) => [v.id, v]));
  for (const metric of results.metrics)
    for (const c of metric.variations) {
      const variation = variations.get(c.variationId);
      lines.push(
        [
          metric.eventId,
          metric.eventKey,
          metric.aggregator,
          metric.field,
          metric.primary,
          c.variationId,
          variation?.key,
          variation?.visitors ?? 0,
          c.converters,
          c.events,
          c.revenueSum,
          c.revenueSumSq,
          c.valueSum,
          c.valueSumSq,
          c.eventsVisitorSumSq,
          c.revenueVisitorSumSq,
          c.valueVisitorSumSq,
          c.total,
          c.mean,
          c.lift?.estimate,
          c.lift?.ci[0],
          c.lift?.ci[1],
          c.pValue,
          c.qValue,
          c.verdict,
        ]
          .map(csvCell)
          .join(","),
      );
    }
  return `${lines.join("\r\n")}\r\n`;
}

const DESCRIPTION =
  'Results of one environment (`environment` key, default "production"), optionally limited to UTC days `from`..`to`: visitors per variation (and the SRM check against the allocation), and per metric (the first is primary) and variation: counts (unique converters, events, revenue and value sums with sums of squares per event and per visitor), the metric total and mean, lift vs the baseline with its interval, p-value, q-value (corrected), significance and verdict — sequential (always-valid, default) or fixed-horizon — plus the visitors still needed for the minimum detectable effect, a cumulative daily series per metric and per-day visitors and converters. `revisions` lists the datafile revisions that contributed (docs/statistics.md).';

export function registerResultRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results",
      tags: ["Results"],
      summary: "Experiment results with statistics",
      description: DESCRIPTION,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuery },
      responses: {
        200: jsonResponse(ResultsSchema, "The experiment's counts"),
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const results = await loadResults(c.env.DB, id, c.req.valid("query"));
      return c.json(results, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results.csv",
      tags: ["Results"],
      summary: "Experiment results as CSV",
      description: `The same results as \`/experiments/{id}/results\`, one row per (metric, variation): ${CSV_HEADER.join(", ")}.`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuery },
      responses: {
        200: {
          description: "text/csv with a header line",
          content: { "text/csv": { schema: z.string() } },
        },
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const results = await loadResults(c.env.DB, id, c.req.valid("query"));
      return csvResponse(c, resultsCsv(results), `${results.experimentKey}-results.csv`);
    },
  );
}

function csvResponse(c: Context, csv: string, filename: string) {
  return c.body(csv, 200, {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": `attachment; filename="${filename.replace(/[^\w.-]/g, "_")}"`,
  });
}
