/**
 * Request-level tests of the storage protocol handler over a real on-disk
 * ShareStore in a temp directory (no socket needed: the handler is a pure
 * Request -> Response function; tests/storage/server_process_test.ts covers
 * the real server process over TLS).
 */
import assert from "node:assert/strict";
import { base32Encode, decodeCbor, encodeCbor } from "../../lib/codec/mod.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  createStorageHandler,
  HEADERS,
  ShareStore,
  type StoreOptions,
} from "../../lib/storage/mod.ts";
import { slotProof, slotSi } from "./slot_helpers.ts";

const SWISS = new Uint8Array(32).fill(7);
const AUTH = `${AUTH_SCHEME} ${base32Encode(SWISS)}`;
const b32 = base32Encode;
const secret = (n: number) => new Uint8Array(32).fill(n);
// Storage indexes of test slots, derived from their verification keys (rtw() signs creations).
const si = (n: number) => slotSi(n);
const SERVER_ID = new Uint8Array(32).fill(5);
function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

interface Ctx {
  dir: string;
  store: ShareStore;
  handle: (req: Request) => Promise<Response>;
  clock: { t: number };
}

async function withServer(
  fn: (c: Ctx) => Promise<void>,
  opts: Partial<StoreOptions> = {},
  hopts: { maxBodySize?: number; maxBatchSlots?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "shoal-store-" });
  const clock = { t: 1_700_000_000_000 };
  try {
    const store = await ShareStore.open({ root: `${dir}/storage`, now: () => clock.t, ...opts });
    const handle = createStorageHandler(store, {
      swissnum: SWISS,
      serverId: SERVER_ID,
      log: () => {},
      ...hopts,
    });
    await fn({ dir, store, handle, clock });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

type Init = {
  headers?: Record<string, string>;
  body?: BodyInit | Uint8Array | null;
  auth?: string | null;
};
function request(method: string, path: string, init: Init = {}): Request {
  const headers = new Headers(init.headers ?? {});
  if (init.auth !== null) headers.set("authorization", init.auth ?? AUTH);
  return new Request(
    `https://127.0.0.1:1${path.startsWith("/") ? path : `${API_PREFIX}/${path}`}`,
    {
      method,
      headers,
      body: init.body as BodyInit | null | undefined,
    },
  );
}
function cbor(v: unknown): Uint8Array<ArrayBuffer> {
  return encodeCbor(v) as Uint8Array<ArrayBuffer>;
}
async function body(r: Response): Promise<unknown> {
  return decodeCbor(new Uint8Array(await r.arrayBuffer()));
}
async function expectError(r: Response, status: number, code?: string) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}`);
  const b = (await body(r)) as { error: string; message: string };
  assert.equal(typeof b.message, "string");
  if (code) assert.equal(b.error, code);
  return b;
}
const allocHeaders = (upload = 1, renew = 2, cancel = 3) => ({
  [HEADERS.uploadSecret]: b32(secret(upload)),
  [HEADERS.leaseRenewSecret]: b32(secret(renew)),
  [HEADERS.leaseCancelSecret]: b32(secret(cancel)),
});
const rtwHeaders = (we = 9, renew = 2, cancel = 3) => ({
  [HEADERS.writeEnabler]: b32(secret(we)),
  [HEADERS.leaseRenewSecret]: b32(secret(renew)),
  [HEADERS.leaseCancelSecret]: b32(secret(cancel)),
});

async function treeFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory) {
      out.push(...(await treeFiles(`${dir}/${e.name}`)).map((x) => `${e.name}/${x}`));
    } else out.push(e.name);
  }
  return out;
}

async function uploadShare(c: Ctx, s: Uint8Array, n: number, data: Uint8Array, upload = 1) {
  let r = await c.handle(request("POST", `immutable/${b32(s)}`, {
    headers: allocHeaders(upload),
    body: cbor({ shareNumbers: [n], allocatedSize: data.length }),
  }));
  assert.equal(r.status, 200);
  await r.body?.cancel();
  r = await c.handle(request("PATCH", `immutable/${b32(s)}/${n}`, {
    headers: {
      [HEADERS.uploadSecret]: b32(secret(upload)),
      "content-range": `bytes 0-${data.length - 1}/*`,
    },
    body: data as Uint8Array<ArrayBuffer>,
  }));
  assert.equal(r.status, 201);
  await r.body?.cancel();
}

async function rtw(c: Ctx, s: Uint8Array, req: unknown, we = 9, renew = 2, auth?: string | null) {
  // Every write here may create its slot: it carries the creation proof.
  const createSlot = await slotProof(s, SERVER_ID, secret(we));
  return await c.handle(request("POST", `mutable/${b32(s)}/read-test-write`, {
    auth,
    headers: rtwHeaders(we, renew),
    body: cbor({ ...(req as Record<string, unknown>), createSlot }),
  }));
}

Deno.test("unauthorized requests are refused and store nothing", async () => {
  await withServer(async (c) => {
    for (
      const auth of [
        null,
        `${AUTH_SCHEME} ${b32(secret(8))}`,
        "Bearer x",
        AUTH + "a",
        AUTH.toUpperCase(),
      ]
    ) {
      let r = await c.handle(request("POST", `immutable/${b32(si(1))}`, {
        auth,
        headers: allocHeaders(),
        body: cbor({ shareNumbers: [0], allocatedSize: 10 }),
      }));
      const e = await expectError(r, 401, "unauthorized");
      assert.ok(!e.message.includes(b32(SWISS)));
      r = await rtw(
        c,
        si(2),
        {
          testWriteVectors: [{
            share: 0,
            test: [],
            write: [{ offset: 0, data: new Uint8Array(5) }],
            newLength: null,
          }],
          readVector: [],
        },
        9,
        2,
        auth,
      );
      await expectError(r, 401, "unauthorized");
      // Unauthorized requests are refused before routing, even for unknown paths.
      await expectError(await c.handle(request("GET", "/etc/passwd", { auth })), 401);
    }
    assert.deepEqual(await treeFiles(`${c.dir}/storage`), []);
    const r = await c.handle(request("GET", `immutable/${b32(si(1))}/shares`));
    assert.deepEqual(await body(r), []);
  });
});

Deno.test("version reports limits", async () => {
  await withServer(async (c) => {
    const r = await c.handle(request("GET", "version"));
    assert.equal(r.status, 200);
    const v = (await body(r)) as Record<string, number>;
    assert.equal(v.protocol, 1);
    assert.equal(v.maxShareSize, 1000);
    assert.equal(v.leaseDuration, 3600);
    assert.ok(v.availableSpace > 0);
    assert.equal(v.maxBodySize, 64 * 1024 * 1024);
  }, { maxShareSize: 1000, leaseDuration: 3600 });
});

Deno.test("immutable: allocate, upload in ranges, list, read, re-allocate", async () => {
  await withServer(async (c) => {
    const s = b32(si(3));
    const data = randomBytes(100_000);
    let r = await c.handle(request("POST", `immutable/${s}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0, 5], allocatedSize: data.length }),
    }));
    assert.deepEqual(await body(r), { alreadyHave: [], allocated: [0, 5] });
    // Idempotent with the same upload secret; another upload secret gets nothing.
    r = await c.handle(request("POST", `immutable/${s}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0, 5], allocatedSize: data.length }),
    }));
    assert.deepEqual(await body(r), { alreadyHave: [], allocated: [0, 5] });
    r = await c.handle(request("POST", `immutable/${s}`, {
      headers: allocHeaders(4),
      body: cbor({ shareNumbers: [0], allocatedSize: data.length }),
    }));
    assert.deepEqual(await body(r), { alreadyHave: [], allocated: [] });

    const patch = (n: number, b: number, e: number, upload = 1) =>
      c.handle(request("PATCH", `immutable/${s}/${n}`, {
        headers: {
          [HEADERS.uploadSecret]: b32(secret(upload)),
          "content-range": `bytes ${b}-${e - 1}/*`,
        },
        body: data.slice(b, e),
      }));
    await expectError(await patch(0, 0, 10, 4), 403, "bad-upload-secret");
    r = await patch(0, 60_000, 100_000);
    assert.equal(r.status, 200);
    assert.deepEqual(await body(r), { required: [{ begin: 0, end: 60_000 }] });
    // Not listed, not readable until complete.
    assert.deepEqual(await body(await c.handle(request("GET", `immutable/${s}/shares`))), []);
    await expectError(await c.handle(request("GET", `immutable/${s}/0`)), 404, "not-found");
    r = await patch(0, 0, 60_000);
    assert.equal(r.status, 201);
    assert.deepEqual(await body(r), { required: [] });
    assert.deepEqual(await body(await c.handle(request("GET", `immutable/${s}/shares`))), [0]);

    r = await c.handle(request("GET", `immutable/${s}/0`));
    assert.equal(r.status, 200);
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), data);
    r = await c.handle(request("GET", `immutable/${s}/0`, { headers: { range: "bytes=10-19" } }));
    assert.equal(r.status, 206);
    assert.equal(r.headers.get("content-range"), `bytes 10-19/${data.length}`);
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), data.slice(10, 20));
    r = await c.handle(
      request("GET", `immutable/${s}/0`, { headers: { range: "bytes=99990-200000" } }),
    );
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), data.slice(99_990));
    r = await c.handle(request("GET", `immutable/${s}/0`, { headers: { range: "bytes=5-" } }));
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), data.slice(5));
    await expectError(
      await c.handle(request("GET", `immutable/${s}/0`, { headers: { range: "bytes=100000-" } })),
      416,
    );

    // Share 0 is now held; share 5 still allocated to this upload.
    r = await c.handle(request("POST", `immutable/${s}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0, 5, 6], allocatedSize: data.length }),
    }));
    assert.deepEqual(await body(r), { alreadyHave: [0], allocated: [5, 6] });
    // Abort needs the upload secret; afterwards PATCH finds no upload.
    await expectError(
      await c.handle(
        request("PUT", `immutable/${s}/5/abort`, {
          headers: { [HEADERS.uploadSecret]: b32(secret(4)) },
        }),
      ),
      403,
    );
    r = await c.handle(
      request("PUT", `immutable/${s}/5/abort`, {
        headers: { [HEADERS.uploadSecret]: b32(secret(1)) },
      }),
    );
    assert.equal(r.status, 204);
    await expectError(await patch(5, 0, 10), 404, "no-upload");
    // Oversize / out-of-range PATCH.
    await expectError(await patch(6, 99_999, 100_001), 416, "bad-range");
    // Corruption report.
    r = await c.handle(
      request("POST", `immutable/${s}/0/corrupt`, { body: cbor({ reason: "hash\nmismatch" }) }),
    );
    assert.equal(r.status, 204);
    const log = await Deno.readTextFile(`${c.dir}/storage/corruption.log`);
    assert.match(log, /hash mismatch/);
    await expectError(
      await c.handle(request("POST", `immutable/${s}/9/corrupt`, { body: cbor({ reason: "x" }) })),
      404,
    );
  });
});

Deno.test("immutable: allocation beyond max share size or free space is refused", async () => {
  await withServer(async (c) => {
    let r = await c.handle(request("POST", `immutable/${b32(si(1))}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0], allocatedSize: 2000 }),
    }));
    await expectError(r, 413, "bad-share-size");
    r = await c.handle(request("POST", `immutable/${b32(si(1))}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0], allocatedSize: 0 }),
    }));
    await expectError(r, 400, "bad-share-size");
  }, { maxShareSize: 1000 });
  await withServer(async (c) => {
    const r = await c.handle(request("POST", `immutable/${b32(si(1))}`, {
      headers: allocHeaders(),
      body: cbor({ shareNumbers: [0], allocatedSize: 10 }),
    }));
    await expectError(r, 507, "insufficient-space");
    const r2 = await rtw(c, si(2), {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: new Uint8Array(10) }],
        newLength: null,
      }],
      readVector: [],
    });
    await expectError(r2, 507, "insufficient-space");
    assert.equal(
      ((await body(await c.handle(request("GET", "version")))) as { availableSpace: number })
        .availableSpace,
      0,
    );
  }, { reservedSpace: Number.MAX_SAFE_INTEGER });
});

Deno.test("mutable: read-test-write semantics and the write enabler", async () => {
  await withServer(async (c) => {
    const S = si(4);
    const enc = (s: string) => new TextEncoder().encode(s);
    // Create share 0 and 1; a test against a missing share compares with empty.
    let r = await rtw(c, S, {
      testWriteVectors: [
        {
          share: 0,
          test: [{ offset: 0, size: 5, specimen: new Uint8Array(0) }],
          write: [{ offset: 0, data: enc("hello world") }],
          newLength: null,
        },
        { share: 1, test: [], write: [{ offset: 4, data: enc("xy") }], newLength: null },
      ],
      readVector: [{ offset: 0, size: 5 }],
    });
    assert.equal(r.status, 200);
    assert.deepEqual(await body(r), { success: true, reads: [] });
    assert.deepEqual(await body(await c.handle(request("GET", `mutable/${b32(S)}/shares`))), [
      0,
      1,
    ]);
    r = await c.handle(request("GET", `mutable/${b32(S)}/1`));
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), new Uint8Array([0, 0, 0, 0, 120, 121]));

    // Wrong write enabler: refused, nothing changed (even a read-only RTW).
    r = await rtw(c, S, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("HACKED") }],
        newLength: null,
      }],
      readVector: [],
    }, 10);
    await expectError(r, 403, "bad-write-enabler");
    r = await c.handle(request("GET", `mutable/${b32(S)}/0`));
    assert.equal(new TextDecoder().decode(await r.arrayBuffer()), "hello world");

    // Failing test: reads returned (data before), nothing written.
    r = await rtw(c, S, {
      testWriteVectors: [{
        share: 0,
        test: [{ offset: 0, size: 5, specimen: enc("jello") }],
        write: [{ offset: 0, data: enc("J") }],
        newLength: null,
      }],
      readVector: [{ offset: 6, size: 100 }],
    });
    assert.deepEqual(await body(r), {
      success: false,
      reads: [{ share: 0, data: [enc("world")] }, { share: 1, data: [new Uint8Array(0)] }],
    });
    // Passing test: reads see data from before the write; newLength truncates/extends; 0 deletes.
    r = await rtw(c, S, {
      testWriteVectors: [
        {
          share: 0,
          test: [{ offset: 0, size: 5, specimen: enc("hello") }],
          write: [{ offset: 0, data: enc("J") }],
          newLength: 7,
        },
        { share: 1, test: [], write: [], newLength: 0 },
        { share: 2, test: [], write: [], newLength: 3 },
      ],
      readVector: [{ offset: 0, size: 5 }],
    });
    assert.deepEqual(await body(r), {
      success: true,
      reads: [{ share: 0, data: [enc("hello")] }, {
        share: 1,
        data: [new Uint8Array([0, 0, 0, 0, 120])],
      }],
    });
    r = await c.handle(request("GET", `mutable/${b32(S)}/0`));
    assert.equal(new TextDecoder().decode(await r.arrayBuffer()), "Jello w");
    r = await c.handle(request("GET", `mutable/${b32(S)}/2`));
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), new Uint8Array(3));
    assert.deepEqual(await body(await c.handle(request("GET", `mutable/${b32(S)}/shares`))), [
      0,
      2,
    ]);
    r = await c.handle(request("GET", `mutable/${b32(S)}/0`, { headers: { range: "bytes=1-3" } }));
    assert.equal(new TextDecoder().decode(await r.arrayBuffer()), "ell");

    // Deleting every share removes the slot; a new writer may then create it.
    r = await rtw(c, S, {
      testWriteVectors: [{ share: 0, test: [], write: [], newLength: 0 }, {
        share: 2,
        test: [],
        write: [],
        newLength: 0,
      }],
      readVector: [],
    });
    assert.equal(((await body(r)) as { success: boolean }).success, true);
    assert.deepEqual(await body(await c.handle(request("GET", `mutable/${b32(S)}/shares`))), []);
    r = await rtw(c, S, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("new") }],
        newLength: null,
      }],
      readVector: [],
    }, 11);
    assert.equal(((await body(r)) as { success: boolean }).success, true);
    // Growing beyond the max share size is refused.
    r = await rtw(c, S, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 990, data: enc("0123456789a") }],
        newLength: null,
      }],
      readVector: [],
    }, 11);
    await expectError(r, 413, "share-too-large");
  }, { maxShareSize: 1000 });
});

Deno.test("mutable: concurrent read-test-writes with the same test, exactly one wins", async () => {
  await withServer(async (c) => {
    const S = si(5);
    const enc = (s: string) => new TextEncoder().encode(s);
    await rtw(c, S, {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("v0") }],
        newLength: null,
      }],
      readVector: [],
    });
    const attempts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        rtw(c, S, {
          testWriteVectors: [{
            share: 0,
            test: [{ offset: 0, size: 2, specimen: enc("v0") }],
            write: [{ offset: 0, data: enc(`w${String(i).padStart(2, "0")}`) }],
            newLength: null,
          }],
          readVector: [],
        }).then(body) as Promise<{ success: boolean }>),
    );
    assert.equal(attempts.filter((a) => a.success).length, 1);
    const winner = attempts.findIndex((a) => a.success);
    const r = await c.handle(request("GET", `mutable/${b32(S)}/0`));
    assert.equal(
      new TextDecoder().decode(await r.arrayBuffer()),
      `w${String(winner).padStart(2, "0")}`,
    );
  });
});

Deno.test("batch read returns ranges of many slots in one request", async () => {
  await withServer(
    async (c) => {
      const enc = (s: string) => new TextEncoder().encode(s);
      for (let i = 0; i < 5; i++) {
        await rtw(c, si(10 + i), {
          testWriteVectors: [
            {
              share: 0,
              test: [],
              write: [{ offset: 0, data: enc(`slot${i}-share0`) }],
              newLength: null,
            },
            {
              share: 3,
              test: [],
              write: [{ offset: 0, data: enc(`slot${i}-share3`) }],
              newLength: null,
            },
          ],
          readVector: [],
        });
      }
      let r = await c.handle(request("POST", "mutable/batch-read", {
        body: cbor({
          slots: [
            { storageIndex: si(10), ranges: [{ offset: 0, size: 5 }, { offset: 6, size: null }] },
            { storageIndex: si(11), shares: [3, 7], ranges: [{ offset: 0, size: null }] },
            { storageIndex: si(99), shares: null, ranges: [{ offset: 0, size: null }] },
          ],
        }),
      }));
      assert.equal(r.status, 200);
      assert.deepEqual(await body(r), {
        slots: [
          {
            storageIndex: si(10),
            shares: [
              { share: 0, data: [enc("slot0"), enc("share0")] },
              { share: 3, data: [enc("slot0"), enc("share3")] },
            ],
          },
          { storageIndex: si(11), shares: [{ share: 3, data: [enc("slot1-share3")] }] },
          { storageIndex: si(99), shares: [] },
        ],
      });
      r = await c.handle(request("POST", "mutable/batch-read", {
        body: cbor({
          slots: [0, 1, 2, 3].map((i) => ({
            storageIndex: si(10 + i),
            ranges: [{ offset: 0, size: null }],
          })),
        }),
      }));
      await expectError(r, 400, "bad-request"); // more than maxBatchSlots = 3
      for (let i = 0; i < 3; i++) {
        await rtw(c, si(20 + i), {
          testWriteVectors: [{
            share: 0,
            test: [],
            write: [{ offset: 0, data: new Uint8Array(400) }],
            newLength: null,
          }],
          readVector: [],
        });
      }
      r = await c.handle(request("POST", "mutable/batch-read", {
        body: cbor({
          slots: [0, 1, 2].map((i) => ({
            storageIndex: si(20 + i),
            ranges: [{ offset: 0, size: null }],
          })),
        }),
      }));
      await expectError(r, 413, "response-too-large"); // 1200 bytes > maxBodySize = 1000
    },
    {},
    { maxBatchSlots: 3, maxBodySize: 1000 },
  );
});

Deno.test("malformed requests get a clear 4xx and the server keeps serving", async () => {
  await withServer(
    async (c) => {
      const S = b32(si(6));
      const ok = async () => {
        const r = await c.handle(request("GET", "version"));
        assert.equal(r.status, 200);
        await r.body?.cancel();
      };
      const cases: [Request, number, string?][] = [
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: new Uint8Array([0xa1, 0x61]),
          }),
          400,
          "bad-cbor",
        ],
        [
          request("POST", `immutable/${S}`, { headers: allocHeaders(), body: new Uint8Array(0) }),
          400,
          "bad-cbor",
        ],
        [
          request("POST", `immutable/${S}`, { headers: allocHeaders(), body: cbor([1, 2]) }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: [1.5], allocatedSize: 10 }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: [-1], allocatedSize: 10 }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: [1 << 24], allocatedSize: 10 }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: [1], allocatedSize: 2n ** 64n - 1n }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: [1, 1], allocatedSize: 10 }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: allocHeaders(),
            body: cbor({ shareNumbers: "0", allocatedSize: 10 }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `immutable/${S}`, {
            headers: { ...allocHeaders(), [HEADERS.uploadSecret]: "zz" },
            body: cbor({ shareNumbers: [0], allocatedSize: 10 }),
          }),
          400,
          "bad-header",
        ],
        [
          request("POST", `immutable/${S}`, {
            body: cbor({ shareNumbers: [0], allocatedSize: 10 }),
          }),
          400,
          "missing-header",
        ],
        [
          request("POST", `mutable/${S}/read-test-write`, {
            headers: rtwHeaders(),
            body: cbor({
              testWriteVectors: [{
                share: 0,
                test: [],
                write: [{ offset: 0, data: "text" }],
                newLength: null,
              }],
              readVector: [],
            }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `mutable/${S}/read-test-write`, {
            headers: rtwHeaders(),
            body: cbor({
              testWriteVectors: [{
                share: 0,
                test: [],
                write: [{ offset: 2 ** 53, data: new Uint8Array(1) }],
                newLength: null,
              }],
              readVector: [],
            }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `mutable/${S}/read-test-write`, {
            headers: rtwHeaders(),
            body: cbor({
              testWriteVectors: [],
              readVector: Array(5000).fill({ offset: 0, size: 1 }),
            }),
          }),
          400,
          "bad-request",
        ],
        [
          request("POST", `mutable/${S}/read-test-write`, {
            headers: rtwHeaders(),
            body: cbor({ __proto__: 1 }),
          }),
          400,
        ],
        [
          request("POST", "mutable/batch-read", {
            body: cbor({ slots: [{ storageIndex: new Uint8Array(15), ranges: [] }] }),
          }),
          400,
          "bad-request",
        ],
        // Oversize bodies: declared, and streamed without a length.
        [
          request("POST", `immutable/${S}`, {
            headers: { ...allocHeaders(), "content-length": String(2 * 1024 * 1024) },
            body: new Uint8Array(2 * 1024 * 1024),
          }),
          413,
          "body-too-large",
        ],
        [
          request("POST", "mutable/batch-read", {
            body: ReadableStream.from([new Uint8Array(1024 * 1024), new Uint8Array(1024 * 1024)]),
          }),
          413,
          "body-too-large",
        ],
        // Bad storage indexes and share numbers, traversal.
        [request("GET", `immutable/${S.slice(1)}/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S.toUpperCase()}/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S}a/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S.slice(0, 25)}9/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S.slice(0, 25)}7/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S}/01`), 400, "bad-share-number"],
        [request("GET", `immutable/${S}/-1`), 400, "bad-share-number"],
        [request("GET", `immutable/${S}/16777216`), 400, "bad-share-number"],
        [request("GET", `immutable/${S}/1e3`), 400, "bad-share-number"],
        [request("GET", `immutable/%2e%2e%2f%2e%2e/shares`), 400, "bad-storage-index"],
        [request("GET", `immutable/${S}/%2e%2e`), 400, "bad-storage-index"], // URL parsing resolves it to .../immutable/
        [request("GET", `/shoal/v1/immutable/../../../etc/passwd`), 404, "not-found"],
        [request("GET", `/shoal/v1/immutable//shares`), 400],
        [request("GET", `/shoal/v1/version/`), 404, "not-found"],
        [request("GET", `/shoal/v2/version`), 404, "not-found"],
        [request("DELETE", `immutable/${S}/shares`), 405, "method-not-allowed"],
        // Bad ranges.
        [
          request("PATCH", `immutable/${S}/0`, {
            headers: { [HEADERS.uploadSecret]: b32(secret(1)), "content-range": "bytes 5-2/*" },
            body: new Uint8Array(0),
          }),
          400,
          "bad-range",
        ],
        [
          request("PATCH", `immutable/${S}/0`, {
            headers: { [HEADERS.uploadSecret]: b32(secret(1)) },
            body: new Uint8Array(1),
          }),
          400,
          "missing-header",
        ],
        [
          request("PATCH", `immutable/${S}/0`, {
            headers: {
              [HEADERS.uploadSecret]: b32(secret(1)),
              "content-range": "bytes 0-99999999999999999999/*",
            },
            body: new Uint8Array(1),
          }),
          400,
          "bad-range",
        ],
        [
          request("PATCH", `immutable/${S}/0`, {
            headers: {
              [HEADERS.uploadSecret]: b32(secret(1)),
              "content-range": "bytes 0-2000000/*",
            },
            body: new Uint8Array(1),
          }),
          413,
          "body-too-large",
        ],
      ];
      for (const [req, status, code] of cases) {
        const r = await c.handle(req);
        await expectError(r, status, code).catch((e) => {
          throw new Error(`${req.method} ${req.url}: ${e.message}`);
        });
        await ok();
      }
      // Ranged reads of a real share.
      await uploadShare(c, si(6), 0, new Uint8Array(100).fill(1));
      for (
        const range of [
          "bytes=5-2",
          "bytes=abc",
          "bytes=-5",
          "bytes=0-1,3-4",
          "items=0-1",
          "bytes=01-2",
        ]
      ) {
        await expectError(
          await c.handle(request("GET", `immutable/${S}/0`, { headers: { range } })),
          400,
          "bad-range",
        );
      }
      await expectError(
        await c.handle(request("GET", `immutable/${S}/0`, { headers: { range: "bytes=100-" } })),
        416,
      );
      // A PATCH whose body is longer or shorter than its Content-Range.
      let r = await c.handle(
        request("POST", `immutable/${S}`, {
          headers: allocHeaders(),
          body: cbor({ shareNumbers: [1], allocatedSize: 10 }),
        }),
      );
      assert.equal(r.status, 200);
      await r.body?.cancel();
      r = await c.handle(request("PATCH", `immutable/${S}/1`, {
        headers: { [HEADERS.uploadSecret]: b32(secret(1)), "content-range": "bytes 0-4/10" },
        body: ReadableStream.from([new Uint8Array(3), new Uint8Array(3)]),
      }));
      await expectError(r, 400, "body-length-mismatch");
      r = await c.handle(request("PATCH", `immutable/${S}/1`, {
        headers: { [HEADERS.uploadSecret]: b32(secret(1)), "content-range": "bytes 0-4/11" },
        body: new Uint8Array(5),
      }));
      await expectError(r, 400, "bad-range");
      // No share of this storage index was stored by any of the above except share 0.
      assert.deepEqual(await body(await c.handle(request("GET", `immutable/${S}/shares`))), [0]);
      assert.deepEqual(await body(await c.handle(request("GET", `mutable/${S}/shares`))), []);
    },
    {},
    { maxBodySize: 1024 * 1024 },
  );
});

Deno.test("leases: garbage collection removes data only when every lease expired", async () => {
  await withServer(async (c) => {
    const H = 3600 * 1000;
    const enc = (s: string) => new TextEncoder().encode(s);
    await uploadShare(c, si(20), 0, enc("immutable data"));
    await rtw(c, si(21), {
      testWriteVectors: [{
        share: 0,
        test: [],
        write: [{ offset: 0, data: enc("mutable") }],
        newLength: null,
      }],
      readVector: [],
    });
    await uploadShare(c, si(22), 0, enc("short-lived"));
    c.clock.t += 0.5 * H;
    // A second lease on si(20) (via PUT /lease) and si(21) (via a read-test-write with another renew secret).
    let r = await c.handle(request("PUT", `lease/${b32(si(20))}`, {
      headers: {
        [HEADERS.leaseRenewSecret]: b32(secret(30)),
        [HEADERS.leaseCancelSecret]: b32(secret(31)),
      },
    }));
    assert.equal(r.status, 204);
    r = await rtw(
      c,
      si(21),
      {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset: 0, data: enc("M") }],
          newLength: null,
        }],
        readVector: [],
      },
      9,
      30,
    );
    assert.equal(((await body(r)) as { success: boolean }).success, true);
    assert.equal((await c.store.leases("immutable", si(20))).length, 2);
    assert.equal((await c.store.leases("mutable", si(21))).length, 2);
    await expectError(
      await c.handle(request("PUT", `lease/${b32(si(99))}`, {
        headers: {
          [HEADERS.leaseRenewSecret]: b32(secret(30)),
          [HEADERS.leaseCancelSecret]: b32(secret(31)),
        },
      })),
      404,
    );

    // After 1.2 h the first leases have expired, the second ones have not.
    c.clock.t += 0.7 * H;
    assert.deepEqual(await c.store.gc(), { removed: 1 }); // only si(22)
    assert.deepEqual(
      await body(await c.handle(request("GET", `immutable/${b32(si(20))}/shares`))),
      [0],
    );
    assert.deepEqual(await body(await c.handle(request("GET", `mutable/${b32(si(21))}/shares`))), [
      0,
    ]);
    assert.deepEqual(
      await body(await c.handle(request("GET", `immutable/${b32(si(22))}/shares`))),
      [],
    );
    assert.equal((await c.store.leases("immutable", si(20))).length, 1);

    // Renewing with the same secret extends rather than adds.
    r = await c.handle(request("PUT", `lease/${b32(si(20))}`, {
      headers: {
        [HEADERS.leaseRenewSecret]: b32(secret(30)),
        [HEADERS.leaseCancelSecret]: b32(secret(31)),
      },
    }));
    assert.equal(r.status, 204);
    assert.equal((await c.store.leases("immutable", si(20))).length, 1);
    c.clock.t += 0.6 * H;
    assert.deepEqual(await c.store.gc(), { removed: 1 }); // si(21)'s last lease expired; si(20) renewed
    assert.deepEqual(
      await body(await c.handle(request("GET", `mutable/${b32(si(21))}/shares`))),
      [],
    );
    assert.deepEqual(
      await body(await c.handle(request("GET", `immutable/${b32(si(20))}/shares`))),
      [0],
    );
    c.clock.t += 1 * H;
    assert.deepEqual(await c.store.gc(), { removed: 1 });
    assert.deepEqual(
      await body(await c.handle(request("GET", `immutable/${b32(si(20))}/shares`))),
      [],
    );
  }, { leaseDuration: 3600 });
});

Deno.test("store: restart drops partial uploads, keeps complete shares", async () => {
  const dir = await Deno.makeTempDir({ prefix: "shoal-store-" });
  try {
    const store = await ShareStore.open({ root: dir });
    await store.allocate(
      si(1),
      { upload: secret(1), renew: secret(2), cancel: secret(3) },
      [0, 1],
      4,
    );
    await store.writeImmutable(si(1), 0, secret(1), 0, 4, new Uint8Array([1, 2, 3, 4]));
    await store.writeImmutable(si(1), 1, secret(1), 0, 2, new Uint8Array([1, 2]));
    const again = await ShareStore.open({ root: dir });
    assert.deepEqual(await again.listImmutable(si(1)), [0]);
    assert.deepEqual(await treeFiles(`${dir}/incoming`), []);
    const r = await again.allocate(
      si(1),
      { upload: secret(1), renew: secret(2), cancel: secret(3) },
      [0, 1],
      4,
    );
    assert.deepEqual(r, { alreadyHave: [0], allocated: [1] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("store caches: a slot removed or a share deleted behind the store's back is noticed", async () => {
  await withServer(async (c) => {
    const S = si(77);
    const enc = (s: string) => new TextEncoder().encode(s);
    const write = (we: number, share: number, text: string) =>
      rtw(c, S, {
        testWriteVectors: [{
          share,
          test: [],
          write: [{ offset: 0, data: enc(text) }],
          newLength: null,
        }],
        readVector: [{ offset: 0, size: 5 }],
      }, we);
    // Two shares under write enabler 9; reads fill the caches.
    for (const [n, t] of [[0, "zero!"], [1, "one!!"]] as const) {
      const r = await write(9, n, t);
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    const readAll = async () =>
      (await body(
        await rtw(c, S, { testWriteVectors: [], readVector: [{ offset: 0, size: 5 }] }, 9),
      )) as { reads: { share: number }[] };
    assert.deepEqual((await readAll()).reads.map((x) => x.share), [0, 1]);
    // Another write enabler is refused while the slot exists.
    await expectError(await write(8, 0, "nope!"), 403, "bad-write-enabler");

    // Share 1 deleted by hand: still listed in the cache, but skipped when read.
    const slot = `${c.dir}/storage/mutable/${b32(S).slice(0, 2)}/${b32(S)}`;
    await Deno.remove(`${slot}/1`);
    assert.deepEqual((await readAll()).reads.map((x) => x.share), [0]);

    // The whole slot removed by hand: its cached metadata (write enabler) is
    // checked against the file within a second, after which a new writer may
    // create the slot afresh.
    await Deno.remove(slot, { recursive: true });
    await new Promise((r) => setTimeout(r, 1100));
    const r = await write(8, 0, "fresh");
    assert.equal(r.status, 200);
    assert.deepEqual(await body(r), { success: true, reads: [] });
    // The old write enabler is now the stranger.
    await expectError(
      await rtw(c, S, { testWriteVectors: [], readVector: [{ offset: 0, size: 5 }] }, 9),
      403,
      "bad-write-enabler",
    );
    const again = await rtw(
      c,
      S,
      { testWriteVectors: [], readVector: [{ offset: 0, size: 5 }] },
      8,
    );
    assert.deepEqual(await body(again), {
      success: true,
      reads: [{ share: 0, data: [enc("fresh")] }],
    });
  });
});
