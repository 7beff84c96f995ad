/**
 * The whole introducer-v3 lifecycle through the real command line: real
 * storage server processes, real TLS on loopback, real node directories.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { parse as parseToml, stringify as stringifyToml } from "smol-toml";
import { base32Encode } from "../../lib/codec/mod.ts";
import { capStorageIndex, parseCap } from "../../lib/crypto/mod.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { Grid, ServerList } from "../../lib/grid/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";
import { parseStorageUrl } from "../../lib/storage/mod.ts";
import {
  type CreatedNode,
  createStorageNode,
  freePort,
  runShoal,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";
import { startShoal } from "../helpers/process.ts";
import { setConfig, shoalOk } from "../helpers/joined_grid.ts";
import { clientServers, waitFor } from "./discovery_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

interface Srv {
  node: CreatedNode;
  proc: StorageProcess | null;
  url: string;
}

async function newServer(root: string, name: string): Promise<Srv> {
  const node = await createStorageNode({ dir: `${root}/${name}`, nickname: name });
  await setConfig(node.dir, "discovery", "refresh_interval", 1);
  const proc = await startStorageServer(node.dir);
  return { node, proc, url: proc.url };
}

/** Does server `url` alone hold a valid, newest copy of the mutable object `cap`? */
async function holds(url: string, cap: string, othersUrls: string[]): Promise<boolean> {
  const pool = new ClientPool({ timeoutMs: 3000 });
  try {
    const mk = (urls: string[]) =>
      new Grid({
        servers: new ServerList(urls.map((u) => pool.server(parseStorageUrl(u)))),
        leaseSecret: randomBytes(32),
      });
    const everywhere = await mk(othersUrls).readMutable(cap);
    const alone = await mk([url]).readMutable(cap);
    return alone.seqnum === everywhere.seqnum;
  } catch {
    return false;
  } finally {
    pool.close();
  }
}

Deno.test("introducer-v3 lifecycle through the command line", opts, async (t) => {
  const root = await Deno.makeTempDir({ prefix: "shoal-life-" });
  const servers: Srv[] = [];
  const running: { stop(): Promise<unknown> }[] = [];
  try {
    for (const n of ["alpha", "beta", "gamma"]) servers.push(await newServer(root, n));
    const OP = `${root}/op`;
    const C = `${root}/client`;
    let text = "";
    const readcaps: string[] = [];

    await t.step("operator creates the GSD; servers join; operator links them", async () => {
      await shoalOk([
        "operator",
        "create",
        "--dir",
        OP,
        "--storage",
        servers[0].url,
        "--storage",
        servers[1].url,
      ]);
      text = await shoalOk(["operator", "get-introduction-text", "--dir", OP]);
      assert(text.startsWith("shoal:DIR-R1:"), "introduction text starts with the GSD readcap");
      assertEquals(text.split(",").length, 3);
      for (const s of servers) {
        const rc = await shoalOk(["storage", "join", "--dir", s.node.dir, "--introducer-v3", text]);
        assert(
          rc.startsWith("shoal:MUT-R1:"),
          `join prints the GSA readcap, got ${rc.slice(0, 14)}`,
        );
        assertEquals(await shoalOk(["storage", "announcement", "--dir", s.node.dir]), rc);
        readcaps.push(rc);
      }
      for (const rc of readcaps) await shoalOk(["operator", "add-announcement", "--dir", OP, rc]);
      const dup = await runShoal(["operator", "add-announcement", "--dir", OP, readcaps[0]]);
      assertEquals(dup.code, 1);
      assert(dup.stderr.includes("already"), dup.stderr);
      const list = JSON.parse(await shoalOk(["operator", "list", "--dir", OP, "--json"]));
      assertEquals(list.servers.map((s: { petname: string }) => s.petname).sort(), [
        "alpha",
        "beta",
        "gamma",
      ]);
      text = await shoalOk(["operator", "get-introduction-text", "--dir", OP]);
      assertEquals(text.split(",").length, 4, "the text now lists every announced server");
    });

    await t.step("the operator directory never holds a GSA writecap", async () => {
      const writecaps = await Promise.all(
        servers.map((s) => Deno.readTextFile(`${s.node.dir}/private/gsa-writecap`)),
      );
      for await (const f of walk(OP)) {
        const body = await Deno.readTextFile(f);
        for (const w of writecaps) assert(!body.includes(w.trim()), `${f} holds a GSA writecap`);
        assert(!body.includes("MUT-W1"), `${f} holds a mutable writecap`);
      }
    });

    await t.step("a client joins from one line and sees every server", async () => {
      await shoalOk([
        "client",
        "create-node",
        "--dir",
        C,
        "--introducer-v3",
        text,
        "--refresh-interval",
        "1",
      ]);
      const list = await clientServers(C);
      assertEquals(list.map((s) => s.nickname).sort(), ["alpha", "beta", "gamma"]);
      for (const s of list) assert(s.storageUrls[0].startsWith("shoal-storage:v1:"));
      const mode = (await Deno.stat(`${C}/private/servers.json`)).mode! & 0o777;
      assertEquals(mode, 0o600);
    });

    const client = await startShoal(["client", "run", "--dir", C]);
    running.push(client);

    await t.step(
      "remove-announcement: the running client drops the server without restart",
      async () => {
        await shoalOk(["operator", "remove-announcement", "--dir", OP, "gamma"]);
        await waitFor("client drops gamma", async () => {
          const l = await clientServers(C, false);
          return l.length === 2 && !l.some((s) => s.nickname === "gamma");
        });
        assert(client.stdout().includes("removed: gamma"), client.stdout());
      },
    );

    await t.step("a server changes address and restarts: clients see the new address", async () => {
      const s = servers[1];
      await s.proc!.stop();
      const port = await freePort();
      const path = `${s.node.dir}/shoal.toml`;
      const doc = parseToml(await Deno.readTextFile(path)) as Record<
        string,
        Record<string, unknown>
      >;
      doc.storage.listen = `127.0.0.1:${port}`;
      doc.storage.locations = [`127.0.0.1:${port}`];
      await Deno.writeTextFile(path, stringifyToml(doc));
      s.proc = await startStorageServer(s.node.dir);
      s.url = s.proc.url;
      await waitFor("client sees beta's new port", async () => {
        const l = await clientServers(C, false);
        return l.some((x) =>
          x.nickname === "beta" && x.storageUrls[0].endsWith(`@127.0.0.1:${port}`)
        );
      });
    });

    let backup = "";
    await t.step("a new server is commissioned: it holds the GSD and every GSA", async () => {
      backup = `${root}/alpha-backup`;
      await copyDir(`${servers[0].node.dir}/storage`, backup);
      const d = await newServer(root, "delta");
      servers.push(d);
      text = await shoalOk(["operator", "get-introduction-text", "--dir", OP]);
      const rc = await shoalOk(["storage", "join", "--dir", d.node.dir, "--introducer-v3", text]);
      await shoalOk(["operator", "add-announcement", "--dir", OP, rc, "--name", "delta"]);
      const gsd = (await Deno.readTextFile(`${OP}/private/gsd-writecap`)).trim();
      const others = [servers[0].url, servers[1].url];
      await waitFor("delta holds the GSD", () => holds(d.url, gsd, others));
      for (const cap of [readcaps[0], readcaps[1], rc]) {
        await waitFor("delta holds every GSA", () => holds(d.url, cap, others));
      }
      await waitFor(
        "client sees delta",
        async () => (await clientServers(C, false)).some((x) => x.nickname === "delta"),
      );
    });

    await t.step(
      "every server but one stopped: a fresh client still joins through it",
      async () => {
        await servers[1].proc!.stop();
        await servers[3].proc!.stop();
        servers[1].proc = servers[3].proc = null;
        const C2 = `${root}/client2`;
        await shoalOk(["client", "create-node", "--dir", C2, "--introducer-v3", text]);
        const l = await clientServers(C2);
        assertEquals(l.map((s) => s.nickname).sort(), ["alpha", "beta", "delta"]);
      },
    );

    await t.step("a server restored from an old backup cannot roll a client back", async () => {
      await servers[0].proc!.stop();
      await Deno.remove(`${servers[0].node.dir}/storage`, { recursive: true });
      await copyDir(backup, `${servers[0].node.dir}/storage`);
      servers[0].proc = await startStorageServer(servers[0].node.dir);
      // Only the stale server is up: the client, which saw a newer GSD, refuses what it serves.
      await client.stop();
      const r = await runShoal(["client", "servers", "--dir", C, "--json", "--refresh"]);
      assertEquals(r.code, 1, r.stderr);
      assert(r.stderr.includes("stale"), r.stderr);
      const still = await clientServers(C, false);
      assert(still.some((s) => s.nickname === "delta"), "the last good list is kept");
    });

    await t.step("a tampered GSA share is rejected", async () => {
      // A running server repairs its own announcement within a refresh interval, so hide alpha's
      // GSA writecap while we look (its announcer then waits), and restart it.
      await servers[0].proc!.stop();
      const wc = `${servers[0].node.dir}/private/gsa-writecap`;
      await Deno.rename(wc, `${wc}.hidden`);
      servers[0].proc = await startStorageServer(servers[0].node.dir);
      // Tamper with alpha's announcement on every server still running (alpha and the removed gamma).
      const si = base32Encode(await capStorageIndex(parseCap(readcaps[0])));
      for (const s of [servers[0], servers[2]]) {
        const slot = `${s.node.dir}/storage/mutable/${si.slice(0, 2)}/${si}`;
        for await (const e of Deno.readDir(slot)) {
          if (!/^\d+$/.test(e.name)) continue;
          const b = await Deno.readFile(`${slot}/${e.name}`);
          b[b.length - 3] ^= 0x40;
          await Deno.writeFile(`${slot}/${e.name}`, b);
        }
      }
      const C3 = `${root}/client3`;
      await shoalOk(["client", "create-node", "--dir", C3, "--introducer-v3", text]);
      const r = await runShoal(["client", "servers", "--dir", C3, "--json", "--refresh"]);
      assertEquals(r.code, 0, r.stderr);
      const l = JSON.parse(r.stdout);
      assert(
        !l.some((s: { nickname: string }) => s.nickname === "alpha"),
        "the tampered announcement is not used",
      );
      await Deno.rename(`${wc}.hidden`, wc);
    });

    await t.step("malformed introduction texts and readcaps give clear errors", async () => {
      const bad: [string, string][] = [
        ["", "--introducer-v3"],
        [" ", "empty"],
        ["nonsense", "GSD readcap"],
        [text.split(",")[0], "at least one storage URL"],
        [`${text.split(",")[0]},shoal-storage:v1:xyz`, "part 2"],
        [`${readcaps[0]},${servers[0].url}`, "directory readcap"],
      ];
      for (const [b, expect] of bad) {
        const r = await runShoal([
          "client",
          "create-node",
          "--dir",
          `${root}/bad-${crypto.randomUUID()}`,
          "--introducer-v3",
          b,
        ]);
        assert(r.code === 1 || r.code === 2, `exit code ${r.code}`);
        assert(r.stderr.includes(expect), `'${expect}' not in: ${r.stderr}`);
      }
      const r = await runShoal(["operator", "add-announcement", "--dir", OP, "shoal:MUT-R1:zzzz"]);
      assertEquals(r.code, 1);
      assert(r.stderr.includes("readcap"), r.stderr);
    });
  } finally {
    for (const r of running) await r.stop().catch(() => {});
    await Promise.all(servers.map((s) => s.proc?.stop()));
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
});

async function* walk(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) yield* walk(p);
    else if (e.isFile) yield p;
  }
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}
