/**
 * The scheduled run of experiment schedules (docs/schedules.md "How steps run"), called by the
 * Worker's scheduled handler (src/index.ts) on every cron trigger with the trigger's time.
 *
 * One run, `runSchedules(env, now)`:
 * 1. steps a run claimed more than STALE_CLAIM_MS ago and never finished (its isolate was
 *    stopped) are recorded as failed: the step may have been applied, so it is not applied again;
 * 2. every pending step with `at ≤ now` (at most MAX_STEPS_PER_RUN, oldest first; the rest wait
 *    for the next run) is claimed with a guarded update — only one run can claim a step, and not
 *    while an earlier step of its schedule is pending or running — then applied as the actor
 *    `schedule`:
 *    - start / pause / resume / archive through `applyExperimentAction`, exactly as the API's
 *      action (status guard, audit, datafile published in the same call);
 *    - traffic through `updateResource(…, experimentResource, …, {traffic})`, exactly as the
 *      API's PATCH: the experiment's traffic share in basis points; the variations keep their
 *      relative weights (src/api/services/datafile-build.ts `experimentTrafficAllocation`) and a
 *      new datafile revision is published;
 * 3. the outcome is recorded on the step with its audit entry (`schedule.step`): done with the
 *    revision published in the schedule's environment; skipped when the step made no sense for
 *    the experiment's status then (a 409 of the action, e.g. start of a running experiment, or
 *    a traffic share it already has); failed with the error otherwise.
 * A failing step is logged and recorded; it never stops the others. The run reports what it did.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError } from "../errors";
import { projectRequiresReview } from "../store/change-requests";
import { first } from "../store/db";
import { findExperimentStatus, requireExperiment } from "../store/experiments";
import {
  claimStep,
  finishStep,
  listDueSteps,
  listStaleSteps,
  type DueStepRow,
  type StepOutcome,
} from "../store/schedules";
import { applyExperimentAction } from "./experiment-lifecycle";
import { experimentResource } from "./experiments";
import type { PublishResult } from "./publish";
import { updateResource } from "./resources";

/** Who the schedules' changes are by (audit log, datafile revisions). */
export const SCHEDULE_ACTOR: Actor = { id: "schedule", role: "admin", name: "schedule" };

/** Most steps one run applies (each publishes every environment of its project). */
export const MAX_STEPS_PER_RUN = 100;

/** A claim older than this whose step is still running belongs to a run that was stopped. */
export const STALE_CLAIM_MS = 10 * 60 * 1000;

/** One step in a run's report. */
export interface ScheduleRunStep {
  stepId: string;
  experimentId: string;
  environment: string;
  action: DueStepRow["action"];
  at: string;
  revision: number | null;
  error: string | null;
}

/** What one run did. */
export interface ScheduleRunReport {
  /** Due steps found. */
  due: number;
  done: ScheduleRunStep[];
  skipped: ScheduleRunStep[];
  failed: ScheduleRunStep[];
  /**
   * Due steps another run holds (or whose earlier step it holds), or that could not be claimed
   * (D1 refused): still pending, left to that run or a later one.
   */
  deferred: number;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The revision published in the step's environment. */
function revisionIn(published: readonly PublishResult[], environmentId: string): number | null {
  return published.find((p) => p.environmentId === environmentId)?.revision ?? null;
}

/**
 * Why an editor's step may not run now (docs/approvals.md "Schedules"): its start or resume is in
 * an environment that requires review, or its traffic change in a project where one does — review
 * may have been turned on after the step was written. Null when it may.
 */
async function reviewRefusal(env: Env, step: DueStepRow): Promise<string | null> {
  if (step.written_by_role !== "editor") return null;
  if (step.action === "start" || step.action === "resume") {
    const row = await first<{ require_review: number }>(
      env.DB,
      "SELECT require_review FROM environments WHERE id = ?",
      step.environment_id,
    );
    return row?.require_review
      ? `an editor's ${step.action}, and ${step.environment_key} now requires review (docs/approvals.md)`
      : null;
  }
  if (step.action === "traffic" && (await projectRequiresReview(env.DB, step.project_id)))
    return "an editor's traffic change, and the project now has an environment that requires review (docs/approvals.md)";
  return null;
}

/** Applies one claimed step; a refusal that means "makes no sense now" is a skip. */
async function applyStep(env: Env, step: DueStepRow): Promise<Omit<StepOutcome, "appliedAt">> {
  const refusal = await reviewRefusal(env, step);
  if (refusal) return { status: "skipped", revision: null, error: refusal };
  if (step.action === "traffic") {
    const traffic = step.percent_bp ?? 0;
    const status =
      (await findExperimentStatus(env.DB, step.experiment_id, step.environment_id))?.status ??
      "Not started";
    if (status === "Archived")
      return {
        status: "skipped",
        revision: null,
        error: `experiment ${step.experiment_key} is archived in ${step.environment_key}`,
      };
    const experiment = await requireExperiment(env.DB, step.experiment_id);
    if (experiment.traffic === traffic)
      return {
        status: "skipped",
        revision: null,
        error: `traffic is already ${traffic / 100} %`,
      };
    const written = await updateResource(
      env,
      SCHEDULE_ACTOR,
      experimentResource,
      step.experiment_id,
      { traffic },
      null,
    );
    // The schedule acts with role admin: review (docs/approvals.md) was at the schedule's write.
    if (!("published" in written)) throw new Error("a scheduled step was sent to review");
    return {
      status: "done",
      revision: revisionIn(written.published, step.environment_id),
      error: null,
    };
  }
  try {
    const result = await applyExperimentAction(env, SCHEDULE_ACTOR, {
      id: step.experiment_id,
      action: step.action,
      environment: step.environment_key,
      auditDetails: { reason: "schedule", stepId: step.id, at: step.at },
    });
    if (!("published" in result)) throw new Error("a scheduled step was sent to review");
    return {
      status: "done",
      revision: revisionIn(result.published, step.environment_id),
      error: null,
    };
  } catch (error) {
    // The status does not allow the action (or changed meanwhile): nothing to do, say why.
    if (error instanceof ApiError && error.status === 409 && error.code === "conflict")
      return { status: "skipped", revision: null, error: error.message };
    throw error;
  }
}

function reportStep(step: DueStepRow, outcome: Omit<StepOutcome, "appliedAt">): ScheduleRunStep {
  return {
    stepId: step.id,
    experimentId: step.experiment_id,
    environment: step.environment_key,
    action: step.action,
    at: step.at,
    revision: outcome.revision,
    error: outcome.error,
  };
}

/** Applies every due step once (see the module comment). `now`: the trigger's time (ms). */
export async function runSchedules(env: Env, now: number): Promise<ScheduleRunReport> {
  const db = env.DB;
  const report: ScheduleRunReport = { due: 0, done: [], skipped: [], failed: [], deferred: 0 };
  for (const step of await listStaleSteps(
    db,
    new Date(Date.now() - STALE_CLAIM_MS).toISOString(),
  )) {
    const outcome = {
      status: "failed" as const,
      revision: null,
      error:
        "interrupted: the run that took this step stopped before recording it; it is not applied again (see the audit log whether it happened)",
    };
    try {
      await finishStep(
        db,
        step,
        { ...outcome, appliedAt: new Date().toISOString() },
        SCHEDULE_ACTOR,
      );
      report.failed.push(reportStep(step, outcome));
    } catch (error) {
      console.error(`splitstream: could not record schedule step ${step.id}`, error);
    }
  }
  const due = await listDueSteps(db, new Date(now).toISOString(), MAX_STEPS_PER_RUN);
  report.due = due.length;
  for (const step of due) {
    let claimed: boolean;
    try {
      claimed = await claimStep(db, step, new Date().toISOString());
    } catch (error) {
      // Not claimed, so still pending: the next run takes it (nothing to record as failed).
      console.error(`splitstream: could not claim schedule step ${step.id}`, error);
      claimed = false;
    }
    if (!claimed) {
      report.deferred++;
      continue;
    }
    let outcome: Omit<StepOutcome, "appliedAt">;
    try {
      outcome = await applyStep(env, step);
    } catch (error) {
      console.error(
        `splitstream: schedule step ${step.id} (${step.action} of experiment ${step.experiment_id} in ${step.environment_key}) failed`,
        error,
      );
      outcome = { status: "failed", revision: null, error: message(error) };
    }
    try {
      await finishStep(
        db,
        step,
        { ...outcome, appliedAt: new Date().toISOString() },
        SCHEDULE_ACTOR,
      );
    } catch (error) {
      // Left running: the next runs report it as interrupted once its claim is stale.
      console.error(`splitstream: could not record schedule step ${step.id}`, error);
      outcome = { status: "failed", revision: outcome.revision, error: message(error) };
    }
    report[outcome.status].push(reportStep(step, outcome));
  }
  // A line in the Worker's logs (wrangler tail) when there was something to do; quiet otherwise.
  if (report.due > 0 || report.failed.length > 0)
    console.log(
      `splitstream: schedules: ${report.done.length} done, ${report.skipped.length} skipped, ${report.failed.length} failed, ${report.deferred} deferred of ${report.due} due`,
    );
  return report;
}
