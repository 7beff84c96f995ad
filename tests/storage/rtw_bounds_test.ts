/**
 * #11.2: a read-test-write's read vector (and its test vectors) are bounded
 * before a byte is read. A small request naming many reads of a large share
 * is refused with 413 response-too-large, and the server process's peak
 * memory (VmHWM in /proc/PID/status) grows by no more than a small multiple
 * of its max body size.
 */
import assert from "node:assert/strict";
import { parseStorageUrl, StorageClient, StorageError } from "../../lib/storage/mod.ts";
import { createStorageNode, startStorageServer } from "../helpers/storage_process.ts";
import { procStatusKb } from "./wire_helpers.ts";
import { slotFor } from "./slot_helpers.ts";

const MiB = 1024 * 1024;

Deno.test("read-test-write: reads beyond max_body_size get 413 before any is read; peak memory stays bounded", async () => {
  const maxBody = 4 * MiB;
  const node = await createStorageNode({
    reservedSpace: "0",
    storageConfig: { max_body_size: "4MiB" },
  });
  const server = await startStorageServer(node.dir);
  const client = new StorageClient(parseStorageUrl(server.url), { timeoutMs: 120_000 });
  try {
    // A 4 MiB share, written in two pieces that each fit the body limit.
    const slot = await slotFor(1, client.serverId);
    const piece = new Uint8Array(2 * MiB).fill(0x5a);
    for (const offset of [0, 2 * MiB]) {
      const r = await client.readTestWrite(slot.si, slot.secrets, {
        testWriteVectors: [{
          share: 0,
          test: [],
          write: [{ offset, data: piece }],
          newLength: null,
        }],
        readVector: [],
      });
      assert.equal(r.success, true);
    }
    // Within the limit: served.
    const ok = await client.readTestWrite(slot.si, slot.secrets, {
      testWriteVectors: [],
      readVector: [{ offset: 0, size: MiB }, { offset: MiB, size: MiB }],
    });
    assert.equal(ok.reads[0].data[1].length, MiB);

    const before = await procStatusKb(server.pid, "VmHWM");
    // 64 reads of the whole share: 256 MiB of response from a request of a few hundred bytes.
    await assert.rejects(
      client.readTestWrite(slot.si, slot.secrets, {
        testWriteVectors: [],
        readVector: Array.from({ length: 64 }, () => ({ offset: 0, size: 4 * MiB })),
      }),
      (e: unknown) =>
        e instanceof StorageError && e.status === 413 && e.code === "response-too-large",
    );
    // 64 test vectors each naming the whole share with a 1-byte specimen: compared
    // without reading more than the specimen (and one byte) each.
    const t = await client.readTestWrite(slot.si, slot.secrets, {
      testWriteVectors: [{
        share: 0,
        test: Array.from({ length: 64 }, () => ({
          offset: 0,
          size: 4 * MiB,
          specimen: new Uint8Array([0x5a]),
        })),
        write: [],
        newLength: null,
      }],
      readVector: [],
    });
    assert.equal(t.success, false);
    const after = await procStatusKb(server.pid, "VmHWM");
    const growth = (after - before) * 1024;
    console.log(
      `VmHWM before ${(before / 1024).toFixed(1)} MiB, after ${
        (after / 1024).toFixed(1)
      } MiB, growth ${(growth / MiB).toFixed(1)} MiB (max body ${maxBody / MiB} MiB)`,
    );
    assert.ok(growth <= 8 * maxBody, `peak memory grew by ${(growth / MiB).toFixed(1)} MiB`);
    // The server still serves.
    assert.equal((await client.version()).protocol, 1);
  } finally {
    client.close();
    await server.kill();
    await Deno.remove(node.dir.replace(/\/node$/, ""), { recursive: true });
  }
});
