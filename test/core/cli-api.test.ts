import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";

let api: StandInApi;

// A loopback stand-in for the management API's HTTP surface (the API itself is tested in
// test/api through the real Worker); here we check what the CLI sends and how it reports.
beforeAll(async () => {
  api = await startStandInApi((req, _body, json) => {
    if (req.headers.authorization !== "Bearer good")
      return json(401, { error: { code: "unauthorized", message: "bad token", details: null } });
    if (req.url === "/_ss/api/v1/projects/p1/experiments?limit=200")
      return json(200, {
        items: [{ id: "e1", key: "hero", type: "ab", status: "Running" }],
        nextCursor: null,
      });
    if (req.url === "/_ss/api/v1/projects/p1/flags?limit=200")
      return json(200, {
        items: [
          {
            id: "f1",
            key: "new_checkout",
            environments: {
              production: { enabled: true, rules: [{ key: "beta" }], defaultVariationKey: "off" },
              development: { enabled: false, rules: [], defaultVariationKey: "off" },
            },
          },
        ],
        nextCursor: null,
      });
    if (req.url === "/_ss/api/v1/flags/f1" && req.method === "PATCH")
      return json(200, {
        key: "new_checkout",
        published: [{ environmentKey: "production", revision: 5 }],
      });
    if (req.url === "/_ss/api/v1/experiments/e1/pause")
      return json(200, { published: [{ environmentKey: "production", revision: 4 }] });
    if (req.url === "/_ss/api/v1/experiments/nope/start")
      return json(409, {
        error: {
          code: "conflict",
          message: "cannot start a Running experiment",
          details: { status: "Running" },
        },
      });
    if (req.url === "/_ss/api/v1/environments/env1/datafile") return json(200, { revision: 9 });
    if (req.url?.startsWith("/_ss/api/v1/environments/env1/datafile/import"))
      return json(200, {
        dryRun: req.url.endsWith("?dryRun=true"),
        changes: {
          pages: { created: [], updated: [], unchanged: 7 },
          experiments: {
            created: ["new_test"],
            updated: [{ key: "home_hero", columns: ["variations"] }],
            unchanged: 6,
          },
        },
        statuses: [{ experimentId: "1009", from: "Not started", to: "Running" }],
        warnings: [],
        published: req.url.endsWith("?dryRun=true")
          ? []
          : [{ environmentKey: "production", revision: 12, changed: true }],
      });
    if (req.url === "/_ss/api/v1/experiments/e2/results")
      return json(200, {
        experimentKey: "cta",
        environment: { key: "production" },
        revisions: ["7"],
        analysis: { mode: "sequential", alpha: 0.1 },
        srm: { checked: true, flagged: true, pValue: 0.00002 },
        variations: [
          { id: "v1", key: "control", visitors: 1000 },
          { id: "v2", key: "green", visitors: 1200 },
        ],
        metrics: [
          {
            eventId: "ev1",
            eventKey: "signup",
            aggregator: "unique",
            primary: true,
            variations: [
              {
                variationId: "v1",
                converters: 100,
                events: 100,
                revenueSum: 0,
                valueSum: 0,
                mean: 0.1,
                lift: null,
                pValue: null,
                qValue: null,
                verdict: "baseline",
              },
              {
                variationId: "v2",
                converters: 150,
                events: 150,
                revenueSum: 0,
                valueSum: 0,
                mean: 0.125,
                lift: { estimate: 0.25, ci: [0.02, 0.48] },
                pValue: 0.03,
                qValue: 0.03,
                verdict: "winner",
              },
            ],
          },
        ],
      });
    if (req.url?.startsWith("/_ss/api/v1/experiments/e3/results"))
      return json(200, {
        experimentKey: "mvt",
        environment: { key: "production" },
        revisions: ["9"],
        analysis: { mode: "sequential", alpha: 0.1 },
        srm: { checked: true, flagged: false, pValue: 0.5 },
        variations: [
          { id: "c1", key: "original_blue", visitors: 500 },
          { id: "c2", key: "bold_blue", visitors: 500 },
        ],
        metrics: [
          {
            eventId: "ev1",
            eventKey: "buy",
            aggregator: "count",
            primary: true,
            variations: [
              {
                variationId: "c1",
                converters: 50,
                events: 60,
                revenueSum: 0,
                valueSum: 0,
                cuped: null,
              },
              {
                variationId: "c2",
                converters: 70,
                events: 90,
                revenueSum: 0,
                valueSum: 0,
                cuped: { varianceReduction: 0.41 },
              },
            ],
          },
        ],
        guardrails: [
          {
            eventId: "ev1",
            variationId: "c2",
            action: "pause",
            harmed: true,
            pValue: 0.001,
            lift: -0.2,
          },
        ],
        guardrailBreaches: [
          {
            eventId: "ev1",
            variationId: "c2",
            detectedAt: "2026-12-06T10:00:00.000Z",
            action: "pause",
          },
        ],
        breakdown: {
          dimension: "device",
          segments: [
            {
              value: "mobile",
              visitors: 1000,
              metrics: [
                {
                  eventId: "ev1",
                  variations: [
                    {
                      variationId: "c1",
                      visitors: 500,
                      mean: 0.1,
                      lift: null,
                      qValue: null,
                      verdict: "baseline",
                    },
                    {
                      variationId: "c2",
                      visitors: 500,
                      mean: 0.2,
                      lift: { estimate: 1 },
                      qValue: 0.001,
                      verdict: "winner",
                    },
                  ],
                },
              ],
            },
          ],
        },
        sections: [
          {
            id: "s1",
            name: "Headline",
            variations: [
              { id: "h0", name: "Original" },
              { id: "h1", name: "Bold" },
            ],
            metrics: [
              {
                eventId: "ev1",
                variations: [
                  {
                    variationId: "h0",
                    visitors: 500,
                    mean: 0.12,
                    lift: null,
                    qValue: null,
                    verdict: "baseline",
                  },
                  {
                    variationId: "h1",
                    visitors: 500,
                    mean: 0.18,
                    lift: { estimate: 0.5, ci: [0.1, null] },
                    qValue: 0.02,
                    verdict: "winner",
                  },
                ],
              },
            ],
          },
        ],
      });
    if (req.url?.startsWith("/_ss/api/v1/experiments/e1/results"))
      return json(200, {
        experimentId: "e1",
        experimentKey: "hero",
        environment: { id: "env2", key: "development", sdkKey: "sdk2" },
        revisions: ["3", "4"],
        from: null,
        to: null,
        variations: [
          { id: "v1", key: "control", visitors: 120 },
          { id: "v2", key: "bold", visitors: 118 },
        ],
        metrics: [
          {
            eventId: "ev1",
            eventKey: "purchase",
            aggregator: "sum",
            field: "revenue",
            primary: true,
            variations: [
              {
                variationId: "v1",
                converters: 10,
                events: 12,
                revenueSum: 4500,
                revenueSumSq: 0,
                valueSum: 0,
                valueSumSq: 0,
              },
              {
                variationId: "v2",
                converters: 14,
                events: 15,
                revenueSum: 6100,
                revenueSumSq: 0,
                valueSum: 2.5,
                valueSumSq: 0,
              },
            ],
          },
        ],
        daily: [],
      });
    if (req.url === "/_ss/api/v1/environments/env1/holdout")
      return json(200, {
        environmentId: "env1",
        percent: req.method === "PUT" ? 7.5 : 0,
        metrics: req.method === "PUT" ? ["ev1", "ev2"] : [],
        holdoutId: "h1",
        holdoutKey: "holdout_production",
        version: 3,
      });
    if (req.url?.startsWith("/_ss/api/v1/environments/env1/holdout/results"))
      return json(200, {
        environmentId: "env1",
        holdoutId: "h1",
        percent: 5,
        ...(req.url.endsWith("?since=all")
          ? { since: "all", period: null, mixedShares: true }
          : {
              since: "share",
              period: {
                percent: 5,
                fromRevision: 12,
                toRevision: null,
                from: "2026-12-01T00:00:00Z",
              },
              mixedShares: false,
            }),
        analysis: { mode: "sequential", alpha: 0.1 },
        groups: [
          { key: "everyone_else", variationId: "h1r", visitors: 950 },
          { key: "holdout", variationId: "h1h", visitors: 50 },
        ],
        metrics: [
          {
            eventId: "ev1",
            eventKey: "purchase",
            everyoneElse: { visitors: 950, converters: 95, rate: 0.1 },
            holdout: { visitors: 50, converters: 4, rate: 0.08 },
            lift: { estimate: -0.2, lower: -0.7, upper: null },
            pValue: 0.61,
            significant: false,
          },
        ],
      });
    return json(404, { error: { code: "not_found", message: "no such route", details: null } });
  });
});
afterAll(() => api.close());

const cli = (args: string[], env: Record<string, string> = {}) =>
  runCli(args, { SPLITSTREAM_API_URL: "", SPLITSTREAM_TOKEN: "", ...env });

describe("splitstream API commands", () => {
  it("lists experiments with URL and token from the environment", async () => {
    const r = await cli(["experiments", "list", "--project", "p1"], {
      SPLITSTREAM_API_URL: api.url,
      SPLITSTREAM_TOKEN: "good",
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/e1\s+hero\s+ab\s+"Running"/);
    expect(api.seen.at(-1)).toMatchObject({ method: "GET", authorization: "Bearer good" });
  });

  it("pauses an experiment with URL and token from flags, naming the environment", async () => {
    const r = await cli([
      "experiments",
      "pause",
      "e1",
      "--environment",
      "production",
      "--api-url",
      api.url,
      "--token",
      "good",
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("published production r4");
    expect(api.seen.at(-1)).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/experiments/e1/pause",
      body: '{"environment":"production"}',
    });
  });

  it("lists flags with their state per environment, and turns one on in one environment", async () => {
    const env = { SPLITSTREAM_API_URL: api.url, SPLITSTREAM_TOKEN: "good" };
    const list = await cli(["flags", "list", "--project", "p1"], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      /f1\s+new_checkout\s+production: on \(1 rules, else off\); development: off/,
    );
    const on = await cli(["flags", "enable", "f1", "--environment", "production"], env);
    expect(on.code).toBe(0);
    expect(on.stdout).toContain("new_checkout: on in production — published production r5");
    expect(api.seen.at(-1)).toMatchObject({
      method: "PATCH",
      url: "/_ss/api/v1/flags/f1",
      body: '{"environments":{"production":{"enabled":true}}}',
    });
    const missing = await cli(["flags", "disable", "f1"], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--environment is required");
  });

  it("holdout set sends the share and metrics; get and results print them", async () => {
    const auth = ["--api-url", api.url, "--token", "good"];
    const set = await cli([
      "holdout",
      "set",
      "--environment",
      "env1",
      "--percent",
      "7.5",
      "--metrics",
      "ev1, ev2",
      ...auth,
    ]);
    expect(set.code).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      method: "PUT",
      url: "/_ss/api/v1/environments/env1/holdout",
      body: '{"percent":7.5,"metrics":["ev1","ev2"]}',
    });
    expect(set.stdout).toContain("holdout 7.5 % (holdout_production); metrics: ev1, ev2");
    const missing = await cli(["holdout", "set", "--environment", "env1", ...auth]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--percent");
    const results = await cli(["holdout", "results", "--environment", "env1", ...auth]);
    expect(results.code).toBe(0);
    expect(results.stdout).toContain("visitors: everyone_else 950, holdout 50");
    expect(results.stdout).toMatch(
      /purchase\s+holdout\s+50\s+4\s+8\.00 %\s+-20\.00 %\s+\[-70\.00 %, -\]\s+0\.6100/,
    );
    expect(results.stdout).toContain("counting visitors first exposed at 5 % (revisions 12–now)");
    const everyone = await cli([
      "holdout",
      "results",
      "--environment",
      "env1",
      "--since",
      "all",
      ...auth,
    ]);
    expect(everyone.code).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      url: "/_ss/api/v1/environments/env1/holdout/results?since=all",
    });
    expect(everyone.stdout).toContain("counting every visitor");
    expect(everyone.stdout).toContain("MIXED SHARES");
    const bad = await cli(["holdout", "results", "--environment", "env1", "--since", "x", ...auth]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--since must be share or all");
  });

  it("reports the API's error envelope and exits 1", async () => {
    const r = await cli(["experiments", "start", "nope", "--api-url", api.url, "--token", "good"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("HTTP 409 conflict: cannot start a Running experiment");
    const denied = await cli(["projects", "list", "--api-url", api.url, "--token", "bad"]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("HTTP 401 unauthorized");
  });

  it("datafile import validates locally, sends the file, and reports what changes (--dry-run writes nothing)", async () => {
    const before = api.seen.length;
    const bad = await cli([
      "datafile",
      "import",
      join(repoRoot, "test/fixtures/datafiles/bad-json.json"),
      "--environment",
      "env1",
      "--api-url",
      api.url,
      "--token",
      "good",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("nothing imported");
    expect(api.seen.length).toBe(before);
    const args = (extra: string[]) => [
      "datafile",
      "import",
      join(repoRoot, "demo/datafile.json"),
      "--environment",
      "env1",
      "--api-url",
      api.url,
      "--token",
      "good",
      ...extra,
    ];
    const dry = await cli(args(["--dry-run"]));
    expect(dry.code).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/environments/env1/datafile/import?dryRun=true",
    });
    expect(JSON.parse(api.seen.at(-1)!.body).experiments).toHaveLength(6);
    expect(dry.stdout).toContain("dry run: nothing was written");
    expect(dry.stdout).toContain(
      "experiments: create new_test; change home_hero (variations); 6 unchanged",
    );
    expect(dry.stdout).toContain("status 1009: Not started → Running");
    const real = await cli(args([]));
    expect(real.code).toBe(0);
    expect(api.seen.at(-1)!.url).toBe("/_ss/api/v1/environments/env1/datafile/import");
    expect(real.stdout).toContain("published production r12");
  });

  it("datafile push validates locally first and sends nothing when invalid", async () => {
    const before = api.seen.length;
    const bad = await cli([
      "datafile",
      "push",
      join(repoRoot, "test/fixtures/datafiles/bad-json.json"),
      "--environment",
      "env1",
      "--api-url",
      api.url,
      "--token",
      "good",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("error $");
    expect(api.seen.length).toBe(before);
    const ok = await cli([
      "datafile",
      "push",
      join(repoRoot, "demo/datafile.json"),
      "--environment",
      "env1",
      "--api-url",
      api.url,
      "--token",
      "good",
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("pushed as revision 9");
    expect(api.seen.at(-1)).toMatchObject({
      method: "PUT",
      url: "/_ss/api/v1/environments/env1/datafile",
    });
  });

  it("results prints the statistics and the SRM warning when the API gives them", async () => {
    const r = await cli(["results", "e2", "--api-url", api.url, "--token", "good"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        "cta in production — revisions 7",
        "sequential test, significance 90% — SAMPLE RATIO MISMATCH (p <0.0001): do not trust these results",
        "",
        "signup (unique, primary)",
        "variation  visitors  converters  events  revenue sum  value sum  mean   lift    interval       p       q       verdict",
        "control    1000      100         100     0            0          0.1    -       -              -       -       baseline",
        "green      1200      150         150     0            0          0.125  +25.0%  +2.0%..+48.0%  0.0300  0.0300  winner",
        "",
      ].join("\n"),
    );
  });

  it("results prints CUPED's variance removed, the guardrails and each section's main effects", async () => {
    const r = await cli(["results", "e3", "--api-url", api.url, "--token", "good"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("CUPED: bold_blue 41% less variance");
    expect(r.stdout).toContain(
      "GUARDRAIL BREACHED: bold_blue harms buy (found 2026-12-06T10:00:00.000Z; paused)",
    );
    expect(r.stdout).toMatch(/buy\s+bold_blue\s+-20\.0%\s+0\.0010\s+pause\s+HARMED/);
    expect(r.stdout).toContain("section Headline: buy (main effects)");
    expect(r.stdout).toContain(
      "device = mobile (1000 visitors): buy — q corrected across segments",
    );
    expect(r.stdout).toMatch(/bold_blue\s+500\s+0\.2\s+\+100\.0%\s+0\.0010\s+winner/);
    await cli(["results", "e3", "--breakdown", "device", "--api-url", api.url, "--token", "good"]);
    expect(api.seen.at(-1)!.url).toBe("/_ss/api/v1/experiments/e3/results?breakdown=device");
    expect(
      (await cli(["results", "e3", "--breakdown", "shoe", "--api-url", api.url, "--token", "good"]))
        .code,
    ).toBe(2);
    expect(r.stdout).toMatch(
      /Bold\s+500\s+0\.18\s+\+50\.0%\s+\+10\.0%\.\.\+inf\s+0\.0200\s+winner/,
    );
  });

  it("results prints one table per metric, for the named environment", async () => {
    const r = await cli([
      "results",
      "e1",
      "--environment",
      "development",
      "--api-url",
      api.url,
      "--token",
      "good",
    ]);
    expect(r.code).toBe(0);
    expect(api.seen.at(-1)).toMatchObject({
      method: "GET",
      url: "/_ss/api/v1/experiments/e1/results?environment=development",
    });
    expect(r.stdout).toBe(
      [
        "hero in development — revisions 3, 4",
        "",
        "purchase (sum revenue, primary)",
        "variation  visitors  converters  events  revenue sum  value sum",
        "control    120       10          12      4500         0",
        "bold       118       14          15      6100         2.5",
        "",
      ].join("\n"),
    );
    const json = await cli(["results", "e1", "--json", "--api-url", api.url, "--token", "good"]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ experimentKey: "hero", revisions: ["3", "4"] });
    expect(api.seen.at(-1)!.url).toBe("/_ss/api/v1/experiments/e1/results");
    expect((await cli(["results", "--api-url", api.url, "--token", "good"])).code).toBe(2);
  });

  it("missing URL or token is a usage error (exit 2)", async () => {
    expect((await cli(["projects", "list"])).code).toBe(2);
    expect((await cli(["projects", "list", "--api-url", api.url])).code).toBe(2);
  });
});
