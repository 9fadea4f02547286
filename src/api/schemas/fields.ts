/**
 * Request and response schemas shared by the resources (docs/api.md): keys, names, path
 * parameters, the fields every resource has, and what a write published.
 */
import { z } from "@hono/zod-openapi";

/** Keys of pages, events, lists and experiments (Optimizely's key rules, a little wider). */
export const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const keySchema = z
  .string()
  .regex(KEY_PATTERN, "1–64 characters: letters, digits, _ . - (starting with a letter or digit)")
  .openapi({ example: "checkout_button" });
export const nameSchema = z.string().max(200);
export const descriptionSchema = z.string().max(5000);

/** `{projectId}` path parameter. */
export const ProjectParams = z.object({
  projectId: z
    .string()
    .openapi({ param: { name: "projectId", in: "path" }, example: "204819230581" }),
});

/** `{id}` path parameter. */
export const IdParams = z.object({
  id: z.string().openapi({ param: { name: "id", in: "path" }, example: "204819230582" }),
});

/** Fields every resource has. */
export const resourceFields = {
  id: z.string().openapi({ example: "204819230582" }),
  projectId: z.string().openapi({ example: "204819230581" }),
  version: z
    .number()
    .int()
    .openapi({ description: 'Bumped by every change; the ETag is W/"v<version>".' }),
  createdAt: z.string(),
  updatedAt: z.string(),
};

/** What a write published (one entry per environment of the project). */
export const PublishResultSchema = z
  .object({
    environmentId: z.string(),
    environmentKey: z.string(),
    sdkKey: z.string(),
    revision: z.number().int(),
    changed: z.boolean().openapi({
      description: "False when the datafile content did not change (nothing written).",
    }),
    warnings: z.array(
      z.object({ path: z.string(), message: z.string(), severity: z.enum(["error", "warning"]) }),
    ),
  })
  .openapi("PublishResult");

export const PublishedField = z.array(PublishResultSchema).openapi({
  description:
    "The datafile revisions this change published, one per environment of the project (docs/api.md: changes publish in the same request).",
});

/** The body of a DELETE: what was deleted and what it published. */
export const DeletedSchema = z
  .object({ id: z.string(), deleted: z.literal(true), published: PublishedField })
  .openapi("Deleted");
