/**
 * Systematic Reed–Solomon erasure coding over GF(2^8), field polynomial 0x11d,
 * with a normalized Cauchy parity matrix: any k of the n shares rebuild the k
 * data shards, for every 1 <= k <= n <= 256. k = 1 is plain replication and
 * then n may be up to 2^24. Share i < k is data shard i itself; shares k..n-1
 * are parity. The exact construction is specified in docs/erasure-coding.md.
 *
 * Pure: no I/O. Two interchangeable kernels compute the products: a
 * WebAssembly SIMD one (lib/codec/wasm/, split-nibble table lookups with
 * i8x16.swizzle), used when the runtime supports WASM SIMD, and TypeScript
 * table lookups over Uint8Array (one 64 KiB multiplication table) otherwise.
 * Both give identical bytes (docs/erasure-coding.md §9).
 */
import {
  nibbleTables,
  SIMD_MIN_LEN,
  SIMD_STAGE_MAX,
  simdAvailable,
  simdCombineRows,
  simdRun,
  simdStage,
} from "./wasm/gf256_simd.ts";

/** Raised for any invalid argument to the erasure coder; the message says what and how to fix it. */
export class ErasureError extends Error {
  override name = "ErasureError";
}

/** Largest n for k >= 2 (the size of GF(2^8)). */
export const ERASURE_MAX_SHARES = 256;
/** Largest n for k = 1 (replication: no field ceiling, only a sanity bound). */
export const ERASURE_MAX_REPLICAS = 1 << 24;

// ---------------------------------------------------------------- GF(2^8)

const POLY = 0x11d;
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= POLY;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}

function gfMul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
}

/** a / b, b != 0. */
function gfDiv(a: number, b: number): number {
  return a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]];
}

/** MUL[(c << 8) | d] = c·d in GF(2^8): 256 rows of 256 entries. */
const MUL = new Uint8Array(65536);
for (let c = 0; c < 256; c++) {
  for (let d = 0; d < 256; d++) MUL[(c << 8) | d] = gfMul(c, d);
}

// ---------------------------------------------------------------- bounded cache

class LruCache<V> {
  #map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(key: string): V | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }
  set(key: string, v: V): void {
    this.#map.delete(key);
    this.#map.set(key, v);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value!);
  }
}

// ---------------------------------------------------------------- the parity matrix

/**
 * Parity coefficient a[i][j] for parity row i (share k+i) and data column j:
 *   a[i][j] = ((k ^ j) · (k + i)) / (((k + i) ^ j) · k)
 * This is the Cauchy matrix 1/(x_i ^ y_j), x_i = k + i, y_j = j, with columns
 * scaled so row 0 is all ones and rows scaled so column 0 is all ones.
 */
function parityCoefficient(k: number, i: number, j: number): number {
  const x = k + i;
  return gfDiv(gfMul(k ^ j, x), gfMul(x ^ j, k));
}

/** Row-major (256 - k) x k parity matrix for k: rows for every possible n share it. */
const matrixCache = new LruCache<Uint8Array>(16);
function parityMatrix(k: number): Uint8Array {
  const key = String(k);
  let m = matrixCache.get(key);
  if (m === undefined) {
    const rows = ERASURE_MAX_SHARES - k;
    m = new Uint8Array(rows * k);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < k; j++) m[i * k + j] = parityCoefficient(k, i, j);
    }
    matrixCache.set(key, m);
  }
  return m;
}

/** Split-nibble tables of the first m parity rows for k, for the SIMD kernel. */
const tableCache = new LruCache<Uint8Array>(16);
function parityTables(k: number, m: number, rows: ArrayLike<number>[]): Uint8Array {
  const key = `${k},${m}`;
  let t = tableCache.get(key);
  if (t === undefined) {
    t = nibbleTables(rows, k, MUL);
    tableCache.set(key, t);
  }
  return t;
}

// ---------------------------------------------------------------- kernels

/** The sources whose coefficient is not zero, with those coefficients as MUL row offsets (c << 8). */
function nonZeroTerms<T>(srcs: T[], coefs: ArrayLike<number>): { s: T[]; c: number[] } {
  const s: T[] = [];
  const c: number[] = [];
  for (let t = 0; t < srcs.length; t++) {
    if (coefs[t] !== 0) {
      s.push(srcs[t]);
      c.push(coefs[t] << 8);
    }
  }
  return { s, c };
}

/**
 * out[x] = XOR over t of coefs[t]·srcs[t][x], for x < len. Zero coefficients
 * are skipped; an all-zero combination gives zeros.
 */
function combine(out: Uint8Array, srcs: Uint8Array[], coefs: ArrayLike<number>, len: number): void {
  const { s, c } = nonZeroTerms(srcs, coefs);
  if (s.length === 0) {
    out.fill(0, 0, len);
    return;
  }
  let t = 0;
  let first = true;
  while (t < s.length) {
    const left = s.length - t;
    if (left >= 4) {
      mul4(out, first, s[t], c[t], s[t + 1], c[t + 1], s[t + 2], c[t + 2], s[t + 3], c[t + 3], len);
      t += 4;
    } else if (left === 3) {
      mul3(out, first, s[t], c[t], s[t + 1], c[t + 1], s[t + 2], c[t + 2], len);
      t += 3;
    } else if (left === 2) {
      mul2(out, first, s[t], c[t], s[t + 1], c[t + 1], len);
      t += 2;
    } else {
      mul1(out, first, s[t], c[t], len);
      t += 1;
    }
    first = false;
  }
}

function mul1(out: Uint8Array, first: boolean, a: Uint8Array, ca: number, len: number): void {
  const T = MUL;
  if (ca === 256) {
    if (first) out.set(a.subarray(0, len));
    else for (let x = 0; x < len; x++) out[x] ^= a[x];
  } else if (first) {
    for (let x = 0; x < len; x++) out[x] = T[ca | a[x]];
  } else {
    for (let x = 0; x < len; x++) out[x] ^= T[ca | a[x]];
  }
}

function mul2(
  out: Uint8Array,
  first: boolean,
  a: Uint8Array,
  ca: number,
  b: Uint8Array,
  cb: number,
  len: number,
): void {
  const T = MUL;
  if (first) {
    for (let x = 0; x < len; x++) out[x] = T[ca | a[x]] ^ T[cb | b[x]];
  } else {
    for (let x = 0; x < len; x++) out[x] ^= T[ca | a[x]] ^ T[cb | b[x]];
  }
}

function mul3(
  out: Uint8Array,
  first: boolean,
  a: Uint8Array,
  ca: number,
  b: Uint8Array,
  cb: number,
  c: Uint8Array,
  cc: number,
  len: number,
): void {
  const T = MUL;
  if (first) {
    for (let x = 0; x < len; x++) out[x] = T[ca | a[x]] ^ T[cb | b[x]] ^ T[cc | c[x]];
  } else {
    for (let x = 0; x < len; x++) out[x] ^= T[ca | a[x]] ^ T[cb | b[x]] ^ T[cc | c[x]];
  }
}

function mul4(
  out: Uint8Array,
  first: boolean,
  a: Uint8Array,
  ca: number,
  b: Uint8Array,
  cb: number,
  c: Uint8Array,
  cc: number,
  d: Uint8Array,
  cd: number,
  len: number,
): void {
  const T = MUL;
  if (first) {
    for (let x = 0; x < len; x++) {
      out[x] = T[ca | a[x]] ^ T[cb | b[x]] ^ T[cc | c[x]] ^ T[cd | d[x]];
    }
  } else {
    for (let x = 0; x < len; x++) {
      out[x] ^= T[ca | a[x]] ^ T[cb | b[x]] ^ T[cc | c[x]] ^ T[cd | d[x]];
    }
  }
}

/*
 * Word-wide kernels: the same products four bytes at a time. Each source is
 * read, and each output written, as 32-bit words; the four byte lanes of a
 * word are looked up separately and reassembled, so the result does not
 * depend on the platform's byte order. About a quarter faster than the byte
 * kernels (fewer loads and stores). Used by combineRows for long shards.
 */

/** Shards at least this long go through the word-wide kernels. */
const WORD_MIN = 4096;
/** Aligned copies of unaligned sources and outputs, reused from call to call. */
const wordScratch: Uint32Array[] = [];

function scratchWords(i: number, words: number): Uint32Array {
  let b = wordScratch[i];
  if (!b || b.length < words) {
    b = new Uint32Array(Math.max(words, 1024));
    wordScratch[i] = b;
  }
  return b.length === words ? b : b.subarray(0, words);
}

/** `b`'s first `words` 32-bit words, as a view if aligned, else as an aligned copy in scratch `slot`. */
function wordsOf(b: Uint8Array, words: number, slot: number, copy: boolean): Uint32Array {
  if ((b.byteOffset & 3) === 0) return new Uint32Array(b.buffer, b.byteOffset, words);
  const w = scratchWords(slot, words);
  if (copy) new Uint8Array(w.buffer, w.byteOffset, words * 4).set(b.subarray(0, words * 4));
  return w;
}

function lane(c: number): Uint8Array {
  return MUL.subarray(c, c + 256);
}

function wmul1(o: Uint32Array, first: boolean, a: Uint32Array, ca: number, n: number): void {
  const A = lane(ca);
  for (let x = 0; x < n; x++) {
    const p = a[x];
    const v = A[p & 255] | (A[(p >>> 8) & 255] << 8) | (A[(p >>> 16) & 255] << 16) |
      (A[p >>> 24] << 24);
    o[x] = first ? v : o[x] ^ v;
  }
}

function wmul2(
  o: Uint32Array,
  first: boolean,
  a: Uint32Array,
  ca: number,
  b: Uint32Array,
  cb: number,
  n: number,
): void {
  const A = lane(ca);
  const B = lane(cb);
  for (let x = 0; x < n; x++) {
    const p = a[x];
    const q = b[x];
    const v = (A[p & 255] ^ B[q & 255]) |
      ((A[(p >>> 8) & 255] ^ B[(q >>> 8) & 255]) << 8) |
      ((A[(p >>> 16) & 255] ^ B[(q >>> 16) & 255]) << 16) |
      ((A[p >>> 24] ^ B[q >>> 24]) << 24);
    o[x] = first ? v : o[x] ^ v;
  }
}

function wmul3(
  o: Uint32Array,
  first: boolean,
  a: Uint32Array,
  ca: number,
  b: Uint32Array,
  cb: number,
  c: Uint32Array,
  cc: number,
  n: number,
): void {
  const A = lane(ca);
  const B = lane(cb);
  const C = lane(cc);
  for (let x = 0; x < n; x++) {
    const p = a[x];
    const q = b[x];
    const r = c[x];
    const v = (A[p & 255] ^ B[q & 255] ^ C[r & 255]) |
      ((A[(p >>> 8) & 255] ^ B[(q >>> 8) & 255] ^ C[(r >>> 8) & 255]) << 8) |
      ((A[(p >>> 16) & 255] ^ B[(q >>> 16) & 255] ^ C[(r >>> 16) & 255]) << 16) |
      ((A[p >>> 24] ^ B[q >>> 24] ^ C[r >>> 24]) << 24);
    o[x] = first ? v : o[x] ^ v;
  }
}

/** out[x] (words) = XOR over t of coefs[t]·srcs[t][x], three sources at a time. */
function wcombine(o: Uint32Array, srcs: Uint32Array[], c: number[], n: number): void {
  let t = 0;
  let first = true;
  while (t < srcs.length) {
    const left = srcs.length - t;
    if (left >= 3) {
      wmul3(o, first, srcs[t], c[t], srcs[t + 1], c[t + 1], srcs[t + 2], c[t + 2], n);
      t += 3;
    } else if (left === 2) {
      wmul2(o, first, srcs[t], c[t], srcs[t + 1], c[t + 1], n);
      t += 2;
    } else {
      wmul1(o, first, srcs[t], c[t], n);
      t += 1;
    }
    first = false;
  }
  if (first) o.fill(0);
}

// ---------------------------------------------------------------- kernel choice

/** Which kernel computes the products. */
export type ErasureKernel = "wasm-simd" | "typescript";

let simdWanted = true;
const simd = () => simdWanted && simdAvailable();

/** The kernel in use: "wasm-simd" where the runtime supports WebAssembly SIMD. */
export function erasureKernel(): ErasureKernel {
  return simd() ? "wasm-simd" : "typescript";
}

/**
 * Choose the kernel (tests and benchmarks compare them; both give the same
 * bytes). Returns the previous choice. Throws ErasureError when "wasm-simd" is
 * asked for and the runtime lacks WebAssembly SIMD.
 */
export function useErasureKernel(kind: ErasureKernel): ErasureKernel {
  const before = erasureKernel();
  if (kind === "wasm-simd" && !simdAvailable()) {
    throw new ErasureError(
      "erasure: this runtime has no WebAssembly SIMD; use the typescript kernel",
    );
  }
  if (kind !== "wasm-simd" && kind !== "typescript") {
    throw new ErasureError(`erasure: unknown kernel ${String(kind)}`);
  }
  simdWanted = kind === "wasm-simd";
  return before;
}

/**
 * outs[r][x] = XOR over t of rows[r][t]·srcs[t][x] for x < len, for every
 * row r. With the SIMD kernel, `tables()` gives the rows' split-nibble tables
 * (callers cache them); the TypeScript kernel makes the sources
 * word-addressable once for all rows.
 */
function combineRows(
  outs: Uint8Array[],
  srcs: Uint8Array[],
  rows: ArrayLike<number>[],
  len: number,
  tables: () => Uint8Array,
): void {
  if (len >= SIMD_MIN_LEN && simd()) {
    simdCombineRows(outs, srcs, tables(), len);
    return;
  }
  if (len < WORD_MIN) {
    for (let r = 0; r < outs.length; r++) combine(outs[r], srcs, rows[r], len);
    return;
  }
  const words = len >>> 2;
  const wordBytes = words * 4;
  const w = srcs.map((b, i) => wordsOf(b, words, i, true));
  for (let r = 0; r < outs.length; r++) {
    const { s, c } = nonZeroTerms(w, rows[r]);
    const out = outs[r];
    const o = wordsOf(out, words, srcs.length, false);
    wcombine(o, s, c, words);
    if (o.buffer !== out.buffer || o.byteOffset !== out.byteOffset) {
      out.set(new Uint8Array(o.buffer, o.byteOffset, wordBytes));
    }
    if (wordBytes < len) {
      const tail = srcs.map((b) => b.subarray(wordBytes, len));
      combine(out.subarray(wordBytes), tail, rows[r], len - wordBytes);
    }
  }
}

// ---------------------------------------------------------------- validation

function checkKN(k: number, n: number): void {
  if (typeof k !== "number" || !Number.isInteger(k) || k < 1 || k > ERASURE_MAX_SHARES) {
    throw new ErasureError(
      `erasure: k = ${String(k)} is invalid; k must be an integer from 1 to ${ERASURE_MAX_SHARES}`,
    );
  }
  const max = k === 1 ? ERASURE_MAX_REPLICAS : ERASURE_MAX_SHARES;
  if (typeof n !== "number" || !Number.isInteger(n) || n < k || n > max) {
    throw new ErasureError(
      `erasure: n = ${String(n)} is invalid for k = ${k}; n must be an integer from k to ${max}` +
        (k === 1 ? "" : ` (only k = 1, plain replication, allows more than ${max} shares)`),
    );
  }
}

function checkDataShards(dataShards: unknown, n: number): Uint8Array[] {
  if (!Array.isArray(dataShards)) {
    throw new ErasureError("erasure: dataShards must be an array of Uint8Array");
  }
  checkKN(dataShards.length, n);
  const len = dataShards[0] instanceof Uint8Array ? dataShards[0].length : -1;
  for (let j = 0; j < dataShards.length; j++) {
    const d = dataShards[j];
    if (!(d instanceof Uint8Array)) {
      throw new ErasureError(`erasure: data shard ${j} is not a Uint8Array`);
    }
    if (d.length !== len) {
      throw new ErasureError(
        `erasure: data shard ${j} has ${d.length} bytes but shard 0 has ${len}; ` +
          "all data shards must have the same length (pad the last one with zeros)",
      );
    }
  }
  return dataShards as Uint8Array[];
}

/** A validated share, with its data. */
interface Share {
  index: number;
  data: Uint8Array;
}

/**
 * Validate shares for (k, n) and pick the k to decode from: every data share
 * present, then the lowest-index parity shares. Returns them sorted by index.
 */
function validateShares(shares: unknown, k: number, n: number): { chosen: Share[]; len: number } {
  checkKN(k, n);
  if (!Array.isArray(shares)) {
    throw new ErasureError("erasure: shares must be an array of { index, data } objects");
  }
  if (shares.length < k) {
    throw new ErasureError(
      `erasure: ${shares.length} share(s) given but ${k} distinct shares are needed to decode ` +
        `${k}-of-${n}; fetch more shares`,
    );
  }
  const seen = new Set<number>();
  let len = -1;
  const valid: Share[] = [];
  for (let s = 0; s < shares.length; s++) {
    const sh: unknown = shares[s];
    if (typeof sh !== "object" || sh === null) {
      throw new ErasureError(`erasure: share #${s} is not an object { index, data }`);
    }
    const { index, data } = sh as { index: unknown; data: unknown };
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= n) {
      throw new ErasureError(
        `erasure: share #${s} has index ${String(index)}; it must be an integer in [0, ${n})`,
      );
    }
    if (!(data instanceof Uint8Array)) {
      throw new ErasureError(
        `erasure: share #${s} (index ${index}) has data that is not a Uint8Array`,
      );
    }
    if (seen.has(index)) {
      throw new ErasureError(
        `erasure: share index ${index} appears more than once; give distinct shares`,
      );
    }
    seen.add(index);
    if (len === -1) len = data.length;
    else if (data.length !== len) {
      throw new ErasureError(
        `erasure: share index ${index} has ${data.length} bytes but the first share has ${len}; ` +
          "all shares of one segment must have the same length",
      );
    }
    valid.push({ index, data });
  }
  valid.sort((a, b) => a.index - b.index);
  // Data shares sort first, so the first k by index are: all data shares
  // present, then the lowest-index parity shares.
  return { chosen: valid.slice(0, k), len };
}

// ---------------------------------------------------------------- decode plans

/** How to rebuild the missing data shards from k chosen shares. */
interface DecodePlan {
  /** Data shard indices that are missing, ascending. */
  missing: number[];
  /** For each missing shard: k coefficients, one per chosen share (in chosen order). */
  coefs: Uint8Array[];
  /** The coefficients' split-nibble tables for the SIMD kernel, built on first use. */
  tables?: Uint8Array;
}

const planCache = new LruCache<DecodePlan>(64);

function invert(m: Uint8Array, e: number): Uint8Array {
  // Gauss–Jordan over GF(2^8) on [m | I].
  const a = m.slice();
  const inv = new Uint8Array(e * e);
  for (let i = 0; i < e; i++) inv[i * e + i] = 1;
  for (let col = 0; col < e; col++) {
    let piv = col;
    while (piv < e && a[piv * e + col] === 0) piv++;
    if (piv === e) throw new Error("erasure: internal error, singular decode matrix");
    if (piv !== col) {
      for (let t = 0; t < e; t++) {
        let tmp = a[col * e + t];
        a[col * e + t] = a[piv * e + t];
        a[piv * e + t] = tmp;
        tmp = inv[col * e + t];
        inv[col * e + t] = inv[piv * e + t];
        inv[piv * e + t] = tmp;
      }
    }
    const p = a[col * e + col];
    if (p !== 1) {
      for (let t = 0; t < e; t++) {
        a[col * e + t] = gfDiv(a[col * e + t], p);
        inv[col * e + t] = gfDiv(inv[col * e + t], p);
      }
    }
    for (let r = 0; r < e; r++) {
      const f = a[r * e + col];
      if (r === col || f === 0) continue;
      for (let t = 0; t < e; t++) {
        a[r * e + t] ^= gfMul(f, a[col * e + t]);
        inv[r * e + t] ^= gfMul(f, inv[col * e + t]);
      }
    }
  }
  return inv;
}

function decodePlan(k: number, n: number, indices: number[]): DecodePlan {
  const key = `${k},${n},${indices.join(",")}`;
  const cached = planCache.get(key);
  if (cached) return cached;
  const A = parityMatrix(k);
  const present = new Uint8Array(k);
  const parityPos: number[] = []; // positions in `indices` of parity shares
  for (let p = 0; p < indices.length; p++) {
    if (indices[p] < k) present[indices[p]] = 1;
    else parityPos.push(p);
  }
  const missing: number[] = [];
  for (let j = 0; j < k; j++) if (!present[j]) missing.push(j);
  const e = missing.length; // == parityPos.length
  // M[q][t] = A[row of parity share q][missing[t]]
  const M = new Uint8Array(e * e);
  for (let q = 0; q < e; q++) {
    const r = indices[parityPos[q]] - k;
    for (let t = 0; t < e; t++) M[q * e + t] = A[r * k + missing[t]];
  }
  const Minv = invert(M, e);
  // missing[t] = sum_q Minv[t][q] · (P_q + sum_{i present} A[r_q][i] · D_i)
  const coefs: Uint8Array[] = [];
  for (let t = 0; t < e; t++) {
    const row = new Uint8Array(indices.length);
    for (let q = 0; q < e; q++) {
      const w = Minv[t * e + q];
      if (w === 0) continue;
      row[parityPos[q]] ^= w;
      const r = indices[parityPos[q]] - k;
      for (let p = 0; p < indices.length; p++) {
        const i = indices[p];
        if (i < k) row[p] ^= gfMul(w, A[r * k + i]);
      }
    }
    coefs.push(row);
  }
  const plan = { missing, coefs };
  planCache.set(key, plan);
  return plan;
}

/** Rebuild from validated, chosen shares; `out[j]` (if given) receives data shard j. */
function decodeChosen(
  chosen: Share[],
  len: number,
  k: number,
  n: number,
  out?: Uint8Array[],
): Uint8Array[] {
  const result: Uint8Array[] = new Array(k);
  for (const s of chosen) {
    if (s.index < k) {
      if (out) {
        out[s.index].set(s.data);
        result[s.index] = out[s.index];
      } else {
        result[s.index] = s.data;
      }
    }
  }
  if (k === 1 || chosen[k - 1].index < k) {
    if (k === 1 && result[0] === undefined) {
      // Replication: any share is the data.
      if (out) {
        out[0].set(chosen[0].data);
        result[0] = out[0];
      } else {
        result[0] = chosen[0].data;
      }
    }
    return result;
  }
  const plan = decodePlan(k, n, chosen.map((s) => s.index));
  const srcs = chosen.map((s) => s.data);
  const targets = plan.missing.map((j) => out ? out[j] : new Uint8Array(len));
  const tables = () => (plan.tables ??= nibbleTables(plan.coefs, k, MUL));
  combineRows(targets, srcs, plan.coefs, len, tables);
  plan.missing.forEach((j, t) => (result[j] = targets[t]));
  return result;
}

/**
 * decodeSegment through the SIMD kernel, for chosen shares that miss at least
 * one data shard: data shares go to their data slots, parity shares after
 * them, the kernel fills the missing data slots, and one copy out gives the
 * segment.
 */
function decodeSegmentSimd(
  chosen: Share[],
  k: number,
  n: number,
  size: number,
  segmentLength: number,
): Uint8Array {
  const plan = decodePlan(k, n, chosen.map((s) => s.index));
  const tables = plan.tables ??= nibbleTables(plan.coefs, k, MUL);
  const { mem, base } = simdStage(tables, (k + plan.missing.length) * size);
  let extra = k;
  const srcAddrs = chosen.map((s) => {
    const at = base + (s.index < k ? s.index : extra++) * size;
    mem.set(s.data, at);
    return at;
  });
  simdRun(tables, srcAddrs, plan.missing.map((j) => base + j * size), size);
  return mem.slice(base, base + segmentLength);
}

// ---------------------------------------------------------------- public API

/**
 * Only the parity shards k..n-1 for k = dataShards.length data shards of equal
 * length (for callers that already hold the data shards). Fresh arrays (views
 * of one new buffer), or
 * written into `into` (n - k arrays of the shard length) so a streaming caller
 * can reuse its buffers.
 */
export function erasureParity(
  dataShards: Uint8Array[],
  n: number,
  into?: Uint8Array[],
): Uint8Array[] {
  const data = checkDataShards(dataShards, n);
  const k = data.length;
  const len = k > 0 ? data[0].length : 0;
  const m = n - k;
  if (into && (into.length !== m || into.some((b) => b.length !== len))) {
    throw new ErasureError(`output buffers must be ${m} arrays of ${len} bytes`);
  }
  const parity: Uint8Array[] = new Array(m);
  if (k === 1) {
    for (let i = 0; i < m; i++) {
      if (into) (parity[i] = into[i]).set(data[0]);
      else parity[i] = data[0].slice();
    }
    return parity;
  }
  const A = parityMatrix(k);
  const fresh = into ? null : new Uint8Array(m * len);
  for (let i = 0; i < m; i++) parity[i] = into ? into[i] : fresh!.subarray(i * len, (i + 1) * len);
  const rows = Array.from({ length: m }, (_, i) => A.subarray(i * k, i * k + k));
  combineRows(parity, data, rows, len, () => parityTables(k, m, rows));
  return parity;
}

/**
 * k data shards of equal length in, n shards out; shards[0..k) are the data
 * shards themselves (the same objects), shards[k..n) fresh parity (or the
 * `into` buffers, as for erasureParity).
 */
export function erasureEncode(
  dataShards: Uint8Array[],
  n: number,
  into?: Uint8Array[],
): Uint8Array[] {
  const parity = erasureParity(dataShards, n, into);
  return [...dataShards, ...parity];
}

/**
 * Any >= k distinct shares (index in [0, n), equal lengths) -> the k data
 * shards. When more than k shares are given, the data shares and then the
 * lowest-index parity shares are used (extra shares are not cross-checked:
 * integrity is the hash tree's job). A data shard that was given is returned
 * as the same Uint8Array object; rebuilt ones are fresh. Validates everything
 * and throws ErasureError otherwise.
 */
export function erasureDecode(
  shares: { index: number; data: Uint8Array }[],
  k: number,
  n: number,
): Uint8Array[] {
  const { chosen, len } = validateShares(shares, k, n);
  return decodeChosen(chosen, len, k, n);
}

/**
 * Encode a whole segment: pad with zeros to k · ceil(len / k), split into k
 * data shards of ceil(len / k) bytes, encode to n shares. The data shards are
 * views of one fresh copy of the segment (never of the caller's buffer).
 */
export function encodeSegment(segment: Uint8Array, k: number, n: number): Uint8Array[] {
  checkKN(k, n);
  if (!(segment instanceof Uint8Array)) {
    throw new ErasureError("erasure: segment must be a Uint8Array");
  }
  const size = Math.ceil(segment.length / k);
  if (k > 1 && size >= SIMD_MIN_LEN && n * size <= SIMD_STAGE_MAX && simd()) {
    return encodeSegmentSimd(segment, k, n, size);
  }
  const buf = new Uint8Array(size * k);
  buf.set(segment);
  const data: Uint8Array[] = new Array(k);
  for (let j = 0; j < k; j++) data[j] = buf.subarray(j * size, (j + 1) * size);
  return erasureEncode(data, n);
}

/**
 * encodeSegment through the SIMD kernel, staging in its memory: the padded
 * segment is the k data slots, the kernel writes the parity slots after them,
 * and one copy out gives all n shares (views of one fresh buffer).
 */
function encodeSegmentSimd(segment: Uint8Array, k: number, n: number, size: number): Uint8Array[] {
  const m = n - k;
  const A = parityMatrix(k);
  const rows = Array.from({ length: m }, (_, i) => A.subarray(i * k, i * k + k));
  const tables = parityTables(k, m, rows);
  const { mem, base } = simdStage(tables, n * size);
  mem.set(segment, base);
  mem.fill(0, base + segment.length, base + k * size);
  const addr = (s: number) => base + s * size;
  simdRun(
    tables,
    Array.from({ length: k }, (_, j) => addr(j)),
    rows.map((_, i) => addr(k + i)),
    size,
  );
  const all = mem.slice(base, base + n * size);
  return Array.from({ length: n }, (_, s) => all.subarray(s * size, (s + 1) * size));
}

/**
 * Inverse of encodeSegment: rebuild the data shards from any >= k shares,
 * join them and cut to segmentLength. The shares' length must be exactly
 * ceil(segmentLength / k). Returns a fresh Uint8Array.
 */
export function decodeSegment(
  shares: { index: number; data: Uint8Array }[],
  k: number,
  n: number,
  segmentLength: number,
): Uint8Array {
  const { chosen, len } = validateShares(shares, k, n);
  if (
    typeof segmentLength !== "number" || !Number.isSafeInteger(segmentLength) || segmentLength < 0
  ) {
    throw new ErasureError(
      `erasure: segmentLength ${String(segmentLength)} must be a non-negative integer`,
    );
  }
  const size = Math.ceil(segmentLength / k);
  if (len !== size) {
    throw new ErasureError(
      `erasure: shares of ${len} bytes do not fit a ${segmentLength}-byte segment encoded ` +
        `${k}-of-${n} (expected shares of ceil(${segmentLength}/${k}) = ${size} bytes); ` +
        "check the segment length and encoding parameters",
    );
  }
  if (
    k > 1 && size >= SIMD_MIN_LEN && chosen[k - 1].index >= k && (k + n) * size <= SIMD_STAGE_MAX &&
    simd()
  ) {
    return decodeSegmentSimd(chosen, k, n, size, segmentLength);
  }
  const buf = new Uint8Array(size * k);
  const out: Uint8Array[] = new Array(k);
  for (let j = 0; j < k; j++) out[j] = buf.subarray(j * size, (j + 1) * size);
  decodeChosen(chosen, len, k, n, out);
  return size * k === segmentLength ? buf : buf.subarray(0, segmentLength);
}
