/**
 * The SQL of the streaming rebuild (docs/events.md "Rebuild"), the same text for D1 and for the
 * visitor shards' SQLite: the rebuild replays the archive through the consumer's own counting
 * into a *shadow* namespace — every row it writes carries the sdkKey `shadowKey(job, sdkKey)` and,
 * where a row holds an event's uuid, `uuidPrefix(job) + uuid` — next to the live rows, in the same
 * tables and on the same shard. These statements then compare the shadow rows with the live ones
 * inside the database (nothing is loaded whole into memory), swap them in (apply) or drop them.
 *
 * A statement is built with its parameters (`?` in order), because D1 refuses numbered parameters
 * that a statement does not use.
 */
import { TABLE_SPECS, type DerivedTable } from "./tables";

/**
 * What marks a shadow row. No sdkKey the API issues contains `~` (src/api/ids.ts `newSdkKey`), and
 * the replay skips archived events whose sdkKey starts with it.
 */
export const SHADOW_MARK = "~rebuild-";

/** The prefix of job `job`'s shadow sdkKeys and uuids. */
export function shadowPrefix(job: string): string {
  return `${SHADOW_MARK}${job}~`;
}

/** The shadow sdkKey of `sdkKey` in job `job`. */
export function shadowKey(job: string, sdkKey: string): string {
  return shadowPrefix(job) + sdkKey;
}

/** True for an sdkKey the rebuild wrote (never a live one). */
export function isShadowKey(sdkKey: string): boolean {
  return sdkKey.startsWith(SHADOW_MARK);
}

/** A value SQLite binds. */
export type SqlParam = string | number | null;

/** One statement and its parameters. */
export interface Statement {
  sql: string;
  params: SqlParam[];
}

/** The names one comparison or swap works with. */
export interface ShadowNames {
  /** The live sdkKey. */
  live: string;
  /** The job id (the shadow sdkKey and uuid prefix derive from it). */
  job: string;
  /** Stored conversions older than this (ms) are pruned live: not compared, not kept. */
  since: number;
  /**
   * Shards only: exposures of experiments in `purged_experiments` (deleted on purpose after the
   * experiment was archived, src/events/visitor-shard.ts) are not compared.
   */
  purged?: boolean;
}

/** Collects `?` parameters in the order the SQL text uses them. */
class Params {
  readonly list: SqlParam[] = [];
  add(value: SqlParam): string {
    this.list.push(value);
    return "?";
  }
}

/** The REAL-column equality of src/events/tables.ts `diffRows`: relative tolerance 1e-9. */
const realEqual = (a: string, b: string) =>
  `(${a} = ${b} OR abs(${a} - ${b}) <= 1e-9 * max(1, abs(${a}), abs(${b})))`;

/**
 * The statements comparing `table`'s live and shadow rows of one sdkKey: how many rows each side
 * has, how many differ (a row on one side only, or a column that differs), and the first `limit`
 * differences as `{ key, live, rebuilt }` JSON (shadow values shown as they would be live).
 */
export function compareStatements(
  table: DerivedTable,
  names: ShadowNames,
  limit: number,
): { live: Statement; rebuilt: Statement; differing: Statement; samples: Statement } {
  const spec = TABLE_SPECS[table];
  const prefix = shadowPrefix(names.job);
  const shadow = prefix + names.live;
  const cut = prefix.length + 1;
  const isConversions = table === "conversions";
  const hasExperiment = table === "exposures" && names.purged === true;

  // One side's filter (alias a), built into `p`.
  const sideFilter = (p: Params, a: string, key: string) => {
    let sql = `${a}.sdk_key = ${p.add(key)}`;
    if (isConversions) sql += ` AND ${a}.timestamp >= ${p.add(names.since)}`;
    if (hasExperiment)
      sql += ` AND NOT EXISTS (SELECT 1 FROM purged_experiments AS p WHERE p.sdk_key = ${p.add(
        names.live,
      )} AND p.experiment_id = ${a}.experiment_id)`;
    return sql;
  };
  // The shadow row `r` that stands for live row `l`.
  const liveToShadow = (p: Params) =>
    [
      ...spec.key.map((c) =>
        c === "sdk_key"
          ? `r.sdk_key = ${p.add(shadow)}`
          : c === "uuid"
            ? `r.uuid = ${p.add(prefix)} || l.uuid`
            : `r.${c} = l.${c}`,
      ),
      ...(isConversions
        ? [`r.sdk_key = ${p.add(shadow)}`, `r.timestamp >= ${p.add(names.since)}`]
        : []),
    ].join(" AND ");
  // The live row `l` that stands for shadow row `r`.
  const shadowToLive = (p: Params) =>
    [
      ...spec.key.map((c) =>
        c === "sdk_key"
          ? `l.sdk_key = ${p.add(names.live)}`
          : c === "uuid"
            ? `l.uuid = substr(r.uuid, ${p.add(cut)})`
            : `l.${c} = r.${c}`,
      ),
      ...(isConversions
        ? [`l.sdk_key = ${p.add(names.live)}`, `l.timestamp >= ${p.add(names.since)}`]
        : []),
    ].join(" AND ");
  const valuesEqual = (p: Params) =>
    spec.values
      .filter((c) => c !== "sdk_key")
      .map((c) =>
        c === "uuid"
          ? `r.uuid = ${p.add(prefix)} || l.uuid`
          : spec.real.has(c)
            ? realEqual(`l.${c}`, `r.${c}`)
            : `l.${c} IS r.${c}`,
      )
      .join(" AND ");
  // A shadow column as it would read live.
  const shown = (p: Params, c: string) =>
    c === "sdk_key" ? p.add(names.live) : c === "uuid" ? `substr(r.uuid, ${p.add(cut)})` : `r.${c}`;
  const object = (pairs: Array<[string, string]>) =>
    `json_object(${pairs.map(([name, expr]) => `'${name}', ${expr}`).join(", ")})`;

  const liveOnlyOrChanged = (p: Params, select: string) =>
    `SELECT ${select} FROM ${table} AS l LEFT JOIN ${table} AS r ON ${liveToShadow(p)}
     WHERE ${sideFilter(p, "l", names.live)} AND (r.rowid IS NULL OR NOT (${valuesEqual(p)}))`;
  const shadowOnly = (p: Params, select: string) =>
    `SELECT ${select} FROM ${table} AS r
     WHERE ${sideFilter(p, "r", shadow)}
       AND NOT EXISTS (SELECT 1 FROM ${table} AS l WHERE ${shadowToLive(p)})`;

  const count = (key: string): Statement => {
    const p = new Params();
    const sql = `SELECT count(*) AS n FROM ${table} AS x WHERE ${sideFilter(p, "x", key)}`;
    return { sql, params: p.list };
  };

  const differingParams = new Params();
  const differing = `SELECT (SELECT count(*) FROM (${liveOnlyOrChanged(differingParams, "1")}))
    + (SELECT count(*) FROM (${shadowOnly(differingParams, "1")})) AS n`;

  const p = new Params();
  const keyLive = object(spec.key.map((c) => [c, `l.${c}`]));
  const valuesLive = object(spec.values.map((c) => [c, `l.${c}`]));
  const rebuiltA = `CASE WHEN r.rowid IS NULL THEN NULL ELSE ${object(
    spec.values.map((c) => [c, shown(p, c)]),
  )} END`;
  const first = liveOnlyOrChanged(
    p,
    `${keyLive} AS key, ${valuesLive} AS live, ${rebuiltA} AS rebuilt`,
  );
  const keyShadow = object(spec.key.map((c) => [c, shown(p, c)]));
  const valuesShadow = object(spec.values.map((c) => [c, shown(p, c)]));
  const second = shadowOnly(p, `${keyShadow} AS key, NULL AS live, ${valuesShadow} AS rebuilt`);
  const samples = `SELECT key, live, rebuilt FROM (${first}) UNION ALL SELECT key, live, rebuilt FROM (${second}) LIMIT ${p.add(limit)}`;

  return {
    live: count(names.live),
    rebuilt: count(shadow),
    differing: { sql: differing, params: differingParams.list },
    samples: { sql: samples, params: p.list },
  };
}

/** Events the replay counted into the shadow dedupe keys (not the pre-seeded, excluded ones). */
export function foldedCountStatement(job: string, live: string): Statement {
  return {
    sql: `SELECT count(*) AS n FROM seen_events WHERE sdk_key = ? AND attempt <> ?`,
    params: [shadowKey(job, live), EXCLUDED_ATTEMPT],
  };
}

/** The attempt token of a dedupe key the rebuild pre-seeds (an event the consumer did not count). */
export const EXCLUDED_ATTEMPT = "rebuild:excluded";

/**
 * The swap of one sdkKey in `tables` (apply): the live rows go, the shadow rows become live
 * (sdkKey and uuids unprefixed; stored conversions older than `since` dropped, as the live
 * retention would). The dedupe keys the replay wrote join the live ones (`INSERT OR IGNORE`: a
 * live key stays), so that a later delivery of a rebuilt event is a duplicate.
 */
export function adoptStatements(
  tables: ReadonlyArray<DerivedTable | "seen_events">,
  names: Pick<ShadowNames, "live" | "job" | "since">,
): Array<Statement & { table: DerivedTable | "seen_events"; counts: boolean }> {
  const prefix = shadowPrefix(names.job);
  const shadow = prefix + names.live;
  const cut = prefix.length + 1;
  const out: Array<Statement & { table: DerivedTable | "seen_events"; counts: boolean }> = [];
  for (const table of tables) {
    if (table === "seen_events") {
      out.push({
        table,
        counts: false,
        sql: `INSERT OR IGNORE INTO seen_events (uuid, type, sdk_key, received_at, attempt)
          SELECT substr(uuid, ?), type, ?, received_at, 'rebuild' FROM seen_events WHERE sdk_key = ?`,
        params: [cut, names.live, shadow],
      });
      out.push({
        table,
        counts: false,
        sql: "DELETE FROM seen_events WHERE sdk_key = ?",
        params: [shadow],
      });
      continue;
    }
    if (table === "conversions")
      out.push({
        table,
        counts: false,
        sql: "DELETE FROM conversions WHERE sdk_key = ? AND timestamp < ?",
        params: [shadow, names.since],
      });
    out.push({
      table,
      counts: false,
      sql: `DELETE FROM ${table} WHERE sdk_key = ?`,
      params: [names.live],
    });
    const hasUuid =
      TABLE_SPECS[table].key.includes("uuid") || TABLE_SPECS[table].values.includes("uuid");
    // OR IGNORE: a conversion uuid another sdkKey already holds stays that sdkKey's (the consumer
    // dedupes uuids across sdkKeys too); the shadow row left behind is dropped with the job.
    out.push({
      table,
      counts: true,
      sql: hasUuid
        ? `UPDATE OR IGNORE ${table} SET sdk_key = ?, uuid = substr(uuid, ?) WHERE sdk_key = ?`
        : `UPDATE OR IGNORE ${table} SET sdk_key = ? WHERE sdk_key = ?`,
      params: hasUuid ? [names.live, cut, shadow] : [names.live, shadow],
    });
  }
  return out;
}

/**
 * Deletes every shadow row of job `job` (any sdkKey) from `tables` — or, with `null`, of every
 * job (a new job's cleaning: nothing of its own exists yet).
 */
export function dropStatements(
  tables: ReadonlyArray<DerivedTable | "seen_events">,
  job: string | null,
): Statement[] {
  const prefix = job === null ? SHADOW_MARK : shadowPrefix(job);
  // A key range, not LIKE: `_` in a prefix is a LIKE wildcard. (seen_events has no sdk_key index:
  // there the range is a scan of the table.)
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  return tables.map((table) => ({
    sql: `DELETE FROM ${table} WHERE sdk_key >= ? AND sdk_key < ?`,
    params: [prefix, end],
  }));
}
