/**
 * The visual editor's previews through the Worker (src/edge/editor-preview.ts): signed tokens,
 * the same rewriter as visitors get, element numbering, the sandbox, and refusals.
 */
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Change } from "../../src/core/datafile-types";
import {
  EDITOR_QUERY_PARAM,
  MAX_EDITOR_BODY_BYTES,
  signEditorToken,
  verifyEditorToken,
  type EditorGrant,
} from "../../src/edge/editor-preview";
import { AGENT_JS } from "../../src/edge/generated/editor-agent-bundle";
import { rewriteHtml } from "../../src/edge/html-rewrite";
import { signPreview } from "../../src/edge/preview";
import type { EventMessage } from "../../src/shared/event-messages";
import { mockOrigin, type MockedOrigin } from "../helpers/origin";
import { recordQueued } from "../helpers/queue";

// wrangler.toml routes localhost/* to the origin http://localhost:8788 with sdk_key "demo".
const SITE = "http://localhost";
const KEY = (env as unknown as { SIGNING_KEY: string }).SIGNING_KEY;
const PAGE = `<!doctype html><html><head><title>Shop</title></head><body><h1 class="hero">Welcome</h1><p id="intro">Hello <b>there</b></p><ul><li>a</li><li>b</li></ul></body></html>`;

let origin: MockedOrigin;
let queued: EventMessage[];
let originHeaders: Record<string, string>;

beforeEach(() => {
  originHeaders = {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": "script-src 'nonce-abc123'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "set-cookie": "cart=1; Path=/",
    etag: '"v1"',
  };
  origin = mockOrigin((request) => {
    const path = new URL(request.url).pathname;
    if (path === "/image.png")
      return new Response("png", { headers: { "content-type": "image/png" } });
    if (path === "/gone") return new Response("gone", { status: 404 });
    if (path === "/meta-csp")
      return new Response(
        `<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="script-src 'none'"><title>x</title></head><body><h1>Hi</h1></body></html>`,
        { headers: { "content-type": "text/html" } },
      );
    if (path === "/moved")
      return new Response(null, { status: 308, headers: { location: "/new-home?x=1" } });
    if (path === "/drawing")
      return new Response("<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>", {
        headers: { "content-type": "image/svg+xml; note=text/html" },
      });
    return new Response(PAGE, { headers: originHeaders });
  });
  queued = [];
  recordQueued(queued);
});

afterEach(() => {
  origin.restore();
  vi.restoreAllMocks();
});

const grant = (overrides: Partial<EditorGrant> = {}): EditorGrant => ({
  sdkKey: "demo",
  experimentId: "exp1",
  decisions: "hero_test=treatment",
  expiresAt: Date.now() + 60_000,
  ...overrides,
});

async function post(
  path: string,
  fields: Record<string, string>,
  init: { contentType?: string; headers?: Record<string, string> } = {},
): Promise<Response> {
  const response = await exports.default.fetch(
    new Request(`${SITE}${path}`, {
      method: "POST",
      headers: {
        "content-type": init.contentType ?? "application/x-www-form-urlencoded",
        cookie: "session=site-user; ss_vid=v1",
        ...init.headers,
      },
      body: new URLSearchParams(fields).toString(),
      redirect: "manual",
    }),
  );
  await new Promise((r) => setTimeout(r, 0));
  return response;
}

const preview = async (changes: Change[], token?: string, path = "/") =>
  post(`${path}${path.includes("?") ? "&" : "?"}${EDITOR_QUERY_PARAM}=preview`, {
    token: token ?? (await signEditorToken(KEY, grant())),
    changes: JSON.stringify(changes),
  });

/** The body without the agent script (what a visitor's page has in its place: the bootstrap). */
const withoutAgent = (text: string) =>
  text.replace(/<script data-ss-editor[^>]*>[\s\S]*?<\/script>/, "");
const withoutNumbers = (text: string) => text.replace(/ data-ss-i="\d+"/g, "");

describe("editor tokens", () => {
  it("round-trip, and expire", async () => {
    const g = grant();
    const token = await signEditorToken(KEY, g);
    expect(await verifyEditorToken(KEY, token, Date.now())).toEqual(g);
    expect(await verifyEditorToken(KEY, token, g.expiresAt)).toBeNull();
    expect(await verifyEditorToken("another key", token, Date.now())).toBeNull();
  });

  it("a preview link's token is not an editor token (separate keys), nor the reverse", async () => {
    const link = await signPreview(KEY, {
      sdkKey: "demo",
      variations: { exp1: "v1" },
      expiresAt: Date.now() + 60_000,
    });
    expect(await verifyEditorToken(KEY, link, Date.now())).toBeNull();
    const response = await preview([], link);
    expect(response.status).toBe(403);
    expect(origin.requests).toHaveLength(0);
  });
});

describe("POST <page>?ss_editor=preview", () => {
  it("is the visitor's rewriter: the same changes give the same page, plus numbers and the agent", async () => {
    const changes: Change[] = [
      { type: "attribute", selector: "h1", attributes: { text: "Hi <you>", addClass: "big" } },
      { type: "insert_html", selector: "#intro", position: "after", html: "<p class=new>New</p>" },
      { type: "attribute", selector: "li:nth-child(2)", attributes: { hide: true } },
      { type: "custom_css", value: "h1{color:red}" },
    ];
    const response = await preview(changes);
    expect(response.status).toBe(200);
    const text = await response.text();
    // Every element the origin sent is numbered in document order; inserted content is not.
    expect(text).toContain('<html data-ss-i="0">');
    expect(text).toContain('<h1 class="hero big" data-ss-i="4">Hi &lt;you&gt;</h1>');
    expect(text).toContain("<p class=new>New</p>");
    expect(text).toContain(`<script data-ss-editor nonce="abc123">`);
    expect(AGENT_JS.length).toBeGreaterThan(0);

    // What a visitor gets from the same rewriter with the same changes (the bootstrap aside).
    const visitor = await rewriteHtml(
      new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } }),
      { changes, bootstrap: null, nonce: "abc123" },
    ).text();
    expect(withoutNumbers(withoutAgent(text))).toBe(visitor);
  });

  it("forwards a GET of the page with the admin's cookies and the variation's decision", async () => {
    await preview([], undefined, "/p/1?color=red");
    expect(origin.requests).toHaveLength(1);
    const sent = origin.requests[0]!;
    expect(sent.method).toBe("GET");
    expect(sent.url).toBe("http://localhost:8788/p/1?color=red");
    expect(sent.body).toBeNull();
    expect(sent.headers.get("x-ss-decisions")).toBe("hero_test=treatment");
    expect(sent.headers.get("cookie")).toBe("session=site-user; ss_vid=v1");
    expect(sent.headers.get("content-type")).toBeNull();
  });

  it("is sandboxed, never cached, and drops the origin's CSP, framing, isolation and cookie headers", async () => {
    const response = await preview([]);
    expect(response.headers.get("content-security-policy")).toBe(
      "sandbox allow-scripts; frame-ancestors 'self'",
    );
    expect(response.headers.get("cache-control")).toBe("no-store");
    for (const name of ["x-frame-options", "cross-origin-opener-policy", "set-cookie", "etag"])
      expect(response.headers.get(name)).toBeNull();
    await response.text();
  });

  it("counts nothing and sets no cookie", async () => {
    const response = await preview([
      { type: "attribute", selector: "h1", attributes: { text: "x" } },
    ]);
    await response.text();
    await new Promise((r) => setTimeout(r, 10));
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(queued).toEqual([]);
  });

  it("applies moves in both directions, as the edge does", async () => {
    const response = await preview([
      {
        type: "move",
        selector: "#intro",
        target: "h1",
        position: "before",
        html: '<p id="intro">Moved</p>',
      },
    ] as Change[]);
    const text = withoutNumbers(withoutAgent(await response.text()));
    expect(text).toContain('<body><p id="intro">Moved</p><h1 class="hero">');
    expect(text).not.toContain("Hello <b>there</b>");
  });

  it("shows non-HTML and error answers as the origin sent them, still sandboxed", async () => {
    const image = await preview([], undefined, "/image.png");
    expect(image.headers.get("content-type")).toBe("image/png");
    expect(await image.text()).toBe("png");
    const gone = await preview([], undefined, "/gone");
    expect(gone.status).toBe(404);
    expect(gone.headers.get("content-security-policy")).toContain("sandbox");
    await gone.text();
  });

  it.each<[string, () => Promise<Record<string, string>>, number]>([
    ["no token", async () => ({ changes: "[]" }), 403],
    [
      "an expired token",
      async () => ({
        token: await signEditorToken(KEY, grant({ expiresAt: Date.now() - 1 })),
        changes: "[]",
      }),
      403,
    ],
    [
      "changes that are not JSON",
      async () => ({ token: await signEditorToken(KEY, grant()), changes: "{" }),
      400,
    ],
    [
      "changes that are not an array",
      async () => ({ token: await signEditorToken(KEY, grant()), changes: '{"type":"x"}' }),
      400,
    ],
    [
      "changes that are not objects",
      async () => ({ token: await signEditorToken(KEY, grant()), changes: "[1,2]" }),
      400,
    ],
  ])("refuses %s with a page the frame can show", async (_label, fields, status) => {
    const response = await post(`/?${EDITOR_QUERY_PARAM}=preview`, await fields());
    expect(response.status).toBe(status);
    expect(response.headers.get("content-security-policy")).toContain("sandbox allow-scripts");
    expect(await response.text()).toContain("The editor cannot show this page");
    expect(origin.requests).toHaveLength(0);
  });

  it("refuses a token for another site's sdk key", async () => {
    const response = await preview([], await signEditorToken(KEY, grant({ sdkKey: "other" })));
    expect(response.status).toBe(403);
    await response.text();
  });

  it("refuses another content type and a body over the limit, before fetching anything", async () => {
    const token = await signEditorToken(KEY, grant());
    const json = await post(
      `/?${EDITOR_QUERY_PARAM}=preview`,
      { token },
      {
        contentType: "application/json",
      },
    );
    expect(json.status).toBe(415);
    await json.text();
    const big = await post(`/?${EDITOR_QUERY_PARAM}=preview`, {
      token,
      changes: JSON.stringify([{ type: "custom_css", value: "x".repeat(MAX_EDITOR_BODY_BYTES) }]),
    });
    expect(big.status).toBe(413);
    await big.text();
    expect(origin.requests).toHaveLength(0);
  });
});

describe("who may post", () => {
  it.each([
    ["another site", { "sec-fetch-site": "cross-site", "sec-fetch-dest": "iframe" }],
    [
      "a new tab (a top-level document)",
      { "sec-fetch-site": "same-origin", "sec-fetch-dest": "document" },
    ],
  ])("refuses %s before reading the body or fetching", async (_label, headers) => {
    const response = await post(
      `/?${EDITOR_QUERY_PARAM}=preview`,
      { token: await signEditorToken(KEY, grant()), changes: "[]" },
      { headers },
    );
    expect(response.status).toBe(403);
    await response.text();
    expect(origin.requests).toHaveLength(0);
  });

  it("checks the token first: a large body without one is refused as unauthorised, not read", async () => {
    const response = await post(`/?${EDITOR_QUERY_PARAM}=preview`, {
      token: "not-a-token",
      changes: JSON.stringify([{ type: "custom_css", value: "x".repeat(1024 * 1024) }]),
    });
    expect(response.status).toBe(403);
    await response.text();
    const second = await post(`/?${EDITOR_QUERY_PARAM}=preview`, {
      changes: "[]",
      token: await signEditorToken(KEY, grant()),
    });
    // the token must be the first field
    expect(second.status).toBe(403);
    await second.text();
    expect(origin.requests).toHaveLength(0);
  });

  it("the frame's and fetch's own posts are accepted", async () => {
    for (const dest of ["iframe", "empty"]) {
      const response = await post(
        `/?${EDITOR_QUERY_PARAM}=preview`,
        { token: await signEditorToken(KEY, grant()), changes: "[]" },
        { headers: { "sec-fetch-site": "same-origin", "sec-fetch-dest": dest } },
      );
      expect(response.status).toBe(200);
      await response.text();
    }
  });
});

describe("what reaches the frame", () => {
  it("a redirect is shown, not followed (the browser would post the draft again)", async () => {
    const response = await preview([], undefined, "/moved");
    expect(response.status).toBe(200);
    expect(response.headers.get("location")).toBeNull();
    expect(response.headers.get("content-security-policy")).toContain("sandbox allow-scripts");
    const text = await response.text();
    expect(text).toContain("redirects this page (308)");
    expect(text).toContain('<a href="http://localhost/new-home?x=1">');
    expect(text).toContain("<script data-ss-editor");
  });

  it("a policy in the page's own <meta> is dropped like the header (it would block the agent)", async () => {
    const text = await (await preview([], undefined, "/meta-csp")).text();
    expect(text).not.toContain("Content-Security-Policy");
    expect(text).toContain("<script data-ss-editor");
    const token = await signEditorToken(KEY, grant());
    const source = await (await post(`/meta-csp?${EDITOR_QUERY_PARAM}=source`, { token })).text();
    expect(source).not.toContain("Content-Security-Policy");
    // the same numbers in both: the h1 is element 4 (html, head, title, body, h1)
    expect(source).toContain('<h1 data-ss-i="4">');
    expect(text).toContain('<h1 data-ss-i="4">');
  });

  it("the editor's address never reaches the origin", async () => {
    await post(
      `/?${EDITOR_QUERY_PARAM}=preview`,
      { token: await signEditorToken(KEY, grant()), changes: "[]" },
      { headers: { referer: "http://localhost/_ss/admin/experiments/123/editor?variation=9" } },
    );
    expect(origin.requests[0]!.headers.get("referer")).toBeNull();
  });

  it("a content type that only mentions text/html is not HTML", async () => {
    const response = await preview([], undefined, "/drawing");
    expect(response.headers.get("content-type")).toBe("image/svg+xml; note=text/html");
    expect(await response.text()).not.toContain("data-ss-i");
    const token = await signEditorToken(KEY, grant());
    const source = await post(`/drawing?${EDITOR_QUERY_PARAM}=source`, { token });
    expect(source.status).toBe(422);
    await source.text();
  });
});

describe("POST <page>?ss_editor=source", () => {
  it("answers the origin's HTML numbered as in the preview, as text, no agent, no changes", async () => {
    const token = await signEditorToken(KEY, grant());
    const response = await post(`/?${EDITOR_QUERY_PARAM}=source`, {
      token,
      changes: JSON.stringify([{ type: "attribute", selector: "h1", attributes: { text: "x" } }]),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toContain("sandbox");
    const text = await response.text();
    expect(text).not.toContain("data-ss-editor");
    expect(withoutNumbers(text)).toBe(PAGE);
    expect(text).toContain('<h1 class="hero" data-ss-i="4">Welcome</h1>');
  });

  it("says so when the page is not HTML", async () => {
    const token = await signEditorToken(KEY, grant());
    const response = await post(`/image.png?${EDITOR_QUERY_PARAM}=source`, { token });
    expect(response.status).toBe(422);
    expect(await response.text()).toContain("not answer with an HTML page");
  });
});

describe("not editor requests", () => {
  it("a GET with ?ss_editor is an ordinary page view", async () => {
    const response = await exports.default.fetch(
      new Request(`${SITE}/?${EDITOR_QUERY_PARAM}=preview`),
    );
    const text = await response.text();
    expect(text).not.toContain("data-ss-editor");
    expect(text).not.toContain("data-ss-i");
    expect(response.headers.get("content-security-policy")).not.toContain("sandbox");
  });
});
