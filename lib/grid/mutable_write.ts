/**
 * One test-and-write of a mutable object's shares on one server, shared by publishing
 * (mutable.ts), re-spreading (mutable_respread.ts) and pushing the newest version
 * (mutable_push.ts): each share written only if the server still holds what we saw there
 * (its checkstring, or nothing), shares of an older layout removed, the write enabler and
 * lease secrets derived for this server, and the slot-creation proof attached
 * (storage-protocol.md §6.3).
 */
import {
  leaseSecrets,
  sha256,
  sign,
  slotCreationMessage,
  writeEnabler,
  writeEnablerMaster,
} from "../crypto/mod.ts";
import type {
  ReadTestWriteResponse,
  ReadVectorEntry,
  ShareTestWrite,
} from "../storage/protocol.ts";
import { CHECKSTRING_SIZE } from "./mutable_share.ts";
import type { GridServer } from "./servers.ts";

/** The signing side of a mutable object, as far as a write needs it. */
export interface ShareWriteKeys {
  seed: Uint8Array;
  publicKey: Uint8Array;
  writekey: Uint8Array;
  storageIndex: Uint8Array;
}

/** A share to write, and what the server held at its number when we looked (empty: none). */
export interface ShareWrite {
  share: number;
  data: Uint8Array;
  specimen: Uint8Array;
}

/** A share to remove, and the checkstring the server held for it when we looked. */
export interface ShareRemoval {
  share: number;
  specimen: Uint8Array;
}

/** The test-and-write vectors for writing `writes` and removing `removals`. */
export function shareVectors(writes: ShareWrite[], removals: ShareRemoval[]): ShareTestWrite[] {
  const test = (specimen: Uint8Array) => [{ offset: 0, size: CHECKSTRING_SIZE, specimen }];
  return [
    ...writes.map((w) => ({
      share: w.share,
      test: test(w.specimen),
      write: [{ offset: 0, data: w.data }],
      newLength: w.data.length,
    })),
    ...removals.map((r) => ({ share: r.share, test: test(r.specimen), write: [], newLength: 0 })),
  ];
}

/** Send `vectors` to `server` with this server's secrets and the slot-creation proof. */
export async function testAndWrite(
  leaseSecret: Uint8Array,
  keys: ShareWriteKeys,
  server: GridServer,
  vectors: ShareTestWrite[],
  readVector: ReadVectorEntry[] = [],
): Promise<ReadTestWriteResponse> {
  const si = keys.storageIndex;
  const lease = leaseSecrets(leaseSecret, si, server.serverId);
  const we = writeEnabler(writeEnablerMaster(keys.writekey), server.serverId);
  const msg = slotCreationMessage(si, server.serverId, sha256(we));
  const slotProof = { verifyKey: keys.publicKey, signature: await sign(keys.seed, msg) };
  return await server.storage.readTestWrite(si, {
    writeEnabler: we,
    leaseRenew: lease.renew,
    leaseCancel: lease.cancel,
    slotProof,
  }, { testWriteVectors: vectors, readVector });
}
