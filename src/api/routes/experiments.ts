/**
 * Experiments (docs/api.md "Experiments"): A/B, multivariate and split-URL web experiments, with
 * variations and their changes, metrics, traffic, audience conditions, pages, forced variations
 * and group membership; plus the actions start, pause, resume and archive, which change the
 * status in one environment and publish in the same request (docs/api.md).
 *
 * The schemas are in src/api/schemas/experiments.ts; the resource (what a create, update or
 * delete writes: src/api/services/experiment-plan.ts) in src/api/services/experiments.ts; the
 * status machine in src/api/services/experiment-lifecycle.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonResponse } from "../http/openapi";
import {
  DEFAULT_ACTION_ENVIRONMENT,
  EXPERIMENT_ACTIONS,
  ExperimentActionBodySchema,
  ExperimentActionResultSchema,
  ExperimentCreateSchema,
  ExperimentSchema,
  ExperimentUpdateSchema,
  type ExperimentAction,
} from "../schemas/experiments";
import { PendingReviewSchema } from "../schemas/change-requests";
import { IdParams } from "../schemas/fields";
import { applyExperimentAction, EXPERIMENT_TRANSITIONS } from "../services/experiment-lifecycle";
import { experimentResource } from "../services/experiments";
import { isPendingReview } from "../services/review";
import { registerCrud } from "./crud";

/** `POST /experiments/{id}/<action>` for one action. */
function registerAction(app: ApiApp, action: ExperimentAction): void {
  const transition = EXPERIMENT_TRANSITIONS[action];
  app.openapi(
    createRoute({
      method: "post",
      path: `/experiments/{id}/${action}`,
      tags: ["Experiments"],
      summary: `${action.charAt(0).toUpperCase()}${action.slice(1)} an experiment in one environment`,
      description: `${transition.from.join(" | ")} → ${transition.to}, in the environment named by \`environment\` (default "${DEFAULT_ACTION_ENVIRONMENT}"); any other status answers 409. Publishes every environment of the project in the same request; the response carries the publish results. Honours If-Match.${action === "start" || action === "resume" ? " An editor's " + action + " in a review-required environment answers 202 with the pending change request instead and changes nothing yet (docs/approvals.md)." : ""}`,
      middleware: [requireRole("editor")] as const,
      request: {
        params: IdParams,
        body: {
          required: false,
          content: { "application/json": { schema: ExperimentActionBodySchema } },
        },
      },
      responses: {
        200: jsonResponse(
          ExperimentActionResultSchema,
          "The experiment after the action, and what was published",
        ),
        ...(action === "start" || action === "resume"
          ? {
              202: jsonResponse(
                PendingReviewSchema,
                "An editor's action in a review-required environment waits for review (docs/approvals.md): nothing changed yet",
              ),
            }
          : {}),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const body = c.req.valid("json");
      const result = await applyExperimentAction(c.env, c.get("actor"), {
        id,
        action,
        environment: body.environment,
        checkVersion: (version) => checkIfMatch(c, version),
      });
      if (isPendingReview(result)) {
        c.header("Location", `${API_BASE_PATH}/change-requests/${result.changeRequest.id}`);
        return c.json(result, 202);
      }
      setEtag(c, result.experiment.version);
      return c.json(result, 200);
    },
  );
}

export function registerExperimentRoutes(app: ApiApp): void {
  registerCrud(app, {
    ...experimentResource,
    plural: "experiments",
    tag: "Experiments",
    schema: ExperimentSchema,
    createSchema: ExperimentCreateSchema,
    updateSchema: ExperimentUpdateSchema,
    describe: {
      create:
        "ab and split_url experiments take `variations` (at least 2, weights in basis points summing to 10000; split_url: every variation but the first has exactly one redirect change). multivariate experiments take `sections`; the variations are generated (cartesian product, equal weights). Pages, events (metrics), audiences (audienceConditions), the group and forced-variation keys must exist (422 with the JSON path otherwise). The experiment starts as Not started in every environment.",
      update:
        "Variations keep their ids when sent with their `id` or when their key is unchanged. Changing `type` to multivariate needs `sections`; away from it drops them. Leaving a group removes the experiment from the group's allocation.",
      delete:
        "Refused (409) while the experiment is Running in any environment (pause or archive it first). Removes it from its group's allocation.",
    },
  });
  for (const action of EXPERIMENT_ACTIONS) registerAction(app, action);
}
