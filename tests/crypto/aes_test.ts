import assert from "node:assert/strict";
import fc from "fast-check";
import { concatBytes, fromHex, toHex } from "../../lib/codec/mod.ts";
import { aesCtr, aesCtrSync } from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

Deno.test("aesCtr matches NIST SP 800-38A F.5.5 (CTR-AES256), both directions", async () => {
  const n = V.aesCtrNist;
  const ct = await aesCtr(fromHex(n.key), fromHex(n.iv), fromHex(n.plaintext));
  assert.equal(toHex(ct), n.ciphertext);
  assert.equal(toHex(await aesCtr(fromHex(n.key), fromHex(n.iv), ct)), n.plaintext);
});

Deno.test("aesCtr at byte offsets matches the reference (incl. 128-bit counter carry and wrap)", async () => {
  assert.ok(V.aesCtrOffsets.length >= 20);
  for (const v of V.aesCtrOffsets) {
    const got = await aesCtr(fromHex(v.key), fromHex(v.iv), fromHex(v.plaintext), v.offset);
    assert.equal(toHex(got), v.ciphertext, `iv ${v.iv} offset ${v.offset}`);
  }
});

Deno.test("aesCtr piecewise at arbitrary cut points equals one call", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.uint8Array({ maxLength: 500 }),
      fc.array(fc.nat(500), { maxLength: 6 }),
      fc.nat(1 << 30),
      async (key, iv, data, cuts, base) => {
        const whole = await aesCtr(key, iv, data, base);
        const points = [...new Set([0, ...cuts.map((c) => Math.min(c, data.length)), data.length])]
          .sort((a, b) => a - b);
        const pieces = [];
        for (let i = 0; i + 1 < points.length; i++) {
          pieces.push(
            await aesCtr(key, iv, data.subarray(points[i], points[i + 1]), base + points[i]),
          );
        }
        assert.equal(toHex(concatBytes(...pieces)), toHex(whole));
        assert.equal(toHex(await aesCtr(key, iv, whole, base)), toHex(data));
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("aesCtr: different IVs or keys give different keystreams; empty input is empty", async () => {
  const key = new Uint8Array(32).fill(7);
  const zeros = new Uint8Array(64);
  const a = await aesCtr(key, new Uint8Array(16), zeros);
  const b = await aesCtr(key, new Uint8Array(16).fill(1), zeros);
  const c = await aesCtr(new Uint8Array(32).fill(8), new Uint8Array(16), zeros);
  assert.notEqual(toHex(a), toHex(b));
  assert.notEqual(toHex(a), toHex(c));
  assert.equal((await aesCtr(key, new Uint8Array(16), new Uint8Array(0), 5)).length, 0);
  // offset 16 is the keystream shifted by exactly one block
  assert.equal(
    toHex(await aesCtr(key, new Uint8Array(16), zeros.subarray(16), 16)),
    toHex(a.subarray(16)),
  );
});

Deno.test("aesCtr refuses wrong key/iv lengths and bad offsets", async () => {
  const d = new Uint8Array(4);
  await assert.rejects(aesCtr(new Uint8Array(16), new Uint8Array(16), d), RangeError);
  await assert.rejects(aesCtr(new Uint8Array(32), new Uint8Array(12), d), RangeError);
  await assert.rejects(aesCtr(new Uint8Array(32), new Uint8Array(16), d, -1), RangeError);
  await assert.rejects(aesCtr(new Uint8Array(32), new Uint8Array(16), d, 0.5), RangeError);
  await assert.rejects(aesCtr(new Uint8Array(32), new Uint8Array(16), d, 2 ** 53 - 2), RangeError);
});

Deno.test("aesCtr does not modify its input", async () => {
  const data = new Uint8Array(100).fill(3);
  await aesCtr(new Uint8Array(32), new Uint8Array(16), data, 5);
  await aesCtr(new Uint8Array(32), new Uint8Array(16), data, 0);
  assert.ok(data.every((x) => x === 3));
});

Deno.test("aesCtrSync gives the same bytes as aesCtr from offset 0", async () => {
  for (const len of [0, 1, 15, 16, 17, 100, 4097]) {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(16));
    iv.fill(0xff, 8); // exercise the counter carry
    const data = crypto.getRandomValues(new Uint8Array(len));

    const a = await aesCtr(key, iv, data);
    const b = aesCtrSync(key, iv, data);
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) {
      throw new Error(`mismatch at length ${len}`);
    }
  }
});

Deno.test("aesCtr inside a counter block: from a view with headroom as from a copy, headroom untouched", async () => {
  const key = new Uint8Array(32).fill(9);
  const iv = new Uint8Array(16).fill(2);
  const data = crypto.getRandomValues(new Uint8Array(1000));
  for (const offset of [1, 5, 15, 17, 1048578, 3 * 1048578]) {
    const skip = offset % 16;
    const frame = new Uint8Array(16 + data.length).fill(0xee);
    frame.set(data, 16);
    const view = frame.subarray(16); // 16 bytes of headroom: encrypted where it is
    const alone = data.slice(); // byteOffset 0: copied into an aligned frame
    const a = await aesCtr(key, iv, view, offset);
    const b = await aesCtr(key, iv, alone, offset);
    assert.equal(toHex(a), toHex(b), `offset ${offset} (skip ${skip})`);
    assert.equal(a.length, data.length);
    assert.ok(frame.subarray(0, 16).every((x) => x === 0xee), "headroom unchanged");
    assert.equal(toHex(frame.subarray(16)), toHex(data), "input unchanged");
    // and it is the same keystream as one call from offset 0 over the whole stream
    const whole = await aesCtr(key, iv, new Uint8Array(offset + data.length).fill(0));
    const xor = a.map((x, i) => x ^ data[i]);
    assert.equal(toHex(xor), toHex(whole.subarray(offset)));
  }
});
