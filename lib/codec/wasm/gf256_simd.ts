/**
 * The WebAssembly SIMD kernel for GF(2^8) multiply-accumulate (see
 * gf256_kernel_source.ts for what it computes): instantiation, feature
 * detection and the strip-by-strip driver that copies shards in and out of
 * the module's memory. lib/codec/erasure.ts uses it when available and falls
 * back to its TypeScript kernels otherwise; both give identical bytes.
 *
 * Pure: no I/O (the module's bytes are a constant of this repository).
 */
import { MAX_ROWS } from "./gf256_kernel_source.ts";
import { GF256_KERNEL_RELAXED_WASM_BASE64, GF256_KERNEL_WASM_BASE64 } from "./gf256_kernel_wasm.ts";

type MulFn = (nsrc: number, tbl: number, srcs: number, outs: number, bytes: number) => void;

interface Kernel {
  memory: WebAssembly.Memory;
  mul: MulFn[];
  view: Uint8Array;
  ptrs: DataView;
  /** The tables last copied to TABLES (skipped when the next call passes the same array). */
  tables: Uint8Array | null;
}

/*
 * Memory layout: source addresses at SRC_PTRS, output addresses at OUT_PTRS
 * (i32 each, at most 256 of each), tables from TABLES, shard data from
 * dataBase(tables) on.
 */
const SRC_PTRS = 0;
const OUT_PTRS = 1024;
const TABLES = 4096;
const PAGE = 65536;

/** Shard bytes (sources and outputs together) staged per strip by simdCombineRows. */
const STRIP_BYTES = 512 * 1024;
/** Most shard bytes a caller may stage at once with simdStage (the memory never shrinks). */
export const SIMD_STAGE_MAX = 8 * 1024 * 1024;
/** Shortest shard the kernel handles; shorter ones go to the TypeScript kernels. */
export const SIMD_MIN_LEN = 16;

/** A module's bytes, decoded from the committed base64 (relaxed SIMD or plain SIMD). */
export function kernelBytes(relaxed: boolean): Uint8Array<ArrayBuffer> {
  const bin = atob(relaxed ? GF256_KERNEL_RELAXED_WASM_BASE64 : GF256_KERNEL_WASM_BASE64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

let kernel: Kernel | null | undefined;

let variant: "relaxed-simd" | "simd" | null = null;

/** Which module was loaded: with relaxed SIMD, plain SIMD, or none (null). */
export function simdVariant(): "relaxed-simd" | "simd" | null {
  simdAvailable();
  return variant;
}

function load(): Kernel | null {
  for (const relaxed of [true, false]) {
    const k = instantiate(relaxed);
    if (k) {
      variant = relaxed ? "relaxed-simd" : "simd";
      return k;
    }
  }
  return null;
}

function instantiate(relaxed: boolean): Kernel | null {
  try {
    if (typeof WebAssembly !== "object") return null;
    const bytes = kernelBytes(relaxed);
    // The modules use SIMD (and relaxed SIMD) instructions: a runtime
    // without them fails validation.
    if (!WebAssembly.validate(bytes)) return null;
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {});
    const memory = inst.exports.mem as WebAssembly.Memory;
    const mul: MulFn[] = [];
    for (let r = 1; r <= MAX_ROWS; r++) mul.push(inst.exports[`mul${r}`] as MulFn);
    return {
      memory,
      mul,
      view: new Uint8Array(memory.buffer),
      ptrs: new DataView(memory.buffer),
      tables: null,
    };
  } catch {
    return null;
  }
}

/** Whether the SIMD kernel can run here (instantiated once, on first call). */
export function simdAvailable(): boolean {
  if (kernel === undefined) kernel = load();
  return kernel !== null;
}

/**
 * For tests: load the given module variant instead of the preferred one
 * (both compute the same bytes). Returns whether it loaded; when it did not,
 * the kernel in use is unchanged.
 */
export function simdUseVariant(which: "relaxed-simd" | "simd"): boolean {
  const k = instantiate(which === "relaxed-simd");
  if (!k) return false;
  kernel = k;
  variant = which;
  return true;
}

/**
 * Split-nibble tables for `rows` (each nsrc coefficients), in the layout
 * simdRun passes to the kernel: rows in groups of MAX_ROWS, and within a
 * group of R rows, for each source t and row r, 32 bytes at (t·R + r)·32
 * holding c·i and c·(i << 4) for i < 16. `mul` is the 64 KiB table
 * mul[c·256 + d] = c·d.
 */
export function nibbleTables(rows: ArrayLike<number>[], nsrc: number, mul: Uint8Array): Uint8Array {
  const out = new Uint8Array(rows.length * nsrc * 32);
  let o = 0;
  for (let r0 = 0; r0 < rows.length; r0 += MAX_ROWS) {
    const R = Math.min(MAX_ROWS, rows.length - r0);
    for (let t = 0; t < nsrc; t++) {
      for (let r = 0; r < R; r++) {
        const c = rows[r0 + r][t] << 8;
        for (let i = 0; i < 16; i++) {
          out[o + i] = mul[c | i];
          out[o + 16 + i] = mul[c | (i << 4)];
        }
        o += 32;
      }
    }
  }
  return out;
}

const align64 = (x: number) => (x + 63) & ~63;

/**
 * Make room for `dataBytes` of shards after `tables`; returns the memory view
 * and the address where shard data starts. The view is valid until the next
 * simdStage or simdCombineRows call. Requires simdAvailable().
 */
export function simdStage(
  tables: Uint8Array,
  dataBytes: number,
): { mem: Uint8Array; base: number } {
  const k = kernel!;
  const base = align64(TABLES + tables.length);
  const need = base + dataBytes;
  if (k.memory.buffer.byteLength < need) {
    k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / PAGE));
    k.view = new Uint8Array(k.memory.buffer);
    k.ptrs = new DataView(k.memory.buffer);
  }
  return { mem: k.view, base };
}

/**
 * Run the kernel on staged data: for each r, `len` bytes at outAddrs[r] =
 * XOR over t of c[r][t] · (len bytes at srcAddrs[t]), with `tables` from
 * nibbleTables(c, srcAddrs.length), after simdStage(tables, ...). len >=
 * SIMD_MIN_LEN; outputs must not overlap sources; at most 256 of each.
 */
export function simdRun(
  tables: Uint8Array,
  srcAddrs: number[],
  outAddrs: number[],
  len: number,
): void {
  const k = kernel!;
  if (k.tables !== tables) {
    k.view.set(tables, TABLES);
    k.tables = tables;
  }
  const p = k.ptrs;
  for (let t = 0; t < srcAddrs.length; t++) p.setUint32(SRC_PTRS + 4 * t, srcAddrs[t], true);
  for (let r = 0; r < outAddrs.length; r++) p.setUint32(OUT_PTRS + 4 * r, outAddrs[r], true);
  const nsrc = srcAddrs.length;
  let tp = TABLES;
  for (let r0 = 0; r0 < outAddrs.length; r0 += MAX_ROWS) {
    const R = Math.min(MAX_ROWS, outAddrs.length - r0);
    k.mul[R - 1](nsrc, tp, SRC_PTRS, OUT_PTRS + 4 * r0, len);
    tp += R * nsrc * 32;
  }
}

/**
 * outs[r][x] = XOR over t of c[r][t]·srcs[t][x] for x < len (>= SIMD_MIN_LEN),
 * with `tables` from nibbleTables(c, srcs.length), staging the shards through
 * the module's memory in strips. Requires simdAvailable().
 */
export function simdCombineRows(
  outs: Uint8Array[],
  srcs: Uint8Array[],
  tables: Uint8Array,
  len: number,
): void {
  const m = outs.length;
  const nsrc = srcs.length;
  if (m === 0) return;
  const stride = Math.min(len, Math.max(256, Math.floor(STRIP_BYTES / (nsrc + m) / 64) * 64));
  const { mem, base } = simdStage(tables, (nsrc + m) * stride);
  const srcAddrs = srcs.map((_, t) => base + t * stride);
  const outAddrs = outs.map((_, r) => base + (nsrc + r) * stride);
  for (let off = 0; off < len; off += stride) {
    // A short last strip starts earlier, overlapping the previous one (same bytes out).
    const start = Math.min(off, len - SIMD_MIN_LEN);
    const s = Math.min(stride, len - start);
    for (let t = 0; t < nsrc; t++) {
      mem.set(s === srcs[t].length ? srcs[t] : srcs[t].subarray(start, start + s), srcAddrs[t]);
    }
    simdRun(tables, srcAddrs, outAddrs, s);
    for (let r = 0; r < m; r++) outs[r].set(mem.subarray(outAddrs[r], outAddrs[r] + s), start);
  }
}
