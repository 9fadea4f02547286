/**
 * CUPED's per-visitor sums (docs/statistics.md "CUPED"), one SQL text for D1 and the visitor
 * shards: per variation of an experiment, over its exposed visitors, n and Σy, Σy², Σx, Σx², Σxy,
 * where y is the visitor's total of the metric after their first exposure (the converters row)
 * and x the same total over their stored conversions of the event in a fixed window before it.
 * x is fixed before the assignment and means the same for every visitor, which keeps CUPED
 * unbiased — as long as every visitor's window is still stored (docs/events.md "Retention"):
 * the results check that with the earliest first exposure.
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

/**
 * The covariate's window: a visitor's conversions from COVARIATE_WINDOW_MS before their first
 * exposure up to COVARIATE_GAP_MS before it. The same window for every visitor, so that x means
 * the same thing in every arm whenever the visitor arrived (a ramp or a bandit changes which arm
 * early and late visitors go to); the gap keeps out conversions stamped by a browser whose clock
 * is behind the edge's (they may be caused by the exposure).
 */
export const COVARIATE_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
export const COVARIATE_GAP_MS = 10 * 60 * 1000;

/**
 * The statement; parameters: ?1 sdkKey, ?2 experiment id, ?3 event id, ?4 COVARIATE_WINDOW_MS,
 * ?5 COVARIATE_GAP_MS. Also the earliest first exposure (whether every window is still stored).
 */
export function covariateSumsSql(total: CovariateTotal): string {
  const checked = requireCovariateTotal(total);
  // y: the converters row of the visitor (absent = 0).
  const y = checked === "unique" ? "1" : checked;
  // x: the visitor's stored conversions of the event in the window before their first exposure.
  const x = checked === "unique" ? "1" : checked === "events" ? "count(*)" : `total(c.${checked})`;
  // From the experiment's exposures to their visitors' conversions (CROSS JOIN keeps that order:
  // not every conversion of the sdkKey).
  return `SELECT e.variation_id AS variationId, count(*) AS n, min(e.first_at) AS firstAt,
      total(coalesce(y.v, 0)) AS sumY, total(coalesce(y.v, 0) * coalesce(y.v, 0)) AS sumY2,
      total(coalesce(x.v, 0)) AS sumX, total(coalesce(x.v, 0) * coalesce(x.v, 0)) AS sumX2,
      total(coalesce(x.v, 0) * coalesce(y.v, 0)) AS sumXY
    FROM exposures AS e
    LEFT JOIN (SELECT visitor_id, ${y} AS v FROM converters
               WHERE sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3) AS y
      ON y.visitor_id = e.visitor_id
    LEFT JOIN (SELECT f.visitor_id, ${x} AS v FROM exposures AS f
               CROSS JOIN conversions AS c ON c.sdk_key = f.sdk_key AND c.visitor_id = f.visitor_id
               WHERE f.sdk_key = ?1 AND f.experiment_id = ?2 AND c.event_id = ?3
                 AND c.timestamp >= f.first_at - ?4 AND c.timestamp < f.first_at - ?5
               GROUP BY f.visitor_id) AS x
      ON x.visitor_id = e.visitor_id
    WHERE e.sdk_key = ?1 AND e.experiment_id = ?2
    GROUP BY e.variation_id`;
}

/** One variation's sums, as the statement returns them. */
export interface CovariateRow {
  variationId: string;
  n: number;
  /** The variation's earliest first exposure (ms). */
  firstAt: number;
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
