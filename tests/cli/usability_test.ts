/**
 * Issue #17 (and #11 items 11, 13) through real `shoal` processes on a real grid: the command
 * line a Tahoe-LAFS user expects — suggestions, --dir placement and defaults, role checks that
 * write nothing, configuration errors naming key and line, secrets from files or stdin, redacted
 * swissnums, and `client servers` with a header and an up/down column.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setConfig, startJoinedGrid } from "../helpers/joined_grid.ts";
import { runShoal, startStorageServer } from "../helpers/storage_process.ts";
import { startShoal } from "../helpers/process.ts";
import { fails, ok, run, snapshot } from "./files_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const enc = new TextEncoder();

function has(text: string, part: string, what = "") {
  assert(text.includes(part), `${what}: '${part}' not in: ${text}`);
}

Deno.test("the command line a Tahoe-LAFS user expects", opts, async (t) => {
  const g = await startJoinedGrid({ servers: 3, shares: { k: 2, n: 3, happy: 2 } });
  const tmp = await Deno.makeTempDir({ prefix: "shoal-usability-" });
  const C = g.clientDir;
  const S1 = g.servers[0].node.dir;
  try {
    await t.step("unknown verbs suggest the right command", async () => {
      has((await fails(["ls"], 2)).stderr, "did you mean 'shoal client ls'", "shoal ls");
      has((await fails(["put"], 2)).stderr, "'shoal client put'", "shoal put");
      has((await fails(["clinet"], 2)).stderr, "'shoal client'", "shoal clinet");
      has((await fails(["client", "lst"], 2)).stderr, "did you mean 'shoal client ls'", "lst");
      has((await fails(["storage", "put"], 2)).stderr, "'shoal client put'", "storage put");
    });

    await t.step("--dir may come before the verb; unknown flags point at --help", async () => {
      await ok(["client", "alias", "--dir", C, "create", "home"]);
      assertEquals(await ok(["client", "--dir", C, "ls", "home:"]), "");
      assertEquals(await ok(["client", "-d", C, "alias", "list"]), "home\twritable");
      const r = await fails(["client", "ls", "--dir", C, "--bogus", "home:"], 2);
      has(r.stderr, "unknown option '--bogus' for 'shoal client ls'", "flag");
      has(r.stderr, "run 'shoal client ls --help'", "flag");
      has((await fails(["client", "--bogus", "ls"], 2)).stderr, "goes after the command");
      has((await fails(["client", "ls", "--dir"], 2)).stderr, "--dir needs a value");
      has((await fails(["client", "cp", "--recurse", "a", "b"], 2)).stderr, "'--recursive'");
    });

    await t.step("a command on the wrong kind of node says so and writes nothing", async () => {
      const before = await snapshot(g.opDir);
      const put = await fails(["client", "put", "--dir", g.opDir, "-"], 1, enc.encode("x"));
      has(put.stderr, `${g.opDir} is an operator node, not a client node`, "put on OP");
      assertEquals(await snapshot(g.opDir), before, "nothing written into the operator node");
      has(
        (await fails(["client", "servers", "--dir", S1], 1)).stderr,
        `${S1} is a storage node, not a client node`,
      );
      has(
        (await fails(["storage", "run", "--dir", C], 1)).stderr,
        `${C} is a client node, not a storage node`,
      );
      has(
        (await fails(["operator", "list", "--dir", C], 1)).stderr,
        "is a client node, not an operator node",
      );
      const file = `${tmp}/afile`;
      await Deno.writeTextFile(file, "x");
      has((await fails(["client", "ls", "--dir", file, "home:"], 1)).stderr, `${file} is a file`);
      has((await fails(["storage", "url", "--dir", `${file}/sub`], 1)).stderr, "is a file");
    });

    await t.step("--dir falls back to $SHOAL_DIR, then ~/.shoal, and says which", async () => {
      const viaEnv = await runShoal(["client", "alias", "list"], { env: { SHOAL_DIR: C } });
      assertEquals(viaEnv.code, 0, viaEnv.stderr);
      assertEquals(viaEnv.stdout.trim(), "home\twritable");
      const home = `${tmp}/home`;
      await Deno.mkdir(home);
      const none = await runShoal(["client", "ls", "home:"], {
        env: { HOME: home, SHOAL_DIR: "" },
      });
      assertEquals(none.code, 1, none.stderr);
      has(none.stderr, `${home}/.shoal holds no node (it does not exist)`, "default dir");
      has(none.stderr, "not a client node", "default dir");
      has(none.stderr, "the default", "default dir");
      has(none.stderr, "--dir", "default dir");
    });

    await t.step("secrets come from files or stdin; malformed input exits 2", async () => {
      const textFile = `${tmp}/intro.txt`;
      await Deno.writeTextFile(textFile, g.introText + "\n");
      await ok(["client", "create-node", "--dir", `${tmp}/c2`, "--introducer-v3-file", textFile]);
      await ok(
        ["client", "create-node", "--dir", `${tmp}/c3`, "--introducer-v3-file", "-"],
        enc.encode(g.introText),
      );
      assertEquals(
        (await Deno.readTextFile(`${tmp}/c3/private/introduction-text`)).trim(),
        g.introText,
      );
      const bad = await fails(
        ["client", "create-node", "--dir", `${tmp}/c4`, "--introducer-v3", "nonsense"],
        2,
      );
      has(bad.stderr, "malformed introduction text", "bad text");
      const bad2 = await fails(
        ["storage", "join", "--dir", S1, "--introducer-v3", g.introText + "x"],
        2,
      );
      has(bad2.stderr, "introduction text", "storage join bad text");
      const badUrl = await fails(
        ["operator", "create", "--dir", `${tmp}/op2`, "--storage", "shoal-storage:v1:zz@x:1"],
        2,
      );
      has(badUrl.stderr, "not a valid storage URL", "bad URL");
      await Deno.stat(`${tmp}/op2`).then(
        () => assert(false, "operator dir created for a bad URL"),
        () => {},
      );
      has((await fails(["client", "ls", "--dir", C, "shoal:DIR-W1:x"], 2)).stderr, "malformed cap");
      // --cap-file: the cap stands as CAP in the arguments
      const cap = await ok(["client", "put", "--dir", C, "-"], enc.encode("capfile\n"));
      const capFile = `${tmp}/cap.txt`;
      await Deno.writeTextFile(capFile, cap + "\n");
      assertEquals(
        await ok(["client", "get", "--dir", C, "--cap-file", capFile, "CAP"]),
        "capfile",
      );
      const r = await run(["client", "get", "--dir", C, "--cap-file", "-", "CAP"], enc.encode(cap));
      assertEquals(r.text, "capfile");
      has(
        (await fails(["client", "get", "--dir", C, "--cap-file", capFile, cap], 2)).stderr,
        "no argument is CAP",
      );
    });

    await t.step("servers: a header, up/down, swissnums redacted unless asked", async () => {
      await g.servers[2].proc!.stop();
      g.servers[2].proc = null;
      const text = await ok(["client", "servers", "--dir", C]);
      const lines = text.split("\n");
      const header = lines.findIndex((l) => l.startsWith("NICKNAME"));
      assert(header >= 0, text);
      has(lines[header], "STATUS", "header");
      has(lines[header], "USED", "header: space used");
      has(lines[header], "AVAILABLE", "header: space available");
      const row = (n: string) => lines.find((l) => l.startsWith(n + " "))!;
      has(row("s0"), " up ", "s0 row");
      has(row("s2"), " down ", "s2 row");
      has(text, "2 of 3 server(s) up", "summary");
      const json = await ok(["client", "servers", "--dir", C, "--json"]);
      const swiss = g.servers.map((s) =>
        s.url.slice(s.url.lastIndexOf(":", s.url.indexOf("@")) + 1, s.url.indexOf("@"))
      );
      for (const sw of swiss) assert(!json.includes(sw), "a swissnum is printed by servers --json");
      const list = JSON.parse(json);
      assert(list[0].storageUrls[0].includes(":REDACTED@"), json);
      assertEquals(list.find((s: { nickname: string }) => s.nickname === "s2").up, false);
      // Space from each server's version answer: every server holds the GSD and the GSAs.
      const s0 = list.find((s: { nickname: string }) => s.nickname === "s0");
      assert(s0.used > 0 && s0.availableSpace > 0, JSON.stringify(s0));
      const shown = await ok(["client", "servers", "--dir", C, "--json", "--show-secrets"]);
      for (const sw of swiss) has(shown, sw, "--show-secrets");
      g.servers[2].proc = await startStorageServer(g.servers[2].node.dir);
    });

    await t.step(
      "shoal.toml: unknown keys name key and line; syntax errors line:column",
      async () => {
        const sdir = `${tmp}/snode`;
        await ok(["storage", "create", "--dir", sdir, "--listen", "127.0.0.1:1"]);
        const st = await Deno.readTextFile(`${sdir}/shoal.toml`);
        const stLines = st.split("\n");
        const at = stLines.findIndex((l) => l.startsWith("reserved_space"));
        stLines.splice(at + 1, 0, 'reserved_spcae = "2G"');
        await Deno.writeTextFile(`${sdir}/shoal.toml`, stLines.join("\n"));
        const r = await fails(["storage", "url", "--dir", sdir], 1);
        has(r.stderr, `shoal.toml:${at + 2}: unknown key 'reserved_spcae' in [storage]`, "typo");

        const cdir = `${tmp}/c2`;
        const orig = await Deno.readTextFile(`${cdir}/shoal.toml`);
        await Deno.writeTextFile(`${cdir}/shoal.toml`, orig.replace("fanout = 2", "fanout = = 2"));
        const syn = await fails(["client", "servers", "--dir", cdir], 1);
        assert(/shoal\.toml:\d+:\d+: not valid TOML/.test(syn.stderr), syn.stderr);

        await Deno.writeTextFile(
          `${cdir}/shoal.toml`,
          orig.replace("fanout = 2", "fanout = 2\nk = 3"),
        );
        const mis = await fails(["client", "servers", "--dir", cdir], 1);
        has(mis.stderr, "unknown key 'k' in [client] (it belongs in [shares])", "misplaced");
        assert(/shoal\.toml:\d+: unknown key/.test(mis.stderr), mis.stderr);
        // In [web], the running node says so when it starts the gateway (nothing else needs [web]).
        await Deno.writeTextFile(`${cdir}/shoal.toml`, orig.replace("[web]", "[web]\nk = 3"));
        await ok(["client", "servers", "--dir", cdir]);
        const running = await startShoal(["client", "run", "--dir", cdir]);
        try {
          for (let i = 0; i < 200 && !running.stdout().includes("web gateway"); i++) {
            await new Promise((r) => setTimeout(r, 50));
          }
          has(running.stdout(), "unknown key 'k' in [web] (it belongs in [shares])", "run");
        } finally {
          await running.stop();
        }

        await Deno.writeTextFile(`${cdir}/shoal.toml`, orig.replace(/^k = \d+$/m, "k = 11"));
        const sh = await fails(["client", "put", "--dir", cdir, "-"], 1, enc.encode("x"));
        has(sh.stderr, "found k = 11, n = 10, happy = 7", "shares values");
        // Commands that do not use [shares] still work.
        await ok(["client", "alias", "list", "--dir", cdir]);
        await ok(["client", "servers", "--dir", cdir]);
      },
    );

    await t.step("storage create --listen 0.0.0.0 needs --location", async () => {
      const r = await fails(
        ["storage", "create", "--dir", `${tmp}/wild`, "--listen", "0.0.0.0:7999"],
        2,
      );
      has(r.stderr, "--location HOST:7999", "wildcard");
      await Deno.stat(`${tmp}/wild`).then(() => assert(false, "created"), () => {});
      await ok([
        "storage",
        "create",
        "--dir",
        `${tmp}/wild`,
        "--listen",
        "0.0.0.0:7999",
        "--location",
        "127.0.0.1:7999",
      ]);
    });
    await t.step(
      "client run: one 'refreshed' line, servers down and back up, no token",
      async () => {
        await setConfig(C, "client", "refresh_interval", 2);
        await setConfig(C, "web", "port", 0);
        const running = await startShoal(["client", "run", "--dir", C]);
        const waitLog = async (part: string, ms: number) => {
          const end = Date.now() + ms;
          while (!running.stdout().includes(part)) {
            if (Date.now() > end) throw new Error(`no '${part}' in: ${running.stdout()}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        try {
          await waitLog("dashboard:", 30_000);
          await new Promise((r) => setTimeout(r, 3000));
          const early = running.stdout().split("\n").filter((l) => l.includes(" refreshed:"));
          assert(
            early.length <= 1,
            `logged 'refreshed' ${early.length} times:\n${running.stdout()}`,
          );
          const token = (await Deno.readTextFile(`${C}/private/api-token`)).trim();
          assert(!running.stdout().includes(token), "the dashboard token is logged");
          has(running.stdout(), "token=TOKEN", "redacted dashboard line");
          await g.servers[1].proc!.stop();
          g.servers[1].proc = null;
          await waitLog("server s1 is down", 30_000);
          g.servers[1].proc = await startStorageServer(g.servers[1].node.dir);
          await waitLog("server s1 is back up", 30_000);
        } finally {
          await running.stop();
        }
        const shown = await startShoal(["client", "run", "--dir", C, "--show-secrets"]);
        try {
          const end = Date.now() + 30_000;
          while (!shown.stdout().includes("dashboard:") && Date.now() < end) {
            await new Promise((r) => setTimeout(r, 100));
          }
          const token = (await Deno.readTextFile(`${C}/private/api-token`)).trim();
          has(shown.stdout(), `token=${token}`, "--show-secrets");
        } finally {
          await shown.stop();
        }
      },
    );
  } finally {
    await g.close();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
