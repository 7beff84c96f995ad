/**
 * Upkeep of a running client node (`shoal client run`), with real server and
 * client processes (docs/leases-and-upkeep.md):
 *
 * - with 6-second leases and garbage collection every second, a running client
 *   keeps a tree of linked files and several unlinked uploads alive across many
 *   collection cycles; an upload it was told to forget is collected; once the
 *   client stops for longer than a lease it loses exactly what it said it
 *   would, while another running client's upload survives;
 * - after a server is lost for good and a new one joins, upkeep brings every
 *   file back to healthy without a command, and an unchanged mutable file
 *   keeps its version (no republish across later checks).
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { type JoinedGrid, setConfig, shoalOk, startJoinedGrid } from "../helpers/joined_grid.ts";
import { startShoal } from "../helpers/process.ts";
import { createStorageNode, runShoal, startStorageServer } from "../helpers/storage_process.ts";
import { ok, run, testBytes } from "../cli/files_helpers.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function prepareClient(dir: string, checkInterval: number) {
  await setConfig(dir, "client", "refresh_interval", 1);
  await setConfig(dir, "web", "port", 0);
  await setConfig(dir, "upkeep", "check_interval", checkInterval);
}

/** Restart every server with `lease_duration`, gc every second, gc = "age". */
async function shortLeases(g: JoinedGrid, lease: string): Promise<void> {
  await Promise.all(g.servers.map(async (s) => {
    await s.proc!.stop();
    await setConfig(s.node.dir, "storage", "lease_duration", lease);
    await setConfig(s.node.dir, "storage", "gc_interval", "1s");
    await setConfig(s.node.dir, "storage", "gc", "age");
    s.proc = await startStorageServer(s.node.dir);
  }));
}

Deno.test(
  "upkeep: a running client keeps its tree and unlinked uploads alive; stopping loses what it said",
  opts,
  async () => {
    const g = await startJoinedGrid({
      servers: 3,
      shares: { k: 2, n: 3, happy: 2 },
    });
    const procs: { stop(): Promise<number> }[] = [];
    try {
      // Short leases and collection every second from now on (the grid was set up without).
      await shortLeases(g, "6s");
      const C = g.clientDir;
      const d = ["--dir", C];
      await prepareClient(C, 60);
      // A second client node with an unlinked upload of its own, running throughout.
      const C2 = `${g.root}/client2`;
      await shoalOk(["client", "create-node", "--dir", C2, "--introducer-v3", g.introText]);
      await setConfig(C2, "shares", "k", 2);
      await setConfig(C2, "shares", "n", 3);
      await setConfig(C2, "shares", "happy", 2);
      await prepareClient(C2, 60);
      const run2 = await startShoal(["client", "run", "--dir", C2]);
      procs.push(run2);
      await sleep(1500);
      const other = await ok(["client", "put", "--dir", C2, "-"], testBytes(600, 18));

      // The client runs first: everything below is made while it keeps the 6 s leases alive.
      const run1 = await startShoal(["client", "run", ...d]);
      procs.push(run1);
      await sleep(1500);
      await ok(["client", "alias", "create", ...d, "home"]);
      await ok(["client", "put", ...d, "-", "home:a.txt"], testBytes(2000, 11));
      await ok(["client", "mkdir", ...d, "home:sub"]);
      await ok(["client", "put", ...d, "-", "home:sub/b.txt"], testBytes(300, 12));
      await ok(["client", "put", ...d, "--mutable", "-", "home:sub/m"], testBytes(100, 13));
      // Unlinked uploads: recorded, so kept; one of them forgotten, so not.
      const u1 = await ok(["client", "put", ...d, "-"], testBytes(5000, 14));
      const u2 = await ok(["client", "put", ...d, "-"], testBytes(70, 15));
      const u3 = await ok(["client", "put", ...d, "--mutable", "-"], testBytes(40, 16));
      const gone = await ok(["client", "put", ...d, "-"], testBytes(900, 17));
      await ok(["client", "forget", ...d, gone]);
      assertEquals((await run(["client", "forget", ...d, gone])).code, 1, "forgotten once");
      // An upload through the web gateway (the dashboard's form: PUT /uri) is recorded too.
      // The log names the dashboard but not its token (docs/security.md §2.13): read the file.
      const gw = /dashboard: (http:\/\/[^\s?]+)\?token=/.exec(run1.stdout());
      assert(gw, run1.stdout());
      const token = (await Deno.readTextFile(`${C}/private/api-token`)).trim();
      const up = await fetch(`${gw[1]}uri`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}` },
        body: new Uint8Array(testBytes(800, 19)),
      });
      const webCap = (await up.text()).trim();
      assertEquals(up.status, 201, webCap);

      // 20 s: over three lease durations, twenty collection cycles.
      await sleep(20_000);
      const held = ["home:a.txt", "home:sub/b.txt", "home:sub/m", u1, u2, u3, webCap];
      for (const x of held) {
        const r = await run(["client", "get", ...d, x]);
        assertEquals(r.code, 0, `${x.slice(0, 12)} kept: ${r.stderr}\n${run1.stdout()}`);
      }
      assertEquals(
        (await run(["client", "get", ...d, gone])).code,
        1,
        "the forgotten upload was collected",
      );
      const log1 = run1.stdout();
      assert(/upkeep: renewed \d+ lease\(s\) on 9 object\(s\)/.test(log1), log1);
      assert(!log1.includes("shoal:"), "no cap in the log");
      // The dashboard's data carries the upkeep section.
      assert(!log1.includes(token), "no dashboard token in the log");
      const st = await fetch(`${gw[1]}api/status`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = await st.json();
      assertEquals(st.status, 200, JSON.stringify(body));
      assertEquals(body.upkeep.objects, 9);
      assert(body.upkeep.lastRenewal.renewed > 0);
      assertEquals(body.upkeep.failures, []);
      assert(!JSON.stringify(body).includes("shoal:"), "no cap on the dashboard");

      // Stop the first client: it says what will lapse, and exactly that is collected.
      await run1.stop("SIGINT");
      const notice = /stopping: the leases on the (\d+) object\(s\) held last until/.exec(
        run1.stdout(),
      );
      assert(notice, run1.stdout());
      assertEquals(notice[1], "9");
      await sleep(9_000);
      for (const x of held) {
        assertEquals(
          (await run(["client", "get", ...d, x])).code,
          1,
          `${x.slice(0, 12)} collected`,
        );
      }
      const r2 = await run(["client", "get", "--dir", C2, other]);
      assertEquals(
        r2.code,
        0,
        "the other running client's upload survives: " + r2.stderr + run2.stdout(),
      );
      const servers = JSON.parse(
        await ok(["client", "servers", "--dir", C2, "--json", "--refresh"]),
      );
      assertEquals(servers.length, 3, "the grid's own GSD and GSAs are kept by the servers");
    } finally {
      for (const p of procs) await p.stop();
      await g.close();
    }
  },
);

Deno.test(
  "upkeep: a lost server replaced by a new one; every file healthy again, mutable version kept",
  opts,
  async () => {
    const g = await startJoinedGrid({ servers: 4, shares: { k: 2, n: 4, happy: 4 } });
    const procs: { stop(): Promise<number> }[] = [];
    let newDir: string | null = null;
    try {
      const C = g.clientDir;
      const d = ["--dir", C];
      await prepareClient(C, 2);
      await ok(["client", "alias", "create", ...d, "home"]);
      await ok(["client", "put", ...d, "-", "home:a.txt"], testBytes(3000, 21));
      await ok(["client", "mkdir", ...d, "home:sub"]);
      await ok(["client", "put", ...d, "-", "home:sub/b.txt"], testBytes(50, 22));
      await ok(["client", "put", ...d, "--mutable", "-", "home:m"], testBytes(80, 23));
      const u = await ok(["client", "put", ...d, "-"], testBytes(4000, 24)); // unlinked, recorded
      const first = JSON.parse(await ok(["client", "deep-check", ...d, "--json", "home:"]));
      assertEquals(first.counts.healthy, 5);
      const seq0 = first.objects.find((o: { path: string }) => o.path === "home:m").seqnum;

      const runner = await startShoal(["client", "run", ...d]);
      procs.push(runner);
      // Server s3 is lost for good: killed, and its announcement removed by the operator.
      await g.servers[3].proc!.kill();
      g.servers[3].proc = null;
      await shoalOk(["operator", "remove-announcement", "--dir", g.opDir, g.servers[3].gsaReadcap]);
      // A new server joins.
      const fresh = await createStorageNode({ nickname: "s4" });
      newDir = fresh.dir.replace(/\/node$/, "");
      await setConfig(fresh.dir, "discovery", "refresh_interval", 1);
      const proc = await startStorageServer(fresh.dir);
      procs.push(proc);
      const gsa = await shoalOk([
        "storage",
        "join",
        "--dir",
        fresh.dir,
        "--introducer-v3",
        g.introText,
      ]);
      await shoalOk(["operator", "add-announcement", "--dir", g.opDir, gsa]);

      // Without any command, upkeep repairs everything onto the new server.
      const deadline = Date.now() + 60_000;
      let last: Record<string, unknown> | null = null;
      for (;;) {
        const r = await runShoal(["client", "deep-check", ...d, "--json", "home:"]);
        last = JSON.parse(r.stdout);
        const objs = last!.objects as { happiness: number }[];
        if (r.code === 0 && objs.every((o) => o.happiness === 4)) break;
        if (Date.now() > deadline) {
          throw new Error(`not repaired in time: ${JSON.stringify(last)}\n${runner.stdout()}`);
        }
        await sleep(1000);
      }
      const mobj = (last!.objects as { path: string; seqnum: number }[]).find((o) =>
        o.path === "home:m"
      )!;
      assertEquals(mobj.seqnum, seq0, "the unchanged mutable file kept its version");
      const ur = JSON.parse(await ok(["client", "check", ...d, "--json", u]));
      assert(ur.healthy, "the unlinked upload was repaired too");
      const log = runner.stdout();
      assert(/upkeep: home:m: re-spread version \d+ \(kept\) to s4:/.test(log), log);
      assert(/upkeep: home:a\.txt: repaired:/.test(log), log);
      // No churn: later checks find nothing to do, and the version stays.
      const before = (log.match(/all healthy, nothing to do/g) ?? []).length;
      await sleep(5000);
      const later = runner.stdout();
      assert((later.match(/all healthy, nothing to do/g) ?? []).length > before, later);
      const again = JSON.parse(await ok(["client", "deep-check", ...d, "--json", "home:"]));
      assertEquals(again.objects.find((o: { path: string }) => o.path === "home:m").seqnum, seq0);
    } finally {
      for (const p of procs) await p.stop();
      await g.close();
      if (newDir) await Deno.remove(newDir, { recursive: true }).catch(() => {});
    }
  },
);
