/**
 * The oracle of `splitstream decide --input` (docs/decisions.md, README.md "CLI"): what the CLI
 * must write for an NDJSON input, built the plain way — JSON.stringify of `decideAll` and, with
 * `--flags`, `decideAllFlags`, in datafile order — for test/core/cli-batch.test.ts and
 * test/core/cli-flags.test.ts.
 */
import {
  decideAll,
  decideAllFlags,
  type CompiledDatafile,
  type Visitor,
} from "../../src/core/index";

/** What `decide --input` must write for one line (no newline), the plain way; null: no line. */
function expectedLine(
  compiled: CompiledDatafile,
  text: string,
  lineNumber: number,
  flags: boolean,
): string | null {
  if (text.trim() === "") return null;
  const fail = (error: string) => JSON.stringify({ visitorId: null, line: lineNumber, error });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail(`invalid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    return fail("expected a JSON object");
  const { visitorId, attributes } = value as { visitorId?: unknown; attributes?: unknown };
  if (typeof visitorId !== "string") return fail("visitorId must be a string");
  if (
    attributes !== undefined &&
    (attributes === null || typeof attributes !== "object" || Array.isArray(attributes))
  )
    return fail("attributes must be a JSON object");
  const visitor = { visitorId, attributes } as Visitor;
  // Written pair by pair: an object would put integer-like keys first, not in datafile order.
  const decisions = decideAll(compiled, visitor).map(
    (d) => `${JSON.stringify(d.experimentKey)}:${JSON.stringify(d.variationKey)}`,
  );
  let line = `{"visitorId":${JSON.stringify(visitorId)},"decisions":{${decisions.join(",")}}`;
  if (flags) {
    const entries = decideAllFlags(compiled, visitor).map(
      (d) =>
        `${JSON.stringify(d.flagKey)}:${JSON.stringify({ enabled: d.enabled, variationKey: d.variationKey, variables: d.variables })}`,
    );
    line += `,"flags":{${entries.join(",")}}`;
  }
  return `${line}}`;
}

export function expectedOutput(compiled: CompiledDatafile, input: string, flags = false): string {
  const lines = input.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines
    .map((text, i) => expectedLine(compiled, text, i + 1, flags))
    .filter((line): line is string => line !== null)
    .map((line) => `${line}\n`)
    .join("");
}
