/**
 * Change requests (docs/approvals.md, docs/api.md "Approvals"): listing them, and deciding them.
 * An editor's change that needs review (src/api/services/review.ts) is recorded as a pending
 * request; another editor or an admin approves it — which applies it through the same service
 * as a direct change (src/api/services/resources.ts `updateResource`,
 * src/api/services/experiment-lifecycle.ts `applyExperimentAction`: published, audited) — or
 * rejects it; the requester may withdraw it. Every decision is a guarded status update from
 * `pending`, so two reviewers at once decide (and apply) once, and an approval is refused (409
 * `stale_change_request`) when the experiment changed since the request: no silent overwrite.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError, conflict, forbidden, notFound, unprocessable } from "../errors";
import { nowIso } from "../ids";
import type {
  ApprovalResult,
  ChangeRequestDecision,
  ChangeRequestJson,
} from "../schemas/change-requests";
import { ExperimentUpdateSchema } from "../schemas/experiments";
import { parseBody } from "../schemas/validation-error";
import { auditIfChanged } from "../store/audit";
import {
  decideStatement,
  findChangeRequest,
  isChangeRequestApplied,
  listChangeRequests,
  reopenStatement,
  type ChangeRequestPosition,
} from "../store/change-requests";
import { requireProject } from "../store/db";
import { requireExperiment } from "../store/experiments";
import type { ChangeRequestRow, ChangeRequestStatus } from "../store/rows";
import { requireActorRole } from "./auth";
import { applyExperimentAction } from "./experiment-lifecycle";
import { experimentResource } from "./experiments";
import { updateResource, type Page, type PageRequest } from "./resources";
import { changeRequestJson, isPendingReview, presentChangeRequests } from "./review";
import { batchGuarded } from "./write-and-publish";

/** 409 `stale_change_request`: the experiment changed since the request was made. */
function staleRequest(row: ChangeRequestRow, current: number): ApiError {
  return new ApiError(
    409,
    "stale_change_request",
    `the experiment changed since change request ${row.id} was made (version ${row.base_version}, now ${current}); it can no longer be approved: reject or withdraw it, and re-submit the change`,
    { baseVersion: row.base_version, currentVersion: current },
  );
}

async function requireChangeRequest(db: D1Database, id: string): Promise<ChangeRequestRow> {
  const row = await findChangeRequest(db, id);
  if (!row) throw notFound("change request", id);
  return row;
}

async function present(db: D1Database, row: ChangeRequestRow): Promise<ChangeRequestJson> {
  const [json] = await presentChangeRequests(db, [row]);
  return json ?? changeRequestJson(row, null);
}

function notPending(row: ChangeRequestRow): ApiError {
  return conflict(`change request ${row.id} is already ${row.status}`, {
    status: row.status,
    decidedBy: row.decided_by,
  });
}

/**
 * The position a page cursor of the change-request list names (`<createdAt> <id>`, as
 * `listProjectChangeRequests` answers in `after`), or null when `cursor` is not one.
 */
export function parseChangeRequestCursor(cursor: string): ChangeRequestPosition | null {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z) (\d{1,32})$/.exec(cursor);
  return match ? { createdAt: match[1]!, id: match[2]! } : null;
}

/**
 * A page of the project's change requests (viewer), newest first, all or those with `status`
 * and/or of one experiment. The page cursor is opaque to callers: `after` of one page is the
 * `cursor` of the next; one that is not → 422 at `$.query.cursor`.
 */
export async function listProjectChangeRequests(
  env: Env,
  actor: Actor,
  projectId: string,
  filter: { status?: ChangeRequestStatus | undefined; experimentId?: string | undefined },
  pageRequest: PageRequest | (() => PageRequest),
): Promise<Page<ChangeRequestJson>> {
  requireActorRole(actor, "viewer");
  const db = env.DB;
  await requireProject(db, projectId);
  const page = typeof pageRequest === "function" ? pageRequest() : pageRequest;
  const after = page.cursor === null ? null : parseChangeRequestCursor(page.cursor);
  if (page.cursor !== null && after === null)
    throw unprocessable("invalid query parameter cursor", [
      { path: "$.query.cursor", message: "not a cursor returned by this API" },
    ]);
  const rows = await listChangeRequests(
    db,
    projectId,
    { status: filter.status ?? null, experimentId: filter.experimentId ?? null },
    { limit: page.limit, after },
  );
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  return {
    items: await presentChangeRequests(db, items),
    after: rows.length > page.limit && last ? `${last.created_at} ${last.id}` : null,
  };
}

/** One change request (viewer); 404 when it does not exist. */
export async function getChangeRequest(
  env: Env,
  actor: Actor,
  id: string,
): Promise<ChangeRequestJson> {
  requireActorRole(actor, "viewer");
  return present(env.DB, await requireChangeRequest(env.DB, id));
}

/**
 * Approves a pending request (editor or admin, never its requester: 403) and applies it as the
 * approver, through the same service as a direct change: 404 when it does not exist, 409 when it
 * is no longer pending (someone decided first), 409 `stale_change_request` when the experiment
 * changed since, and whatever applying refuses (409 status, 422) — then the request is pending
 * again and nothing changed. Audited: `approve` on the request, and the applied change on the
 * experiment with `changeRequest` and `requestedBy`.
 */
export async function approveChangeRequest(
  env: Env,
  actor: Actor,
  id: string,
  body: ChangeRequestDecision,
): Promise<ApprovalResult> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const row = await requireChangeRequest(db, id);
  if (row.status !== "pending") throw notPending(row);
  if (row.requested_by === actor.id)
    throw forbidden(
      `you cannot approve your own change request ${row.id}: another editor or an admin must review it`,
    );
  const experiment = await requireExperiment(db, row.experiment_id);
  if (experiment.version !== row.base_version) throw staleRequest(row, experiment.version);
  const payload = JSON.parse(row.payload) as Record<string, unknown>;
  // Checked before claiming: a request whose body no longer validates stays pending.
  const update = row.kind === "update" ? parseBody(ExperimentUpdateSchema, payload) : null;

  const at = nowIso();
  const comment = body.comment ?? null;
  // The claim: only one approver gets past it; the others see the request decided.
  const claimed = await batchGuarded(
    db,
    [
      decideStatement(db, id, "approved", actor, at, comment),
      auditIfChanged(db, actor, "approve", "change_request", id, row.project_id, {
        experimentId: row.experiment_id,
        experimentKey: experiment.key,
        kind: row.kind,
        environments: JSON.parse(row.environments) as unknown,
        requestedBy: row.requested_by,
        ...(comment === null ? {} : { comment }),
      }),
    ],
    0,
    async () => notPending((await findChangeRequest(db, id)) ?? row),
  );
  const reviewed = { changeRequestId: id, requestedBy: row.requested_by };
  let applied: Omit<ApprovalResult, "changeRequest">;
  try {
    if (update !== null) {
      const written = await updateResource(
        env,
        actor,
        experimentResource,
        row.experiment_id,
        update,
        row.base_version,
        { reviewed },
      );
      if (isPendingReview(written)) throw new Error("an approved change went to review again");
      applied = { experiment: written.json, published: written.published };
    } else {
      const environment = typeof payload.environment === "string" ? payload.environment : undefined;
      const acted = await applyExperimentAction(env, actor, {
        id: row.experiment_id,
        action: row.kind === "start" ? "start" : "resume",
        environment,
        checkVersion: (version) => {
          if (version !== row.base_version) throw staleRequest(row, version);
        },
        reviewed,
      });
      if (isPendingReview(acted)) throw new Error("an approved action went to review again");
      applied = { experiment: acted.experiment, published: acted.published };
    }
  } catch (error) {
    // A failure after the change was written (reading its answer back) leaves it approved:
    // re-opening would offer to apply it twice. The change's audit entry names the request and
    // is written and undone together with it; an undo that found the experiment changed again
    // meanwhile deletes the entry but keeps the change, which the experiment's version moving
    // (not by a refusal) still tells.
    const [audited, latest] = await Promise.all([
      isChangeRequestApplied(db, row.experiment_id, id).catch(() => false),
      requireExperiment(db, row.experiment_id).then(
        (x) => x.version,
        () => null,
      ),
    ]);
    const applied =
      audited || (!(error instanceof ApiError) && latest !== null && latest !== row.base_version);
    if (applied) throw error;
    // Nothing was applied: the request is pending again, and the approval leaves no entry.
    const auditRowId = claimed[1]?.meta.last_row_id;
    await db.batch([
      reopenStatement(db, id, actor, at),
      ...(typeof auditRowId === "number" && auditRowId > 0
        ? [db.prepare("DELETE FROM audit_log WHERE id = ?").bind(auditRowId)]
        : []),
    ]);
    if (error instanceof ApiError && error.code === "version_conflict") {
      const current = await requireExperiment(db, row.experiment_id);
      throw staleRequest(row, current.version);
    }
    throw error;
  }
  // Applied and approved: a failure to read the request back is not a reason to re-open it.
  const decided = await findChangeRequest(db, id).catch(() => null);
  return {
    changeRequest: await present(
      db,
      decided ?? {
        ...row,
        status: "approved",
        decided_by: actor.id,
        decided_by_name: actor.name,
        decided_at: at,
        comment,
      },
    ),
    ...applied,
  };
}

/**
 * Decides a pending request without applying it: `rejected` (editor or admin other than the
 * requester, who withdraws instead) or `withdrawn` (its requester only). 404 when it does not
 * exist, 403 for the wrong actor, 409 when it is no longer pending. Audited (`reject` /
 * `withdraw`, with the comment); the experiment and the datafiles stay as they are.
 */
async function closeChangeRequest(
  env: Env,
  actor: Actor,
  id: string,
  body: ChangeRequestDecision,
  outcome: "rejected" | "withdrawn",
): Promise<ChangeRequestJson> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const row = await requireChangeRequest(db, id);
  if (row.status !== "pending") throw notPending(row);
  const own = row.requested_by === actor.id;
  if (outcome === "rejected" && own)
    throw forbidden(
      `you cannot reject your own change request ${row.id}; withdraw it instead (POST /change-requests/${row.id}/withdraw)`,
    );
  if (outcome === "withdrawn" && !own)
    throw forbidden(
      `only the requester can withdraw change request ${row.id}; reviewers reject it instead`,
    );
  const comment = body.comment ?? null;
  await batchGuarded(
    db,
    [
      decideStatement(db, id, outcome, actor, nowIso(), comment),
      auditIfChanged(
        db,
        actor,
        outcome === "rejected" ? "reject" : "withdraw",
        "change_request",
        id,
        row.project_id,
        {
          experimentId: row.experiment_id,
          kind: row.kind,
          requestedBy: row.requested_by,
          ...(comment === null ? {} : { comment }),
        },
      ),
    ],
    0,
    async () => notPending((await findChangeRequest(db, id)) ?? row),
  );
  return present(db, await requireChangeRequest(db, id));
}

/** Rejects a pending request (see `closeChangeRequest`). */
export function rejectChangeRequest(
  env: Env,
  actor: Actor,
  id: string,
  body: ChangeRequestDecision,
): Promise<ChangeRequestJson> {
  return closeChangeRequest(env, actor, id, body, "rejected");
}

/** Withdraws one's own pending request (see `closeChangeRequest`). */
export function withdrawChangeRequest(
  env: Env,
  actor: Actor,
  id: string,
  body: ChangeRequestDecision,
): Promise<ChangeRequestJson> {
  return closeChangeRequest(env, actor, id, body, "withdrawn");
}
