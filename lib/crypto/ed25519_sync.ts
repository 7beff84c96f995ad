/**
 * The Ed25519 public key of a seed, synchronously (node:crypto; Web Crypto has
 * only an asynchronous form). Used where a storage index must be derived from a
 * writecap without awaiting (docs/crypto.md §5).
 */
import { createPrivateKey, createPublicKey } from "node:crypto";

/** DER prefix of a PKCS#8 PrivateKeyInfo wrapping a 32-byte Ed25519 seed. */
const PKCS8_PREFIX = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
const SEED_PREFIX = [0x04, 0x22, 0x04, 0x20];
/** DER prefix of an Ed25519 SubjectPublicKeyInfo (12 bytes), then the 32-byte key. */
const SPKI_PREFIX_LENGTH = 12;

/** The 32-byte raw public key of the Ed25519 private key whose seed is `seed`. */
export function publicKeyFromSeedSync(seed: Uint8Array): Uint8Array {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new RangeError(`Ed25519 seed must be 32 bytes, got ${seed?.length}`);
  }
  const der = new Uint8Array(48);
  der.set([...PKCS8_PREFIX, ...SEED_PREFIX]);
  der.set(seed, 16);
  try {
    const key = createPrivateKey({ key: der as unknown as Buffer, format: "der", type: "pkcs8" });
    const spki = new Uint8Array(createPublicKey(key).export({ format: "der", type: "spki" }));
    if (spki.length !== SPKI_PREFIX_LENGTH + 32) {
      throw new Error("Ed25519: malformed public key from node:crypto");
    }
    return spki.slice(SPKI_PREFIX_LENGTH);
  } finally {
    der.fill(0);
  }
}
