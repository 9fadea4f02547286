/**
 * Experiment results as CSV (docs/api.md "Results"): one row per (metric, variation) of the
 * results document (src/api/services/results.ts), for the API's `results.csv` and the admin's
 * download.
 */
import type { ExperimentResults } from "../schemas/results";

/** The CSV's columns, in order (its header line). */
export const RESULTS_CSV_COLUMNS = [
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
  "cuped_variance_reduction",
  "cuped_difference",
  "cuped_difference_se",
] as const;

/**
 * A field, quoted when it holds a quote, comma or line break (RFC 4180); empty for none. Text that
 * a spreadsheet would run as a formula (= + - @, tab, CR first — a segment value comes from any
 * visitor's utm_source) gets a leading apostrophe; numbers are written as they are.
 */
function csvCell(value: string | number | boolean | null | undefined): string {
  let text = value === null || value === undefined ? "" : String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(value)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** The columns of a breakdown's CSV (`?breakdown=…`): one row per segment, metric and variation. */
export const BREAKDOWN_CSV_COLUMNS = [
  "dimension",
  "value",
  "metric_event_id",
  "metric_event_key",
  "variation_id",
  "variation_key",
  "visitors",
  "mean",
  "lift",
  "lift_ci_low",
  "lift_ci_high",
  "p_value",
  "q_value",
  "verdict",
] as const;

function breakdownCsv(
  results: ExperimentResults,
  breakdown: NonNullable<ExperimentResults["breakdown"]>,
): string {
  const lines = [BREAKDOWN_CSV_COLUMNS.join(",")];
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key;
  const eventKeyOf = (id: string) => results.metrics.find((m) => m.eventId === id)?.eventKey;
  for (const segment of breakdown.segments)
    for (const metric of segment.metrics)
      for (const c of metric.variations)
        lines.push(
          [
            breakdown.dimension,
            segment.value,
            metric.eventId,
            eventKeyOf(metric.eventId),
            c.variationId,
            keyOf(c.variationId),
            c.visitors,
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
  return `${lines.join("\r\n")}\r\n`;
}

/**
 * One CSV row per (metric, variation), with a header line; CRLF line ends (RFC 4180). Results
 * asked with `breakdown` give one row per segment, metric and variation instead
 * (BREAKDOWN_CSV_COLUMNS).
 */
export function resultsCsv(results: ExperimentResults): string {
  if (results.breakdown) return breakdownCsv(results, results.breakdown);
  const lines = [RESULTS_CSV_COLUMNS.join(",")];
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
          c.cuped?.varianceReduction,
          c.cuped?.difference.estimate,
          c.cuped?.difference.se,
        ]
          .map(csvCell)
          .join(","),
      );
    }
  return `${lines.join("\r\n")}\r\n`;
}

/** The download's file name: `<experiment key>-results.csv`, reduced to `[A-Za-z0-9_.-]`. */
export function resultsCsvFilename(results: Pick<ExperimentResults, "experimentKey">): string {
  return `${results.experimentKey}-results.csv`.replace(/[^\w.-]/g, "_");
}
