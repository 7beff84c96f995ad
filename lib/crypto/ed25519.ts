/**
 * Ed25519 (RFC 8032) through Web Crypto. A private key is its 32-byte seed;
 * a public key is the 32-byte raw encoding; a signature is 64 bytes.
 *
 * Imported CryptoKeys are kept in small bounded caches (least recently used
 * dropped first) because importing costs about as much as signing.
 *
 * verify() is strict where RFC 8032 leaves room (docs/security.md §2.10): it
 * refuses public keys that are not canonical encodings (y >= p, or x = 0 with
 * the sign bit set) or that are points of small order (the identity key, for
 * one, "verifies" S = 0 for every message), and signatures whose S is not
 * below the group order L. Vectors: tests/vectors/ed25519.json.
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

/** p = 2^255 - 19 and L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
const P_LE = new Uint8Array(32).fill(0xff);
P_LE[0] = 0xed;
P_LE[31] = 0x7f;
const L_LE = new Uint8Array([
  0xed,
  0xd3,
  0xf5,
  0x5c,
  0x1a,
  0x63,
  0x12,
  0x58,
  0xd6,
  0x9c,
  0xf7,
  0xa2,
  0xde,
  0xf9,
  0xde,
  0x14,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  0x10,
]);

/** a < b for 32-byte little-endian integers. */
function lessLE(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

/**
 * The y-coordinates (little-endian, sign bit clear) of the eight points of
 * small order: 1 (the identity), p - 1 (order 2), 0 (order 4, both signs of x)
 * and the two y of the four points of order 8. With the sign bit masked, a
 * canonical key whose y is one of these is one of the eight points.
 */
const SMALL_ORDER_Y = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
];

/**
 * Whether `key` is a public key verify() accepts: a canonical encoding
 * (y < p; x = 0, which only y = ±1 have, with the sign bit clear) of a point
 * that is not of small order. Points off the curve are left to Web Crypto.
 */
export function isAcceptablePublicKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== 32) return false;
  const y = new Uint8Array(key);
  y[31] &= 0x7f;
  if (!lessLE(y, P_LE)) return false;
  // Every point with x = 0 (y = 1, y = p - 1) is of small order, so the
  // "-0" encodings are refused here too.
  return !SMALL_ORDER_Y.includes(toHex(y));
}

/**
 * Whether `signature` is a valid Ed25519 signature of `message` under the raw
 * 32-byte `publicKey`. Never throws: malformed keys and signatures give false,
 * and so do small-order or non-canonical keys and S >= L (see the top).
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
    if (!isAcceptablePublicKey(publicKey)) return false;
    if (!lessLE(signature.subarray(32), L_LE)) return false; // S >= L is not canonical
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
