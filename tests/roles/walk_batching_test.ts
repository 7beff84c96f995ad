/**
 * A deep check is batched (docs/leases-and-upkeep.md §5): checking N objects
 * costs each server a few requests per level of directories and one per 1000
 * files, not N. Real storage server processes; requests counted by the client
 * pool.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";
import { formatCap, parseCap, randomBytes, readcapOf } from "../../lib/crypto/mod.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { type DirEntry, Grid, mapLimit, ServerList } from "../../lib/grid/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import { deepCheck } from "../../lib/roles/client/deepcheck.ts";

Deno.test("deep-check of 3 levels and 120 files costs each server a handful of requests", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const nodes = await Promise.all([0, 1, 2].map(() => createStorageNode()));
  const procs = await Promise.all(nodes.map((n) => startStorageServer(n.dir)));
  const pool = new ClientPool();
  try {
    const grid = new Grid({
      servers: new ServerList(procs.map((p) => pool.server(parseStorageUrl(p.url)))),
      leaseSecret: randomBytes(32),
      mutableEncoding: { k: 2, n: 3 },
    });
    const now = Math.floor(Date.now() / 1000);
    const subdirs: DirEntry[] = [];
    for (let d = 0; d < 4; d++) {
      const caps = await mapLimit(
        [...Array(30).keys()],
        8,
        async (i) =>
          (await grid.uploadImmutable(randomBytes(100 + i), {
            k: 2,
            n: 3,
            happy: 3,
            convergenceSecret: null,
          })).cap,
      );
      const dir = await grid.createDirectory(
        caps.map((cap, i) => ({ name: `f${i}`, readcap: cap, metadata: { ctime: now } })),
      );
      subdirs.push({
        name: `d${d}`,
        readcap: formatCap(await readcapOf(parseCap(dir))),
        writecap: dir,
        metadata: {},
      });
    }
    const root = await grid.createDirectory(subdirs);
    const before = pool.requests;
    const rep = await deepCheck(grid, [{ cap: root, path: "root:" }], { happy: 3 });
    const perServer = (pool.requests - before) / 3;
    assertEquals(rep.counts.objects, 1 + 4 + 120);
    assertEquals(rep.counts.healthy, 125);
    // Per server: one batch-read for the root's level, one for the 4 directories, one
    // batch-list for the 120 files (and nothing per object).
    assert(perServer <= 6, `requests per server: ${perServer}`);
  } finally {
    pool.close();
    await Promise.all(procs.map((p) => p.stop()));
    for (const n of nodes) await Deno.remove(n.dir.replace(/\/node$/, ""), { recursive: true });
  }
});
