/**
 * Lists in the admin (docs/admin.md "Lists"; the API's `/lists`, docs/api.md "Lists"): key, name,
 * and members uploaded as a CSV file or pasted — one member per line, or the first column of a
 * CSV. Pages show how many members a list has, never the members (they are private: docs/api.md
 * "Lists"). An update without new members keeps the stored ones; new members replace them or are
 * added to them.
 */
import { html } from "hono/html";
import {
  ListCreateSchema,
  ListUpdateSchema,
  type ListJson,
  type ListSummaryJson,
} from "../api/schemas/lists";
import { MAX_LIST_VALUES } from "../api/schemas/lists";
import { listResource } from "../api/services/lists";
import { MAX_LIST_MEMBERS_BYTES } from "../edge/list-members";
import { mapDetails, resourceCalls, type ContentKind } from "./content-kind";
import { checkbox, field, fieldId, one, select, textarea } from "./forms";

interface ListState {
  key: string;
  name: string;
  /** Members pasted (as typed). */
  values: string;
  /** The uploaded file's text ("" when none was chosen). */
  file: string;
  header: boolean;
  mode: "replace" | "add";
  clear: boolean;
}

/**
 * A list form's largest body: the most one environment may publish as members JSON (8 MiB,
 * docs/datafile.md "Lists") — a CSV of more members than that could never be stored.
 */
export const MAX_LIST_FORM_BYTES = MAX_LIST_MEMBERS_BYTES;

/** The field delimiter of a CSV: a tab or a semicolon when the first line has one and no comma. */
function delimiterOf(text: string): string {
  const firstLine = text.slice(0, text.search(/\r|\n|$/));
  if (firstLine.includes("\t")) return "\t";
  if (firstLine.includes(";") && !firstLine.includes(",")) return ";";
  return ",";
}

/**
 * The first field of every record of a CSV (RFC 4180: quoted fields may hold delimiters, line
 * breaks and doubled quotes; CRLF, LF or CR ends a record). Plain lines are records of one field.
 */
export function firstColumn(text: string): string[] {
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const delimiter = delimiterOf(source);
  const out: string[] = [];
  let i = 0;
  while (i < source.length) {
    let value = "";
    if (source[i] === '"') {
      i++;
      while (i < source.length) {
        if (source[i] === '"') {
          if (source[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += source[i];
        i++;
      }
    }
    // The rest of the first field (unquoted text, or what follows a closing quote).
    while (i < source.length && source[i] !== delimiter && source[i] !== "\n" && source[i] !== "\r")
      value += source[i++];
    out.push(value);
    // Skip the record's other fields, quotes respected.
    let quoted = false;
    while (i < source.length) {
      const c = source[i];
      if (c === '"') quoted = !quoted;
      else if (!quoted && (c === "\n" || c === "\r")) break;
      i++;
    }
    if (source[i] === "\r" && source[i + 1] === "\n") i += 2;
    else if (i < source.length) i++;
  }
  return out;
}

/** Members from a file or pasted text: first column, trimmed, empty ones and repeats left out. */
export function membersOf(text: string, header: boolean): string[] {
  const rows = firstColumn(text).map((v) => v.trim());
  const seen = new Set<string>();
  for (const member of header ? rows.slice(1) : rows) if (member !== "") seen.add(member);
  return [...seen];
}

/** The list kind. */
export const listKind: ContentKind<ListJson, ListSummaryJson, ListState, null> = {
  plural: "lists",
  singular: "list",
  title: "Lists",
  about: html`Members for the <code>in_list</code> match of audiences, e.g. customer ids: uploaded
    as a CSV file or pasted (the API's <code>/lists</code>, docs/api.md "Lists"). Members are
    private: only their number is shown.`,
  calls: resourceCalls(listResource, { create: ListCreateSchema, update: ListUpdateSchema }),
  archivable: false,
  multipart: true,
  maxBodyBytes: MAX_LIST_FORM_BYTES,
  load: async () => null,
  labelHeader: "Key",
  label: (item) => item.key,
  columns: [
    { header: "Name", cell: (item) => item.name },
    { header: "Members", numeric: true, cell: (item) => item.valueCount.toLocaleString("en-US") },
  ],
  blank: () => ({
    key: "",
    name: "",
    values: "",
    file: "",
    header: false,
    mode: "replace",
    clear: false,
  }),
  fromJson: (json) => ({
    key: json.key,
    name: json.name,
    values: "",
    file: "",
    header: false,
    mode: "replace",
    clear: false,
  }),
  read: (form) => ({
    key: one(form, "key"),
    name: one(form, "name"),
    values: one(form, "values"),
    file: one(form, "file"),
    header: form.has("header"),
    mode: one(form, "mode") === "add" ? "add" : "replace",
    clear: form.has("clear"),
  }),
  body(state, op, current) {
    const members = [
      ...new Set([...membersOf(state.file, state.header), ...membersOf(state.values, false)]),
    ];
    let values: string[] | undefined;
    if (op === "create") values = members;
    else if (state.clear) values = [];
    else if (members.length > 0)
      values =
        state.mode === "add" ? [...new Set([...(current?.values ?? []), ...members])] : members;
    const body = { key: state.key.trim(), name: state.name, ...(values ? { values } : {}) };
    return {
      body,
      // A member's problem (`$.body.values[5]`) is shown beside the members, naming the member.
      remap: (error) =>
        mapDetails(error, (detail) => {
          const match = /^\$\.body\.values\[(\d+)\]/.exec(detail.path);
          if (!match) return detail;
          const member = values?.[Number(match[1])] ?? "";
          const shown = member.length > 40 ? `${member.slice(0, 40)}…` : member;
          return {
            path: "$.body.values",
            message: `member ${Number(match[1]) + 1} (${JSON.stringify(shown)}): ${detail.message}`,
          };
        }),
    };
  },
  fields(state, errors, _extra, _ctx, current) {
    const fileId = fieldId("file");
    const editing = current !== null;
    return html`${field({ name: "key", label: "Key", value: state.key, error: errors.get("key"), required: true, hint: "1–64 letters, digits, _ . - (unique in the project)." })}
      ${field({ name: "name", label: "Name", value: state.name, error: errors.get("name") })}
      <fieldset>
        <legend>Members</legend>
        <p class="hint">
          One member per line, or the first column of a CSV (comma, semicolon or tab). Empty lines
          and repeats are left out; at most ${MAX_LIST_VALUES.toLocaleString("en-US")} members of at
          most 256 characters. The file's members and the pasted ones are taken together.
          ${
            current
              ? `Now ${current.valueCount.toLocaleString("en-US")} ${current.valueCount === 1 ? "member" : "members"}; leave both empty to keep them.`
              : ""
          }
        </p>
        ${errors.get("values") ? html`<p class="field-error" role="alert">${errors.get("values")}</p>` : ""}
        <p class="field">
          <label for="${fileId}">CSV or text file</label>
          <input
            id="${fileId}"
            type="file"
            name="file"
            accept=".csv,.txt,text/csv,text/plain"
            aria-describedby="${fileId}-hint"
          />
          <span class="hint" id="${fileId}-hint"
            >A file must be chosen again after a refused form.</span
          >
        </p>
        ${checkbox({ name: "header", label: "The file's first line is a header", checked: state.header })}
        ${textarea({ name: "values", label: "Or paste members", value: state.values, rows: 6 })}
        ${
          editing
            ? html`${select({
                name: "mode",
                label: "New members",
                value: state.mode,
                options: [
                  { value: "replace", label: "replace the current members" },
                  { value: "add", label: "are added to the current members" },
                ],
              })}
              ${checkbox({ name: "clear", label: "Remove every member", checked: state.clear })}`
            : ""
        }
      </fieldset>`;
  },
  summary(json) {
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
          <th scope="row">Members</th>
          <td data-members="${json.valueCount}">${json.valueCount.toLocaleString("en-US")}</td>
        </tr>
      </tbody>
    </table>`;
  },
};
