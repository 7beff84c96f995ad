/** Operator maintenance and GSD freshness, through the real command line. */
import { assert, assertEquals } from "../helpers/assert.ts";
import { base32Encode } from "../../lib/codec/mod.ts";
import { capStorageIndex, parseCap } from "../../lib/crypto/mod.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { runShoal, startStorageServer } from "../helpers/storage_process.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("operator maintain, repair, and GSD expiry", opts, async (t) => {
  const g = await startJoinedGrid({ servers: 3 });
  try {
    await t.step("maintain on a healthy grid renews leases everywhere", async () => {
      const r = JSON.parse(await g.shoal(["operator", "maintain", "--dir", g.opDir, "--json"]));
      assertEquals(r.healthy, true);
      assertEquals(r.repaired, false);
      assertEquals(r.resigned, false);
      assertEquals(r.leasesRenewed, 3);
    });

    await t.step("a server that lost its GSD copy is repaired", async () => {
      const gsd = (await Deno.readTextFile(`${g.opDir}/private/gsd-writecap`)).trim();
      const si = base32Encode(await capStorageIndex(parseCap(gsd)));
      const s = g.servers[2];
      await s.proc!.stop();
      await Deno.remove(`${s.node.dir}/storage/mutable/${si.slice(0, 2)}/${si}`, {
        recursive: true,
      });
      s.proc = await startStorageServer(s.node.dir);
      const r = JSON.parse(await g.shoal(["operator", "maintain", "--dir", g.opDir, "--json"]));
      assertEquals(r.repaired, true);
      assertEquals(r.healthy, true);
      const again = JSON.parse(await g.shoal(["operator", "maintain", "--dir", g.opDir, "--json"]));
      assertEquals(again.repaired, false);
    });

    await t.step("an expired GSD is flagged loudly; re-signing clears it", async () => {
      const op2 = `${g.root}/op-short`;
      // 0.0002 days is about 17 seconds of validity: enough for the set-up below to see it fresh
      // on a loaded machine (each step is a process start), then wait until it has lapsed.
      await g.shoal([
        "operator",
        "create",
        "--dir",
        op2,
        "--validity-days",
        "0.0002",
        ...g.servers.flatMap((s) => ["--storage", s.url]),
      ]);
      for (const s of g.servers.slice(0, 1)) {
        await g.shoal(["operator", "add-announcement", "--dir", op2, s.gsaReadcap]);
      }
      // add-announcement signed the last version: its validity counts from now.
      const validUntil = Date.now() + 0.0002 * 86_400_000;
      const text = await g.shoal(["operator", "get-introduction-text", "--dir", op2]);
      const c2 = `${g.root}/client-short`;
      await g.shoal(["client", "create-node", "--dir", c2, "--introducer-v3", text]);
      const fresh = await runShoal(["client", "servers", "--dir", c2, "--refresh"]);
      assertEquals(fresh.code, 0, fresh.stderr);
      assert(!fresh.stdout.includes("EXPIRED"), fresh.stdout);
      await new Promise((r) => setTimeout(r, Math.max(0, validUntil - Date.now()) + 2000));
      const stale = await runShoal(["client", "servers", "--dir", c2, "--refresh"]);
      assertEquals(stale.code, 0, stale.stderr);
      assert(stale.stdout.includes("*** EXPIRED ***"), stale.stdout);
      assert(stale.stderr.includes("expired"), stale.stderr);
      const json = await runShoal(["client", "servers", "--dir", c2, "--json"]);
      assertEquals(JSON.parse(json.stdout).length, 1, "the last good list is kept");
      assert(json.stderr.includes("expired"), json.stderr);
      const m = JSON.parse(await g.shoal(["operator", "maintain", "--dir", op2, "--json"]));
      assertEquals(m.resigned, true);
      const after = await runShoal(["client", "servers", "--dir", c2, "--refresh"]);
      assert(!after.stdout.includes("EXPIRED"), after.stdout);
    });

    await t.step(
      "a change is never built on an older GSD than the operator published",
      async () => {
        const op3 = `${g.root}/op-fork`;
        const [s0, s1, s2] = g.servers;
        await g.shoal([
          "operator",
          "create",
          "--dir",
          op3,
          ...g.servers.flatMap((s) => [
            "--storage",
            s.url,
          ]),
        ]);
        const list = async () =>
          JSON.parse(await g.shoal(["operator", "list", "--dir", op3, "--json"])) as {
            gsd: { seqnum: number };
            servers: { petname: string }[];
          };
        // Version 2 (with s0's announcement) reaches s0 and s1 only.
        await s2.proc!.stop();
        await g.shoal(["operator", "add-announcement", "--dir", op3, s0.gsaReadcap]);
        assertEquals(
          (await Deno.readTextFile(`${op3}/private/gsd-seqnum`)).trim(),
          "2",
          "the published version is recorded",
        );
        // Only s2, holding version 1, answers now: building on it would drop s0's entry and make a
        // second, different version 2.
        s2.proc = await startStorageServer(s2.node.dir);
        await s0.proc!.stop();
        await s1.proc!.stop();
        try {
          const r = await runShoal(["operator", "add-announcement", "--dir", op3, s2.gsaReadcap]);
          assertEquals(r.code, 1, r.stderr);
          assert(/older than (version )?2/.test(r.stderr), r.stderr);
          // maintain re-signs and repairs even when the operator's own view cannot be refreshed:
          // that, too, must not publish on top of version 1.
          const m = await runShoal(["operator", "maintain", "--dir", op3, "--json"]);
          assertEquals(m.code, 1, m.stderr + m.stdout);
          assert(m.stderr.includes("only versions older than 2"), m.stderr);
        } finally {
          s0.proc = await startStorageServer(s0.node.dir);
          s1.proc = await startStorageServer(s1.node.dir);
        }
        await g.shoal(["operator", "add-announcement", "--dir", op3, s2.gsaReadcap]);
        const l = await list();
        assertEquals(l.gsd.seqnum, 3);
        assertEquals(l.servers.length, 2, JSON.stringify(l.servers));
      },
    );
  } finally {
    await g.close();
  }
});
