/**
 * `npm run load [-- --duration 20 --connections 16 --shards 4]`: a bounded load test of the
 * whole pipeline under real `wrangler dev`, then an exactly-once check of what it counted
 * (docs/benchmarks.md "Load", docs/reliability.md).
 *
 * World (fresh each run, in a temporary directory, on free loopback ports): a local origin
 * serving HTML pages (~9 KB) in this process; the Worker (src/index.ts, bundled once at the start
 * with `wrangler deploy --dry-run` so that edits to src/ during the run neither rebuild nor reload
 * it) under `wrangler dev` with the queue consumer (batch timeout 1 s, a queue name of its own so no other `wrangler dev`
 * on the machine can take its messages), D1 migrated; a datafile with four running immediate
 * experiments (one on 80 % of traffic), a pageview goal on product pages and a `purchase` event,
 * published to local KV.
 *
 * Load (autocannon, N keep-alive connections, closed loop): every connection plays visitor after
 * visitor, each a new `ss_vid`: GET / → GET /products/a → POST /_ss/events (a purchase with its
 * own uuid) → GET /products/b → GET /assets/app.css. After `--duration` seconds each connection
 * finishes the request it has in flight and stops (none is abandoned mid-flight, so the client
 * knows the outcome of every request it sent).
 *
 * Ledger: from the responses only — the `x-ss-decisions` header of every 200 page (the visitor's
 * variation per experiment; the edge queued one impression per decision, plus the pageview goal on
 * product pages) and every 204 of the purchases. Expected: unique visitors per experiment and
 * variation; events per experiment, variation and event = the visitor's accepted conversions while
 * exposed (docs/events.md).
 *
 * Event layout: `--shards N` (default 4) visitor shards hold the per-visitor state (dedupe keys,
 * exposures, stored conversions, converters: SQLite Durable Objects, in the same `wrangler dev`);
 * `--shards 0` keeps it in D1's own tables (the single-database consumer). The layout is recorded
 * before the first event (`EVENT_SHARDS`, read back through the admin API) and checked.
 *
 * Then it waits until the consumer has drained the queue and compares with what was counted: the
 * aggregates from the local D1 file (read-only, node:sqlite) — variation_daily visitors,
 * metric_daily events — and the number of distinct event uuids kept for dedupe against the number
 * of events the client caused: Σ seen_events rows over the shards (`GET
 * /_ss/api/v1/admin/event-layout?stats=true`), or D1's seen_events with `--shards 0`. With shards,
 * D1 must hold no per-visitor row at all.
 *
 * Redelivery, after that check: already-accepted events are sent again with the same uuids —
 * a sample of the load's purchases re-POSTed to `/_ss/events` (same body, same visitor), and SDK
 * batches (`/_ss/v1/events`, new visitors: an impression and a purchase each) sent once, counted
 * in the ledger, then sent twice more, byte for byte. A fresh visitor's page view follows them in
 * the queue (it is counted only after everything before it). Every count must still equal the
 * ledger, which counts each event once. Those duplicates reach the consumer as new queue
 * messages. Then a redelivery by the queue itself: the script takes D1's write lock (`BEGIN
 * IMMEDIATE` on the local D1 file) and sends a new SDK batch; the consumer's D1 write fails with
 * SQLITE_BUSY and it retries the batch; at the first failure in wrangler's output the lock is
 * released and the local queue delivers the batch again. With shards the shards have by then
 * counted the batch and kept its deltas (read from their local SQLite files at the moment of the
 * failure): the redelivery must find the events seen and hand the same deltas over once. Exit 1
 * on any difference, when requests failed (the ledger cannot be exact) or when the consumer
 * failure was not seen.
 */
import autocannon from "autocannon";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  BROWSER_UA,
  bundleWorker,
  localD1File,
  localShardFiles,
  readEventLayout,
  sdkBatch,
  sdkEventsRequest,
  useBundle,
  type EventIds,
} from "../bench/lib/events-world";
import {
  applyLocalMigrations,
  exitOnSignals,
  putLocalKv,
  repoRoot,
  startOrigin,
  startWranglerDev,
  tempDir,
  type LocalOrigin,
  type WranglerDev,
} from "../bench/lib/wrangler-dev";

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "20" },
    connections: { type: "string", default: "16" },
    shards: { type: "string", default: "4" },
    help: { type: "boolean", default: false },
  },
});
if (args.help) {
  console.log(
    "npm run load [-- --duration SECONDS (20)] [--connections N (16)] [--shards N (4; 0 = per-visitor state in D1)]",
  );
  process.exit(0);
}
const DURATION_S = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const SHARDS = Number(args.shards);
if (
  !(DURATION_S > 0) ||
  !Number.isInteger(CONNECTIONS) ||
  CONNECTIONS < 1 ||
  !Number.isInteger(SHARDS) ||
  SHARDS < 0 ||
  SHARDS > 4096
) {
  console.error(
    "--duration must be > 0 seconds, --connections a positive integer and --shards 0–4096",
  );
  process.exit(2);
}
const SDK_KEY = "load";
const ADMIN_TOKEN = "load-admin-token";
/** At most this many of the load's purchases are sent again with their uuids. */
const REDELIVER_PURCHASES = 300;
/** SDK batches sent once and then twice more, of this many visitors (impression + purchase). */
const REDELIVER_SDK_BATCHES = 10;
const REDELIVER_SDK_VISITORS = 10;
/** Longest the D1 write lock is held while waiting for the consumer to fail. */
const LOCK_MAX_MS = 10_000;
/** Give up waiting for the consumer after this long without progress. */
const DRAIN_STALL_MS = 15_000;

// ------------------------------------------------------------------------------ datafile

const EXPERIMENTS = {
  hero: { id: "8001", variations: ["control", "bold"], split: [5000, 10000] },
  cta: { id: "8002", variations: ["control", "green", "big"], split: [3333, 6666, 10000] },
  promo: { id: "8003", variations: ["none", "banner"], split: [4000, 8000] }, // 80 % of traffic
  layout: { id: "8004", variations: ["classic", "wide"], split: [5000, 10000] },
} as const;
type ExperimentKey = keyof typeof EXPERIMENTS;
const EVENTS = { productView: "8101", purchase: "8102" } as const;
const EVENT_KEYS: Record<string, string> = {
  [EVENTS.productView]: "product_view",
  [EVENTS.purchase]: "purchase",
};
const variationId = (experiment: ExperimentKey, variation: string) =>
  `${EXPERIMENTS[experiment].id}_${variation}`;

function datafile(): Record<string, unknown> {
  const host = "^https?://127\\.0\\.0\\.1(:\\d+)?";
  const changes: Record<string, unknown[]> = {
    [variationId("hero", "bold")]: [
      { type: "attribute", selector: "h1", attributes: { text: "Built to last" } },
    ],
    [variationId("cta", "green")]: [
      { type: "attribute", selector: "#buy", attributes: { addClass: "btn-green" } },
    ],
    [variationId("cta", "big")]: [
      { type: "attribute", selector: "#buy", attributes: { text: "Add to cart — ships today" } },
    ],
    [variationId("promo", "banner")]: [
      {
        type: "insert_html",
        selector: "body",
        position: "prepend",
        html: '<div id="promo">Free shipping this week</div>',
      },
    ],
    [variationId("layout", "wide")]: [{ type: "custom_css", value: "main{max-width:1400px}" }],
  };
  const pagesOf: Record<ExperimentKey, string[]> = {
    hero: ["home", "product"],
    cta: ["product"],
    promo: ["home"],
    layout: ["home", "product"],
  };
  const entries = Object.entries(EXPERIMENTS) as Array<
    [ExperimentKey, (typeof EXPERIMENTS)[ExperimentKey]]
  >;
  return {
    version: "4",
    accountId: "80",
    projectId: "800",
    revision: "1",
    sdkKey: SDK_KEY,
    anonymizeIP: true,
    botFiltering: true,
    attributes: [],
    audiences: [],
    typedAudiences: [],
    events: [
      { id: EVENTS.productView, key: "product_view", experimentIds: [EXPERIMENTS.cta.id] },
      { id: EVENTS.purchase, key: "purchase", experimentIds: entries.map(([, e]) => e.id) },
    ],
    experiments: entries.map(([key, e]) => ({
      id: e.id,
      key,
      status: "Running",
      layerId: `layer_${e.id}`,
      variations: e.variations.map((v) => ({ id: variationId(key, v), key: v })),
      trafficAllocation: e.variations.map((v, i) => ({
        entityId: variationId(key, v),
        endOfRange: e.split[i],
      })),
      audienceIds: [],
      forcedVariations: {},
    })),
    groups: [],
    featureFlags: [],
    rollouts: [],
    web: {
      pages: [
        {
          id: "home",
          key: "home",
          activation: "immediate",
          conditions: ["or", { match: "regex", value: `${host}/$` }],
        },
        {
          id: "product",
          key: "product",
          activation: "immediate",
          conditions: ["or", { match: "regex", value: `${host}/products/\\d+$` }],
        },
      ],
      experiments: entries.map(([key, e]) => ({
        id: e.id,
        type: "ab",
        pageIds: pagesOf[key],
        metrics: [{ eventId: EVENTS.purchase, aggregator: "unique" }],
        variations: e.variations.map((v) => ({
          id: variationId(key, v),
          changes: changes[variationId(key, v)] ?? [],
        })),
      })),
      events: [{ id: EVENTS.productView, type: "pageview", pageId: "product" }],
    },
  };
}

// ------------------------------------------------------------------------------ origin

function page(title: string): string {
  const items = Array.from(
    { length: 60 },
    (_, i) =>
      `<li class="item"><a href="/products/${i}">Trail item ${i}</a><p>Light, tough and made to be repaired: item ${i} of our field-tested range.</p></li>`,
  ).join("\n");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title><link rel="stylesheet" href="/assets/app.css"></head><body><header><nav><a href="/">Home</a></nav></header><main><h1>${title}</h1><a id="buy" class="btn" href="/cart">Add to cart</a><ul>${items}</ul></main><footer>Trailhead Supply Co.</footer></body></html>`;
}
const HOME = page("Trailhead Supply Co.");
const PRODUCT = page("Trail pack 30 L");
const CSS = "body{font-family:sans-serif}.btn{padding:8px}\n".repeat(40);

function serveOrigin(request: IncomingMessage, response: ServerResponse): void {
  const path = new URL(request.url ?? "/", "http://origin").pathname;
  request.resume();
  const send = (status: number, type: string, body: string) => {
    response.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
    response.end(body);
  };
  if (path === "/") return send(200, "text/html; charset=utf-8", HOME);
  if (/^\/products\/\d+$/.test(path)) return send(200, "text/html; charset=utf-8", PRODUCT);
  if (path === "/assets/app.css") return send(200, "text/css", CSS);
  send(404, "text/plain", "not found");
}

// ------------------------------------------------------------------------------ ledger

/** What must be counted, from the responses the client got (see the module comment). */
class Ledger {
  private readonly exposures = new Map<string, Map<ExperimentKey, string>>();
  readonly visitors = new Map<string, number>(); // "exp/variation" → unique visitors
  readonly events = new Map<string, number>(); // "exp/variation/eventId" → events
  /** Impressions and pageview goals the edge queued, purchases accepted: every event caused. */
  eventsCaused = 0;
  impressions = 0;
  conversions = 0;
  inconsistent: string[] = [];

  /** Visitors with at least one page served. */
  get visitorCount(): number {
    return this.exposures.size;
  }

  private add(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  page(visitorId: string, decisionsHeader: string | undefined, pageviewGoal: string | null): void {
    const mine = this.exposures.get(visitorId) ?? new Map<ExperimentKey, string>();
    this.exposures.set(visitorId, mine);
    for (const pair of (decisionsHeader ?? "").split(", ")) {
      if (pair === "") continue;
      const [key, variation] = pair.split("=").map(decodeURIComponent) as [ExperimentKey, string];
      if (!(key in EXPERIMENTS)) continue;
      this.impressions++;
      this.eventsCaused++;
      const known = mine.get(key);
      if (known === undefined) {
        mine.set(key, variation);
        this.add(this.visitors, `${key}/${variation}`);
      } else if (known !== variation) {
        this.inconsistent.push(`${visitorId}: ${key} was ${known}, now ${variation}`);
      }
    }
    if (pageviewGoal !== null) this.conversion(visitorId, pageviewGoal);
  }

  conversion(visitorId: string, eventId: string): void {
    this.conversions++;
    this.eventsCaused++;
    for (const [key, variation] of this.exposures.get(visitorId) ?? [])
      this.add(this.events, `${key}/${variation}/${eventId}`);
  }
}

// ------------------------------------------------------------------------------ D1

async function openD1(persistTo: string) {
  // node:sqlite is experimental in Node 22: keep its one-line warning out of the report.
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    if (!String(warning).includes("SQLite"))
      (emitWarning as (...a: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  const { DatabaseSync } = await import("node:sqlite");
  process.emitWarning = emitWarning;
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.name.endsWith(".sqlite") && entry.name !== "metadata.sqlite")
        files.push(join(dir, entry.name));
    }
  };
  walk(join(persistTo, "v3", "d1"));
  for (const file of files) {
    const db = new DatabaseSync(file, { readOnly: true });
    if (db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'variation_daily'").get()) return db;
    db.close();
  }
  throw new Error(`no D1 database with the events tables under ${persistTo}`);
}

/** Σ dedupe keys and outbox entries over the shards' local SQLite files (read-only). */
async function shardFileCounts(persistTo: string): Promise<{ seen: number; outbox: number }> {
  const { DatabaseSync } = await import("node:sqlite");
  let seen = 0;
  let outbox = 0;
  for (const file of localShardFiles(persistTo)) {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      if (!db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'outbox'").get()) continue;
      seen += Number(
        (db.prepare("SELECT count(*) AS n FROM seen_events").get() as { n: number }).n,
      );
      outbox += Number((db.prepare("SELECT count(*) AS n FROM outbox").get() as { n: number }).n);
    } finally {
      db.close();
    }
  }
  return { seen, outbox };
}

interface Counted {
  visitors: Map<string, number>;
  events: Map<string, number>;
  /** Distinct event uuids kept for dedupe: Σ over the shards, or D1's with no shards. */
  seen: number;
  /** Rows of D1's own per-visitor tables (none when shards hold the state). */
  d1PerVisitor: number;
  /** Outbox entries the shards hold that D1 may not have yet. */
  pending: number;
}

/** The per-visitor tables (D1's own with no shards, each shard's otherwise). */
const PER_VISITOR_TABLES = ["seen_events", "exposures", "conversions", "converters"] as const;

/** Aggregates from D1; dedupe keys from the shards (admin API), or from D1 without shards. */
async function readCounts(db: Awaited<ReturnType<typeof openD1>>, base: string): Promise<Counted> {
  const d1 = readD1Counts(db);
  if (SHARDS === 0) return { ...d1, seen: d1.d1Seen, pending: 0 };
  const layout = await readEventLayout(base, ADMIN_TOKEN);
  const stats = layout.shardStats ?? [];
  return {
    ...d1,
    seen: stats.reduce((n, s) => n + s.rows.seen_events, 0),
    pending: stats.reduce((n, s) => n + s.pending, 0),
  };
}

function readD1Counts(
  db: Awaited<ReturnType<typeof openD1>>,
): Omit<Counted, "seen" | "pending"> & { d1Seen: number } {
  const keyOf = new Map<string, string>();
  for (const [key, e] of Object.entries(EXPERIMENTS)) keyOf.set(e.id, key);
  const variationKey = (id: string) => id.slice(id.indexOf("_") + 1);
  const visitors = new Map<string, number>();
  for (const row of db
    .prepare(
      "SELECT experiment_id AS e, variation_id AS v, SUM(visitors) AS n FROM variation_daily WHERE sdk_key = ? GROUP BY 1, 2",
    )
    .all(SDK_KEY) as Array<{ e: string; v: string; n: number }>)
    visitors.set(`${keyOf.get(row.e) ?? row.e}/${variationKey(row.v)}`, Number(row.n));
  const events = new Map<string, number>();
  for (const row of db
    .prepare(
      "SELECT experiment_id AS e, variation_id AS v, event_id AS ev, SUM(events) AS n FROM metric_daily WHERE sdk_key = ? GROUP BY 1, 2, 3",
    )
    .all(SDK_KEY) as Array<{ e: string; v: string; ev: string; n: number }>)
    events.set(`${keyOf.get(row.e) ?? row.e}/${variationKey(row.v)}/${row.ev}`, Number(row.n));
  const seen = db
    .prepare("SELECT count(*) AS n FROM seen_events WHERE sdk_key = ?")
    .get(SDK_KEY) as {
    n: number;
  };
  let d1PerVisitor = 0;
  for (const table of PER_VISITOR_TABLES)
    d1PerVisitor += Number(
      (db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n,
    );
  return { visitors, events, d1Seen: Number(seen.n), d1PerVisitor };
}

// ------------------------------------------------------------------------------ config

/**
 * wrangler.toml for this run: absolute paths, no [dev] section (the Worker sees the URL asked
 * for), a 1 s queue batch timeout, and queue names of its own.
 */
function loadConfig(dir: string): string {
  const source = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  const out: string[] = [];
  let skipping = false;
  for (const line of source.split(/\r?\n/)) {
    if (/^\s*\[/.test(line)) skipping = /^\s*\[dev\]/.test(line);
    if (!skipping) out.push(line);
  }
  const queue = `splitstream-load-${process.pid}`;
  const text = out
    .join("\n")
    .replace(/^main\s*=.*$/m, `main = ${JSON.stringify(join(repoRoot, "src", "index.ts"))}`)
    .replace(
      /^migrations_dir\s*=.*$/m,
      `migrations_dir = ${JSON.stringify(join(repoRoot, "migrations"))}`,
    )
    .replace(/^max_batch_timeout\s*=.*$/m, "max_batch_timeout = 1")
    .replace(/^queue\s*=\s*"splitstream-events"\s*$/gm, `queue = "${queue}"`)
    .replace(/^dead_letter_queue\s*=.*$/m, `dead_letter_queue = "${queue}-dlq"`);
  const file = join(dir, "wrangler.toml");
  writeFileSync(file, text);
  writeFileSync(
    join(dir, ".dev.vars"),
    "ADMIN_TOKEN=load-admin-token\nSIGNING_KEY=load-signing-key\n",
  );
  return file;
}

// ------------------------------------------------------------------------------ run

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

type AutocannonRequest = NonNullable<autocannon.Options["requests"]>[number];
type Context = { vid?: string; product?: number; uuid?: string; body?: string };

/** The datafile's ids as an SDK batch names them (the `hero` experiment and `purchase`). */
const SDK_IDS: EventIds = {
  accountId: "80",
  projectId: "800",
  revision: "1",
  experimentId: EXPERIMENTS.hero.id,
  layerId: `layer_${EXPERIMENTS.hero.id}`,
  variations: EXPERIMENTS.hero.variations.map((v) => variationId("hero", v)),
  purchase: EVENTS.purchase,
};

/** Runs `task` over `items`, `concurrency` at a time. */
async function pool<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

async function main(): Promise<number> {
  const started = performance.now();
  const state = tempDir("splitstream-load-");
  let origin: LocalOrigin | undefined;
  let dev: WranglerDev | undefined;
  const load = [loadavg()[0] ?? 0];
  try {
    origin = await startOrigin(serveOrigin);
    const config = loadConfig(state.path);
    // A snapshot of src/: no rebuild or reload (which drops the queue's in-flight batch) when
    // src/ is edited during the run.
    useBundle(config, await bundleWorker(config, join(state.path, "dist")));
    const persistTo = join(state.path, "state");
    await applyLocalMigrations(config, persistTo);
    await putLocalKv({
      config,
      binding: "DATAFILES",
      persistTo,
      key: `datafiles/${SDK_KEY}`,
      value: JSON.stringify(datafile()),
    });
    dev = await startWranglerDev({
      config,
      persistTo,
      readyPath: "/_ss/health",
      vars: {
        ROUTES: JSON.stringify([{ pattern: "127.0.0.1/*", sdk_key: SDK_KEY, origin: origin.url }]),
        EVENT_SHARDS: String(SHARDS),
      },
    });
    // The first read records the layout (nothing counted yet: EVENT_SHARDS decides).
    const layout = await readEventLayout(dev.url, ADMIN_TOKEN);
    if (layout.shards !== SHARDS)
      throw new Error(
        `event layout: asked for ${SHARDS} shards, the Worker recorded ${layout.shards}`,
      );
    const setupMs = performance.now() - started;
    const ledger = new Ledger();
    const common = { "user-agent": BROWSER_UA, "accept-encoding": "identity" };

    // Warm-up: one visitor per connection through the same ledger (isolate, datafile, routes).
    let visitorSeq = 0;
    const nextVisitor = () => `load${process.pid}v${++visitorSeq}`;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        const vid = nextVisitor();
        const response = await fetch(`${dev!.url}/`, {
          headers: { ...common, cookie: `ss_vid=${vid}` },
        });
        await response.arrayBuffer();
        if (response.status === 200)
          ledger.page(vid, response.headers.get("x-ss-decisions") ?? undefined, null);
      }),
    );

    let failures = 0;
    /** Every accepted purchase, to send again (redelivery). */
    const accepted: Array<{ vid: string; body: string }> = [];
    const statuses = new Map<string, number>();
    const note = (kind: string, status: number, expected: number) => {
      const label = `${kind} ${status}`;
      statuses.set(label, (statuses.get(label) ?? 0) + 1);
      if (status !== expected) failures++;
    };
    const header = (headers: Record<string, string | string[]>, name: string) => {
      for (const [k, v] of Object.entries(headers))
        if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
      return undefined;
    };
    const pageRequest = (
      kind: string,
      path: (ctx: Context) => string,
      goal: string | null,
      first = false,
    ): AutocannonRequest => ({
      method: "GET",
      setupRequest: (request, context) => {
        const ctx = context as Context;
        if (first) {
          ctx.vid = nextVisitor();
          ctx.product = visitorSeq % 50;
        }
        return {
          ...request,
          path: path(ctx),
          headers: { ...common, cookie: `ss_vid=${ctx.vid}` },
        };
      },
      onResponse: (status, _body, context, headers) => {
        note(kind, status, 200);
        if (status === 200)
          ledger.page(
            (context as Context).vid!,
            header(headers as Record<string, string | string[]>, "x-ss-decisions"),
            goal,
          );
      },
    });
    const requests: AutocannonRequest[] = [
      pageRequest("GET /", () => "/", null, true),
      pageRequest("GET /products/a", (c) => `/products/${c.product}`, EVENTS.productView),
      {
        method: "POST",
        path: "/_ss/events",
        setupRequest: (request, context) => {
          const ctx = context as Context;
          ctx.uuid = crypto.randomUUID();
          ctx.body = JSON.stringify({
            events: [{ key: "purchase", revenue: 1299, value: 2.5, uuid: ctx.uuid }],
          });
          return {
            ...request,
            headers: {
              ...common,
              cookie: `ss_vid=${ctx.vid}`,
              "content-type": "text/plain;charset=UTF-8",
            },
            body: ctx.body,
          };
        },
        onResponse: (status, _body, context) => {
          note("POST /_ss/events", status, 204);
          const ctx = context as Context;
          if (status === 204) {
            ledger.conversion(ctx.vid!, EVENTS.purchase);
            accepted.push({ vid: ctx.vid!, body: ctx.body! });
          }
        },
      },
      pageRequest(
        "GET /products/b",
        (c) => `/products/${(c.product ?? 0) + 1}`,
        EVENTS.productView,
      ),
      {
        method: "GET",
        path: "/assets/app.css",
        setupRequest: (request, context) => ({
          ...request,
          headers: { ...common, cookie: `ss_vid=${(context as Context).vid}` },
        }),
        onResponse: (status) => note("GET /assets/app.css", status, 200),
      },
    ];

    console.log(
      `load: ${CONNECTIONS} connections for ${DURATION_S} s against ${dev.url} (origin ${origin.url}); setup took ${fmt(setupMs / 1000, 1)} s`,
    );
    const runStart = performance.now();
    const deadline = runStart + DURATION_S * 1000;
    let lastDone = runStart;
    const result = await autocannon({
      url: dev.url,
      connections: CONNECTIONS,
      pipelining: 1,
      // Our own deadline ends the run; this is only a safety net.
      duration: DURATION_S + 60,
      timeout: 30,
      requests,
      setupClient: (client) => {
        // At the deadline a connection stops after its in-flight response: nothing abandoned.
        client.on("response", () => {
          if (performance.now() >= deadline) (client as unknown as { destroy(): void }).destroy();
        });
        (client as unknown as NodeJS.EventEmitter).on("done", () => {
          lastDone = performance.now();
        });
      },
    });
    load.push(loadavg()[0] ?? 0);
    const elapsedS = (lastDone - runStart) / 1000;
    const completed = result.requests.total;
    const errors = result.errors + result.timeouts;

    // Drain: until every event the client caused has its dedupe key (and the shards handed every
    // delta to D1), or no progress for DRAIN_STALL_MS.
    const db = await openD1(persistTo);
    const count = () => readCounts(db, dev!.url);
    const drain = async (): Promise<Counted> => {
      let counts = await count();
      let lastProgress = performance.now();
      while (
        (counts.seen < ledger.eventsCaused || counts.pending > 0) &&
        performance.now() - lastProgress < DRAIN_STALL_MS
      ) {
        await new Promise((r) => setTimeout(r, 250));
        const next = await count();
        if (next.seen !== counts.seen || next.pending !== counts.pending)
          lastProgress = performance.now();
        counts = next;
      }
      // Two more queue batch timeouts: anything counted twice would show up now.
      await new Promise((r) => setTimeout(r, 2000));
      return count();
    };
    const drainStart = performance.now();
    const counts = await drain();
    const drainS = (performance.now() - drainStart - 2000) / 1000;

    // ---------------------------------------------------------------- report
    const requestsTotal = completed + errors;
    console.log("");
    console.log("Load (autocannon, closed loop, Accept-Encoding: identity)");
    const rows: Array<[string, string]> = [
      ["requests completed", fmt(completed)],
      ["duration", `${fmt(elapsedS, 1)} s`],
      ["throughput", `${fmt(completed / elapsedS, 0)} req/s`],
      ["latency p50 / p99", `${fmt(result.latency.p50, 0)} / ${fmt(result.latency.p99, 0)} ms`],
      [
        "latency mean / max",
        `${fmt(result.latency.average, 1)} / ${fmt(result.latency.max, 0)} ms`,
      ],
      ["non-2xx responses", fmt(result.non2xx)],
      ["connection errors / timeouts", `${fmt(result.errors)} / ${fmt(result.timeouts)}`],
      [
        "error rate (unexpected status or error)",
        `${fmt((100 * (failures + errors)) / Math.max(1, requestsTotal), 2)} %`,
      ],
      ["visitors (with a page served)", fmt(ledger.visitorCount)],
      ["impressions queued by the edge (from x-ss-decisions)", fmt(ledger.impressions)],
      ["conversions (pageview goals + accepted purchases)", fmt(ledger.conversions)],
      ["queue drained in", `${fmt(Math.max(0, drainS), 1)} s`],
      [
        "machine load (1-min avg, start / end)",
        `${load.map((l) => l.toFixed(1)).join(" / ")} on ${availableParallelism()} cores`,
      ],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`);
    console.log("  by request:");
    for (const [label, n] of [...statuses].sort()) console.log(`    ${label.padEnd(28)} ${fmt(n)}`);

    console.log("");
    console.log(
      `Exactly-once: client ledger vs D1 aggregates (all days and revisions) and dedupe keys (${SHARDS === 0 ? "D1" : `Σ over ${SHARDS} shards`})`,
    );
    const compare = (c: Counted, print: boolean): number => {
      const lines: Array<[string, string, number, number]> = [];
      for (const [key, e] of Object.entries(EXPERIMENTS))
        for (const v of e.variations) {
          const cell = `${key}/${v}`;
          lines.push([cell, "visitors", ledger.visitors.get(cell) ?? 0, c.visitors.get(cell) ?? 0]);
          for (const eventId of Object.values(EVENTS))
            lines.push([
              cell,
              EVENT_KEYS[eventId]!,
              ledger.events.get(`${cell}/${eventId}`) ?? 0,
              c.events.get(`${cell}/${eventId}`) ?? 0,
            ]);
        }
      // Anything D1 has that the ledger has no line for is a difference too.
      const known = new Set(lines.map(([cell, what]) => `${cell}/${what}`));
      for (const [cell, n] of c.visitors)
        if (!known.has(`${cell}/visitors`)) lines.push([cell, "visitors", 0, n]);
      for (const [cell, n] of c.events) {
        const [e, v, ev] = cell.split("/");
        if (!known.has(`${e}/${v}/${EVENT_KEYS[ev!] ?? ev}`))
          lines.push([`${e}/${v}`, EVENT_KEYS[ev!] ?? ev!, 0, n]);
      }
      lines.push([
        "all",
        `distinct event uuids (seen_events${SHARDS === 0 ? "" : ", shards"})`,
        ledger.eventsCaused,
        c.seen,
      ]);
      if (SHARDS > 0) lines.push(["all", "per-visitor rows in D1", 0, c.d1PerVisitor]);
      const w1 = Math.max(...lines.map(([cell]) => cell.length), 10);
      const w2 = Math.max(...lines.map(([, what]) => what.length), 6);
      if (print)
        console.log(
          `  ${"cell".padEnd(w1)}  ${"what".padEnd(w2)}  ${"client".padStart(8)}  ${"counted".padStart(8)}`,
        );
      let differ = 0;
      for (const [cell, what, expected, actual] of lines) {
        const ok = expected === actual;
        if (!ok) differ++;
        if (print || !ok)
          console.log(
            `  ${cell.padEnd(w1)}  ${what.padEnd(w2)}  ${fmt(expected).padStart(8)}  ${fmt(actual).padStart(8)}  ${ok ? "ok" : "MISMATCH"}`,
          );
      }
      return differ;
    };
    let mismatches = compare(counts, true);
    for (const problem of ledger.inconsistent.slice(0, 10))
      console.log(`  sticky variation broken: ${problem}`);

    // ---------------------------------------------------------------- redelivery
    const before = { seen: counts.seen, events: ledger.eventsCaused };
    // Spread over the whole run: early, middle and late purchases alike.
    const resendCount = Math.min(REDELIVER_PURCHASES, accepted.length);
    const resend = Array.from(
      { length: resendCount },
      (_, i) => accepted[Math.floor((i * accepted.length) / resendCount)]!,
    );
    let resendFailures = 0;
    const resendStatuses = new Map<string, number>();
    const resendStatus = (kind: string, status: number, expected = 204) => {
      const label = `${kind} ${status}`;
      resendStatuses.set(label, (resendStatuses.get(label) ?? 0) + 1);
      if (status !== expected) resendFailures++;
    };
    await pool(resend, 8, async ({ vid, body }) => {
      const response = await fetch(`${dev!.url}/_ss/events`, {
        method: "POST",
        headers: { ...common, cookie: `ss_vid=${vid}`, "content-type": "text/plain;charset=UTF-8" },
        body,
      });
      await response.arrayBuffer();
      resendStatus("POST /_ss/events (again)", response.status);
    });
    // SDK batches: new visitors, each an impression in `hero` and a purchase; sent once (into the
    // ledger), then the same bodies twice more.
    const sdkBodies: string[] = [];
    for (let b = 0; b < REDELIVER_SDK_BATCHES; b++) {
      const vids = Array.from(
        { length: REDELIVER_SDK_VISITORS },
        (_, i) => `load${process.pid}sdk${b}v${i}`,
      );
      sdkBodies.push(
        JSON.stringify(sdkBatch(SDK_IDS, vids, { impressions: true, conversions: true })),
      );
    }
    const postSdk = async (body: string): Promise<number> => {
      const init = sdkEventsRequest({});
      const response = await fetch(`${dev!.url}/_ss/v1/events`, { ...init, body });
      await response.arrayBuffer();
      return response.status;
    };
    /** Sends a new SDK batch (visitors `vids`, built by sdkBatch) into the ledger. */
    const firstSdk = async (body: string, vids: string[], kind: string): Promise<void> => {
      const status = await postSdk(body);
      resendStatus(kind, status);
      if (status !== 204) return;
      vids.forEach((vid, i) => {
        ledger.page(vid, `hero=${EXPERIMENTS.hero.variations[i % 2]}`, null);
        ledger.conversion(vid, EVENTS.purchase);
      });
    };
    for (const [b, body] of sdkBodies.entries())
      await firstSdk(
        body,
        Array.from({ length: REDELIVER_SDK_VISITORS }, (_, i) => `load${process.pid}sdk${b}v${i}`),
        "POST /_ss/v1/events (first)",
      );
    const sdkFirst = ledger.eventsCaused - before.events;
    await pool([...sdkBodies, ...sdkBodies], 4, async (body) =>
      resendStatus("POST /_ss/v1/events (again)", await postSdk(body)),
    );
    // A fresh visitor's page view after every duplicate: counted only once they were.
    const sentinel = `load${process.pid}sentinel`;
    const sentinelPage = await fetch(`${dev.url}/`, {
      headers: { ...common, cookie: `ss_vid=${sentinel}` },
    });
    await sentinelPage.arrayBuffer();
    resendStatus("GET / (sentinel)", sentinelPage.status, 200);
    if (sentinelPage.status === 200)
      ledger.page(sentinel, sentinelPage.headers.get("x-ss-decisions") ?? undefined, null);
    const sentinelEvents = ledger.eventsCaused - before.events - sdkFirst;
    const redeliveryStart = performance.now();
    const after = await drain();
    const redeliveryS = (performance.now() - redeliveryStart - 2000) / 1000;

    console.log("");
    console.log(
      "Redelivery: accepted events sent again with the same uuids (through the endpoints)",
    );
    const redeliveryRows: Array<[string, string]> = [
      [
        "purchases re-POSTed to /_ss/events (same body, same visitor)",
        `${fmt(resend.length)} of ${fmt(accepted.length)}`,
      ],
      [
        "SDK batches to /_ss/v1/events, sent once then twice more",
        `${fmt(sdkBodies.length)} × ${REDELIVER_SDK_VISITORS} visitors (${fmt(sdkFirst)} events; ${fmt(2 * sdkFirst)} duplicates)`,
      ],
      ["sentinel page view after the duplicates", `${fmt(sentinelEvents)} impression(s)`],
      ["unexpected statuses", fmt(resendFailures)],
      [
        "dedupe keys before / after (expected + new events only)",
        `${fmt(before.seen)} / ${fmt(after.seen)} (expected ${fmt(ledger.eventsCaused)})`,
      ],
      ["counted after the re-sends in", `${fmt(Math.max(0, redeliveryS), 1)} s`],
    ];
    const rw = Math.max(...redeliveryRows.map(([k]) => k.length));
    for (const [k, v] of redeliveryRows) console.log(`  ${k.padEnd(rw)}  ${v}`);
    console.log("  by request:");
    for (const [label, n] of [...resendStatuses].sort())
      console.log(`    ${label.padEnd(32)} ${fmt(n)}`);
    const redeliveryMismatches = compare(after, false);
    console.log(
      redeliveryMismatches === 0
        ? `  every cell and the dedupe keys equal the ledger: each duplicate counted once`
        : `  ${redeliveryMismatches} line(s) differ from the ledger after the re-sends`,
    );
    mismatches += redeliveryMismatches;

    // A batch the local queue itself delivers again: D1 is write-locked from this process while
    // a new SDK batch reaches the consumer, whose D1 write then fails (SQLITE_BUSY) — it retries
    // the batch; the lock is released at the first failure and the queue redelivers the batch.
    // With shards (and the consumer's layout and caps cached, as between the batches of a run)
    // the shards have counted the batch and kept its deltas before D1 refuses them: the
    // redelivery finds the events seen and hands the kept deltas over again.
    const lockedVids = Array.from(
      { length: REDELIVER_SDK_VISITORS * 2 },
      (_, i) => `load${process.pid}locked${i}`,
    );
    const lockedBody = JSON.stringify(
      sdkBatch(SDK_IDS, lockedVids, { impressions: true, conversions: true }),
    );
    const failureLines = () =>
      dev!
        .output()
        .split("\n")
        .filter((line) => line.includes("could not process"));
    const knownFailures = new Set(failureLines());
    const shardsBefore = await shardFileCounts(persistTo);
    const eventsBeforeLock = ledger.eventsCaused;
    const { DatabaseSync } = await import("node:sqlite");
    const lock = new DatabaseSync(localD1File(persistTo));
    let failedAfterMs = Number.NaN;
    let shardsAtFailure = shardsBefore;
    const lockStart = performance.now();
    try {
      lock.exec("BEGIN IMMEDIATE"); // the write lock: readers go on, writers get SQLITE_BUSY
      await firstSdk(lockedBody, lockedVids, "POST /_ss/v1/events (D1 locked)");
      while (performance.now() - lockStart < LOCK_MAX_MS) {
        if (failureLines().some((line) => !knownFailures.has(line))) {
          failedAfterMs = performance.now() - lockStart;
          shardsAtFailure = await shardFileCounts(persistTo);
          break;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      lock.exec("ROLLBACK");
      lock.close();
    }
    const lockedEvents = ledger.eventsCaused - eventsBeforeLock;
    const afterLock = await drain();
    const failed = Number.isFinite(failedAfterMs);
    console.log("");
    console.log("Redelivery by the queue: a consumer failure (D1 write-locked from outside)");
    const lockRows: Array<[string, string]> = [
      ["new SDK batch sent while D1 was locked", `${fmt(lockedEvents)} events`],
      [
        "the consumer failed and retried the batch",
        failed
          ? `after ${fmt(failedAfterMs, 0)} ms; lock released, the local queue redelivered it`
          : `NOT SEEN within ${fmt(LOCK_MAX_MS / 1000, 0)} s (nothing was redelivered)`,
      ],
    ];
    if (SHARDS > 0)
      lockRows.push([
        "shards when D1 refused (dedupe keys / kept deltas)",
        failed
          ? `+${fmt(shardsAtFailure.seen - shardsBefore.seen)} / ${fmt(shardsAtFailure.outbox)} entries${shardsAtFailure.seen > shardsBefore.seen ? " — counted on the shards, not yet in D1" : " — the batch failed before the shards (a D1 read)"}`
          : "—",
      ]);
    lockRows.push([
      "dedupe keys after (expected)",
      `${fmt(afterLock.seen)} (${fmt(ledger.eventsCaused)})`,
    ]);
    const lw = Math.max(...lockRows.map(([k]) => k.length));
    for (const [k, v] of lockRows) console.log(`  ${k.padEnd(lw)}  ${v}`);
    const lockMismatches = compare(afterLock, false);
    console.log(
      lockMismatches === 0
        ? `  every cell and the dedupe keys equal the ledger: the redelivered batch counted once`
        : `  ${lockMismatches} line(s) differ from the ledger after the redelivery`,
    );
    mismatches += lockMismatches;
    if (!failed) {
      console.log("  the consumer failure was not exercised: the run is not clean");
      failures++;
    }
    db.close();
    if (resendFailures > 0) failures += resendFailures;

    const exact = mismatches === 0 && ledger.inconsistent.length === 0;
    const clean = failures === 0 && errors === 0;
    console.log("");
    console.log(
      exact && clean
        ? `EXACT: every accepted event counted exactly once (${fmt(ledger.eventsCaused)} events, ${fmt(ledger.visitorCount)} visitors, ${SHARDS === 0 ? "per-visitor state in D1" : `${SHARDS} shards`}; ${fmt(resend.length + 2 * sdkFirst)} duplicates counted once); total run ${fmt((performance.now() - started) / 1000, 1)} s`
        : exact
          ? `EXACT counts, but ${fmt(failures + errors)} request(s) failed: the run is not clean`
          : `MISMATCH: ${mismatches} line(s) differ${clean ? "" : ` (${fmt(failures + errors)} request(s) failed, their outcome is unknown to the client)`}`,
    );
    return exact && clean ? 0 : 1;
  } finally {
    await dev?.stop();
    await origin?.close();
    state.remove();
  }
}

exitOnSignals();
process.exitCode = await main().catch((error: unknown) => {
  console.error(error);
  return 1;
});
