// The demo as real data (docs/demo.md, README "Try it"): makes sure a running Worker has the "Demo shop"
// project — its production environment on SDK key `demo`, which the local route serves — with
// demo/datafile.json imported as records (experiments, pages, events, groups, …), so the admin,
// the API, the CLI and results all show the demo, and an edit in the admin reaches
// http://localhost:8787 within seconds. Idempotent: an existing demo project is left as it is
// (your edits stay) unless `reset` is set, which imports the file again (records the file names
// are put back as the file has them; others are kept).
//
// Used by scripts/start.mjs after `wrangler dev` answers; plain fetch against the management API
// (docs/api.md), so it works against any deployment: `node scripts/demo-seed.mjs URL TOKEN`.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const DEMO_SDK_KEY = "demo";
export const DEMO_PROJECT_NAME = "Demo shop";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");

/** One API call; throws with the API's error message on a non-2xx answer. */
async function call(baseUrl, token, method, path, body) {
  const response = await fetch(`${baseUrl}/_ss/api/v1${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!response.ok) {
    const message = json?.error?.message ?? text.slice(0, 200);
    throw new Error(`${method} ${path}: ${response.status} ${message}`);
  }
  return json;
}

/** The environment (and its project) whose SDK key is `sdkKey`, or null. */
async function findEnvironment(baseUrl, token, sdkKey) {
  let cursor = "";
  for (;;) {
    const page = await call(
      baseUrl,
      token,
      "GET",
      `/projects?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
    );
    for (const project of page.items) {
      const environments = await call(
        baseUrl,
        token,
        "GET",
        `/projects/${project.id}/environments`,
      );
      const list = Array.isArray(environments) ? environments : environments.items;
      const environment = list.find((e) => e.sdkKey === sdkKey);
      if (environment) return { project, environment };
    }
    if (!page.nextCursor) return null;
    cursor = page.nextCursor;
  }
}

function describeImport(summary) {
  const parts = [];
  for (const [table, change] of Object.entries(summary.changes)) {
    const n = change.created.length + change.updated.length;
    if (n > 0) parts.push(`${n} ${table}`);
  }
  return parts.length > 0 ? parts.join(", ") : "nothing changed";
}

/**
 * Ensures the demo project exists on the Worker at `baseUrl` (see the module comment). Returns
 * `{ created, imported, projectId, environmentId }`.
 */
export async function seedDemo({
  baseUrl,
  token,
  datafile = JSON.parse(readFileSync(join(root, "demo", "datafile.json"), "utf8")),
  reset = false,
  log = console.log,
}) {
  let found = await findEnvironment(baseUrl, token, DEMO_SDK_KEY);
  let created = false;
  if (!found) {
    const project = await call(baseUrl, token, "POST", "/projects", {
      name: DEMO_PROJECT_NAME,
      description: "The bundled demo shop's experiments (demo/datafile.json), imported as records.",
      sdkKeys: { production: DEMO_SDK_KEY },
    });
    const environment = project.environments.find((e) => e.key === "production");
    found = { project, environment };
    created = true;
    log(
      `demo: created project "${DEMO_PROJECT_NAME}" (${project.id}); production serves sdkKey "${DEMO_SDK_KEY}"`,
    );
  }
  // A first start that created the project but was stopped before its import left it empty:
  // import then too, or the demo would stay empty for good.
  const experiments = created
    ? { items: [] }
    : await call(baseUrl, token, "GET", `/projects/${found.project.id}/experiments?limit=1`);
  const empty = experiments.items.length === 0;
  let imported = false;
  if (created || reset || empty) {
    const summary = await call(
      baseUrl,
      token,
      "POST",
      `/environments/${found.environment.id}/datafile/import`,
      datafile,
    );
    imported = true;
    log(`demo: imported demo/datafile.json: ${describeImport(summary)}`);
  } else {
    log(
      `demo: project "${found.project.name}" (${found.project.id}) serves sdkKey "${DEMO_SDK_KEY}"; kept as it is (SPLITSTREAM_DEMO_RESET=1 imports the file again)`,
    );
  }
  return {
    created,
    imported,
    projectId: found.project.id,
    environmentId: found.environment.id,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [baseUrl, token] = process.argv.slice(2);
  if (!baseUrl || !token) {
    console.error("usage: node scripts/demo-seed.mjs BASE_URL ADMIN_TOKEN");
    process.exit(2);
  }
  seedDemo({ baseUrl, token, reset: process.env.SPLITSTREAM_DEMO_RESET === "1" }).catch((error) => {
    console.error(`demo: ${error.message}`);
    process.exit(1);
  });
}
