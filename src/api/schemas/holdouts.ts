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

/** Query of the holdout results: the analysis mode and significance level (docs/statistics.md). */
export const HoldoutResultsQuerySchema = z.object({
  mode: z
    .enum(["sequential", "fixed"])
    .optional()
    .openapi({
      param: { name: "mode", in: "query" },
      description: "sequential (default, safe to look at any time) or fixed (fixed-horizon).",
    }),
  alpha: z
    .string()
    .optional()
    .openapi({
      param: { name: "alpha", in: "query" },
      description: "Significance level, 0 < alpha ≤ 0.5; default 0.1.",
    }),
  since: z
    .enum(["share", "all"])
    .optional()
    .openapi({
      param: { name: "since", in: "query" },
      description:
        'share (default): the visitors first exposed under the latest share (a share change starts a new count); all: every visitor, the sample-ratio check weighted by the share each was decided with (docs/holdouts.md "Share changes").',
    }),
});

const SharePeriodSchema = z
  .object({
    percent: z.number().nullable().openapi({
      description:
        "The share its datafiles held out (0 = no holdout); null for revisions published before shares were recorded.",
    }),
    fromRevision: z.number().int(),
    toRevision: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Its last revision; null while it is the current share." }),
    from: z.string().openapi({ description: "When its first revision was published." }),
  })
  .openapi("HoldoutSharePeriod");

const GroupMetricSchema = z.object({
  visitors: z.number().int(),
  converters: z.number().int(),
  rate: z.number().nullable(),
});

export const HoldoutResultsSchema = z
  .object({
    environmentId: z.string(),
    holdoutId: z.string(),
    percent: z.number().openapi({ description: "The share set now, percent." }),
    since: z.enum(["share", "all"]),
    period: SharePeriodSchema.nullable().openapi({
      description:
        "since=share: the share period counted (the latest with a share above 0); null when no revision recorded a share (everyone is counted) and for since=all.",
    }),
    shares: z.array(SharePeriodSchema).openapi({
      description: "Every share period of the environment's published revisions, oldest first.",
    }),
    mixedShares: z.boolean().openapi({
      description:
        "The counted visitors were decided under more than one share: visitors moved by a change stay in their first group, so read the comparison with care.",
    }),
    analysis: z.object({ mode: z.string(), alpha: z.number() }),
    srm: z
      .object({
        checked: z.boolean().openapi({
          description: "false until each group has at least 8 visitors.",
        }),
        flagged: z.boolean().openapi({
          description:
            'p < 0.001: the groups\' sizes are not the share they were decided with — the groups were not recorded alike (docs/holdouts.md "Results"): do not trust the comparison.',
        }),
        chiSquare: z.number().nullable(),
        pValue: z.number().nullable(),
      })
      .openapi({ description: "Sample-ratio mismatch of the two groups against the share." }),
    groups: z.array(
      z.object({
        key: z.enum(["everyone_else", "holdout"]),
        variationId: z.string(),
        visitors: z.number().int(),
      }),
    ),
    metrics: z.array(
      z.object({
        eventId: z.string(),
        eventKey: z.string().nullable(),
        everyoneElse: GroupMetricSchema,
        holdout: GroupMetricSchema,
        lift: z
          .object({
            estimate: z.number(),
            lower: z.number().nullable(),
            upper: z.number().nullable(),
          })
          .nullable()
          .openapi({
            description:
              "The holdout's conversion rate relative to everyone else's (−0.05 = 5 % lower), with the analysis mode's interval; null without data.",
          }),
        pValue: z.number().nullable(),
        significant: z.boolean(),
      }),
    ),
  })
  .openapi("HoldoutResults");
