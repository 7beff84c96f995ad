/**
 * The Grid: a server list plus this node's lease secret, and the operations
 * on mutable files and directories addressed by cap strings.
 */
import {
  type Cap,
  formatCap,
  parseCap,
  readcapOf,
  storageIndexFromFingerprint,
} from "../crypto/mod.ts";
import {
  decodeDirectoryDoc,
  type DirectoryDoc,
  DirectoryError,
  type DirEntry,
  encodeDirectory,
  normalizeName,
} from "./dirnode.ts";
import { GridError } from "./errors.ts";
import {
  check,
  type CheckResult,
  createMutable,
  DEFAULT_MUTABLE_ENCODING,
  mapUpdate,
  modify,
  type ModifyOptions,
  type MutableContext,
  type MutableEncoding,
  type MutableReadKeys,
  type MutableWriteKeys,
  overwrite,
  type PublishResult,
  repair,
  retrieve,
  type RetrieveResult,
  type Servermap,
  writeKeysFromSeed,
} from "./mutable.ts";
import type { ServerList } from "./servers.ts";
import {
  type MutableHealth,
  mutableHealth,
  respreadMutable,
  type RespreadResult,
} from "./mutable_respread.ts";
import {
  downloadImmutable,
  type DownloadOptions,
  type ImmutableCheck,
  type ImmutableContext,
  type ImmutableSource,
  uploadImmutable,
  type UploadOptions,
  type UploadResult,
} from "./immutable.ts";
import {
  checkImmutable,
  repairImmutable,
  type RepairImmutableOptions,
  type RepairImmutableResult,
  verifyImmutable,
} from "./immutable_repair.ts";

export interface GridOptions {
  servers: ServerList;
  /** 32-byte master lease secret of this node. */
  leaseSecret: Uint8Array;
  /** Default encoding for new mutable files and directories. */
  mutableEncoding?: MutableEncoding;
}

type MutableCap = Extract<
  Cap,
  { kind: "mutable-write" | "mutable-read" | "dir-write" | "dir-read" }
>;

function asCap(cap: string | Cap): Cap {
  return typeof cap === "string" ? parseCap(cap) : cap;
}

export class Grid {
  readonly servers: ServerList;
  readonly leaseSecret: Uint8Array;
  mutableEncoding: MutableEncoding;

  constructor(opts: GridOptions) {
    this.servers = opts.servers;
    this.leaseSecret = opts.leaseSecret;
    this.mutableEncoding = opts.mutableEncoding ?? DEFAULT_MUTABLE_ENCODING;
  }

  /** The context for one storage index: servers in permuted-ring order. */
  context(storageIndex: Uint8Array): MutableContext {
    return { servers: this.servers.permuted(storageIndex), leaseSecret: this.leaseSecret };
  }

  async #writeKeys(
    cap: string | Cap,
    what: string,
  ): Promise<{ keys: MutableWriteKeys; dir: boolean }> {
    const c = asCap(cap);
    if (c.kind !== "mutable-write" && c.kind !== "dir-write") {
      throw new GridError(`${what} needs a writecap, but was given a ${c.kind} cap`);
    }
    return { keys: await writeKeysFromSeed(c.seed), dir: c.kind === "dir-write" };
  }

  async #readKeys(
    cap: string | Cap,
  ): Promise<{ keys: MutableReadKeys; writekey: Uint8Array | null; dir: boolean }> {
    const c = asCap(cap) as MutableCap;
    if (c.kind === "mutable-write" || c.kind === "dir-write") {
      const keys = await writeKeysFromSeed(c.seed);
      return { keys, writekey: keys.writekey, dir: c.kind === "dir-write" };
    }
    if (c.kind === "mutable-read" || c.kind === "dir-read") {
      return {
        keys: { readkey: c.readkey, fingerprint: c.fingerprint },
        writekey: null,
        dir: c.kind === "dir-read",
      };
    }
    throw new GridError(`cannot read a ${(c as Cap).kind} cap as a mutable file`);
  }

  // ---- mutable files ----

  async createMutableFile(
    contents: Uint8Array,
    encoding = this.mutableEncoding,
  ): Promise<{ writecap: string; result: PublishResult }> {
    const { keys, result } = await createMutable(this.contextForNew(), contents, encoding);
    return { writecap: formatCap({ kind: "mutable-write", seed: keys.seed }), result };
  }

  /** New objects: createMutable permutes the servers on the new storage index. */
  private contextForNew(): MutableContext {
    return { servers: this.servers.all(), leaseSecret: this.leaseSecret };
  }

  async readMutable(cap: string | Cap, opts: { minSeqnum?: number } = {}): Promise<RetrieveResult> {
    const { keys } = await this.#readKeys(cap);
    return await retrieve(this.context(storageIndexFromFingerprint(keys.fingerprint)), keys, opts);
  }

  async writeMutable(
    cap: string | Cap,
    contents: Uint8Array,
    encoding = this.mutableEncoding,
  ): Promise<PublishResult> {
    const { keys } = await this.#writeKeys(cap, "writing");
    return await overwrite(this.context(keys.storageIndex), keys, contents, encoding);
  }

  async modifyMutable(
    cap: string | Cap,
    fn: (old: Uint8Array | null, seqnum: number) => Uint8Array | null | Promise<Uint8Array | null>,
    opts: ModifyOptions = {},
  ): Promise<PublishResult | null> {
    const { keys } = await this.#writeKeys(cap, "modifying");
    return await modify(this.context(keys.storageIndex), keys, fn, {
      encoding: this.mutableEncoding,
      ...opts,
    });
  }

  /**
   * With `happy`, healthy means what upkeep and deep-check mean (mutableHealth):
   * every share number of the newest version, no stale share, `happy` servers.
   */
  async checkMutable(cap: string | Cap, happy?: number): Promise<CheckResult> {
    const c = asCap(cap);
    let storageIndex: Uint8Array;
    let fingerprint: Uint8Array;
    if (c.kind === "mutable-verify" || c.kind === "dir-verify") {
      ({ storageIndex, fingerprint } = c);
    } else {
      const { keys } = await this.#readKeys(c);
      storageIndex = storageIndexFromFingerprint(keys.fingerprint);
      fingerprint = keys.fingerprint;
    }
    const judge = happy === undefined
      ? undefined
      : (map: Servermap) => mutableHealth(map, happy).healthy;
    return await check(this.context(storageIndex), { storageIndex, fingerprint }, judge);
  }

  async repairMutable(cap: string | Cap, encoding = this.mutableEncoding) {
    const { keys } = await this.#writeKeys(cap, "repair");
    return await repair(this.context(keys.storageIndex), keys, encoding);
  }

  /**
   * Repair a mutable object without churn: nothing when its newest version is
   * healthy (every share number, no stale share, `happy` servers); otherwise
   * the missing or stale shares are rewritten with the same version
   * (respreadMutable). Only when that version cannot be re-created exactly is
   * it republished as a new version (`republished`).
   */
  async respreadMutable(cap: string | Cap, happy: number): Promise<{
    repaired: boolean;
    before: MutableHealth;
    respread?: RespreadResult;
    republished?: PublishResult;
  }> {
    const { keys } = await this.#writeKeys(cap, "repair");
    const ctx = this.context(keys.storageIndex);
    const map = await mapUpdate(ctx, keys, { waitAll: true });
    const before = mutableHealth(map, happy);
    if (before.healthy) return { repaired: false, before };
    const respread = before.recoverable ? await respreadMutable(ctx, keys, map, happy) : null;
    if (respread) return { repaired: respread.repaired, before, respread };
    const rep = await repair(ctx, keys, this.mutableEncoding);
    return { repaired: rep.repaired, before, republished: rep.result };
  }

  // ---- directories ----

  async createDirectory(
    entries: DirEntry[] = [],
    encoding = this.mutableEncoding,
    meta: Record<string, unknown> = {},
  ): Promise<string> {
    const { keys } = await createMutable(
      this.contextForNew(),
      (k) => Promise.resolve(encodeDirectory(entries, k.writekey, meta)),
      encoding,
    );
    return formatCap({ kind: "dir-write", seed: keys.seed });
  }

  async listDirectory(
    cap: string | Cap,
    opts: { minSeqnum?: number } = {},
  ): Promise<DirectoryDoc & { seqnum: number; retrieved: RetrieveResult }> {
    const { keys, writekey, dir } = await this.#readKeys(cap);
    if (!dir) throw new DirectoryError("not a directory cap");
    const r = await retrieve(
      this.context(storageIndexFromFingerprint(keys.fingerprint)),
      keys,
      opts,
    );
    return { ...(await decodeDirectoryDoc(r.contents, writekey)), seqnum: r.seqnum, retrieved: r };
  }

  /**
   * Apply `change` to the directory with read–modify–write and retry. `change`
   * returns the new entry list (or a whole doc, to change directory metadata),
   * or null for "no change"; it may run more than once.
   */
  async modifyDirectory(
    cap: string | Cap,
    change: (
      entries: DirEntry[],
      meta: Record<string, unknown>,
    ) => DirEntry[] | DirectoryDoc | null,
    opts: ModifyOptions = {},
  ): Promise<PublishResult | null> {
    const { keys, dir } = await this.#writeKeys(cap, "changing a directory");
    if (!dir) throw new DirectoryError("not a directory cap");
    return await modify(this.context(keys.storageIndex), keys, async (old) => {
      const doc = old ? await decodeDirectoryDoc(old, keys.writekey) : { entries: [], meta: {} };
      const next = change(doc.entries, doc.meta);
      if (next === null) return null;
      const { entries, meta } = Array.isArray(next) ? { entries: next, meta: doc.meta } : next;
      return encodeDirectory(entries, keys.writekey, meta);
    }, { encoding: this.mutableEncoding, ...opts });
  }

  /** Link `childCap` under `name` (replacing unless `noReplace`). */
  async setEntry(
    dircap: string | Cap,
    name: string,
    childCap: string,
    opts: { metadata?: Record<string, unknown>; noReplace?: boolean; now?: number } = {},
  ): Promise<void> {
    const n = normalizeName(name);
    const child = parseCap(childCap);
    const readcap = formatCap(await readcapOf(child));
    const writecap = readcap === childCap ? undefined : childCap;
    const now = opts.now ?? Math.floor(Date.now() / 1000);
    await this.modifyDirectory(dircap, (entries) => {
      const existing = entries.find((e) => e.name === n);
      if (existing && opts.noReplace) {
        throw new DirectoryError(`an entry named '${n}' already exists`);
      }
      const metadata = {
        ...(existing?.metadata ?? { ctime: now }),
        ...(opts.metadata ?? {}),
        mtime: now,
      };
      return [...entries.filter((e) => e.name !== n), { name: n, readcap, writecap, metadata }];
    });
  }

  async removeEntry(dircap: string | Cap, name: string): Promise<void> {
    const n = normalizeName(name);
    let found = false;
    await this.modifyDirectory(dircap, (entries) => {
      found = entries.some((e) => e.name === n);
      return found ? entries.filter((e) => e.name !== n) : null;
    });
    if (!found) throw new DirectoryError(`no entry named '${n}'`);
  }

  async renameEntry(
    dircap: string | Cap,
    from: string,
    to: string,
    opts: { noReplace?: boolean } = {},
  ): Promise<void> {
    const a = normalizeName(from);
    const b = normalizeName(to);
    await this.modifyDirectory(dircap, (entries) => {
      const e = entries.find((x) => x.name === a);
      if (!e) throw new DirectoryError(`no entry named '${a}'`);
      if (a === b) return null;
      if (opts.noReplace && entries.some((x) => x.name === b)) {
        throw new DirectoryError(`an entry named '${b}' already exists`);
      }
      return [...entries.filter((x) => x.name !== a && x.name !== b), { ...e, name: b }];
    });
  }

  // ---- immutable files (lib/grid/immutable.ts, docs/immutable-files.md) ----

  #immutableContext(): ImmutableContext {
    return { servers: this.servers.all(), leaseSecret: this.leaseSecret };
  }

  /** Encrypt, erasure-code and upload a file; resolves with its CHK-R1 cap. */
  uploadImmutable(
    source: ImmutableSource | Uint8Array,
    opts: UploadOptions,
  ): Promise<UploadResult> {
    return uploadImmutable(this.#immutableContext(), source, opts);
  }

  /** Verified plaintext of (a range of) an immutable file; errors surface as stream errors. */
  downloadImmutable(cap: string | Cap, opts: DownloadOptions = {}): ReadableStream<Uint8Array> {
    return downloadImmutable(this.#immutableContext(), cap, opts);
  }

  /** Which servers hold which shares, headers and hash roots verified; no block download. */
  checkImmutable(cap: string | Cap): Promise<ImmutableCheck> {
    return checkImmutable(this.#immutableContext(), cap);
  }

  /** Download and check every block of every share. */
  verifyImmutable(cap: string | Cap): Promise<ImmutableCheck> {
    return verifyImmutable(this.#immutableContext(), cap);
  }

  /** Re-create missing shares on servers that should hold them. */
  repairImmutable(
    cap: string | Cap,
    opts: RepairImmutableOptions = {},
  ): Promise<RepairImmutableResult> {
    return repairImmutable(this.#immutableContext(), cap, opts);
  }
}
