/**
 * Output gathered as UTF-8 bytes and written in large pieces, for commands that write a lot of
 * text (the batch `splitstream decide`). Building strings and letting the stream encode them costs
 * more than the work that produces them: every `+=` makes a rope that must be flattened and then
 * encoded at write time (docs/benchmarks.md, `cli-decide`). Here the text goes straight into a
 * byte buffer: fixed pieces are encoded once and copied, other text is copied as it is when it is
 * ASCII and encoded by Buffer#write otherwise.
 */

/** Bytes gathered before a write: few enough write calls, small enough to stream. */
const CHUNK_BYTES = 1 << 18;

/** A destination: process.stdout in the CLI, any Writable in tests. */
export interface ByteSink {
  write(bytes: Uint8Array): boolean;
  /** Bytes the sink still holds, not yet written (0 after a write that completed at once). */
  readonly writableLength: number;
}

/** UTF-8 bytes of a string (for pieces encoded once and copied many times). */
export function encodeText(text: string): Uint8Array {
  return Buffer.from(text, "utf8");
}

/**
 * Collects bytes and hands them to a sink in pieces of about {@link CHUNK_BYTES}. The buffer is
 * reused when the sink has written the piece by the time `write` returns (stdout to a file, or to
 * a pipe with room: `writableLength` is then 0), and replaced when the sink keeps the piece to
 * write it later. Reusing it matters more than it seems: a fresh buffer is fresh memory, and on
 * the bench machine the page faults of touching 20 MB of it cost about as much as copying the
 * bytes into it.
 */
export class OutputBuffer {
  private buffer: Buffer;
  private position = 0;
  /** Set when the sink asked to wait (its `write` returned false); the caller waits and resets it. */
  full = false;

  constructor(private readonly sink: ByteSink) {
    this.buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  }

  /** Appends bytes. */
  bytes(piece: Uint8Array): void {
    const n = piece.length;
    if (this.position + n > this.buffer.length) this.makeRoom(n);
    // TypedArray#set: a memory copy, faster than a loop over the bytes even for short pieces
    // (a loop runs unoptimized for much of a short-lived process).
    this.buffer.set(piece, this.position);
    this.position += n;
  }

  /** Appends a string as UTF-8 (as `stream.write(text)` would encode it). */
  text(text: string): void {
    const n = text.length;
    // At most 3 bytes per UTF-16 code unit (a surrogate pair: 4 bytes for 2 units).
    if (this.position + 3 * n > this.buffer.length) this.makeRoom(3 * n);
    const buffer = this.buffer;
    let p = this.position;
    for (let i = 0; i < n; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        // From the first non-ASCII code unit on (never the second half of a pair: all before it
        // are ASCII), Buffer encodes the rest.
        p += buffer.write(i === 0 ? text : text.slice(i), p, "utf8");
        break;
      }
      buffer[p++] = code;
    }
    this.position = p;
  }

  /** Hands what was gathered to the sink. */
  flush(): void {
    if (this.position === 0) return;
    const piece = this.buffer.subarray(0, this.position);
    this.position = 0;
    if (!this.sink.write(piece)) this.full = true;
    // Still held by the sink (an asynchronous write in progress or queued): not ours to reuse.
    if (this.sink.writableLength !== 0) this.buffer = Buffer.allocUnsafe(this.buffer.length);
  }

  /** Flushes, and makes the buffer big enough for `n` more bytes. */
  private makeRoom(n: number): void {
    this.flush();
    if (n > this.buffer.length) this.buffer = Buffer.allocUnsafe(n);
  }
}
