/**
 * The audience builder (docs/admin.md "Audiences"; the API's `/audiences`, docs/api.md
 * "Audiences"): name, description and the conditions as rows of (attribute, match, value) under
 * one all/any operator, each row optionally negated (src/admin/condition-rows.ts). Attributes are
 * the project's plus the request attributes (src/shared/request-attributes.ts; `query.<name>`,
 * `cookie.<name>`, `header.<name>` take the name in a second field); `in_list` is chosen in the
 * match select, one option per list of the project.
 */
import { html } from "hono/html";
import { unprocessable, type ValidationDetail } from "../api/errors";
import {
  AudienceCreateSchema,
  AudienceUpdateSchema,
  type AudienceJson,
} from "../api/schemas/audiences";
import { attributeResource } from "../api/services/attributes";
import { audienceResource } from "../api/services/audiences";
import { listResource } from "../api/services/lists";
import { listResources } from "../api/services/resources";
import { AUDIENCE_MATCH_TYPES } from "../core/datafile-parse";
import { REQUEST_ATTRIBUTE_FAMILIES, REQUEST_ATTRIBUTE_NAMES } from "../shared/request-attributes";
import {
  blankConditions,
  conditionsBody,
  conditionsButtons,
  conditionsFieldset,
  conditionsStateOf,
  conditionsSummary,
  readConditions,
  rowsOf,
  CONDITIONS,
  type ConditionsState,
  type LeafCodec,
  type RowValues,
} from "./condition-rows";
import { listAll, numberOrText, resourceCalls, type ContentKind } from "./content-kind";
import { field, fieldId, one, select, textarea } from "./forms";
import type { Html } from "./ui";

interface AudienceState {
  name: string;
  description: string;
  conditions: ConditionsState;
}

interface AudienceExtra {
  attributes: Array<{ key: string; name: string }>;
  lists: Array<{ key: string; name: string }>;
}

const IN_LIST = "in_list:";
const FAMILIES: readonly string[] = REQUEST_ATTRIBUTE_FAMILIES;
const VALUE_TYPES = ["text", "number", "boolean"] as const;
const NUMERIC_MATCHES = new Set(["gt", "ge", "lt", "le"]);

/** The attribute a row names: its select, plus the name typed for a `query.`-like family. */
function attributeOf(values: RowValues): string {
  const name = values.name ?? "";
  return FAMILIES.includes(name) ? `${name}${(values.param ?? "").trim()}` : name;
}

/** The value a row sends for its match type and value type (as typed when it does not convert). */
function typedValue(values: RowValues): unknown {
  const text = values.value ?? "";
  if (NUMERIC_MATCHES.has(values.match ?? "")) return numberOrText(text) ?? text;
  switch (values.valueType) {
    case "number":
      return numberOrText(text) ?? text;
    case "boolean":
      return text.trim() === "true" ? true : text.trim() === "false" ? false : text;
    default:
      return text;
  }
}

/** Audience leaves `{type: "custom_attribute", name, match, value}` as rows. */
export const audienceLeafCodec: LeafCodec = {
  fields: ["name", "param", "match", "value", "valueType"],
  toRow(leaf) {
    if (typeof leaf !== "object" || leaf === null || Array.isArray(leaf)) return null;
    const { type, name, match, value, ...rest } = leaf as Record<string, unknown>;
    if (Object.keys(rest).length > 0 || type !== "custom_attribute" || typeof name !== "string")
      return null;
    const family = FAMILIES.find((f) => name.length > f.length && name.startsWith(f));
    const attribute = family
      ? { name: family, param: name.slice(family.length) }
      : { name, param: "" };
    const kind = match ?? "exact";
    if (typeof kind !== "string" || !(AUDIENCE_MATCH_TYPES as readonly string[]).includes(kind))
      return null;
    if (kind === "in_list")
      return typeof value === "string"
        ? { ...attribute, match: `${IN_LIST}${value}`, value: "", valueType: "text" }
        : null;
    if (kind === "exists")
      return value === undefined || value === null
        ? { ...attribute, match: kind, value: "", valueType: "text" }
        : null;
    if (typeof value === "number")
      return { ...attribute, match: kind, value: String(value), valueType: "number" };
    if (typeof value === "boolean")
      return { ...attribute, match: kind, value: String(value), valueType: "boolean" };
    if (typeof value === "string") return { ...attribute, match: kind, value, valueType: "text" };
    return null;
  },
  toLeaf(values) {
    const name = attributeOf(values);
    const match = values.match ?? "exact";
    if (match.startsWith(IN_LIST))
      return {
        type: "custom_attribute",
        name,
        match: "in_list",
        value: match.slice(IN_LIST.length),
      };
    if (match === "exists") return { type: "custom_attribute", name, match };
    return { type: "custom_attribute", name, match, value: typedValue(values) };
  },
  isBlank: (values) =>
    (values.name ?? "") === "" &&
    (values.param ?? "").trim() === "" &&
    (values.value ?? "").trim() === "" &&
    !(values.match ?? "").startsWith(IN_LIST),
  blank: () => ({ name: "", param: "", match: "exact", value: "", valueType: "text" }),
  fieldFor(values, leafField) {
    if (leafField === "value" && (values.match ?? "").startsWith(IN_LIST)) return "match";
    if (leafField === "type") return "name";
    return leafField;
  },
};

/**
 * The rows whose value type the JSON cannot carry as typed (a "number" that is not one): the API
 * would store them as strings, so they are refused here, at the row's own fields.
 */
function valueTypeProblems(state: ConditionsState): ValidationDetail[] {
  if (state.mode !== "rows") return [];
  const out: ValidationDetail[] = [];
  state.rows.forEach((row, i) => {
    const { values } = row;
    const match = values.match ?? "";
    if (audienceLeafCodec.isBlank(values) || match === "exists" || match.startsWith(IN_LIST))
      return;
    const typed = typedValue(values);
    if (values.valueType === "number" && typeof typed !== "number")
      out.push({
        path: `$.body.${CONDITIONS}[${i}].value`,
        message: `${JSON.stringify(values.value ?? "")} is not a number (value type number)`,
      });
    if (values.valueType === "boolean" && typeof typed !== "boolean")
      out.push({
        path: `$.body.${CONDITIONS}[${i}].value`,
        message: `${JSON.stringify(values.value ?? "")} is not true or false (value type boolean)`,
      });
  });
  return out;
}

interface Option {
  value: string;
  label: string;
}

/** A labelled select with option groups (src/admin/forms.ts `select` has none). */
function groupedSelect(options: {
  name: string;
  label: string;
  value: string;
  error: string | undefined;
  groups: ReadonlyArray<{ label: string | null; options: readonly Option[] }>;
}): Html {
  const id = fieldId(options.name);
  const known = options.groups.some((g) => g.options.some((o) => o.value === options.value));
  const option = (o: Option) =>
    html`<option value="${o.value}" ${o.value === options.value ? html`selected` : ""}>
      ${o.label}
    </option>`;
  return html`<p class="field${options.error ? " invalid" : ""}">
    <label for="${id}">${options.label}</label>
    <select
      id="${id}"
      name="${options.name}"
      ${options.error ? html`aria-invalid="true" aria-describedby="${id}-error"` : ""}
    >
      ${known ? "" : option({ value: options.value, label: `${options.value} (not in this project)` })}
      ${options.groups.map((g) =>
        g.label === null
          ? g.options.map(option)
          : html`<optgroup label="${g.label}">${g.options.map(option)}</optgroup>`,
      )}
    </select>
    ${options.error ? html`<span class="field-error" id="${id}-error">${options.error}</span>` : ""}
  </p>`;
}

function attributeGroups(extra: AudienceExtra) {
  return [
    { label: null, options: [{ value: "", label: "— choose an attribute —" }] },
    {
      label: "Attributes of this project",
      options: extra.attributes.map((a) => ({
        value: a.key,
        label: a.name && a.name !== a.key ? `${a.key} (${a.name})` : a.key,
      })),
    },
    {
      label: "Request attributes",
      options: REQUEST_ATTRIBUTE_NAMES.map((n) => ({ value: n, label: n })),
    },
    {
      label: "Request attributes by name (enter the name)",
      options: FAMILIES.map((f) => ({ value: f, label: `${f}<name>` })),
    },
  ];
}

function matchGroups(extra: AudienceExtra) {
  return [
    {
      label: null,
      options: AUDIENCE_MATCH_TYPES.filter((m) => m !== "in_list").map((m) => ({
        value: m,
        label: m,
      })),
    },
    {
      label: "in_list: the value is a member of",
      options: extra.lists.map((l) => ({
        value: `${IN_LIST}${l.key}`,
        label: `in list ${l.name && l.name !== l.key ? `${l.key} (${l.name})` : l.key}`,
      })),
    },
  ];
}

function describeAudienceRow(values: RowValues): Html {
  const leaf = audienceLeafCodec.toLeaf(values) as { name: string; match: string; value?: unknown };
  return html`<code>${leaf.name}</code> ${leaf.match}
    ${leaf.value === undefined ? "" : html`<code>${JSON.stringify(leaf.value)}</code>`}`;
}

/** The audience kind. */
export const audienceKind: ContentKind<AudienceJson, AudienceJson, AudienceState, AudienceExtra> = {
  plural: "audiences",
  singular: "audience",
  title: "Audiences",
  about: html`Who an experiment is for: conditions on the project's attributes, request attributes
    and lists (the API's <code>/audiences</code>, docs/api.md "Audiences").`,
  calls: resourceCalls(audienceResource, {
    create: AudienceCreateSchema,
    update: AudienceUpdateSchema,
  }),
  archivable: true,
  async load(ctx) {
    const [attributes, lists] = await Promise.all([
      listAll(
        { list: (env, actor, id, page) => listResources(env, actor, attributeResource, id, page) },
        ctx.env,
        ctx.actor,
        ctx.projectId,
      ),
      listAll(
        { list: (env, actor, id, page) => listResources(env, actor, listResource, id, page) },
        ctx.env,
        ctx.actor,
        ctx.projectId,
      ),
    ]);
    return {
      attributes: attributes.map((a) => ({ key: a.key, name: a.name })),
      lists: lists.map((l) => ({ key: l.key, name: l.name })),
    };
  },
  labelHeader: "Name",
  label: (item) => item.name,
  columns: [
    { header: "Description", cell: (item) => item.description },
    {
      header: "Conditions",
      cell(item) {
        const flat = rowsOf(item.conditions, audienceLeafCodec);
        return flat
          ? `${flat.operator === "and" ? "all" : "any"} of ${flat.rows.length}`
          : "nested (JSON)";
      },
    },
  ],
  blank: () => ({
    name: "",
    description: "",
    conditions: blankConditions("and", audienceLeafCodec),
  }),
  fromJson: (json) => ({
    name: json.name,
    description: json.description,
    conditions: conditionsStateOf(json.conditions, audienceLeafCodec),
  }),
  read: (form) => ({
    name: one(form, "name"),
    description: one(form, "description"),
    conditions: readConditions(form, audienceLeafCodec, "and"),
  }),
  body(state) {
    const problems = valueTypeProblems(state.conditions);
    if (problems.length > 0)
      throw unprocessable(
        `invalid request body: ${problems[0]!.path}: ${problems[0]!.message}`,
        problems,
      );
    const { tree, remap } = conditionsBody(state.conditions, audienceLeafCodec);
    return {
      body: { name: state.name, description: state.description, conditions: tree },
      remap,
    };
  },
  fields(state, errors, extra) {
    return html`${field({ name: "name", label: "Name", value: state.name, error: errors.get("name"), required: true })}
    ${textarea({ name: "description", label: "Description", value: state.description, error: errors.get("description"), rows: 2 })}
    ${conditionsFieldset(state.conditions, errors, {
      legend: "Conditions",
      hint: html`Each condition compares one attribute of the visitor: an attribute of this project,
      a request attribute the edge computes (docs/visitors.md), or a member of a list. Value type:
      how an exact, substring or semver value is sent (gt/ge/lt/le always send a number).`,
      inputs: (i, row, rowErrors) =>
        html`${groupedSelect({
          name: `conditions[${i}].name`,
          label: "Attribute",
          value: row.values.name ?? "",
          error: rowErrors.get(`conditions[${i}].name`),
          groups: attributeGroups(extra),
        })}
        ${field({ name: `conditions[${i}].param`, label: "Name (for query., cookie., header.)", value: row.values.param ?? "", error: rowErrors.get(`conditions[${i}].param`) })}
        ${groupedSelect({
          name: `conditions[${i}].match`,
          label: "Match",
          value: row.values.match ?? "exact",
          error: rowErrors.get(`conditions[${i}].match`),
          groups: matchGroups(extra),
        })}
        ${field({ name: `conditions[${i}].value`, label: "Value", value: row.values.value ?? "", error: rowErrors.get(`conditions[${i}].value`) })}
        ${select({
          name: `conditions[${i}].valueType`,
          label: "Value type",
          value: row.values.valueType ?? "text",
          error: rowErrors.get(`conditions[${i}].valueType`),
          options: VALUE_TYPES.map((t) => ({ value: t, label: t })),
        })}`,
    })}`;
  },
  buttons: (state) => conditionsButtons(state.conditions),
  summary(json) {
    return html`<table>
        <tbody>
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
      <h2>Conditions</h2>
      ${conditionsSummary(json.conditions, audienceLeafCodec, (row) => describeAudienceRow(row.values))}`;
  },
};
