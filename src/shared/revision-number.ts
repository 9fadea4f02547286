/**
 * A datafile revision as the API publishes it (docs/datafile.md): a positive integer written in
 * decimal, at most 15 digits so that it is exact as a number (2^53 has 16). SDKs and browsers
 * report the revision they decided with as a string; anything else is not one of ours.
 */

/** A published revision's form, for schemas that validate text (the API's path parameters). */
export const REVISION_NUMBER_PATTERN = /^[1-9]\d{0,14}$/;

/** The revision number `text` names, or null when it is not a published revision's form. */
export function parseRevisionNumber(text: string): number | null {
  return REVISION_NUMBER_PATTERN.test(text) ? Number(text) : null;
}
