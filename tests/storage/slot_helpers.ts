/**
 * Mutable slots for storage tests: a slot's storage index derives from its
 * verification key, and a write that creates a slot carries a proof signed by
 * its signing key (docs/storage-protocol.md §6.3). slotSi(n) gives the storage
 * index of test slot n (seed = 32 bytes of n); slotProof signs for it.
 */
import { toHex } from "../../lib/codec/mod.ts";
import {
  publicKeyFromSeedSync,
  sha256,
  sign,
  slotCreationMessage,
  storageIndexFromPublicKey,
} from "../../lib/crypto/mod.ts";
import type { SlotProof } from "../../lib/storage/mod.ts";

const seeds = new Map<string, Uint8Array>();

/** The seed of test slot n: 32 bytes of n (n 0..255), or of a larger n's bytes. */
export function slotSeed(n: number): Uint8Array {
  const seed = new Uint8Array(32).fill(n & 0xff);
  new DataView(seed.buffer).setUint32(0, n);
  return seed;
}

/** The storage index of test slot n (remembered, so slotProof can sign for it). */
export function slotSi(n: number): Uint8Array {
  const seed = slotSeed(n);
  const si = storageIndexFromPublicKey(publicKeyFromSeedSync(seed));
  seeds.set(toHex(si), seed);
  return si;
}

/** The creation proof for slot `si` (from slotSi) on server `serverId` with write enabler `we`. */
export async function slotProof(
  si: Uint8Array,
  serverId: Uint8Array,
  we: Uint8Array,
): Promise<SlotProof> {
  const seed = seeds.get(toHex(si));
  if (!seed) throw new Error("slotProof: not a storage index from slotSi()");
  return {
    verifyKey: publicKeyFromSeedSync(seed),
    signature: await sign(seed, slotCreationMessage(si, serverId, sha256(we))),
  };
}

/** Test slot n on server `serverId`: its storage index and the secrets a writer sends. */
export async function slotFor(n: number, serverId: Uint8Array, we?: Uint8Array) {
  const si = slotSi(n);
  const writeEnabler = we ?? new Uint8Array(32).fill(9);
  return {
    si,
    secrets: {
      writeEnabler,
      leaseRenew: new Uint8Array(32).fill(2),
      leaseCancel: new Uint8Array(32).fill(3),
      slotProof: await slotProof(si, serverId, writeEnabler),
    },
  };
}
