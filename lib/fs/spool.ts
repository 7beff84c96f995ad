/** Spooling a request body to a private temp file, so an upload's memory stays bounded. */
import type { ImmutableSource } from "../grid/mod.ts";

export interface Spooled {
  source: ImmutableSource;
  /** Remove the temp file. */
  remove(): Promise<void>;
}

/** Write `stream` to a fresh 0600 file in `dir`; returns a re-readable source for the upload. */
export async function spool(
  stream: ReadableStream<Uint8Array> | null,
  dir: string,
  limit = Number.MAX_SAFE_INTEGER,
): Promise<Spooled> {
  const path = await Deno.makeTempFile({ dir, prefix: "upload-" });
  const remove = () => Deno.remove(path).catch(() => {});
  try {
    await Deno.chmod(path, 0o600);
    const f = await Deno.open(path, { write: true, truncate: true });
    let size = 0;
    try {
      if (stream) {
        for await (const chunk of stream) {
          size += chunk.length;
          if (size > limit) throw new RangeError(`more than ${limit} bytes`);
          let off = 0;
          while (off < chunk.length) off += await f.write(chunk.subarray(off));
        }
      }
    } finally {
      f.close();
    }
    return {
      source: { size, open: () => Deno.openSync(path, { read: true }).readable },
      remove,
    };
  } catch (e) {
    await remove();
    throw e;
  }
}
