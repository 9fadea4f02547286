/**
 * Request and response schemas of environments (docs/api.md "Environments"); the rules beyond
 * them are src/api/services/environments.ts.
 */
import { z } from "@hono/zod-openapi";

export const EnvironmentSchema = z
  .object({
    id: z.string(),
    projectId: z.string(),
    key: z.string().openapi({ example: "production" }),
    name: z.string(),
    sdkKey: z.string().openapi({
      description:
        "Names the datafile (`datafiles/{sdkKey}` in KV); use it in ROUTES `sdk_key` and SDKs.",
    }),
    revision: z
      .number()
      .int()
      .openapi({ description: "Last published datafile revision; 0 = never published." }),
    requireReview: z.boolean().openapi({
      description:
        "Editors' changes to experiments live (Running or Paused) here, and their start or resume here, wait for review by another editor or an admin (docs/approvals.md).",
    }),
    datafileUrl: z.string().openapi({ example: "/_ss/datafiles/Xa3kP0q9ZfT2mN8vB1cD4e.json" }),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Environment");

const ENVIRONMENT_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const environmentFields = z.strictObject({
  key: z
    .string()
    .regex(
      ENVIRONMENT_KEY,
      "lowercase letters, digits, - and _, starting with a letter or digit, at most 64",
    ),
  name: z.string().trim().min(1).max(200),
  requireReview: z.boolean().optional().openapi({
    description:
      "Require review of editors' changes to live experiments here (docs/approvals.md); default false.",
  }),
});

export const EnvironmentCreateSchema = environmentFields.openapi("EnvironmentCreate");

/** The name and `requireReview` change (key and sdkKey are fixed); both optional. */
export const EnvironmentUpdateSchema = environmentFields
  .pick({ name: true, requireReview: true })
  .partial()
  .openapi("EnvironmentUpdate");

export type EnvironmentJson = z.infer<typeof EnvironmentSchema>;
export type EnvironmentCreate = z.infer<typeof EnvironmentCreateSchema>;
export type EnvironmentUpdate = z.infer<typeof EnvironmentUpdateSchema>;
