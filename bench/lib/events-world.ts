/**
 * The event benches' world (bench/events-*.bench.ts): the Splitstream Worker under real
 * `wrangler dev` with a fresh local state in a temporary directory — for intake, with a datafile
 * in KV and no queue consumer, beside a peer Worker that does the bare minimum of event intake;
 * for the consumer, with D1 migrated and a project and experiment created through the management
 * API — plus a closed-loop HTTP load generator (N concurrent keep-alive connections through
 * Node's fetch, for a fixed time), the request bodies (browser beacons, Optimizely Event API
 * batches), the admin API's event layout (shard sizes and row counts) and readers of the local
 * D1 and shard files' table sizes.
 *
 * Everything stays on 127.0.0.1; every `wrangler dev` is stopped by its process group when the
 * bench ends (bench/lib/wrangler-dev.ts).
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { quantile } from "./harness";
import {
  applyLocalMigrations,
  putLocalKv,
  repoRoot,
  runWrangler,
  startWranglerDev,
  tempDir,
  type WranglerDev,
} from "./wrangler-dev";

export const EVENTS_SDK_KEY = "bench-events";
export const ADMIN_TOKEN = "bench-admin-token";
export const BROWSER_UA =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";

/** The datafile ids an SDK batch names. */
export interface EventIds {
  accountId: string;
  projectId: string;
  revision: string;
  experimentId: string;
  layerId: string;
  variations: readonly string[];
  /** The `purchase` event. */
  purchase: string;
}

/** Ids of the hand-built bench datafile (published like an operator's `wrangler kv key put`). */
export const IDS = {
  accountId: "9100",
  projectId: "9101",
  revision: "1",
  experimentId: "9200",
  layerId: "9201",
  variations: ["9210", "9211"],
  purchase: "9300",
  signup: "9301",
} as const;

/** The ids of a datafile's first experiment and its `purchase` event. */
export function idsOf(datafile: {
  accountId: string;
  projectId: string;
  revision: string;
  experiments: Array<{ id: string; layerId: string; variations: Array<{ id: string }> }>;
  events: Array<{ id: string; key: string }>;
}): EventIds {
  const experiment = datafile.experiments[0]!;
  return {
    accountId: datafile.accountId,
    projectId: datafile.projectId,
    revision: datafile.revision,
    experimentId: experiment.id,
    layerId: experiment.layerId,
    variations: experiment.variations.map((v) => v.id),
    purchase: datafile.events.find((e) => e.key === "purchase")!.id,
  };
}

/** A small valid datafile: one running experiment, two custom events. */
export function eventsDatafile(sdkKey = EVENTS_SDK_KEY): Record<string, unknown> {
  return {
    version: "4",
    accountId: IDS.accountId,
    projectId: IDS.projectId,
    revision: "1",
    sdkKey,
    anonymizeIP: true,
    botFiltering: false,
    attributes: [],
    audiences: [],
    typedAudiences: [],
    events: [
      { id: IDS.purchase, key: "purchase", experimentIds: [IDS.experimentId] },
      { id: IDS.signup, key: "signup", experimentIds: [IDS.experimentId] },
    ],
    experiments: [
      {
        id: IDS.experimentId,
        key: "bench_headline",
        status: "Running",
        layerId: IDS.layerId,
        variations: [
          { id: IDS.variations[0], key: "control" },
          { id: IDS.variations[1], key: "treatment" },
        ],
        trafficAllocation: [
          { entityId: IDS.variations[0], endOfRange: 5000 },
          { entityId: IDS.variations[1], endOfRange: 10000 },
        ],
        audienceIds: [],
        forcedVariations: {},
      },
    ],
    groups: [],
    featureFlags: [],
    rollouts: [],
  };
}

/**
 * The repository's wrangler.toml rewritten for a bench (absolute `main` and `migrations_dir`),
 * with or without the queue consumer. Without it, the Worker still produces to the EVENTS binding
 * (part of every ingest request) but nothing consumes: the ingest bench times intake alone, as in
 * production, where the consumer runs in other isolates and never shares the intake's CPU. The
 * queue is then renamed: with no local consumer, wrangler's dev registry would hand messages for
 * `splitstream-events` to any other `wrangler dev` consuming it on this machine (`npm start`).
 * With the consumer, `queue` renames the queue and its dead-letter queue too (several consumer
 * worlds side by side, each with its own).
 */
export function eventsWorkerConfig(
  dir: string,
  options: { consumer: boolean; queue?: string },
): string {
  const source = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  const out: string[] = [];
  let skipping = false;
  for (const line of source.split(/\r?\n/)) {
    if (!options.consumer && /^\s*\[\[queues\.consumers\]\]/.test(line)) {
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
    )
    .replace(
      /^queue\s*=\s*"splitstream-events"\s*$/gm,
      `queue = "${options.consumer ? (options.queue ?? "splitstream-events") : "splitstream-bench-ingest"}"`,
    )
    .replace(
      /^dead_letter_queue\s*=.*$/m,
      `dead_letter_queue = "${options.queue ?? "splitstream-events"}-dlq"`,
    );
  const file = join(dir, options.consumer ? "wrangler.consumer.toml" : "wrangler.ingest.toml");
  writeFileSync(file, text);
  // The Worker's secrets, beside the config (never the developer's .dev.vars).
  writeFileSync(
    join(dir, ".dev.vars"),
    `ADMIN_TOKEN=${ADMIN_TOKEN}\nSIGNING_KEY=bench-signing-key\n`,
  );
  return file;
}

/**
 * Bundles the Worker of `config` once, as `wrangler deploy` would (`--dry-run --outdir`), into
 * `outDir`; returns the bundled script. A `wrangler dev` started on it (see {@link useBundle})
 * runs that snapshot of src/: it neither rebuilds nor reloads when someone edits src/ meanwhile
 * (a reload drops the local queue's in-flight batch, and the consumer stalls), and every world
 * started on the same bundle runs the same code.
 */
export async function bundleWorker(config: string, outDir: string): Promise<string> {
  await runWrangler(["deploy", "--dry-run", "--outdir", outDir, "--config", config]);
  return join(outDir, "index.js");
}

/** Points a wrangler config at a script made by {@link bundleWorker} (`no_bundle = true`). */
export function useBundle(config: string, script: string): void {
  const text = readFileSync(config, "utf8");
  if (!/^main\s*=.*$/m.test(text)) throw new Error(`no top-level main in ${config}`);
  writeFileSync(
    config,
    text.replace(/^main\s*=.*$/m, `main = ${JSON.stringify(script)}\nno_bundle = true`),
  );
}

/**
 * A peer: the least a Worker can do to take browser events onto a queue — parse the JSON body,
 * one `sendBatch` with one message per event, 204 — with no validation, no datafile, no cookies.
 * Same queue binding (a producer only). Its figure is the floor `wrangler dev` itself imposes.
 */
export function bareIntakeWorker(dir: string): string {
  const script = join(dir, "bare-intake.mjs");
  writeFileSync(
    script,
    `export default {
  async fetch(request, env) {
    if (request.method !== "POST") return new Response("bare intake", { status: 200 });
    const body = await request.json();
    const events = Array.isArray(body.events)
      ? body.events
      : (body.visitors ?? []).flatMap((v) => (v.snapshots ?? []).flatMap((s) => s.events ?? []));
    if (events.length > 0)
      await env.EVENTS.sendBatch(events.map((e) => ({ body: e, contentType: "json" })));
    return new Response(null, { status: 204 });
  },
};
`,
  );
  const config = join(dir, "bare-intake.toml");
  writeFileSync(
    config,
    [
      `name = "splitstream-bench-bare-intake"`,
      `main = ${JSON.stringify(script)}`,
      `compatibility_date = "2026-08-20"`,
      `[[queues.producers]]`,
      `binding = "EVENTS"`,
      `queue = "bench-bare-intake"`,
      "",
    ].join("\n"),
  );
  return config;
}

export interface IngestWorld {
  ours: WranglerDev;
  /** The bare-intake peer. */
  peer: WranglerDev;
  stop(): Promise<void>;
}

/**
 * The ingest bench's world: a fresh local state with the bench datafile in KV, Splitstream under
 * `wrangler dev` without the queue consumer (ROUTES: localhost/* → EVENTS_SDK_KEY), and the
 * bare-intake peer, on free ports.
 */
export async function startIngestWorld(): Promise<IngestWorld> {
  const state = tempDir("splitstream-bench-ingest-");
  const started: WranglerDev[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(started.map((w) => w.stop()));
    state.remove();
  };
  try {
    const config = eventsWorkerConfig(state.path, { consumer: false });
    const persistTo = join(state.path, "ours");
    await putLocalKv({
      config,
      binding: "DATAFILES",
      persistTo,
      key: `datafiles/${EVENTS_SDK_KEY}`,
      value: JSON.stringify(eventsDatafile()),
    });
    const [ours, peer] = await Promise.all([
      startWranglerDev({
        config,
        persistTo,
        readyPath: "/_ss/health",
        vars: { ROUTES: JSON.stringify([{ pattern: "localhost/*", sdk_key: EVENTS_SDK_KEY }]) },
      }).then((w) => (started.push(w), w)),
      startWranglerDev({
        config: bareIntakeWorker(state.path),
        persistTo: join(state.path, "peer"),
      }).then((w) => (started.push(w), w)),
    ]);
    return { ours, peer, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

export interface ConsumerWorld {
  ours: WranglerDev;
  /** The local state directory (`--persist-to`) of `ours`. */
  persistTo: string;
  sdkKey: string;
  experimentId: string;
  /** Ids of the published datafile, for SDK batches. */
  ids: EventIds;
  /** The recorded event layout: 0 = per-visitor state in D1's own tables, N = N visitor shards. */
  shards: number;
  /** GET /_ss/api/v1/experiments/{id}/results, parsed. */
  results(): Promise<ResultsBody>;
  /** GET /_ss/api/v1/admin/event-layout?stats=true: every shard's size and row counts. */
  eventLayout(): Promise<EventLayoutBody>;
  stop(): Promise<void>;
}

/** One shard of `GET /_ss/api/v1/admin/event-layout?stats=true`. */
export interface ShardStatsBody {
  shard: number;
  /** The shard's SQLite database size (`ctx.storage.sql.databaseSize`). */
  bytes: number;
  rows: Record<"seen_events" | "exposures" | "conversions" | "converters", number>;
  pending: number;
}

/** `GET /_ss/api/v1/admin/event-layout?stats=true`. */
export interface EventLayoutBody {
  shards: number;
  movingTo: number | null;
  configured: number | null;
  shardStats: ShardStatsBody[] | null;
}

/**
 * The event layout with every shard's stats, read through the admin API (`token` an admin
 * token). The first call on a fresh state records the layout (EVENT_SHARDS,
 * src/events/event-layout.ts).
 */
export function readEventLayout(base: string, token: string): Promise<EventLayoutBody> {
  return apiCall<EventLayoutBody>(base, "GET", "/admin/event-layout?stats=true", undefined, token);
}

/** The parts of the results API body the consumer bench reads. */
export interface ResultsBody {
  variations: Array<{ id: string; visitors: number }>;
  metrics: Array<{ eventId: string; variations: Array<{ events: number; converters: number }> }>;
}

async function apiCall<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token = ADMIN_TOKEN,
): Promise<T> {
  const response = await fetch(`${base}/_ss/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status}: ${text}`);
  return JSON.parse(text) as T;
}

/**
 * The consumer bench's world, set up the way a user does it: D1 migrations applied to a fresh
 * local state; `wrangler dev` (with the queue consumer) to create a project, a purchase event, a
 * page and a two-variation experiment through the management API and start it (which publishes
 * the datafile to KV); then `wrangler dev` again on the same state with ROUTES bound to the new
 * environment's sdkKey — ROUTES is read at start-up, and the sdkKey only exists once the API has
 * made it.
 *
 * Each world has a queue (and dead-letter queue) of its own, so several can run side by side.
 *
 * `shards` chooses where per-visitor event state lives (the EVENT_SHARDS var on both starts): 0 =
 * D1's own tables (the single-database consumer), N = N visitor shards (SQLite Durable Objects in
 * the same `wrangler dev`). The layout is recorded before any event (the admin layout endpoint's
 * first read records it) and checked. Without `shards`, wrangler.toml's EVENT_SHARDS applies.
 * `script`: a bundle made by {@link bundleWorker} to run instead of src/index.ts.
 */
/** Consumer worlds started by this process (each gets a queue of its own). */
let consumerWorlds = 0;

export async function startConsumerWorld(
  options: { shards?: number; script?: string } = {},
): Promise<ConsumerWorld> {
  const state = tempDir("splitstream-bench-consumer-");
  let current: WranglerDev | undefined;
  const stop = async (): Promise<void> => {
    await current?.stop();
    state.remove();
  };
  try {
    const config = eventsWorkerConfig(state.path, {
      consumer: true,
      queue: `splitstream-bench-consumer-${process.pid}-${++consumerWorlds}`,
    });
    if (options.script) useBundle(config, options.script);
    const persistTo = join(state.path, "ours");
    await applyLocalMigrations(config, persistTo);
    const start = (sdkKey: string) =>
      startWranglerDev({
        config,
        persistTo,
        readyPath: "/_ss/health",
        vars: {
          ROUTES: JSON.stringify([{ pattern: "localhost/*", sdk_key: sdkKey }]),
          ...(options.shards === undefined ? {} : { EVENT_SHARDS: String(options.shards) }),
        },
      });

    current = await start("not-yet-created");
    const base = current.url;
    const project = await apiCall<{
      id: string;
      environments: Array<{ key: string; sdkKey: string }>;
    }>(base, "POST", "/projects", { name: "consumer bench" });
    const sdkKey = project.environments.find((e) => e.key === "production")!.sdkKey;
    const page = await apiCall<{ id: string }>(base, "POST", `/projects/${project.id}/pages`, {
      key: "all",
      conditions: ["or", { match: "substring", value: "/" }],
    });
    const purchase = await apiCall<{ id: string }>(base, "POST", `/projects/${project.id}/events`, {
      key: "purchase",
      type: "custom",
    });
    const experiment = await apiCall<{ id: string }>(
      base,
      "POST",
      `/projects/${project.id}/experiments`,
      {
        key: "bench_headline",
        pageIds: [page.id],
        metrics: [{ eventId: purchase.id, aggregator: "sum", field: "revenue" }],
        variations: [
          { key: "control", weight: 5000 },
          { key: "treatment", weight: 5000 },
        ],
      },
    );
    await apiCall(base, "POST", `/experiments/${experiment.id}/start`);
    await current.stop();
    current = undefined;

    current = await start(sdkKey);
    const ours = current;
    const datafileResponse = await fetch(`${ours.url}/_ss/datafiles/${sdkKey}.json`);
    if (!datafileResponse.ok)
      throw new Error(`datafile of ${sdkKey}: HTTP ${datafileResponse.status}`);
    const ids = idsOf((await datafileResponse.json()) as Parameters<typeof idsOf>[0]);
    // Records the layout now, before any event (and every shard's empty size with it).
    const layout = await readEventLayout(ours.url, ADMIN_TOKEN);
    if (options.shards !== undefined && layout.shards !== options.shards)
      throw new Error(
        `event layout: asked for ${options.shards} shards, the Worker recorded ${layout.shards}`,
      );
    return {
      ours,
      persistTo,
      sdkKey,
      experimentId: experiment.id,
      ids,
      shards: layout.shards,
      results: () => apiCall<ResultsBody>(ours.url, "GET", `/experiments/${experiment.id}/results`),
      eventLayout: () => readEventLayout(ours.url, ADMIN_TOKEN),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

// ------------------------------------------------------------------------------ load

export interface LoadResult {
  requests: number;
  /** Responses with an unexpected status, plus network errors. */
  errors: number;
  /** status → count (network errors under 0). */
  statuses: Record<number, number>;
  elapsedMs: number;
  /** Request → full response, ms, per completed request. */
  latencies: number[];
}

export interface LoadSpec {
  url: string;
  /** Built per request (fresh uuids, timestamps). */
  init: () => RequestInit;
  /** Status that counts as success. */
  okStatus: number;
}

/**
 * Closed loop: `concurrency` workers, each sending its next request as soon as the previous
 * response has been read, until `durationMs` has passed. Node's fetch (undici) keeps the
 * connections alive, so this is `concurrency` keep-alive connections.
 */
export async function closedLoop(
  spec: LoadSpec,
  options: { concurrency: number; durationMs: number },
): Promise<LoadResult> {
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  let errors = 0;
  const start = performance.now();
  const end = start + options.durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let status: number;
      try {
        const response = await fetch(spec.url, spec.init());
        await response.arrayBuffer();
        status = response.status;
      } catch {
        status = 0;
      }
      latencies.push(performance.now() - t0);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status !== spec.okStatus) errors++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return {
    requests: latencies.length,
    errors,
    statuses,
    elapsedMs: performance.now() - start,
    latencies,
  };
}

/** Merges the results of several rounds of the same subject. */
export function mergeLoad(results: LoadResult[]): LoadResult {
  const statuses: Record<number, number> = {};
  for (const r of results)
    for (const [status, n] of Object.entries(r.statuses))
      statuses[Number(status)] = (statuses[Number(status)] ?? 0) + n;
  return {
    requests: results.reduce((n, r) => n + r.requests, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    statuses,
    elapsedMs: results.reduce((n, r) => n + r.elapsedMs, 0),
    latencies: results.flatMap((r) => r.latencies),
  };
}

export function loadSummary(r: LoadResult): {
  rps: number;
  p50: number;
  p99: number;
  errorRate: number;
} {
  return {
    rps: (r.requests * 1000) / r.elapsedMs,
    p50: quantile(r.latencies, 0.5),
    p99: quantile(r.latencies, 0.99),
    errorRate: r.requests === 0 ? 1 : r.errors / r.requests,
  };
}

// ------------------------------------------------------------------------------ bodies

/** A browser beacon: one conversion with revenue and value (visitor from the ss_vid cookie). */
export function browserEventRequest(visitorId: string): RequestInit {
  return {
    method: "POST",
    headers: {
      "content-type": "text/plain;charset=UTF-8", // what navigator.sendBeacon sends
      "accept-encoding": "identity",
      "user-agent": BROWSER_UA,
      cookie: `ss_vid=${visitorId}`,
    },
    body: JSON.stringify({ events: [{ key: "purchase", revenue: 1299, value: 2.5 }] }),
  };
}

/** Fresh event uuids, as the SDK makes them. */
const uuid = (): string => crypto.randomUUID();

/** A visitor id shaped like the edge's (32 hex characters). */
export const newVisitorId = (): string => crypto.randomUUID().replaceAll("-", "");

/**
 * An Optimizely Event API batch as the SDK's batch event processor sends it: `visitors`
 * visitors, each with an impression (campaign_activated) and, with `conversions`, a purchase.
 */
export function sdkBatch(
  ids: EventIds,
  visitorIds: readonly string[],
  options: { impressions: boolean; conversions: boolean },
): Record<string, unknown> {
  const now = Date.now();
  return {
    account_id: ids.accountId,
    project_id: ids.projectId,
    revision: ids.revision,
    client_name: "javascript-sdk",
    client_version: "6.6.1",
    anonymize_ip: true,
    enrich_decisions: true,
    visitors: visitorIds.map((visitorId, i) => {
      const variation = ids.variations[i % ids.variations.length]!;
      const snapshots: unknown[] = [];
      if (options.impressions)
        snapshots.push({
          decisions: [
            {
              campaign_id: ids.layerId,
              experiment_id: ids.experimentId,
              variation_id: variation,
              metadata: {
                flag_key: "",
                rule_key: "bench_headline",
                rule_type: "experiment",
                variation_key: "",
                enabled: true,
              },
            },
          ],
          events: [
            { entity_id: ids.layerId, key: "campaign_activated", timestamp: now, uuid: uuid() },
          ],
        });
      if (options.conversions)
        snapshots.push({
          events: [
            {
              entity_id: ids.purchase,
              key: "purchase",
              timestamp: now + 1,
              uuid: uuid(),
              revenue: 1299,
              value: 2.5,
              tags: { revenue: 1299, value: 2.5 },
            },
          ],
        });
      return {
        visitor_id: visitorId,
        attributes: [
          {
            entity_id: "$opt_bot_filtering",
            key: "$opt_bot_filtering",
            type: "custom",
            value: false,
          },
        ],
        snapshots,
      };
    }),
  };
}

export function sdkEventsRequest(batch: Record<string, unknown>): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json", "accept-encoding": "identity" },
    body: JSON.stringify(batch),
  };
}

// ------------------------------------------------------------------------------ storage

/** The local D1 database file under a `--persist-to` directory (the largest `.sqlite` of D1). */
export function localD1File(persistTo: string): string {
  const dir = join(persistTo, "v3", "d1", "miniflare-D1DatabaseObject");
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite")
    .map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`no D1 database file in ${dir}`);
  return files.sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
}

/** A SQLite file's tables, each with its bytes (indexes included) and rows, and its total. */
export interface DatabaseSizes {
  /** Σ dbstat pgsize over every b-tree (tables, indexes, sqlite_schema): the pages in use. */
  bytes: number;
  tables: Record<string, { bytes: number; rows: number }>;
}

/**
 * {@link DatabaseSizes} of a SQLite file (a local D1 database or a Durable Object's), read-only
 * through `node:sqlite`'s `dbstat` (WAL mode: safe beside the running `wrangler dev`, and it sees
 * committed data).
 */
export async function databaseSizes(file: string): Promise<DatabaseSizes> {
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const total = db.prepare("SELECT COALESCE(SUM(pgsize), 0) AS bytes FROM dbstat").get() as {
      bytes: number;
    };
    const tables: DatabaseSizes["tables"] = {};
    const names = db
      .prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name",
      )
      .all() as Array<{ name: string }>;
    for (const { name } of names) {
      const size = db
        .prepare(
          `SELECT COALESCE(SUM(d.pgsize), 0) AS bytes FROM dbstat AS d
           JOIN sqlite_schema AS s ON s.name = d.name WHERE s.tbl_name = ?`,
        )
        .get(name) as { bytes: number };
      const count = db.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number };
      tables[name] = { bytes: Number(size.bytes), rows: Number(count.n) };
    }
    return { bytes: Number(total.bytes), tables };
  } finally {
    db.close();
  }
}

/**
 * The SQLite files of the VisitorShard Durable Objects under a `--persist-to` directory
 * (`v3/do/<script>-VisitorShard/<object id>.sqlite`); empty when no shard was ever used.
 */
export function localShardFiles(persistTo: string): string[] {
  const root = join(persistTo, "v3", "do");
  let dirs: string[];
  try {
    dirs = readdirSync(root).filter((d) => d.endsWith("-VisitorShard"));
  } catch {
    return [];
  }
  return dirs.flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith(".sqlite") && f !== "metadata.sqlite")
      .map((f) => join(root, d, f)),
  );
}
