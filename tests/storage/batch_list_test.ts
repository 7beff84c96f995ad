/**
 * POST /batch-list (docs/storage-protocol.md §6.6): the vector's request and
 * response bytes against a real on-disk ShareStore, and its bounds.
 */
import assert from "node:assert/strict";
import { base32Encode, decodeCbor, encodeCbor, toHex } from "../../lib/codec/mod.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  createStorageHandler,
  ShareStore,
} from "../../lib/storage/mod.ts";

const SWISS = new Uint8Array(32).fill(7);
const AUTH = `${AUTH_SCHEME} ${base32Encode(SWISS)}`;
const si = (n: number) => new Uint8Array(16).fill(n);
const secret = (n: number) => base32Encode(new Uint8Array(32).fill(n));

function req(method: string, path: string, headers: Record<string, string>, body?: Uint8Array) {
  return new Request(`https://127.0.0.1:1${API_PREFIX}/${path}`, {
    method,
    headers: { authorization: AUTH, ...headers },
    body: body as BodyInit | undefined,
  });
}

async function withHandler(
  fn: (h: (r: Request) => Promise<Response>, root: string) => Promise<void>,
  hopts: { maxBodySize?: number; maxBatchSlots?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "shoal-batch-list-" });
  try {
    const store = await ShareStore.open({ root: `${dir}/storage` });
    await fn(
      createStorageHandler(store, {
        swissnum: SWISS,
        serverId: new Uint8Array(32).fill(5),
        log: () => {},
        ...hopts,
      }),
      dir,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const leaseHeaders = {
  "x-shoal-lease-renew-secret": secret(2),
  "x-shoal-lease-cancel-secret": secret(3),
};

async function putImmutable(h: (r: Request) => Promise<Response>, s: Uint8Array, shares: number[]) {
  const SI = base32Encode(s);
  const headers = { "x-shoal-upload-secret": secret(1), ...leaseHeaders };
  const a = await h(
    req("POST", `immutable/${SI}`, headers, encodeCbor({ shareNumbers: shares, allocatedSize: 4 })),
  );
  assert.equal(a.status, 200);
  await a.body?.cancel();
  for (const n of shares) {
    const r = await h(
      req("PATCH", `immutable/${SI}/${n}`, {
        "x-shoal-upload-secret": secret(1),
        "content-range": "bytes 0-3/4",
      }, new Uint8Array(4)),
    );
    assert.equal(r.status, 201);
    await r.body?.cancel();
  }
}

/**
 * A mutable share placed in the store's layout directly (docs/storage-node.md §4): creating a
 * slot through the protocol needs the slot-creation proof of a real signing key, whose storage
 * index could not be the vector's fixed one. Listing reads only the layout.
 */
async function putMutable(root: string, s: Uint8Array, share: number) {
  const si = base32Encode(s);
  const dir = `${root}/storage/mutable/${si.slice(0, 2)}/${si}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(`${dir}/${share}`, new Uint8Array(8));
}

Deno.test("batch-list: the vector's exchange, byte for byte, against a real store", async () => {
  const V = JSON.parse(
    await Deno.readTextFile(new URL("../vectors/batch-list.json", import.meta.url)),
  );
  await withHandler(async (h, root) => {
    for (const held of V.held) {
      if (held.immutable.length) await putImmutable(h, si(held.storageIndexByte), held.immutable);
      for (const n of held.mutable) await putMutable(root, si(held.storageIndexByte), n);
    }
    const body = encodeCbor({ storageIndexes: V.storageIndexBytes.map(si) });
    assert.equal(toHex(body), V.requestBody);
    const r = await h(req("POST", "batch-list", { "content-type": "application/cbor" }, body));
    assert.equal(r.status, 200);
    const got = new Uint8Array(await r.arrayBuffer());
    assert.equal(toHex(got), V.responseBody);
    assert.equal(toHex(encodeCbor(decodeCbor(got))), V.responseBody);
  });
});

Deno.test("batch-list: bounded in count, shape and response size; GET refused", async () => {
  await withHandler(async (h) => {
    const many = encodeCbor({ storageIndexes: Array.from({ length: 9 }, (_, i) => si(i)) });
    let r = await h(req("POST", "batch-list", {}, many));
    assert.equal(r.status, 400);
    assert.equal(
      (decodeCbor(new Uint8Array(await r.arrayBuffer())) as { error: string }).error,
      "bad-request",
    );
    r = await h(
      req("POST", "batch-list", {}, encodeCbor({ storageIndexes: [new Uint8Array(15)] })),
    );
    assert.equal(r.status, 400);
    await r.body?.cancel();
    r = await h(req("GET", "batch-list", {}));
    assert.equal(r.status, 405);
    await r.body?.cancel();
    r = await h(req("POST", "batch-list", {}, encodeCbor({ storageIndexes: [] })));
    assert.equal(r.status, 200);
    assert.deepEqual(decodeCbor(new Uint8Array(await r.arrayBuffer())), { entries: [] });
  }, { maxBatchSlots: 8 });
  // A response larger than maxBodySize is refused, not truncated.
  await withHandler(async (h) => {
    await putImmutable(h, si(1), Array.from({ length: 200 }, (_, i) => i));
    const body = encodeCbor({ storageIndexes: Array.from({ length: 2000 }, () => si(1)) });
    const r = await h(req("POST", "batch-list", {}, body));
    assert.equal(r.status, 413);
    assert.equal(
      (decodeCbor(new Uint8Array(await r.arrayBuffer())) as { error: string }).error,
      "response-too-large",
    );
  }, { maxBodySize: 64 * 1024 });
});
