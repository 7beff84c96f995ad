/**
 * The CPU work of one immutable-file segment, as pure functions over
 * caller-owned buffers: what a segment Worker runs (segment_worker.ts), and
 * what the calling thread runs itself when no Worker is available. Bytes
 * in, bytes out; the output is byte for byte what lib/grid/immutable.ts
 * stored before Workers (the share format of docs/immutable-files.md).
 */
// The modules themselves rather than codec/ and crypto/ mod.ts: a segment
// Worker loads only this graph (no CBOR, caps or signatures), which keeps its
// start-up and its memory small.
import { decodeSegment, erasureParity } from "../../codec/erasure.ts";
import { aesCtr } from "../../crypto/aes.ts";
import { taggedHash, TAGS } from "../../crypto/hash.ts";

const ZERO_IV = new Uint8Array(16);
const HASH = 32;

/** Encrypt (unless `key` is null: repair re-encodes ciphertext), erasure-code and hash one segment. */
export interface EncodeJob {
  /** AES-256-CTR key, or null when `input` is already ciphertext. */
  key: Uint8Array | null;
  /** Stream position of the segment's first byte. */
  pos: number;
  k: number;
  n: number;
  /** Block size: ceil(segment length / k). */
  size: number;
  /** The segment (plaintext, or ciphertext when `key` is null): `length` bytes at `start` (default 0). */
  input: Uint8Array;
  start?: number;
  length: number;
  /** n · size bytes: on return, block s at [s · size, (s + 1) · size). */
  out: Uint8Array;
}

export interface EncodeDone {
  /** n block hashes (tagged blockHash), 32 bytes each. */
  hashes: Uint8Array;
  /** The ciphertext-tree leaf of the segment (tagged segmentHash). */
  leaf: Uint8Array;
}

export async function encodeWork(j: EncodeJob): Promise<EncodeDone> {
  const { k, n, size, length } = j;
  const start = j.start ?? 0;
  if (j.out.length < n * size || length > k * size || j.input.length < start + length) {
    throw new RangeError("encodeWork: buffers do not fit the segment");
  }
  const ct = j.out.subarray(0, length);
  const src = j.input.subarray(start, start + length);
  // Web Crypto's AES-CTR: in this runtime less CPU per MB than node:crypto's
  // (measured: 4.8-5.2 against 5.8-8.0 ms/MB for a whole download segment).
  ct.set(j.key ? await aesCtr(j.key, ZERO_IV, src, j.pos) : src);
  j.out.fill(0, length, k * size); // the last segment's padding
  const leaf = taggedHash(TAGS.segmentHash, ct);
  const block = (s: number) => j.out.subarray(s * size, (s + 1) * size);
  const data = Array.from({ length: k }, (_, s) => block(s));
  if (n > k) erasureParity(data, n, Array.from({ length: n - k }, (_, p) => block(k + p)));
  const hashes = new Uint8Array(n * HASH);
  for (let s = 0; s < n; s++) hashes.set(taggedHash(TAGS.blockHash, block(s)), s * HASH);
  return { hashes, leaf };
}

/** Verify k blocks, decode the segment, check it against its ciphertext leaf, decrypt. */
export interface DecodeJob {
  /** AES-256-CTR key, or null to return the ciphertext (repair). */
  key: Uint8Array | null;
  pos: number;
  k: number;
  n: number;
  size: number;
  /** Segment length (bytes of the result). */
  length: number;
  /** The k share numbers, distinct, ascending. */
  indices: number[];
  /**
   * The block of share indices[j] at [at + j · size, at + (j + 1) · size). Reused for the
   * result. Room before the blocks (`at`, default 0; 16 is plenty) lets AES-CTR decrypt the
   * data shares where they are (lib/crypto/aes.ts).
   */
  blocks: Uint8Array;
  at?: number;
  /** k expected block hashes, 32 bytes each, in the order of `indices`. */
  expected: Uint8Array;
  /** The expected ciphertext-tree leaf. */
  leaf: Uint8Array;
}

export type DecodeDone =
  /**
   * The segment (plaintext, or ciphertext when `key` was null): `plain` when given (a buffer
   * of its own), else `blocks` at [at, at + length).
   */
  | { ok: true; plain?: Uint8Array }
  /** Positions j (into `indices`) whose block does not match its hash. */
  | { ok: false; badBlocks: number[] }
  /** Every block matched, but the decoded segment does not match its leaf. */
  | { ok: false; badSegment: true };

function equal32(a: Uint8Array, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < HASH; i++) if (a[i] !== b[bOff + i]) return false;
  return true;
}

/**
 * `own`: the plaintext may be returned in a buffer of its own (`plain`, Web Crypto's result)
 * rather than copied into `blocks`: on the calling thread that saves a copy and a fresh
 * buffer; a Worker hands `blocks` back instead (a fresh buffer sent between threads costs more).
 */
export async function decodeWork(j: DecodeJob, own = false): Promise<DecodeDone> {
  const { k, n, size, length, indices } = j;
  const at = j.at ?? 0;
  if (indices.length !== k || j.blocks.length < at + k * size || length > k * size) {
    throw new RangeError("decodeWork: buffers do not fit the segment");
  }
  const block = (p: number) => j.blocks.subarray(at + p * size, at + (p + 1) * size);
  const bad: number[] = [];
  for (let p = 0; p < k; p++) {
    if (!equal32(taggedHash(TAGS.blockHash, block(p)), j.expected, p * HASH)) bad.push(p);
  }
  if (bad.length) return { ok: false, badBlocks: bad };
  let ct: Uint8Array;
  if (indices.every((x, p) => x === p)) {
    ct = j.blocks.subarray(at, at + length); // the data shares, in order: the segment itself
  } else {
    ct = decodeSegment(indices.map((index, p) => ({ index, data: block(p) })), k, n, length);
  }
  if (!equal32(taggedHash(TAGS.segmentHash, ct), j.leaf, 0)) return { ok: false, badSegment: true };
  const out = j.blocks.subarray(at, at + length);
  if (j.key && own) return { ok: true, plain: await aesCtr(j.key, ZERO_IV, ct, j.pos) };
  if (j.key) out.set(await aesCtr(j.key, ZERO_IV, ct, j.pos));
  else if (ct !== out) out.set(ct);
  return { ok: true };
}
