/**
 * Request and response schemas of the bandit routes (docs/api.md "Bandits", docs/bandits.md):
 * the allocation history and serving a winner.
 */
import { z } from "@hono/zod-openapi";
import { ExperimentSchema } from "./experiments";
import { PublishedField } from "./fields";

/**
 * Why a history row was recorded: the bandit's verdicts (warming_up, thompson, winner:
 * src/core/bandit.ts), a skipped round or refused counts, a served winner. The rows' type is
 * AllocationReason in src/api/store/bandit-allocations.ts.
 */
export const ALLOCATION_REASONS = [
  "warming_up",
  "thompson",
  "winner",
  "skipped",
  "invalid_counts",
  "winner_served",
] as const;

const numberMap = z.record(z.string(), z.number());

/** One row of the allocation history (OpenAPI component `BanditAllocation`). */
export const AllocationSchema = z
  .object({
    id: z.number().int(),
    createdAt: z.string(),
    round: z.number().int().openapi({ description: "1, 2, …; the PRNG seed is `<id>:<round>`." }),
    reason: z.enum(ALLOCATION_REASONS).openapi({
      description:
        "warming_up (equal split until every variation has 100 visitors), thompson, winner (P(best) passed the threshold), skipped (not usable as a bandit: see message), invalid_counts (the counts were refused: see message), winner_served (POST …/serve-winner).",
    }),
    weights: numberMap.openapi({
      description: "Variation id → basis points in effect after this row.",
    }),
    previousWeights: numberMap,
    probabilityBest: numberMap.openapi({
      description: "Variation id → probability of being best on the primary metric.",
    }),
    winner: z.string().nullable().openapi({ description: "Variation id of the declared winner." }),
    visitors: numberMap.openapi({ description: "Variation id → unique visitors used." }),
    conversions: numberMap.openapi({
      description: "Variation id → unique converters on the primary metric used.",
    }),
    applied: z
      .boolean()
      .openapi({ description: "True when these weights were written and published." }),
    revision: z.number().int().nullable().openapi({
      description: "The production datafile revision that published them (null: none).",
    }),
    actor: z.string().openapi({ description: '"bandit", or the token id of an API call.' }),
    message: z.string().nullable(),
  })
  .openapi("BanditAllocation");

/** `GET /experiments/{id}/allocations`. */
export const AllocationHistorySchema = z
  .object({
    experimentId: z.string(),
    allocationPolicy: z.enum(["manual", "bandit"]),
    items: z.array(AllocationSchema).openapi({ description: "Oldest first." }),
  })
  .openapi("BanditAllocationHistory");

/** The body of `POST /experiments/{id}/serve-winner` (optional). */
export const ServeWinnerBodySchema = z
  .strictObject({
    variationId: z.string().min(1).optional().openapi({
      description:
        "Variation id or key to serve; default: the winner of the bandit's latest verdict (409 when it has none).",
    }),
  })
  .openapi("ServeWinnerBody");

/** What `POST /experiments/{id}/serve-winner` answers. */
export const ServeWinnerResultSchema = z
  .object({
    experiment: ExperimentSchema,
    winner: z.object({ id: z.string(), key: z.string() }),
    published: PublishedField,
  })
  .openapi("ServeWinnerResult");

/** One history row as the API returns it. */
export type AllocationJson = z.infer<typeof AllocationSchema>;
export type AllocationHistory = z.infer<typeof AllocationHistorySchema>;
export type ServeWinnerBody = z.infer<typeof ServeWinnerBodySchema>;
export type ServeWinnerResult = z.infer<typeof ServeWinnerResultSchema>;
