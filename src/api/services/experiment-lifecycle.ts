/**
 * The status machine of experiments (docs/api.md "Experiments"): an experiment has one status
 * per environment, and the actions start, pause, resume and archive move it. An action changes
 * one environment, bumps the experiment's version (its ETag), is audited, and publishes every
 * environment of the project in the same request (services/write-and-publish.ts: undone when
 * publishing fails), and is then told to the project's webhooks (docs/webhooks.md). An editor's
 * `start` or `resume` in a review-required environment waits for review instead
 * (src/api/services/review.ts, docs/approvals.md); `pause` and `archive` never do.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict, notFound, versionConflict } from "../errors";
import { nowIso } from "../ids";
import {
  DEFAULT_ACTION_ENVIRONMENT,
  type ExperimentAction,
  type ExperimentActionResult,
} from "../schemas/experiments";
import { auditIfChanged } from "../store/audit";
import {
  findEnvironmentByKey,
  findFlag,
  findExperimentStatus,
  insertStatusStatement,
  requireExperiment,
  statusChangedStatement,
  statusTransitionStatement,
} from "../store/experiments";
import type { ExperimentRow, ExperimentStatusValue } from "../store/rows";
import { updateStatement } from "../store/sql";
import type { PendingReview } from "../schemas/change-requests";
import { presentExperiment } from "./experiment-presenter";
import { requestReview, reviewApplies, type ReviewedChange } from "./review";
import { requireActorRole } from "./auth";
import { Problems } from "./validation";
import { writeAndPublish } from "./write-and-publish";
import { emitWebhookEvent } from "./webhook-events";
import type { WebhookEventType } from "../schemas/webhooks";

/** What an action does: the statuses it applies to → the status it sets. */
export interface ExperimentTransition {
  from: readonly ExperimentStatusValue[];
  to: ExperimentStatusValue;
}

/** Allowed transitions: action → (from → to). */
export const EXPERIMENT_TRANSITIONS: Readonly<Record<ExperimentAction, ExperimentTransition>> = {
  start: { from: ["Not started"], to: "Running" },
  pause: { from: ["Running"], to: "Paused" },
  resume: { from: ["Paused"], to: "Running" },
  archive: { from: ["Not started", "Running", "Paused"], to: "Archived" },
};

/** The webhook event of each action (docs/webhooks.md "Events"). */
const ACTION_EVENTS = {
  start: "experiment.started",
  pause: "experiment.paused",
  resume: "experiment.resumed",
  archive: "experiment.archived",
} as const satisfies Record<ExperimentAction, WebhookEventType>;

/** What to do instead, by status (the 409 of a refused action says it). */
const HINTS: Partial<Record<ExperimentStatusValue, string>> = {
  "Not started": "start it",
  Running: "pause or archive it",
  Paused: "resume or archive it",
  Archived: "archived experiments stay archived; copy it into a new experiment",
};

/** One action on one experiment. */
export interface ExperimentActionRequest {
  id: string;
  action: ExperimentAction;
  /** Environment key; absent = DEFAULT_ACTION_ENVIRONMENT. */
  environment?: string | undefined;
  /**
   * Called with the experiment's current version before anything is written; throws to refuse
   * (the API's If-Match check, src/api/http/etag.ts).
   */
  checkVersion?: (version: number) => void;
  /** Added to the audit entry's details (e.g. why the guardrail check paused it). */
  auditDetails?: Record<string, unknown>;
  /** An approved change request being applied: no review again; the audit entry names it. */
  reviewed?: ReviewedChange;
}

/** The actions that wait for review in a review-required environment (docs/approvals.md). */
const REVIEWED_ACTIONS: ReadonlySet<ExperimentAction> = new Set(["start", "resume"]);

/**
 * Applies an action (editor; 403 otherwise, as the routes' `requireRole`): 404 for no experiment
 * (or no default environment), 422 for an unknown environment named in the body, 409 when the
 * status does not allow it or changed meanwhile. Answers the experiment after the action (its
 * `version` is the new ETag), the statuses before and after, and what was published — or, for an
 * editor's start or resume in a review-required environment, the pending change request (nothing
 * else written; src/api/services/review.ts).
 */
export async function applyExperimentAction(
  env: Env,
  actor: Actor,
  request: ExperimentActionRequest,
): Promise<ExperimentActionResult | PendingReview> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const { id, action } = request;
  const transition = EXPERIMENT_TRANSITIONS[action];
  const experiment = await requireExperiment(db, id);
  request.checkVersion?.(experiment.version);
  const environmentKey = request.environment ?? DEFAULT_ACTION_ENVIRONMENT;
  const environment = await findEnvironmentByKey(db, experiment.project_id, environmentKey);
  if (!environment) {
    if (request.environment === undefined) throw notFound("environment", environmentKey);
    const problems = new Problems();
    problems.add(
      ["environment"],
      `unknown environment ${JSON.stringify(environmentKey)} (not an environment key of this project)`,
    );
    problems.throwIfAny();
    throw notFound("environment", environmentKey);
  }
  if (experiment.flag_id !== null && (action === "start" || action === "resume")) {
    const flag = await findFlag(db, experiment.flag_id, experiment.project_id);
    // An A/B rule of an archived flag is in no datafile's flag: running it would count nothing.
    if (flag?.archived)
      throw conflict(
        `cannot ${action} experiment ${experiment.key}: its flag ${flag.key} is archived`,
        { flagId: flag.id },
      );
  }
  const statusRow = await findExperimentStatus(db, id, environment.id);
  const previous: ExperimentStatusValue = statusRow?.status ?? "Not started";
  if (!transition.from.includes(previous)) {
    const hint = HINTS[previous];
    throw conflict(
      `cannot ${action} experiment ${experiment.key} in ${environment.key}: it is ${previous}${hint ? ` (${hint})` : ""}`,
      { status: previous, environment: environment.key, allowedFrom: transition.from },
    );
  }
  const { reviewed } = request;
  if (
    !reviewed &&
    REVIEWED_ACTIONS.has(action) &&
    environment.require_review === 1 &&
    reviewApplies(actor)
  )
    return requestReview(env, actor, {
      experiment,
      kind: action as "start" | "resume",
      environments: [environment.key],
      payload: { environment: environment.key },
    });
  const now = nowIso();
  const next: ExperimentRow = { ...experiment, version: experiment.version + 1, updated_at: now };
  const published = await writeAndPublish(env, actor, {
    projectId: experiment.project_id,
    statements: [
      insertStatusStatement(db, {
        experiment_id: id,
        environment_id: environment.id,
        status: "Not started",
        updated_at: now,
      }),
      // The guard: the transition only happens from the status read above — and, when a version
      // was checked (If-Match, an approval's base version), only at that version: a change that
      // lands in between (several round trips) is not started unreviewed.
      statusTransitionStatement(db, id, environment.id, {
        from: previous,
        to: transition.to,
        updatedAt: now,
        ...(request.checkVersion ? { version: experiment.version } : {}),
      }),
      auditIfChanged(db, actor, action, "experiment", id, experiment.project_id, {
        ...request.auditDetails,
        ...(reviewed
          ? { changeRequest: reviewed.changeRequestId, requestedBy: reviewed.requestedBy }
          : {}),
        environment: environment.key,
        from: previous,
        to: transition.to,
      }),
      // The version (ETag) moves with the status; `archived` = archived everywhere.
      statusChangedStatement(db, id, environment.id, transition.to, now),
    ],
    guardIndex: 1,
    auditIndex: 2,
    onGuardFailed: async () => {
      const latest = await findExperimentStatus(db, id, environment.id);
      if (request.checkVersion && latest?.status === previous) {
        const now = await requireExperiment(db, id);
        if (now.version !== experiment.version) return versionConflict(now.version);
      }
      return conflict(
        `experiment ${experiment.key} changed status in ${environment.key} meanwhile (now ${latest?.status ?? "unknown"}); read it again`,
        { status: latest?.status ?? null, environment: environment.key },
      );
    },
    undo: [
      statusTransitionStatement(db, id, environment.id, {
        from: transition.to,
        to: previous,
        updatedAt: statusRow?.updated_at ?? now,
      }),
      updateStatement(db, "experiments", experiment, next.version),
    ],
    reason: `experiment ${experiment.key} ${action} in ${environment.key}${reviewed ? ` (change request ${reviewed.changeRequestId} approved)` : ""}`,
  });
  await emitWebhookEvent(env, {
    projectId: experiment.project_id,
    type: ACTION_EVENTS[action],
    environment: environment.key,
    actor,
    data: {
      experiment: { id, key: experiment.key, name: experiment.name },
      previousStatus: previous,
      status: transition.to,
      ...(request.auditDetails || reviewed
        ? {
            details: {
              ...request.auditDetails,
              ...(reviewed
                ? { changeRequest: reviewed.changeRequestId, requestedBy: reviewed.requestedBy }
                : {}),
            },
          }
        : {}),
      revisions: published
        .filter((p) => p.changed)
        .map((p) => ({ environment: p.environmentKey, revision: p.revision })),
    },
    summary: `experiment ${experiment.key} ${ACTION_EVENTS[action].slice("experiment.".length)} in ${environment.key} by ${actor.name}${request.auditDetails?.["reason"] === "guardrail" ? " (a guardrail was breached)" : ""}`,
  });
  return {
    experiment: await presentExperiment(db, await requireExperiment(db, id)),
    environment: environment.key,
    previousStatus: previous,
    status: transition.to,
    published,
  };
}
