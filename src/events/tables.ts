/**
 * The consumer's derived tables (migrations/0002_events.sql, 0003_conversions.sql,
 * 0006_visitor_totals.sql) as plain rows, for comparing the live state with a state computed in
 * memory by the reference model (the tests): the row form of an AggregateState, reading a table's
 * rows for one sdkKey, and a per-row diff. The key and REAL columns here also drive the rebuild's
 * comparison in SQL (src/events/rebuild-sql.ts).
 *
 * seen_events is not here: it is dedupe bookkeeping, pruned by age, not a result.
 */
import type { AggregateState, MetricCell } from "./aggregate";

/** The tables a rebuild recomputes, in the order they are compared and written. */
export const DERIVED_TABLES = [
  "exposures",
  "conversions",
  "converters",
  "variation_daily",
  "metric_daily",
] as const;

export type DerivedTable = (typeof DERIVED_TABLES)[number];

/** A row: column name → value (D1 gives numbers for INTEGER and REAL, strings for TEXT). */
export type Row = Record<string, string | number | null>;

export type TableRows = Record<DerivedTable, Row[]>;

/** metric_daily's primary key (migrations/0002_events.sql). */
export const METRIC_DAILY_KEY = [
  "sdk_key",
  "experiment_id",
  "variation_id",
  "revision",
  "event_id",
  "day",
] as const;

/**
 * The one definition of metric_daily's counted columns (migrations/0002_events.sql,
 * 0006_visitor_totals.sql): the field of the in-memory model's MetricCell
 * (src/events/aggregate.ts) each column holds, in column order. The rebuild's row form (below),
 * the results' reads and sums (src/api/store/metric-daily.ts, src/api/services/results.ts) map
 * between rows and cells through it; the counting SQL (src/events/count-sql.ts) writes the same
 * columns, checked against the model by the tests (test/events/consumer.test.ts).
 */
export const METRIC_DAILY_COLUMNS = {
  converters: "converters",
  events: "events",
  revenueSum: "revenue_sum",
  revenueSumSq: "revenue_sum_sq",
  valueSum: "value_sum",
  valueSumSq: "value_sum_sq",
  eventsVisitorSumSq: "events_visitor_sum_sq",
  revenueVisitorSumSq: "revenue_visitor_sum_sq",
  valueVisitorSumSq: "value_visitor_sum_sq",
} as const satisfies Record<keyof MetricCell, string>;

/** A counted column of metric_daily. */
export type MetricDailyColumn = (typeof METRIC_DAILY_COLUMNS)[keyof MetricCell];

/** The MetricCell fields, in column order. */
// Object.keys is typed string[]; the `satisfies` above makes these exactly MetricCell's keys.
export const METRIC_CELL_FIELDS = Object.keys(METRIC_DAILY_COLUMNS) as Array<keyof MetricCell>;

/** metric_daily's counted columns, in column order. */
export const METRIC_DAILY_VALUES: readonly MetricDailyColumn[] = METRIC_CELL_FIELDS.map(
  (field) => METRIC_DAILY_COLUMNS[field],
);

/** A metric_daily row as D1 returns it: TEXT keys, INTEGER and REAL counts. */
export type MetricDailyRow = Record<(typeof METRIC_DAILY_KEY)[number], string> &
  Record<MetricDailyColumn, number>;

interface TableSpec {
  /** Primary-key columns (sdk_key first, except conversions whose key is uuid). */
  key: readonly string[];
  /** The other columns. */
  values: readonly string[];
  /** REAL columns: sums of floats, compared with a relative tolerance (summation order). */
  real: ReadonlySet<string>;
}

export const TABLE_SPECS: Record<DerivedTable, TableSpec> = {
  exposures: {
    key: ["sdk_key", "experiment_id", "visitor_id"],
    // dims: the first exposure's dimensions (breakdowns), NULL without any.
    values: ["variation_id", "first_at", "revision", "uuid", "dims"],
    real: new Set(),
  },
  conversions: {
    key: ["uuid"],
    values: [
      "sdk_key",
      "visitor_id",
      "event_id",
      "timestamp",
      "day",
      "revenue",
      "value",
      "revision",
    ],
    real: new Set(["value"]),
  },
  converters: {
    key: ["sdk_key", "experiment_id", "event_id", "visitor_id"],
    values: ["variation_id", "converted_at", "uuid", "events", "revenue", "value"],
    real: new Set(["value"]),
  },
  variation_daily: {
    key: ["sdk_key", "experiment_id", "variation_id", "revision", "day"],
    values: ["visitors"],
    real: new Set(),
  },
  metric_daily: {
    key: METRIC_DAILY_KEY,
    values: METRIC_DAILY_VALUES,
    real: new Set([
      "revenue_sum_sq",
      "value_sum",
      "value_sum_sq",
      "revenue_visitor_sum_sq",
      "value_visitor_sum_sq",
    ]),
  },
};

/** Every column of a table, key first. */
export function columnsOf(table: DerivedTable): string[] {
  const spec = TABLE_SPECS[table];
  return [...spec.key, ...spec.values];
}

/** The rows an in-memory state stands for, per table (for every sdkKey in it). */
export function stateRows(state: AggregateState): TableRows {
  const parse = (k: string) => JSON.parse(k) as string[];
  return {
    exposures: [...state.exposures].map(([k, e]) => {
      const [sdk_key, experiment_id, visitor_id] = parse(k) as [string, string, string];
      return {
        sdk_key,
        experiment_id,
        visitor_id,
        variation_id: e.variationId,
        first_at: e.firstAt,
        revision: e.revision,
        uuid: e.uuid,
        dims: e.dims,
      };
    }),
    conversions: [...state.conversions.values()].map((c) => ({
      uuid: c.uuid,
      sdk_key: c.sdkKey,
      visitor_id: c.visitorId,
      event_id: c.eventId,
      timestamp: c.timestamp,
      day: c.day,
      revenue: c.revenue,
      value: c.value,
      revision: c.revision,
    })),
    converters: [...state.converters].map(([k, c]) => {
      const [sdk_key, experiment_id, event_id, visitor_id] = parse(k) as [
        string,
        string,
        string,
        string,
      ];
      return {
        sdk_key,
        experiment_id,
        event_id,
        visitor_id,
        variation_id: c.variationId,
        converted_at: c.convertedAt,
        uuid: c.uuid,
        events: c.events,
        revenue: c.revenue,
        value: c.value,
      };
    }),
    variation_daily: [...state.variationDaily].map(([k, visitors]) => {
      const [sdk_key, experiment_id, variation_id, revision, day] = parse(k) as [
        string,
        string,
        string,
        string,
        string,
      ];
      return { sdk_key, experiment_id, variation_id, revision, day, visitors };
    }),
    metric_daily: [...state.metricDaily].map(([k, m]) => {
      const [sdk_key, experiment_id, variation_id, revision, event_id, day] = parse(k) as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      const row: Row = { sdk_key, experiment_id, variation_id, revision, event_id, day };
      for (const field of METRIC_CELL_FIELDS) row[METRIC_DAILY_COLUMNS[field]] = m[field];
      return row;
    }),
  };
}

const PAGE_ROWS = 5000;

/** Every row of `table` for `sdkKey`, read in pages (rowid order). */
export async function readTableRows(
  db: D1Database,
  table: DerivedTable,
  sdkKey: string,
): Promise<Row[]> {
  const columns = columnsOf(table).join(", ");
  const out: Row[] = [];
  let after = -1;
  for (;;) {
    const { results } = await db
      .prepare(
        `SELECT rowid AS _rowid, ${columns} FROM ${table} WHERE sdk_key = ? AND rowid > ? ORDER BY rowid LIMIT ?`,
      )
      .bind(sdkKey, after, PAGE_ROWS)
      .all<Row & { _rowid: number }>();
    for (const { _rowid, ...row } of results) {
      out.push(row);
      after = _rowid;
    }
    if (results.length < PAGE_ROWS) return out;
  }
}

/** Every sdk_key that has a row in any derived table. */
export async function liveSdkKeys(db: D1Database): Promise<string[]> {
  const union = DERIVED_TABLES.map((t) => `SELECT DISTINCT sdk_key FROM ${t}`).join(" UNION ");
  const { results } = await db.prepare(union).all<{ sdk_key: string }>();
  return results.map((r) => r.sdk_key);
}

/** One row that differs: its key, and the other columns live and rebuilt (null = no such row). */
export interface RowDifference {
  table: DerivedTable;
  key: Row;
  live: Row | null;
  rebuilt: Row | null;
}

const keyOf = (table: DerivedTable, row: Row) =>
  JSON.stringify(TABLE_SPECS[table].key.map((c) => row[c]));

function valuesOf(table: DerivedTable, row: Row): Row {
  const out: Row = {};
  for (const column of TABLE_SPECS[table].values) out[column] = row[column]!;
  return out;
}

/** Equal, with a relative tolerance of 1e-9 for REAL columns (float sums depend on order). */
function sameValue(
  a: string | number | null | undefined,
  b: string | number | null | undefined,
  real: boolean,
) {
  if (a === b) return true;
  if (!real || typeof a !== "number" || typeof b !== "number") return false;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Rows of `table` that differ between `live` and `rebuilt` (compared by primary key). */
export function diffRows(table: DerivedTable, live: Row[], rebuilt: Row[]): RowDifference[] {
  const spec = TABLE_SPECS[table];
  const liveByKey = new Map(live.map((row) => [keyOf(table, row), row]));
  const out: RowDifference[] = [];
  const keyRow = (row: Row): Row => Object.fromEntries(spec.key.map((c) => [c, row[c]!]));
  for (const row of rebuilt) {
    const k = keyOf(table, row);
    const other = liveByKey.get(k);
    liveByKey.delete(k);
    if (other && spec.values.every((c) => sameValue(other[c], row[c], spec.real.has(c)))) continue;
    out.push({
      table,
      key: keyRow(row),
      live: other ? valuesOf(table, other) : null,
      rebuilt: valuesOf(table, row),
    });
  }
  for (const row of liveByKey.values())
    out.push({ table, key: keyRow(row), live: valuesOf(table, row), rebuilt: null });
  return out;
}
