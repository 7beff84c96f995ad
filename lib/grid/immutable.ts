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
 *
 * This module is the public entry and only re-exports: immutable_common.ts (shared limits,
 * the option and result types, helpers), immutable_source.ts (upload sources),
 * immutable_upload.ts (upload session, encoder, uploadImmutable) and immutable_read.ts
 * (reading shares, downloadImmutable).
 */
export {
  checkAbort,
  CONCURRENCY,
  describe,
  type DownloadOptions,
  happinessOf,
  type ImmutableCheck,
  type ImmutableContext,
  type ImmutableShareStatus,
  type UploadOptions,
  type UploadResult,
} from "./immutable_common.ts";
export { type ImmutableSource, type SourceReader } from "./immutable_source.ts";
export { Encoder, uploadImmutable, UploadSession } from "./immutable_upload.ts";
export {
  type CapInfo,
  capInfo,
  CorruptShareError,
  downloadImmutable,
  fetchSegment,
  locate,
  type Located,
  ShareReader,
  ShareSet,
} from "./immutable_read.ts";
export { ImmutableFormatError } from "./immutable_format.ts";
