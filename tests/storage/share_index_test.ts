/**
 * The store's in-memory index behind POST /batch-list (lib/storage/share_index.ts,
 * docs/storage-protocol.md §6.6): it answers as the disk does after uploads,
 * mutable writes and deletes, garbage collection and a restart; it fills
 * within each request's budget of directory reads; it is bounded; and it
 * sees a change made behind the store's back once the prefix is re-read.
 */
import assert from "node:assert/strict";
import { ShareStore, siString } from "../../lib/storage/mod.ts";
import { RESCAN_MS, ShareIndex } from "../../lib/storage/share_index.ts";

const secrets = (n: number) => ({
  upload: new Uint8Array(32).fill(n),
  renew: new Uint8Array(32).fill(n + 1),
  cancel: new Uint8Array(32).fill(n + 2),
});
const si = (a: number, b = 0) => {
  const s = new Uint8Array(16).fill(a);
  s[15] = b;
  return s;
};

async function upload(store: ShareStore, s: Uint8Array, shares: number[]) {
  const sec = secrets(1);
  await store.allocate(s, sec, shares, 4);
  for (const n of shares) {
    const r = await store.writeImmutable(s, n, sec.upload, 0, 4, new Uint8Array(4));
    assert.equal(r.complete, true);
  }
}

const WE = new Uint8Array(32).fill(9);

async function writeMutable(store: ShareStore, s: Uint8Array, share: number, newLength?: number) {
  const r = await store.readTestWrite(s, { writeEnabler: WE, ...secrets(4) }, {
    testWriteVectors: [{
      share,
      test: [],
      write: newLength === 0 ? [] : [{ offset: 0, data: new Uint8Array(8) }],
      newLength: newLength ?? null,
    }],
    readVector: [],
  });
  assert.equal(r.success, true);
}

/** What the disk says, listed the way GET /…/shares does. */
async function onDisk(store: ShareStore, sis: Uint8Array[]) {
  return await Promise.all(sis.map(async (s) => ({
    immutable: await store.listImmutable(s),
    mutable: await store.listMutable(s),
  })));
}

Deno.test("share index: batch listings match the disk after uploads, writes, deletes, GC, restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-share-index-" });
  const clock = { t: Date.UTC(2026, 0, 1) };
  const open = () => ShareStore.open({ root: dir, leaseDuration: 60, now: () => clock.t });
  try {
    let store = await open();
    const A = si(1), B = si(2), C = si(3), D = si(1, 7); // A and D share a prefix directory
    const all = [A, B, C, D];
    await upload(store, A, [0, 3]);
    await writeMutable(store, B, 1);
    // The first listing fills the index; every later one must follow the store's changes.
    assert.deepEqual(store.listMany(all), await onDisk(store, all));
    assert.ok(store.indexedStorageIndexes >= 2);

    await upload(store, D, [5]); // a new storage index in an indexed prefix
    await upload(store, A, [1]); // a new share of an indexed storage index
    await writeMutable(store, B, 2);
    await writeMutable(store, C, 0); // a new slot
    let got = store.listMany(all);
    assert.deepEqual(got, await onDisk(store, all));
    assert.deepEqual(got.map((e) => [e.immutable, e.mutable]), [
      [[0, 1, 3], []],
      [[], [1, 2]],
      [[], [0]],
      [[5], []],
    ]);

    await writeMutable(store, B, 1, 0); // delete one share of the slot
    await writeMutable(store, C, 0, 0); // delete the slot's last share: the slot is gone
    got = store.listMany(all);
    assert.deepEqual(got, await onDisk(store, all));
    assert.deepEqual(got[1].mutable, [2]);
    assert.deepEqual(got[2].mutable, []);

    // Garbage collection: renew only B's lease, let the others expire.
    clock.t += 50_000;
    await store.addLease(B, secrets(4));
    clock.t += 30_000;
    const { removed } = await store.gc();
    assert.ok(removed >= 2, `removed ${removed}`);
    got = store.listMany(all);
    assert.deepEqual(got, await onDisk(store, all));
    assert.deepEqual(got.map((e) => [e.immutable, e.mutable]), [
      [[], []],
      [[], [2]],
      [[], []],
      [[], []],
    ]);

    // After a restart the index is rebuilt from the disk.
    await upload(store, A, [4]);
    store = await open();
    assert.equal(store.indexedStorageIndexes, 0);
    got = store.listMany(all);
    assert.deepEqual(got, await onDisk(store, all));
    assert.deepEqual(got[0].immutable, [4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("share index: fills within the request's budget, is bounded, re-reads a prefix in time", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-share-index-" });
  try {
    // 64 storage indexes over 4 prefix directories, one share each, laid out on disk.
    const sis = Array.from({ length: 64 }, (_, i) => si([1, 2, 3, 4][i % 4], i));
    for (const [i, s] of sis.entries()) {
      const name = siString(s);
      const d = `${dir}/immutable/${name.slice(0, 2)}/${name}`;
      await Deno.mkdir(d, { recursive: true });
      await Deno.writeFile(`${d}/${i % 10}`, new Uint8Array(1));
    }
    let reads = 0;
    const listShares = (d: string) => {
      reads++;
      try {
        return [...Deno.readDirSync(d)].map((e) => Number(e.name)).sort((a, b) => a - b);
      } catch {
        return [];
      }
    };
    const clock = { t: 0 };
    const index = new ShareIndex({ root: dir, listShares, now: () => clock.t });
    const lookupAll = () => {
      const b = index.budget(sis.length);
      return sis.map((s) => index.lookup("immutable", siString(s), b));
    };
    const want = sis.map((_, i) => [i % 10]);
    assert.deepEqual(lookupAll(), want);
    // At most the budget (two reads per storage index) plus one prefix directory's worth.
    assert.ok(reads <= 2 * sis.length + 16, `${reads} directory reads`);
    assert.equal(index.size, 64);
    reads = 0;
    assert.deepEqual(lookupAll(), want);
    assert.equal(reads, 0, "a second listing reads no share directory");

    // A request of one storage index may index its prefix (16 entries): never more than one.
    const small = new ShareIndex({ root: dir, listShares, now: () => clock.t });
    reads = 0;
    assert.deepEqual(small.lookup("immutable", siString(sis[0]), small.budget(1)), [0]);
    assert.equal(small.indexedPrefixes("immutable"), 1);
    assert.ok(reads <= 16, `${reads}`);

    // Bounded: past maxEntries no new prefix is indexed, and lookups still answer from the disk.
    const bounded = new ShareIndex({ root: dir, listShares, maxEntries: 16, now: () => clock.t });
    const b = bounded.budget(sis.length);
    assert.deepEqual(sis.map((s) => bounded.lookup("immutable", siString(s), b)), want);
    assert.equal(bounded.size, 16);
    assert.equal(bounded.indexedPrefixes("immutable"), 1);

    // A share removed behind the store's back is listed until the prefix is re-read.
    const gone = siString(sis[5]);
    await Deno.remove(`${dir}/immutable/${gone.slice(0, 2)}/${gone}`, { recursive: true });
    assert.deepEqual(index.lookup("immutable", gone, index.budget(1)), [5]);
    clock.t += RESCAN_MS;
    assert.deepEqual(index.lookup("immutable", gone, index.budget(1)), []);
    assert.equal(index.size, 63);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
