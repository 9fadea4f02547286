/**
 * Approvals (docs/approvals.md): in a review-required environment an editor's change to a live
 * experiment, and an editor's start or resume there, become pending change requests; another
 * editor or an admin approves (applied, published, audited) or rejects them. Through the Worker's
 * own fetch handler, against the real D1 and KV.
 */
import { env, exports } from "cloudflare:workers";
import { beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { applyExperimentAction } from "../../src/api/services/experiment-lifecycle";
import { runSchedules } from "../../src/api/services/schedule-run";
import { GUARDRAIL_ACTOR } from "../../src/api/services/guardrails";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let editor: { id: string; token: string };
let reviewer: { id: string; token: string };
let viewer: { id: string; token: string };
let project: ProjectWithEnvironments;
let page: { id: string };
let event: { id: string };

const environment = (key: string) => project.environments.find((e) => e.key === key)!;

beforeAll(async () => {
  editor = await createToken("editor", { name: "Erin (editor)" });
  reviewer = await createToken("editor", { name: "Rae (reviewer)" });
  viewer = await createToken("viewer");
});

beforeEach(async () => {
  project = await createProject();
  page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "home", conditions: ["or", { match: "simple", value: "https://shop.example/" }] },
  });
  event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "purchase", type: "custom" },
  });
  // Production requires review; development does not.
  await apiJson("PATCH", `/environments/${environment("production").id}`, 200, {
    body: { requireReview: true },
  });
});

async function createExperiment(key = "headline"): Promise<Json> {
  return apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key,
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: [
        { key: "control", weight: 5000 },
        { key: "bold", weight: 5000 },
      ],
    },
  });
}

/** An experiment Running in production (started by the admin token, which applies directly). */
async function runningExperiment(key = "headline"): Promise<Json> {
  const experiment = await createExperiment(key);
  await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
    body: { environment: "production" },
  });
  return apiJson("GET", `/experiments/${experiment.id}`, 200);
}

/** The current datafile text of an environment in KV. */
async function kvDatafile(key = "production"): Promise<string> {
  const text = await env.DATAFILES.get(`datafiles/${environment(key).sdkKey}`);
  expect(text).not.toBeNull();
  return text!;
}

/** The datafile as `/_ss/datafiles/{sdkKey}.json` serves it. */
async function servedDatafile(key = "production"): Promise<string> {
  resetDatafileStore();
  const response = await exports.default.fetch(
    `http://localhost/_ss/datafiles/${environment(key).sdkKey}.json`,
  );
  expect(response.status).toBe(200);
  return response.text();
}

function trafficIn(datafile: string, experimentId: string): number | undefined {
  const parsed = JSON.parse(datafile) as Json;
  const experiment = parsed.experiments.find((x: Json) => x.id === experimentId);
  const allocation = experiment?.trafficAllocation as Array<{ endOfRange: number }> | undefined;
  return allocation?.[allocation.length - 1]?.endOfRange;
}

async function expectError(response: Response, status: number, code: string): Promise<Json> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  const body = JSON.parse(text) as ApiErrorBody;
  expect(body.error.code).toBe(code);
  return body;
}

async function auditOf(resourceId: string): Promise<Json[]> {
  const page = await apiJson(
    "GET",
    `/projects/${project.id}/audit-log?resourceId=${resourceId}&limit=50`,
    200,
  );
  return page.items;
}

describe("requireReview on environments", () => {
  it("is false by default, set by admins only, and audited", async () => {
    const fresh = await createProject();
    expect(fresh.environments.every((e) => e.requireReview === false)).toBe(true);
    const development = fresh.environments.find((e) => e.key === "development")!;
    await expectError(
      await api("PATCH", `/environments/${development.id}`, {
        token: editor.token,
        body: { requireReview: true },
      }),
      403,
      "forbidden",
    );
    await expectError(
      await api("PATCH", `/environments/${development.id}`, { body: { requireReview: "yes" } }),
      422,
      "validation_failed",
    );
    const changed = await apiJson("PATCH", `/environments/${development.id}`, 200, {
      body: { requireReview: true },
    });
    expect(changed.requireReview).toBe(true);
    expect((await apiJson("GET", `/environments/${development.id}`, 200)).requireReview).toBe(true);
    const entries = await apiJson(
      "GET",
      `/projects/${fresh.id}/audit-log?resourceId=${development.id}`,
      200,
    );
    expect(entries.items[0]).toMatchObject({
      action: "update",
      actor: { id: "admin-token" },
      details: { fields: ["requireReview"], requireReview: true },
    });
  });
});

describe("an editor's change to a running experiment in a review-required environment", () => {
  it("waits for review, is not published, and another editor's approval applies it", async () => {
    const experiment = await runningExperiment();
    const before = await kvDatafile();
    const servedBefore = await servedDatafile();
    expect(trafficIn(before, experiment.id)).toBe(10000);

    const response = await api("PATCH", `/experiments/${experiment.id}`, {
      token: editor.token,
      body: { traffic: 2500 },
      headers: { "if-match": `W/"v${experiment.version}"` },
    });
    expect(response.status).toBe(202);
    const pending = (await response.json()) as Json;
    expect(pending.changeRequest).toMatchObject({
      experimentId: experiment.id,
      experimentKey: "headline",
      kind: "update",
      environments: ["production"],
      payload: { traffic: 2500 },
      baseVersion: experiment.version,
      status: "pending",
      stale: false,
      requestedBy: editor.id,
      requestedByName: "Erin (editor)",
      decidedBy: null,
    });
    expect(response.headers.get("location")).toBe(
      `/_ss/api/v1/change-requests/${pending.changeRequest.id}`,
    );
    expect(pending.message).toContain("waits for review");
    // Nothing changed: the experiment, the datafile in KV and the one the edge serves.
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.traffic).toBe(10000);
    expect(after.version).toBe(experiment.version);
    expect(await kvDatafile()).toBe(before);
    expect(await servedDatafile()).toBe(servedBefore);

    const id = pending.changeRequest.id as string;
    // Listed as pending (viewers can read).
    const listed = await apiJson(
      "GET",
      `/projects/${project.id}/change-requests?status=pending`,
      200,
      { token: viewer.token },
    );
    expect(listed.items.map((r: Json) => r.id)).toEqual([id]);

    // The requester cannot approve (nor reject) their own request; a viewer cannot approve.
    const own = await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: editor.token }),
      403,
      "forbidden",
    );
    expect(own.error.message).toContain("cannot approve your own change request");
    await expectError(
      await api("POST", `/change-requests/${id}/reject`, { token: editor.token }),
      403,
      "forbidden",
    );
    await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: viewer.token }),
      403,
      "forbidden",
    );
    expect(await kvDatafile()).toBe(before);

    // Another editor approves: applied as a direct change, a new revision published.
    const approved = await apiJson("POST", `/change-requests/${id}/approve`, 200, {
      token: reviewer.token,
      body: { comment: "looks right" },
    });
    expect(approved.changeRequest).toMatchObject({
      status: "approved",
      decidedBy: reviewer.id,
      decidedByName: "Rae (reviewer)",
      comment: "looks right",
    });
    expect(approved.experiment.traffic).toBe(2500);
    expect(approved.experiment.version).toBe(experiment.version + 1);
    const production = approved.published.find((p: Json) => p.environmentKey === "production");
    expect(production.changed).toBe(true);
    const published = await kvDatafile();
    expect(JSON.parse(published).revision).toBe(String(production.revision));
    expect(trafficIn(published, experiment.id)).toBe(2500);
    expect(trafficIn(await servedDatafile(), experiment.id)).toBe(2500);

    // Decided once.
    await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      409,
      "conflict",
    );

    // Audited: the request by the editor, the approval and the applied change by the reviewer.
    const requestEntries = await auditOf(id);
    expect(requestEntries.map((e: Json) => [e.action, e.actor.id])).toEqual([
      ["approve", reviewer.id],
      ["request", editor.id],
    ]);
    expect(requestEntries[0].details).toMatchObject({
      requestedBy: editor.id,
      comment: "looks right",
      kind: "update",
    });
    const update = (await auditOf(experiment.id)).find((e: Json) => e.action === "update");
    expect(update).toMatchObject({
      actor: { id: reviewer.id },
      details: { fields: ["traffic"], changeRequest: id, requestedBy: editor.id },
    });
  });

  it("a rejection leaves the experiment and the datafile unchanged, and is audited", async () => {
    const experiment = await runningExperiment();
    const before = await kvDatafile();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { name: "Renamed" },
    });
    const id = pending.changeRequest.id as string;
    const rejected = await apiJson("POST", `/change-requests/${id}/reject`, 200, {
      token: reviewer.token,
      body: { comment: "not during the sale" },
    });
    expect(rejected).toMatchObject({
      status: "rejected",
      decidedBy: reviewer.id,
      comment: "not during the sale",
    });
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).name).toBe(experiment.name);
    expect(await kvDatafile()).toBe(before);
    await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      409,
      "conflict",
    );
    expect((await auditOf(id)).map((e: Json) => [e.action, e.actor.id, e.details.comment])).toEqual(
      [
        ["reject", reviewer.id, "not during the sale"],
        ["request", editor.id, undefined],
      ],
    );
  });

  it("refuses a stale approval (the experiment changed since) and keeps the request pending", async () => {
    const experiment = await runningExperiment();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { traffic: 5000 },
    });
    const id = pending.changeRequest.id as string;
    // An admin changes the experiment directly meanwhile.
    await apiJson("PATCH", `/experiments/${experiment.id}`, 200, { body: { name: "Admin's" } });
    const before = await kvDatafile();
    const stale = await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      409,
      "stale_change_request",
    );
    expect(stale.error.details).toEqual({
      baseVersion: experiment.version,
      currentVersion: experiment.version + 1,
    });
    expect(await kvDatafile()).toBe(before);
    const request = await apiJson("GET", `/change-requests/${id}`, 200);
    expect(request).toMatchObject({ status: "pending", stale: true });
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).traffic).toBe(10000);
    expect((await auditOf(id)).map((e: Json) => e.action)).toEqual(["request"]);
  });

  it("an approval whose change applied stays approved when reading the request back fails", async () => {
    const experiment = await runningExperiment();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { traffic: 3000 },
    });
    const id = pending.changeRequest.id as string;
    // D1 fails every read of the request after the approval's claim: the change is applied by
    // then, and must not be offered for approval again.
    const prepare = env.DB.prepare.bind(env.DB);
    let claimed = false;
    const spy = vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
      if (sql.startsWith("UPDATE change_requests SET status")) claimed = true;
      else if (claimed && sql === "SELECT * FROM change_requests WHERE id = ?")
        throw new Error("d1 unreachable");
      return prepare(sql);
    });
    let approved: Json;
    try {
      approved = await apiJson("POST", `/change-requests/${id}/approve`, 200, {
        token: reviewer.token,
      });
    } finally {
      spy.mockRestore();
    }
    expect(approved.changeRequest).toMatchObject({ id, status: "approved" });
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).traffic).toBe(3000);
    expect(await apiJson("GET", `/change-requests/${id}`, 200)).toMatchObject({
      status: "approved",
    });
    await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      409,
      "conflict",
    );
    expect((await auditOf(id)).map((e: Json) => e.action)).toEqual(["approve", "request"]);
  });

  it("two approvers at once apply the change once", async () => {
    const experiment = await runningExperiment();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { traffic: 4000 },
    });
    const id = pending.changeRequest.id as string;
    const responses = await Promise.all([
      api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      api("POST", `/change-requests/${id}/approve`),
    ]);
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 409]);
    const after = await apiJson("GET", `/experiments/${experiment.id}`, 200);
    expect(after.version).toBe(experiment.version + 1);
    expect(after.traffic).toBe(4000);
    const entries = await auditOf(experiment.id);
    expect(entries.filter((e: Json) => e.action === "update")).toHaveLength(1);
    expect((await auditOf(id)).filter((e: Json) => e.action === "approve")).toHaveLength(1);
  });

  it("the requester may withdraw; no one else may", async () => {
    const experiment = await runningExperiment();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { traffic: 100 },
    });
    const id = pending.changeRequest.id as string;
    await expectError(
      await api("POST", `/change-requests/${id}/withdraw`, { token: reviewer.token }),
      403,
      "forbidden",
    );
    const withdrawn = await apiJson("POST", `/change-requests/${id}/withdraw`, 200, {
      token: editor.token,
    });
    expect(withdrawn).toMatchObject({ status: "withdrawn", decidedBy: editor.id });
    expect((await auditOf(id)).map((e: Json) => e.action)).toEqual(["withdraw", "request"]);
    await expectError(
      await api("POST", `/change-requests/${id}/approve`, { token: reviewer.token }),
      409,
      "conflict",
    );
  });

  it("an invalid change is refused with 422 and records no request", async () => {
    const experiment = await runningExperiment();
    await expectError(
      await api("PATCH", `/experiments/${experiment.id}`, {
        token: editor.token,
        body: { traffic: 2 ** 53 },
      }),
      422,
      "validation_failed",
    );
    const listed = await apiJson("GET", `/projects/${project.id}/change-requests`, 200);
    expect(listed.items).toEqual([]);
  });
});

describe("what applies directly", () => {
  it("admins' changes, and editors' changes where no live environment requires review", async () => {
    const experiment = await runningExperiment();
    // The admin token applies directly, audited as such.
    const direct = await apiJson("PATCH", `/experiments/${experiment.id}`, 200, {
      body: { traffic: 9000 },
    });
    expect(direct.traffic).toBe(9000);
    expect(trafficIn(await kvDatafile(), experiment.id)).toBe(9000);

    // Running only in development (no review there): the editor's change applies directly.
    const other = await createExperiment("other");
    await apiJson("POST", `/experiments/${other.id}/start`, 200, {
      token: editor.token,
      body: { environment: "development" },
    });
    const changed = await apiJson("PATCH", `/experiments/${other.id}`, 200, {
      token: editor.token,
      body: { traffic: 3000 },
    });
    expect(changed.traffic).toBe(3000);
    expect(trafficIn(await kvDatafile("development"), other.id)).toBe(3000);
    // Not started in production: editing a draft needs no review either.
    const draft = await createExperiment("draft");
    await apiJson("PATCH", `/experiments/${draft.id}`, 200, {
      token: editor.token,
      body: { name: "Draft" },
    });
    const listed = await apiJson("GET", `/projects/${project.id}/change-requests`, 200);
    expect(listed.items).toEqual([]);
  });

  it("pausing never waits: an editor's pause and a guardrail pause apply directly", async () => {
    const experiment = await runningExperiment();
    const paused = await apiJson("POST", `/experiments/${experiment.id}/pause`, 200, {
      token: editor.token,
      body: { environment: "production" },
    });
    expect(paused.status).toBe("Paused");

    const second = await runningExperiment("second");
    const result = await applyExperimentAction(env, GUARDRAIL_ACTOR, {
      id: second.id,
      action: "pause",
      environment: "production",
    });
    expect(result).toMatchObject({ status: "Paused", previousStatus: "Running" });
    const datafile = JSON.parse(await kvDatafile()) as Json;
    expect(datafile.experiments.find((x: Json) => x.id === second.id).status).toBe("Paused");
  });
});

describe("an editor's start or resume in a review-required environment", () => {
  it("waits for review; the approval starts it; resume does too", async () => {
    const experiment = await createExperiment();
    const before = await kvDatafile();
    const response = await api("POST", `/experiments/${experiment.id}/start`, {
      token: editor.token,
      body: { environment: "production" },
    });
    expect(response.status).toBe(202);
    const pending = (await response.json()) as Json;
    expect(pending.changeRequest).toMatchObject({
      kind: "start",
      environments: ["production"],
      payload: { environment: "production" },
      status: "pending",
    });
    expect(await kvDatafile()).toBe(before);
    const statuses = (await apiJson("GET", `/experiments/${experiment.id}`, 200)).status;
    expect(statuses.production).toBe("Not started");

    const approved = await apiJson(
      "POST",
      `/change-requests/${pending.changeRequest.id}/approve`,
      200,
      { token: reviewer.token },
    );
    expect(approved.experiment.status.production).toBe("Running");
    const datafile = JSON.parse(await kvDatafile()) as Json;
    expect(datafile.experiments.find((x: Json) => x.id === experiment.id).status).toBe("Running");
    const start = (await auditOf(experiment.id)).find((e: Json) => e.action === "start");
    expect(start).toMatchObject({
      actor: { id: reviewer.id },
      details: { changeRequest: pending.changeRequest.id, requestedBy: editor.id },
    });

    // Paused by the editor (directly), resumed by the editor: that waits again.
    await apiJson("POST", `/experiments/${experiment.id}/pause`, 200, { token: editor.token });
    const resume = await apiJson("POST", `/experiments/${experiment.id}/resume`, 202, {
      token: editor.token,
    });
    expect(resume.changeRequest.kind).toBe("resume");
    // The same request again is the pending one, not a second.
    const again = await apiJson("POST", `/experiments/${experiment.id}/resume`, 202, {
      token: editor.token,
    });
    expect(again.changeRequest.id).toBe(resume.changeRequest.id);
    const pendingNow = await apiJson(
      "GET",
      `/projects/${project.id}/change-requests?status=pending&experimentId=${experiment.id}`,
      200,
    );
    expect(pendingNow.items).toHaveLength(1);
    // A refused action (it is not Running) answers 409, not a request.
    await expectError(
      await api("POST", `/experiments/${experiment.id}/pause`, { token: editor.token }),
      409,
      "conflict",
    );
  });
});

describe("paths with no request form of their own", () => {
  it("an editor cannot schedule past review: a start or resume there, or a traffic step; pauses and admins can", async () => {
    const experiment = await createExperiment("scheduled");
    const at = (minutes: number) =>
      new Date(Math.ceil(Date.now() / 60_000) * 60_000 + minutes * 60_000).toISOString();
    const schedule = (environmentKey: string, steps: Json[], token?: string) =>
      api("PUT", `/experiments/${experiment.id}/schedules/${environmentKey}`, {
        ...(token === undefined ? {} : { token }),
        body: { steps },
      });
    const start = await schedule("production", [{ at: at(10), action: "start" }], editor.token);
    const refusal = await expectError(start, 403, "forbidden");
    expect(refusal.error.message).toContain("requires review");
    await expectError(
      await schedule("development", [{ at: at(10), action: "traffic", percent: 50 }], editor.token),
      403,
      "forbidden",
    );
    // Where review is not required, an editor schedules a start; a pause anywhere.
    expect(
      (await schedule("development", [{ at: at(10), action: "start" }], editor.token)).status,
    ).toBe(200);
    expect(
      (await schedule("production", [{ at: at(20), action: "pause" }], editor.token)).status,
    ).toBe(200);
    // An admin schedules the start in production (the schedule runs it without review).
    expect((await schedule("production", [{ at: at(10), action: "start" }])).status).toBe(200);
  });

  it("an editor cannot change what a live experiment uses: its page, audience, list, group; an admin can", async () => {
    const experiment = await runningExperiment("uses");
    const before = await kvDatafile();
    const pagePatch = await api("PATCH", `/pages/${page.id}`, {
      token: editor.token,
      body: { conditions: ["or", { match: "simple", value: "https://shop.example/other" }] },
    });
    const refusal = await expectError(pagePatch, 403, "forbidden");
    expect(refusal.error.message).toContain(`used by experiment uses, live in production`);
    expect(await kvDatafile()).toBe(before);

    // An audience (and a list it reads) the experiment targets.
    const list = await apiJson("POST", `/projects/${project.id}/lists`, 201, {
      body: { key: "vips", values: ["c-1"] },
    });
    const audience = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
      body: {
        name: "VIPs",
        conditions: [
          "and",
          { type: "custom_attribute", name: "cookie.customer", match: "in_list", value: "vips" },
        ],
      },
    });
    await apiJson("PATCH", `/experiments/${experiment.id}`, 200, {
      body: { audienceConditions: ["or", audience.id] },
    });
    await expectError(
      await api("PATCH", `/audiences/${audience.id}`, {
        token: editor.token,
        body: { name: "Everyone" },
      }),
      403,
      "forbidden",
    );
    await expectError(
      await api("PATCH", `/lists/${list.id}`, { token: editor.token, body: { values: ["b"] } }),
      403,
      "forbidden",
    );
    // An admin changes it; in development (no review) the editor could have.
    expect(
      (
        await api("PATCH", `/pages/${page.id}`, {
          body: { conditions: ["or", { match: "simple", value: "https://shop.example/other" }] },
        })
      ).status,
    ).toBe(200);
  });

  it("a scheduled start makes the experiment live for review; an editor's step is skipped once review is on", async () => {
    const experiment = await createExperiment("later");
    const at = (minutes: number) =>
      new Date(Math.ceil(Date.now() / 60_000) * 60_000 + minutes * 60_000).toISOString();
    // An admin schedules the start in production: the editor's change now waits for review.
    await apiJson("PUT", `/experiments/${experiment.id}/schedules/production`, 200, {
      body: { steps: [{ at: at(10), action: "start" }] },
    });
    const patch = await api("PATCH", `/experiments/${experiment.id}`, {
      token: editor.token,
      body: { traffic: 5000 },
    });
    expect(patch.status).toBe(202);

    // An editor's start in development, written while development needed no review; then review
    // is turned on there: at its time the step is skipped, not run.
    await apiJson("PUT", `/experiments/${experiment.id}/schedules/development`, 200, {
      token: editor.token,
      body: { steps: [{ at: at(10), action: "start" }] },
    });
    await apiJson("PATCH", `/environments/${environment("development").id}`, 200, {
      body: { requireReview: true },
    });
    await runSchedules(env, Date.parse(at(11)));
    const development = await apiJson(
      "GET",
      `/experiments/${experiment.id}/schedules/development`,
      200,
    );
    expect(development.steps[0]).toMatchObject({ status: "skipped" });
    expect(development.steps[0].error).toContain("now requires review");
    expect((await apiJson("GET", `/experiments/${experiment.id}`, 200)).status.development).toBe(
      "Not started",
    );
    // The admin's production start ran.
    const production = await apiJson(
      "GET",
      `/experiments/${experiment.id}/schedules/production`,
      200,
    );
    expect(production.steps[0]).toMatchObject({ status: "done" });
  });

  it("refuse an editor where review is required: serving a winner, importing a datafile", async () => {
    const experiment = await runningExperiment();
    const before = await kvDatafile();
    const serve = await expectError(
      await api("POST", `/experiments/${experiment.id}/serve-winner`, {
        token: editor.token,
        body: { variationId: experiment.variations[1].id },
      }),
      403,
      "forbidden",
    );
    expect(serve.error.message).toContain("review-required environment production");

    // The production datafile imported into development would start the experiment there.
    const development = environment("development").id;
    const dryRun = await apiJson(
      "POST",
      `/environments/${development}/datafile/import?dryRun=true`,
      200,
      { token: editor.token, body: before },
    );
    expect(dryRun.dryRun).toBe(true);
    const refused = await expectError(
      await api("POST", `/environments/${development}/datafile/import`, {
        token: editor.token,
        body: before,
      }),
      403,
      "forbidden",
    );
    expect(refused.error.message).toContain("needs an admin");
    expect(await kvDatafile()).toBe(before);
    const statuses = (await apiJson("GET", `/experiments/${experiment.id}`, 200)).status;
    expect(statuses.development).toBe("Not started");
  });

  it("a headline test's start where production requires review is refused at $.body.start", async () => {
    const body = {
      key: "hero_headline",
      url: { match: "substring", value: "/article/" },
      headlineId: "hero",
      metricEventId: event.id,
      headlines: [{ text: "A" }, { text: "B" }],
      start: true,
    };
    const refused = await expectError(
      await api("POST", `/projects/${project.id}/headline-tests`, { token: editor.token, body }),
      422,
      "validation_failed",
    );
    expect(refused.error.details).toEqual([
      {
        path: "$.body.start",
        message: expect.stringContaining("requires review") as unknown,
      },
    ]);
    // Without start it is created; an admin may create it started.
    const created = await apiJson("POST", `/projects/${project.id}/headline-tests`, 201, {
      token: editor.token,
      body: { ...body, start: undefined },
    });
    expect(created.experiment.status.production).toBe("Not started");
    const started = await apiJson("POST", `/projects/${project.id}/headline-tests`, 201, {
      body: { ...body, key: "hero_headline_2" },
    });
    expect(started.experiment.status.production).toBe("Running");
  });
});

describe("the change-request endpoints' input", () => {
  it("answer 404 for unknown requests and projects, 4xx for bad filters and comments", async () => {
    await expectError(
      await api("POST", "/change-requests/123456789012/approve", { token: reviewer.token }),
      404,
      "not_found",
    );
    await expectError(await api("GET", "/projects/1/change-requests"), 404, "not_found");
    const badStatus = await api("GET", `/projects/${project.id}/change-requests?status=open`);
    expect([400, 422]).toContain(badStatus.status);
    const experiment = await runningExperiment();
    const pending = await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
      token: editor.token,
      body: { traffic: 1 },
    });
    const long = await api("POST", `/change-requests/${pending.changeRequest.id}/reject`, {
      token: reviewer.token,
      body: { comment: "x".repeat(2001) },
    });
    expect([400, 422]).toContain(long.status);
    const extra = await api("POST", `/change-requests/${pending.changeRequest.id}/reject`, {
      token: reviewer.token,
      body: { comment: "no", status: "approved" },
    });
    expect([400, 422]).toContain(extra.status);
    expect((await apiJson("GET", `/change-requests/${pending.changeRequest.id}`, 200)).status).toBe(
      "pending",
    );
  });
});

describe("the change-request list", () => {
  it("is newest first across pages, with ties of time by id; a cursor not from it is 422", async () => {
    const experiment = await runningExperiment();
    for (let i = 0; i < 7; i++)
      await apiJson("PATCH", `/experiments/${experiment.id}`, 202, {
        token: editor.token,
        body: { name: `Headline ${i}` },
      });
    // Two requests made in the same millisecond (written straight into D1): the id decides.
    const [latest] = (await apiJson("GET", `/projects/${project.id}/change-requests?limit=1`, 200))
      .items;
    const sameTime = "2099-01-01T00:00:00.000Z";
    for (const id of ["100000000001", "100000000002"])
      await env.DB.prepare(
        `INSERT INTO change_requests (id, project_id, experiment_id, kind, environments, payload,
           base_version, status, requested_by, requested_by_name, created_at)
         SELECT ?1, project_id, experiment_id, kind, environments, payload, base_version, status,
           requested_by, requested_by_name, ?3 FROM change_requests WHERE id = ?2`,
      )
        .bind(id, latest.id, sameTime)
        .run();

    const seen: Json[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const body: Json = await apiJson(
        "GET",
        `/projects/${project.id}/change-requests?limit=3${query}`,
        200,
      );
      expect(body.items.length).toBeLessThanOrEqual(3);
      seen.push(...body.items);
      cursor = body.nextCursor;
      if (cursor === null) break;
    }
    expect(seen).toHaveLength(9);
    expect(new Set(seen.map((r) => r.id)).size).toBe(9);
    expect(seen.slice(0, 2).map((r) => r.id)).toEqual(["100000000002", "100000000001"]);
    // Each after the one before it: an earlier time, or the same time and a smaller id.
    for (let i = 1; i < seen.length; i++) {
      const [before, after] = [seen[i - 1], seen[i]];
      expect(
        after.createdAt < before.createdAt ||
          (after.createdAt === before.createdAt && after.id < before.id),
        `${before.createdAt} ${before.id} then ${after.createdAt} ${after.id}`,
      ).toBe(true);
    }
    expect(new Set(seen.slice(2).map((r) => r.payload.name))).toEqual(
      new Set([0, 1, 2, 3, 4, 5, 6].map((i) => `Headline ${i}`)),
    );

    // An id alone (the list's cursor before it was newest first), garbage, or a forged time.
    const encode = (text: string) => btoa(text).replace(/=+$/, "");
    for (const bad of [encode(latest.id), "not-base64!", encode(`yesterday ${latest.id}`)]) {
      const response = await api(
        "GET",
        `/projects/${project.id}/change-requests?cursor=${encodeURIComponent(bad)}`,
      );
      const body = await expectError(response, 422, "validation_failed");
      expect(body.error.details?.[0]?.path ?? JSON.stringify(body)).toBe("$.query.cursor");
    }
  });
});
