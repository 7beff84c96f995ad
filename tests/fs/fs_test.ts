/**
 * The one file-system API (lib/fs) on a grid of real storage server processes: paths, ranges,
 * link/unlink/rename/copy semantics, read-only roots, and concurrent writers in one directory.
 */
import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { TestGrid } from "../helpers/grid.ts";
import { type FsContext, FsError, parseFsPath, ShoalFs } from "../../lib/fs/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";

async function bytes(s: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** `fn` rejects with an FsError of this code. */
async function rejectsWith(fn: () => Promise<unknown>, c: string): Promise<void> {
  const e = await assertRejects(fn, FsError);
  assertEquals((e as FsError).code, c);
}

Deno.test("lib/fs: paths under a root cap on a real grid", async (t) => {
  const tg = await TestGrid.start(4);
  const tmpDir = await Deno.makeTempDir({ prefix: "shoal-fs-tmp-" });
  try {
    const grid = tg.grid(undefined, { k: 2, n: 4 });
    const ctx: FsContext = {
      getGrid: () => Promise.resolve(grid),
      shares: { k: 2, n: 4, happy: 2 },
      convergenceSecret: () => Promise.resolve(null),
      tmpDir,
    };
    const root = await grid.createDirectory();
    const fs = await ShoalFs.open(root, ctx);
    const data = randomBytes(300_000);

    await t.step("write, stat, read with ranges, list", async () => {
      await fs.mkdir(["docs"]);
      const n = await fs.write(["docs", "a.bin"], data);
      assertEquals(n.kind, "file");
      assertEquals(n.size, data.length);
      const s = await fs.stat(parseFsPath("/docs/a.bin"));
      assertEquals(s?.size, data.length);
      assertEquals(s?.etag, n.etag);
      assertEquals(await bytes(await fs.read(["docs", "a.bin"])), data);
      assertEquals(
        await bytes(await fs.read(["docs", "a.bin"], { offset: 1000, length: 5000 })),
        data.subarray(1000, 6000),
      );
      assertEquals(await fs.stat(["docs", "missing"]), null);
      await rejectsWith(() => fs.stat(["nope", "x"]), "not-found");
      await rejectsWith(() => fs.stat(["docs", "a.bin", "x"]), "not-directory");
      const l = await fs.list(["docs"]);
      assertEquals(l.entries.map((e) => e.name), ["a.bin"]);
      assert(!JSON.stringify(l.entries.map((e) => e.etag)).includes("shoal:"));
    });

    await t.step("mkdir refuses a taken name; a file never replaces a directory", async () => {
      await rejectsWith(() => fs.mkdir(["docs"]), "exists");
      await rejectsWith(() => fs.write(["docs"], new Uint8Array(1)), "is-directory");
      await rejectsWith(
        () => fs.write(["docs", "a.bin"], new Uint8Array(1), { noReplace: true }),
        "exists",
      );
    });

    await t.step("copy of a file links the same cap; copy of a directory is deep", async () => {
      await fs.copy(["docs", "a.bin"], ["b.bin"]);
      const a = await fs.resolve(["docs", "a.bin"]);
      const b = await fs.resolve(["b.bin"]);
      assertEquals(b.cap, a.cap);
      await fs.copy(["docs"], ["docs2"]);
      const d1 = await fs.resolve(["docs"]);
      const d2 = await fs.resolve(["docs2"]);
      assert(d1.cap !== d2.cap, "a copied directory is a new directory");
      assertEquals((await fs.resolve(["docs2", "a.bin"])).cap, a.cap);
      await fs.write(["docs2", "only-in-copy"], new Uint8Array([1]));
      assertEquals(await fs.stat(["docs", "only-in-copy"]), null);
      await rejectsWith(() => fs.copy(["docs"], ["docs", "inner"]), "invalid");
    });

    await t.step("rename within and across directories; unlink", async () => {
      await fs.rename(["b.bin"], ["c.bin"]);
      assertEquals(await fs.stat(["b.bin"]), null);
      await fs.rename(["c.bin"], ["docs", "c.bin"]);
      assertEquals(await fs.stat(["c.bin"]), null);
      assertEquals((await fs.resolve(["docs", "c.bin"])).size, data.length);
      await rejectsWith(
        () => fs.rename(["docs", "c.bin"], ["docs", "a.bin"], { noReplace: true }),
        "exists",
      );
      await rejectsWith(() => fs.rename(["docs"], ["docs", "x"]), "invalid");
      await fs.unlink(["docs", "c.bin"]);
      await rejectsWith(() => fs.unlink(["docs", "c.bin"]), "not-found");
    });

    await t.step("trail; linkAll all or nothing; errors carry their path", async () => {
      const tr = await fs.trail(["docs", "a.bin", "x"].slice(0, 2));
      assertEquals(tr.map((n) => n.name), ["", "docs", "a.bin"]);
      assertEquals((await fs.trail(["docs", "missing", "deeper"])).length, 2);
      const a = await fs.resolve(["docs", "a.bin"]);
      await fs.mkdir(["batch"]);
      await fs.mkdir(["batch", "sub"]);
      const before = (await fs.list(["batch"])).seqnum;
      await fs.linkAll(["batch"], [
        { name: "one", cap: a.cap, metadata: { size: 7 } },
        { name: "two", cap: a.cap },
      ]);
      const after = await fs.list(["batch"]);
      assertEquals(after.entries.map((e) => e.name), ["one", "sub", "two"]);
      assertEquals(after.seqnum, before + 1, "one change, one publish");
      assertEquals(after.entries[0].metadata.size, 7);
      // A file never replaces a directory: the whole batch is refused, nothing changes.
      const e = await assertRejects(
        () => fs.linkAll(["batch"], [{ name: "three", cap: a.cap }, { name: "sub", cap: a.cap }]),
        FsError,
      );
      assertEquals([(e as FsError).code, (e as FsError).path], ["is-directory", ["batch", "sub"]]);
      assertEquals(await fs.stat(["batch", "three"]), null);
      const nf = await assertRejects(() => fs.stat(["batch", "nope", "x"]), FsError);
      assertEquals((nf as FsError).path, ["batch", "nope"]);
      const nd = await assertRejects(() => fs.stat(["batch", "one", "x"]), FsError);
      assertEquals([(nd as FsError).code, (nd as FsError).path], ["not-directory", [
        "batch",
        "one",
      ]]);
    });

    await t.step("metadata: entry and root, ctime/mtime/size kept", async () => {
      await fs.updateMetadata(["docs", "a.bin"], (m) => ({ ...m, color: "red", size: 1 }));
      const n = await fs.resolve(["docs", "a.bin"]);
      assertEquals(n.metadata.color, "red");
      assertEquals(n.metadata.size, data.length);
      await fs.updateMetadata([], (m) => ({ ...m, note: "root" }));
      assertEquals((await fs.resolve([])).metadata.note, "root");
    });

    await t.step("a read-only root refuses every change", async () => {
      const ro = await ShoalFs.open(root, ctx, { readOnly: true });
      assert(!ro.writable);
      assertEquals(await bytes(await ro.read(["docs", "a.bin"])), data);
      assert(!(await ro.resolve(["docs"])).writable, "read-only is transitive");
      await rejectsWith(() => ro.write(["x"], new Uint8Array(1)), "read-only");
      await rejectsWith(() => ro.mkdir(["docs", "y"]), "read-only");
      await rejectsWith(() => ro.unlink(["docs", "a.bin"]), "read-only");
    });

    await t.step("concurrent writers in one directory never lose an entry", async () => {
      await fs.mkdir(["many"]);
      // Two independent ShoalFs objects: their changes race through the grid's modify retry;
      // within each, changes queued during a publish are coalesced into the next one.
      const other = await ShoalFs.open(root, ctx);
      const names = Array.from({ length: 24 }, (_, i) => `f${String(i).padStart(2, "0")}`);
      await Promise.all(
        names.map((name, i) =>
          (i % 2 ? other : fs).write(["many", name], new TextEncoder().encode(name))
        ),
      );
      const l = await fs.list(["many"]);
      assertEquals(l.entries.map((e) => e.name), names);
      assert(l.seqnum < names.length, `coalesced: ${l.seqnum} versions for ${names.length} links`);
      for (const n of l.entries.slice(0, 3)) {
        assertEquals(new TextDecoder().decode(await bytes(await fs.read(n))), n.name);
      }
    });
  } finally {
    await tg.close();
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  }
});
