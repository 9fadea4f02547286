/**
 * A project's building blocks in the admin (docs/admin.md "Project content"): pages, audiences,
 * events, lists, attributes and groups, each with a list, a create form, an edit form, archive
 * (where the resource has `archived`) and delete — under `/_ss/admin/projects/{id}/<plural>`.
 *
 * Every page reads and writes through the API's resource service (src/api/services/resources.ts)
 * as the session's actor, with the API's request schemas (src/admin/content-kind.ts), so roles,
 * validation, the 409s of keys and of deleting what is in use, versions (the form's `version`
 * is the If-Match) and publishing are the API's own. A refused form is shown again with the values
 * sent and the API's problems beside their fields, at the API's status; a write answers 303 to
 * the resource's page. Viewers get read-only pages; the services refuse their writes (403).
 * What each kind edits is in src/admin/page-kind.ts, audience-builder.ts, list-kind.ts and
 * resource-kinds.ts.
 */
import type { Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { html } from "hono/html";
import { ApiError, notFound } from "../api/errors";
import { hasRole, requireActorRole } from "../api/services/auth";
import { getProject } from "../api/services/projects";
import { audienceKind } from "./audience-builder";
import type { BodyPlan, ContentJson, ContentKind, KindContext } from "./content-kind";
import {
  fieldErrors,
  formErrors,
  one,
  postedVersion,
  readForm,
  versionField,
  type PostedForm,
} from "./forms";
import { listKind } from "./list-kind";
import { pageKind } from "./page-kind";
import { attributeKind, eventKind, groupKind } from "./resource-kinds";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  page,
  send,
  type AdminContext,
  type AdminEnv,
  type Html,
} from "./ui";

/** The kinds, in the order of the navigation. */
const NAVIGATION: ReadonlyArray<{ plural: string; title: string }> = [
  pageKind,
  audienceKind,
  eventKind,
  listKind,
  attributeKind,
  groupKind,
].map((k) => ({ plural: k.plural, title: k.title }));

/**
 * The project's feature flags (src/admin/flag-pages.ts) and building blocks as links (the project
 * page, every page here and the flag list show it); `current` is the list being shown.
 */
export function contentNav(projectId: string, current: string | null = null): Html {
  const base = `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(projectId)}`;
  const link = (plural: string, title: string) =>
    plural === current
      ? html`<strong aria-current="page">${title}</strong>`
      : html`<a href="${base}/${plural}">${title}</a>`;
  return html`<nav aria-label="Project" data-nav="content">
    <p class="row">
      ${link("flags", "Flags")}
      <span class="muted">· Building blocks:</span>
      ${NAVIGATION.map((k) => link(k.plural, k.title))}
    </p>
  </nav>`;
}

/** What a redirect after a write says on the page it lands on (`?done=`). */
const DONE: Record<string, string> = {
  created: "Created.",
  saved: "Saved.",
  archived: "Archived.",
  unarchived: "Restored from the archive.",
  deleted: "Deleted.",
};

function doneNotice(c: AdminContext): Html {
  const text = DONE[c.req.query("done") ?? ""];
  return text ? html`<p role="status" data-done="${c.req.query("done")}">${text}</p>` : html``;
}

function contextOf(c: AdminContext): KindContext {
  const actor = c.get("actor");
  return {
    env: c.env,
    actor,
    projectId: c.req.param("projectId") ?? "",
    url: new URL(c.req.url),
    editable: hasRole(actor.role, "editor"),
  };
}

/**
 * The routes of one kind: the list, the create form and its POST, the resource's page and its
 * POST, archive and delete. `new` is registered before `:id`, so it is never read as an id.
 */
function registerKind<Json extends ContentJson, Item extends { id: string }, State, Extra>(
  app: Hono<AdminEnv>,
  kind: ContentKind<Json, Item, State, Extra>,
): void {
  const base = `/projects/:projectId/${kind.plural}`;
  const listHref = (ctx: KindContext) =>
    `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(ctx.projectId)}/${kind.plural}`;
  const itemHref = (ctx: KindContext, id: string) => `${listHref(ctx)}/${encodeURIComponent(id)}`;

  const crumbs = (ctx: KindContext, withList: boolean) =>
    html`<p>
      <a href="${ADMIN_BASE_PATH}/projects/${encodeURIComponent(ctx.projectId)}">← Project</a>
      ${withList ? html` · <a href="${listHref(ctx)}">${kind.title}</a>` : ""}
    </p>`;

  const errorPage = (c: AdminContext, ctx: KindContext, error: ApiError) =>
    send(c, page(kind.title, html`${crumbs(ctx, true)}${errorBlock(error)}`), error.status);

  /** The resource, 404 unless it belongs to the project of the path. */
  const loadItem = async (ctx: KindContext, id: string): Promise<Json> => {
    const json = await kind.calls.get(ctx.env, ctx.actor, id);
    if (json.projectId !== ctx.projectId) throw notFound(kind.calls.type, id);
    return json;
  };

  /** Refuses a form larger than the kind accepts before reading it (413, as the API does). */
  const tooLarge = (c: AdminContext): ApiError | null => {
    const declared = Number(c.req.header("content-length") ?? "0");
    if (kind.maxBodyBytes === undefined || !(declared > kind.maxBodyBytes)) return null;
    return new ApiError(
      413,
      "payload_too_large",
      `the form is larger than ${kind.maxBodyBytes / (1024 * 1024)} MiB: split the members into smaller uploads`,
    );
  };

  const form = (
    ctx: KindContext,
    state: State,
    extra: Extra,
    current: Json | null,
    error: ApiError | null,
  ) =>
    html`<form
      method="post"
      action="${current ? itemHref(ctx, current.id) : listHref(ctx)}"
      ${kind.multipart ? html`enctype="multipart/form-data"` : ""}
      data-form="${kind.singular}"
    >
      ${formErrors(error)} ${current ? versionField(current.version) : ""}
      ${kind.fields(state, fieldErrors(error), extra, ctx, current)}
      <p class="row">
        <button type="submit">${current ? "Save" : `Create ${kind.singular}`}</button>
        ${kind.buttons?.(state, current) ?? ""}
      </p>
    </form>`;

  const createPage = (
    c: AdminContext,
    ctx: KindContext,
    state: State,
    extra: Extra,
    error: ApiError | null,
  ) =>
    send(
      c,
      page(
        `New ${kind.singular}`,
        html`${crumbs(ctx, true)}
          <h1>New ${kind.singular}</h1>
          ${form(ctx, state, extra, null, error)}`,
      ),
      error?.status ?? 200,
    );

  /** Archive and delete, as POST forms carrying the version they were rendered from. */
  const itemActions = (ctx: KindContext, json: Json) =>
    html`<section aria-labelledby="actions-heading">
      <h2 id="actions-heading">Archive or delete</h2>
      <div class="row">
        ${
          kind.archivable
            ? html`<form method="post" action="${itemHref(ctx, json.id)}/archive">
                ${versionField(json.version)}
                <input type="hidden" name="archived" value="${json.archived ? "false" : "true"}" />
                <button type="submit" data-action="${json.archived ? "unarchive" : "archive"}">
                  ${json.archived ? "Unarchive" : "Archive"}
                </button>
              </form>`
            : ""
        }
        <form method="post" action="${itemHref(ctx, json.id)}/delete" class="row">
          ${versionField(json.version)}
          <input type="checkbox" id="confirm-delete" name="confirm" value="yes" required />
          <label for="confirm-delete">Yes, delete this ${kind.singular}</label>
          <button type="submit" data-action="delete">Delete</button>
        </form>
      </div>
      <p class="hint">
        A ${kind.singular} another resource uses cannot be deleted (the API answers 409 and names
        them)${kind.archivable ? "; archive it instead" : ""}.
      </p>
    </section>`;

  const itemPage = (
    c: AdminContext,
    ctx: KindContext,
    view: {
      json: Json;
      extra: Extra;
      state?: State;
      error?: ApiError | null;
      alert?: ApiError | null;
      status?: ContentfulStatusCode;
    },
  ) => {
    const { json, extra } = view;
    const label = kind.label(json);
    const query = new URL(c.req.url).searchParams;
    return send(
      c,
      page(
        `${kind.singular} ${label}`,
        html`${crumbs(ctx, true)}
          <h1>
            ${kind.singular[0]!.toUpperCase()}${kind.singular.slice(1)} ${label}
            ${json.archived ? html`<span class="badge Archived">Archived</span>` : ""}
          </h1>
          ${doneNotice(c)} ${view.alert ? errorBlock(view.alert) : ""}
          ${kind.notices?.(json, extra, ctx) ?? ""}
          ${
            ctx.editable
              ? html`${form(ctx, view.state ?? kind.fromJson(json, extra), extra, json, view.error ?? null)}`
              : kind.summary(json, extra, ctx)
          }
          ${kind.sections?.(json, extra, ctx, query) ?? ""}
          ${ctx.editable ? itemActions(ctx, json) : ""}`,
      ),
      view.status ?? 200,
    );
  };

  app.get(base, async (c) => {
    const ctx = contextOf(c);
    const cursor = c.req.query("after") ?? null;
    const loaded = await attempt(async () => {
      // The project first: an unknown one is 404 before anything else.
      const project = await getProject(ctx.env, ctx.actor, ctx.projectId);
      const [items, extra] = await Promise.all([
        kind.calls.list(ctx.env, ctx.actor, ctx.projectId, { limit: 100, cursor }),
        kind.load(ctx),
      ]);
      return { project, items, extra };
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const { project, items, extra } = loaded.value;
    return send(
      c,
      page(
        kind.title,
        html`<p>
            <a href="${ADMIN_BASE_PATH}/projects/${encodeURIComponent(ctx.projectId)}"
              >← ${project.project.name}</a
            >
          </p>
          <h1>${kind.title}</h1>
          ${contentNav(ctx.projectId, kind.plural)}
          <p class="muted">${kind.about}</p>
          ${doneNotice(c)}
          ${ctx.editable ? html`<p><a href="${listHref(ctx)}/new">New ${kind.singular}</a></p>` : ""}
          ${
            items.items.length === 0
              ? html`<p>No ${kind.title.toLowerCase()} yet.</p>`
              : html`<table data-list="${kind.plural}">
                  <thead>
                    <tr>
                      <th scope="col">${kind.labelHeader}</th>
                      ${kind.columns.map(
                        (col) =>
                          html`<th scope="col" ${col.numeric ? html`class="num"` : ""}>
                            ${col.header}
                          </th>`,
                      )}
                      ${kind.archivable ? html`<th scope="col">Status</th>` : ""}
                    </tr>
                  </thead>
                  <tbody>
                    ${items.items.map(
                      (item) =>
                        html`<tr data-item="${kind.label(item)}">
                          <th scope="row">
                            <a href="${itemHref(ctx, item.id)}">${kind.label(item) || item.id}</a>
                          </th>
                          ${kind.columns.map(
                            (col) =>
                              html`<td ${col.numeric ? html`class="num"` : ""}>
                                ${col.cell(item, extra, ctx)}
                              </td>`,
                          )}
                          ${
                            kind.archivable
                              ? html`<td>
                                  ${
                                    (item as Partial<ContentJson>).archived
                                      ? html`<span class="badge Archived">Archived</span>`
                                      : "active"
                                  }
                                </td>`
                              : ""
                          }
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
          ${
            items.after !== null
              ? html`<p><a href="?after=${encodeURIComponent(items.after)}">Next page</a></p>`
              : ""
          }`,
      ),
      200,
    );
  });

  app.get(`${base}/new`, async (c) => {
    const ctx = contextOf(c);
    const loaded = await attempt(async () => {
      requireActorRole(ctx.actor, "editor");
      // An unknown project is 404 here too, not a form that can only fail.
      await getProject(ctx.env, ctx.actor, ctx.projectId);
      return kind.load(ctx);
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    return createPage(c, ctx, kind.blank(loaded.value), loaded.value, null);
  });

  /** The body of a form and the service's answer, with the API's problems mapped to the form's fields. */
  const write = async <T>(
    plan: () => BodyPlan,
    call: (body: unknown) => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false; error: ApiError }> => {
    let built: BodyPlan | null = null;
    const result = await attempt(async () => {
      built = plan();
      return call(built.body);
    });
    if (result.ok) return result;
    const remap = (built as BodyPlan | null)?.remap;
    return { ok: false, error: remap ? remap(result.error) : result.error };
  };

  /** A POST's role check (the API's order: the role before the body), size check and form. */
  const readPost = async (
    c: AdminContext,
    ctx: KindContext,
  ): Promise<
    { ok: true; form: PostedForm } | { ok: false; response: Response | Promise<Response> }
  > => {
    const allowed = await attempt(() => requireActorRole(ctx.actor, "editor"));
    if (!allowed.ok) return { ok: false, response: errorPage(c, ctx, allowed.error) };
    const large = tooLarge(c);
    if (large) return { ok: false, response: errorPage(c, ctx, large) };
    return { ok: true, form: await readForm(c) };
  };

  app.post(base, async (c) => {
    const ctx = contextOf(c);
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(() => kind.load(ctx));
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const extra = loaded.value;
    const state = kind.read(posted.form, extra, null);
    if (one(posted.form, "_refresh") !== "") return createPage(c, ctx, state, extra, null);
    const written = await write(
      () => kind.body(state, "create", null),
      (body) => kind.calls.create(ctx.env, ctx.actor, ctx.projectId, body),
    );
    if (!written.ok) return createPage(c, ctx, state, extra, written.error);
    return c.redirect(`${itemHref(ctx, written.value.id)}?done=created`, 303);
  });

  app.get(`${base}/:id`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id") ?? "";
    const loaded = await attempt(async () => {
      const json = await loadItem(ctx, id);
      return { json, extra: await kind.load(ctx) };
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    return itemPage(c, ctx, loaded.value);
  });

  app.post(`${base}/:id`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id") ?? "";
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(async () => {
      const json = await loadItem(ctx, id);
      return { json, extra: await kind.load(ctx) };
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    const { json, extra } = loaded.value;
    const state = kind.read(posted.form, extra, json);
    if (one(posted.form, "_refresh") !== "") return itemPage(c, ctx, { json, extra, state });
    const written = await write(
      () => kind.body(state, "update", json),
      (body) => kind.calls.update(ctx.env, ctx.actor, id, body, postedVersion(posted.form)),
    );
    if (!written.ok)
      return itemPage(c, ctx, {
        json,
        extra,
        state,
        error: written.error,
        status: written.error.status,
      });
    return c.redirect(`${itemHref(ctx, id)}?done=saved`, 303);
  });

  if (kind.archivable)
    app.post(`${base}/:id/archive`, async (c) => {
      const ctx = contextOf(c);
      const id = c.req.param("id") ?? "";
      const posted = await readPost(c, ctx);
      if (!posted.ok) return posted.response;
      const archived = one(posted.form, "archived") !== "false";
      const loaded = await attempt(async () => {
        const json = await loadItem(ctx, id);
        return { json, extra: await kind.load(ctx) };
      });
      if (!loaded.ok) return errorPage(c, ctx, loaded.error);
      const written = await attempt(() =>
        kind.calls.update(ctx.env, ctx.actor, id, { archived }, postedVersion(posted.form)),
      );
      if (!written.ok)
        return itemPage(c, ctx, {
          ...loaded.value,
          alert: written.error,
          status: written.error.status,
        });
      return c.redirect(`${itemHref(ctx, id)}?done=${archived ? "archived" : "unarchived"}`, 303);
    });

  app.post(`${base}/:id/delete`, async (c) => {
    const ctx = contextOf(c);
    const id = c.req.param("id") ?? "";
    const posted = await readPost(c, ctx);
    if (!posted.ok) return posted.response;
    const loaded = await attempt(async () => {
      const json = await loadItem(ctx, id);
      return { json, extra: await kind.load(ctx) };
    });
    if (!loaded.ok) return errorPage(c, ctx, loaded.error);
    if (one(posted.form, "confirm") !== "yes")
      return itemPage(c, ctx, {
        ...loaded.value,
        alert: new ApiError(400, "bad_request", `Tick "Yes, delete this ${kind.singular}" first.`),
        status: 400,
      });
    const deleted = await attempt(() =>
      kind.calls.remove(ctx.env, ctx.actor, id, postedVersion(posted.form)),
    );
    if (!deleted.ok)
      return itemPage(c, ctx, {
        ...loaded.value,
        alert: deleted.error,
        status: deleted.error.status,
      });
    return c.redirect(`${listHref(ctx)}?done=deleted`, 303);
  });
}

/** Registers the pages of every building block (src/admin/app.ts `buildAdminApp`). */
export function registerContentPages(app: Hono<AdminEnv>): void {
  registerKind(app, pageKind);
  registerKind(app, audienceKind);
  registerKind(app, eventKind);
  registerKind(app, listKind);
  registerKind(app, attributeKind);
  registerKind(app, groupKind);
}
