/**
 * Segment Workers (lib/grid/workers): the work functions give the reference
 * coder's bytes; a pool on real Workers gives the same as the calling
 * thread; and an upload and download through Workers store and return
 * exactly what the in-memory reference encoder (encodeImmutableFile) makes,
 * with and without Workers, including a corrupted block detected in a Worker.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { encodeSegment, toHex } from "../../lib/codec/mod.ts";
import { aesCtr, randomBytes, taggedHash, TAGS } from "../../lib/crypto/mod.ts";
import { encodeImmutableFile, uploadImmutable } from "../../lib/grid/mod.ts";
import { SegmentPool, segmentWorkers } from "../../lib/grid/workers/mod.ts";
import { decodeWork, encodeWork } from "../../lib/grid/workers/segment_work.ts";
import { TestGrid } from "../helpers/grid.ts";

const ZERO_IV = new Uint8Array(16);

async function collect(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of s) parts.push(c.slice());
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), o += p.length);
  return out;
}

Deno.test("encodeWork and decodeWork give the reference coder's bytes", async () => {
  for (
    const [k, n, len, pos] of [[3, 10, 3000, 0], [3, 10, 2999, 1048578 * 5], [2, 3, 17, 7], [
      1,
      4,
      100,
      33,
    ]]
  ) {
    const key = randomBytes(32);
    const plain = randomBytes(len);
    const size = Math.ceil(len / k);
    const ct = await aesCtr(key, ZERO_IV, plain, pos);
    const ref = encodeSegment(ct, k, n);
    const out = new Uint8Array(n * size + 5);
    const input = new Uint8Array(len + 3);
    input.set(plain);
    const d = await encodeWork({ key, pos, k, n, size, input, length: len, out });
    assertEquals(toHex(d.leaf), toHex(taggedHash(TAGS.segmentHash, ct)));
    for (let s = 0; s < n; s++) {
      assertEquals(toHex(out.subarray(s * size, (s + 1) * size)), toHex(ref[s]), `block ${s}`);
      assertEquals(
        toHex(d.hashes.subarray(s * 32, (s + 1) * 32)),
        toHex(taggedHash(TAGS.blockHash, ref[s])),
      );
    }
    // Decode from the data shares and from the last k shares (parity), and a bad block.
    for (const indices of [[...Array(k).keys()], [...Array(k).keys()].map((j) => n - k + j)]) {
      const blocks = new Uint8Array(k * size);
      const expected = new Uint8Array(k * 32);
      indices.forEach((x, j) => {
        blocks.set(ref[x], j * size);
        expected.set(d.hashes.subarray(x * 32, x * 32 + 32), j * 32);
      });
      const job = { key, pos, k, n, size, length: len, indices, blocks, expected, leaf: d.leaf };
      const bad = blocks.slice();
      bad[size * (k - 1)] ^= 1;
      const r0 = await decodeWork({ ...job, blocks: bad });
      assert(!r0.ok && "badBlocks" in r0 && r0.badBlocks.join() === `${k - 1}`);
      const r = await decodeWork(job);
      assert(r.ok);
      assertEquals(toHex(blocks.subarray(0, len)), toHex(plain));
    }
  }
});

Deno.test("a pool of real Workers answers as the calling thread does", async () => {
  const pool = new SegmentPool(1);
  const inline = new SegmentPool(0);
  try {
    assert(await pool.threaded(), "the segment Worker did not start");
    assert(!(await inline.threaded()));
    const key = randomBytes(32);
    const plain = randomBytes(30001);
    const job = (p: Uint8Array) => ({
      key,
      pos: 12345,
      k: 3,
      n: 10,
      size: 10001,
      input: p.slice(),
      length: p.length,
      out: new Uint8Array(100010),
    });
    const a = await pool.encode(job(plain));
    const b = await inline.encode(job(plain));
    assertEquals(toHex(a.job.out), toHex(b.job.out));
    assertEquals(toHex(a.done.hashes), toHex(b.done.hashes));
    assertEquals(toHex(a.job.input), toHex(plain), "the input buffer comes back");
  } finally {
    pool.close();
    inline.close();
  }
});

for (const workers of [1, 0]) {
  Deno.test(`upload and download ${workers === 0 ? "without" : "through"} Workers: the reference encoder's shares`, async () => {
    const was = segmentWorkers(workers);
    const g = await TestGrid.start(5);
    try {
      const grid = g.grid();
      const ctx = { servers: grid.servers.all(), leaseSecret: randomBytes(32) };
      const key = randomBytes(32);
      // 40 segments of 3 KiB (the last one short): enough for Workers (WORKER_MIN_SEGMENTS).
      const plain = randomBytes(40 * 3072 - 1000);
      const ref = await encodeImmutableFile(plain, key, 3, 5, 3072);
      const r = await uploadImmutable(ctx, plain, {
        k: 3,
        n: 5,
        happy: 5,
        convergenceSecret: null,
        segmentSize: 3072,
      }, { key });
      assertEquals(r.cap, ref.cap);
      for (const p of r.placed) {
        const server = grid.servers.get(p.serverId)!;
        for (const sh of p.shares) {
          const got = await server.storage.readImmutable(r.storageIndex, sh);
          assertEquals(toHex(got), toHex(ref.shares[sh]), `share ${sh}`);
        }
      }
      assertEquals(toHex(await collect(grid.downloadImmutable(r.cap))), toHex(plain));
      const part = await collect(grid.downloadImmutable(r.cap, { offset: 5000, length: 70000 }));
      assertEquals(toHex(part), toHex(plain.subarray(5000, 75000)));
      // A flipped byte in one stored block (share 0, segment 20): found, and read elsewhere.
      const layout = ref.layout;
      const file = await findShareFile(g.root, 0);
      const bytes = await Deno.readFile(file);
      const at = bytes.length - ref.shares[0].length + layout.blocksOffset + 20 * layout.blockSize;
      bytes[at] ^= 0xff;
      await Deno.writeFile(file, bytes);
      assertEquals(toHex(await collect(grid.downloadImmutable(r.cap))), toHex(plain));
    } finally {
      segmentWorkers(was);
      await g.close();
    }
  });
}

/** The file holding immutable share `sh` under a server's storage dir (the only file so named). */
async function findShareFile(dir: string, sh: number): Promise<string> {
  const hits: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.name === String(sh) && p.includes("/immutable/")) hits.push(p);
    }
  };
  await walk(dir);
  assertEquals(hits.length, 1, `share files: ${hits.join(", ")}`);
  return hits[0];
}
