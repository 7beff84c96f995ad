/**
 * #11.7: a full lease table never refuses a legitimate write. Anyone who knows
 * a storage index can add leases with fresh renew secrets; once the table is
 * full, a new lease replaces the one expiring soonest, so the storage index's
 * latest expiry (how long its shares are kept) never goes down, and a holder
 * has one lease per storage index (renewing replaces its own).
 *
 * Through the storage handler over a real on-disk store, with an injected
 * clock so that expiry is exact.
 */
import assert from "node:assert/strict";
import { base32Encode, encodeCbor } from "../../lib/codec/mod.ts";
import { HEADERS } from "../../lib/storage/mod.ts";
import { SERVER_ID, storageRequest, withStoreHandler } from "../helpers/storage_handler.ts";
import { slotProof, slotSi } from "./slot_helpers.ts";

const secret = (n: number) => new Uint8Array(32).fill(n);
const b32 = base32Encode;
const DAY = 86400_000;

function req(method: string, path: string, headers: Record<string, string>, body?: unknown) {
  return storageRequest(method, path, headers, body === undefined ? undefined : encodeCbor(body));
}
const lease = (renew: number) => ({
  [HEADERS.leaseRenewSecret]: b32(secret(renew)),
  [HEADERS.leaseCancelSecret]: b32(secret(renew + 1)),
});

Deno.test("a full lease table never refuses a write and never shortens how long shares are kept", async () => {
  const MAX = 20;
  await withStoreHandler("shoal-leases-", async ({ store, handle, clock }) => {
    const call = async (r: Request) => {
      const res = await handle(r);
      await res.body?.cancel();
      return res.status;
    };
    // An immutable share and a mutable slot, each with its holder's lease at t0.
    const I = slotSi(30);
    const upload = { [HEADERS.uploadSecret]: b32(secret(1)) };
    assert.equal(
      await call(req("POST", `immutable/${b32(I)}`, { ...upload, ...lease(2) }, {
        shareNumbers: [0],
        allocatedSize: 4,
      })),
      200,
    );
    assert.equal(
      await call(
        storageRequest("PATCH", `immutable/${b32(I)}/0`, {
          ...upload,
          "content-range": "bytes 0-3/4",
        }, new Uint8Array([1, 2, 3, 4])),
      ),
      201,
    );
    const M = slotSi(31);
    const rtw = async (renew: number) =>
      await call(req("POST", `mutable/${b32(M)}/read-test-write`, {
        [HEADERS.writeEnabler]: b32(secret(9)),
        ...lease(renew),
      }, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: new Uint8Array([renew]) }],
          newLength: null,
        }],
        readVector: [],
        createSlot: await slotProof(M, SERVER_ID, secret(9)),
      }));
    assert.equal(await rtw(2), 200);
    const keepUntil = async (kind: "immutable" | "mutable", si: Uint8Array) =>
      Math.max(...(await store.leases(kind, si)).map((l) => l.expiry));
    const holderExpiry = clock.t + 31 * DAY;

    // A day later, a stranger fills both tables with leases under fresh renew secrets.
    clock.t += DAY;
    for (let i = 0; i < 2 * MAX; i++) {
      assert.equal(await call(req("PUT", `lease/${b32(I)}`, lease(100 + 2 * i))), 204);
      assert.equal(await call(req("PUT", `lease/${b32(M)}`, lease(100 + 2 * i))), 204);
    }
    assert.equal((await store.leases("immutable", I)).length, MAX);
    assert.equal((await store.leases("mutable", M)).length, MAX);

    // Legitimate writes with new holders' leases still succeed.
    assert.equal(
      await call(req("POST", `immutable/${b32(I)}`, {
        [HEADERS.uploadSecret]: b32(secret(60)),
        ...lease(50),
      }, { shareNumbers: [0], allocatedSize: 4 })),
      200,
      "allocate of a held share with a new lease",
    );
    assert.equal(await rtw(52), 200, "a mutable write with a new lease");
    assert.equal((await store.leases("mutable", M)).length, MAX);
    // One lease per holder: renewing adds nothing.
    assert.equal(await rtw(52), 200);
    assert.equal((await store.leases("mutable", M)).length, MAX);

    // The shares are kept at least as long as the first holder's lease said.
    assert.ok((await keepUntil("immutable", I)) >= holderExpiry);
    assert.ok((await keepUntil("mutable", M)) >= holderExpiry);
    clock.t = holderExpiry - 1;
    await store.gc();
    assert.deepEqual(await store.listImmutable(I), [0]);
    assert.deepEqual(await store.listMutable(M), [0]);
  }, { store: { maxLeasesPerIndex: MAX, leaseDuration: 31 * 86400 } });
});
