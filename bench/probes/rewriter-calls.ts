/**
 * Probe (not part of `npm run bench`): what HTMLRewriter handler calls cost in workerd itself,
 * without wrangler dev and without an inspector. Runs node_modules' workerd directly with
 * bench/probes/rewriter-calls.worker.js in front of a loopback origin serving the edge-latency
 * bench's 100 KB page, and times each variant (interleaved, sequential keep-alive requests,
 * request → last byte) against plain `fetch` pass-through.
 *
 *   npx tsx bench/probes/rewriter-calls.ts [rounds=300] [--inspector]
 *
 * `--inspector` starts workerd with `--inspector-addr` (nothing connects), to show the inspector
 * is not what makes calls dear. docs/benchmarks.md "Where the edge's added latency goes" has
 * the figures.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchDatafile, benchPage, changeSelectors } from "../edge-latency.bench";
import { quantile } from "../lib/harness";
import { freePort, repoRoot, startOrigin, timedGet } from "../lib/wrangler-dev";

const VARIANTS: [string, string][] = [
  ["pass", "pass-through (fetch only)"],
  ["none", "HTMLRewriter, no handlers"],
  ["one", "1 selector, 1 matched element, no-op handler"],
  ["unmatched", "40 selectors matching nothing"],
  ["noop", "40 selectors matching, no-op handlers"],
  ["set", "40 selectors matching, one setAttribute each"],
  ["list", "the 40 as one selector list, one setAttribute each"],
];

async function main(): Promise<void> {
  const rounds = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 300);
  const inspector = process.argv.includes("--inspector");
  const page = Buffer.from(benchPage(100 * 1024));
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-length": page.length,
    });
    res.end(page);
  });
  const dir = mkdtempSync(join(tmpdir(), "splitstream-probe-"));
  const port = await freePort();
  const selectors = JSON.stringify(changeSelectors(benchDatafile()));
  // capnp embeds paths relative to the config file: the Worker goes beside it.
  copyFileSync(
    join(repoRoot, "bench", "probes", "rewriter-calls.worker.js"),
    join(dir, "worker.js"),
  );
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .probe), (name = "internet", network = (allow = ["private", "local"])) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ]
);
const probe :Workerd.Worker = (
  modules = [ (name = "worker", esModule = embed "worker.js") ],
  compatibilityDate = "2026-08-20",
  bindings = [ (name = "ORIGIN", text = ${JSON.stringify(origin.url)}), (name = "SELECTORS", text = ${JSON.stringify(selectors)}) ]
);
`,
  );
  const args = ["serve", join(dir, "config.capnp")];
  if (inspector) args.push(`--inspector-addr=127.0.0.1:${await freePort()}`);
  const workerd = spawn(join(repoRoot, "node_modules", "workerd", "bin", "workerd"), args, {
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}/bench/page`;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const headers = { "accept-encoding": "identity" };
  try {
    for (let i = 0; ; i++) {
      try {
        await timedGet(`${base}?v=pass`, { agent, headers });
        break;
      } catch (error) {
        if (i > 100) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const chunks: Record<string, string> = {};
    for (const [v] of VARIANTS.slice(1)) {
      const t = await timedGet(`${base}?v=${v}&count=1`, { agent, headers, keepBody: true });
      chunks[v] = t.body ?? "";
    }
    const times = new Map<string, number[]>(VARIANTS.map(([v]) => [v, []]));
    const warmup = 30;
    for (let i = 0; i < warmup + rounds; i++) {
      for (let k = 0; k < VARIANTS.length; k++) {
        const [v] = VARIANTS[(i + k) % VARIANTS.length]!;
        const t = await timedGet(`${base}?v=${v}`, { agent, headers });
        if (t.status !== 200) throw new Error(`${v}: HTTP ${t.status}`);
        if (i >= warmup) times.get(v)!.push(t.totalMs);
      }
    }
    const pass = quantile(times.get("pass")!, 0.5);
    console.log(
      `plain workerd${inspector ? " with --inspector-addr" : ""}, 100 KB page, ${rounds} rounds, p50 request → last byte`,
    );
    for (const [v, label] of VARIANTS) {
      const p50 = quantile(times.get(v)!, 0.5);
      const added = v === "pass" ? "" : `  added ${(p50 - pass).toFixed(2)} ms`;
      console.log(`${label.padEnd(52)} ${p50.toFixed(2)} ms${added}  ${chunks[v] ?? ""}`);
    }
  } finally {
    agent.destroy();
    workerd.kill();
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
