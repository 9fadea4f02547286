/**
 * Walking the and/or/not condition trees the API accepts (audiences, page URL conditions,
 * experiment audience conditions), with the JSON path of every node.
 */
import { MAX_CONDITION_DEPTH } from "../../core/datafile-parse";

export type Seg = string | number;

export const CONDITION_OPERATORS = ["and", "or", "not"] as const;
const OPERATOR_SET = new Set<unknown>(CONDITION_OPERATORS);

/**
 * Walks an and/or/not condition tree the API accepts: an array starting with "and", "or" (at
 * least one operand) or "not" (exactly one operand); operands are leaves or nested arrays.
 * Structural problems go to `report`; each leaf (anything but an array) goes to `leaf` with its
 * path.
 */
export function walkConditionTree(
  tree: unknown,
  leaf: (node: unknown, path: Seg[]) => void,
  report: (path: Seg[], message: string) => void,
  path: Seg[] = [],
  depth = 0,
): void {
  if (!Array.isArray(tree)) {
    leaf(tree, path);
    return;
  }
  if (depth >= MAX_CONDITION_DEPTH) {
    report(path, `condition tree is nested deeper than ${MAX_CONDITION_DEPTH} levels`);
    return;
  }
  const operator: unknown = tree[0];
  if (!OPERATOR_SET.has(operator)) {
    report(
      tree.length === 0 ? path : [...path, 0],
      tree.length === 0
        ? 'empty condition array: start it with "and", "or" or "not"'
        : 'a condition array starts with "and", "or" or "not"',
    );
    return;
  }
  if (operator === "not" && tree.length !== 2)
    report(path, `"not" takes exactly one operand, got ${tree.length - 1}`);
  else if (tree.length < 2) report(path, `"${String(operator)}" needs at least one operand`);
  for (let i = 1; i < tree.length; i++) {
    const node: unknown = tree[i];
    if (OPERATOR_SET.has(node)) {
      report(
        [...path, i],
        `"${String(node)}" is an operator: it must be the first element of an array`,
      );
      continue;
    }
    walkConditionTree(node, leaf, report, [...path, i], depth + 1);
  }
}

/** Every leaf of a (structurally valid) tree, with its path. */
export function leavesOf(tree: unknown): Array<{ node: unknown; path: Seg[] }> {
  const out: Array<{ node: unknown; path: Seg[] }> = [];
  walkConditionTree(
    tree,
    (node, path) => out.push({ node, path }),
    () => {},
  );
  return out;
}
