/**
 * Program administration pages (docs/admin.md "Settings", "Environments", "Tokens", "Audit
 * log"): create, change and delete projects and their environments, create and revoke API
 * tokens, and read a project's audit log. Each form calls the service behind the matching API
 * route (src/api/services/projects.ts, environments.ts, tokens.ts, audit-history.ts) as the
 * session's actor, so roles, validation and messages are the API's own: projects, environments
 * and tokens need role admin to change (tokens also to read), the rest any role.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { type ApiError, unprocessable } from "../api/errors";
import { sha256Hex } from "../shared/hash";
import { EnvironmentCreateSchema, EnvironmentUpdateSchema } from "../api/schemas/environments";
import { ProjectCreateSchema, ProjectUpdateSchema } from "../api/schemas/projects";
import { TokenCreateSchema } from "../api/schemas/tokens";
import { parseBody } from "../api/schemas/validation-error";
import { listProjectAuditEntries, type AuditEntryJson } from "../api/services/audit-history";
import { hasRole, requireActorRole } from "../api/services/auth";
import {
  createEnvironment,
  datafilePath,
  deleteEnvironment,
  getEnvironment,
  updateEnvironment,
} from "../api/services/environments";
import {
  createProject,
  deleteProject,
  getProject,
  updateProject,
  type ProjectWithEnvironments,
} from "../api/services/projects";
import { createToken, listTokens, revokeToken } from "../api/services/tokens";
import {
  checkbox,
  field,
  fieldErrors,
  formErrors,
  one,
  postedVersion,
  readForm,
  select,
  textarea,
  versionField,
  type PostedForm,
} from "./forms";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  sendPage,
  type AdminContext,
  type AdminEnv,
  type Html,
} from "./ui";

/** An environment as the environments service returns it. */
type EnvironmentRow = ProjectWithEnvironments["environments"][number];
/** A token as the tokens service returns it (never its secret). */
type TokenRow = Awaited<ReturnType<typeof listTokens>>["items"][number];

/** Entries per audit-log page. */
const AUDIT_PAGE_SIZE = 50;
/** Tokens per tokens page (the API's largest page). */
const TOKEN_PAGE_SIZE = 200;

const actorOf = (c: AdminContext): Actor => c.get("actor");
const isAdmin = (actor: Actor) => hasRole(actor.role, "admin");

/**
 * The refused form's problems by field name: the API's 422 details, and the one field a 409 names
 * in its details (`{path: "$.body.key", existingId}`: a key or sdkKey already taken).
 */
function problemsOf(error: ApiError | null): Map<string, string> {
  const problems = fieldErrors(error);
  const details = error?.details as { path?: unknown } | null | undefined;
  if (error && details && typeof details.path === "string" && problems.size === 0)
    problems.set(details.path.replace(/^\$\.body\.?/, ""), error.message);
  return problems;
}

/** A form's state when it is shown again: the refusal and the values sent. */
interface Refused {
  error: ApiError;
  form: PostedForm;
}

/** The value to show in a field: what was posted when the form comes back, else the record's. */
function valueOf(refused: Refused | null, name: string, current: string): string {
  return refused ? one(refused.form, name) : current;
}

/** `2026-05-01T09:30:12.345Z` → `2026-05-01 09:30:12 UTC` in a `<time>`; `–` for null. */
export function when(iso: string | null): Html {
  if (iso === null) return html`–`;
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace("T", " ")} UTC</time>`;
}

function noticeOf(c: AdminContext): Html {
  const notice = c.req.query("notice");
  return notice ? html`<p class="warning" role="status">${notice}</p>` : html``;
}

/**
 * What a token below admin sees instead of a form: the refusal of what it posted (the API's 403),
 * if anything, and which role the form needs.
 */
function roleNote(actor: Actor, what: string, refused: Refused | null = null): Html {
  return html`${refused ? errorBlock(refused.error) : ""}
    <p class="muted" data-read-only>
      ${what} needs role admin; this token has role ${actor.role}.
    </p>`;
}

/** Links between the project's administration pages (and the explain page). */
export function projectNav(projectId: string, actor: Actor): Html {
  const base = `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(projectId)}`;
  return html`<nav aria-label="Project" class="row">
    <a href="${base}">← Experiments</a>
    <a href="${base}/settings">Settings</a>
    <a href="${base}/audit-log">Audit log</a>
    ${isAdmin(actor) ? html`<a href="${base}/webhooks">Webhooks</a>` : ""}
    <a href="${base}/explain">Why did I (not) get this?</a>
    ${isAdmin(actor) ? html`<a href="${ADMIN_BASE_PATH}/tokens">Tokens</a>` : ""}
    ${isAdmin(actor) ? html`<a href="${ADMIN_BASE_PATH}/new-project">New project</a>` : ""}
  </nav>`;
}

// ---------------------------------------------------------------------------------------------
// New project

function newProjectForm(refused: Refused | null): Html {
  const problems = problemsOf(refused?.error ?? null);
  const value = (name: string) => valueOf(refused, name, "");
  return html`${formErrors(refused?.error ?? null)}
    <form method="post" action="${ADMIN_BASE_PATH}/new-project" data-form="new-project">
      ${field({ name: "name", label: "Name", value: value("name"), error: problems.get("name"), required: true })}
      ${textarea({
        name: "description",
        label: "Description",
        value: value("description"),
        error: problems.get("description"),
      })}
      <fieldset>
        <legend>SDK keys (optional)</legend>
        <p class="muted">
          Leave empty for new random keys. Fill in to keep the key a site or app already uses (the
          edge's ROUTES <code>sdk_key</code>, a site moving from Optimizely).
        </p>
        ${field({
          name: "sdkKeys.production",
          label: "Production SDK key",
          value: value("sdkKeys.production"),
          error: problems.get("sdkKeys.production"),
        })}
        ${field({
          name: "sdkKeys.development",
          label: "Development SDK key",
          value: value("sdkKeys.development"),
          error: problems.get("sdkKeys.development"),
        })}
      </fieldset>
      <button type="submit">Create project</button>
    </form>`;
}

/** `POST /projects`' body from the form: empty optional fields are left out, as an API client would. */
function projectCreateBody(form: PostedForm): Record<string, unknown> {
  const body: Record<string, unknown> = { name: one(form, "name") };
  if (one(form, "description") !== "") body.description = one(form, "description");
  const sdkKeys: Record<string, string> = {};
  for (const key of ["production", "development"]) {
    const sdkKey = one(form, `sdkKeys.${key}`).trim();
    if (sdkKey !== "") sdkKeys[key] = sdkKey;
  }
  if (Object.keys(sdkKeys).length > 0) body.sdkKeys = sdkKeys;
  return body;
}

function newProjectPage(c: AdminContext, refused: Refused | null, status = 200) {
  const actor = actorOf(c);
  return sendPage(
    c,
    "New project",
    html`<p><a href="${ADMIN_BASE_PATH}">← Projects</a></p>
      <h1>New project</h1>
      <p class="muted">
        A project gets two environments, production and development, each with its own SDK key and
        datafile (<code>POST /projects</code>).
      </p>
      ${isAdmin(actor) ? newProjectForm(refused) : roleNote(actor, "Creating a project", refused)}`,
    status,
  );
}

// ---------------------------------------------------------------------------------------------
// Project settings

/** Which form of the settings page was refused, with what. */
type SettingsRefusal = { form: "project" | "delete"; refused: Refused } | null;

function environmentsTable(environments: EnvironmentRow[]): Html {
  return html`<table data-list="environments">
    <thead>
      <tr>
        <th scope="col">Environment</th>
        <th scope="col">Name</th>
        <th scope="col">SDK key</th>
        <th scope="col" class="num">Revision</th>
        <th scope="col">Datafile</th>
      </tr>
    </thead>
    <tbody>
      ${environments.map(
        (e) =>
          html`<tr data-environment="${e.key}">
            <th scope="row">
              <a href="${ADMIN_BASE_PATH}/environments/${encodeURIComponent(e.id)}">${e.key}</a>
            </th>
            <td>${e.name}</td>
            <td><code>${e.sdk_key}</code></td>
            <td class="num">${e.revision === 0 ? "not published" : e.revision}</td>
            <td><a href="${datafilePath(e.sdk_key)}">${datafilePath(e.sdk_key)}</a></td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function settingsPage(
  c: AdminContext,
  found: ProjectWithEnvironments,
  refusal: SettingsRefusal,
  status = 200,
) {
  const actor = actorOf(c);
  const { project, environments } = found;
  const base = `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(project.id)}`;
  const projectRefused = refusal?.form === "project" ? refusal.refused : null;
  const deleteRefused = refusal?.form === "delete" ? refusal.refused : null;
  const problems = problemsOf(projectRefused?.error ?? null);
  const projectSection = isAdmin(actor)
    ? html`${formErrors(projectRefused?.error ?? null)}
        <form method="post" action="${base}/settings" data-form="project">
          ${versionField(project.version)}
          ${field({
            name: "name",
            label: "Name",
            value: valueOf(projectRefused, "name", project.name),
            error: problems.get("name"),
            required: true,
          })}
          ${textarea({
            name: "description",
            label: "Description",
            value: valueOf(projectRefused, "description", project.description),
            error: problems.get("description"),
          })}
          <button type="submit">Save</button>
        </form>`
    : html`<dl>
          <dt>Name</dt>
          <dd>${project.name}</dd>
          <dt>Description</dt>
          <dd>${project.description || "–"}</dd>
        </dl>
        ${roleNote(actor, "Changing the project", refusal?.refused ?? null)}`;
  return sendPage(
    c,
    `Settings · ${project.name}`,
    html`${projectNav(project.id, actor)}
      <h1>Settings: ${project.name}</h1>
      ${noticeOf(c)}
      <p class="muted">
        Project id <code>${project.id}</code> · account <code>${project.account_id}</code>
      </p>
      <h2>Project</h2>
      ${projectSection}
      <h2>Environments</h2>
      <p class="muted">
        Each environment has its own SDK key, experiment statuses and datafile, served at its
        datafile URL.
      </p>
      ${environmentsTable(environments)}
      ${isAdmin(actor) ? html`<p><a href="${base}/environments/new">New environment</a></p>` : ""}
      ${
        isAdmin(actor)
          ? html`<h2>Delete project</h2>
              ${deleteRefused ? errorBlock(deleteRefused.error) : ""}
              <form method="post" action="${base}/delete" data-form="delete-project">
                ${versionField(project.version)}
                <p class="warning">
                  Deletes the project with everything in it, and its environments' datafiles: their
                  SDK keys stop serving. Refused while an experiment is running.
                </p>
                ${confirmField()}
                <button type="submit">Delete project</button>
              </form>`
          : ""
      }`,
    status,
  );
}

/** The project for a page, or the page answering that it cannot be shown. */
export async function loadProject(
  c: AdminContext,
  id: string,
): Promise<{ ok: true; value: ProjectWithEnvironments } | { ok: false; response: Response }> {
  const found = await attempt(() => getProject(c.env, actorOf(c), id));
  if (found.ok) return found;
  return {
    ok: false,
    response: await sendPage(c, "Project", errorBlock(found.error), found.error.status),
  };
}

// ---------------------------------------------------------------------------------------------
// Environments

function newEnvironmentPage(
  c: AdminContext,
  found: ProjectWithEnvironments,
  refused: Refused | null,
  status = 200,
) {
  const actor = actorOf(c);
  const { project } = found;
  const base = `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(project.id)}`;
  const problems = problemsOf(refused?.error ?? null);
  return sendPage(
    c,
    `New environment · ${project.name}`,
    html`${projectNav(project.id, actor)}
      <h1>New environment of ${project.name}</h1>
      <p class="muted">
        It gets a new SDK key; the project's experiments start as Not started in it, and its
        datafile is published on the next change that publishes.
      </p>
      ${
        isAdmin(actor)
          ? html`${formErrors(refused?.error ?? null)}
              <form method="post" action="${base}/environments/new" data-form="new-environment">
                ${field({
                  name: "key",
                  label: "Key",
                  value: valueOf(refused, "key", ""),
                  error: problems.get("key"),
                  hint: "lowercase letters, digits, - and _ (e.g. staging); it never changes",
                  required: true,
                })}
                ${field({
                  name: "name",
                  label: "Name",
                  value: valueOf(refused, "name", ""),
                  error: problems.get("name"),
                  required: true,
                })}
                <button type="submit">Create environment</button>
              </form>`
          : roleNote(actor, "Creating an environment", refused)
      }`,
    status,
  );
}

/** The admin's form turning the environment's review requirement on or off (review-pages.ts). */
function reviewSettingForm(environment: EnvironmentRow): Html {
  return html`<h2>Review</h2>
    <form
      method="post"
      action="${ADMIN_BASE_PATH}/environments/${encodeURIComponent(environment.id)}/review"
      data-form="environment-review"
    >
      ${versionField(environment.version)}
      ${checkbox({
        name: "requireReview",
        label: "Require review",
        checked: environment.require_review === 1,
        hint: "Editors' changes to experiments running or paused here, and their start or resume here, wait for another editor or an admin (docs/approvals.md).",
      })}
      <button type="submit">Save</button>
    </form>`;
}

type EnvironmentRefusal = { form: "rename" | "delete"; refused: Refused } | null;

function environmentPage(
  c: AdminContext,
  environment: EnvironmentRow,
  refusal: EnvironmentRefusal,
  status = 200,
) {
  const actor = actorOf(c);
  const base = `${ADMIN_BASE_PATH}/environments/${encodeURIComponent(environment.id)}`;
  const renameRefused = refusal?.form === "rename" ? refusal.refused : null;
  const deleteRefused = refusal?.form === "delete" ? refusal.refused : null;
  const problems = problemsOf(renameRefused?.error ?? null);
  const admin = isAdmin(actor);
  return sendPage(
    c,
    `Environment ${environment.key}`,
    html`${projectNav(environment.project_id, actor)}
      <h1>Environment ${environment.key}</h1>
      ${noticeOf(c)}
      <table data-environment="${environment.key}">
        <tbody>
          <tr>
            <th scope="row">Name</th>
            <td>${environment.name}</td>
          </tr>
          <tr>
            <th scope="row">Key</th>
            <td><code>${environment.key}</code></td>
          </tr>
          <tr>
            <th scope="row">SDK key</th>
            <td><code>${environment.sdk_key}</code></td>
          </tr>
          <tr>
            <th scope="row">Datafile revision</th>
            <td>${environment.revision === 0 ? "not published yet" : environment.revision}</td>
          </tr>
          <tr>
            <th scope="row">Review</th>
            <td data-require-review="${environment.require_review === 1 ? "yes" : "no"}">
              ${environment.require_review === 1 ? "required (docs/approvals.md)" : "not required"}
            </td>
          </tr>
          <tr>
            <th scope="row">Holdout</th>
            <td>
              <a href="${base}/holdout">Holdout: share, metrics and results</a>
            </td>
          </tr>
          <tr>
            <th scope="row">Datafile URL</th>
            <td>
              <a href="${datafilePath(environment.sdk_key)}"
                >${datafilePath(environment.sdk_key)}</a
              >
            </td>
          </tr>
        </tbody>
      </table>
      ${
        admin
          ? html`<h2>Rename</h2>
              ${formErrors(renameRefused?.error ?? null)}
              <form method="post" action="${base}" data-form="rename-environment">
                ${versionField(environment.version)}
                ${field({
                  name: "name",
                  label: "Name",
                  value: valueOf(renameRefused, "name", environment.name),
                  error: problems.get("name"),
                  required: true,
                })}
                <button type="submit">Rename</button>
              </form>
              ${reviewSettingForm(environment)}
              <h2>Delete environment</h2>
              ${
                environment.key === "production"
                  ? html`<p class="muted">
                      The production environment cannot be deleted; delete the project instead.
                    </p>`
                  : html`${deleteRefused ? errorBlock(deleteRefused.error) : ""}
                      <form method="post" action="${base}/delete" data-form="delete-environment">
                        ${versionField(environment.version)}
                        <p class="warning">
                          Deletes the environment and its datafiles: its SDK key stops serving.
                          Refused while an experiment is running in it.
                        </p>
                        ${confirmField()}
                        <button type="submit">Delete environment</button>
                      </form>`
              }`
          : roleNote(actor, "Changing an environment", refusal?.refused ?? null)
      }`,
    status,
  );
}

// ---------------------------------------------------------------------------------------------
// Tokens

/**
 * The API's `expiresAt` from the form: a `datetime-local` value (`2027-01-01T00:00`, no zone) is
 * read as UTC, as the label says; anything else is sent as typed, for the API to judge.
 */
function expiresAtOf(text: string): string | undefined {
  const value = text.trim();
  if (value === "") return undefined;
  const local = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?$/.exec(value);
  return local ? `${local[1]}${local[2] ?? ":00"}Z` : value;
}

function tokensTable(tokens: TokenRow[]): Html {
  if (tokens.length === 0) return html`<p>No tokens yet.</p>`;
  return html`<table data-list="tokens">
    <thead>
      <tr>
        <th scope="col">Name</th>
        <th scope="col">Role</th>
        <th scope="col">Prefix</th>
        <th scope="col">Created</th>
        <th scope="col">Last used</th>
        <th scope="col">Expires</th>
        <th scope="col">Revoked</th>
        <th scope="col"><span class="muted">Action</span></th>
      </tr>
    </thead>
    <tbody>
      ${tokens.map(
        (t) =>
          html`<tr data-token="${t.id}">
            <th scope="row">${t.name}</th>
            <td>${t.role}</td>
            <td><code>${t.prefix}…</code></td>
            <td>${when(t.created_at)}</td>
            <td>${when(t.last_used_at)}</td>
            <td>${t.expires_at === null ? "never" : when(t.expires_at)}</td>
            <td>${when(t.revoked_at)}</td>
            <td>
              ${
                t.revoked_at === null
                  ? html`<form
                      method="post"
                      action="${ADMIN_BASE_PATH}/tokens/${encodeURIComponent(t.id)}/revoke"
                    >
                      <button type="submit" aria-label="Revoke ${t.name}">Revoke</button>
                    </form>`
                  : ""
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/**
 * 422 beside `confirmToken` unless `token` is the token this session signed in with (compared
 * by SHA-256, as sessions store it): what a script running on the site's pages — same-origin
 * with the admin — cannot supply.
 */
export async function confirmSignedInToken(c: AdminContext, token: string): Promise<void> {
  if (token !== "" && (await sha256Hex(token)) === c.get("tokenHash")) return;
  throw unprocessable("confirm with the API token you signed in with", [
    { path: "$.body.confirmToken", message: "not the token this session signed in with" },
  ]);
}

/** The "your own API token, to confirm" field of the forms that need it (see confirmSignedInToken). */
function confirmField(): Html {
  return field({
    name: "confirmToken",
    label: "Your own API token, to confirm",
    type: "password",
    value: "",
    required: true,
    hint: "So that a script running on your site cannot do this in your name.",
  });
}

function tokenForm(refused: Refused | null): Html {
  const problems = problemsOf(refused?.error ?? null);
  return html`<h2>New token</h2>
    ${formErrors(refused?.error ?? null)}
    <form method="post" action="${ADMIN_BASE_PATH}/tokens" data-form="new-token">
      ${field({
        name: "name",
        label: "Name",
        value: valueOf(refused, "name", ""),
        error: problems.get("name"),
        required: true,
      })}
      ${select({
        name: "role",
        label: "Role",
        value: valueOf(refused, "role", "viewer"),
        error: problems.get("role"),
        options: [
          { value: "viewer", label: "viewer: reads everything" },
          { value: "editor", label: "editor: also changes experiments and their parts" },
          { value: "admin", label: "admin: also projects, environments and tokens" },
        ],
      })}
      ${field({
        name: "expiresAt",
        label: "Expires (UTC, optional)",
        type: "datetime-local",
        value: valueOf(refused, "expiresAt", ""),
        error: problems.get("expiresAt"),
        hint: "Empty: never expires.",
      })}
      ${field({
        name: "confirmToken",
        label: "Your own API token, to confirm",
        type: "password",
        value: "",
        error: problems.get("confirmToken"),
        required: true,
        hint: "A new token's secret is shown once on the next page: so that a script on your site cannot create one in your name, confirm with the token you signed in with.",
      })}
      <button type="submit">Create token</button>
    </form>`;
}

async function tokensPage(
  c: AdminContext,
  refusal: { form: "create" | "revoke"; refused: Refused } | null,
  status = 200,
): Promise<Response> {
  const actor = actorOf(c);
  const tokens = await attempt(() =>
    listTokens(c.env, actor, { limit: TOKEN_PAGE_SIZE, cursor: c.req.query("after") || null }),
  );
  if (!tokens.ok) return sendPage(c, "Tokens", errorBlock(tokens.error), tokens.error.status);
  const after = tokens.value.after;
  return sendPage(
    c,
    "Tokens",
    html`<p><a href="${ADMIN_BASE_PATH}">← Projects</a></p>
      <h1>API tokens</h1>
      <p class="muted">
        Tokens of the management API and of these pages (<code>GET /tokens</code>). Revoking one
        works at once and signs its admin sessions out.
      </p>
      ${noticeOf(c)} ${refusal?.form === "revoke" ? errorBlock(refusal.refused.error) : ""}
      ${tokensTable(tokens.value.items)}
      ${after ? html`<p><a href="?after=${encodeURIComponent(after)}">More tokens</a></p>` : ""}
      ${tokenForm(refusal?.form === "create" ? refusal.refused : null)}`,
    status,
  );
}

/** The answer to a created token: its secret, this once. */
function tokenCreatedPage(c: AdminContext, row: TokenRow, secret: string) {
  return sendPage(
    c,
    "Token created",
    html`<p><a href="${ADMIN_BASE_PATH}/tokens">← Tokens</a></p>
      <h1>Token created: ${row.name}</h1>
      <p class="warning" role="alert">
        Copy the secret now and keep it somewhere safe: it is shown only on this page and will not
        be shown again (only its SHA-256 is stored).
      </p>
      <p class="field">
        <label for="token-secret">Secret (role ${row.role})</label>
        <input id="token-secret" type="text" readonly value="${secret}" data-secret />
      </p>
      <p class="muted">
        Expires: ${row.expires_at === null ? "never" : when(row.expires_at)} · Prefix
        <code>${row.prefix}…</code>
      </p>`,
  );
}

// ---------------------------------------------------------------------------------------------
// Audit log

function detailsText(details: unknown): string {
  if (details === null || details === undefined) return "";
  if (typeof details === "object" && Object.keys(details).length === 0) return "";
  return typeof details === "string" ? details : JSON.stringify(details);
}

function auditTable(items: AuditEntryJson[]): Html {
  if (items.length === 0) return html`<p>No entries.</p>`;
  return html`<table data-list="audit-log">
    <thead>
      <tr>
        <th scope="col">Time</th>
        <th scope="col">Actor</th>
        <th scope="col">Action</th>
        <th scope="col">Resource</th>
        <th scope="col">Details</th>
      </tr>
    </thead>
    <tbody>
      ${items.map(
        (entry) =>
          html`<tr data-audit="${entry.id}" data-action="${entry.action}">
            <td>${when(entry.at)}</td>
            <td>
              ${entry.actor.name ?? html`<span class="muted">deleted token</span>`}<br /><span
                class="muted"
                >${entry.actor.id}</span
              >
            </td>
            <td>${entry.action}</td>
            <td>${entry.resourceType} <code>${entry.resourceId}</code></td>
            <td><code>${detailsText(entry.details)}</code></td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

// ---------------------------------------------------------------------------------------------
// Routes

/**
 * Registers the administration pages: `/new-project`, `/projects/:id/settings` (and its
 * `/delete`), `/projects/:id/environments/new`, `/environments/:id` (and its `/delete`),
 * `/tokens` (and `/tokens/:id/revoke`), `/projects/:id/audit-log` (docs/admin.md).
 */
export function registerSettingsPages(app: Hono<AdminEnv>): void {
  // Not /projects/new: the project page's /projects/:id is registered first and would take it.
  app.get("/new-project", (c) => newProjectPage(c, null));

  app.post("/new-project", async (c) => {
    const form = await readForm(c);
    const created = await attempt(() => {
      const actor = actorOf(c);
      // In the API's order: the role (the route's middleware), then the body, then the rules.
      requireActorRole(actor, "admin");
      const body = parseBody(ProjectCreateSchema, projectCreateBody(form));
      return createProject(c.env, actor, body);
    });
    if (!created.ok) return newProjectPage(c, { error: created.error, form }, created.error.status);
    return c.redirect(
      `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(created.value.project.id)}/settings`,
      303,
    );
  });

  app.get("/projects/:id/settings", async (c) => {
    const found = await loadProject(c, c.req.param("id"));
    return found.ok ? settingsPage(c, found.value, null) : found.response;
  });

  app.post("/projects/:id/settings", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const updated = await attempt(() => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      const body = parseBody(ProjectUpdateSchema, {
        name: one(form, "name"),
        description: one(form, "description"),
      });
      return updateProject(c.env, actor, id, body, postedVersion(form));
    });
    if (updated.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(id)}/settings?notice=Saved.`,
        303,
      );
    const found = await loadProject(c, id);
    if (!found.ok) return found.response;
    return settingsPage(
      c,
      found.value,
      { form: "project", refused: { error: updated.error, form } },
      updated.error.status,
    );
  });

  app.post("/projects/:id/delete", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const deleted = await attempt(async () => {
      requireActorRole(actorOf(c), "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return deleteProject(c.env, actorOf(c), id, postedVersion(form));
    });
    if (deleted.ok) return c.redirect(ADMIN_BASE_PATH, 303);
    const found = await loadProject(c, id);
    if (!found.ok) return found.response;
    return settingsPage(
      c,
      found.value,
      { form: "delete", refused: { error: deleted.error, form } },
      deleted.error.status,
    );
  });

  app.get("/projects/:id/environments/new", async (c) => {
    const found = await loadProject(c, c.req.param("id"));
    return found.ok ? newEnvironmentPage(c, found.value, null) : found.response;
  });

  app.post("/projects/:id/environments/new", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const created = await attempt(() => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      const body = parseBody(EnvironmentCreateSchema, {
        key: one(form, "key"),
        name: one(form, "name"),
      });
      return createEnvironment(c.env, actor, id, body);
    });
    if (created.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(id)}/settings?notice=${encodeURIComponent(`Environment ${created.value.key} created.`)}`,
        303,
      );
    const found = await loadProject(c, id);
    if (!found.ok) return found.response;
    return newEnvironmentPage(c, found.value, { error: created.error, form }, created.error.status);
  });

  app.get("/environments/:id", async (c) => {
    const environment = await attempt(() => getEnvironment(c.env, actorOf(c), c.req.param("id")));
    if (!environment.ok)
      return sendPage(c, "Environment", errorBlock(environment.error), environment.error.status);
    return environmentPage(c, environment.value, null);
  });

  /** Shows the environment page again with a refusal, or the error alone when it is gone. */
  const environmentRefused = async (
    c: AdminContext,
    id: string,
    refusal: NonNullable<EnvironmentRefusal>,
  ) => {
    const environment = await attempt(() => getEnvironment(c.env, actorOf(c), id));
    if (!environment.ok)
      return sendPage(c, "Environment", errorBlock(environment.error), environment.error.status);
    return environmentPage(c, environment.value, refusal, refusal.refused.error.status);
  };

  app.post("/environments/:id", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const updated = await attempt(() => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      const body = parseBody(EnvironmentUpdateSchema, { name: one(form, "name") });
      return updateEnvironment(c.env, actor, id, body, postedVersion(form));
    });
    if (updated.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(updated.value.project_id)}/settings?notice=${encodeURIComponent(`Environment ${updated.value.key} renamed.`)}`,
        303,
      );
    return environmentRefused(c, id, { form: "rename", refused: { error: updated.error, form } });
  });

  app.post("/environments/:id/delete", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const actor = actorOf(c);
    // The project to go back to; a missing environment is the delete's own 404 below.
    const before = await attempt(() => getEnvironment(c.env, actor, id));
    const deleted = await attempt(async () => {
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return deleteEnvironment(c.env, actor, id, postedVersion(form));
    });
    if (deleted.ok && before.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(before.value.project_id)}/settings?notice=${encodeURIComponent(`Environment ${before.value.key} deleted.`)}`,
        303,
      );
    if (deleted.ok) return c.redirect(ADMIN_BASE_PATH, 303);
    return environmentRefused(c, id, { form: "delete", refused: { error: deleted.error, form } });
  });

  app.get("/tokens", (c) => tokensPage(c, null));

  app.post("/tokens", async (c) => {
    const form = await readForm(c);
    const created = await attempt(async () => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      const expiresAt = expiresAtOf(one(form, "expiresAt"));
      const body = parseBody(TokenCreateSchema, {
        name: one(form, "name"),
        role: one(form, "role"),
        ...(expiresAt === undefined ? {} : { expiresAt }),
      });
      return createToken(c.env, actor, body);
    });
    if (!created.ok)
      return tokensPage(
        c,
        { form: "create", refused: { error: created.error, form } },
        created.error.status,
      );
    // The secret is in this answer only: no redirect (the next page could not show it), and the
    // page is `no-store` (src/admin/ui.ts `send`), so no cache keeps it.
    return tokenCreatedPage(c, created.value.row, created.value.secret);
  });

  app.post("/tokens/:id/revoke", async (c) => {
    const form = await readForm(c);
    const revoked = await attempt(() => revokeToken(c.env, actorOf(c), c.req.param("id")));
    if (revoked.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/tokens?notice=${encodeURIComponent("Token revoked.")}`,
        303,
      );
    return tokensPage(
      c,
      { form: "revoke", refused: { error: revoked.error, form } },
      revoked.error.status,
    );
  });

  app.get("/projects/:id/audit-log", async (c) => {
    const id = c.req.param("id");
    const actor = actorOf(c);
    const before = c.req.query("before");
    const found = await loadProject(c, id);
    if (!found.ok) return found.response;
    const entries = await attempt(() =>
      listProjectAuditEntries(c.env, actor, id, {
        limit: AUDIT_PAGE_SIZE,
        cursor: before && /^\d{1,15}$/.test(before) ? before : null,
      }),
    );
    const { project } = found.value;
    return sendPage(
      c,
      `Audit log · ${project.name}`,
      html`${projectNav(project.id, actor)}
        <h1>Audit log: ${project.name}</h1>
        <p class="muted">
          Who changed what in this project, newest first (<code
            >GET /projects/{projectId}/audit-log</code
          >). Token changes belong to no project: they are in the whole log (<code
            >GET /audit-log</code
          >, admin).
        </p>
        ${
          entries.ok
            ? html`${auditTable(entries.value.items)}
              ${
                entries.value.after
                  ? html`<p>
                      <a href="?before=${encodeURIComponent(entries.value.after)}">Older entries</a>
                    </p>`
                  : ""
              }`
            : errorBlock(entries.error)
        }`,
      entries.ok ? 200 : entries.error.status,
    );
  });
}
