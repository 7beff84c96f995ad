import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeSegment,
  encodeSegment,
  erasureDecode,
  erasureEncode,
  ErasureError,
  erasureParity,
} from "../../lib/codec/mod.ts";
import { fromHex, toHex } from "../../lib/codec/mod.ts";

// ---------------------------------------------------------------------------
// An independent, deliberately slow reference of docs/erasure-coding.md:
// shift-and-add multiplication modulo 0x11d, inverse as a^254, the normalized
// Cauchy coefficient written straight from the spec. Shares nothing with the
// library's tables.

function refMul(a: number, b: number): number {
  let r = 0;
  while (b) {
    if (b & 1) r ^= a;
    a <<= 1;
    if (a & 0x100) a ^= 0x11d;
    b >>= 1;
  }
  return r;
}
function refInv(a: number): number {
  assert.notEqual(a, 0);
  let r = 1;
  for (let i = 0; i < 254; i++) r = refMul(r, a);
  return r;
}
const invTable = Array.from({ length: 256 }, (_, a) => (a === 0 ? 0 : refInv(a)));
function refCoef(k: number, i: number, j: number): number {
  const x = k + i;
  return refMul(refMul(k ^ j, x), invTable[refMul(x ^ j, k)]);
}
function refParity(data: Uint8Array[], n: number): Uint8Array[] {
  const k = data.length;
  const len = data[0].length;
  const out: Uint8Array[] = [];
  for (let i = 0; i < n - k; i++) {
    const p = new Uint8Array(len);
    for (let j = 0; j < k; j++) {
      const c = refCoef(k, i, j);
      for (let b = 0; b < len; b++) p[b] ^= refMul(c, data[j][b]);
    }
    out.push(p);
  }
  return out;
}

interface Vectors {
  field: { polynomial: string };
  matrices: { k: number; n: number; rows: string[] }[];
  shards: { k: number; n: number; data: string[]; shares: string[] }[];
  segments: { k: number; n: number; segment: string; shares: string[] }[];
}
const vectors: Vectors = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/erasure.json", import.meta.url)),
);

const hexes = (xs: Uint8Array[]) => xs.map(toHex);

Deno.test("erasure: reference field sanity (2 generates GF(2^8)*, 0x11d)", () => {
  assert.equal(vectors.field.polynomial, "0x11d");
  const seen = new Set<number>();
  let x = 1;
  for (let i = 0; i < 255; i++) {
    seen.add(x);
    x = refMul(x, 2);
  }
  assert.equal(x, 1);
  assert.equal(seen.size, 255);
  assert.equal(refMul(0x80, 2), 0x1d);
});

Deno.test("erasure: vector matrices match the spec formula", () => {
  for (const { k, n, rows } of vectors.matrices) {
    assert.equal(rows.length, n - k);
    rows.forEach((row, i) => {
      const expect = Array.from({ length: k }, (_, j) => refCoef(k, i, j));
      assert.deepEqual([...fromHex(row)], expect, `k=${k} parity row ${i}`);
    });
  }
});

Deno.test("erasure: shard vectors — spec reference, encode, parity, decode", () => {
  for (const v of vectors.shards) {
    const data = v.data.map(fromHex);
    assert.deepEqual(hexes([...data, ...refParity(data, v.n)]), v.shares, `ref k=${v.k} n=${v.n}`);
    assert.deepEqual(hexes(erasureEncode(data, v.n)), v.shares, `encode k=${v.k} n=${v.n}`);
    assert.deepEqual(hexes(erasureParity(data, v.n)), v.shares.slice(v.k));
    // Decode from the last k shares (as many parity shares as possible).
    const shares = v.shares.map((h, index) => ({ index, data: fromHex(h) })).slice(v.n - v.k);
    assert.deepEqual(hexes(erasureDecode(shares, v.k, v.n)), v.data, `decode k=${v.k} n=${v.n}`);
  }
});

Deno.test("erasure: segment vectors — padding, split, encode, decode", () => {
  for (const v of vectors.segments) {
    const seg = fromHex(v.segment);
    const size = Math.ceil(seg.length / v.k);
    const padded = new Uint8Array(size * v.k);
    padded.set(seg);
    const data = Array.from({ length: v.k }, (_, j) => padded.slice(j * size, (j + 1) * size));
    assert.deepEqual(hexes([...data, ...refParity(data, v.n)]), v.shares);
    assert.deepEqual(hexes(encodeSegment(seg, v.k, v.n)), v.shares);
    const shares = v.shares.map((h, index) => ({ index, data: fromHex(h) })).reverse();
    assert.equal(toHex(decodeSegment(shares.slice(0, v.k), v.k, v.n, seg.length)), v.segment);
  }
});

Deno.test("erasure: encode keeps data shards, copies replicas, never aliases the segment", () => {
  const data = [new Uint8Array([1, 2]), new Uint8Array([3, 4])];
  const all = erasureEncode(data, 5);
  assert.equal(all[0], data[0]);
  assert.equal(all[1], data[1]);
  assert.equal(all.length, 5);
  const rep = erasureEncode([new Uint8Array([9, 8, 7])], 1000);
  assert.equal(rep.length, 1000);
  for (const r of rep) assert.deepEqual([...r], [9, 8, 7]);
  assert.notEqual(rep[1].buffer, rep[0].buffer);
  const seg = new Uint8Array([5, 6, 7, 8]);
  const shares = encodeSegment(seg, 2, 3);
  seg[0] = 0;
  assert.equal(shares[0][0], 5);
  // decodeSegment output is fresh too.
  const back = decodeSegment(shares.map((data, index) => ({ index, data })), 2, 3, 4);
  back[1] = 99;
  assert.equal(shares[0][1], 6);
});

function* combinations(n: number, k: number): Generator<number[]> {
  const idx = Array.from({ length: k }, (_, i) => i);
  while (true) {
    yield idx.slice();
    let i = k - 1;
    while (i >= 0 && idx[i] === n - k + i) i--;
    if (i < 0) return;
    idx[i]++;
    for (let t = i + 1; t < k; t++) idx[t] = idx[t - 1] + 1;
  }
}
function binom(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return Math.round(r);
}
/** Deterministic shuffle / subset picking from a fast-check seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
function randomSubset(n: number, size: number, rnd: () => number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < size; i++) {
    const j = i + Math.floor(rnd() * (n - i));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, size);
}

/** Encode, then decode from every k-subset (C(n,k) <= 300) or 300 random ones. */
function checkAnyK(k: number, n: number, flat: Uint8Array, seed: number): void {
  const len = flat.length / k;
  const data = Array.from({ length: k }, (_, j) => flat.slice(j * len, (j + 1) * len));
  const shares = erasureEncode(data, n);
  assert.equal(shares.length, n);
  if (k > 1 && n <= 40) {
    assert.deepEqual(hexes(shares.slice(k)), hexes(refParity(data, n)), `ref k=${k} n=${n}`);
  }
  const want = hexes(data);
  const rnd = prng(seed);
  const subsets = binom(n, k) <= 300
    ? combinations(n, k)
    : Array.from({ length: 300 }, () => randomSubset(n, k < n && rnd() < 0.2 ? k + 1 : k, rnd));
  for (const subset of subsets) {
    const given = subset.map((index) => ({ index, data: shares[index] }));
    // Shuffle the order the shares are given in.
    for (let i = given.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [given[i], given[j]] = [given[j], given[i]];
    }
    const got = erasureDecode(given, k, n);
    assert.deepEqual(hexes(got), want, `k=${k} n=${n} subset=${subset.join(",")}`);
  }
  // Segment round trip with a length that needs padding.
  const segLen = Math.max(0, flat.length - (rnd() < 0.5 ? (k > 1 ? 1 : 0) : 0));
  const seg = flat.subarray(0, segLen);
  const segShares = encodeSegment(seg, k, n);
  const pick = randomSubset(n, k, rnd).map((index) => ({ index, data: segShares[index] }));
  assert.equal(toHex(decodeSegment(pick, k, n, segLen)), toHex(seg));
}

Deno.test("erasure: property — any k of n rebuild, sampled (k, n)", () => {
  const named: [number, number][] = [
    [1, 1],
    [1, 10],
    [1, 1000],
    [2, 2],
    [2, 3],
    [3, 10],
    [5, 12],
    [10, 20],
    [128, 256],
    [254, 256],
    [255, 256],
    [256, 256],
  ];
  const kn = fc.oneof(
    fc.constantFrom(...named),
    fc.integer({ min: 1, max: 256 }).chain((n) =>
      fc.integer({ min: 1, max: n }).map((k) => [k, n] as [number, number])
    ),
  );
  const arb = fc
    .tuple(kn, fc.integer({ min: 0, max: 6 }), fc.integer())
    .chain(([[k, n], len, seed]) =>
      fc.uint8Array({ minLength: k * len, maxLength: k * len }).map((flat) => ({
        k,
        n,
        flat,
        seed,
      }))
    );
  // Every named pair once, exhaustively where C(n,k) <= 300.
  for (const [k, n] of named) {
    const flat = new Uint8Array(k * 3);
    crypto.getRandomValues(flat);
    checkAnyK(k, n, flat, k * 1000 + n);
  }
  fc.assert(fc.property(arb, ({ k, n, flat, seed }) => checkAnyK(k, n, flat, seed)), {
    numRuns: 60,
  });
});

Deno.test("erasure: every k with n = 256 decodes from the highest-index k shares", () => {
  for (let k = 1; k <= 256; k++) {
    const data = Array.from({ length: k }, () => crypto.getRandomValues(new Uint8Array(2)));
    const shares = erasureEncode(data, 256);
    const given = shares.map((d, index) => ({ index, data: d })).slice(256 - k);
    assert.deepEqual(hexes(erasureDecode(given, k, 256)), hexes(data), `k=${k}`);
  }
});

Deno.test("erasure: replication with k = 1 allows n up to 2^24", () => {
  const d = new Uint8Array([1, 2, 3]);
  assert.deepEqual([...erasureDecode([{ index: 2 ** 24 - 1, data: d }], 1, 2 ** 24)[0]], [1, 2, 3]);
  assert.throws(() => erasureDecode([{ index: 0, data: d }], 1, 2 ** 24 + 1), ErasureError);
  assert.throws(() => erasureParity([d], 2 ** 24 + 1), ErasureError);
});

// ---------------------------------------------------------------------------
// Garbage in -> ErasureError (never another exception, never a wrong success).

function throwsErasure(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ErasureError && re.test(e.message));
}

Deno.test("erasure: invalid arguments give ErasureError with a clear message", () => {
  const u = (n: number) => new Uint8Array(n);
  const ok = [u(2), u(2), u(2)];
  throwsErasure(() => erasureEncode([], 3), /k = 0 is invalid/);
  throwsErasure(() => erasureEncode(ok, 2), /n = 2 is invalid for k = 3/);
  throwsErasure(() => erasureEncode(ok, 257), /n = 257 is invalid.*only k = 1/);
  throwsErasure(() => erasureEncode(ok, 3.5), /n = 3.5 is invalid/);
  throwsErasure(() => erasureEncode(ok, NaN), /n = NaN/);
  throwsErasure(() => erasureEncode(Array.from({ length: 257 }, () => u(1)), 257), /k = 257/);
  throwsErasure(() => erasureEncode([u(2), u(3)], 4), /shard 1 has 3 bytes but shard 0 has 2/);
  throwsErasure(() => erasureEncode([u(2), "xx" as unknown as Uint8Array], 4), /not a Uint8Array/);
  throwsErasure(() => erasureEncode(null as unknown as Uint8Array[], 4), /must be an array/);
  throwsErasure(() => erasureParity([u(1)], 0), /n = 0/);
  throwsErasure(() => encodeSegment(u(9), 0, 3), /k = 0/);
  throwsErasure(() => encodeSegment("abc" as unknown as Uint8Array, 1, 3), /segment must be/);

  const sh = erasureEncode([u(4), u(4), u(4)], 5).map((data, index) => ({ index, data }));
  throwsErasure(() => erasureDecode(sh.slice(0, 2), 3, 5), /2 share\(s\) given but 3/);
  throwsErasure(() => erasureDecode([sh[0], sh[1], sh[1]], 3, 5), /index 1 appears more than once/);
  throwsErasure(() => erasureDecode([sh[0], sh[1], { index: 5, data: u(4) }], 3, 5), /index 5/);
  throwsErasure(() => erasureDecode([sh[0], sh[1], { index: -1, data: u(4) }], 3, 5), /index -1/);
  throwsErasure(() => erasureDecode([sh[0], sh[1], { index: 1.5, data: u(4) }], 3, 5), /1\.5/);
  throwsErasure(() => erasureDecode([sh[0], sh[1], { index: 2, data: u(5) }], 3, 5), /5 bytes/);
  throwsErasure(
    () => erasureDecode([sh[0], sh[1], { index: 2, data: [1] as unknown as Uint8Array }], 3, 5),
    /not a Uint8Array/,
  );
  throwsErasure(() => erasureDecode([sh[0], sh[1], null as never], 3, 5), /not an object/);
  throwsErasure(() => erasureDecode({} as never, 3, 5), /must be an array/);
  throwsErasure(() => erasureDecode(sh, 3, 2), /n = 2/);
  throwsErasure(() => erasureDecode(sh, 0, 5), /k = 0/);
  throwsErasure(() => decodeSegment(sh, 3, 5, 13), /expected shares of ceil\(13\/3\) = 5 bytes/);
  throwsErasure(() => decodeSegment(sh, 3, 5, -1), /segmentLength -1/);
  throwsErasure(() => decodeSegment(sh, 3, 5, 1e300), /segmentLength/);
  assert.equal(decodeSegment(sh, 3, 5, 12).length, 12);
  assert.equal(decodeSegment(sh, 3, 5, 10).length, 10);
});

Deno.test("erasure: property — random garbage decodes correctly-shaped or throws ErasureError", () => {
  const num = fc.oneof(
    fc.integer({ min: -3, max: 300 }),
    fc.constantFrom(NaN, Infinity, 1.5, -0, 2 ** 24, 2 ** 24 + 1),
  );
  const kArb = fc.oneof(
    { weight: 1, arbitrary: num },
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 6 }) },
  );
  const nArb = fc.oneof(
    { weight: 1, arbitrary: num },
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 12 }) },
  );
  const input = fc.tuple(kArb, nArb, fc.integer({ min: 0, max: 4 })).chain(([k, n, len]) => {
    // Indices mostly in range for n (when n is usable), sometimes just outside.
    const top = Number.isInteger(n) && n >= 1 && n <= 12 ? n : 12;
    const share = fc.record({
      index: fc.oneof(
        { weight: 40, arbitrary: fc.integer({ min: 0, max: top - 1 }) },
        { weight: 1, arbitrary: fc.constantFrom(-1, top) },
        { weight: 1, arbitrary: fc.constantFrom(NaN, 0.5, "1" as unknown as number) },
      ),
      data: fc.oneof(
        { weight: 30, arbitrary: fc.uint8Array({ minLength: len, maxLength: len }) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 5 }) },
        { weight: 1, arbitrary: fc.constant([1, 2, 3] as unknown as Uint8Array) },
      ),
    });
    const shares = fc.oneof(
      { weight: 4, arbitrary: fc.uniqueArray(share, { selector: (s) => s.index, maxLength: 12 }) },
      { weight: 1, arbitrary: fc.array(share, { maxLength: 12 }) },
    );
    return shares.map((shares) => ({ k, n, shares }));
  });
  let accepted = 0;
  fc.assert(
    fc.property(
      input,
      ({ k, n, shares }) => {
        const intOk = (x: number) => typeof x === "number" && Number.isInteger(x);
        const knOk = intOk(k) && k >= 1 && k <= 256 && intOk(n) && n >= k &&
          n <= (k === 1 ? 2 ** 24 : 256);
        const idx = shares.map((s) => s.index);
        const valid = knOk && shares.length >= k &&
          idx.every((i) => intOk(i) && i >= 0 && i < n) && new Set(idx).size === idx.length &&
          shares.every((s) => s.data instanceof Uint8Array) &&
          shares.every((s) => s.data.length === shares[0].data.length);
        let got: Uint8Array[] | undefined;
        try {
          got = erasureDecode(shares, k, n);
        } catch (e) {
          if (!(e instanceof ErasureError)) throw e;
          assert.equal(valid, false, `rejected valid input: ${e.message}`);
          return;
        }
        assert.equal(valid, true, "accepted invalid input");
        accepted++;
        assert.equal(got.length, k);
        for (const d of got) assert.equal(d.length, shares[0].data.length);
        // And the result re-encodes to the k shares it was decoded from
        // (the lowest k indices given; extra shares are not used).
        const used = [...shares].sort((a, b) => a.index - b.index).slice(0, k);
        if (k === 1) {
          assert.equal(toHex(got[0]), toHex(used[0].data));
        } else {
          const re = erasureEncode(got, n);
          for (const s of used) assert.equal(toHex(re[s.index]), toHex(s.data));
        }
      },
    ),
    { numRuns: 3000 },
  );
  // The generator must reach the success path often enough to mean something.
  assert.ok(accepted > 200, `only ${accepted} valid inputs generated`);
});

Deno.test("erasure: parity written into caller buffers equals fresh parity, and is checked", () => {
  for (const [k, n] of [[1, 4], [3, 10], [5, 12]]) {
    const data = Array.from({ length: k }, () => crypto.getRandomValues(new Uint8Array(333)));
    const fresh = erasureParity(data, n);
    const into = Array.from({ length: n - k }, () => new Uint8Array(333).fill(0xee));
    const got = erasureParity(data, n, into);
    for (let i = 0; i < n - k; i++) {
      assert.strictEqual(got[i], into[i]);
      assert.deepEqual(got[i], fresh[i]);
    }
    assert.throws(() => erasureParity(data, n, into.slice(1)), ErasureError);
    assert.throws(() => erasureParity(data, n, into.map(() => new Uint8Array(332))), ErasureError);
  }
});

Deno.test("erasure: long shards (word-wide kernels) — unaligned views and odd lengths match the reference", () => {
  // Shards of 4096 bytes and more go through 32-bit kernels; sources and
  // outputs at byte offsets that are not multiples of 4, and lengths that are
  // not either, take the copy and tail paths.
  const cases: [number, number, number][] = [
    [3, 10, 4096],
    [3, 10, 4099],
    [2, 5, 5001],
    [4, 9, 8190],
    [5, 12, 4097],
    [1, 4, 6000],
  ];
  for (const [k, n, len] of cases) {
    for (const shift of [0, 1, 2, 3]) {
      const backing = new Uint8Array(k * len + 8);
      crypto.getRandomValues(backing);
      // Data shards as consecutive views, starting `shift` bytes in.
      const data = Array.from(
        { length: k },
        (_, j) => backing.subarray(shift + j * len, shift + (j + 1) * len),
      );
      const want = k === 1
        ? Array.from({ length: n - 1 }, () => data[0].slice())
        : refParity(data.map((d) => d.slice()), n);
      const what = `k=${k} n=${n} len=${len} shift=${shift}`;
      assert.deepEqual(hexes(erasureParity(data, n)), hexes(want), `parity ${what}`);
      // Into unaligned caller buffers.
      const outBacking = new Uint8Array((n - k) * len + 8);
      const into = Array.from(
        { length: n - k },
        (_, i) => outBacking.subarray(3 + i * len, 3 + (i + 1) * len),
      );
      erasureParity(data, n, into);
      assert.deepEqual(hexes(into), hexes(want), `parity into ${what}`);
      // Decode from the last k shares (as many parity shares as possible).
      const all = [...data, ...want];
      const chosen = all.map((d, index) => ({ index, data: d })).slice(n - k);
      const got = erasureDecode(chosen, k, n);
      assert.deepEqual(hexes(got), hexes(data.map((d) => d.slice())), `decode ${what}`);
    }
  }
});
