/**
 * Approvals in the admin (docs/approvals.md, docs/admin.md "Reviews"): a project's Reviews page
 * (pending change requests with what each would change, approve / reject / withdraw forms), the
 * "pending review" notice of an experiment page, and an environment's review setting. The
 * decisions are the API's services (src/api/services/change-requests.ts), so the rules are the
 * same: never one's own approval, stale requests refused, every decision audited. POSTs pass the
 * admin's same-origin check (src/admin/app.ts) like every form.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import type { ChangeRequestJson } from "../api/schemas/change-requests";
import { ChangeRequestDecisionSchema } from "../api/schemas/change-requests";
import { EnvironmentUpdateSchema } from "../api/schemas/environments";
import { parseBody } from "../api/schemas/validation-error";
import { hasRole, requireActorRole } from "../api/services/auth";
import {
  approveChangeRequest,
  getChangeRequest,
  listProjectChangeRequests,
  parseChangeRequestCursor,
  rejectChangeRequest,
  withdrawChangeRequest,
} from "../api/services/change-requests";
import { getEnvironment, updateEnvironment } from "../api/services/environments";
import { experimentResource } from "../api/services/experiments";
import { getProject } from "../api/services/projects";
import { getResource } from "../api/services/resources";
import type { Env } from "../env";
import { one, postedVersion, readForm } from "./forms";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  sendPage,
  type AdminContext,
  type AdminEnv,
  type ExperimentJson,
  type Html,
} from "./ui";

const enc = encodeURIComponent;
const actorOf = (c: AdminContext): Actor => c.get("actor");

/** The project's Reviews page. */
export function reviewsPath(projectId: string): string {
  return `${ADMIN_BASE_PATH}/projects/${enc(projectId)}/reviews`;
}

/** A value as short JSON for the change summary (long values cut). */
function shortJson(value: unknown): string {
  const text = value === undefined ? "–" : JSON.stringify(value);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * What a request would change: for an update, each field sent with its current and requested
 * value; for an action, the action and the environment.
 */
export function changeSummary(request: ChangeRequestJson, current: ExperimentJson | null): Html {
  if (request.kind !== "update")
    return html`<p data-change="${request.kind}">
      <strong>${request.kind}</strong> in
      <code>${String(request.payload.environment ?? request.environments.join(", "))}</code>
    </p>`;
  const now = (current ?? {}) as Record<string, unknown>;
  // A form sends every field; the ones equal to the current value change nothing: leave them out.
  const fields = Object.entries(request.payload);
  const changed = fields.filter(([field, value]) => !sameValue(now[field], value));
  const unchanged = fields.length - changed.length;
  return html`<table data-change="update">
      <thead>
        <tr>
          <th scope="col">Field</th>
          <th scope="col">Now</th>
          <th scope="col">Requested</th>
        </tr>
      </thead>
      <tbody>
        ${changed.map(
          ([field, value]) =>
            html`<tr data-field="${field}">
              <th scope="row">${field}</th>
              <td><code>${shortJson(now[field])}</code></td>
              <td><code>${shortJson(value)}</code></td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${
      unchanged > 0
        ? html`<p class="muted" data-unchanged="${unchanged}">
            ${unchanged} more field${unchanged === 1 ? "" : "s"} sent as they are now.
          </p>`
        : ""
    }`;
}

/**
 * Whether a requested value equals the current one as far as a reviewer can tell: the same JSON,
 * or for lists of objects (variations, metrics) the same fields where the request has them (the
 * current ones carry ids and defaults the form does not send).
 */
function sameValue(current: unknown, requested: unknown): boolean {
  if (JSON.stringify(current) === JSON.stringify(requested)) return true;
  if (Array.isArray(current) && Array.isArray(requested) && current.length === requested.length)
    return requested.every((r, i) => sameValue(current[i], r));
  if (isObject(current) && isObject(requested))
    return Object.entries(requested).every(([k, v]) => sameValue(current[k], v));
  return false;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The approve / reject / withdraw forms the actor may use on a pending request. */
function decisionForms(request: ChangeRequestJson, actor: Actor, view: ReviewsView): Html {
  if (request.status !== "pending" || !hasRole(actor.role, "editor")) return html``;
  const base = `${ADMIN_BASE_PATH}/change-requests/${enc(request.id)}`;
  // The page's view, so the answer comes back to it.
  const back = html`${view.all ? html`<input type="hidden" name="status" value="all" />` : ""}
  ${view.experimentId === undefined ? "" : html`<input type="hidden" name="experiment" value="${view.experimentId}" />`}`;
  if (request.requestedBy === actor.id)
    return html`<form method="post" action="${base}/withdraw" class="row">
      ${back}
      <span class="muted">Your request: another editor or an admin reviews it.</span>
      <button type="submit" data-decision="withdraw">Withdraw</button>
    </form>`;
  return html`<form method="post" action="${base}/approve" class="row">
      ${back}
      <label
        >Approval comment <input name="comment" maxlength="2000" data-comment="approve" /></label
      ><button type="submit" data-decision="approve" ${request.stale ? html`disabled` : ""}>
        Approve and apply
      </button>
    </form>
    <form method="post" action="${base}/reject" class="row">
      ${back}
      <label
        >Rejection comment <input name="comment" maxlength="2000" data-comment="reject" /></label
      ><button type="submit" data-decision="reject">Reject</button>
    </form>`;
}

/** One request as a section of the Reviews page. */
async function requestBlock(
  env: Env,
  actor: Actor,
  request: ChangeRequestJson,
  view: ReviewsView,
): Promise<Html> {
  const current = await attempt(() =>
    getResource(env, actor, experimentResource, request.experimentId),
  );
  const experiment = current.ok ? current.value.json : null;
  return html`<section data-change-request="${request.id}" data-status="${request.status}">
    <h2>
      <a href="${ADMIN_BASE_PATH}/experiments/${enc(request.experimentId)}"
        >${experiment?.name || request.experimentKey || request.experimentId}</a
      >
      <span class="badge">${request.kind}</span>
      <span class="badge">${request.status}</span>
    </h2>
    <p class="muted">
      Requested by ${request.requestedByName || request.requestedBy} at ${request.createdAt} ·
      review needed in ${request.environments.join(", ")} · based on version ${request.baseVersion}
      ${
        request.decidedBy
          ? html` · ${request.status} by ${request.decidedByName || request.decidedBy} at
            ${request.decidedAt ?? ""}${request.comment ? html`: “${request.comment}”` : ""}`
          : ""
      }
    </p>
    ${
      request.status === "pending" && request.stale
        ? html`<p class="warning" data-stale>
            The experiment changed since this request: it can no longer be approved. Reject or
            withdraw it; the requester re-submits the change.
          </p>`
        : ""
    }
    ${changeSummary(request, experiment)} ${decisionForms(request, actor, view)}
  </section>`;
}

/**
 * The "pending review" notice of an experiment page: its pending requests, with a link to the
 * Reviews page; empty when there are none.
 */
export async function pendingReviewNotice(
  env: Env,
  actor: Actor,
  experiment: ExperimentJson,
): Promise<Html> {
  const pending = await attempt(() =>
    listProjectChangeRequests(
      env,
      actor,
      experiment.projectId,
      { status: "pending", experimentId: experiment.id },
      { limit: 20, cursor: null },
    ),
  );
  if (!pending.ok || pending.value.items.length === 0) return html``;
  const items = pending.value.items;
  return html`<p class="warning" role="status" data-pending-review="${items.length}">
    <strong>Pending review:</strong>
    ${items.map(
      (r, i) =>
        html`${i > 0 ? "; " : ""}${r.kind === "update" ? `change of ${Object.keys(r.payload).join(", ")}` : `${r.kind} in ${r.environments.join(", ")}`}
        by ${r.requestedByName || r.requestedBy}`,
    )}.
    <a href="${reviewsPath(experiment.projectId)}?experiment=${enc(experiment.id)}">Review</a>
  </p>`;
}

/** What a Reviews page shows: decided requests too, and/or one experiment's. */
interface ReviewsView {
  all: boolean;
  experimentId: string | undefined;
}

/**
 * The view `?status=all` and `?experiment=` ask for (query or posted form). An experiment id is
 * any the API may hold (imported datafiles keep theirs: not only digits), without control
 * characters; anything else shows every experiment's requests.
 */
function reviewsViewOf(read: (name: string) => string | undefined): ReviewsView {
  const experiment = read("experiment") ?? "";
  return {
    all: read("status") === "all",
    // eslint-disable-next-line no-control-regex -- control characters are what it refuses
    experimentId: /^[^\u0000-\u001f\u007f]{1,128}$/.test(experiment) ? experiment : undefined,
  };
}

/** The query of `view` with `more` (`status: ""` drops the status), for links and redirects. */
function reviewsQuery(view: ReviewsView, more: Record<string, string>): string {
  const params = new URLSearchParams({
    ...(view.all ? { status: "all" } : {}),
    ...(view.experimentId !== undefined ? { experiment: view.experimentId } : {}),
    ...more,
  });
  if (params.get("status") === "") params.delete("status");
  return `?${params.toString()}`;
}

/** Requests per Reviews page (each shows its change and the decision forms). */
export const REVIEWS_PAGE_SIZE = 50;

/** Registers the Reviews page, the decision forms and the environment's review setting. */
export function registerReviewPages(app: Hono<AdminEnv>): void {
  app.get("/projects/:id/reviews", async (c) => {
    const actor = actorOf(c);
    const id = c.req.param("id");
    const view = reviewsViewOf((name) => c.req.query(name));
    const { all, experimentId } = view;
    const project = await attempt(() => getProject(c.env, actor, id));
    if (!project.ok) return sendPage(c, "Reviews", errorBlock(project.error), project.error.status);
    // Pages of REVIEWS_PAGE_SIZE, newest first, as the API pages them (`after` = where the last
    // page ended); a cursor that is not one shows the first page.
    const after = c.req.query("after") ?? "";
    const cursor = parseChangeRequestCursor(after) === null ? null : after;
    const list = await attempt(() =>
      listProjectChangeRequests(
        c.env,
        actor,
        id,
        { ...(all ? {} : { status: "pending" as const }), experimentId },
        { limit: REVIEWS_PAGE_SIZE, cursor },
      ),
    );
    if (!list.ok) return sendPage(c, "Reviews", errorBlock(list.error), list.error.status);
    const items = list.value.items;
    const query = (more: Record<string, string>) => reviewsQuery(view, more);
    const pager = html`<p class="row" data-pager>
      ${cursor !== null ? html`<a href="${query({})}">First page</a>` : ""}
      ${
        list.value.after !== null
          ? html`<a href="${query({ after: list.value.after })}" rel="next">Next page</a>`
          : ""
      }
    </p>`;
    const reviewed = project.value.environments.filter((e) => e.require_review === 1);
    const notice = c.req.query("notice");
    const blocks = await Promise.all(items.map((r) => requestBlock(c.env, actor, r, view)));
    return sendPage(
      c,
      `Reviews · ${project.value.project.name}`,
      html`<p><a href="${ADMIN_BASE_PATH}/projects/${enc(id)}">← Experiments</a></p>
        <h1>Reviews</h1>
        ${notice ? html`<p class="warning" role="status">${notice}</p>` : ""}
        <p class="muted">
          ${
            reviewed.length === 0
              ? "No environment of this project requires review (an admin turns it on in the environment's settings)."
              : `Review required in: ${reviewed.map((e) => e.key).join(", ")}. Editors' changes to experiments live there, and their start or resume there, wait here for another editor or an admin.`
          }
          ${
            all
              ? html`<a href="${query({ status: "" })}">Pending only</a>`
              : html`<a href="${query({ status: "all" })}">All requests</a>`
          }
        </p>
        ${
          experimentId
            ? html`<p data-experiment-filter="${experimentId}">
                Requests for one experiment only.
                <a href="?${all ? "status=all" : ""}">All experiments</a>
              </p>`
            : ""
        }
        ${
          blocks.length === 0
            ? html`<p data-empty>${all ? "No change requests." : "Nothing waits for review."}</p>`
            : blocks
        }
        ${cursor !== null || list.value.after !== null ? pager : ""}`,
    );
  });

  app.post("/change-requests/:id/:decision{approve|reject|withdraw}", async (c) => {
    const actor = actorOf(c);
    const id = c.req.param("id");
    const decision = c.req.param("decision") as "approve" | "reject" | "withdraw";
    const form = await readForm(c);
    const comment = one(form, "comment").trim();
    const result = await attempt(async () => {
      requireActorRole(actor, "editor");
      const body = parseBody(ChangeRequestDecisionSchema, comment === "" ? {} : { comment });
      if (decision === "approve")
        return (await approveChangeRequest(c.env, actor, id, body)).changeRequest;
      if (decision === "reject") return rejectChangeRequest(c.env, actor, id, body);
      return withdrawChangeRequest(c.env, actor, id, body);
    });
    if (!result.ok) {
      const request = await attempt(() => getChangeRequest(c.env, actor, id));
      return sendPage(
        c,
        "Review",
        html`${errorBlock(result.error)}
          <p>
            <a href="${request.ok ? reviewsPath(request.value.projectId) : ADMIN_BASE_PATH}"
              >Back to the reviews</a
            >
          </p>`,
        result.error.status,
      );
    }
    const done = { approve: "approved and applied", reject: "rejected", withdraw: "withdrawn" }[
      decision
    ];
    // Back to the page the form was on (its status and experiment filter).
    const view = reviewsViewOf((name) => form.get(name)?.[0]);
    return c.redirect(
      `${reviewsPath(result.value.projectId)}${reviewsQuery(view, { notice: `Change request ${id} ${done}.` })}`,
      303,
    );
  });

  app.post("/environments/:id/review", async (c) => {
    const actor = actorOf(c);
    const id = c.req.param("id");
    const form = await readForm(c);
    const updated = await attempt(() => {
      requireActorRole(actor, "admin");
      const body = parseBody(EnvironmentUpdateSchema, {
        requireReview: one(form, "requireReview") === "on",
      });
      return updateEnvironment(c.env, actor, id, body, postedVersion(form));
    });
    if (!updated.ok) {
      const environment = await attempt(() => getEnvironment(c.env, actor, id));
      return sendPage(
        c,
        "Environment",
        html`${errorBlock(updated.error)}
        ${
          environment.ok
            ? html`<p>
                <a href="${ADMIN_BASE_PATH}/environments/${enc(id)}">Back to the environment</a>
              </p>`
            : ""
        }`,
        updated.error.status,
      );
    }
    const state =
      updated.value.require_review === 1 ? "requires review" : "no longer requires review";
    return c.redirect(
      `${ADMIN_BASE_PATH}/environments/${enc(id)}?notice=${enc(`Environment ${updated.value.key} ${state}.`)}`,
      303,
    );
  });
}
