/**
 * The world the browser tests run in: the demo shop's origin (scripts/demo-origin.mjs, in this
 * process) behind a real `wrangler dev` of the Worker, with a fresh local state (D1 migrated, the
 * test datafile in KV), on free loopback ports; and a headless Chromium (playwright-core).
 *
 * Nothing leaves the machine: no telemetry, no `Request.cf` download, Chromium without
 * background networking. Every process started here is stopped by its own id (wrangler runs in
 * its own process group with the workerd it spawns), also when the test process exits early.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { DatabaseSync } from "node:sqlite";
import type { Browser } from "playwright-core";

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const wranglerBin = join(
  dirname(createRequire(import.meta.url).resolve("wrangler/package.json")),
  "bin",
  "wrangler.js",
);
const wranglerEnv = {
  ...process.env,
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  NO_COLOR: "1",
};

/** A desktop Chrome user agent: headless Chromium's own says "HeadlessChrome", a bot. */
export const CHROME_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Safari/537.36";

/** Where Chromium is: $SPLITSTREAM_CHROMIUM, else the Debian package's binary. Null: none. */
export function chromiumPath(): string | null {
  const candidates = [
    process.env.SPLITSTREAM_CHROMIUM,
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
  ];
  return candidates.find((p): p is string => !!p && existsSync(p)) ?? null;
}

/** Chromium as the tests launch it (playwright gives each launch a fresh temporary profile). */
export async function launchChromium(): Promise<{ browser: Browser; close(): Promise<void> }> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error("no Chromium (apt-get install -y chromium)");
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-quic",
      "--disable-sync",
      // For every request, also those the browser sends for a page already gone (a beacon at
      // unload), which a context's userAgent override does not reach.
      `--user-agent=${CHROME_UA}`,
    ],
  });
  return { browser, close: () => browser.close().catch(() => undefined) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

const liveGroups = new Set<number>();
process.once("exit", () => {
  for (const pgid of liveGroups) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

function outputOf(child: ChildProcess): () => string {
  const lines: string[] = [];
  const take = (chunk: Buffer): void => {
    for (const line of chunk.toString("utf8").split(/\r?\n/)) {
      if (line.trim() === "") continue;
      lines.push(line);
      if (lines.length > 80) lines.shift();
    }
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  return () => lines.join("\n");
}

function wrangler(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [wranglerBin, ...args], {
      cwd: repoRoot,
      env: wranglerEnv,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = outputOf(child);
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`wrangler ${args[0]} exited ${code}:\n${output()}`)),
    );
  });
}

function get(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.setTimeout(3000, () => req.destroy(new Error("timeout")));
    req.once("error", reject);
    req.end();
  });
}

/**
 * The repository's wrangler.toml for a test run, in `dir`: absolute paths, no `[dev]` section
 * (the Worker sees the URL the browser asked for, so same-origin checks see the real origin),
 * and a 1 s queue batch timeout so events reach D1 quickly.
 */
function testConfig(dir: string): string {
  const source = readFileSync(join(repoRoot, "wrangler.toml"), "utf8");
  const out: string[] = [];
  let skipping = false;
  for (const line of source.split(/\r?\n/)) {
    if (/^\s*\[/.test(line)) skipping = /^\s*\[dev\]/.test(line);
    if (!skipping) out.push(line);
  }
  const text = out
    .join("\n")
    .replace(/^main\s*=.*$/m, `main = ${JSON.stringify(join(repoRoot, "src", "index.ts"))}`)
    .replace(
      /^migrations_dir\s*=.*$/m,
      `migrations_dir = ${JSON.stringify(join(repoRoot, "migrations"))}`,
    )
    .replace(/^max_batch_timeout\s*=.*$/m, "max_batch_timeout = 1");
  const file = join(dir, "wrangler.toml");
  writeFileSync(file, text);
  writeFileSync(join(dir, ".dev.vars"), "ADMIN_TOKEN=browser-admin\nSIGNING_KEY=browser-signing\n");
  return file;
}

export interface Demo {
  /** The Worker as `http://127.0.0.1:PORT` (route with the optimizely shim). */
  url: string;
  /** The same Worker as `http://localhost:PORT` (route without the shim). */
  localhostUrl: string;
  /** Rows of a query against the local D1 database the queue consumer writes (read-only). */
  query<T = Record<string, unknown>>(sql: string, ...params: Array<string | number>): Promise<T[]>;
  /** wrangler's recent output (diagnostics). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts the demo origin and `wrangler dev` with `datafile` published as sdk key `demo`. Routes:
 * `127.0.0.1/*` with `optimizely_shim = true`, `localhost/*` without; both to the demo origin.
 */
export async function startDemo(datafile: unknown): Promise<Demo> {
  const state = mkdtempSync(join(tmpdir(), "splitstream-browser-"));
  const persistTo = join(state, "state");
  const originModule = pathToFileURL(join(repoRoot, "scripts", "demo-origin.mjs")).href;
  const { startDemoOrigin } = (await import(originModule)) as {
    startDemoOrigin(options: { port: number }): Promise<{ port: number; close(): Promise<void> }>;
  };
  const origin = await startDemoOrigin({ port: 0 });
  let pgid: number | null = null;
  let exited: Promise<void> = Promise.resolve();
  let output = (): string => "";
  let db: DatabaseSync | null = null;

  const stop = async (): Promise<void> => {
    db?.close();
    if (pgid !== null && liveGroups.has(pgid)) {
      const group = pgid;
      try {
        process.kill(-group, "SIGTERM");
      } catch {
        // gone
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-group, "SIGKILL");
        } catch {
          // gone
        }
      }, 5000);
      await exited;
      clearTimeout(timer);
      try {
        process.kill(-group, "SIGKILL"); // workerd may linger a moment after wrangler
      } catch {
        // gone
      }
      liveGroups.delete(group);
    }
    await origin.close();
    rmSync(state, { recursive: true, force: true });
  };

  try {
    const config = testConfig(state);
    const datafileFile = join(state, "datafile.json");
    writeFileSync(datafileFile, JSON.stringify(datafile));
    const local = ["--config", config, "--local", "--persist-to", persistTo];
    // One after the other: two local wrangler runs on one state directory can lock each other.
    await wrangler(["d1", "migrations", "apply", "DB", ...local]);
    await wrangler([
      "kv",
      "key",
      "put",
      "--binding",
      "DATAFILES",
      ...local,
      "datafiles/demo",
      "--path",
      datafileFile,
    ]);

    const port = await freePort();
    const originUrl = `http://127.0.0.1:${origin.port}`;
    const routes = [
      { pattern: "127.0.0.1/*", sdk_key: "demo", origin: originUrl, optimizely_shim: true },
      { pattern: "localhost/*", sdk_key: "demo", origin: originUrl },
    ];
    const child = spawn(
      process.execPath,
      [
        wranglerBin,
        "dev",
        "--config",
        config,
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--inspector-port",
        String(await freePort()),
        "--persist-to",
        persistTo,
        "--log-level",
        "warn",
        "--show-interactive-dev-session=false",
        "--var",
        `ROUTES:${JSON.stringify(routes)}`,
      ],
      { cwd: repoRoot, env: wranglerEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    pgid = child.pid!;
    liveGroups.add(pgid);
    output = outputOf(child);
    let gone = false;
    exited = new Promise((resolve) =>
      child.once("exit", () => {
        gone = true;
        resolve();
      }),
    );
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (gone) throw new Error(`wrangler dev exited:\n${output()}`);
      if (Date.now() > deadline) throw new Error(`wrangler dev not ready:\n${output()}`);
      if (await get(`${url}/_ss/health`).catch(() => 0)) break;
      await new Promise((r) => setTimeout(r, 200));
    }

    const openDb = async (): Promise<DatabaseSync> => {
      if (db) return db;
      // node:sqlite (Node 22.13+, experimental): loaded only when a test reads the aggregates.
      const { DatabaseSync } = await import("node:sqlite");
      const dir = join(persistTo, "v3", "d1");
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const entry of readdirSync(d, { withFileTypes: true })) {
          if (entry.isDirectory()) walk(join(d, entry.name));
          else if (entry.name.endsWith(".sqlite")) files.push(join(d, entry.name));
        }
      };
      walk(dir);
      for (const file of files) {
        const candidate = new DatabaseSync(file, { readOnly: true });
        const hasTable = candidate
          .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exposures'")
          .get();
        if (hasTable) return (db = candidate);
        candidate.close();
      }
      throw new Error(`no D1 database with the events tables under ${dir}`);
    };

    return {
      url,
      localhostUrl: `http://localhost:${port}`,
      query: async <T>(sql: string, ...params: Array<string | number>) =>
        (await openDb()).prepare(sql).all(...params) as T[],
      output: () => output(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Polls `check` until it returns a truthy value (then returns it) or `timeoutMs` passes. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
