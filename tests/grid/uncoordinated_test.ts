/**
 * Uncoordinated writers can leave a mutable object with every version short of k shares: each
 * server holding another writer's attempt. Nothing is readable then, and a plain
 * read-modify-write would fail from then on, for every writer. A writer whose publish collided
 * still holds what it read: `modify` builds on that again and publishes above every version
 * seen, so the object is readable again (lib/grid/mutable.ts, docs/mutable-files.md §5).
 * The split is made by hand here (a rare race in tests/grid/directory_test.ts's two writers).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { utf8 } from "../../lib/codec/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import {
  CHECKSTRING_SIZE,
  createMutable,
  encodeVersion,
  modify,
  retrieve,
} from "../../lib/grid/mod.ts";
import { shareVectors, testAndWrite } from "../../lib/grid/mutable_write.ts";
import { TestGrid } from "../helpers/grid.ts";

Deno.test("modify: a collided writer makes an object with no readable version readable again", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const tg = await TestGrid.start(2);
  try {
    const grid = tg.grid(undefined, { k: 2, n: 2 });
    const servers = grid.servers.all();
    const enc = { k: 2, n: 2 };
    const base = { servers, leaseSecret: grid.leaseSecret };
    const { keys } = await createMutable(base, utf8("version 1"), enc);
    const ctx = grid.context(keys.storageIndex);
    // Which share each server holds of version 1.
    const held = new Map<number, number>();
    for (const [i, s] of servers.entries()) {
      for (const sh of [0, 1]) {
        const cs = await s.storage.readMutable(keys.storageIndex, sh, 0, CHECKSTRING_SIZE)
          .catch(() => null); // 404: not this server's share
        if (cs?.length === CHECKSTRING_SIZE) held.set(i, sh);
      }
    }
    assertEquals(held.size, 2, "each server holds one share of version 1");
    let calls = 0;
    const seen: string[] = [];
    const r = await modify(ctx, keys, async (old) => {
      seen.push(old ? new TextDecoder().decode(old) : "(none)");
      if (calls++ === 0) {
        // Another writer's two attempts, one share each, overwrite version 1 on both servers.
        for (const [i, sh] of held) {
          const s = servers[i];
          const specimen = await s.storage.readMutable(keys.storageIndex, sh, 0, CHECKSTRING_SIZE);
          const v = await encodeVersion(keys, utf8(`attempt ${i}`), 2, randomBytes(16), 2, 2);
          const w = await testAndWrite(
            grid.leaseSecret,
            keys,
            s,
            shareVectors([{ share: sh, data: v.share(sh), specimen }], []),
          );
          assert(w.success, "the other writer's share was written");
        }
      }
      return utf8(`${old ? new TextDecoder().decode(old) : ""} + mine`);
    }, { encoding: enc });
    assert(r !== null);
    assertEquals(seen, ["version 1", "version 1"], "built twice on what was read");
    const after = await retrieve(ctx, keys);
    assertEquals(new TextDecoder().decode(after.contents), "version 1 + mine");
    assert(after.seqnum >= 3, `published above every version seen (seqnum ${after.seqnum})`);
  } finally {
    await tg.close();
  }
});
