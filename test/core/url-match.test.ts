import { describe, expect, it } from "vitest";
import { compileUrlConditions, normalizeSimpleUrl } from "../../src/core/url-match";

const simple = (value: string) => ({ match: "simple", value });
const exact = (value: string) => ({ match: "exact", value });
const substring = (value: string) => ({ match: "substring", value });
const regex = (value: string) => ({ match: "regex", value });

describe("normalizeSimpleUrl", () => {
  it.each([
    ["https://example.com/", "example.com"],
    ["http://example.com", "example.com"],
    ["https://www.example.com/shop/", "example.com/shop"],
    ["HTTPS://WWW.Example.COM/Shop", "example.com/shop"],
    ["https://example.com/p?x=1#top", "example.com/p"],
    ["https://example.com/p#a?b", "example.com/p"],
    ["https://example.com/?x=1", "example.com"],
    ["https://user:pw@www.example.com/p", "example.com/p"],
    ["https://example.com:443/p", "example.com/p"],
    ["http://example.com:80/p", "example.com/p"],
    ["http://example.com:8080/p", "example.com:8080/p"],
    ["//cdn.example.com/x", "cdn.example.com/x"],
    ["example.com/p/", "example.com/p"],
    ["www.example.com", "example.com"],
    ["wwwexample.com/", "wwwexample.com"],
    ["https://shop.www.example.com/", "shop.www.example.com"],
    ["https://example.com/a//", "example.com/a/"],
    ["  https://example.com/p  ", "example.com/p"],
    ["https://WWW.Example.com/", "example.com"],
    ["https://example.com:80", "example.com"],
    ["https://example.com:8443/", "example.com:8443"],
    ["https://a@b@www.example.com/p", "example.com/p"],
    ["https://example.com/p@q", "example.com/p@q"],
    ["https://example.com?x=/y", "example.com"],
    ["https:///x", "/x"],
    ["/just/a/path/", "/just/a/path"],
    ["?q", ""],
    ["", ""],
    ["not a url", "not a url"],
  ])("%j -> %j", (url, expected) => {
    expect(normalizeSimpleUrl(url)).toBe(expected);
  });

  it("agrees with a URL-parser reference on canonical URLs", () => {
    const reference = (href: string): string => {
      const u = new URL(href);
      const host = u.host
        .toLowerCase()
        .replace(/^www\./, "")
        .replace(/:(80|443)$/, "");
      const path = u.pathname.toLowerCase().replace(/\/$/, "");
      return host + path;
    };
    const hosts = [
      "example.com",
      "www.example.com",
      "WWW.Shop.Example.com",
      "localhost:8787",
      "[::1]:8080",
      "xn--bcher-kva.example",
      "127.0.0.1",
    ];
    const paths = ["", "/", "/p", "/p/", "/A/B/", "/caf%C3%A9", "/a/b.html", "/@user", "/x;y=1"];
    const tails = ["", "?q=1", "?q=/a/", "#h", "?a#b/", "#"];
    let checked = 0;
    for (const scheme of ["https", "http"]) {
      for (const host of hosts) {
        for (const path of paths) {
          for (const tail of tails) {
            const href = new URL(`${scheme}://${host}${path}${tail}`).href;
            expect(normalizeSimpleUrl(href), href).toBe(reference(href));
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
  });
});

describe("compileUrlConditions", () => {
  const table: Array<[string, unknown, string, boolean]> = [
    // simple
    ["simple: same URL", simple("https://shop.example.com/p"), "https://shop.example.com/p", true],
    [
      "simple: ignores scheme",
      simple("http://shop.example.com/p"),
      "https://shop.example.com/p",
      true,
    ],
    [
      "simple: value without scheme",
      simple("shop.example.com/p"),
      "https://shop.example.com/p",
      true,
    ],
    ["simple: ignores www in the URL", simple("example.com/p"), "https://www.example.com/p", true],
    [
      "simple: ignores www in the value",
      simple("www.example.com/p"),
      "https://example.com/p",
      true,
    ],
    ["simple: ignores query", simple("example.com/p"), "https://example.com/p?utm_source=x", true],
    [
      "simple: ignores the value's query",
      simple("example.com/p?a=1"),
      "https://example.com/p?b=2",
      true,
    ],
    ["simple: ignores hash", simple("example.com/p"), "https://example.com/p#reviews", true],
    [
      "simple: ignores trailing slash in the URL",
      simple("example.com/p"),
      "https://example.com/p/",
      true,
    ],
    [
      "simple: ignores trailing slash in the value",
      simple("example.com/p/"),
      "https://example.com/p",
      true,
    ],
    ["simple: home page", simple("https://example.com"), "https://example.com/", true],
    ["simple: case-insensitive", simple("EXAMPLE.com/Shop"), "https://example.com/SHOP", true],
    ["simple: different path", simple("example.com/p"), "https://example.com/q", false],
    ["simple: not a prefix match", simple("example.com/p"), "https://example.com/p/1", false],
    ["simple: other subdomain", simple("example.com/p"), "https://shop.example.com/p", false],
    ["simple: port matters", simple("example.com:8080/p"), "https://example.com/p", false],
    ["simple: same port", simple("example.com:8080/p"), "http://example.com:8080/p", true],
    [
      "simple: default port in the value",
      simple("https://example.com:443/p"),
      "https://example.com/p",
      true,
    ],
    [
      "simple: IDN value vs punycode request URL",
      simple("bücher.example/p"),
      "https://xn--bcher-kva.example/p",
      true,
    ],
    [
      "simple: unencoded path value vs encoded request URL",
      simple("example.com/café au lait"),
      "https://example.com/caf%C3%A9%20au%20lait",
      true,
    ],
    [
      "simple: dot segments in the value",
      simple("example.com/a/../p"),
      "https://example.com/p",
      true,
    ],
    [
      "simple: user info in the value",
      simple("https://me@example.com/p"),
      "https://example.com/p",
      true,
    ],
    // exact
    ["exact: same URL", exact("https://example.com/p?x=1"), "https://example.com/p?x=1", true],
    [
      "exact: case-insensitive",
      exact("https://EXAMPLE.com/P?X=1"),
      "https://example.com/p?x=1",
      true,
    ],
    ["exact: query matters", exact("https://example.com/p"), "https://example.com/p?x=1", false],
    ["exact: scheme matters", exact("http://example.com/p"), "https://example.com/p", false],
    ["exact: www matters", exact("https://www.example.com/p"), "https://example.com/p", false],
    [
      "exact: trailing slash matters",
      exact("https://example.com/p/"),
      "https://example.com/p",
      false,
    ],
    [
      "exact: origin-only value gets the root slash",
      exact("https://example.com"),
      "https://example.com/",
      true,
    ],
    ["exact: hash matters", exact("https://example.com/p#a"), "https://example.com/p", false],
    ["exact: not a URL, compared as text", exact("foo"), "foo", true],
    // substring
    ["substring: in the path", substring("/products/"), "https://example.com/products/42", true],
    [
      "substring: in the query",
      substring("utm_source=news"),
      "https://example.com/?utm_source=news",
      true,
    ],
    ["substring: case-insensitive", substring("PRODUCTS"), "https://example.com/products", true],
    ["substring: absent", substring("/cart"), "https://example.com/products", false],
    ["substring: empty value matches everything", substring(""), "https://example.com/", true],
    // regex
    [
      "regex: matches",
      regex("^https://shop\\.example\\.com/p/\\d+$"),
      "https://shop.example.com/p/42",
      true,
    ],
    [
      "regex: anchored mismatch",
      regex("^https://shop\\.example\\.com/p/\\d+$"),
      "https://shop.example.com/p/x",
      false,
    ],
    ["regex: case-sensitive", regex("/Products"), "https://example.com/products", false],
    ["regex: inline group", regex("/(cart|checkout)"), "https://example.com/checkout?step=2", true],
    ["regex: repeated calls keep no state", regex("p"), "https://example.com/p", true],
    ["regex: invalid is unknown", regex("(unclosed"), "https://example.com/", false],
    [
      "regex: invalid stays unknown under not",
      ["not", regex("(unclosed")],
      "https://example.com/",
      false,
    ],
    // trees
    ["or", ["or", simple("example.com/a"), simple("example.com/b")], "https://example.com/b", true],
    [
      "and",
      ["and", substring("example.com"), ["not", substring("/admin")]],
      "https://example.com/admin/x",
      false,
    ],
    [
      "and: passes",
      ["and", substring("example.com"), ["not", substring("/admin")]],
      "https://example.com/shop",
      true,
    ],
    ["not", ["not", simple("example.com/a")], "https://example.com/b", true],
    [
      "implicit or without operator",
      [simple("example.com/a"), simple("example.com/b")],
      "https://example.com/a",
      true,
    ],
    ["single leaf in an array", [simple("example.com/a")], "https://example.com/a", true],
    [
      "contract example",
      ["or", simple("https://shop.example.com/p"), regex("^https://shop\\.example\\.com/p/\\d+$")],
      "https://shop.example.com/p/7",
      true,
    ],
    ["bare leaf", simple("example.com"), "https://example.com/", true],
    [
      "unknown leaf or true",
      ["or", { match: "glob", value: "*" }, simple("example.com")],
      "https://example.com/",
      true,
    ],
    // malformed
    ["empty array matches nothing", [], "https://example.com/", false],
    ["absent conditions match nothing", undefined, "https://example.com/", false],
    ["null conditions match nothing", null, "https://example.com/", false],
    ["unknown match", { match: "glob", value: "*" }, "https://example.com/", false],
    ["value not a string", { match: "substring", value: 1 }, "https://example.com/1", false],
    ["leaf not an object", "example.com", "https://example.com/", false],
    ["match missing", { value: "example.com" }, "https://example.com/", false],
    ["not of empty", ["not"], "https://example.com/", false],
  ];

  it.each(table)("%s", (_name, conditions, url, expected) => {
    expect(compileUrlConditions(conditions)(url)).toBe(expected);
  });

  it("gives the same answers however many matchers share a URL, in any order", () => {
    const matchers = table.map(([, conditions]) => compileUrlConditions(conditions));
    for (let round = 0; round < 2; round++) {
      table.forEach(([, , url, expected], i) => {
        expect(matchers[i]!(url)).toBe(expected);
        // Interleave another URL so the shared cache is replaced between calls.
        matchers[i]!("https://other.example/");
      });
    }
  });

  it("never throws", () => {
    const cyclic: unknown[] = ["or"];
    cyclic.push(cyclic);
    expect(compileUrlConditions(cyclic)("https://example.com/")).toBe(false);
    const match = compileUrlConditions(simple("example.com"));
    expect(match(undefined as unknown as string)).toBe(false);
    expect(match(42 as unknown as string)).toBe(false);
    expect(match("::::")).toBe(false);
  });
});
