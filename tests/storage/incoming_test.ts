/**
 * #11.8 and #12 (server side): an allocation that receives no data is
 * reclaimed within incoming_timeout (file, in-memory record and the space it
 * held), uploads in progress are counted (max_uploads), a retry reuses its
 * own upload or takes over an earlier attempt that stopped sending, and a
 * client that goes away mid-PATCH (Ctrl-C) is logged as an aborted request,
 * not an internal error. Against a real server process with short settings.
 */
import assert from "node:assert/strict";
import { base32Encode } from "../../lib/codec/mod.ts";
import {
  AUTH_SCHEME,
  HEADERS,
  parseStorageUrl,
  StorageClient,
  StorageError,
} from "../../lib/storage/mod.ts";
import { loadStorageNode } from "../../lib/roles/storage/mod.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";
import { RawTls } from "./wire_helpers.ts";

const secret = (n: number) => new Uint8Array(32).fill(n);
const si = (n: number) => new Uint8Array(16).fill(n);
const MB = 1_000_000;

async function incomingFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${dir}/storage/incoming`)) out.push(e.name);
  return out.sort();
}

async function until(what: string, ms: number, f: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now();
  while (!(await f())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

Deno.test("uploads that stop receiving data are reclaimed quickly, counted, and replaced by a retry", async () => {
  const node = await createStorageNode({
    reservedSpace: "0",
    storageConfig: { incoming_timeout: "4s", max_uploads: 3 },
  });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url));
  const lease = { leaseRenew: secret(2), leaseCancel: secret(3) };
  try {
    // An allocation of 500 MB that never receives a byte reserves space only briefly.
    const before = (await client.version()).availableSpace;
    const a = await client.allocate(si(1), { upload: secret(10), ...lease }, {
      shareNumbers: [0],
      allocatedSize: 500 * MB,
    });
    assert.deepEqual(a.allocated, [0]);
    assert.ok((await client.version()).availableSpace <= before - 400 * MB, "space is promised");
    assert.equal((await incomingFiles(node.dir)).length, 1);
    const took = await until(
      "the idle allocation is dropped",
      15_000,
      async () => (await incomingFiles(node.dir)).length === 0,
    );
    console.log(`an allocation without data was reclaimed after ${took} ms (incoming_timeout 4s)`);
    assert.ok((await client.version()).availableSpace >= before - 50 * MB, "space is back");
    await assert.rejects(
      client.upload(si(1), 0, secret(10), 0, new Uint8Array(10)),
      (e: unknown) => e instanceof StorageError && e.status === 404 && e.code === "no-upload",
    );

    // Uploads in progress are counted: at most max_uploads (3).
    await client.allocate(si(2), { upload: secret(11), ...lease }, {
      shareNumbers: [0, 1, 2],
      allocatedSize: 1000,
    });
    await assert.rejects(
      client.allocate(si(3), { upload: secret(12), ...lease }, {
        shareNumbers: [0],
        allocatedSize: 1000,
      }),
      (e: unknown) =>
        e instanceof StorageError && e.status === 507 && e.code === "too-many-uploads",
    );
    await until(
      "the three idle uploads are dropped",
      15_000,
      async () => (await incomingFiles(node.dir)).length === 0,
    );

    // An interrupted upload (half sent, then nothing) and its retry under a new upload secret.
    const S = si(4);
    const data = new Uint8Array(2000).map((_, i) => i & 0xff);
    await client.allocate(S, { upload: secret(20), ...lease }, {
      shareNumbers: [0],
      allocatedSize: data.length,
    });
    await client.upload(S, 0, secret(20), 0, data.subarray(0, 1000));
    // The same attempt again reuses its upload (idempotent allocate).
    assert.deepEqual(
      (await client.allocate(S, { upload: secret(20), ...lease }, {
        shareNumbers: [0],
        allocatedSize: data.length,
      })).allocated,
      [0],
    );
    // A retry with a new secret at once does not disturb an upload still being sent...
    assert.deepEqual(
      (await client.allocate(S, { upload: secret(21), ...lease }, {
        shareNumbers: [0],
        allocatedSize: data.length,
      })).allocated,
      [],
    );
    // ... but takes over one that has stopped sending (after half the incoming timeout).
    await new Promise((r) => setTimeout(r, 2300));
    assert.deepEqual(
      (await client.allocate(S, { upload: secret(21), ...lease }, {
        shareNumbers: [0],
        allocatedSize: data.length,
      })).allocated,
      [0],
    );
    assert.deepEqual(await client.upload(S, 0, secret(21), 0, data), { required: [] });
    assert.deepEqual(await client.readImmutable(S, 0), data);
    assert.deepEqual(await incomingFiles(node.dir), []);
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("a client that resets its connection mid-PATCH is logged as an aborted request", async () => {
  const node = await createStorageNode({ reservedSpace: "0" });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url));
  try {
    const n = await loadStorageNode(node.dir);
    const S = si(5);
    await client.allocate(
      S,
      { upload: secret(30), leaseRenew: secret(2), leaseCancel: secret(3) },
      {
        shareNumbers: [0],
        allocatedSize: 1_000_000,
      },
    );
    const c = await RawTls.open(
      server.address.includes(":") ? Number(server.address.split(":")[1]) : 0,
    );
    c.write(
      `PATCH /shoal/v1/immutable/${base32Encode(S)}/0 HTTP/1.1\r\nhost: x\r\n` +
        `authorization: ${AUTH_SCHEME} ${base32Encode(n.swissnum)}\r\n` +
        `${HEADERS.uploadSecret}: ${base32Encode(secret(30))}\r\n` +
        `content-range: bytes 0-999999/1000000\r\ncontent-length: 1000000\r\n\r\n`,
    );
    c.write(new Uint8Array(200_000));
    await new Promise((r) => setTimeout(r, 300));
    c.sock.resetAndDestroy?.() ?? c.close();
    await until(
      "the abort is logged",
      10_000,
      () => Promise.resolve(/aborted request PATCH/.test(server.stderr())),
    );
    assert.doesNotMatch(server.stderr(), /internal error/);
    assert.doesNotMatch(server.stderr(), new RegExp(base32Encode(secret(30))));
    // The upload can go on from another connection.
    assert.equal((await client.version()).protocol, 1);
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});

Deno.test("start-up warns when reserved_space exceeds the free disk; refusals for space are logged", async () => {
  const node = await createStorageNode({ reservedSpace: "1PiB" });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url));
  try {
    await until(
      "the start-up warning",
      10_000,
      () => Promise.resolve(/reserved_space .* exceeds the free disk space/.test(server.stderr())),
    );
    await assert.rejects(
      client.allocate(
        si(6),
        { upload: secret(40), leaseRenew: secret(2), leaseCancel: secret(3) },
        {
          shareNumbers: [0],
          allocatedSize: 1000,
        },
      ),
      (e: unknown) =>
        e instanceof StorageError && e.status === 507 && e.code === "insufficient-space",
    );
    await until(
      "the refusal is logged",
      10_000,
      () => Promise.resolve(/refused 1 write\(s\) for space/.test(server.stderr())),
    );
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});
