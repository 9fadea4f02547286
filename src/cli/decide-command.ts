/**
 * `splitstream decide`: explain one visitor's decisions, or decide NDJSON visitors in batch
 * (CONTRACT §7).
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  decideAll,
  decidePrepared,
  prepareVisitor,
  type CompiledDatafile,
  type Decision,
} from "../core/index";
import { CliError, loadDatafileFile } from "./io";

export const DECIDE_USAGE = `Usage:
  splitstream decide --datafile FILE --visitor ID [--attributes JSON] [--experiment KEY] [--json]
      Explains one visitor's decision in every experiment (or one), with the reason and bucket.
  splitstream decide --datafile FILE --input FILE|-
      Reads NDJSON lines {"visitorId": "...", "attributes": {...}} and writes one line per input,
      in order: {"visitorId": "...", "decisions": {"<experimentKey>": "<variationKey>" | null}}.
      A malformed line yields {"visitorId": null, "line": N, "error": "..."}; the exit status is
      then 1 (every other line is still decided).`;

function parseAttributes(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new CliError(`--attributes is not valid JSON: ${(error as Error).message}`, 2);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new CliError("--attributes must be a JSON object", 2);
  }
  return value as Record<string, unknown>;
}

function renderExplanation(
  compiled: CompiledDatafile,
  visitorId: string,
  decisions: Decision[],
): string {
  const rows = decisions.map((d) => [
    d.experimentKey,
    d.variationKey ?? "-",
    d.reason,
    d.bucket === null ? "-" : String(d.bucket),
  ]);
  const header = ["experiment", "variation", "reason", "bucket"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    `visitor ${JSON.stringify(visitorId)} — datafile revision ${compiled.revision}`,
    line(header),
    ...rows.map(line),
  ].join("\n");
}

/** One NDJSON input line → one output object (never throws). */
export function decideLine(
  compiled: CompiledDatafile,
  text: string,
  lineNumber: number,
): { output: object; ok: boolean } {
  const fail = (message: string) => ({
    output: { visitorId: null, line: lineNumber, error: message },
    ok: false,
  });
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
  ) {
    return fail("attributes must be a JSON object");
  }
  const decisions: Record<string, string | null> = {};
  for (const d of decideAll(compiled, {
    visitorId,
    attributes: attributes as Record<string, unknown> | undefined,
  })) {
    decisions[d.experimentKey] = d.variationKey;
  }
  return { output: { visitorId, decisions }, ok: true };
}

async function runBatch(compiled: CompiledDatafile, input: string): Promise<number> {
  const stream = input === "-" ? process.stdin : createReadStream(input, { encoding: "utf8" });
  const opened = new Promise<void>((resolve, reject) => {
    if (input === "-") resolve();
    else stream.once("open", () => resolve()).once("error", reject);
  });
  try {
    await opened;
  } catch (error) {
    throw new CliError(
      `cannot read ${input}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let lineNumber = 0;
  let failures = 0;
  let buffer = "";
  for await (const text of lines) {
    lineNumber++;
    if (text.trim() === "") continue;
    const { output, ok } = decideLine(compiled, text, lineNumber);
    if (!ok) failures++;
    buffer += `${JSON.stringify(output)}\n`;
    if (buffer.length > 1 << 16) {
      if (!process.stdout.write(buffer)) await new Promise((r) => process.stdout.once("drain", r));
      buffer = "";
    }
  }
  process.stdout.write(buffer);
  if (failures > 0) process.stderr.write(`${failures} malformed input line(s)\n`);
  return failures > 0 ? 1 : 0;
}

export async function runDecide(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        datafile: { type: "string" },
        visitor: { type: "string" },
        attributes: { type: "string" },
        experiment: { type: "string" },
        input: { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${DECIDE_USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(`${DECIDE_USAGE}\n`);
    return 0;
  }
  if (!values.datafile) throw new CliError(`--datafile is required\n\n${DECIDE_USAGE}`, 2);
  if ((values.visitor === undefined) === (values.input === undefined)) {
    throw new CliError(`give exactly one of --visitor or --input\n\n${DECIDE_USAGE}`, 2);
  }
  const attributes = parseAttributes(values.attributes);
  const compiled = await loadDatafileFile(values.datafile);
  if (values.input !== undefined) return runBatch(compiled, values.input);

  const visitorId = values.visitor!;
  let decisions: Decision[];
  if (values.experiment !== undefined) {
    const experiment = compiled.experimentByKey.get(values.experiment);
    if (!experiment)
      throw new CliError(
        `no experiment with key ${JSON.stringify(values.experiment)} in the datafile`,
      );
    decisions = [decidePrepared(experiment, prepareVisitor(compiled, { visitorId, attributes }))];
  } else {
    decisions = decideAll(compiled, { visitorId, attributes });
  }
  process.stdout.write(
    values.json
      ? `${JSON.stringify({ visitorId, revision: compiled.revision, decisions }, null, 2)}\n`
      : `${renderExplanation(compiled, visitorId, decisions)}\n`,
  );
  return 0;
}
