import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex, utf8 } from "../../lib/codec/mod.ts";
import { hashTreeNode, sha256, taggedHash, TaggedHasher, TAGS } from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

Deno.test("sha256 matches the FIPS 180-4 examples", () => {
  for (const v of V.sha256) assert.equal(toHex(sha256(fromHex(v.input))), v.hash);
  assert.equal(toHex(sha256(utf8("a"), utf8("bc"))), toHex(sha256(utf8("abc"))));
});

Deno.test("taggedHash matches the reference vectors", () => {
  for (const v of V.taggedHash) {
    assert.equal(toHex(taggedHash(v.tag, ...v.parts.map(fromHex))), v.hash, v.tag);
  }
});

Deno.test("TAGS is frozen, pinned by the vectors, and every tag is distinct", () => {
  assert.ok(Object.isFrozen(TAGS));
  assert.deepEqual({ ...TAGS }, V.tags);
  const values = Object.values(TAGS);
  assert.equal(new Set(values).size, values.length);
  for (const t of values) assert.match(t, /^shoal:v1:[a-z0-9-]+$/);
  assert.throws(() => {
    (TAGS as Record<string, string>).writekey = "x";
  });
});

Deno.test("netstring framing: moving a byte between parts or into the tag changes the hash", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(40), (bytes, cut) => {
      const c = Math.min(cut, bytes.length);
      const whole = toHex(taggedHash("shoal:v1:test", bytes));
      const split = toHex(taggedHash("shoal:v1:test", bytes.slice(0, c), bytes.slice(c)));
      assert.notEqual(whole, split);
      assert.notEqual(toHex(taggedHash("shoal:v1:tes", utf8("t"), bytes)), whole);
    }),
  );
});

Deno.test("TaggedHasher equals taggedHash with one part, fed in any chunks", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(3000)), (data, cuts) => {
      const h = new TaggedHasher(TAGS.segmentHash, data.length);
      let off = 0;
      for (const c of [...cuts].sort((a, b) => a - b)) {
        const end = Math.min(c, data.length);
        if (end < off) continue;
        h.update(data.subarray(off, end));
        off = end;
      }
      h.update(data.subarray(off));
      assert.equal(toHex(h.digest()), toHex(taggedHash(TAGS.segmentHash, data)));
    }),
  );
});

Deno.test("TaggedHasher refuses more or less data than declared", () => {
  assert.throws(() => new TaggedHasher(TAGS.blockHash, 2).update(new Uint8Array(3)), RangeError);
  assert.throws(
    () => new TaggedHasher(TAGS.blockHash, 2).update(new Uint8Array(1)).digest(),
    RangeError,
  );
});

Deno.test("hashTreeNode is exactly taggedHash(TAGS.hashTreeNode, left, right)", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      (l, r) => {
        assert.equal(toHex(hashTreeNode(l, r)), toHex(taggedHash(TAGS.hashTreeNode, l, r)));
      },
    ),
  );
});
