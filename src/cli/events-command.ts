/**
 * CLI commands for the event data (docs/api.md "Conversions", "Rebuild"), against a running
 * Worker like the other API commands (--api-url/--token or SPLITSTREAM_API_URL/SPLITSTREAM_TOKEN):
 *
 * - `splitstream conversions import FILE` reads offline conversions from NDJSON or CSV, checks
 *   every line locally (nothing is sent when a line is malformed), then posts them to
 *   `POST /conversions` in requests of at most 1000 and reports refused items by file line;
 * - `splitstream rebuild [--apply] [--sdk-key K] [--chunk-objects N]` starts a rebuild job
 *   (`POST /admin/rebuild`), follows its progress (`GET /admin/rebuild`) and prints the
 *   comparison; exit status 1 when the live tables differ and nothing was applied, or the job
 *   failed; `splitstream rebuild status|apply|cancel` show, apply or cancel the current job;
 * - `splitstream events layout [--stats]` and `splitstream events move --to N` show and change
 *   where per-visitor event state lives (docs/scaling.md), calling the move's API step until done.
 */
import { parseArgs } from "node:util";
import { apiOptions, callApi, print } from "./api-command";
import { CliError, readText } from "./io";

export const EVENTS_USAGE = `Usage (event data; same --api-url / --token as above):
  splitstream conversions import FILE --project ID [--environment KEY]
      offline conversions from NDJSON (one {"visitorId","eventKey","uuid","timestamp"?,
      "revenue"?,"value"?,"tags"?} per line) or CSV (header: visitorId,eventKey,uuid and any of
      timestamp,revenue,value; timestamp in ms or ISO 8601); every line is checked first, nothing
      is sent if one is malformed; sent in requests of 1000; exit 1 if the API refused any
  splitstream rebuild [--apply] [--sdk-key KEY] [--chunk-objects N] [--no-wait]
      recompute the event state from the R2 archive (a job of bounded steps, progress on
      stderr) and compare it with the live rows; --apply replaces the live rows with the
      rebuilt ones once compared; exit 1 when they differ (without --apply) or the job failed
  splitstream rebuild status | apply | cancel
      the current job's progress and report; apply a compared job; cancel a job (its rows
      are dropped, the live ones stay)
  splitstream events layout [--stats]
      where per-visitor event state lives: D1 (0) or N visitor shards; --stats adds each
      shard's size, row counts and pending entries
  splitstream events move --to N [--max-rows R]
      move per-visitor state to N shards (from D1, or from another shard count), step by step
      until done; the consumer counts nothing meanwhile — pause the queue's delivery first
      (docs/scaling.md "Growing the shards")
  Add --json for raw JSON output.`;

/** Conversions per API request (the endpoint's limit). */
export const IMPORT_CHUNK = 1000;

const OPTIONS = {
  "api-url": { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  project: { type: "string" },
  environment: { type: "string" },
  apply: { type: "boolean", default: false },
  "sdk-key": { type: "string" },
  to: { type: "string" },
  "max-rows": { type: "string" },
  stats: { type: "boolean", default: false },
  "chunk-objects": { type: "string" },
  "no-wait": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

/** One conversion read from the file, with the line it came from. */
export interface ImportedConversion {
  line: number;
  conversion: Record<string, unknown>;
}

/** A line the file could not give a conversion for. */
export interface ImportProblem {
  line: number;
  message: string;
}

const CSV_COLUMNS = new Set(["visitorId", "eventKey", "uuid", "timestamp", "revenue", "value"]);
const CSV_REQUIRED = ["visitorId", "eventKey", "uuid"];

/** Splits CSV text into records of fields (RFC 4180: quotes, doubled quotes, CRLF or LF). */
export function parseCsv(text: string): Array<{ line: number; fields: string[] }> {
  const records: Array<{ line: number; fields: string[] }> = [];
  let fields: string[] = [];
  let field = "";
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let atFieldStart = true;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else {
        if (ch === "\n") line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"' && atFieldStart) {
      quoted = true;
      atFieldStart = false;
    } else if (ch === ",") {
      fields.push(field);
      field = "";
      atFieldStart = true;
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      fields.push(field);
      if (fields.length > 1 || fields[0] !== "") records.push({ line: recordLine, fields });
      fields = [];
      field = "";
      atFieldStart = true;
      line++;
      recordLine = line;
    } else {
      field += ch;
      atFieldStart = false;
    }
  }
  if (quoted) throw new CliError(`line ${recordLine}: unterminated quoted field`);
  fields.push(field);
  if (fields.length > 1 || fields[0] !== "") records.push({ line: recordLine, fields });
  return records;
}

/** A CSV cell as a number, or a problem. */
function csvNumber(value: string, column: string, integer: boolean): number | string {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) return `${column}: not a number: ${value}`;
  if (integer && !Number.isSafeInteger(n)) return `${column}: not an integer: ${value}`;
  return n;
}

/**
 * The conversions of an import file: NDJSON when the first non-blank character is `{`, else CSV
 * with a header line. Returns every conversion and every problem (with its line).
 */
export function parseConversionsFile(text: string): {
  conversions: ImportedConversion[];
  problems: ImportProblem[];
} {
  const conversions: ImportedConversion[] = [];
  const problems: ImportProblem[] = [];
  const body = text.replace(/^\uFEFF/, "");
  if (body.trimStart().startsWith("{")) {
    body.split(/\r?\n/).forEach((raw, index) => {
      if (raw.trim() === "") return;
      const line = index + 1;
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        return problems.push({ line, message: `not JSON: ${(error as Error).message}` });
      }
      if (typeof value !== "object" || value === null || Array.isArray(value))
        return problems.push({ line, message: "each line must be a JSON object" });
      conversions.push({ line, conversion: value as Record<string, unknown> });
    });
    return { conversions, problems };
  }
  const records = parseCsv(body);
  const header = records.shift();
  if (!header) return { conversions, problems: [{ line: 1, message: "empty file" }] };
  const columns = header.fields.map((f) => f.trim());
  for (const column of columns)
    if (!CSV_COLUMNS.has(column))
      problems.push({
        line: header.line,
        message: `unknown column ${JSON.stringify(column)} (expected ${[...CSV_COLUMNS].join(", ")})`,
      });
  for (const column of CSV_REQUIRED)
    if (!columns.includes(column))
      problems.push({ line: header.line, message: `missing column ${column}` });
  if (problems.length > 0) return { conversions, problems };
  for (const { line, fields } of records) {
    if (fields.length !== columns.length) {
      problems.push({
        line,
        message: `${fields.length} fields, the header has ${columns.length}`,
      });
      continue;
    }
    const conversion: Record<string, unknown> = {};
    let problem: string | null = null;
    columns.forEach((column, i) => {
      const cell = fields[i]!;
      if (problem !== null || cell === "") return;
      if (column === "revenue" || column === "value") {
        const n = csvNumber(cell, column, column === "revenue");
        if (typeof n === "string") problem = n;
        else conversion[column] = n;
      } else if (column === "timestamp") {
        const ms = /^\d+$/.test(cell) ? Number(cell) : Date.parse(cell);
        if (!Number.isSafeInteger(ms))
          problem = `timestamp: neither ms since the epoch nor an ISO 8601 date: ${cell}`;
        else conversion.timestamp = ms;
      } else conversion[column] = cell;
    });
    for (const column of CSV_REQUIRED)
      if (problem === null && conversion[column] === undefined) problem = `${column}: empty`;
    if (problem !== null) problems.push({ line, message: problem });
    else conversions.push({ line, conversion });
  }
  return { conversions, problems };
}

interface ImportResponse {
  accepted: number;
  rejected: Array<{ index: number; path: string; message: string }>;
}

interface RebuildReportJson {
  sdkKeys: string[];
  objectsRead: number;
  eventsRead: number;
  eventsFolded: number;
  duplicates: number;
  excluded?: number;
  invalidLines: number;
  tables: Record<string, { live: number; rebuilt: number; differences: number }>;
  differences: Array<{
    table: string;
    key: Record<string, unknown>;
    live: Record<string, unknown> | null;
    rebuilt: Record<string, unknown> | null;
  }>;
  differencesTruncated: boolean;
  matches: boolean;
  applied: boolean;
}

const SHOWN_DIFFERENCES = 20;

/** `splitstream rebuild` as text. */
export function renderRebuild(r: RebuildReportJson): string {
  const lines = [
    `sdkKeys: ${r.sdkKeys.length ? r.sdkKeys.join(", ") : "(none)"}`,
    `archive: ${r.objectsRead} objects, ${r.eventsRead} event lines, ${r.eventsFolded} distinct events counted, ${r.duplicates} duplicates, ${r.excluded ?? 0} excluded (not counted live), ${r.invalidLines} invalid lines`,
  ];
  const rows = Object.entries(r.tables).map(([t, c]) => [
    t,
    String(c.live),
    String(c.rebuilt),
    String(c.differences),
  ]);
  const table = [["table", "live", "rebuilt", "differences"], ...rows];
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  for (const row of table) lines.push(row.map((c, i) => c.padEnd(widths[i]!)).join("  "));
  const total = Object.values(r.tables).reduce((n, t) => n + t.differences, 0);
  lines.push(r.matches ? "matches: yes" : `matches: NO — ${total} rows differ`);
  for (const d of r.differences.slice(0, SHOWN_DIFFERENCES))
    lines.push(
      `  ${d.table} ${JSON.stringify(d.key)}: live ${JSON.stringify(d.live)} rebuilt ${JSON.stringify(d.rebuilt)}`,
    );
  if (total > SHOWN_DIFFERENCES) lines.push(`  … (--json lists up to 1000)`);
  if (r.applied) lines.push("applied: the live rows were replaced with the rebuilt ones");
  return lines.join("\n");
}

interface RebuildJobJson {
  id: string;
  status: string;
  phase: string;
  steps: number;
  progress: {
    objectsRead: number;
    eventsRead: number;
    excluded: number;
    sdkKeysCompared: number;
    sdkKeys: number;
  };
  error: string | null;
  failures: number;
  report: RebuildReportJson | null;
}

/** Statuses after which a job does nothing until asked. */
const SETTLED = new Set(["compared", "applied", "cancelled", "failed"]);

/** One progress line of a rebuild job. */
export function renderRebuildProgress(j: RebuildJobJson): string {
  const p = j.progress;
  const compare =
    p.sdkKeys > 0 && (j.phase === "comparing" || j.phase === "applying")
      ? `, ${j.phase === "applying" ? "applied" : "compared"} ${p.sdkKeysCompared}/${p.sdkKeys} sdkKey(s)`
      : "";
  const failing = j.failures > 0 && j.status !== "failed" ? ` (retrying: ${j.error})` : "";
  return `rebuild ${j.id}: ${j.status}/${j.phase}, step ${j.steps}: ${p.objectsRead} objects, ${p.eventsRead} event lines, ${p.excluded} excluded${compare}${failing}`;
}

/** `splitstream rebuild status` as text. */
export function renderRebuildJob(j: RebuildJobJson): string {
  const lines = [renderRebuildProgress(j)];
  if (j.status === "failed") lines.push(`failed: ${j.error ?? "(no reason)"}`);
  if (j.report) lines.push(renderRebuild(j.report));
  if (j.status === "compared")
    lines.push(
      "`splitstream rebuild apply` replaces the live rows; `splitstream rebuild cancel` drops the rebuilt ones",
    );
  return lines.join("\n");
}

interface EventLayoutJson {
  shards: number;
  movingTo: number | null;
  configured: number | null;
  shardStats: Array<{
    shard: number;
    bytes: number;
    rows: Record<string, number>;
    pending: number;
  }> | null;
}

interface MoveReportJson {
  from: number;
  to: number;
  moved: Record<string, number>;
  done: boolean;
  retryAfter?: number;
}

/** `splitstream events layout` as text. */
export function renderLayout(l: EventLayoutJson): string {
  const lines = [
    `per-visitor event state: ${l.shards === 0 ? "D1 (no shards)" : `${l.shards} visitor shard(s)`}`,
  ];
  if (l.movingTo !== null) lines.push(`moving to ${l.movingTo} shard(s): counting waits`);
  if (l.configured !== null && l.configured !== l.shards && l.movingTo === null)
    lines.push(
      `EVENT_SHARDS is ${l.configured}: run \`splitstream events move --to ${l.configured}\``,
    );
  for (const s of l.shardStats ?? [])
    lines.push(
      `  shard ${s.shard}: ${s.bytes} bytes, ${Object.entries(s.rows)
        .map(([t, n]) => `${t} ${n}`)
        .join(", ")}, ${s.pending} pending`,
    );
  return lines.join("\n");
}

/** Milliseconds between two progress reads of a rebuild (SPLITSTREAM_POLL_MS overrides it). */
function pollInterval(): number {
  const ms = Number(process.env.SPLITSTREAM_POLL_MS);
  return Number.isFinite(ms) && ms >= 0 ? ms : 1000;
}

/** Reads the job until it settles, printing a progress line to stderr when it changes. */
async function followRebuild(
  o: ReturnType<typeof apiOptions>,
  started: RebuildJobJson,
): Promise<RebuildJobJson> {
  let job = started;
  let last = "";
  for (;;) {
    const line = renderRebuildProgress(job);
    if (!o.json && line !== last) process.stderr.write(`${line}\n`);
    last = line;
    if (SETTLED.has(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, pollInterval()));
    job = (await callApi(o, "GET", "/admin/rebuild")) as RebuildJobJson;
  }
}

/** Runs `splitstream conversions …`, `splitstream rebuild …` and `splitstream events …`. */
export async function runEventsCommand(group: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${EVENTS_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${EVENTS_USAGE}\n`);
    return 0;
  }

  if (group === "rebuild") {
    const action = positionals[0];
    if (
      positionals.length > 1 ||
      (action !== undefined && !["status", "apply", "cancel"].includes(action))
    )
      throw new CliError(`rebuild takes status, apply, cancel or nothing\n\n${EVENTS_USAGE}`, 2);
    const o = apiOptions(values);
    if (action === "status") {
      const job = (await callApi(o, "GET", "/admin/rebuild")) as RebuildJobJson;
      print(o, job, renderRebuildJob);
      return job.status === "failed" ? 1 : 0;
    }
    if (action === "cancel") {
      let job = (await callApi(o, "POST", "/admin/rebuild/cancel")) as RebuildJobJson;
      if (!values["no-wait"]) job = await followRebuild(o, job);
      print(o, job, renderRebuildJob);
      return 0;
    }
    let job: RebuildJobJson;
    if (action === "apply")
      job = (await callApi(o, "POST", "/admin/rebuild/apply")) as RebuildJobJson;
    else {
      const chunk = values["chunk-objects"];
      if (chunk !== undefined && !/^\d{1,4}$/.test(chunk))
        throw new CliError("--chunk-objects must be a whole number (1–200)", 2);
      const body = {
        apply: values.apply === true,
        ...(values["sdk-key"] === undefined ? {} : { sdkKey: values["sdk-key"] }),
        ...(chunk === undefined ? {} : { chunkObjects: Number(chunk) }),
      };
      job = (await callApi(o, "POST", "/admin/rebuild", body)) as RebuildJobJson;
    }
    if (values["no-wait"]) {
      print(o, job, renderRebuildJob);
      return 0;
    }
    job = await followRebuild(o, job);
    if (job.status === "failed")
      throw new CliError(`rebuild ${job.id} failed: ${job.error ?? "(no reason)"}`);
    if (job.report === null) {
      print(o, job, renderRebuildJob);
      return 1;
    }
    print(o, job.report, renderRebuild);
    return job.report.matches || job.report.applied ? 0 : 1;
  }

  if (group === "events" && positionals[0] === "layout" && positionals.length === 1) {
    const o = apiOptions(values);
    const layout = (await callApi(
      o,
      "GET",
      `/admin/event-layout${values.stats ? "?stats=true" : ""}`,
    )) as EventLayoutJson;
    print(o, layout, renderLayout);
    return 0;
  }

  if (group === "events" && positionals[0] === "move" && positionals.length === 1) {
    const to = Number(values.to);
    if (values.to === undefined || !/^\d+$/.test(values.to) || to < 1)
      throw new CliError(
        `events move needs --to N (a whole number of shards ≥ 1)\n\n${EVENTS_USAGE}`,
        2,
      );
    const maxRows = values["max-rows"] === undefined ? undefined : Number(values["max-rows"]);
    if (maxRows !== undefined && !(Number.isSafeInteger(maxRows) && maxRows > 0))
      throw new CliError("--max-rows must be a whole number ≥ 1", 2);
    const o = apiOptions(values);
    const moved: Record<string, number> = {};
    let steps = 0;
    for (;;) {
      const step = (await callApi(o, "POST", "/admin/event-layout/move", {
        to,
        ...(maxRows === undefined ? {} : { maxRows }),
      })) as MoveReportJson;
      steps++;
      for (const [table, n] of Object.entries(step.moved)) moved[table] = (moved[table] ?? 0) + n;
      if (!o.json)
        process.stderr.write(
          `step ${steps}: ${Object.entries(step.moved)
            .map(([t, n]) => `${t} ${n}`)
            .join(", ")}${step.done ? " — done" : ""}\n`,
        );
      if (!step.done && (step.retryAfter ?? 0) > 0) {
        if (!o.json)
          process.stderr.write(
            `counting stopped; waiting ${step.retryAfter} s until every Worker has seen the move\n`,
          );
        await new Promise((resolve) => setTimeout(resolve, step.retryAfter! * 1000));
        continue;
      }
      if (step.done) {
        const done = { from: step.from, to: step.to, steps, moved };
        print(
          o,
          done,
          (r: typeof done) =>
            `per-visitor event state now on ${r.to} shard(s) (was ${r.from === 0 ? "D1" : `${r.from} shard(s)`}); ${r.steps} step(s)`,
        );
        return 0;
      }
    }
  }

  if (group === "conversions" && positionals[0] === "import") {
    const file = positionals[1];
    if (!file || positionals.length > 2)
      throw new CliError(`conversions import needs one FILE\n\n${EVENTS_USAGE}`, 2);
    if (!values.project) throw new CliError("--project is required", 2);
    const o = apiOptions(values);
    const { conversions, problems } = parseConversionsFile(await readText(file));
    if (problems.length > 0)
      throw new CliError(
        `${file}: nothing sent, fix these lines first:\n${problems.map((p) => `  line ${p.line}: ${p.message}`).join("\n")}`,
      );
    if (conversions.length === 0) throw new CliError(`${file}: no conversions`);
    let accepted = 0;
    const refused: string[] = [];
    for (let i = 0; i < conversions.length; i += IMPORT_CHUNK) {
      const chunk = conversions.slice(i, i + IMPORT_CHUNK);
      const body = {
        projectId: values.project,
        ...(values.environment === undefined ? {} : { environment: values.environment }),
        conversions: chunk.map((c) => c.conversion),
      };
      const response = (await callApi(o, "POST", "/conversions", body).catch((error: unknown) => {
        if (!(error instanceof CliError)) throw error;
        // A 422 refuses the whole chunk: report it, then stop (later chunks were not sent).
        throw new CliError(
          `${file}: lines ${chunk[0]!.line}-${chunk.at(-1)!.line}: ${error.message}${accepted ? `\n(${accepted} conversions of earlier lines were accepted)` : ""}`,
        );
      })) as ImportResponse;
      accepted += response.accepted;
      for (const r of response.rejected)
        refused.push(`  line ${chunk[r.index]?.line ?? "?"}: ${r.path}: ${r.message}`);
    }
    if (o.json) process.stdout.write(`${JSON.stringify({ accepted, refused: refused.length })}\n`);
    else process.stdout.write(`${accepted} accepted, ${refused.length} refused\n`);
    if (refused.length > 0) {
      process.stderr.write(`refused:\n${refused.join("\n")}\n`);
      return 1;
    }
    return 0;
  }
  throw new CliError(`unknown command: ${[group, ...positionals].join(" ")}\n\n${EVENTS_USAGE}`, 2);
}
