/**
 * Discovery converges under any order of joins, outages and restarts (issue #13), through
 * the real command line with real server processes on loopback.
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { setConfig, shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";
import {
  createStorageNode,
  runShoal,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";
import { startShoal } from "../helpers/process.ts";
import {
  clientServers,
  dropShares,
  holds,
  recorded,
  testOpts,
  waitFor,
} from "./discovery_helpers.ts";

Deno.test(
  "#13.1: a client that joined while most servers were down learns the rest once their GSAs reach the server it can reach, although the GSD never changed",
  testOpts,
  async () => {
    const g = await startJoinedGrid({ servers: 4, refreshInterval: 1 });
    const running: { stop(): Promise<unknown> }[] = [];
    try {
      const [s0, s1, s2, s3] = g.servers;
      const urls = g.servers.map((s) => s.url);
      // s0..s2 go down; s3 never received their announcements.
      await Promise.all([s0, s1, s2].map((s) => s.proc!.stop()));
      for (const s of [s0, s1, s2]) {
        await dropShares(s3.url, await Deno.readTextFile(`${s.node.dir}/private/gsa-writecap`));
        assert(!(await holds(s3.url, s.gsaReadcap, [s3.url])), "s3 lacks the GSA");
      }
      // A fresh one-shot client, and a fresh running client, join through s3 alone.
      const C = `${g.root}/late`;
      const R = `${g.root}/running`;
      for (const d of [C, R]) {
        await shoalOk(["client", "create-node", "--dir", d, "--introducer-v3", g.introText]);
        await setConfig(d, "web", "port", 0);
      }
      await setConfig(R, "client", "refresh_interval", 2);
      assertEquals((await clientServers(C)).map((s) => s.nickname), ["s3"]);
      const listing = await shoalOk(["client", "servers", "--dir", C]);
      assertEquals(listing.split("\n").filter((l) => l.includes("MISSING")).length, 3, listing);
      const client = await startShoal(["client", "run", "--dir", R]);
      running.push(client);
      await waitFor("the running client lists s3", async () => (await recorded(R)).length === 1);

      // s0..s2 come back until s3 holds every GSA, then go down again.
      for (const s of [s0, s1, s2]) s.proc = await startStorageServer(s.node.dir);
      for (const s of [s0, s1, s2]) {
        await waitFor(`s3 holds ${s.name}'s GSA`, () => holds(s3.url, s.gsaReadcap, urls));
      }
      const back = Date.now();
      await Promise.all([s0, s1, s2].map((s) => s.proc!.stop()));
      // The one-shot client now lists all four, the GSD being unchanged.
      assertEquals((await clientServers(C)).map((s) => s.nickname).sort(), [
        "s0",
        "s1",
        "s2",
        "s3",
      ]);
      // The running client within one refresh interval (2 s) of s3 holding them, plus slack
      // for a loaded machine.
      await waitFor(
        "the running client lists all four",
        async () => (await recorded(R)).length === 4,
        12_000,
      );
      console.log(`running client listed all four ${Date.now() - back} ms after s3 held them`);
      assert(!client.stdout().includes("MUT-R1"), "no cap in the client's log");
    } finally {
      for (const r of running) await r.stop().catch(() => {});
      await g.close();
    }
  },
);

interface Srv {
  name: string;
  dir: string;
  proc: StorageProcess | null;
  url: string;
  readcap: string;
}

/**
 * Build a grid of `n` servers through the CLI in the given order: "run-then-join" (the
 * README's order: start, then `storage join` while running) or "join-then-run". Servers
 * refresh every 30 s, so only the reaction to joins and GSD writes can make them converge
 * within the bound.
 */
async function commission(
  root: string,
  n: number,
  order: "run-then-join" | "join-then-run",
): Promise<{ servers: Srv[]; op: string; addedAt: number }> {
  const servers: Srv[] = [];
  for (let i = 0; i < n; i++) {
    const node = await createStorageNode({ dir: `${root}/s${i}`, nickname: `s${i}` });
    await setConfig(node.dir, "discovery", "refresh_interval", 30);
    servers.push({ name: `s${i}`, dir: node.dir, proc: null, url: "", readcap: "" });
  }
  // The create-time server runs from the start.
  servers[0].proc = await startStorageServer(servers[0].dir);
  servers[0].url = servers[0].proc.url;
  const op = `${root}/op`;
  await shoalOk(["operator", "create", "--dir", op, "--storage", servers[0].url]);
  let addedAt = 0;
  for (const s of servers) {
    const text = await shoalOk(["operator", "get-introduction-text", "--dir", op]);
    if (order === "run-then-join" && !s.proc) s.proc = await startStorageServer(s.dir);
    s.readcap = await shoalOk(["storage", "join", "--dir", s.dir, "--introducer-v3", text]);
    if (!s.proc) s.proc = await startStorageServer(s.dir);
    s.url = s.proc.url;
    await shoalOk(["operator", "add-announcement", "--dir", op, s.readcap]);
    addedAt = Date.now();
  }
  return { servers, op, addedAt };
}

for (const order of ["run-then-join", "join-then-run"] as const) {
  Deno.test(
    `#13.2 (${order}): every server holds every GSA within seconds of the last add-announcement, with a 30 s refresh interval`,
    testOpts,
    async () => {
      const root = await Deno.makeTempDir({ prefix: "shoal-conv-" });
      let servers: Srv[] = [];
      try {
        const c = await commission(root, 4, order);
        servers = c.servers;
        const urls = servers.map((s) => s.url);
        // Right after setup the operator reads every announcement (from any server that has
        // it) and reports no problem.
        const list = await runShoal(["operator", "list", "--dir", c.op]);
        assertEquals(list.code, 0, list.stderr);
        assert(!list.stderr.includes("problem:"), list.stderr);
        assertEquals(list.stdout.split("\n").filter((l) => /GSA v\d+/.test(l)).length, 4);
        const took = await waitFor(
          "every server holds every GSA",
          async () => {
            for (const s of servers) {
              for (const o of servers) if (!(await holds(s.url, o.readcap, urls))) return false;
            }
            return true;
          },
          6_000,
          100,
        );
        // Aim: 2 s on an idle machine; the bound here leaves room for a loaded one and is
        // far below the 30 s interval the old behaviour needed.
        console.log(`${order}: every server held every GSA ${took} ms after the last add`);
        assert(took < 6_000);
        // Each server's own view lists all three (it reacted to the GSD write).
        for (const s of servers) {
          await waitFor(
            `${s.name} lists every server`,
            async () => (await recorded(s.dir)).length === 4,
            6_000,
          );
        }
      } finally {
        await Promise.all(servers.map((s) => s.proc?.stop()));
        await Deno.remove(root, { recursive: true }).catch(() => {});
      }
    },
  );
}
