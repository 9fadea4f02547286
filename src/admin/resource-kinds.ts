/**
 * Attributes, events and groups in the admin (docs/admin.md "Attributes", "Events", "Groups"): the
 * API's `/attributes`, `/events` and `/groups` (docs/api.md) as forms whose field names are the
 * body's paths; only a group's allocation rows are renumbered (blank and removed rows are left
 * out of the body).
 */
import { html } from "hono/html";
import { unprocessable } from "../api/errors";
import {
  AttributeCreateSchema,
  AttributeUpdateSchema,
  type AttributeJson,
} from "../api/schemas/attributes";
import { EventCreateSchema, EventUpdateSchema, type EventJson } from "../api/schemas/events";
import { GroupCreateSchema, GroupUpdateSchema, type GroupJson } from "../api/schemas/groups";
import { attributeResource } from "../api/services/attributes";
import { eventResource } from "../api/services/events";
import { experimentResource } from "../api/services/experiments";
import { groupResource } from "../api/services/groups";
import { pageResource } from "../api/services/pages";
import { listResources } from "../api/services/resources";
import { WEB_EVENT_TYPES } from "../core/datafile-parse";
import { DEFAULT_DAILY_CONVERSION_CAP, MAX_DAILY_CONVERSION_CAP } from "../shared/event-limits";
import {
  listAll,
  numberOrText,
  remapRowIndexes,
  resourceCalls,
  type ContentKind,
} from "./content-kind";
import { checkbox, field, one, select, textarea, type PostedForm } from "./forms";
import { ADMIN_BASE_PATH } from "./ui";

interface AttributeState {
  key: string;
  name: string;
  description: string;
}

/** The attribute kind. */
export const attributeKind: ContentKind<AttributeJson, AttributeJson, AttributeState, null> = {
  plural: "attributes",
  singular: "attribute",
  title: "Attributes",
  about: html`Visitor attributes audiences may name, besides the request attributes the edge
    computes (the API's <code>/attributes</code>, docs/api.md "Attributes").`,
  calls: resourceCalls(attributeResource, {
    create: AttributeCreateSchema,
    update: AttributeUpdateSchema,
  }),
  archivable: false,
  load: async () => null,
  labelHeader: "Key",
  label: (item) => item.key,
  columns: [
    { header: "Name", cell: (item) => item.name },
    { header: "Description", cell: (item) => item.description },
  ],
  blank: () => ({ key: "", name: "", description: "" }),
  fromJson: (json) => ({ key: json.key, name: json.name, description: json.description }),
  read: (form) => ({
    key: one(form, "key"),
    name: one(form, "name"),
    description: one(form, "description"),
  }),
  body: (state) => ({
    body: { key: state.key.trim(), name: state.name, description: state.description },
  }),
  fields: (state, errors) =>
    html`${field({ name: "key", label: "Key", value: state.key, error: errors.get("key"), required: true, hint: "1–64 letters, digits, _ . : - (not a request attribute's name)." })}
    ${field({ name: "name", label: "Name", value: state.name, error: errors.get("name") })}
    ${textarea({ name: "description", label: "Description", value: state.description, error: errors.get("description"), rows: 3 })}`,
  summary: (json) =>
    html`<table>
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
          <th scope="row">Description</th>
          <td>${json.description}</td>
        </tr>
      </tbody>
    </table>`,
};

interface EventState {
  key: string;
  name: string;
  type: string;
  pageId: string;
  selector: string;
  maxPerVisitorPerDay: string;
}

interface EventExtra {
  pages: Array<{ id: string; key: string }>;
}

const pageKeyOf = (extra: EventExtra, id: string | null) =>
  id === null ? "" : (extra.pages.find((p) => p.id === id)?.key ?? id);

/** The event kind. */
export const eventKind: ContentKind<EventJson, EventJson, EventState, EventExtra> = {
  plural: "events",
  singular: "event",
  title: "Events",
  about: html`What experiments measure: custom events your code sends, pageviews of a page, clicks
    on an element (the API's <code>/events</code>, docs/api.md "Events").`,
  calls: resourceCalls(eventResource, { create: EventCreateSchema, update: EventUpdateSchema }),
  archivable: true,
  async load(ctx) {
    const pages = await listAll(
      { list: (env, actor, id, page) => listResources(env, actor, pageResource, id, page) },
      ctx.env,
      ctx.actor,
      ctx.projectId,
    );
    return { pages: pages.map((p) => ({ id: p.id, key: p.key })) };
  },
  labelHeader: "Key",
  label: (item) => item.key,
  columns: [
    { header: "Name", cell: (item) => item.name },
    { header: "Type", cell: (item) => item.type },
    { header: "Page", cell: (item, extra) => pageKeyOf(extra, item.pageId) },
    {
      header: "Max per visitor per day",
      numeric: true,
      cell: (item) =>
        item.maxPerVisitorPerDay === null
          ? `${DEFAULT_DAILY_CONVERSION_CAP} (default)`
          : String(item.maxPerVisitorPerDay),
    },
  ],
  blank: () => ({
    key: "",
    name: "",
    type: "custom",
    pageId: "",
    selector: "",
    maxPerVisitorPerDay: "",
  }),
  fromJson: (json) => ({
    key: json.key,
    name: json.name,
    type: json.type,
    pageId: json.pageId ?? "",
    selector: json.selector ?? "",
    maxPerVisitorPerDay: json.maxPerVisitorPerDay === null ? "" : String(json.maxPerVisitorPerDay),
  }),
  read: (form) => ({
    key: one(form, "key"),
    name: one(form, "name"),
    type: one(form, "type"),
    pageId: one(form, "pageId"),
    selector: one(form, "selector"),
    maxPerVisitorPerDay: one(form, "maxPerVisitorPerDay"),
  }),
  body(state, op) {
    const selector = state.selector.trim();
    // A create leaves empty optional fields out; an update sends null, which drops a stored one
    // (docs/api.md "Events": PATCH with null clears pageId and selector).
    const optional = (name: "pageId" | "selector", value: string) =>
      value !== "" ? { [name]: value } : op === "update" ? { [name]: null } : {};
    return {
      body: {
        key: state.key.trim(),
        name: state.name,
        type: state.type,
        ...optional("pageId", state.pageId),
        ...optional("selector", selector),
        maxPerVisitorPerDay: numberOrText(state.maxPerVisitorPerDay),
      },
    };
  },
  fields: (state, errors, extra) =>
    html`${field({ name: "key", label: "Key", value: state.key, error: errors.get("key"), required: true, hint: "1–64 letters, digits, _ . - (unique in the project)." })}
    ${field({ name: "name", label: "Name", value: state.name, error: errors.get("name") })}
    ${select({
      name: "type",
      label: "Type",
      value: state.type,
      error: errors.get("type"),
      options: WEB_EVENT_TYPES.map((t) => ({
        value: t,
        label:
          t === "custom"
            ? "custom: sent by your code or server"
            : t === "pageview"
              ? "pageview: a page of the page below is served"
              : "click: the selector's element is clicked on the page below",
      })),
    })}
    ${select({
      name: "pageId",
      label: "Page (pageview and click)",
      value: state.pageId,
      error: errors.get("pageId"),
      options: [
        { value: "", label: "— none —" },
        ...extra.pages.map((p) => ({ value: p.id, label: p.key })),
      ],
    })}
    ${field({ name: "selector", label: "Selector (click only)", value: state.selector, error: errors.get("selector"), hint: "The CSS selector of the element clicked, e.g. #buy." })}
    ${field({
      name: "maxPerVisitorPerDay",
      label: "Max per visitor per day",
      type: "number",
      min: 1,
      max: MAX_DAILY_CONVERSION_CAP,
      value: state.maxPerVisitorPerDay,
      error: errors.get("maxPerVisitorPerDay"),
      hint: `How many of one visitor's conversions count per UTC day; empty = the default, ${DEFAULT_DAILY_CONVERSION_CAP}.`,
    })}`,
  summary: (json, extra) =>
    html`<table>
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
          <th scope="row">Type</th>
          <td>${json.type}</td>
        </tr>
        <tr>
          <th scope="row">Page</th>
          <td>${pageKeyOf(extra, json.pageId)}</td>
        </tr>
        <tr>
          <th scope="row">Selector</th>
          <td>${json.selector === null ? "" : html`<code>${json.selector}</code>`}</td>
        </tr>
        <tr>
          <th scope="row">Max per visitor per day</th>
          <td>${json.maxPerVisitorPerDay ?? `${DEFAULT_DAILY_CONVERSION_CAP} (default)`}</td>
        </tr>
      </tbody>
    </table>`,
};

interface AllocationRow {
  experimentId: string;
  weight: string;
}

interface GroupState {
  name: string;
  policy: string;
  allocation: AllocationRow[];
}

interface GroupExtra {
  experiments: Array<{ id: string; key: string; groupId: string | null }>;
}

/**
 * Most allocation rows a form saves. A posted form with more is refused beside `allocation`
 * (422) rather than cut, since the save would otherwise drop the extra members' shares.
 */
export const MAX_ALLOCATION_ROWS = 200;

/** The allocation rows of a posted form (removed rows dropped, the rest renumbered; none cut). */
function readAllocation(form: PostedForm): AllocationRow[] {
  const indexes = new Set<number>();
  for (const name of form.keys()) {
    const match = /^allocation\[(\d{1,9})\]\./.exec(name);
    if (match) indexes.add(Number(match[1]));
  }
  const rows = [...indexes]
    .sort((a, b) => a - b)
    .filter((i) => !form.has(`allocation[${i}].remove`))
    .map((i) => ({
      experimentId: one(form, `allocation[${i}].experimentId`),
      weight: one(form, `allocation[${i}].weight`),
    }));
  if (one(form, "_refresh") === "add-allocation" && rows.length < MAX_ALLOCATION_ROWS)
    rows.push({ experimentId: "", weight: "" });
  return rows;
}

const experimentKeyOf = (extra: GroupExtra, id: string) =>
  extra.experiments.find((x) => x.id === id)?.key ?? id;

const percentOf = (weight: number) => `${(weight / 100).toLocaleString("en-US")} %`;

/** The group kind. */
export const groupKind: ContentKind<GroupJson, GroupJson, GroupState, GroupExtra> = {
  plural: "groups",
  singular: "group",
  title: "Groups",
  about: html`Mutually exclusive experiments: each visitor is in at most one experiment of a random
    group, by its allocation (the API's <code>/groups</code>, docs/api.md "Groups").`,
  calls: resourceCalls(groupResource, { create: GroupCreateSchema, update: GroupUpdateSchema }),
  archivable: false,
  async load(ctx) {
    const experiments = await listAll(
      { list: (env, actor, id, page) => listResources(env, actor, experimentResource, id, page) },
      ctx.env,
      ctx.actor,
      ctx.projectId,
    );
    return {
      experiments: experiments.map((x) => ({ id: x.id, key: x.key, groupId: x.groupId })),
    };
  },
  labelHeader: "Name",
  label: (item) => item.name,
  columns: [
    { header: "Policy", cell: (item) => item.policy },
    { header: "Experiments", numeric: true, cell: (item) => String(item.experimentIds.length) },
    {
      header: "Allocated",
      numeric: true,
      cell: (item) => percentOf(item.allocation.reduce((sum, a) => sum + a.weight, 0)),
    },
  ],
  blank: () => ({ name: "", policy: "random", allocation: [] }),
  fromJson: (json) => ({
    name: json.name,
    policy: json.policy,
    allocation: json.allocation.map((a) => ({
      experimentId: a.experimentId,
      weight: String(a.weight),
    })),
  }),
  read: (form) => ({
    name: one(form, "name"),
    policy: one(form, "policy"),
    allocation: readAllocation(form),
  }),
  body(state, op) {
    if (state.allocation.length > MAX_ALLOCATION_ROWS) {
      const message = `${state.allocation.length} allocation rows: the form saves at most ${MAX_ALLOCATION_ROWS}; edit this allocation through the API (PATCH /groups/{id})`;
      throw unprocessable(`invalid request body: $.body.allocation: ${message}`, [
        { path: "$.body.allocation", message },
      ]);
    }
    const rowOf: number[] = [];
    const allocation: Array<{ experimentId: string; weight: unknown }> = [];
    state.allocation.forEach((row, i) => {
      if (row.experimentId === "" && row.weight.trim() === "") return;
      rowOf.push(i);
      allocation.push({
        experimentId: row.experimentId,
        weight: numberOrText(row.weight) ?? row.weight,
      });
    });
    // A create without rows leaves the allocation out (a new group has no members yet).
    const sendAllocation = op === "update" || allocation.length > 0;
    return {
      body: { name: state.name, policy: state.policy, ...(sendAllocation ? { allocation } : {}) },
      remap: (error) => remapRowIndexes(error, "allocation", rowOf),
    };
  },
  fields(state, errors, extra, _ctx, current) {
    const members = current ? extra.experiments.filter((x) => x.groupId === current.id) : [];
    return html`${field({ name: "name", label: "Name", value: state.name, error: errors.get("name"), required: true })}
      ${select({
        name: "policy",
        label: "Policy",
        value: state.policy,
        error: errors.get("policy"),
        options: [
          { value: "random", label: "random: each visitor in at most one experiment" },
          { value: "overlapping", label: "overlapping: no group bucketing" },
        ],
      })}
      <fieldset data-allocation>
        <legend>Allocation</legend>
        <p class="hint">
          Each member's share of all visitors in basis points (10000 = 100 %); the weights sum to at
          most 10000 and the rest is in none of them. An experiment joins the group with its group
          (edit the experiment); only members can be allocated.
        </p>
        ${errors.get("allocation") ? html`<p class="field-error" role="alert">${errors.get("allocation")}</p>` : ""}
        ${
          current === null
            ? html`<p class="muted">Save the group first, then add experiments to it.</p>`
            : state.allocation.length === 0
              ? html`<p class="muted">No allocation rows.</p>`
              : state.allocation.map(
                  (row, i) =>
                    html`<div class="row" data-row="${i}">
                      ${select({
                        name: `allocation[${i}].experimentId`,
                        label: `Experiment ${i + 1}`,
                        value: row.experimentId,
                        error: errors.get(`allocation[${i}].experimentId`),
                        options: [
                          { value: "", label: "— choose a member —" },
                          ...members.map((x) => ({ value: x.id, label: x.key })),
                          ...(row.experimentId !== "" &&
                          !members.some((x) => x.id === row.experimentId)
                            ? [
                                {
                                  value: row.experimentId,
                                  label: `${experimentKeyOf(extra, row.experimentId)} (not a member)`,
                                },
                              ]
                            : []),
                        ],
                      })}
                      ${field({ name: `allocation[${i}].weight`, label: "Weight (basis points)", type: "number", min: 0, max: 10000, value: row.weight, error: errors.get(`allocation[${i}].weight`) })}
                      ${checkbox({ name: `allocation[${i}].remove`, label: "remove", checked: false })}
                    </div>`,
                )
        }
      </fieldset>`;
  },
  buttons: (_state, current) =>
    current === null
      ? html``
      : html`<button type="submit" name="_refresh" value="add-allocation">
          Add allocation row
        </button>`,
  summary: (json, extra) =>
    html`<table>
        <tbody>
          <tr>
            <th scope="row">Name</th>
            <td>${json.name}</td>
          </tr>
          <tr>
            <th scope="row">Policy</th>
            <td>${json.policy}</td>
          </tr>
        </tbody>
      </table>
      <h2>Allocation</h2>
      ${
        json.allocation.length === 0
          ? html`<p class="muted">No allocation.</p>`
          : html`<table data-allocation>
              <thead>
                <tr>
                  <th scope="col">Experiment</th>
                  <th scope="col" class="num">Weight</th>
                  <th scope="col" class="num">Share</th>
                </tr>
              </thead>
              <tbody>
                ${json.allocation.map(
                  (a) =>
                    html`<tr>
                      <th scope="row">${experimentKeyOf(extra, a.experimentId)}</th>
                      <td class="num">${a.weight}</td>
                      <td class="num">${percentOf(a.weight)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
  sections: (json, extra) =>
    html`<section aria-labelledby="members-heading">
      <h2 id="members-heading">Members</h2>
      ${
        json.experimentIds.length === 0
          ? html`<p class="muted">No experiment is in this group yet.</p>`
          : html`<ul>
              ${json.experimentIds.map(
                (id) =>
                  html`<li>
                    <a href="${ADMIN_BASE_PATH}/experiments/${id}">${experimentKeyOf(extra, id)}</a>
                  </li>`,
              )}
            </ul>`
      }
    </section>`,
};
