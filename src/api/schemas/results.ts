/**
 * Request and response schemas of experiment results (docs/api.md "Results"): the results query
 * (environment, day range, statistics settings) and the results document — counts per variation
 * and metric, the statistics over them (docs/statistics.md), the cumulative and daily series.
 * The document is built by src/api/services/results.ts; its type is inferred here, once.
 */
import { z } from "@hono/zod-openapi";
import { BREAKDOWN_DIMENSIONS } from "../../shared/event-messages";

/** The default environment of the results (docs/api.md). */
export const DEFAULT_RESULTS_ENVIRONMENT = "production";

/** The query of `GET /experiments/{id}/results` and `…/results.csv`. */
export const ResultsQuerySchema = z.object({
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
  breakdown: z
    .enum(BREAKDOWN_DIMENSIONS)
    .optional()
    .openapi({
      param: { name: "breakdown", in: "query" },
      description:
        'Results per value of a dimension of the visitors\' first exposure (docs/statistics.md "Breakdowns"): device, browser, country, source (utm_source or referring site) or visitor (new/returning); the whole experiment only (not with from/to).',
    }),
  cuped: z
    .enum(["true", "false"])
    .optional()
    .openapi({
      param: { name: "cuped", in: "query" },
      description:
        'CUPED variance reduction (docs/statistics.md "CUPED"): true (default) adjusts each comparison by the visitors\' pre-exposure value of the same metric where one exists; false turns it off.',
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

/**
 * A variation's counts of one metric: metric_daily's counts (src/events/tables.ts
 * METRIC_DAILY_COLUMNS, the fields of MetricCell) summed over days and revisions.
 */
export const MetricCountsSchema = z.object({
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
  cuped: z
    .object({
      theta: z.number().openapi({ description: "The pooled within-arm slope of y on x." }),
      varianceReduction: z.number().openapi({
        description:
          "Share of the variance of the difference that CUPED removed (1 − Var_adj/Var).",
      }),
      difference: z.object({ estimate: z.number(), se: z.number(), ci: IntervalSchema }),
      unadjustedPValue: z.number().nullable(),
    })
    .nullable()
    .openapi({
      description:
        "CUPED, when applied to this comparison (then pValue, lift and verdict are its): null for the baseline, without a covariate, with a day range or capping, or with cuped=false.",
    }),
});

/** A pooled section variant's result on one metric (multivariate main effects). */
const SectionMetricVariationSchema = MetricVariationSchema.pick({
  baseline: true,
  visitors: true,
  mean: true,
  lift: true,
  difference: true,
  pValue: true,
  qValue: true,
  significant: true,
  verdict: true,
  reason: true,
}).extend({ variationId: z.string() });

/** Per metric, the comparisons of pooled or segmented arms (sections, breakdowns). */
const PooledMetricsSchema = z.array(
  z.object({
    eventId: z.string(),
    variations: z.array(SectionMetricVariationSchema),
  }),
);

/** A metric's capping as reported with its results. */
export const CappingSchema = z
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

/** The results of one experiment in one environment (OpenAPI component `ExperimentResults`). */
export const ResultsSchema = z
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
      cuped: z.boolean(),
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
    guardrails: z
      .array(
        z.object({
          eventId: z.string(),
          aggregator: z.string(),
          field: z.string().nullable(),
          variationId: z.string(),
          action: z.enum(["mark", "pause"]),
          harmed: z.boolean().openapi({
            description:
              "The one-sided always-valid test found the variation worse than the baseline (p ≤ alpha).",
          }),
          pValue: z.number().nullable(),
          difference: z.number().nullable().openapi({ description: "Mean, variation − baseline." }),
          lift: z.number().nullable(),
        }),
      )
      .openapi({
        description:
          'Every guardrail metric × non-baseline variation (docs/statistics.md "Guardrails"): always the sequential one-sided test of harm, whatever `mode`.',
      }),
    guardrailBreaches: z
      .array(
        z.object({
          eventId: z.string(),
          metric: z
            .string()
            .openapi({ description: "The metric's aggregator, `:field` for sums (sum:revenue)." }),
          variationId: z.string(),
          detectedAt: z.string(),
          pValue: z.number(),
          difference: z.number().nullable(),
          lift: z.number().nullable(),
          action: z.enum(["mark", "pause"]),
          pausedAt: z.string().nullable().openapi({
            description: "When the check paused the experiment for this harm (null: not paused).",
          }),
        }),
      )
      .openapi({
        description:
          "Harms the hourly guardrail check recorded in this environment (the experiment's marks), first detection each; they stay after a pause.",
      }),
    breakdown: z
      .object({
        dimension: z.enum(BREAKDOWN_DIMENSIONS),
        segments: z.array(
          z.object({
            value: z.string().openapi({
              description:
                "The dimension's value; (unknown) without one, (other) for the rest past the 20 largest.",
            }),
            visitors: z.number().int(),
            variations: z.array(z.object({ id: z.string(), visitors: z.number().int() })),
            metrics: PooledMetricsSchema,
          }),
        ),
      })
      .nullable()
      .openapi({
        description:
          'With `breakdown`: each segment\'s comparisons, q-values corrected per metric across every segment × variation (docs/statistics.md "Breakdowns"); null without.',
      }),
    sections: z
      .array(
        z.object({
          id: z.string(),
          name: z.string().nullable(),
          baselineVariationId: z.string().openapi({ description: "The section's first variant." }),
          variations: z.array(
            z.object({
              id: z.string(),
              name: z.string().nullable(),
              visitors: z.number().int(),
              weight: z.number().int().nullable(),
            }),
          ),
          metrics: PooledMetricsSchema,
        }),
      )
      .nullable()
      .openapi({
        description:
          "Multivariate experiments: each section's main effects — every variant pooled over the other sections' variants and compared with the section's first variant (docs/statistics.md \"Multivariate results\"). null for other experiments.",
      }),
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

/** The results document (`ExperimentResults`). */
export type ExperimentResults = z.infer<typeof ResultsSchema>;
/** The results query, as validated (numbers still as text: src/api/services/results.ts parses them). */
export type ResultsQuery = z.infer<typeof ResultsQuerySchema>;
/** A variation's counts of one metric. */
export type MetricCounts = z.infer<typeof MetricCountsSchema>;
/** A metric's capping as reported with its results (null: the metric has none). */
export type CappingReport = z.infer<typeof CappingSchema>;
