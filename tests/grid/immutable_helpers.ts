/** Helpers shared by the immutable-file tests. */
import { encodingParamsBytes, requestedSegmentSize } from "../../lib/grid/mod.ts";

export function encodingParamsBytesForTest(
  o: { k: number; n: number; segmentSize?: number },
): Uint8Array {
  return encodingParamsBytes({
    k: o.k,
    n: o.n,
    segmentSize: requestedSegmentSize(o.k, o.segmentSize),
  });
}
