/**
 * Feature flags in the admin (src/admin/flag-pages.ts, flag-draft.ts; docs/admin.md "Feature
 * flags"): the list and the navigation, the create form, the per-environment toggle reaching the
 * datafile the Worker serves, delivery rules (audience, traffic in percent, order, Everyone
 * Else), variables and variation values typed per type (no integer silently rounded), A/B rules
 * created as experiments, archive and delete with the API's 409s, a stale version's 409, every
 * form saved unchanged keeping the flag as it was; viewers read only and cross-site posts are
 * refused. Records are checked through the management API; forms are posted as the page renders
 * them (read off its HTML).
 */
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { decideAllFlags, loadDatafile } from "../../src/core/index";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import {
  adminFetch,
  adminPage,
  adminPost,
  decodeHtml,
  SAME_SITE,
  submittedFields,
} from "../helpers/admin";
import {
  adminSession,
  API_ORIGIN,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;
type Fields = Array<[string, string]>;

let project: ProjectWithEnvironments;
let editor: string;
let germany: { id: string };

/** POSTs a form (pairs, so a name may repeat) as a same-origin browser would. */
function postForm(
  path: string,
  fields: Fields,
  options: { cookie?: string; headers?: Record<string, string> } = {},
) {
  return adminPost(path, options.cookie ?? editor, fields, { ...SAME_SITE, ...options.headers });
}

const getPage = (path: string, cookie = editor): Promise<string> => adminPage(path, cookie);

/** What a browser submits from the page's form `selector` (textarea line breaks as CRLF). */
const formFields = (page: string, selector: string): Promise<Fields> =>
  submittedFields(page, selector, { crlf: true });

/** `fields` with `name` set to `value` (in place of its value, else appended). */
function withField(fields: Fields, name: string, value: string): Fields {
  const at = fields.findIndex(([n]) => n === name);
  if (at < 0) return [...fields, [name, value]];
  return fields.map(([n, v], i): [string, string] => (i === at ? [n, value] : [n, v]));
}

function filled(fields: Fields, values: Record<string, string>): Fields {
  let out = fields;
  for (const [name, value] of Object.entries(values)) out = withField(out, name, value);
  return out;
}

/** The problem shown beside field `name` (src/admin/forms.ts ids: `f-<name, others as ->-error`). */
function fieldError(page: string, name: string): string | null {
  const id = `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}-error`;
  const match = new RegExp(`id="${id}">([^<]*)<`).exec(page);
  return match ? decodeHtml(match[1]!) : null;
}

const flagsPath = () => `/projects/${project.id}/flags`;
const flagPath = (id: string) => `${flagsPath()}/${id}`;
const sdkKey = (environment: string) =>
  project.environments.find((e) => e.key === environment)!.sdkKey;

/** The flags the Worker's served datafile decides for a visitor (what an SDK would decide). */
async function servedDecisions(environment: string, visitorId: string, attributes = {}) {
  // The isolate keeps the datafile it read; a publish since must be read again.
  resetDatafileStore();
  const response = await exports.default.fetch(
    `${API_ORIGIN}/_ss/datafiles/${sdkKey(environment)}.json`,
  );
  expect(response.status).toBe(200);
  const loaded = loadDatafile(await response.text());
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
  return decideAllFlags(loaded.compiled, { visitorId, attributes });
}

async function createFlagThroughForm(key: string, name = ""): Promise<string> {
  const response = await postForm(flagsPath(), [
    ["key", key],
    ["name", name],
    ["description", ""],
  ]);
  expect(response.status).toBe(303);
  const location = response.headers.get("location")!;
  expect(location).toContain("?done=created");
  return /\/flags\/([^/?]+)\?/.exec(location)![1]!;
}

beforeEach(async () => {
  project = await createProject();
  editor = await adminSession();
  germany = await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
    body: {
      name: "Germany",
      conditions: [
        "or",
        { type: "custom_attribute", name: "geo.country", match: "exact", value: "DE" },
      ],
    },
  });
});

describe("list and create", () => {
  it("the project's navigation links the flags; the list shows each environment's state", async () => {
    const projectPage = await getPage(`/projects/${project.id}`);
    expect(projectPage).toContain(`href="/_ss/admin/projects/${project.id}/flags"`);
    const empty = await getPage(flagsPath());
    expect(empty).toContain("No flags yet.");
    expect(empty).toContain('aria-current="page">Flags<');
    expect(empty).toContain(`href="/_ss/admin/projects/${project.id}/flags/new"`);

    const form = await getPage(`${flagsPath()}/new`);
    expect(form).toContain('data-form="flag"');
    const id = await createFlagThroughForm("new_checkout", "New checkout");
    const stored = await apiJson("GET", `/flags/${id}`, 200);
    expect(stored).toMatchObject({ key: "new_checkout", name: "New checkout", archived: false });
    expect(stored.variations.map((v: Json) => v.key)).toEqual(["off", "on"]);
    await apiJson("PATCH", `/flags/${id}`, 200, {
      body: {
        environments: {
          production: { enabled: true, rules: [{ key: "everyone", traffic: 10000 }] },
        },
      },
    });

    const list = await getPage(flagsPath());
    const row = /<tr data-item="new_checkout">([\s\S]*?)<\/tr>/.exec(list)![1]!;
    expect(row).toContain(`href="/_ss/admin/projects/${project.id}/flags/${id}"`);
    expect(row).toContain("New checkout");
    const cell = (environment: string) =>
      new RegExp(`data-environment="${environment}">([\\s\\S]*?)</td>`).exec(row)![1]!;
    expect(cell("production")).toContain('data-enabled="true"');
    expect(cell("production")).toContain("1 rule");
    const other = project.environments.find((e) => e.key !== "production")!.key;
    expect(cell(other)).toContain('data-enabled="false"');
    expect(cell(other)).toContain("0 rules");
  });

  it("a refused create comes back with the typed values and the problem beside the field", async () => {
    const response = await postForm(flagsPath(), [
      ["key", "bad key!"],
      ["name", "Kept name"],
      ["description", "Kept description"],
    ]);
    expect(response.status).toBe(422);
    const page = await response.text();
    expect(fieldError(page, "key")).toContain("letters, digits");
    expect(page).toContain('value="bad key!"');
    expect(page).toContain('value="Kept name"');
    expect(page).toContain("Kept description");
    expect((await apiJson("GET", `${"/projects/"}${project.id}/flags`, 200)).items).toEqual([]);

    await createFlagThroughForm("taken");
    const duplicate = await postForm(flagsPath(), [["key", "taken"]]);
    expect(duplicate.status).toBe(409);
    expect(await duplicate.text()).toContain('value="taken"');
  });

  it("an unknown project or flag is 404", async () => {
    expect((await adminFetch(`/projects/123404040404/flags`, { cookie: editor })).status).toBe(404);
    expect((await adminFetch(`${flagsPath()}/123404040404`, { cookie: editor })).status).toBe(404);
    // A flag of another project is not found under this one.
    const other = await createProject();
    const flag = await apiJson("POST", `/projects/${other.id}/flags`, 201, { body: { key: "x" } });
    expect((await adminFetch(flagPath(flag.id), { cookie: editor })).status).toBe(404);
  });
});

describe("toggle and delivery rules reach the datafile", () => {
  it("rules saved while off change nothing for visitors; the toggle turns them on and off", async () => {
    const id = await createFlagThroughForm("new_checkout");
    let page = await getPage(flagPath(id));
    const rulesForm = 'form[data-rules="production"]';
    // "Add rule" renders the form again with a row and saves nothing.
    const added = await postForm(`${flagPath(id)}/environments/production/rules`, [
      ...(await formFields(page, rulesForm)),
      ["_add", "rule"],
    ]);
    expect(added.status).toBe(200);
    page = await added.text();
    const rule = "environments.production.rules[0]";
    expect(page).toContain(`name="${rule}.key"`);
    expect((await apiJson("GET", `/flags/${id}`, 200)).version).toBe(1);

    const saved = await postForm(
      `${flagPath(id)}/environments/production/rules`,
      filled(await formFields(page, rulesForm), {
        [`${rule}.key`]: "everyone",
        [`${rule}.traffic`]: "100",
        [`${rule}.variationKey`]: "on",
      }),
    );
    expect(saved.status).toBe(303);
    expect(saved.headers.get("location")).toContain("?done=saved");
    let stored = await apiJson("GET", `/flags/${id}`, 200);
    expect(stored.environments.production).toMatchObject({
      enabled: false,
      rules: [{ key: "everyone", traffic: 10000, variationKey: "on", audienceConditions: null }],
    });
    expect((await servedDecisions("production", "v1"))[0]).toMatchObject({
      flagKey: "new_checkout",
      enabled: false,
      variationKey: "off",
    });

    // One click: the toggle form as rendered.
    page = await getPage(flagPath(id));
    const toggle = await formFields(page, 'form[data-toggle="production"]');
    expect(toggle).toEqual([
      ["version", "2"],
      ["enabled", "true"],
    ]);
    const on = await postForm(`${flagPath(id)}/environments/production/toggle`, toggle);
    expect(on.status).toBe(303);
    expect(on.headers.get("location")).toContain("?done=on&environment=production");
    expect((await servedDecisions("production", "v1"))[0]).toMatchObject({
      enabled: true,
      variationKey: "on",
      ruleKey: "everyone",
    });
    // The other environment did not change.
    const other = project.environments.find((e) => e.key !== "production")!.key;
    expect((await servedDecisions(other, "v1"))[0]).toMatchObject({ enabled: false });
    page = await getPage(`${flagPath(id)}?done=on&environment=production`);
    expect(page).toContain("Turned on in Production (production).");
    expect(page).toContain('data-action="turn-off"');

    const off = await postForm(
      `${flagPath(id)}/environments/production/toggle`,
      await formFields(page, 'form[data-toggle="production"]'),
    );
    expect(off.status).toBe(303);
    stored = await apiJson("GET", `/flags/${id}`, 200);
    expect(stored.environments.production.enabled).toBe(false);
    expect(stored.environments.production.rules).toHaveLength(1);
    expect((await servedDecisions("production", "v1"))[0]).toMatchObject({ enabled: false });
  });

  it("rules with audiences, traffic in percent, moved and removed; ids kept; Everyone Else", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "banner",
        variations: [{ key: "on" }, { key: "big" }],
        environments: {
          production: {
            enabled: true,
            rules: [
              { key: "first", traffic: 10000 },
              { key: "germans", traffic: 5000, audienceConditions: ["or", germany.id] },
            ],
          },
        },
      },
    });
    const path = `${flagPath(flag.id)}/environments/production/rules`;
    const rulesForm = 'form[data-rules="production"]';
    const ids = flag.environments.production.rules.map((r: Json) => r.id);
    let page = await getPage(flagPath(flag.id));
    // The stored audience is chosen in its select; traffic shows as percent.
    expect(page).toMatch(new RegExp(`<option value="${germany.id}" selected>\\s*Germany`));
    expect(page).toContain('name="environments.production.rules[1].traffic"');
    expect(page).toContain('value="50"');

    // Move the second rule up: rendered again in the new order, nothing saved.
    const moved = await postForm(path, [...(await formFields(page, rulesForm)), ["_move", "up:1"]]);
    expect(moved.status).toBe(200);
    page = await moved.text();
    let fields = await formFields(page, rulesForm);
    expect(fields.filter(([n]) => n.endsWith(".key")).map(([, v]) => v)).toEqual([
      "germans",
      "first",
    ]);
    fields = filled(fields, {
      "environments.production.rules[0].traffic": "12.5",
      "environments.production.rules[1].audienceConditions": germany.id,
      "environments.production.rules[1].variationKey": "big",
      "environments.production.defaultVariationKey": "on",
    });
    expect((await postForm(path, fields)).status).toBe(303);
    const stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.environments.production).toMatchObject({
      enabled: true,
      defaultVariationKey: "on",
      rules: [
        { id: ids[1], key: "germans", traffic: 1250, audienceConditions: ["or", germany.id] },
        {
          id: ids[0],
          key: "first",
          traffic: 10000,
          audienceConditions: ["or", germany.id],
          variationKey: "big",
        },
      ],
    });
    // Visitors outside the audience get Everyone Else.
    const french = await servedDecisions("production", "v2", { "geo.country": "FR" });
    expect(french[0]).toMatchObject({ enabled: true, variationKey: "on" });

    // Remove the first rule (rendered again), then save.
    page = await getPage(flagPath(flag.id));
    const removed = await postForm(path, [
      ...(await formFields(page, rulesForm)),
      ["_remove", "0"],
    ]);
    page = await removed.text();
    fields = await formFields(page, rulesForm);
    expect(fields.filter(([n]) => n.endsWith(".key")).map(([, v]) => v)).toEqual(["first"]);
    expect((await postForm(path, fields)).status).toBe(303);
    expect(
      (await apiJson("GET", `/flags/${flag.id}`, 200)).environments.production.rules.map(
        (r: Json) => [r.id, r.key],
      ),
    ).toEqual([[ids[0], "first"]]);
  });

  it("a traffic percentage outside 0–100 or with 3 decimals is refused beside it, as typed", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: { key: "f", environments: { production: { rules: [{ key: "r", traffic: 100 }] } } },
    });
    const path = `${flagPath(flag.id)}/environments/production/rules`;
    const fields = await formFields(
      await getPage(flagPath(flag.id)),
      'form[data-rules="production"]',
    );
    const traffic = "environments.production.rules[0].traffic";
    for (const typed of ["150", "-1", "12.345", "abc", ""]) {
      const response = await postForm(path, withField(fields, traffic, typed));
      expect(response.status, typed).toBe(422);
      const page = await response.text();
      expect(fieldError(page, traffic), typed).toContain("not a percentage from 0 to 100");
      expect(page).toContain(`value="${typed}"`);
      // The problems are above the rules form of production.
      expect(page).toMatch(/data-rules="production"[^>]*>\s*<div class="error" role="alert"/);
    }
    // The API's own problems land beside their fields too: a bad key, an unknown variation.
    const refused = await postForm(
      path,
      withField(fields, "environments.production.rules[0].key", "no spaces"),
    );
    expect(refused.status).toBe(422);
    const page = await refused.text();
    expect(fieldError(page, "environments.production.rules[0].key")).toContain("letters, digits");
    expect(page).toContain('value="no spaces"');
    const unknown = await postForm(
      path,
      withField(fields, "environments.production.defaultVariationKey", "gone"),
    );
    expect(unknown.status).toBe(422);
    expect(
      fieldError(await unknown.text(), "environments.production.defaultVariationKey"),
    ).toContain("not a variation of this flag");
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).version).toBe(1);
  });

  it("a stale version is the API's 409 and changes nothing; a toggle's too", async () => {
    const id = await createFlagThroughForm("f");
    const page = await getPage(flagPath(id));
    const toggle = await formFields(page, 'form[data-toggle="production"]');
    await apiJson("PATCH", `/flags/${id}`, 200, { body: { name: "changed meanwhile" } });
    const stale = await postForm(`${flagPath(id)}/environments/production/toggle`, toggle);
    expect(stale.status).toBe(409);
    expect(await stale.text()).toContain("changed by someone else");
    const details = await postForm(
      `${flagPath(id)}/details`,
      withField(await formFields(page, "form[data-form=details]"), "name", "mine"),
    );
    expect(details.status).toBe(409);
    const text = await details.text();
    expect(text).toContain("Open the current version");
    expect(text).toContain('value="mine"');
    expect(await apiJson("GET", `/flags/${id}`, 200)).toMatchObject({
      name: "changed meanwhile",
      version: 2,
      environments: { production: { enabled: false } },
    });
  });

  it("a stale form is the 409 before the form's own checks; its variations come back as typed", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "stale",
        variables: [{ key: "max_items", type: "integer", defaultValue: 3 }],
        environments: { production: { rules: [{ key: "r", traffic: 100 }] } },
      },
    });
    const page = await getPage(flagPath(flag.id));
    const variables = await formFields(page, "form[data-form=variables]");
    const variations = await formFields(page, "form[data-form=variations]");
    const rules = await formFields(page, 'form[data-rules="production"]');
    // Meanwhile the variable is renamed (another tab, the API).
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: {
        variables: [{ id: flag.variables[0].id, key: "limit", type: "integer", defaultValue: 3 }],
      },
    });
    // Values the form itself would refuse: still the version conflict (not a 422 about a flag the
    // form was not rendered from), with what was typed.
    const staleVariables = await postForm(
      `${flagPath(flag.id)}/variables`,
      withField(variables, "variables[0].defaultValue", "not a number"),
    );
    expect(staleVariables.status).toBe(409);
    let text = await staleVariables.text();
    expect(text).toContain("changed by someone else");
    expect(text).toContain("Open the current version");
    expect(text).toContain('value="not a number"');
    const staleRules = await postForm(
      `${flagPath(flag.id)}/environments/production/rules`,
      withField(rules, "environments.production.rules[0].traffic", "150"),
    );
    expect(staleRules.status).toBe(409);
    expect(fieldError(await staleRules.text(), "environments.production.rules[0].traffic")).toBe(
      null,
    );
    // The variations form is read by the variables it was rendered with: the value typed for
    // max_items comes back in its field (the flag's variable is now "limit").
    const staleVariations = await postForm(
      `${flagPath(flag.id)}/variations`,
      withField(variations, "variations[1].variables.max_items", "7"),
    );
    expect(staleVariations.status).toBe(409);
    text = await staleVariations.text();
    const back = await formFields(text, "form[data-form=variations]");
    expect(back).toContainEqual(["variations[1].variables.max_items", "7"]);
    expect(back).toContainEqual(["version", "1"]);
    const stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.version).toBe(2);
    expect(stored.variations[1].variables).toEqual({});
  });

  it("a form posted without its version is a conflict, never an unguarded write", async () => {
    const id = await createFlagThroughForm("unversioned");
    const page = await getPage(flagPath(id));
    const withoutVersion = (fields: Fields) => fields.filter(([name]) => name !== "version");
    const posts: Array<[string, Fields]> = [
      ["environments/production/toggle", await formFields(page, 'form[data-toggle="production"]')],
      ["details", withField(await formFields(page, "form[data-form=details]"), "name", "mine")],
      ["variables", await formFields(page, "form[data-form=variables]")],
      ["variations", await formFields(page, "form[data-form=variations]")],
      ["environments/production/rules", await formFields(page, 'form[data-rules="production"]')],
      ["archive", await formFields(page, 'form[action$="/archive"]')],
      ["delete", [...(await formFields(page, 'form[action$="/delete"]')), ["confirm", "yes"]]],
    ];
    for (const [action, fields] of posts) {
      expect(
        fields.some(([name]) => name === "version"),
        action,
      ).toBe(true);
      const response = await postForm(`${flagPath(id)}/${action}`, withoutVersion(fields));
      expect(response.status, action).toBe(409);
      expect(await response.text(), action).toContain("changed by someone else");
    }
    expect(await apiJson("GET", `/flags/${id}`, 200)).toMatchObject({
      version: 1,
      name: "",
      archived: false,
      environments: { production: { enabled: false } },
    });
  });

  it("names environments by name and key, echoes no ?environment= text, shows A/B rules first", async () => {
    const id = await createFlagThroughForm("named");
    let page = await getPage(flagPath(id));
    expect(page).toMatch(/<h2 id="env-\d-heading">\s*Environment Production \(production\)/);
    expect(page).toMatch(/Turn on in Production \(production\)/);
    expect(page).toMatch(/Save the rules of Production \(production\)/);
    expect(page).toContain("Delivery rules in Production (production), in order");
    expect(await getPage(flagsPath())).toContain('<th scope="col">Production (production)</th>');
    // The status after a toggle names a project's environment, never the query's text.
    page = await getPage(`${flagPath(id)}?done=off&environment=production`);
    expect(page).toContain("Turned off in Production (production).");
    for (const query of [
      `done=on&environment=${encodeURIComponent("<i>evil</i>")}`,
      "done=on&environment=staging",
      "done=on",
      "done=constructor",
    ]) {
      page = await getPage(`${flagPath(id)}?${query}`);
      expect(page, query).not.toContain("evil");
      expect(page, query).not.toContain("staging");
      expect(page, query).not.toContain("data-done=");
    }
    // The decision order: A/B rules are decided first, and their section comes before the
    // variations and variables.
    expect(page).toContain("a running A/B rule first");
    const at = (id: string) => page.indexOf(`id="${id}"`);
    expect(at("env-0-heading")).toBeGreaterThan(0);
    expect(at("ab-heading")).toBeGreaterThan(at("env-0-heading"));
    expect(at("variations-heading")).toBeGreaterThan(at("ab-heading"));
    expect(at("variables-heading")).toBeGreaterThan(at("variations-heading"));
  });
});

describe("variables and variations", () => {
  it("adds typed variables; an integer beyond 2^53 is refused, never rounded; JSON is checked", async () => {
    const id = await createFlagThroughForm("config");
    const path = `${flagPath(id)}/variables`;
    let page = await getPage(flagPath(id));
    const types = ["boolean", "integer", "double", "string", "json"];
    let fields = await formFields(page, "form[data-form=variables]");
    // "Add variable" renders the form again with one more row; nothing is saved.
    for (const _ of types) {
      const added = await postForm(path, [...fields, ["_add", "variable"]]);
      expect(added.status).toBe(200);
      fields = await formFields(await added.text(), "form[data-form=variables]");
    }
    types.forEach((type, i) => {
      fields = filled(fields, {
        [`variables[${i}].key`]: `v_${type}`,
        [`variables[${i}].type`]: type,
      });
    });
    // The value fields of the chosen types.
    const refreshed = await postForm(path, [...fields, ["_refresh", "types"]]);
    page = await refreshed.text();
    expect(page).toMatch(/<select\s+id="f-variables-0--defaultValue"/);
    expect(page).toMatch(/<textarea\s+id="f-variables-4--defaultValue"/);
    fields = filled(await formFields(page, "form[data-form=variables]"), {
      "variables[0].defaultValue": "true",
      "variables[1].defaultValue": "9007199254740993",
      "variables[2].defaultValue": "0.25",
      "variables[3].defaultValue": "  Käse </script> ",
      "variables[4].defaultValue": '{"theme": "dark", "n": 12345678901234567890}',
    });
    const refused = await postForm(path, fields);
    expect(refused.status).toBe(422);
    page = await refused.text();
    // The integer is kept as typed (not rounded to 9007199254740992): the API's message names it.
    expect(fieldError(page, "variables[1].defaultValue")).toBe(
      'expected an integer between -(2^53 - 1) and 2^53 - 1, got "9007199254740993"',
    );
    expect(page).toContain('value="9007199254740993"');
    // The JSON's big integer is refused by the form (JSON.parse would round it), in the same answer.
    expect(fieldError(page, "variables[4].defaultValue")).toBe(
      '12345678901234567890 cannot be stored exactly: as a JSON number it would become 12345678901234567000; write it as a string ("12345678901234567890")',
    );
    expect((await apiJson("GET", `/flags/${id}`, 200)).variables).toEqual([]);
    fields = withField(fields, "variables[1].defaultValue", "9007199254740991");
    fields = withField(fields, "variables[4].defaultValue", "{not json");
    expect(
      fieldError(await (await postForm(path, fields)).text(), "variables[4].defaultValue"),
    ).toContain("not valid JSON");
    fields = withField(
      fields,
      "variables[4].defaultValue",
      '{"theme": "dark", "n": "12345678901234567890"}',
    );
    expect((await postForm(path, fields)).status).toBe(303);
    const stored = await apiJson("GET", `/flags/${id}`, 200);
    expect(stored.variables.map((v: Json) => [v.key, v.type, v.defaultValue])).toEqual([
      ["v_boolean", "boolean", true],
      ["v_integer", "integer", 9007199254740991],
      ["v_double", "double", 0.25],
      ["v_string", "string", "  Käse </script> "],
      ["v_json", "json", { theme: "dark", n: "12345678901234567890" }],
    ]);
    // A value of the wrong type is the API's problem beside the field.
    const wrong = await postForm(
      path,
      withField(
        await formFields(await getPage(flagPath(id)), "form[data-form=variables]"),
        "variables[2].defaultValue",
        "1e400",
      ),
    );
    expect(wrong.status).toBe(422);
    expect(fieldError(await wrong.text(), "variables[2].defaultValue")).toBe(
      "expected a finite number",
    );
  });

  it("sets variation values (or the default), adds and removes variations", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "checkout",
        variables: [
          { key: "max_items", type: "integer", defaultValue: 3 },
          { key: "title", type: "string", defaultValue: "Checkout" },
        ],
      },
    });
    const path = `${flagPath(flag.id)}/variations`;
    let page = await getPage(flagPath(flag.id));
    // Every value follows the default until set: an empty input showing the default.
    let fields = await formFields(page, "form[data-form=variations]");
    expect(fields).toContainEqual(["variations[1].variables.max_items", ""]);
    expect(page).toMatch(/id="f-variations-1--variables-max_items"[^>]*placeholder="3"/);
    expect(page).toContain("Empty: the default, 3.");
    const added = await postForm(path, [...fields, ["_add", "variation"]]);
    page = await added.text();
    fields = await formFields(page, "form[data-form=variations]");
    expect(fields).toContainEqual(["variations[2].variables.title", ""]);
    fields = filled(fields, {
      "variations[1].variables.max_items": "9007199254740992",
      "variations[2].key": "big",
      "variations[2].name": "Big",
      "variations[2].variables.title": "Big checkout",
    });
    const refused = await postForm(path, fields);
    expect(refused.status).toBe(422);
    page = await refused.text();
    expect(fieldError(page, "variations[1].variables.max_items")).toContain(
      'got "9007199254740992"',
    );
    expect(page).toContain('value="Big checkout"');
    expect(page).toContain('value="9007199254740992"');
    fields = withField(fields, "variations[1].variables.max_items", "-42");
    expect((await postForm(path, fields)).status).toBe(303);
    let stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.variations.map((v: Json) => [v.key, v.name, v.variables])).toEqual([
      ["off", "Off", {}],
      ["on", "On", { max_items: -42 }],
      ["big", "Big", { title: "Big checkout" }],
    ]);
    // A variation a rule delivers cannot go: the API's problem is shown beside the rule.
    await apiJson("PATCH", `/flags/${flag.id}`, 200, {
      body: {
        environments: { production: { rules: [{ key: "r", traffic: 100, variationKey: "big" }] } },
      },
    });
    page = await getPage(flagPath(flag.id));
    const removed = await postForm(path, [
      ...(await formFields(page, "form[data-form=variations]")),
      ["_remove", "2"],
    ]);
    fields = await formFields(await removed.text(), "form[data-form=variations]");
    expect(fields.filter(([n]) => /^variations\[\d\]\.key$/.test(n)).map(([, v]) => v)).toEqual([
      "off",
      "on",
    ]);
    const inUse = await postForm(path, fields);
    expect(inUse.status).toBe(422);
    expect(
      fieldError(await inUse.text(), "environments.production.rules[0].variationKey"),
    ).toContain('"big" is not a variation of this flag');
    // "off" is neither removed nor moved.
    const offKept = await postForm(path, [...fields, ["_remove", "0"]]);
    expect(
      (await formFields(await offKept.text(), "form[data-form=variations]")).filter(
        ([n]) => n === "variations[0].key",
      ),
    ).toEqual([["variations[0].key", "off"]]);
    stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.variations.map((v: Json) => v.key)).toEqual(["off", "on", "big"]);
  });

  it("a variation's value is what is typed in its field; empty follows the default; nothing typed is dropped", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "values",
        variables: [
          { key: "max_items", type: "integer", defaultValue: 3 },
          { key: "title", type: "string", defaultValue: "Checkout" },
          { key: "banner", type: "boolean", defaultValue: false },
          { key: "config", type: "json", defaultValue: { theme: "light" } },
        ],
        variations: [{ key: "off" }, { key: "on", variables: { max_items: 5 } }],
      },
    });
    const path = `${flagPath(flag.id)}/variations`;
    const form = "form[data-form=variations]";
    let page = await getPage(flagPath(flag.id));
    let fields = await formFields(page, form);
    // Its own value in its field; the others empty, the default shown in them and in the hint.
    expect(fields).toContainEqual(["variations[1].variables.max_items", "5"]);
    expect(fields).toContainEqual(["variations[1].variables.title", ""]);
    expect(fields).toContainEqual(["variations[1].variables.banner", ""]);
    expect(fields).toContainEqual(["variations[1].variables.config", ""]);
    expect(page).toMatch(/<option value="" selected>\s*the default \(false\)/);
    expect(page).toMatch(
      /id="f-variations-1--variables-title"[^>]*placeholder="&quot;Checkout&quot;"/,
    );
    expect(page).toContain("Empty: the default, &quot;Checkout&quot;.");
    expect(page).toMatch(/<label for="f-variations-1--variables-title">title \(string\)<\/label>/);
    expect(page).toMatch(
      /<label for="f-_empty-variations-1--variables-title">title: the empty text \(not the default\)<\/label>/,
    );
    // Typed values are the variation's own — there is no box to untick first; an emptied field
    // goes back to the default.
    const typed = await postForm(
      path,
      filled(fields, {
        "variations[1].variables.title": "Buy now",
        "variations[1].variables.banner": "true",
        "variations[1].variables.config": '{\r\n  "theme": "dark"\r\n}',
        "variations[1].variables.max_items": "",
      }),
    );
    expect(typed.status).toBe(303);
    let stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.variations[1].variables).toEqual({
      title: "Buy now",
      banner: true,
      config: { theme: "dark" },
    });
    // The empty text is a value of a string of its own (its box). Ticked with a text typed too,
    // the form is refused and comes back with both: neither is thrown away.
    page = await getPage(flagPath(flag.id));
    fields = await formFields(page, form);
    expect(fields).toContainEqual(["variations[1].variables.title", "Buy now"]);
    const empty = "_empty.variations[1].variables.title";
    const both = await postForm(path, [...fields, [empty, "on"]]);
    expect(both.status).toBe(422);
    page = await both.text();
    expect(fieldError(page, "variations[1].variables.title")).toBe(
      'a text is typed and "title: the empty text" is ticked: clear the text or untick the box',
    );
    fields = await formFields(page, form);
    expect(fields).toContainEqual(["variations[1].variables.title", "Buy now"]);
    expect(fields).toContainEqual([empty, "on"]);
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).version).toBe(2);
    const cleared = await postForm(path, withField(fields, "variations[1].variables.title", ""));
    expect(cleared.status).toBe(303);
    stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored.variations[1].variables).toEqual({
      title: "",
      banner: true,
      config: { theme: "dark" },
    });
    // Shown again as the empty text (box ticked); unticked with the field empty: the default.
    fields = await formFields(await getPage(flagPath(flag.id)), form);
    expect(fields).toContainEqual([empty, "on"]);
    expect(fields).toContainEqual(["variations[1].variables.title", ""]);
    const back = await postForm(
      path,
      filled(
        fields.filter(([name]) => name !== empty),
        { "variations[1].variables.banner": "", "variations[1].variables.config": "  " },
      ),
    );
    expect(back.status).toBe(303);
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).variations[1].variables).toEqual({});
  });

  it("JSON numbers: exact ones pass (also beyond 2^53, saved unchanged), changed ones are refused", async () => {
    const config = { big: 9007199254740994, huge: 1e21, tenth: 0.1, tiny: -2.5e-7, list: [1, 2] };
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: { key: "numbers", variables: [{ key: "config", type: "json", defaultValue: config }] },
    });
    const path = `${flagPath(flag.id)}/variables`;
    const current = async () =>
      formFields(await getPage(flagPath(flag.id)), "form[data-form=variables]");
    const unchanged = await postForm(path, await current());
    expect(unchanged.status, await unchanged.clone().text()).toBe(303);
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).variables[0].defaultValue).toEqual(
      config,
    );
    // The same numbers written other ways are the same numbers.
    const same = await postForm(
      path,
      withField(
        await current(),
        "variables[0].defaultValue",
        '{"a": 1.0, "b": 1e2, "c": 9007199254740994.000, "d": 0.10, "e": -0, "f": 12.5E-1}',
      ),
    );
    expect(same.status).toBe(303);
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).variables[0].defaultValue).toEqual({
      a: 1,
      b: 100,
      c: 9007199254740994,
      d: 0.1,
      e: 0,
      f: 1.25,
    });
    // Numbers JSON.parse would change: refused beside the field, the text kept.
    const fields = await current();
    for (const [typed, message] of [
      [
        '{"a": 1e400}',
        '1e400 is beyond the largest JSON number (about 1.8e308); write it as a string ("1e400")',
      ],
      [
        '{"a": 9007199254740993.0}',
        '9007199254740993.0 cannot be stored exactly: as a JSON number it would become 9007199254740992; write it as a string ("9007199254740993.0")',
      ],
      [
        '{"a": {"b": [9007199254740993e0]}}',
        '9007199254740993e0 cannot be stored exactly: as a JSON number it would become 9007199254740992; write it as a string ("9007199254740993e0")',
      ],
      [
        '{"a": 1e-400, "s": "1e400"}',
        '1e-400 cannot be stored exactly: as a JSON number it would become 0; write it as a string ("1e-400")',
      ],
      [
        '{"a": 0.100000000000000000001}',
        '0.100000000000000000001 cannot be stored exactly: as a JSON number it would become 0.1; write it as a string ("0.100000000000000000001")',
      ],
    ] as const) {
      const response = await postForm(path, withField(fields, "variables[0].defaultValue", typed));
      expect(response.status, typed).toBe(422);
      const page = await response.text();
      expect(fieldError(page, "variables[0].defaultValue"), typed).toBe(message);
      expect(decodeHtml(page), typed).toContain(typed);
    }
    expect((await apiJson("GET", `/flags/${flag.id}`, 200)).version).toBe(3);
  });

  it("every form saved unchanged keeps the flag exactly as it was", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "everything",
        name: "",
        description: "Line one\nLine two",
        variables: [
          { key: "enabled_banner", type: "boolean", defaultValue: false },
          { key: "max-items", type: "integer", defaultValue: 9007199254740991 },
          { key: "discount", type: "double", defaultValue: 1e-7 },
          { key: "title", type: "string", defaultValue: "Two\nlines " },
          { key: "empty", type: "string", defaultValue: "" },
          {
            key: "config",
            type: "json",
            defaultValue: { theme: "light", sizes: [1, 2], id: 9007199254740994, ratio: 0.1 },
          },
        ],
        variations: [
          { key: "off", name: "Disabled" },
          { key: "on", name: "", variables: { enabled_banner: true, empty: "" } },
          {
            key: "big",
            variables: {
              "max-items": -9007199254740991,
              config: { big: 1e21 },
              title: "Three\nlines\nhere",
            },
          },
        ],
        environments: {
          production: {
            enabled: true,
            rules: [
              {
                key: "nested",
                traffic: 3333,
                audienceConditions: ["and", germany.id, ["not", germany.id]],
              },
              {
                key: "plain",
                traffic: 1,
                audienceConditions: ["and", germany.id],
                variationKey: "big",
              },
            ],
            defaultVariationKey: "big",
          },
        },
      },
    });
    const before = await apiJson("GET", `/flags/${flag.id}`, 200);
    const page = await getPage(flagPath(flag.id));
    expect(page).toContain("as stored: Germany and not Germany");
    const forms: Array<[string, string]> = [
      ["form[data-form=details]", "details"],
      ["form[data-form=variables]", "variables"],
      ["form[data-form=variations]", "variations"],
      ...project.environments.map((e): [string, string] => [
        `form[data-rules="${e.key}"]`,
        `environments/${e.key}/rules`,
      ]),
    ];
    let version = before.version;
    for (const [selector, action] of forms) {
      const current = await getPage(flagPath(flag.id));
      const response = await postForm(
        `${flagPath(flag.id)}/${action}`,
        await formFields(current, selector),
      );
      expect(
        response.status,
        `${action}: ${response.status === 303 ? "" : await response.text()}`,
      ).toBe(303);
      version++;
    }
    const after = await apiJson("GET", `/flags/${flag.id}`, 200);
    const strip = ({ version: _v, updatedAt: _u, ...rest }: Json) => rest;
    expect(strip(after)).toEqual(strip(before));
    expect(after.version).toBe(version);
  });
});

describe("A/B rules, archive and delete", () => {
  it("creates an A/B rule (off/on 50/50, a metric), lists it; archive and delete answer 409", async () => {
    const purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "purchase", type: "custom" },
    });
    const id = await createFlagThroughForm("new_checkout");
    let page = await getPage(flagPath(id));
    expect(page).toContain("No A/B rules.");
    let fields = await formFields(page, "form[data-form=ab-rule]");
    expect(fields).toContainEqual(["ab.key", "new_checkout_test"]);
    expect(fields).toContainEqual(["ab.variationKey", "on"]);
    // Without a metric: what to do, beside the event select.
    const refused = await postForm(
      `${flagPath(id)}/ab-rules`,
      withField(fields, "ab.name", "Kept"),
    );
    expect(refused.status).toBe(422);
    page = await refused.text();
    expect(fieldError(page, "ab.eventId")).toBe("choose an event");
    expect(page).not.toContain('unknown event ""');
    expect(page).toContain('value="Kept"');
    fields = withField(fields, "ab.eventId", purchase.id);
    const created = await postForm(`${flagPath(id)}/ab-rules`, fields);
    expect(created.status).toBe(303);
    const experimentId = /\/experiments\/([^/?]+)/.exec(created.headers.get("location")!)![1]!;
    const experiment = await apiJson("GET", `/experiments/${experimentId}`, 200);
    expect(experiment).toMatchObject({
      key: "new_checkout_test",
      type: "ab",
      flagId: id,
      pageIds: [],
      metrics: [{ eventId: purchase.id, aggregator: "unique" }],
    });
    expect(experiment.variations.map((v: Json) => [v.key, v.weight])).toEqual([
      ["off", 5000],
      ["on", 5000],
    ]);
    // The experiment's page links back to the flag; its copy stays an A/B rule of the flag.
    const experimentPage = await getPage(`/experiments/${experimentId}`);
    expect(experimentPage).toContain(`href="/_ss/admin/projects/${project.id}/flags/${id}"`);
    expect(experimentPage).not.toContain('data-link="visual-editor"');
    const copy = await postForm(`/experiments/${experimentId}/duplicate`, [
      ["environment", "production"],
    ]);
    expect(copy.headers.get("location")).not.toContain("Not%20duplicated");

    // A second A/B rule is offered a key no experiment has; a taken key typed anyway is the
    // API's 409 beside the rule's key field (not the flag's own Key field).
    page = await getPage(flagPath(id));
    fields = await formFields(page, "form[data-form=ab-rule]");
    expect(fields).toContainEqual(["ab.key", "new_checkout_test2"]);
    const taken = await postForm(
      `${flagPath(id)}/ab-rules`,
      filled(fields, { "ab.key": "new_checkout_test", "ab.eventId": purchase.id }),
    );
    expect(taken.status).toBe(409);
    page = await taken.text();
    expect(fieldError(page, "ab.key")).toBe(
      'the project already has an experiment with key "new_checkout_test"',
    );
    expect(fieldError(page, "key")).toBeNull();
    expect(page).toContain('value="new_checkout_test"');

    await apiJson("POST", `/experiments/${experimentId}/start`, 200, {
      body: { environment: "production" },
    });
    page = await getPage(flagPath(id));
    const row = /<tr data-ab-rule="new_checkout_test">([\s\S]*?)<\/tr>/.exec(page)![1]!;
    expect(row).toContain(`href="/_ss/admin/experiments/${experimentId}"`);
    expect(row).toContain('data-status="Running"');
    expect(row).toContain("off 50 %, on 50 %");

    const archive = await postForm(
      `${flagPath(id)}/archive`,
      await formFields(page, `form[action$="/archive"]`),
    );
    expect(archive.status).toBe(409);
    expect(await archive.text()).toContain(
      "has A/B rules running in new_checkout_test (production)",
    );
    const unticked = await postForm(`${flagPath(id)}/delete`, [["version", "1"]]);
    expect(unticked.status).toBe(400);
    const deleted = await postForm(`${flagPath(id)}/delete`, [
      ["version", "1"],
      ["confirm", "yes"],
    ]);
    expect(deleted.status).toBe(409);
    expect(await deleted.text()).toMatch(/flag new_checkout is in use by experiment/);
    expect((await apiJson("GET", `/flags/${id}`, 200)).archived).toBe(false);
  });

  it("an A/B rule's experiment page offers no preview links, pages or changes; its edit form saves unchanged", async () => {
    const purchase = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "purchase", type: "custom" },
    });
    const id = await createFlagThroughForm("ruled");
    const fields = await formFields(await getPage(flagPath(id)), "form[data-form=ab-rule]");
    const created = await postForm(
      `${flagPath(id)}/ab-rules`,
      withField(fields, "ab.eventId", purchase.id),
    );
    expect(created.status).toBe(303);
    const experimentId = /\/experiments\/([^/?]+)/.exec(created.headers.get("location")!)![1]!;
    const experimentPage = await getPage(`/experiments/${experimentId}`);
    expect(experimentPage).toContain('data-link="flag"');
    expect(experimentPage).toContain('data-link="history"');
    expect(experimentPage).not.toContain('data-link="preview"');
    expect(experimentPage).not.toContain('data-link="visual-editor"');

    const edit = await getPage(`/experiments/${experimentId}/edit`);
    expect(edit).toContain("data-flag-rule");
    expect(edit).not.toContain('name="pageIds"');
    expect(edit).not.toContain("Changes of variation");
    expect(edit).not.toContain("Shared changes");
    expect(edit).not.toMatch(/name="variations\[\d\]\.featureEnabled"/);
    const before = await apiJson("GET", `/experiments/${experimentId}`, 200);
    const saved = await postForm(
      `/experiments/${experimentId}/edit`,
      await formFields(edit, "form[data-form=experiment]"),
    );
    expect(saved.status, saved.status === 303 ? "" : await saved.text()).toBe(303);
    const after = await apiJson("GET", `/experiments/${experimentId}`, 200);
    const strip = ({ version: _v, updatedAt: _u, ...rest }: Json) => rest;
    expect(strip(after)).toEqual(strip(before));

    // An ordinary experiment keeps all of them.
    const home = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const web = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "web",
        pageIds: [home.id],
        metrics: [{ eventId: purchase.id, aggregator: "unique" }],
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    expect(await getPage(`/experiments/${web.id}`)).toContain('data-link="preview"');
    const webEdit = await getPage(`/experiments/${web.id}/edit`);
    expect(webEdit).toContain('name="pageIds"');
    expect(webEdit).toContain("Changes of variation 1");
    expect(webEdit).not.toContain("data-flag-rule");
  });

  it("archives, restores and deletes a flag without A/B rules", async () => {
    const id = await createFlagThroughForm("old");
    const archived = await postForm(`${flagPath(id)}/archive`, [
      ["version", "1"],
      ["archived", "true"],
    ]);
    expect(archived.status).toBe(303);
    expect((await apiJson("GET", `/flags/${id}`, 200)).archived).toBe(true);
    const list = await getPage(flagsPath());
    expect(/<tr data-item="old">[\s\S]*?<\/tr>/.exec(list)![0]).toContain("Archived");
    expect(await getPage(flagPath(id))).toContain('data-action="unarchive"');
    expect(
      (
        await postForm(`${flagPath(id)}/archive`, [
          ["version", "2"],
          ["archived", "false"],
        ])
      ).status,
    ).toBe(303);
    const deleted = await postForm(`${flagPath(id)}/delete`, [
      ["version", "3"],
      ["confirm", "yes"],
    ]);
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toContain("/flags?done=deleted");
    expect((await apiJson("GET", `/projects/${project.id}/flags`, 200)).items).toEqual([]);
  });
});

describe("viewers and other sites", () => {
  it("a viewer sees the flag without forms; a viewer's or another site's POST is 403 and changes nothing", async () => {
    const flag = await apiJson("POST", `/projects/${project.id}/flags`, 201, {
      body: {
        key: "ro",
        variables: [{ key: "n", type: "integer", defaultValue: 1 }],
        environments: {
          production: {
            enabled: true,
            rules: [{ key: "germans", traffic: 2550, audienceConditions: ["or", germany.id] }],
          },
        },
      },
    });
    const viewer = await adminSession((await createToken("viewer")).token);
    const list = await getPage(flagsPath(), viewer);
    expect(list).toContain('data-item="ro"');
    expect(list).not.toContain("/flags/new");
    expect((await adminFetch(`${flagsPath()}/new`, { cookie: viewer })).status).toBe(403);
    const page = await getPage(flagPath(flag.id), viewer);
    expect(page).not.toContain('method="post" action="/_ss/admin/projects');
    expect(page).not.toContain("data-form=");
    expect(page).toContain('data-enabled="true"');
    expect(page).toMatch(/<tr data-rule="germans">[\s\S]*Germany[\s\S]*25\.5 %/);

    const toggle: Fields = [
      ["version", "1"],
      ["enabled", "false"],
    ];
    const asViewer = await postForm(`${flagPath(flag.id)}/environments/production/toggle`, toggle, {
      cookie: viewer,
    });
    expect(asViewer.status).toBe(403);
    expect((await postForm(flagsPath(), [["key", "x"]], { cookie: viewer })).status).toBe(403);
    expect(
      (
        await postForm(`${flagPath(flag.id)}/variables`, [["variables[0].key", "m"]], {
          cookie: viewer,
        })
      ).status,
    ).toBe(403);
    const crossSite = await postForm(
      `${flagPath(flag.id)}/environments/production/toggle`,
      toggle,
      {
        headers: { "sec-fetch-site": "cross-site" },
      },
    );
    expect(crossSite.status).toBe(403);
    const fromScript = await postForm(
      `${flagPath(flag.id)}/environments/production/toggle`,
      toggle,
      {
        headers: { "sec-fetch-mode": "cors", "sec-fetch-dest": "empty" },
      },
    );
    expect(fromScript.status).toBe(403);
    const stored = await apiJson("GET", `/flags/${flag.id}`, 200);
    expect(stored).toMatchObject({ version: 1, environments: { production: { enabled: true } } });
    expect((await apiJson("GET", `/projects/${project.id}/flags`, 200)).items).toHaveLength(1);
  });
});
