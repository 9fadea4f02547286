/**
 * `POST /_ss/events` (docs/ingest.md): conversions from the visitor's browser —
 * the client script's `fetch` or `navigator.sendBeacon` (`text/plain`). The visitor comes from
 * the `ss_vid` cookie (or an adopted `optimizelyEndUserId`), never from the body.
 *
 * Impressions (`{"type":"impression","experimentId","variationId"}`) come from the client script
 * when it activates a manual / url_changed / dom_changed experiment (the edge counts immediate
 * ones itself). They are never taken on trust: the experiment must be running and have such a
 * page, and the visitor's `ss_dec` cookie — the sticky decisions the edge wrote when it decided
 * (page view or `/_ss/decide`) — must hold exactly that variation. A visitor can thus only report
 * the decision the edge would serve them anyway.
 *
 * Same-origin by default: an `Origin` header must equal the request's own origin or be listed in
 * the route's `cors_origins` (those get credentialed CORS and an `OPTIONS` preflight). Bots,
 * opted-out visitors, `Sec-GPC: 1` (when the route respects it) and visitors without required
 * consent get 204 and nothing is queued (header `x-ss-dropped` says why).
 */
import { errorResponse } from "../shared/error-response";
import type { Env } from "../env";
import { hasConsent } from "../shared/consent";
import {
  conversionExtras,
  finish,
  isPlainObject,
  noContent,
  readBoundedText,
  reject,
  timestampProblem,
  tooLarge,
  uuidProblem,
  type IngestEdge,
  type IngestRoute,
  type Rejection,
} from "./ingest-common";
import {
  holdoutArms,
  prepareVisitor,
  type CompiledDatafile,
  type CompiledExperiment,
} from "../core/index";
import type { EventMessage, ImpressionDims, ImpressionMessage } from "../shared/event-messages";

export { BROWSER_EVENTS_PATH } from "./ingest-paths";
export const MAX_BROWSER_BODY_BYTES = 64 * 1024;
export const MAX_BROWSER_EVENTS = 100;

/**
 * Whether a request carrying `Origin: origin` may post events to `requestUrl` on `route`:
 * absent (non-browser clients) or the request's own origin, or one of `route.corsOrigins`
 * (compared as normalized origins). `null` and anything unparsable are refused.
 */
export function isAllowedOrigin(
  origin: string | null,
  requestUrl: URL,
  route: Pick<IngestRoute, "corsOrigins">,
): boolean {
  if (origin === null) return true;
  const normalized = normalizeOrigin(origin);
  if (normalized === null) return false;
  if (normalized === requestUrl.origin) return true;
  return route.corsOrigins.some((allowed) => normalizeOrigin(allowed) === normalized);
}

function normalizeOrigin(origin: string): string | null {
  if (origin === "null") return null;
  try {
    const url = new URL(origin);
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    return url.origin;
  } catch {
    return null;
  }
}

function corsHeaders(origin: string | null, requestUrl: URL): Record<string, string> {
  if (origin === null || normalizeOrigin(origin) === requestUrl.origin) return {};
  return {
    "access-control-allow-origin": origin,
    "access-control-allow-credentials": "true",
    vary: "Origin",
  };
}

export async function handleBrowserEvents(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  route: IngestRoute,
  url: URL,
  edge: IngestEdge,
): Promise<Response> {
  const origin = request.headers.get("origin");
  const allowed = isAllowedOrigin(origin, url, route);
  if (request.method === "OPTIONS") {
    if (!allowed || origin === null) {
      return errorResponse(
        403,
        "origin_not_allowed",
        `origin ${origin ?? "(none)"} may not post events here`,
      );
    }
    return new Response(null, {
      status: 204,
      headers: {
        ...corsHeaders(origin, url),
        "access-control-allow-methods": "POST, OPTIONS",
        "access-control-allow-headers": "content-type",
        "access-control-max-age": "86400",
        "cache-control": "no-store",
        vary: "Origin",
      },
    });
  }
  if (!allowed) {
    return errorResponse(
      403,
      "origin_not_allowed",
      `origin ${origin ?? ""} may not post events here (same origin only, or the route's cors_origins)`,
    );
  }
  const cors = corsHeaders(origin, url);
  if (request.method !== "POST") {
    return errorResponse(405, "method_not_allowed", "POST events here", null, {
      ...cors,
      allow: "POST, OPTIONS",
    });
  }
  const contentType = (request.headers.get("content-type") ?? "")
    .split(";")[0]!
    .trim()
    .toLowerCase();
  if (contentType !== "" && contentType !== "application/json" && contentType !== "text/plain") {
    return errorResponse(
      415,
      "unsupported_media_type",
      "send application/json or text/plain (sendBeacon)",
      null,
      cors,
    );
  }

  // Not tracked: answer like success, queue nothing.
  const visitor = edge.readVisitor(request);
  const dropped = visitor.bot
    ? "bot"
    : visitor.optedOut
      ? "optout"
      : visitor.gpc && route.gpcPolicy === "respect"
        ? "gpc"
        : !hasConsent(route.consent, request.headers.get("cookie"))
          ? "consent"
          : null;
  if (dropped !== null) {
    await request.body?.cancel();
    return noContent({ ...cors, "x-ss-dropped": dropped });
  }
  if (visitor.idSource === "new") {
    await request.body?.cancel();
    return errorResponse(
      400,
      "no_visitor",
      "no visitor cookie (ss_vid): events are accepted from pages the edge has served",
      null,
      cors,
    );
  }

  const body = await readBoundedText(request, MAX_BROWSER_BODY_BYTES);
  if (!body.ok) return tooLarge(MAX_BROWSER_BODY_BYTES, cors);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.text);
  } catch {
    return errorResponse(400, "invalid_json", "the body is not JSON", null, cors);
  }
  if (!isPlainObject(parsed) || !Array.isArray(parsed.events)) {
    return errorResponse(
      400,
      "invalid_body",
      'the body must be {"events":[{"key":…},…]}',
      { path: "events", reason: "must be an array" },
      cors,
    );
  }
  const items: unknown[] = parsed.events;
  if (items.length > MAX_BROWSER_EVENTS) {
    return errorResponse(
      413,
      "too_many_events",
      `at most ${MAX_BROWSER_EVENTS} events per request (got ${items.length})`,
      { maxEvents: MAX_BROWSER_EVENTS },
      cors,
    );
  }
  if (items.length === 0) return noContent(cors);

  const entry = await edge.getDatafile(env, ctx, route.sdkKey);
  if (!entry) {
    return errorResponse(
      503,
      "no_datafile",
      `no datafile is published for ${route.sdkKey}; events cannot be validated`,
      null,
      { ...cors, "retry-after": "60" },
    );
  }

  const now = Date.now();
  const messages: EventMessage[] = [];
  let browserDims: ImpressionDims | undefined;
  const rejected: Rejection[] = [];
  // Whether the holdout holds the visitor: once per request, at the first impression.
  let held: ReturnType<typeof holdoutProblem> | undefined;
  items.forEach((item, index) => {
    const path = `events[${index}]`;
    if (!isPlainObject(item)) return reject(rejected, index, path, "each event must be an object");
    if (item.type === "impression") {
      const stamp = uuidAndTimestamp(item, path, index, rejected, now);
      if (!stamp) return;
      const experiment =
        typeof item.experimentId === "string"
          ? entry.compiled.experimentById.get(item.experimentId)
          : undefined;
      const problem =
        impressionProblem(experiment, item.variationId, visitor.sticky) ??
        (held === undefined
          ? (held = holdoutProblem(entry.compiled, visitor.id, visitor.attributes))
          : held);
      if (problem) return reject(rejected, index, `${path}.${problem.field}`, problem.reason);
      const impression: ImpressionMessage = {
        v: 1,
        type: "impression",
        sdkKey: route.sdkKey,
        revision: entry.revision,
        visitorId: visitor.id,
        experimentId: experiment!.id,
        variationId: item.variationId as string,
        ...stamp,
        source: "browser",
        dims: (browserDims ??= edge.impressionDims(request)),
      };
      messages.push(impression);
      return;
    }
    if (typeof item.key !== "string" || item.key === "")
      return reject(rejected, index, `${path}.key`, "key must be a non-empty string");
    const event = entry.compiled.eventByKey.get(item.key);
    if (!event)
      return reject(
        rejected,
        index,
        `${path}.key`,
        `unknown event key "${item.key.slice(0, 100)}" (not in datafile revision ${entry.revision})`,
      );
    const stamp = uuidAndTimestamp(item, path, index, rejected, now);
    if (!stamp) return;
    const extras = conversionExtras(item, path, index, rejected);
    if (!extras) return;
    messages.push({
      v: 1,
      type: "conversion",
      sdkKey: route.sdkKey,
      revision: entry.revision,
      visitorId: visitor.id,
      eventId: event.id,
      eventKey: event.key,
      ...stamp,
      ...extras,
      source: "browser",
    });
  });
  return finish(env, messages, rejected, cors);
}

/**
 * Why a browser impression for `experiment` / `variationId` is not acceptable, or null: the
 * experiment must be running with a page the client activates (not `immediate`), the variation
 * one of its own, and the visitor's sticky decisions (`ss_dec`) must name that very variation.
 */
export function impressionProblem(
  experiment: CompiledExperiment | undefined,
  variationId: unknown,
  sticky: Readonly<Record<string, string>>,
): { field: "experimentId" | "variationId"; reason: string } | null {
  if (!experiment)
    return {
      field: "experimentId",
      reason: "experimentId must name an experiment of the datafile",
    };
  if (!experiment.running)
    return { field: "experimentId", reason: `experiment ${experiment.id} is not running` };
  if (!experiment.pages.some((p) => p.page.activation !== "immediate"))
    return {
      field: "experimentId",
      reason: `experiment ${experiment.id} is activated by the edge (immediate pages only), which counts it`,
    };
  if (typeof variationId !== "string" || !experiment.variationById.has(variationId))
    return {
      field: "variationId",
      reason: `variationId must name a variation of experiment ${experiment.id}`,
    };
  if (!Object.hasOwn(sticky, experiment.id) || sticky[experiment.id] !== variationId)
    return {
      field: "variationId",
      reason: `the edge did not decide variation ${variationId} of experiment ${experiment.id} for this visitor (ss_dec)`,
    };
  return null;
}

/**
 * Why a visitor's impression is not acceptable because the environment's holdout holds them
 * (docs/holdouts.md "Decisions"), or null. The edge never decides an experiment for a held-out
 * visitor, but a `ss_dec` entry written before they were held (a raised share) or by hand would
 * pass the sticky check: membership is recomputed as the edge decides it — from the visitor id,
 * or the `$opt_bucketing_id` the visitor's stored attributes carry. Request attributes (the
 * beacon's URL is not the page's) are not rebuilt: a holdout with an audience on them — only in
 * hand-written datafiles — is judged on the stored attributes alone.
 */
export function holdoutProblem(
  compiled: CompiledDatafile,
  visitorId: string,
  attributes: Record<string, string | number | boolean>,
): { field: "experimentId"; reason: string } | null {
  if (!compiled.holdouts.some((h) => h.running)) return null;
  const held = holdoutArms(compiled, prepareVisitor(compiled, { visitorId, attributes })).find(
    (a) => a.held,
  );
  if (held === undefined) return null;
  return {
    field: "experimentId",
    reason: `the visitor is in the environment's holdout (${held.holdoutId}): kept out of every experiment`,
  };
}

/** The item's uuid (generated when absent) and timestamp (now when absent), or null (rejected). */
function uuidAndTimestamp(
  item: Record<string, unknown>,
  path: string,
  index: number,
  rejected: Rejection[],
  now: number,
): { uuid: string; timestamp: number } | null {
  let uuid: string;
  if (item.uuid === undefined || item.uuid === null) uuid = crypto.randomUUID();
  else {
    const problem = uuidProblem(item.uuid);
    if (problem) return reject(rejected, index, `${path}.uuid`, problem);
    uuid = item.uuid as string;
  }
  let timestamp = now;
  if (item.timestamp !== undefined && item.timestamp !== null) {
    const problem = timestampProblem(item.timestamp, now);
    if (problem) return reject(rejected, index, `${path}.timestamp`, problem);
    timestamp = item.timestamp as number;
  }
  return { uuid, timestamp };
}
