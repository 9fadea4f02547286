/**
 * Reads of the event consumer's aggregates (docs/events.md, docs/statistics.md): variation_daily
 * (visitors) and metric_daily (metric counts) of one experiment under one sdkKey and day range,
 * the per-visitor totals of `converters` that capping holds to a threshold, and the lookups the
 * aggregates need (an environment's sdkKey, the metrics' event keys). The tables are written
 * only by the consumer (src/events/count-sql.ts); metric_daily's columns are defined once in
 * src/events/tables.ts.
 */
import { METRIC_DAILY_VALUES, type MetricDailyRow } from "../../events/tables";
import { all, first } from "./db";
import type { EnvironmentRow } from "./rows";

/** An environment with the sdkKey that events are counted under and its current revision. */
export type SdkEnvironment = Pick<EnvironmentRow, "id" | "key" | "sdk_key" | "revision">;

/** The environment of project `projectId` with key `key`, or null. */
export async function findSdkEnvironment(
  db: D1Database,
  projectId: string,
  key: string,
): Promise<SdkEnvironment | null> {
  return first<SdkEnvironment>(
    db,
    "SELECT id, key, sdk_key, revision FROM environments WHERE project_id = ? AND key = ?",
    projectId,
    key,
  );
}

/** UTC days `yyyy-mm-dd`, inclusive; null = unbounded. */
export interface DayRange {
  from: string | null;
  to: string | null;
}

/** A variation_daily row of one experiment (migrations/0002_events.sql). */
export interface VariationDailyRow {
  variation_id: string;
  revision: string;
  day: string;
  visitors: number;
}

/** A metric_daily row of one experiment (its sdk_key and experiment_id left out). */
export type ExperimentMetricDailyRow = Omit<MetricDailyRow, "sdk_key" | "experiment_id">;

const IN_RANGE =
  "sdk_key = ? AND experiment_id = ? AND (? IS NULL OR day >= ?) AND (? IS NULL OR day <= ?)";

const rangeParams = (sdkKey: string, experimentId: string, range: DayRange) => [
  sdkKey,
  experimentId,
  range.from,
  range.from,
  range.to,
  range.to,
];

/** The experiment's variation_daily rows under `sdkKey` whose day is in `range`. */
export async function listVariationDaily(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  range: DayRange,
): Promise<VariationDailyRow[]> {
  return all<VariationDailyRow>(
    db,
    `SELECT variation_id, revision, day, visitors FROM variation_daily WHERE ${IN_RANGE}`,
    ...rangeParams(sdkKey, experimentId, range),
  );
}

/** The experiment's metric_daily rows under `sdkKey` whose day is in `range`. */
export async function listMetricDaily(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  range: DayRange,
): Promise<ExperimentMetricDailyRow[]> {
  return all<ExperimentMetricDailyRow>(
    db,
    `SELECT variation_id, revision, event_id, day, ${METRIC_DAILY_VALUES.join(", ")} FROM metric_daily WHERE ${IN_RANGE}`,
    ...rangeParams(sdkKey, experimentId, range),
  );
}

/** The per-visitor total of `converters` a capped metric adds up (migrations/0006_visitor_totals.sql). */
export type ConverterTotal = "events" | "revenue" | "value";

const CONVERTERS_OF_EVENT = "sdk_key = ?1 AND experiment_id = ?2 AND event_id = ?3";

/** How many visitors of the experiment converted on `eventId` (its converters rows). */
export async function countConverters(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  eventId: string,
): Promise<number> {
  const row = await first<{ n: number }>(
    db,
    `SELECT count(*) AS n FROM converters WHERE ${CONVERTERS_OF_EVENT}`,
    sdkKey,
    experimentId,
    eventId,
  );
  return Number(row?.n ?? 0);
}

/** The `rank`-th smallest (1-based) per-visitor `total` of the converters of `eventId`; 0 without one. */
export async function findConverterTotalAtRank(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  eventId: string,
  total: ConverterTotal,
  rank: number,
): Promise<number> {
  const row = await first<{ x: number }>(
    db,
    `SELECT ${total} AS x FROM converters WHERE ${CONVERTERS_OF_EVENT} ORDER BY ${total} LIMIT 1 OFFSET ?4`,
    sdkKey,
    experimentId,
    eventId,
    rank - 1,
  );
  return Number(row?.x ?? 0);
}

/** Per variation: Σ and Σ² of the capped per-visitor totals, and how many visitors were capped. */
export interface CappedSums {
  variationId: string;
  sum: number;
  sumSq: number;
  capped: number;
}

/**
 * The converters of `eventId` per variation with each visitor's `total` held to `threshold`:
 * `absolute` clamps to ±threshold (a refund is an outlier too), `upper` only from above (a
 * percentile cap).
 */
export async function sumCappedTotals(
  db: D1Database,
  sdkKey: string,
  experimentId: string,
  eventId: string,
  total: ConverterTotal,
  bound: "absolute" | "upper",
  threshold: number,
): Promise<CappedSums[]> {
  const x = total;
  const capped = bound === "absolute" ? `max(min(${x}, ?4), -?4)` : `min(${x}, ?4)`;
  const rows = await all<{ variation_id: string; sum: number; sum_sq: number; capped: number }>(
    db,
    `SELECT variation_id, total(${capped}) AS sum, total(${capped} * ${capped}) AS sum_sq,
       total(${capped} <> ${x}) AS capped
     FROM converters WHERE ${CONVERTERS_OF_EVENT} GROUP BY variation_id`,
    sdkKey,
    experimentId,
    eventId,
    threshold,
  );
  return rows.map((row) => ({
    variationId: row.variation_id,
    sum: Number(row.sum),
    sumSq: Number(row.sum_sq),
    capped: Number(row.capped),
  }));
}

/** The keys of the events `ids` (those that exist). */
export async function listEventKeys(
  db: D1Database,
  ids: readonly string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  const rows = await all<{ id: string; key: string }>(
    db,
    `SELECT id, key FROM events WHERE id IN (${ids.map(() => "?").join(", ")})`,
    ...ids,
  );
  for (const row of rows) out.set(row.id, row.key);
  return out;
}
