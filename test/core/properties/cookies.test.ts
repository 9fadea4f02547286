/**
 * Property tests of the edge's cookie handling (src/edge/cookies.ts) and the visitor cookie
 * decoders (src/edge/visitor.ts) on arbitrary input (docs/security.md "Cookies", "Input
 * validation"). Pure code, so it runs in Node with the core project.
 *
 * - parseCookies never throws on any header and only yields plausible names;
 * - serializeCookie → Cookie header → parseCookies gives the value back, whatever it holds
 *   (`;`, `,`, spaces, quotes, `%`, controls, non-ASCII; a lone surrogate becomes U+FFFD), and the
 *   Set-Cookie value can never end early, add an attribute or carry CR/LF;
 * - ss_dec / ss_attrs decoders never throw on garbage, keep only well-formed entries and never
 *   accept a reserved attribute name; encode → decode gives back what may be stored.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeBase64Url,
  deleteCookie,
  encodeBase64Url,
  MAX_COOKIE_AGE_SECONDS,
  MAX_COOKIE_PAIR_LENGTH,
  MAX_COOKIES,
  parseCookies,
  serializeCookie,
  type CookieOptions,
} from "../../../src/edge/cookies";
import {
  decodeAttributes,
  decodeSticky,
  encodeAttributes,
  encodeSticky,
  isStorableAttributeName,
  isValidVisitorId,
  MAX_ATTRIBUTES_BYTES,
  MAX_STICKY_BYTES,
  readVisitor,
  RESERVED_ATTRIBUTE_NAMES,
  RESERVED_ATTRIBUTE_PREFIXES,
} from "../../../src/edge/visitor";
import {
  SEED,
  defineOwn,
  hostileJson,
  hostileKey,
  hostileNumber,
  hostileString,
  prototypeIsClean,
  seedProperties,
  wellFormed,
} from "../../support/fast-check";

seedProperties(500);

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const cookieName = fc.string({
  unit: fc.constantFrom(...TOKEN_CHARS),
  minLength: 1,
  maxLength: 20,
});
/** RFC 6265 cookie-octets (`%` only as an escape): what a Set-Cookie value may be made of. */
const COOKIE_VALUE = /^(?:[\x21\x23-\x24\x26-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]|%[0-9A-F]{2})*$/;

/** The value a browser's Cookie header brings back for a Set-Cookie of `value`. */
function cameBack(name: string, value: string): string | undefined {
  const pair = serializeCookie(name, value, { secure: false, httpOnly: false }).split(";")[0]!;
  // Pairs over 8 KB are ignored when parsing (browsers keep at most 4 KB per cookie anyway).
  return pair.length > MAX_COOKIE_PAIR_LENGTH ? undefined : wellFormed(value);
}

/** Cookie headers: pieces of names, values, separators, quotes, `%` and garbage. */
const cookieHeader: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc
    .array(
      fc.oneof(
        fc
          .tuple(fc.oneof(cookieName, hostileKey, hostileString), hostileString)
          .map(([k, v]) => `${k}=${v}`),
        fc.constantFrom(";", "; ", "=", '"', "%", "%zz", " ", "ss_vid=", "ss_dec=", "ss_attrs="),
      ),
      { maxLength: 12 },
    )
    .map((parts) => parts.join("")),
);

const cookieOptions: fc.Arbitrary<CookieOptions> = fc.record(
  {
    maxAgeSeconds: hostileNumber,
    domain: fc.constantFrom(null, "example.com", ".shop.example.com"),
    secure: fc.boolean(),
    httpOnly: fc.boolean(),
  },
  { requiredKeys: ["secure", "httpOnly"] },
);

describe(`parseCookies (seed ${SEED})`, () => {
  it("never throws; names are non-empty without whitespace or controls; at most 256", () => {
    fc.assert(
      fc.property(fc.oneof(cookieHeader, fc.constant(null)), (header) => {
        let cookies = new Map<string, string>();
        expect(() => (cookies = parseCookies(header))).not.toThrow();
        expect(cookies.size).toBeLessThanOrEqual(MAX_COOKIES);
        for (const [name, value] of cookies) {
          expect(name).not.toBe("");
          // eslint-disable-next-line no-control-regex -- control characters are what is checked
          expect(name).not.toMatch(/[\x00-\x20\x7f]/);
          expect(typeof value).toBe("string");
        }
        expect(prototypeIsClean()).toBe(true);
      }),
    );
  });

  it("the first occurrence of a name wins, whatever follows it", () => {
    fc.assert(
      fc.property(cookieName, hostileString, cookieHeader, (name, value, rest) => {
        const pair = serializeCookie(name, value, { secure: false, httpOnly: false }).split(
          ";",
        )[0]!;
        const expected = cameBack(name, value);
        fc.pre(expected !== undefined);
        expect(parseCookies(`${pair}; ${rest}`).get(name)).toBe(expected);
      }),
    );
  });
});

describe(`serializeCookie (seed ${SEED})`, () => {
  it("round-trips any value through Set-Cookie and back as a Cookie header", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cookieName, hostileString), { minLength: 1, maxLength: 5 }),
        cookieOptions,
        (pairs, options) => {
          const sent = pairs.map(([name, value]) => serializeCookie(name, value, options));
          // What the browser sends back: the name=value part of each, joined by "; ".
          const header = sent.map((s) => s.slice(0, s.indexOf(";"))).join("; ");
          const cookies = parseCookies(header);
          const expected = new Map<string, string>();
          for (const [name, value] of pairs) {
            const back = cameBack(name, value);
            if (!expected.has(name) && back !== undefined) expected.set(name, back);
          }
          expect(Object.fromEntries(cookies)).toEqual(Object.fromEntries(expected));
        },
      ),
    );
  });

  it("the value is cookie-octets only, the attributes exactly the fixed set, no CR/LF", () => {
    fc.assert(
      fc.property(cookieName, hostileString, cookieOptions, (name, value, options) => {
        const header = serializeCookie(name, value, options);
        expect(header).not.toMatch(/[\r\n\0]/);
        const [pair, ...attributes] = header.split("; ");
        expect(pair!.slice(0, name.length + 1)).toBe(`${name}=`);
        expect(pair!.slice(name.length + 1)).toMatch(COOKIE_VALUE);
        const expected = [
          ...(options.maxAgeSeconds === undefined ? [] : ["Max-Age"]),
          ...(options.domain ? ["Domain"] : []),
          "Path",
          ...(options.secure ? ["Secure"] : []),
          ...(options.httpOnly ? ["HttpOnly"] : []),
          "SameSite",
        ];
        expect(attributes.map((a) => a.split("=")[0])).toEqual(expected);
        expect(attributes).toContain("Path=/");
        expect(attributes).toContain("SameSite=Lax");
        const maxAge = attributes.find((a) => a.startsWith("Max-Age="));
        if (maxAge !== undefined) {
          const seconds = Number(maxAge.slice("Max-Age=".length));
          expect(Number.isInteger(seconds)).toBe(true);
          expect(seconds).toBeGreaterThanOrEqual(0);
          expect(seconds).toBeLessThanOrEqual(MAX_COOKIE_AGE_SECONDS);
        }
      }),
    );
  });

  it("a name or domain that is not a token / host name is refused with a TypeError, never written", () => {
    fc.assert(
      fc.property(hostileString, (text) => {
        const validName = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(text);
        if (validName)
          expect(() => serializeCookie(text, "v", { secure: true, httpOnly: true })).not.toThrow();
        else {
          expect(() => serializeCookie(text, "v", { secure: true, httpOnly: true })).toThrow(
            TypeError,
          );
          expect(() => deleteCookie(text, { secure: true, httpOnly: true })).toThrow(TypeError);
        }
        let header: string | null = null;
        try {
          header = serializeCookie("n", "v", { domain: text, secure: false, httpOnly: false });
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
        }
        if (header !== null && text !== "") {
          expect(header).toContain(`; Domain=${text}; `);
          expect(text).toMatch(/^\.?[A-Za-z0-9.-]+$/);
        }
      }),
    );
  });

  it("base64url: any bytes round-trip; any text decodes to bytes or null, never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), hostileString, (bytes, text) => {
        const encoded = encodeBase64Url(bytes);
        expect(encoded).toMatch(/^[A-Za-z0-9_-]*$/);
        expect(decodeBase64Url(encoded)).toEqual(bytes);
        expect(() => decodeBase64Url(text)).not.toThrow();
      }),
    );
  });
});

const STICKY_ID = /^[A-Za-z0-9_-]{1,64}$/;
const stickyId = fc.oneof(
  fc.stringMatching(STICKY_ID),
  fc.constantFrom("1886780721", "__proto__", "constructor", "e.1", "a~b", ""),
  hostileString,
);

describe(`ss_dec and ss_attrs (seed ${SEED})`, () => {
  it("decodeSticky: never throws; only well-formed ids; no __proto__; own properties only", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          cookieHeader,
          fc
            .array(fc.tuple(stickyId, stickyId), { maxLength: 8 })
            .map((es) => es.map(([e, v]) => `${e}.${v}`).join("~")),
          fc.constant(undefined),
        ),
        (value) => {
          let map: Record<string, string> = {};
          expect(() => (map = decodeSticky(value))).not.toThrow();
          expect(Object.getPrototypeOf(map)).toBe(Object.prototype);
          for (const [experimentId, variationId] of Object.entries(map)) {
            expect(experimentId).toMatch(STICKY_ID);
            expect(experimentId).not.toBe("__proto__");
            expect(variationId).toMatch(STICKY_ID);
          }
          expect(prototypeIsClean()).toBe(true);
        },
      ),
    );
  });

  it("encodeSticky → decodeSticky keeps every storable entry while it fits in 3000 bytes", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(stickyId, stickyId), { maxLength: 200 }), (entries) => {
        const map: Record<string, string> = {};
        for (const [e, v] of entries) defineOwn(map, e, v);
        const encoded = encodeSticky(map);
        expect(encoded.length).toBeLessThanOrEqual(MAX_STICKY_BYTES);
        expect(encoded).toMatch(/^[A-Za-z0-9_.~-]*$/);
        const decoded = decodeSticky(encoded);
        const storable = Object.entries(map).filter(
          ([e, v]) => e !== "__proto__" && STICKY_ID.test(e) && STICKY_ID.test(v),
        );
        const size = storable.reduce((n, [e, v]) => n + e.length + v.length + 2, -1);
        if (size <= MAX_STICKY_BYTES) expect(decoded).toEqual(Object.fromEntries(storable));
        // Whatever is kept is kept exactly.
        for (const [e, v] of Object.entries(decoded)) expect(map[e]).toBe(v);
      }),
    );
  });

  const attributeKey = fc.oneof(
    hostileKey,
    fc.constantFrom(...RESERVED_ATTRIBUTE_NAMES),
    fc
      .constantFrom(...RESERVED_ATTRIBUTE_PREFIXES)
      .chain((p) => fc.string({ maxLength: 5 }).map((s) => p + s)),
    fc.constantFrom("plan", "$opt_bucketing_id", "GEO.country", "x".repeat(65)),
  );
  const forgedAttributes = fc
    .array(fc.tuple(attributeKey, fc.oneof(hostileJson, hostileNumber)), { maxLength: 8 })
    .map((entries) => {
      const object: Record<string, unknown> = {};
      for (const [k, v] of entries) defineOwn(object, k, v);
      return encodeBase64Url(new TextEncoder().encode(JSON.stringify(object)));
    });

  it("decodeAttributes: never throws on garbage or forgeries; never a reserved name or a non-primitive", () => {
    let nonEmpty = 0;
    fc.assert(
      fc.property(fc.oneof(cookieHeader, forgedAttributes, fc.constant(undefined)), (value) => {
        let attrs: Record<string, unknown> = {};
        expect(() => (attrs = decodeAttributes(value))).not.toThrow();
        expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
        if (Object.keys(attrs).length > 0) nonEmpty++;
        for (const [key, item] of Object.entries(attrs)) {
          expect(isStorableAttributeName(key)).toBe(true);
          expect(RESERVED_ATTRIBUTE_NAMES.has(key)).toBe(false);
          for (const prefix of RESERVED_ATTRIBUTE_PREFIXES)
            expect(key.startsWith(prefix)).toBe(false);
          expect(key.length).toBeGreaterThan(0);
          expect(key.length).toBeLessThanOrEqual(64);
          expect(["string", "number", "boolean"]).toContain(typeof item);
          if (typeof item === "number") expect(Number.isFinite(item)).toBe(true);
        }
        expect(prototypeIsClean()).toBe(true);
      }),
    );
    expect(nonEmpty).toBeGreaterThan(20);
  });

  it("encodeAttributes → decodeAttributes gives back the storable entries (newest kept when too long)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(attributeKey, fc.oneof(hostileString, hostileNumber, fc.boolean())), {
          maxLength: 12,
        }),
        (entries) => {
          const attrs: Record<string, string | number | boolean> = {};
          for (const [k, v] of entries) defineOwn(attrs, k, v);
          const encoded = encodeAttributes(attrs);
          expect(encoded.length).toBeLessThanOrEqual(MAX_ATTRIBUTES_BYTES);
          expect(encoded).toMatch(/^[A-Za-z0-9_-]*$/);
          const decoded = decodeAttributes(encoded);
          const storable = Object.entries(attrs).filter(
            ([k, v]) => isStorableAttributeName(k) && (typeof v !== "number" || Number.isFinite(v)),
          );
          // A suffix of the storable entries (the oldest are dropped first), values exact
          // (lone surrogates survive as JSON escapes; JSON has no -0).
          const kept = storable.slice(storable.length - Object.keys(decoded).length);
          expect(Object.keys(decoded)).toEqual(kept.map(([k]) => k));
          for (const [k, v] of kept) expect(decoded[k]).toEqual(v === 0 ? 0 : v);
          if (
            storable.every(([k, v]) => JSON.stringify({ [k]: v }).length < 100) &&
            storable.length < 10
          )
            expect(Object.keys(decoded)).toHaveLength(storable.length);
        },
      ),
    );
  });

  it("readVisitor: any cookies give a valid id; a valid ss_vid is kept, anything else is never used", () => {
    fc.assert(
      fc.property(cookieHeader, (header) => {
        const cookies = parseCookies(header);
        const visitor = readVisitor(new Request("https://shop.example.com/"), cookies);
        expect(isValidVisitorId(visitor.id)).toBe(true);
        expect(visitor.id).toMatch(/^[A-Za-z0-9._~:@+-]{1,128}$/);
        const vid = cookies.get("ss_vid");
        if (vid !== undefined && isValidVisitorId(vid))
          expect(visitor).toMatchObject({ id: vid, idSource: "ss_vid", isNew: false });
        else if (visitor.idSource !== "optimizelyEndUserId") {
          expect(visitor.idSource).toBe("new");
          expect(visitor.id).toMatch(/^[0-9a-f]{32}$/);
        }
        expect(visitor.optedOut).toBe(cookies.get("ss_optout") === "1");
      }),
    );
  });

  it("isValidVisitorId accepts only 1-128 characters of A-Z a-z 0-9 . _ ~ : @ + -", () => {
    fc.assert(
      fc.property(
        fc.oneof(hostileString, fc.stringMatching(/^[A-Za-z0-9._~:@+-]{1,130}$/)),
        (id) => {
          expect(isValidVisitorId(id)).toBe(
            /^[A-Za-z0-9._~:@+-]{1,128}$/.test(id) && id !== "undefined",
          );
        },
      ),
    );
  });
});
