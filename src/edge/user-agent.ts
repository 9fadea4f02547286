/**
 * A small, table-driven `User-Agent` parser for the request attributes `device.type`,
 * `browser.name`, `browser.version` and `os.name` (docs/datafile.md) and for bot detection (§4).
 *
 * Deliberately small (a few regular expressions, no dependency): it only has to tell apart the
 * browsers and platforms people target in experiments. Rules, first match wins:
 *
 * - **Browser**: distinct Chromium/WebKit-based brands that carry a `Chrome/` or `Safari/` token
 *   (Yandex, UC, Whale, QQ, MIUI, Huawei, Vivaldi, DuckDuckGo, Silk, …) → `other`; `Edg/`,
 *   `EdgA/`, `EdgiOS/`, `Edge/` → `edge`; `OPR/`, `OPiOS/`, `OPT/`, `Opera` → `opera`;
 *   `SamsungBrowser/` → `samsung`; `MSIE`, `Trident/…rv:` → `ie`; `Firefox/`, `FxiOS/` →
 *   `firefox`; `CriOS/`, `Chrome/`, `Chromium/` → `chrome` (this includes Android WebView and the
 *   in-app browsers built on it, e.g. Facebook/Instagram on Android: they *are* Chrome);
 *   `Version/x Safari/` → `safari`; any other WebKit on iPhone/iPad/iPod (WKWebView in-app
 *   browsers: Facebook, Instagram, Google app, …) → `safari` with the iOS version (WebKit ships
 *   with iOS). Otherwise `other`.
 * - **Version**: `major.minor` of the matched token (`Chrome/120.0.6099.130` → `"120.0"`; a
 *   missing minor is `0`); `""` when unknown.
 * - **OS**: Windows (incl. Windows Phone, Xbox) → `windows`; iPhone/iPad/iPod → `ios` (iPadOS is
 *   `ios` too); `CrOS` → `chromeos`; Android → `android`; Macintosh → `macos` — except a
 *   Macintosh UA with an iOS-only browser token (`CriOS`, `FxiOS`, `EdgiOS`) or `Mobile/`,
 *   which is an iPad asking for the desktop site → `ios`/`tablet`. Safari on an iPad in desktop
 *   mode sends exactly the macOS UA and is reported as macOS/desktop; no server can tell.
 *   Linux → `linux`; anything else → `other`.
 * - **Device**: a bot (see {@link BOT_PATTERN}) → `bot`; iPad, `Tablet`, Kindle/Silk, PlayBook,
 *   or Android without `Mobi` → `tablet`; iPhone/iPod, `Mobi`, Windows Phone, Opera Mini,
 *   BlackBerry, KaiOS → `mobile`; otherwise (and for a missing UA) `desktop`.
 *
 * Only the first {@link MAX_UA_LENGTH} characters are looked at. The last result is cached (one
 * entry per isolate), so the bot check and the request attributes parse a request's UA once.
 */

export type DeviceType = "desktop" | "mobile" | "tablet" | "bot";
export type BrowserName =
  "chrome" | "edge" | "firefox" | "safari" | "samsung" | "opera" | "ie" | "other";
export type OsName = "windows" | "macos" | "ios" | "android" | "linux" | "chromeos" | "other";

export interface ParsedUserAgent {
  deviceType: DeviceType;
  browserName: BrowserName;
  browserVersion: string;
  osName: OsName;
}

export const MAX_UA_LENGTH = 1024;

/**
 * Self-identifying automated clients: search and SEO crawlers, AI crawlers, link-preview
 * fetchers of chat and social apps, headless and automated browsers, performance and uptime
 * monitors, feed fetchers. `bot` as a word (not `Cubot`, a phone brand), and any UA carrying a
 * URL (real browsers never do). Generic HTTP libraries (curl, Wget, HTTPie, Node/undici fetch,
 * python-requests, Go-http-client, …) are *not* bots: see docs/visitors.md.
 */
export const BOT_PATTERN = new RegExp(
  [
    "(?<!cu)bot\\b",
    "bot[-_/]",
    "crawl",
    "spider",
    "slurp",
    "mediapartners",
    "google-(?:inspectiontool|extended|read-aloud|site-verification|structured-data|pagerenderer)",
    "googleother",
    "apis-google",
    "feedfetcher",
    "headless",
    "phantomjs",
    "slimerjs",
    "puppeteer",
    "playwright",
    "selenium",
    "webdriver",
    "lighthouse",
    "pagespeed",
    "gtmetrix",
    "ptst/",
    "prerender",
    "rendertron",
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "meta-externalfetcher",
    "embedly",
    "iframely",
    "(?:url|link|web) preview",
    "preview service",
    "bingpreview",
    "skypeuripreview",
    "outbrain",
    "vkshare",
    "w3c_validator",
    "validator\\.nu",
    "whatsapp",
    "mastodon",
    "pleroma",
    "misskey",
    "anthropic-ai",
    "cohere-ai",
    "chatgpt-user",
    "perplexity",
    "ccbot",
    "bytespider",
    "ia_archiver",
    "scrapy",
    "nutch",
    "httrack",
    "uptime",
    "pingdom",
    "statuscake",
    "site24x7",
    "newrelicpinger",
    "synthetic",
    "checkly",
    "https?://",
  ].join("|"),
  "i",
);

interface BrowserRule {
  name: BrowserName;
  pattern: RegExp;
}

/** Version capture: group 1 = major, group 2 = minor (optional). */
const V = "(\\d+)(?:\\.(\\d+))?";

const BROWSER_RULES: readonly BrowserRule[] = [
  {
    name: "other",
    pattern: new RegExp(
      `\\b(?:YaBrowser|YaSearchBrowser|UCBrowser|UCWEB|Whale|QQBrowser|MQQBrowser|MiuiBrowser|HuaweiBrowser|HeyTapBrowser|Vivaldi|DuckDuckGo|Silk|Puffin|Brave|Ddg|Konqueror)/${V}`,
    ),
  },
  { name: "edge", pattern: new RegExp(`\\bEdg(?:e|A|iOS)?/${V}`) },
  { name: "opera", pattern: new RegExp(`\\b(?:OPR|OPiOS|OPT|OPX|OPRGX|Opera Mini)/${V}`) },
  { name: "opera", pattern: new RegExp(`\\bOpera\\b.*\\bVersion/${V}`) },
  { name: "opera", pattern: new RegExp(`\\bOpera[ /]${V}`) },
  { name: "samsung", pattern: new RegExp(`\\bSamsungBrowser/${V}`) },
  { name: "ie", pattern: new RegExp(`\\bMSIE ${V}`) },
  { name: "ie", pattern: new RegExp(`\\bTrident/.*\\brv:${V}`) },
  { name: "firefox", pattern: new RegExp(`\\b(?:Firefox|FxiOS)/${V}`) },
  { name: "chrome", pattern: new RegExp(`\\b(?:CriOS|Chrome|Chromium|HeadlessChrome)/${V}`) },
  { name: "safari", pattern: new RegExp(`\\bVersion/${V}[^()]*\\bSafari/`) },
];

const IOS_DEVICE = /\b(?:iPhone|iPad|iPod)\b/;
const IOS_VERSION = /\bOS (\d+)(?:_(\d+))?/;
const IOS_BROWSER_ON_MAC = /\b(?:CriOS|FxiOS|EdgiOS|OPiOS)\/|\bMobile\/\w/;

const EMPTY: ParsedUserAgent = Object.freeze({
  deviceType: "desktop",
  browserName: "other",
  browserVersion: "",
  osName: "other",
});

let lastUa: string | null = null;
let lastResult: ParsedUserAgent = EMPTY;

/** Parse a `User-Agent` header (see the module comment). Never throws. The result is frozen. */
export function parseUserAgent(ua: string | null): ParsedUserAgent {
  if (!ua) return EMPTY;
  if (ua === lastUa) return lastResult;
  const result = Object.freeze(parse(ua.length > MAX_UA_LENGTH ? ua.slice(0, MAX_UA_LENGTH) : ua));
  lastUa = ua;
  lastResult = result;
  return result;
}

function version(match: RegExpExecArray): string {
  return `${match[1]}.${match[2] ?? "0"}`;
}

function parse(ua: string): ParsedUserAgent {
  // Browser
  let browserName: BrowserName = "other";
  let browserVersion = "";
  for (const rule of BROWSER_RULES) {
    const match = rule.pattern.exec(ua);
    if (match) {
      browserName = rule.name;
      browserVersion = version(match);
      break;
    }
  }

  // OS and the iPad-in-desktop-mode case
  let osName: OsName;
  let ipad = false;
  if (/\bWindows\b|\bWin(?:32|64)\b|\bXbox\b/.test(ua)) {
    osName = "windows";
  } else if (IOS_DEVICE.test(ua)) {
    osName = "ios";
    ipad = ua.includes("iPad");
  } else if (ua.includes("CrOS")) {
    osName = "chromeos";
  } else if (ua.includes("Android")) {
    osName = "android";
  } else if (ua.includes("Macintosh") || ua.includes("Mac OS X")) {
    if (IOS_BROWSER_ON_MAC.test(ua)) {
      osName = "ios";
      ipad = true;
    } else {
      osName = "macos";
    }
  } else if (/\bLinux\b|\bUbuntu\b|\bFedora\b/.test(ua)) {
    osName = "linux";
  } else {
    osName = "other";
  }

  // In-app WKWebView on iOS: no browser token of its own.
  if (
    browserName === "other" &&
    browserVersion === "" &&
    osName === "ios" &&
    ua.includes("AppleWebKit/")
  ) {
    browserName = "safari";
    const match = IOS_VERSION.exec(ua);
    if (match) browserVersion = version(match);
  }

  // Device
  let deviceType: DeviceType;
  if (BOT_PATTERN.test(ua)) {
    deviceType = "bot";
  } else if (ipad) {
    deviceType = "tablet";
  } else if (osName === "ios") {
    deviceType = "mobile"; // iPhone, iPod
  } else if (osName === "android") {
    deviceType = /\bMobi/.test(ua) && !/\bTablet\b/.test(ua) ? "mobile" : "tablet";
  } else if (osName !== "windows" && /\bTablet\b|\bKindle\b|\bSilk\b|\bPlayBook\b/.test(ua)) {
    deviceType = "tablet";
  } else if (
    /\bMobi|\bWindows Phone\b|\bOpera Mini\b|\bIEMobile\b|\bBlackBerry\b|\bBB10\b|\bKAIOS\b/i.test(
      ua,
    )
  ) {
    deviceType = "mobile";
  } else {
    deviceType = "desktop";
  }

  return { deviceType, browserName, browserVersion, osName };
}
