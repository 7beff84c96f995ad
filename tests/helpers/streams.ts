/** Streams in tests: a whole stream read into one array (downloads compared byte for byte). */
import { concatBytes } from "../../lib/codec/mod.ts";

export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return concatBytes(...parts);
}
