/**
 * `splitstream schedules show|set|clear` (docs/schedules.md): what the CLI sends to the
 * management API and how it reports, against a loopback stand-in for the API (the API itself is
 * tested through the real Worker in test/api/schedules.test.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";

let api: StandInApi;

const schedule = (environment: string, steps: unknown[]) => ({
  experimentId: "e1",
  projectId: "p1",
  environment,
  environmentId: `env-${environment}`,
  version: 2,
  updatedAt: "2026-12-06T10:00:00.000Z",
  steps,
});
const done = {
  id: "s1",
  at: "2026-12-06T09:00:00.000Z",
  action: "start",
  percent: null,
  status: "done",
  appliedAt: "2026-12-06T09:00:03.000Z",
  revision: 7,
  error: null,
};
const pending = {
  id: "s2",
  at: "2026-12-24T08:00:00.000Z",
  action: "traffic",
  percent: 50,
  status: "pending",
  appliedAt: null,
  revision: null,
  error: null,
};

beforeAll(async () => {
  api = await startStandInApi((req, body, json) => {
    if (req.url === "/_ss/api/v1/experiments/e1/schedules")
      return json(200, {
        items: [schedule("production", [done, pending]), schedule("development", [])],
      });
    if (req.url === "/_ss/api/v1/experiments/e1/schedules/production" && req.method === "PUT") {
      const sent = JSON.parse(body) as { steps: unknown[] };
      if (sent.steps.length === 0 || (sent.steps[0] as { at: string }).at === "yesterday")
        return json(422, {
          error: {
            code: "validation_failed",
            message: "invalid request body: $.body.steps[0].at: must be in the future",
            details: [{ path: "$.body.steps[0].at", message: "must be in the future" }],
          },
        });
      return json(200, schedule("production", [done, pending]));
    }
    if (req.url === "/_ss/api/v1/experiments/e1/schedules/production")
      return json(200, schedule("production", [done]));
    return json(404, { error: { code: "not_found", message: "no", details: null } });
  });
});
afterAll(() => api.close());

const cli = (args: string[]) =>
  runCli(args, { SPLITSTREAM_API_URL: api.url, SPLITSTREAM_TOKEN: "t" });

describe("splitstream schedules", () => {
  it("shows every environment's schedule, a line per step", async () => {
    const r = await cli(["schedules", "show", "e1"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/production \(version 2\)/);
    expect(r.stdout).toMatch(
      /2026-12-06T09:00:00.000Z\s+start\s+done\s+2026-12-06T09:00:03.000Z\s+r7/,
    );
    expect(r.stdout).toMatch(/2026-12-24T08:00:00.000Z\s+traffic 50 %\s+pending\s+-\s+-/);
    expect(r.stdout).toMatch(/development: no steps/);
    expect(api.seen.at(-1)).toMatchObject({
      method: "GET",
      url: "/_ss/api/v1/experiments/e1/schedules",
    });
  });

  it("sets the steps from AT=ACTION arguments", async () => {
    const r = await cli([
      "schedules",
      "set",
      "e1",
      "--environment",
      "production",
      "2026-12-24T08:00:00Z=traffic:10",
      "2026-12-24T08:00:00Z=start",
      "2026-12-25T08:00:00Z=traffic:50.5",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      method: "PUT",
      url: "/_ss/api/v1/experiments/e1/schedules/production",
    });
    expect(JSON.parse(api.seen.at(-1)!.body)).toEqual({
      steps: [
        { at: "2026-12-24T08:00:00Z", action: "traffic", percent: 10 },
        { at: "2026-12-24T08:00:00Z", action: "start" },
        { at: "2026-12-25T08:00:00Z", action: "traffic", percent: 50.5 },
      ],
    });
    expect(r.stdout).toMatch(/traffic 50 %\s+pending/);
  });

  it("reports the API's refusal with the step's path, and refuses malformed steps itself", async () => {
    const refused = await cli([
      "schedules",
      "set",
      "e1",
      "--environment",
      "production",
      "yesterday=start",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/422 validation_failed/);
    expect(refused.stderr).toMatch(/\$\.body\.steps\[0\]\.at/);

    const before = api.seen.length;
    const malformed = await cli(["schedules", "set", "e1", "--environment", "production", "start"]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/expected AT=ACTION/);
    const noPercent = await cli([
      "schedules",
      "set",
      "e1",
      "--environment",
      "production",
      "2026-12-24T08:00:00Z=traffic:lots",
    ]);
    expect(noPercent.code).toBe(2);
    expect(noPercent.stderr).toMatch(/traffic:PERCENT needs a number/);
    const noEnvironment = await cli(["schedules", "clear", "e1"]);
    expect(noEnvironment.code).toBe(2);
    expect(noEnvironment.stderr).toMatch(/--environment is required/);
    expect(api.seen.length).toBe(before);
  });

  it("clears the pending steps", async () => {
    const r = await cli(["schedules", "clear", "e1", "--environment", "production", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      method: "DELETE",
      url: "/_ss/api/v1/experiments/e1/schedules/production",
    });
    expect(JSON.parse(r.stdout).steps).toEqual([done]);
  });
});
