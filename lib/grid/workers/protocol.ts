/** Messages between pool.ts and segment_worker.ts. */
import type { DecodeDone, DecodeJob, EncodeDone, EncodeJob } from "./segment_work.ts";

/** The name a segment Worker is started with (how its module knows where it runs). */
export const SEGMENT_WORKER_NAME = "shoal-segment-worker";

export type WorkerRequest =
  | { id: number; op: "encode"; job: EncodeJob }
  | { id: number; op: "decode"; job: DecodeJob };

export type WorkerReply =
  | { id: number; op: "encode"; job: EncodeJob; done?: EncodeDone; error?: string }
  | { id: number; op: "decode"; job: DecodeJob; done?: DecodeDone; error?: string };
