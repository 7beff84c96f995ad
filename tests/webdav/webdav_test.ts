/**
 * `shoal client serve webdav` on a joined grid of real storage processes, driven by the real
 * clients: litmus (the WebDAV conformance suite), rclone's webdav backend, cadaver; plus the
 * security and concurrency properties the clients do not check.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { ensureTool } from "../helpers/debian.ts";
import { type JoinedGrid, startJoinedGrid } from "../helpers/joined_grid.ts";
import { basic, run, type Served, startServe } from "../helpers/serve.ts";

async function tree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/sub/deep`, { recursive: true });
  const big = new Uint8Array(2_500_000);
  for (let o = 0; o < big.length; o += 65536) {
    crypto.getRandomValues(big.subarray(o, Math.min(big.length, o + 65536)));
  }
  await Deno.writeFile(`${root}/big.bin`, big);
  await Deno.writeTextFile(`${root}/a.txt`, "hello\n");
  await Deno.writeTextFile(`${root}/sub/ünïcode name.txt`, "ü\n");
  await Deno.writeFile(`${root}/sub/deep/empty`, new Uint8Array(0));
}

Deno.test("webdav: litmus, rclone, cadaver against a real grid", async (t) => {
  const litmus = await ensureTool("litmus");
  const rclone = await ensureTool("rclone");
  const cadaver = await ensureTool("cadaver");
  const g: JoinedGrid = await startJoinedGrid({
    servers: 4,
    refreshInterval: 3600,
    shares: { k: 2, n: 4, happy: 2 },
  });
  const work = await Deno.makeTempDir({ prefix: "shoal-webdav-" });
  let dav: Served | null = null;
  const extra: Served[] = [];
  try {
    await g.shoal(["client", "alias", "create", "--dir", g.clientDir, "home"]);
    dav = await startServe(["webdav", "--dir", g.clientDir, "--path", "home"]);
    const { base, user, password } = dav;
    const auth = basic(user, password);

    await t.step("prints its URL with credentials last; the password is private", async () => {
      assert(/^http:\/\/shoal:[a-z2-7]{40,}@127\.0\.0\.1:\d+\/$/.test(dav!.line), dav!.line);
      const file = `${g.clientDir}/private/webdav-password`;
      assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
      assertEquals((await Deno.readTextFile(file)).trim(), password);
      assert(!dav!.proc.stderr().includes(password), "the password is never logged");
      const none = await fetch(base, { method: "PROPFIND", headers: { depth: "0" } });
      await none.body?.cancel();
      assertEquals(none.status, 401);
      assert(none.headers.get("www-authenticate")?.startsWith("Basic"));
      const wrong = await fetch(base, { headers: basic(user, password.slice(1) + "a") });
      await wrong.body?.cancel();
      assertEquals(wrong.status, 401);
      const cross = await fetch(`${base}x.txt`, {
        method: "PUT",
        headers: { ...auth, origin: "http://evil.example" },
        body: "x",
      });
      await cross.body?.cancel();
      assertEquals(cross.status, 403, "cross-site writes are refused even with the password");
    });

    await t.step("litmus: basic, copymove, props, locks and http all pass", async () => {
      const r = await run(litmus, [base, user, password], {
        cwd: work,
        env: { TESTS: "basic copymove props locks http" },
      });
      const summaries = [
        ...r.stdout.matchAll(
          /summary for `(\w+)': of (\d+) tests run: (\d+) passed, (\d+) failed/g,
        ),
      ];
      assertEquals(
        summaries.map((m) => m[1]),
        ["basic", "copymove", "props", "locks", "http"],
        r.stdout.slice(-3000),
      );
      for (const m of summaries) {
        assertEquals(m[4], "0", `litmus ${m[1]}: ${r.stdout.slice(-3000)}`);
        assertEquals(m[2], m[3]);
      }
      assert(!/WARNING/.test(r.stdout), r.stdout);
    });

    await t.step("PROPFIND Depth: infinity is refused; Depth 1 lists", async () => {
      const inf = await fetch(base, {
        method: "PROPFIND",
        headers: { ...auth, depth: "infinity" },
      });
      assertEquals(inf.status, 403);
      assert((await inf.text()).includes("propfind-finite-depth"));
    });

    const src = `${work}/src`;
    await tree(src);
    let obscured = "";
    const remote = (p: string) =>
      `:webdav,url='${base}',vendor=other,user=${user},pass=${obscured}:${p}`;
    const rc = async (...args: string[]) => {
      const r = await run(rclone, [...args, "--config", "/dev/null", "-q"], { cwd: work });
      if (r.code !== 0) throw new Error(`rclone ${args[0]} failed: ${r.stderr}`);
      return r.stdout;
    };

    await t.step("rclone: copy, lsjson, check, sync, delete", async () => {
      obscured = (await rc("obscure", password)).trim();
      await rc("copy", src, remote("rc"));
      const ls = JSON.parse(await rc("lsjson", "-R", remote("rc"))) as {
        Path: string;
        Size: number;
        IsDir: boolean;
      }[];
      const files = ls.filter((e) => !e.IsDir).map((e) => [e.Path, e.Size]).sort();
      assertEquals(files, [
        ["a.txt", 6],
        ["big.bin", 2_500_000],
        ["sub/deep/empty", 0],
        ["sub/ünïcode name.txt", 3],
      ]);
      await rc("check", src, remote("rc"));
      // Change the source: a new file, a changed file, a removed file; sync makes them equal.
      await Deno.writeTextFile(`${src}/new.txt`, "new\n");
      await Deno.writeTextFile(`${src}/a.txt`, "hello again\n");
      await Deno.remove(`${src}/sub/deep/empty`);
      await rc("sync", src, remote("rc"));
      await rc("check", src, remote("rc"));
      const after = JSON.parse(await rc("lsjson", "-R", "--files-only", remote("rc")));
      assertEquals(after.map((e: { Path: string }) => e.Path).sort(), [
        "a.txt",
        "big.bin",
        "new.txt",
        "sub/ünïcode name.txt",
      ]);
      await rc("delete", remote("rc/sub"));
      const gone = JSON.parse(await rc("lsjson", "-R", "--files-only", remote("rc")));
      assertEquals(gone.map((e: { Path: string }) => e.Path).sort(), [
        "a.txt",
        "big.bin",
        "new.txt",
      ]);
    });

    await t.step("rclone vendor=owncloud: modification times kept (X-OC-Mtime)", async () => {
      const oc = (p: string) =>
        `:webdav,url='${base}',vendor=owncloud,user=${user},pass=${obscured}:${p}`;
      await Deno.utime(`${src}/a.txt`, 1_700_000_000, 1_700_000_000);
      await rc("sync", src, oc("oc"));
      const ls = JSON.parse(await rc("lsjson", "--files-only", oc("oc"))) as {
        Path: string;
        ModTime: string;
      }[];
      assertEquals(
        ls.find((e) => e.Path === "a.txt")?.ModTime,
        new Date(1_700_000_000_000).toISOString().replace(".000", ""),
      );
      // Same size, new contents, new mtime: sync sees the change by its time.
      const before = await Deno.readTextFile(`${src}/a.txt`);
      await Deno.writeTextFile(`${src}/a.txt`, before.toUpperCase());
      await Deno.utime(`${src}/a.txt`, 1_700_000_100, 1_700_000_100);
      await rc("sync", src, oc("oc"));
      await rc("check", src, oc("oc"));
      await Deno.writeTextFile(`${src}/a.txt`, before);
    });

    await t.step(
      "a file rclone uploaded is byte-identical through 'shoal client get'",
      async () => {
        await g.shoal([
          "client",
          "get",
          "--dir",
          g.clientDir,
          "home:rc/big.bin",
          `${work}/back.bin`,
        ]);
        assertEquals(
          await Deno.readFile(`${work}/back.bin`),
          await Deno.readFile(`${src}/big.bin`),
        );
      },
    );

    await t.step("COPY of a file links the same cap", async () => {
      const r = await fetch(`${base}rc/big.bin`, {
        method: "COPY",
        headers: { ...auth, destination: `${base}rc/big-copy.bin` },
      });
      await r.body?.cancel();
      assertEquals(r.status, 201);
      const ls = JSON.parse(
        await g.shoal(["client", "ls", "--dir", g.clientDir, "--json", "home:rc"]),
      ) as { entries: { name: string; readcap: string }[] };
      const cap = (n: string) => ls.entries.find((e) => e.name === n)?.readcap;
      assert(cap("big.bin"));
      assertEquals(cap("big-copy.bin"), cap("big.bin"));
    });

    await t.step("GET with a range; ETag and Last-Modified; If-Match", async () => {
      const whole = await Deno.readFile(`${src}/big.bin`);
      const r = await fetch(`${base}rc/big.bin`, {
        headers: { ...auth, range: "bytes=1000-1999" },
      });
      assertEquals(r.status, 206);
      assertEquals(new Uint8Array(await r.arrayBuffer()), whole.subarray(1000, 2000));
      const etag = r.headers.get("etag")!;
      assert(/^"[a-z2-7]+"$/.test(etag), etag);
      assert(r.headers.get("last-modified"));
      const stale = await fetch(`${base}rc/big.bin`, {
        method: "PUT",
        headers: { ...auth, "if-match": '"not-it"' },
        body: "x",
      });
      await stale.body?.cancel();
      assertEquals(stale.status, 412);
      const nm = await fetch(`${base}rc/big.bin`, { headers: { ...auth, "if-none-match": etag } });
      await nm.body?.cancel();
      assertEquals(nm.status, 304);
    });

    await t.step("concurrent PUTs into one collection never lose an entry", async () => {
      const mk = await fetch(`${base}many/`, { method: "MKCOL", headers: auth });
      await mk.body?.cancel();
      assertEquals(mk.status, 201);
      const names = Array.from({ length: 16 }, (_, i) => `n${String(i).padStart(2, "0")}.txt`);
      const rs = await Promise.all(
        names.map((n) => fetch(`${base}many/${n}`, { method: "PUT", headers: auth, body: n })),
      );
      for (const r of rs) {
        await r.body?.cancel();
        assertEquals(r.status, 201);
      }
      const ls = JSON.parse(await rc("lsjson", remote("many")));
      assertEquals(ls.map((e: { Path: string }) => e.Path).sort(), names);
    });

    await t.step("cadaver: a scripted session", async () => {
      const home = `${work}/cadaver-home`;
      await Deno.mkdir(home);
      const port = new URL(base).port;
      await Deno.writeTextFile(
        `${home}/.netrc`,
        `machine 127.0.0.1\nlogin ${user}\npassword ${password}\n`,
        { mode: 0o600 },
      );
      await Deno.writeTextFile(`${work}/cad.txt`, "cadaver was here\n");
      const script = [
        "mkcol cad",
        "cd cad",
        `put ${work}/cad.txt c.txt`,
        "propset c.txt color blue",
        "propget c.txt color",
        "copy c.txt d.txt",
        "move d.txt e.txt",
        "lock c.txt",
        "unlock c.txt",
        `get e.txt ${work}/cad-back.txt`,
        "delete c.txt",
        "ls",
        "quit",
      ].join("\n") + "\n";
      const r = await run(cadaver, [`http://127.0.0.1:${port}/`], {
        env: { HOME: home },
        stdin: script,
      });
      assertEquals(r.code, 0, r.stderr);
      assert(r.stdout.includes("Value of color is: blue"), r.stdout);
      assert(!/failed/i.test(r.stdout), r.stdout);
      assert(/e\.txt/.test(r.stdout.split("dav:/cad/> ls").pop()!), r.stdout);
      assertEquals(await Deno.readTextFile(`${work}/cad-back.txt`), "cadaver was here\n");
    });

    await t.step("--read-only and readcap paths answer 403 to writes", async () => {
      const ro = await startServe([
        "webdav",
        "--dir",
        g.clientDir,
        "--path",
        "home:rc",
        "--read-only",
      ]);
      extra.push(ro);
      const a = basic(ro.user, ro.password);
      const get = await fetch(`${ro.base}a.txt`, { headers: a });
      assertEquals(await get.text(), "hello again\n");
      for (const [method, path] of [["PUT", "x"], ["DELETE", "a.txt"], ["MKCOL", "d"]]) {
        const r = await fetch(`${ro.base}${path}`, {
          method,
          headers: a,
          body: method === "PUT" ? "x" : undefined,
        });
        await r.body?.cancel();
        assertEquals(r.status, 403, `${method} on a read-only server`);
      }
      // A tree reached through a readcap is read-only whatever the flag says.
      const top = JSON.parse(
        await g.shoal(["client", "ls", "--dir", g.clientDir, "--json", "home:"]),
      ) as { entries: { name: string; readcap: string }[] };
      const readcap = top.entries.find((e) => e.name === "rc")!.readcap;
      assert(readcap.startsWith("shoal:DIR-R1:"), "the directory's readcap");
      await g.shoal(["client", "alias", "add", "--dir", g.clientDir, "ro", readcap]);
      const rc2 = await startServe(["webdav", "--dir", g.clientDir, "--path", "ro"]);
      extra.push(rc2);
      const b = basic(rc2.user, rc2.password);
      const put = await fetch(`${rc2.base}y`, { method: "PUT", headers: b, body: "y" });
      await put.body?.cancel();
      assertEquals(put.status, 403);
      const ok = await fetch(`${rc2.base}a.txt`, { headers: b });
      assertEquals(ok.status, 200);
      await ok.body?.cancel();
    });

    await t.step("SIGTERM stops the server", async () => {
      assertEquals(await dav!.stop(), 0);
      dav = null;
    });
  } finally {
    for (const s of extra) await s.stop();
    await dav?.stop();
    await g.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
