import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { base32Encode, utf8 } from "../../lib/codec/mod.ts";
import {
  capStorageIndex,
  formatCap,
  parseCap,
  randomBytes,
  readcapOf,
} from "../../lib/crypto/mod.ts";
import { RollbackError, UnrecoverableError } from "../../lib/grid/mod.ts";
import { TestGrid } from "../helpers/grid.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function slotFiles(g: TestGrid, i: number, cap: string): Promise<string[]> {
  const si = base32Encode(await capStorageIndex(parseCap(cap)));
  const dir = g.slotDir(i, si);
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (/^\d+$/.test(e.name)) out.push(`${dir}/${e.name}`);
  return out;
}

Deno.test("mutable files on 10 real servers", opts, async (t) => {
  const g = await TestGrid.start(10);
  try {
    await t.step("create, read back, overwrite, modify (3-of-10)", async () => {
      const grid = g.grid();
      const { writecap, result } = await grid.createMutableFile(utf8("hello grid"));
      assertEquals(result.seqnum, 1);
      assertEquals(result.placed.length, 10);
      const r = await grid.readMutable(writecap);
      assertEquals(new TextDecoder().decode(r.contents), "hello grid");
      const readcap = formatCap(await readcapOf(parseCap(writecap)));
      await grid.writeMutable(writecap, utf8("second"));
      const r2 = await g.grid().readMutable(readcap);
      assertEquals(new TextDecoder().decode(r2.contents), "second");
      assertEquals(r2.seqnum, 2);
      await grid.modifyMutable(writecap, (old) => utf8(new TextDecoder().decode(old!) + "+more"));
      assertEquals(
        new TextDecoder().decode((await grid.readMutable(readcap)).contents),
        "second+more",
      );
      await assertRejects(() => grid.writeMutable(readcap, utf8("x")), Error, "writecap");
    });

    await t.step("k=1 everywhere: any single survivor serves the newest version", async () => {
      const grid = g.grid(undefined, "everywhere");
      const { writecap } = await grid.createMutableFile(utf8("v1"));
      await grid.writeMutable(writecap, utf8("v2-newest"));
      const check = await grid.checkMutable(writecap);
      assert(check.healthy, "every server holds the newest version");
      assertEquals(check.newest?.n, 10);
      for (const survivor of [0, 7]) {
        const only = g.grid([survivor], "everywhere");
        const r = await only.readMutable(writecap);
        assertEquals(new TextDecoder().decode(r.contents), "v2-newest");
        assertEquals(r.seqnum, 2);
      }
    });

    await t.step("a server holding an older version cannot roll a reader back", async () => {
      const grid = g.grid(undefined, "everywhere");
      const { writecap } = await grid.createMutableFile(utf8("old"));
      await g.stop(3);
      const res = await grid.writeMutable(writecap, utf8("new"));
      assertEquals(res.failures.length, 1, "the stopped server failed");
      await g.restart(3);
      const all = await g.grid(undefined, "everywhere").readMutable(writecap);
      assertEquals(new TextDecoder().decode(all.contents), "new");
      // With only the stale server, a reader who saw version 2 refuses version 1.
      const stale = g.grid([3], "everywhere");
      assertEquals(new TextDecoder().decode((await stale.readMutable(writecap)).contents), "old");
      await assertRejects(() => stale.readMutable(writecap, { minSeqnum: 2 }), RollbackError);
      // The stale server plus one honest one: newest wins.
      const both = await g.grid([3, 4], "everywhere").readMutable(writecap, { minSeqnum: 2 });
      assertEquals(new TextDecoder().decode(both.contents), "new");
      // Repair brings the stale server up to date.
      const rep = await grid.repairMutable(writecap);
      assert(rep.repaired);
      assert((await grid.checkMutable(writecap)).healthy);
    });

    await t.step("corrupt, foreign and garbage shares are skipped, never returned", async () => {
      const grid = g.grid(undefined, "everywhere");
      const a = await grid.createMutableFile(utf8("file A contents"));
      const b = await grid.createMutableFile(utf8("file B contents"));
      // server 0: flip a byte in A's block; server 1: A's share replaced by B's; server 2: garbage.
      const [a0] = await slotFiles(g, 0, a.writecap);
      const bytes = await Deno.readFile(a0);
      bytes[bytes.length - 1] ^= 1;
      await Deno.writeFile(a0, bytes);
      const [a1] = await slotFiles(g, 1, a.writecap);
      const [b1] = await slotFiles(g, 1, b.writecap);
      await Deno.writeFile(a1, await Deno.readFile(b1));
      const [a2] = await slotFiles(g, 2, a.writecap);
      await Deno.writeFile(a2, randomBytes(300));
      const r = await g.grid([0, 1, 2, 3], "everywhere").readMutable(a.writecap);
      assertEquals(new TextDecoder().decode(r.contents), "file A contents");
      assert(
        r.problems.length >= 2,
        `problems reported: ${r.problems.map((p) => p.problem).join("; ")}`,
      );
      for (const bad of [0, 1, 2]) {
        await assertRejects(
          () => g.grid([bad], "everywhere").readMutable(a.writecap),
          UnrecoverableError,
        );
      }
    });

    await t.step("a wrong cap reads nothing", async () => {
      const grid = g.grid();
      await grid.createMutableFile(utf8("secret"));
      const wrong = formatCap({
        kind: "mutable-read",
        readkey: randomBytes(32),
        fingerprint: randomBytes(32),
      });
      await assertRejects(() => grid.readMutable(wrong), UnrecoverableError);
    });

    await t.step("a 64 MiB mutable file round-trips (3-of-10)", async () => {
      const grid = g.grid();
      const big = new Uint8Array(64 * 1024 * 1024);
      for (let i = 0; i < big.length; i += 65536) big.set(randomBytes(65536), i);
      const { writecap } = await grid.createMutableFile(big);
      const r = await g.grid().readMutable(writecap);
      assertEquals(r.contents.length, big.length);
      assert(r.contents.every((b, i) => b === big[i]), "contents identical");
      await assertRejects(
        () => grid.writeMutable(writecap, new Uint8Array(64 * 1024 * 1024 + 1)),
        Error,
        "limit",
      );
    });

    await t.step("repair after adding servers puts a valid share on each new server", async () => {
      const small = g.grid([0, 1, 2, 3, 4], "everywhere");
      const { writecap } = await small.createMutableFile(utf8("grows"));
      const big = g.grid(undefined, "everywhere");
      const before = await big.checkMutable(writecap);
      assert(!before.healthy);
      assertEquals(before.servers.filter((s) => s.shares.length === 0).length, 5);
      await big.repairMutable(writecap);
      const after = await big.checkMutable(writecap);
      assert(after.healthy);
      assertEquals(after.newest?.n, 10);
      for (const s of after.servers) assert(s.shares.some((sh) => sh.newest && !sh.problem));
      assertEquals(
        new TextDecoder().decode((await g.grid([9], "everywhere").readMutable(writecap)).contents),
        "grows",
      );
    });
  } finally {
    await g.close();
  }
});
