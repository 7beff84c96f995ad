/**
 * The storage protocol contract shared by the server (lib/storage/server.ts)
 * and the client (lib/storage/client.ts). docs/storage-protocol.md is the
 * normative description; this file is its machine-checked summary.
 *
 * Transport: HTTP/1.1 over TLS, server authenticated by the SHA-256 pin of its
 * SubjectPublicKeyInfo. Structured bodies are CBOR (`application/cbor`);
 * share bytes travel raw (`application/octet-stream`). Every byte-string
 * secret travels base32-encoded in a header, never in the path or query.
 */

export const PROTOCOL_VERSION = 1;
export const API_PREFIX = "/shoal/v1";

export const CBOR_TYPE = "application/cbor";
export const OCTET_TYPE = "application/octet-stream";

/** Header names. Values of secret headers are lowercase unpadded base32. */
export const HEADERS = {
  /** `Authorization: Shoal-Swissnum <base32 swissnum>` */
  authorization: "authorization",
  writeEnabler: "x-shoal-write-enabler",
  leaseRenewSecret: "x-shoal-lease-renew-secret",
  leaseCancelSecret: "x-shoal-lease-cancel-secret",
  uploadSecret: "x-shoal-upload-secret",
} as const;
export const AUTH_SCHEME = "Shoal-Swissnum";

/** Byte lengths of fixed-size values. */
export const STORAGE_INDEX_BYTES = 16;
export const SECRET_BYTES = 32;
export const SWISSNUM_BYTES = 32;
export const PIN_BYTES = 32;
/** Share numbers are integers 0 <= n < MAX_SHARE_NUMBER (k=1 "everywhere" files can have thousands). */
export const MAX_SHARE_NUMBER = 1 << 24;

/**
 * Routes (SI = base32 storage index, 26 characters; N = decimal share number):
 *
 * GET    /shoal/v1/version                          -> ServerVersion
 * POST   /shoal/v1/immutable/SI                     AllocateRequest -> AllocateResponse   (upload + lease secrets)
 * PATCH  /shoal/v1/immutable/SI/N                   raw bytes, Content-Range -> UploadResponse (upload secret)
 * PUT    /shoal/v1/immutable/SI/N/abort             -> 204 (upload secret)
 * GET    /shoal/v1/immutable/SI/shares              -> number[]
 * GET    /shoal/v1/immutable/SI/N                   Range -> raw bytes (200 or 206)
 * POST   /shoal/v1/immutable/SI/N/corrupt           CorruptionReport -> 204
 * POST   /shoal/v1/mutable/SI/read-test-write       ReadTestWriteRequest -> ReadTestWriteResponse (write enabler + lease secrets)
 * GET    /shoal/v1/mutable/SI/shares                -> number[]
 * GET    /shoal/v1/mutable/SI/N                     Range -> raw bytes (200 or 206)
 * POST   /shoal/v1/mutable/SI/N/corrupt             CorruptionReport -> 204
 * POST   /shoal/v1/mutable/batch-read               BatchReadRequest -> BatchReadResponse
 * POST   /shoal/v1/batch-list                       BatchListRequest -> BatchListResponse (shares of many SIs, both namespaces)
 * PUT    /shoal/v1/lease/SI                         -> 204 (lease secrets; adds or renews on every share of SI)
 * PUT    /shoal/v1/mutable/watch/WID                WatchRegisterRequest -> WatchResponse
 * POST   /shoal/v1/mutable/watch/WID                WatchPollRequest -> WatchResponse (long poll; 404 unknown-watch)
 *
 * Every request carries the Authorization header. Errors: a 4xx/5xx status
 * with an ErrorBody.
 */

export interface ServerVersion {
  protocol: number;
  software: string;
  /** Largest share this server accepts, in bytes. */
  maxShareSize: number;
  /** Bytes the server can still accept (after its reserved space). */
  availableSpace: number;
  /** Largest request body the server accepts, in bytes. */
  maxBodySize: number;
  /** Most slots one batch-read may name. */
  maxBatchSlots: number;
  /** Lease duration in seconds granted by add/renew. */
  leaseDuration: number;
  /**
   * Bytes of shares the server stores (a count at most 30 s old); absent from servers that
   * have not counted yet, and from older servers.
   */
  used?: number;
}

export interface AllocateRequest {
  shareNumbers: number[];
  /** Final size of each share, in bytes. */
  allocatedSize: number;
}
export interface AllocateResponse {
  /** Shares this server already holds complete (not re-uploaded). */
  alreadyHave: number[];
  /** Shares allocated for this upload (or already being uploaded with the same upload secret). */
  allocated: number[];
}
/** After a PATCH: the byte ranges still missing; empty when the share is complete (status 201). */
export interface UploadResponse {
  required: { begin: number; end: number }[];
}

export interface CorruptionReport {
  reason: string;
}

export interface ReadVectorEntry {
  offset: number;
  /** Number of bytes; the server returns fewer when the share is shorter. */
  size: number;
}
export interface TestVectorEntry {
  offset: number;
  size: number;
  /** Equal-comparison specimen; bytes past the share's end read as empty. */
  specimen: Uint8Array;
}
export interface WriteVectorEntry {
  offset: number;
  data: Uint8Array;
}
export interface ShareTestWrite {
  share: number;
  test: TestVectorEntry[];
  write: WriteVectorEntry[];
  /** Truncate or extend (with zeros) to this length after writing; null: leave as is. 0 deletes the share. */
  newLength: number | null;
}
/**
 * Proof that the writer holds the slot's signing key, required by a write that
 * creates the slot (docs/storage-protocol.md §6.3): the Ed25519 verification
 * key (the storage index derives from it) and its signature over
 * slotCreationMessage(storage index, server id, SHA-256(write enabler)).
 */
export interface SlotProof {
  verifyKey: Uint8Array;
  signature: Uint8Array;
}
export interface ReadTestWriteRequest {
  testWriteVectors: ShareTestWrite[];
  /** Applied to every existing share of the slot, before any write. */
  readVector: ReadVectorEntry[];
  /** Needed when the call creates the slot; ignored otherwise. */
  createSlot?: SlotProof | null;
}
export interface ReadTestWriteResponse {
  success: boolean;
  /** Per existing share, the data of each read vector entry, read before the writes. */
  reads: { share: number; data: Uint8Array[] }[];
}

export interface BatchReadSlot {
  storageIndex: Uint8Array;
  /** Shares to read; omitted or null means every share the server holds for this slot. */
  shares?: number[] | null;
  /** Ranges to read; size null means "to the end of the share". */
  ranges: { offset: number; size: number | null }[];
}
export interface BatchReadRequest {
  slots: BatchReadSlot[];
}
export interface BatchReadResponse {
  slots: { storageIndex: Uint8Array; shares: { share: number; data: Uint8Array[] }[] }[];
}

/**
 * Batch list (docs/storage-protocol.md §6.6): which complete shares the server
 * holds, in both namespaces, for up to maxBatchSlots storage indexes at once.
 * One entry per requested storage index, in request order.
 */
export interface BatchListRequest {
  storageIndexes: Uint8Array[];
}
export interface BatchListEntry {
  immutable: number[];
  mutable: number[];
}
export interface BatchListResponse {
  entries: BatchListEntry[];
}

/**
 * Slot watches (docs/storage-protocol.md "Slot watches"). WID = base32 of the
 * first 16 bytes of taggedHash(WATCH_ID_TAG, concatenation of the storage
 * indexes in order), so any client can compute it and a server checks it.
 * digest = SHA-256 over, for each storage index in order: u32be(number of
 * shares) || the first WATCH_CHECKSTRING_BYTES bytes of each share, by share number.
 */
export const WATCH_ID_TAG = "shoal:v1:watch-id";
export const WATCH_ID_BYTES = 16;
export const WATCH_CHECKSTRING_BYTES = 57;
export const WATCH_DIGEST_BYTES = 32;
/** Longest `wait` of a watch poll, in seconds. */
export const MAX_WATCH_WAIT = 60;

export interface WatchRegisterRequest {
  /** At most maxBatchSlots distinct storage indexes. */
  storageIndexes: Uint8Array[];
}
export interface WatchPollRequest {
  /** Answer at once when the digest differs from this (absent/null: answer at once). */
  expect?: Uint8Array | null;
  /** Seconds (0..MAX_WATCH_WAIT) to wait for the digest to move away from `expect`. */
  wait?: number;
}
export interface WatchResponse {
  digest: Uint8Array;
}

export interface ErrorBody {
  /** Stable machine-readable code, e.g. "unauthorized", "bad-write-enabler", "not-found". */
  error: string;
  /** Human-readable explanation that never contains a secret. */
  message: string;
}
