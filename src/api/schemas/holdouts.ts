/**
 * Request and response schemas of an environment's holdout (docs/holdouts.md, docs/api.md
 * "Holdouts"); the rules beyond them are src/api/services/holdouts.ts.
 */
import { z } from "@hono/zod-openapi";

/** The largest share of visitors a holdout may keep out of every experiment, in percent. */
export const MAX_HOLDOUT_PERCENT = 50;
/** At most this many metrics compared in holdout results. */
export const MAX_HOLDOUT_METRICS = 20;

export const HoldoutSchema = z
  .object({
    environmentId: z.string(),
    percent: z.number().openapi({
      description:
        "Share of the environment's visitors held out of every experiment, in percent (0–50, steps of 0.01). 0 = no holdout.",
      example: 5,
    }),
    metrics: z
      .array(z.string())
      .openapi({ description: "Event ids whose conversions results compare." }),
    holdoutId: z.string().nullable().openapi({
      description:
        "The holdout's id in the datafile (its bucketing key; fixed once set); null until a share is first set.",
    }),
    holdoutKey: z.string().nullable(),
    version: z.number().int().openapi({ description: "The environment's version (ETag)." }),
  })
  .openapi("Holdout");

export const HoldoutUpdateSchema = z
  .strictObject({
    percent: z
      .number()
      .min(0)
      .max(MAX_HOLDOUT_PERCENT)
      .refine((p) => Math.abs(p * 100 - Math.round(p * 100)) < 1e-6, {
        message: "at most 2 decimals (steps of 0.01 %)",
      }),
    metrics: z
      .array(z.string().min(1).max(64))
      .max(MAX_HOLDOUT_METRICS)
      .refine((ids) => new Set(ids).size === ids.length, { message: "duplicate event id" })
      .default([]),
  })
  .openapi("HoldoutUpdate");

export type HoldoutJson = z.infer<typeof HoldoutSchema>;
export type HoldoutUpdate = z.infer<typeof HoldoutUpdateSchema>;
