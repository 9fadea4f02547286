/**
 * `POST /admin/rebuild` (admin; docs/api.md "Rebuild", docs/events.md "Rebuild"): recomputes the
 * event consumer's derived tables from the raw-events archive in R2 and reports how the live D1
 * rows differ; with `"apply": true` it replaces the live rows of the compared sdkKeys with the
 * rebuilt ones. The work is src/events/rebuild.ts, the schemas src/api/schemas/rebuild.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { RebuildBodySchema, RebuildReportSchema } from "../schemas/rebuild";
import { RebuildRefused, rebuildAggregates } from "../../events/rebuild";
import { conflict } from "../errors";

export function registerRebuildRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/rebuild",
      tags: ["Results"],
      summary: "Rebuild the event aggregates from the R2 archive",
      description:
        "Folds every archived event batch (R2 `events/…`, duplicates by uuid counted once) with the consumer's own model, compares exposures, stored conversions, converters, variation_daily and metric_daily with the live D1 rows, and reports the differences. With `apply: true` the live rows of the compared sdkKeys are replaced by the rebuilt ones (the report shows the differences found before). Only apply when the archive holds every event of those sdkKeys.",
      middleware: [requireRole("admin")] as const,
      request: {
        body: { ...jsonBody(RebuildBodySchema), required: false },
      },
      responses: {
        200: jsonResponse(RebuildReportSchema, "The comparison (and what apply wrote)"),
        ...errorResponses(400, 401, 403, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const report = await rebuildAggregates(c.env, {
        apply: body?.apply ?? false,
        ...(body?.sdkKey === undefined ? {} : { sdkKey: body.sdkKey }),
      }).catch((error: unknown) => {
        throw error instanceof RebuildRefused ? conflict(error.message) : error;
      });
      return c.json(report, 200);
    },
  );
}
