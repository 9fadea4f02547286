/**
 * Forms of the admin pages (docs/admin.md "Editing"): labelled fields that show the API's own
 * validation problems beside the field they name, a summary of every problem at the top, and the
 * reading of a posted form. No script: a form posts, the Worker validates through the same
 * services and schemas as the API, and answers the page again with the problems (and the values
 * sent) or redirects after a write (303, so a reload does not post twice).
 */
import { html } from "hono/html";
import type { ApiError } from "../api/errors";
import type { AdminContext, Html } from "./ui";

/** A posted form: every value of every name, in order (`getAll` semantics). */
export type PostedForm = Map<string, string[]>;

/** Reads an `application/x-www-form-urlencoded` or `multipart/form-data` body (files as text). */
export async function readForm(c: AdminContext): Promise<PostedForm> {
  const out: PostedForm = new Map();
  let form: FormData;
  try {
    form = await c.req.raw.formData();
  } catch {
    return out;
  }
  for (const [name, value] of form.entries()) {
    const text = typeof value === "string" ? value : await value.text();
    const list = out.get(name);
    if (list) list.push(text);
    else out.set(name, [text]);
  }
  return out;
}

/** The first value of `name` ("" when absent). */
export function one(form: PostedForm, name: string): string {
  return form.get(name)?.[0] ?? "";
}

/** A field name for a body path: `$.body.variations[1].key` → `variations[1].key`. */
export function fieldNameOf(path: string): string {
  return path.replace(/^\$\.body\.?/, "");
}

interface Detail {
  path: string;
  message: string;
}

/** The problems of a refused write (422 details, or a datafile's `problems`), if any. */
function detailsOf(error: ApiError | null): Detail[] {
  if (!error) return [];
  const details: unknown = error.details;
  const list = Array.isArray(details)
    ? details
    : details &&
        typeof details === "object" &&
        Array.isArray((details as { problems?: unknown }).problems)
      ? (details as { problems: unknown[] }).problems
      : details &&
          typeof details === "object" &&
          typeof (details as { path?: unknown }).path === "string"
        ? [details]
        : [];
  return list.filter(
    (d): d is Detail =>
      typeof d === "object" &&
      d !== null &&
      typeof (d as Detail).path === "string" &&
      typeof (d as Detail).message === "string",
  );
}

/** Problems by field name (`name`, `variations[1].key`); the first message of each field. */
export function fieldErrors(error: ApiError | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of detailsOf(error)) {
    const name = fieldNameOf(d.path);
    if (!out.has(name)) out.set(name, d.message);
  }
  return out;
}

/** An id for the field `name` usable in `for`/`aria-describedby` (`variations[1].key` → …). */
export function fieldId(name: string): string {
  return `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
}

/**
 * The problems of a refused form: the error's message and each problem as a link to its field,
 * in a live region so a screen reader announces it.
 */
export function formErrors(error: ApiError | null): Html {
  if (!error) return html``;
  const details = detailsOf(error);
  return html`<div class="error" role="alert" id="form-errors">
    <p>${error.message}</p>
    ${
      details.length > 1
        ? html`<ul>
            ${details.map(
              (d) =>
                html`<li>
                  <a href="#${fieldId(fieldNameOf(d.path))}">${fieldNameOf(d.path) || "form"}</a>:
                  ${d.message}
                </li>`,
            )}
          </ul>`
        : ""
    }
  </div>`;
}

interface FieldOptions {
  name: string;
  label: string;
  value?: string | number | null;
  /** The problem of this field (from `fieldErrors`). */
  error?: string | undefined;
  hint?: string;
  type?: "text" | "number" | "url" | "password" | "datetime-local";
  required?: boolean;
  /** Extra attributes, already safe (e.g. `min="0" max="100"`). */
  pattern?: string;
  min?: number;
  max?: number;
  step?: string;
  disabled?: boolean;
  /** Shown in the empty field (never instead of a label or a hint). */
  placeholder?: string | undefined;
}

function describedBy(id: string, options: { hint?: string; error?: string | undefined }) {
  const ids = [options.hint ? `${id}-hint` : "", options.error ? `${id}-error` : ""].filter(
    Boolean,
  );
  return ids.length > 0 ? ids.join(" ") : undefined;
}

function help(id: string, options: { hint?: string; error?: string | undefined }): Html {
  return html`${options.hint ? html`<span class="hint" id="${id}-hint">${options.hint}</span>` : ""}${
    options.error ? html`<span class="field-error" id="${id}-error">${options.error}</span>` : ""
  }`;
}

/** Whether a value holds a line break, which an `<input>` cannot carry. */
const hasLineBreak = (value: FieldOptions["value"]): value is string =>
  typeof value === "string" && /[\r\n]/.test(value);

/**
 * A labelled `<input>` with its hint and its problem. A text value holding a line break is shown
 * in a `<textarea>` instead (with `multiline`, always): browsers delete line breaks from an
 * input's value, so an unchanged save would rewrite "Line one\nLine two" as "Line oneLine two".
 */
export function field(options: FieldOptions & { multiline?: boolean }): Html {
  const type = options.type ?? "text";
  if ((type === "text" || type === "url") && (options.multiline || hasLineBreak(options.value)))
    return textarea({ ...options, rows: 2 });
  const id = fieldId(options.name);
  const described = describedBy(id, options);
  return html`<p class="field${options.error ? " invalid" : ""}">
    <label for="${id}">${options.label}</label>
    <input
      id="${id}"
      name="${options.name}"
      type="${type}"
      value="${options.value ?? ""}"
      ${options.required ? html`required` : ""}
      ${options.disabled ? html`disabled` : ""}
      ${options.pattern ? html`pattern="${options.pattern}"` : ""}
      ${options.min !== undefined ? html`min="${options.min}"` : ""}
      ${options.max !== undefined ? html`max="${options.max}"` : ""}
      ${options.step ? html`step="${options.step}"` : ""}
      ${options.placeholder ? html`placeholder="${options.placeholder}"` : ""}
      ${options.error ? html`aria-invalid="true"` : ""}
      ${described ? html`aria-describedby="${described}"` : ""}
    />
    ${help(id, options)}
  </p>`;
}

/** A labelled `<textarea>`. */
export function textarea(options: Omit<FieldOptions, "type"> & { rows?: number }): Html {
  const id = fieldId(options.name);
  const described = describedBy(id, options);
  return html`<p class="field${options.error ? " invalid" : ""}">
    <label for="${id}">${options.label}</label>
    <textarea
      id="${id}"
      name="${options.name}"
      rows="${options.rows ?? 4}"
      ${options.required ? html`required` : ""}
      ${options.placeholder ? html`placeholder="${options.placeholder}"` : ""}
      ${options.error ? html`aria-invalid="true"` : ""}
      ${described ? html`aria-describedby="${described}"` : ""}
    >
${options.value ?? ""}</textarea>
    ${help(id, options)}
  </p>`;
}

/** A labelled `<select>`; `multiple` for several values. */
export function select(
  options: Omit<FieldOptions, "type" | "value"> & {
    options: ReadonlyArray<{ value: string; label: string }>;
    value?: string | readonly string[] | null;
    multiple?: boolean;
  },
): Html {
  const id = fieldId(options.name);
  const described = describedBy(id, options);
  const chosen = new Set(
    options.value === null || options.value === undefined
      ? []
      : typeof options.value === "string"
        ? [options.value]
        : options.value,
  );
  // A chosen value the options leave out (one past the first 1,000 items listed, or from another
  // project) is offered first, by its id: without it the browser would post another option, and
  // an unchanged save would silently drop or widen what was chosen. "" is never added: a blank
  // value means "not chosen yet", where the browser's first option is the intended default.
  const listed = new Set(options.options.map((o) => o.value));
  const unlisted = [...chosen]
    .filter((value) => value !== "" && !listed.has(value))
    .map((value) => ({ value, label: `${value} (not listed)` }));
  return html`<p class="field${options.error ? " invalid" : ""}">
    <label for="${id}">${options.label}</label>
    <select
      id="${id}"
      name="${options.name}"
      ${options.multiple ? html`multiple` : ""}
      ${options.required ? html`required` : ""}
      ${options.error ? html`aria-invalid="true"` : ""}
      ${described ? html`aria-describedby="${described}"` : ""}
    >
      ${[...unlisted, ...options.options].map(
        (o) =>
          html`<option value="${o.value}" ${chosen.has(o.value) ? html`selected` : ""}>
            ${o.label}
          </option>`,
      )}
    </select>
    ${help(id, options)}
  </p>`;
}

/** A labelled checkbox (posts `value` when checked, nothing otherwise). */
export function checkbox(options: {
  name: string;
  label: string;
  checked: boolean;
  value?: string;
  hint?: string;
  error?: string | undefined;
}): Html {
  const id = fieldId(options.name);
  return html`<p class="field check${options.error ? " invalid" : ""}">
    <input
      id="${id}"
      type="checkbox"
      name="${options.name}"
      value="${options.value ?? "on"}"
      ${options.checked ? html`checked` : ""}
    />
    <label for="${id}">${options.label}</label>
    ${help(id, options)}
  </p>`;
}

/** The hidden field carrying the version a page was rendered from (sent as If-Match). */
export function versionField(version: number): Html {
  return html`<input type="hidden" name="version" value="${version}" />`;
}

/** The version a form was rendered from, or null when absent or not a positive integer. */
export function postedVersion(form: PostedForm): number | null {
  const text = one(form, "version");
  return /^[1-9]\d{0,14}$/.test(text) ? Number(text) : null;
}
