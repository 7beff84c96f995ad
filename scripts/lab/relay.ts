/**
 * The lab's path emulator, run inside one host's network namespace (scripts/lab/netns.ts starts
 * it with `ip netns exec`). It listens on the host's public lab address and forwards every TCP
 * connection to a local target (the host's storage server on 127.0.0.1), applying the path's
 * settings, looked up by the connection's source address:
 *
 * - `delayMs`: one-way delay, applied to each direction, so the round trip is 2 × delayMs. Each
 *   chunk read is stamped with its arrival time and written out at arrival + delay by a timed
 *   queue: chunks never wait behind one another's delay (a path carries a bandwidth-delay product
 *   of bytes in flight), order is preserved, and reading stops only while more than `QUEUE_CAP`
 *   bytes wait (backpressure).
 * - `loss`: probability that a chunk is "lost" and retransmitted: it is held one retransmission
 *   timeout (max(200 ms, 2 × delayMs)) longer, and the chunks after it wait for it, as TCP's
 *   in-order delivery makes them. (TCP never loses bytes; this is what loss looks like above it.)
 * - `blocked`: a partition. The path forwards nothing either way and reads nothing, so senders see
 *   a black hole (their windows fill, requests time out), also on connections opened during the
 *   partition. When it heals, held bytes flow again. With `reject` as well, the path refuses
 *   instead: open connections are closed and new ones closed on arrival (what a client sees when
 *   a router answers "unreachable").
 *
 * It can also serve a local TLS bulk endpoint (`--bulk PORT --cert F --key F`) for the lab's raw
 * baseline: a client sends `U` + 8-byte length + that many bytes and gets `K` back, or `D` +
 * 8-byte length and receives that many bytes.
 *
 * Control: one JSON line per command on stdin, answered by one line on stdout:
 *   {"set": {"default": PATH, "peers": {"198.18.0.5": PATH, ...}}}  -> "ok"
 *   {"stats": true}   -> "stats [{peer, port, opened, closed, turns, up, down}, ...]"
 *   {"reset": true}   -> "ok" (forget closed connections' stats)
 *   {"kill": "198.18.0.5"}  -> "ok" (close that peer's open connections at once, as a reset)
 * where PATH = {"delayMs": n, "loss": p, "blocked": bool}. It prints "ready" once listening.
 *
 *   deno run -A scripts/lab/relay.ts --forward 198.18.0.11:7001=127.0.0.1:7001 [--forward ...]
 *     [--bulk 127.0.0.1:7101 --cert CERT.pem --key KEY.pem]
 */
import tls from "node:tls";
import { parseArgs } from "node:util";

export interface PathSettings {
  delayMs: number;
  loss: number;
  blocked: boolean;
  /** With `blocked`: refuse instead of black-holing (connections are closed at once). */
  reject?: boolean;
}

const QUEUE_CAP = 16 * 1024 * 1024;
const CHUNK = 256 * 1024;

const CLEAR: PathSettings = { delayMs: 0, loss: 0, blocked: false, reject: false };
let defaults: PathSettings = { ...CLEAR };
let peers = new Map<string, PathSettings>();
/** Wakes every waiting pump when settings change. */
let wake: (() => void)[] = [];

function settingsFor(peer: string): PathSettings {
  return peers.get(peer) ?? defaults;
}

function changed(): void {
  const w = wake;
  wake = [];
  for (const f of w) f();
}

function waitChange(): Promise<void> {
  return new Promise((resolve) => wake.push(resolve));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

interface ConnStats {
  peer: string;
  port: number;
  opened: number;
  closed: number | null;
  /** Client-to-server bursts (a burst starts when the client sends after the server has). */
  turns: number;
  up: number;
  down: number;
  /** Wall-clock ms (performance.timeOrigin + now) of the first client byte read. */
  firstUp: number | null;
  /** Wall-clock ms when the last server byte was written to the client. */
  lastDown: number | null;
  conns: Deno.Conn[];
}

const wall = () => performance.timeOrigin + performance.now();
const conns: ConnStats[] = [];

/** Forward src to dst through the timed queue. `up`: client-to-server direction. */
async function pump(
  src: Deno.Conn,
  dst: Deno.Conn,
  peer: string,
  st: ConnStats,
  up: boolean,
  last: { dir: "up" | "down" | null },
): Promise<void> {
  const queue: { data: Uint8Array; due: number }[] = [];
  let queued = 0;
  let eof = false;
  let writerWake: (() => void) | null = null;
  let readerWake: (() => void) | null = null;
  const kickWriter = () => {
    const w = writerWake;
    writerWake = null;
    w?.();
  };
  const reader = (async () => {
    try {
      for (;;) {
        while (settingsFor(peer).blocked || queued > QUEUE_CAP) {
          if (settingsFor(peer).blocked) await waitChange();
          else await new Promise<void>((r) => readerWake = r);
        }
        const buf = new Uint8Array(CHUNK);
        const n = await src.read(buf);
        if (n === null) break;
        const s = settingsFor(peer);
        let due = performance.now() + s.delayMs;
        if (s.loss > 0 && Math.random() < s.loss) due += Math.max(200, 2 * s.delayMs);
        // In order: never before the chunk ahead of it.
        if (queue.length) due = Math.max(due, queue[queue.length - 1].due);
        queue.push({ data: buf.subarray(0, n), due });
        queued += n;
        if (up) st.up += n;
        else st.down += n;
        if (up && st.firstUp === null) st.firstUp = wall();
        const dir = up ? "up" : "down";
        if (up && last.dir !== "up") st.turns++;
        last.dir = dir;
        kickWriter();
      }
    } catch { /* reset */ }
    eof = true;
    kickWriter();
  })();
  try {
    for (;;) {
      if (!queue.length) {
        if (eof) break;
        await new Promise<void>((r) => writerWake = r);
        continue;
      }
      const head = queue[0];
      const now = performance.now();
      if (head.due > now) {
        await sleep(head.due - now);
        continue;
      }
      if (settingsFor(peer).blocked) {
        await waitChange();
        continue;
      }
      let off = 0;
      while (off < head.data.length) off += await dst.write(head.data.subarray(off));
      queue.shift();
      queued -= head.data.length;
      if (!up) st.lastDown = wall();
      if (queued <= QUEUE_CAP) {
        const r = readerWake as (() => void) | null;
        readerWake = null;
        r?.();
      }
    }
    await dst.closeWrite().catch(() => {});
  } catch {
    try {
      src.close();
    } catch { /* closed */ }
  }
  await reader;
}

async function handle(conn: Deno.TcpConn, target: Deno.NetAddr, port: number): Promise<void> {
  const peer = (conn.remoteAddr as Deno.NetAddr).hostname;
  const now = settingsFor(peer);
  if (now.blocked && now.reject) {
    try {
      conn.close();
    } catch { /* closed */ }
    return;
  }
  const st: ConnStats = {
    peer,
    port,
    opened: Date.now(),
    closed: null,
    turns: 0,
    up: 0,
    down: 0,
    firstUp: null,
    lastDown: null,
    conns: [conn],
  };
  conns.push(st);
  let out: Deno.TcpConn | null = null;
  try {
    out = await Deno.connect({ hostname: target.hostname, port: target.port });
    st.conns.push(out);
    out.setNoDelay(true);
    conn.setNoDelay(true);
    const last = { dir: null as "up" | "down" | null };
    await Promise.all([
      pump(conn, out, peer, st, true, last),
      pump(out, conn, peer, st, false, last),
    ]);
  } catch { /* target gone or reset */ }
  for (const c of st.conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  st.closed = Date.now();
}

function parseAddr(s: string): Deno.NetAddr {
  const i = s.lastIndexOf(":");
  return { transport: "tcp", hostname: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function bulkServer(addr: Deno.NetAddr, cert: string, key: string): Promise<void> {
  const server = tls.createServer({ cert, key }, (sock) => {
    sock.setNoDelay(true);
    let header: Uint8Array = new Uint8Array(0);
    let mode: "U" | "D" | null = null;
    let remaining = 0;
    const onData = (d: Uint8Array) => {
      if (mode === null) {
        const h = new Uint8Array(header.length + d.length);
        h.set(header);
        h.set(d, header.length);
        if (h.length < 9) {
          header = h;
          return;
        }
        mode = String.fromCharCode(h[0]) as "U" | "D";
        remaining = Number(new DataView(h.buffer, h.byteOffset + 1, 8).getBigUint64(0));
        d = h.subarray(9);
        header = new Uint8Array(0);
        if (mode === "D") {
          sock.off("data", onData);
          const block = new Uint8Array(1 << 20);
          const send = () => {
            while (remaining > 0) {
              const n = Math.min(block.length, remaining);
              remaining -= n;
              if (!sock.write(block.subarray(0, n))) return void sock.once("drain", send);
            }
            sock.end();
          };
          send();
          return;
        }
      }
      remaining -= d.length;
      if (remaining <= 0) {
        sock.write("K");
        mode = null;
        remaining = 0;
      }
    };
    sock.on("data", onData);
    sock.on("error", () => sock.destroy());
  });
  return new Promise((resolve) => server.listen(addr.port, addr.hostname, () => resolve()));
}

async function control(): Promise<void> {
  const enc = new TextEncoder();
  const say = (s: string) => Deno.stdout.writeSync(enc.encode(s + "\n"));
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const l = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (!l) continue;
      try {
        const cmd = JSON.parse(l);
        if (cmd.set) {
          defaults = { ...CLEAR, ...(cmd.set.default ?? {}) };
          peers = new Map(
            Object.entries(cmd.set.peers ?? {}).map((
              [k, v],
            ) => [k, { ...defaults, ...(v as Partial<PathSettings>) }]),
          );
          // Refusing paths: close what is open on them.
          for (const c of conns) {
            const p = settingsFor(c.peer);
            if (c.closed || !p.blocked || !p.reject) continue;
            for (const x of c.conns) {
              try {
                x.close();
              } catch { /* closed */ }
            }
          }
          changed();
          say("ok");
        } else if (cmd.stats) {
          say(`stats ${JSON.stringify(conns.map(({ conns: _c, ...s }) => s))}`);
        } else if (cmd.reset) {
          for (let i = conns.length - 1; i >= 0; i--) if (conns[i].closed) conns.splice(i, 1);
          for (const c of conns) {
            c.turns = c.up = c.down = 0;
            c.firstUp = c.lastDown = null;
          }
          say("ok");
        } else if (cmd.kill) {
          for (const c of conns) {
            if (c.peer !== cmd.kill || c.closed) continue;
            for (const x of c.conns) {
              try {
                x.close();
              } catch { /* closed */ }
            }
          }
          say("ok");
        } else say("error unknown command");
      } catch (e) {
        say(`error ${(e as Error).message}`);
      }
    }
  }
  // stdin closed: the lab is gone; so are we.
  Deno.exit(0);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      forward: { type: "string", multiple: true },
      bulk: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
    },
  });
  if (values.bulk) {
    await bulkServer(
      parseAddr(values.bulk),
      await Deno.readTextFile(values.cert!),
      await Deno.readTextFile(values.key!),
    );
  }
  for (const f of values.forward ?? []) {
    const [from, to] = f.split("=");
    const a = parseAddr(from);
    const listener = Deno.listen({ hostname: a.hostname, port: a.port });
    const target = parseAddr(to);
    (async () => {
      for await (const c of listener) handle(c, target, a.port);
    })();
  }
  console.log("ready");
  await control();
}
