/** Large deterministic test data streamed on demand (no memory held). */
import { aesCtr } from "../../lib/crypto/mod.ts";
import type { ImmutableSource } from "../../lib/grid/mod.ts";

const CHUNK = 1024 * 1024;

/** `size` bytes of AES-CTR keystream under `seed`; opening it again gives the same bytes. */
export function generatedSource(size: number, seed: Uint8Array): ImmutableSource {
  return {
    size,
    open: () => {
      let off = 0;
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          if (off >= size) return c.close();
          const n = Math.min(CHUNK, size - off);
          c.enqueue(await aesCtr(seed, new Uint8Array(16), new Uint8Array(n), off));
          off += n;
        },
      });
    },
  };
}
