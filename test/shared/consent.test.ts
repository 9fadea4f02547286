/**
 * src/shared/consent.ts on its own: how each manager's cookie is read, and that whatever cannot be
 * read is no consent (docs/visitors.md "Consent"). The whole-Worker behaviour is in
 * test/security/consent.test.ts.
 */
import { GVL, TCModel, TCString } from "@iabtechlabtcf/core";
import { describe, expect, it } from "vitest";
import {
  DENY_ALL_CONSENT,
  hasConsent,
  rawCookieValue,
  type ConsentConfig,
} from "../../src/shared/consent";
import { rangeHeavy, withVendorRanges } from "../helpers/tc-strings";

const onetrust: ConsentConfig = {
  manager: "onetrust",
  cookie: "OptanonConsent",
  categories: ["C0002"],
};
const cookiebot: ConsentConfig = {
  manager: "cookiebot",
  cookie: "CookieConsent",
  categories: ["statistics"],
};
const tcf: ConsentConfig = { manager: "tcf", cookie: "euconsent-v2", purposes: [1], vendor: null };
const plain: ConsentConfig = { manager: "cookie", cookie: "c", accept: ["1", "true", "yes"] };

function groups(value: string): string {
  return `OptanonConsent=isGpcEnabled=0&version=202601.1.0&landingPath=NotLandingPage&groups=${encodeURIComponent(value)}&AwaitingReconsent=false`;
}

/** A TC string from the IAB's encoder with consent for `purposes` and no vendors. */
function tcfString(purposes: number[]): string {
  const gvl = new GVL({
    gvlSpecificationVersion: 3,
    vendorListVersion: 1,
    tcfPolicyVersion: 5,
    lastUpdated: "2026-01-01T00:00:00Z",
    purposes: { 1: { id: 1, name: "p1", description: "" } },
    specialPurposes: {},
    features: {},
    specialFeatures: {},
    stacks: {},
    vendors: {},
  } as unknown as ConstructorParameters<typeof GVL>[0]);
  const model = new TCModel(gvl);
  model.cmpId = 10;
  model.purposeConsents.set(purposes);
  return TCString.encode(model);
}

describe("rawCookieValue", () => {
  it("takes the first occurrence as sent: not decoded, one pair of quotes removed", () => {
    expect(rawCookieValue("a=1; OptanonConsent=x%3Ay; OptanonConsent=z", "OptanonConsent")).toBe(
      "x%3Ay",
    );
    expect(rawCookieValue('c="yes"', "c")).toBe("yes");
    expect(rawCookieValue("cc=yes; xc=yes", "c")).toBeNull();
    expect(rawCookieValue(null, "c")).toBeNull();
    expect(rawCookieValue(`c=${"1".repeat(9000)}; d=1`, "c")).toBeNull();
  });

  it("every segment counts toward the 256 looked at, empty or without =", () => {
    // `=` is searched for within its own segment only, so `;;;…` is one pass over the header,
    // and the search stops after 256 segments of any kind.
    expect(rawCookieValue(`${";".repeat(200)}c=yes`, "c")).toBe("yes");
    expect(rawCookieValue(`${"x;".repeat(200)}c=yes`, "c")).toBe("yes");
    expect(rawCookieValue(`${";".repeat(10_000)}c=yes`, "c")).toBeNull();
    expect(rawCookieValue(`${"x; ".repeat(10_000)}c=yes`, "c")).toBeNull();
    // A segment without `=` does not borrow the next segment's.
    expect(rawCookieValue("c; c=yes", "c")).toBe("yes");
  });
});

describe("hasConsent", () => {
  it("no requirement: always yes, even without cookies", () => {
    expect(hasConsent(null, null)).toBe(true);
  });

  it("OneTrust: the group must be :1; repeated or missing groups are no", () => {
    expect(hasConsent(onetrust, groups("C0001:1,C0002:1"))).toBe(true);
    expect(hasConsent(onetrust, groups("C0001:1,C0002:0"))).toBe(false);
    expect(hasConsent(onetrust, groups("C0001:1"))).toBe(false);
    expect(hasConsent(onetrust, groups("C0002:1,C0002:0"))).toBe(false);
    expect(hasConsent(onetrust, `${groups("C0002:0")}&groups=C0002%3A1`)).toBe(false);
    expect(hasConsent(onetrust, "OptanonConsent=isGpcEnabled=0&version=1")).toBe(false);
    // Several groups configured: all must be granted.
    const two: ConsentConfig = { ...onetrust, categories: ["C0002", "C0004"] };
    expect(hasConsent(two, groups("C0002:1,C0004:1"))).toBe(true);
    expect(hasConsent(two, groups("C0002:1,C0004:0"))).toBe(false);
  });

  it("Cookiebot: the category must be true; broken objects are no", () => {
    const value = (body: string) => `CookieConsent=${encodeURIComponent(body)}`;
    expect(hasConsent(cookiebot, value("{stamp:'a,b==',necessary:true,statistics:true}"))).toBe(
      true,
    );
    expect(hasConsent(cookiebot, value("{stamp:'a',statistics:false}"))).toBe(false);
    expect(hasConsent(cookiebot, value("{stamp:'a',statistics:'true'}"))).toBe(false);
    expect(hasConsent(cookiebot, value("{statistics:true,statistics:false}"))).toBe(false);
    expect(hasConsent(cookiebot, value("{stamp:'unterminated,statistics:true}"))).toBe(false);
    expect(hasConsent(cookiebot, value("statistics:true"))).toBe(false);
    expect(hasConsent(cookiebot, "CookieConsent=%E0%A4%A")).toBe(false);
    expect(hasConsent(cookiebot, "CookieConsent=-1")).toBe(true);
  });

  it("TCF: version 2 with every purpose; v1, junk and empty strings are no", () => {
    const purposeOne = tcfString([1]);
    expect(hasConsent(tcf, `euconsent-v2=${purposeOne}`)).toBe(true);
    // The same string under another config is asked anew.
    const withEight: ConsentConfig = { ...tcf, purposes: [1, 8] };
    expect(hasConsent(withEight, `euconsent-v2=${purposeOne}`)).toBe(false);
    expect(hasConsent(tcf, `euconsent-v2=${purposeOne}`)).toBe(true);
    expect(hasConsent({ ...tcf, vendor: 755 }, `euconsent-v2=${purposeOne}`)).toBe(false);
    // A real TCF v1.1 consent string (the IAB's v1 example): not a v2 string.
    expect(hasConsent(tcf, "euconsent-v2=BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA")).toBe(false);
    for (const junk of ["", "%%%", "garbage", "CPzHq4APzHq4AAHABBENC", "a.b.c"])
      expect(hasConsent(tcf, `euconsent-v2=${junk}`)).toBe(false);
  });

  it("TCF: an 8 KB string of 1..65535 vendor ranges is decided without expanding them", () => {
    const purposeOne = tcfString([1]);
    const vendor: ConsentConfig = { ...tcf, vendor: 755 };
    // Each of these took the IAB decoder seconds (docs/security.md "Consent").
    expect(hasConsent(vendor, `euconsent-v2=${rangeHeavy(purposeOne, 1)}`)).toBe(true);
    expect(hasConsent({ ...vendor, vendor: 1 }, `euconsent-v2=${rangeHeavy(purposeOne, 2)}`)).toBe(
      false,
    );
    expect(
      hasConsent({ ...tcf, purposes: [1, 2] }, `euconsent-v2=${rangeHeavy(purposeOne, 3)}`),
    ).toBe(false);
    // A range list claiming 4095 entries but holding one: no consent, even for a vendor it covers.
    const short = withVendorRanges(purposeOne, [[1, 65_535]], 4_095);
    expect(hasConsent(vendor, `euconsent-v2=${short}`)).toBe(false);
  });

  it("a route whose consent config has an error: nobody has consent", () => {
    expect(hasConsent(DENY_ALL_CONSENT, null)).toBe(false);
    expect(hasConsent(DENY_ALL_CONSENT, "c=yes; OptanonConsent=groups=C0002%3A1")).toBe(false);
  });

  it("plain cookie: exactly an accept value, any case, percent-decoded", () => {
    expect(hasConsent(plain, "c=Yes")).toBe(true);
    expect(hasConsent(plain, "c=%74rue")).toBe(true);
    for (const no of ["", "no", "yes please", "granted", "%7B%22analytics%22%3Afalse%7D"])
      expect(hasConsent(plain, `c=${no}`)).toBe(false);
    expect(hasConsent(plain, "other=yes")).toBe(false);
  });
});
