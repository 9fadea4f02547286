/**
 * Pages in the admin (docs/admin.md "Pages"; the API's `/pages`, docs/api.md "Pages"): key, name,
 * activation (with the `dom_changed` selector) and the URL conditions as rows
 * (src/admin/condition-rows.ts), with the URL tester and the warnings about hosts the Worker
 * never sees (src/admin/url-tester.ts).
 */
import { html } from "hono/html";
import { PageCreateSchema, PageUpdateSchema, type PageJson } from "../api/schemas/pages";
import { pageResource } from "../api/services/pages";
import { getProject } from "../api/services/projects";
import { PAGE_ACTIVATIONS, URL_MATCH_TYPES } from "../core/datafile-parse";
import {
  blankConditions,
  conditionsBody,
  conditionsButtons,
  conditionsFieldset,
  conditionsStateOf,
  conditionsSummary,
  readConditions,
  rowsOf,
  type ConditionsState,
  type LeafCodec,
  type RowValues,
} from "./condition-rows";
import { resourceCalls, type ContentKind } from "./content-kind";
import { field, one, select } from "./forms";
import {
  leafWarnings,
  routingNote,
  testerSection,
  treeWarnings,
  warningList,
  workerViewOf,
  type WorkerView,
} from "./url-tester";

interface PageState {
  key: string;
  name: string;
  activation: string;
  selector: string;
  conditions: ConditionsState;
}

interface PageExtra {
  view: WorkerView;
}

const MATCH_LABELS: Record<(typeof URL_MATCH_TYPES)[number], string> = {
  simple: "simple (host + path)",
  exact: "exact (whole URL)",
  substring: "substring",
  regex: "regex",
};

const ACTIVATION_LABELS: Record<(typeof PAGE_ACTIVATIONS)[number], string> = {
  immediate: "immediate: decided and applied at the edge",
  manual: "manual: applied when the page calls activate",
  url_changed: "url_changed: single-page app, on each URL change",
  dom_changed: "dom_changed: when the selector's element appears",
};

/** URL leaves `{match, value}` as rows. */
export const urlLeafCodec: LeafCodec = {
  fields: ["match", "value"],
  toRow(leaf) {
    if (typeof leaf !== "object" || leaf === null || Array.isArray(leaf)) return null;
    const { match, value, ...rest } = leaf as Record<string, unknown>;
    if (Object.keys(rest).length > 0 || typeof match !== "string" || typeof value !== "string")
      return null;
    return (URL_MATCH_TYPES as readonly string[]).includes(match) ? { match, value } : null;
  },
  toLeaf: (values) => ({ match: values.match ?? "", value: values.value ?? "" }),
  isBlank: (values) => (values.value ?? "").trim() === "",
  blank: () => ({ match: "simple", value: "" }),
};

function describeUrlRow(values: RowValues) {
  return html`${values.match} <code>${values.value}</code>`;
}

function stateOf(json: PageJson): PageState {
  return {
    key: json.key,
    name: json.name,
    activation: json.activation,
    selector: json.selector ?? "",
    conditions: conditionsStateOf(json.conditions, urlLeafCodec),
  };
}

/** The page kind. */
export const pageKind: ContentKind<PageJson, PageJson, PageState, PageExtra> = {
  plural: "pages",
  singular: "page",
  title: "Pages",
  about: html`Where experiments run and pageview or click events happen: URL conditions and how the
    page activates (the API's <code>/pages</code>, docs/api.md "Pages").`,
  calls: resourceCalls(pageResource, { create: PageCreateSchema, update: PageUpdateSchema }),
  archivable: true,
  async load(ctx) {
    const { environments } = await getProject(ctx.env, ctx.actor, ctx.projectId);
    return {
      view: workerViewOf(
        ctx.env,
        ctx.url,
        environments.map((e) => e.sdk_key),
      ),
    };
  },
  labelHeader: "Key",
  label: (item) => item.key,
  columns: [
    { header: "Name", cell: (item) => item.name },
    { header: "Activation", cell: (item) => item.activation },
    {
      header: "Conditions",
      cell(item, extra) {
        const flat = rowsOf(item.conditions, urlLeafCodec);
        const warned = treeWarnings(item.conditions, extra.view).length;
        return html`${
          flat
            ? `${flat.operator === "and" ? "all" : "any"} of ${flat.rows.length}`
            : "nested (JSON)"
        }${
          warned > 0
            ? html` <span class="badge loser" data-warning="host"
                >${warned} never ${warned === 1 ? "matches" : "match"}</span
              >`
            : ""
        }`;
      },
    },
  ],
  blank: () => ({
    key: "",
    name: "",
    activation: "immediate",
    selector: "",
    conditions: blankConditions("or", urlLeafCodec),
  }),
  fromJson: (json) => stateOf(json),
  read: (form) => ({
    key: one(form, "key"),
    name: one(form, "name"),
    activation: one(form, "activation"),
    selector: one(form, "selector"),
    conditions: readConditions(form, urlLeafCodec, "or"),
  }),
  body(state, op) {
    const { tree, remap } = conditionsBody(state.conditions, urlLeafCodec);
    const selector = state.selector.trim();
    // A create leaves an empty selector out; an update sends null, which drops a stored one
    // (docs/api.md "Pages": only dom_changed pages have one).
    const selectorField =
      op === "update"
        ? { selector: selector === "" ? null : selector }
        : selector === ""
          ? {}
          : { selector };
    return {
      body: {
        key: state.key.trim(),
        name: state.name,
        // No activation sent: the API's default (immediate) on a create, the stored one on an update.
        ...(state.activation === "" ? {} : { activation: state.activation }),
        ...selectorField,
        conditions: tree,
      },
      remap,
    };
  },
  fields(state, errors, extra, _ctx, current) {
    return html`${field({ name: "key", label: "Key", value: state.key, error: errors.get("key"), required: true, hint: "1–64 letters, digits, _ . - (unique in the project)." })}
    ${field({ name: "name", label: "Name", value: state.name, error: errors.get("name") })}
    ${select({
      name: "activation",
      label: "Activation",
      value: state.activation,
      error: errors.get("activation"),
      options: PAGE_ACTIVATIONS.map((a) => ({ value: a, label: ACTIVATION_LABELS[a] })),
    })}
    ${field({ name: "selector", label: "Selector (dom_changed only)", value: state.selector, error: errors.get("selector"), hint: "The CSS selector of the element whose appearance activates the page." })}
    ${current === null ? routingNote(extra.view) : ""}
    ${conditionsFieldset(state.conditions, errors, {
      legend: "URL conditions",
      hint: html`simple: host + path, ignoring scheme, www., query, hash and a trailing slash ·
      exact: the whole URL · substring: case-insensitive · regex: case-sensitive, whole URL. URLs
      are compared as the Worker receives them.`,
      inputs: (i, row, rowErrors) =>
        html`${select({
          name: `conditions[${i}].match`,
          label: "Match",
          value: row.values.match ?? "simple",
          error: rowErrors.get(`conditions[${i}].match`),
          options: URL_MATCH_TYPES.map((m) => ({ value: m, label: MATCH_LABELS[m] })),
        })}
        ${field({ name: `conditions[${i}].value`, label: "Value", value: row.values.value ?? "", error: rowErrors.get(`conditions[${i}].value`) })}`,
      note: (row) => warningList(leafWarnings(urlLeafCodec.toLeaf(row.values), extra.view)),
    })}`;
  },
  buttons: (state) => conditionsButtons(state.conditions),
  summary(json, extra) {
    return html`<table>
        <tbody>
          <tr>
            <th scope="row">Key</th>
            <td>${json.key}</td>
          </tr>
          <tr>
            <th scope="row">Name</th>
            <td>${json.name}</td>
          </tr>
          <tr>
            <th scope="row">Activation</th>
            <td>${json.activation}</td>
          </tr>
          ${
            json.selector !== null
              ? html`<tr>
                  <th scope="row">Selector</th>
                  <td><code>${json.selector}</code></td>
                </tr>`
              : ""
          }
        </tbody>
      </table>
      <h2>URL conditions</h2>
      ${conditionsSummary(
        json.conditions,
        urlLeafCodec,
        (row) => describeUrlRow(row.values),
        (row) => warningList(leafWarnings(urlLeafCodec.toLeaf(row.values), extra.view)),
      )}`;
  },
  sections: (json, extra, _ctx, query) =>
    testerSection(json.conditions, query.get("test"), extra.view),
  notices(json, extra) {
    const warned = treeWarnings(json.conditions, extra.view);
    if (warned.length === 0) return routingNote(extra.view);
    const headline = `${warned.length} of these URL conditions never ${warned.length === 1 ? "matches" : "match"} on the edge:`;
    return html`${routingNote(extra.view)}
      <div class="warning" role="status" data-warning="stored">
        <p><strong>${headline}</strong></p>
        <ul>
          ${warned.map((w) => html`<li>${w.label}: ${w.warnings.join(" ")}</li>`)}
        </ul>
        <details>
          <summary>Why</summary>
          <p>
            The edge matches a page's conditions against the request URL as the Worker receives it,
            and only on hosts a route of ROUTES covers (docs/config.md). Under
            <code>wrangler dev</code> the Worker receives <code>localhost:8788</code> (the
            <code>[dev] host</code> of wrangler.toml), whatever the browser shows
            (<code>localhost:8787</code>); in production it receives the route's host without a
            port.
          </p>
        </details>
      </div>`;
  },
};
