/**
 * The page form's "does this URL match?" tester, and the warning for URL conditions that can never
 * match because they name a host the Worker never sees (docs/admin.md "Pages").
 *
 * The edge matches a page's conditions against the request URL as the Worker receives it
 * (src/edge/handle-request.ts → `planPage(compiled, url.href)`), and only on requests a route of
 * `ROUTES` covers (src/edge/routes.ts, docs/config.md). So the hosts a condition can match are:
 *
 * - the hosts of the routes that serve the project's SDK keys (every route when none does yet),
 *   as the route patterns match them (`*.example.com`, `*example.com`, `*`; ports never count);
 * - with the port the Worker sees: the one of this admin request when the host is the one this
 *   page was requested on (under `wrangler dev` that is wrangler.toml's `[dev] host`,
 *   `localhost:8788`, not the `localhost:8787` in the browser's address bar), else none (80/443).
 *
 * A condition naming another host or port (`localhost:8787/checkout`) is valid and silently never
 * matches: it gets a warning. Simple and exact conditions name a whole host; in substring and regex
 * conditions only a literal `://host` and a literal `host:port` are read.
 */
import { html } from "hono/html";
import { leavesOf, type Seg } from "../api/schemas/condition-tree";
import { formatPath } from "../core/problem";
import { compileSimpleValue, compileUrlConditions } from "../core/url-match";
import { loadRoutes, matchRoute, type RouteConfig } from "../edge/routes";
import { field } from "./forms";
import type { Html } from "./ui";

/** What the Worker sees: the routes that matter and the host this page was requested on. */
export interface WorkerView {
  /** The routes serving the project's SDK keys, or every route when none does. */
  routes: readonly RouteConfig[];
  /** Whether some route serves one of the project's SDK keys. */
  projectRouted: boolean;
  sdkKeys: readonly string[];
  /** This request's host name and port ("" for the scheme's default), as the Worker received it. */
  hostname: string;
  port: string;
}

/** The view for a project (its environments' SDK keys) from this request. */
export function workerViewOf(
  env: { ROUTES?: unknown },
  requestUrl: URL,
  sdkKeys: readonly string[],
): WorkerView {
  const all = loadRoutes(env);
  const own = all.filter((route) => sdkKeys.includes(route.sdkKey));
  return {
    routes: own.length > 0 ? own : all,
    projectRouted: own.length > 0,
    sdkKeys,
    hostname: requestUrl.hostname,
    port: requestUrl.port,
  };
}

/** A path the route's pattern matches (its own path, without the trailing `*`). */
function probePath(pattern: string): string {
  const rest = pattern.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  const slash = rest.indexOf("/");
  const path = slash === -1 ? "/" : rest.slice(slash);
  return path.endsWith("*") ? path.slice(0, -1) || "/" : path;
}

/**
 * Whether the route covers requests for `hostname` (with `scheme`, or either): asked of the
 * edge's own matcher with a path the route matches, so host wildcards mean what they mean there.
 */
function routeSeesHost(route: RouteConfig, hostname: string, scheme: string | null): boolean {
  const path = probePath(route.pattern);
  for (const candidate of scheme ? [scheme] : ["https:", "http:"]) {
    let url: URL;
    try {
      url = new URL(`${candidate}//${hostname}${path.startsWith("/") ? path : `/${path}`}`);
    } catch {
      continue;
    }
    if (matchRoute([route], url)) return true;
  }
  return false;
}

/** A host a condition names. */
interface NamedHost {
  hostname: string;
  /** "" for none (the default port). */
  port: string;
  /** `http:`/`https:` when the condition names one (exact). */
  scheme: string | null;
  /** simple conditions ignore a leading `www.`: either host may be the one requested. */
  wwwOptional: boolean;
  /** Only the port is known to be whole (a `host:port` inside a substring or regex). */
  portOnly: boolean;
}

/** `host[:port]` parsed as the URL parser reads it (punycode, lower case), or null. */
function parseHost(text: string): { hostname: string; port: string } | null {
  if (text === "") return null;
  try {
    const url = new URL(`http://${text}/`);
    return url.username || url.password ? null : { hostname: url.hostname, port: url.port };
  } catch {
    return null;
  }
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
/** A regex's source with the escapes of URL punctuation undone (`\.` → `.`, `\/` → `/`). */
function unescapeRegex(source: string): string {
  return source.replace(/\\([./:?#-])/g, "$1");
}

/** A character of a host name (letters, digits, `-`, `.`); see isHostName for their order. */
const HOST_CHAR = /[a-z0-9.-]/i;
const ALNUM = /[a-z0-9]/i;
/** What may follow a host (and its port) for it to be a whole host: the end or a URL delimiter. */
const HOST_END = /[/?#$]/;

const isHostChar = (ch: string | undefined) => ch !== undefined && HOST_CHAR.test(ch);
const isAlnum = (ch: string | undefined) => ch !== undefined && ALNUM.test(ch);
const endsHost = (text: string, at: number) => at === text.length || HOST_END.test(text[at]!);

/** Labels of letters, digits and inner `-`, joined by single dots. */
function isHostName(name: string): boolean {
  return name.split(".").every((label) => isAlnum(label[0]) && isAlnum(label[label.length - 1]));
}

/**
 * The port after a host ending at `at`: "" when none (the host is followed by the end or a
 * delimiter), the digits of `:<1–5 digits>` followed by the end or a delimiter, else null (not a
 * whole host).
 */
function portAt(text: string, at: number): string | null {
  if (endsHost(text, at)) return "";
  if (text[at] !== ":") return null;
  let end = at + 1;
  while (end < text.length && end - at <= 6 && /\d/.test(text[end]!)) end++;
  const digits = end - at - 1;
  return digits >= 1 && digits <= 5 && endsHost(text, end) ? text.slice(at + 1, end) : null;
}

/**
 * The leftmost start of a host name ending at `end` and starting at or after `from`: the longest
 * suffix of the run of host characters before `end` that is a host name, or -1 when none is.
 */
function hostStartBefore(text: string, end: number, from: number): number {
  let start = -1;
  let labelEnd = end;
  for (;;) {
    let labelStart = labelEnd;
    while (labelStart > from && isHostChar(text[labelStart - 1]) && text[labelStart - 1] !== ".")
      labelStart--;
    if (labelStart === labelEnd || !isAlnum(text[labelEnd - 1])) return start;
    let first = labelStart;
    while (!isAlnum(text[first])) first++;
    start = first;
    // Only a whole label after a dot lets the host go on to the label before it.
    if (first !== labelStart || labelStart === from || text[labelStart - 1] !== ".") return start;
    labelEnd = labelStart - 1;
  }
}

/**
 * The hosts named in a substring or regex value: after `://` (whole), or with a port (port only).
 * Hosts are looked for only at a `://` or a `:<digit>`, never from every position: trying a host
 * pattern at each character costs time quadratic in the value's length (a 2,048-character value
 * took ~25 ms), and only hosts found there are reported anyway. Matches do not overlap, as the
 * leftmost-first scan of a global regex would find them.
 */
export function literalHosts(text: string): NamedHost[] {
  const out: NamedHost[] = [];
  let matchedTo = 0;
  for (let colon = text.indexOf(":"); colon >= 0; colon = text.indexOf(":", colon + 1)) {
    if (colon < matchedTo) continue;
    if (text.startsWith("://", colon)) {
      let end = colon + 3;
      while (isHostChar(text[end])) end++;
      const name = text.slice(colon + 3, end);
      const port = end > colon + 3 && isHostName(name) ? portAt(text, end) : null;
      if (port === null) continue;
      const parsed = parseHost(port === "" ? name : `${name}:${port}`);
      matchedTo = end + (port === "" ? 0 : port.length + 1);
      if (parsed) out.push({ ...parsed, scheme: null, wwwOptional: false, portOnly: false });
      continue;
    }
    const port = portAt(text, colon);
    if (!port) continue;
    const start = hostStartBefore(text, colon, matchedTo);
    if (start < 0) continue;
    matchedTo = colon + port.length + 1;
    const parsed = parseHost(`${text.slice(start, colon)}:${port}`);
    if (parsed) out.push({ ...parsed, scheme: null, wwwOptional: false, portOnly: true });
  }
  return out;
}

function display(hostname: string, port: string): string {
  return port === "" ? hostname : `${hostname}:${port}`;
}

/** Why the Worker never sees `named`, or null when it may. */
function hostProblem(view: WorkerView, named: NamedHost): string | null {
  const names =
    named.wwwOptional && !named.hostname.startsWith("www.")
      ? [named.hostname, `www.${named.hostname}`]
      : [named.hostname];
  if (
    !named.portOnly &&
    !names.some((name) => view.routes.some((r) => routeSeesHost(r, name, named.scheme)))
  ) {
    const patterns = view.routes.map((r) => r.pattern).join(", ") || "none";
    return `no route covers the host ${named.hostname} (${view.projectRouted ? "the routes serving this project" : "ROUTES"}: ${patterns}), so the Worker never sees its requests.`;
  }
  const here = named.portOnly
    ? names.some((name) => view.hostname.endsWith(name))
    : names.includes(view.hostname);
  const seen = here ? view.port : "";
  if (named.port === seen) return null;
  return `the Worker sees ${named.hostname} as ${display(named.hostname, seen)}, not ${display(named.hostname, named.port)}. Conditions are matched against the URL the Worker receives (this page was requested as ${display(view.hostname, view.port)}); under wrangler dev that is the [dev] host of wrangler.toml, not the address in the browser.`;
}

/** Warnings for one URL leaf: hosts or ports the Worker never sees, and values that never match. */
export function leafWarnings(leaf: unknown, view: WorkerView): string[] {
  if (typeof leaf !== "object" || leaf === null) return [];
  const { match, value } = leaf as { match?: unknown; value?: unknown };
  if (typeof value !== "string" || value.trim() === "") return [];
  const named: NamedHost[] = [];
  switch (match) {
    case "simple": {
      const host = parseHost(compileSimpleValue(value).split("/")[0] ?? "");
      if (/^\s*\/(?!\/)/.test(value))
        return [
          `Not a path: a simple condition starts with the host, so "${value.trim()}" names the host ${host?.hostname ?? "(none)"}, not a path. To match a path on every host, use substring or regex.`,
        ];
      if (host) named.push({ ...host, scheme: null, wwwOptional: true, portOnly: false });
      break;
    }
    case "exact": {
      const trimmed = value.trim();
      let url: URL | null;
      try {
        url = SCHEME.test(trimmed) ? new URL(trimmed) : null;
      } catch {
        url = null;
      }
      if (!url)
        return [
          "Never matches: an exact condition compares the whole URL, scheme included (https://…).",
        ];
      if (url.protocol !== "http:" && url.protocol !== "https:")
        return [`Never matches: the Worker only sees http: and https: URLs, not ${url.protocol}.`];
      named.push({
        hostname: url.hostname,
        port: url.port,
        scheme: url.protocol,
        wwwOptional: false,
        portOnly: false,
      });
      break;
    }
    case "substring":
      named.push(...literalHosts(value.toLowerCase()));
      break;
    case "regex":
      named.push(...literalHosts(unescapeRegex(value)));
      break;
    default:
      return [];
  }
  const out = new Set<string>();
  for (const host of named) {
    const problem = hostProblem(view, host);
    if (problem) out.add(`Never matches: ${problem}`);
  }
  return [...out];
}

/**
 * How a page names a leaf: "Condition k" in a flat tree (`[op, leaf, ["not", leaf]…]`, where the
 * form's row k is the tree's operand k), else its path in the tree (`conditions[2][1]`).
 */
function leafLabel(flat: boolean, path: readonly Seg[]): string {
  return flat ? `Condition ${String(path[0])}` : formatPath(["conditions", ...path]).slice(2);
}

/** Whether every leaf is an operand of the top-level and/or, or the one operand of its "not". */
function isFlat(tree: unknown): boolean {
  if (!Array.isArray(tree) || (tree[0] !== "and" && tree[0] !== "or")) return false;
  return (tree as unknown[])
    .slice(1)
    .every(
      (node) =>
        !Array.isArray(node) || (node.length === 2 && node[0] === "not" && !Array.isArray(node[1])),
    );
}

/** Every leaf of a stored tree with its warnings (only leaves that have some). */
export function treeWarnings(
  tree: unknown,
  view: WorkerView,
): Array<{ label: string; warnings: string[] }> {
  const flat = isFlat(tree);
  return leavesOf(tree)
    .map(({ node, path }) => ({ label: leafLabel(flat, path), warnings: leafWarnings(node, view) }))
    .filter((entry) => entry.warnings.length > 0);
}

/** The warnings as a list (nothing when there are none). */
export function warningList(warnings: readonly string[]): Html {
  if (warnings.length === 0) return html``;
  return html`<ul class="warning" data-warning="host">
    ${warnings.map((w) => html`<li>${w}</li>`)}
  </ul>`;
}

/** The project-level note when no route serves the project's SDK keys. */
export function routingNote(view: WorkerView): Html {
  if (view.projectRouted) return html``;
  return html`<p class="warning" role="status" data-warning="unrouted">
    No route in ROUTES (wrangler.toml, docs/config.md) serves this project's SDK keys
    (${view.sdkKeys.join(", ") || "none"}): the edge applies none of its pages until one does. Hosts
    are checked against every route.
  </p>`;
}

/** One leaf's result for a tested URL. */
interface LeafResult {
  path: string;
  label: string;
  match: string;
  value: string;
  negated: boolean;
  /** The leaf alone (false also when it cannot be evaluated, e.g. a regex that does not compile). */
  matches: boolean;
  /** What the leaf contributes (its negation when it is under a "not"). */
  counts: boolean;
}

/** A tested URL: the overall result and each leaf's. */
export interface UrlTest {
  url: string;
  overall: boolean;
  leaves: LeafResult[];
  /** Why the Worker never sees this URL as typed. */
  warnings: string[];
}

function nodeAt(tree: unknown, path: readonly Seg[]): unknown {
  let node = tree;
  for (const seg of path) node = Array.isArray(node) ? node[seg as number] : undefined;
  return node;
}

/**
 * Tests `input` against a page's conditions with the edge's own matcher (src/core/url-match.ts).
 * The URL is first serialized as the Worker would receive it (WHATWG), or refused with a message.
 */
export function testUrl(tree: unknown, input: string, view: WorkerView): UrlTest | string {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    return "Enter an absolute URL, e.g. https://shop.example.com/products/1.";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return "Enter an http:// or https:// URL: the Worker sees no other.";
  const href = url.href;
  const flat = isFlat(tree);
  const leaves = leavesOf(tree).map(({ node, path }) => {
    const parent = nodeAt(tree, path.slice(0, -1));
    const negated = path.length > 0 && Array.isArray(parent) && parent[0] === "not";
    const leaf = (typeof node === "object" && node !== null ? node : {}) as {
      match?: unknown;
      value?: unknown;
    };
    const matches = compileUrlConditions(["or", node])(href);
    return {
      path: formatPath(["conditions", ...path]).slice(2),
      label: leafLabel(flat, path),
      match: String(leaf.match ?? ""),
      value: String(leaf.value ?? ""),
      negated,
      matches,
      counts: negated ? compileUrlConditions(["or", ["not", node]])(href) : matches,
    };
  });
  const warning = hostProblem(view, {
    hostname: url.hostname,
    port: url.port,
    scheme: url.protocol,
    wwwOptional: false,
    portOnly: false,
  });
  return {
    url: href,
    overall: compileUrlConditions(tree)(href),
    leaves,
    warnings: warning ? [`The edge never sees this URL as typed: ${warning}`] : [],
  };
}

const yesNo = (value: boolean) => (value ? "matches" : "does not match");

/** The tester: a GET form (`?test=<url>`) and, when a URL was given, its results. */
export function testerSection(tree: unknown, input: string | null, view: WorkerView): Html {
  const result = input === null || input === "" ? null : testUrl(tree, input, view);
  const invalid = typeof result === "string" ? result : undefined;
  return html`<section aria-labelledby="tester-heading" data-section="url-tester">
    <h2 id="tester-heading">Does this URL match?</h2>
    <form method="get">
      ${field({
        name: "test",
        label: "URL",
        type: "url",
        value: input ?? "",
        error: invalid,
        hint: "Tested against the saved conditions with the edge's own matcher.",
      })}
      <button type="submit">Test</button>
    </form>
    ${
      result !== null && typeof result !== "string"
        ? html`<p role="status" data-test-result="${result.overall ? "match" : "no-match"}">
              <strong>${result.url}</strong>
              ${result.overall ? "matches this page." : "does not match this page."}
            </p>
            ${warningList(result.warnings)}
            <table data-tester="leaves">
              <thead>
                <tr>
                  <th scope="col">Condition</th>
                  <th scope="col">Match</th>
                  <th scope="col">Value</th>
                  <th scope="col">Result</th>
                </tr>
              </thead>
              <tbody>
                ${result.leaves.map(
                  (leaf) =>
                    html`<tr data-leaf="${leaf.path}" data-counts="${leaf.counts ? "yes" : "no"}">
                      <th scope="row">${leaf.label}${leaf.negated ? " (not)" : ""}</th>
                      <td>${leaf.match}</td>
                      <td><code>${leaf.value}</code></td>
                      <td>
                        ${yesNo(leaf.matches)}${
                          leaf.negated ? `, so the "not" ${leaf.counts ? "holds" : "fails"}` : ""
                        }
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
        : ""
    }
  </section>`;
}
