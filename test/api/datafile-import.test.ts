/**
 * The datafile import planner (src/api/services/datafile-import.ts) is the inverse of the build:
 * a datafile imported into an empty project and published again decides every visitor exactly
 * as the original did, and importing it twice changes nothing.
 */
import { describe, expect, it } from "vitest";
import demo from "../../demo/datafile.json";
import {
  decideAllFlags,
  decideExperiment,
  loadDatafile,
  parseDatafile,
} from "../../src/core/index";
import type { Datafile } from "../../src/core/datafile-types";
import { buildDatafile, type ProjectSnapshot } from "../../src/api/services/datafile-build";
import {
  IMPORT_TABLES,
  planDatafileImport,
  type ExistingRows,
  type ImportPlan,
} from "../../src/api/services/datafile-import";
import { flagDatafile } from "../helpers/flag-datafile";
import { environmentRow, projectRow, realisticSnapshot } from "../helpers/management-rows";

const PROJECT = projectRow();
const ENVIRONMENT = environmentRow({ key: "production", sdk_key: "demo" });
const NOW = "2026-12-06T00:00:00.000Z";

const empty = (): ExistingRows => ({
  attributes: [],
  lists: [],
  audiences: [],
  pages: [],
  events: [],
  groups: [],
  flags: [],
  experiments: [],
});

function parsed(input: unknown): Datafile {
  const result = parseDatafile(input);
  if (!result.ok) throw new Error(JSON.stringify(result.problems.slice(0, 3)));
  return result.datafile;
}

/** The rows after applying `plan` to `existing`. */
function apply(existing: ExistingRows, plan: ImportPlan): ExistingRows {
  const out: Record<string, unknown[]> = Object.fromEntries(
    Object.entries(existing).map(([table, rows]) => [table, [...(rows as unknown[])]]),
  );
  for (const item of plan.items) {
    const rows = (out[item.table] ?? []).filter((r) => (r as { id: string }).id !== item.row.id);
    rows.push(item.row);
    out[item.table] = rows;
  }
  return out as unknown as ExistingRows;
}

function snapshotOf(rows: ExistingRows, plan: ImportPlan): ProjectSnapshot {
  return {
    project: PROJECT,
    environment: ENVIRONMENT,
    ...rows,
    attributes: [...rows.attributes],
    audiences: [...rows.audiences],
    events: [...rows.events],
    pages: [...rows.pages],
    groups: [...rows.groups],
    lists: [...rows.lists],
    experiments: [...rows.experiments],
    flags: [...rows.flags],
    statuses: new Map(plan.statuses.map((s) => [s.experimentId, s.status])),
  };
}

function importInto(existing: ExistingRows, datafile: Datafile) {
  return planDatafileImport(datafile, existing, {
    projectId: PROJECT.id,
    now: NOW,
    environmentId: ENVIRONMENT.id,
    currentStatuses: new Map(),
  });
}

/** Every experiment's decision for `count` visitors under both datafiles. */
function expectSameDecisions(original: Datafile, rebuilt: Datafile, count: number): number {
  const a = loadDatafile(original);
  const b = loadDatafile(rebuilt);
  if (!a.ok || !b.ok) throw new Error("datafile did not load");
  const keys = a.compiled.experiments.map((x) => x.key).sort();
  expect(b.compiled.experiments.map((x) => x.key).sort()).toEqual(keys);
  let decided = 0;
  for (let i = 0; i < count; i++) {
    const visitor = { visitorId: `visitor-${i}`, attributes: { plan: i % 3 ? "pro" : "free" } };
    for (const key of keys) {
      const x = decideExperiment(a.compiled, key, visitor);
      const y = decideExperiment(b.compiled, key, visitor);
      expect([y.variationKey, y.reason], `${key} for visitor-${i}`).toEqual([
        x.variationKey,
        x.reason,
      ]);
      if (x.variationKey !== null) decided++;
    }
  }
  return decided;
}

describe("planDatafileImport", () => {
  it("imports the demo datafile into an empty project: every record created, nothing wrong", () => {
    const plan = importInto(empty(), parsed(demo));
    expect(plan.problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(plan.ok).toBe(true);
    const counts = Object.fromEntries(
      IMPORT_TABLES.map((t) => [t, plan.items.filter((i) => i.table === t).length]),
    );
    expect(counts.experiments).toBe(8);
    expect(counts.pages).toBe(demo.web.pages.length);
    expect(counts.events).toBe(demo.events.length);
    expect(counts.groups).toBe(demo.groups.length);
    expect(plan.items.every((i) => i.action === "create")).toBe(true);
    expect(plan.statuses.map((s) => s.status)).toEqual(Array(8).fill("Running"));
  });

  it("round trip: demo → records → datafile decides 2,000 visitors exactly as the original", () => {
    const original = parsed(demo);
    const plan = importInto(empty(), original);
    const rebuilt = buildDatafile(snapshotOf(apply(empty(), plan), plan), 7);
    // The parts that bucket and change pages are equal, field for field.
    const strip = (d: Datafile) => ({
      experiments: d.experiments,
      groups: d.groups,
      events: d.events.map(({ id, key }) => ({ id, key })),
      web: { pages: d.web?.pages, events: d.web?.events, experiments: d.web?.experiments },
    });
    const a = strip(original);
    const b = strip(rebuilt);
    expect(b.web.pages).toEqual(a.web.pages);
    expect(b.web.events).toEqual(a.web.events);
    expect(b.groups).toEqual(a.groups);
    expect(b.experiments).toEqual(a.experiments);
    // The build always writes `sharedChanges` and `allocationPolicy` (absent = [] / manual).
    const normal = (x: NonNullable<Datafile["web"]>["experiments"][number]) => ({
      ...x,
      sharedChanges: x.sharedChanges ?? [],
      allocationPolicy: x.allocationPolicy ?? "manual",
    });
    expect(b.web.experiments?.map(normal)).toEqual(a.web.experiments?.map(normal));
    expect(parseDatafile(rebuilt).ok).toBe(true);
    expect(expectSameDecisions(original, rebuilt, 2000)).toBeGreaterThan(2000);
  });

  it("round trip of a management-built datafile (audiences, lists, metrics, bandit, sections)", () => {
    const snapshot = realisticSnapshot();
    const built = buildDatafile(snapshot, 3);
    const plan = importInto(empty(), parsed(built));
    expect(plan.problems.filter((p) => p.severity === "error")).toEqual([]);
    const rebuilt = buildDatafile(snapshotOf(apply(empty(), plan), plan), 3);
    expect(rebuilt.experiments).toEqual(built.experiments);
    expect(rebuilt.groups).toEqual(built.groups);
    expect(rebuilt.typedAudiences).toEqual(built.typedAudiences);
    expect(rebuilt.web).toEqual(built.web);
    expectSameDecisions(built, rebuilt, 500);
  });

  it("a datafile with a running holdout is refused at $.holdouts (an environment setting, docs/holdouts.md)", () => {
    const holdout = {
      id: "9001",
      key: "holdout_production",
      status: "Running",
      variations: [{ id: "9002", key: "holdout", featureEnabled: false, variables: [] }],
      trafficAllocation: [{ entityId: "9002", endOfRange: 500 }],
      audienceIds: [],
    };
    const plan = importInto(empty(), parsed({ ...demo, holdouts: [holdout] }));
    expect(plan.problems.filter((p) => p.severity === "error")).toEqual([
      { path: "$.holdouts", message: expect.stringContaining("not imported"), severity: "error" },
    ]);
    // An empty section is no holdout: nothing to refuse.
    const none = importInto(empty(), parsed({ ...demo, holdouts: [] }));
    expect(none.problems.filter((p) => p.severity === "error")).toEqual([]);
    // A concluded one (a holdout set to 0 %, as an export of that environment has it) holds
    // nobody: left out with a warning, so the file imports.
    const concluded = importInto(
      empty(),
      parsed({
        ...demo,
        holdouts: [
          {
            ...holdout,
            status: "Concluded",
            trafficAllocation: [{ entityId: "9002", endOfRange: 0 }],
          },
        ],
      }),
    );
    expect(concluded.ok).toBe(true);
    expect(concluded.problems.filter((p) => p.path === "$.holdouts")).toEqual([
      { path: "$.holdouts", message: expect.stringContaining("not running"), severity: "warning" },
    ]);
  });

  it("a second import of the same file changes nothing", () => {
    const datafile = parsed(demo);
    const first = importInto(empty(), datafile);
    const again = planDatafileImport(datafile, apply(empty(), first), {
      projectId: PROJECT.id,
      now: "2026-12-07T00:00:00.000Z",
      currentStatuses: new Map(first.statuses.map((s) => [s.experimentId, s.status])),
    });
    expect(again.ok).toBe(true);
    expect(again.items.filter((i) => i.action !== "unchanged")).toEqual([]);
    expect(again.statuses.every((s) => s.status === s.current)).toBe(true);
  });

  it("an edited file updates exactly the changed record and names the columns", () => {
    const datafile = parsed(demo);
    const first = importInto(empty(), datafile);
    const edited = structuredClone(demo) as typeof demo;
    const x = edited.web.experiments[0]!;
    (x.variations[1]!.changes as unknown[]) = [
      { type: "attribute", selector: "h1", attributes: { text: "Imported change" } },
    ];
    const plan = importInto(apply(empty(), first), parsed(edited));
    const changed = plan.items.filter((i) => i.action !== "unchanged");
    expect(changed).toHaveLength(1);
    expect(changed[0]).toMatchObject({
      table: "experiments",
      action: "update",
      changedColumns: ["variations"],
    });
    expect(changed[0]!.row.version).toBe(1);
  });

  it("a record with the same key but another id is a conflict with its path, nothing planned for it", () => {
    const datafile = parsed(demo);
    const first = importInto(empty(), datafile);
    const rows = apply(empty(), first);
    const renamed = {
      ...rows,
      experiments: rows.experiments.map((x) => (x.key === "home_hero" ? { ...x, id: "999" } : x)),
    };
    const plan = importInto(renamed, datafile);
    expect(plan.ok).toBe(false);
    const index = demo.experiments.findIndex((x) => x.key === "home_hero");
    expect(plan.problems).toContainEqual({
      path: `$.experiments[${index}]`,
      severity: "error",
      message: expect.stringMatching(/already has experiment "home_hero" with id 999/),
    });
  });

  it("traffic ranges that no weights reproduce are refused (importing them would move visitors)", () => {
    const edited = structuredClone(demo) as typeof demo;
    // Ranges in the reverse of the variation order.
    edited.experiments[0]!.trafficAllocation = [
      { entityId: edited.experiments[0]!.variations[1]!.id, endOfRange: 5000 },
      { entityId: edited.experiments[0]!.variations[0]!.id, endOfRange: 10000 },
    ];
    const plan = importInto(empty(), parsed(edited));
    expect(plan.ok).toBe(false);
    expect(plan.problems).toContainEqual(
      expect.objectContaining({ path: "$.experiments[0].trafficAllocation", severity: "error" }),
    );
  });

  it("partial traffic and uneven ranges import exactly (3,333 / 6,667 of 50 %)", () => {
    const edited = structuredClone(demo) as typeof demo;
    const x = edited.experiments[0]!;
    x.trafficAllocation = [
      { entityId: x.variations[0]!.id, endOfRange: 1667 },
      { entityId: x.variations[1]!.id, endOfRange: 5000 },
    ];
    const datafile = parsed(edited);
    const plan = importInto(empty(), datafile);
    expect(plan.ok).toBe(true);
    const row = plan.items.find((i) => i.table === "experiments" && i.row.id === x.id)!.row;
    expect((row as { traffic: number }).traffic).toBe(5000);
    const rebuilt = buildDatafile(snapshotOf(apply(empty(), plan), plan), 2);
    expect(rebuilt.experiments.find((e) => e.id === x.id)?.trafficAllocation).toEqual(
      x.trafficAllocation,
    );
  });
});

describe("planDatafileImport: feature flags", () => {
  it("round trip: flags → records → datafile decides 3,000 visitors' flags exactly as the original", () => {
    const original = parsed(flagDatafile());
    const plan = importInto(empty(), original);
    expect(plan.problems.filter((p) => p.severity === "error")).toEqual([]);
    expect(plan.problems.map((p) => p.path)).toContain("$.featureFlags[1].rolloutId");
    const rows = apply(empty(), plan);
    expect(rows.flags.map((f) => f.key)).toEqual(["checkout", "nav"]);
    expect(rows.experiments.find((x) => x.id === "501")?.flag_id).toBe("401");
    const rebuilt = buildDatafile(snapshotOf(rows, plan), 6);
    const a = loadDatafile(original);
    const b = loadDatafile(rebuilt);
    if (!a.ok || !b.ok) throw new Error("datafile did not load");
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const visitor = {
        visitorId: i === 0 ? "qa-1" : `visitor-${i}`,
        attributes: { country: i % 2 ? "DE" : "FR" },
      };
      const x = decideAllFlags(a.compiled, visitor);
      const y = decideAllFlags(b.compiled, visitor);
      x.forEach((d, f) => {
        const e = y[f]!;
        const where = `${d.flagKey} for ${visitor.visitorId}`;
        // A flag without rollout rules gets an Everyone Else rule delivering "off" (the import
        // warns): decide() names "off" where it named no variation; enabled and variables agree.
        const expected =
          d.reason === "no_rule_matched"
            ? [d.flagKey, false, "off", "delivery_rule"]
            : [d.flagKey, d.enabled, d.variationKey, d.reason];
        expect([e.flagKey, e.enabled, e.variationKey, e.reason], where).toEqual(expected);
        expect(e.variables, where).toEqual(d.variables);
        // Everyone Else is renamed default-rollout-<flag id>; every other rule keeps its key.
        if (d.ruleKey !== "default-rollout-301-401" && d.reason !== "no_rule_matched")
          expect(e.ruleKey, where).toBe(d.ruleKey);
        seen.add(`${d.flagKey}:${d.ruleKey}:${d.variationKey}`);
      });
    }
    expect(seen.size).toBeGreaterThanOrEqual(6);
    // A second import changes nothing.
    const again = importInto(rows, original);
    expect(again.items.filter((item) => item.action !== "unchanged")).toEqual([]);
  });

  it("refuses what the flag model cannot express, with the path", () => {
    const paths = (datafile: Record<string, unknown>) =>
      importInto(empty(), parsed(datafile))
        .problems.filter((p) => p.severity === "error")
        .map((p) => p.path);
    const twoVariations = flagDatafile();
    const rollout = (
      twoVariations.rollouts as Array<{ experiments: Array<Record<string, unknown>> }>
    )[0]!;
    rollout.experiments[1]!.variations = [
      { id: "812", key: "on", featureEnabled: true },
      { id: "813", key: "on2", featureEnabled: true },
    ];
    expect(paths(twoVariations)).toContain("$.rollouts[0].experiments[1]");

    const partialEveryone = flagDatafile();
    (
      partialEveryone.rollouts as Array<{ experiments: Array<{ trafficAllocation: unknown[] }> }>
    )[0]!.experiments[2]!.trafficAllocation = [{ entityId: "810", endOfRange: 9000 }];
    expect(paths(partialEveryone)).toContain("$.rollouts[0].experiments[2]");

    const disabledOn = flagDatafile();
    const experiments = disabledOn.experiments as Array<{
      variations: Array<Record<string, unknown>>;
    }>;
    experiments[0]!.variations[1]!.featureEnabled = false;
    expect(paths(disabledOn).some((p) => p.startsWith("$.featureFlags[0].experimentIds[0]"))).toBe(
      true,
    );

    const otherValues = flagDatafile();
    (
      otherValues.experiments as Array<{ variations: Array<{ variables: unknown[] }> }>
    )[0]!.variations[1]!.variables = [{ id: "902", value: "4" }];
    expect(paths(otherValues).length).toBeGreaterThan(0);
  });
});
