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

/**
 * The WCAG 2 A/AA violations axe finds on the page as it is now (empty = none). `exclude`:
 * selectors of subtrees left out (the visual editor's preview frame: the customer's page, not
 * the admin's UI).
 */
export async function accessibilityViolations(
  page: Page,
  options: { exclude?: string[] } = {},
): Promise<A11yViolation[]> {
  const loaded = await page.evaluate("typeof window.axe === 'object'");
  if (!loaded) await page.evaluate(axeSource);
  const exclude = options.exclude ?? [];
  const violations = await page.evaluate(async (excluded) => {
    const axe = (window as { axe: { run(...args: unknown[]): Promise<unknown> } }).axe;
    const context = excluded.length === 0 ? document : { exclude: excluded.map((s) => [s]) };
    const result = (await axe.run(context, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
      resultTypes: ["violations"],
    })) as {
      violations: Array<{
        id: string;
        impact: string | null;
        help: string;
        nodes: Array<{ target: unknown[] }>;
      }>;
    };
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => n.target.map(String).join(" ")),
    }));
  }, exclude);
  return violations;
}

/** One line per violation, for an assertion message. */
export function describeViolations(violations: readonly A11yViolation[]): string {
  return violations
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).join(", ")}`)
    .join("\n");
}
