/**
 * The `splitstream` CLI as a whole process — what someone running it waits for: Node starting,
 * the CLI loading, the datafile compiled, 20,000 NDJSON visitors decided against 50 experiments
 * and 20,000 lines written — beside a Node script that does the same with the official Optimizely
 * SDK (bench/fixtures/optimizely-decide.mjs), also as a whole process, reading and writing as the
 * CLI does so that only the deciding differs. Plus how long `splitstream --help` takes to start,
 * and Node's own floor (an empty script). Beside them, the same batch with `--flags` on the same
 * datafile plus 20 feature flags (two experiment rules and a rollout each): what deciding and
 * writing every flag adds.
 *
 * Every process is a child of this one, started with the same Node (process.execPath), its stdout
 * written to a file (as `> decisions.ndjson` would). Both batch outputs must be byte-identical:
 * the same decision for every (visitor, experiment) pair, or the bench fails; the `--flags` run
 * must carry the same decisions, and an entry for every flag on every line.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateDecideScenario, Rng } from "./lib/datafile-gen";
import { median, timeInterleaved, type TimingResult } from "./lib/harness";
import { loadOptimizely } from "./lib/peers";
import type { Row } from "./lib/types";

export const name = "cli-decide";
export const title =
  "CLI whole process: batch decide (20,000 visitors × 50 experiments) vs the Optimizely SDK; start-up";
export const order = 30;

const SEED = 0x5eed_2025;
const VISITORS = 20_000;
const EXPERIMENTS = 50;
/** Rounds of every subject once, interleaved; the first WARMUP rounds are not recorded. */
const WARMUP = 1;
const ROUNDS = 5;
const TARGET_RATIO = 10;
const TARGET_HELP_MS = 300;
/** Feature flags added for the `--flags` run, each with two of the experiments as its A/B rules. */
const FLAGS = 20;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(root, "bin", "splitstream.js");
const PEER = join(root, "bench", "fixtures", "optimizely-decide.mjs");

const SUBJECT = {
  ours: "ours `splitstream decide --input` (whole process)",
  oursFlags: "ours `splitstream decide --flags --input` (whole process)",
  optimizely: "Optimizely getVariation script (whole process)",
  help: "ours `splitstream --help` (whole process)",
  floor: "node with an empty script (floor)",
} as const;

/** Runs `node ...args` to completion with stdout into `outFile`; rejects on a non-zero exit. */
function runNode(args: string[], outFile: string): Promise<void> {
  const out = openSync(outFile, "w");
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", out, "pipe"] });
    let stderr = "";
    // stderr is "pipe" (above), so never null.
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`node ${args.join(" ")} exited with ${code}:\n${stderr}`));
    });
  }).finally(() => closeSync(out));
}

interface LooseDatafile {
  experiments: Array<{
    id: string;
    audienceIds: string[];
    variations: Array<{ id: string; featureEnabled?: boolean; variables?: unknown[] }>;
  }>;
  featureFlags: unknown[];
  rollouts: unknown[];
}

/**
 * The scenario's datafile plus FLAGS feature flags, as Optimizely writes them: three variables
 * (boolean, integer, json), two experiments as A/B rules whose variations get `featureEnabled`
 * and values, and a rollout of two targeted delivery rules (50 %) and an Everyone Else rule that
 * delivers "off". The experiments decide as before: the `decisions` part of every line is
 * unchanged.
 */
function withFlags(json: string, seed: number): string {
  const datafile = JSON.parse(json) as LooseDatafile;
  const rng = new Rng(seed);
  let n = 0;
  const id = (): string => String(8_000_000_000 + ++n);
  for (let f = 0; f < FLAGS; f++) {
    const variables = [
      { id: id(), key: "enabled", type: "boolean", defaultValue: "false" },
      { id: id(), key: "limit", type: "integer", defaultValue: "10" },
      { id: id(), key: "config", type: "json", defaultValue: '{"layout":"a","items":[1,2]}' },
    ];
    const values = (): Array<{ id: string; value: string }> => [
      { id: variables[0]!.id, value: "true" },
      { id: variables[1]!.id, value: String(rng.int(1, 100)) },
      { id: variables[2]!.id, value: `{"layout":"b","items":[${rng.int(1, 9)}]}` },
    ];
    const rules = datafile.experiments.slice(2 * f, 2 * f + 2);
    for (const experiment of rules) {
      for (const variation of experiment.variations) {
        variation.featureEnabled = rng.int(0, 3) > 0;
        variation.variables = values();
      }
    }
    const rule = (everyoneElse: boolean, audienceIds: string[]) => {
      const ruleId = id();
      const variation = {
        id: id(),
        key: everyoneElse ? "off" : "on",
        featureEnabled: !everyoneElse,
        variables: everyoneElse ? [] : values(),
      };
      return {
        id: ruleId,
        key: everyoneElse ? `default-rollout-${ruleId}` : `flag_${f}_rule_${ruleId}`,
        status: "Running",
        layerId: id(),
        audienceIds,
        forcedVariations: {},
        variations: [variation],
        trafficAllocation: [{ entityId: variation.id, endOfRange: everyoneElse ? 10000 : 5000 }],
      };
    };
    const rolloutId = id();
    datafile.rollouts.push({
      id: rolloutId,
      experiments: [
        rule(false, rng.pick(datafile.experiments).audienceIds),
        rule(false, rng.pick(datafile.experiments).audienceIds),
        rule(true, []),
      ],
    });
    datafile.featureFlags.push({
      id: id(),
      key: `flag_${f}`,
      rolloutId,
      experimentIds: rules.map((e) => e.id),
      variables,
    });
  }
  return JSON.stringify(datafile);
}

export async function run(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), "ss-bench-cli-"));
  try {
    return await measure(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function measure(dir: string): Promise<Row[]> {
  const scenario = generateDecideScenario(SEED, EXPERIMENTS, VISITORS);
  const datafile = join(dir, "datafile.json");
  const input = join(dir, "visitors.ndjson");
  writeFileSync(datafile, scenario.json);
  const flagsDatafile = join(dir, "datafile-flags.json");
  writeFileSync(flagsDatafile, withFlags(scenario.json, SEED));
  const flagsOut = join(dir, "ours-flags.ndjson");
  writeFileSync(input, scenario.visitors.map((v) => JSON.stringify(v)).join("\n") + "\n");
  const oursOut = join(dir, "ours.ndjson");
  const peerOut = join(dir, "optimizely.ndjson");
  const scratchOut = join(dir, "scratch.out");
  const empty = join(dir, "empty.mjs");
  writeFileSync(empty, "");

  // Built before timing, so no timed run pays for bin/splitstream.js rebuilding it.
  const cli = (await import("../scripts/build-cli.mjs" as string)) as {
    buildCli(): Promise<number>;
    bundleIsFresh(): boolean;
  };
  if (!cli.bundleIsFresh()) await cli.buildCli();

  const results = await timeInterleaved(
    { warmupBlocks: WARMUP, blocks: ROUNDS, blockSize: 1, discard: 0 },
    [
      {
        name: SUBJECT.ours,
        fn: () => runNode([BIN, "decide", "--datafile", datafile, "--input", input], oursOut),
      },
      { name: SUBJECT.optimizely, fn: () => runNode([PEER, datafile, input], peerOut) },
      {
        name: SUBJECT.oursFlags,
        fn: () =>
          runNode(
            [BIN, "decide", "--datafile", flagsDatafile, "--input", input, "--flags"],
            flagsOut,
          ),
      },
      { name: SUBJECT.help, fn: () => runNode([BIN, "--help"], scratchOut) },
      { name: SUBJECT.floor, fn: () => runNode([empty], scratchOut) },
    ],
  );
  const rebuilt = !cli.bundleIsFresh();

  // ---- sanity: the two batch outputs, line by line (fails the bench when they differ).
  const ours = readFileSync(oursOut, "utf8").split("\n");
  const theirs = readFileSync(peerOut, "utf8").split("\n");
  const differing = ours.filter((line, i) => line !== theirs[i]).length;
  if (ours.length !== VISITORS + 1 || differing > 0 || theirs.length !== ours.length) {
    const first = ours.findIndex((line, i) => line !== theirs[i]);
    throw new Error(
      `splitstream decide and the Optimizely script disagree: ${ours.length - 1} vs ${theirs.length - 1} lines, ` +
        `${differing} differ; first at line ${first + 1}:\n  ours       ${ours[first]?.slice(0, 300)}\n  Optimizely ${theirs[first]?.slice(0, 300)}`,
    );
  }
  // ---- sanity: the --flags run decides the experiments alike, and every flag on every line.
  const withFlagsLines = readFileSync(flagsOut, "utf8").split("\n");
  let flagEntries = 0;
  let flagsOn = 0;
  for (let i = 0; i < VISITORS; i++) {
    const line = JSON.parse(withFlagsLines[i] ?? "null") as {
      decisions: object;
      flags: Record<string, { enabled: boolean }>;
    } | null;
    const plain = JSON.parse(ours[i]!) as { decisions: object };
    if (
      line === null ||
      JSON.stringify(line.decisions) !== JSON.stringify(plain.decisions) ||
      Object.keys(line.flags).length !== FLAGS
    ) {
      throw new Error(
        `splitstream decide --flags line ${i + 1} differs from the plain run or lacks flags:\n  ${withFlagsLines[i]?.slice(0, 300)}`,
      );
    }
    for (const entry of Object.values(line.flags)) {
      flagEntries++;
      if (entry.enabled) flagsOn++;
    }
  }

  let decisions = 0;
  let inVariation = 0;
  for (const line of ours.slice(0, VISITORS)) {
    for (const v of Object.values((JSON.parse(line) as { decisions: object }).decisions)) {
      decisions++;
      if (v !== null) inVariation++;
    }
  }

  const get = (subject: string): TimingResult => results.get(subject)!;
  const extra = (r: TimingResult) => ({
    p95: r.p95,
    min: r.min,
    max: r.max,
    rounds: ROUNDS,
    samples: r.samples.map((ms) => Math.round(ms)).join(", "),
  });
  const oursT = get(SUBJECT.ours);
  const flagsT = get(SUBJECT.oursFlags);
  const flagsExtra = flagsT.samples.map((ms, i) => ms - oursT.samples[i]!);
  const peerT = get(SUBJECT.optimizely);
  // Median of the per-round ratios: both ran seconds apart in the same round.
  const ratios = peerT.samples.map((ms, i) => ms / oursT.samples[i]!);
  const ratio = median(ratios);
  const help = get(SUBJECT.help);
  const optimizely = await loadOptimizely();
  return [
    {
      subject: SUBJECT.ours,
      value: oursT.median,
      unit: "ms",
      note: `node bin/splitstream.js decide --datafile F --input F > out: start, load dist/cli, compile, decide ${decisions.toLocaleString("en-US")}, write`,
      extra: extra(oursT),
    },
    {
      subject: SUBJECT.optimizely,
      value: peerT.median,
      unit: "ms",
      ratio,
      target: `≥ ${TARGET_RATIO}×`,
      status: ratio >= TARGET_RATIO ? "PASS" : "MISS",
      note:
        `node bench/fixtures/optimizely-decide.mjs F F > out: @optimizely/optimizely-sdk ${optimizely.version}, static config, getVariation per experiment, ` +
        `input and output handled as the CLI does; per-round ratios ${ratios.map((r) => r.toFixed(1)).join(", ")}`,
      extra: { ...extra(peerT), ratios: ratios.map((r) => r.toFixed(2)).join(", ") },
    },
    {
      subject: SUBJECT.oursFlags,
      value: flagsT.median,
      unit: "ms",
      note:
        `the same batch on the datafile plus ${FLAGS} flags (2 A/B rules and 3 delivery rules each): ` +
        `${flagEntries.toLocaleString("en-US")} flag decisions (${((100 * flagsOn) / flagEntries).toFixed(1)} % enabled) with their variables also written; ` +
        `median extra over the plain run ${median(flagsExtra).toFixed(0)} ms (per round ${flagsExtra.map((ms) => ms.toFixed(0)).join(", ")})`,
      extra: { ...extra(flagsT), extraMs: median(flagsExtra) },
    },
    {
      subject: SUBJECT.help,
      value: help.median,
      unit: "ms",
      target: `≤ ${TARGET_HELP_MS} ms`,
      status: help.median <= TARGET_HELP_MS ? "PASS" : "MISS",
      note: "bin/splitstream.js: checks dist/cli/splitstream.mjs is current, imports it, prints usage",
      extra: extra(help),
    },
    {
      // Not ours, so an info row (a time row without a ratio would be labelled "(ours)").
      subject: SUBJECT.floor,
      value: get(SUBJECT.floor).median,
      unit: "info",
      note: `${get(SUBJECT.floor).median.toFixed(2)} ms: what any Node process costs on this machine, part of every figure above`,
      extra: extra(get(SUBJECT.floor)),
    },
    {
      subject: "sanity: ours = Optimizely, whole output",
      value: 100,
      unit: "%",
      status: "OK",
      note: `${VISITORS.toLocaleString("en-US")} lines byte-identical (${decisions.toLocaleString("en-US")} decisions, ${((100 * inVariation) / decisions).toFixed(1)} % in a variation)`,
    },
    {
      subject: "setup",
      value: 0,
      unit: "info",
      note:
        `${EXPERIMENTS} experiments, ${VISITORS.toLocaleString("en-US")} visitors (NDJSON ${(readFileSync(input).length / 1e6).toFixed(1)} MB in, ${(readFileSync(oursOut).length / 1e6).toFixed(1)} MB out), Node ${process.version}; ` +
        `median of ${ROUNDS} interleaved rounds after ${WARMUP} warm-up round, ratio = median of the per-round ratios` +
        (rebuilt
          ? "; WARNING: src changed during the bench, so a round included a CLI rebuild"
          : ""),
    },
  ];
}
