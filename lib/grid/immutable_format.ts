/**
 * Immutable files, format version 1: the pure part (docs/immutable-files.md).
 * Encoding parameters, segment geometry, the URI extension block (UEB), the
 * stored hash trees and the share layout. No I/O.
 *
 * Share layout (all integers big-endian):
 *
 *   header      20 bytes: magic "SHOALCHK", u32 version = 1, u32 share number, u32 UEB length
 *   UEB         CBOR map (its uebHash is in the cap)
 *   blockRoot   32: root of this share's block hash tree
 *   chain       32·ceil(log2 n): needed hashes of leaf `share number` in the share hash tree
 *   blockTree   the share's block hash tree, every node, level order (leaves first)
 *   ctTree      the ciphertext segment hash tree, every node, level order (same in every share)
 *   blocks      block i of every segment, back to back
 */
import {
  bytesEqual,
  concatBytes,
  decodeCbor,
  encodeCbor,
  encodeSegment,
  u32be,
  u64be,
  utf8,
} from "../codec/mod.ts";
import {
  aesCtr,
  hashTreeFiller,
  hashTreeNode,
  immutableStorageIndex,
  taggedHash,
  TAGS,
} from "../crypto/mod.ts";
import { formatCap } from "../crypto/mod.ts";

export const CHK_MAGIC = utf8("SHOALCHK");
export const CHK_VERSION = 1;
export const HEADER_SIZE = 20;
export const HASH_SIZE = 32;
/** Largest UEB accepted by a reader. */
export const MAX_UEB_SIZE = 1024;
/** Default target segment size (rounded up to a multiple of k). */
export const DEFAULT_SEGMENT_SIZE = 1024 * 1024;
/** Largest segment size accepted (writer and reader). */
export const MAX_SEGMENT_SIZE = 64 * 1024 * 1024;
/** log2 of the leaf window a reader verifies at once (256 leaves = 8 KiB). */
export const TREE_WINDOW_LOG = 8;
const ZERO_IV = new Uint8Array(16);

export class ImmutableFormatError extends Error {
  override name = "ImmutableFormatError";
}

export interface EncodingParams {
  k: number;
  n: number;
  /** Requested segment size, a multiple of k. */
  segmentSize: number;
}

/** Validate k, n (1 ≤ k ≤ n ≤ 256) and the happiness threshold (1 ≤ happy ≤ n). */
export function validateParams(k: number, n: number, happy?: number): void {
  if (!Number.isInteger(k) || k < 1 || k > 256) {
    throw new RangeError(`k must be an integer in 1..256, got ${k}`);
  }
  if (!Number.isInteger(n) || n < k || n > 256) {
    throw new RangeError(`n must be an integer in k..256, got ${n}`);
  }
  if (happy !== undefined && (!Number.isInteger(happy) || happy < 1 || happy > n)) {
    throw new RangeError(`happy must be an integer in 1..n (${n}), got ${happy}`);
  }
}

/** The requested segment size rounded up to a multiple of k (default 1 MiB). */
export function requestedSegmentSize(k: number, segmentSize = DEFAULT_SEGMENT_SIZE): number {
  if (!Number.isSafeInteger(segmentSize) || segmentSize < 1 || segmentSize > MAX_SEGMENT_SIZE) {
    throw new RangeError(`segment size must be 1..${MAX_SEGMENT_SIZE} bytes, got ${segmentSize}`);
  }
  return Math.ceil(segmentSize / k) * k;
}

/** Canonical encoding-parameter bytes fed to convergenceKey: u32be(k) || u32be(n) || u64be(segmentSize). */
export function encodingParamsBytes(p: EncodingParams): Uint8Array {
  return concatBytes(u32be(p.k), u32be(p.n), u64be(p.segmentSize));
}

/** The effective segment size of a file: the requested one, or less for a small file. */
export function effectiveSegmentSize(size: number, k: number, requested: number): number {
  return size >= requested ? requested : Math.max(k, Math.ceil(size / k) * k);
}

/** The decoded URI extension block. */
export interface Ueb {
  size: number;
  k: number;
  n: number;
  segmentSize: number;
  shareRoot: Uint8Array;
  ciphertextRoot: Uint8Array;
}

export function encodeUeb(u: Ueb): Uint8Array {
  return encodeCbor({
    v: CHK_VERSION,
    size: u.size,
    k: u.k,
    n: u.n,
    segmentSize: u.segmentSize,
    shareRoot: u.shareRoot,
    ciphertextRoot: u.ciphertextRoot,
  });
}

export function uebHashOf(ueb: Uint8Array): Uint8Array {
  return taggedHash(TAGS.uebHash, ueb);
}

function field(o: Record<string, unknown>, name: string, max: number): number {
  const v = o[name];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new ImmutableFormatError(`UEB field ${name} is not an integer in 0..${max}`);
  }
  return v;
}

/** Decode and validate a UEB (bytes already checked against the cap's uebHash by the caller). */
export function decodeUeb(bytes: Uint8Array): Ueb {
  let v: unknown;
  try {
    v = decodeCbor(bytes, MAX_UEB_SIZE);
  } catch (e) {
    throw new ImmutableFormatError(`UEB is not valid CBOR: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new ImmutableFormatError("UEB is not a map");
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(",");
  if (keys !== "ciphertextRoot,k,n,segmentSize,shareRoot,size,v") {
    throw new ImmutableFormatError(`UEB has unexpected fields (${keys.slice(0, 100)})`);
  }
  if (o.v !== CHK_VERSION) {
    throw new ImmutableFormatError(`UEB version ${String(o.v)} is not supported`);
  }
  const u: Ueb = {
    size: field(o, "size", Number.MAX_SAFE_INTEGER),
    k: field(o, "k", 256),
    n: field(o, "n", 256),
    segmentSize: field(o, "segmentSize", MAX_SEGMENT_SIZE),
    shareRoot: o.shareRoot as Uint8Array,
    ciphertextRoot: o.ciphertextRoot as Uint8Array,
  };
  for (const r of ["shareRoot", "ciphertextRoot"] as const) {
    if (!(u[r] instanceof Uint8Array) || u[r].length !== HASH_SIZE) {
      throw new ImmutableFormatError(`UEB field ${r} is not a 32-byte hash`);
    }
  }
  if (u.k < 1 || u.n < u.k) throw new ImmutableFormatError("UEB has bad k or n");
  if (u.segmentSize < u.k || u.segmentSize % u.k !== 0) {
    throw new ImmutableFormatError("UEB segment size is not a positive multiple of k");
  }
  if (Math.ceil(u.size / u.segmentSize) > 2 ** 32) {
    throw new ImmutableFormatError("UEB has too many segments");
  }
  return u;
}

/** log2 of the padded leaf count of an n-leaf tree. */
export function treeDepth(leaves: number): number {
  let d = 0;
  while (2 ** d < leaves) d++;
  return d;
}

/** Where everything is in a share, derived from the UEB's numbers and the UEB's length. */
export interface Layout {
  size: number;
  k: number;
  n: number;
  segmentSize: number;
  numSegments: number;
  /** Length of the last segment (0 for an empty file). */
  tailSegmentSize: number;
  blockSize: number;
  tailBlockSize: number;
  /** Depth of the block and ciphertext trees (both have numSegments leaves). */
  treeDepth: number;
  /** Depth of the share hash tree (n leaves) = number of chain hashes. */
  chainLength: number;
  uebLength: number;
  uebOffset: number;
  blockRootOffset: number;
  chainOffset: number;
  blockTreeOffset: number;
  ctTreeOffset: number;
  /** Bytes of one stored tree: (2P − 1) · 32. */
  treeBytes: number;
  blocksOffset: number;
  shareSize: number;
}

export function layoutOf(
  p: { size: number; k: number; n: number; segmentSize: number },
  uebLength: number,
): Layout {
  const numSegments = Math.max(1, Math.ceil(p.size / p.segmentSize));
  const tailSegmentSize = p.size - (numSegments - 1) * p.segmentSize;
  const blockSize = p.segmentSize / p.k;
  const tailBlockSize = Math.ceil(tailSegmentSize / p.k);
  const d = treeDepth(numSegments);
  const chainLength = treeDepth(p.n);
  const uebOffset = HEADER_SIZE;
  const blockRootOffset = uebOffset + uebLength;
  const chainOffset = blockRootOffset + HASH_SIZE;
  const blockTreeOffset = chainOffset + chainLength * HASH_SIZE;
  const treeBytes = (2 ** (d + 1) - 1) * HASH_SIZE;
  const ctTreeOffset = blockTreeOffset + treeBytes;
  const blocksOffset = ctTreeOffset + treeBytes;
  const shareSize = blocksOffset + (numSegments - 1) * blockSize + tailBlockSize;
  return {
    size: p.size,
    k: p.k,
    n: p.n,
    segmentSize: p.segmentSize,
    numSegments,
    tailSegmentSize,
    blockSize,
    tailBlockSize,
    treeDepth: d,
    chainLength,
    uebLength,
    uebOffset,
    blockRootOffset,
    chainOffset,
    blockTreeOffset,
    ctTreeOffset,
    treeBytes,
    blocksOffset,
    shareSize,
  };
}

export function segmentLength(l: Layout, i: number): number {
  return i === l.numSegments - 1 ? l.tailSegmentSize : l.segmentSize;
}
export function blockLength(l: Layout, i: number): number {
  return i === l.numSegments - 1 ? l.tailBlockSize : l.blockSize;
}
export function blockOffset(l: Layout, i: number): number {
  return l.blocksOffset + i * l.blockSize;
}

export function packHeader(shareNumber: number, uebLength: number): Uint8Array {
  return concatBytes(CHK_MAGIC, u32be(CHK_VERSION), u32be(shareNumber), u32be(uebLength));
}

export function parseHeader(b: Uint8Array): { shareNumber: number; uebLength: number } {
  if (b.length < HEADER_SIZE) {
    throw new ImmutableFormatError(`share is shorter than its ${HEADER_SIZE}-byte header`);
  }
  if (!bytesEqual(b.subarray(0, 8), CHK_MAGIC)) {
    throw new ImmutableFormatError("share does not start with SHOALCHK");
  }
  const dv = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  const version = dv.getUint32(8);
  if (version !== CHK_VERSION) {
    throw new ImmutableFormatError(`share format version ${version} is not supported`);
  }
  const uebLength = dv.getUint32(16);
  if (uebLength < 1 || uebLength > MAX_UEB_SIZE) {
    throw new ImmutableFormatError(`UEB length ${uebLength} out of range`);
  }
  return { shareNumber: dv.getUint32(12), uebLength };
}

// ---- leaf hashes ----

export function blockHash(block: Uint8Array): Uint8Array {
  return taggedHash(TAGS.blockHash, block);
}
export function shareLeaf(shareNumber: number, blockRoot: Uint8Array): Uint8Array {
  return taggedHash(TAGS.shareHash, u32be(shareNumber), blockRoot);
}
export function segmentLeaf(ciphertextSegment: Uint8Array): Uint8Array {
  return taggedHash(TAGS.segmentHash, ciphertextSegment);
}

// ---- stored trees (every node, level order, leaves padded to 2^d) ----

/** Every node of the hash tree over `leaves`, level order (leaves first); the root is last. */
export function buildTree(leaves: Uint8Array[]): Uint8Array {
  const out = newTree(leaves.length);
  leaves.forEach((leaf, i) => out.set(leaf, i * HASH_SIZE));
  return completeTree(out, leaves.length);
}

/**
 * Room for the stored tree over `count` leaves: a streaming writer puts leaf
 * i at byte i · HASH_SIZE as it is computed (no object per leaf), then calls
 * completeTree.
 */
export function newTree(count: number): Uint8Array {
  return new Uint8Array((2 * 2 ** treeDepth(count) - 1) * HASH_SIZE);
}

/** Fill in the padding leaves and every level above the `count` leaves already in `out`; returns `out`. */
export function completeTree(out: Uint8Array, count: number): Uint8Array {
  const P = 2 ** treeDepth(count);
  if (out.length !== (2 * P - 1) * HASH_SIZE) {
    throw new RangeError("tree buffer has the wrong size");
  }
  for (let i = count; i < P; i++) out.set(hashTreeFiller(i), i * HASH_SIZE);
  let from = 0;
  let to = P;
  for (let width = P; width > 1; width /= 2) {
    for (let j = 0; j < width / 2; j++) {
      const a = out.subarray((from + 2 * j) * HASH_SIZE, (from + 2 * j + 1) * HASH_SIZE);
      const b = out.subarray((from + 2 * j + 1) * HASH_SIZE, (from + 2 * j + 2) * HASH_SIZE);
      out.set(hashTreeNode(a, b), (to + j) * HASH_SIZE);
    }
    from = to;
    to += width / 2;
  }
  return out;
}

export function treeRoot(tree: Uint8Array): Uint8Array {
  return tree.slice(tree.length - HASH_SIZE);
}

/** Offset (in nodes) of level `l` in a stored tree of depth d. */
export function levelOffset(d: number, l: number): number {
  return 2 ** (d + 1) - 2 ** (d + 1 - l);
}

/** The levels a reader fetches first: h = min(TREE_WINDOW_LOG, d) up to the root. */
export function upperPart(d: number): { level: number; offset: number; nodes: number } {
  const h = Math.min(TREE_WINDOW_LOG, d);
  const offset = levelOffset(d, h);
  return { level: h, offset, nodes: 2 ** (d + 1) - 1 - offset };
}

/**
 * Verify the upper part (levels h..d, as stored) against `root`; returns level h's
 * nodes (one per window of 2^h leaves) or null when it does not match.
 */
export function verifyUpper(d: number, upper: Uint8Array, root: Uint8Array): Uint8Array[] | null {
  const { level, nodes } = upperPart(d);
  if (upper.length !== nodes * HASH_SIZE) return null;
  const width = 2 ** (d - level);
  let cur: Uint8Array[] = [];
  for (let i = 0; i < width; i++) cur.push(upper.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  const windowRoots = cur;
  let off = width;
  while (cur.length > 1) {
    const up: Uint8Array[] = [];
    for (let j = 0; j < cur.length / 2; j++) {
      const h = hashTreeNode(cur[2 * j], cur[2 * j + 1]);
      const stored = upper.subarray((off + j) * HASH_SIZE, (off + j + 1) * HASH_SIZE);
      if (!bytesEqual(h, stored)) return null;
      up.push(h);
    }
    off += cur.length / 2;
    cur = up;
  }
  return bytesEqual(cur[0], root) ? windowRoots.map((x) => x.slice()) : null;
}

/**
 * Verify one window of 2^h leaf positions (as stored at level 0) against its
 * window root; returns the leaves or null.
 */
export function verifyWindow(
  windowLeaves: Uint8Array,
  windowRoot: Uint8Array,
): Uint8Array[] | null {
  let cur: Uint8Array[] = [];
  for (let i = 0; i < windowLeaves.length / HASH_SIZE; i++) {
    cur.push(windowLeaves.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
  }
  const leaves = cur;
  if (leaves.length === 0 || (leaves.length & (leaves.length - 1)) !== 0) return null;
  while (cur.length > 1) {
    const up: Uint8Array[] = [];
    for (let j = 0; j < cur.length / 2; j++) up.push(hashTreeNode(cur[2 * j], cur[2 * j + 1]));
    cur = up;
  }
  return bytesEqual(cur[0], windowRoot) ? leaves.map((x) => x.slice()) : null;
}

/** Needed hashes (bottom first) of leaf `i` in a stored tree. */
export function treeProof(tree: Uint8Array, d: number, i: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let l = 0; l < d; l++) {
    const j = (i >> l) ^ 1;
    const at = (levelOffset(d, l) + j) * HASH_SIZE;
    out.push(tree.slice(at, at + HASH_SIZE));
  }
  return out;
}

// ---- whole-file encoding (for vectors and tests; the grid streams the same steps) ----

export interface EncodedFile {
  layout: Layout;
  ueb: Uint8Array;
  uebHash: Uint8Array;
  storageIndex: Uint8Array;
  cap: string;
  shares: Uint8Array[];
}

/** The front part of share s: header, UEB, block root, chain, both trees. */
export function packFront(
  l: Layout,
  shareNumber: number,
  ueb: Uint8Array,
  blockTree: Uint8Array,
  chain: Uint8Array[],
  ctTree: Uint8Array,
): Uint8Array {
  if (ueb.length !== l.uebLength) throw new RangeError("UEB length differs from the layout");
  const out = new Uint8Array(l.blocksOffset);
  out.set(packHeader(shareNumber, ueb.length), 0);
  out.set(ueb, l.uebOffset);
  out.set(treeRoot(blockTree), l.blockRootOffset);
  chain.forEach((h, i) => out.set(h, l.chainOffset + i * HASH_SIZE));
  out.set(blockTree, l.blockTreeOffset);
  out.set(ctTree, l.ctTreeOffset);
  return out;
}

/** The UEB length for these parameters (roots are fixed-size, so any value gives the same length). */
export function uebLengthFor(
  p: { size: number; k: number; n: number; segmentSize: number },
): number {
  const z = new Uint8Array(HASH_SIZE);
  return encodeUeb({ ...p, shareRoot: z, ciphertextRoot: z }).length;
}

/** Encode a whole file in memory with the given key: every share, the UEB and the cap. */
export async function encodeImmutableFile(
  plaintext: Uint8Array,
  key: Uint8Array,
  k: number,
  n: number,
  segmentSize = DEFAULT_SEGMENT_SIZE,
): Promise<EncodedFile> {
  validateParams(k, n);
  const seg = effectiveSegmentSize(plaintext.length, k, requestedSegmentSize(k, segmentSize));
  const params = { size: plaintext.length, k, n, segmentSize: seg };
  const l = layoutOf(params, uebLengthFor(params));
  const ciphertext = await aesCtr(key, ZERO_IV, plaintext);
  const blockLeaves: Uint8Array[][] = Array.from({ length: n }, () => []);
  const segLeaves: Uint8Array[] = [];
  const blocks: Uint8Array[][] = Array.from({ length: n }, () => []);
  for (let i = 0; i < l.numSegments; i++) {
    const c = ciphertext.subarray(i * seg, i * seg + segmentLength(l, i));
    segLeaves.push(segmentLeaf(c));
    const bs = encodeSegment(c, k, n);
    for (let s = 0; s < n; s++) {
      blocks[s].push(bs[s]);
      blockLeaves[s].push(blockHash(bs[s]));
    }
  }
  const blockTrees = blockLeaves.map(buildTree);
  const shareTree = buildTree(blockTrees.map((t, s) => shareLeaf(s, treeRoot(t))));
  const ctTree = buildTree(segLeaves);
  const ueb = encodeUeb({
    ...params,
    shareRoot: treeRoot(shareTree),
    ciphertextRoot: treeRoot(ctTree),
  });
  const uebHash = uebHashOf(ueb);
  const dn = treeDepth(n);
  const shares = blockTrees.map((bt, s) =>
    concatBytes(packFront(l, s, ueb, bt, treeProof(shareTree, dn, s), ctTree), ...blocks[s])
  );
  const cap = formatCap({ kind: "immutable-read", key, uebHash, k, n, size: plaintext.length });
  return { layout: l, ueb, uebHash, storageIndex: immutableStorageIndex(key), cap, shares };
}
