/**
 * Condition trees as form rows (docs/admin.md "Condition rows"): the and/or/not trees of pages and
 * audiences (src/api/schemas/condition-tree.ts) edited as one operator ("all of" / "any of") over
 * rows, each row a leaf that may be negated:
 *
 *     ["or", leaf, ["not", leaf], leaf]
 *
 * A stored tree of any other shape (nested groups, a top-level "not") is edited as JSON, so the
 * form never rewrites what it cannot show. Rows are named `conditions[i].<field>` after the form's
 * rows, not the tree's positions: the tree leaves out blank and removed rows and wraps negated
 * ones, so the API's problem paths (`$.body.conditions[2][1].value`) are mapped back to rows here.
 */
import { html } from "hono/html";
import { unprocessable, type ApiError } from "../api/errors";
import { mapDetails } from "./content-kind";
import { checkbox, one, select, textarea, type PostedForm } from "./forms";
import type { Html } from "./ui";

/** The body field (and form field) of the tree. */
export const CONDITIONS = "conditions";
/**
 * Most rows the form shows (far beyond a useful page or audience). A tree with more is edited as
 * JSON instead, never cut: the save would otherwise drop the extra conditions.
 */
export const MAX_ROWS = 200;

/** The top-level operator of a flat tree: "all of" (`and`) or "any of" (`or`). */
export type TreeOperator = "and" | "or";
/** A row's fields as typed. */
export type RowValues = Record<string, string>;
/** One row: a leaf's fields as typed, and whether it is negated (`["not", leaf]`). */
export interface ConditionRow {
  not: boolean;
  values: RowValues;
}
/** A form's conditions: rows under an operator, or a tree as JSON text (with a notice why). */
export type ConditionsState =
  | { mode: "rows"; operator: TreeOperator; rows: ConditionRow[] }
  | { mode: "json"; text: string; notice: string | null };

/** How one kind of leaf becomes a row and back. */
export interface LeafCodec {
  /** The row's field names (`match`, `value`…); the first one takes problems of the leaf itself. */
  fields: readonly string[];
  /** A leaf as row values, or null when a row cannot show it exactly. */
  toRow(leaf: unknown): RowValues | null;
  toLeaf(values: RowValues): unknown;
  /** A row left empty: not part of the tree. */
  isBlank(values: RowValues): boolean;
  blank(): RowValues;
  /** The row field a problem at the leaf's `field` belongs beside (default: that field). */
  fieldFor?(values: RowValues, field: string): string;
}

/** The operator and rows of a flat tree, or null when the tree is not one. */
export function rowsOf(
  tree: unknown,
  codec: LeafCodec,
): { operator: TreeOperator; rows: ConditionRow[] } | null {
  if (!Array.isArray(tree)) return null;
  const [operator, ...operands] = tree as unknown[];
  if (operator !== "and" && operator !== "or") return null;
  const rows: ConditionRow[] = [];
  for (const operand of operands) {
    const negated = Array.isArray(operand);
    if (negated && (operand.length !== 2 || operand[0] !== "not" || Array.isArray(operand[1])))
      return null;
    const values = codec.toRow(negated ? (operand as unknown[])[1] : operand);
    if (values === null) return null;
    rows.push({ not: negated, values });
  }
  return { operator, rows };
}

/** The form state of a stored tree: rows when it is flat, else its JSON. */
export function conditionsStateOf(tree: unknown, codec: LeafCodec): ConditionsState {
  const flat = rowsOf(tree, codec);
  if (flat && flat.rows.length > MAX_ROWS) return tooManyRows(tree, flat.rows.length);
  return flat
    ? { mode: "rows", ...flat }
    : {
        mode: "json",
        text: JSON.stringify(tree, null, 2),
        notice:
          "These conditions are more than one all/any list of (negated) conditions, so they are edited as JSON.",
      };
}

/** A flat tree with more than MAX_ROWS operands, as JSON (rows would cut it); `text` as typed. */
function tooManyRows(tree: unknown, rows: number, text?: string): ConditionsState {
  return {
    mode: "json",
    text: text ?? JSON.stringify(tree, null, 2),
    notice: `These ${rows} conditions are more than the ${MAX_ROWS} rows the form shows, so they are edited as JSON.`,
  };
}

/** A new form's conditions: one empty row. */
export function blankConditions(operator: TreeOperator, codec: LeafCodec): ConditionsState {
  return { mode: "rows", operator, rows: [{ not: false, values: codec.blank() }] };
}

/** The tree of rows (blank rows left out) and, per tree operand, the row it came from. */
export function treeOfRows(
  operator: TreeOperator,
  rows: readonly ConditionRow[],
  codec: LeafCodec,
): { tree: unknown[]; rowOf: number[] } {
  const tree: unknown[] = [operator];
  const rowOf: number[] = [];
  rows.forEach((row, index) => {
    if (codec.isBlank(row.values)) return;
    const leaf = codec.toLeaf(row.values);
    tree.push(row.not ? ["not", leaf] : leaf);
    rowOf.push(index);
  });
  return { tree, rowOf };
}

/**
 * The conditions of a posted form. Its `_refresh` button adds a row (`add`) or switches between
 * rows and JSON (`json`, `rows`); removed rows (`conditions[i].remove`) are dropped and the rest
 * renumbered, so the page shows exactly the rows the body is built from.
 */
export function readConditions(
  form: PostedForm,
  codec: LeafCodec,
  defaultOperator: TreeOperator,
): ConditionsState {
  const refresh = one(form, "_refresh");
  if (one(form, "_mode") === "json") {
    const text = one(form, CONDITIONS);
    if (refresh !== "rows") return { mode: "json", text, notice: null };
    let tree: unknown;
    try {
      tree = JSON.parse(text);
    } catch (error) {
      return {
        mode: "json",
        text,
        notice: `Not valid JSON, so it stays JSON: ${messageOf(error)}`,
      };
    }
    const flat = rowsOf(tree, codec);
    if (flat && flat.rows.length > MAX_ROWS) return tooManyRows(tree, flat.rows.length, text);
    return flat
      ? { mode: "rows", ...flat }
      : {
          mode: "json",
          text,
          notice:
            "These conditions are more than one all/any list of (negated) conditions: they stay JSON.",
        };
  }
  const posted = one(form, CONDITIONS);
  const operator: TreeOperator = posted === "and" || posted === "or" ? posted : defaultOperator;
  const indexes = new Set<number>();
  for (const name of form.keys()) {
    const match = /^conditions\[(\d{1,9})\]\./.exec(name);
    if (match) indexes.add(Number(match[1]));
  }
  const rows: ConditionRow[] = [...indexes]
    .sort((a, b) => a - b)
    .filter((i) => !form.has(`${CONDITIONS}[${i}].remove`))
    .map((i) => ({
      not: form.has(`${CONDITIONS}[${i}].not`),
      values: Object.fromEntries(
        codec.fields.map((f) => [f, one(form, `${CONDITIONS}[${i}].${f}`)]),
      ),
    }));
  if (refresh === "add" && rows.length < MAX_ROWS) rows.push({ not: false, values: codec.blank() });
  // More rows than the form shows (a hand-made post): every one is kept, as JSON, never cut.
  if (rows.length > MAX_ROWS)
    return tooManyRows(treeOfRows(operator, rows, codec).tree, rows.length);
  if (refresh === "json")
    return {
      mode: "json",
      text: JSON.stringify(treeOfRows(operator, rows, codec).tree, null, 2),
      notice: null,
    };
  return { mode: "rows", operator, rows };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The tree a form state sends, and the mapping of the API's problem paths back to its fields:
 * `$.body.conditions[k]` is the row of the k-th operand (`[1]` of a negated row is its leaf);
 * `$.body.conditions[0]` (the operator) and the tree itself are the operator's select. In JSON
 * mode every problem is shown beside the JSON, prefixed by where in the tree it is.
 */
export function conditionsBody(
  state: ConditionsState,
  codec: LeafCodec,
): { tree: unknown; remap: (error: ApiError) => ApiError } {
  if (state.mode === "json") {
    let tree: unknown;
    try {
      tree = JSON.parse(state.text);
    } catch (error) {
      const message = `not valid JSON: ${messageOf(error)}`;
      throw unprocessable(`invalid request body: $.body.${CONDITIONS}: ${message}`, [
        { path: `$.body.${CONDITIONS}`, message },
      ]);
    }
    const root = `$.body.${CONDITIONS}`;
    return {
      tree,
      remap: (error) =>
        mapDetails(error, (detail) =>
          detail.path.startsWith(`${root}[`)
            ? { path: root, message: `${detail.path.slice(7)}: ${detail.message}` }
            : detail,
        ),
    };
  }
  const { rows } = state;
  const { tree, rowOf } = treeOfRows(state.operator, rows, codec);
  return {
    tree,
    remap: (error) =>
      mapDetails(error, (detail) => {
        const match = /^\$\.body\.conditions\[(\d+)\](.*)$/.exec(detail.path);
        if (!match) return detail;
        const operand = Number(match[1]);
        const index = operand === 0 ? undefined : rowOf[operand - 1];
        const row = index === undefined ? undefined : rows[index];
        if (index === undefined || row === undefined)
          return { path: `$.body.${CONDITIONS}`, message: detail.message };
        let rest = match[2] ?? "";
        if (row.not) rest = rest.startsWith("[1]") ? rest.slice(3) : "";
        const leafField = /^\.([A-Za-z]+)/.exec(rest)?.[1];
        const mapped = leafField ? (codec.fieldFor?.(row.values, leafField) ?? leafField) : "";
        const field = codec.fields.includes(mapped) ? mapped : codec.fields[0]!;
        return { path: `$.body.${CONDITIONS}[${index}].${field}`, message: detail.message };
      }),
  };
}

const OPERATOR_OPTIONS = [
  { value: "or", label: "any of these conditions holds (or)" },
  { value: "and", label: "all of these conditions hold (and)" },
];

/** How a kind renders its rows. */
export interface RowRendering {
  legend: string;
  /** Under the legend: what a condition is. */
  hint: Html;
  /** The leaf's inputs of row `index` (named `conditions[index].<field>`). */
  inputs(index: number, row: ConditionRow, errors: Map<string, string>): Html;
  /** Below the row: warnings about it (hosts the Worker never sees). */
  note?(row: ConditionRow): Html;
}

/** The conditions fieldset of a form: the operator and the rows, or the JSON. */
export function conditionsFieldset(
  state: ConditionsState,
  errors: Map<string, string>,
  rendering: RowRendering,
): Html {
  if (state.mode === "json")
    return html`<fieldset data-conditions="json">
      <legend>${rendering.legend}</legend>
      <input type="hidden" name="_mode" value="json" />
      ${state.notice ? html`<p class="warning" role="status">${state.notice}</p>` : ""}
      ${textarea({
        name: CONDITIONS,
        label: "Conditions (JSON)",
        value: state.text,
        rows: 12,
        error: errors.get(CONDITIONS),
        hint: 'An and/or/not tree, as the API takes it: ["or", leaf, ["not", leaf], ["and", …]].',
      })}
    </fieldset>`;
  return html`<fieldset data-conditions="rows">
    <legend>${rendering.legend}</legend>
    <input type="hidden" name="_mode" value="rows" />
    <p class="hint">${rendering.hint}</p>
    ${select({
      name: CONDITIONS,
      label: "Match when",
      value: state.operator,
      options: OPERATOR_OPTIONS,
      error: errors.get(CONDITIONS),
    })}
    ${
      state.rows.length === 0
        ? html`<p class="muted">No conditions yet: add one.</p>`
        : state.rows.map(
            (row, i) =>
              html`<fieldset data-row="${i}">
                <legend>Condition ${i + 1}</legend>
                <div class="row">
                  ${rendering.inputs(i, row, errors)}
                  ${checkbox({
                    name: `${CONDITIONS}[${i}].not`,
                    label: "not (must not hold)",
                    checked: row.not,
                  })}
                  ${checkbox({ name: `${CONDITIONS}[${i}].remove`, label: "remove", checked: false })}
                </div>
                ${rendering.note?.(row) ?? ""}
              </fieldset>`,
          )
    }
  </fieldset>`;
}

/** The buttons that re-render the conditions without saving. */
export function conditionsButtons(state: ConditionsState): Html {
  return state.mode === "json"
    ? html`<button type="submit" name="_refresh" value="rows">Edit as rows</button>`
    : html`<button type="submit" name="_refresh" value="add">Add condition</button>
        <button type="submit" name="_refresh" value="json">Edit as JSON</button>`;
}

/** A stored tree, read-only: its rows in a table when flat, else its JSON. */
export function conditionsSummary(
  tree: unknown,
  codec: LeafCodec,
  describe: (row: ConditionRow) => Html,
  note?: (row: ConditionRow) => Html,
): Html {
  const flat = rowsOf(tree, codec);
  if (!flat) return html`<pre data-conditions="json">${JSON.stringify(tree, null, 2)}</pre>`;
  return html`<p>Match when ${flat.operator === "and" ? "all" : "any"} of:</p>
    <table data-conditions="rows">
      <thead>
        <tr>
          <th scope="col">#</th>
          <th scope="col">Condition</th>
        </tr>
      </thead>
      <tbody>
        ${flat.rows.map(
          (row, i) =>
            html`<tr>
              <th scope="row">${i + 1}</th>
              <td>
                ${row.not ? html`<strong>not</strong> ` : ""}${describe(row)}${note?.(row) ?? ""}
              </td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}
