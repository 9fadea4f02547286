/**
 * Publishing (docs/api.md "Publishing"): management data in D1 → a validated datafile in KV
 * (docs/datafile.md layout: `datafiles/{sdkKey}/{revision}` immutable, `datafiles/{sdkKey}` current).
 *
 * One publish of one environment:
 * 1. Reserve the next revision number: INSERT of the `datafile_revisions` row, its number
 *    computed inside the INSERT from the highest one so far. The primary key
 *    (environment_id, revision) is the arbiter: two racing publishes never share a number. A
 *    reserved row is "pending" (`sha256 = ''`) until step 6 and hidden from revision lists.
 * 2. Load the snapshot from D1 — after reserving, so the highest revision always reflects every
 *    change committed before it was reserved — and build the datafile with that revision.
 * 3. Validate the exact text with `parseDatafile` (src/core). Any error → 422 `datafile_invalid`
 *    with the problems; nothing is written, the reservation is released. A selector the edge
 *    cannot run is only a warning here (docs/changes.md "Selectors"): every write publishes every
 *    environment, so one experiment stored before that check existed would otherwise block every
 *    write of its project; saving an experiment and pushing a datafile check it strictly.
 * 4. Unchanged content (SHA-256 of the datafile with `revision` blanked equals the current
 *    revision's, and KV's current key holds that revision) → `changed: false`, reservation
 *    released, nothing written.
 * 5. KV: the lists' members to the private `lists/{sdkKey}/{revision}` (when there are lists),
 *    then `datafiles/{sdkKey}/{revision}`, then `datafiles/{sdkKey}` (unless a newer revision is
 *    already current), the datafile keys with metadata `{publishedAt, revision, holdoutShares}` — the edge's
 *    Last-Modified. The datafile keys hold the public form: lists as `{id, key}`, never their
 *    members (docs/datafile.md "Lists", docs/security.md "List members stay private").
 * 6. D1, one batch: the revision row completed, `environments.revision` advanced (never moved
 *    back), the audit entry.
 * 7. If racing publishes wrote the current key out of order, the one that commits last puts the
 *    highest revision's text back (compares KV's current metadata with `environments.revision`).
 *
 * Rollback re-publishes the stored text of an older revision, with that revision's list members,
 * as a new revision (its `revision` field rewritten, `rollback_of` set), through the same steps.
 *
 * Each step works on the datafile with its members inline (what the builder makes, what a push
 * may send): the content hash covers them, so changing only a list's members publishes a new
 * revision; they are split off just before KV (`splitForKv`).
 */
import { parseDatafile, type ParseOptions } from "../../core/datafile-parse";
import type { Datafile, WebList } from "../../core/datafile-types";
import { holdoutSharesOf } from "../../core/holdouts";
import type { Problem } from "../../core/problem";
import { mergeListMembers, splitListMembers, type ListMembers } from "../../core/list-members";
import { datafileKey } from "../../edge/datafile-store";
import { sha256Hex } from "../../shared/hash";
import {
  listMembersKey,
  MAX_LIST_MEMBERS,
  MAX_LIST_MEMBERS_BYTES,
  readListMembers,
} from "../../edge/list-members";
import type { Env } from "../../env";
import { auditStatement } from "../store/audit";
import type { Actor } from "../context";
import {
  buildDatafile,
  contentText,
  DatafileBuildError,
  serializeDatafile,
  type ProjectSnapshot,
} from "./datafile-build";
import { ApiError, conflict, notFound } from "../errors";
import { requireActorRole } from "./auth";
import { emitWebhookEvent } from "./webhook-events";
import { holdoutSpecOf, publishedHoldoutBasisPoints } from "./holdout-spec";
import { nowIso } from "../ids";
import type {
  AttributeRow,
  AudienceRow,
  DatafileRevisionRow,
  EnvironmentRow,
  EventRow,
  ExperimentRow,
  FlagRow,
  GroupRow,
  ListRow,
  PageRow,
  ProjectRow,
} from "../store/rows";

export interface PublishResult {
  environmentId: string;
  environmentKey: string;
  sdkKey: string;
  /** The revision now published (when `changed` is false: the current one, unchanged). */
  revision: number;
  /** False when the content equals the current revision's: nothing was written. */
  changed: boolean;
  /** Validator warnings of the datafile (it loads; they are probably mistakes). */
  warnings: Problem[];
}

/** KV metadata's limit is 1,024 bytes serialized (kept under it with room to spare). */
const MAX_METADATA_BYTES = 1000;

/** KV metadata of both datafile keys. */
export interface PublishedDatafileMetadata {
  /** ISO 8601; the edge's Last-Modified. */
  publishedAt: string;
  revision: number;
  /**
   * The revision's running holdouts: holdout id → end of the held range (0..10000), `{}` when it
   * has none. SDK ingest recomputes membership at the shares of the revision an SDK decided with
   * (src/edge/revision-holdouts.ts, docs/holdouts.md "Share changes"). Absent on revisions
   * published before it was recorded.
   */
  holdoutShares?: Record<string, number>;
}

/** KV key of one immutable revision. */
export function revisionKey(sdkKey: string, revision: number): string {
  return `${datafileKey(sdkKey)}/${revision}`;
}

/** The hash stored in `datafile_revisions.sha256`: of the content, `revision` blanked. */
export async function contentHash(datafile: object): Promise<string> {
  return sha256Hex(contentText(datafile));
}

// ---------------------------------------------------------------------------------------------
// Snapshots

const PROJECT_TABLES = [
  "attributes",
  "audiences",
  "events",
  "pages",
  "groups",
  "lists",
  "experiments",
  "flags",
] as const;

/** The statements reading a project's tables, ordered as the builder wants them. */
function tableStatements(db: D1Database, projectIdSql: string, param: string) {
  return PROJECT_TABLES.map((table) =>
    db
      .prepare(`SELECT * FROM ${table} WHERE project_id = ${projectIdSql} ORDER BY created_at, id`)
      .bind(param),
  );
}

interface Tables {
  attributes: AttributeRow[];
  audiences: AudienceRow[];
  events: EventRow[];
  pages: PageRow[];
  groups: GroupRow[];
  lists: ListRow[];
  experiments: ExperimentRow[];
  flags: FlagRow[];
}

function tablesOf(results: D1Result[]): Tables {
  const rows = (i: number) => results[i]?.results ?? [];
  return {
    attributes: rows(0) as unknown as AttributeRow[],
    audiences: rows(1) as unknown as AudienceRow[],
    events: rows(2) as unknown as EventRow[],
    pages: rows(3) as unknown as PageRow[],
    groups: rows(4) as unknown as GroupRow[],
    lists: rows(5) as unknown as ListRow[],
    experiments: rows(6) as unknown as ExperimentRow[],
    flags: rows(7) as unknown as FlagRow[],
  };
}

/** Everything one environment's datafile is built from, in one D1 round trip; 404 when absent. */
export async function loadSnapshot(
  db: D1Database,
  environmentId: string,
): Promise<ProjectSnapshot> {
  const projectOf = "(SELECT project_id FROM environments WHERE id = ?)";
  const results = await db.batch([
    db.prepare("SELECT * FROM environments WHERE id = ?").bind(environmentId),
    db.prepare(`SELECT * FROM projects WHERE id = ${projectOf}`).bind(environmentId),
    db
      .prepare("SELECT experiment_id, status FROM experiment_status WHERE environment_id = ?")
      .bind(environmentId),
    ...tableStatements(db, projectOf, environmentId),
  ]);
  const environment = results[0]?.results[0] as EnvironmentRow | undefined;
  const project = results[1]?.results[0] as ProjectRow | undefined;
  if (!environment || !project) throw notFound("environment", environmentId);
  const statuses = new Map<string, string>();
  for (const row of (results[2]?.results ?? []) as Array<{
    experiment_id: string;
    status: string;
  }>)
    statuses.set(row.experiment_id, row.status);
  return { project, environment, statuses, ...tablesOf(results.slice(3)) };
}

/** The snapshots of every environment of a project (one D1 round trip); 404 when no project. */
export async function loadProjectSnapshots(
  db: D1Database,
  projectId: string,
): Promise<ProjectSnapshot[]> {
  const results = await db.batch([
    db.prepare("SELECT * FROM projects WHERE id = ?").bind(projectId),
    db
      .prepare("SELECT * FROM environments WHERE project_id = ? ORDER BY created_at, id")
      .bind(projectId),
    db
      .prepare(
        "SELECT s.experiment_id, s.environment_id, s.status FROM experiment_status s JOIN environments e ON e.id = s.environment_id WHERE e.project_id = ?",
      )
      .bind(projectId),
    ...tableStatements(db, "?", projectId),
  ]);
  const project = results[0]?.results[0] as ProjectRow | undefined;
  if (!project) throw notFound("project", projectId);
  const environments = (results[1]?.results ?? []) as unknown as EnvironmentRow[];
  const statusRows = (results[2]?.results ?? []) as Array<{
    experiment_id: string;
    environment_id: string;
    status: string;
  }>;
  const tables = tablesOf(results.slice(3));
  return environments.map((environment) => {
    const statuses = new Map<string, string>();
    for (const row of statusRows)
      if (row.environment_id === environment.id) statuses.set(row.experiment_id, row.status);
    return { project, environment, statuses, ...tables };
  });
}

// ---------------------------------------------------------------------------------------------
// Validation

/** The 422 for a datafile that does not validate (or cannot be built). */
function invalidDatafile(environment: EnvironmentRow, problems: Problem[]): ApiError {
  const errors = problems.filter((p) => p.severity === "error");
  const first = errors[0];
  return new ApiError(
    422,
    "datafile_invalid",
    `the datafile of environment ${environment.key} would be invalid, so nothing was published${
      first
        ? `: ${first.path}: ${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ""}`
        : ""
    }`,
    {
      environmentId: environment.id,
      environmentKey: environment.key,
      problems: errors.map((p) => ({ path: p.path, message: p.message })),
    },
  );
}

/** What goes to KV for one datafile (with its members inline): public text and private members. */
interface ForKv {
  /** With list members inline: what the content hash covers. */
  datafile: Datafile;
  /** The public text (`datafiles/…`): lists as `{id, key}`. */
  text: string;
  /** The private members document (`lists/{sdkKey}/{revision}`), null when there are no lists. */
  members: string | null;
  warnings: Problem[];
}

/**
 * Splits the members off, validates the public text (422 with the problems otherwise) and checks
 * that the members stay within what an isolate can hold (422 naming `$.web.lists` otherwise:
 * MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_BYTES, docs/datafile.md "Lists").
 */
function splitForKv(environment: EnvironmentRow, datafile: Datafile): ForKv {
  const split = splitListMembers(datafile);
  const text = serializeDatafile(split.datafile);
  const members = split.members === null ? null : JSON.stringify(split.members);
  if (split.members !== null && members !== null) {
    let count = 0;
    for (const values of Object.values(split.members.lists)) count += values.length;
    const bytes = new TextEncoder().encode(members).byteLength;
    const tooMany = count > MAX_LIST_MEMBERS;
    if (tooMany || bytes > MAX_LIST_MEMBERS_BYTES)
      throw invalidDatafile(environment, [
        {
          path: "$.web.lists",
          message: tooMany
            ? `the lists of this environment have ${count} members in all; at most ${MAX_LIST_MEMBERS} can be published (an isolate holds them all in memory)`
            : `the members of this environment's lists take ${bytes} bytes as JSON; at most ${MAX_LIST_MEMBERS_BYTES} (8 MiB) can be published (an isolate holds them all in memory)`,
          severity: "error",
        },
      ]);
  }
  return { datafile, text, members, warnings: checkText(environment, text, "warning") };
}

/**
 * 422 when a list of `datafile` (after its members were merged back) still has no `values`:
 * published as is, `in_list` on it would match nobody, silently. `why` says, for one list, where
 * its members should have come from.
 */
function requireListMembers(
  environment: EnvironmentRow,
  datafile: Datafile,
  why: (key: string) => string,
): void {
  const lists = (datafile.web as { lists?: unknown } | undefined)?.lists;
  if (!Array.isArray(lists)) return; // not a list of lists: the validator reports it
  const problems: Problem[] = [];
  lists.forEach((list: unknown, index) => {
    if (typeof list !== "object" || list === null) return;
    const { key, values } = list as Partial<WebList>;
    if (values === undefined)
      problems.push({
        path: `$.web.lists[${index}].values`,
        message: why(typeof key === "string" ? JSON.stringify(key) : `at index ${index}`),
        severity: "error",
      });
  });
  if (problems.length > 0) throw invalidDatafile(environment, problems);
}

/** Builds and validates; what to store and the warnings, or a 422. */
function buildChecked(snapshot: ProjectSnapshot, revision: number): ForKv {
  let datafile: Datafile;
  try {
    datafile = buildDatafile(snapshot, revision);
  } catch (error) {
    if (error instanceof DatafileBuildError)
      throw invalidDatafile(snapshot.environment, error.problems);
    throw error;
  }
  return splitForKv(snapshot.environment, datafile);
}

/**
 * The private list members of a published revision, by list id (empty when it had none); 422
 * when the stored document is not one (it can only have been written by hand).
 */
export async function storedListMembers(
  env: Env,
  environment: EnvironmentRow,
  revision: number,
): Promise<ListMembers> {
  if (revision <= 0) return new Map();
  const found = await readListMembers(env.DATAFILES, environment.sdk_key, String(revision));
  if (found === null) return new Map();
  if (!found.ok)
    throw invalidDatafile(environment, [
      {
        path: "$.web.lists",
        message: `the list members of revision ${revision} (${listMembersKey(environment.sdk_key, revision)}) do not load: ${found.message}`,
        severity: "error",
      },
    ]);
  return found.members;
}

/**
 * parseDatafile on the exact text; 422 on errors, the warnings otherwise. `edgeSelectors`:
 * ParseOptions.edgeSelectors (strict by default).
 */
function checkText(
  environment: EnvironmentRow,
  text: string,
  edgeSelectors: ParseOptions["edgeSelectors"] = "error",
): Problem[] {
  const parsed = parseDatafile(text, { edgeSelectors });
  if (!parsed.ok) throw invalidDatafile(environment, parsed.problems);
  return parsed.problems;
}

// ---------------------------------------------------------------------------------------------
// The publish steps

const MAX_RESERVE_ATTEMPTS = 5;

/** Step 1: the next revision number of the environment, reserved; 404 when no environment. */
async function reserveRevision(
  db: D1Database,
  environmentId: string,
  actor: Actor,
  reason: string,
  rollbackOf: number | null,
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      const row = await db
        .prepare(
          `INSERT INTO datafile_revisions
             (environment_id, revision, sha256, size, published_at, published_by, reason, rollback_of)
           SELECT e.id,
                  MAX(e.revision, COALESCE((SELECT MAX(r.revision) FROM datafile_revisions r
                                            WHERE r.environment_id = e.id), 0)) + 1,
                  '', 0, ?, ?, ?, ?
           FROM environments e WHERE e.id = ?
           RETURNING revision`,
        )
        .bind(nowIso(), actor.id, reason, rollbackOf, environmentId)
        .first<{ revision: number }>();
      if (!row) throw notFound("environment", environmentId);
      return row.revision;
    } catch (error) {
      // The primary key decides between racing publishes: take the next number.
      if (
        attempt < MAX_RESERVE_ATTEMPTS &&
        error instanceof Error &&
        /UNIQUE constraint failed|PRIMARY KEY/i.test(error.message)
      )
        continue;
      throw error;
    }
  }
}

async function releaseRevision(
  db: D1Database,
  environmentId: string,
  revision: number,
): Promise<void> {
  try {
    await db
      .prepare(
        "DELETE FROM datafile_revisions WHERE environment_id = ? AND revision = ? AND sha256 = ''",
      )
      .bind(environmentId, revision)
      .run();
  } catch (error) {
    // A pending row left behind is only a gap in the numbering (pending rows are never listed).
    console.error(`splitstream: could not release revision ${revision} of ${environmentId}`, error);
  }
}

/** The revision number KV's current key holds, from its metadata; null when absent or unknown. */
/** The revision `datafiles/{sdkKey}` holds (its metadata), or null when none or unknown. */
export async function currentKvRevision(kv: KVNamespace, sdkKey: string): Promise<number | null> {
  const { value, metadata } = await kv.getWithMetadata<Partial<PublishedDatafileMetadata>>(
    datafileKey(sdkKey),
    "stream",
  );
  if (value === null) return null;
  await value.cancel();
  return typeof metadata?.revision === "number" ? metadata.revision : null;
}

async function currentRevision(db: D1Database, environmentId: string): Promise<number> {
  const row = await db
    .prepare("SELECT revision FROM environments WHERE id = ?")
    .bind(environmentId)
    .first<{ revision: number }>();
  return row?.revision ?? 0;
}

/**
 * Step 7: makes KV's current key hold `environments.revision` (racing publishes may have written
 * it out of order). Best effort; a few rounds in case the race continues.
 */
async function settleCurrent(env: Env, environmentId: string, sdkKey: string): Promise<void> {
  for (let round = 0; round < 3; round++) {
    const wanted = await currentRevision(env.DB, environmentId);
    if (wanted === 0 || (await currentKvRevision(env.DATAFILES, sdkKey)) === wanted) return;
    const stored = await env.DATAFILES.getWithMetadata<PublishedDatafileMetadata>(
      revisionKey(sdkKey, wanted),
      "text",
    );
    if (stored.value === null) {
      console.error(
        `splitstream: ${revisionKey(sdkKey, wanted)} is missing; ${datafileKey(sdkKey)} not repaired`,
      );
      return;
    }
    await env.DATAFILES.put(datafileKey(sdkKey), stored.value, {
      metadata: stored.metadata ?? { publishedAt: nowIso(), revision: wanted },
    });
  }
}

/** What a publish turns into a datafile, given the reserved revision. */
type Produce = (revision: number) => Promise<ForKv & { environment: EnvironmentRow }>;

async function publishWith(
  env: Env,
  environmentId: string,
  actor: Actor,
  reason: string,
  rollbackOf: number | null,
  produce: Produce,
): Promise<PublishResult> {
  const db = env.DB;
  const revision = await reserveRevision(db, environmentId, actor, reason, rollbackOf);
  let committed = false;
  try {
    const { environment, datafile, text, members, warnings } = await produce(revision);
    const sdkKey = environment.sdk_key;
    const base = { environmentId, environmentKey: environment.key, sdkKey, warnings };
    const sha256 = await contentHash(datafile);

    // Step 4: unchanged?
    const current = environment.revision;
    if (current > 0) {
      const previous = await db
        .prepare("SELECT sha256 FROM datafile_revisions WHERE environment_id = ? AND revision = ?")
        .bind(environmentId, current)
        .first<{ sha256: string }>();
      if (
        previous?.sha256 === sha256 &&
        (await currentKvRevision(env.DATAFILES, sdkKey)) === current
      ) {
        // (the reservation is released below)
        return { ...base, revision: current, changed: false };
      }
    }

    // Step 5: KV, the private members first (an edge that sees the datafile finds them), then
    // the immutable revision.
    const publishedAt = nowIso();
    const withShares: PublishedDatafileMetadata = {
      publishedAt,
      revision,
      holdoutShares: Object.fromEntries(holdoutSharesOf(datafile)),
    };
    // KV metadata is at most 1,024 bytes: a hand-written datafile with many (or long-id)
    // holdouts records none (SDK ingest then uses the current shares).
    const metadata: PublishedDatafileMetadata =
      new TextEncoder().encode(JSON.stringify(withShares)).byteLength <= MAX_METADATA_BYTES
        ? withShares
        : { publishedAt, revision };
    if (members !== null) await env.DATAFILES.put(listMembersKey(sdkKey, revision), members);
    await env.DATAFILES.put(revisionKey(sdkKey, revision), text, { metadata });
    if ((await currentRevision(db, environmentId)) < revision)
      await env.DATAFILES.put(datafileKey(sdkKey), text, { metadata });

    // Step 6: D1.
    const size = new TextEncoder().encode(text).byteLength;
    await db.batch([
      db
        .prepare(
          "UPDATE datafile_revisions SET sha256 = ?, size = ?, published_at = ?, holdout_basis_points = ? WHERE environment_id = ? AND revision = ?",
        )
        .bind(
          sha256,
          size,
          publishedAt,
          // Which share decided the groups of visitors exposed under this revision.
          publishedHoldoutBasisPoints(datafile, holdoutSpecOf(environment)),
          environmentId,
          revision,
        ),
      db
        .prepare("UPDATE environments SET revision = ? WHERE id = ? AND revision < ?")
        .bind(revision, environmentId, revision),
      auditStatement(
        db,
        actor,
        rollbackOf === null ? "publish" : "rollback",
        "environment",
        environmentId,
        environment.project_id,
        rollbackOf === null
          ? { revision, reason, sha256 }
          : { revision, rollbackOf, reason, sha256 },
      ),
    ]);
    committed = true;

    // Step 7 (best effort: the revision is published whatever happens here).
    await settleCurrent(env, environmentId, sdkKey).catch((error: unknown) =>
      console.error(`splitstream: could not check ${datafileKey(sdkKey)} after publishing`, error),
    );
    await emitWebhookEvent(env, {
      projectId: environment.project_id,
      type: rollbackOf === null ? "datafile.published" : "datafile.rolled_back",
      environment: environment.key,
      actor,
      data: {
        environment: { id: environmentId, key: environment.key, sdkKey },
        revision,
        ...(rollbackOf === null ? {} : { rollbackOf }),
        reason,
        sha256,
        publishedAt,
      },
      summary:
        rollbackOf === null
          ? `datafile revision ${revision} of ${environment.key} published by ${actor.name}: ${reason}`
          : `${environment.key} rolled back to revision ${rollbackOf} (as revision ${revision}) by ${actor.name}`,
    });
    return { ...base, revision, changed: true };
  } finally {
    if (!committed) await releaseRevision(db, environmentId, revision);
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Publishes the current management data of one environment as a new datafile revision (no-op
 * with `changed: false` when the content is unchanged). 404 when the environment does not exist,
 * 422 `datafile_invalid` (nothing published) when the datafile would not validate.
 */
export async function publishEnvironment(
  env: Env,
  environmentId: string,
  actor: Actor,
  reason: string,
): Promise<PublishResult> {
  requireActorRole(actor, "editor");
  return publishWith(env, environmentId, actor, reason, null, async (revision) => {
    const snapshot = await loadSnapshot(env.DB, environmentId);
    return { environment: snapshot.environment, ...buildChecked(snapshot, revision) };
  });
}

/**
 * Publishes every environment of a project (what a change that affects the edge calls). All
 * datafiles are built and validated first: if any would be invalid, 422 and none is published.
 * 404 when the project does not exist; `[]` when it has no environments.
 */
export async function publishProject(
  env: Env,
  projectId: string,
  actor: Actor,
  reason: string,
): Promise<PublishResult[]> {
  const snapshots = await loadProjectSnapshots(env.DB, projectId);
  for (const snapshot of snapshots) buildChecked(snapshot, snapshot.environment.revision + 1);
  const results: PublishResult[] = [];
  for (const snapshot of snapshots)
    results.push(await publishEnvironment(env, snapshot.environment.id, actor, reason));
  return results;
}

/**
 * Publishes the stored text of `toRevision` again as a new revision (`revision` field rewritten,
 * `rollback_of` = toRevision), with the list members that revision was published with. 404 when
 * that revision was never published or its text is gone from KV; 422 when it no longer validates
 * or its list members are gone from KV; `changed: false` when it equals the current content.
 * The management data is not changed: the next publish (any edit) publishes it again.
 */
export async function rollbackEnvironment(
  env: Env,
  environmentId: string,
  toRevision: number,
  actor: Actor,
  reason = `rollback to revision ${toRevision}`,
): Promise<PublishResult> {
  requireActorRole(actor, "admin");
  const environment = await env.DB.prepare("SELECT * FROM environments WHERE id = ?")
    .bind(environmentId)
    .first<EnvironmentRow>();
  if (!environment) throw notFound("environment", environmentId);
  const row = await env.DB.prepare(
    "SELECT revision FROM datafile_revisions WHERE environment_id = ? AND revision = ? AND sha256 <> ''",
  )
    .bind(environmentId, toRevision)
    .first<Pick<DatafileRevisionRow, "revision">>();
  if (!row) throw notFound("revision", `${toRevision} of environment ${environmentId}`);
  const stored = await env.DATAFILES.get(revisionKey(environment.sdk_key, toRevision), "text");
  if (stored === null)
    throw new ApiError(
      404,
      "not_found",
      `the text of revision ${toRevision} is no longer in KV (${revisionKey(environment.sdk_key, toRevision)})`,
      { type: "revision", id: String(toRevision) },
    );
  let old: Record<string, unknown>;
  try {
    old = JSON.parse(stored) as Record<string, unknown>;
  } catch {
    throw invalidDatafile(environment, [
      { path: "$", message: `revision ${toRevision} is not valid JSON`, severity: "error" },
    ]);
  }
  // That revision's members, not today's: a rollback restores what the edge did then.
  const oldMembers = await storedListMembers(env, environment, toRevision);
  return publishWith(env, environmentId, actor, reason, toRevision, async (revision) => {
    const fresh = await env.DB.prepare("SELECT * FROM environments WHERE id = ?")
      .bind(environmentId)
      .first<EnvironmentRow>();
    if (!fresh) throw notFound("environment", environmentId);
    const datafile = mergeListMembers(
      { ...old, revision: String(revision) } as unknown as Datafile,
      oldMembers,
    );
    // Without them its lists would match nobody: refuse, as for a text gone from KV.
    requireListMembers(
      fresh,
      datafile,
      (key) =>
        `the members of list ${key} of revision ${toRevision} are no longer in KV (${listMembersKey(fresh.sdk_key, toRevision)}), so it cannot be rolled back to`,
    );
    return { environment: fresh, ...splitForKv(fresh, datafile) };
  });
}

/** How many management records (experiments, pages, events, …) a project has. */
export async function countProjectRecords(db: D1Database, projectId: string): Promise<number> {
  const row = await db
    .prepare(
      `SELECT ${PROJECT_TABLES.map((t) => `(SELECT count(*) FROM ${t} WHERE project_id = ?1)`).join(" + ")} AS n`,
    )
    .bind(projectId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/**
 * Publishes a datafile supplied as a whole (`splitstream datafile push`, PUT …/datafile) as the
 * environment's next revision: its `sdkKey` and `revision` are set to the environment's, it must
 * pass `parseDatafile`, and nothing is written otherwise. The management data is not changed, so
 * it is refused (409) when the project has records: the next change that publishes them would
 * replace the pushed datafile; `importDatafile` (src/api/services/datafile-import-apply.ts) is
 * the way in then.
 * Inline `web.lists[].values` go to the private members key like any publish; a list without
 * `values` keeps the members of the same list id in the current revision, and is refused (422)
 * when that revision has none for it.
 */
export async function pushDatafile(
  env: Env,
  environmentId: string,
  supplied: unknown,
  actor: Actor,
  reason = "datafile pushed",
): Promise<PublishResult> {
  requireActorRole(actor, "admin");
  const environment = await env.DB.prepare("SELECT * FROM environments WHERE id = ?")
    .bind(environmentId)
    .first<EnvironmentRow>();
  if (!environment) throw notFound("environment", environmentId);
  // A pushed file lives only until the next change publishes the records again: with records,
  // a push would be silently undone, so it is refused and the import offered instead.
  const records = { n: await countProjectRecords(env.DB, environment.project_id) };
  if ((records?.n ?? 0) > 0)
    throw conflict(
      `the project of environment ${environment.key} has ${records?.n} management records (experiments, pages, events, …): a pushed datafile would be replaced by the next change. Import it instead (POST /environments/${environment.id}/datafile/import, splitstream datafile import), which turns it into records`,
      { records: records?.n, importPath: `/environments/${environment.id}/datafile/import` },
    );
  if (supplied === null || typeof supplied !== "object" || Array.isArray(supplied)) {
    throw invalidDatafile(environment, [
      { path: "$", message: "expected a datafile (a JSON object)", severity: "error" },
    ]);
  }
  // Fail before reserving a revision: the problems name paths in what the client sent. Strict,
  // selectors the edge cannot run included, as an import: the file comes from outside.
  checkText(
    environment,
    JSON.stringify({ ...supplied, sdkKey: environment.sdk_key, revision: "0" }),
  );
  return publishWith(env, environmentId, actor, reason, null, async (revision) => {
    const fresh = await env.DB.prepare("SELECT * FROM environments WHERE id = ?")
      .bind(environmentId)
      .first<EnvironmentRow>();
    if (!fresh) throw notFound("environment", environmentId);
    // A list sent without `values` (e.g. a datafile downloaded from the edge, which never shows
    // members) keeps the members it has in the current revision.
    const datafile = mergeListMembers(
      { ...supplied, sdkKey: fresh.sdk_key, revision: String(revision) } as unknown as Datafile,
      await storedListMembers(env, fresh, fresh.revision),
    );
    requireListMembers(
      fresh,
      datafile,
      (key) =>
        `list ${key} has no values, and the current revision (${fresh.revision}) has no members for its id to keep: send its values`,
    );
    return { environment: fresh, ...splitForKv(fresh, datafile) };
  });
}

/** A page of completed revisions, newest first (`before` = exclusive upper bound). */
export async function listRevisions(
  db: D1Database,
  environmentId: string,
  limit: number,
  before: number | null,
): Promise<DatafileRevisionRow[]> {
  const { results } = await db
    .prepare(
      `SELECT * FROM datafile_revisions
       WHERE environment_id = ? AND sha256 <> '' AND revision < ?
       ORDER BY revision DESC LIMIT ?`,
    )
    .bind(environmentId, before ?? Number.MAX_SAFE_INTEGER, limit)
    .all<DatafileRevisionRow>();
  return results;
}
