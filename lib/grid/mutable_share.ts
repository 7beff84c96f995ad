/**
 * The byte layout of one mutable share (format version 1). Pure: no I/O.
 * docs/mutable-files.md is the normative description.
 *
 *   offset  size  field
 *   0       1     format version (1)
 *   1       8     sequence number (u64 BE)
 *   9       32    root of the share hash tree
 *   41      16    salt (random per version)
 *   57      2     k (u16 BE)
 *   59      4     n (u32 BE)
 *   63      8     plaintext length (u64 BE)
 *   ---- 71 bytes: the signed prefix; its first 57 bytes are the checkstring
 *   71      32    Ed25519 public key
 *   103     64    signature over taggedHash(mutableSignature, prefix)
 *   167     4     share number (u32 BE)
 *   171     1     number m of needed hashes
 *   172     32*m  needed hashes of the share hash tree, leaf level first
 *   172+32m ...   the block (to the end of the share)
 */
import { concatBytes, u32be, u64be } from "../codec/mod.ts";

export const MUTABLE_FORMAT_VERSION = 1;
export const CHECKSTRING_SIZE = 57;
export const PREFIX_SIZE = 71;
export const FIXED_HEADER_SIZE = 172;
/** Largest header (n up to 2^24 gives at most 24 needed hashes). */
export const MAX_HEADER_SIZE = FIXED_HEADER_SIZE + 32 * 24;
/** Largest share number a mutable version may have. */
export const MAX_MUTABLE_N = 1 << 24;

export class MutableShareError extends Error {
  override name = "MutableShareError";
}

export interface MutablePrefix {
  seqnum: number;
  rootHash: Uint8Array;
  salt: Uint8Array;
  k: number;
  n: number;
  dataLength: number;
}

export interface MutableShareHeader {
  prefix: MutablePrefix;
  /** The 71 signed bytes as they appear in the share. */
  prefixBytes: Uint8Array;
  publicKey: Uint8Array;
  signature: Uint8Array;
  shareNumber: number;
  neededHashes: Uint8Array[];
  /** Offset of the block within the share. */
  blockOffset: number;
}

export interface MutableShare extends MutableShareHeader {
  block: Uint8Array;
}

export function validateEncoding(k: number, n: number): void {
  if (!Number.isInteger(k) || !Number.isInteger(n) || k < 1 || n < k) {
    throw new MutableShareError(`invalid encoding ${k}-of-${n}: need 1 <= k <= n`);
  }
  if (k > 1 && n > 256) {
    throw new MutableShareError(`invalid encoding ${k}-of-${n}: n > 256 needs k = 1`);
  }
  if (k > 256) throw new MutableShareError(`invalid encoding: k = ${k} exceeds 256`);
  if (n > MAX_MUTABLE_N) {
    throw new MutableShareError(`invalid encoding: n = ${n} exceeds ${MAX_MUTABLE_N}`);
  }
}

/** Bytes of each share's block for a plaintext of `dataLength` bytes encoded k-of-n. */
export function blockLength(dataLength: number, k: number): number {
  return k === 1 ? dataLength : Math.ceil(dataLength / k);
}

/** Number of needed hashes in a share hash tree of n leaves. */
export function neededHashCount(n: number): number {
  let m = 0;
  while ((1 << m) < n) m++;
  return m;
}

export function packPrefix(p: MutablePrefix): Uint8Array {
  validateEncoding(p.k, p.n);
  if (p.rootHash.length !== 32) throw new MutableShareError("root hash must be 32 bytes");
  if (p.salt.length !== 16) throw new MutableShareError("salt must be 16 bytes");
  const k = new Uint8Array(2);
  new DataView(k.buffer).setUint16(0, p.k);
  const out = concatBytes(
    new Uint8Array([MUTABLE_FORMAT_VERSION]),
    u64be(p.seqnum),
    p.rootHash,
    p.salt,
    k,
    u32be(p.n),
    u64be(p.dataLength),
  );
  return out;
}

export function unpackPrefix(b: Uint8Array): MutablePrefix {
  if (b.length < PREFIX_SIZE) {
    throw new MutableShareError(`share too short for its prefix (${b.length} bytes)`);
  }
  if (b[0] !== MUTABLE_FORMAT_VERSION) {
    throw new MutableShareError(`unknown mutable share format version ${b[0]}`);
  }
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const safe = (offset: number, what: string): number => {
    const v = dv.getBigUint64(offset);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MutableShareError(`${what} exceeds 2^53-1`);
    return Number(v);
  };
  const prefix: MutablePrefix = {
    seqnum: safe(1, "sequence number"),
    rootHash: b.slice(9, 41),
    salt: b.slice(41, 57),
    k: dv.getUint16(57),
    n: dv.getUint32(59),
    dataLength: safe(63, "plaintext length"),
  };
  validateEncoding(prefix.k, prefix.n);
  return prefix;
}

/** Parse everything but the block; `b` may be just the first bytes of the share. */
export function unpackShareHeader(b: Uint8Array): MutableShareHeader {
  const prefix = unpackPrefix(b);
  if (b.length < FIXED_HEADER_SIZE) {
    throw new MutableShareError(`share header truncated (${b.length} bytes)`);
  }
  const shareNumber = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(167);
  const m = b[171];
  if (m !== neededHashCount(prefix.n)) {
    throw new MutableShareError(
      `share carries ${m} needed hashes; ${prefix.n} shares need ${neededHashCount(prefix.n)}`,
    );
  }
  if (shareNumber >= prefix.n) {
    throw new MutableShareError(`share number ${shareNumber} >= n = ${prefix.n}`);
  }
  const blockOffset = FIXED_HEADER_SIZE + 32 * m;
  if (b.length < blockOffset) {
    throw new MutableShareError("share header truncated in its needed hashes");
  }
  const neededHashes: Uint8Array[] = [];
  for (let i = 0; i < m; i++) {
    neededHashes.push(b.slice(FIXED_HEADER_SIZE + 32 * i, FIXED_HEADER_SIZE + 32 * (i + 1)));
  }
  return {
    prefix,
    prefixBytes: b.slice(0, PREFIX_SIZE),
    publicKey: b.slice(71, 103),
    signature: b.slice(103, 167),
    shareNumber,
    neededHashes,
    blockOffset,
  };
}

/** Total size of a share of this version. */
export function shareSize(prefix: MutablePrefix): number {
  return FIXED_HEADER_SIZE + 32 * neededHashCount(prefix.n) +
    blockLength(prefix.dataLength, prefix.k);
}

/** Parse a whole share; the block must be exactly as long as the prefix says. */
export function unpackShare(b: Uint8Array): MutableShare {
  const h = unpackShareHeader(b);
  const want = blockLength(h.prefix.dataLength, h.prefix.k);
  const got = b.length - h.blockOffset;
  if (got !== want) {
    throw new MutableShareError(`share block is ${got} bytes; its prefix says ${want}`);
  }
  return { ...h, block: b.subarray(h.blockOffset) };
}

export function packShare(
  prefixBytes: Uint8Array,
  publicKey: Uint8Array,
  signature: Uint8Array,
  shareNumber: number,
  neededHashes: Uint8Array[],
  block: Uint8Array,
): Uint8Array {
  if (prefixBytes.length !== PREFIX_SIZE) throw new MutableShareError("prefix must be 71 bytes");
  if (publicKey.length !== 32 || signature.length !== 64) {
    throw new MutableShareError("bad key or signature size");
  }
  const out = new Uint8Array(FIXED_HEADER_SIZE + 32 * neededHashes.length + block.length);
  out.set(prefixBytes, 0);
  out.set(publicKey, 71);
  out.set(signature, 103);
  new DataView(out.buffer).setUint32(167, shareNumber);
  out[171] = neededHashes.length;
  let o = FIXED_HEADER_SIZE;
  for (const h of neededHashes) {
    out.set(h, o);
    o += 32;
  }
  out.set(block, o);
  return out;
}
