import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const fixtures = join(root, "test", "fixtures", "datafiles");

/** Runs the real `splitstream` bin (as `npx splitstream` would) and captures its output. */
function cli(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [join(root, "bin", "splitstream.js"), ...args], {
    cwd: root,
    input,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("splitstream validate", () => {
  it("accepts a valid datafile (exit 0)", () => {
    const r = cli(["validate", join(fixtures, "valid-web.json")]);
    expect(r.stdout).toContain("valid");
    expect(r.code).toBe(0);
  });

  it.each([
    ["bad JSON", '{"version": "4", "experiments": [', "$"],
    [
      "a missing field",
      JSON.stringify({
        version: "4",
        accountId: "1",
        projectId: "2",
        revision: "1",
        attributes: [],
        audiences: [],
        events: [],
        groups: [],
        featureFlags: [],
        rollouts: [],
      }),
      "$.experiments",
    ],
    [
      "a wrong type",
      JSON.stringify({
        version: "4",
        accountId: "1",
        projectId: "2",
        revision: 5,
        attributes: [],
        audiences: [],
        events: [],
        experiments: [],
        groups: [],
        featureFlags: [],
        rollouts: [],
      }),
      "$.revision",
    ],
  ])("reports %s with its JSON path and exits 1", (_name, text, path) => {
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-"));
    const file = join(dir, "datafile.json");
    writeFileSync(file, text);
    const r = cli(["validate", file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`^error ${path.replace(/[$.[\]]/g, "\\$&")}[:.[]`, "m"));
  });

  it("reports a dangling id with its path", () => {
    const df = JSON.parse(readFileSync(join(fixtures, "decisions.json"), "utf8"));
    df.experiments[0].trafficAllocation[0].entityId = "no_such_variation";
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-"));
    const file = join(dir, "dangling.json");
    writeFileSync(file, JSON.stringify(df));
    const r = cli(["validate", file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("error $.experiments[0].trafficAllocation[0].entityId");
  });

  it("usage errors exit 2", () => {
    expect(cli(["validate"]).code).toBe(2);
    expect(cli(["frobnicate"]).code).toBe(2);
    expect(cli(["validate", "/no/such/file.json"]).code).toBe(1);
  });
});

describe("splitstream decide", () => {
  const datafile = join(fixtures, "decisions.json");

  it("explains one visitor with reasons and buckets", () => {
    const r = cli([
      "decide",
      "--datafile",
      datafile,
      "--visitor",
      "ppid1",
      "--attributes",
      '{"country":"DE","age":30}',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/vector_test\s+high\s+bucketed\s+5254/);
    expect(r.stdout).toMatch(/paused\s+-\s+not_running/);
    expect(r.stdout).toMatch(/targeted\s+only\s+bucketed/);
    expect(r.stdout).toMatch(/group_[ab]\s+-\s+excluded_by_group/);
  });

  it("explains one experiment as JSON", () => {
    const r = cli([
      "decide",
      "--datafile",
      datafile,
      "--visitor",
      "ppid3",
      "--experiment",
      "vector_test",
      "--json",
    ]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).decisions).toEqual([
      {
        experimentId: "1886780721",
        experimentKey: "vector_test",
        variationId: null,
        variationKey: null,
        reason: "outside_traffic",
        bucket: 5439,
      },
    ]);
  });

  it("batch: one NDJSON line out per line in, in order, every experiment; malformed lines reported", () => {
    const input = [
      JSON.stringify({ visitorId: "ppid1" }),
      "not json",
      "",
      JSON.stringify({ visitorId: "ppid2", attributes: { country: "DE", age: 20 } }),
      JSON.stringify({ visitorId: 7 }),
    ].join("\n");
    const r = cli(["decide", "--datafile", datafile, "--input", "-"], input);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines[0].visitorId).toBe("ppid1");
    expect(Object.keys(lines[0].decisions)).toEqual([
      "vector_test",
      "targeted",
      "paused",
      "group_a",
      "group_b",
    ]);
    expect(lines[0].decisions.vector_test).toBe("high");
    expect(lines[1]).toMatchObject({ visitorId: null, line: 2 });
    expect(lines[2]).toMatchObject({
      visitorId: "ppid2",
      decisions: { vector_test: "low", targeted: "only" },
    });
    expect(lines[3]).toMatchObject({
      visitorId: null,
      line: 5,
      error: "visitorId must be a string",
    });
    expect(r.code).toBe(1);
  });

  it("refuses a broken datafile, listing each problem with its path", () => {
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-"));
    const file = join(dir, "broken.json");
    writeFileSync(file, JSON.stringify({ version: "4", experiments: "nope" }));
    const r = cli(["decide", "--datafile", file, "--visitor", "v1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error $.experiments");
    expect(r.stderr).toContain("error $.revision");
  });

  it("usage errors exit 2", () => {
    expect(cli(["decide", "--datafile", datafile]).code).toBe(2);
    expect(cli(["decide", "--visitor", "x"]).code).toBe(2);
    expect(
      cli(["decide", "--datafile", datafile, "--visitor", "x", "--attributes", "[1]"]).code,
    ).toBe(2);
    expect(cli(["decide", "--datafile", datafile, "--visitor", "x", "--bogus"]).code).toBe(2);
  });
});
