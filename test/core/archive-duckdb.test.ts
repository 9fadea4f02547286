/**
 * The Parquet copy of the archive (docs/events.md "Columnar archive (Parquet)") read by DuckDB,
 * in plain Node: files written by `encodeEventsParquet` into the R2 layout (`parquetKey`) in a
 * temp folder, then the documented query — unique visitors per date, sdkKey, experiment and
 * variation, deduplicated by uuid — must give the numbers this test computes on its own.
 * DuckDB runs in memory with extension autoloading and autoinstalling off: Parquet, Hive
 * partitioning and the JSON functions are built in, nothing is downloaded.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeEventsParquet, parquetKey } from "../../src/events/archive-parquet";
import type {
  ConversionMessage,
  EventMessage,
  ImpressionMessage,
} from "../../src/shared/event-messages";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows of ad-hoc queries
type Row = Record<string, any>;

const MAX_SAFE_CENTS = Number.MAX_SAFE_INTEGER; // 2^53 − 1
/** The second sdkKey has a `/` and a space: its folder is URI-encoded, DuckDB decodes it. */
const SDK_KEYS = ["prod", "shop/eu staging"];
/** (date, hour) partitions, in order; 2026-12-02 00 receives redeliveries of 2026-12-01 23. */
const HOURS: Array<[string, string]> = [
  ["2026-12-01", "13"],
  ["2026-12-01", "23"],
  ["2026-12-02", "00"],
  ["2026-12-02", "09"],
];

interface PartFile {
  day: string;
  hour: string;
  sdkKey: string;
  part: number;
  events: EventMessage[];
}

/** Small deterministic PRNG (mulberry32), so the data set is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildFiles(): PartFile[] {
  const rnd = random(42);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(rnd() * values.length)]!;
  let n = 0;
  const files: PartFile[] = [];
  for (const [day, hour] of HOURS) {
    for (const sdkKey of SDK_KEYS) {
      for (let part = 0; part < 2; part++) {
        const events: EventMessage[] = [];
        const base = Date.parse(`${day}T${hour}:00:00Z`);
        for (let i = 0; i < 40; i++) {
          const common = {
            v: 1 as const,
            uuid: `u-${++n}`,
            sdkKey,
            revision: pick(["7", "8"]),
            // The first events of 2026-12-01 23 part 1 (redelivered on 2026-12-02) have
            // visitors of their own, so a missing dedupe shows in the 2026-12-02 counts.
            visitorId:
              hour === "23" && part === 1 && i < 12
                ? `night-${sdkKey}-${i}`
                : `visitor-${Math.floor(rnd() * 15)}`,
            // Event time may lie before the processing hour (late events).
            timestamp: base - Math.floor(rnd() * 3) * 3_600_000 + Math.floor(rnd() * 3_600_000),
            source: pick(["edge", "browser", "sdk"] as const),
          };
          if (rnd() < 0.75) {
            events.push({
              ...common,
              type: "impression",
              experimentId: pick(["exp-1", "exp-2"]),
              variationId: pick(["A", "B", "C"]),
            } satisfies ImpressionMessage);
          } else {
            events.push({
              ...common,
              type: "conversion",
              eventId: "ev-buy",
              eventKey: "purchase",
              revenue: Math.floor(rnd() * 10_000) - 1_000,
              ...(rnd() < 0.5 ? { value: Math.floor(rnd() * 400) / 4 } : {}),
              ...(rnd() < 0.5 ? { tags: { plan: pick(["free", "pro"]), seats: 3 } } : {}),
            } satisfies ConversionMessage);
          }
        }
        files.push({ day, hour, sdkKey, part, events });
      }
    }
  }
  const file = (day: string, hour: string, sdkKey: string, part: number) =>
    files.find((f) => f.day === day && f.hour === hour && f.sdkKey === sdkKey && f.part === part)!;
  // Redeliveries: within an hour (another part) and across the day boundary (23:xx → 00:xx).
  for (const sdkKey of SDK_KEYS) {
    file("2026-12-01", "13", sdkKey, 1).events.push(
      ...file("2026-12-01", "13", sdkKey, 0).events.slice(0, 5),
    );
    file("2026-12-02", "00", sdkKey, 0).events.push(
      ...file("2026-12-01", "23", sdkKey, 1).events.slice(0, 12),
    );
  }
  // The largest exact revenue, and a refund.
  file("2026-12-02", "09", "prod", 1).events.push(
    {
      v: 1,
      type: "conversion",
      uuid: "big-revenue",
      sdkKey: "prod",
      revision: "8",
      visitorId: "visitor-ü-🎉",
      eventId: "ev-buy",
      eventKey: "purchase",
      timestamp: Date.parse("2026-12-02T09:30:00.123Z"),
      revenue: MAX_SAFE_CENTS,
      // JSON.parse: an object literal's `__proto__` would set the prototype, not a tag.
      tags: JSON.parse('{"plan":"pro","__proto__":"kept","trial":false}'),
      source: "offline",
    },
    {
      v: 1,
      type: "conversion",
      uuid: "refund",
      sdkKey: "prod",
      revision: "8",
      visitorId: "visitor-1",
      eventId: "ev-buy",
      eventKey: "purchase",
      timestamp: Date.parse("2026-12-02T09:31:00Z"),
      revenue: -MAX_SAFE_CENTS,
      source: "sdk",
    },
  );
  return files;
}

/** The same counts as the documented query, computed here without DuckDB. */
function expectedVisitors(files: PartFile[]): Row[] {
  const first = new Map<string, { day: string; event: EventMessage }>();
  for (const f of files) {
    for (const event of f.events)
      if (!first.has(event.uuid)) first.set(event.uuid, { day: f.day, event });
  }
  const cells = new Map<string, Set<string>>();
  for (const { day, event } of first.values()) {
    if (event.type !== "impression") continue;
    const cell = JSON.stringify([day, event.sdkKey, event.experimentId, event.variationId]);
    const visitors = cells.get(cell) ?? new Set<string>();
    cells.set(cell, visitors.add(event.visitorId));
  }
  return [...cells]
    .map(([cell, visitors]) => {
      const [date, sdk_key, experiment_id, variation_id] = JSON.parse(cell) as string[];
      return { date, sdk_key, experiment_id, variation_id, visitors: visitors.size };
    })
    .sort((a, b) =>
      JSON.stringify([a.date, a.sdk_key, a.experiment_id, a.variation_id]) <
      JSON.stringify([b.date, b.sdk_key, b.experiment_id, b.variation_id])
        ? -1
        : 1,
    );
}

const files = buildFiles();
let dir: string;
let instance: DuckDBInstance;
let db: DuckDBConnection;
let glob: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "splitstream-parquet-"));
  for (const f of files) {
    const path = join(dir, parquetKey(f.day, f.sdkKey, f.hour, f.part));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, encodeEventsParquet(f.events));
  }
  glob = `${dir}/parquet/**/*.parquet`.replaceAll("'", "''");
  instance = await DuckDBInstance.create(":memory:", {
    autoinstall_known_extensions: "false",
    autoload_known_extensions: "false",
  });
  db = await instance.connect();
});

afterAll(() => {
  db?.closeSync();
  instance?.closeSync();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const rows = async (sql: string): Promise<Row[]> =>
  (await db.runAndReadAll(sql)).getRowObjectsJson();
const source = () => `read_parquet('${glob}', hive_partitioning = true)`;
/** The deduplicated events: first archived copy of each uuid (docs/events.md). */
const deduped = () =>
  `(SELECT * FROM ${source()} QUALIFY row_number() OVER (PARTITION BY uuid ORDER BY date, hour) = 1)`;

describe("the Parquet archive in DuckDB", () => {
  it("counts unique visitors per date, sdkKey, experiment and variation, deduplicated by uuid", async () => {
    const result = await rows(`
      SELECT CAST(date AS VARCHAR) AS date, sdk_key, experiment_id, variation_id,
             count(DISTINCT visitor_id) AS visitors
      FROM ${deduped()}
      WHERE type = 'impression'
      GROUP BY ALL
      ORDER BY ALL`);
    const expected = expectedVisitors(files);
    expect(expected.length).toBeGreaterThan(20);
    expect(result.map((r) => ({ ...r, visitors: Number(r.visitors) }))).toEqual(expected);
    // Dedupe matters here: without it, redelivered impressions add visitors to 2026-12-02.
    const raw = await rows(`
      SELECT count(DISTINCT (visitor_id, experiment_id, variation_id)) AS n FROM ${source()}
      WHERE type = 'impression' AND date = '2026-12-02'`);
    const clean = await rows(`
      SELECT count(DISTINCT (visitor_id, experiment_id, variation_id)) AS n FROM ${deduped()}
      WHERE type = 'impression' AND date = '2026-12-02'`);
    expect(Number(raw[0]!.n)).toBeGreaterThan(Number(clean[0]!.n));
  });

  it("has every distinct event once after the dedupe, and the raw copies before it", async () => {
    const all = files.flatMap((f) => f.events);
    const [counts] = await rows(`
      SELECT (SELECT count(*) FROM ${source()}) AS raw, (SELECT count(*) FROM ${deduped()}) AS distinct_events`);
    expect(Number(counts!.raw)).toBe(all.length);
    expect(Number(counts!.distinct_events)).toBe(new Set(all.map((e) => e.uuid)).size);
  });

  it("types the partition columns and the timestamp", async () => {
    const [types] = await rows(`
      SELECT typeof(date) AS date, typeof(hour) AS hour, typeof(sdk_key) AS sdk_key,
             typeof(timestamp) AS ts, typeof(revenue) AS revenue, typeof(value) AS value
      FROM ${source()} LIMIT 1`);
    expect(types).toEqual({
      date: "DATE",
      hour: "BIGINT",
      sdk_key: "VARCHAR",
      ts: "TIMESTAMP",
      revenue: "BIGINT",
      value: "DOUBLE",
    });
    // The timestamp is the event's own time in ms, exactly.
    const times = await rows(`SELECT uuid, epoch_ms(timestamp) AS ms FROM ${source()}`);
    const byUuid = new Map(files.flatMap((f) => f.events).map((e) => [e.uuid, e.timestamp]));
    for (const { uuid, ms } of times) expect(Number(ms)).toBe(byUuid.get(uuid));
  });

  it("decodes the URI-encoded sdk_key folder and filters on date", async () => {
    const keys = await rows(`SELECT DISTINCT sdk_key FROM ${source()} ORDER BY sdk_key`);
    expect(keys.map((r) => r.sdk_key)).toEqual([...SDK_KEYS].sort());
    const filtered = await rows(`
      SELECT DISTINCT CAST(date AS VARCHAR) AS date, count(*) OVER () AS n
      FROM ${source()} WHERE date = '2026-12-01'`);
    const expected = files.filter((f) => f.day === "2026-12-01").flatMap((f) => f.events);
    expect(filtered).toEqual([{ date: "2026-12-01", n: String(expected.length) }]);
    const shop = await rows(
      `SELECT count(*) AS n FROM ${source()} WHERE sdk_key = 'shop/eu staging' AND hour = 13`,
    );
    const expectedShop = files.filter((f) => f.sdkKey === "shop/eu staging" && f.hour === "13");
    expect(Number(shop[0]!.n)).toBe(expectedShop.flatMap((f) => f.events).length);
  });

  it("keeps revenue, unicode and tags exactly", async () => {
    const result = await db.runAndReadAll(`
      SELECT uuid, revenue, visitor_id, tags, tags->>'$.plan' AS plan, value, event_key, experiment_id
      FROM ${source()} WHERE uuid IN ('big-revenue', 'refund') ORDER BY uuid`);
    const [big, refund] = result.getRowObjects();
    expect(big!.revenue).toBe(9007199254740991n);
    expect(refund!.revenue).toBe(-9007199254740991n);
    expect(big!.visitor_id).toBe("visitor-ü-🎉");
    expect(JSON.parse(String(big!.tags))).toEqual(
      JSON.parse('{"plan":"pro","__proto__":"kept","trial":false}'),
    );
    expect(big!.plan).toBe("pro");
    expect(big!.value).toBeNull();
    expect(refund!.tags).toBeNull();
    expect(big!.event_key).toBe("purchase");
    expect(big!.experiment_id).toBeNull();
    const [sums] = await rows(`
      SELECT sum(revenue) AS revenue FROM ${source()} WHERE uuid IN ('big-revenue', 'refund')`);
    expect(sums!.revenue).toBe("0");
  });
});
