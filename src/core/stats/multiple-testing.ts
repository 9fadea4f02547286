/**
 * Multiple-comparison corrections: p-values in, adjusted p-values (q-values) out, in the same
 * order. Comparing "adjusted p ≤ α" is then the corrected decision rule, and the numbers match
 * R's p.adjust and statsmodels' multipletests ("fdr_bh", "holm").
 *
 * A null (a comparison without enough data) passes through as null and does not count in m:
 * an arm that cannot be tested must not dilute, or be diluted by, the others.
 */

function checkedIndices(pValues: readonly (number | null)[]): number[] {
  const present: number[] = [];
  pValues.forEach((p, i) => {
    if (p === null) return;
    if (!(p >= 0 && p <= 1)) throw new RangeError(`p-value ${i} must be in [0, 1], got ${p}`);
    present.push(i);
  });
  return present;
}

/**
 * Benjamini–Hochberg step-up adjustment (controls the false discovery rate).
 *
 * 1. drop the nulls; m = number of p-values left;
 * 2. sort ascending: p₍₁₎ ≤ … ≤ p₍ₘ₎;
 * 3. q₍ᵢ₎ = min over j ≥ i of (m / j)·p₍ⱼ₎ (running minimum from the largest down),
 *    capped at 1;
 * 4. put the q-values back in the input order, nulls where the input had nulls.
 */
export function benjaminiHochberg(pValues: readonly (number | null)[]): (number | null)[] {
  // 1.
  const present = checkedIndices(pValues);
  const m = present.length;
  const result: (number | null)[] = pValues.map(() => null);
  // 2. (stable sort: ties keep input order; the running minimum gives ties equal q anyway)
  const order = [...present].sort((a, b) => pValues[a]! - pValues[b]!);
  // 3.
  let running = 1;
  for (let rank = m; rank >= 1; rank--) {
    const index = order[rank - 1]!;
    running = Math.min(running, (m / rank) * pValues[index]!);
    // 4.
    result[index] = running;
  }
  return result;
}

/**
 * Holm step-down adjustment (controls the family-wise error rate; uniformly more powerful than
 * Bonferroni).
 *
 * 1. drop the nulls; m = number of p-values left;
 * 2. sort ascending: p₍₁₎ ≤ … ≤ p₍ₘ₎;
 * 3. adj₍ᵢ₎ = max over j ≤ i of min(1, (m − j + 1)·p₍ⱼ₎) (running maximum from the smallest up);
 * 4. put them back in the input order, nulls where the input had nulls.
 */
export function holm(pValues: readonly (number | null)[]): (number | null)[] {
  // 1.
  const present = checkedIndices(pValues);
  const m = present.length;
  const result: (number | null)[] = pValues.map(() => null);
  // 2.
  const order = [...present].sort((a, b) => pValues[a]! - pValues[b]!);
  // 3.
  let running = 0;
  for (let rank = 1; rank <= m; rank++) {
    const index = order[rank - 1]!;
    running = Math.max(running, Math.min(1, (m - rank + 1) * pValues[index]!));
    // 4.
    result[index] = running;
  }
  return result;
}
