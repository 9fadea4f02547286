/**
 * Parses and validates an untrusted datafile: Optimizely datafile v4 plus Splitstream's `web`
 * extension (docs/datafile.md). Pure: no I/O, no Workers APIs, and no zod at run time.
 *
 * The structure it accepts is the one declared by the zod schemas in `datafile-schema.ts` (the
 * spec, also usable by the management API); the tests check, field by field, that this parser
 * reports every problem zod reports, at the same path, and fills defaults as zod does. It does not
 * run zod itself because the edge parses datafiles on its hot path: on a 1 MB datafile
 * `datafileSchema.safeParse` costs about as much as JSON.parse when warm and ten times that cold
 * (the first parse in a fresh isolate, the one that counts at the edge), and importing zod and
 * building the schemas adds tens of milliseconds to an isolate's start. Instead this is one pass of
 * plain code: static property reads, one shared path stack, nothing allocated per field, structure
 * and meaning checked together, in dependency order (lists, attributes, audiences, experiments,
 * events, flags, web), collecting every problem.
 *
 * Severity policy (`error` = the datafile is rejected, `warning` = reported, the datafile loads):
 * - errors: bad JSON, wrong shapes/types, unsupported version, a `revision` no HTTP header can
 *   carry (REVISION_PATTERN), duplicate ids or keys, dangling references (audience, experiment,
 *   variation, event, page, list, rollout, variable ids),
 *   `endOfRange` not an integer in 0..10000, malformed condition trees and leaves, variable values
 *   the SDK cannot cast at all, invalid regexes, unsafe selectors / attribute names, event-handler
 *   attributes and javascript: URLs in changes, bad redirect URLs, fields a web event or metric
 *   needs, selectors the edge cannot run in changes of experiments with an `immediate` page
 *   (docs/changes.md "Selectors"; a warning with `edgeSelectors: "warning"`, unchecked with
 *   `"off"`);
 * - warnings: what an official SDK loads and evaluates deterministically but that is probably a
 *   mistake — decreasing `endOfRange` (the entry can never be chosen), unknown condition types,
 *   unknown match types and values that do not fit the match type (they evaluate to "unknown"),
 *   unknown experiment statuses and group policies, lossy variable values ("1.5" as integer),
 *   datafile versions 2 and 3, rollout rule keys that collide, and web no-ops.
 *
 * `audiences[].conditions` stays the JSON string it was in the returned datafile (official SDKs
 * JSON.parse it, so a re-serialised datafile must keep it a string); it is parsed here only to
 * validate it. Problems inside it are reported with the path of the string plus the path inside
 * the parsed tree, e.g. `$.audiences[2].conditions[1].match`.
 */
import type { Datafile } from "./datafile-types";
import { edgeSelectorProblem } from "./edge-selector";
import { describeJsonSyntaxError } from "./json-error";
import { formatPath, type Problem } from "./problem";

export type ParseResult =
  | { ok: true; datafile: Datafile; problems: Problem[] } // problems = warnings only
  | { ok: false; problems: Problem[] }; // at least one error (plus any warnings)

/** Problems kept in one report; past this only a count is added (a broken file can have millions). */
export const MAX_PROBLEMS = 1000;
/** Deepest condition tree accepted (the SDKs evaluate trees recursively). */
export const MAX_CONDITION_DEPTH = 64;
/** Longest CSS selector accepted. */
export const MAX_SELECTOR_LENGTH = 1000;
/** Longest datafile `revision` accepted (docs/datafile.md "revision"). */
export const MAX_REVISION_LENGTH = 64;
/**
 * A datafile `revision`: 1 to 64 visible ASCII characters (U+0021–U+007E). The edge sends the
 * revision in headers (`x-ss-revision` to the origin and on the datafile and client-config
 * endpoints, part of the datafile ETag); this keeps out everything a header cannot carry or
 * would silently change (control characters, CR/LF, spaces that get trimmed, non-ASCII), and the
 * length keeps its percent-encoded form within the header's 256 bytes.
 */
export const REVISION_PATTERN = new RegExp(`^[\\x21-\\x7e]{1,${MAX_REVISION_LENGTH}}$`);

// Enumerations of the format. `datafile-schema.ts` builds its zod enums from these.
/** Datafile versions the official SDKs load (DATAFILE_VERSIONS in the JS SDK). */
export const DATAFILE_VERSIONS = ["4", "3", "2"] as const;
export const VARIABLE_TYPES = ["boolean", "integer", "double", "string", "json"] as const;
export const PAGE_ACTIVATIONS = ["immediate", "manual", "url_changed", "dom_changed"] as const;
export const URL_MATCH_TYPES = ["simple", "exact", "substring", "regex"] as const;
/**
 * Match types of `custom_attribute` audience leaves: Optimizely's (docs/datafile.md
 * "Conditions") plus Splitstream's `in_list`, in the order of the docs. The one list: the
 * evaluator (`conditions.ts`) and this parser use it, and the management API's audience schema
 * builds its enum from it. Not in it: `qualified`, the match of Optimizely's ODP segment leaves
 * (`third_party_dimension`), which the parser knows only to warn about and the evaluator treats
 * as false / unknown.
 */
export const AUDIENCE_MATCH_TYPES = [
  "exact",
  "exists",
  "substring",
  "gt",
  "ge",
  "lt",
  "le",
  "semver_eq",
  "semver_gt",
  "semver_ge",
  "semver_lt",
  "semver_le",
  "in_list",
] as const;
/** A match type of a `custom_attribute` audience leaf (`AUDIENCE_MATCH_TYPES`). */
export type MatchType = (typeof AUDIENCE_MATCH_TYPES)[number];
export const CHANGE_TYPES = [
  "attribute",
  "insert_html",
  "move",
  "custom_css",
  "custom_code",
  "redirect",
] as const;
export const INSERT_POSITIONS = ["before", "after", "prepend", "append", "replace"] as const;
/** Where a `move` change puts the element, relative to its target (docs/changes.md "move"). */
export const MOVE_POSITIONS = ["before", "after", "prepend", "append"] as const;
export const REDIRECT_MODES = ["redirect", "rewrite"] as const;
export const WEB_EXPERIMENT_TYPES = ["ab", "multivariate", "split_url"] as const;
export const METRIC_AGGREGATORS = ["unique", "count", "sum"] as const;
export const METRIC_FIELDS = ["revenue", "value"] as const;
export const WINNING_DIRECTIONS = ["increasing", "decreasing"] as const;
/** How a metric's per-visitor totals are capped in results (`capping.type`). */
export const METRIC_CAPPING_TYPES = ["absolute", "percentile"] as const;
/** What a guardrail's harm does (docs/statistics.md "Guardrails"). */
export const GUARDRAIL_ACTIONS = ["mark", "pause"] as const;
export const ALLOCATION_POLICIES = ["manual", "bandit"] as const;
export const WEB_EVENT_TYPES = ["custom", "pageview", "click"] as const;
/** Keys of an `attribute` change's `attributes`; other keys are reported (likely typos). */
export const ATTRIBUTE_CHANGE_KEYS = [
  "text",
  "html",
  "class",
  "addClass",
  "removeClass",
  "style",
  "href",
  "src",
  "hide",
  "remove",
  "set",
  "unset",
] as const;

const MAX_RANGE = 10000;
const KNOWN_STATUSES = new Set(["Running", "Paused", "Not started", "Archived", "Launched"]);
/** A holdout's statuses: the SDK's `HoldoutStatus` (docs/holdouts.md). */
const HOLDOUT_STATUSES = new Set(["Running", "Draft", "Concluded", "Archived"]);
const KNOWN_POLICIES = new Set(["random", "overlapping"]);
/** Match types a leaf may name without a warning about an unknown match ("qualified" gets its own). */
const MATCH_TYPES: ReadonlySet<string> = new Set<string>([...AUDIENCE_MATCH_TYPES, "qualified"]);
const NUMERIC_MATCHES = new Set(["gt", "ge", "lt", "le"]);
const ATTRIBUTE_KEYS = new Set<string>(ATTRIBUTE_CHANGE_KEYS);
const STRING_ATTRIBUTE_KEYS = new Set([
  "text",
  "html",
  "class",
  "addClass",
  "removeClass",
  "style",
  "href",
  "src",
]);
/** Attributes whose value is a URL a browser may navigate to or load (shared with the edge's rewriter). */
export const URL_ATTRIBUTES: ReadonlySet<string> = new Set([
  "href",
  "src",
  "action",
  "formaction",
  "xlink:href",
  "poster",
  "data",
  "cite",
  "background",
  "ping",
]);
/** HTML attribute-name syntax: no controls, whitespace, quotes, `>`, `/` or `=`. */
// eslint-disable-next-line no-control-regex -- excluding control characters is the point
const ATTRIBUTE_NAME = /^[^\s"'>/=\u0000-\u001f\u007f-\u009f]+$/;
/** Fast path for selectors: ids, classes, tags, pseudo-classes and combinators. */
const SIMPLE_SELECTOR = /^[\w#.*:-]+(?:(?:\s+|\s*[>+~]\s*)[\w#.*:-]+)*$/;

type Seg = string | number;
type Obj = Record<string, unknown>;
type Severity = Problem["severity"];

/** One closed set of strings, with its "expected one of …" text. */
interface Choice {
  readonly values: ReadonlySet<unknown>;
  readonly expected: string;
}

function choice(values: readonly string[]): Choice {
  return { values: new Set(values), expected: values.map((v) => JSON.stringify(v)).join(", ") };
}

const VERSION = choice(DATAFILE_VERSIONS);
const VARIABLE_TYPE = choice(VARIABLE_TYPES);
const ACTIVATION = choice(PAGE_ACTIVATIONS);
const URL_MATCH = choice(URL_MATCH_TYPES);
const CHANGE_TYPE = choice(CHANGE_TYPES);
const POSITION = choice(INSERT_POSITIONS);
const MOVE_POSITION = choice(MOVE_POSITIONS);
const REDIRECT_MODE = choice(REDIRECT_MODES);
const WEB_EXPERIMENT_TYPE = choice(WEB_EXPERIMENT_TYPES);
const AGGREGATOR = choice(METRIC_AGGREGATORS);
const METRIC_FIELD = choice(METRIC_FIELDS);
const WINNING_DIRECTION = choice(WINNING_DIRECTIONS);
const METRIC_CAPPING = choice(METRIC_CAPPING_TYPES);
const GUARDRAIL_ACTION = choice(GUARDRAIL_ACTIONS);
const ALLOCATION_POLICY = choice(ALLOCATION_POLICIES);
const WEB_EVENT_TYPE = choice(WEB_EVENT_TYPES);

/** How `parseDatafile` treats what only matters to some of its callers. */
export interface ParseOptions {
  /**
   * The severity of a change the edge cannot run: a selector (or move target) HTMLRewriter does
   * not support, in a change of an experiment with an `immediate` page (docs/changes.md
   * "Selectors"). `"error"` (the default) where a datafile comes from outside — import,
   * `splitstream validate` — so none gets in; `"warning"` where a datafile is built from stored
   * experiments (publish, the admin's explain page): an experiment saved before this check
   * existed must not block every later publish (saving an experiment checks its changes
   * strictly). `"off"` skips the check: the edge, which skips such a change itself (it asks
   * HTMLRewriter) and must not pay for the check on its hot path.
   */
  edgeSelectors?: "error" | "warning" | "off";
}

/** Parses and validates untrusted input (a JSON string, or an already-parsed value). Never throws. */
export function parseDatafile(input: unknown, options: ParseOptions = {}): ParseResult {
  const report = new Report();
  try {
    let value: unknown = input;
    if (typeof input === "string") {
      try {
        value = JSON.parse(input);
      } catch {
        report.add("error", [], describeJsonError(input));
        return report.failed();
      }
    }
    if (!isObj(value)) {
      report.add("error", [], `expected a datafile (a JSON object), got ${describe(value)}`);
      return report.failed();
    }
    const checker = new Checker(report, options.edgeSelectors ?? "error");
    checker.datafile(value);
    if (report.errors > 0) return report.failed();
    const datafile = checker.needsDefaults ? fillDefaults(value) : value;
    return { ok: true, datafile: datafile as unknown as Datafile, problems: report.problems };
  } catch (error) {
    // Defensive: nothing above should throw, but a hostile already-parsed value (getters, proxies)
    // could. Report instead of throwing.
    report.add("error", [], `could not validate datafile: ${errorMessage(error)}`);
    return report.failed();
  }
}

/** The parts of a datafile `checkFragment` checks on their own (see `section-check.ts`). */
export type FragmentKind =
  "webPage" | "webEvent" | "webExperimentChanges" | "audienceConditions" | "urlConditions";

/** What `checkFragment` knows of the datafile around the fragment. */
export interface FragmentContext {
  /** Path of the fragment; every problem path starts with it (e.g. `$.body`). */
  root: string;
  /** Ids of the pages that page references resolve to (none if absent). */
  pageIds?: readonly string[];
  /**
   * The activation (and key, for messages) of pages, by id. With it, a change of an experiment
   * with an `immediate` page whose selector the edge cannot run is an error, as in a datafile;
   * without it, the activations are unknown and that is not checked.
   */
  pages?: ReadonlyArray<{ id: string; key?: string; activation: string }>;
  /** Keys of the lists `in_list` leaves may name; absent: `in_list` values are not checked. */
  listKeys?: readonly string[];
}

/**
 * Runs the checks `parseDatafile` runs on one part of a datafile (`kind`), on `value` alone:
 * same rules, same messages, paths under `context.root` instead of the part's place in a
 * datafile. Identity and cross references to the rest of a datafile are not checked (ids of the
 * fragment, duplicates, references to experiments and events); page and list references are
 * checked against `context`. Returns errors and warnings (at most MAX_PROBLEMS). Never throws.
 * The typed entry points are in `section-check.ts`.
 */
export function checkFragment(
  kind: FragmentKind,
  value: unknown,
  context: FragmentContext,
): Problem[] {
  const report = new Report();
  try {
    new Checker(report).fragment(
      kind,
      value,
      context.pageIds ?? [],
      context.listKeys,
      context.pages ?? [],
    );
  } catch (error) {
    // Defensive, as in parseDatafile: only a hostile value (getters, proxies) gets here.
    report.add("error", [], `could not validate: ${errorMessage(error)}`);
  }
  const { root } = context;
  for (const problem of report.problems) problem.path = root + problem.path.slice(1);
  return report.problems;
}

// ---------------------------------------------------------------------------------------------
// Problems

class Report {
  readonly problems: Problem[] = [];
  errors = 0;
  private dropped = 0;

  /** `path` may be a mutable stack: it is formatted at once. */
  add(severity: Severity, path: readonly Seg[], message: string): void {
    if (severity === "error") this.errors++;
    if (this.problems.length < MAX_PROBLEMS)
      this.problems.push({ path: formatPath(path), message, severity });
    else this.dropped++;
  }

  failed(): { ok: false; problems: Problem[] } {
    const problems = this.problems.slice();
    if (this.dropped > 0) {
      problems.push({
        path: "$",
        message: `${this.dropped} more problem${this.dropped === 1 ? "" : "s"} not listed (limit ${MAX_PROBLEMS})`,
        severity: this.errors > 0 ? "error" : "warning",
      });
    }
    return { ok: false, problems };
  }
}

/**
 * The problem for a text that is not JSON: its position, line and column and what is wrong there,
 * never a piece of the text. V8's own message quotes the text around the error, and a
 * hand-written datafile may hold private list members inline; its problems reach `/_ss/health`
 * and the logs (docs/security.md "List members stay private").
 */
function describeJsonError(text: string): string {
  return `invalid JSON: ${describeJsonSyntaxError(text)}`;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  try {
    return String(error);
  } catch {
    return "unknown error";
  }
}

/** A value's JSON type name, with the value itself when it is a short primitive. */
function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  const type = typeof value;
  if (type === "string" || type === "number" || type === "boolean")
    return `${type} ${preview(value)}`;
  return type;
}

/** A value's JSON type name, without the value (for values that may be private). */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  return typeof value;
}

function preview(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSafeNumber(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && Math.abs(value) <= 2 ** 53;
}

// ---------------------------------------------------------------------------------------------
// The checker

/** An experiment or rollout rule, indexed for the checks that refer to it. */
interface ExperimentInfo {
  node: Obj;
  /** Snapshot of its path. */
  path: Seg[];
  kind: "experiment" | "rule" | "holdout";
  /** Variation ids and keys; undefined when `variations` is not an array (references unchecked). */
  variationIds: string[] | undefined;
  variationKeys: string[] | undefined;
}

/** First occurrences of one kind of identifier, to report repeats. */
class Registry {
  readonly seen = new Map<string, Seg[]>();
  constructor(
    readonly what: string,
    readonly field: string,
    readonly severity: Severity = "error",
  ) {}
}

/** What the leaves of a condition tree are. */
type LeafKind = "audience" | "audienceId" | "url";

class Checker {
  /** The current path: pushed and popped while walking, copied only to report or to keep. */
  private readonly path: Seg[] = [];
  needsDefaults = false;

  private readonly audienceIds = new Set<string>();
  /** Keys of `web.lists`; undefined: `in_list` values are not checked (a fragment without them). */
  private listKeys: Set<string> | undefined = new Set<string>();
  private readonly experiments = new Map<string, ExperimentInfo>();
  private readonly rules = new Map<string, ExperimentInfo>();
  private readonly rollouts = new Map<string, ExperimentInfo[]>();
  private readonly eventIds = new Set<string>();
  private readonly pageIds = new Set<string>();
  /** Key and activation of each page, by id: which changes the edge applies (docs/changes.md). */
  private readonly pages = new Map<string, { key: string; activation: unknown }>();

  constructor(
    private readonly report: Report,
    /** The severity of selectors the edge cannot run (ParseOptions.edgeSelectors). */
    private readonly edgeSeverity: Severity | "off" = "error",
  ) {}

  /** `edgeSelectorProblem` answers by selector: datafiles repeat selectors across variations. */
  private readonly edgeSelectorAnswers = new Map<string, string | undefined>();

  // ---- reporting

  private problem(severity: Severity, message: string, seg?: Seg, seg2?: Seg): void {
    const path = this.path;
    if (seg === undefined) {
      this.report.add(severity, path, message);
      return;
    }
    path.push(seg);
    if (seg2 !== undefined) path.push(seg2);
    this.report.add(severity, path, message);
    if (seg2 !== undefined) path.pop();
    path.pop();
  }

  private error(message: string, seg?: Seg, seg2?: Seg): void {
    this.problem("error", message, seg, seg2);
  }

  private warn(message: string, seg?: Seg, seg2?: Seg): void {
    this.problem("warning", message, seg, seg2);
  }

  /** Reports a missing (undefined) or wrong-typed value at `seg`.`seg2`. */
  private bad(value: unknown, expected: string, seg?: Seg, seg2?: Seg): void {
    this.error(
      value === undefined
        ? `missing required field (expected ${expected})`
        : `expected ${expected}, got ${describe(value)}`,
      seg,
      seg2,
    );
  }

  /** The formatted path of `field` in the element `index` of the array holding the current one. */
  private sibling(index: number, field: string): string {
    const path = this.path.slice(0, -1);
    path.push(index, field);
    return formatPath(path);
  }

  /** Records `value` under `registry`; `at` is the path of the entity holding it. */
  private unique(registry: Registry, value: unknown, at: Seg[]): boolean {
    if (typeof value !== "string") return true;
    const first = registry.seen.get(value);
    if (first === undefined) {
      registry.seen.set(value, at);
      return true;
    }
    const firstPath = formatPath([...first, registry.field]);
    this.report.add(
      registry.severity,
      [...at, registry.field],
      `duplicate ${registry.what} ${preview(value)} (first at ${firstPath})`,
    );
    return false;
  }

  // ---- structure helpers (values are read by the caller, so property loads stay monomorphic)

  private str(value: unknown, seg: Seg): string | undefined {
    if (typeof value === "string") return value;
    this.bad(value, "string", seg);
    return undefined;
  }

  private optStr(value: unknown, seg: Seg): string | undefined {
    if (typeof value === "string") return value;
    if (value !== undefined) this.bad(value, "string", seg);
    return undefined;
  }

  private optBool(value: unknown, seg: Seg): void {
    if (value !== undefined && typeof value !== "boolean") this.bad(value, "boolean", seg);
  }

  private oneOf(value: unknown, set: Choice, seg: Seg, optional = false): string | undefined {
    if (set.values.has(value)) return value as string;
    if (value === undefined) {
      if (!optional) this.error(`missing required field (expected one of ${set.expected})`, seg);
    } else {
      this.error(`expected one of ${set.expected}, got ${preview(value)}`, seg);
    }
    return undefined;
  }

  private arr(value: unknown, seg: Seg): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    this.bad(value, "array", seg);
    return undefined;
  }

  /** An array that may be absent (the output gets `[]`). */
  private arrOrDefault(value: unknown, seg: Seg): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    if (value === undefined) this.needsDefaults = true;
    else this.bad(value, "array", seg);
    return undefined;
  }

  private optArr(value: unknown, seg: Seg): unknown[] | undefined {
    if (Array.isArray(value)) return value;
    if (value !== undefined) this.bad(value, "array", seg);
    return undefined;
  }

  /** An array of strings; bad elements are reported. Returns the array (bad elements included). */
  private strings(
    value: unknown,
    seg: Seg,
    presence: "required" | "optional" | "default",
  ): unknown[] | undefined {
    let items: unknown[] | undefined;
    if (presence === "required") items = this.arr(value, seg);
    else if (presence === "default") items = this.arrOrDefault(value, seg);
    else items = this.optArr(value, seg);
    if (items === undefined) return undefined;
    for (let i = 0; i < items.length; i++) {
      if (typeof items[i] !== "string") this.bad(items[i], "string", seg, i);
    }
    return items;
  }

  /** An object whose values must all be of `type`. */
  private record(
    value: unknown,
    seg: Seg,
    type: "string" | "boolean",
    presence: "required" | "optional" | "default",
  ): Obj | undefined {
    if (!isObj(value)) {
      if (value === undefined) {
        if (presence === "required") this.bad(value, "object", seg);
        else if (presence === "default") this.needsDefaults = true;
      } else {
        this.bad(value, "object", seg);
      }
      return undefined;
    }
    for (const key in value) {
      if (typeof value[key] !== type) this.bad(value[key], type, seg, key);
    }
    return value;
  }

  /** Each element of `items` (at `seg`) must be an object: calls `each` with the path pushed. */
  private each(
    items: unknown[] | undefined,
    seg: Seg,
    each: (item: Obj, index: number) => void,
  ): void {
    if (items === undefined) return;
    const path = this.path;
    path.push(seg);
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      path.push(i);
      if (isObj(item)) each(item, i);
      else this.bad(item, "object");
      path.pop();
    }
    path.pop();
  }

  // ---- a part on its own (checkFragment)

  fragment(
    kind: FragmentKind,
    value: unknown,
    pageIds: readonly string[],
    listKeys: readonly string[] | undefined,
    pages: ReadonlyArray<{ id: string; key?: string; activation: string }>,
  ): void {
    for (const id of pageIds) this.pageIds.add(id);
    for (const page of pages)
      this.pages.set(page.id, { key: page.key ?? page.id, activation: page.activation });
    this.listKeys = listKeys === undefined ? undefined : new Set(listKeys);
    if (kind === "audienceConditions") return this.requiredTree(value, "audience");
    if (kind === "urlConditions") return this.requiredTree(value, "url");
    if (!isObj(value)) return this.bad(value, "object");
    if (kind === "webPage") this.webPage(value, undefined);
    else if (kind === "webEvent") this.webEvent(value, undefined);
    else this.webExperiment(value, undefined);
  }

  // ---- the datafile

  datafile(df: Obj): void {
    const version = df.version;
    if (!VERSION.values.has(version)) {
      if (version === undefined)
        this.error(`missing required field (expected one of ${VERSION.expected})`, "version");
      else
        this.error(
          `unsupported datafile version ${preview(version)}; official SDKs load ${VERSION.expected}`,
          "version",
        );
    } else if (version !== "4") {
      this.warn(
        `datafile version ${version as string} is an old format; Splitstream publishes version 4`,
        "version",
      );
    }
    this.str(df.accountId, "accountId");
    this.str(df.projectId, "projectId");
    const revision = this.str(df.revision, "revision");
    if (revision !== undefined && !REVISION_PATTERN.test(revision))
      this.error(
        `revision ${preview(revision)} cannot be sent in an HTTP header: use 1 to ${MAX_REVISION_LENGTH} visible ASCII characters (letters, digits, punctuation; no spaces, control characters or non-ASCII)`,
        "revision",
      );
    this.optStr(df.sdkKey, "sdkKey");
    this.optStr(df.environmentKey, "environmentKey");
    this.optBool(df.anonymizeIP, "anonymizeIP");
    this.optBool(df.botFiltering, "botFiltering");
    this.optBool(df.sendFlagDecisions, "sendFlagDecisions");
    // Optimizely's own integrations (ODP, …): the SDK throws on an entry without `key`.
    this.each(this.optArr(df.integrations, "integrations"), "integrations", (item) => {
      this.str(item.key, "key");
    });

    // `web` is checked last, but its lists first: audience leaves with match "in_list" name them.
    const web = df.web;
    if (web !== undefined && !isObj(web)) this.bad(web, "object", "web");
    const webObj = isObj(web) ? web : undefined;
    if (webObj !== undefined) {
      this.path.push("web");
      this.lists(webObj.lists);
      this.path.pop();
    }

    this.attributes(df.attributes);
    this.audiences(df.audiences, df.typedAudiences);
    this.allExperiments(df.experiments, df.groups, df.rollouts);
    this.holdouts(df.holdouts, df.localHoldouts);
    this.events(df.events);
    this.featureFlags(df.featureFlags);
    if (webObj !== undefined) {
      this.path.push("web");
      this.web(webObj);
      this.path.pop();
    }
  }

  private attributes(value: unknown): void {
    const ids = new Registry("attribute id", "id");
    const keys = new Registry("attribute key", "key");
    this.each(this.arr(value, "attributes"), "attributes", (item) => {
      const at = this.path.slice();
      this.unique(ids, this.str(item.id, "id"), at);
      this.unique(keys, this.str(item.key, "key"), at);
    });
  }

  // ---- audiences and condition trees

  private audiences(legacy: unknown, typed: unknown): void {
    // A typed audience may share its id with a legacy one: it overrides it, as in Optimizely's
    // own datafiles (the legacy entry is a placeholder for old SDKs).
    const ids = new Registry("audience id", "id");
    const legacyItems = this.arr(legacy, "audiences");
    const typedItems = this.optArr(typed, "typedAudiences");
    // Index ids before walking any tree (nothing in a tree refers to audiences, but keep the
    // registry order simple: legacy, then typed).
    this.each(legacyItems, "audiences", (item) => {
      const id = this.str(item.id, "id");
      if (this.unique(ids, id, this.path.slice()) && id !== undefined) this.audienceIds.add(id);
      this.str(item.name, "name");
      const conditions = this.str(item.conditions, "conditions");
      if (conditions === undefined) return;
      let tree: unknown;
      try {
        tree = JSON.parse(conditions);
      } catch (error) {
        this.error(`conditions is not valid JSON: ${errorMessage(error)}`, "conditions");
        return;
      }
      this.path.push("conditions");
      this.tree(tree, 0, "audience");
      this.path.pop();
    });
    const typedIds = new Registry("typed audience id", "id");
    this.each(typedItems, "typedAudiences", (item) => {
      const id = this.str(item.id, "id");
      if (this.unique(typedIds, id, this.path.slice()) && id !== undefined)
        this.audienceIds.add(id);
      this.str(item.name, "name");
      this.requiredTree(item.conditions, "audience", "conditions");
    });
  }

  /** A condition tree that must be present, at `seg` (or at the current path). */
  private requiredTree(tree: unknown, leaf: "audience" | "url", seg?: Seg): void {
    if (tree === undefined) {
      this.error(
        `missing required field (expected ${leaf === "url" ? "a URL" : "an audience"} condition tree)`,
        seg,
      );
      return;
    }
    if (seg !== undefined) this.path.push(seg);
    this.tree(tree, 0, leaf);
    if (seg !== undefined) this.path.pop();
  }

  /**
   * Walks an and/or/not tree as the SDK's condition_tree_evaluator reads it: an array whose first
   * element is "and" | "or" | "not" applies that operator to the rest; any other array is an
   * implicit "or" over all its elements; anything else is a leaf.
   */
  private tree(node: unknown, depth: number, leaf: LeafKind): void {
    if (!Array.isArray(node)) {
      if (leaf === "audienceId") this.audienceReference(node);
      else if (leaf === "audience") this.audienceLeaf(node);
      else this.urlCondition(node);
      return;
    }
    if (depth >= MAX_CONDITION_DEPTH) {
      this.error(`condition tree is nested deeper than ${MAX_CONDITION_DEPTH} levels`);
      return;
    }
    let start = 0;
    const first: unknown = node[0];
    if (leaf !== "url" && node.length > 0 && typeof first !== "string") {
      // The SDK's condition_tree_evaluator drops a non-string first element: [A, B] means B.
      this.warn(
        `the first element of this condition array is not an operator ("and", "or", "not"), so Optimizely SDKs ignore it and evaluate only the rest; start the array with "or"`,
      );
    }
    if (first === "and" || first === "or" || first === "not") {
      start = 1;
      if (first === "not" && node.length !== 2) {
        this.warn(
          node.length < 2
            ? `"not" without an operand evaluates to unknown`
            : `"not" takes one operand; the ${node.length - 2} after the first are ignored`,
        );
      }
    }
    const path = this.path;
    for (let i = start; i < node.length; i++) {
      path.push(i);
      this.tree(node[i], depth + 1, leaf);
      path.pop();
    }
  }

  /** A leaf of `audienceConditions`: an audience id. */
  private audienceReference(node: unknown): void {
    if (typeof node !== "string") {
      this.error(`expected an audience id (string) or a nested array, got ${describe(node)}`);
    } else if (!this.audienceIds.has(node)) {
      this.error(`unknown audience id ${preview(node)}`);
    }
  }

  /** A leaf of an audience's condition tree: `{type, name, match?, value?}`. */
  private audienceLeaf(node: unknown): void {
    if (!isObj(node)) {
      this.error(
        `expected a condition object {type, name, match, value} or a nested array, got ${describe(node)}`,
      );
      return;
    }
    const type = node.type;
    const name = node.name;
    const match = node.match;
    const value = node.value;
    if (typeof type !== "string") {
      this.error(
        type === undefined
          ? `missing condition type (expected "custom_attribute")`
          : `expected string, got ${describe(type)}`,
        "type",
      );
      return;
    }
    if (typeof name !== "string") {
      this.error(
        name === undefined ? "missing attribute name" : `expected string, got ${describe(name)}`,
        "name",
      );
    }
    if (match !== undefined && typeof match !== "string") {
      this.error(`expected string, got ${describe(match)}`, "match");
      return;
    }
    if (type !== "custom_attribute") {
      this.warn(
        `condition type ${preview(type)} is not evaluated (only "custom_attribute" is); the condition evaluates to unknown`,
        "type",
      );
      return;
    }
    const matchType = match ?? "exact";
    if (!MATCH_TYPES.has(matchType)) {
      this.warn(
        `unknown match type ${preview(matchType)}; the condition evaluates to unknown`,
        "match",
      );
      return;
    }
    if (matchType === "qualified") {
      this.warn(
        `match "qualified" is for ODP segment conditions (type "third_party_dimension"); here it evaluates to unknown`,
        "match",
      );
      return;
    }
    if (matchType === "exists") return;
    if (matchType === "exact") {
      if (!(typeof value === "string" || typeof value === "boolean" || isSafeNumber(value))) {
        this.warn(
          `match "exact" needs a string, boolean or number value, got ${describe(value)}; the condition evaluates to unknown`,
          "value",
        );
      }
    } else if (NUMERIC_MATCHES.has(matchType)) {
      if (!isSafeNumber(value)) {
        this.warn(
          `match ${preview(matchType)} needs a number value (within ±2^53), got ${describe(value)}; the condition evaluates to unknown`,
          "value",
        );
      }
    } else if (typeof value !== "string") {
      this.warn(
        `match ${preview(matchType)} needs a string value, got ${describe(value)}; the condition evaluates to unknown`,
        "value",
      );
    } else if (matchType.startsWith("semver_") && (value === "" || /\s/.test(value))) {
      this.warn(`${preview(value)} is not a version; the condition evaluates to unknown`, "value");
    } else if (
      matchType === "in_list" &&
      this.listKeys !== undefined &&
      !this.listKeys.has(value)
    ) {
      this.error(`unknown list key ${preview(value)} (lists are defined in $.web.lists)`, "value");
    }
  }

  /** A leaf of a page's URL condition tree: `{match, value}`. */
  private urlCondition(node: unknown): void {
    if (!isObj(node)) {
      this.error(
        `expected a URL condition {match, value} or a nested array, got ${describe(node)}`,
      );
      return;
    }
    const match = this.oneOf(node.match, URL_MATCH, "match");
    const value = this.str(node.value, "value");
    if (value === undefined) return;
    if (match === "regex") {
      try {
        new RegExp(value);
      } catch (error) {
        this.error(
          `invalid regular expression: ${errorMessage(error).replace(/^Invalid regular expression: /, "")}`,
          "value",
        );
      }
    } else if (value === "" && match !== undefined) {
      this.warn(
        match === "substring"
          ? "an empty substring matches every URL"
          : "an empty URL matches nothing",
        "value",
      );
    }
  }

  // ---- experiments, groups, rollouts

  private allExperiments(experiments: unknown, groups: unknown, rollouts: unknown): void {
    const ids = new Registry("experiment id", "id");
    const keys = new Registry("experiment key", "key");
    // Rollout rule keys share the SDK's experimentKeyMap with experiments; a clash only matters to
    // key-based lookups, so it is a warning.
    const ruleKeys = new Registry("rule key", "key", "warning");

    this.each(this.arr(experiments, "experiments"), "experiments", (node) => {
      this.experiment(node, "experiment", ids, keys, ruleKeys);
    });

    const groupIds = new Registry("group id", "id");
    this.each(this.arr(groups, "groups"), "groups", (group) => {
      this.unique(groupIds, this.str(group.id, "id"), this.path.slice());
      const policy = this.str(group.policy, "policy");
      if (policy !== undefined && !KNOWN_POLICIES.has(policy)) {
        this.warn(
          `unknown group policy ${preview(policy)}; it is treated as "overlapping" (no group bucketing)`,
          "policy",
        );
      }
      const members: string[] = [];
      this.each(this.arr(group.experiments, "experiments"), "experiments", (node) => {
        const info = this.experiment(node, "experiment", ids, keys, ruleKeys);
        const id = idOf(info.node);
        if (id !== undefined) members.push(id);
      });
      this.allocation(group.trafficAllocation, members, "an experiment id of this group");
    });

    const rolloutIds = new Registry("rollout id", "id");
    this.each(this.arrOrDefault(rollouts, "rollouts"), "rollouts", (rollout) => {
      const id = this.str(rollout.id, "id");
      const fresh = this.unique(rolloutIds, id, this.path.slice());
      const rules: ExperimentInfo[] = [];
      this.each(this.arr(rollout.experiments, "experiments"), "experiments", (node) => {
        rules.push(this.experiment(node, "rule", ids, keys, ruleKeys));
      });
      if (fresh && id !== undefined) this.rollouts.set(id, rules);
    });
  }

  /**
   * The global holdouts (docs/holdouts.md): bucketed like experiments on their own ids, so their
   * ids and keys are unique among themselves; their variation ids share the SDK's project-wide
   * variation map, so they must not repeat an experiment's. Rule-scoped `localHoldouts` are
   * refused: Splitstream does not evaluate them, and an official SDK would decide differently.
   */
  private holdouts(value: unknown, local: unknown): void {
    const ids = new Registry("holdout id", "id");
    const keys = new Registry("holdout key", "key");
    const ruleKeys = new Registry("holdout key", "key");
    const taken = new Set<string>();
    for (const info of [...this.experiments.values(), ...this.rules.values()])
      for (const id of info.variationIds ?? []) taken.add(id);
    this.each(this.optArr(value, "holdouts"), "holdouts", (node) => {
      const info = this.experiment(node, "holdout", ids, keys, ruleKeys);
      if (typeof node.id === "string" && this.experiments.has(node.id))
        // The SDK would then bucket the holdout through that experiment's group too.
        this.error(
          `holdout id ${preview(node.id)} is also an experiment id: the SDK would apply that experiment's group to the holdout`,
          "id",
        );
      (info.variationIds ?? []).forEach((id) => {
        if (!taken.has(id)) return;
        const v = Array.isArray(node.variations)
          ? node.variations.findIndex((x) => isObj(x) && x.id === id)
          : -1;
        this.path.push("variations");
        this.error(`variation id ${preview(id)} is already a variation of an experiment`, v, "id");
        this.path.pop();
      });
      this.strings(node.includedFlags, "includedFlags", "optional");
      this.strings(node.excludedFlags, "excludedFlags", "optional");
    });
    const locals = this.optArr(local, "localHoldouts");
    if (locals !== undefined && locals.length > 0)
      this.error(
        "rule-scoped local holdouts are not supported: Splitstream would decide differently from the SDK (use the global `holdouts`)",
        "localHoldouts",
      );
  }

  /** Checks one experiment, rollout rule or holdout (the current path) and indexes it. */
  private experiment(
    node: Obj,
    kind: ExperimentInfo["kind"],
    ids: Registry,
    keys: Registry,
    ruleKeys: Registry,
  ): ExperimentInfo {
    const at = this.path.slice();
    const idValue = node.id;
    const id = idOf(node);
    if (typeof idValue !== "string") this.bad(idValue, "string", "id");
    const fresh = this.unique(ids, id, at);

    const key = this.str(node.key, "key");
    if (kind === "experiment" || kind === "holdout") this.unique(keys, key, at);
    else if (key !== undefined && keys.seen.has(key))
      this.warn(`rule key ${preview(key)} is also an experiment key`, "key");
    else this.unique(ruleKeys, key, at);

    const status = this.str(node.status, "status");
    if (
      status !== undefined &&
      !(kind === "holdout" ? HOLDOUT_STATUSES : KNOWN_STATUSES).has(status)
    ) {
      this.warn(
        `unknown status ${preview(status)}; only "Running" ${kind === "holdout" ? "holdouts" : "experiments"} are active`,
        "status",
      );
    }
    // A holdout has no layer and no whitelist (the SDK reads neither).
    if (kind !== "holdout") this.str(node.layerId, "layerId");

    // Variations: few per experiment, so duplicates are found by scanning.
    const variations = this.arr(node.variations, "variations");
    let variationIds: string[] | undefined;
    let variationKeys: string[] | undefined;
    if (variations !== undefined) {
      const vIds: string[] = [];
      const vKeys: string[] = [];
      this.each(variations, "variations", (variation, v) => {
        const vId = this.str(variation.id, "id");
        const vKey = this.str(variation.key, "key");
        if (vId !== undefined) {
          const previous = indexOfField(variations, v, "id", vId);
          if (previous >= 0)
            this.error(
              `duplicate variation id ${preview(vId)} (first at ${this.sibling(previous, "id")})`,
              "id",
            );
          else vIds.push(vId);
        }
        if (vKey !== undefined) {
          const previous = indexOfField(variations, v, "key", vKey);
          if (previous >= 0)
            this.error(
              `duplicate variation key ${preview(vKey)} (first at ${this.sibling(previous, "key")})`,
              "key",
            );
          else vKeys.push(vKey);
        }
        this.optBool(variation.featureEnabled, "featureEnabled");
        this.each(this.optArr(variation.variables, "variables"), "variables", (usage) => {
          this.str(usage.id, "id");
          this.str(usage.value, "value");
        });
      });
      variationIds = vIds;
      variationKeys = vKeys;
    }

    this.allocation(node.trafficAllocation, variationIds, "a variation id of this experiment");

    const audienceIds = this.strings(
      node.audienceIds,
      "audienceIds",
      kind === "rule" ? "default" : "required",
    );
    if (audienceIds !== undefined) {
      for (let i = 0; i < audienceIds.length; i++) {
        const audienceId = audienceIds[i];
        if (typeof audienceId === "string" && !this.audienceIds.has(audienceId)) {
          this.error(`unknown audience id ${preview(audienceId)}`, "audienceIds", i);
        }
      }
    }
    if (node.audienceConditions !== undefined) {
      this.path.push("audienceConditions");
      this.tree(node.audienceConditions, 0, "audienceId");
      this.path.pop();
    }

    if (kind === "holdout") return { node, path: at, kind, variationIds, variationKeys };

    const forced = this.record(
      node.forcedVariations,
      "forcedVariations",
      "string",
      kind === "rule" ? "default" : "required",
    );
    if (forced !== undefined && variationKeys !== undefined) {
      for (const visitor in forced) {
        const variationKey = forced[visitor];
        if (typeof variationKey === "string" && !variationKeys.includes(variationKey)) {
          // The SDK ignores such an entry; a stale whitelist must not take the datafile down.
          this.warn(
            `${preview(variationKey)} is not a variation key of this experiment (entry ignored)`,
            "forcedVariations",
            visitor,
          );
        }
      }
    }

    const info: ExperimentInfo = { node, path: at, kind, variationIds, variationKeys };
    if (fresh && id !== undefined)
      (kind === "experiment" ? this.experiments : this.rules).set(id, info);
    return info;
  }

  /**
   * Traffic allocation, as the SDK reads it: the first entry whose `endOfRange` exceeds the bucket
   * (0..9999) wins; no such entry, or an empty `entityId`, means no variation.
   * - `endOfRange` not an integer in 0..10000: error (the SDK's schema says integer; Optimizely
   *   never emits anything else, so such a file is corrupt);
   * - an `endOfRange` below an earlier one: warning — the SDK loads it, but that entry covers no
   *   bucket and can never be chosen;
   * - `entityId` not "" and not one of `validIds`: error (the SDK would bucket into nothing).
   */
  private allocation(value: unknown, validIds: string[] | undefined, what: string): void {
    let highest = -Infinity;
    this.each(this.arr(value, "trafficAllocation"), "trafficAllocation", (entry) => {
      const end = entry.endOfRange;
      if (typeof end !== "number" || !Number.isFinite(end)) {
        this.bad(end, "number", "endOfRange");
      } else if (!Number.isInteger(end)) {
        this.error(`endOfRange must be an integer, got ${preview(end)}`, "endOfRange");
      } else if (end < 0 || end > MAX_RANGE) {
        this.error(`endOfRange must be within 0..${MAX_RANGE}, got ${end}`, "endOfRange");
      } else {
        if (end < highest) {
          this.warn(
            `endOfRange ${end} is below an earlier entry's ${highest}: this entry covers no bucket and is never chosen`,
            "endOfRange",
          );
        }
        if (end > highest) highest = end;
      }
      const entityId = this.str(entry.entityId, "entityId");
      if (
        validIds !== undefined &&
        entityId !== undefined &&
        entityId !== "" &&
        !validIds.includes(entityId)
      ) {
        this.error(
          `${preview(entityId)} is not ${what} (use "" for traffic that gets no variation)`,
          "entityId",
        );
      }
    });
  }

  // ---- events and feature flags

  private events(value: unknown): void {
    const ids = new Registry("event id", "id");
    const keys = new Registry("event key", "key");
    this.each(this.arr(value, "events"), "events", (event) => {
      const at = this.path.slice();
      const id = this.str(event.id, "id");
      this.unique(ids, id, at);
      if (id !== undefined) this.eventIds.add(id);
      this.unique(keys, this.str(event.key, "key"), at);
      const experimentIds = this.strings(event.experimentIds, "experimentIds", "default");
      if (experimentIds === undefined) return;
      for (let i = 0; i < experimentIds.length; i++) {
        const experimentId = experimentIds[i];
        if (
          typeof experimentId === "string" &&
          !this.experiments.has(experimentId) &&
          !this.rules.has(experimentId)
        ) {
          this.error(`unknown experiment id ${preview(experimentId)}`, "experimentIds", i);
        }
      }
    });
  }

  private featureFlags(value: unknown): void {
    const ids = new Registry("feature flag id", "id");
    const keys = new Registry("feature flag key", "key");
    /** Experiment or rule → the variables (id → type) of the flag(s) using it. */
    const variablesByRule = new Map<ExperimentInfo, Map<string, string>>();

    this.each(this.arrOrDefault(value, "featureFlags"), "featureFlags", (flag) => {
      const at = this.path.slice();
      this.unique(ids, this.str(flag.id, "id"), at);
      this.unique(keys, this.str(flag.key, "key"), at);

      const variables = new Map<string, string>();
      const variableIds = new Registry("variable id", "id");
      const variableKeys = new Registry("variable key", "key");
      this.each(this.arr(flag.variables, "variables"), "variables", (variable) => {
        const vAt = this.path.slice();
        const id = this.str(variable.id, "id");
        this.unique(variableIds, id, vAt);
        this.unique(variableKeys, this.str(variable.key, "key"), vAt);
        let type = this.oneOf(variable.type, VARIABLE_TYPE, "type");
        const subType = this.optStr(variable.subType, "subType");
        // The SDK treats {type: "string", subType: "json"} as a json variable.
        if (type === "string" && subType === "json") type = "json";
        const defaultValue = this.str(variable.defaultValue, "defaultValue");
        // A variable of unknown type is still a variable (its values are then not checked).
        if (id !== undefined && !variables.has(id)) variables.set(id, type ?? "");
        if (type !== undefined && defaultValue !== undefined)
          this.variableValue(type, defaultValue, "defaultValue");
      });

      const rules: ExperimentInfo[] = [];
      const experimentIds = this.strings(flag.experimentIds, "experimentIds", "required");
      if (experimentIds !== undefined) {
        for (let i = 0; i < experimentIds.length; i++) {
          const id = experimentIds[i];
          if (typeof id !== "string") continue;
          const info = this.experiments.get(id);
          if (info === undefined)
            this.error(`unknown experiment id ${preview(id)}`, "experimentIds", i);
          else rules.push(info);
        }
      }
      const rolloutId = this.str(flag.rolloutId, "rolloutId");
      if (rolloutId !== undefined && rolloutId !== "") {
        const rolloutRules = this.rollouts.get(rolloutId);
        if (rolloutRules === undefined)
          this.error(`unknown rollout id ${preview(rolloutId)}`, "rolloutId");
        else rules.push(...rolloutRules);
      }
      for (const rule of rules) {
        const existing = variablesByRule.get(rule);
        variablesByRule.set(
          rule,
          existing === undefined ? variables : new Map([...existing, ...variables]),
        );
      }
    });

    // Variable values in the variations of every experiment and rule a flag uses.
    const saved = this.path.splice(0);
    for (const [rule, variables] of variablesByRule) {
      const variations = rule.node.variations;
      if (!Array.isArray(variations)) continue;
      this.path.push(...rule.path, "variations");
      for (let v = 0; v < variations.length; v++) {
        const variation: unknown = variations[v];
        if (!isObj(variation) || !Array.isArray(variation.variables)) continue;
        const usages: unknown[] = variation.variables;
        this.path.push(v, "variables");
        for (let u = 0; u < usages.length; u++) {
          const usage = usages[u];
          if (!isObj(usage) || typeof usage.id !== "string") continue;
          this.path.push(u);
          const type = variables.get(usage.id);
          if (type === undefined) {
            this.error(
              `unknown variable id ${preview(usage.id)} (not a variable of the feature flag using this ${rule.kind})`,
              "id",
            );
          } else if (typeof usage.value === "string") {
            this.variableValue(type, usage.value, "value");
          }
          this.path.pop();
        }
        this.path.length -= 2;
      }
      this.path.length = 0;
    }
    this.path.push(...saved);
  }

  /**
   * A variable value in string form, cast as the SDK's getTypeCastValue does: a value the SDK
   * cannot cast at all (it returns null) is an error; one it casts lossily ("1.5" as integer → 1)
   * a warning.
   */
  private variableValue(type: string, value: string, seg: Seg): void {
    switch (type) {
      case "boolean":
        if (value !== "true" && value !== "false")
          this.error(`a boolean variable needs "true" or "false", got ${preview(value)}`, seg);
        break;
      case "integer": {
        const n = Number.parseInt(value, 10);
        if (Number.isNaN(n)) this.error(`${preview(value)} is not an integer`, seg);
        else if (!/^\s*[+-]?\d+\s*$/.test(value))
          this.warn(`${preview(value)} is not an integer; SDKs read it as ${n}`, seg);
        break;
      }
      case "double": {
        const n = Number.parseFloat(value);
        if (Number.isNaN(n)) this.error(`${preview(value)} is not a number`, seg);
        else if (Number.isNaN(Number(value)))
          this.warn(`${preview(value)} is not a number; SDKs read it as ${n}`, seg);
        break;
      }
      case "json":
        try {
          JSON.parse(value);
        } catch (error) {
          this.error(`not valid JSON: ${errorMessage(error)}`, seg);
        }
        break;
      default:
        break;
    }
  }

  // ---- web extension (current path: $.web)

  /**
   * `$.web.lists`. No problem here quotes a value that is not a string id or key: anything else
   * under `web.lists` may be a private member (a hand-written datafile with its `values` inline),
   * and problems reach `/_ss/health` and the logs (docs/security.md "List members stay
   * private"). So a wrong type is reported by its type name only.
   */
  private lists(value: unknown): void {
    if (value === undefined) {
      this.needsDefaults = true;
      return;
    }
    if (!Array.isArray(value)) return this.error(`expected array, got ${typeName(value)}`, "lists");
    const ids = new Registry("list id", "id");
    const keys = new Registry("list key", "key");
    const path = this.path;
    path.push("lists");
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      path.push(i);
      if (!isObj(item)) {
        this.error(`expected object, got ${typeName(item)}`);
      } else {
        const at = path.slice();
        const id = typeof item.id === "string" ? item.id : undefined;
        if (id === undefined) this.privatelyBad(item.id, "string", "id");
        this.unique(ids, id, at);
        const key = typeof item.key === "string" ? item.key : undefined;
        if (key === undefined) this.privatelyBad(item.key, "string", "key");
        if (this.unique(keys, key, at) && key !== undefined) this.listKeys?.add(key);
        // Optional: published datafiles leave the (private) members out (docs/datafile.md "Lists").
        const values = item.values;
        if (Array.isArray(values)) {
          for (let v = 0; v < values.length; v++)
            if (typeof values[v] !== "string") this.privatelyBad(values[v], "string", "values", v);
        } else if (values !== undefined) {
          this.privatelyBad(values, "array", "values");
        }
      }
      path.pop();
    }
    path.pop();
  }

  /** Like `bad`, naming only the type of `value`, never the value itself. */
  private privatelyBad(value: unknown, expected: string, seg?: Seg, seg2?: Seg): void {
    this.error(
      value === undefined
        ? `missing required field (expected ${expected})`
        : `expected ${expected}, got ${typeName(value)}`,
      seg,
      seg2,
    );
  }

  private web(web: Obj): void {
    this.record(web.integrations, "integrations", "boolean", "default");

    const pages = { ids: new Registry("page id", "id"), keys: new Registry("page key", "key") };
    this.each(this.arrOrDefault(web.pages, "pages"), "pages", (page) => {
      this.webPage(page, pages);
    });

    const eventIds = new Registry("web event id", "id");
    this.each(this.arrOrDefault(web.events, "events"), "events", (event) => {
      this.webEvent(event, eventIds);
    });

    const experimentIds = new Registry("web experiment id", "id");
    this.each(this.arrOrDefault(web.experiments, "experiments"), "experiments", (experiment) => {
      this.webExperiment(experiment, experimentIds);
    });
  }

  /**
   * A page (the current path). `registries` undefined: a page on its own (`checkFragment`), whose
   * id is not checked and not recorded.
   */
  private webPage(page: Obj, registries: { ids: Registry; keys: Registry } | undefined): void {
    if (registries !== undefined) {
      const at = this.path.slice();
      const id = this.str(page.id, "id");
      const key = this.str(page.key, "key");
      if (this.unique(registries.ids, id, at) && id !== undefined) {
        this.pageIds.add(id);
        this.pages.set(id, { key: key ?? id, activation: page.activation });
      }
      this.unique(registries.keys, key, at);
    } else {
      this.str(page.key, "key");
    }
    this.oneOf(page.activation, ACTIVATION, "activation");
    const selector = this.optStr(page.selector, "selector");
    if (selector !== undefined) this.selector(selector, "selector");
    this.requiredTree(page.conditions, "url", "conditions");
  }

  /**
   * A web event (the current path). `registry` undefined: an event on its own (`checkFragment`),
   * whose id is not checked (it names the event itself, not one of `$.events`).
   */
  private webEvent(event: Obj, registry: Registry | undefined): void {
    if (registry !== undefined) {
      const id = this.str(event.id, "id");
      this.unique(registry, id, this.path.slice());
      if (id !== undefined && !this.eventIds.has(id)) {
        this.error(
          `unknown event id ${preview(id)} (web events describe events of $.events)`,
          "id",
        );
      }
    }
    const type = this.oneOf(event.type, WEB_EVENT_TYPE, "type");
    const pageId = this.optStr(event.pageId, "pageId");
    if (event.pageId === undefined) {
      if (type === "pageview" || type === "click")
        this.error(`missing pageId (a ${type} event needs the page it happens on)`, "pageId");
    } else if (pageId !== undefined && !this.pageIds.has(pageId)) {
      this.error(`unknown page id ${preview(pageId)}`, "pageId");
    }
    const selector = this.optStr(event.selector, "selector");
    if (selector !== undefined) this.selector(selector, "selector");
    else if (type === "click" && event.selector === undefined)
      this.error("missing selector (a click event needs the element clicked)", "selector");
  }

  /**
   * A web experiment (the current path). `registry` undefined: an experiment on its own
   * (`checkFragment`), of which only the change-bearing parts are checked: type, pageIds, and the
   * changes of sections, sharedChanges and variations (not its id, allocationPolicy, metrics, or
   * the ids and names of sections and variations).
   */
  private webExperiment(experiment: Obj, registry: Registry | undefined): void {
    const whole = registry !== undefined;
    let id: string | undefined;
    let info: ExperimentInfo | undefined;
    if (whole) {
      id = this.str(experiment.id, "id");
      this.unique(registry, id, this.path.slice());
      if (id !== undefined) {
        info = this.experiments.get(id);
        if (info === undefined) {
          this.error(
            `unknown experiment id ${preview(id)} (web experiments describe experiments of $.experiments or $.groups[].experiments)`,
            "id",
          );
        }
      }
    }
    const type = this.oneOf(experiment.type, WEB_EXPERIMENT_TYPE, "type");
    if (whole) this.oneOf(experiment.allocationPolicy, ALLOCATION_POLICY, "allocationPolicy", true);

    const pageIds = this.strings(experiment.pageIds, "pageIds", "required");
    const ownPages: string[] = [];
    if (pageIds !== undefined) {
      for (let i = 0; i < pageIds.length; i++) {
        const pageId = pageIds[i];
        if (typeof pageId !== "string") continue;
        if (!this.pageIds.has(pageId))
          this.error(`unknown page id ${preview(pageId)}`, "pageIds", i);
        else if (ownPages.includes(pageId))
          this.warn(`page ${preview(pageId)} is listed twice`, "pageIds", i);
        ownPages.push(pageId);
      }
      if (pageIds.length === 0) this.warn("no pages: the experiment never activates", "pageIds");
    }

    if (whole) this.metrics(experiment.metrics);

    // Sections (multivariate): their variation ids are what combinations refer to.
    const sectionVariationIds: string[] = [];
    const sectionIds = new Registry("section id", "id");
    const sectionVariationRegistry = new Registry("section variation id", "id");
    const sections = this.optArr(experiment.sections, "sections");
    this.each(sections, "sections", (section) => {
      if (whole) {
        this.unique(sectionIds, this.str(section.id, "id"), this.path.slice());
        this.optStr(section.name, "name");
      }
      this.each(this.arr(section.variations, "variations"), "variations", (variation) => {
        if (whole) {
          const variationId = this.str(variation.id, "id");
          if (
            this.unique(sectionVariationRegistry, variationId, this.path.slice()) &&
            variationId !== undefined
          ) {
            sectionVariationIds.push(variationId);
          }
          this.optStr(variation.name, "name");
        }
        this.changes(this.arrOrDefault(variation.changes, "changes"), "changes", ownPages);
      });
    });
    if (type === "multivariate" && experiment.sections === undefined) {
      this.warn("a multivariate experiment should describe its sections", "sections");
    }

    this.changes(this.optArr(experiment.sharedChanges, "sharedChanges"), "sharedChanges", ownPages);

    const variations = this.arr(experiment.variations, "variations");
    const known = info?.variationIds;
    this.each(variations, "variations", (variation, v) => {
      if (whole) this.webVariationIds(variation, variations!, v, id, known, sectionVariationIds);
      this.changes(this.arrOrDefault(variation.changes, "changes"), "changes", ownPages);
    });
  }

  /** A web experiment's `metrics`. */
  private metrics(metrics: unknown): void {
    this.each(this.arrOrDefault(metrics, "metrics"), "metrics", (metric) => {
      const eventId = this.str(metric.eventId, "eventId");
      if (eventId !== undefined && !this.eventIds.has(eventId))
        this.error(`unknown event id ${preview(eventId)}`, "eventId");
      const aggregator = this.oneOf(metric.aggregator, AGGREGATOR, "aggregator");
      this.oneOf(metric.field, METRIC_FIELD, "field", true);
      this.oneOf(metric.winningDirection, WINNING_DIRECTION, "winningDirection", true);
      this.metricCapping(metric.capping, aggregator);
      this.metricGuardrail(metric.guardrail);
      if (aggregator === "sum" && metric.field === undefined) {
        this.error(`missing field (aggregator "sum" adds up "revenue" or "value")`, "field");
      } else if (aggregator !== undefined && aggregator !== "sum" && metric.field !== undefined) {
        this.warn(`field is only used with aggregator "sum"`, "field");
      }
    });
  }

  /**
   * The id and `sectionVariationIds` of web variation `v` (the current path) of experiment `id`,
   * whose variation ids are `known` (undefined: unchecked).
   */
  private webVariationIds(
    variation: Obj,
    variations: readonly unknown[],
    v: number,
    id: string | undefined,
    known: string[] | undefined,
    sectionVariationIds: readonly string[],
  ): void {
    const variationId = this.str(variation.id, "id");
    if (variationId !== undefined) {
      const previous = indexOfField(variations, v, "id", variationId);
      if (previous >= 0)
        this.error(
          `duplicate web variation id ${preview(variationId)} (first at ${this.sibling(previous, "id")})`,
          "id",
        );
      else if (known !== undefined && !known.includes(variationId)) {
        this.error(
          `${preview(variationId)} is not a variation id of experiment ${preview(id)}`,
          "id",
        );
      }
    }
    const combination = this.strings(
      variation.sectionVariationIds,
      "sectionVariationIds",
      "optional",
    );
    if (combination !== undefined) {
      for (let i = 0; i < combination.length; i++) {
        const sectionVariationId = combination[i];
        if (
          typeof sectionVariationId === "string" &&
          !sectionVariationIds.includes(sectionVariationId)
        ) {
          this.error(
            `unknown section variation id ${preview(sectionVariationId)}`,
            "sectionVariationIds",
            i,
          );
        }
      }
    }
  }

  // ---- changes

  /** A metric's `guardrail` ({action: mark | pause}, docs/statistics.md "Guardrails"). */
  private metricGuardrail(guardrail: unknown): void {
    if (guardrail === undefined) return;
    if (!isObj(guardrail)) return this.bad(guardrail, "an object {action}", "guardrail");
    const action = guardrail.action;
    if (!GUARDRAIL_ACTION.values.has(action))
      this.error(
        action === undefined
          ? `missing required field (expected one of ${GUARDRAIL_ACTION.expected})`
          : `expected one of ${GUARDRAIL_ACTION.expected}, got ${preview(action)}`,
        "guardrail",
        "action",
      );
    for (const key of Object.keys(guardrail))
      if (key !== "action") this.error(`unknown field ${preview(key)}`, "guardrail", key);
  }

  /** A metric's `capping` (winsorisation of per-visitor totals in results, docs/statistics.md). */
  private metricCapping(capping: unknown, aggregator: string | undefined): void {
    if (capping === undefined) return;
    if (!isObj(capping)) return this.bad(capping, "an object {type, value}", "capping");
    const type = METRIC_CAPPING.values.has(capping.type) ? (capping.type as string) : undefined;
    if (type === undefined)
      this.error(
        `expected one of ${METRIC_CAPPING.expected}, got ${preview(capping.type)}`,
        "capping",
        "type",
      );
    const value = capping.value;
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0)
      this.bad(value, "a positive number", "capping", "value");
    else if (type === "percentile" && value >= 1)
      this.error(
        `a percentile is a fraction below 1 (0.99 = the 99th percentile), got ${value}`,
        "capping",
        "value",
      );
    if (aggregator === "unique")
      this.warn("capping is ignored for aggregator unique (each visitor counts 0 or 1)", "capping");
  }

  private changes(items: unknown[] | undefined, seg: Seg, ownPages: string[]): void {
    this.each(items, seg, (change) => this.change(change, ownPages));
  }

  private change(change: Obj, ownPages: string[]): void {
    const type = change.type;
    if (!CHANGE_TYPE.values.has(type)) {
      this.error(
        type === undefined
          ? `missing type (expected one of ${CHANGE_TYPE.expected})`
          : `unknown type ${preview(type)}; expected one of ${CHANGE_TYPE.expected}`,
        "type",
      );
      return;
    }
    const pageId = this.optStr(change.pageId, "pageId");
    if (pageId !== undefined) {
      if (!this.pageIds.has(pageId)) this.error(`unknown page id ${preview(pageId)}`, "pageId");
      else if (!ownPages.includes(pageId)) {
        this.warn(
          `page ${preview(pageId)} is not one of this experiment's pageIds; the change never applies`,
          "pageId",
        );
      }
    }
    // The edge applies the change while streaming an immediate page of the experiment; the
    // browser applies it on the others (docs/changes.md "Selectors").
    const immediate = this.immediatePage(ownPages);
    switch (type) {
      case "attribute": {
        const selector = this.str(change.selector, "selector");
        if (selector !== undefined && this.selector(selector, "selector"))
          this.edgeSelector(selector, "selector", immediate);
        const attributes = change.attributes;
        if (isObj(attributes)) {
          this.path.push("attributes");
          this.attributeChanges(attributes);
          this.path.pop();
        } else {
          this.bad(attributes, "object", "attributes");
        }
        break;
      }
      case "insert_html": {
        const selector = this.str(change.selector, "selector");
        if (selector !== undefined && this.selector(selector, "selector"))
          this.edgeSelector(selector, "selector", immediate);
        this.oneOf(change.position, POSITION, "position");
        this.str(change.html, "html");
        break;
      }
      case "move": {
        const selector = this.str(change.selector, "selector");
        if (selector !== undefined && this.selector(selector, "selector"))
          this.edgeSelector(selector, "selector", immediate);
        const target = this.str(change.target, "target");
        if (target !== undefined && this.selector(target, "target"))
          this.edgeSelector(target, "target", immediate);
        if (change.position === "replace") {
          this.error(
            `a move cannot "replace" its target (expected one of ${MOVE_POSITION.expected}); to replace an element, use an insert_html change with position "replace"`,
            "position",
          );
        } else {
          this.oneOf(change.position, MOVE_POSITION, "position");
        }
        this.str(change.html, "html");
        if (selector !== undefined && selector === target) {
          this.warn(
            "target is the element being moved: the element is removed and nothing is inserted",
            "target",
          );
        }
        break;
      }
      case "custom_css":
      case "custom_code":
        this.str(change.value, "value");
        break;
      case "redirect": {
        const destination = this.str(change.destination, "destination");
        if (destination !== undefined) this.destination(destination);
        this.optBool(change.preserveParameters, "preserveParameters");
        this.oneOf(change.mode, REDIRECT_MODE, "mode", true);
        break;
      }
    }
  }

  /** The `attributes` of an attribute change (the current path). */
  private attributeChanges(attributes: Obj): void {
    let effective = 0;
    for (const key in attributes) {
      if (!ATTRIBUTE_KEYS.has(key)) {
        this.warn(
          `unknown attribute change ${preview(key)} is ignored (known: ${ATTRIBUTE_CHANGE_KEYS.join(", ")})`,
          key,
        );
        continue;
      }
      effective++;
      const value = attributes[key];
      if (STRING_ATTRIBUTE_KEYS.has(key)) {
        if (typeof value !== "string") this.bad(value, "string", key);
        else if ((key === "href" || key === "src") && isScriptUrl(value)) {
          this.error(
            `${key} must not be a javascript: URL; put JavaScript in a custom_code change`,
            key,
          );
        }
      } else if (key === "hide" || key === "remove") {
        if (typeof value !== "boolean") this.bad(value, "boolean", key);
      }
    }
    if (effective === 0) this.warn("the change sets nothing");
    if (attributes.text !== undefined && attributes.html !== undefined) {
      this.warn("both text and html are set; set only one", "text");
    }
    const set = this.record(attributes.set, "set", "string", "optional");
    if (set !== undefined) {
      for (const name in set) {
        if (!ATTRIBUTE_NAME.test(name)) {
          this.error(`${preview(name)} is not a valid HTML attribute name`, "set", name);
          continue;
        }
        const first = name.charCodeAt(0) | 0x20;
        if (first === 0x6f /* o */ && (name.charCodeAt(1) | 0x20) === 0x6e /* n */) {
          this.error(
            `event-handler attribute ${preview(name)} cannot be set; put JavaScript in a custom_code change`,
            "set",
            name,
          );
          continue;
        }
        const value = set[name];
        if (
          typeof value === "string" &&
          URL_ATTRIBUTES.has(name.toLowerCase()) &&
          isScriptUrl(value)
        ) {
          this.error(
            `${name} must not be a javascript: URL; put JavaScript in a custom_code change`,
            "set",
            name,
          );
        }
      }
    }
    const unset = this.strings(attributes.unset, "unset", "optional");
    if (unset !== undefined) {
      for (let i = 0; i < unset.length; i++) {
        const name = unset[i];
        if (typeof name === "string" && !ATTRIBUTE_NAME.test(name)) {
          this.error(`${preview(name)} is not a valid HTML attribute name`, "unset", i);
        }
      }
    }
  }

  /**
   * The key of the first `immediate` page among an experiment's `ownPages`, or undefined when
   * the browser handles all of them. Any immediate page counts, whatever the change's `pageId`
   * names: the edge applies a change whose page matches the URL when the URL also matches an
   * immediate page of the experiment (src/edge/page-plan.ts).
   */
  private immediatePage(ownPages: string[]): string | undefined {
    if (this.edgeSeverity === "off") return undefined;
    for (const id of ownPages) {
      const page = this.pages.get(id);
      if (page?.activation === "immediate") return page.key;
    }
    return undefined;
  }

  /**
   * A change's `selector` or move `target` (at `seg`) in an experiment with immediate page
   * `immediate` (undefined: none, nothing to check): a problem of the `edgeSelectors` severity
   * when the edge cannot run it, because the edge would skip the change there
   * (src/core/edge-selector.ts, docs/changes.md "Selectors").
   */
  private edgeSelector(selector: string, seg: "selector" | "target", immediate?: string): void {
    if (immediate === undefined || this.edgeSeverity === "off") return;
    const answers = this.edgeSelectorAnswers;
    let why = answers.get(selector);
    if (why === undefined && !answers.has(selector)) {
      why = edgeSelectorProblem(selector);
      answers.set(selector, why);
    }
    if (why === undefined) return;
    this.problem(
      this.edgeSeverity,
      `${seg} ${preview(selector)}: ${why}; on immediate page ${preview(immediate)} the edge would skip this change — use a selector the edge supports, or let the browser apply it: activation url_changed (or manual, when the site calls activate)`,
      seg,
    );
  }

  /**
   * A CSS selector, checked enough to be safe to hand to HTMLRewriter and to embed in generated
   * CSS and scripts: non-empty, bounded, no control characters, balanced brackets, parentheses
   * and quotes, and no `{`, `}`, `;` or `<` outside quoted strings (they would end a CSS rule or
   * an HTML context). Full selector grammar is left to the engines. Returns whether it passed.
   */
  private selector(selector: string, seg: Seg): boolean {
    if (selector.length <= MAX_SELECTOR_LENGTH && SIMPLE_SELECTOR.test(selector)) return true;
    let problem: string | undefined;
    if (selector.trim() === "") problem = "selector must not be empty";
    else if (selector.length > MAX_SELECTOR_LENGTH)
      problem = `selector is longer than ${MAX_SELECTOR_LENGTH} characters`;
    else {
      const why = selectorProblem(selector);
      if (why !== undefined) problem = `invalid selector ${preview(selector)}: ${why}`;
    }
    if (problem !== undefined) this.error(problem, seg);
    return problem === undefined;
  }

  /** A redirect destination: an absolute http(s) URL, protocol-relative, or a path from "/". */
  private destination(destination: string): void {
    let problem: string | undefined;
    if (destination.trim() === "") problem = "destination must not be empty";
    else {
      let url: URL | undefined;
      try {
        url = new URL(destination, "https://splitstream.invalid/");
      } catch {
        problem = `${preview(destination)} is not a valid URL`;
      }
      if (url !== undefined && url.protocol !== "https:" && url.protocol !== "http:") {
        problem = `destination must be an http(s) URL or a path starting with "/", got ${preview(destination)}`;
      } else if (
        url !== undefined &&
        !/^(https?:)?\/\//i.test(destination) &&
        !destination.startsWith("/")
      ) {
        problem = `a relative destination must start with "/", got ${preview(destination)}`;
      }
    }
    if (problem !== undefined) this.error(problem, "destination");
  }
}

/** The id of an experiment node; a number is taken as its string (reported as a type error). */
function idOf(node: Obj): string | undefined {
  const id = node.id;
  return typeof id === "string" ? id : typeof id === "number" ? String(id) : undefined;
}

/** Index of the first element before `before` whose `field` is `value`, or -1. */
function indexOfField(
  items: readonly unknown[],
  before: number,
  field: "id" | "key",
  value: string,
): number {
  for (let i = 0; i < before; i++) {
    const item = items[i];
    if (isObj(item) && item[field] === value) return i;
  }
  return -1;
}

/** True for javascript:/vbscript: URLs, the way browsers read them (controls and spaces ignored). */
function isScriptUrl(value: string): boolean {
  // eslint-disable-next-line no-control-regex -- browsers drop these before reading the scheme
  const compact = value.replace(/[\u0000-\u0020]/g, "").toLowerCase();
  return compact.startsWith("javascript:") || compact.startsWith("vbscript:");
}

function isCssSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d || code === 0x0c;
}

function selectorProblem(selector: string): string | undefined {
  const stack: string[] = [];
  let quote: string | undefined;
  let sawPart = false;
  for (let i = 0; i < selector.length; i++) {
    const ch = selector[i]!;
    const code = ch.charCodeAt(0);
    if (code === 0) return "contains a NUL character";
    if ((code < 0x20 && !isCssSpace(code)) || code === 0x7f) return "contains a control character";
    if (ch === "\\") {
      i++; // escaped character
      if (i >= selector.length) return "ends with a lone backslash";
      continue;
    }
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else if (code === 0x0a || code === 0x0d || code === 0x0c)
        return "a quoted string spans a line break";
      continue;
    }
    switch (ch) {
      case '"':
      case "'":
        quote = ch;
        break;
      case "[":
      case "(":
        stack.push(ch);
        break;
      case "]":
        if (stack.pop() !== "[") return `unbalanced "]" at position ${i}`;
        break;
      case ")":
        if (stack.pop() !== "(") return `unbalanced ")" at position ${i}`;
        break;
      case "{":
      case "}":
      case ";":
      case "<":
        return `unexpected ${JSON.stringify(ch)} at position ${i}`;
      case ",":
        if (stack.length === 0) {
          if (!sawPart) return `empty selector before "," at position ${i}`;
          sawPart = false;
        }
        break;
      default:
        if (!isCssSpace(code)) sawPart = true;
    }
  }
  if (quote !== undefined) return "unterminated quoted string";
  if (stack.length > 0) return `unclosed ${JSON.stringify(stack[stack.length - 1])}`;
  if (!sawPart) return 'ends with an empty selector after ","';
  const trimmed = selector.trimEnd();
  const last = trimmed[trimmed.length - 1];
  if (last === ">" || last === "+" || last === "~")
    return `ends with the combinator ${JSON.stringify(last)}`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Defaults

/**
 * Fills the fields a valid datafile may omit (as `datafile-schema.ts` declares them with
 * `.default`), copy-on-write: the input is never mutated, unchanged parts are shared. Only called
 * for a datafile that passed validation, and only when something was absent.
 */
function fillDefaults(df: Obj): Obj {
  const empty = () => [];
  const emptyObject = () => ({});
  let out = withDefaults(df, { featureFlags: empty, rollouts: empty });
  out = withField(
    out,
    "events",
    mapItems(out.events, (event) => withDefaults(event, { experimentIds: empty })),
  );
  out = withField(
    out,
    "rollouts",
    mapItems(out.rollouts, (rollout) =>
      withField(
        rollout,
        "experiments",
        mapItems(rollout.experiments, (rule) =>
          withDefaults(rule, { audienceIds: empty, forcedVariations: emptyObject }),
        ),
      ),
    ),
  );
  if (isObj(out.web)) {
    let web = withDefaults(out.web, {
      pages: empty,
      experiments: empty,
      events: empty,
      lists: empty,
      integrations: emptyObject,
    });
    web = withField(
      web,
      "experiments",
      mapItems(web.experiments, (experiment) => {
        let x = withDefaults(experiment, { metrics: empty });
        x = withField(
          x,
          "variations",
          mapItems(x.variations, (variation) => withDefaults(variation, { changes: empty })),
        );
        if (Array.isArray(x.sections)) {
          x = withField(
            x,
            "sections",
            mapItems(x.sections, (section) =>
              withField(
                section,
                "variations",
                mapItems(section.variations, (variation) =>
                  withDefaults(variation, { changes: empty }),
                ),
              ),
            ),
          );
        }
        return x;
      }),
    );
    out = withField(out, "web", web);
  }
  return out;
}

function withDefaults(obj: Obj, defaults: Record<string, () => unknown>): Obj {
  let out = obj;
  for (const key in defaults) {
    if (obj[key] === undefined) {
      if (out === obj) out = { ...obj };
      out[key] = defaults[key]!();
    }
  }
  return out;
}

function withField(obj: Obj, key: string, value: unknown): Obj {
  return obj[key] === value ? obj : { ...obj, [key]: value };
}

function mapItems(items: unknown, fn: (item: Obj) => Obj): unknown {
  if (!Array.isArray(items)) return items;
  let out: unknown[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item: unknown = items[i];
    if (!isObj(item)) continue;
    const mapped = fn(item);
    if (mapped !== item) (out ??= items.slice())[i] = mapped;
  }
  return out ?? items;
}
