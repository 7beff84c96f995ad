/**
 * `shoal client put` and `get` (docs/client-commands.md §3): the bytes between this computer
 * (a local file, stdin, stdout) and the grid, with a progress display. Where a file goes or
 * comes from is resolved by the FileSession (lib/fs underneath).
 */
import { concatBytes, toHex } from "../../codec/mod.ts";
import { isDirCap, isVerifyCap, randomBytes } from "../../crypto/mod.ts";
import { FsError, fsName, spool } from "../../fs/mod.ts";
import { type ImmutableSource, MAX_MUTABLE_SIZE } from "../../grid/mod.ts";
import { fsyncDir } from "../nodefs.ts";
import { convergenceSecret } from "./node.ts";
import { FilesError, type GridPath, parseGridPath, splitLast } from "./paths.ts";
import type { FileSession, Resolved } from "./files.ts";
import { below, sizeMeta } from "./files.ts";
import { basename, fileSource, joinLocal, statOrNull, writeAll } from "./local.ts";
import { recordUpload } from "./uploads.ts";

export type PutSource = { kind: "file"; path: string } | {
  kind: "stream";
  stream: ReadableStream<Uint8Array>;
};
export type GetSink = { kind: "file"; path: string } | {
  kind: "sink";
  write(chunk: Uint8Array): Promise<void>;
};

type OnProgress = (done: number, total: number) => void;

/** Below this, stdin for an immutable put is kept in memory; above, spooled to C/tmp. */
const SPOOL_MEMORY = 8 * 1024 * 1024;
type PutTarget = { overwrite?: Resolved; dir?: Resolved; name?: string };

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
  return concatBytes(...chunks);
}

/** A local name as an entry name on the grid; FilesError says why it cannot be one. */
export function gridName(name: string): string {
  try {
    return fsName(name);
  } catch (e) {
    if (e instanceof FsError) {
      throw new FilesError(`cannot use the local name on the grid: ${e.message}`);
    }
    throw e;
  }
}

/** Upload an immutable file with the node's encoding, showing progress; returns its cap. */
export async function uploadImmutable(
  s: FileSession,
  src: ImmutableSource,
  label: string,
  convergence: boolean,
): Promise<string> {
  const grid = await s.grid();
  const { k, n, happy } = s.node.config.shares;
  const secret = convergence ? await convergenceSecret(s.node) : null;
  const prog = s.opts.progress?.(label, src.size);
  try {
    const r = await s.guard(() =>
      grid.uploadImmutable(src, {
        k,
        n,
        happy,
        convergenceSecret: secret,
        onProgress: prog ? (d, t) => prog.update(d, t) : undefined,
        signal: s.opts.signal,
      })
    );
    s.stats.files++;
    s.stats.bytes += src.size;
    return r.cap;
  } finally {
    prog?.finish();
  }
}

/** Where `put` links its file: into a directory, over a mutable file, or at a new name. */
async function putTarget(s: FileSession, p: GridPath, srcName: string | null): Promise<PutTarget> {
  const existing = await s.stat(p);
  const intoDir = async (dir: Resolved): Promise<PutTarget> => {
    s.requireWritableDir(dir);
    if (srcName === null) {
      throw new FilesError(
        `${dir.display} is a directory: give the name to create, e.g. ${below(dir, ["NAME"])}`,
      );
    }
    const name = gridName(srcName);
    const r = await s.child(dir, name);
    return r ? await onExisting(r, dir, name) : { dir, name };
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
    s.requireWritableDir(parent);
    return { dir: parent, name };
  };
  if (existing === null) return await s.writableParent(p, "DEST");
  if (p.segments.length === 0) return await onExisting(existing, null, null);
  const { parent, name } = splitLast(p, "DEST");
  if (isDirCap(existing.parsed)) return await intoDir(existing);
  return await onExisting(existing, await s.resolve(parent), name);
}

/**
 * Upload a file (immutable unless `mutable`) and return its cap. With `dest`, also link it
 * there: a directory gets it under the source's name; an existing mutable file (writecap
 * held) is overwritten in place.
 */
export async function put(
  s: FileSession,
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
  const target = destPath ? await putTarget(s, destPath, srcName) : null;
  const label = srcName ?? "stdin";

  if (target?.overwrite || opts.mutable) {
    if (size !== null && size > MAX_MUTABLE_SIZE) {
      throw new FilesError(
        `${label} is larger than the ${MAX_MUTABLE_SIZE}-byte limit of mutable files; put it without --mutable`,
      );
    }
    const stream = source.kind === "file" ? fileSource(source.path, size!).open() : source.stream;
    const bytes = await readAllLimited(stream, MAX_MUTABLE_SIZE, label);
    const grid = await s.grid();
    if (target?.overwrite) {
      await s.guard(() => grid.writeMutable(target.overwrite!.cap, bytes));
      return target.overwrite.cap;
    }
    const { writecap } = await s.guard(() => grid.createMutableFile(bytes));
    if (target?.dir) await s.link(target.dir, target.name!, writecap, sizeMeta(bytes.length));
    if (!target) await recordUpload(s.node.dir, writecap, srcName); // kept by upkeep
    return writecap;
  }

  const convergence = opts.convergence ?? true;
  let cap: string;
  if (source.kind === "file") {
    cap = await uploadImmutable(s, fileSource(source.path, size!), label, convergence);
  } else {
    // stdin is read once: keep it (up to 8 MiB) or spool it to a private file (C/tmp, 0600) so
    // the upload can re-read it.
    const tmp = `${s.node.dir}/tmp`;
    await Deno.mkdir(tmp, { recursive: true, mode: 0o700 });
    const spooled = await spool(source.stream, tmp, undefined, SPOOL_MEMORY);
    try {
      size = spooled.source.size;
      cap = await uploadImmutable(s, spooled.source, label, convergence);
    } finally {
      await spooled.remove();
    }
  }
  if (target?.dir) await s.link(target.dir, target.name!, cap, sizeMeta(size));
  if (!target) await recordUpload(s.node.dir, cap, srcName); // kept by upkeep
  return cap;
}

/** Open an object's contents for reading. */
async function openRead(
  s: FileSession,
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
  const grid = await s.grid();
  if (r.parsed.kind === "immutable-read") {
    return { size: r.parsed.size, stream: grid.downloadImmutable(r.cap, { onProgress }) };
  }
  const res = await s.guard(() => grid.readMutable(r.cap));
  onProgress?.(res.contents.length, res.contents.length);
  return { size: res.contents.length, stream: streamOf(res.contents) };
}

/** Download CAP|PATH to a local file (atomically) or a sink (stdout). */
export async function get(s: FileSession, arg: string, sink: GetSink): Promise<void> {
  const p = parseGridPath(arg);
  const r = await s.resolve(p);
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
    await downloadTo(s, r, path);
    return;
  }
  const prog = r.parsed.kind === "immutable-read"
    ? s.opts.progress?.("download", r.parsed.size)
    : undefined;
  try {
    const { stream } = await openRead(s, r, prog ? (d, t) => prog.update(d, t) : undefined);
    await s.guard(async () => {
      for await (const c of stream) await sink.write(c);
    });
  } finally {
    prog?.finish();
  }
}

/**
 * Write an object to `path` via `path.tmp-XXXX`, renamed only on success. Progress is shown
 * for an immutable file, and for a mutable one when its size is known (in a whole copy).
 */
export async function downloadTo(s: FileSession, r: Resolved, path: string): Promise<void> {
  const st = await statOrNull(path);
  if (st?.isDirectory) throw new FilesError(`${path} is a directory: give a file name to write`);
  const slash = path.lastIndexOf("/");
  const parentDir = slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
  if (!(await statOrNull(parentDir))?.isDirectory) {
    throw new FilesError(`no such local directory: ${parentDir}`);
  }
  const label = basename(path);
  const size = r.parsed.kind === "immutable-read" ? r.parsed.size : s.knownSize(r);
  const prog = size !== null ? s.opts.progress?.(label, size) : undefined;
  const tmp = `${path}.tmp-${toHex(randomBytes(4))}`;
  let f: Deno.FsFile | null = null;
  try {
    const { stream } = await openRead(s, r, prog ? (d, t) => prog.update(d, t) : undefined);
    f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    let bytes = 0;
    await s.guard(async () => {
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
    s.stats.files++;
    s.stats.bytes += bytes;
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
