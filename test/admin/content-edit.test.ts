/**
 * The project's building blocks in the admin (src/admin/content-pages.ts; docs/admin.md "Project
 * content"): pages (URL condition rows, the URL tester and the warning for hosts the Worker never
 * sees), the audience builder, events, lists (CSV upload), attributes and groups — created and
 * edited through their forms, with the API's problems beside the fields, read-only for viewers,
 * and refused cross-site. Records are checked through the management API.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { adminFetch, adminPost, SAME_SITE } from "../helpers/admin";
import {
  adminSession,
  apiJson,
  createProject,
  createToken,
  type ProjectWithEnvironments,
} from "../helpers/api";

let project: ProjectWithEnvironments;
let editor: string;

/** POSTs a form (pairs, so a name may repeat) as a same-origin browser would. */
function postForm(
  path: string,
  fields: Array<[string, string]> | Record<string, string>,
  options: { cookie?: string; headers?: Record<string, string> } = {},
) {
  return adminPost(path, options.cookie ?? editor, fields, { ...SAME_SITE, ...options.headers });
}

const base = () => `/projects/${project.id}`;
const idFrom = (location: string | null) => /\/([^/?]+)\?done=/.exec(location ?? "")![1]!;

function unescapeHtml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}

/** The problem shown beside field `name` (src/admin/forms.ts ids: `f-<name with - for others>`). */
function fieldError(page: string, name: string): string | null {
  const id = `f-${name.replace(/[^A-Za-z0-9_-]/g, "-")}-error`;
  const match = new RegExp(`id="${id}">([^<]*)<`).exec(page);
  return match ? unescapeHtml(match[1]!) : null;
}

beforeEach(async () => {
  project = await createProject();
  editor = await adminSession();
});

describe("navigation", () => {
  it("the project page links every building block; each list links back", async () => {
    const response = await adminFetch(base(), { cookie: editor });
    const text = await response.text();
    expect(text).toContain('data-nav="content"');
    for (const plural of ["pages", "audiences", "events", "lists", "attributes", "groups"]) {
      expect(text).toContain(`href="/_ss/admin/projects/${project.id}/${plural}"`);
      const list = await adminFetch(`${base()}/${plural}`, { cookie: editor });
      expect(list.status).toBe(200);
      const listText = await list.text();
      expect(listText).toContain(`href="/_ss/admin/projects/${project.id}/${plural}/new"`);
      expect(list.headers.get("content-security-policy")).toContain("form-action 'self'");
    }
    expect((await adminFetch(`/projects/123404040404/pages`, { cookie: editor })).status).toBe(404);
  });
});

describe("pages", () => {
  const rows = (extra: Array<[string, string]> = []): Array<[string, string]> => [
    ["key", "checkout"],
    ["name", "Checkout"],
    ["activation", "immediate"],
    ["selector", ""],
    ["_mode", "rows"],
    ["conditions", "or"],
    ["conditions[0].match", "simple"],
    ["conditions[0].value", "localhost/checkout"],
    ["conditions[1].match", "substring"],
    ["conditions[1].value", ""],
    ["conditions[2].match", "substring"],
    ["conditions[2].value", "/cart"],
    ["conditions[2].not", "on"],
    ...extra,
  ];

  it("creates a page from condition rows: blank rows left out, negated rows wrapped in not", async () => {
    const response = await postForm(`${base()}/pages`, rows());
    expect(response.status).toBe(303);
    const id = idFrom(response.headers.get("location"));
    const stored = await apiJson("GET", `/pages/${id}`, 200);
    expect(stored).toMatchObject({ key: "checkout", name: "Checkout", activation: "immediate" });
    expect(stored.conditions).toEqual([
      "or",
      { match: "simple", value: "localhost/checkout" },
      ["not", { match: "substring", value: "/cart" }],
    ]);
    const view = await (
      await adminFetch(`${base()}/pages/${id}?done=created`, { cookie: editor })
    ).text();
    expect(view).toContain('data-done="created"');
    expect(view).toMatch(/name="conditions\[1\]\.not"\s+value="on"\s+checked/);
  });

  it("an invalid row is shown beside its own fields (422) and nothing is created", async () => {
    const response = await postForm(`${base()}/pages`, [
      ...rows().filter(([name]) => !name.startsWith("conditions[2]")),
      ["conditions[2].match", "regex"],
      ["conditions[2].value", "(unclosed"],
      ["conditions[2].not", "on"],
    ]);
    expect(response.status).toBe(422);
    const text = await response.text();
    // The API's path is $.body.conditions[2][1].value (the blank row 1 is left out, row 2 is
    // negated); the form's field is conditions[2].value.
    expect(text).toContain("$.body.conditions[2][1].value");
    expect(fieldError(text, "conditions[2].value")).toContain("invalid regular expression");
    expect(text).toContain('value="(unclosed"');
    const list = await apiJson("GET", `/projects/${project.id}/pages`, 200);
    expect(list.items).toEqual([]);
  });

  it("Add condition re-renders with one more row and saves nothing; Edit as JSON keeps the tree", async () => {
    const added = await postForm(`${base()}/pages`, [...rows(), ["_refresh", "add"]]);
    expect(added.status).toBe(200);
    const text = await added.text();
    expect(text).toContain('name="conditions[3].value"');
    const json = await postForm(`${base()}/pages`, [...rows(), ["_refresh", "json"]]);
    const jsonText = await json.text();
    expect(jsonText).toContain('data-conditions="json"');
    expect(jsonText).toContain("&quot;not&quot;");
    expect((await apiJson("GET", `/projects/${project.id}/pages`, 200)).items).toEqual([]);
  });

  it("a nested tree is edited as JSON and saved as it is", async () => {
    const tree = [
      "and",
      ["or", { match: "substring", value: "/a" }, { match: "substring", value: "/b" }],
      ["not", { match: "substring", value: "/a/x" }],
    ];
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "nested", conditions: tree },
    });
    const view = await (await adminFetch(`${base()}/pages/${page.id}`, { cookie: editor })).text();
    expect(view).toContain('data-conditions="json"');
    const saved = await postForm(`${base()}/pages/${page.id}`, {
      version: "1",
      key: "nested",
      name: "Renamed",
      activation: "immediate",
      selector: "",
      _mode: "json",
      conditions: JSON.stringify(tree),
    });
    expect(saved.status).toBe(303);
    const stored = await apiJson("GET", `/pages/${page.id}`, 200);
    expect(stored).toMatchObject({ name: "Renamed", version: 2, conditions: tree });
  });

  it("edits with the version it was rendered from; a stale version is 409 and changes nothing", async () => {
    const created = await postForm(`${base()}/pages`, rows());
    const id = idFrom(created.headers.get("location"));
    const edit = await postForm(`${base()}/pages/${id}`, [
      ["version", "1"],
      ...rows().map(([n, v]): [string, string] => (n === "name" ? [n, "Checkout 2"] : [n, v])),
    ]);
    expect(edit.status).toBe(303);
    expect(edit.headers.get("location")).toContain("?done=saved");
    expect(await apiJson("GET", `/pages/${id}`, 200)).toMatchObject({
      name: "Checkout 2",
      version: 2,
    });
    const stale = await postForm(`${base()}/pages/${id}`, [["version", "1"], ...rows()]);
    expect(stale.status).toBe(409);
    expect(await stale.text()).toContain("changed by someone else");
    expect(await apiJson("GET", `/pages/${id}`, 200)).toMatchObject({
      name: "Checkout 2",
      version: 2,
    });
  });

  it("the URL tester: a match, a non-match, and the warning for a host the Worker never sees", async () => {
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: {
        key: "checkout",
        conditions: [
          "or",
          { match: "simple", value: "localhost/checkout" },
          { match: "exact", value: "http://localhost:8787/checkout" },
          { match: "simple", value: "shop.example.com/checkout" },
        ],
      },
    });
    const at = (test: string) =>
      adminFetch(`${base()}/pages/${page.id}?test=${encodeURIComponent(test)}`, { cookie: editor });

    const match = await (await at("http://localhost/checkout/?utm_source=x")).text();
    expect(match).toContain('data-test-result="match"');
    expect(match).toContain('data-leaf="conditions[1]" data-counts="yes"');
    expect(match).toContain('data-leaf="conditions[2]" data-counts="no"');

    const miss = await (await at("http://localhost/cart")).text();
    expect(miss).toContain('data-test-result="no-match"');

    // The stored conditions naming localhost:8787 (the browser's port under wrangler dev) and a
    // host no route covers are flagged; the tests' requests reach the Worker as http://localhost.
    expect(match).toContain('data-warning="stored"');
    expect(match).toContain("2 of these URL conditions never match");
    expect(match).toContain("the Worker sees localhost as localhost, not localhost:8787");
    expect(match).toContain("no route covers the host shop.example.com");

    // Testing the browser's address: it matches condition 2 as text, but the edge never sees it.
    const browser = await (await at("http://localhost:8787/checkout")).text();
    expect(browser).toContain('data-test-result="match"');
    expect(browser).toContain("The edge never sees this URL as typed");

    const invalid = await at("not a url");
    expect(fieldError(await invalid.text(), "test")).toContain("absolute URL");
  });

  it("the form warns beside a row naming an unseen host, before it is saved", async () => {
    const response = await postForm(`${base()}/pages`, [
      ...rows().map(([n, v]): [string, string] =>
        n === "conditions[0].value" ? [n, "localhost:8787/checkout"] : [n, v],
      ),
      ["_refresh", "add"],
    ]);
    const text = await response.text();
    expect(text).toContain('data-warning="host"');
    expect(text).toContain("not localhost:8787");
  });

  it("archive and unarchive; a page in use cannot be deleted (409 with the API's message)", async () => {
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const archived = await postForm(`${base()}/pages/${page.id}/archive`, {
      version: "1",
      archived: "true",
    });
    expect(archived.status).toBe(303);
    expect(await apiJson("GET", `/pages/${page.id}`, 200)).toMatchObject({ archived: true });
    await postForm(`${base()}/pages/${page.id}/archive`, { version: "2", archived: "false" });
    expect(await apiJson("GET", `/pages/${page.id}`, 200)).toMatchObject({ archived: false });

    await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "home_view", type: "pageview", pageId: page.id },
    });
    const refused = await postForm(`${base()}/pages/${page.id}/delete`, {
      version: "3",
      confirm: "yes",
    });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("page home is in use by event home_view");
    await apiJson("GET", `/pages/${page.id}`, 200);

    const unused = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "unused", conditions: ["or", { match: "substring", value: "/x" }] },
    });
    const unconfirmed = await postForm(`${base()}/pages/${unused.id}/delete`, { version: "1" });
    expect(unconfirmed.status).toBe(400);
    const deleted = await postForm(`${base()}/pages/${unused.id}/delete`, {
      version: "1",
      confirm: "yes",
    });
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toBe(
      `/_ss/admin/projects/${project.id}/pages?done=deleted`,
    );
    await apiJson("GET", `/pages/${unused.id}`, 404);
  });

  it("a page of another project is 404 under this one", async () => {
    const other = await createProject();
    const page = await apiJson("POST", `/projects/${other.id}/pages`, 201, {
      body: { key: "elsewhere", conditions: ["or", { match: "substring", value: "/" }] },
    });
    expect((await adminFetch(`${base()}/pages/${page.id}`, { cookie: editor })).status).toBe(404);
    const post = await postForm(`${base()}/pages/${page.id}/delete`, { confirm: "yes" });
    expect(post.status).toBe(404);
    await apiJson("GET", `/pages/${page.id}`, 200);
  });
});

describe("audiences", () => {
  /** A builder row: [name, param, match, value, valueType, not?]. */
  function row(i: number, values: string[], not = false): Array<[string, string]> {
    const [name, param, match, value, valueType] = values;
    return [
      [`conditions[${i}].name`, name!],
      [`conditions[${i}].param`, param!],
      [`conditions[${i}].match`, match!],
      [`conditions[${i}].value`, value!],
      [`conditions[${i}].valueType`, valueType!],
      ...(not ? ([[`conditions[${i}].not`, "on"]] as Array<[string, string]>) : []),
    ];
  }

  beforeEach(async () => {
    await apiJson("POST", `/projects/${project.id}/attributes`, 201, {
      body: { key: "plan", name: "Plan" },
    });
    await apiJson("POST", `/projects/${project.id}/lists`, 201, {
      body: { key: "vip", name: "VIP", values: ["c-1"] },
    });
  });

  it("the builder offers the project's attributes, request attributes and lists", async () => {
    const text = await (await adminFetch(`${base()}/audiences/new`, { cookie: editor })).text();
    expect(text).toContain('<option value="plan"');
    expect(text).toContain('<option value="geo.country"');
    expect(text).toContain('<option value="query."');
    expect(text).toContain('<option value="in_list:vip"');
  });

  it("produces the tree the API stores", async () => {
    const response = await postForm(`${base()}/audiences`, [
      ["name", "German pros"],
      ["description", "from the builder"],
      ["_mode", "rows"],
      ["conditions", "and"],
      ...row(0, ["geo.country", "", "exact", "DE", "text"]),
      ...row(1, ["", "", "exact", "", "text"]),
      ...row(2, ["query.", "utm_campaign", "substring", "spring", "text"], true),
      ...row(3, ["plan", "", "in_list:vip", "", "text"]),
      ...row(4, ["plan", "", "gt", "3", "text"]),
      ...row(5, ["plan", "", "exact", "true", "boolean"]),
      ...row(6, ["header.", "x-beta", "exists", "", "text"]),
    ]);
    expect(response.status).toBe(303);
    const id = idFrom(response.headers.get("location"));
    const type = "custom_attribute";
    const stored = await apiJson("GET", `/audiences/${id}`, 200);
    expect(stored).toMatchObject({ name: "German pros", description: "from the builder" });
    expect(stored.conditions).toEqual([
      "and",
      { type, name: "geo.country", match: "exact", value: "DE" },
      ["not", { type, name: "query.utm_campaign", match: "substring", value: "spring" }],
      { type, name: "plan", match: "in_list", value: "vip" },
      { type, name: "plan", match: "gt", value: 3 },
      { type, name: "plan", match: "exact", value: true },
      { type, name: "header.x-beta", match: "exists" },
    ]);
    // Shown again as the same rows: saving it unchanged stores the same tree.
    const again = await postForm(`${base()}/audiences/${id}`, [
      ["version", "1"],
      ["name", "German pros"],
      ["description", "from the builder"],
      ["_mode", "rows"],
      ["conditions", "and"],
      ...row(0, ["geo.country", "", "exact", "DE", "text"]),
      ...row(1, ["query.", "utm_campaign", "substring", "spring", "text"], true),
      ...row(2, ["plan", "", "in_list:vip", "", "text"]),
      ...row(3, ["plan", "", "gt", "3", "number"]),
      ...row(4, ["plan", "", "exact", "true", "boolean"]),
      ...row(5, ["header.", "x-beta", "exists", "", "text"]),
    ]);
    expect(again.status).toBe(303);
    expect((await apiJson("GET", `/audiences/${id}`, 200)).conditions).toEqual(stored.conditions);
    const view = await (await adminFetch(`${base()}/audiences/${id}`, { cookie: editor })).text();
    expect(view).toMatch(/name="conditions\[1\]\.param"\s+type="text"\s+value="utm_campaign"/);
  });

  it("maps the API's tree paths back to rows (422) and creates nothing", async () => {
    const response = await postForm(`${base()}/audiences`, [
      ["name", "Bad"],
      ["_mode", "rows"],
      ["conditions", "or"],
      ...row(0, ["", "", "exact", "", "text"]),
      ...row(1, ["", "", "exact", "", "text"]),
      ...row(2, ["nosuch", "", "exact", "x", "text"], true),
      ...row(3, ["plan", "", "gt", "many", "text"]),
    ]);
    expect(response.status).toBe(422);
    const text = await response.text();
    // Rows 0 and 1 are blank: the API sees ["or", ["not", {nosuch}], {plan gt}] and names the
    // value of its second operand; the form shows it beside row 3.
    expect(text).toContain("$.body.conditions[2].value");
    expect(fieldError(text, "conditions[3].value")).toContain("finite number");
    expect((await apiJson("GET", `/projects/${project.id}/audiences`, 200)).items).toEqual([]);

    const unknown = await postForm(`${base()}/audiences`, [
      ["name", "Bad"],
      ["_mode", "rows"],
      ["conditions", "or"],
      ...row(0, ["", "", "exact", "", "text"]),
      ...row(1, ["nosuch", "", "exact", "x", "text"], true),
    ]);
    expect(unknown.status).toBe(422);
    expect(fieldError(await unknown.text(), "conditions[1].name")).toContain(
      'unknown attribute "nosuch"',
    );

    const typed = await postForm(`${base()}/audiences`, [
      ["name", "Bad"],
      ["_mode", "rows"],
      ["conditions", "or"],
      ...row(0, ["plan", "", "exact", "lots", "number"]),
    ]);
    expect(typed.status).toBe(422);
    expect(fieldError(await typed.text(), "conditions[0].value")).toContain("is not a number");
    expect((await apiJson("GET", `/projects/${project.id}/audiences`, 200)).items).toEqual([]);
  });
});

describe("events", () => {
  it("creates a click event on a page; a click without selector is 422 beside the selector", async () => {
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "product", conditions: ["or", { match: "substring", value: "/p" }] },
    });
    const fields = {
      key: "buy_click",
      name: "Buy",
      type: "click",
      pageId: page.id,
      selector: "#buy",
      maxPerVisitorPerDay: "5",
    };
    const form = await (await adminFetch(`${base()}/events/new`, { cookie: editor })).text();
    expect(form).toContain(`<option value="${page.id}"`);
    const invalid = await postForm(`${base()}/events`, { ...fields, selector: "" });
    expect(invalid.status).toBe(422);
    expect(fieldError(await invalid.text(), "selector")).toContain("required for click events");
    const capped = await postForm(`${base()}/events`, { ...fields, maxPerVisitorPerDay: "0" });
    expect(capped.status).toBe(422);
    expect(fieldError(await capped.text(), "maxPerVisitorPerDay")).not.toBeNull();
    expect((await apiJson("GET", `/projects/${project.id}/events`, 200)).items).toEqual([]);

    const created = await postForm(`${base()}/events`, fields);
    expect(created.status).toBe(303);
    const id = idFrom(created.headers.get("location"));
    expect(await apiJson("GET", `/events/${id}`, 200)).toMatchObject({
      key: "buy_click",
      type: "click",
      pageId: page.id,
      selector: "#buy",
      maxPerVisitorPerDay: 5,
    });
    // Back to custom: the update sends null for the page and selector (the API drops them).
    const edited = await postForm(`${base()}/events/${id}`, {
      ...fields,
      version: "1",
      type: "custom",
      pageId: "",
      selector: "",
      maxPerVisitorPerDay: "",
    });
    expect(edited.status).toBe(303);
    expect(await apiJson("GET", `/events/${id}`, 200)).toMatchObject({
      type: "custom",
      pageId: null,
      selector: null,
      maxPerVisitorPerDay: null,
    });
  });
});

describe("lists", () => {
  function upload(path: string, fields: Record<string, string>, file: string | null) {
    const body = new FormData();
    for (const [name, value] of Object.entries(fields)) body.append(name, value);
    body.append(
      "file",
      new File(file === null ? [] : [file], file === null ? "" : "members.csv", {
        type: "text/csv",
      }),
    );
    return adminFetch(path, { method: "POST", cookie: editor, headers: SAME_SITE, body });
  }

  it("a CSV upload stores the first column; the page shows the count, never the members", async () => {
    const csv = 'id,name\r\nc-1001,Ann\r\n"c-1002","Bo, B"\r\nc-1001,again\r\n\r\n';
    const created = await upload(
      `${base()}/lists`,
      { key: "vip", name: "VIP", header: "on", values: "" },
      csv,
    );
    expect(created.status).toBe(303);
    const id = idFrom(created.headers.get("location"));
    expect(await apiJson("GET", `/lists/${id}`, 200)).toMatchObject({
      key: "vip",
      values: ["c-1001", "c-1002"],
    });
    const view = await (await adminFetch(`${base()}/lists/${id}`, { cookie: editor })).text();
    expect(view).toContain("Now 2 members");
    expect(view).not.toContain("c-1001");
    const list = await (await adminFetch(`${base()}/lists`, { cookie: editor })).text();
    expect(list).toMatch(/data-item="vip"[\s\S]*?2\s*<\/td>/);

    // Pasted members added to the current ones; an update without members keeps them.
    const added = await upload(
      `${base()}/lists/${id}`,
      { version: "1", key: "vip", name: "VIP", values: "c-1003\nc-1002\n", mode: "add" },
      null,
    );
    expect(added.status).toBe(303);
    expect((await apiJson("GET", `/lists/${id}`, 200)).values).toEqual([
      "c-1001",
      "c-1002",
      "c-1003",
    ]);
    await upload(
      `${base()}/lists/${id}`,
      { version: "2", key: "vip", name: "VIPs", values: "" },
      null,
    );
    expect(await apiJson("GET", `/lists/${id}`, 200)).toMatchObject({
      name: "VIPs",
      valueCount: 3,
    });
  });

  it("an invalid key or member is 422 beside its field; nothing is created", async () => {
    const badKey = await upload(`${base()}/lists`, { key: "bad key", values: "a" }, null);
    expect(badKey.status).toBe(422);
    expect(fieldError(await badKey.text(), "key")).toContain("1–64 characters");
    const long = await upload(
      `${base()}/lists`,
      { key: "long", values: "" },
      `ok\n${"x".repeat(300)}\n`,
    );
    expect(long.status).toBe(422);
    const text = await long.text();
    expect(text).toContain("member 2 (");
    expect((await apiJson("GET", `/projects/${project.id}/lists`, 200)).items).toEqual([]);
  });
});

describe("attributes", () => {
  it("creates and edits; a reserved key is 422; deleting one an audience names is 409", async () => {
    const reserved = await postForm(`${base()}/attributes`, {
      key: "geo.country",
      name: "",
      description: "",
    });
    expect(reserved.status).toBe(422);
    expect(fieldError(await reserved.text(), "key")).toContain("reserved");
    const created = await postForm(`${base()}/attributes`, {
      key: "plan",
      name: "Plan",
      description: "Billing plan",
    });
    expect(created.status).toBe(303);
    const id = idFrom(created.headers.get("location"));
    expect(await apiJson("GET", `/attributes/${id}`, 200)).toMatchObject({
      key: "plan",
      description: "Billing plan",
    });
    await apiJson("POST", `/projects/${project.id}/audiences`, 201, {
      body: {
        name: "Pros",
        conditions: [
          "or",
          { type: "custom_attribute", name: "plan", match: "exact", value: "pro" },
        ],
      },
    });
    const refused = await postForm(`${base()}/attributes/${id}/delete`, {
      version: "1",
      confirm: "yes",
    });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("attribute plan is in use by audience Pros");
  });
});

describe("groups", () => {
  it("creates a group, then allocates its members through rows (blank rows left out)", async () => {
    const created = await postForm(`${base()}/groups`, { name: "Checkout", policy: "random" });
    expect(created.status).toBe(303);
    const id = idFrom(created.headers.get("location"));
    const page = await apiJson("POST", `/projects/${project.id}/pages`, 201, {
      body: { key: "home", conditions: ["or", { match: "substring", value: "/" }] },
    });
    const event = await apiJson("POST", `/projects/${project.id}/events`, 201, {
      body: { key: "e", type: "custom" },
    });
    const experiment = await apiJson("POST", `/projects/${project.id}/experiments`, 201, {
      body: {
        key: "member",
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        groupId: id,
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
    const form = await (await adminFetch(`${base()}/groups/${id}`, { cookie: editor })).text();
    expect(form).toContain('value="add-allocation"');

    const tooMuch = await postForm(`${base()}/groups/${id}`, [
      ["version", "1"],
      ["name", "Checkout"],
      ["policy", "random"],
      ["allocation[0].experimentId", ""],
      ["allocation[0].weight", ""],
      ["allocation[1].experimentId", experiment.id],
      ["allocation[1].weight", "20000"],
    ]);
    expect(tooMuch.status).toBe(422);
    expect(fieldError(await tooMuch.text(), "allocation[1].weight")).not.toBeNull();

    const outsider = await postForm(`${base()}/groups/${id}`, [
      ["version", "1"],
      ["name", "Checkout"],
      ["policy", "random"],
      ["allocation[0].experimentId", ""],
      ["allocation[0].weight", ""],
      ["allocation[1].experimentId", "123456789012"],
      ["allocation[1].weight", "100"],
    ]);
    expect(outsider.status).toBe(422);
    expect(fieldError(await outsider.text(), "allocation[1].experimentId")).toContain(
      "is not in this group",
    );

    const saved = await postForm(`${base()}/groups/${id}`, [
      ["version", "1"],
      ["name", "Checkout"],
      ["policy", "random"],
      ["allocation[0].experimentId", experiment.id],
      ["allocation[0].weight", "5000"],
    ]);
    expect(saved.status).toBe(303);
    expect(await apiJson("GET", `/groups/${id}`, 200)).toMatchObject({
      allocation: [{ experimentId: experiment.id, weight: 5000 }],
      experimentIds: [experiment.id],
    });
    const refused = await postForm(`${base()}/groups/${id}/delete`, {
      version: "2",
      confirm: "yes",
    });
    expect(refused.status).toBe(409);
    expect(await refused.text()).toContain("is in use by experiment member");
  });

  it("an empty name is 422 beside it", async () => {
    const response = await postForm(`${base()}/groups`, { name: " ", policy: "random" });
    expect(response.status).toBe(422);
    expect(fieldError(await response.text(), "name")).not.toBeNull();
    expect((await apiJson("GET", `/projects/${project.id}/groups`, 200)).items).toEqual([]);
  });
});

describe("viewers and other sites", () => {
  const creates: Record<string, Record<string, string>> = {
    pages: {
      key: "p",
      _mode: "rows",
      conditions: "or",
      "conditions[0].match": "substring",
      "conditions[0].value": "/",
    },
    audiences: {
      name: "a",
      _mode: "rows",
      conditions: "and",
      "conditions[0].name": "geo.country",
      "conditions[0].match": "exact",
      "conditions[0].value": "DE",
      "conditions[0].valueType": "text",
    },
    events: { key: "e", type: "custom" },
    lists: { key: "l", values: "a" },
    attributes: { key: "plan" },
    groups: { name: "g", policy: "random" },
  };

  it.each(Object.keys(creates))(
    "%s: a viewer sees no form, and a viewer's or another site's POST is 403 and changes nothing",
    async (plural) => {
      const viewer = await adminSession((await createToken("viewer")).token);
      const list = await (await adminFetch(`${base()}/${plural}`, { cookie: viewer })).text();
      expect(list).not.toContain(`/${plural}/new"`);
      const form = await adminFetch(`${base()}/${plural}/new`, { cookie: viewer });
      expect(form.status).toBe(403);

      const asViewer = await postForm(`${base()}/${plural}`, creates[plural]!, { cookie: viewer });
      expect(asViewer.status).toBe(403);
      expect(await asViewer.text()).toContain("this needs role editor");
      const crossSite = await postForm(`${base()}/${plural}`, creates[plural]!, {
        headers: { "sec-fetch-site": "cross-site" },
      });
      expect(crossSite.status).toBe(403);
      expect((await apiJson("GET", `/projects/${project.id}/${plural}`, 200)).items).toEqual([]);

      // The same form from the editor works: the refusals were about who and where.
      const created = await postForm(`${base()}/${plural}`, creates[plural]!);
      expect(created.status).toBe(303);
      const id = idFrom(created.headers.get("location"));
      const view = await (await adminFetch(`${base()}/${plural}/${id}`, { cookie: viewer })).text();
      expect(view).not.toContain('data-form="');
      expect(view).not.toContain(`/${id}/delete"`);
      const deleted = await postForm(
        `${base()}/${plural}/${id}/delete`,
        { version: "1", confirm: "yes" },
        { cookie: viewer },
      );
      expect(deleted.status).toBe(403);
      expect((await apiJson("GET", `/projects/${project.id}/${plural}`, 200)).items).toHaveLength(
        1,
      );
    },
  );
});
