/**
 * The proof that the pure check (src/core/edge-selector.ts) matches the runtime: every vector of
 * test/fixtures/edge-selectors.json, handed to the REAL HTMLRewriter through `validateSelector`,
 * is accepted exactly when the vector says the edge can run it (`runtime`, where present, records
 * a selector the pure check refuses on purpose although HTMLRewriter accepts it: input cut short,
 * which HTMLRewriter closes at its end, or a comment or an escape in an `:nth-child()` argument;
 * see src/core/edge-selector.ts). test/core/edge-selector.test.ts runs the same file against
 * `edgeSelectorProblem`.
 */
import { describe, expect, it } from "vitest";
import { edgeSelectorProblem } from "../../src/core/edge-selector";
import { validateSelector } from "../../src/edge/html-rewrite";
import VECTORS from "../fixtures/edge-selectors.json";

interface Vector {
  selector: string;
  edge: boolean;
  reason?: string;
  runtime?: boolean;
}

describe("HTMLRewriter agrees with the edge selector vectors", () => {
  it.each((VECTORS as Vector[]).map((v) => [JSON.stringify(v.selector), v] as const))(
    "%s",
    (_name, v) => {
      expect(validateSelector(v.selector)).toBe(v.runtime ?? v.edge);
      // and the pure check, in workerd too
      expect(edgeSelectorProblem(v.selector) === undefined).toBe(v.edge);
    },
  );
});

describe("HTMLRewriter agrees with the pure check on generated selectors", () => {
  // Pieces that are valid, unsupported, invalid or merely odd, glued at random (fixed seed, so
  // the run is repeatable): the pure check must never accept what HTMLRewriter refuses, and may
  // refuse what HTMLRewriter accepts only for input cut short or an :nth-child() argument with a
  // comment or an escape (see the header).
  const PIECES = [
    "a",
    "div",
    "*",
    "#x",
    ".y",
    ".-z",
    "#1",
    ".\\31 a",
    "[a]",
    "[a=b]",
    "[a='b c']",
    '[a^="q" i]',
    "[a|=x s]",
    "[ns|a]",
    "[a=1]",
    "[|a]",
    "[*|a]",
    ":first-child",
    ":last-child",
    ":nth-child(2n+1)",
    ":nth-child(odd)",
    ":nth-of-type(3)",
    ":nth-child(2n + 1)",
    ":nth-child(-n+ 2)",
    ":nth-child(n of a)",
    ":not(.q)",
    ":not(a, .b)",
    ":not(a b)",
    ":not(:not(p))",
    ":hover",
    "::before",
    ":first-of-type",
    ":empty",
    ":is(a)",
    "svg|a",
    "*|b",
    "|c",
    "é",
    "\u00a0",
    "\u0080",
    "\u0000",
    "\u0001",
    "/**/",
    " ",
    "\t",
    "\n",
    "\\",
    "\\*",
    "\\31 ",
    "(",
    ")",
    "[",
    "]",
    "'",
    '"',
    "-",
    "--",
    "-1",
    "_",
    "1",
    "0",
    "2n",
    "n",
    "of",
    ":",
    "::",
    ":not(",
    ":nth-child(",
    ":first-child(",
    "!",
    "%",
    "|",
    "||",
    "|=",
    "=",
    "~=",
    "^",
    "$",
    "*|",
    "ns|",
    "{",
    ";",
    "<",
    "@",
    "&",
    "A",
    "[a=",
    "[a ~=",
    "'q'",
    "i]",
    " s ]",
    "=b]",
    "\\32",
    "\ud800",
    "😀",
  ];
  const COMBINATORS = [" ", " > ", ">", " + ", "~", ", ", ",", "  ", "\t", "", "||", " >> "];
  let seed = 20240517;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const generated = new Set<string>();
  while (generated.size < 8000) {
    let selector = "";
    const parts = 1 + next(4);
    for (let p = 0; p < parts; p++) {
      for (let k = 1 + next(3); k > 0; k--) selector += PIECES[next(PIECES.length)];
      if (p < parts - 1) selector += COMBINATORS[next(COMBINATORS.length)];
    }
    generated.add(selector);
  }

  /** An :nth-child() / :nth-of-type() argument holding a comment or an escape. */
  const NTH_COMMENT_OR_ESCAPE = /:nth-(?:child|of-type)\([^)]*(?:\/\*|\\)/i;

  it("8000 selectors", () => {
    const disagreements: string[] = [];
    let accepted = 0;
    for (const selector of generated) {
      const runtime = validateSelector(selector);
      const problem = edgeSelectorProblem(selector);
      if (runtime) accepted++;
      const agrees =
        (problem === undefined) === runtime ||
        (runtime &&
          (/unterminated|ends with a backslash/.test(problem ?? "") ||
            (NTH_COMMENT_OR_ESCAPE.test(selector) && /an\+b|an escape/.test(problem ?? ""))));
      if (!agrees) disagreements.push(`${JSON.stringify(selector)}: ${runtime} / ${problem}`);
    }
    expect(disagreements).toEqual([]);
    // the generator reaches both answers, in numbers
    expect(accepted).toBeGreaterThan(200);
    expect(generated.size - accepted).toBeGreaterThan(200);
  });
});
