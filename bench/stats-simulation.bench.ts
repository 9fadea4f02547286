/**
 * The sequential test's validity and power by simulation (docs/statistics.md "Simulation"): the
 * same seeded scenarios as test/core/stats-simulation.test.ts, with more experiments.
 *
 * A/A: two arms at the same conversion rate, looked at after every 100 visitors per arm up to
 * 10,000 (100 looks); the false-positive rate is the share of experiments with a significant
 * look, and must be ≤ α (PASS when it is below α + 2 Monte-Carlo SE, and the lift interval
 * excluded 0 exactly at the significant looks). A/B: the same with a 10 % relative lift; power
 * is the share of experiments significant by 10,000 per arm (informational), and the note says
 * in how many the lift interval missed the true +10 % at some look (≤ α for a valid confidence
 * sequence). At the default α (0.1) and at 0.05, default N* (5000).
 */
import { simulate, simulateGuardrail } from "../test/support/ab-simulation";
import type { Row } from "./lib/types";

export const name = "stats-simulation";
export const title =
  "Sequential test by simulation: A/A false positives over 100 looks (≤ α) and power at a 10 % lift";
export const order = 90;

const EXPERIMENTS = 2000;
const POWER_EXPERIMENTS = 1000;
const LOOKS = { step: 100, maxPerArm: 10_000 } as const;
const RATES = [0.005, 0.01, 0.05, 0.2, 0.5];
const ALPHAS = [0.1, 0.05];

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  for (const alpha of ALPHAS) {
    for (const rate of RATES) {
      const aa = simulate({
        rate,
        lift: 0,
        experiments: EXPERIMENTS,
        ...LOOKS,
        options: { alpha },
        seed: 90_000 + Math.round(rate * 1e4) + Math.round(alpha * 100),
      });
      const ok = aa.rate <= alpha + 2 * Math.sqrt((alpha * (1 - alpha)) / EXPERIMENTS);
      rows.push({
        subject: `A/A ${(rate * 100).toFixed(1)} %, α ${alpha}: false positives`,
        value: aa.rate * 100,
        unit: "%",
        target: `≤ ${alpha * 100} %`,
        status: ok && aa.inconsistentLooks === 0 ? "PASS" : "MISS",
        note: `± ${(aa.se * 100).toFixed(2)} % (Monte-Carlo SE, ${EXPERIMENTS} experiments); ${aa.negativeRejections} of ${aa.rejections} on negative lifts; ${aa.inconsistentLooks} looks where the lift interval and p disagree`,
        extra: { se: aa.se, experiments: EXPERIMENTS, rejections: aa.rejections },
      });
    }
    for (const rate of RATES) {
      const ab = simulate({
        rate,
        lift: 0.1,
        experiments: POWER_EXPERIMENTS,
        ...LOOKS,
        options: { alpha },
        seed: 190_000 + Math.round(rate * 1e4) + Math.round(alpha * 100),
      });
      rows.push({
        subject: `A/B ${(rate * 100).toFixed(1)} % +10 %, α ${alpha}: power by 10,000/arm`,
        value: ab.rate * 100,
        unit: "%",
        note: `± ${(ab.se * 100).toFixed(2)} % (Monte-Carlo SE, ${POWER_EXPERIMENTS} experiments); the lift interval missed the true +10 % in ${ab.missedTrueLift}`,
        extra: {
          se: ab.se,
          experiments: POWER_EXPERIMENTS,
          rejections: ab.rejections,
          missedTrueLift: ab.missedTrueLift,
        },
      });
    }
  }
  // Guardrails: the one-sided always-valid test of harm, watched at the same looks.
  const GUARDRAIL_ALPHA = 0.1;
  for (const rate of [0.005, 0.01, 0.05, 0.2]) {
    const aa = simulateGuardrail({
      rate,
      change: 0,
      experiments: EXPERIMENTS,
      ...LOOKS,
      alpha: GUARDRAIL_ALPHA,
      seed: 290_000 + Math.round(rate * 1e4),
    });
    const ok = aa.rate <= GUARDRAIL_ALPHA + 2 * Math.sqrt((GUARDRAIL_ALPHA * 0.9) / EXPERIMENTS);
    rows.push({
      subject: `guardrail A/A ${(rate * 100).toFixed(1)} %, α ${GUARDRAIL_ALPHA}: false alarms`,
      value: aa.rate * 100,
      unit: "%",
      target: `≤ ${GUARDRAIL_ALPHA * 100} %`,
      status: ok ? "PASS" : "MISS",
      note: `± ${(aa.se * 100).toFixed(2)} % (Monte-Carlo SE, ${EXPERIMENTS} experiments, 100 looks)`,
      extra: { se: aa.se, experiments: EXPERIMENTS },
    });
  }
  for (const drop of [0.1, 0.2]) {
    for (const rate of [0.05, 0.2]) {
      const harm = simulateGuardrail({
        rate,
        change: -drop,
        experiments: POWER_EXPERIMENTS,
        ...LOOKS,
        alpha: GUARDRAIL_ALPHA,
        seed: 390_000 + Math.round(rate * 1e4) + Math.round(drop * 100),
      });
      rows.push({
        subject: `guardrail ${(rate * 100).toFixed(1)} % −${drop * 100} %, α ${GUARDRAIL_ALPHA}: harm found by 10,000/arm`,
        value: harm.rate * 100,
        unit: "%",
        note: `± ${(harm.se * 100).toFixed(2)} % (Monte-Carlo SE, ${POWER_EXPERIMENTS} experiments)`,
        extra: { se: harm.se, experiments: POWER_EXPERIMENTS },
      });
    }
  }
  return rows;
}
