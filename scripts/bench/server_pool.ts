/**
 * Benchmark helper process: serves K storage stores on K loopback ports in ONE
 * process, so that 100- or 250-server grids fit on a small machine. Started by
 * scripts/bench/harness.ts; not part of the product.
 *
 *   deno run -A scripts/bench/server_pool.ts --count K --root DIR
 *   deno run -A scripts/bench/server_pool.ts --echo K
 *
 * Each store is the real thing: its own ShareStore under DIR/s<i>, its own TLS
 * identity and swissnum, createStorageHandler + serveStorage on 127.0.0.1:0.
 * Each store also gets a byte-counting TCP front on a second port that
 * forwards to the TLS port unchanged (TLS passes through), so the bytes a
 * client puts on the wire can be counted exactly. Once all are up it prints,
 * one line per store:
 *
 *   url <i> <storage URL, direct TLS port> <storage URL, counted front port>
 *
 * then `ready`. On stdin, `stats` prints `stats <JSON>`: per store the
 * requests handled and the front's connections, bytes in and bytes out;
 * `reset` zeroes them (prints `reset`). SIGTERM or end of stdin: stop.
 *
 * `--serve deno-serve`: serve each store with a bare `Deno.serve` (what
 * serveStorage used before it moved off Deno.serve, docs/performance.md §5.1)
 * instead of serveStorage, for before/after comparisons. Deno.serve over TLS
 * leaves Nagle's algorithm on, so a response written in more than one piece
 * (bodies over ~400 bytes) waits for the client's delayed ACK (~40 ms).
 * `--serve deno` and `--serve node-https` (the harness's names) both mean the
 * product path, serveStorage.
 *
 * `--echo K`: raw baseline instead, K TLS listeners that echo every byte
 * (prints `echo <port>...`), for the raw loopback TLS latency figure.
 */
import { parseArgs } from "node:util";
import {
  createStorageHandler,
  formatStorageUrl,
  generateTlsIdentity,
  serveStorage,
  ShareStore,
  type StorageServer,
  SWISSNUM_BYTES,
} from "../../lib/storage/mod.ts";

interface Stats {
  requests: number;
  connections: number;
  bytesIn: number;
  bytesOut: number;
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    count: { type: "string" },
    root: { type: "string" },
    echo: { type: "string" },
    serve: { type: "string", default: "deno" },
  },
});

const listeners: Deno.Listener[] = [];
const servers: Pick<StorageServer, "shutdown">[] = [];

/** A bare Deno.serve over TLS (the storage server before §5.1; see `--serve deno-serve`). */
function serveDenoServe(
  certPem: string,
  keyPem: string,
  handler: (req: Request) => Promise<Response>,
): { port: number; shutdown(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: certPem, key: keyPem, onListen() {} },
    handler,
  );
  return { port: server.addr.port, shutdown: () => server.shutdown() };
}

async function pipeCounting(
  from: Deno.Conn,
  to: Deno.Conn,
  count: (n: number) => void,
): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      count(n);
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  } catch { /* connection closed */ }
  try {
    to.closeWrite();
  } catch { /* gone */ }
}

/** Forward every connection on a new loopback port to `targetPort`, counting bytes. */
function countingFront(targetPort: number, s: Stats): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listeners.push(l);
  (async () => {
    for await (const c of l) {
      s.connections++;
      c.setNoDelay(true);
      (async () => {
        let up: Deno.TcpConn;
        try {
          up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        } catch {
          c.close();
          return;
        }
        up.setNoDelay(true);
        await Promise.all([
          pipeCounting(c, up, (n) => s.bytesIn += n),
          pipeCounting(up, c, (n) => s.bytesOut += n),
        ]);
        for (const x of [c, up]) {
          try {
            x.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  return (l.addr as Deno.NetAddr).port;
}

async function echo(k: number): Promise<void> {
  const id = await generateTlsIdentity(["127.0.0.1"]);
  const ports: number[] = [];
  for (let i = 0; i < k; i++) {
    const l = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: id.certPem,
      key: id.keyPem,
      alpnProtocols: ["http/1.1"],
    });
    listeners.push(l);
    ports.push((l.addr as Deno.NetAddr).port);
    (async () => {
      for await (const c of l) {
        (async () => {
          const buf = new Uint8Array(64 * 1024);
          try {
            for (;;) {
              const n = await c.read(buf);
              if (n === null) break;
              let off = 0;
              while (off < n) off += await c.write(buf.subarray(off, n));
            }
          } catch { /* closed */ }
          try {
            c.close();
          } catch { /* closed */ }
        })();
      }
    })().catch(() => {});
  }
  console.log(`echo ${ports.join(" ")}`);
}

async function pool(k: number, root: string): Promise<Stats[]> {
  const stats: Stats[] = Array.from({ length: k }, () => ({
    requests: 0,
    connections: 0,
    bytesIn: 0,
    bytesOut: 0,
  }));
  const lines: string[] = new Array(k);
  const log = (l: string) => console.error(`server_pool: ${l}`);
  await Promise.all(stats.map(async (s, i) => {
    const id = await generateTlsIdentity(["127.0.0.1"]);
    const swissnum = crypto.getRandomValues(new Uint8Array(SWISSNUM_BYTES));
    const store = await ShareStore.open({ root: `${root}/s${i}` });
    const handler = createStorageHandler(store, { swissnum, serverId: id.pin, log });
    const counted = Object.assign((req: Request) => {
      s.requests++;
      return handler(req);
    }, {
      // Lets serveStorage's shutdown end waiting requests (slot-watch long polls).
      close: () => (handler as { close?: () => void }).close?.(),
    });
    let port: number;
    if (values.serve === "deno-serve") {
      const server = serveDenoServe(id.certPem, id.keyPem, counted);
      servers.push(server);
      port = server.port;
    } else {
      const server = serveStorage({
        hostname: "127.0.0.1",
        port: 0,
        certPem: id.certPem,
        keyPem: id.keyPem,
        handler: counted,
      });
      servers.push(server);
      port = server.addr.port;
    }
    const front = countingFront(port, s);
    const url = (port: number) =>
      formatStorageUrl({ pin: id.pin, swissnum, locations: [`127.0.0.1:${port}`] });
    lines[i] = `url ${i} ${url(port)} ${url(front)}`;
  }));
  console.log(lines.join("\n"));
  return stats;
}

async function stop(): Promise<never> {
  for (const l of listeners) {
    try {
      l.close();
    } catch { /* closed */ }
  }
  await Promise.all(servers.map((s) => s.shutdown(1000)));
  Deno.exit(0);
}

Deno.addSignalListener("SIGTERM", () => void stop());

let stats: Stats[] = [];
if (values.echo) {
  await echo(Number(values.echo));
} else {
  const k = Number(values.count);
  if (!Number.isInteger(k) || k < 1 || !values.root) {
    console.error("usage: server_pool.ts --count K --root DIR | --echo K");
    Deno.exit(2);
  }
  stats = await pool(k, values.root);
}
console.log("ready");

const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
let buf = "";
for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  buf += value;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const cmd = buf.slice(0, nl).trim();
    buf = buf.slice(nl + 1);
    if (cmd === "stats") console.log(`stats ${JSON.stringify(stats)}`);
    else if (cmd === "reset") {
      for (const s of stats) {
        s.requests =
          s.connections =
          s.bytesIn =
          s.bytesOut =
            0;
      }
      console.log("reset");
    }
  }
}
await stop();
