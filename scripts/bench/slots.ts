/**
 * Fresh mutable slots for benchmarks: a storage index derived from a new
 * verification key and the creation proof a server requires for the first
 * write (docs/storage-protocol.md §6.3).
 */
import {
  mutableKeysFromSeed,
  randomBytes,
  sha256,
  sign,
  slotCreationMessage,
} from "../../lib/crypto/mod.ts";
import type { SlotProof } from "../../lib/storage/mod.ts";

export interface BenchSlot {
  si: Uint8Array;
  proof: SlotProof;
}

/** A new slot for server `serverId` and write enabler `we`. */
export async function freshSlot(serverId: Uint8Array, we: Uint8Array): Promise<BenchSlot> {
  const keys = await mutableKeysFromSeed(randomBytes(32));
  const msg = slotCreationMessage(keys.storageIndex, serverId, sha256(we));
  return {
    si: keys.storageIndex,
    proof: { verifyKey: keys.publicKey, signature: await sign(keys.seed, msg) },
  };
}
