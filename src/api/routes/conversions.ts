/**
 * Offline conversions (docs/api.md "Conversions"): `POST /conversions` (editor) takes conversions
 * that happened away from the site by visitor id and puts them on the EVENTS queue. The handler
 * parses each item against the OfflineConversion schema on its own (a bad item must not refuse
 * the good ones); the checks, the lookups and the queueing are src/api/services/conversions.ts.
 */
import { createRoute } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { ErrorSchema, errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import { issuesToDetails } from "../schemas/validation-error";
import {
  ConversionsBodySchema,
  ConversionsResultSchema,
  MAX_OFFLINE_CONVERSIONS,
  OfflineConversionSchema,
} from "../schemas/conversions";
import {
  conversionItemPath,
  queueOfflineConversions,
  type ParsedConversion,
} from "../services/conversions";

/** Item `index` of the body's `conversions` through the OfflineConversion schema. */
function parseConversionItem(item: unknown, index: number): ParsedConversion {
  const parsed = OfflineConversionSchema.safeParse(item);
  if (parsed.success) return { ok: true, conversion: parsed.data };
  // A failed parse has at least one issue.
  const [detail] = issuesToDetails(parsed.error.issues, "body");
  // issuesToDetails roots paths at $.body; the item lives at $.body.conversions[index].
  const sub = detail!.path.replace(/^\$\.body/, "");
  return {
    ok: false,
    rejected: { index, path: `${conversionItemPath(index)}${sub}`, message: detail!.message },
  };
}

export function registerConversionRoutes(app: ApiApp): void {
  app.openAPIRegistry.register("OfflineConversion", OfflineConversionSchema);
  app.openapi(
    createRoute({
      method: "post",
      path: "/conversions",
      tags: ["Results"],
      summary: "Send offline conversions",
      description: `Up to ${MAX_OFFLINE_CONVERSIONS} conversions by visitor id, counted under the environment's sdkKey like browser conversions (attributed to every experiment whose first impression of the visitor came at or before each one). Each item is checked on its own: 202 with the accepted count and the refused items (JSON path and reason) — the valid ones are queued; 422 when none is valid. \`uuid\` makes re-sending harmless. 503 with Retry-After when the event queue refuses (send the same request again).`,
      middleware: [requireRole("editor")] as const,
      request: { body: jsonBody(ConversionsBodySchema) },
      responses: {
        202: jsonResponse(ConversionsResultSchema, "Queued (possibly with refused items)"),
        ...errorResponses(400, 401, 403, 413, 415, 422),
        503: {
          description: "The event queue refused (queue_unavailable); retry after Retry-After",
          content: { "application/json": { schema: ErrorSchema } },
        },
      },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const result = await queueOfflineConversions(c.env, c.get("actor"), {
        projectId: body.projectId,
        environment: body.environment,
        items: body.conversions.map(parseConversionItem),
      });
      return c.json(result, 202);
    },
  );
}
