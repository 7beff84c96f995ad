/**
 * StorageClient round trips for every route against a real `shoal storage run`
 * process on 127.0.0.1 (real TLS, real disk), one node for the whole file.
 */
import assert from "node:assert/strict";
import {
  PinMismatchError,
  StorageClient,
  StorageError,
  StorageUnreachableError,
} from "../../lib/storage/client.ts";
import { parseStorageUrl } from "../../lib/storage/url.ts";
import {
  createStorageNode,
  startStorageServer,
  type StorageProcess,
} from "../helpers/storage_process.ts";
import { slotProof as slotProofFor, slotSi } from "./slot_helpers.ts";

const secret = (n: number) => new Uint8Array(32).fill(n);
const si = (n: number) => slotSi(n);
const enc = new TextEncoder();

async function withServer(fn: (c: StorageClient, p: StorageProcess) => Promise<void>) {
  const node = await createStorageNode({ nickname: "client-test" });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url), { timeoutMs: 10_000 });
  try {
    await fn(client, server);
  } finally {
    client.close();
    await server.stop();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
}

function storageError(status: number, code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof StorageError, String(e));
    assert.equal(e.status, status, e.message);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

Deno.test("every route against a real storage server process", async () => {
  await withServer(async (c, p) => {
    // version
    const v = await c.version();
    assert.equal(v.protocol, 1);
    assert.ok(
      v.maxShareSize > 0 && v.availableSpace > 0 && v.maxBodySize > 0 && v.leaseDuration > 0,
    );
    assert.deepEqual(c.serverId, parseStorageUrl(p.url).pin);

    // immutable: allocate, upload in two ranges (out of order), list, read, corrupt, abort
    const lease = { leaseRenew: secret(2), leaseCancel: secret(3) };
    const up = { upload: secret(1), ...lease };
    const share = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 251);
    assert.deepEqual(
      await c.allocate(si(1), up, { shareNumbers: [0, 1], allocatedSize: share.length }),
      {
        alreadyHave: [],
        allocated: [0, 1],
      },
    );
    assert.deepEqual(await c.listImmutable(si(1)), []);
    assert.deepEqual(
      (await c.upload(si(1), 0, up.upload, 60_000, share.subarray(60_000))).required,
      [
        { begin: 0, end: 60_000 },
      ],
    );
    await assert.rejects(
      c.upload(si(1), 0, secret(9), 0, share.subarray(0, 10)),
      storageError(403, "bad-upload-secret"),
    );
    assert.deepEqual(
      (await c.upload(si(1), 0, up.upload, 0, share.subarray(0, 60_000))).required,
      [],
    );
    assert.deepEqual(await c.listImmutable(si(1)), [0]);
    assert.deepEqual(await c.readImmutable(si(1), 0), share);
    assert.deepEqual(await c.readImmutable(si(1), 0, 99_990), share.subarray(99_990));
    assert.deepEqual(await c.readImmutable(si(1), 0, 123, 4567), share.subarray(123, 123 + 4567));
    // Into a caller's buffer: a view of it when the range fits, else a buffer of its own.
    const into = new Uint8Array(5000).fill(0xee);
    const got = await c.readImmutable(si(1), 0, 123, 4567, into.subarray(10));
    assert.deepEqual(got, share.subarray(123, 123 + 4567));
    assert.ok(got.buffer === into.buffer && got.byteOffset === 10, "read into the given buffer");
    assert.ok(into.subarray(0, 10).every((x) => x === 0xee) && into[4577] === 0xee);
    const small = new Uint8Array(100);
    const other = await c.readImmutable(si(1), 0, 123, 4567, small);
    assert.deepEqual(other, share.subarray(123, 123 + 4567));
    assert.ok(other.buffer !== small.buffer && small.every((x) => x === 0));
    assert.deepEqual(await c.readImmutable(si(1), 0, 100_000, 5), new Uint8Array(0));
    await assert.rejects(c.readImmutable(si(1), 1), storageError(404, "not-found"));
    await c.reportCorruption("immutable", si(1), 0, "hash mismatch in block 3");
    await c.abortUpload(si(1), 1, up.upload);
    await assert.rejects(c.abortUpload(si(1), 1, up.upload), storageError(404, "no-upload"));
    // allocate again: share 0 is held, share 1 is fresh again
    assert.deepEqual(
      await c.allocate(si(1), { ...up, upload: secret(4) }, {
        shareNumbers: [0, 1],
        allocatedSize: share.length,
      }),
      { alreadyHave: [0], allocated: [1] },
    );

    // mutable: create a slot, test-and-set, wrong write enabler, list, read, batch read
    const we = { writeEnabler: secret(7), ...lease };
    const slotProof = await slotProofFor(si(2), c.serverId, we.writeEnabler);
    const created = await c.readTestWrite(si(2), { ...we, slotProof }, {
      testWriteVectors: [
        {
          share: 0,
          test: [{ offset: 0, size: 3, specimen: new Uint8Array(0) }],
          write: [{ offset: 0, data: enc.encode("old") }],
          newLength: null,
        },
        { share: 3, test: [], write: [{ offset: 0, data: enc.encode("three") }], newLength: null },
      ],
      readVector: [{ offset: 0, size: 10 }],
    });
    assert.deepEqual(created, { success: true, reads: [] });
    const swap = (specimen: string) =>
      c.readTestWrite(si(2), we, {
        testWriteVectors: [{
          share: 0,
          test: [{ offset: 0, size: 3, specimen: enc.encode(specimen) }],
          write: [{ offset: 0, data: enc.encode("new") }],
          newLength: null,
        }],
        readVector: [{ offset: 0, size: 3 }],
      });
    const failed = await swap("xxx");
    assert.equal(failed.success, false);
    assert.deepEqual(failed.reads, [{ share: 0, data: [enc.encode("old")] }, {
      share: 3,
      data: [enc.encode("thr")],
    }]);
    assert.equal((await swap("old")).success, true);
    await assert.rejects(
      c.readTestWrite(si(2), { ...we, writeEnabler: secret(8) }, {
        testWriteVectors: [],
        readVector: [],
      }),
      storageError(403, "bad-write-enabler"),
    );
    assert.deepEqual(await c.listMutable(si(2)), [0, 3]);
    assert.deepEqual(await c.readMutable(si(2), 0), enc.encode("new"));
    assert.deepEqual(await c.readMutable(si(2), 3, 1, 2), enc.encode("hr"));
    await c.reportCorruption("mutable", si(2), 3, "bad signature");
    const batch = await c.batchRead({
      slots: [
        { storageIndex: si(2), ranges: [{ offset: 0, size: null }, { offset: 1, size: 1 }] },
        { storageIndex: si(2), shares: [3], ranges: [{ offset: 0, size: 2 }] },
        { storageIndex: si(5), ranges: [{ offset: 0, size: null }] },
      ],
    });
    assert.deepEqual(batch.slots, [
      {
        storageIndex: si(2),
        shares: [
          { share: 0, data: [enc.encode("new"), enc.encode("e")] },
          { share: 3, data: [enc.encode("three"), enc.encode("h")] },
        ],
      },
      { storageIndex: si(2), shares: [{ share: 3, data: [enc.encode("th")] }] },
      { storageIndex: si(5), shares: [] },
    ]);

    // leases
    await c.renewLease(si(1), { renew: secret(2), cancel: secret(3) });
    await c.renewLease(si(2), { renew: secret(12), cancel: secret(13) });
    await assert.rejects(
      c.renewLease(si(9), { renew: secret(2), cancel: secret(3) }),
      storageError(404, "not-found"),
    );

    // All of it over one keep-alive connection.
    assert.equal(c.openConnections, 1);
  });
});

Deno.test("real server: wrong swissnum is 401, another pin is refused, dead hints are skipped", async () => {
  await withServer(async (c, p) => {
    const url = parseStorageUrl(p.url);
    const wrongSwiss = new StorageClient({ ...url, swissnum: secret(0x33) });
    try {
      await assert.rejects(wrongSwiss.version(), storageError(401, "unauthorized"));
    } finally {
      wrongSwiss.close();
    }
    const wrongPin = new StorageClient({ ...url, pin: secret(0x44) });
    try {
      await assert.rejects(wrongPin.listImmutable(si(1)), PinMismatchError);
    } finally {
      wrongPin.close();
    }
    // A hint nobody listens on, then the server's own.
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const deadPort = (l.addr as Deno.NetAddr).port;
    l.close();
    const fallthrough = new StorageClient({
      ...url,
      locations: [`127.0.0.1:${deadPort}`, ...url.locations],
    });
    try {
      assert.equal((await fallthrough.version()).protocol, 1);
      assert.equal(fallthrough.preferredLocation, url.locations[0]);
    } finally {
      fallthrough.close();
    }
    // Closed client: refuses further calls.
    c.close();
    await assert.rejects(c.version(), StorageUnreachableError);
  });
});
