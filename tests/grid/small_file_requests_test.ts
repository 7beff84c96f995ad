/**
 * A small file costs few requests per server: its upload's read-back check and its download
 * read each share whole with one request (lib/grid/immutable_read.ts, SMALL_SHARE), instead of the
 * header, then the block, then the ciphertext tree. Real storage server processes; requests
 * counted by the client pool.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { TestGrid } from "../helpers/grid.ts";
import { readAll } from "../helpers/streams.ts";

Deno.test("a small file: 3 requests per server to upload, one read per share to download", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const tg = await TestGrid.start(5);
  try {
    const grid = tg.grid(undefined, { k: 3, n: 5 });
    const pool = tg.pools[tg.pools.length - 1];
    const enc = { k: 3, n: 5, happy: 5, convergenceSecret: null };
    // Warm the connections (a first request to a server also opens its connection).
    await grid.uploadImmutable(randomBytes(10), enc);
    for (const size of [1000, 100_000, 300_000]) {
      const data = randomBytes(size);
      const before = pool.requests;
      const { cap } = await grid.uploadImmutable(data, enc);
      const up = (pool.requests - before) / 5;
      // allocate, one PATCH (the whole share), one read-back of the whole share
      assertEquals(up, 3, `${size} B: upload requests per server`);
      const mid = pool.requests;
      const got = await readAll(grid.downloadImmutable(cap));
      assertEquals(got.length, size);
      assert(got.every((b, i) => b === data[i]), `${size} B: the download differs`);
      // locate on every server, then one whole-share read from each of k = 3 of them
      const down = pool.requests - mid;
      console.log(`${size} B: upload ${up} requests per server, download ${down} requests`);
      assert(down <= 5 + 3, `${size} B: download took ${down} requests (5 locates + 3 reads)`);
    }
  } finally {
    await tg.close();
  }
});
