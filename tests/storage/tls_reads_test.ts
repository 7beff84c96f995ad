/**
 * Reads through the shared buffer (lib/storage/tls_reads.ts): the check passes
 * on this runtime; the storage server's HTTP layer and the client's
 * HttpConnection carry large bodies byte-exact with shared reads on and off
 * (with backpressure: the handler reads slowly); and a socket that has already
 * buffered bytes is refused (switching then reordered bytes: bodies ran into
 * the next request head, answered 431).
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { generateTlsIdentity } from "../../lib/storage/tls.ts";
import { serveHttps } from "../../lib/storage/https_server.ts";
import { connectPinned, HttpConnection } from "../../lib/storage/http1.ts";
import {
  forceSharedReads,
  readIntoShared,
  sharedReadsActive,
  sharedReadsReady,
} from "../../lib/storage/tls_reads.ts";
import { sha256 } from "../../lib/crypto/hash.ts";

const ID = await generateTlsIdentity(["127.0.0.1"]);

function pattern(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed + (i >> 12)) % 251;
  return b;
}

Deno.test({
  name: "the shared-reads check passes on this runtime",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    assert.equal(await sharedReadsReady(), true);
    assert.equal(sharedReadsActive(), true);
  },
});

for (const on of [true, false]) {
  Deno.test(`server and client carry large bodies byte-exact, shared reads ${on ? "on" : "off"}`, async () => {
    forceSharedReads(on);
    const reply = pattern(3_000_001, 5);
    const server = serveHttps({
      hostname: "127.0.0.1",
      port: 0,
      certPem: ID.certPem,
      keyPem: ID.keyPem,
      log: () => {},
      handler: async (req) => {
        // Read slowly, so that the connection's reads stop and resume (backpressure).
        const parts: Uint8Array[] = [];
        const reader = req.body!.getReader();
        for (;;) {
          const r = await reader.read();
          if (r.done) break;
          parts.push(r.value);
          await new Promise((res) => setTimeout(res, 1));
        }
        let n = 0;
        for (const p of parts) n += p.length;
        const all = new Uint8Array(n);
        n = 0;
        for (const p of parts) all.set(p, (n += p.length) - p.length);
        const digest = Array.from(sha256(all), (b) => b.toString(16).padStart(2, "0"));
        return new Response(reply, { headers: { "x-digest": digest.join("") } });
      },
    });
    const socket: TLSSocket = await connectPinned({
      host: "127.0.0.1",
      port: server.addr.port,
      pin: ID.pin,
      timeoutMs: 10_000,
    });
    const conn = new HttpConnection(socket);
    try {
      for (const seed of [1, 2, 3]) {
        const body = pattern(6_000_000 + seed, seed);
        const r = await conn.request({
          method: "POST",
          path: "/echo",
          host: "127.0.0.1",
          headers: [],
          body,
          maxResponseBytes: 8_000_000,
          timeoutMs: 30_000,
        });
        assert.equal(r.status, 200);
        const want = Array.from(sha256(body), (b) => b.toString(16).padStart(2, "0"));
        assert.equal(r.headers.get("x-digest"), want.join(""), "the server got the body exactly");
        assert.deepEqual(r.body, reply, "the client got the response exactly");
        assert.equal(r.keepAlive, true);
      }
    } finally {
      forceSharedReads(null);
      conn.destroy();
      server.close();
      await server.finished;
    }
  });
}

Deno.test("a socket that has buffered bytes is not switched to shared reads", async () => {
  const server = tls.createServer({ cert: ID.certPem, key: ID.keyPem });
  const sockets: TLSSocket[] = [];
  try {
    const got = await new Promise<{ late: boolean; early: boolean; bytes: Uint8Array }>(
      (resolve) => {
        let late = true;
        let early = false;
        const bytes: Uint8Array[] = [];
        let conns = 0;
        server.on("secureConnection", (s: TLSSocket) => {
          sockets.push(s);
          if (conns++ === 0) {
            // Let the first client's bytes arrive before switching: refused.
            setTimeout(() => {
              late = readIntoShared(s, () => true);
              s.destroy();
            }, 200);
          } else {
            // Switched before anything was read: every byte arrives, in order.
            early = readIntoShared(s, (v) => {
              bytes.push(v.slice());
              if (bytes.reduce((a, b) => a + b.length, 0) >= 500_000) {
                const all = new Uint8Array(500_000);
                let o = 0;
                for (const b of bytes) all.set(b, (o += b.length) - b.length);
                resolve({ late, early, bytes: all });
              }
              return true;
            });
          }
        });
        server.listen(0, "127.0.0.1", async () => {
          const port = (server.address() as { port: number }).port;
          for (let i = 0; i < 2; i++) {
            const c = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
            sockets.push(c);
            c.on("error", () => {});
            await new Promise((res) => c.once("secureConnect", res));
            c.write(pattern(500_000, 9));
            if (i === 0) await new Promise((res) => setTimeout(res, 400));
          }
        });
      },
    );
    assert.equal(got.late, false, "a socket holding buffered bytes is refused");
    assert.equal(got.early, true);
    assert.deepEqual(got.bytes, pattern(500_000, 9));
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((res) => server.close(res));
  }
});
