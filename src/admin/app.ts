/**
 * Admin pages at /_ss/admin (docs/admin.md): server-rendered HTML, no script at all (charts are
 * SVG drawn here), so they work offline and under a CSP without `script-src`.
 *
 * - Login with an API token (the same tokens as the management API, any role), checked by the
 *   API's own token check (src/api/services/token-authentication.ts, so its brute-force limit
 *   counts the form's failures). The token is never stored: sign-in starts a server-side session
 *   (src/api/services/sessions.ts) whose opaque id is the only thing in the HttpOnly,
 *   SameSite=Strict cookie limited to /_ss/admin. Every page re-checks the session and its token,
 *   then calls the API's services (src/api/services/) as that token's Actor, so authorisation,
 *   validation and publishing are the API's own (an editor can start and pause, a viewer only
 *   look); what they refuse is shown as the API's error message. Sign-out deletes the session.
 * - Every POST (sign-in and sign-out included) must come from this origin (Sec-Fetch-Site, else
 *   Origin, else Referer), besides the SameSite cookie; anything else is 403.
 */
import { Hono } from "hono";
import { html, raw } from "hono/html";
import type { Env } from "../env";
import type { Actor } from "../api/context";
import { ApiError } from "../api/errors";
import { actorForTokenHash, requireActorRole } from "../api/services/auth";
import {
  authClientKey,
  isLimited,
  recentAuthFailures,
  retryAfterSeconds,
} from "../api/services/auth-limit";
import { loadAllocationHistory } from "../api/services/bandit-allocations";
import { applyExperimentAction } from "../api/services/experiment-lifecycle";
import { experimentResource } from "../api/services/experiments";
import { getProject, listProjects } from "../api/services/projects";
import { parseExperimentActionBody, parseResultsQuery } from "../api/services/request-parsing";
import { getResource, listResources } from "../api/services/resources";
import { loadResults, type ExperimentResults } from "../api/services/results";
import { resultsCsv, resultsCsvFilename } from "../api/services/results-csv";
import { BREAKDOWN_DIMENSIONS } from "../shared/event-messages";
import { createSession, deleteSession, findSession } from "../api/services/sessions";
import { authenticateToken } from "../api/services/token-authentication";
import { errorResponse } from "../shared/error-response";
import { sha256Hex } from "../shared/hash";
import { intervalChart, lineChart, percent, type IntervalRow, type Series } from "./charts";
import { contentNav, registerContentPages } from "./content-pages";
import { registerExplainPages } from "./explain-page";
import { registerFlagPages } from "./flag-pages";
import { experimentControls, newExperimentLink, registerExperimentPages } from "./experiment-pages";
import { registerSchedulePages, scheduleSection } from "./schedule-pages";
import { registerHoldoutPages } from "./holdout-page";
import { registerSettingsPages } from "./settings-pages";
import { registerWebhookPages } from "./webhook-pages";
import { registerEditorPages } from "./editor-routes";
import { pendingReviewNotice, registerReviewPages, reviewsPath } from "./review-pages";
import { isPendingReview } from "../api/services/review";
import {
  SignedOut,
  ADMIN_BASE_PATH,
  type AdminEnv,
  type AllocationItem,
  type ExperimentJson,
  type Html,
  RateLimited,
  sessionCookie,
  send,
  page,
  type AdminContext,
  sameOrigin,
  readCookie,
  ADMIN_COOKIE,
  attempt,
  errorBlock,
  queryOf,
} from "./ui";

const fmtNumber = (n: number | null | undefined, digits = 0) =>
  n === null || n === undefined
    ? "–"
    : n.toLocaleString("en-US", { maximumFractionDigits: digits });
const fmtP = (p: number | null) => (p === null ? "–" : p < 0.0001 ? "< 0.0001" : p.toFixed(4));
const signed = (x: number) => `${x > 0 ? "+" : ""}${percent(x)}`;
/** An interval end; null is an end the data cannot bound yet (docs/statistics.md). */
const signedEnd = (x: number | null, open: string) => (x === null ? open : signed(x));
const verdictLabel: Record<string, string> = {
  winner: "winner",
  loser: "loser",
  inconclusive: "inconclusive",
  not_enough_data: "not enough data",
  baseline: "baseline",
};
const verdictBadge = (verdict: string) =>
  html`<span class="badge ${verdict}" data-verdict="${verdict}"
    >${verdictLabel[verdict] ?? verdict}</span
  >`;

/** The primary metric's headline for an experiment list: the best verdict across variations. */
export function primarySummary(results: ExperimentResults): { verdict: string; text: string } {
  const primary = results.metrics.find((m) => m.primary);
  if (!primary) return { verdict: "not_enough_data", text: "no metric" };
  const rows = primary.variations.filter((v) => !v.baseline);
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  for (const verdict of ["winner", "loser"] as const) {
    const row = rows.find((v) => v.verdict === verdict);
    if (row)
      return { verdict, text: `${keyOf(row.variationId)} ${signed(row.lift?.estimate ?? 0)}` };
  }
  if (rows.some((v) => v.verdict === "inconclusive")) return { verdict: "inconclusive", text: "" };
  return { verdict: "not_enough_data", text: "" };
}

function experimentActions(experiment: ExperimentJson, environment: string): Html {
  const status = experiment.status[environment] ?? "Not started";
  const actions: Array<[string, string]> =
    status === "Not started"
      ? [["start", "Start"]]
      : status === "Running"
        ? [["pause", "Pause"]]
        : status === "Paused"
          ? [["resume", "Resume"]]
          : [];
  return html`${actions.map(
    ([action, label]) =>
      html`<form method="post" action="${ADMIN_BASE_PATH}/experiments/${experiment.id}/${action}">
        <input type="hidden" name="environment" value="${environment}" />
        <button type="submit" data-action="${action}">${label}</button>
      </form>`,
  )}`;
}

/** A mean per visitor as the metric reads: a rate in %, revenue in currency units, else 3 places. */
function formatMean(
  metric: Pick<ExperimentResults["metrics"][number], "aggregator" | "field"> | undefined,
  mean: number | null,
): string {
  if (mean === null) return "–";
  if (metric?.aggregator === "unique") return percent(mean, 2);
  if (metric?.field === "revenue") return (mean / 100).toFixed(2);
  return mean.toFixed(3);
}

function metricTable(
  results: ExperimentResults,
  metric: ExperimentResults["metrics"][number],
): Html {
  const isRate = metric.aggregator === "unique";
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const meanText = (mean: number | null) => formatMean(metric, mean);
  return html`<table data-metric="${metric.eventKey ?? metric.eventId}">
    <thead>
      <tr>
        <th>Variation</th>
        <th class="num">Visitors</th>
        <th class="num">${isRate ? "Converters" : "Events"}</th>
        <th class="num">${isRate ? "Conversion rate" : "Mean per visitor"}</th>
        <th class="num">Lift</th>
        <th class="num">Interval (${percent(1 - results.analysis.alpha, 0)})</th>
        <th class="num">p</th>
        <th class="num">q</th>
        <th>Verdict</th>
      </tr>
    </thead>
    <tbody>
      ${metric.variations.map(
        (v) =>
          html`<tr data-variation="${keyOf(v.variationId)}">
            <td>${keyOf(v.variationId)}</td>
            <td class="num">${fmtNumber(v.visitors)}</td>
            <td class="num">${fmtNumber(v.conversions)}</td>
            <td class="num">${meanText(v.mean)}</td>
            <td class="num">${v.lift ? signed(v.lift.estimate) : "–"}</td>
            <td class="num">
              ${
                v.lift
                  ? `${signedEnd(v.lift.ci[0], "−∞")} to ${signedEnd(v.lift.ci[1], "+∞")}`
                  : "–"
              }
            </td>
            <td class="num">${fmtP(v.pValue)}</td>
            <td class="num">${fmtP(v.qValue)}</td>
            <td>${verdictBadge(v.verdict)}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** What CUPED did for a metric's comparisons (docs/statistics.md "CUPED"). */
function cupedNote(results: ExperimentResults, metric: ExperimentResults["metrics"][number]): Html {
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const adjusted = metric.variations.filter((v) => v.cuped !== null);
  if (adjusted.length === 0) return html``;
  return html`<p class="muted" data-cuped="applied">
    CUPED (adjusted by each visitor's ${metric.eventKey ?? metric.eventId} before exposure):
    ${adjusted.map(
      (v, i) =>
        html`${i > 0 ? "; " : ""}${keyOf(v.variationId)} ${percent(v.cuped!.varianceReduction, 0)}
        less variance`,
    )}.
  </p>`;
}

/** The guardrails' marks and current state (docs/statistics.md "Guardrails"). */
function guardrailBlock(results: ExperimentResults): Html {
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const metricKey = (id: string) => results.metrics.find((m) => m.eventId === id)?.eventKey ?? id;
  const marks = results.guardrailBreaches;
  const banner =
    marks.length === 0
      ? ""
      : html`<div class="warning" role="alert" data-guardrail="breached">
          <strong>Guardrail breached.</strong>
          <ul>
            ${marks.map(
              (b) =>
                html`<li>
                  ${keyOf(b.variationId)} harms ${metricKey(b.eventId)}
                  (${b.lift === null ? "" : `${signed(b.lift)}, `}p = ${fmtP(b.pValue)}), found
                  ${b.detectedAt.slice(0, 16).replace("T", " ")} UTC —
                  ${
                    b.pausedAt !== null
                      ? "the experiment was paused"
                      : b.action === "pause"
                        ? "its pause is pending"
                        : "marked only"
                  }
                </li>`,
            )}
          </ul>
        </div>`;
  if (results.guardrails.length === 0) return html`${banner}`;
  return html`${banner}
    <h3>Guardrails</h3>
    <table data-guardrails>
      <thead>
        <tr>
          <th>Metric</th>
          <th>Variation</th>
          <th class="num">Change</th>
          <th class="num">p (harm)</th>
          <th>On harm</th>
          <th>State</th>
        </tr>
      </thead>
      <tbody>
        ${results.guardrails.map(
          (g) =>
            html`<tr
              data-guardrail-metric="${metricKey(g.eventId)}"
              data-variation="${keyOf(g.variationId)}"
            >
              <td>${metricKey(g.eventId)}</td>
              <td>${keyOf(g.variationId)}</td>
              <td class="num">${g.lift === null ? "–" : signed(g.lift)}</td>
              <td class="num">${fmtP(g.pValue)}</td>
              <td>${g.action}</td>
              <td>
                ${
                  g.harmed
                    ? html`<span class="badge loser">harmed</span>`
                    : html`<span class="muted">no harm found</span>`
                }
              </td>
            </tr>`,
        )}
      </tbody>
    </table>`;
}

const DIMENSION_NAMES: Record<(typeof BREAKDOWN_DIMENSIONS)[number], string> = {
  device: "device",
  browser: "browser",
  country: "country",
  source: "traffic source",
  visitor: "new vs returning",
};

/** Results per segment (docs/statistics.md "Breakdowns"): links per dimension, then the tables. */
function breakdownBlock(results: ExperimentResults, environment: string, mode: string): Html {
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const metricOf = (id: string) => results.metrics.find((m) => m.eventId === id);
  const metricKey = (id: string) => metricOf(id)?.eventKey ?? id;
  const href = (dimension: string) =>
    `?environment=${encodeURIComponent(environment)}&mode=${mode}&breakdown=${dimension}`;
  const b = results.breakdown;
  return html`<h3>Break down by</h3>
    <p class="row">
      ${BREAKDOWN_DIMENSIONS.map(
        (d) =>
          html`<a href="${href(d)}" ${b?.dimension === d ? html`aria-current="true"` : ""}
            >${DIMENSION_NAMES[d]}</a
          >`,
      )}
    </p>
    ${
      b === null
        ? ""
        : html`<div data-breakdown="${b.dimension}">
            <p class="muted">
              By the visitors' ${DIMENSION_NAMES[b.dimension]} at their first exposure; q-values
              corrected across every segment.
            </p>
            ${b.segments.map(
              (segment) =>
                html`<h4>
                    ${segment.value}
                    <span class="muted"
                      >(${fmtNumber(segment.visitors)}
                      ${segment.visitors === 1 ? "visitor" : "visitors"})</span
                    >
                  </h4>
                  ${segment.metrics.map(
                    (m) =>
                      html`<table
                        data-segment="${segment.value}"
                        data-metric="${metricKey(m.eventId)}"
                      >
                        <thead>
                          <tr>
                            <th>${metricKey(m.eventId)}</th>
                            <th class="num">Visitors</th>
                            <th class="num">Mean</th>
                            <th class="num">Lift</th>
                            <th class="num">q</th>
                            <th>Verdict</th>
                          </tr>
                        </thead>
                        <tbody>
                          ${m.variations.map(
                            (v) =>
                              html`<tr>
                                <td>${keyOf(v.variationId)}</td>
                                <td class="num">${fmtNumber(v.visitors)}</td>
                                <td class="num">${formatMean(metricOf(m.eventId), v.mean)}</td>
                                <td class="num">${v.lift ? signed(v.lift.estimate) : "–"}</td>
                                <td class="num">${fmtP(v.qValue)}</td>
                                <td>${verdictBadge(v.verdict)}</td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>`,
                  )}`,
            )}
          </div>`
    }`;
}

/** Multivariate main effects: per section, its variants pooled over the other sections. */
function sectionsBlock(results: ExperimentResults): Html {
  if (results.sections === null) return html``;
  const metricOf = (id: string) => results.metrics.find((m) => m.eventId === id);
  const metricKey = (id: string) => metricOf(id)?.eventKey ?? id;
  return html`<h3>Sections (main effects)</h3>
    <p class="muted">
      Each variant pooled over every variant of the other sections, compared with the section's
      first variant.
    </p>
    ${results.sections.map(
      (section) =>
        html`<h4>${section.name ?? section.id}</h4>
          ${section.metrics.map((m) => {
            const nameOf = (id: string) => section.variations.find((v) => v.id === id)?.name ?? id;
            return html`<table
              data-section="${section.name ?? section.id}"
              data-metric="${metricKey(m.eventId)}"
            >
              <thead>
                <tr>
                  <th>${metricKey(m.eventId)}</th>
                  <th class="num">Visitors</th>
                  <th class="num">Mean</th>
                  <th class="num">Lift</th>
                  <th class="num">Interval (${percent(1 - results.analysis.alpha, 0)})</th>
                  <th class="num">q</th>
                  <th>Verdict</th>
                </tr>
              </thead>
              <tbody>
                ${m.variations.map(
                  (v) =>
                    html`<tr data-variant="${nameOf(v.variationId)}">
                      <td>${nameOf(v.variationId)}</td>
                      <td class="num">${fmtNumber(v.visitors)}</td>
                      <td class="num">${formatMean(metricOf(m.eventId), v.mean)}</td>
                      <td class="num">${v.lift ? signed(v.lift.estimate) : "–"}</td>
                      <td class="num">
                        ${
                          v.lift
                            ? `${signedEnd(v.lift.ci[0], "−∞")} to ${signedEnd(v.lift.ci[1], "+∞")}`
                            : "–"
                        }
                      </td>
                      <td class="num">${fmtP(v.qValue)}</td>
                      <td>${verdictBadge(v.verdict)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`;
          })}`,
    )}`;
}

function charts(results: ExperimentResults): Html {
  const primary = results.metrics.find((m) => m.primary);
  if (!primary) return html``;
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const isRate = primary.aggregator === "unique";
  const series: Series[] = results.variations.map((v) => ({
    label: v.key ?? v.id,
    points: results.cumulative
      .filter((p) => p.eventId === primary.eventId && p.variationId === v.id && p.mean !== null)
      .map((p) => ({ x: p.day, y: p.mean! })),
  }));
  const rows: IntervalRow[] = primary.variations
    .filter((v) => !v.baseline)
    .map((v) => ({
      label: keyOf(v.variationId),
      estimate: v.lift?.estimate ?? Number.NaN,
      low: v.lift ? (v.lift.ci[0] ?? -Infinity) : Number.NaN,
      high: v.lift ? (v.lift.ci[1] ?? Infinity) : Number.NaN,
      tone: v.verdict === "winner" ? "good" : v.verdict === "loser" ? "bad" : "neutral",
    }));
  const title = `${isRate ? "Cumulative conversion rate" : "Cumulative mean per visitor"}: ${primary.eventKey ?? primary.eventId}`;
  return html`<section>
    <h3>${title}</h3>
    ${raw(
      lineChart(
        title,
        series,
        isRate ? (y) => percent(y) : (y) => y.toFixed(primary.field === "revenue" ? 0 : 2),
      ),
    )}
    <h3>
      Lift vs ${keyOf(results.analysis.baselineVariationId ?? "")}
      (${percent(1 - results.analysis.alpha, 0)} intervals)
    </h3>
    ${raw(intervalChart(`Lift intervals: ${primary.eventKey ?? primary.eventId}`, rows))}
  </section>`;
}

/**
 * Bandit experiments: the traffic weights over time (one line per variation, from the allocation
 * history), the latest probability of being best and the declared winner (docs/bandits.md).
 */
function banditSection(experiment: ExperimentJson, items: AllocationItem[]): Html {
  if (experiment.allocationPolicy !== "bandit" && items.length === 0) return html``;
  const variations = experiment.variations;
  const keyOf = (id: string) => variations.find((v) => v.id === id)?.key ?? id;
  const at = (iso: string) => iso.slice(0, 16).replace("T", " ");
  const series: Series[] = variations.map((v) => ({
    label: v.key,
    points: items
      .filter((item) => typeof item.weights[v.id] === "number")
      .map((item) => ({ x: at(item.createdAt), y: item.weights[v.id]! / 10000 })),
  }));
  const verdict = [...items]
    .reverse()
    .find((item) => ["warming_up", "thompson", "winner"].includes(item.reason));
  const skipped = items.at(-1)?.reason === "skipped" ? items.at(-1)!.message : null;
  return html`<section data-section="bandit">
    <h2>Bandit allocation</h2>
    <p class="muted">
      Policy ${experiment.allocationPolicy}: the weights are recomputed hourly from the primary
      metric (Thompson sampling); visitors keep the variation they got.
      ${
        verdict
          ? html`Probability of being best:
            ${Object.entries(verdict.probabilityBest)
              .map(([id, p]) => `${keyOf(id)} ${percent(p)}`)
              .join(", ")}.`
          : "No allocation yet."
      }
    </p>
    ${skipped ? html`<p class="warning" role="status">Not re-allocated: ${skipped}</p>` : ""}
    ${
      verdict?.winner
        ? html`<p class="row" data-winner="${keyOf(verdict.winner)}">
            <span class="badge winner">Winner: ${keyOf(verdict.winner)}</span>
            <span class="muted">Serve it to 100 % with POST /experiments/{id}/serve-winner.</span>
          </p>`
        : ""
    }
    ${raw(lineChart("Traffic weights over time", series, (y) => percent(y, 0)))}
  </section>`;
}

function rateLimitedText(error: RateLimited): string {
  return `Too many failed sign-ins from this address. Try again in ${error.retryAfter} seconds.`;
}

function rateLimitedMessage(error: RateLimited): Html {
  return html`<p class="error" role="alert">${rateLimitedText(error)}</p>`;
}

/** Builds the admin Hono app (mounted at /_ss/admin by src/index.ts). */
export function buildAdminApp(): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>().basePath(ADMIN_BASE_PATH);

  app.onError((error, c) => {
    if (error instanceof SignedOut) {
      c.header("set-cookie", sessionCookie(c, null));
      return c.redirect(`${ADMIN_BASE_PATH}/login`, 303);
    }
    if (error instanceof RateLimited) {
      c.header("retry-after", error.retryAfter);
      return send(c, page("Too many attempts", rateLimitedMessage(error)), 429);
    }
    console.error("splitstream admin:", error);
    return send(c, page("Error", html`<p class="error">Something went wrong.</p>`), 500);
  });

  const loginPage = (
    c: AdminContext,
    message: string | null,
    status: 200 | 401 | 403 | 429 = 200,
  ) =>
    send(
      c,
      page(
        "Sign in",
        html`<h1>Sign in</h1>
          ${message === null ? "" : html`<p class="error" role="alert">${message}</p>`}
          <form method="post" action="${ADMIN_BASE_PATH}/login">
            <p>
              <label
                >API token<br /><input
                  type="password"
                  name="token"
                  autocomplete="current-password"
                  required
              /></label>
            </p>
            <button type="submit">Sign in</button>
          </form>
          <p class="muted">Any management API token works; its role decides what you can do.</p>`,
        { signedIn: false },
      ),
      status,
    );

  // Every state-changing request, sign-in and sign-out included, must come from this origin
  // (docs/admin.md): registered before every route, so no route can forget it.
  app.use("*", async (c, next) => {
    if (c.req.method === "GET" || c.req.method === "HEAD" || sameOrigin(c)) return next();
    if (c.req.path === `${ADMIN_BASE_PATH}/login`)
      return loginPage(c, "Sign-in must come from this site.", 403);
    return send(c, page("Refused", html`<p class="error">Cross-site request refused.</p>`), 403);
  });

  app.get("/login", (c) => loginPage(c, null));

  app.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    if (token === "" || token.length > 512) return loginPage(c, "Enter an API token.", 401);
    try {
      // The API's token check, which counts a failure against this client (docs/admin.md).
      await authenticateToken(c.env, c.executionCtx, token, c.req.header("cf-connecting-ip"));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 401) return loginPage(c, "That token is not valid.", 401);
      if (error.status === 429) {
        const limited = new RateLimited(error.headers["retry-after"] ?? "1");
        c.header("retry-after", limited.retryAfter);
        return loginPage(c, rateLimitedText(limited), 429);
      }
      throw error;
    }
    const session = await createSession(c.env.DB, await sha256Hex(token));
    c.header("set-cookie", sessionCookie(c, session.id));
    return c.redirect(ADMIN_BASE_PATH, 303);
  });

  app.post("/logout", async (c) => {
    const sessionId = readCookie(c, ADMIN_COOKIE);
    if (sessionId) await deleteSession(c.env.DB, sessionId);
    c.header("set-cookie", sessionCookie(c, null));
    return c.redirect(`${ADMIN_BASE_PATH}/login`, 303);
  });

  // Everything below needs a live session whose token still authenticates.
  app.use("*", async (c, next) => {
    const sessionId = readCookie(c, ADMIN_COOKIE);
    if (!sessionId) return c.redirect(`${ADMIN_BASE_PATH}/login`, 303);
    const db = c.env.DB;
    const now = Date.now();
    // A client over the brute-force limit gets 429 whatever it sends (docs/security.md "Brute
    // force"), as it did when every page authenticated with the token.
    const [failures, session] = await Promise.all([
      recentAuthFailures(db, authClientKey(c.req.header("cf-connecting-ip")), now),
      findSession(db, sessionId, now),
    ]);
    if (isLimited(failures)) throw new RateLimited(String(retryAfterSeconds(failures!, now)));
    const actor = session
      ? await actorForTokenHash(c.env, c.executionCtx, session.token_hash)
      : null;
    if (!actor) throw new SignedOut();
    c.set("actor", actor);
    c.set("tokenHash", session!.token_hash);
    await next();
  });
  const actorOf = (c: AdminContext): Actor => c.get("actor");

  app.get("/", async (c) => {
    const projects = await attempt(() =>
      listProjects(c.env, actorOf(c), { limit: 100, cursor: null }),
    );
    if (!projects.ok) return send(c, page("Projects", errorBlock(projects.error)), 500);
    const items = projects.value.items;
    if (items.length === 1) return c.redirect(`${ADMIN_BASE_PATH}/projects/${items[0]!.id}`, 303);
    return send(
      c,
      page(
        "Projects",
        html`<h1>Projects</h1>
          <p><a href="${ADMIN_BASE_PATH}/new-project">New project</a></p>
          ${
            items.length === 0
              ? html`<p>No projects yet: create one with the API or <code>splitstream</code>.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Project</th>
                      <th>Key</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${items.map(
                      // Projects have no key (docs/api.md "Projects"): the Key column stays empty.
                      (p) =>
                        html`<tr>
                          <td>
                            <a href="${ADMIN_BASE_PATH}/projects/${p.id}">${p.name}</a>
                          </td>
                          <td></td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }`,
      ),
    );
  });

  app.get("/projects/:id", async (c) => {
    const actor = actorOf(c);
    const id = c.req.param("id");
    const environment = c.req.query("environment") ?? "production";
    const project = await attempt(() => getProject(c.env, actor, id));
    if (!project.ok)
      return send(
        c,
        page("Project", errorBlock(project.error)),
        project.error.status === 404 ? 404 : 500,
      );
    const list = await attempt(() =>
      listResources(c.env, actor, experimentResource, id, { limit: 100, cursor: null }),
    );
    if (!list.ok) return send(c, page("Experiments", errorBlock(list.error)), 500);
    const experiments = list.value.items;
    const summaries = await Promise.all(
      experiments.map(async (experiment) => {
        const results = await attempt(() =>
          // The list shows counts and the primary verdict: no per-visitor reads (CUPED) for it.
          loadResults(c.env, experiment.id, parseResultsQuery({ environment, cuped: "false" })),
        );
        if (!results.ok) return null;
        const visitors = results.value.variations.reduce((sum, v) => sum + v.visitors, 0);
        return { ...primarySummary(results.value), visitors, srm: results.value.srm.flagged };
      }),
    );
    const { name } = project.value.project;
    const environments = project.value.environments;
    return send(
      c,
      page(
        name,
        html`<h1>${name}</h1>
          <p class="row">
            <a href="${ADMIN_BASE_PATH}/projects/${id}/settings">Settings</a>
            <a href="${reviewsPath(id)}">Reviews</a>
          </p>
          ${contentNav(id)} ${newExperimentLink(id, actor)}
          <p class="row">
            Environment:
            ${environments.map((e) =>
              e.key === environment
                ? html`<strong>${e.key}</strong>`
                : html`<a href="?environment=${encodeURIComponent(e.key)}">${e.key}</a>`,
            )}
          </p>
          ${
            experiments.length === 0
              ? html`<p>No experiments yet.</p>`
              : html`<table data-list="experiments">
                  <thead>
                    <tr>
                      <th>Experiment</th>
                      <th>Type</th>
                      <th>Status</th>
                      <th class="num">Visitors</th>
                      <th>Primary metric</th>
                      <th></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${experiments.map((x, i) => {
                      const summary = summaries[i];
                      const status = x.status[environment] ?? "Not started";
                      return html`<tr data-experiment="${x.key}">
                        <td>
                          <a
                            href="${ADMIN_BASE_PATH}/experiments/${x.id}?environment=${encodeURIComponent(environment)}"
                            >${x.name || x.key}</a
                          ><br /><span class="muted">${x.key}</span>
                        </td>
                        <td>${x.type}</td>
                        <td><span class="badge ${status}">${status}</span></td>
                        <td class="num">${fmtNumber(summary?.visitors ?? 0)}</td>
                        <td>
                          ${summary ? verdictBadge(summary.verdict) : "–"} ${summary?.text ?? ""}
                          ${summary?.srm ? html`<span class="badge loser">SRM</span>` : ""}
                        </td>
                        <td class="row">${experimentActions(x, environment)}</td>
                      </tr>`;
                    })}
                  </tbody>
                </table>`
          }`,
      ),
    );
  });

  app.get("/experiments/:id", async (c) => {
    const actor = actorOf(c);
    const id = c.req.param("id");
    const environment = c.req.query("environment") ?? "production";
    const mode = c.req.query("mode") === "fixed" ? "fixed" : "sequential";
    const asked = c.req.query("breakdown");
    const breakdown = (BREAKDOWN_DIMENSIONS as readonly string[]).includes(asked ?? "")
      ? (asked as (typeof BREAKDOWN_DIMENSIONS)[number])
      : undefined;
    const experiment = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!experiment.ok)
      return send(
        c,
        page("Experiment", errorBlock(experiment.error)),
        experiment.error.status === 404 ? 404 : 500,
      );
    const query = `environment=${encodeURIComponent(environment)}&mode=${mode}${breakdown ? `&breakdown=${breakdown}` : ""}`;
    const csvHref = `${ADMIN_BASE_PATH}/experiments/${encodeURIComponent(id)}/results.csv?${query}`;
    // Independent of each other: asked together.
    const [results, allocations] = await Promise.all([
      attempt(() =>
        loadResults(
          c.env,
          id,
          parseResultsQuery({ environment, mode, ...(breakdown ? { breakdown } : {}) }),
        ),
      ),
      attempt(() => loadAllocationHistory(c.env, id)),
    ]);
    const x = experiment.value.json;
    const status = x.status[environment] ?? "Not started";
    const notice = c.req.query("notice");
    const pendingReview = await pendingReviewNotice(c.env, actor, x);
    // Under its own h2, so the metrics' h3 headings follow the page's order (h1 → h2 → h3).
    const body = !results.ok
      ? html`<h2>Results</h2>
          ${errorBlock(results.error)}`
      : html`<h2>Results</h2>
          ${
            results.value.srm.flagged
              ? html`<p class="warning" role="alert" data-srm="flagged">
                  <strong>Sample ratio mismatch.</strong> The visitors per variation do not match
                  the allocation (χ² p = ${fmtP(results.value.srm.pValue)}): something other than
                  chance is skewing who gets which variation (redirects, bots, caching, a broken
                  variation). Do not trust these results until it is explained.
                </p>`
              : ""
          }
          ${guardrailBlock(results.value)}
          <p class="muted">
            ${
              mode === "sequential"
                ? html`Sequential test (always valid: look as often as you like).
                    <a href="?environment=${encodeURIComponent(environment)}&amp;mode=fixed"
                      >Fixed-horizon view</a
                    >`
                : html`Fixed-horizon Welch test (valid once, at the planned sample size).
                    <a href="?environment=${encodeURIComponent(environment)}&amp;mode=sequential"
                      >Sequential view</a
                    >`
            }
            · Significance ${percent(1 - results.value.analysis.alpha, 0)} · Datafile revisions:
            ${results.value.revisions.join(", ") || "none yet"} ·
            <a href="${csvHref}">CSV</a>
          </p>
          ${charts(results.value)}
          ${results.value.metrics.map(
            (m) =>
              html`<h3>
                  ${m.primary ? "Primary metric" : "Metric"}: ${m.eventKey ?? m.eventId}
                  <span class="muted"
                    >(${m.aggregator}${m.field ? ` of ${m.field}` : ""},
                    ${m.winningDirection})</span
                  >
                </h3>
                ${metricTable(results.value, m)} ${cupedNote(results.value, m)}
                ${
                  m.visitorsNeededPerVariation !== null
                    ? html`<p class="muted">
                        To detect a ${percent(results.value.analysis.mde, 0)} lift:
                        ${fmtNumber(m.visitorsNeededPerVariation)} visitors per variation
                        (${fmtNumber(m.visitorsRemaining)} more in all).
                      </p>`
                    : ""
                }`,
          )}
          ${sectionsBlock(results.value)} ${breakdownBlock(results.value, environment, mode)}`;
    return send(
      c,
      page(
        x.name || x.key,
        html`<p>
            <a
              href="${ADMIN_BASE_PATH}/projects/${x.projectId}?environment=${encodeURIComponent(environment)}"
              >← Experiments</a
            >
          </p>
          <h1>${x.name || x.key}</h1>
          ${notice ? html`<p class="warning" role="status">${notice}</p>` : ""} ${pendingReview}
          <p class="row">
            <span class="badge ${status}" data-status="${status}">${status}</span>
            <span class="muted">${x.key} · ${x.type} · ${environment}</span>
            ${experimentActions(x, environment)}
          </p>
          ${experimentControls(x, environment, actor)}
          ${banditSection(x, allocations.ok ? allocations.value.items : [])} ${body}
          ${scheduleSection(c.env, actor, id)}`,
      ),
    );
  });

  // The results API's CSV (src/api/routes/results.ts), and its JSON error envelope when the
  // query or the experiment is refused: what the link served when it went through the API.
  app.get("/experiments/:id/results.csv", async (c) => {
    const id = c.req.param("id");
    const results = await attempt(() => loadResults(c.env, id, parseResultsQuery(queryOf(c))));
    if (!results.ok) {
      const { status, code, message, details, headers } = results.error;
      return errorResponse(status, code, message, details, { ...headers });
    }
    return new Response(resultsCsv(results.value), {
      headers: {
        "cache-control": "no-store",
        "content-disposition": `attachment; filename="${resultsCsvFilename(results.value)}"`,
        "content-type": "text/csv; charset=utf-8",
      },
    });
  });

  app.post("/experiments/:id/:action{start|pause|resume}", async (c) => {
    const id = c.req.param("id");
    // The route's pattern lets only these three through.
    const action = c.req.param("action") as "start" | "pause" | "resume";
    const form = await c.req.parseBody();
    const environment = typeof form.environment === "string" ? form.environment : "production";
    const result = await attempt(() => {
      const actor = actorOf(c);
      // In the API's order: the role (the route's middleware), then the body, then the action.
      requireActorRole(actor, "editor");
      const body = parseExperimentActionBody({ environment });
      // No version check: the form carries none, as it sent no If-Match to the API.
      return applyExperimentAction(c.env, actor, { id, action, environment: body.environment });
    });
    const notice = !result.ok
      ? `&notice=${encodeURIComponent(result.error.message)}`
      : isPendingReview(result.value)
        ? `&notice=${encodeURIComponent(`Sent to review: ${result.value.message}.`)}`
        : "";
    return c.redirect(
      `${ADMIN_BASE_PATH}/experiments/${encodeURIComponent(id)}?environment=${encodeURIComponent(environment)}${notice}`,
      303,
    );
  });

  registerSettingsPages(app);
  registerWebhookPages(app);
  registerSchedulePages(app);
  registerHoldoutPages(app);
  registerExplainPages(app);
  registerExperimentPages(app);
  registerEditorPages(app);
  registerReviewPages(app);
  registerContentPages(app);
  registerFlagPages(app);
  app.notFound((c) => send(c, page("Not found", html`<p>No admin page here.</p>`), 404));
  return app;
}

let memoized: Hono<AdminEnv> | undefined;

/** Serves `/_ss/admin…` (src/index.ts); built once per isolate. */
export function handleAdmin(
  request: Request,
  env: Env,
  ctx: ExecutionContext,
): Response | Promise<Response> {
  memoized ??= buildAdminApp();
  return memoized.fetch(request, env, ctx);
}
