/**
 * What discovery costs on the wire, measured on a real joined grid (storage
 * server processes, operator and client built through the CLI) with the
 * client node loaded in-process: requests counted by ClientPool.requests,
 * HTTP bytes by ClientPool.bytesSent/bytesReceived, and which slots were read
 * in full by recording StorageClient.batchRead calls (the real calls still go
 * to the servers).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { toHex } from "../../lib/codec/mod.ts";
import { capStorageIndex, parseCap } from "../../lib/crypto/mod.ts";
import { type BatchReadRequest, StorageClient } from "../../lib/storage/mod.ts";
import { GridNode } from "../../lib/roles/gridnode.ts";
import { loadClientNode, runClient } from "../../lib/roles/client/node.ts";
import { setConfig, shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

/** Record the storage indexes every batch read asks for in full (range size null). */
function recordFullReads(): { full: Set<string>; restore: () => void } {
  const full = new Set<string>();
  const orig = StorageClient.prototype.batchRead;
  StorageClient.prototype.batchRead = function (this: StorageClient, req: BatchReadRequest) {
    for (const s of req.slots) {
      if (s.ranges.some((r) => r.size === null)) full.add(toHex(s.storageIndex));
    }
    return orig.call(this, req);
  };
  return { full, restore: () => (StorageClient.prototype.batchRead = orig) };
}

async function gsaSi(readcap: string): Promise<string> {
  return toHex(await capStorageIndex(parseCap(readcap)));
}

Deno.test(
  "refresh cost: join, unchanged, one changed GSA, and a long-polling client",
  opts,
  async (t) => {
    const g = await startJoinedGrid({ servers: 4 });
    const rec = recordFullReads();
    try {
      await t.step("join: at most 2 requests per asked server", async () => {
        const dir = `${g.root}/client2`;
        await shoalOk(["client", "create-node", "--dir", dir, "--introducer-v3", g.introText]);
        const node = (await GridNode.load(dir))!;
        try {
          const r = await node.refresh({ fanout: 2 });
          assert(r.full);
          assertEquals(r.state.servers.length, 4);
          assert(node.pool.requests <= 2 * 2, `join made ${node.pool.requests} requests`);
        } finally {
          node.close();
        }
      });

      await t.step("unchanged refresh: exactly 1 request and < 2 KB, every time", async () => {
        const node = (await GridNode.load(g.clientDir))!;
        try {
          const sizes: number[] = [];
          for (let i = 0; i < 6; i++) {
            const req0 = node.pool.requests;
            const bytes0 = node.pool.bytesSent + node.pool.bytesReceived;
            const r = await node.refresh();
            const bytes = node.pool.bytesSent + node.pool.bytesReceived - bytes0;
            assertEquals(r.full, false);
            assertEquals(r.quick, "watch");
            assertEquals(node.pool.requests - req0, 1, `refresh ${i}`);
            assert(bytes > 0 && bytes < 2048, `refresh ${i}: ${bytes} bytes`);
            sizes.push(bytes);
          }
          console.log(`unchanged refresh, HTTP bytes both ways: ${sizes.join(", ")}`);
        } finally {
          node.close();
        }
      });

      await t.step("a changed GSA: only that one is fetched", async () => {
        const s1 = g.servers[1];
        const node = (await GridNode.load(g.clientDir))!;
        try {
          const before = node.state.servers.find((s) => s.gsaReadcap === s1.gsaReadcap)!;
          await setConfig(s1.node.dir, "node", "nickname", "s1-renamed");
          await shoalOk(["storage", "join", "--dir", s1.node.dir, "--introducer-v3", g.introText]);
          rec.full.clear();
          const r = await node.refresh();
          assert(r.full, "the change was noticed");
          const after = r.state.servers.find((s) => s.gsaReadcap === s1.gsaReadcap)!;
          assert(after.gsaSeqnum > before.gsaSeqnum, "the new GSA version was read");
          const gsas = await Promise.all(g.servers.map((s) => gsaSi(s.gsaReadcap)));
          const fetched = gsas.filter((si) => rec.full.has(si));
          assertEquals(fetched, [gsas[1]], "only the changed GSA was read in full");
          // The others are kept as recorded.
          for (const s of r.state.servers.filter((x) => x.gsaReadcap !== s1.gsaReadcap)) {
            const old = node.state.servers.find((x) => x.gsaReadcap === s.gsaReadcap);
            assertEquals(s.gsaCheckstring, old?.gsaCheckstring);
          }
        } finally {
          node.close();
        }
      });

      await t.step("a running client sees a removal within ~1 s with a 60 s interval", async () => {
        await setConfig(g.clientDir, "client", "refresh_interval", 60);
        const node = await loadClientNode(g.clientDir);
        assertEquals(node.config.refreshInterval, 60);
        const ac = new AbortController();
        const logs: string[] = [];
        const running = runClient(node, ac.signal, (l) => logs.push(l), { web: false });
        try {
          // Let it settle into a long poll (the first refresh may read a changed GSA).
          await new Promise((r) => setTimeout(r, 2500));
          const st = node.grid.state;
          assertEquals(st.servers.length, 4);
          // The poll in flight asks the server at the cursor; remove another one (a removed
          // server is not sent the new GSD, so its own watchers learn only at their timeout).
          const polled = st.servers[st.cursor % st.servers.length].serverId;
          const victim = st.servers.find((s) => s.serverId !== polled)!;
          const reqBefore = node.grid.pool.requests;
          const tStart = Date.now();
          let tDone = 0;
          const removing = shoalOk([
            "operator",
            "remove-announcement",
            "--dir",
            g.opDir,
            victim.petname,
          ]).then(() => (tDone = Date.now()));
          while (node.grid.state.servers.some((s) => s.serverId === victim.serverId)) {
            if (Date.now() - tStart > 15_000) throw new Error(`not seen: ${logs.join("\n")}`);
            await new Promise((r) => setTimeout(r, 10));
          }
          const tSeen = Date.now();
          await removing;
          console.log(
            `removal seen by the long-polling client ${tSeen - tStart} ms after the operator ` +
              `command started (it returned after ${tDone - tStart} ms)`,
          );
          const late = tSeen - tDone;
          assert(late < 1500, `removal seen ${late} ms after the operator finished`);
          assertEquals(node.grid.state.servers.length, 3);
          for (let i = 0; i < 50 && !logs.some((l) => l.startsWith("removed:")); i++) {
            await new Promise((r) => setTimeout(r, 20));
          }
          assert(logs.some((l) => l.startsWith("removed:")), logs.join("\n"));
          assert(node.grid.pool.requests - reqBefore < 12, "a handful of requests, not a storm");
        } finally {
          const t1 = Date.now();
          ac.abort();
          await running;
          assert(Date.now() - t1 < 3000, "stopping does not wait for the long poll");
          node.grid.close();
        }
      });
    } finally {
      rec.restore();
      await g.close();
    }
  },
);
