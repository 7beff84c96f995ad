/**
 * The immutable-file format against tests/vectors/immutable.json, the stored
 * hash trees against lib/crypto's HashTree, happiness, and the grid's upload
 * producing exactly the vector's shares on real servers.
 *
 * Regenerate the vectors (only when the format version changes):
 *   SHOAL_WRITE_VECTORS=1 deno test -A tests/grid/immutable_format_test.ts
 */
import { assert, assertEquals } from "../helpers/assert.ts";
import { fromHex, toHex, utf8 } from "../../lib/codec/mod.ts";
import {
  convergenceKey,
  HashTree,
  parseCap,
  randomBytes,
  sha256,
  taggedHash,
} from "../../lib/crypto/mod.ts";
import {
  decodeUeb,
  encodeImmutableFile,
  encodingParamsBytes,
  happinessOf,
  immutableLayoutOf,
  requestedSegmentSize,
  uebHashOf,
  uploadImmutable,
} from "../../lib/grid/mod.ts";
import {
  buildTree,
  treeRoot,
  upperPart,
  verifyUpper,
  verifyWindow,
} from "../../lib/grid/immutable_format.ts";
import { TestGrid } from "../helpers/grid.ts";

const VECTORS = new URL("../vectors/immutable.json", import.meta.url);
const KEY = new Uint8Array(32).map((_, i) => i);
const SECRET = new Uint8Array(32).map((_, i) => 0xa0 + i);
const CASES: [string, number, number, number][] = [
  ["", 2, 3, 4096],
  ["Shoal immutable file vector: ".repeat(4).slice(0, 100), 3, 5, 48],
  ["x", 1, 2, 1024],
];

interface FileVector {
  plaintext: string;
  key: string;
  k: number;
  n: number;
  segmentSize: number;
  effectiveSegmentSize: number;
  numSegments: number;
  ueb: string;
  uebHash: string;
  storageIndex: string;
  cap: string;
  shareSize: number;
  blocksOffset: number;
  shares: string[];
  convergence: { secret: string; encodingParams: string; plaintextHash: string; key: string };
}

async function generate(): Promise<FileVector[]> {
  const out: FileVector[] = [];
  for (const [text, k, n, seg] of CASES) {
    const plaintext = utf8(text);
    const f = await encodeImmutableFile(plaintext, KEY, k, n, seg);
    const params = encodingParamsBytes({ k, n, segmentSize: requestedSegmentSize(k, seg) });
    out.push({
      plaintext: toHex(plaintext),
      key: toHex(KEY),
      k,
      n,
      segmentSize: seg,
      effectiveSegmentSize: f.layout.segmentSize,
      numSegments: f.layout.numSegments,
      ueb: toHex(f.ueb),
      uebHash: toHex(f.uebHash),
      storageIndex: toHex(f.storageIndex),
      cap: f.cap,
      shareSize: f.layout.shareSize,
      blocksOffset: f.layout.blocksOffset,
      shares: f.shares.map(toHex),
      convergence: {
        secret: toHex(SECRET),
        encodingParams: toHex(params),
        plaintextHash: toHex(sha256(plaintext)),
        key: toHex(convergenceKey(SECRET, params, sha256(plaintext))),
      },
    });
  }
  return out;
}

if (Deno.env.get("SHOAL_WRITE_VECTORS") === "1") {
  const files = await generate();
  await Deno.writeTextFile(
    VECTORS,
    JSON.stringify(
      {
        description:
          "Immutable files format 1 (docs/immutable-files.md): whole-file encodings with a fixed key; hex bytes. " +
          "Regenerate: SHOAL_WRITE_VECTORS=1 deno test -A tests/grid/immutable_format_test.ts",
        files,
      },
      null,
      1,
    ) + "\n",
  );
}

const vectors: FileVector[] = JSON.parse(await Deno.readTextFile(VECTORS)).files;

Deno.test("immutable vectors: encoding reproduces every byte", async () => {
  assertEquals(vectors.length, CASES.length);
  const fresh = await generate();
  assertEquals(fresh, vectors);
  for (const v of vectors) {
    const ueb = decodeUeb(fromHex(v.ueb));
    assertEquals([ueb.k, ueb.n, ueb.size, ueb.segmentSize], [
      v.k,
      v.n,
      v.plaintext.length / 2,
      v.effectiveSegmentSize,
    ]);
    assertEquals(toHex(uebHashOf(fromHex(v.ueb))), v.uebHash);
    const cap = parseCap(v.cap);
    assert(cap.kind === "immutable-read");
    assertEquals(toHex(cap.uebHash), v.uebHash);
    const l = immutableLayoutOf(ueb, v.ueb.length / 2);
    assertEquals(l.shareSize, v.shareSize);
    for (const s of v.shares) assertEquals(s.length / 2, v.shareSize);
    // Shares 0..k-1 carry the ciphertext itself in their blocks (systematic code).
    assertEquals(v.shares[0].slice(0, 16), toHex(utf8("SHOALCHK")));
  }
  // Pinned independently of the implementation: the 100-byte file's UEB hash.
  assertEquals(toHex(taggedHash("shoal:v1:ueb-hash", fromHex(vectors[1].ueb))), vectors[1].uebHash);
});

Deno.test("stored trees agree with HashTree; upper part and windows verify, tampering is caught", () => {
  for (const count of [1, 2, 3, 5, 255, 256, 257, 1000]) {
    const leaves = Array.from({ length: count }, (_, i) => sha256(utf8(`leaf ${i}`)));
    const tree = buildTree(leaves);
    const root = new HashTree(leaves).root;
    assertEquals(toHex(treeRoot(tree)), toHex(root));
    let d = 0;
    while (2 ** d < count) d++;
    const up = upperPart(d);
    const upper = tree.slice(up.offset * 32, (up.offset + up.nodes) * 32);
    const windows = verifyUpper(d, upper, root);
    assert(windows, `upper part of ${count}`);
    const per = 2 ** up.level;
    for (let w = 0; w < windows.length; w++) {
      const got = verifyWindow(tree.slice(w * per * 32, (w + 1) * per * 32), windows[w]);
      assert(got);
      if (w * per < count) assertEquals(toHex(got[0]), toHex(leaves[w * per]));
    }
    const bad = upper.slice();
    bad[0] ^= 1;
    assertEquals(verifyUpper(d, bad, root), null);
    const badWin = tree.slice(0, per * 32);
    badWin[5] ^= 1;
    assertEquals(verifyWindow(badWin, windows[0]), null);
  }
});

Deno.test("happiness is a maximum matching of servers to distinct shares", () => {
  const m = (o: Record<string, number[]>) =>
    new Map(Object.entries(o).map(([k, v]) => [k, new Set(v)]));
  assertEquals(happinessOf(m({ a: [0], b: [1], c: [2] })), 3);
  assertEquals(happinessOf(m({ a: [0, 1, 2], b: [0], c: [0] })), 2);
  assertEquals(happinessOf(m({ a: [0, 1], b: [0] })), 2); // a takes 1, b takes 0
  assertEquals(happinessOf(m({ a: [0], b: [0], c: [0] })), 1);
  assertEquals(happinessOf(m({})), 0);
});

Deno.test("the grid stores exactly the vector's shares", {
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const g = await TestGrid.start(5);
  try {
    const grid = g.grid();
    const v = vectors[1];
    const r = await uploadImmutable(
      { servers: grid.servers.all(), leaseSecret: randomBytes(32) },
      fromHex(v.plaintext),
      { k: v.k, n: v.n, happy: 5, convergenceSecret: null, segmentSize: v.segmentSize },
      { key: fromHex(v.key) },
    );
    assertEquals(r.cap, v.cap);
    assertEquals(toHex(r.storageIndex), v.storageIndex);
    for (const p of r.placed) {
      const server = grid.servers.get(p.serverId)!;
      for (const sh of p.shares) {
        assertEquals(toHex(await server.storage.readImmutable(r.storageIndex, sh)), v.shares[sh]);
      }
    }
    // Convergence: the vector's key derivation, through the upload path.
    const c = await grid.uploadImmutable(fromHex(v.plaintext), {
      k: v.k,
      n: v.n,
      happy: 5,
      convergenceSecret: fromHex(v.convergence.secret),
      segmentSize: v.segmentSize,
    });
    const cc = parseCap(c.cap);
    assert(cc.kind === "immutable-read");
    assertEquals(toHex(cc.key), v.convergence.key);
  } finally {
    await g.close();
  }
});
