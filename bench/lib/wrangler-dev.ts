/**
 * Real `wrangler dev` instances for the edge benches, plus the loopback tools around them: a
 * free-port finder, a local KV publisher, an in-process origin and a tiny sequential HTTP client
 * that times headers, first body byte and end of body.
 *
 * Everything stays on 127.0.0.1. Each `wrangler dev` runs in its own process group (wrangler and
 * the workerd it spawns), stopped by that group's id — SIGTERM, then SIGKILL after a grace
 * period — when the bench ends, and also if the bench process exits early.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type RequestListener,
} from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const wranglerBin = join(
  dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);

/** No telemetry, no download of the `Request.cf` sample: nothing leaves the machine. */
const wranglerEnv = {
  ...process.env,
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  NO_COLOR: "1",
};

/** A TCP port free on 127.0.0.1 right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

// ------------------------------------------------------------------------------ process groups

const liveGroups = new Set<number>();
process.once("exit", () => {
  // Last resort (bench crashed or was interrupted): no wrangler/workerd may outlive us.
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
let exitingOnSignals = false;

/**
 * Makes Ctrl-C / SIGTERM exit the process (running the clean-up above) instead of killing it
 * outright, which would leave wrangler and workerd running. For command-line runners (the bench,
 * the load test); test runners handle signals themselves, so importing this module installs
 * nothing.
 */
export function exitOnSignals(): void {
  if (exitingOnSignals) return;
  exitingOnSignals = true;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => process.exit(130));
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** Output kept from a child, for error messages (the last `max` lines). */
function tail(child: ChildProcess, max = 60): () => string {
  const lines: string[] = [];
  const take = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split(/\r?\n/)) {
      if (line.trim() === "") continue;
      lines.push(line);
      if (lines.length > max) lines.shift();
    }
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  return () => lines.join("\n");
}

/** Runs wrangler to completion (e.g. `kv key put`); rejects with its output when it fails. */
export function runWrangler(args: string[], cwd = repoRoot): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [wranglerBin, ...args], {
      cwd,
      env: wranglerEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = tail(child);
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`wrangler ${args.join(" ")} exited ${code}:\n${output()}`)),
    );
  });
}

/** Writes `value` to the local KV namespace bound as `binding`, in `persistTo`. */
export async function putLocalKv(options: {
  config: string;
  binding: string;
  persistTo: string;
  key: string;
  value: string;
}): Promise<void> {
  const dir = tempDir("splitstream-kv-");
  const file = join(dir.path, "value.json");
  writeFileSync(file, options.value);
  try {
    await runWrangler([
      "kv",
      "key",
      "put",
      "--config",
      options.config,
      "--binding",
      options.binding,
      "--local",
      "--persist-to",
      options.persistTo,
      options.key,
      "--path",
      file,
    ]);
  } finally {
    dir.remove();
  }
}

/** `wrangler d1 migrations apply DB --local` into `persistTo`. */
export function applyLocalMigrations(config: string, persistTo: string): Promise<void> {
  return runWrangler([
    "d1",
    "migrations",
    "apply",
    "DB",
    "--local",
    "--config",
    config,
    "--persist-to",
    persistTo,
  ]);
}

export interface WranglerDev {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** The devtools inspector port (for profiling a bench by hand). */
  inspectorPort: number;
  /** The process group id (= wrangler's pid). */
  pgid: number;
  /** Wrangler's recent output, for diagnostics. */
  output(): string;
  stop(): Promise<void>;
}

export interface WranglerDevOptions {
  /** wrangler.toml to use. */
  config: string;
  /** Local state directory (`--persist-to`). */
  persistTo: string;
  /** `--var NAME:VALUE` overrides. */
  vars?: Record<string, string>;
  /** Path that answers once the Worker is up (any HTTP status counts). Default `/`. */
  readyPath?: string;
  /** Give up after this long. Default 90 s. */
  timeoutMs?: number;
}

/** Starts `wrangler dev` on a free loopback port and waits until it answers HTTP. */
export async function startWranglerDev(options: WranglerDevOptions): Promise<WranglerDev> {
  const port = await freePort();
  const inspectorPort = await freePort();
  const args = [
    wranglerBin,
    "dev",
    "--config",
    options.config,
    "--ip",
    "127.0.0.1",
    "--port",
    String(port),
    "--inspector-port",
    String(inspectorPort),
    "--persist-to",
    options.persistTo,
    "--log-level",
    "warn",
    "--show-interactive-dev-session=false",
  ];
  for (const [name, value] of Object.entries(options.vars ?? {}))
    args.push("--var", `${name}:${value}`);
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: wranglerEnv,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // own process group: wrangler + workerd are stopped together
  });
  const pgid = child.pid!;
  liveGroups.add(pgid);
  const output = tail(child);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );

  const stop = async (): Promise<void> => {
    if (!liveGroups.has(pgid)) return;
    killGroup(pgid, "SIGTERM");
    const timer = setTimeout(() => killGroup(pgid, "SIGKILL"), 5000);
    await exit;
    clearTimeout(timer);
    // workerd may linger a moment after wrangler: make sure the whole group is gone.
    killGroup(pgid, "SIGKILL");
    liveGroups.delete(pgid);
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  const agent = new Agent({ keepAlive: false });
  try {
    for (;;) {
      if (exited) throw new Error(`wrangler dev exited before it was ready:\n${output()}`);
      if (Date.now() > deadline)
        throw new Error(`wrangler dev was not ready in time:\n${output()}`);
      try {
        await timedGet(`${url}${options.readyPath ?? "/"}`, { agent, timeoutMs: 5000 });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  } finally {
    agent.destroy();
  }
  return { url, port, inspectorPort, pgid, output, stop };
}

// ------------------------------------------------------------------------------ origin

export interface LocalOrigin {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 (free port) in this process. */
export function startOrigin(handler: RequestListener): Promise<LocalOrigin> {
  return new Promise((resolve, reject) => {
    const server = createServer(handler);
    server.keepAliveTimeout = 60_000;
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

// ------------------------------------------------------------------------------ client

export interface Timing {
  status: number;
  headers: IncomingHttpHeaders;
  /** ms from sending the request to the response headers */
  headersMs: number;
  /** ms from sending the request to the first body byte (NaN for an empty body) */
  firstByteMs: number;
  /** ms from sending the request to the end of the body */
  totalMs: number;
  bytes: number;
  /** The body, when `keepBody` was set. */
  body?: string;
}

/**
 * One GET over `agent` (keep-alive: sequential requests reuse one connection), timed with
 * performance.now(). Nothing is parsed; body chunks are counted (and kept with `keepBody`).
 */
export function timedGet(
  url: string,
  options: {
    agent: Agent;
    headers?: Record<string, string>;
    keepBody?: boolean;
    timeoutMs?: number;
  },
): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    let headersMs = Number.NaN;
    let firstByteMs = Number.NaN;
    let bytes = 0;
    const chunks: Buffer[] = [];
    const req = httpRequest(url, { agent: options.agent, headers: options.headers }, (res) => {
      headersMs = performance.now() - start;
      res.on("data", (chunk: Buffer) => {
        if (bytes === 0) firstByteMs = performance.now() - start;
        bytes += chunk.length;
        if (options.keepBody) chunks.push(chunk);
      });
      res.once("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          headersMs,
          firstByteMs,
          totalMs: performance.now() - start,
          bytes,
          ...(options.keepBody ? { body: Buffer.concat(chunks).toString("utf8") } : {}),
        }),
      );
      res.once("error", reject);
    });
    req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.once("error", reject);
    req.end();
  });
}

/** `name=value` pairs of the Set-Cookie headers of a response, as a Cookie header value. */
export function cookieHeader(headers: IncomingHttpHeaders): string {
  return (headers["set-cookie"] ?? []).map((c) => c.split(";")[0]!.trim()).join("; ");
}

// ------------------------------------------------------------------------------ machine load

/**
 * The machine-load row of a wrangler-dev bench. `samples[0]` is taken before the bench starts its
 * own load, the last one at its end. Only the first says whether OTHER work was running: by the
 * end, the bench's own client and workerd keep about two processes busy, so a load near the core
 * count is the bench itself.
 */
export function loadRow(samples: number[]): {
  subject: string;
  value: number;
  unit: "info";
  status: "OK" | "WARN";
  note: string;
} {
  const cores = availableParallelism();
  const before = samples[0] ?? 0;
  const after = samples[samples.length - 1] ?? before;
  const busy = before > cores * 0.75;
  return {
    subject: "machine load during the bench",
    value: Number.NaN,
    unit: "info",
    status: busy ? "WARN" : "OK",
    note: `1-min load average ${before.toFixed(1)} before, ${after.toFixed(1)} at the end (the bench's own processes included) on ${cores} cores${busy ? " — other work was running; the times are inflated" : ""}`,
  };
}

/** The current 1-minute load average. */
export const currentLoad = (): number => loadavg()[0] ?? 0;
