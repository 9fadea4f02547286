/**
 * Datafile compile time: `loadDatafile(json)` (JSON.parse + validation + compilation) of a
 * ~1 MB datafile with 500 experiments, beside the Optimizely SDK's createInstance + onReady on
 * the same JSON text. This is what an isolate pays once per datafile revision.
 *
 * Runs before the decision bench so its first call is a genuinely cold one (nothing in the
 * core has been run, hence JIT-compiled, in this process yet).
 */
import { compileDatafile, decideExperiment, loadDatafile, parseDatafile } from "../src/core/index";
import { generateLargeDatafile, generateVisitors, LARGE_DEFAULTS, Rng } from "./lib/datafile-gen";
import { now, timeRatio, summarize, timeInterleaved, type TimingResult } from "./lib/harness";
import { loadOptimizely } from "./lib/peers";
import type { Row } from "./lib/types";

export const name = "core-compile";
export const title =
  "Compiling a ~1 MB datafile (500 experiments) vs Optimizely createInstance + onReady";
export const order = 10;

const SEED = 0xda7a_f11e;
/** loadDatafile and the peer: blocks of BLOCK runs (the first DISCARD of each not recorded), alternating. */
const BLOCKS = 6;
const BLOCK = 7;
const DISCARD = 2;
const RUNS = BLOCKS * (BLOCK - DISCARD);
const SPLIT_RUNS = 15;
const WARMUP = 3;
const TARGET_MS = 50;
const SANITY_VISITORS = 40;

export async function run(): Promise<Row[]> {
  const datafile = generateLargeDatafile(SEED);
  const json = JSON.stringify(datafile);
  const bytes = Buffer.byteLength(json, "utf8");
  const web = datafile.web as {
    pages: unknown[];
    experiments: Array<{ variations: Array<{ changes: unknown[] }> }>;
  };
  const changeCount = web.experiments.reduce(
    (n, e) => n + e.variations.reduce((m, v) => m + v.changes.length, 0),
    0,
  );

  // The very first call in this process: cold JIT, as in a fresh isolate.
  const coldStart = now();
  const cold = loadDatafile(json);
  const coldMs = now() - coldStart;
  if (!cold.ok) {
    throw new Error(
      `loadDatafile rejected the bench datafile:\n${cold.problems.map((p) => JSON.stringify(p)).join("\n")}`,
    );
  }
  const compiled = cold.compiled;

  // ---- ours and Optimizely, interleaved round by round (the SDK's static config from the same JSON text).
  const optimizely = await loadOptimizely();
  type Client = ReturnType<typeof optimizely.mod.createInstance>;
  const makeClient = async (): Promise<Client> => {
    const client = optimizely.mod.createInstance({
      projectConfigManager: optimizely.mod.createStaticProjectConfigManager({ datafile: json }),
    });
    await client.onReady();
    return client;
  };
  const peerColdStart = now();
  const sanityClient = await makeClient();
  const peerColdMs = now() - peerColdStart;
  const OURS = "ours";
  const PEER = "optimizely";
  const timed = await timeInterleaved(
    { warmupBlocks: 1, blocks: BLOCKS, blockSize: BLOCK, discard: DISCARD },
    [
      { name: OURS, fn: () => loadDatafile(json) },
      { name: PEER, fn: () => makeClient(), teardown: (client) => (client as Client).close() },
    ],
  );
  const total = timed.get(OURS)!;
  const peer = timed.get(PEER)!;

  // ---- where the time goes: the three stages of loadDatafile, timed in sequence in each run
  // (so each stage pays for the garbage collections its own allocations trigger, as in real use).
  const stages = { parse: [] as number[], validate: [] as number[], compile: [] as number[] };
  for (let i = 0; i < WARMUP + SPLIT_RUNS; i++) {
    const t0 = now();
    const value = JSON.parse(json) as unknown;
    const t1 = now();
    const parsed = parseDatafile(value);
    const t2 = now();
    if (!parsed.ok) throw new Error("parseDatafile rejected the bench datafile");
    compileDatafile(parsed.datafile);
    const t3 = now();
    if (i < WARMUP) continue;
    stages.parse.push(t1 - t0);
    stages.validate.push(t2 - t1);
    stages.compile.push(t3 - t2);
  }
  const jsonParse = summarize(Number.NaN, stages.parse);
  const validate = summarize(Number.NaN, stages.validate);
  const compile = summarize(Number.NaN, stages.compile);

  // ---- sanity: ours and the SDK decide this datafile identically (groups, typed audiences, …).
  const visitors = generateVisitors(new Rng(SEED ^ 0x77), SANITY_VISITORS);
  let agree = 0;
  let pairs = 0;
  let decided = 0;
  for (const visitor of visitors) {
    for (const experiment of compiled.experiments) {
      pairs++;
      const ours = decideExperiment(compiled, experiment.key, visitor).variationKey;
      if (ours === sanityClient.getVariation(experiment.key, visitor.visitorId, visitor.attributes))
        agree++;
      if (ours !== null) decided++;
    }
  }
  await sanityClient.close();

  const ms = (r: TimingResult): Record<string, number> => ({
    median: r.median,
    p95: r.p95,
    min: r.min,
    max: r.max,
    first: r.first,
  });
  const pass = (v: number): Row["status"] => (v <= TARGET_MS ? "PASS" : "MISS");
  return [
    {
      subject: "datafile size",
      value: bytes,
      unit: "bytes",
      note:
        `${compiled.experiments.length} experiments (${LARGE_DEFAULTS.grouped} in random groups of ${LARGE_DEFAULTS.groupSize}), ` +
        `${LARGE_DEFAULTS.audiences} typed audiences, ${LARGE_DEFAULTS.featureFlags} flags with rollouts, ` +
        `${web.pages.length} pages, ${changeCount} changes; ${cold.problems.length} validation problem(s) reported`,
    },
    {
      subject: "ours loadDatafile(json), median",
      value: total.median,
      unit: "ms",
      target: `≤ ${TARGET_MS} ms`,
      status: pass(total.median),
      note: `parse + validate + compile, median of ${RUNS} runs, in ${BLOCKS} blocks alternating with the peer's`,
      extra: ms(total),
    },
    {
      subject: "ours loadDatafile(json), p95",
      value: total.p95,
      unit: "ms",
      target: `≤ ${TARGET_MS} ms`,
      status: pass(total.p95),
      note: `min ${total.min.toFixed(2)} ms, max ${total.max.toFixed(2)} ms`,
      extra: ms(total),
    },
    {
      subject: "ours loadDatafile(json), first call",
      value: coldMs,
      unit: "ms",
      note: "cold JIT, first core call in the process (fresh-isolate case); informational",
    },
    {
      subject: "  split: JSON.parse",
      value: jsonParse.median,
      unit: "ms",
      note: `medians of ${SPLIT_RUNS} runs of the three stages in sequence`,
      extra: ms(jsonParse),
    },
    {
      subject: "  split: parseDatafile (validate)",
      value: validate.median,
      unit: "ms",
      note: "on an already parsed value",
      extra: ms(validate),
    },
    { subject: "  split: compileDatafile", value: compile.median, unit: "ms", extra: ms(compile) },
    {
      subject: "Optimizely createInstance + onReady",
      value: peer.median,
      unit: "ms",
      ratio: timeRatio(total, peer),
      note:
        `@optimizely/optimizely-sdk ${optimizely.version}, static config from the same JSON text, median of ${RUNS} ` +
        `(p95 ${peer.p95.toFixed(2)} ms, first call ${peerColdMs.toFixed(2)} ms); no schema validation, audiences kept uncompiled`,
      extra: { ...ms(peer), first: peerColdMs },
    },
    {
      subject: "sanity: ours = Optimizely on this datafile",
      value: (100 * agree) / pairs,
      unit: "%",
      status: agree === pairs ? "OK" : "WARN",
      note: `same variation on ${agree}/${pairs} (visitor, experiment) pairs; ${decided} in a variation`,
    },
  ];
}
