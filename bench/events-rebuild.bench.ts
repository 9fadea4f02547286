/**
 * Rebuild from the R2 archive on a large archive: how fast the streaming rebuild
 * (src/events/rebuild.ts, run step by step from the RebuildJob Durable Object's alarm,
 * src/events/rebuild-job.ts) replays, compares and applies E archived events, and whether the
 * memory of the Worker's process stays bounded while it does — measured from the outside through
 * the admin API, on one fresh world.
 *
 * World: Splitstream under real `wrangler dev` with `--var EVENT_SHARDS:N` (BENCH_REBUILD_SHARDS,
 * default 8; 0 = per-visitor state in D1), a fresh local state, and a project with a running
 * two-variation experiment and its `purchase` metric created through the management API
 * (bench/lib/events-world.ts `startConsumerWorld`, the consumer bench's world), running one bundle
 * of src/ made at the start (`wrangler deploy --dry-run`), so edits to src/ during the bench do not
 * reload it. The layout is recorded before the archive is written and checked.
 *
 * Archive (set-up, timed but not part of the measurement): E events (BENCH_REBUILD_EVENTS, default
 * 100,000; a multiple of 200) as NDJSON objects of 100 events each, the way the queue consumer
 * archives a full batch (src/events/aggregate.ts `archiveKey`, `toNdjson`: key
 * `events/{day}/{hour}/{first message id}-100.ndjson`, day and hour of the batch's processing time,
 * a random 32-hex message id): E/2 impressions of E/2 distinct visitors (alternating variations;
 * impression times spread evenly over 3 days that end 3 days ago) and E/2 purchases, one per
 * visitor, 1 min – 2 h after its impression (revenue 1299 cents, value 2.5). Each block of 100
 * visitors gives one object of their impressions and one of their purchases (processing time:
 * the block's last event + 1.5 s), so an hour's objects interleave impressions and purchases in
 * listing order, and a purchase is often replayed before its impression (the counting is order
 * independent, docs/events.md). Every line is a valid EventMessage (src/shared/event-messages.ts,
 * `source: "sdk"`, the published datafile's sdkKey, revision, experiment, variation and event
 * ids) — what the consumer would have archived for these visitors.
 *
 * The objects go straight into the world's LOCAL R2 bucket: a second Miniflare (the one wrangler
 * itself runs, resolved through wrangler's own dependency), opened on the same persistence root
 * as the running `wrangler dev` (`<persistTo>/v3`, bucket id = wrangler.toml's `bucket_name`,
 * exactly how `wrangler r2 object put --local` opens it), runs a tiny writer Worker that puts the
 * objects it is sent (20 per request, 4 requests in flight) and is disposed before the rebuild
 * starts. Nothing in the world touches the ARCHIVE bucket before the rebuild (no events are sent,
 * no cron runs), so the world's workerd opens the bucket's storage only after the writer closed
 * it. The bench checks the worker saw every object: the job's objectsRead must equal the objects
 * written and its eventsRead E.
 *
 * Measured, through the admin API (bearer token, node:http without a timeout; polled every 500 ms,
 * so each phase time is up to 0.5 s long):
 *   1. compare: `POST /_ss/api/v1/admin/rebuild {"chunkObjects": C}` (BENCH_REBUILD_CHUNK, default
 *      20) → `GET /_ss/api/v1/admin/rebuild` until "compared": cleaning, seeding (no dropped/ or
 *      rejected/ objects here), replaying every object into shadow rows, comparing per sdkKey;
 *      the replay's own time is from the first poll in "replaying" to the first one past it, when
 *      a poll saw it (see below); the server's own time (job createdAt → updatedAt) beside;
 *   2. apply: `POST /_ss/api/v1/admin/rebuild/apply` → poll until "applied": the shadow rows
 *      become the live ones (the live state was empty: nothing went through the queue), then the
 *      leftovers are dropped.
 * Per phase: wall time, events/s (E ÷ wall time) and the job's steps. Memory: the RSS
 * (/proc/<pid>/status VmRSS) of the `wrangler dev`'s workerd processes (the descendants of the
 * wrangler process named workerd; Σ over them), sampled every 500 ms — before the rebuild, its
 * peak during each phase, and at 10/25/50/75/100 % of the compare's time (flat would mean bounded
 * by the step, not by E), with the anonymous part (RssAnon) beside. Correctness: after apply,
 * `GET /_ss/api/v1/experiments/{id}/results` must show Σ visitors = E/2 and Σ purchase events =
 * E/2 (and E/2 converters).
 *
 * Responsiveness: beside the polls, `GET /_ss/health` every 500 ms; both latencies are reported.
 * Under wrangler dev, requests to the Worker wait while the job's alarm chain runs (the job, its
 * shards, D1 and R2 all run in the one workerd process of the Worker): on this machine, with
 * wrangler's local observability on (its default), none was answered before the compare had
 * ended; with it off, some were, between alarms (every 20–35 s). The "requests during the
 * rebuild" row shows it; when no poll saw the job replaying, the compare is not split into replay
 * and comparison. A poll that fails is asked again.
 *
 * wrangler dev's local observability (X_LOCAL_OBSERVABILITY, on unless set to false; inherited
 * from this process's environment) writes a trace of every invocation into `v3/observability`:
 * during a rebuild that is hundreds of MiB, and CPU and memory of the same workerd. The run
 * records whether it was on and the state's size per plugin ("wrangler dev local state" row);
 * `X_LOCAL_OBSERVABILITY=false` measures the rebuild without it.
 *
 * What production differs in: D1 is local SQLite and every Durable Object (the rebuild job, the
 * shards) an in-process object of the same workerd, on the same 2 cores as this bench's polling;
 * R2 is local files (no network per object, no per-operation price); an alarm's 10 s budget and
 * the step sizes are the production code's, but a production step also pays network round trips
 * to R2, D1 and each shard, and the shards run on other machines in parallel. Memory per isolate
 * is capped at 128 MB in production; the RSS here is two whole workerd processes — wrangler's
 * proxy and the Worker's (runtime, every isolate including Miniflare's own simulators, SQLite of
 * D1, R2 and the shards) — not the memory of one step; a V8 heap also grows lazily when nothing
 * presses it to collect, so growth of RSS is not by itself retained data.
 *
 * Environment knobs: BENCH_REBUILD_EVENTS=100000 (a multiple of 200), BENCH_REBUILD_SHARDS=8
 * (0 = D1), BENCH_REBUILD_CHUNK=20 (1–500 objects per step), BENCH_REBUILD_TIMEOUT_MIN=60 (per
 * phase), BENCH_REBUILD_TRACE=<file> (appends every poll as a JSON line),
 * X_LOCAL_OBSERVABILITY=false (see above). The documented run:
 * `X_LOCAL_OBSERVABILITY=false BENCH_REBUILD_EVENTS=1000000 npm run bench -- events-rebuild`.
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { archiveKey, toNdjson } from "../src/events/aggregate";
import type { ConversionMessage, ImpressionMessage } from "../src/shared/event-messages";
import {
  ADMIN_TOKEN,
  bundleWorker,
  eventsWorkerConfig,
  startConsumerWorld,
  type ConsumerWorld,
  type ResultsBody,
} from "./lib/events-world";
import { quantile } from "./lib/harness";
import type { Row } from "./lib/types";
import { currentLoad, loadRow, repoRoot, tempDir } from "./lib/wrangler-dev";

export const name = "events-rebuild";
export const title =
  "Rebuild from the R2 archive: events/s, steps and workerd RSS for compare and apply (wrangler dev, local R2 → shards / D1)";
export const order = 52;

const E = Number(process.env.BENCH_REBUILD_EVENTS ?? 100_000);
const SHARDS = Number(process.env.BENCH_REBUILD_SHARDS ?? 8);
const CHUNK = Number(process.env.BENCH_REBUILD_CHUNK ?? 20);
const PHASE_TIMEOUT_MS = Number(process.env.BENCH_REBUILD_TIMEOUT_MIN ?? 60) * 60_000;
/** A file to append every poll to (one JSON line each), for a closer look. */
const TRACE = process.env.BENCH_REBUILD_TRACE;
/** Events per archive object (a full queue batch, wrangler.toml max_batch_size). */
const OBJECT_EVENTS = 100;
const POLL_MS = 500;
const RSS_MS = 500;
/** How the archive is written: objects per request to the writer, requests in flight. */
const WRITE_BATCH = 20;
const WRITE_IN_FLIGHT = 4;
/** Progress lines on the console while a phase runs, at most this often. */
const PROGRESS_MS = 30_000;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Impressions spread over this long, ending END_AGO before the bench starts. */
const SPREAD = 3 * DAY;
const END_AGO = 3 * DAY;
const REVENUE = 1299;

const int = (n: number): string => Math.round(n).toLocaleString("en-US");
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------ admin API

/** `GET /_ss/api/v1/admin/rebuild` (src/events/rebuild-job.ts RebuildJobView), the parts read. */
interface JobBody {
  id: string;
  status: string;
  phase: string;
  steps: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  progress: {
    objectsRead: number;
    eventsRead: number;
    excluded: number;
    sdkKeysCompared: number;
    sdkKeys: number;
  };
  error: string | null;
  failures: number;
  report: {
    sdkKeys: string[];
    objectsRead: number;
    eventsRead: number;
    eventsFolded: number;
    duplicates: number;
    excluded: number;
    invalidLines: number;
    invalid: Array<{ object: string; line: number; reason: string }>;
    tables: Record<string, { live: number; rebuilt: number; differences: number }>;
    differencesTruncated: boolean;
    matches: boolean;
    applied: boolean;
    written: Record<string, number> | null;
  } | null;
}

/** Results with the converters the consumer bench's ResultsBody reads too. */
type Results = ResultsBody;

/**
 * One HTTP request over node:http, with no timeout: while the rebuild's alarm chain runs, a
 * request to the Worker may wait for many minutes (see the module comment), longer than fetch's
 * (undici's) 300 s headers timeout.
 */
function httpCall(
  url: string,
  method: string,
  headers: Record<string, string>,
  payload?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method,
        agent: false,
        headers: {
          ...headers,
          ...(payload === undefined
            ? {}
            : { "content-length": String(Buffer.byteLength(payload)) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.once("error", reject);
        res.once("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.once("error", reject);
    req.end(payload);
  });
}

/** One admin API call (JSON in and out). */
async function api<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const { status, text } = await httpCall(
    `${base}/_ss/api/v1${path}`,
    method,
    {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(payload === undefined ? {} : { "content-type": "application/json" }),
    },
    payload,
  );
  if (status < 200 || status >= 300) throw new Error(`${method} ${path}: HTTP ${status}: ${text}`);
  return JSON.parse(text) as T;
}

/**
 * `GET /_ss/health` every POLL_MS until `stop()`: is the Worker answering during the rebuild?
 * Latencies in ms; a failed request (not 200, or an error) counts as Infinity.
 */
function healthProbe(base: string): { stop(): Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      try {
        const { status } = await httpCall(`${base}/_ss/health`, "GET", {});
        latencies.push(status === 200 ? performance.now() - t0 : Number.POSITIVE_INFINITY);
      } catch {
        latencies.push(Number.POSITIVE_INFINITY);
      }
      await sleep(POLL_MS);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return latencies;
    },
  };
}

/** Σ file sizes under `dir` (0 when it does not exist). */
function dirBytes(dir: string): number {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) n += dirBytes(path);
    else if (e.isFile()) n += statSync(path).size;
  }
  return n;
}

/** Bytes per plugin directory of a `--persist-to` state (`v3/<plugin>`). */
function stateBytes(persistTo: string): Record<string, number> {
  const root = join(persistTo, "v3");
  let plugins: string[];
  try {
    plugins = readdirSync(root);
  } catch {
    return {};
  }
  return Object.fromEntries(plugins.map((p) => [p, dirBytes(join(root, p))]));
}

// ------------------------------------------------------------------------------ RSS

/** pid → [ppid, comm] of every process, from /proc/<pid>/stat. */
function processTable(): Map<number, { ppid: number; comm: string }> {
  const out = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const open = stat.indexOf("(");
      const close = stat.lastIndexOf(")");
      const fields = stat.slice(close + 2).split(" ");
      out.set(Number(entry), { comm: stat.slice(open + 1, close), ppid: Number(fields[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The workerd processes among the descendants of `root` (wrangler dev's process). */
function workerdPids(root: number): number[] {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of table) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const out: number[] = [];
  const walk = (pid: number): void => {
    for (const child of children.get(pid) ?? []) {
      if (table.get(child)?.comm.startsWith("workerd")) out.push(child);
      walk(child);
    }
  };
  walk(root);
  return out.sort((a, b) => a - b);
}

/** VmRSS and RssAnon of `pid` in bytes (0 when it is gone). */
function rssOf(pid: number): { rss: number; anon: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib("VmRSS"), anon: kib("RssAnon") };
  } catch {
    return { rss: 0, anon: 0 };
  }
}

interface RssSample {
  t: number;
  total: number;
  /** Σ RssAnon (the rest is file-backed: the workerd binary, mapped files). */
  anon: number;
  perPid: Record<number, number>;
}

/** Samples Σ RSS of the workerd processes under `root` every RSS_MS. */
class RssSampler {
  readonly samples: RssSample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pids: number[] = [];
  constructor(private readonly root: number) {}

  sample(): RssSample {
    if (this.pids.length === 0 || this.pids.some((p) => rssOf(p).rss === 0))
      this.pids = workerdPids(this.root);
    const perPid: Record<number, number> = {};
    let anon = 0;
    for (const pid of this.pids) {
      const r = rssOf(pid);
      perPid[pid] = r.rss;
      anon += r.anon;
    }
    const s = {
      t: performance.now(),
      total: Object.values(perPid).reduce((a, b) => a + b, 0),
      anon,
      perPid,
    };
    this.samples.push(s);
    return s;
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), RSS_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The largest sample between two times (performance.now()). */
  peak(from: number, to: number): RssSample {
    const within = this.samples.filter((s) => s.t >= from && s.t <= to);
    return within.reduce((a, b) => (b.total > a.total ? b : a), within[0] ?? this.sample());
  }

  /** The last sample at or before `t`. */
  at(t: number): RssSample | undefined {
    return this.samples.filter((s) => s.t <= t).at(-1);
  }
}

// ------------------------------------------------------------------------------ archive

interface ArchiveIds {
  sdkKey: string;
  revision: string;
  experimentId: string;
  variations: readonly string[];
  purchase: string;
}

interface ArchiveObject {
  key: string;
  body: string;
}

/**
 * The archive, generated lazily block by block: for each block of 100 visitors, the object of
 * their impressions and the object of their purchases (see the module comment).
 */
function* archiveObjects(ids: ArchiveIds, events: number, now: number): Generator<ArchiveObject> {
  const visitors = events / 2;
  const blocks = visitors / OBJECT_EVENTS;
  const start = Math.floor((now - END_AGO - SPREAD) / HOUR) * HOUR;
  const tag = randomBytes(4).toString("hex");
  const visitorId = (i: number) => `${tag}${i.toString(16).padStart(24, "0")}`;
  const messageId = () => randomBytes(16).toString("hex");
  for (let b = 0; b < blocks; b++) {
    const impressions: ImpressionMessage[] = [];
    const purchases: ConversionMessage[] = [];
    for (let j = 0; j < OBJECT_EVENTS; j++) {
      const i = b * OBJECT_EVENTS + j;
      const seen = start + Math.floor((i * SPREAD) / visitors);
      // 1 min – 2 h later, spread by a multiplicative hash of the visitor's index.
      const bought = seen + 60_000 + ((i * 2_654_435_761) % 7_140) * 1000;
      impressions.push({
        v: 1,
        type: "impression",
        uuid: crypto.randomUUID(),
        sdkKey: ids.sdkKey,
        revision: ids.revision,
        visitorId: visitorId(i),
        experimentId: ids.experimentId,
        variationId: ids.variations[i % ids.variations.length]!,
        timestamp: seen,
        source: "sdk",
      });
      purchases.push({
        v: 1,
        type: "conversion",
        uuid: crypto.randomUUID(),
        sdkKey: ids.sdkKey,
        revision: ids.revision,
        visitorId: visitorId(i),
        eventId: ids.purchase,
        eventKey: "purchase",
        timestamp: bought,
        revenue: REVENUE,
        value: 2.5,
        source: "sdk",
      });
    }
    for (const batch of [impressions, purchases]) {
      const processed = Math.max(...batch.map((e) => e.timestamp)) + 1500;
      yield { key: archiveKey(processed, messageId(), batch.length), body: toNdjson(batch) };
    }
  }
}

/** Puts the objects it is sent (a JSON array of {key, body}) into BUCKET. */
const WRITER_SCRIPT = `
export default {
  async fetch(request, env) {
    const objects = await request.json();
    await Promise.all(objects.map((o) =>
      env.BUCKET.put(o.key, o.body, { httpMetadata: { contentType: "application/x-ndjson" } })));
    return new Response(String(objects.length));
  },
};
`;

/** wrangler.toml's bucket_name of the ARCHIVE binding (the local bucket's id under wrangler dev). */
function archiveBucketName(): string {
  const toml = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  for (const section of toml.split(/^\[\[r2_buckets\]\]\s*$/m).slice(1)) {
    const body = section.split(/^\[/m)[0]!;
    if (/^binding\s*=\s*"ARCHIVE"/m.test(body)) {
      const m = /^bucket_name\s*=\s*"([^"]+)"/m.exec(body);
      if (m) return m[1]!;
    }
  }
  throw new Error("wrangler.toml has no [[r2_buckets]] binding ARCHIVE with a bucket_name");
}

/** The Miniflare that wrangler runs (its own dependency), loaded as wrangler resolves it. */
async function loadMiniflare(): Promise<typeof import("miniflare")> {
  const fromHere = createRequire(import.meta.url);
  const fromWrangler = createRequire(fromHere.resolve("wrangler/package.json"));
  return (await import(
    pathToFileURL(fromWrangler.resolve("miniflare")).href
  )) as typeof import("miniflare");
}

interface Written {
  objects: number;
  events: number;
  bytes: number;
  ms: number;
}

/** Writes the archive into the local R2 bucket of `persistTo` (see the module comment). */
async function writeArchive(persistTo: string, ids: ArchiveIds): Promise<Written> {
  const { Miniflare, convertV4MiniflareOptions } = await loadMiniflare();
  const started = performance.now();
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: true,
      script: WRITER_SCRIPT,
      resourcePersistencePath: join(persistTo, "v3"),
      r2Buckets: { BUCKET: archiveBucketName() },
    } as Parameters<typeof convertV4MiniflareOptions>[0]),
  );
  let objects = 0;
  let bytes = 0;
  try {
    const source = archiveObjects(ids, E, Date.now());
    let done = false;
    const next = (): ArchiveObject[] => {
      const batch: ArchiveObject[] = [];
      while (!done && batch.length < WRITE_BATCH) {
        const r = source.next();
        if (r.done) done = true;
        else batch.push(r.value);
      }
      return batch;
    };
    let lastLog = performance.now();
    const sender = async (): Promise<void> => {
      for (;;) {
        const batch = next();
        if (batch.length === 0) return;
        const response = await mf.dispatchFetch("http://writer/", {
          method: "POST",
          body: JSON.stringify(batch),
        });
        const text = await response.text();
        if (!response.ok || Number(text) !== batch.length)
          throw new Error(`archive writer: HTTP ${response.status}: ${text.slice(0, 500)}`);
        objects += batch.length;
        bytes += batch.reduce((n, o) => n + Buffer.byteLength(o.body), 0);
        if (performance.now() - lastLog > PROGRESS_MS) {
          lastLog = performance.now();
          console.log(`events-rebuild: archive ${int(objects)} objects written`);
        }
      }
    };
    await Promise.all(Array.from({ length: WRITE_IN_FLIGHT }, sender));
  } finally {
    await mf.dispose();
  }
  return { objects, events: objects * OBJECT_EVENTS, bytes, ms: performance.now() - started };
}

// ------------------------------------------------------------------------------ phases

interface Poll {
  t: number;
  /** How long the GET took. */
  ms: number;
  job: JobBody;
  rss: number;
}

interface PhaseRun {
  startedAt: number;
  endedAt: number;
  polls: Poll[];
  job: JobBody;
  /** First poll time per job phase seen. */
  phases: Map<string, number>;
  /** Distinct step errors seen (with the failures count of their poll). */
  errors: Map<string, number>;
  /** `GET /_ss/health` latencies meanwhile (Infinity = failed). */
  health: number[];
  /** Polls that failed (and were asked again). */
  pollErrors: string[];
}

/**
 * Polls the job until its status is one of `until` (or failed/cancelled), every POLL_MS, with a
 * `GET /_ss/health` probe beside it.
 */
async function pollJob(
  world: ConsumerWorld,
  rss: RssSampler,
  startedAt: number,
  label: string,
  until: string[],
): Promise<PhaseRun> {
  const polls: Poll[] = [];
  const phases = new Map<string, number>();
  const errors = new Map<string, number>();
  let lastLog = performance.now();
  const probe = healthProbe(world.ours.url);
  const pollErrors: string[] = [];
  // The polls may wait for minutes: progress lines from the RSS samples meanwhile.
  const ticker = setInterval(() => {
    const pending = performance.now() - (polls.at(-1)?.t ?? startedAt);
    if (pending > PROGRESS_MS)
      console.log(
        `events-rebuild: ${label} ${secs(performance.now() - startedAt)}: GET /admin/rebuild has waited ${secs(pending)}; workerd RSS ${mib(rss.samples.at(-1)?.total ?? 0)}`,
      );
  }, PROGRESS_MS);
  let health: number[];
  try {
    for (;;) {
      await sleep(POLL_MS);
      const asked = performance.now();
      let job: JobBody;
      try {
        job = await api<JobBody>(world.ours.url, "GET", "/admin/rebuild");
      } catch (error) {
        // A GET that waited through a long alarm chain may be cut by wrangler's proxy: ask again.
        pollErrors.push(`${secs(performance.now() - asked)}: ${String(error).slice(0, 200)}`);
        if (pollErrors.length > 20 || performance.now() - startedAt > PHASE_TIMEOUT_MS)
          throw new Error(
            `events-rebuild: ${label}: GET /admin/rebuild failed ${pollErrors.length} times (${pollErrors.slice(-3).join("; ")})\nwrangler dev's last output:\n${world.ours.output()}`,
            { cause: error },
          );
        await sleep(POLL_MS);
        continue;
      }
      const t = performance.now();
      const last = rss.samples.at(-1)?.total ?? 0;
      polls.push({ t, ms: t - asked, job, rss: last });
      if (TRACE)
        appendFileSync(
          TRACE,
          `${JSON.stringify({ label, t: Math.round(t - startedAt), getMs: Math.round(t - asked), rss: last, ...job, report: undefined })}\n`,
        );
      if (!phases.has(job.phase)) phases.set(job.phase, t);
      if (job.error !== null)
        errors.set(job.error, Math.max(errors.get(job.error) ?? 0, job.failures));
      if (t - lastLog > PROGRESS_MS) {
        lastLog = t;
        console.log(
          `events-rebuild: ${label} ${secs(t - startedAt)}: ${job.status}/${job.phase}, step ${job.steps}, ${int(job.progress.objectsRead)} objects, ${int(job.progress.eventsRead)} events, workerd RSS ${mib(last)}${job.failures > 0 ? `, ${job.failures} failed step(s): ${job.error}` : ""}`,
        );
      }
      if (until.includes(job.status) || job.status === "failed" || job.status === "cancelled")
        break;
      if (t - startedAt > PHASE_TIMEOUT_MS)
        throw new Error(
          `events-rebuild: ${label} not done after ${secs(t - startedAt)}: ${JSON.stringify({ ...job, report: undefined })}\nwrangler dev's last output:\n${world.ours.output()}`,
        );
    }
  } finally {
    clearInterval(ticker);
    health = await probe.stop();
  }
  const last = polls.at(-1)!;
  return { startedAt, endedAt: last.t, polls, job: last.job, phases, errors, health, pollErrors };
}

/** Time spent in `phase`: first poll in it → first poll in a later phase (NaN if never seen). */
function phaseSpan(run: PhaseRun, phase: string): number {
  const from = run.phases.get(phase);
  if (from === undefined) return Number.NaN;
  const after = [...run.phases.values()].filter((t) => t > from);
  return (after.length ? Math.min(...after) : run.endedAt) - from;
}

/** Σ workerd RSS at fractions `qs` of a phase's time (the last sample at or before each). */
function rssOverTime(rss: RssSampler, run: PhaseRun, qs: number[]): string {
  return qs
    .map((q) => {
      const s = rss.at(run.startedAt + q * (run.endedAt - run.startedAt));
      return `${Math.round(q * 100)} % ${s ? mib(s.total) : "n/a"}`;
    })
    .join(", ");
}

// ------------------------------------------------------------------------------ run

export async function run(): Promise<Row[]> {
  if (!Number.isInteger(E) || E < 2 * OBJECT_EVENTS || E % (2 * OBJECT_EVENTS) !== 0)
    throw new Error(`BENCH_REBUILD_EVENTS must be a multiple of ${2 * OBJECT_EVENTS}, got ${E}`);
  if (!Number.isInteger(SHARDS) || SHARDS < 0)
    throw new Error(`BENCH_REBUILD_SHARDS must be a shard count ≥ 0, got ${SHARDS}`);
  if (!Number.isInteger(CHUNK) || CHUNK < 1 || CHUNK > 500)
    throw new Error(`BENCH_REBUILD_CHUNK must be 1–500, got ${CHUNK}`);
  const load = [currentLoad()];
  const where = SHARDS === 0 ? "D1 (layout 0)" : `${SHARDS} shards`;
  const build = tempDir("splitstream-bench-build-");
  let world: ConsumerWorld | undefined;
  let rss: RssSampler | undefined;
  try {
    const script = await bundleWorker(
      eventsWorkerConfig(build.path, { consumer: true }),
      join(build.path, "dist"),
    );
    world = await startConsumerWorld({ shards: SHARDS, script });
    rss = new RssSampler(world.ours.pgid);
    const idle = rss.sample();
    if (Object.keys(idle.perPid).length === 0)
      throw new Error(`no workerd process found under wrangler dev (pid ${world.ours.pgid})`);

    console.log(
      `events-rebuild: writing ${int(E)} events (${int(E / OBJECT_EVENTS)} objects) into the local R2 bucket of ${world.persistTo}`,
    );
    const written = await writeArchive(world.persistTo, {
      sdkKey: world.sdkKey,
      revision: world.ids.revision,
      experimentId: world.ids.experimentId,
      variations: world.ids.variations,
      purchase: world.ids.purchase,
    });
    console.log(
      `events-rebuild: archive written: ${int(written.objects)} objects, ${mib(written.bytes)}, ${secs(written.ms)}`,
    );
    load.push(currentLoad());

    // ---- compare
    const before = rss.sample();
    rss.start();
    const compareStart = performance.now();
    const started = await api<JobBody>(world.ours.url, "POST", "/admin/rebuild", {
      chunkObjects: CHUNK,
    });
    const compare = await pollJob(world, rss, compareStart, "compare", ["compared"]);
    load.push(currentLoad());
    if (compare.job.status !== "compared")
      throw new Error(
        `events-rebuild: the rebuild ended ${compare.job.status}: ${compare.job.error}\nwrangler dev's last output:\n${world.ours.output()}`,
      );

    // ---- apply
    const applyStart = performance.now();
    await api<JobBody>(world.ours.url, "POST", "/admin/rebuild/apply");
    const apply = await pollJob(world, rss, applyStart, "apply", ["applied"]);
    rss.stop();
    load.push(currentLoad());
    if (apply.job.status !== "applied")
      throw new Error(
        `events-rebuild: apply ended ${apply.job.status}: ${apply.job.error}\nwrangler dev's last output:\n${world.ours.output()}`,
      );
    const after = rss.sample();
    const results = await api<Results>(
      world.ours.url,
      "GET",
      `/experiments/${world.experimentId}/results`,
    );
    const layout = await world.eventLayout();
    const state = stateBytes(world.persistTo);

    return rows({
      where,
      written,
      started,
      compare,
      apply,
      rss,
      idle,
      before,
      after,
      results,
      shardsRecorded: layout.shards,
      state,
      load,
    });
  } finally {
    rss?.stop();
    await world?.stop();
    build.remove();
  }
}

function rows(r: {
  where: string;
  written: Written;
  started: JobBody;
  compare: PhaseRun;
  apply: PhaseRun;
  rss: RssSampler;
  idle: RssSample;
  before: RssSample;
  after: RssSample;
  results: Results;
  shardsRecorded: number;
  state: Record<string, number>;
  load: number[];
}): Row[] {
  const { compare, apply, written } = r;
  const compareMs = compare.endedAt - compare.startedAt;
  const applyMs = apply.endedAt - apply.startedAt;
  const compareSteps = compare.job.steps;
  const applySteps = apply.job.steps - compare.job.steps;
  const replayMs = phaseSpan(compare, "replaying");
  const comparingMs = phaseSpan(compare, "comparing");
  const serverCompareMs = Date.parse(compare.job.updatedAt) - Date.parse(compare.job.createdAt);
  const report = compare.job.report;
  const comparePeak = r.rss.peak(compare.startedAt, compare.endedAt);
  const applyPeak = r.rss.peak(apply.startedAt, apply.endedAt);
  const perPid = (s: RssSample) =>
    `${Object.entries(s.perPid)
      .map(([pid, b]) => `pid ${pid}: ${mib(b)}`)
      .join(", ")}; anonymous ${mib(s.anon)}`;
  const knobs = `E = ${int(E)}, ${r.where}, chunk ${CHUNK} objects`;

  const out: Row[] = [];
  out.push({
    subject: `compare (replay + compare), events/s — ${knobs}`,
    value: (E * 1000) / compareMs,
    unit: "ops/s",
    note: `POST /admin/rebuild → "compared" in ${secs(compareMs)} (server: createdAt → updatedAt ${secs(serverCompareMs)}), ${int(compareSteps)} steps (${int(written.objects)} objects, ~${Math.ceil(written.objects / CHUNK)} replay steps of ${CHUNK}); ${Number.isFinite(replayMs) ? `replaying ${secs(replayMs)}${Number.isFinite(comparingMs) ? `, comparing ${secs(comparingMs)}` : ", no poll during comparing"}` : `the polls saw no phase between the start and "compared" (see "requests during the rebuild"), so replay and comparison are not timed apart`}`,
    extra: {
      events: E,
      shards: SHARDS,
      chunkObjects: CHUNK,
      wallMs: compareMs,
      serverMs: serverCompareMs,
      steps: compareSteps,
      replayMs,
      comparingMs,
      polls: compare.polls.length,
    },
  });
  if (Number.isFinite(replayMs))
    out.push({
      subject: `  replay only, events/s`,
      value: (E * 1000) / replayMs,
      unit: "ops/s",
      note: `first poll in "replaying" → first poll past it: ${secs(replayMs)} for ${int(written.objects)} objects (${int((written.objects * 1000) / replayMs)} objects/s)`,
      extra: { replayMs },
    });
  out.push({
    subject: `apply, events/s (E ÷ apply time)`,
    value: (E * 1000) / applyMs,
    unit: "ops/s",
    note: `POST /admin/rebuild/apply → "applied" in ${secs(applyMs)}, ${int(applySteps)} steps; written ${JSON.stringify(apply.job.report?.written ?? null)}`,
    extra: { wallMs: applyMs, steps: applySteps },
  });
  out.push({
    subject: `  compare wall time`,
    value: compareMs,
    unit: "ms",
    note: `${int(compareSteps)} steps`,
  });
  out.push({
    subject: `  apply wall time`,
    value: applyMs,
    unit: "ms",
    note: `${int(applySteps)} steps`,
  });
  out.push({
    subject: `workerd RSS before the rebuild (archive written)`,
    value: r.before.total,
    unit: "bytes",
    note: `Σ VmRSS of wrangler dev's workerd processes: ${mib(r.before.total)} (${perPid(r.before)}); right after start-up, before the archive was written: ${mib(r.idle.total)}`,
  });
  out.push({
    subject: `workerd RSS peak during compare`,
    value: comparePeak.total,
    unit: "bytes",
    note: `${mib(comparePeak.total)} (${perPid(comparePeak)}), +${mib(comparePeak.total - r.before.total)} over before; at 10/25/50/75/100 % of the compare's time: ${rssOverTime(r.rss, compare, [0.1, 0.25, 0.5, 0.75, 1])} (sampled every ${RSS_MS} ms)`,
    extra: { before: r.before.total, peak: comparePeak.total },
  });
  out.push({
    subject: `workerd RSS peak during apply`,
    value: applyPeak.total,
    unit: "bytes",
    note: `${mib(applyPeak.total)} (${perPid(applyPeak)}); after apply ${mib(r.after.total)}`,
    extra: { peak: applyPeak.total, after: r.after.total },
  });

  const latency = (values: number[]) => {
    const ok = values.filter((v) => Number.isFinite(v));
    const failed = values.length - ok.length;
    if (values.length === 0) return "no request";
    if (ok.length === 0) return `${values.length} requests, all failed`;
    return `${values.length} requests, p50 ${secs(quantile(ok, 0.5))}, max ${secs(Math.max(...ok))}${failed > 0 ? `, ${failed} failed` : ""}`;
  };
  const slowest = Math.max(...[...compare.polls, ...apply.polls].map((p) => p.ms));
  out.push({
    subject: `requests during the rebuild`,
    value: Number.NaN,
    unit: "info",
    status: slowest > 5000 ? "WARN" : "OK",
    note: `GET /admin/rebuild (polled every ${POLL_MS} ms): compare ${latency(compare.polls.map((p) => p.ms))}; apply ${latency(apply.polls.map((p) => p.ms))}${compare.pollErrors.length + apply.pollErrors.length > 0 ? ` (failed polls, asked again: ${[...compare.pollErrors, ...apply.pollErrors].join("; ")})` : ""}. GET /_ss/health beside it: compare ${latency(compare.health)}; apply ${latency(apply.health)}`,
    extra: { slowestPollMs: slowest },
  });

  const seen = report?.objectsRead === written.objects && report?.eventsRead === written.events;
  out.push({
    subject: `archive seen by the worker (objects, events read = written)`,
    value: Number.NaN,
    unit: "info",
    status: seen ? "OK" : "WARN",
    note: `written ${int(written.objects)} objects / ${int(written.events)} events (${mib(written.bytes)}) in ${secs(written.ms)} through a second Miniflare on the same local R2 (set-up, not measured); the job read ${int(report?.objectsRead ?? Number.NaN)} objects / ${int(report?.eventsRead ?? Number.NaN)} events`,
    extra: { objects: written.objects, writeMs: written.ms, bytes: written.bytes },
  });

  const visitors = r.results.variations.reduce((n, v) => n + v.visitors, 0);
  const purchase = r.results.metrics[0]?.variations ?? [];
  const events = purchase.reduce((n, v) => n + v.events, 0);
  const converters = purchase.reduce((n, v) => n + v.converters, 0);
  const exact = visitors === E / 2 && events === E / 2 && converters === E / 2;
  out.push({
    subject: `results exact after apply (Σ visitors = Σ purchases = ${int(E / 2)})`,
    value: Number.NaN,
    unit: "info",
    status: exact ? "OK" : "WARN",
    note: `exact: ${exact ? "yes" : "no"} — Σ visitors ${int(visitors)} (${r.results.variations.map((v) => int(v.visitors)).join(" / ")}), Σ purchase events ${int(events)}, converters ${int(converters)}`,
  });
  if (report) {
    const tables = Object.entries(report.tables)
      .map(([t, s]) => `${t} live ${int(s.live)} / rebuilt ${int(s.rebuilt)}`)
      .join(", ");
    const clean = report.invalidLines === 0 && report.duplicates === 0 && report.eventsFolded === E;
    out.push({
      subject: `compare report`,
      value: Number.NaN,
      unit: "info",
      status: clean ? "OK" : "WARN",
      note: `eventsFolded ${int(report.eventsFolded)}, duplicates ${int(report.duplicates)}, invalid lines ${int(report.invalidLines)}${report.invalid.length ? ` (first: ${report.invalid[0]!.reason})` : ""}, excluded ${int(report.excluded)}, matches ${report.matches} (the live state was empty); ${tables}`,
    });
  }
  const failures = [...compare.errors, ...apply.errors];
  out.push({
    subject: `failed steps during the rebuild`,
    value: Number.NaN,
    unit: "info",
    status: failures.length === 0 ? "OK" : "WARN",
    note:
      failures.length === 0
        ? "none seen in any poll"
        : failures.map(([e, n]) => `${n}× in a row: ${e}`).join("; "),
  });
  out.push({
    subject: `event layout`,
    value: Number.NaN,
    unit: "info",
    status: r.shardsRecorded === SHARDS ? "OK" : "WARN",
    note: `asked for ${SHARDS}, recorded ${r.shardsRecorded}; job ${r.started.id}`,
  });
  const observability = process.env.X_LOCAL_OBSERVABILITY ?? "(unset: on by default)";
  out.push({
    subject: `wrangler dev local state after the run`,
    value: Number.NaN,
    unit: "info",
    note: `${Object.entries(r.state)
      .filter(([, b]) => b > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([p, b]) => `${p} ${mib(b)}`)
      .join(
        ", ",
      )}; X_LOCAL_OBSERVABILITY=${observability} (wrangler dev's local trace store, v3/observability)`,
    extra: { ...r.state, observability },
  });
  out.push(loadRow(r.load));
  return out;
}
