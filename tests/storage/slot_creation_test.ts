/**
 * #11.6: only the holder of a slot's signing key can create the slot. A grid
 * member knows a GSD's or GSA's storage index, fingerprint and (from any
 * share) its verification key, but not its signing key. Racing the real
 * writer to a fresh server, every attempt is refused (no proof, a proof for
 * another storage index, a proof replayed from another server or for another
 * write enabler); the real writer then creates the slot with the write
 * enabler publish derives, through lib/grid's publish.
 */
import assert from "node:assert/strict";
import {
  mutableKeysFromSeed,
  sha256,
  sign,
  slotCreationMessage,
  writeEnabler,
  writeEnablerMaster,
} from "../../lib/crypto/mod.ts";
import {
  parseStorageUrl,
  type SlotProof,
  StorageClient,
  StorageError,
} from "../../lib/storage/mod.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("a member racing to create a slot on a fresh server is refused; the writecap holder succeeds", async () => {
  const node = await createStorageNode({ reservedSpace: "0" });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url));
  try {
    const serverId = client.serverId;
    // The real object (say, the grid's GSD) and what every member can know of it.
    const real = await mutableKeysFromSeed(crypto.getRandomValues(new Uint8Array(32)));
    const si = real.storageIndex;
    // The attacker's own key pair, and a write enabler it picks.
    const other = await mutableKeysFromSeed(crypto.getRandomValues(new Uint8Array(32)));
    const squatWe = new Uint8Array(32).fill(0x66);
    const lease = {
      leaseRenew: new Uint8Array(32).fill(2),
      leaseCancel: new Uint8Array(32).fill(3),
    };
    const squat = (slotProof?: SlotProof) =>
      client.readTestWrite(si, { writeEnabler: squatWe, ...lease, slotProof }, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: enc("squatted") }],
          newLength: null,
        }],
        readVector: [],
      });
    const refused = (code: string) => (e: unknown) =>
      e instanceof StorageError && e.status === 403 && e.code === code;

    // No proof at all.
    await assert.rejects(squat(), refused("slot-proof-required"));
    // The real verification key with a signature by the attacker's key.
    const msg = slotCreationMessage(si, serverId, sha256(squatWe));
    await assert.rejects(
      squat({ verifyKey: real.publicKey, signature: await sign(other.seed, msg) }),
      refused("bad-slot-proof"),
    );
    // The attacker's own key, validly signed: it does not derive this storage index.
    await assert.rejects(
      squat({ verifyKey: other.publicKey, signature: await sign(other.seed, msg) }),
      refused("bad-slot-proof"),
    );
    // A genuine proof captured from the real writer, but for another server...
    const master = writeEnablerMaster(real.writekey);
    const otherServer = new Uint8Array(32).fill(0x44);
    const elsewhere = slotCreationMessage(si, otherServer, sha256(squatWe));
    await assert.rejects(
      squat({ verifyKey: real.publicKey, signature: await sign(real.seed, elsewhere) }),
      refused("bad-slot-proof"),
    );
    // ... or for this server and the real write enabler (replayed with the attacker's).
    const realWe = writeEnabler(master, serverId);
    const genuine: SlotProof = {
      verifyKey: real.publicKey,
      signature: await sign(real.seed, slotCreationMessage(si, serverId, sha256(realWe))),
    };
    await assert.rejects(squat(genuine), refused("bad-slot-proof"));
    assert.deepEqual(await client.listMutable(si), [], "nothing was created");

    // The writecap holder creates the slot.
    const created = await client.readTestWrite(si, {
      writeEnabler: realWe,
      ...lease,
      slotProof: genuine,
    }, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("real") }],
        newLength: null,
      }],
      readVector: [],
    });
    assert.equal(created.success, true);
    // Later writes need no proof, only the write enabler; the attacker's is refused.
    const later = await client.readTestWrite(si, { writeEnabler: realWe, ...lease }, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("REAL") }],
        newLength: null,
      }],
      readVector: [],
    });
    assert.equal(later.success, true);
    await assert.rejects(
      squat(genuine),
      (e: unknown) =>
        e instanceof StorageError && e.status === 403 && e.code === "bad-write-enabler",
    );
    assert.deepEqual(await client.readMutable(si, 0), enc("REAL"));
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});
