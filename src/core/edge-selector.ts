/**
 * Which CSS selectors the edge can run: a pure answer (no DOM, no Workers API) to the question
 * the edge's rewriter (Cloudflare HTMLRewriter, src/edge/html-rewrite.ts) answers by throwing at
 * `.on()` time. The datafile validator uses it to refuse changes the edge would skip, and the
 * visual editor to refuse selectors before they are saved. docs/changes.md "Selectors" is the
 * user-facing list.
 *
 * HTMLRewriter matches while the HTML streams, so it can only use what it knows when an element
 * starts: the element itself, its ancestors and its earlier siblings' count. It supports `*`,
 * type, `#id`, `.class`, attribute selectors (`[a]`, `=`, `~=`, `^=`, `$=`, `*=`, `|=`, with the
 * ` i` / ` s` flags), `:nth-child(an+b)`, `:first-child`, `:nth-of-type(an+b)`,
 * `:first-of-type`, `:not()` of compound selectors, the descendant and child combinators, and
 * selector lists. Everything else — sibling combinators, "last"/"only" pseudo-classes, `:has()`,
 * pseudo-elements, namespaces … — makes it throw.
 *
 * The check has two passes: a lexical scan of the raw text, for what the css-what parser lets
 * through but CSS does not allow (a name starting with a digit, stray brackets, characters that
 * mean nothing in a selector), then css-what's tokens, walked for the supported forms.
 * test/fixtures/edge-selectors.json holds the cases, run against this function AND against the
 * real HTMLRewriter (test/edge/edge-selector-runtime.test.ts). Where the two differ on purpose
 * this check is the stricter, on forms nobody writes on purpose: a selector cut short (`[a`,
 * `a:not(b`, an unterminated string or comment), which HTMLRewriter closes at the end of its
 * input; a comment or an escape inside an `:nth-child()` / `:nth-of-type()` argument
 * (`:nth-child(2n-\31)`); an escaped `i` / `s` flag (`[a=b \69]`).
 */
import { parse, SelectorType, type Selector } from "css-what";

/**
 * Why the edge (HTMLRewriter) cannot run `selector`, as one line naming the part (for example
 * `the "+" combinator (next sibling) cannot run at the edge`, `:last-child cannot run at the
 * edge`, `invalid selector: …`), or `undefined` when it can. Pure and deterministic; never throws.
 * docs/changes.md "Selectors" lists the supported forms.
 */
export function edgeSelectorProblem(selector: string): string | undefined {
  if (typeof selector !== "string") return "invalid selector: not a string";
  if (FAST_PATH.test(selector)) return undefined;
  // HTMLRewriter takes the selector as UTF-8, which a lone surrogate has no encoding in.
  if (LONE_SURROGATE.test(selector))
    return "invalid selector: a lone surrogate (half of a UTF-16 pair, not a character)";
  // CSS input preprocessing: U+0000 is read as U+FFFD, as HTMLRewriter's tokenizer does.
  const text = selector.replace(/\0/g, "\uFFFD");
  if (isBlank(text)) return "invalid selector: it is empty";
  const scanned = scan(text);
  if (typeof scanned !== "string")
    return oneLine(scanned.invalid ? `invalid selector: ${scanned.problem}` : scanned.problem);
  try {
    // css-what's name pattern starts non-ASCII at U+00B0; CSS at U+0080. Escaped, the parser
    // reads those characters as the same name characters.
    const list = parse(
      scanned.replace(/[\u0080-\u00af]/g, (c) => `\\${c.charCodeAt(0).toString(16)} `),
    );
    if (list.length === 0) return "invalid selector: it is empty";
    const problem = listProblem(list, false);
    return problem === undefined ? undefined : oneLine(problem);
  } catch (error) {
    // A parse error; or, for :not() nested thousands deep, the stack.
    return oneLine(`invalid selector: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * A reason as one line of bounded length: names from the selector are unescaped by the parser
 * (`\a ` is a line feed), so control characters are written as escapes, and long parts cut.
 */
function oneLine(reason: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what is replaced
  const line = reason.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => {
    return `\\${c.charCodeAt(0).toString(16)} `;
  });
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

// ---------------------------------------------------------------------------------------------
// Fast path

/** A CSS name that needs no escapes and does not start with a digit or "-" + digit. */
const NAME = "-?[A-Za-z_][\\w-]*";
/** A compound of an optional type (or `*`) and any `#id` / `.class`, not empty. */
const COMPOUND = `(?:(?:[A-Za-z][\\w-]*|\\*)(?:[.#]${NAME})*|(?:[.#]${NAME})+)`;
const COMBINATOR = "(?:[ \\t\\n\\r\\f]*>[ \\t\\n\\r\\f]*|[ \\t\\n\\r\\f]+)";
/**
 * Selectors that are supported at a glance: compounds of type, `*`, `#id` and `.class` joined by
 * descendant and child combinators — what most changes use. Anything else takes the full check.
 */
const FAST_PATH = new RegExp(
  `^[ \\t\\n\\r\\f]*${COMPOUND}(?:${COMBINATOR}${COMPOUND})*[ \\t\\n\\r\\f]*$`,
);

// ---------------------------------------------------------------------------------------------
// Lexical scan

/** A UTF-16 high surrogate not followed by a low one, or a low one not after a high one. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

function isNewline(c: number): boolean {
  return c === 0x0a || c === 0x0c || c === 0x0d;
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (!isWhitespace(text.charCodeAt(i))) return false;
  return true;
}

/** A character that may start a CSS name (a letter, `_`, or non-ASCII). */
function isNameStart(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c >= 0x80;
}

/** A character that may continue a CSS name. */
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** css-what parses the argument of these as a selector list; other functions take raw text. */
const SELECTOR_ARGUMENT = new Set(["not", "is", "where", "has", "matches", "host", "host-context"]);

/** What `scan` finds wrong: `invalid` unless the selector is valid CSS the edge does not support. */
interface ScanProblem {
  problem: string;
  invalid: boolean;
}

function invalid(message: string): ScanProblem {
  return { problem: message, invalid: true };
}

/**
 * The raw text checked for what css-what would not notice, and returned without its comments
 * (css-what mistakes whitespace on both sides of a comment for two combinators); or what is
 * wrong. Names must be CSS identifiers (css-what takes `.123`, `1a` or `#-` as names); attribute
 * selectors are read whole (`attributeSelector`: css-what takes `[a=]` or `[a=b=c]`); quotes only
 * inside `[…]`; `(` only after a pseudo-class; no escape in an `:nth-child()` argument (css-what
 * reads `\32` as the number 2); no characters that mean nothing in a selector (`!`, `<`, `{`, `;`
 * …). Named namespaces (`svg|rect`) are found here too, not invalid but unsupported: css-what
 * reads an escaped `\*|b` as the universal `*|b`.
 */
function scan(text: string): string | ScanProblem {
  const length = text.length;
  let cleaned = "";
  /** Where the text not yet copied to `cleaned` starts. */
  let copied = 0;
  /** Where the last name ended (an escape's trailing space included). */
  let nameEnd = -1;
  let openParens = 0;
  /** What the character before the current name was: `.`, `#`, `:`, or "" for anything else. */
  let introducer = "";
  let i = 0;
  while (i < length) {
    const c = text.charCodeAt(i);
    const ch = text[i]!;
    if (isWhitespace(c)) {
      i++;
      introducer = "";
      continue;
    }
    if (c === 0x5c /* \ */ || isNameChar(c)) {
      // CSS reads `-->` (an HTML comment's end) as one token before it reads a name; after "#"
      // it reads the name (`#-->a` is `#--` > `a`).
      if (introducer !== "#" && text.startsWith("-->", i))
        return invalid('"-->" (an HTML comment end)');
      const start = i;
      const end = identifierAt(text, i);
      if (typeof end !== "number") return end!;
      i = nameEnd = end;
      const name = text.slice(start, i);
      const bar = skipComments(text, i);
      const following = text[bar + 1];
      if (text[bar] === "|" && following !== "=" && following !== "|" && introducer === "")
        return namespaceProblem(text, name, bar, false);
      if (text.charCodeAt(i) === 0x28 /* ( */) {
        if (introducer !== ":")
          return invalid(`"(" after ${JSON.stringify(name)}: only pseudo-classes take arguments`);
        if (SELECTOR_ARGUMENT.has(name.toLowerCase())) {
          openParens++;
          i++;
        } else {
          // The argument is raw text (an+b for :nth-child): checked on css-what's tokens, which
          // hold it unescaped. HTMLRewriter reads an escape only as part of a name, so `\32` is
          // the name "2", not a number: refused here.
          const nth = NTH.test(name);
          let depth = 1;
          let j = i + 1;
          while (j < length && depth > 0) {
            const d = text.charCodeAt(j);
            if (d === 0x5c) {
              if (nth) return invalid(`an escape ("\\") in the argument of :${name}()`);
              j++;
            } else if (d === 0x28) depth++;
            else if (d === 0x29) depth--;
            j++;
          }
          if (depth > 0) return invalid(`an unterminated "(" after :${name}`);
          i = j;
        }
      }
      introducer = "";
      continue;
    }
    switch (ch) {
      case "/": {
        if (text[i + 1] !== "*") return invalid('a "/" outside a comment');
        const end = text.indexOf("*/", i + 2);
        if (end < 0) return invalid("an unterminated comment");
        // A comment separates tokens without being whitespace: `a/**/b` is two type selectors,
        // which removing the comment (or several in a row) would join into one name.
        const after = text.charCodeAt(skipComments(text, end + 2));
        if (nameEnd === i && (after === 0x5c || isNameChar(after)))
          return invalid("a comment between two names");
        cleaned += text.slice(copied, i);
        copied = i = end + 2;
        continue;
      }
      case "[": {
        const read = attributeSelector(text, i);
        if ("problem" in read) return read;
        cleaned += text.slice(copied, i) + read.cleaned;
        copied = i = read.end;
        introducer = "";
        continue;
      }
      case '"':
      case "'":
        return invalid("a quoted string outside an attribute selector");
      case "]":
        return invalid('a "]" without its "["');
      case ".":
      case "#":
      case ":": {
        let next = i + 1;
        if (ch === ":" && text[next] === ":") next++;
        const d = text.charCodeAt(next);
        if (next >= length || !(d === 0x5c || isNameChar(d)))
          return invalid(`${JSON.stringify(text.slice(i, next))} must be followed by a name`);
        introducer = ch;
        i = next;
        continue;
      }
      case "(":
        return invalid('"(" that does not follow a pseudo-class');
      case ")":
        if (openParens === 0) return invalid('a ")" without its "("');
        openParens--;
        break;
      case "|": {
        // `ns|x`, `*|x`, `|x`, `||` (column)
        if (text.charCodeAt(i + 1) === 0x7c) {
          i += 2;
          introducer = "";
          continue;
        }
        const d = text.charCodeAt(skipComments(text, i + 1));
        if (!(d === 0x5c || d === 0x2a || isNameChar(d)))
          return invalid('a "|" that is not part of a namespace prefix');
        break;
      }
      case "*":
      case ",":
      case ">":
      case "+":
      case "~":
        break;
      default:
        return invalid(
          c < 0x20 || c === 0x7f
            ? "a control character"
            : `${JSON.stringify(ch)} has no meaning in a selector`,
        );
    }
    introducer = "";
    i++;
  }
  if (openParens > 0) return invalid('an unterminated "("');
  return cleaned + text.slice(copied);
}

/** The pseudo-classes whose argument is an+b (the supported ones; the others are refused). */
const NTH = /^nth-(?:child|of-type)$/i;

/** The operators of attribute selectors, after the name: `=`, `~=`, `^=`, `$=`, `*=`, `|=`. */
const ATTRIBUTE_OPERATOR = /^[~^$*|]?=/;

/**
 * The attribute selector whose `[` is at `open`, read as CSS reads it: a name (after an optional
 * `*|` or `|`), then `]`, or an operator, exactly one value (a name or a quoted string), an
 * optional `i` / `s` flag and `]`, with whitespace or comments between them. Returns where it
 * ends and its text with each comment made a space (css-what does not know comments there), or
 * what is wrong.
 */
function attributeSelector(
  text: string,
  open: number,
): { end: number; cleaned: string } | ScanProblem {
  const length = text.length;
  const unterminated = invalid('an unterminated "["');
  let cleaned = "[";
  let i = open + 1;
  const copy = (end: number) => {
    cleaned += text.slice(i, end);
    i = end;
  };
  /** Whitespace and comments skipped; false for an unterminated comment. */
  const skip = (): boolean => {
    while (i < length) {
      if (isWhitespace(text.charCodeAt(i))) {
        copy(i + 1);
      } else if (text.startsWith("/*", i)) {
        const end = text.indexOf("*/", i + 2);
        if (end < 0) return false;
        cleaned += " ";
        i = end + 2;
      } else {
        break;
      }
    }
    return true;
  };
  const unclosedComment = invalid("an unterminated comment");
  if (!skip()) return unclosedComment;
  const prefixed = text[i] === "|" || (text[i] === "*" && text[i + 1] === "|");
  if (prefixed && !text.startsWith("=", i + (text[i] === "*" ? 2 : 1)))
    copy(i + (text[i] === "*" ? 2 : 1));
  const nameStart = i;
  const name = identifierAt(text, i);
  if (name === undefined) {
    if (i >= length) return unterminated;
    return invalid(`${charAt(text, i)} where an attribute selector needs the attribute's name`);
  }
  if (typeof name !== "number") return name;
  copy(name);
  const bar = skipComments(text, i);
  if (!prefixed && text[bar] === "|" && text[bar + 1] !== "=")
    return namespaceProblem(text, text.slice(nameStart, i), bar, true);
  if (!skip()) return unclosedComment;
  if (i >= length) return unterminated;
  if (text[i] === "]") return { end: i + 1, cleaned: `${cleaned}]` };
  const operator = ATTRIBUTE_OPERATOR.exec(text.slice(i, i + 2))?.[0];
  if (operator === undefined) {
    return invalid(
      `${charAt(text, i)} after the attribute's name, where "]" or an operator (=, ~=, ^=, $=, *=, |=) goes`,
    );
  }
  copy(i + operator.length);
  if (!skip()) return unclosedComment;
  if (i >= length) return unterminated;
  if (text[i] === '"' || text[i] === "'") {
    const end = stringEnd(text, i);
    if (typeof end !== "number") return end;
    copy(end);
  } else {
    const value = identifierAt(text, i);
    if (value === undefined) {
      return invalid(
        `${charAt(text, i)} after "${operator}", where the value goes (a name or a quoted string)`,
      );
    }
    if (typeof value !== "number") return value;
    copy(value);
  }
  if (!skip()) return unclosedComment;
  if (i >= length) return unterminated;
  if (text[i] !== "]") {
    // The flag: `i` or `s`, one letter, any case.
    const flag = text.charCodeAt(i) | 0x20;
    const after = text.charCodeAt(i + 1);
    if (!((flag === 0x69 || flag === 0x73) && !(after === 0x5c || isNameChar(after)))) {
      return invalid(
        `${charAt(text, i)} after the attribute's value, where "]" or the flag i or s goes`,
      );
    }
    copy(i + 1);
    if (!skip()) return unclosedComment;
    if (i >= length) return unterminated;
    if (text[i] !== "]") return invalid(`${charAt(text, i)} after the flag, where "]" goes`);
  }
  return { end: i + 1, cleaned: `${cleaned}]` };
}

/** The character at `at`, quoted, for a message. */
function charAt(text: string, at: number): string {
  return JSON.stringify(String.fromCodePoint(text.codePointAt(at)!));
}

/** The end of the quoted string whose quote is at `at` (past its closing quote), or what is wrong. */
function stringEnd(text: string, at: number): number | ScanProblem {
  const quote = text[at];
  let j = at + 1;
  while (j < text.length && text[j] !== quote) {
    const d = text.charCodeAt(j);
    if (d === 0x5c) {
      // an escaped line break continues the string; CSS reads CR LF as one line break
      j += text.charCodeAt(j + 1) === 0x0d && text.charCodeAt(j + 2) === 0x0a ? 3 : 2;
    } else if (isNewline(d)) {
      return invalid("a line break inside a quoted string (escape it)");
    } else {
      j++;
    }
  }
  if (j >= text.length) return invalid("an unterminated string");
  return j + 1;
}

/** A named namespace `name|…` (`bar` is where the `|` is), valid CSS the edge does not support. */
function namespaceProblem(text: string, name: string, bar: number, bracket: boolean): ScanProblem {
  const rest = text.slice(skipComments(text, bar + 1));
  const local = /^(?:\*|(?:[-\w\u0080-\uffff]|\\.)+)/.exec(rest)?.[0] ?? "";
  const written = `${name}|${local}`;
  return {
    problem: `namespaces (${bracket ? `[${written}]` : written}) cannot run at the edge`,
    invalid: false,
  };
}

/** The index of the first character at or after `at` that is not in a comment. */
function skipComments(text: string, at: number): number {
  let i = at;
  while (text.startsWith("/*", i)) {
    const end = text.indexOf("*/", i + 2);
    if (end < 0) return i;
    i = end + 2;
  }
  return i;
}

/**
 * The end of the CSS identifier at `at` (escapes included), what is wrong with it, or undefined
 * when no name starts there.
 */
function identifierAt(text: string, at: number): number | ScanProblem | undefined {
  const length = text.length;
  const first = text.charCodeAt(at);
  if (!(first === 0x5c || isNameChar(first))) return undefined;
  let i = at;
  while (i < length) {
    const d = text.charCodeAt(i);
    if (d === 0x5c) {
      if (i + 1 >= length) return invalid("it ends with a backslash");
      if (isNewline(text.charCodeAt(i + 1)))
        return invalid("an escaped line break outside a string");
      if (isHex(text.charCodeAt(i + 1))) {
        let j = i + 1;
        while (j < length && j < i + 7 && isHex(text.charCodeAt(j))) j++;
        if (text.charCodeAt(j) === 0x0d && text.charCodeAt(j + 1) === 0x0a) j += 2;
        else if (j < length && isWhitespace(text.charCodeAt(j))) j++;
        i = j;
      } else {
        i += 2;
      }
    } else if (isNameChar(d)) {
      i++;
    } else {
      break;
    }
  }
  const name = text.slice(at, i);
  return isIdentifier(name) ? i : invalid(notAName(name));
}

/** Whether a raw name (escapes still written) is a CSS identifier. */
function isIdentifier(raw: string): boolean {
  const first = raw.charCodeAt(0);
  if (first === 0x5c) return true;
  if (first === 0x2d /* - */) {
    const second = raw.charCodeAt(1);
    return second === 0x2d || second === 0x5c || isNameStart(second);
  }
  return isNameStart(first);
}

/** Why `raw`, made of name characters and escapes, is not an identifier. */
function notAName(raw: string): string {
  const quoted = JSON.stringify(raw);
  if (raw === "-") return `${quoted} is not a CSS name (a name cannot be a "-" alone)`;
  if (raw.charCodeAt(0) === 0x2d)
    return `${quoted} is not a CSS name (a name cannot start with "-" and a digit; escape the digit, e.g. "-\\31 " for "-1")`;
  return `${quoted} is not a CSS name (a name cannot start with a digit; escape it, e.g. "\\31 " for "1")`;
}

// ---------------------------------------------------------------------------------------------
// Tokens

/** `an+b` (CSS Syntax "An+B"): odd, even, an integer, or `an` with an optional `+b` / `-b`. */
const AN_PLUS_B = /^(?:odd|even|[+-]?\d+|[+-]?\d*n(?:[ \t\n\r\f]*[+-][ \t\n\r\f]*\d+)?)$/i;
const CSS_SPACE_AROUND = /^[ \t\n\r\f]+|[ \t\n\r\f]+$/g;
const OF_SELECTOR = /[ \t\n\r\f]of[ \t\n\r\f]/i;

/** Pseudo-classes that depend on the user's actions (named as such in the reason). */
const USER_ACTION = new Set(["hover", "active", "focus", "focus-visible", "focus-within"]);

/** `list` is the argument of a `:not()` when `inNot`. */
function listProblem(list: Selector[][], inNot: boolean): string | undefined {
  for (const selector of list) {
    const problem = complexProblem(selector, inNot);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function complexProblem(tokens: Selector[], inNot: boolean): string | undefined {
  if (tokens.length === 0) return "invalid selector: an empty selector in a list";
  let compoundStart = true;
  for (let k = 0; k < tokens.length; k++) {
    const token = tokens[k]!;
    switch (token.type) {
      case SelectorType.Descendant:
      case SelectorType.Child:
      case SelectorType.Adjacent:
      case SelectorType.Sibling:
      case SelectorType.ColumnCombinator:
      case SelectorType.Parent: {
        if (k === 0) return "invalid selector: it starts with a combinator";
        if (k === tokens.length - 1) return "invalid selector: it ends with a combinator";
        if (inNot)
          return ":not() with a combinator inside cannot run at the edge (only compound selectors, such as :not(.a.b))";
        const problem = combinatorProblem(token.type);
        if (problem !== undefined) return problem;
        compoundStart = true;
        continue;
      }
      case SelectorType.Tag:
      case SelectorType.Universal: {
        if (!compoundStart)
          return 'invalid selector: a type selector or "*" must come first in its compound';
        const ns = token.namespace;
        // `*|x` (any namespace) and `|x` (none) are accepted; a named namespace is not.
        if (ns !== null && ns !== "*" && ns !== "")
          return `namespaces (${ns}|${token.type === SelectorType.Tag ? token.name : "*"}) cannot run at the edge`;
        break;
      }
      case SelectorType.Attribute:
        if (token.namespace !== null)
          return `namespaces ([${token.namespace}|${token.name}]) cannot run at the edge`;
        break;
      case SelectorType.PseudoElement:
        return `::${token.name} (a pseudo-element) cannot run at the edge`;
      case SelectorType.Pseudo: {
        const problem = pseudoProblem(token.name, token.data);
        if (problem !== undefined) return problem;
        break;
      }
    }
    compoundStart = false;
  }
  return undefined;
}

function combinatorProblem(type: SelectorType): string | undefined {
  switch (type) {
    case SelectorType.Adjacent:
      return 'the "+" combinator (next sibling) cannot run at the edge';
    case SelectorType.Sibling:
      return 'the "~" combinator (subsequent sibling) cannot run at the edge';
    case SelectorType.ColumnCombinator:
      return 'the "||" combinator (column) cannot run at the edge';
    case SelectorType.Parent:
      return 'invalid selector: "<" is not a combinator';
    default:
      return undefined;
  }
}

function pseudoProblem(name: string, data: string | Selector[][] | null): string | undefined {
  switch (name) {
    case "first-child":
    case "first-of-type":
      return data === null ? undefined : `invalid selector: :${name} takes no argument`;
    case "nth-child":
    case "nth-of-type": {
      if (typeof data !== "string")
        return `invalid selector: :${name} needs an argument (an+b, e.g. :${name}(2n+1))`;
      if (OF_SELECTOR.test(data)) return `:${name}(… of S) cannot run at the edge`;
      const expression = data.replace(CSS_SPACE_AROUND, "");
      return AN_PLUS_B.test(expression)
        ? undefined
        : `invalid selector: :${name}(${data.length > 40 ? `${data.slice(0, 37)}...` : data}) is not an an+b expression`;
    }
    case "not":
      if (!Array.isArray(data)) return "invalid selector: :not needs an argument";
      return listProblem(data, true);
    default: {
      const written = data === null ? `:${name}` : `:${name}()`;
      if (USER_ACTION.has(name))
        return `${written} (a user-action pseudo-class) cannot run at the edge`;
      return `${written} cannot run at the edge`;
    }
  }
}
