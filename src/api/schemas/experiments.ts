/**
 * Request and response schemas of experiments (docs/api.md "Experiments"): create and update
 * bodies (variations, multivariate sections, metrics, traffic, audience conditions, forced
 * variations, group), the experiment as the API returns it, and the status actions' body and
 * result. The rules the schemas cannot express live in src/api/services/experiment-plan.ts.
 */
import { z } from "@hono/zod-openapi";
import { ALLOCATION_POLICIES, WEB_EXPERIMENT_TYPES } from "../../core/datafile-parse";
import { changeSchema, webMetricSchema } from "../../core/datafile-schema";
import { conditionTreeSchema } from "./conditions";
import { descriptionSchema, keySchema, nameSchema, PublishedField, resourceFields } from "./fields";

const MAX_VARIATIONS = 100;
const MAX_SECTIONS = 10;
const MAX_SECTION_VARIATIONS = 20;
/** Most combinations a multivariate experiment may have (each gets 10000 / n basis points). */
export const MAX_COMBINATIONS = 256;

/** The statuses of an experiment in one environment (`experiment_status.status`). */
const EXPERIMENT_STATUSES = ["Not started", "Running", "Paused", "Archived"] as const;

/** The status actions: `POST /experiments/{id}/<action>` (docs/api.md "Experiments"). */
export const EXPERIMENT_ACTIONS = ["start", "pause", "resume", "archive"] as const;
export type ExperimentAction = (typeof EXPERIMENT_ACTIONS)[number];

/** The environment the actions apply to when the body names none (docs/api.md). */
export const DEFAULT_ACTION_ENVIRONMENT = "production";

// ---- requests

/** The datafile's Change schema (src/core/datafile-schema.ts), as one OpenAPI component. */
const ChangeComponent = changeSchema.openapi("Change");

const changesSchema = z.array(ChangeComponent).max(500).openapi({
  description:
    "Changes (docs/changes.md): attribute, insert_html, move, custom_css, custom_code, redirect.",
});

const metricSchema = z.strictObject(webMetricSchema.shape).openapi("Metric", {
  description:
    'eventId: an event of the project; aggregator unique | count | sum (sum needs field revenue | value); winningDirection increasing | decreasing; guardrail {action: mark | pause}: a significant harm on this metric marks the experiment (and pauses it with pause; docs/statistics.md "Guardrails").',
  example: { eventId: "204819230583", aggregator: "unique", winningDirection: "increasing" },
});

const weightSchema = z.number().int().min(0).max(10000).openapi({
  description: "Basis points (10000 = 100%); the weights of an experiment sum to 10000.",
});

const VariationInputSchema = z
  .strictObject({
    id: z.string().optional().openapi({
      description: "On PATCH: keep this variation's id (and buckets) while changing its key.",
    }),
    key: keySchema,
    name: nameSchema.optional(),
    weight: weightSchema,
    changes: changesSchema.optional(),
    featureEnabled: z.boolean().optional(),
  })
  .openapi("VariationInput");

const SectionVariationInputSchema = z
  .strictObject({
    id: z.string().optional(),
    key: keySchema.optional().openapi({ description: "Default: derived from the name." }),
    name: z.string().trim().min(1).max(200),
    changes: changesSchema.optional(),
  })
  .openapi("SectionVariationInput");

const SectionInputSchema = z
  .strictObject({
    id: z.string().optional(),
    name: z.string().trim().min(1).max(200),
    variations: z.array(SectionVariationInputSchema).min(1).max(MAX_SECTION_VARIATIONS),
  })
  .openapi("SectionInput");

/** An audience-condition tree over audience ids (experiments, flags' delivery rules). */
export const audienceConditionsSchema = conditionTreeSchema(
  z.string().min(1),
  'An and/or/not tree over audience ids of the project, e.g. ["or", "204819230584", "204819230585"]; null = everyone.',
  ["and", "204819230584", ["not", "204819230585"]],
);

const forcedVariationsSchema = z.record(z.string().min(1).max(255), z.string()).openapi({
  description: "QA whitelist: visitor id → variation key.",
  example: { "qa-visitor-1": "treatment" },
});

const experimentFields = {
  name: nameSchema.optional(),
  description: descriptionSchema.optional(),
  pageIds: z.array(z.string()).max(50).optional().openapi({
    description:
      "Pages of the project the experiment runs on: at least one, except for an A/B rule of a flag (flagId), which runs wherever the flag is decided.",
  }),
  metrics: z
    .array(metricSchema)
    .min(1)
    .max(50)
    .openapi({ description: "The first is the primary metric." }),
  audienceConditions: audienceConditionsSchema.nullable().optional(),
  traffic: weightSchema.optional().openapi({
    description:
      "Basis points of eligible visitors in the experiment (default 10000); the rest see the original.",
  }),
  variations: z.array(VariationInputSchema).max(MAX_VARIATIONS).optional().openapi({
    description:
      "ab and split_url (at least 2; weights sum to 10000; split_url: every variation but the first has exactly one redirect change). Multivariate experiments get theirs from sections.",
  }),
  sections: z.array(SectionInputSchema).min(1).max(MAX_SECTIONS).nullable().optional().openapi({
    description:
      "Multivariate only: the variations are the combinations of one variation per section.",
  }),
  sharedChanges: changesSchema.optional().openapi({ description: "Applied in every variation." }),
  forcedVariations: forcedVariationsSchema.optional(),
  groupId: z
    .string()
    .nullable()
    .optional()
    .openapi({ description: "Mutually exclusive group (see Groups)." }),
  flagId: z.string().nullable().optional().openapi({
    description:
      "Makes this experiment an A/B rule of the feature flag (see Flags): type ab only, every variation key names one of the flag's variations (their featureEnabled and variable values are the flag variation's).",
  }),
  allocationPolicy: z
    .enum(ALLOCATION_POLICIES)
    .optional()
    .openapi({ description: "manual (default) or bandit." }),
};

/** `POST /projects/{projectId}/experiments`. */
const experimentCreateFields = z.strictObject({
  key: keySchema,
  type: z.enum(WEB_EXPERIMENT_TYPES).optional().openapi({ description: "Default ab." }),
  ...experimentFields,
});

export const ExperimentCreateSchema = experimentCreateFields
  .superRefine(
    (body, ctx) => {
      // Only an A/B rule of a flag runs without pages.
      const pageIds: unknown = body.pageIds;
      if (
        (body.flagId === undefined || body.flagId === null) &&
        (pageIds === undefined || (Array.isArray(pageIds) && pageIds.length === 0))
      )
        ctx.addIssue({
          code: "custom",
          path: ["pageIds"],
          message:
            "required: at least one page (only an A/B rule of a flag, with flagId, runs without pages)",
        });
    },
    {
      // Run beside the other fields' errors, so one 422 names them all.
      when: (payload) => typeof payload.value === "object" && payload.value !== null,
    },
  )
  .openapi("ExperimentCreate");

/**
 * `PATCH /experiments/{id}`: every field of the create body, optional. `type` is declared again
 * without the create body's "Default ab.": an update keeps the current type.
 */
export const ExperimentUpdateSchema = experimentCreateFields
  .partial()
  .extend({ type: z.enum(WEB_EXPERIMENT_TYPES).optional() })
  .openapi("ExperimentUpdate");

export type ExperimentCreate = z.infer<typeof ExperimentCreateSchema>;
export type ExperimentUpdate = z.infer<typeof ExperimentUpdateSchema>;

/** The body of the status actions (optional). */
export const ExperimentActionBodySchema = z
  .strictObject({
    environment: z
      .string()
      .min(1)
      .optional()
      .openapi({
        description: `Environment key; default "${DEFAULT_ACTION_ENVIRONMENT}".`,
        example: "production",
      }),
  })
  .openapi("ExperimentActionBody");

// ---- responses

const VariationSchema = z
  .object({
    id: z.string(),
    key: z.string(),
    name: z.string().optional(),
    weight: z.number().int(),
    changes: z.array(z.unknown()),
    featureEnabled: z.boolean().optional(),
    sectionVariationIds: z.array(z.string()).optional(),
  })
  .openapi("Variation");

/** An experiment as the API returns it. */
export const ExperimentSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    description: z.string(),
    type: z.enum(WEB_EXPERIMENT_TYPES),
    layerId: z.string(),
    groupId: z.string().nullable(),
    flagId: z.string().nullable(),
    traffic: z.number().int(),
    allocationPolicy: z.enum(ALLOCATION_POLICIES),
    audienceConditions: z
      .unknown()
      .openapi({ description: "Tree over audience ids, or null (everyone)." }),
    pageIds: z.array(z.string()),
    metrics: z.array(z.unknown()),
    variations: z.array(VariationSchema),
    sections: z.unknown().openapi({
      description:
        "Multivariate: [{id, name, variations: [{id, key, name, changes}]}]; otherwise null.",
    }),
    sharedChanges: z.array(z.unknown()),
    forcedVariations: z.record(z.string(), z.string()),
    archived: z.boolean().openapi({ description: "True once archived in every environment." }),
    status: z.record(z.string(), z.enum(EXPERIMENT_STATUSES)).openapi({
      description: "Status per environment key.",
      example: { production: "Running", development: "Not started" },
    }),
  })
  .openapi("Experiment");

export type ExperimentJson = z.infer<typeof ExperimentSchema>;

/** What a status action answers. */
export const ExperimentActionResultSchema = z
  .object({
    experiment: ExperimentSchema,
    environment: z.string().openapi({ description: "The environment key the action applied to." }),
    previousStatus: z.enum(EXPERIMENT_STATUSES),
    status: z.enum(EXPERIMENT_STATUSES),
    published: PublishedField,
  })
  .openapi("ExperimentActionResult");

export type ExperimentActionResult = z.infer<typeof ExperimentActionResultSchema>;
