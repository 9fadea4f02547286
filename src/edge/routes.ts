/**
 * `ROUTES` (docs/config.md): which hosts and paths Splitstream works on, which
 * datafile decides there, and the per-site policies. Parsed and validated once per isolate per
 * raw value; patterns are compiled at parse time so matching a request is a few string
 * comparisons.
 *
 * Pattern matching follows Cloudflare Workers route patterns
 * (https://developers.cloudflare.com/workers/configuration/routing/routes/):
 * - optional scheme `http://` or `https://` (absent: both);
 * - host: exact, or `*.example.com` (subdomains of any depth, not the apex), or `*example.com`
 *   (the apex and its subdomains), or `*` alone (any host — a Splitstream extension, handy for
 *   previews on changing hostnames). Case-insensitive; ports never take part (`localhost/*`
 *   matches `http://localhost:8787/…`);
 * - path: exact, or ending in `*` (prefix); no wildcard elsewhere; no path = `/`. Case-sensitive.
 * One deliberate difference: the query string is ignored (`example.com/` matches `/?a=1`).
 * Unlike Workers routes, where the most specific pattern wins, here the first matching entry wins.
 */
import { formatPath, formatProblems, type Problem } from "../core/problem";
import {
  CONSENT_DEFAULTS,
  CONSENT_MANAGERS,
  COOKIEBOT_CATEGORIES,
  DENY_ALL_CONSENT,
  TCF_MAX_PURPOSE,
  TCF_MAX_VENDOR,
  type ConsentConfig,
  type ConsentManager,
} from "../shared/consent";

export interface RouteConfig {
  /** Host + path pattern, as written in the config. */
  pattern: string;
  /** Whose datafile decides (`datafiles/{sdkKey}` in KV). */
  sdkKey: string;
  /** Base URL pages are fetched from (`scheme://host[:port][/prefix]`, no trailing slash); null = `fetch(request)`. */
  origin: string | null;
  /** How long the edge waits for the origin's response headers before answering 504 (ms). */
  originTimeoutMs: number;
  /** Path globs (`*` = any characters, `/` included) that always pass through untouched. */
  excludePaths: string[];
  /** `Domain` attribute of Splitstream's cookies; null = host-only cookies. */
  cookieDomain: string | null;
  /** Lifetime of `ss_vid`, `ss_dec`, `ss_attrs` in days (1..400). */
  cookieMaxAgeDays: number;
  /** `original`: bots get the original page, no cookies, no events. `decide`: bots are treated like visitors (still no events). */
  botPolicy: "original" | "decide";
  /** `respect`: `Sec-GPC: 1` → original page, no tracking. */
  gpcPolicy: "respect" | "ignore";
  /**
   * When set, tracking (cookies + events) only while the consent manager's cookie grants it
   * (src/shared/consent.ts); from `consent`, or the older `consent_cookie` (plain-cookie mode).
   * DENY_ALL_CONSENT when that config has an error: the route stays, tracking no one.
   */
  consent: ConsentConfig | null;
  /** Serve `/_ss/api` on this route. */
  serveApi: boolean;
  /** Serve `/_ss/admin` on this route. */
  serveAdmin: boolean;
  /** Send `x-ss-decisions` on responses. */
  exposeDecisions: boolean;
  /** Extra origins (`https://app.example.com`) allowed to POST `/_ss/events` with credentials. */
  corsOrigins: string[];
  /** Install the `window.optimizely` compatibility shim in the client. */
  optimizelyShim: boolean;
  /**
   * Keep pages the origin marks cacheable in the Cache API, one copy per variant
   * (docs/caching.md); off = every page view goes to the origin.
   */
  cacheVariants: boolean;
}

/** What an sdkKey may contain: it names a KV key and a URL path segment. Shared with the datafile endpoint. */
export const SDK_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const ROUTE_DEFAULTS = {
  origin: null,
  originTimeoutMs: 15_000,
  excludePaths: [],
  cookieDomain: null,
  cookieMaxAgeDays: 365,
  botPolicy: "original",
  gpcPolicy: "respect",
  consent: null,
  serveApi: true,
  serveAdmin: true,
  exposeDecisions: true,
  corsOrigins: [],
  optimizelyShim: false,
  cacheVariants: true,
} as const satisfies Omit<RouteConfig, "pattern" | "sdkKey">;

/** Config keys (snake_case) in documentation order; anything else is reported. */
export const ROUTE_KEYS = [
  "pattern",
  "sdk_key",
  "origin",
  "origin_timeout_ms",
  "exclude_paths",
  "cookie_domain",
  "cookie_max_age_days",
  "bot_policy",
  "gpc_policy",
  "consent",
  "consent_cookie",
  "serve_api",
  "serve_admin",
  "expose_decisions",
  "cors_origins",
  "optimizely_shim",
  "cache_variants",
] as const;

// ---------------------------------------------------------------------------------------------
// Compiled matchers. Kept outside RouteConfig (a WeakMap) so the config stays plain data; a
// RouteConfig built by hand (tests, other modules) is compiled on first use.

interface CompiledRoute {
  scheme: "http:" | "https:" | null;
  /** `exact`: host === value; `sub`: host ends with `.value`; `apexOrSub`: either; `any`. */
  hostKind: "exact" | "sub" | "apexOrSub" | "any";
  host: string;
  /** Path must equal this, or (when `pathPrefix`) start with it. */
  path: string;
  pathPrefix: boolean;
  excludes: RegExp[];
}

const compiledRoutes = new WeakMap<RouteConfig, CompiledRoute>();

type PatternResult =
  { ok: true; compiled: Omit<CompiledRoute, "excludes"> } | { ok: false; message: string };

function normalizeHost(host: string): string | null {
  try {
    const url = new URL(`http://${host}/`);
    // `new URL` accepts some things a hostname must not carry (`a@b`, `a:80`); require a round trip.
    if (url.username || url.password || url.port) return null;
    return url.hostname;
  } catch {
    return null;
  }
}

function normalizePath(path: string): string {
  // Make the pattern comparable with `URL.pathname`, which percent-encodes non-ASCII and spaces.
  return /[^\x21-\x7e]/.test(path) ? encodeURI(path) : path;
}

function compilePattern(pattern: string): PatternResult {
  let rest = pattern;
  let scheme: CompiledRoute["scheme"] = null;
  const schemeMatch = /^(https?):\/\//i.exec(rest);
  if (schemeMatch) {
    scheme = schemeMatch[1]!.toLowerCase() === "https" ? "https:" : "http:";
    rest = rest.slice(schemeMatch[0].length);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    return {
      ok: false,
      message: "only http:// or https:// may start a pattern (or no scheme: both)",
    };
  }
  if (/[?#]/.test(rest))
    return {
      ok: false,
      message: "a pattern has no query or fragment (the query is ignored when matching)",
    };
  if (/\s/.test(rest)) return { ok: false, message: "a pattern has no whitespace" };
  const slash = rest.indexOf("/");
  const hostPart = (slash === -1 ? rest : rest.slice(0, slash)).toLowerCase();
  let pathPart = slash === -1 ? "/" : rest.slice(slash);
  if (hostPart === "")
    return { ok: false, message: 'a pattern starts with a host, e.g. "shop.example.com/*"' };

  let hostKind: CompiledRoute["hostKind"];
  let hostRest: string;
  if (hostPart === "*") {
    hostKind = "any";
    hostRest = "";
  } else if (hostPart.startsWith("*.")) {
    hostKind = "sub";
    hostRest = hostPart.slice(2);
  } else if (hostPart.startsWith("*")) {
    hostKind = "apexOrSub";
    hostRest = hostPart.slice(1);
  } else {
    hostKind = "exact";
    hostRest = hostPart;
  }
  let host = "";
  if (hostKind !== "any") {
    if (hostRest.includes("*"))
      return { ok: false, message: "a host may only start with * (e.g. *.example.com)" };
    if (/:\d*$/.test(hostRest) && !hostRest.endsWith("]")) {
      return { ok: false, message: "a pattern has no port: localhost/* matches every port" };
    }
    const normalized = normalizeHost(hostRest);
    if (normalized === null || normalized === "")
      return { ok: false, message: `"${hostRest}" is not a valid host` };
    host = normalized;
  }

  const star = pathPart.indexOf("*");
  if (star !== -1 && star !== pathPart.length - 1) {
    return {
      ok: false,
      message:
        "a path may only end with * (no infix wildcard); use exclude_paths for globs like *.png",
    };
  }
  const pathPrefix = star !== -1;
  if (pathPrefix) pathPart = pathPart.slice(0, -1);
  return {
    ok: true,
    compiled: { scheme, hostKind, host, path: normalizePath(pathPart), pathPrefix },
  };
}

function globToRegExp(glob: string): RegExp {
  const source = glob
    .split("*")
    .map((part) => normalizePath(part).replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
    .join(".*");
  return new RegExp(`^${source}$`);
}

function compileRoute(route: RouteConfig): CompiledRoute | null {
  const cached = compiledRoutes.get(route);
  if (cached) return cached;
  const result = compilePattern(route.pattern);
  if (!result.ok) return null;
  const compiled: CompiledRoute = {
    ...result.compiled,
    excludes: route.excludePaths.map(globToRegExp),
  };
  compiledRoutes.set(route, compiled);
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Keys of the `consent` table, in documentation order. */
export const CONSENT_KEYS = [
  "manager",
  "cookie",
  "category",
  "purposes",
  "vendor",
  "accept",
] as const;

/** RFC 6265 cookie-name token. */
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A OneTrust group id: `C0002`, `SPD_BG`, `V2STACK42`, or the numeric ids of old setups (`2`). */
const ONETRUST_GROUP = /^[A-Za-z0-9_-]{1,64}$/;

// The shape of one route entry, checked by hand rather than with zod: importing zod costs every
// isolate that serves a page ≈ 20 ms of start-up (docs/architecture.md "Start-up"), and this is
// the only zod the page path would need (src/core/datafile-parse.ts avoids it the same way). The
// checks, their order and their messages are the ones the zod schema had.

/** One shape problem: at `path`, a wrong type, unknown keys (`keys`), or a failed check. */
interface ShapeIssue {
  path: Array<string | number>;
  code: "invalid_type" | "unrecognized_keys" | "invalid_value";
  message: string;
  keys?: string[];
}

type Check<T> = readonly [(value: T) => boolean, string, boolean?];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** How zod names a value's type in its default messages. */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return typeof value;
}

class ShapeChecker {
  readonly issues: ShapeIssue[] = [];

  private type(path: Array<string | number>, message: string): void {
    this.issues.push({ path, code: "invalid_type", message });
  }

  private run<T>(path: Array<string | number>, value: T, checks: ReadonlyArray<Check<T>>): void {
    for (const [ok, message, abort] of checks) {
      if (ok(value)) continue;
      this.issues.push({ path, code: "invalid_value", message });
      // A fraction is reported as that alone, not also as out of range.
      if (abort === true) return;
    }
  }

  /** The value at `key`; `undefined` (and, unless required, null) means "absent". */
  private present(
    object: Record<string, unknown>,
    key: string,
    required: boolean,
    path: Array<string | number>,
    typeMessage: string,
  ): boolean {
    const value = object[key];
    if (value === undefined || (value === null && !required)) {
      if (required) this.type(path, typeMessage);
      return false;
    }
    return true;
  }

  string(
    object: Record<string, unknown>,
    key: string,
    path: Array<string | number>,
    typeMessage: string,
    checks: ReadonlyArray<Check<string>> = [],
    required = false,
  ): void {
    if (!this.present(object, key, required, path, typeMessage)) return;
    const value = object[key];
    if (typeof value !== "string") return this.type(path, typeMessage);
    this.run(path, value, checks);
  }

  number(
    object: Record<string, unknown>,
    key: string,
    path: Array<string | number>,
    typeMessage: string,
    checks: ReadonlyArray<Check<number>>,
  ): void {
    if (!this.present(object, key, false, path, typeMessage)) return;
    this.numberValue(object[key], path, typeMessage, checks);
  }

  numberValue(
    value: unknown,
    path: Array<string | number>,
    typeMessage: string,
    checks: ReadonlyArray<Check<number>>,
  ): void {
    if (typeof value !== "number" || !Number.isFinite(value)) return this.type(path, typeMessage);
    this.run(path, value, checks);
  }

  boolean(object: Record<string, unknown>, key: string, message: string): void {
    if (!this.present(object, key, false, [key], message)) return;
    if (typeof object[key] !== "boolean") this.type([key], message);
  }

  oneOf(
    object: Record<string, unknown>,
    key: string,
    path: Array<string | number>,
    values: readonly string[],
    message: string,
    required = false,
  ): void {
    if (!this.present(object, key, required, path, message)) return;
    const value = object[key];
    if (typeof value !== "string" || !values.includes(value))
      this.issues.push({ path, code: "invalid_value", message });
  }

  strings(object: Record<string, unknown>, key: string, elementMessage: string): void {
    if (!this.present(object, key, false, [key], "")) return;
    const value = object[key];
    if (!Array.isArray(value))
      return this.type([key], `Invalid input: expected array, received ${typeName(value)}`);
    value.forEach((item, i) => {
      if (typeof item !== "string") this.type([key, i], elementMessage);
    });
  }

  /** A string, or a non-empty list of strings. */
  stringOrList(
    object: Record<string, unknown>,
    key: string,
    path: Array<string | number>,
    message: string,
  ): void {
    if (!this.present(object, key, false, path, message)) return;
    const value = object[key];
    const ok =
      typeof value === "string" ||
      (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string"));
    if (!ok) this.issues.push({ path, code: "invalid_value", message });
  }

  unknownKeys(
    object: Record<string, unknown>,
    known: readonly string[],
    path: Array<string | number>,
  ): void {
    const keys = Object.keys(object).filter((key) => !known.includes(key));
    if (keys.length > 0)
      this.issues.push({ path, code: "unrecognized_keys", message: "unknown keys", keys });
  }
}

const integer: Check<number> = [Number.isInteger, "", true];
const withMessage = <T>([ok, , abort]: Check<T>, message: string): Check<T> => [ok, message, abort];
const atLeast = (min: number, message: string): Check<number> => [(v) => v >= min, message];
const atMost = (max: number, message: string): Check<number> => [(v) => v <= max, message];

function checkConsentShape(checker: ShapeChecker, raw: unknown): void {
  if (!isPlainObject(raw)) {
    checker.issues.push({
      path: ["consent"],
      code: "invalid_type",
      message: 'consent must be a table/object, e.g. { manager = "onetrust" }',
    });
    return;
  }
  const at = (key: string) => ["consent", key];
  checker.oneOf(
    raw,
    "manager",
    at("manager"),
    CONSENT_MANAGERS,
    `consent.manager must be one of ${CONSENT_MANAGERS.map((m) => `"${m}"`).join(", ")}`,
    true,
  );
  checker.string(raw, "cookie", at("cookie"), "consent.cookie must be a string (a cookie name)", [
    [(v) => COOKIE_NAME.test(v), "consent.cookie must be a cookie name"],
  ]);
  checker.stringOrList(
    raw,
    "category",
    at("category"),
    "consent.category must be a string or a non-empty list of strings",
  );
  const purposes = raw.purposes;
  if (purposes !== undefined && purposes !== null) {
    if (!Array.isArray(purposes)) {
      checker.issues.push({
        path: at("purposes"),
        code: "invalid_type",
        message: "consent.purposes must be a list of TCF purpose numbers, e.g. [1]",
      });
    } else {
      const range = `each of consent.purposes must be 1-${TCF_MAX_PURPOSE} (TCF v2.2 purposes)`;
      purposes.forEach((purpose, i) =>
        checker.numberValue(
          purpose,
          ["consent", "purposes", i],
          "each of consent.purposes must be a TCF purpose number",
          [
            withMessage(integer, "each of consent.purposes must be a whole number"),
            atLeast(1, range),
            atMost(TCF_MAX_PURPOSE, range),
          ],
        ),
      );
      if (purposes.length === 0)
        checker.issues.push({
          path: at("purposes"),
          code: "invalid_value",
          message: "consent.purposes must not be empty (purpose 1 is the one that covers cookies)",
        });
    }
  }
  const vendorRange = `consent.vendor must be a TCF vendor id, 1-${TCF_MAX_VENDOR}`;
  checker.number(raw, "vendor", at("vendor"), "consent.vendor must be a TCF vendor id (a number)", [
    withMessage(integer, "consent.vendor must be a whole number"),
    atLeast(1, vendorRange),
    atMost(TCF_MAX_VENDOR, vendorRange),
  ]);
  checker.stringOrList(
    raw,
    "accept",
    at("accept"),
    "consent.accept must be a string or a non-empty list of strings",
  );
  checker.unknownKeys(raw, CONSENT_KEYS, ["consent"]);
}

/** Every shape problem of one route entry, in the order of the keys (docs/config.md "Keys"). */
function checkRouteShape(raw: unknown): ShapeIssue[] {
  const checker = new ShapeChecker();
  if (!isPlainObject(raw)) {
    checker.issues.push({ path: [], code: "invalid_type", message: "not an object" });
    return checker.issues;
  }
  checker.string(
    raw,
    "pattern",
    ["pattern"],
    "pattern must be a string",
    [[(v) => v.length >= 1, "pattern must not be empty"]],
    true,
  );
  checker.string(
    raw,
    "sdk_key",
    ["sdk_key"],
    "sdk_key must be a string",
    [
      [
        (v) => SDK_KEY_PATTERN.test(v),
        "sdk_key must be 1-128 characters: letters, digits, _ . - (starting with a letter or digit)",
      ],
    ],
    true,
  );
  checker.string(raw, "origin", ["origin"], "origin must be a URL string");
  checker.number(
    raw,
    "origin_timeout_ms",
    ["origin_timeout_ms"],
    "origin_timeout_ms must be a number (milliseconds)",
    [
      withMessage(integer, "origin_timeout_ms must be a whole number of milliseconds"),
      atLeast(100, "origin_timeout_ms must be at least 100"),
      atMost(
        100_000,
        "origin_timeout_ms must be at most 100000 (Cloudflare ends a proxied request after 100 s anyway)",
      ),
    ],
  );
  checker.strings(raw, "exclude_paths", "each exclude path must be a string");
  checker.string(raw, "cookie_domain", ["cookie_domain"], "cookie_domain must be a string");
  checker.number(
    raw,
    "cookie_max_age_days",
    ["cookie_max_age_days"],
    "cookie_max_age_days must be a number",
    [
      withMessage(integer, "cookie_max_age_days must be a whole number of days"),
      atLeast(1, "cookie_max_age_days must be at least 1"),
      atMost(
        400,
        "cookie_max_age_days must be at most 400 (browsers cap cookie lifetimes at 400 days)",
      ),
    ],
  );
  checker.oneOf(
    raw,
    "bot_policy",
    ["bot_policy"],
    ["original", "decide"],
    'Invalid option: expected one of "original"|"decide"',
  );
  checker.oneOf(
    raw,
    "gpc_policy",
    ["gpc_policy"],
    ["respect", "ignore"],
    'Invalid option: expected one of "respect"|"ignore"',
  );
  if (raw.consent !== undefined && raw.consent !== null) checkConsentShape(checker, raw.consent);
  checker.string(raw, "consent_cookie", ["consent_cookie"], "consent_cookie must be a string", [
    [(v) => COOKIE_NAME.test(v), "consent_cookie must be a cookie name"],
  ]);
  checker.boolean(raw, "serve_api", "serve_api must be true or false");
  checker.boolean(raw, "serve_admin", "serve_admin must be true or false");
  checker.boolean(raw, "expose_decisions", "expose_decisions must be true or false");
  checker.strings(raw, "cors_origins", "each CORS origin must be a string");
  checker.boolean(raw, "optimizely_shim", "optimizely_shim must be true or false");
  checker.boolean(raw, "cache_variants", "cache_variants must be true or false");
  checker.unknownKeys(raw, ROUTE_KEYS, []);
  return checker.issues;
}

type RawRoute = {
  pattern: string;
  sdk_key: string;
  origin?: string | null;
  origin_timeout_ms?: number | null;
  exclude_paths?: string[] | null;
  cookie_domain?: string | null;
  cookie_max_age_days?: number | null;
  bot_policy?: "original" | "decide" | null;
  gpc_policy?: "respect" | "ignore" | null;
  consent?: RawConsent | null;
  consent_cookie?: string | null;
  serve_api?: boolean | null;
  serve_admin?: boolean | null;
  expose_decisions?: boolean | null;
  cors_origins?: string[] | null;
  optimizely_shim?: boolean | null;
  cache_variants?: boolean | null;
};

type RawConsent = {
  manager: ConsentManager;
  cookie?: string | null;
  category?: string | string[] | null;
  purposes?: number[] | null;
  vendor?: number | null;
  accept?: string | string[] | null;
};

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}

function unknownKeyMessage(key: string, knownKeys: readonly string[] = ROUTE_KEYS): string {
  const lower = key.toLowerCase().replace(/-/g, "_");
  let best: string | null = null;
  let bestScore = Infinity;
  for (const known of knownKeys) {
    // Prefix matches ("exclude" → "exclude_paths") and near misses ("sdkKey" → "sdk_key").
    const score =
      known.startsWith(lower) || lower.startsWith(known)
        ? 1
        : editDistance(lower.replace(/_/g, ""), known.replace(/_/g, ""));
    if (score < bestScore) {
      bestScore = score;
      best = known;
    }
  }
  const hint = best !== null && bestScore <= 3 ? ` (did you mean "${best}"?)` : "";
  return `unknown key "${key}"${hint}; known keys: ${knownKeys.join(", ")}`;
}

/** The value at `segments` inside `raw` (undefined when any step is missing). */
function valueAt(raw: unknown, segments: ReadonlyArray<string | number>): unknown {
  let value = raw;
  for (const segment of segments) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[segment];
  }
  return value;
}

/**
 * `consent` (or the older `consent_cookie`) checked and filled with the manager's defaults
 * (docs/config.md `consent`); problems are reported through `error`, and then null is returned.
 */
function parseConsent(
  entry: RawRoute,
  error: (segments: ReadonlyArray<string | number>, message: string) => void,
): ConsentConfig | null {
  if (entry.consent_cookie != null) {
    if (entry.consent != null) {
      error(
        ["consent_cookie"],
        `use either consent or consent_cookie, not both (consent_cookie = "${entry.consent_cookie}" is short for consent = { manager = "cookie", cookie = "${entry.consent_cookie}" })`,
      );
      return null;
    }
    // The plain-cookie mode, now with an explicit accept list instead of "anything but no".
    return {
      manager: "cookie",
      cookie: entry.consent_cookie,
      accept: [...CONSENT_DEFAULTS.cookie.accept],
    };
  }
  const raw = entry.consent;
  if (raw == null) return null;
  const { manager } = raw;
  let ok = true;
  const fail = (key: string, message: string) => {
    error(["consent", key], message);
    ok = false;
  };
  const only = (key: "category" | "purposes" | "vendor" | "accept", managers: string) => {
    if (raw[key] != null)
      fail(key, `consent.${key} applies to manager ${managers} only, not "${manager}"`);
  };
  const list = (value: string | string[]) => (typeof value === "string" ? [value] : value);

  if (manager !== "onetrust" && manager !== "cookiebot")
    only("category", '"onetrust" or "cookiebot"');
  if (manager !== "tcf") {
    only("purposes", '"tcf"');
    only("vendor", '"tcf"');
  }
  if (manager !== "cookie") only("accept", '"cookie"');

  let config: ConsentConfig | null = null;
  switch (manager) {
    case "onetrust": {
      const categories = list(raw.category ?? [...CONSENT_DEFAULTS.onetrust.categories]);
      for (const id of categories)
        if (!ONETRUST_GROUP.test(id))
          fail("category", `consent.category "${id}" is not a OneTrust group id (e.g. C0002)`);
      config = {
        manager,
        cookie: raw.cookie ?? CONSENT_DEFAULTS.onetrust.cookie,
        categories: [...new Set(categories)],
      };
      break;
    }
    case "cookiebot": {
      const categories = list(raw.category ?? [...CONSENT_DEFAULTS.cookiebot.categories]);
      const known: readonly string[] = COOKIEBOT_CATEGORIES;
      for (const category of categories)
        if (!known.includes(category))
          fail(
            "category",
            `consent.category "${category}" is not a Cookiebot category (${COOKIEBOT_CATEGORIES.join(", ")})`,
          );
      config = {
        manager,
        cookie: raw.cookie ?? CONSENT_DEFAULTS.cookiebot.cookie,
        categories: [...new Set(categories)],
      };
      break;
    }
    case "tcf":
      config = {
        manager,
        cookie: raw.cookie ?? CONSENT_DEFAULTS.tcf.cookie,
        purposes: [...new Set(raw.purposes ?? CONSENT_DEFAULTS.tcf.purposes)],
        vendor: raw.vendor ?? CONSENT_DEFAULTS.tcf.vendor,
      };
      break;
    case "cookie": {
      if (raw.cookie == null)
        fail(
          "cookie",
          'consent.cookie is required for manager "cookie": the name of your consent cookie',
        );
      const accept = list(raw.accept ?? [...CONSENT_DEFAULTS.cookie.accept]);
      accept.forEach((value) => {
        if (value.trim() === "" || value.trim() !== value)
          fail("accept", "consent.accept values must not be empty or start or end with spaces");
      });
      config = {
        manager,
        cookie: raw.cookie ?? "",
        accept: [...new Set(accept.map((value) => value.toLowerCase()))],
      };
      break;
    }
  }
  return ok ? config : null;
}

function cookieDomainCovers(domain: string, compiled: Omit<CompiledRoute, "excludes">): boolean {
  if (compiled.hostKind === "any") return true;
  const d = domain.replace(/^\./, "");
  const h = compiled.host;
  if (compiled.hostKind === "exact") return h === d || h.endsWith(`.${d}`);
  // Wildcard hosts: the domain must cover the base (or be a subdomain of it, narrowing the cookie).
  return h === d || h.endsWith(`.${d}`) || d.endsWith(`.${h}`);
}

/** Whether a problem at `segments` (inside one entry) is about its consent config. */
function isConsentPath(segments: ReadonlyArray<string | number>): boolean {
  return segments[0] === "consent" || segments[0] === "consent_cookie";
}

/**
 * Appended to every consent config error: such a route is kept with DENY_ALL_CONSENT (fail
 * closed, docs/config.md `consent`) rather than left out like routes with other errors.
 */
const CONSENT_ERROR_EFFECT =
  " (until this is fixed the route stays active but tracks no one: original pages, no cookies, no events)";

function parseEntry(raw: unknown, index: number, problems: Problem[]): RouteConfig | null {
  const before = problems.length;
  let consentErrors = 0;
  const error = (segments: ReadonlyArray<string | number>, message: string) => {
    const consentError = isConsentPath(segments);
    if (consentError) consentErrors++;
    problems.push({
      path: formatPath([index, ...segments]),
      message: consentError ? `${message}${CONSENT_ERROR_EFFECT}` : message,
      severity: "error",
    });
  };

  let shape = checkRouteShape(raw);
  let data = raw as RawRoute;
  if (shape.length > 0) {
    for (const issue of shape) {
      const segments = issue.path;
      if (issue.code === "unrecognized_keys") {
        const known =
          segments.length === 1 && segments[0] === "consent" ? CONSENT_KEYS : ROUTE_KEYS;
        for (const key of issue.keys ?? []) {
          const message = unknownKeyMessage(key, known);
          error([...segments, key], known === CONSENT_KEYS ? `consent: ${message}` : message);
        }
      } else if (issue.code === "invalid_type" && segments.length === 0) {
        error([], "each route must be a table/object with at least pattern and sdk_key");
      } else if (segments.length > 0 && valueAt(raw, segments) === undefined) {
        // Optional keys may be left out, so an issue about a missing value is a required key.
        error(segments, `${segments.join(".")} is required`);
      } else {
        error(segments, issue.message);
      }
    }
    // Keep going with the checks below only when the shape is right — or when only the consent
    // config is wrong: then the rest of the route is checked without it, and kept deny-all.
    if (problems.length - before > consentErrors) return null;
    const { consent: _consent, consent_cookie: _consentCookie, ...rest } = raw as RawRoute;
    shape = checkRouteShape(rest);
    if (shape.length > 0) return null;
    data = rest as RawRoute;
  }
  const entry = data;

  const pattern = compilePattern(entry.pattern);
  if (!pattern.ok) error(["pattern"], pattern.message);

  let origin: string | null = null;
  if (entry.origin != null) {
    let url: URL | null = null;
    try {
      url = new URL(entry.origin);
    } catch {
      error(["origin"], `"${entry.origin}" is not a URL (e.g. https://origin.example.net)`);
    }
    if (url) {
      if (url.protocol !== "http:" && url.protocol !== "https:")
        error(["origin"], "origin must be an http:// or https:// URL");
      else if (url.username || url.password)
        error(["origin"], "origin must not contain credentials");
      else if (url.search || url.hash || entry.origin.includes("?") || entry.origin.includes("#")) {
        error(
          ["origin"],
          "origin must not have a query or fragment (the request's path and query are appended)",
        );
      } else origin = `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
    }
  }

  const excludePaths = entry.exclude_paths ?? [];
  excludePaths.forEach((glob, i) => {
    if (glob === "") error(["exclude_paths", i], "an exclude path must not be empty");
    else if (!glob.startsWith("/") && !glob.startsWith("*")) {
      error(
        ["exclude_paths", i],
        `"${glob}" must start with / or * (it is matched against the URL path)`,
      );
    } else if (/[?#]/.test(glob))
      error(["exclude_paths", i], "exclude paths match the path only: no ? or #");
  });

  let cookieDomain: string | null = null;
  if (entry.cookie_domain != null) {
    const domain = entry.cookie_domain.toLowerCase();
    if (!/^\.?[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(domain)) {
      error(
        ["cookie_domain"],
        `"${entry.cookie_domain}" is not a domain (e.g. example.com or .example.com)`,
      );
    } else if (pattern.ok && !cookieDomainCovers(domain, pattern.compiled)) {
      error(
        ["cookie_domain"],
        `browsers reject cookies for "${domain}" on ${entry.pattern}: the domain must contain the route's host`,
      );
    } else cookieDomain = domain;
  }

  const corsOrigins: string[] = [];
  (entry.cors_origins ?? []).forEach((value, i) => {
    try {
      const url = new URL(value);
      const bare = value.replace(/\/$/, "");
      if (
        (url.protocol !== "http:" && url.protocol !== "https:") ||
        url.origin.toLowerCase() !== bare.toLowerCase()
      ) {
        error(
          ["cors_origins", i],
          `"${value}" must be an origin: scheme://host[:port], no path (and no *)`,
        );
      } else corsOrigins.push(url.origin);
    } catch {
      error(
        ["cors_origins", i],
        `"${value}" must be an origin: scheme://host[:port], no path (and no *)`,
      );
    }
  });

  const consent = consentErrors > 0 ? null : parseConsent(entry, error);

  // Consent config errors alone keep the route (deny-all, see CONSENT_ERROR_EFFECT); any other
  // error leaves it out.
  if (problems.length - before > consentErrors || !pattern.ok) return null;
  const route: RouteConfig = {
    pattern: entry.pattern,
    sdkKey: entry.sdk_key,
    origin,
    originTimeoutMs: entry.origin_timeout_ms ?? ROUTE_DEFAULTS.originTimeoutMs,
    excludePaths: [...excludePaths],
    cookieDomain,
    cookieMaxAgeDays: entry.cookie_max_age_days ?? ROUTE_DEFAULTS.cookieMaxAgeDays,
    botPolicy: entry.bot_policy ?? ROUTE_DEFAULTS.botPolicy,
    gpcPolicy: entry.gpc_policy ?? ROUTE_DEFAULTS.gpcPolicy,
    consent: consentErrors > 0 ? DENY_ALL_CONSENT : consent,
    serveApi: entry.serve_api ?? ROUTE_DEFAULTS.serveApi,
    serveAdmin: entry.serve_admin ?? ROUTE_DEFAULTS.serveAdmin,
    exposeDecisions: entry.expose_decisions ?? ROUTE_DEFAULTS.exposeDecisions,
    corsOrigins,
    optimizelyShim: entry.optimizely_shim ?? ROUTE_DEFAULTS.optimizelyShim,
    cacheVariants: entry.cache_variants ?? ROUTE_DEFAULTS.cacheVariants,
  };
  compiledRoutes.set(route, {
    ...pattern.compiled,
    excludes: route.excludePaths.map(globToRegExp),
  });
  return route;
}

/**
 * Validates `ROUTES` — a parsed array (TOML array of tables) or the same as a JSON string.
 * Problems carry paths like `$[0].sdk_key`. Invalid entries are dropped (and reported), valid
 * ones kept in order; unknown keys make an entry invalid, so a typo never silently does nothing.
 * Absent/empty `ROUTES` = no routes, no problems.
 */
export function parseRoutes(raw: unknown): { routes: RouteConfig[]; problems: Problem[] } {
  const problems: Problem[] = [];
  let value = raw;
  if (value === undefined || value === null) return { routes: [], problems };
  if (typeof value === "string") {
    if (value.trim() === "") return { routes: [], problems };
    try {
      value = JSON.parse(value);
    } catch (error) {
      problems.push({
        path: "$",
        message: `ROUTES is not valid JSON: ${(error as Error).message}`,
        severity: "error",
      });
      return { routes: [], problems };
    }
  }
  if (!Array.isArray(value)) {
    const hint =
      typeof value === "object" && value !== null
        ? " (in wrangler.toml write [[vars.ROUTES]] with double brackets, one per route)"
        : "";
    problems.push({
      path: "$",
      message: `ROUTES must be an array of routes${hint}`,
      severity: "error",
    });
    return { routes: [], problems };
  }

  const routes: RouteConfig[] = [];
  const seen = new Map<string, number>();
  value.forEach((entry, index) => {
    const route = parseEntry(entry, index, problems);
    if (!route) return;
    const compiled = compiledRoutes.get(route)!;
    const signature = `${compiled.scheme}|${compiled.hostKind}|${compiled.host}|${compiled.path}|${compiled.pathPrefix}`;
    const first = seen.get(signature);
    if (first !== undefined) {
      problems.push({
        path: formatPath([index, "pattern"]),
        message: `same pattern as $[${first}], which matches first: this entry never applies`,
        severity: "warning",
      });
    } else seen.set(signature, index);
    routes.push(route);
  });
  return { routes, problems };
}

// ---------------------------------------------------------------------------------------------
// Per-isolate cache

interface RouteTable {
  routes: RouteConfig[];
  problems: Problem[];
}

/** By identity (the common case: the same env value every request), then by content. */
let lastRaw: unknown = Symbol("none");
let lastTable: RouteTable | undefined;
const tablesByText = new Map<string, RouteTable>();
const MAX_CACHED_TABLES = 8;

function rawKey(raw: unknown): string {
  if (typeof raw === "string") return `s:${raw}`;
  try {
    return `j:${JSON.stringify(raw) ?? "undefined"}`;
  } catch {
    return `x:${String(raw)}`;
  }
}

function logProblems(problems: readonly Problem[]): void {
  if (problems.length === 0) return;
  const errors = problems.filter((p) => p.severity === "error").length;
  const head =
    errors > 0
      ? `splitstream: ROUTES has ${errors} error(s); the routes concerned are ignored (requests they would match pass through untouched), except that a route whose only errors are in its consent config stays active and tracks no one:`
      : "splitstream: ROUTES warnings:";
  (errors > 0 ? console.error : console.warn)(`${head}\n${formatProblems(problems)}`);
}

/** `ROUTES` parsed, with its problems; computed (and problems logged) once per isolate per value. */
export function loadRouteTable(env: { ROUTES?: unknown }): RouteTable {
  const raw = env.ROUTES;
  if (raw === lastRaw && lastTable) return lastTable;
  const key = rawKey(raw);
  let table = tablesByText.get(key);
  if (!table) {
    table = parseRoutes(raw);
    logProblems(table.problems);
    if (tablesByText.size >= MAX_CACHED_TABLES) tablesByText.clear();
    tablesByText.set(key, table);
  }
  lastRaw = raw;
  lastTable = table;
  return table;
}

/** The valid routes of `env.ROUTES`, in order (memoized; problems logged once). */
export function loadRoutes(env: { ROUTES?: unknown }): RouteConfig[] {
  return loadRouteTable(env).routes;
}

/** Forgets the memoized tables (tests). */
export function resetRoutesCache(): void {
  lastRaw = Symbol("none");
  lastTable = undefined;
  tablesByText.clear();
}

// ---------------------------------------------------------------------------------------------
// Matching

function matches(compiled: CompiledRoute, url: URL): boolean {
  if (compiled.scheme !== null && url.protocol !== compiled.scheme) return false;
  const host = url.hostname;
  switch (compiled.hostKind) {
    case "exact":
      if (host !== compiled.host) return false;
      break;
    case "sub":
      if (!(host.length > compiled.host.length + 1 && host.endsWith(`.${compiled.host}`)))
        return false;
      break;
    case "apexOrSub":
      if (host !== compiled.host && !host.endsWith(`.${compiled.host}`)) return false;
      break;
    case "any":
      break;
  }
  const path = url.pathname;
  return compiled.pathPrefix ? path.startsWith(compiled.path) : path === compiled.path;
}

/** The first route whose pattern matches the URL (scheme, host and path; port and query ignored), else null. */
export function matchRoute(routes: readonly RouteConfig[], url: URL): RouteConfig | null {
  for (const route of routes) {
    const compiled = compileRoute(route);
    if (compiled && matches(compiled, url)) return route;
  }
  return null;
}

/** Whether one of the route's `exclude_paths` globs matches the (percent-encoded) URL path. */
export function isExcludedPath(route: RouteConfig, pathname: string): boolean {
  const compiled = compileRoute(route);
  if (!compiled) return false;
  for (const glob of compiled.excludes) if (glob.test(pathname)) return true;
  return false;
}
