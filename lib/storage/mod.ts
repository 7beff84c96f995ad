/**
 * The storage protocol: contract (protocol.ts), share store and server
 * (store.ts, server.ts), slot watches (watch.ts), and the pinned HTTPS client, storage URLs and TLS
 * identities (client.ts, url.ts, tls.ts).
 */
export * from "./protocol.ts";
export { type ShareKind, ShareStore, siString, StoreError, type StoreOptions } from "./store.ts";
export {
  createStorageHandler,
  DEFAULT_MAX_BATCH_SLOTS,
  DEFAULT_MAX_BODY_SIZE,
  type HandlerOptions,
  type ServeOptions,
  serveStorage,
  type StorageHandler,
  type StorageServer,
} from "./server.ts";
export { sharedReadsReady } from "./tls_reads.ts";
export { watchDigest, WatchHub, type WatchHubOptions, watchId } from "./watch.ts";
export {
  generateTlsIdentity,
  pinFromCertDer,
  pinFromCertPem,
  spkiOfCertDer,
  type TlsIdentity,
  TlsIdentityError,
} from "./tls.ts";
export {
  formatLocationHint,
  formatStorageUrl,
  type LocationHint,
  MAX_LOCATION_HINTS,
  MAX_STORAGE_URL_LENGTH,
  parseLocationHint,
  parseStorageUrl,
  serverIdString,
  STORAGE_URL_PREFIX,
  STORAGE_URL_VERSION,
  type StorageUrl,
  StorageUrlError,
} from "./url.ts";
export {
  type LocationFailure,
  PinMismatchError,
  StorageClient,
  type StorageClientOptions,
  StorageDeadlineError,
  StorageError,
  StorageUnreachableError,
  verifyPinnedConnection,
} from "./client.ts";
