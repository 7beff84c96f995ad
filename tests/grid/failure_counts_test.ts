/**
 * The grid's own "N server(s) failed" messages add up: at most 3 failures listed, and how many
 * more there were. Real storage server processes, four of five stopped; five shares, so every
 * server is asked.
 */
import { assert, assertRejects } from "../helpers/assert.ts";
import { TestGrid } from "../helpers/grid.ts";
import { NotEnoughServersError } from "../../lib/grid/mod.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "upload and publish failures list the first 3 of 4 failed servers and '1 more'",
  opts,
  async () => {
    const tg = await TestGrid.start(5);
    try {
      for (const i of [1, 2, 3, 4]) await tg.stop(i);
      const grid = tg.grid(undefined, { k: 2, n: 5 });
      const data = new Uint8Array(2000).fill(7);
      const up = await assertRejects(
        () => grid.uploadImmutable(data, { k: 2, n: 5, happy: 3, convergenceSecret: null }),
        NotEnoughServersError,
      );
      assert(/4 server\(s\) failed \(the first 3: .*; 1 more\)$/.test(up.message), up.message);
      const pub = await assertRejects(
        () => grid.createMutableFile(data),
        NotEnoughServersError,
      );
      assert(/4 server\(s\) failed \(the first 3: .*; 1 more\)$/.test(pub.message), pub.message);
    } finally {
      await tg.close();
    }
  },
);
