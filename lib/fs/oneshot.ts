/**
 * A request body streamed straight into an upload, without a spool file: for bodies whose size
 * is known up front (Content-Length) and that need only one pass (a random-key upload; a
 * convergent one reads its source twice).
 *
 * The upload opens its source a second time when a storage server fails midway (it starts
 * again without that server). For that, a body of at most KEEP_EACH bytes is also kept in
 * memory as it streams by, while all bodies kept at once stay under KEEP_BUDGET; a second
 * `open` replays it when the first read got to the end. Otherwise a second `open` fails, and the
 * client sends the request again.
 */
import { GridError } from "../grid/mod.ts";
import type { Spooled } from "./spool.ts";

export const KEEP_EACH = 32 * 1024 * 1024;
export const KEEP_BUDGET = 128 * 1024 * 1024;
let kept = 0;

export function oneShotSource(body: ReadableStream<Uint8Array>, size: number): Spooled {
  const keep = size <= KEEP_EACH && kept + size <= KEEP_BUDGET;
  if (keep) kept += size;
  let chunks: Uint8Array[] | null = keep ? [] : null;
  let complete = false;
  let opened = false;
  let released = !keep;
  return {
    source: {
      size,
      open() {
        if (!opened) {
          opened = true;
          if (!chunks) return body;
          return body.pipeThrough(
            new TransformStream<Uint8Array, Uint8Array>({
              transform(c, ctl) {
                chunks?.push(c);
                ctl.enqueue(c);
              },
              flush() {
                complete = true;
              },
            }),
          );
        }
        if (chunks && complete) {
          const all = chunks;
          return new ReadableStream<Uint8Array>({
            start(c) {
              for (const x of all) c.enqueue(x);
              c.close();
            },
          });
        }
        throw new GridError(
          "the upload needed its data a second time (a storage server failed midway); " +
            "send the request again",
        );
      },
    },
    remove() {
      if (!released) {
        released = true;
        kept -= size;
        chunks = null;
      }
      return Promise.resolve();
    },
  };
}
