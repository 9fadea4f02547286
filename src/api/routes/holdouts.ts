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
import { HoldoutSchema, HoldoutUpdateSchema } from "../schemas/holdouts";
import { getHoldout, holdoutJson, setHoldout } from "../services/holdouts";

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
}
