/**
 * The changes of a variation as form fields (docs/admin.md "The experiment form"): one fieldset per
 * change with the inputs of its type — the `Change` union of src/core/datafile-types.ts, whose
 * effect docs/changes.md describes — and the reading of those fields back into the API's JSON.
 *
 * Field names are the change's body path (`variations[0].changes[1].selector`,
 * `…changes[1].attributes.text`), so a 422 detail of the API (`$.body.variations[0].changes[1]
 * .selector`) lands beside its input (src/admin/forms.ts `fieldErrors`). A posted form is read as
 * a tree of those paths (`formTree`), which the experiment form (src/admin/experiment-draft.ts)
 * uses for its own fields too.
 *
 * No script: a change shows the inputs of the type it was rendered with; picking another type
 * takes effect with the "Show fields for this type" button (or on save, when the new type's
 * fields are then asked for). Fields a change carries that the form has no input for (an
 * imported change's extra keys) ride along in a hidden field and are sent back unchanged.
 */
import { html } from "hono/html";
import type { Change } from "../core/datafile-types";
import { checkbox, field, fieldId, select, textarea, type PostedForm } from "./forms";
import type { Html } from "./ui";

// ---------------------------------------------------------------------------------------------
// A posted form as a tree of body paths

/** One node of a posted form's name tree: the values posted under exactly this path, and below. */
export interface FormNode {
  values: string[];
  children: Map<string, FormNode>;
}

/** `a.b[0].c` → `a`, `b`, `0`, `c`. */
const SEGMENT = /([^.[\]]+)|\[(\d+)\]/g;

const emptyNode = (): FormNode => ({ values: [], children: new Map() });

/** The segments of a field name (`variations[0].key` → `["variations", "0", "key"]`). */
export function pathSegments(name: string): string[] {
  return [...name.matchAll(SEGMENT)].map((match) => match[1] ?? match[2] ?? "");
}

/**
 * The posted fields as a tree of their names' paths. Names starting with `_` at the top are the
 * form's controls (buttons, selects of the "add" buttons) and are left out. Line breaks are
 * stored as `\n`: browsers send a textarea's as CRLF, which would otherwise change every snippet
 * of CSS or code on each save.
 */
export function formTree(form: PostedForm): FormNode {
  const root = emptyNode();
  for (const [name, values] of form) {
    if (name.startsWith("_")) continue;
    let node = root;
    for (const segment of pathSegments(name)) {
      let next = node.children.get(segment);
      if (!next) {
        next = emptyNode();
        node.children.set(segment, next);
      }
      node = next;
    }
    node.values.push(...values.map((value) => value.replace(/\r\n?/g, "\n")));
  }
  return root;
}

/** The node at `key` below `node` (an empty one when nothing was posted there). */
export function nodeAt(node: FormNode, key: string): FormNode {
  return node.children.get(key) ?? emptyNode();
}

/** The first value posted at `key` below `node` ("" when none). */
export function textAt(node: FormNode, key: string): string {
  return nodeAt(node, key).values[0] ?? "";
}

/** Every value posted at `key` below `node` (a multi-select's choices). */
export function textsAt(node: FormNode, key: string): string[] {
  return nodeAt(node, key).values;
}

/** The rows of the list at `key` (`variations[0]`, `variations[3]` …) in index order. */
export function itemsAt(node: FormNode, key: string): FormNode[] {
  return [...nodeAt(node, key).children.entries()]
    .filter(([index]) => /^\d{1,6}$/.test(index))
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, child]) => child);
}

// ---------------------------------------------------------------------------------------------
// Errors beside fields

/** The API's problem for exactly the field `name`. */
export function errorFor(errors: ReadonlyMap<string, string>, name: string): string | undefined {
  return errors.get(name);
}

/**
 * The API's first problem at `name` or below it: for inputs holding a whole list or record
 * (`pageIds` for `pageIds[1]`, `…attributes.set` for `…attributes.set.onclick`).
 */
export function errorUnder(errors: ReadonlyMap<string, string>, name: string): string | undefined {
  const exact = errors.get(name);
  if (exact !== undefined) return exact;
  for (const [path, message] of errors)
    if (path.startsWith(`${name}.`) || path.startsWith(`${name}[`)) return message;
  return undefined;
}

/** A container's own problem (`variations`: "the weights sum to …"), shown at its top. */
export function containerError(errors: ReadonlyMap<string, string>, name: string): Html {
  const message = errors.get(name);
  return message === undefined
    ? html``
    : html`<p class="field-error" id="${fieldId(name)}-error">${message}</p>`;
}

// ---------------------------------------------------------------------------------------------
// The change draft

/** The change types (docs/changes.md), in the order the type select lists them. */
export const CHANGE_TYPES = [
  "attribute",
  "insert_html",
  "move",
  "custom_css",
  "custom_code",
  "redirect",
] as const;

const CHANGE_TYPE_LABELS: Record<(typeof CHANGE_TYPES)[number], string> = {
  attribute: "attribute: text, HTML, class, style, href, src … of the matching elements",
  insert_html: "insert_html: HTML before, after, inside or instead of the matching elements",
  move: "move: Move an element before, after or inside another",
  custom_css: "custom_css: a style sheet at the end of <head>",
  custom_code: "custom_code: a script at the end of <body>",
  redirect: "redirect: another URL (split URL tests)",
};

/** The attribute-change fields that take a text (docs/changes.md "attribute", in its order). */
const TEXT_ATTRIBUTES = [
  ["text", "Text (replaces the content; shown as text, not HTML)"],
  ["html", "HTML (replaces the content)"],
  ["class", "class (set to this)"],
  ["removeClass", "Remove classes (space-separated)"],
  ["addClass", "Add classes (space-separated)"],
  ["style", "style (appended to the element's style)"],
  ["href", "href"],
  ["src", "src"],
] as const;
type TextAttribute = (typeof TEXT_ATTRIBUTES)[number][0];

const INSERT_POSITIONS = ["before", "after", "prepend", "append", "replace"] as const;
const MOVE_POSITIONS = ["before", "after", "prepend", "append"] as const;
const REDIRECT_MODES = ["redirect", "rewrite"] as const;

/** Keys a change of each type has inputs for; anything else is kept in `extra`. */
const KNOWN_CHANGE_KEYS: Record<string, readonly string[]> = {
  attribute: ["type", "selector", "attributes", "pageId"],
  insert_html: ["type", "selector", "position", "html", "pageId"],
  move: ["type", "selector", "target", "position", "html", "pageId"],
  custom_css: ["type", "value", "pageId"],
  custom_code: ["type", "value", "pageId"],
  redirect: ["type", "destination", "preserveParameters", "mode", "pageId"],
};
const KNOWN_ATTRIBUTE_KEYS: readonly string[] = [
  ...TEXT_ATTRIBUTES.map(([key]) => key),
  "hide",
  "remove",
  "set",
  "unset",
];

/** A change as the form holds it: every input's text, whatever the type. */
export interface ChangeDraft {
  type: string;
  selector: string;
  /** "" = every page of the experiment. */
  pageId: string;
  attributes: Record<TextAttribute, string>;
  hide: boolean;
  remove: boolean;
  /** `set`: one `name=value` per line. */
  set: string;
  /** `unset`: names separated by spaces. */
  unset: string;
  /** `move`: the element the moved one goes next to or into. */
  target: string;
  position: string;
  html: string;
  value: string;
  destination: string;
  preserveParameters: boolean;
  mode: string;
  /** JSON of the change's keys the form has no input for ("" when none). */
  extra: string;
  /** JSON of the attribute set's keys the form has no input for ("" when none). */
  attributesExtra: string;
}

const noAttributes = (): Record<TextAttribute, string> => ({
  text: "",
  html: "",
  class: "",
  removeClass: "",
  addClass: "",
  style: "",
  href: "",
  src: "",
});

/** A new change of `type` with its defaults (insert after, redirect keeping the query). */
export function emptyChange(type: string): ChangeDraft {
  return {
    type: (CHANGE_TYPES as readonly string[]).includes(type) ? type : "attribute",
    selector: "",
    pageId: "",
    attributes: noAttributes(),
    hide: false,
    remove: false,
    set: "",
    unset: "",
    target: "",
    position: "after",
    html: "",
    value: "",
    destination: "",
    // The edge keeps the query unless told not to (src/edge/handle-request.ts).
    preserveParameters: true,
    mode: "redirect",
    extra: "",
    attributesExtra: "",
  };
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const text = (value: unknown): string => (typeof value === "string" ? value : "");

/** The keys of `record` outside `known`, as JSON ("" when none). */
function extraOf(record: Record<string, unknown>, known: readonly string[]): string {
  const extra = Object.fromEntries(Object.entries(record).filter(([key]) => !known.includes(key)));
  return Object.keys(extra).length === 0 ? "" : JSON.stringify(extra);
}

/** A stored change (the API's JSON) as the form shows it. */
export function changeDraftOf(change: unknown): ChangeDraft {
  const record = isRecord(change) ? change : {};
  const draft = emptyChange(text(record.type));
  draft.type = text(record.type);
  draft.selector = text(record.selector);
  draft.pageId = text(record.pageId);
  draft.extra = extraOf(record, KNOWN_CHANGE_KEYS[draft.type] ?? ["type"]);
  if (draft.type === "attribute") {
    const attributes = isRecord(record.attributes) ? record.attributes : {};
    for (const [key] of TEXT_ATTRIBUTES) draft.attributes[key] = text(attributes[key]);
    draft.hide = attributes.hide === true;
    draft.remove = attributes.remove === true;
    draft.set = isRecord(attributes.set)
      ? Object.entries(attributes.set)
          .map(([name, value]) => `${name}=${text(value)}`)
          .join("\n")
      : "";
    draft.unset = Array.isArray(attributes.unset) ? attributes.unset.map(text).join(" ") : "";
    draft.attributesExtra = extraOf(attributes, KNOWN_ATTRIBUTE_KEYS);
  } else if (draft.type === "insert_html" || draft.type === "move") {
    if (draft.type === "move") draft.target = text(record.target);
    draft.position = text(record.position);
    draft.html = text(record.html);
  } else if (draft.type === "custom_css" || draft.type === "custom_code") {
    draft.value = text(record.value);
  } else if (draft.type === "redirect") {
    draft.destination = text(record.destination);
    draft.preserveParameters = record.preserveParameters !== false;
    draft.mode = text(record.mode) || "redirect";
  }
  return draft;
}

/**
 * A posted change. When its type select was changed since the fields were rendered (the hidden
 * `_rendered` names the type they belong to), the new type starts from its defaults, keeping
 * the selector, page and extra keys: the posted checkboxes of the old type say nothing. Without
 * `_rendered` (a form not made by this page) every posted field is read.
 */
export function changeDraftFromTree(node: FormNode): ChangeDraft {
  const type = textAt(node, "type");
  const draft = emptyChange(type);
  draft.type = type;
  draft.selector = textAt(node, "selector");
  draft.pageId = textAt(node, "pageId");
  draft.extra = textAt(node, "_extra");
  const rendered = nodeAt(node, "_rendered").values[0];
  if (rendered !== undefined && rendered !== type) return draft;
  const attributes = nodeAt(node, "attributes");
  for (const [key] of TEXT_ATTRIBUTES) draft.attributes[key] = textAt(attributes, key);
  draft.hide = textAt(attributes, "hide") !== "";
  draft.remove = textAt(attributes, "remove") !== "";
  draft.set = textAt(attributes, "set");
  draft.unset = textAt(attributes, "unset");
  draft.attributesExtra = textAt(attributes, "_extra");
  draft.target = textAt(node, "target");
  draft.position = textAt(node, "position");
  draft.html = textAt(node, "html");
  draft.value = textAt(node, "value");
  draft.destination = textAt(node, "destination");
  draft.preserveParameters = textAt(node, "preserveParameters") !== "";
  draft.mode = textAt(node, "mode");
  return draft;
}

/** A JSON object from a hidden field ({} when it is absent or not an object). */
function parseObject(json: string): Record<string, unknown> {
  if (json === "") return {};
  try {
    const value: unknown = JSON.parse(json);
    return isRecord(value) ? value : {};
  } catch {
    return {};
  }
}

/**
 * `name=value` lines → a record (a line without `=` names an attribute with an empty value).
 * Without a prototype, so a name such as `__proto__` is an entry like any other (on a plain
 * object, assigning it would change the prototype and the name would be lost).
 */
export function setOf(lines: string): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  for (const line of lines.split("\n")) {
    if (line.trim() === "") continue;
    const at = line.indexOf("=");
    const name = (at < 0 ? line : line.slice(0, at)).trim();
    out[name] = at < 0 ? "" : line.slice(at + 1);
  }
  return out;
}

/**
 * The change the API is sent, before its own validation: the fields of the draft's type. An
 * empty text field is left out (the form cannot tell "empty" from "not set"), so an attribute
 * change never sets a text to "" — `remove`, `hide` or an `insert_html` replace do that job.
 */
export function changeBody(draft: ChangeDraft): Record<string, unknown> {
  const body: Record<string, unknown> = { ...parseObject(draft.extra), type: draft.type };
  if (draft.pageId !== "") body.pageId = draft.pageId;
  switch (draft.type) {
    case "attribute": {
      const attributes: Record<string, unknown> = parseObject(draft.attributesExtra);
      for (const [key] of TEXT_ATTRIBUTES)
        if (draft.attributes[key] !== "") attributes[key] = draft.attributes[key];
      if (draft.hide) attributes.hide = true;
      if (draft.remove) attributes.remove = true;
      const set = setOf(draft.set);
      if (Object.keys(set).length > 0) attributes.set = set;
      const unset = draft.unset.split(/\s+/).filter(Boolean);
      if (unset.length > 0) attributes.unset = unset;
      return { ...body, selector: draft.selector, attributes };
    }
    case "insert_html":
      return { ...body, selector: draft.selector, position: draft.position, html: draft.html };
    case "move":
      return {
        ...body,
        selector: draft.selector,
        target: draft.target,
        position: draft.position,
        html: draft.html,
      };
    case "custom_css":
    case "custom_code":
      return { ...body, value: draft.value };
    case "redirect":
      return {
        ...body,
        destination: draft.destination,
        preserveParameters: draft.preserveParameters,
        mode: draft.mode,
      };
    default:
      // An unknown type: the API's schema names it at `….type`.
      return body;
  }
}

/** A one-line description of a stored change, for read-only pages. */
export function changeSummary(change: Change | Record<string, unknown>): string {
  const draft = changeDraftOf(change);
  const where = draft.pageId === "" ? "" : ` (page ${draft.pageId})`;
  switch (draft.type) {
    case "attribute": {
      const parts = TEXT_ATTRIBUTES.filter(([key]) => draft.attributes[key] !== "").map(
        ([key]) => `${key}=${JSON.stringify(draft.attributes[key])}`,
      );
      if (draft.hide) parts.push("hide");
      if (draft.remove) parts.push("remove");
      if (draft.set !== "") parts.push(`set ${draft.set.replace(/\n/g, ", ")}`);
      if (draft.unset !== "") parts.push(`unset ${draft.unset}`);
      return `attribute ${draft.selector}: ${parts.join(", ")}${where}`;
    }
    case "insert_html":
      return `insert_html ${draft.position} ${draft.selector}: ${draft.html}${where}`;
    case "move":
      return `move ${draft.selector} ${draft.position} ${draft.target}${where}`;
    case "custom_css":
    case "custom_code":
      return `${draft.type}: ${draft.value}${where}`;
    case "redirect":
      return `redirect (${draft.mode}) to ${draft.destination}${draft.preserveParameters ? ", keeping the query" : ""}${where}`;
    default:
      return `${draft.type}${where}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** What the change fields need besides the change: the API's problems and the project's pages. */
export interface ChangeFieldsContext {
  errors: ReadonlyMap<string, string>;
  pages: ReadonlyArray<{ value: string; label: string }>;
}

function hidden(name: string, value: string): Html {
  return value === "" ? html`` : html`<input type="hidden" name="${name}" value="${value}" />`;
}

/** The inputs of the draft's type (none for an unknown type: its select says what is wrong). */
function typeFields(path: string, draft: ChangeDraft, ctx: ChangeFieldsContext): Html {
  const { errors } = ctx;
  const selectorField = field({
    name: `${path}.selector`,
    label: draft.type === "move" ? "Selector (the element to move)" : "Selector",
    value: draft.selector,
    error: errorFor(errors, `${path}.selector`),
    hint: "CSS selector the edge can match while streaming (docs/changes.md “Selectors”), e.g. h1 or #hero .title",
  });
  switch (draft.type) {
    case "attribute": {
      const at = `${path}.attributes`;
      return html`${selectorField}
        <fieldset id="${fieldId(at)}">
          <legend>What changes on each matching element</legend>
          ${containerError(errors, at)}
          ${TEXT_ATTRIBUTES.map(([key, label]) =>
            key === "html"
              ? textarea({
                  name: `${at}.html`,
                  label,
                  value: draft.attributes.html,
                  rows: 2,
                  error: errorFor(errors, `${at}.html`),
                })
              : field({
                  name: `${at}.${key}`,
                  label,
                  value: draft.attributes[key],
                  error: errorFor(errors, `${at}.${key}`),
                }),
          )}
          ${textarea({
            name: `${at}.set`,
            label: "Set attributes",
            value: draft.set,
            rows: 2,
            hint: "One name=value per line, e.g. data-variant=b (on… handlers are refused)",
            error: errorUnder(errors, `${at}.set`),
          })}
          ${field({
            name: `${at}.unset`,
            label: "Remove attributes",
            value: draft.unset,
            hint: "Names separated by spaces",
            error: errorUnder(errors, `${at}.unset`),
          })}
          ${checkbox({
            name: `${at}.hide`,
            label: "Hide (display:none)",
            checked: draft.hide,
            error: errorFor(errors, `${at}.hide`),
          })}
          ${checkbox({
            name: `${at}.remove`,
            label: "Remove the element",
            checked: draft.remove,
            error: errorFor(errors, `${at}.remove`),
          })}
          ${hidden(`${at}._extra`, draft.attributesExtra)}
        </fieldset>`;
    }
    case "insert_html":
      return html`${selectorField}
      ${select({
        name: `${path}.position`,
        label: "Position",
        value: draft.position,
        options: INSERT_POSITIONS.map((p) => ({ value: p, label: p })),
        error: errorFor(errors, `${path}.position`),
        hint: "before / after the element, prepend / append inside it, or replace it",
      })}
      ${textarea({
        name: `${path}.html`,
        label: "HTML",
        value: draft.html,
        rows: 3,
        error: errorFor(errors, `${path}.html`),
      })}`;
    case "move":
      return html`${selectorField}
      ${field({
        name: `${path}.target`,
        label: "Move next to",
        value: draft.target,
        error: errorFor(errors, `${path}.target`),
        hint: "CSS selector of the element the moved one goes before, after or into",
      })}
      ${select({
        name: `${path}.position`,
        label: "Position",
        value: draft.position,
        options: MOVE_POSITIONS.map((p) => ({ value: p, label: p })),
        error: errorFor(errors, `${path}.position`),
        hint: "before / after that element, or prepend / append inside it",
      })}
      ${textarea({
        name: `${path}.html`,
        label: "Moved HTML (captured when the move was made)",
        value: draft.html,
        rows: 3,
        error: errorFor(errors, `${path}.html`),
        hint: "The visual editor captures the element's HTML when you make the move: the edge streams the page and cannot look ahead, so it inserts this HTML where the element goes (docs/changes.md “move”)",
      })}`;
    case "custom_css":
    case "custom_code":
      return textarea({
        name: `${path}.value`,
        label: draft.type === "custom_css" ? "CSS" : "JavaScript",
        value: draft.value,
        rows: 4,
        error: errorFor(errors, `${path}.value`),
      });
    case "redirect":
      return html`${field({
        name: `${path}.destination`,
        label: "Destination",
        value: draft.destination,
        error: errorFor(errors, `${path}.destination`),
        hint: "An http(s) URL or a path, e.g. /pricing-b",
      })}
      ${select({
        name: `${path}.mode`,
        label: "Mode",
        value: draft.mode,
        options: REDIRECT_MODES.map((m) => ({
          value: m,
          label:
            m === "redirect"
              ? "redirect (302 to the destination)"
              : "rewrite (same URL, other content)",
        })),
        error: errorFor(errors, `${path}.mode`),
      })}
      ${checkbox({
        name: `${path}.preserveParameters`,
        label: "Keep the query string",
        checked: draft.preserveParameters,
        error: errorFor(errors, `${path}.preserveParameters`),
      })}`;
    default:
      return html``;
  }
}

/** One change: its type (with the button showing that type's fields), page, fields, removal. */
function changeFieldset(
  path: string,
  index: number,
  draft: ChangeDraft,
  ctx: ChangeFieldsContext,
): Html {
  const knownType = (CHANGE_TYPES as readonly string[]).includes(draft.type);
  const typeOptions = [
    ...(knownType ? [] : [{ value: draft.type, label: `${draft.type} (unknown)` }]),
    ...CHANGE_TYPES.map((t) => ({ value: t, label: CHANGE_TYPE_LABELS[t] })),
  ];
  return html`<fieldset id="${fieldId(path)}" class="change" data-change="${path}">
    <legend>Change ${index + 1}</legend>
    ${containerError(ctx.errors, path)}
    <div class="row">
      ${select({
        name: `${path}.type`,
        label: "Type",
        value: draft.type,
        options: typeOptions,
        error: errorFor(ctx.errors, `${path}.type`),
      })}
      <button type="submit" name="_refresh" value="${path}">Show fields for this type</button>
    </div>
    <input type="hidden" name="${path}._rendered" value="${draft.type}" />
    ${typeFields(path, draft, ctx)}
    ${select({
      name: `${path}.pageId`,
      label: "Only on page",
      value: draft.pageId,
      options: [{ value: "", label: "Every page of the experiment" }, ...ctx.pages],
      error: errorFor(ctx.errors, `${path}.pageId`),
    })}
    ${hidden(`${path}._extra`, draft.extra)}
    <button type="submit" name="_remove" value="${path}">Remove change ${index + 1}</button>
  </fieldset>`;
}

/**
 * The changes at `path` (`variations[0].changes`, `sharedChanges`) and an "Add change" button
 * with the new change's type.
 */
export function changeList(
  path: string,
  changes: readonly ChangeDraft[],
  ctx: ChangeFieldsContext,
): Html {
  const typeId = fieldId(`_type.${path}`);
  return html`<div id="${fieldId(path)}" data-changes="${path}">
    ${containerError(ctx.errors, path)}
    ${changes.length === 0 ? html`<p class="muted">No changes.</p>` : ""}
    ${changes.map((change, i) => changeFieldset(`${path}[${i}]`, i, change, ctx))}
    <p class="row">
      <label for="${typeId}">New change</label>
      <select id="${typeId}" name="_type.${path}">
        ${CHANGE_TYPES.map((t) => html`<option value="${t}">${t}</option>`)}
      </select>
      <button type="submit" name="_add" value="${path}">Add change</button>
    </p>
  </div>`;
}
