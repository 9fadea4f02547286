/**
 * JSON paths as Splitstream reports them (`$.a[0]["b c"].d`, src/core/problem.ts formatPath):
 * parsing them back and resolving them in a value, for tests that check a reported path really
 * points into the input.
 */

export type Segment = string | number;

/** `$.a[0]["b c"].d` → ["a", 0, "b c", "d"]; throws on anything formatPath cannot produce. */
export function parsePath(path: string): Segment[] {
  if (!path.startsWith("$")) throw new Error(`path does not start with $: ${path}`);
  const out: Segment[] = [];
  let i = 1;
  while (i < path.length) {
    if (path[i] === ".") {
      const match = /^[A-Za-z_$][\w$]*/.exec(path.slice(i + 1));
      if (!match) throw new Error(`bad identifier at ${i} in ${path}`);
      out.push(match[0]);
      i += 1 + match[0].length;
    } else if (path.startsWith('["', i)) {
      // A JSON string literal: find its closing quote (skipping escapes).
      let j = i + 2;
      while (j < path.length && path[j] !== '"') j += path[j] === "\\" ? 2 : 1;
      out.push(JSON.parse(path.slice(i + 1, j + 1)) as string);
      if (path[j + 1] !== "]") throw new Error(`bad quoted key at ${i} in ${path}`);
      i = j + 2;
    } else {
      const match = /^\[(\d+)\]/.exec(path.slice(i));
      if (!match) throw new Error(`bad segment at ${i} in ${path}`);
      out.push(Number(match[1]));
      i += match[0].length;
    }
  }
  return out;
}

export const UNRESOLVED = Symbol("unresolved");

/**
 * The value at `segments` in `root`, or UNRESOLVED. Descends into JSON strings (legacy audience
 * `conditions` are JSON text, and problems inside them continue the path into the parsed text).
 */
export function resolvePath(root: unknown, segments: readonly Segment[]): unknown {
  let node = root;
  for (const segment of segments) {
    if (typeof node === "string") {
      try {
        node = JSON.parse(node);
      } catch {
        return UNRESOLVED;
      }
    }
    if (typeof segment === "number") {
      if (!Array.isArray(node) || segment >= node.length) return UNRESOLVED;
      node = node[segment];
    } else {
      if (typeof node !== "object" || node === null || Array.isArray(node)) return UNRESOLVED;
      if (!Object.prototype.hasOwnProperty.call(node, segment)) return UNRESOLVED;
      node = (node as Record<string, unknown>)[segment];
    }
  }
  return node;
}

/** True when the place `path` names, or (a missing field) its parent, exists in `root`. */
export function pathExists(root: unknown, path: string): boolean {
  const segments = parsePath(path);
  return segments.length === 0 || resolvePath(root, segments.slice(0, -1)) !== UNRESOLVED;
}
