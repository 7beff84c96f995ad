/** The grid layer: server list and placement, mutable files, directories. */
export * from "./errors.ts";
export * from "./servers.ts";
export * from "./mutable_share.ts";
export * from "./mutable.ts";
export * from "./mutable_push.ts";
export * from "./dirnode.ts";
export {
  downloadImmutable,
  type DownloadOptions,
  happinessOf,
  type ImmutableCheck,
  type ImmutableContext,
  ImmutableFormatError,
  type ImmutableShareStatus,
  type ImmutableSource,
  uploadImmutable,
  type UploadOptions,
  type UploadResult,
} from "./immutable.ts";
export * from "./immutable_repair.ts";
export * from "./mutable_respread.ts";
export {
  decodeUeb,
  DEFAULT_SEGMENT_SIZE,
  type EncodedFile,
  encodeImmutableFile,
  encodingParamsBytes,
  type Layout as ImmutableLayout,
  layoutOf as immutableLayoutOf,
  requestedSegmentSize,
  type Ueb,
  uebHashOf,
} from "./immutable_format.ts";
export { Grid, type GridOptions } from "./grid.ts";
export { GRID_TAGS } from "./tags.ts";
