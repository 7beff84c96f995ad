/** Segment Workers: the CPU work of immutable uploads and downloads on other cores. */
export { SegmentPool, segmentWorkerCount, segmentWorkers } from "./pool.ts";
export {
  type DecodeDone,
  type DecodeJob,
  type EncodeDone,
  type EncodeJob,
} from "./segment_work.ts";
export { inSegmentWorker } from "./segment_worker.ts";
export { EncodePipeline, segmentPool, WORKER_MIN_SEGMENTS } from "./pipeline.ts";
