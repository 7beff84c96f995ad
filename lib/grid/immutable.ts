/**
 * Immutable files on the grid: upload, download (streaming, ranges), check,
 * verify, repair. docs/immutable-files.md is the normative description;
 * immutable_format.ts holds the pure layout.
 *
 * Upload: key (convergent or random) → storage index → permuted ring;
 * allocate share i on ring server i mod S (idempotent per upload secret,
 * `alreadyHave` = dedupe); servers-of-happiness = maximum matching between
 * servers and distinct shares; stream segments (encrypt, erasure-code, hash)
 * with a bounded number of bytes in flight, PATCHing ~2 MiB pieces (copied
 * into pooled buffers, staggered across shares) to every server in
 * parallel; the front of every share (header, UEB, hashes) is sent last, so
 * no share completes before the whole file has been sent and happiness
 * confirmed. Any failure aborts every allocation.
 *
 * Download: list shares on every server, open the fastest k distinct shares
 * (verifying UEB against the cap and the share's block-tree root against the
 * UEB), then fetch blocks segment by segment (a few in flight), verifying each
 * block before use and each decoded segment against the ciphertext tree.
 *
 * The per-segment CPU work (encrypt, erasure-code, hash; verify, decode,
 * decrypt) goes through a SegmentPool (lib/grid/workers): on segment Workers
 * when they are turned on, else on this thread, with the same bytes.
 */
import { createHash } from "node:crypto";
import { StorageDeadlineError } from "../storage/mod.ts";
import { bytesEqual, toHex } from "../codec/mod.ts";
import {
  type Cap,
  convergenceKey,
  formatCap,
  immutableStorageIndex,
  leaseSecrets,
  parseCap,
  randomBytes,
  uploadSecret,
  verifyLeaf,
} from "../crypto/mod.ts";
import {
  type EncodeDone,
  EncodePipeline,
  SegmentPool,
  segmentPool,
  WORKER_MIN_SEGMENTS,
} from "./workers/mod.ts";
import { giveBuffer, takeBuffer } from "./workers/recycle.ts";
import {
  failedServers,
  GridError,
  NotEnoughServersError,
  SourceChangedError,
  UnrecoverableError,
} from "./errors.ts";
import {
  blockHash,
  blockLength,
  blockOffset,
  buildTree,
  completeTree,
  decodeUeb,
  effectiveSegmentSize,
  encodeUeb,
  encodingParamsBytes,
  HASH_SIZE,
  HEADER_SIZE,
  ImmutableFormatError,
  type Layout,
  layoutOf,
  levelOffset,
  newTree,
  packFront,
  parseHeader,
  requestedSegmentSize,
  segmentLength,
  shareLeaf,
  treeProof,
  treeRoot,
  type Ueb,
  uebHashOf,
  uebLengthFor,
  upperPart,
  validateParams,
  verifyUpper,
  verifyWindow,
} from "./immutable_format.ts";
import {
  gather,
  type GridServer,
  lateError,
  mapLimit,
  permuteServers,
  serverKey,
} from "./servers.ts";

/**
 * Bytes of one PATCH (blocks of consecutive segments are joined up to this).
 * Servers spend much of their CPU per request rather than per byte: 2 MiB
 * instead of 1 MiB cut their CPU per uploaded MB by about a quarter
 * (docs/performance.md), for n · 1 MiB more pending memory.
 */
const PATCH_CHUNK = 2 * 1024 * 1024;
/** Upload: bytes handed to PATCHes not yet acknowledged, across all servers. */
const MAX_INFLIGHT_BYTES = 12 * 1024 * 1024;
/** The least time a PATCH may go unacknowledged before its server counts as down (room()). */
const UPLOAD_STALL_MIN_MS = 8_000;
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
function headLength(info: CapInfo, shareSize?: number): number {
  // Without the UEB (its length, the segment size) the share's size is estimated: its blocks,
  // a UEB, the chain and two trees of a few segments. Short, and the rest is read as needed.
  const size = shareSize ?? HEADER_SIZE + Math.ceil(info.size / info.k) + 2048;
  return size <= SMALL_SHARE ? Math.max(size, HEADER_SIZE + HEAD_READ) : HEADER_SIZE + HEAD_READ;
}
export const CONCURRENCY = 32;
/**
 * Share fronts (header, UEB, hash trees) built and written at once when an
 * upload finishes: all of them for most files, a few when the trees (which
 * grow with the file, ~64 KB per GiB per tree) make each front large.
 */
function frontConcurrency(l: Layout): number {
  return l.blocksOffset > 1024 * 1024 ? 2 : CONCURRENCY;
}
/**
 * Download: where a segment's blocks start in their buffer. The room before them lets AES-CTR
 * decrypt the data shares in place from a position inside a counter block (lib/crypto/aes.ts).
 */
const BLOCKS_AT = 16;
/** Leaf windows of a share's trees kept per share reader. */
const WINDOW_CACHE = 4;

export interface ImmutableSource {
  size: number;
  /** A fresh stream of exactly `size` bytes; may be called more than once. */
  open(): ReadableStream<Uint8Array>;
  /**
   * Optional, for a source that can fill the caller's buffers (a file): a fresh reader of the
   * same bytes as open(). The upload then reads each segment straight into its own buffer and
   * hashes through one reused buffer, instead of a fresh chunk per read copied again.
   */
  reader?(): SourceReader;
}

/** A source read into caller buffers (ImmutableSource.reader). */
export interface SourceReader {
  /**
   * Fill the start of `into` with the next bytes (at least one, at most into.length): their
   * count, or 0 at the end. It may throw where the source itself is wrong (a file that
   * changed), as the source's stream would error.
   */
  read(into: Uint8Array): Promise<number>;
  /** Done (or given up): release what the reader holds. */
  close(): void;
}

export interface UploadOptions {
  k: number;
  n: number;
  happy: number;
  /** 32 bytes, or null for a random key (--no-convergence). */
  convergenceSecret: Uint8Array | null;
  /** Target segment size (default 1 MiB), rounded up to a multiple of k. */
  segmentSize?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface UploadResult {
  cap: string;
  storageIndex: Uint8Array;
  size: number;
  placed: { serverId: Uint8Array; shares: number[] }[];
  /** Shares the servers already held (deduplicated, verified byte for byte). */
  alreadyHad: number;
}

export interface ImmutableShareStatus {
  shareNumber: number;
  ok: boolean;
  problem?: string;
}

export interface ImmutableCheck {
  storageIndex: Uint8Array;
  k: number;
  n: number;
  size: number;
  /** Distinct valid share numbers found. */
  sharesFound: number;
  /** Servers-of-happiness of the valid shares (maximum matching servers ↔ distinct shares). */
  happiness: number;
  /** At least k distinct valid shares. */
  recoverable: boolean;
  /** All n shares valid somewhere. */
  healthy: boolean;
  /** Whether every block was downloaded and checked (verify) or only headers (check). */
  verifiedBlocks: boolean;
  servers: {
    serverId: Uint8Array;
    nickname?: string;
    error?: string;
    shares: ImmutableShareStatus[];
  }[];
}

export interface ImmutableContext {
  /** Servers, any order: every operation orders them on the storage index's permuted ring. */
  servers: GridServer[];
  leaseSecret: Uint8Array;
}

export interface DownloadOptions {
  offset?: number;
  length?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function shortId(server: GridServer): string {
  return server.nickname ?? toHex(server.serverId).slice(0, 8);
}

/** Maximum matching between servers and share numbers (Kuhn's algorithm). */
export function happinessOf(holdings: Map<string, Set<number>>): number {
  const shareOwner = new Map<number, string>();
  const servers = [...holdings.keys()];
  function tryAssign(s: string, seen: Set<number>): boolean {
    for (const sh of holdings.get(s)!) {
      if (seen.has(sh)) continue;
      seen.add(sh);
      const owner = shareOwner.get(sh);
      if (owner === undefined || tryAssign(owner, seen)) {
        shareOwner.set(sh, s);
        return true;
      }
    }
    return false;
  }
  let m = 0;
  for (const s of servers) if (tryAssign(s, new Set())) m++;
  return m;
}

export function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error
      ? signal.reason
      : new GridError("the operation was aborted");
  }
}

// ---------------------------------------------------------------- sources

function sourceOf(source: ImmutableSource | Uint8Array): ImmutableSource {
  if (!(source instanceof Uint8Array)) return source;
  const data = source;
  return {
    size: data.length,
    open: () => {
      let off = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (off >= data.length) return c.close();
          const end = Math.min(data.length, off + PATCH_CHUNK);
          c.enqueue(data.subarray(off, end));
          off = end;
        },
      });
    },
  };
}

function endedEarly(read: number, size: number): GridError {
  return new GridError(`the source ended after ${read} bytes, but its size was given as ${size}`);
}

/** Bytes a byte stream is read into at a time (one scratch buffer, handed back and forth). */
const BYOB_READ = 256 * 1024;

/**
 * A stream as a SourceReader: its chunks copied into the caller's buffers. A byte stream (an
 * HTTP request body: `serve restic`, the gateway, WebDAV) is read into one scratch buffer that
 * goes back and forth, instead of a fresh chunk per read (docs/performance.md §9.9).
 */
function streamReader(stream: ReadableStream<Uint8Array>): SourceReader {
  let byob: ReadableStreamBYOBReader | null = null;
  try {
    byob = stream.getReader({ mode: "byob" });
  } catch { /* not a byte stream */ }
  if (byob) {
    const r = byob;
    let scratch = new ArrayBuffer(BYOB_READ);
    return {
      async read(into) {
        if (into.length === 0) return 0;
        while (true) {
          const { value, done } = await r.read(
            new Uint8Array(scratch, 0, Math.min(into.length, BYOB_READ)),
          );
          if (value) scratch = value.buffer as ArrayBuffer;
          if (done || !value) return 0;
          if (value.length === 0) continue;
          into.set(value);
          return value.length;
        }
      },
      close() {
        r.cancel().catch(() => {});
      },
    };
  }
  const reader = stream.getReader();
  let left: Uint8Array = new Uint8Array(0);
  return {
    async read(into) {
      while (left.length === 0) {
        const { value, done } = await reader.read();
        if (done) return 0;
        left = value;
      }
      const n = Math.min(left.length, into.length);
      into.set(left.subarray(0, n));
      left = left.subarray(n);
      return n;
    },
    close() {
      reader.cancel().catch(() => {});
    },
  };
}

/**
 * Cut a source into segments of the given lengths; errors if it is not exactly
 * `size` bytes. Segment i is copied into `take()` (a buffer of at
 * least segmentSize bytes, which the caller owns) and yielded as its first
 * segmentLength(l, i) bytes.
 */
async function* segmentsOf(
  src: ImmutableSource,
  l: Layout,
  take: () => Uint8Array,
): AsyncGenerator<Uint8Array> {
  // A reader fills each segment's buffer straight from the source; a stream through a copy.
  const reader = src.reader ? src.reader() : streamReader(src.open());
  let read = 0;
  try {
    for (let i = 0; i < l.numSegments; i++) {
      const len = segmentLength(l, i);
      const out = take().subarray(0, len);
      let filled = 0;
      while (filled < len) {
        const n = await reader.read(out.subarray(filled));
        if (n === 0) throw endedEarly(read, l.size);
        filled += n;
        read += n;
      }
      yield out;
    }
    if (await reader.read(new Uint8Array(1)) !== 0) {
      throw new GridError(`the source has more than the ${l.size} bytes its size says`);
    }
  } finally {
    reader.close();
  }
}

/** Bytes of the buffer hashSource reads a source with a reader through. */
const HASH_READ = 1024 * 1024;

async function hashSource(src: ImmutableSource, signal?: AbortSignal): Promise<Uint8Array> {
  if (src.reader) return await hashRead(src.reader(), src.size, signal);
  const h = createHash("sha256");
  let total = 0;
  const reader = src.open().getReader();
  try {
    for (;;) {
      checkAbort(signal);
      const { value, done } = await reader.read();
      if (done) break;
      h.update(value);
      total += value.length;
      if (total > src.size) break;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (total !== src.size) {
    throw new GridError(
      `the source gave ${
        total > src.size ? "more than " : ""
      }${total} bytes, but its size was given as ${src.size}`,
    );
  }
  return new Uint8Array(h.digest());
}

/** hashSource for a source with a reader, through one reused buffer. */
async function hashRead(
  reader: SourceReader,
  size: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const h = createHash("sha256");
  const buf = new Uint8Array(Math.max(1, Math.min(HASH_READ, size + 1)));
  let total = 0;
  try {
    for (;;) {
      checkAbort(signal);
      const n = await reader.read(buf);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
      total += n;
      if (total > size) break;
    }
  } finally {
    reader.close();
  }
  if (total !== size) {
    throw new GridError(
      `the source gave ${total > size ? "more than " : ""}${total} bytes, but its size was ` +
        `given as ${size}`,
    );
  }
  return new Uint8Array(h.digest());
}

// ---------------------------------------------------------------- upload session

interface Target {
  server: GridServer;
  key: string;
  /** This server's own upload secret (docs/crypto.md §5.6). */
  secret: Uint8Array;
  /** Shares this server already held (alreadyHave). */
  held: Set<number>;
  /** Shares allocated to us for this upload. */
  uploading: Set<number>;
  /** Shares whose upload completed (201). */
  done: Set<number>;
  /** Shares this server would not take (failed or refused). */
  refused: Set<number>;
  /** Bytes of PATCHes to this server not yet acknowledged. */
  inflight: number;
  failed?: string;
}

interface Pending {
  offset: number;
  /** A buffer from the session's pool (or a lone oversized block); bytes [0, length) are queued. */
  buf: Uint8Array;
  length: number;
}

/** Allocation, streaming PATCHes, finalization and abort of one upload (or repair) to many servers. */
export class UploadSession {
  /** Per-upload secret the per-server upload secrets derive from; never sent anywhere. */
  readonly #uploadMaster = randomBytes(32);
  readonly targets = new Map<string, Target>();
  #pending = new Map<string, Pending>();
  /** Blocks joined into one PATCH (about PATCH_CHUNK bytes). */
  readonly #blocksPerPatch: number;
  /** Size of the pooled PATCH buffers. */
  readonly #bufSize: number;
  /**
   * A share that fits one PATCH (one segment): its block is held until the front is known and
   * sent with it, so the share costs one PATCH, not two.
   */
  readonly #whole: boolean;
  #inflight = 0;
  /** When each PATCH in flight was handed to its server's client. */
  #started = new Map<Promise<void>, number>();
  /** Moving average of how long a PATCH takes to be acknowledged (ms). */
  #ackMs = 0;
  #waiters: (() => void)[] = [];
  /** PATCHes in flight, with the target each goes to. */
  #flushes = new Map<Promise<void>, Target>();
  failures: { serverId: Uint8Array; error: string }[] = [];
  /** Set when happiness can no longer be reached. */
  fatal: Error | null = null;

  constructor(
    readonly si: Uint8Array,
    readonly layout: Layout,
    readonly leaseSecret: Uint8Array,
    readonly happy: number,
    /** Holdings outside this session that count toward happiness (repair). */
    readonly existing: Map<string, Set<number>> = new Map(),
  ) {
    // Never more blocks than a share has: a small file's buffers stay small.
    this.#blocksPerPatch = Math.max(
      1,
      Math.min(layout.numSegments, Math.floor(PATCH_CHUNK / Math.max(1, layout.blockSize))),
    );
    this.#bufSize = this.#blocksPerPatch * layout.blockSize;
    this.#whole = layout.numSegments === 1 && layout.shareSize <= PATCH_CHUNK;
  }

  #target(server: GridServer): Target {
    const key = serverKey(server.serverId);
    let t = this.targets.get(key);
    if (!t) {
      t = {
        server,
        key,
        secret: uploadSecret(this.#uploadMaster, this.si, server.serverId),
        held: new Set(),
        uploading: new Set(),
        done: new Set(),
        refused: new Set(),
        inflight: 0,
      };
      this.targets.set(key, t);
    }
    return t;
  }

  /**
   * Allocate `plan` (share → server) and re-place shares a server would not
   * take on the other `candidates` (least loaded first, ring order).
   */
  async allocate(plan: Map<number, GridServer>, candidates: GridServer[]): Promise<void> {
    let round = new Map(plan);
    for (const s of candidates) this.#target(s);
    while (round.size > 0) {
      const byServer = new Map<string, number[]>();
      for (const [sh, server] of round) {
        const t = this.#target(server);
        const list = byServer.get(t.key) ?? [];
        list.push(sh);
        byServer.set(t.key, list);
      }
      const retry: number[] = [];
      const asks = [...byServer];
      const t0 = performance.now();
      const g = await gather(asks, async ([key, shares]) => {
        const t = this.targets.get(key)!;
        const lease = leaseSecrets(this.leaseSecret, this.si, t.server.serverId);
        try {
          const r = await t.server.storage.allocate(this.si, {
            upload: t.secret,
            leaseRenew: lease.renew,
            leaseCancel: lease.cancel,
          }, { shareNumbers: shares, allocatedSize: this.layout.shareSize });
          for (const sh of r.alreadyHave) if (shares.includes(sh)) t.held.add(sh);
          for (const sh of r.allocated) if (shares.includes(sh)) t.uploading.add(sh);
          for (const sh of shares) {
            if (!t.held.has(sh) && !t.uploading.has(sh)) {
              t.refused.add(sh);
              retry.push(sh);
            }
          }
        } catch (e) {
          this.#fail(t, `allocate: ${describe(e)}`);
          for (const sh of shares) t.refused.add(sh);
          retry.push(...shares);
        }
      }, {
        limit: CONCURRENCY,
        enough: (answered) => answered.length * 2 >= asks.length && this.happiness() >= this.happy,
      });
      for (const i of g.late) {
        const [key, shares] = asks[i];
        const t = this.targets.get(key)!;
        this.#fail(t, `allocate: ${lateError(performance.now() - t0)}`);
        for (const sh of shares) t.refused.add(sh);
        retry.push(...shares);
      }
      round = new Map();
      for (const sh of retry.sort((a, b) => a - b)) {
        const options = candidates
          .map((s) => this.targets.get(serverKey(s.serverId))!)
          .filter((t) =>
            !t.failed && !t.refused.has(sh) && !t.held.has(sh) && !t.uploading.has(sh)
          );
        if (options.length === 0) continue;
        const load = (t: Target) =>
          t.held.size + t.uploading.size + [...round.values()].filter((s) => sameKey(s, t)).length;
        let best = options[0];
        for (const t of options) if (load(t) < load(best)) best = t;
        round.set(sh, best.server);
      }
    }
    // A server that failed early in the allocation (a down server answers first) made the
    // happiness look lost before the others answered and its shares moved: not fatal now.
    if (this.fatal && this.happiness() >= this.happy) this.fatal = null;
  }

  /** Happiness counting held + (still) uploading shares on live servers + existing holdings. */
  happiness(which: "planned" | "complete" = "planned", without?: Set<string>): number {
    const m = new Map<string, Set<number>>();
    for (const [k, v] of this.existing) m.set(k, new Set(v));
    for (const t of this.targets.values()) {
      if (without?.has(t.key)) continue;
      const set = m.get(t.key) ?? new Set<number>();
      for (const s of t.held) set.add(s);
      if (!t.failed) { for (const s of which === "planned" ? t.uploading : t.done) set.add(s); }
      if (set.size) m.set(t.key, set);
    }
    return happinessOf(m);
  }

  liveCount(): number {
    return [...this.targets.values()].filter((t) => !t.failed).length;
  }

  #fail(t: Target, error: string): void {
    if (t.failed) return;
    t.failed = error;
    this.failures.push({ serverId: t.server.serverId, error });
    for (const sh of [...this.#pending.keys()]) {
      if (sh.startsWith(`${t.key}:`)) this.#pending.delete(sh);
    }
    const h = this.happiness();
    if (h < this.happy && !this.fatal) {
      this.fatal = new NotEnoughServersError(
        `need ${this.happy} servers holding distinct shares, have ${h}: ` +
          `server ${shortId(t.server)} failed during the upload (${error})`,
      );
    }
  }

  /**
   * Queue block `i` of share `sh` (at `offset`) for every target uploading
   * that share. Consecutive blocks of a share are copied into one pooled
   * buffer and sent as one PATCH of about PATCH_CHUNK bytes. Share `sh`'s
   * PATCHes end after the blocks i with (i + sh) % blocksPerPatch equal to
   * blocksPerPatch - 1, so the shares' PATCHes are staggered over the
   * segments instead of all leaving (and all being waited for) at once.
   */
  write(sh: number, i: number, offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    const bpp = this.#blocksPerPatch;
    const endsPatch = (i + sh) % bpp === bpp - 1;
    for (const t of this.targets.values()) {
      if (t.failed || !t.uploading.has(sh)) continue;
      const key = `${t.key}:${sh}`;
      let p = this.#pending.get(key);
      if (p && (p.offset + p.length !== offset || p.length + data.length > p.buf.length)) {
        this.#pending.delete(key);
        this.#flush(t, sh, p);
        p = undefined;
      }
      if (!p) {
        if (data.length > this.#bufSize) {
          // Larger than a pooled buffer: send a copy (the caller may reuse `data` at once).
          this.#flush(t, sh, { offset, buf: data.slice(), length: data.length });
          continue;
        }
        p = { offset, buf: new Uint8Array(takeBuffer(this.#bufSize)), length: 0 };
        this.#pending.set(key, p);
      }
      p.buf.set(data, p.length);
      p.length += data.length;
      if (!this.#whole && (endsPatch || p.length === p.buf.length)) {
        this.#pending.delete(key);
        this.#flush(t, sh, p);
      }
    }
  }

  #flush(t: Target, sh: number, p: Pending): void {
    const body = p.buf.subarray(0, p.length);
    this.#inflight += body.length;
    t.inflight += body.length;
    const start = performance.now();
    const job = (async () => {
      try {
        if (t.failed) return;
        const r = await t.server.storage.upload(this.si, sh, t.secret, p.offset, body);
        const ms = performance.now() - start;
        this.#ackMs = this.#ackMs === 0 ? ms : 0.8 * this.#ackMs + 0.2 * ms;
        if (r.required.length === 0) t.done.add(sh);
        // The server answered, so it has read the whole body: the buffer is free again.
        if (p.buf.length === this.#bufSize) giveBuffer(p.buf.buffer);
      } catch (e) {
        this.#fail(t, `upload of share ${sh}: ${describe(e)}`);
      } finally {
        this.#inflight -= body.length;
        t.inflight -= body.length;
        this.#wake();
      }
    })();
    this.#flushes.set(job, t);
    this.#started.set(job, start);
    job.finally(() => {
      this.#flushes.delete(job);
      this.#started.delete(job);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /**
   * Wait until the bytes in flight to live servers drop below the budget. A
   * server that stops acknowledging would otherwise hold the whole budget
   * until its requests' deadlines: while waiting, a server whose oldest PATCH
   * is older than max(UPLOAD_STALL_MIN_MS, 8 × the average acknowledgement
   * time) fails as late, when the others give happiness without it. The floor
   * is generous: an honest server's fsync on a busy disk can take seconds, and
   * a share dropped for being slow is a share the file lacks.
   */
  async room(): Promise<void> {
    while (this.#liveInflight() > MAX_INFLIGHT_BYTES) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        timer = setTimeout(r, 250);
      });
      clearTimeout(timer);
      this.#dropStalled();
    }
  }

  #liveInflight(): number {
    let n = 0;
    for (const t of this.targets.values()) if (!t.failed) n += t.inflight;
    return n;
  }

  #dropStalled(): void {
    const now = performance.now();
    const grace = Math.max(UPLOAD_STALL_MIN_MS, 8 * this.#ackMs);
    const stalled = new Set<string>();
    for (const [job, t] of this.#flushes) {
      if (!t.failed && now - (this.#started.get(job) ?? now) > grace) stalled.add(t.key);
    }
    if (stalled.size === 0 || stalled.size * 2 > this.liveCount()) return;
    if (this.happiness("planned", stalled) < this.happy) return;
    for (const t of this.targets.values()) {
      if (stalled.has(t.key)) {
        this.#fail(
          t,
          `upload: a PATCH unacknowledged for over ${Math.round(grace)} ms (treated as down)`,
        );
      }
    }
  }

  /** Send everything queued and wait for every PATCH. */
  async drain(): Promise<void> {
    // A whole share's block waits for its front (finalize).
    for (const [key, p] of this.#whole ? [] : [...this.#pending]) {
      this.#pending.delete(key);
      const i = key.lastIndexOf(":");
      this.#flush(this.targets.get(key.slice(0, i))!, Number(key.slice(i + 1)), p);
    }
    for (;;) {
      // A target given up on (failed, or late) is not waited for.
      const live = [...this.#flushes].filter(([, t]) => !t.failed);
      if (live.length === 0) return;
      await this.#settle(live.map(([p, t]) => ({ t, p })), "planned");
    }
  }

  /**
   * Wait for `jobs` (requests to targets), but once the targets that have
   * finished are at least half and give happiness on their own, wait only a
   * grace period (stragglerGrace) for the rest; a target still busy then
   * fails as late (treated like a down server; its requests end at their
   * deadlines in the background).
   */
  async #settle(
    jobs: { t: Target; p: Promise<unknown> }[],
    which: "planned" | "complete",
  ): Promise<void> {
    const per = new Map<string, { t: Target; ps: Promise<unknown>[] }>();
    for (const j of jobs) {
      const e = per.get(j.t.key) ?? { t: j.t, ps: [] };
      e.ps.push(j.p);
      per.set(j.t.key, e);
    }
    const groups = [...per.values()];
    const t0 = performance.now();
    const g = await gather(groups, (x) => Promise.all(x.ps), {
      enough: (answered) => {
        if (answered.length * 2 < groups.length) return false;
        const finished = new Set(answered.map((a) => groups[a.index].t.key));
        const busy = new Set(groups.map((x) => x.t.key).filter((k) => !finished.has(k)));
        return this.happiness(which, busy) >= this.happy;
      },
    });
    for (const i of g.late) this.#fail(groups[i].t, lateError(performance.now() - t0));
  }

  /** Send the front of every uploading share (high offsets first, so offset 0 completes it). */
  async finalize(front: (sh: number) => Uint8Array): Promise<void> {
    const jobs: [Target, number][] = [];
    for (const t of this.targets.values()) {
      if (!t.failed) { for (const sh of t.uploading) jobs.push([t, sh]); }
    }
    await this.#settleEach(jobs, frontConcurrency(this.layout), "complete", async ([t, sh]) => {
      if (t.failed) return;
      let bytes = front(sh);
      const key = `${t.key}:${sh}`;
      const held = this.#pending.get(key);
      if (held) {
        // The front and the held block, adjacent in the share: one PATCH from offset 0.
        this.#pending.delete(key);
        if (held.offset !== bytes.length) {
          this.#fail(t, `share ${sh}: its block does not follow its front (a bug)`);
          return;
        }
        const whole = new Uint8Array(bytes.length + held.length);
        whole.set(bytes);
        whole.set(held.buf.subarray(0, held.length), bytes.length);
        bytes = whole;
      }
      const starts: number[] = [];
      for (let off = 0; off < bytes.length; off += PATCH_CHUNK) starts.push(off);
      try {
        for (const off of starts.reverse()) {
          const r = await t.server.storage.upload(
            this.si,
            sh,
            t.secret,
            off,
            bytes.subarray(off, Math.min(bytes.length, off + PATCH_CHUNK)),
          );
          if (r.required.length === 0) t.done.add(sh);
        }
        if (!t.done.has(sh)) this.#fail(t, `share ${sh} is still incomplete after its last piece`);
      } catch (e) {
        this.#fail(t, `upload of share ${sh}: ${describe(e)}`);
      }
    });
  }

  /** Run `fn` over (target, share) jobs with at most `limit` at once, settled as #settle does. */
  async #settleEach(
    jobs: [Target, number][],
    limit: number,
    which: "planned" | "complete",
    fn: (job: [Target, number]) => Promise<void>,
  ): Promise<void> {
    let running = 0;
    const queue: (() => void)[] = [];
    const slot = async () => {
      if (running >= limit) await new Promise<void>((r) => queue.push(r));
      running++;
    };
    const free = () => {
      running--;
      queue.shift()?.();
    };
    await this.#settle(
      jobs.map((job) => ({
        t: job[0],
        p: (async () => {
          await slot();
          try {
            await fn(job);
          } finally {
            free();
          }
        })(),
      })),
      which,
    );
  }

  /**
   * Read back what each server stored before counting its shares as placed
   * (docs/immutable-files.md §5 step 7): header and UEB (against the new cap's UEB
   * hash), block-tree root (against the UEB's share root) and upper tree, and
   * one block chosen at random (against the block tree) with its segment's
   * ciphertext-tree leaf. A server whose read-back fails is failed as a whole;
   * a late one too.
   */
  async verifyPlaced(info: CapInfo): Promise<void> {
    const jobs: [Target, number][] = [];
    for (const t of this.targets.values()) {
      if (t.failed) continue;
      for (const sh of new Set([...t.held, ...t.done])) jobs.push([t, sh]);
    }
    await this.#settleEach(jobs, CONCURRENCY, "complete", async ([t, sh]) => {
      if (t.failed) return;
      const r = new ShareReader(t.server, sh, info, 0, headLength(info, this.layout.shareSize));
      try {
        await r.open();
        const i = Math.floor(Math.random() * r.layout.numSegments);
        await r.block(i);
        await r.segmentLeaf(i);
      } catch (e) {
        t.held.delete(sh);
        t.done.delete(sh);
        if (e instanceof CorruptShareError) {
          t.server.storage.reportCorruption("immutable", this.si, sh, describe(e)).catch(() => {});
        }
        this.#fail(t, `share ${sh} did not read back as written: ${describe(e)}`);
      }
    });
  }

  /** Abort every allocation not yet complete (best effort, in parallel). */
  async abortAll(): Promise<void> {
    const jobs: [Target, number][] = [];
    for (const t of this.targets.values()) {
      for (const sh of t.uploading) if (!t.done.has(sh)) jobs.push([t, sh]);
    }
    this.#pending.clear();
    // Only live targets' PATCHes are waited for (a late one ends at its deadline).
    await Promise.all([...this.#flushes].filter(([, t]) => !t.failed).map(([p]) => p));
    await mapLimit(jobs, CONCURRENCY, async ([t, sh]) => {
      await t.server.storage.abortUpload(this.si, sh, t.secret).catch(() => {});
    });
  }

  placed(): { serverId: Uint8Array; shares: number[] }[] {
    const out: { serverId: Uint8Array; shares: number[] }[] = [];
    for (const t of this.targets.values()) {
      const shares = [...new Set([...t.held, ...(t.failed ? [] : t.done)])].sort((a, b) => a - b);
      if (shares.length) out.push({ serverId: t.server.serverId, shares });
    }
    return out;
  }
}

function sameKey(s: GridServer, t: Target): boolean {
  return serverKey(s.serverId) === t.key;
}

/** Streams block hashes and (optionally) uploads blocks; builds trees and UEB at the end. */
export class Encoder {
  /**
   * Each share's block hashes, 32 bytes each, packed (no object per leaf);
   * its tree is built from them when needed. The ciphertext tree, which every
   * share carries, is filled leaf by leaf in place.
   */
  readonly #blockLeaves: Uint8Array[];
  readonly #ctTree: Uint8Array;
  #segments = 0;
  constructor(readonly layout: Layout) {
    this.#blockLeaves = Array.from(
      { length: layout.n },
      () => new Uint8Array(layout.numSegments * HASH_SIZE),
    );
    this.#ctTree = newTree(layout.numSegments);
  }

  /** Share `sh`'s block hash tree, built afresh from its leaves. */
  #blockTree(sh: number): Uint8Array {
    const t = newTree(this.layout.numSegments);
    t.set(this.#blockLeaves[sh]);
    return completeTree(t, this.layout.numSegments);
  }

  /**
   * Record segment i, erasure-coded and hashed (segment_work.ts encodeWork:
   * block s of `size` bytes at s · size of `blocks`), and hand its blocks to
   * `session` (which copies them).
   */
  add(i: number, blocks: Uint8Array, size: number, done: EncodeDone, session: UploadSession): void {
    const l = this.layout;
    if (i !== this.#segments || i >= l.numSegments) throw new Error("segments out of order");
    this.#segments++;
    this.#ctTree.set(done.leaf, i * HASH_SIZE);
    for (let s = 0; s < l.n; s++) {
      this.#blockLeaves[s].set(
        done.hashes.subarray(s * HASH_SIZE, (s + 1) * HASH_SIZE),
        i * HASH_SIZE,
      );
      session.write(s, i, blockOffset(l, i), blocks.subarray(s * size, (s + 1) * size));
    }
  }

  finish(): {
    ueb: Uint8Array;
    uebHash: Uint8Array;
    uebFields: Ueb;
    front: (sh: number) => Uint8Array;
  } {
    const l = this.layout;
    if (this.#segments !== l.numSegments) throw new Error("not every segment was encoded");
    // One block tree at a time: only its root is kept now; front() rebuilds it.
    const roots = this.#blockLeaves.map((_, sh) => treeRoot(this.#blockTree(sh)));
    const shareTree = buildTree(roots.map((r, sh) => shareLeaf(sh, r)));
    const ctTree = completeTree(this.#ctTree, l.numSegments);
    const uebFields: Ueb = {
      size: l.size,
      k: l.k,
      n: l.n,
      segmentSize: l.segmentSize,
      shareRoot: treeRoot(shareTree),
      ciphertextRoot: treeRoot(ctTree),
    };
    const ueb = encodeUeb(uebFields);
    const dn = l.chainLength;
    return {
      ueb,
      uebHash: uebHashOf(ueb),
      uebFields,
      front: (sh) =>
        packFront(l, sh, ueb, this.#blockTree(sh), treeProof(shareTree, dn, sh), ctTree),
    };
  }
}

/** Upload an immutable file. `internal.key` (tests and vectors only) fixes the encryption key. */
export async function uploadImmutable(
  ctx: ImmutableContext,
  source: ImmutableSource | Uint8Array,
  opts: UploadOptions,
  internal: { key?: Uint8Array } = {},
): Promise<UploadResult> {
  const { k, n, happy } = opts;
  validateParams(k, n, happy);
  const src = sourceOf(source);
  if (!Number.isSafeInteger(src.size) || src.size < 0) {
    throw new RangeError(`bad source size ${src.size}`);
  }
  const reqSeg = requestedSegmentSize(k, opts.segmentSize);
  let key: Uint8Array;
  /** The plaintext hash the convergent key came from: the encrypting read must match it. */
  let plainHash: Uint8Array | null = null;
  if (internal.key) key = internal.key;
  else if (opts.convergenceSecret) {
    const params = encodingParamsBytes({ k, n, segmentSize: reqSeg });
    plainHash = await hashSource(src, opts.signal);
    key = convergenceKey(opts.convergenceSecret, params, plainHash);
  } else key = randomBytes(32);
  const si = immutableStorageIndex(key);
  const segmentSize = effectiveSegmentSize(src.size, k, reqSeg);
  const params = { size: src.size, k, n, segmentSize };
  const layout = layoutOf(params, uebLengthFor(params));
  const excluded = new Set<string>();
  let last: Error | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const servers = permuteServers(si, ctx.servers).filter((s) =>
      !excluded.has(serverKey(s.serverId))
    );
    if (servers.length < happy) {
      throw last ?? new NotEnoughServersError(
        `need ${happy} servers to place shares on, have ${servers.length}; add storage servers or lower happy`,
      );
    }
    const session = new UploadSession(si, layout, ctx.leaseSecret, happy);
    try {
      return await uploadOnce(session, servers, src, key, layout, opts, plainHash);
    } catch (e) {
      await session.abortAll();
      if (e instanceof SourceChangedError) throw e;
      const midway = e instanceof NotEnoughServersError && session.failures.length > 0 &&
        session.failures.length < servers.length && !opts.signal?.aborted;
      if (!midway) throw e;
      // Move the lost servers' shares elsewhere: start again without them.
      for (const f of session.failures) excluded.add(serverKey(f.serverId));
      last = e as Error;
    }
  }
  throw last!;
}

async function uploadOnce(
  session: UploadSession,
  servers: GridServer[],
  src: ImmutableSource,
  key: Uint8Array,
  l: Layout,
  opts: UploadOptions,
  plainHash: Uint8Array | null,
): Promise<UploadResult> {
  const plan = new Map<number, GridServer>();
  for (let s = 0; s < l.n; s++) plan.set(s, servers[s % servers.length]);
  await session.allocate(plan, servers);
  const h = session.happiness();
  if (h < opts.happy) {
    const failed = session.failures.length
      ? `; ${failedServers(session.failures.map((f) => f.error))}`
      : "";
    throw new NotEnoughServersError(
      `need ${opts.happy} servers holding distinct shares, have ${h} ` +
        `(${servers.length} servers known, ${session.liveCount()} accepted shares)${failed}`,
    );
  }
  const encoder = new Encoder(l);
  // The plaintext is hashed again as it is encrypted: a source that changed
  // since the convergent key was derived from it must not be encrypted under
  // that key (a two-time pad at the key's storage index). No share's front is
  // written before this check, so no share completes.
  const rehash = plainHash ? createHash("sha256") : null;
  const pool = segmentPool(l);
  let started: EncodePipeline | undefined;
  try {
    const pipe = started = await EncodePipeline.start(pool, l, key);
    let done = 0;
    const next = async () => {
      const i = await pipe.next((i, blocks, size, d) => encoder.add(i, blocks, size, d, session));
      done += segmentLength(l, i);
      opts.onProgress?.(done, l.size);
      await session.room();
    };
    let i = 0;
    for await (const plain of segmentsOf(src, l, () => pipe.input())) {
      checkAbort(opts.signal);
      if (session.fatal) throw session.fatal;
      rehash?.update(plain);
      pipe.push(i++, plain);
      while (pipe.full) await next();
    }
    while (!pipe.empty) await next();
  } finally {
    started?.release();
    pool.close();
  }
  if (rehash && !bytesEqual(new Uint8Array(rehash.digest()), plainHash!)) {
    throw new SourceChangedError(
      "the file changed while it was being uploaded (its contents differ from those its " +
        "convergent key was derived from); nothing was stored and no cap was made — upload it again",
    );
  }
  await session.drain();
  if (session.fatal) throw session.fatal;
  checkAbort(opts.signal);
  const fin = encoder.finish();
  // Deduplicated shares must be exactly what we would have written.
  let alreadyHad = 0;
  await mapLimit([...session.targets.values()], frontConcurrency(l), async (t) => {
    for (const sh of [...t.held]) {
      const want = fin.front(sh);
      try {
        const got = await t.server.storage.readImmutable(session.si, sh, 0, want.length);
        if (bytesEqual(got, want)) {
          alreadyHad++;
          continue;
        }
        t.server.storage.reportCorruption(
          "immutable",
          session.si,
          sh,
          "share differs from its re-encoding",
        ).catch(
          () => {},
        );
      } catch { /* counted as not held */ }
      t.held.delete(sh);
    }
  });
  await session.finalize(fin.front);
  await session.verifyPlaced({
    storageIndex: session.si,
    key,
    uebHash: fin.uebHash,
    k: l.k,
    n: l.n,
    size: l.size,
  });
  const complete = session.happiness("complete");
  if (complete < opts.happy) {
    throw new NotEnoughServersError(
      `need ${opts.happy} servers holding distinct shares, have ${complete} after the upload; ` +
        failedServers(session.failures.map((f) => f.error)),
    );
  }
  const cap = formatCap({
    kind: "immutable-read",
    key,
    uebHash: fin.uebHash,
    k: l.k,
    n: l.n,
    size: l.size,
  });
  return { cap, storageIndex: session.si, size: l.size, placed: session.placed(), alreadyHad };
}

// ---------------------------------------------------------------- reading shares

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

export { ImmutableFormatError };
