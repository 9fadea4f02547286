/**
 * What a page view pays in a fresh isolate: the Worker as `wrangler deploy` uploads it (one
 * bundle, `wrangler deploy --dry-run --outdir`) against the pass-through Worker
 * (bench/fixtures/pass-through.ts, bundled the same way), the floor of any Worker.
 *
 * 1. Size of the bundle, raw and gzip: what the isolate must parse.
 * 2. Start-up in a fresh V8 context: one fresh `node` process per sample runs
 *    bench/lib/startup-probe.mjs, which compiles the bundle as an ES module (`vm.SourceTextModule`)
 *    and evaluates it, timing each step from inside the process — so process start-up is not in
 *    the figures, only the script's parse + compile and its top-level evaluation. Ours and the
 *    pass-through alternate; medians of {@link V8_RUNS} each.
 * 3. `wrangler check startup` (Cloudflare's own tool, offline): the active CPU time of the
 *    start-up profile it records in local workerd. Coarse (about one sample per ms, and a fixed
 *    part any Worker pays), so it is a cross-check, not the figure.
 * 4. Fresh workerd processes (the real runtime): plain workerd from node_modules, no wrangler,
 *    serving the bundle with its page-path bindings (DATAFILES from a small KV service holding the
 *    edge-latency bench's datafile, EVENTS into a sink), in front of a loopback origin serving the
 *    edge-latency bench's 100 KB page with its 10 experiments. Time from spawning workerd to the
 *    last byte of the first response, then warm requests on the same process. Four Workers in
 *    rotation, {@link WORKERD_RUNS} fresh processes each: ours on the page, ours on a request no
 *    route matches (start-up, then a pass-through), the pass-through, and the pass-through padded
 *    with a comment to our bundle's size (see {@link WorkerdSubject}). Script start-up in workerd
 *    = ours unrouted − padded pass-through; a fresh isolate's first page view = ours on the page −
 *    padded pass-through.
 *
 * `BENCH_STARTUP_DIR=<checkout>` measures another checkout's Worker as "ours" (a before beside an
 * after). docs/benchmarks.md "`edge-startup`" has the figures; docs/architecture.md "Start-up"
 * why the API and the admin load lazily.
 */
import { spawn, execFile } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { Agent } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { BENCH_SDK_KEY, benchDatafile, benchPage } from "./edge-latency.bench";
import { median } from "./lib/harness";
import type { Row } from "./lib/types";
import {
  currentLoad,
  freePort,
  loadRow,
  repoRoot,
  runWrangler,
  startOrigin,
  tempDir,
  timedGet,
} from "./lib/wrangler-dev";

export const name = "edge-startup";
export const title =
  "Start-up a page view pays in a fresh isolate: the Worker bundle vs a pass-through Worker";
export const order = 38;

const V8_RUNS = 21;
const WORKERD_RUNS = 15;
const WARM_REQUESTS = 5;
const PAGE_PATH = "/bench/page";
const CHECK_STARTUP_RUNS = 3;
/**
 * The checkout whose Worker is "ours": this one, or `BENCH_STARTUP_DIR` (another commit's
 * checkout, e.g. `git worktree add /tmp/before <commit>` with a `node_modules` link) to measure
 * a before beside an after with the same bench.
 */
const oursDir = process.env.BENCH_STARTUP_DIR ?? repoRoot;

interface V8Sample {
  compileMs: number;
  linkMs: number;
  evaluateMs: number;
  exports: string[];
}

/** The one .js file wrangler wrote into `dir`. */
function bundleIn(dir: string): string {
  const js = readdirSync(dir).filter((f) => f.endsWith(".js"));
  if (js.length !== 1) throw new Error(`expected one .js bundle in ${dir}, found ${js.join(", ")}`);
  return join(dir, js[0]!);
}

/** The pass-through Worker's wrangler config, in `dir`. */
function peerConfig(dir: string): string {
  const file = join(dir, "pass-through.toml");
  writeFileSync(
    file,
    [
      `name = "splitstream-bench-pass-through"`,
      `main = ${JSON.stringify(join(repoRoot, "bench", "fixtures", "pass-through.ts"))}`,
      `compatibility_date = "2026-08-20"`,
      "",
    ].join("\n"),
  );
  return file;
}

/** `wrangler deploy --dry-run --outdir`: the script exactly as a deploy would upload it. */
async function buildBundles(dir: string): Promise<{ ours: string; peer: string }> {
  await Promise.all([
    runWrangler(["deploy", "--dry-run", "--outdir", join(dir, "ours")], oursDir),
    runWrangler([
      "deploy",
      "--dry-run",
      "--config",
      peerConfig(dir),
      "--outdir",
      join(dir, "peer"),
    ]),
  ]);
  return { ours: bundleIn(join(dir, "ours")), peer: bundleIn(join(dir, "peer")) };
}

const execFileAsync = promisify(execFile);

const wranglerBin = join(
  dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);

/**
 * `wrangler check startup` (it builds the Worker, runs its start-up in local workerd under the
 * CPU profiler and reports the profile): the active CPU time in ms. Offline; a coarse profile
 * (≈ 1 sample per ms), so a median of a few runs.
 */
async function checkStartup(dir: string, args: string[], cwd: string): Promise<number> {
  const { stdout, stderr } = await execFileAsync(
    process.execPath,
    [wranglerBin, "check", "startup", "--outfile", join(dir, "startup.cpuprofile"), ...args],
    {
      cwd,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    },
  );
  const active = /Active:\s*([\d.]+)\s*ms/.exec(stdout + stderr);
  if (!active) throw new Error(`wrangler check startup: no "Active:" in\n${stdout}${stderr}`);
  return Number(active[1]);
}

async function v8Startup(bundle: string): Promise<V8Sample> {
  const { stdout } = await execFileAsync(
    process.execPath,
    [
      "--experimental-vm-modules",
      "--no-warnings",
      join(repoRoot, "bench", "lib", "startup-probe.mjs"),
      bundle,
    ],
    { env: { ...process.env, NODE_COMPILE_CACHE: "", NODE_OPTIONS: "" } },
  );
  return JSON.parse(stdout.trim().split("\n").pop()!) as V8Sample;
}

// ------------------------------------------------------------------------------ workerd

/** DATAFILES for workerd: GET /<key> answers the one datafile (workerd's KV protocol). */
const KV_SERVICE = `export default {
  async fetch(request, env) {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (request.method === "GET" && key === env.KEY) return new Response(env.VALUE);
    return new Response(null, { status: request.method === "GET" ? 404 : 200 });
  },
};
`;

/** EVENTS for workerd: accepts every send (workerd's queue protocol), keeps nothing. */
const QUEUE_SINK = `export default {
  async fetch(request) {
    await request.arrayBuffer();
    return Response.json({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0, oldestMessageTimestamp: 0 } } });
  },
};
`;

/**
 * Which Worker a workerd serves: ours on the bench page, ours with no route for it, the
 * pass-through, or the pass-through padded with a comment to our bundle's size ("padded"): a
 * text config's `embed` costs workerd time per byte before any JavaScript runs (≈ 35 ms per MB
 * here, the same for a string binding), which production does not pay that way; the padded
 * peer cancels it.
 */
type WorkerdSubject = "page" | "unrouted" | "peer" | "padded";

function workerdConfig(options: {
  port: number;
  subject: WorkerdSubject;
  originUrl: string;
  datafile: string;
}): string {
  const text = (name: string, value: string): string =>
    `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`;
  // "unrouted": the only route is for another host, so ours passes the request through as the
  // peer does — its first response is the script's start-up and nothing of the page path.
  const routeHost = options.subject === "unrouted" ? "unrouted.invalid" : "127.0.0.1";
  const ours = options.subject === "page" || options.subject === "unrouted";
  const bindings = ours
    ? [
        `(name = "ROUTES", json = ${JSON.stringify(
          JSON.stringify([
            { pattern: `${routeHost}/*`, sdk_key: BENCH_SDK_KEY, origin: options.originUrl },
          ]),
        )})`,
        text("EVENT_SHARDS", "0"),
        text("SIGNING_KEY", "bench-signing-key"),
        text("ADMIN_TOKEN", "bench-admin-token"),
        `(name = "DATAFILES", kvNamespace = "kv")`,
        `(name = "EVENTS", queue = "sink")`,
      ]
    : [];
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .main),
    (name = "kv", worker = .kv),
    (name = "sink", worker = .sink),
    (name = "internet", network = (allow = ["private", "local"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:${options.port}", http = (), service = "main") ]
);
const main :Workerd.Worker = (
  modules = [ (name = "worker.js", esModule = embed "${ours ? "ours" : options.subject}.js") ],
  compatibilityDate = "2026-08-20",
  bindings = [ ${bindings.join(", ")} ]
);
const kv :Workerd.Worker = (
  modules = [ (name = "kv.js", esModule = embed "kv.js") ],
  compatibilityDate = "2026-08-20",
  bindings = [ ${text("KEY", `datafiles/${BENCH_SDK_KEY}`)}, ${text("VALUE", options.datafile)} ]
);
const sink :Workerd.Worker = (
  modules = [ (name = "sink.js", esModule = embed "sink.js") ],
  compatibilityDate = "2026-08-20"
);
`;
}

interface WorkerdSample {
  /** spawn → last byte of the first page */
  firstMs: number;
  /** median request → last byte of the warm requests after it */
  warmMs: number;
  /** experiments the first page was decided with (x-ss-decisions), 0 for the pass-through */
  decided: number;
}

async function workerdFirstPage(
  dir: string,
  subject: WorkerdSubject,
  origin: { url: string; port: number },
  datafile: string,
): Promise<WorkerdSample> {
  const port = await freePort();
  const config = join(dir, `${subject}.capnp`);
  writeFileSync(config, workerdConfig({ port, subject, originUrl: origin.url, datafile }));
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  // The Host is the origin's: the pass-through's `fetch(request)` goes there, and ours matches
  // its route (127.0.0.1/*, port ignored) and fetches the route's origin.
  const headers = { host: `127.0.0.1:${origin.port}`, "accept-encoding": "identity" };
  const url = `http://127.0.0.1:${port}${PAGE_PATH}`;
  const start = performance.now();
  const workerd = spawn(
    join(repoRoot, "node_modules", "workerd", "bin", "workerd"),
    ["serve", config],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  workerd.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    let first;
    for (;;) {
      try {
        first = await timedGet(url, { agent, headers });
        break;
      } catch (error) {
        if (workerd.exitCode !== null || performance.now() - start > 30_000)
          throw new Error(`workerd did not answer: ${String(error)}\n${stderr}`, {
            cause: error,
          });
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    const firstMs = performance.now() - start;
    if (first.status !== 200) throw new Error(`first page: HTTP ${first.status}\n${stderr}`);
    const warm: number[] = [];
    for (let i = 0; i < WARM_REQUESTS; i++) {
      const t = await timedGet(url, { agent, headers });
      if (t.status !== 200) throw new Error(`warm page: HTTP ${t.status}`);
      warm.push(t.totalMs);
    }
    const decisions = first.headers["x-ss-decisions"];
    const decided = typeof decisions === "string" ? decisions.split(",").length : 0;
    return { firstMs, warmMs: median(warm), decided };
  } finally {
    agent.destroy();
    workerd.kill();
    await new Promise((r) => (workerd.exitCode !== null ? r(null) : workerd.once("exit", r)));
  }
}

// ------------------------------------------------------------------------------ run

export async function run(): Promise<Row[]> {
  const load = [currentLoad()];
  const dir = tempDir("splitstream-startup-");
  const page = Buffer.from(benchPage(100 * 1024));
  const origin = await startOrigin((_req, res) => {
    res.writeHead(200, {
      "content-type": "text/html; charset=utf-8",
      "content-length": page.length,
    });
    res.end(page);
  });
  try {
    const bundles = await buildBundles(dir.path);
    const rows: Row[] = [];

    // 1. Size.
    for (const [who, file] of [
      ["ours", bundles.ours],
      ["pass-through", bundles.peer],
    ] as const) {
      const bytes = readFileSync(file);
      rows.push(
        { subject: `bundle raw, ${who}`, value: statSync(file).size, unit: "bytes" },
        { subject: `bundle gzip, ${who}`, value: gzipSync(bytes).byteLength, unit: "bytes" },
      );
    }

    // 2. Start-up in a fresh V8 context, ours and the pass-through alternating.
    const ours: V8Sample[] = [];
    const peer: V8Sample[] = [];
    for (let i = 0; i < V8_RUNS; i++) {
      if (i % 2 === 0) {
        ours.push(await v8Startup(bundles.ours));
        peer.push(await v8Startup(bundles.peer));
      } else {
        peer.push(await v8Startup(bundles.peer));
        ours.push(await v8Startup(bundles.ours));
      }
    }
    const exported = ours[0]!.exports.join(", ");
    const total = (s: V8Sample): number => s.compileMs + s.linkMs + s.evaluateMs;
    const oursTotal = median(ours.map(total));
    const peerTotal = median(peer.map(total));
    rows.push(
      {
        subject: "V8 parse + compile, ours",
        value: median(ours.map((s) => s.compileMs)),
        unit: "ms",
        note: "the whole script is scanned, whatever runs",
      },
      {
        subject: "V8 top-level evaluation, ours",
        value: median(ours.map((s) => s.evaluateMs)),
        unit: "ms",
        note: "what the modules the page path imports build at load",
      },
      {
        subject: "V8 start-up (compile + link + evaluate), ours",
        value: oursTotal,
        unit: "ms",
        note: `median of ${V8_RUNS} fresh processes; exports ${exported}`,
        extra: { min: Math.min(...ours.map(total)), max: Math.max(...ours.map(total)) },
      },
      {
        subject: "V8 start-up, pass-through Worker",
        value: peerTotal,
        unit: "ms",
        ratio: peerTotal / oursTotal,
        extra: { min: Math.min(...peer.map(total)), max: Math.max(...peer.map(total)) },
      },
    );

    // 3. `wrangler check startup`, ours and the pass-through alternating.
    const checkOurs: number[] = [];
    const checkPeer: number[] = [];
    for (let i = 0; i < CHECK_STARTUP_RUNS; i++) {
      checkOurs.push(await checkStartup(dir.path, [], oursDir));
      checkPeer.push(await checkStartup(dir.path, ["--config", peerConfig(dir.path)], repoRoot));
    }
    rows.push(
      {
        subject: "wrangler check startup, active CPU, ours",
        value: median(checkOurs),
        unit: "ms",
        note: `median of ${CHECK_STARTUP_RUNS}: ${checkOurs.map((v) => v.toFixed(1)).join(" / ")} ms (local workerd's start-up profile)`,
      },
      {
        subject: "wrangler check startup, active CPU, pass-through",
        value: median(checkPeer),
        unit: "ms",
        ratio: median(checkPeer) / median(checkOurs),
      },
    );

    // 4. Fresh workerd processes: ours on the page, ours unrouted, the pass-through, rotating.
    copyFileSync(bundles.ours, join(dir.path, "ours.js"));
    copyFileSync(bundles.peer, join(dir.path, "peer.js"));
    writeFileSync(join(dir.path, "kv.js"), KV_SERVICE);
    writeFileSync(join(dir.path, "sink.js"), QUEUE_SINK);
    const datafile = JSON.stringify(benchDatafile());
    const ourSize = statSync(bundles.ours).size;
    const peerSource = readFileSync(bundles.peer, "utf8");
    writeFileSync(
      join(dir.path, "padded.js"),
      `${peerSource}\n/*${"x".repeat(Math.max(0, ourSize - peerSource.length - 5))}*/\n`,
    );
    const subjects: WorkerdSubject[] = ["page", "unrouted", "padded", "peer"];
    const samples: Record<WorkerdSubject, WorkerdSample[]> = {
      page: [],
      unrouted: [],
      padded: [],
      peer: [],
    };
    for (let i = 0; i < WORKERD_RUNS; i++) {
      for (let k = 0; k < subjects.length; k++) {
        const subject = subjects[(i + k) % subjects.length]!;
        samples[subject].push(await workerdFirstPage(dir.path, subject, origin, datafile));
      }
    }
    const first = (w: WorkerdSubject): number => median(samples[w].map((s) => s.firstMs));
    const warm = (w: WorkerdSubject): number => median(samples[w].map((s) => s.warmMs));
    // Differences are taken within each round (the four processes of a round ran seconds apart),
    // then the median of those: drift of the shared machine cancels better than between medians.
    const paired = (f: (i: number) => number): number =>
      median(Array.from({ length: WORKERD_RUNS }, (_, i) => f(i)));
    const at = (w: WorkerdSubject, i: number): WorkerdSample => samples[w][i]!;
    const decided = Math.min(...samples.page.map((s) => s.decided));
    const note = `median of ${WORKERD_RUNS} fresh workerd processes each, rotating; differences paired per round`;
    rows.push(
      {
        subject: "workerd spawn → first page's last byte, ours",
        value: first("page"),
        unit: "ms",
        note: `${note}; ${decided} experiments decided on the first page`,
        status: decided === 10 ? "OK" : "WARN",
      },
      {
        subject: "workerd spawn → first response, ours unrouted",
        value: first("unrouted"),
        unit: "ms",
        note: "no route for the request: start-up, then a pass-through",
      },
      {
        subject: "workerd spawn → first response, pass-through padded to our size",
        value: first("padded"),
        unit: "ms",
        ratio: first("padded") / first("unrouted"),
      },
      {
        subject: "workerd spawn → first response, pass-through",
        value: first("peer"),
        unit: "ms",
        ratio: first("peer") / first("unrouted"),
        note: "workerd's own start-up",
      },
      {
        subject: "script start-up in workerd (unrouted − padded pass-through)",
        value: paired((i) => at("unrouted", i).firstMs - at("padded", i).firstMs),
        unit: "ms",
        note: "compile + evaluate in workerd, the config's per-byte cost cancelled",
      },
      {
        subject: "first page view in a fresh isolate, added over the padded pass-through",
        value: paired((i) => at("page", i).firstMs - at("padded", i).firstMs),
        unit: "ms",
      },
      {
        subject: "warm page view (same process), ours",
        value: warm("page"),
        unit: "ms",
        note: `median of ${WARM_REQUESTS} requests after the first, per process`,
      },
      {
        subject: "warm page view, pass-through",
        value: warm("peer"),
        unit: "ms",
        ratio: warm("peer") / warm("page"),
      },
      {
        subject: "first page's first-call costs (beyond start-up and a warm page)",
        value: paired(
          (i) =>
            at("page", i).firstMs -
            at("unrouted", i).firstMs -
            (at("page", i).warmMs - at("peer", i).warmMs),
        ),
        unit: "ms",
        note: "datafile read and compile, first calls of the page path's functions",
      },
    );
    load.push(currentLoad());
    rows.push(loadRow(load));
    return rows;
  } finally {
    await origin.close();
    dir.remove();
  }
}
