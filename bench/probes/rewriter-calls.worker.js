/* global HTMLRewriter */
// The Worker of bench/probes/rewriter-calls.ts, run by plain workerd (no wrangler, no
// inspector). `?v=` picks what it does with the origin's page; SELECTORS (JSON) are the 40
// selectors of the edge-latency bench's changes; `&count=1` answers with the number and size of
// the chunks the rewritten body comes in instead of the body.
const noop = { element() {} };
const mark = {
  element(el) {
    el.setAttribute("data-probe", "");
  },
};

function rewriterFor(v, selectors) {
  const rw = new HTMLRewriter();
  switch (v) {
    case "none":
      return rw;
    case "one":
      return rw.on("main", noop);
    case "unmatched":
      for (const s of selectors) rw.on(`${s} .nothing-here`, mark);
      return rw;
    case "noop":
      for (const s of selectors) rw.on(s, noop);
      return rw;
    case "set":
      for (const s of selectors) rw.on(s, mark);
      return rw;
    case "list":
      return rw.on(selectors.join(", "), mark);
    default:
      return null;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const v = url.searchParams.get("v") ?? "pass";
    const origin = await fetch(env.ORIGIN + url.pathname, {
      headers: { "accept-encoding": "identity" },
    });
    if (v === "pass") return origin;
    const rw = rewriterFor(v, JSON.parse(env.SELECTORS));
    if (rw === null) return new Response(`unknown variant ${v}`, { status: 400 });
    const out = rw.transform(origin);
    if (!url.searchParams.has("count")) return out;
    const reader = out.body.getReader();
    let chunks = 0;
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks++;
      bytes += value.byteLength;
    }
    return Response.json({ chunks, bytes });
  },
};
