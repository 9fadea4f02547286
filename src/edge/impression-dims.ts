/**
 * The dimensions an impression carries for breakdowns of the results (docs/statistics.md
 * "Breakdowns"): device type and browser family from the User-Agent (src/edge/user-agent.ts),
 * Cloudflare's country, the traffic source and new vs returning. The consumer keeps those of the
 * visitor's first exposure to each experiment.
 */
import { BREAKDOWN_VALUE_MAX, type ImpressionDims } from "../shared/event-messages";
import { parseUserAgent } from "./user-agent";

/**
 * A free-text value (utm_source, a host) as a segment name: lower-case letters, digits and
 * `. _ ~ -` only (anything else becomes `_`: no control characters reach a terminal or a
 * spreadsheet, no `(` to pass for the "(other)" and "(unknown)" segments), at most 64.
 */
function clip(value: string): string | undefined {
  const text = value
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9._~-]+/g, "_")
    .slice(0, BREAKDOWN_VALUE_MAX);
  return text === "" || text === "_" ? undefined : text;
}

/**
 * The traffic source of a page request: its `utm_source`, else the host of a referrer on another
 * site, else "direct" (no referrer, or a page of the same site).
 */
export function trafficSource(url: URL, referrer: string | null): string {
  const utm = url.searchParams.get("utm_source");
  if (utm !== null) {
    const clipped = clip(utm);
    if (clipped !== undefined) return clipped;
  }
  if (referrer) {
    try {
      const host = new URL(referrer).hostname.toLowerCase();
      if (host !== "" && host !== url.hostname.toLowerCase())
        return clip(host.replace(/^www\./, "")) ?? "direct";
    } catch {
      // Not a URL: no source to name.
    }
  }
  return "direct";
}

/**
 * The dimensions of an impression made while serving `request`. `page` is the page URL and the
 * visitor as the edge read them — absent for impressions a browser reports later (then the
 * source and new/returning are unknown: the beacon's referrer is our own page).
 */
export function impressionDims(
  request: Request,
  page?: { url: URL; visitor: { isNew: boolean; bot: boolean } },
): ImpressionDims {
  const ua = parseUserAgent(request.headers.get("user-agent"));
  const dims: ImpressionDims = {
    device: page?.visitor.bot ? "bot" : ua.deviceType,
    browser: ua.browserName,
  };
  const country = (request.cf as { country?: unknown } | undefined)?.country;
  if (typeof country === "string" && /^[A-Z0-9]{2}$/.test(country)) dims.country = country;
  if (page) {
    dims.source = trafficSource(page.url, request.headers.get("referer"));
    dims.visitor = page.visitor.isNew ? "new" : "returning";
  }
  return dims;
}
