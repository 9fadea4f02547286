/**
 * Environments (docs/api.md "Environments"). Each has its own sdkKey, datafile revision and
 * experiment statuses; its datafile is served at `/_ss/datafiles/{sdkKey}.json`. Reading needs
 * any role; creating, renaming and deleting need admin. The `production` environment cannot be
 * deleted (delete the project instead); the key and sdkKey never change.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict } from "../errors";
import { newId, newSdkKey, nowIso } from "../ids";
import type {
  EnvironmentCreate,
  EnvironmentJson,
  EnvironmentUpdate,
} from "../schemas/environments";
import { auditStatement } from "../store/audit";
import { all, listEnvironments, requireEnvironment, requireProject } from "../store/db";
import type { EnvironmentRow } from "../store/rows";
import { insertStatement } from "../store/sql";
import { checkVersion, type IfMatch, sentFields } from "./resources";
import { requireActorRole } from "./auth";
import { updateAudited } from "./write-and-publish";

/** Where official SDKs and the edge fetch an environment's datafile (same host as the API). */
export function datafilePath(sdkKey: string): string {
  return `/_ss/datafiles/${sdkKey}.json`;
}

export function environmentJson(row: EnvironmentRow): EnvironmentJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    sdkKey: row.sdk_key,
    revision: row.revision,
    requireReview: row.require_review === 1,
    datafileUrl: datafilePath(row.sdk_key),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Removes the current datafile and every stored revision of these sdkKeys from KV. */
export async function deleteDatafilesOf(kv: KVNamespace, sdkKeys: string[]): Promise<void> {
  for (const sdkKey of sdkKeys) {
    const keys = [`datafiles/${sdkKey}`];
    let cursor: string | undefined;
    do {
      const listed: KVNamespaceListResult<unknown, string> = await kv.list({
        prefix: `datafiles/${sdkKey}/`,
        ...(cursor ? { cursor } : {}),
      });
      keys.push(...listed.keys.map((k) => k.name));
      cursor = listed.list_complete ? undefined : listed.cursor;
    } while (cursor);
    await Promise.all(keys.map((key) => kv.delete(key)));
  }
}

/** Every environment of the project, production first (viewer); 404 for an unknown project. */
export async function listProjectEnvironments(
  env: Env,
  actor: Actor,
  projectId: string,
): Promise<EnvironmentRow[]> {
  requireActorRole(actor, "viewer");
  await requireProject(env.DB, projectId);
  return listEnvironments(env.DB, projectId);
}

/** One environment (viewer); 404 when it does not exist. */
export async function getEnvironment(
  env: Env,
  actor: Actor,
  environmentId: string,
): Promise<EnvironmentRow> {
  requireActorRole(actor, "viewer");
  return requireEnvironment(env.DB, environmentId);
}

/**
 * A new environment of the project with a new sdkKey (admin): 404 for an unknown project, 409
 * when the key is taken. The project's experiments start as `Not started` in it; its datafile is
 * published on the next change that publishes.
 */
export async function createEnvironment(
  env: Env,
  actor: Actor,
  projectId: string,
  body: EnvironmentCreate,
): Promise<EnvironmentRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  await requireProject(db, projectId);
  const clash = await all<{ id: string }>(
    db,
    "SELECT id FROM environments WHERE project_id = ? AND key = ?",
    projectId,
    body.key,
  );
  if (clash.length > 0)
    throw conflict(`the project already has an environment with key ${body.key}`, {
      path: "$.body.key",
      existingId: clash[0]?.id,
    });
  const now = nowIso();
  const row: EnvironmentRow = {
    id: newId(),
    project_id: projectId,
    key: body.key,
    name: body.name,
    sdk_key: newSdkKey(),
    revision: 0,
    require_review: body.requireReview === true ? 1 : 0,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  await db.batch([
    insertStatement(db, "environments", row),
    db
      .prepare(
        "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT id, ?, 'Not started', ? FROM experiments WHERE project_id = ?",
      )
      .bind(row.id, now, projectId),
    auditStatement(db, actor, "create", "environment", row.id, projectId, {
      key: row.key,
      requireReview: row.require_review === 1,
    }),
  ]);
  return row;
}

/**
 * Renames an environment or turns its review requirement on or off (admin; docs/approvals.md):
 * 404 when it does not exist, 409 when `ifMatch` does not accept its version or another write
 * wins the race. Turning review off leaves pending requests pending (they still need a decision).
 */
export async function updateEnvironment(
  env: Env,
  actor: Actor,
  environmentId: string,
  body: EnvironmentUpdate,
  ifMatch: IfMatch,
): Promise<EnvironmentRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireEnvironment(db, environmentId);
  checkVersion(ifMatch, current.version);
  const next: EnvironmentRow = {
    ...current,
    name: body.name ?? current.name,
    require_review:
      body.requireReview === undefined ? current.require_review : body.requireReview ? 1 : 0,
    version: current.version + 1,
    updated_at: nowIso(),
  };
  await updateAudited(
    db,
    actor,
    {
      table: "environments",
      type: "environment",
      id: environmentId,
      projectId: current.project_id,
      expectedVersion: current.version,
    },
    // Not the whole row: publishing bumps `revision` without a new version.
    {
      name: next.name,
      require_review: next.require_review,
      version: next.version,
      updated_at: next.updated_at,
    },
    sentFields(body),
    body.requireReview === undefined ? {} : { requireReview: body.requireReview },
  );
  return next;
}

/**
 * Deletes an environment (admin) and its datafiles in KV, so its sdkKey stops serving: 404 when
 * it does not exist, 409 when `ifMatch` does not accept its version, for `production`, and while
 * an experiment is Running in it.
 */
export async function deleteEnvironment(
  env: Env,
  actor: Actor,
  environmentId: string,
  ifMatch: IfMatch,
): Promise<void> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const environment = await requireEnvironment(db, environmentId);
  checkVersion(ifMatch, environment.version);
  if (environment.key === "production")
    throw conflict("the production environment cannot be deleted; delete the project instead");
  const running = await all<{ experiment_id: string }>(
    db,
    "SELECT experiment_id FROM experiment_status WHERE environment_id = ? AND status = 'Running' LIMIT 20",
    environmentId,
  );
  if (running.length > 0)
    throw conflict("experiments are running in this environment; pause or archive them first", {
      running: running.map((r) => r.experiment_id),
    });
  await db.batch([
    db.prepare("DELETE FROM environments WHERE id = ?").bind(environmentId),
    auditStatement(db, actor, "delete", "environment", environmentId, environment.project_id, {
      key: environment.key,
      sdkKey: environment.sdk_key,
    }),
  ]);
  await deleteDatafilesOf(env.DATAFILES, [environment.sdk_key]);
}
