import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  decodeBase64Url,
  encodeBase64Url,
  parseCookies,
  serializeCookie,
} from "../../src/edge/cookies";
import {
  MAX_PREVIEW_TOKEN_LENGTH,
  MAX_PREVIEW_VARIATIONS,
  PREVIEW_OFF,
  PREVIEW_QUERY_PARAM,
  previewLink,
  signPreview,
  verifyPreview,
  type PreviewGrant,
} from "../../src/edge/preview";

const KEY = "test-signing-key";
const NOW = Date.UTC(2025, 0, 15, 12);
const GRANT: PreviewGrant = {
  sdkKey: "production-web",
  variations: { "1886780721": "1886780722", exp_b: "var-b" },
  expiresAt: NOW + 60 * 60 * 1000,
};

function tamperPayload(token: string, edit: (payload: Record<string, unknown>) => void): string {
  const [payload, mac] = token.split(".") as [string, string];
  const json = JSON.parse(new TextDecoder().decode(decodeBase64Url(payload)!)) as Record<
    string,
    unknown
  >;
  edit(json);
  return `${encodeBase64Url(new TextEncoder().encode(JSON.stringify(json)))}.${mac}`;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/** The last character of a 32-byte base64url string carries 4 bits; its 2 low bits are unused. */
function sameBitsOtherChar(last: string): string {
  return B64[B64.indexOf(last) ^ 1]!;
}

describe("signPreview / verifyPreview", () => {
  it("round-trips a grant", async () => {
    const token = await signPreview(KEY, GRANT);
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
    expect(await verifyPreview(KEY, token, NOW)).toEqual(GRANT);
  });

  it("works with the Worker's SIGNING_KEY secret", async () => {
    const key = (env as unknown as { SIGNING_KEY: string }).SIGNING_KEY;
    expect(key).toBeTruthy();
    const token = await signPreview(key, GRANT);
    expect(await verifyPreview(key, token, NOW)).toEqual(GRANT);
  });

  it("is deterministic (same grant, same key → same token)", async () => {
    expect(await signPreview(KEY, GRANT)).toBe(await signPreview(KEY, GRANT));
  });

  it("yields a cookie-safe token that survives a Set-Cookie round trip", async () => {
    const token = await signPreview(KEY, GRANT);
    const header = serializeCookie("ss_preview", token, { secure: true, httpOnly: true });
    const value = header.slice("ss_preview=".length, header.indexOf(";"));
    expect(value).toBe(token);
    expect(parseCookies(`ss_preview=${value}`).get("ss_preview")).toBe(token);
  });

  it.each<[string, (token: string) => string | Promise<string>]>([
    [
      "a changed variation",
      (t) => tamperPayload(t, (p) => ((p.v as Record<string, string>).exp_b = "var-a")),
    ],
    ["a changed sdk key", (t) => tamperPayload(t, (p) => (p.k = "other-env"))],
    ["an extended expiry", (t) => tamperPayload(t, (p) => (p.e = NOW + 1e12))],
    ["a flipped MAC character", (t) => t.slice(0, -2) + (t.at(-2) === "A" ? "B" : "A") + t.at(-1)],
    ["a truncated MAC", (t) => t.slice(0, -4)],
    [
      "a non-canonical spelling of the same MAC",
      (t) => t.slice(0, -1) + sameBitsOtherChar(t.at(-1)!),
    ],
    ["no MAC", (t) => t.split(".")[0]!],
    ["an empty MAC", (t) => t.split(".")[0]! + "."],
    ["a second dot", (t) => t + ".x"],
    ["no payload", (t) => "." + t.split(".")[1]!],
    ["swapped parts", (t) => t.split(".").reverse().join(".")],
    ["the wrong key", () => signPreview("another-key", GRANT)],
    ["garbage", () => "not-a-token"],
    ["the empty string", () => ""],
    ["bad base64", (t) => "!!!!." + t.split(".")[1]!],
    ["an oversized token", (t) => t + "A".repeat(MAX_PREVIEW_TOKEN_LENGTH)],
  ])("refuses %s", async (_name, make) => {
    const token = await make(await signPreview(KEY, GRANT));
    expect(await verifyPreview(KEY, token, NOW)).toBeNull();
  });

  it("refuses an expired token, and one exactly at its expiry", async () => {
    const token = await signPreview(KEY, GRANT);
    expect(await verifyPreview(KEY, token, GRANT.expiresAt - 1)).not.toBeNull();
    expect(await verifyPreview(KEY, token, GRANT.expiresAt)).toBeNull();
    expect(await verifyPreview(KEY, token, GRANT.expiresAt + 1)).toBeNull();
  });

  it("refuses a well-signed payload of the wrong shape", async () => {
    // Sign raw payloads with the same HMAC to prove the shape check, not the MAC, refuses them.
    const cryptoKey = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(KEY),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const sign = async (payload: unknown) => {
      const p = encodeBase64Url(new TextEncoder().encode(JSON.stringify(payload)));
      const mac = await crypto.subtle.sign("HMAC", cryptoKey, new TextEncoder().encode(p));
      return `${p}.${encodeBase64Url(new Uint8Array(mac))}`;
    };
    const good = { k: "sdk", v: { e: "v" }, e: NOW + 1000 };
    expect(await verifyPreview(KEY, await sign(good), NOW)).toEqual({
      sdkKey: "sdk",
      variations: { e: "v" },
      expiresAt: NOW + 1000,
    });
    for (const bad of [
      null,
      [],
      "str",
      { ...good, k: "" },
      { ...good, k: 1 },
      { ...good, v: null },
      { ...good, v: ["x"] },
      { ...good, v: { e: 1 } },
      { ...good, v: { e: "" } },
      { ...good, e: "soon" },
      { ...good, e: null },
    ]) {
      expect(await verifyPreview(KEY, await sign(bad), NOW)).toBeNull();
    }
    const proto = encodeBase64Url(
      new TextEncoder().encode(`{"k":"sdk","v":{"__proto__":"v"},"e":${NOW + 1000}}`),
    );
    const mac = await crypto.subtle.sign("HMAC", cryptoKey, new TextEncoder().encode(proto));
    expect(
      await verifyPreview(KEY, `${proto}.${encodeBase64Url(new Uint8Array(mac))}`, NOW),
    ).toBeNull();
  });

  it("never throws, whatever it is given", async () => {
    for (const token of [undefined, null, 42, {}, "a.b", ".", "..", "%%%.%%%"]) {
      await expect(verifyPreview(KEY, token as unknown as string, NOW)).resolves.toBeNull();
    }
    await expect(verifyPreview("", await signPreview(KEY, GRANT), NOW)).resolves.toBeNull();
  });

  it("refuses to sign malformed grants", async () => {
    const tooMany = Object.fromEntries(
      Array.from({ length: MAX_PREVIEW_VARIATIONS + 1 }, (_, i) => [`e${i}`, "v"]),
    );
    for (const grant of [
      { ...GRANT, sdkKey: "" },
      { ...GRANT, expiresAt: NaN },
      { ...GRANT, variations: { e: 1 } },
      { ...GRANT, variations: tooMany },
    ]) {
      await expect(signPreview(KEY, grant as PreviewGrant)).rejects.toThrow(TypeError);
    }
  });

  it("caches the key per signing key without mixing them up", async () => {
    const a = await signPreview("key-a", GRANT);
    const b = await signPreview("key-b", GRANT);
    expect(a).not.toBe(b);
    expect(await verifyPreview("key-a", a, NOW)).toEqual(GRANT);
    expect(await verifyPreview("key-b", a, NOW)).toBeNull();
    expect(await verifyPreview("key-b", b, NOW)).toEqual(GRANT);
  });
});

describe("previewLink", () => {
  it("adds the token as ?ss_preview=", async () => {
    const token = await signPreview(KEY, GRANT);
    const link = previewLink("https://shop.example.com/p/42", token);
    expect(link).toBe(`https://shop.example.com/p/42?ss_preview=${token}`);
    expect(new URL(link).searchParams.get(PREVIEW_QUERY_PARAM)).toBe(token);
  });

  it("keeps other parameters and the hash, and replaces an old token", () => {
    const link = previewLink("https://shop.example.com/p?a=1&ss_preview=old#top", "new.tok");
    const url = new URL(link);
    expect(url.searchParams.get("a")).toBe("1");
    expect(url.searchParams.getAll(PREVIEW_QUERY_PARAM)).toEqual(["new.tok"]);
    expect(url.hash).toBe("#top");
  });

  it("makes the link that ends a preview", () => {
    expect(previewLink("https://shop.example.com/", PREVIEW_OFF)).toBe(
      "https://shop.example.com/?ss_preview=off",
    );
  });

  it("throws on a relative URL", () => {
    expect(() => previewLink("/p", "t")).toThrow(TypeError);
  });
});

describe("sameBitsOtherChar (test helper)", () => {
  it("really spells the same bytes", () => {
    expect(decodeBase64Url("A".repeat(42) + "B")).toEqual(new Uint8Array(32));
    expect(sameBitsOtherChar("A")).toBe("B");
  });
});
