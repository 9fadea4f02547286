/**
 * The bandit's history and serving a winner (docs/api.md "Bandits", docs/bandits.md "Running a
 * bandit"), for the API's bandit routes (src/api/routes/bandit-allocations.ts) and the admin:
 *
 * - the allocation history the scheduled round recorded (src/api/services/bandit-round.ts),
 *   oldest first — the weights over time, probability of being best, the winner, the counts each
 *   re-allocation used;
 * - serving one variation to 100 % of new visitors — the bandit's declared winner, or a named
 *   variation — by setting its weight to 10000 and the others' to 0 and switching the allocation
 *   policy to `manual` (so the next round leaves it alone); published in the same request, with a
 *   `winner_served` row in the history.
 */
import { requireActorRole } from "./auth";
import { reviewApplies } from "./review";
import { liveReviewEnvironments } from "../store/change-requests";
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict, forbidden } from "../errors";
import { nowIso } from "../ids";
import type {
  AllocationHistory,
  AllocationJson,
  ServeWinnerResult,
} from "../schemas/bandit-allocations";
import { auditIfChanged } from "../store/audit";
import {
  countAllocations,
  deleteWinnerServed,
  findAllocationEnvironment,
  findLatestVerdict,
  insertWinnerServed,
  listAllocations,
  updateWinnerServedRevision,
  type AllocationReason,
  type BanditAllocationRow,
} from "../store/bandit-allocations";
import type { ExperimentRow, VariationSpec } from "../store/rows";
import { parseJson, requireRow, updateStatement, versionGuardError } from "../store/sql";
import { weightsOf } from "./bandit-round";
import { presentExperiment } from "./experiment-presenter";
import { Problems } from "./validation";
import { writeAndPublish } from "./write-and-publish";

/** `A`, when it is assignable to `B` (else a compile error where it is used). */
type Assignable<A extends B, B> = A;

/**
 * Compile-time check that the stored reasons (src/api/store/bandit-allocations.ts) and the API's
 * (src/api/schemas/bandit-allocations.ts) are the same set: either list changing alone fails tsc.
 */
export type AllocationReasonsAgree =
  | Assignable<AllocationReason, AllocationJson["reason"]>
  | Assignable<AllocationJson["reason"], AllocationReason>;

/** One history row as the API returns it. */
export function allocationJson(row: BanditAllocationRow): AllocationJson {
  return {
    id: row.id,
    createdAt: row.created_at,
    round: row.round,
    reason: row.reason,
    weights: parseJson(row.weights, {}),
    previousWeights: parseJson(row.previous_weights, {}),
    probabilityBest: parseJson(row.probability_best, {}),
    winner: row.winner,
    visitors: parseJson(row.visitors, {}),
    conversions: parseJson(row.conversions, {}),
    applied: row.applied === 1,
    revision: row.revision,
    actor: row.actor,
    message: row.message,
  };
}

/** The experiment's allocation history (404 for no experiment); empty if it never ran as a bandit. */
export async function loadAllocationHistory(
  env: Pick<Env, "DB">,
  experimentId: string,
): Promise<AllocationHistory> {
  const experiment = await requireRow<ExperimentRow>(
    env.DB,
    "experiments",
    "experiment",
    experimentId,
  );
  const rows = await listAllocations(env.DB, experimentId);
  return {
    experimentId: experiment.id,
    allocationPolicy: experiment.allocation_policy,
    items: rows.map(allocationJson),
  };
}

/**
 * The variation to serve: `variationId` (an id or key of the experiment, else 422), or the winner
 * of the bandit's latest verdict (409 when it declared none, or it is no longer a variation).
 */
async function chooseWinner(
  db: D1Database,
  experiment: ExperimentRow,
  variations: readonly VariationSpec[],
  variationId: string | undefined,
): Promise<VariationSpec> {
  if (variationId !== undefined) {
    const named = variations.find((v) => v.id === variationId || v.key === variationId);
    if (named) return named;
    const problems = new Problems();
    problems.add(
      ["variationId"],
      `${JSON.stringify(variationId)} is not a variation id or key of this experiment`,
    );
    problems.throwIfAny(); // throws: one problem was added
  }
  const verdict = await findLatestVerdict(db, experiment.id);
  if (!verdict?.winner)
    throw conflict(
      `the bandit has not declared a winner for experiment ${experiment.key}${verdict ? ` (latest verdict: ${verdict.reason})` : ""}; name the variation to serve with variationId`,
      { verdict: verdict?.reason ?? null },
    );
  const declared = variations.find((v) => v.id === verdict.winner);
  if (!declared)
    throw conflict(
      `the declared winner ${verdict.winner} is no longer a variation of experiment ${experiment.key}`,
      { winner: verdict.winner },
    );
  return declared;
}

/**
 * Serves one variation of `experiment` (the row the caller read and checked If-Match against) to
 * 100 % of new visitors (see the module comment): one guarded write with its audit entry and
 * `winner_served` row, then the project published; 409 `version_conflict` when the experiment
 * changed meanwhile. Returns the experiment after the write, the winner and what was published.
 */
export async function serveWinner(
  env: Env,
  actor: Actor,
  experiment: ExperimentRow,
  variationId: string | undefined,
): Promise<ServeWinnerResult> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const id = experiment.id;
  // Serving a winner re-weights a live experiment at once; it has no request form of its own
  // (docs/approvals.md): where review is required, an editor sends the weights as a PATCH
  // (which waits for review) or asks an admin.
  if (reviewApplies(actor)) {
    const reviewed = await liveReviewEnvironments(db, id);
    if (reviewed.length > 0)
      throw forbidden(
        `experiment ${experiment.key} is live in review-required environment ${reviewed.join(", ")}: serving a winner needs an admin there (or change the weights with a PATCH, which waits for review)`,
      );
  }
  const variations = parseJson<VariationSpec[]>(experiment.variations, []);
  const chosen = await chooseWinner(db, experiment, variations, variationId);

  const now = nowIso();
  const nextVariations = variations.map((v) => ({
    ...v,
    weight: v.id === chosen.id ? 10000 : 0,
  }));
  const next: ExperimentRow = {
    ...experiment,
    variations: JSON.stringify(nextVariations),
    allocation_policy: "manual",
    version: experiment.version + 1,
    updated_at: now,
  };
  const [environment, count] = await Promise.all([
    findAllocationEnvironment(db, experiment.project_id),
    countAllocations(db, id),
  ]);
  const previousWeights = weightsOf(variations);
  const statements = [
    updateStatement(db, "experiments", next, experiment.version),
    auditIfChanged(db, actor, "serve_winner", "experiment", id, experiment.project_id, {
      variationId: chosen.id,
      variationKey: chosen.key,
      previousWeights,
      previousPolicy: experiment.allocation_policy,
    }),
  ];
  if (environment)
    // Only when the guarded update above landed (same version and timestamp).
    statements.push(
      insertWinnerServed(db, {
        experimentId: id,
        environmentId: environment.id,
        createdAt: now,
        round: count + 1,
        weights: weightsOf(nextVariations),
        previousWeights,
        winner: chosen.id,
        actor: actor.id,
        version: next.version,
      }),
    );
  const published = await writeAndPublish(env, actor, {
    projectId: experiment.project_id,
    statements,
    guardIndex: 0,
    auditIndex: 1,
    onGuardFailed: () => versionGuardError(db, "experiments", "experiment", id),
    undo: [
      updateStatement(db, "experiments", experiment, next.version),
      deleteWinnerServed(db, id, now),
    ],
    reason: `experiment ${experiment.key}: variation ${chosen.key} served to 100%`,
  });
  if (environment) {
    const revision = published.find((p) => p.environmentId === environment.id)?.revision;
    if (revision !== undefined) await updateWinnerServedRevision(db, id, now, revision);
  }
  const latest = await requireRow<ExperimentRow>(db, "experiments", "experiment", id);
  return {
    experiment: await presentExperiment(db, latest),
    winner: { id: chosen.id, key: chosen.key },
    published,
  };
}
