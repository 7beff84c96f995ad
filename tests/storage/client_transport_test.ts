/**
 * The storage client's transport against real TLS servers on 127.0.0.1:
 * pinning (nothing sent to a server with another key), keep-alive reuse,
 * HTTP/1.1 framing (Content-Length, chunked, close-delimited), limits,
 * timeouts, location-hint fallthrough, error bodies and the idempotent retry.
 * The servers are Deno.serve and raw Deno.listenTls servers started by each
 * test with certificates from generateTlsIdentity.
 */
import assert from "node:assert/strict";
import { base32Encode, concatBytes, encodeCbor } from "../../lib/codec/mod.ts";
import {
  PinMismatchError,
  StorageClient,
  StorageError,
  StorageUnreachableError,
  verifyPinnedConnection,
} from "../../lib/storage/client.ts";
import { generateTlsIdentity, type TlsIdentity } from "../../lib/storage/tls.ts";
import type { StorageUrl } from "../../lib/storage/url.ts";

const SWISSNUM = new Uint8Array(32).fill(0x5a);
const SWISS_B32 = base32Encode(SWISSNUM);
const SI = new Uint8Array(16).fill(1);
const SECRETS = {
  writeEnabler: new Uint8Array(32).fill(3),
  leaseRenew: new Uint8Array(32).fill(4),
  leaseCancel: new Uint8Array(32).fill(5),
};
const enc = new TextEncoder();
const dec = new TextDecoder();

const ID_A = await generateTlsIdentity(["127.0.0.1"]);
const ID_B = await generateTlsIdentity(["127.0.0.1"]);

function urlFor(id: TlsIdentity, ...ports: number[]): StorageUrl {
  return { pin: id.pin, swissnum: SWISSNUM, locations: ports.map((p) => `127.0.0.1:${p}`) };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function assertNoSecret(e: unknown): void {
  const m = String((e as Error).message);
  assert.ok(!m.includes(SWISS_B32.slice(0, 16)), `message contains the swissnum: ${m}`);
}

/** A Deno.serve HTTPS server; records the remote port of every request. */
function httpsServer(id: TlsIdentity, handler: (req: Request) => Response | Promise<Response>) {
  const ports: number[] = [];
  const requests: { method: string; url: string; headers: Headers }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: id.certPem, key: id.keyPem, onListen() {} },
    (req, info) => {
      ports.push(info.remoteAddr.port);
      requests.push({ method: req.method, url: req.url, headers: new Headers(req.headers) });
      return handler(req);
    },
  );
  return { port: server.addr.port, ports, requests, close: () => server.shutdown() };
}

/** Read one HTTP request (head + Content-Length body) from a raw connection. */
async function readRequest(
  conn: Deno.Conn,
  carry: { buf: Uint8Array; all: Uint8Array[] },
): Promise<{ head: string; body: Uint8Array } | null> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const text = dec.decode(carry.buf);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const head = text.slice(0, end);
      const m = /content-length: *(\d+)/i.exec(head);
      const len = m ? Number(m[1]) : 0;
      const headBytes = enc.encode(text.slice(0, end + 4)).length;
      if (carry.buf.length >= headBytes + len) {
        const body = carry.buf.slice(headBytes, headBytes + len);
        carry.buf = carry.buf.slice(headBytes + len);
        return { head, body };
      }
    }
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      return null;
    }
    if (n === null) return null;
    const got = buf.slice(0, n);
    carry.all.push(got);
    carry.buf = concatBytes(carry.buf, got);
  }
}

/** A raw TLS server: `serve(conn, carry, index)` runs for every accepted connection. */
function rawServer(
  id: TlsIdentity,
  serve: (
    conn: Deno.TlsConn,
    carry: { buf: Uint8Array; all: Uint8Array[] },
    i: number,
  ) => Promise<void>,
) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: id.certPem,
    key: id.keyPem,
    alpnProtocols: ["http/1.1"],
  });
  const received: Uint8Array[][] = [];
  const tasks: Promise<void>[] = [];
  const conns = new Set<Deno.Conn>();
  const accepting = (async () => {
    for (let i = 0;; i++) {
      let conn: Deno.TlsConn;
      try {
        conn = await listener.accept();
      } catch {
        return;
      }
      conns.add(conn);
      const carry = { buf: new Uint8Array(0), all: [] as Uint8Array[] };
      received.push(carry.all);
      tasks.push(
        serve(conn, carry, i).catch(() => {}).finally(() => {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }),
      );
    }
  })();
  let closed = false;
  return {
    port: (listener.addr as Deno.NetAddr).port,
    received,
    async close() {
      if (closed) return;
      closed = true;
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.allSettled(tasks);
    },
  };
}

async function write(conn: Deno.Conn, text: string | Uint8Array): Promise<void> {
  const b = typeof text === "string" ? enc.encode(text) : text;
  for (let o = 0; o < b.length;) o += await conn.write(b.subarray(o));
}

const cborResponse = (v: unknown, status = 200) =>
  new Response(new Uint8Array(encodeCbor(v)), {
    status,
    headers: { "content-type": "application/cbor" },
  });

const VERSION = {
  protocol: 1,
  software: "test",
  maxShareSize: 1 << 30,
  availableSpace: 1 << 30,
  maxBodySize: 1 << 26,
  maxBatchSlots: 4096,
  leaseDuration: 3600,
};

Deno.test("pin mismatch: refused after the handshake, before a single byte is sent", async () => {
  const handshakes: boolean[] = [];
  const server = rawServer(ID_A, async (conn, carry, i) => {
    // Complete the handshake, then read until the client goes away, recording every byte.
    handshakes[i] = await conn.handshake().then(() => true, () => false);
    await readRequest(conn, carry);
  });
  try {
    const wrong = new StorageClient(urlFor(ID_B, server.port));
    await assert.rejects(wrong.version(), (e: unknown) => {
      assert.ok(e instanceof PinMismatchError, String(e));
      assert.ok(e instanceof StorageUnreachableError);
      assert.match(e.message, /pinned TLS key/);
      assert.equal(e.failures[0].location, `127.0.0.1:${server.port}`);
      assertNoSecret(e);
      return true;
    });
    wrong.close();
    await assert.rejects(verifyPinnedConnection(urlFor(ID_B, server.port)), PinMismatchError);
    // Positive control: the same recorder does see the request of a client with the right pin.
    const right = new StorageClient(urlFor(ID_A, server.port), { timeoutMs: 300 });
    await assert.rejects(right.version(), StorageUnreachableError); // the recorder never answers
    right.close();
    await server.close();
    assert.equal(server.received.length, 3);
    assert.deepEqual(handshakes, [true, true, true]);
    // Both connections with the wrong pin completed the handshake (the pin was checked) yet
    // delivered no application byte.
    assert.equal(server.received[0].length, 0);
    assert.equal(server.received[1].length, 0);
    const sent = dec.decode(concatBytes(...server.received[2]));
    assert.match(sent, /^GET \/shoal\/v1\/version HTTP\/1\.1\r\n/);
    assert.ok(sent.includes(`Shoal-Swissnum ${SWISS_B32}`));
  } finally {
    await server.close();
  }
});

Deno.test("verifyPinnedConnection reports the hint that worked", async () => {
  const s = httpsServer(ID_A, () => new Response("x"));
  try {
    const dead = freePort();
    assert.equal(
      await verifyPinnedConnection(urlFor(ID_A, dead, s.port)),
      `127.0.0.1:${s.port}`,
    );
    assert.equal(s.requests.length, 0);
  } finally {
    await s.close();
  }
});

Deno.test("keep-alive: 300 sequential requests use one connection", async () => {
  const s = httpsServer(ID_A, () => cborResponse(VERSION));
  const c = new StorageClient(urlFor(ID_A, s.port));
  try {
    for (let i = 0; i < 300; i++) assert.equal((await c.version()).software, "test");
    assert.equal(s.ports.length, 300);
    assert.equal(new Set(s.ports).size, 1);
    assert.equal(c.openConnections, 1);
    const r = s.requests[0];
    assert.equal(r.headers.get("authorization"), `Shoal-Swissnum ${SWISS_B32}`);
    assert.equal(r.headers.get("host"), `127.0.0.1:${s.port}`);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("concurrent requests stay within maxConnections and reuse them", async () => {
  const s = httpsServer(ID_A, async () => {
    await new Promise((r) => setTimeout(r, 5));
    return cborResponse([1, 2, 3]);
  });
  const c = new StorageClient(urlFor(ID_A, s.port), { maxConnections: 3 });
  try {
    const all = await Promise.all(Array.from({ length: 60 }, () => c.listMutable(SI)));
    for (const r of all) assert.deepEqual(r, [1, 2, 3]);
    assert.equal(new Set(s.ports).size, 3);
    assert.ok(c.openConnections <= 3);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("chunked responses from Deno.serve (streamed bodies) are reassembled", async () => {
  const big = crypto.getRandomValues(new Uint8Array(65536));
  const data = concatBytes(big, big, big, big, new Uint8Array([1, 2, 3]));
  const s = httpsServer(ID_A, (req) => {
    const body = new URL(req.url).pathname.endsWith("/shares") ? encodeCbor([0, 5, 9]) : data;
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctl) {
        if (i >= body.length) return ctl.close();
        ctl.enqueue(body.slice(i, i + 7001));
        i += 7001;
      },
    });
    return new Response(stream, { status: 200 });
  });
  const c = new StorageClient(urlFor(ID_A, s.port));
  try {
    assert.deepEqual(await c.listImmutable(SI), [0, 5, 9]);
    assert.deepEqual(await c.readImmutable(SI, 0), data);
    assert.deepEqual(await c.readImmutable(SI, 0), data);
    assert.equal(new Set(s.ports).size, 1);
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("framing from a raw server: chunk extensions, trailers, 1xx, byte-at-a-time delivery", async () => {
  const server = rawServer(ID_A, async (conn, carry) => {
    for (let k = 0;; k++) {
      const req = await readRequest(conn, carry);
      if (!req) return;
      const payload = encodeCbor([k, 7]);
      const resp = "HTTP/1.1 100 Continue\r\n\r\n" +
        "HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nTransfer-Encoding: chunked\r\n\r\n" +
        `2;ext=1\r\n${String.fromCharCode(...payload.slice(0, 2))}\r\n` +
        `${(payload.length - 2).toString(16)}\r\n${String.fromCharCode(...payload.slice(2))}\r\n` +
        "0\r\nX-Trailer: yes\r\n\r\n";
      const bytes = Uint8Array.from(resp, (ch) => ch.charCodeAt(0));
      if (k === 0) { for (const b of bytes) await write(conn, new Uint8Array([b])); }
      else await write(conn, bytes);
    }
  });
  const c = new StorageClient(urlFor(ID_A, server.port));
  try {
    assert.deepEqual(await c.listMutable(SI), [0, 7]);
    assert.deepEqual(await c.listMutable(SI), [1, 7]);
    assert.equal(server.received.length, 1);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test("close-delimited bodies, oversize and malformed responses give clear errors", async () => {
  const replies = [
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + String.fromCharCode(...encodeCbor([4])),
    "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffff\r\n",
    "SPDY/3 200 OK\r\n\r\n",
    "HTTP/1.1 799 Beyond\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\xff\xff\xff",
    "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
  ];
  const server = rawServer(ID_A, async (conn, carry, i) => {
    if (!(await readRequest(conn, carry))) return;
    await write(conn, Uint8Array.from(replies[i], (ch) => ch.charCodeAt(0)));
    if (i === 0 || i === 7) conn.closeWrite();
    await readRequest(conn, carry);
  });
  const c = new StorageClient(urlFor(ID_A, server.port), { maxResponseBytes: 100_000 });
  try {
    assert.deepEqual(await c.listMutable(SI), [4]);
    const expect = async (code: string, re: RegExp) => {
      await assert.rejects(c.listMutable(SI), (e: unknown) => {
        assert.ok(e instanceof StorageError, String(e));
        assert.equal(e.code, code);
        assert.match(e.message, re);
        assertNoSecret(e);
        return true;
      });
    };
    await expect("response-too-large", /exceeds the limit of/);
    await expect("response-too-large", /exceeds the limit of/);
    await expect("bad-response", /malformed HTTP status line/);
    await expect("bad-response", /malformed HTTP status line/); // status codes end at 599
    await expect("bad-response", /malformed Content-Length/);
    await expect("bad-response", /malformed list mutable response/);
    await assert.rejects(c.listMutable(SI), (e: unknown) => {
      assert.ok(e instanceof StorageUnreachableError, String(e));
      assert.match(e.message, /closed/);
      return true;
    });
    // Each failure closed its connection; none was reused.
    assert.equal(server.received.length, 8);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test("error bodies become StorageError with the server's status, code and message", async () => {
  const s = httpsServer(ID_A, (req) => {
    if (req.method === "PUT") return new Response("nope", { status: 502 });
    if (req.method === "GET") {
      return cborResponse({ error: "not-found", message: `echo ${SWISS_B32}\n!` }, 404);
    }
    return cborResponse(
      { error: "bad-write-enabler", message: "the write enabler does not match" },
      403,
    );
  });
  const c = new StorageClient(urlFor(ID_A, s.port));
  try {
    await assert.rejects(
      c.readTestWrite(SI, SECRETS, { testWriteVectors: [], readVector: [] }),
      (e: unknown) => {
        assert.ok(e instanceof StorageError);
        assert.equal(e.status, 403);
        assert.equal(e.code, "bad-write-enabler");
        assert.equal(e.message, "the write enabler does not match");
        return true;
      },
    );
    await assert.rejects(
      c.renewLease(SI, { renew: SECRETS.leaseRenew, cancel: SECRETS.leaseCancel }),
      (e: unknown) => {
        assert.ok(e instanceof StorageError);
        assert.equal(e.status, 502);
        assert.equal(e.code, "http-502");
        return true;
      },
    );
    // Server text is cleaned: a secret echoed by a hostile server is redacted, controls removed.
    await assert.rejects(c.listImmutable(SI), (e: unknown) => {
      assert.ok(e instanceof StorageError);
      assert.equal(e.message, "echo [redacted] !");
      return true;
    });
    // The secrets travelled in their headers, base32, never in the path.
    const r = s.requests[0];
    assert.equal(r.headers.get("x-shoal-write-enabler"), base32Encode(SECRETS.writeEnabler));
    assert.equal(r.headers.get("x-shoal-lease-renew-secret"), base32Encode(SECRETS.leaseRenew));
    assert.ok(!r.url.includes(base32Encode(SECRETS.writeEnabler)));
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("timeouts: a silent server and a server that never completes TLS", async () => {
  const silent = rawServer(ID_A, async (conn, carry) => {
    await readRequest(conn, carry);
    await readRequest(conn, carry);
  });
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const holding = (async () => {
    try {
      for (;;) held.push(await tcp.accept());
    } catch { /* closed */ }
  })();
  try {
    const c = new StorageClient(urlFor(ID_A, silent.port), { timeoutMs: 250 });
    let t0 = performance.now();
    await assert.rejects(c.version(), (e: unknown) => {
      assert.ok(e instanceof StorageUnreachableError, String(e));
      assert.match(e.message, /no response within 250 ms/);
      return true;
    });
    let dt = performance.now() - t0;
    assert.ok(dt >= 240 && dt < 2000, `took ${dt} ms`);
    c.close();

    const port = (tcp.addr as Deno.NetAddr).port;
    const c2 = new StorageClient(urlFor(ID_A, port), { connectTimeoutMs: 250 });
    t0 = performance.now();
    await assert.rejects(c2.version(), (e: unknown) => {
      assert.ok(
        e instanceof StorageUnreachableError && !(e instanceof PinMismatchError),
        String(e),
      );
      assert.match(e.message, /no TLS connection within 250 ms/);
      return true;
    });
    dt = performance.now() - t0;
    assert.ok(dt >= 240 && dt < 2000, `took ${dt} ms`);
    c2.close();
  } finally {
    tcp.close();
    for (const h of held) h.close();
    await holding;
    await silent.close();
  }
});

Deno.test("location hints: dead and wrong-key hints fall through to a working one, which is remembered", async () => {
  const good = httpsServer(ID_A, () => cborResponse(VERSION));
  const impostor = httpsServer(ID_B, () => cborResponse(VERSION));
  const dead = freePort();
  const c = new StorageClient(urlFor(ID_A, dead, impostor.port, good.port), { maxConnections: 1 });
  try {
    assert.equal((await c.version()).protocol, 1);
    assert.equal(c.preferredLocation, `127.0.0.1:${good.port}`);
    assert.equal(impostor.requests.length, 0);
    assert.equal(good.requests.length, 1);

    // All hints bad: unreachable with a reason per hint, never the swissnum.
    const bad = new StorageClient(urlFor(ID_A, dead, freePort()));
    await assert.rejects(bad.version(), (e: unknown) => {
      assert.ok(
        e instanceof StorageUnreachableError && !(e instanceof PinMismatchError),
        String(e),
      );
      assert.equal(e.failures.length, 2);
      assert.match(e.message, /is unreachable/);
      assertNoSecret(e);
      return true;
    });
    bad.close();
  } finally {
    c.close();
    await good.close();
    await impostor.close();
  }
});

Deno.test("a dead pooled socket: reads are retried once on a fresh connection, writes are not", async () => {
  // Answers the first request of each connection; drops the connection on the second.
  let requests = 0;
  const server = rawServer(ID_A, async (conn, carry) => {
    const req = await readRequest(conn, carry);
    if (!req) return;
    requests++;
    const body = req.head.includes("/shares ")
      ? encodeCbor([1])
      : encodeCbor({ success: true, reads: [] });
    await write(
      conn,
      `HTTP/1.1 200 OK\r\nContent-Type: application/cbor\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    await write(conn, body);
    if (await readRequest(conn, carry)) requests++; // read it, then close without answering
  });
  const c = new StorageClient(urlFor(ID_A, server.port), { maxConnections: 1 });
  const rtw = () => c.readTestWrite(SI, SECRETS, { testWriteVectors: [], readVector: [] });
  try {
    assert.equal((await rtw()).success, true); // connection 1
    // Read-test-write on the pooled connection 1, which the server drops: not retried.
    await assert.rejects(rtw(), (e: unknown) => {
      assert.ok(e instanceof StorageUnreachableError, String(e));
      assertNoSecret(e);
      return true;
    });
    assert.equal(server.received.length, 1);
    assert.equal(requests, 2);
    assert.deepEqual(await c.listMutable(SI), [1]); // connection 2
    // A list on the pooled connection 2, which the server drops: retried on connection 3.
    assert.deepEqual(await c.listMutable(SI), [1]);
    assert.equal(server.received.length, 3);
    assert.equal(requests, 5);
  } finally {
    c.close();
    await server.close();
  }
});

Deno.test("ranged reads: Range header, 206 validation, 416 as empty, a server ignoring Range", async () => {
  const share = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
  let ignoreRange = false;
  const s = httpsServer(ID_A, (req) => {
    const range = req.headers.get("range");
    if (!range || ignoreRange) return new Response(share);
    const m = /^bytes=(\d+)-(\d*)$/.exec(range)!;
    const b = Number(m[1]);
    if (b >= share.length) {
      return cborResponse({ error: "range-not-satisfiable", message: "past the end" }, 416);
    }
    const e = Math.min(m[2] ? Number(m[2]) : share.length - 1, share.length - 1);
    return new Response(share.slice(b, e + 1), {
      status: 206,
      headers: { "content-range": `bytes ${b}-${e}/${share.length}` },
    });
  });
  const c = new StorageClient(urlFor(ID_A, s.port));
  try {
    assert.deepEqual(await c.readMutable(SI, 2), share);
    assert.equal(s.requests.at(-1)!.headers.get("range"), null);
    assert.deepEqual(await c.readMutable(SI, 2, 10, 20), share.slice(10, 30));
    assert.equal(s.requests.at(-1)!.headers.get("range"), "bytes=10-29");
    assert.deepEqual(await c.readImmutable(SI, 2, 990), share.slice(990));
    assert.equal(s.requests.at(-1)!.headers.get("range"), "bytes=990-");
    assert.deepEqual(await c.readImmutable(SI, 2, 995, 100), share.slice(995));
    assert.deepEqual(await c.readImmutable(SI, 2, 1000, 10), new Uint8Array(0));
    const before = s.requests.length;
    assert.deepEqual(await c.readImmutable(SI, 2, 5, 0), new Uint8Array(0));
    assert.equal(s.requests.length, before);
    ignoreRange = true;
    assert.deepEqual(await c.readImmutable(SI, 2, 100, 50), share.slice(100, 150));
  } finally {
    c.close();
    await s.close();
  }
});

Deno.test("bad arguments are refused locally without naming secrets", async () => {
  const c = new StorageClient(urlFor(ID_A, freePort()));
  try {
    await assert.rejects(c.listImmutable(new Uint8Array(15)), /storage index must be 16 bytes/);
    await assert.rejects(c.readImmutable(SI, -1), /share number/);
    await assert.rejects(
      c.renewLease(SI, { renew: new Uint8Array(31), cancel: SECRETS.leaseCancel }),
      /lease renew secret must be 32 bytes/,
    );
    await assert.rejects(
      c.upload(SI, 0, SECRETS.leaseRenew, 0, new Uint8Array(0)),
      /at least one byte/,
    );
  } finally {
    c.close();
  }
});

Deno.test("a server that stayed silent at connect is not waited for again at once; one that refused is", async () => {
  const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const holding = (async () => {
    try {
      for (;;) held.push(await tcp.accept());
    } catch { /* closed */ }
  })();
  const port = (tcp.addr as Deno.NetAddr).port;
  const c = new StorageClient(urlFor(ID_A, port), { connectTimeoutMs: 400, maxConnections: 4 });
  try {
    // Four requests at once share one connect attempt: together they take one timeout.
    let t0 = performance.now();
    const all = await Promise.allSettled([c.version(), c.version(), c.version(), c.version()]);
    let dt = performance.now() - t0;
    assert.ok(all.every((r) => r.status === "rejected"), "every request fails");
    assert.ok(dt >= 390 && dt < 1200, `four concurrent requests took ${dt} ms`);
    // The next phase of the same operation fails at once, saying why.
    t0 = performance.now();
    await assert.rejects(c.version(), (e: unknown) => {
      assert.ok(e instanceof StorageUnreachableError, String(e));
      assert.match(e.message, /not retried for 5000 ms/);
      return true;
    });
    dt = performance.now() - t0;
    assert.ok(dt < 150, `a request right after a silent connect took ${dt} ms`);
  } finally {
    c.close();
    tcp.close();
    for (const h of held) h.close();
    await holding;
  }

  // A refused connection is not remembered: a server that starts listening is used at once.
  const p = freePort();
  const c2 = new StorageClient(urlFor(ID_A, p), { connectTimeoutMs: 2000 });
  try {
    await assert.rejects(c2.version(), (e: unknown) => {
      assert.ok(e instanceof StorageUnreachableError && !e.silent, String(e));
      return true;
    });
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: p, cert: ID_A.certPem, key: ID_A.keyPem, onListen() {} },
      () => new Response("not a storage server", { status: 500 }),
    );
    try {
      // It answers (with an error): the point is that the client asked instead of refusing.
      await assert.rejects(c2.version(), (e: unknown) => !/not retried/.test(String(e)));
    } finally {
      await server.shutdown();
    }
  } finally {
    c2.close();
  }
});
