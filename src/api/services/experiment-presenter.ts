/**
 * Experiments as the API returns them (docs/api.md "Experiments"): the stored row in camelCase
 * with its JSON columns parsed and its status per environment key. Everything that answers with
 * an experiment (its CRUD, the status actions, headline tests, serve-winner) presents it here.
 */
import type { ExperimentJson } from "../schemas/experiments";
import { listExperimentStatuses } from "../store/experiments";
import type { ExperimentRow, ExperimentStatusValue, VariationSpec } from "../store/rows";
import { parseJson } from "../store/sql";

/** One experiment row with its statuses (environment key → status) as the API's JSON. */
export function experimentJson(
  row: ExperimentRow,
  status: Record<string, ExperimentStatusValue>,
): ExperimentJson {
  return {
    id: row.id,
    projectId: row.project_id,
    key: row.key,
    name: row.name,
    description: row.description,
    type: row.type,
    layerId: row.layer_id,
    groupId: row.group_id,
    flagId: row.flag_id,
    traffic: row.traffic,
    allocationPolicy: row.allocation_policy,
    audienceConditions: parseJson<unknown>(row.audience_conditions, null),
    pageIds: parseJson<string[]>(row.page_ids, []),
    metrics: parseJson<unknown[]>(row.metrics, []),
    variations: parseJson<VariationSpec[]>(row.variations, []).map((v) => ({
      ...v,
      changes: v.changes ?? [],
    })),
    sections: parseJson<unknown>(row.sections, null),
    sharedChanges: parseJson<unknown[]>(row.shared_changes, []),
    forcedVariations: parseJson<Record<string, string>>(row.forced_variations, {}),
    archived: Boolean(row.archived),
    status,
    version: row.version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Rows of one project → JSON with their statuses: one status query for the lot (scoped to the
 * experiment when there is only one).
 */
export async function presentExperiments(
  db: D1Database,
  rows: readonly ExperimentRow[],
): Promise<ExperimentJson[]> {
  const [single] = rows;
  if (!single) return [];
  const statuses = await listExperimentStatuses(
    db,
    single.project_id,
    rows.length === 1 ? single.id : undefined,
  );
  return rows.map((row) => experimentJson(row, statuses.get(row.id) ?? {}));
}

/** One experiment row → JSON with its statuses. */
export async function presentExperiment(
  db: D1Database,
  row: ExperimentRow,
): Promise<ExperimentJson> {
  const statuses = await listExperimentStatuses(db, row.project_id, row.id);
  return experimentJson(row, statuses.get(row.id) ?? {});
}
