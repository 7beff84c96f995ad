/**
 * Slot watches (docs/storage-protocol.md "Slot watches"): a client registers a
 * set of mutable storage indexes under a content-addressed watch id (WID) and
 * polls a digest of their checkstrings; a poll with `expect` and `wait` is a
 * long poll that answers as soon as a mutable write moves the digest away
 * from `expect`, or after `wait` seconds.
 *
 * watchId() and watchDigest() are pure and shared by client and server;
 * WatchHub is the server side: bounded in-memory watch sets (LRU), a per-slot
 * cache of digest contributions invalidated by the store's write listener,
 * and the waiting polls.
 */
import { base32Encode, bytesEqual, concatBytes, toHex, u32be } from "../codec/mod.ts";
import { sha256, taggedHash } from "../crypto/mod.ts";
import {
  MAX_WATCH_WAIT,
  STORAGE_INDEX_BYTES,
  WATCH_CHECKSTRING_BYTES,
  WATCH_ID_BYTES,
  WATCH_ID_TAG,
} from "./protocol.ts";
import { type ShareStore, StoreError } from "./store.ts";

/** The watch id of a list of storage indexes: base32 (26 characters) of 16 bytes. */
export function watchId(storageIndexes: Uint8Array[]): string {
  for (const si of storageIndexes) {
    if (!(si instanceof Uint8Array) || si.length !== STORAGE_INDEX_BYTES) {
      throw new TypeError(`a storage index must be ${STORAGE_INDEX_BYTES} bytes`);
    }
  }
  const h = taggedHash(WATCH_ID_TAG, concatBytes(...storageIndexes));
  return base32Encode(h.subarray(0, WATCH_ID_BYTES));
}

/**
 * The digest of a watch set, from each slot's share checkstrings (in share
 * number order; each cut to WATCH_CHECKSTRING_BYTES): SHA-256 over, per slot,
 * u32be(count) || checkstrings.
 */
export function watchDigest(slots: Uint8Array[][]): Uint8Array {
  return sha256(...slots.map(slotContribution));
}

function slotContribution(checkstrings: Uint8Array[]): Uint8Array {
  return concatBytes(
    u32be(checkstrings.length),
    ...checkstrings.map((c) => c.subarray(0, WATCH_CHECKSTRING_BYTES)),
  );
}

export interface WatchHubOptions {
  /** Most watch sets held (least recently used dropped first). Default 10,000. */
  maxSets?: number;
  /** Most storage indexes over all held sets. Default 1,000,000. */
  maxSlots?: number;
  /** Most polls waiting at once; more are answered at once. Default 10,000. */
  maxWaiting?: number;
  /** Most slot contributions cached. Default 100,000. */
  maxCachedSlots?: number;
}

interface Waiter {
  expect: Uint8Array;
  resolve: (digest: Uint8Array) => void;
}

interface WatchSet {
  wid: string;
  sis: Uint8Array[];
  keys: string[];
  digest: Uint8Array | null;
  waiters: Set<Waiter>;
}

export class WatchHub {
  readonly store: ShareStore;
  readonly maxSets: number;
  readonly maxSlots: number;
  readonly maxWaiting: number;
  readonly maxCachedSlots: number;
  /** Insertion order is recency: a use deletes and re-inserts. */
  #sets = new Map<string, WatchSet>();
  #bySlot = new Map<string, Set<string>>();
  #slotCache = new Map<string, Uint8Array>();
  /** Per-slot write generation: a contribution read before a write is never cached after it. */
  #gen = new Map<string, number>();
  #totalSlots = 0;
  #waiting = 0;
  #closed = false;
  #unlisten: () => void;

  constructor(store: ShareStore, opts: WatchHubOptions = {}) {
    this.store = store;
    this.maxSets = opts.maxSets ?? 10_000;
    this.maxSlots = opts.maxSlots ?? 1_000_000;
    this.maxWaiting = opts.maxWaiting ?? 10_000;
    this.maxCachedSlots = opts.maxCachedSlots ?? 100_000;
    this.#unlisten = store.addMutableWriteListener((si) => this.#onWrite(si));
  }

  /** Watch sets currently held (for tests and diagnostics). */
  get size(): number {
    return this.#sets.size;
  }

  /** Polls currently waiting. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Register (or touch) a watch set; `wid` must be watchId(storageIndexes). Returns its digest. */
  async register(wid: string, storageIndexes: Uint8Array[]): Promise<Uint8Array> {
    if (storageIndexes.length === 0) {
      throw new StoreError(400, "bad-request", "a watch needs at least one storage index");
    }
    const keys = storageIndexes.map(toHex);
    if (new Set(keys).size !== keys.length) {
      throw new StoreError(400, "bad-request", "storageIndexes contains duplicates");
    }
    if (watchId(storageIndexes) !== wid) {
      throw new StoreError(
        400,
        "watch-id-mismatch",
        "the watch id is not the watch-id hash of these storage indexes; compute it as documented",
      );
    }
    if (storageIndexes.length > this.maxSlots) {
      throw new StoreError(
        413,
        "too-many-slots",
        `a watch may hold at most ${this.maxSlots} slots`,
      );
    }
    let set = this.#sets.get(wid);
    if (set) {
      this.#touch(set);
    } else {
      set = { wid, sis: storageIndexes, keys, digest: null, waiters: new Set() };
      this.#sets.set(wid, set);
      this.#totalSlots += keys.length;
      for (const k of keys) {
        let s = this.#bySlot.get(k);
        if (!s) this.#bySlot.set(k, s = new Set());
        s.add(wid);
      }
      this.#evict(set);
    }
    return await this.#digest(set);
  }

  /**
   * The digest of watch `wid`: at once when it differs from `expect` (or no
   * expect, or wait 0), else when a write makes it differ or after `wait`
   * seconds. 404 unknown-watch when this server does not hold `wid`.
   */
  async poll(
    wid: string,
    expect: Uint8Array | null,
    waitSeconds: number,
    signal?: AbortSignal,
  ): Promise<Uint8Array> {
    if (!(waitSeconds >= 0 && waitSeconds <= MAX_WATCH_WAIT)) {
      throw new StoreError(400, "bad-request", `wait must be 0..${MAX_WATCH_WAIT} seconds`);
    }
    const set = this.#sets.get(wid);
    if (!set) {
      throw new StoreError(
        404,
        "unknown-watch",
        "this server holds no such watch (restarted or evicted); register it again with PUT",
      );
    }
    this.#touch(set);
    const digest = await this.#digest(set);
    if (
      expect === null || waitSeconds === 0 || !bytesEqual(digest, expect) || this.#closed ||
      this.#waiting >= this.maxWaiting || signal?.aborted
    ) {
      return digest;
    }
    return await new Promise<Uint8Array>((resolve) => {
      const w: Waiter = {
        expect,
        resolve: (d) => {
          if (!set.waiters.delete(w)) return;
          this.#waiting--;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          resolve(d);
        },
      };
      const finish = () => {
        if (!set.waiters.has(w)) return;
        this.#digest(set).then(w.resolve, () => w.resolve(digest));
      };
      const onAbort = () => finish();
      set.waiters.add(w);
      this.#waiting++;
      const timer = setTimeout(finish, waitSeconds * 1000);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** End every waiting poll (answering with the current digest) and stop listening to the store. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unlisten();
    for (const set of this.#sets.values()) {
      for (const w of [...set.waiters]) w.resolve(set.digest ?? w.expect);
    }
  }

  #touch(set: WatchSet): void {
    this.#sets.delete(set.wid);
    this.#sets.set(set.wid, set);
  }

  /** Drop least recently used sets (never `keep`) until within the limits. */
  #evict(keep: WatchSet): void {
    for (const set of this.#sets.values()) {
      if (this.#sets.size <= this.maxSets && this.#totalSlots <= this.maxSlots) return;
      if (set === keep) continue;
      this.#drop(set);
    }
  }

  #drop(set: WatchSet): void {
    this.#sets.delete(set.wid);
    this.#totalSlots -= set.keys.length;
    for (const k of set.keys) {
      const s = this.#bySlot.get(k);
      s?.delete(set.wid);
      if (s && s.size === 0) {
        this.#bySlot.delete(k);
        this.#slotCache.delete(k);
        this.#gen.delete(k);
      }
    }
    // Its waiting polls answer now (with what they expected: no change was seen).
    for (const w of [...set.waiters]) w.resolve(set.digest ?? w.expect);
  }

  #onWrite(si: Uint8Array): void {
    const k = toHex(si);
    const wids = this.#bySlot.get(k);
    if (!wids) return;
    this.#slotCache.delete(k);
    this.#gen.set(k, (this.#gen.get(k) ?? 0) + 1);
    for (const wid of wids) {
      const set = this.#sets.get(wid);
      if (!set) continue;
      set.digest = null;
      if (set.waiters.size === 0) continue;
      this.#digest(set).then((d) => {
        for (const w of [...set.waiters]) if (!bytesEqual(d, w.expect)) w.resolve(d);
      }, () => {});
    }
  }

  async #digest(set: WatchSet): Promise<Uint8Array> {
    if (set.digest) return set.digest;
    const gens = set.keys.map((k) => this.#gen.get(k) ?? 0);
    const parts: Uint8Array[] = new Array(set.keys.length);
    const missing: number[] = [];
    set.keys.forEach((k, i) => {
      const c = this.#slotCache.get(k);
      if (c) parts[i] = c;
      else missing.push(i);
    });
    for (let i = 0; i < missing.length; i += 1024) {
      const idx = missing.slice(i, i + 1024);
      const res = await this.store.batchRead({
        slots: idx.map((j) => ({
          storageIndex: set.sis[j],
          shares: null,
          ranges: [{ offset: 0, size: WATCH_CHECKSTRING_BYTES }],
        })),
      }, Number.MAX_SAFE_INTEGER);
      res.slots.forEach((slot, n) => {
        const j = idx[n];
        const c = slotContribution(slot.shares.map((sh) => sh.data[0] ?? new Uint8Array(0)));
        parts[j] = c;
        const k = set.keys[j];
        if ((this.#gen.get(k) ?? 0) === gens[j] && this.#bySlot.has(k)) {
          if (this.#slotCache.size >= this.maxCachedSlots) this.#slotCache.clear();
          this.#slotCache.set(k, c);
        }
      });
    }
    const digest = sha256(...parts);
    // Cache the set's digest only when no member slot was written meanwhile.
    if (set.keys.every((k, i) => (this.#gen.get(k) ?? 0) === gens[i]) && this.#sets.has(set.wid)) {
      set.digest = digest;
    }
    return digest;
  }
}
