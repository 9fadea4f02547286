/**
 * The flag page's forms as data (docs/admin.md "Feature flags"): what each form of a flag holds —
 * texts as typed, so a refused form comes back as it was sent — how it is read from a posted form,
 * filled from a flag as the API presents it (src/api/schemas/flags.ts `FlagJson`), and turned into
 * the body of `PATCH /flags/{id}` (or of the experiment that is an A/B rule). The pages that
 * render and post it are src/admin/flag-pages.ts.
 *
 * Field names are the body's own JSON paths without `$.body.` (`environments.production.rules[0]
 * .traffic`, `variations[2].variables.max_items`), written by the same `formatPath` as the API's
 * problems, so a 422 detail lands beside its field with no mapping. Rows are never left out of a
 * body (a row is removed with its button, which renders the form again), so the form's row i is
 * the body's index i.
 *
 * Typed values are parsed here from the text typed, never through a lossy step: an integer is
 * sent as a number only when it is a safe integer, otherwise as the text typed, which the API
 * refuses with its own message beside the field — a form never rounds 9007199254740993 to
 * 9007199254740992 behind the user's back. The checks only the form can make (a traffic
 * percentage, JSON text, numbers a JSON object would change) are reported like the API's, as 422
 * problems at the field's path. Textareas' line breaks are read as `\n` (browsers send CRLF).
 */
import { FLAG_VARIABLE_TYPES, OFF_VARIATION_KEY, type FlagJson } from "../api/schemas/flags";
import type { Seg } from "../api/schemas/condition-tree";
import { encodeVariableValue } from "../api/services/flags";
import type { Problems } from "../api/services/validation";
import { formatPath } from "../core/problem";
import { numberOrText } from "./content-kind";
import { one, type PostedForm } from "./forms";

/** A variable type of the API (`boolean`, `integer`, `double`, `string`, `json`). */
export type VariableType = (typeof FLAG_VARIABLE_TYPES)[number];

/** Most rows a posted form is read for: far past the API's limits (50), which it then names. */
const MAX_ROWS = 200;

/**
 * The form field name of a body path: `pathName("environments", "production", "rules", 0, "key")`
 * → `environments.production.rules[0].key` (src/admin/forms.ts `fieldNameOf` of the API's
 * `$.body…` path; keys that are not identifiers are quoted the same way: `variables["max-items"]`).
 */
export function pathName(...segments: Seg[]): string {
  return formatPath(segments).replace(/^\$\.?/, "");
}

// ---------------------------------------------------------------------------------------------
// State

/** The key, name and description form (and the create form). */
export interface DetailsState {
  key: string;
  name: string;
  description: string;
}

/** One row of the variables form. */
export interface VariableRow {
  /** The stored variable's id ("" for a new row): keeps the id when the key changes. */
  id: string;
  key: string;
  type: string;
  /** The default value as typed (JSON text for `json`). */
  value: string;
}

/**
 * A variation's value of one variable, as its input holds it: the text typed is the variation's
 * own value; an empty input (a boolean's "the default" option) leaves the variable at its default
 * (nothing is stored for it). One input, so nothing typed can be overruled by another control.
 */
export interface VariableValue {
  text: string;
  /**
   * A string variable set to the empty text (its box "…: the empty text"), which an empty input
   * cannot say. Ticked with a text typed too, the form is refused (neither is thrown away).
   */
  emptyText: boolean;
}

/** A variable as the variations form shows it: the values are read by these keys. */
export interface VariableRef {
  key: string;
  type: string;
}

/** One row of the variations form. */
export interface VariationRow {
  id: string;
  key: string;
  name: string;
  /** By variable key (the variables the form was rendered with). */
  values: Record<string, VariableValue>;
}

/** One delivery rule of an environment's rules form. */
export interface RuleRow {
  id: string;
  key: string;
  /** "" = everyone, an audience id, or `json:<tree>` for stored conditions kept as they are. */
  audience: string;
  /** Percent as typed ("12.5"). */
  traffic: string;
  variationKey: string;
}

/** An environment's rules form: its ordered delivery rules and what Everyone Else gets. */
export interface EnvironmentRules {
  rules: RuleRow[];
  defaultVariationKey: string;
}

/** The "New A/B rule" form: an experiment with `flagId`, off against one variation, 50/50. */
export interface AbRuleState {
  key: string;
  name: string;
  eventId: string;
  variationKey: string;
}

/** Every form of a flag's page. */
export interface FlagState {
  details: DetailsState;
  variables: VariableRow[];
  variations: VariationRow[];
  /**
   * The variables the variations form shows (and was rendered with, when posted: a stale form
   * comes back with the values typed for its own variables).
   */
  variationVariables: VariableRef[];
  /** By environment key. */
  environments: Record<string, EnvironmentRules>;
  ab: AbRuleState;
}

/** The prefix of an audience option that keeps stored conditions the select cannot show. */
export const KEEP_TREE = "json:";

/**
 * A rule's stored audience conditions as the select's value: "" for everyone, the id for
 * `["or", id]` (what the form writes), else the whole tree, kept as it is.
 */
export function audienceValueOf(tree: unknown): string {
  if (tree === null || tree === undefined) return "";
  if (Array.isArray(tree) && tree.length === 2 && tree[0] === "or" && typeof tree[1] === "string")
    return tree[1];
  return `${KEEP_TREE}${JSON.stringify(tree)}`;
}

/** A value as its input shows it: JSON text for objects, the number's shortest exact text. */
export function valueText(type: string, value: unknown): string {
  if (type === "json") return JSON.stringify(value, null, 2) ?? "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value) ?? "";
}

/** Basis points as the percent the form shows (1250 → "12.5"). */
export const percentText = (basisPoints: number): string => String(basisPoints / 100);

/**
 * A new A/B rule's key: the flag's key with `_test`, else `_test2`, `_test3` … — the first that
 * no key in `taken` has (cut to the 64 characters a key may have).
 */
export function freeAbKey(flagKey: string, taken: ReadonlySet<string>): string {
  const keyWith = (suffix: string) => `${flagKey.slice(0, 64 - suffix.length)}${suffix}`;
  for (let n = 1; n <= 1000; n++) {
    const key = keyWith(n === 1 ? "_test" : `_test${n}`);
    if (!taken.has(key)) return key;
  }
  return keyWith("_test");
}

/** The first variation a visitor can be switched on to: "on" when there is one. */
function firstEnabledKey(json: FlagJson): string {
  const keys = json.variations.map((v) => v.key).filter((k) => k !== OFF_VARIATION_KEY);
  return keys.includes("on") ? "on" : (keys[0] ?? "");
}

/** A variation's own value (`own`) as its input shows it; absent: the default (empty input). */
function variationValueOf(type: string, own: boolean, value: unknown): VariableValue {
  if (!own) return { text: "", emptyText: false };
  return { text: valueText(type, value), emptyText: type === "string" && value === "" };
}

/**
 * Every form of the flag filled from the flag as the API presents it; the A/B rule form suggests
 * a key none of `takenKeys` has (the project's experiments, the flag's delivery rules).
 */
export function stateOfFlag(json: FlagJson, takenKeys: ReadonlySet<string> = new Set()): FlagState {
  const environments: Record<string, EnvironmentRules> = {};
  for (const [key, settings] of Object.entries(json.environments))
    environments[key] = {
      defaultVariationKey: settings.defaultVariationKey,
      rules: settings.rules.map((r) => ({
        id: r.id,
        key: r.key,
        audience: audienceValueOf(r.audienceConditions),
        traffic: percentText(r.traffic),
        variationKey: r.variationKey,
      })),
    };
  return {
    details: { key: json.key, name: json.name, description: json.description },
    variables: json.variables.map((v) => ({
      id: v.id,
      key: v.key,
      type: v.type,
      value: valueText(v.type, v.defaultValue),
    })),
    variations: json.variations.map((v) => ({
      id: v.id,
      key: v.key,
      name: v.name,
      values: Object.fromEntries(
        json.variables.map((variable) => [
          variable.key,
          variationValueOf(
            variable.type,
            Object.hasOwn(v.variables, variable.key),
            v.variables[variable.key],
          ),
        ]),
      ),
    })),
    variationVariables: json.variables.map((v) => ({ key: v.key, type: v.type })),
    environments,
    ab: {
      key: freeAbKey(json.key, takenKeys),
      name: "",
      eventId: "",
      variationKey: firstEnabledKey(json),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading posted forms

/**
 * A textarea's text with its line breaks as `\n`: browsers send them as CRLF, so without this an
 * unchanged save would turn every `\n` of a description or a string value into `\r\n`.
 */
export const textareaText = (text: string): string => text.replace(/\r\n?/g, "\n");

/** The name of a string variable's "the empty text" box of a variation. */
export function emptyTextName(variation: number, variableKey: string): string {
  return `_empty.${pathName("variations", variation, "variables", variableKey)}`;
}

/** The hidden field naming the variables the variations form was rendered with (JSON). */
export const VARIATION_VARIABLES = "_variables";

/** The variables a posted variations form was rendered with; `fallback` when it names none. */
function postedVariables(form: PostedForm, fallback: readonly VariableRef[]): VariableRef[] {
  if (!form.has(VARIATION_VARIABLES)) return [...fallback];
  try {
    const parsed: unknown = JSON.parse(one(form, VARIATION_VARIABLES));
    if (
      Array.isArray(parsed) &&
      parsed.every(
        (v: unknown) =>
          typeof v === "object" &&
          v !== null &&
          typeof (v as VariableRef).key === "string" &&
          typeof (v as VariableRef).type === "string",
      )
    )
      return (parsed as VariableRef[]).map((v) => ({ key: v.key, type: v.type }));
  } catch {
    // A form that does not name them is read by the flag's variables.
  }
  return [...fallback];
}

/** How many rows a posted list has: indexes 0, 1, … as long as `<list>[i].<probe>` was posted. */
function rowCount(form: PostedForm, list: (i: number) => string): number {
  let n = 0;
  while (n < MAX_ROWS && form.has(list(n))) n++;
  return n;
}

/** The key, name and description form as posted. */
export function readDetails(form: PostedForm): DetailsState {
  return {
    key: one(form, "key"),
    name: one(form, "name"),
    description: textareaText(one(form, "description")),
  };
}

/** The variables form as posted. */
export function readVariables(form: PostedForm): VariableRow[] {
  const at = (i: number, name: string) => one(form, pathName("variables", i, name));
  const n = rowCount(form, (i) => pathName("variables", i, "key"));
  return Array.from({ length: n }, (_, i) => ({
    id: at(i, "id"),
    key: at(i, "key"),
    type: at(i, "type"),
    value: textareaText(at(i, "defaultValue")),
  }));
}

/**
 * The variations form: each variation's values of the variables the form was rendered with (its
 * hidden `_variables`; else `fallback`, the flag's variables).
 */
export function readVariations(
  form: PostedForm,
  fallback: readonly VariableRef[],
): { variables: VariableRef[]; rows: VariationRow[] } {
  const variables = postedVariables(form, fallback);
  const at = (i: number, name: string) => one(form, pathName("variations", i, name));
  const n = rowCount(form, (i) => pathName("variations", i, "key"));
  const rows = Array.from({ length: n }, (_, i) => ({
    id: at(i, "id"),
    key: at(i, "key"),
    name: at(i, "name"),
    values: Object.fromEntries(
      variables.map((v) => [
        v.key,
        {
          text: textareaText(one(form, pathName("variations", i, "variables", v.key))),
          emptyText: form.has(emptyTextName(i, v.key)),
        },
      ]),
    ),
  }));
  return { variables, rows };
}

/** The rules form of `environment` as posted. */
export function readRules(form: PostedForm, environment: string): EnvironmentRules {
  const at = (i: number, name: string) =>
    one(form, pathName("environments", environment, "rules", i, name));
  const n = rowCount(form, (i) => pathName("environments", environment, "rules", i, "key"));
  return {
    rules: Array.from({ length: n }, (_, i) => ({
      id: at(i, "id"),
      key: at(i, "key"),
      audience: at(i, "audienceConditions"),
      traffic: at(i, "traffic"),
      variationKey: at(i, "variationKey"),
    })),
    defaultVariationKey: one(form, pathName("environments", environment, "defaultVariationKey")),
  };
}

/** The "New A/B rule" form as posted. */
export function readAbRule(form: PostedForm): AbRuleState {
  return {
    key: one(form, "ab.key"),
    name: one(form, "ab.name"),
    eventId: one(form, "ab.eventId"),
    variationKey: one(form, "ab.variationKey"),
  };
}

// ---------------------------------------------------------------------------------------------
// Row buttons

/** A row button of a posted form (`_add`, `_remove=2`, `_move=up:2`, `_refresh`), if any. */
export type RowControl =
  | { kind: "add" }
  | { kind: "remove"; index: number }
  | { kind: "move"; index: number; by: -1 | 1 }
  | { kind: "refresh" };

/** The row button that posted a form, if one did (none: a save). */
export function rowControlOf(form: PostedForm): RowControl | null {
  if (form.has("_add")) return { kind: "add" };
  const remove = /^\d{1,4}$/.exec(one(form, "_remove"));
  if (remove) return { kind: "remove", index: Number(remove[0]) };
  const move = /^(up|down):(\d{1,4})$/.exec(one(form, "_move"));
  if (move) return { kind: "move", index: Number(move[2]), by: move[1] === "up" ? -1 : 1 };
  if (form.has("_refresh")) return { kind: "refresh" };
  return null;
}

/** Applies a row button to `rows` (in place); `blank` makes an added row. */
export function applyRowControl<T>(rows: T[], control: RowControl, blank: () => T): void {
  if (control.kind === "add") {
    if (rows.length < MAX_ROWS) rows.push(blank());
  } else if (control.kind === "remove") {
    if (control.index < rows.length) rows.splice(control.index, 1);
  } else if (control.kind === "move") {
    const to = control.index + control.by;
    if (control.index < rows.length && to >= 0 && to < rows.length)
      [rows[control.index], rows[to]] = [rows[to]!, rows[control.index]!];
  }
}

/** An added variable row (a boolean until another type is chosen). */
export const blankVariable = (): VariableRow => ({ id: "", key: "", type: "boolean", value: "" });

/** An added variation row: every variable at its default. */
export function blankVariation(variables: ReadonlyArray<{ key: string }>): VariationRow {
  return {
    id: "",
    key: "",
    name: "",
    values: Object.fromEntries(variables.map((v) => [v.key, { text: "", emptyText: false }])),
  };
}

/** An added rule: everyone, 100 %, delivering `variationKey`. */
export function blankRule(variationKey: string): RuleRow {
  return { id: "", key: "", audience: "", traffic: "100", variationKey };
}

// ---------------------------------------------------------------------------------------------
// Values

const isVariableType = (type: string): type is VariableType =>
  (FLAG_VARIABLE_TYPES as readonly string[]).includes(type);

/**
 * A decimal number's exact value as text — sign, significant digits, power of ten: "1.50e2",
 * "150" and "150.0" are all "15e1" — so two texts name the same number exactly when these are
 * equal (no floating point involved; the exponent is a BigInt, so "1e99999999999999999999" too).
 */
export function exactDecimal(text: string): string {
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match) return text;
  const [, sign = "", whole = "", fraction = "", exponentText = "0"] = match;
  const all = `${whole}${fraction}`.replace(/^0+/, "");
  if (all === "") return "0";
  const digits = all.replace(/0+$/, "");
  const exponent =
    BigInt(exponentText) - BigInt(fraction.length) + BigInt(all.length - digits.length);
  return `${sign === "-" ? "-" : ""}${digits}e${exponent}`;
}

/**
 * The number literals of JSON text (outside its strings) that JSON.parse would change: the
 * double it reads is not the number typed (`9007199254740993`, `9007199254740993.0`,
 * `0.10000000000000000001`), or is no number at all (`1e400` is Infinity, which JSON writes as
 * null). A literal whose double is the same number written another way (`1.0`, `1e2`,
 * `9007199254740994`, `0.1`: the double JSON writes back is the literal's value) passes.
 */
export function inexactNumbers(text: string): Array<{ literal: string; value: number }> {
  const outsideStrings = text.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const out: Array<{ literal: string; value: number }> = [];
  for (const [literal] of outsideStrings.matchAll(/-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g)) {
    const value = Number(literal);
    if (!Number.isFinite(value) || exactDecimal(String(value)) !== exactDecimal(literal))
      out.push({ literal, value });
  }
  return out;
}

/**
 * The typed value of a value's text. A text that is not a value of the type is kept as typed
 * (an integer beyond 2^53 − 1 stays the text "9007199254740993", never a rounded number) and
 * checked with the API's own value check (src/api/services/flags.ts `encodeVariableValue`), whose
 * message quotes it; JSON the form cannot parse, or would round, is a problem of its own. Problems
 * go to `problems` at `path`, so every value of a form is reported at once.
 */
export function parseVariableValue(
  type: string,
  text: string,
  problems: Problems,
  path: Seg[],
): unknown {
  // An unknown type is the API's to name (beside the type select); the value goes as typed.
  if (!isVariableType(type)) return text;
  const value = typedValue(type, text, problems, path);
  if (value.checked) {
    const encoded = encodeVariableValue(type, value.value);
    if (!encoded.ok) problems.add(path, encoded.message);
  }
  return value.value;
}

/** The value of a text; `checked: false` when a problem was already reported for it. */
function typedValue(
  type: VariableType,
  text: string,
  problems: Problems,
  path: Seg[],
): { value: unknown; checked: boolean } {
  const checked = (value: unknown) => ({ value, checked: true });
  switch (type) {
    case "boolean":
      return checked(text === "true" ? true : text === "false" ? false : text);
    case "integer": {
      const trimmed = text.trim();
      // Number() of an integer text beyond 2^53 − 1 rounds: only a safe integer becomes a number.
      if (/^[+-]?\d{1,20}$/.test(trimmed) && Number.isSafeInteger(Number(trimmed)))
        return checked(Number(trimmed));
      return checked(text);
    }
    case "double": {
      const value = numberOrText(text);
      return checked(value === null ? text : value);
    }
    case "string":
      return checked(text);
    case "json": {
      if (text.trim() === "") {
        problems.add(path, "enter a JSON object, e.g. {}");
        return { value: null, checked: false };
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        problems.add(path, `not valid JSON: ${error instanceof Error ? error.message : "?"}`);
        return { value: null, checked: false };
      }
      const [inexact] = inexactNumbers(text);
      if (inexact) {
        const { literal, value } = inexact;
        problems.add(
          path,
          Number.isFinite(value)
            ? `${literal} cannot be stored exactly: as a JSON number it would become ${String(value)}; write it as a string ("${literal}")`
            : `${literal} is beyond the largest JSON number (about 1.8e308); write it as a string ("${literal}")`,
        );
        return { value: parsed, checked: false };
      }
      return checked(parsed);
    }
  }
}

/**
 * A traffic percentage (0–100, at most two decimals) as basis points; anything else is a
 * problem at `path` (the API's own bound, 0–10000 basis points, would name a number the user
 * never typed).
 */
export function trafficOf(text: string, problems: Problems, path: Seg[]): number | string {
  const trimmed = text.trim();
  if (!/^\d{1,3}(?:\.\d{1,2})?$/.test(trimmed) || Number(trimmed) > 100) {
    problems.add(
      path,
      `${JSON.stringify(text)} is not a percentage from 0 to 100 with at most 2 decimals (e.g. 12.5)`,
    );
    return trimmed;
  }
  return Math.round(Number(trimmed) * 100);
}

/** A rule's audience select value as the API's `audienceConditions`. */
export function audienceConditionsOf(value: string, problems: Problems, path: Seg[]): unknown {
  if (value === "") return null;
  if (!value.startsWith(KEEP_TREE)) return ["or", value];
  try {
    return JSON.parse(value.slice(KEEP_TREE.length)) as unknown;
  } catch {
    problems.add(path, "the stored conditions could not be read back: choose an audience");
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Bodies (PATCH /flags/{id}, POST /projects/{id}/flags, POST …/experiments). Each may add to
// `problems`; the caller throws them before calling the API.

/** The body of the key, name and description form (also the create body). */
export function detailsBody(state: DetailsState): Record<string, unknown> {
  return { key: state.key.trim(), name: state.name, description: state.description };
}

/** The body of the variables form: `variables` replaces the flag's variables. */
export function variablesBody(rows: readonly VariableRow[], problems: Problems) {
  return {
    variables: rows.map((row, i) => ({
      ...(row.id === "" ? {} : { id: row.id }),
      key: row.key.trim(),
      type: row.type,
      defaultValue: parseVariableValue(row.type, row.value, problems, [
        "variables",
        i,
        "defaultValue",
      ]),
    })),
  };
}

/**
 * The text of a variation's own value of `variable`, or null when it follows the default: an
 * empty input (blank, for every type but a string, whose spaces are a value), unless a string's
 * "the empty text" is ticked. That box ticked with a text typed too is a problem at `path`.
 */
export function ownValueText(
  variable: VariableRef,
  value: VariableValue | undefined,
  problems: Problems,
  path: Seg[],
): string | null {
  if (!value) return null;
  if (variable.type !== "string") return value.text.trim() === "" ? null : value.text;
  if (value.text === "") return value.emptyText ? "" : null;
  if (value.emptyText)
    problems.add(
      path,
      `a text is typed and "${variable.key}: the empty text" is ticked: clear the text or untick the box`,
    );
  return value.text;
}

/**
 * The variations (with "off", whose name only is sent: it is disabled, every variable at its
 * default). A value left empty is not sent, so the variation follows the default.
 */
export function variationsBody(
  rows: readonly VariationRow[],
  variables: readonly VariableRef[],
  problems: Problems,
) {
  return {
    variations: rows.map((row, i) => {
      const key = row.key.trim();
      const values: Record<string, unknown> = {};
      if (key !== OFF_VARIATION_KEY)
        for (const variable of variables) {
          const path: Seg[] = ["variations", i, "variables", variable.key];
          const text = ownValueText(variable, row.values[variable.key], problems, path);
          if (text === null) continue;
          values[variable.key] = parseVariableValue(variable.type, text, problems, path);
        }
      return {
        ...(row.id === "" ? {} : { id: row.id }),
        key,
        // Sent as it is, empty too: an unchanged save keeps what is stored.
        name: row.name,
        ...(key === OFF_VARIATION_KEY ? {} : { variables: values }),
      };
    }),
  };
}

/** The body of an environment's rules form: its rules (replaced) and Everyone Else. */
export function rulesBody(environment: string, state: EnvironmentRules, problems: Problems) {
  const at = (i: number, name: string): Seg[] => ["environments", environment, "rules", i, name];
  return {
    environments: {
      [environment]: {
        rules: state.rules.map((rule, i) => ({
          ...(rule.id === "" ? {} : { id: rule.id }),
          key: rule.key.trim(),
          audienceConditions: audienceConditionsOf(
            rule.audience,
            problems,
            at(i, "audienceConditions"),
          ),
          traffic: trafficOf(rule.traffic, problems, at(i, "traffic")),
          variationKey: rule.variationKey,
        })),
        defaultVariationKey: state.defaultVariationKey,
      },
    },
  };
}

/** The share of each arm of a new A/B rule (basis points): an even 50/50 split. */
const HALF = 5000;

/** `POST /projects/{id}/experiments` of a new A/B rule: off against one variation, 50/50. */
export function abRuleBody(state: AbRuleState, flagId: string): Record<string, unknown> {
  return {
    key: state.key.trim(),
    ...(state.name.trim() === "" ? {} : { name: state.name }),
    type: "ab",
    flagId,
    metrics: [{ eventId: state.eventId, aggregator: "unique", winningDirection: "increasing" }],
    variations: [
      { key: OFF_VARIATION_KEY, weight: HALF },
      { key: state.variationKey, weight: HALF },
    ],
  };
}

/**
 * The experiment create's problem paths as the A/B rule form's fields: `key` → `ab.key`, the
 * metric → `ab.eventId`, the second variation → `ab.variationKey`.
 */
export function abFieldOf(path: string): string | null {
  const name = path.replace(/^\$\.body\.?/, "");
  if (name === "key") return "$.body.ab.key";
  if (name === "name") return "$.body.ab.name";
  if (/^metrics(\[0\](\.eventId)?)?$/.test(name)) return "$.body.ab.eventId";
  if (/^variations(\[1\](\.key)?)?$/.test(name)) return "$.body.ab.variationKey";
  return null;
}
