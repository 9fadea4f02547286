/**
 * The shape every bench module exports (bench/*.bench.ts) and the rows it reports.
 * bench/run.ts discovers the modules, runs them in sequence, prints one table per bench and
 * writes bench/results/latest.json.
 */

/**
 * What a row's `value` measures. Throughput rows are "higher is better", time rows "lower is
 * better"; "info" rows carry only their note (value is ignored).
 */
export type Unit = "ops/s" | "ms" | "bytes" | "%" | "count" | "info";

export type Status = "PASS" | "MISS" | "WARN" | "OK";

export interface Row {
  /** Who/what was measured, e.g. "ours decideExperiment" or "Optimizely getVariation". */
  subject: string;
  value: number;
  unit: Unit;
  /**
   * How many times ours is ahead of this peer row: ours ÷ peer for ops/s, peer ÷ ours for ms.
   * Absent on our own rows and on informational rows.
   */
  ratio?: number;
  /** The target as text, e.g. "≥ 20×" or "≤ 50 ms". */
  target?: string;
  /** PASS/MISS against the target; OK/WARN for sanity checks. */
  status?: Status;
  /** Short free text printed after the table row. */
  note?: string;
  /** Additional figures kept in latest.json (p95, samples, …). */
  extra?: Record<string, number | string>;
}

export interface BenchModule {
  /** Short name used on the command line: `npm run bench -- <name>`. */
  name: string;
  /** One-line title printed above the table. */
  title?: string;
  /** Lower runs first; modules without an order run after, by name. */
  order?: number;
  run(): Promise<Row[]>;
}
