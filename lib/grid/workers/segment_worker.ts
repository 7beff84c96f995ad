/**
 * A segment Worker's entry point: answers encode and decode jobs
 * (segment_work.ts) posted by pool.ts, handing every buffer back
 * (transferred, never copied). Importing this module anywhere else does
 * nothing: the handler is installed only inside a Worker started with the
 * name SEGMENT_WORKER_NAME. main.ts imports it so that the bundled program
 * (dist/shoal.js, one file) can start itself as its own segment Worker.
 */
import { decodeWork, encodeWork } from "./segment_work.ts";
import type { WorkerReply, WorkerRequest } from "./protocol.ts";
import { SEGMENT_WORKER_NAME } from "./protocol.ts";

interface WorkerScope {
  name?: string;
  postMessage(m: unknown, transfer: Transferable[]): void;
  onmessage: ((e: MessageEvent<WorkerRequest>) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;

/** True inside a segment Worker (where the program's command line must not run). */
export const inSegmentWorker = scope.name === SEGMENT_WORKER_NAME &&
  typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== "undefined";

async function answer(req: WorkerRequest): Promise<WorkerReply> {
  try {
    if (req.op === "encode") {
      const done = await encodeWork(req.job);
      return { id: req.id, op: "encode", job: req.job, done };
    }
    return { id: req.id, op: "decode", job: req.job, done: await decodeWork(req.job) };
  } catch (e) {
    return {
      id: req.id,
      op: req.op,
      job: req.job,
      error: e instanceof Error ? e.message : String(e),
    } as WorkerReply;
  }
}

if (inSegmentWorker) {
  scope.onmessage = async (e) => {
    const reply = await answer(e.data);
    const j = reply.job;
    const buffers = j && "out" in j
      ? [j.input.buffer, j.out.buffer]
      : [(j as { blocks: Uint8Array }).blocks.buffer];
    scope.postMessage(reply, [...new Set(buffers)] as Transferable[]);
  };
  scope.postMessage({ ready: true }, []);
}
