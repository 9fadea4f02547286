/**
 * Request and response schemas of projects (docs/api.md "Projects"); the rules beyond them are
 * src/api/services/projects.ts.
 */
import { z } from "@hono/zod-openapi";
import { SDK_KEY_PATTERN } from "../../edge/routes";
import { EnvironmentSchema } from "./environments";

export const ProjectSchema = z
  .object({
    id: z.string().openapi({ example: "204819230581" }),
    name: z.string(),
    description: z.string(),
    accountId: z
      .string()
      .openapi({ description: "Datafile `accountId`; shared by the projects of one deployment." }),
    version: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Project");

export const ProjectWithEnvironmentsSchema = ProjectSchema.extend({
  environments: z.array(EnvironmentSchema),
}).openapi("ProjectWithEnvironments");

const projectFields = z.strictObject({
  name: z.string().trim().min(1).max(200),
  description: z.string().max(5000).optional(),
});

const sdkKeySchema = z
  .string()
  .regex(SDK_KEY_PATTERN, "1–128 characters: letters, digits, _ . - (not first)")
  .openapi({ example: "demo" });

export const ProjectCreateSchema = projectFields
  .extend({
    sdkKeys: z
      .strictObject({ production: sdkKeySchema.optional(), development: sdkKeySchema.optional() })
      .optional()
      .openapi({
        description:
          "Keep existing SDK keys instead of new random ones (a site moving from Optimizely keeps the key its apps and the edge's ROUTES name; `npm start` creates the demo project with `production: \"demo\"`). 409 when an environment already has the key. When the key's datafile is already in KV (published outside the API), the environment's revisions continue after it.",
      }),
  })
  .openapi("ProjectCreate");

/** Every field of a create, optional. */
export const ProjectUpdateSchema = projectFields.partial().openapi("ProjectUpdate");

export type ProjectJson = z.infer<typeof ProjectSchema>;
export type ProjectWithEnvironmentsJson = z.infer<typeof ProjectWithEnvironmentsSchema>;
export type ProjectCreate = z.infer<typeof ProjectCreateSchema>;
export type ProjectUpdate = z.infer<typeof ProjectUpdateSchema>;
