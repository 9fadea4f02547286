import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ROUTE_DEFAULTS,
  isExcludedPath,
  loadRouteTable,
  loadRoutes,
  matchRoute,
  parseRoutes,
  resetRoutesCache,
  type RouteConfig,
} from "../../src/edge/routes";

const minimal = { pattern: "shop.example.com/*", sdk_key: "prod" };

describe("parseRoutes: forms and defaults", () => {
  it("fills every default for a minimal entry", () => {
    const { routes, problems } = parseRoutes([minimal]);
    expect(problems).toEqual([]);
    expect(routes).toEqual([{ pattern: "shop.example.com/*", sdkKey: "prod", ...ROUTE_DEFAULTS }]);
    expect(routes[0]).toMatchObject({
      origin: null,
      excludePaths: [],
      cookieDomain: null,
      cookieMaxAgeDays: 365,
      botPolicy: "original",
      gpcPolicy: "respect",
      consent: null,
      serveApi: true,
      serveAdmin: true,
      exposeDecisions: true,
      corsOrigins: [],
      optimizelyShim: false,
      cacheVariants: true,
    });
  });

  const full = {
    pattern: "https://*.example.com/shop/*",
    sdk_key: "prod-web_1",
    origin: "https://origin.example.net/base/",
    origin_timeout_ms: 5000,
    exclude_paths: ["/api/*", "*.png"],
    cookie_domain: ".Example.com",
    cookie_max_age_days: 30,
    bot_policy: "decide",
    gpc_policy: "ignore",
    consent_cookie: "cookie_consent",
    serve_api: false,
    serve_admin: false,
    expose_decisions: false,
    cors_origins: ["https://app.example.com", "http://localhost:3000/"],
    optimizely_shim: true,
    cache_variants: false,
  };
  const fullExpected: RouteConfig = {
    pattern: "https://*.example.com/shop/*",
    sdkKey: "prod-web_1",
    origin: "https://origin.example.net/base",
    originTimeoutMs: 5000,
    excludePaths: ["/api/*", "*.png"],
    cookieDomain: ".example.com",
    cookieMaxAgeDays: 30,
    botPolicy: "decide",
    gpcPolicy: "ignore",
    consent: { manager: "cookie", cookie: "cookie_consent", accept: ["1", "true", "yes"] },
    serveApi: false,
    serveAdmin: false,
    exposeDecisions: false,
    corsOrigins: ["https://app.example.com", "http://localhost:3000"],
    optimizelyShim: true,
    cacheVariants: false,
  };

  it.each([
    ["TOML array of tables (parsed array)", [full]],
    ["JSON string", JSON.stringify([full])],
    ["JSON string with whitespace", `\n  ${JSON.stringify([full], null, 2)}\n`],
  ])("reads every key, snake_case → camelCase: %s", (_name, raw) => {
    const { routes, problems } = parseRoutes(raw);
    expect(problems).toEqual([]);
    expect(routes).toEqual([fullExpected]);
  });

  it.each([
    ["undefined", undefined],
    ["null", null],
    ["empty string", ""],
    ["blank string", "  "],
    ["empty array", []],
    ["empty JSON array", "[]"],
  ])("no routes and no problems for %s", (_name, raw) => {
    expect(parseRoutes(raw)).toEqual({ routes: [], problems: [] });
  });

  it("treats null values as absent (JSON users writing null for the default)", () => {
    const { routes, problems } = parseRoutes([
      { ...minimal, origin: null, cookie_max_age_days: null },
    ]);
    expect(problems).toEqual([]);
    expect(routes[0]).toMatchObject({ origin: null, cookieMaxAgeDays: 365 });
  });

  it("keeps order", () => {
    const { routes } = parseRoutes([
      { pattern: "a.example.com/*", sdk_key: "a" },
      { pattern: "b.example.com/*", sdk_key: "b" },
    ]);
    expect(routes.map((r) => r.sdkKey)).toEqual(["a", "b"]);
  });
});

describe("parseRoutes: problems", () => {
  it.each<[string, unknown, Array<{ path: string; message: RegExp }>]>([
    ["not JSON", "[{pattern:", [{ path: "$", message: /not valid JSON/ }]],
    ["a number", 3, [{ path: "$", message: /must be an array/ }]],
    ["a single table", minimal, [{ path: "$", message: /\[\[vars\.ROUTES\]\]/ }]],
    [
      "an entry that is not a table",
      ["shop.example.com/*"],
      [{ path: "$[0]", message: /table\/object/ }],
    ],
    [
      "missing required keys",
      [{}],
      [
        { path: "$[0].pattern", message: /pattern is required/ },
        { path: "$[0].sdk_key", message: /sdk_key is required/ },
      ],
    ],
    [
      "pattern not a string",
      [{ ...minimal, pattern: 5 }],
      [{ path: "$[0].pattern", message: /string/ }],
    ],
    ["empty pattern", [{ ...minimal, pattern: "" }], [{ path: "$[0].pattern", message: /empty/ }]],
    [
      "sdk_key with a slash",
      [{ ...minimal, sdk_key: "a/b" }],
      [{ path: "$[0].sdk_key", message: /letters, digits/ }],
    ],
    [
      "sdk_key too long",
      [{ ...minimal, sdk_key: "a".repeat(129) }],
      [{ path: "$[0].sdk_key", message: /1-128/ }],
    ],
    [
      "unknown key (typo)",
      [{ ...minimal, exclude: ["/api/*"] }],
      [
        {
          path: "$[0].exclude",
          message: /unknown key "exclude" \(did you mean "exclude_paths"\?\)/,
        },
      ],
    ],
    [
      "unknown key camelCase",
      [{ ...minimal, sdkKey: "x" }],
      [{ path: "$[0].sdkKey", message: /did you mean "sdk_key"/ }],
    ],
    [
      "unknown key far from all",
      [{ ...minimal, zzzzzzzzzz: 1 }],
      [
        {
          path: "$[0].zzzzzzzzzz",
          message: /^unknown key "zzzzzzzzzz"; known keys: pattern, sdk_key/,
        },
      ],
    ],
    [
      "cookie_max_age_days too big",
      [{ ...minimal, cookie_max_age_days: 401 }],
      [{ path: "$[0].cookie_max_age_days", message: /at most 400/ }],
    ],
    [
      "cookie_max_age_days zero",
      [{ ...minimal, cookie_max_age_days: 0 }],
      [{ path: "$[0].cookie_max_age_days", message: /at least 1/ }],
    ],
    [
      "cookie_max_age_days fractional",
      [{ ...minimal, cookie_max_age_days: 1.5 }],
      [{ path: "$[0].cookie_max_age_days", message: /whole number/ }],
    ],
    [
      "origin_timeout_ms too small",
      [{ ...minimal, origin_timeout_ms: 50 }],
      [{ path: "$[0].origin_timeout_ms", message: /at least 100/ }],
    ],
    [
      "origin_timeout_ms too big",
      [{ ...minimal, origin_timeout_ms: 100_001 }],
      [{ path: "$[0].origin_timeout_ms", message: /at most 100000/ }],
    ],
    [
      "origin_timeout_ms as string",
      [{ ...minimal, origin_timeout_ms: "5s" }],
      [{ path: "$[0].origin_timeout_ms", message: /number/ }],
    ],
    [
      "cookie_max_age_days as string",
      [{ ...minimal, cookie_max_age_days: "30" }],
      [{ path: "$[0].cookie_max_age_days", message: /number/ }],
    ],
    [
      "origin_timeout_ms a fraction: one problem, not also out of range",
      [{ ...minimal, origin_timeout_ms: 1.5 }],
      [{ path: "$[0].origin_timeout_ms", message: /^origin_timeout_ms must be a whole number/ }],
    ],
    [
      "origin_timeout_ms 2^53: out of range",
      [{ ...minimal, origin_timeout_ms: 2 ** 53 }],
      [{ path: "$[0].origin_timeout_ms", message: /must be at most 100000/ }],
    ],
    [
      "cookie_max_age_days infinite (TOML inf)",
      [{ ...minimal, cookie_max_age_days: Infinity }],
      [{ path: "$[0].cookie_max_age_days", message: /must be a number/ }],
    ],
    [
      "pattern a list: one problem",
      [{ ...minimal, pattern: [] }],
      [{ path: "$[0].pattern", message: /^pattern must be a string$/ }],
    ],
    [
      "exclude_paths not a list",
      [{ ...minimal, exclude_paths: "/api/*" }],
      [{ path: "$[0].exclude_paths", message: /expected array, received string/ }],
    ],
    [
      "bot_policy unknown",
      [{ ...minimal, bot_policy: "block" }],
      [{ path: "$[0].bot_policy", message: /original|decide/ }],
    ],
    [
      "gpc_policy unknown",
      [{ ...minimal, gpc_policy: "yes" }],
      [{ path: "$[0].gpc_policy", message: /respect|ignore/ }],
    ],
    [
      "serve_api as string",
      [{ ...minimal, serve_api: "false" }],
      [{ path: "$[0].serve_api", message: /true or false/ }],
    ],
    [
      "exclude_paths not an array",
      [{ ...minimal, exclude_paths: "/api/*" }],
      [{ path: "$[0].exclude_paths", message: /array/ }],
    ],
    [
      "exclude path item not a string",
      [{ ...minimal, exclude_paths: ["/a", 3] }],
      [{ path: "$[0].exclude_paths[1]", message: /string/ }],
    ],
    [
      "exclude path not rooted",
      [{ ...minimal, exclude_paths: ["api/*"] }],
      [{ path: "$[0].exclude_paths[0]", message: /start with \/ or \*/ }],
    ],
    [
      "exclude path with query",
      [{ ...minimal, exclude_paths: ["/a?b=1"] }],
      [{ path: "$[0].exclude_paths[0]", message: /path only/ }],
    ],
    [
      "origin not a URL",
      [{ ...minimal, origin: "origin.example.net" }],
      [{ path: "$[0].origin", message: /not a URL/ }],
    ],
    [
      "origin ftp",
      [{ ...minimal, origin: "ftp://origin.example.net" }],
      [{ path: "$[0].origin", message: /http/ }],
    ],
    [
      "origin with query",
      [{ ...minimal, origin: "https://o.example.net/?a=1" }],
      [{ path: "$[0].origin", message: /query/ }],
    ],
    [
      "origin with credentials",
      [{ ...minimal, origin: "https://u:p@o.example.net" }],
      [{ path: "$[0].origin", message: /credentials/ }],
    ],
    [
      "cookie_domain invalid",
      [{ ...minimal, cookie_domain: "exa mple.com" }],
      [{ path: "$[0].cookie_domain", message: /not a domain/ }],
    ],
    [
      "cookie_domain not covering the host",
      [{ ...minimal, cookie_domain: ".other.com" }],
      [{ path: "$[0].cookie_domain", message: /browsers reject/ }],
    ],
    [
      "cors origin with a path",
      [{ ...minimal, cors_origins: ["https://app.example.com/x"] }],
      [{ path: "$[0].cors_origins[0]", message: /must be an origin/ }],
    ],
    [
      "cors origin *",
      [{ ...minimal, cors_origins: ["*"] }],
      [{ path: "$[0].cors_origins[0]", message: /must be an origin/ }],
    ],
    [
      "pattern with infix wildcard",
      [{ ...minimal, pattern: "example.com/*.jpg" }],
      [{ path: "$[0].pattern", message: /only end with \*/ }],
    ],
    [
      "pattern with wildcard inside the host",
      [{ ...minimal, pattern: "shop.*.com/*" }],
      [{ path: "$[0].pattern", message: /only start with \*/ }],
    ],
    [
      "pattern with a port",
      [{ ...minimal, pattern: "localhost:8787/*" }],
      [{ path: "$[0].pattern", message: /no port/ }],
    ],
    [
      "pattern with a query",
      [{ ...minimal, pattern: "example.com/?a=*" }],
      [{ path: "$[0].pattern", message: /no query/ }],
    ],
    [
      "pattern with another scheme",
      [{ ...minimal, pattern: "ws://example.com/*" }],
      [{ path: "$[0].pattern", message: /http:\/\/ or https:\/\// }],
    ],
    [
      "pattern without host",
      [{ ...minimal, pattern: "/shop/*" }],
      [{ path: "$[0].pattern", message: /starts with a host/ }],
    ],
  ])("%s", (_name, raw, expected) => {
    const { routes, problems } = parseRoutes(raw);
    expect(routes).toEqual([]);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((e, i) => {
      expect(problems[i]!.path).toBe(e.path);
      expect(problems[i]!.message).toMatch(e.message);
      expect(problems[i]!.severity).toBe("error");
    });
  });

  it("keeps a route whose only errors are in its consent config, with nobody's consent", () => {
    // Dropping it would let the broader route after it take its requests and track them
    // without consent (docs/config.md `consent`).
    for (const consent of [
      { consent: { manager: "onetrust", category: "C0002 " } },
      { consent: { manager: "onetrust", categories: ["C0002"] } },
      { consent: { manager: "usercentrics" } },
      { consent: "onetrust" },
      { consent_cookie: "a b" },
      { consent: { manager: "cookie" } },
      { consent: { manager: "tcf" }, consent_cookie: "x" },
    ]) {
      const { routes, problems } = parseRoutes([
        { pattern: "example.com/eu/*", sdk_key: "eu", ...consent },
        { pattern: "example.com/*", sdk_key: "all" },
      ]);
      const eu = matchRoute(routes, new URL("https://example.com/eu/page"));
      expect(eu?.sdkKey, JSON.stringify(consent)).toBe("eu");
      expect(eu?.consent).toEqual({ manager: "deny-all" });
      expect(problems.length).toBeGreaterThan(0);
      for (const problem of problems) {
        expect(problem.path).toMatch(/^\$\[0\]\.consent/);
        expect(problem.severity).toBe("error");
        expect(problem.message).toMatch(/the route stays active but tracks no one/);
      }
    }
    // Other errors besides the consent config still leave the route out, as always.
    const others = parseRoutes([
      { ...minimal, origin: "not a url", consent: { manager: "onetrust", category: "C 2" } },
      { ...minimal, bots: "decide", consent: { manager: "nope" } },
    ]);
    expect(others.routes).toEqual([]);
    expect(others.problems.map((p) => p.path)).toEqual([
      "$[0].origin",
      "$[0].consent.category",
      "$[1].consent.manager",
      "$[1].bots",
    ]);
  });

  it("drops invalid entries, keeps valid ones, paths name the index", () => {
    const { routes, problems } = parseRoutes([
      { pattern: "a.example.com/*", sdk_key: "a" },
      { pattern: "b.example.com/*", sdk_key: "b", bots: "decide" },
      { pattern: "c.example.com/*", sdk_key: "c" },
    ]);
    expect(routes.map((r) => r.sdkKey)).toEqual(["a", "c"]);
    expect(problems.map((p) => p.path)).toEqual(["$[1].bots"]);
  });

  it("warns about an entry shadowed by an identical earlier pattern", () => {
    const { routes, problems } = parseRoutes([
      { pattern: "Shop.example.com/*", sdk_key: "a" },
      { pattern: "shop.example.com/*", sdk_key: "b" },
    ]);
    expect(routes).toHaveLength(2);
    expect(problems).toEqual([
      {
        path: "$[1].pattern",
        message: expect.stringMatching(/never applies/),
        severity: "warning",
      },
    ]);
  });

  it("accepts cookie domains covering the host, including wildcard hosts", () => {
    const { problems } = parseRoutes([
      { pattern: "shop.example.com/*", sdk_key: "a", cookie_domain: "example.com" },
      { pattern: "*.example.com/*", sdk_key: "b", cookie_domain: ".example.com" },
      { pattern: "*example.com/*", sdk_key: "c", cookie_domain: "example.com" },
      { pattern: "*/*", sdk_key: "d", cookie_domain: "example.com" },
    ]);
    expect(problems.filter((p) => p.severity === "error")).toEqual([]);
  });
});

describe("loadRoutes", () => {
  afterEach(() => {
    resetRoutesCache();
    vi.restoreAllMocks();
  });

  it("parses once per raw value and logs problems once, naming each path", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const raw = [minimal, { pattern: "x/*", sdk_key: "x", typo: 1 }];
    const first = loadRoutes({ ROUTES: raw });
    const second = loadRoutes({ ROUTES: raw });
    expect(second).toBe(first);
    expect(first.map((r) => r.sdkKey)).toEqual(["prod"]);
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![0])).toMatch(
      /ROUTES has 1 error.*\n.*\$\[1\]\.typo: unknown key "typo"/,
    );
  });

  it("caches by content as well as identity (a re-created array or the same JSON string)", () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const json = JSON.stringify([{ pattern: "x/*", sdk_key: "x", typo: 1 }]);
    const a = loadRouteTable({ ROUTES: json });
    const b = loadRouteTable({ ROUTES: `${json}` });
    const c = loadRouteTable({ ROUTES: JSON.parse(json) });
    const d = loadRouteTable({ ROUTES: JSON.parse(json) });
    expect(b).toBe(a);
    expect(d).toBe(c);
    expect(error).toHaveBeenCalledTimes(2); // the string and the array are parsed once each
  });

  it("reads wrangler.toml's demo route from the real env", async () => {
    const { env } = await import("cloudflare:workers");
    const routes = loadRoutes(env);
    expect(routes).toEqual([
      {
        ...ROUTE_DEFAULTS,
        pattern: "localhost/*",
        sdkKey: "demo",
        origin: "http://localhost:8788",
      },
    ]);
  });
});

describe("matchRoute", () => {
  const table = parseRoutes([
    { pattern: "shop.example.com/checkout/*", sdk_key: "checkout" },
    { pattern: "shop.example.com/*", sdk_key: "shop" },
    { pattern: "*.example.com/blog/*", sdk_key: "blog-subs" },
    { pattern: "*example.org/*", sdk_key: "org-apex-and-subs" },
    { pattern: "https://secure.example.net/*", sdk_key: "https-only" },
    { pattern: "exact.example.com/landing", sdk_key: "exact-path" },
    { pattern: "exact.example.com", sdk_key: "root-only" },
    { pattern: "prefix.example.com/shop*", sdk_key: "path-prefix" },
    { pattern: "localhost/*", sdk_key: "local" },
    { pattern: "127.0.0.1/*", sdk_key: "ipv4" },
    { pattern: "xn--bcher-kva.example/*", sdk_key: "idn" },
    { pattern: "unicode.example.com/größe/*", sdk_key: "unicode-path" },
  ]);
  expect(table.problems).toEqual([]);

  it.each<[string, string | null]>([
    ["https://shop.example.com/", "shop"],
    ["https://shop.example.com/products/1?x=1#top", "shop"],
    ["http://shop.example.com/p", "shop"],
    ["https://SHOP.Example.COM/p", "shop"],
    ["https://shop.example.com/checkout/pay", "checkout"], // first match wins
    ["https://shop.example.com/checkout", "shop"], // "/checkout/*" needs the slash
    ["https://shop.example.com:8443/p", "shop"], // ports ignored
    ["https://www.example.com/blog/post", "blog-subs"],
    ["https://a.b.example.com/blog/", "blog-subs"], // any depth
    ["https://example.com/blog/post", null], // "*." excludes the apex
    ["https://www.example.com/other", null],
    ["https://example.org/", "org-apex-and-subs"],
    ["https://www.example.org/x", "org-apex-and-subs"],
    ["https://badexample.org/x", null], // not a subdomain
    ["https://secure.example.net/x", "https-only"],
    ["http://secure.example.net/x", null],
    ["https://exact.example.com/landing", "exact-path"],
    ["https://exact.example.com/landing?utm_source=x", "exact-path"], // query ignored
    ["https://exact.example.com/landing/", null],
    ["https://exact.example.com/", "root-only"],
    ["https://exact.example.com/other", null],
    ["https://prefix.example.com/shop", "path-prefix"],
    ["https://prefix.example.com/shopping", "path-prefix"],
    ["https://prefix.example.com/Shop", null], // paths are case-sensitive
    ["http://localhost:8787/", "local"],
    ["http://localhost/x", "local"],
    ["http://127.0.0.1:8787/x", "ipv4"],
    ["https://bücher.example/x", "idn"],
    ["https://unicode.example.com/größe/x", "unicode-path"],
    ["https://shop.example.com.evil.net/", null],
    ["https://elsewhere.com/", null],
  ])("%s → %s", (href, expected) => {
    expect(matchRoute(table.routes, new URL(href))?.sdkKey ?? null).toBe(expected);
  });

  it("matches a RouteConfig built by hand (compiled on first use)", () => {
    const route: RouteConfig = {
      ...ROUTE_DEFAULTS,
      pattern: "*.shop.test/*",
      sdkKey: "hand",
      excludePaths: ["/x/*"],
    };
    expect(matchRoute([route], new URL("https://a.shop.test/y"))).toBe(route);
    expect(isExcludedPath(route, "/x/1")).toBe(true);
    expect(matchRoute([{ ...route, pattern: "bad:1/*" }], new URL("https://bad/y"))).toBeNull();
  });

  it("matches nothing without routes", () => {
    expect(matchRoute([], new URL("https://shop.example.com/"))).toBeNull();
  });

  it("any-host pattern", () => {
    const { routes } = parseRoutes([{ pattern: "*/preview/*", sdk_key: "any" }]);
    expect(matchRoute(routes, new URL("https://whatever.test/preview/a"))?.sdkKey).toBe("any");
    expect(matchRoute(routes, new URL("https://whatever.test/other"))).toBeNull();
  });
});

describe("isExcludedPath", () => {
  const [route] = parseRoutes([
    {
      ...minimal,
      exclude_paths: ["/api/*", "*.png", "/exact", "/a/*/edit", "/files/(v1)/*", "/größe/*"],
    },
  ]).routes;

  it.each<[string, boolean]>([
    ["/api/users", true],
    ["/api/", true],
    ["/api", false],
    ["/apiary", false],
    ["/img/logo.png", true],
    ["/logo.png", true],
    ["/logo.PNG", false], // case-sensitive
    ["/logo.png.html", false],
    ["/exact", true],
    ["/exact/", false],
    ["/a/1/edit", true],
    ["/a/1/2/edit", true], // * spans slashes
    ["/a/1/view", false],
    ["/files/(v1)/x", true], // regex characters are literal
    ["/files/v1/x", false],
    ["/gr%C3%B6%C3%9Fe/x", true], // matched against the percent-encoded URL path
    ["/products/1", false],
  ])("%s → %s", (path, expected) => {
    expect(isExcludedPath(route!, path)).toBe(expected);
  });

  it("no excludes → nothing excluded", () => {
    const [plain] = parseRoutes([minimal]).routes;
    expect(isExcludedPath(plain!, "/api/x")).toBe(false);
  });
});
