/**
 * The client's file source (lib/roles/client/local.ts): its reader() gives the bytes of open()
 * into the caller's buffers, with the same length check, and an upload through it (which reads
 * each segment straight into its buffer, and hashes the convergent key through one buffer)
 * stores exactly what an upload of the same bytes in memory stores.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { ChangedError, checkedSource } from "../../lib/roles/client/local.ts";
import { TestGrid } from "../helpers/grid.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("checkedSource: reader() fills the caller's buffer with open()'s bytes", async () => {
  const f = await Deno.makeTempFile();
  try {
    const data = randomBytes(300_000);
    await Deno.writeFile(f, data);
    const r = checkedSource(f, data.length).reader!();
    const into = new Uint8Array(128 * 1024);
    let off = 0;
    for (;;) {
      const n = await r.read(into);
      if (n === 0) break;
      assert(n <= into.length);
      assertEquals(into.subarray(0, n), data.subarray(off, off + n));
      off += n;
    }
    r.close();
    assertEquals(off, data.length);
    assertEquals(await r.read(into), 0, "stays at its end");
  } finally {
    await Deno.remove(f);
  }
});

Deno.test("checkedSource: reader() throws ChangedError when the file is shorter or longer", async () => {
  const f = await Deno.makeTempFile();
  try {
    await Deno.writeFile(f, new Uint8Array(3000));
    for (const claimed of [1000, 2999, 3001, 5000]) {
      const r = checkedSource(f, claimed).reader!();
      const into = new Uint8Array(claimed); // the claimed size, and one more read for the end
      await assertRejects(async () => {
        for (;;) if (await r.read(into) === 0) break;
      }, ChangedError);
      r.close();
    }
  } finally {
    await Deno.remove(f);
  }
});

Deno.test(
  "an upload from a file source stores what the same bytes in memory store",
  opts,
  async () => {
    const g = await TestGrid.start(5);
    const dir = await Deno.makeTempDir();
    try {
      const grid = g.grid();
      const base = { k: 3, n: 5, happy: 4, convergenceSecret: randomBytes(32) };
      for (const size of [0, 1, 100_000, 3 * 1048578 + 5]) {
        const data = randomBytes(size);
        const path = `${dir}/f${size}`;
        await Deno.writeFile(path, data);
        // Convergent: the key is hashed from the file, then each segment is read into its buffer.
        const fromFile = await grid.uploadImmutable(checkedSource(path, size), base);
        const fromBytes = await grid.uploadImmutable(data, base);
        // The same cap: the same key, and the same UEB hash, so the same shares.
        assertEquals(fromFile.cap, fromBytes.cap, `size ${size}`);
        const parts: Uint8Array[] = [];
        for await (const p of grid.downloadImmutable(fromFile.cap)) parts.push(p.slice());
        const back = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
        let off = 0;
        for (const p of parts) (back.set(p, off), off += p.length);
        assertEquals(back, data);
      }
      // The file grew after its size was taken: refused, as through open().
      const path = `${dir}/grows`;
      await Deno.writeFile(path, randomBytes(50_000));
      await assertRejects(
        () =>
          grid.uploadImmutable(checkedSource(path, 40_000), { ...base, convergenceSecret: null }),
        ChangedError,
      );
    } finally {
      await g.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
