/**
 * What every admin page shares (docs/admin.md): the page shell and its CSP, the response headers,
 * the same-origin check of state-changing requests, and calling a service as the session's
 * actor with the API's own errors. Page modules (src/admin/*-pages.ts) build on it.
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Env } from "../env";
import type { Actor } from "../api/context";
import type { HtmlEscapedString } from "hono/utils/html";
import { html, raw } from "hono/html";
import { parseCookies } from "../edge/cookies";
import { SESSION_SECONDS } from "../api/services/sessions";
import type { experimentResource } from "../api/services/experiments";
import type { loadAllocationHistory } from "../api/services/bandit-allocations";
import { ApiError, uniqueViolation } from "../api/errors";
import { ADMIN_BASE_PATH } from "./paths";

export { ADMIN_BASE_PATH };
/** The session cookie: an opaque session id (never the token), HttpOnly, SameSite=Strict, Path=/_ss/admin. */
export const ADMIN_COOKIE = "ss_admin";

/** `actor`: the signed-in session's (set by the session middleware for every page below it). */
export type AdminEnv = {
  Bindings: Env;
  /** `tokenHash`: SHA-256 hex of the token the session signed in with (re-confirmations). */
  Variables: { actor: Actor; tokenHash: string };
};
export type AdminContext = Context<AdminEnv>;
export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

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
.flag-on{background:#d7f5e9;color:#03543f;font-weight:600}.flag-off{background:#eee;color:#1d1d1f}
.fields{display:flex;gap:4px 16px;flex-wrap:wrap;align-items:flex-start}.fields .field{margin:6px 0}
.warning{border:1px solid #e69f00;background:#fff6e0;padding:10px 14px;margin:12px 0}
.error{border:1px solid #d55e00;background:#fde2dc;padding:10px 14px;margin:12px 0}
.field{margin:10px 0;display:flex;flex-direction:column;gap:3px;max-width:640px}
.field.check{flex-direction:row;align-items:center;gap:6px}
.field input,.field select,.field textarea{font:inherit;padding:5px 7px;border:1px solid #888;border-radius:4px}
.field.invalid input,.field.invalid select,.field.invalid textarea{border-color:#b3261e}
.hint{color:#555;font-size:12px}
.field-error{color:#b3261e;font-weight:600}
fieldset{border:1px solid #ccc;border-radius:6px;margin:12px 0;padding:8px 14px}
:focus-visible{outline:3px solid #0b57d0;outline-offset:2px}
.chart{background:#fff;border:1px solid #e5e5e5;max-width:100%;height:auto}
.row{display:flex;gap:8px;flex-wrap:wrap;align-items:center}button{font:inherit;padding:4px 12px;cursor:pointer}
.muted{color:#666}input[type=password]{font:inherit;padding:6px;width:320px}
`;

export function page(title: string, body: Html, options: { signedIn?: boolean } = {}): Html {
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

export function send(c: AdminContext, body: Html, status: ContentfulStatusCode = 200) {
  c.header("content-security-policy", CSP);
  c.header("cache-control", "no-store");
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  return c.html(body, status);
}

/** A page with `title` and `body`, answered with `status` (a refused form: the API's status). */
export function sendPage(c: AdminContext, title: string, body: Html, status: number = 200) {
  return send(c, page(title, body), status as ContentfulStatusCode);
}

/** A cookie of the request (the edge's parser: first occurrence wins). */
export function readCookie(c: AdminContext, name: string): string | null {
  return parseCookies(c.req.header("cookie") ?? null).get(name) ?? null;
}

/** Set-Cookie for a new session's id (base64url: no encoding needed), or clearing it (null). */
export function sessionCookie(c: AdminContext, sessionId: string | null): string {
  const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
  const value = sessionId ?? "";
  const age = sessionId === null ? 0 : SESSION_SECONDS;
  return `${ADMIN_COOKIE}=${value}; Path=${ADMIN_BASE_PATH}; Max-Age=${age}; HttpOnly; SameSite=Strict${secure}`;
}

/** A POST from another site (or without any origin information) is refused. */
export function sameOrigin(c: AdminContext): boolean {
  // A script on the site's own pages is same-origin too (the admin is served on the site's host):
  // the admin's forms are top-level navigations, so a request that says it is not one (fetch,
  // XHR: mode cors/same-origin, destination empty) is refused, whatever its origin.
  const mode = c.req.header("sec-fetch-mode");
  if (mode !== undefined && mode !== "navigate") return false;
  const destination = c.req.header("sec-fetch-dest");
  if (destination !== undefined && destination !== "document") return false;
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

/** The session's token no longer authenticates: clear the cookie, back to the sign-in form. */
export class SignedOut extends Error {}

/** This client made too many failed authentications (src/api/services/auth-limit.ts). */
export class RateLimited extends Error {
  constructor(readonly retryAfter: string) {
    super("too many failed authentications");
  }
}

/** An experiment as the API presents it (src/api/services/experiment-presenter.ts). */
export type ExperimentJson = Awaited<ReturnType<typeof experimentResource.present>>[number];
/** One row of an experiment's bandit allocation history (src/api/services/bandit-allocations.ts). */
export type AllocationItem = Awaited<ReturnType<typeof loadAllocationHistory>>["items"][number];

/** What a service call came to: its value, or the error the API would have answered with. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: ApiError };

/**
 * Anything a service throws, as the API's error handler (src/api/app.ts `toErrorResponse`) would
 * answer it: an ApiError as it is, a D1 UNIQUE failure as 409 `conflict`, anything else (logged)
 * as 500 `internal_error` — so a page shows the message the API would have sent.
 */
export function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const duplicate = uniqueViolation(error);
  if (duplicate) return duplicate;
  console.error("splitstream admin: unhandled error", error);
  return new ApiError(500, "internal_error", "internal error");
}

/**
 * Calls a service for a page (it checks the actor's role itself). A refusal comes back as the
 * API's error for the page to show; 401 and 429 are never a page's to show: they sign the session
 * out, or answer "too many attempts", like every page.
 */
export async function attempt<T>(call: () => T | Promise<T>): Promise<Outcome<T>> {
  let error: ApiError;
  try {
    return { ok: true, value: await call() };
  } catch (thrown) {
    error = asApiError(thrown);
  }
  if (error.status === 401) throw new SignedOut();
  // The API's 429 carries the error's Retry-After, else 1 s (src/api/app.ts).
  if (error.status === 429) throw new RateLimited(error.headers["retry-after"] ?? "1");
  return { ok: false, error };
}

/**
 * A request's query parameters as the API's query validator reads them (Hono's `queries()`):
 * a name sent once is a string, a name sent twice an array.
 */
export function queryOf(c: AdminContext): Record<string, string | string[]> {
  return Object.fromEntries(
    Object.entries(c.req.queries()).map(([name, values]) => [
      name,
      values.length === 1 ? values[0]! : values,
    ]),
  );
}

export function errorBlock(error: ApiError): Html {
  return html`<p class="error" role="alert">${error.message}</p>`;
}
