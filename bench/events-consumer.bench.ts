/**
 * Consumer throughput: how fast the EVENTS queue consumer folds events into local D1, measured
 * from the outside. Splitstream under real `wrangler dev` with its queue consumer (max_batch_size
 * 100, wrangler.toml), a project and a running two-variation experiment created through the
 * management API (bench/lib/events-world.ts `startConsumerWorld`).
 *
 * Two phases, each K events through `POST /_ss/v1/events` (SDK batches of 100 visitors, 4
 * requests in flight), then `GET /_ss/api/v1/experiments/{id}/results` polled every 100 ms until
 * the results count all K:
 *   1. impressions: K new visitors (results: Σ visitors = K);
 *   2. conversions: a purchase with revenue for each of them (results: Σ purchase events = K).
 * Reported per phase: the consumer's rate = events counted between 10 % and 90 % of K ÷ the time
 * between those two polls (start-up and the last poll's granularity left out), and the whole
 * phase, first POST → all K counted. Then the D1 bytes the 2K events left behind, per table with
 * its indexes (SQLite `dbstat` on the local D1 file, docs/scaling.md). K is a multiple of 100, so every queue batch is full and
 * none waits for max_batch_timeout.
 *
 * The local queue is Miniflare's simulation (one batch at a time, in this process's workerd, on
 * the same 2 cores as the ingest requests and the polling); D1 is local SQLite. What that means
 * against production is in docs/benchmarks.md "events-consumer" and docs/scaling.md.
 */
import { quantile } from "./lib/harness";
import type { Row } from "./lib/types";
import {
  d1TableSizes,
  localD1File,
  newVisitorId,
  sdkBatch,
  sdkEventsRequest,
  startConsumerWorld,
  type ConsumerWorld,
  type ResultsBody,
} from "./lib/events-world";
import { currentLoad, loadRow } from "./lib/wrangler-dev";

export const name = "events-consumer";
export const title =
  "Event consumer: events/s folded into local D1 (wrangler dev queue → D1, polled via the results API)";
export const order = 51;

const K = 10_000;
const BATCH_VISITORS = 100;
const IN_FLIGHT = 4;
const POLL_MS = 100;
const PHASE_TIMEOUT_MS = 40_000;
/** The consumer's per-event and per-visitor tables (migrations/0002_events.sql, 0003_conversions.sql). */
const D1_TABLES = ["seen_events", "exposures", "conversions", "converters"] as const;

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

export async function run(): Promise<Row[]> {
  const load = [currentLoad()];
  const world = await startConsumerWorld();
  try {
    const visitors = Array.from({ length: K }, newVisitorId);
    const out: Row[] = [];
    for (const phase of PHASES) {
      const before = phase.count(await world.results());
      const r = await runPhase(world, phase, visitors, before);
      const perSecond = rate(r.samples, K);
      const complete = r.final === K;
      out.push(
        {
          subject: `consumer: ${phase.label} → D1, events/s`,
          value: perSecond,
          unit: "ops/s",
          note: `between 10 % and 90 % of ${K} counted (results API polled every ${POLL_MS} ms); batches of 100`,
          extra: { k: K, ingestMs: r.ingestMs, totalMs: r.totalMs, polls: r.samples.length },
        },
        {
          subject: `  ${K} ${phase.kind}: first POST → all counted`,
          value: r.totalMs,
          unit: "ms",
          note: `ingest (${K / BATCH_VISITORS} requests of ${BATCH_VISITORS} events, ${IN_FLIGHT} in flight) took ${Math.round(r.ingestMs)} ms, p50 ${quantile(r.requestLatencies, 0.5).toFixed(0)} ms per request; end to end ${Math.round((K * 1000) / r.totalMs)} events/s`,
        },
        {
          subject: `  results count exactly ${K} ${phase.kind}`,
          value: Number.NaN,
          unit: "info",
          status: complete ? "OK" : "WARN",
          note: complete
            ? `Σ = ${r.final}`
            : `Σ = ${r.final} after ${Math.round(r.totalMs)} ms (expected ${K})`,
        },
      );
    }
    // What the 2 × K events left in D1: bytes per row of each bookkeeping table, indexes included.
    const sizes = await d1TableSizes(localD1File(world.persistTo), D1_TABLES);
    const present = D1_TABLES.filter((t) => sizes[t] !== undefined);
    const total = present.reduce((n, t) => n + sizes[t]!.bytes, 0);
    out.push({
      subject: `D1 bytes per event (${(2 * K).toLocaleString("en-US")} events, indexes included)`,
      value: total / (2 * K),
      unit: "bytes",
      note: present
        .map((t) => {
          const { bytes, rows } = sizes[t]!;
          return `${t} ${rows} rows × ${rows === 0 ? 0 : Math.round(bytes / rows)} B`;
        })
        .join(", "),
      extra: Object.fromEntries(
        present.flatMap((t) => [
          [`${t}Bytes`, sizes[t]!.bytes],
          [`${t}Rows`, sizes[t]!.rows],
        ]),
      ),
    });
    load.push(currentLoad());
    out.push(loadRow(load));
    return out;
  } finally {
    await world.stop();
  }
}
