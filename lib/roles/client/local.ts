/**
 * The local-disk side of the client's file commands: files as upload sources, local names and
 * paths, and the totals and progress of a whole copy. Nothing here touches the grid.
 */
import type { ImmutableSource, SourceReader } from "../../grid/mod.ts";
import type { Progress } from "./progress.ts";

const READ_CHUNK = 1024 * 1024;

export async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await f.write(b.subarray(off));
}

export function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

export function joinLocal(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function orNull(p: Promise<Deno.FileInfo>): Promise<Deno.FileInfo | null> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

export const lstatOrNull = (path: string) => orNull(Deno.lstat(path));
export const statOrNull = (path: string) => orNull(Deno.stat(path));

export class ChangedError extends Error {
  override name = "ChangedError";
  constructor() {
    super("changed while it was being read");
  }
}

/**
 * A local file as an ImmutableSource: each open() reads it afresh, 1 MiB at a time, and fails with
 * ChangedError if the file's length differs from `size`. Its reader() reads the same bytes into
 * the caller's buffers (no fresh chunk per read), with the same check. */
export function checkedSource(path: string, size: number): ImmutableSource {
  return {
    size,
    reader: () => checkedReader(path, size),
    open() {
      let f: Deno.FsFile | null = null;
      let seen = 0;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          f ??= await Deno.open(path, { read: true });
          const buf = new Uint8Array(READ_CHUNK);
          const n = await f.read(buf);
          if (n === null) {
            f.close();
            f = null;
            if (seen !== size) c.error(new ChangedError());
            else c.close();
          } else {
            seen += n;
            if (seen > size) {
              f.close();
              f = null;
              c.error(new ChangedError());
            } else c.enqueue(buf.subarray(0, n));
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

/** checkedSource's reader: ChangedError when the file ends before `size` bytes or goes past them. */
function checkedReader(path: string, size: number): SourceReader {
  let f: Deno.FsFile | null = null;
  let seen = 0;
  let ended = false;
  const close = () => {
    f?.close();
    f = null;
  };
  return {
    async read(into: Uint8Array): Promise<number> {
      if (ended || into.length === 0) return 0;
      f ??= await Deno.open(path, { read: true });
      const n = await f.read(into);
      if (n === null || n === 0) {
        close();
        if (seen !== size) throw new ChangedError();
        ended = true;
        return 0;
      }
      seen += n;
      if (seen > size) {
        close();
        throw new ChangedError();
      }
      return n;
    },
    close,
  };
}

/** The file source of `put` and `cp`: one that notices a file changing length while it is read. */
export const fileSource = checkedSource;

/** Regular files and their bytes under a local path (what `cp` will upload). */
export async function localTotals(
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
export function aggregateProgress(whole: Progress): (label: string, total: number) => Progress {
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
export function printable(path: string): string {
  return path.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
