import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import demo from "../../demo/datafile.json";
import { apiJson, createProject, createToken } from "../helpers/api";

describe("PUT /environments/{id}/datafile (splitstream datafile push)", () => {
  it("publishes a whole datafile as the next revision with the environment's sdkKey", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const result = await apiJson("PUT", `/environments/${production.id}/datafile`, 200, {
      body: demo,
    });
    expect(result).toMatchObject({ revision: 1, changed: true, sdkKey: production.sdkKey });
    const current = JSON.parse((await env.DATAFILES.get(`datafiles/${production.sdkKey}`))!);
    expect(current).toMatchObject({ sdkKey: production.sdkKey, revision: "1" });
    expect(current.experiments.map((e: { key: string }) => e.key)).toEqual(
      demo.experiments.map((e) => e.key),
    );
    expect(await env.DATAFILES.get(`datafiles/${production.sdkKey}/1`)).toBe(
      await env.DATAFILES.get(`datafiles/${production.sdkKey}`),
    );
  });

  it("an invalid datafile → 422 with every problem's JSON path, nothing written", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const broken = structuredClone(demo) as Record<string, unknown> & {
      experiments: Array<Record<string, unknown>>;
    };
    broken.experiments[0]!.trafficAllocation = [{ entityId: "nope", endOfRange: 10000 }];
    const body = await apiJson("PUT", `/environments/${production.id}/datafile`, 422, {
      body: broken,
    });
    expect(body.error.code).toBe("datafile_invalid");
    expect(JSON.stringify(body.error.details)).toContain(
      "$.experiments[0].trafficAllocation[0].entityId",
    );
    expect(await env.DATAFILES.get(`datafiles/${production.sdkKey}`)).toBeNull();
  });

  it("needs an admin token", async () => {
    const project = await createProject();
    const editor = await createToken("editor");
    await apiJson("PUT", `/environments/${project.environments[0]!.id}/datafile`, 403, {
      body: demo,
      token: editor.token,
    });
  });
});

describe("datafile push into a project with records", () => {
  it("is refused with 409 and the import offered; the published datafile is untouched", async () => {
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    await apiJson("POST", `/projects/${project.id}/attributes`, 201, {
      body: { key: "plan", name: "Plan" },
    });
    const before = await env.DATAFILES.get(`datafiles/${production.sdkKey}`, "text");
    const body = await apiJson("PUT", `/environments/${production.id}/datafile`, 409, {
      body: demo,
    });
    expect(body.error.code).toBe("conflict");
    expect(body.error.message).toMatch(/management records.*datafile\/import/);
    expect(body.error.details).toEqual({
      records: 1,
      importPath: `/environments/${production.id}/datafile/import`,
    });
    expect(await env.DATAFILES.get(`datafiles/${production.sdkKey}`, "text")).toBe(before);
  });
});
