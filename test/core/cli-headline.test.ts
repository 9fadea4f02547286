/**
 * `splitstream headline create` against a loopback stand-in for the management API (the API
 * itself is tested through the real Worker in test/api/bandit.test.ts): what the CLI sends, how
 * it reports, and its usage errors.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";

let api: StandInApi;

beforeAll(async () => {
  api = await startStandInApi((req, body, json) => {
    if (req.url === "/_ss/api/v1/projects/p1/headline-tests" && req.method === "POST")
      return json(201, {
        experiment: {
          id: "x1",
          key: "budget",
          variations: [
            { key: "original", name: "A", weight: 5000 },
            { key: "headline_2", name: "B", weight: 5000 },
          ],
          status: { production: "Running", development: "Not started" },
        },
        page: { id: "pg1", key: "budget" },
        event: { id: "ev1", key: "subscribe", type: "custom" },
        created: { page: true, event: false },
        published: [
          { environmentKey: "production", revision: 7, changed: true },
          { environmentKey: "development", revision: 3, changed: true },
        ],
      });
    if (req.url === "/_ss/api/v1/projects/p2/headline-tests")
      return json(422, {
        error: {
          code: "validation_failed",
          message: "invalid request body: $.body.headlines[1].imageUrl: unsafe URL",
          details: [{ path: "$.body.headlines[1].imageUrl", message: "unsafe URL" }],
        },
      });
    return json(404, { error: { code: "not_found", message: "no such route", details: null } });
  });
});
afterAll(() => api.close());

const cli = (args: string[]) =>
  runCli(args, { SPLITSTREAM_API_URL: api.url, SPLITSTREAM_TOKEN: "good" });

describe("splitstream headline create", () => {
  it("posts one headline test and prints what was created", async () => {
    const r = await cli([
      "headline",
      "create",
      "--project",
      "p1",
      "--key",
      "budget",
      "--url-substring",
      "/article/",
      "--headline-id",
      "hero",
      "--headline",
      "A",
      "--headline",
      "B",
      "--event",
      "ev1",
      "--start",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const sent = api.seen.at(-1)!;
    expect(sent).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/projects/p1/headline-tests",
      authorization: "Bearer good",
    });
    expect(JSON.parse(sent.body)).toEqual({
      key: "budget",
      url: { match: "substring", value: "/article/" },
      headlineId: "hero",
      headlines: [{ text: "A" }, { text: "B" }],
      metricEventId: "ev1",
      start: true,
    });
    expect(r.stdout).toContain("headline test budget (experiment x1)");
    expect(r.stdout).toMatch(/page\s+budget \(pg1\) — created/);
    expect(r.stdout).toMatch(/headline_2\s+5000 bp\s+B/);
    expect(r.stdout).toContain("production: Running");
    expect(r.stdout).toContain("production r7");
  });

  it("sends a selector and an existing page as given", async () => {
    const r = await cli([
      "headline",
      "create",
      "--project",
      "p1",
      "--key",
      "budget",
      "--page",
      "pg1",
      "--selector",
      "article h1",
      "--headline",
      "A",
      "--headline",
      "B",
      "--headline",
      "C",
      "--json",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(api.seen.at(-1)!.body)).toEqual({
      key: "budget",
      pageId: "pg1",
      selector: "article h1",
      headlines: [{ text: "A" }, { text: "B" }, { text: "C" }],
    });
    expect(JSON.parse(r.stdout).experiment.id).toBe("x1");
  });

  it("reports the API's validation problems and usage errors", async () => {
    const refused = await cli([
      "headline",
      "create",
      "--project",
      "p2",
      "--key",
      "k",
      "--url-exact",
      "https://news.example.com/a",
      "--headline-id",
      "hero",
      "--headline",
      "A",
      "--headline",
      "B",
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("$.body.headlines[1].imageUrl");

    const before = api.seen.length;
    for (const args of [
      ["--key", "k", "--url-substring", "/a/", "--headline-id", "h", "--headline", "only one"],
      ["--key", "k", "--headline-id", "h", "--headline", "A", "--headline", "B"],
      ["--key", "k", "--url-substring", "/a/", "--page", "p", "--headline-id", "h"],
      ["--key", "k", "--url-substring", "/a/", "--headline", "A", "--headline", "B"],
    ]) {
      const r = await cli(["headline", "create", "--project", "p1", ...args]);
      expect(r.code, args.join(" ")).toBe(2);
    }
    // Usage errors never reach the API.
    expect(api.seen.length).toBe(before);
  });
});
