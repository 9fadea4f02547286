/**
 * Splitstream's statistics (docs/statistics.md), pure functions over mergeable sufficient statistics
 * `{ n, sum, sumSq }`: Welch and always-valid sequential tests of the relative lift, multiple-
 * comparison corrections, the sample-ratio-mismatch check and sample sizes. No I/O, no
 * platform APIs; checked against scipy/statsmodels by test/core/stats.test.ts with fixtures from
 * scripts/stats-reference.py.
 */
export {
  EMPTY_STATS,
  isValidStats,
  mean,
  mergeStats,
  variance,
  type SufficientStats,
} from "./sufficient-stats";
export {
  chiSquareSf,
  normalCdf,
  normalPdf,
  normalQuantile,
  studentTCdf,
  studentTPdf,
  studentTQuantile,
  twoSidedStudentTP,
} from "./distributions";
export { welchTest, type WelchEstimate, type WelchResult } from "./welch";
export {
  fiellerRatioInterval,
  oneSidedSequentialTest,
  sequentialRho,
  sequentialTest,
  sequentialThreshold,
  type OpenInterval,
} from "./sequential";
export { benjaminiHochberg, holm } from "./multiple-testing";
export {
  sampleRatioMismatch,
  type SampleRatioMismatchOptions,
  type SampleRatioMismatchResult,
} from "./srm";
export { visitorsNeeded, type SampleSizeOptions } from "./sample-size";
export {
  compareVariation,
  DEFAULT_COMPARE_OPTIONS,
  sequentialVariances,
  testHarm,
  type HarmTest,
  NOT_ENOUGH_DATA_REASONS,
  type ArmSummary,
  type CompareOptions,
  type Comparison,
  type EstimateTest,
  type LiftTest,
  type NotEnoughDataReason,
  type TestMode,
  type Verdict,
} from "./compare";
export {
  cupedRegression,
  cupedTest,
  type CovariateStats,
  type CupedRegression,
  type CupedTest,
} from "./cuped";
