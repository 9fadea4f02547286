/**
 * Holdout results (docs/holdouts.md "Results"): the environment's visitors held out vs everyone
 * else, on the holdout's metrics. The edge records each visitor's group as an impression of the
 * holdout's id (its `holdout` or `everyone_else` variation; SDK decision events likewise,
 * src/events/ingest-sdk.ts), so the consumer counts the two groups exactly like two arms of an
 * experiment — each visitor once, at the earliest such impression, and their conversions after
 * it (docs/events.md "Attribution"). This reads those counts and compares the groups with the
 * experiments' statistics (src/core/experiment-analysis.ts): everyone else is the baseline, the
 * lift is the holdout's relative to it, with the analysis mode's interval.
 *
 * Share changes: every count is kept per datafile revision of the visitor's exposure, and every
 * published revision records the share its datafile held out (migrations/0019). By default the
 * results count only the visitors first exposed under the latest run of revisions with one share
 * (`since: "share"`), so a change never mixes visitors decided under different shares — visitors
 * moved into the holdout by a raise would otherwise stay counted as everyone else. `since: "all"`
 * counts everyone, with the sample-ratio check weighted by the share each visitor was decided with.
 */
import {
  analyzeExperiment,
  DEFAULT_ANALYSIS_OPTIONS,
  type AnalysisOptions,
} from "../../core/experiment-analysis";
import type { Env } from "../../env";
import { parseRevisionNumber } from "../../shared/revision-number";
import type { Actor } from "../context";
import { all } from "../store/db";
import { listEventKeys, listMetricDaily, listVariationDaily } from "../store/metric-daily";
import type { DatafileRevisionRow } from "../store/rows";
import { requireHoldout } from "./holdouts";

/** One group's counts on one metric. */
export interface HoldoutGroupMetric {
  visitors: number;
  converters: number;
  /** converters / visitors; null without visitors. */
  rate: number | null;
}

/** Which visitors results count: those of the latest share (default) or everyone. */
export type HoldoutCohort = "share" | "all";

/** A run of consecutive published revisions whose datafiles held out the same share. */
export interface HoldoutSharePeriod {
  /** The share held out, percent (0 = no holdout); null when unknown (revisions from before it was recorded). */
  percent: number | null;
  fromRevision: number;
  /** Its last revision; null while it is the environment's current share. */
  toRevision: number | null;
  /** When its first revision was published. */
  from: string;
}

export interface HoldoutResults {
  environmentId: string;
  holdoutId: string;
  /** The share set now. */
  percent: number;
  /** Which visitors are counted (docs/holdouts.md "Share changes"). */
  since: HoldoutCohort;
  /**
   * `since: "share"`: the share period counted — the latest one with a share above 0; null when
   * no revision recorded one (everyone is counted then). Null for `since: "all"`.
   */
  period: HoldoutSharePeriod | null;
  /** Every share period of the environment's published revisions, oldest first. */
  shares: HoldoutSharePeriod[];
  /** True when the counted visitors were decided under more than one share. */
  mixedShares: boolean;
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

/** A published revision's number and share, as results need them. */
type RevisionShare = Pick<
  DatafileRevisionRow,
  "revision" | "holdout_basis_points" | "published_at"
>;

/**
 * The share periods of an environment's published revisions (ascending by revision; every
 * revision, or only those that start a period): a new period starts wherever the recorded share
 * differs from the revision before (unknown, null, differs from every known share).
 */
export function sharePeriodsOf(
  revisions: readonly RevisionShare[],
): Array<HoldoutSharePeriod & { basisPoints: number | null }> {
  const periods: Array<HoldoutSharePeriod & { basisPoints: number | null }> = [];
  for (const r of revisions) {
    const last = periods.at(-1);
    if (last !== undefined && last.basisPoints === r.holdout_basis_points) continue;
    if (last !== undefined) last.toRevision = r.revision - 1;
    periods.push({
      basisPoints: r.holdout_basis_points,
      percent: r.holdout_basis_points === null ? null : r.holdout_basis_points / 100,
      fromRevision: r.revision,
      toRevision: null,
      from: r.published_at,
    });
  }
  return periods;
}

/** A count row's revision as a number; NaN when not a revision this API published. */
function revisionNumber(revision: string): number {
  return parseRevisionNumber(revision) ?? Number.NaN;
}

/**
 * The holdout's results in its environment (viewer): 404 when the environment has none set.
 * Every metric is compared as unique converters (did the visitor convert after joining a group).
 * `since`: "share" (default) counts the visitors first exposed under the latest share period,
 * "all" everyone (docs/holdouts.md "Share changes").
 */
export async function loadHoldoutResults(
  env: Env,
  actor: Actor,
  environmentId: string,
  options: AnalysisOptions = DEFAULT_ANALYSIS_OPTIONS,
  since: HoldoutCohort = "share",
): Promise<HoldoutResults> {
  const { environment, spec } = await requireHoldout(env, actor, environmentId);
  const db = env.DB;
  const allDays = { from: null, to: null };
  const [visitorRows, metricRows, eventKeys, revisions] = await Promise.all([
    listVariationDaily(db, environment.sdk_key, spec.id, allDays),
    listMetricDaily(db, environment.sdk_key, spec.id, allDays),
    listEventKeys(db, spec.metrics),
    // Only the revisions that start a period (an environment publishes often: hourly bandit
    // rounds, every edit), with the share of each.
    all<RevisionShare>(
      db,
      `SELECT revision, holdout_basis_points, published_at FROM (
         SELECT revision, holdout_basis_points, published_at,
                LAG(holdout_basis_points, 1, -1) OVER (ORDER BY revision) AS before,
                ROW_NUMBER() OVER (ORDER BY revision) AS n
         FROM datafile_revisions WHERE environment_id = ? AND sha256 <> '')
       WHERE n = 1 OR before IS NOT holdout_basis_points
       ORDER BY revision`,
      environment.id,
    ),
  ]);
  const periods = sharePeriodsOf(revisions);
  /** The recorded share of a revision: its period's (undefined before the first, or unknown). */
  const shareOf = (n: number): number | null | undefined =>
    Number.isNaN(n) ? undefined : periods.findLast((p) => p.fromRevision <= n)?.basisPoints;
  const counted =
    since === "share"
      ? (periods.findLast((p) => p.basisPoints !== null && p.basisPoints > 0) ?? null)
      : null;
  const includes = (revision: string): boolean => {
    if (counted === null) return true;
    const n = revisionNumber(revision);
    return n >= counted.fromRevision && (counted.toRevision === null || n <= counted.toRevision);
  };
  /** The share that decided a visitor exposed under `revision` (the setting's when unknown). */
  const basisPointsOf = (revision: string): number =>
    shareOf(revisionNumber(revision)) ?? counted?.basisPoints ?? spec.basisPoints;

  const rest = spec.everyoneElseVariationId;
  const held = spec.holdoutVariationId;
  const visitors = new Map<string, number>([
    [rest, 0],
    [held, 0],
  ]);
  // The expected split: Σ visitors × the share they were decided with (the sample-ratio check's
  // expectation, exact also when the counted visitors span share changes).
  let heldWeight = 0;
  let restWeight = 0;
  const sharesSeen = new Set<number>();
  for (const row of visitorRows) {
    if (!visitors.has(row.variation_id) || !includes(row.revision)) continue;
    const n = Number(row.visitors);
    visitors.set(row.variation_id, visitors.get(row.variation_id)! + n);
    if (n <= 0) continue;
    const bp = basisPointsOf(row.revision);
    sharesSeen.add(bp);
    heldWeight += n * bp;
    restWeight += n * (10000 - bp);
  }
  if (heldWeight + restWeight === 0) {
    const bp = counted?.basisPoints ?? spec.basisPoints;
    heldWeight = bp;
    restWeight = 10000 - bp;
  }
  const converters = new Map<string, number>();
  for (const row of metricRows) {
    if (!includes(row.revision)) continue;
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
  const analysis = analyzeExperiment(
    [
      { id: rest, weight: restWeight, visitors: visitors.get(rest)! },
      { id: held, weight: heldWeight, visitors: visitors.get(held)! },
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
    since,
    period: counted === null ? null : publicPeriod(counted),
    shares: periods.map(publicPeriod),
    mixedShares: sharesSeen.size > 1,
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

function publicPeriod(period: HoldoutSharePeriod): HoldoutSharePeriod {
  return {
    percent: period.percent,
    fromRevision: period.fromRevision,
    toRevision: period.toRevision,
    from: period.from,
  };
}
