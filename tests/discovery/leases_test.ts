/**
 * Leases keep data alive: every running server renews its lease on the GSD
 * and its GSA; a client's `renew-leases` keeps what its aliases reach; an
 * object nobody renews is garbage-collected.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setConfig, shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";
import { runShoal, startStorageServer } from "../helpers/storage_process.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "leases: servers keep the GSD and GSAs, renew-leases keeps files, the rest is collected",
  opts,
  async () => {
    const g = await startJoinedGrid({ servers: 3 });
    try {
      // 10-second leases, garbage collection by age every second, from now on: set after the grid
      // is built (building it can take longer than a lease on a loaded machine). A lease must
      // outlast the gap between two renew-leases runs (each a process start, a refresh and a
      // walk: up to ~4 s on a loaded machine), or a renewed object expires between two rounds.
      await Promise.all(g.servers.map(async (s) => {
        await s.proc!.stop();
        await setConfig(s.node.dir, "storage", "lease_duration", "10s");
        await setConfig(s.node.dir, "storage", "gc_interval", "1s");
        await setConfig(s.node.dir, "storage", "gc", "age");
        s.proc = await startStorageServer(s.node.dir);
      }));
      const C = g.clientDir;
      // A mutable file whose lease nobody renews.
      const cap = await shoalOk(["client", "put", "--dir", C, "--mutable", "-"]);
      assert(cap.startsWith("shoal:MUT-W1:"), "put printed a mutable writecap");
      assertEquals((await runShoal(["client", "get", "--dir", C, cap])).code, 0);
      // An unlinked upload is recorded (and so renewed); forgetting it leaves it to expire.
      await shoalOk(["client", "forget", "--dir", C, cap]);
      // A file under an alias, kept alive by `renew-leases`.
      await shoalOk(["client", "alias", "create", "--dir", C, "home"]);
      const kept = await shoalOk(["client", "put", "--dir", C, "--mutable", "-", "home:kept"]);
      assert(kept.startsWith("shoal:MUT-W1:"));
      const end = Date.now() + 21_000;
      while (Date.now() < end) {
        const r = JSON.parse(await shoalOk(["client", "renew-leases", "--dir", C, "--json"]));
        assertEquals(r.objects, 2, "the alias directory and the file");
        assertEquals(r.missing, 0);
        await new Promise((res) => setTimeout(res, 1000));
      }
      const gone = await runShoal(["client", "get", "--dir", C, cap]);
      assert(gone.code !== 0, "the unrenewed file was collected");
      const k = await runShoal(["client", "get", "--dir", C, "home:kept"]);
      assertEquals(k.code, 0, k.stderr);
      const l = await runShoal(["client", "servers", "--dir", C, "--json", "--refresh"]);
      assertEquals(l.code, 0, l.stderr);
      assertEquals(JSON.parse(l.stdout).length, 3, "GSD and every GSA are still there");
    } finally {
      await g.close();
    }
  },
);
