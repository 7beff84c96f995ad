/**
 * #11.3: connection limits per client address and deadlines before a request
 * is authorized, against a real server process (shoal.toml [storage] keys).
 *
 * - A flood of idle TCP connections from one loopback address (127.0.0.2) is
 *   cut at max_connections_per_address; a client from another address
 *   (127.0.0.3) is still served, even though the flood is larger than
 *   max_connections.
 * - A TCP connection that sends nothing, and one that sends half a
 *   ClientHello, are closed after handshake_timeout (5 s here).
 * - A request head, or a small body, trickling in is cut at request_timeout.
 */
import assert from "node:assert/strict";
import type net from "node:net";
import { base32Encode } from "../../lib/codec/mod.ts";
import { AUTH_SCHEME } from "../../lib/storage/mod.ts";
import { loadStorageNode } from "../../lib/roles/storage/mod.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";
import { RawTls } from "./wire_helpers.ts";

function closedWithin(s: net.Socket, ms: number): Promise<number | null> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(0);
    const timer = setTimeout(() => resolve(null), ms);
    s.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

Deno.test("connection limits and deadlines: one address cannot lock others out; slow handshakes and heads are cut", async () => {
  const PER_ADDRESS = 40;
  const node = await createStorageNode({
    reservedSpace: "0",
    storageConfig: {
      max_connections: 100,
      max_connections_per_address: PER_ADDRESS,
      handshake_timeout: "5s",
      request_timeout: "2s",
    },
  });
  const server = await startStorageServer(node.dir);
  const port = Number(server.address.split(":").pop());
  const n = await loadStorageNode(node.dir);
  const auth = `${AUTH_SCHEME} ${base32Encode(n.swissnum)}`;
  const flood: net.Socket[] = [];
  try {
    // 150 idle connections from 127.0.0.2 (more than max_connections in all).
    const opened = await Promise.allSettled(
      Array.from({ length: 150 }, () => RawTls.tcp(port, { localAddress: "127.0.0.2" })),
    );
    for (const r of opened) if (r.status === "fulfilled") flood.push(r.value);
    // Refused ones are closed at once (seen here within 3 s even on a loaded machine,
    // well before the 5 s handshake deadline closes the rest).
    let alive = flood.length;
    for (let t = 0; t < 30 && alive > PER_ADDRESS; t++) {
      await new Promise((r) => setTimeout(r, 100));
      alive = flood.filter((s) => !s.destroyed).length;
    }
    assert.ok(alive <= PER_ADDRESS, `${alive} flood connections stayed open`);

    // Another address is served at once.
    const t0 = Date.now();
    const c = await RawTls.open(port, { localAddress: "127.0.0.3" });
    c.write(`GET /shoal/v1/version HTTP/1.1\r\nhost: x\r\nauthorization: ${auth}\r\n\r\n`);
    const reply = await c.waitFor("\r\n\r\n", 10_000);
    assert.match(reply, /^HTTP\/1\.1 200 /);
    console.log(
      `served from 127.0.0.3 in ${Date.now() - t0} ms beside ${alive} idle from 127.0.0.2`,
    );
    c.close();

    // The idle flood itself never completes a handshake: closed after handshake_timeout.
    const closes = await Promise.all(flood.map((s) => closedWithin(s, 15_000)));
    assert.ok(closes.every((t) => t !== null), "idle TCP connections are closed");

    // Half a ClientHello, then silence: closed after the handshake deadline.
    const half = await RawTls.tcp(port, { localAddress: "127.0.0.4" });
    half.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    const halfClosed = await closedWithin(half, 15_000);
    assert.notEqual(halfClosed, null, "a half-sent ClientHello is closed");
    assert.ok(halfClosed! >= 4500, `closed after ${halfClosed} ms, not before the deadline`);
    console.log(`half-sent ClientHello closed after ${halfClosed} ms (handshake_timeout 5s)`);

    // After TLS: a head trickling in, and a small body trickling in, are cut at request_timeout.
    for (const what of ["head", "body"]) {
      const t = await RawTls.open(port, { localAddress: "127.0.0.5" });
      t.write(
        what === "head"
          ? "GET /shoal/v1/version HTTP/1.1\r\nx: "
          : `POST /shoal/v1/mutable/batch-read HTTP/1.1\r\nhost: x\r\nauthorization: ${auth}\r\n` +
            "content-length: 1000\r\n\r\n",
      );
      const drip = setInterval(() => t.ended || t.write("a"), 200);
      const start = Date.now();
      const cut = await t.closedWithin(10_000);
      clearInterval(drip);
      assert.ok(cut, `a trickling ${what} is cut`);
      assert.ok(Date.now() - start < 6000, `${what} cut after ${Date.now() - start} ms`);
      t.close();
    }
    assert.doesNotMatch(server.stderr(), new RegExp(base32Encode(n.swissnum)));
  } finally {
    for (const s of flood) s.destroy();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("connections count against their IPv4 address or their IPv6 /64", async () => {
  const { connectionGroup } = await import("../../lib/storage/https_server.ts");
  assert.equal(connectionGroup("127.0.0.2"), "127.0.0.2");
  assert.equal(connectionGroup("::ffff:127.0.0.2"), "127.0.0.2");
  assert.equal(connectionGroup("::1"), "0:0:0:0::/64");
  assert.equal(connectionGroup("2001:db8:1:2::5"), "2001:db8:1:2::/64");
  assert.equal(connectionGroup("2001:0db8:0001:0002:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  assert.equal(connectionGroup("2001:DB8:1:2:ffff::1"), "2001:db8:1:2::/64");
  assert.equal(connectionGroup("fe80::1%eth0"), "fe80:0:0:0::/64");
  assert.equal(connectionGroup("2001:db8::"), "2001:db8:0:0::/64");
});
