/**
 * Experiment schedules (docs/schedules.md): read an experiment's schedules, replace the steps
 * still to come of one environment's schedule, or cancel them. For the API's routes
 * (src/api/routes/schedules.ts), the admin pages and the CLI alike: every function checks the
 * actor's role itself (viewer reads, editor writes).
 *
 * The model: one schedule per experiment and environment, a list of steps `{at, action,
 * percent?}`. A write replaces the pending steps still to come as a whole (PUT semantics,
 * If-Match on the schedule's version); steps a run already took (running, done, failed, skipped)
 * are history and never change, and a pending step whose time has come is the run's. Writing a schedule publishes nothing (the edge sees the steps only when the run
 * applies them, src/api/services/schedule-run.ts), and is audited (`schedule.update` /
 * `schedule.delete` on the experiment, with the steps).
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict, forbidden, notFound, versionConflict } from "../errors";
import { newId } from "../ids";
import {
  MAX_SCHEDULE_AHEAD_MS,
  type ScheduleJson,
  type ScheduleStepInput,
  type ScheduleStepJson,
} from "../schemas/schedules";
import { first, listEnvironments } from "../store/db";
import { projectRequiresReview } from "../store/change-requests";
import {
  findEnvironmentByKey,
  findExperimentStatus,
  requireExperiment,
} from "../store/experiments";
import type { EnvironmentRow, ExperimentRow } from "../store/rows";
import {
  findSchedule,
  listScheduleRows,
  listSteps,
  replaceStepsStatements,
  type ScheduleRow,
  type ScheduleStepRow,
} from "../store/schedules";
import { requireActorRole } from "./auth";
import { checkVersion, type IfMatch } from "./resources";
import { reviewApplies } from "./review";
import { Problems } from "./validation";
import { batchGuarded } from "./write-and-publish";

/** `2026-12-24T08:00Z`, `…:00Z`, `…:00.000Z`: UTC only, so a time means the same everywhere. */
const UTC_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?Z$/;

/** Basis points of a percent in 0.01 steps, or null when it has finer digits. */
export function percentToBasisPoints(percent: number): number | null {
  const bp = Math.round(percent * 100);
  return Math.abs(percent * 100 - bp) < 1e-6 ? bp : null;
}

/**
 * The epoch milliseconds of a UTC time as the API takes it, or null when it is not one (wrong
 * form, or a date that does not exist such as 2026-02-30: `Date` would roll it over).
 */
export function parseUtcTime(text: string): number | null {
  const m = UTC_TIME.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s = "0", ms = "0"] = m;
  const t = Date.UTC(
    Number(y),
    Number(mo) - 1,
    Number(d),
    Number(h),
    Number(mi),
    Number(s),
    Number(ms.padEnd(3, "0")),
  );
  const back = new Date(t);
  if (
    back.getUTCFullYear() !== Number(y) ||
    back.getUTCMonth() !== Number(mo) - 1 ||
    back.getUTCDate() !== Number(d) ||
    back.getUTCHours() !== Number(h) ||
    back.getUTCMinutes() !== Number(mi) ||
    back.getUTCSeconds() !== Number(s)
  )
    return null;
  return t;
}

/** A step row as the API returns it. */
function presentStep(row: ScheduleStepRow): ScheduleStepJson {
  return {
    id: row.id,
    at: row.at,
    action: row.action,
    percent: row.percent_bp === null ? null : row.percent_bp / 100,
    status: row.status,
    appliedAt: row.applied_at,
    revision: row.revision,
    error: row.error,
  };
}

/** History first (in the order it ran), then the pending steps in time order. */
function orderSteps(rows: ScheduleStepRow[]): ScheduleStepRow[] {
  const taken = rows.filter((r) => r.status !== "pending");
  const pending = rows.filter((r) => r.status === "pending");
  const byTime = (a: ScheduleStepRow, b: ScheduleStepRow) =>
    a.at < b.at ? -1 : a.at > b.at ? 1 : a.position - b.position;
  return [...taken.sort(byTime), ...pending.sort(byTime)];
}

function presentSchedule(
  experiment: ExperimentRow,
  environment: Pick<EnvironmentRow, "id" | "key">,
  row: ScheduleRow | null,
  steps: ScheduleStepRow[],
): ScheduleJson {
  return {
    experimentId: experiment.id,
    projectId: experiment.project_id,
    environment: environment.key,
    environmentId: environment.id,
    version: row?.version ?? 0,
    updatedAt: row?.updated_at ?? null,
    steps: orderSteps(steps).map(presentStep),
  };
}

/** The experiment and its environment `environmentKey` (404 for either). */
async function requireScope(
  db: D1Database,
  experimentId: string,
  environmentKey: string,
): Promise<{ experiment: ExperimentRow; environment: Pick<EnvironmentRow, "id" | "key"> }> {
  const experiment = await requireExperiment(db, experimentId);
  const environment = await findEnvironmentByKey(db, experiment.project_id, environmentKey);
  if (!environment) throw notFound("environment", environmentKey);
  return { experiment, environment };
}

/** One environment's schedule of an experiment (viewer); 404 for no experiment or environment. */
export async function getSchedule(
  env: Env,
  actor: Actor,
  experimentId: string,
  environmentKey: string,
): Promise<ScheduleJson> {
  requireActorRole(actor, "viewer");
  const db = env.DB;
  const { experiment, environment } = await requireScope(db, experimentId, environmentKey);
  const [row, steps] = await Promise.all([
    findSchedule(db, experiment.id, environment.id),
    listSteps(db, experiment.id, environment.id),
  ]);
  return presentSchedule(experiment, environment, row, steps);
}

/** Every environment's schedule of an experiment (viewer), production first; 404 for none. */
export async function listSchedules(
  env: Env,
  actor: Actor,
  experimentId: string,
): Promise<ScheduleJson[]> {
  requireActorRole(actor, "viewer");
  const db = env.DB;
  const experiment = await requireExperiment(db, experimentId);
  const [environments, rows, steps] = await Promise.all([
    listEnvironments(db, experiment.project_id),
    listScheduleRows(db, experiment.id),
    listSteps(db, experiment.id),
  ]);
  return environments.map((environment) =>
    presentSchedule(
      experiment,
      environment,
      rows.find((r) => r.environment_id === environment.id) ?? null,
      steps.filter((s) => s.environment_id === environment.id),
    ),
  );
}

/** What a replace needs. */
export interface ScheduleReplaceRequest {
  experimentId: string;
  environment: string;
  /** The new pending steps (the body's `steps`, parsed by ScheduleReplaceSchema). */
  steps: ScheduleStepInput[];
  /** The schedule's version the caller read (If-Match); null: no check. */
  ifMatch: IfMatch;
}

/**
 * Checks the steps (422 naming `$.body.steps[i].…`): UTC times in the future (after `now`), at
 * most MAX_SCHEDULE_AHEAD_MS ahead, each not before the previous; `percent` on traffic steps
 * only (required there), in 0.01 steps. Answers each step's normalised time and basis points.
 */
export function checkSteps(
  steps: readonly ScheduleStepInput[],
  now: number,
): Array<{ at: string; action: ScheduleStepInput["action"]; percentBp: number | null }> {
  const problems = new Problems();
  const out: Array<{ at: string; action: ScheduleStepInput["action"]; percentBp: number | null }> =
    [];
  let previous: number | null = null;
  steps.forEach((step, i) => {
    const t = parseUtcTime(step.at);
    if (t === null)
      problems.add(
        ["steps", i, "at"],
        "not an ISO-8601 UTC time such as 2026-12-24T08:00:00Z (a real date, ending in Z)",
      );
    else if (t <= now)
      problems.add(
        ["steps", i, "at"],
        `must be in the future (now is ${new Date(now).toISOString()})`,
      );
    else if (t > now + MAX_SCHEDULE_AHEAD_MS)
      problems.add(["steps", i, "at"], "must be at most 366 days ahead");
    else if (previous !== null && t < previous)
      problems.add(["steps", i, "at"], "before the previous step: list the steps in time order");
    // Order is checked against the valid times only: one bad time reports itself, not its followers.
    else previous = t;
    let percentBp: number | null = null;
    if (step.action === "traffic") {
      if (step.percent === undefined)
        problems.add(["steps", i, "percent"], "required for a traffic step (0–100)");
      else {
        percentBp = percentToBasisPoints(step.percent);
        if (percentBp === null)
          problems.add(["steps", i, "percent"], "at most two decimals (0.01 % steps)");
      }
    } else if (step.percent !== undefined)
      problems.add(["steps", i, "percent"], "only traffic steps take a percent");
    out.push({
      at: t === null ? step.at : new Date(t).toISOString(),
      action: step.action,
      percentBp,
    });
  });
  problems.throwIfAny();
  return out;
}

/**
 * The schedule runs with role admin, so review (docs/approvals.md) happens when it is written: an
 * editor may not schedule a start or resume in an environment that requires review, nor a traffic
 * step (it changes the experiment in every environment) in a project where any environment does —
 * 403, an admin schedules those. Pauses and archives never wait for review.
 */
async function refuseUnreviewedSteps(
  db: D1Database,
  actor: Actor,
  experiment: ExperimentRow,
  environment: Pick<EnvironmentRow, "id" | "key">,
  steps: ReadonlyArray<{ action: string }>,
): Promise<void> {
  if (!reviewApplies(actor)) return;
  const starts = steps.some((s) => s.action === "start" || s.action === "resume");
  const traffic = steps.some((s) => s.action === "traffic");
  if (!starts && !traffic) return;
  const reviewed = await first<{ require_review: number }>(
    db,
    "SELECT require_review FROM environments WHERE id = ?",
    environment.id,
  );
  if (starts && reviewed?.require_review)
    throw forbidden(
      `${environment.key} requires review (docs/approvals.md): an editor cannot schedule a start or resume of experiment ${experiment.key} there; an admin can, or start it through a change request`,
    );
  if (traffic && (await projectRequiresReview(db, experiment.project_id)))
    throw forbidden(
      `this project has an environment that requires review (docs/approvals.md): an editor cannot schedule a traffic change of experiment ${experiment.key}, which applies in every environment; an admin can, or change it through a change request`,
    );
}

/** Replaces the pending steps (see the module comment); `action` names the audit entry. */
async function writeSchedule(
  env: Env,
  actor: Actor,
  request: ScheduleReplaceRequest,
  auditAction: "schedule.update" | "schedule.delete",
): Promise<ScheduleJson> {
  requireActorRole(actor, "editor");
  const db = env.DB;
  const { experiment, environment } = await requireScope(
    db,
    request.experimentId,
    request.environment,
  );
  const current = await findSchedule(db, experiment.id, environment.id);
  checkVersion(request.ifMatch, current?.version ?? 0);
  const nowMs = Date.now();
  const steps = checkSteps(request.steps, nowMs);
  if (steps.length > 0) {
    const status = (await findExperimentStatus(db, experiment.id, environment.id))?.status;
    if (status === "Archived")
      throw conflict(
        `experiment ${experiment.key} is archived in ${environment.key}: there is nothing left to schedule`,
        { status, environment: environment.key },
      );
  }
  const existing = await listSteps(db, experiment.id, environment.id);
  const now = new Date(nowMs).toISOString();
  // Replaced: the pending steps still to come. A due one is the run's (see the store).
  const pendingBefore = existing.filter((s) => s.status === "pending" && s.at > now);
  // A step sent again unchanged keeps who wrote it: an editor's edit of the schedule neither needs
  // review for an admin's step it resends, nor makes that step the editor's.
  const stepKey = (s: { at: string; action: string; percentBp: number | null }) =>
    `${s.at}|${s.action}|${s.percentBp ?? ""}`;
  const writtenBefore = new Map(
    pendingBefore.map((s) => [
      stepKey({ at: s.at, action: s.action, percentBp: s.percent_bp }),
      s.written_by_role,
    ]),
  );
  const roleOf = (s: (typeof steps)[number]) =>
    writtenBefore.get(stepKey(s)) ?? (actor.role === "editor" ? "editor" : "admin");
  await refuseUnreviewedSteps(
    db,
    actor,
    experiment,
    environment,
    steps.filter((s) => !writtenBefore.has(stepKey(s))),
  );
  // New steps come after the history in the schedule's order.
  const base = existing.reduce((max, s) => Math.max(max, s.position), 0) + 1;
  const expectedVersion = current?.version ?? 0;
  const stepDetails = steps.map((s) => ({
    at: s.at,
    action: s.action,
    ...(s.percentBp === null ? {} : { percent: s.percentBp / 100 }),
  }));
  await batchGuarded(
    db,
    replaceStepsStatements(db, {
      experimentId: experiment.id,
      environmentId: environment.id,
      projectId: experiment.project_id,
      expectedVersion,
      writeId: crypto.randomUUID(),
      now,
      steps: steps.map((s, i) => ({
        id: newId(),
        position: base + i,
        at: s.at,
        action: s.action,
        percent_bp: s.percentBp,
        written_by_role: roleOf(s),
      })),
      audit: {
        actor,
        action: auditAction,
        details: {
          environment: environment.key,
          steps: stepDetails,
          replaced: pendingBefore.length,
        },
      },
    }),
    0,
    async () => {
      const latest = await findSchedule(db, experiment.id, environment.id);
      return versionConflict(latest?.version ?? 0);
    },
  );
  return getSchedule(env, actor, experiment.id, environment.key);
}

/**
 * Replaces the pending steps of an experiment's schedule in one environment (editor): 404 for no
 * experiment or environment, 409 when `ifMatch` does not accept the schedule's version (or
 * another write wins the race), 422 for invalid steps, 409 when the experiment is archived there.
 * Publishes nothing; audited as `schedule.update`. Answers the schedule after the write.
 */
export function replaceSchedule(
  env: Env,
  actor: Actor,
  request: ScheduleReplaceRequest,
): Promise<ScheduleJson> {
  return writeSchedule(env, actor, request, "schedule.update");
}

/**
 * Cancels the pending steps of an experiment's schedule in one environment (editor; the history
 * stays). Audited as `schedule.delete`; the same 404 / 409 as `replaceSchedule`.
 */
export function deleteSchedule(
  env: Env,
  actor: Actor,
  request: Omit<ScheduleReplaceRequest, "steps">,
): Promise<ScheduleJson> {
  return writeSchedule(env, actor, { ...request, steps: [] }, "schedule.delete");
}
