/**
 * An environment's holdout (docs/holdouts.md, docs/api.md "Holdouts"); the rules are
 * src/api/services/holdouts.ts and the results src/api/services/holdout-results.ts. Reading
 * needs any token; setting needs role admin.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import {
  HoldoutResultsQuerySchema,
  HoldoutResultsSchema,
  HoldoutSchema,
  HoldoutUpdateSchema,
} from "../schemas/holdouts";
import { loadHoldoutResults } from "../services/holdout-results";
import { getHoldout, holdoutJson, setHoldout } from "../services/holdouts";
import { parseAnalysisOptions } from "../services/results";

const EnvironmentParams = z.object({
  environmentId: z.string().openapi({ param: { name: "environmentId", in: "path" } }),
});

const tags = ["Holdouts"];

export function registerHoldoutRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/holdout",
      tags,
      summary: "Get an environment's holdout (share and metrics)",
      request: { params: EnvironmentParams },
      responses: {
        200: jsonResponse(HoldoutSchema, "The holdout (percent 0 when none)"),
        ...errorResponses(401, 404),
      },
    }),
    async (c) => {
      const row = await getHoldout(c.env, c.get("actor"), c.req.valid("param").environmentId);
      setEtag(c, row.version);
      return c.json(holdoutJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "put",
      path: "/environments/{environmentId}/holdout",
      tags,
      summary: "Set an environment's holdout",
      description:
        "`percent` (0–50, steps of 0.01) of the environment's visitors are kept out of every experiment and get every flag's defaults; `metrics` are the event ids results compare. Publishes the datafile (a `holdouts` section the official SDKs read). Send If-Match (the environment's version).",
      middleware: [requireRole("admin")] as const,
      request: { params: EnvironmentParams, body: jsonBody(HoldoutUpdateSchema) },
      responses: {
        200: jsonResponse(HoldoutSchema, "The holdout"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 422),
      },
    }),
    async (c) => {
      const row = await setHoldout(
        c.env,
        c.get("actor"),
        c.req.valid("param").environmentId,
        c.req.valid("json"),
        (version) => checkIfMatch(c, version),
      );
      setEtag(c, row.version);
      return c.json(holdoutJson(row), 200);
    },
  );

  app.openapi(
    createRoute({
      method: "get",
      path: "/environments/{environmentId}/holdout/results",
      tags,
      summary: "Holdout vs everyone else on the holdout's metrics",
      description:
        "Visitors of each group (each once, from their first page or SDK decision) and, per metric, converters, conversion rate and the holdout's lift relative to everyone else with its interval. By default only the visitors first exposed under the latest share are counted (since=share). 404 when no holdout was ever set.",
      request: { params: EnvironmentParams, query: HoldoutResultsQuerySchema },
      responses: {
        200: jsonResponse(HoldoutResultsSchema, "The results"),
        ...errorResponses(400, 401, 404, 422),
      },
    }),
    async (c) => {
      const results = await loadHoldoutResults(
        c.env,
        c.get("actor"),
        c.req.valid("param").environmentId,
        parseAnalysisOptions(c.req.valid("query")),
        c.req.valid("query").since ?? "share",
      );
      return c.json(results, 200);
    },
  );
}
