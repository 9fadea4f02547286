/**
 * Projects (docs/api.md "Projects"). A project owns every other resource; creating one also
 * creates its two environments, `production` and `development`, each with its own sdkKey.
 * Reading needs any role; creating, changing and deleting projects need admin.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { conflict } from "../errors";
import { newId, newSdkKey, nowIso } from "../ids";
import type {
  ProjectCreate,
  ProjectJson,
  ProjectUpdate,
  ProjectWithEnvironmentsJson,
} from "../schemas/projects";
import { auditStatement } from "../store/audit";
import { all, first, listEnvironments, requireProject } from "../store/db";
import type { EnvironmentRow, ProjectRow } from "../store/rows";
import { insertStatement } from "../store/sql";
import { deleteDatafilesOf, environmentJson } from "./environments";
import {
  checkVersion,
  type IfMatch,
  type Page,
  pageAfter,
  type PageRequest,
  sentFields,
} from "./resources";
import { requireActorRole } from "./auth";
import { currentKvRevision } from "./publish";
import { updateAudited } from "./write-and-publish";

export function projectJson(row: ProjectRow): ProjectJson {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    accountId: row.account_id,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** A project and its environments. */
export interface ProjectWithEnvironments {
  project: ProjectRow;
  environments: EnvironmentRow[];
}

export function projectWithEnvironmentsJson({
  project,
  environments,
}: ProjectWithEnvironments): ProjectWithEnvironmentsJson {
  return { ...projectJson(project), environments: environments.map(environmentJson) };
}

const DEFAULT_ENVIRONMENTS = [
  { key: "production", name: "Production" },
  { key: "development", name: "Development" },
] as const;

/**
 * A new project with its production and development environments (admin); `sdkKeys` adopts
 * existing SDK keys (409 when an environment has one already).
 */
export async function createProject(
  env: Env,
  actor: Actor,
  body: ProjectCreate,
): Promise<ProjectWithEnvironments> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const now = nowIso();
  // One account id per deployment: reuse the first project's.
  const account = await first<{ account_id: string }>(
    db,
    "SELECT account_id FROM projects ORDER BY created_at, id LIMIT 1",
  );
  const project: ProjectRow = {
    id: newId(),
    name: body.name,
    description: body.description ?? "",
    account_id: account?.account_id ?? newId(),
    version: 1,
    created_at: now,
    updated_at: now,
  };
  const chosen: Partial<Record<string, string>> = body.sdkKeys ?? {};
  for (const [key, sdkKey] of Object.entries(chosen)) {
    if (sdkKey === undefined) continue;
    const taken = await first<{ id: string }>(
      db,
      "SELECT id FROM environments WHERE sdk_key = ?",
      sdkKey,
    );
    if (taken)
      throw conflict(`an environment already has sdkKey ${JSON.stringify(sdkKey)}`, {
        path: `$.body.sdkKeys.${key}`,
        existingId: taken.id,
      });
  }
  const environments: EnvironmentRow[] = await Promise.all(
    DEFAULT_ENVIRONMENTS.map(async (environment) => {
      const sdkKey = chosen[environment.key];
      return {
        id: newId(),
        project_id: project.id,
        key: environment.key,
        name: environment.name,
        sdk_key: sdkKey ?? newSdkKey(),
        // An adopted key may already have a datafile in KV (pushed before this project existed):
        // revisions continue after it, so SDKs polling the key never see the number go back.
        revision:
          sdkKey === undefined ? 0 : ((await currentKvRevision(env.DATAFILES, sdkKey)) ?? 0),
        require_review: 0,
        version: 1,
        created_at: now,
        updated_at: now,
      };
    }),
  );
  await db.batch([
    insertStatement(db, "projects", project),
    ...environments.map((environment) => insertStatement(db, "environments", environment)),
    auditStatement(db, actor, "create", "project", project.id, project.id, {
      name: project.name,
      environments: environments.map((environment) => ({
        id: environment.id,
        key: environment.key,
      })),
    }),
  ]);
  return { project, environments };
}

/** A page of projects by id (viewer). */
export async function listProjects(
  env: Env,
  actor: Actor,
  page: PageRequest,
): Promise<Page<ProjectRow>> {
  requireActorRole(actor, "viewer");
  const rows = await all<ProjectRow>(
    env.DB,
    "SELECT * FROM projects WHERE id > ? ORDER BY id LIMIT ?",
    page.cursor ?? "",
    page.limit + 1,
  );
  return pageAfter(rows, page.limit);
}

/** A project and its environments (viewer); 404 when it does not exist. */
export async function getProject(
  env: Env,
  actor: Actor,
  projectId: string,
): Promise<ProjectWithEnvironments> {
  requireActorRole(actor, "viewer");
  const project = await requireProject(env.DB, projectId);
  const environments = await listEnvironments(env.DB, projectId);
  return { project, environments };
}

/**
 * Changes a project's name or description (admin): 404 when it does not exist, 409 when
 * `ifMatch` does not accept its version or another write wins the race.
 */
export async function updateProject(
  env: Env,
  actor: Actor,
  projectId: string,
  body: ProjectUpdate,
  ifMatch: IfMatch,
): Promise<ProjectRow> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const current = await requireProject(db, projectId);
  checkVersion(ifMatch, current.version);
  const next: ProjectRow = {
    ...current,
    name: body.name ?? current.name,
    description: body.description ?? current.description,
    version: current.version + 1,
    updated_at: nowIso(),
  };
  await updateAudited(
    db,
    actor,
    {
      table: "projects",
      type: "project",
      id: projectId,
      projectId: projectId,
      expectedVersion: current.version,
    },
    {
      name: next.name,
      description: next.description,
      version: next.version,
      updated_at: next.updated_at,
    },
    sentFields(body),
  );
  return next;
}

/**
 * Deletes a project and everything in it (admin), and its environments' datafiles in KV, so
 * their sdkKeys stop serving: 404 when it does not exist, 409 when `ifMatch` does not accept its
 * version and while any experiment is Running in any of its environments.
 */
export async function deleteProject(
  env: Env,
  actor: Actor,
  projectId: string,
  ifMatch: IfMatch,
): Promise<void> {
  requireActorRole(actor, "admin");
  const db = env.DB;
  const project = await requireProject(db, projectId);
  checkVersion(ifMatch, project.version);
  const running = await all<{ experiment_id: string; environment_id: string }>(
    db,
    `SELECT s.experiment_id, s.environment_id FROM experiment_status s
       JOIN environments e ON e.id = s.environment_id
      WHERE e.project_id = ? AND s.status = 'Running' LIMIT 20`,
    projectId,
  );
  if (running.length > 0)
    throw conflict("the project has running experiments; pause or archive them first", {
      running: running.map((r) => ({
        experimentId: r.experiment_id,
        environmentId: r.environment_id,
      })),
    });
  const environments = await listEnvironments(db, projectId);
  await db.batch([
    db.prepare("DELETE FROM projects WHERE id = ?").bind(projectId),
    auditStatement(db, actor, "delete", "project", projectId, projectId, { name: project.name }),
  ]);
  await deleteDatafilesOf(
    env.DATAFILES,
    environments.map((environment) => environment.sdk_key),
  );
}
