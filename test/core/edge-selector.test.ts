/**
 * `edgeSelectorProblem` against the shared vectors in test/fixtures/edge-selectors.json:
 * `{ selector, edge, reason?, runtime? }` — `edge` is what the pure check answers (true: no
 * problem), `reason` a piece of the one-line reason expected when it refuses, and `runtime` (only
 * where it differs from `edge`) what the real HTMLRewriter answers. The same file runs against
 * HTMLRewriter in test/edge/edge-selector-runtime.test.ts, which is what proves the pure check
 * matches the runtime.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { edgeSelectorProblem } from "../../src/core/edge-selector";

interface Vector {
  selector: string;
  edge: boolean;
  reason?: string;
  runtime?: boolean;
}

const VECTORS = JSON.parse(
  readFileSync(new URL("../fixtures/edge-selectors.json", import.meta.url), "utf8"),
) as Vector[];

describe("edgeSelectorProblem: the shared vectors", () => {
  it("covers every supported and unsupported form", () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(70);
    expect(VECTORS.some((v) => v.edge)).toBe(true);
    expect(VECTORS.some((v) => !v.edge)).toBe(true);
    for (const v of VECTORS) {
      // a reason is pinned for every refusal; `runtime` only where the check is stricter
      if (!v.edge) expect(v.reason, JSON.stringify(v.selector)).toBeTruthy();
      if (v.runtime !== undefined) expect(v.runtime).toBe(!v.edge);
    }
  });

  it.each(VECTORS.map((v) => [JSON.stringify(v.selector), v] as const))("%s", (_name, v) => {
    const problem = edgeSelectorProblem(v.selector);
    if (v.edge) {
      expect(problem).toBeUndefined();
    } else {
      expect(problem).toBeDefined();
      expect(problem).toContain(v.reason);
      expect(problem).not.toMatch(/[\n\r]/);
    }
  });
});

describe("edgeSelectorProblem: the reason", () => {
  it("names the part that cannot run", () => {
    expect(edgeSelectorProblem("h1 + p")).toBe(
      'the "+" combinator (next sibling) cannot run at the edge',
    );
    expect(edgeSelectorProblem("ul li:last-child")).toBe(":last-child cannot run at the edge");
    expect(edgeSelectorProblem("p::before")).toBe(
      "::before (a pseudo-element) cannot run at the edge",
    );
    expect(edgeSelectorProblem("svg|rect")).toBe("namespaces (svg|rect) cannot run at the edge");
  });

  it("reports the first bad part of a list", () => {
    expect(edgeSelectorProblem("a, b:empty, c ~ d")).toBe(":empty cannot run at the edge");
  });

  it("is one line of bounded length whatever the selector holds", () => {
    for (const selector of [
      ":foo\\a bar",
      ":nth-child(2\nn)",
      `:nth-child(${"1".repeat(5000)}x)`,
      `svg\\a |rect`,
      `:not(${":x".repeat(3000)})`,
    ]) {
      const problem = edgeSelectorProblem(selector);
      expect(problem, selector).toBeDefined();
      // eslint-disable-next-line no-control-regex -- control characters are what must not be there
      expect(problem).not.toMatch(/[\u0000-\u001f\u2028\u2029]/);
      expect(problem!.length).toBeLessThanOrEqual(300);
    }
    expect(edgeSelectorProblem(":foo\\a bar")).toBe(":foo\\a bar cannot run at the edge");
  });

  it("calls a parse error invalid", () => {
    expect(edgeSelectorProblem("[a=")).toMatch(/^invalid selector: /);
    expect(edgeSelectorProblem("a:not()")).toMatch(/^invalid selector: /);
  });

  it("answers for any string without throwing", () => {
    for (const s of [
      "\\",
      "[",
      "(",
      ":",
      "::",
      "#",
      ".",
      "\u0000",
      "a".repeat(5000),
      "a ".repeat(2000),
    ])
      expect(() => edgeSelectorProblem(s)).not.toThrow();
    expect(edgeSelectorProblem(42 as unknown as string)).toMatch(/^invalid selector/);
  });
});
