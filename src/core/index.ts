/**
 * Splitstream's pure decision core: datafile parsing and compilation, Optimizely-identical
 * bucketing, audience conditions, feature flags. No Workers APIs, no I/O: it runs in workerd,
 * in Node (CLI, benchmarks) and anywhere else JavaScript runs.
 */
import { compileDatafile, type CompiledDatafile, type CompileOptions } from "./compile";
import { parseDatafile, type ParseResult } from "./datafile-parse";
import type { Problem } from "./problem";

export type LoadResult =
  | { ok: true; compiled: CompiledDatafile; problems: Problem[] }
  | { ok: false; problems: Problem[] };

/** Parses, validates and compiles untrusted datafile input (JSON text or a parsed value). Never throws. */
export function loadDatafile(input: unknown, options: CompileOptions = {}): LoadResult {
  return compileParsed(parseDatafile(input), options);
}

/**
 * Compiles what `parseDatafile` returned (for callers that need the validated datafile before
 * compiling, e.g. to fetch its private list members first). Never throws.
 */
export function compileParsed(parsed: ParseResult, options: CompileOptions = {}): LoadResult {
  if (!parsed.ok) return parsed;
  try {
    return {
      ok: true,
      compiled: compileDatafile(parsed.datafile, options),
      problems: parsed.problems,
    };
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
  CompileOptions,
  CompiledDatafile,
  CompiledExperiment,
  CompiledVariation,
  CompiledPage,
} from "./compile";
export {
  DECISION_REASONS,
  decideAll,
  decideVariations,
  decideExperiment,
  decidePrepared,
  prepareVisitor,
  bucketFromHash,
  type Decision,
  type DecisionReason,
  type HoldoutHit,
  type PreparedVisitor,
  type Visitor,
} from "./decide";
export {
  FLAG_REASONS,
  decideFlag,
  decideAllFlags,
  decidePreparedFlag,
  castVariable,
  type DecideFlagOptions,
  type FlagDecision,
  type FlagReason,
  type VariableValue,
} from "./features";
export {
  EVERYONE_ELSE_VARIATION_KEY,
  HOLDOUT_VARIATION_KEY,
  everyoneElseOf,
  holdoutArms,
  holdoutArmsAt,
  holdoutSharesOf,
  type HoldoutArm,
  type HoldoutShares,
} from "./holdouts";
export { murmurhash3, HashPrefix, encodeUtf8 } from "./murmurhash";
export { formatPath, formatProblems, type Problem } from "./problem";
export type * from "./datafile-types";
