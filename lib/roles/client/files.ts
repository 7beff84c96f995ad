/**
 * The client's file operations behind `shoal client put/get/ls/mkdir/ln/rm/mv/cp/
 * check/verify/repair` (docs/client-commands.md). The CLI (lib/cli/client_files.ts)
 * only parses arguments and prints; everything else is here and in transfer.ts (put, get),
 * copy.ts (cp) and health.ts (check, verify, repair).
 *
 * A FileSession opens the node directory and, on first need, a Grid over the recorded servers.
 * Paths below a root (an alias or a cap) are walked and changed through lib/fs (ShoalFs, the
 * file-system API every frontend uses); this file adds what a command line needs: aliases,
 * bare caps as roots, and messages that name the path as it was typed and say what to do.
 * Error messages never contain a cap.
 */
import { toHex } from "../../codec/mod.ts";
import {
  type Cap,
  CapError,
  capStorageIndexSync,
  formatCap,
  isDirCap,
  isImmutableCap,
  isVerifyCap,
  isWriteCap,
  parseCap,
  readcapOf,
} from "../../crypto/mod.ts";
import { failedPath, type FsContext, FsError, type FsNode, ShoalFs } from "../../fs/mod.ts";
import { type Grid, NotEnoughServersError, UnrecoverableError } from "../../grid/mod.ts";
import { probeServers } from "./probe.ts";
import { loadAliases } from "./aliases.ts";
import { type ClientNode, convergenceSecret, loadClientNode, openGrid } from "./node.ts";
import { displayPath, FilesError, type GridPath, parseGridPath, splitLast } from "./paths.ts";
import type { Progress } from "./progress.ts";
import { cp } from "./copy.ts";
import { health, type HealthReport } from "./health.ts";
import { get, type GetSink, put, type PutSource } from "./transfer.ts";

export { FilesError } from "./paths.ts";
export { type HealthReport, jsonSafe } from "./health.ts";
export type { GetSink, PutSource } from "./transfer.ts";
export { fileSource } from "./local.ts";

export interface SessionOptions {
  /** Notes for the user (stderr); never secrets. */
  log?: (line: string) => void;
  /** A progress display for a transfer of `total` bytes, or undefined for none. */
  progress?: (label: string, total: number) => Progress | undefined;
  /** Aborts uploads in progress (Ctrl-C): their allocations are aborted on every server. */
  signal?: AbortSignal;
}

/** An object reached by a path: its cap (the strongest held) and where it came from. */
export interface Resolved {
  cap: string;
  parsed: Cap;
  /** Printable path (never a cap). */
  display: string;
  /** The last name of the path ("" for a root). */
  name: string;
  /** The metadata of the directory entry it was reached through, if any. */
  metadata?: Record<string, unknown>;
}

export type EntryType = "directory" | "file" | "mutable-file";

export interface LsRow {
  name: string;
  type: EntryType;
  writable: boolean;
  /** Bytes, when known without reading the object (immutable caps carry it; puts record it). */
  size: number | null;
  ctime: number | null;
  mtime: number | null;
  readcap: string | null;
  writecap?: string;
}

export interface CopyStats {
  files: number;
  directories: number;
  bytes: number;
  /** Local entries `cp` skipped, each "PATH: why" (the copy goes on; the command then fails). */
  skipped: string[];
}

function typeOf(c: Cap): EntryType {
  return isDirCap(c) ? "directory" : isImmutableCap(c) ? "file" : "mutable-file";
}

function kindWord(c: Cap): string {
  return isDirCap(c) ? "directory" : "file";
}

function num(x: unknown): number | null {
  return typeof x === "number" && Number.isFinite(x) ? x : null;
}

/** The printable path of `path` below `base` (as the user would have typed it). */
export function below(base: Resolved, path: readonly string[]): string {
  if (path.length === 0) return base.display;
  return `${base.display}${base.display.endsWith(":") ? "" : "/"}${path.join("/")}`;
}

export function sizeMeta(size: number | null): Record<string, unknown> {
  return size === null ? {} : { size };
}

/** The storage index of an object (hex), to tell one directory from another across roots. */
export function storageIndexOf(r: Resolved): string {
  return toHex(capStorageIndexSync(r.parsed));
}

export class FileSession {
  #grid: Grid | null = null;
  #aliases: Map<string, string> | null = null;
  #fs = new Map<string, ShoalFs>();
  #fsContext: FsContext;
  readonly stats: CopyStats = { files: 0, directories: 0, bytes: 0, skipped: [] };

  private constructor(readonly node: ClientNode, readonly opts: SessionOptions) {
    this.#fsContext = {
      getGrid: () => this.grid(),
      shares: node.config.shares,
      convergenceSecret: () => convergenceSecret(node),
      tmpDir: `${node.dir}/tmp`,
    };
  }

  static async open(dir: string, opts: SessionOptions = {}): Promise<FileSession> {
    return new FileSession(await loadClientNode(dir), opts);
  }

  close(): void {
    this.node.grid.close();
  }

  /** The Grid over the recorded servers (refreshed first when stale). */
  async grid(): Promise<Grid> {
    this.#grid ??= await openGrid(this.node, { log: this.opts.log });
    return this.#grid;
  }

  // ---- errors ----

  #explain(e: unknown): unknown {
    if (e instanceof NotEnoughServersError) {
      const known = this.#grid?.servers.size ?? 0;
      return new FilesError(
        `not enough storage servers: ${e.message} (this node knows ${known} server(s); ` +
          "start more servers, or lower k/n/happy under [shares] in shoal.toml)",
      );
    }
    if (e instanceof CapError) return new FilesError(`malformed cap: ${e.message}`);
    return e;
  }

  /** Run a grid operation; its errors become messages that say what to do. `what` names the object. */
  async guard<T>(fn: () => Promise<T>, what?: string): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw await this.#explainServers(e, what);
    }
  }

  /**
   * When an operation failed for lack of shares or servers, ask every known server whether it
   * answers: none answering is said as such (not "no valid share ... 0 reachable").
   */
  async #explainServers(e: unknown, what?: string): Promise<unknown> {
    if (!(e instanceof UnrecoverableError || e instanceof NotEnoughServersError)) {
      return this.#explain(e);
    }
    const total = this.node.grid.state.servers.length;
    const status = await probeServers(this.node.grid).catch(() => null);
    const up = status ? [...status.values()].filter((s) => s.up).length : null;
    if (total > 0 && up === 0) {
      return new FilesError(
        `no storage server is reachable: none of the ${total} server(s) this node knows answered` +
          `${what ? ` (while reading ${what})` : ""}. Check that they are running ` +
          "('shoal storage run') and that this computer can reach them; " +
          `'shoal client servers --dir ${this.node.dir}' shows each server's status`,
      );
    }
    const x = this.#explain(e);
    if (!(x instanceof Error)) return x;
    let msg = x.message;
    if (up !== null && e instanceof UnrecoverableError) {
      msg = `${what ? `${what} cannot be read: ` : ""}${msg}; ${up} of ${total} known server(s) ` +
        "answer now";
    } else if (what) msg = `${what} cannot be read: ${msg}`;
    return x instanceof FilesError ? new FilesError(msg, x.usage) : new FilesError(msg);
  }

  /**
   * Run a lib/fs call on the tree below `base`. Its errors become the command line's messages,
   * naming the path as typed; a grid error names the directory that could not be read.
   */
  async #inFs<T>(base: Resolved, fn: (fs: ShoalFs) => Promise<T>): Promise<T> {
    const fs = await this.#fsOf(base);
    try {
      return await fn(fs);
    } catch (e) {
      if (e instanceof FsError) throw this.#fsMessage(base, e);
      const at = failedPath(e);
      if (e instanceof CapError && at) {
        throw new FilesError(
          `${below(base, at)}: the directory entry holds a malformed cap (${e.message})`,
        );
      }
      throw await this.#explainServers(e, at ? `the directory ${below(base, at)}` : undefined);
    }
  }

  #fsMessage(base: Resolved, e: FsError): FilesError {
    if (!e.path) return new FilesError(e.message);
    const at = below(base, e.path);
    switch (e.code) {
      case "not-found":
        return new FilesError(`not found: ${at}`);
      case "not-directory":
        return new FilesError(`not a directory: ${at} is a file`);
      case "read-only":
        return new FilesError(
          `${at} is read-only: only its readcap is held, so it cannot be changed`,
        );
      case "exists":
        return new FilesError(`${at} already exists`);
      case "is-directory":
        return new FilesError(`${at} is a directory; cannot replace it with a file`);
      default:
        return new FilesError(e.message);
    }
  }

  /** The file system (lib/fs) rooted at directory `r`; a file or a verify cap is refused. */
  async #fsOf(r: Resolved): Promise<ShoalFs> {
    if (!isDirCap(r.parsed)) throw new FilesError(`not a directory: ${r.display} is a file`);
    if (isVerifyCap(r.parsed)) {
      throw new FilesError(
        `${r.display}: a verify cap cannot list a directory; it allows check and verify only`,
      );
    }
    let fs = this.#fs.get(r.cap);
    if (!fs) {
      fs = await ShoalFs.open(r.cap, this.#fsContext);
      this.#fs.set(r.cap, fs);
    }
    return fs;
  }

  // ---- paths ----

  async #root(p: GridPath): Promise<Resolved> {
    if (p.root.type === "cap") {
      return { cap: p.root.cap, parsed: p.root.parsed, display: displayPath(p, []), name: "" };
    }
    this.#aliases ??= await loadAliases(this.node.dir);
    const name = p.root.name;
    const cap = this.#aliases.get(name);
    if (cap === undefined) {
      const hint = name === "URI"
        ? " (this looks like a Tahoe-LAFS cap, which Shoal cannot read)"
        : "";
      throw new FilesError(
        `no alias named '${name}'${hint}; add one with 'shoal client alias add ${name} DIRCAP' ` +
          "or 'shoal client alias create NAME'",
      );
    }
    let parsed: Cap;
    try {
      parsed = parseCap(cap);
    } catch (e) {
      throw new FilesError(
        `alias '${name}' holds a malformed cap (${(e as Error).message}); re-add it`,
      );
    }
    return { cap, parsed, display: `${name}:`, name: "" };
  }

  #fromNode(base: Resolved, n: FsNode): Resolved {
    return {
      cap: n.cap,
      parsed: n.parsed,
      display: below(base, n.path),
      name: n.name,
      metadata: n.metadata,
    };
  }

  /** The object a path names, or null when only its last name is missing. */
  async stat(arg: string | GridPath): Promise<Resolved | null> {
    const p = typeof arg === "string" ? parseGridPath(arg) : arg;
    const root = await this.#root(p);
    if (p.segments.length === 0) return root;
    const n = await this.#inFs(root, (fs) => fs.stat(p.segments));
    if (!n) return null;
    const r = this.#fromNode(root, n);
    if (p.trailingSlash && !isDirCap(r.parsed)) {
      throw new FilesError(`not a directory: ${r.display} is a file`);
    }
    return r;
  }

  /** Resolve a path argument to the object it names. */
  async resolve(arg: string | GridPath): Promise<Resolved> {
    const p = typeof arg === "string" ? parseGridPath(arg) : arg;
    const r = await this.stat(p);
    if (!r) throw new FilesError(`not found: ${displayPath(p)}`);
    return r;
  }

  /** The entry `name` of directory `dir`, or null. */
  async child(dir: Resolved, name: string): Promise<Resolved | null> {
    const n = await this.#inFs(dir, (fs) => fs.stat([name]));
    return n ? this.#fromNode(dir, n) : null;
  }

  /** The entries of directory `dir`, sorted by name. */
  async children(dir: Resolved): Promise<Resolved[]> {
    const l = await this.#inFs(dir, (fs) => fs.list([]));
    return l.entries.map((n) => this.#fromNode(dir, n));
  }

  /** Storage indexes (hex) of every object along a path, as far as it exists. */
  async #pathStorageIndexes(p: GridPath): Promise<Set<string>> {
    const root = await this.#root(p);
    const out = new Set([storageIndexOf(root)]);
    if (!isDirCap(root.parsed) || p.segments.length === 0) return out;
    for (const n of await this.#inFs(root, (fs) => fs.trail(p.segments))) {
      out.add(storageIndexOf(this.#fromNode(root, n)));
    }
    return out;
  }

  requireWritableDir(d: Resolved): void {
    if (!isDirCap(d.parsed)) throw new FilesError(`not a directory: ${d.display} is a file`);
    if (d.parsed.kind !== "dir-write") {
      throw new FilesError(
        `${d.display} is read-only: only its readcap is held, so it cannot be changed`,
      );
    }
  }

  /** The writable directory holding the last name of `p`, and that name. */
  async writableParent(p: GridPath, what: string): Promise<{ dir: Resolved; name: string }> {
    const { parent, name } = splitLast(p, what);
    const dir = await this.resolve(parent);
    this.requireWritableDir(dir);
    return { dir, name };
  }

  /** Link `cap` as `name` in directory `dir` (replacing a file there). */
  async link(
    dir: Resolved,
    name: string,
    cap: string,
    metadata: Record<string, unknown> = {},
  ): Promise<void> {
    await this.#inFs(dir, (fs) => fs.link([name], cap, { metadata }));
  }

  /** Link several objects in directory `dir` in one change. */
  async linkAll(
    dir: Resolved,
    items: { name: string; cap: string; metadata?: Record<string, unknown> }[],
  ): Promise<void> {
    await this.#inFs(dir, (fs) => fs.linkAll([], items));
  }

  /** Bytes of an object when known without reading it (the cap, or its entry's metadata). */
  knownSize(r: Resolved): number | null {
    if (r.parsed.kind === "immutable-read" || r.parsed.kind === "immutable-verify") {
      return r.parsed.size;
    }
    return num(r.metadata?.size);
  }

  // ---- the verbs ----

  /**
   * Upload a file (immutable unless `mutable`) and return its cap. With `dest`,
   * also link it there: a directory gets it under the source's name; an
   * existing mutable file (writecap held) is overwritten in place.
   */
  put(
    source: PutSource,
    dest: string | undefined,
    opts: { mutable?: boolean; convergence?: boolean } = {},
  ): Promise<string> {
    return put(this, source, dest, opts);
  }

  /** Download CAP|PATH to a local file (atomically) or a sink (stdout). */
  get(arg: string, sink: GetSink): Promise<void> {
    return get(this, arg, sink);
  }

  /**
   * Copy files and directories between this computer and the grid (either
   * way), or within the grid (files are linked, directories rebuilt).
   */
  cp(sources: string[], dest: string, opts: { recursive?: boolean } = {}): Promise<CopyStats> {
    return cp(this, sources, dest, opts);
  }

  health(
    arg: string,
    mode: "check" | "verify" | "repair",
    opts: { verify?: boolean } = {},
  ): Promise<HealthReport> {
    return health(this, arg, mode, opts);
  }

  /** Create a directory; with a path, link it there. Returns its writecap. */
  async mkdir(arg?: string, opts: { parents?: boolean } = {}): Promise<string> {
    if (arg === undefined) {
      const grid = await this.grid();
      return await this.guard(() => grid.createDirectory());
    }
    const p = parseGridPath(arg);
    if (opts.parents) return await this.#mkdirParents(p);
    const { dir, name } = await this.writableParent(p, "the new directory's path");
    const made = await this.#inFs(dir, async (fs) => {
      try {
        return await fs.mkdir([name]);
      } catch (e) {
        if (e instanceof FsError && e.code === "exists") return null;
        throw e;
      }
    });
    if (made) return made.cap;
    const there = await this.child(dir, name);
    throw new FilesError(
      `${there?.display ?? displayPath(p)} already exists${
        there ? ` (a ${kindWord(there.parsed)})` : ""
      }`,
    );
  }

  /** `mkdir -p`: create every missing directory along the path; existing ones are fine. */
  async #mkdirParents(p: GridPath): Promise<string> {
    let cur = await this.#root(p);
    for (const name of p.segments) {
      const there = await this.child(cur, name);
      if (there) {
        if (!isDirCap(there.parsed)) {
          throw new FilesError(`${there.display} exists and is not a directory`);
        }
        cur = there;
        continue;
      }
      this.requireWritableDir(cur);
      const made = await this.#inFs(cur, (fs) => fs.mkdir([name]));
      this.stats.directories++;
      cur = this.#fromNode(cur, made);
    }
    return cur.cap;
  }

  async #row(name: string, cap: string, metadata: Record<string, unknown>): Promise<LsRow> {
    const c = parseCap(cap);
    const row: LsRow = {
      name,
      type: typeOf(c),
      writable: isWriteCap(c),
      size: c.kind === "immutable-read" || c.kind === "immutable-verify"
        ? c.size
        : num(metadata.size),
      ctime: num(metadata.ctime),
      mtime: num(metadata.mtime),
      readcap: isVerifyCap(c) ? null : formatCap(await readcapOf(c)),
    };
    if (isWriteCap(c)) row.writecap = cap;
    return row;
  }

  /** List a directory (or describe one file). */
  async ls(arg: string): Promise<{ directory: boolean; entries: LsRow[] }> {
    const r = await this.resolve(arg);
    if (!isDirCap(r.parsed)) {
      return { directory: false, entries: [await this.#row(r.name, r.cap, r.metadata ?? {})] };
    }
    const rows = [];
    for (const e of await this.children(r)) {
      rows.push(await this.#row(e.name, e.cap, e.metadata ?? {}));
    }
    return { directory: true, entries: rows };
  }

  /** Where `ln`/`mv` put an entry: into DEST if it is a directory, else at DEST. */
  async #linkTarget(p: GridPath, srcName: string | null): Promise<{ dir: Resolved; name: string }> {
    const existing = await this.stat(p);
    if (existing && isDirCap(existing.parsed)) {
      this.requireWritableDir(existing);
      if (srcName === null) {
        throw new FilesError(
          `${existing.display} is a directory: give the name to create inside it`,
        );
      }
      return { dir: existing, name: srcName };
    }
    if (p.segments.length === 0) throw new FilesError(`${displayPath(p)} is not a directory`);
    return await this.writableParent(p, "DEST");
  }

  /** Link the object SRC names (a cap or a path) at DEST. */
  async ln(src: string, dest: string): Promise<void> {
    const sp = parseGridPath(src);
    const dp = parseGridPath(dest);
    const r = await this.resolve(sp);
    if (isVerifyCap(r.parsed)) {
      throw new FilesError("a verify cap cannot be linked into a directory");
    }
    const { dir, name } = await this.#linkTarget(dp, sp.segments.at(-1) ?? null);
    await this.link(dir, name, r.cap, sizeMeta(this.knownSize(r)));
  }

  /** Unlink PATH from its directory (the object itself stays on the grid). */
  async rm(arg: string): Promise<void> {
    const { dir, name } = await this.writableParent(parseGridPath(arg), "PATH");
    await this.#inFs(dir, (fs) => fs.unlink([name]));
  }

  /** Move (rename) an entry, within a directory or between directories. */
  async mv(src: string, dest: string): Promise<void> {
    const sp = parseGridPath(src);
    const dp = parseGridPath(dest);
    const { dir: from, name } = await this.writableParent(sp, "SRC");
    const r = await this.child(from, name);
    if (!r) throw new FilesError(`not found: ${displayPath(sp)}`);
    const { dir: to, name: newName } = await this.#linkTarget(dp, name);
    // Across roots (two aliases, a cap) a path alone cannot tell: compare storage indexes.
    if (isDirCap(r.parsed) && (await this.#pathStorageIndexes(dp)).has(storageIndexOf(r))) {
      throw new FilesError(`cannot move ${r.display} into itself`);
    }
    if (storageIndexOf(from) === storageIndexOf(to)) {
      if (name === newName) return;
      await this.#inFs(from, (fs) => fs.rename([name], [newName]));
      return;
    }
    // Link first, then unlink: an interruption leaves the entry in both places, never neither.
    await this.link(to, newName, r.cap, r.metadata);
    await this.#inFs(from, (fs) => fs.unlink([name]));
  }
}
