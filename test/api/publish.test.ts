/**
 * Publishing (src/api/services/publish.ts, src/api/routes/datafiles.ts) against the real local D1 and KV:
 * revisions, both KV keys and their metadata, validation before anything is written, unchanged
 * content, rollback, racing publishes, and the HTTP routes. Rows are inserted with SQL.
 */
import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import demo from "../../demo/datafile.json";
import { createApiApp } from "../../src/api/app";
import { sha256Hex } from "../../src/shared/hash";
import type { Actor } from "../../src/api/context";
import {
  serializeDatafile,
  buildDatafile,
  type ProjectSnapshot,
} from "../../src/api/services/datafile-build";
import { ApiError } from "../../src/api/errors";
import {
  publishEnvironment,
  publishProject,
  pushDatafile,
  rollbackEnvironment,
  type PublishedDatafileMetadata,
} from "../../src/api/services/publish";
import { MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_BYTES } from "../../src/edge/list-members";
import { registerPublishRoutes } from "../../src/api/routes/datafiles";
import { loadDatafile } from "../../src/core/index";
import { splitListMembers } from "../../src/core/list-members";
import { apiJson, createProject } from "../helpers/api";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import {
  at,
  environmentRow,
  insertSnapshot,
  listRow,
  pageRow,
  realisticSnapshot,
  remapIds,
} from "../helpers/management-rows";

const actor: Actor = { id: "tester", role: "admin", name: "tester" };

let nextOffset = 1;
/** A realistic project in D1 with its own ids and sdkKey, plus `lists` (name → members). */
async function seedProject(lists: Record<string, string[]> = {}): Promise<ProjectSnapshot> {
  const offset = nextOffset++;
  const snapshot = remapIds(
    realisticSnapshot(),
    offset,
    `pubTest${offset}_${crypto.randomUUID().slice(0, 8)}`,
  );
  for (const [key, values] of Object.entries(lists))
    snapshot.lists.push({
      ...listRow(`${snapshot.project.id}_${key}`, key, values),
      project_id: snapshot.project.id,
    });
  await insertSnapshot(env.DB, snapshot);
  return snapshot;
}

async function kvCurrent(sdkKey: string) {
  return env.DATAFILES.getWithMetadata<PublishedDatafileMetadata>(`datafiles/${sdkKey}`, "text");
}

async function kvRevision(sdkKey: string, revision: number) {
  return env.DATAFILES.getWithMetadata<PublishedDatafileMetadata>(
    `datafiles/${sdkKey}/${revision}`,
    "text",
  );
}

async function kvKeys(sdkKey: string): Promise<string[]> {
  const listed = await env.DATAFILES.list({ prefix: `datafiles/${sdkKey}` });
  return listed.keys.map((k) => k.name).sort();
}

async function revisionRows(environmentId: string) {
  const { results } = await env.DB.prepare(
    "SELECT * FROM datafile_revisions WHERE environment_id = ? ORDER BY revision",
  )
    .bind(environmentId)
    .all<{
      revision: number;
      sha256: string;
      size: number;
      published_at: string;
      published_by: string;
      reason: string;
      rollback_of: number | null;
    }>();
  return results;
}

async function environmentRevision(environmentId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT revision FROM environments WHERE id = ?")
    .bind(environmentId)
    .first<{ revision: number }>();
  return row!.revision;
}

async function setStatus(environmentId: string, experimentId: string, status: string) {
  await env.DB.prepare(
    "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id, environment_id) DO UPDATE SET status = excluded.status",
  )
    .bind(experimentId, environmentId, status, at(30))
    .run();
}

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
  throw new Error("expected an ApiError");
}

describe("publishEnvironment", () => {
  it("publishes revision 1: both KV keys with metadata, the revision row, environments.revision, audit", async () => {
    const s = await seedProject();
    const before = Date.now();
    const result = await publishEnvironment(env, s.environment.id, actor, "first publish");
    expect(result).toEqual({
      environmentId: s.environment.id,
      environmentKey: "production",
      sdkKey: s.environment.sdk_key,
      revision: 1,
      changed: true,
      warnings: [],
    });

    const current = await kvCurrent(s.environment.sdk_key);
    const immutable = await kvRevision(s.environment.sdk_key, 1);
    expect(current.value).not.toBeNull();
    expect(immutable.value).toBe(current.value);
    expect(current.metadata).toEqual(immutable.metadata);
    expect(current.metadata!.revision).toBe(1);
    const publishedAt = Date.parse(current.metadata!.publishedAt);
    expect(publishedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(current.metadata!.publishedAt).toBe(new Date(publishedAt).toISOString());
    // Exactly what the builder makes from these rows, list members split off into the private
    // key (docs/datafile.md "Lists").
    const built = splitListMembers(buildDatafile({ ...s, environment: { ...s.environment } }, 1));
    expect(current.value).toBe(serializeDatafile(built.datafile));
    expect(await env.DATAFILES.get(`lists/${s.environment.sdk_key}/1`)).toBe(
      JSON.stringify(built.members),
    );
    const loaded = loadDatafile(current.value);
    expect(loaded.ok && loaded.compiled.revision).toBe("1");

    const rows = await revisionRows(s.environment.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      revision: 1,
      size: new TextEncoder().encode(current.value!).byteLength,
      published_by: "tester",
      reason: "first publish",
      rollback_of: null,
      published_at: current.metadata!.publishedAt,
    });
    expect(rows[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await environmentRevision(s.environment.id)).toBe(1);

    const audit = await env.DB.prepare(
      "SELECT * FROM audit_log WHERE resource_id = ? AND action = 'publish'",
    )
      .bind(s.environment.id)
      .all<{ actor: string; project_id: string; details: string }>();
    expect(audit.results).toHaveLength(1);
    expect(audit.results[0]!.actor).toBe("tester");
    expect(audit.results[0]!.project_id).toBe(s.project.id);
    expect(JSON.parse(audit.results[0]!.details)).toMatchObject({
      revision: 1,
      reason: "first publish",
    });
  });

  it("numbers revisions upwards; old revisions stay as they were; the edge serves the new one", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    const first = (await kvCurrent(sdkKey)).value!;
    const ctaId = s.experiments[0]!.id;
    await setStatus(s.environment.id, ctaId, "Paused");
    const second = await publishEnvironment(env, s.environment.id, actor, "pause cta");
    expect(second).toMatchObject({ revision: 2, changed: true });
    await setStatus(s.environment.id, ctaId, "Running");
    expect((await publishEnvironment(env, s.environment.id, actor, "resume")).revision).toBe(3);

    expect(await kvKeys(sdkKey)).toEqual([
      `datafiles/${sdkKey}`,
      `datafiles/${sdkKey}/1`,
      `datafiles/${sdkKey}/2`,
      `datafiles/${sdkKey}/3`,
    ]);
    expect((await kvRevision(sdkKey, 1)).value).toBe(first);
    const two = JSON.parse((await kvRevision(sdkKey, 2)).value!);
    expect(two.revision).toBe("2");
    expect(two.experiments.find((x: { id: string }) => x.id === ctaId).status).toBe("Paused");
    expect((await revisionRows(s.environment.id)).map((r) => r.revision)).toEqual([1, 2, 3]);
    expect(await environmentRevision(s.environment.id)).toBe(3);

    // The datafile endpoint serves it, Last-Modified from the metadata.
    resetDatafileStore();
    const response = await exports.default.fetch(`http://localhost/_ss/datafiles/${sdkKey}.json`);
    expect(response.status).toBe(200);
    const served = await response.json<{ revision: string }>();
    expect(served.revision).toBe("3");
    const { metadata } = await kvCurrent(sdkKey);
    expect(response.headers.get("last-modified")).toBe(
      new Date(metadata!.publishedAt).toUTCString(),
    );
  });

  it("unchanged content → changed:false, nothing written", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    const before = await kvCurrent(sdkKey);
    const again = await publishEnvironment(env, s.environment.id, actor, "again");
    expect(again).toMatchObject({ revision: 1, changed: false });
    expect(await kvKeys(sdkKey)).toEqual([`datafiles/${sdkKey}`, `datafiles/${sdkKey}/1`]);
    expect(await kvCurrent(sdkKey)).toEqual(before);
    expect((await revisionRows(s.environment.id)).map((r) => r.revision)).toEqual([1]);
    expect(await environmentRevision(s.environment.id)).toBe(1);
    // A row change that does not reach the datafile (a description) publishes nothing either.
    await env.DB.prepare("UPDATE experiments SET description = 'new words' WHERE id = ?")
      .bind(s.experiments[0]!.id)
      .run();
    expect((await publishEnvironment(env, s.environment.id, actor, "x")).changed).toBe(false);
  });

  it("unchanged content but KV's current key holds something else → publishes again (repairs KV)", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    await env.DATAFILES.put(`datafiles/${sdkKey}`, '{"hand":"written"}');
    const result = await publishEnvironment(env, s.environment.id, actor, "repair");
    expect(result).toMatchObject({ revision: 2, changed: true });
    const current = await kvCurrent(sdkKey);
    expect(current.metadata!.revision).toBe(2);
    expect(JSON.parse(current.value!).revision).toBe("2");
  });

  it("an invalid datafile → 422 datafile_invalid with JSON paths; KV and D1 untouched", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    const before = await kvCurrent(sdkKey);
    const bad = pageRow(String(Number(s.pages[0]!.id) + 90), "broken_regex", [
      "or",
      { match: "regex", value: "^/p/(\\d+$" },
    ]);
    await env.DB.prepare(
      "INSERT INTO pages (id, project_id, key, name, activation, conditions, archived, version, created_at, updated_at) VALUES (?, ?, ?, ?, 'immediate', ?, 0, 1, ?, ?)",
    )
      .bind(bad.id, s.project.id, bad.key, bad.name, bad.conditions, at(40), at(40))
      .run();

    const error = await caught(publishEnvironment(env, s.environment.id, actor, "bad"));
    expect(error.status).toBe(422);
    expect(error.code).toBe("datafile_invalid");
    const details = error.details as {
      environmentId: string;
      problems: Array<{ path: string; message: string }>;
    };
    expect(details.environmentId).toBe(s.environment.id);
    expect(details.problems).toEqual([
      {
        path: "$.web.pages[5].conditions[1].value",
        message: expect.stringMatching(/regular expression/),
      },
    ]);
    expect(error.message).toContain("$.web.pages[5].conditions[1].value");

    expect(await kvKeys(sdkKey)).toEqual([`datafiles/${sdkKey}`, `datafiles/${sdkKey}/1`]);
    expect(await kvCurrent(sdkKey)).toEqual(before);
    expect((await revisionRows(s.environment.id)).map((r) => r.revision)).toEqual([1]);
    expect(await environmentRevision(s.environment.id)).toBe(1);

    // Never published at all: nothing in KV either.
    const fresh = await seedProject();
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(bad.conditions, fresh.pages[0]!.id)
      .run();
    expect((await caught(publishEnvironment(env, fresh.environment.id, actor, "bad"))).status).toBe(
      422,
    );
    expect(await kvKeys(fresh.environment.sdk_key)).toEqual([]);
    expect(await revisionRows(fresh.environment.id)).toEqual([]);
  });

  it("a JSON column that does not parse → 422 datafile_invalid naming the row", async () => {
    const s = await seedProject();
    await env.DB.prepare("UPDATE experiments SET variations = '[{' WHERE id = ?")
      .bind(s.experiments[0]!.id)
      .run();
    const error = await caught(publishEnvironment(env, s.environment.id, actor, "x"));
    expect(error.status).toBe(422);
    expect((error.details as { problems: Array<{ path: string }> }).problems[0]!.path).toBe(
      `experiments["${s.experiments[0]!.id}"].variations`,
    );
    expect(await kvKeys(s.environment.sdk_key)).toEqual([]);
  });

  it("404 for an unknown environment", async () => {
    const error = await caught(publishEnvironment(env, "no-such-env", actor, "x"));
    expect(error.status).toBe(404);
    expect(await revisionRows("no-such-env")).toEqual([]);
  });

  it("racing publishes get distinct revisions and KV ends at the highest", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    const ids = s.experiments.map((x) => x.id);
    // Each racer changes something first, so most of them have new content to publish.
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        await setStatus(s.environment.id, ids[i % 6]!, i % 2 === 0 ? "Paused" : "Running");
        return publishEnvironment(env, s.environment.id, actor, `racer ${i}`);
      }),
    );
    const published = results.filter((r) => r.changed).map((r) => r.revision);
    expect(published.length).toBeGreaterThanOrEqual(2);
    expect(new Set(published).size).toBe(published.length);
    const rows = await revisionRows(s.environment.id);
    expect(rows.map((r) => r.revision).sort((a, b) => a - b)).toEqual(
      [...published].sort((a, b) => a - b),
    );
    expect(rows.every((r) => r.sha256 !== "")).toBe(true);
    const highest = Math.max(...published);
    expect(await environmentRevision(s.environment.id)).toBe(highest);
    const current = await kvCurrent(sdkKey);
    expect(current.metadata!.revision).toBe(highest);
    expect(JSON.parse(current.value!).revision).toBe(String(highest));
    for (const revision of published)
      expect(JSON.parse((await kvRevision(sdkKey, revision)).value!).revision).toBe(
        String(revision),
      );
  });

  it("racing publishes of the same content never reuse a number either", async () => {
    const s = await seedProject();
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        publishEnvironment(env, s.environment.id, actor, `same ${i}`),
      ),
    );
    const published = results.filter((r) => r.changed).map((r) => r.revision);
    expect(published.length).toBeGreaterThanOrEqual(1);
    expect(new Set(published).size).toBe(published.length);
    const highest = Math.max(...results.map((r) => r.revision));
    expect(await environmentRevision(s.environment.id)).toBe(highest);
    expect((await kvCurrent(s.environment.sdk_key)).metadata!.revision).toBe(highest);
    // Afterwards it is settled: the next publish is a no-op.
    expect((await publishEnvironment(env, s.environment.id, actor, "after")).changed).toBe(false);
  });
});

describe('the members of one environment\'s lists are bounded (docs/datafile.md "Lists")', () => {
  /** `count` members as `lists` rows of at most 100,000 (the lists API's bound per list). */
  function listsOf(count: number, member: string): Record<string, string[]> {
    const lists: Record<string, string[]> = {};
    for (let n = 0; count > 0; n++, count -= 100_000)
      lists[`big${n}`] = new Array<string>(Math.min(count, 100_000)).fill(member);
    return lists;
  }

  it(`${MAX_LIST_MEMBERS} members publish; one more → 422 at $.web.lists, nothing written`, async () => {
    // The realistic snapshot has a list of 2 members already.
    const at = await seedProject(listsOf(MAX_LIST_MEMBERS - 2, "m"));
    expect(await publishEnvironment(env, at.environment.id, actor, "at the bound")).toMatchObject({
      revision: 1,
      changed: true,
    });

    const over = await seedProject(listsOf(MAX_LIST_MEMBERS - 1, "m"));
    const error = await caught(publishEnvironment(env, over.environment.id, actor, "over"));
    expect(error.status).toBe(422);
    expect(error.code).toBe("datafile_invalid");
    expect(error.details).toMatchObject({
      problems: [
        {
          path: "$.web.lists",
          message: expect.stringContaining(`${MAX_LIST_MEMBERS + 1} members in all`),
        },
      ],
    });
    expect(await kvKeys(over.environment.sdk_key)).toEqual([]);
    expect(await env.DATAFILES.get(`lists/${over.environment.sdk_key}/1`)).toBeNull();
    expect(await revisionRows(over.environment.id)).toEqual([]);
  });

  it(`over ${MAX_LIST_MEMBERS_BYTES} bytes of members → 422 at $.web.lists`, async () => {
    // 259 bytes a member as JSON: the byte bound, long before the count.
    const count = Math.ceil(MAX_LIST_MEMBERS_BYTES / 259) + 1;
    const s = await seedProject({
      long0: new Array<string>(Math.ceil(count / 2)).fill("x".repeat(256)),
      long1: new Array<string>(Math.ceil(count / 2)).fill("y".repeat(256)),
    });
    const error = await caught(publishEnvironment(env, s.environment.id, actor, "too big"));
    expect(error.status).toBe(422);
    expect(error.details).toMatchObject({
      problems: [
        {
          path: "$.web.lists",
          message: expect.stringMatching(/bytes as JSON; at most 8388608 \(8 MiB\)/),
        },
      ],
    });
    expect(await kvKeys(s.environment.sdk_key)).toEqual([]);
  });
});

describe("rollbackEnvironment", () => {
  it("re-publishes an old revision's text as a new revision; the next publish restores the data", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    const oneText = (await kvRevision(sdkKey, 1)).value!;
    await setStatus(s.environment.id, s.experiments[0]!.id, "Paused");
    await publishEnvironment(env, s.environment.id, actor, "two");
    const twoText = (await kvRevision(sdkKey, 2)).value!;

    const result = await rollbackEnvironment(env, s.environment.id, 1, actor);
    expect(result).toMatchObject({ revision: 3, changed: true });
    const current = await kvCurrent(sdkKey);
    expect(current.metadata!.revision).toBe(3);
    expect(current.value).toBe(oneText.replace('"revision":"1"', '"revision":"3"'));
    expect((await kvRevision(sdkKey, 3)).value).toBe(current.value);
    const rows = await revisionRows(s.environment.id);
    expect(rows.map((r) => [r.revision, r.rollback_of, r.reason])).toEqual([
      [1, null, "one"],
      [2, null, "two"],
      [3, 1, "rollback to revision 1"],
    ]);
    expect(rows[2]!.sha256).toBe(rows[0]!.sha256);
    expect(await environmentRevision(s.environment.id)).toBe(3);
    const audit = await env.DB.prepare(
      "SELECT details FROM audit_log WHERE resource_id = ? AND action = 'rollback'",
    )
      .bind(s.environment.id)
      .first<{ details: string }>();
    expect(JSON.parse(audit!.details)).toMatchObject({ revision: 3, rollbackOf: 1 });

    // Rolling back to what is current already: nothing to do.
    expect(await rollbackEnvironment(env, s.environment.id, 1, actor)).toMatchObject({
      revision: 3,
      changed: false,
    });

    // The management data still says Paused: publishing brings revision 2's content back.
    const next = await publishEnvironment(env, s.environment.id, actor, "after rollback");
    expect(next).toMatchObject({ revision: 4, changed: true });
    expect((await kvCurrent(sdkKey)).value).toBe(
      twoText.replace('"revision":"2"', '"revision":"4"'),
    );
  });

  it("422 naming the list and the key when the old revision's members are gone from KV: lists never silently emptied", async () => {
    const s = await seedProject();
    const sdkKey = s.environment.sdk_key;
    await publishEnvironment(env, s.environment.id, actor, "one");
    await setStatus(s.environment.id, s.experiments[0]!.id, "Paused");
    await publishEnvironment(env, s.environment.id, actor, "two");
    await env.DATAFILES.delete(`lists/${sdkKey}/1`);
    const current = (await kvCurrent(sdkKey)).value;

    const error = await caught(rollbackEnvironment(env, s.environment.id, 1, actor));
    expect(error.status).toBe(422);
    expect(error.code).toBe("datafile_invalid");
    expect(error.details).toMatchObject({
      problems: [
        {
          path: "$.web.lists[0].values",
          message: `the members of list "vip" of revision 1 are no longer in KV (lists/${sdkKey}/1), so it cannot be rolled back to`,
        },
      ],
    });
    expect((await revisionRows(s.environment.id)).map((r) => r.revision)).toEqual([1, 2]);
    expect((await kvCurrent(sdkKey)).value).toBe(current);
    expect(await env.DATAFILES.get(`lists/${sdkKey}/3`)).toBeNull();
  });

  it("404 for a revision that was never published", async () => {
    const s = await seedProject();
    await publishEnvironment(env, s.environment.id, actor, "one");
    const error = await caught(rollbackEnvironment(env, s.environment.id, 7, actor));
    expect(error.status).toBe(404);
    expect((await caught(rollbackEnvironment(env, "nope", 1, actor))).status).toBe(404);
    expect((await revisionRows(s.environment.id)).map((r) => r.revision)).toEqual([1]);
  });
});

describe("pushDatafile", () => {
  it("a list without values keeps the current revision's members; one the current revision has none for → 422 naming it", async () => {
    // Pushes are for projects without records (a project with records refuses them:
    // test/api/datafile-push.test.ts), so the members come from an earlier push.
    const project = await createProject();
    const environment = project.environments.find((e) => e.key === "production")!;
    const sdkKey = environment.sdkKey;
    const first = {
      ...demo,
      web: { ...demo.web, lists: [{ id: "l_vip", key: "vip", values: ["cust_1", "cust_2"] }] },
    };
    expect(await pushDatafile(env, environment.id, first, actor)).toMatchObject({ revision: 1 });
    // What the edge serves: lists as {id, key}.
    const downloaded = JSON.parse((await kvCurrent(sdkKey)).value!) as {
      web: { lists: Array<{ id: string; key: string }> };
    };
    expect(downloaded.web.lists).toEqual([{ id: "l_vip", key: "vip" }]);
    const newcomer = { id: "l_newcomers", key: "newcomers" };
    const pushed = {
      ...downloaded,
      web: { ...downloaded.web, lists: [...downloaded.web.lists, newcomer] },
    };

    const error = await caught(pushDatafile(env, environment.id, pushed, actor));
    expect(error.status).toBe(422);
    expect(error.code).toBe("datafile_invalid");
    expect(error.details).toMatchObject({
      problems: [
        {
          path: "$.web.lists[1].values",
          message: `list "newcomers" has no values, and the current revision (1) has no members for its id to keep: send its values`,
        },
      ],
    });
    expect((await revisionRows(environment.id)).map((r) => r.revision)).toEqual([1]);

    // With its values it is published; "vip" keeps its members.
    const withValues = {
      ...pushed,
      web: { ...pushed.web, lists: [...downloaded.web.lists, { ...newcomer, values: ["n-1"] }] },
    };
    expect(await pushDatafile(env, environment.id, withValues, actor)).toMatchObject({
      revision: 2,
      changed: true,
    });
    expect(await env.DATAFILES.get(`lists/${sdkKey}/2`, "json")).toEqual({
      lists: { l_vip: ["cust_1", "cust_2"], l_newcomers: ["n-1"] },
    });
  });
});

describe("publishProject", () => {
  async function addStaging(s: ProjectSnapshot) {
    const staging = environmentRow({
      id: String(Number(s.environment.id) + 1),
      project_id: s.project.id,
      key: "staging",
      name: "Staging",
      sdk_key: `${s.environment.sdk_key}-staging`,
      created_at: at(1),
    });
    await env.DB.prepare(
      "INSERT INTO environments (id, project_id, key, name, sdk_key, revision, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?)",
    )
      .bind(
        staging.id,
        staging.project_id,
        staging.key,
        staging.name,
        staging.sdk_key,
        staging.created_at,
        staging.updated_at,
      )
      .run();
    return staging;
  }

  it("publishes every environment, each with its own statuses and sdkKey", async () => {
    const s = await seedProject();
    const staging = await addStaging(s);
    const results = await publishProject(env, s.project.id, actor, "project change");
    expect(results.map((r) => [r.environmentKey, r.revision, r.changed])).toEqual([
      ["production", 1, true],
      ["staging", 1, true],
    ]);
    const prod = JSON.parse((await kvCurrent(s.environment.sdk_key)).value!);
    const stag = JSON.parse((await kvCurrent(staging.sdk_key)).value!);
    expect(prod.sdkKey).toBe(s.environment.sdk_key);
    expect(stag.sdkKey).toBe(staging.sdk_key);
    expect(prod.experiments[0].status).toBe("Running");
    expect(stag.experiments[0].status).toBe("Not started");
    expect(await publishProject(env, s.project.id, actor, "again")).toMatchObject([
      { changed: false },
      { changed: false },
    ]);
  });

  it("one invalid datafile → 422 and no environment is published", async () => {
    const s = await seedProject();
    const staging = await addStaging(s);
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(JSON.stringify({ match: "regex", value: "(" }), s.pages[1]!.id)
      .run();
    const error = await caught(publishProject(env, s.project.id, actor, "x"));
    expect(error.status).toBe(422);
    expect(await kvKeys(s.environment.sdk_key)).toEqual([]);
    expect(await kvKeys(staging.sdk_key)).toEqual([]);
    expect((await caught(publishProject(env, "missing-project", actor, "x"))).status).toBe(404);
  });
});

describe("publish routes", () => {
  const app = createApiApp();
  registerPublishRoutes(app);
  const base = "http://localhost/_ss/api/v1";

  async function token(role: "viewer" | "editor"): Promise<string> {
    const secret = `ss_test_${role}_${crypto.randomUUID()}`;
    await env.DB.prepare(
      "INSERT INTO tokens (id, name, role, token_hash, prefix, created_by, created_at) VALUES (?, ?, ?, ?, ?, 'test', ?)",
    )
      .bind(
        crypto.randomUUID(),
        `${role} token`,
        role,
        await sha256Hex(secret),
        secret.slice(0, 8),
        at(0),
      )
      .run();
    return secret;
  }

  function call(method: string, path: string, bearer: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    return Promise.resolve(
      app.fetch(
        new Request(`${base}${path}`, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
        env,
        createExecutionContext(),
      ),
    );
  }

  it("publish, read the datafile and revisions, roll back — with role checks", async () => {
    const s = await seedProject();
    const envPath = `/environments/${s.environment.id}`;
    const viewer = await token("viewer");
    const editor = await token("editor");
    const admin = "test-admin-token";

    let response = await call("GET", `${envPath}/datafile`, viewer);
    expect(response.status).toBe(404);
    expect((await response.json<{ error: { code: string } }>()).error.code).toBe("not_found");

    expect((await call("POST", `${envPath}/publish`, viewer, {})).status).toBe(403);
    response = await call("POST", `${envPath}/publish`, editor, { reason: "via API" });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      environmentId: s.environment.id,
      environmentKey: "production",
      sdkKey: s.environment.sdk_key,
      revision: 1,
      changed: true,
      warnings: [],
    });
    // No body at all is fine too.
    await setStatus(s.environment.id, s.experiments[0]!.id, "Paused");
    response = await call("POST", `${envPath}/publish`, editor);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ revision: 2, changed: true });

    response = await call("GET", `${envPath}/datafile`, viewer);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.headers.get("x-ss-revision")).toBe("2");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.text()).toBe((await kvCurrent(s.environment.sdk_key)).value);

    response = await call("GET", `${envPath}/revisions?limit=1`, viewer);
    expect(response.status).toBe(200);
    const page1 = await response.json<{
      items: Array<Record<string, unknown>>;
      nextCursor: string | null;
    }>();
    expect(page1.items).toEqual([
      {
        revision: 2,
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        size: expect.any(Number),
        publishedAt: expect.any(String),
        publishedBy: expect.any(String),
        reason: "manual publish",
        rollbackOf: null,
        current: true,
      },
    ]);
    expect(page1.nextCursor).toEqual(expect.any(String));
    response = await call("GET", `${envPath}/revisions?limit=1&cursor=${page1.nextCursor}`, viewer);
    const page2 = await response.json<{
      items: Array<Record<string, unknown>>;
      nextCursor: string | null;
    }>();
    expect(page2.items.map((r) => [r.revision, r.reason, r.current])).toEqual([
      [1, "via API", false],
    ]);
    expect(page2.nextCursor).toBeNull();
    expect((await call("GET", `${envPath}/revisions?cursor=zzz`, viewer)).status).toBe(422);

    response = await call("GET", `${envPath}/revisions/1`, viewer);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-ss-revision")).toBe("1");
    expect(await response.text()).toBe((await kvRevision(s.environment.sdk_key, 1)).value);
    expect((await call("GET", `${envPath}/revisions/9`, viewer)).status).toBe(404);
    expect((await call("GET", `${envPath}/revisions/abc`, viewer)).status).toBe(422);

    expect((await call("POST", `${envPath}/rollback`, editor, { revision: 1 })).status).toBe(403);
    response = await call("POST", `${envPath}/rollback`, admin, {
      revision: 1,
      reason: "bad copy",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ revision: 3, changed: true });
    const list = await (
      await call("GET", `${envPath}/revisions`, viewer)
    ).json<{
      items: Array<{ revision: number; rollbackOf: number | null; reason: string }>;
    }>();
    expect(list.items.map((r) => [r.revision, r.rollbackOf, r.reason])).toEqual([
      [3, 1, "bad copy"],
      [2, null, "manual publish"],
      [1, null, "via API"],
    ]);
    expect((await call("POST", `${envPath}/rollback`, admin, { revision: 0 })).status).toBe(422);
    expect((await call("POST", `${envPath}/rollback`, admin, { revision: 99 })).status).toBe(404);
    expect((await call("GET", `/environments/nope/revisions`, viewer)).status).toBe(404);
  });

  it("an invalid datafile → 422 datafile_invalid envelope with paths", async () => {
    const s = await seedProject();
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(JSON.stringify(["or", { match: "regex", value: "[" }]), s.pages[0]!.id)
      .run();
    const response = await call(
      "POST",
      `/environments/${s.environment.id}/publish`,
      "test-admin-token",
      {},
    );
    expect(response.status).toBe(422);
    const body = await response.json<{
      error: { code: string; details: { problems: Array<{ path: string }> } };
    }>();
    expect(body.error.code).toBe("datafile_invalid");
    expect(body.error.details.problems.map((p) => p.path)).toEqual([
      "$.web.pages[0].conditions[1].value",
    ]);
  });
});

describe("through the Worker (/_ss/api/v1)", () => {
  it("a new project's environment publishes, and the edge serves the datafile", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const result = await apiJson("POST", `/environments/${production.id}/publish`, 200, {
      body: { reason: "empty project" },
    });
    expect(result).toMatchObject({ revision: 1, changed: true, warnings: [] });
    const datafile = await apiJson("GET", `/environments/${production.id}/datafile`, 200);
    expect(datafile).toMatchObject({
      version: "4",
      projectId: project.id,
      accountId: project.accountId,
      sdkKey: production.sdkKey,
      revision: "1",
      experiments: [],
      web: { pages: [], experiments: [] },
    });
    resetDatafileStore();
    const served = await exports.default.fetch(`http://localhost${production.datafileUrl}`);
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(datafile);
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).revision).toBe(1);
    const openapi = await apiJson<{ paths: Record<string, unknown> }>("GET", "/openapi.json", 200);
    for (const path of [
      "/_ss/api/v1/environments/{environmentId}/datafile",
      "/_ss/api/v1/environments/{environmentId}/revisions",
      "/_ss/api/v1/environments/{environmentId}/revisions/{revision}",
      "/_ss/api/v1/environments/{environmentId}/publish",
      "/_ss/api/v1/environments/{environmentId}/rollback",
    ])
      expect(openapi.paths).toHaveProperty([path]);
  });
});

describe('selectors the edge cannot run (docs/changes.md "Selectors")', () => {
  it("an experiment stored before the check existed does not block an unrelated write", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: {
        key: "home",
        activation: "immediate",
        conditions: ["or", { match: "substring", value: "/" }],
      },
    });
    const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "buy", type: "custom" },
    });
    const change = (selector: string) => ({
      type: "attribute",
      selector,
      attributes: { text: "Hello" },
    });
    const body = (selector: string) => ({
      key: `old_${selector.length}`,
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "treatment", weight: 5000, changes: [change(selector)] },
      ],
    });
    // Saving checks strictly: on an immediate page the edge would skip the change.
    const refused = await apiJson("POST", `/projects/${project.id}/experiments`, 422, {
      body: body("h1 + p"),
    });
    expect(JSON.stringify(refused)).toContain('the \\"+\\" combinator (next sibling)');
    // As stored before the check existed: the row written to D1 directly, bypassing the API.
    const experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: body("h1"),
    });
    const variations = JSON.parse(
      (await env.DB.prepare("SELECT variations FROM experiments WHERE id = ?")
        .bind(experiment.id)
        .first<{ variations: string }>())!.variations,
    ) as Array<{ changes?: unknown[] }>;
    variations[1]!.changes = [change("h1 + p")];
    await env.DB.prepare("UPDATE experiments SET variations = ? WHERE id = ?")
      .bind(JSON.stringify(variations), experiment.id)
      .run();

    // An unrelated write publishes every environment: it goes through, the datafile with it.
    const before = (await apiJson("GET", `/environments/${production.id}`, 200)).revision;
    await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
      body: {
        name: "Mobile",
        conditions: [
          "or",
          { type: "custom_attribute", name: "device.type", match: "exact", value: "mobile" },
        ],
      },
    });
    expect((await apiJson("GET", `/environments/${production.id}`, 200)).revision).toBe(before + 1);
    const datafile = await apiJson("GET", `/environments/${production.id}/datafile`, 200);
    expect(JSON.stringify(datafile.web.experiments)).toContain('"selector":"h1 + p"');
    // A publish reports it as a warning.
    const published = await apiJson("POST", `/environments/${production.id}/publish`, 200, {
      body: { reason: "again" },
    });
    expect(published.changed).toBe(false);
    expect(published.warnings).toEqual([
      expect.objectContaining({
        severity: "warning",
        path: "$.web.experiments[0].variations[1].changes[0].selector",
        message: expect.stringContaining('on immediate page "home" the edge would skip'),
      }),
    ]);
  });
});
