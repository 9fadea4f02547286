/**
 * Result alerts (docs/webhooks.md "Events"): the hourly check that tells webhooks when a running
 * experiment's primary metric reaches significance for a variation (`significance.reached`) and
 * when its split is a sample-ratio mismatch (`srm.detected`). The statistics are the results
 * endpoint's own (`loadResults`, default settings: sequential, always valid, so looking every
 * hour does not inflate false positives; docs/statistics.md). Each is announced once per
 * occurrence — per experiment, environment, and for significance per metric and variation —
 * recorded in `result_alerts` in the same D1 batch as its deliveries, and only when some webhook
 * wants it for that environment: an alert nobody was told is told at a later run, and one whose
 * deliveries could not be written is not marked as told.
 *
 * Only projects with an enabled webhook that wants one of these types are checked: results cost
 * reads. A webhook added later hears of a significance no earlier webhook was told of at the next
 * run; one already told to another webhook is not told again.
 */
import type { Env } from "../../env";
import { all } from "../store/db";
import { resultAlertExists, resultAlertOnce, type WebhookRow } from "../store/webhooks";
import { loadResults } from "./results";
import { emitWebhookEvent, webhookWants } from "./webhook-events";

/** What one run did. */
export interface ResultAlertReport {
  checked: number;
  significance: number;
  srm: number;
  failed: Array<{ experimentId: string; environment: string; error: string }>;
}

interface Candidate {
  experiment_id: string;
  experiment_key: string;
  project_id: string;
  environment_id: string;
  environment_key: string;
}

/** Checks every running experiment of the projects that listen (see the module comment). */
export async function runResultAlerts(env: Env, now: number): Promise<ResultAlertReport> {
  const report: ResultAlertReport = { checked: 0, significance: 0, srm: 0, failed: [] };
  const webhooks = await all<WebhookRow>(env.DB, "SELECT * FROM webhooks WHERE enabled = 1");
  const listening = new Map<string, { significance: boolean; srm: boolean }>();
  for (const webhook of webhooks) {
    const wants = listening.get(webhook.project_id) ?? { significance: false, srm: false };
    // Per environment filters are applied when emitting; here: does anyone want the type at all.
    wants.significance ||= webhookWants(webhook, "significance.reached", null);
    wants.srm ||= webhookWants(webhook, "srm.detected", null);
    listening.set(webhook.project_id, wants);
  }
  const projects = [...listening].filter(([, w]) => w.significance || w.srm).map(([id]) => id);
  if (projects.length === 0) return report;
  const at = new Date(now).toISOString();
  const candidates = await all<Candidate>(
    env.DB,
    `SELECT e.id AS experiment_id, e.key AS experiment_key, e.project_id,
            en.id AS environment_id, en.key AS environment_key
       FROM experiments AS e
       JOIN experiment_status AS s ON s.experiment_id = e.id AND s.status = 'Running'
       JOIN environments AS en ON en.id = s.environment_id
      WHERE e.project_id IN (${projects.map(() => "?").join(", ")})
      ORDER BY e.id, en.id`,
    ...projects,
  );
  for (const candidate of candidates) {
    report.checked++;
    const wants = listening.get(candidate.project_id);
    try {
      const results = await loadResults(env, candidate.experiment_id, {
        environment: candidate.environment_key,
      });
      const experiment = { id: candidate.experiment_id, key: candidate.experiment_key };
      if (wants?.srm && results.srm.flagged) {
        const alert = {
          experimentId: candidate.experiment_id,
          environmentId: candidate.environment_id,
          kind: "srm",
          subject: "split",
          at,
        };
        if (!(await resultAlertExists(env.DB, alert))) {
          const sent = await emitWebhookEvent(
            env,
            {
              projectId: candidate.project_id,
              type: "srm.detected",
              environment: candidate.environment_key,
              data: {
                experiment,
                pValue: results.srm.pValue,
                chiSquare: results.srm.chiSquare,
                expected: results.srm.expected,
                visitors: Object.fromEntries(
                  results.variations.map((v) => [v.key ?? v.id, v.visitors]),
                ),
                detectedAt: at,
              },
              summary: `sample-ratio mismatch in experiment ${candidate.experiment_key} in ${candidate.environment_key} (p = ${formatP(results.srm.pValue)}): its split is not the allocation; check the set-up before trusting its results`,
            },
            (eventId) => resultAlertOnce(env.DB, alert, eventId),
          );
          if (sent > 0) report.srm++;
        }
      }
      const primary = results.metrics.find((m) => m.primary);
      if (!wants?.significance || !primary) continue;
      for (const cell of primary.variations) {
        if (cell.baseline || !cell.significant) continue;
        const metric = primary.field
          ? `${primary.aggregator}:${primary.field}`
          : primary.aggregator;
        const alert = {
          experimentId: candidate.experiment_id,
          environmentId: candidate.environment_id,
          kind: "significance",
          subject: `${primary.eventId}/${metric}/${cell.variationId}`,
          at,
        };
        if (await resultAlertExists(env.DB, alert)) continue;
        const variationKey =
          results.variations.find((v) => v.id === cell.variationId)?.key ?? cell.variationId;
        const lift = cell.lift?.estimate ?? null;
        const sent = await emitWebhookEvent(
          env,
          {
            projectId: candidate.project_id,
            type: "significance.reached",
            environment: candidate.environment_key,
            data: {
              experiment,
              metric: {
                eventId: primary.eventId,
                eventKey: primary.eventKey,
                aggregator: primary.aggregator,
                ...(primary.field ? { field: primary.field } : {}),
              },
              variation: { id: cell.variationId, key: variationKey },
              verdict: cell.verdict,
              lift: cell.lift,
              pValue: cell.pValue,
              qValue: cell.qValue,
              mode: results.analysis.mode,
              alpha: results.analysis.alpha,
              visitors: cell.visitors,
              revisions: results.revisions,
              detectedAt: at,
            },
            summary: `experiment ${candidate.experiment_key} in ${candidate.environment_key}: variation ${variationKey} is a significant ${cell.verdict} on ${primary.eventKey ?? primary.eventId}${lift === null ? "" : ` (lift ${(lift * 100).toFixed(1)} %)`}`,
          },
          (eventId) => resultAlertOnce(env.DB, alert, eventId),
        );
        if (sent > 0) report.significance++;
      }
    } catch (error) {
      console.error(
        `splitstream: result alerts of experiment ${candidate.experiment_id} in ${candidate.environment_key} failed`,
        error,
      );
      report.failed.push({
        experimentId: candidate.experiment_id,
        environment: candidate.environment_key,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return report;
}

function formatP(p: number | null): string {
  return p === null ? "?" : p < 0.0001 ? p.toExponential(1) : p.toFixed(4);
}
