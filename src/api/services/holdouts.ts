/**
 * An environment's holdout (docs/holdouts.md): the share of visitors kept out of every experiment
 * and the metrics its results compare. Reading needs any role; setting needs admin (it changes
 * who every experiment of the environment may reach). Setting it publishes every environment of
 * the project in the same request (only this one's datafile changes) and is audited.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict, notFound, unprocessable } from "../errors";
import { newId } from "../ids";
import type { HoldoutJson, HoldoutUpdate } from "../schemas/holdouts";
import { auditIfChanged } from "../store/audit";
import { all, requireEnvironment } from "../store/db";
import type { EnvironmentRow } from "../store/rows";
import { versionedUpdate, versionGuardError } from "../store/sql";
import { requireActorRole } from "./auth";
import { checkVersion, type IfMatch } from "./resources";
import { writeAndPublish } from "./write-and-publish";
import { countProjectRecords } from "./publish";
import { holdoutKey, holdoutSpecOf, type HoldoutSpec } from "./holdout-spec";

export { holdoutKey, holdoutSpecOf, type HoldoutSpec };

export function holdoutJson(row: EnvironmentRow): HoldoutJson {
  const spec = holdoutSpecOf(row);
  return {
    environmentId: row.id,
    percent: spec === null ? 0 : spec.basisPoints / 100,
    metrics: spec?.metrics ?? [],
    holdoutId: spec?.id ?? null,
    holdoutKey: spec === null ? null : holdoutKey(row.key),
    version: row.version,
  };
}

/** The environment with its holdout (viewer); 404 when it does not exist. */
export async function getHoldout(
  env: Env,
  actor: Actor,
  environmentId: string,
): Promise<EnvironmentRow> {
  requireActorRole(actor, "viewer");
  return requireEnvironment(env.DB, environmentId);
}

/**
 * Sets the holdout share and metrics (admin): 404 for an unknown environment, 409 when `ifMatch`
 * does not accept its version or another write wins, 422 when a metric is no event of the
 * project. The ids are drawn the first time and kept (a visitor's group never moves while the
 * share stays). Publishes the project; audited with the old and new share.
 */
export async function setHoldout(
  env: Env,
  actor: Actor,
  environmentId: string,
  body: HoldoutUpdate,
  ifMatch: IfMatch,
): Promise<EnvironmentRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireEnvironment(db, environmentId);
  checkVersion(ifMatch, current.version);
  // Setting a holdout publishes the project from its records: a project without any serves
  // pushed datafiles, which that would replace with empty ones.
  if (current.revision > 0 && (await countProjectRecords(db, current.project_id)) === 0)
    throw conflict(
      `environment ${current.key} serves a pushed datafile (its project has no records): setting a holdout would publish the records and replace it; push a datafile with its holdouts instead, or import it (docs/holdouts.md)`,
    );
  const known = new Set(
    (
      await all<{ id: string }>(
        db,
        "SELECT id FROM events WHERE project_id = ? AND archived = 0",
        current.project_id,
      )
    ).map((e) => e.id),
  );
  const unknown = body.metrics.flatMap((id, i) =>
    known.has(id)
      ? []
      : [{ path: `$.body.metrics[${i}]`, message: `no event ${id} in this project (or archived)` }],
  );
  if (unknown.length > 0)
    throw unprocessable("holdout metrics must be events of the project", unknown);
  const previous = holdoutSpecOf(current);
  const spec: HoldoutSpec = {
    basisPoints: Math.round(body.percent * 100),
    metrics: body.metrics,
    id: previous?.id ?? newId(),
    holdoutVariationId: previous?.holdoutVariationId ?? newId(),
    everyoneElseVariationId: previous?.everyoneElseVariationId ?? newId(),
    everHeld: (previous?.everHeld ?? false) || body.percent > 0,
  };
  const next: EnvironmentRow = {
    ...current,
    holdout: JSON.stringify(spec),
    version: current.version + 1,
    updated_at: new Date().toISOString(),
  };
  await writeAndPublish(env, actor, {
    projectId: current.project_id,
    statements: [
      versionedUpdate(db, "environments", environmentId, current.version, {
        holdout: next.holdout,
        version: next.version,
        updated_at: next.updated_at,
      }),
      auditIfChanged(db, actor, "update", "environment", environmentId, current.project_id, {
        fields: ["holdout"],
        holdout: {
          from: previous === null ? 0 : previous.basisPoints / 100,
          to: body.percent,
          metrics: body.metrics,
        },
      }),
    ],
    auditIndex: 1,
    guardIndex: 0,
    onGuardFailed: () => versionGuardError(db, "environments", "environment", environmentId),
    undo: [
      db
        .prepare(
          "UPDATE environments SET holdout = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?",
        )
        .bind(
          current.holdout ?? "{}",
          current.version,
          current.updated_at,
          environmentId,
          next.version,
        ),
    ],
    reason: `environment ${current.key} holdout ${body.percent} %`,
  });
  return next;
}

/** The environment or 404 (for the results of its holdout). */
export async function requireHoldout(
  env: Env,
  actor: Actor,
  environmentId: string,
): Promise<{ environment: EnvironmentRow; spec: HoldoutSpec }> {
  requireActorRole(actor, "viewer");
  const environment = await requireEnvironment(env.DB, environmentId);
  const spec = holdoutSpecOf(environment);
  if (spec === null) throw notFound("holdout of environment", environmentId);
  return { environment, spec };
}

/** The events a holdout may compare (viewer): the project's, not archived, oldest first. */
export async function holdoutMetricChoices(
  env: Env,
  actor: Actor,
  projectId: string,
): Promise<Array<{ id: string; key: string }>> {
  requireActorRole(actor, "viewer");
  return all<{ id: string; key: string }>(
    env.DB,
    "SELECT id, key FROM events WHERE project_id = ? AND archived = 0 ORDER BY created_at, id",
    projectId,
  );
}
