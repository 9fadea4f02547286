/**
 * Where the edge's own time goes, by function: starts the edge-latency world (one Splitstream
 * Worker under `wrangler dev` in front of the bench origin), attaches to its devtools inspector,
 * takes a V8 CPU profile while it serves N requests to one path, and prints the functions with the
 * most self time (and the share of idle/program/GC).
 *
 *   npx tsx bench/probes/edge-profile.ts [path] [requests]
 *   npx tsx bench/probes/edge-profile.ts /bench/no-experiment-100k 2000
 *   npx tsx bench/probes/edge-profile.ts /bench/page-cached-100k 2000
 */
import { Agent } from "node:http";
import { createRequire } from "node:module";

/** The bits of the `ws` package used here (it ships no types; wrangler depends on it). */
interface WsLike {
  once(event: "open" | "error", listener: (value: unknown) => void): void;
  on(event: "message", listener: (data: unknown) => void): void;
  send(data: string): void;
  close(): void;
}
const WebSocket = createRequire(import.meta.url)("ws") as new (
  url: string,
  options: { headers: Record<string, string> },
) => WsLike;
import {
  benchDatafile,
  benchPage,
  requestHeaders,
  startEdgeWorld,
  withOffloadExperiments,
} from "../edge-latency.bench";
import { cookieHeader, timedGet } from "../lib/wrangler-dev";

const path = process.argv[2] ?? "/bench/no-experiment-100k";
const requests = Number(process.argv[3] ?? 2000);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
}

async function main(): Promise<void> {
  const page = Buffer.from(benchPage(100 * 1024));
  const world = await startEdgeWorld((req, res) => {
    const cacheable = (req.url ?? "").includes("cached");
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-length": page.length,
      "cache-control": cacheable ? "public, max-age=3600" : "no-cache",
    });
    res.end(page);
  }, withOffloadExperiments(benchDatafile()));
  try {
    // wrangler's inspector proxy accepts devtools-like clients on /ws.
    const ws = new WebSocket(`ws://127.0.0.1:${world.ours.inspectorPort}/ws`, {
      headers: { origin: "http://localhost" },
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    let nextId = 1;
    const pending = new Map<number, (value: unknown) => void>();
    ws.on("message", (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown };
      if (message.id !== undefined) pending.get(message.id)?.(message.result);
    });
    const send = (method: string, params: Record<string, unknown> = {}): Promise<unknown> =>
      new Promise((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        ws.send(JSON.stringify({ id, method, params }));
      });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const url = world.ours.url + path;
    const cookie = cookieHeader(
      (await timedGet(url, { agent, headers: requestHeaders() })).headers,
    );
    for (let i = 0; i < 200; i++) await timedGet(url, { agent, headers: requestHeaders(cookie) });
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: 50 });
    await send("Profiler.start");
    const started = Date.now();
    for (let i = 0; i < requests; i++)
      await timedGet(url, { agent, headers: requestHeaders(cookie) });
    const wall = Date.now() - started;
    const { profile } = (await send("Profiler.stop")) as {
      profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
    };
    agent.destroy();
    ws.close();
    const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((nodeId, i) => {
      const node = byNode.get(nodeId)!;
      const dt = profile.timeDeltas[i] ?? 0;
      total += dt;
      const file = node.callFrame.url.split("/").slice(-2).join("/");
      const key = `${node.callFrame.functionName || "(anonymous)"} ${file}:${node.callFrame.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + dt);
    });
    const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40);
    console.log(
      `${path}: ${requests} requests in ${wall} ms (${(wall / requests).toFixed(2)} ms each); profile ${(total / 1000).toFixed(0)} ms`,
    );
    for (const [key, us] of rows)
      console.log(
        `${((us / requests) * 1).toFixed(1).padStart(7)} µs/req  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`,
      );
  } finally {
    await world.stop();
  }
}

await main();
