import { describe, expect, it } from "vitest";
import {
  decodeBootstrap,
  encodeBootstrap,
  encodeFlags,
  escapeJsonForScript,
  FLAGS_BOOTSTRAP_MAX_BYTES,
  isValidNonce,
  renderBootstrap,
  type BootstrapData,
  type FlagState,
} from "../../src/edge/bootstrap";
import { BOOTSTRAP_FORMAT_VERSION } from "../../src/shared/bootstrap-types";

const simple: BootstrapData = {
  revision: "42",
  sdkKey: "sdk1",
  visitorId: "v1",
  decisions: [
    {
      experimentId: "e1",
      experimentKey: "hero",
      variationId: "x1",
      variationKey: "b",
      activation: "immediate",
      pageIds: ["p1"],
    },
  ],
  tracking: true,
};

interface ParsedPage {
  scripts: Array<{ attributes: Record<string, string>; text: string }>;
}

/** Parses the bootstrap the way a browser tokenizer would (HTMLRewriter = lol-html, spec tokenizer). */
async function parse(html: string): Promise<ParsedPage> {
  const page: ParsedPage = { scripts: [] };
  let current: ParsedPage["scripts"][number] | null = null;
  await new HTMLRewriter()
    .on("script", {
      element(el) {
        current = {
          attributes: Object.fromEntries([...el.attributes].map(([k, v]) => [k, v])),
          text: "",
        };
        page.scripts.push(current);
      },
      text(chunk) {
        if (current !== null) current.text += chunk.text;
      },
    })
    .transform(
      new Response(`<!doctype html><html><head>${html}</head><body><p>after</p></body></html>`, {
        headers: { "content-type": "text/html" },
      }),
    )
    .text();
  return page;
}

/** The JSON payload of the bootstrap script: `window.__ss=<json>;`. */
function payloadOf(scriptText: string): unknown {
  const match = /^window\.__ss=(.*);$/s.exec(scriptText);
  if (match === null) throw new Error(`not a bootstrap script: ${scriptText}`);
  return JSON.parse(match[1]!);
}

describe("renderBootstrap", () => {
  it("renders the bootstrap and the client script", () => {
    expect(renderBootstrap(simple)).toBe(
      `<script id="ss-bootstrap">window.__ss={"v":1,"r":"42","k":"sdk1","u":"v1","t":true,` +
        `"d":[{"e":"e1","ek":"hero","vi":"x1","vk":"b","a":"i","p":["p1"]}]};</script>` +
        `<script src="/_ss/client.js" async></script>`,
    );
  });

  it("clientScript: false leaves the client script out", () => {
    expect(renderBootstrap({ ...simple, tracking: false }, { clientScript: false })).toBe(
      `<script id="ss-bootstrap">window.__ss={"v":1,"r":"42","k":"sdk1","u":"v1","t":false,` +
        `"d":[{"e":"e1","ek":"hero","vi":"x1","vk":"b","a":"i","p":["p1"]}]};</script>`,
    );
  });

  it("puts a valid nonce on both scripts", () => {
    const html = renderBootstrap(simple, { nonce: "r4nd0m+/Base64_-==" });
    expect(html.startsWith(`<script id="ss-bootstrap" nonce="r4nd0m+/Base64_-==">`)).toBe(true);
    expect(
      html.endsWith(`<script src="/_ss/client.js" async nonce="r4nd0m+/Base64_-=="></script>`),
    ).toBe(true);
  });

  it.each([
    `"><script>alert(1)</script>`,
    "a b",
    "",
    "abc===",
    "abc=d",
    "x".repeat(300),
    "nonce\u2028",
  ])("drops an invalid nonce %j", (nonce) => {
    expect(isValidNonce(nonce)).toBe(false);
    const html = renderBootstrap(simple, { nonce });
    expect(html).not.toContain("nonce");
  });

  it("carries the route's client settings only when they differ from the defaults", () => {
    const plain = encodeBootstrap({
      ...simple,
      optimizelyShim: false,
      cookieDomain: null,
      cookieMaxAgeDays: 365,
    });
    expect(Object.keys(plain)).toEqual(["v", "r", "k", "u", "t", "d"]);
    const data: BootstrapData = {
      ...simple,
      optimizelyShim: true,
      cookieDomain: "example.com",
      cookieMaxAgeDays: 30,
    };
    expect(encodeBootstrap(data)).toMatchObject({ s: 1, c: "example.com", m: 30 });
    expect(decodeBootstrap(encodeBootstrap(data))).toEqual(data);
  });

  it("clientScriptSrc names the client script (attribute-escaped)", () => {
    expect(renderBootstrap(simple, { clientScriptSrc: "/_ss/client.js?v=abc" })).toContain(
      `<script src="/_ss/client.js?v=abc" async></script>`,
    );
    expect(renderBootstrap(simple, { clientScriptSrc: `/x?a=1&b="2"` })).toContain(
      `<script src="/x?a=1&#38;b=&#34;2&#34;" async></script>`,
    );
  });

  it("encodes every activation", () => {
    const activations = ["immediate", "manual", "url_changed", "dom_changed"] as const;
    const data: BootstrapData = {
      ...simple,
      decisions: activations.map((activation, i) => ({
        ...simple.decisions[0]!,
        experimentId: `e${i}`,
        activation,
      })),
    };
    expect(encodeBootstrap(data).d.map((d) => d.a)).toEqual(["i", "m", "u", "d"]);
    expect(decodeBootstrap(encodeBootstrap(data))).toEqual(data);
  });
});

describe("bootstrap escaping", () => {
  const nasty = [
    "</script><script>alert(1)</script>",
    "</SCRIPT >",
    "<!--<script>",
    "-->",
    "\u2028\u2029",
    `"quotes" 'single' \`back\``,
    `"><img src=x onerror=alert(1)>`,
    "&amp; &lt; & <>",
    "\\\\ \\u003c \\",
    "\ud800 lone surrogate",
    "emoji 😀 ünïcödé",
    "]]> <![CDATA[",
    "\u0000\u001f",
  ];

  it.each(nasty)(
    "%j in every field: one script element, and the JSON round-trips",
    async (value) => {
      const data: BootstrapData = {
        revision: value,
        sdkKey: value,
        visitorId: value,
        decisions: [
          {
            experimentId: value,
            experimentKey: `${value}key`,
            variationId: value,
            variationKey: `key${value}`,
            activation: "manual",
            pageIds: [value, "p2"],
          },
        ],
        tracking: true,
      };
      for (const clientScript of [true, false]) {
        const html = renderBootstrap(data, { nonce: "abc", clientScript });
        const payload = html.slice(html.indexOf(">") + 1, html.indexOf("</script>"));
        // nothing in the payload can open or close a tag or an entity, or end a JS line
        expect(payload).not.toMatch(/[<>&\u2028\u2029]/);
        const page = await parse(html);
        expect(page.scripts.length).toBe(clientScript ? 2 : 1);
        expect(page.scripts[0]!.attributes).toEqual({ id: "ss-bootstrap", nonce: "abc" });
        const parsed = payloadOf(page.scripts[0]!.text);
        expect(parsed).toEqual(encodeBootstrap(data));
        expect(decodeBootstrap(parsed)).toEqual(data);
        if (clientScript)
          expect(page.scripts[1]!.attributes).toEqual({
            src: "/_ss/client.js",
            async: "",
            nonce: "abc",
          });
      }
    },
  );

  it("escapeJsonForScript leaves JSON that parses to the same value", () => {
    const value = { s: "<>&\u2028\u2029</script>" };
    const escaped = escapeJsonForScript(JSON.stringify(value));
    expect(escaped).toBe(`{"s":"\\u003c\\u003e\\u0026\\u2028\\u2029\\u003c/script\\u003e"}`);
    expect(JSON.parse(escaped)).toEqual(value);
  });
});

describe("bootstrap size budget", () => {
  it("5 decisions with realistic keys fit in 1 KB (with nonce and client script)", () => {
    const keys = [
      ["homepage_hero_headline", "variation_1"],
      ["checkout_button_color_q3", "green_button"],
      ["pricing_page_annual_toggle", "annual_default"],
      ["product_detail_reviews_position", "reviews_above_fold"],
      ["free_shipping_banner", "control"],
    ];
    const data: BootstrapData = {
      revision: "1287",
      sdkKey: "Wr7bF3kQe9ZpX2mN4vL8a",
      visitorId: "oeu1733311234567r0.8321474512",
      decisions: keys.map(([experimentKey, variationKey], i) => ({
        experimentId: String(21640850210 + i * 7919),
        experimentKey: experimentKey!,
        variationId: String(21645930011 + i * 104729),
        variationKey: variationKey!,
        activation: i < 3 ? "immediate" : "manual",
        pageIds: [String(21653120137 + i)],
      })),
      tracking: true,
    };
    const html = renderBootstrap(data, { nonce: "dGhpcyBpcyBhIG5vbmNlIQ==" });
    const bytes = new TextEncoder().encode(html).byteLength;
    console.log(`bootstrap for 5 decisions: ${bytes} bytes`);
    expect(bytes).toBeLessThanOrEqual(1024);
  });
});

describe("decodeBootstrap", () => {
  it.each<[string, unknown]>([
    ["null", null],
    ["a string", "x"],
    ["another version", { ...encodeBootstrap(simple), v: BOOTSTRAP_FORMAT_VERSION + 1 }],
    ["decisions not an array", { ...encodeBootstrap(simple), d: {} }],
    [
      "an unknown activation",
      { ...encodeBootstrap(simple), d: [{ ...encodeBootstrap(simple).d[0], a: "z" }] },
    ],
    [
      "a non-string id",
      { ...encodeBootstrap(simple), d: [{ ...encodeBootstrap(simple).d[0], e: 5 }] },
    ],
    ["a missing revision", { ...encodeBootstrap(simple), r: undefined }],
  ])("rejects %s", (_name, payload) => {
    expect(decodeBootstrap(payload)).toBeNull();
  });

  it("reads back what encodeBootstrap wrote", () => {
    expect(decodeBootstrap(encodeBootstrap(simple))).toEqual(simple);
  });
});

describe("feature flags in the bootstrap (f)", () => {
  const flags: FlagState[] = [
    {
      flagKey: "new_checkout",
      enabled: true,
      variationKey: "on",
      variables: { color: "green", max: 5, rate: 0.5, express: true, layout: { columns: [1, 2] } },
    },
    { flagKey: "dark_mode", enabled: false, variationKey: null, variables: {} },
    { flagKey: "legacy", enabled: false, variationKey: "off", variables: { limit: 7 } },
  ];
  /** UTF-8 bytes of `f` as it stands in the page (script-escaped JSON). */
  const pageBytes = (f: unknown) =>
    new TextEncoder().encode(escapeJsonForScript(JSON.stringify(f))).byteLength;

  it("writes each flag compactly and reads it back", () => {
    const payload = encodeBootstrap({ ...simple, flags });
    expect(payload.f).toEqual([
      {
        k: "new_checkout",
        e: 1,
        v: "on",
        x: { color: "green", max: 5, rate: 0.5, express: true, layout: { columns: [1, 2] } },
      },
      { k: "dark_mode" },
      { k: "legacy", v: "off", x: { limit: 7 } },
    ]);
    expect(decodeBootstrap(payload)).toEqual({ ...simple, flags });
    // A datafile without flags writes no `f` at all.
    expect(Object.keys(encodeBootstrap(simple))).not.toContain("f");
  });

  it.each(["</script><script>alert(1)</script>", "<!--<script>", "\u2028\u2029 & <b>"])(
    "a variable value or flag key %j stays data in one script element",
    async (value) => {
      const hostile: FlagState[] = [
        {
          flagKey: value,
          enabled: true,
          variationKey: value,
          variables: { [value]: { [value]: value } },
        },
      ];
      const html = renderBootstrap({ ...simple, flags: hostile }, { clientScript: false });
      const page = await parse(html);
      expect(page.scripts).toHaveLength(1);
      expect(decodeBootstrap(payloadOf(page.scripts[0]!.text))?.flags).toEqual(hostile);
      expect(html.slice(html.indexOf(">") + 1, html.lastIndexOf("</script>"))).not.toMatch(/[<>&]/);
    },
  );

  it("under the cap everything is in; over it the states stay and variables fill in, in order", () => {
    expect(encodeFlags(flags)).toHaveLength(3);
    const big = "x".repeat(FLAGS_BOOTSTRAP_MAX_BYTES);
    const over: FlagState[] = [
      { flagKey: "small_first", enabled: true, variationKey: "on", variables: { a: 1 } },
      { flagKey: "huge", enabled: true, variationKey: "on", variables: { blob: big } },
      { flagKey: "small_last", enabled: false, variationKey: "off", variables: { b: "two" } },
    ];
    const f = encodeFlags(over);
    expect(f).toEqual([
      { k: "small_first", e: 1, v: "on", x: { a: 1 } },
      { k: "huge", e: 1, v: "on", o: 1 },
      { k: "small_last", v: "off", x: { b: "two" } },
    ]);
    expect(pageBytes(f)).toBeLessThanOrEqual(FLAGS_BOOTSTRAP_MAX_BYTES);
    // `o` reads back as "variables left out": null, not {}.
    const decoded = decodeBootstrap({ ...encodeBootstrap(simple), f });
    expect(decoded?.flags?.map((x) => x.variables)).toEqual([{ a: 1 }, null, { b: "two" }]);
    // GET /_ss/decide has no cap.
    expect(encodeFlags(over, Infinity)[1]).toEqual({ k: "huge", e: 1, v: "on", x: { blob: big } });
  });

  it("the escaped size counts: a value of '<' characters takes six bytes each in the page", () => {
    const lt: FlagState[] = [
      { flagKey: "lt", enabled: true, variationKey: "on", variables: { s: "<".repeat(1000) } },
    ];
    // 1000 characters of JSON, but 6000 bytes once escaped for the script: over the cap.
    expect(encodeFlags(lt)).toEqual([{ k: "lt", e: 1, v: "on", o: 1 }]);
  });

  it("with too many flags for even their states, disabled ones are left out first, then the last", () => {
    const many: FlagState[] = Array.from({ length: 300 }, (_, i) => ({
      flagKey: `flag_number_${String(i).padStart(3, "0")}`,
      enabled: i % 3 === 0,
      variationKey: i % 3 === 0 ? "on" : "off",
      variables: {},
    }));
    const f = encodeFlags(many);
    expect(pageBytes(f)).toBeLessThanOrEqual(FLAGS_BOOTSTRAP_MAX_BYTES);
    const enabled = many.filter((x) => x.enabled).map((x) => x.flagKey);
    const kept = f.map((x) => x.k);
    // Every enabled flag fits once the disabled ones are gone; the disabled kept are the first.
    expect(kept.filter((k) => enabled.includes(k))).toEqual(enabled);
    const disabledKept = kept.filter((k) => !enabled.includes(k));
    expect(disabledKept).toEqual(
      many
        .filter((x) => !x.enabled)
        .slice(0, disabledKept.length)
        .map((x) => x.flagKey),
    );
    // Datafile order is kept.
    expect([...kept].sort()).toEqual(kept);
    // Far too many enabled ones: the first ones stay.
    const allOn = many.map((x) => ({ ...x, enabled: true, variationKey: "on" }));
    const cut = encodeFlags(allOn);
    expect(pageBytes(cut)).toBeLessThanOrEqual(FLAGS_BOOTSTRAP_MAX_BYTES);
    expect(cut.length).toBeGreaterThan(50);
    expect(cut.map((x) => x.k)).toEqual(allOn.slice(0, cut.length).map((x) => x.flagKey));
  });

  it.each<[string, unknown]>([
    ["f not an array", {}],
    ["a flag without key", [{ e: 1 }]],
    ["a non-string variation", [{ k: "a", v: 1 }]],
    ["variables not an object", [{ k: "a", x: [1] }]],
  ])("decodeBootstrap rejects %s", (_name, f) => {
    expect(decodeBootstrap({ ...encodeBootstrap(simple), f })).toBeNull();
  });
});
