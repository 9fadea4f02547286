/**
 * Feature flags (docs/flags.md): variables with typed defaults, variations with variable values
 * ("off" built in), and per environment the toggle, targeted delivery rules and what Everyone
 * Else gets. A/B rules are experiments with `flagId` (src/api/services/experiment-plan.ts).
 * src/api/services/datafile-build.ts publishes all of it as Optimizely v4 `featureFlags`,
 * `rollouts` and `experiments`, which the official SDKs' `decide()` read unchanged.
 *
 * Values are stored as the datafile carries them (strings: `"true"`, `"42"`, `"1.5"`, JSON
 * text) and given back typed, so what the API accepted is exactly what the SDKs get; anything
 * an SDK would read differently (an integer beyond 2^53, NaN, a JSON array where the SDK
 * expects an object) is refused with the JSON path of the value.
 */
import { castVariable } from "../../core/features";
import type { FlagCreate, FlagEnvironmentInput, FlagJson, FlagUpdate } from "../schemas/flags";
import { MAX_VARIABLE_VALUE_CHARS, OFF_VARIATION_KEY } from "../schemas/flags";
import { leavesOf, type Seg } from "../schemas/condition-tree";
import { newId } from "../ids";
import { IdKeeper } from "./id-keeper";
import { all } from "../store/db";
import type {
  DeliveryRuleSpec,
  EnvironmentRow,
  ExperimentRow,
  FlagEnvironmentSpec,
  FlagRow,
  FlagVariableSpec,
  FlagVariableType,
  FlagVariationSpec,
} from "../store/rows";
import { parseJson } from "../store/sql";
import { audienceIdsOf } from "./datafile-build";
import type { BuildContext, ResourceSpec } from "./resources";
import { refuseUnreviewedUse } from "./review";
import { conflict } from "../errors";
import { inUse, Problems } from "./validation";

const hasOwn = (object: object, key: string): boolean =>
  Object.prototype.hasOwnProperty.call(object, key);

/** The variation every new flag gets besides "off". */
export const ON_VARIATION_KEY = "on";

/** An environment with no stored settings: the flag is off there. */
export function defaultFlagEnvironment(): FlagEnvironmentSpec {
  return { enabled: false, rules: [], defaultVariationKey: OFF_VARIATION_KEY };
}

/** The parsed JSON columns of a flag row. */
export interface ParsedFlag {
  variables: FlagVariableSpec[];
  variations: FlagVariationSpec[];
  /** environment id → settings */
  environments: Record<string, FlagEnvironmentSpec>;
}

/** Parses a flag row's JSON columns (stored by this module, so trusted to have their shape). */
export function parseFlag(row: FlagRow): ParsedFlag {
  return {
    variables: parseJson<FlagVariableSpec[]>(row.variables, []),
    variations: parseJson<FlagVariationSpec[]>(row.variations, []),
    environments: parseJson<Record<string, FlagEnvironmentSpec>>(row.environments, {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Values

/**
 * A typed API value → the datafile's string form, or a problem. The checks are what makes the
 * SDKs read back exactly the value sent: `parseInt`/`parseFloat` of the string, `JSON.parse`.
 */
export function encodeVariableValue(
  type: FlagVariableType,
  value: unknown,
): { ok: true; text: string } | { ok: false; message: string } {
  switch (type) {
    case "boolean":
      return typeof value === "boolean"
        ? { ok: true, text: String(value) }
        : { ok: false, message: "expected a boolean" };
    case "integer":
      // Beyond 2^53 a JSON number is no longer the integer that was typed, and the SDKs'
      // parseInt would return a different one.
      return typeof value === "number" && Number.isSafeInteger(value)
        ? { ok: true, text: String(value) }
        : {
            ok: false,
            message: `expected an integer between -(2^53 - 1) and 2^53 - 1, got ${JSON.stringify(value) ?? String(value)}`,
          };
    case "double":
      return typeof value === "number" && Number.isFinite(value)
        ? { ok: true, text: String(value) }
        : { ok: false, message: "expected a finite number" };
    case "string":
      if (typeof value !== "string") return { ok: false, message: "expected a string" };
      return value.length > MAX_VARIABLE_VALUE_CHARS
        ? { ok: false, message: `longer than ${MAX_VARIABLE_VALUE_CHARS} characters` }
        : { ok: true, text: value };
    case "json": {
      // Optimizely's JSON variables are objects (getFeatureVariableJSON returns one).
      if (typeof value !== "object" || value === null || Array.isArray(value))
        return { ok: false, message: "expected a JSON object" };
      const text = JSON.stringify(value);
      return text.length > MAX_VARIABLE_VALUE_CHARS
        ? { ok: false, message: `longer than ${MAX_VARIABLE_VALUE_CHARS} characters as JSON` }
        : { ok: true, text };
    }
  }
}

/** Whether a stored value reads back as a value of `type` that encodes to the same text. */
export function holdsType(type: FlagVariableType, text: string): boolean {
  const encoded = encodeVariableValue(type, decodeVariableValue(type, text));
  return encoded.ok && encoded.text === text;
}

/** The datafile's string form of a value → the typed API value (as the SDKs read it). */
export function decodeVariableValue(type: FlagVariableType, text: string): unknown {
  return castVariable({ id: "", key: "", type, defaultValue: text }, text);
}

// ---------------------------------------------------------------------------------------------
// Presenting

/** Environment id → key, and the flags' A/B rules, for presenting several flags at once. */
async function presentFlags(db: D1Database, rows: FlagRow[]): Promise<FlagJson[]> {
  if (rows.length === 0) return [];
  const environments: Array<Pick<EnvironmentRow, "id" | "key" | "project_id">> = [];
  const rules: Array<Pick<ExperimentRow, "id" | "flag_id">> = [];
  // One query per project (D1 caps bound parameters at 100, so no `IN (…every id…)`).
  for (const projectId of new Set(rows.map((r) => r.project_id))) {
    environments.push(
      ...(await all<Pick<EnvironmentRow, "id" | "key" | "project_id">>(
        db,
        "SELECT id, key, project_id FROM environments WHERE project_id = ? ORDER BY created_at, id",
        projectId,
      )),
    );
    rules.push(...(await listFlagExperiments(db, projectId)));
  }
  return rows.map((row) => flagJson(row, environments, rules));
}

/** The project's A/B rules of flags (experiments with `flag_id`), in rule order. */
export async function listFlagExperiments(
  db: D1Database,
  projectId: string,
): Promise<Array<Pick<ExperimentRow, "id" | "key" | "flag_id" | "archived">>> {
  return all<Pick<ExperimentRow, "id" | "key" | "flag_id" | "archived">>(
    db,
    "SELECT id, key, flag_id, archived FROM experiments WHERE project_id = ? AND flag_id IS NOT NULL ORDER BY created_at, id",
    projectId,
  );
}

/** One flag row as the API's JSON: values typed, environments by key (every one of the project). */
export function flagJson(
  row: FlagRow,
  environments: ReadonlyArray<Pick<EnvironmentRow, "id" | "key" | "project_id">>,
  rules: ReadonlyArray<Pick<ExperimentRow, "id" | "flag_id">>,
): FlagJson {
  const flag = parseFlag(row);
  const typeOf = new Map(flag.variables.map((v) => [v.key, v.type]));
  const envJson: FlagJson["environments"] = {};
  for (const environment of environments) {
    if (environment.project_id !== row.project_id) continue;
    const spec = hasOwn(flag.environments, environment.id)
      ? flag.environments[environment.id]!
      : defaultFlagEnvironment();
    envJson[environment.key] = {
      enabled: spec.enabled,
      rules: spec.rules.map((r) => ({ ...r, audienceConditions: r.audienceConditions ?? null })),
      defaultVariationKey: spec.defaultVariationKey,
    };
  }
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    variables: flag.variables.map((v) => ({
      id: v.id,
      key: v.key,
      type: v.type,
      defaultValue: decodeVariableValue(v.type, v.defaultValue),
    })),
    variations: flag.variations.map((v) => ({
      id: v.id,
      key: v.key,
      name: v.name,
      featureEnabled: v.key !== OFF_VARIATION_KEY,
      variables: Object.fromEntries(
        Object.entries(v.variables).map(([key, text]) => [
          key,
          decodeVariableValue(typeOf.get(key) ?? "string", text),
        ]),
      ),
    })),
    environments: envJson,
    experimentIds: rules.filter((r) => r.flag_id === row.id).map((r) => r.id),
    archived: Boolean(row.archived),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

// ---------------------------------------------------------------------------------------------
// Building

/** Reports duplicate keys of a list at `path[i].key`. */
function checkUniqueKeys(
  items: ReadonlyArray<{ key: string }>,
  path: readonly Seg[],
  what: string,
  problems: Problems,
): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.key))
      problems.add([...path, i, "key"], `duplicate ${what} key ${JSON.stringify(item.key)}`);
    seen.add(item.key);
  });
}

function buildVariables(
  body: FlagCreate | FlagUpdate,
  current: ParsedFlag | null,
  problems: Problems,
): FlagVariableSpec[] {
  if (body.variables === undefined) return current?.variables ?? [];
  checkUniqueKeys(body.variables, ["variables"], "variable", problems);
  const ids = new IdKeeper(current?.variables ?? []);
  return body.variables.map((v, i) => {
    const encoded = encodeVariableValue(v.type, v.defaultValue);
    if (!encoded.ok) problems.add(["variables", i, "defaultValue"], encoded.message);
    return {
      id: ids.pick(v.id, v.key),
      key: v.key,
      type: v.type,
      defaultValue: encoded.ok ? encoded.text : "",
    };
  });
}

/** Old variable key → new key, for the variables that kept their id (removed ones are absent). */
function renamesOf(
  before: readonly FlagVariableSpec[],
  after: readonly FlagVariableSpec[],
): Map<string, string> {
  const keyById = new Map(after.map((v) => [v.id, v.key]));
  const out = new Map<string, string>();
  for (const v of before) {
    const key = keyById.get(v.id);
    if (key !== undefined) out.set(v.key, key);
  }
  return out;
}

function buildVariations(
  body: FlagCreate | FlagUpdate,
  current: ParsedFlag | null,
  variables: readonly FlagVariableSpec[],
  problems: Problems,
): FlagVariationSpec[] {
  const byKey = new Map(variables.map((v) => [v.key, v]));
  const ids = new IdKeeper(current?.variations ?? []);
  if (body.variations === undefined) {
    if (current === null)
      return [
        {
          id: ids.pick(undefined, OFF_VARIATION_KEY),
          key: OFF_VARIATION_KEY,
          name: "Off",
          variables: {},
        },
        {
          id: ids.pick(undefined, ON_VARIATION_KEY),
          key: ON_VARIATION_KEY,
          name: "On",
          variables: {},
        },
      ];
    // Variables may have changed: values follow a renamed variable (same id), values of removed
    // variables go with them; a value the variable's new type cannot hold is refused (never
    // silently dropped).
    const renamed = renamesOf(current.variables, variables);
    return current.variations.map((v, i) => {
      const values: Record<string, string> = {};
      for (const [oldKey, text] of Object.entries(v.variables)) {
        const key = renamed.get(oldKey);
        const variable = key === undefined ? undefined : byKey.get(key);
        if (!variable) continue;
        if (!holdsType(variable.type, text))
          problems.add(
            ["variations", i, "variables", variable.key],
            `the stored value ${JSON.stringify(text)} is not a ${variable.type}: send the variations with values of the new type`,
          );
        else values[variable.key] = text;
      }
      return { ...v, variables: values };
    });
  }
  checkUniqueKeys(body.variations, ["variations"], "variation", problems);
  const out: FlagVariationSpec[] = [];
  const offIndex = body.variations.findIndex((v) => v.key === OFF_VARIATION_KEY);
  // "off" is always there and always first: the datafile's disabled variation.
  const off = offIndex >= 0 ? body.variations[offIndex]! : { key: OFF_VARIATION_KEY };
  if (offIndex >= 0 && Object.keys(body.variations[offIndex]!.variables ?? {}).length > 0)
    problems.add(
      ["variations", offIndex, "variables"],
      'the "off" variation is disabled: it always has every variable at its default',
    );
  // A variation sent without a name keeps the one it has.
  const nameOf = (id: string, fallback: string) =>
    current?.variations.find((c) => c.id === id)?.name ?? fallback;
  const offId = ids.pick("id" in off ? off.id : undefined, OFF_VARIATION_KEY);
  out.push({
    id: offId,
    key: OFF_VARIATION_KEY,
    name: ("name" in off ? off.name : undefined) ?? nameOf(offId, "Off"),
    variables: {},
  });
  body.variations.forEach((v, i) => {
    if (v.key === OFF_VARIATION_KEY) return;
    const values: Record<string, string> = {};
    for (const [key, value] of Object.entries(v.variables ?? {})) {
      const variable = byKey.get(key);
      if (!variable) {
        problems.add(
          ["variations", i, "variables", key],
          `unknown variable ${JSON.stringify(key)}`,
        );
        continue;
      }
      const encoded = encodeVariableValue(variable.type, value);
      if (!encoded.ok) problems.add(["variations", i, "variables", key], encoded.message);
      else values[key] = encoded.text;
    }
    const id = ids.pick(v.id, v.key);
    out.push({ id, key: v.key, name: v.name ?? nameOf(id, v.key), variables: values });
  });
  return out;
}

/** The project's environments and audiences a flag's settings may name, and its experiment keys. */
interface FlagReferences {
  environments: Array<Pick<EnvironmentRow, "id" | "key">>;
  audienceIds: ReadonlySet<string>;
  /**
   * Experiment keys of the project: a delivery rule may not take one. The official SDKs keep
   * rollout rules and experiments in one key map (rules last), so an A/B rule sharing a rule's
   * key would be looked up as the always-Running rule and run while Paused.
   */
  experimentKeys: ReadonlySet<string>;
}

function buildEnvironments(
  body: FlagCreate | FlagUpdate,
  current: ParsedFlag | null,
  variations: readonly FlagVariationSpec[],
  references: FlagReferences,
  problems: Problems,
): Record<string, FlagEnvironmentSpec> {
  const variationKeys = new Set(variations.map((v) => v.key));
  const out: Record<string, FlagEnvironmentSpec> = {};
  const envByKey = new Map(references.environments.map((e) => [e.key, e]));
  for (const key of Object.keys(body.environments ?? {}))
    if (!envByKey.has(key))
      problems.add(
        ["environments", key],
        `unknown environment ${JSON.stringify(key)} (${references.environments.map((e) => e.key).join(", ")})`,
      );
  for (const environment of references.environments) {
    const stored =
      current && hasOwn(current.environments, environment.id)
        ? current.environments[environment.id]!
        : defaultFlagEnvironment();
    // Own keys only: an environment keyed "constructor" must not read Object.prototype's.
    const input: FlagEnvironmentInput | undefined =
      body.environments && hasOwn(body.environments, environment.key)
        ? body.environments[environment.key]
        : undefined;
    const path: Seg[] = ["environments", environment.key];
    const spec: FlagEnvironmentSpec = {
      enabled: input?.enabled ?? stored.enabled,
      defaultVariationKey: input?.defaultVariationKey ?? stored.defaultVariationKey,
      rules: stored.rules,
    };
    if (input?.rules !== undefined) {
      checkUniqueKeys(input.rules, [...path, "rules"], "rule", problems);
      const ids = new IdKeeper(stored.rules);
      spec.rules = input.rules.map((rule, i): DeliveryRuleSpec => {
        const at: Seg[] = [...path, "rules", i];
        const audienceConditions = rule.audienceConditions ?? null;
        if (references.experimentKeys.has(rule.key))
          problems.add(
            [...at, "key"],
            `${JSON.stringify(rule.key)} is the key of an experiment of this project: a delivery rule needs its own (the SDKs look both up by key)`,
          );
        for (const { node, path: leaf } of leavesOf(audienceConditions))
          if (typeof node === "string" && !references.audienceIds.has(node))
            problems.add(
              [...at, "audienceConditions", ...leaf],
              `unknown audience ${JSON.stringify(node)} (not an audience of this project)`,
            );
        return {
          id: ids.pick(rule.id, rule.key),
          key: rule.key,
          audienceConditions,
          traffic: rule.traffic,
          variationKey: rule.variationKey ?? ON_VARIATION_KEY,
        };
      });
    }
    // Every variation named must exist: checked on every write, so removing a variation a rule
    // delivers is refused where it is named.
    spec.rules.forEach((rule, i) => {
      if (!variationKeys.has(rule.variationKey))
        problems.add(
          [...path, "rules", i, "variationKey"],
          `${JSON.stringify(rule.variationKey)} is not a variation of this flag`,
        );
    });
    if (!variationKeys.has(spec.defaultVariationKey))
      problems.add(
        [...path, "defaultVariationKey"],
        `${JSON.stringify(spec.defaultVariationKey)} is not a variation of this flag`,
      );
    out[environment.id] = spec;
  }
  // Settings of environments deleted since are dropped with them.
  return out;
}

async function loadReferences(ctx: BuildContext): Promise<FlagReferences> {
  const [environments, audiences, experiments] = await Promise.all([
    all<Pick<EnvironmentRow, "id" | "key">>(
      ctx.db,
      "SELECT id, key FROM environments WHERE project_id = ? ORDER BY created_at, id",
      ctx.projectId,
    ),
    all<{ id: string }>(ctx.db, "SELECT id FROM audiences WHERE project_id = ?", ctx.projectId),
    all<{ key: string }>(ctx.db, "SELECT key FROM experiments WHERE project_id = ?", ctx.projectId),
  ]);
  return {
    environments,
    audienceIds: new Set(audiences.map((a) => a.id)),
    experimentKeys: new Set(experiments.map((x) => x.key)),
  };
}

/**
 * Most characters of variable values one flag may add to one environment's datafile. Every rule
 * repeats the full variable list of the variation it delivers (as Optimizely's datafiles do), so
 * 50 rules × 50 long values would make a datafile of tens of megabytes, which KV refuses and every
 * edge isolate would have to parse.
 */
export const MAX_FLAG_DATAFILE_CHARS = 1_000_000;

/** Refuses settings whose rules would publish more than MAX_FLAG_DATAFILE_CHARS of values. */
function checkPublishedSize(
  variables: readonly FlagVariableSpec[],
  variations: readonly FlagVariationSpec[],
  environments: Readonly<Record<string, FlagEnvironmentSpec>>,
  problems: Problems,
): void {
  const sizeOf = (key: string): number => {
    const variation = variations.find((v) => v.key === key);
    return variables.reduce(
      (sum, v) =>
        sum +
        (variation && hasOwn(variation.variables, v.key)
          ? variation.variables[v.key]!.length
          : v.defaultValue.length),
      0,
    );
  };
  // The A/B rules' variations are at most every variation once more.
  const all = variations.reduce((sum, v) => sum + sizeOf(v.key), 0);
  for (const settings of Object.values(environments)) {
    const rules = settings.rules.reduce((sum, r) => sum + sizeOf(r.variationKey), 0);
    const total = rules + sizeOf(settings.defaultVariationKey) + all;
    if (total > MAX_FLAG_DATAFILE_CHARS) {
      problems.add(
        ["variables"],
        `these values and rules would add about ${Math.round(total / 1000)} thousand characters to a datafile (at most ${MAX_FLAG_DATAFILE_CHARS / 1000} thousand): shorten the values or use fewer rules`,
      );
      return;
    }
  }
}

/** Refuses a change that would strand an A/B rule: its variation keys must stay variations. */
async function checkRuleVariations(
  ctx: BuildContext,
  variations: readonly FlagVariationSpec[],
  problems: Problems,
): Promise<void> {
  const keys = new Set(variations.map((v) => v.key));
  const experiments = await all<Pick<ExperimentRow, "key" | "variations">>(
    ctx.db,
    "SELECT key, variations FROM experiments WHERE flag_id = ? AND archived = 0",
    ctx.id,
  );
  for (const experiment of experiments)
    for (const v of parseJson<Array<{ key: string }>>(experiment.variations, []))
      if (!keys.has(v.key))
        problems.add(
          ["variations"],
          `variation ${JSON.stringify(v.key)} is used by the A/B rule (experiment) ${experiment.key}`,
        );
}

/** A/B rules of the flag Running in some environment (environment keys by experiment key). */
async function runningRules(db: D1Database, flagId: string): Promise<string[]> {
  const rows = await all<{ key: string; environment: string }>(
    db,
    `SELECT e.key AS key, env.key AS environment FROM experiments e
       JOIN experiment_status s ON s.experiment_id = e.id
       JOIN environments env ON env.id = s.environment_id
     WHERE e.flag_id = ? AND s.status = 'Running' ORDER BY e.key, env.key`,
    flagId,
  );
  return rows.map((r) => `${r.key} (${r.environment})`);
}

/** The flag resource (src/api/services/resources.ts). */
export const flagResource: ResourceSpec<FlagRow, FlagJson, FlagCreate, FlagUpdate> = {
  type: "flag",
  table: "flags",
  keyed: true,
  label: (row) => row.key,
  present: presentFlags,
  // Its variations and variables are what its A/B rules serve.
  review: async (ctx, current) =>
    refuseUnreviewedUse(
      ctx,
      (
        await all<{ id: string }>(
          ctx.db,
          "SELECT id FROM experiments WHERE flag_id = ?",
          current.id,
        )
      ).map((x) => x.id),
      `flag ${current.key}`,
    ),
  async build(ctx, input) {
    const { body } = input;
    const current = input.current ? parseFlag(input.current) : null;
    const problems = new Problems();
    const references = await loadReferences(ctx);
    const variables = buildVariables(body, current, problems);
    const variations = buildVariations(body, current, variables, problems);
    const environments = buildEnvironments(body, current, variations, references, problems);
    if (input.kind === "update") await checkRuleVariations(ctx, variations, problems);
    checkPublishedSize(variables, variations, environments, problems);
    problems.throwIfAny();
    const archived = input.kind === "update" ? input.body.archived : undefined;
    if (archived === true && input.current?.archived !== 1) {
      const running = await runningRules(ctx.db, ctx.id);
      if (running.length > 0)
        throw conflict(
          `flag ${input.current?.key ?? ""} has A/B rules running in ${running.join(", ")}; pause them first`,
          { running },
        );
    }
    const row: FlagRow = {
      id: ctx.id,
      project_id: ctx.projectId,
      key: body.key ?? input.current?.key ?? "",
      name: body.name ?? input.current?.name ?? "",
      description: body.description ?? input.current?.description ?? "",
      variables: JSON.stringify(variables),
      variations: JSON.stringify(variations),
      environments: JSON.stringify(environments),
      rollout_id: input.current?.rollout_id ?? newId(),
      default_rule_id: input.current?.default_rule_id ?? newId(),
      archived: archived !== undefined ? (archived ? 1 : 0) : (input.current?.archived ?? 0),
      version: input.current?.version ?? 1,
      created_at: input.current?.created_at ?? ctx.now,
      updated_at: ctx.now,
    };
    return { row };
  },
  async beforeDelete(ctx, row) {
    const rules = await all<Pick<ExperimentRow, "id" | "key">>(
      ctx.db,
      "SELECT id, key FROM experiments WHERE flag_id = ?",
      row.id,
    );
    if (rules.length > 0)
      throw inUse(
        `flag ${row.key}`,
        rules.map((x) => ({ type: "experiment", id: x.id, key: x.key })),
      );
  },
};

/** Flags of the project whose delivery rules (in any environment) name `audienceId`. */
export async function flagsUsingAudience(
  db: D1Database,
  projectId: string,
  audienceId: string,
): Promise<Array<{ type: string; id: string; key: string }>> {
  const [rows, environments] = await Promise.all([
    all<FlagRow>(db, "SELECT * FROM flags WHERE project_id = ?", projectId),
    all<{ id: string }>(db, "SELECT id FROM environments WHERE project_id = ?", projectId),
  ]);
  // Settings of deleted environments stay in the row until its next write: they publish nothing.
  const live = new Set(environments.map((e) => e.id));
  return rows
    .filter((row) =>
      Object.entries(parseFlag(row).environments).some(
        ([environmentId, env]) =>
          live.has(environmentId) &&
          env.rules.some((rule) => audienceIdsOf(rule.audienceConditions).includes(audienceId)),
      ),
    )
    .map((row) => ({ type: "flag", id: row.id, key: row.key }));
}
