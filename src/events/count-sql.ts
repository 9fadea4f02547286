/**
 * The SQL that counts one queue batch (docs/events.md "Counting"): at most 12 set-based
 * statements per batch, whatever its size, run by the consumer in ONE `DB.batch()` (one D1
 * transaction). The batch's events travel as JSON parameters read with `json_each`, so the number
 * of statements does not grow with the number of events.
 *
 * `applyPlan` in src/events/aggregate.ts is the reference model of these statements (same
 * numbering); the tests compare the two, and both against the order-free definition `foldEvents`.
 *
 * Parameters: ?1 = the run's random `attempt` token, ?2 = the plan's candidate impressions
 * (JSON), ?3 = the plan's conversions (JSON). An event is "fresh" when its seen_events row carries
 * this run's token, i.e. statement 1 inserted it just now; everything else ignores it.
 *
 * Per-visitor totals (migrations/0006_visitor_totals.sql): converters keeps the visitor's totals
 * over their attributed conversions (events, revenue, value) and metric_daily the increments of
 * the per-visitor sums of squares — conversion k of a visitor, in (timestamp, uuid) order, adds
 * S_k² − S_{k−1}² = x_k·(2·S_k − x_k) to its day (S_k = the running total after it). Statement 4
 * takes a replaced exposure's increments back, 9 keeps the totals, 10 adds the increments of the
 * newly counted conversions and the changes of the later ones' (their running totals grew).
 */
import { utcDay, type BatchPlan } from "./aggregate";

/** `yyyy-mm-dd` (UTC) of a ms timestamp column, as utcDay() computes it in JS. */
const dayOf = (ms: string) => `strftime('%Y-%m-%d', ${ms} / 1000, 'unixepoch')`;

/** Fresh candidate impressions (at most one per sdk_key, experiment_id, visitor_id). */
const FC = `fc AS (
  SELECT json_extract(j.value, '$.u') AS uuid, json_extract(j.value, '$.s') AS sdk_key,
    json_extract(j.value, '$.x') AS experiment_id, json_extract(j.value, '$.v') AS visitor_id,
    json_extract(j.value, '$.a') AS variation_id, json_extract(j.value, '$.r') AS revision,
    json_extract(j.value, '$.t') AS first_at, json_extract(j.value, '$.d') AS day,
    json_extract(j.value, '$.g') AS dims
  FROM json_each(?2) AS j
  JOIN seen_events AS s ON s.uuid = json_extract(j.value, '$.u') AND s.attempt = ?1)`;

const SAME_EXPOSURE = (a: string, b: string) =>
  `${b}.sdk_key = ${a}.sdk_key AND ${b}.experiment_id = ${a}.experiment_id AND ${b}.visitor_id = ${a}.visitor_id`;

/** Before statement 7: the exposures a fresh candidate replaces (it is earlier). */
const RP = `rp AS (
  SELECT e.sdk_key, e.experiment_id, e.visitor_id, e.variation_id, e.revision, e.first_at
  FROM fc JOIN exposures AS e ON ${SAME_EXPOSURE("fc", "e")}
  WHERE (fc.first_at, fc.uuid) < (e.first_at, e.uuid))`;

/** Fresh conversions. */
const FV = `fv AS (
  SELECT json_extract(j.value, '$.u') AS uuid, json_extract(j.value, '$.s') AS sdk_key,
    json_extract(j.value, '$.v') AS visitor_id, json_extract(j.value, '$.e') AS event_id,
    json_extract(j.value, '$.t') AS timestamp, json_extract(j.value, '$.d') AS day,
    json_extract(j.value, '$.rv') AS revenue, json_extract(j.value, '$.vl') AS value,
    json_extract(j.value, '$.r') AS revision
  FROM json_each(?3) AS j
  JOIN seen_events AS s ON s.uuid = json_extract(j.value, '$.u') AND s.attempt = ?1)`;

/** After statement 7: the exposures this run created or replaced (their uuid is fresh). */
const CH = `ch AS (
  SELECT e.sdk_key, e.experiment_id, e.visitor_id, e.variation_id, e.revision, e.first_at
  FROM fc JOIN exposures AS e ON ${SAME_EXPOSURE("fc", "e")} AND e.uuid = fc.uuid)`;

/** The visitor's stored conversions at or after exposure `x`'s first_at. */
const STORED_FROM = (x: string) =>
  `JOIN conversions AS cv ON cv.sdk_key = ${x}.sdk_key AND cv.visitor_id = ${x}.visitor_id AND cv.timestamp >= ${x}.first_at`;

/** Fresh conversion × the visitor's exposures at or before it (fv JOIN e). */
const EXPOSURES_OF_FV = `JOIN exposures AS e ON e.sdk_key = fv.sdk_key AND e.visitor_id = fv.visitor_id AND e.first_at <= fv.timestamp`;

/** After statement 7: e was not created or replaced by this run. */
const E_UNCHANGED = `NOT EXISTS (SELECT 1 FROM seen_events AS s2 WHERE s2.uuid = e.uuid AND s2.attempt = ?1)`;

const CONVERTER_OF = (p: string, eventId: string, visitorId: string) =>
  `r.sdk_key = ${p}.sdk_key AND r.experiment_id = ${p}.experiment_id AND r.event_id = ${eventId} AND r.visitor_id = ${visitorId}`;

const METRIC_KEY = "sdk_key, experiment_id, variation_id, revision, event_id, day";
const VISITOR_KEY = "sdk_key, experiment_id, variation_id, revision, day";

/** metric_daily: adds `excluded` (an upsert's new row) to every counted column. */
export const METRIC_ADD = `converters = converters + excluded.converters, events = events + excluded.events,
    revenue_sum = revenue_sum + excluded.revenue_sum,
    revenue_sum_sq = revenue_sum_sq + excluded.revenue_sum_sq,
    value_sum = value_sum + excluded.value_sum, value_sum_sq = value_sum_sq + excluded.value_sum_sq,
    events_visitor_sum_sq = events_visitor_sum_sq + excluded.events_visitor_sum_sq,
    revenue_visitor_sum_sq = revenue_visitor_sum_sq + excluded.revenue_visitor_sum_sq,
    value_visitor_sum_sq = value_visitor_sum_sq + excluded.value_visitor_sum_sq`;

/** 1. Dedupe: ?1 attempt, ?2 received_at, ?3 JSON [[uuid, type, sdk_key], …]. */
export const SQL_SEEN = `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
  SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), ?2, ?1
  FROM json_each(?3) AS j`;

/**
 * 1b. The per-visitor budget (docs/events.md "The per-visitor budget"): per (sdkKey, visitor,
 * event, day), in (timestamp, uuid) order, a fresh conversion beyond the event's cap (`$.c`,
 * counting the visitor's stored conversions of that day first) stays seen but stops being fresh:
 * its seen_events row gets the attempt token `?1 || ':capped'`, so no later statement counts it.
 * It returns their uuids (`cappedUuids`), which the consumer records for the rebuild.
 */
export const SQL_BUDGET = `WITH b AS (
    SELECT json_extract(j.value, '$.u') AS uuid, json_extract(j.value, '$.s') AS sdk_key,
      json_extract(j.value, '$.v') AS visitor_id, json_extract(j.value, '$.e') AS event_id,
      json_extract(j.value, '$.t') AS timestamp, json_extract(j.value, '$.d') AS day,
      json_extract(j.value, '$.c') AS cap
    FROM json_each(?3) AS j
    JOIN seen_events AS s ON s.uuid = json_extract(j.value, '$.u') AND s.attempt = ?1),
  ranked AS (
    SELECT b.uuid, b.cap, row_number() OVER (PARTITION BY b.sdk_key, b.visitor_id, b.event_id, b.day
        ORDER BY b.timestamp, b.uuid) + (
        SELECT count(*) FROM conversions AS cv WHERE cv.sdk_key = b.sdk_key
          AND cv.visitor_id = b.visitor_id AND cv.event_id = b.event_id AND cv.day = b.day) AS n
    FROM b)
  UPDATE seen_events SET attempt = ?1 || ':capped'
  WHERE uuid IN (SELECT uuid FROM ranked WHERE n > cap)
  RETURNING uuid`;

/**
 * 1c. The dropped conversions are counted in event_drops (migrations/0007_event_limits.sql) on
 * the processing day ?2.
 */
export const SQL_BUDGET_DROPS = `INSERT INTO event_drops (day, sdk_key, kind, reason, count)
  SELECT ?2, s.sdk_key, 'dropped', 'visitor_daily_cap', count(*)
  FROM json_each(?3) AS j
  JOIN seen_events AS s ON s.uuid = json_extract(j.value, '$.u') AND s.attempt = ?1 || ':capped'
  GROUP BY s.sdk_key
  ON CONFLICT (day, sdk_key, kind, reason) DO UPDATE SET count = count + excluded.count`;

/** 2. variation_daily: −1 in the replaced exposure's cell, +1 in the winning candidate's. */
export const SQL_VISITORS = `WITH ${FC}, ${RP}, d AS (
    SELECT sdk_key, experiment_id, variation_id, revision, ${dayOf("first_at")} AS day, -1 AS n FROM rp
    UNION ALL
    SELECT fc.sdk_key, fc.experiment_id, fc.variation_id, fc.revision, fc.day, 1
    FROM fc LEFT JOIN exposures AS e ON ${SAME_EXPOSURE("fc", "e")}
    WHERE e.uuid IS NULL OR (fc.first_at, fc.uuid) < (e.first_at, e.uuid))
  INSERT INTO variation_daily (${VISITOR_KEY}, visitors)
  SELECT sdk_key, experiment_id, variation_id, revision, day, sum(n) FROM d WHERE true
  GROUP BY sdk_key, experiment_id, variation_id, revision, day
  ON CONFLICT (${VISITOR_KEY}) DO UPDATE SET visitors = visitors + excluded.visitors`;

/** 3. variation_daily cells the replaced exposures left empty are deleted. */
export const SQL_VISITORS_EMPTY = `WITH ${FC}, ${RP}
  DELETE FROM variation_daily WHERE visitors <= 0 AND (${VISITOR_KEY}) IN (
    SELECT sdk_key, experiment_id, variation_id, revision, ${dayOf("first_at")} FROM rp)`;

/**
 * A replaced exposure's running totals per event, from 0: every conversion it counted is still
 * stored (they are later than the fresh impression replacing it, so younger than the retention
 * cutoff).
 */
const RUNNING_FROM_0 = `OVER (PARTITION BY rp.sdk_key, rp.experiment_id, rp.visitor_id, cv.event_id
  ORDER BY cv.timestamp, cv.uuid ROWS UNBOUNDED PRECEDING)`;

/**
 * 4. metric_daily, taken back: (a) every stored conversion the replaced exposures counted, with
 * their converters and per-visitor Σx² increments; (b) converters of unchanged exposures whose
 * earliest conversion is now a fresh, earlier one leave the day of the old one.
 */
const TAKE_BACK = `WITH ${FC}, ${RP}, ${FV},
  gone AS (
    SELECT rp.sdk_key, rp.experiment_id, rp.variation_id, rp.revision, cv.event_id, cv.day,
      r.uuid IS NOT NULL AS converters, 1 AS events, cv.revenue AS revenue,
      CAST(cv.revenue AS REAL) * cv.revenue AS revenue_sq, CAST(cv.value AS REAL) AS value,
      CAST(cv.value AS REAL) * cv.value AS value_sq,
      2 * row_number() ${RUNNING_FROM_0} - 1 AS events_vsq,
      CAST(cv.revenue AS REAL) * (2 * sum(CAST(cv.revenue AS REAL)) ${RUNNING_FROM_0} - cv.revenue) AS revenue_vsq,
      CAST(cv.value AS REAL) * (2 * sum(CAST(cv.value AS REAL)) ${RUNNING_FROM_0} - cv.value) AS value_vsq
    FROM rp ${STORED_FROM("rp")}
    LEFT JOIN converters AS r ON ${CONVERTER_OF("rp", "cv.event_id", "rp.visitor_id")} AND r.uuid = cv.uuid
    UNION ALL
    SELECT m.sdk_key, m.experiment_id, m.variation_id, m.revision, m.event_id,
      ${dayOf("r.converted_at")}, 1, 0, 0, 0, 0, 0, 0, 0, 0
    FROM (
      SELECT e.sdk_key, e.experiment_id, e.visitor_id, e.variation_id, e.revision, fv.event_id,
        fv.timestamp, fv.uuid,
        row_number() OVER (PARTITION BY e.sdk_key, e.experiment_id, fv.event_id, e.visitor_id
          ORDER BY fv.timestamp, fv.uuid) AS rn
      FROM fv ${EXPOSURES_OF_FV}
      WHERE NOT EXISTS (SELECT 1 FROM rp WHERE ${SAME_EXPOSURE("e", "rp")})
    ) AS m
    JOIN converters AS r ON ${CONVERTER_OF("m", "m.event_id", "m.visitor_id")}
    WHERE m.rn = 1 AND (m.timestamp, m.uuid) < (r.converted_at, r.uuid)),
  g AS (
    SELECT sdk_key, experiment_id, variation_id, revision, event_id, day,
      sum(converters) AS converters, sum(events) AS events, total(revenue) AS revenue_sum,
      sum(revenue_sq) AS revenue_sum_sq, sum(value) AS value_sum, sum(value_sq) AS value_sum_sq,
      sum(events_vsq) AS events_vsq, sum(revenue_vsq) AS revenue_vsq, sum(value_vsq) AS value_vsq
    FROM gone GROUP BY sdk_key, experiment_id, variation_id, revision, event_id, day)`;

export const SQL_METRICS_TAKE_BACK = `${TAKE_BACK}
  UPDATE metric_daily SET converters = metric_daily.converters - g.converters, events = metric_daily.events - g.events,
    revenue_sum = metric_daily.revenue_sum - g.revenue_sum, revenue_sum_sq = metric_daily.revenue_sum_sq - g.revenue_sum_sq,
    value_sum = metric_daily.value_sum - g.value_sum, value_sum_sq = metric_daily.value_sum_sq - g.value_sum_sq,
    events_visitor_sum_sq = metric_daily.events_visitor_sum_sq - g.events_vsq,
    revenue_visitor_sum_sq = metric_daily.revenue_visitor_sum_sq - g.revenue_vsq,
    value_visitor_sum_sq = metric_daily.value_visitor_sum_sq - g.value_vsq
  FROM g
  WHERE metric_daily.sdk_key = g.sdk_key AND metric_daily.experiment_id = g.experiment_id
    AND metric_daily.variation_id = g.variation_id AND metric_daily.revision = g.revision
    AND metric_daily.event_id = g.event_id AND metric_daily.day = g.day`;

/**
 * 4, on a shard (src/events/visitor-shard.ts): the same take-back written as negative deltas into
 * the shard's scratch metric_daily (empty at the start of each call), which the consumer then
 * adds to D1's (src/events/shard-apply.ts). In a consistent state every cell taken back exists in
 * D1, so adding a negative delta equals the UPDATE above.
 */
export const SQL_METRICS_TAKE_BACK_DELTA = `${TAKE_BACK}
  INSERT INTO metric_daily (${METRIC_KEY}, converters, events, revenue_sum, revenue_sum_sq,
    value_sum, value_sum_sq, events_visitor_sum_sq, revenue_visitor_sum_sq, value_visitor_sum_sq)
  SELECT sdk_key, experiment_id, variation_id, revision, event_id, day, -converters, -events,
    -revenue_sum, -revenue_sum_sq, -value_sum, -value_sum_sq, -events_vsq, -revenue_vsq, -value_vsq
  FROM g WHERE true
  ON CONFLICT (${METRIC_KEY}) DO UPDATE SET
    ${METRIC_ADD}`;

/** 5. metric_daily cells the replaced exposures left without events are deleted. */
export const SQL_METRICS_EMPTY = `WITH ${FC}, ${RP}
  DELETE FROM metric_daily WHERE events <= 0 AND (${METRIC_KEY}) IN (
    SELECT rp.sdk_key, rp.experiment_id, rp.variation_id, rp.revision, cv.event_id, cv.day
    FROM rp ${STORED_FROM("rp")})`;

/** 6. The replaced exposures' converters rows (recomputed by statement 9). */
export const SQL_CONVERTERS_DROP = `WITH ${FC}, ${RP}
  DELETE FROM converters WHERE rowid IN (
    SELECT r.rowid FROM rp JOIN converters AS r
      ON r.sdk_key = rp.sdk_key AND r.visitor_id = rp.visitor_id AND r.experiment_id = rp.experiment_id)`;

/** 7. Exposures: a fresh candidate wins when there is none yet or it is earlier (time, uuid). */
export const SQL_EXPOSURES = `WITH ${FC}
  INSERT INTO exposures (sdk_key, experiment_id, visitor_id, variation_id, first_at, revision, uuid, dims)
  SELECT sdk_key, experiment_id, visitor_id, variation_id, first_at, revision, uuid, dims FROM fc WHERE true
  ON CONFLICT (sdk_key, experiment_id, visitor_id) DO UPDATE SET
    variation_id = excluded.variation_id, first_at = excluded.first_at,
    revision = excluded.revision, uuid = excluded.uuid, dims = excluded.dims
  WHERE (excluded.first_at, excluded.uuid) < (exposures.first_at, exposures.uuid)`;

/** 8. The fresh conversions are stored, for impressions that arrive after them. */
export const SQL_CONVERSIONS = `WITH ${FV}
  INSERT OR IGNORE INTO conversions
    (uuid, sdk_key, visitor_id, event_id, timestamp, day, revenue, value, revision)
  SELECT uuid, sdk_key, visitor_id, event_id, timestamp, day, revenue, value, revision FROM fv`;

/** Attributed (exposure, conversion) pairs: changed exposures × stored, unchanged × fresh. */
const PAIRS = `pairs AS (
    SELECT ch.sdk_key, ch.experiment_id, ch.variation_id, ch.revision, ch.visitor_id, cv.event_id,
      cv.timestamp, cv.day, cv.uuid, cv.revenue, cv.value
    FROM ch ${STORED_FROM("ch")}
    UNION ALL
    SELECT e.sdk_key, e.experiment_id, e.variation_id, e.revision, e.visitor_id, fv.event_id,
      fv.timestamp, fv.day, fv.uuid, fv.revenue, fv.value
    FROM fv ${EXPOSURES_OF_FV} WHERE ${E_UNCHANGED})`;

const EARLIER_CONVERTER = `(excluded.converted_at, excluded.uuid) < (converters.converted_at, converters.uuid)`;

/**
 * 9. Converters: the earliest attributed conversion per (experiment, event, visitor), and the
 * visitor's totals grown by the newly attributed conversions (changed exposures: their rows were
 * dropped by statement 6, so the totals start from 0).
 */
export const SQL_CONVERTERS = `WITH ${FC}, ${FV}, ${CH}, ${PAIRS},
  ranked AS (
    SELECT *, row_number() OVER visitor AS rn,
      count(*) OVER visitor AS n_events, sum(CAST(revenue AS REAL)) OVER visitor AS n_revenue,
      sum(value) OVER visitor AS n_value
    FROM pairs
    WINDOW visitor AS (PARTITION BY sdk_key, experiment_id, event_id, visitor_id
      ORDER BY timestamp, uuid ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))
  INSERT INTO converters (sdk_key, experiment_id, event_id, visitor_id, variation_id, converted_at,
    uuid, events, revenue, value)
  SELECT sdk_key, experiment_id, event_id, visitor_id, variation_id, timestamp, uuid,
    n_events, n_revenue, n_value
  FROM ranked WHERE rn = 1
  ON CONFLICT (sdk_key, experiment_id, event_id, visitor_id) DO UPDATE SET
    variation_id = CASE WHEN ${EARLIER_CONVERTER} THEN excluded.variation_id ELSE converters.variation_id END,
    converted_at = CASE WHEN ${EARLIER_CONVERTER} THEN excluded.converted_at ELSE converters.converted_at END,
    uuid = CASE WHEN ${EARLIER_CONVERTER} THEN excluded.uuid ELSE converters.uuid END,
    events = converters.events + excluded.events, revenue = converters.revenue + excluded.revenue,
    value = converters.value + excluded.value`;

/**
 * Unchanged exposures with fresh attributed conversions, per event: from `since` (the earliest
 * fresh one's timestamp) on, the visitor's running totals change.
 */
const UG = `ug AS (
    SELECT e.sdk_key, e.experiment_id, e.variation_id, e.revision, e.visitor_id, fv.event_id,
      min(fv.timestamp) AS since
    FROM fv ${EXPOSURES_OF_FV} WHERE ${E_UNCHANGED}
    GROUP BY e.sdk_key, e.experiment_id, e.variation_id, e.revision, e.visitor_id, fv.event_id)`;

/**
 * The conversions whose per-visitor Σx² increments change, `is_new` = counted by this run:
 * changed exposures × all their stored conversions (all new), and unchanged exposures × the
 * stored conversions of the ug events from `since` on (new = fresh). Their `is_new` rows are
 * exactly PAIRS.
 */
const VS = `vs AS (
    SELECT ch.sdk_key, ch.experiment_id, ch.variation_id, ch.revision, ch.visitor_id, cv.event_id,
      cv.timestamp, cv.day, cv.uuid, cv.revenue, cv.value, 1 AS is_new
    FROM ch ${STORED_FROM("ch")}
    UNION ALL
    SELECT ug.sdk_key, ug.experiment_id, ug.variation_id, ug.revision, ug.visitor_id, cv.event_id,
      cv.timestamp, cv.day, cv.uuid, cv.revenue, cv.value,
      EXISTS (SELECT 1 FROM seen_events AS s3 WHERE s3.uuid = cv.uuid AND s3.attempt = ?1)
    FROM ug JOIN conversions AS cv ON cv.sdk_key = ug.sdk_key AND cv.visitor_id = ug.visitor_id
      AND cv.event_id = ug.event_id AND cv.timestamp >= ug.since)`;

/**
 * Per vs row: the visitor's totals T (converters, after statement 9), G = Σ x of the row's group
 * in vs, R = Σ x of the group's rows up to and including it, N = Σ x of the group's new rows up
 * to it. T − G is the visitor's total before the group's first row (changed exposures: 0), so a
 * new row's running total is T − G + R and it adds its increment x·(2·(T − G + R) − x); an old
 * row's running total grew by the new rows before it: it adds 2·x·N.
 */
const INC = `inc AS (
    SELECT vs.*, coalesce(r.uuid = vs.uuid, 0) AS is_converter,
      coalesce(r.events, 0) AS t_events, coalesce(r.revenue, 0) AS t_revenue,
      coalesce(r.value, 0) AS t_value,
      count(*) OVER run AS r_events, sum(CAST(vs.revenue AS REAL)) OVER run AS r_revenue,
      sum(CAST(vs.value AS REAL)) OVER run AS r_value,
      sum(vs.is_new) OVER run AS n_events,
      sum(vs.is_new * CAST(vs.revenue AS REAL)) OVER run AS n_revenue,
      sum(vs.is_new * CAST(vs.value AS REAL)) OVER run AS n_value,
      count(*) OVER grp AS g_events, sum(CAST(vs.revenue AS REAL)) OVER grp AS g_revenue,
      sum(CAST(vs.value AS REAL)) OVER grp AS g_value
    FROM vs LEFT JOIN converters AS r ON ${CONVERTER_OF("vs", "vs.event_id", "vs.visitor_id")}
    WINDOW run AS (PARTITION BY vs.sdk_key, vs.experiment_id, vs.visitor_id, vs.event_id
        ORDER BY vs.timestamp, vs.uuid ROWS UNBOUNDED PRECEDING),
      grp AS (PARTITION BY vs.sdk_key, vs.experiment_id, vs.visitor_id, vs.event_id))`;

/**
 * 10. metric_daily, added: every attributed pair (new vs row) as an event, +1 converter where
 * the pair's conversion is (now) the converters row's, and the per-visitor Σx² changes.
 */
export const SQL_METRICS_ADD = `WITH ${FC}, ${FV}, ${CH}, ${UG}, ${VS}, ${INC}
  INSERT INTO metric_daily (${METRIC_KEY}, converters, events, revenue_sum, revenue_sum_sq,
    value_sum, value_sum_sq, events_visitor_sum_sq, revenue_visitor_sum_sq, value_visitor_sum_sq)
  SELECT sdk_key, experiment_id, variation_id, revision, event_id, day,
    sum(is_new * is_converter), sum(is_new), sum(is_new * CAST(revenue AS REAL)),
    sum(is_new * CAST(revenue AS REAL) * revenue), sum(is_new * CAST(value AS REAL)),
    sum(is_new * CAST(value AS REAL) * value),
    sum(CASE WHEN is_new THEN 2 * (t_events - g_events + r_events) - 1 ELSE 2 * n_events END),
    sum(CASE WHEN is_new
      THEN CAST(revenue AS REAL) * (2 * (t_revenue - g_revenue + r_revenue) - revenue)
      ELSE 2 * CAST(revenue AS REAL) * n_revenue END),
    sum(CASE WHEN is_new THEN CAST(value AS REAL) * (2 * (t_value - g_value + r_value) - value)
      ELSE 2 * CAST(value AS REAL) * n_value END)
  FROM inc WHERE true
  GROUP BY sdk_key, experiment_id, variation_id, revision, event_id, day
  ON CONFLICT (${METRIC_KEY}) DO UPDATE SET
    ${METRIC_ADD}`;

/**
 * The uuids statement 1b dropped, from the results of `DB.batch(countStatements(…, plan, …))`
 * (it is the second statement whenever the plan has conversions).
 */
export function cappedUuids(plan: BatchPlan, results: readonly D1Result[]): string[] {
  if (plan.ops.length === 0 || plan.conversions.length === 0) return [];
  return ((results[1]?.results ?? []) as Array<{ uuid: unknown }>)
    .map((row) => row.uuid)
    .filter((uuid): uuid is string => typeof uuid === "string");
}

/** One SQL statement and its parameters (`?1`, `?2`, … in order). */
export interface SqlStep {
  sql: string;
  params: Array<string | number | null>;
}

/**
 * Where the counts go:
 * - `aggregates`: D1 holds everything (the single-database layout): the statements update
 *   variation_daily and metric_daily in place and count budget drops in event_drops;
 * - `deltas`: a visitor shard (src/events/visitor-shard.ts) holds the per-visitor tables and a
 *   scratch variation_daily / metric_daily that is empty at the start of the call; the statements
 *   leave there what this plan changes, for the consumer to add to D1. Emptied cells are
 *   deleted in D1 after adding (src/events/shard-apply.ts) instead of here, and the budget's drops
 *   are counted by the consumer.
 */
export type CountTarget = "aggregates" | "deltas";

/**
 * The statements that count `plan`, in order, for one consumer run `attempt` (a random token)
 * received at `receivedAt`. Statements that cannot do anything for this plan are left out: a
 * batch without impressions needs 7, one without conversions 9, a mixed one 12 (`aggregates`;
 * `deltas` needs 3 fewer). When the plan has conversions, the second step is the budget
 * (statement 1b), whose rows are the uuids it dropped.
 */
export function countSteps(
  plan: BatchPlan,
  attempt: string,
  receivedAt: number,
  target: CountTarget,
): SqlStep[] {
  if (plan.ops.length === 0) return [];
  const seen = JSON.stringify(plan.ops.map((op) => [op.uuid, op.kind, op.sdkKey]));
  const candidates = JSON.stringify(
    plan.candidates.map((op) => ({
      u: op.uuid,
      s: op.sdkKey,
      x: op.experimentId,
      v: op.visitorId,
      a: op.variationId,
      r: op.revision,
      t: op.timestamp,
      g: op.dims,
      d: op.day,
    })),
  );
  const conversions = JSON.stringify(
    plan.conversions.map((op) => ({
      u: op.uuid,
      s: op.sdkKey,
      v: op.visitorId,
      e: op.eventId,
      t: op.timestamp,
      d: op.day,
      rv: op.revenue,
      vl: op.value,
      r: op.revision,
      c: op.cap,
    })),
  );
  const hasImpressions = plan.candidates.length > 0;
  const hasConversions = plan.conversions.length > 0;
  const inPlace = target === "aggregates";
  const withCandidates = (sql: string): SqlStep => ({ sql, params: [attempt, candidates] });
  const withBoth = (sql: string): SqlStep => ({ sql, params: [attempt, candidates, conversions] });

  const steps: SqlStep[] = [{ sql: SQL_SEEN, params: [attempt, receivedAt, seen] }];
  if (hasConversions) {
    steps.push({ sql: SQL_BUDGET, params: [attempt, null, conversions] });
    if (inPlace)
      steps.push({ sql: SQL_BUDGET_DROPS, params: [attempt, utcDay(receivedAt), conversions] });
  }
  if (hasImpressions) {
    steps.push(withCandidates(SQL_VISITORS));
    if (inPlace) steps.push(withCandidates(SQL_VISITORS_EMPTY));
  }
  steps.push(withBoth(inPlace ? SQL_METRICS_TAKE_BACK : SQL_METRICS_TAKE_BACK_DELTA));
  if (hasImpressions) {
    if (inPlace) steps.push(withCandidates(SQL_METRICS_EMPTY));
    steps.push(withCandidates(SQL_CONVERTERS_DROP), withCandidates(SQL_EXPOSURES));
  }
  if (hasConversions) steps.push(withBoth(SQL_CONVERSIONS));
  steps.push(withBoth(SQL_CONVERTERS), withBoth(SQL_METRICS_ADD));
  return steps;
}

/** `countSteps(…, "aggregates")` as D1 statements, for one `DB.batch()` (one transaction). */
export function countStatements(
  db: D1Database,
  plan: BatchPlan,
  attempt: string,
  receivedAt: number,
): D1PreparedStatement[] {
  return countSteps(plan, attempt, receivedAt, "aggregates").map((step) =>
    db.prepare(step.sql).bind(...step.params),
  );
}
