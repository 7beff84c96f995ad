/**
 * Bench section `deep-check` (issue 12): a deep check of a tree of 10,000
 * small immutable files (100 directories of 100, under one root) on 10
 * storage servers, 3-of-10. Reports the time (round 1 with the servers'
 * batch-list index cold, round 2 warm) and the requests each server handled,
 * as a ratio to the number of objects (the batched calls make it far below 1),
 * where the time goes, then `--verify` beside the raw download of the same
 * files (a subtree of DEEPCHECK_VERIFY_FILES files; the whole tree when that
 * is the tree's size).
 *
 * The tree is written into the servers' stores directly (deepcheck_build.ts:
 * the same files an upload writes, without 200,000 HTTPS requests), on stores
 * in /dev/shm (tmpfs); the checks and downloads go over HTTPS as a client's
 * do. DEEPCHECK_FILES and DEEPCHECK_VERIFY_FILES (environment) change the
 * sizes (defaults 10000 and 1000).
 */
import { formatCap, parseCap, randomBytes, readcapOf } from "../../lib/crypto/mod.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { type DirEntry, Grid, mapLimit, ServerList } from "../../lib/grid/mod.ts";
import { deepCheck, describeHealth } from "../../lib/roles/client/deepcheck.ts";
import { healthOf, locateImmutables, walkTree } from "../../lib/roles/client/walk.ts";
import { directServers } from "./deepcheck_build.ts";
import { cpuSeconds, line, machineLine, ms, startServers } from "./harness.ts";
import type { BenchSection } from "./sections.ts";

const FILES = Number(Deno.env.get("DEEPCHECK_FILES") ?? 10_000);
const VERIFY_FILES = Number(Deno.env.get("DEEPCHECK_VERIFY_FILES") ?? 1000);
const PER_DIR = 100;
const FILE_BYTES = 200;
/** Main before the batch-list index (docs/performance.md §8.2; load 27-31), this bench. */
const BASELINE =
  "before: 33.2 s cold / 30.7 s warm (servers' CPU 9.6 / 8.5 s), 13 requests per server";

async function run(): Promise<void> {
  console.log(`machine: ${machineLine()}`);
  const servers = await startServers(10, { tmpfs: true });
  const pool = new ClientPool();
  try {
    console.log(servers.describe());
    const leaseSecret = randomBytes(32);
    const mutableEncoding = { k: 3, n: 10 };
    const grid = new Grid({
      servers: new ServerList(servers.parsed.map((u) => pool.server(u))),
      leaseSecret,
      mutableEncoding,
    });
    const builder = new Grid({
      servers: new ServerList(await directServers(servers.parsed, servers.storeRoots)),
      leaseSecret,
      mutableEncoding,
    });
    const now = Math.floor(Date.now() / 1000);
    const t0 = performance.now();
    const dirs = Math.ceil(FILES / PER_DIR);
    // 16 at a time: the stores share this process's event loop, and an allocation queued behind
    // too many others misses the upload's straggler grace (max(1 s, 2 x time to enough)).
    const caps = await mapLimit(Array.from({ length: FILES }, (_, i) => i), 16, async () => {
      for (let attempt = 1;; attempt++) {
        try {
          const r = await builder.uploadImmutable(randomBytes(FILE_BYTES), {
            k: 3,
            n: 10,
            happy: 7,
            convergenceSecret: null,
          });
          return r.cap;
        } catch (e) {
          if (attempt === 3) throw e;
        }
      }
    });
    const files: string[][] = [];
    for (let d = 0; d < dirs; d++) files.push(caps.slice(d * PER_DIR, (d + 1) * PER_DIR));
    const dirEntries: DirEntry[] = await mapLimit(files, 8, async (dcaps, d) => {
      const entries: DirEntry[] = dcaps.map((cap, i) => ({
        name: `f${i}`,
        readcap: cap,
        metadata: { ctime: now, mtime: now, size: FILE_BYTES },
      }));
      const dircap = await builder.createDirectory(entries);
      const readcap = formatCap(await readcapOf(parseCap(dircap)));
      return { name: `d${d}`, readcap, writecap: dircap, metadata: {} };
    });
    const root = await builder.createDirectory(dirEntries);
    const built = performance.now() - t0;
    const objects = FILES + dirs + 1;
    console.log(
      `tree: ${FILES} files of ${FILE_BYTES} B in ${dirs} directories of ${PER_DIR} under one root ` +
        `(${objects} objects), 3-of-10 on 10 servers; written into the stores in ${
          (built / 1000).toFixed(1)
        } s`,
    );

    const perServer = async () => {
      const st = await servers.stats();
      const reqs = st.map((s) => s.requests);
      return { max: Math.max(...reqs), mean: reqs.reduce((a, b) => a + b, 0) / reqs.length };
    };
    /** CPU seconds used meanwhile by this process (the client) and by the servers. */
    const cpu = () => {
      const c = cpuSeconds(), s = servers.cpuSeconds();
      return () =>
        `CPU: client ${(cpuSeconds() - c).toFixed(2)} s, servers ${
          (servers.cpuSeconds() - s).toFixed(2)
        } s`;
    };
    for (let round = 1; round <= 2; round++) {
      await servers.reset();
      const c0 = performance.now();
      const used = cpu();
      const rep = await deepCheck(grid, [{ cap: root, path: "root:" }], { happy: 7 });
      const took = performance.now() - c0;
      const cpuLine = used();
      const r = await perServer();
      line(
        `deep-check (round ${round}, index ${
          round === 1 ? "cold" : "warm"
        }): ${rep.counts.objects} ` +
          `objects, ${rep.counts.healthy} healthy`,
        ms(took),
        `aim < 10 s; ${BASELINE}`,
      );
      line(
        "  requests per server (max / mean)",
        `${r.max} / ${r.mean.toFixed(0)}`,
        `ratio to objects: ${(r.max / objects).toFixed(4)} (max); aim well under 1`,
      );
      line("  " + cpuLine, "", "(wall time under load is mostly waiting for a core)");
      for (const o of rep.objects.filter((o) => !o.healthy).slice(0, 3)) {
        line(`  not healthy: ${o.path}`, "", `${describeHealth(o)} ${o.problems.join("; ")}`);
      }
    }

    // Where the time goes: the walk (directories, batch-read), the batch-list, health.
    {
      await servers.reset();
      const w0 = performance.now();
      let used = cpu();
      const objs = await walkTree(grid, [{ cap: root, path: "root:" }]);
      const w1 = performance.now();
      const walkCpu = used();
      used = cpu();
      await locateImmutables(grid, objs);
      const w2 = performance.now();
      const listCpu = used();
      for (const o of objs) healthOf(o, 7, 10);
      const w3 = performance.now();
      line(
        "  phases: walk+list directories / batch-list files / health",
        `${ms(w1 - w0)} / ${ms(w2 - w1)} / ${ms(w3 - w2)}`,
      );
      line("    walk: " + walkCpu, "", "(batch-read of directories, decrypt and decode)");
      line("    batch-list: " + listCpu, "", "(the servers answer from their index)");
    }

    // --verify on a subtree (or the whole tree), beside the raw download of the same files.
    const vdirs = Math.max(1, Math.min(dirs, Math.ceil(VERIFY_FILES / PER_DIR)));
    const sub = vdirs === dirs ? root : await grid.createDirectory(dirEntries.slice(0, vdirs));
    const subFiles = files.slice(0, vdirs).flat();
    await servers.reset();
    const v0 = performance.now();
    const vrep = await deepCheck(grid, [{ cap: sub, path: "sub:" }], { happy: 7, verify: true });
    const vtook = performance.now() - v0;
    const vr = await perServer();
    line(
      `deep-check --verify of ${subFiles.length} files (${vrep.counts.objects} objects)`,
      ms(vtook),
      `${(vtook / subFiles.length).toFixed(2)} ms/file; requests per server max ${vr.max}`,
    );
    await servers.reset();
    const d0 = performance.now();
    let bytes = 0;
    await mapLimit(subFiles, 4, async (cap) => {
      for await (const c of grid.downloadImmutable(cap)) bytes += c.length;
    });
    const dtook = performance.now() - d0;
    const dr = await perServer();
    line(
      `raw download of the same ${subFiles.length} files (k of n shares each)`,
      ms(dtook),
      `${
        (dtook / subFiles.length).toFixed(2)
      } ms/file; ${bytes} B; requests per server max ${dr.max}`,
    );
    line("  --verify / download", `${(vtook / dtook).toFixed(2)}x`, "verify reads all n shares");
    if (subFiles.length < FILES) {
      line(
        `  --verify of the whole tree (${FILES} files), estimated`,
        ms(vtook * FILES / subFiles.length),
        `download ${
          ms(dtook * FILES / subFiles.length)
        }; DEEPCHECK_VERIFY_FILES=${FILES} measures it`,
      );
    }
  } finally {
    pool.close();
    await servers.close();
  }
}

export const section: BenchSection = {
  name: "deep-check",
  title: "deep-check of a 10,000-file tree on 10 servers, batched (issue 12)",
  run,
};

if (import.meta.main) await run();
