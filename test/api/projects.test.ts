import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { datafileKey } from "../../src/edge/datafile-store";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type EnvironmentJson,
  type ProjectWithEnvironments,
} from "../helpers/api";

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
interface AuditEntry {
  id: string;
  at: string;
  actor: { id: string; name: string | null };
  action: string;
  resourceType: string;
  resourceId: string;
  projectId: string | null;
  details: Record<string, unknown>;
}

const SDK_KEY = /^[A-Za-z0-9][A-Za-z0-9_-]{21}$/;

/** Seeds an experiment (straight into D1) with a status per environment. */
async function seedExperiment(project: ProjectWithEnvironments, status: string): Promise<string> {
  const id = String(Math.floor(1e11 + Math.random() * 8e11));
  const now = new Date().toISOString();
  const pageId = `${id}1`;
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO pages (id, project_id, key, activation, conditions, created_at, updated_at) VALUES (?, ?, ?, 'immediate', '[]', ?, ?)",
    ).bind(pageId, project.id, `page_${id}`, now, now),
    env.DB.prepare(
      "INSERT INTO events (id, project_id, key, type, page_id, created_at, updated_at) VALUES (?, ?, ?, 'pageview', ?, ?, ?)",
    ).bind(`${id}2`, project.id, `event_${id}`, pageId, now, now),
    env.DB.prepare(
      "INSERT INTO experiments (id, project_id, key, type, layer_id, variations, created_at, updated_at) VALUES (?, ?, ?, 'ab', ?, '[]', ?, ?)",
    ).bind(id, project.id, `exp_${id}`, `${id}9`, now, now),
    ...project.environments.map((e) =>
      env.DB.prepare(
        "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) VALUES (?, ?, ?, ?)",
      ).bind(id, e.id, e.key === "production" ? status : "Not started", now),
    ),
  ]);
  return id;
}

describe("POST /projects", () => {
  it("creates the project with production and development environments, each with its own sdkKey", async () => {
    const response = await api("POST", "/projects", {
      body: { name: "Shop", description: "the web shop" },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("etag")).toBe('W/"v1"');
    const project = await response.json<ProjectWithEnvironments>();
    expect(response.headers.get("location")).toBe(`/_ss/api/v1/projects/${project.id}`);
    expect(project).toMatchObject({
      id: expect.stringMatching(/^[1-9]\d{10,11}$/),
      name: "Shop",
      description: "the web shop",
      accountId: expect.stringMatching(/^\d+$/),
      version: 1,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    expect(project.updatedAt).toBe(project.createdAt);
    expect(project.environments.map((e) => e.key)).toEqual(["production", "development"]);
    const [production, development] = project.environments as [EnvironmentJson, EnvironmentJson];
    expect(production.sdkKey).toMatch(SDK_KEY);
    expect(development.sdkKey).toMatch(SDK_KEY);
    expect(production.sdkKey).not.toBe(development.sdkKey);
    expect(production.id).not.toBe(development.id);
    for (const e of project.environments)
      expect(e).toMatchObject({
        projectId: project.id,
        revision: 0,
        version: 1,
        datafileUrl: `/_ss/datafiles/${e.sdkKey}.json`,
      });

    // The same, read back (as a viewer).
    const viewer = await createToken("viewer");
    const read = await apiJson<ProjectWithEnvironments>("GET", `/projects/${project.id}`, 200, {
      token: viewer.token,
    });
    expect(read).toEqual(project);
    const list = await apiJson<Page<EnvironmentJson>>(
      "GET",
      `/projects/${project.id}/environments`,
      200,
    );
    expect(list).toEqual({ items: project.environments, nextCursor: null });
  });

  it("projects of one deployment share an accountId", async () => {
    const a = await createProject();
    const b = await createProject();
    expect(b.accountId).toBe(a.accountId);
    expect(b.id).not.toBe(a.id);
  });

  it("validates the body", async () => {
    const response = await api("POST", "/projects", { body: { name: "  " } });
    expect(response.status).toBe(422);
    const body = await response.json<ApiErrorBody>();
    expect(body.error.details).toEqual([{ path: "$.body.name", message: expect.any(String) }]);
  });
});

describe("GET /projects", () => {
  it("pages with a cursor, each project exactly once", async () => {
    const mine = new Set<string>();
    for (let i = 0; i < 5; i++) mine.add((await createProject(`paged ${i}`)).id);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page<{ id: string; name: string; version: number }> = await apiJson(
        "GET",
        `/projects?limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        200,
      );
      pages++;
      expect(page.items.length).toBeLessThanOrEqual(2);
      if (page.nextCursor !== null) expect(page.items).toHaveLength(2);
      for (const item of page.items) expect(item).not.toHaveProperty("environments");
      seen.push(...page.items.map((p) => p.id));
      cursor = page.nextCursor;
    } while (cursor !== null && pages < 1000);

    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(seen);
    for (const id of mine) expect(seen).toContain(id);
  });

  it("defaults to 50 per page", async () => {
    const page = await apiJson<Page<unknown>>("GET", "/projects", 200);
    expect(page.items.length).toBeLessThanOrEqual(50);
  });
});

describe("PATCH and DELETE /projects/{id}", () => {
  it("PATCH changes fields, bumps the version and updatedAt", async () => {
    const project = await createProject("before");
    const response = await api("PATCH", `/projects/${project.id}`, {
      body: { name: "after" },
      headers: { "if-match": 'W/"v1"' },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("etag")).toBe('W/"v2"');
    const changed = await response.json<ProjectWithEnvironments>();
    expect(changed).toMatchObject({ id: project.id, name: "after", description: "", version: 2 });
    expect(changed.updatedAt >= project.updatedAt).toBe(true);
    expect((await api("PATCH", `/projects/${project.id}`, { body: { id: "1" } })).status).toBe(422);
    expect((await api("PATCH", "/projects/999999999999", { body: { name: "x" } })).status).toBe(
      404,
    );
  });

  it("DELETE is refused while an experiment runs, then removes everything", async () => {
    const project = await createProject("doomed");
    const production = project.environments.find((e) => e.key === "production")!;
    await env.DATAFILES.put(datafileKey(production.sdkKey), "{}");
    await env.DATAFILES.put(`${datafileKey(production.sdkKey)}/1`, "{}");
    const experimentId = await seedExperiment(project, "Running");

    const refused = await api("DELETE", `/projects/${project.id}`);
    expect(refused.status).toBe(409);
    const error = (await refused.json<ApiErrorBody>()).error;
    expect(error.code).toBe("conflict");
    expect(error.details).toEqual({ running: [{ experimentId, environmentId: production.id }] });

    await env.DB.prepare("UPDATE experiment_status SET status = 'Paused' WHERE experiment_id = ?")
      .bind(experimentId)
      .run();
    expect(
      (await api("DELETE", `/projects/${project.id}`, { headers: { "if-match": 'W/"v9"' } }))
        .status,
    ).toBe(409);
    expect((await api("DELETE", `/projects/${project.id}`)).status).toBe(204);

    expect((await api("GET", `/projects/${project.id}`)).status).toBe(404);
    expect((await api("GET", `/environments/${production.id}`)).status).toBe(404);
    for (const table of ["environments", "experiments", "pages", "events"]) {
      const row = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE project_id = ?`)
        .bind(project.id)
        .first<{ n: number }>();
      expect(row?.n, table).toBe(0);
    }
    expect(await env.DATAFILES.get(datafileKey(production.sdkKey))).toBeNull();
    expect(await env.DATAFILES.get(`${datafileKey(production.sdkKey)}/1`)).toBeNull();
    expect((await api("DELETE", `/projects/${project.id}`)).status).toBe(404);
  });
});

describe("environments", () => {
  it("creates one with a fresh sdkKey; keys are unique per project", async () => {
    const project = await createProject();
    const response = await api("POST", `/projects/${project.id}/environments`, {
      body: { key: "staging", name: "Staging" },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("etag")).toBe('W/"v1"');
    const staging = await response.json<EnvironmentJson>();
    expect(staging).toMatchObject({
      projectId: project.id,
      key: "staging",
      name: "Staging",
      revision: 0,
      version: 1,
    });
    expect(staging.sdkKey).toMatch(SDK_KEY);
    expect(project.environments.map((e) => e.sdkKey)).not.toContain(staging.sdkKey);
    expect(await apiJson("GET", `/environments/${staging.id}`, 200)).toEqual(staging);

    const list = await apiJson<Page<EnvironmentJson>>(
      "GET",
      `/projects/${project.id}/environments`,
      200,
    );
    expect(list.items.map((e) => e.key)).toEqual(["production", "development", "staging"]);

    const duplicate = await api("POST", `/projects/${project.id}/environments`, {
      body: { key: "staging", name: "Again" },
    });
    expect(duplicate.status).toBe(409);
    const invalid = await api("POST", `/projects/${project.id}/environments`, {
      body: { key: "Not A Key", name: "x", sdkKey: "mine" },
    });
    expect(invalid.status).toBe(422);
    expect(
      ((await invalid.json<ApiErrorBody>()).error.details as Array<{ path: string }>).map(
        (d) => d.path,
      ),
    ).toEqual(["$.body.key", "$.body.sdkKey"]);
    expect(
      (await api("POST", "/projects/999999999999/environments", { body: { key: "x", name: "x" } }))
        .status,
    ).toBe(404);
  });

  it("new environments start existing experiments as Not started", async () => {
    const project = await createProject();
    const experimentId = await seedExperiment(project, "Running");
    const qa = await apiJson<EnvironmentJson>("POST", `/projects/${project.id}/environments`, 201, {
      body: { key: "qa", name: "QA" },
    });
    const row = await env.DB.prepare(
      "SELECT status FROM experiment_status WHERE experiment_id = ? AND environment_id = ?",
    )
      .bind(experimentId, qa.id)
      .first<{ status: string }>();
    expect(row?.status).toBe("Not started");
  });

  it("PATCH renames with If-Match; key and sdkKey are fixed", async () => {
    const project = await createProject();
    const development = project.environments.find((e) => e.key === "development")!;
    const renamed = await api("PATCH", `/environments/${development.id}`, {
      body: { name: "Dev" },
      headers: { "if-match": 'W/"v1"' },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.headers.get("etag")).toBe('W/"v2"');
    expect(await renamed.json()).toMatchObject({
      name: "Dev",
      key: "development",
      sdkKey: development.sdkKey,
      version: 2,
    });
    const stale = await api("PATCH", `/environments/${development.id}`, {
      body: { name: "Stale" },
      headers: { "if-match": 'W/"v1"' },
    });
    expect(stale.status).toBe(409);
    expect(
      (await api("PATCH", `/environments/${development.id}`, { body: { key: "prod" } })).status,
    ).toBe(422);
  });

  it("DELETE: never production, not while running, else removes it and its datafiles", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const development = project.environments.find((e) => e.key === "development")!;
    const refused = await api("DELETE", `/environments/${production.id}`);
    expect(refused.status).toBe(409);
    expect((await refused.json<ApiErrorBody>()).error.message).toMatch(/production/);

    const experimentId = await seedExperiment(project, "Not started");
    await env.DB.prepare("UPDATE experiment_status SET status = 'Running' WHERE environment_id = ?")
      .bind(development.id)
      .run();
    expect((await api("DELETE", `/environments/${development.id}`)).status).toBe(409);
    await env.DB.prepare("UPDATE experiment_status SET status = 'Paused' WHERE environment_id = ?")
      .bind(development.id)
      .run();

    await env.DATAFILES.put(datafileKey(development.sdkKey), "{}");
    expect((await api("DELETE", `/environments/${development.id}`)).status).toBe(204);
    expect((await api("GET", `/environments/${development.id}`)).status).toBe(404);
    expect(await env.DATAFILES.get(datafileKey(development.sdkKey))).toBeNull();
    const status = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM experiment_status WHERE experiment_id = ?",
    )
      .bind(experimentId)
      .first<{ n: number }>();
    expect(status?.n).toBe(1);
  });
});

describe("audit log", () => {
  it("records who did what, newest first, paginated", async () => {
    const admin = await createToken("admin", { name: "ops bot" });
    const project = await createProject("audited", { token: admin.token });
    await apiJson("PATCH", `/projects/${project.id}`, 200, { body: { description: "x" } });
    const staging = await apiJson<EnvironmentJson>(
      "POST",
      `/projects/${project.id}/environments`,
      201,
      {
        body: { key: "staging", name: "Staging" },
        token: admin.token,
      },
    );
    expect((await api("DELETE", `/environments/${staging.id}`)).status).toBe(204);
    expect((await api("GET", `/environments/${staging.id}`)).status).toBe(404);

    const log = await apiJson<Page<AuditEntry>>("GET", `/projects/${project.id}/audit-log`, 200);
    expect(log.nextCursor).toBeNull();
    expect(log.items.map((e) => `${e.action} ${e.resourceType}`)).toEqual([
      "delete environment",
      "create environment",
      "update project",
      "create project",
    ]);
    const [deleted, created, updated, createdProject] = log.items as [
      AuditEntry,
      AuditEntry,
      AuditEntry,
      AuditEntry,
    ];
    expect(createdProject).toMatchObject({
      actor: { id: admin.id, name: "ops bot" },
      resourceId: project.id,
      projectId: project.id,
      details: {
        name: "audited",
        environments: project.environments.map((e) => ({ id: e.id, key: e.key })),
      },
    });
    expect(updated).toMatchObject({
      actor: { id: "admin-token", name: "ADMIN_TOKEN" },
      details: { fields: ["description"] },
    });
    expect(created).toMatchObject({
      resourceId: staging.id,
      details: { key: "staging" },
      actor: { id: admin.id },
    });
    expect(deleted).toMatchObject({ resourceId: staging.id, actor: { id: "admin-token" } });
    for (const e of log.items) expect(Date.parse(e.at)).not.toBeNaN();

    // Page by page with limit=1: the same entries, in the same order.
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Page<AuditEntry> = await apiJson(
        "GET",
        `/projects/${project.id}/audit-log?limit=1${cursor ? `&cursor=${cursor}` : ""}`,
        200,
      );
      paged.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
    } while (cursor !== null);
    expect(paged).toEqual(log.items.map((e) => e.id));

    const filtered = await apiJson<Page<AuditEntry>>(
      "GET",
      `/projects/${project.id}/audit-log?resourceType=environment&resourceId=${staging.id}`,
      200,
    );
    expect(filtered.items.map((e) => e.action)).toEqual(["delete", "create"]);
    expect((await api("GET", "/projects/999999999999/audit-log")).status).toBe(404);
  });

  it("the whole log (admin) includes token changes", async () => {
    const token = await createToken("viewer", { name: "audit me" });
    const log = await apiJson<Page<AuditEntry>>(
      "GET",
      `/audit-log?resourceType=token&resourceId=${token.id}`,
      200,
    );
    expect(log.items).toHaveLength(1);
    expect(log.items[0]).toMatchObject({
      action: "create",
      projectId: null,
      details: { name: "audit me", role: "viewer" },
    });
  });
});

describe("POST /projects with sdkKeys (adopting existing SDK keys)", () => {
  it("keeps the given keys; a taken key is 409 with its path; a bad one 422", async () => {
    const key = `adopted-${crypto.randomUUID().slice(0, 8)}`;
    const project = await apiJson("POST", "/projects", 201, {
      body: { name: "Adopted", sdkKeys: { production: key } },
    });
    const production = project.environments.find((e: { key: string }) => e.key === "production");
    const development = project.environments.find((e: { key: string }) => e.key === "development");
    expect(production.sdkKey).toBe(key);
    expect(development.sdkKey).not.toBe(key);
    expect(production.revision).toBe(0);

    const taken = await apiJson("POST", "/projects", 409, {
      body: { name: "Again", sdkKeys: { development: key } },
    });
    expect(taken.error.details).toMatchObject({ path: "$.body.sdkKeys.development" });

    const bad = await apiJson("POST", "/projects", 422, {
      body: { name: "Bad", sdkKeys: { production: "has space" } },
    });
    expect(bad.error.details[0].path).toBe("$.body.sdkKeys.production");
  });

  it("a key whose datafile KV already holds continues its revisions", async () => {
    const key = `pushed-${crypto.randomUUID().slice(0, 8)}`;
    await env.DATAFILES.put(`datafiles/${key}`, JSON.stringify({ revision: "7" }), {
      metadata: { publishedAt: new Date().toISOString(), revision: 7 },
    });
    const project = await apiJson("POST", "/projects", 201, {
      body: { name: "Pushed before", sdkKeys: { production: key } },
    });
    const production = project.environments.find((e: { key: string }) => e.key === "production");
    expect(production.revision).toBe(7);
    const published = await apiJson("POST", `/environments/${production.id}/publish`, 200);
    expect(published.revision).toBe(8);
    const current = JSON.parse((await env.DATAFILES.get(`datafiles/${key}`))!);
    expect(current.revision).toBe("8");
  });
});
