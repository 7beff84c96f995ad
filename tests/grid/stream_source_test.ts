/**
 * Uploads from streams (request bodies: `serve restic`, the gateway, WebDAV) on real storage
 * processes: a byte stream is read through one scratch buffer (BYOB), any other stream chunk by
 * chunk; both store exactly what the same bytes given whole store (the same convergent cap), and
 * a stream shorter or longer than its stated size is refused.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import type { ImmutableSource } from "../../lib/grid/mod.ts";
import { TestGrid } from "../helpers/grid.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Chunk lengths from a fixed pseudo-random walk (1 byte to ~300 KB). */
function lengths(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return 1 + (x % 300_000);
  };
}

/**
 * A byte stream of `data` in pieces of up to `next()` bytes: written into the reader's view when
 * it makes BYOB requests and `byob` is set (counted in `stats`), else enqueued as chunks.
 */
function byteStream(
  data: Uint8Array,
  next: () => number,
  byob = true,
  stats = { byob: 0 },
): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    type: "bytes",
    pull(c) {
      if (off >= data.length) {
        c.close();
        c.byobRequest?.respond(0);
        return;
      }
      const req = byob ? c.byobRequest : null;
      if (req?.view) {
        const view = new Uint8Array(req.view.buffer, req.view.byteOffset, req.view.byteLength);
        const n = Math.min(view.length, next(), data.length - off);
        view.set(data.subarray(off, off + n));
        off += n;
        stats.byob++;
        req.respond(n);
      } else {
        const n = Math.min(next(), data.length - off);
        c.enqueue(data.slice(off, off + n));
        off += n;
      }
    },
  });
}

const byobStream = (data: Uint8Array, next: () => number, stats?: { byob: number }) =>
  byteStream(data, next, true, stats);
const enqueueingByteStream = (data: Uint8Array, next: () => number) =>
  byteStream(data, next, false);

/** A default (not byte) stream of chunks of `next()` bytes. */
function defaultStream(data: Uint8Array, next: () => number): ReadableStream<Uint8Array> {
  let off = 0;
  return new ReadableStream({
    pull(c) {
      if (off >= data.length) return c.close();
      const n = Math.min(next(), data.length - off);
      c.enqueue(data.slice(off, off + n));
      off += n;
    },
  });
}

function source(size: number, open: () => ReadableStream<Uint8Array>): ImmutableSource {
  return { size, open };
}

Deno.test(
  "stream sources: byte streams (BYOB or enqueued) and default streams store what whole bytes store",
  opts,
  async () => {
    const g = await TestGrid.start(3);
    try {
      const grid = g.grid();
      const up = { k: 2, n: 3, happy: 2, convergenceSecret: randomBytes(32) };
      for (const size of [0, 1, 65_537, 2 * 1024 * 1024 + 777]) {
        const data = randomBytes(size);
        const whole = await grid.uploadImmutable(data, up);
        for (
          const [name, make] of [
            ["byob", byobStream],
            ["enqueueing byte stream", enqueueingByteStream],
            ["default stream", defaultStream],
          ] as const
        ) {
          const r = await grid.uploadImmutable(
            source(size, () => make(data, lengths(size + 7))),
            up,
          );
          assertEquals(r.cap, whole.cap, `${name}, ${size} B`);
        }
        if (size > 0) {
          // The reader asks for bytes into its own buffer (BYOB), not for chunks.
          const stats = { byob: 0 };
          await grid.uploadImmutable(source(size, () => byobStream(data, lengths(3), stats)), up);
          assert(stats.byob > 0, `BYOB requests answered: ${stats.byob}`);
        }
      }
    } finally {
      await g.close();
    }
  },
);

Deno.test(
  "stream sources: a byte stream shorter or longer than its size is refused",
  opts,
  async () => {
    const g = await TestGrid.start(3);
    try {
      const grid = g.grid();
      const up = { k: 2, n: 3, happy: 2, convergenceSecret: null };
      const data = randomBytes(1_500_000);
      const short = await assertRejects(() =>
        grid.uploadImmutable(source(data.length + 10, () => byobStream(data, lengths(1))), up)
      );
      assert(/ended after 1500000 bytes/.test(String(short)), String(short));
      const long = await assertRejects(() =>
        grid.uploadImmutable(source(data.length - 10, () => byobStream(data, lengths(2))), up)
      );
      assert(/more than the 1499990 bytes/.test(String(long)), String(long));
    } finally {
      await g.close();
    }
  },
);
