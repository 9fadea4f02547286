import { afterEach, describe, expect, it, vi } from "vitest";
import type { AttributeChangeSet, Change } from "../../src/core/datafile-types";
import {
  isSafeUrl,
  rewriteHtml,
  validateSelector,
  type RewritePlan,
} from "../../src/edge/html-rewrite";

const HTML_UTF8 = { "content-type": "text/html; charset=utf-8" };

function plan(changes: Change[], extra: Partial<RewritePlan> = {}): RewritePlan {
  return { changes, bootstrap: null, ...extra };
}

async function rewrite(html: string, p: RewritePlan): Promise<string> {
  return rewriteHtml(new Response(html, { headers: HTML_UTF8 }), p).text();
}

const attr = (selector: string, attributes: AttributeChangeSet): Change => ({
  type: "attribute",
  selector,
  attributes,
});

/** What a custom_code snippet becomes inside the injected script. */
const wrapped = (js: string) =>
  `try{(function(){\n${js}\n})()}catch(e){console.error("splitstream custom code",e)}`;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("attribute changes (every sub-field)", () => {
  it.each<[string, string, AttributeChangeSet, string]>([
    ["text", `<h1 id="t">Old <b>x</b></h1>`, { text: "New" }, `<h1 id="t">New</h1>`],
    [
      "text is escaped",
      `<p id="t">a</p>`,
      { text: `<b>&"'</b>` },
      `<p id="t">&lt;b&gt;&amp;"'&lt;/b&gt;</p>`,
    ],
    [
      "text on a void element: no-op",
      `<img id="t" src="a.png">`,
      { text: "x" },
      `<img id="t" src="a.png">`,
    ],
    [
      "html",
      `<div id="t">Old</div>`,
      { html: `<em>New</em> & more` },
      `<div id="t"><em>New</em> & more</div>`,
    ],
    [
      "html wins over text (applied after)",
      `<p id="t">a</p>`,
      { text: "T", html: "<i>H</i>" },
      `<p id="t"><i>H</i></p>`,
    ],
    [
      "class replaces",
      `<p id="t" class="a b">x</p>`,
      { class: "c d" },
      `<p id="t" class="c d">x</p>`,
    ],
    ["class added when absent", `<p id="t">x</p>`, { class: "c" }, `<p id="t" class="c">x</p>`],
    ["addClass one", `<p id="t" class="a">x</p>`, { addClass: "b" }, `<p id="t" class="a b">x</p>`],
    [
      "addClass several",
      `<p id="t" class="a">x</p>`,
      { addClass: "b  c\td" },
      `<p id="t" class="a b c d">x</p>`,
    ],
    [
      "addClass present: unchanged",
      `<p id="t" class="a  b">x</p>`,
      { addClass: "b" },
      `<p id="t" class="a  b">x</p>`,
    ],
    [
      "addClass without a class attribute",
      `<p id="t">x</p>`,
      { addClass: "b c" },
      `<p id="t" class="b c">x</p>`,
    ],
    [
      "removeClass one",
      `<p id="t" class="a b c">x</p>`,
      { removeClass: "b" },
      `<p id="t" class="a c">x</p>`,
    ],
    [
      "removeClass several",
      `<p id="t" class="a b c">x</p>`,
      { removeClass: "a c" },
      `<p id="t" class="b">x</p>`,
    ],
    [
      'removeClass all leaves class=""',
      `<p id="t" class="a">x</p>`,
      { removeClass: "a" },
      `<p id="t" class="">x</p>`,
    ],
    [
      "removeClass absent: unchanged",
      `<p id="t" class="a">x</p>`,
      { removeClass: "z" },
      `<p id="t" class="a">x</p>`,
    ],
    [
      "class, then removeClass, then addClass",
      `<p id="t" class="old">x</p>`,
      { class: "a b", removeClass: "a c", addClass: "c" },
      `<p id="t" class="b c">x</p>`,
    ],
    [
      "style without a style attribute",
      `<p id="t">x</p>`,
      { style: "color:red" },
      `<p id="t" style="color:red">x</p>`,
    ],
    [
      "style appended",
      `<p id="t" style="margin:0">x</p>`,
      { style: "color:red" },
      `<p id="t" style="margin:0; color:red">x</p>`,
    ],
    [
      "style appended after a trailing ;",
      `<p id="t" style="margin:0; ">x</p>`,
      { style: "color:red;" },
      `<p id="t" style="margin:0; color:red">x</p>`,
    ],
    [
      "style with quotes",
      `<p id="t">x</p>`,
      { style: `font-family:"A&B"` },
      `<p id="t" style="font-family:&quot;A&amp;B&quot;">x</p>`,
    ],
    ["hide", `<p id="t">x</p>`, { hide: true }, `<p id="t" style="display:none !important">x</p>`],
    [
      "hide after style",
      `<p id="t" style="margin:0">x</p>`,
      { style: "color:red", hide: true },
      `<p id="t" style="margin:0; color:red; display:none !important">x</p>`,
    ],
    ["hide false: no-op", `<p id="t">x</p>`, { hide: false }, `<p id="t">x</p>`],
    [
      "remove",
      `<div><p id="t">x <b>y</b></p><p>z</p></div>`,
      { remove: true },
      `<div><p>z</p></div>`,
    ],
    [
      "remove wins over everything",
      `<div><p id="t">x</p></div>`,
      { remove: true, text: "T", class: "c" },
      `<div></div>`,
    ],
    ["remove false: no-op", `<p id="t">x</p>`, { remove: false }, `<p id="t">x</p>`],
    [
      "href",
      `<a id="t" href="/old">x</a>`,
      { href: "/new?a=1&b=2" },
      `<a id="t" href="/new?a=1&amp;b=2">x</a>`,
    ],
    [
      "href absolute https",
      `<a id="t">x</a>`,
      { href: "https://example.com/" },
      `<a id="t" href="https://example.com/">x</a>`,
    ],
    ["src", `<img id="t" src="/a.png">`, { src: "/b.png" }, `<img id="t" src="/b.png">`],
    [
      "src data:image allowed",
      `<img id="t" src="/a.png">`,
      { src: "data:image/png;base64,AAAA" },
      `<img id="t" src="data:image/png;base64,AAAA">`,
    ],
    [
      "set several",
      `<button id="t" title="old">x</button>`,
      { set: { title: "new", "data-variant": "b", "aria-label": `say "hi"` } },
      `<button id="t" title="new" data-variant="b" aria-label="say &quot;hi&quot;">x</button>`,
    ],
    [
      "set keeps entities literal",
      `<p id="t">x</p>`,
      { set: { title: "&quot;" } },
      `<p id="t" title="&amp;quot;">x</p>`,
    ],
    [
      "unset",
      `<input id="t" disabled placeholder="a" value="v">`,
      { unset: ["disabled", "placeholder"] },
      `<input id="t" value="v">`,
    ],
    ["unset absent: no-op", `<p id="t">x</p>`, { unset: ["title"] }, `<p id="t">x</p>`],
    [
      "set then unset",
      `<p id="t" title="a">x</p>`,
      { set: { title: "b" }, unset: ["title"] },
      `<p id="t">x</p>`,
    ],
    ["empty change set: no-op", `<p id="t">x</p>`, {}, `<p id="t">x</p>`],
  ])("%s", async (_name, input, attributes, expected) => {
    expect(await rewrite(input, plan([attr("#t", attributes)]))).toBe(expected);
  });
});

describe("insert_html", () => {
  const input = `<ul><li id="t" class="a">x</li></ul>`;
  it.each<[Extract<Change, { type: "insert_html" }>["position"], string]>([
    ["before", `<ul><b>N</b><li id="t" class="a">x</li></ul>`],
    ["after", `<ul><li id="t" class="a">x</li><b>N</b></ul>`],
    ["prepend", `<ul><li id="t" class="a"><b>N</b>x</li></ul>`],
    ["append", `<ul><li id="t" class="a">x<b>N</b></li></ul>`],
    ["replace", `<ul><b>N</b></ul>`],
  ])("%s", async (position, expected) => {
    const change: Change = { type: "insert_html", selector: "#t", position, html: "<b>N</b>" };
    expect(await rewrite(input, plan([change]))).toBe(expected);
  });

  it("an unknown position is skipped with a warning", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const change = {
      type: "insert_html",
      selector: "#t",
      position: "inside",
      html: "<b>N</b>",
    } as unknown as Change;
    expect(await rewrite(input, plan([change]))).toBe(input);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

describe("move", () => {
  type Move = Extract<Change, { type: "move" }>;
  const move = (
    selector: string,
    target: string,
    position: Move["position"],
    html: string,
  ): Change => ({ type: "move", selector, target, position, html });
  const PROMO = `<aside id="promo"><b>Sale</b></aside>`;
  const PAGE = `<main><h1>Title</h1><p class="lead">Lead</p>${PROMO}<footer>F</footer></main>`;

  it.each<[string, Change, string]>([
    [
      "up: the target comes before the element (after)",
      move("#promo", "h1", "after", PROMO),
      `<main><h1>Title</h1>${PROMO}<p class="lead">Lead</p><footer>F</footer></main>`,
    ],
    [
      "up: before",
      move("#promo", ".lead", "before", PROMO),
      `<main><h1>Title</h1>${PROMO}<p class="lead">Lead</p><footer>F</footer></main>`,
    ],
    [
      "down: the target comes after the element (before)",
      move("h1", "footer", "before", "<h1>Title</h1>"),
      `<main><p class="lead">Lead</p>${PROMO}<h1>Title</h1><footer>F</footer></main>`,
    ],
    [
      "down: after",
      move("h1", "footer", "after", "<h1>Title</h1>"),
      `<main><p class="lead">Lead</p>${PROMO}<footer>F</footer><h1>Title</h1></main>`,
    ],
    [
      "into: prepend (the target encloses the element)",
      move("#promo", "main", "prepend", PROMO),
      `<main>${PROMO}<h1>Title</h1><p class="lead">Lead</p><footer>F</footer></main>`,
    ],
    [
      "into: append",
      move("h1", "footer", "append", "<h1>Title</h1>"),
      `<main><p class="lead">Lead</p>${PROMO}<footer>F<h1>Title</h1></footer></main>`,
    ],
    [
      "into: append to the enclosing element (stays inside, goes last)",
      move("h1", "main", "append", "<h1>Title</h1>"),
      `<main><p class="lead">Lead</p>${PROMO}<footer>F</footer><h1>Title</h1></main>`,
    ],
  ])("%s", async (_name, change, expected) => {
    expect(await rewrite(PAGE, plan([change]))).toBe(expected);
  });

  it("streams: the same output with the page cut into one-byte chunks", async () => {
    const bytes = new TextEncoder().encode(`<!doctype html><html><body>${PAGE}</body></html>`);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) controller.close();
        else controller.enqueue(bytes.slice(at, ++at));
      },
    });
    const changes = [
      move("#promo", "h1", "after", PROMO),
      move("footer", "main", "prepend", "<footer>F</footer>"),
    ];
    const out = await rewriteHtml(new Response(body, { headers: HTML_UTF8 }), plan(changes)).text();
    expect(out).toBe(
      `<!doctype html><html><body><main><footer>F</footer><h1>Title</h1>${PROMO}<p class="lead">Lead</p></main></body></html>`,
    );
  });

  it("the element matching nothing: the HTML is still inserted (the two halves are independent)", async () => {
    expect(await rewrite(PAGE, plan([move("#gone", "h1", "after", "<p>copy</p>")]))).toBe(
      `<main><h1>Title</h1><p>copy</p><p class="lead">Lead</p>${PROMO}<footer>F</footer></main>`,
    );
  });

  it("the target matching nothing: the element is removed and inserted nowhere", async () => {
    expect(await rewrite(PAGE, plan([move("#promo", "#gone", "after", PROMO)]))).toBe(
      `<main><h1>Title</h1><p class="lead">Lead</p><footer>F</footer></main>`,
    );
  });

  it("several matches: every element is removed, the HTML goes to every target", async () => {
    const input = `<ul><li class="x">1</li><li>2</li><li class="x">3</li></ul><ol><li>a</li><li>b</li></ol>`;
    expect(await rewrite(input, plan([move("li.x", "ol > li", "after", "<li>M</li>")]))).toBe(
      `<ul><li>2</li></ul><ol><li>a</li><li>M</li><li>b</li><li>M</li></ol>`,
    );
  });

  it("a target inside the element, or the element itself: removed, nothing inserted", async () => {
    expect(await rewrite(PAGE, plan([move("#promo", "#promo b", "after", PROMO)]))).toBe(
      `<main><h1>Title</h1><p class="lead">Lead</p><footer>F</footer></main>`,
    );
    expect(await rewrite(PAGE, plan([move("#promo", "#promo", "before", PROMO)]))).toBe(
      `<main><h1>Title</h1><p class="lead">Lead</p><footer>F</footer></main>`,
    );
    expect(await rewrite(PAGE, plan([move("#promo", "aside", "before", PROMO)]))).toBe(
      `<main><h1>Title</h1><p class="lead">Lead</p><footer>F</footer></main>`,
    );
  });

  it("other changes never match the inserted HTML; earlier ones touched only the original", async () => {
    const changes: Change[] = [
      attr("#promo", { addClass: "before-move" }),
      move("#promo", "h1", "after", PROMO),
      attr("#promo", { addClass: "after-move" }),
      attr("#promo b", { text: "changed" }),
    ];
    expect(await rewrite(PAGE, plan(changes))).toBe(
      `<main><h1>Title</h1>${PROMO}<p class="lead">Lead</p><footer>F</footer></main>`,
    );
  });

  it("the inserted HTML carries no element number in the editor's preview", async () => {
    const out = await rewrite(
      `<div><h1>T</h1><p id="m">M</p></div>`,
      plan([move("#m", "h1", "before", `<p id="m">M</p>`)], { numberElements: true }),
    );
    expect(out).toBe(`<div data-ss-i="0"><p id="m">M</p><h1 data-ss-i="1">T</h1></div>`);
  });

  it.each<[string, Change, string]>([
    ["an unsupported selector", move("p + aside", "h1", "after", PROMO), `"p + aside"`],
    ["an unsupported target", move("#promo", "h1 ~ p", "after", PROMO), `target "h1 ~ p"`],
    [
      "a position that is not a move's",
      { ...move("#promo", "h1", "after", PROMO), position: "replace" } as unknown as Change,
      `bad position "replace"`,
    ],
    [
      "html that is not a string",
      { ...move("#promo", "h1", "after", PROMO), html: 5 } as unknown as Change,
      "or html",
    ],
  ])("%s: the whole move is skipped with one warning", async (_name, change, warning) => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const changes = [change, attr("footer", { text: "still applied" })];
    expect(await rewrite(PAGE, plan(changes))).toBe(
      `<main><h1>Title</h1><p class="lead">Lead</p>${PROMO}<footer>still applied</footer></main>`,
    );
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toContain(warning);
  });
});

describe("custom_css", () => {
  it.each<[string, string, string[], string | undefined, string]>([
    [
      "one style at the end of <head>",
      `<html><head><title>T</title></head><body>x</body></html>`,
      ["h1{color:red}"],
      undefined,
      `<html><head><title>T</title><style data-ss>h1{color:red}</style></head><body>x</body></html>`,
    ],
    [
      "several rules in one element, in order",
      `<head></head><body>x</body>`,
      ["a{}", "b{}"],
      undefined,
      `<head><style data-ss>a{}\nb{}</style></head><body>x</body>`,
    ],
    [
      "</style escaped",
      `<head></head>`,
      [`a::after{content:"</style><script>alert(1)</script>"} /* </STYLE> */`],
      undefined,
      `<head><style data-ss>a::after{content:"<\\/style><script>alert(1)</script>"} /* <\\/STYLE> */</style></head>`,
    ],
    [
      "with the nonce",
      `<head></head>`,
      ["a{}"],
      "abc123+/=",
      `<head><style data-ss nonce="abc123+/=">a{}</style></head>`,
    ],
    [
      "an invalid nonce is dropped",
      `<head></head>`,
      ["a{}"],
      `x" onload="alert(1)`,
      `<head><style data-ss>a{}</style></head>`,
    ],
    [
      "no </head>: before <body>",
      `<head><title>T</title><body>x</body>`,
      ["a{}"],
      undefined,
      `<head><title>T</title><style data-ss>a{}</style><body>x</body>`,
    ],
    [
      "no head: before <body>",
      `<html><body>x</body></html>`,
      ["a{}"],
      undefined,
      `<html><style data-ss>a{}</style><body>x</body></html>`,
    ],
    [
      "no head, no body: at the end",
      `<p>x</p>`,
      ["a{}"],
      undefined,
      `<p>x</p><style data-ss>a{}</style>`,
    ],
    ["blank CSS: nothing injected", `<head></head>`, ["  "], undefined, `<head></head>`],
  ])("%s", async (_name, input, css, nonce, expected) => {
    const changes: Change[] = css.map((value) => ({ type: "custom_css", value }));
    expect(await rewrite(input, plan(changes, nonce === undefined ? {} : { nonce }))).toBe(
      expected,
    );
  });
});

describe("custom_code", () => {
  it.each<[string, string, string[], string | undefined, string]>([
    [
      "one script at the end of <body>, snippet wrapped",
      `<html><head></head><body><p>x</p></body></html>`,
      ["window.a=1;"],
      undefined,
      `<html><head></head><body><p>x</p><script data-ss>try{(function(){\nwindow.a=1;\n})()}catch(e){console.error("splitstream custom code",e)}</script></body></html>`,
    ],
    [
      "several snippets, each in its own try/catch",
      `<body></body>`,
      ["a()", "b() // comment"],
      undefined,
      `<body><script data-ss>${wrapped("a()")}\n${wrapped("b() // comment")}</script></body>`,
    ],
    [
      "</script and <!-- escaped",
      `<body></body>`,
      [`var s="</script><script>x()</SCRIPT>"; var c="<!--";`],
      undefined,
      `<body><script data-ss>${wrapped(`var s="<\\/script><script>x()<\\/SCRIPT>"; var c="\\x3C!--";`)}</script></body>`,
    ],
    [
      "with the nonce",
      `<body></body>`,
      ["a()"],
      "n0nce",
      `<body><script data-ss nonce="n0nce">${wrapped("a()")}</script></body>`,
    ],
    [
      "no </body>: at the end",
      `<body><p>x</p>`,
      ["a()"],
      undefined,
      `<body><p>x</p><script data-ss>${wrapped("a()")}</script>`,
    ],
    [
      "no body: at the end",
      `<p>x</p>`,
      ["a()"],
      undefined,
      `<p>x</p><script data-ss>${wrapped("a()")}</script>`,
    ],
    [
      "nested <body> tags: the outer one",
      `<body><div><body>x</body></div></body>`,
      ["a()"],
      undefined,
      `<body><div><body>x</body></div><script data-ss>${wrapped("a()")}</script></body>`,
    ],
  ])("%s", async (_name, input, code, nonce, expected) => {
    const changes: Change[] = code.map((value) => ({ type: "custom_code", value }));
    expect(await rewrite(input, plan(changes, nonce === undefined ? {} : { nonce }))).toBe(
      expected,
    );
  });
});

describe("redirect changes", () => {
  it("are ignored here (handled before the origin fetch)", async () => {
    const change: Change = {
      type: "redirect",
      destination: "https://example.com/b",
      mode: "redirect",
    };
    const original = new Response("<p>x</p>", { headers: HTML_UTF8 });
    const out = rewriteHtml(original, plan([change]));
    expect(out).toBe(original);
    expect(await out.text()).toBe("<p>x</p>");
  });
});

describe("bootstrap placement", () => {
  const B = `<script id="ss-bootstrap">window.__ss={};</script>`;
  const HTML_NO_CHARSET = { "content-type": "text/html" };
  async function rewriteWith(headers: Record<string, string>, html: string): Promise<string> {
    return rewriteHtml(new Response(html, { headers }), plan([], { bootstrap: B })).text();
  }
  // [name, input, with a charset in the Content-Type header, without one]
  it.each<[string, string, string, string]>([
    [
      "first thing inside <head>",
      `<!doctype html><html><head><title>T</title><script src="/app.js"></script></head><body></body></html>`,
      `<!doctype html><html><head>${B}<title>T</title><script src="/app.js"></script></head><body></body></html>`,
      `<!doctype html><html><head>${B}<title>T</title><script src="/app.js"></script></head><body></body></html>`,
    ],
    [
      "whitespace before the first child",
      `<head>\n  <title>T</title>\n</head>`,
      `<head>${B}\n  <title>T</title>\n</head>`,
      `<head>\n  ${B}<title>T</title>\n</head>`,
    ],
    [
      "a leading <meta charset>: after it only when the header declares no charset",
      `<head><meta charset="utf-8"><title>T</title></head>`,
      `<head>${B}<meta charset="utf-8"><title>T</title></head>`,
      `<head><meta charset="utf-8">${B}<title>T</title></head>`,
    ],
    [
      "a leading <meta http-equiv=content-type>: likewise",
      `<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>T</title></head>`,
      `<head>${B}<meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>T</title></head>`,
      `<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">${B}<title>T</title></head>`,
    ],
    [
      "empty head",
      `<html><head></head><body></body></html>`,
      `<html><head>${B}</head><body></body></html>`,
      `<html><head>${B}</head><body></body></html>`,
    ],
    [
      "only the first head",
      `<head><title>a</title></head><head><title>b</title></head>`,
      `<head>${B}<title>a</title></head><head><title>b</title></head>`,
      `<head>${B}<title>a</title></head><head><title>b</title></head>`,
    ],
    [
      "no <head> tag: before the first child of <html>",
      `<!doctype html><html lang="en"><title>T</title><body>x</body></html>`,
      `<!doctype html><html lang="en">${B}<title>T</title><body>x</body></html>`,
      `<!doctype html><html lang="en">${B}<title>T</title><body>x</body></html>`,
    ],
    [
      "no <head> tag, <body> first: before <body>",
      `<html><body>x</body></html>`,
      `<html>${B}<body>x</body></html>`,
      `<html>${B}<body>x</body></html>`,
    ],
    [
      "only a body",
      `<body><p>x</p></body>`,
      `${B}<body><p>x</p></body>`,
      `${B}<body><p>x</p></body>`,
    ],
    [
      "no <html>/<head>/<body> tags: at the end",
      `<!doctype html>\n<meta name="x" content="y"><title>T</title><p>x`,
      `<!doctype html>\n<meta name="x" content="y"><title>T</title><p>x${B}`,
      `<!doctype html>\n<meta name="x" content="y"><title>T</title><p>x${B}`,
    ],
    ["a fragment: at the end", `<p>x</p>`, `<p>x</p>${B}`, `<p>x</p>${B}`],
    [
      "a <head> inside a script string is not a head",
      `<script>var h="<head>"</script><head></head>`,
      `<script>var h="<head>"</script><head>${B}</head>`,
      `<script>var h="<head>"</script><head>${B}</head>`,
    ],
    [
      "an <svg>'s <title> in the body is not a head's first child",
      `<html><head></head><body><svg><title>i</title></svg></body></html>`,
      `<html><head>${B}</head><body><svg><title>i</title></svg></body></html>`,
      `<html><head>${B}</head><body><svg><title>i</title></svg></body></html>`,
    ],
  ])("%s", async (_name, input, withCharset, withoutCharset) => {
    expect(await rewriteWith(HTML_UTF8, input)).toBe(withCharset);
    expect(await rewriteWith(HTML_NO_CHARSET, input)).toBe(withoutCharset);
  });

  it("bootstrap, CSS, code and changes together", async () => {
    const changes: Change[] = [
      { type: "custom_css", value: ".x{}" },
      attr("h1", { text: "Hi" }),
      { type: "custom_code", value: "go()" },
    ];
    const input = `<html><head><title>T</title></head><body><h1>a</h1></body></html>`;
    expect(await rewrite(input, plan(changes, { bootstrap: B, nonce: "N" }))).toBe(
      `<html><head>${B}<title>T</title><style data-ss nonce="N">.x{}</style></head><body><h1>Hi</h1>` +
        `<script data-ss nonce="N">${wrapped("go()")}</script></body></html>`,
    );
  });

  it("without head/body everything lands at the end, bootstrap first", async () => {
    const changes: Change[] = [
      { type: "custom_code", value: "go()" },
      { type: "custom_css", value: ".x{}" },
    ];
    expect(await rewrite(`<p>x</p>`, plan(changes, { bootstrap: B }))).toBe(
      `<p>x</p>${B}<style data-ss>.x{}</style><script data-ss>${wrapped("go()")}</script>`,
    );
  });

  it("head-less page with a body: bootstrap and CSS before <body>", async () => {
    const changes: Change[] = [{ type: "custom_css", value: ".x{}" }];
    expect(await rewrite(`<body>x</body>`, plan(changes, { bootstrap: B }))).toBe(
      `${B}<style data-ss>.x{}</style><body>x</body>`,
    );
  });
});

describe("matching", () => {
  it("every matching element gets the change", async () => {
    const input = `<ul><li class="i">1</li><li class="i">2</li><li>3</li><li class="i">4</li></ul>`;
    expect(await rewrite(input, plan([attr(".i", { addClass: "hit" })]))).toBe(
      `<ul><li class="i hit">1</li><li class="i hit">2</li><li>3</li><li class="i hit">4</li></ul>`,
    );
  });

  it.each<[string, string, string, string]>([
    [
      "descendant",
      "#nav a",
      `<div id="nav"><p><a>1</a></p></div><a>2</a>`,
      `<div id="nav"><p><a class="m">1</a></p></div><a>2</a>`,
    ],
    [
      "child",
      "#nav > a",
      `<div id="nav"><a>1</a><p><a>2</a></p></div>`,
      `<div id="nav"><a class="m">1</a><p><a>2</a></p></div>`,
    ],
    [
      "nested matches",
      "div",
      `<div><div>x</div></div>`,
      `<div class="m"><div class="m">x</div></div>`,
    ],
    [
      "attribute selector",
      `a[href^="/p"]`,
      `<a href="/p/1">1</a><a href="/q">2</a>`,
      `<a href="/p/1" class="m">1</a><a href="/q">2</a>`,
    ],
    [
      "nth-child",
      "li:nth-child(2)",
      `<ul><li>1</li><li>2</li><li>3</li></ul>`,
      `<ul><li>1</li><li class="m">2</li><li>3</li></ul>`,
    ],
    [
      "selector list",
      "#a, .b",
      `<p id="a">1</p><p class="b">2</p><p>3</p>`,
      `<p id="a" class="m">1</p><p class="b m">2</p><p>3</p>`,
    ],
    [":not()", "p:not(.x)", `<p class="x">1</p><p>2</p>`, `<p class="x">1</p><p class="m">2</p>`],
  ])("%s (%s)", async (_name, selector, input, expected) => {
    expect(await rewrite(input, plan([attr(selector, { addClass: "m" })]))).toBe(expected);
  });

  it("changes apply in order; a later change sees the earlier one", async () => {
    const changes: Change[] = [
      attr("#t", { style: "color:red" }),
      attr("p", { style: "margin:0" }),
      { type: "insert_html", selector: "#t", position: "after", html: "<hr>" },
    ];
    expect(await rewrite(`<p id="t">x</p>`, plan(changes))).toBe(
      `<p id="t" style="color:red; margin:0">x</p><hr>`,
    );
  });

  it("order holds across selectors: a later change on another selector runs in between", async () => {
    const changes: Change[] = [
      attr("#t", { class: "x" }),
      attr("p", { addClass: "y" }),
      attr("#t", { class: "z" }),
    ];
    expect(await rewrite(`<p id="t">x</p><p>q</p>`, plan(changes))).toBe(
      `<p id="t" class="z">x</p><p class="y">q</p>`,
    );
  });

  it("consecutive changes on one selector all apply, in order", async () => {
    const changes: Change[] = [
      attr(".c", { text: "new" }),
      attr(".c", { class: "a" }),
      attr(".c", { addClass: "b" }),
      { type: "insert_html", selector: ".c", position: "after", html: "<hr>" },
    ];
    expect(await rewrite(`<p class="c">1</p><p class="c">2</p>`, plan(changes))).toBe(
      `<p class="a b">new</p><hr><p class="a b">new</p><hr>`,
    );
  });

  it("a change on an element already removed by an earlier change is skipped", async () => {
    const changes: Change[] = [attr("#t", { remove: true }), attr("#t", { set: { title: "x" } })];
    expect(await rewrite(`<div><p id="t">x</p></div>`, plan(changes))).toBe(`<div></div>`);
  });

  it("children of an element whose content was replaced are not matched", async () => {
    const changes: Change[] = [
      attr("#t", { html: "<span>new</span>" }),
      attr("#t span", { class: "old" }),
    ];
    expect(await rewrite(`<div id="t"><span>old</span></div>`, plan(changes))).toBe(
      `<div id="t"><span>new</span></div>`,
    );
  });

  it("a bad selector is skipped with one warning while the others apply", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const changes: Change[] = [
      attr("#a", { text: "A" }),
      attr("h1 + p", { text: "never" }),
      attr("#b", { text: "B" }),
      { type: "insert_html", selector: "li:last-child", position: "after", html: "never" },
    ];
    const input = `<h1 id="a">a</h1><p id="b">b</p><ul><li>1</li></ul>`;
    const p = plan(changes);
    expect(await rewrite(input, p)).toBe(`<h1 id="a">A</h1><p id="b">B</p><ul><li>1</li></ul>`);
    expect(warn).toHaveBeenCalledTimes(2);
    expect(String(warn.mock.calls[0]?.[0])).toContain(`"h1 + p"`);
    expect(String(warn.mock.calls[1]?.[0])).toContain(`"li:last-child"`);
    // compiled once: a second request with the same changes does not warn again
    expect(await rewrite(input, p)).toBe(`<h1 id="a">A</h1><p id="b">B</p><ul><li>1</li></ul>`);
    expect(await rewrite(input, plan([...changes]))).toBe(
      `<h1 id="a">A</h1><p id="b">B</p><ul><li>1</li></ul>`,
    );
    expect(warn).toHaveBeenCalledTimes(2);
  });
});

describe("validateSelector", () => {
  it.each<[string, boolean]>([
    ["#id", true],
    [".class", true],
    ["div", true],
    ["div.a#b[data-x]", true],
    [`a[href*="x" i]`, true],
    ["ul > li", true],
    ["main section p", true],
    ["li:nth-child(2n+1)", true],
    ["li:first-child", true],
    ["p:first-of-type", true],
    ["p:nth-of-type(3)", true],
    ["p:not(.x)", true],
    ["#a, .b", true],
    ["*", true],
    ["h1 + p", false],
    ["h1 ~ p", false],
    ["li:last-child", false],
    ["li:nth-last-child(1)", false],
    ["a:hover", false],
    ["p::before", false],
    ["div:has(a)", false],
    ["p:is(.a)", false],
    ["svg|rect", false],
    ["", false],
    ["   ", false],
    ["div >", false],
    ["div,", false],
    ["#", false],
  ])("%s → %s", (selector, ok) => {
    expect(validateSelector(selector)).toBe(ok);
    expect(validateSelector(selector)).toBe(ok); // cached answer is the same
  });
});

describe("defence in depth", () => {
  it.each([
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "  javascript:alert(1)",
    "\u0001javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>",
    "DATA:text/html;base64,PHNjcmlwdD4=",
  ])("href %j is refused", async (href) => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const input = `<a id="t" href="/safe">x</a>`;
    expect(await rewrite(input, plan([attr("#t", { href, text: "y" })]))).toBe(
      `<a id="t" href="/safe">y</a>`,
    );
    expect(await rewrite(`<img id="t">`, plan([attr("#t", { src: href })]))).toBe(`<img id="t">`);
    expect(
      await rewrite(
        input,
        plan([attr("#t", { set: { href, formaction: href, "xlink:href": href } })]),
      ),
    ).toBe(input);
    expect(warn).toHaveBeenCalled();
  });

  it.each([
    ["/p?a=1", true],
    ["https://x.example/", true],
    ["mailto:a@b.c", true],
    ["tel:+1", true],
    ["#top", true],
    ["data:image/png;base64,AAAA", true],
    ["data:image/svg+xml,<svg/>", true],
    ["&#106;avascript:alert(1)", true], // literal: written as &amp;#106;…, a relative URL
  ])("isSafeUrl(%j) = %s", (url, safe) => {
    expect(isSafeUrl(url)).toBe(safe);
  });

  it.each(["onclick", "ONMOUSEOVER", "onerror", "on", "1abc", "a b", "x>y", `a"b`, ""])(
    "set of attribute %j is refused, the rest applies",
    async (name) => {
      const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
      const out = await rewrite(
        `<p id="t">x</p>`,
        plan([attr("#t", { set: { [name]: "alert(1)", title: "ok" } })]),
      );
      expect(out).toBe(`<p id="t" title="ok">x</p>`);
      expect(warn).toHaveBeenCalledTimes(1);
    },
  );

  it("unset may remove event handler attributes but refuses invalid names", async () => {
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const out = await rewrite(
      `<p id="t" onclick="x()">x</p>`,
      plan([attr("#t", { unset: ["onclick", "a b"] })]),
    );
    expect(out).toBe(`<p id="t">x</p>`);
  });
});

describe("the response", () => {
  it("keeps status and headers, drops content-length", async () => {
    const body = `<head></head><p id="t">x</p>`;
    const origin = new Response(body, {
      status: 404,
      statusText: "Not Found",
      headers: {
        ...HTML_UTF8,
        "content-length": String(body.length),
        "x-origin": "1",
        "set-cookie": "a=1",
      },
    });
    const out = rewriteHtml(
      origin,
      plan([attr("#t", { text: "longer text" })], { bootstrap: "<script></script>" }),
    );
    expect(out.status).toBe(404);
    expect(out.statusText).toBe("Not Found");
    expect(out.headers.get("content-length")).toBeNull();
    expect(out.headers.get("x-origin")).toBe("1");
    expect(out.headers.get("set-cookie")).toBe("a=1");
    expect(out.headers.get("content-type")).toBe(HTML_UTF8["content-type"]);
    expect(await out.text()).toBe(`<head><script></script></head><p id="t">longer text</p>`);
  });

  it("a response without a body comes back as it is", () => {
    const origin = new Response(null, { status: 204 });
    expect(
      rewriteHtml(origin, plan([attr("#t", { text: "x" })], { bootstrap: "<script></script>" })),
    ).toBe(origin);
  });

  it("nothing to do: the same response", () => {
    const origin = new Response("<p>x</p>", { headers: HTML_UTF8 });
    expect(rewriteHtml(origin, plan([]))).toBe(origin);
  });

  it("a charset HTMLRewriter cannot parse: the page goes out untouched", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const origin = new Response("<p id=t>x</p>", {
      headers: { "content-type": "text/html; charset=utf-16" },
    });
    const out = rewriteHtml(origin, plan([attr("#t", { text: "y" })]));
    expect(await out.text()).toBe("<p id=t>x</p>");
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

describe("streaming", () => {
  it("sends the first bytes before the origin has finished", async () => {
    const encoder = new TextEncoder();
    let release!: () => void;
    const originDone = new Promise<void>((resolve) => (release = resolve));
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulls++;
        if (pulls === 1) {
          controller.enqueue(
            encoder.encode(
              `<!doctype html><html><head><title>T</title></head><body><h1 id="t">old</h1><p>`,
            ),
          );
          return;
        }
        await originDone; // the origin is "still working" until the test has seen output
        controller.enqueue(encoder.encode(`rest</p></body></html>`));
        controller.close();
      },
    });
    const out = rewriteHtml(
      new Response(body, { headers: HTML_UTF8 }),
      plan([attr("#t", { text: "new" }), { type: "custom_code", value: "go()" }], {
        bootstrap: "<script>boot</script>",
      }),
    );
    const reader = out.body!.getReader();
    const decoder = new TextDecoder();
    let first = "";
    // Read until the first chunk's content has come out: this must not need the rest of the origin.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("output waited for the whole body")), 3000);
    });
    while (!first.includes(`<h1 id="t">new</h1>`)) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk.done) throw new Error("ended early");
      first += decoder.decode(chunk.value, { stream: true });
    }
    clearTimeout(timer);
    // The origin's second chunk cannot exist before release(): what we read came out first.
    expect(pulls).toBeGreaterThanOrEqual(1);
    expect(first).toContain(`<head><script>boot</script><title>T</title>`);
    release();
    let rest = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      rest += decoder.decode(chunk.value, { stream: true });
    }
    expect(first + rest).toBe(
      `<!doctype html><html><head><script>boot</script><title>T</title></head><body><h1 id="t">new</h1><p>rest</p>` +
        `<script data-ss>${wrapped("go()")}</script></body></html>`,
    );
  });

  it("onEnd fires once the whole document has been through the rewriter, not before", async () => {
    const encoder = new TextEncoder();
    let release!: () => void;
    const originDone = new Promise<void>((resolve) => (release = resolve));
    let pulls = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        pulls++;
        if (pulls === 1) {
          controller.enqueue(encoder.encode(`<html><head></head><body><h1 id="t">old</h1>`));
          return;
        }
        await originDone;
        controller.enqueue(encoder.encode(`<p>tail</p></body></html>`));
        controller.close();
      },
    });
    let ended = 0;
    const out = rewriteHtml(
      new Response(body, { headers: HTML_UTF8 }),
      plan([attr("#t", { text: "new" })], { onEnd: () => ended++ }),
    );
    const reader = out.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("new</h1>")) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error("ended early");
      text += decoder.decode(chunk.value, { stream: true });
    }
    expect(ended).toBe(0); // the page is still streaming
    release();
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    expect(text).toContain("<p>tail</p>");
    expect(ended).toBe(1);
  });

  it("onEnd fires at once when nothing is rewritten", () => {
    let ended = 0;
    const origin = new Response("<p>x</p>", { headers: HTML_UTF8 });
    expect(rewriteHtml(origin, plan([], { onEnd: () => ended++ }))).toBe(origin);
    expect(ended).toBe(1);
  });

  it("a 2 MB page passes through intact", async () => {
    const rows: string[] = [];
    for (let i = 0, size = 0; size < 2_100_000; i++) {
      const row = `<p class="row">row ${String(i).padStart(8, "0")} ü€</p>\n`;
      rows.push(row);
      size += row.length;
    }
    const middle = rows.join("");
    const input = `<!doctype html><html><head><title>T</title></head><body><h1 id="t">old</h1>\n${middle}<footer id="f">end</footer></body></html>`;
    expect(new TextEncoder().encode(input).byteLength).toBeGreaterThan(2_000_000);
    const out = await rewrite(
      input,
      plan([attr("#t", { text: "new" }), attr("#f", { addClass: "x" })], {
        bootstrap: "<script>b</script>",
      }),
    );
    expect(out).toBe(
      `<!doctype html><html><head><script>b</script><title>T</title></head><body><h1 id="t">new</h1>\n${middle}<footer id="f" class="x">end</footer></body></html>`,
    );
  });
});

describe("non-UTF-8 and binary-ish bytes", () => {
  const bytes = (...parts: Array<string | number[]>) => {
    const out: number[] = [];
    for (const part of parts)
      out.push(...(typeof part === "string" ? new TextEncoder().encode(part) : part));
    return new Uint8Array(out);
  };
  const run = async (input: Uint8Array, contentType: string, p: RewritePlan) =>
    new Uint8Array(
      await rewriteHtml(
        new Response(input, { headers: { "content-type": contentType } }),
        p,
      ).arrayBuffer(),
    );

  it("windows-1252 bytes are kept as they are", async () => {
    const input = bytes(
      "<head></head><p>caf",
      [0xe9, 0x80, 0x9f],
      `</p><p id="t">`,
      [0xff, 0xfe],
      "</p>",
    );
    const out = await run(
      input,
      "text/html; charset=windows-1252",
      plan([attr("#t", { set: { title: "ok" } })], { bootstrap: "<s></s>" }),
    );
    expect(Array.from(out)).toEqual(
      Array.from(
        bytes(
          "<head><s></s></head><p>caf",
          [0xe9, 0x80, 0x9f],
          `</p><p id="t" title="ok">`,
          [0xff, 0xfe],
          "</p>",
        ),
      ),
    );
  });

  it("invalid UTF-8 and control bytes in a UTF-8 page are not touched", async () => {
    const input = bytes(
      "<head></head><p>",
      [0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0x28, 0x00, 0x01, 0x7f],
      `</p><p id="t">x</p>`,
    );
    const out = await run(input, "text/html; charset=utf-8", plan([attr("#t", { text: "é" })]));
    expect(Array.from(out)).toEqual(
      Array.from(
        bytes(
          "<head></head><p>",
          [0xc3, 0x28, 0xa0, 0xa1, 0xf0, 0x28, 0x8c, 0x28, 0x00, 0x01, 0x7f],
          `</p><p id="t">é</p>`,
        ),
      ),
    );
  });

  it("text set in a windows-1252 page is encoded in that charset", async () => {
    const out = await run(
      bytes(`<p id="t">x</p>`),
      "text/html; charset=windows-1252",
      plan([attr("#t", { text: "é" })]),
    );
    expect(Array.from(out)).toEqual(Array.from(bytes(`<p id="t">`, [0xe9], "</p>")));
  });
});

describe("handler calls (each one is a turn of workerd's event loop, so they are counted)", () => {
  /**
   * Wraps every handler given to HTMLRewriter (and every end-tag callback registered from one)
   * with a counter; returns the count so far.
   */
  function countHandlerCalls(): () => number {
    let calls = 0;
    const counted = <F extends (...args: never[]) => unknown>(fn: F): F =>
      ((...args: Parameters<F>) => {
        calls++;
        return fn(...args);
      }) as F;
    const wrapHandlers = (handlers: Record<string, unknown>): Record<string, unknown> => {
      const out: Record<string, unknown> = {};
      for (const [key, fn] of Object.entries(handlers)) {
        if (typeof fn !== "function") continue;
        out[key] =
          key === "element"
            ? counted((el: Element) => {
                const onEndTag = el.onEndTag.bind(el);
                Object.defineProperty(el, "onEndTag", {
                  value: (cb: (end: EndTag) => void) => onEndTag(counted(cb)),
                });
                return (fn as (el: Element) => unknown).call(handlers, el);
              })
            : counted((...args: unknown[]) =>
                (fn as (...a: unknown[]) => unknown).apply(handlers, args),
              );
      }
      return out;
    };
    const on = HTMLRewriter.prototype.on;
    const onDocument = HTMLRewriter.prototype.onDocument;
    vi.spyOn(HTMLRewriter.prototype, "on").mockImplementation(function (
      this: HTMLRewriter,
      selector: string,
      handlers: HTMLRewriterElementContentHandlers,
    ) {
      return on.call(this, selector, wrapHandlers(handlers as Record<string, unknown>));
    });
    vi.spyOn(HTMLRewriter.prototype, "onDocument").mockImplementation(function (
      this: HTMLRewriter,
      handlers: HTMLRewriterDocumentContentHandlers,
    ) {
      return onDocument.call(this, wrapHandlers(handlers as Record<string, unknown>));
    });
    return () => calls;
  }

  const page =
    `<!doctype html><html><head><meta charset="utf-8"><title>T</title><link rel="stylesheet" href="/s.css"></head>` +
    `<body><svg><title>icon</title></svg><h1 id="a">a</h1><p class="b">b</p><p class="b">c</p></body></html>`;

  const changes: Change[] = [
    attr("#a", { text: "A" }),
    attr(".b", { addClass: "x" }),
    attr(".b", { set: { "data-v": "1" } }),
  ];

  it.each<[string, Record<string, string>, Change[], string, number]>([
    [
      "charset in the header: <head> only",
      HTML_UTF8,
      [],
      `<head><script>B</script><meta charset="utf-8">`,
      1,
    ],
    [
      "no charset in the header: <head>, its first child, </head>",
      { "content-type": "text/html" },
      [],
      `<head><meta charset="utf-8"><script>B</script><title>`,
      3,
    ],
    [
      "with custom CSS and code: also </head>, <body>, </body>",
      HTML_UTF8,
      [
        { type: "custom_css", value: ".x{}" },
        { type: "custom_code", value: "go()" },
      ],
      `<head><script>B</script><meta charset="utf-8">`,
      4,
    ],
  ])(
    "a normal page, %s; 1 per element and selector run; 1 at the end",
    async (_name, headers, extra, expected, injections) => {
      const calls = countHandlerCalls();
      let ended = 0;
      const out = await rewriteHtml(
        new Response(page, { headers }),
        plan([...changes, ...extra], { bootstrap: "<script>B</script>", onEnd: () => ended++ }),
      ).text();
      expect(out).toContain(expected);
      expect(out).toContain(`<svg><title>icon</title></svg><h1 id="a">A</h1>`);
      expect(out).toContain(`<p class="b x" data-v="1">b</p><p class="b x" data-v="1">c</p>`);
      expect(ended).toBe(1);
      // #a once; .b twice (its two changes share one handler); the end of the document once
      // (end-of-document injections and onEnd together).
      expect(calls()).toBe(injections + 1 + 2 + 1);
    },
  );

  it("changes only (no bootstrap, no onEnd): no injection handlers at all", async () => {
    const calls = countHandlerCalls();
    await rewrite(page, plan([attr("#a", { text: "A" })]));
    expect(calls()).toBe(1);
  });
});
