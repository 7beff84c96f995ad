/**
 * Shared parts of the grid benchmarks (bench sections `mutable`, `discovery`, `deepcheck` and
 * `immutable`):
 *
 * - startServers(M): M real storage stores (real TLS servers on 127.0.0.1
 *   ports, real share stores on disk) in child processes running
 *   scripts/bench/server_pool.ts, at most MAX_PROCESSES processes, the stores
 *   spread evenly over them (so a 250-server grid is 10 processes of 25
 *   stores). Every store is also reachable through a byte-counting TCP front
 *   (see server_pool.ts) and counts the requests it handles.
 * - rawBaselines(): the raw figures the grid numbers are compared with,
 *   measured in the same run: Ed25519 keygen/sign/verify per second (Web
 *   Crypto, one at a time, as the grid code calls them) and loopback TLS
 *   request latency (node:tls client — the storage client's stack — to a TLS
 *   echo listener in another process; one connection, and 10 connections in
 *   parallel as a publish to 10 servers does).
 * - small statistics and printing helpers.
 */
import tls from "node:tls";
import { parseStorageUrl, type StorageUrl } from "../../lib/storage/mod.ts";
import { RUN_FLAGS } from "../../lib/version.ts";

const POOL = new URL("./server_pool.ts", import.meta.url).pathname;
/** Most server-pool processes started for one grid (the machine has 2 cores). */
export const MAX_PROCESSES = 10;

// ---- printing and statistics -------------------------------------------------

export function line(label: string, value: string, note = ""): void {
  console.log(`  ${label.padEnd(58)} ${value.padStart(14)}${note ? `  ${note}` : ""}`);
}

export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

export const median = (xs: number[]) => quantile(xs, 0.5);
export const p95 = (xs: number[]) => quantile(xs, 0.95);

export function ms(x: number): string {
  return x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`;
}

/** "median / p95" of millisecond samples. */
export function medP95(xs: number[]): string {
  return `${ms(median(xs))} / ${ms(p95(xs))}`;
}

export function kb(bytes: number): string {
  return bytes >= 10_000 ? `${(bytes / 1000).toFixed(1)} kB` : `${bytes} B`;
}

/** Run `fn` `n` times; returns each run's duration in ms. */
export async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

/** CPU seconds (user + system) of process `pid` so far, from /proc (Linux); NaN elsewhere. */
export function cpuSeconds(pid: number = Deno.pid): number {
  return statTicks(pid, 11, 12); // utime, stime
}

/** Fields `a` + `b` of /proc/PID/stat (counted from the state field), clock ticks as seconds. */
function statTicks(pid: number, a: number, b: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[a]) + Number(f[b])) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds (user + system) of this process's children that have exited and
 * been waited for (cutime + cstime, from /proc; Linux); NaN elsewhere. The
 * difference across a child's run is that child's CPU, if no other child ended.
 */
export function reapedChildrenCpuSeconds(): number {
  return statTicks(Deno.pid, 13, 14); // cutime, cstime
}

/** CPU seconds of the processes `pids` so far, all together (Linux; NaN elsewhere). */
export function cpuSecondsOf(pids: number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

// ---- child processes -----------------------------------------------------------

/**
 * Spawn `deno ARGS` and wait for a stdout line matching `ready`. `next(re)`
 * waits for a later match in what follows; `stop()` sends SIGTERM and waits.
 */
export async function spawnUntil(
  args: string[],
  ready: RegExp,
): Promise<{
  child: Deno.ChildProcess;
  match: RegExpExecArray;
  next(re: RegExp): Promise<RegExpExecArray>;
  stop(): Promise<void>;
}> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // stdout is read all the time (a child never blocks on a full pipe); the
  // last 64 KiB of it are kept for next().
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ended = false;
  let wake = null as (() => void) | null;
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = (buf + value).slice(-65536);
      wake?.();
    }
  })().catch(() => {}).finally(() => {
    ended = true;
    wake?.();
  });
  const next = async (re: RegExp): Promise<RegExpExecArray> => {
    for (;;) {
      const m = re.exec(buf);
      if (m) {
        buf = buf.slice(m.index + m[0].length);
        return m;
      }
      if (ended) throw new Error(`child process ended before printing ${re}: ${args.join(" ")}`);
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
  };
  const timer = setTimeout(() => Deno.kill(child.pid, "SIGKILL"), 30_000);
  let match: RegExpExecArray;
  try {
    match = await next(ready);
  } finally {
    clearTimeout(timer);
  }
  return {
    child,
    match,
    next,
    async stop() {
      try {
        Deno.kill(child.pid, "SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await pump;
    },
  };
}

const stderrSeen = new Set<string>();

/** Line-oriented access to a child process's stdout and stdin. */
class PoolProcess {
  readonly child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<string>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #buf = "";
  #closed = false;

  constructor(args: string[]) {
    const child = this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...RUN_FLAGS, POOL, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    // Server messages, each distinct line once (hundreds of stores repeat the same warning).
    (async () => {
      let buf = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const l = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (l.trim() && !stderrSeen.has(l)) {
            stderrSeen.add(l);
            console.error(`  [server pool] ${l}`);
          }
        }
      }
    })().catch(() => {});
    this.#writer = this.child.stdin.getWriter();
  }

  /** The next stdout line (without its newline). */
  async nextLine(): Promise<string> {
    for (;;) {
      const nl = this.#buf.indexOf("\n");
      if (nl >= 0) {
        const l = this.#buf.slice(0, nl);
        this.#buf = this.#buf.slice(nl + 1);
        return l;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("a benchmark server-pool process exited unexpectedly");
      this.#buf += value;
    }
  }

  /** Lines until (not including) `last`. */
  async linesUntil(last: string): Promise<string[]> {
    const out: string[] = [];
    for (let l = await this.nextLine(); l !== last; l = await this.nextLine()) out.push(l);
    return out;
  }

  async command(cmd: string, answerPrefix: string): Promise<string> {
    await this.#writer.write(new TextEncoder().encode(cmd + "\n"));
    for (;;) {
      const l = await this.nextLine();
      if (l.startsWith(answerPrefix)) return l.slice(answerPrefix.length);
    }
  }

  async stop(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        Deno.kill(this.child.pid, "SIGKILL");
      } catch { /* gone */ }
    }, 5000);
    try {
      Deno.kill(this.child.pid, "SIGTERM");
    } catch { /* gone */ }
    await this.child.status;
    clearTimeout(timer);
    await this.#reader.cancel().catch(() => {});
  }
}

// ---- storage servers -------------------------------------------------------------

export interface StoreStats {
  /** HTTP requests the store handled (direct and through its front). */
  requests: number;
  /** TCP connections accepted by the counting front. */
  connections: number;
  /** Bytes received from clients through the counting front (TLS records included). */
  bytesIn: number;
  /** Bytes sent to clients through the counting front. */
  bytesOut: number;
}

export interface BenchServers {
  count: number;
  processes: number;
  /** Store directory root (removed by close()). */
  root: string;
  /** Storage URL of each store, direct to its TLS port. */
  urls: string[];
  parsed: StorageUrl[];
  /** The same stores through their byte-counting fronts (same pin and swissnum). */
  countedUrls: string[];
  countedParsed: StorageUrl[];
  /** Each store's directory (its ShareStore root), in the order of `urls`. */
  storeRoots: string[];
  stats(): Promise<StoreStats[]>;
  reset(): Promise<void>;
  /** CPU seconds the server processes have used so far, all together (Linux; NaN elsewhere). */
  cpuSeconds(): number;
  /** One line saying how the stores are laid out, for the benchmark output. */
  describe(): string;
  close(): Promise<void>;
}

/**
 * Start `m` stores in min(m, MAX_PROCESSES) server-pool processes. `tmpfs`:
 * put the share stores on /dev/shm (when it exists) instead of the disk.
 */
export async function startServers(
  m: number,
  opts: { tmpfs?: boolean; serve?: "deno" | "node-https" | "deno-serve" } = {},
): Promise<BenchServers> {
  let base: string | undefined;
  if (opts.tmpfs) {
    try {
      if ((await Deno.stat("/dev/shm")).isDirectory) base = "/dev/shm";
    } catch { /* no tmpfs: use the default temp dir */ }
  }
  const root = await Deno.makeTempDir({ dir: base, prefix: "shoal-bench-grid-" });
  const nproc = Math.min(m, MAX_PROCESSES);
  const sizes = Array.from(
    { length: nproc },
    (_, i) => Math.floor(m / nproc) + (i < m % nproc ? 1 : 0),
  );
  const procs: PoolProcess[] = [];
  try {
    const parts = await Promise.all(sizes.map(async (k, p) => {
      const proc = procs[p] = new PoolProcess([
        "--count",
        String(k),
        "--root",
        `${root}/p${p}`,
        "--serve",
        opts.serve ?? "deno",
      ]);
      const lines = await proc.linesUntil("ready");
      return lines.filter((l) => l.startsWith("url ")).map((l) => l.split(" "));
    }));
    // Round-robin over the processes, so that any first n stores are spread evenly.
    const rows: string[][] = [];
    const storeRoots: string[] = [];
    for (let i = 0; i < Math.max(...sizes); i++) {
      parts.forEach((part, p) => {
        if (i >= part.length) return;
        rows.push(part[i]);
        storeRoots.push(`${root}/p${p}/s${part[i][1]}`);
      });
    }
    const urls = rows.map((r) => r[2]);
    const countedUrls = rows.map((r) => r[3]);
    return {
      count: m,
      processes: nproc,
      root,
      urls,
      parsed: urls.map(parseStorageUrl),
      countedUrls,
      countedParsed: countedUrls.map(parseStorageUrl),
      storeRoots,
      async stats() {
        const all = await Promise.all(
          procs.map(async (p) => JSON.parse(await p.command("stats", "stats ")) as StoreStats[]),
        );
        const out: StoreStats[] = [];
        for (let i = 0; i < Math.max(...sizes); i++) {
          for (const part of all) if (i < part.length) out.push(part[i]);
        }
        return out;
      },
      async reset() {
        await Promise.all(procs.map((p) => p.command("reset", "reset")));
      },
      cpuSeconds() {
        return cpuSecondsOf(procs.map((p) => p.child.pid));
      },
      describe() {
        const where = base ? "tmpfs (/dev/shm)" : "disk (temp dir)";
        return `${m} storage servers in ${nproc} process(es) of ${sizes[0]}` +
          `${sizes[nproc - 1] !== sizes[0] ? `-${sizes[nproc - 1]}` : ""} ` +
          `(scripts/bench/server_pool.ts: one TLS port + share store each), stores on ${where}` +
          (opts.serve === "deno-serve"
            ? ", served by the old bare Deno.serve (no TCP_NODELAY)"
            : "");
      },
      async close() {
        await Promise.all(procs.map((p) => p.stop()));
        await Deno.remove(root, { recursive: true }).catch(() => {});
      },
    };
  } catch (e) {
    await Promise.all(procs.map((p) => p.stop()));
    await Deno.remove(root, { recursive: true }).catch(() => {});
    throw e;
  }
}

// ---- raw baselines ----------------------------------------------------------------

export interface RawBaselines {
  keygenPerSec: number;
  signPerSec: number;
  verifyPerSec: number;
  /** ms per 128-byte round trip on one keep-alive loopback TLS connection. */
  tls1: number[];
  /** ms per round of 10 parallel 128-byte round trips on 10 connections. */
  tls10: number[];
}

async function perSecond(fn: () => Promise<unknown>, seconds = 0.5): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 50; i++) await fn();
    n += 50;
  }
  return n / ((performance.now() - t0) / 1000);
}

function connectTls(port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    }, () => resolve(s));
    s.once("error", reject);
    s.setNoDelay(true);
  });
}

/** One round trip of `msg` (echoed back whole). */
function roundTrip(s: tls.TLSSocket, msg: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    let got = 0;
    const on = (d: Uint8Array) => {
      got += d.length;
      if (got >= msg.length) {
        s.off("data", on);
        resolve();
      }
    };
    s.on("data", on);
    s.write(msg);
  });
}

export async function rawBaselines(): Promise<RawBaselines> {
  const msg = new Uint8Array(32).fill(1);
  const kp = await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"]) as CryptoKeyPair;
  const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", kp.privateKey, msg));
  const keygenPerSec = await perSecond(() =>
    crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"])
  );
  const signPerSec = await perSecond(() => crypto.subtle.sign("Ed25519", kp.privateKey, msg));
  const verifyPerSec = await perSecond(() =>
    crypto.subtle.verify("Ed25519", kp.publicKey, sig, msg)
  );

  const echo = new PoolProcess(["--echo", "10"]);
  const sockets: tls.TLSSocket[] = [];
  try {
    const ports = (await echo.linesUntil("ready")).find((l) => l.startsWith("echo "))!.split(" ")
      .slice(1)
      .map(Number);
    for (const p of ports) sockets.push(await connectTls(p));
    const req = new Uint8Array(128).fill(7);
    for (let i = 0; i < 200; i++) await roundTrip(sockets[0], req);
    const tls1 = await timed(2000, () => roundTrip(sockets[0], req));
    for (let i = 0; i < 50; i++) await Promise.all(sockets.map((s) => roundTrip(s, req)));
    const tls10 = await timed(500, () => Promise.all(sockets.map((s) => roundTrip(s, req))));
    return { keygenPerSec, signPerSec, verifyPerSec, tls1, tls10 };
  } finally {
    for (const s of sockets) s.destroy();
    await echo.stop();
  }
}

export function printBaselines(b: RawBaselines): void {
  console.log("raw baselines (same run):");
  line("Ed25519 keygen (Web Crypto, one at a time)", `${(b.keygenPerSec / 1000).toFixed(1)}k/s`);
  line("Ed25519 sign (Web Crypto, one at a time)", `${(b.signPerSec / 1000).toFixed(1)}k/s`);
  line("Ed25519 verify (Web Crypto, one at a time)", `${(b.verifyPerSec / 1000).toFixed(1)}k/s`);
  line("loopback TLS round trip, 128 B, 1 connection (med/p95)", medP95(b.tls1));
  line("loopback TLS, 10 parallel round trips on 10 conns", medP95(b.tls10));
}

/** Date, machine, runtime and load (other work on the machine skews every figure). */
export function machineLine(): string {
  const cpus = navigator.hardwareConcurrency;
  let load = "";
  try {
    const avg = Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
    load = `, load average ${avg}`;
  } catch { /* not Linux */ }
  const date = new Date().toISOString().slice(0, 16);
  return `${date}Z, ${Deno.build.os}/${Deno.build.arch}, ${cpus} CPU(s), deno ${Deno.version.deno}${load}`;
}
