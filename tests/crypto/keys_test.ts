import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex } from "../../lib/codec/mod.ts";
import {
  convergenceKey,
  fingerprintFromPublicKey,
  immutableStorageIndex,
  leaseSecrets,
  mutableDataKey,
  mutableKeysFromSeed,
  publicKeyFromSeed,
  readkeyFromWritekey,
  sha256,
  slotCreationMessage,
  storageIndexFromFingerprint,
  storageIndexFromPublicKey,
  uploadSecret,
  writeEnabler,
  writeEnablerMaster,
  writekeyFromSeed,
} from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

Deno.test("the derivation chain reproduces every vector", async () => {
  assert.ok(V.derivation.length >= 3);
  for (const v of V.derivation) {
    const seed = fromHex(v.seed);
    const keys = await mutableKeysFromSeed(seed);
    assert.equal(toHex(keys.seed), v.seed);
    assert.equal(toHex(keys.publicKey), v.publicKey);
    assert.equal(toHex(keys.writekey), v.writekey);
    assert.equal(toHex(keys.readkey), v.readkey);
    assert.equal(toHex(keys.storageIndex), v.storageIndex);
    assert.equal(toHex(keys.fingerprint), v.fingerprint);
    assert.equal(toHex(writekeyFromSeed(seed)), v.writekey);
    assert.equal(toHex(readkeyFromWritekey(fromHex(v.writekey))), v.readkey);
    assert.equal(toHex(storageIndexFromFingerprint(fromHex(v.fingerprint))), v.storageIndex);
    assert.equal(toHex(storageIndexFromPublicKey(fromHex(v.publicKey))), v.storageIndex);
    assert.equal(toHex(fingerprintFromPublicKey(await publicKeyFromSeed(seed))), v.fingerprint);
    const master = writeEnablerMaster(keys.writekey);
    assert.equal(toHex(master), v.writeEnablerMaster);
    assert.equal(toHex(writeEnabler(master, fromHex(v.serverId))), v.writeEnabler);
    assert.equal(
      toHex(
        slotCreationMessage(
          keys.storageIndex,
          fromHex(v.serverId),
          sha256(fromHex(v.writeEnabler)),
        ),
      ),
      v.slotCreationMessage,
    );
    assert.equal(toHex(mutableDataKey(keys.readkey, fromHex(v.salt))), v.mutableDataKey);
    assert.equal(toHex(immutableStorageIndex(fromHex(v.immutableKey))), v.immutableStorageIndex);
    assert.equal(
      toHex(
        convergenceKey(
          fromHex(v.convergenceSecret),
          fromHex(v.encodingParams),
          fromHex(v.plaintextHash),
        ),
      ),
      v.convergenceKey,
    );
    const lease = leaseSecrets(
      fromHex(v.masterLeaseSecret),
      keys.storageIndex,
      fromHex(v.serverId),
    );
    assert.equal(toHex(lease.renew), v.leaseRenew);
    assert.equal(toHex(lease.cancel), v.leaseCancel);
    assert.equal(
      toHex(
        uploadSecret(
          fromHex(v.uploadMaster),
          fromHex(v.immutableStorageIndex),
          fromHex(v.serverId),
        ),
      ),
      v.uploadSecret,
    );
  }
});

Deno.test("derived values have the documented sizes and all differ from each other", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 32, maxLength: 32 }), async (seed) => {
      const k = await mutableKeysFromSeed(seed);
      assert.equal(k.publicKey.length, 32);
      assert.equal(k.writekey.length, 32);
      assert.equal(k.readkey.length, 32);
      assert.equal(k.storageIndex.length, 16);
      assert.equal(k.fingerprint.length, 32);
      const all = [
        k.seed,
        k.publicKey,
        k.writekey,
        k.readkey,
        k.fingerprint,
        writeEnablerMaster(k.writekey),
      ];
      assert.equal(new Set(all.map(toHex)).size, all.length);
    }),
    { numRuns: 50 },
  );
});

Deno.test("write enablers and lease secrets differ per server; data keys differ per salt", () => {
  const master = writeEnablerMaster(new Uint8Array(32).fill(1));
  const a = writeEnabler(master, new Uint8Array([1]));
  const b = writeEnabler(master, new Uint8Array([2]));
  assert.notEqual(toHex(a), toHex(b));
  const si = new Uint8Array(16);
  const l1 = leaseSecrets(new Uint8Array(32), si, new Uint8Array([1]));
  const l2 = leaseSecrets(new Uint8Array(32), si, new Uint8Array([2]));
  assert.notEqual(toHex(l1.renew), toHex(l2.renew));
  assert.notEqual(toHex(l1.renew), toHex(l1.cancel));
  const rk = new Uint8Array(32);
  assert.notEqual(
    toHex(mutableDataKey(rk, new Uint8Array(16))),
    toHex(mutableDataKey(rk, new Uint8Array(16).fill(1))),
  );
});

Deno.test("derivation functions refuse inputs of the wrong length", async () => {
  const b = (n: number) => new Uint8Array(n);
  assert.throws(() => writekeyFromSeed(b(31)), RangeError);
  assert.throws(() => readkeyFromWritekey(b(33)), RangeError);
  assert.throws(() => storageIndexFromFingerprint(b(16)), RangeError);
  assert.throws(() => slotCreationMessage(b(16), b(0), b(32)), RangeError);
  assert.throws(() => fingerprintFromPublicKey(b(0)), RangeError);
  assert.throws(() => writeEnablerMaster(b(1)), RangeError);
  assert.throws(() => writeEnabler(b(32), b(0)), RangeError);
  assert.throws(() => mutableDataKey(b(32), b(8)), RangeError);
  assert.throws(() => immutableStorageIndex(b(16)), RangeError);
  assert.throws(() => convergenceKey(b(32), b(4), b(31)), RangeError);
  assert.throws(() => leaseSecrets(b(32), b(32), b(1)), RangeError);
  await assert.rejects(mutableKeysFromSeed(b(64)), RangeError);
});
