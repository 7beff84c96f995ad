/**
 * Bench section `storage`: the storage client against a real `shoal storage run`
 * process on 127.0.0.1, beside raw loopback TCP and TLS measured in the same run
 * against a separate sink/source process (node:net / node:tls client, Deno
 * listener, the same stacks the storage client and server use).
 *
 * - small read-test-write requests/s: one client on one connection, and 8
 *   clients (one connection each) at once; read-only calls (test + read
 *   vector, no write) and calls that write 64 bytes (durable: fsync + rename);
 * - MB/s to upload a 256 MiB immutable share in 1 MiB PATCHes and to download it
 *   in 1 MiB ranged reads, sequentially on one connection;
 * - raw TCP and TLS MB/s for the same 256 MiB in 1 MiB writes, each direction.
 * Every figure is the best of 3 rounds (the machine is small and noisy).
 * Also shown for context: disk write + fsync of 256 MiB (the server makes an
 * upload durable before acknowledging it) and the client against a bare Deno.serve
 * answering without a store (the server's former HTTP stack, for comparison).
 * 1 MB = 10^6 bytes. Targets (issue 3): transfers >= 70% of raw TLS, >= 3,000
 * small requests/s on one connection.
 */
import type { BenchSection } from "./sections.ts";
import { freshSlot } from "./slots.ts";
import { spawnUntil } from "./harness.ts";
import { RUN_FLAGS } from "../../lib/version.ts";
import net from "node:net";
import tls from "node:tls";
import { createStorageNode, loadStorageNode, storageUrlText } from "../../lib/roles/storage/mod.ts";
import { generateTlsIdentity } from "../../lib/storage/tls.ts";
import { StorageClient } from "../../lib/storage/client.ts";
import { parseStorageUrl } from "../../lib/storage/url.ts";

const SHARE = 256 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const SMALL_SECONDS = 2;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;

function line(label: string, value: string, note = ""): void {
  console.log(`${label.padEnd(52)} ${value.padStart(12)}${note ? `  ${note}` : ""}`);
}

const ROUNDS = 3;

/** Best (highest) of ROUNDS runs of `fn`, which returns a rate (MB/s, requests/s). */
async function best(fn: () => Promise<number>): Promise<number> {
  let b = 0;
  for (let r = 0; r < ROUNDS; r++) b = Math.max(b, await fn());
  return b;
}

function target(x: number, raw: number, durable?: number): string {
  const d = durable ? `; ${(x / durable * 100).toFixed(0)}% of the bare durable receiver` : "";
  return `(${(x / raw * 100).toFixed(0)}% of raw TLS${d}; target >= 70% of raw TLS)`;
}

function pct(x: number, raw: number): string {
  return `(${(x / raw * 100).toFixed(0)}% of raw TLS)`;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Raw baseline server, in its own process: on each connection the first byte
 * selects 'U' (read N bytes, then answer one byte), 'W' (the same, writing
 * the bytes to a temp file as they arrive and fsyncing before the answer) or
 * 'D' (send N bytes); 8 bytes of N follow.
 */
const RAW_SERVER = `
const [certPem, keyPem] = JSON.parse(Deno.args[0]);
async function handle(conn) {
  const hdr = new Uint8Array(9); let got = 0;
  while (got < 9) { const n = await conn.read(hdr.subarray(got)); if (n === null) return; got += n; }
  const len = Number(new DataView(hdr.buffer).getBigUint64(1));
  if (hdr[0] === 85) {
    const buf = new Uint8Array(1 << 20); let left = len;
    while (left > 0) { const n = await conn.read(buf); if (n === null) return; left -= n; }
    await conn.write(new Uint8Array([1]));
  } else if (hdr[0] === 87) {
    // 'W': receive and write to a file, fsync, then answer: a bare durable receiver.
    const path = Deno.makeTempFileSync({ prefix: "shoal-bench-raw-" });
    const f = Deno.openSync(path, { write: true });
    const buf = new Uint8Array(1 << 20); let left = len;
    while (left > 0) {
      const n = await conn.read(buf); if (n === null) break; left -= n;
      for (let o = 0; o < n;) o += f.writeSync(buf.subarray(o, n));
    }
    f.syncSync(); f.close(); Deno.removeSync(path);
    await conn.write(new Uint8Array([1]));
  } else {
    const chunk = new Uint8Array(1 << 20); let left = len;
    while (left > 0) { const part = chunk.subarray(0, Math.min(left, chunk.length)); let o = 0;
      while (o < part.length) o += await conn.write(part.subarray(o)); left -= part.length; }
  }
  conn.close();
}
async function loop(l) { for await (const c of l) handle(c).catch(() => {}); }
// For comparison: a bare Deno.serve (the storage server's former HTTP stack) without a store.
const MiB = new Uint8Array(1 << 20).fill(9);
const REQUIRED_NONE = new Uint8Array([0xa1, 0x68, ...new TextEncoder().encode("required"), 0x80]);
const http = Deno.serve({ hostname: "127.0.0.1", port: 0, cert: certPem, key: keyPem, onListen() {} }, async (req) => {
  if (req.method === "PATCH") {
    const r = req.body.getReader(); while (!(await r.read()).done) {}
    return new Response(REQUIRED_NONE, { headers: { "content-type": "application/cbor" } });
  }
  return new Response(MiB, { status: 206, headers: { "content-range": "bytes 0-1048575/1048576" } });
});
// The storage server's own TLS stack (node:tls, TCP_NODELAY) as a raw receiver: 'U' only.
const nodeTls = await import("node:tls");
const nts = nodeTls.createServer({ cert: certPem, key: keyPem, noDelay: true }, (s) => {
  let hdr = null; let left = -1;
  s.on("data", (d) => {
    if (left < 0) { hdr = d; left = Number(new DataView(d.buffer, d.byteOffset).getBigUint64(1)) - (d.length - 9); }
    else left -= d.length;
    if (left <= 0) s.end(new Uint8Array([1]));
  });
  s.on("error", () => {});
});
await new Promise((r) => nts.listen(0, "127.0.0.1", r));
const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const tl = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: certPem, key: keyPem, alpnProtocols: ["http/1.1"] });
console.log("ports " + tcp.addr.port + " " + tl.addr.port + " " + http.addr.port + " " + nts.address().port);
loop(tcp); loop(tl);
`;

function connectRaw(kind: "tcp" | "tls", port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = kind === "tcp"
      ? net.connect({ host: "127.0.0.1", port }, () => resolve(s))
      : tls.connect({
        host: "127.0.0.1",
        port,
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      }, () => resolve(s));
    s.once("error", reject);
    s.setNoDelay(true);
  });
}

function header(cmd: "U" | "D" | "W", n: number): Uint8Array {
  const h = new Uint8Array(9);
  h[0] = cmd.charCodeAt(0);
  new DataView(h.buffer).setBigUint64(1, BigInt(n));
  return h;
}

/** MB/s sending SHARE bytes in CHUNK writes (waiting for the server's ack at the end). */
async function rawUpload(
  kind: "tcp" | "tls",
  port: number,
  data: Uint8Array,
  cmd: "U" | "W" = "U",
): Promise<number> {
  const s = await connectRaw(kind, port);
  const t0 = performance.now();
  const acked = new Promise<void>((resolve) => s.once("data", () => resolve()));
  s.write(header(cmd, data.length));
  for (let o = 0; o < data.length; o += CHUNK) {
    if (!s.write(data.subarray(o, o + CHUNK))) await new Promise((r) => s.once("drain", r));
  }
  await acked;
  const dt = performance.now() - t0;
  s.destroy();
  return data.length / 1e6 / (dt / 1000);
}

/** MB/s receiving SHARE bytes, copied into one buffer (as the client's body assembly does). */
async function rawDownload(kind: "tcp" | "tls", port: number, n: number): Promise<number> {
  const s = await connectRaw(kind, port);
  const out = new Uint8Array(n);
  let got = 0;
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    s.on("data", (d: Uint8Array) => {
      out.set(d, got);
      got += d.length;
      if (got >= n) resolve();
    });
    s.once("error", reject);
    s.write(header("D", n));
  });
  const dt = performance.now() - t0;
  s.destroy();
  return n / 1e6 / (dt / 1000);
}

const secret = (b: number) => new Uint8Array(32).fill(b);

/** Requests/s of `call` run back to back for `seconds` on each of `clients`. */
async function rate(
  clients: StorageClient[],
  call: (c: StorageClient, i: number) => Promise<unknown>,
  seconds = SMALL_SECONDS,
) {
  const end = performance.now() + seconds * 1000;
  let count = 0;
  const t0 = performance.now();
  await Promise.all(clients.map(async (c, i) => {
    while (performance.now() < end) {
      await call(c, i);
      count++;
    }
  }));
  return count / ((performance.now() - t0) / 1000);
}

async function run(): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "shoal-bench-storage-" });
  const stops: (() => Promise<void>)[] = [];
  const clients: StorageClient[] = [];
  try {
    // Raw baseline process.
    const id = await generateTlsIdentity(["127.0.0.1"]);
    const raw = await spawnUntil(
      ["eval", RAW_SERVER, JSON.stringify([id.certPem, id.keyPem])],
      /ports (\d+) (\d+) (\d+) (\d+)\n/,
    );
    stops.push(raw.stop);
    const tcpPort = Number(raw.match[1]);
    const tlsPort = Number(raw.match[2]);
    const httpPort = Number(raw.match[3]);
    const nodeTlsPort = Number(raw.match[4]);

    // Storage node: created with the library (same as `shoal storage create`), run with the CLI.
    const dir = `${tmp}/node`;
    await createStorageNode({ dir, listen: `127.0.0.1:${freePort()}`, reservedSpace: "0" });
    const server = await spawnUntil(
      ["run", ...RUN_FLAGS, MAIN, "storage", "run", "--dir", dir],
      /listening on (\S+)\n/,
    );
    stops.push(server.stop);
    const url = parseStorageUrl(storageUrlText(await loadStorageNode(dir)));
    const mk = () => {
      const c = new StorageClient(url, { maxConnections: 1, maxResponseBytes: 2 * CHUNK });
      clients.push(c);
      return c;
    };

    const data = new Uint8Array(SHARE);
    for (let o = 0; o < SHARE; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));

    console.log(
      `loopback, 1 MB = 10^6 bytes; small requests: best of ${ROUNDS} × ${SMALL_SECONDS} s; ${Deno.build.os}`,
    );
    // Warm up both paths.
    await rawUpload("tls", tlsPort, data.subarray(0, 32 * CHUNK));
    await rawDownload("tls", tlsPort, 32 * CHUNK);
    const rawTcpUp = await best(() => rawUpload("tcp", tcpPort, data));
    const rawTcpDown = await best(() => rawDownload("tcp", tcpPort, SHARE));
    const rawTlsUp = await best(() => rawUpload("tls", tlsPort, data));
    const rawNodeTlsUp = await best(() => rawUpload("tls", nodeTlsPort, data));
    const rawDurableUp = await best(() => rawUpload("tls", tlsPort, data, "W"));
    const rawTlsDown = await best(() => rawDownload("tls", tlsPort, SHARE));
    line("raw TCP upload, 256 MiB in 1 MiB writes", `${rawTcpUp.toFixed(0)} MB/s`);
    line("raw TCP download, 256 MiB", `${rawTcpDown.toFixed(0)} MB/s`);
    line("raw TLS upload, 256 MiB in 1 MiB writes", `${rawTlsUp.toFixed(0)} MB/s`);
    line(
      "raw TLS upload into a node:tls receiver",
      `${rawNodeTlsUp.toFixed(0)} MB/s`,
      "(the storage server's TLS stack: its ceiling for uploads)",
    );
    line(
      "raw TLS upload, written to disk + fsync as received",
      `${rawDurableUp.toFixed(0)} MB/s`,
      `(${(rawDurableUp / rawTlsUp * 100).toFixed(0)}% of raw TLS: a bare durable receiver)`,
    );
    line("raw TLS download, 256 MiB", `${rawTlsDown.toFixed(0)} MB/s`);

    // Disk: the storage server makes an upload durable (write, fsync) before acknowledging it.
    const file = `${tmp}/disk-baseline`;
    const t = performance.now();
    const f = await Deno.open(file, { write: true, create: true });
    for (let o = 0; o < SHARE; o += CHUNK) {
      const part = data.subarray(o, o + CHUNK);
      for (let w = 0; w < part.length;) w += await f.write(part.subarray(w));
    }
    await f.sync();
    f.close();
    const diskMBs = SHARE / 1e6 / ((performance.now() - t) / 1000);
    await Deno.remove(file);
    line("disk write + fsync, 256 MiB in 1 MiB writes", `${diskMBs.toFixed(0)} MB/s`);

    // For comparison: the same client against a bare Deno.serve answering without a store.
    const ceiling = new StorageClient(
      { pin: id.pin, swissnum: url.swissnum, locations: [`127.0.0.1:${httpPort}`] },
      { maxConnections: 1, maxResponseBytes: 2 * CHUNK },
    );
    clients.push(ceiling);
    const siC = new Uint8Array(16);
    const ceilUp = await best(async () => {
      const t = performance.now();
      for (let o = 0; o < SHARE; o += CHUNK) {
        await ceiling.upload(siC, 0, secret(9), o, data.subarray(o, o + CHUNK));
      }
      return SHARE / 1e6 / ((performance.now() - t) / 1000);
    });
    const ceilDown = await best(async () => {
      const t = performance.now();
      for (let o = 0; o < SHARE; o += CHUNK) await ceiling.readImmutable(siC, 0, 0, CHUNK);
      return SHARE / 1e6 / ((performance.now() - t) / 1000);
    });
    line(
      "client vs bare Deno.serve (former stack), no store: 1 MiB PATCHes",
      `${ceilUp.toFixed(0)} MB/s`,
      pct(ceilUp, rawTlsUp),
    );
    line(
      "client vs bare Deno.serve (former stack), no store: 1 MiB GETs",
      `${ceilDown.toFixed(0)} MB/s`,
      pct(ceilDown, rawTlsDown),
    );

    // Small requests.
    const we = { writeEnabler: secret(1), leaseRenew: secret(2), leaseCancel: secret(3) };
    const one = mk();
    const eight = Array.from({ length: 8 }, mk);
    const slots = await Promise.all(
      Array.from({ length: 9 }, () => freshSlot(one.serverId, we.writeEnabler)),
    );
    const slotOf = (i: number) => slots[i].si;
    const payload = new Uint8Array(64).fill(7);
    for (let i = 0; i < 9; i++) {
      const proof = { ...we, slotProof: slots[i].proof };
      await (i === 0 ? one : eight[i - 1]).readTestWrite(slotOf(i), proof, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: payload }],
          newLength: null,
        }],
        readVector: [],
      });
    }
    const readOnly = (c: StorageClient, i: number) =>
      c.readTestWrite(slotOf(i), we, {
        testWriteVectors: [{
          share: 0,
          test: [{ offset: 0, size: 4, specimen: payload.subarray(0, 4) }],
          write: [],
          newLength: null,
        }],
        readVector: [{ offset: 0, size: 32 }],
      });
    const writing = (c: StorageClient, i: number) =>
      c.readTestWrite(slotOf(i), we, {
        testWriteVectors: [{
          share: 0,
          test: [{ offset: 0, size: 4, specimen: payload.subarray(0, 4) }],
          write: [{ offset: 0, data: payload }],
          newLength: null,
        }],
        readVector: [],
      });
    // Warm up the JIT on both ends for each kind of call before timing it.
    await rate([one], (c) => readOnly(c, 0), 0.5);
    await rate([one], (c) => writing(c, 0), 0.5);
    await rate([one], (c) => c.version(), 0.5);
    // Best of ROUNDS, like the transfers: the machine is small and noisy.
    const r1 = await best(() => rate([one], (c) => readOnly(c, 0)));
    line("read-test-write, read only, 1 connection", `${r1.toFixed(0)} req/s`, "(target >= 3000)");
    const r8 = await best(() => rate(eight, (c, i) => readOnly(c, i + 1)));
    line("read-test-write, read only, 8 clients", `${r8.toFixed(0)} req/s`);
    const w1 = await best(() => rate([one], (c) => writing(c, 0)));
    line("read-test-write, 64-byte write (fsync), 1 connection", `${w1.toFixed(0)} req/s`);
    const w8 = await best(() => rate(eight, (c, i) => writing(c, i + 1)));
    line("read-test-write, 64-byte write (fsync), 8 clients", `${w8.toFixed(0)} req/s`);
    const v1 = await best(() => rate([one], (c) => c.version()));
    line("GET /version, 1 connection", `${v1.toFixed(0)} req/s`);
    if (one.openConnections !== 1) throw new Error("the client did not keep one connection");

    // Large transfers: ROUNDS shares (one storage index each), best round.
    const up = { upload: secret(4), leaseRenew: secret(2), leaseCancel: secret(3) };
    const sis = Array.from({ length: ROUNDS }, (_, r) => new Uint8Array(16).fill(42 + r));
    let round = 0;
    const upMBs = await best(async () => {
      const si = sis[round++];
      await one.allocate(si, up, { shareNumbers: [0], allocatedSize: SHARE });
      const t = performance.now();
      for (let o = 0; o < SHARE; o += CHUNK) {
        await one.upload(si, 0, up.upload, o, data.subarray(o, o + CHUNK));
      }
      return SHARE / 1e6 / ((performance.now() - t) / 1000);
    });
    line(
      "upload 256 MiB share, 1 MiB PATCHes",
      `${upMBs.toFixed(0)} MB/s`,
      target(upMBs, rawTlsUp, rawDurableUp),
    );
    round = 0;
    const downMBs = await best(async () => {
      const si = sis[round++];
      const t = performance.now();
      let bad = false;
      for (let o = 0; o < SHARE; o += CHUNK) {
        const got = await one.readImmutable(si, 0, o, CHUNK);
        if (got.length !== CHUNK || got[0] !== data[o] || got[CHUNK - 1] !== data[o + CHUNK - 1]) {
          bad = true;
        }
      }
      const mbs = SHARE / 1e6 / ((performance.now() - t) / 1000);
      if (bad) throw new Error("downloaded share differs from the upload");
      return mbs;
    });
    line(
      "download 256 MiB share, 1 MiB ranged GETs",
      `${downMBs.toFixed(0)} MB/s`,
      target(downMBs, rawTlsDown),
    );

    // The same with 4 requests in flight on 4 connections (as a downloader can do).
    const four = new StorageClient(url, { maxConnections: 4, maxResponseBytes: 2 * CHUNK });
    clients.push(four);
    const inFlight = async (fn: (o: number) => Promise<unknown>) => {
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < SHARE) {
          const o = next;
          next += CHUNK;
          await fn(o);
        }
      }));
    };
    const sis4 = Array.from({ length: ROUNDS }, (_, r) => new Uint8Array(16).fill(142 + r));
    round = 0;
    const up4 = await best(async () => {
      const si = sis4[round++];
      await four.allocate(si, up, { shareNumbers: [0], allocatedSize: SHARE });
      const t = performance.now();
      await inFlight((o) => four.upload(si, 0, up.upload, o, data.subarray(o, o + CHUNK)));
      return SHARE / 1e6 / ((performance.now() - t) / 1000);
    });
    line(
      "upload 256 MiB share, 4 PATCHes in flight",
      `${up4.toFixed(0)} MB/s`,
      target(up4, rawTlsUp, rawDurableUp),
    );
    round = 0;
    const down4 = await best(async () => {
      const si = sis4[round++];
      const t = performance.now();
      await inFlight((o) => four.readImmutable(si, 0, o, CHUNK));
      return SHARE / 1e6 / ((performance.now() - t) / 1000);
    });
    line(
      "download 256 MiB share, 4 GETs in flight",
      `${down4.toFixed(0)} MB/s`,
      target(down4, rawTlsDown),
    );
  } finally {
    for (const c of clients) c.close();
    for (const s of stops.reverse()) await s();
    await Deno.remove(tmp, { recursive: true });
  }
}

export const section: BenchSection = {
  name: "storage",
  title: "storage protocol: pinned TLS client vs. a real storage server process",
  run,
};

if (import.meta.main) await run();
