/**
 * `repair` (and `check --repair`) of one mutable file does not churn (issue #12): a healthy
 * newest version is left alone, and a lost share is rewritten with the same version, as upkeep
 * and `deep-check --repair` do. Real server processes, the real CLI.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { startStorageServer } from "../helpers/storage_process.ts";
import { ok, run, testBytes } from "./files_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "repair of a healthy mutable file keeps its version; a lost share comes back",
  opts,
  async () => {
    // Five servers, four shares: one server always holds none, which is healthy.
    const g = await startJoinedGrid({ servers: 5, shares: { k: 2, n: 4, happy: 3 } });
    try {
      const d = ["--dir", g.clientDir];
      await ok(["client", "alias", "create", ...d, "home"]);
      const body = testBytes(5000, 7);
      await ok(["client", "put", ...d, "--mutable", "-", "home:m"], body);
      const check = async () =>
        JSON.parse((await run(["client", "check", ...d, "--json", "home:m"])).text);
      const v0 = (await check()).detail.newest.seqnum;

      for (const args of [["repair"], ["check", "--repair"]]) {
        const r = JSON.parse(await ok(["client", ...args, ...d, "--json", "home:m"]));
        assertEquals(r.repaired, false, JSON.stringify(r));
        assertEquals(r.detail.after.newest.seqnum, v0, `${args.join(" ")} made a new version`);
      }
      const text = await ok(["client", "repair", ...d, "home:m"]);
      assert(text.startsWith("repair not needed"), text);
      assertEquals((await check()).detail.newest.seqnum, v0);

      // A server holding a share is replaced by a new, empty one (same address).
      const before = (await check()).detail.servers as {
        nickname: string;
        shares: { shareNumber: number }[];
      }[];
      const holder = g.servers.find((s) =>
        before.find((b) => b.nickname === s.name)?.shares.length
      )!;
      await holder.proc!.stop();
      await Deno.remove(`${holder.node.dir}/storage`, { recursive: true });
      holder.proc = await startStorageServer(holder.node.dir);

      const r = JSON.parse(await ok(["client", "repair", ...d, "--json", "home:m"]));
      assertEquals(r.repaired, true, JSON.stringify(r));
      const after = await check();
      assertEquals(after.detail.newest.seqnum, v0, "repair made a new version");
      const shares = new Set(
        (after.detail.servers as { shares: { shareNumber: number; newest: boolean }[] }[])
          .flatMap((s) => s.shares.filter((x) => x.newest).map((x) => x.shareNumber)),
      );
      assertEquals([...shares].sort(), [0, 1, 2, 3], "every share number is back");
      const again = JSON.parse(await ok(["client", "repair", ...d, "--json", "home:m"]));
      assertEquals(again.repaired, false, JSON.stringify(again));
      assertEquals((await check()).detail.newest.seqnum, v0);
      const got = await run(["client", "get", ...d, "home:m"]);
      assertEquals(got.stdout, body);
    } finally {
      await g.close();
    }
  },
);
