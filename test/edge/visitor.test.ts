import { describe, expect, it } from "vitest";
import { parseCookies } from "../../src/edge/cookies";
import {
  decodeAttributes,
  decodeSticky,
  encodeAttributes,
  encodeSticky,
  isBot,
  isValidVisitorId,
  MAX_ATTRIBUTES_BYTES,
  MAX_STICKY_BYTES,
  newVisitorId,
  readVisitor,
} from "../../src/edge/visitor";

const CHROME =
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

function request(headers: Record<string, string> = {}, cf?: Record<string, unknown>): Request {
  return new Request("https://shop.example.com/p", { headers, ...(cf ? { cf } : {}) });
}

function visitorFor(cookie: string, headers: Record<string, string> = {}) {
  const req = request({ "user-agent": CHROME, cookie, ...headers });
  return readVisitor(req, parseCookies(req.headers.get("cookie")));
}

describe("readVisitor: id", () => {
  it.each<[string, string, string, string | null]>([
    ["ss_vid", "ss_vid=abc123", "ss_vid", "abc123"],
    ["ss_vid wins over optimizelyEndUserId", "optimizelyEndUserId=oeu1; ss_vid=v2", "ss_vid", "v2"],
    [
      "optimizelyEndUserId adopted",
      "optimizelyEndUserId=oeu1700000000000r0.123456",
      "optimizelyEndUserId",
      "oeu1700000000000r0.123456",
    ],
    [
      "invalid ss_vid falls back to optimizelyEndUserId",
      "ss_vid=a<b; optimizelyEndUserId=o1",
      "optimizelyEndUserId",
      "o1",
    ],
    ["id characters ._~:@+- allowed", "ss_vid=user.1_2~3:4@x+y-z", "ss_vid", "user.1_2~3:4@x+y-z"],
    ["128 characters is fine", `ss_vid=${"a".repeat(128)}`, "ss_vid", "a".repeat(128)],
    ["129 characters → new", `ss_vid=${"a".repeat(129)}`, "new", null],
    ["script injection → new", "ss_vid=%3Cscript%3E", "new", null],
    ["quotes/spaces → new", 'ss_vid="a b"', "new", null],
    ["non-ASCII → new", "ss_vid=%C3%BC", "new", null],
    ['"undefined" → new', "ss_vid=undefined", "new", null],
    ["empty → new", "ss_vid=", "new", null],
    ["both invalid → new", "ss_vid=<x>; optimizelyEndUserId=%00", "new", null],
    ["no cookies → new", "", "new", null],
  ])("%s", (_name, cookie, source, id) => {
    const visitor = visitorFor(cookie);
    expect(visitor.idSource).toBe(source);
    expect(visitor.isNew).toBe(source === "new");
    if (id !== null) expect(visitor.id).toBe(id);
    else expect(visitor.id).toMatch(/^[0-9a-f]{32}$/);
  });

  it("makes distinct, valid new ids", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => newVisitorId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(isValidVisitorId(id)).toBe(true);
  });
});

describe("readVisitor: flags and cookies", () => {
  it("reads a returning visitor completely", () => {
    const attrs = encodeAttributes({ plan: "pro", visits: 3 });
    const visitor = visitorFor(
      `ss_vid=v1; ss_dec=e1.v1~e2.v2; ss_attrs=${attrs}; ss_optout=1; ss_preview=tok.en`,
      { "sec-gpc": "1" },
    );
    expect(visitor).toEqual({
      id: "v1",
      isNew: false,
      idSource: "ss_vid",
      sticky: { e1: "v1", e2: "v2" },
      attributes: { plan: "pro", visits: 3 },
      optedOut: true,
      gpc: true,
      bot: false,
      previewToken: "tok.en",
    });
  });

  it.each<[string, string, Record<string, string>, boolean, boolean]>([
    ["nothing", "", {}, false, false],
    ["ss_optout=1", "ss_optout=1", {}, true, false],
    ["ss_optout=0", "ss_optout=0", {}, false, false],
    ["ss_optout=true is not 1", "ss_optout=true", {}, false, false],
    ["Sec-GPC: 1", "", { "sec-gpc": "1" }, false, true],
    ["Sec-GPC: 1 with spaces", "", { "sec-gpc": " 1 " }, false, true],
    ["Sec-GPC: 0", "", { "sec-gpc": "0" }, false, false],
  ])("opt-out / GPC: %s", (_name, cookie, headers, optedOut, gpc) => {
    const visitor = visitorFor(cookie, headers);
    expect(visitor.optedOut).toBe(optedOut);
    expect(visitor.gpc).toBe(gpc);
  });

  it("has no preview token without the cookie, or with an empty one", () => {
    expect(visitorFor("").previewToken).toBeNull();
    expect(visitorFor("ss_preview=").previewToken).toBeNull();
  });

  it("survives garbage in every cookie", () => {
    const visitor = visitorFor("ss_vid=%; ss_dec=%%%; ss_attrs=!!!; ss_optout=%zz; ss_preview=%");
    expect(visitor.idSource).toBe("new");
    expect(visitor.sticky).toEqual({});
    expect(visitor.attributes).toEqual({});
    expect(visitor.optedOut).toBe(false);
  });
});

describe("sticky decisions (ss_dec)", () => {
  it.each<[string, Record<string, string>, string]>([
    ["empty", {}, ""],
    ["one", { e1: "v1" }, "e1.v1"],
    ["Optimizely numeric ids", { "1886780721": "1886780722" }, "1886780721.1886780722"],
    ["several, in order", { exp_a: "var-1", exp_b: "var-2" }, "exp_a.var-1~exp_b.var-2"],
    ["hostile experiment id skipped", { "e;1": "v", "e~2": "v", "e.3": "v", ok: "v" }, "ok.v"],
    ["hostile variation id skipped", { a: "v 1", b: "v=2", c: "", d: "ü", ok: "v" }, "ok.v"],
    ["overlong id skipped", { ["e".repeat(65)]: "v", ok: "v".repeat(64) }, `ok.${"v".repeat(64)}`],
  ])("encodes %s", (_name, map, expected) => {
    expect(encodeSticky(map)).toBe(expected);
    // cookie-safe: nothing that needs escaping
    expect(expected).toMatch(/^[A-Za-z0-9_.~-]*$/);
  });

  it("skips a __proto__ experiment id and non-string values", () => {
    const map = JSON.parse('{"__proto__":"v1","e1":"v1"}') as Record<string, string>;
    (map as Record<string, unknown>).e2 = 42;
    expect(encodeSticky(map)).toBe("e1.v1");
  });

  it.each<[string, string | undefined, Record<string, string>]>([
    ["undefined", undefined, {}],
    ["empty", "", {}],
    ["garbage", "%%%;;", {}],
    ["one", "e1.v1", { e1: "v1" }],
    ["several", "e1.v1~e2.v2", { e1: "v1", e2: "v2" }],
    ["bad entries skipped", "e1.v1~junk~.v~e.~a.b.c~e 2.v~e3.v3", { e1: "v1", e3: "v3" }],
    ["first entry for an experiment wins", "e1.v1~e1.v2", { e1: "v1" }],
    ["__proto__ ignored", "__proto__.v1~e1.v1", { e1: "v1" }],
    ["too long → nothing", "e1.v1~".repeat(2000), {}],
  ])("decodes %s", (_name, value, expected) => {
    const decoded = decodeSticky(value);
    expect(decoded).toEqual(expected);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
  });

  it("round-trips", () => {
    const map: Record<string, string> = {};
    for (let i = 0; i < 50; i++) map[`exp_${i}`] = `var_${i % 3}`;
    expect(decodeSticky(encodeSticky(map))).toEqual(map);
  });

  function bigMap(count: number, prefix = "x"): Record<string, string> {
    const map: Record<string, string> = {};
    for (let i = 0; i < count; i++)
      map[`${prefix}${String(i).padStart(20, "0")}`] = `v${"0".repeat(20)}`;
    return map;
  }

  it(`stays within ${MAX_STICKY_BYTES} bytes, dropping the oldest first`, () => {
    const map = bigMap(200); // 200 × (21 + 1 + 21 + 1) = 8.8 KB
    const encoded = encodeSticky(map);
    expect(encoded.length).toBeLessThanOrEqual(MAX_STICKY_BYTES);
    expect(encoded.length).toBeGreaterThan(MAX_STICKY_BYTES - 50);
    const kept = Object.keys(decodeSticky(encoded));
    const all = Object.keys(map);
    expect(kept).toEqual(all.slice(all.length - kept.length)); // the newest survive, in order
  });

  it("drops experiments outside keepIds before any kept one", () => {
    const map = bigMap(200);
    const all = Object.keys(map);
    // the running experiments are the 10 oldest ones and two in the middle
    const keep = new Set([...all.slice(0, 10), all[100]!, all[101]!]);
    const decoded = decodeSticky(encodeSticky(map, keep));
    for (const id of keep) expect(decoded[id]).toBe(map[id]);
    expect(Object.keys(decoded).length).toBeGreaterThan(keep.size);
    // the dropped ones are the oldest of the others
    const others = Object.keys(decoded).filter((id) => !keep.has(id));
    expect(others).toEqual(all.filter((id) => !keep.has(id)).slice(-others.length));
  });

  it("drops the oldest kept experiments when the kept ones alone are too many", () => {
    const map = bigMap(200);
    const keep = new Set(Object.keys(map));
    const encoded = encodeSticky(map, keep);
    expect(encoded.length).toBeLessThanOrEqual(MAX_STICKY_BYTES);
    const kept = Object.keys(decodeSticky(encoded));
    expect(kept.at(-1)).toBe(Object.keys(map).at(-1));
    expect(kept[0]).not.toBe(Object.keys(map)[0]);
  });

  it("is exactly at the limit when it fits exactly", () => {
    // as many 45-character entries as fit: nothing may be dropped
    const map: Record<string, string> = {};
    let length = -1;
    let i = 0;
    while (length + 1 + 45 <= MAX_STICKY_BYTES) {
      const id = `e${String(i++).padStart(21, "0")}`;
      map[id] = `v${"0".repeat(21)}`;
      length += 45 + 1;
    }
    const encoded = encodeSticky(map);
    expect(encoded.length).toBe(length);
    expect(Object.keys(decodeSticky(encoded))).toHaveLength(i);
  });
});

describe("custom attributes (ss_attrs)", () => {
  it.each<[string, Record<string, string | number | boolean>]>([
    ["empty", {}],
    ["primitives", { plan: "pro", visits: 3, ratio: 0.25, vip: true, trial: false, neg: -1 }],
    ["unicode", { name: "Jürgen 😀", ключ: "значение" }],
    ["tricky strings", { a: "</script><script>alert(1)</script>", b: '"quoted"', c: "a;b,c d" }],
    ["empty string value", { a: "" }],
    ["$opt_bucketing_id allowed", { $opt_bucketing_id: "user-42" }],
  ])("round-trips %s", (_name, attrs) => {
    const encoded = encodeAttributes(attrs);
    expect(encoded).toMatch(/^[A-Za-z0-9_-]*$/);
    expect(decodeAttributes(encoded)).toEqual(attrs);
  });

  it("encodes {} as the empty string", () => {
    expect(encodeAttributes({})).toBe("");
  });

  it.each([
    "geo.country",
    "geo.city",
    "device.type",
    "browser.name",
    "os.name",
    "language",
    "referrer",
    "url",
    "path",
    "query.debug",
    "cookie.session",
    "header.x-forwarded-for",
    "utm.source",
    "visitor.new",
    "time.hour",
  ])("refuses the request attribute name %s, whether encoded or forged", (name) => {
    expect(decodeAttributes(encodeAttributes({ [name]: "spoof", ok: 1 }))).toEqual({ ok: 1 });
    const forged = btoa(JSON.stringify({ [name]: "spoof", ok: 1 })).replace(/=+$/, "");
    expect(decodeAttributes(forged)).toEqual({ ok: 1 });
  });

  it("keeps only primitive values and sane keys from a forged cookie", () => {
    const forged = {
      s: "x",
      n: 1,
      b: true,
      nul: null,
      obj: { a: 1 },
      arr: [1],
      ["k".repeat(65)]: "too long",
      ["k".repeat(64)]: "ok",
      "": "empty key",
      hasOwnProperty: "breaks objects",
    };
    const json = JSON.stringify(forged).replace("{", '{"__proto__":{"polluted":true},');
    const value = btoa(json).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const decoded = decodeAttributes(value);
    expect(decoded).toEqual({ s: "x", n: 1, b: true, ["k".repeat(64)]: "ok" });
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("drops non-finite numbers and non-primitives when encoding", () => {
    const attrs = { a: NaN, b: Infinity, c: 1, d: { x: 1 } } as unknown as Record<string, number>;
    expect(decodeAttributes(encodeAttributes(attrs))).toEqual({ c: 1 });
  });

  it.each([
    ["not base64", "!!!"],
    ["bad length", "a"],
    ["not JSON", btoa("nope").replace(/=+$/, "")],
    ["an array", btoa("[1,2]").replace(/=+$/, "")],
    ["a string", btoa('"x"').replace(/=+$/, "")],
    ["null", btoa("null").replace(/=+$/, "")],
    ["invalid UTF-8", "_-8"],
    ["too long", "A".repeat(MAX_ATTRIBUTES_BYTES * 2 + 4)],
  ])("decodes %s to {}", (_name, value) => {
    expect(decodeAttributes(value)).toEqual({});
  });

  it(`stays within ${MAX_ATTRIBUTES_BYTES} characters, dropping the oldest entries`, () => {
    const attrs: Record<string, string> = {};
    for (let i = 0; i < 100; i++) attrs[`attr_${String(i).padStart(3, "0")}`] = "x".repeat(20);
    const encoded = encodeAttributes(attrs);
    expect(encoded.length).toBeLessThanOrEqual(MAX_ATTRIBUTES_BYTES);
    expect(encoded.length).toBeGreaterThan(MAX_ATTRIBUTES_BYTES - 60);
    const keys = Object.keys(decodeAttributes(encoded));
    expect(keys.at(-1)).toBe("attr_099");
    expect(keys[0]).not.toBe("attr_000");
  });

  it("drops a single value that can never fit", () => {
    expect(encodeAttributes({ huge: "x".repeat(5000) })).toBe("");
    expect(decodeAttributes(encodeAttributes({ huge: "x".repeat(5000), ok: true }))).toEqual({
      ok: true,
    });
  });
});

describe("isBot", () => {
  it.each<[string, Record<string, string>, Record<string, unknown> | undefined, boolean]>([
    ["a browser", { "user-agent": CHROME }, undefined, false],
    ["Googlebot", { "user-agent": GOOGLEBOT }, undefined, true],
    [
      "HeadlessChrome",
      { "user-agent": "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36" },
      undefined,
      true,
    ],
    [
      "Slack preview",
      { "user-agent": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)" },
      undefined,
      true,
    ],
    ["no user agent", {}, undefined, false],
    ["curl", { "user-agent": "curl/8.4.0" }, undefined, false],
    ["Node fetch", { "user-agent": "node" }, undefined, false],
    [
      "bot score 1",
      { "user-agent": CHROME },
      { botManagement: { score: 1, verifiedBot: false } },
      true,
    ],
    [
      "bot score 29",
      { "user-agent": CHROME },
      { botManagement: { score: 29, verifiedBot: false } },
      true,
    ],
    [
      "bot score 30",
      { "user-agent": CHROME },
      { botManagement: { score: 30, verifiedBot: false } },
      false,
    ],
    [
      "bot score 99",
      { "user-agent": CHROME },
      { botManagement: { score: 99, verifiedBot: false } },
      false,
    ],
    ["bot score 0 (not scored)", { "user-agent": CHROME }, { botManagement: { score: 0 } }, false],
    [
      "verified bot",
      { "user-agent": CHROME },
      { botManagement: { score: 90, verifiedBot: true } },
      true,
    ],
    ["cf without botManagement", { "user-agent": CHROME }, { country: "DE" }, false],
    ["malformed botManagement", { "user-agent": CHROME }, { botManagement: "yes" }, false],
    ["score as string ignored", { "user-agent": CHROME }, { botManagement: { score: "5" } }, false],
    [
      "Googlebot with a human score",
      { "user-agent": GOOGLEBOT },
      { botManagement: { score: 99 } },
      true,
    ],
  ])("%s → %s", (_name, headers, cf, expected) => {
    expect(isBot(request(headers, cf))).toBe(expected);
  });

  it("is what readVisitor reports", () => {
    expect(visitorFor("", { "user-agent": GOOGLEBOT }).bot).toBe(true);
    expect(visitorFor("").bot).toBe(false);
  });
});
