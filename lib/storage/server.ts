/**
 * The storage server: a pure Request -> Response handler over a ShareStore
 * (createStorageHandler), and serveStorage() to run it on HTTPS (https_server.ts).
 * docs/storage-protocol.md is the normative description of every route.
 *
 * Every request is authorized first (constant-time swissnum comparison);
 * every path segment, header and CBOR field is parsed strictly; bodies are
 * size-limited while they stream in. A bad request gets a 4xx with an
 * ErrorBody and never affects other requests.
 */
import {
  base32Decode,
  base32Encode,
  bytesEqual,
  concatBytes,
  decodeCbor,
  encodeCbor,
  utf8,
} from "../codec/mod.ts";
import {
  API_PREFIX,
  AUTH_SCHEME,
  type BatchReadRequest,
  CBOR_TYPE,
  type ErrorBody,
  HEADERS,
  MAX_SHARE_NUMBER,
  MAX_WATCH_WAIT,
  OCTET_TYPE,
  PROTOCOL_VERSION,
  type ReadTestWriteRequest,
  SECRET_BYTES,
  type ServerVersion,
  type SlotProof,
  STORAGE_INDEX_BYTES,
  WATCH_DIGEST_BYTES,
} from "./protocol.ts";
import { slotCreationMessage, storageIndexFromPublicKey, verify } from "../crypto/mod.ts";
import { type ShareKind, type ShareStore, StoreError } from "./store.ts";
import { WatchHub, type WatchHubOptions } from "./watch.ts";
import { type HttpsServerOptions, serveHttps } from "./https_server.ts";

export const DEFAULT_MAX_BODY_SIZE = 64 * 1024 * 1024;
export const DEFAULT_MAX_BATCH_SLOTS = 4096;
/** Most entries in any one CBOR array of a request (share numbers, vectors, ranges). */
export const MAX_VECTOR_ENTRIES = 4096;
const READ_CHUNK = 1024 * 1024;

export interface HandlerOptions {
  /** The swissnum that authorizes use of this server. */
  swissnum: Uint8Array;
  /**
   * This server's id (the pin of its storage URL): slot-creation proofs are
   * signatures bound to it (docs/storage-protocol.md §6.3).
   */
  serverId: Uint8Array;
  /** Largest request body (CBOR or PATCH chunk) and batch-read response, in bytes. */
  maxBodySize?: number;
  maxBatchSlots?: number;
  software?: string;
  /** Where internal errors are reported (never with a secret). Default: console.error. */
  log?: (line: string) => void;
  /** Limits of the slot watches kept in memory. */
  watch?: WatchHubOptions;
  /** Counts requests, bytes and latencies (lib/metrics/storage.ts); never sees a secret. */
  metrics?: RequestObserver;
}

/** Told about every request once its response is ready (route is fixed vocabulary). */
export interface RequestObserver {
  request(req: Request, route: string, res: Response, seconds: number): Response;
}

/**
 * The route of a request as fixed vocabulary for metrics: the path's shape
 * with storage indexes, share numbers and watch ids left out.
 */
export function routeOf(method: string, url: string): string {
  const path = pathOf(url);
  if (!path.startsWith(API_PREFIX + "/")) return "other";
  const seg = path.slice(API_PREFIX.length + 1).split("/");
  const [a, , c, d] = seg;
  let r = "other";
  if (seg.length === 1 && a === "version") r = "version";
  else if (a === "immutable") {
    if (seg.length === 2) r = "immutable_allocate";
    else if (seg.length === 3) r = c === "shares" ? "immutable_list" : "immutable_share";
    else if (seg.length === 4 && (d === "abort" || d === "corrupt")) r = `immutable_${d}`;
  } else if (a === "mutable") {
    if (seg.length === 2 && seg[1] === "batch-read") r = "mutable_batch_read";
    else if (seg.length === 3 && seg[1] === "watch") {
      r = method === "PUT" ? "watch_register" : "watch_poll";
    } else if (seg.length === 3) {
      r = c === "read-test-write"
        ? "mutable_read_test_write"
        : c === "shares"
        ? "mutable_list"
        : "mutable_share";
    } else if (seg.length === 4 && d === "corrupt") r = "mutable_corrupt";
  } else if (a === "lease" && seg.length === 2) r = "lease_renew";
  return r;
}

/** The handler; close() ends waiting watch polls (serveStorage's shutdown calls it). */
export type StorageHandler = ((req: Request) => Promise<Response>) & {
  close(): void;
  /** The slot watches (for tests and diagnostics). */
  readonly watches: WatchHub;
};

/** A request the handler refuses: status, stable code, and a message without secrets. */
class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

function errorResponse(status: number, code: string, message: string): Response {
  const body: ErrorBody = { error: code, message };
  return new Response(encodeCbor(body) as Uint8Array<ArrayBuffer>, {
    status,
    headers: { "content-type": CBOR_TYPE },
  });
}

function cborResponse(value: unknown, status = 200): Response {
  return new Response(encodeCbor(value) as Uint8Array<ArrayBuffer>, {
    status,
    headers: { "content-type": CBOR_TYPE },
  });
}

// ---- strict parsing ---------------------------------------------------------

const SI_RE = /^[a-z2-7]{26}$/;
const SHNUM_RE = /^(0|[1-9][0-9]{0,7})$/;
const DECIMAL_RE = /^(0|[1-9][0-9]{0,15})$/;

function parseSi(seg: string): Uint8Array {
  if (!SI_RE.test(seg)) {
    throw new HttpError(400, "bad-storage-index", "storage index must be 26 base32 characters");
  }
  try {
    const si = base32Decode(seg);
    if (si.length === STORAGE_INDEX_BYTES) return si;
  } catch { /* fall through */ }
  throw new HttpError(
    400,
    "bad-storage-index",
    "storage index is not canonical base32 of 16 bytes",
  );
}

function parseShnum(seg: string): number {
  if (!SHNUM_RE.test(seg) || Number(seg) >= MAX_SHARE_NUMBER) {
    throw new HttpError(
      400,
      "bad-share-number",
      `share number must be canonical decimal below ${MAX_SHARE_NUMBER}`,
    );
  }
  return Number(seg);
}

function parseDecimal(s: string, what: string): number {
  if (!DECIMAL_RE.test(s) || !Number.isSafeInteger(Number(s))) {
    throw new HttpError(400, "bad-range", `${what} is not a canonical decimal integer`);
  }
  return Number(s);
}

function secretHeader(req: Request, name: string): Uint8Array {
  const v = req.headers.get(name);
  if (v === null) throw new HttpError(400, "missing-header", `the ${name} header is required`);
  try {
    const b = base32Decode(v.trim());
    if (b.length === SECRET_BYTES) return b;
  } catch { /* fall through */ }
  throw new HttpError(
    400,
    "bad-header",
    `the ${name} header must be base32 of ${SECRET_BYTES} bytes`,
  );
}

/** Read a whole body, refusing (while streaming) anything over `limit` bytes. */
async function readBody(req: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new HttpError(413, "body-too-large", `request body exceeds the limit of ${limit} bytes`);
  const cl = req.headers.get("content-length");
  if (cl !== null && DECIMAL_RE.test(cl)) {
    // Framed by Content-Length: refused at once when over the limit, else read whole.
    if (Number(cl) > limit) throw tooLarge();
    const b = new Uint8Array(await req.arrayBuffer());
    if (b.length > limit) throw tooLarge();
    return b;
  }
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return chunks.length === 1 ? chunks[0] : concatBytes(...chunks);
}

async function readCbor(req: Request, limit: number): Promise<unknown> {
  const body = await readBody(req, limit);
  try {
    return decodeCbor(body, limit);
  } catch (e) {
    throw new HttpError(400, "bad-cbor", (e as Error).message);
  }
}

/** Shape checking of decoded CBOR; every failure names the field. */
function bad(field: string, want: string): never {
  throw new HttpError(400, "bad-request", `field ${field} must be ${want}`);
}
function obj(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) {
    bad(field, "a map");
  }
  return v as Record<string, unknown>;
}
function get(o: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}
function uint(v: unknown, field: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
    bad(field, `an integer 0..${max}`);
  }
  return v;
}
function bytes(v: unknown, field: string, len?: number): Uint8Array {
  if (!(v instanceof Uint8Array) || (len !== undefined && v.length !== len)) {
    bad(field, len === undefined ? "a byte string" : `a byte string of ${len} bytes`);
  }
  return v;
}
function arr(v: unknown, field: string, max = MAX_VECTOR_ENTRIES): unknown[] {
  if (!Array.isArray(v) || v.length > max) bad(field, `an array of at most ${max} entries`);
  return v;
}
function shnum(v: unknown, field: string): number {
  return uint(v, field, MAX_SHARE_NUMBER - 1);
}

function parseRtw(v: unknown): ReadTestWriteRequest {
  const o = obj(v, "request");
  let entries = 0;
  const count = (n: number) => {
    entries += n;
    if (entries > MAX_VECTOR_ENTRIES) {
      bad("testWriteVectors", `at most ${MAX_VECTOR_ENTRIES} vector entries in all`);
    }
  };
  const testWriteVectors = arr(get(o, "testWriteVectors"), "testWriteVectors").map((x, i) => {
    const f = `testWriteVectors[${i}]`;
    const tw = obj(x, f);
    const test = arr(get(tw, "test"), `${f}.test`).map((t, j) => {
      const e = obj(t, `${f}.test[${j}]`);
      return {
        offset: uint(get(e, "offset"), `${f}.test[${j}].offset`),
        size: uint(get(e, "size"), `${f}.test[${j}].size`),
        specimen: bytes(get(e, "specimen"), `${f}.test[${j}].specimen`),
      };
    });
    const write = arr(get(tw, "write"), `${f}.write`).map((w, j) => {
      const e = obj(w, `${f}.write[${j}]`);
      const offset = uint(get(e, "offset"), `${f}.write[${j}].offset`);
      const data = bytes(get(e, "data"), `${f}.write[${j}].data`);
      if (!Number.isSafeInteger(offset + data.length)) {
        bad(`${f}.write[${j}].offset`, "a safe offset");
      }
      return { offset, data };
    });
    count(1 + test.length + write.length);
    const nl = get(tw, "newLength");
    return {
      share: shnum(get(tw, "share"), `${f}.share`),
      test,
      write,
      newLength: nl === null || nl === undefined ? null : uint(nl, `${f}.newLength`),
    };
  });
  const cs = get(o, "createSlot");
  let createSlot: SlotProof | null = null;
  if (cs !== undefined && cs !== null) {
    const p = obj(cs, "createSlot");
    createSlot = {
      verifyKey: bytes(get(p, "verifyKey"), "createSlot.verifyKey", 32),
      signature: bytes(get(p, "signature"), "createSlot.signature", 64),
    };
  }
  const readVector = arr(get(o, "readVector"), "readVector").map((r, j) => {
    const e = obj(r, `readVector[${j}]`);
    return {
      offset: uint(get(e, "offset"), `readVector[${j}].offset`),
      size: uint(get(e, "size"), `readVector[${j}].size`),
    };
  });
  count(readVector.length);
  return { testWriteVectors, readVector, createSlot };
}

function parseBatch(v: unknown, maxSlots: number): BatchReadRequest {
  const o = obj(v, "request");
  let entries = 0;
  return {
    slots: arr(get(o, "slots"), "slots", maxSlots).map((s, i) => {
      const f = `slots[${i}]`;
      const e = obj(s, f);
      const sh = get(e, "shares");
      const shares = sh === null || sh === undefined
        ? null
        : arr(sh, `${f}.shares`).map((n, j) => shnum(n, `${f}.shares[${j}]`));
      const ranges = arr(get(e, "ranges"), `${f}.ranges`).map((r, j) => {
        const re = obj(r, `${f}.ranges[${j}]`);
        const size = get(re, "size");
        return {
          offset: uint(get(re, "offset"), `${f}.ranges[${j}].offset`),
          size: size === null || size === undefined ? null : uint(size, `${f}.ranges[${j}].size`),
        };
      });
      entries += (shares?.length ?? 0) + ranges.length;
      if (entries > 16 * MAX_VECTOR_ENTRIES) bad("slots", "fewer shares and ranges in all");
      return {
        storageIndex: bytes(get(e, "storageIndex"), `${f}.storageIndex`, STORAGE_INDEX_BYTES),
        shares,
        ranges,
      };
    }),
  };
}

function parseWatchRegister(v: unknown, maxSlots: number): Uint8Array[] {
  const o = obj(v, "request");
  return arr(get(o, "storageIndexes"), "storageIndexes", maxSlots).map((x, i) =>
    bytes(x, `storageIndexes[${i}]`, STORAGE_INDEX_BYTES)
  );
}

function parseWatchPoll(v: unknown): { expect: Uint8Array | null; wait: number } {
  const o = obj(v, "request");
  const e = get(o, "expect");
  const expect = e === null || e === undefined ? null : bytes(e, "expect", WATCH_DIGEST_BYTES);
  const w = get(o, "wait");
  if (
    w !== undefined && w !== null &&
    (typeof w !== "number" || !Number.isFinite(w) || w < 0 || w > MAX_WATCH_WAIT)
  ) {
    bad("wait", `a number of seconds 0..${MAX_WATCH_WAIT}`);
  }
  return { expect, wait: typeof w === "number" ? w : 0 };
}

/** `Range: bytes=B-E` or `bytes=B-` (inclusive end) -> [begin, endExclusive | null]. */
function parseRange(h: string): [number, number | null] {
  const m = /^bytes=([0-9]+)-([0-9]*)$/.exec(h.trim());
  if (!m) {
    throw new HttpError(
      400,
      "bad-range",
      "Range must be 'bytes=BEGIN-END' or 'bytes=BEGIN-' (one range)",
    );
  }
  const b = parseDecimal(m[1], "range begin");
  if (m[2] === "") return [b, null];
  const e = parseDecimal(m[2], "range end");
  if (e < b) throw new HttpError(400, "bad-range", "range end is before its beginning");
  return [b, e + 1];
}

/** `Content-Range: bytes B-E/*` or `bytes B-E/TOTAL` -> [offset, length, total | null]. */
function parseContentRange(h: string | null): [number, number, number | null] {
  if (h === null) {
    throw new HttpError(400, "missing-header", "the content-range header is required");
  }
  const m = /^bytes ([0-9]+)-([0-9]+)\/([0-9]+|\*)$/.exec(h.trim());
  if (!m) {
    throw new HttpError(
      400,
      "bad-range",
      "Content-Range must be 'bytes BEGIN-END/*' or 'bytes BEGIN-END/TOTAL'",
    );
  }
  const b = parseDecimal(m[1], "range begin");
  const e = parseDecimal(m[2], "range end");
  if (e < b) throw new HttpError(400, "bad-range", "range end is before its beginning");
  return [b, e - b + 1, m[3] === "*" ? null : parseDecimal(m[3], "range total")];
}

// ---- the handler --------------------------------------------------------------

/**
 * The path of an absolute request URL. A plain path (no query, fragment,
 * escapes, dots or backslashes, as every route here is) is sliced out; any
 * other goes through the URL parser, which normalizes it.
 */
function pathOf(url: string): string {
  const i = url.indexOf("/", url.indexOf("//") + 2);
  if (i < 0) return "/";
  const path = url.slice(i);
  return /[%?#.\\]/.test(path) ? new URL(url).pathname : path;
}

function readShare(
  store: ShareStore,
  kind: ShareKind,
  si: Uint8Array,
  n: number,
  req: Request,
): Response {
  const o = store.openShare(kind, si, n);
  if (!o) {
    throw new HttpError(
      404,
      "not-found",
      `this server holds no ${kind} share ${n} of this storage index`,
    );
  }
  let begin = 0;
  let end = o.size;
  let status = 200;
  const headers: Record<string, string> = { "content-type": OCTET_TYPE };
  try {
    const rh = req.headers.get("range");
    if (rh !== null) {
      const [b, e] = parseRange(rh);
      if (b >= o.size) {
        throw new HttpError(
          416,
          "range-not-satisfiable",
          `range begins at ${b}, the share has ${o.size} bytes`,
        );
      }
      begin = b;
      end = e === null ? o.size : Math.min(e, o.size);
      status = 206;
      headers["content-range"] = `bytes ${begin}-${end - 1}/${o.size}`;
    }
    headers["content-length"] = String(end - begin);
    if (end - begin <= 64 * 1024) {
      const buf = new Uint8Array(end - begin);
      o.file.seekSync(begin, Deno.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const r = o.file.readSync(buf.subarray(got));
        if (!r) break;
        got += r;
      }
      o.file.close();
      return new Response(buf.subarray(0, got), { status, headers });
    }
  } catch (e) {
    o.file.close();
    throw e;
  }
  // Synchronous reads: a page-cache read of up to READ_CHUNK bytes takes far
  // less than an asynchronous op's thread-pool round trip.
  o.file.seekSync(begin, Deno.SeekMode.Start);
  let remaining = end - begin;
  const file = o.file;
  let closed = false;
  const close = () => {
    if (!closed) {
      closed = true;
      file.close();
    }
  };
  const stream = new ReadableStream<Uint8Array>({
    pull(ctrl) {
      try {
        if (remaining <= 0) {
          close();
          ctrl.close();
          return;
        }
        const buf = new Uint8Array(Math.min(remaining, READ_CHUNK));
        const r = file.readSync(buf);
        if (!r) {
          close();
          ctrl.error(new Error("share shrank while being read"));
          return;
        }
        remaining -= r;
        ctrl.enqueue(buf.subarray(0, r));
      } catch (e) {
        close();
        ctrl.error(e);
      }
    },
    cancel() {
      close();
    },
  });
  return new Response(stream, { status, headers });
}

/**
 * POST /batch-list (docs/storage-protocol.md §6.6): the complete shares of each
 * storage index in both namespaces, in request order, from the store's
 * in-memory index (share_index.ts). The response is bounded like a batch
 * read's: at most `maxBytes` (413 response-too-large beyond).
 */
function batchList(
  store: ShareStore,
  sis: Uint8Array[],
  maxBytes: number,
): { entries: { immutable: readonly number[]; mutable: readonly number[] }[] } {
  let size = 16;
  const entries = store.listMany(sis, (e) => {
    // CBOR: a 2-key map (~20 bytes) and at most 5 bytes per share number.
    size += 24 + 5 * (e.immutable.length + e.mutable.length);
    if (size > maxBytes) {
      throw new HttpError(
        413,
        "response-too-large",
        `the listing exceeds ${maxBytes} bytes; ask for fewer storage indexes`,
      );
    }
  });
  return { entries };
}

/** Build the storage protocol handler over `store`. */
export function createStorageHandler(
  store: ShareStore,
  opts: HandlerOptions,
): StorageHandler {
  const maxBody = opts.maxBodySize ?? DEFAULT_MAX_BODY_SIZE;
  const maxSlots = opts.maxBatchSlots ?? DEFAULT_MAX_BATCH_SLOTS;
  const watches = new WatchHub(store, opts.watch);
  const log = opts.log ?? ((l: string) => console.error(l));
  const expectedAuth = utf8(`${AUTH_SCHEME} ${base32Encode(opts.swissnum)}`);

  async function route(req: Request): Promise<Response> {
    const auth = req.headers.get(HEADERS.authorization);
    if (auth === null || !bytesEqual(utf8(auth), expectedAuth)) {
      throw new HttpError(
        401,
        "unauthorized",
        "missing or wrong swissnum; use this server's storage URL",
      );
    }
    const path = pathOf(req.url);
    if (!path.startsWith(API_PREFIX + "/")) throw new HttpError(404, "not-found", "unknown route");
    const seg = path.slice(API_PREFIX.length + 1).split("/");
    const m = req.method;
    const method = (...allowed: string[]) => {
      if (!allowed.includes(m)) {
        throw new HttpError(405, "method-not-allowed", `use ${allowed.join(" or ")} here`);
      }
    };

    if (seg.length === 1 && seg[0] === "version") {
      method("GET");
      const v: ServerVersion = {
        protocol: PROTOCOL_VERSION,
        software: opts.software ?? "shoal",
        maxShareSize: store.maxShareSize,
        availableSpace: await store.availableSpace(),
        maxBodySize: maxBody,
        maxBatchSlots: maxSlots,
        leaseDuration: store.leaseDuration,
      };
      return cborResponse(v);
    }

    if (seg[0] === "immutable" && seg.length >= 2) {
      const si = parseSi(seg[1]);
      if (seg.length === 2) {
        method("POST");
        const upload = secretHeader(req, HEADERS.uploadSecret);
        const renew = secretHeader(req, HEADERS.leaseRenewSecret);
        const cancel = secretHeader(req, HEADERS.leaseCancelSecret);
        const o = obj(await readCbor(req, maxBody), "request");
        const shareNumbers = arr(get(o, "shareNumbers"), "shareNumbers").map((n, i) =>
          shnum(n, `shareNumbers[${i}]`)
        );
        const allocatedSize = uint(get(o, "allocatedSize"), "allocatedSize");
        return cborResponse(
          await store.allocate(si, { upload, renew, cancel }, shareNumbers, allocatedSize),
        );
      }
      if (seg.length === 3 && seg[2] === "shares") {
        method("GET");
        return cborResponse(await store.listImmutable(si));
      }
      const n = parseShnum(seg[2]);
      if (seg.length === 3) {
        method("GET", "PATCH");
        if (m === "GET") return readShare(store, "immutable", si, n, req);
        const upload = secretHeader(req, HEADERS.uploadSecret);
        const [offset, length, total] = parseContentRange(req.headers.get("content-range"));
        if (length > maxBody) {
          throw new HttpError(
            413,
            "body-too-large",
            `upload chunks are limited to ${maxBody} bytes`,
          );
        }
        const cl = req.headers.get("content-length");
        if (cl !== null && cl !== String(length)) {
          throw new HttpError(
            400,
            "body-length-mismatch",
            "Content-Length differs from the Content-Range length",
          );
        }
        const body: AsyncIterable<Uint8Array> = req.body ?? (async function* () {})();
        if (total !== null && total !== (await store.uploadSize(si, n, upload))) {
          throw new HttpError(
            400,
            "bad-range",
            "the Content-Range total differs from the allocated size",
          );
        }
        const r = await store.writeImmutable(si, n, upload, offset, length, body);
        return cborResponse({ required: r.required }, r.complete ? 201 : 200);
      }
      if (seg.length === 4 && seg[3] === "abort") {
        method("PUT");
        await store.abortUpload(si, n, secretHeader(req, HEADERS.uploadSecret));
        return new Response(null, { status: 204 });
      }
      if (seg.length === 4 && seg[3] === "corrupt") {
        method("POST");
        return await corrupt(req, "immutable", si, n);
      }
      throw new HttpError(404, "not-found", "unknown route");
    }

    if (seg.length === 1 && seg[0] === "batch-list") {
      method("POST");
      const sis = parseWatchRegister(await readCbor(req, maxBody), maxSlots);
      return cborResponse(batchList(store, sis, maxBody));
    }

    if (seg[0] === "mutable" && seg.length === 2 && seg[1] === "batch-read") {
      method("POST");
      const r = parseBatch(await readCbor(req, maxBody), maxSlots);
      return cborResponse(await store.batchRead(r, maxBody));
    }

    if (seg[0] === "mutable" && seg.length === 3 && seg[1] === "watch") {
      method("PUT", "POST");
      if (!SI_RE.test(seg[2])) {
        throw new HttpError(400, "bad-watch-id", "a watch id is 26 base32 characters");
      }
      const wid = seg[2];
      if (m === "PUT") {
        const sis = parseWatchRegister(await readCbor(req, maxBody), maxSlots);
        return cborResponse({ digest: await watches.register(wid, sis) });
      }
      const p = parseWatchPoll(await readCbor(req, 64 * 1024));
      return cborResponse({ digest: await watches.poll(wid, p.expect, p.wait, req.signal) });
    }

    if (seg[0] === "mutable" && seg.length >= 3) {
      const si = parseSi(seg[1]);
      if (seg.length === 3 && seg[2] === "read-test-write") {
        method("POST");
        const writeEnabler = secretHeader(req, HEADERS.writeEnabler);
        const renew = secretHeader(req, HEADERS.leaseRenewSecret);
        const cancel = secretHeader(req, HEADERS.leaseCancelSecret);
        const r = parseRtw(await readCbor(req, maxBody));
        return cborResponse(
          await store.readTestWrite(si, { writeEnabler, renew, cancel }, r, {
            maxResponseBytes: maxBody,
            authorizeCreate: (weHash) => checkSlotProof(si, weHash, r.createSlot ?? null),
          }),
        );
      }
      if (seg.length === 3 && seg[2] === "shares") {
        method("GET");
        return cborResponse(await store.listMutable(si));
      }
      const n = parseShnum(seg[2]);
      if (seg.length === 3) {
        method("GET");
        return readShare(store, "mutable", si, n, req);
      }
      if (seg.length === 4 && seg[3] === "corrupt") {
        method("POST");
        return await corrupt(req, "mutable", si, n);
      }
      throw new HttpError(404, "not-found", "unknown route");
    }

    if (seg[0] === "lease" && seg.length === 2) {
      const si = parseSi(seg[1]);
      method("PUT");
      const renew = secretHeader(req, HEADERS.leaseRenewSecret);
      const cancel = secretHeader(req, HEADERS.leaseCancelSecret);
      if (!(await store.addLease(si, { renew, cancel }))) {
        throw new HttpError(404, "not-found", "this server holds no share of this storage index");
      }
      return new Response(null, { status: 204 });
    }
    throw new HttpError(404, "not-found", "unknown route");
  }

  /** A write that creates slot `si` must prove it holds the slot's signing key. */
  async function checkSlotProof(
    si: Uint8Array,
    weHash: Uint8Array,
    proof: SlotProof | null,
  ): Promise<void> {
    if (proof === null) {
      throw new HttpError(
        403,
        "slot-proof-required",
        "creating a slot needs createSlot: its verification key and a signature by its signing key",
      );
    }
    if (!bytesEqual(storageIndexFromPublicKey(proof.verifyKey), si)) {
      throw new HttpError(
        403,
        "bad-slot-proof",
        "createSlot.verifyKey does not derive this storage index",
      );
    }
    const msg = slotCreationMessage(si, opts.serverId, weHash);
    if (!(await verify(proof.verifyKey, msg, proof.signature))) {
      throw new HttpError(
        403,
        "bad-slot-proof",
        "createSlot.signature is not a signature of this slot, server and write enabler",
      );
    }
  }

  async function corrupt(
    req: Request,
    kind: ShareKind,
    si: Uint8Array,
    n: number,
  ): Promise<Response> {
    const o = obj(await readCbor(req, 64 * 1024), "request");
    const reason = get(o, "reason");
    if (typeof reason !== "string") bad("reason", "a text string");
    await store.reportCorruption(kind, si, n, reason);
    return new Response(null, { status: 204 });
  }

  // Refusals for space are logged, at most one line per 10 s (with a count).
  let spaceRefusals = 0;
  let spaceLogAt = 0;
  const noteSpaceRefusal = (req: Request, message: string) => {
    spaceRefusals++;
    if (Date.now() - spaceLogAt < 10_000) return;
    log(
      `storage server: refused ${spaceRefusals} write(s) for space (latest ${req.method} ${
        new URL(req.url).pathname
      }: ${message})`,
    );
    spaceRefusals = 0;
    spaceLogAt = Date.now();
  };

  const observed = async (req: Request): Promise<Response> => {
    if (!opts.metrics) return await unobserved(req);
    const t0 = performance.now();
    const res = await unobserved(req);
    return opts.metrics.request(
      req,
      routeOf(req.method, req.url),
      res,
      (performance.now() - t0) / 1000,
    );
  };
  const unobserved = async (req: Request): Promise<Response> => {
    try {
      return await route(req);
    } catch (e) {
      if (e instanceof HttpError || e instanceof StoreError) {
        if (e.code === "insufficient-space" || e.code === "too-many-uploads") {
          noteSpaceRefusal(req, e.message);
        }
        // Drain nothing more: the connection may be closed by the server if the body was unread.
        return errorResponse(e.status, e.code, e.message);
      }
      if (isClientAbort(e)) {
        // The client went away mid-request (Ctrl-C, a reset): not the server's failure.
        log(
          `storage server: aborted request ${req.method} ${new URL(req.url).pathname}: ${
            (e as Error).message
          }`,
        );
        return errorResponse(400, "aborted", "the client closed the connection during the request");
      }
      log(
        `storage server: internal error on ${req.method} ${new URL(req.url).pathname}: ${
          (e as Error)?.message ?? e
        }`,
      );
      return errorResponse(
        500,
        "internal-error",
        "the server failed to handle this request; see its log",
      );
    }
  };
  return Object.assign(observed, { close: () => watches.close(), watches });
}

/**
 * Whether `e` means the client closed or reset the connection while its
 * request body was being read (not an internal error).
 */
function isClientAbort(e: unknown): boolean {
  const err = e as { message?: string; code?: string; name?: string } | null;
  const text = `${err?.name ?? ""} ${err?.code ?? ""} ${err?.message ?? ""}`;
  return /ECONNRESET|EPIPE|connection reset|closed the connection|connection closed|request body timed out|aborted/i
    .test(text);
}

export interface ServeOptions {
  hostname: string;
  port: number;
  certPem: string;
  keyPem: string;
  handler: (req: Request) => Promise<Response>;
  signal?: AbortSignal;
  /** Called once the server accepts connections (after serveStorage returned). */
  onListen?: (addr: { hostname: string; port: number }) => void;
  /** Where server-level failures are reported (never a secret). Default: console.error. */
  log?: (line: string) => void;
  /** Connection limits and deadlines (https_server.ts; defaults there). */
  limits?: Pick<
    HttpsServerOptions,
    "handshakeTimeoutMs" | "headTimeoutMs" | "maxConnections" | "maxConnectionsPerAddress"
  >;
}

export interface StorageServer {
  addr: { hostname: string; port: number };
  /** Resolves once connections are accepted; rejects if the address could not be bound. */
  listening: Promise<void>;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stop accepting; wait (up to `graceMs`) for in-flight requests to finish. */
  shutdown(graceMs?: number): Promise<void>;
  /** Connections open now (for metrics). */
  connections(): number;
}

/**
 * Serve `handler` over HTTPS (HTTP/1.1, TLS with the given PEM certificate and
 * key): Shoal's own HTTP/1.1 server over node:tls with TCP_NODELAY
 * (https_server.ts says why not Deno.serve or node:https), plus the
 * shutdown order: refuse new requests (503), let running ones finish, close.
 * As with Deno.serve, the address is bound synchronously: a port in use throws
 * Deno.errors.AddrInUse here, and `addr` holds the bound port at once.
 */
export function serveStorage(opts: ServeOptions): StorageServer {
  const log = opts.log ?? ((l: string) => console.error(l));
  // In-flight accounting: shutdown() first refuses new requests (503) and waits
  // for the running ones (request bodies still streaming in included), then
  // closes the listener and the connections.
  let inflight = 0;
  let draining = false;
  let onIdle: (() => void) | null = null;
  const handler = async (req: Request): Promise<Response> => {
    if (draining) {
      const r = errorResponse(
        503,
        "shutting-down",
        "the server is shutting down; retry another server or later",
      );
      r.headers.set("connection", "close");
      return r;
    }
    inflight++;
    try {
      return await opts.handler(req);
    } finally {
      if (--inflight === 0) onIdle?.();
    }
  };
  // Bound synchronously: a port in use throws Deno.errors.AddrInUse here.
  const server = serveHttps({
    hostname: opts.hostname,
    port: opts.port,
    certPem: opts.certPem,
    keyPem: opts.keyPem,
    handler,
    log,
    ...opts.limits,
  });
  const addr = server.addr;
  const listening = Promise.resolve();
  const finished = server.finished;
  if (opts.onListen) queueMicrotask(() => opts.onListen?.(addr));

  let stopping: Promise<void> | null = null;
  const shutdown = (graceMs = 10_000): Promise<void> =>
    stopping ??= (async () => {
      const deadline = Date.now() + graceMs;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const until = (p: Promise<unknown>) =>
        Promise.race([
          p,
          new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
        ])
          .finally(() => clearTimeout(timer));
      draining = true;
      // Waiting watch polls answer now instead of holding the shutdown.
      (opts.handler as Partial<StorageHandler>).close?.();
      if (inflight > 0) await until(new Promise<void>((r) => (onIdle = r)));
      // Stop accepting; idle keep-alive connections close now, busy ones when
      // their response is out (or at the deadline).
      server.close();
      await until(finished);
      server.closeAll();
      await Promise.race([finished, new Promise<void>((r) => (timer = setTimeout(r, 1000)))])
        .finally(() => clearTimeout(timer));
    })();
  if (opts.signal) {
    if (opts.signal.aborted) void shutdown();
    else opts.signal.addEventListener("abort", () => void shutdown(), { once: true });
  }
  return { addr, listening, finished, shutdown, connections: () => server.connections() };
}
