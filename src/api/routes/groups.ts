/**
 * Groups (docs/api.md "Groups"): mutually exclusive experiments (Optimizely exclusion groups).
 * With policy `random`, each visitor is bucketed into at most one experiment of the group, by
 * the group's `allocation` (basis points of all visitors per experiment, summing to at most
 * 10000; the rest gets none of them). An experiment joins a group with its `groupId`; only then
 * can the group allocate traffic to it.
 */
import { z } from "@hono/zod-openapi";
import type { ApiApp } from "../context";
import type { ExperimentRow, GroupAllocationEntry, GroupRow } from "../store/rows";
import { all } from "../store/db";
import { inUse, Problems } from "../services/validation";
import { parseJson } from "../store/sql";
import { registerCrud, type BuildContext } from "./crud";
import { resourceFields } from "../schemas/fields";

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

const groupName = z.string().trim().min(1).max(200);

const GroupCreateSchema = z
  .strictObject({
    name: groupName,
    policy: policySchema.optional().openapi({ description: "Default random." }),
    allocation: allocationSchema.optional(),
  })
  .openapi("GroupCreate");

const GroupUpdateSchema = z
  .strictObject({
    name: groupName.optional(),
    policy: policySchema.optional(),
    allocation: allocationSchema.optional(),
  })
  .openapi("GroupUpdate");

type GroupJson = z.infer<typeof GroupSchema>;

async function presentGroups(db: D1Database, rows: GroupRow[]): Promise<GroupJson[]> {
  if (rows.length === 0) return [];
  // One query per project (D1 caps bound parameters at 100, so no `IN (…every id…)`).
  const members: Array<Pick<ExperimentRow, "id" | "group_id">> = [];
  for (const projectId of new Set(rows.map((r) => r.project_id)))
    members.push(
      ...(await all<Pick<ExperimentRow, "id" | "group_id">>(
        db,
        "SELECT id, group_id FROM experiments WHERE project_id = ? AND group_id IS NOT NULL ORDER BY created_at, id",
        projectId,
      )),
    );
  return rows.map((row) => ({
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    policy: row.policy,
    allocation: parseJson<GroupAllocationEntry[]>(row.allocation, []),
    experimentIds: members.filter((m) => m.group_id === row.id).map((m) => m.id),
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }));
}

export function registerGroupRoutes(app: ApiApp): void {
  registerCrud<
    GroupRow,
    GroupJson,
    z.infer<typeof GroupCreateSchema>,
    z.infer<typeof GroupUpdateSchema>
  >(app, {
    type: "group",
    plural: "groups",
    table: "groups",
    tag: "Groups",
    schema: GroupSchema,
    createSchema: GroupCreateSchema,
    updateSchema: GroupUpdateSchema,
    keyed: false,
    describe: {
      create:
        "A new group has no experiments yet: create or change experiments with `groupId`, then PATCH the group's `allocation`.",
      update:
        "`allocation` replaces the whole allocation: experiments of this group (422 otherwise), each at most once, weights summing to at most 10000.",
      delete: "Refused (409) while experiments belong to the group.",
    },
    label: (row) => row.name,
    present: presentGroups,
    async build(ctx: BuildContext, input) {
      const body = input.body;
      const current = input.current;
      if (body.allocation !== undefined) {
        const problems = new Problems();
        const members = new Set(
          (
            await all<{ id: string }>(
              ctx.db,
              "SELECT id FROM experiments WHERE project_id = ? AND group_id = ?",
              ctx.projectId,
              ctx.id,
            )
          ).map((x) => x.id),
        );
        const seen = new Set<string>();
        let total = 0;
        body.allocation.forEach((entry, i) => {
          total += entry.weight;
          if (seen.has(entry.experimentId))
            problems.add(["allocation", i, "experimentId"], "experiment listed twice");
          else if (!members.has(entry.experimentId))
            problems.add(
              ["allocation", i, "experimentId"],
              `experiment ${JSON.stringify(entry.experimentId)} is not in this group (set the experiment's groupId first)`,
            );
          seen.add(entry.experimentId);
        });
        if (total > 10000)
          problems.add(
            ["allocation"],
            `the weights sum to ${total}; at most 10000 (100%) can be allocated`,
          );
        problems.throwIfAny();
      }
      const row: GroupRow = {
        id: ctx.id,
        project_id: ctx.projectId,
        name: body.name ?? current?.name ?? "",
        policy: body.policy ?? current?.policy ?? "random",
        allocation:
          body.allocation !== undefined
            ? JSON.stringify(
                body.allocation.map((a) => ({ experimentId: a.experimentId, weight: a.weight })),
              )
            : (current?.allocation ?? "[]"),
        version: current?.version ?? 1,
        created_at: current?.created_at ?? ctx.now,
        updated_at: ctx.now,
      };
      return { row };
    },
    async beforeDelete(ctx, row) {
      const members = await all<Pick<ExperimentRow, "id" | "key">>(
        ctx.db,
        "SELECT id, key FROM experiments WHERE group_id = ?",
        row.id,
      );
      if (members.length > 0)
        throw inUse(
          `group ${row.name}`,
          members.map((x) => ({ type: "experiment", id: x.id, key: x.key })),
        );
    },
  });
}
