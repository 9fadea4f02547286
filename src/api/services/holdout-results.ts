/**
 * Holdout results (docs/holdouts.md "Results"): the environment's visitors held out vs everyone
 * else, on the holdout's metrics. The edge records each visitor's group as an impression of the
 * holdout's id (its `holdout` or `everyone_else` variation; SDK decision events likewise,
 * src/events/ingest-sdk.ts), so the consumer counts the two groups exactly like two arms of an
 * experiment — each visitor once, at the earliest such impression, and their conversions after
 * it (docs/events.md "Attribution"). This reads those counts and compares the groups with the
 * experiments' statistics (src/core/experiment-analysis.ts): everyone else is the baseline, the
 * lift is the holdout's relative to it, with the analysis mode's interval.
 */
import {
  analyzeExperiment,
  DEFAULT_ANALYSIS_OPTIONS,
  type AnalysisOptions,
} from "../../core/experiment-analysis";
import type { Env } from "../../env";
import type { Actor } from "../context";
import { listEventKeys, listMetricDaily, listVariationDaily } from "../store/metric-daily";
import { requireHoldout } from "./holdouts";

/** One group's counts on one metric. */
export interface HoldoutGroupMetric {
  visitors: number;
  converters: number;
  /** converters / visitors; null without visitors. */
  rate: number | null;
}

export interface HoldoutResults {
  environmentId: string;
  holdoutId: string;
  percent: number;
  analysis: { mode: string; alpha: number };
  /**
   * Sample-ratio mismatch of the groups against the share (the experiments' check): flagged when
   * the groups were not recorded alike (docs/holdouts.md "Results").
   */
  srm: { checked: boolean; flagged: boolean; chiSquare: number | null; pValue: number | null };
  groups: Array<{ key: "everyone_else" | "holdout"; variationId: string; visitors: number }>;
  metrics: Array<{
    eventId: string;
    eventKey: string | null;
    everyoneElse: HoldoutGroupMetric;
    holdout: HoldoutGroupMetric;
    /** The holdout's conversion rate relative to everyone else's, with its interval. */
    lift: { estimate: number; lower: number | null; upper: number | null } | null;
    pValue: number | null;
    significant: boolean;
  }>;
}

/**
 * The holdout's results in its environment (viewer): 404 when the environment has none set.
 * Every metric is compared as unique converters (did the visitor convert after joining a group).
 */
export async function loadHoldoutResults(
  env: Env,
  actor: Actor,
  environmentId: string,
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
): Promise<HoldoutResults> {
  const { environment, spec } = await requireHoldout(env, actor, environmentId);
  const db = env.DB;
  const all = { from: null, to: null };
  const [visitorRows, metricRows, eventKeys] = await Promise.all([
    listVariationDaily(db, environment.sdk_key, spec.id, all),
    listMetricDaily(db, environment.sdk_key, spec.id, all),
    listEventKeys(db, spec.metrics),
  ]);
  const rest = spec.everyoneElseVariationId;
  const held = spec.holdoutVariationId;
  const visitors = new Map<string, number>([
    [rest, 0],
    [held, 0],
  ]);
  for (const row of visitorRows)
    if (visitors.has(row.variation_id))
      visitors.set(row.variation_id, visitors.get(row.variation_id)! + Number(row.visitors));
  const converters = new Map<string, number>();
  for (const row of metricRows) {
    const key = `${row.event_id}\u0000${row.variation_id}`;
    converters.set(key, (converters.get(key) ?? 0) + Number(row.converters));
  }
  const convertersOf = (eventId: string, variationId: string) =>
    converters.get(`${eventId}\u0000${variationId}`) ?? 0;
  const groupOf = (eventId: string, variationId: string): HoldoutGroupMetric => {
    const n = visitors.get(variationId)!;
    const c = convertersOf(eventId, variationId);
    return { visitors: n, converters: c, rate: n > 0 ? c / n : null };
  };
  // The groups' sizes are fixed by the share: that is the sample-ratio check's expectation.
  const analysis = analyzeExperiment(
    [
      { id: rest, weight: 10000 - spec.basisPoints, visitors: visitors.get(rest)! },
      { id: held, weight: spec.basisPoints, visitors: visitors.get(held)! },
    ],
    rest,
    spec.metrics.map((eventId) => ({
      id: eventId,
      higherIsBetter: true,
      nonNegative: true,
      stats: Object.fromEntries(
        [rest, held].map((id) => {
          const c = convertersOf(eventId, id);
          return [id, { n: 0, sum: c, sumSq: c }];
        }),
      ),
    })),
    { ...options, cuped: false },
  );
  return {
    environmentId: environment.id,
    holdoutId: spec.id,
    percent: spec.basisPoints / 100,
    analysis: { mode: options.mode, alpha: options.alpha },
    srm: {
      checked: analysis.srm.checked,
      flagged: analysis.srm.flagged,
      chiSquare: analysis.srm.chiSquare,
      pValue: analysis.srm.pValue,
    },
    groups: [
      { key: "everyone_else", variationId: rest, visitors: visitors.get(rest)! },
      { key: "holdout", variationId: held, visitors: visitors.get(held)! },
    ],
    metrics: spec.metrics.map((eventId, i) => {
      const r = analysis.metrics[i]?.variations.find((v) => v.variationId === held);
      return {
        eventId,
        eventKey: eventKeys.get(eventId) ?? null,
        everyoneElse: groupOf(eventId, rest),
        holdout: groupOf(eventId, held),
        lift:
          r?.lift == null
            ? null
            : { estimate: r.lift.estimate, lower: r.lift.ci[0], upper: r.lift.ci[1] },
        pValue: r?.pValue ?? null,
        significant: r?.significant ?? false,
      };
    }),
  };
}
