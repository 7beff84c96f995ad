/**
 * The version answer's `used` (docs/storage-protocol.md §6.1): the vector's canonical CBOR, and
 * on a real on-disk ShareStore the bytes of every share file, counted again when the count is
 * older than 30 s (the store's clock) and answered from the last count meanwhile.
 */
import assert from "node:assert/strict";
import { base32Encode, decodeCbor, encodeCbor, toHex } from "../../lib/codec/mod.ts";
import { HEADERS } from "../../lib/storage/mod.ts";
import { storageRequest, withStoreHandler } from "../helpers/storage_handler.ts";

const secret = (n: number) => base32Encode(new Uint8Array(32).fill(n));

Deno.test("version vector: canonical CBOR with 'used'", async () => {
  const V = JSON.parse(
    await Deno.readTextFile(new URL("../vectors/version.json", import.meta.url)),
  );
  assert.equal(toHex(encodeCbor(V.version)), V.body);
  assert.deepEqual(
    decodeCbor(Uint8Array.from(V.body.match(/../g), (h: string) => parseInt(h, 16))),
    V.version,
  );
});

/** Sizes of every share file under the store's root (an independent walk of the disk). */
async function shareBytes(root: string): Promise<number> {
  let total = 0;
  for (const kind of ["immutable", "mutable"]) {
    const walk = async (d: string, depth: number) => {
      for await (const e of Deno.readDir(d)) {
        const p = `${d}/${e.name}`;
        if (depth < 2 && e.isDirectory) await walk(p, depth + 1);
        else if (depth === 2 && e.isFile && /^\d+$/.test(e.name)) {
          total += (await Deno.stat(p)).size;
        }
      }
    };
    await walk(`${root}/${kind}`, 0).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
  return total;
}

Deno.test("version: 'used' is the bytes of shares stored, recounted after 30 s", async () => {
  await withStoreHandler("shoal-version-", async ({ root, handle, clock }) => {
    const req = (
      method: string,
      path: string,
      headers: Record<string, string> = {},
      body?: Uint8Array,
    ) => handle(storageRequest(method, path, headers, body));
    const used = async () => {
      const r = await req("GET", "version");
      assert.equal(r.status, 200);
      return (decodeCbor(new Uint8Array(await r.arrayBuffer())) as { used?: number }).used;
    };
    assert.equal(await used(), 0, "an empty store");

    // Two complete immutable shares of 50,000 bytes.
    const si = base32Encode(new Uint8Array(16).fill(9));
    const data = new Uint8Array(50_000).fill(3);
    const r = await req("POST", `immutable/${si}`, {
      [HEADERS.uploadSecret]: secret(1),
      [HEADERS.leaseRenewSecret]: secret(2),
      [HEADERS.leaseCancelSecret]: secret(3),
    }, encodeCbor({ shareNumbers: [0, 1], allocatedSize: data.length }));
    assert.equal(r.status, 200, await r.clone().text());
    await r.body?.cancel();
    for (const n of [0, 1]) {
      const p = await req("PATCH", `immutable/${si}/${n}`, {
        [HEADERS.uploadSecret]: secret(1),
        "content-range": `bytes 0-${data.length - 1}/*`,
      }, data);
      assert.equal(p.status, 201);
      await p.body?.cancel();
    }
    assert.equal(await used(), 0, "within 30 s the last count is answered");
    clock.t += 31_000;
    const expected = await shareBytes(root);
    assert.ok(expected >= 2 * data.length, `share files hold the data: ${expected}`);
    // The first answer after 30 s may still be the old count; the recount follows at once.
    let got = await used();
    for (let i = 0; i < 50 && got !== expected; i++) {
      await new Promise((res) => setTimeout(res, 20));
      got = await used();
    }
    assert.equal(got, expected);
  });
});
