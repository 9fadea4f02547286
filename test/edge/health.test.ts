import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("GET /_ss/health", () => {
  it("answers ok as JSON, uncached", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/json/);
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await response.json()).toMatchObject({ status: "ok" });
  });

  it("answers HEAD without a body", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health", {
      method: "HEAD",
    });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("");
  });

  it("rejects other methods with 405 and the error shape", async () => {
    const response = await exports.default.fetch("https://shop.example.com/_ss/health", {
      method: "POST",
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("method_not_allowed");
  });
});
