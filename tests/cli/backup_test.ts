/**
 * `shoal client backup` against a real grid (storage servers and shoal processes on loopback):
 * a first and a second run over a tree with changes, renames, deletions, a FIFO, a symlink and an
 * unreadable file (non-root only: root reads mode-000 files); restores are byte-identical; a run
 * killed with SIGKILL mid-backup leaves Latest intact and a rerun completes.
 */
import { DatabaseSync } from "node:sqlite";
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { startShoal } from "../helpers/process.ts";
import { run } from "../helpers/serve.ts";
import { runShoal } from "../helpers/storage_process.ts";
import { ChangedError, checkedSource } from "../../lib/roles/client/backup.ts";

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

const isRoot = Deno.uid() === 0;

/** Regular files under `root`, relative path → bytes (skipping what backup skips). */
async function regularFiles(
  root: string,
  skip: (rel: string) => boolean = () => false,
): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (dir: string, rel: string) => {
    for await (const d of Deno.readDir(dir)) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (skip(r)) continue;
      const st = await Deno.lstat(`${dir}/${d.name}`);
      if (st.isDirectory) await walk(`${dir}/${d.name}`, r);
      else if (st.isFile) out.set(r, await Deno.readFile(`${dir}/${d.name}`));
    }
  };
  await walk(root, "");
  return out;
}

async function assertSameFiles(
  src: string,
  restored: string,
  skip: (rel: string) => boolean,
): Promise<void> {
  const a = await regularFiles(src, skip);
  const b = await regularFiles(restored);
  assertEquals([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, v] of a) assertEquals(b.get(k), v, `${k} differs`);
}

interface Summary {
  archive: string;
  filesUploaded: number;
  filesReused: number;
  directoriesCreated: number;
  directoriesReused: number;
  bytesUploaded: number;
  skipped: string[];
}

Deno.test({
  name: "client backup: incremental archives, Latest, restore, interruption",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const g = await startJoinedGrid({
      servers: 4,
      refreshInterval: 3600,
      shares: { k: 2, n: 3, happy: 2 },
    });
    const work = await Deno.makeTempDir({ prefix: "shoal-backup-" });
    const src = `${work}/src`;
    const C = g.clientDir;
    const backup = async (...extra: string[]) => {
      const r = await runShoal([
        "client",
        "backup",
        "--dir",
        C,
        "--json",
        "--exclude-vcs",
        "--exclude",
        "*.tmp",
        ...extra,
        src,
        "bk:laptop",
      ]);
      assert(r.code === 0 || r.code === 1, `backup exit ${r.code}: ${r.stderr}`);
      return { code: r.code, sum: JSON.parse(r.stdout) as Summary, stderr: r.stderr };
    };
    const restore = async (from: string, to: string) => {
      await g.shoal(["client", "cp", "--dir", C, "-r", from, to]);
    };
    const latestCap = async (): Promise<string> => {
      const ls = JSON.parse(await g.shoal(["client", "ls", "--dir", C, "--json", "bk:laptop"]));
      const e = ls.entries.find((x: { name: string }) => x.name === "Latest");
      return e.readcap;
    };
    const skipRel = (r: string) => r === ".git" || r.endsWith(".tmp") || r === "locked.txt";
    try {
      await g.shoal(["client", "alias", "create", "--dir", C, "bk"]);
      await Deno.mkdir(`${src}/docs/deep`, { recursive: true });
      await Deno.mkdir(`${src}/photos`, { recursive: true });
      await Deno.mkdir(`${src}/.git`, { recursive: true });
      await Deno.mkdir(`${src}/empty`, { recursive: true });
      for (let i = 0; i < 12; i++) {
        await Deno.writeFile(`${src}/docs/f${i}.bin`, random(500 + i * 997));
      }
      for (let i = 0; i < 5; i++) await Deno.writeFile(`${src}/photos/p${i}.jpg`, random(40_000));
      await Deno.writeFile(`${src}/docs/deep/large.bin`, random(2_500_000));
      await Deno.writeTextFile(`${src}/readme.txt`, "first version\n");
      await Deno.writeTextFile(`${src}/scratch.tmp`, "excluded\n");
      await Deno.writeTextFile(`${src}/.git/HEAD`, "ref: refs/heads/main\n");
      await Deno.writeFile(`${src}/zero.bin`, new Uint8Array(0));
      await Deno.symlink("readme.txt", `${src}/link`);
      assertEquals((await run("mkfifo", [`${src}/fifo`])).code, 0);
      await Deno.writeTextFile(`${src}/locked.txt`, "secret\n");
      await Deno.chmod(`${src}/locked.txt`, 0o000);

      let first: Summary;
      await t.step("first run: uploads everything, skips link, FIFO, unreadable", async () => {
        const { code, sum } = await backup();
        first = sum;
        assertEquals(code, 1);
        const files = 12 + 5 + 1 + 1 + 1 + (isRoot ? 1 : 0);
        assertEquals(sum.filesUploaded, files);
        assertEquals(sum.filesReused, 0);
        assert(sum.skipped.some((s) => s.includes("link: symbolic link")), sum.skipped.join());
        assert(sum.skipped.some((s) => s.includes("fifo: special file")), sum.skipped.join());
        if (!isRoot) assert(sum.skipped.some((s) => s.includes("locked.txt: unreadable")));
        assert(/^\d{4}-\d\d-\d\d_\d\d:\d\d:\d\dZ$/.test(sum.archive), sum.archive);
        await restore("bk:laptop/Latest", `${work}/r1`);
        await assertSameFiles(
          src,
          `${work}/r1`,
          (r) => skipRel(r) && (r !== "locked.txt" || !isRoot),
        );
        assert((await Deno.stat(`${work}/r1/empty`)).isDirectory);
        assertEquals((await Deno.stat(`${C}/private/backupdb.sqlite`)).mode! & 0o777, 0o600);
      });

      await t.step("second run after changes: only changed files are read", async () => {
        await Deno.writeTextFile(`${src}/readme.txt`, "second version, longer\n");
        await Deno.rename(`${src}/docs/f1.bin`, `${src}/docs/renamed.bin`);
        await Deno.remove(`${src}/docs/f2.bin`);
        await Deno.writeFile(`${src}/docs/new.bin`, random(3000));
        const { sum } = await backup();
        assertEquals(sum.filesUploaded, 3); // readme, renamed (new path), new
        assertEquals(sum.filesReused, first.filesUploaded - 3);
        assertEquals(sum.bytesUploaded, 23 + (500 + 997) + 3000);
        // photos/, docs/deep/, empty/ are unchanged snapshots: reused as one cap each.
        assertEquals(sum.directoriesReused, 3);
        assertEquals(sum.directoriesCreated, 2); // docs/ and the root
        await restore("bk:laptop/Latest", `${work}/r2`);
        await assertSameFiles(
          src,
          `${work}/r2`,
          (r) => skipRel(r) && (r !== "locked.txt" || !isRoot),
        );
        // The first archive is still there, unchanged.
        await restore(`bk:laptop/Archives/${first.archive}`, `${work}/r1b`);
        await assertSameFiles(`${work}/r1`, `${work}/r1b`, () => false);
      });

      await t.step("third run, nothing changed: nothing read, nothing created", async () => {
        const { sum } = await backup();
        assertEquals(sum.filesUploaded, 0);
        assertEquals(sum.directoriesCreated, 0);
        const ls = JSON.parse(
          await g.shoal(["client", "ls", "--dir", C, "--json", "bk:laptop/Archives"]),
        );
        assertEquals(ls.entries.length, 3);
      });

      await t.step({
        name: "SIGKILL mid-backup leaves Latest intact; a rerun completes",
        fn: async () => {
          for (let i = 0; i < 30; i++) {
            await Deno.writeFile(`${src}/photos/big${i}.raw`, random(300_000));
          }
          const before = await latestCap();
          const db = new DatabaseSync(`${C}/private/backupdb.sqlite`, { readOnly: true });
          // Only the new files: a count of every row would also see what the killed run records.
          const count = () =>
            (db.prepare("SELECT count(*) AS n FROM files WHERE path LIKE '%/photos/big%'")
              .get() as {
                n: number;
              }).n;
          const n0 = count();
          // The same options as every other run, so the killed run backs up the same tree.
          const p = await startShoal([
            "client",
            "backup",
            "--dir",
            C,
            "--exclude-vcs",
            "--exclude",
            "*.tmp",
            src,
            "bk:laptop",
          ]);
          const deadline = Date.now() + 120_000;
          while (count() < n0 + 2 && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
          }
          const landed = count() - n0;
          await p.stop("SIGKILL");
          assert(landed >= 2 && landed < 30, `killed after ${landed} uploads`);
          assertEquals(await latestCap(), before);
          const { sum } = await backup();
          db.close();
          // What landed before the kill is reused, not read again.
          assert(sum.filesUploaded <= 30 - landed + 1, JSON.stringify(sum));
          assertEquals(sum.filesUploaded + sum.filesReused, first.filesUploaded + 30);
          assert((await latestCap()) !== before);
          await restore("bk:laptop/Latest", `${work}/r3`);
          await assertSameFiles(
            src,
            `${work}/r3`,
            (r) => skipRel(r) && (r !== "locked.txt" || !isRoot),
          );
        },
      });
    } finally {
      await Deno.chmod(`${src}/locked.txt`, 0o600).catch(() => {});
      await g.close();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test("client backup: a file whose length changes while it is read is refused", async () => {
  const f = await Deno.makeTempFile();
  try {
    await Deno.writeFile(f, new Uint8Array(3000));
    for (const claimed of [1000, 5000]) {
      let err: unknown = null;
      try {
        for await (const _ of checkedSource(f, claimed).open()) { /* drain */ }
      } catch (e) {
        err = e;
      }
      assert(err instanceof ChangedError, `claimed ${claimed}: ${err}`);
    }
    let n = 0;
    for await (const c of checkedSource(f, 3000).open()) n += c.length;
    assertEquals(n, 3000);
  } finally {
    await Deno.remove(f);
  }
});
