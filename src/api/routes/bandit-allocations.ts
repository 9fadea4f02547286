/**
 * Bandit routes (docs/api.md "Bandits", docs/bandits.md "Running a bandit"):
 *
 * - `GET /experiments/{id}/allocations` (viewer): the allocation history the scheduled handler
 *   recorded (src/api/services/bandit-round.ts), oldest first;
 * - `POST /experiments/{id}/serve-winner` (editor): serves one variation to 100 % of new
 *   visitors and switches the experiment to the `manual` policy; publishes in the same request.
 *
 * The work is src/api/services/bandit-allocations.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonResponse } from "../http/openapi";
import {
  AllocationHistorySchema,
  ServeWinnerBodySchema,
  ServeWinnerResultSchema,
} from "../schemas/bandit-allocations";
import { IdParams } from "../schemas/fields";
import { loadAllocationHistory, serveWinner } from "../services/bandit-allocations";
import { MAX_ALLOCATION_ROWS } from "../store/bandit-allocations";
import type { ExperimentRow } from "../store/rows";
import { requireRow } from "../store/sql";

export function registerBanditRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/allocations",
      tags: ["Bandits"],
      summary: "Bandit allocation history",
      description: `Every re-allocation the scheduled bandit round made (weights over time), each change of its verdict, skipped rounds (once per reason) and served winners, oldest first; at most the newest ${MAX_ALLOCATION_ROWS}. Empty for an experiment that never ran as a bandit.`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(AllocationHistorySchema, "The history"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      return c.json(await loadAllocationHistory(c.env, id), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/experiments/{id}/serve-winner",
      tags: ["Bandits"],
      summary: "Serve one variation to 100 % of new visitors",
      description:
        "Sets the weight of the winner — `variationId` (id or key), or by default the winner of the bandit's latest verdict — to 10000 and every other variation's to 0, and switches `allocationPolicy` to `manual` so the bandit stops re-allocating. Visitors who already have another variation keep it (sticky decisions). Publishes the project in the same request and records a `winner_served` row in the allocation history. 409 when no variation is named and the bandit has not declared a winner. Honours If-Match.",
      middleware: [requireRole("editor")] as const,
      request: {
        params: IdParams,
        body: {
          required: false,
          content: { "application/json": { schema: ServeWinnerBodySchema } },
        },
      },
      responses: {
        200: jsonResponse(
          ServeWinnerResultSchema,
          "The experiment, the winner, what was published",
        ),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const experiment = await requireRow<ExperimentRow>(c.env.DB, "experiments", "experiment", id);
      checkIfMatch(c, experiment.version);
      const served = await serveWinner(c.env, c.get("actor"), experiment, body?.variationId);
      setEtag(c, served.experiment.version);
      return c.json(served, 200);
    },
  );
}
