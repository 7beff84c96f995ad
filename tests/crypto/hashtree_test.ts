import assert from "node:assert/strict";
import fc from "fast-check";
import { fromHex, toHex, u64be } from "../../lib/codec/mod.ts";
import { HashTree, sha256, taggedHash, TAGS, verifyLeaf } from "../../lib/crypto/mod.ts";

const V = JSON.parse(Deno.readTextFileSync(new URL("../vectors/crypto.json", import.meta.url)));

function leavesOf(n: number, salt = 0): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => sha256(u64be(salt), u64be(i)));
}

Deno.test("hash trees of 1..9 leaves: roots and every proof match the vectors", () => {
  assert.equal(V.hashTrees.trees.length, 9);
  for (const t of V.hashTrees.trees) {
    const leaves = t.leaves.map(fromHex);
    const tree = new HashTree(leaves);
    assert.equal(tree.leafCount, t.leafCount);
    assert.equal(toHex(tree.root), t.root, `root of ${t.leafCount}`);
    for (let i = 0; i < t.leafCount; i++) {
      assert.deepEqual(
        tree.neededHashes(i).map(toHex),
        t.proofs[i],
        `proof ${i} of ${t.leafCount}`,
      );
      assert.ok(verifyLeaf(fromHex(t.root), t.leafCount, i, leaves[i], t.proofs[i].map(fromHex)));
    }
  }
});

Deno.test("one leaf: the root is the leaf and the proof is empty; fillers are positional", () => {
  const [leaf] = leavesOf(1);
  const t = new HashTree([leaf]);
  assert.equal(toHex(t.root), toHex(leaf));
  assert.deepEqual(t.neededHashes(0), []);
  const three = new HashTree(leavesOf(3));
  assert.equal(toHex(three.neededHashes(2)[0]), toHex(taggedHash(TAGS.hashTreeEmpty, u64be(3))));
});

Deno.test("proofs for random sizes and indices verify, and fail when any bit flips", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 300 }),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      (n, idxSeed, flipSeed, salt) => {
        const leaves = leavesOf(n, salt);
        const tree = new HashTree(leaves);
        const i = idxSeed % n;
        const proof = tree.neededHashes(i);
        assert.ok(verifyLeaf(tree.root, n, i, leaves[i], proof));
        // flip one bit in the root, the leaf, or one proof entry
        const targets = 2 + proof.length;
        const which = flipSeed % targets;
        const bit = Math.floor(flipSeed / targets) % 256;
        const root = new Uint8Array(tree.root);
        const leaf = new Uint8Array(leaves[i]);
        const p = proof.map((h) => new Uint8Array(h));
        const target = which === 0 ? root : which === 1 ? leaf : p[which - 2];
        target[bit >> 3] ^= 1 << (bit & 7);
        assert.equal(verifyLeaf(root, n, i, leaf, p), false);
        // a wrong index (same proof) or wrong leaf count fails too
        if (n > 1) assert.equal(verifyLeaf(tree.root, n, (i + 1) % n, leaves[i], proof), false);
        const otherDepth = n === 1 ? 2 : 2 * n + 1;
        assert.equal(verifyLeaf(tree.root, otherDepth, i, leaves[i], proof), false);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("verifyLeaf returns false, never throws, on malformed input", () => {
  const leaves = leavesOf(5);
  const t = new HashTree(leaves);
  const p = t.neededHashes(4);
  assert.ok(verifyLeaf(t.root, 5, 4, leaves[4], p));
  const cases: unknown[][] = [
    [t.root, 5, 5, leaves[4], p],
    [t.root, 5, -1, leaves[4], p],
    [t.root, 0, 0, leaves[4], p],
    [t.root, 5.5, 4, leaves[4], p],
    [t.root.subarray(1), 5, 4, leaves[4], p],
    [t.root, 5, 4, leaves[4].subarray(0, 31), p],
    [t.root, 5, 4, leaves[4], p.slice(1)],
    [t.root, 5, 4, leaves[4], [...p, p[0]]],
    [t.root, 5, 4, leaves[4], [p[0], new Uint8Array(31), p[2]]],
    [t.root, 5, 4, leaves[4], [p[0], null, p[2]]],
    [t.root, 5, 4, leaves[4], null],
    [null, 5, 4, leaves[4], p],
  ];
  for (const c of cases) {
    assert.equal(verifyLeaf(...(c as Parameters<typeof verifyLeaf>)), false);
  }
});

Deno.test("HashTree refuses no leaves, non-32-byte leaves and bad indices", () => {
  assert.throws(() => new HashTree([]), RangeError);
  assert.throws(() => new HashTree([new Uint8Array(31)]), RangeError);
  const t = new HashTree(leavesOf(3));
  assert.throws(() => t.neededHashes(3), RangeError);
  assert.throws(() => t.neededHashes(-1), RangeError);
});

Deno.test("a tree of 10^5 leaves builds in linear time and proves its last leaf", () => {
  // Speed itself is the bench's job (`deno task bench crypto`); here the shape of the cost:
  // 8x the leaves must cost about 8x the time (a quadratic build would cost 64x). Best of two
  // builds each, measured in the same moment, so a loaded machine slows both alike.
  const small = leavesOf(12_500);
  const leaves = leavesOf(100_000);
  const best = (l: Uint8Array[]) =>
    Math.min(
      ...[0, 1].map(() => {
        const t0 = performance.now();
        new HashTree(l);
        return performance.now() - t0;
      }),
    );
  best(small); // warm up the JIT
  const ratio = best(leaves) / Math.max(best(small), 0.5);
  assert.ok(ratio < 24, `8x the leaves cost ${ratio.toFixed(1)}x the time`);
  const tree = new HashTree(leaves);
  assert.ok(verifyLeaf(tree.root, 100_000, 99_999, leaves[99_999], tree.neededHashes(99_999)));
  assert.equal(tree.neededHashes(0).length, 17);
});
