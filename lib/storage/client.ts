/**
 * The storage client: one typed method per route of the storage protocol
 * (protocol.ts, docs/storage-protocol.md), over pinned TLS (http1.ts).
 *
 * - The server is authenticated by the pin in its storage URL before a single
 *   byte of request (and so any secret) is sent.
 * - Keep-alive connections are pooled per client (at most maxConnections).
 * - Location hints are tried in order; the one that worked is tried first next time.
 * - Timeouts: connect (+TLS handshake) and idle (no progress while a request is
 *   in flight), and an ABSOLUTE deadline per request (deadlineMs) that bytes
 *   trickling in do not extend: a server that drips one byte a second is cut
 *   off when the deadline passes, exactly like one that does not answer.
 * - Only idempotent reads (GET routes and batch-read) are retried, once, on a
 *   fresh connection, when a pooled connection turns out dead before any
 *   response byte arrived.
 * Error messages never contain the swissnum or any other secret.
 */
import { base32Encode, CborError, decodeCbor, encodeCbor } from "../codec/mod.ts";
import {
  ConnectionLostError,
  connectPinned,
  HttpConnection,
  HttpProtocolError,
  type HttpResponse,
  HttpTimeoutError,
  PinMismatchAtLocation,
} from "./http1.ts";
import type { TLSSocket } from "node:tls";
import {
  type AllocateRequest,
  type AllocateResponse,
  API_PREFIX,
  AUTH_SCHEME,
  type BatchListResponse,
  type BatchReadRequest,
  type BatchReadResponse,
  CBOR_TYPE,
  HEADERS,
  MAX_SHARE_NUMBER,
  MAX_WATCH_WAIT,
  OCTET_TYPE,
  type ReadTestWriteRequest,
  type ReadTestWriteResponse,
  SECRET_BYTES,
  type ServerVersion,
  type SlotProof,
  STORAGE_INDEX_BYTES,
  type UploadResponse,
  WATCH_DIGEST_BYTES,
} from "./protocol.ts";
import { watchId } from "./watch.ts";
import { parseLocationHint, serverIdString, type StorageUrl } from "./url.ts";

export interface StorageClientOptions {
  /** Idle timeout of a request in flight, and default connect timeout (ms). Default 30000. */
  timeoutMs?: number;
  /** TCP connect + TLS handshake timeout per location hint (ms). Default min(timeoutMs, 10000). */
  connectTimeoutMs?: number;
  /**
   * Absolute deadline of one request (ms): waiting for a connection, connecting,
   * sending and the whole response, however the bytes trickle in. Default
   * 2 · timeoutMs (60000), plus the time the request's own bytes take at
   * deadlineBytesPerSecond (the body sent, and the size of a ranged read), so
   * large transfers on slow links still fit. A watch poll gets its wait on top.
   */
  deadlineMs?: number;
  /** The slowest transfer rate the deadline allows for a request's own bytes. Default 256 KiB/s. */
  deadlineBytesPerSecond?: number;
  /** Most simultaneous connections to this server. Default 8. */
  maxConnections?: number;
  /** Largest response body accepted for a request without a known size. Default 128 MiB. */
  maxResponseBytes?: number;
  /** Pooled connections unused this long are closed (ms). Default 15000. */
  idleTimeoutMs?: number;
  /** Called after every request with the HTTP bytes it sent and received (for accounting). */
  onWire?: ((sent: number, received: number) => void) | null;
}

/** The server answered with an error status (or a response this client cannot accept). */
export class StorageError extends Error {
  override name = "StorageError";
  /** HTTP status (0 when the response was not valid HTTP). */
  readonly status: number;
  /** The server's ErrorBody code, or "bad-response" / "response-too-large" / "http-<status>". */
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface LocationFailure {
  location: string;
  reason: string;
}

/** No location hint gave a working connection, or the connection failed during a request. */
export class StorageUnreachableError extends Error {
  override name = "StorageUnreachableError";
  readonly failures: LocationFailure[];
  /** Every location hint timed out (nothing answered at all), as opposed to refusing. */
  silent = false;
  constructor(message: string, failures: LocationFailure[]) {
    super(message);
    this.failures = failures;
  }
}

/**
 * A request did not complete within its absolute deadline (the server may be
 * slow, trickling bytes, or not answering at all). Its connection was closed.
 */
export class StorageDeadlineError extends StorageUnreachableError {
  override name = "StorageDeadlineError";
}

/**
 * A server was reached but presented a TLS key other than the pinned one
 * (and no hint reached the right server). Nothing was sent to it.
 */
export class PinMismatchError extends StorageUnreachableError {
  override name = "PinMismatchError";
}

const DEFAULTS = {
  timeoutMs: 30_000,
  maxConnections: 8,
  maxResponseBytes: 128 * 1024 * 1024,
  idleTimeoutMs: 15_000,
};

/** Bytes that may be carried besides the data in a response (CBOR framing). */
const CBOR_SLACK = 64 * 1024;

interface Pooled {
  conn: HttpConnection;
  location: string;
  idleTimer?: ReturnType<typeof setTimeout>;
}

interface Target {
  location: string;
  host: string;
  port: number;
  servername?: string;
}

function checkBytes(what: string, b: Uint8Array, n: number): void {
  if (!(b instanceof Uint8Array) || b.length !== n) {
    throw new TypeError(`${what} must be ${n} bytes`);
  }
}

function checkShare(n: number): void {
  if (!Number.isSafeInteger(n) || n < 0 || n >= MAX_SHARE_NUMBER) {
    throw new RangeError(`share number must be an integer 0 <= n < ${MAX_SHARE_NUMBER}`);
  }
}

function checkUint(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RangeError(`${what} must be a non-negative integer`);
  }
}

function secretHeader(name: string, what: string, secret: Uint8Array): [string, string] {
  checkBytes(what, secret, SECRET_BYTES);
  return [name, base32Encode(secret)];
}

/** The two lease-secret headers every lease-adding request carries. */
function leaseHeaders(renew: Uint8Array, cancel: Uint8Array): [string, string][] {
  return [
    secretHeader(HEADERS.leaseRenewSecret, "the lease renew secret", renew),
    secretHeader(HEADERS.leaseCancelSecret, "the lease cancel secret", cancel),
  ];
}

/**
 * Make server-supplied text safe to show: no control characters, at most 500
 * characters, and no base32 run long enough to be a 32-byte secret (a hostile
 * server could echo the swissnum or another secret into our logs).
 */
function clean(text: string): string {
  return text
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x1f\x7f]/g, " ")
    .replace(/[a-z2-7]{52,}/gi, "[redacted]")
    .slice(0, 500);
}

// ---- response validation (every byte from the network is hostile) ----

class Shape extends Error {}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    throw new Shape(`${what} is not a map`);
  }
  return v as Record<string, unknown>;
}
function uint(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new Shape(`${what} is not a non-negative integer`);
  }
  return v;
}
function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Shape(`${what} is not an array`);
  return v;
}
function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new Shape(`${what} is not a byte string`);
  return v;
}
function shareList(v: unknown, what: string): number[] {
  return arr(v, what).map((x, i) => {
    const n = uint(x, `${what}[${i}]`);
    if (n >= MAX_SHARE_NUMBER) throw new Shape(`${what}[${i}] is not a share number`);
    return n;
  });
}
function shareData(v: unknown, what: string): { share: number; data: Uint8Array[] }[] {
  return arr(v, what).map((e, i) => {
    const o = obj(e, `${what}[${i}]`);
    const share = uint(o.share, `${what}[${i}].share`);
    if (share >= MAX_SHARE_NUMBER) throw new Shape(`${what}[${i}].share is not a share number`);
    return {
      share,
      data: arr(o.data, `${what}[${i}].data`).map((d, j) => bytes(d, `${what}[${i}].data[${j}]`)),
    };
  });
}

interface CallOptions {
  ok: number[];
  /** Response bytes the caller asked for (a ranged read), for the deadline's allowance. */
  expectBytes?: number;
  idempotent?: boolean;
  maxResponseBytes?: number;
  timeoutMs?: number;
  deadlineMs?: number;
  signal?: AbortSignal;
  /** A buffer the response body is read into when it fits (HttpRequest.into). */
  into?: Uint8Array;
}

/** Shared between a call and its deadline timer. */
interface RunState {
  expired: boolean;
  /** The connection the call is using right now. */
  conn: HttpConnection | null;
}

/** A typed client for one storage server. */
export class StorageClient {
  /** The server id: the pin (SHA-256 of the server's SubjectPublicKeyInfo). */
  readonly serverId: Uint8Array;
  readonly url: StorageUrl;
  readonly options: Required<StorageClientOptions>;
  #targets: Target[];
  #preferred = 0;
  #auth: string;
  #idle: Pooled[] = [];
  #open = 0;
  #waiters: (() => void)[] = [];
  #closed = false;
  #all = new Set<HttpConnection>();
  /** The last failed connect, remembered for RECENT_FAILURE_MS (see #connect). */
  #failed: { at: number; error: StorageUnreachableError } | null = null;
  /** A connect under way while no connection is open: others wait for its outcome. */
  #connecting: Promise<unknown> | null = null;
  /** HTTP bytes sent and received by this client (request and response heads and bodies). */
  bytesSent = 0;
  bytesReceived = 0;

  constructor(url: StorageUrl, options: StorageClientOptions = {}) {
    checkBytes("the pin", url.pin, 32);
    checkBytes("the swissnum", url.swissnum, 32);
    if (url.locations.length === 0) throw new TypeError("the storage URL has no location hints");
    this.url = url;
    this.serverId = url.pin;
    const timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.options = {
      timeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? Math.min(timeoutMs, 10_000),
      deadlineMs: options.deadlineMs ?? 2 * timeoutMs,
      deadlineBytesPerSecond: options.deadlineBytesPerSecond ?? 256 * 1024,
      maxConnections: Math.max(1, options.maxConnections ?? DEFAULTS.maxConnections),
      maxResponseBytes: options.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      onWire: options.onWire ?? null,
    };
    this.#targets = targetsOf(url);
    this.#auth = `${AUTH_SCHEME} ${base32Encode(url.swissnum)}`;
  }

  /** Short description of the server for messages (public id prefix, never the swissnum). */
  get #who(): string {
    return `storage server ${serverIdString(this.serverId).slice(0, 8)}`;
  }

  // ---------------- routes ----------------

  async version(): Promise<ServerVersion> {
    const r = await this.#call("GET", "/version", [], undefined, { idempotent: true, ok: [200] });
    return this.#cbor(r, "version", (v) => {
      const o = obj(v, "version");
      return {
        protocol: uint(o.protocol, "protocol"),
        software: typeof o.software === "string" ? clean(o.software) : "",
        maxShareSize: uint(o.maxShareSize, "maxShareSize"),
        availableSpace: uint(o.availableSpace, "availableSpace"),
        maxBodySize: uint(o.maxBodySize, "maxBodySize"),
        maxBatchSlots: uint(o.maxBatchSlots, "maxBatchSlots"),
        leaseDuration: uint(o.leaseDuration, "leaseDuration"),
        ...(o.used === undefined ? {} : { used: uint(o.used, "used") }),
      };
    });
  }

  async allocate(
    si: Uint8Array,
    s: { upload: Uint8Array; leaseRenew: Uint8Array; leaseCancel: Uint8Array },
    req: AllocateRequest,
  ): Promise<AllocateResponse> {
    const headers = [
      secretHeader(HEADERS.uploadSecret, "the upload secret", s.upload),
      ...leaseHeaders(s.leaseRenew, s.leaseCancel),
    ];
    req.shareNumbers.forEach(checkShare);
    checkUint("allocatedSize", req.allocatedSize);
    const body = encodeCbor({ shareNumbers: req.shareNumbers, allocatedSize: req.allocatedSize });
    const r = await this.#call("POST", `/immutable/${this.#si(si)}`, headers, body, { ok: [200] });
    return this.#cbor(r, "allocate", (v) => {
      const o = obj(v, "allocate response");
      return {
        alreadyHave: shareList(o.alreadyHave, "alreadyHave"),
        allocated: shareList(o.allocated, "allocated"),
      };
    });
  }

  async upload(
    si: Uint8Array,
    shnum: number,
    uploadSecret: Uint8Array,
    offset: number,
    data: Uint8Array,
  ): Promise<UploadResponse> {
    checkShare(shnum);
    checkUint("offset", offset);
    if (data.length === 0) throw new RangeError("an upload needs at least one byte of data");
    const headers: [string, string][] = [
      secretHeader(HEADERS.uploadSecret, "the upload secret", uploadSecret),
      ["Content-Type", OCTET_TYPE],
      ["Content-Range", `bytes ${offset}-${offset + data.length - 1}/*`],
    ];
    const r = await this.#call("PATCH", `/immutable/${this.#si(si)}/${shnum}`, headers, data, {
      ok: [200, 201],
    });
    return this.#cbor(r, "upload", (v) => {
      const o = obj(v, "upload response");
      return {
        required: arr(o.required, "required").map((e, i) => {
          const x = obj(e, `required[${i}]`);
          return {
            begin: uint(x.begin, `required[${i}].begin`),
            end: uint(x.end, `required[${i}].end`),
          };
        }),
      };
    });
  }

  async abortUpload(si: Uint8Array, shnum: number, uploadSecret: Uint8Array): Promise<void> {
    checkShare(shnum);
    const headers = [secretHeader(HEADERS.uploadSecret, "the upload secret", uploadSecret)];
    await this.#call("PUT", `/immutable/${this.#si(si)}/${shnum}/abort`, headers, undefined, {
      ok: [204],
    });
  }

  listImmutable(si: Uint8Array): Promise<number[]> {
    return this.#list("immutable", si);
  }

  /**
   * Bytes [offset, offset + size) of an immutable share (to its end without `size`). With
   * `into`, a ranged answer that fits is read straight into it and the result is a view of
   * it (fewer copies and fresh buffers per downloaded block); `into` is the caller's again
   * once the promise has settled.
   */
  readImmutable(
    si: Uint8Array,
    shnum: number,
    offset?: number,
    size?: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    return this.#read("immutable", si, shnum, offset, size, into);
  }

  listMutable(si: Uint8Array): Promise<number[]> {
    return this.#list("mutable", si);
  }

  readMutable(si: Uint8Array, shnum: number, offset?: number, size?: number): Promise<Uint8Array> {
    return this.#read("mutable", si, shnum, offset, size);
  }

  async reportCorruption(
    kind: "immutable" | "mutable",
    si: Uint8Array,
    shnum: number,
    reason: string,
  ): Promise<void> {
    checkShare(shnum);
    if (kind !== "immutable" && kind !== "mutable") {
      throw new TypeError("kind must be immutable or mutable");
    }
    const body = encodeCbor({ reason: String(reason).slice(0, 16 * 1024) });
    await this.#call(
      "POST",
      `/${kind}/${this.#si(si)}/${shnum}/corrupt`,
      [["Content-Type", CBOR_TYPE]],
      body,
      {
        ok: [204],
      },
    );
  }

  async readTestWrite(
    si: Uint8Array,
    s: {
      writeEnabler: Uint8Array;
      leaseRenew: Uint8Array;
      leaseCancel: Uint8Array;
      /** Sent so that the call may create the slot (protocol §6.3). */
      slotProof?: SlotProof;
    },
    req: ReadTestWriteRequest,
  ): Promise<ReadTestWriteResponse> {
    const headers = [
      secretHeader(HEADERS.writeEnabler, "the write enabler", s.writeEnabler),
      ...leaseHeaders(s.leaseRenew, s.leaseCancel),
    ];
    const body = encodeCbor({
      testWriteVectors: req.testWriteVectors.map((t) => {
        checkShare(t.share);
        return {
          share: t.share,
          test: t.test.map((x) => ({ offset: x.offset, size: x.size, specimen: x.specimen })),
          write: t.write.map((x) => ({ offset: x.offset, data: x.data })),
          newLength: t.newLength ?? null,
        };
      }),
      readVector: req.readVector.map((x) => ({ offset: x.offset, size: x.size })),
      ...(s.slotProof
        ? { createSlot: { verifyKey: s.slotProof.verifyKey, signature: s.slotProof.signature } }
        : {}),
    });
    const r = await this.#call("POST", `/mutable/${this.#si(si)}/read-test-write`, headers, body, {
      ok: [200],
    });
    return this.#cbor(r, "read-test-write", (v) => {
      const o = obj(v, "read-test-write response");
      if (typeof o.success !== "boolean") throw new Shape("success is not a boolean");
      return { success: o.success, reads: shareData(o.reads, "reads") };
    });
  }

  async batchRead(req: BatchReadRequest): Promise<BatchReadResponse> {
    const body = encodeCbor({
      slots: req.slots.map((s) => {
        checkBytes("a storage index", s.storageIndex, STORAGE_INDEX_BYTES);
        s.shares?.forEach(checkShare);
        return {
          storageIndex: s.storageIndex,
          shares: s.shares ?? null,
          ranges: s.ranges.map((r) => ({ offset: r.offset, size: r.size ?? null })),
        };
      }),
    });
    const r = await this.#call("POST", "/mutable/batch-read", [], body, {
      ok: [200],
      idempotent: true,
    });
    return this.#cbor(r, "batch-read", (v) => {
      const o = obj(v, "batch-read response");
      const slots = arr(o.slots, "slots").map((e, i) => {
        const x = obj(e, `slots[${i}]`);
        const storageIndex = bytes(x.storageIndex, `slots[${i}].storageIndex`);
        if (storageIndex.length !== STORAGE_INDEX_BYTES) {
          throw new Shape(`slots[${i}].storageIndex has the wrong length`);
        }
        return { storageIndex, shares: shareData(x.shares, `slots[${i}].shares`) };
      });
      if (slots.length !== req.slots.length) {
        throw new Shape("slots has a different count than requested");
      }
      return { slots };
    }, CBOR_SLACK + 16 * req.slots.length);
  }

  /**
   * Which complete shares the server holds of each storage index, in both
   * namespaces (POST /batch-list): one request for up to the server's
   * maxBatchSlots storage indexes. Entries are in request order.
   */
  async batchList(storageIndexes: Uint8Array[]): Promise<BatchListResponse> {
    storageIndexes.forEach((si) => checkBytes("a storage index", si, STORAGE_INDEX_BYTES));
    const body = encodeCbor({ storageIndexes });
    const r = await this.#call("POST", "/batch-list", [], body, { ok: [200], idempotent: true });
    return this.#cbor(r, "batch-list", (v) => {
      const o = obj(v, "batch-list response");
      const entries = arr(o.entries, "entries").map((e, i) => {
        const x = obj(e, `entries[${i}]`);
        return {
          immutable: shareList(x.immutable, `entries[${i}].immutable`),
          mutable: shareList(x.mutable, `entries[${i}].mutable`),
        };
      });
      if (entries.length !== storageIndexes.length) {
        throw new Shape("entries has a different count than requested");
      }
      return { entries };
    }, CBOR_SLACK + 64 * storageIndexes.length);
  }

  async renewLease(si: Uint8Array, s: { renew: Uint8Array; cancel: Uint8Array }): Promise<void> {
    const headers = leaseHeaders(s.renew, s.cancel);
    await this.#call("PUT", `/lease/${this.#si(si)}`, headers, undefined, { ok: [204] });
  }

  /**
   * Register a slot watch over `storageIndexes` (PUT /mutable/watch/WID). Returns
   * the watch id (computed locally; any client computes the same) and the digest.
   */
  async registerWatch(storageIndexes: Uint8Array[]): Promise<{ wid: string; digest: Uint8Array }> {
    const wid = watchId(storageIndexes);
    const body = encodeCbor({ storageIndexes });
    const r = await this.#call("PUT", `/mutable/watch/${wid}`, [], body, {
      ok: [200],
      idempotent: true,
    });
    return { wid, digest: this.#digest(r, "watch register") };
  }

  /**
   * Poll a slot watch (POST /mutable/watch/WID): the digest now when it differs
   * from `expect` (or without expect, or wait 0), else when a write changes it
   * or after `wait` seconds (0..60). A server that does not hold the watch
   * answers StorageError code "unknown-watch": register it again. `signal`
   * abandons the poll (its connection is closed).
   */
  async pollWatch(
    wid: string,
    opts: { expect?: Uint8Array | null; wait?: number; signal?: AbortSignal } = {},
  ): Promise<Uint8Array> {
    if (!/^[a-z2-7]{26}$/.test(wid)) throw new TypeError("a watch id is 26 base32 characters");
    const wait = opts.wait ?? 0;
    if (!(wait >= 0 && wait <= MAX_WATCH_WAIT)) {
      throw new RangeError(`wait must be 0..${MAX_WATCH_WAIT} seconds`);
    }
    if (opts.expect) checkBytes("expect", opts.expect, WATCH_DIGEST_BYTES);
    const body = encodeCbor(opts.expect ? { expect: opts.expect, wait } : { wait });
    const r = await this.#call("POST", `/mutable/watch/${wid}`, [], body, {
      ok: [200],
      idempotent: true,
      // The server may hold the request for `wait` seconds before its first byte.
      timeoutMs: this.options.timeoutMs + Math.ceil(wait * 1000),
      deadlineMs: this.options.deadlineMs + Math.ceil(wait * 1000),
      signal: opts.signal,
    });
    return this.#digest(r, "watch poll");
  }

  #digest(r: HttpResponse, what: string): Uint8Array {
    return this.#cbor(r, what, (v) => {
      const d = bytes(obj(v, `${what} response`).digest, "digest");
      if (d.length !== WATCH_DIGEST_BYTES) throw new Shape("digest has the wrong length");
      return d;
    });
  }

  /** Close every pooled connection; later calls fail. Safe to call twice. */
  close(): void {
    this.#closed = true;
    for (const p of this.#idle) clearTimeout(p.idleTimer);
    this.#idle = [];
    for (const c of this.#all) c.destroy();
    this.#all.clear();
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Connections currently open (idle or busy); for tests and diagnostics. */
  get openConnections(): number {
    return this.#open;
  }

  /** The location hint of the most recent successful connection. */
  get preferredLocation(): string {
    return this.#targets[this.#preferred].location;
  }

  // ---------------- helpers ----------------

  #si(si: Uint8Array): string {
    checkBytes("a storage index", si, STORAGE_INDEX_BYTES);
    return base32Encode(si);
  }

  async #list(kind: string, si: Uint8Array): Promise<number[]> {
    const r = await this.#call("GET", `/${kind}/${this.#si(si)}/shares`, [], undefined, {
      idempotent: true,
      ok: [200],
    });
    return this.#cbor(r, `list ${kind}`, (v) => shareList(v, "share list"));
  }

  async #read(
    kind: string,
    si: Uint8Array,
    shnum: number,
    offset = 0,
    size?: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    checkShare(shnum);
    checkUint("offset", offset);
    if (size !== undefined) {
      checkUint("size", size);
      if (size === 0) return new Uint8Array(0);
    }
    const headers: [string, string][] = [];
    if (size !== undefined) headers.push(["Range", `bytes=${offset}-${offset + size - 1}`]);
    else if (offset > 0) headers.push(["Range", `bytes=${offset}-`]);
    const path = `/${kind}/${this.#si(si)}/${shnum}`;
    let r: HttpResponse;
    try {
      r = await this.#call("GET", path, headers, undefined, {
        idempotent: true,
        ok: [200, 206],
        // A server that ignores Range sends the whole share: allow that up to the usual limit.
        maxResponseBytes: this.options.maxResponseBytes,
        expectBytes: size,
        into,
      });
    } catch (e) {
      // Reading at or past the end of a share reads as empty (like read vectors).
      if (e instanceof StorageError && e.code === "range-not-satisfiable") return new Uint8Array(0);
      throw e;
    }
    if (r.status === 200) {
      return size === undefined && offset === 0
        ? r.body
        : r.body.slice(offset, size === undefined ? undefined : offset + size);
    }
    const m = /^bytes ([0-9]{1,15})-([0-9]{1,15})\/([0-9]{1,15}|\*)$/.exec(
      r.headers.get("content-range") ?? "",
    );
    const begin = m ? Number(m[1]) : -1;
    const end = m ? Number(m[2]) : -1;
    if (
      !m || begin !== offset || end - begin + 1 !== r.body.length ||
      (size !== undefined && r.body.length > size)
    ) {
      throw new StorageError(
        206,
        "bad-response",
        `${this.#who} sent a partial response that does not match the requested range`,
      );
    }
    return r.body;
  }

  #cbor<T>(r: HttpResponse, what: string, shape: (v: unknown) => T, slack = CBOR_SLACK): T {
    try {
      return shape(decodeCbor(r.body, this.options.maxResponseBytes + slack));
    } catch (e) {
      if (e instanceof Shape || e instanceof CborError) {
        throw new StorageError(
          r.status,
          "bad-response",
          `${this.#who} sent a malformed ${what} response: ${e.message}`,
        );
      }
      throw e;
    }
  }

  /**
   * One request under its absolute deadline: when it passes, the connection in
   * use is destroyed (a trickling response stops there) and the call rejects
   * with StorageDeadlineError. A connection still being set up when the
   * deadline passes is returned to the pool once it is ready.
   */
  async #call(
    method: string,
    route: string,
    extra: [string, string][],
    body: Uint8Array | undefined,
    o: CallOptions,
  ): Promise<HttpResponse> {
    // The allowance for bytes comes from what this client sends and asks for,
    // never from anything the server says, so a trickling server cannot stretch it.
    const bytes = (body?.length ?? 0) + (o.expectBytes ?? 0);
    const budget = (o.deadlineMs ?? this.options.deadlineMs) +
      Math.ceil(bytes / this.options.deadlineBytesPerSecond * 1000);
    const run: RunState = { expired: false, conn: null };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        run.expired = true;
        run.conn?.destroy();
        reject(
          new StorageDeadlineError(
            `${this.#who}: no complete answer within the ${budget} ms request deadline`,
            [],
          ),
        );
      }, budget);
    });
    try {
      return await Promise.race([this.#attempts(method, route, extra, body, o, run), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #attempts(
    method: string,
    route: string,
    extra: [string, string][],
    body: Uint8Array | undefined,
    o: CallOptions,
    run: RunState,
  ): Promise<HttpResponse> {
    const headers: [string, string][] = [[HEADERS.authorization, this.#auth], ...extra];
    if (body !== undefined && !extra.some(([k]) => k === "Content-Type")) {
      headers.push(["Content-Type", CBOR_TYPE]);
    }
    for (let attempt = 0;; attempt++) {
      if (o.signal?.aborted) {
        throw new StorageUnreachableError(`${this.#who}: the request was cancelled`, []);
      }
      const { pooled, reused } = await this.#acquire(attempt > 0);
      if (run.expired) {
        // The caller has given up: keep the connection for the next request.
        this.#release(pooled, true);
        throw new StorageDeadlineError(`${this.#who}: the request deadline passed`, []);
      }
      let res: HttpResponse;
      const conn = pooled.conn;
      run.conn = conn;
      const sent0 = conn.bytesSent;
      const received0 = conn.bytesReceived;
      const account = () => {
        const sent = conn.bytesSent - sent0;
        const received = conn.bytesReceived - received0;
        this.bytesSent += sent;
        this.bytesReceived += received;
        this.options.onWire?.(sent, received);
      };
      const abort = () => conn.destroy();
      o.signal?.addEventListener("abort", abort, { once: true });
      try {
        res = await conn.request({
          method,
          path: API_PREFIX + route,
          host: pooled.location,
          headers,
          body,
          maxResponseBytes: o.maxResponseBytes ?? this.options.maxResponseBytes + CBOR_SLACK,
          into: o.into,
          timeoutMs: o.timeoutMs ?? this.options.timeoutMs,
        });
      } catch (e) {
        o.signal?.removeEventListener("abort", abort);
        run.conn = null;
        account();
        this.#release(pooled, false);
        if (o.signal?.aborted) {
          throw new StorageUnreachableError(`${this.#who}: the request was cancelled`, []);
        }
        if (run.expired) {
          throw new StorageDeadlineError(`${this.#who}: the request deadline passed`, []);
        }
        if (
          e instanceof ConnectionLostError && e.beforeResponse && reused && o.idempotent &&
          attempt === 0
        ) {
          continue;
        }
        throw this.#wrap(e, pooled.location);
      }
      o.signal?.removeEventListener("abort", abort);
      run.conn = null;
      account();
      this.#release(pooled, res.keepAlive);
      if (!o.ok.includes(res.status)) throw this.#errorFrom(res);
      return res;
    }
  }

  #errorFrom(r: HttpResponse): StorageError {
    try {
      const v = obj(decodeCbor(r.body, 1024 * 1024), "error body");
      if (typeof v.error === "string" && typeof v.message === "string") {
        return new StorageError(r.status, clean(v.error).slice(0, 100), clean(v.message));
      }
    } catch { /* fall through */ }
    return new StorageError(
      r.status,
      `http-${r.status}`,
      `${this.#who} answered HTTP ${r.status} without a valid error body`,
    );
  }

  #wrap(e: unknown, location: string): Error {
    if (e instanceof HttpProtocolError) {
      return new StorageError(e.status, e.code, `${this.#who} at ${location}: ${e.message}`);
    }
    if (e instanceof HttpTimeoutError || e instanceof ConnectionLostError) {
      return new StorageUnreachableError(`${this.#who} at ${location}: ${e.message}`, [
        { location, reason: e.message },
      ]);
    }
    return e as Error;
  }

  // ---------------- connection pool ----------------

  async #acquire(fresh: boolean): Promise<{ pooled: Pooled; reused: boolean }> {
    for (;;) {
      if (this.#closed) throw new StorageUnreachableError(`${this.#who}: the client is closed`, []);
      if (!fresh) {
        while (this.#idle.length > 0) {
          const p = this.#idle.pop()!;
          clearTimeout(p.idleTimer);
          if (p.conn.usable) {
            p.conn.socket.ref();
            return { pooled: p, reused: true };
          }
          p.conn.destroy();
        }
      } else if (this.#open >= this.options.maxConnections && this.#idle.length > 0) {
        const p = this.#idle.shift()!;
        clearTimeout(p.idleTimer);
        p.conn.destroy(); // frees a slot through onDead
      }
      if (this.#open < this.options.maxConnections) {
        this.#open++;
        let pooled: Pooled;
        try {
          pooled = await this.#connect();
        } catch (e) {
          this.#open--;
          this.#wake();
          throw e;
        }
        return { pooled, reused: false };
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /**
   * Close the idle kept-open connections now (what the idle timeout does later); requests under
   * way keep theirs. The next request opens a new one.
   */
  closeIdle(): void {
    for (const p of this.#idle.splice(0)) {
      clearTimeout(p.idleTimer);
      p.conn.destroy();
    }
  }

  #wake(): void {
    this.#waiters.shift()?.();
  }

  #release(p: Pooled, keep: boolean): void {
    if (!keep || this.#closed || !p.conn.usable) {
      p.conn.destroy();
      return;
    }
    p.idleTimer = setTimeout(() => {
      const i = this.#idle.indexOf(p);
      if (i >= 0) this.#idle.splice(i, 1);
      p.conn.destroy();
    }, this.options.idleTimeoutMs);
    // An idle pooled connection does not keep the process alive.
    Deno.unrefTimer(p.idleTimer as unknown as number);
    p.conn.socket.unref();
    this.#idle.push(p);
    this.#wake();
  }

  /**
   * A server that did not answer a connect a moment ago is not asked again for
   * RECENT_FAILURE_MS: the requests that follow (the next phase of the same
   * operation) fail at once instead of each waiting out its own connect
   * timeout. While no connection is open, concurrent requests share one
   * connect attempt's outcome for the same reason.
   */
  async #connect(): Promise<Pooled> {
    if (this.#all.size === 0 && this.#connecting) await this.#connecting.catch(() => {});
    const f = this.#failed;
    if (f && Date.now() - f.at < RECENT_FAILURE_MS) {
      const again = new StorageUnreachableError(
        `${f.error.message} (${Date.now() - f.at} ms ago; not retried for ${RECENT_FAILURE_MS} ms)`,
        f.error.failures,
      );
      again.silent = true;
      throw again;
    }
    const attempt = connectFirst(
      this.#targets,
      this.#preferred,
      this.serverId,
      this.options.connectTimeoutMs,
      this.#who,
    );
    if (this.#all.size === 0) this.#connecting = attempt;
    let socket: TLSSocket;
    let index: number;
    try {
      ({ socket, index } = await attempt);
      this.#failed = null;
    } catch (e) {
      // Only silence is remembered: a refused connection costs nothing to try again.
      if (e instanceof StorageUnreachableError && e.silent) {
        this.#failed = { at: Date.now(), error: e };
      }
      throw e;
    } finally {
      if (this.#connecting === attempt) this.#connecting = null;
    }
    if (this.#closed) {
      socket.destroy();
      throw new StorageUnreachableError(`${this.#who}: the client is closed`, []);
    }
    this.#preferred = index;
    const conn = new HttpConnection(socket);
    this.#all.add(conn);
    const pooled: Pooled = { conn, location: this.#targets[index].location };
    conn.onDead = () => {
      this.#all.delete(conn);
      clearTimeout(pooled.idleTimer);
      const j = this.#idle.indexOf(pooled);
      if (j >= 0) this.#idle.splice(j, 1);
      this.#open--;
      this.#wake();
    };
    return pooled;
  }
}

function targetsOf(url: StorageUrl): Target[] {
  return url.locations.map((location) => {
    const h = parseLocationHint(location);
    return {
      location,
      host: h.host,
      port: h.port,
      servername: h.kind === "dns" ? h.host : undefined,
    };
  });
}

/** How long a failed connect to a server answers for it (StorageClient#connect). */
export const RECENT_FAILURE_MS = 5_000;

/** Try the targets in order starting at `first`; the first pinned connection wins. */
async function connectFirst(
  targets: Target[],
  first: number,
  pin: Uint8Array,
  timeoutMs: number,
  who: string,
): Promise<{ socket: TLSSocket; index: number }> {
  const n = targets.length;
  const failures: LocationFailure[] = [];
  let mismatch = false;
  let timeouts = 0;
  for (let k = 0; k < n; k++) {
    const i = (first + k) % n;
    const t = targets[i];
    try {
      const socket = await connectPinned({
        host: t.host,
        port: t.port,
        servername: t.servername,
        pin,
        timeoutMs,
      });
      return { socket, index: i };
    } catch (e) {
      if (e instanceof PinMismatchAtLocation) mismatch = true;
      if (e instanceof HttpTimeoutError) timeouts++;
      failures.push({ location: t.location, reason: clean((e as Error)?.message ?? String(e)) });
    }
  }
  const detail = failures.map((f) => `${f.location}: ${f.reason}`).join("; ");
  const silent = timeouts === n;
  if (mismatch) {
    throw new PinMismatchError(
      `${who}: no location hint reached a server with the pinned TLS key (${detail}); ` +
        "nothing was sent. Check that the storage URL is current.",
      failures,
    );
  }
  const e = new StorageUnreachableError(`${who} is unreachable (${detail})`, failures);
  e.silent = silent;
  throw e;
}

/**
 * Connect to the storage URL's hints in order, verify the pin, and close the
 * connection without sending anything. Resolves with the location that worked;
 * rejects with PinMismatchError or StorageUnreachableError.
 */
export async function verifyPinnedConnection(
  url: StorageUrl,
  options: { timeoutMs?: number } = {},
): Promise<string> {
  const { socket, index } = await connectFirst(
    targetsOf(url),
    0,
    url.pin,
    options.timeoutMs ?? 10_000,
    `storage server ${serverIdString(url.pin).slice(0, 8)}`,
  );
  socket.destroy();
  return url.locations[index];
}
