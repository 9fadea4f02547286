#!/usr/bin/env node
// `npm start`: the Worker on http://localhost:8787 with local KV/D1/Queue/R2 state
// (kept in .wrangler/state), in front of the bundled demo shop on http://localhost:8788
// (wrangler.toml [dev] and ROUTES). Safe to run again: every step is idempotent.
//   1. .dev.vars gets random ADMIN_TOKEN / SIGNING_KEY values if it lacks them.
//   2. Pending D1 migrations in migrations/ are applied to the local database.
//   3. The demo origin (scripts/demo-origin.mjs) starts on :8788 as a child process, stopped
//      when this script exits. If :8788 already serves the demo origin, that one is used.
//   4. `wrangler dev --port 8787`, with any extra arguments (`npm start -- --ip 0.0.0.0`). A
//      `--persist-to DIR` among them is also used for step 2, so everything lands in the state
//      wrangler dev reads.
//   5. Once the Worker answers, the demo becomes real data (scripts/demo-seed.mjs): the first
//      start creates the "Demo shop" project (production on SDK key `demo`, which the local
//      route serves) and imports demo/datafile.json into it as records, through the management
//      API with ADMIN_TOKEN. Later starts keep that project as it is (your edits stay);
//      SPLITSTREAM_DEMO_RESET=1 imports the file again, SPLITSTREAM_DEMO=0 skips this step.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { seedDemo } from "./demo-seed.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const PORT = "8787";
const ORIGIN_PORT = 8788;
const SECRETS = ["ADMIN_TOKEN", "SIGNING_KEY"];
const devArgs = process.argv.slice(2);
/** `--persist-to DIR` / `--persist-to=DIR` given for wrangler dev, forwarded to local commands. */
const persistArgs = (() => {
  const i = devArgs.findIndex((a) => a === "--persist-to" || a.startsWith("--persist-to="));
  if (i < 0) return [];
  return devArgs[i].includes("=") ? [devArgs[i]] : devArgs.slice(i, i + 2);
})();
/** Child processes to stop when this script exits. */
const children = new Set();

// Local development calls no outside host unless you ask for it: no download of the `Request.cf`
// sample (Miniflare's placeholder is used) and no telemetry. Set either variable to override.
const childEnv = {
  ...process.env,
  CLOUDFLARE_CF_FETCH_ENABLED: process.env.CLOUDFLARE_CF_FETCH_ENABLED ?? "false",
  WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? "false",
};

const wranglerPkg = createRequire(import.meta.url).resolve("wrangler/package.json");
const wranglerBin = join(dirname(wranglerPkg), "bin", "wrangler.js");

/** Adds each secret .dev.vars lacks, with a random value; never changes an existing one. */
function ensureDevVars() {
  const file = join(root, ".dev.vars");
  const existing = existsSync(file) ? readFileSync(file, "utf8") : "";
  const present = new Set(
    existing
      .split(/\r?\n/)
      .map((line) => /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line)?.[1])
      .filter(Boolean),
  );
  const missing = SECRETS.filter((name) => !present.has(name));
  if (missing.length === 0) return;
  const lines = missing.map((name) => `${name}=${randomBytes(32).toString("hex")}`);
  const prefix = existing === "" || existing.endsWith("\n") ? existing : `${existing}\n`;
  writeFileSync(file, `${prefix}${lines.join("\n")}\n`, { mode: 0o600 });
  console.log(`start: wrote ${missing.join(", ")} to .dev.vars (local secrets; not committed)`);
}

/**
 * Runs a Node script (wrangler, the CLI) to completion; rejects when it fails. With
 * `capture`, resolves to its stdout instead of showing it.
 */
function runNode(label, script, args, { capture = false } = {}) {
  return new Promise((resolve, reject) => {
    // No stdin: wrangler then takes its non-interactive defaults instead of prompting.
    const child = spawn(process.execPath, [script, ...args], {
      cwd: root,
      env: childEnv,
      stdio: ["ignore", capture ? "pipe" : "inherit", "inherit"],
    });
    children.add(child);
    let stdout = "";
    child.stdout?.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      children.delete(child);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${label} ${args.join(" ")} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

const wrangler = (args, options) => runNode("wrangler", wranglerBin, args, options);

async function applyMigrations() {
  const dir = join(root, "migrations");
  const pending = existsSync(dir) && readdirSync(dir).some((name) => name.endsWith(".sql"));
  if (!pending) return;
  await wrangler(["d1", "migrations", "apply", "DB", "--local", ...persistArgs]);
}

/** The value of `name` in .dev.vars (written by ensureDevVars), or undefined. */
function devVar(name) {
  const file = join(root, ".dev.vars");
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (match?.[1] === name) return match[2].trim().replace(/^(['"])(.*)\1$/, "$2");
  }
  return undefined;
}

/** Waits until the Worker answers /_ss/health, then makes the demo real data. */
async function seedDemoWhenReady() {
  const baseUrl = `http://127.0.0.1:${PORT}`;
  for (let i = 0; i < 600 && !stopping; i++) {
    try {
      const response = await fetch(`${baseUrl}/_ss/health`, { signal: AbortSignal.timeout(1000) });
      if (response.status < 500) break;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (stopping) return;
  // .dev.vars first: it is what this wrangler dev runs with (a token exported in the shell may
  // be a deployed Worker's, and would count as a failed sign-in here).
  const token = devVar("ADMIN_TOKEN") ?? process.env.ADMIN_TOKEN;
  if (!token) {
    console.error("start: no ADMIN_TOKEN in .dev.vars; the demo project was not created");
    return;
  }
  try {
    await seedDemo({
      baseUrl,
      token,
      reset: process.env.SPLITSTREAM_DEMO_RESET === "1",
      log: (line) => console.log(`start: ${line}`),
    });
    console.log(
      `start: admin on http://localhost:${PORT}/_ss/admin (sign in with ADMIN_TOKEN from .dev.vars)`,
    );
  } catch (error) {
    console.error(
      `start: the demo project could not be set up: ${error instanceof Error ? error.message : error}`,
    );
  }
}

/** Whether the demo origin already answers on its port (e.g. one left from an earlier run). */
async function demoOriginRunning() {
  try {
    const response = await fetch(`http://127.0.0.1:${ORIGIN_PORT}/_origin/health`, {
      signal: AbortSignal.timeout(1000),
    });
    const body = await response.json();
    return body?.service === "splitstream-demo-origin";
  } catch {
    return false;
  }
}

/** Starts scripts/demo-origin.mjs on :8788 and waits until it answers. */
async function startDemoOrigin() {
  if (await demoOriginRunning()) {
    console.log(`start: the demo origin already runs on http://localhost:${ORIGIN_PORT}; using it`);
    return;
  }
  // The IPC channel makes the origin exit with this process, even if it is killed outright.
  const child = spawn(
    process.execPath,
    [join(root, "scripts", "demo-origin.mjs"), "--port", String(ORIGIN_PORT)],
    { cwd: root, env: process.env, stdio: ["ignore", "inherit", "inherit", "ipc"] },
  );
  children.add(child);
  const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code ?? -1)));
  for (let i = 0; i < 100; i++) {
    const done = await Promise.race([exited, new Promise((r) => setTimeout(() => r(null), 100))]);
    if (done !== null) {
      children.delete(child);
      throw new Error(
        done === 98
          ? `port ${ORIGIN_PORT} is taken by something else; stop it, the demo origin needs it`
          : `the demo origin exited (code ${done})`,
      );
    }
    if (await demoOriginRunning()) break;
  }
  child.once("exit", (code, signal) => {
    children.delete(child);
    if (!stopping) {
      console.error(`start: the demo origin stopped (${signal ?? `exit ${code}`}); stopping`);
      stop(1);
    }
  });
}

let stopping = false;
/**
 * Stops every child this script started (each by its own pid, SIGTERM, then SIGKILL after 5 s)
 * and exits with `exitCode` once they are gone. Idempotent.
 */
function stop(exitCode) {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  const live = () => [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  for (const child of live()) child.kill("SIGTERM");
  const deadline = Date.now() + 5000;
  const wait = setInterval(() => {
    const remaining = live();
    if (remaining.length > 0 && Date.now() < deadline) return;
    for (const child of remaining) child.kill("SIGKILL");
    clearInterval(wait);
    process.exit(exitCode);
  }, 50);
}

function dev() {
  const child = spawn(process.execPath, [wranglerBin, "dev", "--port", PORT, ...devArgs], {
    cwd: root,
    env: childEnv,
    stdio: "inherit",
  });
  children.add(child);
  child.on("error", (error) => {
    console.error(`start: could not run wrangler dev: ${error.message}`);
    stop(1);
  });
  // wrangler dev is gone: stop the demo origin too and leave with wrangler's status.
  child.on("exit", (code, signal) => {
    children.delete(child);
    stop(code ?? (signal ? 128 + signalNumber(signal) : 1));
  });
}

function signalNumber(signal) {
  return { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 }[signal] ?? 0;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => stop(128 + signalNumber(signal)));
}

/**
 * `npm start` runs this script under `sh -c`; when npm alone is signalled (e.g. `kill <npm pid>`
 * rather than Ctrl-C to the whole terminal), the shell may not pass the signal on. So the parent
 * and, on Linux, the grandparent are watched: when either is gone, everything is stopped.
 */
function watchParents() {
  const parent = process.ppid;
  const watched = [parent];
  try {
    const stat = readFileSync(`/proc/${parent}/stat`, "utf8");
    const grandparent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (grandparent > 1) watched.push(grandparent);
  } catch {
    // not Linux: the parent alone
  }
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return error?.code === "EPERM";
    }
  };
  const timer = setInterval(() => {
    if (process.ppid === parent && watched.every(alive)) return;
    console.error("start: the process that started npm start is gone; stopping");
    clearInterval(timer);
    stop(129);
  }, 1000);
  timer.unref();
}
watchParents();

try {
  ensureDevVars();
  await applyMigrations();
  await startDemoOrigin();
  if (!stopping) {
    dev();
    // SPLITSTREAM_DEMO=0: no demo project (e.g. after deleting it on purpose).
    if (process.env.SPLITSTREAM_DEMO !== "0") void seedDemoWhenReady();
  }
} catch (error) {
  console.error(`start: ${error instanceof Error ? error.message : String(error)}`);
  stop(1);
}
