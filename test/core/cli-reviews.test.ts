/**
 * `splitstream reviews …` and the "sent to review" answer of an action (src/cli/api-command.ts;
 * docs/approvals.md): what the CLI sends to the API and how it reports. A loopback stand-in
 * answers as the API does; the API itself is tested in test/api/approvals.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";

let api: StandInApi;

const request = {
  id: "700000000001",
  experimentId: "e1",
  experimentKey: "hero",
  kind: "update",
  environments: ["production"],
  payload: { traffic: 2500, name: "Hero" },
  baseVersion: 3,
  stale: false,
  status: "pending",
  requestedBy: "t1",
  requestedByName: "Erin",
};

beforeAll(async () => {
  api = await startStandInApi((req, _body, json) => {
    if (req.url === "/_ss/api/v1/projects/p1/change-requests?limit=200&status=pending")
      return json(200, {
        items: [request, { ...request, id: "700000000002", kind: "start", stale: true }],
        nextCursor: null,
      });
    if (req.url === "/_ss/api/v1/projects/p1/change-requests?limit=200")
      return json(200, { items: [], nextCursor: null });
    if (req.url === "/_ss/api/v1/experiments/e1/start")
      return json(202, {
        changeRequest: { ...request, kind: "start", payload: { environment: "production" } },
        message: "experiment hero is in review-required environment production: the start waits",
      });
    if (req.url === "/_ss/api/v1/change-requests/700000000001/approve")
      return json(200, {
        changeRequest: { ...request, status: "approved" },
        experiment: { id: "e1" },
        published: [
          { environmentKey: "production", revision: 8, changed: true },
          { environmentKey: "development", revision: 4, changed: false },
        ],
      });
    if (req.url === "/_ss/api/v1/change-requests/700000000001/reject")
      return json(200, { ...request, status: "rejected" });
    if (req.url === "/_ss/api/v1/change-requests/700000000003/approve")
      return json(403, {
        error: {
          code: "forbidden",
          message: "you cannot approve your own change request 700000000003",
          details: null,
        },
      });
    return json(404, { error: { code: "not_found", message: "no such route", details: null } });
  });
});
afterAll(() => api.close());

const cli = (args: string[]) =>
  runCli(args, { SPLITSTREAM_API_URL: api.url, SPLITSTREAM_TOKEN: "good" });

describe("splitstream reviews", () => {
  it("lists pending requests with what they ask for, and marks stale ones", async () => {
    const r = await cli(["reviews", "list", "--project", "p1"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/700000000001\s+hero\s+change traffic, name\s+Erin\s+pending\n/);
    expect(r.stdout).toMatch(
      /700000000002\s+hero\s+start in production\s+Erin\s+pending \(stale\)/,
    );
    const all = await cli(["reviews", "list", "--project", "p1", "--status", "all"]);
    expect(all.stdout.trim()).toBe("no change requests");
    const bad = await cli(["reviews", "list", "--project", "p1", "--status", "open"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--status must be one of");
  });

  it("approves with a comment, reports what was published; rejects; shows the API's refusal", async () => {
    const approved = await cli(["reviews", "approve", "700000000001", "--comment", "ok"]);
    expect(approved.code).toBe(0);
    expect(approved.stdout.trim()).toBe(
      "change request 700000000001: approved — published production r8",
    );
    expect(api.seen.at(-1)).toMatchObject({
      method: "POST",
      body: JSON.stringify({ comment: "ok" }),
    });
    const rejected = await cli(["reviews", "reject", "700000000001"]);
    expect(rejected.stdout.trim()).toBe("change request 700000000001: rejected");
    expect(api.seen.at(-1)?.body).toBe("{}");
    const own = await cli(["reviews", "approve", "700000000003"]);
    expect(own.code).not.toBe(0);
    expect(own.stderr).toContain("HTTP 403 forbidden: you cannot approve your own change request");
  });

  it("an action that went to review says so", async () => {
    const r = await cli(["experiments", "start", "e1", "--environment", "production"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("sent to review: change request 700000000001");
  });
});
