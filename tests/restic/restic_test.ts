/**
 * `shoal client serve restic` with the real restic: init, backup, a second backup after changes
 * with one storage server down, snapshots, check --read-data, restore (byte-identical),
 * forget --prune, unlock; and the REST protocol's edges restic relies on (404, ranges, v2 lists).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { ensureTool } from "../helpers/debian.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { basic, run, type Served, startServe } from "../helpers/serve.ts";

function random(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, Math.min(n, o + 65536)));
  return b;
}

async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/docs/deep`, { recursive: true });
  await Deno.mkdir(`${root}/empty`, { recursive: true });
  for (let i = 0; i < 40; i++) {
    await Deno.writeFile(`${root}/docs/f${i}.bin`, random(1000 + i * 3001));
  }
  await Deno.writeFile(`${root}/docs/deep/large.bin`, random(6_000_000));
  await Deno.writeTextFile(`${root}/readme.txt`, "first version\n");
}

/** Every file under `a` equals the one under `b` and neither has extra files. */
async function sameTree(a: string, b: string): Promise<void> {
  const r = await run("diff", ["-r", a, b]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
}

Deno.test("restic: a repository on the grid through the REST backend", async (t) => {
  const restic = await ensureTool("restic");
  const g = await startJoinedGrid({
    servers: 5,
    refreshInterval: 3600,
    shares: { k: 2, n: 4, happy: 2 },
  });
  const work = await Deno.makeTempDir({ prefix: "shoal-restic-" });
  let srv: Served | null = null;
  try {
    await g.shoal(["client", "alias", "create", "--dir", g.clientDir, "backups"]);
    srv = await startServe(["restic", "--dir", g.clientDir, "--path", "backups:laptop/repo"]);
    const env = {
      RESTIC_REPOSITORY: srv.line,
      RESTIC_PASSWORD: "correct horse battery staple",
      RESTIC_CACHE_DIR: `${work}/cache`,
      HOME: work,
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    };
    const restic_ = async (...args: string[]) => {
      const r = await run(restic, args, { env, cwd: work });
      if (r.code !== 0) throw new Error(`restic ${args[0]} failed (${r.code}): ${r.stderr}`);
      return r.stdout;
    };
    const src = `${work}/src`;
    await makeTree(src);

    await t.step("prints rest:URL last; the password is private; 401 without it", async () => {
      assert(/^rest:http:\/\/shoal:[a-z2-7]{40,}@127\.0\.0\.1:\d+\/$/.test(srv!.line), srv!.line);
      const file = `${g.clientDir}/private/restic-password`;
      assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);
      assert(!srv!.proc.stderr().includes(srv!.password));
      const r = await fetch(`${srv!.base}config`, { method: "HEAD" });
      assertEquals(r.status, 401);
    });

    await t.step("init, backup, snapshots", async () => {
      await restic_("init");
      await restic_("backup", "--host", "test", src);
      const snaps = JSON.parse(await restic_("snapshots", "--json"));
      assertEquals(snaps.length, 1);
    });

    await t.step("the protocol's edges: 404, Range, v1 and v2 listings", async () => {
      const a = basic(srv!.user, srv!.password);
      const missing = await fetch(`${srv!.base}data/${"ab".repeat(32)}`, { headers: a });
      await missing.body?.cancel();
      assertEquals(missing.status, 404);
      const head = await fetch(`${srv!.base}snapshots/${"0".repeat(64)}`, {
        method: "HEAD",
        headers: a,
      });
      assertEquals(head.status, 404);
      const v2 = await fetch(`${srv!.base}data/`, {
        headers: { ...a, accept: "application/vnd.x.restic.rest.v2" },
      });
      assertEquals(v2.headers.get("content-type"), "application/vnd.x.restic.rest.v2");
      const packs = (await v2.json()) as { name: string; size: number }[];
      assert(packs.length >= 1 && packs.every((p) => /^[0-9a-f]{64}$/.test(p.name) && p.size > 0));
      const v1 = await fetch(`${srv!.base}data/`, { headers: a });
      assertEquals((await v1.json()).sort(), packs.map((p) => p.name).sort());
      const p = packs[0];
      const whole = new Uint8Array(
        await (await fetch(`${srv!.base}data/${p.name}`, { headers: a })).arrayBuffer(),
      );
      assertEquals(whole.length, p.size);
      const part = await fetch(`${srv!.base}data/${p.name}`, {
        headers: { ...a, range: "bytes=10-19" },
      });
      assertEquals(part.status, 206);
      assertEquals(new Uint8Array(await part.arrayBuffer()), whole.subarray(10, 20));
      // The layout restic's local backend uses: data/XX/ID. Links reach the grid shortly after
      // the POST's answer (the journal, docs/restic.md §3).
      let ls = "";
      for (let i = 0; i < 60 && !ls.split("\n").includes(p.name); i++) {
        if (i) await new Promise((r) => setTimeout(r, 500));
        ls = await g.shoal([
          "client",
          "ls",
          "--dir",
          g.clientDir,
          `backups:laptop/repo/data/${p.name.slice(0, 2)}`,
        ]).catch((e) => String(e));
      }
      assert(ls.split("\n").includes(p.name), ls);
    });

    await t.step("concurrent POSTs and DELETEs never lose an entry", async () => {
      const a = basic(srv!.user, srv!.password);
      const hex = (i: number) => "ee" + i.toString(16).padStart(62, "0");
      // 20 new objects in one (new) shard of data/ and 10 locks, all at once.
      const posts = [
        ...Array.from({ length: 20 }, (_, i) => `data/${hex(i)}`),
        ...Array.from({ length: 10 }, (_, i) => `locks/${hex(i)}`),
      ];
      const rs = await Promise.all(
        posts.map((p) => fetch(`${srv!.base}${p}`, { method: "POST", headers: a, body: p })),
      );
      for (const r of rs) {
        await r.body?.cancel();
        assertEquals(r.status, 200);
      }
      const list = async (type: string) =>
        ((await (await fetch(`${srv!.base}${type}/`, {
          headers: { ...a, accept: "application/vnd.x.restic.rest.v2" },
        })).json()) as { name: string }[]).map((e) => e.name);
      const data = await list("data");
      for (let i = 0; i < 20; i++) assert(data.includes(hex(i)), `data/${hex(i)} survived`);
      assertEquals((await list("locks")).filter((n) => n.startsWith("ee")).length, 10);
      // Delete them again, concurrently, while writing one more.
      const more = fetch(`${srv!.base}data/${hex(99)}`, { method: "POST", headers: a, body: "x" });
      const ds = await Promise.all(
        posts.map((p) => fetch(`${srv!.base}${p}`, { method: "DELETE", headers: a })),
      );
      for (const r of ds) {
        await r.body?.cancel();
        assertEquals(r.status, 200);
      }
      await (await more).body?.cancel();
      const left = (await list("data")).filter((n) => n.startsWith("ee"));
      assertEquals(left, [hex(99)]);
      assertEquals((await list("locks")).filter((n) => n.startsWith("ee")), []);
      const del = await fetch(`${srv!.base}data/${hex(99)}`, { method: "DELETE", headers: a });
      await del.body?.cancel();
      const again = await fetch(`${srv!.base}data/${hex(99)}`, { method: "DELETE", headers: a });
      await again.body?.cancel();
      assertEquals(again.status, 404);
    });

    await t.step("a second backup after changes, with one storage server down", async () => {
      await Deno.writeTextFile(`${src}/readme.txt`, "second version\n");
      await Deno.writeFile(`${src}/docs/new.bin`, random(300_000));
      await Deno.remove(`${src}/docs/f3.bin`);
      await g.servers[4].proc!.stop();
      g.servers[4].proc = null;
      await restic_("backup", "--host", "test", src);
      const snaps = JSON.parse(await restic_("snapshots", "--json"));
      assertEquals(snaps.length, 2);
    });

    await t.step("check --read-data, then restore is byte-identical", async () => {
      const out = await restic_("check", "--read-data");
      assert(out.includes("no errors were found"), out);
      await restic_("restore", "latest", "--target", `${work}/restored`);
      await sameTree(src, `${work}/restored${src}`);
    });

    await t.step("forget --prune and unlock", async () => {
      await restic_("forget", "--keep-last", "1", "--prune");
      const snaps = JSON.parse(await restic_("snapshots", "--json"));
      assertEquals(snaps.length, 1);
      await restic_("unlock");
      const a = basic(srv!.user, srv!.password);
      const locks = await fetch(`${srv!.base}locks/`, {
        headers: { ...a, accept: "application/vnd.x.restic.rest.v2" },
      });
      assertEquals(await locks.json(), []);
      const out = await restic_("check");
      assert(out.includes("no errors were found"), out);
      await restic_("restore", "latest", "--target", `${work}/restored2`);
      await sameTree(src, `${work}/restored2${src}`);
    });
  } finally {
    await srv?.stop();
    await g.close();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
});
