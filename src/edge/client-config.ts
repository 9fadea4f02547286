/**
 * `GET|HEAD /_ss/client-config/{sdkKey}.json`: what the client script needs from a datafile
 * (src/client/config-types.ts, docs/client.md): the pages it activates or counts goals on (URL
 * conditions canonicalized so the browser only compares strings), the changes of running
 * experiments that have a non-`immediate` page (the edge applies the immediate ones itself),
 * click and pageview goals, and `web.integrations`. Nothing visitor-specific: the decisions are
 * in each page's bootstrap.
 *
 * Built once per compiled datafile (cached in a WeakMap with its ETag). The client asks for
 * `?r=<revision>`; for the current revision that URL's content is fixed, so it is cached an hour
 * (`public, max-age=3600`); any other `r` (or none) gets the current config for 60 s. ETag and
 * `304`; CORS `*` (the datafile itself is public too).
 */
import type { CompiledDatafile } from "../core/index";
import type { PageActivation } from "../core/datafile-types";
import { compileExactValue, compileSimpleValue } from "../core/url-match";
import type {
  ActivationCode,
  ClientConfig,
  ClientExperiment,
  ClientGoal,
  ClientUrlLeaf,
  ClientUrlTree,
} from "../client/config-types";
import type { Env } from "../env";
import { ACTIVATION_CODE } from "./bootstrap";
import { encodeBase64Url } from "./cookies";
import { getDatafile } from "./datafile-store";
import { formatRevisionHeader, REVISION_HEADER } from "./decisions-header";
import { errorResponse } from "../shared/error-response";
import { sha256 } from "../shared/hash";
import { SDK_KEY_PATTERN } from "./routes";

export const CLIENT_CONFIG_PATH_PREFIX = "/_ss/client-config/";

const CODE: Record<PageActivation, ActivationCode> = ACTIVATION_CODE;
const MAX_TREE_DEPTH = 32;

function leaf(node: unknown): ClientUrlLeaf {
  if (typeof node !== "object" || node === null) return null;
  const { match, value } = node as { match?: unknown; value?: unknown };
  if (typeof value !== "string") return null;
  switch (match) {
    case "simple":
      return { m: "s", v: compileSimpleValue(value) };
    case "exact":
      return { m: "e", v: compileExactValue(value) };
    case "substring":
      return { m: "c", v: value.toLowerCase() };
    case "regex":
      try {
        new RegExp(value);
      } catch {
        return null;
      }
      return { m: "r", v: value };
    default:
      return null;
  }
}

/**
 * A page's conditions as the client evaluates them: the semantics of compileUrlConditions
 * (src/core/url-match.ts) — an array without an operator is an "or" of all its elements, `not`
 * takes its first operand — written out explicitly, leaves canonicalized.
 */
export function clientUrlTree(node: unknown, depth = 0): ClientUrlTree {
  if (!Array.isArray(node)) return leaf(node);
  if (depth > MAX_TREE_DEPTH) return null;
  const head: unknown = node[0];
  const explicit = head === "and" || head === "or" || head === "not";
  const op = explicit ? head : "or";
  const operands = node.slice(explicit ? 1 : 0).map((n: unknown) => clientUrlTree(n, depth + 1));
  if (op === "not") return operands.length === 0 ? null : ["not", operands[0]!];
  return [op, ...operands];
}

/** The client config of a compiled datafile. */
export function buildClientConfig(compiled: CompiledDatafile): ClientConfig {
  const pageIds = new Set<string>();
  const experiments: Record<string, ClientExperiment> = {};
  for (const experiment of compiled.experiments) {
    if (!experiment.running || !experiment.web) continue;
    const pages = experiment.pages.filter((p) => p.page.activation !== "immediate");
    if (pages.length === 0) continue;
    const shared = experiment.web.sharedChanges ?? [];
    const variations: ClientExperiment["v"] = {};
    for (const variation of experiment.variations) {
      const changes = [...shared, ...(variation.web?.changes ?? [])];
      if (changes.length > 0) variations[variation.id] = changes;
    }
    for (const page of pages) pageIds.add(page.id);
    experiments[experiment.id] = { k: experiment.key, p: pages.map((p) => p.id), v: variations };
  }
  const goals: ClientGoal[] = [];
  for (const event of compiled.eventById.values()) {
    const web = event.web;
    if (web?.type === "click" && typeof web.selector === "string" && web.selector !== "") {
      const goal: ClientGoal = { i: event.id, k: event.key, t: "c", s: web.selector };
      if (web.pageId !== undefined) {
        goal.p = web.pageId;
        pageIds.add(web.pageId);
      }
      goals.push(goal);
    } else if (web?.type === "pageview" && web.pageId !== undefined) {
      goals.push({ i: event.id, k: event.key, t: "v", p: web.pageId });
      pageIds.add(web.pageId);
    }
  }
  const integrations: ClientConfig["n"] = {};
  const configured = compiled.datafile.web?.integrations ?? {};
  if (configured.dataLayer === true) integrations.dataLayer = true;
  if (configured.segment === true) integrations.segment = true;
  return {
    v: 1,
    r: compiled.revision,
    p: compiled.pages
      .filter((p) => pageIds.has(p.id))
      .map(({ page }) => ({
        i: page.id,
        k: page.key,
        a: CODE[page.activation] ?? "i",
        ...(page.activation === "dom_changed" && page.selector ? { s: page.selector } : {}),
        c: clientUrlTree(page.conditions),
      })),
    x: experiments,
    g: goals,
    n: integrations,
  };
}

interface Rendered {
  json: string;
  etag: string;
}

const rendered = new WeakMap<CompiledDatafile, Promise<Rendered>>();

async function render(compiled: CompiledDatafile): Promise<Rendered> {
  const json = JSON.stringify(buildClientConfig(compiled));
  const digest = await sha256(json);
  const hash = encodeBase64Url(new Uint8Array(digest, 0, 12));
  return { json, etag: `"${hash}"` };
}

const CORS = { "access-control-allow-origin": "*" } as const;

export async function handleClientConfig(
  request: Request,
  env: Pick<Env, "DATAFILES">,
  ctx: Pick<ExecutionContext, "waitUntil">,
  url: URL,
): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return errorResponse(405, "method_not_allowed", "GET the client config", null, {
      ...CORS,
      allow: "GET, HEAD",
    });
  }
  const name = url.pathname.slice(CLIENT_CONFIG_PATH_PREFIX.length);
  const sdkKey = name.endsWith(".json") ? name.slice(0, -".json".length) : "";
  if (!SDK_KEY_PATTERN.test(sdkKey)) {
    return errorResponse(
      404,
      "not_found",
      `no client config at ${url.pathname}; use ${CLIENT_CONFIG_PATH_PREFIX}{sdkKey}.json`,
      null,
      CORS,
    );
  }
  const entry = await getDatafile(env, ctx, sdkKey);
  if (!entry) {
    return errorResponse(
      404,
      "datafile_not_found",
      `no datafile is published for sdkKey "${sdkKey}"`,
      { sdkKey },
      CORS,
    );
  }
  let pending = rendered.get(entry.compiled);
  if (!pending) {
    pending = render(entry.compiled);
    rendered.set(entry.compiled, pending);
  }
  const { json, etag } = await pending;
  const headers: Record<string, string> = {
    ...CORS,
    etag,
    "cache-control":
      url.searchParams.get("r") === entry.revision ? "public, max-age=3600" : "public, max-age=60",
    [REVISION_HEADER]: formatRevisionHeader(entry.revision),
  };
  const ifNoneMatch = request.headers.get("if-none-match");
  if (ifNoneMatch?.split(",").some((t) => t.trim().replace(/^W\//, "") === etag))
    return new Response(null, { status: 304, headers });
  headers["content-type"] = "application/json; charset=utf-8";
  return new Response(request.method === "HEAD" ? null : json, { headers });
}
