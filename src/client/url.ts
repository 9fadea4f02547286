/**
 * URL conditions of pages, evaluated in the browser: the trees the Worker canonicalized for the
 * client config (src/edge/client-config.ts), with the same three-valued logic as src/core
 * (`and`: false if any operand is false, else unknown if any is unknown; `or` the dual; `not` of
 * unknown is unknown). A page is active only when its tree is `true`.
 */
import type { ClientUrlTree } from "./config-types";

type Tri = boolean | null;

/** The `simple` form: lowercase host without `www.`, path without one trailing slash. */
function simpleForm(href: string): string {
  const u = new URL(href);
  return (u.host.replace(/^www\./i, "") + u.pathname.replace(/\/$/, "")).toLowerCase();
}

export function evalUrl(tree: ClientUrlTree, href: string): Tri {
  if (Array.isArray(tree)) {
    const [op, ...operands] = tree;
    const r = operands.map((t) => evalUrl(t, href));
    if (op === "not") return r[0] == null ? null : !r[0];
    const [win, lose] = op === "and" ? [false, true] : [true, false];
    return r.includes(win) ? win : r.includes(null) ? null : lose;
  }
  if (!tree) return null;
  const { m, v } = tree;
  const lower = href.toLowerCase();
  try {
    return m === "s"
      ? simpleForm(href) === v
      : m === "e"
        ? lower === v
        : m === "c"
          ? lower.includes(v)
          : m === "r"
            ? new RegExp(v).test(href)
            : null;
  } catch {
    return null;
  }
}
