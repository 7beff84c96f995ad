import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import tls from "node:tls";
import { toHex } from "../../lib/codec/mod.ts";
import { sha256 } from "../../lib/crypto/hash.ts";
import {
  generateTlsIdentity,
  pinFromCertDer,
  pinFromCertPem,
  spkiOfCertDer,
  TlsIdentityError,
} from "../../lib/storage/tls.ts";

Deno.test("generated certificate: end entity, P-256, SANs for DNS names and IPs, PKCS#8 key", async () => {
  const id = await generateTlsIdentity(["127.0.0.1", "storage.example", "::1"]);
  const c = new X509Certificate(id.certPem);
  assert.equal(c.ca, false);
  assert.equal(
    c.subjectAltName,
    "IP Address:127.0.0.1, DNS:storage.example, IP Address:::1",
  );
  assert.equal(c.publicKey.asymmetricKeyType, "ec");
  assert.ok(new Date(c.validTo).getTime() > Date.now() + 50 * 365 * 86400_000);
  assert.ok(new Date(c.validFrom).getTime() < Date.now());
  assert.match(id.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.ok(c.checkPrivateKey((await import("node:crypto")).createPrivateKey(id.keyPem)));
});

Deno.test("the pin is SHA-256 of the SubjectPublicKeyInfo DER", async () => {
  const id = await generateTlsIdentity(["127.0.0.1"]);
  const c = new X509Certificate(id.certPem);
  const spki = new Uint8Array(c.publicKey.export({ type: "spki", format: "der" }));
  assert.equal(toHex(id.pin), toHex(sha256(spki)));
  assert.equal(toHex(pinFromCertPem(id.certPem)), toHex(id.pin));
  assert.equal(toHex(spkiOfCertDer(new Uint8Array(c.raw))), toHex(spki));
  const other = await generateTlsIdentity(["127.0.0.1"]);
  assert.notEqual(toHex(other.pin), toHex(id.pin));
});

Deno.test("malformed certificates are refused with TlsIdentityError", () => {
  assert.throws(() => pinFromCertPem("not a cert"), TlsIdentityError);
  for (
    const der of [
      new Uint8Array(0),
      new Uint8Array([0x30]),
      new Uint8Array([0x30, 0x85, 1, 1, 1, 1, 1]),
      new Uint8Array([0x31, 0]),
    ]
  ) {
    assert.throws(() => pinFromCertDer(der), TlsIdentityError);
  }
});

Deno.test("Deno.serve accepts the identity and a node:tls client sees the same pin", async () => {
  const id = await generateTlsIdentity(["127.0.0.1"]);
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, cert: id.certPem, key: id.keyPem, onListen() {} },
    () => new Response("ok"),
  );
  try {
    const peer = await new Promise<Uint8Array>((resolve, reject) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: server.addr.port,
        rejectUnauthorized: false,
        ALPNProtocols: ["http/1.1"],
      }, () => {
        const raw = new Uint8Array(s.getPeerCertificate(true).raw);
        s.destroy();
        resolve(pinFromCertDer(raw));
      });
      s.on("error", reject);
    });
    assert.equal(toHex(peer), toHex(id.pin));
    // And rustls-based clients accept it as an end-entity certificate (CA:FALSE).
    const client = Deno.createHttpClient({ caCerts: [id.certPem], http2: false });
    const r = await fetch(`https://127.0.0.1:${server.addr.port}/`, { client });
    assert.equal(await r.text(), "ok");
    client.close();
  } finally {
    await server.shutdown();
  }
});
