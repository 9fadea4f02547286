/**
 * Event state (docs/api.md "Event state", docs/scaling.md): `GET /admin/event-layout`,
 * `POST /admin/event-layout/move` and `GET /environments/{environmentId}/visitors/{visitorId}`.
 * The work is src/api/services/event-state.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import {
  EventLayoutQuerySchema,
  EventLayoutSchema,
  MoveBodySchema,
  MoveReportSchema,
  VisitorParams,
  VisitorStateSchema,
} from "../schemas/event-layout";
import { getEventLayout, getVisitorState, stepEventLayoutMove } from "../services/event-state";

const tags = ["Event state"];

export function registerEventStateRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/admin/event-layout",
      tags,
      summary: "Where per-visitor event state lives",
      description:
        "The recorded layout: 0 = D1's own tables, N = N visitor shards (SQLite Durable Objects). With `?stats=true`, every shard's database size, row counts and pending outbox entries.",
      middleware: [requireRole("admin")] as const,
      request: { query: EventLayoutQuerySchema },
      responses: {
        200: jsonResponse(EventLayoutSchema, "The layout"),
        ...errorResponses(400, 401, 403),
      },
    }),
    async (c) => {
      const view = await getEventLayout(
        c.env,
        c.get("actor"),
        c.req.valid("query").stats === "true",
      );
      return c.json(view, 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/admin/event-layout/move",
      tags,
      summary: "Move per-visitor event state to N shards, one step",
      description:
        "From D1's own tables to N shards (an existing deployment's migration) or from N shards to M. Each call moves a bounded number of rows and answers `done: false` until the new layout is recorded; call it again until `done: true`. While a move runs the consumer counts nothing (batches wait in the queue): pause the queue's delivery first (docs/scaling.md). 409 while a move to another count is in progress.",
      middleware: [requireRole("admin")] as const,
      request: { body: jsonBody(MoveBodySchema) },
      responses: {
        200: jsonResponse(MoveReportSchema, "What this step moved"),
        ...errorResponses(400, 401, 403, 409, 413, 415, 422),
      },
    }),
    async (c) => c.json(await stepEventLayoutMove(c.env, c.get("actor"), c.req.valid("json")), 200),
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/visitors/{visitorId}",
      tags,
      summary: "What is kept for one visitor",
      description:
        "The visitor's exposures (earliest impression per experiment), stored conversions and converters rows under the environment's sdkKey, from D1 or the visitor's shard.",
      middleware: [requireRole("editor")] as const,
      request: { params: VisitorParams },
      responses: {
        200: jsonResponse(VisitorStateSchema, "The visitor's state"),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => {
      const { environmentId, visitorId } = c.req.valid("param");
      return c.json(await getVisitorState(c.env, c.get("actor"), environmentId, visitorId), 200);
    },
  );
}
