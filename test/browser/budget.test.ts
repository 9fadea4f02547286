/**
 * Size budgets (docs/client.md): /_ss/client.js at most 5 KB gzipped, the inline bootstrap of a
 * realistic page at most 1 KB — and the committed bundle is the build of src/client.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { CLIENT_JS, CLIENT_JS_HASH } from "../../src/client/generated/client-bundle";
import { renderBootstrap, type BootstrapData } from "../../src/edge/bootstrap";

const CLIENT_GZIP_BUDGET = 5 * 1024;
const BOOTSTRAP_BUDGET = 1024;

describe("size budgets", () => {
  it("client.js is at most 5 KB gzipped", () => {
    const gzipped = gzipSync(CLIENT_JS, { level: 9 }).byteLength;
    const gzippedDefault = gzipSync(CLIENT_JS).byteLength;
    console.log(
      `client.js: ${CLIENT_JS.length} bytes, ${gzippedDefault} gzipped (level 6), ${gzipped} (level 9)`,
    );
    expect(gzippedDefault).toBeLessThanOrEqual(CLIENT_GZIP_BUDGET);
  });

  it("the bootstrap of a realistic page is at most 1 KB (5 decisions, nonce, shim, cookie domain, versioned client script)", () => {
    const keys = [
      ["homepage_hero_headline", "variation_1", "immediate"],
      ["checkout_button_color_q3", "green_button", "immediate"],
      ["pricing_page_annual_toggle", "annual_default", "immediate"],
      ["product_detail_reviews_position", "reviews_above_fold", "manual"],
      ["free_shipping_banner", "control", "url_changed"],
    ] as const;
    const data: BootstrapData = {
      revision: "1287",
      sdkKey: "Wr7bF3kQe9ZpX2mN4vL8a",
      visitorId: "oeu1733311234567r0.8321474512",
      decisions: keys.map(([experimentKey, variationKey, activation], i) => ({
        experimentId: String(21640850210 + i * 7919),
        experimentKey,
        variationId: String(21645930011 + i * 104729),
        variationKey,
        activation,
        pageIds: [String(21653120137 + i)],
      })),
      tracking: true,
      optimizelyShim: true,
      cookieDomain: "example.com",
      cookieMaxAgeDays: 180,
    };
    const html = renderBootstrap(data, {
      nonce: "dGhpcyBpcyBhIG5vbmNlIQ==",
      clientScriptSrc: `/_ss/client.js?v=${CLIENT_JS_HASH}`,
    });
    const bytes = new TextEncoder().encode(html).byteLength;
    console.log(`bootstrap (5 decisions): ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(BOOTSTRAP_BUDGET);
  });

  it("the committed bundle is the build of src/client (npm run build:client)", async () => {
    const { buildClient, bundleModule, BUNDLE_FILE } = (await import(
      "../../scripts/build-client.mjs" as string
    )) as {
      buildClient(): Promise<{ js: string; hash: string }>;
      bundleModule(bundle: { js: string; hash: string }): string;
      BUNDLE_FILE: string;
    };
    const { readFileSync } = await import("node:fs");
    const built = await buildClient();
    expect(built.js).toBe(CLIENT_JS);
    expect(readFileSync(BUNDLE_FILE, "utf8")).toBe(bundleModule(built));
  });
});
