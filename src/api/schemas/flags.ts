/**
 * Request and response schemas of feature flags (docs/flags.md): variables with typed defaults,
 * variations with variable values, and per environment the toggle, the delivery rules and what
 * Everyone Else gets. The rules beyond the schemas live in src/api/services/flags.ts.
 */
import { z } from "@hono/zod-openapi";
import { audienceConditionsSchema } from "./experiments";
import { descriptionSchema, keySchema, nameSchema, resourceFields } from "./fields";

/** The variable types of the datafile (docs/flags.md "Variables"). */
export const FLAG_VARIABLE_TYPES = ["boolean", "integer", "double", "string", "json"] as const;

/** Most variables, variations and delivery rules a flag may have. */
export const MAX_FLAG_VARIABLES = 50;
export const MAX_FLAG_VARIATIONS = 50;
export const MAX_DELIVERY_RULES = 50;
/** Longest string variable value, and longest JSON variable value once serialized. */
export const MAX_VARIABLE_VALUE_CHARS = 10_000;

/** The built-in variation every flag has first: disabled, every variable at its default. */
export const OFF_VARIATION_KEY = "off";

const variableValueSchema = z.unknown().openapi({
  description:
    "A value of the variable's type: boolean; integer (a safe integer, |n| ≤ 2^53 − 1); double (a finite number); string; json (a JSON object).",
  example: true,
});

const variableInputSchema = z
  .strictObject({
    id: z.string().optional().openapi({ description: "Keep an existing variable's id." }),
    key: keySchema,
    type: z.enum(FLAG_VARIABLE_TYPES),
    defaultValue: variableValueSchema,
  })
  .openapi("FlagVariableInput");

const variationInputSchema = z
  .strictObject({
    id: z.string().optional().openapi({ description: "Keep an existing variation's id." }),
    key: keySchema,
    name: nameSchema.optional(),
    variables: z
      .record(z.string(), variableValueSchema)
      .optional()
      .openapi({ description: "Variable key → value; variables left out keep their default." }),
  })
  .openapi("FlagVariationInput");

const deliveryRuleInputSchema = z
  .strictObject({
    id: z.string().optional().openapi({ description: "Keep an existing rule's id (and buckets)." }),
    key: keySchema,
    audienceConditions: audienceConditionsSchema.nullable().optional(),
    traffic: z.number().int().min(0).max(10000).openapi({
      description: "Basis points (10000 = 100%) of the rule's audience that get the variation.",
    }),
    variationKey: keySchema.optional().openapi({ description: 'Default "on".' }),
  })
  .openapi("DeliveryRuleInput");

const environmentInputSchema = z
  .strictObject({
    enabled: z.boolean().optional().openapi({
      description:
        "The flag's toggle in this environment: off, every visitor gets the off variation and no rule applies.",
    }),
    rules: z.array(deliveryRuleInputSchema).max(MAX_DELIVERY_RULES).optional().openapi({
      description:
        "Targeted delivery rules in order (replacing the current ones): the first whose audience matches decides; a visitor in a rule's audience but outside its traffic goes straight to Everyone Else.",
    }),
    defaultVariationKey: keySchema.optional().openapi({
      description: 'What Everyone Else gets (default "off").',
    }),
  })
  .openapi("FlagEnvironmentInput");

const flagFields = {
  name: nameSchema.optional(),
  description: descriptionSchema.optional(),
  variables: z.array(variableInputSchema).max(MAX_FLAG_VARIABLES).optional().openapi({
    description: "Replaces the variables (a variable keeps its id by id, else by key).",
  }),
  variations: z.array(variationInputSchema).max(MAX_FLAG_VARIATIONS).optional().openapi({
    description:
      'Replaces the variations; "off" (disabled, defaults) is always there, first. Default: off and on.',
  }),
  environments: z
    .record(z.string(), environmentInputSchema)
    .optional()
    .openapi({
      description:
        "Per environment key: the fields sent replace that environment's; environments left out keep theirs.",
      example: {
        production: {
          enabled: true,
          rules: [{ key: "beta_users", audienceConditions: ["or", "204819230584"], traffic: 5000 }],
        },
      },
    }),
};

/** `POST /projects/{projectId}/flags`. */
export const FlagCreateSchema = z
  .strictObject({ key: keySchema, ...flagFields })
  .openapi("FlagCreate");

/** `PATCH /flags/{id}`: every field optional; `archived` takes it out of every datafile. */
export const FlagUpdateSchema = z
  .strictObject({
    key: keySchema.optional(),
    ...flagFields,
    archived: z.boolean().optional().openapi({
      description: "Archived flags are left out of the datafiles (refused while an A/B rule runs).",
    }),
  })
  .openapi("FlagUpdate");

const deliveryRuleSchema = z
  .object({
    id: z.string(),
    key: z.string(),
    audienceConditions: z.unknown().openapi({ description: "Tree over audience ids, or null." }),
    traffic: z.number().int(),
    variationKey: z.string(),
  })
  .openapi("DeliveryRule");

export const FlagSchema = z
  .object({
    ...resourceFields,
    key: z.string(),
    name: z.string(),
    description: z.string(),
    variables: z.array(
      z.object({
        id: z.string(),
        key: z.string(),
        type: z.enum(FLAG_VARIABLE_TYPES),
        defaultValue: z.unknown(),
      }),
    ),
    variations: z.array(
      z.object({
        id: z.string(),
        key: z.string(),
        name: z.string(),
        featureEnabled: z.boolean(),
        variables: z.record(z.string(), z.unknown()),
      }),
    ),
    environments: z
      .record(
        z.string(),
        z.object({
          enabled: z.boolean(),
          rules: z.array(deliveryRuleSchema),
          defaultVariationKey: z.string(),
        }),
      )
      .openapi({ description: "Every environment of the project, by key." }),
    experimentIds: z.array(z.string()).openapi({
      description:
        "The flag's A/B rules: experiments with this flagId, in the order the SDK evaluates them (creation).",
    }),
    archived: z.boolean(),
  })
  .openapi("Flag");

export type FlagJson = z.infer<typeof FlagSchema>;
export type FlagCreate = z.infer<typeof FlagCreateSchema>;
export type FlagUpdate = z.infer<typeof FlagUpdateSchema>;
export type FlagEnvironmentInput = z.infer<typeof environmentInputSchema>;
