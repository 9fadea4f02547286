/**
 * Request schemas of condition trees (docs/api.md "Audiences", "Pages"): audience leaves, URL
 * leaves, and the and/or/not tree around them, validated with precise JSON paths.
 */
import { z } from "@hono/zod-openapi";
import { AUDIENCE_MATCH_TYPES, URL_MATCH_TYPES } from "../../core/datafile-parse";
import { parseSemver } from "../../core/semver";

import { type Seg, walkConditionTree } from "./condition-tree";

/** Zod issues of a nested parse, reported at `path` + the issue's path (as src/api/schemas/validation-error.ts does). */
function reportIssues(
  issues: readonly z.core.$ZodIssue[],
  path: readonly Seg[],
  report: (path: Seg[], message: string) => void,
): void {
  for (const issue of issues) {
    const at = [...path, ...issue.path.map((p) => (typeof p === "symbol" ? String(p) : p))];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) report([...at, key], "unknown field");
    } else {
      report(at, issue.message);
    }
  }
}

/**
 * A condition-tree request field: a JSON array whose structure and leaves (`leafSchema`) are
 * validated with precise paths (`$.body.conditions[1][2].match`).
 */
export function conditionTreeSchema(leafSchema: z.ZodType, description: string, example: unknown) {
  return z
    .array(z.unknown())
    .superRefine((tree, ctx) => {
      const report = (path: Seg[], message: string) =>
        ctx.addIssue({ code: "custom", path, message });
      walkConditionTree(
        tree,
        (node, path) => {
          const parsed = leafSchema.safeParse(node);
          if (!parsed.success) reportIssues(parsed.error.issues, path, report);
        },
        report,
      );
    })
    .openapi({ description, example });
}

const MAX_SAFE = 2 ** 53;

/** One audience leaf: `{type: "custom_attribute", name, match, value}`; value checked per match type. */
export const audienceConditionSchema = z
  .strictObject({
    type: z.literal("custom_attribute"),
    name: z.string().min(1).max(255),
    match: z.enum(AUDIENCE_MATCH_TYPES).optional(),
    value: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
  })
  .superRefine((leaf, ctx) => {
    const bad = (message: string) => ctx.addIssue({ code: "custom", path: ["value"], message });
    const { match, value } = leaf;
    switch (match) {
      case undefined:
      case "exact":
        if (typeof value !== "string" && typeof value !== "boolean" && typeof value !== "number")
          bad(`match "exact" needs a string, number or boolean value`);
        else if (typeof value === "number" && Math.abs(value) > MAX_SAFE)
          bad("numbers must be within ±2^53");
        break;
      case "exists":
        if (value !== undefined && value !== null) bad(`match "exists" takes no value`);
        break;
      case "substring":
        if (typeof value !== "string") bad(`match "substring" needs a string value`);
        break;
      case "gt":
      case "ge":
      case "lt":
      case "le":
        if (typeof value !== "number" || !Number.isFinite(value) || Math.abs(value) > MAX_SAFE)
          bad(`match "${match}" needs a finite number value (within ±2^53)`);
        break;
      case "in_list":
        if (typeof value !== "string" || value === "")
          bad(`match "in_list" needs the key of a list of this project`);
        break;
      default:
        // semver_*
        if (typeof value !== "string")
          bad(`match "${match}" needs a version string such as "2.1.0"`);
        else if (parseSemver(value) === null)
          bad(
            `${JSON.stringify(value)} is not a version (1–3 numeric parts, optional -prerelease or +build)`,
          );
    }
  })
  .openapi("AudienceCondition", {
    description:
      "A leaf of an audience condition tree. `name`: an attribute key of the project or a request attribute (geo.country, device.type, query.<name>, cookie.<name>, header.<name>, utm.source, …; docs/visitors.md). `match` defaults to exact.",
    example: { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
  });

/** One URL leaf of a page: `{match, value}` (regex values must compile). */
export const urlConditionSchema = z
  .strictObject({
    match: z.enum(URL_MATCH_TYPES),
    value: z.string().min(1).max(2048),
  })
  .superRefine((leaf, ctx) => {
    if (leaf.match !== "regex") return;
    try {
      new RegExp(leaf.value);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        path: ["value"],
        message: `invalid regular expression: ${(error as Error).message.replace(/^Invalid regular expression: /, "")}`,
      });
    }
  })
  .openapi("UrlCondition", {
    description:
      "A URL match: simple (host + path, ignoring scheme, www., query, hash, trailing slash), exact, substring (case-insensitive), regex (case-sensitive, full URL).",
    example: { match: "simple", value: "https://shop.example.com/products" },
  });
