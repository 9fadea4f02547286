/**
 * Splitstream's pure decision core: datafile parsing and compilation, Optimizely-identical
 * bucketing, audience conditions, feature flags. No Workers APIs, no I/O: it runs in workerd,
 * in Node (CLI, benchmarks) and anywhere else JavaScript runs.
 */
import { compileDatafile, type CompiledDatafile } from "./compile";
import { parseDatafile } from "./datafile-parse";
import type { Problem } from "./problem";

export type LoadResult =
  | { ok: true; compiled: CompiledDatafile; problems: Problem[] }
  | { ok: false; problems: Problem[] };

/** Parses, validates and compiles untrusted datafile input (JSON text or a parsed value). Never throws. */
export function loadDatafile(input: unknown): LoadResult {
  const parsed = parseDatafile(input);
  if (!parsed.ok) return parsed;
  try {
    return { ok: true, compiled: compileDatafile(parsed.datafile), problems: parsed.problems };
  } catch (error) {
    // Defensive: compile is written not to throw on validated input; if it ever does, report it.
    return {
      ok: false,
      problems: [
        ...parsed.problems,
        { path: "$", message: `could not compile datafile: ${String(error)}`, severity: "error" },
      ],
    };
  }
}

export { compileDatafile, parseDatafile };
export type {
  CompiledDatafile,
  CompiledExperiment,
  CompiledVariation,
  CompiledPage,
} from "./compile";
export {
  DECISION_REASONS,
  decideAll,
  decideExperiment,
  decidePrepared,
  prepareVisitor,
  bucketFromHash,
  type Decision,
  type DecisionReason,
  type PreparedVisitor,
  type Visitor,
} from "./decide";
export {
  FLAG_REASONS,
  decideFlag,
  castVariable,
  type FlagDecision,
  type FlagReason,
  type VariableValue,
} from "./features";
export { murmurhash3, HashPrefix, encodeUtf8 } from "./murmurhash";
export { formatPath, formatProblems, type Problem } from "./problem";
export type * from "./datafile-types";
