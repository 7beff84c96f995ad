/**
 * Ctrl-C during a large put (a real `shoal client put` process, real servers):
 * the client aborts its allocations on every server, so no incoming share is
 * left behind (docs/leases-and-upkeep.md §7: within 10 seconds of the signal).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { startShoal } from "../helpers/process.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function incoming(dirs: string[]): Promise<number> {
  let n = 0;
  for (const d of dirs) {
    try {
      for await (const e of Deno.readDir(`${d}/storage/incoming`)) if (e.isFile) n++;
    } catch { /* not there yet */ }
  }
  return n;
}

Deno.test("Ctrl-C during a large put aborts its uploads on every server", opts, async () => {
  const g = await startJoinedGrid({ servers: 3, shares: { k: 2, n: 3, happy: 3 } });
  try {
    const big = `${g.root}/big.bin`;
    const f = await Deno.open(big, { write: true, create: true });
    await f.truncate(300 * 1024 * 1024); // 300 MB of zeros (encrypted before upload anyway)
    f.close();
    const dirs = g.servers.map((s) => s.node.dir);
    const put = await startShoal(["client", "put", "--dir", g.clientDir, "--no-convergence", big]);
    const deadline = Date.now() + 60_000;
    while ((await incoming(dirs)) < 3) {
      assert(Date.now() < deadline, `no upload started: ${put.stderr()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const t0 = Date.now();
    const code = await put.stop("SIGINT");
    assertEquals(code, 1, put.stderr());
    assert(/interrupted/.test(put.stderr()), put.stderr());
    assertEquals(put.stdout(), "", "no cap printed");
    let left = await incoming(dirs);
    while (left > 0 && Date.now() - t0 < 10_000) {
      await new Promise((r) => setTimeout(r, 100));
      left = await incoming(dirs);
    }
    assertEquals(left, 0, "no incoming share left on any server");
    const uploads = await Deno.readTextFile(`${g.clientDir}/private/uploads.jsonl`).catch(() => "");
    assertEquals(uploads, "", "nothing recorded for an aborted upload");
  } finally {
    await g.close();
  }
});
