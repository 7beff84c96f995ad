/**
 * `shoal client` file commands through the real CLI against a real grid (one
 * grid for the whole suite, to stay fast): aliases, mutable put/get/overwrite,
 * directories (mkdir/ln/ls/mv/rm), paths, bad input with its exit codes;
 * immutable round trips of several sizes (stdin and file), convergence,
 * cp -r of a local tree to the grid and back, check/verify/repair, and
 * uploads with too few servers (servers stopped last).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { loadClientNode, openGrid } from "../../lib/roles/client/node.ts";
import { fails, ok, run, snapshot, testBytes } from "./files_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const dec = new TextDecoder();
const MiB = 1024 * 1024;

Deno.test("client file commands on a real grid", opts, async (t) => {
  const g = await startJoinedGrid({ servers: 4, shares: { k: 2, n: 4, happy: 3 } });
  const sh = (cmd: string, ...args: string[]) => ["client", cmd, "--dir", g.clientDir, ...args];
  const out = await Deno.makeTempDir({ prefix: "shoal-files-out-" });
  const tmp = await Deno.makeTempDir({ prefix: "shoal-files-xfer-" });
  let root = "";
  try {
    await t.step("aliases: create, add, list, remove; kept 0600", async () => {
      root = await ok(sh("mkdir"));
      assert(/^shoal:DIR-W1:[a-z2-7]+$/.test(root), "mkdir prints a directory writecap");
      await ok(sh("alias", "add", "home", root));
      const st = await Deno.stat(`${g.clientDir}/private/aliases.json`);
      assertEquals(st.mode! & 0o777, 0o600);
      await ok(sh("alias", "create", "scratch"));
      const list = JSON.parse(await ok(sh("alias", "list", "--json")));
      assertEquals(list.map((a: { name: string }) => a.name), ["home", "scratch"]);
      assertEquals(list[0], { name: "home", writable: true, cap: root });
      assertEquals(await ok(sh("alias", "list")), "home\twritable\nscratch\twritable");
      assert((await fails(sh("alias", "add", "home", root), 1)).stderr.includes("already exists"));
      assert(
        (await fails(sh("alias", "add", "bad/name", root), 2)).stderr.includes("bad alias name"),
      );
      assert((await fails(sh("alias", "add", "shoal", root), 2)).stderr.includes("reserved"));
      await ok(sh("alias", "remove", "scratch"));
      assert(
        (await fails(sh("alias", "remove", "scratch"), 1)).stderr.includes(
          "no alias named 'scratch'",
        ),
      );
      assert((await fails(sh("ls", "nope:"), 1)).stderr.includes("no alias named 'nope'"));
      assertEquals(await ok(sh("ls", "home:")), "");
    });

    await t.step("mutable put/get round trips (stdin and file), overwrite in place", async () => {
      await Promise.all([0, 1, 1000, 300_000].map(async (size) => {
        const data = testBytes(size, size + 7);
        const cap = await ok(sh("put", "--mutable", "-"), data);
        assert(/^shoal:MUT-W1:[a-z2-7]+$/.test(cap), `put prints the cap alone (size ${size})`);
        const got = await run(sh("get", cap));
        assertEquals(got.code, 0);
        assertEquals(got.stdout, data, `round trip of ${size} bytes`);
      }));
      const file = `${out}/notes.txt`;
      await Deno.writeTextFile(file, "first version\n");
      const cap = await ok(sh("put", "--mutable", file, "home:notes.txt"));
      assertEquals(await ok(sh("get", "home:notes.txt")), "first version");
      // put to an existing mutable file overwrites it in place: same cap, new contents
      assertEquals(
        await ok(
          sh("put", "--mutable", "-", "home:notes.txt"),
          new TextEncoder().encode("second\n"),
        ),
        cap,
      );
      assertEquals(await ok(sh("get", cap)), "second");
      assertEquals(
        await ok(sh("put", "--mutable", "-", cap), new TextEncoder().encode("third\n")),
        cap,
      );
      await ok(sh("get", "home:notes.txt", `${out}/back.txt`));
      assertEquals(await Deno.readTextFile(`${out}/back.txt`), "third\n");
      const left = [];
      for await (const e of Deno.readDir(out)) left.push(e.name);
      assertEquals(left.sort(), ["back.txt", "notes.txt"], "no temporary files left behind");
    });

    await t.step("mkdir, ln, ls (plain, -l, --json), mv, rm; CAP/path form", async () => {
      await ok(sh("mkdir", "home:docs"));
      assert(
        (await fails(sh("mkdir", "home:docs"), 1)).stderr.includes("home:docs already exists"),
      );
      await ok(sh("ln", "home:notes.txt", "home:docs"));
      assertEquals(await ok(sh("ls", "home:docs")), "notes.txt");
      assertEquals(await ok(sh("ls", "home:")), "docs/\nnotes.txt");
      const long = (await ok(sh("ls", "-l", "home:"))).split("\n");
      assert(long[0].startsWith("dw ") && long[0].endsWith(" docs/"), long[0]);
      assert(long[1].startsWith("mw ") && long[1].endsWith(" notes.txt"), long[1]);
      const js = JSON.parse(await ok(sh("ls", "--json", "home:")));
      assertEquals(js.directory, true);
      assertEquals(js.entries.map((e: { name: string; type: string }) => [e.name, e.type]), [
        ["docs", "directory"],
        ["notes.txt", "mutable-file"],
      ]);
      assert(
        js.entries[1].readcap.startsWith("shoal:MUT-R1:") &&
          js.entries[1].writecap.startsWith("shoal:MUT-W1:"),
      );
      assertEquals(await ok(sh("ls", `${root}/docs`)), "notes.txt");
      assertEquals(await ok(sh("get", `${root}/docs/notes.txt`)), "third");

      await ok(sh("mv", "home:docs/notes.txt", "home:docs/renamed.txt"));
      assertEquals(await ok(sh("ls", "home:docs")), "renamed.txt");
      await ok(sh("mkdir", "home:docs/sub"));
      await ok(sh("mv", "home:docs/renamed.txt", "home:docs/sub"));
      assertEquals(await ok(sh("ls", "home:docs/sub")), "renamed.txt");
      assertEquals(await ok(sh("get", "home:docs/sub/renamed.txt")), "third");
      await ok(sh("rm", "home:docs/sub/renamed.txt"));
      assertEquals(await ok(sh("ls", "home:docs/sub")), "");
      assert(
        (await fails(sh("rm", "home:docs/sub/renamed.txt"), 1)).stderr.includes(
          "not found: home:docs/sub/renamed.txt",
        ),
      );
      assert(
        (await fails(sh("mv", "home:docs", "home:docs/sub"), 1)).stderr.includes(
          "cannot move home:docs into itself",
        ),
      );
      assertEquals(await ok(sh("ls", "home:")), "docs/\nnotes.txt");
    });

    await t.step("bad input: clear messages, exit codes, caps never echoed", async () => {
      const payload = root.split(":")[2];
      const bad = root.slice(0, -4) + "0000";
      await Promise.all(
        [sh("get", bad), sh("ls", bad + "/docs"), sh("put", "-", bad + "/x")].map(async (args) => {
          const r = await fails(args, 2, new Uint8Array(1));
          assert(r.stderr.includes("malformed cap"), r.stderr);
          assert(!r.stderr.includes(payload.slice(0, 20)), "the cap is never echoed");
        }),
      );
      assert((await fails(sh("ls", "plainword"), 2)).stderr.includes("not a grid path"));
      assert(
        (await fails(sh("get", "home:missing"), 1)).stderr.includes("not found: home:missing"),
      );
      assert(
        (await fails(sh("ls", "home:notes.txt/x"), 1)).stderr.includes(
          "not a directory: home:notes.txt",
        ),
      );
      assert((await fails(sh("get", "home:docs"), 1)).stderr.includes("home:docs is a directory"));
      assert((await fails(sh("ls", "home:docs/../x"), 2)).stderr.includes("'..'"));
      // a failed get leaves nothing claiming to be the file
      await fails(sh("get", "home:missing", `${out}/missing.txt`), 1);
      const left = [];
      for await (const e of Deno.readDir(out)) left.push(e.name);
      assertEquals(left.sort(), ["back.txt", "notes.txt"]);
      // read-only caps refuse writes
      const js = JSON.parse(await ok(sh("ls", "--json", "home:")));
      const docsRead = js.entries.find((e: { name: string }) => e.name === "docs").readcap;
      assert(docsRead.startsWith("shoal:DIR-R1:"));
      await ok(sh("alias", "add", "ro", docsRead));
      assertEquals(await ok(sh("alias", "list")), "home\twritable\nro\tread-only");
      assertEquals(await ok(sh("ls", "ro:")), "sub/");
      for (
        const args of [
          sh("mkdir", "ro:new"),
          sh("rm", "ro:sub"),
          sh("put", "--mutable", "-", "ro:x"),
        ]
      ) {
        const r = await fails(args, 1, new Uint8Array(1));
        assert(r.stderr.includes("ro: is read-only"), r.stderr);
      }
      const sub = JSON.parse(await ok(sh("ls", "--json", "ro:")));
      assertEquals(sub.entries[0].writecap, undefined, "a readcap holder sees read-only children");
      assert(dec.decode((await run(sh("ls", "--help"))).stdout).includes("Usage: shoal client ls"));
    });

    await t.step(
      "put/get round trips: stdin and file, sizes 0 .. segment+1, spooled stdin",
      async () => {
        await Promise.all([0, 1, MiB - 1, MiB, MiB + 1].map(async (size) => {
          const data = testBytes(size, size + 3);
          const cap = await ok(sh("put", "-"), data);
          assert(
            new RegExp(`^shoal:CHK-R1:[a-z2-7]+:2:4:${size}$`).test(cap),
            `the cap alone on stdout (${size})`,
          );
          const got = await run(sh("get", cap));
          assertEquals(got.code, 0, got.stderr);
          assert(
            got.stdout.length === size && got.stdout.every((b, i) => b === data[i]),
            `stdout round trip of ${size}`,
          );
          const file = `${tmp}/in-${size}`;
          await Deno.writeFile(file, data);
          assertEquals(
            await ok(sh("put", file)),
            cap,
            "convergence: the same bytes give the same cap",
          );
          await ok(sh("get", cap, `${tmp}/out-${size}`));
          assertEquals(
            await Deno.readFile(`${tmp}/out-${size}`),
            data,
            `file round trip of ${size}`,
          );
        }));
        const a = await ok(sh("put", "--no-convergence", `${tmp}/in-1`));
        const b = await ok(sh("put", "--no-convergence", `${tmp}/in-1`));
        assert(a !== b && a.endsWith(":2:4:1"), "--no-convergence uses a random key");
        // more than 8 MiB on stdin is spooled to C/tmp and removed afterwards
        const big = testBytes(9 * MiB, 99);
        const cap = await ok(sh("put", "-", "--no-convergence"), big);
        assertEquals((await run(sh("get", cap))).stdout, big);
        const spool = [];
        for await (const e of Deno.readDir(`${g.clientDir}/tmp`)) spool.push(e.name);
        assertEquals(spool, [], "the stdin spool file is removed");
      },
    );

    const tree = `${tmp}/tree`;
    await t.step("cp -r: a local tree to the grid and back is identical", async () => {
      await Deno.mkdir(`${tree}/sub/deeper`, { recursive: true });
      await Deno.mkdir(`${tree}/empty`);
      await Deno.writeFile(`${tree}/a.txt`, new TextEncoder().encode("alpha\n"));
      await Deno.writeFile(`${tree}/sub/b.bin`, testBytes(300_000, 5));
      await Deno.writeFile(`${tree}/sub/deeper/zero`, new Uint8Array(0));
      await Deno.writeFile(`${tree}/café.txt`, testBytes(10, 6));
      await ok(sh("alias", "create", "t"));
      await ok(sh("cp", "-r", tree, "t:"));
      assertEquals(await ok(sh("ls", "t:tree")), "a.txt\ncafé.txt\nempty/\nsub/");
      assertEquals(await ok(sh("get", "t:tree/a.txt")), "alpha");
      await ok(sh("cp", "-r", "t:tree", `${tmp}/back`));
      assertEquals(
        await snapshot(`${tmp}/back`),
        await snapshot(tree),
        "the tree came back identical",
      );
      // again into an existing grid directory: merged, still identical
      await Deno.writeFile(`${tree}/sub/new.txt`, new TextEncoder().encode("new"));
      await ok(sh("cp", "-r", tree, "t:"));
      await ok(sh("cp", "-r", "t:tree", `${tmp}/back2`));
      assertEquals(await snapshot(`${tmp}/back2`), await snapshot(tree));
      // several files into a grid directory; a grid file out to a local directory
      await ok(sh("cp", `${tree}/a.txt`, `${tree}/sub/b.bin`, "t:tree/empty"));
      assertEquals(await ok(sh("ls", "t:tree/empty")), "a.txt\nb.bin");
      await ok(sh("cp", "t:tree/empty/b.bin", tmp));
      assertEquals(await Deno.readFile(`${tmp}/b.bin`), testBytes(300_000, 5));
      assert((await fails(sh("cp", tree, "t:other"), 1)).stderr.includes("use 'cp -r'"));
      assert(
        (await fails(sh("cp", tree, `${tmp}/x`), 2)).stderr.includes(
          "between this computer and the grid",
        ),
      );
      assert(
        (await fails(sh("cp", `${tree}/a.txt`, tree, "t:nodir"), 1)).stderr.includes(
          "must be an existing directory",
        ),
      );
    });

    await t.step("cp -r names an entry it cannot copy and fails, copying the rest", async () => {
      // A directory written by a newer version: one entry holds a cap kind this one lacks.
      const grid = await openGrid(await loadClientNode(g.clientDir));
      const file = (await ok(sh("ls", "--json", "t:tree"))).trim();
      const a = JSON.parse(file).entries.find((e: { name: string }) => e.name === "a.txt");
      const odd = await grid.createDirectory([
        { name: "a.txt", readcap: a.readcap ?? a.cap, metadata: {} },
        { name: "future", readcap: "x-future-cap:v9:abc", metadata: {} },
      ]);
      await ok(sh("ln", odd, "t:odd"));
      const r = await fails(sh("cp", "-r", "t:odd", `${tmp}/odd`), 1);
      assert(r.stderr.includes("t:odd/future"), r.stderr);
      assert(r.stderr.includes("cannot use"), r.stderr);
      assertEquals(await Deno.readTextFile(`${tmp}/odd/a.txt`), "alpha\n");
    });

    await t.step("check, verify, repair (text and --json); exit 1 when not healthy", async () => {
      const file = "t:tree/sub/b.bin";
      assert((await ok(sh("check", file))).startsWith("t:tree/sub/b.bin: healthy"));
      const v = JSON.parse(await ok(sh("verify", "--json", file)));
      assertEquals([v.kind, v.healthy, v.detail.verifiedBlocks, v.detail.sharesFound], [
        "CHK-R1",
        true,
        true,
        4,
      ]);
      assert((await ok(sh("check", "t:tree"))).startsWith("t:tree: healthy"));
      // one server down: its share is missing; repair puts it on another server
      await g.servers[3].proc!.stop();
      const c = await fails(sh("check", file), 1);
      assert(
        c.stdout.length > 0 && c.text.startsWith("t:tree/sub/b.bin: NOT healthy (recoverable)"),
        c.text,
      );
      const r = JSON.parse((await run(sh("repair", "--json", file))).text);
      assertEquals([r.repaired, r.healthy], [true, true]);
      assert((await ok(sh("check", file))).includes("healthy"));
      // --verify downloads every block first; nothing is bad, so nothing to do.
      const rv = JSON.parse(await ok(sh("repair", "--verify", "--json", file)));
      assertEquals([rv.repaired, rv.healthy, rv.detail.before.verifiedBlocks], [
        false,
        true,
        true,
      ]);
      assertEquals(
        await Deno.readFile(`${tmp}/in-${MiB}`),
        (await run(sh("get", await ok(sh("put", `${tmp}/in-${MiB}`))))).stdout,
      );
    });

    await t.step(
      "too few servers: a clear error saying how many are needed and known",
      async () => {
        await g.servers[2].proc!.stop(); // 2 of 4 running; happy is 3
        const r = await fails(sh("put", "-", "t:never.bin"), 1, testBytes(5000, 8));
        assert(
          r.stderr.includes("not enough storage servers") && r.stderr.includes("need 3"),
          r.stderr,
        );
        assert(r.stderr.includes("this node knows 4 server(s)"), r.stderr);
        assertEquals(r.text, "", "no cap is printed");
        assert(!(await ok(sh("ls", "t:"))).includes("never.bin"), "nothing was linked");
        await g.servers[1].proc!.stop(); // 1 running; a mutable file needs k = 2
        const m = await fails(sh("put", "--mutable", "-"), 1, testBytes(10, 9));
        assert(m.stderr.includes("not enough storage servers"), m.stderr);
      },
    );
  } finally {
    await g.close();
    await Deno.remove(out, { recursive: true }).catch(() => {});
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
