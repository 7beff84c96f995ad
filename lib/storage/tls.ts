/**
 * TLS identities of storage servers and their pins.
 *
 * A storage server presents a self-signed certificate; clients authenticate it
 * by the pin: SHA-256 of the certificate's DER SubjectPublicKeyInfo (docs/storage-url.md).
 * The certificate is an end-entity certificate (basicConstraints CA:FALSE, since
 * rustls refuses a CA certificate used as an end entity), ECDSA P-256, with the
 * given hosts as subjectAltNames (IP addresses as iPAddress SANs).
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { X509Certificate as NodeX509 } from "node:crypto";
import { sha256 } from "../crypto/hash.ts";

export interface TlsIdentity {
  /** PEM certificate (public). */
  certPem: string;
  /** PKCS#8 PEM private key (secret: store with mode 0600). */
  keyPem: string;
  /** SHA-256 of the certificate's SubjectPublicKeyInfo DER (32 bytes). */
  pin: Uint8Array;
}

/** Thrown for a certificate that cannot be parsed. */
export class TlsIdentityError extends Error {
  override name = "TlsIdentityError";
}

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
/** Validity: from one day ago (clock skew) for 100 years; pins, not dates, are what clients check. */
const VALIDITY_YEARS = 100;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function sanFor(host: string): { type: "ip" | "dns"; value: string } {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (IPV4.test(h) || h.includes(":")) return { type: "ip", value: h };
  return { type: "dns", value: h };
}

function pem(label: string, der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Make a fresh key pair and self-signed certificate naming `hosts` (DNS names or IP addresses). */
export async function generateTlsIdentity(hosts: string[]): Promise<TlsIdentity> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const serial = new Uint8Array(16);
  crypto.getRandomValues(serial);
  serial[0] &= 0x7f; // positive INTEGER
  serial[0] |= 0x01; // and non-zero leading byte
  const now = Date.now();
  const names = [...new Set(hosts.length > 0 ? hosts : ["localhost"])].map(sanFor);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Array.from(serial, (b) => b.toString(16).padStart(2, "0")).join(""),
    name: "CN=shoal storage server",
    notBefore: new Date(now - 24 * 3600 * 1000),
    notAfter: new Date(now + VALIDITY_YEARS * 365.25 * 24 * 3600 * 1000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names, false),
    ],
  });
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", keys.privateKey));
  const certPem = cert.toString("pem").replace(/\r\n/g, "\n").trimEnd() + "\n";
  return { certPem, keyPem: pem("PRIVATE KEY", pkcs8), pin: pinFromCertPem(certPem) };
}

/** The pin of a PEM certificate: SHA-256 of its SubjectPublicKeyInfo DER. */
export function pinFromCertPem(certPem: string): Uint8Array {
  let cert: NodeX509;
  try {
    cert = new NodeX509(certPem);
  } catch (e) {
    throw new TlsIdentityError(`not a PEM certificate: ${(e as Error).message}`);
  }
  return pinFromCertDer(new Uint8Array(cert.raw));
}

/** The pin of a DER certificate (as `getPeerCertificate().raw` gives it). */
export function pinFromCertDer(der: Uint8Array): Uint8Array {
  return sha256(spkiOfCertDer(der));
}

/**
 * Extract the SubjectPublicKeyInfo DER from a DER certificate by walking its
 * ASN.1 structure: Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?,
 * serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }, ... }.
 * Every length is bounds-checked; malformed input throws TlsIdentityError.
 */
export function spkiOfCertDer(der: Uint8Array): Uint8Array {
  const bad = (why: string) => new TlsIdentityError(`malformed certificate DER: ${why}`);
  const tlv = (pos: number, end: number) => {
    if (pos + 2 > end) throw bad("truncated");
    const tag = der[pos];
    let len = der[pos + 1];
    let hdr = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4 || pos + 2 + n > end) throw bad("bad length");
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[pos + 2 + i];
      hdr += n;
    }
    if (pos + hdr + len > end) throw bad("length past end");
    return { tag, start: pos, body: pos + hdr, end: pos + hdr + len };
  };
  const cert = tlv(0, der.length);
  if (cert.tag !== 0x30) throw bad("not a SEQUENCE");
  const tbs = tlv(cert.body, cert.end);
  if (tbs.tag !== 0x30) throw bad("tbsCertificate is not a SEQUENCE");
  let p = tbs.body;
  let field = tlv(p, tbs.end);
  if (field.tag === 0xa0) { // explicit version
    p = field.end;
    field = tlv(p, tbs.end);
  }
  // serialNumber, signature, issuer, validity, subject
  for (let i = 0; i < 5; i++) {
    p = tlv(p, tbs.end).end;
  }
  const spki = tlv(p, tbs.end);
  if (spki.tag !== 0x30) throw bad("subjectPublicKeyInfo is not a SEQUENCE");
  return der.slice(spki.start, spki.end);
}
