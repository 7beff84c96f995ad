/**
 * The on-disk share store of a storage server (docs/storage-node.md).
 *
 * Layout under the store root (normally `D/storage/`):
 *
 *   immutable/<aa>/<si>/<shnum>   complete immutable shares (aa = first 2 chars of si)
 *   immutable/<aa>/<si>/meta.cbor leases of that storage index
 *   mutable/<aa>/<si>/<shnum>     mutable shares (slot)
 *   mutable/<aa>/<si>/meta.cbor   write-enabler hash and leases of the slot
 *   incoming/<si>.<shnum>         immutable shares being uploaded (dropped at startup, and
 *                                 after incomingTimeout without data)
 *   tmp/                          temporary files for atomic replacement (emptied at startup)
 *   corruption.log                corruption reports, one JSON object a line
 *
 * `si` is the lowercase base32 of the 16-byte storage index and `shnum` the
 * canonical decimal share number, both re-encoded from parsed values, so
 * nothing from a request ever becomes a path component as given.
 *
 * Durability: every persistent change is written to a temporary file, fsynced,
 * renamed into place, and the directory fsynced, before it is acknowledged.
 * meta.cbor is always written before the shares it covers, so a share on
 * disk always has lease metadata.
 */
import { statfs } from "node:fs/promises";
import { base32Decode, base32Encode, bytesEqual, decodeCbor, encodeCbor } from "../codec/mod.ts";
import { sha256 } from "../crypto/mod.ts";
import { ShareIndex } from "./share_index.ts";
import {
  type AllocateResponse,
  type BatchReadRequest,
  type BatchReadResponse,
  MAX_SHARE_NUMBER,
  type ReadTestWriteRequest,
  type ReadTestWriteResponse,
  type UploadResponse,
} from "./protocol.ts";

/** A refusal with an HTTP status and a stable error code (see ErrorBody). */
export class StoreError extends Error {
  override name = "StoreError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export type ShareKind = "immutable" | "mutable";

/** What a garbage-collection pass may delete (docs/storage-node.md §5). */
export interface GcOptions {
  /** false: never delete shares for expired leases (only idle incoming uploads). Default true. */
  expire?: boolean;
  /** ms since the epoch: leases expiring at or before this count as expired too (cutoff-date mode). */
  expiredBefore?: number;
}

export interface StoreOptions {
  /** Store root directory (created if missing). */
  root: string;
  /** Bytes of free disk space that allocations must leave untouched. */
  reservedSpace?: number;
  /** Largest share accepted, in bytes. */
  maxShareSize?: number;
  /** Lease duration in seconds. */
  leaseDuration?: number;
  /**
   * Most leases kept per storage index. A new lease on a full table replaces
   * the one expiring soonest (expired ones are pruned first): a full table
   * never refuses a write and never shortens how long the shares are kept.
   */
  maxLeasesPerIndex?: number;
  /**
   * An upload that receives no data for this many seconds (with no request in
   * flight) is dropped by expireUploads() and gc(); an allocation under another
   * upload secret takes it over after min(UPLOAD_TAKEOVER, half of this).
   */
  incomingTimeout?: number;
  /** Most uploads in progress at once (each an in-memory record and a file in incoming/). */
  maxUploads?: number;
  /** Clock in milliseconds since the epoch (tests inject one). */
  now?: () => number;
  /** Most storage indexes held in the batch-list index (share_index.ts DEFAULT_MAX_INDEXED). */
  maxIndexedStorageIndexes?: number;
}

export const DEFAULT_MAX_SHARE_SIZE = 128 * 1024 ** 3;
export const DEFAULT_LEASE_DURATION = 31 * 24 * 3600;
export const DEFAULT_MAX_LEASES = 1000;
export const DEFAULT_INCOMING_TIMEOUT = 5 * 60;
export const DEFAULT_MAX_UPLOADS = 10_000;
/** Seconds without data after which another upload secret may take an upload over. */
export const UPLOAD_TAKEOVER = 30;

export interface Lease {
  renewHash: Uint8Array;
  cancelHash: Uint8Array;
  /** Milliseconds since the epoch. */
  expiry: number;
}

/** ShareStore.usage(): what the store holds. */
export interface StoreUsage {
  immutable: { indexes: number; shares: number; bytes: number };
  mutable: { indexes: number; shares: number; bytes: number };
  /** Unexpired leases over all storage indexes. */
  leases: number;
  /** Immutable uploads allocated and not yet complete. */
  uploads: number;
}

interface Meta {
  writeEnablerHash: Uint8Array | null;
  leases: Lease[];
}

export interface LeaseSecrets {
  renew: Uint8Array;
  cancel: Uint8Array;
}

interface Upload {
  si: Uint8Array;
  shnum: number;
  uploadHash: Uint8Array;
  size: number;
  /** Received ranges [begin, end), sorted and merged. */
  ranges: [number, number][];
  path: string;
  lease: LeaseSecrets;
  lastActivity: number;
  inflight: number;
  finishing: boolean;
}

export interface RtwOptions {
  /**
   * Most bytes the read vector may return (plus 16 per range); more is refused
   * with 413 response-too-large before a byte is read. Default: unbounded.
   */
  maxResponseBytes?: number;
  /**
   * Called (under the slot's lock) before a call creates the slot, with the
   * SHA-256 of the write enabler the slot would get; throws to refuse. The
   * storage handler checks the slot-creation proof here.
   */
  authorizeCreate?: (writeEnablerHash: Uint8Array) => Promise<void>;
}

export interface OpenShare {
  file: Deno.FsFile;
  size: number;
}

const META = "meta.cbor";
const SHARE_NAME = /^(0|[1-9][0-9]*)$/;

export function siString(si: Uint8Array): string {
  if (si.length !== 16) {
    throw new StoreError(400, "bad-storage-index", "storage index must be 16 bytes");
  }
  return base32Encode(si);
}

function checkShnum(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n >= MAX_SHARE_NUMBER) {
    throw new StoreError(
      400,
      "bad-share-number",
      `share number must be an integer 0..${MAX_SHARE_NUMBER - 1}`,
    );
  }
}

/*
 * Small metadata and read operations use Deno's synchronous file API: each is
 * a few microseconds, while an asynchronous op pays a thread-pool round trip
 * that dominated small-request latency. fsync stays asynchronous so other
 * requests proceed while the disk flushes.
 */

/** Cached slot metadata is checked against its file at most this often. */
const META_RECHECK_MS = 1000;

/** Most entries kept in each of the store's in-memory caches. */
const CACHE_ENTRIES = 8192;

/** Set `key` in `map`, dropping the oldest entry when the map is full. */
function boundedSet<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  if (map.size >= CACHE_ENTRIES) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

function cloneMeta(m: Meta): Meta {
  return { writeEnablerHash: m.writeEnablerHash, leases: m.leases.map((l) => ({ ...l })) };
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const d = Deno.openSync(path, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

/** Read up to `size` bytes at `offset` (fewer at the end of the file). */
function readAt(file: Deno.FsFile, fileSize: number, offset: number, size: number): Uint8Array {
  if (offset >= fileSize || size <= 0) return new Uint8Array(0);
  const n = Math.min(size, fileSize - offset);
  const out = new Uint8Array(n);
  file.seekSync(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const r = file.readSync(out.subarray(got));
    if (r === null || r === 0) break;
    got += r;
  }
  return got === n ? out : out.subarray(0, got);
}

function encodeMeta(m: Meta): Uint8Array {
  return encodeCbor({
    version: 1,
    writeEnablerHash: m.writeEnablerHash,
    leases: m.leases.map((l) => ({ renew: l.renewHash, cancel: l.cancelHash, expiry: l.expiry })),
  });
}

function decodeMeta(bytes: Uint8Array, path: string): Meta {
  const bad = () => new Error(`corrupt lease metadata file ${path}`);
  const v = decodeCbor(bytes) as Record<string, unknown>;
  if (typeof v !== "object" || v === null || v.version !== 1 || !Array.isArray(v.leases)) {
    throw bad();
  }
  const weh = v.writeEnablerHash;
  if (weh !== null && !(weh instanceof Uint8Array && weh.length === 32)) throw bad();
  const leases: Lease[] = [];
  for (const l of v.leases as Record<string, unknown>[]) {
    if (
      typeof l !== "object" || l === null || !(l.renew instanceof Uint8Array) ||
      !(l.cancel instanceof Uint8Array) || !Number.isSafeInteger(l.expiry)
    ) throw bad();
    leases.push({ renewHash: l.renew, cancelHash: l.cancel, expiry: l.expiry as number });
  }
  return { writeEnablerHash: weh as Uint8Array | null, leases };
}

/** Merge [b, e) into sorted disjoint ranges. */
function addRange(ranges: [number, number][], b: number, e: number): [number, number][] {
  const out: [number, number][] = [];
  let placed = false;
  for (const [rb, re] of ranges) {
    if (re < b) out.push([rb, re]);
    else if (rb > e) {
      if (!placed) {
        out.push([b, e]);
        placed = true;
      }
      out.push([rb, re]);
    } else {
      b = Math.min(b, rb);
      e = Math.max(e, re);
    }
  }
  if (!placed) out.push([b, e]);
  return out.sort((x, y) => x[0] - y[0]);
}

function missingRanges(ranges: [number, number][], size: number): { begin: number; end: number }[] {
  const out: { begin: number; end: number }[] = [];
  let pos = 0;
  for (const [b, e] of ranges) {
    if (b > pos) out.push({ begin: pos, end: b });
    pos = Math.max(pos, e);
  }
  if (pos < size) out.push({ begin: pos, end: size });
  return out;
}

export class ShareStore {
  readonly root: string;
  readonly reservedSpace: number;
  readonly maxShareSize: number;
  readonly leaseDuration: number;
  readonly maxLeasesPerIndex: number;
  readonly incomingTimeout: number;
  readonly maxUploads: number;
  readonly now: () => number;
  #locks = new Map<string, Promise<unknown>>();
  #uploads = new Map<string, Upload>();
  #tmpCounter = 0;
  /**
   * Decoded metadata by storage-index directory, with the identity (inode,
   * size, mtime) of the file it was read from. This store's own writes drop
   * the entry. A read within META_RECHECK_MS of the last check uses it as is;
   * a later one stats the file and decodes it again only if it is another
   * file (every write replaces it by rename) or gone, so a change made behind
   * the store's back is noticed within that time. Saves a read and a CBOR
   * decode (and mostly the stat) per request.
   */
  #metaCache = new Map<
    string,
    { ino: number | null; size: number; mtime: number; checked: number; meta: Meta }
  >();
  /**
   * Share numbers of mutable slots, for read-test-write's read vector: filled
   * on first use, dropped whenever this store changes the slot. A share file
   * removed behind the store's back stays listed, which is harmless: it is
   * opened before use, and a missing one is skipped.
   */
  #slotShares = new Map<string, number[]>();
  /** Write enabler -> its SHA-256 (the hash is what a slot stores and compares). */
  #weHashes = new Map<string, Uint8Array>();
  #spaceCache: { at: number; bytes: number } | null = null;
  #writeListeners = new Set<(storageIndex: Uint8Array) => void>();
  /** Complete shares per namespace, for batch-list (share_index.ts). */
  #index: ShareIndex;

  private constructor(opts: StoreOptions) {
    this.root = opts.root;
    this.reservedSpace = opts.reservedSpace ?? 0;
    this.maxShareSize = opts.maxShareSize ?? DEFAULT_MAX_SHARE_SIZE;
    this.leaseDuration = opts.leaseDuration ?? DEFAULT_LEASE_DURATION;
    this.maxLeasesPerIndex = opts.maxLeasesPerIndex ?? DEFAULT_MAX_LEASES;
    this.incomingTimeout = opts.incomingTimeout ?? DEFAULT_INCOMING_TIMEOUT;
    this.maxUploads = opts.maxUploads ?? DEFAULT_MAX_UPLOADS;
    this.now = opts.now ?? Date.now;
    this.#index = new ShareIndex({
      root: this.root,
      listShares: (dir) => this.#listShares(dir),
      maxEntries: opts.maxIndexedStorageIndexes,
    });
  }

  /** Open (creating if needed) a store; drops partial uploads and temp files left by a crash. */
  static async open(opts: StoreOptions): Promise<ShareStore> {
    const s = new ShareStore(opts);
    await Deno.mkdir(s.root, { recursive: true });
    for (const sub of ["incoming", "tmp"]) {
      await Deno.remove(`${s.root}/${sub}`, { recursive: true }).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
      await Deno.mkdir(`${s.root}/${sub}`, { recursive: true });
    }
    for (const sub of ["immutable", "mutable"]) {
      await Deno.mkdir(`${s.root}/${sub}`, { recursive: true });
    }
    await fsyncDir(s.root);
    return s;
  }

  /**
   * Call `fn` after every mutable slot change (a successful write or delete, and
   * garbage collection of the slot) with the slot's storage index. Slot watches
   * and the node's discovery (a new grid service directory) listen here.
   * Returns a function that removes the listener.
   */
  addMutableWriteListener(fn: (storageIndex: Uint8Array) => void): () => void {
    this.#writeListeners.add(fn);
    return () => this.removeMutableWriteListener(fn);
  }

  removeMutableWriteListener(fn: (storageIndex: Uint8Array) => void): void {
    this.#writeListeners.delete(fn);
  }

  #notifyMutableWrite(si: Uint8Array): void {
    for (const fn of [...this.#writeListeners]) {
      try {
        fn(si);
      } catch { /* a listener's failure must not fail the write */ }
    }
  }

  // ---- helpers -------------------------------------------------------------

  async #withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(() => {}, () => {});
    this.#locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    }
  }

  #siDir(kind: ShareKind, si: Uint8Array): string {
    const s = siString(si);
    return `${this.root}/${kind}/${s.slice(0, 2)}/${s}`;
  }

  #tmpPath(): string {
    return `${this.root}/tmp/${Date.now().toString(36)}-${(this.#tmpCounter++).toString(36)}`;
  }

  /** Create `dir` (and its prefix directory), fsyncing each parent that gained an entry. */
  async #ensureDir(dir: string): Promise<void> {
    if (exists(dir)) return;
    const parent = dir.slice(0, dir.lastIndexOf("/"));
    if (!(exists(parent))) {
      await Deno.mkdir(parent, { recursive: true });
      await fsyncDir(parent.slice(0, parent.lastIndexOf("/")));
    }
    await Deno.mkdir(dir, { recursive: true });
    await fsyncDir(parent);
  }

  /** Atomically replace `path` with `data` (tmp, fsync, rename); the caller fsyncs the directory. */
  async #atomicWrite(path: string, data: Uint8Array): Promise<void> {
    this.#forget(path.slice(0, path.lastIndexOf("/")));
    const tmp = this.#tmpPath();
    const f = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    try {
      writeAll(f, data);
      await f.sync();
    } finally {
      f.close();
    }
    Deno.renameSync(tmp, path);
  }

  #readMeta(dir: string): Meta | null {
    const path = `${dir}/${META}`;
    let st: Deno.FileInfo;
    let bytes: Uint8Array;
    try {
      const hit = this.#metaCache.get(dir);
      const now = performance.now();
      // Checked against the file at most every META_RECHECK_MS (a stat costs ~10 µs per request).
      if (hit && now - hit.checked < META_RECHECK_MS) return cloneMeta(hit.meta);
      st = Deno.lstatSync(path);
      if (
        hit && st.ino !== null && hit.ino === st.ino && hit.size === st.size &&
        hit.mtime === (st.mtime?.getTime() ?? -1)
      ) {
        hit.checked = now;
        return cloneMeta(hit.meta);
      }
      bytes = Deno.readFileSync(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        this.#metaCache.delete(dir);
        return null;
      }
      throw e;
    }
    const meta = decodeMeta(bytes, path);
    if (bytes.length === st.size) {
      boundedSet(this.#metaCache, dir, {
        ino: st.ino,
        size: st.size,
        mtime: st.mtime?.getTime() ?? -1,
        checked: performance.now(),
        meta: cloneMeta(meta),
      });
    }
    return meta;
  }

  /** SHA-256 of a write enabler, remembered for the write enablers seen lately. */
  #writeEnablerHash(we: Uint8Array): Uint8Array {
    const key = String.fromCharCode(...we);
    let h = this.#weHashes.get(key);
    if (!h) {
      h = sha256(we);
      boundedSet(this.#weHashes, key, h);
    }
    return h;
  }

  /** Forget what is cached about the storage-index directory `dir`. */
  #forget(dir: string): void {
    this.#metaCache.delete(dir);
    this.#slotShares.delete(dir);
  }

  /** The share numbers of the mutable slot `dir` (see #slotShares). */
  #slotShareList(dir: string): number[] {
    let list = this.#slotShares.get(dir);
    if (!list) {
      list = this.#listShares(dir);
      boundedSet(this.#slotShares, dir, list);
    }
    return list;
  }

  /** Add or renew a lease in `meta`; returns whether meta changed enough to be worth writing. */
  #applyLease(meta: Meta, secrets: LeaseSecrets): boolean {
    const now = this.now();
    const durMs = this.leaseDuration * 1000;
    const expiry = now + durMs;
    const renewHash = sha256(secrets.renew);
    const found = meta.leases.find((l) => bytesEqual(l.renewHash, renewHash));
    if (found) {
      // Skip the disk write when the lease would move by under 1% of its duration.
      if (expiry - found.expiry < durMs / 100) return false;
      found.expiry = expiry;
      return true;
    }
    meta.leases = meta.leases.filter((l) => l.expiry > now);
    if (meta.leases.length >= this.maxLeasesPerIndex) {
      // Full: drop the leases expiring soonest. The new one outlives each of them,
      // so the latest expiry (how long the shares are kept) never goes down.
      meta.leases.sort((a, b) => b.expiry - a.expiry);
      meta.leases.length = Math.max(0, this.maxLeasesPerIndex - 1);
    }
    meta.leases.push({ renewHash, cancelHash: sha256(secrets.cancel), expiry });
    return true;
  }

  #listShares(dir: string): number[] {
    const out: number[] = [];
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isFile && SHARE_NAME.test(e.name)) out.push(Number(e.name));
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    return out.sort((a, b) => a - b);
  }

  #statSize(path: string): number | null {
    try {
      return Deno.statSync(path).size;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  /** Free bytes on the store's file system available to this process (statfs, uncached). */
  async freeDiskSpace(): Promise<number> {
    const s = await statfs(this.root);
    return Number(s.bavail) * Number(s.bsize);
  }

  /** Free bytes the store may still use: disk space available minus reserved space and pending uploads. */
  async availableSpace(): Promise<number> {
    const t = Date.now();
    if (!this.#spaceCache || t - this.#spaceCache.at > 500) {
      const s = await statfs(this.root);
      this.#spaceCache = { at: t, bytes: Number(s.bavail) * Number(s.bsize) };
    }
    let pending = 0;
    for (const u of this.#uploads.values()) {
      let got = 0;
      for (const [b, e] of u.ranges) got += e - b;
      pending += u.size - got;
    }
    return Math.max(0, this.#spaceCache.bytes - this.reservedSpace - pending);
  }

  async #requireSpace(bytes: number): Promise<void> {
    if (bytes <= 0) return;
    const avail = await this.availableSpace();
    if (bytes > avail) {
      throw new StoreError(
        507,
        "insufficient-space",
        `this server cannot accept ${bytes} more bytes (available after reserved space: ${avail})`,
      );
    }
    if (this.#spaceCache) this.#spaceCache.bytes -= bytes;
  }

  // ---- immutable shares ----------------------------------------------------

  async allocate(
    si: Uint8Array,
    secrets: { upload: Uint8Array } & LeaseSecrets,
    shareNumbers: number[],
    allocatedSize: number,
  ): Promise<AllocateResponse> {
    shareNumbers.forEach(checkShnum);
    if (new Set(shareNumbers).size !== shareNumbers.length) {
      throw new StoreError(400, "bad-request", "shareNumbers contains duplicates");
    }
    if (
      !Number.isSafeInteger(allocatedSize) || allocatedSize < 1 || allocatedSize > this.maxShareSize
    ) {
      throw new StoreError(
        allocatedSize > this.maxShareSize ? 413 : 400,
        "bad-share-size",
        `allocatedSize must be 1..${this.maxShareSize} bytes`,
      );
    }
    const sis = siString(si);
    const dir = this.#siDir("immutable", si);
    const uploadHash = sha256(secrets.upload);
    return await this.#withLock(`immutable:${sis}`, async () => {
      const have = new Set(this.#listShares(dir));
      const alreadyHave = shareNumbers.filter((n) => have.has(n)).sort((a, b) => a - b);
      const allocated: number[] = [];
      const fresh: number[] = [];
      const takeoverMs = Math.min(UPLOAD_TAKEOVER, this.incomingTimeout / 2) * 1000;
      const replaced: Upload[] = [];
      for (const n of shareNumbers) {
        if (have.has(n)) continue;
        const u = this.#uploads.get(`${sis}.${n}`);
        if (!u) fresh.push(n);
        else if (
          !bytesEqual(u.uploadHash, uploadHash) && u.inflight === 0 && !u.finishing &&
          this.now() - u.lastActivity >= takeoverMs
        ) {
          // An earlier attempt that stopped sending (a retry after Ctrl-C uses a new secret).
          replaced.push(u);
          fresh.push(n);
        } else if (bytesEqual(u.uploadHash, uploadHash)) {
          if (u.size !== allocatedSize) {
            throw new StoreError(
              409,
              "conflict",
              `share ${n} is being uploaded with a different size`,
            );
          }
          allocated.push(n);
        }
        // An upload of share n under another upload secret: neither held nor allocated.
      }
      for (const u of replaced) {
        this.#uploads.delete(`${sis}.${u.shnum}`);
        await Deno.remove(u.path).catch(() => {});
      }
      if (this.#uploads.size + fresh.length > this.maxUploads) {
        throw new StoreError(
          507,
          "too-many-uploads",
          `this server has ${this.#uploads.size} uploads in progress (at most ${this.maxUploads}); retry later`,
        );
      }
      await this.#requireSpace(fresh.length * allocatedSize);
      for (const n of fresh) {
        const path = `${this.root}/incoming/${sis}.${n}`;
        const f = await Deno.open(path, { write: true, create: true, truncate: true });
        f.close();
        this.#uploads.set(`${sis}.${n}`, {
          si: si.slice(),
          shnum: n,
          uploadHash,
          size: allocatedSize,
          ranges: [],
          path,
          lease: { renew: secrets.renew.slice(), cancel: secrets.cancel.slice() },
          lastActivity: this.now(),
          inflight: 0,
          finishing: false,
        });
        allocated.push(n);
      }
      if (alreadyHave.length > 0) {
        const meta = this.#readMeta(dir) ?? { writeEnablerHash: null, leases: [] };
        if (this.#applyLease(meta, secrets)) {
          await this.#atomicWrite(`${dir}/${META}`, encodeMeta(meta));
          await fsyncDir(dir);
        }
      }
      return { alreadyHave, allocated: allocated.sort((a, b) => a - b) };
    });
  }

  #upload(si: Uint8Array, shnum: number, uploadSecret: Uint8Array): Upload {
    checkShnum(shnum);
    const u = this.#uploads.get(`${siString(si)}.${shnum}`);
    if (!u) {
      throw new StoreError(
        404,
        "no-upload",
        "no upload of this share is in progress; allocate it first",
      );
    }
    if (!bytesEqual(u.uploadHash, sha256(uploadSecret))) {
      throw new StoreError(
        403,
        "bad-upload-secret",
        "the upload secret does not match this upload",
      );
    }
    return u;
  }

  /**
   * Write `length` bytes at `offset` of an incoming share from `body`. The share
   * moves into place (durably) when every byte has been received.
   */
  async writeImmutable(
    si: Uint8Array,
    shnum: number,
    uploadSecret: Uint8Array,
    offset: number,
    length: number,
    body: AsyncIterable<Uint8Array> | Uint8Array,
  ): Promise<UploadResponse & { complete: boolean }> {
    const u = this.#upload(si, shnum, uploadSecret);
    if (u.finishing) return { required: [], complete: true };
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > u.size) {
      throw new StoreError(
        416,
        "bad-range",
        `range ${offset}+${length} does not fit the allocated size ${u.size}`,
      );
    }
    u.inflight++;
    u.lastActivity = this.now();
    let written = 0;
    try {
      const f = Deno.openSync(u.path, { write: true });
      try {
        f.seekSync(offset, Deno.SeekMode.Start);
        const chunks = body instanceof Uint8Array ? [body] : body;
        for await (const chunk of chunks) {
          if (written + chunk.length > length) {
            throw new StoreError(
              400,
              "body-length-mismatch",
              `body is longer than the ${length} bytes of Content-Range`,
            );
          }
          writeAll(f, chunk);
          written += chunk.length;
        }
      } finally {
        f.close();
      }
      if (written !== length) {
        throw new StoreError(
          400,
          "body-length-mismatch",
          `body has ${written} bytes, Content-Range says ${length}`,
        );
      }
      if (this.#uploads.get(`${siString(si)}.${shnum}`) !== u) {
        throw new StoreError(404, "no-upload", "the upload was aborted");
      }
      if (length > 0) u.ranges = addRange(u.ranges, offset, offset + length);
    } finally {
      u.inflight--;
      u.lastActivity = this.now();
    }
    const required = missingRanges(u.ranges, u.size);
    if (required.length === 0 && u.inflight === 0 && !u.finishing) {
      u.finishing = true;
      await this.#finishUpload(u);
    }
    return { required, complete: required.length === 0 };
  }

  async #finishUpload(u: Upload): Promise<void> {
    const sis = siString(u.si);
    const f = await Deno.open(u.path, { write: true });
    try {
      await f.sync();
    } finally {
      f.close();
    }
    const dir = this.#siDir("immutable", u.si);
    await this.#withLock(`immutable:${sis}`, async () => {
      await this.#ensureDir(dir);
      const meta = this.#readMeta(dir) ?? { writeEnablerHash: null, leases: [] };
      if (this.#applyLease(meta, u.lease) || !(exists(`${dir}/${META}`))) {
        await this.#atomicWrite(`${dir}/${META}`, encodeMeta(meta));
      }
      await Deno.rename(u.path, `${dir}/${u.shnum}`);
      this.#index.refresh("immutable", sis);
      await fsyncDir(dir);
      this.#uploads.delete(`${sis}.${u.shnum}`);
    });
  }

  /** Allocated size of an upload in progress (checks the upload secret). */
  uploadSize(si: Uint8Array, shnum: number, uploadSecret: Uint8Array): Promise<number> {
    return Promise.resolve(this.#upload(si, shnum, uploadSecret).size);
  }

  async abortUpload(si: Uint8Array, shnum: number, uploadSecret: Uint8Array): Promise<void> {
    const u = this.#upload(si, shnum, uploadSecret);
    if (u.finishing) throw new StoreError(409, "conflict", "the upload is already complete");
    this.#uploads.delete(`${siString(si)}.${shnum}`);
    await Deno.remove(u.path).catch(() => {});
  }

  listImmutable(si: Uint8Array): Promise<number[]> {
    return Promise.resolve(this.#listShares(this.#siDir("immutable", si)));
  }

  listMutable(si: Uint8Array): Promise<number[]> {
    return Promise.resolve(this.#listShares(this.#siDir("mutable", si)));
  }

  /**
   * The complete shares of many storage indexes in both namespaces, from the
   * in-memory index (share_index.ts; POST /batch-list). Fills the index as it
   * goes, with at most about two directory reads per storage index asked.
   * `onEntry` sees each entry as it is made and may throw to stop early.
   */
  listMany(
    sis: Uint8Array[],
    onEntry?: (e: { immutable: readonly number[]; mutable: readonly number[] }) => void,
  ): { immutable: readonly number[]; mutable: readonly number[] }[] {
    const budget = this.#index.budget(sis.length);
    return sis.map((si) => {
      const s = siString(si);
      const e = {
        immutable: this.#index.lookup("immutable", s, budget),
        mutable: this.#index.lookup("mutable", s, budget),
      };
      onEntry?.(e);
      return e;
    });
  }

  /** Storage indexes the batch-list index holds (both namespaces; tests and diagnostics). */
  get indexedStorageIndexes(): number {
    return this.#index.size;
  }

  /** Open a complete share for reading; null when absent. The caller closes the file. */
  openShare(kind: ShareKind, si: Uint8Array, shnum: number): OpenShare | null {
    checkShnum(shnum);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(`${this.#siDir(kind, si)}/${shnum}`, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
    try {
      const size = file.statSync().size;
      return { file, size };
    } catch (e) {
      file.close();
      throw e;
    }
  }

  async reportCorruption(
    kind: ShareKind,
    si: Uint8Array,
    shnum: number,
    reason: string,
  ): Promise<void> {
    checkShnum(shnum);
    if (this.#statSize(`${this.#siDir(kind, si)}/${shnum}`) === null) {
      throw new StoreError(404, "not-found", "this server holds no such share");
    }
    const logPath = `${this.root}/corruption.log`;
    const size = this.#statSize(logPath) ?? 0;
    if (size > 10 * 1024 * 1024) return; // bounded: further reports are dropped
    // deno-lint-ignore no-control-regex
    const clean = reason.replace(/[\x00-\x1f\x7f]/g, " ").slice(0, 1000);
    const line = JSON.stringify({
      time: new Date(this.now()).toISOString(),
      kind,
      storageIndex: siString(si),
      share: shnum,
      reason: clean,
    });
    await Deno.writeTextFile(logPath, line + "\n", { append: true, create: true });
  }

  // ---- leases ----------------------------------------------------------------

  /** Add or renew a lease on every share of `si` (both kinds). False when no share is held. */
  async addLease(si: Uint8Array, secrets: LeaseSecrets): Promise<boolean> {
    const sis = siString(si);
    let found = false;
    for (const kind of ["immutable", "mutable"] as const) {
      const dir = this.#siDir(kind, si);
      await this.#withLock(`${kind}:${sis}`, async () => {
        const meta = this.#readMeta(dir);
        if (!meta || this.#listShares(dir).length === 0) return;
        found = true;
        if (this.#applyLease(meta, secrets)) {
          await this.#atomicWrite(`${dir}/${META}`, encodeMeta(meta));
          await fsyncDir(dir);
        }
      });
    }
    return found;
  }

  /** Leases currently recorded for `si` (for tests and inspection). */
  leases(kind: ShareKind, si: Uint8Array): Promise<Lease[]> {
    return Promise.resolve(this.#readMeta(this.#siDir(kind, si))?.leases ?? []);
  }

  /** Drop uploads that received no data for incomingTimeout; returns how many. */
  async expireUploads(): Promise<number> {
    const now = this.now();
    let dropped = 0;
    for (const [key, u] of [...this.#uploads]) {
      if (u.inflight === 0 && !u.finishing && now - u.lastActivity > this.incomingTimeout * 1000) {
        this.#uploads.delete(key);
        await Deno.remove(u.path).catch(() => {});
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * What the store holds, for metrics (docs/metrics.md): storage indexes,
   * shares and bytes per kind, live leases, incoming uploads. A walk of the
   * store's directories (no lock taken: a snapshot that may be a moment old).
   */
  async usage(): Promise<StoreUsage> {
    const now = this.now();
    const u: StoreUsage = {
      immutable: { indexes: 0, shares: 0, bytes: 0 },
      mutable: { indexes: 0, shares: 0, bytes: 0 },
      leases: 0,
      uploads: this.#uploads.size,
    };
    for (const kind of ["immutable", "mutable"] as const) {
      const kindDir = `${this.root}/${kind}`;
      try {
        for await (const p of Deno.readDir(kindDir)) {
          if (!p.isDirectory) continue;
          for await (const s of Deno.readDir(`${kindDir}/${p.name}`)) {
            if (!s.isDirectory || !/^[a-z2-7]{26}$/.test(s.name)) continue;
            const dir = `${kindDir}/${p.name}/${s.name}`;
            const shares = this.#listShares(dir);
            if (shares.length === 0) continue;
            u[kind].indexes++;
            u[kind].shares += shares.length;
            for (const n of shares) u[kind].bytes += this.#statSize(`${dir}/${n}`) ?? 0;
            try {
              u.leases += this.#readMeta(dir)?.leases.filter((l) => l.expiry > now).length ?? 0;
            } catch { /* unreadable metadata: counted by nobody */ }
          }
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    return u;
  }

  /**
   * Garbage collection: delete every storage index whose leases have all
   * expired (or that has no lease metadata), prune expired leases elsewhere,
   * and drop incoming uploads idle longer than incomingTimeout.
   */
  async gc(opts: GcOptions = {}): Promise<{ removed: number }> {
    const now = this.now();
    // A lease counts as expired when its expiry is not after `cutoff` (docs/storage-node.md §5).
    const cutoff = Math.max(now, opts.expiredBefore ?? now);
    let removed = 0;
    await this.expireUploads();
    if (opts.expire === false) return { removed };
    for (const kind of ["immutable", "mutable"] as const) {
      const kindDir = `${this.root}/${kind}`;
      for await (const p of Deno.readDir(kindDir)) {
        if (!p.isDirectory) continue;
        const prefixDir = `${kindDir}/${p.name}`;
        for await (const s of Deno.readDir(prefixDir)) {
          if (!s.isDirectory || !/^[a-z2-7]{26}$/.test(s.name)) continue;
          const dir = `${prefixDir}/${s.name}`;
          await this.#withLock(`${kind}:${s.name}`, async () => {
            let meta: Meta | null;
            try {
              meta = this.#readMeta(dir);
            } catch {
              return; // unreadable metadata: keep the data, an operator must look
            }
            const live = meta?.leases.filter((l) => l.expiry > cutoff) ?? [];
            if (live.length === 0) {
              this.#forget(dir);
              await Deno.remove(dir, { recursive: true }).catch(() => {});
              this.#index.refresh(kind, s.name);
              await fsyncDir(prefixDir);
              removed++;
              if (kind === "mutable") {
                try {
                  this.#notifyMutableWrite(base32Decode(s.name));
                } catch { /* not canonical base32: nothing can watch it */ }
              }
            } else if (meta && live.length < meta.leases.length) {
              meta.leases = live;
              await this.#atomicWrite(`${dir}/${META}`, encodeMeta(meta));
              await fsyncDir(dir);
            }
          });
        }
      }
    }
    return { removed };
  }

  // ---- mutable shares ----------------------------------------------------------

  async readTestWrite(
    si: Uint8Array,
    secrets: { writeEnabler: Uint8Array } & LeaseSecrets,
    req: ReadTestWriteRequest,
    opts: RtwOptions = {},
  ): Promise<ReadTestWriteResponse> {
    const sis = siString(si);
    const seen = new Set<number>();
    for (const tw of req.testWriteVectors) {
      checkShnum(tw.share);
      if (seen.has(tw.share)) {
        throw new StoreError(400, "bad-request", `share ${tw.share} appears twice`);
      }
      seen.add(tw.share);
    }
    const dir = this.#siDir("mutable", si);
    const weHash = this.#writeEnablerHash(secrets.writeEnabler);
    return await this.#withLock(`mutable:${sis}`, async () => {
      let meta = this.#readMeta(dir);
      if (meta?.writeEnablerHash && !bytesEqual(meta.writeEnablerHash, weHash)) {
        throw new StoreError(
          403,
          "bad-write-enabler",
          "the write enabler does not match this slot's",
        );
      }
      // The slot's shares matter only for the read vector; otherwise open just the named ones.
      const existing = req.readVector.length > 0 && meta ? this.#slotShareList(dir) : [];
      const sizes = new Map<number, number>();
      const files = new Map<number, Deno.FsFile>();
      let wrote = false;
      try {
        for (const n of new Set([...existing, ...seen])) {
          const o = this.openShare("mutable", si, n);
          if (o) {
            files.set(n, o.file);
            sizes.set(n, o.size);
          }
        }
        const read = (n: number, offset: number, size: number) => {
          const f = files.get(n);
          return f ? readAt(f, sizes.get(n)!, offset, size) : new Uint8Array(0);
        };
        // What the reads would return, from the shares' sizes, before a byte is read:
        // the response is bounded like a batch read's (16 bytes of accounting a range).
        const maxBytes = opts.maxResponseBytes ?? Infinity;
        let total = 0;
        for (const n of req.readVector.length > 0 ? files.keys() : []) {
          const size = sizes.get(n)!;
          for (const r of req.readVector) {
            total += Math.min(r.size, Math.max(0, size - r.offset)) + 16;
          }
        }
        if (total > maxBytes) {
          throw new StoreError(
            413,
            "response-too-large",
            `the read vector would return ${total} bytes, more than ${maxBytes}; read fewer or smaller ranges`,
          );
        }
        let success = true;
        for (const tw of req.testWriteVectors) {
          for (const t of tw.test) {
            // One byte past the specimen tells a longer range apart: never read more.
            const want = Math.min(t.size, t.specimen.length + 1);
            if (!bytesEqual(read(tw.share, t.offset, want), t.specimen)) success = false;
          }
        }
        const reads: { share: number; data: Uint8Array[] }[] = [];
        if (req.readVector.length > 0) {
          for (const n of [...files.keys()].sort((a, b) => a - b)) {
            const data: Uint8Array[] = [];
            for (const r of req.readVector) data.push(read(n, r.offset, r.size));
            reads.push({ share: n, data });
          }
        }
        const changing = req.testWriteVectors.filter((tw) =>
          tw.write.length > 0 || tw.newLength !== null
        );
        if (!success || changing.length === 0) return { success, reads };

        // Sizes after the writes, limits and space.
        let growth = 0;
        for (const tw of changing) {
          const old = sizes.get(tw.share) ?? 0;
          let size = old;
          for (const w of tw.write) size = Math.max(size, w.offset + w.data.length);
          if (tw.newLength !== null) size = tw.newLength;
          if (size > this.maxShareSize) {
            throw new StoreError(
              413,
              "share-too-large",
              `share ${tw.share} would exceed ${this.maxShareSize} bytes`,
            );
          }
          growth += size - old;
        }
        if (meta === null) await opts.authorizeCreate?.(weHash);
        await this.#requireSpace(growth);

        this.#forget(dir);
        wrote = true;
        const metaNew = meta === null;
        if (!meta) meta = { writeEnablerHash: weHash, leases: [] };
        if (this.#applyLease(meta, secrets) || metaNew) {
          await this.#ensureDir(dir);
          await this.#atomicWrite(`${dir}/${META}`, encodeMeta(meta));
        }
        for (const tw of changing) {
          const path = `${dir}/${tw.share}`;
          if (tw.newLength === 0) {
            if (files.has(tw.share)) await Deno.remove(path);
            continue;
          }
          const tmp = this.#tmpPath();
          const old = sizes.get(tw.share);
          if (old !== undefined) {
            if (old <= 1024 * 1024) Deno.copyFileSync(path, tmp);
            else await Deno.copyFile(path, tmp);
          }
          const f = Deno.openSync(tmp, { write: true, create: true });
          try {
            for (const w of tw.write) {
              f.seekSync(w.offset, Deno.SeekMode.Start);
              writeAll(f, w.data);
            }
            if (tw.newLength !== null) f.truncateSync(tw.newLength);
            await f.sync();
          } finally {
            f.close();
          }
          Deno.renameSync(tmp, path);
        }
        if (
          changing.some((tw) => tw.newLength === 0) && this.#listShares(dir).length === 0
        ) {
          // Every share deleted: the slot (and its write enabler) is gone.
          await Deno.remove(dir, { recursive: true });
          await fsyncDir(dir.slice(0, dir.lastIndexOf("/")));
        } else {
          await fsyncDir(dir);
        }
        this.#notifyMutableWrite(si);
        return { success: true, reads };
      } finally {
        for (const f of files.values()) f.close();
        // After any change to the slot's shares (even one that failed half way).
        if (wrote) this.#index.refresh("mutable", sis);
      }
    });
  }

  /** Read ranges of many slots; throws 413 when the result would exceed `maxBytes`. */
  async batchRead(req: BatchReadRequest, maxBytes: number): Promise<BatchReadResponse> {
    let total = 0;
    const slots: BatchReadResponse["slots"] = [];
    for (const slot of req.slots) {
      const shareNums = slot.shares ?? (await this.listMutable(slot.storageIndex));
      const shares: { share: number; data: Uint8Array[] }[] = [];
      for (const n of shareNums) {
        const o = this.openShare("mutable", slot.storageIndex, n);
        if (!o) continue;
        try {
          const data: Uint8Array[] = [];
          for (const r of slot.ranges) {
            const want = r.size === null ? o.size - r.offset : r.size;
            const d = readAt(o.file, o.size, r.offset, Math.min(want, maxBytes - total + 1));
            total += d.length + 16;
            if (total > maxBytes) {
              throw new StoreError(
                413,
                "response-too-large",
                `the batch read would return more than ${maxBytes} bytes; ask for fewer slots or smaller ranges`,
              );
            }
            data.push(d);
          }
          shares.push({ share: n, data });
        } finally {
          o.file.close();
        }
      }
      slots.push({ storageIndex: slot.storageIndex, shares });
    }
    return { slots };
  }
}
