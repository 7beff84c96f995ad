/**
 * Bench section `backup` (issue 15): a generated tree of 10,000 files, ~1 GiB by default
 * (`--backup-files=N --backup-mb=M`, or SHOAL_BENCH_BACKUP_FILES / SHOAL_BENCH_BACKUP_MB, shrink
 * it), on a grid of 5 real `shoal storage run` processes (3-of-5, happy 3) joined through the
 * command line.
 *
 * Native (`shoal client backup`, run in this process so its ClientPool counts storage requests):
 * first backup MB/s; second with nothing changed (target < 5 s; requests per server as a ratio to
 * the file count); second with 1 % of the files changed.
 * restic: the same tree into Shoal through `shoal client serve restic`, and into a local
 * directory repository, in the same run (target: Shoal >= 50 % of local). 1 MB = 10^6 bytes.
 */
import type { BenchSection } from "./sections.ts";
import { backup } from "../../lib/roles/client/backup.ts";
import { FileSession } from "../../lib/roles/client/mod.ts";
import { startJoinedGrid } from "../../tests/helpers/joined_grid.ts";
import { ensureTool } from "../../tests/helpers/debian.ts";
import { run, startServe } from "../../tests/helpers/serve.ts";
import { cpuSeconds, cpuSecondsOf, reapedChildrenCpuSeconds } from "./harness.ts";

const MB = 1e6;
const SERVERS = 5;

function arg(name: string, env: string, dflt: number): number {
  const a = Deno.args.find((x) => x.startsWith(`--${name}=`));
  const v = a ? a.slice(name.length + 3) : Deno.env.get(env);
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`bad --${name}: ${v}`);
  return n;
}

/** The 1-minute load average (the bench runs on shared machines: figures are lower bounds). */
function load(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}

function line(label: string, value: string, note = ""): void {
  console.log(`${label.padEnd(52)} ${value.padStart(12)}${note ? `  ${note}` : ""}`);
}

/** Pseudo-random incompressible bytes, fast (one getRandomValues block repeated with a counter). */
function fill(buf: Uint8Array, seed: number): void {
  crypto.getRandomValues(buf.subarray(0, Math.min(buf.length, 65536)));
  for (let o = 65536; o < buf.length; o += 65536) {
    buf.copyWithin(o, 0, Math.min(65536, buf.length - o));
    buf[o] ^= seed & 0xff;
    buf[o + 1] ^= (o >> 16) & 0xff;
  }
}

async function makeTree(root: string, files: number, bytes: number): Promise<number> {
  const per = Math.max(1, Math.floor(bytes / files));
  let total = 0;
  for (let i = 0; i < files; i++) {
    const dir = `${root}/d${Math.floor(i / 100)}`;
    if (i % 100 === 0) await Deno.mkdir(dir, { recursive: true });
    // Sizes spread from per/2 to 3per/2.
    const size = Math.floor(per / 2 + ((i * 7919) % 1000) / 1000 * per);
    const b = new Uint8Array(size);
    fill(b, i);
    await Deno.writeFile(`${dir}/f${i}.bin`, b);
    total += size;
  }
  return total;
}

async function nativeRun(
  clientDir: string,
  src: string,
): Promise<{ s: number; requests: number; sum: Awaited<ReturnType<typeof backup>> }> {
  const session = await FileSession.open(clientDir, {});
  try {
    await session.grid();
    const r0 = session.node.grid.pool.requests;
    const t0 = performance.now();
    const sum = await backup(session, src, "bk:bench", {});
    const s = (performance.now() - t0) / 1000;
    return { s, requests: session.node.grid.pool.requests - r0, sum };
  } finally {
    session.close();
  }
}

export const section: BenchSection = {
  name: "backup",
  title: "backup: shoal client backup and restic into the grid",
  async run() {
    const files = arg("backup-files", "SHOAL_BENCH_BACKUP_FILES", 10_000);
    const mb = arg("backup-mb", "SHOAL_BENCH_BACKUP_MB", 1024 * 1024 * 1024 / MB);
    const work = await Deno.makeTempDir({ prefix: "shoal-bench-backup-" });
    const g = await startJoinedGrid({
      servers: SERVERS,
      refreshInterval: 3600,
      shares: { k: 3, n: 5, happy: 3 },
    });
    try {
      const src = `${work}/src`;
      const total = await makeTree(src, files, mb * MB);
      line(
        "tree",
        `${files} files`,
        `${(total / MB).toFixed(0)} MB in ${Math.ceil(files / 100)} dirs` +
          (files === 10_000 && mb * MB >= 1024 ** 3 ? " (the issue's tree)" : " (REDUCED tree)") +
          `; load average ${load()}`,
      );
      await g.shoal(["client", "alias", "create", "--dir", g.clientDir, "bk"]);

      const first = await nativeRun(g.clientDir, src);
      line(
        "native: first backup",
        `${(total / MB / first.s).toFixed(1)} MB/s`,
        `${first.s.toFixed(1)} s, ${(files / first.s).toFixed(0)} files/s; ${
          (first.requests / SERVERS / files).toFixed(1)
        } requests per server per file; load ${load()}`,
      );

      const same = await nativeRun(g.clientDir, src);
      line(
        "native: second backup, nothing changed",
        `${same.s.toFixed(2)} s`,
        `target < 5 s: ${
          same.s < 5 ? "met" : "MISSED"
        }; ${same.sum.filesUploaded} uploaded; load ${load()}`,
      );
      const perServer = same.requests / SERVERS;
      line(
        "native: unchanged, storage requests per server",
        perServer.toFixed(1),
        `${(perServer / files).toFixed(4)} per file (${same.requests} in all)`,
      );

      const changed = Math.max(1, Math.floor(files / 100));
      for (let i = 0; i < changed; i++) {
        const j = Math.floor(i * files / changed);
        const p = `${src}/d${Math.floor(j / 100)}/f${j}.bin`;
        const b = await Deno.readFile(p);
        b[0] ^= 0xff;
        await Deno.writeFile(p, b);
      }
      const one = await nativeRun(g.clientDir, src);
      line(
        "native: second backup, 1 % changed",
        `${one.s.toFixed(2)} s`,
        `${one.sum.filesUploaded} uploaded, ${one.sum.directoriesCreated} dirs created, ${one.requests} requests; load ${load()}`,
      );

      // restic: into a local directory repository and into Shoal, same tree, same run.
      const restic = await ensureTool("restic");
      const env = {
        RESTIC_PASSWORD: "bench",
        HOME: work,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      };
      const resticRun = async (repo: string, cache: string) => {
        const e = { ...env, RESTIC_REPOSITORY: repo, RESTIC_CACHE_DIR: `${work}/${cache}` };
        const i = await run(restic, ["init"], { env: e });
        if (i.code !== 0) throw new Error(`restic init: ${i.stderr}`);
        const t0 = performance.now();
        const c0 = reapedChildrenCpuSeconds();
        const b = await run(restic, ["backup", "--host", "bench", src], { env: e });
        if (b.code !== 0) throw new Error(`restic backup: ${b.stderr}`);
        return {
          s: (performance.now() - t0) / 1000,
          cpu: (reapedChildrenCpuSeconds() - c0) * 1000 / (total / MB),
        };
      };
      const local = await resticRun(`${work}/restic-local`, "cache-local");
      const localRate = total / MB / local.s;
      line(
        "restic: into a local directory",
        `${localRate.toFixed(1)} MB/s`,
        `${local.s.toFixed(1)} s; restic's CPU ${local.cpu.toFixed(1)} ms per MB; load ${load()}`,
      );
      const srv = await startServe(["restic", "--dir", g.clientDir, "--path", "bk:restic"]);
      try {
        const pids = g.servers.map((s) => s.proc!.pid);
        const s0 = cpuSecondsOf(pids), v0 = cpuSeconds(srv.proc.pid);
        const shoal = await resticRun(srv.line, "cache-shoal");
        const servers = (cpuSecondsOf(pids) - s0) * 1000 / (total / MB);
        const serve = (cpuSeconds(srv.proc.pid) - v0) * 1000 / (total / MB);
        const rate = total / MB / shoal.s;
        const ratio = rate / localRate;
        line(
          "restic: into Shoal (serve restic)",
          `${rate.toFixed(1)} MB/s`,
          `${shoal.s.toFixed(1)} s; ${(ratio * 100).toFixed(0)} % of local; target >= 50 %: ${
            ratio >= 0.5 ? "met" : "MISSED"
          }; load ${load()}`,
        );
        // Everything runs on this machine's cores: restic, `serve restic` and
        // the servers. Their CPU per MB bounds the rate: cores / total CPU s per MB.
        const cores = navigator.hardwareConcurrency;
        const sum = shoal.cpu + serve + servers;
        const cap = cores / (sum / 1000);
        line(
          "restic into Shoal: CPU ms per MB",
          `${sum.toFixed(1)}`,
          `restic ${shoal.cpu.toFixed(1)} + serve restic ${serve.toFixed(1)} + ${SERVERS} servers ${
            servers.toFixed(1)
          }; ceiling ${cores} cores / that = ${cap.toFixed(0)} MB/s = ${
            (cap / localRate * 100).toFixed(0)
          } % of local (ran at ${(rate / cap * 100).toFixed(0)} % of it)`,
        );
      } finally {
        await srv.stop();
      }
    } finally {
      await g.close();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
};
