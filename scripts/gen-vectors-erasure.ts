/**
 * Regenerates tests/vectors/erasure.json from lib/codec/erasure.ts.
 * Run: deno run -A scripts/gen-vectors-erasure.ts
 * The tests check these vectors against an independent reference of
 * docs/erasure-coding.md, so a regenerated file that drifted from the spec fails.
 */
import { encodeSegment, erasureEncode, erasureParity } from "../lib/codec/erasure.ts";
import { fromHex, toHex, utf8 } from "../lib/codec/bytes.ts";

/** Deterministic filler: byte t of a case is (t * 37 + 11 + seed) mod 256. */
function filler(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let t = 0; t < len; t++) out[t] = (t * 37 + 11 + seed) & 0xff;
  return out;
}

function split(data: Uint8Array, k: number): Uint8Array[] {
  const size = data.length / k;
  return Array.from({ length: k }, (_, j) => data.slice(j * size, (j + 1) * size));
}

const shardCases: [number, number, number, number][] = [
  // k, n, shard length, seed
  [1, 1, 3, 0],
  [1, 4, 5, 1],
  [2, 3, 4, 2],
  [3, 10, 4, 3],
  [4, 6, 6, 4],
  [10, 20, 2, 5],
  [2, 256, 2, 6],
  [128, 256, 1, 7],
  [255, 256, 1, 8],
  [256, 256, 1, 9],
];

const shards = shardCases.map(([k, n, len, seed]) => {
  const data = split(filler(k * len, seed), k);
  return { k, n, data: data.map(toHex), shares: erasureEncode(data, n).map(toHex) };
});

const segmentCases: [number, number, Uint8Array][] = [
  [3, 10, utf8("hello, shoal!")],
  [3, 10, new Uint8Array(0)],
  [1, 3, utf8("replica")],
  [4, 7, fromHex("00ff00ff00ff00ff01")],
];
const segments = segmentCases.map(([k, n, seg]) => ({
  k,
  n,
  segment: toHex(seg),
  shares: encodeSegment(seg, k, n).map(toHex),
}));

/** Parity rows a[i][*] recovered by encoding unit vectors (column j = parity of e_j). */
function matrix(k: number, n: number): string[] {
  const rows = Array.from({ length: n - k }, () => new Uint8Array(k));
  for (let j = 0; j < k; j++) {
    const unit = Array.from({ length: k }, (_, t) => new Uint8Array([t === j ? 1 : 0]));
    erasureParity(unit, n).forEach((p, i) => (rows[i][j] = p[0]));
  }
  return rows.map(toHex);
}
const matrices = [[2, 4], [3, 10], [4, 8]].map(([k, n]) => ({ k, n, rows: matrix(k, n) }));

const out = {
  description: "Reed–Solomon erasure coding vectors; see docs/erasure-coding.md. All bytes hex.",
  field: { size: 256, polynomial: "0x11d", generator: 2 },
  matrices,
  shards,
  segments,
};
await Deno.writeTextFile(
  new URL("../tests/vectors/erasure.json", import.meta.url),
  JSON.stringify(out, null, 1) + "\n",
);
console.log(
  `wrote tests/vectors/erasure.json (${shards.length} shard cases, ${segments.length} segments)`,
);
