/**
 * The world the browser tests run in: the demo shop's origin (scripts/demo-origin.mjs, in this
 * process) behind a real `wrangler dev` of the Worker, with a fresh local state (D1 migrated, the
 * test datafile in KV), on free loopback ports; and a headless Chromium (playwright-core).
 *
 * Nothing leaves the machine: no telemetry, no `Request.cf` download, Chromium without
 * background networking. wrangler is run by bench/lib/wrangler-dev.ts, which the benches and the
 * load test share: each `wrangler dev` in its own process group with the workerd it spawns,
 * stopped by that group's id, also when the test process exits early.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { DatabaseSync } from "node:sqlite";
import type { Browser } from "playwright-core";
import {
  applyLocalMigrations,
  putLocalKv,
  repoRoot,
  startWranglerDev,
  tempDir,
  type WranglerDev,
} from "../../bench/lib/wrangler-dev";

export { repoRoot };

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
  /**
   * Rows of a query run on every local visitor shard (the Durable Objects' SQLite files, read
   * only) and concatenated: where the consumer keeps per-visitor state (docs/scaling.md).
   */
  queryShards<T = Record<string, unknown>>(
    sql: string,
    ...params: Array<string | number>
  ): Promise<T[]>;
  /** wrangler's recent output (diagnostics). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts the demo origin and `wrangler dev` with `datafile` published as sdk key `demo`. Routes:
 * `127.0.0.1/*` with `optimizely_shim = true`, `localhost/*` without; both to the demo origin.
 */
export async function startDemo(datafile: unknown): Promise<Demo> {
  const state = tempDir("splitstream-browser-");
  const persistTo = join(state.path, "state");
  const originModule = pathToFileURL(join(repoRoot, "scripts", "demo-origin.mjs")).href;
  const { startDemoOrigin } = (await import(originModule)) as {
    startDemoOrigin(options: { port: number }): Promise<{ port: number; close(): Promise<void> }>;
  };
  const origin = await startDemoOrigin({ port: 0 });
  let worker: WranglerDev | null = null;
  let db: DatabaseSync | null = null;

  const stop = async (): Promise<void> => {
    db?.close();
    await worker?.stop();
    await origin.close();
    state.remove();
  };

  try {
    const config = testConfig(state.path);
    // One after the other: two local wrangler runs on one state directory can lock each other.
    await applyLocalMigrations(config, persistTo);
    await putLocalKv({
      config,
      binding: "DATAFILES",
      persistTo,
      key: "datafiles/demo",
      value: JSON.stringify(datafile),
    });
    const originUrl = `http://127.0.0.1:${origin.port}`;
    const routes = [
      { pattern: "127.0.0.1/*", sdk_key: "demo", origin: originUrl, optimizely_shim: true },
      { pattern: "localhost/*", sdk_key: "demo", origin: originUrl },
    ];
    const started = await startWranglerDev({
      config,
      persistTo,
      readyPath: "/_ss/health",
      vars: { ROUTES: JSON.stringify(routes) },
    });
    worker = started;

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

    const sqliteFiles = (dir: string): string[] => {
      const files: string[] = [];
      const walk = (d: string): void => {
        for (const entry of readdirSync(d, { withFileTypes: true })) {
          if (entry.isDirectory()) walk(join(d, entry.name));
          else if (entry.name.endsWith(".sqlite")) files.push(join(d, entry.name));
        }
      };
      if (existsSync(dir)) walk(dir);
      return files;
    };

    return {
      url: started.url,
      localhostUrl: `http://localhost:${started.port}`,
      query: async <T>(sql: string, ...params: Array<string | number>) =>
        (await openDb()).prepare(sql).all(...params) as T[],
      queryShards: async <T>(sql: string, ...params: Array<string | number>) => {
        const { DatabaseSync } = await import("node:sqlite");
        const rows: T[] = [];
        for (const file of sqliteFiles(join(persistTo, "v3", "do"))) {
          const shard = new DatabaseSync(file, { readOnly: true });
          try {
            const ready = shard
              .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exposures'")
              .get();
            if (ready) rows.push(...(shard.prepare(sql).all(...params) as T[]));
          } finally {
            shard.close();
          }
        }
        return rows;
      },
      output: () => started.output(),
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

/**
 * Where the admin screenshots go: docs/images with SPLITSTREAM_DOC_SCREENSHOTS=1 (for
 * docs/admin.md "Screenshots"; then commit them), else test-results (not tracked), so an ordinary
 * run leaves the working tree as it was.
 */
export const SCREENSHOTS_DIR = process.env.SPLITSTREAM_DOC_SCREENSHOTS
  ? join(repoRoot, "docs", "images")
  : join(repoRoot, "test-results");

/**
 * demo/datafile.json with one more condition on the home page: its conditions name the demo's
 * fixed ports, and the tests' Worker runs on a free one.
 */
export function demoDatafileAnyPort(): Record<string, unknown> & {
  web: { pages: Array<{ id: string; conditions: unknown[] }>; experiments: unknown[] };
} {
  const d = JSON.parse(readFileSync(join(repoRoot, "demo", "datafile.json"), "utf8")) as Record<
    string,
    unknown
  > & { web: { pages: Array<{ id: string; conditions: unknown[] }>; experiments: unknown[] } };
  d.web.pages
    .find((p) => p.id === "p_home")!
    .conditions.push({ match: "regex", value: "^https?://[^/]+/(?:[?#].*)?$" });
  return d;
}

/** The demo project as `npm start` makes it (scripts/demo-seed.mjs), from `datafile`; its id. */
export async function seedDemoProject(
  baseUrl: string,
  token: string,
  datafile: unknown,
): Promise<string> {
  const seedModule = pathToFileURL(join(repoRoot, "scripts", "demo-seed.mjs")).href;
  const { seedDemo } = (await import(seedModule)) as {
    seedDemo(options: {
      baseUrl: string;
      token: string;
      datafile?: unknown;
      log?: (line: string) => void;
    }): Promise<{ projectId: string }>;
  };
  return (await seedDemo({ baseUrl, token, datafile, log: () => {} })).projectId;
}
