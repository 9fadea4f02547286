/**
 * Guardrails at work (docs/statistics.md "Guardrails"): the scheduled handler's check of every
 * running experiment that has guardrail metrics, in every environment where it runs.
 *
 * One run, `runGuardrailChecks(env, now)`:
 * 1. candidates: each (experiment, environment) with status Running and a guardrail metric;
 * 2. the experiment's results in that environment (`loadResults`, default settings): each
 *    guardrail × variation still allocated has the one-sided always-valid test of harm
 *    (src/core/experiment-analysis.ts `checkGuardrails`);
 * 3. a harm not recorded before is recorded (`guardrail_breaches`: the experiment is marked) and
 *    audited (`guardrail.breached`, actor `guardrail`) in one transaction, then told to the
 *    project's webhooks (`guardrail.breached`, docs/webhooks.md);
 * 4. when a recorded harm's action is `pause` and the check has not paused for it yet, the
 *    experiment is paused in that environment — the same action as the API's, so the datafile is
 *    republished and the pause audited, with the guardrails, variations, p-values and lifts as
 *    the reason — and those breaches are marked paused. A person who resumes the experiment is
 *    not overruled by the next run: only a new harm pauses it again.
 * An error is logged and fails only that experiment; the run reports what it did.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError } from "../errors";
import {
  listBreaches,
  listGuardrailCandidates,
  markPaused,
  recordBreach,
} from "../store/guardrails";
import { applyExperimentAction } from "./experiment-lifecycle";
import { loadResults } from "./results";
import { emitWebhookEvent } from "./webhook-events";

/** Who the guardrails' marks and pauses are by (audit log, datafile revisions). */
export const GUARDRAIL_ACTOR: Actor = { id: "guardrail", role: "admin", name: "guardrail" };

/** What one run did. */
export interface GuardrailRunReport {
  checked: number;
  /** New breaches recorded. */
  breaches: Array<{
    experimentId: string;
    environment: string;
    eventId: string;
    metric: string;
    variationId: string;
  }>;
  /** Experiments paused, as "experimentId/environment". */
  paused: string[];
  /** Experiments whose check failed, with the error. */
  failed: Array<{ experimentId: string; environment: string; error: string }>;
}

/** A metric's identity in breaches: its aggregator, with `:field` for sums. */
function guardrailMetricKey(aggregator: string, field: string | undefined): string {
  return field === undefined ? aggregator : `${aggregator}:${field}`;
}

/** Checks every running experiment's guardrails once (see the module comment). */
export async function runGuardrailChecks(env: Env, now: number): Promise<GuardrailRunReport> {
  const report: GuardrailRunReport = { checked: 0, breaches: [], paused: [], failed: [] };
  const detectedAt = new Date(now).toISOString();
  for (const candidate of await listGuardrailCandidates(env.DB)) {
    report.checked++;
    try {
      // The guardrails' test does not use CUPED: no per-visitor reads for it.
      const results = await loadResults(env, candidate.experiment_id, {
        environment: candidate.environment_key,
        cuped: "false",
      });
      for (const g of results.guardrails) {
        if (!g.harmed || g.pValue === null) continue;
        const metric = guardrailMetricKey(g.aggregator, g.field ?? undefined);
        const details = {
          environment: candidate.environment_key,
          eventId: g.eventId,
          eventKey: results.metrics.find((m) => m.eventId === g.eventId)?.eventKey ?? null,
          metric,
          variationId: g.variationId,
          variationKey: results.variations.find((v) => v.id === g.variationId)?.key ?? null,
          pValue: g.pValue,
          difference: g.difference,
          lift: g.lift,
          action: g.action,
          detectedAt,
        };
        const fresh = await recordBreach(
          env.DB,
          {
            experiment_id: candidate.experiment_id,
            environment_id: candidate.environment_id,
            event_id: g.eventId,
            metric,
            variation_id: g.variationId,
            detected_at: detectedAt,
            p_value: g.pValue,
            difference: g.difference,
            lift: g.lift,
            action: g.action,
          },
          { actor: GUARDRAIL_ACTOR, projectId: candidate.project_id, details },
        );
        if (fresh) {
          await emitWebhookEvent(env, {
            projectId: candidate.project_id,
            type: "guardrail.breached",
            environment: candidate.environment_key,
            actor: GUARDRAIL_ACTOR,
            data: {
              experiment: { id: candidate.experiment_id, key: results.experimentKey },
              ...details,
            },
            summary: `guardrail breached in experiment ${results.experimentKey} in ${candidate.environment_key}: variation ${details.variationKey ?? g.variationId} is worse on ${details.eventKey ?? g.eventId} (p = ${g.pValue.toPrecision(2)})${g.action === "pause" ? "; the experiment is being paused" : ""}`,
          });
          report.breaches.push({
            experimentId: candidate.experiment_id,
            environment: candidate.environment_key,
            eventId: g.eventId,
            metric,
            variationId: g.variationId,
          });
        }
      }
      // Recorded `pause` harms the check has not paused for yet (new ones, or a pause that failed).
      const pausing = (
        await listBreaches(env.DB, candidate.experiment_id, candidate.environment_id)
      ).filter((b) => b.action === "pause" && b.paused_at === null);
      if (pausing.length === 0) continue;
      try {
        await applyExperimentAction(env, GUARDRAIL_ACTOR, {
          id: candidate.experiment_id,
          action: "pause",
          environment: candidate.environment_key,
          auditDetails: {
            reason: "guardrail",
            guardrails: pausing.map((b) => ({
              eventId: b.event_id,
              eventKey: results.metrics.find((m) => m.eventId === b.event_id)?.eventKey ?? null,
              metric: b.metric,
              variationId: b.variation_id,
              variationKey: results.variations.find((v) => v.id === b.variation_id)?.key ?? null,
              pValue: b.p_value,
              lift: b.lift,
              action: b.action,
            })),
          },
        });
        report.paused.push(`${candidate.experiment_id}/${candidate.environment_key}`);
      } catch (error) {
        // Paused or archived by someone meanwhile: the harm is acted on all the same.
        if (!(error instanceof ApiError && error.status === 409)) throw error;
      }
      await markPaused(env.DB, candidate.experiment_id, candidate.environment_id, detectedAt);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      console.error(
        `splitstream: guardrail check of experiment ${candidate.experiment_id} in ${candidate.environment_key} failed`,
        error,
      );
      report.failed.push({
        experimentId: candidate.experiment_id,
        environment: candidate.environment_key,
        error: message,
      });
    }
  }
  return report;
}
