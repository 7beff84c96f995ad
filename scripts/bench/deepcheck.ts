/**
 * Bench section `deep-check` (issue 12): a deep check of a tree of 10,000
 * small immutable files (100 directories of 100, under one root) on 10
 * storage servers, 3-of-10. Reports the time and the requests each server
 * handled, as a ratio to the number of objects (the batched calls should make
 * it far below 1), then `--verify` on a subtree beside the raw download of the
 * same files.
 *
 * The tree is built with the library directly (uploads 32 at a time, each
 * directory created in one publish), on stores in /dev/shm (tmpfs) so that
 * building it does not take most of the run. DEEPCHECK_FILES and DEEPCHECK_VERIFY_FILES
 * (environment) change the sizes (defaults 10000 and 1000).
 */
import { formatCap, parseCap, randomBytes, readcapOf } from "../../lib/crypto/mod.ts";
import { ClientPool } from "../../lib/discovery/mod.ts";
import { type DirEntry, Grid, mapLimit, ServerList } from "../../lib/grid/mod.ts";
import { deepCheck } from "../../lib/roles/client/deepcheck.ts";
import { healthOf, locateImmutables, walkTree } from "../../lib/roles/client/walk.ts";
import { line, machineLine, ms, startServers } from "./harness.ts";
import type { BenchSection } from "./sections.ts";

const FILES = Number(Deno.env.get("DEEPCHECK_FILES") ?? 10_000);
const VERIFY_FILES = Number(Deno.env.get("DEEPCHECK_VERIFY_FILES") ?? 1000);
const PER_DIR = 100;
const FILE_BYTES = 200;

async function run(): Promise<void> {
  console.log(`machine: ${machineLine()}`);
  // Stores on /dev/shm when it exists: building 10,000 files is 100,000 fsynced shares.
  const servers = await startServers(10, { tmpfs: true });
  const pool = new ClientPool();
  try {
    console.log(servers.describe());
    const grid = new Grid({
      servers: new ServerList(servers.parsed.map((u) => pool.server(u))),
      leaseSecret: randomBytes(32),
      mutableEncoding: { k: 3, n: 10 },
    });
    const now = Math.floor(Date.now() / 1000);
    const t0 = performance.now();
    const dirs = Math.ceil(FILES / PER_DIR);
    const dirEntries: DirEntry[] = [];
    const files: string[][] = [];
    for (let d = 0; d < dirs; d++) {
      const count = Math.min(PER_DIR, FILES - d * PER_DIR);
      const caps = await mapLimit(Array.from({ length: count }, (_, i) => i), 32, async () => {
        const r = await grid.uploadImmutable(randomBytes(FILE_BYTES), {
          k: 3,
          n: 10,
          happy: 7,
          convergenceSecret: null,
        });
        return r.cap;
      });
      files.push(caps);
      const entries: DirEntry[] = caps.map((cap, i) => ({
        name: `f${i}`,
        readcap: cap,
        metadata: { ctime: now, mtime: now, size: FILE_BYTES },
      }));
      const dircap = await grid.createDirectory(entries);
      const readcap = formatCap(await readcapOf(parseCap(dircap)));
      dirEntries.push({ name: `d${d}`, readcap, writecap: dircap, metadata: {} });
    }
    const root = await grid.createDirectory(dirEntries);
    const built = performance.now() - t0;
    const objects = FILES + dirs + 1;
    console.log(
      `tree: ${FILES} files of ${FILE_BYTES} B in ${dirs} directories of ${PER_DIR} under one root ` +
        `(${objects} objects), 3-of-10 on 10 servers; built in ${(built / 1000).toFixed(1)} s`,
    );

    const perServer = async () => {
      const st = await servers.stats();
      const reqs = st.map((s) => s.requests);
      return { max: Math.max(...reqs), mean: reqs.reduce((a, b) => a + b, 0) / reqs.length };
    };
    for (let round = 1; round <= 2; round++) {
      await servers.reset();
      const c0 = performance.now();
      const rep = await deepCheck(grid, [{ cap: root, path: "root:" }], { happy: 7 });
      const took = performance.now() - c0;
      const r = await perServer();
      line(
        `deep-check (round ${round}): ${rep.counts.objects} objects, ${rep.counts.healthy} healthy`,
        ms(took),
      );
      line(
        "  requests per server (max / mean)",
        `${r.max} / ${r.mean.toFixed(0)}`,
        `ratio to objects: ${(r.max / objects).toFixed(4)} (max)`,
      );
    }

    // Where the time goes: the walk (directories, batch-read), the batch-list, health.
    {
      await servers.reset();
      const w0 = performance.now();
      const objs = await walkTree(grid, [{ cap: root, path: "root:" }]);
      const w1 = performance.now();
      await locateImmutables(grid, objs);
      const w2 = performance.now();
      for (const o of objs) healthOf(o, 7, 10);
      const w3 = performance.now();
      line(
        "  phases: walk+list directories / batch-list files / health",
        `${ms(w1 - w0)} / ${ms(w2 - w1)} / ${ms(w3 - w2)}`,
      );
    }

    // --verify on a subtree, beside the raw download of the same files.
    const vdirs = Math.max(1, Math.min(dirs, Math.ceil(VERIFY_FILES / PER_DIR)));
    const sub = await grid.createDirectory(dirEntries.slice(0, vdirs));
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
