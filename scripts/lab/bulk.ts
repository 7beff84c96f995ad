/**
 * The lab's raw baseline (docs/lab.md §4), run inside a client host's namespace: bulk TLS
 * transfers to the relays' bulk endpoints (scripts/lab/relay.ts `--bulk`) on server hosts, over the
 * same emulated links (tbf rate limits, relay delay) as the grid's traffic. Prints one JSON line.
 *
 *   deno run -A scripts/lab/bulk.ts --mode rtt  --to 198.18.0.10:7101 [--count 10]
 *       median and all TLS round trips of 1 byte and its 1-byte answer, on one connection
 *   deno run -A scripts/lab/bulk.ts --mode up   --to A:P,B:P,... --bytes N
 *       N bytes in all, split evenly over one connection per target, sent in parallel
 *   deno run -A scripts/lab/bulk.ts --mode down --to A:P,B:P,... --bytes N
 *       N bytes in all, each target sending its part in parallel
 * Times exclude the TCP and TLS handshakes (connections are opened first).
 */
import tls from "node:tls";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    mode: { type: "string" },
    to: { type: "string" },
    bytes: { type: "string", default: "0" },
    count: { type: "string", default: "10" },
  },
});
const targets = (values.to ?? "").split(",").filter(Boolean).map((t) => {
  const i = t.lastIndexOf(":");
  return { host: t.slice(0, i), port: Number(t.slice(i + 1)) };
});

function connect(t: { host: string; port: number }): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect(
      { host: t.host, port: t.port, rejectUnauthorized: false },
      () => resolve(s),
    );
    s.setNoDelay(true);
    s.once("error", reject);
  });
}

function header(mode: "U" | "D", n: number): Uint8Array {
  const h = new Uint8Array(9);
  h[0] = mode.charCodeAt(0);
  new DataView(h.buffer).setBigUint64(1, BigInt(n));
  return h;
}

/** Resolves when `n` bytes have arrived on `s`. */
function receive(s: tls.TLSSocket, n: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const on = (d: Uint8Array) => {
      got += d.length;
      if (got >= n) {
        s.off("data", on);
        resolve();
      }
    };
    s.on("data", on);
    s.once("error", reject);
  });
}

function send(s: tls.TLSSocket, n: number): Promise<void> {
  const block = new Uint8Array(1 << 20);
  return new Promise((resolve) => {
    let left = n;
    const go = () => {
      while (left > 0) {
        const k = Math.min(block.length, left);
        left -= k;
        if (!s.write(block.subarray(0, k))) return void s.once("drain", go);
      }
      resolve();
    };
    go();
  });
}

const socks = await Promise.all(targets.map(connect));
const total = Number(values.bytes);
const part = Math.floor(total / Math.max(1, socks.length));
let out: Record<string, unknown>;
if (values.mode === "rtt") {
  const s = socks[0];
  const rtts: number[] = [];
  for (let i = 0; i < Number(values.count); i++) {
    const t0 = performance.now();
    const got = receive(s, 1);
    s.write(header("U", 1));
    s.write(new Uint8Array(1));
    await got;
    rtts.push(performance.now() - t0);
  }
  const sorted = [...rtts].sort((a, b) => a - b);
  out = { mode: "rtt", medianMs: sorted[Math.floor(sorted.length / 2)], rtts };
} else if (values.mode === "up") {
  const t0 = performance.now();
  await Promise.all(socks.map(async (s) => {
    const ack = receive(s, 1);
    s.write(header("U", part));
    await send(s, part);
    await ack;
  }));
  const ms = performance.now() - t0;
  out = { mode: "up", bytes: part * socks.length, ms, MBps: part * socks.length / ms / 1000 };
} else {
  const t0 = performance.now();
  await Promise.all(socks.map(async (s) => {
    const got = receive(s, part);
    s.write(header("D", part));
    await got;
  }));
  const ms = performance.now() - t0;
  out = { mode: "down", bytes: part * socks.length, ms, MBps: part * socks.length / ms / 1000 };
}
for (const s of socks) s.destroy();
console.log(JSON.stringify(out));
Deno.exit(0);
