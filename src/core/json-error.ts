/**
 * Describes why a text is not JSON without quoting any of it.
 *
 * V8's `JSON.parse` errors quote a piece of the input (`Unexpected token 'b', ..."ple.com",
 * bob]}}" is not valid JSON`). The texts parsed here may hold private list members (a
 * hand-written datafile with inline `web.lists[].values`, a members document), and their problems
 * reach `/_ss/health` and the logs (docs/security.md "List members stay private"). So the message
 * is built here from the position of the first offending character alone — with its line and
 * column, which is what someone fixing the file by hand needs — and never from the engine's text.
 * Pure; only run once `JSON.parse` has failed, so its speed does not matter.
 */

/** The first place where `text` stops being JSON (RFC 8259), and what is wrong there. */
export interface JsonSyntaxError {
  /** Offset (UTF-16 code units) of the offending character; `text.length` at an early end. */
  position: number;
  /** What is wrong there, in words that never quote the input. */
  reason: string;
}

const WHITESPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const SIMPLE_ESCAPES = new Set([...'"\\/bfnrt'].map((c) => c.charCodeAt(0)));
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/**
 * Where `text` stops being JSON, or `null` when it is JSON. Iterative (an explicit stack of open
 * brackets), so deeply nested input cannot overflow the call stack.
 */
export function findJsonSyntaxError(text: string): JsonSyntaxError | null {
  const n = text.length;
  let i = 0;
  /** Open containers: `[` or `{` (their char codes). */
  const open: number[] = [];
  const at = (reason: string): JsonSyntaxError => ({
    position: i,
    reason: i >= n ? "unexpected end of input" : reason,
  });
  const skipWhitespace = () => {
    while (i < n && WHITESPACE.has(text.charCodeAt(i))) i++;
  };
  /** Scans the string starting at `i` (a `"`); an error, or null with `i` past its end. */
  const string = (): JsonSyntaxError | null => {
    for (i++; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return null;
      }
      if (c < 0x20) return at("control character in a string (escape it)");
      if (c !== 0x5c) continue;
      i++;
      const escaped = text.charCodeAt(i);
      if (escaped === 0x75) {
        for (let k = 1; k <= 4; k++) {
          if (!isHex(text.charCodeAt(i + k))) {
            i += k;
            return at("bad \\u escape in a string (four hex digits expected)");
          }
        }
        i += 4;
      } else if (!SIMPLE_ESCAPES.has(escaped)) {
        return at("bad escape in a string");
      }
    }
    return { position: n, reason: "unterminated string" };
  };
  const number = (): JsonSyntaxError | null => {
    if (text.charCodeAt(i) === 0x2d) {
      i++;
      if (!isDigit(text.charCodeAt(i))) return at("no digit after a minus sign");
    }
    if (text.charCodeAt(i) === 0x30) i++;
    else while (isDigit(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 0x2e) {
      i++;
      if (!isDigit(text.charCodeAt(i))) return at("no digit after a decimal point");
      while (isDigit(text.charCodeAt(i))) i++;
    }
    if ((text.charCodeAt(i) | 0x20) === 0x65) {
      i++;
      if (text.charCodeAt(i) === 0x2b || text.charCodeAt(i) === 0x2d) i++;
      if (!isDigit(text.charCodeAt(i))) return at("no digit in an exponent");
      while (isDigit(text.charCodeAt(i))) i++;
    }
    return null;
  };
  /** After `{` or `,` in an object: a key and its colon; `i` then at the value. */
  const key = (): JsonSyntaxError | null => {
    skipWhitespace();
    if (text.charCodeAt(i) !== 0x22) return at("expected a property name in double quotes");
    const bad = string();
    if (bad) return bad;
    skipWhitespace();
    if (text.charCodeAt(i) !== 0x3a) return at("expected ':' after a property name");
    i++;
    return null;
  };

  for (;;) {
    // A value.
    skipWhitespace();
    const c = text.charCodeAt(i);
    let bad: JsonSyntaxError | null = null;
    if (c === 0x7b || c === 0x5b) {
      i++;
      skipWhitespace();
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (text.charCodeAt(i) === close) {
        i++;
      } else {
        open.push(c);
        if (c === 0x7b && (bad = key())) return bad;
        continue;
      }
    } else if (c === 0x22) {
      bad = string();
    } else if (c === 0x2d || isDigit(c)) {
      bad = number();
    } else {
      const word = c === 0x74 ? "true" : c === 0x66 ? "false" : c === 0x6e ? "null" : "";
      if (word === "") return at("unexpected character (expected a JSON value)");
      for (let k = 0; k < word.length; k++, i++)
        if (text.charCodeAt(i) !== word.charCodeAt(k)) return at(`unexpected character in ${word}`);
    }
    if (bad) return bad;

    // After a value: close containers, or a separator that starts the next value.
    for (;;) {
      skipWhitespace();
      const container = open[open.length - 1];
      if (container === undefined) {
        return i < n ? at("unexpected text after the JSON value") : null;
      }
      const next = text.charCodeAt(i);
      const close = container === 0x7b ? 0x7d : 0x5d;
      if (next === close) {
        i++;
        open.pop();
        continue;
      }
      if (next !== 0x2c)
        return at(
          container === 0x7b
            ? "expected ',' or '}' in an object"
            : "expected ',' or ']' in an array",
        );
      i++;
      if (container === 0x7b && (bad = key())) return bad;
      break;
    }
  }
}

/** 1-based line and column of `position` in `text` (lines end at `\n`). */
export function lineColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(position, text.length);
  for (let i = text.indexOf("\n"); i !== -1 && i < end; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: end - lineStart + 1 };
}

/**
 * Why `text` (which `JSON.parse` rejected) is not JSON: `<reason> at position N (line L column
 * C)`, quoting nothing of the text.
 */
export function describeJsonSyntaxError(text: string): string {
  if (text.charCodeAt(0) === 0xfeff)
    return "the text starts with a byte-order mark (U+FEFF); save it as UTF-8 without BOM";
  const found = findJsonSyntaxError(text);
  // `JSON.parse` rejected it, so `found` is never null; should the two disagree, say no more.
  if (found === null) return "not JSON";
  const { line, column } = lineColumn(text, found.position);
  return `${found.reason} at position ${found.position} (line ${line} column ${column})`;
}
