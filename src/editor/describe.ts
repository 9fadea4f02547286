/**
 * Short, readable descriptions of changes for the editor's change list, and the warnings shown
 * beside them (docs/visual-editor.md). Pure: the editor passes in how to check a selector.
 */
import type { AttributeChangeSet, Change } from "../core/datafile-types";

/** `s` on one line, cut to `max` characters with an ellipsis. */
export function clip(s: string, max = 60): string {
  const line = s.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

const quoted = (s: string): string => `“${clip(s, 40)}”`;
const count = (n: number, one: string): string => `${n} ${one}${n === 1 ? "" : "s"}`;
const lines = (s: string): string => count(s.split("\n").length, "line");

function describeAttributes(a: AttributeChangeSet): string {
  if (a.remove === true) return "Remove the element";
  const parts: string[] = [];
  if (a.text !== undefined) parts.push(`text ${quoted(a.text)}`);
  if (a.html !== undefined) parts.push(`HTML ${quoted(a.html)}`);
  if (a.class !== undefined) parts.push(`class ${quoted(a.class)}`);
  if (a.removeClass) parts.push(`remove class ${quoted(a.removeClass)}`);
  if (a.addClass) parts.push(`add class ${quoted(a.addClass)}`);
  if (a.style !== undefined) parts.push(`style ${quoted(a.style)}`);
  if (a.hide === true) parts.push("hide");
  if (a.href !== undefined) parts.push(`link ${quoted(a.href)}`);
  if (a.src !== undefined) parts.push(`source ${quoted(a.src)}`);
  for (const [name, value] of Object.entries(a.set ?? {})) parts.push(`${name}=${quoted(value)}`);
  for (const name of a.unset ?? []) parts.push(`remove attribute ${name}`);
  if (parts.length === 0) return "Change nothing";
  const text = parts.join(", ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const POSITION: Record<string, string> = {
  before: "before",
  after: "after",
  prepend: "at the start of",
  append: "at the end of",
  replace: "in place of",
};

/** One line saying what `change` does. */
export function describeChange(change: Change): string {
  switch (change.type) {
    case "attribute":
      return describeAttributes(change.attributes ?? {});
    case "insert_html":
      return `Insert HTML ${POSITION[change.position] ?? change.position} the element: ${quoted(change.html)}`;
    case "move":
      return `Move the element ${POSITION[change.position] ?? change.position} ${clip(change.target, 40)}`;
    case "custom_css":
      return `Custom CSS (${lines(change.value)})`;
    case "custom_code":
      return `Custom JavaScript (${lines(change.value)})`;
    case "redirect":
      return `Redirect to ${clip(change.destination, 50)}`;
    default:
      return `Change of type ${clip(String((change as { type: unknown }).type), 30)}`;
  }
}

/** The element selector of a change, if it has one. */
export function selectorOf(change: Change): string | undefined {
  return "selector" in change && typeof change.selector === "string" ? change.selector : undefined;
}

/** What the editor knows about a selector on the page's source. */
export interface SelectorCheck {
  /** Elements it matches in the origin's HTML; -1 when the browser cannot parse it. */
  count: number;
  /** Why the edge cannot run it (src/core/edge-selector.ts), else undefined. */
  problem: string | undefined;
}

/** The warning for one selector, null when it matches exactly one element and runs at the edge. */
export function selectorWarning(
  selector: string,
  check: SelectorCheck,
  what = "selector",
): string | null {
  if (check.count < 0) return `The ${what} ${clip(selector, 40)} is not valid CSS.`;
  if (check.problem !== undefined) return `The edge skips this ${what}: ${check.problem}.`;
  if (check.count === 0) return `The ${what} matches nothing on this page.`;
  if (check.count > 1)
    return `The ${what} matches ${check.count} elements; each one gets the change.`;
  return null;
}

/** Every warning of `change` (its selector and a move's target), given a way to check selectors. */
export function changeWarnings(
  change: Change,
  check: (selector: string) => SelectorCheck,
): string[] {
  const out: string[] = [];
  const selector = selectorOf(change);
  if (selector !== undefined) {
    const warning = selectorWarning(selector, check(selector));
    if (warning) out.push(warning);
  }
  if (change.type === "move") {
    const warning = selectorWarning(change.target, check(change.target), "target");
    if (warning) out.push(warning);
  }
  return out;
}

/** "1 element", "3 elements", "no element", or "invalid selector", for the match count beside the input. */
export function matchCountText(n: number): string {
  if (n < 0) return "invalid selector";
  if (n === 0) return "no element";
  return count(n, "element");
}
