/**
 * A diagnostic about untrusted input, naming where it is with a JSON path such as
 * `$.experiments[3].trafficAllocation[0].endOfRange`.
 */
export interface Problem {
  /** JSONPath-like location, rooted at `$`. */
  path: string;
  message: string;
  /** `error` makes the input unusable; `warning` is reported but the input still loads. */
  severity: "error" | "warning";
}

/** Renders a path made of keys and indexes as `$.a[0].b` (keys that are not identifiers are quoted). */
export function formatPath(segments: ReadonlyArray<string | number>): string {
  let out = "$";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** One line per problem: `error $.path: message`. */
export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `${p.severity} ${p.path}: ${p.message}`).join("\n");
}
