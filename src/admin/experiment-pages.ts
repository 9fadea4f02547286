/**
 * Experiment editing in the admin (docs/admin.md "Editing experiments", "The experiment form",
 * "Preview links"): creating and changing an experiment through a form whose fields are named by
 * the API's body paths (its model: src/admin/experiment-draft.ts), archiving and duplicating it,
 * its audit history, and signed preview links per variation.
 *
 * Every read and write is a service of src/api/services called as the session's actor, so roles,
 * validation, versions (If-Match), publishing and error messages are the management API's own:
 * the form is turned into the body of `POST /projects/{id}/experiments` or
 * `PATCH /experiments/{id}`, parsed with the route's own zod schema, and handed to
 * `createResource` / `updateResource`. A refusal re-renders the form with what was sent, the
 * API's message on top and each problem beside its field; nothing is written. No script: adding
 * or removing a row (variation, change, section, metric) is a submit button that re-renders the
 * form from what was posted.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { unprocessable, type ApiError } from "../api/errors";
import { ExperimentCreateSchema, ExperimentUpdateSchema } from "../api/schemas/experiments";
import type { AudienceJson } from "../api/schemas/audiences";
import type { EventJson } from "../api/schemas/events";
import type { GroupJson } from "../api/schemas/groups";
import type { PageJson } from "../api/schemas/pages";
import { parseBody } from "../api/schemas/validation-error";
import { listProjectAuditEntries } from "../api/services/audit-history";
import { audienceResource } from "../api/services/audiences";
import { hasRole, requireActorRole } from "../api/services/auth";
import { eventResource } from "../api/services/events";
import { applyExperimentAction } from "../api/services/experiment-lifecycle";
import { experimentResource } from "../api/services/experiments";
import { isPendingReview } from "../api/services/review";
import { groupResource } from "../api/services/groups";
import { pageResource } from "../api/services/pages";
import { getProject } from "../api/services/projects";
import { parseExperimentActionBody } from "../api/services/request-parsing";
import {
  createResource,
  getResource,
  listResources,
  updateResource,
  type Page,
} from "../api/services/resources";
import type { EnvironmentRow } from "../api/store/rows";
import { previewLink, signPreview } from "../edge/preview";
import { loadRoutes } from "../edge/routes";
import {
  changeList,
  changeSummary,
  containerError,
  errorFor,
  errorUnder,
  type ChangeFieldsContext,
} from "./change-fields";
import {
  applyControl,
  audienceIdsOf,
  bodyOf,
  controlOf,
  copyBody,
  draftFromForm,
  draftOfExperiment,
  emptyDraft,
  freeCopyKey,
  isRecord,
  metricDraftOf,
  percentText,
  type ExperimentDraft,
  type MetricDraft,
  type SectionDraft,
  type VariationDraft,
} from "./experiment-draft";
import {
  field,
  fieldErrors,
  fieldId,
  formErrors,
  one,
  postedVersion,
  readForm,
  select,
  textarea,
  versionField,
} from "./forms";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  sendPage,
  type AdminContext,
  type AdminEnv,
  type ExperimentJson,
  type Html,
  type Outcome,
} from "./ui";

const BASE = ADMIN_BASE_PATH;
/** Rows per service call when a page needs all of a project's pages, audiences, events … */
const LIST_PAGE_SIZE = 100;
/** The most rows read for one select; a project with more is far past what a select can show. */
const LIST_MAX = 1000;
const HISTORY_PAGE_SIZE = 50;
const DEFAULT_ENVIRONMENT = "production";

const actorOf = (c: AdminContext): Actor => c.get("actor");
const isEditor = (actor: Actor): boolean => hasRole(actor.role, "editor");
const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// Responses

/** A refused request as a page: the API's message with the API's status. */
function errorPage(c: AdminContext, title: string, error: ApiError) {
  return sendPage(
    c,
    title,
    html`<h1>${title}</h1>
      ${errorBlock(error)}`,
    error.status,
  );
}

/** The role check every POST here starts with, as the API's `requireRole` (403 for viewers). */
function requireEditor(c: AdminContext): Promise<Outcome<void>> {
  return attempt(() => requireActorRole(actorOf(c), "editor"));
}

// ---------------------------------------------------------------------------------------------
// What the form offers: the project's pages, audiences, events, groups and environments

interface References {
  projectId: string;
  environments: EnvironmentRow[];
  pages: PageJson[];
  audiences: AudienceJson[];
  events: EventJson[];
  groups: GroupJson[];
}

/** Every item of a paginated service list (up to LIST_MAX). */
async function listAll<T>(load: (cursor: string | null) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const next = await load(cursor);
    items.push(...next.items);
    cursor = next.after;
  } while (cursor !== null && items.length < LIST_MAX);
  return items;
}

function loadReferences(c: AdminContext, projectId: string): Promise<Outcome<References>> {
  const actor = actorOf(c);
  const env = c.env;
  const pageOf = (cursor: string | null) => ({ limit: LIST_PAGE_SIZE, cursor });
  return attempt(async () => {
    const [project, pages, audiences, events, groups] = await Promise.all([
      getProject(env, actor, projectId),
      listAll((cursor) => listResources(env, actor, pageResource, projectId, pageOf(cursor))),
      listAll((cursor) => listResources(env, actor, audienceResource, projectId, pageOf(cursor))),
      listAll((cursor) => listResources(env, actor, eventResource, projectId, pageOf(cursor))),
      listAll((cursor) => listResources(env, actor, groupResource, projectId, pageOf(cursor))),
    ]);
    return { projectId, environments: project.environments, pages, audiences, events, groups };
  });
}

// ---------------------------------------------------------------------------------------------
// Rendering the form

interface FormView {
  title: string;
  action: string;
  cancel: string;
  submitLabel: string;
  draft: ExperimentDraft;
  refs: References;
  error: ApiError | null;
  /** The version the form edits (sent back as If-Match). */
  version: number | null;
  /**
   * An A/B rule of a feature flag (`flagId`): it runs wherever the flag is decided and its
   * variations are the flag's, so the form leaves out the Pages select and the change fields
   * (unless they hold something stored, which is then kept).
   */
  flagRule?: boolean;
}

const TYPE_OPTIONS = [
  { value: "ab", label: "A/B: variations with changes" },
  { value: "multivariate", label: "Multivariate: sections whose options combine" },
  { value: "split_url", label: "Split URL: variations redirect to other URLs" },
];
const AGGREGATORS = [
  { value: "unique", label: "unique: visitors who converted" },
  { value: "count", label: "count: conversions per visitor" },
  { value: "sum", label: "sum: of a field per visitor" },
];

function pageLabel(p: PageJson): string {
  return `${p.name || p.key} (${p.key})${p.archived ? " · archived" : ""}`;
}

/**
 * A multi-select's options with the chosen ones first, in their order: a browser posts the
 * selected options in document order, so the stored order (of `pageIds`) survives a save. A
 * chosen value not among the options (past the first LIST_MAX items) is offered by its id, so an
 * unchanged save keeps it instead of dropping a page or an audience (widening the targeting).
 */
export function chosenFirst(
  options: ReadonlyArray<{ value: string; label: string }>,
  chosen: readonly string[],
): Array<{ value: string; label: string }> {
  const byValue = new Map(options.map((o) => [o.value, o]));
  const first = chosen.map(
    (value) => byValue.get(value) ?? { value, label: `${value} (not listed)` },
  );
  return [...first, ...options.filter((o) => !chosen.includes(o.value))];
}

function variationFieldset(
  i: number,
  v: VariationDraft,
  errors: ReadonlyMap<string, string>,
  changes: ChangeFieldsContext,
  flagRule = false,
): Html {
  const path = `variations[${i}]`;
  // An A/B rule of a flag: the flag's variation of this key says what it delivers (enabled, the
  // variables) and it changes no page; fields with a stored value are still shown (and kept).
  const featureEnabledShown = !flagRule || v.featureEnabled !== "";
  const changesShown = !flagRule || v.changes.length > 0;
  return html`<fieldset id="${fieldId(path)}" data-variation="${i}">
    <legend>Variation ${i + 1}${i === 0 ? " (baseline)" : ""}</legend>
    ${containerError(errors, path)}
    ${v.id === "" ? "" : html`<input type="hidden" name="${path}.id" value="${v.id}" />`}
    ${field({ name: `${path}.key`, label: "Key", value: v.key, error: errorFor(errors, `${path}.key`), required: true })}
    ${field({ name: `${path}.name`, label: "Name", value: v.name, error: errorFor(errors, `${path}.name`) })}
    ${field({
      name: `${path}.weight`,
      label: "Weight (%)",
      value: v.weight,
      type: "number",
      min: 0,
      max: 100,
      step: "0.01",
      error: errorFor(errors, `${path}.weight`),
    })}
    ${
      featureEnabledShown
        ? select({
            name: `${path}.featureEnabled`,
            label: "Feature enabled",
            value: v.featureEnabled,
            options: [
              { value: "", label: "not set" },
              { value: "true", label: "on" },
              { value: "false", label: "off" },
            ],
            error: errorFor(errors, `${path}.featureEnabled`),
            hint: "Feature tests only (docs/decisions.md)",
          })
        : ""
    }
    ${
      changesShown
        ? html`<fieldset>
            <legend>Changes of variation ${i + 1}</legend>
            ${changeList(`${path}.changes`, v.changes, changes)}
          </fieldset>`
        : ""
    }
    <button type="submit" name="_remove" value="${path}">Remove variation ${i + 1}</button>
  </fieldset>`;
}

function sectionFieldset(
  s: number,
  section: SectionDraft,
  errors: ReadonlyMap<string, string>,
  changes: ChangeFieldsContext,
): Html {
  const path = `sections[${s}]`;
  return html`<fieldset id="${fieldId(path)}" data-section="${s}">
    <legend>Section ${s + 1}</legend>
    ${containerError(errors, path)}
    ${section.id === "" ? "" : html`<input type="hidden" name="${path}.id" value="${section.id}" />`}
    ${field({ name: `${path}.name`, label: "Section name", value: section.name, error: errorFor(errors, `${path}.name`) })}
    <div id="${fieldId(`${path}.variations`)}">
      ${containerError(errors, `${path}.variations`)}
      ${section.variations.map((v, j) => {
        const at = `${path}.variations[${j}]`;
        return html`<fieldset id="${fieldId(at)}">
          <legend>Section ${s + 1}, option ${j + 1}</legend>
          ${containerError(errors, at)}
          ${v.id === "" ? "" : html`<input type="hidden" name="${at}.id" value="${v.id}" />`}
          ${field({ name: `${at}.name`, label: "Name", value: v.name, error: errorFor(errors, `${at}.name`) })}
          ${field({
            name: `${at}.key`,
            label: "Key",
            value: v.key,
            error: errorFor(errors, `${at}.key`),
            hint: "Optional: derived from the name",
          })}
          <fieldset>
            <legend>Changes of section ${s + 1}, option ${j + 1}</legend>
            ${changeList(`${at}.changes`, v.changes, changes)}
          </fieldset>
          <button type="submit" name="_remove" value="${at}">
            Remove option ${j + 1} of section ${s + 1}
          </button>
        </fieldset>`;
      })}
    </div>
    <p class="row">
      <button type="submit" name="_add" value="${path}.variations">
        Add an option to section ${s + 1}
      </button>
      <button type="submit" name="_remove" value="${path}">Remove section ${s + 1}</button>
    </p>
  </fieldset>`;
}

function metricFieldset(
  i: number,
  m: MetricDraft,
  refs: References,
  errors: ReadonlyMap<string, string>,
): Html {
  const path = `metrics[${i}]`;
  return html`<fieldset id="${fieldId(path)}" data-metric="${i}">
    <legend>${i === 0 ? "Primary metric" : `Metric ${i + 1}`}</legend>
    ${containerError(errors, path)}
    ${select({
      name: `${path}.eventId`,
      label: "Event",
      value: m.eventId,
      options: [
        { value: "", label: "Choose an event" },
        ...refs.events.map((e) => ({
          value: e.id,
          label: `${e.name || e.key} (${e.key}, ${e.type})`,
        })),
      ],
      error: errorFor(errors, `${path}.eventId`),
    })}
    ${select({
      name: `${path}.aggregator`,
      label: "Aggregator",
      value: m.aggregator,
      options: AGGREGATORS,
      error: errorFor(errors, `${path}.aggregator`),
    })}
    ${select({
      name: `${path}.field`,
      label: "Field (sum only)",
      value: m.field,
      options: [
        { value: "", label: "none" },
        { value: "revenue", label: "revenue" },
        { value: "value", label: "value" },
      ],
      error: errorFor(errors, `${path}.field`),
    })}
    ${select({
      name: `${path}.winningDirection`,
      label: "Winning direction",
      value: m.winningDirection,
      options: [
        { value: "increasing", label: "increasing: more is better" },
        { value: "decreasing", label: "decreasing: less is better" },
      ],
      error: errorFor(errors, `${path}.winningDirection`),
    })}
    ${select({
      name: `${path}.capping.type`,
      label: "Capping (count and sum)",
      value: m.cappingType,
      options: [
        { value: "", label: "none" },
        { value: "absolute", label: "absolute: at most this per visitor" },
        { value: "percentile", label: "percentile: at this quantile (0.99 = 99th)" },
      ],
      error: errorUnder(errors, `${path}.capping`),
      hint: "docs/statistics.md “Capping”",
    })}
    ${field({
      name: `${path}.capping.value`,
      label: "Capping value",
      value: m.cappingValue,
      type: "number",
      step: "any",
      error: errorFor(errors, `${path}.capping.value`),
    })}
    <p class="row">
      ${i > 0 ? html`<button type="submit" name="_primary" value="${path}">Make metric ${i + 1} primary</button>` : ""}
      <button type="submit" name="_remove" value="${path}">Remove metric ${i + 1}</button>
    </p>
  </fieldset>`;
}

function experimentForm(view: FormView): Html {
  const { draft, refs, error } = view;
  const flagRule = view.flagRule === true;
  const pagesShown = !flagRule || draft.pageIds.length > 0;
  const errors = fieldErrors(error);
  const changes: ChangeFieldsContext = {
    errors,
    pages: refs.pages.map((p) => ({ value: p.id, label: pageLabel(p) })),
  };
  const save = html`<button type="submit" name="_save" value="1">${view.submitLabel}</button>`;
  const audienceField = select({
    name: "audienceConditions",
    label: "Audience",
    value: draft.audienceIds.length === 0 ? [""] : draft.audienceIds,
    multiple: true,
    options: [
      { value: "", label: "Everyone" },
      ...chosenFirst(
        refs.audiences.map((a) => ({
          value: a.id,
          label: `${a.name}${a.archived ? " · archived" : ""}`,
        })),
        draft.audienceIds,
      ),
    ],
    error: errorUnder(errors, "audienceConditions"),
    hint: "Choose one or more audiences (a visitor in any of them qualifies), or Everyone",
  });
  return html`<h1>${view.title}</h1>
    ${formErrors(error)}
    ${
      error?.code === "version_conflict"
        ? html`<p class="warning" role="status">
            Nothing was saved. <a href="${view.action}">Open the current version</a> (what you
            changed here is not carried over).
          </p>`
        : ""
    }
    <form method="post" action="${view.action}" data-form="experiment">
      ${view.version === null ? "" : versionField(view.version)}
      <p class="row">${save} <a href="${view.cancel}">Cancel</a></p>
      <fieldset>
        <legend>Experiment</legend>
        ${field({ name: "key", label: "Key", value: draft.key, error: errorFor(errors, "key"), required: true, hint: "1–64 letters, digits, _ . - ; unique in the project" })}
        ${field({ name: "name", label: "Name", value: draft.name, error: errorFor(errors, "name") })}
        ${textarea({ name: "description", label: "Description", value: draft.description, rows: 2, error: errorFor(errors, "description") })}
        <div class="row">
          ${select({ name: "type", label: "Type", value: draft.type, options: TYPE_OPTIONS, error: errorFor(errors, "type") })}
          <button type="submit" name="_refresh" value="type">Show fields for this type</button>
        </div>
      </fieldset>
      <fieldset>
        <legend>${flagRule ? "Audience" : "Pages and audience"}</legend>
        ${
          pagesShown
            ? select({
                name: "pageIds",
                label: "Pages",
                value: draft.pageIds,
                multiple: true,
                options: chosenFirst(changes.pages, draft.pageIds),
                error: errorUnder(errors, "pageIds"),
                hint:
                  refs.pages.length === 0
                    ? "The project has no pages yet: create one first (API: POST /projects/{id}/pages)"
                    : "The experiment runs on every page chosen (several for a multi-page experiment)",
              })
            : html`<p class="muted" data-flag-rule>
                An A/B rule of a feature flag runs wherever the flag is decided (no pages), and each
                variation delivers the flag's variation of its key (no changes).
              </p>`
        }
        ${
          draft.audienceTree === ""
            ? audienceField
            : html`<p class="warning" id="audience-tree">
                  The audience conditions are a tree this list cannot show:
                  <code>${draft.audienceTree}</code>
                </p>
                <input type="hidden" name="_audienceTree" value="${draft.audienceTree}" />
                <p class="field check">
                  <input
                    id="f-keep-audience"
                    type="checkbox"
                    name="_keepAudience"
                    value="on"
                    ${draft.keepAudienceTree ? html`checked` : ""}
                  />
                  <label for="f-keep-audience"
                    >Keep these conditions (untick to use the list below)</label
                  >
                </p>
                ${audienceField}`
        }
        ${field({
          name: "traffic",
          label: "Traffic (%)",
          value: draft.traffic,
          type: "number",
          min: 0,
          max: 100,
          step: "0.01",
          error: errorFor(errors, "traffic"),
          hint: "Share of the eligible visitors in the experiment; the rest see the original",
        })}
      </fieldset>
      ${
        draft.type === "multivariate"
          ? html`<fieldset id="${fieldId("sections")}">
              <legend>Sections</legend>
              ${containerError(errors, "sections")}
              <p class="muted">
                Every combination of one option per section is a variation, with equal traffic.
              </p>
              ${draft.sections.map((s, i) => sectionFieldset(i, s, errors, changes))}
              <button type="submit" name="_add" value="sections">Add section</button>
            </fieldset>`
          : html`<fieldset id="${fieldId("variations")}">
              <legend>Variations</legend>
              ${containerError(errors, "variations")}
              <p class="muted">
                Weights sum to 100 %.
                ${draft.type === "split_url" ? "The first variation is the original page; every other one needs exactly one redirect change." : ""}
              </p>
              ${draft.variations.map((v, i) => variationFieldset(i, v, errors, changes, flagRule))}
              <button type="submit" name="_add" value="variations">Add variation</button>
            </fieldset>`
      }
      ${
        !flagRule || draft.sharedChanges.length > 0
          ? html`<fieldset>
              <legend>Shared changes (applied in every variation)</legend>
              ${changeList("sharedChanges", draft.sharedChanges, changes)}
            </fieldset>`
          : ""
      }
      <fieldset id="${fieldId("metrics")}">
        <legend>Metrics</legend>
        ${containerError(errors, "metrics")}
        ${draft.metrics.map((m, i) => metricFieldset(i, m, refs, errors))}
        <button type="submit" name="_add" value="metrics">Add metric</button>
      </fieldset>
      <fieldset>
        <legend>More</legend>
        ${select({
          name: "groupId",
          label: "Mutually exclusive group",
          value: draft.groupId,
          options: [
            { value: "", label: "none" },
            ...refs.groups.map((g) => ({ value: g.id, label: g.name })),
          ],
          error: errorFor(errors, "groupId"),
        })}
        ${select({
          name: "allocationPolicy",
          label: "Allocation",
          value: draft.allocationPolicy,
          options: [
            { value: "manual", label: "manual: the weights above" },
            { value: "bandit", label: "bandit: re-weighted hourly by the primary metric" },
          ],
          error: errorFor(errors, "allocationPolicy"),
        })}
        ${textarea({
          name: "forcedVariations",
          label: "Forced variations (QA)",
          value: draft.forcedVariations,
          rows: 2,
          error: errorUnder(errors, "forcedVariations"),
          hint: "One visitorId=variationKey per line",
        })}
      </fieldset>
      <p class="row">${save} <a href="${view.cancel}">Cancel</a></p>
    </form>`;
}

// ---------------------------------------------------------------------------------------------
// Read-only views (viewers)

function audienceText(x: ExperimentJson, refs: References): string {
  const ids = audienceIdsOf(x.audienceConditions);
  if (ids === null) return JSON.stringify(x.audienceConditions);
  if (ids.length === 0) return "Everyone";
  return ids.map((id) => refs.audiences.find((a) => a.id === id)?.name ?? id).join(" or ");
}

function experimentSummary(x: ExperimentJson, refs: References): Html {
  const pageName = (id: string) => {
    const p = refs.pages.find((candidate) => candidate.id === id);
    return p ? pageLabel(p) : id;
  };
  const eventName = (id: string) => refs.events.find((e) => e.id === id)?.key ?? id;
  const metrics = x.metrics.map(metricDraftOf);
  return html`<table data-summary="experiment">
      <tbody>
        <tr>
          <th scope="row">Key</th>
          <td>${x.key}</td>
        </tr>
        <tr>
          <th scope="row">Type</th>
          <td>${x.type}</td>
        </tr>
        ${
          x.flagId !== null && x.pageIds.length === 0
            ? ""
            : html`<tr>
                <th scope="row">Pages</th>
                <td>${x.pageIds.map(pageName).join(", ")}</td>
              </tr>`
        }
        <tr>
          <th scope="row">Audience</th>
          <td>${audienceText(x, refs)}</td>
        </tr>
        <tr>
          <th scope="row">Traffic</th>
          <td>${percentText(x.traffic)} %</td>
        </tr>
        <tr>
          <th scope="row">Allocation</th>
          <td>${x.allocationPolicy}</td>
        </tr>
        <tr>
          <th scope="row">Group</th>
          <td>
            ${x.groupId === null ? "none" : (refs.groups.find((g) => g.id === x.groupId)?.name ?? x.groupId)}
          </td>
        </tr>
        <tr>
          <th scope="row">Metrics</th>
          <td>
            ${metrics
              .map(
                (m, i) =>
                  `${i === 0 ? "primary: " : ""}${eventName(m.eventId)} (${m.aggregator}${m.field ? ` of ${m.field}` : ""}${m.winningDirection ? `, ${m.winningDirection}` : ""})`,
              )
              .join("; ")}
          </td>
        </tr>
      </tbody>
    </table>
    <h2>Variations</h2>
    <table data-summary="variations">
      <thead>
        <tr>
          <th scope="col">Variation</th>
          <th scope="col" class="num">Weight</th>
          <th scope="col">Changes</th>
        </tr>
      </thead>
      <tbody>
        ${x.variations.map(
          (v) =>
            html`<tr>
              <td>${v.key}${v.name ? html`<br /><span class="muted">${v.name}</span>` : ""}</td>
              <td class="num">${percentText(v.weight)} %</td>
              <td>
                ${
                  v.changes.length === 0
                    ? "none"
                    : html`<ul>
                        ${v.changes.map((change) => html`<li>${changeSummary(isRecord(change) ? change : {})}</li>`)}
                      </ul>`
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${
      x.sharedChanges.length === 0
        ? ""
        : html`<h2>Shared changes</h2>
            <ul>
              ${x.sharedChanges.map((change) => html`<li>${changeSummary(isRecord(change) ? change : {})}</li>`)}
            </ul>`
    }`;
}

// ---------------------------------------------------------------------------------------------
// Links and buttons on the existing pages (src/admin/app.ts)

/** "New experiment" on a project's page, for editors. */
export function newExperimentLink(projectId: string, actor: Actor): Html {
  return isEditor(actor)
    ? html`<p>
        <a href="${BASE}/projects/${enc(projectId)}/experiments/new" data-link="new-experiment"
          >New experiment</a
        >
      </p>`
    : html``;
}

/**
 * The experiment page's links and buttons besides start/pause/resume: Edit, History, Preview
 * links (not for an A/B rule of a flag, which changes no page), and for editors Archive (in this
 * environment; final, so it asks for a tick) and Duplicate.
 */
export function experimentControls(x: ExperimentJson, environment: string, actor: Actor): Html {
  const id = enc(x.id);
  const editor = isEditor(actor);
  const status = x.status[environment] ?? "Not started";
  // The visual editor (src/admin/editor-routes.ts): one link per variation (multivariate: the
  // editor offers every section's variations itself). Split URL variations are redirects; an A/B
  // rule of a feature flag changes no page (its variations are the flag's).
  const visual =
    editor && !x.archived && x.type !== "split_url" && x.flagId === null
      ? x.type === "multivariate"
        ? [
            {
              label: "Edit visually",
              href: `${BASE}/experiments/${id}/editor?environment=${enc(environment)}`,
            },
          ]
        : x.variations.map((v) => ({
            label: `Edit ${v.key} visually`,
            href: `${BASE}/experiments/${id}/editor?variation=${enc(v.id)}&environment=${enc(environment)}`,
          }))
      : [];
  return html`<div class="row" data-controls="experiment">
    ${
      x.flagId === null
        ? ""
        : html`<a
            href="${BASE}/projects/${enc(x.projectId)}/flags/${enc(x.flagId)}"
            data-link="flag"
            >The flag of this A/B rule</a
          >`
    }
    ${editor ? html`<a href="${BASE}/experiments/${id}/edit" data-link="edit">Edit</a>` : ""}
    ${visual.map((v) => html`<a href="${v.href}" data-link="visual-editor">${v.label}</a>`)}
    <a href="${BASE}/experiments/${id}/history" data-link="history">History</a>
    ${
      // A preview link shows a variation's changes on a page: an A/B rule has neither.
      x.flagId === null
        ? html`<a
            href="${BASE}/experiments/${id}/preview?environment=${enc(environment)}"
            data-link="preview"
            >Preview links</a
          >`
        : ""
    }
    ${
      editor && status !== "Archived"
        ? html`<form method="post" action="${BASE}/experiments/${id}/archive" class="row">
            <input type="hidden" name="environment" value="${environment}" />
            <input type="checkbox" id="archive-confirm" name="confirm" value="yes" required />
            <label for="archive-confirm">Archiving in ${environment} is final</label>
            <button type="submit" data-action="archive">Archive</button>
          </form>`
        : ""
    }
    ${
      editor
        ? html`<form method="post" action="${BASE}/experiments/${id}/duplicate">
            <input type="hidden" name="environment" value="${environment}" />
            <button type="submit" data-action="duplicate">Duplicate</button>
          </form>`
        : ""
    }
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// History

/** An audit entry's details in a line: `fields: name, variations`, `production: A → B` … */
function detailsText(details: unknown): string {
  if (!isRecord(details)) return details === null || details === undefined ? "" : String(details);
  const { environment, from, to, ...rest } = details;
  const parts: string[] = [];
  if (typeof from === "string" && typeof to === "string")
    parts.push(`${typeof environment === "string" ? `${environment}: ` : ""}${from} → ${to}`);
  else if (environment !== undefined) rest.environment = environment;
  for (const [key, value] of Object.entries(rest))
    parts.push(
      // Lists of names read as a list; lists of objects (a schedule's steps) as JSON.
      `${key}: ${Array.isArray(value) && value.every((v) => typeof v === "string") ? value.join(", ") : typeof value === "string" ? value : JSON.stringify(value)}`,
    );
  return parts.join("; ");
}

// ---------------------------------------------------------------------------------------------
// Preview links

/** Link lifetimes offered (docs/visitors.md "Preview links": prefer hours). */
const PREVIEW_LIFETIMES = [
  { value: "3600", label: "1 hour" },
  { value: "86400", label: "24 hours" },
  { value: "604800", label: "7 days" },
] as const;

const schemeFor = (host: string): string =>
  /^(localhost|127\.|\[::1\])/i.test(host) ? "http" : "https";

/**
 * A URL the page's URL conditions match, when one can be read off them: the first `exact` or
 * `simple` leaf (not under a `not`) that is, or with a scheme becomes, an absolute http(s) URL.
 */
export function urlOfConditions(tree: unknown): string | null {
  if (Array.isArray(tree)) {
    if (tree[0] === "not") return null;
    for (const node of tree.slice(1)) {
      const url = urlOfConditions(node);
      if (url !== null) return url;
    }
    return null;
  }
  if (!isRecord(tree) || typeof tree.value !== "string") return null;
  if (tree.match !== "exact" && tree.match !== "simple") return null;
  const value = tree.value.trim();
  const candidate = /^https?:\/\//i.test(value)
    ? value
    : tree.match === "simple" && value !== "" && !value.startsWith("/")
      ? `${schemeFor(value)}://${value}`
      : null;
  if (candidate === null) return null;
  try {
    const url = new URL(candidate);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * The site of an sdkKey: the first route of `ROUTES` for it with a concrete host (docs/config.md),
 * else the origin these admin pages are served from.
 */
function siteRoot(c: AdminContext, sdkKey: string): string {
  for (const route of loadRoutes(c.env)) {
    if (route.sdkKey !== sdkKey) continue;
    const match = /^(?:(https?):\/\/)?([^/]+)/i.exec(route.pattern);
    const host = match?.[2];
    if (!host || host.includes("*")) continue;
    try {
      return new URL(`${match?.[1] ?? schemeFor(host)}://${host}/`).href;
    } catch {
      continue;
    }
  }
  return new URL("/", c.req.url).href;
}

interface PreviewResult {
  variationKey: string;
  environment: string;
  link: string;
  expiresAt: string;
}

function previewPage(
  x: ExperimentJson,
  environments: readonly EnvironmentRow[],
  environment: string,
  actor: Actor,
  outcome: { result?: PreviewResult; error?: ApiError | null },
): Html {
  const editor = isEditor(actor);
  const { result, error } = outcome;
  return html`<p>
      <a href="${BASE}/experiments/${enc(x.id)}?environment=${enc(environment)}"
        >← ${x.name || x.key}</a
      >
    </p>
    <h1>Preview links: ${x.name || x.key}</h1>
    <p class="muted">
      A preview link shows one variation to the browser that opens it until the link expires, also
      before the experiment runs; previews are never counted in the results. Anyone holding the link
      can use it: prefer short lifetimes for links leaving the team.
    </p>
    ${error ? errorBlock(error) : ""}
    ${
      result
        ? html`<p class="field" data-preview-link>
            <label for="preview-link"
              >Preview link for ${result.variationKey} in ${result.environment} (valid until
              ${result.expiresAt}); select it and copy</label
            >
            <input id="preview-link" type="text" readonly value="${result.link}" size="100" />
          </p>`
        : ""
    }
    ${editor ? "" : html`<p class="muted">Creating preview links needs the editor role.</p>`}
    <table data-list="variations">
      <thead>
        <tr>
          <th scope="col">Variation</th>
          <th scope="col" class="num">Weight</th>
          ${editor ? html`<th scope="col">Preview</th>` : ""}
        </tr>
      </thead>
      <tbody>
        ${x.variations.map(
          (v, i) =>
            html`<tr data-variation="${v.key}">
              <td>${v.key}${v.name ? html`<br /><span class="muted">${v.name}</span>` : ""}</td>
              <td class="num">${percentText(v.weight)} %</td>
              ${
                editor
                  ? html`<td>
                      <form
                        method="post"
                        action="${BASE}/experiments/${enc(x.id)}/preview"
                        class="row"
                      >
                        <input type="hidden" name="variationId" value="${v.id}" />
                        <label for="preview-env-${i}">Environment</label>
                        <select id="preview-env-${i}" name="environment">
                          ${environments.map(
                            (e) =>
                              html`<option
                                value="${e.key}"
                                ${e.key === environment ? html`selected` : ""}
                              >
                                ${e.key}
                              </option>`,
                          )}
                        </select>
                        <label for="preview-expiry-${i}">Valid for</label>
                        <select id="preview-expiry-${i}" name="expiresIn">
                          ${PREVIEW_LIFETIMES.map((l) => html`<option value="${l.value}">${l.label}</option>`)}
                        </select>
                        <button type="submit" data-action="preview">
                          Create preview link for ${v.key}
                        </button>
                      </form>
                    </td>`
                  : ""
              }
            </tr>`,
        )}
      </tbody>
    </table>`;
}

// ---------------------------------------------------------------------------------------------
// Routes

/** Registers the experiment editing pages on the admin app (src/admin/app.ts). */
export function registerExperimentPages(app: Hono<AdminEnv>): void {
  const newTitle = "New experiment";

  app.get("/projects/:id/experiments/new", async (c) => {
    const projectId = c.req.param("id");
    const refs = await loadReferences(c, projectId);
    if (!refs.ok) return errorPage(c, newTitle, refs.error);
    const back = `${BASE}/projects/${enc(projectId)}`;
    if (!isEditor(actorOf(c)))
      return sendPage(
        c,
        newTitle,
        html`<p><a href="${back}">← Experiments</a></p>
          <h1>${newTitle}</h1>
          <p class="muted">Creating experiments needs the editor role.</p>`,
      );
    return sendPage(
      c,
      newTitle,
      experimentForm({
        title: newTitle,
        action: `${back}/experiments/new`,
        cancel: back,
        submitLabel: "Create experiment",
        draft: emptyDraft(),
        refs: refs.value,
        error: null,
        version: null,
      }),
    );
  });

  app.post("/projects/:id/experiments/new", async (c) => {
    const projectId = c.req.param("id");
    const allowed = await requireEditor(c);
    if (!allowed.ok) return errorPage(c, newTitle, allowed.error);
    const form = await readForm(c);
    const refs = await loadReferences(c, projectId);
    if (!refs.ok) return errorPage(c, newTitle, refs.error);
    const draft = draftFromForm(form);
    const back = `${BASE}/projects/${enc(projectId)}`;
    const view = (error: ApiError | null): Html =>
      experimentForm({
        title: newTitle,
        action: `${back}/experiments/new`,
        cancel: back,
        submitLabel: "Create experiment",
        draft,
        refs: refs.value,
        error,
        version: null,
      });
    const control = controlOf(form);
    if (control) {
      applyControl(draft, control, form);
      return sendPage(c, newTitle, view(null));
    }
    const created = await attempt(() => {
      const parsed = parseBody(ExperimentCreateSchema, bodyOf(draft, "create"));
      return createResource(c.env, actorOf(c), experimentResource, projectId, parsed);
    });
    if (!created.ok) return sendPage(c, newTitle, view(created.error), created.error.status);
    return c.redirect(`${BASE}/experiments/${enc(created.value.row.id)}`, 303);
  });

  app.get("/experiments/:id/edit", async (c) => {
    const id = c.req.param("id");
    const actor = actorOf(c);
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok) return errorPage(c, "Edit experiment", experiment.error);
    const x = experiment.value.json;
    const refs = await loadReferences(c, x.projectId);
    if (!refs.ok) return errorPage(c, "Edit experiment", refs.error);
    const title = `Edit ${x.name || x.key}`;
    const back = `${BASE}/experiments/${enc(id)}`;
    if (!isEditor(actor))
      return sendPage(
        c,
        title,
        html`<p><a href="${back}">← ${x.name || x.key}</a></p>
          <h1>${x.name || x.key}</h1>
          <p class="muted">Changing experiments needs the editor role.</p>
          ${experimentSummary(x, refs.value)}`,
      );
    return sendPage(
      c,
      title,
      experimentForm({
        title,
        action: `${back}/edit`,
        cancel: back,
        submitLabel: "Save changes",
        draft: draftOfExperiment(x),
        refs: refs.value,
        error: null,
        version: x.version,
        flagRule: x.flagId !== null,
      }),
    );
  });

  app.post("/experiments/:id/edit", async (c) => {
    const id = c.req.param("id");
    const allowed = await requireEditor(c);
    if (!allowed.ok) return errorPage(c, "Edit experiment", allowed.error);
    const actor = actorOf(c);
    const form = await readForm(c);
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok) return errorPage(c, "Edit experiment", experiment.error);
    const x = experiment.value.json;
    const refs = await loadReferences(c, x.projectId);
    if (!refs.ok) return errorPage(c, "Edit experiment", refs.error);
    const draft = draftFromForm(form);
    const title = `Edit ${x.name || x.key}`;
    const back = `${BASE}/experiments/${enc(id)}`;
    // The version the form was rendered from stays in it: a stale form stays stale until reloaded.
    const version = postedVersion(form);
    const view = (error: ApiError | null): Html =>
      experimentForm({
        title,
        action: `${back}/edit`,
        cancel: back,
        submitLabel: "Save changes",
        draft,
        refs: refs.value,
        error,
        version,
        flagRule: x.flagId !== null,
      });
    const control = controlOf(form);
    if (control) {
      applyControl(draft, control, form);
      return sendPage(c, title, view(null));
    }
    const updated = await attempt(() => {
      const parsed = parseBody(ExperimentUpdateSchema, bodyOf(draft, "update"));
      return updateResource(c.env, actor, experimentResource, id, parsed, version);
    });
    if (!updated.ok) return sendPage(c, title, view(updated.error), updated.error.status);
    // An editor's change to a live experiment where review is required (docs/approvals.md).
    if (isPendingReview(updated.value))
      return c.redirect(
        `${back}?notice=${enc(`Sent to review, not applied yet: ${updated.value.message}.`)}`,
        303,
      );
    return c.redirect(back, 303);
  });

  app.post("/experiments/:id/archive", async (c) => {
    const id = c.req.param("id");
    const allowed = await requireEditor(c);
    if (!allowed.ok) return errorPage(c, "Archive", allowed.error);
    const form = await readForm(c);
    const environment = one(form, "environment") || DEFAULT_ENVIRONMENT;
    let notice = "";
    if (one(form, "confirm") === "") {
      notice = "Not archived: tick “Archiving is final” to confirm.";
    } else {
      const result = await attempt(() =>
        applyExperimentAction(c.env, actorOf(c), {
          id,
          action: "archive",
          environment: parseExperimentActionBody({ environment }).environment,
        }),
      );
      if (!result.ok) notice = result.error.message;
    }
    return c.redirect(
      `${BASE}/experiments/${enc(id)}?environment=${enc(environment)}${notice ? `&notice=${enc(notice)}` : ""}`,
      303,
    );
  });

  app.post("/experiments/:id/duplicate", async (c) => {
    const id = c.req.param("id");
    const allowed = await requireEditor(c);
    if (!allowed.ok) return errorPage(c, "Duplicate", allowed.error);
    const actor = actorOf(c);
    const form = await readForm(c);
    const environment = one(form, "environment") || DEFAULT_ENVIRONMENT;
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok) return errorPage(c, "Duplicate", experiment.error);
    const x = experiment.value.json;
    const copy = await attempt(async () => {
      const existing = await listAll((cursor) =>
        listResources(c.env, actor, experimentResource, x.projectId, {
          limit: LIST_PAGE_SIZE,
          cursor,
        }),
      );
      const key = freeCopyKey(x.key, new Set(existing.map((e) => e.key)));
      const parsed = parseBody(ExperimentCreateSchema, copyBody(x, key));
      return createResource(c.env, actor, experimentResource, x.projectId, parsed);
    });
    const query = `environment=${enc(environment)}`;
    if (!copy.ok)
      return c.redirect(
        `${BASE}/experiments/${enc(id)}?${query}&notice=${enc(`Not duplicated: ${copy.error.message}`)}`,
        303,
      );
    const notice = `Copy of ${x.key}, not started: edit it, then start it.`;
    return c.redirect(
      `${BASE}/experiments/${enc(copy.value.row.id)}?${query}&notice=${enc(notice)}`,
      303,
    );
  });

  app.get("/experiments/:id/history", async (c) => {
    const id = c.req.param("id");
    const actor = actorOf(c);
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok) return errorPage(c, "History", experiment.error);
    const x = experiment.value.json;
    const cursor = c.req.query("cursor") ?? null;
    const entries = await attempt(() =>
      listProjectAuditEntries(
        c.env,
        actor,
        x.projectId,
        { limit: HISTORY_PAGE_SIZE, cursor },
        { resourceType: "experiment", resourceId: id },
      ),
    );
    const title = `History: ${x.name || x.key}`;
    const back = `${BASE}/experiments/${enc(id)}`;
    if (!entries.ok) return errorPage(c, title, entries.error);
    const { items, after } = entries.value;
    return sendPage(
      c,
      title,
      html`<p><a href="${back}">← ${x.name || x.key}</a></p>
        <h1>${title}</h1>
        <p class="muted">Every change to this experiment, newest first (the audit log).</p>
        ${
          items.length === 0
            ? html`<p>No entries${cursor === null ? "" : " before these"}.</p>`
            : html`<table data-list="history">
                <thead>
                  <tr>
                    <th scope="col">When (UTC)</th>
                    <th scope="col">Who</th>
                    <th scope="col">Action</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  ${items.map(
                    (entry) =>
                      html`<tr data-action="${entry.action}">
                        <td>${entry.at.replace("T", " ").replace(/\.\d+Z$|Z$/, "")}</td>
                        <td>${entry.actor.name ?? entry.actor.id}</td>
                        <td>${entry.action}</td>
                        <td>${detailsText(entry.details)}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
        }
        ${after === null ? "" : html`<p><a href="?cursor=${enc(after)}">Older entries</a></p>`}`,
    );
  });

  const previewContext = async (c: AdminContext, id: string) => {
    const actor = actorOf(c);
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok) return experiment;
    const project = await attempt(() => getProject(c.env, actor, experiment.value.json.projectId));
    if (!project.ok) return project;
    return {
      ok: true as const,
      value: { x: experiment.value.json, environments: project.value.environments },
    };
  };

  app.get("/experiments/:id/preview", async (c) => {
    const loaded = await previewContext(c, c.req.param("id"));
    if (!loaded.ok) return errorPage(c, "Preview links", loaded.error);
    const { x, environments } = loaded.value;
    const environment = c.req.query("environment") ?? DEFAULT_ENVIRONMENT;
    return sendPage(
      c,
      `Preview links: ${x.name || x.key}`,
      previewPage(x, environments, environment, actorOf(c), {}),
    );
  });

  app.post("/experiments/:id/preview", async (c) => {
    const allowed = await requireEditor(c);
    if (!allowed.ok) return errorPage(c, "Preview links", allowed.error);
    const form = await readForm(c);
    const loaded = await previewContext(c, c.req.param("id"));
    if (!loaded.ok) return errorPage(c, "Preview links", loaded.error);
    const { x, environments } = loaded.value;
    const environment = one(form, "environment") || DEFAULT_ENVIRONMENT;
    const title = `Preview links: ${x.name || x.key}`;
    const signed = await attempt(async () => {
      const variation = x.variations.find((v) => v.id === one(form, "variationId"));
      const target = environments.find((e) => e.key === environment);
      const lifetime = PREVIEW_LIFETIMES.find((l) => l.value === one(form, "expiresIn"));
      if (!variation)
        throw unprocessable("not a variation of this experiment", [
          { path: "$.body.variationId", message: "not a variation of this experiment" },
        ]);
      if (!target)
        throw unprocessable(`unknown environment ${JSON.stringify(environment)}`, [
          { path: "$.body.environment", message: "not an environment key of this project" },
        ]);
      if (!lifetime)
        throw unprocessable("choose how long the link is valid", [
          { path: "$.body.expiresIn", message: "one of 1 hour, 24 hours, 7 days" },
        ]);
      const signingKey = c.env.SIGNING_KEY;
      if (!signingKey)
        throw unprocessable(
          "SIGNING_KEY is not set: preview links cannot be signed (docs/config.md)",
        );
      const expiresAt = Date.now() + Number(lifetime.value) * 1000;
      const token = await signPreview(signingKey, {
        sdkKey: target.sdk_key,
        variations: { [x.id]: variation.id },
        expiresAt,
      });
      let base = siteRoot(c, target.sdk_key);
      const firstPageId = x.pageIds[0];
      if (firstPageId !== undefined) {
        const firstPage = await attempt(() =>
          getResource(c.env, actorOf(c), pageResource, firstPageId),
        );
        if (firstPage.ok) base = urlOfConditions(firstPage.value.json.conditions) ?? base;
      }
      return {
        variationKey: variation.key,
        environment: target.key,
        link: previewLink(base, token),
        expiresAt: new Date(expiresAt).toISOString().replace("T", " ").slice(0, 16) + " UTC",
      };
    });
    return sendPage(
      c,
      title,
      previewPage(
        x,
        environments,
        environment,
        actorOf(c),
        signed.ok ? { result: signed.value } : { error: signed.error },
      ),
      signed.ok ? 200 : signed.error.status,
    );
  });
}
