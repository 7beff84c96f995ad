/**
 * Hostile or stale grid members change nothing in anyone's view (issue #11.5, #11.14), and a
 * full server causes no republish storm (issue #13), through the CLI with real processes.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setConfig, shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";
import {
  createStorageNode,
  freePort,
  runShoal,
  startStorageServer,
} from "../helpers/storage_process.ts";
import { ClientPool, encodeAnnouncement } from "../../lib/discovery/mod.ts";
import { Grid, ServerList } from "../../lib/grid/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { formatStorageUrl, parseStorageUrl } from "../../lib/storage/mod.ts";
import { clientServers, newestSeqnum, recorded, testOpts, waitFor } from "./discovery_helpers.ts";

Deno.test(
  "#11.5: a GSA claiming another server's id is refused by clients, the operator and the victim",
  testOpts,
  async () => {
    const g = await startJoinedGrid({ servers: 3, refreshInterval: 1 });
    try {
      const [attacker, victim, third] = g.servers;
      const victimUrl = parseStorageUrl(victim.url);
      // The attacker (an announced server) stops its honest daemon and rewrites its own GSA:
      // the victim's id and swissnum (known to every member), an address nobody answers at.
      await attacker.proc!.stop();
      const bogus = { ...victimUrl, locations: [`127.0.0.1:${await freePort()}`] };
      const writecap = (await Deno.readTextFile(`${attacker.node.dir}/private/gsa-writecap`))
        .trim();
      const pool = new ClientPool({ timeoutMs: 3000 });
      try {
        const grid = new Grid({
          servers: new ServerList(
            [victim.url, third.url].map((u) => pool.server(parseStorageUrl(u))),
          ),
          leaseSecret: randomBytes(32),
          mutableEncoding: "everywhere",
        });
        await grid.modifyMutable(writecap, () =>
          encodeAnnouncement({
            nickname: "s1",
            serverId: victimUrl.pin,
            software: "shoal/0.1.0",
            announced: Math.floor(Date.now() / 1000),
            storage: { type: "storage", storageUrls: [bogus] },
            otherServices: [],
          }), { encoding: "everywhere" });
      } finally {
        pool.close();
      }
      const real = formatStorageUrl(victimUrl);
      const fake = formatStorageUrl(bogus);
      // A client: the victim keeps its real address; the claim is reported.
      const r = await runShoal(["client", "servers", "--dir", g.clientDir, "--refresh"]);
      assertEquals(r.code, 0, r.stderr);
      const rows = (await clientServers(g.clientDir, false)) as {
        nickname: string;
        serverId: string;
        storageUrls: string[];
      }[];
      const v = rows.filter((s) => s.nickname === victim.name);
      assert(rows.every((s) => !s.storageUrls.includes(fake)), "nobody uses the bogus address");
      assert(v.some((s) => s.storageUrls.includes(real)), "the victim keeps its real address");
      assert(/claims server .* but was added for server/.test(r.stderr), r.stderr);
      assert(
        !r.stderr.includes("MUT-R1") && !r.stderr.includes(fake),
        "no cap or URL in the report",
      );
      // A fresh client too (nothing recorded to fall back on).
      const F = `${g.root}/fresh`;
      await shoalOk(["client", "create-node", "--dir", F, "--introducer-v3", g.introText]);
      const fresh = await clientServers(F);
      assert(fresh.every((s) => !s.storageUrls.includes(fake)), "a fresh client refuses it");
      assert(fresh.some((s) => s.storageUrls.includes(real)));
      // The operator.
      const list = JSON.parse(await shoalOk(["operator", "list", "--dir", g.opDir, "--json"]));
      assert(
        list.servers.every((s: { locations: string[] }) =>
          !s.locations.includes(bogus.locations[0])
        ),
        "the operator refuses it",
      );
      // The victim itself always uses its own URL.
      await waitFor("the victim refreshed", async () => {
        const rec = await recorded(victim.node.dir);
        return rec.some((s) => s.storageUrls.includes(real)) &&
          rec.every((s) => !s.storageUrls.includes(fake));
      }, 10_000);
    } finally {
      await g.close();
    }
  },
);

Deno.test(
  "#11.14: a server answering with an old but valid GSD does not freeze a client that can reach an honest one",
  testOpts,
  async () => {
    const g = await startJoinedGrid({ servers: 3, refreshInterval: 1 });
    try {
      // Servers that only act on GSD writes (a long interval), so nothing but the operator
      // changes what they hold; the client records the settled view.
      await Promise.all(g.servers.map((s) => s.proc!.stop()));
      for (const s of g.servers) {
        await setConfig(s.node.dir, "discovery", "refresh_interval", 3600);
        s.proc = await startStorageServer(s.node.dir);
      }
      await clientServers(g.clientDir);
      // The server the client asks first goes down, misses a removal, and comes back stale.
      const first = (await recorded(g.clientDir))[0];
      const stale = g.servers.find((s) => s.name === first.nickname)!;
      const gone = g.servers.find((s) => s !== stale)!;
      await stale.proc!.stop();
      await shoalOk(["operator", "remove-announcement", "--dir", g.opDir, gone.name]);
      // It comes back as a hostile member would: serving what it held, announcing nothing
      // (its daemon no longer holds the GSA writecap, so nothing it holds changes).
      await Deno.rename(
        `${stale.node.dir}/private/gsa-writecap`,
        `${stale.node.dir}/gsa-writecap.away`,
      );
      stale.proc = await startStorageServer(stale.node.dir);
      // Each one-shot refresh asks the next server first: within two, an honest one.
      let seen = -1;
      for (let i = 0; i < 3 && seen < 0; i++) {
        const rows = await clientServers(g.clientDir);
        if (!rows.some((s) => s.nickname === gone.name)) seen = i;
      }
      assert(seen >= 0 && seen <= 1, `the removal was seen after ${seen + 1} refresh(es)`);
    } finally {
      await g.close();
    }
  },
);

Deno.test(
  "#13.3: a server with a full disk does not make any GSA version climb",
  testOpts,
  async () => {
    const g = await startJoinedGrid({ servers: 3, refreshInterval: 1 });
    try {
      // A fourth server whose disk is "full": everything but 0 bytes is reserved.
      const node = await createStorageNode({ dir: `${g.root}/full`, nickname: "full" });
      await setConfig(node.dir, "discovery", "refresh_interval", 1);
      await setConfig(node.dir, "storage", "reserved_space", "1000T");
      const proc = await startStorageServer(node.dir);
      g.servers.push({ name: "full", node, proc, url: proc.url, gsaReadcap: "" });
      const text = await shoalOk(["operator", "get-introduction-text", "--dir", g.opDir]);
      const rc = await shoalOk(["storage", "join", "--dir", node.dir, "--introducer-v3", text]);
      g.servers[3].gsaReadcap = rc;
      await shoalOk(["operator", "add-announcement", "--dir", g.opDir, rc]);
      const urls = g.servers.map((s) => s.url);
      const versions = async () =>
        await Promise.all(g.servers.slice(0, 3).map((s) => newestSeqnum(s.gsaReadcap, urls)));
      // Let the servers react to the new member (one new version each at most), then watch.
      await new Promise((r) => setTimeout(r, 4000));
      const before = await versions();
      await new Promise((r) => setTimeout(r, 10_000));
      const after = await versions();
      assertEquals(after, before, "no GSA version climbed while the full server refused them");
      // The refusals are reported in numbers that add up, and retried, not re-signed.
      const log = g.servers[0].proc!.stderr();
      for (const m of log.matchAll(/stored on (\d+) of (\d+) server/g)) {
        assert(Number(m[1]) <= Number(m[2]), m[0]);
        assert(Number(m[2]) <= 4, `${m[0]} on a 4-server grid`);
      }
      for (const m of log.matchAll(/lease renewal failed on (\d+)/g)) {
        assert(Number(m[1]) <= 4, `${m[0]} on a 4-server grid`);
      }
    } finally {
      await g.close();
    }
  },
);
