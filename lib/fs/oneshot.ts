/**
 * A request body streamed straight into an upload, without a spool file: for bodies whose size
 * is known up front (Content-Length) and that need only one pass (a random-key upload; a
 * convergent one reads its source twice). The upload may open its source only once: a retry
 * that would read it again fails instead, and the client sends the request again.
 */
import { GridError, type ImmutableSource } from "../grid/mod.ts";

export function oneShotSource(body: ReadableStream<Uint8Array>, size: number): ImmutableSource {
  let opened = false;
  return {
    size,
    open() {
      if (opened) {
        throw new GridError(
          "the upload needed its data a second time (a storage server failed midway); " +
            "send the request again",
        );
      }
      opened = true;
      return body;
    },
  };
}
