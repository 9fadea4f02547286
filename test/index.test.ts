import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { mockOrigin, type MockedOrigin } from "./helpers/origin";

describe("pass-through", () => {
  let origin: MockedOrigin | undefined;
  afterEach(() => origin?.restore());

  it("forwards any other request to the origin and returns its response unchanged", async () => {
    origin = mockOrigin(
      () =>
        new Response("<h1>hello</h1>", {
          status: 203,
          headers: { "content-type": "text/html", "x-origin": "yes" },
        }),
    );
    const response = await exports.default.fetch("https://shop.example.com/products?id=1", {
      headers: { "x-custom": "kept" },
    });
    expect(response.status).toBe(203);
    expect(response.headers.get("x-origin")).toBe("yes");
    expect(await response.text()).toBe("<h1>hello</h1>");

    expect(origin.requests).toHaveLength(1);
    const sent = origin.requests[0]!;
    expect(sent.url).toBe("https://shop.example.com/products?id=1");
    expect(sent.method).toBe("GET");
    expect(sent.headers.get("x-custom")).toBe("kept");
  });

  it("forwards method and body of non-GET requests", async () => {
    origin = mockOrigin(() => new Response(null, { status: 204 }));
    const response = await exports.default.fetch("https://shop.example.com/cart", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "a1" }),
    });
    expect(response.status).toBe(204);
    const sent = origin.requests[0]!;
    expect(sent.method).toBe("POST");
    expect(sent.body).toBe(JSON.stringify({ sku: "a1" }));
  });

  it("never reaches a real host: unmocked outbound requests are refused", async () => {
    const response = await exports.default.fetch("https://shop.example.com/not-mocked");
    expect(response.status).toBe(599);
    expect(response.headers.get("x-splitstream-test")).toBe("outbound-refused");
  });
});

describe("test environment", () => {
  it("binds the test secrets, whatever .dev.vars holds", () => {
    expect(env.ADMIN_TOKEN).toBe("test-admin-token");
    expect(env.SIGNING_KEY).toBe("test-signing-key");
  });

  it("gets ROUTES from wrangler.toml as an array of tables", () => {
    expect(env.ROUTES).toEqual([
      { pattern: "localhost/*", sdk_key: "demo", origin: "http://localhost:8788" },
    ]);
  });
});
