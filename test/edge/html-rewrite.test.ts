import { describe, it } from "vitest";
describe("scratch", () => {
  it("probe", async () => {
    for (const ct of ["text/html; charset=utf-16", "text/html; charset=bogus", "text/html; charset=\"UTF-8\"", "text/html;charset=latin1"]) {
      let res: Response;
      try { res = new HTMLRewriter().on("p", { element(e) { e.setAttribute("a", "1"); } }).transform(new Response("<p>x</p>", { headers: { "content-type": ct } })); } catch (e) { console.log(ct, "SYNC THROW", String(e)); continue; }
      try { console.log(ct, await res.text()); } catch (e) { console.log(ct, "ASYNC THROW", String(e)); }
    }
  });
});
