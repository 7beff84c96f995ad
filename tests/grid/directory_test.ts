import { assert, assertEquals, assertRejects } from "../helpers/assert.ts";
import { utf8 } from "../../lib/codec/mod.ts";
import { formatCap, parseCap, readcapOf } from "../../lib/crypto/mod.ts";
import { DirectoryError } from "../../lib/grid/mod.ts";
import { TestGrid } from "../helpers/grid.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("directories on real servers", opts, async (t) => {
  const g = await TestGrid.start(4);
  try {
    const grid = g.grid(undefined, { k: 2, n: 4 });
    const root = await grid.createDirectory();
    const child = await grid.createMutableFile(utf8("child file"));
    const sub = await grid.createDirectory();

    await t.step("add, list, rename, remove; names are NFC-normalized", async () => {
      await grid.setEntry(root, "file.txt", child.writecap);
      await grid.setEntry(root, "Cafe\u0301", sub);
      const l = await grid.listDirectory(root);
      assertEquals(l.entries.map((e) => e.name), ["Caf\u00e9", "file.txt"]);
      const f = l.entries.find((e) => e.name === "file.txt")!;
      assertEquals(f.writecap, child.writecap);
      assertEquals(f.readcap, formatCap(await readcapOf(parseCap(child.writecap))));
      assert(typeof f.metadata.ctime === "number" && typeof f.metadata.mtime === "number");
      await grid.renameEntry(root, "file.txt", "renamed.txt");
      await assertRejects(() => grid.removeEntry(root, "file.txt"), DirectoryError, "no entry");
      await grid.removeEntry(root, "Café");
      assertEquals((await grid.listDirectory(root)).entries.map((e) => e.name), ["renamed.txt"]);
      await assertRejects(() => grid.setEntry(root, "a/b", sub), DirectoryError, "'/'");
      await assertRejects(
        () => grid.setEntry(root, "renamed.txt", sub, { noReplace: true }),
        DirectoryError,
        "exists",
      );
    });

    await t.step("a readcap holder sees read-only caps only (transitively)", async () => {
      await grid.setEntry(sub, "deep", child.writecap);
      await grid.setEntry(root, "sub", sub);
      const roRoot = formatCap(await readcapOf(parseCap(root)));
      const reader = g.grid(undefined, { k: 2, n: 4 });
      const l = await reader.listDirectory(roRoot);
      for (const e of l.entries) {
        assertEquals(e.writecap, undefined);
        assert(!parseCap(e.readcap).kind.endsWith("write"));
      }
      const subRo = l.entries.find((e) => e.name === "sub")!.readcap;
      const deep = (await reader.listDirectory(subRo)).entries[0];
      assertEquals(deep.writecap, undefined);
      assertEquals(parseCap(deep.readcap).kind, "mutable-read");
      // The raw directory contents do not contain the child writecap in the clear.
      const raw = await reader.readMutable(roRoot);
      assert(!new TextDecoder("latin1").decode(raw.contents).includes(sub));
      await assertRejects(() => reader.setEntry(roRoot, "x", child.writecap), Error, "writecap");
    });

    await t.step("concurrent modify from two writers: both entries survive", async () => {
      const dir = await grid.createDirectory();
      const w1 = g.grid(undefined, { k: 2, n: 4 });
      const w2 = g.grid(undefined, { k: 2, n: 4 });
      const names = Array.from({ length: 6 }, (_, i) => `entry-${i}`);
      await Promise.all(names.map((n, i) => (i % 2 ? w1 : w2).setEntry(dir, n, child.writecap)));
      const l = await grid.listDirectory(dir);
      assertEquals(l.entries.map((e) => e.name).sort(), names);
    });
  } finally {
    await g.close();
  }
});
