import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, runCliSync as cli } from "../support/cli-stand-in";
import { decideAll, loadDatafile, type Visitor } from "../../src/core/index";

const fixtures = join(repoRoot, "test", "fixtures", "datafiles");

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

  it("batch: the same lines as JSON.stringify of decideAll, across read chunks and CRLF line ends", () => {
    // > 64 KiB of input and of output: lines cross the stream's read chunks and the output is
    // flushed many times; \r\n endings, attributes on some lines, and no newline after the last.
    const visitors: Visitor[] = Array.from({ length: 3000 }, (_, i) => ({
      visitorId: `visitor-${i}-${"x".repeat(i % 17)}`,
      ...(i % 3 === 0 ? { attributes: { country: i % 2 ? "DE" : "US", age: i % 90 } } : {}),
    }));
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-"));
    const file = join(dir, "visitors.ndjson");
    writeFileSync(file, visitors.map((v) => JSON.stringify(v)).join("\r\n"));
    const loaded = loadDatafile(readFileSync(datafile, "utf8"));
    if (!loaded.ok) throw new Error("fixture datafile does not load");
    const expected = visitors.map((v) => {
      const decisions: Record<string, string | null> = {};
      for (const d of decideAll(loaded.compiled, v)) decisions[d.experimentKey] = d.variationKey;
      return JSON.stringify({ visitorId: v.visitorId, decisions });
    });
    const r = cli(["decide", "--datafile", datafile, "--input", file]);
    expect(r.stderr).not.toContain("malformed"); // (the fixture's datafile warning is expected)
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")).toEqual([...expected, ""]);
  });

  it("explains a held-out visitor (reason holdout) and validate names a bad holdout's path", () => {
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-"));
    const file = join(dir, "holdout.json");
    const df = JSON.parse(readFileSync(datafile, "utf8"));
    // A holdout of every bucket: everyone is held out (docs/holdouts.md).
    df.holdouts = [
      {
        id: "h_all",
        key: "holdout_production",
        status: "Running",
        variations: [{ id: "h_all_in", key: "holdout", featureEnabled: false }],
        trafficAllocation: [{ entityId: "h_all_in", endOfRange: 10000 }],
        audienceIds: [],
      },
    ];
    writeFileSync(file, JSON.stringify(df));
    const r = cli([
      "decide",
      "--datafile",
      file,
      "--visitor",
      "ppid1",
      "--attributes",
      '{"country":"DE","age":30}',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/vector_test\s+-\s+holdout/);
    expect(r.stdout).toMatch(/paused\s+-\s+not_running/);
    df.holdouts[0].trafficAllocation[0].entityId = "nope";
    writeFileSync(file, JSON.stringify(df));
    const bad = cli(["validate", file]);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain("$.holdouts[0].trafficAllocation[0].entityId");
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

describe("the CLI bundle (scripts/build-cli.mjs)", () => {
  type Record = [mtimeMs: number, size: number, hash: string];
  const load = async () =>
    (await import("../../scripts/build-cli.mjs" as string)) as {
      buildCli(outDir: string): Promise<number>;
      bundleIsFresh(outDir: string): boolean;
      bundleFile(outDir: string): string;
    };
  const readManifest = (dir: string) =>
    JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as {
      inputs: { [path: string]: Record };
    };
  const writeManifest = (dir: string, inputs: { [path: string]: Record }) =>
    writeFileSync(join(dir, "manifest.json"), JSON.stringify({ inputs }));

  it("bundles src/cli and src/core as plain JavaScript and records every input", async () => {
    const { buildCli, bundleFile } = await load();
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-bundle-"));
    const bytes = await buildCli(dir);
    const js = readFileSync(bundleFile(dir), "utf8");
    expect(Buffer.byteLength(js)).toBe(bytes);
    expect(js).toMatch(/^export \{[^}]*\bmain\b/m);
    // No TypeScript left for a loader to compile, and nothing imported but Node built-ins.
    expect(js).toMatch(/^import .* from "node:util";$/m);
    expect(js).not.toMatch(/^import .* from "(?!node:)[^"]*";$/m);
    const inputs = readManifest(dir).inputs;
    expect(Object.keys(inputs)).toEqual(
      expect.arrayContaining([
        "src/cli/main.ts",
        "src/cli/decide-command.ts",
        "src/core/decide.ts",
        "scripts/build-cli.mjs",
        "tsconfig.json",
      ]),
    );
    expect(inputs["src/cli/main.ts"]![2]).toBe(
      createHash("sha256")
        .update(readFileSync(join(repoRoot, "src", "cli", "main.ts")))
        .digest("base64url")
        .slice(0, 16),
    );
  });

  it("is fresh only while the bundle exists and every input keeps its mtime and size, or its content", async () => {
    const { buildCli, bundleIsFresh, bundleFile } = await load();
    const dir = mkdtempSync(join(tmpdir(), "ss-cli-bundle-"));
    expect(bundleIsFresh(dir)).toBe(false); // never built
    await buildCli(dir);
    const built = readManifest(dir).inputs;
    // Stamped from the files as they are now: other work may edit src/ while this test runs.
    const current = (): { [path: string]: Record } =>
      Object.fromEntries(
        Object.keys(built).map((path) => {
          const bytes = readFileSync(join(repoRoot, path));
          const s = statSync(join(repoRoot, path));
          const hash = createHash("sha256").update(bytes).digest("base64url").slice(0, 16);
          return [path, [s.mtimeMs, s.size, hash]];
        }),
      );
    writeManifest(dir, current());
    expect(bundleIsFresh(dir)).toBe(true);

    const touched = current();
    touched["src/core/decide.ts"]![0] -= 1; // another mtime, the same content: still fresh
    writeManifest(dir, touched);
    expect(bundleIsFresh(dir)).toBe(true);

    const edited = current();
    edited["src/core/decide.ts"]![0] -= 1;
    edited["src/core/decide.ts"]![2] = "another-content";
    writeManifest(dir, edited);
    expect(bundleIsFresh(dir)).toBe(false);

    const resized = current();
    resized["src/cli/main.ts"]![1] += 1;
    resized["src/cli/main.ts"]![2] = "another-content";
    writeManifest(dir, resized);
    expect(bundleIsFresh(dir)).toBe(false);

    writeManifest(dir, { ...current(), "src/core/gone.ts": [1, 1, "x"] });
    expect(bundleIsFresh(dir)).toBe(false);

    writeManifest(dir, current());
    rmSync(bundleFile(dir));
    expect(bundleIsFresh(dir)).toBe(false);
  });
});

describe("output to a reader that stops early (`… | head -1`)", () => {
  it("exits 0 without an EPIPE stack trace", () => {
    const input = '{"visitorId":"a"}\n'.repeat(50_000);
    // sh: the CLI's stdout is a pipe whose reader (head) exits after one line.
    const r = spawnSync(
      "sh",
      [
        "-c",
        `"${process.execPath}" "${join(repoRoot, "bin", "splitstream.js")}" decide --datafile "${join(repoRoot, "demo", "datafile.json")}" --input - | head -1`,
      ],
      { input, encoding: "utf8" },
    );
    expect(r.stdout.split("\n")[0]).toMatch(/^\{"visitorId":"a","decisions":\{/);
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled 'error' event/);
  });
});
