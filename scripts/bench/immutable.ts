/**
 * Bench section `immutable`: upload and download of one large immutable file
 * (default 1 GiB; SHOAL_BENCH_IMMUTABLE_MB sets the size in MiB, and the
 * first line says which ran) at 3-of-10 on 10 loopback storage servers
 * (real `shoal storage run` processes), with this process's peak RSS,
 * beside the raw single-process pipeline measured in the same run: AES-256-CTR
 * + erasure coding 3-of-10 + block and segment hashes per 1 MiB segment
 * (upload's CPU work), and verify-hash + decode + decrypt (download's), through
 * the product's segment code, and the primitives (AES, SHA-256, RS parity)
 * alone: the compute floor per MB the client's CPU targets are set against.
 *
 * For each phase: the CPU time (user + system, every thread, from /proc on
 * Linux) the client and the 10 servers spent per MB — the client's beside
 * the issue-18 targets (upload <= 6 ms, download <= 4 ms), the servers' also
 * per stored MB (10/3 per file MB; target <= 3 ms) — and the MB/s beside the
 * CPU ceiling those imply (cores / total CPU seconds per MB) as a percentage
 * (aim >= 90 %). The source is one random MiB repeated and the download is
 * only counted, so the client's figure is the client's work. The same
 * transfer without segment Workers (a quarter of the size, at least 64 MiB)
 * follows, for the ratio. Then the product path: a grid joined through the
 * command line (10 servers, refresh at the default 60 s), `shoal client put
 * FILE` and `shoal client get CAP OUT`, each its own process, timed from
 * spawn to exit, with its CPU, the servers' CPU, the ceiling and its peak RSS
 * (VmHWM): the client's memory figure (this bench process carries the
 * harness and runs every phase). Fresh servers cost up to twice the CPU per
 * MB in their first tens of MB (JIT): a 32 MiB upload before the measured
 * phases, and a 32 MiB put before the timed put, warm them up and are printed
 * apart. The servers' CPU is that of the 10 `shoal storage run` processes
 * (all threads), with no proxy in the path. 1 MB = 10^6 bytes. Other targets (issue 6):
 * upload >= 60 MB/s, download >= 100 MB/s, client RSS < 200 MB.
 */
import type { BenchSection } from "./sections.ts";
import { createHash } from "node:crypto";
import tls from "node:tls";
import { erasureParity } from "../../lib/codec/erasure.ts";
import { decodeWork, encodeWork } from "../../lib/grid/workers/segment_work.ts";
import { aesCtr, randomBytes, taggedHash, TAGS } from "../../lib/crypto/mod.ts";
import { TestGrid } from "../../tests/helpers/grid.ts";
import { generatedSource } from "../../tests/helpers/sources.ts";
import { startJoinedGrid } from "../../tests/helpers/joined_grid.ts";
import { RUN_FLAGS } from "../../lib/version.ts";
import { SegmentPool, segmentWorkerCount, segmentWorkers } from "../../lib/grid/workers/mod.ts";
import { cpuSeconds, cpuSecondsOf, machineLine, spawnUntil } from "./harness.ts";

const MB = 1e6;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CHUNK = 1024 * 1024;

function line(label: string, value: string, note = ""): void {
  console.log(`${label.padEnd(52)} ${value.padStart(12)}${note ? `  ${note}` : ""}`);
}

/**
 * The client's compute alone, one segment at a time, no I/O, through the product's own
 * segment code (lib/grid/workers/segment_work.ts, buffers reused as the
 * pipelines reuse them): per 1 MiB segment, upload = AES-256-CTR + RS 3-of-10
 * + segment and block hashes; download = hash 3 blocks (one parity) + RS
 * decode + segment hash + AES. The download refills its 3 blocks each time
 * (they are decoded in place; a real download receives them). MB/s of plaintext.
 */
async function rawPipelines(bytes: number): Promise<{ up: Rate; down: Rate }> {
  const key = randomBytes(32);
  const k = 3, n = 10, length = CHUNK, size = Math.ceil(length / k);
  const input = new Uint8Array(length);
  crypto.getRandomValues(input.subarray(0, 65536));
  const out = new Uint8Array(n * size);
  const job = (pos: number) => ({ key, pos, k, n, size, input, length, out });
  let m = meter(bytes);
  for (let off = 0; off < bytes; off += length) await encodeWork(job(off));
  const up = m();
  const enc = await encodeWork(job(0));
  const indices = [0, 1, 3], at = 16;
  const src = new Uint8Array(at + k * size);
  const expected = new Uint8Array(k * 32);
  indices.forEach((sh, j) => {
    src.set(out.subarray(sh * size, (sh + 1) * size), at + j * size);
    expected.set(enc.hashes.subarray(sh * 32, sh * 32 + 32), j * 32);
  });
  const blocks = new Uint8Array(src.length);
  m = meter(bytes);
  for (let off = 0; off < bytes; off += length) {
    blocks.set(src);
    const d = await decodeWork(
      { key, pos: 0, k, n, size, length, indices, blocks, at, expected, leaf: enc.leaf },
      true,
    );
    if (!d.ok) throw new Error("raw download: the segment did not verify");
  }
  return { up, down: m() };
}

/** MB/s (wall) and CPU ms per MB (this process, every thread: Web Crypto works on another). */
interface Rate {
  mbs: number;
  cpu: number;
}

/** Start measuring `bytes` of work; the returned function ends it. */
function meter(bytes: number): () => Rate {
  const t0 = performance.now(), c0 = cpuSeconds();
  return () => ({
    mbs: bytes / MB / ((performance.now() - t0) / 1000),
    cpu: (cpuSeconds() - c0) * 1000 / (bytes / MB),
  });
}

/**
 * The primitives those pipelines are made of, 1 MiB calls: AES-256-CTR (Web
 * Crypto, the product's aesCtr), tagged SHA-256 (node:crypto), and the
 * Reed–Solomon 3-of-10 parity into reused blocks. MB/s of input.
 */
async function primitives(bytes: number): Promise<{ aes: Rate; sha: Rate; rs: Rate }> {
  const key = randomBytes(32);
  const size = Math.ceil(CHUNK / 3);
  const seg = new Uint8Array(size * 10);
  crypto.getRandomValues(seg.subarray(0, 65536));
  const data = [0, 1, 2].map((s) => seg.subarray(s * size, (s + 1) * size));
  const parity = Array.from({ length: 7 }, (_, p) => seg.subarray((3 + p) * size, (4 + p) * size));
  const input = seg.subarray(0, 3 * size);
  const rate = async (f: (off: number) => unknown) => {
    const m = meter(bytes);
    for (let off = 0; off < bytes; off += input.length) await f(off);
    return m();
  };
  return {
    aes: await rate((off) => aesCtr(key, new Uint8Array(16), input, off)),
    sha: await rate(() => taggedHash(TAGS.blockHash, input)),
    rs: await rate(() => erasureParity(data, 10, parity)),
  };
}

/**
 * node:tls alone, no HTTP and no storage: `bytes` sent over one loopback
 * connection in 64 KiB writes (as the client hands a PATCH body to its
 * socket) to a bare receiver in another process (scripts/bench/tls_sink.ts,
 * the servers' read path, bytes discarded). CPU ms per MB of the sender
 * (this process, every thread) and of the receiver.
 */
async function tlsAlone(bytes: number): Promise<{ send: number; receive: number }> {
  const sink = await spawnUntil(
    ["run", ...RUN_FLAGS, new URL("./tls_sink.ts", import.meta.url).pathname],
    /listening (\d+)\n/,
  );
  try {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: Number(sink.match[1]),
      rejectUnauthorized: false,
    });
    await new Promise<void>((res, rej) => {
      socket.once("secureConnect", () => res());
      socket.once("error", rej);
    });
    socket.setNoDelay(true);
    const piece = randomBytes(64 * 1024);
    const c0 = cpuSeconds();
    for (let sent = 0; sent < bytes; sent += piece.length) {
      if (!socket.write(piece)) await new Promise((r) => socket.once("drain", r));
    }
    socket.end();
    const [, got, cpu] = await sink.next(/received (\d+) (\S+)\n/);
    const send = (cpuSeconds() - c0) * 1000 / (bytes / MB);
    socket.destroy();
    if (Number(got) !== Math.ceil(bytes / piece.length) * piece.length) {
      throw new Error(`tls_sink received ${got} bytes`);
    }
    return { send, receive: Number(cpu) * 1000 / (bytes / MB) };
  } finally {
    await sink.stop();
  }
}

/** Write + fsync of `bytes` in 1 MiB writes to a file in the temp dir the servers use: MB/s. */
async function diskSync(bytes: number): Promise<Rate> {
  const dir = await Deno.makeTempDir({ prefix: "shoal-bench-disk-" });
  try {
    // As a storage server writes a share: synchronous writes of what one read brought.
    const buf = randomBytes(256 * 1024);
    const m = meter(bytes);
    const f = await Deno.open(`${dir}/f`, { write: true, create: true });
    for (let off = 0; off < bytes; off += buf.length) {
      for (let o = 0; o < buf.length;) o += f.writeSync(buf.subarray(o));
    }
    await f.sync();
    f.close();
    return m();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * `size` bytes: one random MiB over and over (each chunk a view of it; the
 * upload copies what it reads). Unlike generatedSource, no CPU per byte, so
 * the client's CPU figure is the client's (random keys: no two segments'
 * ciphertext is alike).
 */
function patternSource(size: number): { size: number; open(): ReadableStream<Uint8Array> } {
  const pattern = randomBytes(CHUNK);
  return {
    size,
    open: () => {
      let off = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (off >= size) return c.close();
          const n = Math.min(CHUNK, size - off);
          c.enqueue(pattern.subarray(0, n));
          off += n;
        },
      });
    },
  };
}

const STORED = 10 / 3; // bytes the servers store per file byte at 3-of-10
/** The warm-up upload before the measured phases (not counted in them). */
const WARM_UP = 32 * CHUNK;

/** One upload and download through `grid`, with CPU time of this process and the servers per phase. */
async function transfer(
  grid: ReturnType<TestGrid["grid"]>,
  size: number,
  serverPids: number[],
): Promise<{ up: Phase; down: Phase }> {
  const src = patternSource(size);
  const cpu = () => ({
    client: cpuSeconds(),
    servers: cpuSecondsOf(serverPids),
  });
  const c0 = cpu();
  let t0 = performance.now();
  const r = await grid.uploadImmutable(src, { k: 3, n: 10, happy: 7, convergenceSecret: null });
  const upSeconds = (performance.now() - t0) / 1000;
  const c1 = cpu();
  t0 = performance.now();
  // Only counted: the download verifies every block and segment itself, and
  // hashing it here would add the bench's work to the client's CPU figure.
  let got = 0;
  for await (const c of grid.downloadImmutable(r.cap)) got += c.length;
  const downSeconds = (performance.now() - t0) / 1000;
  if (got !== size) throw new Error(`downloaded ${got} bytes, expected ${size}`);
  const c2 = cpu();
  const mb = size / MB;
  const phase = (a: typeof c0, b: typeof c0, seconds: number): Phase => ({
    mbs: mb / seconds,
    client: (b.client - a.client) * 1000 / mb,
    servers: (b.servers - a.servers) * 1000 / mb,
  });
  return { up: phase(c0, c1, upSeconds), down: phase(c1, c2, downSeconds) };
}

/** An upload only (the warm-up): its MB/s and CPU per file MB. */
async function warmUp(
  grid: ReturnType<TestGrid["grid"]>,
  size: number,
  serverPids: number[],
): Promise<Phase> {
  const c0 = cpuSeconds(), s0 = cpuSecondsOf(serverPids), t0 = performance.now();
  await grid.uploadImmutable(patternSource(size), {
    k: 3,
    n: 10,
    happy: 7,
    convergenceSecret: null,
  });
  const mb = size / MB;
  return {
    mbs: mb / ((performance.now() - t0) / 1000),
    client: (cpuSeconds() - c0) * 1000 / mb,
    servers: (cpuSecondsOf(serverPids) - s0) * 1000 / mb,
  };
}

interface Phase {
  /** File MB/s. */
  mbs: number;
  /** CPU ms per file MB: this process (every thread, Workers included) and all servers. */
  client: number;
  servers: number;
}

/** cores / (client + servers CPU seconds per MB): the MB/s this machine's CPU allows. */
function ceiling(p: Phase): number {
  return navigator.hardwareConcurrency / ((p.client + p.servers) / 1000);
}

function phaseLines(label: string, p: Phase, target: number): void {
  line(
    `${label}: client CPU ms per MB`,
    p.client.toFixed(1),
    `(target <= ${target}; every thread, Workers included)`,
  );
  line(
    `${label}: servers' CPU ms per file MB / per stored MB`,
    `${p.servers.toFixed(1)} / ${(p.servers / (label === "upload" ? STORED : 1)).toFixed(1)}`,
    label === "upload"
      ? "(stored MB = 10/3 file MB; target <= 3 per stored MB; the 10 `shoal storage run` processes, all threads, no proxy)"
      : "(per MB served: the k shares read)",
  );
  const c = ceiling(p);
  line(
    `${label}: MB/s beside the CPU ceiling`,
    `${p.mbs.toFixed(0)} / ${c.toFixed(0)}`,
    `(${(p.mbs / c * 100).toFixed(0)}% of cores / total CPU s per MB; aim >= 90%)`,
  );
}

async function run(): Promise<void> {
  const size = Number(Deno.env.get("SHOAL_BENCH_IMMUTABLE_MB") ?? "1024") * 1024 * 1024;
  console.log(`machine: ${machineLine()}`);
  console.log(
    `file: ${(size / MB).toFixed(0)} MB (SHOAL_BENCH_IMMUTABLE_MB=${size / 1024 / 1024}), ` +
      "3-of-10, happy 7, 1 MiB segments, 10 loopback servers",
  );
  const rawBytes = Math.min(size, 256 * 1024 * 1024);
  const g = await TestGrid.start(10);
  const rss0 = Deno.memoryUsage().rss;
  let peak = rss0;
  const timer = setInterval(() => (peak = Math.max(peak, Deno.memoryUsage().rss)), 25);
  try {
    const grid = g.grid();
    // Connections opened on a small file first.
    await grid.uploadImmutable(randomBytes(4 * CHUNK), {
      k: 3,
      n: 10,
      happy: 7,
      convergenceSecret: null,
    });
    const serverPids = g.servers.map((s) => s.proc!.pid);
    // Then the servers' and the client's code warmed up (JIT) on an upload of
    // WARM_UP bytes, measured apart: in fresh processes the first tens of MB
    // cost the servers up to twice the CPU per MB of what follows.
    const warm = await warmUp(grid, Math.min(size, WARM_UP), serverPids);
    // With Workers (the count they get when wanted; the product's default is
    // none for now, lib/grid/workers/pool.ts), then without.
    const count = segmentWorkerCount();
    const workers = new SegmentPool(count);
    const threaded = await workers.threaded();
    workers.close();
    const was = segmentWorkers(count);
    const main = await transfer(grid, size, serverPids);
    const rssMain = peak;
    // The same without Workers (everything on the main thread), a quarter of the size.
    segmentWorkers(0);
    const small = Math.max(64 * 1024 * 1024, Math.floor(size / 4 / CHUNK) * CHUNK);
    const single = await transfer(grid, Math.min(size, small), serverPids);
    segmentWorkers(was);
    clearInterval(timer);
    const { up: rawUp, down: rawDown } = await rawPipelines(rawBytes);
    const disk = await diskSync(rawBytes);
    const prim = await primitives(Math.min(rawBytes, 128 * 1024 * 1024));
    const bareTls = await tlsAlone(rawBytes);
    line(
      "segment Workers",
      threaded ? `${workers.workers}` : "none",
      `(${navigator.hardwareConcurrency} cores; the put/get processes below use the product default: none unless SHOAL_SEGMENT_WORKERS=N)`,
    );
    line(
      "raw upload pipeline (AES-CTR + RS 3-of-10 + hashes)",
      `${rawUp.mbs.toFixed(0)} MB/s`,
      "one at a time, no I/O, the product's segment code and reused buffers",
    );
    line(
      "raw download pipeline (hashes + RS decode + AES)",
      `${rawDown.mbs.toFixed(0)} MB/s`,
      "one at a time, no I/O, the product's segment code and reused buffers",
    );
    // What the client's CPU targets are measured against: the compute alone
    // (no TLS, no protocol) costs this much CPU per MB on this machine.
    line(
      "primitives: AES-256-CTR / SHA-256 / RS parity MB/s",
      `${prim.aes.mbs.toFixed(0)} / ${prim.sha.mbs.toFixed(0)} / ${prim.rs.mbs.toFixed(0)}`,
      `(1 MiB calls; CPU ${prim.aes.cpu.toFixed(2)} / ${prim.sha.cpu.toFixed(2)} / ${
        prim.rs.cpu.toFixed(2)
      } ms per MB, every thread)`,
    );
    line(
      "compute floor, CPU per MB: upload / download",
      `${rawUp.cpu.toFixed(1)} / ${rawDown.cpu.toFixed(1)} ms`,
      `(the raw pipelines, every thread, before TLS and the protocol; client targets <= 6 / <= 4: ${
        rawUp.cpu <= 6 && rawDown.cpu <= 4 ? "above it" : "a target is BELOW it"
      })`,
    );
    // An upload sends 10/3 bytes per file byte; a download receives k/k = 1.
    const floorUp = rawUp.cpu + STORED * bareTls.send;
    line(
      "node:tls alone, CPU per MB: send / receive",
      `${bareTls.send.toFixed(2)} / ${bareTls.receive.toFixed(2)} ms`,
      "(one loopback connection, 64 KiB writes, another process receiving and discarding)",
    );
    line(
      "client floor, CPU per MB: upload / download",
      `${floorUp.toFixed(1)} / ${(rawDown.cpu + bareTls.receive).toFixed(1)} ms`,
      `(compute + node:tls for the 10/3 MB sent / 1 MB received, no HTTP: targets <= 6 / <= 4${
        floorUp > 6 || rawDown.cpu + bareTls.receive > 4 ? ": a target is BELOW the floor" : ""
      })`,
    );
    line(
      "server floor, CPU per stored MB",
      `${(bareTls.receive + disk.cpu).toFixed(1)} ms`,
      `(node:tls receive ${bareTls.receive.toFixed(2)} + write and fsync ${
        disk.cpu.toFixed(2)
      }, alone, no HTTP: target <= 3)`,
    );
    line("upload to 10 servers", `${main.up.mbs.toFixed(0)} MB/s`, "(target >= 60 MB/s)");
    line("download from the fastest 3", `${main.down.mbs.toFixed(0)} MB/s`, "(target >= 100 MB/s)");
    line(
      "warm-up upload before them (not in any figure)",
      `${warm.mbs.toFixed(0)} MB/s`,
      `(${(Math.min(size, WARM_UP) / MB).toFixed(0)} MB to fresh servers: servers ${
        (warm.servers / STORED).toFixed(1)
      } ms per stored MB, client ${warm.client.toFixed(1)} ms/MB; JIT warm-up)`,
    );
    phaseLines("upload", main.up, 6);
    phaseLines("download", main.down, 4);
    line(
      "without Workers: upload / download MB/s",
      `${single.up.mbs.toFixed(0)} / ${single.down.mbs.toFixed(0)}`,
      `(${(single.up.mbs > 0 ? main.up.mbs / single.up.mbs : 0).toFixed(2)}x / ${
        (main.down.mbs / single.down.mbs).toFixed(2)
      }x with them; ${(Math.min(size, small) / MB).toFixed(0)} MB)`,
    );
    line(
      "without Workers: client CPU ms per MB, up / down",
      `${single.up.client.toFixed(1)} / ${single.down.client.toFixed(1)}`,
      `(servers ${single.up.servers.toFixed(1)} / ${single.down.servers.toFixed(1)})`,
    );
    line(
      "peak RSS of this bench process: with Workers / all",
      `${(rssMain / MB).toFixed(0)} / ${(peak / MB).toFixed(0)} MB`,
      `(start ${(rss0 / MB).toFixed(0)} MB; harness included, every phase in one process)`,
    );
    line(
      "disk write + fsync (servers' temp dir)",
      `${disk.mbs.toFixed(0)} MB/s`,
      `(upload ceiling ~${(disk.mbs / STORED).toFixed(0)} MB/s: servers store 10/3 bytes per byte)`,
    );
    line("CPU cores", `${navigator.hardwareConcurrency}`, "servers share them");
  } finally {
    clearInterval(timer);
    await g.close();
  }
  await commandLine(size);
  console.log(`machine at the end: ${machineLine()}`);
}

interface Timed {
  seconds: number;
  /** Peak resident set (VmHWM) of the process, bytes; NaN where /proc is missing. */
  peak: number;
  /** CPU seconds (user + system, every thread) last seen before the process exited (20 ms polls). */
  cpu: number;
  stdout: string;
}

/** Run `shoal ARGS` (as users do: its own process, the program's V8 flags), timing it and its peak RSS. */
async function timedShoal(args: string[]): Promise<Timed> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let peak = NaN;
  let cpu = NaN;
  // VmHWM only grows; read it until the process exits (every 20 ms).
  const poll = setInterval(() => {
    const c = cpuSeconds(child.pid);
    if (!Number.isNaN(c)) cpu = c;
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`));
      if (m) peak = Math.max(Number.isNaN(peak) ? 0 : peak, Number(m[1]) * 1024);
    } catch { /* exited, or no /proc */ }
  }, 20);
  const out = await child.output();
  clearInterval(poll);
  const seconds = (performance.now() - t0) / 1000;
  if (!out.success) {
    throw new Error(
      `shoal ${args.slice(0, 2).join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { seconds, peak, cpu, stdout: new TextDecoder().decode(out.stdout).trim() };
}

/** SHA-256 of a file, streamed. */
async function fileDigest(path: string): Promise<string> {
  const h = createHash("sha256");
  const f = await Deno.open(path);
  for await (const c of f.readable) h.update(c);
  return h.digest("hex");
}

/**
 * The product path: a grid joined through the command line (10 server
 * processes, an operator, a client node), then `shoal client put FILE` and
 * `shoal client get CAP OUT`, each its own process, timed from spawn to exit
 * (start-up included) with its peak RSS.
 */
async function commandLine(size: number): Promise<void> {
  // Servers refresh their grid view at the product's default interval (60 s),
  // not the tests' 1 s: each refresh costs a server ~25 ms of CPU.
  const jg = await startJoinedGrid({
    servers: 10,
    shares: { k: 3, n: 10, happy: 7 },
    refreshInterval: 60,
  });
  try {
    const file = `${jg.root}/source.bin`;
    const out = `${jg.root}/fetched.bin`;
    const f = await Deno.open(file, { write: true, create: true });
    await generatedSource(size, randomBytes(32)).open().pipeTo(f.writable);
    const pids = jg.servers.map((s) => s.proc!.pid);
    const serversCpu = () => cpuSecondsOf(pids);
    // The fresh servers warmed up (JIT) by a put of WARM_UP bytes first, not counted.
    const warmFile = `${jg.root}/warm.bin`;
    const wf = await Deno.open(warmFile, { write: true, create: true });
    await generatedSource(Math.min(size, WARM_UP), randomBytes(32)).open().pipeTo(wf.writable);
    const w0 = serversCpu();
    await timedShoal(["client", "put", "--no-convergence", "--dir", jg.clientDir, warmFile]);
    const warmServers = (serversCpu() - w0) * 1000 / (Math.min(size, WARM_UP) / MB);
    await Deno.remove(warmFile);
    const s0 = serversCpu();
    const put = await timedShoal([
      "client",
      "put",
      "--no-convergence",
      "--dir",
      jg.clientDir,
      file,
    ]);
    const s1 = serversCpu();
    const capFile = `${jg.root}/source.cap`;
    await Deno.writeTextFile(capFile, put.stdout, { mode: 0o600 });
    const get = await timedShoal([
      "client",
      "get",
      "--dir",
      jg.clientDir,
      "--cap-file",
      capFile,
      "CAP",
      out,
    ]);
    const s2 = serversCpu();
    if ((await fileDigest(out)) !== (await fileDigest(file))) {
      throw new Error("client get returned other bytes than client put stored");
    }
    const mb = size / MB;
    const phase = (t: Timed, servers: number): Phase => ({
      mbs: mb / t.seconds,
      client: t.cpu * 1000 / mb,
      servers: servers * 1000 / mb,
    });
    const rss = (t: Timed) => `${(t.peak / MB).toFixed(0)}`;
    const report = (label: string, t: Timed, p: Phase, target: number, cpuTarget: number) => {
      const c = ceiling(p);
      line(
        `${label} (its own process)`,
        `${p.mbs.toFixed(0)} MB/s`,
        `(target >= ${target} MB/s; start-up included)`,
      );
      line(
        `  CPU ms per MB: client / servers`,
        `${p.client.toFixed(1)} / ${p.servers.toFixed(1)}`,
        `(client target <= ${cpuTarget}${
          label.includes("put")
            ? `; servers ${(p.servers / STORED).toFixed(1)} per stored MB, target <= 3`
            : ""
        })`,
      );
      line(
        `  MB/s beside the CPU ceiling`,
        `${p.mbs.toFixed(0)} / ${c.toFixed(0)}`,
        `(${(p.mbs / c * 100).toFixed(0)}%; aim >= 90%)`,
      );
      line(`  peak RSS`, `${rss(t)} MB`, "(target < 200 MB)");
    };
    line(
      "warm-up `client put` first (not counted)",
      `${(Math.min(size, WARM_UP) / MB).toFixed(0)} MB`,
      `(fresh servers: ${(warmServers / STORED).toFixed(1)} ms per stored MB)`,
    );
    report("shoal client put FILE", put, phase(put, s1 - s0), 60, 6);
    report("shoal client get CAP OUT", get, phase(get, s2 - s1), 100, 4);
  } finally {
    await jg.close();
  }
}

export const section: BenchSection = {
  name: "immutable",
  title: "Immutable files: 1 GiB upload/download on 10 loopback servers",
  run,
};

if (import.meta.main) await run();
