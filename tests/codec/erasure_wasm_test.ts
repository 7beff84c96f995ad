/**
 * The WebAssembly SIMD erasure kernel: its committed bytes are what the
 * generator builds, it loads here, and every path through it (encodeSegment,
 * decodeSegment, erasureEncode/Parity with and without caller buffers,
 * erasureDecode, strips, overlapping last chunks, groups of rows) gives the
 * same bytes as the TypeScript kernels and the vectors.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSegment,
  encodeSegment,
  erasureDecode,
  erasureEncode,
  type ErasureKernel,
  erasureKernel,
  erasureParity,
  fromHex,
  toHex,
  useErasureKernel,
} from "../../lib/codec/mod.ts";
import { kernelModuleText } from "../../lib/codec/wasm/build.ts";
import { buildGf256Kernel } from "../../lib/codec/wasm/gf256_kernel_source.ts";
import {
  kernelBytes,
  nibbleTables,
  simdAvailable,
  simdCombineRows,
  simdUseVariant,
  simdVariant,
} from "../../lib/codec/wasm/gf256_simd.ts";

interface Vectors {
  shards: { k: number; n: number; data: string[]; shares: string[] }[];
  segments: { k: number; n: number; segment: string; shares: string[] }[];
}
const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/erasure.json", import.meta.url)),
);

function withKernel<T>(kind: ErasureKernel, fn: () => T): T {
  const before = useErasureKernel(kind);
  try {
    return fn();
  } finally {
    useErasureKernel(before);
  }
}

const hexes = (xs: Uint8Array[]) => xs.map(toHex);

/** `b` repeated `times` times: coding is bytewise, so tiled data gives tiled shares. */
function tile(b: Uint8Array, times: number): Uint8Array {
  const out = new Uint8Array(b.length * times);
  for (let i = 0; i < times; i++) out.set(b, i * b.length);
  return out;
}

Deno.test("erasure wasm: the committed module is exactly what scripts/build-wasm.ts builds", async () => {
  const committed = await Deno.readTextFile(
    new URL("../../lib/codec/wasm/gf256_kernel_wasm.ts", import.meta.url),
  );
  assert.equal(committed, kernelModuleText(), "run: deno run -A scripts/build-wasm.ts");
  assert.deepEqual(kernelBytes(true), buildGf256Kernel(true));
  assert.deepEqual(kernelBytes(false), buildGf256Kernel(false));
  // Deterministic generator.
  assert.deepEqual(buildGf256Kernel(true), buildGf256Kernel(true));
});

Deno.test("erasure wasm: Deno has WebAssembly SIMD, so the SIMD kernel is the default", () => {
  assert.equal(WebAssembly.validate(kernelBytes(false)), true);
  assert.equal(simdAvailable(), true);
  assert.equal(erasureKernel(), "wasm-simd");
  assert.equal(simdVariant(), "relaxed-simd", "Deno 2 has relaxed SIMD: the faster module loads");
  // The fallback module loads too, so the tests below run through both.
  assert.equal(simdUseVariant("simd"), true);
  assert.equal(simdUseVariant("relaxed-simd"), true);
});

Deno.test("erasure wasm: vectors, tiled to SIMD lengths, through both kernels", () => {
  for (const kind of ["wasm-simd", "typescript"] as const) {
    withKernel(kind, () => {
      for (const v of vectors.shards) {
        for (const times of [1, 17, 300]) {
          const data = v.data.map((h) => tile(fromHex(h), times));
          const want = v.shares.map((h) => toHex(tile(fromHex(h), times)));
          const what = `${kind} k=${v.k} n=${v.n} x${times}`;
          assert.deepEqual(hexes(erasureEncode(data, v.n)), want, what);
          const shares = want.map((h, index) => ({ index, data: fromHex(h) })).slice(v.n - v.k);
          assert.deepEqual(hexes(erasureDecode(shares, v.k, v.n)), hexes(data), what);
        }
      }
      for (const v of vectors.segments) {
        const seg = fromHex(v.segment);
        assert.deepEqual(hexes(encodeSegment(seg, v.k, v.n)), v.shares, kind);
        const shares = v.shares.map((h, index) => ({ index, data: fromHex(h) })).reverse();
        assert.equal(toHex(decodeSegment(shares.slice(0, v.k), v.k, v.n, seg.length)), v.segment);
      }
    });
  }
});

/** A short summary of byte strings that differs when any byte does (FNV-1a per 64 KiB). */
function digest(xs: Uint8Array[]): string {
  return xs.map((b) => {
    const parts: string[] = [String(b.length)];
    for (let o = 0; o < b.length; o += 65536) {
      let h = 0x811c9dc5;
      const end = Math.min(b.length, o + 65536);
      for (let i = o; i < end; i++) h = Math.imul(h ^ b[i], 0x01000193);
      parts.push((h >>> 0).toString(16));
    }
    return parts.join(":");
  }).join(" ");
}

/** Everything the coder produces for one input, with the given kernel. */
function outputs(kind: ErasureKernel, k: number, n: number, seg: Uint8Array, pick: number[]) {
  return withKernel(kind, () => {
    const shares = encodeSegment(seg, k, n);
    const size = shares[0].length;
    // Unaligned views of the data shards, and caller-supplied parity buffers.
    const backing = new Uint8Array(k * size + 3);
    const data = shares.slice(0, k).map((s, j) => {
      const v = backing.subarray(1 + j * size, 1 + (j + 1) * size);
      v.set(s);
      return v;
    });
    const into = Array.from({ length: n - k }, () => new Uint8Array(size).fill(0xa5));
    const parityInto = erasureParity(data, n, into);
    const given = pick.map((index) => ({ index, data: shares[index] }));
    return {
      shares: digest(shares),
      parity: digest(erasureParity(data, n)),
      parityInto: digest(parityInto),
      decoded: digest(erasureDecode(given, k, n)),
      segment: digest([decodeSegment(given, k, n, seg.length)]),
    };
  });
}

/** Run `fn` with each module variant that loads here (relaxed SIMD, plain SIMD), then restore. */
function eachVariant(fn: () => void): void {
  const before = simdVariant()!;
  try {
    for (const v of ["relaxed-simd", "simd"] as const) if (simdUseVariant(v)) fn();
  } finally {
    simdUseVariant(before);
  }
}

Deno.test("erasure wasm: property — SIMD and TypeScript kernels give identical bytes", () =>
  eachVariant(() => {
    const arb = fc.integer({ min: 2, max: 256 }).chain((n) =>
      fc.tuple(
        fc.constant(n),
        fc.integer({ min: 1, max: Math.min(n, 40) }),
        fc.oneof(
          fc.integer({ min: 0, max: 70 }), // around the 16-byte chunk
          fc.integer({ min: 70, max: Math.floor(200_000 / n) }),
          fc.constantFrom(16, 17, 31, 32, 33, Math.floor(300_000 / n)), // strips, odd tails
        ),
        fc.integer(),
      )
    ).map(([n, k, perShard, seed]) => ({ n, k, perShard, seed }));
    fc.assert(
      fc.property(arb, ({ n, k, perShard, seed }) => {
        const len = Math.max(0, k * perShard - (seed & 1 ? Math.min(k - 1, 1) : 0));
        const seg = new Uint8Array(len);
        crypto.getRandomValues(seg.subarray(0, Math.min(len, 65536)));
        // Pick k shares, as many parity ones as possible, plus some data shares.
        const pick = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
          ((a * 2654435761 + seed) >>> 0) % 997 - ((b * 2654435761 + seed) >>> 0) % 997
        ).slice(0, k);
        const a = outputs("wasm-simd", k, n, seg, pick);
        const b = outputs("typescript", k, n, seg, pick);
        assert.deepEqual(a, b);
        assert.equal(a.segment, digest([seg]));
      }),
      { numRuns: 40 },
    );
  }));

Deno.test("erasure wasm: many rows and sources (k=128, n=256; k=20, n=250) and long shards", () => {
  for (const [k, n, size] of [[128, 256, 40], [20, 250, 33], [3, 10, 349_526], [10, 20, 70_001]]) {
    const seg = crypto.getRandomValues(new Uint8Array(Math.min(k * size, 65536)));
    const full = tile(seg, Math.ceil((k * size) / seg.length)).subarray(0, k * size - 1);
    const pick = Array.from({ length: k }, (_, i) => n - 1 - i);
    assert.deepEqual(
      outputs("wasm-simd", k, n, full, pick),
      outputs("typescript", k, n, full, pick),
    );
  }
});

Deno.test("erasure wasm: both module variants multiply every (c, b) pair of GF(2^8) correctly", () =>
  eachVariant(() => {
    const mul = (a: number, b: number) => {
      let r = 0;
      while (b) {
        if (b & 1) r ^= a;
        a <<= 1;
        if (a & 0x100) a ^= 0x11d;
        b >>= 1;
      }
      return r;
    };
    const table = new Uint8Array(65536);
    for (let c = 0; c < 256; c++) for (let d = 0; d < 256; d++) table[c * 256 + d] = mul(c, d);
    const src = Uint8Array.from({ length: 256 }, (_, b) => b);
    for (let c0 = 0; c0 < 256; c0 += 8) {
      const rows = Array.from({ length: 8 }, (_, r) => [c0 + r]);
      const outs = rows.map(() => new Uint8Array(256));
      simdCombineRows(outs, [src], nibbleTables(rows, 1, table), 256);
      outs.forEach((o, r) => {
        for (let b = 0; b < 256; b++) assert.equal(o[b], mul(c0 + r, b), `${c0 + r}·${b}`);
      });
    }
  }));
