/**
 * Request bodies in HttpConnection (lib/storage/http1.ts): a large body is handed to the TLS
 * socket a piece at a time, so it must still arrive whole and in order with the connection
 * kept for the next request; and a response that comes before the whole body has been handed
 * over (a server refusing early) must not leave the connection in the pool, where the unsent
 * rest would no longer follow its head.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connectPinned, HttpConnection } from "../../lib/storage/http1.ts";
import { generateTlsIdentity } from "../../lib/storage/tls.ts";

const ID = await generateTlsIdentity(["127.0.0.1"]);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw TLS server running `serve` on each connection; counts connections. */
function server(serve: (c: Deno.TlsConn) => Promise<void>) {
  const l = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: ID.certPem,
    key: ID.keyPem,
    alpnProtocols: ["http/1.1"],
  });
  let accepted = 0;
  const conns: Deno.TlsConn[] = [];
  const tasks: Promise<void>[] = [];
  const loop = (async () => {
    for (;;) {
      let c: Deno.TlsConn;
      try {
        c = await l.accept();
      } catch {
        return;
      }
      accepted++;
      conns.push(c);
      tasks.push(
        serve(c).catch(() => {}).finally(() => {
          try {
            c.close();
          } catch { /* closed */ }
        }),
      );
    }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    accepted: () => accepted,
    async close() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
      await Promise.allSettled(tasks);
    },
  };
}

/** Reads requests off a connection: head, then `body(len)` decides what to do with the body. */
class Reader {
  buf = new Uint8Array(0);
  constructor(readonly c: Deno.Conn) {}
  async more(): Promise<boolean> {
    const b = new Uint8Array(256 * 1024);
    const n = await this.c.read(b);
    if (n === null) return false;
    const m = new Uint8Array(this.buf.length + n);
    m.set(this.buf);
    m.set(b.subarray(0, n), this.buf.length);
    this.buf = m;
    return true;
  }
  async head(): Promise<{ head: string; length: number } | null> {
    for (;;) {
      const text = dec.decode(this.buf.subarray(0, Math.min(this.buf.length, 65536)));
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const head = text.slice(0, end);
        this.buf = this.buf.slice(enc.encode(text.slice(0, end + 4)).length);
        return { head, length: Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0) };
      }
      if (!await this.more()) return null;
    }
  }
  /** The next `n` bytes, through `use`, without keeping them. */
  async consume(n: number, use: (b: Uint8Array) => void): Promise<void> {
    while (n > 0) {
      if (this.buf.length === 0 && !await this.more()) throw new Error("short body");
      const take = Math.min(n, this.buf.length);
      use(this.buf.subarray(0, take));
      this.buf = this.buf.slice(take);
      n -= take;
    }
  }
}

async function write(c: Deno.Conn, text: string): Promise<void> {
  const b = enc.encode(text);
  for (let o = 0; o < b.length;) o += await c.write(b.subarray(o));
}

async function connect(port: number): Promise<HttpConnection> {
  const socket = await connectPinned({ host: "127.0.0.1", port, pin: ID.pin, timeoutMs: 5000 });
  return new HttpConnection(socket);
}

function request(body: Uint8Array) {
  return {
    method: "PATCH",
    path: "/x",
    host: "127.0.0.1",
    headers: [] as [string, string][],
    body,
    maxResponseBytes: 1024,
    timeoutMs: 10_000,
  };
}

Deno.test("a body of many pieces arrives whole and in order; the connection is kept", async () => {
  const s = server(async (c) => {
    const r = new Reader(c);
    for (;;) {
      const h = await r.head();
      if (!h) return;
      const hash = createHash("sha256");
      await r.consume(h.length, (b) => hash.update(b));
      const hex = hash.digest("hex");
      await write(c, `HTTP/1.1 200 OK\r\nContent-Length: ${hex.length}\r\n\r\n${hex}`);
    }
  });
  const conn = await connect(s.port);
  try {
    for (const size of [70_000, 3 * 1024 * 1024 + 7, 1, 65_536 * 2]) {
      const body = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
      const big = new Uint8Array(size);
      for (let o = 0; o < size; o += body.length) big.set(body.subarray(0, size - o), o);
      const res = await conn.request(request(big));
      assert.equal(res.status, 200);
      assert.equal(dec.decode(res.body), createHash("sha256").update(big).digest("hex"));
      assert.ok(res.keepAlive && conn.usable, `size ${size}: the connection is kept`);
    }
    assert.equal(s.accepted(), 1);
  } finally {
    conn.destroy();
    await s.close();
  }
});

Deno.test("a response before the whole body was sent: the connection is not kept", async () => {
  let stop!: () => void;
  const stopped = new Promise<void>((r) => (stop = r));
  const s = server(async (c) => {
    const r = new Reader(c);
    if (!await r.head()) return;
    // Refuse at once and read no more: the client's pieces back up behind the full window.
    await write(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n");
    await stopped;
  });
  const conn = await connect(s.port);
  try {
    const res = await conn.request(request(new Uint8Array(64 * 1024 * 1024)));
    assert.equal(res.status, 413);
    assert.equal(res.keepAlive, false, "the rest of the body was never sent");
    assert.equal(conn.usable, false);
  } finally {
    stop();
    conn.destroy();
    await s.close();
  }
});
