/**
 * `GET /_ss/decide?url=<page URL>`: decisions for a page a single-page app reached without a page
 * load (docs/client.md "Single-page apps"). The client script asks when a `url_changed` or
 * `dom_changed` page starts to match and the bootstrap has no decision for one of its
 * experiments (the edge only decided the pages of the URL it served).
 *
 * It decides exactly as the edge does for a page request at `url` — same visitor cookies, sticky
 * decisions, preview, request attributes (with `url`, `path`, `query.*` … of the given URL) —
 * for the experiments of the matching pages whose activation is `url_changed` or `dom_changed`,
 * stores them in `ss_dec` like the edge, and answers `{"t": tracking, "d": [decision, …]}` in the
 * bootstrap's format. Nothing is counted here: the client sends the impression when it applies
 * the variation, and the event endpoint accepts it only if `ss_dec` holds that decision.
 *
 * Not tracked (bot by default, opted out, GPC, no consent) → `{"t":false,"d":[]}` without
 * cookies, as the edge serves such visitors the original page. Same-origin only (no CORS).
 */
import { decidePrepared, prepareVisitor } from "../core/index";
import type { Env } from "../env";
import { hasConsent } from "../shared/consent";
import type { BootstrapPayload } from "../shared/bootstrap-types";
import { encodeDecision } from "./bootstrap";
import { parseCookies, serializeCookie } from "./cookies";
import { getDatafile } from "./datafile-store";
import { errorResponse } from "../shared/error-response";
import { planPage } from "./page-plan";
import { verifyPreview } from "./preview";
import { buildRequestAttributes } from "./request-attributes";
import type { RouteConfig } from "./routes";
import { encodeSticky, readVisitor, STICKY_COOKIE } from "./visitor";

export const DECIDE_PATH = "/_ss/decide";
const MAX_URL_LENGTH = 8192;

function json(body: { t: boolean; d: BootstrapPayload["d"] }, setCookies: string[] = []): Response {
  const response = new Response(JSON.stringify(body), {
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "private, no-store",
    },
  });
  for (const cookie of setCookies) response.headers.append("set-cookie", cookie);
  return response;
}

export async function handleDecide(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
  route: RouteConfig,
  url: URL,
): Promise<Response> {
  if (request.method !== "GET") {
    return errorResponse(405, "method_not_allowed", `GET ${DECIDE_PATH}?url=…`, null, {
      allow: "GET",
    });
  }
  const raw = url.searchParams.get("url") ?? "";
  let target: URL | null = null;
  try {
    if (raw.length <= MAX_URL_LENGTH) target = new URL(raw);
  } catch {
    target = null;
  }
  if (!target || (target.protocol !== "http:" && target.protocol !== "https:")) {
    return errorResponse(400, "invalid_url", "url must be the page's absolute http(s) URL", {
      path: "url",
    });
  }

  const cookies = parseCookies(request.headers.get("cookie"));
  const visitor = readVisitor(request, cookies);
  if (
    (visitor.bot && route.botPolicy === "original") ||
    visitor.optedOut ||
    (visitor.gpc && route.gpcPolicy === "respect") ||
    !hasConsent(route.consent, request.headers.get("cookie"))
  ) {
    return json({ t: false, d: [] });
  }
  if (visitor.idSource === "new") {
    return errorResponse(
      400,
      "no_visitor",
      "no visitor cookie (ss_vid): decisions are made for pages the edge has served",
    );
  }
  const entry = await getDatafile(env, ctx, route.sdkKey);
  if (!entry) return json({ t: false, d: [] });
  const compiled = entry.compiled;

  let preview: Record<string, string> | undefined;
  if (visitor.previewToken && env.SIGNING_KEY) {
    const grant = await verifyPreview(env.SIGNING_KEY, visitor.previewToken, Date.now());
    if (grant && grant.sdkKey === route.sdkKey) preview = grant.variations;
  }
  const tracking = !visitor.bot && preview === undefined;

  const plan = planPage(compiled, target.href);
  const candidates = plan.candidates.filter(
    (c) => c.activation === "url_changed" || c.activation === "dom_changed",
  );
  if (candidates.length === 0) return json({ t: tracking, d: [] });
  const prepared = prepareVisitor(compiled, {
    visitorId: visitor.id,
    attributes: buildRequestAttributes(request, target, cookies, visitor, new Date()),
    sticky: visitor.sticky,
    preview,
  });

  const decisions: BootstrapPayload["d"] = [];
  const sticky = { ...visitor.sticky };
  let stickyChanged = false;
  for (const candidate of candidates) {
    const decision = decidePrepared(candidate.experiment, prepared);
    if (decision.variationId === null || decision.variationKey === null) continue;
    decisions.push(
      encodeDecision({
        experimentId: candidate.experiment.id,
        experimentKey: decision.experimentKey,
        variationId: decision.variationId,
        variationKey: decision.variationKey,
        activation: candidate.activation,
        pageIds: candidate.pageIds,
      }),
    );
    if (decision.reason !== "preview" && sticky[candidate.experiment.id] !== decision.variationId) {
      sticky[candidate.experiment.id] = decision.variationId;
      stickyChanged = true;
    }
  }
  const setCookies: string[] = [];
  if (stickyChanged && !visitor.bot) {
    setCookies.push(
      serializeCookie(STICKY_COOKIE, encodeSticky(sticky, plan.runningIds), {
        domain: route.cookieDomain,
        secure: url.protocol === "https:",
        httpOnly: true,
        maxAgeSeconds: route.cookieMaxAgeDays * 86400,
      }),
    );
  }
  return json({ t: tracking, d: decisions }, setCookies);
}
