/**
 * `splitstream decide`: explain one visitor's decisions, or decide NDJSON visitors in batch
 * (README.md "CLI"); with `--flags`, feature flags too, as the SDK's `decide(flagKey)`
 * (docs/decisions.md, "Feature flags").
 */
import { closeSync, openSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { parseArgs } from "node:util";
import type { CompiledFeatureFlag } from "../core/compile";
import { decideFlagVariations, flagVariables } from "../core/features";
import {
  decideAll,
  decideAllFlags,
  decidePrepared,
  decideVariations,
  prepareVisitor,
  type CompiledDatafile,
  type CompiledVariation,
  type Decision,
  type FlagDecision,
} from "../core/index";
import { CliError, loadDatafileFile } from "./io";
import { encodeText, OutputBuffer } from "./output-buffer";

export const DECIDE_USAGE = `Usage:
  splitstream decide --datafile FILE --visitor ID [--attributes JSON] [--experiment KEY] [--flags] [--json]
      Explains one visitor's decision in every experiment (or one), with the reason and bucket;
      with --flags also every feature flag's: enabled, variation, rule, reason and variables.
  splitstream decide --datafile FILE --input FILE|- [--flags]
      Reads NDJSON lines {"visitorId": "...", "attributes": {...}} and writes one line per input,
      in order: {"visitorId": "...", "decisions": {"<experimentKey>": "<variationKey>" | null}}.
      With --flags every line also has, for every flag in datafile order,
      "flags": {"<flagKey>": {"enabled": true|false, "variationKey": "..." | null, "variables": {...}}}.
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

/** A variable's value as it reads in JSON; what JSON cannot hold (Infinity, NaN) as JavaScript. */
function renderValue(value: unknown): string {
  return typeof value === "number" && !Number.isFinite(value)
    ? String(value)
    : JSON.stringify(value);
}

/**
 * The flags part of `decide --visitor --flags`: one aligned row per flag (enabled, variation,
 * rule, reason; `-` for none), then each flag's variables with their types and values.
 */
function renderFlags(compiled: CompiledDatafile, flags: readonly FlagDecision[]): string {
  if (flags.length === 0) return "no feature flags in the datafile";
  const header = ["flag", "enabled", "variation", "rule", "reason"];
  const rows = flags.map((f) => [
    f.flagKey,
    String(f.enabled),
    f.variationKey ?? "-",
    f.ruleKey ?? "-",
    f.reason,
  ]);
  const lines = alignedLines([header, ...rows]);
  for (const f of flags) {
    const definitions = compiled.featureFlagByKey.get(f.flagKey)?.variables ?? [];
    if (definitions.length === 0) continue;
    lines.push("", `variables of ${f.flagKey}:`);
    const variableRows = definitions.map((v) => [v.key, v.type, renderValue(f.variables[v.key])]);
    for (const line of alignedLines(variableRows)) lines.push(`  ${line}`);
  }
  return lines.join("\n");
}

/** Rows as lines, columns two spaces apart and padded to their widest cell, no trailing spaces. */
function alignedLines(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((cells) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd(),
  );
}

/** `{"visitorId":` … `,"decisions":{` … `}}` and a newline, as bytes. */
const LINE_START = encodeText('{"visitorId":');
const DECISIONS_START = encodeText(',"decisions":{');
/** Between the decisions and the flags, with `--flags`. */
const FLAGS_START = encodeText('},"flags":{');
const LINE_END = encodeText("}}\n");

/**
 * The bytes of every flag's entry in the `--flags` output, by the variation it was decided to:
 * `"<flagKey>":{"enabled":…,"variationKey":…,"variables":{…}}` (with the separating comma but for
 * the first flag). A flag's entry depends on its variation alone (null: no variation, an invalid
 * visitor included — off, with the defaults), so each is rendered once per datafile and copied.
 */
function flagPieces(
  flags: readonly CompiledFeatureFlag[],
): (index: number, variation: CompiledVariation | null) => Uint8Array {
  const keys = flags.map((f, i) => `${i === 0 ? "" : ","}${JSON.stringify(f.key)}:`);
  const pieces = flags.map(() => new Map<CompiledVariation | null, Uint8Array>());
  return (index, variation) => {
    let piece = pieces[index]!.get(variation);
    if (piece === undefined) {
      const entry = {
        enabled: variation?.featureEnabled === true,
        variationKey: variation?.key ?? null,
        variables: flagVariables(flags[index]!, variation),
      };
      piece = encodeText(keys[index]! + JSON.stringify(entry));
      pieces[index]!.set(variation, piece);
    }
    return piece;
  };
}

/**
 * Turns one NDJSON input line into its output line, newline included, appended to `out`; returns
 * false for a malformed line (its output line is then the error) and never throws. The output is
 * the JSON of {"visitorId", "decisions": {"<experimentKey>": "<variationKey>" | null}} with the
 * experiments in datafile order, but written as bytes: the UTF-8 of every (experiment, variation)
 * pair is encoded once per datafile and copied, instead of an object being built, stringified
 * and encoded per visitor — in a whole-process batch that costs more than deciding
 * (docs/benchmarks.md, `cli-decide`). With `flags`, the line also has
 * "flags": {"<flagKey>": {"enabled", "variationKey", "variables"}} for every flag in datafile
 * order, written the same way (docs/decisions.md, "Feature flags").
 */
export function lineDecider(
  compiled: CompiledDatafile,
  options: { flags?: boolean } = {},
): (out: OutputBuffer, text: string, lineNumber: number) => boolean {
  const count = compiled.experiments.length;
  const flagCount = options.flags ? compiled.featureFlags.length : 0;
  const flagPiece = flagPieces(compiled.featureFlags);
  const flagVariations = new Array<CompiledVariation | null>(flagCount);
  // Per experiment: the `"key":null` bytes, the `"key":` text (with the separating comma), and the
  // `"key":"variation"` bytes by variation, made as variations occur. Experiment keys are unique
  // (a duplicate is a datafile error), so each appears once per line.
  const keys = compiled.experiments.map((e, i) => `${i === 0 ? "" : ","}${JSON.stringify(e.key)}:`);
  const nones = keys.map((key) => encodeText(`${key}null`));
  const pieces = keys.map(() => new Map<CompiledVariation, Uint8Array>());
  const variations = new Array<CompiledVariation | null>(count);
  const fail = (out: OutputBuffer, lineNumber: number, message: string): false => {
    out.text(`${JSON.stringify({ visitorId: null, line: lineNumber, error: message })}\n`);
    return false;
  };
  return (out, text, lineNumber) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return fail(out, lineNumber, `invalid JSON: ${(error as Error).message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      return fail(out, lineNumber, "expected a JSON object");
    const { visitorId, attributes } = value as { visitorId?: unknown; attributes?: unknown };
    if (typeof visitorId !== "string") return fail(out, lineNumber, "visitorId must be a string");
    if (
      attributes !== undefined &&
      (attributes === null || typeof attributes !== "object" || Array.isArray(attributes))
    ) {
      return fail(out, lineNumber, "attributes must be a JSON object");
    }
    const visitor = { visitorId, attributes: attributes as Record<string, unknown> | undefined };
    decideVariations(compiled, visitor, variations);
    out.bytes(LINE_START);
    out.text(JSON.stringify(visitorId));
    out.bytes(DECISIONS_START);
    for (let i = 0; i < count; i++) {
      const variation = variations[i]!;
      // Most pairs end in no variation (audience, traffic): no map lookup for those.
      if (variation === null) {
        out.bytes(nones[i]!);
        continue;
      }
      let piece = pieces[i]!.get(variation);
      if (piece === undefined)
        pieces[i]!.set(variation, (piece = encodeText(keys[i]! + JSON.stringify(variation.key))));
      out.bytes(piece);
    }
    if (options.flags) {
      out.bytes(FLAGS_START);
      decideFlagVariations(compiled, prepareVisitor(compiled, visitor), flagVariations);
      for (let i = 0; i < flagCount; i++) out.bytes(flagPiece(i, flagVariations[i]!));
    }
    out.bytes(LINE_END);
    return true;
  };
}

/**
 * Bytes read from an input file at a time. Not more: a bigger piece of text (1 MiB) is allocated
 * outside V8's young generation, in fresh memory each time, and its page faults cost more than
 * the extra reads save.
 */
const READ_BYTES = 1 << 16;

/** The CliError for an input that cannot be opened or read. */
function unreadable(path: string, error: unknown): CliError {
  return new CliError(
    `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
  );
}

/**
 * The text of an input file in pieces, read synchronously: the command has nothing else to do
 * meanwhile, and a stream costs a promise, an event and a buffer copy per piece. The UTF-8 is
 * decoded as `stream.setEncoding("utf8")` decodes it (a character split between two reads is kept
 * whole; bytes that are not UTF-8 become U+FFFD).
 */
function* readFileText(path: string, fd: number): Generator<string> {
  const decoder = new StringDecoder("utf8");
  const bytes = Buffer.allocUnsafe(READ_BYTES);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, bytes, 0, READ_BYTES, null);
      } catch (error) {
        throw unreadable(path, error); // e.g. EISDIR: a directory opens, but does not read
      }
      if (n === 0) break;
      const text = decoder.write(bytes.subarray(0, n));
      if (text !== "") yield text;
    }
    const last = decoder.end();
    if (last !== "") yield last;
  } finally {
    closeSync(fd);
  }
}

/** Standard input's text in pieces, as it arrives. */
async function* readStdinText(): AsyncGenerator<string> {
  for await (const chunk of process.stdin.setEncoding("utf8")) yield chunk as string;
}

/** Opens the batch input ("-": standard input); a file that cannot be opened throws here. */
function openInput(input: string): Iterable<string> | AsyncIterable<string> {
  if (input === "-") return readStdinText();
  let fd: number;
  try {
    fd = openSync(input, "r");
  } catch (error) {
    throw unreadable(input, error);
  }
  return readFileText(input, fd);
}

async function runBatch(
  compiled: CompiledDatafile,
  input: string,
  flags: boolean,
): Promise<number> {
  const source = openInput(input);
  const decide = lineDecider(compiled, { flags });
  const out = new OutputBuffer(process.stdout);
  let lineNumber = 0;
  let failures = 0;
  const take = (text: string): void => {
    lineNumber++;
    // A line starting with "{" is not blank: no trim() for those.
    if (text.charCodeAt(0) !== 0x7b && text.trim() === "") return;
    if (!decide(out, text, lineNumber)) failures++;
  };
  // Lines are split here rather than by node:readline, which costs an event and a callback per
  // line. NDJSON separates lines with \n; the \r of a \r\n is JSON whitespace.
  let rest = "";
  for await (const chunk of source) {
    const text = rest + chunk;
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      take(text.slice(start, end));
      start = end + 1;
    }
    rest = text.slice(start);
    if (out.full) {
      // Back-pressure (stdout is asynchronous when it is a pipe on some platforms).
      await new Promise((r) => process.stdout.once("drain", r));
      out.full = false;
    }
  }
  if (rest !== "") take(rest);
  out.flush();
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
        flags: { type: "boolean", default: false },
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
  if (values.input !== undefined) return runBatch(compiled, values.input, values.flags);

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
  const flags = values.flags ? decideAllFlags(compiled, { visitorId, attributes }) : undefined;
  if (values.json) {
    const body = { visitorId, revision: compiled.revision, decisions, ...(flags && { flags }) };
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else {
    const explanation = renderExplanation(compiled, visitorId, decisions);
    process.stdout.write(
      flags ? `${explanation}\n\n${renderFlags(compiled, flags)}\n` : `${explanation}\n`,
    );
  }
  return 0;
}
