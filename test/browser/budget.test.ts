/**
 * Size budgets (docs/client.md, docs/visual-editor.md): /_ss/client.js at most 5 KB gzipped, the
 * inline bootstrap of a realistic page at most 1 KB, the visual editor's agent (inlined into every
 * editor preview) at most 6 KB and the editor's script at most 30 KB gzipped — and the committed
 * bundles are the builds of src/client and src/editor.
 */
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { EDITOR_JS, EDITOR_JS_HASH } from "../../src/admin/generated/editor-bundle";
import { CLIENT_JS, CLIENT_JS_HASH } from "../../src/client/generated/client-bundle";
import { renderBootstrap, type BootstrapData } from "../../src/edge/bootstrap";
import { AGENT_JS } from "../../src/edge/generated/editor-agent-bundle";

const CLIENT_GZIP_BUDGET = 5 * 1024;
const BOOTSTRAP_BUDGET = 1024;
const AGENT_GZIP_BUDGET = 6 * 1024;
const EDITOR_GZIP_BUDGET = 30 * 1024;

interface Bundle {
  js: string;
  hash: string;
}
/** scripts/build-client.mjs (plain JS, imported at run time). */
interface BuildScript {
  TARGETS: Array<{
    name: string;
    build(): Promise<Bundle>;
    module(bundle: Bundle): string;
    file: string;
  }>;
}

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

  it("the editor agent is at most 6 KB gzipped", () => {
    const gzipped = gzipSync(AGENT_JS).byteLength;
    console.log(`editor agent: ${AGENT_JS.length} bytes, ${gzipped} gzipped`);
    expect(AGENT_JS.length).toBeGreaterThan(0);
    expect(gzipped).toBeLessThanOrEqual(AGENT_GZIP_BUDGET);
  });

  it("editor.js is at most 30 KB gzipped", () => {
    const gzipped = gzipSync(EDITOR_JS).byteLength;
    console.log(`editor.js: ${EDITOR_JS.length} bytes, ${gzipped} gzipped`);
    expect(EDITOR_JS.length).toBeGreaterThan(0);
    expect(EDITOR_JS_HASH).toMatch(/^[\w-]{12}$/);
    expect(gzipped).toBeLessThanOrEqual(EDITOR_GZIP_BUDGET);
  });

  it("every committed bundle is the build of its source (npm run build:client)", async () => {
    const { TARGETS } = (await import("../../scripts/build-client.mjs" as string)) as BuildScript;
    expect(TARGETS.map((t) => t.name)).toEqual(["client.js", "editor agent", "editor.js"]);
    for (const target of TARGETS) {
      const built = await target.build();
      expect(readFileSync(target.file, "utf8"), target.name).toBe(target.module(built));
    }
  });
});
