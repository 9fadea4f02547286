import { describe, expect, it } from "vitest";
import { MAX_UA_LENGTH, parseUserAgent, type ParsedUserAgent } from "../../src/edge/user-agent";
import fixture from "../fixtures/user-agents.json";

interface Case extends ParsedUserAgent {
  ua: string;
  note: string;
}
const cases = fixture.cases as Case[];

describe("parseUserAgent: real user agents (test/fixtures/user-agents.json)", () => {
  it("has a table of at least 40 browsers and a set of bots", () => {
    expect(cases.filter((c) => c.deviceType !== "bot").length).toBeGreaterThanOrEqual(40);
    expect(cases.filter((c) => c.deviceType === "bot").length).toBeGreaterThanOrEqual(15);
  });

  it.each(cases)("$note", ({ ua, deviceType, browserName, browserVersion, osName }) => {
    expect(parseUserAgent(ua)).toEqual({ deviceType, browserName, browserVersion, osName });
  });
});

describe("parseUserAgent: edge cases", () => {
  it.each([null, ""])("%j → desktop/other with no version", (ua) => {
    expect(parseUserAgent(ua)).toEqual({
      deviceType: "desktop",
      browserName: "other",
      browserVersion: "",
      osName: "other",
    });
  });

  it("gives the same (frozen) result for the same string, and the right one after a change", () => {
    const chrome = cases[0]!.ua;
    const firefox = cases.find((c) => c.browserName === "firefox")!.ua;
    const a = parseUserAgent(chrome);
    expect(parseUserAgent(chrome)).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    expect(parseUserAgent(firefox).browserName).toBe("firefox");
    expect(parseUserAgent(chrome).browserName).toBe("chrome");
  });

  it("adds .0 when there is no minor version", () => {
    expect(parseUserAgent("Mozilla/5.0 (X11; Linux x86_64) Firefox/130").browserVersion).toBe(
      "130.0",
    );
  });

  it("only looks at the first characters of a huge header, quickly", () => {
    const huge = "Mozilla/5.0 (Windows NT 10.0) " + "Version/1 ".repeat(100_000) + "Chrome/1.2";
    const started = Date.now();
    const parsed = parseUserAgent(huge);
    expect(Date.now() - started).toBeLessThan(200);
    expect(parsed.osName).toBe("windows");
    expect(parsed.browserName).toBe("other"); // Chrome/ lies beyond MAX_UA_LENGTH
    expect(huge.indexOf("Chrome/")).toBeGreaterThan(MAX_UA_LENGTH);
  });

  it.each([
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Mozilla/5.0 (compatible; DuckDuckBot-Https/1.1; https://duckduckgo.com/duckduckbot)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Amazonbot/0.1)",
    "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; ChatGPT-User/1.0",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0)",
    "Mozilla/5.0 (compatible; Google-InspectionTool/1.0)",
    "Mozilla/5.0 (compatible; GoogleOther)",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Mediapartners-Google",
    "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
    "Mozilla/5.0 (compatible; Yahoo! Slurp)",
    "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
    "Mozilla/5.0 (compatible; Embedly/0.2)",
    "Iframely/1.3.1 (+https://iframely.com/docs/about)",
    "Mozilla/5.0 (X11; Linux x86_64) PhantomJS/2.1.1 Safari/538.1",
    "Mozilla/5.0 (Linux x86_64) Puppeteer",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120 Safari/537.36 PTST/240101.1",
    "Mozilla/5.0 (compatible; Datadog/Synthetics)",
    "Scrapy/2.11.0 (+https://scrapy.org)",
    "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/) Bot",
    "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
    "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
  ])("detects the bot %s", (ua) => {
    expect(parseUserAgent(ua).deviceType).toBe("bot");
  });

  it.each([
    "Mozilla/5.0 (Linux; Android 9; CUBOT KINGKONG 5 Pro) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/118.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 LinkedInApp/9.29.8520",
    "HTTPie/3.2.2",
    "axios/1.6.2",
    "okhttp/4.12.0",
    "undici",
  ])("does not flag %s", (ua) => {
    expect(parseUserAgent(ua).deviceType).not.toBe("bot");
  });
});
