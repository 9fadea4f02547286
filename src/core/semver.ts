/**
 * Semantic-version comparison with the exact semantics of the official Optimizely JS SDK
 * (`utils/semantic_version`), which decides the `semver_*` audience match types.
 *
 * This is deliberately NOT semver.org ordering. The SDK's rules, reproduced here:
 * - A version is `prefix[-prerelease]` or `prefix[+build]`, split at the FIRST `-` or `+`
 *   (whichever comes first; the other character is then just part of the suffix).
 * - The prefix is 1 to 3 dot-separated parts of ASCII digits: no empty parts (so no leading,
 *   trailing or double dots), no sign, no `v`. Any whitespace anywhere makes it invalid.
 * - The suffix, when not empty, is ONE extra part compared as a whole string (`beta.2` is not
 *   split on its dots); an empty suffix (`1.2.3-`) adds no part but still flags a prerelease.
 * - Only the condition's parts are walked: a condition `2` equals user `2.9.1`, a condition
 *   `2.1` equals `2.1.7`. When the user runs out of parts first the user is smaller, except when
 *   the condition has a prerelease/build suffix, where the user counts as greater (so a user
 *   `1.2.3` is greater than a condition `1.2.3-beta`, and also than `1.2.3+build`).
 * - A user part that is all digits is compared numerically against `parseInt` of the condition
 *   part (a `NaN` from a non-numeric condition suffix compares as equal); any other user part is
 *   compared as a string (UTF-16 code units) with a prerelease tie-break.
 * - After the walk, a user prerelease is smaller than a condition without one.
 */

/** A version split the SDK's way; opaque to callers, produced by {@link parseSemver}. */
export interface ParsedSemver {
  /** 1-3 digit-only numeric parts, then the prerelease/build suffix as one part if not empty. */
  readonly parts: readonly string[];
  /** `parseInt` of each part, precomputed (NaN for a non-numeric suffix). */
  readonly numbers: readonly number[];
  /** Whether each part is all ASCII digits (numeric parts always are; a suffix may be). */
  readonly numeric: readonly boolean[];
  /** Has a `-` before any `+`. */
  readonly prerelease: boolean;
  /** Has a `+` before any `-`. */
  readonly build: boolean;
}

// `\s` without the `u` flag, exactly as the SDK tests it; consulted only for non-ASCII characters.
const WHITESPACE = /\s/;

/** The SDK's /^\d+$/ (no `u` flag: ASCII digits only), without the regex. */
function isDigits(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * Parses a version the way the SDK's `splitVersion` does; `null` when the SDK would call it
 * invalid. Exposed so a condition's version can be parsed once at compile time.
 *
 * One pass over the characters instead of the SDK's regex tests and splits: user versions are
 * parsed per request.
 */
export function parseSemver(version: string): ParsedSemver | null {
  if (typeof version !== "string") return null;
  const length = version.length;
  let dash = -1;
  let plus = -1;
  for (let i = 0; i < length; i++) {
    const c = version.charCodeAt(i);
    if (c === 45 /* - */) {
      if (dash < 0) dash = i;
    } else if (c === 43 /* + */) {
      if (plus < 0) plus = i;
    } else if (c <= 32) {
      if (c === 32 || (c >= 9 && c <= 13)) return null;
    } else if (c >= 128 && WHITESPACE.test(version.charAt(i))) {
      return null;
    }
  }
  const prerelease = dash >= 0 && (plus < 0 || dash < plus);
  const build = plus >= 0 && (dash < 0 || plus < dash);
  const end = prerelease ? dash : build ? plus : length;

  // The prefix: 1 to 3 non-empty runs of ASCII digits separated by dots.
  const parts: string[] = [];
  const numbers: number[] = [];
  const numeric: boolean[] = [];
  let start = 0;
  let value = 0;
  for (let i = 0; i <= end; i++) {
    const c = i === end ? 46 : version.charCodeAt(i);
    if (c === 46 /* . */) {
      if (i === start || parts.length === 3) return null;
      const part = version.slice(start, i);
      parts.push(part);
      // Up to 15 digits the running value is exact; beyond, parseInt rounds as the SDK's does.
      numbers.push(i - start <= 15 ? value : parseInt(part));
      numeric.push(true);
      start = i + 1;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      value = value * 10 + (c - 48);
    } else {
      return null;
    }
  }
  if (end < length - 1) {
    // A non-empty suffix is one more part. No radix on purpose: the SDK calls parseInt(part), so
    // a suffix such as "0x1f" reads as 31.
    const suffix = version.slice(end + 1);
    parts.push(suffix);
    numbers.push(parseInt(suffix));
    numeric.push(isDigits(suffix));
  }
  return { parts, numbers, numeric, prerelease, build };
}

/**
 * Compares two versions already parsed by {@link parseSemver}: -1 when the user's version is
 * lower than the condition's, 0 when equal, 1 when greater (the SDK's `compareVersion`).
 */
export function compareParsedSemver(condition: ParsedSemver, user: ParsedSemver): -1 | 0 | 1 {
  const userLength = user.parts.length;
  const conditionLength = condition.parts.length;
  for (let i = 0; i < conditionLength; i++) {
    if (userLength <= i) return condition.prerelease || condition.build ? 1 : -1;
    if (!user.numeric[i]) {
      const u = user.parts[i]!;
      const c = condition.parts[i]!;
      if (u < c) return condition.prerelease && !user.prerelease ? 1 : -1;
      if (u > c) return !condition.prerelease && user.prerelease ? -1 : 1;
    } else {
      // `parseInt` (not Number) on the condition side, as the SDK: parseInt("0x1f") is 31,
      // parseInt("-5") is -5, parseInt("beta") is NaN, and NaN is neither greater nor smaller.
      const u = user.numbers[i]!;
      const c = condition.numbers[i]!;
      if (u > c) return 1;
      if (u < c) return -1;
    }
  }
  return user.prerelease && !condition.prerelease ? -1 : 0;
}

/**
 * Compares a user's version with a condition's version exactly as the Optimizely SDK does:
 * -1 when the user's version is lower, 0 when equal, 1 when greater, `null` when either
 * version is invalid. `semver_gt` is "result > 0", `semver_le` "result <= 0", and so on.
 */
export function compareSemver(conditionVersion: string, userVersion: string): number | null {
  const user = parseSemver(userVersion);
  const condition = parseSemver(conditionVersion);
  if (user === null || condition === null) return null;
  return compareParsedSemver(condition, user);
}
