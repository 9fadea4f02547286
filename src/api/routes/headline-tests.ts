/**
 * Headline tests (docs/bandits.md "Headline tests", docs/api.md "Headline tests"): one request
 * creates the page, the metric event and a bandit experiment over N headlines. The request schema
 * is src/api/schemas/headline-tests.ts; what it creates, src/api/services/headline-test.ts.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { API_BASE_PATH, type ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { setEtag } from "../http/etag";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { EventSchema } from "../schemas/events";
import { ExperimentSchema } from "../schemas/experiments";
import { ProjectParams, PublishedField } from "../schemas/fields";
import { HeadlineTestCreateSchema } from "../schemas/headline-tests";
import { PageSchema } from "../schemas/pages";
import { eventJson } from "../services/events";
import { createHeadlineTest } from "../services/headline-test";
import { pageJson } from "../services/pages";

const HeadlineTestSchema = z
  .object({
    experiment: ExperimentSchema,
    page: PageSchema,
    event: EventSchema,
    created: z
      .object({ page: z.boolean(), event: z.boolean() })
      .openapi({ description: "Whether the page and the event were created by this request." }),
    published: PublishedField,
  })
  .openapi("HeadlineTest");

export function registerHeadlineTestRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "post",
      path: "/projects/{projectId}/headline-tests",
      tags: ["Bandits"],
      summary: "Create a headline test (a bandit experiment over headlines)",
      description:
        "One request creates the page (from `url`, or uses `pageId`), the metric event (a click on the headline unless `metricEventId` names one) and an ab experiment with allocation policy bandit: one variation per headline (the first is the original), equal weights, each setting the headline's text (and optionally an image's src). `start: true` starts it in production. One D1 batch and one publish; validation problems answer 422 with JSON paths into the request.",
      middleware: [requireRole("editor")] as const,
      request: { params: ProjectParams, body: jsonBody(HeadlineTestCreateSchema) },
      responses: {
        201: jsonResponse(HeadlineTestSchema, "The experiment, its page and metric event"),
        ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422),
      },
    }),
    async (c) => {
      const { projectId } = c.req.valid("param");
      const test = await createHeadlineTest(c.env, c.get("actor"), projectId, c.req.valid("json"));
      setEtag(c, test.experiment.version);
      c.header("Location", `${API_BASE_PATH}/experiments/${test.experiment.id}`);
      return c.json(
        {
          experiment: test.experiment,
          page: pageJson(test.page),
          event: eventJson(test.event),
          created: test.created,
          published: test.published,
        },
        201,
      );
    },
  );
}
