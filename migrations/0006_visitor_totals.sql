-- Per-visitor sufficient statistics (docs/events.md "Per-visitor totals", docs/statistics.md
-- "Inputs"): a count or sum metric's x is the visitor's TOTAL over their attributed conversions,
-- so its Σx² must square totals, not events.
--
-- converters (one row per experiment, event and visitor): the visitor's running totals over all
-- of their conversions of the event attributed to their exposure — conversions counted, revenue
-- (integer cents) and value. Kept exact by the consumer under the order-independent attribution
-- (src/events/count-sql.ts statements 9 and 10); never pruned.
ALTER TABLE converters ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE converters ADD COLUMN revenue INTEGER NOT NULL DEFAULT 0;
ALTER TABLE converters ADD COLUMN value REAL NOT NULL DEFAULT 0;

-- metric_daily: per-visitor sums of squares of those totals, as INCREMENTS: a visitor's k-th
-- attributed conversion (in (timestamp, uuid) order) adds S_k² − S_{k−1}² to the cell of its own
-- day (S_k = the visitor's running total after it). Summed over all days (and revisions) of a
-- variation they are exactly Σ over its visitors of (total)²; summed up to a day D they are
-- Σ (total up to D)².
ALTER TABLE metric_daily ADD COLUMN events_visitor_sum_sq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE metric_daily ADD COLUMN revenue_visitor_sum_sq REAL NOT NULL DEFAULT 0;
ALTER TABLE metric_daily ADD COLUMN value_visitor_sum_sq REAL NOT NULL DEFAULT 0;

-- Backfill from the stored conversions (migration 0003), with the consumer's own definitions.
-- Exact for every visitor whose attributed conversions are all still stored (the conversions
-- table keeps the last ~31 days); older conversions are pruned and missing from the totals —
-- `splitstream rebuild --apply` recomputes everything from the R2 archive (docs/events.md).
UPDATE converters SET events = t.events, revenue = t.revenue, value = t.value
FROM (
  SELECT e.sdk_key, e.experiment_id, cv.event_id, e.visitor_id, count(*) AS events,
    sum(cv.revenue) AS revenue, sum(cv.value) AS value
  FROM exposures AS e
  JOIN conversions AS cv
    ON cv.sdk_key = e.sdk_key AND cv.visitor_id = e.visitor_id AND cv.timestamp >= e.first_at
  GROUP BY e.sdk_key, e.experiment_id, cv.event_id, e.visitor_id
) AS t
WHERE converters.sdk_key = t.sdk_key AND converters.experiment_id = t.experiment_id
  AND converters.event_id = t.event_id AND converters.visitor_id = t.visitor_id;

UPDATE metric_daily SET events_visitor_sum_sq = g.events_sq, revenue_visitor_sum_sq = g.revenue_sq,
  value_visitor_sum_sq = g.value_sq
FROM (
  SELECT sdk_key, experiment_id, variation_id, revision, event_id, day,
    sum(2 * n - 1) AS events_sq, sum(CAST(revenue AS REAL) * (2 * s_revenue - revenue)) AS revenue_sq,
    sum(CAST(value AS REAL) * (2 * s_value - value)) AS value_sq
  FROM (
    SELECT e.sdk_key, e.experiment_id, e.variation_id, e.revision, cv.event_id, cv.day,
      cv.revenue, cv.value,
      row_number() OVER w AS n, sum(cv.revenue) OVER w AS s_revenue,
      sum(CAST(cv.value AS REAL)) OVER w AS s_value
    FROM exposures AS e
    JOIN conversions AS cv
      ON cv.sdk_key = e.sdk_key AND cv.visitor_id = e.visitor_id AND cv.timestamp >= e.first_at
    WINDOW w AS (PARTITION BY e.sdk_key, e.experiment_id, e.visitor_id, cv.event_id
      ORDER BY cv.timestamp, cv.uuid ROWS UNBOUNDED PRECEDING)
  )
  GROUP BY sdk_key, experiment_id, variation_id, revision, event_id, day
) AS g
WHERE metric_daily.sdk_key = g.sdk_key AND metric_daily.experiment_id = g.experiment_id
  AND metric_daily.variation_id = g.variation_id AND metric_daily.revision = g.revision
  AND metric_daily.event_id = g.event_id AND metric_daily.day = g.day;
