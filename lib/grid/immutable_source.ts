/**
 * Sources of immutable-file uploads (lib/grid/immutable.ts): bytes or a stream as an
 * ImmutableSource, cut into segments read into the caller's buffers, and hashed whole (for
 * the convergent key).
 */
import { createHash } from "node:crypto";
import { GridError } from "./errors.ts";
import { type Layout, segmentLength } from "./immutable_format.ts";
import { checkAbort, PATCH_CHUNK } from "./immutable_common.ts";

export interface ImmutableSource {
  size: number;
  /** A fresh stream of exactly `size` bytes; may be called more than once. */
  open(): ReadableStream<Uint8Array>;
  /**
   * Optional, for a source that can fill the caller's buffers (a file): a fresh reader of the
   * same bytes as open(). The upload then reads each segment straight into its own buffer and
   * hashes through one reused buffer, instead of a fresh chunk per read copied again.
   */
  reader?(): SourceReader;
}

/** A source read into caller buffers (ImmutableSource.reader). */
export interface SourceReader {
  /**
   * Fill the start of `into` with the next bytes (at least one, at most into.length): their
   * count, or 0 at the end. It may throw where the source itself is wrong (a file that
   * changed), as the source's stream would error.
   */
  read(into: Uint8Array): Promise<number>;
  /** Done (or given up): release what the reader holds. */
  close(): void;
}

export function sourceOf(source: ImmutableSource | Uint8Array): ImmutableSource {
  if (!(source instanceof Uint8Array)) return source;
  const data = source;
  return {
    size: data.length,
    open: () => {
      let off = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (off >= data.length) return c.close();
          const end = Math.min(data.length, off + PATCH_CHUNK);
          c.enqueue(data.subarray(off, end));
          off = end;
        },
      });
    },
  };
}

function endedEarly(read: number, size: number): GridError {
  return new GridError(`the source ended after ${read} bytes, but its size was given as ${size}`);
}

/** Bytes a byte stream is read into at a time (one scratch buffer, handed back and forth). */
const BYOB_READ = 256 * 1024;

/**
 * A stream as a SourceReader: its chunks copied into the caller's buffers. A byte stream (an
 * HTTP request body: `serve restic`, the gateway, WebDAV) is read into one scratch buffer that
 * goes back and forth, instead of a fresh chunk per read (docs/performance.md §9.9).
 */
function streamReader(stream: ReadableStream<Uint8Array>): SourceReader {
  let byob: ReadableStreamBYOBReader | null = null;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch { /* not a byte stream */ }
  if (byob) {
    const r = byob;
    let scratch = new ArrayBuffer(BYOB_READ);
    return {
      async read(into) {
        if (into.length === 0) return 0;
        while (true) {
          const { value, done } = await r.read(
            new Uint8Array(scratch, 0, Math.min(into.length, BYOB_READ)),
          );
          if (value) scratch = value.buffer as ArrayBuffer;
          if (done || !value) return 0;
          if (value.length === 0) continue;
          into.set(value);
          return value.length;
        }
      },
      close() {
        r.cancel().catch(() => {});
      },
    };
  }
  const reader = stream.getReader();
  let left: Uint8Array = new Uint8Array(0);
  return {
    async read(into) {
      while (left.length === 0) {
        const { value, done } = await reader.read();
        if (done) return 0;
        left = value;
      }
      const n = Math.min(left.length, into.length);
      into.set(left.subarray(0, n));
      left = left.subarray(n);
      return n;
    },
    close() {
      reader.cancel().catch(() => {});
    },
  };
}

/**
 * Cut a source into segments of the given lengths; errors if it is not exactly
 * `size` bytes. Segment i is copied into `take()` (a buffer of at
 * least segmentSize bytes, which the caller owns) and yielded as its first
 * segmentLength(l, i) bytes.
 */
export async function* segmentsOf(
  src: ImmutableSource,
  l: Layout,
  take: () => Uint8Array,
): AsyncGenerator<Uint8Array> {
  // A reader fills each segment's buffer straight from the source; a stream through a copy.
  const reader = src.reader ? src.reader() : streamReader(src.open());
  let read = 0;
  try {
    for (let i = 0; i < l.numSegments; i++) {
      const len = segmentLength(l, i);
      const out = take().subarray(0, len);
      let filled = 0;
      while (filled < len) {
        const n = await reader.read(out.subarray(filled));
        if (n === 0) throw endedEarly(read, l.size);
        filled += n;
        read += n;
      }
      yield out;
    }
    if (await reader.read(new Uint8Array(1)) !== 0) {
      throw new GridError(`the source has more than the ${l.size} bytes its size says`);
    }
  } finally {
    reader.close();
  }
}

/** Bytes of the buffer hashSource reads a source with a reader through. */
const HASH_READ = 1024 * 1024;

export async function hashSource(src: ImmutableSource, signal?: AbortSignal): Promise<Uint8Array> {
  if (src.reader) return await hashRead(src.reader(), src.size, signal);
  const h = createHash("sha256");
  let total = 0;
  const reader = src.open().getReader();
  try {
    for (;;) {
      checkAbort(signal);
      const { value, done } = await reader.read();
      if (done) break;
      h.update(value);
      total += value.length;
      if (total > src.size) break;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (total !== src.size) {
    throw new GridError(
      `the source gave ${
        total > src.size ? "more than " : ""
      }${total} bytes, but its size was given as ${src.size}`,
    );
  }
  return new Uint8Array(h.digest());
}

/** hashSource for a source with a reader, through one reused buffer. */
async function hashRead(
  reader: SourceReader,
  size: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const h = createHash("sha256");
  const buf = new Uint8Array(Math.max(1, Math.min(HASH_READ, size + 1)));
  let total = 0;
  try {
    for (;;) {
      checkAbort(signal);
      const n = await reader.read(buf);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      total += n;
      if (total > size) break;
    }
  } finally {
    reader.close();
  }
  if (total !== size) {
    throw new GridError(
      `the source gave ${total > size ? "more than " : ""}${total} bytes, but its size was ` +
        `given as ${size}`,
    );
  }
  return new Uint8Array(h.digest());
}
