/**
 * The visual editor's pages in the admin (docs/visual-editor.md): the editor page of one
 * variation on one page of the site, its script, and saving. The page itself is drawn by
 * src/admin/editor-page.ts and driven by the editor script (src/editor/editor.ts); the page it
 * edits is shown through the Worker by src/edge/editor-preview.ts, on the site's own URL.
 *
 * Who may: the editor role or higher (the API's role check, as every admin page). Saving is a
 * top-level form POST like every admin form (the same-origin rule of src/admin/ui.ts) and writes
 * through the experiment service, so the API's validation, version check, audit and publishing
 * apply; a refusal re-renders the editor with the posted draft and the API's messages.
 */
import type { Hono } from "hono";
import type { Change } from "../core/datafile-types";
import { compileUrlConditions } from "../core/url-match";
import { ApiError, type ValidationDetail } from "../api/errors";
import type { Actor } from "../api/context";
import { requireActorRole } from "../api/services/auth";
import { experimentResource } from "../api/services/experiments";
import { isPendingReview } from "../api/services/review";
import { pageResource } from "../api/services/pages";
import { getResource, updateResource } from "../api/services/resources";
import { parseBody } from "../api/schemas/validation-error";
import { ExperimentUpdateSchema } from "../api/schemas/experiments";
import { formatDecisionsHeader } from "../edge/decisions-header";
import { EDITOR_TOKEN_SECONDS, editorActionUrl, signEditorToken } from "../edge/editor-preview";
import { loadRoutes, matchRoute } from "../edge/routes";
import { EDITOR_JS, EDITOR_JS_HASH } from "./generated/editor-bundle";
import { renderEditorPage, type EditorState } from "./editor-page";
import { urlOfConditions } from "./experiment-pages";
import { one, postedVersion, readForm } from "./forms";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  sendPage,
  type AdminContext,
  type AdminEnv,
  type ExperimentJson,
} from "./ui";
import { html } from "hono/html";

const BASE = ADMIN_BASE_PATH;
const enc = encodeURIComponent;
const DEFAULT_ENVIRONMENT = "production";
/** `?variation=original`: the page as the origin sends it, read-only. */
const ORIGINAL = "original";
/** The editor page's CSP: its own script by nonce, its fetch and frame on this origin only. */
function editorCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    "style-src 'unsafe-inline'",
    "img-src data:",
    "connect-src 'self'",
    "frame-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

/** One editable set of changes: an A/B variation, or a multivariate section's variation. */
interface ChangeSet {
  id: string;
  key: string;
  label: string;
  changes: Change[];
  /** The `x-ss-decisions` pair a visitor seeing it gets (multivariate: a combination holding it). */
  decisionKey: string;
}

interface StoredSection {
  id: string;
  name?: string;
  variations: Array<{ id: string; key?: string; name?: string; changes?: Change[] }>;
}

const asChanges = (value: unknown): Change[] => (Array.isArray(value) ? (value as Change[]) : []);

function changeSetsOf(x: ExperimentJson): ChangeSet[] {
  if (x.type !== "multivariate") {
    return x.variations.map((v) => ({
      id: v.id,
      key: v.key,
      label: v.name ? `${v.key} (${v.name})` : v.key,
      changes: asChanges(v.changes),
      decisionKey: v.key,
    }));
  }
  const sections = Array.isArray(x.sections) ? (x.sections as StoredSection[]) : [];
  return sections.flatMap((section, s) =>
    section.variations.map((v) => ({
      id: v.id,
      key: v.key ?? v.id,
      label: `${section.name ?? `Section ${s + 1}`}: ${v.name ?? v.key ?? v.id}`,
      changes: asChanges(v.changes),
      decisionKey:
        x.variations.find((combo) => combo.sectionVariationIds?.includes(v.id))?.key ?? v.key ?? "",
    })),
  );
}

/** The change set a request names; without one, the first variation with changes, else the second. */
function chooseChangeSet(sets: ChangeSet[], requested: string): ChangeSet | null | undefined {
  if (requested === ORIGINAL) return null;
  if (requested !== "") return sets.find((s) => s.id === requested);
  return sets.find((s) => s.changes.length > 0) ?? sets[1] ?? sets[0] ?? null;
}

/** The URL the editor shows: the requested one (this site only) or the experiment's first page. */
function pageUrlFor(
  adminOrigin: string,
  requested: string,
  pageConditions: unknown[],
): URL | ApiError {
  if (requested !== "") {
    let url: URL;
    try {
      url = new URL(requested, adminOrigin);
    } catch {
      return new ApiError(422, "invalid_url", `${JSON.stringify(requested)} is not a URL.`);
    }
    // The same host is this site, whatever the port: behind `wrangler dev` (npm start) the
    // browser's origin (localhost:8787) is not the one the Worker sees (localhost:8788).
    const admin = new URL(adminOrigin);
    if (url.hostname !== admin.hostname || !/^https?:$/.test(url.protocol))
      return new ApiError(
        422,
        "other_origin",
        `The editor opens pages of this site only (${admin.hostname}): the Worker shows them on the admin's own origin, so no extension or CORS is needed. Open the admin on ${url.host} to edit pages there.`,
      );
    url = new URL(`${url.pathname}${url.search}`, adminOrigin);
    if (url.pathname.startsWith("/_ss/"))
      return new ApiError(
        422,
        "not_a_page",
        "Splitstream's own addresses (/_ss/…) are not pages of the site: open a page of the site.",
      );
    return url;
  }
  // A page's first simple or exact URL, moved onto this origin (the same path on this site).
  for (const conditions of pageConditions) {
    const candidate = urlOfConditions(conditions);
    if (candidate === null) continue;
    const found = new URL(candidate);
    return new URL(`${found.pathname}${found.search}`, adminOrigin);
  }
  return new URL("/", adminOrigin);
}

/** What the editor page needs (EditorState), or the refusal to show instead. */
async function buildState(
  c: AdminContext,
  actor: Actor,
  x: ExperimentJson,
  query: { variation: string; url: string; environment: string },
  saved: { notice: string | null; changes?: Change[]; errors?: EditorState["errors"] },
): Promise<EditorState | ApiError> {
  if (x.type === "split_url")
    return new ApiError(
      422,
      "not_visual",
      "Split URL variations are redirects to other pages: edit them in the experiment form.",
    );
  const sets = changeSetsOf(x);
  const chosen = chooseChangeSet(sets, query.variation);
  if (chosen === undefined)
    return new ApiError(404, "not_found", `this experiment has no variation ${query.variation}`);
  const pages = [];
  for (const id of x.pageIds) {
    const found = await attempt(() => getResource(c.env, actor, pageResource, id));
    if (found.ok) pages.push(found.value.json);
  }
  const adminOrigin = new URL(c.req.url).origin;
  const pageUrl = pageUrlFor(
    adminOrigin,
    query.url,
    pages.map((p) => p.conditions),
  );
  if (pageUrl instanceof ApiError) return pageUrl;
  const route = matchRoute(loadRoutes(c.env), pageUrl);
  if (route === null || !route.serveAdmin)
    return new ApiError(
      422,
      "no_route",
      `${pageUrl.origin} is not a route of this Worker that serves the admin (docs/config.md "Routes"), so the editor cannot show its pages.`,
    );
  if (!c.env.SIGNING_KEY)
    return new ApiError(503, "no_signing_key", "SIGNING_KEY is not set (docs/deploy.md).");

  const matching = pages.filter((p) => compileUrlConditions(p.conditions)(pageUrl.href));
  const matchedIds = new Set(matching.map((p) => p.id));
  const onThisPage = (change: Change) =>
    change.pageId === undefined || matchedIds.has(change.pageId);
  const token = await signEditorToken(c.env.SIGNING_KEY, {
    sdkKey: route.sdkKey,
    experimentId: x.id,
    decisions:
      chosen === null || chosen.decisionKey === ""
        ? ""
        : formatDecisionsHeader([[x.key, chosen.decisionKey]]),
    expiresAt: Date.now() + EDITOR_TOKEN_SECONDS * 1000,
  });
  // Every address the browser uses is a path: it resolves on the origin the browser sees, which
  // behind a development proxy is not the Worker's.
  const pagePath = `${pageUrl.pathname}${pageUrl.search}`;
  const relative = (absolute: string) => {
    const u = new URL(absolute);
    return `${u.pathname}${u.search}`;
  };
  const editorHref = (variation: string, url: string = pagePath) =>
    `${BASE}/experiments/${enc(x.id)}/editor?variation=${enc(variation)}&url=${enc(url)}&environment=${enc(query.environment)}`;
  return {
    experiment: {
      id: x.id,
      key: x.key,
      name: x.name || x.key,
      status: x.status[query.environment] ?? "Not started",
      type: x.type === "multivariate" ? "multivariate" : "ab",
    },
    variation: chosen === null ? null : { id: chosen.id, key: chosen.key, name: chosen.label },
    variations: [
      ...sets.map((s) => ({
        id: s.id,
        label: s.label,
        href: editorHref(s.id),
        current: chosen !== null && s.id === chosen.id,
      })),
      {
        id: null,
        label: "Original page (no changes)",
        href: editorHref(ORIGINAL),
        current: chosen === null,
      },
    ],
    pageUrl: pagePath,
    previewAction: relative(editorActionUrl(pageUrl.href, "preview")),
    sourceAction: relative(editorActionUrl(pageUrl.href, "source")),
    token,
    urlAction: `${BASE}/experiments/${enc(x.id)}/editor`,
    environment: query.environment,
    pages: pages.map((p) => ({ id: p.id, key: p.key, matches: matchedIds.has(p.id) })),
    defaultPageId: x.pageIds.length > 1 && matching.length === 1 ? matching[0]!.id : null,
    sharedChanges: asChanges(x.sharedChanges).filter(onThisPage),
    changes: saved.changes ?? chosen?.changes ?? [],
    version: x.version,
    saveAction: `${BASE}/experiments/${enc(x.id)}/editor`,
    canSave: chosen !== null && !x.archived,
    running: Object.values(x.status).includes("Running"),
    backHref: `${BASE}/experiments/${enc(x.id)}?environment=${enc(query.environment)}`,
    notice: saved.notice,
    errors: saved.errors ?? [],
    // Not versioned: a draft refused as stale (409) must still be found after a reload.
    draftStorageKey: `ss-editor:${x.id}:${chosen?.id ?? ORIGINAL}`,
  };
}

/** The update body that replaces one change set's changes and keeps everything else. */
function updateBodyFor(x: ExperimentJson, setId: string, changes: Change[]): unknown {
  if (x.type !== "multivariate") {
    return {
      variations: x.variations.map((v) => ({
        id: v.id,
        key: v.key,
        ...(v.name ? { name: v.name } : {}),
        weight: v.weight,
        changes: v.id === setId ? changes : asChanges(v.changes),
        ...(v.featureEnabled === undefined ? {} : { featureEnabled: v.featureEnabled }),
      })),
    };
  }
  const sections = Array.isArray(x.sections) ? (x.sections as StoredSection[]) : [];
  return {
    sections: sections.map((section, s) => ({
      id: section.id,
      name: section.name ?? `Section ${s + 1}`,
      variations: section.variations.map((v) => ({
        id: v.id,
        ...(v.key ? { key: v.key } : {}),
        name: v.name ?? v.key ?? v.id,
        changes: v.id === setId ? changes : asChanges(v.changes),
      })),
    })),
  };
}

/**
 * The API's paths of the edited change set (`$.body.variations[1].changes[3].selector`,
 * `$.body.sections[0].variations[2].changes[3]`) as the editor names them (`changes[3].selector`);
 * a problem elsewhere (another variation's change) keeps its full path, prefixed with that
 * variation's key, so it is never shown on a change of this one.
 */
function editorPath(path: string, x: ExperimentJson, setId: string): string {
  const body = path.replace(/^\$\.body\./, "");
  const variation = /^variations\[(\d+)\]\.(changes(?:[[.].*)?)$/.exec(body);
  if (variation && x.type !== "multivariate") {
    const v = x.variations[Number(variation[1])];
    return v?.id === setId ? variation[2]! : `${v?.key ?? "variation"}: ${body}`;
  }
  const section = /^sections\[(\d+)\]\.variations\[(\d+)\]\.(changes(?:[[.].*)?)$/.exec(body);
  if (section) {
    const sections = Array.isArray(x.sections) ? (x.sections as StoredSection[]) : [];
    const v = sections[Number(section[1])]?.variations[Number(section[2])];
    return v?.id === setId ? section[3]! : `${v?.key ?? "variation"}: ${body}`;
  }
  return path;
}

function refusalPage(c: AdminContext, title: string, error: ApiError, back: string) {
  return sendPage(
    c,
    title,
    html`<p><a href="${back}">← Back</a></p>
      <h1>${title}</h1>
      ${errorBlock(error)}`,
    error.status,
  );
}

function sendEditor(c: AdminContext, state: EditorState, status: number = 200) {
  const nonce = crypto.randomUUID().replace(/-/g, "");
  c.header("content-security-policy", editorCsp(nonce));
  c.header("cache-control", "no-store");
  c.header("x-content-type-options", "nosniff");
  c.header("referrer-policy", "same-origin");
  return c.html(renderEditorPage(state, nonce), status as 200);
}

/** Registers the editor's routes on the admin app (src/admin/app.ts), behind the session check. */
export function registerEditorPages(app: Hono<AdminEnv>): void {
  app.get("/assets/editor.js", (c) => {
    const immutable = c.req.query("v") === EDITOR_JS_HASH;
    return c.body(EDITOR_JS, 200, {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": immutable ? "private, max-age=31536000, immutable" : "private, no-cache",
      etag: `"${EDITOR_JS_HASH}"`,
      "x-content-type-options": "nosniff",
    });
  });

  app.get("/experiments/:id/editor", async (c) => {
    const id = c.req.param("id");
    const actor = c.get("actor");
    const title = "Visual editor";
    const back = `${BASE}/experiments/${enc(id)}`;
    const allowed = await attempt(() => requireActorRole(actor, "editor"));
    if (!allowed.ok) return refusalPage(c, title, allowed.error, back);
    const found = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!found.ok) return refusalPage(c, title, found.error, BASE);
    const query = {
      variation: c.req.query("variation") ?? "",
      url: (c.req.query("url") ?? "").trim(),
      environment: c.req.query("environment") || DEFAULT_ENVIRONMENT,
    };
    const state = await buildState(c, actor, found.value.json, query, {
      notice: c.req.query("saved") === "1" ? "Saved and published." : null,
    });
    if (state instanceof ApiError) return refusalPage(c, title, state, back);
    return sendEditor(c, state);
  });

  app.post("/experiments/:id/editor", async (c) => {
    const id = c.req.param("id");
    const actor = c.get("actor");
    const title = "Visual editor";
    const back = `${BASE}/experiments/${enc(id)}`;
    const allowed = await attempt(() => requireActorRole(actor, "editor"));
    if (!allowed.ok) return refusalPage(c, title, allowed.error, back);
    const form = await readForm(c);
    const query = {
      variation: one(form, "variation"),
      url: one(form, "url").trim(),
      environment: one(form, "environment") || DEFAULT_ENVIRONMENT,
    };
    const found = await attempt(() => getResource(c.env, actor, experimentResource, id));
    if (!found.ok) return refusalPage(c, title, found.error, BASE);
    const x = found.value.json;
    const set = changeSetsOf(x).find((s) => s.id === query.variation);
    if (set === undefined || x.archived)
      return refusalPage(
        c,
        title,
        new ApiError(
          x.archived ? 409 : 404,
          x.archived ? "archived" : "not_found",
          x.archived
            ? "This experiment is archived: its changes can no longer be edited."
            : `this experiment has no variation ${query.variation}`,
        ),
        back,
      );

    let changes: Change[] | null = null;
    let error: ApiError;
    try {
      const parsed: unknown = JSON.parse(one(form, "changes"));
      if (Array.isArray(parsed)) changes = parsed as Change[];
    } catch {
      // reported below
    }
    if (changes === null) {
      error = new ApiError(422, "validation_error", "The editor sent no valid list of changes.", [
        { path: "changes", message: "must be a JSON array of changes" },
      ]);
    } else {
      // Always guarded: a draft made on an older version must not overwrite newer edits.
      const version = postedVersion(form) ?? 0;
      const body = updateBodyFor(x, set.id, changes);
      const updated = await attempt(() =>
        updateResource(
          c.env,
          actor,
          experimentResource,
          id,
          parseBody(ExperimentUpdateSchema, body),
          version,
        ),
      );
      // The visual editor's save meets the review rule too (docs/approvals.md).
      if (updated.ok && isPendingReview(updated.value))
        return c.redirect(
          `${BASE}/experiments/${enc(id)}?environment=${enc(query.environment)}&notice=${enc(`Sent to review, not applied yet: ${updated.value.message}.`)}`,
          303,
        );
      if (updated.ok) {
        return c.redirect(
          `${BASE}/experiments/${enc(id)}/editor?variation=${enc(set.id)}&url=${enc(query.url)}&environment=${enc(query.environment)}&saved=1`,
          303,
        );
      }
      error = updated.error;
    }
    // Refused: the editor again, with the draft as posted and the API's messages.
    const details = Array.isArray(error.details) ? (error.details as ValidationDetail[]) : [];
    const state = await buildState(c, actor, x, query, {
      notice: null,
      changes: changes ?? set.changes,
      errors:
        details.length > 0
          ? details.map((d) => ({ path: editorPath(d.path, x, set.id), message: d.message }))
          : [{ path: "", message: error.message }],
    });
    if (state instanceof ApiError) return refusalPage(c, title, state, back);
    return sendEditor(c, state, error.status);
  });
}

/** "Edit visually" for one variation (src/admin/experiment-pages.ts draws it for editors). */
export function editorLink(experimentId: string, variationId: string, environment: string): string {
  return `${BASE}/experiments/${enc(experimentId)}/editor?variation=${enc(variationId)}&environment=${enc(environment)}`;
}
