/**
 * #11.16: chunked request framing requires CRLF in chunk-size and trailer
 * lines. A bare LF is refused on the wire (400, connection closed); a
 * well-formed chunked body on a fresh connection is still served.
 */
import assert from "node:assert/strict";
import { serveHttps } from "../../lib/storage/https_server.ts";
import { generateTlsIdentity } from "../../lib/storage/tls.ts";
import { RawTls } from "./wire_helpers.ts";

const ID = await generateTlsIdentity(["127.0.0.1"]);

Deno.test("chunked bodies: a bare LF in a chunk-size or trailer line is refused with 400", async () => {
  let handled = 0;
  const server = serveHttps({
    hostname: "127.0.0.1",
    port: 0,
    certPem: ID.certPem,
    keyPem: ID.keyPem,
    handler: async (req) => {
      const body = await req.text();
      handled++;
      return new Response(`got:${body}`);
    },
    log: () => {},
  });
  try {
    const head = "POST /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n";
    const cases = [
      ["chunk-size line", "5\nhello\r\n0\r\n\r\n"],
      ["last-chunk line", "5\r\nhello\r\n0\n\r\n"],
      ["trailer line", "5\r\nhello\r\n0\r\nx-t: 1\n\r\n"],
      ["final empty line", "5\r\nhello\r\n0\r\n\n"],
    ];
    for (const [what, body] of cases) {
      const c = await RawTls.open(server.addr.port);
      c.write(head + body);
      const text = await c.waitFor("\r\n\r\n", 10_000);
      assert.match(text, /^HTTP\/1\.1 400 /, `${what}: ${JSON.stringify(text.slice(0, 80))}`);
      assert.ok(!text.includes("got:hello"), `${what}: the body must not be accepted`);
      assert.ok(await c.closedWithin(5000), `${what}: the connection is closed`);
      c.close();
    }
    const ok = await RawTls.open(server.addr.port);
    ok.write(head + "5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n");
    const text = await ok.waitFor("got:hello", 10_000);
    assert.match(text, /^HTTP\/1\.1 200 /);
    ok.close();
    assert.equal(handled >= 1, true);
  } finally {
    server.close();
    server.closeAll();
    await server.finished;
  }
});
