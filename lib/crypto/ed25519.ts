/**
 * Ed25519 (RFC 8032) through Web Crypto. A private key is its 32-byte seed;
 * a public key is the 32-byte raw encoding; a signature is 64 bytes.
 *
 * Imported CryptoKeys are kept in small bounded caches (least recently used
 * dropped first) because importing costs about as much as signing.
 */
import { toHex } from "../codec/bytes.ts";

/** DER prefix of a PKCS#8 PrivateKeyInfo wrapping a 32-byte Ed25519 seed. */
const PKCS8_PREFIX = new Uint8Array([
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
]);

const CACHE_LIMIT = 256;

class BoundedCache<V> {
  #map = new Map<string, V>();
  get(k: string): V | undefined {
    const v = this.#map.get(k);
    if (v !== undefined) {
      this.#map.delete(k);
      this.#map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.#map.delete(k);
    this.#map.set(k, v);
    if (this.#map.size > CACHE_LIMIT) this.#map.delete(this.#map.keys().next().value!);
  }
  delete(k: string): void {
    this.#map.delete(k);
  }
}

interface PrivateEntry {
  key: CryptoKey;
  publicKey: Uint8Array;
}
const privateCache = new BoundedCache<Promise<PrivateEntry>>();
const publicCache = new BoundedCache<Promise<CryptoKey>>();

function base64UrlDecode(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function importSeed(seed: Uint8Array): Promise<PrivateEntry> {
  const pkcs8 = new Uint8Array(PKCS8_PREFIX.length + 32);
  pkcs8.set(PKCS8_PREFIX);
  pkcs8.set(seed, PKCS8_PREFIX.length);
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, "Ed25519", true, ["sign"]);
  pkcs8.fill(0);
  const jwk = await crypto.subtle.exportKey("jwk", key);
  const publicKey = base64UrlDecode(jwk.x!);
  if (publicKey.length !== 32) {
    throw new Error("Ed25519: Web Crypto returned a malformed public key");
  }
  return { key, publicKey };
}

function privateEntry(seed: Uint8Array): Promise<PrivateEntry> {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new RangeError(`Ed25519 seed must be 32 bytes, got ${seed?.length}`);
  }
  const id = toHex(seed);
  let entry = privateCache.get(id);
  if (!entry) {
    entry = importSeed(seed);
    privateCache.set(id, entry);
    entry.catch(() => privateCache.delete(id));
  }
  return entry;
}

/** The 32-byte raw public key of the private key whose seed is `seed`. */
export async function publicKeyFromSeed(seed: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array((await privateEntry(seed)).publicKey);
}

/** The 64-byte Ed25519 signature of `message` by the key with seed `seed`. */
export async function sign(
  seed: Uint8Array,
  message: Uint8Array,
): Promise<Uint8Array<ArrayBuffer>> {
  const { key } = await privateEntry(seed);
  return new Uint8Array(
    await crypto.subtle.sign("Ed25519", key, message as Uint8Array<ArrayBuffer>),
  );
}

/**
 * Whether `signature` is a valid Ed25519 signature of `message` under the raw
 * 32-byte `publicKey`. Never throws: malformed keys and signatures give false.
 */
export async function verify(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): Promise<boolean> {
  try {
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
    if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
    if (!(message instanceof Uint8Array)) return false;
    const id = toHex(publicKey);
    let keyP = publicCache.get(id);
    if (!keyP) {
      keyP = crypto.subtle.importKey("raw", new Uint8Array(publicKey), "Ed25519", false, [
        "verify",
      ]);
      publicCache.set(id, keyP);
      keyP.catch(() => {}); // a bad key stays cached as a rejection: verify gives false
    }
    const key = await keyP;
    return await crypto.subtle.verify(
      "Ed25519",
      key,
      new Uint8Array(signature),
      message as Uint8Array<ArrayBuffer>,
    );
  } catch {
    return false;
  }
}
