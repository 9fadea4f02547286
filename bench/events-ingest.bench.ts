/**
 * Event intake under load: `POST /_ss/events` (browser beacons) and `POST /_ss/v1/events`
 * (Optimizely SDK batches) on Splitstream's Worker under real `wrangler dev`, beside a peer
 * Worker that does the least event intake can do — parse the JSON, one `sendBatch`, 204, no
 * validation, no datafile, no cookie — under the same `wrangler dev`, same queue simulation.
 *
 * Method: 16 keep-alive connections (Node's fetch), closed loop (each connection sends its next
 * request when the previous response is read), `Accept-Encoding: identity`. After a 1 s warm-up
 * per subject, 3 rounds of 1.5 s per subject, ours and the peer interleaved per endpoint.
 * Reported per subject: requests/s, p50 and p99 request → full response, error rate (anything
 * but 204, or a network error). Then 3 rounds of 0.8 s on ONE connection each: at 16 connections
 * both Workers mostly wait in wrangler dev's own queues, so the per-request difference between
 * ours and the peer shows best one request at a time.
 *
 * Bodies: a browser beacon is one `purchase` conversion with revenue and value, sent as
 * `text/plain` like `navigator.sendBeacon`, for a rotating `ss_vid`; an SDK batch is what the
 * SDK's batch event processor sends at its default batch size of 10 events: 5 visitors, each an
 * impression (`campaign_activated`) and a purchase, fresh uuids and timestamps per request.
 *
 * The queue consumer is not configured in this `wrangler dev`: the consumer's D1 writes would
 * share these 2 cores with the intake being timed (in production it runs in other isolates).
 * See events-consumer.bench.ts for the consumer. What these figures are (and are not) is in
 * docs/benchmarks.md "events-ingest".
 */
import type { Row } from "./lib/types";
import {
  browserEventRequest,
  closedLoop,
  IDS,
  loadSummary,
  mergeLoad,
  newVisitorId,
  sdkBatch,
  sdkEventsRequest,
  startIngestWorld,
  type LoadResult,
  type LoadSpec,
} from "./lib/events-world";
import { currentLoad, loadRow } from "./lib/wrangler-dev";

export const name = "events-ingest";
export const title =
  "Event ingest: POST /_ss/events and /_ss/v1/events under wrangler dev, 16 connections";
export const order = 50;

const CONCURRENCY = 16;
const WARMUP_MS = 1000;
const ROUND_MS = 1500;
const ROUNDS = 3;
const SEQUENTIAL_ROUND_MS = 800;
const SDK_VISITORS_PER_BATCH = 5; // × (impression + purchase) = 10 events, the SDK's default batch

interface Endpoint {
  label: string;
  path: string;
  eventsPerRequest: number;
  init: () => RequestInit;
}

/** 10,000 returning visitors, in turn. */
const VISITORS = Array.from({ length: 10_000 }, newVisitorId);
let visitorSeq = 0;
const nextVisitor = (): string => VISITORS[++visitorSeq % VISITORS.length]!;

const ENDPOINTS: Endpoint[] = [
  {
    label: "POST /_ss/events (1 event)",
    path: "/_ss/events",
    eventsPerRequest: 1,
    init: () => browserEventRequest(nextVisitor()),
  },
  {
    label: `POST /_ss/v1/events (SDK batch, ${SDK_VISITORS_PER_BATCH * 2} events)`,
    path: "/_ss/v1/events",
    eventsPerRequest: SDK_VISITORS_PER_BATCH * 2,
    init: () =>
      sdkEventsRequest(
        sdkBatch(IDS, Array.from({ length: SDK_VISITORS_PER_BATCH }, nextVisitor), {
          impressions: true,
          conversions: true,
        }),
      ),
  },
];

const fmt = (ms: number): string => ms.toFixed(1);

function rows(
  endpoint: Endpoint,
  ours: LoadResult,
  peer: LoadResult,
  oursSequential: LoadResult,
  peerSequential: LoadResult,
): Row[] {
  const o = loadSummary(ours);
  const p = loadSummary(peer);
  const o1 = loadSummary(oursSequential);
  const p1 = loadSummary(peerSequential);
  const errorNote = (r: LoadResult) =>
    Object.entries(r.statuses)
      .map(([status, n]) => `${status === "0" ? "network error" : `HTTP ${status}`} × ${n}`)
      .join(", ");
  return [
    {
      subject: `ours ${endpoint.label}, req/s`,
      value: o.rps,
      unit: "ops/s",
      note: `p50 ${fmt(o.p50)} ms, p99 ${fmt(o.p99)} ms, ${o.errorRate === 0 ? "no errors" : `error rate ${(o.errorRate * 100).toFixed(2)} %`}; ${Math.round(o.rps * endpoint.eventsPerRequest)} events/s`,
      extra: {
        p50: o.p50,
        p99: o.p99,
        errorRate: o.errorRate,
        requests: ours.requests,
        eventsPerSec: o.rps * endpoint.eventsPerRequest,
      },
    },
    {
      subject: `bare intake Worker, same requests, req/s`,
      value: p.rps,
      unit: "ops/s",
      ratio: o.rps / p.rps,
      note: `p50 ${fmt(p.p50)} ms, p99 ${fmt(p.p99)} ms (JSON.parse + sendBatch + 204: the floor of wrangler dev and its queue simulation)`,
      extra: { p50: p.p50, p99: p.p99, errorRate: p.errorRate, requests: peer.requests },
    },
    { subject: `ours ${endpoint.path} p50`, value: o.p50, unit: "ms" },
    { subject: `ours ${endpoint.path} p99`, value: o.p99, unit: "ms" },
    {
      subject: `1 connection: ours ${endpoint.path} p50`,
      value: o1.p50,
      unit: "ms",
      note: `bare intake ${fmt(p1.p50)} ms: ours adds ${fmt(o1.p50 - p1.p50)} ms per request (validation, datafile, cookies); sequential requests, no queueing in wrangler dev`,
      extra: { p99: o1.p99, bareP50: p1.p50, bareP99: p1.p99, added: o1.p50 - p1.p50 },
    },
    {
      subject: `ours ${endpoint.path} error rate`,
      value: o.errorRate * 100,
      unit: "%",
      status: o.errorRate === 0 && p.errorRate === 0 && o1.errorRate === 0 ? "OK" : "WARN",
      note:
        o.errorRate === 0 && p.errorRate === 0 && o1.errorRate === 0
          ? `every response 204 (${ours.requests + oursSequential.requests} + ${peer.requests + peerSequential.requests} requests)`
          : `ours: ${errorNote(mergeLoad([ours, oursSequential]))}; peer: ${errorNote(mergeLoad([peer, peerSequential]))}`,
    },
  ];
}

export async function run(): Promise<Row[]> {
  const load = [currentLoad()];
  const world = await startIngestWorld();
  try {
    const out: Row[] = [];
    for (const endpoint of ENDPOINTS) {
      const spec = (base: string): LoadSpec => ({
        url: `${base}${endpoint.path}`,
        init: endpoint.init,
        okStatus: 204,
      });
      const ours = spec(world.ours.url);
      const peer = spec(world.peer.url);
      // Both must accept the request as built before anything is timed.
      for (const [who, s] of [
        ["ours", ours],
        ["peer", peer],
      ] as const) {
        const response = await fetch(s.url, s.init());
        const text = await response.text();
        if (response.status !== 204)
          throw new Error(`${who} ${endpoint.path}: HTTP ${response.status} ${text}`);
      }
      const options = { concurrency: CONCURRENCY, durationMs: WARMUP_MS };
      await closedLoop(ours, options);
      await closedLoop(peer, options);
      const oursRounds: LoadResult[] = [];
      const peerRounds: LoadResult[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const timed = { concurrency: CONCURRENCY, durationMs: ROUND_MS };
        // Alternate which goes first, so neither always follows the other.
        if (round % 2 === 0) {
          oursRounds.push(await closedLoop(ours, timed));
          peerRounds.push(await closedLoop(peer, timed));
        } else {
          peerRounds.push(await closedLoop(peer, timed));
          oursRounds.push(await closedLoop(ours, timed));
        }
      }
      // One connection: what ours adds per request, without wrangler dev's queueing in the way.
      const oursSequential: LoadResult[] = [];
      const peerSequential: LoadResult[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const timed = { concurrency: 1, durationMs: SEQUENTIAL_ROUND_MS };
        oursSequential.push(await closedLoop(ours, timed));
        peerSequential.push(await closedLoop(peer, timed));
      }
      out.push(
        ...rows(
          endpoint,
          mergeLoad(oursRounds),
          mergeLoad(peerRounds),
          mergeLoad(oursSequential),
          mergeLoad(peerSequential),
        ),
      );
    }
    load.push(currentLoad());
    out.push(loadRow(load));
    return out;
  } finally {
    await world.stop();
  }
}
