/**
 * Admin pages at /_ss/admin (docs/admin.md): server-rendered HTML, no script at all (charts are
 * SVG drawn here), so they work offline and under a CSP without `script-src`.
 *
 * - Login with an API token (the same tokens as the management API, any role), checked by the
 *   API itself (so its brute-force limit counts the form's failures). The token is never stored:
 *   sign-in starts a server-side session (src/api/services/sessions.ts) whose opaque id is the only thing
 *   in the HttpOnly, SameSite=Strict cookie limited to /_ss/admin. Every page re-checks the
 *   session and its token, then calls the management API in-process as that token's Actor, so
 *   authorisation, validation and publishing are the API's own (an editor can start and pause, a
 *   viewer only look). Sign-out deletes the session.
 * - Every POST (sign-in and sign-out included) must come from this origin (Sec-Fetch-Site, else
 *   Origin, else Referer), besides the SameSite cookie; anything else is 403.
 */
import { Hono, type Context } from "hono";
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import type { Env } from "../env";
import { handleApi } from "../api/app";
import { API_BASE_PATH, type Actor } from "../api/context";
import { actorForTokenHash } from "../api/services/auth";
import { sha256Hex } from "../shared/hash";
import {
  authClientKey,
  isLimited,
  recentAuthFailures,
  retryAfterSeconds,
} from "../api/services/auth-limit";
import {
  createSession,
  deleteSession,
  findSession,
  SESSION_SECONDS,
} from "../api/services/sessions";
import { parseCookies } from "../edge/cookies";
import { intervalChart, lineChart, percent, type IntervalRow, type Series } from "./charts";
import type { ExperimentResults } from "../api/routes/results";

export const ADMIN_BASE_PATH = "/_ss/admin";
/** The session cookie: an opaque session id (never the token), HttpOnly, SameSite=Strict, Path=/_ss/admin. */
export const ADMIN_COOKIE = "ss_admin";

/** `actor`: the signed-in session's (set by the session middleware for every page below it). */
type AdminEnv = { Bindings: Env; Variables: { actor: Actor } };
type AdminContext = Context<AdminEnv>;
type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

const CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{background:#111;color:#fff;padding:10px 24px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header form{margin-left:auto}
main{max-width:1040px;margin:0 auto;padding:16px 24px 48px}
table{border-collapse:collapse;width:100%;background:#fff;margin:8px 0 20px}
th,td{border-bottom:1px solid #e5e5e5;padding:6px 8px;text-align:left;vertical-align:top}
th{font-weight:600;background:#f3f3f3}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#eee}
.winner{background:#d7f5e9;color:#03543f}.loser{background:#fde2dc;color:#8a1c00}
.inconclusive{background:#eee}.not_enough_data{background:#f5f0d7;color:#5c4b00}.baseline{background:#e3ecf7}
.Running{background:#d7f5e9}.Paused{background:#f5f0d7}.Archived{background:#ddd}
.warning{border:1px solid #e69f00;background:#fff6e0;padding:10px 14px;margin:12px 0}
.error{border:1px solid #d55e00;background:#fde2dc;padding:10px 14px;margin:12px 0}
.chart{background:#fff;border:1px solid #e5e5e5;max-width:100%;height:auto}
.row{display:flex;gap:8px;flex-wrap:wrap;align-items:center}button{font:inherit;padding:4px 12px;cursor:pointer}
.muted{color:#666}input[type=password]{font:inherit;padding:6px;width:320px}
`;

function page(title: string, body: Html, options: { signedIn?: boolean } = {}): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · Splitstream</title>
        <style>
          ${raw(STYLE)}
        </style>
      </head>
      <body>
        <header>
          <a href="${ADMIN_BASE_PATH}">Splitstream</a>
          ${
            options.signedIn === false
              ? ""
              : html`<form method="post" action="${ADMIN_BASE_PATH}/logout">
                  <button type="submit">Sign out</button>
                </form>`
          }
        </header>
        <main>${body}</main>
      </body>
    </html>`;
}

function send(c: AdminContext, body: Html, status: 200 | 400 | 401 | 403 | 404 | 429 | 500 = 200) {
  c.header("content-security-policy", CSP);
  c.header("cache-control", "no-store");
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  return c.html(body, status);
}

/** A cookie of the request (the edge's parser: first occurrence wins). */
function readCookie(c: AdminContext, name: string): string | null {
  return parseCookies(c.req.header("cookie") ?? null).get(name) ?? null;
}

/** Set-Cookie for a new session's id (base64url: no encoding needed), or clearing it (null). */
function sessionCookie(c: AdminContext, sessionId: string | null): string {
  const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
  const value = sessionId ?? "";
  const age = sessionId === null ? 0 : SESSION_SECONDS;
  return `${ADMIN_COOKIE}=${value}; Path=${ADMIN_BASE_PATH}; Max-Age=${age}; HttpOnly; SameSite=Strict${secure}`;
}

/** A POST from another site (or without any origin information) is refused. */
function sameOrigin(c: AdminContext): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined) return site === "same-origin";
  const origin = c.req.header("origin");
  if (origin !== undefined) return origin === new URL(c.req.url).origin;
  const referer = c.req.header("referer");
  if (referer === undefined) return false;
  try {
    return new URL(referer).origin === new URL(c.req.url).origin;
  } catch {
    return false;
  }
}

class SignedOut extends Error {}

/** The API answered 429: this client made too many failed authentications (src/api/services/auth-limit.ts). */
class RateLimited extends Error {
  constructor(readonly retryAfter: string) {
    super("too many failed authentications");
  }
}

/**
 * Headers of the sign-in's in-process API call: the token being tried, and the client's address
 * so that the API's brute-force limit counts the admin's failed sign-ins against the real client.
 */
function apiHeaders(c: AdminContext, token: string): Record<string, string> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  const ip = c.req.header("cf-connecting-ip");
  if (ip !== undefined) headers["cf-connecting-ip"] = ip;
  return headers;
}

/** Turns the API's 401 and 429 into SignedOut and RateLimited. */
function checkAuth(response: Response): void {
  if (response.status === 401) throw new SignedOut();
  if (response.status === 429) throw new RateLimited(response.headers.get("retry-after") ?? "60");
}

/**
 * Calls the management API in-process: as the session's Actor, or (sign-in only) with the token
 * being tried as a bearer token.
 */
async function api<T>(
  c: AdminContext,
  caller: Actor | { token: string },
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  const headers: Record<string, string> = "token" in caller ? apiHeaders(c, caller.token) : {};
  if (body !== undefined) headers["content-type"] = "application/json";
  const request = new Request(new URL(`${API_BASE_PATH}${path}`, c.req.url), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const response = await handleApi(
    request,
    c.env,
    c.executionCtx as ExecutionContext,
    "token" in caller ? undefined : caller,
  );
  checkAuth(response);
  return { status: response.status, json: (await response.json()) as T };
}

interface ApiError {
  error?: { code: string; message: string };
}
interface ProjectItem {
  id: string;
  key: string;
  name: string;
  environments?: Array<{ id: string; key: string }>;
}
interface ExperimentItem {
  id: string;
  projectId: string;
  key: string;
  name: string;
  type: string;
  status: Record<string, string>;
  version: number;
  allocationPolicy?: string;
  variations?: Array<{ id: string; key: string }>;
}

function errorBlock(status: number, json: unknown): Html {
  const message = (json as ApiError).error?.message ?? `HTTP ${status}`;
  return html`<p class="error" role="alert">${message}</p>`;
}

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

function experimentActions(experiment: ExperimentItem, environment: string): Html {
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

function metricTable(
  results: ExperimentResults,
  metric: ExperimentResults["metrics"][number],
): Html {
  const isRate = metric.aggregator === "unique";
  const keyOf = (id: string) => results.variations.find((v) => v.id === id)?.key ?? id;
  const meanText = (mean: number | null) =>
    mean === null
      ? "–"
      : isRate
        ? percent(mean, 2)
        : metric.field === "revenue"
          ? `${(mean / 100).toFixed(2)}`
          : mean.toFixed(3);
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

/** One row of `GET /experiments/{id}/allocations` (src/api/routes/bandit-allocations.ts). */
interface AllocationItem {
  createdAt: string;
  reason: string;
  weights: Record<string, number>;
  probabilityBest: Record<string, number>;
  winner: string | null;
  message: string | null;
}

/**
 * Bandit experiments: the traffic weights over time (one line per variation, from the allocation
 * history), the latest probability of being best and the declared winner (docs/bandits.md).
 */
function banditSection(experiment: ExperimentItem, items: AllocationItem[]): Html {
  if (experiment.allocationPolicy !== "bandit" && items.length === 0) return html``;
  const variations = experiment.variations ?? [];
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
      Policy ${experiment.allocationPolicy ?? "manual"}: the weights are recomputed hourly from the
      primary metric (Thompson sampling); visitors keep the variation they got.
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
      // The API checks the token (and counts a failure against this client).
      await api(c, { token }, "GET", "/projects?limit=1");
    } catch (error) {
      if (error instanceof SignedOut) return loginPage(c, "That token is not valid.", 401);
      if (error instanceof RateLimited) {
        c.header("retry-after", error.retryAfter);
        return loginPage(c, rateLimitedText(error), 429);
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
    await next();
  });
  const sessionOf = (c: AdminContext): Actor => c.get("actor");

  app.get("/", async (c) => {
    const { status, json } = await api<{ items: ProjectItem[] } & ApiError>(
      c,
      sessionOf(c),
      "GET",
      "/projects?limit=100",
    );
    if (status !== 200) return send(c, page("Projects", errorBlock(status, json)), 500);
    if (json.items.length === 1)
      return c.redirect(`${ADMIN_BASE_PATH}/projects/${json.items[0]!.id}`, 303);
    return send(
      c,
      page(
        "Projects",
        html`<h1>Projects</h1>
          ${
            json.items.length === 0
              ? html`<p>No projects yet: create one with the API or <code>splitstream</code>.</p>`
              : html`<table>
                  <thead>
                    <tr>
                      <th>Project</th>
                      <th>Key</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${json.items.map(
                      (p) =>
                        html`<tr>
                          <td>
                            <a href="${ADMIN_BASE_PATH}/projects/${p.id}">${p.name || p.key}</a>
                          </td>
                          <td>${p.key}</td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }`,
      ),
    );
  });

  app.get("/projects/:id", async (c) => {
    const session = sessionOf(c);
    const id = c.req.param("id");
    const environment = c.req.query("environment") ?? "production";
    const project = await api<ProjectItem & ApiError>(
      c,
      session,
      "GET",
      `/projects/${encodeURIComponent(id)}`,
    );
    if (project.status !== 200)
      return send(
        c,
        page("Project", errorBlock(project.status, project.json)),
        project.status === 404 ? 404 : 500,
      );
    const list = await api<{ items: ExperimentItem[] } & ApiError>(
      c,
      session,
      "GET",
      `/projects/${encodeURIComponent(id)}/experiments?limit=100`,
    );
    if (list.status !== 200)
      return send(c, page("Experiments", errorBlock(list.status, list.json)), 500);
    const summaries = await Promise.all(
      list.json.items.map(async (experiment) => {
        const results = await api<ExperimentResults & ApiError>(
          c,
          session,
          "GET",
          `/experiments/${experiment.id}/results?environment=${encodeURIComponent(environment)}`,
        );
        if (results.status !== 200) return null;
        const visitors = results.json.variations.reduce((sum, v) => sum + v.visitors, 0);
        return { ...primarySummary(results.json), visitors, srm: results.json.srm.flagged };
      }),
    );
    const environments = project.json.environments ?? [];
    return send(
      c,
      page(
        project.json.name || project.json.key,
        html`<h1>${project.json.name || project.json.key}</h1>
          <p class="row">
            Environment:
            ${environments.map((e) =>
              e.key === environment
                ? html`<strong>${e.key}</strong>`
                : html`<a href="?environment=${encodeURIComponent(e.key)}">${e.key}</a>`,
            )}
          </p>
          ${
            list.json.items.length === 0
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
                    ${list.json.items.map((x, i) => {
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
    const session = sessionOf(c);
    const id = encodeURIComponent(c.req.param("id"));
    const environment = c.req.query("environment") ?? "production";
    const mode = c.req.query("mode") === "fixed" ? "fixed" : "sequential";
    const experiment = await api<ExperimentItem & ApiError>(
      c,
      session,
      "GET",
      `/experiments/${id}`,
    );
    if (experiment.status !== 200)
      return send(
        c,
        page("Experiment", errorBlock(experiment.status, experiment.json)),
        experiment.status === 404 ? 404 : 500,
      );
    const query = `environment=${encodeURIComponent(environment)}&mode=${mode}`;
    // Independent of each other: asked together.
    const [results, allocations] = await Promise.all([
      api<ExperimentResults & ApiError>(c, session, "GET", `/experiments/${id}/results?${query}`),
      api<{ items: AllocationItem[] } & ApiError>(
        c,
        session,
        "GET",
        `/experiments/${id}/allocations`,
      ),
    ]);
    const x = experiment.json;
    const status = x.status[environment] ?? "Not started";
    const notice = c.req.query("notice");
    const body =
      results.status !== 200
        ? errorBlock(results.status, results.json)
        : html`${
              results.json.srm.flagged
                ? html`<p class="warning" role="alert" data-srm="flagged">
                    <strong>Sample ratio mismatch.</strong> The visitors per variation do not match
                    the allocation (χ² p = ${fmtP(results.json.srm.pValue)}): something other than
                    chance is skewing who gets which variation (redirects, bots, caching, a broken
                    variation). Do not trust these results until it is explained.
                  </p>`
                : ""
            }
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
              · Significance ${percent(1 - results.json.analysis.alpha, 0)} · Datafile revisions:
              ${results.json.revisions.join(", ") || "none yet"} ·
              <a href="${ADMIN_BASE_PATH}/experiments/${id}/results.csv?${query}">CSV</a>
            </p>
            ${charts(results.json)}
            ${results.json.metrics.map(
              (m) =>
                html`<h3>
                    ${m.primary ? "Primary metric" : "Metric"}: ${m.eventKey ?? m.eventId}
                    <span class="muted"
                      >(${m.aggregator}${m.field ? ` of ${m.field}` : ""},
                      ${m.winningDirection})</span
                    >
                  </h3>
                  ${metricTable(results.json, m)}
                  ${
                    m.visitorsNeededPerVariation !== null
                      ? html`<p class="muted">
                          To detect a ${percent(results.json.analysis.mde, 0)} lift:
                          ${fmtNumber(m.visitorsNeededPerVariation)} visitors per variation
                          (${fmtNumber(m.visitorsRemaining)} more in all).
                        </p>`
                      : ""
                  }`,
            )}`;
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
          ${notice ? html`<p class="warning" role="status">${notice}</p>` : ""}
          <p class="row">
            <span class="badge ${status}" data-status="${status}">${status}</span>
            <span class="muted">${x.key} · ${x.type} · ${environment}</span>
            ${experimentActions(x, environment)}
          </p>
          ${banditSection(x, allocations.status === 200 ? allocations.json.items : [])} ${body}`,
      ),
    );
  });

  app.get("/experiments/:id/results.csv", async (c) => {
    const id = encodeURIComponent(c.req.param("id"));
    const search = new URL(c.req.url).search;
    const request = new Request(
      new URL(`${API_BASE_PATH}/experiments/${id}/results.csv${search}`, c.req.url),
    );
    const response = await handleApi(
      request,
      c.env,
      c.executionCtx as ExecutionContext,
      sessionOf(c),
    );
    checkAuth(response);
    return response;
  });

  app.post("/experiments/:id/:action{start|pause|resume}", async (c) => {
    const id = c.req.param("id");
    const action = c.req.param("action");
    const form = await c.req.parseBody();
    const environment = typeof form.environment === "string" ? form.environment : "production";
    const result = await api<ApiError>(
      c,
      sessionOf(c),
      "POST",
      `/experiments/${encodeURIComponent(id)}/${action}`,
      {
        environment,
      },
    );
    const notice =
      result.status === 200
        ? ""
        : `&notice=${encodeURIComponent(result.json.error?.message ?? `HTTP ${result.status}`)}`;
    return c.redirect(
      `${ADMIN_BASE_PATH}/experiments/${encodeURIComponent(id)}?environment=${encodeURIComponent(environment)}${notice}`,
      303,
    );
  });

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
