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
import type { Env } from "../../env";
import type { Change, WebMetric } from "../../core/datafile-types";
import type { Actor } from "../context";
import { newId, nowIso } from "../ids";
import { DEFAULT_ACTION_ENVIRONMENT, type ExperimentJson } from "../schemas/experiments";
import type { HeadlineTestCreate } from "../schemas/headline-tests";
import { auditIfChanged } from "../store/audit";
import { requireProject } from "../store/db";
import {
  deleteAuditEntriesStatement,
  deleteRowStatement,
  findClickEvent,
  findEnvironmentByKey,
  findProjectEvent,
  findProjectPage,
  initialStatusesStatement,
} from "../store/experiments";
import type { EventRow, ExperimentRow, PageRow, VariationSpec } from "../store/rows";
import { assertKeyFree, insertStatement } from "../store/sql";
import { equalWeights } from "./experiment-plan";
import { presentExperiment } from "./experiment-presenter";
import type { PublishResult } from "./publish";
import { requireActorRole } from "./auth";
import { reviewApplies } from "./review";
import { datafileProblems, Problems } from "./validation";
import { writeAndPublish } from "./write-and-publish";

/** The selector of the CMS marker `data-ss-headline="<id>"`. */
export function headlineSelector(headlineId: string): string {
  return `[data-ss-headline="${headlineId}"]`;
}

/** The selector of the CMS image marker `data-ss-headline-image="<id>"`. */
export function headlineImageSelector(headlineId: string): string {
  return `[data-ss-headline-image="${headlineId}"]`;
}

/** A created headline test: the experiment, its page and metric event, and what was published. */
export interface HeadlineTest {
  experiment: ExperimentJson;
  page: PageRow;
  event: EventRow;
  /** Whether the page and the event were created by this request. */
  created: { page: boolean; event: boolean };
  published: PublishResult[];
}

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
      { type: "attribute", selector, attributes: { text: headline.text } },
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
        });
    } else if (headline.imageSelector !== undefined) {
      problems.add(["headlines", i, "imageSelector"], "only used with imageUrl");
    }
    return changes;
  });
}

/** The request field naming the headline element: `headlineId` or `selector`. */
function selectorPath(body: HeadlineTestCreate): string {
  return body.headlineId !== undefined ? "$.body.headlineId" : "$.body.selector";
}

/**
 * `$.body.variations[i].changes[j]…` (datafile validator paths of the generated experiment) →
 * the request field it came from.
 */
function requestPath(path: string, body: HeadlineTestCreate): string {
  const match = /^\$\.body\.variations\[(\d+)\]\.changes\[(\d+)\](.*)$/.exec(path);
  if (!match) return "$.body";
  const [, i, j, rest = ""] = match;
  if (j === "0")
    return rest.startsWith(".selector") ? selectorPath(body) : `$.body.headlines[${i}].text`;
  return rest.startsWith(".selector")
    ? `$.body.headlines[${i}].imageSelector`
    : `$.body.headlines[${i}].imageUrl`;
}

/** The page of the test: the existing `pageId`, or a new one from `url`, checked. */
async function resolvePage(
  db: D1Database,
  projectId: string,
  body: HeadlineTestCreate,
  now: string,
  problems: Problems,
): Promise<{ page: PageRow | null; created: boolean }> {
  if (body.pageId !== undefined) {
    const page = await findProjectPage(db, projectId, body.pageId);
    if (!page)
      problems.add(
        ["pageId"],
        `unknown page ${JSON.stringify(body.pageId)} (not a page of this project)`,
      );
    return { page, created: false };
  }
  const conditions = ["or", body.url];
  const page: PageRow = {
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
  return { page, created: true };
}

/**
 * The metric event of the test: `metricEventId` (a click or custom event of the project), else
 * the click event on the headline of an existing page, else a new one, checked.
 */
async function resolveEvent(
  db: D1Database,
  projectId: string,
  body: HeadlineTestCreate,
  page: { row: PageRow; created: boolean },
  selector: string,
  now: string,
  problems: Problems,
): Promise<{ event: EventRow | null; created: boolean }> {
  if (body.metricEventId !== undefined) {
    const event = await findProjectEvent(db, projectId, body.metricEventId);
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
    return { event, created: false };
  }
  const existing = page.created ? null : await findClickEvent(db, projectId, page.row.id, selector);
  if (existing) return { event: existing, created: false };
  const event: EventRow = {
    id: newId(),
    project_id: projectId,
    key: `${body.key.slice(0, 58)}_click`,
    name: `${body.name || body.key}: headline click`.slice(0, 200),
    type: "click",
    page_id: page.row.id,
    selector,
    max_per_visitor_per_day: null,
    archived: 0,
    version: 1,
    created_at: now,
    updated_at: now,
  };
  for (const detail of datafileProblems({
    event: { id: event.id, type: "click", pageId: page.row.id, selector },
    pageIds: [page.row.id],
  }))
    problems.addFormatted(
      detail.path === "$.body.selector" ? selectorPath(body) : detail.path,
      detail.message,
    );
  return { event, created: true };
}

/**
 * Creates a headline test in project `projectId` from a validated body (editor; 403 otherwise, as
 * the routes' `requireRole`): 404 for no project, 422 (with JSON paths into the request) for what
 * the schema cannot check, 409 for a key in use. One D1 batch and one publish.
 */
export async function createHeadlineTest(
  env: Env,
  actor: Actor,
  projectId: string,
  body: HeadlineTestCreate,
): Promise<HeadlineTest> {
  requireActorRole(actor, "editor");
  const db = env.DB;
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

  const resolvedPage = await resolvePage(db, projectId, body, now, problems);
  problems.throwIfAny();
  // Null only when a problem was reported, thrown just above.
  const page = resolvedPage.page!;
  const newPage = resolvedPage.created ? page : null;

  // ---- the metric event
  const resolvedEvent = await resolveEvent(
    db,
    projectId,
    body,
    { row: page, created: resolvedPage.created },
    selector,
    now,
    problems,
  );
  const newEvent = resolvedEvent.created ? resolvedEvent.event : null;

  // ---- the experiment
  const weights = equalWeights(body.headlines.length);
  const variations: VariationSpec[] = body.headlines.map((headline, i) => ({
    id: newId(),
    key: i === 0 ? "original" : `headline_${i + 1}`,
    name: headline.text.slice(0, 200),
    weight: weights[i] ?? 0,
    changes: changes[i] ?? [],
  }));
  for (const detail of datafileProblems({
    experiment: {
      type: "ab",
      pageIds: [page.id],
      sharedChanges: [],
      variations: variations.map((v) => ({ changes: v.changes ?? [] })),
    },
    pageIds: [page.id],
    // with its activation: on an immediate page the edge must be able to run the selectors
    pages: [{ id: page.id, key: page.key, activation: page.activation }],
  }))
    problems.addFormatted(requestPath(detail.path, body), detail.message);

  const production = await findEnvironmentByKey(db, projectId, DEFAULT_ACTION_ENVIRONMENT);
  if (body.start === true && !production)
    problems.add(["start"], `the project has no "${DEFAULT_ACTION_ENVIRONMENT}" environment`);
  // An editor's start there waits for review (docs/approvals.md): a create cannot wait, so it asks
  // for the start as its own step.
  if (body.start === true && production?.require_review === 1 && reviewApplies(actor))
    problems.add(
      ["start"],
      `"${DEFAULT_ACTION_ENVIRONMENT}" requires review: create the test without start, then start it (the start waits for review)`,
    );
  problems.throwIfAny();
  // Null only when a problem was reported, thrown just above.
  const event = resolvedEvent.event!;

  const metrics: WebMetric[] = [
    { eventId: event.id, aggregator: "unique", winningDirection: "increasing" },
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
    flag_id: null,
    traffic: 10000,
    allocation_policy: "bandit",
    audience_conditions: null,
    page_ids: JSON.stringify([page.id]),
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
    initialStatusesStatement(
      db,
      experiment.id,
      projectId,
      now,
      body.start === true ? DEFAULT_ACTION_ENVIRONMENT : null,
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
  const published = await writeAndPublish(env, actor, {
    projectId,
    statements,
    auditIndex,
    // The experiment first (its statuses cascade), then what referenced nothing else.
    undo: [
      deleteRowStatement(db, "experiments", experiment.id),
      ...(newEvent ? [deleteRowStatement(db, "events", newEvent.id)] : []),
      ...(newPage ? [deleteRowStatement(db, "pages", newPage.id)] : []),
      deleteAuditEntriesStatement(db, projectId, created),
    ],
    reason: `headline test ${experiment.key} created${body.start === true ? ` and started in ${DEFAULT_ACTION_ENVIRONMENT}` : ""}`,
  });
  return {
    experiment: await presentExperiment(db, experiment),
    page,
    event,
    created: { page: newPage !== null, event: newEvent !== null },
    published,
  };
}
