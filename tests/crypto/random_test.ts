import assert from "node:assert/strict";
import { toHex } from "../../lib/codec/mod.ts";
import { randomBytes } from "../../lib/crypto/mod.ts";

Deno.test("randomBytes gives the requested length, including past the 65536-byte call limit", () => {
  for (const n of [0, 1, 32, 65535, 65536, 65537, 200_000]) assert.equal(randomBytes(n).length, n);
});

Deno.test("randomBytes fills every chunk (no zero tail after 65536)", () => {
  const b = randomBytes(3 * 65536 + 100);
  for (let chunk = 0; chunk < 4; chunk++) {
    const part = b.subarray(chunk * 65536, Math.min(b.length, (chunk + 1) * 65536));
    assert.ok(part.some((x) => x !== 0), `chunk ${chunk} is all zero`);
  }
  const tail = b.subarray(b.length - 100);
  assert.ok(tail.some((x) => x !== 0));
});

Deno.test("randomBytes never repeats a 32-byte value and looks uniform", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(toHex(randomBytes(32)));
  assert.equal(seen.size, 1000);
  const counts = new Array(256).fill(0);
  for (const x of randomBytes(256 * 400)) counts[x]++;
  for (const c of counts) assert.ok(c > 250 && c < 550, `byte frequency ${c} far from 400`);
});

Deno.test("randomBytes refuses bad lengths", () => {
  for (const n of [-1, 1.5, NaN, Infinity]) assert.throws(() => randomBytes(n), RangeError);
});
