/**
 * SHA-256 and Shoal's domain-separated ("tagged") hash.
 *
 * taggedHash(tag, ...parts) = SHA-256( netstring(tag) || netstring(part1) || ... )
 * where netstring(x) = ASCII decimal length of x, ":", x, ",".
 * Every use of a hash in Shoal has its own tag (see TAGS and docs/crypto.md),
 * so no value computed in one context can be replayed in another, and the
 * netstring framing makes the split between parts unambiguous.
 *
 * SHA-256 comes from node:crypto's synchronous implementation (pure
 * computation, no I/O), which is about twice as fast as Web Crypto's
 * asynchronous digest for the small inputs hash trees are made of.
 */
import { createHash } from "node:crypto";
import { utf8 } from "../codec/bytes.ts";

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function netstringHeader(length: number): Uint8Array {
  return utf8(`${length}:`);
}
const COMMA = utf8(",");

/** Domain-separated hash; `tag` must be one of TAGS (or a test tag). */
export function taggedHash(tag: string, ...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  const t = utf8(tag);
  h.update(netstringHeader(t.length));
  h.update(t);
  h.update(COMMA);
  for (const p of parts) {
    h.update(netstringHeader(p.length));
    h.update(p);
    h.update(COMMA);
  }
  return new Uint8Array(h.digest());
}

/** Incremental tagged hash over one long part whose length is known up front. */
export class TaggedHasher {
  #h = createHash("sha256");
  #remaining: number;
  constructor(tag: string, length: number) {
    const t = utf8(tag);
    this.#h.update(netstringHeader(t.length));
    this.#h.update(t);
    this.#h.update(COMMA);
    this.#h.update(netstringHeader(length));
    this.#remaining = length;
  }
  update(chunk: Uint8Array): this {
    if (chunk.length > this.#remaining) {
      throw new RangeError("TaggedHasher: more data than declared");
    }
    this.#remaining -= chunk.length;
    this.#h.update(chunk);
    return this;
  }
  digest(): Uint8Array {
    if (this.#remaining !== 0) throw new RangeError("TaggedHasher: less data than declared");
    this.#h.update(COMMA);
    return new Uint8Array(this.#h.digest());
  }
}

/**
 * Every tag Shoal's crypto core defines. Each hash use has exactly one tag, and
 * no two tags are equal, so a value computed in one context can never be
 * accepted in another. docs/crypto.md §3 says what each one hashes.
 * Other layers keep their own tags in the same `shoal:v1:` namespace (for
 * example lib/grid/tags.ts) and MUST NOT reuse any of these strings.
 */
export const TAGS = Object.freeze(
  {
    // mutable-object key derivation (docs/crypto.md §5)
    writekey: "shoal:v1:writekey",
    readkey: "shoal:v1:readkey",
    storageIndex: "shoal:v1:storage-index",
    fingerprint: "shoal:v1:fingerprint",
    writeEnablerMaster: "shoal:v1:write-enabler-master",
    writeEnabler: "shoal:v1:write-enabler",
    slotCreation: "shoal:v1:slot-creation",
    mutableDataKey: "shoal:v1:mutable-data-key",
    // immutable objects
    immutableStorageIndex: "shoal:v1:immutable-storage-index",
    convergence: "shoal:v1:convergence",
    // leases
    leaseRenew: "shoal:v1:lease-renew",
    leaseCancel: "shoal:v1:lease-cancel",
    // immutable uploads: the per-server upload secret
    uploadSecret: "shoal:v1:upload-secret",
    // hash trees and the hashes that become their leaves
    hashTreeNode: "shoal:v1:hash-tree-node",
    hashTreeEmpty: "shoal:v1:hash-tree-empty",
    blockHash: "shoal:v1:block-hash",
    shareHash: "shoal:v1:share-hash",
    segmentHash: "shoal:v1:segment-hash",
    uebHash: "shoal:v1:ueb-hash",
    // directories
    dirEntryKey: "shoal:v1:dir-entry-key",
    dirWritecapMac: "shoal:v1:dir-writecap-mac",
  } as const,
);

export type TagName = keyof typeof TAGS;
