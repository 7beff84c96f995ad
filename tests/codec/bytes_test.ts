import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bytesEqual,
  concatBytes,
  fromHex,
  fromUtf8,
  readU64be,
  toHex,
  u32be,
  u64be,
  utf8,
} from "../../lib/codec/mod.ts";

Deno.test("concatBytes joins in order into a fresh array", () => {
  const a = new Uint8Array([1, 2]), b = new Uint8Array([]), c = new Uint8Array([3]);
  const out = concatBytes(a, b, c);
  assert.deepEqual([...out], [1, 2, 3]);
  out[0] = 9;
  assert.equal(a[0], 1);
  assert.equal(concatBytes().length, 0);
});

Deno.test("bytesEqual compares content and length", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 50 }), fc.uint8Array({ maxLength: 50 }), (x, y) => {
      assert.equal(bytesEqual(x, y), toHex(x) === toHex(y));
      assert.equal(bytesEqual(x, new Uint8Array(x)), true);
    }),
  );
  assert.equal(bytesEqual(new Uint8Array([1]), new Uint8Array([1, 0])), false);
});

Deno.test("u64be / readU64be round-trip safe integers and refuse the rest", () => {
  assert.equal(toHex(u64be(0)), "0000000000000000");
  assert.equal(toHex(u64be(0x0102030405)), "0000000102030405");
  assert.equal(toHex(u64be(2 ** 53 - 1)), "001fffffffffffff");
  fc.assert(fc.property(fc.maxSafeNat(), (n) => assert.equal(readU64be(u64be(n)), n)));
  for (const n of [-1, 1.5, 2 ** 53, NaN]) assert.throws(() => u64be(n), RangeError);
  assert.throws(() => readU64be(fromHex("0020000000000000")), RangeError);
  assert.equal(readU64be(fromHex("ff0000000000000007"), 1), 7);
});

Deno.test("u32be encodes big-endian and refuses out-of-range values", () => {
  assert.equal(toHex(u32be(0xdeadbeef)), "deadbeef");
  assert.equal(toHex(u32be(1)), "00000001");
  for (const n of [-1, 2 ** 32, 0.5]) assert.throws(() => u32be(n), RangeError);
});

Deno.test("hex and utf8 round trip; strict decoders refuse malformed input", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      (b) => assert.equal(toHex(fromHex(toHex(b))), toHex(b)),
    ),
  );
  fc.assert(fc.property(fc.string(), (s) => assert.equal(fromUtf8(utf8(s)), s)));
  assert.equal(toHex(fromHex("ABcd")), "abcd");
  for (const s of ["a", "0g", "zz", " 00"]) assert.throws(() => fromHex(s), SyntaxError);
  assert.throws(() => fromUtf8(new Uint8Array([0xc3, 0x28])), TypeError);
  assert.throws(() => fromUtf8(new Uint8Array([0xff])), TypeError);
});
