/**
 * Webhook pages (docs/webhooks.md "In the admin"): a project's webhooks with a form for a new
 * one (its signing secret shown once, on the page that answers the form), each webhook's page
 * (change, enable or disable, send a test, rotate the secret, delete) with its delivery log, and
 * each delivery's page (body and every attempt with its response code, and **Redeliver** once it
 * has finished: docs/webhooks.md "Redelivering"). The forms call
 * src/api/services/webhooks.ts as the session's actor: admin only, as the API.
 *
 * Creating a webhook and rotating its secret answer a secret, and a webhook sends project data
 * out: creating, changing (a new URL would redirect every event), rotating, deleting and
 * redelivering ask for the signed-in token (as creating a token does), so a script running on the site's pages —
 * same-origin with the admin — cannot do them in the user's name.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import type { ApiError } from "../api/errors";
import {
  WEBHOOK_EVENT_TYPES,
  WebhookCreateSchema,
  WebhookUpdateSchema,
  type WebhookDeliveryJson,
  type WebhookJson,
} from "../api/schemas/webhooks";
import { parseBody } from "../api/schemas/validation-error";
import { hasRole, requireActorRole } from "../api/services/auth";
import {
  createWebhook,
  deleteWebhook,
  deliveryJson,
  getWebhook,
  getWebhookDelivery,
  listWebhookDeliveries,
  listWebhooks,
  redeliverWebhookDelivery,
  rotateWebhookSecret,
  sendTestWebhook,
  updateWebhook,
  webhookJson,
} from "../api/services/webhooks";
import {
  checkbox,
  field,
  fieldErrors,
  fieldId,
  formErrors,
  one,
  postedVersion,
  readForm,
  select,
  versionField,
  type PostedForm,
} from "./forms";
import { confirmSignedInToken, loadProject, projectNav, when } from "./settings-pages";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  sendPage,
  type AdminContext,
  type AdminEnv,
  type Html,
} from "./ui";

/** Deliveries per page of the log. */
const DELIVERY_PAGE_SIZE = 50;

const actorOf = (c: AdminContext): Actor => c.get("actor");

interface Refused {
  error: ApiError;
  form: PostedForm;
}

const webhookPath = (id: string) => `${ADMIN_BASE_PATH}/webhooks/${encodeURIComponent(id)}`;
const deliveryPath = (id: string) =>
  `${ADMIN_BASE_PATH}/webhook-deliveries/${encodeURIComponent(id)}`;
const projectWebhooksPath = (projectId: string) =>
  `${ADMIN_BASE_PATH}/projects/${encodeURIComponent(projectId)}/webhooks`;

/** The API body of a webhook form. */
function webhookBody(form: PostedForm): Record<string, unknown> {
  const events = form.get("events") ?? [];
  return {
    name: one(form, "name"),
    url: one(form, "url"),
    format: one(form, "format") || "json",
    events,
    environments: form.get("environments") ?? [],
    enabled: one(form, "enabled") === "on",
  };
}

/** The fields of the new and change forms, filled from `current` or from what was posted. */
function webhookFields(
  environments: readonly string[],
  current: WebhookJson | null,
  refused: Refused | null,
): Html {
  const problems = fieldErrors(refused?.error ?? null);
  const posted = refused ? webhookBody(refused.form) : null;
  const value = (name: "name" | "url" | "format"): string =>
    posted ? String(posted[name] ?? "") : (current?.[name] ?? (name === "format" ? "json" : ""));
  const events = new Set(
    (posted?.["events"] as string[] | undefined) ?? current?.events ?? ["experiment.started"],
  );
  const chosenEnvironments = new Set(
    (posted?.["environments"] as string[] | undefined) ?? current?.environments ?? [],
  );
  const enabled = posted ? posted["enabled"] === true : (current?.enabled ?? true);
  const problemOf = (prefix: string) =>
    [...problems].find(([path]) => path === prefix || path.startsWith(`${prefix}.`))?.[1];
  return html`${field({
    name: "name",
    label: "Name",
    value: value("name"),
    error: problems.get("name"),
    required: true,
  })}
  ${field({
    name: "url",
    label: "URL",
    type: "url",
    value: value("url"),
    error: problems.get("url"),
    required: true,
    hint: "https (http only for localhost). Deliveries are POSTed here, signed (docs/webhooks.md).",
  })}
  ${select({
    name: "format",
    label: "Format",
    value: value("format"),
    error: problems.get("format"),
    options: [
      { value: "json", label: "JSON: the signed Splitstream event" },
      { value: "slack", label: 'Slack: {"text": …} for Slack-compatible incoming webhooks' },
    ],
  })}
  ${choiceGroup({
    name: "events",
    legend: "Events",
    error: problemOf("events"),
    choices: [
      { value: "*", label: "All events", checked: events.has("*") },
      ...WEBHOOK_EVENT_TYPES.map((type) => ({
        value: type,
        label: type,
        checked: events.has(type),
      })),
    ],
  })}
  ${choiceGroup({
    name: "environments",
    legend: "Environments",
    hint: "None chosen: every environment.",
    error: problemOf("environments"),
    choices: environments.map((key) => ({
      value: key,
      label: key,
      checked: chosenEnvironments.has(key),
    })),
  })}
  ${checkbox({ name: "enabled", label: "Enabled", checked: enabled })}`;
}

/**
 * A group of checkboxes posting several values under one name (`events`, `environments`), in a
 * fieldset whose legend names it. Each box's id names its value: forms.ts `checkbox()` derives the
 * id from the name alone, so in a group every label would point at the first box and the others
 * would have no accessible name. The fieldset takes the name's own id (`f-events`), where the
 * form's error summary links; its hint and problem describe the group.
 */
function choiceGroup(options: {
  name: string;
  legend: string;
  hint?: string;
  error: string | undefined;
  choices: ReadonlyArray<{ value: string; label: string; checked: boolean }>;
}): Html {
  const id = fieldId(options.name);
  const described = [options.hint ? `${id}-hint` : "", options.error ? `${id}-error` : ""]
    .filter(Boolean)
    .join(" ");
  return html`<fieldset
    id="${id}"
    data-field="${options.name}"
    ${described ? html`aria-describedby="${described}"` : ""}
  >
    <legend>${options.legend}</legend>
    ${options.hint ? html`<p class="muted" id="${id}-hint">${options.hint}</p>` : ""}
    ${options.error ? html`<p class="field-error" id="${id}-error">${options.error}</p>` : ""}
    ${options.choices.map((choice) => {
      const boxId = fieldId(`${options.name}.${choice.value === "*" ? "all" : choice.value}`);
      return html`<p class="field check">
        <input
          id="${boxId}"
          type="checkbox"
          name="${options.name}"
          value="${choice.value}"
          ${choice.checked ? html`checked` : ""}
        />
        <label for="${boxId}">${choice.label}</label>
      </p>`;
    })}
  </fieldset>`;
}

/**
 * The "your own API token, to confirm" field. A webhook's page has it in three forms (change,
 * rotate, delete): each but the change form's (where the error summary links, `#f-confirmToken`)
 * gets its own id, so that each label names its own field and no id is on the page twice.
 */
function confirmField(error: string | undefined, form: "rotate" | "delete" | null = null): Html {
  const id = form === null ? fieldId("confirmToken") : fieldId(`confirmToken-${form}`);
  const described = [`${id}-hint`, error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return html`<p class="field${error ? " invalid" : ""}">
    <label for="${id}">Your own API token, to confirm</label>
    <input
      id="${id}"
      name="confirmToken"
      type="password"
      value=""
      required
      ${error ? html`aria-invalid="true"` : ""}
      aria-describedby="${described}"
    />
    <span class="hint" id="${id}-hint"
      >So that a script running on your site cannot do this in your name.</span
    >${error ? html`<span class="field-error" id="${id}-error">${error}</span>` : ""}
  </p>`;
}

function deliveryStatus(d: WebhookDeliveryJson): Html {
  const code = d.lastStatusCode === null ? "" : ` (${d.lastStatusCode})`;
  return html`<span data-status="${d.status}">${d.status}${code}</span>`;
}

async function webhooksPage(
  c: AdminContext,
  projectId: string,
  refused: Refused | null,
  status = 200,
): Promise<Response> {
  const found = await loadProject(c, projectId);
  if (!found.ok) return found.response;
  const { project, environments } = found.value;
  const actor = actorOf(c);
  const nav = projectNav(project.id, actor);
  if (!hasRole(actor.role, "admin"))
    return sendPage(
      c,
      `Webhooks · ${project.name}`,
      html`${nav}
        <h1>Webhooks: ${project.name}</h1>
        ${refused ? errorBlock(refused.error) : ""}
        <p class="muted" data-read-only>
          Webhooks need role admin; this token has role ${actor.role}.
        </p>`,
      refused ? status : 403,
    );
  const list = await attempt(() =>
    listWebhooks(c.env, actor, project.id, () => ({ limit: 200, cursor: null })),
  );
  if (!list.ok) return sendPage(c, "Webhooks", errorBlock(list.error), list.error.status);
  const hooks = list.value.items.map(webhookJson);
  const problems = fieldErrors(refused?.error ?? null);
  return sendPage(
    c,
    `Webhooks · ${project.name}`,
    html`${nav}
      <h1>Webhooks: ${project.name}</h1>
      ${c.req.query("notice") ? html`<p class="warning" role="status">${c.req.query("notice")}</p>` : ""}
      <p class="muted">
        Each webhook gets the events it subscribes to, signed with its secret and retried with
        backoff (docs/webhooks.md; <code>GET /projects/{projectId}/webhooks</code>).
      </p>
      ${
        hooks.length === 0
          ? html`<p>No webhooks yet.</p>`
          : html`<table data-list="webhooks">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">URL</th>
                  <th scope="col">Format</th>
                  <th scope="col">Events</th>
                  <th scope="col">Environments</th>
                  <th scope="col">Enabled</th>
                </tr>
              </thead>
              <tbody>
                ${hooks.map(
                  (h) =>
                    html`<tr data-webhook="${h.id}">
                      <th scope="row"><a href="${webhookPath(h.id)}">${h.name}</a></th>
                      <td><code>${h.url}</code></td>
                      <td>${h.format}</td>
                      <td>${h.events.join(", ")}</td>
                      <td>${h.environments.length === 0 ? "all" : h.environments.join(", ")}</td>
                      <td>${h.enabled ? "yes" : "no"}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>New webhook</h2>
      ${formErrors(refused?.error ?? null)}
      <form method="post" action="${projectWebhooksPath(project.id)}" data-form="new-webhook">
        ${webhookFields(
          environments.map((e) => e.key),
          null,
          refused,
        )}
        ${confirmField(problems.get("confirmToken"))}
        <button type="submit">Create webhook</button>
      </form>`,
    status,
  );
}

/** The answer to a created webhook or a rotated secret: the secret, this once. */
function secretPage(c: AdminContext, hook: WebhookJson, secret: string, rotated: boolean) {
  return sendPage(
    c,
    rotated ? "Secret rotated" : "Webhook created",
    html`<p><a href="${webhookPath(hook.id)}">← ${hook.name}</a></p>
      <h1>${rotated ? "New signing secret" : "Webhook created"}: ${hook.name}</h1>
      <p class="warning" role="alert">
        Copy the signing secret now: it is shown only on this page. Your receiver verifies each
        delivery's <code>x-splitstream-signature</code> with it (docs/webhooks.md "Verifying a
        delivery").${rotated ? " The old secret no longer signs anything." : ""}
      </p>
      <p class="field">
        <label for="webhook-secret">Signing secret</label>
        <input id="webhook-secret" type="text" readonly value="${secret}" data-secret />
      </p>`,
  );
}

type WebhookRefusal = { form: "change" | "rotate" | "delete" | "test"; refused: Refused } | null;

async function webhookPage(
  c: AdminContext,
  id: string,
  refusal: WebhookRefusal,
  status = 200,
): Promise<Response> {
  const actor = actorOf(c);
  const found = await attempt(() => getWebhook(c.env, actor, id));
  if (!found.ok) return sendPage(c, "Webhook", errorBlock(found.error), found.error.status);
  const hook = webhookJson(found.value);
  const project = await loadProject(c, hook.projectId);
  if (!project.ok) return project.response;
  const after = c.req.query("after");
  const log = await attempt(() =>
    listWebhookDeliveries(c.env, actor, id, () => ({
      limit: DELIVERY_PAGE_SIZE,
      cursor: after && after.includes("|") ? after : null,
    })),
  );
  const problemsOf = (form: string) =>
    refusal?.form === form ? fieldErrors(refusal.refused.error) : new Map<string, string>();
  const notice = c.req.query("notice");
  return sendPage(
    c,
    `Webhook · ${hook.name}`,
    html`${projectNav(hook.projectId, actor)}
      <p><a href="${projectWebhooksPath(hook.projectId)}">← Webhooks</a></p>
      <h1>Webhook: ${hook.name}</h1>
      ${notice ? html`<p class="warning" role="status">${notice}</p>` : ""}
      ${
        refusal && refusal.form !== "change" && fieldErrors(refusal.refused.error).size === 0
          ? errorBlock(refusal.refused.error)
          : ""
      }
      <p>
        <code>${hook.url}</code> · ${hook.format} · ${hook.enabled ? "enabled" : "disabled"} ·
        created ${when(hook.createdAt)}
      </p>
      <form method="post" action="${webhookPath(hook.id)}/test" data-form="test-webhook">
        <button type="submit">Send a test delivery</button>
      </form>

      <h2>Delivery log</h2>
      ${
        !log.ok
          ? errorBlock(log.error)
          : log.value.items.length === 0
            ? html`<p>No deliveries yet.</p>`
            : html`<table data-list="deliveries">
                  <thead>
                    <tr>
                      <th scope="col">Created</th>
                      <th scope="col">Event</th>
                      <th scope="col">Status</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Next attempt</th>
                      <th scope="col">Last error</th>
                      <th scope="col">Redelivery of</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${log.value.items.map(deliveryJson).map(
                      (d) =>
                        html`<tr data-delivery="${d.id}">
                          <td><a href="${deliveryPath(d.id)}">${when(d.createdAt)}</a></td>
                          <td>${d.eventType}</td>
                          <td>${deliveryStatus(d)}</td>
                          <td>${d.attempts}</td>
                          <td>${when(d.nextAttemptAt)}</td>
                          <td>${d.lastError ?? ""}</td>
                          <td>
                            ${
                              d.redeliveryOf
                                ? html`<a
                                    href="${deliveryPath(d.redeliveryOf)}"
                                    data-redelivery-of="${d.redeliveryOf}"
                                    >${d.redeliveryOf.slice(0, 8)}…</a
                                  >`
                                : ""
                            }
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>
                ${
                  log.value.after
                    ? html`<p>
                        <a href="?after=${encodeURIComponent(log.value.after)}">Older deliveries</a>
                      </p>`
                    : ""
                }`
      }

      <h2>Change</h2>
      ${refusal?.form === "change" ? formErrors(refusal.refused.error) : ""}
      <form method="post" action="${webhookPath(hook.id)}" data-form="change-webhook">
        ${versionField(hook.version)}
        ${webhookFields(
          project.value.environments.map((e) => e.key),
          hook,
          refusal?.form === "change" ? refusal.refused : null,
        )}
        ${confirmField(problemsOf("change").get("confirmToken"))}
        <button type="submit">Save</button>
      </form>

      <h2>Rotate the signing secret</h2>
      <form method="post" action="${webhookPath(hook.id)}/rotate" data-form="rotate-webhook">
        ${versionField(hook.version)}
        ${confirmField(problemsOf("rotate").get("confirmToken"), "rotate")}
        <button type="submit">Rotate secret</button>
      </form>

      <h2>Delete</h2>
      <form method="post" action="${webhookPath(hook.id)}/delete" data-form="delete-webhook">
        ${versionField(hook.version)}
        ${confirmField(problemsOf("delete").get("confirmToken"), "delete")}
        <button type="submit">Delete webhook and its log</button>
      </form>`,
    status,
  );
}

/**
 * A delivery's page; `refused`: the redeliver form's refusal, shown above the form (with the
 * refusal's status).
 */
async function deliveryPage(
  c: AdminContext,
  id: string,
  refused: ApiError | null = null,
): Promise<Response> {
  const actor = actorOf(c);
  const found = await attempt(() => getWebhookDelivery(c.env, actor, id));
  if (!found.ok) return sendPage(c, "Delivery", errorBlock(found.error), found.error.status);
  const d = found.value;
  const notice = c.req.query("notice");
  const problems = fieldErrors(refused);
  let body = d.body;
  try {
    body = JSON.stringify(JSON.parse(d.body), null, 2);
  } catch {
    // Shown as stored.
  }
  return sendPage(
    c,
    `Delivery · ${d.eventType}`,
    html`<p><a href="${webhookPath(d.webhookId)}">← Webhook</a></p>
      <h1>Delivery: ${d.eventType}</h1>
      ${notice ? html`<p class="warning" role="status">${notice}</p>` : ""}
      <p>
        <code>${d.id}</code> · ${deliveryStatus(d)} · ${d.attempts} attempt(s) · created
        ${when(d.createdAt)}${d.nextAttemptAt ? html` · next attempt ${when(d.nextAttemptAt)}` : ""}
      </p>
      ${
        d.redeliveryOf
          ? html`<p data-redelivery-of="${d.redeliveryOf}">
              Redelivery of <a href="${deliveryPath(d.redeliveryOf)}">${d.redeliveryOf}</a>
            </p>`
          : ""
      }
      ${
        d.redeliveries.length > 0
          ? html`<p>Redelivered as:</p>
              <ul data-list="redeliveries">
                ${d.redeliveries.map(
                  (r) =>
                    html`<li data-redelivery="${r.id}">
                      <a href="${deliveryPath(r.id)}">${r.id}</a> · ${r.status} ·
                      ${when(r.createdAt)}
                    </li>`,
                )}
              </ul>`
          : ""
      }
      <h2>Redeliver</h2>
      ${formErrors(refused)}
      ${
        d.status === "pending"
          ? html`<p class="muted">
              Still being tried: it can be redelivered once it has finished.
            </p>`
          : html`<p class="muted">
                A new delivery of the body below to the webhook's URL, signed with its current
                secret and a fresh timestamp (docs/webhooks.md "Redelivering").
              </p>
              <form method="post" action="${deliveryPath(d.id)}/redeliver" data-form="redeliver">
                ${confirmField(problems.get("confirmToken"))}
                <button type="submit">Redeliver</button>
              </form>`
      }
      <h2>Attempts</h2>
      ${
        d.attemptLog.length === 0
          ? html`<p>Not attempted yet.</p>`
          : html`<table data-list="attempts">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">At</th>
                  <th scope="col">Response code</th>
                  <th scope="col">Duration</th>
                  <th scope="col">Error</th>
                  <th scope="col">Response</th>
                </tr>
              </thead>
              <tbody>
                ${d.attemptLog.map(
                  (a) =>
                    html`<tr data-attempt="${a.attempt}">
                      <td>${a.attempt}</td>
                      <td>${when(a.at)}</td>
                      <td>${a.statusCode ?? "no response"}</td>
                      <td>${a.durationMs} ms</td>
                      <td>${a.error ?? ""}</td>
                      <td><code>${a.response ?? ""}</code></td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>Body</h2>
      <pre data-body>${body}</pre>`,
    refused ? refused.status : 200,
  );
}

/**
 * Registers `/projects/:id/webhooks` (list and create), `/webhooks/:id` (page and change, with
 * `/test`, `/rotate`, `/delete`) and `/webhook-deliveries/:id` (with `/redeliver`;
 * docs/webhooks.md).
 */
export function registerWebhookPages(app: Hono<AdminEnv>): void {
  app.get("/projects/:id/webhooks", (c) => webhooksPage(c, c.req.param("id"), null));

  app.post("/projects/:id/webhooks", async (c) => {
    const projectId = c.req.param("id");
    const form = await readForm(c);
    const created = await attempt(async () => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return createWebhook(
        c.env,
        actor,
        projectId,
        parseBody(WebhookCreateSchema, webhookBody(form)),
      );
    });
    if (!created.ok)
      return webhooksPage(c, projectId, { error: created.error, form }, created.error.status);
    // The secret is in this answer only (no redirect; the page is no-store).
    return secretPage(c, webhookJson(created.value.row), created.value.secret, false);
  });

  app.get("/webhooks/:id", (c) => webhookPage(c, c.req.param("id"), null));

  app.post("/webhooks/:id", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const updated = await attempt(async () => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return updateWebhook(
        c.env,
        actor,
        id,
        parseBody(WebhookUpdateSchema, webhookBody(form)),
        postedVersion(form),
      );
    });
    if (updated.ok) return c.redirect(`${webhookPath(id)}?notice=Saved.`, 303);
    return webhookPage(
      c,
      id,
      { form: "change", refused: { error: updated.error, form } },
      updated.error.status,
    );
  });

  app.post("/webhooks/:id/test", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const sent = await attempt(() => sendTestWebhook(c.env, actorOf(c), id));
    if (sent.ok)
      return c.redirect(
        `${webhookPath(id)}?notice=${encodeURIComponent("Test delivery queued: it shows in the log below.")}`,
        303,
      );
    return webhookPage(
      c,
      id,
      { form: "test", refused: { error: sent.error, form } },
      sent.error.status,
    );
  });

  app.post("/webhooks/:id/rotate", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const rotated = await attempt(async () => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return rotateWebhookSecret(c.env, actor, id, postedVersion(form));
    });
    if (!rotated.ok)
      return webhookPage(
        c,
        id,
        { form: "rotate", refused: { error: rotated.error, form } },
        rotated.error.status,
      );
    return secretPage(c, webhookJson(rotated.value.row), rotated.value.secret, true);
  });

  app.post("/webhooks/:id/delete", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const actor = actorOf(c);
    const before = await attempt(() => getWebhook(c.env, actor, id));
    const deleted = await attempt(async () => {
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return deleteWebhook(c.env, actor, id, postedVersion(form));
    });
    if (deleted.ok && before.ok)
      return c.redirect(
        `${projectWebhooksPath(before.value.project_id)}?notice=${encodeURIComponent("Webhook deleted.")}`,
        303,
      );
    if (deleted.ok) return c.redirect(ADMIN_BASE_PATH, 303);
    return webhookPage(
      c,
      id,
      { form: "delete", refused: { error: deleted.error, form } },
      deleted.error.status,
    );
  });

  app.get("/webhook-deliveries/:id", (c) => deliveryPage(c, c.req.param("id")));

  app.post("/webhook-deliveries/:id/redeliver", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const sent = await attempt(async () => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      await confirmSignedInToken(c, one(form, "confirmToken"));
      return redeliverWebhookDelivery(c.env, actor, id);
    });
    if (sent.ok)
      return c.redirect(
        `${deliveryPath(sent.value.id)}?notice=${encodeURIComponent("Redelivery queued: its attempts show below.")}`,
        303,
      );
    return deliveryPage(c, id, sent.error);
  });
}
