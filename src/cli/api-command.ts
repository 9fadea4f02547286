/**
 * CLI commands against a running Splitstream management API (`/_ss/api/v1`, docs/api.md):
 * list experiments, start/pause/resume/archive, schedules (docs/schedules.md), publish, import or
 * push a datafile file, and review change requests (docs/approvals.md).
 * URL and token come from --api-url/--token or SPLITSTREAM_API_URL/SPLITSTREAM_TOKEN.
 */
import { parseArgs } from "node:util";
import { formatProblems, parseDatafile } from "../core/index";
import { CliError, readText } from "./io";

export const API_USAGE = `Usage (against a running Worker; --api-url and --token, or SPLITSTREAM_API_URL / SPLITSTREAM_TOKEN):
  splitstream projects list
  splitstream experiments list --project ID
  splitstream experiments start|pause|resume|archive EXPERIMENT_ID [--environment KEY]
      (an editor's start or resume where review is required answers "sent to review")
  splitstream schedules show EXPERIMENT_ID [--environment KEY]
      the experiment's schedule in one environment (default: every environment): each step
      with its status (pending, done, failed, skipped), when it was applied, the revision it
      published and the error (docs/schedules.md)
  splitstream schedules set EXPERIMENT_ID --environment KEY STEP...
      replaces the steps still to come; STEP is AT=ACTION with AT an ISO-8601 UTC time and
      ACTION start, pause, resume, archive or traffic:PERCENT, e.g.
      2026-12-24T08:00:00Z=traffic:10 2026-12-24T08:00:00Z=start 2026-12-25T08:00:00Z=traffic:50
  splitstream schedules clear EXPERIMENT_ID --environment KEY
      cancels the steps still to come (the history stays)
  splitstream reviews list --project ID [--status pending|approved|rejected|withdrawn|all]
      change requests waiting for review (default pending; docs/approvals.md)
  splitstream reviews approve|reject|withdraw REQUEST_ID [--comment TEXT]
      approve (applies and publishes), reject, or withdraw your own request
  splitstream flags list --project ID
      each flag with its state per environment (on/off, delivery rules, Everyone Else)
  splitstream flags enable|disable FLAG_ID --environment KEY
      turns the flag on or off in one environment (publishes; docs/flags.md)
  splitstream publish --environment ENVIRONMENT_ID [--reason TEXT]
  splitstream datafile import FILE --environment ENVIRONMENT_ID [--dry-run]
      validates FILE locally, then turns it into the project's records (experiments, pages,
      events, audiences, …; ids kept, so visitors keep their variations) and publishes;
      --dry-run shows what it would create and change, and writes nothing
  splitstream datafile push FILE --environment ENVIRONMENT_ID
      validates FILE locally (every problem with its JSON path), then publishes it as the
      environment's next revision — for environments whose project has no records (the API
      refuses otherwise: the next change would replace it; import instead)
  splitstream revisions --environment ENVIRONMENT_ID
  splitstream results EXPERIMENT_ID [--environment KEY] [--breakdown DIMENSION]
      per metric and variation: counts, mean, lift with its interval, p, q and verdict
      (environment key; default production); --breakdown device|browser|country|source|visitor
      adds the results per segment, corrected across segments
  splitstream holdout get|results --environment ENVIRONMENT_ID [--since share|all]
  splitstream holdout set --environment ENVIRONMENT_ID --percent P [--metrics EVENT_ID,…]
      the environment's holdout (docs/holdouts.md): P % (0–50, steps of 0.01) of its visitors kept
      out of every experiment (publishes); results: holdout vs everyone else per metric, counting
      the visitors of the latest share (--since all: every visitor)
  Add --json for raw JSON output.`;

export interface ApiOptions {
  url: string;
  token: string;
  json: boolean;
}

const COMMON = {
  "api-url": { type: "string" },
  token: { type: "string" },
  json: { type: "boolean", default: false },
  project: { type: "string" },
  environment: { type: "string" },
  reason: { type: "string" },
  "dry-run": { type: "boolean", default: false },
  breakdown: { type: "string" },
  status: { type: "string" },
  comment: { type: "string" },
  percent: { type: "string" },
  metrics: { type: "string" },
  since: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;

interface ImportSummaryJson {
  dryRun?: boolean;
  changes?: Record<
    string,
    { created: string[]; updated: Array<{ key: string; columns: string[] }>; unchanged: number }
  >;
  statuses?: Array<{ experimentId: string; from: string; to: string }>;
  warnings?: Array<{ path: string; message: string }>;
  published?: Array<{ environmentKey?: string; revision?: number; changed?: boolean }>;
}

/** What an import did (or would do): one line per table that changes, statuses, warnings. */
function renderImport(d: ImportSummaryJson): string {
  const lines: string[] = [d.dryRun ? "dry run: nothing was written" : "imported"];
  for (const [table, c] of Object.entries(d.changes ?? {})) {
    if (c.created.length === 0 && c.updated.length === 0) {
      if (c.unchanged > 0) lines.push(`  ${table}: ${c.unchanged} unchanged`);
      continue;
    }
    const parts: string[] = [];
    if (c.created.length > 0) parts.push(`create ${c.created.join(", ")}`);
    for (const u of c.updated) parts.push(`change ${u.key} (${u.columns.join(", ")})`);
    if (c.unchanged > 0) parts.push(`${c.unchanged} unchanged`);
    lines.push(`  ${table}: ${parts.join("; ")}`);
  }
  for (const s of d.statuses ?? []) lines.push(`  status ${s.experimentId}: ${s.from} → ${s.to}`);
  for (const w of d.warnings ?? []) lines.push(`  warning ${w.path}: ${w.message}`);
  const published = (d.published ?? []).filter((p) => p.changed !== false);
  if (published.length > 0)
    lines.push(
      `  published ${published.map((p) => `${p.environmentKey} r${p.revision}`).join(", ")}`,
    );
  else if (!d.dryRun) lines.push("  nothing to publish (already as the file says)");
  return lines.join("\n");
}

/** API URL, token and output mode from flags or the environment (shared by src/cli/events-command.ts). */
export function apiOptions(values: {
  "api-url"?: string;
  token?: string;
  json?: boolean;
}): ApiOptions {
  const url = values["api-url"] ?? process.env.SPLITSTREAM_API_URL;
  const token = values.token ?? process.env.SPLITSTREAM_TOKEN;
  if (!url)
    throw new CliError(
      "the API URL is required: --api-url or SPLITSTREAM_API_URL (e.g. http://localhost:8787)",
      2,
    );
  if (!token) throw new CliError("a token is required: --token or SPLITSTREAM_TOKEN", 2);
  return { url: url.replace(/\/+$/, ""), token, json: values.json === true };
}

/** Calls the API; throws a CliError carrying the error envelope's code and message. */
export async function callApi(
  o: ApiOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${o.url}/_ss/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${o.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new CliError(`cannot reach ${o.url}: ${(error as Error).message}`);
  }
  const text = await response.text();
  let data: unknown;
  try {
    data = text === "" ? null : JSON.parse(text);
  } catch {
    throw new CliError(
      `${method} ${path}: HTTP ${response.status}, not JSON: ${text.slice(0, 200)}`,
    );
  }
  if (!response.ok) {
    const error = (
      data as { error?: { code?: string; message?: string; details?: unknown } } | null
    )?.error;
    const details = error?.details ? `\n${JSON.stringify(error.details, null, 2)}` : "";
    throw new CliError(
      `${method} ${path}: HTTP ${response.status} ${error?.code ?? ""}: ${error?.message ?? text}${details}`,
    );
  }
  return data;
}

/** Writes `data` as pretty JSON with `--json`, else as `render` lays it out. */
export function print(o: ApiOptions, data: unknown, render: (data: never) => string): void {
  process.stdout.write(`${o.json ? JSON.stringify(data, null, 2) : render(data as never)}\n`);
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "(none)";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

interface ResultsJson {
  experimentKey: string;
  environment: { key: string };
  revisions: string[];
  variations: Array<{ id: string; key: string | null; visitors: number }>;
  metrics: Array<{
    eventId: string;
    eventKey: string | null;
    aggregator: string;
    field?: string;
    primary: boolean;
    variations: Array<{
      variationId: string;
      converters: number;
      events: number;
      revenueSum: number;
      valueSum: number;
      // statistics (servers with the statistics; absent in older answers)
      mean?: number | null;
      lift?: { estimate: number; ci: [number | null, number | null] } | null;
      pValue?: number | null;
      qValue?: number | null;
      verdict?: string;
      cuped?: { varianceReduction: number } | null;
    }>;
  }>;
  analysis?: { mode: string; alpha: number };
  srm?: { checked: boolean; flagged: boolean; pValue: number | null };
  guardrails?: Array<{
    eventId: string;
    variationId: string;
    action: string;
    harmed: boolean;
    pValue: number | null;
    lift: number | null;
  }>;
  guardrailBreaches?: Array<{
    eventId: string;
    variationId: string;
    detectedAt: string;
    action: string;
  }>;
  breakdown?: {
    dimension: string;
    segments: Array<{
      value: string;
      visitors: number;
      metrics: Array<{
        eventId: string;
        variations: Array<{
          variationId: string;
          visitors: number;
          mean: number | null;
          lift: { estimate: number } | null;
          qValue: number | null;
          verdict: string;
        }>;
      }>;
    }>;
  } | null;
  sections?: Array<{
    name: string | null;
    id: string;
    variations: Array<{ id: string; name: string | null }>;
    metrics: Array<{
      eventId: string;
      variations: Array<{
        variationId: string;
        visitors: number;
        mean: number | null;
        lift: { estimate: number; ci: [number | null, number | null] } | null;
        qValue: number | null;
        verdict: string;
      }>;
    }>;
  }> | null;
}

const pct = (x: number) => `${x > 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
/** An interval end; null is one the data cannot bound yet (docs/statistics.md). */
const pctEnd = (x: number | null, open: string) => (x === null ? open : pct(x));
const pValueText = (p: number | null | undefined) =>
  p === null || p === undefined ? "-" : p < 0.0001 ? "<0.0001" : p.toFixed(4);

/** `splitstream results`: a heading, then one table per metric (with statistics when given). */
function renderResults(d: ResultsJson): string {
  const variations = new Map(d.variations.map((v) => [v.id, v]));
  const parts = [
    `${d.experimentKey} in ${d.environment.key} — revisions ${d.revisions.length ? d.revisions.join(", ") : "(none)"}`,
  ];
  if (d.analysis)
    parts.push(
      `${d.analysis.mode} test, significance ${Math.round((1 - d.analysis.alpha) * 100)}%` +
        (d.srm?.flagged
          ? ` — SAMPLE RATIO MISMATCH (p ${pValueText(d.srm.pValue)}): do not trust these results`
          : ""),
    );
  for (const m of d.metrics) {
    const name = `${m.eventKey ?? m.eventId} (${m.aggregator}${m.field ? ` ${m.field}` : ""}${m.primary ? ", primary" : ""})`;
    const stats = m.variations.some((c) => c.verdict !== undefined);
    parts.push(
      `\n${name}\n${table([
        [
          "variation",
          "visitors",
          "converters",
          "events",
          "revenue sum",
          "value sum",
          ...(stats ? ["mean", "lift", "interval", "p", "q", "verdict"] : []),
        ],
        ...m.variations.map((c) => {
          const v = variations.get(c.variationId);
          return [
            v?.key ?? c.variationId,
            String(v?.visitors ?? 0),
            String(c.converters),
            String(c.events),
            String(c.revenueSum),
            String(c.valueSum),
            ...(stats
              ? [
                  c.mean === null || c.mean === undefined ? "-" : String(Number(c.mean.toFixed(4))),
                  c.lift ? pct(c.lift.estimate) : "-",
                  c.lift ? `${pctEnd(c.lift.ci[0], "-inf")}..${pctEnd(c.lift.ci[1], "+inf")}` : "-",
                  pValueText(c.pValue),
                  pValueText(c.qValue),
                  c.verdict ?? "-",
                ]
              : []),
          ];
        }),
      ])}`,
    );
    const adjusted = m.variations.filter((c) => c.cuped);
    if (adjusted.length > 0)
      parts.push(
        `CUPED: ${adjusted
          .map(
            (c) =>
              `${variations.get(c.variationId)?.key ?? c.variationId} ${Math.round(c.cuped!.varianceReduction * 100)}% less variance`,
          )
          .join(", ")}`,
      );
  }
  const metricKey = (id: string) => d.metrics.find((m) => m.eventId === id)?.eventKey ?? id;
  const variationKey = (id: string) => variations.get(id)?.key ?? id;
  for (const b of d.guardrailBreaches ?? [])
    parts.push(
      `\nGUARDRAIL BREACHED: ${variationKey(b.variationId)} harms ${metricKey(b.eventId)} (found ${b.detectedAt}; ${b.action === "pause" ? "paused" : "marked"})`,
    );
  if (d.guardrails && d.guardrails.length > 0)
    parts.push(
      `\nguardrails\n${table([
        ["metric", "variation", "change", "p (harm)", "on harm", "state"],
        ...d.guardrails.map((g) => [
          metricKey(g.eventId),
          variationKey(g.variationId),
          g.lift === null ? "-" : pct(g.lift),
          pValueText(g.pValue),
          g.action,
          g.harmed ? "HARMED" : "ok",
        ]),
      ])}`,
    );
  for (const section of d.sections ?? [])
    for (const m of section.metrics) {
      const name = (id: string) => section.variations.find((v) => v.id === id)?.name ?? id;
      parts.push(
        `\nsection ${section.name ?? section.id}: ${metricKey(m.eventId)} (main effects)\n${table([
          ["variant", "visitors", "mean", "lift", "interval", "q", "verdict"],
          ...m.variations.map((v) => [
            name(v.variationId),
            String(v.visitors),
            v.mean === null ? "-" : String(Number(v.mean.toFixed(4))),
            v.lift ? pct(v.lift.estimate) : "-",
            v.lift ? `${pctEnd(v.lift.ci[0], "-inf")}..${pctEnd(v.lift.ci[1], "+inf")}` : "-",
            pValueText(v.qValue),
            v.verdict,
          ]),
        ])}`,
      );
    }
  if (d.breakdown)
    for (const segment of d.breakdown.segments)
      for (const m of segment.metrics)
        parts.push(
          `\n${d.breakdown.dimension} = ${segment.value} (${segment.visitors} visitors): ${metricKey(m.eventId)} — q corrected across segments\n${table(
            [
              ["variation", "visitors", "mean", "lift", "q", "verdict"],
              ...m.variations.map((v) => [
                variationKey(v.variationId),
                String(v.visitors),
                v.mean === null ? "-" : String(Number(v.mean.toFixed(4))),
                v.lift ? pct(v.lift.estimate) : "-",
                pValueText(v.qValue),
                v.verdict,
              ]),
            ],
          )}`,
        );
  return parts.join("\n");
}

interface HoldoutSharePeriodJson {
  percent: number | null;
  fromRevision: number;
  toRevision: number | null;
}

interface HoldoutResultsJson {
  percent: number;
  since?: "share" | "all";
  period?: HoldoutSharePeriodJson | null;
  mixedShares?: boolean;
  srm?: { checked: boolean; flagged: boolean; pValue: number | null };
  groups: Array<{ key: string; visitors: number }>;
  metrics: Array<{
    eventId: string;
    eventKey: string | null;
    everyoneElse: { visitors: number; converters: number; rate: number | null };
    holdout: { visitors: number; converters: number; rate: number | null };
    lift: { estimate: number; lower: number | null; upper: number | null } | null;
    pValue: number | null;
  }>;
}

const percentOrDash = (x: number | null): string =>
  x === null ? "-" : `${(x * 100).toFixed(2)} %`;

/** The holdout results as a table: one row per metric and group, the lift on the holdout's row. */
function holdoutResultsText(d: HoldoutResultsJson): string {
  const rows = [["metric", "group", "visitors", "converters", "rate", "lift", "interval", "p"]];
  for (const m of d.metrics) {
    const name = m.eventKey ?? m.eventId;
    rows.push([
      name,
      "everyone_else",
      String(m.everyoneElse.visitors),
      String(m.everyoneElse.converters),
      percentOrDash(m.everyoneElse.rate),
      "-",
      "-",
      "-",
    ]);
    rows.push([
      name,
      "holdout",
      String(m.holdout.visitors),
      String(m.holdout.converters),
      percentOrDash(m.holdout.rate),
      m.lift ? percentOrDash(m.lift.estimate) : "-",
      m.lift ? `[${percentOrDash(m.lift.lower)}, ${percentOrDash(m.lift.upper)}]` : "-",
      m.pValue === null ? "-" : m.pValue.toFixed(4),
    ]);
  }
  const groups = d.groups.map((g) => `${g.key} ${g.visitors}`).join(", ");
  const srm = d.srm?.flagged
    ? `\nSAMPLE-RATIO MISMATCH (p = ${d.srm.pValue?.toExponential(1) ?? "?"}): the groups' sizes are not the share they were decided with; do not trust the comparison (docs/holdouts.md "Results")`
    : "";
  const period = d.period;
  const counted =
    d.since === "all"
      ? "\ncounting every visitor (--since all)"
      : period
        ? `\ncounting visitors first exposed at ${period.percent} % (revisions ${period.fromRevision}–${period.toRevision ?? "now"})`
        : "";
  const mixed = d.mixedShares
    ? "\nMIXED SHARES: these visitors were decided under different shares; a visitor moved by a change stays in their first group"
    : "";
  return `holdout ${d.percent} % — visitors: ${groups}${counted}${mixed}${srm}\n${table(rows)}`;
}

const ACTIONS = new Set(["start", "pause", "resume", "archive"]);
const DECISIONS = new Set(["approve", "reject", "withdraw"]);
const REQUEST_STATUSES = new Set(["pending", "approved", "rejected", "withdrawn", "all"]);

/** A change request as the API answers it (src/api/schemas/change-requests.ts). */
interface ChangeRequestLine {
  id?: string;
  experimentKey?: string | null;
  experimentId?: string;
  kind?: string;
  environments?: string[];
  payload?: Record<string, unknown>;
  status?: string;
  stale?: boolean;
  requestedByName?: string;
  requestedBy?: string;
}

/** "sent to review" for a 202 (`{changeRequest, message}`), else null. */
function pendingLine(d: { changeRequest?: ChangeRequestLine; message?: string }): string | null {
  if (!d.changeRequest) return null;
  return `sent to review: change request ${d.changeRequest.id ?? "?"} (${d.message ?? "pending"})`;
}

/** What a request asks for, in a few words. */
function requestSummary(r: ChangeRequestLine): string {
  if (r.kind === "update") return `change ${Object.keys(r.payload ?? {}).join(", ")}`;
  return `${r.kind ?? "?"} in ${(r.environments ?? []).join(", ")}`;
}

interface ScheduleJson {
  environment: string;
  version: number;
  steps: Array<{
    at: string;
    action: string;
    percent: number | null;
    status: string;
    appliedAt: string | null;
    revision: number | null;
    error: string | null;
  }>;
}

/** One schedule as a table: a line per step. */
function renderSchedule(d: ScheduleJson): string {
  if (d.steps.length === 0) return `${d.environment}: no steps`;
  return `${d.environment} (version ${d.version})\n${table([
    ["at", "action", "status", "applied", "revision", "error"],
    ...d.steps.map((s) => [
      s.at,
      s.action === "traffic" ? `traffic ${s.percent} %` : s.action,
      s.status,
      s.appliedAt ?? "-",
      s.revision === null ? "-" : `r${s.revision}`,
      s.error ?? "",
    ]),
  ])}`;
}

/**
 * `AT=ACTION` (ACTION start | pause | resume | archive | traffic:PERCENT) → a step of the API's
 * body. Only the shape is checked here; the API checks the rest and names the step's path.
 */
export function parseScheduleStep(text: string): { at: string; action: string; percent?: number } {
  const at = text.lastIndexOf("=");
  if (at <= 0)
    throw new CliError(
      `step ${JSON.stringify(text)}: expected AT=ACTION, e.g. 2026-12-24T08:00:00Z=start`,
      2,
    );
  const time = text.slice(0, at);
  const action = text.slice(at + 1);
  const traffic = /^traffic:(.+)$/.exec(action);
  if (!traffic) return { at: time, action };
  const percent = Number(traffic[1]);
  if (traffic[1]!.trim() === "" || !Number.isFinite(percent))
    throw new CliError(`step ${JSON.stringify(text)}: traffic:PERCENT needs a number (0–100)`, 2);
  return { at: time, action: "traffic", percent };
}

/** Runs `splitstream <group> …` for the API command groups. */
export async function runApiCommand(group: string, args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: COMMON, strict: true, allowPositionals: true });
  } catch (error) {
    throw new CliError(`${(error as Error).message}\n\n${API_USAGE}`, 2);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${API_USAGE}\n`);
    return 0;
  }
  const o = apiOptions(values);
  const [sub, target] = positionals;
  type Listed = { items: Array<Record<string, unknown>> };

  if (group === "projects" && sub === "list") {
    const data = await callApi(o, "GET", "/projects?limit=200");
    print(o, data, (d: Listed) =>
      table([["id", "name"], ...d.items.map((p) => [String(p.id), String(p.name)])]),
    );
    return 0;
  }
  if (group === "experiments" && sub === "list") {
    if (!values.project) throw new CliError("--project is required", 2);
    const data = await callApi(
      o,
      "GET",
      `/projects/${encodeURIComponent(values.project)}/experiments?limit=200`,
    );
    print(o, data, (d: Listed) =>
      table([
        ["id", "key", "type", "status"],
        ...d.items.map((e) => [
          String(e.id),
          String(e.key),
          String(e.type),
          JSON.stringify(e.status ?? e.statuses ?? ""),
        ]),
      ]),
    );
    return 0;
  }
  if (group === "experiments" && sub !== undefined && ACTIONS.has(sub)) {
    if (!target) throw new CliError(`experiments ${sub} needs an EXPERIMENT_ID`, 2);
    const body = values.environment ? { environment: values.environment } : {};
    const data = await callApi(
      o,
      "POST",
      `/experiments/${encodeURIComponent(target)}/${sub}`,
      body,
    );
    print(
      o,
      data,
      (d: {
        published?: Array<{ environmentKey?: string; revision?: number }>;
        changeRequest?: ChangeRequestLine;
        message?: string;
      }) =>
        pendingLine(d) ??
        `${sub}: ok${d.published?.length ? ` — published ${d.published.map((p) => `${p.environmentKey} r${p.revision}`).join(", ")}` : ""}`,
    );
    return 0;
  }
  if (group === "schedules" && (sub === "show" || sub === "set" || sub === "clear")) {
    if (!target) throw new CliError(`schedules ${sub} needs an EXPERIMENT_ID`, 2);
    const base = `/experiments/${encodeURIComponent(target)}/schedules`;
    if (sub === "show" && !values.environment) {
      const data = await callApi(o, "GET", base);
      print(o, data, (d: { items: ScheduleJson[] }) => d.items.map(renderSchedule).join("\n\n"));
      return 0;
    }
    if (!values.environment)
      throw new CliError("--environment is required (an environment key)", 2);
    const path = `${base}/${encodeURIComponent(values.environment)}`;
    const steps = positionals.slice(2);
    if (sub !== "set" && steps.length > 0)
      throw new CliError(`schedules ${sub} takes no steps: ${steps.join(" ")}`, 2);
    const data =
      sub === "show"
        ? await callApi(o, "GET", path)
        : sub === "clear"
          ? await callApi(o, "DELETE", path)
          : await callApi(o, "PUT", path, { steps: steps.map(parseScheduleStep) });
    print(o, data, renderSchedule);
    return 0;
  }
  if (group === "reviews" && sub === "list") {
    if (!values.project) throw new CliError("--project is required", 2);
    const status = values.status ?? "pending";
    if (!REQUEST_STATUSES.has(status))
      throw new CliError(
        `--status must be one of ${[...REQUEST_STATUSES].join(", ")}, not ${JSON.stringify(status)}`,
        2,
      );
    const data = await callApi(
      o,
      "GET",
      `/projects/${encodeURIComponent(values.project)}/change-requests?limit=200${status === "all" ? "" : `&status=${status}`}`,
    );
    print(o, data, (d: { items: ChangeRequestLine[] }) =>
      d.items.length === 0
        ? `no ${status === "all" ? "" : `${status} `}change requests`
        : table([
            ["id", "experiment", "asks", "by", "status"],
            ...d.items.map((r) => [
              String(r.id),
              String(r.experimentKey ?? r.experimentId),
              requestSummary(r),
              String(r.requestedByName || r.requestedBy),
              `${String(r.status)}${r.status === "pending" && r.stale ? " (stale)" : ""}`,
            ]),
          ]),
    );
    return 0;
  }
  if (group === "reviews" && sub !== undefined && DECISIONS.has(sub)) {
    if (!target) throw new CliError(`reviews ${sub} needs a REQUEST_ID`, 2);
    const data = await callApi(
      o,
      "POST",
      `/change-requests/${encodeURIComponent(target)}/${sub}`,
      values.comment === undefined ? {} : { comment: values.comment },
    );
    print(
      o,
      data,
      (d: {
        changeRequest?: ChangeRequestLine;
        status?: string;
        published?: Array<{ environmentKey?: string; revision?: number; changed?: boolean }>;
      }) => {
        const published = (d.published ?? []).filter((p) => p.changed !== false);
        const status = d.changeRequest?.status ?? d.status ?? "?";
        return `change request ${target}: ${status}${published.length > 0 ? ` — published ${published.map((p) => `${p.environmentKey} r${p.revision}`).join(", ")}` : ""}`;
      },
    );
    return 0;
  }
  if (group === "flags" && sub === "list") {
    if (!values.project) throw new CliError("--project is required", 2);
    const data = await callApi(
      o,
      "GET",
      `/projects/${encodeURIComponent(values.project)}/flags?limit=200`,
    );
    type Settings = { enabled?: boolean; rules?: unknown[]; defaultVariationKey?: string };
    print(o, data, (d: Listed) =>
      table([
        ["id", "key", "environments"],
        ...d.items.map((f) => [
          String(f.id),
          String(f.key),
          Object.entries((f.environments ?? {}) as Record<string, Settings>)
            .map(
              ([key, e]) =>
                `${key}: ${e.enabled ? "on" : "off"}${e.enabled ? ` (${e.rules?.length ?? 0} rules, else ${e.defaultVariationKey})` : ""}`,
            )
            .join("; "),
        ]),
      ]),
    );
    return 0;
  }
  if (group === "flags" && (sub === "enable" || sub === "disable")) {
    if (!target) throw new CliError(`flags ${sub} needs a FLAG_ID`, 2);
    if (!values.environment)
      throw new CliError("--environment is required (an environment key)", 2);
    const data = await callApi(o, "PATCH", `/flags/${encodeURIComponent(target)}`, {
      environments: { [values.environment]: { enabled: sub === "enable" } },
    });
    print(
      o,
      data,
      (d: { key?: string; published?: Array<{ environmentKey?: string; revision?: number }> }) =>
        `${d.key}: ${sub === "enable" ? "on" : "off"} in ${values.environment}${d.published?.length ? ` — published ${d.published.map((p) => `${p.environmentKey} r${p.revision}`).join(", ")}` : ""}`,
    );
    return 0;
  }
  if (group === "holdout" && (sub === "get" || sub === "set" || sub === "results")) {
    if (!values.environment) throw new CliError("--environment is required (an environment id)", 2);
    const path = `/environments/${encodeURIComponent(values.environment)}/holdout`;
    if (sub === "results") {
      if (values.since !== undefined && values.since !== "share" && values.since !== "all")
        throw new CliError("--since must be share or all", 2);
      const query = values.since === undefined ? "" : `?since=${values.since}`;
      const data = await callApi(o, "GET", `${path}/results${query}`);
      print(o, data, (d: HoldoutResultsJson) => holdoutResultsText(d));
      return 0;
    }
    let body: unknown;
    if (sub === "set") {
      const percent = Number(values.percent);
      if (values.percent === undefined || values.percent.trim() === "" || !Number.isFinite(percent))
        throw new CliError("holdout set needs --percent P (a number, 0–50)", 2);
      const metrics = (values.metrics ?? "")
        .split(",")
        .map((m) => m.trim())
        .filter((m) => m !== "");
      body = { percent, metrics };
    }
    const data = await callApi(o, sub === "set" ? "PUT" : "GET", path, body);
    print(
      o,
      data,
      (d: { percent: number; metrics: string[]; holdoutKey: string | null }) =>
        `holdout ${d.percent} %${d.holdoutKey ? ` (${d.holdoutKey})` : ""}; metrics: ${d.metrics.length ? d.metrics.join(", ") : "(none)"}`,
    );
    return 0;
  }
  if (group === "publish") {
    if (!values.environment) throw new CliError("--environment is required", 2);
    const data = await callApi(
      o,
      "POST",
      `/environments/${encodeURIComponent(values.environment)}/publish`,
      { reason: values.reason ?? "published from the CLI" },
    );
    print(
      o,
      data,
      (d: { revision?: number; changed?: boolean }) =>
        `revision ${d.revision}${d.changed === false ? " (unchanged)" : ""}`,
    );
    return 0;
  }
  if (group === "revisions") {
    if (!values.environment) throw new CliError("--environment is required", 2);
    const data = await callApi(
      o,
      "GET",
      `/environments/${encodeURIComponent(values.environment)}/revisions?limit=200`,
    );
    print(o, data, (d: Listed) =>
      table([
        ["revision", "published", "by", "reason"],
        ...d.items.map((r) => [
          String(r.revision),
          String(r.publishedAt),
          String(r.publishedBy),
          String(r.reason),
        ]),
      ]),
    );
    return 0;
  }
  if (group === "results") {
    if (!sub) throw new CliError("results needs an EXPERIMENT_ID", 2);
    if (
      values.breakdown !== undefined &&
      !["device", "browser", "country", "source", "visitor"].includes(values.breakdown)
    )
      throw new CliError("--breakdown must be one of device, browser, country, source, visitor", 2);
    const params = new URLSearchParams();
    if (values.environment) params.set("environment", values.environment);
    if (values.breakdown) params.set("breakdown", values.breakdown);
    const query = params.size > 0 ? `?${params.toString()}` : "";
    const data = await callApi(o, "GET", `/experiments/${encodeURIComponent(sub)}/results${query}`);
    print(o, data, renderResults);
    return 0;
  }
  if (group === "datafile" && sub === "import") {
    if (!target) throw new CliError("datafile import needs a FILE", 2);
    if (!values.environment) throw new CliError("--environment is required", 2);
    const text = await readText(target);
    const checked = parseDatafile(text);
    if (!checked.ok)
      throw new CliError(
        `${target}: invalid datafile, nothing imported\n${formatProblems(checked.problems)}`,
      );
    const dryRun = values["dry-run"] === true;
    const data = await callApi(
      o,
      "POST",
      `/environments/${encodeURIComponent(values.environment)}/datafile/import${dryRun ? "?dryRun=true" : ""}`,
      JSON.parse(text),
    );
    print(o, data, renderImport);
    return 0;
  }
  if (group === "datafile" && sub === "push") {
    if (!target) throw new CliError("datafile push needs a FILE", 2);
    if (!values.environment) throw new CliError("--environment is required", 2);
    const text = await readText(target);
    const checked = parseDatafile(text);
    if (!checked.ok)
      throw new CliError(
        `${target}: invalid datafile, nothing pushed\n${formatProblems(checked.problems)}`,
      );
    const data = await callApi(
      o,
      "PUT",
      `/environments/${encodeURIComponent(values.environment)}/datafile`,
      JSON.parse(text),
    );
    print(o, data, (d: { revision?: number }) => `pushed as revision ${d.revision}`);
    return 0;
  }
  throw new CliError(`unknown command: ${[group, ...positionals].join(" ")}\n\n${API_USAGE}`, 2);
}
