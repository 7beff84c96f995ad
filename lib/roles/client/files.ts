/**
 * The client's file operations behind `shoal client put/get/ls/mkdir/ln/rm/mv/cp/
 * check/verify/repair` (docs/client-commands.md). The CLI (lib/cli/client_files.ts)
 * only parses arguments and prints; everything else is here.
 *
 * A FileSession opens the node directory, resolves paths (aliases, caps, names
 * below them) and opens a Grid over the recorded servers on first need.
 * Error messages never contain a cap.
 */
import { base32Encode, toHex } from "../../codec/mod.ts";
import {
  type Cap,
  CapError,
  capKindName,
  capStorageIndexSync,
  formatCap,
  isDirCap,
  isImmutableCap,
  isVerifyCap,
  isWriteCap,
  parseCap,
  randomBytes,
  readcapOf,
} from "../../crypto/mod.ts";
import {
  DirectoryError,
  type DirEntry,
  type Grid,
  type ImmutableCheck,
  type ImmutableSource,
  mapLimit,
  MAX_MUTABLE_SIZE,
  normalizeName,
  NotEnoughServersError,
  UnrecoverableError,
} from "../../grid/mod.ts";
import { probeServers } from "./probe.ts";
import { fsyncDir } from "../nodefs.ts";
import { loadAliases } from "./aliases.ts";
import { type ClientNode, convergenceSecret, loadClientNode, openGrid } from "./node.ts";
import {
  displayPath,
  FilesError,
  type GridPath,
  looksLikeGridPath,
  parseGridPath,
  splitLast,
} from "./paths.ts";
import type { Progress } from "./progress.ts";
import { recordUpload } from "./uploads.ts";

export { FilesError } from "./paths.ts";

type OnProgress = (done: number, total: number) => void;

/** Below this, stdin for an immutable put is kept in memory; above, spooled to C/tmp. */
const SPOOL_MEMORY = 8 * 1024 * 1024;
const READ_CHUNK = 1024 * 1024;
const PARALLEL_FILES = 4;

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
  /** The directory entry it was reached through, if any. */
  entry?: DirEntry;
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

export interface HealthReport {
  kind: string;
  healthy: boolean;
  recoverable: boolean;
  repaired?: boolean;
  /** Human-readable lines. */
  summary: string[];
  /** The grid layer's full result (bytes as hex), for --json. */
  detail: unknown;
}

export type PutSource = { kind: "file"; path: string } | {
  kind: "stream";
  stream: ReadableStream<Uint8Array>;
};
export type GetSink = { kind: "file"; path: string } | {
  kind: "sink";
  write(chunk: Uint8Array): Promise<void>;
};

export interface CopyStats {
  files: number;
  directories: number;
  bytes: number;
  /** Local entries `cp` skipped, each "PATH: why" (the copy goes on; the command then fails). */
  skipped: string[];
}

type PutTarget = { overwrite?: Resolved; dir?: Resolved; name?: string };

/** A copy source: a local file/directory or a grid object. */
interface SrcItem {
  name: string | null;
  dir: boolean;
  size: number | null;
  label: string;
  children(): Promise<SrcItem[]>;
  /** A file's cap on the grid (uploading it if local). */
  toCap(): Promise<string>;
}

function typeOf(c: Cap): EntryType {
  return isDirCap(c) ? "directory" : isImmutableCap(c) ? "file" : "mutable-file";
}

function kindWord(c: Cap): string {
  return isDirCap(c) ? "directory" : "file";
}

/** JSON-safe copy: bytes become hex, server ids (`serverId`, lists of them) base32. */
export function jsonSafe(x: unknown, key?: string): unknown {
  // Server ids are base32 everywhere else (servers.json, 'client servers'); other bytes hex.
  if (x instanceof Uint8Array) return key === "serverId" ? base32Encode(x) : toHex(x);
  if (Array.isArray(x)) return x.map((v) => jsonSafe(v, key));
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(
      Object.entries(x as Record<string, unknown>).map(([k, v]) => [k, jsonSafe(v, k)]),
    );
  }
  return x;
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await f.write(b.subarray(off));
}

function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

function joinLocal(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** A local file as an ImmutableSource: each open() reads it afresh, 1 MiB at a time. */
export function fileSource(path: string, size: number): ImmutableSource {
  return {
    size,
    open() {
      let f: Deno.FsFile | null = null;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          f ??= await Deno.open(path, { read: true });
          const buf = new Uint8Array(READ_CHUNK);
          const n = await f.read(buf);
          if (n === null) {
            f.close();
            f = null;
            c.close();
          } else {
            c.enqueue(buf.subarray(0, n));
          }
        },
        cancel() {
          f?.close();
          f = null;
        },
      }, { highWaterMark: 0 });
    },
  };
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      if (bytes.length) c.enqueue(bytes);
      c.close();
    },
  });
}

async function readAllLimited(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  what: string,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const c of stream) {
    total += c.length;
    if (total > limit) {
      throw new FilesError(
        `${what} is larger than the ${limit}-byte limit of mutable files; put it without --mutable`,
      );
    }
    chunks.push(c);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Regular files and their bytes under a local path (what `cp` will upload). */
async function localTotals(
  path: string,
  recursive: boolean,
  plan: { files: number; bytes: number },
): Promise<void> {
  const st = await Deno.lstat(path).catch(() => null);
  if (!st) return;
  if (st.isFile) {
    plan.files++;
    plan.bytes += st.size;
  } else if (st.isDirectory && recursive) {
    for await (const e of Deno.readDir(path)) {
      await localTotals(joinLocal(path, e.name), recursive, plan);
    }
  }
}

/** Per-file progress that feeds one bar for the whole copy (files run in parallel). */
function aggregateProgress(whole: Progress): (label: string, total: number) => Progress {
  let finished = 0;
  const live = new Map<object, number>();
  const show = () => whole.update(finished + [...live.values()].reduce((a, b) => a + b, 0));
  return () => {
    const key = {};
    live.set(key, 0);
    return {
      update(done: number) {
        live.set(key, done);
        show();
      },
      finish() {
        finished += live.get(key) ?? 0;
        live.delete(key);
        show();
      },
    };
  };
}

/** A local path for a message: control characters shown as \xNN. */
function printable(path: string): string {
  return path.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** When no server answered a check, say so and what to do (after the per-server lines). */
function noServerLine(servers: { error?: string | null }[], dir: string): string[] {
  if (servers.length === 0 || !servers.every((s) => s.error)) return [];
  return [
    `no storage server is reachable: none of the ${servers.length} server(s) asked answered. ` +
    `Check that they are running ('shoal storage run'); 'shoal client servers --dir ${dir}' ` +
    "shows each server's status",
  ];
}

/** "PATH:" for a report line; an alias root ("home:") keeps its single colon. */
function labelOf(display: string): string {
  return display.endsWith(":") ? display : `${display}:`;
}

function sizeMeta(size: number | null): Record<string, unknown> {
  return size === null ? {} : { size };
}

export class FileSession {
  #grid: Grid | null = null;
  #aliases: Map<string, string> | null = null;
  readonly stats: CopyStats = { files: 0, directories: 0, bytes: 0, skipped: [] };

  private constructor(readonly node: ClientNode, readonly opts: SessionOptions) {}

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
  async #guard<T>(fn: () => Promise<T>, what?: string): Promise<T> {
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

  // ---- paths ----

  async #root(p: GridPath): Promise<Resolved> {
    if (p.root.type === "cap") {
      return { cap: p.root.cap, parsed: p.root.parsed, display: displayPath(p, []) };
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
    return { cap, parsed, display: `${name}:` };
  }

  async #entries(dir: Resolved): Promise<DirEntry[]> {
    if (!isDirCap(dir.parsed)) throw new FilesError(`not a directory: ${dir.display} is a file`);
    if (isVerifyCap(dir.parsed)) {
      throw new FilesError(
        `${dir.display}: a verify cap cannot list a directory; it allows check and verify only`,
      );
    }
    const grid = await this.grid();
    return await this.#guard(
      async () => (await grid.listDirectory(dir.cap)).entries,
      `the directory ${dir.display}`,
    );
  }

  #fromEntry(e: DirEntry, display: string): Resolved {
    const cap = e.writecap ?? e.readcap;
    let parsed: Cap;
    try {
      parsed = parseCap(cap);
    } catch (err) {
      throw new FilesError(
        `${display}: the directory entry holds a malformed cap (${(err as Error).message})`,
      );
    }
    return { cap, parsed, display, entry: e };
  }

  /** Walk a path; with `allowMissingLast`, null when only the last name is missing. */
  async #walk(p: GridPath, allowMissingLast: boolean): Promise<Resolved | null> {
    let cur = await this.#root(p);
    for (let i = 0; i < p.segments.length; i++) {
      const name = p.segments[i];
      if (!isDirCap(cur.parsed)) throw new FilesError(`not a directory: ${cur.display} is a file`);
      const entries = await this.#entries(cur);
      const display = displayPath(p, p.segments.slice(0, i + 1));
      const e = entries.find((x) => x.name === name);
      if (!e) {
        if (allowMissingLast && i === p.segments.length - 1) return null;
        throw new FilesError(`not found: ${display}`);
      }
      cur = this.#fromEntry(e, display);
    }
    if (p.trailingSlash && p.segments.length > 0 && !isDirCap(cur.parsed)) {
      throw new FilesError(`not a directory: ${cur.display} is a file`);
    }
    return cur;
  }

  /** Storage indexes (hex) of every object along a path, as far as it exists. */
  async #pathStorageIndexes(p: GridPath): Promise<Set<string>> {
    const out = new Set<string>();
    let cur: Resolved | null = await this.#root(p);
    out.add(toHex(capStorageIndexSync(cur.parsed)));
    for (let i = 0; i < p.segments.length && cur && isDirCap(cur.parsed); i++) {
      const e: DirEntry | undefined = (await this.#entries(cur)).find((x) =>
        x.name === p.segments[i]
      );
      cur = e ? this.#fromEntry(e, displayPath(p, p.segments.slice(0, i + 1))) : null;
      if (cur) out.add(toHex(capStorageIndexSync(cur.parsed)));
    }
    return out;
  }

  /** Resolve a path argument to the object it names. */
  async resolve(arg: string | GridPath): Promise<Resolved> {
    const p = typeof arg === "string" ? parseGridPath(arg) : arg;
    return (await this.#walk(p, false))!;
  }

  #requireWritableDir(d: Resolved): void {
    if (!isDirCap(d.parsed)) throw new FilesError(`not a directory: ${d.display} is a file`);
    if (d.parsed.kind !== "dir-write") {
      throw new FilesError(
        `${d.display} is read-only: only its readcap is held, so it cannot be changed`,
      );
    }
  }

  async #writableParent(p: GridPath, what: string): Promise<{ dir: Resolved; name: string }> {
    const { parent, name } = splitLast(p, what);
    const dir = await this.resolve(parent);
    this.#requireWritableDir(dir);
    return { dir, name };
  }

  async #link(
    dir: Resolved,
    name: string,
    cap: string,
    metadata: Record<string, unknown> = {},
  ): Promise<void> {
    const grid = await this.grid();
    await this.#guard(() => grid.setEntry(dir.cap, name, cap, { metadata }));
  }

  // ---- put / get ----

  /**
   * Upload a file (immutable unless `mutable`) and return its cap. With `dest`,
   * also link it there: a directory gets it under the source's name; an
   * existing mutable file (writecap held) is overwritten in place.
   */
  async put(
    source: PutSource,
    dest: string | undefined,
    opts: { mutable?: boolean; convergence?: boolean } = {},
  ): Promise<string> {
    const destPath = dest === undefined ? null : parseGridPath(dest);
    let size: number | null = null;
    if (source.kind === "file") {
      const st = await statOrNull(source.path);
      if (!st) throw new FilesError(`no such local file: ${source.path}`);
      if (st.isDirectory) {
        throw new FilesError(`${source.path} is a directory: use 'cp -r' to copy a directory`);
      }
      size = st.size;
    }
    const srcName = source.kind === "file" ? basename(source.path) : null;
    const target = destPath ? await this.#putTarget(destPath, srcName) : null;
    const label = srcName ?? "stdin";

    if (target?.overwrite || opts.mutable) {
      if (size !== null && size > MAX_MUTABLE_SIZE) {
        throw new FilesError(
          `${label} is larger than the ${MAX_MUTABLE_SIZE}-byte limit of mutable files; put it without --mutable`,
        );
      }
      const stream = source.kind === "file" ? fileSource(source.path, size!).open() : source.stream;
      const bytes = await readAllLimited(stream, MAX_MUTABLE_SIZE, label);
      const grid = await this.grid();
      if (target?.overwrite) {
        await this.#guard(() => grid.writeMutable(target.overwrite!.cap, bytes));
        return target.overwrite.cap;
      }
      const { writecap } = await this.#guard(() => grid.createMutableFile(bytes));
      if (target?.dir) await this.#link(target.dir, target.name!, writecap, sizeMeta(bytes.length));
      if (!target) await recordUpload(this.node.dir, writecap, srcName); // kept by upkeep
      return writecap;
    }

    let cap: string;
    if (source.kind === "file") {
      cap = await this.#uploadImmutable(
        fileSource(source.path, size!),
        label,
        opts.convergence ?? true,
      );
    } else {
      const spooled = await this.#spool(source.stream);
      try {
        size = spooled.source instanceof Uint8Array ? spooled.source.length : spooled.source.size;
        cap = await this.#uploadImmutable(spooled.source, label, opts.convergence ?? true);
      } finally {
        await spooled.cleanup();
      }
    }
    if (target?.dir) await this.#link(target.dir, target.name!, cap, sizeMeta(size));
    if (!target) await recordUpload(this.node.dir, cap, srcName); // kept by upkeep
    return cap;
  }

  async #putTarget(
    p: GridPath,
    srcName: string | null,
  ): Promise<PutTarget> {
    const existing = await this.#walk(p, true);
    const intoDir = async (dir: Resolved): Promise<PutTarget> => {
      this.#requireWritableDir(dir);
      if (srcName === null) {
        throw new FilesError(
          `${dir.display} is a directory: give the name to create, e.g. ${
            dir.display.endsWith(":") ? dir.display : dir.display + "/"
          }NAME`,
        );
      }
      const name = this.#checkLocalName(srcName);
      const e = (await this.#entries(dir)).find((x) => x.name === name);
      if (!e) return { dir, name };
      const r = this.#fromEntry(e, `${dir.display}${dir.display.endsWith(":") ? "" : "/"}${name}`);
      return await onExisting(r, dir, name);
    };
    const onExisting = async (
      r: Resolved,
      parent: Resolved | null,
      name: string | null,
    ): Promise<PutTarget> => {
      if (r.parsed.kind === "mutable-write") return { overwrite: r };
      if (r.parsed.kind === "mutable-read") {
        throw new FilesError(`${r.display} is a read-only mutable file: only its readcap is held`);
      }
      if (isDirCap(r.parsed)) return await intoDir(r);
      // An immutable file: replace the link.
      if (!parent || name === null) {
        throw new FilesError(`${r.display} is an immutable file and cannot be changed`);
      }
      this.#requireWritableDir(parent);
      return { dir: parent, name };
    };
    if (existing === null) return await this.#writableParent(p, "DEST");
    if (p.segments.length === 0) return await onExisting(existing, null, null);
    const { parent, name } = splitLast(p, "DEST");
    if (isDirCap(existing.parsed)) return await intoDir(existing);
    return await onExisting(existing, await this.resolve(parent), name);
  }

  #checkLocalName(name: string): string {
    try {
      return normalizeName(name);
    } catch (e) {
      if (e instanceof DirectoryError) {
        throw new FilesError(`cannot use the local name on the grid: ${e.message}`);
      }
      throw e;
    }
  }

  async #spool(
    stream: ReadableStream<Uint8Array>,
  ): Promise<{ source: Uint8Array | ImmutableSource; cleanup(): Promise<void> }> {
    const chunks: Uint8Array[] = [];
    let total = 0;
    let file: Deno.FsFile | null = null;
    let path: string | null = null;
    const cleanup = async () => {
      try {
        file?.close();
      } catch { /* closed */ }
      if (path) await Deno.remove(path).catch(() => {});
    };
    try {
      for await (const c of stream) {
        if (!file && total + c.length <= SPOOL_MEMORY) {
          chunks.push(c);
          total += c.length;
          continue;
        }
        if (!file) {
          const dir = `${this.node.dir}/tmp`;
          await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
          path = await Deno.makeTempFile({ dir, prefix: "stdin-" }); // mode 0600
          file = await Deno.open(path, { write: true });
          for (const x of chunks) await writeAll(file, x);
          chunks.length = 0;
        }
        await writeAll(file, c);
        total += c.length;
      }
    } catch (e) {
      await cleanup();
      throw e;
    }
    if (file && path) {
      file.close();
      file = null;
      return { source: fileSource(path, total), cleanup };
    }
    const bytes = new Uint8Array(total);
    let off = 0;
    for (const c of chunks) {
      bytes.set(c, off);
      off += c.length;
    }
    return { source: bytes, cleanup };
  }

  async #uploadImmutable(
    src: ImmutableSource | Uint8Array,
    label: string,
    convergence: boolean,
  ): Promise<string> {
    const grid = await this.grid();
    const { k, n, happy } = this.node.config.shares;
    const secret = convergence ? await convergenceSecret(this.node) : null;
    const total = src instanceof Uint8Array ? src.length : src.size;
    const prog = this.opts.progress?.(label, total);
    try {
      const r = await this.#guard(() =>
        grid.uploadImmutable(src, {
          k,
          n,
          happy,
          convergenceSecret: secret,
          onProgress: prog ? (d, t) => prog.update(d, t) : undefined,
          signal: this.opts.signal,
        })
      );
      this.stats.files++;
      this.stats.bytes += total;
      return r.cap;
    } finally {
      prog?.finish();
    }
  }

  /** Open an object's contents for reading. */
  async openRead(
    r: Resolved,
    onProgress?: OnProgress,
  ): Promise<{ size: number | null; stream: ReadableStream<Uint8Array> }> {
    if (isDirCap(r.parsed)) {
      throw new FilesError(
        `${r.display} is a directory: use 'ls' to list it, or 'cp -r' to copy it`,
      );
    }
    if (isVerifyCap(r.parsed)) {
      throw new FilesError(
        `${r.display}: a verify cap cannot read contents; it allows check and verify only`,
      );
    }
    const grid = await this.grid();
    if (r.parsed.kind === "immutable-read") {
      return { size: r.parsed.size, stream: grid.downloadImmutable(r.cap, { onProgress }) };
    }
    const res = await this.#guard(() => grid.readMutable(r.cap));
    onProgress?.(res.contents.length, res.contents.length);
    return { size: res.contents.length, stream: streamOf(res.contents) };
  }

  /** Download CAP|PATH to a local file (atomically) or a sink (stdout). */
  async get(arg: string, sink: GetSink): Promise<void> {
    const p = parseGridPath(arg);
    const r = await this.resolve(p);
    if (sink.kind === "file") {
      let path = sink.path;
      const st = await statOrNull(path);
      if (st?.isDirectory || path.endsWith("/")) {
        // OUT is a directory: write inside it under the source's name.
        const name = p.segments.at(-1);
        if (name === undefined) {
          throw new FilesError(
            `${path} is a directory and a bare cap has no name: give OUT as ${
              path.replace(/\/+$/, "")
            }/NAME`,
          );
        }
        if (!st?.isDirectory) throw new FilesError(`no such local directory: ${path}`);
        path = joinLocal(path.replace(/\/+$/, "") || "/", name);
      }
      await this.#downloadTo(r, path);
      return;
    }
    const prog = r.parsed.kind === "immutable-read"
      ? this.opts.progress?.("download", r.parsed.size)
      : undefined;
    try {
      const { stream } = await this.openRead(r, prog ? (d, t) => prog.update(d, t) : undefined);
      await this.#guard(async () => {
        for await (const c of stream) await sink.write(c);
      });
    } finally {
      prog?.finish();
    }
  }

  /** Write an object to `path` via `path.tmp-XXXX`, renamed only on success. */
  async #downloadTo(r: Resolved, path: string): Promise<void> {
    const st = await statOrNull(path);
    if (st?.isDirectory) throw new FilesError(`${path} is a directory: give a file name to write`);
    const slash = path.lastIndexOf("/");
    const parentDir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
    if (!(await statOrNull(parentDir))?.isDirectory) {
      throw new FilesError(`no such local directory: ${parentDir}`);
    }
    const label = basename(path);
    const prog = r.parsed.kind === "immutable-read"
      ? this.opts.progress?.(label, r.parsed.size)
      : undefined;
    const tmp = `${path}.tmp-${toHex(randomBytes(4))}`;
    let f: Deno.FsFile | null = null;
    try {
      const { stream } = await this.openRead(r, prog ? (d, t) => prog.update(d, t) : undefined);
      f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
      let bytes = 0;
      await this.#guard(async () => {
        for await (const c of stream) {
          await writeAll(f!, c);
          bytes += c.length;
        }
      });
      await f.sync();
      f.close();
      f = null;
      await Deno.rename(tmp, path);
      await fsyncDir(parentDir).catch(() => {});
      this.stats.files++;
      this.stats.bytes += bytes;
    } catch (e) {
      try {
        f?.close();
      } catch { /* closed */ }
      await Deno.remove(tmp).catch(() => {});
      throw e;
    } finally {
      prog?.finish();
    }
  }

  // ---- directories ----

  /** Create a directory; with a path, link it there. Returns its writecap. */
  async mkdir(arg?: string, opts: { parents?: boolean } = {}): Promise<string> {
    const p = arg === undefined ? null : parseGridPath(arg);
    if (p && opts.parents) return await this.#mkdirParents(p);
    const target = p ? await this.#writableParent(p, "the new directory's path") : null;
    if (target) {
      const existing = (await this.#entries(target.dir)).find((e) => e.name === target.name);
      if (existing) {
        const r = this.#fromEntry(existing, displayPath(p!));
        throw new FilesError(`${r.display} already exists (a ${kindWord(r.parsed)})`);
      }
    }
    const grid = await this.grid();
    const cap = await this.#guard(() => grid.createDirectory());
    if (target) {
      await this.#guard(() => grid.setEntry(target.dir.cap, target.name, cap, { noReplace: true }));
    }
    return cap;
  }

  /** `mkdir -p`: create every missing directory along the path; existing ones are fine. */
  async #mkdirParents(p: GridPath): Promise<string> {
    let cur = await this.#root(p);
    for (let i = 0; i < p.segments.length; i++) {
      const display = displayPath(p, p.segments.slice(0, i + 1));
      const e = (await this.#entries(cur)).find((x) => x.name === p.segments[i]);
      if (e) {
        cur = this.#fromEntry(e, display);
        if (!isDirCap(cur.parsed)) {
          throw new FilesError(`${display} exists and is not a directory`);
        }
        continue;
      }
      this.#requireWritableDir(cur);
      const grid = await this.grid();
      const cap = await this.#guard(() => grid.createDirectory());
      await this.#guard(() => grid.setEntry(cur.cap, p.segments[i], cap, { noReplace: true }));
      this.stats.directories++;
      cur = { cap, parsed: parseCap(cap), display };
    }
    return cur.cap;
  }

  async #row(name: string, cap: string, metadata: Record<string, unknown>): Promise<LsRow> {
    const c = parseCap(cap);
    const num = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? x : null);
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
    const p = parseGridPath(arg);
    const r = await this.resolve(p);
    if (!isDirCap(r.parsed)) {
      const name = p.segments.at(-1) ?? "";
      return { directory: false, entries: [await this.#row(name, r.cap, r.entry?.metadata ?? {})] };
    }
    const entries = await this.#entries(r);
    const rows = [];
    for (const e of entries) {
      rows.push(await this.#row(e.name, e.writecap ?? e.readcap, e.metadata));
    }
    return { directory: true, entries: rows };
  }

  /** Where `ln`/`mv` put an entry: into DEST if it is a directory, else at DEST. */
  async #linkTarget(p: GridPath, srcName: string | null): Promise<{ dir: Resolved; name: string }> {
    const existing = await this.#walk(p, true);
    if (existing && isDirCap(existing.parsed)) {
      this.#requireWritableDir(existing);
      if (srcName === null) {
        throw new FilesError(
          `${existing.display} is a directory: give the name to create inside it`,
        );
      }
      return { dir: existing, name: srcName };
    }
    if (p.segments.length === 0) throw new FilesError(`${displayPath(p)} is not a directory`);
    return await this.#writableParent(p, "DEST");
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
    await this.#link(dir, name, r.cap, sizeMeta(this.#knownSize(r)));
  }

  #knownSize(r: Resolved): number | null {
    if (r.parsed.kind === "immutable-read" || r.parsed.kind === "immutable-verify") {
      return r.parsed.size;
    }
    const s = r.entry?.metadata.size;
    return typeof s === "number" ? s : null;
  }

  /** Unlink PATH from its directory (the object itself stays on the grid). */
  async rm(arg: string): Promise<void> {
    const p = parseGridPath(arg);
    const { dir, name } = await this.#writableParent(p, "PATH");
    const grid = await this.grid();
    try {
      await grid.removeEntry(dir.cap, name);
    } catch (e) {
      if (e instanceof DirectoryError && e.message.startsWith("no entry")) {
        throw new FilesError(`not found: ${displayPath(p)}`);
      }
      throw this.#explain(e);
    }
  }

  /** Move (rename) an entry, within a directory or between directories. */
  async mv(src: string, dest: string): Promise<void> {
    const sp = parseGridPath(src);
    const dp = parseGridPath(dest);
    const { dir: from, name } = await this.#writableParent(sp, "SRC");
    const e = (await this.#entries(from)).find((x) => x.name === name);
    if (!e) throw new FilesError(`not found: ${displayPath(sp)}`);
    const r = this.#fromEntry(e, displayPath(sp));
    const { dir: to, name: newName } = await this.#linkTarget(dp, name);
    const fromSi = toHex(capStorageIndexSync(from.parsed));
    const toSi = toHex(capStorageIndexSync(to.parsed));
    if (
      isDirCap(r.parsed) &&
      (await this.#pathStorageIndexes(dp)).has(toHex(capStorageIndexSync(r.parsed)))
    ) {
      throw new FilesError(`cannot move ${r.display} into itself`);
    }
    const grid = await this.grid();
    if (fromSi === toSi) {
      if (name === newName) return;
      await this.#guard(() => grid.renameEntry(from.cap, name, newName));
      return;
    }
    await this.#guard(() => grid.setEntry(to.cap, newName, r.cap, { metadata: e.metadata }));
    await this.#guard(() => grid.removeEntry(from.cap, name));
  }

  // ---- cp ----

  #localItem(path: string, name: string | null, st: Deno.FileInfo): SrcItem {
    return {
      name,
      dir: st.isDirectory,
      size: st.isFile ? st.size : null,
      label: path,
      children: async () => {
        const out: SrcItem[] = [];
        const names: string[] = [];
        for await (const d of Deno.readDir(path)) names.push(d.name);
        names.sort();
        for (const n of names) {
          const full = joinLocal(path, n);
          const cst = await Deno.lstat(full);
          if (cst.isSymlink || (!cst.isFile && !cst.isDirectory)) {
            this.opts.log?.(`skipping ${full}: not a regular file or directory`);
            continue;
          }
          let name: string;
          try {
            name = this.#checkLocalName(n);
          } catch (e) {
            if (!(e instanceof FilesError)) throw e;
            const why = `${printable(full)}: ${e.message}`;
            this.opts.log?.(`skipping ${why}`);
            this.stats.skipped.push(why);
            continue;
          }
          out.push(this.#localItem(full, name, cst));
        }
        return out;
      },
      toCap: () => this.#uploadImmutable(fileSource(path, st.size), basename(path), true),
    };
  }

  #gridItem(r: Resolved, name: string | null, ancestors: Set<string>): SrcItem {
    const si = toHex(capStorageIndexSync(r.parsed));
    return {
      name,
      dir: isDirCap(r.parsed),
      size: this.#knownSize(r),
      label: r.display,
      children: async () => {
        if (ancestors.has(si)) {
          throw new FilesError(
            `${r.display} contains itself (a directory cycle); cannot copy it recursively`,
          );
        }
        const inner = new Set(ancestors).add(si);
        const sep = r.display.endsWith(":") || r.display.endsWith("/") ? "" : "/";
        return (await this.#entries(r)).map((e) =>
          this.#gridItem(this.#fromEntry(e, `${r.display}${sep}${e.name}`), e.name, inner)
        );
      },
      toCap: () => {
        this.stats.files++;
        return Promise.resolve(r.cap);
      },
    };
  }

  async #entryFor(name: string, cap: string, metadata: Record<string, unknown>): Promise<DirEntry> {
    const c = parseCap(cap);
    const readcap = formatCap(await readcapOf(c));
    return { name, readcap, writecap: isWriteCap(c) ? cap : undefined, metadata };
  }

  async #buildTree(item: SrcItem): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const kids = await item.children();
    const entries = await mapLimit(kids, PARALLEL_FILES, async (k) => {
      const cap = k.dir ? await this.#buildTree(k) : await k.toCap();
      return await this.#entryFor(k.name!, cap, { ctime: now, mtime: now, ...sizeMeta(k.size) });
    });
    const grid = await this.grid();
    const cap = await this.#guard(() => grid.createDirectory(entries));
    this.stats.directories++;
    return cap;
  }

  async #mergeInto(dir: Resolved, item: SrcItem): Promise<void> {
    this.#requireWritableDir(dir);
    const existing = await this.#entries(dir);
    const kids = await item.children();
    const sep = dir.display.endsWith(":") ? "" : "/";
    const now = Math.floor(Date.now() / 1000);
    const made = await mapLimit(kids, PARALLEL_FILES, async (k): Promise<DirEntry | null> => {
      const e = existing.find((x) => x.name === k.name);
      const there = e ? this.#fromEntry(e, `${dir.display}${sep}${k.name}`) : null;
      if (k.dir && there) {
        if (!isDirCap(there.parsed)) {
          throw new FilesError(`${there.display} exists and is not a directory`);
        }
        await this.#mergeInto(there, k);
        return null;
      }
      if (!k.dir && there && isDirCap(there.parsed)) {
        throw new FilesError(`${there.display} is a directory; cannot replace it with a file`);
      }
      const cap = k.dir ? await this.#buildTree(k) : await k.toCap();
      return await this.#entryFor(k.name!, cap, {
        ctime: now,
        ...(e?.metadata ?? {}),
        mtime: now,
        ...sizeMeta(k.size),
      });
    });
    const fresh = made.filter((x): x is DirEntry => x !== null);
    if (fresh.length === 0) return;
    const names = new Set(fresh.map((x) => x.name));
    const grid = await this.grid();
    await this.#guard(() =>
      grid.modifyDirectory(
        dir.cap,
        (entries) => [...entries.filter((x) => !names.has(x.name)), ...fresh],
      )
    );
  }

  async #copyToGrid(
    item: SrcItem,
    dir: Resolved,
    name: string | null,
    recursive: boolean,
  ): Promise<void> {
    this.#requireWritableDir(dir);
    if (item.dir && !recursive) {
      throw new FilesError(`${item.label} is a directory: use 'cp -r' to copy it`);
    }
    if (name === null) {
      if (!item.dir) {
        throw new FilesError(`${dir.display} is a directory: give the name to create inside it`);
      }
      await this.#mergeInto(dir, item);
      return;
    }
    const e = (await this.#entries(dir)).find((x) => x.name === name);
    const sep = dir.display.endsWith(":") ? "" : "/";
    const there = e ? this.#fromEntry(e, `${dir.display}${sep}${name}`) : null;
    if (item.dir) {
      if (there) {
        if (!isDirCap(there.parsed)) {
          throw new FilesError(`${there.display} exists and is not a directory`);
        }
        await this.#mergeInto(there, item);
        return;
      }
      await this.#link(dir, name, await this.#buildTree(item));
      return;
    }
    if (there && isDirCap(there.parsed)) {
      throw new FilesError(`${there.display} is a directory; cannot replace it with a file`);
    }
    await this.#link(dir, name, await item.toCap(), sizeMeta(item.size));
  }

  async #copyToLocal(
    r: Resolved,
    path: string,
    recursive: boolean,
    ancestors: Set<string>,
  ): Promise<void> {
    if (!isDirCap(r.parsed)) {
      await this.#downloadTo(r, path);
      return;
    }
    if (!recursive) throw new FilesError(`${r.display} is a directory: use 'cp -r' to copy it`);
    const si = toHex(capStorageIndexSync(r.parsed));
    if (ancestors.has(si)) {
      throw new FilesError(
        `${r.display} contains itself (a directory cycle); cannot copy it recursively`,
      );
    }
    const inner = new Set(ancestors).add(si);
    const st = await lstatOrNull(path);
    if (st && !st.isDirectory) throw new FilesError(`${path} exists and is not a directory`);
    if (!st) {
      await Deno.mkdir(path);
      this.stats.directories++;
    }
    const entries = await this.#entries(r);
    const sep = r.display.endsWith(":") ? "" : "/";
    await mapLimit(entries, PARALLEL_FILES, async (e) => {
      // Entry names are validated by the directory decoder: no "/", ".", ".." or control characters.
      const cr = this.#fromEntry(e, `${r.display}${sep}${e.name}`);
      await this.#copyToLocal(cr, joinLocal(path, e.name), true, inner);
    });
  }

  /**
   * Copy files and directories between this computer and the grid (either
   * way), or within the grid (files are linked, directories rebuilt).
   */
  async cp(
    sources: string[],
    dest: string,
    opts: { recursive?: boolean } = {},
  ): Promise<CopyStats> {
    const recursive = opts.recursive ?? false;
    const srcs = sources.map((s) => ({ text: s, grid: looksLikeGridPath(s) }));
    // Local -> grid with a progress display: one bar for the whole copy, with its total.
    const perFile = this.opts.progress;
    let whole: Progress | undefined;
    if (perFile && looksLikeGridPath(dest) && srcs.every((x) => !x.grid)) {
      const plan = { files: 0, bytes: 0 };
      for (const x of srcs) await localTotals(x.text, recursive, plan);
      whole = perFile(`${plan.files} file(s)`, plan.bytes);
      if (whole) this.opts.progress = aggregateProgress(whole);
    }
    try {
      return await this.#cp(srcs, dest, recursive);
    } finally {
      this.opts.progress = perFile;
      whole?.finish();
    }
  }

  async #cp(
    srcs: { text: string; grid: boolean }[],
    dest: string,
    recursive: boolean,
  ): Promise<CopyStats> {
    const many = srcs.length > 1;
    if (looksLikeGridPath(dest)) {
      const dp = parseGridPath(dest);
      for (const s of srcs) if (s.grid) parseGridPath(s.text); // syntax errors before any work
      const existing = await this.#walk(dp, true);
      const destIsDir = existing !== null && isDirCap(existing.parsed);
      if ((many || dp.trailingSlash) && !destIsDir) {
        throw new FilesError(
          existing
            ? `not a directory: ${existing.display} is a file`
            : `not found: ${displayPath(dp)} (it must be an existing directory)`,
        );
      }
      for (const s of srcs) {
        let item: SrcItem;
        if (s.grid) {
          const sp = parseGridPath(s.text);
          item = this.#gridItem(await this.resolve(sp), sp.segments.at(-1) ?? null, new Set());
        } else {
          const st = await statOrNull(s.text);
          if (!st) throw new FilesError(`no such local file or directory: ${s.text}`);
          const b = basename(s.text);
          item = this.#localItem(
            s.text,
            b === "" || b === "." || b === ".." ? null : this.#checkLocalName(b),
            st,
          );
        }
        if (destIsDir) await this.#copyToGrid(item, existing!, item.name, recursive);
        else {
          const { dir, name } = await this.#writableParent(dp, "DEST");
          await this.#copyToGrid(item, dir, name, recursive);
        }
      }
      return this.stats;
    }
    if (srcs.some((s) => !s.grid)) {
      throw new FilesError(
        "cp copies between this computer and the grid: write grid paths as ALIAS:path or CAP/path " +
          "(a local name containing ':' can be written ./name)",
        true,
      );
    }
    const paths = srcs.map((s) => parseGridPath(s.text));
    const st = await statOrNull(dest);
    const destIsDir = st?.isDirectory ?? false;
    if (many && !destIsDir) {
      throw new FilesError(
        `${dest} must be an existing local directory when copying several sources`,
      );
    }
    if (st && !destIsDir && dest.endsWith("/")) throw new FilesError(`${dest} is not a directory`);
    for (const sp of paths) {
      const r = await this.resolve(sp);
      const name = sp.segments.at(-1) ?? null;
      let target = dest;
      if (destIsDir) {
        if (name === null) {
          if (!isDirCap(r.parsed)) {
            throw new FilesError(`${dest} is a directory: give a file name to write`);
          }
          if (!recursive) {
            throw new FilesError(`${r.display} is a directory: use 'cp -r' to copy it`);
          }
          target = dest; // the directory's contents go into DEST
        } else {
          target = joinLocal(dest, name);
        }
      }
      await this.#copyToLocal(r, target, recursive, new Set());
    }
    return this.stats;
  }

  // ---- check / verify / repair ----

  async health(
    arg: string,
    mode: "check" | "verify" | "repair",
    opts: { verify?: boolean } = {},
  ): Promise<HealthReport> {
    const r = await this.resolve(arg);
    const grid = await this.grid();
    const kind = capKindName(r.parsed);
    if (isImmutableCap(r.parsed)) {
      if (mode === "repair") {
        const { happy } = this.node.config.shares;
        const res = await this.#guard(() =>
          grid.repairImmutable(r.cap, { happy, verify: opts.verify })
        );
        return this.#immutableReport(r, kind, res.after, res.repaired, res);
      }
      const res = await this.#guard(() =>
        mode === "verify" ? grid.verifyImmutable(r.cap) : grid.checkImmutable(r.cap)
      );
      return this.#immutableReport(r, kind, res, undefined, res);
    }
    if (mode === "repair") {
      if (!isWriteCap(r.parsed)) {
        throw new FilesError(
          `${r.display}: repairing a mutable file or directory needs its writecap; only a ${kind} cap is held`,
        );
      }
      const { happy } = this.node.config.shares;
      const res = await this.#guard(() => grid.respreadMutable(r.cap, happy));
      const after = await this.#guard(() => grid.checkMutable(r.cap, happy));
      const rep = this.#mutableReport(r, kind, after, []);
      rep.repaired = res.repaired;
      let line: string;
      if (res.republished) {
        const placed = res.republished.placed.length;
        const failed = res.republished.failures.length;
        line = `repaired: the newest version could not be re-created exactly; rewrote its ` +
          `contents (unchanged) as version ${res.republished.seqnum} on ${placed} server(s)` +
          (failed ? `; ${failed} server(s) could not be written` : "");
      } else if (res.respread) {
        const shares = res.respread.written.reduce((a, w) => a + w.shares.length, 0);
        const failed = res.respread.failures.length;
        line = res.repaired
          ? `repaired: rewrote ${shares} share(s) of version ${res.respread.seqnum} (kept) ` +
            `on ${res.respread.written.length} server(s)` +
            (failed ? `; ${failed} server(s) could not be written` : "")
          : `repair not possible: no share could be written` +
            (failed ? ` (${failed} server(s) failed)` : "");
      } else {
        line = "repair not needed: the newest version is healthy";
      }
      rep.summary.unshift(line);
      rep.detail = jsonSafe({ repaired: res.repaired, before: res.before, after });
      return rep;
    }
    const { happy } = this.node.config.shares;
    const res = await this.#guard(() => grid.checkMutable(r.cap, happy));
    const problems: string[] = [];
    if (mode === "verify" && !isVerifyCap(r.parsed) && res.recoverable) {
      const got = await this.#guard(() => grid.readMutable(r.cap));
      for (const p of got.problems) {
        problems.push(
          `server ${base32Encode(p.serverId).slice(0, 8)} share ${p.shareNumber}: ${p.problem}`,
        );
      }
    }
    return this.#mutableReport(r, kind, res, problems);
  }

  #mutableReport(
    r: Resolved,
    kind: string,
    res: Awaited<ReturnType<Grid["checkMutable"]>>,
    problems: string[],
  ): HealthReport {
    const holders = res.servers.filter((s) => s.shares.some((sh) => sh.newest)).length;
    const healthy = res.healthy && problems.length === 0;
    const summary = [
      `${labelOf(r.display)} ${
        healthy ? "healthy" : res.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable"
      }`,
    ];
    if (res.newest) {
      summary.push(
        `version ${res.newest.seqnum}, ${res.newest.k}-of-${res.newest.n}; newest shares on ${holders} of ${res.servers.length} server(s)`,
      );
    }
    for (const s of res.servers) {
      const who = s.nickname ?? base32Encode(s.serverId).slice(0, 8);
      if (s.error) summary.push(`  ${who}: unreachable (${s.error})`);
      for (const sh of s.shares) {
        if (sh.problem) summary.push(`  ${who}: share ${sh.shareNumber}: ${sh.problem}`);
      }
    }
    for (const p of problems) summary.push(`  ${p}`);
    summary.push(...noServerLine(res.servers, this.node.dir));
    return {
      kind,
      healthy,
      recoverable: res.recoverable,
      summary,
      detail: jsonSafe({ ...res, problems }),
    };
  }

  #immutableReport(
    r: Resolved,
    kind: string,
    res: ImmutableCheck,
    repaired: boolean | undefined,
    detail: unknown,
  ): HealthReport {
    const summary = [
      `${labelOf(r.display)} ${
        res.healthy ? "healthy" : res.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable"
      }`,
      `${res.sharesFound} of ${res.n} shares found (${res.k} needed), on ${res.happiness} server(s)` +
      (res.verifiedBlocks ? "; every block verified" : ""),
    ];
    if (repaired !== undefined) {
      summary.unshift(repaired ? "repaired: missing shares re-created" : "repair not needed");
    }
    for (const s of res.servers) {
      const who = s.nickname ?? base32Encode(s.serverId).slice(0, 8);
      if (s.error) summary.push(`  ${who}: unreachable (${s.error})`);
      for (const sh of s.shares) {
        if (!sh.ok) summary.push(`  ${who}: share ${sh.shareNumber}: ${sh.problem ?? "bad"}`);
      }
    }
    summary.push(...noServerLine(res.servers, this.node.dir));
    return {
      kind,
      healthy: res.healthy,
      recoverable: res.recoverable,
      repaired,
      summary,
      detail: jsonSafe(detail),
    };
  }
}
