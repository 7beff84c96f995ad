/**
 * The source of Shoal's WebAssembly SIMD erasure-coding kernel: a tiny
 * assembler that emits the module's bytes, instruction by instruction. It is
 * the only source of `gf256_kernel_wasm.ts` (the committed bytes, base64):
 * `deno run scripts/build-wasm.ts` regenerates that file and
 * tests/codec/erasure_wasm_test.ts checks that it equals what this file emits.
 *
 * The module exports one memory (`mem`) and functions `mul1` .. `mul{MAX_ROWS}`.
 * `mulR(nsrc, tbl, srcs, outs, bytes)` reads nsrc source addresses (i32) at
 * `srcs` and R output addresses at `outs`, and computes for each row r < R
 * and byte x < bytes (bytes >= 16; smaller calls do nothing):
 *
 *     out_r[x] = XOR over t < nsrc of  c[r][t] · src_t[x]
 *
 * 16 bytes at a time; when bytes is not a multiple of 16, the last chunk is
 * the 16 bytes ending at `bytes`, overlapping the one before (outputs must
 * not overlap sources). The products use split-nibble tables
 * (docs/erasure-coding.md §9): for the coefficient c of row r and source t,
 * the 32 bytes at tbl + (t·R + r)·32 hold lo[i] = c·i and hi[i] = c·(i << 4),
 * i < 16, so that c·b = lo[b & 15] XOR hi[b >> 4] (GF(2^8) multiplication
 * distributes over XOR). One `i8x16.swizzle` does the 16 lookups of one table.
 * Every address must lie in `mem`.
 *
 * Pure: returns bytes, no I/O.
 */

/** Most output rows one call accumulates (one v128 accumulator each). */
export const MAX_ROWS = 8;

// ---------------------------------------------------------------- encoding helpers

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function name(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const I32 = 0x7f;
const V128 = 0x7b;

// ---------------------------------------------------------------- instructions

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (l: number) => [0x0c, ...uleb(l)],
  brIf: (l: number) => [0x0d, ...uleb(l)],
  select: [0x1b],
  get: (i: number) => [0x20, ...uleb(i)],
  set: (i: number) => [0x21, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Eqz: [0x45],
  i32LtU: [0x49],
  i32GtU: [0x4b],
  i32GeU: [0x4f],
  /** i32.load with a constant offset; alignment hint 2^2. */
  i32Load: (offset: number) => [0x28, 2, ...uleb(offset)],
  i32Add: [0x6a],
  i32Sub: [0x6b],
  /** v128.load with a constant offset; alignment hint 2^4. */
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  v128Const: (bytes: number[]) => [0xfd, ...uleb(0x0c), ...bytes],
  i8x16Swizzle: [0xfd, ...uleb(0x0e)],
  i8x16RelaxedSwizzle: [0xfd, ...uleb(0x100)],
  i8x16Splat: [0xfd, ...uleb(0x0f)],
  v128And: [0xfd, ...uleb(0x4e)],
  v128Xor: [0xfd, ...uleb(0x51)],
  i8x16ShrU: [0xfd, ...uleb(0x6d)],
};

/** The body (locals and code) of mulR. */
function mulBody(R: number, swizzle: number[]): number[] {
  // Parameters 0..4, then i32 locals 5..8, then v128 locals.
  const [NSRC, TBL, SRCS, OUTS, BYTES] = [0, 1, 2, 3, 4];
  const [X, T, PP, TP] = [5, 6, 7, 8];
  const [V, LO, HI, MASK] = [9, 10, 11, 12];
  const ACC = (r: number) => 13 + r;
  const locals = [[...uleb(4), I32], [...uleb(4 + R), V128]];
  const c: number[] = [];
  const emit = (...xs: number[][]) => {
    for (const x of xs) c.push(...x);
  };

  emit(op.i32Const(15), op.i8x16Splat, op.set(MASK));
  emit(op.block);
  // if (bytes < 16 || nsrc == 0) return
  emit(op.get(BYTES), op.i32Const(16), op.i32LtU, op.brIf(0));
  emit(op.get(NSRC), op.i32Eqz, op.brIf(0));
  emit(op.loop); // per 16-byte chunk at offset x
  for (let r = 0; r < R; r++) emit(op.v128Const(new Array(16).fill(0)), op.set(ACC(r)));
  emit(op.get(SRCS), op.set(PP));
  emit(op.get(TBL), op.set(TP));
  emit(op.get(NSRC), op.set(T));
  emit(op.loop); // per source: v = src_t[x .. x+16]
  emit(op.get(PP), op.i32Load(0), op.get(X), op.i32Add, op.v128Load(0), op.set(V));
  emit(op.get(V), op.get(MASK), op.v128And, op.set(LO));
  emit(op.get(V), op.i32Const(4), op.i8x16ShrU, op.set(HI));
  for (let r = 0; r < R; r++) {
    emit(op.get(ACC(r)));
    emit(op.get(TP), op.v128Load(32 * r), op.get(LO), swizzle, op.v128Xor);
    emit(op.get(TP), op.v128Load(32 * r + 16), op.get(HI), swizzle, op.v128Xor);
    emit(op.set(ACC(r)));
  }
  emit(op.get(PP), op.i32Const(4), op.i32Add, op.set(PP));
  emit(op.get(TP), op.i32Const(32 * R), op.i32Add, op.set(TP));
  emit(op.get(T), op.i32Const(1), op.i32Sub, op.set(T));
  emit(op.get(T), op.brIf(0)); // next source while t != 0
  emit(op.end);
  for (let r = 0; r < R; r++) {
    emit(op.get(OUTS), op.i32Load(4 * r), op.get(X), op.i32Add, op.get(ACC(r)), op.v128Store(0));
  }
  // x += 16; stop at the end; a last partial chunk is redone as the 16 bytes
  // ending at `bytes` (overlapping the previous chunk: same inputs, same outputs).
  emit(op.get(X), op.i32Const(16), op.i32Add, op.set(X));
  emit(op.get(X), op.get(BYTES), op.i32GeU, op.brIf(1));
  emit(
    op.get(BYTES),
    op.i32Const(16),
    op.i32Sub,
    op.get(X),
    op.get(X),
    op.i32Const(16),
    op.i32Add,
    op.get(BYTES),
    op.i32GtU,
    op.select,
    op.set(X),
  );
  emit(op.br(0));
  emit(op.end); // loop
  emit(op.end); // block
  emit(op.end); // function
  const body = [...vec(locals), ...c];
  return [...uleb(body.length), ...body];
}

/**
 * The kernel module's bytes. Deterministic: the same bytes on every call.
 * `relaxed` uses i8x16.relaxed_swizzle (one x86 pshufb) instead of
 * i8x16.swizzle (pshufb plus a fix-up for indices >= 16): both look up
 * indices < 16 identically, and the kernel's indices are nibbles, so both
 * modules compute the same bytes; the relaxed one needs relaxed SIMD.
 */
export function buildGf256Kernel(relaxed = false): Uint8Array {
  const swizzle = relaxed ? op.i8x16RelaxedSwizzle : op.i8x16Swizzle;
  const rows = Array.from({ length: MAX_ROWS }, (_, i) => i + 1);
  const type = [0x60, ...vec(new Array(5).fill([I32])), ...vec([])];
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d], // "\0asm"
    ...[0x01, 0x00, 0x00, 0x00], // version 1
    ...section(1, vec([type])),
    ...section(3, vec(rows.map(() => uleb(0)))),
    ...section(5, vec([[0x00, ...uleb(1)]])), // one memory, 1 page minimum, no maximum
    ...section(
      7,
      vec([
        [...name("mem"), 0x02, ...uleb(0)],
        ...rows.map((R) => [...name(`mul${R}`), 0x00, ...uleb(R - 1)]),
      ]),
    ),
    ...section(10, vec(rows.map((R) => mulBody(R, swizzle)))),
  ];
  return new Uint8Array(bytes);
}
