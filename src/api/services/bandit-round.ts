/**
 * The bandit's I/O (docs/bandits.md "Running a bandit"): the scheduled handler's re-allocation
 * round over D1, KV and the allocation history. The algorithm itself is pure and lives in
 * src/core/bandit.ts (`allocateBandit`).
 *
 * One round, `runBanditRound(env, now)`:
 * 1. Candidates: every experiment with allocation policy `bandit`, not archived, `Running` in the
 *    project's `production` environment.
 * 2. Per experiment (an error is logged and only fails that experiment):
 *    - not usable as a bandit (fewer than 2 variations, no primary metric, a primary metric whose
 *      aggregator is not `unique`) → skipped: logged, and a `skipped` row recorded (once per
 *      distinct reason, not every hour);
 *    - counts from `loadResults` (production): unique visitors per variation and unique converters
 *      of the primary metric (for a `decreasing` metric the non-converters, so "best" is the
 *      lowest rate);
 *    - same counts and same weights as the last recorded row → nothing to do (no row, no publish);
 *    - `allocateBandit(arms, {seed: "<experimentId>:<round>"})`, round = 1 + the experiment's
 *      rows so far (a retried run after a failed publish repeats the same round and seed);
 *    - refused counts (`problems`) → an `invalid_counts` row, nothing published;
 *    - a weight that moves by at least MIN_WEIGHT_CHANGE_BP → a re-allocation; else, when the
 *      verdict (warming_up / thompson / winner) or the winner changed, a row recording it with the
 *      weights kept.
 * 3. Per project with re-allocations: one D1 batch (each experiment's `variations` written with
 *    an optimistic `version` guard, plus an audit entry by actor `bandit`), then ONE publish of
 *    the project; its rows are recorded with the production revision. If publishing fails, the
 *    experiments are restored (as writeAndPublish does) and nothing is recorded: the next round
 *    tries again with the same seed.
 *
 * Visitors who already have a variation keep it (the edge's sticky `ss_dec` cookie): new
 * weights only change where new visitors go.
 */
import { allocateBandit, type ArmStats, type BanditAllocation } from "../../core/bandit";
import type { WebMetric } from "../../core/datafile-types";
import type { Env } from "../../env";
import type { Actor } from "../context";
import { auditIfChanged } from "../store/audit";
import {
  deleteAuditEntry,
  findAllocationHistory,
  insertAllocation,
  listBanditCandidates,
  updateBanditWeights,
  type AllocationReason,
  type NewAllocationRow,
} from "../store/bandit-allocations";
import type { ExperimentRow, VariationSpec } from "../store/rows";
import { parseJson, updateStatement } from "../store/sql";
import { publishProject } from "./publish";
import { loadResults } from "./results";

/** Who the scheduled re-allocations are by (audit log, datafile revisions, history rows). */
export const BANDIT_ACTOR: Actor = { id: "bandit", role: "admin", name: "bandit" };

/** The environment whose counts drive the bandit and in which it must be Running. */
export const BANDIT_ENVIRONMENT = "production";

/**
 * Smallest move (basis points, on any variation) that is published: below it the Monte Carlo
 * noise of P(best) (standard error ≤ 0.005 with 10000 draws) would publish a new revision every
 * round for nothing.
 */
export const MIN_WEIGHT_CHANGE_BP = 100;

/** What a round did with one experiment. */
export interface BanditRoundOutcome {
  experimentId: string;
  experimentKey: string;
  projectId: string;
  /**
   * - reallocated: new weights written and published (`revision`);
   * - recorded: the verdict or winner changed, weights kept (a row, no publish);
   * - unchanged: nothing new (no row, no publish);
   * - skipped: not usable as a bandit, or counts refused (`message`);
   * - failed: an error or a concurrent change; the next round tries again (`message`).
   */
  action: "reallocated" | "recorded" | "unchanged" | "skipped" | "failed";
  reason: AllocationReason | null;
  /** The weights in effect after the round (basis points per variation id). */
  weights: Record<string, number>;
  probabilityBest: Record<string, number>;
  winner: string | null;
  revision: number | null;
  message?: string;
}

/** Basis points per variation id, in variation order. */
export function weightsOf(variations: readonly VariationSpec[]): Record<string, number> {
  return Object.fromEntries(variations.map((v) => [v.id, Number(v.weight)]));
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The largest |Δ| between two weight maps over the ids of `next`. */
function maxMove(current: Record<string, number>, next: Record<string, number>): number {
  let move = 0;
  for (const [id, w] of Object.entries(next))
    move = Math.max(move, Math.abs(w - (current[id] ?? 0)));
  return move;
}

/** Why an experiment cannot be run as a bandit, or null when it can. */
export function banditSkipReason(
  variations: readonly VariationSpec[],
  metrics: readonly WebMetric[],
): string | null {
  if (variations.length < 2)
    return `a bandit needs at least 2 variations, the experiment has ${variations.length}`;
  const primary = metrics[0];
  if (!primary) return "the experiment has no metric (the first metric drives the bandit)";
  if (primary.aggregator !== "unique")
    return `the primary metric's aggregator is "${primary.aggregator}"; the bandit needs a conversion metric (aggregator "unique")`;
  return null;
}

/** One experiment's counts on its primary metric, as bandit arms. */
async function armsOf(
  env: Env,
  experiment: ExperimentRow,
  variations: readonly VariationSpec[],
  primary: WebMetric,
): Promise<{
  arms: ArmStats[];
  visitors: Record<string, number>;
  conversions: Record<string, number>;
}> {
  // Counts only: no CUPED (it would read every shard for nothing).
  const results = await loadResults(env, experiment.id, {
    environment: BANDIT_ENVIRONMENT,
    cuped: "false",
  });
  const visitorsById = new Map(results.variations.map((v) => [v.id, v.visitors]));
  const primaryResults = results.metrics[0];
  const convertersById = new Map(
    (primaryResults?.variations ?? []).map((c) => [c.variationId, c.converters]),
  );
  const visitors: Record<string, number> = {};
  const conversions: Record<string, number> = {};
  const decreasing = primary.winningDirection === "decreasing";
  const arms = variations.map((v) => {
    const n = visitorsById.get(v.id) ?? 0;
    const c = convertersById.get(v.id) ?? 0;
    visitors[v.id] = n;
    conversions[v.id] = c;
    // Lower is better: the best arm has the highest share of non-converters.
    return { id: v.id, visitors: n, conversions: decreasing ? n - c : c };
  });
  return { arms, visitors, conversions };
}

/** A re-allocation waiting for its project's batch and publish. */
interface Pending {
  row: ExperimentRow;
  environmentId: string;
  next: VariationSpec[];
  allocation: BanditAllocation;
  record: NewAllocationRow;
  outcome: BanditRoundOutcome;
}

/**
 * One re-allocation round over every running bandit experiment (see the module comment).
 * `now` (ms since epoch; the scheduled handler passes the trigger's time) dates the rows and the
 * experiments' `updated_at`. Never throws for one experiment's or project's failure: those are
 * logged and reported as `failed`.
 */
export async function runBanditRound(env: Env, now: number): Promise<BanditRoundOutcome[]> {
  const db = env.DB;
  const at = new Date(now).toISOString();
  const candidates = await listBanditCandidates(db, BANDIT_ENVIRONMENT);

  const outcomes: BanditRoundOutcome[] = [];
  const pendingByProject = new Map<string, Pending[]>();
  const immediate: D1PreparedStatement[] = [];

  for (const candidate of candidates) {
    const { bandit_environment_id: environmentId, ...row } = candidate;
    const base = { experimentId: row.id, experimentKey: row.key, projectId: row.project_id };
    const variations = parseJson<VariationSpec[]>(row.variations, []);
    const current = weightsOf(variations);
    try {
      const metrics = parseJson<WebMetric[]>(row.metrics, []);
      const { last, count } = await findAllocationHistory(db, row.id);
      const round = count + 1;
      const rowBase = {
        experiment_id: row.id,
        environment_id: environmentId,
        created_at: at,
        round,
        previous_weights: JSON.stringify(current),
        actor: BANDIT_ACTOR.id,
      };

      const skip = banditSkipReason(variations, metrics);
      if (skip !== null) {
        console.warn(`splitstream: bandit skips experiment ${row.key} (${row.id}): ${skip}`);
        if (!(last?.reason === "skipped" && last.message === skip))
          immediate.push(
            insertAllocation(db, {
              ...rowBase,
              reason: "skipped",
              weights: JSON.stringify(current),
              probability_best: "{}",
              winner: null,
              visitors: "{}",
              conversions: "{}",
              applied: 0,
              revision: null,
              message: skip,
            }),
          );
        outcomes.push({
          ...base,
          action: "skipped",
          reason: "skipped",
          weights: current,
          probabilityBest: {},
          winner: null,
          revision: null,
          message: skip,
        });
        continue;
      }

      const { arms, visitors, conversions } = await armsOf(env, row, variations, metrics[0]!);
      if (
        last &&
        last.reason !== "skipped" &&
        last.reason !== "invalid_counts" &&
        sameJson(parseJson(last.visitors, null), visitors) &&
        sameJson(parseJson(last.conversions, null), conversions) &&
        sameJson(parseJson(last.weights, null), current)
      ) {
        outcomes.push({
          ...base,
          action: "unchanged",
          reason: null,
          weights: current,
          probabilityBest: parseJson(last.probability_best, {}),
          winner: last.winner,
          revision: null,
        });
        continue;
      }

      const allocation = allocateBandit(arms, { seed: `${row.id}:${round}` });
      const counts = {
        visitors: JSON.stringify(visitors),
        conversions: JSON.stringify(conversions),
      };
      if (allocation.problems) {
        const message = allocation.problems.map((p) => `${p.path}: ${p.message}`).join("; ");
        console.error(
          `splitstream: bandit refused the counts of experiment ${row.key} (${row.id}): ${message}`,
        );
        if (!(last?.reason === "invalid_counts" && last.message === message))
          immediate.push(
            insertAllocation(db, {
              ...rowBase,
              reason: "invalid_counts",
              weights: JSON.stringify(current),
              probability_best: "{}",
              winner: null,
              ...counts,
              applied: 0,
              revision: null,
              message,
            }),
          );
        outcomes.push({
          ...base,
          action: "skipped",
          reason: "invalid_counts",
          weights: current,
          probabilityBest: {},
          winner: null,
          revision: null,
          message,
        });
        continue;
      }

      const verdict = {
        reason: allocation.reason,
        probability_best: JSON.stringify(allocation.probabilityBest),
        winner: allocation.winner,
        ...counts,
        message: null,
      };
      if (allocation.winner !== null)
        console.log(
          `splitstream: bandit declares variation ${allocation.winner} of experiment ${row.key} (${row.id}) the winner (P(best) ${allocation.probabilityBest[allocation.winner]})`,
        );
      if (maxMove(current, allocation.weights) >= MIN_WEIGHT_CHANGE_BP) {
        const next = variations.map((v) => ({ ...v, weight: allocation.weights[v.id]! }));
        const outcome: BanditRoundOutcome = {
          ...base,
          action: "reallocated",
          reason: allocation.reason,
          weights: allocation.weights,
          probabilityBest: allocation.probabilityBest,
          winner: allocation.winner,
          revision: null,
        };
        const list = pendingByProject.get(row.project_id) ?? [];
        list.push({
          row,
          environmentId,
          next,
          allocation,
          record: {
            ...rowBase,
            ...verdict,
            weights: JSON.stringify(allocation.weights),
            applied: 1,
            revision: null,
          },
          outcome,
        });
        pendingByProject.set(row.project_id, list);
        outcomes.push(outcome);
        continue;
      }
      const verdictChanged =
        !last || last.reason !== allocation.reason || last.winner !== allocation.winner;
      if (verdictChanged)
        immediate.push(
          insertAllocation(db, {
            ...rowBase,
            ...verdict,
            weights: JSON.stringify(current),
            applied: 0,
            revision: null,
          }),
        );
      outcomes.push({
        ...base,
        action: verdictChanged ? "recorded" : "unchanged",
        reason: allocation.reason,
        weights: current,
        probabilityBest: allocation.probabilityBest,
        winner: allocation.winner,
        revision: null,
      });
    } catch (error) {
      console.error(
        `splitstream: bandit round failed for experiment ${row.key} (${row.id})`,
        error,
      );
      outcomes.push({
        ...base,
        action: "failed",
        reason: null,
        weights: current,
        probabilityBest: {},
        winner: null,
        revision: null,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }

  if (immediate.length > 0) {
    try {
      await db.batch(immediate);
    } catch (error) {
      console.error("splitstream: bandit could not record its skipped / verdict rows", error);
    }
  }
  for (const [projectId, pending] of pendingByProject)
    await reallocateProject(env, projectId, pending, at);

  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(o.action, (counts.get(o.action) ?? 0) + 1);
  if (outcomes.length > 0)
    console.log(
      `splitstream: bandit round over ${outcomes.length} experiment(s): ${[...counts].map(([a, n]) => `${n} ${a}`).join(", ")}`,
    );
  return outcomes;
}

/** Step 3: write, publish once, record; restore the experiments when publishing fails. */
async function reallocateProject(
  env: Env,
  projectId: string,
  pending: Pending[],
  at: string,
): Promise<void> {
  const db = env.DB;
  const fail = (p: Pending, message: string) => {
    p.outcome.action = "failed";
    p.outcome.weights = weightsOf(parseJson<VariationSpec[]>(p.row.variations, []));
    p.outcome.message = message;
  };
  let results: D1Result[];
  try {
    results = await db.batch(
      pending.flatMap((p) => [
        updateBanditWeights(db, p.row, JSON.stringify(p.next), at),
        auditIfChanged(db, BANDIT_ACTOR, "reallocate", "experiment", p.row.id, projectId, {
          round: p.record.round,
          reason: p.allocation.reason,
          winner: p.allocation.winner,
          weights: p.allocation.weights,
          previousWeights: parseJson(p.record.previous_weights, {}),
        }),
      ]),
    );
  } catch (error) {
    console.error(`splitstream: bandit could not write the weights of project ${projectId}`, error);
    for (const p of pending) fail(p, error instanceof Error ? error.message : String(error));
    return;
  }
  const applied: Array<{ p: Pending; auditId: number | undefined }> = [];
  pending.forEach((p, i) => {
    if ((results[2 * i]?.meta.changes ?? 0) > 0)
      applied.push({ p, auditId: results[2 * i + 1]?.meta.last_row_id });
    else
      fail(
        p,
        "the experiment changed meanwhile (or left the bandit policy); the next round retries",
      );
  });
  if (applied.length === 0) return;

  let revision: number | null = null;
  try {
    const published = await publishProject(
      env,
      projectId,
      BANDIT_ACTOR,
      `bandit re-allocation: ${applied.map(({ p }) => p.row.key).join(", ")}`,
    );
    const environmentId = applied[0]!.p.environmentId;
    revision = published.find((r) => r.environmentId === environmentId)?.revision ?? null;
  } catch (error) {
    console.error(
      `splitstream: bandit could not publish project ${projectId}; the weights are restored`,
      error,
    );
    const undo: D1PreparedStatement[] = [];
    for (const { p, auditId } of applied) {
      undo.push(updateStatement(db, "experiments", p.row, p.row.version + 1));
      if (typeof auditId === "number" && auditId > 0) undo.push(deleteAuditEntry(db, auditId));
    }
    try {
      await db.batch(undo);
      // A storage error may have published some environments already: publish the restored state.
      await publishProject(env, projectId, BANDIT_ACTOR, "bandit re-allocation undone").catch(
        (again: unknown) =>
          console.error("splitstream: bandit re-publish after undo failed", again),
      );
    } catch (undoError) {
      console.error("splitstream: bandit could not restore the weights", undoError);
    }
    for (const { p } of applied) fail(p, error instanceof Error ? error.message : String(error));
    return;
  }
  try {
    await db.batch(applied.map(({ p }) => insertAllocation(db, { ...p.record, revision })));
  } catch (error) {
    console.error(`splitstream: bandit could not record the re-allocations of ${projectId}`, error);
  }
  for (const { p } of applied) p.outcome.revision = revision;
}
