/**
 * The experiment resource (src/api/services/resources.ts; docs/api.md "Experiments"): how a
 * create or update body becomes a row (src/api/services/experiment-plan.ts), what a delete must
 * check, and how rows become the API's JSON (src/api/services/experiment-presenter.ts). The API's
 * CRUD routes and the admin pages read and write experiments through it
 * (`listResources(env, actor, experimentResource, …)` and the other functions of resources.ts);
 * status changes go through src/api/services/experiment-lifecycle.ts. An editor's update of an
 * experiment live (Running or Paused) in a review-required environment waits for review
 * (src/api/services/review.ts, docs/approvals.md).
 */
import type { ExperimentCreate, ExperimentJson, ExperimentUpdate } from "../schemas/experiments";
import type { ExperimentRow } from "../store/rows";
import { planExperiment, planExperimentDelete } from "./experiment-plan";
import { presentExperiments } from "./experiment-presenter";
import type { ResourceSpec } from "./resources";
import { emitWebhookEvent } from "./webhook-events";
import { requestReview, reviewApplies } from "./review";
import { liveReviewEnvironments } from "../store/change-requests";

/** The experiment resource. */
export const experimentResource: ResourceSpec<
  ExperimentRow,
  ExperimentJson,
  ExperimentCreate,
  ExperimentUpdate
> = {
  type: "experiment",
  table: "experiments",
  keyed: true,
  label: (row) => row.key,
  present: presentExperiments,
  build: planExperiment,
  beforeDelete: planExperimentDelete,
  afterCreate: async (env, actor, row) => {
    await emitWebhookEvent(env, {
      projectId: row.project_id,
      type: "experiment.created",
      environment: null,
      actor,
      data: { experiment: { id: row.id, key: row.key, name: row.name } },
      summary: `experiment ${row.key} created by ${actor.name}`,
    });
  },
  changeRequests: true,
  review: async (ctx, current, body) => {
    if (!reviewApplies(ctx.actor)) return null;
    const environments = await liveReviewEnvironments(ctx.db, current.id);
    if (environments.length === 0) return null;
    return requestReview(ctx.env, ctx.actor, {
      experiment: current,
      kind: "update",
      environments,
      // The validated body, as sent (absent fields stay absent): approving applies it again.
      payload: JSON.parse(JSON.stringify(body)) as Record<string, unknown>,
    });
  },
};
