/**
 * The rebuild job (docs/events.md "Rebuild"): one Durable Object (`REBUILD_JOBS`, name "current")
 * holds the one job of a deployment and runs its steps (src/events/rebuild.ts) from its alarm,
 * one after another, saving the state after each — progress is visible at any time, a failed step
 * is tried again from the saved cursor with backoff, and after MAX_FAILURES in a row the job
 * ends as failed with the error.
 *
 * Why an alarm chain and not Cloudflare Workflows or queue jobs (docs/scaling.md "Rebuilds"): the
 * job is a single sequence with one writer, its state is a cursor and counters that must never go
 * backwards, and the user must be able to read it, apply it and cancel it at any time. A Durable
 * Object gives exactly that — strongly consistent state next to the code that advances it, alarms
 * retried by the platform, one instance so two rebuilds cannot interleave — with no second product
 * to deploy: a Workflow would need its own binding and class and keep its state as step results
 * that the API could not change (cancel, apply); a chain of queue messages could run two steps of
 * one job at once after a redelivery, and a job's progress would live nowhere in particular.
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env";
import {
  ACTIVE_STATUSES,
  RebuildStop,
  dropAfterFailure,
  newJobState,
  reportOf,
  runRebuildStep,
  type Difference,
  type RebuildJobState,
  type RebuildOptions,
  type RebuildReport,
} from "./rebuild";
import { loadEventLayout, readLayout } from "./event-layout";

/** Steps in a row that may fail before the job ends as failed. */
const MAX_FAILURES = 6;
/** One alarm runs steps for at most this long, then hands over to the next alarm. */
const ALARM_BUDGET_MS = 10_000;

/** A job as the API shows it. */
export interface RebuildJobView {
  id: string;
  status: RebuildJobState["status"];
  phase: RebuildJobState["phase"];
  sdkKey: string | null;
  apply: boolean;
  chunkObjects: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  steps: number;
  progress: {
    objectsRead: number;
    eventsRead: number;
    excluded: number;
    sdkKeysCompared: number;
    sdkKeys: number;
  };
  error: string | null;
  /** Failed steps in a row (the job tries again with backoff). */
  failures: number;
  report: RebuildReport | null;
}

/** An answer of the job object: the job, or why the request was refused (the API answers 409). */
export type RebuildAnswer = { ok: true; job: RebuildJobView } | { ok: false; reason: string };

/** The one job's stub. */
export function rebuildJobStub(env: Pick<Env, "REBUILD_JOBS">): DurableObjectStub<RebuildJob> {
  return env.REBUILD_JOBS.getByName("current");
}

export class RebuildJob extends DurableObject<Env> {
  private async load(): Promise<RebuildJobState | null> {
    return (await this.ctx.storage.get<RebuildJobState>("job")) ?? null;
  }

  private async differences(): Promise<Difference[]> {
    return (await this.ctx.storage.get<Difference[]>("differences")) ?? [];
  }

  private async view(job: RebuildJobState): Promise<RebuildJobView> {
    const cancel = (await this.ctx.storage.get<boolean>("cancel")) === true;
    const comparing = job.phase === "comparing" || job.phase === "applying";
    return {
      id: job.id,
      status: cancel && ACTIVE_STATUSES.includes(job.status) ? "cancelling" : job.status,
      phase: job.phase,
      sdkKey: job.sdkKey,
      apply: job.apply,
      chunkObjects: job.chunkObjects,
      createdAt: job.createdAt,
      updatedAt: job.updatedAt,
      finishedAt: job.finishedAt,
      steps: job.steps,
      progress: {
        objectsRead: job.objectsRead,
        eventsRead: job.eventsRead,
        excluded: job.excluded,
        sdkKeysCompared: comparing ? job.keyIndex : job.since === null ? 0 : job.sdkKeys.length,
        sdkKeys: job.sdkKeys.length,
      },
      error: job.error,
      failures: job.failures,
      report: reportOf(job, await this.differences()),
    };
  }

  /** The job (null when none was ever started). */
  async current(): Promise<RebuildJobView | null> {
    const job = await this.load();
    return job === null ? null : this.view(job);
  }

  /** Starts a job; refused while one runs. */
  async start(options: RebuildOptions): Promise<RebuildAnswer> {
    const previous = await this.load();
    if (previous !== null && ACTIVE_STATUSES.includes(previous.status))
      return {
        ok: false,
        reason: `rebuild ${previous.id} is ${previous.status}: wait for it, or cancel it first`,
      };
    // Fresh from D1, not the isolate's cached layout: a move may have started a moment ago.
    const layout = (await readLayout(this.env.DB)) ?? (await loadEventLayout(this.env));
    if (layout.movingTo !== null)
      return {
        ok: false,
        reason: `the event state is moving to ${layout.movingTo} shard(s): rebuild after the move has finished`,
      };
    const id = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
    // A compared job that was never applied still has its shadow rows: the new job's first step
    // drops every job's leftovers.
    const job = newJobState(id, options, layout.shards, Date.now());
    await this.ctx.storage.put({ job, differences: [] });
    await this.ctx.storage.delete("cancel");
    await this.ctx.storage.setAlarm(Date.now());
    return { ok: true, job: await this.view(job) };
  }

  /** Applies a compared job, or resumes an apply that failed part-way. */
  async apply(): Promise<RebuildAnswer> {
    const job = await this.load();
    if (job === null) return { ok: false, reason: "no rebuild to apply: start one first" };
    const resume = job.status === "failed" && job.phase === "applying";
    if (job.status !== "compared" && !resume)
      return {
        ok: false,
        reason: `rebuild ${job.id} is ${job.status}: only a compared rebuild (or a failed apply) can be applied`,
      };
    job.apply = true;
    job.status = "applying";
    job.phase = "applying";
    job.finishedAt = null;
    job.failures = 0;
    // A resumed apply goes on where it stopped; the sdkKeys already swapped are skipped anyway.
    if (!resume) job.keyIndex = 0;
    await this.ctx.storage.put("job", job);
    await this.ctx.storage.setAlarm(Date.now());
    return { ok: true, job: await this.view(job) };
  }

  /** Cancels a running or compared job: its shadow rows are dropped, the live rows stay. */
  async cancel(): Promise<RebuildAnswer> {
    const job = await this.load();
    if (job === null) return { ok: false, reason: "no rebuild to cancel" };
    if (job.status === "applying" || (job.status === "failed" && job.phase === "applying"))
      return {
        ok: false,
        reason: `rebuild ${job.id} is applying: an apply is not cancelled half-way (some sdkKeys would be rebuilt, others not); a failed apply is resumed with apply`,
      };
    if (job.status === "compared") {
      job.status = "cancelling";
      job.phase = "dropping";
      await this.ctx.storage.put("job", job);
    } else if (ACTIVE_STATUSES.includes(job.status)) {
      // A step may be running: the flag is read before the next one.
      await this.ctx.storage.put("cancel", true);
    } else
      return {
        ok: false,
        reason: `rebuild ${job.id} has ended (${job.status}): nothing to cancel`,
      };
    await this.ctx.storage.setAlarm(Date.now());
    return { ok: true, job: await this.view((await this.load())!) };
  }

  /** Runs steps until the job waits or ends, or the alarm's budget is spent. */
  override async alarm(): Promise<void> {
    const started = Date.now();
    for (;;) {
      const job = await this.load();
      if (job === null || !ACTIVE_STATUSES.includes(job.status)) return;
      if (job.status === "running" && (await this.ctx.storage.get<boolean>("cancel")) === true) {
        job.status = "cancelling";
        job.phase = "dropping";
        await this.ctx.storage.put("job", job);
        await this.ctx.storage.delete("cancel");
      }
      const before = structuredClone(job);
      try {
        const found = await runRebuildStep(this.env, job, Date.now());
        job.failures = 0;
        job.error = null;
        // A cancel that came in during the step (it answered "cancelling"): honoured now, also
        // when the step just finished the comparison.
        if (
          (job.status === "running" || job.status === "compared") &&
          (await this.ctx.storage.get<boolean>("cancel")) === true
        ) {
          job.status = "cancelling";
          job.phase = "dropping";
          await this.ctx.storage.delete("cancel");
        }
        const kept = found.length > 0 ? [...(await this.differences()), ...found] : null;
        await this.ctx.storage.put(kept === null ? { job } : { job, differences: kept });
        if (job.status === "cancelling" && before.status !== "cancelling") continue;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        before.failures++;
        before.error = message;
        if (error instanceof RebuildStop || before.failures >= MAX_FAILURES) {
          before.status = "failed";
          before.finishedAt = new Date().toISOString();
          console.error(`splitstream: rebuild ${before.id} failed: ${message}`);
          // A failed apply keeps its rows: `apply` resumes it (the swapped sdkKeys are skipped).
          if (before.phase === "applying")
            before.error = `${message} — the apply stopped at sdkKey ${before.keyIndex + 1} of ${before.sdkKeys.length}; POST /admin/rebuild/apply resumes it`;
          else await dropAfterFailure(this.env, before);
          await this.ctx.storage.put("job", before);
          return;
        }
        console.warn(
          `splitstream: rebuild ${before.id}: step failed (${before.failures}/${MAX_FAILURES}), trying again: ${message}`,
        );
        await this.ctx.storage.put("job", before);
        await this.ctx.storage.setAlarm(Date.now() + 1000 * 2 ** before.failures);
        return;
      }
      if (!ACTIVE_STATUSES.includes(job.status)) return;
      if (Date.now() - started > ALARM_BUDGET_MS) {
        await this.ctx.storage.setAlarm(Date.now());
        return;
      }
    }
  }
}
