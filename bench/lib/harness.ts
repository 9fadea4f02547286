/**
 * Small, dependency-free timing helpers. Subjects are measured in interleaved rounds
 * (A B C A B C …) so drift on a busy machine hits every subject alike; the reported figure is
 * the median round.
 *
 * No GC is forced between timed runs: right after a forced full GC, V8 allocates much more
 * slowly for a while (sweeping, a shrunken young generation), which made an allocation-heavy
 * step like validating a datafile look 3–5× slower than in steady state. Each subject instead
 * pays for its own garbage in its own rounds; warm-up rounds absorb the start.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gcFn: (() => void) | undefined = runInNewContext(
  "typeof gc === 'function' ? gc : undefined",
) as (() => void) | undefined;

/** Full GC (enabled above): only between benches, never right before a timed run. */
export function collectGarbage(): void {
  gcFn?.();
}

export const now = (): number => performance.now();

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/** Linear-interpolated quantile (q in 0..1) of unsorted values. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface ThroughputSubject {
  name: string;
  /** Does one chunk of work (a few dozen visitors) and returns how many decisions it made. */
  chunk(): number;
}

export interface ThroughputResult {
  name: string;
  /** Median of the per-round ops/s. */
  opsPerSec: number;
  /** ops/s of each round, in round order. */
  samples: number[];
  min: number;
  max: number;
}

export interface ThroughputOptions {
  warmupMs: number;
  sampleMs: number;
  rounds: number;
}

function sample(subject: ThroughputSubject, ms: number): number {
  let ops = 0;
  const start = now();
  let elapsed: number;
  do {
    ops += subject.chunk();
    elapsed = now() - start;
  } while (elapsed < ms);
  return (ops * 1000) / elapsed;
}

/** Warms every subject up, then measures `rounds` interleaved samples of each. */
export function measureThroughput(
  subjects: readonly ThroughputSubject[],
  options: ThroughputOptions,
): Map<string, ThroughputResult> {
  for (const subject of subjects) sample(subject, options.warmupMs);
  const samples = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  for (let round = 0; round < options.rounds; round++) {
    for (const subject of subjects) {
      samples.get(subject.name)!.push(sample(subject, options.sampleMs));
    }
  }
  const out = new Map<string, ThroughputResult>();
  for (const [name, values] of samples) {
    out.set(name, {
      name,
      opsPerSec: median(values),
      samples: values,
      min: Math.min(...values),
      max: Math.max(...values),
    });
  }
  return out;
}

/**
 * How many times `a` is ahead of `b`, as the median of per-round ratios. Both were sampled in
 * the same round, seconds apart, so a burst of load on a shared machine mostly cancels out —
 * steadier than the ratio of the two medians.
 */
export function pairedRatio(a: ThroughputResult, b: ThroughputResult): number {
  const n = Math.min(a.samples.length, b.samples.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(a.samples[i]! / b.samples[i]!);
  return median(ratios);
}

export interface TimingResult {
  /** The very first call (cold JIT), in ms. */
  first: number;
  median: number;
  p95: number;
  min: number;
  max: number;
  samples: number[];
}

export interface TimedSubject {
  name: string;
  /** Runs before each timed call, outside the timed region; its result is passed to `fn`. */
  setup?: () => unknown;
  fn: (input: unknown) => unknown;
  /** Runs after each timed call, outside the timed region (e.g. closing a client). */
  teardown?: (output: unknown) => unknown;
}

export function summarize(first: number, samples: number[]): TimingResult {
  return {
    first,
    median: median(samples),
    p95: quantile(samples, 0.95),
    min: Math.min(...samples),
    max: Math.max(...samples),
    samples,
  };
}

/**
 * Times the subjects in alternating blocks (A×n B×n A×n B×n …) so load bursts on a shared
 * machine hit every subject alike. Within a block the first `discard` runs are not recorded:
 * they absorb the garbage the other subject left behind, so nobody is charged for another
 * subject's allocations (which interleaving run by run would do). The first `warmupBlocks`
 * rounds of blocks are not recorded at all. Async `fn`s are awaited inside the timed region.
 */
export async function timeInterleaved(
  options: { warmupBlocks: number; blocks: number; blockSize: number; discard: number },
  subjects: readonly TimedSubject[],
): Promise<Map<string, TimingResult>> {
  const samples = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  const first = new Map<string, number>();
  for (let block = 0; block < options.warmupBlocks + options.blocks; block++) {
    for (const subject of subjects) {
      for (let run = 0; run < options.blockSize; run++) {
        const input = subject.setup?.();
        const start = now();
        let output = subject.fn(input);
        if (output instanceof Promise) output = await output;
        const elapsed = now() - start;
        if (!first.has(subject.name)) first.set(subject.name, elapsed);
        if (block >= options.warmupBlocks && run >= options.discard)
          samples.get(subject.name)!.push(elapsed);
        const done = subject.teardown?.(output);
        if (done instanceof Promise) await done;
      }
    }
  }
  return new Map(
    subjects.map((s) => [s.name, summarize(first.get(s.name)!, samples.get(s.name)!)]),
  );
}

/** Median time of `b` ÷ median time of `a`: how many times `a` is faster. */
export function timeRatio(a: TimingResult, b: TimingResult): number {
  return b.median / a.median;
}

/**
 * Times `fn` `runs` times after `warmup` untimed calls (the first call of all is also reported
 * as `first`). `setup` runs before each call, outside the timed region, and its result is passed in.
 */
export async function timeRuns<S>(
  options: { warmup: number; runs: number },
  setup: () => S,
  fn: (input: S) => unknown,
): Promise<TimingResult> {
  const samples: number[] = [];
  let first = Number.NaN;
  for (let i = 0; i < options.warmup + options.runs; i++) {
    const input = setup();
    const start = now();
    const result = fn(input);
    if (result instanceof Promise) await result;
    const elapsed = now() - start;
    if (i === 0) first = elapsed;
    if (i >= options.warmup) samples.push(elapsed);
  }
  return summarize(first, samples);
}
