/**
 * `splitstream webhooks …` against a loopback stand-in for the management API (the API itself is
 * tested through the real Worker in test/api/webhooks.test.ts): what the CLI sends, how it
 * reports (the secret printed once on create), and its usage errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";

let api: StandInApi;

const delivery = {
  id: "d1",
  webhookId: "w1",
  eventId: "e1",
  eventType: "experiment.started",
  status: "delivered",
  attempts: 4,
  lastStatusCode: 200,
  lastError: null,
  createdAt: "2026-12-06T10:00:00.000Z",
  nextAttemptAt: null,
  finishedAt: "2026-12-06T10:36:00.000Z",
};

beforeAll(async () => {
  api = await startStandInApi((req, body, json, res) => {
    const path = req.url!.replace(/\?.*$/, "");
    if (path === "/_ss/api/v1/projects/p1/webhooks" && req.method === "POST")
      return json(201, { id: "w1", ...JSON.parse(body), secret: "whsec_abc" });
    if (path === "/_ss/api/v1/projects/p1/webhooks")
      return json(200, {
        items: [
          {
            id: "w1",
            name: "Slack",
            url: "https://hooks.example/x",
            format: "slack",
            events: ["*"],
            enabled: true,
          },
        ],
        nextCursor: null,
      });
    if (path === "/_ss/api/v1/webhooks/w1/test")
      return json(202, { ...delivery, eventType: "webhook.test", status: "pending" });
    if (path === "/_ss/api/v1/webhooks/w1/deliveries")
      return json(200, { items: [delivery], nextCursor: null });
    if (path === "/_ss/api/v1/webhook-deliveries/d1")
      return json(200, {
        ...delivery,
        body: "{}",
        attemptLog: [500, 500, 500, 200].map((statusCode, i) => ({
          attempt: i + 1,
          at: delivery.createdAt,
          statusCode,
          error: statusCode === 200 ? null : `the receiver answered ${statusCode}`,
          durationMs: 12,
          response: "",
        })),
      });
    if (path === "/_ss/api/v1/webhooks/w1" && req.method === "DELETE") {
      res.writeHead(204);
      return res.end();
    }
    return json(404, { error: { code: "not_found", message: "no such route", details: null } });
  });
});
afterAll(() => api.close());

const cli = (args: string[]) =>
  runCli(args, { SPLITSTREAM_API_URL: api.url, SPLITSTREAM_TOKEN: "good" });

describe("splitstream webhooks", () => {
  it("creates a webhook and prints its secret once", async () => {
    const r = await cli([
      "webhooks",
      "create",
      "--project",
      "p1",
      "--name",
      "Team",
      "--url",
      "https://hooks.example/x",
      "--events",
      "experiment.started, srm.detected",
      "--format",
      "slack",
      "--environments",
      "production",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(api.seen.at(-1)!.body)).toEqual({
      name: "Team",
      url: "https://hooks.example/x",
      events: ["experiment.started", "srm.detected"],
      format: "slack",
      environments: ["production"],
      enabled: true,
    });
    expect(r.stdout).toContain("signing secret (shown only now): whsec_abc");
  });

  it("lists, test-sends, shows the log and one delivery's attempts, deletes", async () => {
    const listed = await cli(["webhooks", "list", "--project", "p1"]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/w1\s+Slack\s+slack\s+yes\s+\*/);
    const test = await cli(["webhooks", "test", "w1"]);
    expect(test.stdout).toContain("test delivery d1 queued");
    expect(api.seen.at(-1)).toMatchObject({ method: "POST", url: "/_ss/api/v1/webhooks/w1/test" });
    const log = await cli(["webhooks", "deliveries", "w1"]);
    expect(log.stdout).toMatch(
      /d1\s+2026-12-06T10:00:00.000Z\s+experiment.started\s+delivered\s+4\s+200/,
    );
    const one = await cli(["webhooks", "delivery", "d1"]);
    expect(
      one.stdout
        .split("\n")
        .filter((l) => /^\d\s/.test(l))
        .map((l) => l.split(/\s+/)[2]),
    ).toEqual(["500", "500", "500", "200"]);
    const deleted = await cli(["webhooks", "delete", "w1"]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain("webhook w1 deleted");
  });

  it("usage errors exit 2 before any request", async () => {
    const before = api.seen.length;
    const noProject = await cli(["webhooks", "list"]);
    expect(noProject.code).toBe(2);
    expect(noProject.stderr).toContain("--project is required");
    const noUrl = await cli(["webhooks", "create", "--project", "p1", "--name", "x"]);
    expect(noUrl.code).toBe(2);
    const unknown = await cli(["webhooks", "explode"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command: webhooks explode");
    expect(api.seen.length).toBe(before);
  });
});
