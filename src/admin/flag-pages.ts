/**
 * Feature flags in the admin (docs/admin.md "Feature flags"; the API's `/flags`, docs/api.md
 * "Flags"): the project's flags with their state per environment, a create form, and a flag's
 * page — per environment a one-click toggle, the ordered delivery rules and what Everyone Else
 * gets; the variables with their typed defaults; the variations with their values; the A/B rules
 * (experiments with `flagId`) and a form that creates one; key, name and description; archive and
 * delete. Under `/_ss/admin/projects/{id}/flags`.
 *
 * Every form is one `PATCH /flags/{id}` (or one experiment create) through the API's resource
 * service as the session's actor (src/admin/content-kind.ts `resourceCalls`), parsed with the
 * API's own schemas, carrying the version it was rendered from as If-Match; every write publishes
 * the datafiles, as the API's does. A refused form comes back at the API's status with its message
 * above it, each problem beside its field and the values sent; a write answers 303 to the flag's
 * page. Each form sends only its own part of the flag (a toggle sends `enabled` of one
 * environment; a rule list replaces that environment's rules), so forms on one page never
 * overwrite each other's fields. Viewers get the same page without forms; the services refuse
 * their writes (403). The forms' model is src/admin/flag-draft.ts.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { ApiError, notFound, versionConflict } from "../api/errors";
import { ExperimentCreateSchema } from "../api/schemas/experiments";
import {
  FLAG_VARIABLE_TYPES,
  FlagCreateSchema,
  FlagUpdateSchema,
  OFF_VARIATION_KEY,
  type FlagJson,
} from "../api/schemas/flags";
import { parseBody } from "../api/schemas/validation-error";
import { audienceResource } from "../api/services/audiences";
import { hasRole, requireActorRole } from "../api/services/auth";
import { eventResource } from "../api/services/events";
import { experimentResource } from "../api/services/experiments";
import { flagResource } from "../api/services/flags";
import { getProject } from "../api/services/projects";
import { createResource, getResource, listResources } from "../api/services/resources";
import { Problems } from "../api/services/validation";
import type { Env } from "../env";
import { containerError, errorUnder } from "./change-fields";
import { listAll, mapDetails, resourceCalls, type ResourceCalls } from "./content-kind";
import { contentNav } from "./content-pages";
import {
  abFieldOf,
  abRuleBody,
  applyRowControl,
  blankRule,
  blankVariable,
  blankVariation,
  detailsBody,
  emptyTextName,
  KEEP_TREE,
  pathName,
  percentText,
  readAbRule,
  readDetails,
  readRules,
  readVariables,
  readVariations,
  rowControlOf,
  rulesBody,
  stateOfFlag,
  valueText,
  VARIATION_VARIABLES,
  variablesBody,
  variationsBody,
  type FlagState,
  type RowControl,
  type VariableRef,
} from "./flag-draft";
import {
  checkbox,
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
  type PostedForm,
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
} from "./ui";

const enc = encodeURIComponent;

/** The flag resource's calls with the API's request schemas (role checked before the body). */
const flagCalls = resourceCalls(flagResource, {
  create: FlagCreateSchema,
  update: FlagUpdateSchema,
});

/** Who asks, for which project. */
interface FlagContext {
  env: Env;
  actor: Actor;
  projectId: string;
  /** Editor or admin: forms and buttons are shown (the services check the role again). */
  editable: boolean;
}

function contextOf(c: AdminContext): FlagContext {
  const actor = c.get("actor");
  return {
    env: c.env,
    actor,
    projectId: c.req.param("projectId") ?? "",
    editable: hasRole(actor.role, "editor"),
  };
}

const listHref = (ctx: FlagContext) => `${ADMIN_BASE_PATH}/projects/${enc(ctx.projectId)}/flags`;
const itemHref = (ctx: FlagContext, id: string) => `${listHref(ctx)}/${enc(id)}`;

// ---------------------------------------------------------------------------------------------
// What a flag's page needs besides the flag

interface FlagRefs {
  projectName: string;
  environments: Array<{ key: string; name: string }>;
  audiences: Array<{ id: string; name: string; archived: boolean }>;
  events: Array<{ id: string; key: string; name: string; type: string; archived: boolean }>;
  /** The flag's A/B rules (experiments with its `flagId`), in the order the SDK evaluates them. */
  experiments: ExperimentJson[];
  /** Keys a new A/B rule cannot take: the project's experiments' and the flag's delivery rules'. */
  takenKeys: Set<string>;
}

/** The flag (404 unless it belongs to the project of the path) and what its forms offer. */
async function loadFlag(ctx: FlagContext, id: string): Promise<{ json: FlagJson; refs: FlagRefs }> {
  const json = await flagCalls.get(ctx.env, ctx.actor, id);
  if (json.projectId !== ctx.projectId) throw notFound("flag", id);
  // Every item of one of the project's resources (the forms' selects; at most 1,000 each).
  const all = <Json, Item>(list: ResourceCalls<Json, Item>["list"]) =>
    listAll({ list }, ctx.env, ctx.actor, ctx.projectId);
  const [project, audiences, events, experiments] = await Promise.all([
    getProject(ctx.env, ctx.actor, ctx.projectId),
    all((env, actor, projectId, page) =>
      listResources(env, actor, audienceResource, projectId, page),
    ),
    all((env, actor, projectId, page) => listResources(env, actor, eventResource, projectId, page)),
    all((env, actor, projectId, page) =>
      listResources(env, actor, experimentResource, projectId, page),
    ),
  ]);
  // The flag names its A/B rules: one past the experiments listed is read by itself.
  const listed = new Map(experiments.filter((x) => x.flagId === json.id).map((x) => [x.id, x]));
  const rules = await Promise.all(
    json.experimentIds.map(
      async (experimentId) =>
        listed.get(experimentId) ??
        (await getResource(ctx.env, ctx.actor, experimentResource, experimentId)).json,
    ),
  );
  return {
    json,
    refs: {
      projectName: project.project.name,
      environments: project.environments.map((e) => ({ key: e.key, name: e.name })),
      audiences: audiences.map((a) => ({ id: a.id, name: a.name, archived: a.archived })),
      events: events.map((e) => ({
        id: e.id,
        key: e.key,
        name: e.name,
        type: e.type,
        archived: e.archived,
      })),
      experiments: rules,
      takenKeys: new Set([
        ...experiments.map((x) => x.key),
        ...rules.map((x) => x.key),
        ...Object.values(json.environments).flatMap((e) => e.rules.map((r) => r.key)),
      ]),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Pieces

function onBadge(enabled: boolean): Html {
  return enabled
    ? html`<span class="badge flag-on" data-enabled="true">On</span>`
    : html`<span class="badge flag-off" data-enabled="false">Off</span>`;
}

const audienceName = (refs: FlagRefs, id: string) =>
  refs.audiences.find((a) => a.id === id)?.name ?? id;

/** Audience conditions in words: "Everyone", "Germany", "Germany or (France and not Beta)". */
export function conditionsText(tree: unknown, nameOf: (id: string) => string): string {
  if (tree === null || tree === undefined) return "Everyone";
  const text = (node: unknown, nested: boolean): string => {
    if (typeof node === "string") return nameOf(node);
    if (!Array.isArray(node)) return JSON.stringify(node) ?? "";
    const [operator, ...operands] = node as unknown[];
    if (operator === "not") return `not ${text(operands[0], true)}`;
    const joined = operands.map((o) => text(o, true)).join(` ${String(operator)} `);
    return nested && operands.length > 1 ? `(${joined})` : joined;
  };
  return text(tree, false);
}

/** The variation keys a rule or Everyone Else may deliver, "off" first. */
const variationOptions = (json: FlagJson) =>
  json.variations.map((v) => ({
    value: v.key,
    label:
      v.key === OFF_VARIATION_KEY
        ? "off (disabled)"
        : v.name && v.name !== v.key
          ? `${v.key} (${v.name})`
          : v.key,
  }));

const ruleCountText = (n: number) => `${n} ${n === 1 ? "rule" : "rules"}`;

/** An environment of the project. */
type EnvironmentRef = { key: string; name: string };

/** An environment as the page names it: its name with its key ("Production (production)"). */
const environmentText = (e: EnvironmentRef): string =>
  e.name === "" || e.name === e.key ? e.key : `${e.name} (${e.key})`;

/**
 * What a redirect after a write says on the page it lands on (`?done=`). `?environment=` is only
 * read as one of the project's environments (named by the page, never echoed): another text makes
 * no message.
 */
function doneNotice(c: AdminContext, environments: readonly EnvironmentRef[]): Html {
  const done = c.req.query("done") ?? "";
  const key = c.req.query("environment");
  const environment = environments.find((e) => e.key === key);
  const text: Record<string, string | undefined> = {
    created: "Created.",
    saved: "Saved and published.",
    on: environment && `Turned on in ${environmentText(environment)}.`,
    off: environment && `Turned off in ${environmentText(environment)}.`,
    archived: "Archived: the flag is left out of every datafile.",
    unarchived: "Restored from the archive.",
    deleted: "Deleted.",
  };
  const message = Object.hasOwn(text, done) ? text[done] : undefined;
  return message ? html`<p role="status" data-done="${done}">${message}</p>` : html``;
}

function crumbs(ctx: FlagContext, projectName: string | null, withList: boolean): Html {
  return html`<p>
    <a href="${ADMIN_BASE_PATH}/projects/${enc(ctx.projectId)}">← ${projectName ?? "Project"}</a>
    ${withList ? html` · <a href="${listHref(ctx)}">Flags</a>` : ""}
  </p>`;
}

function errorPage(c: AdminContext, ctx: FlagContext, error: ApiError) {
  return sendPage(
    c,
    "Flags",
    html`${crumbs(ctx, null, true)}
      <h1>Flags</h1>
      ${errorBlock(error)}`,
    error.status,
  );
}

// ---------------------------------------------------------------------------------------------
// The flag's page

type Section = "details" | "variables" | "variations" | "ab" | `rules:${string}`;

interface FlagView {
  ctx: FlagContext;
  json: FlagJson;
  refs: FlagRefs;
  state: FlagState;
  /** The form that was posted: its problems are shown above it, its version is the one posted. */
  posted: Section | null;
  error: ApiError | null;
  /** A refused toggle, archive or delete: shown at the top of the page. */
  alert: ApiError | null;
  postedVersion: number | null;
}

/** The errors of the posted form (by field name), shown beside fields in every section. */
const errorsOf = (view: FlagView) => fieldErrors(view.error);

/** The problems above a form, when it is the one posted. */
const formTop = (view: FlagView, section: Section): Html =>
  view.posted === section ? formErrors(view.error) : html``;

/** The version a form carries: the one it was posted with, so a stale form stays stale. */
const versionOf = (view: FlagView, section: Section): number =>
  view.posted === section && view.postedVersion !== null ? view.postedVersion : view.json.version;

/** A version conflict's way out, under the form that met it. */
function conflictHint(view: FlagView, section: Section): Html {
  return view.posted === section && view.error?.code === "version_conflict"
    ? html`<p class="warning" role="status">
        Nothing was saved.
        <a href="${itemHref(view.ctx, view.json.id)}">Open the current version</a>
        (what you changed here is not carried over).
      </p>`
    : html``;
}

/**
 * A value's input for a variable type: true/false, a JSON object's text, else a line of text.
 * With `fallback` (a variation's value), empty means the variable's default: the boolean select
 * offers "the default" first, the other inputs show the default as placeholder and in the hint.
 */
function valueInput(options: {
  name: string;
  label: string;
  type: string;
  text: string;
  error: string | undefined;
  /** A variation's value: the variable's default as its input shows it ("" when unknown). */
  fallback?: { text: string; compact: string };
}): Html {
  const { name, label, type, text, error, fallback } = options;
  if (type === "boolean")
    return select({
      name,
      label,
      value: text,
      error,
      options: [
        ...(fallback
          ? [{ value: "", label: fallback.text ? `the default (${fallback.text})` : "the default" }]
          : []),
        { value: "true", label: "true" },
        { value: "false", label: "false" },
      ],
    });
  const typeHint =
    type === "json"
      ? 'A JSON object, e.g. {"theme": "dark"}.'
      : type === "integer"
        ? "A whole number from −(2^53 − 1) to 2^53 − 1."
        : type === "double"
          ? "A number, e.g. 0.25."
          : undefined;
  const hint = fallback
    ? `Empty: the default${fallback.compact ? `, ${fallback.compact}` : ""}.${typeHint ? ` ${typeHint}` : ""}`
    : typeHint;
  const placeholder = fallback?.compact || undefined;
  if (type === "json")
    return textarea({ name, label, value: text, error, rows: 4, hint, placeholder });
  return field({
    name,
    label,
    value: text,
    error,
    multiline: type === "string" && /[\r\n]/.test(text),
    hint,
    placeholder,
  });
}

function environmentSection(
  view: FlagView,
  environment: { key: string; name: string },
  index: number,
): Html {
  const { ctx, json, refs } = view;
  const settings = json.environments[environment.key] ?? {
    enabled: false,
    rules: [],
    defaultVariationKey: OFF_VARIATION_KEY,
  };
  const section: Section = `rules:${environment.key}`;
  const headingId = `env-${index}-heading`;
  const named = environmentText(environment);
  const heading = html`<h2 id="${headingId}">
    Environment ${named} ${onBadge(settings.enabled)}
  </h2>`;
  const hrefBase = `${itemHref(ctx, json.id)}/environments/${enc(environment.key)}`;
  const explain = html`<p class="hint">
    ${
      settings.enabled
        ? "On: the A/B rules first, then the first delivery rule whose audience matches decides; a visitor in that audience but outside its traffic, and everyone no rule matched, gets the Everyone Else variation."
        : "Off: every visitor gets the off variation (every variable at its default); no rule applies."
    }
  </p>`;
  if (!ctx.editable)
    return html`<section aria-labelledby="${headingId}" data-environment="${environment.key}">
      ${heading} ${explain} ${rulesTable(settings, refs)}
      <p>Everyone else: <strong>${settings.defaultVariationKey}</strong></p>
    </section>`;

  const errors = errorsOf(view);
  const state = view.state.environments[environment.key] ?? {
    rules: [],
    defaultVariationKey: settings.defaultVariationKey,
  };
  const rulesName = pathName("environments", environment.key, "rules");
  const audienceOptions = refs.audiences.map((a) => ({
    value: a.id,
    label: `${a.name}${a.archived ? " · archived" : ""}`,
  }));
  const save = html`<button type="submit" name="_save" value="1">
    Save the rules of ${named}
  </button>`;
  return html`<section aria-labelledby="${headingId}" data-environment="${environment.key}">
    ${heading}
    <form method="post" action="${hrefBase}/toggle" class="row" data-toggle="${environment.key}">
      ${versionField(json.version)}
      <input type="hidden" name="enabled" value="${settings.enabled ? "false" : "true"}" />
      <button type="submit" data-action="${settings.enabled ? "turn-off" : "turn-on"}">
        ${settings.enabled ? "Turn off" : "Turn on"} in ${named}
      </button>
    </form>
    ${explain}
    <form
      method="post"
      action="${hrefBase}/rules"
      data-form="rules"
      data-rules="${environment.key}"
    >
      ${formTop(view, section)} ${conflictHint(view, section)}
      ${versionField(versionOf(view, section))}
      ${state.rules.length > 0 ? html`<p class="row">${save}</p>` : ""}
      <fieldset id="${fieldId(rulesName)}">
        <legend>Delivery rules in ${named}, in order</legend>
        ${containerError(errors, rulesName)}
        ${
          state.rules.length === 0
            ? html`<p class="muted">
                No delivery rules: everyone gets the Everyone Else variation.
              </p>`
            : html`<ol>
                ${state.rules.map((rule, i) => {
                  const at = (name: string) =>
                    pathName("environments", environment.key, "rules", i, name);
                  const kept = rule.audience.startsWith(KEEP_TREE)
                    ? [
                        {
                          value: rule.audience,
                          label: `as stored: ${storedConditionsText(rule.audience, refs)}`,
                        },
                      ]
                    : [];
                  return html`<li data-rule="${i}">
                    <fieldset
                      id="${fieldId(pathName("environments", environment.key, "rules", i))}"
                    >
                      <legend>Rule ${i + 1}</legend>
                      ${containerError(errors, pathName("environments", environment.key, "rules", i))}
                      ${rule.id === "" ? "" : html`<input type="hidden" name="${at("id")}" value="${rule.id}" />`}
                      <div class="fields">
                        ${field({ name: at("key"), label: "Key", value: rule.key, error: errors.get(at("key")), required: true })}
                        ${select({
                          name: at("audienceConditions"),
                          label: "Audience",
                          value: rule.audience,
                          error: errorUnder(errors, at("audienceConditions")),
                          options: [{ value: "", label: "Everyone" }, ...kept, ...audienceOptions],
                        })}
                        ${field({
                          name: at("traffic"),
                          label: "Traffic (% of the audience)",
                          type: "number",
                          min: 0,
                          max: 100,
                          step: "0.01",
                          value: rule.traffic,
                          error: errors.get(at("traffic")),
                          hint: "0–100, at most 2 decimals.",
                        })}
                        ${select({
                          name: at("variationKey"),
                          label: "Variation",
                          value: rule.variationKey,
                          error: errors.get(at("variationKey")),
                          options: variationOptions(json),
                        })}
                      </div>
                      <p class="row">
                        ${i > 0 ? html`<button type="submit" name="_move" value="up:${i}">Move rule ${i + 1} up</button>` : ""}
                        ${i < state.rules.length - 1 ? html`<button type="submit" name="_move" value="down:${i}">Move rule ${i + 1} down</button>` : ""}
                        <button type="submit" name="_remove" value="${i}">
                          Remove rule ${i + 1}
                        </button>
                      </p>
                    </fieldset>
                  </li>`;
                })}
              </ol>`
        }
        <p><button type="submit" name="_add" value="rule">Add rule</button></p>
      </fieldset>
      ${select({
        name: pathName("environments", environment.key, "defaultVariationKey"),
        label: "Everyone else gets",
        value: state.defaultVariationKey,
        error: errors.get(pathName("environments", environment.key, "defaultVariationKey")),
        options: variationOptions(json),
      })}
      <p class="row">${save}</p>
    </form>
  </section>`;
}

function storedConditionsText(value: string, refs: FlagRefs): string {
  try {
    return conditionsText(JSON.parse(value.slice(KEEP_TREE.length)), (id) =>
      audienceName(refs, id),
    );
  } catch {
    return value.slice(KEEP_TREE.length);
  }
}

function rulesTable(settings: FlagJson["environments"][string], refs: FlagRefs): Html {
  if (settings.rules.length === 0) return html`<p class="muted">No delivery rules.</p>`;
  return html`<table data-rules>
    <thead>
      <tr>
        <th scope="col">#</th>
        <th scope="col">Rule</th>
        <th scope="col">Audience</th>
        <th scope="col" class="num">Traffic</th>
        <th scope="col">Variation</th>
      </tr>
    </thead>
    <tbody>
      ${settings.rules.map(
        (rule, i) =>
          html`<tr data-rule="${rule.key}">
            <td>${i + 1}</td>
            <th scope="row">${rule.key}</th>
            <td>${conditionsText(rule.audienceConditions, (id) => audienceName(refs, id))}</td>
            <td class="num">${percentText(rule.traffic)} %</td>
            <td>${rule.variationKey}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

const TYPE_OPTIONS = FLAG_VARIABLE_TYPES.map((t) => ({
  value: t,
  label:
    t === "integer"
      ? "integer (whole number)"
      : t === "double"
        ? "double (number)"
        : t === "json"
          ? "json (an object)"
          : t,
}));

function variablesSection(view: FlagView): Html {
  const { ctx, json } = view;
  const heading = html`<h2 id="variables-heading">Variables</h2>`;
  const about = html`<p class="muted">
    What a variation configures: each variable has a type and a default, which the off variation
    (and any variation that does not set it) delivers.
  </p>`;
  if (!ctx.editable)
    return html`<section aria-labelledby="variables-heading">
      ${heading} ${about}
      ${
        json.variables.length === 0
          ? html`<p class="muted">No variables.</p>`
          : html`<table data-variables>
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Type</th>
                  <th scope="col">Default</th>
                </tr>
              </thead>
              <tbody>
                ${json.variables.map(
                  (v) =>
                    html`<tr>
                      <th scope="row">${v.key}</th>
                      <td>${v.type}</td>
                      <td><code>${valueText(v.type, v.defaultValue)}</code></td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>`;
  const errors = errorsOf(view);
  const rows = view.state.variables;
  const save = html`<button type="submit" name="_save" value="1">Save variables</button>`;
  return html`<section aria-labelledby="variables-heading">
    ${heading} ${about}
    <form method="post" action="${itemHref(ctx, json.id)}/variables" data-form="variables">
      ${formTop(view, "variables")} ${conflictHint(view, "variables")}
      ${versionField(versionOf(view, "variables"))}
      ${rows.length > 0 ? html`<p class="row">${save}</p>` : ""}
      <div id="${fieldId("variables")}">
        ${containerError(errors, "variables")}
        ${rows.length === 0 ? html`<p class="muted">No variables yet.</p>` : ""}
        ${rows.map((row, i) => {
          const at = (name: string) => pathName("variables", i, name);
          return html`<fieldset id="${fieldId(pathName("variables", i))}" data-variable="${i}">
            <legend>Variable ${i + 1}</legend>
            ${containerError(errors, pathName("variables", i))}
            ${row.id === "" ? "" : html`<input type="hidden" name="${at("id")}" value="${row.id}" />`}
            <div class="fields">
              ${field({ name: at("key"), label: "Key", value: row.key, error: errors.get(at("key")), required: true })}
              ${select({ name: at("type"), label: "Type", value: row.type, error: errors.get(at("type")), options: TYPE_OPTIONS })}
            </div>
            ${valueInput({ name: at("defaultValue"), label: "Default value", type: row.type, text: row.value, error: errorUnder(errors, at("defaultValue")) })}
            <p class="row">
              <button type="submit" name="_remove" value="${i}">Remove variable ${i + 1}</button>
            </p>
          </fieldset>`;
        })}
      </div>
      <p class="row">
        <button type="submit" name="_add" value="variable">Add variable</button>
        <button type="submit" name="_refresh" value="types">
          Show the value fields of the types
        </button>
      </p>
      <p class="row">${save}</p>
    </form>
  </section>`;
}

/** A variable's default as a variation's empty value shows it (hint and placeholder). */
function defaultOf(json: FlagJson, variable: VariableRef): { text: string; compact: string } {
  const current = json.variables.find((v) => v.key === variable.key && v.type === variable.type);
  if (!current) return { text: "", compact: "" };
  const value: unknown = current.defaultValue;
  return {
    text: valueText(current.type, value),
    // One line: a string quoted (its spaces and line breaks visible), JSON without indentation.
    compact:
      current.type === "string" || current.type === "json"
        ? (JSON.stringify(value) ?? "")
        : valueText(current.type, value),
  };
}

function variationsSection(view: FlagView): Html {
  const { ctx, json } = view;
  const heading = html`<h2 id="variations-heading">Variations</h2>`;
  const about = html`<p class="muted">
    What a rule delivers. <strong>off</strong> is built in and always first: the flag is disabled
    and every variable has its default. Removing a variation a rule delivers is refused.
  </p>`;
  if (!ctx.editable)
    return html`<section aria-labelledby="variations-heading">
      ${heading} ${about}
      <table data-variations>
        <thead>
          <tr>
            <th scope="col">Variation</th>
            <th scope="col">Enabled</th>
            ${json.variables.map((v) => html`<th scope="col">${v.key}</th>`)}
          </tr>
        </thead>
        <tbody>
          ${json.variations.map(
            (v) =>
              html`<tr data-variation="${v.key}">
                <th scope="row">
                  ${v.key}${v.name && v.name !== v.key ? html`<br /><span class="muted">${v.name}</span>` : ""}
                </th>
                <td>${v.featureEnabled ? "yes" : "no"}</td>
                ${json.variables.map((variable) =>
                  Object.hasOwn(v.variables, variable.key)
                    ? html`<td>
                        <code>${valueText(variable.type, v.variables[variable.key])}</code>
                      </td>`
                    : html`<td class="muted">default</td>`,
                )}
              </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
  const errors = errorsOf(view);
  const rows = view.state.variations;
  const save = html`<button type="submit" name="_save" value="1">Save variations</button>`;
  return html`<section aria-labelledby="variations-heading">
    ${heading} ${about}
    <form method="post" action="${itemHref(ctx, json.id)}/variations" data-form="variations">
      ${formTop(view, "variations")} ${conflictHint(view, "variations")}
      ${versionField(versionOf(view, "variations"))}
      <input
        type="hidden"
        name="${VARIATION_VARIABLES}"
        value="${JSON.stringify(view.state.variationVariables)}"
      />
      ${
        view.state.variationVariables.length > 0
          ? html`<p class="hint">
              A value typed here is the variation's own. Left empty (true/false: "the default"), the
              variation follows the variable's default, shown greyed in the empty field.
            </p>`
          : ""
      }
      ${rows.length > 0 ? html`<p class="row">${save}</p>` : ""}
      <div id="${fieldId("variations")}">
        ${containerError(errors, "variations")}
        ${rows.map((row, i) => {
          const at = (...path: Array<string | number>) => pathName("variations", i, ...path);
          const variables = view.state.variationVariables;
          const off = row.key === OFF_VARIATION_KEY && i === 0;
          return html`<fieldset id="${fieldId(at())}" data-variation="${row.key}">
            <legend>Variation ${i + 1}${off ? " (off, built in)" : ""}</legend>
            ${containerError(errors, at())}
            ${row.id === "" ? "" : html`<input type="hidden" name="${at("id")}" value="${row.id}" />`}
            ${
              off
                ? html`<input type="hidden" name="${at("key")}" value="${OFF_VARIATION_KEY}" />
                    <p class="muted">
                      Key <strong>off</strong>: disabled, every variable at its default.
                    </p>`
                : field({
                    name: at("key"),
                    label: "Key",
                    value: row.key,
                    error: errors.get(at("key")),
                    required: true,
                  })
            }
            ${field({ name: at("name"), label: "Name", value: row.name, error: errors.get(at("name")), hint: off ? undefined : "Shown in lists; empty: the key is shown." })}
            ${
              off
                ? containerError(errors, at("variables"))
                : variables.map((variable) => {
                    const value = row.values[variable.key] ?? { text: "", emptyText: false };
                    const name = at("variables", variable.key);
                    return html`<div class="fields" data-value="${variable.key}">
                      ${valueInput({ name, label: `${variable.key} (${variable.type})`, type: variable.type, text: value.text, error: errorUnder(errors, name), fallback: defaultOf(json, variable) })}
                      ${variable.type === "string" ? checkbox({ name: emptyTextName(i, variable.key), label: `${variable.key}: the empty text (not the default)`, checked: value.emptyText }) : ""}
                    </div>`;
                  })
            }
            ${off ? "" : html`<p class="row"><button type="submit" name="_remove" value="${i}">Remove variation ${i + 1}</button></p>`}
          </fieldset>`;
        })}
      </div>
      <p class="row"><button type="submit" name="_add" value="variation">Add variation</button></p>
      <p class="row">${save}</p>
    </form>
  </section>`;
}

function abSection(view: FlagView): Html {
  const { ctx, json, refs } = view;
  const heading = html`<h2 id="ab-heading">A/B rules</h2>`;
  const about = html`<p class="muted">
    Experiments on this flag: a running A/B rule decides before the delivery rules, for the share of
    visitors in its traffic, and its results are an experiment's. Start, pause and read them on the
    experiment's page.
  </p>`;
  const list =
    refs.experiments.length === 0
      ? html`<p class="muted">No A/B rules.</p>`
      : html`<table data-ab-rules>
          <thead>
            <tr>
              <th scope="col">Experiment</th>
              <th scope="col">Variations</th>
              ${refs.environments.map((e) => html`<th scope="col">${environmentText(e)}</th>`)}
            </tr>
          </thead>
          <tbody>
            ${refs.experiments.map(
              (x) =>
                html`<tr data-ab-rule="${x.key}">
                  <th scope="row">
                    <a href="${ADMIN_BASE_PATH}/experiments/${enc(x.id)}">${x.name || x.key}</a>
                    ${x.name && x.name !== x.key ? html`<br /><span class="muted">${x.key}</span>` : ""}
                  </th>
                  <td>
                    ${x.variations.map((v) => `${v.key} ${percentText(v.weight)} %`).join(", ")}
                  </td>
                  ${refs.environments.map((e) => {
                    const status = x.status[e.key] ?? "Not started";
                    return html`<td>
                      <a
                        href="${ADMIN_BASE_PATH}/experiments/${enc(x.id)}?environment=${enc(e.key)}"
                        class="badge ${status}"
                        data-status="${status}"
                        aria-label="${x.key} in ${environmentText(e)}: ${status}"
                        >${status}</a
                      >
                    </td>`;
                  })}
                </tr>`,
            )}
          </tbody>
        </table>`;
  if (!ctx.editable || json.archived)
    return html`<section aria-labelledby="ab-heading">${heading} ${about} ${list}</section>`;
  const errors = errorsOf(view);
  const state = view.state.ab;
  const events = refs.events.filter((e) => !e.archived);
  return html`<section aria-labelledby="ab-heading">
    ${heading} ${about} ${list}
    <form method="post" action="${itemHref(ctx, json.id)}/ab-rules" data-form="ab-rule">
      ${formTop(view, "ab")}
      <fieldset>
        <legend>New A/B rule</legend>
        <p class="hint">
          An experiment of this flag: half of its visitors get off, half the variation below; it
          counts the event as its primary metric. It starts as Not started.
        </p>
        ${field({ name: "ab.key", label: "Experiment key", value: state.key, error: errors.get("ab.key"), required: true })}
        ${field({ name: "ab.name", label: "Name", value: state.name, error: errors.get("ab.name") })}
        ${select({
          name: "ab.variationKey",
          label: "Against off",
          value: state.variationKey,
          error: errors.get("ab.variationKey"),
          options: variationOptions(json).filter((o) => o.value !== OFF_VARIATION_KEY),
        })}
        ${select({
          name: "ab.eventId",
          label: "Metric (visitors who convert)",
          value: state.eventId,
          error: errors.get("ab.eventId"),
          options: [
            { value: "", label: "Choose an event" },
            ...events.map((e) => ({
              value: e.id,
              label: `${e.name || e.key} (${e.key}, ${e.type})`,
            })),
          ],
          hint:
            events.length === 0
              ? "The project has no events yet: create one under Events first."
              : undefined,
        })}
        <p><button type="submit" data-action="create-ab-rule">Create A/B rule</button></p>
      </fieldset>
    </form>
  </section>`;
}

function detailsSection(view: FlagView): Html {
  const { ctx, json } = view;
  if (!ctx.editable)
    return html`<section aria-labelledby="details-heading">
      <h2 id="details-heading">Key, name and description</h2>
      <table>
        <tbody>
          <tr>
            <th scope="row">Key</th>
            <td><code>${json.key}</code></td>
          </tr>
          <tr>
            <th scope="row">Name</th>
            <td>${json.name}</td>
          </tr>
          <tr>
            <th scope="row">Description</th>
            <td>${json.description}</td>
          </tr>
        </tbody>
      </table>
    </section>`;
  const errors = errorsOf(view);
  const state = view.state.details;
  return html`<section aria-labelledby="details-heading">
    <h2 id="details-heading">Key, name and description</h2>
    <form method="post" action="${itemHref(ctx, json.id)}/details" data-form="details">
      ${formTop(view, "details")} ${conflictHint(view, "details")}
      ${versionField(versionOf(view, "details"))} ${detailsFields(state, errors)}
      <p><button type="submit">Save</button></p>
    </form>
  </section>`;
}

function detailsFields(state: FlagState["details"], errors: ReadonlyMap<string, string>): Html {
  return html`${field({ name: "key", label: "Key", value: state.key, error: errors.get("key"), required: true, hint: "What the SDKs' decide() names: 1–64 letters, digits, _ . - (unique in the project)." })}
  ${field({ name: "name", label: "Name", value: state.name, error: errors.get("name") })}
  ${textarea({ name: "description", label: "Description", value: state.description, error: errors.get("description"), rows: 3 })}`;
}

function actionsSection(view: FlagView): Html {
  const { ctx, json } = view;
  if (!ctx.editable) return html``;
  const href = itemHref(ctx, json.id);
  return html`<section aria-labelledby="actions-heading">
    <h2 id="actions-heading">Archive or delete</h2>
    <div class="row">
      <form method="post" action="${href}/archive">
        ${versionField(json.version)}
        <input type="hidden" name="archived" value="${json.archived ? "false" : "true"}" />
        <button type="submit" data-action="${json.archived ? "unarchive" : "archive"}">
          ${json.archived ? "Unarchive" : "Archive"}
        </button>
      </form>
      <form method="post" action="${href}/delete" class="row">
        ${versionField(json.version)}
        <input type="checkbox" id="confirm-delete" name="confirm" value="yes" required />
        <label for="confirm-delete">Yes, delete this flag</label>
        <button type="submit" data-action="delete">Delete</button>
      </form>
    </div>
    <p class="hint">
      An archived flag is left out of every datafile (the SDKs then treat it as unknown: off). A
      flag with A/B rules cannot be deleted, nor archived while one runs (the API answers 409).
    </p>
  </section>`;
}

function flagPage(c: AdminContext, view: FlagView, status = 200) {
  const { ctx, json, refs } = view;
  return sendPage(
    c,
    `Flag ${json.key}`,
    html`${crumbs(ctx, refs.projectName, true)}
      <h1>
        Flag ${json.key} ${json.archived ? html`<span class="badge Archived">Archived</span>` : ""}
      </h1>
      ${json.name ? html`<p class="muted">${json.name}</p>` : ""}
      ${doneNotice(c, refs.environments)} ${view.alert ? errorBlock(view.alert) : ""}
      <p class="muted" data-decision-order>
        How a visitor is decided in an environment: while the flag is off there, the off variation;
        while it is on, a running A/B rule first (for the visitors in its traffic), then the first
        delivery rule whose audience matches, then Everyone Else.
      </p>
      ${refs.environments.map((e, i) => environmentSection(view, e, i))} ${abSection(view)}
      ${variationsSection(view)} ${variablesSection(view)} ${detailsSection(view)}
      ${actionsSection(view)}`,
    status,
  );
}

// ---------------------------------------------------------------------------------------------
// The forms of a flag's page: how each reads its post, applies its row buttons and writes

interface SectionSpec {
  /** Reads the posted form into its own part of `state`. */
  read(state: FlagState, form: PostedForm, json: FlagJson): void;
  /** Applies a row button (add, remove, move) to its part of `state`. */
  control(state: FlagState, control: RowControl, json: FlagJson): void;
  /** The `PATCH /flags/{id}` body; what only the form can find wrong goes to `problems`. */
  body(state: FlagState, json: FlagJson, problems: Problems): unknown;
}

const SECTIONS: Record<"details" | "variables" | "variations", SectionSpec> = {
  details: {
    read: (state, form) => {
      state.details = readDetails(form);
    },
    control: () => undefined,
    body: (state) => detailsBody(state.details),
  },
  variables: {
    read: (state, form) => {
      state.variables = readVariables(form);
    },
    control: (state, control) => applyRowControl(state.variables, control, blankVariable),
    body: (state, _json, problems) => variablesBody(state.variables, problems),
  },
  variations: {
    // Read by the variables the form was rendered with (a stale form keeps what was typed).
    read: (state, form, json) => {
      const posted = readVariations(form, json.variables);
      state.variations = posted.rows;
      state.variationVariables = posted.variables;
    },
    control: (state, control) => {
      // "off" stays first: it is neither removed nor moved.
      if (control.kind === "remove" && control.index === 0) return;
      applyRowControl(state.variations, control, () => blankVariation(state.variationVariables));
    },
    body: (state, _json, problems) =>
      variationsBody(state.variations, state.variationVariables, problems),
  },
};

function rulesSection(environment: string): SectionSpec {
  return {
    read: (state, form) => {
      state.environments[environment] = readRules(form, environment);
    },
    control: (state, control, json) => {
      const rules = state.environments[environment]?.rules;
      if (!rules) return;
      const enabled =
        json.variations.find((v) => v.key !== OFF_VARIATION_KEY)?.key ?? OFF_VARIATION_KEY;
      applyRowControl(rules, control, () => blankRule(enabled));
    },
    body: (state, _json, problems) =>
      rulesBody(
        environment,
        state.environments[environment] ?? { rules: [], defaultVariationKey: OFF_VARIATION_KEY },
        problems,
      ),
  };
}

/**
 * A refused A/B rule create as the form's problems: the experiment's paths as this form's fields
 * (`$.body.metrics[0].eventId` → `ab.eventId`, the 409 of a taken key at `$.body.key` → `ab.key`,
 * not the flag's own Key field); with no event chosen, "choose an event" at its select.
 */
function abRuleError(error: ApiError, noEvent: boolean): ApiError {
  const moved = (path: string) => abFieldOf(path) ?? path;
  const details: unknown = error.details;
  if (!Array.isArray(details)) {
    // A conflict names its field by itself (`{path: "$.body.key", existingId}`): the message
    // goes beside the form's field.
    if (details !== null && typeof details === "object" && "path" in details) {
      const { path } = details as { path: unknown };
      if (typeof path === "string")
        return new ApiError(
          error.status,
          error.code,
          error.message,
          [{ ...details, path: moved(path), message: error.message }],
          error.headers,
        );
    }
    return error;
  }
  const mapped = mapDetails(error, (d) => ({ ...d, path: moved(d.path) }));
  if (!noEvent || error.status !== 422) return mapped;
  // The API names the empty id (`unknown event ""`): the form says what to do, in its place.
  const event = { path: "$.body.ab.eventId", message: "choose an event" };
  const listed = mapped.details as unknown[];
  const at = listed.findIndex((d) => (d as { path?: unknown } | null)?.path === event.path);
  const all = [
    ...listed
      .map((d, i) => (i === at ? event : d))
      .filter((d, i) => i === at || (d as { path?: unknown } | null)?.path !== event.path),
    ...(at < 0 ? [event] : []),
  ] as Array<{ path: string; message: string }>;
  const [first = event] = all;
  const more = all.length > 1 ? ` (and ${all.length - 1} more)` : "";
  return new ApiError(
    error.status,
    error.code,
    `invalid request body: ${first.path}: ${first.message}${more}`,
    all,
    error.headers,
  );
}

// ---------------------------------------------------------------------------------------------
// The list and the create form

function listPage(
  c: AdminContext,
  ctx: FlagContext,
  projectName: string,
  environments: readonly EnvironmentRef[],
  page: { items: FlagJson[]; after: string | null },
) {
  return sendPage(
    c,
    "Flags",
    html`<p>
        <a href="${ADMIN_BASE_PATH}/projects/${enc(ctx.projectId)}">← ${projectName}</a>
      </p>
      <h1>Flags</h1>
      ${contentNav(ctx.projectId, "flags")}
      <p class="muted">
        Feature flags: turned on and off per environment, delivered to audiences by rules, tested by
        A/B rules; the official SDKs' <code>decide()</code> reads them from the same datafile (the
        API's <code>/flags</code>, docs/api.md "Flags").
      </p>
      ${doneNotice(c, environments)}
      ${ctx.editable ? html`<p><a href="${listHref(ctx)}/new" data-link="new-flag">New flag</a></p>` : ""}
      ${
        page.items.length === 0
          ? html`<p>No flags yet.</p>`
          : html`<table data-list="flags">
              <thead>
                <tr>
                  <th scope="col">Key</th>
                  <th scope="col">Name</th>
                  ${environments.map((e) => html`<th scope="col">${environmentText(e)}</th>`)}
                  <th scope="col" class="num">A/B rules</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                ${page.items.map(
                  (flag) =>
                    html`<tr data-item="${flag.key}">
                      <th scope="row"><a href="${itemHref(ctx, flag.id)}">${flag.key}</a></th>
                      <td>${flag.name}</td>
                      ${environments.map((e) => {
                        const settings = flag.environments[e.key];
                        return html`<td data-environment="${e.key}">
                          ${onBadge(settings?.enabled ?? false)}
                          <span class="muted">${ruleCountText(settings?.rules.length ?? 0)}</span>
                        </td>`;
                      })}
                      <td class="num">${flag.experimentIds.length}</td>
                      <td>
                        ${flag.archived ? html`<span class="badge Archived">Archived</span>` : "active"}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      ${page.after !== null ? html`<p><a href="?after=${enc(page.after)}">Next page</a></p>` : ""}`,
  );
}

function createPage(
  c: AdminContext,
  ctx: FlagContext,
  state: FlagState["details"],
  error: ApiError | null,
) {
  return sendPage(
    c,
    "New flag",
    html`${crumbs(ctx, null, true)}
      <h1>New flag</h1>
      <p class="muted">
        A new flag has the variations off and on and is off in every environment: add variables,
        rules and A/B rules on its page.
      </p>
      <form method="post" action="${listHref(ctx)}" data-form="flag">
        ${formErrors(error)} ${detailsFields(state, fieldErrors(error))}
        <p><button type="submit">Create flag</button></p>
      </form>`,
    error?.status ?? 200,
  );
}

// ---------------------------------------------------------------------------------------------
// Routes

/** Registers the flag pages on the admin app (src/admin/app.ts `buildAdminApp`). */
export function registerFlagPages(app: Hono<AdminEnv>): void {
  const base = "/projects/:projectId/flags";

  /** A POST's role check, in the API's order (the role before the body), then its form. */
  const readPost = async (
    c: AdminContext,
    ctx: FlagContext,
  ): Promise<
    { ok: true; form: PostedForm } | { ok: false; response: Response | Promise<Response> }
  > => {
    const allowed = await attempt(() => requireActorRole(ctx.actor, "editor"));
    if (!allowed.ok) return { ok: false, response: errorPage(c, ctx, allowed.error) };
    return { ok: true, form: await readForm(c) };
  };

  const viewOf = (ctx: FlagContext, loaded: { json: FlagJson; refs: FlagRefs }): FlagView => ({
    ctx,
    ...loaded,
    state: stateOfFlag(loaded.json, loaded.refs.takenKeys),
    posted: null,
    error: null,
    alert: null,
    postedVersion: null,
  });

  app.get(base, async (c) => {
    const ctx = contextOf(c);
    const cursor = c.req.query("after") ?? null;
    const loaded = await attempt(async () => {
      // The project first: an unknown one is 404 before anything else.
      const project = await getProject(ctx.env, ctx.actor, ctx.projectId);
      const flags = await flagCalls.list(ctx.env, ctx.actor, ctx.projectId, { limit: 100, cursor });
      return { project, flags };
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const { project, flags } = loaded.value;
    return listPage(c, ctx, project.project.name, project.environments, flags);
  });

  app.get(`${base}/new`, async (c) => {
    const ctx = contextOf(c);
    const allowed = await attempt(async () => {
      requireActorRole(ctx.actor, "editor");
      await getProject(ctx.env, ctx.actor, ctx.projectId);
    });
    if (!allowed.ok) return errorPage(c, ctx, allowed.error);
    return createPage(c, ctx, { key: "", name: "", description: "" }, null);
  });

  app.post(base, async (c) => {
    const ctx = contextOf(c);
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const state = readDetails(posted.form);
    const created = await attempt(() =>
      flagCalls.create(ctx.env, ctx.actor, ctx.projectId, detailsBody(state)),
    );
    if (!created.ok) return createPage(c, ctx, state, created.error);
    return c.redirect(`${itemHref(ctx, created.value.id)}?done=created`, 303);
  });

  app.get(`${base}/:id`, async (c) => {
    const ctx = contextOf(c);
    const loaded = await attempt(() => loadFlag(ctx, c.req.param("id")));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    return flagPage(c, viewOf(ctx, loaded.value));
  });

  /** One form of the flag's page: row buttons render it again; a save is one PATCH. */
  const postSection = async (
    c: AdminContext,
    section: Section,
    spec: SectionSpec,
    environment: string | null = null,
  ) => {
    const ctx = contextOf(c);
    const id = c.req.param("id") ?? "";
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(() => loadFlag(ctx, id));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    // A rules form of an environment the project does not have has no section to come back in.
    if (environment !== null && !loaded.value.refs.environments.some((e) => e.key === environment))
      return errorPage(c, ctx, notFound("environment", environment));
    // A form without a version is a conflict (never an unguarded write).
    const version = postedVersion(posted.form) ?? 0;
    const view: FlagView = {
      ...viewOf(ctx, loaded.value),
      posted: section,
      postedVersion: version,
    };
    const { json } = loaded.value;
    spec.read(view.state, posted.form, json);
    const control = rowControlOf(posted.form);
    if (control) {
      spec.control(view.state, control, json);
      return flagPage(c, view);
    }
    // The version first, as the API's If-Match: a stale form is the conflict, whatever it holds
    // (its own checks would read it against a flag it was not rendered from).
    if (version !== json.version) {
      const error = versionConflict(json.version);
      return flagPage(c, { ...view, error }, error.status);
    }
    const written = await attempt(() => {
      const problems = new Problems();
      const body = spec.body(view.state, json, problems);
      problems.throwIfAny();
      return flagCalls.update(ctx.env, ctx.actor, id, body, version);
    });
    if (!written.ok) return flagPage(c, { ...view, error: written.error }, written.error.status);
    return c.redirect(`${itemHref(ctx, id)}?done=saved`, 303);
  };

  app.post(`${base}/:id/details`, (c) => postSection(c, "details", SECTIONS.details));
  app.post(`${base}/:id/variables`, (c) => postSection(c, "variables", SECTIONS.variables));
  app.post(`${base}/:id/variations`, (c) => postSection(c, "variations", SECTIONS.variations));

  app.post(`${base}/:id/environments/:environment/rules`, (c) => {
    const environment = c.req.param("environment");
    return postSection(c, `rules:${environment}`, rulesSection(environment), environment);
  });

  app.post(`${base}/:id/environments/:environment/toggle`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id");
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(() => loadFlag(ctx, id));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const environment = c.req.param("environment");
    if (!loaded.value.refs.environments.some((e) => e.key === environment))
      return errorPage(c, ctx, notFound("environment", environment));
    const enabled = one(posted.form, "enabled") === "true";
    const written = await attempt(() =>
      flagCalls.update(
        ctx.env,
        ctx.actor,
        id,
        { environments: { [environment]: { enabled } } },
        postedVersion(posted.form) ?? 0,
      ),
    );
    if (!written.ok)
      return flagPage(
        c,
        { ...viewOf(ctx, loaded.value), alert: written.error },
        written.error.status,
      );
    return c.redirect(
      `${itemHref(ctx, id)}?done=${enabled ? "on" : "off"}&environment=${enc(environment)}`,
      303,
    );
  });

  app.post(`${base}/:id/ab-rules`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id");
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(() => loadFlag(ctx, id));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const view: FlagView = { ...viewOf(ctx, loaded.value), posted: "ab" };
    view.state.ab = readAbRule(posted.form);
    const created = await attempt(() => {
      const parsed = parseBody(ExperimentCreateSchema, abRuleBody(view.state.ab, id));
      return createResource(ctx.env, ctx.actor, experimentResource, ctx.projectId, parsed);
    });
    if (!created.ok) {
      const error = abRuleError(created.error, view.state.ab.eventId === "");
      return flagPage(c, { ...view, error }, error.status);
    }
    return c.redirect(`${ADMIN_BASE_PATH}/experiments/${enc(created.value.row.id)}`, 303);
  });

  app.post(`${base}/:id/archive`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id");
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const archived = one(posted.form, "archived") !== "false";
    const loaded = await attempt(() => loadFlag(ctx, id));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const written = await attempt(() =>
      flagCalls.update(ctx.env, ctx.actor, id, { archived }, postedVersion(posted.form) ?? 0),
    );
    if (!written.ok)
      return flagPage(
        c,
        { ...viewOf(ctx, loaded.value), alert: written.error },
        written.error.status,
      );
    return c.redirect(`${itemHref(ctx, id)}?done=${archived ? "archived" : "unarchived"}`, 303);
  });

  app.post(`${base}/:id/delete`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id");
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(() => loadFlag(ctx, id));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const refused = (alert: ApiError) =>
      flagPage(c, { ...viewOf(ctx, loaded.value), alert }, alert.status);
    if (one(posted.form, "confirm") !== "yes")
      return refused(new ApiError(400, "bad_request", 'Tick "Yes, delete this flag" first.'));
    const deleted = await attempt(() =>
      flagCalls.remove(ctx.env, ctx.actor, id, postedVersion(posted.form) ?? 0),
    );
    if (!deleted.ok) return refused(deleted.error);
    return c.redirect(`${listHref(ctx)}?done=deleted`, 303);
  });
}
