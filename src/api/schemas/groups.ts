/**
 * Request and response schemas of groups (docs/api.md "Groups"); the rules beyond them are
 * src/api/services/groups.ts.
 */
import { z } from "@hono/zod-openapi";
import { resourceFields } from "./fields";

const policySchema = z.enum(["random", "overlapping"]).openapi({
  description:
    "random: mutually exclusive (each visitor in at most one experiment of the group); overlapping: no group bucketing.",
});

const allocationSchema = z
  .array(
    z.strictObject({
      experimentId: z.string().min(1),
      weight: z
        .number()
        .int()
        .min(0)
        .max(10000)
        .openapi({ description: "Basis points of all visitors (10000 = 100%)." }),
    }),
  )
  .openapi({
    description:
      "Traffic per experiment of the group, in basis points of all visitors; the weights sum to at most 10000 (the rest is in none of the group's experiments). Experiments must belong to this group (their groupId).",
    example: [
      { experimentId: "204819230590", weight: 5000 },
      { experimentId: "204819230591", weight: 5000 },
    ],
  });

export const GroupSchema = z
  .object({
    ...resourceFields,
    name: z.string(),
    policy: policySchema,
    allocation: z.array(z.object({ experimentId: z.string(), weight: z.number().int() })),
    experimentIds: z
      .array(z.string())
      .openapi({ description: "The experiments whose groupId is this group." }),
  })
  .openapi("Group");

const groupFields = z.strictObject({
  name: z.string().trim().min(1).max(200),
  policy: policySchema.optional().openapi({ description: "Default random." }),
  allocation: allocationSchema.optional(),
});

export const GroupCreateSchema = groupFields.openapi("GroupCreate");

/** Every field of a create, optional; `policy` without the create's default. */
export const GroupUpdateSchema = groupFields
  .partial()
  .extend({ policy: policySchema.optional() })
  .openapi("GroupUpdate");

export type GroupJson = z.infer<typeof GroupSchema>;
export type GroupCreate = z.infer<typeof GroupCreateSchema>;
export type GroupUpdate = z.infer<typeof GroupUpdateSchema>;
