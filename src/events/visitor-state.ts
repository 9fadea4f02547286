/**
 * Reading per-visitor event state wherever the layout keeps it (src/events/event-layout.ts): D1's
 * tables in the single-database layout, else every visitor shard. Used by the rebuild's compare
 * (src/events/rebuild.ts), the API's visitor inspection and the capped metrics of the results
 * (docs/statistics.md "Capping"), which need the converters' per-visitor totals.
 */
import type { Env } from "../env";
import { loadEventLayout } from "./event-layout";
import { shardOf } from "./shard-map";
import { VISITOR_COLUMNS, VISITOR_TABLES, type VisitorTable } from "./shard-schema";
import { readTableRows, type DerivedTable, type Row } from "./tables";
import {
  COVARIATE_GAP_MS,
  COVARIATE_WINDOW_MS,
  covariateSumsSql,
  type CovariateRow,
  type CovariateTotal,
} from "./covariate-sql";
import { breakdownSumsSql, type BreakdownDimension, type BreakdownRow } from "./breakdown-sql";
import {
  shardStub,
  visitorRowsSql,
  type ConverterQuery,
  type VisitorRowsTable,
} from "./visitor-shard";

type StateEnv = Pick<Env, "DB" | "VISITOR_SHARDS" | "EVENT_SHARDS">;

const isVisitorTable = (table: string): table is VisitorTable =>
  (VISITOR_TABLES as readonly string[]).includes(table);

/** Rows per shard read call. */
const PAGE = 5000;

/** Every row of `table` for `sdkKey`: aggregates from D1, per-visitor rows from the layout. */
export async function readDerivedRows(
  env: StateEnv,
  table: DerivedTable,
  sdkKey: string,
): Promise<Row[]> {
  if (!isVisitorTable(table)) return readTableRows(env.DB, table, sdkKey);
  const { shards } = await loadEventLayout(env);
  if (shards === 0) return readTableRows(env.DB, table, sdkKey);
  const columns = VISITOR_COLUMNS[table];
  const pages = await Promise.all(
    Array.from({ length: shards }, async (_, index) => {
      const out: Row[] = [];
      let after: number | undefined;
      for (;;) {
        const page = await shardStub(env, index).readRows(table, { sdkKey, after, limit: PAGE });
        for (const values of page.rows)
          out.push(Object.fromEntries(columns.map((c, i) => [c, values[i] as string | number])));
        if (page.next === null) return out;
        after = page.next;
      }
    }),
  );
  return pages.flat();
}

/** A per-visitor row: column → value. */
export type StateRow = Record<string, string | number | null>;

/** One visitor's exposures, stored conversions and converters rows, and where they live. */
export interface VisitorStateView {
  /** The shard index, or null in the single-database layout. */
  shard: number | null;
  exposures: StateRow[];
  conversions: StateRow[];
  converters: StateRow[];
}

/** The state kept for one visitor of an sdkKey. */
export async function readVisitorState(
  env: StateEnv,
  sdkKey: string,
  visitorId: string,
): Promise<VisitorStateView> {
  const { shards } = await loadEventLayout(env);
  if (shards > 0) {
    const shard = shardOf(sdkKey, visitorId, shards);
    const rows = await shardStub(env, shard).visitor(sdkKey, visitorId);
    return {
      shard,
      exposures: rows.exposures as StateRow[],
      conversions: rows.conversions as StateRow[],
      converters: rows.converters as StateRow[],
    };
  }
  const rows = async (table: VisitorRowsTable) =>
    (await env.DB.prepare(visitorRowsSql(table)).bind(sdkKey, visitorId).all<StateRow>()).results;
  return {
    shard: null,
    exposures: await rows("exposures"),
    conversions: await rows("conversions"),
    converters: await rows("converters"),
  };
}

/**
 * The converters questions of capped metrics, answered over every shard (the D1 layout answers
 * them with SQL in src/api/store/metric-daily.ts). Null in the single-database layout.
 */
export interface ShardConverters {
  count(q: ConverterQuery): Promise<number>;
  /**
   * The rank-th smallest (1-based) per-visitor total; 0 without converters; null when finding it
   * across shards would move more than MAX_RANK_VALUES totals per shard.
   */
  totalAtRank(q: ConverterQuery, rank: number): Promise<number | null>;
  cappedSums(
    q: ConverterQuery,
    bound: "absolute" | "upper",
    threshold: number,
  ): Promise<Array<{ variationId: string; sum: number; sumSq: number; capped: number }>>;
}

/**
 * Most per-visitor totals one shard sends for a percentile cap (≈ 0.8 MB): a cap near the middle
 * of millions of converters is refused rather than held in one isolate's memory.
 */
export const MAX_RANK_VALUES = 100_000;

/** The shards' converters, or null when the layout keeps them in D1. */
export async function shardConverters(env: StateEnv): Promise<ShardConverters | null> {
  const { shards } = await loadEventLayout(env);
  if (shards === 0) return null;
  const all = <T>(call: (index: number) => Promise<T>) =>
    Promise.all(Array.from({ length: shards }, (_, index) => call(index)));
  const count = async (q: ConverterQuery) =>
    (await all((i) => shardStub(env, i).countConverters(q))).reduce((a, b) => a + b, 0);
  return {
    count,
    // The global k-th smallest is among each shard's k smallest; when k is past the middle, the
    // (n − k + 1)-th largest is among each shard's n − k + 1 largest: at most n/2 values per shard.
    async totalAtRank(q, rank) {
      const n = await count(q);
      if (n === 0 || rank < 1) return 0;
      const k = Math.min(rank, n);
      const fromTop = n - k + 1;
      if (Math.min(k, fromTop) > MAX_RANK_VALUES) return null;
      if (k <= fromTop) {
        const values = (await all((i) => shardStub(env, i).converterTotals(q, "asc", k))).flat();
        values.sort((a, b) => a - b);
        return values[k - 1] ?? 0;
      }
      const values = (
        await all((i) => shardStub(env, i).converterTotals(q, "desc", fromTop))
      ).flat();
      values.sort((a, b) => b - a);
      return values[fromTop - 1] ?? 0;
    },
    async cappedSums(q, bound, threshold) {
      const byVariation = new Map<
        string,
        { variationId: string; sum: number; sumSq: number; capped: number }
      >();
      for (const rows of await all((i) => shardStub(env, i).cappedSums(q, bound, threshold)))
        for (const row of rows) {
          const acc = byVariation.get(row.variationId) ?? {
            variationId: row.variationId,
            sum: 0,
            sumSq: 0,
            capped: 0,
          };
          acc.sum += row.sum;
          acc.sumSq += row.sumSq;
          acc.capped += row.capped;
          byVariation.set(row.variationId, acc);
        }
      return [...byVariation.values()];
    },
  };
}

/**
 * CUPED's per-visitor sums of one metric of an experiment (src/events/covariate-sql.ts), per
 * variation: from D1 in the single-database layout, else summed over every shard.
 */
export async function covariateSums(
  env: StateEnv,
  sdkKey: string,
  experimentId: string,
  eventId: string,
  total: CovariateTotal,
): Promise<Map<string, CovariateRow>> {
  const { shards } = await loadEventLayout(env);
  const parts: CovariateRow[][] =
    shards === 0
      ? [
          (
            await env.DB.prepare(covariateSumsSql(total))
              .bind(sdkKey, experimentId, eventId, COVARIATE_WINDOW_MS, COVARIATE_GAP_MS)
              .all<CovariateRow>()
          ).results,
        ]
      : await Promise.all(
          Array.from({ length: shards }, (_, index) =>
            shardStub(env, index).covariateSums(sdkKey, experimentId, eventId, total),
          ),
        );
  const out = new Map<string, CovariateRow>();
  for (const rows of parts)
    for (const row of rows) {
      const acc = out.get(row.variationId) ?? {
        variationId: row.variationId,
        firstAt: Number.POSITIVE_INFINITY,
        n: 0,
        sumY: 0,
        sumY2: 0,
        sumX: 0,
        sumX2: 0,
        sumXY: 0,
      };
      acc.n += Number(row.n);
      acc.firstAt = Math.min(acc.firstAt, Number(row.firstAt));
      acc.sumY += Number(row.sumY);
      acc.sumY2 += Number(row.sumY2);
      acc.sumX += Number(row.sumX);
      acc.sumX2 += Number(row.sumX2);
      acc.sumXY += Number(row.sumXY);
      out.set(row.variationId, acc);
    }
  return out;
}

/**
 * A breakdown's per-(value, variation) sums of one metric (src/events/breakdown-sql.ts): from D1
 * in the single-database layout, else summed over every shard.
 */
export async function breakdownSums(
  env: StateEnv,
  sdkKey: string,
  experimentId: string,
  eventId: string,
  dimension: BreakdownDimension,
  total: CovariateTotal,
): Promise<BreakdownRow[]> {
  const { shards } = await loadEventLayout(env);
  const parts: BreakdownRow[][] =
    shards === 0
      ? [
          (
            await env.DB.prepare(breakdownSumsSql(dimension, total))
              .bind(sdkKey, experimentId, eventId)
              .all<BreakdownRow>()
          ).results,
        ]
      : await Promise.all(
          Array.from({ length: shards }, (_, index) =>
            shardStub(env, index).breakdownSums(sdkKey, experimentId, eventId, dimension, total),
          ),
        );
  const out = new Map<string, BreakdownRow>();
  for (const rows of parts)
    for (const row of rows) {
      const k = JSON.stringify([row.value, row.variationId]);
      const acc = out.get(k) ?? {
        value: String(row.value),
        variationId: row.variationId,
        n: 0,
        sum: 0,
        sumSq: 0,
      };
      acc.n += Number(row.n);
      acc.sum += Number(row.sum);
      acc.sumSq += Number(row.sumSq);
      out.set(k, acc);
    }
  return [...out.values()];
}
