/**
 * Experiment results (docs/api.md "Results"): `GET /experiments/{id}/results` and its CSV form
 * `GET /experiments/{id}/results.csv`, both for viewers. The counts and statistics are
 * src/api/services/results.ts, the CSV src/api/services/results-csv.ts, the schemas
 * src/api/schemas/results.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonResponse } from "../http/openapi";
import { IdParams } from "../schemas/fields";
import { ResultsQuerySchema, ResultsSchema } from "../schemas/results";
import { loadResults } from "../services/results";
import { RESULTS_CSV_COLUMNS, resultsCsv, resultsCsvFilename } from "../services/results-csv";

const DESCRIPTION =
  'Results of one environment (`environment` key, default "production"), optionally limited to UTC days `from`..`to`: visitors per variation (and the SRM check against the allocation), and per metric (the first is primary) and variation: counts (unique converters, events, revenue and value sums with sums of squares per event and per visitor), the metric total and mean, lift vs the baseline with its interval, p-value, q-value (corrected), significance and verdict — sequential (always-valid, default) or fixed-horizon — plus the visitors still needed for the minimum detectable effect, a cumulative daily series per metric and per-day visitors and converters. `revisions` lists the datafile revisions that contributed (docs/statistics.md).';

export function registerResultRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results",
      tags: ["Results"],
      summary: "Experiment results with statistics",
      description: DESCRIPTION,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuerySchema },
      responses: {
        200: jsonResponse(ResultsSchema, "The experiment's counts"),
        ...errorResponses(401, 403, 404, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const results = await loadResults(c.env, id, c.req.valid("query"));
      return c.json(results, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/results.csv",
      tags: ["Results"],
      summary: "Experiment results as CSV",
      description: `The same results as \`/experiments/{id}/results\`, one row per (metric, variation): ${RESULTS_CSV_COLUMNS.join(", ")}.`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams, query: ResultsQuerySchema },
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
      const results = await loadResults(c.env, id, c.req.valid("query"));
      return c.body(resultsCsv(results), 200, {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": `attachment; filename="${resultsCsvFilename(results)}"`,
      });
    },
  );
}
