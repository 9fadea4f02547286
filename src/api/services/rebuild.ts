/**
 * The rebuild from the archive (admin; docs/api.md "Rebuild", docs/events.md "Rebuild"): start a
 * job, read its progress and report, apply it, cancel it. The job itself runs in the RebuildJob
 * Durable Object (src/events/rebuild-job.ts); starting, applying and cancelling are audited.
 */
import type { Env } from "../../env";
import { rebuildJobStub, type RebuildAnswer, type RebuildJobView } from "../../events/rebuild-job";
import type { RebuildOptions } from "../../events/rebuild";
import type { Actor } from "../context";
import { ApiError, conflict } from "../errors";
import { recordAudit } from "../store/audit";
import { requireActorRole } from "./auth";

type RebuildEnv = Pick<Env, "DB" | "REBUILD_JOBS">;

function jobOf(answer: RebuildAnswer): RebuildJobView {
  if (!answer.ok) throw conflict(answer.reason);
  return answer.job;
}

/** Starts a rebuild (refused while one runs or a move between layouts does). */
export async function startRebuild(
  env: RebuildEnv,
  actor: Actor,
  options: RebuildOptions,
): Promise<RebuildJobView> {
  requireActorRole(actor, "admin");
  const job = jobOf(await rebuildJobStub(env).start(options));
  await recordAudit(env.DB, actor, "rebuild.started", "rebuild", job.id, null, options);
  return job;
}

/** The current (or last) rebuild; 404 when none was ever started. */
export async function getRebuild(env: RebuildEnv, actor: Actor): Promise<RebuildJobView> {
  requireActorRole(actor, "admin");
  const job = await rebuildJobStub(env).current();
  if (job === null)
    throw new ApiError(404, "not_found", "no rebuild has been started (POST /admin/rebuild)");
  return job;
}

/** Applies the compared rebuild: its rows replace the live ones. */
export async function applyRebuild(env: RebuildEnv, actor: Actor): Promise<RebuildJobView> {
  requireActorRole(actor, "admin");
  const job = jobOf(await rebuildJobStub(env).apply());
  await recordAudit(env.DB, actor, "rebuild.applied", "rebuild", job.id, null, {
    sdkKeys: job.report?.sdkKeys ?? [],
  });
  return job;
}

/** Cancels the rebuild: its rows are dropped, the live ones stay. */
export async function cancelRebuild(env: RebuildEnv, actor: Actor): Promise<RebuildJobView> {
  requireActorRole(actor, "admin");
  const job = jobOf(await rebuildJobStub(env).cancel());
  await recordAudit(env.DB, actor, "rebuild.cancelled", "rebuild", job.id, null);
  return job;
}
