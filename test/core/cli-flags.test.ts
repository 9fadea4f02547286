/**
 * `splitstream decide --flags` (src/cli/decide-command.ts; docs/decisions.md "Feature flags",
 * README.md "CLI"), run as the real `splitstream` bin:
 *
 * - batch (`--input`): every output line's `flags` must be what the official SDK's
 *   `createUserContext(visitorId, attributes).decide(flagKey)` gives for that line's visitor —
 *   `enabled`, `variationKey` and `variables`, through JSON (the mapping where the SDK has no
 *   decision is docs/decisions.md's: off, no variation, the defaults) — for a generated flag
 *   datafile and thousands of generated visitors; and the output must be, byte for byte, the
 *   documented NDJSON built the plain way (JSON.stringify of `decideAll` and `decideAllFlags`,
 *   flags in datafile order), malformed lines handled as without `--flags`;
 * - one visitor (`--visitor`): `--json` carries `decideAllFlags`' decisions; the text shows each
 *   flag's row and variables.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import type { Client } from "@optimizely/optimizely-sdk";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot, runCliSync as cli } from "../support/cli-stand-in";
import {
  decideAllFlags,
  loadDatafile,
  type CompiledDatafile,
  type Datafile,
} from "../../src/core/index";
import {
  describeValue,
  generateDatafile,
  generateVisitors,
  type GenerateVisitorsOptions,
} from "../support/generate-datafile";
import { expectedOutput } from "../support/cli-decide-oracle";
import {
  generateFlagDatafile,
  sdkDecide,
  sdkDefaultVariables,
  sdkFlagClient,
  sdkUser,
  type GenerateFlagsOptions,
} from "../support/generate-flags";

function loaded(json: string): CompiledDatafile {
  const result = loadDatafile(json);
  if (!result.ok) throw new Error(`datafile does not load: ${JSON.stringify(result.problems)}`);
  return result.compiled;
}

/** A value as it comes back from JSON (Infinity → null, -0 → 0…). */
function throughJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}

const SCENARIOS: Array<{
  name: string;
  seed: number;
  visitors: number;
  flags: GenerateFlagsOptions;
  visitorOptions: GenerateVisitorsOptions;
}> = [
  {
    name: "flags with every kind of rule",
    seed: 201,
    visitors: 3000,
    flags: { featureRolloutRate: 0.4 },
    visitorOptions: { forcedRate: 0.1 },
  },
  {
    name: "sticky bucket maps, Object.prototype names, invalid visitors",
    seed: 202,
    visitors: 2000,
    flags: { flags: 20, base: { prototypeNames: true } },
    visitorOptions: { prototypeNames: true, invalidRate: 0.05, bucketMapRate: 0.3 },
  },
];

const MAX_REPORTED = 5;
const clients: Client[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

describe("splitstream decide --flags --input: every line's flags are the SDK's decide()", () => {
  const dir = mkdtempSync(join(tmpdir(), "ss-cli-flags-"));

  it.each(SCENARIOS)(
    "$name (seed $seed, $visitors visitors)",
    async (scenario) => {
      const generated = generateFlagDatafile(scenario.seed, scenario.flags);
      const json = JSON.stringify(generated);
      const datafile = JSON.parse(json) as Datafile;
      const compiled = loaded(json);
      const visitors = generateVisitors(
        scenario.seed,
        scenario.visitors,
        datafile,
        scenario.visitorOptions,
      );
      // Lines as a user's file would hold them (JSON drops undefined, NaN becomes null…), CRLF on
      // some, plus blank and malformed lines and ids the SDK refuses.
      const lines = [
        ...visitors.map((v, i) => JSON.stringify(v) + (i % 9 === 0 ? "\r" : "")),
        JSON.stringify({ visitorId: "undefined", attributes: {} }),
        JSON.stringify({ visitorId: "Zoë 🎉" }),
        "",
        "{not json",
        '{"visitorId":"x","attributes":[1]}',
        '{"visitorId":42}',
      ];
      const input = lines.join("\n");
      const file = join(dir, `${scenario.seed}.ndjson`);
      const datafileFile = join(dir, `${scenario.seed}.json`);
      writeFileSync(file, input);
      writeFileSync(datafileFile, json);

      const r = cli(["decide", "--datafile", datafileFile, "--input", file, "--flags"]);
      expect(r.stderr).toContain("malformed input line(s)");
      expect(r.code).toBe(1);
      // Byte for byte the plain JSON, flags in datafile order…
      expect(r.stdout).toBe(expectedOutput(compiled, input, true));
      // …and without --flags exactly the output as before.
      const plain = cli(["decide", "--datafile", datafileFile, "--input", file]);
      expect(plain.stdout).toBe(expectedOutput(compiled, input, false));

      // The SDK, line by line.
      const client = await sdkFlagClient(json);
      clients.push(client);
      const defaults = await sdkDefaultVariables(datafile);
      const flagKeys = datafile.featureFlags.map((f) => f.key);
      const outLines = r.stdout.split("\n");
      outLines.pop();
      const inputs = lines.filter((l) => l.trim() !== "");
      expect(outLines.length).toBe(inputs.length);
      const mismatches: string[] = [];
      let checked = 0;
      let withVariation = 0;
      const t0 = performance.now();
      outLines.forEach((text, n) => {
        const out = JSON.parse(text) as {
          visitorId: string | null;
          flags?: Record<
            string,
            { enabled: boolean; variationKey: string | null; variables: unknown }
          >;
        };
        if (out.visitorId === null) {
          expect(out.flags, `an error line has no flags (line ${n + 1})`).toBeUndefined();
          return;
        }
        const visitor = JSON.parse(inputs[n]!) as { visitorId: string; attributes?: unknown };
        expect(out.visitorId).toBe(visitor.visitorId);
        expect(Object.keys(out.flags ?? {}).sort()).toEqual([...flagKeys].sort());
        const user = sdkUser(client, {
          visitorId: visitor.visitorId,
          attributes: visitor.attributes,
        });
        for (const key of flagKeys) {
          checked++;
          const outcome = sdkDecide(user, key);
          const expected =
            outcome.kind === "decision"
              ? {
                  enabled: outcome.decision.enabled,
                  variationKey: outcome.decision.variationKey,
                  variables: throughJson(outcome.decision.variables),
                }
              : { enabled: false, variationKey: null, variables: throughJson(defaults.get(key)) };
          const ours = out.flags![key];
          if (ours?.variationKey != null) withVariation++;
          if (!isDeepStrictEqual(ours, expected) && mismatches.length < MAX_REPORTED) {
            mismatches.push(
              `input line ${n + 1}, flag ${JSON.stringify(key)}\n` +
                `    visitor: ${describeValue(visitor)}\n` +
                `    SDK:     ${outcome.kind === "decision" ? describeValue(outcome.decision) : `${outcome.kind}: ${outcome.error}`}\n` +
                `    expected ${describeValue(expected)}\n` +
                `    CLI:     ${describeValue(ours)}`,
            );
          }
        }
      });
      if (mismatches.length > 0)
        expect.fail(
          `decide --flags differs from the SDK (seed ${scenario.seed}; generateFlagDatafile(${scenario.seed}, ` +
            `${JSON.stringify(scenario.flags)}), generateVisitors(${scenario.seed}, ${scenario.visitors}, datafile, ` +
            `${JSON.stringify(scenario.visitorOptions)}); input line N is visitor N-1):\n${mismatches.join("\n")}`,
        );
      expect(checked).toBeGreaterThan(scenario.visitors * flagKeys.length * 0.9);
      expect(withVariation / checked, "share of flags decided to a variation").toBeGreaterThan(0.2);
      console.info(
        `cli --flags ${scenario.name}: ${outLines.length} lines × ${flagKeys.length} flags = ${checked} checked against the SDK ` +
          `(${withVariation} with a variation) in ${(performance.now() - t0).toFixed(0)} ms`,
      );
    },
    60_000,
  );

  it("prints an empty flags object for a datafile without flags", () => {
    const file = join(dir, "no-flags.json");
    writeFileSync(file, JSON.stringify(generateDatafile(7, { featureFlags: 0 })));
    const r = cli(["decide", "--datafile", file, "--input", "-", "--flags"], '{"visitorId":"a"}\n');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\{"visitorId":"a","decisions":\{.+\},"flags":\{\}\}\n$/);
    const text = cli(["decide", "--datafile", file, "--visitor", "a", "--flags"]);
    expect(text.stdout).toContain("\n\nno feature flags in the datafile\n");
  });
});

describe("splitstream decide --visitor --flags", () => {
  const datafile = join(repoRoot, "test", "fixtures", "datafiles", "decisions.json");
  const compiled = loaded(readFileSync(datafile, "utf8"));
  const attributes = { country: "DE", age: 12 };
  const args = [
    "decide",
    "--datafile",
    datafile,
    "--visitor",
    "x",
    "--attributes",
    JSON.stringify(attributes),
    "--flags",
  ];
  const flags = decideAllFlags(compiled, { visitorId: "x", attributes });

  it("--json adds every flag's decision", () => {
    expect(flags.length).toBeGreaterThan(0);
    const r = cli([...args, "--json"]);
    expect(r.code).toBe(0);
    const body = JSON.parse(r.stdout) as { decisions: unknown[]; flags: unknown };
    expect(body.flags).toEqual(throughJson(flags));
    expect(body.decisions.length).toBe(compiled.experiments.length);
    // Without --flags, no flags key.
    const without = JSON.parse(cli(args.filter((a) => a !== "--flags").concat("--json")).stdout);
    expect(without).not.toHaveProperty("flags");
  });

  it("the text shows each flag's row and its variables", () => {
    const r = cli(args);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n").map((l) => l.trim());
    expect(lines).toContainEqual(
      expect.stringMatching(/^flag\s+enabled\s+variation\s+rule\s+reason$/),
    );
    for (const f of flags) {
      const cells = [
        f.flagKey,
        String(f.enabled),
        f.variationKey ?? "-",
        f.ruleKey ?? "-",
        f.reason,
      ];
      expect(
        lines.some((l) => l.split(/\s{2,}/).join("|") === cells.join("|")),
        `row of ${f.flagKey}: ${cells.join(" ")}`,
      ).toBe(true);
      expect(lines).toContain(`variables of ${f.flagKey}:`);
      for (const [key, value] of Object.entries(f.variables))
        expect(
          lines.some((l) => l.startsWith(key) && l.endsWith(JSON.stringify(value))),
          `${f.flagKey}.${key}`,
        ).toBe(true);
    }
  });
});
