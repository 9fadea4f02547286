/**
 * The rebuild from the R2 archive (admin; docs/api.md "Rebuild", docs/events.md "Rebuild"):
 * `POST /admin/rebuild` starts a job that replays the archive in bounded steps and compares the
 * rebuilt rows with the live ones; `GET /admin/rebuild` shows its progress and report;
 * `POST /admin/rebuild/apply` replaces the live rows with the rebuilt ones;
 * `POST /admin/rebuild/cancel` drops them. The work is src/api/services/rebuild.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { RebuildBodySchema, RebuildJobSchema } from "../schemas/rebuild";
import { applyRebuild, cancelRebuild, getRebuild, startRebuild } from "../services/rebuild";

const tags = ["Results"];

export function registerRebuildRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/rebuild",
      tags,
      summary: "Start a rebuild of the event state from the R2 archive",
      description:
        "Starts a job that replays every archived event batch (R2 `events/…`) through the consumer's own counting into shadow rows, in steps of `chunkObjects` objects, then compares exposures, stored conversions, converters, variation_daily and metric_daily with the live rows. Poll `GET /admin/rebuild` for progress and the report. With `apply: true` the live rows of the compared sdkKeys are replaced once compared. Only apply when the archive holds every event of those sdkKeys. 409 while another rebuild or a move between layouts runs.",
      middleware: [requireRole("admin")] as const,
      request: { body: { ...jsonBody(RebuildBodySchema), required: false } },
      responses: {
        202: jsonResponse(RebuildJobSchema, "The job, started"),
        ...errorResponses(400, 401, 403, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const job = await startRebuild(c.env, c.get("actor"), {
        ...(body?.sdkKey === undefined ? {} : { sdkKey: body.sdkKey }),
        ...(body?.apply === undefined ? {} : { apply: body.apply }),
        ...(body?.chunkObjects === undefined ? {} : { chunkObjects: body.chunkObjects }),
      });
      return c.json(job, 202);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/admin/rebuild",
      tags,
      summary: "The current rebuild: progress, and the report once compared",
      middleware: [requireRole("admin")] as const,
      responses: {
        200: jsonResponse(RebuildJobSchema, "The job"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => c.json(await getRebuild(c.env, c.get("actor")), 200),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/rebuild/apply",
      tags,
      summary: "Replace the live rows with the compared rebuild's",
      description:
        "For a job whose status is `compared`: per sdkKey, its live per-visitor rows and daily aggregates are deleted and the rebuilt ones take their place. Events counted live after the replay passed their place in the archive are not in the rebuild: apply while no events arrive. 409 for a job in any other status.",
      middleware: [requireRole("admin")] as const,
      responses: {
        202: jsonResponse(RebuildJobSchema, "The job, applying"),
        ...errorResponses(401, 403, 409),
      },
    }),
    async (c) => c.json(await applyRebuild(c.env, c.get("actor")), 202),
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/rebuild/cancel",
      tags,
      summary: "Cancel the rebuild: drop its rows, keep the live ones",
      middleware: [requireRole("admin")] as const,
      responses: {
        202: jsonResponse(RebuildJobSchema, "The job, cancelling"),
        ...errorResponses(401, 403, 409),
      },
    }),
    async (c) => c.json(await cancelRebuild(c.env, c.get("actor")), 202),
  );
}
