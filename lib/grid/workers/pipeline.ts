/**
 * The upload side's use of a SegmentPool: segments in order through the pool,
 * a few in flight, their buffers reused (lib/grid/immutable_upload.ts).
 */
import { blockLength, type Layout } from "../immutable_format.ts";
import { SegmentPool } from "./pool.ts";
import type { EncodeDone, EncodeJob } from "./segment_work.ts";
import { giveBuffer, takeBuffer } from "./recycle.ts";

/** Files of fewer segments are coded on the calling thread (starting Workers costs more). */
export const WORKER_MIN_SEGMENTS = 8;
/**
 * Bytes before each input segment in its buffer: AES-CTR from a position inside a counter
 * block then encrypts the segment where it is (lib/crypto/aes.ts) instead of copying it.
 */
const HEADROOM = 16;

/** A pool of segment Workers for one operation on a file of layout `l` (none for small files). */
export function segmentPool(l: Layout): SegmentPool {
  return new SegmentPool(l.numSegments >= WORKER_MIN_SEGMENTS ? undefined : 0);
}

/**
 * Upload and repair: segments encrypted (unless `key` is null), erasure-coded
 * and hashed on the pool, a few in flight, results taken in order; their
 * buffers (a segment in, n blocks out) go round and are reused.
 */
export class EncodePipeline {
  #queue: { i: number; p: Promise<{ job: EncodeJob; done: EncodeDone }> }[] = [];
  private constructor(
    readonly pool: SegmentPool,
    readonly l: Layout,
    readonly key: Uint8Array | null,
    readonly depth: number,
  ) {}

  /** In flight: one segment on the calling thread; with Workers, two per Worker and one more. */
  static async start(
    pool: SegmentPool,
    l: Layout,
    key: Uint8Array | null,
  ): Promise<EncodePipeline> {
    const depth = (await pool.threaded()) ? 2 * pool.workers + 1 : 1;
    return new EncodePipeline(pool, l, key?.slice() ?? null, depth);
  }

  /** A buffer for one segment (segmentSize bytes, after HEADROOM bytes of its own ArrayBuffer). */
  input(): Uint8Array {
    return new Uint8Array(takeBuffer(HEADROOM + this.l.segmentSize), HEADROOM);
  }

  /** Start segment i: its bytes are `segment`, a view from the start of an input() buffer. */
  push(i: number, segment: Uint8Array): void {
    const l = this.l;
    const p = this.pool.encode({
      key: this.key,
      pos: i * l.segmentSize,
      k: l.k,
      n: l.n,
      size: blockLength(l, i),
      input: new Uint8Array(segment.buffer),
      start: segment.byteOffset,
      length: segment.length,
      out: new Uint8Array(takeBuffer(l.n * l.blockSize)),
    });
    p.catch(() => {}); // observed when taken
    this.#queue.push({ i, p });
  }

  get full(): boolean {
    return this.#queue.length >= this.depth;
  }

  get empty(): boolean {
    return this.#queue.length === 0;
  }

  /** Wait for the oldest segment and give it to `use` (before its buffers are reused); its index. */
  async next(
    use: (i: number, blocks: Uint8Array, size: number, done: EncodeDone) => void,
  ): Promise<number> {
    const { i, p } = this.#queue.shift()!;
    const { job, done } = await p;
    use(i, job.out, job.size, done);
    // Used: its buffers go round (recycle.ts), to this upload's next segment or the next upload.
    // A segment still in flight (an upload given up on) keeps its buffers: it may still be written.
    giveBuffer(job.input.buffer);
    giveBuffer(job.out.buffer);
    return i;
  }
}
