/**
 * Slot watches (docs/storage-protocol.md "Slot watches") against a real
 * `shoal storage run` process over real TLS: the digest moves exactly when a
 * watched slot's checkstrings change, long polls answer on a write and on
 * timeout, bad and unknown watch ids are refused, limits hold, a restart
 * forgets watches, and shutdown ends waiting polls. The LRU bounds are checked
 * on a WatchHub over a real on-disk ShareStore.
 */
import assert from "node:assert/strict";
import { base32Encode, decodeCbor, encodeCbor } from "../../lib/codec/mod.ts";
import { toHex } from "../../lib/codec/mod.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  parseStorageUrl,
  ShareStore,
  StorageClient,
  StorageError,
  watchDigest,
  WatchHub,
  watchId,
} from "../../lib/storage/mod.ts";
import { loadStorageNode } from "../../lib/roles/storage/mod.ts";
import {
  createStorageNode,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";
import { slotProof, slotSi } from "./slot_helpers.ts";

const secret = (n: number) => new Uint8Array(32).fill(n);
// Test slots: storage indexes derived from verification keys (writes carry the creation proof).
const si = (n: number) => slotSi(n);
const secrets = (n: number) => ({
  writeEnabler: secret(n),
  leaseRenew: secret(100 + n),
  leaseCancel: secret(200 + n),
});

/** Share bytes whose first 57 bytes (the checkstring) are `tag` repeated. */
function shareBytes(tag: number, length = 200): Uint8Array {
  const b = new Uint8Array(length).fill(tag);
  b.fill(0xee, 57); // the rest differs from the checkstring part
  return b;
}

async function write(
  c: StorageClient,
  slot: number,
  data: Uint8Array,
  opts: { share?: number; offset?: number; newLength?: number | null } = {},
) {
  const proof = await slotProof(si(slot), c.serverId, secrets(slot).writeEnabler);
  const r = await c.readTestWrite(si(slot), { ...secrets(slot), slotProof: proof }, {
    testWriteVectors: [{
      share: opts.share ?? 0,
      test: [],
      write: data.length ? [{ offset: opts.offset ?? 0, data }] : [],
      newLength: opts.newLength ?? null,
    }],
    readVector: [],
  });
  assert.ok(r.success);
}

async function raw(
  dir: string,
  address: string,
  method: string,
  path: string,
  body: unknown,
): Promise<{ status: number; value: Record<string, unknown> }> {
  const n = await loadStorageNode(dir);
  const client = Deno.createHttpClient({ caCerts: [n.certPem], http2: false, http1: true });
  try {
    const r = await fetch(`https://${address}${API_PREFIX}/${path}`, {
      method,
      client,
      headers: {
        authorization: `${AUTH_SCHEME} ${base32Encode(n.swissnum)}`,
        "content-type": "application/cbor",
      },
      body: encodeCbor(body) as Uint8Array<ArrayBuffer>,
    });
    const b = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, value: decodeCbor(b) as Record<string, unknown> };
  } finally {
    client.close();
  }
}

async function withServer(
  fn: (x: { dir: string; server: StorageProcess; client: StorageClient }) => Promise<void>,
  storageConfig?: Record<string, string | number>,
) {
  const node = await createStorageNode({ nickname: "w", storageConfig });
  let server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url), { timeoutMs: 10_000 });
  try {
    await fn({ dir: node.dir, server, client });
  } finally {
    client.close();
    await server.kill();
    server = null!;
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
}

function cs(tag: number): Uint8Array {
  return new Uint8Array(57).fill(tag);
}

Deno.test("watch: digest moves exactly when a watched slot's checkstrings change", async () => {
  await withServer(async ({ client: c }) => {
    await write(c, 1, shareBytes(0xa1));
    await write(c, 2, shareBytes(0xb1));
    const sis = [si(1), si(2), si(3)]; // slot 3 does not exist yet
    const reg = await c.registerWatch(sis);
    assert.equal(reg.wid, watchId(sis));
    assert.match(reg.wid, /^[a-z2-7]{26}$/);
    let want = watchDigest([[cs(0xa1)], [cs(0xb1)], []]);
    assert.equal(toHex(reg.digest), toHex(want));
    assert.equal(toHex(await c.pollWatch(reg.wid)), toHex(want));
    // Registering again is idempotent.
    assert.equal(toHex((await c.registerWatch(sis)).digest), toHex(want));

    // A write to an unwatched slot, or past the checkstring bytes, changes nothing.
    await write(c, 4, shareBytes(0x44));
    await write(c, 1, new Uint8Array([1, 2, 3]), { offset: 100 });
    assert.equal(toHex(await c.pollWatch(reg.wid, { expect: want })), toHex(want));

    // A new version of a watched slot does.
    await write(c, 1, shareBytes(0xa2));
    want = watchDigest([[cs(0xa2)], [cs(0xb1)], []]);
    assert.equal(toHex(await c.pollWatch(reg.wid)), toHex(want));
    // A new slot, and a second share of a slot (sorted by share number), too.
    await write(c, 3, shareBytes(0xc1));
    await write(c, 2, shareBytes(0xb0), { share: 7 });
    await write(c, 2, shareBytes(0xb9), { share: 5 });
    want = watchDigest([[cs(0xa2)], [cs(0xb1), cs(0xb9), cs(0xb0)], [cs(0xc1)]]);
    assert.equal(toHex(await c.pollWatch(reg.wid)), toHex(want));
    // Deleting shares counts.
    await write(c, 2, new Uint8Array(0), { share: 5, newLength: 0 });
    await write(c, 2, new Uint8Array(0), { share: 7, newLength: 0 });
    want = watchDigest([[cs(0xa2)], [cs(0xb1)], [cs(0xc1)]]);
    assert.equal(toHex(await c.pollWatch(reg.wid, { expect: new Uint8Array(32) })), toHex(want));
  });
});

Deno.test("watch: long poll answers on a write, and after `wait` without one", async () => {
  await withServer(async ({ client: c }) => {
    await write(c, 1, shareBytes(0x11));
    await write(c, 2, shareBytes(0x21));
    const { wid, digest } = await c.registerWatch([si(1), si(2)]);

    // No change: answers after about `wait` seconds with the same digest.
    let t0 = Date.now();
    let d = await c.pollWatch(wid, { expect: digest, wait: 1 });
    let ms = Date.now() - t0;
    assert.equal(toHex(d), toHex(digest));
    assert.ok(ms >= 900 && ms < 4000, `timeout poll took ${ms} ms`);

    // An expectation that already differs: answers at once.
    t0 = Date.now();
    d = await c.pollWatch(wid, { expect: new Uint8Array(32), wait: 30 });
    assert.equal(toHex(d), toHex(digest));
    assert.ok(Date.now() - t0 < 2000);

    // A write during the wait: answers right after it, with the new digest.
    const other = new StorageClient(c.url, { timeoutMs: 10_000 });
    try {
      t0 = Date.now();
      const pending = c.pollWatch(wid, { expect: digest, wait: 30 });
      await new Promise((r) => setTimeout(r, 400));
      // Unwatched and non-checkstring writes do not wake it...
      await write(other, 9, shareBytes(0x99));
      await write(other, 2, new Uint8Array([7]), { offset: 150 });
      await new Promise((r) => setTimeout(r, 200));
      const tWrite = Date.now();
      await write(other, 2, shareBytes(0x22));
      d = await pending;
      ms = Date.now() - t0;
      assert.equal(toHex(d), toHex(watchDigest([[cs(0x11)], [cs(0x22)]])));
      assert.ok(Date.now() - tWrite < 1500, "the poll answered promptly after the write");
      assert.ok(ms >= 550, `answered only after the write (${ms} ms)`);
    } finally {
      other.close();
    }

    // A cancelled poll rejects at once (its connection is closed), and the server is fine.
    const ac = new AbortController();
    const p = c.pollWatch(wid, { expect: d, wait: 30, signal: ac.signal });
    setTimeout(() => ac.abort(), 200);
    t0 = Date.now();
    await assert.rejects(p, /cancelled/);
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(toHex(await c.pollWatch(wid)), toHex(d));
  });
});

Deno.test("watch: bad ids, unknown ids, bad requests and limits", async () => {
  await withServer(async ({ dir, server, client: c }) => {
    const sis = [si(1), si(2)];
    const wid = watchId(sis);
    // Unknown watch: 404 unknown-watch.
    await assert.rejects(c.pollWatch(wid), (e) => {
      assert.ok(e instanceof StorageError);
      assert.equal(e.status, 404);
      assert.equal(e.code, "unknown-watch");
      return true;
    });
    // The id must be the watch-id hash of the storage indexes.
    const wrong = watchId([si(2), si(1)]);
    let r = await raw(dir, server.address, "PUT", `mutable/watch/${wrong}`, {
      storageIndexes: sis,
    });
    assert.equal(r.status, 400);
    assert.equal(r.value.error, "watch-id-mismatch");
    r = await raw(dir, server.address, "PUT", `mutable/watch/not-an-id`, { storageIndexes: sis });
    assert.equal(r.status, 400);
    assert.equal(r.value.error, "bad-watch-id");
    // Shapes: empty set, duplicates, wrong lengths, too many slots.
    r = await raw(dir, server.address, "PUT", `mutable/watch/${watchId([])}`, {
      storageIndexes: [],
    });
    assert.equal(r.status, 400);
    r = await raw(dir, server.address, "PUT", `mutable/watch/${watchId([si(1), si(1)])}`, {
      storageIndexes: [si(1), si(1)],
    });
    assert.equal(r.status, 400);
    assert.match(String(r.value.message), /duplicates/);
    r = await raw(dir, server.address, "PUT", `mutable/watch/${wid}`, {
      storageIndexes: [new Uint8Array(15), si(2)],
    });
    assert.equal(r.status, 400);
    const nine = Array.from({ length: 9 }, (_, i) => si(i + 1));
    r = await raw(dir, server.address, "PUT", `mutable/watch/${watchId(nine)}`, {
      storageIndexes: nine,
    });
    assert.equal(r.status, 400, "more than max_batch_slots (8) storage indexes");
    const eight = nine.slice(0, 8);
    r = await raw(dir, server.address, "PUT", `mutable/watch/${watchId(eight)}`, {
      storageIndexes: eight,
    });
    assert.equal(r.status, 200);
    assert.equal((r.value.digest as Uint8Array).length, 32);
    // Poll bodies: wait beyond 60 s, a short expect.
    const { wid: w8 } = await c.registerWatch(eight);
    r = await raw(dir, server.address, "POST", `mutable/watch/${w8}`, { wait: 61 });
    assert.equal(r.status, 400);
    r = await raw(dir, server.address, "POST", `mutable/watch/${w8}`, { wait: -1 });
    assert.equal(r.status, 400);
    r = await raw(dir, server.address, "POST", `mutable/watch/${w8}`, {
      expect: new Uint8Array(31),
    });
    assert.equal(r.status, 400);
    r = await raw(dir, server.address, "GET", `mutable/watch/${w8}`, undefined).catch(() => ({
      status: 405,
      value: {},
    }));
    assert.equal(r.status, 405);
    // The client refuses out-of-range waits before sending.
    await assert.rejects(c.pollWatch(w8, { wait: 61 }), RangeError);
  }, { max_batch_slots: 8 });
});

Deno.test("watch: a restart forgets watches (404, then re-register); shutdown ends polls", async () => {
  const node = await createStorageNode({ nickname: "r" });
  let server = await startStorageServer(node.dir);
  let c = new StorageClient(parseStorageUrl(server.url), { timeoutMs: 10_000 });
  try {
    await write(c, 1, shareBytes(0x31));
    const { wid, digest } = await c.registerWatch([si(1)]);
    // A poll waiting when the server shuts down answers (unchanged) instead of holding it.
    const t0 = Date.now();
    const pending = c.pollWatch(wid, { expect: digest, wait: 30 });
    await new Promise((r) => setTimeout(r, 300));
    const code = await server.stop("SIGTERM");
    assert.equal(code, 0);
    assert.equal(toHex(await pending), toHex(digest));
    assert.ok(Date.now() - t0 < 8000, `shutdown took ${Date.now() - t0} ms`);
    c.close();

    server = await startStorageServer(node.dir);
    c = new StorageClient(parseStorageUrl(server.url), { timeoutMs: 10_000 });
    await assert.rejects(c.pollWatch(wid), (e) => e instanceof StorageError && e.status === 404);
    const again = await c.registerWatch([si(1)]);
    assert.equal(again.wid, wid);
    assert.equal(toHex(again.digest), toHex(digest), "the digest survives the restart");
    assert.equal(toHex(await c.pollWatch(wid)), toHex(digest));
  } finally {
    c.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("watch hub: bounded sets (LRU by use), bounded slots, evicted polls answer", async () => {
  const root = await Deno.makeTempDir({ prefix: "shoal-watchhub-" });
  const store = await ShareStore.open({ root });
  const hub = new WatchHub(store, { maxSets: 2, maxSlots: 5 });
  try {
    const a = [si(1)], b = [si(2)], c = [si(3)];
    const da = await hub.register(watchId(a), a);
    await hub.register(watchId(b), b);
    assert.equal(hub.size, 2);
    await hub.poll(watchId(a), null, 0); // a is now the most recently used
    const waiting = hub.poll(watchId(b), await hub.register(watchId(b), b), 30);
    await hub.poll(watchId(a), null, 0);
    await hub.register(watchId(c), c); // evicts b (least recently used)
    assert.equal(hub.size, 2);
    assert.equal((await waiting).length, 32, "b's waiting poll answered on eviction");
    await assert.rejects(hub.poll(watchId(b), null, 0), /no such watch/);
    assert.equal(toHex(await hub.poll(watchId(a), null, 0)), toHex(da));
    // Total slots: a set of 4 evicts others to stay within 5.
    const big = [si(10), si(11), si(12), si(13)];
    await hub.register(watchId(big), big);
    assert.equal(hub.size, 2, "a (1 slot, used last) and big (4 slots) fit in 5; c went");
    await assert.rejects(hub.poll(watchId(c), null, 0), /no such watch/);
    await hub.poll(watchId(a), null, 0);
    // A set larger than the whole budget is refused.
    const huge = Array.from({ length: 6 }, (_, i) => si(20 + i));
    await assert.rejects(hub.register(watchId(huge), huge), /at most 5/);
    // A write through the store wakes a waiting poll with the new digest.
    const d0 = await hub.poll(watchId(big), null, 0);
    const p = hub.poll(watchId(big), d0, 30);
    await store.readTestWrite(si(12), {
      writeEnabler: secret(1),
      ...{ renew: secret(2), cancel: secret(3) },
    }, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: shareBytes(0x12) }],
        newLength: null,
      }],
      readVector: [],
    });
    assert.equal(toHex(await p), toHex(watchDigest([[], [], [cs(0x12)], []])));
    assert.equal(hub.waiting, 0);
  } finally {
    hub.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("watch vectors: ids, digests and bodies, re-derived independently from the spec", async () => {
  const { createHash } = await import("node:crypto");
  const V = JSON.parse(
    await Deno.readTextFile(new URL("../vectors/watch.json", import.meta.url)),
  );
  const te = new TextEncoder();
  const ns = (b: Uint8Array) => [te.encode(`${b.length}:`), b, te.encode(",")];
  for (const c of V.cases) {
    const sis: Uint8Array[] = c.storageIndexBytes.map((n: number) => new Uint8Array(16).fill(n));
    // WID = base32(taggedHash(tag, SI_1 || ... || SI_m)[0..16)), spelled out from docs/crypto.md §2.
    const h = createHash("sha256");
    for (const p of [...ns(te.encode(V.tag)), ...ns(new Uint8Array(sis.flatMap((s) => [...s])))]) {
      h.update(p);
    }
    assert.equal(base32Encode(new Uint8Array(h.digest()).subarray(0, 16)), c.wid);
    assert.equal(watchId(sis), c.wid);
    for (const d of c.digests) {
      const slots: Uint8Array[][] = d.slots.map((cs: number[]) => cs.map((b) => cs57(b)));
      const h2 = createHash("sha256");
      for (const slot of slots) {
        h2.update(new Uint8Array([0, 0, 0, slot.length]));
        for (const x of slot) h2.update(x);
      }
      assert.equal(toHex(new Uint8Array(h2.digest())), d.digest);
      assert.equal(toHex(watchDigest(slots)), d.digest);
    }
    if (c.registerBody) {
      assert.equal(toHex(encodeCbor({ storageIndexes: sis })), c.registerBody);
      const expect = Uint8Array.from(
        c.digests[0].digest.match(/../g).map((x: string) => parseInt(x, 16)),
      );
      assert.equal(toHex(encodeCbor({ expect, wait: 60 })), c.pollBody);
    }
  }
});

function cs57(b: number): Uint8Array {
  return new Uint8Array(57).fill(b);
}
