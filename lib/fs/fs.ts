/**
 * The one file-system API (docs/fs-api.md): paths of names under a root cap, with resolve,
 * list, stat, read a range, write a file (streamed through a private spool file), mkdir,
 * link, unlink, rename and copy. The web gateway, WebDAV and restic's REST backend are thin
 * mappings onto it.
 *
 * Concurrency: every directory change is a read–modify–write through the grid's `modify`
 * (which retries when another writer got there first), and changes to one directory made
 * through one ShoalFs are coalesced: while one publish of a directory is in flight, further
 * changes queue and go out together in the next one. So two writers never lose an entry, and
 * N concurrent uploads into one directory cost far fewer than N publishes.
 */
import { base32Encode, utf8 } from "../codec/mod.ts";
import {
  type Cap,
  formatCap,
  isDirCap,
  isImmutableCap,
  isVerifyCap,
  parseCap,
  readcapOf,
  sha256,
} from "../crypto/mod.ts";
import {
  type DirectoryDoc,
  type DirEntry,
  type Grid,
  mapLimit,
  MAX_MUTABLE_SIZE,
} from "../grid/mod.ts";
import { FsError, tagFailedPath } from "./errors.ts";
import { fsName, type FsPath, isWithin, showPath } from "./paths.ts";
import { spool } from "./spool.ts";
import { oneShotSource } from "./oneshot.ts";

export interface FsContext {
  /** A Grid over the servers known now (the role layer opens it). */
  getGrid(): Promise<Grid>;
  /** Encoding of new immutable files. */
  shares: { k: number; n: number; happy: number };
  /** The node's convergence secret, or null for random keys. */
  convergenceSecret(): Promise<Uint8Array | null>;
  /** A private (0700) directory for upload spool files. */
  tmpDir: string;
}

export type FsKind = "directory" | "file" | "mutable-file";

/** One object reached by a path. */
export interface FsNode {
  path: string[];
  /** The last name ("" for the root). */
  name: string;
  kind: FsKind;
  /** The strongest cap held (a writecap when the walk had one). */
  cap: string;
  parsed: Cap;
  readcap: string;
  /** The object itself can be changed: a directory or mutable file reached with its writecap. */
  writable: boolean;
  /** Bytes, when known without reading (immutable caps carry it; writes record it). */
  size: number | null;
  ctime: number | null;
  mtime: number | null;
  /** The directory entry's metadata ({} for the root; the root's own is the directory's meta). */
  metadata: Record<string, unknown>;
  /** A strong validator: changes whenever the contents may have (never shows a cap). */
  etag: string | null;
}

export interface Listing {
  dir: FsNode;
  /** The directory's version. */
  seqnum: number;
  /** Directory-wide metadata. */
  meta: Record<string, unknown>;
  entries: FsNode[];
  /** Entries left out because they hold a cap this version cannot use (name, and why). */
  unreadable: { name: string; why: string }[];
}

type Change = (doc: DirectoryDoc) => DirectoryDoc | null;

interface Pending {
  change: Change;
  resolve(): void;
  reject(e: unknown): void;
}

const now = () => Math.floor(Date.now() / 1000);

function kindOf(c: Cap): FsKind {
  return isDirCap(c) ? "directory" : isImmutableCap(c) ? "file" : "mutable-file";
}

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

function etagOf(kind: FsKind, readcap: string, extra: string): string | null {
  if (kind === "directory") return null;
  const h = sha256(utf8("shoal-etag:v1:"), utf8(readcap), utf8(":" + extra));
  return base32Encode(h.subarray(0, 15));
}

/** The node for `cap` linked at `path` with `metadata` (no grid access). */
export async function nodeOf(
  path: string[],
  cap: string,
  metadata: Record<string, unknown>,
): Promise<FsNode> {
  const parsed = parseCap(cap);
  const readcap = formatCap(await readcapOf(parsed));
  const kind = kindOf(parsed);
  const size = parsed.kind === "immutable-read"
    ? parsed.size
    : kind === "directory"
    ? null
    : num(metadata.size);
  const mtime = num(metadata.mtime);
  return {
    path,
    name: path.length ? path[path.length - 1] : "",
    kind,
    cap,
    parsed,
    readcap,
    writable: parsed.kind === "dir-write" || parsed.kind === "mutable-write",
    size,
    ctime: num(metadata.ctime),
    mtime,
    metadata,
    etag: etagOf(kind, readcap, kind === "file" ? "" : `${mtime}:${size}`),
  };
}

/** A directory entry linking `cap` as `name`: its readcap, and its writecap when `cap` is one. */
export async function dirEntry(
  name: string,
  cap: string,
  metadata: Record<string, unknown>,
): Promise<DirEntry> {
  const readcap = formatCap(await readcapOf(parseCap(cap)));
  return { name: fsName(name), readcap, writecap: readcap === cap ? undefined : cap, metadata };
}

/** A file system rooted at one cap. */
export class ShoalFs {
  readonly #queues = new Map<string, { pending: Pending[]; running: boolean }>();

  private constructor(readonly root: string, readonly ctx: FsContext) {}

  /**
   * Open the tree under `root` (a directory cap). With `readOnly`, the root is diminished to
   * its readcap first, so nothing below it can be changed whatever caps the entries hold.
   */
  static async open(root: string, ctx: FsContext, opts: { readOnly?: boolean } = {}) {
    const c = parseCap(root);
    if (!isDirCap(c) || isVerifyCap(c)) {
      throw new FsError("not-directory", "the root must be a directory's writecap or readcap");
    }
    return new ShoalFs(opts.readOnly ? formatCap(await readcapOf(c)) : root, ctx);
  }

  /** Whether the root itself is writable. */
  get writable(): boolean {
    return parseCap(this.root).kind === "dir-write";
  }

  // ---------------------------------------------------------------- reading

  /** A directory's entries; a grid error is tagged with the directory's path (failedPath). */
  async #entries(grid: Grid, dir: FsNode): Promise<DirectoryDoc & { seqnum: number }> {
    if (dir.kind !== "directory") {
      throw new FsError("not-directory", `${showPath(dir.path)} is a file`, dir.path);
    }
    try {
      const doc = await grid.listDirectory(dir.cap);
      return { entries: doc.entries, meta: doc.meta, seqnum: doc.seqnum };
    } catch (e) {
      tagFailedPath(e, dir.path);
      throw e;
    }
  }

  /**
   * The nodes along `path`, the root first, as far as it exists: one node per name found (so
   * `path.length + 1` nodes when all of it exists). A step through a file throws not-directory.
   */
  async trail(path: FsPath): Promise<FsNode[]> {
    const grid = await this.ctx.getGrid();
    const out = [await nodeOf([], this.root, {})];
    for (let i = 0; i < path.length; i++) {
      const doc = await this.#entries(grid, out[i]);
      const e = doc.entries.find((x) => x.name === path[i]);
      if (!e) break;
      const p = path.slice(0, i + 1);
      try {
        out.push(await nodeOf(p, e.writecap ?? e.readcap, e.metadata));
      } catch (err) {
        tagFailedPath(err, p); // a malformed cap in the entry
        throw err;
      }
    }
    return out;
  }

  /**
   * The object at `path`, or null when only the last name is missing. A missing or non-
   * directory step before the last throws (not-found / not-directory).
   */
  async stat(path: FsPath): Promise<FsNode | null> {
    const grid = await this.ctx.getGrid();
    const nodes = await this.trail(path);
    const cur = nodes[nodes.length - 1];
    if (nodes.length < path.length + 1) {
      if (nodes.length === path.length) return null;
      const missing = path.slice(0, nodes.length);
      throw new FsError(
        "not-found",
        `no entry named '${path[nodes.length - 1]}' in ${showPath(cur.path)}`,
        missing,
      );
    }
    if (path.length === 0) {
      const doc = await this.#entries(grid, cur);
      cur.metadata = doc.meta;
      cur.etag = base32Encode(
        sha256(utf8("shoal-etag:v1:"), utf8(cur.readcap), utf8(`:${doc.seqnum}`)).subarray(0, 15),
      );
    }
    return cur;
  }

  /** The object at `path`; FsError("not-found") when missing. */
  async resolve(path: FsPath): Promise<FsNode> {
    const n = await this.stat(path);
    if (!n) {
      throw new FsError(
        "not-found",
        `no entry named '${path[path.length - 1]}' in ${showPath(path.slice(0, -1))}`,
        path,
      );
    }
    return n;
  }

  /** A directory's entries, sorted by name. Sizes of mutable files come from their metadata. */
  async list(target: FsPath | FsNode): Promise<Listing> {
    const dir = "kind" in target
      ? target
      : target.length === 0
      ? await nodeOf([], this.root, {})
      : await this.resolve(target);
    const grid = await this.ctx.getGrid();
    const doc = await this.#entries(grid, dir);
    const entries: FsNode[] = [];
    const unreadable: Listing["unreadable"] = [];
    for (const e of doc.entries) {
      try {
        entries.push(await nodeOf([...dir.path, e.name], e.writecap ?? e.readcap, e.metadata));
      } catch (err) {
        // An entry holding a malformed cap is left out rather than breaking the listing; the
        // caller is told, so a copy or walk can say what it could not take.
        unreadable.push({ name: e.name, why: (err as Error)?.message ?? String(err) });
      }
    }
    return { dir, seqnum: doc.seqnum, meta: doc.meta, entries, unreadable };
  }

  /** The size of a file, reading a mutable file when its entry does not record one. */
  async sizeOf(node: FsNode): Promise<number> {
    if (node.size !== null) return node.size;
    if (node.kind === "directory") return 0;
    const grid = await this.ctx.getGrid();
    return (await grid.readMutable(node.cap)).contents.length;
  }

  /**
   * The bytes of a file from `offset` (default 0), `length` bytes (default: to the end). For an
   * immutable file only the segments needed are fetched; errors surface as stream errors.
   */
  async read(
    target: FsPath | FsNode,
    range: { offset?: number; length?: number } = {},
  ): Promise<ReadableStream<Uint8Array>> {
    const node = "kind" in target ? target : await this.resolve(target);
    if (node.kind === "directory") {
      throw new FsError("is-directory", `${showPath(node.path)} is a directory`);
    }
    const grid = await this.ctx.getGrid();
    if (node.parsed.kind === "immutable-read") {
      const offset = range.offset ?? 0;
      const length = range.length ?? node.parsed.size - offset;
      return grid.downloadImmutable(node.cap, { offset, length });
    }
    const r = await grid.readMutable(node.cap);
    const start = range.offset ?? 0;
    const end = range.length === undefined ? r.contents.length : start + range.length;
    const data = r.contents.slice(start, end);
    return new ReadableStream({
      start(c) {
        if (data.length) c.enqueue(data);
        c.close();
      },
    });
  }

  // ---------------------------------------------------------------- changing

  /** The writable directory holding `path`'s last name. */
  async #parent(
    path: FsPath,
    what: string,
    known?: FsNode,
  ): Promise<{ dir: FsNode; name: string }> {
    if (path.length === 0) throw new FsError("invalid", `${what}: the root has no parent`);
    const name = fsName(path[path.length - 1]);
    // The root needs no walk (and no read: the change itself reads it).
    const dir = known ??
      (path.length === 1 ? await nodeOf([], this.root, {}) : await this.resolve(path.slice(0, -1)));
    if (dir.kind !== "directory") {
      throw new FsError("not-directory", `${showPath(dir.path)} is not a directory`, dir.path);
    }
    if (!dir.writable) {
      throw new FsError(
        "read-only",
        `${showPath(dir.path)} is read-only (only its readcap is held)`,
        dir.path,
      );
    }
    return { dir, name };
  }

  /**
   * Apply `change` to directory `dircap`. Changes queued while a publish of that directory is in
   * flight are applied together in the next one; each change succeeds or fails on its own.
   */
  #change(dircap: string, change: Change): Promise<void> {
    let q = this.#queues.get(dircap);
    if (!q) {
      q = { pending: [], running: false };
      this.#queues.set(dircap, q);
    }
    const queue = q;
    const done = new Promise<void>((resolve, reject) => {
      queue.pending.push({ change, resolve, reject });
    });
    if (!queue.running) void this.#drain(dircap, queue);
    return done;
  }

  async #drain(dircap: string, q: { pending: Pending[]; running: boolean }): Promise<void> {
    q.running = true;
    try {
      while (q.pending.length) {
        const batch = q.pending.splice(0, q.pending.length);
        let outcomes: (unknown | null)[] = [];
        try {
          const grid = await this.ctx.getGrid();
          await grid.modifyDirectory(dircap, (entries, meta) => {
            // May run more than once (modify retries): start from fresh outcomes each time.
            outcomes = [];
            let doc: DirectoryDoc = { entries, meta };
            let changed = false;
            for (const p of batch) {
              try {
                const next = p.change(doc);
                if (next) {
                  doc = next;
                  changed = true;
                }
                outcomes.push(null);
              } catch (e) {
                outcomes.push(e ?? new Error("failed"));
              }
            }
            return changed ? doc : null;
          });
        } catch (e) {
          for (const p of batch) p.reject(e);
          continue;
        }
        batch.forEach((p, i) => (outcomes[i] === null ? p.resolve() : p.reject(outcomes[i])));
      }
    } finally {
      q.running = false;
      this.#queues.delete(dircap);
    }
  }

  /**
   * Link `cap` at `path`. `noReplace` refuses an existing name (exists); `check` sees the entry
   * there now (inside the read–modify–write, so a precondition holds atomically) and may throw.
   * An existing directory is never replaced by a file (is-directory).
   */
  async link(
    path: FsPath,
    cap: string,
    opts: {
      metadata?: Record<string, unknown>;
      noReplace?: boolean;
      /** Keep (and merge into) the existing entry's metadata (default true). */
      keepMetadata?: boolean;
      check?: (existing: DirEntry | undefined) => void;
      _dir?: FsNode;
    } = {},
  ): Promise<void> {
    const { dir, name } = opts._dir
      ? { dir: opts._dir, name: fsName(path[path.length - 1]) }
      : await this.#parent(path, "link");
    await this.#linkIn(dir, [{ name, cap, metadata: opts.metadata }], opts);
  }

  /**
   * Link several objects into the directory at `dir` in one change (one publish): all of them
   * or, when one is refused (as `link` refuses), none. Each item follows `link`'s rules.
   */
  async linkAll(
    dir: FsPath,
    items: { name: string; cap: string; metadata?: Record<string, unknown> }[],
    opts: { noReplace?: boolean; keepMetadata?: boolean } = {},
  ): Promise<void> {
    const node = dir.length === 0 ? await nodeOf([], this.root, {}) : await this.resolve(dir);
    // The same checks as for a child of `dir` (a writable directory).
    const { dir: parent } = await this.#parent([...dir, "x"], "link", node);
    const named = items.map((x) => ({ ...x, name: fsName(x.name) }));
    await this.#linkIn(parent, named, opts);
  }

  async #linkIn(
    dir: FsNode,
    items: { name: string; cap: string; metadata?: Record<string, unknown> }[],
    opts: {
      noReplace?: boolean;
      keepMetadata?: boolean;
      check?: (existing: DirEntry | undefined) => void;
    },
  ): Promise<void> {
    const links = await Promise.all(items.map(async (x) => ({
      ...x,
      entry: await dirEntry(x.name, x.cap, {}),
      isDir: isDirCap(parseCap(x.cap)),
    })));
    const t = now();
    await this.#change(dir.cap, (doc) => {
      let entries = doc.entries;
      for (const { name, metadata: meta, entry, isDir } of links) {
        const existing = entries.find((e) => e.name === name);
        opts.check?.(existing);
        const where = [...dir.path, name];
        if (existing && opts.noReplace) {
          throw new FsError("exists", `an entry named '${name}' already exists`, where);
        }
        if (existing && !isDir && isDirCap(parseCap(existing.readcap))) {
          throw new FsError("is-directory", `'${name}' is a directory`, where);
        }
        const base = existing && opts.keepMetadata !== false ? existing.metadata : {};
        // A caller may say when the contents were modified (a client's own mtime); else now.
        const metadata = {
          ...base,
          ...(meta ?? {}),
          ctime: num(base.ctime) ?? num(meta?.ctime) ?? t,
          mtime: num(meta?.mtime) ?? t,
        };
        entries = [...entries.filter((e) => e.name !== name), { ...entry, metadata }];
      }
      return { entries, meta: doc.meta };
    });
  }

  /**
   * Write a file: the stream is spooled to a private temp file, uploaded as an immutable file
   * with the node's encoding and convergence secret, and linked at `path` (replacing a file
   * there unless `noReplace`). The entry records the size. Returns the new node.
   */
  async write(
    path: FsPath,
    body: ReadableStream<Uint8Array> | Uint8Array | null,
    opts: {
      noReplace?: boolean;
      metadata?: Record<string, unknown>;
      check?: (existing: DirEntry | undefined) => void;
      /** false: a random key instead of convergent encryption. */
      convergence?: boolean;
      /**
       * The stream's exact length (e.g. Content-Length). With `convergence: false` it is then
       * uploaded as it arrives, without a spool file (lib/fs/oneshot.ts).
       */
      size?: number;
    } = {},
  ): Promise<FsNode> {
    const { dir, name } = await this.#parent(path, "write");
    const stream = body instanceof Uint8Array
      ? new ReadableStream<Uint8Array>({
        start(c) {
          if (body.length) c.enqueue(body);
          c.close();
        },
      })
      : body;
    const direct = stream !== null && opts.size !== undefined && opts.convergence === false;
    const sp = direct ? oneShotSource(stream, opts.size!) : await spool(stream, this.ctx.tmpDir);
    try {
      const grid = await this.ctx.getGrid();
      const { k, n, happy } = this.ctx.shares;
      const r = await grid.uploadImmutable(sp.source, {
        k,
        n,
        happy,
        convergenceSecret: opts.convergence === false ? null : await this.ctx.convergenceSecret(),
      });
      const p = [...dir.path, name];
      await this.link(p, r.cap, {
        noReplace: opts.noReplace,
        check: opts.check,
        // The size belongs to the old contents: drop it (a mutable's size would be stale).
        metadata: { ...(opts.metadata ?? {}), size: sp.source.size },
        _dir: dir,
      });
      return await nodeOf(p, r.cap, {
        size: sp.source.size,
        mtime: num(opts.metadata?.mtime) ?? now(),
      });
    } finally {
      await sp.remove();
    }
  }

  /**
   * Upload a stream as an immutable file without linking it (as `write` does, but the caller
   * links it later, e.g. after recording the cap durably). Returns its cap and size.
   */
  async upload(
    body: ReadableStream<Uint8Array> | null,
    opts: { convergence?: boolean; size?: number } = {},
  ): Promise<{ cap: string; size: number }> {
    const direct = body !== null && opts.size !== undefined && opts.convergence === false;
    const sp = direct ? oneShotSource(body, opts.size!) : await spool(body, this.ctx.tmpDir);
    try {
      const grid = await this.ctx.getGrid();
      const r = await grid.uploadImmutable(sp.source, {
        ...this.ctx.shares,
        convergenceSecret: opts.convergence === false ? null : await this.ctx.convergenceSecret(),
      });
      return { cap: r.cap, size: sp.source.size };
    } finally {
      await sp.remove();
    }
  }

  /** Make a new, empty directory at `path` (exists when the name is taken). */
  async mkdir(path: FsPath, opts: { metadata?: Record<string, unknown> } = {}): Promise<FsNode> {
    const { dir, name } = await this.#parent(path, "mkdir");
    const grid = await this.ctx.getGrid();
    // Refuse early when the name is visibly taken, so no orphan directory is made.
    const doc = await grid.listDirectory(dir.cap);
    if (doc.entries.some((e) => e.name === name)) {
      throw new FsError("exists", `an entry named '${name}' already exists`);
    }
    const cap = await grid.createDirectory();
    await this.link([...dir.path, name], cap, {
      noReplace: true,
      metadata: opts.metadata,
      _dir: dir,
    });
    return await nodeOf([...dir.path, name], cap, { mtime: now(), ctime: now() });
  }

  /** Remove the entry at `path` (the object itself stays wherever else it is linked). */
  async unlink(path: FsPath, opts: { check?: (existing: DirEntry) => void } = {}): Promise<void> {
    const { dir, name } = await this.#parent(path, "unlink");
    await this.#change(dir.cap, (doc) => {
      const e = doc.entries.find((x) => x.name === name);
      if (!e) {
        throw new FsError(
          "not-found",
          `no entry named '${name}' in ${showPath(dir.path)}`,
          [...dir.path, name],
        );
      }
      opts.check?.(e);
      return { entries: doc.entries.filter((x) => x.name !== name), meta: doc.meta };
    });
  }

  /**
   * Change the metadata of the entry at `path` (the root: the directory-wide metadata) with
   * `fn`, inside one read–modify–write. `ctime`/`mtime`/`size` are kept as they were.
   */
  async updateMetadata(
    path: FsPath,
    fn: (meta: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<void> {
    if (path.length === 0) {
      if (!this.writable) throw new FsError("read-only", "the root is read-only");
      await this.#change(this.root, (doc) => ({ entries: doc.entries, meta: fn({ ...doc.meta }) }));
      return;
    }
    const { dir, name } = await this.#parent(path, "update metadata");
    await this.#change(dir.cap, (doc) => {
      const e = doc.entries.find((x) => x.name === name);
      if (!e) throw new FsError("not-found", `no entry named '${name}' in ${showPath(dir.path)}`);
      const next = fn({ ...e.metadata });
      for (const k of ["ctime", "mtime", "size"]) {
        if (k in e.metadata) next[k] = e.metadata[k];
        else delete next[k];
      }
      return {
        entries: doc.entries.map((x) => (x.name === name ? { ...x, metadata: next } : x)),
        meta: doc.meta,
      };
    });
  }

  /**
   * Move the entry at `from` to `to`. Within one directory this is one atomic rename; across
   * directories the entry is linked at `to` first and then unlinked from `from` (a crash in
   * between leaves it in both places, never in neither). `noReplace` refuses an existing `to`.
   */
  async rename(from: FsPath, to: FsPath, opts: { noReplace?: boolean } = {}): Promise<void> {
    if (isWithin(to, from)) {
      throw new FsError("invalid", `cannot move ${showPath(from)} into itself`);
    }
    const src = await this.#parent(from, "move");
    const dst = await this.#parent(to, "move");
    if (src.dir.cap === dst.dir.cap) {
      await this.#change(src.dir.cap, (doc) => {
        const e = doc.entries.find((x) => x.name === src.name);
        if (!e) throw new FsError("not-found", `no entry named '${src.name}'`);
        if (src.name === dst.name) return null;
        if (opts.noReplace && doc.entries.some((x) => x.name === dst.name)) {
          throw new FsError("exists", `an entry named '${dst.name}' already exists`);
        }
        return {
          entries: [
            ...doc.entries.filter((x) => x.name !== src.name && x.name !== dst.name),
            { ...e, name: dst.name },
          ],
          meta: doc.meta,
        };
      });
      return;
    }
    const node = await this.resolve(from);
    await this.link(to, node.cap, {
      noReplace: opts.noReplace,
      metadata: node.metadata,
      keepMetadata: false,
      _dir: dst.dir,
    });
    await this.unlink(from);
  }

  /**
   * Copy `from` to `to`. A file is linked again: the copy is the same cap (no re-upload). A
   * directory becomes a new directory whose file entries link the same caps and whose
   * subdirectories are copied the same way (`depth: 0`: an empty directory with the same
   * metadata). Dead properties and other metadata come along.
   */
  async copy(
    from: FsPath,
    to: FsPath,
    opts: { noReplace?: boolean; depth?: "0" | "infinity" } = {},
  ): Promise<void> {
    if (isWithin(to, from)) {
      throw new FsError("invalid", `cannot copy ${showPath(from)} into itself`);
    }
    const node = await this.resolve(from);
    const dst = await this.#parent(to, "copy");
    let cap = node.cap;
    if (node.kind === "directory") {
      const grid = await this.ctx.getGrid();
      cap = opts.depth === "0"
        ? await grid.createDirectory([], undefined, (await grid.listDirectory(node.cap)).meta)
        : await this.#copyTree(grid, node.cap);
    }
    const metadata = { ...node.metadata };
    delete metadata.ctime;
    await this.link(to, cap, {
      noReplace: opts.noReplace,
      metadata,
      keepMetadata: false,
      _dir: dst.dir,
    });
  }

  async #copyTree(grid: Grid, dircap: string): Promise<string> {
    const doc = await grid.listDirectory(dircap);
    const entries = await mapLimit(doc.entries, 4, async (e): Promise<DirEntry> => {
      const c = parseCap(e.writecap ?? e.readcap);
      if (!isDirCap(c)) return e;
      return await dirEntry(
        e.name,
        await this.#copyTree(grid, e.writecap ?? e.readcap),
        e.metadata,
      );
    });
    return await grid.createDirectory(entries, undefined, doc.meta);
  }
}

export { MAX_MUTABLE_SIZE };
