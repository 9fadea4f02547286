/**
 * The event-data CLI commands (src/cli/events-command.ts): `splitstream rebuild` and
 * `splitstream conversions import`, run as the real `bin/splitstream.js` against a loopback
 * stand-in for the management API (the endpoints themselves are tested through the Worker in
 * test/api/conversions.test.ts and test/events/rebuild.test.ts); plus the file parsing.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, startStandInApi, type StandInApi } from "../support/cli-stand-in";
import { parseConversionsFile, parseCsv } from "../../src/cli/events-command";

let api: StandInApi<Record<string, unknown> | null>;
const dir = mkdtempSync(join(tmpdir(), "splitstream-cli-"));

const report = (matches: boolean, applied = false) => ({
  sdkKeys: ["sdk1"],
  objectsRead: 3,
  eventsRead: 12,
  eventsFolded: 10,
  duplicates: 2,
  invalidLines: 0,
  invalid: [],
  conversionsSince: "2026-01-01T00:00:00.000Z",
  tables: {
    exposures: { live: 4, rebuilt: 4, differences: 0 },
    conversions: { live: 6, rebuilt: 6, differences: 0 },
    converters: { live: 2, rebuilt: 2, differences: 0 },
    variation_daily: { live: 2, rebuilt: 2, differences: matches ? 0 : 1 },
    metric_daily: { live: 3, rebuilt: 3, differences: 0 },
  },
  differences: matches
    ? []
    : [
        {
          table: "variation_daily",
          key: { sdk_key: "sdk1", experiment_id: "e", variation_id: "v", revision: "1", day: "d" },
          live: { visitors: 1 },
          rebuilt: { visitors: 2 },
        },
      ],
  differencesTruncated: false,
  matches,
  applied,
  written: null,
});

let moveSteps = 0;
let rebuildAsked: { sdkKey?: string; apply?: boolean } = {};
let rebuildReads = 0;

const job = (status: string, phase: string, r: ReturnType<typeof report> | null) => ({
  id: "job1",
  status,
  phase,
  steps: rebuildReads,
  progress: { objectsRead: 3, eventsRead: 12, excluded: 0, sdkKeysCompared: 0, sdkKeys: 0 },
  error: null,
  failures: 0,
  report: r,
});

beforeAll(async () => {
  api = await startStandInApi(
    (req, body, json) => {
      if (req.headers.authorization !== "Bearer good")
        return json(401, { error: { code: "unauthorized", message: "bad token", details: null } });
      // The rebuild job: started by POST, running at the first read, settled at the second.
      if (req.url === "/_ss/api/v1/admin/rebuild" && req.method === "POST") {
        const b = body as { sdkKey?: string; apply?: boolean };
        rebuildAsked = b;
        rebuildReads = 0;
        return json(202, job("running", "cleaning", null));
      }
      if (req.url === "/_ss/api/v1/admin/rebuild" && req.method === "GET") {
        rebuildReads++;
        if (rebuildReads < 2) return json(200, job("running", "replaying", null));
        const b = rebuildAsked;
        const applied = b.apply === true;
        return json(
          200,
          job(
            applied ? "applied" : "compared",
            applied ? "done" : "waiting",
            report(b.sdkKey === "healthy" || applied, applied),
          ),
        );
      }
      if (req.url === "/_ss/api/v1/admin/rebuild/cancel" && req.method === "POST")
        return json(202, job("cancelled", "done", null));
      if (
        req.url?.startsWith("/_ss/api/v1/admin/event-layout?") ||
        req.url === "/_ss/api/v1/admin/event-layout"
      )
        return json(200, {
          shards: 4,
          movingTo: null,
          configured: 8,
          shardStats: req.url.endsWith("stats=true")
            ? [
                {
                  shard: 0,
                  bytes: 12288,
                  rows: { seen_events: 3, exposures: 1, conversions: 2, converters: 1 },
                  pending: 0,
                },
              ]
            : null,
        });
      if (req.url === "/_ss/api/v1/admin/event-layout/move") {
        // Three steps, then done.
        moveSteps++;
        const to = (body as { to: number }).to;
        return json(200, {
          from: 4,
          to,
          moved: { seen_events: 10, exposures: 5, conversions: 4, converters: 2 },
          dropped: 0,
          done: moveSteps >= 3,
        });
      }
      if (req.url === "/_ss/api/v1/conversions") {
        const items = (body as { conversions: Array<{ eventKey: string }> }).conversions;
        const rejected = items.flatMap((c, index) =>
          c.eventKey === "nope"
            ? [
                {
                  index,
                  path: `$.body.conversions[${index}].eventKey`,
                  message: "unknown event key",
                },
              ]
            : [],
        );
        return json(202, { accepted: items.length - rejected.length, rejected });
      }
      return json(404, { error: { code: "not_found", message: "no such route", details: null } });
    },
    (text) => (text === "" ? null : (JSON.parse(text) as Record<string, unknown>)),
  );
});
afterAll(() => api.close());

const cli = (args: string[]) =>
  runCli(args, {
    SPLITSTREAM_API_URL: api.url,
    SPLITSTREAM_TOKEN: "good",
    SPLITSTREAM_POLL_MS: "5",
  });

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("conversion files", () => {
  it("parses CSV with quotes, CRLF and ISO timestamps, and reports bad lines", () => {
    expect(parseCsv('a,"b ""x"", y"\r\n1,"multi\nline"\n')).toEqual([
      { line: 1, fields: ["a", 'b "x", y'] },
      { line: 2, fields: ["1", "multi\nline"] },
    ]);
    const { conversions, problems } = parseConversionsFile(
      [
        "visitorId,eventKey,uuid,timestamp,revenue,value",
        "v1,purchase,u1,1764140000000,1299,2.5",
        "v2,signup,u2,2026-11-26T10:00:00Z,,",
        "v3,purchase,u3,yesterday,,",
        "v4,purchase,u4,,12.5,",
        ",purchase,u5,,,",
        "v6,purchase",
      ].join("\n"),
    );
    expect(conversions).toEqual([
      {
        line: 2,
        conversion: {
          visitorId: "v1",
          eventKey: "purchase",
          uuid: "u1",
          timestamp: 1764140000000,
          revenue: 1299,
          value: 2.5,
        },
      },
      {
        line: 3,
        conversion: {
          visitorId: "v2",
          eventKey: "signup",
          uuid: "u2",
          timestamp: Date.UTC(2026, 10, 26, 10),
        },
      },
    ]);
    expect(problems.map((p) => p.line)).toEqual([4, 5, 6, 7]);
    expect(problems[1]!.message).toMatch(/revenue: not an integer/);
    expect(problems[2]!.message).toBe("visitorId: empty");
    expect(parseConversionsFile("visitorId,event,uuid\n").problems.map((p) => p.message)).toEqual([
      'unknown column "event" (expected visitorId, eventKey, uuid, timestamp, revenue, value)',
      "missing column eventKey",
    ]);
  });

  it("parses NDJSON, one object per line", () => {
    const { conversions, problems } = parseConversionsFile(
      '{"visitorId":"v","eventKey":"k","uuid":"u","tags":{"a":1}}\n\n[1]\n{oops\n',
    );
    expect(conversions).toEqual([
      { line: 1, conversion: { visitorId: "v", eventKey: "k", uuid: "u", tags: { a: 1 } } },
    ]);
    expect(problems.map((p) => p.line)).toEqual([3, 4]);
  });
});

describe("splitstream conversions import", () => {
  it("posts the file in requests of 1000 and maps refusals back to file lines", async () => {
    const lines = Array.from({ length: 1500 }, (_, i) =>
      JSON.stringify({ visitorId: `v${i}`, eventKey: i === 1203 ? "nope" : "buy", uuid: `u${i}` }),
    );
    const before = api.seen.length;
    const r = await cli([
      "conversions",
      "import",
      file("bulk.ndjson", lines.join("\n")),
      "--project",
      "p1",
      "--environment",
      "development",
    ]);
    const requests = api.seen.slice(before);
    expect(requests.map((s) => (s.body as { conversions: unknown[] }).conversions.length)).toEqual([
      1000, 500,
    ]);
    expect(requests[0]).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/conversions",
      body: { projectId: "p1", environment: "development" },
    });
    expect(r.stdout).toBe("1499 accepted, 1 refused\n");
    expect(r.stderr).toContain("line 1204: $.body.conversions[203].eventKey: unknown event key");
    expect(r.code).toBe(1);
  });

  it("sends nothing when a line is malformed, and needs --project", async () => {
    const before = api.seen.length;
    const bad = await cli([
      "conversions",
      "import",
      file("bad.csv", "visitorId,eventKey,uuid,revenue\nv1,buy,u1,1\nv2,buy,u2,lots\n"),
      "--project",
      "p1",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("line 3: revenue: not a number: lots");
    expect(api.seen.length).toBe(before);
    const usage = await cli(["conversions", "import", file("ok.csv", "visitorId,eventKey,uuid\n")]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--project is required");
  });
});

describe("splitstream rebuild", () => {
  it("starts a job, follows its progress, prints the comparison and exits 0 when the tables match", async () => {
    const before = api.seen.length;
    const r = await cli(["rebuild", "--sdk-key", "healthy", "--chunk-objects", "5"]);
    expect(r.code).toBe(0);
    expect(api.seen[before]).toMatchObject({
      method: "POST",
      url: "/_ss/api/v1/admin/rebuild",
      body: { apply: false, sdkKey: "healthy", chunkObjects: 5 },
    });
    // Read until settled.
    expect(api.seen.slice(before + 1).map((s) => s.method)).toEqual(["GET", "GET"]);
    expect(r.stderr).toContain("rebuild job1: running/replaying");
    expect(r.stdout).toContain("matches: yes");
    expect(r.stdout).toMatch(/variation_daily\s+2\s+2\s+0/);
  });

  it("exits 1 listing the differences, and 0 after --apply", async () => {
    const before = api.seen.length;
    const r = await cli(["rebuild"]);
    expect(r.code).toBe(1);
    expect(api.seen[before]!.body).toEqual({ apply: false });
    expect(r.stdout).toContain("matches: NO — 1 rows differ");
    expect(r.stdout).toContain('variation_daily {"sdk_key":"sdk1"');
    const at = api.seen.length;
    const applied = await cli(["rebuild", "--apply", "--json"]);
    expect(applied.code).toBe(0);
    expect(api.seen[at]!.body).toEqual({ apply: true });
    expect(JSON.parse(applied.stdout)).toMatchObject({ applied: true });
  });

  it("cancels, and refuses a bad --chunk-objects before calling the API", async () => {
    const cancelled = await cli(["rebuild", "cancel"]);
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toContain("rebuild job1: cancelled/done");
    const before = api.seen.length;
    const bad = await cli(["rebuild", "--chunk-objects", "many"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--chunk-objects must be a whole number");
    expect((await cli(["rebuild", "now"])).code).toBe(2);
    expect(api.seen.length).toBe(before);
  });
});

describe("splitstream events", () => {
  it("shows the layout, and says when EVENT_SHARDS asks for another one", async () => {
    const r = await cli(["events", "layout", "--stats"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("per-visitor event state: 4 visitor shard(s)");
    expect(r.stdout).toContain("EVENT_SHARDS is 8: run `splitstream events move --to 8`");
    expect(r.stdout).toContain("shard 0: 12288 bytes, seen_events 3, exposures 1");
    expect(api.seen.at(-1)).toMatchObject({
      method: "GET",
      url: "/_ss/api/v1/admin/event-layout?stats=true",
    });
  });

  it("moves step by step until the API says done", async () => {
    moveSteps = 0;
    const before = api.seen.length;
    const r = await cli(["events", "move", "--to", "8", "--max-rows", "500"]);
    expect(r.code).toBe(0);
    const calls = api.seen.slice(before);
    expect(calls).toHaveLength(3);
    for (const call of calls)
      expect(call).toMatchObject({
        method: "POST",
        url: "/_ss/api/v1/admin/event-layout/move",
        body: { to: 8, maxRows: 500 },
      });
    expect(r.stderr).toContain(
      "step 3: seen_events 10, exposures 5, conversions 4, converters 2 — done",
    );
    expect(r.stdout).toContain(
      "per-visitor event state now on 8 shard(s) (was 4 shard(s)); 3 step(s)",
    );
  });

  it("refuses a move without a valid --to before calling the API", async () => {
    const before = api.seen.length;
    for (const args of [
      ["events", "move"],
      ["events", "move", "--to", "0"],
      ["events", "move", "--to", "x"],
    ]) {
      const r = await cli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("events move needs --to N");
    }
    expect(api.seen.length).toBe(before);
  });
});
