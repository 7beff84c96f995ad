/**
 * Key derivation (docs/crypto.md §5). Every derived value is a tagged hash
 * of the value above it, so each step is one-way: a readkey holder cannot
 * find the writekey, a storage-index holder cannot find the readkey.
 *
 *   seed (Ed25519 private key = the writecap)
 *     -> writekey        = H(writekey, seed)
 *     -> readkey         = H(readkey, writekey)
 *   public key (from seed)
 *     -> fingerprint     = H(fingerprint, publicKey)
 *     -> storage index   = H(storage-index, fingerprint)[0..16)
 *   writekey -> write-enabler master -> per-server write enabler
 *   readkey + salt -> per-version data key
 *
 * The storage index follows from the verification key, so a storage server
 * can check that whoever creates a slot holds its signing key (slot-creation
 * proof, docs/storage-protocol.md §6.3).
 *
 * All functions here are synchronous except the ones that need the Ed25519
 * public key.
 */
import { publicKeyFromSeed } from "./ed25519.ts";
import { taggedHash, TAGS } from "./hash.ts";

function need(name: string, b: Uint8Array, len: number): void {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new RangeError(`${name} must be ${len} bytes, got ${b?.length}`);
  }
}

/** writekey = taggedHash(TAGS.writekey, seed). */
export function writekeyFromSeed(seed: Uint8Array): Uint8Array {
  need("seed", seed, 32);
  return taggedHash(TAGS.writekey, seed);
}

/** readkey = taggedHash(TAGS.readkey, writekey). */
export function readkeyFromWritekey(writekey: Uint8Array): Uint8Array {
  need("writekey", writekey, 32);
  return taggedHash(TAGS.readkey, writekey);
}

/** Mutable storage index = first 16 bytes of taggedHash(TAGS.storageIndex, fingerprint). */
export function storageIndexFromFingerprint(fingerprint: Uint8Array): Uint8Array {
  need("fingerprint", fingerprint, 32);
  return taggedHash(TAGS.storageIndex, fingerprint).slice(0, 16);
}

/** The storage index of the slot verified by `publicKey` (via its fingerprint). */
export function storageIndexFromPublicKey(publicKey: Uint8Array): Uint8Array {
  return storageIndexFromFingerprint(fingerprintFromPublicKey(publicKey));
}

/**
 * The message a slot's signing key signs to create the slot on one server:
 * taggedHash(TAGS.slotCreation, storageIndex, serverId, SHA-256(write enabler)).
 * It binds the slot to that server and to the write enabler it will fix there,
 * so a proof is useless on another server or with another write enabler.
 */
export function slotCreationMessage(
  storageIndex: Uint8Array,
  serverId: Uint8Array,
  writeEnablerHash: Uint8Array,
): Uint8Array {
  need("storage index", storageIndex, 16);
  need("write-enabler hash", writeEnablerHash, 32);
  if (!(serverId instanceof Uint8Array) || serverId.length === 0) {
    throw new RangeError("server id must be a non-empty byte string");
  }
  return taggedHash(TAGS.slotCreation, storageIndex, serverId, writeEnablerHash);
}

/** fingerprint = taggedHash(TAGS.fingerprint, publicKey). */
export function fingerprintFromPublicKey(publicKey: Uint8Array): Uint8Array {
  need("public key", publicKey, 32);
  return taggedHash(TAGS.fingerprint, publicKey);
}

/** write-enabler master = taggedHash(TAGS.writeEnablerMaster, writekey). */
export function writeEnablerMaster(writekey: Uint8Array): Uint8Array {
  need("writekey", writekey, 32);
  return taggedHash(TAGS.writeEnablerMaster, writekey);
}

/** Per-server write enabler = taggedHash(TAGS.writeEnabler, master, serverId). */
export function writeEnabler(master: Uint8Array, serverId: Uint8Array): Uint8Array {
  need("write-enabler master", master, 32);
  if (!(serverId instanceof Uint8Array) || serverId.length === 0) {
    throw new RangeError("server id must be a non-empty byte string");
  }
  return taggedHash(TAGS.writeEnabler, master, serverId);
}

/** Per-version AES-256 key = taggedHash(TAGS.mutableDataKey, readkey, salt). */
export function mutableDataKey(readkey: Uint8Array, salt: Uint8Array): Uint8Array {
  need("readkey", readkey, 32);
  if (!(salt instanceof Uint8Array) || salt.length < 16) {
    throw new RangeError(`salt must be at least 16 bytes, got ${salt?.length}`);
  }
  return taggedHash(TAGS.mutableDataKey, readkey, salt);
}

/** Immutable storage index = first 16 bytes of taggedHash(TAGS.immutableStorageIndex, key). */
export function immutableStorageIndex(key: Uint8Array): Uint8Array {
  need("immutable key", key, 32);
  return taggedHash(TAGS.immutableStorageIndex, key).slice(0, 16);
}

/**
 * Convergent immutable key = taggedHash(TAGS.convergence, secret,
 * encodingParams, plaintextHash). Same secret, parameters and plaintext give
 * the same key (and so the same storage index); a different secret gives an
 * unrelated one.
 */
export function convergenceKey(
  convergenceSecret: Uint8Array,
  encodingParams: Uint8Array,
  plaintextHash: Uint8Array,
): Uint8Array {
  need("convergence secret", convergenceSecret, 32);
  need("plaintext hash", plaintextHash, 32);
  return taggedHash(TAGS.convergence, convergenceSecret, encodingParams, plaintextHash);
}

/**
 * Per-(object, server) lease secrets from the client's master lease secret:
 * renew = taggedHash(TAGS.leaseRenew, master, storageIndex, serverId),
 * cancel = taggedHash(TAGS.leaseCancel, master, storageIndex, serverId).
 */
export function leaseSecrets(
  masterLeaseSecret: Uint8Array,
  storageIndex: Uint8Array,
  serverId: Uint8Array,
): { renew: Uint8Array; cancel: Uint8Array } {
  need("master lease secret", masterLeaseSecret, 32);
  need("storage index", storageIndex, 16);
  if (!(serverId instanceof Uint8Array) || serverId.length === 0) {
    throw new RangeError("server id must be a non-empty byte string");
  }
  return {
    renew: taggedHash(TAGS.leaseRenew, masterLeaseSecret, storageIndex, serverId),
    cancel: taggedHash(TAGS.leaseCancel, masterLeaseSecret, storageIndex, serverId),
  };
}

/**
 * The upload secret one server gets for one immutable upload:
 * taggedHash(TAGS.uploadSecret, uploadMaster, storageIndex, serverId), where
 * uploadMaster is 32 random bytes the uploader keeps for this upload only.
 * A server learns only its own secret, so it cannot abort or overwrite the
 * same upload's shares on another server (docs/crypto.md §5.6).
 */
export function uploadSecret(
  uploadMaster: Uint8Array,
  storageIndex: Uint8Array,
  serverId: Uint8Array,
): Uint8Array {
  need("upload master secret", uploadMaster, 32);
  need("storage index", storageIndex, 16);
  if (!(serverId instanceof Uint8Array) || serverId.length === 0) {
    throw new RangeError("server id must be a non-empty byte string");
  }
  return taggedHash(TAGS.uploadSecret, uploadMaster, storageIndex, serverId);
}

export interface MutableKeys {
  seed: Uint8Array;
  publicKey: Uint8Array;
  writekey: Uint8Array;
  readkey: Uint8Array;
  storageIndex: Uint8Array;
  fingerprint: Uint8Array;
}

/** The whole derivation chain of a mutable object from its 32-byte seed. */
export async function mutableKeysFromSeed(seed: Uint8Array): Promise<MutableKeys> {
  need("seed", seed, 32);
  const publicKey = await publicKeyFromSeed(seed);
  const writekey = writekeyFromSeed(seed);
  const readkey = readkeyFromWritekey(writekey);
  return {
    seed: new Uint8Array(seed),
    publicKey,
    writekey,
    readkey,
    storageIndex: storageIndexFromPublicKey(publicKey),
    fingerprint: fingerprintFromPublicKey(publicKey),
  };
}
