/**
 * The review rule (docs/approvals.md): in an environment with `requireReview`, an editor's
 * change to an experiment that is live there (Running or Paused) and an editor's `start` or
 * `resume` there do not apply; they become a pending change request that another editor or an
 * admin approves (src/api/services/change-requests.ts) or rejects. Admins apply directly, and so
 * do the system actors (guardrails, bandit rounds), which act as admin; `pause` and `archive`
 * never wait: stopping an experiment is always safe.
 *
 * The services that write such changes ask here (src/api/services/experiments.ts `review` for
 * updates, src/api/services/experiment-lifecycle.ts for actions), so every caller — the API's
 * routes, the admin forms, the visual editor's save, the CLI through the API — meets the same
 * rule.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { newId, nowIso } from "../ids";
import type { ChangeRequestJson, PendingReview } from "../schemas/change-requests";
import { auditStatement } from "../store/audit";
import { firstLiveUnderReview, insertChangeRequest } from "../store/change-requests";
import { forbidden } from "../errors";
import { all, first } from "../store/db";
import type { ChangeRequestKind, ChangeRequestRow, ExperimentRow } from "../store/rows";

/**
 * An approved change being applied: the approval skips the review rule, and the applied change's
 * audit entry names the request and its requester.
 */
export interface ReviewedChange {
  changeRequestId: string;
  requestedBy: string;
}

/**
 * An editor's change to something a live experiment uses — its audience, page, a list its
 * audience reads, its group, the flag of an A/B rule — changes what the experiment does as surely
 * as editing the experiment. Where that experiment is live in a review-required environment the
 * change has no request form of its own: 403, an admin makes it (docs/approvals.md "What waits").
 */
export async function refuseUnreviewedUse(
  ctx: { db: D1Database; actor: Actor },
  experimentIds: readonly string[],
  what: string,
): Promise<null> {
  if (!reviewApplies(ctx.actor)) return null;
  const live = await firstLiveUnderReview(ctx.db, experimentIds);
  if (live)
    throw forbidden(
      `${what} is used by experiment ${live.experiment_key}, live in ${live.environment_key}, which requires review (docs/approvals.md): an editor cannot change it there; an admin can`,
    );
  return null;
}

/** Whether the actor's changes wait for review where it is required: only editors' do. */
export function reviewApplies(actor: Actor): boolean {
  return actor.role === "editor";
}

/** Rows → the API's JSON; `experiments` are the current rows (for key and staleness). */
export function changeRequestJson(
  row: ChangeRequestRow,
  experiment: Pick<ExperimentRow, "key" | "version"> | null,
): ChangeRequestJson {
  return {
    id: row.id,
    projectId: row.project_id,
    experimentId: row.experiment_id,
    experimentKey: experiment?.key ?? null,
    kind: row.kind,
    environments: JSON.parse(row.environments) as string[],
    payload: JSON.parse(row.payload) as Record<string, unknown>,
    baseVersion: row.base_version,
    stale: experiment === null || experiment.version !== row.base_version,
    status: row.status,
    requestedBy: row.requested_by,
    requestedByName: row.requested_by_name,
    createdAt: row.created_at,
    decidedBy: row.decided_by,
    decidedByName: row.decided_by_name,
    decidedAt: row.decided_at,
    comment: row.comment,
  };
}

/** Several rows → JSON, reading their experiments once. */
export async function presentChangeRequests(
  db: D1Database,
  rows: ChangeRequestRow[],
): Promise<ChangeRequestJson[]> {
  const ids = [...new Set(rows.map((r) => r.experiment_id))];
  const experiments = new Map<string, { key: string; version: number }>();
  // D1 binds at most 100 parameters per statement.
  for (let i = 0; i < ids.length; i += 90) {
    const chunk = ids.slice(i, i + 90);
    for (const e of await all<{ id: string; key: string; version: number }>(
      db,
      `SELECT id, key, version FROM experiments WHERE id IN (${chunk.map(() => "?").join(", ")})`,
      ...chunk,
    ))
      experiments.set(e.id, e);
  }
  return rows.map((r) => changeRequestJson(r, experiments.get(r.experiment_id) ?? null));
}

/**
 * Records a pending change request for `experiment` (as read by the caller, whose version it is
 * based on) with its audit entry `request`, and answers what the API sends with its 202.
 */
export async function requestReview(
  env: Env,
  actor: Actor,
  input: {
    experiment: ExperimentRow;
    kind: ChangeRequestKind;
    environments: string[];
    payload: Record<string, unknown>;
  },
): Promise<PendingReview> {
  const db = env.DB;
  const { experiment } = input;
  const environments = JSON.stringify(input.environments);
  const payload = JSON.stringify(input.payload);
  // The same request again (a double click, a retried call) is the pending one, not a second.
  const same = await first<ChangeRequestRow>(
    db,
    `SELECT * FROM change_requests WHERE experiment_id = ? AND status = 'pending' AND kind = ?
       AND environments = ? AND payload = ? AND base_version = ? AND requested_by = ?`,
    experiment.id,
    input.kind,
    environments,
    payload,
    experiment.version,
    actor.id,
  );
  if (same) return pendingAnswer(changeRequestJson(same, experiment), experiment.key);
  const row: ChangeRequestRow = {
    id: newId(),
    project_id: experiment.project_id,
    experiment_id: experiment.id,
    kind: input.kind,
    environments,
    payload,
    base_version: experiment.version,
    status: "pending",
    requested_by: actor.id,
    requested_by_name: actor.name,
    created_at: nowIso(),
    decided_by: null,
    decided_by_name: null,
    decided_at: null,
    comment: null,
  };
  await db.batch([
    insertChangeRequest(db, row),
    auditStatement(db, actor, "request", "change_request", row.id, experiment.project_id, {
      experimentId: experiment.id,
      experimentKey: experiment.key,
      kind: input.kind,
      environments: input.environments,
      ...(input.kind === "update" ? { fields: Object.keys(input.payload) } : {}),
    }),
  ]);
  return pendingAnswer(changeRequestJson(row, experiment), experiment.key);
}

/** The 202 body: the request and a sentence saying what waits. */
function pendingAnswer(request: ChangeRequestJson, experimentKey: string): PendingReview {
  const what = request.kind === "update" ? "the change" : `the ${request.kind}`;
  return {
    changeRequest: request,
    message: `experiment ${experimentKey} is in review-required environment ${request.environments.join(", ")}: ${what} waits for review by another editor or an admin (change request ${request.id})`,
  };
}

/** True for the answer of a write that went to review (a narrowing helper for callers). */
export function isPendingReview(value: object): value is PendingReview {
  return "changeRequest" in value && !("experiment" in value);
}
