/**
 * The visual editor's view of a page (docs/visual-editor.md "How the preview works"): the admin's
 * editor posts its draft to the page's own URL with `?ss_editor=preview`, and the Worker answers
 * with the origin's page rewritten by the very code that serves visitors (`rewriteHtml`), so what
 * the editor shows is what a visitor in that variation gets. `?ss_editor=source` answers the
 * origin's HTML as it is, for the editor to compute selectors on (it is what the edge matches
 * selectors against).
 *
 * Why on the page's URL: relative links, `location` and the page's own scripts behave as on the
 * real page. Why a POST with a signed token: the admin's session cookie is limited to /_ss/admin,
 * and rendering arbitrary changes on the site's own host must never be open to anyone else.
 *
 * Both answers are sandboxed (`Content-Security-Policy: sandbox allow-scripts`): the page gets an
 * opaque origin, so neither its scripts nor a variation's custom code can read cookies, storage or
 * the admin's DOM, navigate the admin, or submit forms — even if the answer is opened top-level.
 * Nothing here is counted: no cookies are set, no events are sent.
 */
import type { Change } from "../core/datafile-types";
import { AGENT_JS } from "./generated/editor-agent-bundle";
import { escapeAttribute, nonceAttribute, nonceFromCsp } from "./bootstrap";
import { fetchOrigin, originUrlFor } from "./handle-request";
import { escapeScript, rewriteHtml } from "./html-rewrite";
import { signToken, verifyToken } from "./preview";
import type { RouteConfig } from "./routes";
import { DECISIONS_HEADER } from "./decisions-header";

/** The query parameter that marks an editor request: `preview` or `source`. */
export const EDITOR_QUERY_PARAM = "ss_editor";
export type EditorMode = "preview" | "source";

/** How long an editor token is valid (the editor page signs a new one on every load). */
export const EDITOR_TOKEN_SECONDS = 3600;
/** Largest accepted form body: the draft's changes, moved HTML included. */
export const MAX_EDITOR_BODY_BYTES = 2 * 1024 * 1024;
/** Most changes one preview applies. */
export const MAX_EDITOR_CHANGES = 1000;
const MAX_TOKEN_LENGTH = 2048;

/** What an editor token allows: previews of one experiment on one route's site, until `expiresAt`. */
export interface EditorGrant {
  sdkKey: string;
  experimentId: string;
  /** The `x-ss-decisions` value the origin gets (`experimentKey=variationKey`), "" for none. */
  decisions: string;
  /** ms since epoch */
  expiresAt: number;
}

/**
 * Editor tokens are signed with a key derived from SIGNING_KEY, distinct from the key of preview
 * links: a preview link (which may be shared outside the team) can never render arbitrary
 * changes, and an editor token never forces a variation for a visitor.
 */
const editorKey = (signingKey: string): string => `splitstream-editor\u0000${signingKey}`;

/** A token for the editor page to post with its previews. */
export function signEditorToken(signingKey: string, grant: EditorGrant): Promise<string> {
  return signToken(editorKey(signingKey), {
    p: "editor",
    k: grant.sdkKey,
    x: grant.experimentId,
    d: grant.decisions,
    e: grant.expiresAt,
  });
}

/** The grant of a valid, unexpired editor token, else null. Never throws. */
export async function verifyEditorToken(
  signingKey: string,
  token: string,
  now: number,
): Promise<EditorGrant | null> {
  const payload = await verifyToken(editorKey(signingKey), token, MAX_TOKEN_LENGTH);
  if (typeof payload !== "object" || payload === null) return null;
  const { p, k, x, d, e } = payload as Record<string, unknown>;
  if (p !== "editor" || typeof k !== "string" || typeof x !== "string") return null;
  if (typeof d !== "string" || typeof e !== "number" || !(now < e)) return null;
  return { sdkKey: k, experimentId: x, decisions: d, expiresAt: e };
}

/** `pageUrl` with `?ss_editor=<mode>` (other parameters and the hash kept). */
export function editorActionUrl(pageUrl: string, mode: EditorMode): string {
  const url = new URL(pageUrl);
  url.searchParams.set(EDITOR_QUERY_PARAM, mode);
  url.hash = "";
  return url.href;
}

/** Whether `request` is one of the editor's (a POST with `?ss_editor=preview|source`). */
export function isEditorRequest(request: Request, url: URL): boolean {
  if (request.method !== "POST") return false;
  const mode = url.searchParams.get(EDITOR_QUERY_PARAM);
  return mode === "preview" || mode === "source";
}

/** Sandboxed: an opaque origin that may run scripts and nothing else, framed by the admin only. */
const SANDBOX_CSP = "sandbox allow-scripts; frame-ancestors 'self'";

/**
 * Origin headers the editor's answer must not carry: the site's own CSP (it would block the
 * editor's agent script, a top complaint about other editors), framing and isolation headers
 * (the editor frames the page), cookies (previewing must not change the admin's state), and
 * validators (the body is the draft's, not the origin's).
 */
const DROPPED_HEADERS = [
  "content-security-policy",
  "content-security-policy-report-only",
  "x-frame-options",
  "cross-origin-opener-policy",
  "cross-origin-embedder-policy",
  "cross-origin-resource-policy",
  "set-cookie",
  "clear-site-data",
  "refresh",
  "etag",
  "last-modified",
  "content-length",
];

function sandboxed(response: Response, contentType?: string): Response {
  const headers = new Headers(response.headers);
  for (const name of DROPPED_HEADERS) headers.delete(name);
  headers.set("content-security-policy", SANDBOX_CSP);
  headers.set("cache-control", "no-store");
  headers.set("x-content-type-options", "nosniff");
  headers.set("referrer-policy", "same-origin");
  if (contentType !== undefined) headers.set("content-type", contentType);
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}

/** Headers of every answer made here: sandboxed, never cached, never sniffed. */
function editorHeaders(contentType: string, error: string): HeadersInit {
  return {
    "content-type": contentType,
    "content-security-policy": SANDBOX_CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-ss-error": error,
  };
}

/** A short page for the editor's frame: `heading`, then `html` (already escaped). */
function notePage(heading: string, html: string, head = ""): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">${head}<title>Splitstream editor</title></head><body style="font:15px system-ui,sans-serif;padding:24px"><h1 style="font-size:18px">${escapeAttribute(heading)}</h1><p>${html}</p></body></html>`;
}

/** A refusal: a page the frame can show, or plain text for `source` (read by the editor's fetch). */
function refusal(status: number, mode: EditorMode | null, message: string): Response {
  return mode === "source"
    ? new Response(message, {
        status,
        headers: editorHeaders("text/plain; charset=utf-8", "editor"),
      })
    : new Response(notePage("The editor cannot show this page", escapeAttribute(message)), {
        status,
        headers: editorHeaders("text/html; charset=utf-8", "editor"),
      });
}

/**
 * The editor's form body, read so that a request without a valid token costs almost nothing: the
 * first field must be `token` (the editor's forms send it first), read up to the first `&` and at
 * most a token's length; it is verified before the rest (at most `max` bytes in all) is read.
 * Answers the verified grant and the other fields, or the refusal.
 */
async function readEditorForm(
  request: Request,
  signingKey: string,
  max: number,
): Promise<{ grant: EditorGrant; form: URLSearchParams } | { status: 403 | 413; message: string }> {
  const expired = {
    status: 403 as const,
    message: "The editor's session has expired: reload the editor page.",
  };
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > max) return { status: 413, message: `The draft is larger than ${max} bytes.` };
  if (request.body === null) return expired;
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let tokenEnd = -1;
  const headLimit = MAX_TOKEN_LENGTH + "token=&".length;
  const give = (): void => void reader.cancel().catch(() => undefined);
  // The token field.
  while (tokenEnd < 0) {
    const { done, value } = await reader.read();
    if (done) break;
    const amp = value.indexOf(0x26 /* & */);
    if (amp >= 0) tokenEnd = size + amp;
    chunks.push(value);
    size += value.byteLength;
    if (tokenEnd < 0 && size > headLimit) {
      give();
      return expired;
    }
  }
  const all = (): Uint8Array => {
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    return bytes;
  };
  const head = new TextDecoder().decode(all().subarray(0, tokenEnd < 0 ? size : tokenEnd));
  const first = new URLSearchParams(head);
  const grant = head.startsWith("token=")
    ? await verifyEditorToken(signingKey, first.get("token") ?? "", Date.now())
    : null;
  if (grant === null) {
    give();
    return expired;
  }
  // The rest, bounded.
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      give();
      return { status: 413, message: `The draft is larger than ${max} bytes.` };
    }
    chunks.push(value);
  }
  return { grant, form: new URLSearchParams(new TextDecoder().decode(all())) };
}

/**
 * The draft's changes: a JSON array of objects, at most {@link MAX_EDITOR_CHANGES}. What each
 * change holds is the rewriter's to judge — it skips what it cannot apply, as for visitors; the
 * API validates everything on save.
 */
function parseChanges(text: string | null): Change[] | string {
  if (text === null || text === "") return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return "changes is not valid JSON";
  }
  if (!Array.isArray(parsed)) return "changes must be a JSON array";
  if (parsed.length > MAX_EDITOR_CHANGES)
    return `at most ${MAX_EDITOR_CHANGES} changes per preview`;
  if (!parsed.every((c) => typeof c === "object" && c !== null && !Array.isArray(c)))
    return "every change must be an object";
  return parsed as Change[];
}

/** The origin request for the editor: a GET of the page with the admin's own request headers. */
function originRequestFor(request: Request, target: URL, decisions: string): Request {
  const headers = new Headers();
  for (const [name, value] of request.headers) {
    if (name.startsWith("x-ss-") || name.startsWith("sec-fetch-")) continue;
    // The editor's own address (experiment and variation ids) is not the origin's business.
    if (["content-type", "content-length", "origin", "referer"].includes(name)) continue;
    headers.set(name, value);
  }
  headers.set("accept", "text/html,application/xhtml+xml,*/*;q=0.8");
  if (decisions !== "") headers.set(DECISIONS_HEADER, decisions);
  return new Request(target.href, { method: "GET", headers, redirect: "manual" });
}

/** The editor agent, inline, first thing in <head> (the bootstrap's place on a visitor's page). */
function agentScript(nonce: string | undefined): string {
  return `<script data-ss-editor${nonceAttribute(nonce)}>${escapeScript(AGENT_JS)}</script>`;
}

/**
 * Answers an editor request (see the module comment). `signingKey` is SIGNING_KEY; without one
 * the editor cannot work and says so.
 */
export async function handleEditorRequest(
  request: Request,
  signingKey: string | undefined,
  route: RouteConfig,
  url: URL,
): Promise<Response> {
  const mode = url.searchParams.get(EDITOR_QUERY_PARAM) as EditorMode;
  if (!signingKey) return refusal(503, mode, "SIGNING_KEY is not set (docs/deploy.md).");
  // Only the editor page posts here: the preview form into its frame, the source by fetch. A
  // browser says where a request comes from; anything else (another site, a new tab) is refused
  // before the body is read.
  const site = request.headers.get("sec-fetch-site");
  const dest = request.headers.get("sec-fetch-dest");
  if (
    (site !== null && site !== "same-origin") ||
    (dest !== null && dest !== "iframe" && dest !== "empty")
  )
    return refusal(403, mode, "Only the editor page of this site can show its previews.");
  const type = (request.headers.get("content-type") ?? "").toLowerCase();
  if (!type.startsWith("application/x-www-form-urlencoded"))
    return refusal(415, mode, "Send the editor's form (application/x-www-form-urlencoded).");
  const read = await readEditorForm(request, signingKey, MAX_EDITOR_BODY_BYTES);
  if ("status" in read) return refusal(read.status, mode, read.message);
  const { grant, form } = read;
  if (grant.sdkKey !== route.sdkKey)
    return refusal(403, mode, "The editor's session has expired: reload the editor page.");
  const changes = mode === "preview" ? parseChanges(form.get("changes")) : [];
  if (typeof changes === "string") return refusal(400, mode, changes);

  const page = new URL(url.href);
  page.searchParams.delete(EDITOR_QUERY_PARAM);
  const origin = await fetchOrigin(
    originRequestFor(request, originUrlFor(route, page), grant.decisions),
    route,
  );
  const contentType = origin.headers.get("content-type") ?? "";
  const html = mediaType(contentType) === "text/html";
  if (mode === "source") {
    if (origin.status !== 200 || !html) {
      await origin.body?.cancel().catch(() => undefined);
      return refusal(
        422,
        mode,
        origin.status !== 200
          ? `The origin answered ${origin.status} for this page.`
          : "The origin did not answer with an HTML page.",
      );
    }
    // The same numbering as the preview, nothing else; text/plain so that it is never rendered
    // (the editor parses it with DOMParser, which runs nothing). The charset stays the origin's.
    const numbered = rewriteHtml(withoutMetaCsp(origin), {
      changes: [],
      bootstrap: null,
      numberElements: true,
    });
    return sandboxed(numbered, `text/plain; charset=${charsetOf(contentType)}`);
  }
  // A redirect is not followed in the frame (the browser would post the draft again to wherever
  // it points): the editor shows where it leads, and a click in Browse mode opens that page.
  if (origin.status >= 300 && origin.status < 400) {
    await origin.body?.cancel().catch(() => undefined);
    const location = origin.headers.get("location") ?? "";
    return redirectNotice(origin.status, location, page);
  }
  // Errors and non-HTML answers are shown as the origin sent them (sandboxed too).
  if (origin.status !== 200 || !html) return sandboxed(origin);
  // The page's own nonce when it has one, so the injected elements are those a visitor gets.
  const nonce = nonceFromCsp(origin.headers.get("content-security-policy")) ?? crypto.randomUUID();
  return sandboxed(
    rewriteHtml(withoutMetaCsp(origin), {
      changes,
      bootstrap: agentScript(nonce),
      nonce,
      numberElements: true,
    }),
  );
}

/**
 * The page without its `<meta http-equiv="Content-Security-Policy">`: like the header, which the
 * preview drops, a policy in the document would block the editor's agent. Removed in the source
 * too, so both number the same elements.
 */
function withoutMetaCsp(response: Response): Response {
  return new HTMLRewriter()
    .on('meta[http-equiv="content-security-policy" i]', {
      element(el) {
        el.remove();
      },
    })
    .transform(response);
}

/** The media type of a Content-Type value, lowercased, without parameters. */
function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** The charset parameter of a Content-Type value (a token), else utf-8. */
function charsetOf(contentType: string): string {
  const charset = /;\s*charset\s*=\s*"?([A-Za-z0-9._:-]+)"?/i.exec(contentType)?.[1];
  return charset ?? "utf-8";
}

/** A page in place of the origin's redirect: where it leads, with the agent (links work in Browse). */
function redirectNotice(status: number, location: string, page: URL): Response {
  let target = "";
  try {
    target = new URL(location, page).href;
  } catch {
    // no usable Location: said below
  }
  const link = /^https?:/i.test(target)
    ? `<a href="${escapeAttribute(target)}">${escapeAttribute(target)}</a>`
    : "an address the editor cannot open";
  const notice = notePage(
    `The origin redirects this page (${status})`,
    `It leads to ${link}. Switch to Browse and click the link to edit that page.`,
    agentScript(crypto.randomUUID()),
  );
  return new Response(notice, {
    status: 200,
    headers: editorHeaders("text/html; charset=utf-8", "editor-redirect"),
  });
}
