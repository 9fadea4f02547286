/**
 * Consumer throughput and storage: how fast the EVENTS queue consumer counts events, and what it
 * leaves behind, with per-visitor state in D1 (layout 0, the single-database consumer) and in
 * visitor shards (layouts 4 and 8: SQLite Durable Objects, D1 keeping the daily aggregates) —
 * measured from the outside, one fresh world per layout, the same events and phases in each.
 * The worlds run side by side (each its own `wrangler dev`, state and queue) and each phase runs
 * in every world in turn (D1, 4 shards, 8 shards, then the next phase), so a change in the
 * machine's load during the bench hits every layout alike. They all run one bundle of src/ made
 * at the start (`wrangler deploy --dry-run`): the same code, and no reload when src/ is edited
 * during the bench (a reload drops the local queue's in-flight batch and stalls the consumer).
 *
 * World per layout: Splitstream under real `wrangler dev` with its queue consumer (max_batch_size
 * 100, wrangler.toml) and `--var EVENT_SHARDS:N`, a fresh local state, a project and a running
 * two-variation experiment created through the management API (bench/lib/events-world.ts
 * `startConsumerWorld`); the layout is recorded before the first event and checked.
 *
 * Two phases, each K events through `POST /_ss/v1/events` (SDK batches of 100 visitors, 4
 * requests in flight), then `GET /_ss/api/v1/experiments/{id}/results` polled every 100 ms until
 * the results count all K:
 *   1. impressions: K new visitors (results: Σ visitors = K);
 *   2. conversions: a purchase with revenue for each of them (results: Σ purchase events = K).
 * Reported per phase and layout: the consumer's rate = events counted between 10 % and 90 % of K
 * ÷ the time between those two polls (start-up and the last poll's granularity left out), and the
 * whole phase, first POST → all K counted, as events/s.
 *
 * Storage per layout, per event of the 2K: D1 bytes (SQLite `dbstat` on the local D1 file: Σ of
 * the pages in use after the run minus the same before the first event, i.e. after migrations
 * and the API set-up; per table with its indexes) and shard bytes (Σ of every shard's
 * `databaseSize` from `GET /_ss/api/v1/admin/event-layout?stats=true` after the run minus the
 * same right after the layout was recorded — migrated, empty shards; per-table rows from the same
 * endpoint, per-table bytes from `dbstat` on the shards' local SQLite files). K is a multiple of
 * 100, so every queue batch is full and none waits for max_batch_timeout.
 *
 * The local queue is Miniflare's simulation (one batch at a time, in this process's workerd, on
 * the same 2 cores as the ingest requests and the polling); D1 is local SQLite; every Durable
 * Object call is an in-process call inside the same workerd (no network, no other machine). What
 * that means against production is in docs/benchmarks.md "events-consumer" and docs/scaling.md.
 *
 * Environment knobs (for a quick look; the documented figures use the defaults):
 * BENCH_CONSUMER_LAYOUTS="0,4,8" (shard counts; 0 = D1), BENCH_CONSUMER_K=10000 (multiple of 100).
 */
import { quantile } from "./lib/harness";
import type { Row } from "./lib/types";
import { join } from "node:path";
import {
  bundleWorker,
  databaseSizes,
  eventsWorkerConfig,
  localD1File,
  localShardFiles,
  newVisitorId,
  sdkBatch,
  sdkEventsRequest,
  startConsumerWorld,
  type ConsumerWorld,
  type DatabaseSizes,
  type EventLayoutBody,
  type ResultsBody,
} from "./lib/events-world";
import { currentLoad, loadRow, tempDir } from "./lib/wrangler-dev";

export const name = "events-consumer";
export const title =
  "Event consumer: events/s and bytes/event, per-visitor state in D1 vs visitor shards (wrangler dev queue → D1 / Durable Objects)";
export const order = 51;

const K = Number(process.env.BENCH_CONSUMER_K ?? 10_000);
const LAYOUTS = (process.env.BENCH_CONSUMER_LAYOUTS ?? "0,4,8")
  .split(",")
  .map((s) => Number(s.trim()));
const BATCH_VISITORS = 100;
const IN_FLIGHT = 4;
const POLL_MS = 100;
const PHASE_TIMEOUT_MS = 40_000;
/** The per-visitor tables (D1's in layout 0, each shard's otherwise). */
const VISITOR_TABLES = ["seen_events", "exposures", "conversions", "converters"] as const;

interface Phase {
  label: string;
  kind: "impressions" | "conversions";
  count: (r: ResultsBody) => number;
}

const PHASES: Phase[] = [
  {
    label: "impressions",
    kind: "impressions",
    count: (r) => r.variations.reduce((n, v) => n + v.visitors, 0),
  },
  {
    label: "conversions (purchase with revenue)",
    kind: "conversions",
    count: (r) => (r.metrics[0]?.variations ?? []).reduce((n, v) => n + v.events, 0),
  },
];

interface PhaseResult {
  samples: Array<{ t: number; n: number }>;
  ingestMs: number;
  totalMs: number;
  final: number;
  requestLatencies: number[];
}

async function runPhase(
  world: ConsumerWorld,
  phase: Phase,
  visitors: string[],
  before: number,
): Promise<PhaseResult> {
  const batches: string[][] = [];
  for (let i = 0; i < visitors.length; i += BATCH_VISITORS)
    batches.push(visitors.slice(i, i + BATCH_VISITORS));
  const start = performance.now();
  const requestLatencies: number[] = [];
  let next = 0;
  const sender = async (): Promise<void> => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const t0 = performance.now();
      const response = await fetch(
        `${world.ours.url}/_ss/v1/events`,
        sdkEventsRequest(
          sdkBatch(world.ids, batch, {
            impressions: phase.kind === "impressions",
            conversions: phase.kind === "conversions",
          }),
        ),
      );
      const text = await response.text();
      requestLatencies.push(performance.now() - t0);
      if (response.status !== 204)
        throw new Error(`POST /_ss/v1/events: HTTP ${response.status} ${text}`);
    }
  };
  let ingestMs = Number.NaN;
  let ingestError: unknown;
  const ingest = Promise.all(Array.from({ length: IN_FLIGHT }, sender)).then(
    () => void (ingestMs = performance.now() - start),
    (error: unknown) => void (ingestError = error),
  );

  const samples: Array<{ t: number; n: number }> = [];
  let final: number;
  for (;;) {
    const n = phase.count(await world.results()) - before;
    const t = performance.now() - start;
    samples.push({ t, n });
    final = n;
    if (n >= visitors.length || t > PHASE_TIMEOUT_MS || ingestError !== undefined) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  await ingest;
  if (ingestError !== undefined) throw ingestError;
  return {
    samples,
    ingestMs,
    totalMs: samples.at(-1)!.t,
    final,
    requestLatencies,
  };
}

/** Events counted per second between the first polls at ≥ lo·K and ≥ hi·K. */
function rate(samples: Array<{ t: number; n: number }>, k: number, lo = 0.1, hi = 0.9): number {
  const a = samples.find((s) => s.n >= lo * k);
  const b = samples.find((s) => s.n >= hi * k);
  if (!a || !b || b.t <= a.t) return Number.NaN;
  return ((b.n - a.n) * 1000) / (b.t - a.t);
}

/** Per table: rows and bytes added between two readings (tables that did not change left out). */
interface TableDelta {
  table: string;
  rows: number;
  bytes: number;
}

function tableDeltas(before: DatabaseSizes, after: DatabaseSizes): TableDelta[] {
  const names = new Set([...Object.keys(before.tables), ...Object.keys(after.tables)]);
  return [...names]
    .map((table) => ({
      table,
      rows: (after.tables[table]?.rows ?? 0) - (before.tables[table]?.rows ?? 0),
      bytes: (after.tables[table]?.bytes ?? 0) - (before.tables[table]?.bytes ?? 0),
    }))
    .filter((d) => d.rows !== 0 || d.bytes !== 0)
    .sort((a, b) => b.bytes - a.bytes || a.table.localeCompare(b.table));
}

/** Σ over several SQLite files (the shards'), table by table. */
function sumSizes(all: DatabaseSizes[]): DatabaseSizes {
  const out: DatabaseSizes = { bytes: 0, tables: {} };
  for (const one of all) {
    out.bytes += one.bytes;
    for (const [table, { bytes, rows }] of Object.entries(one.tables)) {
      const t = (out.tables[table] ??= { bytes: 0, rows: 0 });
      t.bytes += bytes;
      t.rows += rows;
    }
  }
  return out;
}

async function shardFileSizes(persistTo: string): Promise<DatabaseSizes> {
  return sumSizes(await Promise.all(localShardFiles(persistTo).map((f) => databaseSizes(f))));
}

const shardBytes = (layout: EventLayoutBody): number =>
  (layout.shardStats ?? []).reduce((n, s) => n + s.bytes, 0);

const shardRows = (layout: EventLayoutBody, table: (typeof VISITOR_TABLES)[number]): number =>
  (layout.shardStats ?? []).reduce((n, s) => n + s.rows[table], 0);

const int = (n: number): string => Math.round(n).toLocaleString("en-US");

/** "seen_events 20,000 rows × 190 B" (or "+3 rows, 4,096 B" for aggregate tables). */
function describeDelta(d: TableDelta): string {
  if (d.rows > 0 && d.rows >= 100)
    return `${d.table} ${int(d.rows)} rows × ${int(d.bytes / d.rows)} B`;
  return `${d.table} ${d.rows >= 0 ? "+" : ""}${int(d.rows)} rows, ${int(d.bytes)} B`;
}

interface LayoutResult {
  shards: number;
  where: string;
  phases: PhaseResult[];
  d1: { before: DatabaseSizes; after: DatabaseSizes };
  stats: { before: EventLayoutBody; after: EventLayoutBody };
  files: { before: DatabaseSizes; after: DatabaseSizes };
}

interface Started {
  shards: number;
  where: string;
  world: ConsumerWorld;
  d1File: string;
  d1Before: DatabaseSizes;
  statsBefore: EventLayoutBody;
  filesBefore: DatabaseSizes;
  phases: PhaseResult[];
}

/** A fresh world for `shards`, and the sizes of its D1 and its empty shards before any event. */
async function startLayout(shards: number, script: string): Promise<Started> {
  const world = await startConsumerWorld({ shards, script });
  try {
    const d1File = localD1File(world.persistTo);
    return {
      shards,
      where: shards === 0 ? "D1 (layout 0)" : `${shards} shards`,
      world,
      d1File,
      d1Before: await databaseSizes(d1File),
      statsBefore: await world.eventLayout(),
      filesBefore: await shardFileSizes(world.persistTo),
      phases: [],
    };
  } catch (error) {
    await world.stop();
    throw error;
  }
}

async function runLayoutPhase(s: Started, phase: Phase, visitors: string[]): Promise<void> {
  const before = phase.count(await s.world.results());
  const r = await runPhase(s.world, phase, visitors, before);
  s.phases.push(r);
  if (r.final !== visitors.length)
    console.log(
      `events-consumer: ${s.where}, ${phase.kind}: ${r.final} of ${visitors.length} counted; wrangler dev's last output:\n${s.world.ours.output()}`,
    );
}

async function finishLayout(s: Started): Promise<LayoutResult> {
  // The shards acknowledge their entries after D1 has them: let the last acks land.
  let statsAfter = await s.world.eventLayout();
  for (let i = 0; i < 20 && (statsAfter.shardStats ?? []).some((x) => x.pending > 0); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    statsAfter = await s.world.eventLayout();
  }
  return {
    shards: s.shards,
    where: s.where,
    phases: s.phases,
    d1: { before: s.d1Before, after: await databaseSizes(s.d1File) },
    stats: { before: s.statsBefore, after: statsAfter },
    files: { before: s.filesBefore, after: await shardFileSizes(s.world.persistTo) },
  };
}

export async function run(): Promise<Row[]> {
  if (!Number.isInteger(K) || K < BATCH_VISITORS || K % BATCH_VISITORS !== 0)
    throw new Error(`BENCH_CONSUMER_K must be a multiple of ${BATCH_VISITORS}, got ${K}`);
  if (LAYOUTS.some((n) => !Number.isInteger(n) || n < 0))
    throw new Error(`BENCH_CONSUMER_LAYOUTS must list shard counts ≥ 0`);
  const load = [currentLoad()];
  const visitors = Array.from({ length: K }, newVisitorId);
  // Every layout's world side by side (started one after the other), then each phase in every
  // world in turn: a change in the machine's load during the bench hits every layout alike.
  const worlds: Started[] = [];
  const build = tempDir("splitstream-bench-build-");
  let results: LayoutResult[];
  try {
    // One bundle of src/ for every world: the same code in each, and no reload mid-bench.
    const script = await bundleWorker(
      eventsWorkerConfig(build.path, { consumer: true }),
      join(build.path, "dist"),
    );
    for (const shards of LAYOUTS) worlds.push(await startLayout(shards, script));
    for (const phase of PHASES)
      for (const s of worlds) {
        await runLayoutPhase(s, phase, visitors);
        load.push(currentLoad());
      }
    results = [];
    for (const s of worlds) results.push(await finishLayout(s));
  } finally {
    await Promise.all(worlds.map((s) => s.world.stop()));
    build.remove();
  }
  const reference = results.find((r) => r.shards === 0);
  const versus = (value: number, of: (r: LayoutResult) => number, r: LayoutResult): string => {
    const ratio = reference && r !== reference ? value / of(reference) : Number.NaN;
    return Number.isFinite(ratio) ? `; ×${ratio.toFixed(2)} vs D1` : "";
  };
  const events = 2 * K;

  const out: Row[] = [];
  PHASES.forEach((phase, p) => {
    const rateOf = (r: LayoutResult) => rate(r.phases[p]!.samples, K);
    const wholeOf = (r: LayoutResult) => (K * 1000) / r.phases[p]!.totalMs;
    for (const r of results)
      out.push({
        subject: `${phase.label} → ${r.where}, events/s (10 %→90 %)`,
        value: rateOf(r),
        unit: "ops/s",
        note: `between 10 % and 90 % of ${int(K)} counted (results API polled every ${POLL_MS} ms)${versus(rateOf(r), rateOf, r)}`,
        extra: {
          shards: r.shards,
          k: K,
          ingestMs: r.phases[p]!.ingestMs,
          totalMs: r.phases[p]!.totalMs,
          polls: r.phases[p]!.samples.length,
        },
      });
    for (const r of results) {
      const ph = r.phases[p]!;
      out.push({
        subject: `  ${phase.kind} → ${r.where}, whole phase, events/s`,
        value: wholeOf(r),
        unit: "ops/s",
        note: `first POST → all ${int(K)} counted in ${(ph.totalMs / 1000).toFixed(1)} s; ingest (${K / BATCH_VISITORS} requests of ${BATCH_VISITORS} events, ${IN_FLIGHT} in flight) ${(ph.ingestMs / 1000).toFixed(1)} s, p50 ${quantile(ph.requestLatencies, 0.5).toFixed(0)} ms per request${versus(wholeOf(r), wholeOf, r)}`,
        extra: { shards: r.shards, totalMs: ph.totalMs },
      });
    }
  });
  for (const r of results) {
    const complete = r.phases.every((ph) => ph.final === K);
    out.push({
      subject: `results count exactly ${int(K)} impressions and ${int(K)} conversions (${r.where})`,
      value: Number.NaN,
      unit: "info",
      status: complete ? "OK" : "WARN",
      note: r.phases.map((ph, p) => `${PHASES[p]!.kind} Σ = ${ph.final}`).join(", "),
    });
  }

  // Storage: what the 2K events left behind, per event.
  for (const r of results) {
    const deltas = tableDeltas(r.d1.before, r.d1.after);
    const perVisitor = VISITOR_TABLES.map((t) => r.d1.after.tables[t]?.rows ?? 0).reduce(
      (a, b) => a + b,
      0,
    );
    const bytes = r.d1.after.bytes - r.d1.before.bytes;
    out.push({
      subject: `D1 bytes per event, ${r.where} (${int(events)} events, indexes included)`,
      value: bytes / events,
      unit: "bytes",
      note: `Σ pages in use ${int(r.d1.before.bytes)} → ${int(r.d1.after.bytes)} B; per-visitor rows in D1: ${int(perVisitor)}; ${deltas.map(describeDelta).join(", ") || "no table changed"}`,
      extra: {
        shards: r.shards,
        before: r.d1.before.bytes,
        after: r.d1.after.bytes,
        ...Object.fromEntries(
          deltas.flatMap((d) => [
            [`${d.table}Bytes`, d.bytes],
            [`${d.table}Rows`, d.rows],
          ]),
        ),
      },
    });
  }
  for (const r of results) {
    if (r.shards === 0) continue;
    const before = shardBytes(r.stats.before);
    const after = shardBytes(r.stats.after);
    const fileDeltas = tableDeltas(r.files.before, r.files.after);
    const rows = VISITOR_TABLES.map((t) => {
      const n = shardRows(r.stats.after, t);
      const d = fileDeltas.find((x) => x.table === t);
      return `${t} ${int(n)} rows${d && n > 0 ? ` × ${int(d.bytes / n)} B` : ""}`;
    });
    const others = fileDeltas.filter(
      (d) => !(VISITOR_TABLES as readonly string[]).includes(d.table),
    );
    const perShard = (r.stats.after.shardStats ?? []).map((s) => s.rows.seen_events);
    out.push({
      subject: `shard bytes per event, ${r.where} (${int(events)} events)`,
      value: (after - before) / events,
      unit: "bytes",
      note: `Σ databaseSize ${int(before)} → ${int(after)} B (stats endpoint; empty migrated shards before); ${rows.join(", ")} (bytes per row: dbstat on the shard files)${others.length ? `; also ${others.map(describeDelta).join(", ")}` : ""}; seen_events per shard ${perShard.join(" / ")}; pending ${(r.stats.after.shardStats ?? []).reduce((n, s) => n + s.pending, 0)}`,
      extra: {
        shards: r.shards,
        before,
        after,
        filesBefore: r.files.before.bytes,
        filesAfter: r.files.after.bytes,
        ...Object.fromEntries(VISITOR_TABLES.map((t) => [`${t}Rows`, shardRows(r.stats.after, t)])),
      },
    });
  }
  for (const r of results) {
    const d1 = r.d1.after.bytes - r.d1.before.bytes;
    const shards = shardBytes(r.stats.after) - shardBytes(r.stats.before);
    out.push({
      subject: `D1 + shard bytes per event, ${r.where}`,
      value: (d1 + shards) / events,
      unit: "bytes",
      note: `D1 ${(d1 / events).toFixed(0)} B + shards ${(shards / events).toFixed(0)} B`,
    });
  }
  out.push(loadRow(load));
  printSideBySide(results);
  return out;
}

/** The figures of every layout in one small table, before the runner's rows. */
function printSideBySide(results: LayoutResult[]): void {
  const events = 2 * K;
  const header = ["", ...results.map((r) => r.where)];
  const fmt = (n: number) => (Number.isFinite(n) ? int(n) : "n/a");
  const lines: string[][] = [
    header,
    ...PHASES.flatMap((phase, p) => [
      [
        `${phase.kind}, events/s 10→90 %`,
        ...results.map((r) => fmt(rate(r.phases[p]!.samples, K))),
      ],
      [
        `${phase.kind}, events/s whole phase`,
        ...results.map((r) => fmt((K * 1000) / r.phases[p]!.totalMs)),
      ],
    ]),
    ["D1 bytes/event", ...results.map((r) => fmt((r.d1.after.bytes - r.d1.before.bytes) / events))],
    [
      "shard bytes/event",
      ...results.map((r) =>
        r.shards === 0
          ? "—"
          : fmt((shardBytes(r.stats.after) - shardBytes(r.stats.before)) / events),
      ),
    ],
  ];
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  console.log(
    `K = ${int(K)} events per phase; one fresh wrangler dev world per layout, phases interleaved`,
  );
  for (const l of lines)
    console.log(
      l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("   "),
    );
  console.log("");
}
