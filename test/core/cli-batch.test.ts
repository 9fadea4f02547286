/**
 * The batch path of `splitstream decide --input` (src/cli/decide-command.ts), which writes its
 * output as bytes (src/cli/output-buffer.ts) and reads files in 64 KiB pieces: its output must be,
 * byte for byte, the documented NDJSON — one {"visitorId", "decisions": {"<experimentKey>":
 * "<variationKey>" | null}} line per input line, experiments in datafile order, a malformed line
 * giving {"visitorId": null, "line", "error"} — whatever the datafile, the visitors, the input's
 * encoding and how the input falls into reads. The expected output is built here the plain way,
 * from `decideAll` and JSON.stringify.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot, runCliSyncBytes as cli } from "../support/cli-stand-in";
import { encodeText, OutputBuffer, type ByteSink } from "../../src/cli/output-buffer";
import {
  decideAll,
  decideVariations,
  loadDatafile,
  type CompiledDatafile,
  type CompiledVariation,
  type Visitor,
} from "../../src/core/index";
import {
  generateDatafile,
  generateVisitors,
  type GenerateDatafileOptions,
  type GenerateVisitorsOptions,
} from "../support/generate-datafile";
import { expectedOutput } from "../support/cli-decide-oracle";

function loaded(json: string): CompiledDatafile {
  const result = loadDatafile(json);
  if (!result.ok) throw new Error(`datafile does not load: ${JSON.stringify(result.problems)}`);
  return result.compiled;
}

const SCENARIOS: Array<{
  name: string;
  seed: number;
  datafile: GenerateDatafileOptions;
  visitors?: GenerateVisitorsOptions;
}> = [
  { name: "generated datafile", seed: 11, datafile: {} },
  {
    name: "mutually exclusive groups",
    seed: 12,
    datafile: { randomGroups: 4, experimentsPerGroup: [2, 5], experiments: 12 },
  },
  {
    name: "Object.prototype attribute names",
    seed: 13,
    datafile: { prototypeNames: true },
    visitors: { prototypeNames: true, invalidRate: 0.05 },
  },
  // Sticky variations may belong to another experiment: pieces made as variations occur.
  { name: "$opt_experiment_bucket_map", seed: 14, datafile: {}, visitors: { bucketMapRate: 0.3 } },
  {
    name: "feature-rollout experiments and CMAB",
    seed: 15,
    datafile: { featureRolloutRate: 1, featureFlags: 6, cmabRate: 0.2 },
  },
];

describe("splitstream decide --input: the output, byte for byte", () => {
  const dir = mkdtempSync(join(tmpdir(), "ss-cli-batch-"));

  it.each(SCENARIOS)("$name: file and stdin give the plain JSON of decideAll", (scenario) => {
    const datafile = generateDatafile(scenario.seed, scenario.datafile);
    const json = JSON.stringify(datafile);
    const compiled = loaded(json);
    const visitors = generateVisitors(scenario.seed, 1500, datafile, scenario.visitors);
    // Non-ASCII ids (2-, 3- and 4-byte UTF-8, a lone surrogate JSON escapes), blank and
    // malformed lines, CRLF endings on some lines, and no newline after the last.
    const extra = ["Zoë", "東京-visitor", "🎉 party", "\ud800 lone", "tab\there"].map((id) =>
      JSON.stringify({ visitorId: id, attributes: {} }),
    );
    const lines = [
      ...visitors.map((v, i) => JSON.stringify(v) + (i % 7 === 0 ? "\r" : "")),
      ...extra,
      "",
      "   ",
      "{not json",
      "[1,2]",
      '{"visitorId":"x","attributes":[1]}',
    ];
    const input = lines.join("\n");
    const file = join(dir, `${scenario.seed}.ndjson`);
    const datafileFile = join(dir, `${scenario.seed}.json`);
    writeFileSync(file, input);
    writeFileSync(datafileFile, json);
    const expected = expectedOutput(compiled, input);

    const fromFile = cli(["decide", "--datafile", datafileFile, "--input", file]);
    expect(fromFile.code).toBe(1); // the malformed lines
    expect(fromFile.stderr).toContain("malformed input line(s)");
    expect(fromFile.stdout.toString("utf8")).toBe(expected);
    expect(fromFile.stdout.equals(Buffer.from(expected, "utf8"))).toBe(true);

    const fromStdin = cli(
      ["decide", "--datafile", datafileFile, "--input", "-"],
      Buffer.from(input),
    );
    expect(fromStdin.code).toBe(1);
    expect(fromStdin.stdout.equals(fromFile.stdout)).toBe(true);
  });

  it("keeps characters whole when they straddle two reads of the file", () => {
    const datafile = join(repoRoot, "test", "fixtures", "datafiles", "decisions.json");
    const compiled = loaded(readFileSync(datafile, "utf8"));
    // The file is read 64 KiB at a time: before each boundary a padding line, then a line whose
    // 2-, 3- or 4-byte character starts 1, 2 or 3 bytes before the boundary; last, a line with
    // bytes that are not UTF-8 (each becomes U+FFFD, as with a stream's setEncoding("utf8")).
    const READ = 1 << 16;
    const head = '{"visitorId":"';
    const tail = '"}\n';
    const cases: Array<[string, number]> = [
      ["é", 1],
      ["日", 1],
      ["日", 2],
      ["🎉", 1],
      ["🎉", 2],
      ["🎉", 3],
    ];
    const parts: Buffer[] = [];
    let size = 0;
    const push = (bytes: Buffer): void => {
      parts.push(bytes);
      size += bytes.length;
    };
    cases.forEach(([char, before], i) => {
      const charAt = (i + 1) * READ - before;
      const padding = charAt - size - (head.length + tail.length) - (head.length + 1);
      push(Buffer.from(`${head}${"p".repeat(padding)}${tail}`));
      push(Buffer.from(`${head}x`));
      expect(size).toBe(charAt);
      push(Buffer.from(`${char}${char}${tail}`));
    });
    push(Buffer.from([...Buffer.from(`${head}bad `), 0xff, 0xc3, ...Buffer.from(` bytes${tail}`)]));
    const bytes = Buffer.concat(parts);
    const file = join(dir, "boundaries.ndjson");
    writeFileSync(file, bytes);

    const r = cli(["decide", "--datafile", datafile, "--input", file]);
    expect(r.code).toBe(0);
    const text = r.stdout.toString("utf8");
    expect(text).toBe(expectedOutput(compiled, bytes.toString("utf8")));
    for (const [char] of cases) expect(text).toContain(`"visitorId":"x${char}${char}"`);
    expect(text).toContain('"visitorId":"bad \ufffd\ufffd bytes"');
  });

  it("reports an input it cannot read, without a stack trace", () => {
    const datafile = join(repoRoot, "test", "fixtures", "datafiles", "decisions.json");
    const missing = cli(["decide", "--datafile", datafile, "--input", join(dir, "nope.ndjson")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("cannot read");
    expect(missing.stderr).toContain("ENOENT");
    const directory = cli(["decide", "--datafile", datafile, "--input", dir]);
    expect(directory.code).toBe(1);
    expect(directory.stderr).toContain(`splitstream decide: cannot read ${dir}: EISDIR`);
  });
});

describe("decideVariations (the batch path's deciding)", () => {
  it.each(SCENARIOS)("$name: the variations of decideAll", (scenario) => {
    const datafile = generateDatafile(scenario.seed, scenario.datafile);
    const compiled = loaded(JSON.stringify(datafile));
    const out: Array<CompiledVariation | null> = [];
    for (const v of generateVisitors(scenario.seed + 100, 2000, datafile, scenario.visitors)) {
      const visitor = { visitorId: v.visitorId, attributes: v.attributes } as Visitor;
      decideVariations(compiled, visitor, out);
      const all = decideAll(compiled, visitor);
      expect(out.length).toBe(all.length);
      for (let i = 0; i < all.length; i++) {
        expect(out[i]?.id ?? null).toBe(all[i]!.variationId);
        expect(out[i]?.key ?? null).toBe(all[i]!.variationKey);
      }
    }
  });
});

describe("OutputBuffer", () => {
  /** A sink that records what it is given: as it is at the time of the write, and as it ends up. */
  function recordingSink(holds: boolean) {
    const given: Uint8Array[] = [];
    const copies: Buffer[] = [];
    const sink: ByteSink = {
      write(bytes) {
        given.push(bytes);
        copies.push(Buffer.from(bytes));
        return true;
      },
      // An asynchronous sink still holds what it was given; a synchronous one holds nothing.
      get writableLength() {
        return holds ? 1 : 0;
      },
    };
    return { sink, given, copies };
  }

  const texts = ["plain", "Zoë", "日本語", "🎉", "é at start", "end é", "\ud800 lone", "a🎉b日c"];

  it.each([false, true])(
    "writes text and pieces as UTF-8, in order, across many flushes (sink holds buffers: %s)",
    (holds) => {
      const { sink, given, copies } = recordingSink(holds);
      const out = new OutputBuffer(sink);
      const big = encodeText("x".repeat(600_000)); // bigger than a buffer
      let expected = "";
      for (let i = 0; i < 40_000; i++) {
        const text = texts[i % texts.length]!;
        out.text(text);
        out.bytes(encodeText(`,${i}`));
        expected += `${text},${i}`;
        if (i === 20_000) {
          out.bytes(big);
          expected += "x".repeat(600_000);
        }
      }
      out.flush();
      out.flush(); // nothing left: no empty write
      const wanted = Buffer.from(expected, "utf8");
      expect(Buffer.concat(copies).equals(wanted)).toBe(true);
      expect(copies.every((c) => c.length > 0)).toBe(true);
      expect(copies.length).toBeGreaterThan(2);
      if (holds) {
        // Nothing given to a sink that keeps it was overwritten afterwards.
        expect(Buffer.concat(given).equals(wanted)).toBe(true);
      }
    },
  );

  it("marks itself full when the sink asks to wait", () => {
    let calls = 0;
    const out = new OutputBuffer({ write: () => ++calls > 1, writableLength: 0 });
    out.text("a");
    out.flush();
    expect(out.full).toBe(true);
    out.full = false;
    out.text("b");
    out.flush();
    expect(out.full).toBe(false);
  });
});
