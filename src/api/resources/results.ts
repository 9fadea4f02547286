/**
 * Experiment results (docs/api.md "Results"): the COUNTS the events queue consumer aggregated in
 * D1 (migrations/0002_events.sql, docs/events.md) for one experiment in one environment —
 * visitors per variation, and per metric and variation converters, events and value/revenue sums
 * (with sums of squares). Statistics (lift, p-values, SRM) are not computed here.
 *
 * - The environment is chosen by key (`?environment=`, default "production"); the aggregates
 *   are keyed by its sdkKey.
 * - `?from`/`?to` (UTC days, inclusive) filter by the aggregate day: the day of a visitor's first
 *   impression for visitors, the conversion day for metric counts (docs/events.md).
 * - Counts are summed over datafile revisions, and `revisions` lists every revision that
 *   contributed (CONTRACT §8: results never mix revisions silently).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ApiApp } from "../app";
import { requireRole } from "../auth";
import type { ExperimentRow } from "../datafile-build";
import { all, first } from "../db";
import { notFound, unprocessable } from "../errors";
import { errorResponses, jsonResponse } from "../http";
import { IdParams, parseJson, requireRow } from "./common";

/** The default environment of the results (docs/api.md). */
export const DEFAULT_RESULTS_ENVIRONMENT = "production";

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

const ResultsQuery = z.object({
  environment: z
    .string()
    .min(1)
    .optional()
    .openapi({
      param: { name: "environment", in: "query" },
      description: `Environment key; default "${DEFAULT_RESULTS_ENVIRONMENT}".`,
      example: "production",
    }),
  from: z
    .string()
    .optional()
    .openapi({
      param: { name: "from", in: "query" },
      description: "First UTC day included (YYYY-MM-DD); default: no lower bound.",
      example: "2025-01-01",
    }),
  to: z
    .string()
    .optional()
    .openapi({
      param: { name: "to", in: "query" },
      description: "Last UTC day included (YYYY-MM-DD); default: no upper bound.",
      example: "2025-01-31",
    }),
});

const MetricVariationSchema = z.object({
  variationId: z.string(),
  converters: z.number().int(),
  events: z.number().int(),
  revenueSum: z.number().openapi({ description: "Cents." }),
  revenueSumSq: z.number(),
  valueSum: z.number(),
  valueSumSq: z.number(),
});

const ResultsSchema = z
  .object({
    experimentId: z.string(),
    experimentKey: z.string(),
    environment: z.object({ id: z.string(), key: z.string(), sdkKey: z.string() }),
    revisions: z.array(z.string()).openapi({
      description: "Datafile revisions that contributed to these counts, in ascending order.",
    }),
    from: z.string().nullable(),
    to: z.string().nullable(),
    variations: z.array(
      z.object({
        id: z.string(),
        key: z.string().nullable().openapi({
          description: "null for a variation id seen in the data but no longer in the experiment.",
        }),
        visitors: z.number().int(),
      }),
    ),
    metrics: z.array(
      z.object({
        eventId: z.string(),
        eventKey: z.string().nullable(),
        aggregator: z.string(),
        field: z.string().optional(),
        primary: z.boolean(),
        variations: z.array(MetricVariationSchema),
      }),
    ),
    daily: z.array(
      z.object({
        day: z.string(),
        variationId: z.string(),
        visitors: z.number().int(),
        converters: z.record(z.string(), z.number().int()).openapi({
          description: "Event id of each metric → converters counted that day.",
        }),
      }),
    ),
  })
  .openapi("ExperimentResults");

export type ExperimentResults = z.infer<typeof ResultsSchema>;
type MetricCounts = z.infer<typeof MetricVariationSchema>;

function validDay(value: string): boolean {
  if (!DAY_PATTERN.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value;
}

function parseRange(from: string | undefined, to: string | undefined) {
  const details: Array<{ path: string; message: string }> = [];
  if (from !== undefined && !validDay(from))
    details.push({ path: "$.query.from", message: "must be a date YYYY-MM-DD" });
  if (to !== undefined && !validDay(to))
    details.push({ path: "$.query.to", message: "must be a date YYYY-MM-DD" });
  if (details.length === 0 && from !== undefined && to !== undefined && from > to)
    details.push({ path: "$.query.to", message: "must not be before from" });
  const firstDetail = details[0];
  if (firstDetail)
    throw unprocessable(
      `invalid request query: ${firstDetail.path}: ${firstDetail.message}`,
      details,
    );
  return { from: from ?? null, to: to ?? null };
}

interface VariationDailyRow {
  variation_id: string;
  revision: string;
  day: string;
  visitors: number;
}

interface MetricDailyRow {
  variation_id: string;
  revision: string;
  event_id: string;
  day: string;
  converters: number;
  events: number;
  revenue_sum: number;
  revenue_sum_sq: number;
  value_sum: number;
  value_sum_sq: number;
}

function compareRevisions(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isFinite(na) && Number.isFinite(nb) && na !== nb) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function emptyCounts(variationId: string): MetricCounts {
  return {
    variationId,
    converters: 0,
    events: 0,
    revenueSum: 0,
    revenueSumSq: 0,
    valueSum: 0,
    valueSumSq: 0,
  };
}

/** Reads the aggregates of an experiment in one environment (see the module comment). */
export async function loadResults(
  db: D1Database,
  experimentId: string,
  query: { environment?: string; from?: string; to?: string },
): Promise<ExperimentResults> {
  const experiment = await requireRow<ExperimentRow>(db, "experiments", "experiment", experimentId);
  const range = parseRange(query.from, query.to);
  const environmentKey = query.environment ?? DEFAULT_RESULTS_ENVIRONMENT;
  const environment = await first<{ id: string; key: string; sdk_key: string }>(
    db,
    "SELECT id, key, sdk_key FROM environments WHERE project_id = ? AND key = ?",
    experiment.project_id,
    environmentKey,
  );
  if (!environment) {
    if (query.environment === undefined) throw notFound("environment", environmentKey);
    throw unprocessable(
      `unknown environment ${JSON.stringify(environmentKey)} (not an environment key of this project)`,
      [{ path: "$.query.environment", message: "not an environment key of this project" }],
    );
  }

  const where =
    "sdk_key = ? AND experiment_id = ? AND (? IS NULL OR day >= ?) AND (? IS NULL OR day <= ?)";
  const params = [environment.sdk_key, experiment.id, range.from, range.from, range.to, range.to];
  const [visitorRows, metricRows] = await Promise.all([
    all<VariationDailyRow>(
      db,
      `SELECT variation_id, revision, day, visitors FROM variation_daily WHERE ${where}`,
      ...params,
    ),
    all<MetricDailyRow>(
      db,
      `SELECT variation_id, revision, event_id, day, converters, events, revenue_sum, revenue_sum_sq, value_sum, value_sum_sq FROM metric_daily WHERE ${where}`,
      ...params,
    ),
  ]);

  const configuredVariations = parseJson<Array<{ id: string; key: string }>>(
    experiment.variations,
    [],
  );
  const metrics = parseJson<Array<{ eventId: string; aggregator: string; field?: string }>>(
    experiment.metrics,
    [],
  );

  // Variations: the experiment's, then any other id the data names (e.g. a removed variation).
  const variationKeys = new Map<string, string | null>();
  for (const v of configuredVariations) variationKeys.set(v.id, v.key);
  for (const row of [...visitorRows, ...metricRows])
    if (!variationKeys.has(row.variation_id)) variationKeys.set(row.variation_id, null);
  const variationIds = [...variationKeys.keys()];

  const revisions = new Set<string>();
  const visitors = new Map<string, number>();
  // day → variation → {visitors, converters by event}
  const daily = new Map<
    string,
    Map<string, { visitors: number; converters: Record<string, number> }>
  >();
  const dailyEntry = (day: string, variationId: string) => {
    let byVariation = daily.get(day);
    if (!byVariation) daily.set(day, (byVariation = new Map()));
    let entry = byVariation.get(variationId);
    if (!entry) byVariation.set(variationId, (entry = { visitors: 0, converters: {} }));
    return entry;
  };
  const metricEventIds = new Set(metrics.map((m) => m.eventId));

  for (const row of visitorRows) {
    revisions.add(row.revision);
    visitors.set(row.variation_id, (visitors.get(row.variation_id) ?? 0) + Number(row.visitors));
    dailyEntry(row.day, row.variation_id).visitors += Number(row.visitors);
  }
  // event id → variation id → counts
  const counts = new Map<string, Map<string, MetricCounts>>();
  for (const row of metricRows) {
    revisions.add(row.revision);
    let byVariation = counts.get(row.event_id);
    if (!byVariation) counts.set(row.event_id, (byVariation = new Map()));
    let c = byVariation.get(row.variation_id);
    if (!c) byVariation.set(row.variation_id, (c = emptyCounts(row.variation_id)));
    c.converters += Number(row.converters);
    c.events += Number(row.events);
    c.revenueSum += Number(row.revenue_sum);
    c.revenueSumSq += Number(row.revenue_sum_sq);
    c.valueSum += Number(row.value_sum);
    c.valueSumSq += Number(row.value_sum_sq);
    if (metricEventIds.has(row.event_id)) {
      const entry = dailyEntry(row.day, row.variation_id);
      entry.converters[row.event_id] =
        (entry.converters[row.event_id] ?? 0) + Number(row.converters);
    }
  }

  const eventKeys = new Map<string, string>();
  if (metricEventIds.size > 0) {
    const ids = [...metricEventIds];
    const rows = await all<{ id: string; key: string }>(
      db,
      `SELECT id, key FROM events WHERE id IN (${ids.map(() => "?").join(", ")})`,
      ...ids,
    );
    for (const row of rows) eventKeys.set(row.id, row.key);
  }

  return {
    experimentId: experiment.id,
    experimentKey: experiment.key,
    environment: { id: environment.id, key: environment.key, sdkKey: environment.sdk_key },
    revisions: [...revisions].sort(compareRevisions),
    from: range.from,
    to: range.to,
    variations: variationIds.map((id) => ({
      id,
      key: variationKeys.get(id) ?? null,
      visitors: visitors.get(id) ?? 0,
    })),
    metrics: metrics.map((metric, index) => ({
      eventId: metric.eventId,
      eventKey: eventKeys.get(metric.eventId) ?? null,
      aggregator: metric.aggregator,
      ...(metric.field === undefined ? {} : { field: metric.field }),
      primary: index === 0,
      variations: variationIds.map((id) => ({
        ...(counts.get(metric.eventId)?.get(id) ?? emptyCounts(id)),
      })),
    })),
    daily: [...daily.keys()].sort().flatMap((day) =>
      variationIds
        .filter((id) => daily.get(day)!.has(id))
        .map((id) => {
          const entry = daily.get(day)!.get(id)!;
          const converters: Record<string, number> = {};
          for (const eventId of metricEventIds)
            converters[eventId] = entry.converters[eventId] ?? 0;
          return { day, variationId: id, visitors: entry.visitors, converters };
        }),
    ),
  };
}

const CSV_HEADER = [
  "metric_event_id",
  "metric_event_key",
  "aggregator",
  "field",
  "primary",
  "variation_id",
  "variation_key",
  "visitors",
  "converters",
  "events",
  "revenue_sum",
  "revenue_sum_sq",
  "value_sum",
  "value_sum_sq",
];

function csvCell(value: string | number | boolean | null | undefined): string {
  const text = value === null || value === undefined ? "" : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** One CSV row per (metric, variation), with a header line; CRLF line ends (RFC 4180). */
export function resultsCsv(results: ExperimentResults): string {
  const lines = [CSV_HEADER.join(",")];
  const variations = new Map(results.variations.map((v) => [v.id, v]));
  for (const metric of results.metrics)
    for (const c of metric.variations) {
      const variation = variations.get(c.variationId);
      lines.push(
        [
          metric.eventId,
          metric.eventKey,
          metric.aggregator,
          metric.field,
          metric.primary,
          c.variationId,
          variation?.key,
          variation?.visitors ?? 0,
          c.converters,
          c.events,
          c.revenueSum,
          c.revenueSumSq,
          c.valueSum,
          c.valueSumSq,
        ]
          .map(csvCell)
          .join(","),
      );
    }
  return `${lines.join("\r\n")}\r\n`;
}

const DESCRIPTION =
  'Counts from the event aggregates of one environment (`environment` key, default "production"), optionally limited to UTC days `from`..`to`: visitors per variation, and per metric (the first is primary) and variation: unique converters, events, revenue and value sums with sums of squares; plus per-day visitors and converters. `revisions` lists the datafile revisions that contributed. No statistics yet.';

export function registerResultRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results",
      tags: ["Results"],
      summary: "Experiment results (counts)",
      description: DESCRIPTION,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuery },
      responses: {
        200: jsonResponse(ResultsSchema, "The experiment's counts"),
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const results = await loadResults(c.env.DB, id, c.req.valid("query"));
      return c.json(results, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results.csv",
      tags: ["Results"],
      summary: "Experiment results (counts) as CSV",
      description: `The same counts as \`/experiments/{id}/results\`, one row per (metric, variation): ${CSV_HEADER.join(", ")}.`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuery },
      responses: {
        200: {
          description: "text/csv with a header line",
          content: { "text/csv": { schema: z.string() } },
        },
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const results = await loadResults(c.env.DB, id, c.req.valid("query"));
      return csvResponse(c, resultsCsv(results), `${results.experimentKey}-results.csv`);
    },
  );
}

function csvResponse(c: Context, csv: string, filename: string) {
  return c.body(csv, 200, {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": `attachment; filename="${filename.replace(/[^\w.-]/g, "_")}"`,
  });
}
