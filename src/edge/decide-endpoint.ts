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
 * When the datafile has feature flags, the answer also has `f`: every flag decided for this
 * visitor at `url` (docs/client.md "Feature flags"), the A/B-rule decisions stored in `ss_dec`
 * like experiment decisions and counted here, as the edge counts them with each page view it
 * serves: nothing in the page applies a flag's variation (its code reads the flags), so the
 * decision is the exposure — and a single-page app that enters an A/B rule on a navigation has
 * it counted before the conversion that may follow.
 *
 * Not tracked (bot by default, opted out, GPC, no consent) → `{"t":false,"d":[]}` without
 * cookies, as the edge serves such visitors the original page — plus `f` with the flags' delivery
 * rules only, as the edge decides them for such visitors. Same-origin only (no CORS).
 */
import { decidePrepared, prepareVisitor, type FlagDecision } from "../core/index";
import type { Env } from "../env";
import { hasConsent } from "../shared/consent";
import type { BootstrapPayload } from "../shared/bootstrap-types";
import { encodeDecision, encodeFlags } from "./bootstrap";
import { parseCookies, serializeCookie } from "./cookies";
import { getDatafile } from "./datafile-store";
import { errorResponse } from "../shared/error-response";
import { decideFlags, flagImpressionMessage, flagImpressions, recordFlagSticky } from "./flags";
import type { SendEvents } from "./handle-request";
import { impressionDims } from "./impression-dims";
import { planPage } from "./page-plan";
import { verifyPreview } from "./preview";
import { buildRequestAttributes } from "./request-attributes";
import type { RouteConfig } from "./routes";
import { encodeSticky, readVisitor, STICKY_COOKIE } from "./visitor";

export const DECIDE_PATH = "/_ss/decide";
const MAX_URL_LENGTH = 8192;

type DecideBody = Pick<BootstrapPayload, "t" | "d" | "f">;

function json(body: DecideBody, setCookies: string[] = []): Response {
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
  sendEvents?: SendEvents,
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
    // The flags' delivery rules still apply (as on the edge's pages): no A/B rule, no cookie.
    const entry = await getDatafile(env, ctx, route.sdkKey);
    if (!entry || entry.compiled.featureFlags.length === 0) return json({ t: false, d: [] });
    const f = flagsOrNull(() =>
      decideFlags(
        entry.compiled,
        prepareVisitor(entry.compiled, {
          visitorId: visitor.id,
          attributes: buildRequestAttributes(request, target, cookies, visitor, new Date()),
        }),
        { experimentRules: false },
      ),
    );
    return json(
      f === null ? { t: false, d: [] } : { t: false, d: [], f: encodeFlags(f, Infinity) },
    );
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
  const hasFlags = compiled.featureFlags.length > 0;
  if (candidates.length === 0 && !hasFlags) return json({ t: tracking, d: [] });
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
  const flags = hasFlags ? flagsOrNull(() => decideFlags(compiled, prepared)) : null;
  if (flags !== null && recordFlagSticky(sticky, flags, preview)) stickyChanged = true;
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
  const body: DecideBody = { t: tracking, d: decisions };
  if (flags !== null) body.f = encodeFlags(flags, Infinity);
  const impressions = tracking && flags !== null ? flagImpressions(flags) : [];
  if (sendEvents !== undefined && impressions.length > 0) {
    const timestamp = Date.now();
    const dims = impressionDims(request, { url: target, visitor });
    const context = {
      sdkKey: route.sdkKey,
      revision: compiled.revision,
      visitorId: visitor.id,
      timestamp,
      dims,
    };
    ctx.waitUntil(
      sendEvents(
        env,
        impressions.map((impression) => flagImpressionMessage(context, impression)),
      ),
    );
  }
  return json(body, setCookies);
}

/**
 * The flags `decide` gives, or null when it throws (logged): the answer then has no `f`, and the
 * client keeps the flags it has — as the edge drops flags, never a page, on such an error.
 */
function flagsOrNull(decide: () => FlagDecision[]): FlagDecision[] | null {
  try {
    return decide();
  } catch (error) {
    console.error("splitstream: deciding feature flags failed; /_ss/decide answers without", error);
    return null;
  }
}
