/**
 * Which ids, classes and attributes the editor may build selectors from (the `idName`,
 * `className` and `attr` options of @medv/finder, src/editor/selector.ts). A selector is saved
 * with the change and must keep matching the same element when the site is deployed again, so
 * names that a build tool, a framework or a database made up are left out, and the selector
 * falls back to stable names or to the document's structure. Pure, unit-tested in Node.
 *
 * A name looks generated (or is unusable) when:
 * - it has characters other than ASCII letters, digits, `_` and `-`, or starts with a digit or
 *   `-digit`: utility classes (`md:flex`, `w-1/2`), React's `useId` ids (`:r1:`) and names that
 *   would need CSS escapes;
 * - it is longer than 40 characters;
 * - it has a run of 4 or more digits: counters and database ids (`ember1234`, `jsx-2921418155`,
 *   `product-48213`);
 * - one of its parts (split at `-` and `_`) has a digit followed by a letter and is 4 or more
 *   characters long: content hashes (emotion's `css-1hwfws3`, CSS modules' `Button_primary__3kd9S`)
 *   — while human names put digits last (`step1`, `col-md-6`, `h2`);
 * - one of its parts is at most 8 characters long and switches between lower and upper case 3
 *   times or more: styled-components' `bdVaJa`, `kXGvEn` (camelCase words switch less often
 *   for their length: `mainNav`, `iPhone`);
 * - it starts with a framework's prefix for generated or state classes: `sc-` (styled-components),
 *   `css-` (emotion), `jsx-` (styled-jsx), `svelte-`, `astro-`, `ember<digit>`, `ng-` (Angular).
 */

const PLAIN = /^(?:[A-Za-z_]|-[A-Za-z_-])[\w-]*$/;
const FRAMEWORK_PREFIX = /^(sc|css|jsx|svelte|ng|emotion|astro)-|^ember\d/i;

function hashLikePart(part: string): boolean {
  if (part.length >= 4 && /\d[a-z]/i.test(part)) return true;
  if (part.length > 8) return false;
  let switches = 0;
  for (let i = 1; i < part.length; i++) {
    const a = part[i - 1]!;
    const b = part[i]!;
    const upper = (c: string): boolean => c >= "A" && c <= "Z";
    const lowerCase = (c: string): boolean => c >= "a" && c <= "z";
    if ((upper(a) && lowerCase(b)) || (lowerCase(a) && upper(b))) switches++;
  }
  return switches >= 3;
}

/** Whether an id or class name looks generated (see the module comment). */
export function generatedName(name: string): boolean {
  if (!PLAIN.test(name) || name.length > 40) return true;
  if (/\d{4}/.test(name) || FRAMEWORK_PREFIX.test(name)) return true;
  return name.split(/[-_]+/).some(hashLikePart);
}

/** Attributes worth a selector besides id and class: what names a control or a landmark. */
const NAMED_ATTRIBUTES = new Set(["name", "role", "type", "for", "rel", "itemprop"]);

/**
 * Whether `[name="value"]` may be part of a selector: a naming attribute (above) or a `data-*`
 * one that is not the editor's (`data-ss-*`) or a framework's (Vue's `data-v-*`, React's
 * `data-react*`, styled-components' `data-styled`, emotion's `data-emotion`), with a short
 * word-like value that does not look generated.
 */
export function usableAttribute(name: string, value: string): boolean {
  const n = name.toLowerCase();
  const named =
    NAMED_ATTRIBUTES.has(n) ||
    (n.startsWith("data-") && !/^data-(ss-|v-|react|styled|emotion)/.test(n) && PLAIN.test(n));
  return named && /^[A-Za-z][\w-]{0,39}$/.test(value) && !generatedName(value);
}
