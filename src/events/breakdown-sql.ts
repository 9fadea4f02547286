/**
 * Breakdowns of the results (docs/statistics.md "Breakdowns"), one SQL text for D1 and the visitor
 * shards: per value of a dimension of the visitors' first exposure (exposures.dims) and variation,
 * the visitors and the metric's per-visitor Σy and Σy² (y from the converters row, 0 without one).
 */
import { BREAKDOWN_DIMENSIONS } from "../shared/event-messages";
import { requireCovariateTotal, type CovariateTotal } from "./covariate-sql";

/** A dimension results can be broken down by. */
export type BreakdownDimension = (typeof BREAKDOWN_DIMENSIONS)[number];

/** Checks a dimension named over RPC or in a query (it is put into SQL text). */
export function requireDimension(dimension: unknown): BreakdownDimension {
  if ((BREAKDOWN_DIMENSIONS as readonly unknown[]).includes(dimension))
    return dimension as BreakdownDimension;
  throw new Error(`not a breakdown dimension: ${String(dimension)}`);
}

/** The value rows without the dimension get (SDK impressions, rows counted before dims). */
export const UNKNOWN_VALUE = "(unknown)";

/** The statement; parameters: ?1 sdkKey, ?2 experiment id, ?3 event id. */
export function breakdownSumsSql(dimension: BreakdownDimension, total: CovariateTotal): string {
  const checked = requireCovariateTotal(total);
  const y = checked === "unique" ? "1" : checked;
  return `SELECT coalesce(json_extract(e.dims, '$.${requireDimension(dimension)}'), '${UNKNOWN_VALUE}') AS value,
      e.variation_id AS variationId, count(*) AS n,
      total(coalesce(y.v, 0)) AS sum, total(coalesce(y.v, 0) * coalesce(y.v, 0)) AS sumSq
    FROM exposures AS e
    LEFT JOIN (SELECT visitor_id, ${y} AS v FROM converters
               WHERE sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3) AS y
      ON y.visitor_id = e.visitor_id
    WHERE e.sdk_key = ?1 AND e.experiment_id = ?2
    GROUP BY 1, 2`;
}

/** One (value, variation) cell's sums. */
export interface BreakdownRow {
  value: string;
  variationId: string;
  n: number;
  sum: number;
  sumSq: number;
}
