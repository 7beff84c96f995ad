/**
 * Reading immutable-file shares (lib/grid/immutable.ts): caps, a share opened and verified
 * piece by piece, locating shares, choosing k of them, fetching, verifying and decoding
 * segments, and downloadImmutable.
 */
import { StorageDeadlineError } from "../storage/mod.ts";
import { bytesEqual } from "../codec/mod.ts";
import { type Cap, immutableStorageIndex, parseCap, verifyLeaf } from "../crypto/mod.ts";
import { SegmentPool, WORKER_MIN_SEGMENTS } from "./workers/mod.ts";
import { GridError, UnrecoverableError } from "./errors.ts";
import {
  blockHash,
  blockLength,
  blockOffset,
  decodeUeb,
  HASH_SIZE,
  HEADER_SIZE,
  type Layout,
  layoutOf,
  levelOffset,
  parseHeader,
  segmentLength,
  shareLeaf,
  type Ueb,
  uebHashOf,
  upperPart,
  verifyUpper,
  verifyWindow,
} from "./immutable_format.ts";
import { gather, type GridServer, lateError, permuteServers } from "./servers.ts";
import {
  checkAbort,
  describe,
  type DownloadOptions,
  type ImmutableContext,
} from "./immutable_common.ts";

/**
 * Download: segments fetched ahead of the consumer. 2 downloaded as fast as 4
 * on the bench (10 loopback servers) with ~15 MB less peak RSS.
 */
const READ_AHEAD = 2;
/**
 * Download over a slow path: one more segment ahead per this many ms of the chosen servers'
 * measured latency (a locate round trip), up to MAX_READ_AHEAD, so the bytes in flight cover
 * bandwidth × delay (2 segments reached only 52 % of a 100 Mbit/s link at 150 ms; docs/lab.md).
 */
const READ_AHEAD_MS_PER_SEGMENT = 25;
const MAX_READ_AHEAD = 8;
/** First read of a share: header, UEB and chain (and everything, for small files). */
const HEAD_READ = 4096;
/**
 * A share this small (or estimated this small) is read whole by its first request: a small
 * file's download, and an upload's read-back, then cost one request per share instead of three.
 */
const SMALL_SHARE = 128 * 1024;

/** What a first read of a share of `info` asks for: the whole share when it is small. */
export function headLength(info: CapInfo, shareSize?: number): number {
  // Without the UEB (its length, the segment size) the share's size is estimated: its blocks,
  // a UEB, the chain and two trees of a few segments. Short, and the rest is read as needed.
  const size = shareSize ?? HEADER_SIZE + Math.ceil(info.size / info.k) + 2048;
  return size <= SMALL_SHARE ? Math.max(size, HEADER_SIZE + HEAD_READ) : HEADER_SIZE + HEAD_READ;
}
/**
 * Download: where a segment's blocks start in their buffer. The room before them lets AES-CTR
 * decrypt the data shares in place from a position inside a counter block (lib/crypto/aes.ts).
 */
const BLOCKS_AT = 16;
/** Leaf windows of a share's trees kept per share reader. */
const WINDOW_CACHE = 4;

export class CorruptShareError extends GridError {
  override name = "CorruptShareError";
}

export interface CapInfo {
  storageIndex: Uint8Array;
  key: Uint8Array | null;
  uebHash: Uint8Array;
  k: number;
  n: number;
  size: number;
}

export function capInfo(cap: string | Cap): CapInfo {
  const c = typeof cap === "string" ? parseCap(cap) : cap;
  if (c.kind === "immutable-read") {
    return {
      storageIndex: immutableStorageIndex(c.key),
      key: c.key,
      uebHash: c.uebHash,
      k: c.k,
      n: c.n,
      size: c.size,
    };
  }
  if (c.kind === "immutable-verify") {
    return {
      storageIndex: c.storageIndex,
      key: null,
      uebHash: c.uebHash,
      k: c.k,
      n: c.n,
      size: c.size,
    };
  }
  throw new GridError(`expected an immutable file cap (CHK-R1 or CHK-V1), got a ${c.kind} cap`);
}

function blockMismatch(i: number): CorruptShareError {
  return new CorruptShareError(`block ${i} does not match the share's block hash tree`);
}

/** One share on one server, opened lazily and verified piece by piece. */
export class ShareReader {
  layout!: Layout;
  ueb!: Uint8Array;
  uebFields!: Ueb;
  #head: Uint8Array = new Uint8Array(0);
  #blockWindows: Uint8Array[] = [];
  #ctWindows: Uint8Array[] | null = null;
  #cache = new Map<string, Promise<Uint8Array[]>>();
  bad: string | null = null;

  constructor(
    readonly server: GridServer,
    readonly shnum: number,
    readonly info: CapInfo,
    readonly latency: number,
    /** Bytes the first read asks for (the header, the UEB and the upper trees; all of a small share). */
    readonly headBytes = HEADER_SIZE + HEAD_READ,
  ) {}

  /** `into`: read into it when it fits (see StorageClient.readImmutable); the result may still be elsewhere. */
  async #read(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    if (offset + length <= this.#head.length) return this.#head.subarray(offset, offset + length);
    const b = await this.server.storage.readImmutable(
      this.info.storageIndex,
      this.shnum,
      offset,
      length,
      into,
    );
    if (b.length !== length) {
      throw new CorruptShareError(
        `share is shorter than its layout (read ${b.length} of ${length} bytes at ${offset})`,
      );
    }
    return b;
  }

  /** Read and verify header, UEB (against the cap), block root (against the UEB) and the block tree's upper part. */
  async open(): Promise<void> {
    const info = this.info;
    this.#head = await this.server.storage.readImmutable(
      info.storageIndex,
      this.shnum,
      0,
      this.headBytes,
    );
    let hdr;
    try {
      hdr = parseHeader(this.#head);
    } catch (e) {
      throw new CorruptShareError(describe(e));
    }
    if (hdr.shareNumber !== this.shnum) {
      throw new CorruptShareError(
        `share says it is number ${hdr.shareNumber} but is stored as ${this.shnum}`,
      );
    }
    this.ueb = (await this.#read(HEADER_SIZE, hdr.uebLength)).slice();
    if (!bytesEqual(uebHashOf(this.ueb), info.uebHash)) {
      throw new CorruptShareError(
        "the share's UEB does not match the cap (wrong file or corrupted)",
      );
    }
    let u: Ueb;
    try {
      u = decodeUeb(this.ueb);
    } catch (e) {
      throw new GridError(`the file's UEB is invalid: ${describe(e)}`);
    }
    if (u.k !== info.k || u.n !== info.n || u.size !== info.size) {
      throw new GridError("the file's UEB disagrees with the cap about k, n or size");
    }
    this.uebFields = u;
    const l = layoutOf(u, hdr.uebLength);
    this.layout = l;
    if (this.shnum >= l.n) {
      throw new CorruptShareError(`share number ${this.shnum} is not below n = ${l.n}`);
    }
    const root = await this.#read(l.blockRootOffset, HASH_SIZE);
    const chainBytes = await this.#read(l.chainOffset, l.chainLength * HASH_SIZE);
    const chain: Uint8Array[] = [];
    for (let i = 0; i < l.chainLength; i++) {
      chain.push(chainBytes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE));
    }
    if (!verifyLeaf(u.shareRoot, l.n, this.shnum, shareLeaf(this.shnum, root), chain)) {
      throw new CorruptShareError(
        "the share's block-tree root does not match the UEB's share root",
      );
    }
    const up = upperPart(l.treeDepth);
    const upper = await this.#read(l.blockTreeOffset + up.offset * HASH_SIZE, up.nodes * HASH_SIZE);
    const windows = verifyUpper(l.treeDepth, upper, root);
    if (!windows) {
      throw new CorruptShareError("the share's block hash tree does not match its root");
    }
    this.#blockWindows = windows;
  }

  #window(
    kind: "b" | "c",
    w: number,
    treeOffset: number,
    roots: Uint8Array[],
  ): Promise<Uint8Array[]> {
    const key = `${kind}${w}`;
    let p = this.#cache.get(key);
    if (!p) {
      const l = this.layout;
      const h = upperPart(l.treeDepth).level;
      const count = 2 ** h;
      p = this.#read(
        treeOffset + (levelOffset(l.treeDepth, 0) + w * count) * HASH_SIZE,
        count * HASH_SIZE,
      )
        .then((bytes) => {
          const leaves = verifyWindow(bytes, roots[w]);
          if (!leaves) {
            throw new CorruptShareError(
              `the share's ${kind === "b" ? "block" : "ciphertext"} hash tree is corrupted`,
            );
          }
          return leaves;
        });
      p.catch(() => this.#cache.delete(key));
      this.#cache.set(key, p);
      if (this.#cache.size > WINDOW_CACHE) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return p;
  }

  /** Block i of this share, verified. */
  async block(i: number): Promise<Uint8Array> {
    const { data, hash } = await this.unverifiedBlock(i);
    if (!bytesEqual(blockHash(data), hash)) throw blockMismatch(i);
    return data;
  }

  /**
   * Block i of this share and its hash from the share's (verified) block
   * tree: the caller checks one against the other (a segment Worker does).
   */
  async unverifiedBlock(
    i: number,
    into?: Uint8Array,
  ): Promise<{ data: Uint8Array; hash: Uint8Array }> {
    const l = this.layout;
    const h = upperPart(l.treeDepth).level;
    const leaves = await this.#window("b", i >> h, l.blockTreeOffset, this.#blockWindows);
    const len = blockLength(l, i);
    const data = len === 0 ? new Uint8Array(0) : await this.#read(blockOffset(l, i), len, into);
    return { data, hash: leaves[i - ((i >> h) << h)] };
  }

  /** The ciphertext-tree leaf of segment i, verified against the UEB (read from this share). */
  async segmentLeaf(i: number): Promise<Uint8Array> {
    const l = this.layout;
    if (!this.#ctWindows) {
      const up = upperPart(l.treeDepth);
      const upper = await this.#read(l.ctTreeOffset + up.offset * HASH_SIZE, up.nodes * HASH_SIZE);
      const w = verifyUpper(l.treeDepth, upper, this.uebFields.ciphertextRoot);
      if (!w) {
        throw new CorruptShareError("the share's ciphertext hash tree does not match the UEB");
      }
      this.#ctWindows = w;
    }
    const h = upperPart(l.treeDepth).level;
    const leaves = await this.#window("c", i >> h, l.ctTreeOffset, this.#ctWindows);
    return leaves[i - ((i >> h) << h)];
  }
}

export interface Located {
  server: GridServer;
  shares: number[];
  latency: number;
  error?: string;
}

/**
 * Ask every server (ring order, in parallel) which shares of `si` it holds.
 * Unless `waitAll`, resolves once k distinct shares are known plus a short
 * grace period; `all` settles when every server has answered (`results` grows).
 */
export function locate(
  servers: GridServer[],
  si: Uint8Array,
  waitAll: boolean,
  k: number,
): { ready: Promise<Located[]>; all: Promise<Located[]> } {
  const t0 = performance.now();
  const results: Located[] = [];
  let resolveEarly!: () => void;
  const early = new Promise<void>((r) => (resolveEarly = r));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const all = Promise.all(servers.map(async (server) => {
    try {
      const shares = await server.storage.listImmutable(si);
      results.push({ server, shares, latency: performance.now() - t0 });
    } catch (e) {
      results.push({ server, shares: [], latency: Infinity, error: describe(e) });
    }
    if (!waitAll && timer === undefined) {
      const distinct = new Set(results.flatMap((r) => r.shares)).size;
      if (distinct >= k) {
        // Enough to start: give slower servers a short grace period, then go.
        timer = setTimeout(resolveEarly, Math.max(50, 2 * (performance.now() - t0)));
      }
    }
  })).then(() => {
    clearTimeout(timer);
    return results;
  });
  const ready = Promise.race([all, early]).then(() => [...results]);
  return { ready, all };
}

/** Chooses and replaces the k shares a download reads from. */
export class ShareSet {
  readers: ShareReader[] = [];
  #candidates: ShareReader[] = [];
  #lock: Promise<unknown> = Promise.resolve();
  problems: { serverId: Uint8Array; shareNumber: number; problem: string }[] = [];
  firstError: Error | null = null;

  constructor(readonly info: CapInfo, located: Located[]) {
    this.addLocated(located);
  }

  addLocated(located: Located[]): void {
    for (const loc of located) {
      for (const sh of loc.shares) {
        if (sh >= this.info.n) continue;
        if (this.#candidates.some((c) => c.shnum === sh && c.server === loc.server)) continue;
        this.#candidates.push(
          new ShareReader(loc.server, sh, this.info, loc.latency, headLength(this.info)),
        );
      }
    }
    // Prefer data shares (no decoding arithmetic), then the fastest servers.
    const k = this.info.k;
    this.#candidates.sort((a, b) =>
      (a.shnum < k ? 0 : 1) - (b.shnum < k ? 0 : 1) || a.latency - b.latency
    );
  }

  markBad(r: ShareReader, e: unknown): void {
    if (r.bad) return;
    const problem = describe(e);
    r.bad = problem;
    this.problems.push({ serverId: r.server.serverId, shareNumber: r.shnum, problem });
    if (e instanceof CorruptShareError) {
      r.server.storage.reportCorruption("immutable", this.info.storageIndex, r.shnum, problem)
        .catch(() => {});
    } else if (!(e instanceof Error && e.name.startsWith("Storage")) && !this.firstError) {
      this.firstError = e as Error;
    }
  }

  /** k opened, healthy readers with distinct share numbers (opening more as needed). */
  pick(): Promise<ShareReader[]> {
    const run = this.#lock.then(() => this.#pick());
    this.#lock = run.catch(() => {});
    return run;
  }

  async #pick(): Promise<ShareReader[]> {
    const k = this.info.k;
    for (;;) {
      const good = this.readers.filter((r) => !r.bad);
      if (good.length >= k) return good.slice(0, k);
      const have = new Set(good.map((r) => r.shnum));
      const next: ShareReader[] = [];
      for (const c of this.#candidates) {
        if (next.length >= k - good.length) break;
        if (c.bad || have.has(c.shnum) || this.readers.includes(c)) continue;
        have.add(c.shnum);
        next.push(c);
      }
      if (next.length === 0) {
        const distinct = new Set(good.map((r) => r.shnum)).size;
        const detail = this.problems.slice(0, 3).map((p) => p.problem).join("; ");
        throw this.firstError ?? new UnrecoverableError(
          `not enough shares: found ${distinct} valid distinct share(s), need k = ${k}` +
            (detail ? ` (problems: ${detail})` : ""),
        );
      }
      // A share whose server is still opening it when the others have (plus
      // a grace period) is given up on: another share takes its place.
      const t0 = performance.now();
      const g = await gather(next, async (r) => {
        try {
          await r.open();
          if (!r.bad) this.readers.push(r);
        } catch (e) {
          this.markBad(r, e);
        }
      }, { enough: (answered) => next.length > 1 && answered.length >= next.length - 1 });
      for (const j of g.late) {
        this.markBad(next[j], new StorageDeadlineError(lateError(performance.now() - t0), []));
      }
    }
  }
}

/**
 * Fetch segment i from k shares, and on `pool` verify each block against its
 * share's block tree, decode, check the result against the ciphertext tree
 * and decrypt it with `key` (null: return the ciphertext, as repair needs).
 * A fresh buffer.
 */
export async function fetchSegment(
  set: ShareSet,
  i: number,
  pool: SegmentPool,
  key: Uint8Array | null,
): Promise<Uint8Array> {
  for (;;) {
    const readers = [...await set.pick()].sort((a, b) => a.shnum - b.shnum);
    const l = readers[0].layout;
    const size = blockLength(l, i);
    const length = segmentLength(l, i);
    // A buffer the pool reuses, and each block is read straight into its place in it (no
    // buffer per response, no copy): a fresh buffer sent to a Worker and back costs ~1 ms of
    // CPU per MB (measured) where a reused one costs ~0.1.
    const blocks = pool.buffer(BLOCKS_AT + l.k * l.blockSize);
    // A block still on its way when the other k-1 have arrived (plus a grace
    // period) is given up on: its share is dropped and another one read.
    const t0 = performance.now();
    const g = await gather(
      readers,
      (r, j) =>
        r.unverifiedBlock(i, blocks.subarray(BLOCKS_AT + j * size, BLOCKS_AT + (j + 1) * size)),
      { enough: (answered) => readers.length > 1 && answered.length >= readers.length - 1 },
    );
    let failed = false;
    for (const j of g.late) {
      failed = true;
      set.markBad(readers[j], new StorageDeadlineError(lateError(performance.now() - t0), []));
    }
    g.answers.forEach((a, j) => {
      if (a && !a.ok) {
        failed = true;
        set.markBad(readers[j], a.error);
      }
    });
    // A late read may still write into `blocks`: then it is dropped, never used again.
    if (failed) {
      if (g.late.length === 0) pool.recycle(blocks);
      continue;
    }
    let leaf: Uint8Array;
    try {
      leaf = await readers[0].segmentLeaf(i);
    } catch (e) {
      set.markBad(readers[0], e);
      pool.recycle(blocks);
      continue;
    }
    const expected = new Uint8Array(l.k * HASH_SIZE);
    g.answers.forEach((a, j) => {
      const b = (a as { value: { data: Uint8Array; hash: Uint8Array } }).value;
      const at = BLOCKS_AT + j * size;
      // Read elsewhere (a small share's first read held it, or a server answered a whole share).
      if (b.data.buffer !== blocks.buffer || b.data.byteOffset !== at) blocks.set(b.data, at);
      expected.set(b.hash, j * HASH_SIZE);
    });
    const r = await pool.decode({
      key,
      pos: i * l.segmentSize,
      k: l.k,
      n: l.n,
      size,
      length,
      indices: readers.map((x) => x.shnum),
      blocks,
      at: BLOCKS_AT,
      expected,
      leaf,
    });
    const result = r.done.ok
      ? r.done.plain ?? r.job.blocks.slice(BLOCKS_AT, BLOCKS_AT + length)
      : null;
    pool.recycle(r.job.blocks);
    if (result) return result;
    if ("badBlocks" in r.done) {
      for (const j of r.done.badBlocks) set.markBad(readers[j], blockMismatch(i));
      continue;
    }
    throw new UnrecoverableError(
      `segment ${i} decodes to ciphertext that does not match the file's ciphertext hash tree: ` +
        "the shares are inconsistent (a faulty uploader); the file cannot be read safely",
    );
  }
}

/** Download (a range of) an immutable file as a stream of verified plaintext. */
export function downloadImmutable(
  ctx: ImmutableContext,
  cap: string | Cap,
  opts: DownloadOptions = {},
): ReadableStream<Uint8Array> {
  let gen: AsyncGenerator<Uint8Array> | null = null;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        gen ??= downloadSegments(ctx, cap, opts);
        const { value, done } = await gen.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        controller.error(e);
      }
    },
    async cancel() {
      await gen?.return(undefined);
    },
  }, { highWaterMark: 0 });
}

async function* downloadSegments(
  ctx: ImmutableContext,
  cap: string | Cap,
  opts: DownloadOptions,
): AsyncGenerator<Uint8Array> {
  const info = capInfo(cap);
  if (!info.key) {
    throw new GridError("downloading needs a readcap (CHK-R1); a verify cap cannot decrypt");
  }
  const key = info.key;
  const offset = opts.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > info.size) {
    throw new RangeError(`offset ${offset} is outside the file (size ${info.size})`);
  }
  const requested = opts.length ?? info.size - offset;
  if (!Number.isSafeInteger(requested) || requested < 0) {
    throw new RangeError(`bad length ${requested}`);
  }
  const length = Math.min(requested, info.size - offset);
  opts.onProgress?.(0, length);
  if (length === 0) return;
  checkAbort(opts.signal);
  const servers = permuteServers(info.storageIndex, ctx.servers);
  const where = locate(servers, info.storageIndex, false, info.k);
  const set = new ShareSet(info, await where.ready);
  where.all.then((late) => set.addLocated(late));
  const first = await set.pick();
  const l = first[0].layout;
  const s0 = Math.floor(offset / l.segmentSize);
  const s1 = Math.floor((offset + length - 1) / l.segmentSize);
  const queue: Promise<Uint8Array>[] = [];
  const pool = new SegmentPool(s1 - s0 + 1 >= WORKER_MIN_SEGMENTS ? undefined : 0);
  try {
    const latency = Math.max(0, ...first.map((r) => r.latency).filter(Number.isFinite));
    const base = Math.min(
      MAX_READ_AHEAD,
      READ_AHEAD + Math.ceil(latency / READ_AHEAD_MS_PER_SEGMENT),
    );
    const ahead = (await pool.threaded()) ? base + pool.workers : base;
    let next = s0;
    const fill = () => {
      while (next <= s1 && queue.length < ahead) {
        const p = fetchSegment(set, next++, pool, key);
        p.catch(() => {}); // observed when awaited
        queue.push(p);
      }
    };
    let done = 0;
    for (let i = s0; i <= s1; i++) {
      checkAbort(opts.signal);
      fill();
      const plain = await queue.shift()!;
      const segStart = i * l.segmentSize;
      const from = Math.max(offset, segStart) - segStart;
      const to = Math.min(offset + length, segStart + plain.length) - segStart;
      const piece = plain.subarray(from, to);
      done += piece.length;
      yield piece;
      opts.onProgress?.(done, length);
    }
  } finally {
    pool.close();
  }
}
