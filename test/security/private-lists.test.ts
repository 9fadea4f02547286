/**
 * List values are private (docs/security.md "List members stay private"; docs/datafile.md
 * "Lists"): a list published through the management API, or written by hand into KV, never shows
 * a member in any public response — the datafile endpoint, the client config, `/_ss/decide`,
 * `/_ss/client.js`, `/_ss/health`, an edge page with its bootstrap, or any response header — and
 * `in_list` targeting still works at the edge for a member and not for anyone else.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { resetDatafileStore } from "../../src/edge/datafile-store";
import { apiJson, createProject } from "../helpers/api";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { decisionsOf, routedWorker, type WorkerFetch } from "../helpers/pipeline";

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests index into JSON bodies freely
type Json = any;

const SITE = "https://shop.example.com";
const BROWSER_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36";
const PAGE =
  '<!doctype html><html><head><title>shop</title></head><body><h1 class="headline">Welcome</h1></body></html>';

/** Every member carries this marker, so one search finds any member in any body or header. */
const MARKER = "vipmember";
/** A realistic list: a few thousand customer ids, one of which the member visitor sends. */
const MEMBERS = Array.from({ length: 3000 }, (_, i) => `${MARKER}-${String(i).padStart(5, "0")}`);
const MEMBER = MEMBERS[1234]!;
const NON_MEMBER = "customer-outsider-7";

let origin: MockedOrigin;
beforeEach(() => {
  origin = mockOrigin(
    () => new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }),
  );
  resetDatafileStore();
});
afterEach(() => {
  origin.restore();
  resetDatafileStore();
});

/** Everything a response shows the world: status line, every header, the body. */
async function exposed(response: Response): Promise<string> {
  const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n");
  return `${response.status}\n${headers}\n\n${await response.text()}`;
}

/** Fails naming the endpoint when any list member (or the marker) appears in what it exposed. */
function expectNoMember(label: string, text: string, members: readonly string[] = MEMBERS): void {
  expect(text.includes(MARKER), `${label} exposes list members`).toBe(false);
  const leaked = members.filter((m) => text.includes(m));
  expect(leaked, `${label} exposes list members`).toEqual([]);
}

interface Shop {
  projectId: string;
  environmentId: string;
  sdkKey: string;
  listId: string;
  site: WorkerFetch;
}

/**
 * Through the management API: a list, an audience `cookie.customer_id in_list vip`, and two
 * running experiments for it — one on an immediate page (decided by the edge), one on a
 * `url_changed` page (decided by `/_ss/decide`, and in the client config).
 */
async function setUpShop(): Promise<Shop> {
  const project = await createProject("private lists shop");
  const production = project.environments.find((e) => e.key === "production")!;
  const collection = (plural: string) => `/projects/${project.id}/${plural}`;
  const list = await apiJson("POST", collection("lists"), 201, {
    body: { key: "vip", name: "VIP customers", values: MEMBERS },
  });
  const audience = await apiJson("POST", collection("audiences"), 201, {
    body: {
      name: "VIP",
      conditions: [
        "or",
        { type: "custom_attribute", name: "cookie.customer_id", match: "in_list", value: "vip" },
      ],
    },
  });
  const signup = await apiJson("POST", collection("events"), 201, {
    body: { key: "signup", type: "custom" },
  });
  const home = await apiJson("POST", collection("pages"), 201, {
    body: { key: "home", conditions: ["or", { match: "simple", value: `${SITE}/` }] },
  });
  const spa = await apiJson("POST", collection("pages"), 201, {
    body: {
      key: "account",
      activation: "url_changed",
      conditions: ["or", { match: "simple", value: `${SITE}/account` }],
    },
  });
  for (const [key, page] of [
    ["vip_home", home],
    ["vip_account", spa],
  ] as const) {
    const experiment = await apiJson("POST", collection("experiments"), 201, {
      body: {
        key,
        pageIds: [page.id],
        metrics: [{ eventId: signup.id, aggregator: "unique" }],
        audienceConditions: ["or", audience.id],
        // Everyone in the audience sees welcome_back: the decision shows whether in_list matched.
        variations: [
          { key: "control", weight: 0 },
          {
            key: "welcome_back",
            weight: 10000,
            changes: [
              { type: "attribute", selector: "h1.headline", attributes: { text: "Welcome back" } },
            ],
          },
        ],
      },
    });
    await apiJson("POST", `/experiments/${experiment.id}/start`, 200);
  }
  const site = routedWorker([
    {
      pattern: "shop.example.com/*",
      sdk_key: production.sdkKey,
      origin: "https://origin.example.com",
    },
  ]);
  return {
    projectId: project.id,
    environmentId: production.id,
    sdkKey: production.sdkKey,
    listId: list.id,
    site,
  };
}

/** A browser request with a visitor id and, optionally, the customer id cookie. */
function browser(customerId: string | null, visitorId: string): RequestInit {
  const cookie = [`ss_vid=${visitorId}`];
  if (customerId !== null) cookie.push(`customer_id=${customerId}`);
  return {
    headers: { "user-agent": BROWSER_UA, cookie: cookie.join("; "), "accept-encoding": "identity" },
  };
}

describe("list members never appear in a public response", () => {
  it("a list published through the API: every public endpoint, body and headers", async () => {
    const { sdkKey, site, projectId } = await setUpShop();

    // The datafile still names the list (audiences refer to it), without its members.
    const datafileResponse = await site(`${SITE}/_ss/datafiles/${sdkKey}.json`);
    expect(datafileResponse.status).toBe(200);
    const datafileText = await exposed(datafileResponse.clone());
    expectNoMember("/_ss/datafiles/{sdkKey}.json", datafileText);
    const datafile = (await datafileResponse.json()) as Json;
    expect(datafile.web.lists).toEqual([{ id: expect.any(String), key: "vip" }]);
    const revision = String(datafile.revision);

    // Nor does KV's copy of any published revision hold them (`wrangler kv key get` is not
    // public, but those texts are what every public datafile response is made of).
    const kvKeys = (await env.DATAFILES.list({ prefix: `datafiles/${sdkKey}` })).keys;
    expect(kvKeys.length).toBeGreaterThan(1);
    for (const { name } of kvKeys) expectNoMember(name, (await env.DATAFILES.get(name)) ?? "");

    // Revision variants and conditional requests of the datafile endpoint.
    for (const path of [
      `/_ss/datafiles/${sdkKey}/${revision}.json`,
      `/_ss/datafiles/${sdkKey}/${revision}`,
      `/_ss/datafiles/${sdkKey}.json?revision=1`,
      `/_ss/datafiles/${sdkKey}.json?r=${revision}`,
    ])
      expectNoMember(path, await exposed(await site(`${SITE}${path}`)));
    expectNoMember(
      "HEAD datafile",
      await exposed(await site(`${SITE}/_ss/datafiles/${sdkKey}.json`, { method: "HEAD" })),
    );

    const clientConfig = await site(`${SITE}/_ss/client-config/${sdkKey}.json?r=${revision}`);
    expect(clientConfig.status).toBe(200);
    const config = await exposed(clientConfig);
    expect(config).toContain("vip_account"); // the url_changed experiment is in it
    expectNoMember("/_ss/client-config/{sdkKey}.json", config);

    const script = await site(`${SITE}/_ss/client.js`);
    expect(script.status).toBe(200);
    expectNoMember("/_ss/client.js", await exposed(script));

    const health = await site(`${SITE}/_ss/health`);
    expect(health.status).toBe(200);
    expectNoMember("/_ss/health", await exposed(health));

    // The edge page, for a member: targeted (in_list works), bootstrap and headers clean —
    // except for the visitor's own customer id, which is not the list's to hide.
    const others = MEMBERS.filter((m) => m !== MEMBER);
    const memberPage = await site(`${SITE}/`, browser(MEMBER, "visitor-member-1"));
    expect(memberPage.status).toBe(200);
    expect(decisionsOf(memberPage).get("vip_home")).toBe("welcome_back");
    const memberHtml = await exposed(memberPage);
    expect(memberHtml).toContain("Welcome back");
    expect(memberHtml).toContain('id="ss-bootstrap"');
    expectNoMember("edge page (member)", memberHtml.replaceAll(MEMBER, "<own id>"), others);

    const outsiderPage = await site(`${SITE}/`, browser(NON_MEMBER, "visitor-outsider-1"));
    expect(outsiderPage.status).toBe(200);
    expect(decisionsOf(outsiderPage).has("vip_home")).toBe(false);
    const outsiderHtml = await exposed(outsiderPage);
    expect(outsiderHtml).not.toContain("Welcome back");
    expectNoMember("edge page (non-member)", outsiderHtml);

    const anonymousPage = await site(`${SITE}/`, browser(null, "visitor-anonymous-1"));
    expect(decisionsOf(anonymousPage).has("vip_home")).toBe(false);
    expectNoMember("edge page (no customer id)", await exposed(anonymousPage));

    // /_ss/decide (single-page apps): the same targeting, no members.
    const decideUrl = `${SITE}/_ss/decide?url=${encodeURIComponent(`${SITE}/account`)}`;
    const memberDecide = await site(decideUrl, browser(MEMBER, "visitor-member-1"));
    expect(memberDecide.status).toBe(200);
    const memberDecideText = await exposed(memberDecide);
    expect(memberDecideText).toContain("vip_account");
    expectNoMember("/_ss/decide (member)", memberDecideText.replaceAll(MEMBER, "<own id>"), others);
    const outsiderDecide = await site(decideUrl, browser(NON_MEMBER, "visitor-outsider-1"));
    expect(outsiderDecide.status).toBe(200);
    const outsiderDecideText = await exposed(outsiderDecide);
    expect(outsiderDecideText).not.toContain("vip_account");
    expectNoMember("/_ss/decide (non-member)", outsiderDecideText);

    // An unrouted path passes through; its response is the origin's, and clean too.
    expectNoMember("pass-through", await exposed(await site(`${SITE}/robots.txt`)));
    expect(projectId).toBeTruthy();
  });

  it("changing the members publishes a new revision; a rollback restores that revision's members", async () => {
    const { sdkKey, site, environmentId, listId } = await setUpShop();
    const first = (await (await site(`${SITE}/_ss/datafiles/${sdkKey}.json`)).json()) as Json;
    const firstRevision = Number(first.revision);

    const newcomer = `${MARKER}-newcomer`;
    const updated = await apiJson("PATCH", `/lists/${listId}`, 200, {
      body: { values: [newcomer] },
    });
    expect(updated.published[0].changed).toBe(true);
    resetDatafileStore();
    const second = await site(`${SITE}/_ss/datafiles/${sdkKey}.json`);
    expectNoMember("datafile after the change", await exposed(second), [...MEMBERS, newcomer]);
    expect(
      decisionsOf(await site(`${SITE}/`, browser(newcomer, "visitor-newcomer"))).get("vip_home"),
    ).toBe("welcome_back");
    expect(
      decisionsOf(await site(`${SITE}/`, browser(MEMBER, "visitor-member-2"))).has("vip_home"),
    ).toBe(false);

    await apiJson("POST", `/environments/${environmentId}/rollback`, 200, {
      body: { revision: firstRevision },
    });
    resetDatafileStore();
    const rolledBack = await site(`${SITE}/_ss/datafiles/${sdkKey}.json`);
    expectNoMember("datafile after the rollback", await exposed(rolledBack), [
      ...MEMBERS,
      newcomer,
    ]);
    expect(
      decisionsOf(await site(`${SITE}/`, browser(MEMBER, "visitor-member-3"))).get("vip_home"),
    ).toBe("welcome_back");
    expect(
      decisionsOf(await site(`${SITE}/`, browser(newcomer, "visitor-newcomer-2"))).has("vip_home"),
    ).toBe(false);
  });

  it("a datafile written into KV by hand with web.lists[].values: served without them, used by the edge", async () => {
    const { sdkKey, site } = await setUpShop();
    const published = (await (await site(`${SITE}/_ss/datafiles/${sdkKey}.json`)).json()) as Json;
    // What someone would `wrangler kv key put`: the members inline, a revision of their own.
    const handWritten = {
      ...published,
      revision: "hand-1",
      web: {
        ...published.web,
        lists: published.web.lists.map((l: Json) => ({ ...l, values: MEMBERS })),
      },
    };
    await env.DATAFILES.put(`datafiles/${sdkKey}`, JSON.stringify(handWritten));
    resetDatafileStore();

    const served = await site(`${SITE}/_ss/datafiles/${sdkKey}.json`);
    expect(served.status).toBe(200);
    expect(served.headers.get("x-ss-revision")).toBe("hand-1");
    const text = await exposed(served.clone());
    expectNoMember("hand-written datafile", text);
    const body = (await served.json()) as Json;
    expect(body.web.lists).toEqual([{ id: expect.any(String), key: "vip" }]);
    // Everything else is served as written.
    expect({ ...body, web: { ...body.web, lists: handWritten.web.lists } }).toEqual(handWritten);

    const memberPage = await site(`${SITE}/`, browser(MEMBER, "visitor-member-4"));
    expect(decisionsOf(memberPage).get("vip_home")).toBe("welcome_back");
    expectNoMember(
      "edge page from a hand-written datafile",
      (await exposed(memberPage)).replaceAll(MEMBER, "<own id>"),
      MEMBERS.filter((m) => m !== MEMBER),
    );
    expect(
      decisionsOf(await site(`${SITE}/`, browser(NON_MEMBER, "visitor-outsider-4"))).has(
        "vip_home",
      ),
    ).toBe(false);
    const config = await site(`${SITE}/_ss/client-config/${sdkKey}.json`);
    expect(config.status).toBe(200);
    expectNoMember("client config from a hand-written datafile", await exposed(config));
  });

  describe("nor in /_ss/health or the logs when what holds them is broken", () => {
    /** Every console line the Worker writes during the test. */
    let logged: string[];
    beforeEach(() => {
      logged = [];
      for (const level of ["error", "warn", "log", "info", "debug"] as const)
        vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
          logged.push(
            args
              .map((a) => (a instanceof Error ? `${a.message}\n${a.stack}` : String(a)))
              .join(" "),
          );
        });
    });
    afterEach(() => vi.restoreAllMocks());

    /** The datafile entry of `sdkKey` in `/_ss/health`, after checking the whole response. */
    async function healthOf(
      site: WorkerFetch,
      sdkKey: string,
    ): Promise<{ lastError: string | null }> {
      const health = await site(`${SITE}/_ss/health`);
      const text = await exposed(health.clone());
      expectNoMember("/_ss/health", text);
      const body = (await health.json()) as Json;
      return body.datafiles.find((d: Json) => d.sdkKey === sdkKey);
    }

    /** A text that is not JSON because one member lost its quotes (a hand edit gone wrong). */
    const unquoteOne = (json: string) => json.replace(`"${MEMBER}"`, MEMBER);

    it("a members document that is not JSON: the list is unknown, health and logs name the key and position only", async () => {
      const { sdkKey, site } = await setUpShop();
      const revision = String(
        ((await (await site(`${SITE}/_ss/datafiles/${sdkKey}.json`)).json()) as Json).revision,
      );
      const key = `lists/${sdkKey}/${revision}`;
      const document = (await env.DATAFILES.get(key))!;
      expect(document).toContain(`"${MEMBER}"`);
      await env.DATAFILES.put(key, unquoteOne(document));
      resetDatafileStore();

      // The list is unknown now: the member is no longer targeted.
      const page = await site(`${SITE}/`, browser(MEMBER, "visitor-member-5"));
      expect(decisionsOf(page).has("vip_home")).toBe(false);
      const { lastError } = await healthOf(site, sdkKey);
      expect(lastError).toContain(`${key} is not a list members document ($: not JSON:`);
      expect(lastError).toMatch(/at position \d+ \(line 1 column \d+\)/);
      expect(logged.join("\n")).toContain(key);
      expectNoMember("the logs", logged.join("\n"));
    });

    it.each<[string, (published: Json) => string]>([
      [
        "that is not JSON",
        (published) =>
          unquoteOne(
            JSON.stringify({
              ...published,
              revision: "hand-2",
              web: {
                ...published.web,
                lists: published.web.lists.map((l: Json) => ({ ...l, values: MEMBERS })),
              },
            }),
          ),
      ],
      [
        "whose values are not strings",
        (published) =>
          JSON.stringify({
            ...published,
            revision: "hand-3",
            web: {
              ...published.web,
              lists: published.web.lists.map((l: Json) => ({
                ...l,
                values: MEMBERS.slice(0, 20).join(","),
              })),
            },
          }),
      ],
      [
        "with a member that is a number",
        (published) =>
          JSON.stringify({
            ...published,
            revision: "hand-4",
            web: {
              ...published.web,
              lists: published.web.lists.map((l: Json) => ({
                ...l,
                values: [...MEMBERS, 4_242_424_242],
              })),
            },
          }),
      ],
    ])(
      "a hand-written datafile with inline members %s: health and logs quote none of them",
      async (_name, write) => {
        const { sdkKey, site } = await setUpShop();
        const published = (await (
          await site(`${SITE}/_ss/datafiles/${sdkKey}.json`)
        ).json()) as Json;
        await env.DATAFILES.put(`datafiles/${sdkKey}`, write(published));
        resetDatafileStore();

        // It does not load (nothing was good before in this isolate): requests pass through.
        const page = await site(`${SITE}/`, browser(MEMBER, "visitor-member-6"));
        expect(decisionsOf(page).has("vip_home")).toBe(false);
        const { lastError } = await healthOf(site, sdkKey);
        expect(lastError).toMatch(/^invalid datafile/);
        expect(lastError).not.toContain("4242424242");
        const logs = logged.join("\n");
        expect(logs).toContain(`datafiles/${sdkKey} does not load`);
        expect(logs).not.toContain("4242424242");
        expectNoMember("the logs", logs);
      },
    );
  });
});
