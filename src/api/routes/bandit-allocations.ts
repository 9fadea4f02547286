/**
 * Bandit routes (docs/api.md "Bandits", docs/bandits.md "Running a bandit"):
 *
 * - `GET /experiments/{id}/allocations` (viewer): the allocation history the scheduled handler
 *   recorded (src/api/services/bandit-round.ts), oldest first — the weights over time, probability of being
 *   best, the winner, the counts each re-allocation used;
 * - `POST /experiments/{id}/serve-winner` (editor): serves one variation to 100 % of new
 *   visitors — the bandit's declared winner, or the variation named in the body — by setting its
 *   weight to 10000 and the others' to 0 and switching the allocation policy to `manual` (so the
 *   next round leaves it alone); publishes in the same request and records a `winner_served` row.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import { requireRole } from "../http/auth";
import { ALLOCATION_REASONS, weightsOf, type BanditAllocationRow } from "../services/bandit-round";
import type { ExperimentRow, VariationSpec } from "../store/rows";
import { all, first } from "../store/db";
import { conflict, notFound, versionConflict } from "../errors";
import { auditIfChanged } from "../store/audit";
import { checkIfMatch, setEtag } from "../http/etag";
import { errorResponses, jsonResponse } from "../http/openapi";
import { nowIso } from "../ids";
import { IdParams, PublishedField } from "../schemas/fields";
import { parseJson, requireRow, updateStatement } from "../store/sql";
import { Problems } from "../services/validation";
import { writeAndPublish } from "../services/write-and-publish";
import { ExperimentSchema, presentExperiments } from "./experiments";

/** Rows returned by the history (the newest ones when there are more). */
export const MAX_ALLOCATION_ROWS = 2000;

const numberMap = z.record(z.string(), z.number());

const AllocationSchema = z
  .object({
    id: z.number().int(),
    createdAt: z.string(),
    round: z.number().int().openapi({ description: "1, 2, …; the PRNG seed is `<id>:<round>`." }),
    reason: z.enum(ALLOCATION_REASONS).openapi({
      description:
        "warming_up (equal split until every variation has 100 visitors), thompson, winner (P(best) passed the threshold), skipped (not usable as a bandit: see message), invalid_counts (the counts were refused: see message), winner_served (POST …/serve-winner).",
    }),
    weights: numberMap.openapi({
      description: "Variation id → basis points in effect after this row.",
    }),
    previousWeights: numberMap,
    probabilityBest: numberMap.openapi({
      description: "Variation id → probability of being best on the primary metric.",
    }),
    winner: z.string().nullable().openapi({ description: "Variation id of the declared winner." }),
    visitors: numberMap.openapi({ description: "Variation id → unique visitors used." }),
    conversions: numberMap.openapi({
      description: "Variation id → unique converters on the primary metric used.",
    }),
    applied: z
      .boolean()
      .openapi({ description: "True when these weights were written and published." }),
    revision: z.number().int().nullable().openapi({
      description: "The production datafile revision that published them (null: none).",
    }),
    actor: z.string().openapi({ description: '"bandit", or the token id of an API call.' }),
    message: z.string().nullable(),
  })
  .openapi("BanditAllocation");

const AllocationHistorySchema = z
  .object({
    experimentId: z.string(),
    allocationPolicy: z.enum(["manual", "bandit"]),
    items: z.array(AllocationSchema).openapi({ description: "Oldest first." }),
  })
  .openapi("BanditAllocationHistory");

const ServeWinnerBodySchema = z
  .strictObject({
    variationId: z.string().min(1).optional().openapi({
      description:
        "Variation id or key to serve; default: the winner of the bandit's latest verdict (409 when it has none).",
    }),
  })
  .openapi("ServeWinnerBody");

const ServeWinnerResultSchema = z
  .object({
    experiment: ExperimentSchema,
    winner: z.object({ id: z.string(), key: z.string() }),
    published: PublishedField,
  })
  .openapi("ServeWinnerResult");

export function allocationJson(row: BanditAllocationRow): z.infer<typeof AllocationSchema> {
  return {
    id: row.id,
    createdAt: row.created_at,
    round: row.round,
    reason: row.reason,
    weights: parseJson(row.weights, {}),
    previousWeights: parseJson(row.previous_weights, {}),
    probabilityBest: parseJson(row.probability_best, {}),
    winner: row.winner,
    visitors: parseJson(row.visitors, {}),
    conversions: parseJson(row.conversions, {}),
    applied: row.applied === 1,
    revision: row.revision,
    actor: row.actor,
    message: row.message,
  };
}

/** The experiment's history, oldest first (at most MAX_ALLOCATION_ROWS, the newest). */
export async function loadAllocations(
  db: D1Database,
  experimentId: string,
): Promise<BanditAllocationRow[]> {
  const rows = await all<BanditAllocationRow>(
    db,
    "SELECT * FROM bandit_allocations WHERE experiment_id = ? ORDER BY id DESC LIMIT ?",
    experimentId,
    MAX_ALLOCATION_ROWS,
  );
  return rows.reverse();
}

export function registerBanditRoutes(app: ApiApp): void {
  app.openapi(
    createRoute({
      method: "get",
      path: "/experiments/{id}/allocations",
      tags: ["Bandits"],
      summary: "Bandit allocation history",
      description: `Every re-allocation the scheduled bandit round made (weights over time), each change of its verdict, skipped rounds (once per reason) and served winners, oldest first; at most the newest ${MAX_ALLOCATION_ROWS}. Empty for an experiment that never ran as a bandit.`,
      middleware: [requireRole("viewer")] as const,
      request: { params: IdParams },
      responses: {
        200: jsonResponse(AllocationHistorySchema, "The history"),
        ...errorResponses(401, 403, 404),
      },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const experiment = await requireRow<ExperimentRow>(c.env.DB, "experiments", "experiment", id);
      const rows = await loadAllocations(c.env.DB, id);
      return c.json(
        {
          experimentId: experiment.id,
          allocationPolicy: experiment.allocation_policy,
          items: rows.map(allocationJson),
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: "post",
      path: "/experiments/{id}/serve-winner",
      tags: ["Bandits"],
      summary: "Serve one variation to 100 % of new visitors",
      description:
        "Sets the weight of the winner — `variationId` (id or key), or by default the winner of the bandit's latest verdict — to 10000 and every other variation's to 0, and switches `allocationPolicy` to `manual` so the bandit stops re-allocating. Visitors who already have another variation keep it (sticky decisions). Publishes the project in the same request and records a `winner_served` row in the allocation history. 409 when no variation is named and the bandit has not declared a winner. Honours If-Match.",
      middleware: [requireRole("editor")] as const,
      request: {
        params: IdParams,
        body: {
          required: false,
          content: { "application/json": { schema: ServeWinnerBodySchema } },
        },
      },
      responses: {
        200: jsonResponse(
          ServeWinnerResultSchema,
          "The experiment, the winner, what was published",
        ),
        ...errorResponses(400, 401, 403, 404, 409, 415, 422),
      },
    }),
    async (c) => {
      const db = c.env.DB;
      const actor = c.get("actor");
      const { id } = c.req.valid("param");
      const body = (c.req.valid("json") ?? {}) as z.infer<typeof ServeWinnerBodySchema>;
      const experiment = await requireRow<ExperimentRow>(db, "experiments", "experiment", id);
      checkIfMatch(c, experiment.version);
      const variations = parseJson<VariationSpec[]>(experiment.variations, []);

      let winner: VariationSpec | undefined;
      if (body.variationId !== undefined) {
        winner = variations.find((v) => v.id === body.variationId || v.key === body.variationId);
        if (!winner) {
          const problems = new Problems();
          problems.add(
            ["variationId"],
            `${JSON.stringify(body.variationId)} is not a variation id or key of this experiment`,
          );
          problems.throwIfAny();
        }
      } else {
        const verdict = await first<Pick<BanditAllocationRow, "reason" | "winner">>(
          db,
          `SELECT reason, winner FROM bandit_allocations
            WHERE experiment_id = ? AND reason IN ('warming_up', 'thompson', 'winner')
            ORDER BY id DESC LIMIT 1`,
          id,
        );
        if (!verdict?.winner)
          throw conflict(
            `the bandit has not declared a winner for experiment ${experiment.key}${verdict ? ` (latest verdict: ${verdict.reason})` : ""}; name the variation to serve with variationId`,
            { verdict: verdict?.reason ?? null },
          );
        winner = variations.find((v) => v.id === verdict.winner);
        if (!winner)
          throw conflict(
            `the declared winner ${verdict.winner} is no longer a variation of experiment ${experiment.key}`,
            { winner: verdict.winner },
          );
      }
      const chosen = winner!;

      const now = nowIso();
      const nextVariations = variations.map((v) => ({
        ...v,
        weight: v.id === chosen.id ? 10000 : 0,
      }));
      const next: ExperimentRow = {
        ...experiment,
        variations: JSON.stringify(nextVariations),
        allocation_policy: "manual",
        version: experiment.version + 1,
        updated_at: now,
      };
      const [environment, count] = await Promise.all([
        first<{ id: string }>(
          db,
          "SELECT id FROM environments WHERE project_id = ? ORDER BY key <> 'production', key LIMIT 1",
          experiment.project_id,
        ),
        first<{ n: number }>(
          db,
          "SELECT COUNT(*) AS n FROM bandit_allocations WHERE experiment_id = ?",
          id,
        ),
      ]);
      const previousWeights = weightsOf(variations);
      const statements = [
        updateStatement(db, "experiments", next, experiment.version),
        auditIfChanged(db, actor, "serve_winner", "experiment", id, experiment.project_id, {
          variationId: chosen.id,
          variationKey: chosen.key,
          previousWeights,
          previousPolicy: experiment.allocation_policy,
        }),
      ];
      if (environment) {
        // Only when the guarded update above landed (same version and timestamp).
        statements.push(
          db
            .prepare(
              `INSERT INTO bandit_allocations (experiment_id, environment_id, created_at, round, reason, weights,
                 previous_weights, probability_best, winner, visitors, conversions, applied, revision, actor, message)
               SELECT ?, ?, ?, ?, 'winner_served', ?, ?, '{}', ?, '{}', '{}', 1, NULL, ?, NULL
                WHERE EXISTS (SELECT 1 FROM experiments WHERE id = ? AND version = ? AND updated_at = ?)`,
            )
            .bind(
              id,
              environment.id,
              now,
              (count?.n ?? 0) + 1,
              JSON.stringify(weightsOf(nextVariations)),
              JSON.stringify(previousWeights),
              chosen.id,
              actor.id,
              id,
              next.version,
              now,
            ),
        );
      }
      const published = await writeAndPublish(c.env, actor, {
        projectId: experiment.project_id,
        statements,
        guardIndex: 0,
        auditIndex: 1,
        onGuardFailed: async () => {
          const latest = await first<{ version: number }>(
            db,
            "SELECT version FROM experiments WHERE id = ?",
            id,
          );
          return latest ? versionConflict(latest.version) : notFound("experiment", id);
        },
        undo: [
          updateStatement(db, "experiments", experiment, next.version),
          db
            .prepare(
              "DELETE FROM bandit_allocations WHERE experiment_id = ? AND reason = 'winner_served' AND created_at = ?",
            )
            .bind(id, now),
        ],
        reason: `experiment ${experiment.key}: variation ${chosen.key} served to 100%`,
      });
      if (environment) {
        const revision = published.find((p) => p.environmentId === environment.id)?.revision;
        if (revision !== undefined)
          await db
            .prepare(
              "UPDATE bandit_allocations SET revision = ? WHERE experiment_id = ? AND reason = 'winner_served' AND created_at = ?",
            )
            .bind(revision, id, now)
            .run();
      }
      const latest = await requireRow<ExperimentRow>(db, "experiments", "experiment", id);
      const [json] = await presentExperiments(db, [latest]);
      setEtag(c, latest.version);
      return c.json(
        { experiment: json!, winner: { id: chosen.id, key: chosen.key }, published },
        200,
      );
    },
  );
}
