/**
 * CUPED's per-visitor sums (docs/statistics.md "CUPED"), one SQL text for D1 and the visitor
 * shards: per variation of an experiment, over its exposed visitors, n and Σy, Σy², Σx, Σx², Σxy,
 * where y is the visitor's total of the metric after their first exposure (the converters row)
 * and x the same total over their stored conversions of the event before it (timestamp <
 * first_at; stored conversions are kept ≈ 31 days, docs/events.md "Retention", so x covers at most
 * that). Both are pre-treatment/post-treatment values of one visitor: x does not depend on the
 * variation, which is what keeps CUPED unbiased.
 */

/** Which per-visitor total a metric adds up (the converters column, or 1 for unique). */
export type CovariateTotal = "unique" | "events" | "revenue" | "value";

/** The metric's per-visitor total: unique → converted (1), count → events, sum → revenue/value. */
export function covariateTotalOf(
  aggregator: string,
  field: string | undefined,
): CovariateTotal | null {
  if (aggregator === "unique") return "unique";
  if (aggregator === "count") return "events";
  if (aggregator === "sum" && (field === "revenue" || field === "value")) return field;
  return null;
}

/** The statement; parameters: ?1 sdkKey, ?2 experiment id, ?3 event id. */
export function covariateSumsSql(total: CovariateTotal): string {
  // y: the converters row of the visitor (absent = 0).
  const y = total === "unique" ? "1" : total;
  // x: the visitor's stored conversions of the event before their first exposure.
  const x = total === "unique" ? "1" : total === "events" ? "count(*)" : `total(c.${total})`;
  return `SELECT e.variation_id AS variationId, count(*) AS n,
      total(coalesce(y.v, 0)) AS sumY, total(coalesce(y.v, 0) * coalesce(y.v, 0)) AS sumY2,
      total(coalesce(x.v, 0)) AS sumX, total(coalesce(x.v, 0) * coalesce(x.v, 0)) AS sumX2,
      total(coalesce(x.v, 0) * coalesce(y.v, 0)) AS sumXY
    FROM exposures AS e
    LEFT JOIN (SELECT visitor_id, ${y} AS v FROM converters
               WHERE sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3) AS y
      ON y.visitor_id = e.visitor_id
    LEFT JOIN (SELECT c.visitor_id, ${x} AS v FROM conversions AS c
               JOIN exposures AS f ON f.sdk_key = c.sdk_key AND f.experiment_id = ?2
                 AND f.visitor_id = c.visitor_id
               WHERE c.sdk_key = ?1 AND c.event_id = ?3 AND c.timestamp < f.first_at
               GROUP BY c.visitor_id) AS x
      ON x.visitor_id = e.visitor_id
    WHERE e.sdk_key = ?1 AND e.experiment_id = ?2
    GROUP BY e.variation_id`;
}

/** One variation's sums, as the statement returns them. */
export interface CovariateRow {
  variationId: string;
  n: number;
  sumY: number;
  sumY2: number;
  sumX: number;
  sumX2: number;
  sumXY: number;
}

/** Checks a total named over RPC (it is put into SQL text). */
export function requireCovariateTotal(total: unknown): CovariateTotal {
  if (total === "unique" || total === "events" || total === "revenue" || total === "value")
    return total;
  throw new Error(`not a covariate total: ${String(total)}`);
}
