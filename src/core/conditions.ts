/**
 * Audience evaluation, compiled once per datafile into closures, with results identical to the
 * official Optimizely JS SDK (`core/condition_tree_evaluator`, `core/audience_evaluator`,
 * `core/custom_attribute_condition_evaluator`).
 *
 * Why closures: audiences are evaluated on every page request, so all the work that depends only
 * on the datafile (parsing the JSON string, choosing the match type, validating the condition
 * value, parsing a condition's semver, folding constant sub-trees) is done once at compile time,
 * leaving per request only the attribute lookup and one comparison per leaf.
 *
 * Semantics worth knowing (all as the SDK, unless marked "Splitstream"):
 * - Three-valued logic: a leaf that cannot be evaluated (attribute missing, null, of the wrong type,
 *   out of range; unknown condition type or match type; invalid condition value) is `null`.
 *   `and`: false if any operand is false, else null if any is null, else true (`and` of nothing
 *   is true). `or`: true if any is true, else null if any is null, else false (`or` of nothing is
 *   false). `not`: negates its FIRST operand only; `not` of nothing or of null is null.
 * - An array whose first element is a string other than "and"/"or"/"not" is an implicit "or" of
 *   all its elements. An array whose first element is NOT a string (a leaf object, a nested array)
 *   is an "or" of the elements AFTER the first: the SDK silently drops that first element
 *   (`[leafA, leafB]` is just `leafB`; `[leaf]` and `[]` are false). Reproduced on purpose.
 * - Numbers must be `typeof "number"` with |x| <= 2^53 (so not NaN/±Infinity), both the
 *   condition's value and the attribute's; otherwise null.
 * - Attribute presence is an own-property test (an attribute named "constructor" is missing when
 *   not set), EXCEPT for `exists`, which the SDK evaluates with a plain property read on an
 *   ordinary object: `exists` on a name of an `Object.prototype` member ("constructor",
 *   "toString", "__proto__", ...) is TRUE even when the attribute is absent. An own "__proto__"
 *   attribute is invisible (the SDK copies attributes with Object.assign, which drops it), and an
 *   own "hasOwnProperty" attribute makes every custom_attribute leaf null (the SDK calls
 *   `attributes.hasOwnProperty(name)`, which then throws and is caught as null).
 * - `third_party_dimension` / `qualified` (ODP segments): false, as for an SDK user with no
 *   fetched segments.
 * - Splitstream `in_list`: see {@link compileLeafCondition}.
 *
 * Deliberate differences, only reachable with inputs a real datafile never has:
 * - A `null` leaf, or an experiment audience id that names an `Object.prototype` member
 *   ("constructor", "__proto__", ...), makes the SDK throw and the whole decision fail; here that
 *   leaf is just null (unknown), so a surrounding `or` can still be true.
 * - A function-valued "hasOwnProperty" attribute is called by the SDK; here it is treated like
 *   any other value of that attribute (every custom_attribute leaf null).
 * - An unparseable legacy `conditions` string makes the SDK reject the whole datafile; here only
 *   that audience is affected (always null).
 * - Attributes are assumed to be data (no getters) and Object.prototype not to be polluted with
 *   data properties.
 */

import { AUDIENCE_MATCH_TYPES, type MatchType } from "./datafile-parse";
import { compareParsedSemver, parseSemver, type ParsedSemver } from "./semver";

/** Three-valued logic result; `null` means unknown (cannot be evaluated). */
export type Tri = boolean | null;

/** What audience conditions are evaluated against. */
export interface EvalContext {
  /** The visitor's attributes. Read with own-property semantics (see the module comment). */
  attributes: Readonly<Record<string, unknown>>;
  /** user lists for the `in_list` match type: list key -> set of values */
  lists?: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * `isOrdinaryAttributes(attributes)`, when the caller computed it once for many evaluations
   * (a prepared visitor); absent means "check on every evaluation".
   */
  ordinary?: boolean;
}

/** A compiled condition (leaf or tree). Never throws for a well-formed {@link EvalContext}. */
export type Predicate = (ctx: EvalContext) => Tri;

/** Options of {@link compileConditionTree}. */
export interface ConditionTreeOptions {
  /**
   * How an array whose first element is not a string is read. `"optimizely"` (default): as the
   * SDK, an "or" of the elements after the first (the first is dropped). `"all"`: an "or" of all
   * elements. Audiences must use the default; the web extension's URL conditions (which no SDK
   * reads) use `"all"` so that `[{...}]` means what it says.
   */
  implicitOr?: "optimizely" | "all";
}

const MAX_SAFE = 2 ** 53;

// Shared constant predicates: compile-time folding recognises them by identity.
const ALWAYS_TRUE = (): Tri => true;
const ALWAYS_FALSE = (): Tri => false;
const ALWAYS_NULL = (): Tri => null;
const ALWAYS_TRUE_BOOL = (): boolean => true;
const ALWAYS_FALSE_BOOL = (): boolean => false;

const hasOwn: (o: object, key: PropertyKey) => boolean = Object.hasOwn;
const getPrototypeOf = Object.getPrototypeOf;
const OBJECT_PROTOTYPE: object = Object.prototype;
const OBJECT_HAS_OWN_PROPERTY: unknown = Object.prototype.hasOwnProperty;

function isArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Tree compiler
// ---------------------------------------------------------------------------------------------

/**
 * Generic and/or/not tree compiler with Optimizely's semantics (implicit "or" when the first
 * element is not an operator, as the SDK's condition_tree_evaluator does; "not" of empty/unknown =
 * null; and/or short-circuit with null propagation exactly as the SDK). Never throws: malformed
 * trees compile to a predicate returning null.
 *
 * Leaves are anything that is not an array, handed to `compileLeaf` as they are (so `L` is only
 * what the caller expects; validate inside `compileLeaf`). Because leaves are pure, and/or results
 * do not depend on operand order, which lets constant operands be folded away at compile time.
 *
 * @typeParam L - the leaf type `compileLeaf` accepts.
 * @typeParam C - the evaluation context (defaults to {@link EvalContext}).
 */
export function compileConditionTree<L, C = EvalContext>(
  tree: unknown,
  compileLeaf: (leaf: L) => (ctx: C) => Tri,
  options?: ConditionTreeOptions,
): (ctx: C) => Tri {
  const dropFirst = options?.implicitOr !== "all";
  try {
    return compileNode(tree, compileLeaf as (leaf: unknown) => (ctx: C) => Tri, dropFirst);
  } catch {
    // A throwing compileLeaf, a cyclic array (stack overflow), a hostile getter...
    return ALWAYS_NULL;
  }
}

function compileNode<C>(
  node: unknown,
  compileLeaf: (leaf: unknown) => (ctx: C) => Tri,
  dropFirst: boolean,
): (ctx: C) => Tri {
  if (!isArray(node)) return compileLeaf(node);
  const head = node[0];
  let op: "and" | "or" | "not";
  let start = 1;
  if (head === "and" || head === "or" || head === "not") {
    op = head;
  } else {
    op = "or";
    // The SDK keeps the first element only when it is a (non-operator) string.
    if (typeof head === "string" || !dropFirst) start = 0;
  }
  if (op === "not") {
    if (node.length <= start) return ALWAYS_NULL;
    return notOf(compileNode(node[start], compileLeaf, dropFirst));
  }
  const operands: Array<(ctx: C) => Tri> = [];
  for (let i = start; i < node.length; i++)
    operands.push(compileNode(node[i], compileLeaf, dropFirst));
  return op === "and" ? andOf(operands) : orOf(operands);
}

function notOf<C>(p: (ctx: C) => Tri): (ctx: C) => Tri {
  if (p === ALWAYS_TRUE) return ALWAYS_FALSE;
  if (p === ALWAYS_FALSE) return ALWAYS_TRUE;
  if (p === ALWAYS_NULL) return ALWAYS_NULL;
  return (ctx) => {
    const r = p(ctx);
    return r === null ? null : !r;
  };
}

function andOf<C>(operands: ReadonlyArray<(ctx: C) => Tri>): (ctx: C) => Tri {
  let sawNull = false;
  const live: Array<(ctx: C) => Tri> = [];
  for (const p of operands) {
    if (p === ALWAYS_FALSE) return ALWAYS_FALSE;
    if (p === ALWAYS_NULL) sawNull = true;
    else if (p !== ALWAYS_TRUE) live.push(p);
  }
  if (live.length === 0) return sawNull ? ALWAYS_NULL : ALWAYS_TRUE;
  const inner = andLive(live);
  // A constant-null operand: the result can only be false (some operand false) or null.
  return sawNull ? (ctx) => (inner(ctx) === false ? false : null) : inner;
}

function andLive<C>(ps: ReadonlyArray<(ctx: C) => Tri>): (ctx: C) => Tri {
  if (ps.length === 1) return ps[0]!;
  if (ps.length === 2) {
    const a = ps[0]!;
    const b = ps[1]!;
    return (ctx) => {
      const x = a(ctx);
      if (x === false) return false;
      const y = b(ctx);
      if (y === false) return false;
      return x === null || y === null ? null : true;
    };
  }
  return (ctx) => {
    let sawNull = false;
    for (let i = 0; i < ps.length; i++) {
      const r = ps[i]!(ctx);
      if (r === false) return false;
      if (r === null) sawNull = true;
    }
    return sawNull ? null : true;
  };
}

function orOf<C>(operands: ReadonlyArray<(ctx: C) => Tri>): (ctx: C) => Tri {
  let sawNull = false;
  const live: Array<(ctx: C) => Tri> = [];
  for (const p of operands) {
    if (p === ALWAYS_TRUE) return ALWAYS_TRUE;
    if (p === ALWAYS_NULL) sawNull = true;
    else if (p !== ALWAYS_FALSE) live.push(p);
  }
  if (live.length === 0) return sawNull ? ALWAYS_NULL : ALWAYS_FALSE;
  const inner = orLive(live);
  return sawNull ? (ctx) => (inner(ctx) === true ? true : null) : inner;
}

function orLive<C>(ps: ReadonlyArray<(ctx: C) => Tri>): (ctx: C) => Tri {
  if (ps.length === 1) return ps[0]!;
  if (ps.length === 2) {
    const a = ps[0]!;
    const b = ps[1]!;
    return (ctx) => {
      const x = a(ctx);
      if (x === true) return true;
      const y = b(ctx);
      if (y === true) return true;
      return x === null || y === null ? null : false;
    };
  }
  return (ctx) => {
    let sawNull = false;
    for (let i = 0; i < ps.length; i++) {
      const r = ps[i]!(ctx);
      if (r === true) return true;
      if (r === null) sawNull = true;
    }
    return sawNull ? null : false;
  };
}

// ---------------------------------------------------------------------------------------------
// Leaves
// ---------------------------------------------------------------------------------------------

/**
 * A compiled leaf plus whether it is a custom_attribute leaf whose result the SDK's
 * "hasOwnProperty" attribute quirk turns into null (see the module comment).
 */
interface CompiledLeaf {
  predicate: Predicate;
  poisonable: boolean;
}

const CONSTANT_NULL: CompiledLeaf = { predicate: ALWAYS_NULL, poisonable: false };
const CONSTANT_FALSE: CompiledLeaf = { predicate: ALWAYS_FALSE, poisonable: false };

function poisonable(predicate: Predicate): CompiledLeaf {
  return { predicate, poisonable: true };
}

/** A number the SDK accepts: typeof number and |x| <= 2^53 (false for NaN and ±Infinity). */
function isSafeNumber(value: unknown): value is number {
  return typeof value === "number" && Math.abs(value) <= MAX_SAFE;
}

function compileLeafInternal(leaf: unknown): CompiledLeaf {
  try {
    if (typeof leaf !== "object" || leaf === null) return CONSTANT_NULL;
    const condition = leaf as { type?: unknown; match?: unknown; name?: unknown; value?: unknown };
    const type = condition.type;
    if (type === "custom_attribute") return compileCustomAttribute(condition);
    if (type === "third_party_dimension") {
      // ODP segments: `qualified` (or no match) asks user.isQualifiedFor(value), which is false
      // for a user without fetched segments, and Splitstream has no segments.
      const match = condition.match;
      return match === undefined || match === "qualified" ? CONSTANT_FALSE : CONSTANT_NULL;
    }
    return CONSTANT_NULL;
  } catch {
    return CONSTANT_NULL;
  }
}

/**
 * custom_attribute match types: the SDK's plus `in_list` (`AUDIENCE_MATCH_TYPES`, shared with the
 * parser and the API). `exists` is in the set too but handled before the set is consulted.
 */
const MATCH_TYPES: ReadonlySet<string> = new Set<MatchType>(AUDIENCE_MATCH_TYPES);

function compileCustomAttribute(condition: {
  match?: unknown;
  name?: unknown;
  value?: unknown;
}): CompiledLeaf {
  const match = condition.match === undefined ? "exact" : condition.match;
  // Property keys are strings: the SDK's attributes[name] coerces a non-string name the same way.
  const key = String(condition.name);
  const value = condition.value;

  if (match === "exists") {
    // The SDK reads attributes[name] on an ordinary object, so a name inherited from
    // Object.prototype "exists" even when not set; an own "__proto__" is never copied.
    // (A fresh closure, not ALWAYS_TRUE: folding must not remove it, the quirk guard applies.)
    if (key === "__proto__") return poisonable(() => true);
    const inherited = key in OBJECT_PROTOTYPE;
    return poisonable((ctx) => {
      const a = ctx.attributes;
      const v = a[key];
      if (v !== undefined) return v !== null;
      // Not set or set to undefined (an inherited member is never undefined, but with
      // null-prototype attributes it must be supplied here).
      return inherited && !hasOwn(a, key);
    });
  }

  if (typeof match !== "string" || !MATCH_TYPES.has(match)) {
    return CONSTANT_NULL; // unknown match type (including null, "", "qualified")
  }
  // Every other match needs the attribute as an own property, which "__proto__" never is in the
  // SDK's copy of the attributes; the result is null whatever the quirk.
  if (key === "__proto__") return CONSTANT_NULL;

  switch (match as Exclude<MatchType, "exists">) {
    case "exact":
      return compileExact(key, value);
    case "gt":
    case "ge":
    case "lt":
    case "le":
      return compileNumeric(key, match as "gt" | "ge" | "lt" | "le", value);
    case "substring":
      if (typeof value !== "string") return CONSTANT_NULL;
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return typeof v === "string" ? v.includes(value) : null;
      });
    case "in_list":
      return compileInList(key, value);
    default:
      return compileSemverLeaf(key, match, value);
  }
}

function compileExact(key: string, value: unknown): CompiledLeaf {
  switch (typeof value) {
    case "string":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return typeof v === "string" ? v === value : null;
      });
    case "boolean":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return typeof v === "boolean" ? v === value : null;
      });
    case "number":
      if (!isSafeNumber(value)) return CONSTANT_NULL;
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return isSafeNumber(v) ? v === value : null;
      });
    default:
      return CONSTANT_NULL;
  }
}

function compileNumeric(
  key: string,
  match: "gt" | "ge" | "lt" | "le",
  value: unknown,
): CompiledLeaf {
  if (!isSafeNumber(value)) return CONSTANT_NULL;
  // One closure per operator keeps the comparison monomorphic (no operator dispatch per call).
  switch (match) {
    case "gt":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return isSafeNumber(v) ? v > value : null;
      });
    case "ge":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return isSafeNumber(v) ? v >= value : null;
      });
    case "lt":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return isSafeNumber(v) ? v < value : null;
      });
    case "le":
      return poisonable((ctx) => {
        const v = ctx.attributes[key];
        return isSafeNumber(v) ? v <= value : null;
      });
  }
}

function compileSemverLeaf(key: string, match: string, value: unknown): CompiledLeaf {
  if (typeof value !== "string") return CONSTANT_NULL;
  const condition = parseSemver(value);
  // An invalid condition version makes every comparison null, whatever the user sends.
  if (condition === null) return CONSTANT_NULL;
  const test = SEMVER_TESTS[match];
  if (test === undefined) return CONSTANT_NULL;
  return poisonable((ctx) => {
    const v = ctx.attributes[key];
    if (typeof v !== "string") return null;
    // The same version attribute is usually compared by several leaves in a row.
    if (v !== lastUserVersion) {
      lastUserVersion = v;
      lastUserParsed = parseSemver(v);
    }
    const user = lastUserParsed;
    return user === null ? null : test(compareParsedSemver(condition, user));
  });
}

// Single-entry cache of the last user version parsed (parsed versions are immutable).
let lastUserVersion: string | undefined;
let lastUserParsed: ParsedSemver | null = null;

const SEMVER_TESTS: Readonly<Record<string, (order: -1 | 0 | 1) => boolean>> = {
  semver_eq: (o) => o === 0,
  semver_gt: (o) => o > 0,
  semver_ge: (o) => o >= 0,
  semver_lt: (o) => o < 0,
  semver_le: (o) => o <= 0,
};

function compileInList(key: string, listKey: unknown): CompiledLeaf {
  if (typeof listKey !== "string") return CONSTANT_NULL;
  return poisonable((ctx) => {
    const list = ctx.lists?.get(listKey);
    if (list === undefined) return null;
    const v = ctx.attributes[key];
    if (typeof v === "string") return list.has(v);
    // Numbers as their canonical JS string (12 -> "12", 1.5 -> "1.5", -0 -> "0"), with the same
    // finiteness/2^53 bound as the numeric match types. Booleans and anything else: unknown.
    if (isSafeNumber(v)) return list.has(String(v));
    return null;
  });
}

/**
 * Leaves read `attributes[name]` directly. That equals the SDK's own-property semantics only for
 * attributes whose prototype is Object.prototype (its members are functions or objects, which no
 * match type accepts, so an inherited one reads as "wrong type" = null, like a missing one) or
 * null, and that have no own "hasOwnProperty". This wrapper checks that once per evaluation:
 * - own "hasOwnProperty" (other than the real one): `poisoned()`, the tree with every
 *   custom_attribute leaf null, as in the SDK (its `attributes.hasOwnProperty(name)` throws);
 * - any other prototype: the leaves run on a plain copy of the own enumerable attributes, which
 *   is what the SDK evaluates (it copies them with Object.assign; "__proto__" does not survive).
 * Assumes Object.prototype itself has not been polluted with data properties.
 */
function guardAttributes(normal: Predicate, poisoned: () => Predicate): Predicate {
  let poisonedTree: Predicate | undefined;
  const unusual = (ctx: EvalContext): Tri => {
    const a = ctx.attributes;
    if (hasOwn(a, "hasOwnProperty") && a.hasOwnProperty !== OBJECT_HAS_OWN_PROPERTY) {
      return (poisonedTree ??= poisoned())(ctx);
    }
    const copy: Record<string, unknown> = {};
    for (const k of Object.keys(a)) if (k !== "__proto__") copy[k] = a[k];
    return normal({ attributes: copy, lists: ctx.lists });
  };
  return (ctx) =>
    (ctx.ordinary ?? isOrdinaryAttributes(ctx.attributes)) ? normal(ctx) : unusual(ctx);
}

/**
 * Whether leaves may read `attributes[name]` directly: a plain object (or null-prototype one)
 * without an own "hasOwnProperty". Anything else goes through the SDK-exact slow path.
 */
export function isOrdinaryAttributes(a: Readonly<Record<string, unknown>>): boolean {
  const proto: unknown = getPrototypeOf(a);
  return proto === OBJECT_PROTOTYPE
    ? a.hasOwnProperty === OBJECT_HAS_OWN_PROPERTY
    : proto === null && !("hasOwnProperty" in a);
}

/**
 * One custom_attribute leaf: {type, name, match?, value}. Non-"custom_attribute" type, unknown
 * match type, wrong value type for the match -> predicate returns null (as the SDK).
 *
 * Match types: `exact` (also when `match` is absent; string/boolean/number, same type required),
 * `exists`, `substring`, `gt`/`ge`/`lt`/`le`, `semver_eq`/`semver_gt`/`semver_ge`/`semver_lt`/
 * `semver_le` (see ./semver), the ODP `qualified` (type `third_party_dimension`; false), and
 * Splitstream's `in_list`: `value` is a list key looked up in {@link EvalContext.lists} (unknown
 * list -> null); true when the attribute, a string or a number with |x| <= 2^53 written as
 * `String(x)`, is in the list; false when not; null for a missing/null/boolean/other attribute.
 */
export function compileLeafCondition(leaf: unknown): Predicate {
  const compiled = compileLeafInternal(leaf);
  if (!compiled.poisonable) return compiled.predicate;
  return guardAttributes(compiled.predicate, () => ALWAYS_NULL);
}

// ---------------------------------------------------------------------------------------------
// Audiences and experiments
// ---------------------------------------------------------------------------------------------

/**
 * An audience's conditions: a JSON string (legacy `audiences[].conditions`) or an already parsed
 * tree (typedAudiences). Unparseable string -> predicate that returns null.
 *
 * The returned predicate checks the attributes object once per call (see guardAttributes) and
 * then runs a tree whose leaves read attributes directly.
 */
export function compileAudienceConditions(conditions: unknown): Predicate {
  let tree: unknown = conditions;
  if (typeof conditions === "string") {
    try {
      tree = JSON.parse(conditions);
    } catch {
      return ALWAYS_NULL;
    }
  }
  let anyPoisonable = false;
  const normal = compileConditionTree<unknown>(tree, (leaf) => {
    const compiled = compileLeafInternal(leaf);
    if (compiled.poisonable) anyPoisonable = true;
    return compiled.predicate;
  });
  if (
    !anyPoisonable ||
    normal === ALWAYS_NULL ||
    normal === ALWAYS_TRUE ||
    normal === ALWAYS_FALSE
  ) {
    // Folding already removed every attribute-dependent leaf, or there never was one.
    return normal;
  }
  // Rare (only a visitor sending an attribute named "hasOwnProperty"): compiled on first need.
  return guardAttributes(normal, () =>
    compileConditionTree<unknown>(tree, (leaf) => {
      const compiled = compileLeafInternal(leaf);
      return compiled.poisonable ? ALWAYS_NULL : compiled.predicate;
    }),
  );
}

/**
 * An experiment's targeting: `audienceConditions` if defined (a tree over audience ids, or a
 * single id string), else `audienceIds` (treated as ["or", ...ids]). Empty conditions/ids ->
 * always true. An id missing from `audiences` evaluates to null. Returns a predicate giving the
 * final boolean (null counts as false, like the SDK).
 *
 * Exactly as the SDK: `audienceConditions` is used when it is truthy (so `""` or `null` fall back
 * to `audienceIds`, while `[]` means "everyone"); the chosen value is "empty" when falsy or of
 * length 0; `audienceIds` is itself read as a tree (an id list is an implicit "or"). Audience ids
 * are resolved against `audiences` once, here, so the map must be complete when this is called.
 */
export function compileExperimentAudiences(
  audienceConditions: unknown,
  audienceIds: readonly string[],
  audiences: ReadonlyMap<string, Predicate>,
): (ctx: EvalContext) => boolean {
  try {
    const conditions: unknown = audienceConditions ? audienceConditions : audienceIds;
    if (!conditions || (conditions as { length?: unknown }).length === 0) return ALWAYS_TRUE_BOOL;
    const tree = compileConditionTree<unknown>(conditions, (id) => {
      // The SDK indexes an object with the id, so a non-string id is coerced the same way.
      const predicate = audiences.get(typeof id === "string" ? id : String(id));
      return predicate ?? ALWAYS_NULL;
    });
    if (tree === ALWAYS_TRUE) return ALWAYS_TRUE_BOOL;
    if (tree === ALWAYS_FALSE || tree === ALWAYS_NULL) return ALWAYS_FALSE_BOOL;
    return (ctx) => tree(ctx) === true;
  } catch {
    return ALWAYS_FALSE_BOOL;
  }
}

// ---------------------------------------------------------------------------------------------
// Explanations
// ---------------------------------------------------------------------------------------------

/**
 * For explanations: a short human-readable rendering of a condition tree, e.g.
 * `(country exact "US" AND NOT browser.name substring "Edge")`. Renders what is evaluated, so an
 * array that starts with a non-string shows without its (ignored) first element. Audience
 * condition strings are parsed first; audience-id leaves render through `describeLeaf`
 * (default: `audience "<id>"`).
 */
export function describeConditions(
  conditions: unknown,
  describeLeaf: (leaf: unknown) => string = describeLeafDefault,
): string {
  let tree = conditions;
  if (typeof conditions === "string" && /^\s*[[{]/.test(conditions)) {
    try {
      tree = JSON.parse(conditions);
    } catch {
      return "(unparseable conditions)";
    }
  }
  try {
    return describeNode(tree, describeLeaf, 0);
  } catch {
    return "(invalid conditions)";
  }
}

function describeNode(
  node: unknown,
  describeLeaf: (leaf: unknown) => string,
  depth: number,
): string {
  if (depth > 50) return "…";
  if (!isArray(node)) return describeLeaf(node);
  const head = node[0];
  let op = "or";
  let start = 1;
  if (head === "and" || head === "or" || head === "not") op = head;
  else if (typeof head === "string") start = 0;
  const parts = node.slice(start).map((n) => describeNode(n, describeLeaf, depth + 1));
  if (op === "not") return parts.length === 0 ? "NOT (nothing)" : `NOT ${parts[0]}`;
  if (parts.length === 0) return op === "and" ? "(everyone)" : "(no one)";
  if (parts.length === 1) return parts[0]!;
  return `(${parts.join(op === "and" ? " AND " : " OR ")})`;
}

function describeLeafDefault(leaf: unknown): string {
  if (typeof leaf === "string") return `audience ${JSON.stringify(leaf)}`;
  if (typeof leaf !== "object" || leaf === null) return String(leaf);
  const c = leaf as { type?: unknown; match?: unknown; name?: unknown; value?: unknown };
  if (c.type === "third_party_dimension") return `segment ${JSON.stringify(c.value)}`;
  const name = String(c.name);
  const match = c.match === undefined ? "exact" : String(c.match);
  if (match === "exists") return `${name} exists`;
  const prefix = c.type === "custom_attribute" ? "" : `[${String(c.type)}] `;
  return `${prefix}${name} ${match} ${JSON.stringify(c.value) ?? "undefined"}`;
}
