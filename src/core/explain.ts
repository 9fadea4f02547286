/**
 * Explaining decisions to a person: what each reason means and the table `splitstream decide
 * --visitor` prints (src/cli/decide-command.ts), so the CLI and the admin's "Why did I (not) get
 * this?" page (src/admin/explain-page.ts) say the same thing in the same words. Pure: strings in,
 * strings out.
 */
import type { Decision, DecisionReason } from "./decide";

/**
 * One sentence per reason (the steps of docs/decisions.md). Typed by `DecisionReason`, so a new
 * reason in src/core/decide.ts does not compile until it is explained here.
 */
export const DECISION_REASON_TEXT: Readonly<Record<DecisionReason, string>> = {
  experiment_not_found: "No experiment with that key (or it is a rollout's delivery rule).",
  invalid_visitor:
    "The visitor id or attributes are invalid (the SDK returns no variation for these either).",
  preview: "A signed preview link forced this variation (it works before the experiment runs).",
  not_running: "The experiment's status is not Running, so nobody gets a variation.",
  holdout:
    "The visitor is in the environment's holdout, kept out of every experiment (docs/holdouts.md).",
  forced_variation: "The experiment's forced variations (QA whitelist) name this visitor id.",
  sticky: "The visitor keeps the variation recorded earlier (the ss_dec cookie).",
  audience_mismatch: "The visitor is not in the experiment's audiences.",
  excluded_by_group: "A mutually exclusive group put the visitor in another experiment, or none.",
  outside_traffic:
    "The visitor's bucket falls outside the experiment's traffic allocation (holdback).",
  unsupported:
    "A contextual-bandit (CMAB) experiment: it needs Optimizely's CMAB service, so no variation.",
  bucketed: "Bucketed into this variation by hashing the visitor id.",
};

/** The column headings of the explanation table. */
export const EXPLANATION_HEADER = ["experiment", "variation", "reason", "bucket"] as const;

/** The cells of one decision's row: `-` stands for no variation and for no bucket. */
export function explanationRow(decision: Decision): [string, string, string, string] {
  return [
    decision.experimentKey,
    decision.variationKey ?? "-",
    decision.reason,
    decision.bucket === null ? "-" : String(decision.bucket),
  ];
}

/**
 * The explanation `splitstream decide --visitor` prints: a line naming the visitor and the
 * datafile revision, then one aligned row per decision (columns two spaces apart, no trailing
 * spaces), without a final newline.
 */
export function renderExplanation(
  revision: string,
  visitorId: string,
  decisions: readonly Decision[],
): string {
  const rows = decisions.map(explanationRow);
  const widths = EXPLANATION_HEADER.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i]!.length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [
    `visitor ${JSON.stringify(visitorId)} — datafile revision ${revision}`,
    line(EXPLANATION_HEADER),
    ...rows.map(line),
  ].join("\n");
}
