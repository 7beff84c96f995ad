/**
 * Segment Workers for immutable uploads and downloads: the encryption,
 * erasure coding and hashing of upload segments, and the verification,
 * decoding and decryption of downloaded ones, run on other cores while the
 * calling thread drives TLS and the storage protocol (docs/performance.md
 * §9). Jobs carry their buffers and get them back (ArrayBuffers transferred,
 * never copied); results come back in the order asked when awaited in that
 * order (each Worker works in order; jobs go round-robin).
 *
 * Without Workers (a runtime without them, one that cannot start the
 * module, `segmentWorkers(0)`), every job runs on the calling thread, giving
 * the same bytes. A pool lives for one operation: close() ends its Workers
 * (a live Worker keeps a Deno process running).
 */
import {
  type DecodeDone,
  type DecodeJob,
  decodeWork,
  type EncodeDone,
  type EncodeJob,
  encodeWork,
} from "./segment_work.ts";
import { SEGMENT_WORKER_NAME, type WorkerReply, type WorkerRequest } from "./protocol.ts";
import { giveBuffer, takeBuffer } from "./recycle.ts";

let configured: number | null = null;
/** Job buffers a pool keeps for reuse. */
const SPARE_MAX = 8;

/**
 * How many segment Workers an operation starts: `count` (0 = none, every job
 * on the calling thread), or null for the default. Returns the previous
 * setting. Tests and the bench compare with and without.
 */
export function segmentWorkers(count: number | null): number | null {
  const was = configured;
  configured = count;
  return was;
}

/**
 * Workers to use when they are wanted: one less than the cores, at least 1,
 * at most 4.
 */
export function segmentWorkerCount(): number {
  const cores = navigator.hardwareConcurrency ?? 1;
  return Math.max(1, Math.min(4, cores - 1));
}

/**
 * The default: SHOAL_SEGMENT_WORKERS=N if set, else **none** for now. On the
 * 2-core build machine under load (25-40) Workers raised the client's CPU per
 * MB (download ~+80 %, upload ~+60 %) and a put's or get's peak RSS above 200
 * MB (docs/performance.md §9.4); a quiet-machine run of `deno task bench
 * immutable`, which measures both, decides whether this becomes
 * segmentWorkerCount().
 */
function defaultCount(): number {
  const env = Deno.env.get("SHOAL_SEGMENT_WORKERS");
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  return 0;
}

/**
 * The module a Worker starts. From source (and in a `deno compile` binary,
 * which keeps the module graph) that is segment_worker.ts next to this file;
 * in the one-file bundle (dist/shoal.js, where every module's
 * import.meta.url is the bundle's) it is the bundle itself, which main.ts
 * turns into a segment Worker when started under SEGMENT_WORKER_NAME.
 */
function workerUrl(): URL {
  const here = import.meta.url;
  return here.endsWith(".ts") ? new URL("./segment_worker.ts", here) : new URL(here);
}

interface Waiting {
  resolve: (r: WorkerReply) => void;
  reject: (e: Error) => void;
}

class SegmentWorker {
  readonly #w: Worker;
  readonly ready: Promise<boolean>;
  #waiting = new Map<number, Waiting>();
  #dead: Error | null = null;
  constructor() {
    this.#w = new Worker(workerUrl(), { type: "module", name: SEGMENT_WORKER_NAME });
    let started = false;
    this.ready = new Promise<boolean>((resolve) => {
      this.#w.onmessage = (e: MessageEvent) => {
        const m = e.data as WorkerReply | { ready: true };
        if ("ready" in m) {
          started = true;
          return resolve(true);
        }
        const w = this.#waiting.get(m.id);
        this.#waiting.delete(m.id);
        w?.resolve(m);
      };
      this.#w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#die(new Error(`segment worker failed: ${e.message}`));
        if (!started) resolve(false);
      };
    });
  }

  #die(e: Error): void {
    this.#dead ??= e;
    for (const w of this.#waiting.values()) w.reject(e);
    this.#waiting.clear();
    this.#w.terminate();
  }

  post(req: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    if (this.#dead) return Promise.reject(this.#dead);
    return new Promise((resolve, reject) => {
      this.#waiting.set(req.id, { resolve, reject });
      this.#w.postMessage(req, transfer);
    });
  }

  close(): void {
    this.#die(new Error("the segment worker pool was closed"));
  }
}

export class SegmentPool {
  readonly #workers: SegmentWorker[] = [];
  #started: Promise<SegmentWorker[]> | null = null;
  #next = 0;
  #id = 0;
  #closed = false;
  /** Buffers for jobs, kept for reuse (recycle()). */
  #spare: Uint8Array[] = [];

  /** `workers`: how many to start (default: segmentWorkers()'s setting). */
  constructor(readonly workers: number = configured ?? defaultCount()) {}

  /** The Workers that started (empty: jobs run on the calling thread). */
  #pool(): Promise<SegmentWorker[]> {
    if (!this.#started) {
      if (this.workers <= 0 || typeof Worker === "undefined") this.#started = Promise.resolve([]);
      else {
        try {
          for (let i = 0; i < this.workers; i++) this.#workers.push(new SegmentWorker());
        } catch {
          for (const w of this.#workers) w.close();
          this.#workers.length = 0;
        }
        this.#started = Promise.all(this.#workers.map((w) => w.ready)).then((ok) => {
          const up = this.#workers.filter((_, i) => ok[i]);
          if (up.length < this.#workers.length) {
            for (const w of this.#workers) if (!up.includes(w)) w.close();
          }
          return up;
        });
      }
    }
    return this.#started;
  }

  /** Whether jobs run on Workers (false: on the calling thread). */
  async threaded(): Promise<boolean> {
    return (await this.#pool()).length > 0;
  }

  async #run(req: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    if (this.#closed) throw new Error("the segment worker pool was closed");
    const ws = await this.#pool();
    if (ws.length === 0) {
      if (req.op === "encode") return { ...req, done: await encodeWork(req.job) };
      return { ...req, done: await decodeWork(req.job, true) };
    }
    const w = ws[this.#next++ % ws.length];
    const reply = await w.post(req, [...new Set(transfer)]);
    if (reply.error !== undefined) throw new Error(`segment worker: ${reply.error}`);
    return reply;
  }

  /**
   * Run an encode job. `input` and `out` must each view the whole of its own
   * ArrayBuffer: both are handed to a Worker and come back as the result's
   * `job.input` / `job.out` (the caller's views are detached meanwhile).
   */
  async encode(job: EncodeJob): Promise<{ job: EncodeJob; done: EncodeDone }> {
    const r = await this.#run({ id: this.#id++, op: "encode", job }, [
      job.input.buffer as ArrayBuffer,
      job.out.buffer as ArrayBuffer,
    ]);
    return { job: r.job as EncodeJob, done: r.done as EncodeDone };
  }

  /** Run a decode job; `blocks` must view the whole of its own ArrayBuffer (handed over and back). */
  async decode(job: DecodeJob): Promise<{ job: DecodeJob; done: DecodeDone }> {
    const r = await this.#run({ id: this.#id++, op: "decode", job }, [
      job.blocks.buffer as ArrayBuffer,
    ]);
    return { job: r.job as DecodeJob, done: r.done as DecodeDone };
  }

  /**
   * A buffer of at least `bytes` bytes viewing the whole of its own
   * ArrayBuffer, for a job: one given back with recycle() if it is large
   * enough, else a new one. Reusing buffers matters: a fresh ArrayBuffer
   * handed to a Worker and back costs about ten times the CPU of a reused one.
   */
  buffer(bytes: number): Uint8Array {
    const i = this.#spare.findIndex((b) => b.length >= bytes);
    return i >= 0 ? this.#spare.splice(i, 1)[0] : new Uint8Array(takeBuffer(bytes));
  }

  /** Give a job's buffer back for buffer() (at most a few are kept). */
  recycle(buf: Uint8Array): void {
    if (
      this.#spare.length < SPARE_MAX && buf.byteOffset === 0 && buf.length === buf.buffer.byteLength
    ) {
      this.#spare.push(buf);
    }
  }

  /**
   * End the Workers (jobs still running fail). The spare buffers go on to the next operation
   * (recycle.ts): only buffers given back with recycle() are there, which nothing still uses.
   */
  close(): void {
    this.#closed = true;
    for (const w of this.#workers) w.close();
    for (const b of this.#spare) giveBuffer(b.buffer);
    this.#spare = [];
  }
}
