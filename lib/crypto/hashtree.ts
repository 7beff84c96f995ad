/**
 * Binary Merkle hash trees over leaf hashes (docs/crypto.md §8).
 *
 * The leaf count n >= 1 is padded up to P = 2^d, the smallest power of two
 * >= n. Leaf position i < n holds the i-th leaf hash; position i >= n holds
 * the filler taggedHash(TAGS.hashTreeEmpty, u64be(i)). An interior node is
 * taggedHash(TAGS.hashTreeNode, left, right). The root is the single node at
 * the top; for n = 1 (d = 0) the root IS the leaf hash and proofs are empty.
 * A proof ("needed hashes") lists the sibling of each node on the path from
 * the leaf up to, not including, the root: d hashes, bottom first.
 */
import { createHash } from "node:crypto";
import { u64be, utf8 } from "../codec/bytes.ts";
import { taggedHash, TAGS } from "./hash.ts";

const HASH_LEN = 32;
/** Largest leaf count accepted: keeps the padded tree within 2^32 positions. */
export const MAX_LEAVES = 2 ** 32;

// taggedHash(TAGS.hashTreeNode, left, right) laid out in one buffer:
// "<len>:<tag>," "32:" left "," "32:" right ","
const NODE_TAG = utf8(TAGS.hashTreeNode);
const NODE_PREFIX = utf8(`${NODE_TAG.length}:${TAGS.hashTreeNode},32:`);
const NODE_INPUT_LEN = NODE_PREFIX.length + 32 + 4 + 32 + 1;
const NODE_LEFT = NODE_PREFIX.length;
const NODE_RIGHT = NODE_LEFT + 32 + 4;
const nodeInput = new Uint8Array(NODE_INPUT_LEN);
nodeInput.set(NODE_PREFIX);
nodeInput.set(utf8(",32:"), NODE_LEFT + 32);
nodeInput[NODE_INPUT_LEN - 1] = 0x2c; // ","

/** Node hash as node:crypto returns it (a Buffer); used inside the tree. */
function nodeDigest(left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeInput.set(left, NODE_LEFT);
  nodeInput.set(right, NODE_RIGHT);
  return createHash("sha256").update(nodeInput).digest();
}

/** taggedHash(TAGS.hashTreeNode, left, right) for two 32-byte hashes, fast. */
export function hashTreeNode(left: Uint8Array, right: Uint8Array): Uint8Array {
  return new Uint8Array(nodeDigest(left, right));
}

// taggedHash(TAGS.hashTreeEmpty, u64be(index)) laid out in one buffer.
const EMPTY_PREFIX = utf8(`${utf8(TAGS.hashTreeEmpty).length}:${TAGS.hashTreeEmpty},8:`);
const emptyInput = new Uint8Array(EMPTY_PREFIX.length + 9);
emptyInput.set(EMPTY_PREFIX);
emptyInput[emptyInput.length - 1] = 0x2c; // ","
const emptyView = new DataView(emptyInput.buffer);

function fillerDigest(index: number): Uint8Array {
  emptyView.setBigUint64(EMPTY_PREFIX.length, BigInt(index));
  return createHash("sha256").update(emptyInput).digest();
}

/** The filler hash for padded leaf position `index` (index >= leaf count). */
export function hashTreeFiller(index: number): Uint8Array {
  return taggedHash(TAGS.hashTreeEmpty, u64be(index));
}

function depthFor(leafCount: number): number {
  let d = 0;
  while (2 ** d < leafCount) d++;
  return d;
}

function checkLeafCount(leafCount: number): void {
  if (!Number.isSafeInteger(leafCount) || leafCount < 1 || leafCount > MAX_LEAVES) {
    throw new RangeError(`hash tree leaf count must be an integer in 1..2^32, got ${leafCount}`);
  }
}

export class HashTree {
  readonly leafCount: number;
  readonly depth: number;
  /** levels[0] = padded leaves, levels[depth] = [root]. */
  #levels: Uint8Array[][];

  constructor(leafHashes: Uint8Array[]) {
    checkLeafCount(leafHashes.length);
    this.leafCount = leafHashes.length;
    this.depth = depthFor(this.leafCount);
    const padded = 2 ** this.depth;
    const leaves: Uint8Array[] = new Array(padded);
    for (let i = 0; i < padded; i++) {
      if (i < this.leafCount) {
        const h = leafHashes[i];
        if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) {
          throw new RangeError(`hash tree leaf ${i} must be a 32-byte hash, got ${h?.length}`);
        }
        leaves[i] = h;
      } else {
        leaves[i] = fillerDigest(i);
      }
    }
    this.#levels = [leaves];
    let level = leaves;
    while (level.length > 1) {
      const up: Uint8Array[] = new Array(level.length / 2);
      for (let i = 0; i < up.length; i++) up[i] = nodeDigest(level[2 * i], level[2 * i + 1]);
      this.#levels.push(up);
      level = up;
    }
  }

  get root(): Uint8Array {
    return new Uint8Array(this.#levels[this.depth][0]);
  }

  /** Sibling hashes from the leaf's level up to (not including) the root. */
  neededHashes(leafIndex: number): Uint8Array[] {
    if (!Number.isInteger(leafIndex) || leafIndex < 0 || leafIndex >= this.leafCount) {
      throw new RangeError(`leaf index must be in 0..${this.leafCount - 1}, got ${leafIndex}`);
    }
    const proof: Uint8Array[] = [];
    let i = leafIndex;
    for (let level = 0; level < this.depth; level++) {
      proof.push(new Uint8Array(this.#levels[level][i % 2 === 0 ? i + 1 : i - 1]));
      i = Math.floor(i / 2);
    }
    return proof;
  }
}

/**
 * Whether `leafHash` is leaf `leafIndex` of the `leafCount`-leaf tree with
 * root `root`, given its needed hashes. Never throws: any malformed argument
 * (wrong lengths, index out of range, wrong proof length) gives false.
 */
export function verifyLeaf(
  root: Uint8Array,
  leafCount: number,
  leafIndex: number,
  leafHash: Uint8Array,
  proof: Uint8Array[],
): boolean {
  if (!Number.isSafeInteger(leafCount) || leafCount < 1 || leafCount > MAX_LEAVES) return false;
  if (!Number.isSafeInteger(leafIndex) || leafIndex < 0 || leafIndex >= leafCount) return false;
  if (!(root instanceof Uint8Array) || root.length !== HASH_LEN) return false;
  if (!(leafHash instanceof Uint8Array) || leafHash.length !== HASH_LEN) return false;
  if (!Array.isArray(proof) || proof.length !== depthFor(leafCount)) return false;
  let h = leafHash;
  let i = leafIndex;
  for (const sibling of proof) {
    if (!(sibling instanceof Uint8Array) || sibling.length !== HASH_LEN) return false;
    h = i % 2 === 0 ? nodeDigest(h, sibling) : nodeDigest(sibling, h);
    i = Math.floor(i / 2);
  }
  let diff = 0;
  for (let j = 0; j < HASH_LEN; j++) diff |= h[j] ^ root[j];
  return diff === 0;
}
