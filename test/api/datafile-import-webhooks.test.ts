/**
 * What webhooks hear of a datafile import (docs/webhooks.md "Events"), in workerd with the real
 * D1, KV and WEBHOOKS queue and the loopback receiver of test/support/webhook-receiver.ts:
 * `experiment.created` once for each experiment the import creates, `experiment.started` once for
 * each of those it creates Running (in the import's environment), with the data the API's create
 * and start tell, besides `datafile.published`; a second import of the same file and a dry run
 * tell no experiment event; an import changing the statuses of experiments that existed tells the
 * event of the action each change is.
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import demo from "../../demo/datafile.json";
import { apiJson, createProject, type ProjectWithEnvironments } from "../helpers/api";
import { hookUrl, pollUntil, readInbox, setInbox } from "../helpers/webhook-inbox";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

/** A webhook for every event whose URL is a fresh inbox of the receiver. */
async function webhook(project: ProjectWithEnvironments): Promise<string> {
  const inbox = `import-${crypto.randomUUID()}`;
  const created = await apiJson("POST", `/projects/${project.id}/webhooks`, 201, {
    body: { name: "all", url: hookUrl(inbox), events: ["*"] },
  });
  await setInbox(inbox, created.secret);
  return inbox;
}

const envelopes = async (inbox: string): Promise<Json[]> =>
  (await readInbox(inbox)).map((d) => {
    expect(d.verified).toBe(true);
    return JSON.parse(d.body);
  });

const countByType = (list: Json[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const e of list) out[e.type] = (out[e.type] ?? 0) + 1;
  return out;
};

/**
 * The demo datafile with two top-level experiments not Running: one Paused, one Not started
 * (created, but not started).
 */
const datafile = structuredClone(demo) as Json;
datafile.experiments[0].status = "Paused";
datafile.experiments[1].status = "Not started";
const allExperiments: Json[] = [
  ...datafile.experiments,
  ...datafile.groups.flatMap((g: Json) => g.experiments),
];
const running = allExperiments.filter((x) => x.status === "Running");

/** The project the first test imports the file into (the second changes its statuses). */
let imported: { project: ProjectWithEnvironments; production: { id: string } } | undefined;

/** What the API's create and start tell, to compare the import's events with. */
let apiStarted: Json;
let apiCreated: Json;

beforeAll(async () => {
  vi.spyOn(console, "log").mockImplementation(() => {});
  const project = await createProject();
  const inbox = await webhook(project);
  const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
    body: { key: "p", conditions: ["or", { match: "substring", value: "/p" }] },
  });
  const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
    body: { key: "e", type: "custom" },
  });
  const experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
    body: {
      key: "by_api",
      pageIds: [page.id],
      metrics: [{ eventId: event.id, aggregator: "unique" }],
      variations: ["a", "b"].map((k) => ({ key: k, weight: 5000 })),
    },
  });
  await apiJson("POST", `/experiments/${experiment.id}/start`, 200, {
    body: { environment: "production" },
  });
  const got = await pollUntil(
    () => envelopes(inbox),
    (l) => l.some((e) => e.type === "experiment.started"),
    "the API's experiment.started",
  );
  apiCreated = got.find((e) => e.type === "experiment.created");
  apiStarted = got.find((e) => e.type === "experiment.started");
});

describe("webhooks hear a datafile import", () => {
  it("experiment.created once per experiment created, experiment.started once per one created Running, shaped as the API's", async () => {
    expect(running.length).toBe(allExperiments.length - 2);
    const project = await createProject();
    const production = project.environments.find((e) => e.key === "production")!;
    const inbox = await webhook(project);
    imported = { project, production };

    // A dry run tells nothing.
    await apiJson("POST", `/environments/${production.id}/datafile/import?dryRun=true`, 200, {
      body: datafile,
    });
    const summary = await apiJson("POST", `/environments/${production.id}/datafile/import`, 200, {
      body: datafile,
    });
    expect(summary.changes.experiments.created).toHaveLength(allExperiments.length);
    const publishedCount = summary.published.filter((p: Json) => p.changed).length;
    expect(publishedCount).toBeGreaterThan(0);

    const expected = {
      "experiment.created": allExperiments.length,
      "experiment.started": running.length,
      "datafile.published": publishedCount,
    };
    const total = Object.values(expected).reduce((a, b) => a + b, 0);
    await pollUntil(
      () => readInbox(inbox),
      (l) => l.length >= total,
      `${total} deliveries of the import`,
    );
    // Nothing more arrives; a second import of the same file tells nothing either.
    await apiJson("POST", `/environments/${production.id}/datafile/import`, 200, {
      body: datafile,
    });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const all = await envelopes(inbox);
    expect(countByType(all)).toEqual(expected);

    // Once each: every created experiment, every Running one started in production.
    const created = all.filter((e) => e.type === "experiment.created");
    expect(created.map((e) => e.data.experiment.id).sort()).toEqual(
      allExperiments.map((x) => x.id).sort(),
    );
    const started = all.filter((e) => e.type === "experiment.started");
    expect(started.map((e) => e.data.experiment.id).sort()).toEqual(
      running.map((x) => x.id).sort(),
    );

    // The API's shape: the same envelope and data keys, the same meaning.
    for (const e of created) {
      expect(Object.keys(e).sort()).toEqual(Object.keys(apiCreated).sort());
      expect(Object.keys(e.data).sort()).toEqual(Object.keys(apiCreated.data).sort());
      expect(e).toMatchObject({
        projectId: project.id,
        environment: null,
        actor: { id: "admin-token" },
      });
      const x = allExperiments.find((y) => y.id === e.data.experiment.id);
      expect(e.data.experiment).toEqual({ id: x.id, key: x.key, name: x.key });
    }
    const revisions = summary.published
      .filter((p: Json) => p.changed)
      .map((p: Json) => ({ environment: p.environmentKey, revision: p.revision }));
    for (const e of started) {
      expect(Object.keys(e).sort()).toEqual(Object.keys(apiStarted).sort());
      expect(Object.keys(e.data).sort()).toEqual(Object.keys(apiStarted.data).sort());
      expect(e).toMatchObject({
        environment: "production",
        actor: { id: "admin-token" },
        data: { previousStatus: "Not started", status: "Running", revisions },
      });
    }
  });

  it("status changes of experiments that existed tell what the action would: started, resumed, paused, archived", async () => {
    // The first test's project, its experiments as that test imported them (ids are global: a
    // datafile's records live in one project), heard by a second webhook of its own.
    expect(imported, "the first test ran").toBeDefined();
    const { project, production } = imported!;
    const inbox = await webhook(project);

    // Each status the file can change, on experiments the first import made.
    const next = structuredClone(datafile) as Json;
    const top = next.experiments as Json[];
    const topRunning = top.filter((x) => x.status === "Running");
    expect(topRunning.length).toBeGreaterThanOrEqual(3);
    const [paused, notStarted] = [top[0], top[1]];
    const [toPause, toArchive, toReset] = topRunning;
    paused.status = "Running"; // Paused → Running: resumed
    notStarted.status = "Running"; // Not started → Running: started
    toPause.status = "Paused";
    toArchive.status = "Archived";
    toReset.status = "Not started"; // no action does this: no event
    const summary = await apiJson("POST", `/environments/${production.id}/datafile/import`, 200, {
      body: next,
    });
    const publishedCount = summary.published.filter((p: Json) => p.changed).length;
    const expected: Record<string, number> = {
      "experiment.resumed": 1,
      "experiment.started": 1,
      "experiment.paused": 1,
      "experiment.archived": 1,
      "datafile.published": publishedCount,
    };
    const total = Object.values(expected).reduce((a, b) => a + b, 0);
    await pollUntil(
      () => readInbox(inbox),
      (l) => l.length >= total,
      `${total} deliveries of the status import`,
    );
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const all = await envelopes(inbox);
    expect(countByType(all)).toEqual(expected);
    const revisions = summary.published
      .filter((p: Json) => p.changed)
      .map((p: Json) => ({ environment: p.environmentKey, revision: p.revision }));
    const told = (type: string) => all.find((e) => e.type === type);
    for (const [type, x, previousStatus, status] of [
      ["experiment.resumed", paused, "Paused", "Running"],
      ["experiment.started", notStarted, "Not started", "Running"],
      ["experiment.paused", toPause, "Running", "Paused"],
      ["experiment.archived", toArchive, "Running", "Archived"],
    ] as const) {
      const e = told(type);
      expect(Object.keys(e).sort()).toEqual(Object.keys(apiStarted).sort());
      expect(e).toMatchObject({
        projectId: project.id,
        environment: "production",
        actor: { id: "admin-token" },
        data: {
          experiment: { id: x.id, key: x.key },
          previousStatus,
          status,
          revisions,
        },
      });
    }
  });
});
