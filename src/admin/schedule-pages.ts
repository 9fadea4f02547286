/**
 * Experiment schedules in the admin (docs/admin.md "Schedules", docs/schedules.md): the
 * experiment page's section listing each environment's schedule — the steps already run with
 * their outcome, and the pending ones — and, for editors, forms to add, change and remove pending
 * steps. Each form posts here; the handler rebuilds the schedule's pending steps with the change
 * and hands them to the API's own service (`replaceSchedule`), with the schedule version the page
 * was rendered from (a stale page answers the API's 409), so validation, roles and audit are the
 * API's. Times are entered and shown in UTC.
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { unprocessable } from "../api/errors";
import {
  SCHEDULE_ACTIONS,
  type ScheduleJson,
  type ScheduleStepInput,
} from "../api/schemas/schedules";
import { hasRole, requireActorRole } from "../api/services/auth";
import { getSchedule, listSchedules, replaceSchedule } from "../api/services/schedules";
import type { Env } from "../env";
import { one, readForm, type PostedForm } from "./forms";
import {
  ADMIN_BASE_PATH,
  attempt,
  errorBlock,
  type AdminContext,
  type AdminEnv,
  type Html,
} from "./ui";

const BASE = ADMIN_BASE_PATH;
const enc = encodeURIComponent;

/** `2026-12-24T08:00` (a datetime-local field, read as UTC) → `2026-12-24T08:00:00Z`. */
export function formTimeToUtc(value: string): string {
  const text = value.trim();
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/.test(text)
    ? `${text}${text.length === 16 ? ":00" : ""}Z`
    : text;
}

/** A step's time for a datetime-local field (minutes; the schedule runs per minute). */
const utcToFormTime = (iso: string) => iso.slice(0, 16);

/** A step as the form posts it: `at`, `action`, `percent` (traffic only). */
function stepFromForm(form: PostedForm): ScheduleStepInput {
  const action = one(form, "action") as ScheduleStepInput["action"];
  const percentText = one(form, "percent").trim();
  const step: ScheduleStepInput = { at: formTimeToUtc(one(form, "at")), action };
  if (action === "traffic") {
    const percent = Number(percentText);
    if (percentText === "" || !Number.isFinite(percent))
      throw unprocessable("a traffic step needs a percent (0–100)", [
        { path: "$.body.percent", message: "required for a traffic step (0–100)" },
      ]);
    step.percent = percent;
  }
  return step;
}

/**
 * The pending steps still to come, as the API takes them back (a due one is the run's: a write
 * keeps it without being sent it).
 */
function pendingInputs(
  schedule: ScheduleJson,
  now: string,
): Array<ScheduleStepInput & { id: string }> {
  return schedule.steps
    .filter((s) => s.status === "pending" && s.at > now)
    .map((s) => ({
      id: s.id,
      at: s.at,
      action: s.action,
      ...(s.percent === null ? {} : { percent: s.percent }),
    }));
}

const describeStep = (s: { action: string; percent: number | null }) =>
  s.action === "traffic" ? `traffic ${s.percent} %` : s.action;

function stepFields(step: { at: string; action: string; percent: number | null } | null): Html {
  return html`<label
      >At (UTC)
      <input type="datetime-local" name="at" required value="${step ? utcToFormTime(step.at) : ""}"
    /></label>
    <label
      >Action
      <select name="action">
        ${SCHEDULE_ACTIONS.map(
          (a) => html`<option value="${a}" ${step?.action === a ? "selected" : ""}>${a}</option>`,
        )}
      </select></label
    >
    <label
      >Traffic %
      <input
        type="number"
        name="percent"
        min="0"
        max="100"
        step="0.01"
        value="${step?.percent ?? ""}"
    /></label>`;
}

/** One environment's schedule: history, pending steps (forms for editors), the add form. */
function scheduleBlock(schedule: ScheduleJson, canEdit: boolean): Html {
  const path = `${BASE}/experiments/${enc(schedule.experimentId)}/schedules/${enc(schedule.environment)}/steps`;
  const version = html`<input type="hidden" name="version" value="${schedule.version}" />`;
  const history = schedule.steps.filter((s) => s.status !== "pending");
  const pending = schedule.steps.filter((s) => s.status === "pending");
  return html`<div data-schedule="${schedule.environment}">
    <h3 id="schedule-${schedule.environment}">${schedule.environment}</h3>
    ${schedule.steps.length === 0 ? html`<p class="muted">No steps.</p>` : ""}
    ${
      history.length === 0
        ? ""
        : html`<table data-schedule-history="${schedule.environment}">
            <thead>
              <tr>
                <th scope="col">At (UTC)</th>
                <th scope="col">Step</th>
                <th scope="col">Status</th>
                <th scope="col">Applied</th>
                <th scope="col" class="num">Revision</th>
                <th scope="col">Note</th>
              </tr>
            </thead>
            <tbody>
              ${history.map(
                (s) =>
                  html`<tr data-step="${s.id}" data-step-status="${s.status}">
                    <td>${s.at}</td>
                    <td>${describeStep(s)}</td>
                    <td><span class="badge ${s.status}">${s.status}</span></td>
                    <td>${s.appliedAt ?? "–"}</td>
                    <td class="num">${s.revision ?? "–"}</td>
                    <td>${s.error ?? ""}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${
      pending.length === 0
        ? ""
        : html`<table data-schedule-pending="${schedule.environment}">
            <thead>
              <tr>
                <th scope="col">Pending step</th>
                ${canEdit ? html`<th scope="col">Remove</th>` : ""}
              </tr>
            </thead>
            <tbody>
              ${pending.map(
                (s) =>
                  html`<tr data-step="${s.id}" data-step-status="pending">
                    <td>
                      ${
                        canEdit
                          ? html`<form method="post" action="${path}/${enc(s.id)}" class="row">
                              ${version} ${stepFields(s)}
                              <button type="submit" data-schedule-save="${s.id}">Save</button>
                            </form>`
                          : html`${s.at} · ${describeStep(s)}`
                      }
                    </td>
                    ${
                      canEdit
                        ? html`<td>
                            <form method="post" action="${path}/${enc(s.id)}/remove">
                              ${version}
                              <button type="submit" data-schedule-remove="${s.id}">Remove</button>
                            </form>
                          </td>`
                        : ""
                    }
                  </tr>`,
              )}
            </tbody>
          </table>`
    }
    ${
      canEdit
        ? html`<form
            method="post"
            action="${path}"
            class="row"
            data-schedule-add="${schedule.environment}"
          >
            ${version} ${stepFields(null)}
            <button type="submit">Add step</button>
          </form>`
        : ""
    }
  </div>`;
}

/**
 * The experiment page's schedule section: every environment's schedule (the API's read, as the
 * signed-in actor), with forms for editors.
 */
export async function scheduleSection(env: Env, actor: Actor, experimentId: string): Promise<Html> {
  const schedules = await attempt(() => listSchedules(env, actor, experimentId));
  return html`<section id="schedules">
    <h2>Schedule</h2>
    <p class="muted">
      Start, pause, resume, archive or change the traffic share at a set time (UTC). Checked every
      minute; each step runs once, as <em>schedule</em>, publishes and is audited. A traffic step
      changes the experiment's share in every environment.
    </p>
    ${
      schedules.ok
        ? schedules.value.map((s) => scheduleBlock(s, hasRole(actor.role, "editor")))
        : errorBlock(schedules.error)
    }
  </section>`;
}

type Change =
  { kind: "add" } | { kind: "edit"; stepId: string } | { kind: "remove"; stepId: string };

/** Registers the schedule forms' POST routes (src/admin/app.ts). */
export function registerSchedulePages(app: Hono<AdminEnv>): void {
  async function apply(c: AdminContext, change: Change): Promise<Response> {
    const id = c.req.param("id") ?? "";
    const environment = c.req.param("environment") ?? "";
    const form = await readForm(c);
    const result = await attempt(async () => {
      const actor = c.get("actor");
      requireActorRole(actor, "editor");
      const versionText = one(form, "version");
      const version = /^\d{1,15}$/.test(versionText) ? Number(versionText) : null;
      const current = await getSchedule(c.env, actor, id, environment);
      let steps = pendingInputs(current, new Date().toISOString());
      if (change.kind !== "add" && !steps.some((s) => s.id === change.stepId))
        throw unprocessable(
          "that step is no longer pending (its time has come, or the schedule changed)",
        );
      if (change.kind === "remove") steps = steps.filter((s) => s.id !== change.stepId);
      else {
        const posted = { id: "", ...stepFromForm(form) };
        steps =
          change.kind === "add"
            ? [...steps, posted]
            : steps.map((s) => (s.id === change.stepId ? posted : s));
      }
      // In time order (the API's rule), the order of equal times kept as listed.
      const ordered = steps
        .map((s, i) => ({ s, i, t: Date.parse(s.at) }))
        .sort((a, b) =>
          a.t === b.t || Number.isNaN(a.t) || Number.isNaN(b.t) ? a.i - b.i : a.t - b.t,
        )
        .map(({ s: { id: _id, ...step } }) => step);
      return replaceSchedule(c.env, actor, {
        experimentId: id,
        environment,
        steps: ordered,
        ifMatch: version,
      });
    });
    const notice = result.ok
      ? ""
      : `&notice=${enc(`Schedule not changed: ${result.error.message}`)}`;
    return c.redirect(
      `${BASE}/experiments/${enc(id)}?environment=${enc(environment)}${notice}#schedule-${enc(environment)}`,
      303,
    );
  }

  app.post("/experiments/:id/schedules/:environment/steps", (c) => apply(c, { kind: "add" }));
  app.post("/experiments/:id/schedules/:environment/steps/:stepId", (c) =>
    apply(c, { kind: "edit", stepId: c.req.param("stepId") }),
  );
  app.post("/experiments/:id/schedules/:environment/steps/:stepId/remove", (c) =>
    apply(c, { kind: "remove", stepId: c.req.param("stepId") }),
  );
}
