/**
 * Automated accessibility checks of a page in the browser tests: axe-core (the engine behind
 * Lighthouse's and most CI accessibility audits) run against WCAG 2.x A and AA rules. The admin
 * pages send a CSP without `script-src`; the engine is injected through the DevTools protocol
 * (playwright's `evaluate`), which page CSP does not govern, so the page is checked exactly as
 * served.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Page } from "playwright-core";

// The page's globals, inside `page.evaluate` (this project's types have no DOM lib).
declare const window: unknown, document: unknown;

const axeSource = readFileSync(
  createRequire(import.meta.url).resolve("axe-core/axe.min.js"),
  "utf8",
);

export interface A11yViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: string[];
}

export interface A11yOptions {
  /**
   * Selectors of the subtrees checked (default: the whole page), e.g. one module's section of a
   * page whose other sections are checked elsewhere.
   */
  include?: string[];
  /**
   * Selectors of subtrees left out (the visual editor's preview frame: the customer's page, not
   * the admin's UI).
   */
  exclude?: string[];
  /** Also axe's best-practice rules: heading order, empty table headers, landmarks. */
  bestPractice?: boolean;
  /**
   * Rules whose "needs review" results count as violations. axe reports some certain failures
   * only as needing review: `duplicate-id-aria` (WCAG 4.1.2) for two fields sharing the id a
   * label points at — the second field then has no accessible name — and
   * `form-field-multiple-labels` for the labels piling up on the first.
   */
  needsReview?: string[];
}

/**
 * The WCAG 2 A/AA violations axe finds on the page as it is now (empty = none); see A11yOptions
 * for the stricter checks of pages that pass them.
 */
export async function accessibilityViolations(
  page: Page,
  options: A11yOptions = {},
): Promise<A11yViolation[]> {
  const loaded = await page.evaluate("typeof window.axe === 'object'");
  if (!loaded) await page.evaluate(axeSource);
  const settings = {
    include: options.include ?? [],
    exclude: options.exclude ?? [],
    tags: [
      "wcag2a",
      "wcag2aa",
      "wcag21a",
      "wcag21aa",
      ...(options.bestPractice ? ["best-practice"] : []),
    ],
    needsReview: options.needsReview ?? [],
  };
  const violations = await page.evaluate(async ({ include, exclude, tags, needsReview }) => {
    const axe = (window as { axe: { run(...args: unknown[]): Promise<unknown> } }).axe;
    const context =
      include.length === 0 && exclude.length === 0
        ? document
        : {
            ...(include.length === 0 ? {} : { include: include.map((s) => [s]) }),
            exclude: exclude.map((s) => [s]),
          };
    type Result = {
      id: string;
      impact: string | null;
      help: string;
      nodes: Array<{ target: unknown[] }>;
    };
    const result = (await axe.run(context, {
      runOnly: { type: "tag", values: tags },
      resultTypes: needsReview.length === 0 ? ["violations"] : ["violations", "incomplete"],
    })) as { violations: Result[]; incomplete: Result[] };
    return [
      ...result.violations,
      ...result.incomplete.filter((r) => needsReview.includes(r.id)),
    ].map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.map(String).join(" ")),
    }));
  }, settings);
  return violations;
}

/** One line per violation, for an assertion message. */
export function describeViolations(violations: readonly A11yViolation[]): string {
  return violations
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).join(", ")}`)
    .join("\n");
}
