/**
 * Project resources of the management API (docs/api.md "Resources"): attributes, audiences,
 * events, pages, groups and lists — CRUD, validation with JSON paths, keys, If-Match, roles,
 * audit entries and publishing in the same request.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { MAX_LIST_MEMBERS, MAX_LIST_MEMBERS_BYTES } from "../../src/edge/list-members";
import {
  api,
  apiJson,
  createProject,
  createToken,
  type ApiErrorBody,
  type ProjectWithEnvironments,
} from "../helpers/api";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

let project: ProjectWithEnvironments;

beforeEach(async () => {
  project = await createProject();
});

const collection = (plural: string) => `/projects/${project.id}/${plural}`;

/** Expects a 422 validation_failed whose details include every path (and returns the details). */
async function expect422(
  response: Response,
  paths: string[],
): Promise<Array<{ path: string; message: string }>> {
  const text = await response.text();
  expect(response.status, text).toBe(422);
  const body = JSON.parse(text) as ApiErrorBody;
  expect(body.error.code).toBe("validation_failed");
  const details = body.error.details as Array<{ path: string; message: string }>;
  expect(details.map((d) => d.path)).toEqual(expect.arrayContaining(paths));
  return details;
}

async function expectError(
  response: Response,
  status: number,
  code: string,
): Promise<ApiErrorBody> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  const body = JSON.parse(text) as ApiErrorBody;
  expect(body.error.code).toBe(code);
  return body;
}

async function currentDatafile(environmentKey = "production"): Promise<Record<string, Json>> {
  const sdkKey = project.environments.find((e) => e.key === environmentKey)!.sdkKey;
  const text = await env.DATAFILES.get(`datafiles/${sdkKey}`);
  expect(text).not.toBeNull();
  return JSON.parse(text!) as Record<string, Json>;
}

async function auditActions(resourceId: string): Promise<string[]> {
  const { results } = await env.DB.prepare(
    "SELECT action FROM audit_log WHERE resource_id = ? ORDER BY id",
  )
    .bind(resourceId)
    .all<{ action: string }>();
  return results.map((r) => r.action);
}

const leaf = (name: string, match: string | undefined, value?: unknown) => ({
  type: "custom_attribute",
  name,
  ...(match === undefined ? {} : { match }),
  ...(value === undefined ? {} : { value }),
});

async function createPage(key = "home", extra: Record<string, unknown> = {}) {
  return apiJson("POST", collection("pages"), 201, {
    body: {
      key,
      conditions: ["or", { match: "simple", value: "https://shop.example.com/" }],
      ...extra,
    },
  });
}

describe("attributes", () => {
  it("create, list, get, patch (If-Match), delete — each write audited and published", async () => {
    const created = await api("POST", collection("attributes"), {
      body: { key: "plan", name: "Plan", description: "subscription tier" },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("etag")).toBe('W/"v1"');
    const attribute = (await created.json()) as Json;
    expect(created.headers.get("location")).toBe(`/_ss/api/v1/attributes/${attribute.id}`);
    expect(attribute).toMatchObject({
      projectId: project.id,
      key: "plan",
      name: "Plan",
      description: "subscription tier",
      version: 1,
    });
    expect(attribute.id).toMatch(/^\d{12}$/);
    expect(attribute.createdAt).toBe(attribute.updatedAt);
    // Published in the same request: both environments, revision 1, the attribute inside.
    expect(attribute.published.map((p: Json) => p.environmentKey).sort()).toEqual([
      "development",
      "production",
    ]);
    expect(attribute.published.every((p: Json) => p.changed && p.revision === 1)).toBe(true);
    expect((await currentDatafile()).attributes).toEqual([{ id: attribute.id, key: "plan" }]);

    const { published: _published, ...plain } = attribute;
    expect(await apiJson("GET", collection("attributes"), 200)).toEqual({
      items: [plain],
      nextCursor: null,
    });

    const got = await api("GET", `/attributes/${attribute.id}`);
    expect(got.status).toBe(200);
    expect(got.headers.get("etag")).toBe('W/"v1"');

    const patched = await api("PATCH", `/attributes/${attribute.id}`, {
      body: { key: "tier", name: "Tier" },
      headers: { "if-match": 'W/"v1"' },
    });
    expect(patched.status).toBe(200);
    expect(patched.headers.get("etag")).toBe('W/"v2"');
    const changed = (await patched.json()) as Json;
    expect(changed).toMatchObject({
      key: "tier",
      name: "Tier",
      description: "subscription tier",
      version: 2,
    });
    expect(changed.updatedAt >= attribute.updatedAt).toBe(true);
    expect((await currentDatafile()).attributes).toEqual([{ id: attribute.id, key: "tier" }]);

    const deleted = await apiJson("DELETE", `/attributes/${attribute.id}`, 200);
    expect(deleted).toMatchObject({ id: attribute.id, deleted: true });
    expect(deleted.published[0].changed).toBe(true);
    await expectError(await api("GET", `/attributes/${attribute.id}`), 404, "not_found");
    expect((await currentDatafile()).attributes).toEqual([]);
    expect(await auditActions(attribute.id)).toEqual(["create", "update", "delete"]);
  });

  it("409 on a duplicate key, on a stale If-Match, and for an attribute an audience names", async () => {
    const attribute = await apiJson("POST", collection("attributes"), 201, {
      body: { key: "plan" },
    });
    const duplicate = await expectError(
      await api("POST", collection("attributes"), { body: { key: "plan" } }),
      409,
      "conflict",
    );
    expect(duplicate.error.details).toMatchObject({ path: "$.body.key", existingId: attribute.id });
    // A second one may not take the key by renaming either.
    const other = await apiJson("POST", collection("attributes"), 201, { body: { key: "other" } });
    await expectError(
      await api("PATCH", `/attributes/${other.id}`, { body: { key: "plan" } }),
      409,
      "conflict",
    );

    await apiJson("PATCH", `/attributes/${attribute.id}`, 200, { body: { name: "v2" } });
    const stale = await expectError(
      await api("PATCH", `/attributes/${attribute.id}`, {
        body: { name: "v3" },
        headers: { "if-match": 'W/"v1"' },
      }),
      409,
      "version_conflict",
    );
    expect(stale.error.details).toEqual({ current: 2 });
    await expectError(
      await api("DELETE", `/attributes/${attribute.id}`, { headers: { "if-match": 'W/"v1"' } }),
      409,
      "version_conflict",
    );

    await apiJson("POST", collection("audiences"), 201, {
      body: { name: "Pro", conditions: ["and", leaf("plan", "exact", "pro")] },
    });
    const renaming = await expectError(
      await api("PATCH", `/attributes/${attribute.id}`, { body: { key: "tier" } }),
      409,
      "conflict",
    );
    expect(renaming.error.message).toContain("audience Pro");
    await expectError(await api("DELETE", `/attributes/${attribute.id}`), 409, "conflict");
  });

  it("422 for request-attribute names, bad keys and unknown fields", async () => {
    await expect422(await api("POST", collection("attributes"), { body: { key: "geo.country" } }), [
      "$.body.key",
    ]);
    await expect422(await api("POST", collection("attributes"), { body: { key: "url" } }), [
      "$.body.key",
    ]);
    await expect422(await api("POST", collection("attributes"), { body: { key: "$opt_x" } }), [
      "$.body.key",
    ]);
    await expect422(await api("POST", collection("attributes"), { body: { key: "has space" } }), [
      "$.body.key",
    ]);
    await expect422(
      await api("POST", collection("attributes"), { body: { name: "no key", colour: 1 } }),
      ["$.body.key", "$.body.colour"],
    );
  });

  it("404 for an unknown project or attribute", async () => {
    await expectError(await api("GET", "/projects/999999999999/attributes"), 404, "not_found");
    await expectError(
      await api("POST", "/projects/999999999999/attributes", { body: { key: "a" } }),
      404,
      "not_found",
    );
    await expectError(
      await api("PATCH", "/attributes/999999999999", { body: { name: "x" } }),
      404,
      "not_found",
    );
  });

  it("paginates by id", async () => {
    for (const key of ["a", "b", "c"])
      await apiJson("POST", collection("attributes"), 201, { body: { key } });
    const first = await apiJson("GET", `${collection("attributes")}?limit=2`, 200);
    expect(first.items).toHaveLength(2);
    expect(first.nextCursor).toEqual(expect.any(String));
    const second = await apiJson(
      "GET",
      `${collection("attributes")}?limit=2&cursor=${first.nextCursor}`,
      200,
    );
    expect(second.items).toHaveLength(1);
    expect(second.nextCursor).toBeNull();
    const keys = [...first.items, ...second.items].map((a: Json) => a.key).sort();
    expect(keys).toEqual(["a", "b", "c"]);
  });
});

describe("roles", () => {
  it("viewers read, editors write, viewers writing get 403", async () => {
    const viewer = await createToken("viewer");
    const editor = await createToken("editor");
    const attribute = await apiJson("POST", collection("attributes"), 201, {
      token: editor.token,
      body: { key: "plan" },
    });
    await apiJson("GET", collection("attributes"), 200, { token: viewer.token });
    await apiJson("GET", `/attributes/${attribute.id}`, 200, { token: viewer.token });
    for (const [method, path, body] of [
      ["POST", collection("attributes"), { key: "x" }],
      ["PATCH", `/attributes/${attribute.id}`, { name: "x" }],
      ["DELETE", `/attributes/${attribute.id}`, undefined],
      [
        "POST",
        collection("pages"),
        { key: "p", conditions: ["or", { match: "exact", value: "https://a/" }] },
      ],
      ["POST", collection("lists"), { key: "l", values: [] }],
    ] as const)
      await expectError(await api(method, path, { token: viewer.token, body }), 403, "forbidden");
    await expectError(
      await api("GET", collection("attributes"), { token: null }),
      401,
      "unauthorized",
    );
    const audit = await env.DB.prepare("SELECT actor FROM audit_log WHERE resource_id = ?")
      .bind(attribute.id)
      .first<{ actor: string }>();
    expect(audit?.actor).toBe(editor.id);
  });
});

describe("audiences", () => {
  it("accepts project attributes and request attributes, and stores the tree as sent", async () => {
    await apiJson("POST", collection("attributes"), 201, { body: { key: "plan" } });
    await apiJson("POST", collection("lists"), 201, { body: { key: "vip", values: ["c-1"] } });
    const conditions = [
      "and",
      leaf("plan", "exact", "pro"),
      ["or", leaf("geo.country", "exact", "DE"), leaf("device.type", "exact", "mobile")],
      ["not", leaf("query.utm_campaign", "exists")],
      leaf("cookie.customer", "in_list", "vip"),
      leaf("header.x-beta", "substring", "yes"),
      leaf("utm.source", "exact", "newsletter"),
      leaf("time.hour", "ge", 9),
      leaf("browser.version", "semver_ge", "120.0"),
      leaf("visitor.new", "exact", true),
      leaf("language", undefined, "de-de"),
    ];
    const created = await apiJson("POST", collection("audiences"), 201, {
      body: { name: "German pros", description: "d", conditions },
    });
    expect(created).toMatchObject({
      name: "German pros",
      description: "d",
      conditions,
      archived: false,
      version: 1,
    });
    const datafile = await currentDatafile();
    expect(datafile.typedAudiences).toEqual([{ id: created.id, name: "German pros", conditions }]);

    const patched = await apiJson("PATCH", `/audiences/${created.id}`, 200, {
      body: { conditions: ["or", leaf("geo.country", "exact", "AT")], archived: true },
    });
    expect(patched).toMatchObject({
      conditions: ["or", leaf("geo.country", "exact", "AT")],
      archived: true,
      version: 2,
    });
    // Archived and unused: left out of the datafile.
    expect((await currentDatafile()).typedAudiences).toEqual([]);

    expect((await apiJson("GET", collection("audiences"), 200)).items).toHaveLength(1);
    await apiJson("DELETE", `/audiences/${created.id}`, 200);
    expect((await apiJson("GET", collection("audiences"), 200)).items).toHaveLength(0);
  });

  it("422 with the JSON path of every bad leaf", async () => {
    await apiJson("POST", collection("lists"), 201, { body: { key: "vip", values: [] } });
    const details = await expect422(
      await api("POST", collection("audiences"), {
        body: {
          name: "bad",
          conditions: [
            "and",
            [
              "or",
              leaf("geo.country", "exact", "DE"),
              leaf("plan", "exact", "pro"),
              leaf("geo.city", "regexp", "M.*"),
            ],
            leaf("time.hour", "gt", "9"),
            leaf("geo.country", "exists", "DE"),
            leaf("cookie.id", "in_list", "nope"),
            leaf("browser.version", "semver_gt", "not a version"),
            { type: "third_party_dimension", name: "x", match: "qualified", value: "s" },
            ["not", leaf("path", "exact", "/a"), leaf("path", "exact", "/b")],
            ["xor", leaf("path", "exact", "/c")],
            { ...leaf("path", "exact", "/d"), extra: true },
          ],
        },
      }),
      [
        "$.body.conditions[1][3].match",
        "$.body.conditions[2].value",
        "$.body.conditions[3].value",
        "$.body.conditions[5].value",
        "$.body.conditions[6].type",
        "$.body.conditions[7]",
        "$.body.conditions[8][0]",
        "$.body.conditions[9].extra",
      ],
    );
    // Structural problems come first (zod); the project-dependent ones only once the tree is sound.
    expect(details.find((d) => d.path === "$.body.conditions[1][3].match")?.message).toMatch(
      /expected one of/,
    );
    expect(details.some((d) => d.path === "$.body.conditions[1][2].name")).toBe(false);

    // A sound tree: now unknown attribute names and list keys are reported.
    const references = await expect422(
      await api("POST", collection("audiences"), {
        body: {
          name: "bad",
          conditions: [
            "and",
            ["or", leaf("geo.country", "exact", "DE"), leaf("plan", "exact", "pro")],
            leaf("cookie.id", "in_list", "nope"),
          ],
        },
      }),
      ["$.body.conditions[1][2].name", "$.body.conditions[2].value"],
    );
    expect(references[0]!.message).toContain('unknown attribute "plan"');

    await expect422(
      await api("POST", collection("audiences"), { body: { name: "x", conditions: [] } }),
      ["$.body.conditions"],
    );
    await expect422(
      await api("POST", collection("audiences"), { body: { name: "x", conditions: { a: 1 } } }),
      ["$.body.conditions"],
    );
    await expect422(
      await api("POST", collection("audiences"), {
        body: { conditions: ["and", leaf("path", "exists")] },
      }),
      ["$.body.name"],
    );
  });
});

describe("pages", () => {
  it("create, patch, archive, delete", async () => {
    const page = await createPage("home", { name: "Home" });
    expect(page).toMatchObject({
      key: "home",
      name: "Home",
      activation: "immediate",
      selector: null,
      archived: false,
    });
    expect((await currentDatafile()).web.pages).toEqual([
      { id: page.id, key: "home", activation: "immediate", conditions: page.conditions },
    ]);
    const spa = await apiJson("PATCH", `/pages/${page.id}`, 200, {
      body: { activation: "dom_changed", selector: "#app .product" },
    });
    expect(spa).toMatchObject({ activation: "dom_changed", selector: "#app .product", version: 2 });
    const back = await apiJson("PATCH", `/pages/${page.id}`, 200, {
      body: { activation: "url_changed" },
    });
    expect(back.selector).toBeNull();
    await apiJson("DELETE", `/pages/${page.id}`, 200);
    expect((await currentDatafile()).web.pages).toEqual([]);
  });

  it("422: bad regex, unknown match, missing selector, bad selector; 409 on duplicate key and while in use", async () => {
    await expect422(
      await api("POST", collection("pages"), {
        body: {
          key: "p",
          conditions: [
            "or",
            { match: "simple", value: "https://shop.example.com/" },
            { match: "regex", value: "^https://shop\\.example\\.com/p/(\\d+$" },
            { match: "glob", value: "*" },
          ],
        },
      }),
      ["$.body.conditions[2].value", "$.body.conditions[3].match"],
    );
    await expect422(
      await api("POST", collection("pages"), {
        body: {
          key: "p",
          activation: "dom_changed",
          conditions: ["or", { match: "exact", value: "https://a/" }],
        },
      }),
      ["$.body.selector"],
    );
    await expect422(
      await api("POST", collection("pages"), {
        body: {
          key: "p",
          activation: "dom_changed",
          selector: "div{}",
          conditions: ["or", { match: "exact", value: "https://a/" }],
        },
      }),
      ["$.body.selector"],
    );
    await expect422(
      await api("POST", collection("pages"), {
        body: {
          key: "p",
          selector: "#x",
          conditions: ["or", { match: "exact", value: "https://a/" }],
        },
      }),
      ["$.body.selector"],
    );

    const page = await createPage("home");
    await expectError(
      await api("POST", collection("pages"), {
        body: { key: "home", conditions: page.conditions },
      }),
      409,
      "conflict",
    );
    const event = await apiJson("POST", collection("events"), 201, {
      body: { key: "view", type: "pageview", pageId: page.id },
    });
    const inUse = await expectError(await api("DELETE", `/pages/${page.id}`), 409, "conflict");
    expect(inUse.error.details).toEqual({ usedBy: [{ type: "event", id: event.id }] });
  });
});

describe("events", () => {
  it("custom, pageview and click events; type changes drop the selector", async () => {
    const page = await createPage();
    const custom = await apiJson("POST", collection("events"), 201, {
      body: { key: "signup", name: "Sign-up", type: "custom" },
    });
    expect(custom).toMatchObject({ type: "custom", pageId: null, selector: null });
    const click = await apiJson("POST", collection("events"), 201, {
      body: { key: "buy", type: "click", pageId: page.id, selector: "#buy" },
    });
    expect(click).toMatchObject({ type: "click", pageId: page.id, selector: "#buy" });
    const datafile = await currentDatafile();
    expect(datafile.events.map((e: Json) => e.key)).toEqual(["signup", "buy"]);
    expect(datafile.web.events).toEqual([
      { id: custom.id, type: "custom" },
      { id: click.id, type: "click", pageId: page.id, selector: "#buy" },
    ]);
    const pageview = await apiJson("PATCH", `/events/${click.id}`, 200, {
      body: { type: "pageview" },
    });
    expect(pageview).toMatchObject({ type: "pageview", pageId: page.id, selector: null });
    const list = await apiJson("GET", collection("events"), 200);
    expect(list.items).toHaveLength(2);
    await apiJson("DELETE", `/events/${custom.id}`, 200);
  });

  it("422: pageview/click need an existing page, click needs a valid selector", async () => {
    const page = await createPage();
    await expect422(
      await api("POST", collection("events"), { body: { key: "v", type: "pageview" } }),
      ["$.body.pageId"],
    );
    await expect422(
      await api("POST", collection("events"), {
        body: { key: "v", type: "pageview", pageId: "123456789012" },
      }),
      ["$.body.pageId"],
    );
    await expect422(
      await api("POST", collection("events"), {
        body: { key: "c", type: "click", pageId: page.id },
      }),
      ["$.body.selector"],
    );
    await expect422(
      await api("POST", collection("events"), {
        body: { key: "c", type: "click", pageId: page.id, selector: "a[href" },
      }),
      ["$.body.selector"],
    );
    await expect422(
      await api("POST", collection("events"), { body: { key: "c", type: "hover" } }),
      ["$.body.type"],
    );
    await apiJson("POST", collection("events"), 201, { body: { key: "c", type: "custom" } });
    await expectError(
      await api("POST", collection("events"), { body: { key: "c", type: "custom" } }),
      409,
      "conflict",
    );
  });
});

describe("lists", () => {
  it("create, list without values, get with values, replace values, delete", async () => {
    const list = await apiJson("POST", collection("lists"), 201, {
      body: { key: "vip", name: "VIPs", values: ["a", "b"] },
    });
    expect(list).toMatchObject({ key: "vip", name: "VIPs", values: ["a", "b"], valueCount: 2 });
    const page = await apiJson("GET", collection("lists"), 200);
    expect(page.items).toEqual([
      {
        id: list.id,
        projectId: project.id,
        key: "vip",
        name: "VIPs",
        valueCount: 2,
        version: 1,
        createdAt: list.createdAt,
        updatedAt: list.updatedAt,
      },
    ]);
    const replaced = await apiJson("PATCH", `/lists/${list.id}`, 200, { body: { values: ["c"] } });
    expect(replaced).toMatchObject({ values: ["c"], valueCount: 1, version: 2 });
    // Published without its members (private: docs/datafile.md "Lists"); they are in the
    // Worker's own KV key of that revision.
    const published = await currentDatafile();
    expect(published.web.lists).toEqual([{ id: list.id, key: "vip" }]);
    const sdkKey = project.environments.find((e) => e.key === "production")!.sdkKey;
    expect(await env.DATAFILES.get(`lists/${sdkKey}/${published.revision}`, "json")).toEqual({
      lists: { [list.id]: ["c"] },
    });
    await apiJson("DELETE", `/lists/${list.id}`, 200);
  });

  it("422 for values that are too long; 409 for renaming or deleting a list an audience uses", async () => {
    await expect422(
      await api("POST", collection("lists"), {
        body: { key: "l", values: ["ok", "x".repeat(257), 3] },
      }),
      ["$.body.values[1]", "$.body.values[2]"],
    );
    const list = await apiJson("POST", collection("lists"), 201, {
      body: { key: "vip", values: ["a"] },
    });
    await apiJson("POST", collection("audiences"), 201, {
      body: { name: "VIP", conditions: ["or", leaf("cookie.customer", "in_list", "vip")] },
    });
    await expectError(
      await api("PATCH", `/lists/${list.id}`, { body: { key: "vips" } }),
      409,
      "conflict",
    );
    await expectError(await api("DELETE", `/lists/${list.id}`), 409, "conflict");
    // Values may change while in use.
    await apiJson("PATCH", `/lists/${list.id}`, 200, { body: { values: ["a", "b"] } });
  });
});

describe('lists: the members of all of a project\'s lists are bounded (docs/datafile.md "Lists")', () => {
  /** Lists written straight into D1 (the API takes at most 1 MB a request): `member` × count each. */
  async function seedLists(counts: number[], member: string): Promise<void> {
    const now = new Date().toISOString();
    await env.DB.batch(
      counts.map((count, i) =>
        env.DB.prepare(
          'INSERT INTO lists (id, project_id, key, name, "values", created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        ).bind(
          `${project.id}_seed${i}`,
          project.id,
          `seed${i}`,
          "",
          JSON.stringify(new Array<string>(count).fill(member)),
          now,
          now,
        ),
      ),
    );
  }

  it(`more than ${MAX_LIST_MEMBERS} members in all → 422 at $.body.values, on create and on update`, async () => {
    // 999,999 members; the last seeded list (seed10) has one.
    await seedLists([...new Array<number>(9).fill(100_000), 99_998, 1], "m");
    const [detail] = await expect422(
      await api("POST", collection("lists"), { body: { key: "more", values: ["x", "y"] } }),
      ["$.body.values"],
    );
    expect(detail!.message).toMatch(`would have ${MAX_LIST_MEMBERS + 1} members in all`);
    const seed10 = `${project.id}_seed10`;
    await expect422(await api("PATCH", `/lists/${seed10}`, { body: { values: ["x", "y", "z"] } }), [
      "$.body.values",
    ]);
    // Replacing a list's values counts them instead of its old ones: exactly at the bound.
    await apiJson("PATCH", `/lists/${seed10}`, 200, { body: { values: ["x", "y"] } });
  }, 60_000);

  it(`more than ${MAX_LIST_MEMBERS_BYTES} bytes of members document → 422 at $.body.values`, async () => {
    // 259 bytes a member as JSON; 8 lists of 4,000 = 8,288,000 bytes and a little overhead.
    await seedLists(new Array<number>(8).fill(4000), "x".repeat(256));
    const values = (n: number) => Array.from({ length: n }, (_, i) => `${i}`.padStart(256, "z"));
    const [detail] = await expect422(
      await api("POST", collection("lists"), { body: { key: "long", values: values(400) } }),
      ["$.body.values"],
    );
    expect(detail!.message).toMatch(/list members would take \d+ bytes as JSON/);
    // Just under the bound: the publisher agrees (the same size, computed from the document).
    await apiJson("POST", collection("lists"), 201, { body: { key: "long", values: values(300) } });
  }, 60_000);
});

describe("groups", () => {
  async function experimentIn(
    groupId: string | null,
    key: string,
    page: { id: string },
    event: { id: string },
  ) {
    return apiJson("POST", collection("experiments"), 201, {
      body: {
        key,
        pageIds: [page.id],
        metrics: [{ eventId: event.id, aggregator: "unique" }],
        groupId,
        variations: [
          { key: "a", weight: 5000 },
          { key: "b", weight: 5000 },
        ],
      },
    });
  }

  it("allocation over the group's experiments; 422 for outsiders and over 10000; 409 deleting a used group", async () => {
    const page = await createPage();
    const event = await apiJson("POST", collection("events"), 201, {
      body: { key: "e", type: "custom" },
    });
    const group = await apiJson("POST", collection("groups"), 201, { body: { name: "Checkout" } });
    expect(group).toMatchObject({
      name: "Checkout",
      policy: "random",
      allocation: [],
      experimentIds: [],
    });
    const one = await experimentIn(group.id, "one", page, event);
    const two = await experimentIn(group.id, "two", page, event);
    const outside = await experimentIn(null, "outside", page, event);

    await expect422(
      await api("PATCH", `/groups/${group.id}`, {
        body: {
          allocation: [
            { experimentId: one.id, weight: 6000 },
            { experimentId: outside.id, weight: 1000 },
            { experimentId: two.id, weight: 5000 },
          ],
        },
      }),
      ["$.body.allocation[1].experimentId", "$.body.allocation"],
    );
    await expect422(
      await api("PATCH", `/groups/${group.id}`, {
        body: { allocation: [{ experimentId: one.id, weight: 10001 }] },
      }),
      ["$.body.allocation[0].weight"],
    );
    const allocated = await apiJson("PATCH", `/groups/${group.id}`, 200, {
      body: {
        allocation: [
          { experimentId: one.id, weight: 3000 },
          { experimentId: two.id, weight: 7000 },
        ],
      },
    });
    expect(allocated.experimentIds).toEqual([one.id, two.id]);
    const datafile = await currentDatafile();
    expect(datafile.groups).toHaveLength(1);
    expect(datafile.groups[0].trafficAllocation).toEqual([
      { entityId: one.id, endOfRange: 3000 },
      { entityId: two.id, endOfRange: 10000 },
    ]);
    expect(datafile.groups[0].experiments.map((x: Json) => x.key)).toEqual(["one", "two"]);
    expect(datafile.experiments.map((x: Json) => x.key)).toEqual(["outside"]);

    await expectError(await api("DELETE", `/groups/${group.id}`), 409, "conflict");
    // Leaving the group takes the experiment out of the allocation.
    await apiJson("PATCH", `/experiments/${two.id}`, 200, { body: { groupId: null } });
    const after = await apiJson("GET", `/groups/${group.id}`, 200);
    expect(after.allocation).toEqual([{ experimentId: one.id, weight: 3000 }]);
    expect(after.experimentIds).toEqual([one.id]);
    await apiJson("DELETE", `/experiments/${one.id}`, 200);
    expect((await apiJson("GET", `/groups/${group.id}`, 200)).allocation).toEqual([]);
    await apiJson("DELETE", `/groups/${group.id}`, 200);
  });
});

describe("publishing", () => {
  it("a write whose datafile would not validate is undone: 422 datafile_invalid, no row, no audit entry", async () => {
    // Corrupt a stored page (bypassing the API) so that every publish of the project fails.
    const page = await createPage();
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(JSON.stringify(["or", { match: "regex", value: "(" }]), page.id)
      .run();
    const before = await currentDatafile();

    const failed = await expectError(
      await api("POST", collection("attributes"), { body: { key: "plan" } }),
      422,
      "datafile_invalid",
    );
    expect(JSON.stringify(failed.error.details)).toContain("invalid regular expression");
    expect((await apiJson("GET", collection("attributes"), 200)).items).toEqual([]);
    const audit = await env.DB.prepare(
      "SELECT COUNT(*) AS n FROM audit_log WHERE project_id = ? AND resource_type = 'attribute'",
    )
      .bind(project.id)
      .first<{ n: number }>();
    expect(audit?.n).toBe(0);

    // An update is rolled back to the previous row (same version), a delete restores the row.
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(JSON.stringify(page.conditions), page.id)
      .run();
    const attribute = await apiJson("POST", collection("attributes"), 201, {
      body: { key: "plan" },
    });
    await env.DB.prepare("UPDATE pages SET conditions = ? WHERE id = ?")
      .bind(JSON.stringify(["or", { match: "regex", value: "(" }]), page.id)
      .run();
    await expectError(
      await api("PATCH", `/attributes/${attribute.id}`, { body: { key: "tier" } }),
      422,
      "datafile_invalid",
    );
    const unchanged = await apiJson("GET", `/attributes/${attribute.id}`, 200);
    expect(unchanged).toMatchObject({ key: "plan", version: 1 });
    await expectError(await api("DELETE", `/attributes/${attribute.id}`), 422, "datafile_invalid");
    await apiJson("GET", `/attributes/${attribute.id}`, 200);
    expect(await auditActions(attribute.id)).toEqual(["create"]);
    // Nothing of the failed writes reached KV.
    expect((await currentDatafile()).attributes).toEqual([{ id: attribute.id, key: "plan" }]);
    expect(before.attributes).toEqual([]);
  });
});

describe("OpenAPI", () => {
  it("documents every resource route", async () => {
    const doc = await apiJson("GET", "/openapi.json", 200, { token: null });
    for (const plural of [
      "attributes",
      "audiences",
      "events",
      "pages",
      "groups",
      "lists",
      "experiments",
    ]) {
      expect(doc.paths[`/_ss/api/v1/projects/{projectId}/${plural}`]).toHaveProperty("get");
      expect(doc.paths[`/_ss/api/v1/projects/{projectId}/${plural}`]).toHaveProperty("post");
      expect(doc.paths[`/_ss/api/v1/${plural}/{id}`]).toHaveProperty("patch");
      expect(doc.paths[`/_ss/api/v1/${plural}/{id}`]).toHaveProperty("delete");
    }
    for (const action of ["start", "pause", "resume", "archive"])
      expect(doc.paths[`/_ss/api/v1/experiments/{id}/${action}`]).toHaveProperty("post");
    expect(doc.components.schemas).toHaveProperty("AudienceCondition");
    expect(doc.components.schemas).toHaveProperty("ExperimentCreate");
  });
});
