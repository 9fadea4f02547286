/**
 * What the edge adds to a page view: Splitstream's Worker against a pass-through Worker
 * (bench/fixtures/pass-through.ts: `fetch(request)`), both under real `wrangler dev`, both in
 * front of the same loopback origin serving the same 100 KB HTML page, on which the Splitstream
 * datafile has 10 running experiments (immediate activation, 100 % traffic, each with a few
 * attribute and insert_html changes) — so every request decides 10 experiments, rewrites the
 * page in 10 places and sets the visitor headers.
 *
 * Method: a returning visitor (ss_vid + ss_dec cookies, browser user agent,
 * `Accept-Encoding: identity`), one keep-alive connection per Worker, strictly sequential
 * requests, the two Workers interleaved (A B A B …) so machine drift hits both alike. After a
 * warm-up, ≥ 500 timed requests each; a time is request sent → last body byte, measured by the
 * client. Added latency = ours − pass-through, at p50 (target ≤ 1 ms) and p99.
 *
 * The datafile is published with `wrangler kv key put --local --persist-to <tmp>` into the state
 * of the Splitstream `wrangler dev`, exactly as an operator would publish one.
 */
import { loadDatafile } from "../src/core/index";
import { quantile } from "./lib/harness";
import type { Row } from "./lib/types";
import {
  cookieHeader,
  currentLoad,
  loadRow,
  putLocalKv,
  repoRoot,
  startOrigin,
  startWranglerDev,
  tempDir,
  timedGet,
  type LocalOrigin,
  type Timing,
  type WranglerDev,
} from "./lib/wrangler-dev";
import { Agent, type ServerResponse, type IncomingMessage } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const name = "edge-latency";
export const title =
  "Added latency of the edge vs a pass-through Worker (wrangler dev, 100 KB page, 10 experiments)";
export const order = 40;

const EXPERIMENTS = 10;
const PAGE_BYTES = 100 * 1024;
const WARMUP = 50;
const RUNS = 500;
const TARGET_ADDED_P50_MS = 1;

export const BENCH_SDK_KEY = "bench";
export const BROWSER_UA =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

// ------------------------------------------------------------------------------ fixtures

/** One experiment block of the page; `i` is its index. */
function block(i: number): string {
  return (
    `<section id="exp-${i}" class="block"><h2 class="title">Block ${i}: trail-tested gear</h2>` +
    `<p class="desc">Light, repairable and made to last — block ${i} of the benchmark page.</p>` +
    `<span class="price">$${(19 + i * 7).toFixed(2)}</span>` +
    `<a class="cta btn btn-outline" href="/products/${i}" title="Buy item ${i}">Add to cart</a></section>\n`
  );
}

function card(n: number): string {
  return (
    `<article class="card"><h3>Product ${n}</h3><p>Field-tested for 500 km before it ships. ` +
    `Recycled fabric, lifetime repairs, free returns within 30 days. Item number ${n}.</p>` +
    `<span class="price">$${(n % 200) + 9}.00</span></article>\n`
  );
}

export const PAGE_HEAD =
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Benchmark page</title>` +
  `<meta name="viewport" content="width=device-width, initial-scale=1">` +
  `<link rel="stylesheet" href="/bench/style.css"></head><body>` +
  `<header><nav><a href="/">Home</a> <a href="/products/1">Shop</a> <a href="/pricing">Pricing</a></nav></header><main>\n`;
export const PAGE_TAIL = `</main><footer><p>Benchmark footer</p></footer></body></html>\n`;

/** The experiment blocks: the part of every bench page the changes target. */
export const PAGE_BLOCKS = Array.from({ length: EXPERIMENTS }, (_, i) => block(i)).join("");

/** Filler product cards, `bytes` long (at least). */
export function filler(bytes: number, from = 0): string {
  let out = "";
  for (let n = from; out.length < bytes; n++) out += card(n);
  return out;
}

/** A whole page of about `bytes` bytes: head, the experiment blocks, filler, tail. */
export function benchPage(bytes: number): string {
  const fixed = PAGE_HEAD.length + PAGE_BLOCKS.length + PAGE_TAIL.length;
  return PAGE_HEAD + PAGE_BLOCKS + filler(Math.max(0, bytes - fixed)) + PAGE_TAIL;
}

/**
 * A datafile with `EXPERIMENTS` running experiments on every page under /bench/, each with one
 * variation at 100 % traffic that changes its block: text, classes, attributes, two inserts.
 */
export function benchDatafile(): Record<string, unknown> {
  const experiments = Array.from({ length: EXPERIMENTS }, (_, i) => ({
    id: `${7000 + i}`,
    key: `bench_exp_${i}`,
    status: "Running",
    layerId: `${7100 + i}`,
    variations: [{ id: `${7200 + i}`, key: `variant_${i}` }],
    trafficAllocation: [{ entityId: `${7200 + i}`, endOfRange: 10000 }],
    audienceIds: [],
    forcedVariations: {},
  }));
  return {
    version: "4",
    accountId: "1",
    projectId: "1",
    revision: "1",
    sdkKey: BENCH_SDK_KEY,
    attributes: [],
    audiences: [],
    typedAudiences: [],
    events: [{ id: "7999", key: "purchase", experimentIds: experiments.map((e) => e.id) }],
    experiments,
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: {
      pages: [
        {
          id: "bench_pages",
          key: "bench_pages",
          activation: "immediate",
          conditions: ["or", { match: "substring", value: "/bench/page" }],
        },
      ],
      experiments: experiments.map((e, i) => ({
        id: e.id,
        type: "ab",
        pageIds: ["bench_pages"],
        metrics: [{ eventId: "7999", aggregator: "unique" }],
        variations: [
          {
            id: e.variations[0]!.id,
            changes: [
              {
                type: "attribute",
                selector: `#exp-${i} .title`,
                attributes: { text: `Variant headline ${i}` },
              },
              {
                type: "attribute",
                selector: `#exp-${i} .cta`,
                attributes: {
                  addClass: "btn-primary",
                  removeClass: "btn-outline",
                  set: { "data-variant": `variant_${i}` },
                  unset: ["title"],
                },
              },
              {
                type: "insert_html",
                selector: `#exp-${i} .price`,
                position: "after",
                html: `<small class="bench-inserted" data-exp="${i}">Free returns</small>`,
              },
              {
                type: "insert_html",
                selector: `#exp-${i}`,
                position: "prepend",
                html: `<span class="badge bench-inserted" data-exp="${i}">New</span>`,
              },
            ],
          },
        ],
      })),
      events: [{ id: "7999", type: "custom" }],
      lists: [],
      integrations: {},
    },
  };
}

// ------------------------------------------------------------------------------ the two Workers

/**
 * The repository's wrangler.toml for the bench, written to `dir`: the same Worker, bindings and
 * vars, with absolute paths, and without the queue consumer. The edge still sends its impressions
 * to the queue after each response (that is part of its request path); only consuming them —
 * a separate invocation, which in production never runs inside the request's isolate but under
 * `wrangler dev` would share this machine's CPU with the requests being timed — is left out.
 */
export function benchWorkerConfig(dir: string): string {
  const source = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  const out: string[] = [];
  let skipping = false;
  for (const line of source.split(/\r?\n/)) {
    if (/^\s*\[\[queues\.consumers\]\]/.test(line)) {
      skipping = true;
      continue;
    }
    if (skipping && /^\s*\[/.test(line)) skipping = false;
    if (!skipping) out.push(line);
  }
  const text = out
    .join("\n")
    .replace(/^main\s*=.*$/m, `main = ${JSON.stringify(join(repoRoot, "src", "index.ts"))}`)
    .replace(
      /^migrations_dir\s*=.*$/m,
      `migrations_dir = ${JSON.stringify(join(repoRoot, "migrations"))}`,
    );
  const file = join(dir, "wrangler.bench.toml");
  writeFileSync(file, text);
  return file;
}

export interface EdgeWorld {
  origin: LocalOrigin;
  ours: WranglerDev;
  peer: WranglerDev;
  stop(): Promise<void>;
}

/**
 * Starts the origin (`handler`), publishes `datafile` to a fresh local state, and starts the
 * Splitstream Worker ({@link benchWorkerConfig}, ROUTES → the origin, sdk_key "bench") and the
 * pass-through Worker (its own config, `[dev] host` → the origin), both on free ports.
 */
export async function startEdgeWorld(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  datafile: Record<string, unknown>,
): Promise<EdgeWorld> {
  const loaded = loadDatafile(JSON.stringify(datafile));
  if (!loaded.ok)
    throw new Error(`bench datafile does not load: ${JSON.stringify(loaded.problems)}`);

  const state = tempDir("splitstream-bench-");
  const origin = await startOrigin(handler);
  const started: WranglerDev[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((w) => w.stop()));
    await origin.close();
    state.remove();
  };
  try {
    const config = benchWorkerConfig(state.path);
    const oursState = join(state.path, "ours");
    await putLocalKv({
      config,
      binding: "DATAFILES",
      persistTo: oursState,
      key: `datafiles/${BENCH_SDK_KEY}`,
      value: JSON.stringify(datafile),
    });
    const peerConfig = join(state.path, "pass-through.toml");
    writeFileSync(
      peerConfig,
      [
        `name = "splitstream-bench-pass-through"`,
        `main = ${JSON.stringify(join(repoRoot, "bench", "fixtures", "pass-through.ts"))}`,
        `compatibility_date = "2026-08-20"`,
        `[dev]`,
        `host = "127.0.0.1:${origin.port}"`,
        `upstream_protocol = "http"`,
        "",
      ].join("\n"),
    );
    // The Worker's secrets, from a .dev.vars beside the bench config (never the developer's).
    writeFileSync(
      join(state.path, ".dev.vars"),
      "ADMIN_TOKEN=bench-admin-token\nSIGNING_KEY=bench-signing-key\n",
    );
    const [ours, peer] = await Promise.all([
      startWranglerDev({
        config,
        persistTo: oursState,
        readyPath: "/_ss/health",
        vars: {
          ROUTES: JSON.stringify([
            { pattern: "localhost/*", sdk_key: BENCH_SDK_KEY, origin: origin.url },
          ]),
        },
      }).then((w) => (started.push(w), w)),
      startWranglerDev({
        config: peerConfig,
        persistTo: join(state.path, "peer"),
        readyPath: "/bench/style.css",
      }).then((w) => (started.push(w), w)),
    ]);
    return { origin, ours, peer, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export const requestHeaders = (cookie?: string): Record<string, string> => ({
  "user-agent": BROWSER_UA,
  accept: "text/html,application/xhtml+xml",
  "accept-encoding": "identity",
  ...(cookie ? { cookie } : {}),
});

/** Checks the edge really ran the experiments on `body` / `headers`. */
export function appliedExperiments(timing: Timing): { decided: number; inserted: number } {
  const header = String(timing.headers["x-ss-decisions"] ?? "");
  const decided = header === "" ? 0 : header.split(",").length;
  const inserted = (timing.body?.match(/class="(?:badge )?bench-inserted"/g) ?? []).length;
  return { decided, inserted };
}

// ------------------------------------------------------------------------------ run

function stats(values: number[]): { p50: number; p90: number; p99: number; mean: number } {
  return {
    p50: quantile(values, 0.5),
    p90: quantile(values, 0.9),
    p99: quantile(values, 0.99),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
  };
}

export async function run(): Promise<Row[]> {
  const load = [currentLoad()];
  const page = Buffer.from(benchPage(PAGE_BYTES));
  const css = Buffer.from("body{font-family:system-ui}.bench-inserted{color:#0a7}");
  const world = await startEdgeWorld((req, res) => {
    if (req.url === "/bench/style.css") {
      res.writeHead(200, { "content-type": "text/css", "content-length": css.length });
      res.end(css);
      return;
    }
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-length": page.length,
      "cache-control": "no-cache",
    });
    res.end(page);
  }, benchDatafile());

  const oursAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const peerAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const path = "/bench/page-100k";
    // First visit: a new visitor; its cookies make every later request a returning visitor.
    const first = await timedGet(world.ours.url + path, {
      agent: oursAgent,
      headers: requestHeaders(),
      keepBody: true,
    });
    const cookie = cookieHeader(first.headers);
    const check = await timedGet(world.ours.url + path, {
      agent: oursAgent,
      headers: requestHeaders(cookie),
      keepBody: true,
    });
    const applied = appliedExperiments(check);
    const peerCheck = await timedGet(world.peer.url + path, {
      agent: peerAgent,
      headers: requestHeaders(cookie),
      keepBody: true,
    });

    const headers = requestHeaders(cookie);
    const ours: number[] = [];
    const peer: number[] = [];
    const oursTtfb: number[] = [];
    const peerTtfb: number[] = [];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      // Alternate which goes first, so neither always follows the other.
      const order = i % 2 === 0 ? (["ours", "peer"] as const) : (["peer", "ours"] as const);
      for (const who of order) {
        const t = await timedGet((who === "ours" ? world.ours : world.peer).url + path, {
          agent: who === "ours" ? oursAgent : peerAgent,
          headers,
        });
        if (t.status !== 200) throw new Error(`${who}: HTTP ${t.status} on ${path}`);
        if (i < WARMUP) continue;
        (who === "ours" ? ours : peer).push(t.totalMs);
        (who === "ours" ? oursTtfb : peerTtfb).push(t.firstByteMs);
      }
    }

    const o = stats(ours);
    const p = stats(peer);
    const added50 = o.p50 - p.p50;
    const added99 = o.p99 - p.p99;
    const pairedDiffs = ours.map((v, i) => v - peer[i]!);
    const note = `${RUNS} sequential requests each after ${WARMUP} warm-up, interleaved; page ${(page.length / 1024).toFixed(0)} KB; request → last byte`;
    const rows: Row[] = [
      {
        subject: "Splitstream edge, p50",
        value: o.p50,
        unit: "ms",
        note,
        extra: {
          p90: o.p90,
          p99: o.p99,
          mean: o.mean,
          ttfbP50: quantile(oursTtfb, 0.5),
          samples: ours.length,
        },
      },
      {
        subject: "pass-through Worker, p50",
        value: p.p50,
        unit: "ms",
        ratio: p.p50 / o.p50,
        extra: {
          p90: p.p90,
          p99: p.p99,
          mean: p.mean,
          ttfbP50: quantile(peerTtfb, 0.5),
          samples: peer.length,
        },
      },
      {
        subject: "added latency, p50",
        value: added50,
        unit: "ms",
        target: `≤ ${TARGET_ADDED_P50_MS} ms`,
        status: added50 <= TARGET_ADDED_P50_MS ? "PASS" : "MISS",
        note: `median of the paired differences: ${quantile(pairedDiffs, 0.5).toFixed(2)} ms`,
        extra: { pairedMedian: quantile(pairedDiffs, 0.5) },
      },
      { subject: "Splitstream edge, p99", value: o.p99, unit: "ms" },
      { subject: "pass-through Worker, p99", value: p.p99, unit: "ms", ratio: p.p99 / o.p99 },
      { subject: "added latency, p99", value: added99, unit: "ms" },
      {
        subject: `edge decided and applied ${EXPERIMENTS} experiments`,
        value: Number.NaN,
        unit: "info",
        status:
          applied.decided === EXPERIMENTS && applied.inserted === 2 * EXPERIMENTS ? "OK" : "WARN",
        note: `x-ss-decisions pairs: ${applied.decided}, inserted elements: ${applied.inserted} (expected ${EXPERIMENTS} and ${2 * EXPERIMENTS})`,
      },
      {
        subject: "pass-through serves the page unchanged",
        value: Number.NaN,
        unit: "info",
        status: peerCheck.body === page.toString("utf8") ? "OK" : "WARN",
      },
    ];
    load.push(currentLoad());
    rows.push(loadRow(load));
    return rows;
  } finally {
    oursAgent.destroy();
    peerAgent.destroy();
    await world.stop();
  }
}
