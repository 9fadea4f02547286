/**
 * `npm run bench [-- NAME…]`: runs every bench module (bench/*.bench.ts) in sequence, prints
 * one table per bench — our figure, each named peer's, the ratio and the target — and writes
 * bench/results/latest.json. Benchmarks report, they don't gate: a MISS is printed loudly but
 * the exit code stays 0. A bench that crashes exits 1.
 *
 * NAME selects benches: an exact name ("core-decide"), or any dash-separated part or prefix of
 * one ("core" runs core-decide and core-compile, "compile" runs core-compile).
 * `--list` prints the available benches.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { arch, cpus, platform, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { collectGarbage } from "./lib/harness";
import type { BenchModule, Row } from "./lib/types";
import { exitOnSignals } from "./lib/wrangler-dev";

const here = dirname(fileURLToPath(import.meta.url));
const resultsFile = join(here, "results", "latest.json");
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string, s: string): string => (color ? `\x1b[${code}m${s}\x1b[0m` : s);
const red = (s: string): string => paint("1;31", s);
const green = (s: string): string => paint("32", s);
const yellow = (s: string): string => paint("33", s);
const dim = (s: string): string => paint("2", s);
const bold = (s: string): string => paint("1", s);

interface Discovered {
  file: string;
  module?: BenchModule;
  loadError?: unknown;
}

async function discover(): Promise<Discovered[]> {
  const files = readdirSync(here)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort();
  const out: Discovered[] = [];
  for (const file of files) {
    try {
      const mod = (await import(pathToFileURL(join(here, file)).href)) as Partial<BenchModule>;
      if (typeof mod.name !== "string" || typeof mod.run !== "function") {
        throw new Error("a bench module must export `name` and `run()`");
      }
      out.push({ file, module: mod as BenchModule });
    } catch (loadError) {
      out.push({ file, loadError });
    }
  }
  const order = (d: Discovered): number => d.module?.order ?? Number.MAX_SAFE_INTEGER;
  return out.sort((a, b) => order(a) - order(b) || a.file.localeCompare(b.file));
}

/** The name a bench answers to; for a module that failed to load, its file name. */
const benchName = (d: Discovered): string => d.module?.name ?? d.file.replace(/\.bench\.ts$/, "");

function selects(filter: string, name: string): boolean {
  const parts = name.split("-");
  return parts.some((_, i) => parts.slice(i).join("-").startsWith(filter));
}

// ---------------------------------------------------------------- formatting

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function formatValue(row: Row): string {
  if (!Number.isFinite(row.value) && row.unit !== "info") return "n/a";
  switch (row.unit) {
    case "ops/s":
      return `${int.format(row.value)} ops/s`;
    case "ms":
      return `${row.value.toFixed(2)} ms`;
    case "bytes":
      return `${int.format(row.value)} B`;
    case "%":
      return `${row.value.toFixed(2)} %`;
    case "count":
      return int.format(row.value);
    case "info":
      return "";
  }
}

function formatStatus(row: Row): string {
  switch (row.status) {
    case "PASS":
      return green("PASS");
    case "MISS":
      return red("MISS <<<");
    case "OK":
      return green("ok");
    case "WARN":
      return yellow("WARN <<<");
    case undefined:
      return "";
  }
}

function printTable(rows: readonly Row[]): void {
  const header = ["subject", "ops/s | ms", "ratio vs ours", "target", "result"];
  const cells = rows.map((r) => [
    r.subject,
    formatValue(r),
    r.ratio === undefined
      ? r.unit === "info" || r.unit === "%" || r.unit === "bytes" || r.unit === "count"
        ? ""
        : "(ours)"
      : `ours ×${r.ratio.toFixed(1)}`,
    r.target ?? "",
    r.status ?? "",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (cols: string[], fmt: (s: string, i: number) => string = (s) => s): string =>
    cols
      .map((c, i) => fmt(i === 1 || i === 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!), i))
      .join("  ");
  console.log(bold(line(header)));
  console.log(dim(widths.map((w) => "-".repeat(w)).join("  ")));
  rows.forEach((row, r) => {
    console.log(
      line(cells[r]!, (s, i) => (i === 4 ? s.replace(row.status ?? "\0", formatStatus(row)) : s)),
    );
    if (row.note) console.log(dim(`    ${row.note}`));
  });
}

// ---------------------------------------------------------------- main

interface BenchReport {
  name: string;
  title?: string;
  file: string;
  finishedAt: string;
  durationMs: number;
  rows: Row[];
  error?: string;
}

interface ResultsFile {
  generatedAt: string;
  machine: Record<string, string | number>;
  benches: Record<string, BenchReport>;
}

function readPrevious(): ResultsFile | null {
  try {
    return JSON.parse(readFileSync(resultsFile, "utf8")) as ResultsFile;
  } catch {
    return null;
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2).filter((a) => a !== "--");
  const all = await discover();
  if (args.includes("--list")) {
    for (const d of all)
      console.log(
        `${benchName(d).padEnd(16)} ${d.module?.title ?? `(failed to load: ${String(d.loadError)})`}`,
      );
    return 0;
  }
  const filters = args.filter((a) => !a.startsWith("--"));
  const chosen =
    filters.length === 0 ? all : all.filter((d) => filters.some((f) => selects(f, benchName(d))));
  if (chosen.length === 0) {
    console.error(
      `No bench matches ${filters.join(", ")}. Available: ${all.map(benchName).join(", ")}`,
    );
    return 2;
  }

  const cpuList = cpus();
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    platform: `${platform()} ${arch()}`,
    cpu: cpuList[0]?.model ?? "unknown",
    cores: cpuList.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  };
  console.log(bold("Splitstream benchmarks"));
  console.log(
    dim(`node ${machine.node} · ${machine.platform} · ${machine.cpu} · ${machine.cores} cores`),
  );

  const reports: BenchReport[] = [];
  for (const d of chosen) {
    const name = benchName(d);
    console.log("");
    console.log(bold(`== ${name}${d.module?.title ? `: ${d.module.title}` : ""}`));
    collectGarbage(); // start every bench from a clean heap (the previous bench's garbage)
    const started = performance.now();
    let rows: Row[] = [];
    let error: string | undefined;
    try {
      if (!d.module) throw d.loadError;
      rows = await d.module.run();
      printTable(rows);
    } catch (e) {
      error = e instanceof Error ? (e.stack ?? e.message) : String(e);
      console.log(red(`ERROR: ${name} failed`));
      console.log(error);
    }
    const durationMs = performance.now() - started;
    console.log(dim(`(${(durationMs / 1000).toFixed(1)} s)`));
    reports.push({
      name,
      ...(d.module?.title ? { title: d.module.title } : {}),
      file: `bench/${d.file}`,
      finishedAt: new Date().toISOString(),
      durationMs,
      rows,
      ...(error ? { error } : {}),
    });
  }

  const previous = readPrevious();
  const results: ResultsFile = {
    generatedAt: new Date().toISOString(),
    machine,
    benches: {
      ...(previous?.benches ?? {}),
      ...Object.fromEntries(reports.map((r) => [r.name, r])),
    },
  };
  mkdirSync(dirname(resultsFile), { recursive: true });
  writeFileSync(
    resultsFile,
    JSON.stringify(
      results,
      (_k, v: unknown) => (typeof v === "number" && !Number.isFinite(v) ? null : v),
      2,
    ) + "\n",
  );

  const misses = reports.flatMap((r) =>
    r.rows.filter((row) => row.status === "MISS").map((row) => ({ bench: r.name, row })),
  );
  const warnings = reports.flatMap((r) =>
    r.rows.filter((row) => row.status === "WARN").map((row) => ({ bench: r.name, row })),
  );
  const errors = reports.filter((r) => r.error);
  console.log("");
  console.log(dim(`results: ${resultsFile}`));
  if (misses.length > 0) {
    console.log(red("!".repeat(72)));
    console.log(red(`!!! MISS: ${misses.length} target(s) not met`));
    for (const { bench, row } of misses) {
      const got = row.ratio !== undefined ? `×${row.ratio.toFixed(1)}` : formatValue(row);
      console.log(red(`!!!   ${bench} / ${row.subject}: ${got}, target ${row.target ?? "?"}`));
    }
    console.log(red("!".repeat(72)));
  }
  for (const { bench, row } of warnings)
    console.log(yellow(`WARN ${bench} / ${row.subject}: ${row.note ?? ""}`));
  if (misses.length === 0 && errors.length === 0) console.log(green("All targets met."));
  if (errors.length > 0) {
    console.log(red(`${errors.length} bench(es) failed: ${errors.map((e) => e.name).join(", ")}`));
    return 1;
  }
  return 0;
}

exitOnSignals();
process.exitCode = await main();
