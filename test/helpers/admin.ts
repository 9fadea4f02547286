/**
 * Requests to the admin pages (docs/admin.md) in the workers tests, as a browser sends them:
 * through the Worker's own fetch handler, with the session cookie that `adminSession()`
 * (test/helpers/api.ts) signs in for, and redirects answered rather than followed (so a test
 * reads each 303's `Location`).
 */
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { API_ORIGIN } from "./api";

/** Where the admin pages are. */
export const ADMIN = `${API_ORIGIN}/_ss/admin`;

/** What a browser sends with a form of the admin's own pages (the admin's same-origin check). */
export const SAME_SITE = { "sec-fetch-site": "same-origin" };

/** A form's fields in order (a name may repeat), or one value per name. */
export type FormFields = Array<[string, string]> | Record<string, string>;

/** `${ADMIN}${path}` with `cookie` (a session from adminSession()), redirects not followed. */
export function adminFetch(
  path: string,
  init: RequestInit & { cookie?: string } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.cookie) headers.set("cookie", init.cookie);
  return exports.default.fetch(`${ADMIN}${path}`, { ...init, headers, redirect: "manual" });
}

/**
 * A form posted as a browser posts it (urlencoded) with `cookie`. `headers`: the request's
 * Sec-Fetch headers, same-origin unless a test sends others (a cross-site post, or none).
 */
export function adminPost(
  path: string,
  cookie: string,
  fields: FormFields,
  headers: Record<string, string> = SAME_SITE,
): Promise<Response> {
  return adminFetch(path, {
    method: "POST",
    cookie,
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });
}

/** The page at `path` as `cookie`'s session sees it; the test fails unless it answers 200. */
export async function adminPage(path: string, cookie: string): Promise<string> {
  const response = await adminFetch(path, { cookie });
  const text = await response.text();
  expect(response.status, text).toBe(200);
  return text;
}

const ENTITIES: Record<string, string> = {
  "&amp;": "&",
  "&lt;": "<",
  "&gt;": ">",
  "&quot;": '"',
  "&#39;": "'",
  "&#x27;": "'",
};

/** An attribute value or text as the page escaped it (hono/html), unescaped. */
export const decodeHtml = (s: string): string =>
  s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) => ENTITIES[m]!);

/**
 * What a browser would submit from the page's form `form` (a selector; names and values unescaped), without any button:
 * inputs (checked boxes only), selects (the selected options, else the first of a single
 * select), textareas (the line break after the tag dropped, as HTML parsing does; with `crlf`,
 * their line breaks sent as CRLF, as browsers send them: the HTML spec's form submission).
 */
export async function submittedFields(
  page: string,
  form: string,
  options: { crlf?: boolean } = {},
): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  let current: { name: string; multiple: boolean; options: Array<[string, boolean]> } | null = null;
  let area: { name: string; text: string } | null = null;
  await new HTMLRewriter()
    .on(`${form} input`, {
      element(e) {
        const name = e.getAttribute("name");
        const type = e.getAttribute("type") ?? "text";
        if (!name || type === "submit") return;
        if (type === "checkbox" && !e.hasAttribute("checked")) return;
        out.push([decodeHtml(name), decodeHtml(e.getAttribute("value") ?? "on")]);
      },
    })
    .on(`${form} select`, {
      element(e) {
        const select = {
          name: decodeHtml(e.getAttribute("name") ?? ""),
          multiple: e.hasAttribute("multiple"),
          options: [] as Array<[string, boolean]>,
        };
        current = select;
        e.onEndTag(() => {
          const chosen = select.options.filter(([, selected]) => selected).map(([v]) => v);
          if (chosen.length === 0 && !select.multiple && select.options[0])
            chosen.push(select.options[0][0]);
          for (const value of chosen) out.push([select.name, value]);
        });
      },
    })
    .on(`${form} option`, {
      element(e) {
        current?.options.push([
          decodeHtml(e.getAttribute("value") ?? ""),
          e.hasAttribute("selected"),
        ]);
      },
    })
    .on(`${form} textarea`, {
      element(e) {
        const state = { name: decodeHtml(e.getAttribute("name") ?? ""), text: "" };
        area = state;
        e.onEndTag(() => {
          const text = decodeHtml(state.text).replace(/^\n/, "");
          out.push([state.name, options.crlf ? text.replace(/\r\n|\r|\n/g, "\r\n") : text]);
        });
      },
      text(chunk) {
        if (area) area.text += chunk.text;
      },
    })
    .transform(new Response(page))
    .text();
  return out;
}
