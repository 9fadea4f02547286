/**
 * `POST /environments/{id}/datafile/import` through the Worker, with real D1 and KV: the demo
 * datafile becomes records the API lists, the published datafile decides every visitor as the
 * file did, a second import writes nothing, a dry run writes nothing, and bad input changes
 * nothing.
 */
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import demo from "../../demo/datafile.json";
import { decideAllFlags, decideExperiment, loadDatafile } from "../../src/core/index";
import { flagDatafile } from "../helpers/flag-datafile";
import { api, apiJson, createProject, createToken } from "../helpers/api";

async function production() {
  const project = await createProject();
  const environment = project.environments.find((e) => e.key === "production")!;
  return { project, environment };
}

// Record ids are global (they are kept on import so bucketing does not change), so the demo file
// is imported into one project, which the tests below share in order.
let imported: Awaited<ReturnType<typeof production>> | undefined;
async function demoProject() {
  if (!imported) {
    imported = await production();
    await apiJson("POST", importPath(imported.environment.id), 200, { body: demo });
  }
  return imported;
}

const importPath = (environmentId: string, dryRun = false) =>
  `/environments/${environmentId}/datafile/import${dryRun ? "?dryRun=true" : ""}`;

async function auditCount(projectId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM audit_log WHERE project_id = ?")
    .bind(projectId)
    .first<{ n: number }>();
  return row?.n ?? 0;
}

describe("datafile import", () => {
  it("imports the demo datafile: records listed, statuses set, one publish that buckets as before", async () => {
    const { project, environment } = await production();
    imported = { project, environment };
    const summary = await apiJson("POST", importPath(environment.id), 200, { body: demo });
    expect(summary.dryRun).toBe(false);
    expect(summary.changes.experiments.created).toHaveLength(8);
    expect(summary.changes.pages.created).toHaveLength(demo.web.pages.length);
    expect(summary.statuses).toHaveLength(8);
    expect(summary.published).toHaveLength(2);

    const listed = await apiJson("GET", `/projects/${project.id}/experiments?limit=50`, 200);
    expect(listed.items.map((x: { key: string }) => x.key).sort()).toEqual(
      [...demo.experiments, ...demo.groups.flatMap((g) => g.experiments)].map((x) => x.key).sort(),
    );
    const home = listed.items.find((x: { key: string }) => x.key === "home_hero");
    expect(home.id).toBe("1001");

    // The published production datafile decides like the file.
    const text = await env.DATAFILES.get(`datafiles/${environment.sdkKey}`, "text");
    const published = loadDatafile(JSON.parse(text!));
    const original = loadDatafile(demo);
    if (!published.ok || !original.ok) throw new Error("datafile did not load");
    for (let i = 0; i < 300; i++) {
      for (const x of original.compiled.experiments) {
        const visitor = { visitorId: `v${i}`, attributes: {} };
        expect(decideExperiment(published.compiled, x.key, visitor).variationKey).toBe(
          decideExperiment(original.compiled, x.key, visitor).variationKey,
        );
      }
    }
    // Development keeps its own statuses: the file's statuses are set in production only.
    const dev = project.environments.find((e) => e.key === "development")!;
    const devText = await env.DATAFILES.get(`datafiles/${dev.sdkKey}`, "text");
    const devFile = JSON.parse(devText!) as { experiments: Array<{ status: string }> };
    expect(new Set(devFile.experiments.map((x) => x.status))).toEqual(new Set(["Not started"]));
  });

  it("a second import of the same file changes and publishes nothing", async () => {
    const { project, environment } = await demoProject();
    const audits = await auditCount(project.id);
    const again = await apiJson("POST", importPath(environment.id), 200, { body: demo });
    expect(again.changes.experiments).toEqual({ created: [], updated: [], unchanged: 8 });
    expect(again.statuses).toEqual([]);
    expect(again.published).toEqual([]);
    expect(await auditCount(project.id)).toBe(audits);
  });

  it("a dry run reports what would change and writes nothing", async () => {
    const { project, environment } = await demoProject();
    const edited = structuredClone(demo);
    edited.web.experiments[0]!.variations[1]!.changes = [
      {
        type: "attribute",
        selector: "h1",
        attributes: { text: "Imported" },
      } as never,
    ];
    const audits = await auditCount(project.id);
    const before = await env.DATAFILES.get(`datafiles/${environment.sdkKey}`, "text");
    const dry = await apiJson("POST", importPath(environment.id, true), 200, { body: edited });
    expect(dry.dryRun).toBe(true);
    expect(dry.changes.experiments.updated).toEqual([
      { key: "home_hero", columns: ["variations"] },
    ]);
    expect(dry.published).toEqual([]);
    expect(await auditCount(project.id)).toBe(audits);
    expect(await env.DATAFILES.get(`datafiles/${environment.sdkKey}`, "text")).toBe(before);

    const real = await apiJson("POST", importPath(environment.id), 200, { body: edited });
    expect(real.changes.experiments.updated).toEqual([
      { key: "home_hero", columns: ["variations"] },
    ]);
    const x = await apiJson("GET", "/experiments/1001", 200);
    expect(x.version).toBe(2);
    expect(JSON.stringify(x)).toContain("Imported");
  });

  it("an invalid datafile is refused with its paths and changes nothing", async () => {
    const { project, environment } = await production();
    const broken = structuredClone(demo) as Record<string, unknown>;
    (broken.experiments as Array<Record<string, unknown>>)[0]!.trafficAllocation = "all";
    const response = await api("POST", importPath(environment.id), { body: broken });
    expect(response.status).toBe(422);
    const body = await response.json<{
      error: { code: string; details: { problems: Array<{ path: string }> } };
    }>();
    expect(body.error.code).toBe("datafile_invalid");
    expect(body.error.details.problems.map((p) => p.path)).toContain(
      "$.experiments[0].trafficAllocation",
    );
    const listed = await apiJson("GET", `/projects/${project.id}/experiments`, 200);
    expect(listed.items).toEqual([]);
  });

  it("the same file into a second project is refused: its ids belong to the first", async () => {
    await demoProject();
    const { project, environment } = await production();
    const response = await api("POST", importPath(environment.id), { body: demo });
    expect(response.status).toBe(422);
    const body = await response.json<{
      error: { details: { problems: Array<{ path: string; message: string }> } };
    }>();
    expect(body.error.details.problems).toContainEqual(
      expect.objectContaining({
        path: "$.experiments[0]",
        message: expect.stringMatching(/id 1001 is used by another project/),
      }),
    );
    const listed = await apiJson("GET", `/projects/${project.id}/experiments`, 200);
    expect(listed.items).toEqual([]);
  });

  it("a viewer may not import (403); an unknown environment is 404", async () => {
    const { environment } = await production();
    const viewer = await createToken("viewer");
    const refused = await api("POST", importPath(environment.id), {
      body: demo,
      token: viewer.token,
    });
    expect(refused.status).toBe(403);
    expect((await api("POST", importPath("nope"), { body: demo })).status).toBe(404);
  });
});

describe("datafile import keeps what the file does not carry (review findings)", () => {
  it("re-importing a project's own datafile keeps names, descriptions, caps and list members", async () => {
    const { project, environment } = await production();
    const p = `/projects/${project.id}`;
    const page = await apiJson("POST", `${p}/pages`, 201, {
      body: {
        key: "home",
        name: "Home page",
        conditions: ["or", { match: "substring", value: "/" }],
      },
    });
    const event = await apiJson("POST", `${p}/events`, 201, {
      body: { key: "buy", name: "Buy click", type: "custom", maxPerVisitorPerDay: 3 },
    });
    const list = await apiJson("POST", `${p}/lists`, 201, {
      body: { key: "vip", name: "VIP customers", values: ["a", "b"] },
    });
    const x = await apiJson("POST", `${p}/experiments`, 201, {
      body: {
        key: "checkout_button",
        name: "Checkout button colour",
        description: "Green or blue?",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "control", name: "Blue (today)", weight: 5000 },
          { key: "green", name: "Green", weight: 5000 },
        ],
      },
    });
    // What the edge serves: lists without their members.
    const served = await (
      await exports.default.fetch(`http://localhost/_ss/datafiles/${environment.sdkKey}.json`)
    ).json<Record<string, unknown>>();
    const summary = await apiJson("POST", importPath(environment.id), 200, { body: served });
    for (const table of Object.values(summary.changes) as Array<{ updated: unknown[] }>)
      expect(table.updated, JSON.stringify(summary.changes)).toEqual([]);
    const after = await apiJson("GET", `/experiments/${x.id}`, 200);
    expect(after).toMatchObject({ name: "Checkout button colour", description: "Green or blue?" });
    expect(after.variations.map((v: { name: string }) => v.name)).toEqual([
      "Blue (today)",
      "Green",
    ]);
    expect((await apiJson("GET", `/events/${event.id}`, 200)).maxPerVisitorPerDay).toBe(3);
    expect((await apiJson("GET", `/pages/${page.id}`, 200)).name).toBe("Home page");
    const members = await apiJson("GET", `/lists/${list.id}`, 200);
    expect(members.values ?? members.size ?? members.count).not.toEqual([]);
  });

  it("an archived experiment stays archived: the import is refused with the status path", async () => {
    const { project, environment } = await production();
    const p = `/projects/${project.id}`;
    const event = await apiJson("POST", `${p}/events`, 201, {
      body: { key: "e", name: "e", type: "custom" },
    });
    const page = await apiJson("POST", `${p}/pages`, 201, {
      body: { key: "all", name: "All", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const x = await apiJson("POST", `${p}/experiments`, 201, {
      body: {
        key: "old_test",
        name: "Old",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    const file = JSON.parse(
      (await env.DATAFILES.get(`datafiles/${environment.sdkKey}`, "text"))!,
    ) as { experiments: Array<{ id: string; status: string }> };
    await apiJson("POST", `/experiments/${x.id}/archive`, 200, { body: {} });
    file.experiments.find((e) => e.id === x.id)!.status = "Running";
    const body = await apiJson("POST", importPath(environment.id), 422, { body: file });
    expect(body.error.details.problems).toContainEqual(
      expect.objectContaining({
        path: expect.stringMatching(/\.status$/),
        message: expect.stringMatching(/archived experiments stay archived/),
      }),
    );
  });

  it("a project whose other environment serves a pushed datafile: 409 unless replaceOtherEnvironments", async () => {
    const { project, environment } = await production();
    const development = project.environments.find((e) => e.key === "development")!;
    const pushed = structuredClone(demo) as Record<string, unknown>;
    // A datafile of its own (ids another project holds would refuse the import for that).
    const small = {
      ...pushed,
      experiments: [],
      groups: [],
      events: [],
      featureFlags: [],
      rollouts: [],
      web: { pages: [], experiments: [], events: [], lists: [], integrations: {} },
    };
    await apiJson("PUT", `/environments/${development.id}/datafile`, 200, { body: small });
    const file = {
      ...small,
      attributes: [{ id: `attr_${crypto.randomUUID().slice(0, 8)}`, key: "plan" }],
    };
    const dry = await apiJson("POST", importPath(environment.id, true), 200, { body: file });
    expect(dry.replacesEnvironments).toEqual([
      { environmentId: development.id, environmentKey: "development", revision: 1 },
    ]);
    const refused = await apiJson("POST", importPath(environment.id), 409, { body: file });
    expect(refused.error.message).toMatch(/development \(revision 1\)/);
    const accepted = await apiJson(
      "POST",
      `${importPath(environment.id)}?replaceOtherEnvironments=true`,
      200,
      { body: file },
    );
    expect(accepted.changes.attributes.created).toEqual(["plan"]);
  });

  it("a status change alone moves the experiment's version (its ETag), like start or pause", async () => {
    const { environment } = await demoProject();
    const before = await apiJson("GET", "/experiments/1002", 200);
    const edited = structuredClone(demo);
    edited.experiments.find((e) => e.id === "1002")!.status = "Paused";
    const summary = await apiJson("POST", importPath(environment.id), 200, { body: edited });
    expect(summary.statuses).toEqual([{ experimentId: "1002", from: "Running", to: "Paused" }]);
    const after = await apiJson("GET", "/experiments/1002", 200);
    expect(after.version).toBe(before.version + 1);
    await apiJson("POST", importPath(environment.id), 200, { body: demo });
  });

  it("imports feature flags: flags, A/B rules and this environment's rollout, deciding as before", async () => {
    const { project, environment } = await production();
    const file = flagDatafile(project.id);
    const summary = await apiJson("POST", importPath(environment.id), 200, { body: file });
    expect(summary.changes.flags.created.sort()).toEqual(["checkout", "nav"]);
    const flags = await apiJson("GET", `/projects/${project.id}/flags`, 200);
    const checkout = flags.items.find((f: { key: string }) => f.key === "checkout");
    expect(checkout.experimentIds).toEqual(["501"]);
    expect(checkout.environments.production).toMatchObject({
      enabled: true,
      defaultVariationKey: "off",
    });
    expect(checkout.environments.production.rules.map((r: { key: string }) => r.key)).toEqual([
      "beta",
      "half",
    ]);
    expect(checkout.environments.development.enabled).toBe(false);
    expect(checkout.variations.find((v: { key: string }) => v.key === "on_beta").variables).toEqual(
      { banner: true, max_items: 9007199254740991, config: { a: 2 } },
    );
    const ab = await apiJson("GET", "/experiments/501", 200);
    expect(ab.flagId).toBe(checkout.id);

    const text = await env.DATAFILES.get(`datafiles/${environment.sdkKey}`, "text");
    const published = loadDatafile(JSON.parse(text!));
    const original = loadDatafile(file);
    if (!published.ok || !original.ok) throw new Error("datafile did not load");
    for (let i = 0; i < 500; i++) {
      const visitor = { visitorId: `v${i}`, attributes: { country: i % 2 ? "DE" : "FR" } };
      const [a] = decideAllFlags(original.compiled, visitor);
      const [b] = decideAllFlags(published.compiled, visitor);
      expect([b!.enabled, b!.variationKey, b!.variables]).toEqual([
        a!.enabled,
        a!.variationKey,
        a!.variables,
      ]);
    }
    // Importing again changes nothing.
    const again = await apiJson("POST", importPath(environment.id), 200, { body: file });
    expect(again.changes.flags.created).toEqual([]);
    expect(again.changes.flags.updated).toEqual([]);
  });
});
