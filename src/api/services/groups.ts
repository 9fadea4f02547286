/**
 * Groups (docs/api.md "Groups"): mutually exclusive experiments (Optimizely exclusion groups).
 * With policy `random`, each visitor is bucketed into at most one experiment of the group, by
 * the group's `allocation` (basis points of all visitors per experiment, summing to at most
 * 10000; the rest gets none of them). An experiment joins a group with its `groupId`; only then
 * can the group allocate traffic to it.
 */
import type { GroupCreate, GroupJson, GroupUpdate } from "../schemas/groups";
import { all } from "../store/db";
import type { ExperimentRow, GroupAllocationEntry, GroupRow } from "../store/rows";
import { parseJson } from "../store/sql";
import type { ResourceSpec } from "./resources";
import { refuseUnreviewedUse } from "./review";
import { inUse, Problems } from "./validation";

/** Rows → JSON, with the ids of each group's experiments. */
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

/** The group resource (src/api/services/resources.ts). */
export const groupResource: ResourceSpec<GroupRow, GroupJson, GroupCreate, GroupUpdate> = {
  type: "group",
  table: "groups",
  keyed: false,
  label: (row) => row.name,
  present: presentGroups,
  async build(ctx, input) {
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
  review: async (ctx, current) =>
    refuseUnreviewedUse(
      ctx,
      (
        await all<Pick<ExperimentRow, "id">>(
          ctx.db,
          "SELECT id FROM experiments WHERE group_id = ?",
          current.id,
        )
      ).map((x) => x.id),
      `group ${current.name}`,
    ),
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
};
