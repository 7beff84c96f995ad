/**
 * Leases keep the grid's own directory alive: every running server renews its
 * lease on the GSD and its GSA, while an object nobody renews is collected.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";
import { runShoal } from "../helpers/storage_process.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "running servers keep the GSD and GSAs leased; unleased data is collected",
  opts,
  async () => {
    // 4-second leases, garbage collection every second.
    const g = await startJoinedGrid({
      servers: 3,
      storage: { lease_duration: "4s", gc_interval: "1s" },
    });
    try {
      // A mutable file whose lease nobody renews.
      const cap = await shoalOk(["client", "put", "--dir", g.clientDir, "--mutable", "-"]);
      assert(cap.startsWith("shoal:MUT-W1:"), "put printed a mutable writecap");
      assertEquals((await runShoal(["client", "get", "--dir", g.clientDir, cap])).code, 0);
      await new Promise((r) => setTimeout(r, 9000));
      const gone = await runShoal(["client", "get", "--dir", g.clientDir, cap]);
      assert(gone.code !== 0, "the unrenewed file was collected");
      const l = await runShoal(["client", "servers", "--dir", g.clientDir, "--json", "--refresh"]);
      assertEquals(l.code, 0, l.stderr);
      assertEquals(JSON.parse(l.stdout).length, 3, "GSD and every GSA are still there");
    } finally {
      await g.close();
    }
  },
);
