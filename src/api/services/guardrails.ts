/**
 * Guardrails at work (docs/statistics.md "Guardrails"): the scheduled handler's check of every
 * running experiment that has guardrail metrics, in every environment where it runs.
 *
 * One run, `runGuardrailChecks(env, now)`:
 * 1. candidates: each (experiment, environment) with status Running and a guardrail metric;
 * 2. the experiment's results in that environment (`loadResults`, default settings): each
 *    guardrail × non-baseline variation has the one-sided always-valid test of harm
 *    (src/core/experiment-analysis.ts `checkGuardrails`);
 * 3. a harm not recorded before is recorded (`guardrail_breaches`: the experiment is marked) and
 *    audited (`guardrail.breached`, actor `guardrail`);
 * 4. when a harmed guardrail's action is `pause`, the experiment is paused in that environment —
 *    the same action as the API's, so the datafile is republished and the pause is audited, with
 *    the guardrail, variation, p-value and lift as the reason.
 * An error is logged and fails only that experiment; the run reports what it did.
 */
import type { Env } from "../../env";
import type { Actor } from "../context";
import { ApiError } from "../errors";
import { nowIso } from "../ids";
import { auditStatement } from "../store/audit";
import { listGuardrailCandidates, recordBreach } from "../store/guardrails";
import { applyExperimentAction } from "./experiment-lifecycle";
import { loadResults } from "./results";

/** Who the guardrails' marks and pauses are by (audit log, datafile revisions). */
export const GUARDRAIL_ACTOR: Actor = { id: "guardrail", role: "admin", name: "guardrail" };

/** What one run did. */
export interface GuardrailRunReport {
  checked: number;
  /** New breaches recorded (experiment id, environment key, event id, variation id). */
  breaches: Array<{
    experimentId: string;
    environment: string;
    eventId: string;
    variationId: string;
  }>;
  /** Experiments paused, as "experimentId/environment". */
  paused: string[];
  /** Experiments whose check failed, with the error. */
  failed: Array<{ experimentId: string; environment: string; error: string }>;
}

/** Checks every running experiment's guardrails once (see the module comment). */
export async function runGuardrailChecks(env: Env, now: number): Promise<GuardrailRunReport> {
  const report: GuardrailRunReport = { checked: 0, breaches: [], paused: [], failed: [] };
  for (const candidate of await listGuardrailCandidates(env.DB)) {
    report.checked++;
    try {
      const results = await loadResults(env, candidate.experiment_id, {
        environment: candidate.environment_key,
      });
      const harmed = results.guardrails.filter((g) => g.harmed && g.pValue !== null);
      if (harmed.length === 0) continue;
      const detectedAt = new Date(now).toISOString();
      const described = harmed.map((g) => ({
        eventId: g.eventId,
        eventKey: results.metrics.find((m) => m.eventId === g.eventId)?.eventKey ?? null,
        variationId: g.variationId,
        variationKey: results.variations.find((v) => v.id === g.variationId)?.key ?? null,
        pValue: g.pValue,
        difference: g.difference,
        lift: g.lift,
        action: g.action,
      }));
      for (const breach of described) {
        const fresh = await recordBreach(env.DB, {
          experiment_id: candidate.experiment_id,
          environment_id: candidate.environment_id,
          event_id: breach.eventId,
          variation_id: breach.variationId,
          detected_at: detectedAt,
          p_value: breach.pValue!,
          difference: breach.difference,
          lift: breach.lift,
          action: breach.action,
        });
        if (!fresh) continue;
        report.breaches.push({
          experimentId: candidate.experiment_id,
          environment: candidate.environment_key,
          eventId: breach.eventId,
          variationId: breach.variationId,
        });
        await auditStatement(
          env.DB,
          GUARDRAIL_ACTOR,
          "guardrail.breached",
          "experiment",
          candidate.experiment_id,
          candidate.project_id,
          { environment: candidate.environment_key, at: nowIso(), ...breach },
        ).run();
      }
      const pausing = described.filter((b) => b.action === "pause");
      if (pausing.length === 0) continue;
      try {
        await applyExperimentAction(env, GUARDRAIL_ACTOR, {
          id: candidate.experiment_id,
          action: "pause",
          environment: candidate.environment_key,
          auditDetails: { reason: "guardrail", guardrails: pausing },
        });
        report.paused.push(`${candidate.experiment_id}/${candidate.environment_key}`);
      } catch (error) {
        // Paused or archived by someone meanwhile: nothing left to do.
        if (error instanceof ApiError && error.status === 409) continue;
        throw error;
      }
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
