/**
 * Uploading immutable files (lib/grid/immutable.ts, docs/immutable-files.md §5): the upload
 * session (allocation, streaming PATCHes, fronts, read-back, abort), the encoder (block
 * hashes, trees, UEB) and uploadImmutable.
 */
import { createHash } from "node:crypto";
import { bytesEqual, toHex } from "../codec/mod.ts";
import {
  convergenceKey,
  formatCap,
  immutableStorageIndex,
  leaseSecrets,
  randomBytes,
  uploadSecret,
} from "../crypto/mod.ts";
import { type EncodeDone, EncodePipeline, segmentPool } from "./workers/mod.ts";
import { giveBuffer, takeBuffer } from "./workers/recycle.ts";
import { failedServers, NotEnoughServersError, SourceChangedError } from "./errors.ts";
import {
  blockOffset,
  buildTree,
  completeTree,
  effectiveSegmentSize,
  encodeUeb,
  encodingParamsBytes,
  HASH_SIZE,
  type Layout,
  layoutOf,
  newTree,
  packFront,
  requestedSegmentSize,
  segmentLength,
  shareLeaf,
  treeProof,
  treeRoot,
  type Ueb,
  uebHashOf,
  uebLengthFor,
  validateParams,
} from "./immutable_format.ts";
import {
  gather,
  type GridServer,
  lateError,
  mapLimit,
  permuteServers,
  serverKey,
} from "./servers.ts";
import {
  checkAbort,
  CONCURRENCY,
  describe,
  happinessOf,
  type ImmutableContext,
  PATCH_CHUNK,
  type UploadOptions,
  type UploadResult,
} from "./immutable_common.ts";
import { hashSource, type ImmutableSource, segmentsOf, sourceOf } from "./immutable_source.ts";
import { type CapInfo, CorruptShareError, headLength, ShareReader } from "./immutable_read.ts";

/** Upload: bytes handed to PATCHes not yet acknowledged, across all servers. */
const MAX_INFLIGHT_BYTES = 12 * 1024 * 1024;
/** The least time a PATCH may go unacknowledged before its server counts as down (room()). */
const UPLOAD_STALL_MIN_MS = 8_000;
/**
 * Share fronts (header, UEB, hash trees) built and written at once when an
 * upload finishes: all of them for most files, a few when the trees (which
 * grow with the file, ~64 KB per GiB per tree) make each front large.
 */
function frontConcurrency(l: Layout): number {
  return l.blocksOffset > 1024 * 1024 ? 2 : CONCURRENCY;
}

function shortId(server: GridServer): string {
  return server.nickname ?? toHex(server.serverId).slice(0, 8);
}

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
  try {
    const pipe = await EncodePipeline.start(pool, l, key);
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
