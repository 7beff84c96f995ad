/**
 * A running server's announcement cycle: once it has read (or published) the
 * version of its GSA that carries what it announces, later cycles that find
 * that same version newest everywhere skip reading it again; a changed
 * nickname is still noticed and republished, and a server that lost the GSA
 * still gets it back.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setConfig, startJoinedGrid } from "../helpers/joined_grid.ts";
import { loadStorageNode } from "../../lib/roles/storage/mod.ts";
import { type AnnouncementMemo, publishAnnouncement } from "../../lib/roles/storage/announce.ts";
import { GridNode } from "../../lib/roles/gridnode.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("announcement cycles: an unchanged GSA is checked, not read again", opts, async () => {
  const g = await startJoinedGrid({ servers: 3, refreshInterval: 3600 });
  const s0 = g.servers[0];
  // The server process keeps running; this test plays its announcer by hand.
  const grid = (await GridNode.load(s0.node.dir))!;
  try {
    const node = await loadStorageNode(s0.node.dir);
    const memo: { last: AnnouncementMemo | null } = { last: null };
    const cycle = async () => {
      const before = grid.pool.requests;
      const r = await publishAnnouncement(node, grid, { memo });
      return { r, requests: grid.pool.requests - before };
    };
    const first = await cycle(); // reads the GSA once, learns its version
    assertEquals(first.r.published, false);
    assert(memo.last !== null, "the version carrying the announcement is remembered");
    const second = await cycle();
    assertEquals(second.r.published, false);
    assert(
      second.requests < first.requests,
      `the second cycle made ${second.requests} requests, the first ${first.requests}`,
    );
    // Without the memo every cycle reads again.
    const plainBefore = grid.pool.requests;
    await publishAnnouncement(node, grid);
    assert(grid.pool.requests - plainBefore > second.requests);

    // A changed nickname is republished even though the version is remembered.
    await setConfig(s0.node.dir, "node", "nickname", "renamed");
    const changed = await publishAnnouncement(await loadStorageNode(s0.node.dir), grid, { memo });
    assertEquals([changed.published, changed.reason], [true, "changed"]);
    assertEquals(memo.last!.seqnum, changed.seqnum, "the published version is remembered");
    const after = await publishAnnouncement(await loadStorageNode(s0.node.dir), grid, { memo });
    assertEquals(after.published, false);
  } finally {
    grid.close();
    await g.close();
  }
});
