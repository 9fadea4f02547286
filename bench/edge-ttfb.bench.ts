/**
 * Streaming: time to first byte as the page grows — 10 KB, 100 KB, 500 KB, 2 MB — through
 * Splitstream's Worker (10 experiments rewriting the page) and through the pass-through Worker,
 * both under real `wrangler dev` in front of the same loopback origin (see edge-latency.bench.ts
 * for the setup).
 *
 * The origin streams like a real server rendering a long page: the head and the experiment
 * blocks at once, then the rest in 16 KB chunks 1 ms apart (a 2 MB page takes ≥ 130 ms to
 * arrive). An edge that streams its rewriting hands the browser the first bytes as soon as the
 * origin does, whatever the page size; one that buffered the page would show a TTFB growing with
 * the page. Reported: TTFB(2 MB) / TTFB(10 KB) for both Workers; target: Splitstream's ratio
 * divided by the pass-through's (which grows a little too: loopback and `wrangler dev` share
 * the CPU with the body streaming behind the first byte) ≤ 1.5.
 *
 * TTFB = request sent → first body byte, at the client (`Accept-Encoding: identity`), median over
 * sequential requests of a returning visitor, the two Workers interleaved.
 */
import { Agent, type IncomingMessage, type ServerResponse } from "node:http";
import {
  appliedExperiments,
  benchDatafile,
  filler,
  PAGE_BLOCKS,
  PAGE_HEAD,
  PAGE_TAIL,
  requestHeaders,
  startEdgeWorld,
} from "./edge-latency.bench";
import { median } from "./lib/harness";
import type { Row } from "./lib/types";
import { cookieHeader, currentLoad, loadRow, timedGet } from "./lib/wrangler-dev";

export const name = "edge-ttfb";
export const title = "Time to first byte vs page size, streamed through the edge (wrangler dev)";
export const order = 41;

const SIZES_KB = [10, 100, 500, 2048];
const CHUNK_BYTES = 16 * 1024;
const CHUNK_DELAY_MS = 1;
const WARMUP = 5;
const RUNS = 21;
const TARGET_FLATNESS = 1.5;

/** GET /bench/page?kb=N: the page streamed in paced chunks. */
function streamPage(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? "/", "http://origin.invalid");
  if (url.pathname === "/bench/style.css") {
    res.writeHead(200, { "content-type": "text/css" });
    res.end("body{font-family:system-ui}");
    return;
  }
  const kb = Math.min(4096, Math.max(1, Number(url.searchParams.get("kb")) || 10));
  const first = PAGE_HEAD + PAGE_BLOCKS;
  const rest = filler(Math.max(0, kb * 1024 - first.length - PAGE_TAIL.length)) + PAGE_TAIL;
  res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" });
  res.write(first);
  let offset = 0;
  let timer: NodeJS.Timeout | undefined;
  res.once("close", () => clearTimeout(timer));
  const next = (): void => {
    if (res.destroyed) return;
    if (offset >= rest.length) {
      res.end();
      return;
    }
    res.write(rest.slice(offset, offset + CHUNK_BYTES));
    offset += CHUNK_BYTES;
    timer = setTimeout(next, CHUNK_DELAY_MS);
  };
  timer = setTimeout(next, CHUNK_DELAY_MS);
}

const label = (kb: number): string => (kb >= 1024 ? `${kb / 1024} MB` : `${kb} KB`);

export async function run(): Promise<Row[]> {
  const load = [currentLoad()];
  const world = await startEdgeWorld(streamPage, benchDatafile());
  const oursAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const peerAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const path = (kb: number): string => `/bench/page?kb=${kb}`;
    const first = await timedGet(world.ours.url + path(10), {
      agent: oursAgent,
      headers: requestHeaders(),
    });
    const headers = requestHeaders(cookieHeader(first.headers));

    const ttfb = new Map<string, number[]>();
    const total = new Map<string, number[]>();
    const bytes = new Map<string, number>();
    for (let i = 0; i < WARMUP + RUNS; i++) {
      for (const kb of SIZES_KB) {
        const order = i % 2 === 0 ? (["ours", "peer"] as const) : (["peer", "ours"] as const);
        for (const who of order) {
          const target = who === "ours" ? world.ours : world.peer;
          const t = await timedGet(target.url + path(kb), {
            agent: who === "ours" ? oursAgent : peerAgent,
            headers,
          });
          if (t.status !== 200) throw new Error(`${who}: HTTP ${t.status} for ${label(kb)}`);
          if (i < WARMUP) continue;
          const key = `${who} ${kb}`;
          (ttfb.get(key) ?? ttfb.set(key, []).get(key)!).push(t.firstByteMs);
          (total.get(key) ?? total.set(key, []).get(key)!).push(t.totalMs);
          bytes.set(key, t.bytes);
        }
      }
    }
    // The edge really rewrote the streamed page (checked once, on the largest).
    const check = await timedGet(world.ours.url + path(SIZES_KB.at(-1)!), {
      agent: oursAgent,
      headers,
      keepBody: true,
    });
    const applied = appliedExperiments(check);

    const rows: Row[] = [];
    const med = (who: string, kb: number): number => median(ttfb.get(`${who} ${kb}`) ?? []);
    for (const kb of SIZES_KB) {
      const ours = med("ours", kb);
      const peer = med("peer", kb);
      rows.push(
        {
          subject: `Splitstream TTFB, ${label(kb)}`,
          value: ours,
          unit: "ms",
          note: `whole page: ${median(total.get(`ours ${kb}`) ?? []).toFixed(1)} ms, ${bytes.get(`ours ${kb}`)} bytes`,
          extra: {
            totalMs: median(total.get(`ours ${kb}`) ?? []),
            bytes: bytes.get(`ours ${kb}`) ?? 0,
          },
        },
        {
          subject: `pass-through TTFB, ${label(kb)}`,
          value: peer,
          unit: "ms",
          ratio: peer / ours,
          note: `whole page: ${median(total.get(`peer ${kb}`) ?? []).toFixed(1)} ms`,
          extra: {
            totalMs: median(total.get(`peer ${kb}`) ?? []),
            bytes: bytes.get(`peer ${kb}`) ?? 0,
          },
        },
      );
    }
    const smallest = SIZES_KB[0]!;
    const largest = SIZES_KB.at(-1)!;
    const flatness = med("ours", largest) / med("ours", smallest);
    const peerFlatness = med("peer", largest) / med("peer", smallest);
    const relative = flatness / peerFlatness;
    rows.push(
      {
        subject: `Splitstream TTFB ${label(largest)} / ${label(smallest)} = ×${flatness.toFixed(2)}`,
        value: Number.NaN,
        unit: "info",
        note: `pass-through: ×${peerFlatness.toFixed(2)} (loopback and wrangler dev slow down a little while a large body streams); ${RUNS} requests per size and Worker after ${WARMUP} warm-up`,
        extra: { ratio: flatness, peerRatio: peerFlatness },
      },
      {
        subject: `… beyond the pass-through's own growth = ×${relative.toFixed(2)}`,
        value: Number.NaN,
        unit: "info",
        target: `≤ ${TARGET_FLATNESS}×`,
        status: relative <= TARGET_FLATNESS ? "PASS" : "MISS",
        note: `a buffering edge would wait for the whole page: ${median(total.get(`ours ${largest}`) ?? []).toFixed(0)} ms at ${label(largest)}`,
        extra: { relativeRatio: relative },
      },
      {
        subject: "edge rewrote the streamed page",
        value: Number.NaN,
        unit: "info",
        status: applied.decided === 10 && applied.inserted === 20 ? "OK" : "WARN",
        note: `x-ss-decisions pairs: ${applied.decided}, inserted elements: ${applied.inserted}, ${check.bytes} bytes`,
      },
    );
    load.push(currentLoad());
    rows.push(loadRow(load));
    return rows;
  } finally {
    oursAgent.destroy();
    peerAgent.destroy();
    await world.stop();
  }
}
