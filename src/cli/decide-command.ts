/**
 * `splitstream decide`: explain one visitor's decisions, or decide NDJSON visitors in batch
 * (README.md "CLI").
 */
import { createReadStream } from "node:fs";
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

/**
 * Turns one NDJSON input line into its output line (JSON, no newline) for one datafile; never
 * throws. The output is the JSON of {"visitorId", "decisions": {"<experimentKey>": "<variationKey>"
 * | null}} with the experiments in datafile order, but written as text: the JSON of every
 * (experiment, variation) pair is computed once per datafile instead of an object being built and
 * stringified per visitor — in a whole-process batch, JSON work costs more than deciding
 * (docs/benchmarks.md, `cli-decide`).
 */
export function lineDecider(
  compiled: CompiledDatafile,
): (text: string, lineNumber: number) => { line: string; ok: boolean } {
  // Per experiment, its `"key":null` text and its `"key":"variation"` texts by variation key, with
  // the separating comma; filled as variations occur. Experiment keys are unique (a duplicate is
  // a datafile error), so each appears once per line.
  const pieces = compiled.experiments.map((e, i) => {
    const key = `${i === 0 ? "" : ","}${JSON.stringify(e.key)}:`;
    return { key, none: `${key}null`, byVariation: new Map<string, string>() };
  });
  const fail = (lineNumber: number, message: string) => ({
    line: JSON.stringify({ visitorId: null, line: lineNumber, error: message }),
    ok: false,
  });
  return (text, lineNumber) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return fail(lineNumber, `invalid JSON: ${(error as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      return fail(lineNumber, "expected a JSON object");
    const { visitorId, attributes } = value as { visitorId?: unknown; attributes?: unknown };
    if (typeof visitorId !== "string") return fail(lineNumber, "visitorId must be a string");
    if (
      attributes !== undefined &&
      (attributes === null || typeof attributes !== "object" || Array.isArray(attributes))
    ) {
      return fail(lineNumber, "attributes must be a JSON object");
    }
    const decisions = decideAll(compiled, {
      visitorId,
      attributes: attributes as Record<string, unknown> | undefined,
    });
    let line = `{"visitorId":${JSON.stringify(visitorId)},"decisions":{`;
    for (let i = 0; i < decisions.length; i++) {
      const variationKey = decisions[i]!.variationKey;
      const { key, none, byVariation } = pieces[i]!;
      // Most pairs end in no variation (audience, traffic): no map lookup for those.
      if (variationKey === null) {
        line += none;
        continue;
      }
      let piece = byVariation.get(variationKey);
      if (piece === undefined)
        byVariation.set(variationKey, (piece = key + JSON.stringify(variationKey)));
      line += piece;
    }
    return { line: `${line}}}`, ok: true };
  };
}

/** Output is written in pieces of about this many characters (fewer, larger writes). */
const FLUSH_CHARS = 1 << 16;

async function runBatch(compiled: CompiledDatafile, input: string): Promise<number> {
  const stream =
    input === "-"
      ? process.stdin.setEncoding("utf8")
      : createReadStream(input, { encoding: "utf8" });
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
  const decide = lineDecider(compiled);
  let lineNumber = 0;
  let failures = 0;
  let buffer = "";
  let full = false;
  const take = (text: string): void => {
    lineNumber++;
    if (text.trim() === "") return;
    const { line, ok } = decide(text, lineNumber);
    if (!ok) failures++;
    buffer += `${line}\n`;
    // Written as soon as it is this big, even inside one input chunk: an output line is ~25
    // bytes per experiment, so one 64 KiB input chunk can make megabytes, and a string that
    // large costs more to build and collect than the extra write() calls.
    if (buffer.length > FLUSH_CHARS) {
      if (!process.stdout.write(buffer)) full = true;
      buffer = "";
    }
  };
  // Lines are split here rather than by node:readline, which costs an event and a callback per
  // line. NDJSON separates lines with \n; the \r of a \r\n is JSON whitespace.
  let rest = "";
  for await (const chunk of stream as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      take(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
    if (full) {
      // Back-pressure (stdout is asynchronous when it is a pipe on some platforms).
      await new Promise((r) => process.stdout.once("drain", r));
      full = false;
    }
  }
  if (rest !== "") take(rest);
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
