/**
 * A 100 MiB+ file through 10 real storage processes, streamed both ways from
 * a generated source (never held in memory): the bytes come back identical and
 * the process's resident memory stays bounded.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { createHash } from "node:crypto";
import { aesCtr, randomBytes } from "../../lib/crypto/mod.ts";
import type { ImmutableSource } from "../../lib/grid/mod.ts";
import { TestGrid } from "../helpers/grid.ts";

const SIZE = 100 * 1024 * 1024 + 12345;
const CHUNK = 1024 * 1024;

/** A deterministic pseudo-random source (AES-CTR keystream), re-openable. */
function generated(size: number, seed: Uint8Array): ImmutableSource {
  return {
    size,
    open: () => {
      let off = 0;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          if (off >= size) return c.close();
          const n = Math.min(CHUNK, size - off);
          c.enqueue(await aesCtr(seed, new Uint8Array(16), new Uint8Array(n), off));
          off += n;
        },
      });
    },
  };
}

async function digest(
  stream: ReadableStream<Uint8Array>,
): Promise<{ hash: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of stream) {
    h.update(c);
    bytes += c.length;
  }
  return { hash: h.digest("hex"), bytes };
}

Deno.test("100 MiB+ round trip streams with bounded memory", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await TestGrid.start(10);
  try {
    const grid = g.grid();
    const src = generated(SIZE, randomBytes(32));
    const want = await digest(src.open());
    const rss0 = Deno.memoryUsage().rss;
    let peak = rss0;
    const timer = setInterval(() => (peak = Math.max(peak, Deno.memoryUsage().rss)), 50);
    try {
      const r = await grid.uploadImmutable(src, {
        k: 3,
        n: 10,
        happy: 7,
        convergenceSecret: randomBytes(32),
      });
      assertEquals(r.size, SIZE);
      const got = await digest(grid.downloadImmutable(r.cap));
      assertEquals(got, want);
      // A range in the middle, across a segment boundary.
      const mid = await digest(
        grid.downloadImmutable(r.cap, { offset: 50 * CHUNK - 7, length: 3 * CHUNK }),
      );
      assertEquals(mid.bytes, 3 * CHUNK);
    } finally {
      clearInterval(timer);
    }
    const growth = (peak - rss0) / 1e6;
    console.log(
      `RSS growth during upload + download of ${(SIZE / 1e6).toFixed(0)} MB: ${
        growth.toFixed(0)
      } MB`,
    );
    assert(growth < 200, `RSS grew by ${growth.toFixed(0)} MB (limit 200)`);
  } finally {
    await g.close();
  }
});
