/**
 * Headline tests (docs/bandits.md "Headline tests", docs/api.md "Headline tests"): one request
 * creates what an editor needs to test N headlines of an article and let traffic move to the best
 * one — underneath an ordinary experiment:
 *
 * - the page: a new one from `url` (one URL condition), or an existing `pageId`;
 * - the metric: `metricEventId` (a click or custom event of the project), or by default a click
 *   event on the headline (an existing click event on that page and selector is reused);
 * - the experiment: type `ab`, allocation policy `bandit`, one variation per headline with equal
 *   weights. The first headline is the original (control, no changes); every other one sets the
 *   headline element's text (`attribute` change with `text`) and, with `imageUrl`, an image's
 *   `src`. The headline element is `selector`, or the CMS marker `[data-ss-headline="<id>"]`
 *   for `headlineId` (image: `imageSelector`, default `[data-ss-headline-image="<id>"]`);
 * - `start: true` starts it in production.
 *
 * Everything is one D1 batch and one publish (writeAndPublish: undone when publishing fails).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Change, WebMetric } from "../../core/datafile-types";
import type { ApiApp } from "../context";
import { auditIfChanged } from "../store/audit";
import { requireRole } from "../http/auth";
import type { EventRow, ExperimentRow, PageRow, VariationSpec } from "../store/rows";
import { all, first, requireProject } from "../store/db";
import { errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { setEtag } from "../http/etag";
import { newId, nowIso } from "../ids";
import { assertKeyFree, insertStatement } from "../store/sql";
import { datafileProblems, Problems } from "../services/validation";
import { keySchema, nameSchema, ProjectParams, PublishedField } from "../schemas/fields";
import { urlConditionSchema } from "../schemas/conditions";
import { writeAndPublish } from "../services/write-and-publish";
import { EventSchema, eventJson } from "./events";
import {
  DEFAULT_ACTION_ENVIRONMENT,
  equalWeights,
  ExperimentSchema,
  presentExperiments,
} from "./experiments";
import { PageSchema, pageJson } from "./pages";

export const MIN_HEADLINES = 2;
export const MAX_HEADLINES = 10;
/** CMS marker ids: safe inside a quoted attribute selector. */
const HEADLINE_ID_PATTERN = /^[A-Za-z0-9_.:-]{1,100}$/;

/** The selector of the CMS marker `data-ss-headline="<id>"`. */
export function headlineSelector(headlineId: string): string {
  return `[data-ss-headline="${headlineId}"]`;
}

/** The selector of the CMS image marker `data-ss-headline-image="<id>"`. */
export function headlineImageSelector(headlineId: string): string {
  return `[data-ss-headline-image="${headlineId}"]`;
}

const selectorSchema = z.string().min(1).max(1000);

const HeadlineInputSchema = z
  .strictObject({
    text: z.string().trim().min(1).max(1000).openapi({ description: "The headline text." }),
    imageUrl: z.string().min(1).max(2048).optional().openapi({
      description:
        "An image shown with this headline (sets `src` on imageSelector). Not on the first headline (the original page).",
    }),
    imageSelector: selectorSchema.optional().openapi({
      description:
        'The image element; default `[data-ss-headline-image="<headlineId>"]` (required with `selector`).',
    }),
  })
  .openapi("HeadlineInput");

const HeadlineTestCreateSchema = z
  .strictObject({
    key: keySchema.openapi({
      description:
        "The experiment's key (unique in the project); also the key of a page created from `url`.",
    }),
    name: nameSchema.optional(),
    url: urlConditionSchema.optional().openapi({
      description:
        "Creates a page with this one URL condition, e.g. {match: substring, value: /article/123}. Either url or pageId.",
    }),
    pageId: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: "An existing page of the project." }),
    selector: selectorSchema.optional().openapi({
      description: "The headline element. Either selector or headlineId.",
      example: "article h1",
    }),
    headlineId: z
      .string()
      .regex(HEADLINE_ID_PATTERN, "1–100 characters: letters, digits, _ . : -")
      .optional()
      .openapi({
        description:
          'The CMS marker: the headline element is `[data-ss-headline="<headlineId>"]`. Either selector or headlineId.',
        example: "hero",
      }),
    headlines: z
      .array(HeadlineInputSchema)
      .min(MIN_HEADLINES)
      .max(MAX_HEADLINES)
      .openapi({
        description: `${MIN_HEADLINES}..${MAX_HEADLINES} headlines; the first is the original (control: the page as served).`,
      }),
    metricEventId: z.string().min(1).optional().openapi({
      description:
        "A click or custom event of the project (the primary metric, unique converters). Default: a click event on the headline, created (key `<key>_click`) unless one exists on that page and selector.",
    }),
    start: z
      .boolean()
      .optional()
      .openapi({ description: `Start it in "${DEFAULT_ACTION_ENVIRONMENT}" right away.` }),
  })
  .openapi("HeadlineTestCreate");

type HeadlineTestCreate = z.infer<typeof HeadlineTestCreateSchema>;

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

/** Variation changes of each headline (index = headline), with the JSON paths they came from. */
function headlineChanges(
  body: HeadlineTestCreate,
  selector: string,
  problems: Problems,
): Change[][] {
  return body.headlines.map((headline, i) => {
    if (i === 0) {
      if (headline.imageUrl !== undefined)
        problems.add(
          ["headlines", 0, "imageUrl"],
          "the first headline is the original page: it shows the page's own image",
        );
      if (headline.imageSelector !== undefined)
        problems.add(["headlines", 0, "imageSelector"], "the first headline has no image change");
      return [];
    }
    const changes: Change[] = [
      { type: "attribute", selector, attributes: { text: headline.text } } as Change,
    ];
    if (headline.imageUrl !== undefined) {
      const imageSelector =
        headline.imageSelector ??
        (body.headlineId !== undefined ? headlineImageSelector(body.headlineId) : undefined);
      if (imageSelector === undefined)
        problems.add(
          ["headlines", i, "imageSelector"],
          "required with imageUrl when the headline is given by selector (not headlineId)",
        );
      else
        changes.push({
          type: "attribute",
          selector: imageSelector,
          attributes: { src: headline.imageUrl },
        } as Change);
    } else if (headline.imageSelector !== undefined) {
      problems.add(["headlines", i, "imageSelector"], "only used with imageUrl");
    }
    return changes;
  });
}

/**
 * `$.body.variations[i].changes[j]…` (datafile validator paths of the generated experiment) →
 * the request field it came from.
 */
function requestPath(path: string, body: HeadlineTestCreate): string {
  const match = /^\$\.body\.variations\[(\d+)\]\.changes\[(\d+)\](.*)$/.exec(path);
  if (!match) return "$.body";
  const [, i, j, rest] = match;
  if (j === "0")
    return rest!.startsWith(".selector")
      ? body.headlineId !== undefined
        ? "$.body.headlineId"
        : "$.body.selector"
      : `$.body.headlines[${i}].text`;
  return rest!.startsWith(".selector")
    ? `$.body.headlines[${i}].imageSelector`
    : `$.body.headlines[${i}].imageUrl`;
}

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
      const db = c.env.DB;
      const actor = c.get("actor");
      const { projectId } = c.req.valid("param");
      const body = c.req.valid("json");
      await requireProject(db, projectId);
      const now = nowIso();
      const problems = new Problems();

      // ---- where: the page, and the headline element
      if ((body.url === undefined) === (body.pageId === undefined))
        problems.add(
          [body.url === undefined ? "url" : "pageId"],
          "send either url (a new page) or pageId (an existing page)",
        );
      if ((body.selector === undefined) === (body.headlineId === undefined))
        problems.add(
          [body.selector === undefined ? "headlineId" : "selector"],
          'send either selector or headlineId (the CMS marker data-ss-headline="<id>")',
        );
      const selector = body.selector ?? headlineSelector(body.headlineId ?? "");
      const changes = headlineChanges(body, selector, problems);
      problems.throwIfAny();

      let page: PageRow | null;
      let newPage: PageRow | null = null;
      if (body.pageId !== undefined) {
        page = await first<PageRow>(
          db,
          "SELECT * FROM pages WHERE id = ? AND project_id = ?",
          body.pageId,
          projectId,
        );
        if (!page)
          problems.add(
            ["pageId"],
            `unknown page ${JSON.stringify(body.pageId)} (not a page of this project)`,
          );
      } else {
        const conditions = ["or", body.url];
        newPage = page = {
          id: newId(),
          project_id: projectId,
          key: body.key,
          name: body.name ?? body.key,
          activation: "immediate",
          selector: null,
          conditions: JSON.stringify(conditions),
          archived: 0,
          version: 1,
          created_at: now,
          updated_at: now,
        };
        for (const detail of datafileProblems({
          page: { id: page.id, activation: "immediate", selector: null, conditions },
        }))
          problems.addFormatted(
            detail.path.replace(/^\$\.body\.conditions\[1\]/, "$.body.url"),
            detail.message,
          );
      }
      problems.throwIfAny();
      const thePage = page!;

      // ---- the metric event
      let event: EventRow | null = null;
      let newEvent: EventRow | null = null;
      if (body.metricEventId !== undefined) {
        event = await first<EventRow>(
          db,
          "SELECT * FROM events WHERE id = ? AND project_id = ?",
          body.metricEventId,
          projectId,
        );
        if (!event)
          problems.add(
            ["metricEventId"],
            `unknown event ${JSON.stringify(body.metricEventId)} (not an event of this project)`,
          );
        else if (event.type !== "click" && event.type !== "custom")
          problems.add(
            ["metricEventId"],
            `a headline test measures a click or custom event; ${event.key} is a ${event.type} event`,
          );
      } else if (!newPage) {
        const [existing] = await all<EventRow>(
          db,
          "SELECT * FROM events WHERE project_id = ? AND type = 'click' AND page_id = ? AND selector = ? AND archived = 0 ORDER BY created_at, id LIMIT 1",
          projectId,
          thePage.id,
          selector,
        );
        event = existing ?? null;
      }
      if (!event && body.metricEventId === undefined) {
        newEvent = event = {
          id: newId(),
          project_id: projectId,
          key: `${body.key.slice(0, 58)}_click`,
          name: `${body.name || body.key}: headline click`.slice(0, 200),
          type: "click",
          page_id: thePage.id,
          selector,
          max_per_visitor_per_day: null,
          archived: 0,
          version: 1,
          created_at: now,
          updated_at: now,
        };
        for (const detail of datafileProblems({
          event: { id: event.id, type: "click", pageId: thePage.id, selector },
          pageIds: [thePage.id],
        }))
          problems.addFormatted(
            detail.path === "$.body.selector"
              ? body.headlineId !== undefined
                ? "$.body.headlineId"
                : "$.body.selector"
              : detail.path,
            detail.message,
          );
      }

      // ---- the experiment
      const weights = equalWeights(body.headlines.length);
      const variations: VariationSpec[] = body.headlines.map((headline, i) => ({
        id: newId(),
        key: i === 0 ? "original" : `headline_${i + 1}`,
        name: headline.text.slice(0, 200),
        weight: weights[i]!,
        changes: changes[i]!,
      }));
      for (const detail of datafileProblems({
        experiment: {
          type: "ab",
          pageIds: [thePage.id],
          sharedChanges: [],
          variations: variations.map((v) => ({ changes: v.changes ?? [] })),
        },
        pageIds: [thePage.id],
      }))
        problems.addFormatted(requestPath(detail.path, body), detail.message);

      const production = await first<{ id: string }>(
        db,
        "SELECT id FROM environments WHERE project_id = ? AND key = ?",
        projectId,
        DEFAULT_ACTION_ENVIRONMENT,
      );
      if (body.start === true && !production)
        problems.add(["start"], `the project has no "${DEFAULT_ACTION_ENVIRONMENT}" environment`);
      problems.throwIfAny();
      const theEvent = event!;

      const metrics: WebMetric[] = [
        { eventId: theEvent.id, aggregator: "unique", winningDirection: "increasing" },
      ];
      const experiment: ExperimentRow = {
        id: newId(),
        project_id: projectId,
        key: body.key,
        name: body.name ?? "",
        description: `Headline test on ${selector} (${body.headlines.length} headlines)`,
        type: "ab",
        layer_id: newId(),
        group_id: null,
        traffic: 10000,
        allocation_policy: "bandit",
        audience_conditions: null,
        page_ids: JSON.stringify([thePage.id]),
        metrics: JSON.stringify(metrics),
        variations: JSON.stringify(variations),
        sections: null,
        shared_changes: "[]",
        forced_variations: "{}",
        archived: 0,
        version: 1,
        created_at: now,
        updated_at: now,
      };

      await assertKeyFree(db, "experiments", "experiment", projectId, experiment.key, null);
      if (newPage) await assertKeyFree(db, "pages", "page", projectId, newPage.key, null);
      if (newEvent) await assertKeyFree(db, "events", "event", projectId, newEvent.key, null);

      const statements: D1PreparedStatement[] = [];
      if (newPage)
        statements.push(
          insertStatement(db, "pages", newPage),
          auditIfChanged(db, actor, "create", "page", newPage.id, projectId, {
            label: newPage.key,
            headlineTest: experiment.key,
          }),
        );
      if (newEvent)
        statements.push(
          insertStatement(db, "events", newEvent),
          auditIfChanged(db, actor, "create", "event", newEvent.id, projectId, {
            label: newEvent.key,
            headlineTest: experiment.key,
          }),
        );
      const auditIndex = statements.length + 1;
      statements.push(
        insertStatement(db, "experiments", experiment),
        auditIfChanged(db, actor, "create", "experiment", experiment.id, projectId, {
          label: experiment.key,
          headlineTest: true,
        }),
        db
          .prepare(
            "INSERT INTO experiment_status (experiment_id, environment_id, status, updated_at) SELECT ?, id, CASE WHEN ? = 1 AND key = ? THEN 'Running' ELSE 'Not started' END, ? FROM environments WHERE project_id = ?",
          )
          .bind(
            experiment.id,
            body.start === true ? 1 : 0,
            DEFAULT_ACTION_ENVIRONMENT,
            now,
            projectId,
          ),
      );
      if (body.start === true)
        statements.push(
          auditIfChanged(db, actor, "start", "experiment", experiment.id, projectId, {
            environment: DEFAULT_ACTION_ENVIRONMENT,
            from: "Not started",
            to: "Running",
          }),
        );
      const created = [experiment.id, newPage?.id, newEvent?.id].filter(
        (id): id is string => id !== undefined,
      );
      const published = await writeAndPublish(c.env, actor, {
        projectId,
        statements,
        auditIndex,
        // The experiment first (its statuses cascade), then what referenced nothing else.
        undo: [
          db.prepare("DELETE FROM experiments WHERE id = ?").bind(experiment.id),
          ...(newEvent ? [db.prepare("DELETE FROM events WHERE id = ?").bind(newEvent.id)] : []),
          ...(newPage ? [db.prepare("DELETE FROM pages WHERE id = ?").bind(newPage.id)] : []),
          db
            .prepare(
              `DELETE FROM audit_log WHERE project_id = ? AND resource_id IN (${created.map(() => "?").join(", ")})`,
            )
            .bind(projectId, ...created),
        ],
        reason: `headline test ${experiment.key} created${body.start === true ? ` and started in ${DEFAULT_ACTION_ENVIRONMENT}` : ""}`,
      });
      const [json] = await presentExperiments(db, [experiment]);
      setEtag(c, experiment.version);
      c.header("Location", `/_ss/api/v1/experiments/${experiment.id}`);
      return c.json(
        {
          experiment: json!,
          page: pageJson(thePage),
          event: eventJson(theEvent),
          created: { page: newPage !== null, event: newEvent !== null },
          published,
        },
        201,
      );
    },
  );
}
