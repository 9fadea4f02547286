/**
 * SHA-256 of a string (UTF-8), through the standard Web Crypto API (`crypto.subtle`, the same in
 * workerd and Node 22). The one implementation: token secrets and admin-session ids are stored as
 * its hex (src/api/services/auth.ts, src/api/services/sessions.ts), datafile revisions carry it (src/api/services/publish.ts)
 * and the edge derives its ETags and datafile fingerprints from it (src/edge).
 */

const encoder = new TextEncoder();

/** The SHA-256 digest of `text` (UTF-8). */
export function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", encoder.encode(text));
}

/** `bytes` as lowercase hex, two digits a byte. */
export function toHex(bytes: Uint8Array): string {
  let hex = "";
  for (const byte of bytes) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** SHA-256 of `text` (UTF-8) as lowercase hex (64 characters). */
export async function sha256Hex(text: string): Promise<string> {
  return toHex(new Uint8Array(await sha256(text)));
}
