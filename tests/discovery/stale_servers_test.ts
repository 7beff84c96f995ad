/**
 * Servers that missed the operator's last GSD write (they were down) do not make a client's
 * refresh fail (issue #13, 200-server bench: "refused a stale grid service directory" was most
 * of the failed refreshes while a republish was under way). Real storage server processes;
 * GSAs and GSD built with the library as the bench does (k = 1, a share on every server).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { TestGrid } from "../helpers/grid.ts";
import { base32Encode } from "../../lib/codec/mod.ts";
import {
  ClientPool,
  emptyState,
  encodeAnnouncement,
  formatIntroductionText,
  gsdEntryName,
  gsdMeta,
  parseIntroductionText,
  refreshDiscovery,
} from "../../lib/discovery/mod.ts";
import { type DirEntry, Grid, ServerList } from "../../lib/grid/mod.ts";
import { type Cap, formatCap, parseCap, randomBytes, readcapOf } from "../../lib/crypto/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import { testOpts } from "./discovery_helpers.ts";

Deno.test(
  "stale servers: a refresh that first meets two servers with an older GSD still succeeds",
  testOpts,
  async () => {
    const tg = await TestGrid.start(4);
    const pool = new ClientPool({ timeoutMs: 5000 });
    try {
      const urls = tg.urls().map(parseStorageUrl);
      const gridOver = (idx: number[]) =>
        new Grid({
          servers: new ServerList(idx.map((i) => pool.server(urls[i]))),
          leaseSecret: randomBytes(32),
          mutableEncoding: "everywhere",
        });
      const all = gridOver([0, 1, 2, 3]);
      const now = Math.floor(Date.now() / 1000);
      const entries: DirEntry[] = [];
      for (const [i, url] of urls.entries()) {
        const { writecap } = await all.createMutableFile(
          encodeAnnouncement({
            nickname: `s${i}`,
            serverId: url.pin,
            software: "shoal/test",
            announced: now,
            storage: { type: "storage", storageUrls: [url] },
            otherServices: [],
          }),
          "everywhere",
        );
        entries.push({
          name: gsdEntryName(`s${i}`),
          readcap: formatCap(await readcapOf(parseCap(writecap))),
          metadata: { ctime: now, mtime: now },
        });
      }
      const gsdWritecap = await all.createDirectory(entries, "everywhere", { ...gsdMeta(now) });
      const gsdReadcap = await readcapOf(parseCap(gsdWritecap)) as Extract<
        Cap,
        { kind: "dir-read" }
      >;
      const intro = parseIntroductionText(
        formatIntroductionText({ gsdReadcap, storageUrls: urls }),
      );

      const client = new ClientPool({ timeoutMs: 5000 });
      try {
        const joined = await refreshDiscovery(intro, emptyState(), client);
        assertEquals(joined.state.servers.length, 4);
        // The first two candidates in the client's order miss the next write.
        const order = joined.state.servers.map((s) => s.serverId);
        const stale = [0, 1].map((k) => urls.findIndex((u) => base32Encode(u.pin) === order[k]));
        const fresh = [0, 1, 2, 3].filter((i) => !stale.includes(i));
        await gridOver(fresh).modifyDirectory(gsdWritecap, (es) => ({
          entries: es,
          meta: { ...gsdMeta(now + 1) },
        }), { encoding: "everywhere" });
        // The client learns the new version from a fresh server...
        const learned = await refreshDiscovery(
          intro,
          { ...joined.state, cursor: 2 },
          client,
        );
        assert(learned.state.gsd!.seqnum > joined.state.gsd!.seqnum);
        // ...and its next refresh asks the two stale ones first: no failure, nothing lost.
        const r = await refreshDiscovery(intro, { ...learned.state, cursor: 0 }, client);
        assertEquals(r.state.gsd!.seqnum, learned.state.gsd!.seqnum);
        assertEquals(r.state.servers.length, 4);
        assert(
          r.problems.some((p) => p.includes("older grid service directory")),
          r.problems.join("; "),
        );
        // Fanout 1, no quick check: the full read goes on past the stale servers too.
        const f = await refreshDiscovery(intro, { ...learned.state, cursor: 0 }, client, {
          quick: false,
          fanout: 1,
        });
        assertEquals(f.state.gsd!.seqnum, learned.state.gsd!.seqnum);
        assertEquals(f.state.servers.length, 4);
      } finally {
        client.close();
      }
    } finally {
      pool.close();
      await tg.close();
    }
  },
);
