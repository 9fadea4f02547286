/**
 * The SQL that counts one queue batch (docs/events.md "Counting"): at most 10 set-based
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
 */
import type { BatchPlan } from "./aggregate";

/** `yyyy-mm-dd` (UTC) of a ms timestamp column, as utcDay() computes it in JS. */
const dayOf = (ms: string) => `strftime('%Y-%m-%d', ${ms} / 1000, 'unixepoch')`;

/** Fresh candidate impressions (at most one per sdk_key, experiment_id, visitor_id). */
const FC = `fc AS (
  SELECT json_extract(j.value, '$.u') AS uuid, json_extract(j.value, '$.s') AS sdk_key,
    json_extract(j.value, '$.x') AS experiment_id, json_extract(j.value, '$.v') AS visitor_id,
    json_extract(j.value, '$.a') AS variation_id, json_extract(j.value, '$.r') AS revision,
    json_extract(j.value, '$.t') AS first_at, json_extract(j.value, '$.d') AS day
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

/** 1. Dedupe: ?1 attempt, ?2 received_at, ?3 JSON [[uuid, type, sdk_key], …]. */
export const SQL_SEEN = `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
  SELECT json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'), json_extract(j.value, '$[2]'), ?2, ?1
  FROM json_each(?3) AS j`;

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
 * 4. metric_daily, taken back: (a) every stored conversion the replaced exposures counted, with
 * their converters; (b) converters of unchanged exposures whose earliest conversion is now a
 * fresh, earlier one leave the day of the old one.
 */
export const SQL_METRICS_TAKE_BACK = `WITH ${FC}, ${RP}, ${FV},
  gone AS (
    SELECT rp.sdk_key, rp.experiment_id, rp.variation_id, rp.revision, cv.event_id, cv.day,
      r.uuid IS NOT NULL AS converters, 1 AS events, cv.revenue AS revenue,
      CAST(cv.revenue AS REAL) * cv.revenue AS revenue_sq, CAST(cv.value AS REAL) AS value,
      CAST(cv.value AS REAL) * cv.value AS value_sq
    FROM rp ${STORED_FROM("rp")}
    LEFT JOIN converters AS r ON ${CONVERTER_OF("rp", "cv.event_id", "rp.visitor_id")} AND r.uuid = cv.uuid
    UNION ALL
    SELECT m.sdk_key, m.experiment_id, m.variation_id, m.revision, m.event_id,
      ${dayOf("r.converted_at")}, 1, 0, 0, 0, 0, 0
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
      sum(converters) AS converters, sum(events) AS events, sum(revenue) AS revenue_sum,
      sum(revenue_sq) AS revenue_sum_sq, sum(value) AS value_sum, sum(value_sq) AS value_sum_sq
    FROM gone GROUP BY sdk_key, experiment_id, variation_id, revision, event_id, day)
  UPDATE metric_daily SET converters = metric_daily.converters - g.converters, events = metric_daily.events - g.events,
    revenue_sum = metric_daily.revenue_sum - g.revenue_sum, revenue_sum_sq = metric_daily.revenue_sum_sq - g.revenue_sum_sq,
    value_sum = metric_daily.value_sum - g.value_sum, value_sum_sq = metric_daily.value_sum_sq - g.value_sum_sq
  FROM g
  WHERE metric_daily.sdk_key = g.sdk_key AND metric_daily.experiment_id = g.experiment_id
    AND metric_daily.variation_id = g.variation_id AND metric_daily.revision = g.revision
    AND metric_daily.event_id = g.event_id AND metric_daily.day = g.day`;

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
  INSERT INTO exposures (sdk_key, experiment_id, visitor_id, variation_id, first_at, revision, uuid)
  SELECT sdk_key, experiment_id, visitor_id, variation_id, first_at, revision, uuid FROM fc WHERE true
  ON CONFLICT (sdk_key, experiment_id, visitor_id) DO UPDATE SET
    variation_id = excluded.variation_id, first_at = excluded.first_at,
    revision = excluded.revision, uuid = excluded.uuid
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

/** 9. Converters: the earliest attributed conversion per (experiment, event, visitor). */
export const SQL_CONVERTERS = `WITH ${FC}, ${FV}, ${CH}, ${PAIRS},
  ranked AS (
    SELECT *, row_number() OVER (PARTITION BY sdk_key, experiment_id, event_id, visitor_id
      ORDER BY timestamp, uuid) AS rn
    FROM pairs)
  INSERT INTO converters
    (sdk_key, experiment_id, event_id, visitor_id, variation_id, converted_at, uuid)
  SELECT sdk_key, experiment_id, event_id, visitor_id, variation_id, timestamp, uuid
  FROM ranked WHERE rn = 1
  ON CONFLICT (sdk_key, experiment_id, event_id, visitor_id) DO UPDATE SET
    variation_id = excluded.variation_id, converted_at = excluded.converted_at, uuid = excluded.uuid
  WHERE (excluded.converted_at, excluded.uuid) < (converters.converted_at, converters.uuid)`;

/**
 * 10. metric_daily, added: every attributed pair as an event, and +1 converter where the pair's
 * conversion is (now) the converters row's.
 */
export const SQL_METRICS_ADD = `WITH ${FC}, ${FV}, ${CH}, ${PAIRS}
  INSERT INTO metric_daily (${METRIC_KEY},
    converters, events, revenue_sum, revenue_sum_sq, value_sum, value_sum_sq)
  SELECT p.sdk_key, p.experiment_id, p.variation_id, p.revision, p.event_id, p.day,
    sum(r.uuid IS NOT NULL), count(*), sum(p.revenue), sum(CAST(p.revenue AS REAL) * p.revenue),
    sum(CAST(p.value AS REAL)), sum(CAST(p.value AS REAL) * p.value)
  FROM pairs AS p
  LEFT JOIN converters AS r ON ${CONVERTER_OF("p", "p.event_id", "p.visitor_id")} AND r.uuid = p.uuid
  WHERE true
  GROUP BY p.sdk_key, p.experiment_id, p.variation_id, p.revision, p.event_id, p.day
  ON CONFLICT (${METRIC_KEY}) DO UPDATE SET
    converters = converters + excluded.converters, events = events + excluded.events,
    revenue_sum = revenue_sum + excluded.revenue_sum,
    revenue_sum_sq = revenue_sum_sq + excluded.revenue_sum_sq,
    value_sum = value_sum + excluded.value_sum, value_sum_sq = value_sum_sq + excluded.value_sum_sq`;

/**
 * The statements that count `plan`, in order, for one consumer run `attempt` (a random token)
 * received at `receivedAt`. Statements that cannot do anything for this plan are left out: a
 * batch without impressions needs 5, one without conversions 9, a mixed one 10.
 */
export function countStatements(
  db: D1Database,
  plan: BatchPlan,
  attempt: string,
  receivedAt: number,
): D1PreparedStatement[] {
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
    })),
  );
  const hasImpressions = plan.candidates.length > 0;
  const hasConversions = plan.conversions.length > 0;
  const withCandidates = (sql: string) => db.prepare(sql).bind(attempt, candidates);
  const withBoth = (sql: string) => db.prepare(sql).bind(attempt, candidates, conversions);

  const statements = [db.prepare(SQL_SEEN).bind(attempt, receivedAt, seen)];
  if (hasImpressions)
    statements.push(withCandidates(SQL_VISITORS), withCandidates(SQL_VISITORS_EMPTY));
  statements.push(withBoth(SQL_METRICS_TAKE_BACK));
  if (hasImpressions)
    statements.push(
      withCandidates(SQL_METRICS_EMPTY),
      withCandidates(SQL_CONVERTERS_DROP),
      withCandidates(SQL_EXPOSURES),
    );
  if (hasConversions) statements.push(withBoth(SQL_CONVERSIONS));
  statements.push(withBoth(SQL_CONVERTERS), withBoth(SQL_METRICS_ADD));
  return statements;
}
