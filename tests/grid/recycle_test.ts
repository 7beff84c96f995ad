/**
 * Transfer buffers kept between uploads (lib/grid/workers/recycle.ts): reuse by exact length,
 * the caps on what is kept, and — on real storage processes — that a recycled buffer's old
 * bytes never reach a share: an upload from buffers full of junk stores exactly what an upload
 * from fresh buffers stores (the same convergent cap on another grid), and reads back intact.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import {
  giveBuffer,
  keptBuffers,
  keptBytes,
  releaseBuffers,
  takeBuffer,
} from "../../lib/grid/workers/recycle.ts";
import { TestGrid } from "../helpers/grid.ts";
import { readAll } from "../helpers/streams.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const KiB = 1024;
const MiB = 1024 * KiB;

Deno.test("recycle: a given buffer comes back for the same length only", opts, () => {
  releaseBuffers();
  const a = takeBuffer(256 * KiB);
  assertEquals(a.byteLength, 256 * KiB);
  giveBuffer(a);
  assertEquals(keptBytes(), 256 * KiB);
  const other = takeBuffer(128 * KiB);
  assert(other !== a, "a buffer of another length is new");
  assert(takeBuffer(256 * KiB) === a, "the kept buffer of that length is reused");
  assertEquals(keptBytes(), 0);
  assert(takeBuffer(256 * KiB) !== a, "taken once, it is gone from the shelf");
  releaseBuffers();
});

Deno.test("recycle: small, shared and detached buffers are not kept", opts, () => {
  releaseBuffers();
  giveBuffer(new ArrayBuffer(4 * KiB));
  giveBuffer(new SharedArrayBuffer(256 * KiB));
  const b = new ArrayBuffer(256 * KiB);
  structuredClone(b, { transfer: [b] }); // detaches b
  giveBuffer(b);
  assertEquals(keptBytes(), 0);
  assertEquals(keptBuffers().length, 0);
});

Deno.test("recycle: at most 24 of one length, and the oldest go first past 64 MiB", opts, () => {
  releaseBuffers();
  for (let i = 0; i < 30; i++) giveBuffer(new ArrayBuffer(MiB));
  assertEquals(keptBuffers().length, 24);
  releaseBuffers();
  const first = new ArrayBuffer(3 * MiB);
  giveBuffer(first);
  for (let i = 1; i <= 24; i++) giveBuffer(new ArrayBuffer(3 * MiB + 16 * i)); // 24 lengths, 72 MiB
  assert(keptBytes() <= 64 * MiB, `kept ${keptBytes()}`);
  assert(!keptBuffers().includes(first), "the oldest buffer was let go");
  assert(keptBuffers().some((x) => x.byteLength === 3 * MiB + 16 * 24), "the newest stays");
  releaseBuffers();
  assertEquals(keptBytes(), 0);
});

Deno.test(
  "recycle: an upload from buffers full of junk stores what fresh buffers store",
  opts,
  async () => {
    const a = await TestGrid.start(3);
    const b = await TestGrid.start(3);
    try {
      const secret = randomBytes(32);
      const up = { k: 2, n: 3, happy: 2, convergenceSecret: secret };
      // One odd-sized segment (its padding byte lands in a kept buffer at its first use), and
      // three segments with a short fourth.
      for (const size of [200_001, 3 * MiB + 12_345]) {
        const data = randomBytes(size);
        releaseBuffers();
        const fresh = await a.grid().uploadImmutable(data, up);
        const poisoned = [...keptBuffers()];
        assert(poisoned.length >= 2, `the upload gave its buffers back (${poisoned.length})`);
        for (const buf of poisoned) new Uint8Array(buf).fill(0xaa);
        const junk = await b.grid().uploadImmutable(data, up);
        const used = poisoned.filter((buf) => new Uint8Array(buf).some((x) => x !== 0xaa));
        assert(used.length >= 2, `the second upload wrote into the junk buffers (${used.length})`);
        assertEquals(junk.cap, fresh.cap, `${size} B: the same convergent cap, the same shares`);
        const back = await readAll(b.grid().downloadImmutable(junk.cap));
        assertEquals(back.length, data.length);
        assert(back.every((x, i) => x === data[i]), "the file reads back intact");
      }
    } finally {
      releaseBuffers();
      await a.close();
      await b.close();
    }
  },
);

Deno.test(
  "recycle: a download's block buffers, kept and full of junk, still read back intact",
  opts,
  async () => {
    const g = await TestGrid.start(4);
    try {
      const grid = g.grid();
      // Three segments and a short fourth; before the second download one server (and its share)
      // goes away, so the reader works from another set of shares.
      const data = randomBytes(3 * MiB + 4_321);
      const { cap } = await grid.uploadImmutable(data, {
        k: 2,
        n: 4,
        happy: 2,
        convergenceSecret: null,
      });
      releaseBuffers();
      assertEquals((await readAll(grid.downloadImmutable(cap))).length, data.length);
      const poisoned = [...keptBuffers()];
      assert(poisoned.length >= 1, `the download gave its block buffers back (${poisoned.length})`);
      for (const buf of poisoned) new Uint8Array(buf).fill(0xaa);
      await g.stop(0);
      const back = await readAll(g.grid([1, 2, 3]).downloadImmutable(cap));
      const used = poisoned.filter((buf) => new Uint8Array(buf).some((x) => x !== 0xaa));
      assert(used.length >= 1, `the second download read into the junk buffers (${used.length})`);
      assertEquals(back.length, data.length);
      assert(back.every((x, i) => x === data[i]), "the file reads back intact");
    } finally {
      releaseBuffers();
      await g.close();
    }
  },
);
