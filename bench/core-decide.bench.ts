/**
 * Decisions per second: Splitstream's core against Optimizely's `getVariation` and
 * GrowthBook's `run()`, on the same visitors, experiments and conditions, in one process.
 *
 * World: 20 running experiments (2–4 variations, coverage 50–100 %), each targeted by one
 * audience of 2–3 conditions (exact on a string attribute, gt on a number, substring on the
 * URL), 4,096 distinct visitors cycled. One "decision" = one (visitor, experiment) pair.
 */
import { decideAll, decideExperiment, loadDatafile } from "../src/core/index";
import {
  generateDecideScenario,
  evaluate,
  countLeaves,
  toGrowthBookCondition,
  type Attributes,
} from "./lib/datafile-gen";
import { measureThroughput, pairedRatio, type ThroughputSubject } from "./lib/harness";
import { loadGrowthBook, loadOptimizely } from "./lib/peers";
import type { Row, Status } from "./lib/types";

export const name = "core-decide";
export const title = "Core decisions per second vs Optimizely getVariation and GrowthBook run()";
export const order = 20;

const SEED = 0x5eed_2024;
const EXPERIMENTS = 20;
const VISITORS = 4096;
/** Visitors per measured chunk (× 20 experiments = decisions per chunk). */
const CHUNK_VISITORS = 16;
const TIMING = { warmupMs: 400, sampleMs: 150, rounds: 11 };
/** Visitors the untimed equivalence checks run over (× every experiment). */
const SANITY_VISITORS = 1024;

const TARGET_OPTIMIZELY = 20;
const TARGET_GROWTHBOOK = 5;

const SUBJECT = {
  oursExperiment: "ours decideExperiment (per experiment)",
  oursAll: "ours decideAll (all 20 per visitor)",
  optimizely: "Optimizely getVariation",
  gbPerVisitor: "GrowthBook run(), new instance per visitor",
  gbReused: "GrowthBook run(), shared + setAttributes",
  gbClient: "GrowthBookClient.runInlineExperiment",
} as const;

export async function run(): Promise<Row[]> {
  const scenario = generateDecideScenario(SEED, EXPERIMENTS, VISITORS);
  const { experiments, visitors } = scenario;
  const conditionCount = experiments.reduce((n, e) => n + countLeaves(e.condition), 0);

  // ---- ours
  const loaded = loadDatafile(scenario.json);
  if (!loaded.ok) {
    throw new Error(
      `loadDatafile rejected the bench datafile:\n${loaded.problems.map((p) => JSON.stringify(p)).join("\n")}`,
    );
  }
  const compiled = loaded.compiled;
  const experimentKeys = experiments.map((e) => e.key);

  // ---- Optimizely: static config, no logger (v6 logs nothing unless given one), no event processor.
  const optimizely = await loadOptimizely();
  const client = optimizely.mod.createInstance({
    projectConfigManager: optimizely.mod.createStaticProjectConfigManager({
      datafile: scenario.json,
    }),
  });
  await client.onReady();

  // ---- GrowthBook: the same experiments as inline experiments.
  const growthbook = await loadGrowthBook();
  const { GrowthBook, GrowthBookClient, evalCondition } = growthbook.mod;
  type GbExperiment = Parameters<InstanceType<typeof GrowthBook>["run"]>[0];
  const gbExperiments: GbExperiment[] = experiments.map((e) => ({
    key: e.key,
    variations: e.variationKeys as [string, string, ...string[]],
    weights: e.variationKeys.map(() => 1 / e.variationKeys.length),
    coverage: e.coverage,
    condition: toGrowthBookCondition(e.condition) as GbExperiment["condition"],
    hashAttribute: "id",
    // What GrowthBook creates new experiments with today.
    hashVersion: 2,
  }));
  // GrowthBook reads the hashing id from the attributes; built once, outside the timed code.
  const gbAttributes: Attributes[] = visitors.map((v) => ({ id: v.visitorId, ...v.attributes }));
  const gbShared = new GrowthBook({ attributes: gbAttributes[0]! });
  const gbClient = new GrowthBookClient({}).initSync({ payload: { features: {} } });

  // ---- equivalence sanity checks (untimed, every visitor × every experiment)
  const rows: Row[] = [];
  let total = 0;
  let optimizelyAgree = 0;
  let decideAllAgree = 0;
  let audienceAgree = 0;
  let oursAudience = 0;
  let oursIn = 0;
  let optimizelyIn = 0;
  let gbIn = 0;
  for (let vi = 0; vi < SANITY_VISITORS; vi++) {
    const visitor = visitors[vi]!;
    const all = decideAll(compiled, visitor);
    const gb = new GrowthBook({ attributes: gbAttributes[vi]! });
    for (let ei = 0; ei < experiments.length; ei++) {
      const e = experiments[ei]!;
      total++;
      const ours = decideExperiment(compiled, e.key, visitor);
      const theirs = client.getVariation(e.key, visitor.visitorId, visitor.attributes);
      if (ours.variationKey === theirs) optimizelyAgree++;
      if (all[ei]?.variationKey === ours.variationKey && all[ei]?.experimentKey === e.key)
        decideAllAgree++;
      const oursMatch = ours.reason !== "audience_mismatch";
      const reference = evaluate(e.condition, visitor.attributes);
      const gbMatch = evalCondition(gbAttributes[vi]!, gbExperiments[ei]!.condition!);
      if (oursMatch === reference && gbMatch === reference) audienceAgree++;
      if (oursMatch) oursAudience++;
      if (ours.variationKey !== null) oursIn++;
      if (theirs !== null) optimizelyIn++;
      if (gb.run(gbExperiments[ei]!).inExperiment) gbIn++;
    }
    gb.destroy();
  }
  const pct = (n: number): number => (100 * n) / total;
  const exact = (n: number): Status => (n === total ? "OK" : "WARN");
  rows.push(
    {
      subject: "sanity: ours = Optimizely getVariation",
      value: pct(optimizelyAgree),
      unit: "%",
      status: exact(optimizelyAgree),
      note: `same variation on ${optimizelyAgree}/${total} decisions (identical bucketing expected)`,
    },
    {
      subject: "sanity: decideAll = decideExperiment",
      value: pct(decideAllAgree),
      unit: "%",
      status: exact(decideAllAgree),
      note: `${decideAllAgree}/${total}`,
    },
    {
      subject: "sanity: audience match ours = GrowthBook",
      value: pct(audienceAgree),
      unit: "%",
      status: exact(audienceAgree),
      note: `ours and GrowthBook evalCondition agree with the reference on ${audienceAgree}/${total}; ${pct(oursAudience).toFixed(1)} % of pairs are in the audience`,
    },
    {
      subject: "sanity: share in a variation",
      value: pct(oursIn),
      unit: "%",
      // Different hash functions: GrowthBook's share can only be statistically equal.
      status: oursIn === optimizelyIn && Math.abs(pct(oursIn) - pct(gbIn)) < 1.5 ? "OK" : "WARN",
      note: `ours ${pct(oursIn).toFixed(2)} %, Optimizely ${pct(optimizelyIn).toFixed(2)} %, GrowthBook ${pct(gbIn).toFixed(2)} % (own hash, so close, not equal)`,
    },
  );

  // ---- timed subjects: each chunk decides CHUNK_VISITORS visitors × every experiment.
  let sink = 0;
  const cycler = (): (() => number) => {
    let next = 0;
    return () => {
      const start = next;
      next = (next + CHUNK_VISITORS) % VISITORS;
      return start;
    };
  };
  const chunkDecisions = CHUNK_VISITORS * EXPERIMENTS;

  const subjects: ThroughputSubject[] = [];
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.oursExperiment,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          const visitor = visitors[i]!;
          for (let e = 0; e < EXPERIMENTS; e++) {
            if (decideExperiment(compiled, experimentKeys[e]!, visitor).variationKey !== null)
              sink++;
          }
        }
        return chunkDecisions;
      },
    });
  }
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.oursAll,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          const decisions = decideAll(compiled, visitors[i]!);
          for (let e = 0; e < decisions.length; e++)
            if (decisions[e]!.variationKey !== null) sink++;
        }
        return chunkDecisions;
      },
    });
  }
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.optimizely,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          const visitor = visitors[i]!;
          for (let e = 0; e < EXPERIMENTS; e++) {
            if (
              client.getVariation(experimentKeys[e]!, visitor.visitorId, visitor.attributes) !==
              null
            )
              sink++;
          }
        }
        return chunkDecisions;
      },
    });
  }
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.gbPerVisitor,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          // GrowthBook's server-side guide: one instance per request, destroyed at its end.
          const gb = new GrowthBook({ attributes: gbAttributes[i]! });
          for (let e = 0; e < EXPERIMENTS; e++) if (gb.run(gbExperiments[e]!).inExperiment) sink++;
          gb.destroy();
        }
        return chunkDecisions;
      },
    });
  }
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.gbReused,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          // Synchronous without sticky buckets / remote eval; the returned promise is not awaited.
          void gbShared.setAttributes(gbAttributes[i]!);
          for (let e = 0; e < EXPERIMENTS; e++)
            if (gbShared.run(gbExperiments[e]!).inExperiment) sink++;
        }
        return chunkDecisions;
      },
    });
  }
  {
    const at = cycler();
    subjects.push({
      name: SUBJECT.gbClient,
      chunk() {
        const start = at();
        for (let i = start; i < start + CHUNK_VISITORS; i++) {
          const userContext = { attributes: gbAttributes[i]! };
          for (let e = 0; e < EXPERIMENTS; e++) {
            if (gbClient.runInlineExperiment(gbExperiments[e]!, userContext).inExperiment) sink++;
          }
        }
        return chunkDecisions;
      },
    });
  }

  const results = measureThroughput(subjects, TIMING);
  gbShared.destroy();
  gbClient.destroy();
  await client.close();

  const ours = results.get(SUBJECT.oursExperiment)!.opsPerSec;
  const oursAll = results.get(SUBJECT.oursAll)!.opsPerSec;
  const extra = (subject: string): Record<string, number> => {
    const r = results.get(subject)!;
    return { min: r.min, max: r.max, rounds: r.samples.length };
  };
  /**
   * Two rows per peer: the ratio against decideExperiment (one call per decision, like the
   * peer's API) and against decideAll (the core's own way to decide every experiment for a
   * visitor — the same work, since the peers have no batch call). Each is checked on its own.
   */
  const peer = (subject: string, target: number, note: string): Row[] => {
    const result = results.get(subject)!;
    const value = result.opsPerSec;
    const row = (basis: string, oursSubject: string, withNote: boolean): Row => {
      // Median of per-round ratios (see pairedRatio), not the ratio of the medians.
      const ratio = pairedRatio(results.get(oursSubject)!, result);
      return {
        subject: `${subject} [vs ${basis}]`,
        value,
        unit: "ops/s",
        ratio,
        target: `≥ ${target}×`,
        status: ratio >= target ? "PASS" : "MISS",
        ...(withNote ? { note } : {}),
        extra: extra(subject),
      };
    };
    return [
      row("decideExperiment", SUBJECT.oursExperiment, false),
      row("decideAll", SUBJECT.oursAll, true),
    ];
  };

  const timed: Row[] = [
    {
      subject: SUBJECT.oursExperiment,
      value: ours,
      unit: "ops/s",
      note: "getVariation equivalent: lookup by key, prepare visitor, audiences, bucket",
      extra: extra(SUBJECT.oursExperiment),
    },
    {
      subject: SUBJECT.oursAll,
      value: oursAll,
      unit: "ops/s",
      note: "what the edge does per request: visitor hashed once, every experiment decided",
      extra: extra(SUBJECT.oursAll),
    },
    ...peer(
      SUBJECT.optimizely,
      TARGET_OPTIMIZELY,
      `@optimizely/optimizely-sdk ${optimizely.version}, static config, no logger, no event processor`,
    ),
    ...peer(
      SUBJECT.gbPerVisitor,
      TARGET_GROWTHBOOK,
      "construct + 20 run() + destroy per visitor, counted in its cost (GrowthBook's per-request server pattern)",
    ),
    ...peer(
      SUBJECT.gbReused,
      TARGET_GROWTHBOOK,
      "no per-visitor construction: one GrowthBook, setAttributes per visitor",
    ),
    ...peer(
      SUBJECT.gbClient,
      TARGET_GROWTHBOOK,
      "GrowthBook's multi-user server client: one client, userContext per call",
    ),
  ];

  // The checksum keeps the sink observable so no engine can drop the work.
  const info: Row = {
    subject: "setup",
    value: 0,
    unit: "info",
    note:
      `${EXPERIMENTS} experiments, ${conditionCount} conditions, ${VISITORS} visitors cycled; ` +
      `GrowthBook ${growthbook.version}, ${growthbook.build}; ops/s = median of ${TIMING.rounds} interleaved ` +
      `${TIMING.sampleMs} ms rounds after ${TIMING.warmupMs} ms warm-up, ratio = median of the per-round ratios; checksum ${sink}`,
  };
  return [...timed, ...rows, info];
}
