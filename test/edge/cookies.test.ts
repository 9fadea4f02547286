import { describe, expect, it } from "vitest";
import {
  decodeBase64Url,
  deleteCookie,
  encodeBase64Url,
  encodeCookieValue,
  MAX_COOKIE_AGE_SECONDS,
  MAX_COOKIES,
  parseCookies,
  serializeCookie,
} from "../../src/edge/cookies";

const plain = { secure: false, httpOnly: false } as const;

describe("parseCookies", () => {
  it.each<[string, string | null, Record<string, string>]>([
    ["null header", null, {}],
    ["empty header", "", {}],
    ["one cookie", "a=1", { a: "1" }],
    ["several, with spaces", "a=1; b=2;c=3 ;  d = 4 ", { a: "1", b: "2", c: "3", d: "4" }],
    ["first occurrence wins", "a=1; a=2; b=x; b=y", { a: "1", b: "x" }],
    ["empty value", "a=; b=2", { a: "", b: "2" }],
    ["value containing =", "t=a=b=c", { t: "a=b=c" }],
    ["double-quoted value", 'q="hello"; r=""', { q: "hello", r: "" }],
    ["lone quote kept", 'q="abc', { q: '"abc' }],
    ["percent-decoded", "n=J%C3%BCrgen%20M; e=a%3Bb", { n: "Jürgen M", e: "a;b" }],
    [
      "bad % sequence kept raw",
      "x=%E0%A4%A; y=100%; z=%zz",
      { x: "%E0%A4%A", y: "100%", z: "%zz" },
    ],
    ["plus is not a space", "p=a+b", { p: "a+b" }],
    ["pair without = ignored", "junk; a=1; ;; =2; b=2", { a: "1", b: "2" }],
    ["empty name ignored", "=v; a=1", { a: "1" }],
    ["name with inner space ignored", "a b=1; c=2", { c: "2" }],
    ["trailing semicolon", "a=1;", { a: "1" }],
    ["case-sensitive names", "A=1; a=2", { A: "1", a: "2" }],
    [
      "ss cookies",
      "ss_vid=abc123; ss_dec=e1.v1~e2.v2",
      { ss_vid: "abc123", ss_dec: "e1.v1~e2.v2" },
    ],
    ["utf-8 raw", "u=ü€", { u: "ü€" }],
  ])("%s", (_name, header, expected) => {
    expect(Object.fromEntries(parseCookies(header))).toEqual(expected);
  });

  it("treats __proto__ as an ordinary name", () => {
    const cookies = parseCookies("__proto__=x; constructor=y");
    expect(cookies.get("__proto__")).toBe("x");
    expect(cookies.get("constructor")).toBe("y");
  });

  it("never throws on arbitrary input", () => {
    for (const header of ["%", "=", ";", "a=%", "a=%%%", "a=\u0000", '"', "a=\ud800", "=;=;="]) {
      expect(() => parseCookies(header)).not.toThrow();
    }
  });

  it(`reads at most ${MAX_COOKIES} cookies`, () => {
    const header = Array.from({ length: MAX_COOKIES + 50 }, (_, i) => `c${i}=${i}`).join("; ");
    const cookies = parseCookies(header);
    expect(cookies.size).toBe(MAX_COOKIES);
    expect(cookies.get("c0")).toBe("0");
    expect(cookies.has(`c${MAX_COOKIES}`)).toBe(false);
  });

  it("ignores an oversized pair but keeps the others", () => {
    const cookies = parseCookies(`big=${"x".repeat(10000)}; a=1`);
    expect(cookies.has("big")).toBe(false);
    expect(cookies.get("a")).toBe("1");
  });
});

describe("serializeCookie", () => {
  it.each<[string, Parameters<typeof serializeCookie>[2], string]>([
    ["minimal", plain, "n=v; Path=/; SameSite=Lax"],
    ["secure", { secure: true, httpOnly: false }, "n=v; Path=/; Secure; SameSite=Lax"],
    ["httpOnly", { secure: false, httpOnly: true }, "n=v; Path=/; HttpOnly; SameSite=Lax"],
    ["max-age", { ...plain, maxAgeSeconds: 3600 }, "n=v; Max-Age=3600; Path=/; SameSite=Lax"],
    ["max-age floored", { ...plain, maxAgeSeconds: 59.9 }, "n=v; Max-Age=59; Path=/; SameSite=Lax"],
    [
      "negative max-age → 0",
      { ...plain, maxAgeSeconds: -5 },
      "n=v; Max-Age=0; Path=/; SameSite=Lax",
    ],
    [
      "max-age clamped to 400 days",
      { ...plain, maxAgeSeconds: 10 * 365 * 86400 },
      `n=v; Max-Age=${MAX_COOKIE_AGE_SECONDS}; Path=/; SameSite=Lax`,
    ],
    [
      "infinite max-age clamped",
      { ...plain, maxAgeSeconds: Infinity },
      `n=v; Max-Age=${MAX_COOKIE_AGE_SECONDS}; Path=/; SameSite=Lax`,
    ],
    ["NaN max-age → 0", { ...plain, maxAgeSeconds: NaN }, "n=v; Max-Age=0; Path=/; SameSite=Lax"],
    [
      "domain",
      { ...plain, domain: "example.com" },
      "n=v; Domain=example.com; Path=/; SameSite=Lax",
    ],
    ["null domain", { ...plain, domain: null }, "n=v; Path=/; SameSite=Lax"],
    [
      "everything",
      {
        maxAgeSeconds: 31536000,
        domain: ".shop.example.com",
        secure: true,
        httpOnly: true,
        sameSite: "Lax",
        path: "/",
      },
      "n=v; Max-Age=31536000; Domain=.shop.example.com; Path=/; Secure; HttpOnly; SameSite=Lax",
    ],
  ])("%s", (_name, options, expected) => {
    expect(serializeCookie("n", "v", options)).toBe(expected);
  });

  it.each<[string, string]>([
    ["semicolon + attribute", "x; Domain=evil.com"],
    ["comma", "a,b"],
    ["CRLF header injection", "x\r\nSet-Cookie: admin=1"],
    ["spaces and tabs", " a\tb "],
    ["quotes and backslash", '"a\\b"'],
    ["control characters", "a\u0000b\u007f"],
    ["percent", "100%25"],
    ["non-ASCII", "Jürgen 😀"],
    ["lone surrogate", "a\ud800b"],
  ])("neutralises %s in the value", (_name, value) => {
    const header = serializeCookie("n", value, plain);
    const encoded = header.slice(2, header.indexOf("; Path=/"));
    // Only cookie-octets in the value, so it cannot end the value or start an attribute.
    expect(encoded).toMatch(/^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/);
    expect(header.endsWith("; Path=/; SameSite=Lax")).toBe(true);
    // And it is read back exactly (lone surrogates become U+FFFD).
    expect(parseCookies(`n=${encoded}`).get("n")).toBe(value.replace(/\ud800/, "\ufffd"));
  });

  it("leaves already-safe values untouched", () => {
    for (const value of [
      "abc123",
      "e1.v1~e2.v2",
      "eyJhIjoxfQ",
      "oeu1700000000000r0.5",
      "a:b@c+d",
    ]) {
      expect(encodeCookieValue(value)).toBe(value);
    }
  });

  it.each(["", "a b", "a;b", "a=b", "ü", "a\r\n"])("rejects the invalid name %j", (name) => {
    expect(() => serializeCookie(name, "v", plain)).toThrow(TypeError);
  });

  it.each(["example.com; Secure", "exa mple.com", "-bad.com", "a..b", "évil.com", "x\r\ny"])(
    "rejects the invalid domain %j",
    (domain) => {
      expect(() => serializeCookie("n", "v", { ...plain, domain })).toThrow(TypeError);
    },
  );
});

describe("deleteCookie", () => {
  it("expires the cookie with the same scope", () => {
    expect(
      deleteCookie("ss_preview", { secure: true, httpOnly: true, domain: "example.com" }),
    ).toBe(
      "ss_preview=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; Path=/; Secure; HttpOnly; SameSite=Lax",
    );
    expect(deleteCookie("a", plain)).toBe(
      "a=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/; SameSite=Lax",
    );
  });
});

describe("base64url", () => {
  it.each([
    [[]],
    [[0]],
    [[255, 254]],
    [[1, 2, 3]],
    [Array.from({ length: 70000 }, (_, i) => i & 255)],
  ])("round-trips %#", (values) => {
    const bytes = new Uint8Array(values);
    const text = encodeBase64Url(bytes);
    expect(text).toMatch(/^[A-Za-z0-9_-]*$/);
    expect(decodeBase64Url(text)).toEqual(bytes);
  });

  it.each(["a", "ab+c", "ab/c", "ab=c", "a b", "ü"])("refuses %j", (text) => {
    expect(decodeBase64Url(text)).toBeNull();
  });
});
