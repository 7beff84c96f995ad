/** Spooling a request body to a private temp file, so an upload's memory stays bounded. */
import { concatBytes } from "../codec/mod.ts";
import type { ImmutableSource } from "../grid/mod.ts";

export interface Spooled {
  source: ImmutableSource;
  /** Remove the temp file. */
  remove(): Promise<void>;
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await f.write(b.subarray(off));
}

/**
 * Write `stream` to a fresh 0600 file in `dir`; returns a re-readable source for the upload.
 * With `memory`, a body of at most that many bytes is kept in memory and no file is made.
 */
export async function spool(
  stream: ReadableStream<Uint8Array> | null,
  dir: string,
  limit = Number.MAX_SAFE_INTEGER,
  memory = 0,
): Promise<Spooled> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  let path: string | null = null;
  let f: Deno.FsFile | null = null;
  const remove = () => (path ? Deno.remove(path).catch(() => {}) : Promise.resolve());
  try {
    if (stream) {
      for await (const chunk of stream) {
        size += chunk.length;
        if (size > limit) throw new RangeError(`more than ${limit} bytes`);
        if (!f && size <= memory) {
          chunks.push(chunk);
          continue;
        }
        if (!f) {
          path = await Deno.makeTempFile({ dir, prefix: "upload-" });
          await Deno.chmod(path, 0o600);
          f = await Deno.open(path, { write: true, truncate: true });
          for (const c of chunks.splice(0)) await writeAll(f, c);
        }
        await writeAll(f, chunk);
      }
    }
  } catch (e) {
    f?.close();
    await remove();
    throw e;
  }
  f?.close();
  const file = path;
  if (file === null) {
    const bytes = concatBytes(...chunks);
    const open = () =>
      new ReadableStream<Uint8Array>({
        start(c) {
          if (bytes.length) c.enqueue(bytes);
          c.close();
        },
      });
    return { source: { size, open }, remove };
  }
  return { source: { size, open: () => Deno.openSync(file, { read: true }).readable }, remove };
}
