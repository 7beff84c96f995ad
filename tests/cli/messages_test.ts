/**
 * Issue #17's messages through real `shoal` processes: what the file commands say when servers
 * are down, what repair did, cp -r with a bad local name, mkdir -p, get into a directory, and
 * the small wording fixes.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { startJoinedGrid } from "../helpers/joined_grid.ts";
import { progressBar } from "../../lib/roles/client/progress.ts";
import { fails, ok, run } from "./files_helpers.ts";
import { RUN_FLAGS } from "../../lib/version.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

const opts = { sanitizeResources: false, sanitizeOps: false };
const enc = new TextEncoder();

function has(text: string, part: string, what = "") {
  assert(text.includes(part), `${what}: '${part}' not in: ${text}`);
}

Deno.test("progress reaches 100% only when every byte is done", () => {
  const MiB = 1024 * 1024;
  let out = "";
  const p = progressBar({ label: "x", total: 38.1 * MiB, write: (t) => (out = t) });
  p.update(38.0 * MiB);
  has(out, " 99% 38.0 MiB/38.1 MiB", "38.0 of 38.1 MiB");
});

Deno.test("file command messages on a real grid", opts, async (t) => {
  const g = await startJoinedGrid({ servers: 4, shares: { k: 2, n: 4, happy: 3 } });
  const C = g.clientDir;
  const sh = (cmd: string, ...args: string[]) => ["client", cmd, "--dir", C, ...args];
  const tmp = await Deno.makeTempDir({ prefix: "shoal-messages-" });
  try {
    await t.step("alias create says what it did; mkdir -p; ls of a file cap", async () => {
      const r = await run(sh("alias", "create", "home"));
      assertEquals(r.code, 0, r.stderr);
      has(r.stderr, "alias 'home'", "alias create");
      await ok(sh("mkdir", "-p", "home:a/b/c"));
      await ok(sh("mkdir", "-p", "home:a/b/c"));
      assertEquals(await ok(sh("ls", "home:a")), "b/");
      assertEquals(await ok(sh("ls", "home:a/b")), "c/");
      has((await fails(sh("mkdir", "home:a"), 1)).stderr, "already exists");
      const cap = await ok(sh("put", "-", "home:f.txt"), enc.encode("hello\n"));
      const line = await ok(sh("ls", cap));
      assert(line !== "", "ls of a file cap prints a line");
      has(line, "immutable file", "ls cap");
    });

    await t.step("get into a directory writes inside it", async () => {
      await Deno.mkdir(`${tmp}/out`);
      await ok(sh("get", "home:f.txt", `${tmp}/out/`));
      assertEquals(await Deno.readTextFile(`${tmp}/out/f.txt`), "hello\n");
      await Deno.remove(`${tmp}/out/f.txt`);
      await ok(sh("get", "home:f.txt", `${tmp}/out`));
      assertEquals(await Deno.readTextFile(`${tmp}/out/f.txt`), "hello\n");
    });

    await t.step("cp -r names a bad local name, skips it, and fails at the end", async () => {
      const src = `${tmp}/tree`;
      await Deno.mkdir(`${src}/sub`, { recursive: true });
      await Deno.writeTextFile(`${src}/good.txt`, "good");
      await Deno.writeTextFile(`${src}/sub/also.txt`, "also");
      await Deno.writeTextFile(`${src}/bad\u0007name`, "bad");
      const r = await fails(sh("cp", "-r", src, "home:"), 1);
      has(r.stderr, "bad\\x07name", "names the file, control characters escaped");
      has(r.stderr, "skipped 1 local entry", "summary");
      has(r.stderr, "2 directories created", "no 'directorie(s)'");
      assertEquals(await ok(sh("ls", "home:tree")), "good.txt\nsub/");
      assertEquals(await ok(sh("get", "home:tree/sub/also.txt")), "also");
    });

    /** Run `shoal ARGS` on a terminal (`script` gives it one, as a person running it has). */
    const onTerminal = async (args: string[]) => {
      const cmd = [Deno.execPath(), "run", ...RUN_FLAGS, MAIN, ...args].map((a) => `'${a}'`)
        .join(" ");
      const r = await new Deno.Command("script", {
        args: ["-qec", cmd, "/dev/null"],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const tty = new TextDecoder().decode(r.stdout);
      assertEquals(r.code, 0, tty);
      const bars = tty.split(/\r|\n/).filter((l) => l.includes("] "));
      assert(bars.length > 0, tty);
      return { tty, bars };
    };

    await t.step("cp -r on a terminal: one progress bar with the copy's total", async () => {
      const src = `${tmp}/tty-tree`;
      await Deno.mkdir(`${src}/d`, { recursive: true });
      for (const [i, f] of ["a.bin", "b.bin", "d/c.bin"].entries()) {
        await Deno.writeFile(`${src}/${f}`, new Uint8Array(100 * 1024).fill(i + 1));
      }
      const { tty, bars } = await onTerminal(sh("cp", "-r", src, "home:"));
      for (const b of bars) has(b, "/300.0 KiB", "every redraw shows the copy's total");
      has(bars[0], "3 file(s)", "label");
      has(tty, "copied 3 files", "summary");
    });

    await t.step(
      "cp -r grid -> local on a terminal: one bar with the total; none on a pipe",
      async () => {
        const back = `${tmp}/tty-back`;
        const { tty, bars } = await onTerminal(sh("cp", "-r", "home:tty-tree", back));
        // One display for the whole copy: every redraw shows the total, none a single file's.
        for (const b of bars) has(b, "/300.0 KiB", "every redraw shows the copy's total");
        has(bars[0], "3 file(s)", "label");
        has(bars[bars.length - 1], "100% 300.0 KiB/300.0 KiB", "the last redraw: all done");
        has(tty, "copied 3 files", "summary");
        assertEquals(await Deno.readFile(`${back}/d/c.bin`), new Uint8Array(100 * 1024).fill(3));
        const piped = await run(sh("cp", "-r", "home:tty-tree", `${tmp}/piped-back`));
        assertEquals(piped.code, 0, piped.stderr);
        assert(!piped.stderr.includes("] "), `no progress without a terminal: ${piped.stderr}`);
      },
    );

    await t.step("check names its object; --json server ids in base32; repair", async () => {
      const c = await ok(sh("check", "home:"));
      assert(c.startsWith("home: healthy"), c);
      const j = JSON.parse(await ok(sh("check", "--json", "home:f.txt")));
      const ids = JSON.stringify(j.detail).match(/"serverId":"([^"]*)"/g) ?? [];
      assert(ids.length > 0, JSON.stringify(j.detail));
      for (const id of ids) assert(/^"serverId":"[a-z2-7]+"$/.test(id), id);
      const ids2 = g.servers.map((s) => s.url.split(":")[2]);
      assert(ids.some((id) => ids2.some((p) => id.includes(p))), "ids match the servers' pins");
      const rep = await ok(sh("repair", "home:"));
      has(rep, "repair not needed", "healthy repair");
      await g.servers[3].proc!.stop();
      g.servers[3].proc = null;
      const rep2 = await run(sh("repair", "home:"));
      assert(!rep2.text.includes("to every server"), rep2.text);
      // The lost server's share is rewritten on a reachable one, the version kept (#12).
      has(rep2.text, "(kept)", "repair with one down");
      has(rep2.text, "s3: unreachable", "repair with one down");
    });

    await t.step("with most servers down, the unreadable directory is named", async () => {
      await Promise.all([1, 2].map(async (i) => {
        await g.servers[i].proc!.stop();
        g.servers[i].proc = null;
      }));
      const r = await fails(sh("check", "home:tree/good.txt"), 1);
      has(r.stderr, "the directory home:", "names the directory");
      has(r.stderr, "1 of 4 known server(s) answer now", "how many answer");
    });

    await t.step("with every server down: no server is reachable, and what to do", async () => {
      await g.servers[0].proc!.stop();
      g.servers[0].proc = null;
      for (const args of [sh("ls", "home:"), sh("get", "home:f.txt"), sh("check", "home:")]) {
        const r = await fails(args, 1);
        const said = r.text + r.stderr;
        has(said, "no storage server is reachable", args[1]);
        has(said, "shoal client servers", args[1]);
        assert(!said.includes("0 reachable"), said);
      }
    });

    await t.step("a damaged servers.json names the file and the fix", async () => {
      await Deno.writeTextFile(`${C}/private/servers.json`, "{ not json");
      const r = await fails(sh("ls", "home:"), 1);
      has(r.stderr, `${C}/private/servers.json`, "names the file");
      has(r.stderr, "remove it", "says the fix");
    });
  } finally {
    await g.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
