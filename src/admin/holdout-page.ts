/**
 * The admin's holdout page of an environment (docs/holdouts.md, docs/admin.md "Holdouts"): the
 * share and metrics form (role admin, through the same service as
 * `PUT /environments/{id}/holdout`, so roles, validation and messages are the API's) and the
 * results, holdout vs everyone else (any role).
 */
import type { Hono } from "hono";
import { html } from "hono/html";
import type { Actor } from "../api/context";
import { HoldoutUpdateSchema } from "../api/schemas/holdouts";
import { parseBody } from "../api/schemas/validation-error";
import { hasRole, requireActorRole } from "../api/services/auth";
import { DEFAULT_ANALYSIS_OPTIONS } from "../core/experiment-analysis";
import {
  loadHoldoutResults,
  type HoldoutCohort,
  type HoldoutResults,
} from "../api/services/holdout-results";
import {
  getHoldout,
  holdoutJson,
  holdoutMetricChoices,
  setHoldout,
} from "../api/services/holdouts";
import {
  field,
  fieldErrors,
  formErrors,
  postedVersion,
  readForm,
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
import type { ApiError } from "../api/errors";

const actorOf = (c: AdminContext): Actor => c.get("actor");
const pct = (x: number | null): string => (x === null ? "–" : `${(x * 100).toFixed(2)} %`);

/**
 * Which visitors the results count, the switch between the latest share and everyone, and the
 * share history (docs/holdouts.md "Share changes").
 */
function cohortBlock(results: HoldoutResults, pagePath: string): Html {
  const day = (iso: string) => iso.slice(0, 16).replace("T", " ");
  const counted =
    results.since === "all"
      ? html`<p data-cohort="all">
          Counting every visitor since the holdout was first set.
          <a href="${pagePath}">Count only the latest share's visitors</a>.
        </p>`
      : results.period === null
        ? html`<p data-cohort="share">Counting every visitor (no share was recorded yet).</p>`
        : html`<p data-cohort="share">
            Counting the visitors first exposed at ${results.period.percent} % (from revision
            ${results.period.fromRevision}, ${day(results.period.from)}
            UTC${
              results.period.toRevision === null ? "" : `, to revision ${results.period.toRevision}`
            }). <a href="${pagePath}?since=all">Count every visitor</a>.
          </p>`;
  const mixed = results.mixedShares
    ? html`<p class="warning" role="alert" data-mixed-shares>
        These visitors were decided under different shares: a visitor moved by a share change stays
        in the group of their first visit, so the comparison blurs the two groups.
      </p>`
    : "";
  const history =
    results.shares.length < 2
      ? ""
      : html`<details>
          <summary>Share history</summary>
          <table data-list="holdout-shares">
            <thead>
              <tr>
                <th scope="col">Share</th>
                <th scope="col">Revisions</th>
                <th scope="col">From (UTC)</th>
              </tr>
            </thead>
            <tbody>
              ${results.shares.map(
                (p) =>
                  html`<tr>
                    <td>${p.percent === null ? "unknown" : `${p.percent} %`}</td>
                    <td>${p.fromRevision}–${p.toRevision ?? "now"}</td>
                    <td>${day(p.from)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>
        </details>`;
  return html`${counted}${mixed}${history}`;
}

function resultsTable(results: HoldoutResults): Html {
  if (results.metrics.length === 0)
    return html`<p class="muted">No metrics chosen: pick events above to compare the groups.</p>`;
  return html`<table data-list="holdout-results">
    <thead>
      <tr>
        <th scope="col">Metric</th>
        <th scope="col">Group</th>
        <th scope="col">Visitors</th>
        <th scope="col">Converters</th>
        <th scope="col">Rate</th>
        <th scope="col">Lift (interval)</th>
        <th scope="col">p</th>
      </tr>
    </thead>
    <tbody>
      ${results.metrics.map(
        (m) =>
          html`<tr data-metric="${m.eventId}" data-group="everyone_else">
              <td>${m.eventKey ?? m.eventId}</td>
              <td>everyone else</td>
              <td>${m.everyoneElse.visitors}</td>
              <td>${m.everyoneElse.converters}</td>
              <td>${pct(m.everyoneElse.rate)}</td>
              <td>baseline</td>
              <td>–</td>
            </tr>
            <tr data-metric="${m.eventId}" data-group="holdout">
              <td>${m.eventKey ?? m.eventId}</td>
              <td>holdout</td>
              <td>${m.holdout.visitors}</td>
              <td>${m.holdout.converters}</td>
              <td>${pct(m.holdout.rate)}</td>
              <td>
                ${
                  m.lift === null
                    ? "–"
                    : `${pct(m.lift.estimate)} (${pct(m.lift.lower)} to ${pct(m.lift.upper)})`
                }
              </td>
              <td>${m.pValue === null ? "–" : m.pValue.toFixed(4)}</td>
            </tr>`,
      )}
    </tbody>
  </table>`;
}

async function holdoutPage(
  c: AdminContext,
  environmentId: string,
  refused: { error: ApiError; form: PostedForm } | null,
  since: HoldoutCohort = "share",
) {
  const actor = actorOf(c);
  const found = await attempt(() => getHoldout(c.env, actor, environmentId));
  if (!found.ok) return sendPage(c, "Holdout", errorBlock(found.error), found.error.status);
  const environment = found.value;
  const holdout = holdoutJson(environment);
  const choices = await holdoutMetricChoices(c.env, actor, environment.project_id);
  const results =
    holdout.holdoutId === null
      ? null
      : await attempt(() =>
          loadHoldoutResults(c.env, actor, environmentId, DEFAULT_ANALYSIS_OPTIONS, since),
        );
  const problems = fieldErrors(refused?.error ?? null);
  const chosen = new Set(refused ? (refused.form.get("metrics") ?? []) : holdout.metrics);
  const base = `${ADMIN_BASE_PATH}/environments/${encodeURIComponent(environment.id)}`;
  const admin = hasRole(actor.role, "admin");
  return sendPage(
    c,
    `Holdout · ${environment.key}`,
    html`<p><a href="${base}">Environment ${environment.key}</a></p>
      <h1>Holdout of ${environment.key}</h1>
      <p>
        ${
          holdout.percent === 0
            ? "No holdout: every visitor can take part in experiments."
            : `${holdout.percent} % of this environment's visitors are kept out of every experiment (${holdout.holdoutKey}).`
        }
      </p>
      ${
        admin
          ? html`${formErrors(refused?.error ?? null)}
              <form method="post" action="${base}/holdout" data-form="holdout">
                ${versionField(environment.version)}
                ${field({
                  name: "percent",
                  label: "Share held out (%, 0–50, steps of 0.01)",
                  type: "number",
                  min: 0,
                  max: 50,
                  step: "0.01",
                  value: refused
                    ? (refused.form.get("percent")?.[0] ?? "")
                    : String(holdout.percent),
                  error: problems.get("percent"),
                  required: true,
                })}
                <fieldset class="${problems.has("metrics") ? "invalid" : ""}">
                  <legend>Metrics to compare</legend>
                  ${choices.length === 0 ? html`<p class="muted">The project has no events yet.</p>` : ""}
                  ${choices.map(
                    (e) =>
                      html`<label
                          ><input
                            type="checkbox"
                            name="metrics"
                            value="${e.id}"
                            ${chosen.has(e.id) ? html`checked` : ""}
                          />
                          ${e.key}</label
                        ><br />`,
                  )}
                </fieldset>
                <button type="submit">Save and publish</button>
              </form>`
          : html`${refused ? errorBlock(refused.error) : ""}
              <p class="muted" data-read-only>
                Changing the holdout needs role admin; this token has role ${actor.role}.
              </p>`
      }
      <h2>Results: holdout vs everyone else</h2>
      ${
        results === null
          ? html`<p class="muted">No holdout was set yet.</p>`
          : !results.ok
            ? errorBlock(results.error)
            : html`${cohortBlock(results.value, `${base}/holdout`)}
                <p>
                  Visitors: everyone else ${results.value.groups[0]?.visitors ?? 0}, holdout
                  ${results.value.groups[1]?.visitors ?? 0} (each counted once, from their first
                  page or SDK decision).
                </p>
                ${
                  results.value.srm.flagged
                    ? html`<p class="warning" role="alert" data-srm>
                        Sample-ratio mismatch (p =
                        ${results.value.srm.pValue?.toExponential(1) ?? "?"}): the groups' sizes are
                        not the share they were decided with, so they were not recorded alike
                        (docs/holdouts.md "Results"). Do not trust this comparison.
                      </p>`
                    : ""
                }
                ${resultsTable(results.value)}`
      }`,
    refused ? refused.error.status : 200,
  );
}

/** `GET`/`POST /_ss/admin/environments/{id}/holdout`. */
export function registerHoldoutPages(app: Hono<AdminEnv>): void {
  app.get("/environments/:id/holdout", (c) =>
    holdoutPage(c, c.req.param("id"), null, c.req.query("since") === "all" ? "all" : "share"),
  );

  app.post("/environments/:id/holdout", async (c) => {
    const id = c.req.param("id");
    const form = await readForm(c);
    const saved = await attempt(() => {
      const actor = actorOf(c);
      requireActorRole(actor, "admin");
      const percentText = form.get("percent")?.[0] ?? "";
      const body = parseBody(HoldoutUpdateSchema, {
        percent: percentText.trim() === "" ? undefined : Number(percentText),
        metrics: form.get("metrics") ?? [],
      });
      return setHoldout(c.env, actor, id, body, postedVersion(form));
    });
    if (saved.ok)
      return c.redirect(
        `${ADMIN_BASE_PATH}/environments/${encodeURIComponent(id)}/holdout?notice=${encodeURIComponent("Holdout saved and published.")}`,
        303,
      );
    return holdoutPage(c, id, { error: saved.error, form });
  });
}
