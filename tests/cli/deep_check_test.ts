/**
 * Whole-tree verbs through the real CLI against real server processes:
 * deep-check (with --repair and --add-lease), manifest, stats, du, ls -R and
 * check --repair, on a tree with files, nested directories, a mutable file, a
 * read-only link and a cycle (a directory linked into itself).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { fails, ok, run, testBytes } from "./files_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test(
  "deep-check, manifest, stats, du, ls -R on a tree with a cycle; repair after a loss",
  opts,
  async () => {
    const g = await startJoinedGrid({ servers: 4, shares: { k: 2, n: 4, happy: 3 } });
    try {
      const C = g.clientDir;
      const d = ["--dir", C];
      await ok(["client", "alias", "create", ...d, "home"]);
      await ok(["client", "put", ...d, "-", "home:a.txt"], testBytes(1000, 1));
      await ok(["client", "mkdir", ...d, "home:sub"]);
      await ok(["client", "put", ...d, "-", "home:sub/b.bin"], testBytes(20_000, 2));
      await ok(["client", "mkdir", ...d, "home:sub/deeper"]);
      await ok(["client", "put", ...d, "-", "home:sub/deeper/c.txt"], testBytes(3, 3));
      const m = await ok(["client", "put", ...d, "--mutable", "-", "home:m"], testBytes(500, 4));
      // The root linked into a subdirectory (a cycle), and a read-only link to the mutable file.
      await ok(["client", "ln", ...d, "home:", "home:sub/deeper/loop"]);
      const ls = JSON.parse(await ok(["client", "ls", ...d, "--json", "home:"]));
      const readcap = ls.entries.find((e: { name: string }) => e.name === "m").readcap;
      await ok(["client", "ln", ...d, readcap, "home:sub/m-ro"]);

      // deep-check: 7 distinct objects, all healthy.
      const dc = JSON.parse(await ok(["client", "deep-check", ...d, "--json", "home:"]));
      assertEquals(dc.counts.objects, 7, JSON.stringify(dc.counts));
      assertEquals(dc.counts.directories, 3);
      assertEquals(dc.counts.files, 3);
      assertEquals(dc.counts.mutableFiles, 1);
      assertEquals(dc.counts.healthy, 7);
      for (const o of dc.objects) {
        assert(!JSON.stringify(o).includes("shoal:"), "no cap in the per-object detail");
      }
      const text = await ok(["client", "deep-check", ...d, "home:"]);
      assert(
        /7 object\(s\).*7 healthy, 0 not healthy but recoverable, 0 unrecoverable/.test(text),
        text,
      );

      // manifest: path and cap per object, '.' for the root.
      const man =
        (await ok(["client", "manifest", ...d, "--storage-index", "--verify-cap", "home:"]))
          .split("\n");
      assertEquals(man.length, 7, man.join("\n"));
      const paths = man.map((l) => l.split(" ")[0]).sort();
      assertEquals(paths, [
        ".",
        "a.txt",
        "m",
        "sub",
        "sub/b.bin",
        "sub/deeper",
        "sub/deeper/c.txt",
      ]);
      for (const l of man) {
        const [, cap, si, vcap] = l.split(" ");
        assert(cap.startsWith("shoal:"));
        assert(/^[a-z2-7]{26}$/.test(si), si);
        assert(/^shoal:[A-Z]+-V1:/.test(vcap), vcap);
      }
      assert(man.some((l) => l.startsWith("m ") && l.includes(m)), "the mutable file's writecap");

      // stats and du.
      const st = JSON.parse(await ok(["client", "stats", ...d, "--json", "home:"]));
      assertEquals(st.directories, 3);
      assertEquals(st.immutableFiles, 3);
      assertEquals(st.mutableFiles, 1);
      assertEquals(st.immutableBytes, 21_003);
      assertEquals(st.mutableBytes, 500);
      assertEquals(st.largestFile, 20_000);
      assertEquals(st.histogram, [[1, 3, 1], [317, 1000, 2], [10001, 31622, 1]]);
      assertEquals(await ok(["client", "du", ...d, "home:"]), "21503\thome:");

      // ls -R: every path once, the cycle not followed again.
      assertEquals((await ok(["client", "ls", ...d, "-R", "home:"])).split("\n"), [
        "a.txt",
        "m",
        "sub/",
        "sub/b.bin",
        "sub/deeper/",
        "sub/deeper/c.txt",
      ]);

      // Lose a server: every object is short of a share, but recoverable.
      await g.servers[3].proc!.kill();
      g.servers[3].proc = null;
      const bad = await fails(["client", "deep-check", ...d, "--json", "home:"], 1);
      const b = JSON.parse(new TextDecoder().decode(bad.stdout));
      assertEquals(b.counts.unrecoverable, 0);
      assertEquals(b.unreachable.length, 1);
      // An unreachable server is not held against an object: 3 servers answered, happiness 3 is met,
      // yet share numbers held only by the lost server are missing.
      assert(b.counts.unhealthy > 0, JSON.stringify(b.counts));

      // check --repair on one object, then deep-check --repair --add-lease for the rest.
      const one = await run(["client", "check", ...d, "--repair", "home:a.txt"]);
      assertEquals(one.code, 0, one.stderr + one.text);
      assert(/repaired|repair not needed/.test(one.text), one.text);
      const before = JSON.parse(await ok(["client", "ls", ...d, "--json", "home:"]));
      void before;
      const rep = await run([
        "client",
        "deep-check",
        ...d,
        "--repair",
        "--add-lease",
        "--json",
        "home:",
      ]);
      assertEquals(rep.code, 0, rep.stderr + rep.text);
      const r = JSON.parse(rep.text);
      assertEquals(r.counts.healthy, 7, JSON.stringify(r.counts));
      assert(r.counts.leasesRenewed >= 7 * 3, JSON.stringify(r.counts));
      const mobj = r.objects.find((o: { path: string }) => o.path === "home:m");
      assertEquals(
        mobj.after?.seqnum ?? mobj.seqnum,
        mobj.seqnum,
        "the mutable file kept its version",
      );
      const again = JSON.parse(await ok(["client", "deep-check", ...d, "--json", "home:"]));
      assertEquals(again.counts.healthy, 7);
      assertEquals(
        again.objects.find((o: { path: string }) => o.path === "home:m").seqnum,
        mobj.seqnum,
      );
      assertEquals(
        await ok(["client", "get", ...d, "home:sub/b.bin"]).then((t) => t.length > 0),
        true,
      );
    } finally {
      await g.close();
    }
  },
);
