/**
 * The event state's layout and one visitor's state (docs/api.md "Event state", docs/scaling.md):
 * reading the layout (and each shard's size), stepping a move to another layout, and inspecting
 * what is kept for one visitor (support questions: "why is this visitor not counted?").
 */
import type { Env } from "../../env";
import { loadEventLayout, parseShardCount, resetLayoutCache } from "../../events/event-layout";
import { MoveError, moveEventState, type MoveReport } from "../../events/layout-move";
import { readVisitorState, type VisitorStateView } from "../../events/visitor-state";
import { shardStub, type ShardStats } from "../../events/visitor-shard";
import { rebuildJobStub } from "../../events/rebuild-job";
import type { Actor } from "../context";
import { ApiError, conflict, unprocessable } from "../errors";
import { recordAudit } from "../store/audit";
import { requireEnvironment } from "../store/db";
import { requireActorRole } from "./auth";

type StateEnv = Pick<Env, "DB" | "VISITOR_SHARDS" | "EVENT_SHARDS" | "REBUILD_JOBS">;

export interface EventLayoutView {
  shards: number;
  movingTo: number | null;
  configured: number | null;
  shardStats: Array<ShardStats & { shard: number }> | null;
}

/** The recorded layout (admin); with `stats`, every shard's size and row counts. */
export async function getEventLayout(
  env: StateEnv,
  actor: Actor,
  stats: boolean,
): Promise<EventLayoutView> {
  requireActorRole(actor, "admin");
  resetLayoutCache();
  const layout = await loadEventLayout(env);
  const configured = parseShardCount(env.EVENT_SHARDS);
  const shardStats = stats
    ? await Promise.all(
        Array.from({ length: layout.shards }, async (_, index) => ({
          ...(await shardStub(env, index).stats()),
          shard: index,
        })),
      )
    : null;
  return {
    shards: layout.shards,
    movingTo: layout.movingTo,
    configured: configured.ok ? configured.shards : null,
    shardStats,
  };
}

/** One step of a move to `to` shards (admin; audited when it starts and when it finishes). */
export async function stepEventLayoutMove(
  env: StateEnv,
  actor: Actor,
  body: { to: number; maxRows?: number },
): Promise<MoveReport> {
  requireActorRole(actor, "admin");
  // A rebuild writes shadow rows on the shards of its layout: no move under it.
  const rebuild = await rebuildJobStub(env).current();
  if (rebuild !== null && ["running", "applying", "cancelling"].includes(rebuild.status))
    throw conflict(
      `rebuild ${rebuild.id} is ${rebuild.status}: move the event state after it has finished (or cancel it)`,
    );
  try {
    const report = await moveEventState(env, body.to, {
      ...(body.maxRows === undefined ? {} : { maxRows: body.maxRows }),
    });
    if (report.done && report.from !== report.to)
      await recordAudit(env.DB, actor, "event_layout.moved", "event_layout", "1", null, {
        from: report.from,
        to: report.to,
      });
    return report;
  } catch (error) {
    if (error instanceof MoveError)
      throw error.status === 409
        ? conflict(error.message)
        : unprocessable(error.message, [{ path: "$.body.to", message: error.message }]);
    if (error instanceof ApiError) throw error;
    throw error;
  }
}

/** What is kept for one visitor of an environment (editor: visitor ids are personal data). */
export async function getVisitorState(
  env: StateEnv,
  actor: Actor,
  environmentId: string,
  visitorId: string,
): Promise<VisitorStateView & { sdkKey: string; visitorId: string }> {
  requireActorRole(actor, "editor");
  const environment = await requireEnvironment(env.DB, environmentId);
  const state = await readVisitorState(env, environment.sdk_key, visitorId);
  return { sdkKey: environment.sdk_key, visitorId, ...state };
}
