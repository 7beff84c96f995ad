/**
 * A small HTTP/1.1 server over `node:tls` (with TCP_NODELAY) that answers every request with
 * a Web `Request -> Response` handler: what the storage server runs on.
 *
 * Why not Deno.serve or node:https: Deno.serve over TLS leaves Nagle's
 * algorithm on and writes a response head apart from any body over ~400
 * bytes, so such responses wait for the client's delayed ACK (~40 ms on
 * Linux); node:https sets TCP_NODELAY but its HTTP layer costs ~100 µs of CPU
 * per request more than this one (docs/performance.md §5.1). Nagle's
 * algorithm holds back only a segment smaller than the MSS sent while earlier
 * data is unacknowledged, so this server never writes a response in pieces
 * that could stall: a response whose body ends within 64 KiB goes out as one
 * write (head and body together), and a longer one in writes of which every
 * one but the first is at least 64 KiB (a small last piece is merged into the
 * one before it).
 *
 * Requests: HTTP/1.1 (or 1.0) with keep-alive; bodies framed by
 * Content-Length or chunked transfer coding (both at once is refused: request
 * smuggling). A body declared (Content-Length) at most 64 KiB is read whole
 * before the handler runs; a longer or chunked one reaches the handler as a
 * stream read from the connection only as fast as the handler consumes it. A
 * request whose body the handler did not read to the end is answered with
 * `Connection: close`. Limits: the request head (line and headers) at most
 * 16 KiB and 100 header fields; timeouts for an idle connection, a request
 * head in progress, and a stalled body. While the handler runs after the body
 * has been read, the connection is watched, and the request's signal aborts if
 * the client goes away (slot-watch long polls end at once).
 *
 * Malformed requests get a 4xx with `Connection: close`; nothing a client
 * sends affects other connections.
 *
 * Reads: once the process's check has passed, a connection's bytes arrive
 * through the shared read buffer (tls_reads.ts) and are copied into its queue;
 * before that, through `data` events.
 */

import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { isIP, isIPv6, type Socket } from "node:net";
import { concatBytes } from "../codec/bytes.ts";
import { readIntoShared, sharedReadsActive } from "./tls_reads.ts";

export type WebHandler = (req: Request) => Promise<Response>;

/** Largest request head (request line + header fields). */
export const MAX_REQUEST_HEAD = 16 * 1024;
const MAX_HEADER_FIELDS = 100;
/** Bodies declared at most this size are read whole before the handler runs. */
const SMALL_BODY = 64 * 1024;
/** A response body up to this size goes out in one write with the head. */
const COLLECT_LIMIT = 64 * 1024;
/** No write after the first is smaller than this (Nagle, see above). */
const MIN_LATER_WRITE = 64 * 1024;
/** A connection's read buffer starts this small and grows only as a request needs. */
const READ_BUFFER = 8 * 1024;
/** Connections open at once; more are closed as they arrive. */
export const MAX_CONNECTIONS = 10_000;
/** Connections open at once from one client address; more are closed as they arrive. */
export const MAX_CONNECTIONS_PER_ADDRESS = 100;
/** Time for a TLS handshake to complete after the TCP accept. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
const MAX_CHUNK_LINE = 4096;

export interface HttpsServerOptions {
  hostname: string;
  port: number;
  certPem: string;
  keyPem: string;
  handler: WebHandler;
  /** Scheme and authority given to request URLs (default: https:// and the bound address). */
  origin?: string;
  /** Where failures outside any one request's handler are reported (no secrets). */
  log?: (line: string) => void;
  /** An open connection waiting for its next request is closed after this long (ms). */
  idleTimeoutMs?: number;
  /**
   * A request head, and a body of up to 64 KiB (read whole before the handler,
   * and so before authorization), must arrive within this long of the head's
   * first byte (ms).
   */
  headTimeoutMs?: number;
  /** A TLS handshake must complete within this long of the TCP accept (ms). */
  handshakeTimeoutMs?: number;
  /** Most connections open at once (default MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Most connections open at once from one client address (default 100). */
  maxConnectionsPerAddress?: number;
  /** A request body that delivers no byte for this long is abandoned (ms). */
  bodyTimeoutMs?: number;
}

export interface HttpsServer {
  addr: { hostname: string; port: number };
  /** Stop accepting; idle connections close now, busy ones once their response is out. */
  close(): void;
  /** Close every connection at once. */
  closeAll(): void;
  /** Resolves when the listener is closed and every connection has ended. */
  finished: Promise<void>;
  /** Connections open now (for metrics). */
  connections(): number;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  206: "Partial Content",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
  507: "Insufficient Storage",
};

const encoder = new TextEncoder();

/** A request the server refuses before the handler sees it. */
class BadRequest extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

class Timeout extends Error {}

const TIMED_OUT = Symbol("timed out");

/** `p`'s value, or TIMED_OUT if it has not settled within `ms`. */
async function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<typeof TIMED_OUT>((res) => (timer = setTimeout(() => res(TIMED_OUT), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, spaces and tabs (obs-text allowed), no controls.
const VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CONTENT_LENGTH_RE = /^[0-9]{1,15}$/;

/**
 * Buffered reading from one connection. At most one read of the connection is
 * outstanding; `watchClose` shares it, so the connection can be watched for
 * the client going away while the handler runs without losing a byte of a
 * request the client sends next.
 */
class ConnReader {
  #wire: Wire;
  #buf = new Uint8Array(READ_BUFFER);
  #start = 0;
  #end = 0;
  #pending: Promise<number | null> | null = null;
  eof = false;

  constructor(wire: Wire) {
    this.#wire = wire;
  }

  get buffered(): number {
    return this.#end - this.#start;
  }

  /** The outstanding read (started if none), resolving to bytes read or null at end. */
  #read(): Promise<number | null> {
    return this.#pending ?? this.#adopt(this.#wire.read());
  }

  /** Make `read` the outstanding read: its bytes go to the buffer. */
  #adopt(read: Promise<Uint8Array | null>): Promise<number | null> {
    return this.#pending = read.then((data) => {
      this.#pending = null;
      if (data === null) {
        this.eof = true;
        return null;
      }
      this.#append(data);
      return data.length;
    }, () => {
      this.#pending = null;
      this.eof = true;
      return null;
    });
  }

  #append(data: Uint8Array): void {
    if (this.#end + data.length > this.#buf.length) {
      const live = this.#end - this.#start;
      if (live + data.length <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const bigger = new Uint8Array(Math.max(this.#buf.length * 2, live + data.length));
        bigger.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = bigger;
      }
      this.#start = 0;
      this.#end = live;
    }
    this.#buf.set(data, this.#end);
    this.#end += data.length;
  }

  /** Read more bytes into the buffer; false at end of stream. Times out after `ms` (0: never). */
  async fill(ms: number): Promise<boolean> {
    if (this.eof) return false;
    const p = this.#read();
    if (ms <= 0) return (await p) !== null;
    const r = await within(p, ms);
    if (r === TIMED_OUT) throw new Timeout("timed out");
    return r !== null;
  }

  /**
   * Resolves once the client has closed the connection or `stop()` is true
   * (checked after each read; bytes the client sends meanwhile are kept).
   */
  async watchClose(stop: () => boolean): Promise<void> {
    while (!this.eof && !stop()) {
      if (this.buffered > MAX_REQUEST_HEAD + SMALL_BODY) return; // no reading ahead without bound
      if ((await this.#read()) === null) return;
    }
  }

  /**
   * With nothing buffered: the next bytes received, at most `max` of them,
   * as the wire delivered them (no copy; any excess is buffered). Returns an
   * empty array when a read already in flight put its bytes in the buffer
   * instead, null at end of stream.
   */
  async direct(max: number, ms: number): Promise<Uint8Array | null> {
    if (this.#pending || this.eof) return (await this.fill(ms)) ? new Uint8Array(0) : null;
    const read = this.#wire.read();
    const d = await within(read, ms);
    if (d === TIMED_OUT) {
      void this.#adopt(read); // whatever it brings later is kept in order
      throw new Timeout("timed out");
    }
    if (d === null) {
      this.eof = true;
      return null;
    }
    if (d.length > max) {
      this.#append(d.subarray(max));
      return d.subarray(0, max);
    }
    return d;
  }

  /** The buffered bytes (a view, valid until the next fill or take). */
  peek(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  /** Consume `n` buffered bytes; returns a copy. */
  take(n: number): Uint8Array {
    const out = this.#buf.slice(this.#start, this.#start + n);
    this.skip(n);
    return out;
  }

  skip(n: number): void {
    this.#start += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  /** Index of CRLF CRLF in the buffer, or -1. */
  headEnd(from: number): number {
    const b = this.#buf;
    for (let i = this.#start + Math.max(0, from - 3); i + 3 < this.#end; i++) {
      if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) {
        return i - this.#start;
      }
    }
    return -1;
  }

  /** Index of LF in the buffer, or -1. */
  lineEnd(): number {
    const i = this.#buf.subarray(this.#start, this.#end).indexOf(10);
    return i;
  }
}

/** Bytes as a string of the same code units (ISO-8859-1), without a decoder op. */
function latin1String(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 4096) {
    s += String.fromCharCode.apply(null, b.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}

interface RequestHead {
  method: string;
  target: string;
  http10: boolean;
  /** Field names and values, in order: [name0, value0, name1, value1, ...]. */
  fields: string[];
  contentLength: number | null;
  chunked: boolean;
  keepAlive: boolean;
}

function parseHead(text: string): RequestHead {
  const lines = text.split("\r\n");
  const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(lines[0]);
  if (!m) throw new BadRequest(400, "malformed request line");
  if (m[3] !== "1") throw new BadRequest(505, "only HTTP/1.x is served here");
  const http10 = m[4] === "0";
  if (lines.length - 1 > MAX_HEADER_FIELDS) {
    throw new BadRequest(431, `more than ${MAX_HEADER_FIELDS} header fields`);
  }
  const fields: string[] = [];
  let contentLength: string | null = null;
  let te: string | null = null;
  let connection = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const c = line.indexOf(":");
    if (c <= 0) throw new BadRequest(400, "malformed header field");
    const name = line.slice(0, c);
    if (!TOKEN_RE.test(name)) throw new BadRequest(400, "malformed header field name");
    const value = line.slice(c + 1).trim();
    if (!VALUE_RE.test(value)) throw new BadRequest(400, "malformed header field value");
    const lower = name.toLowerCase();
    if (lower === "content-length") {
      if (contentLength !== null && contentLength !== value) {
        throw new BadRequest(400, "conflicting Content-Length fields");
      }
      contentLength = value;
    } else if (lower === "transfer-encoding") {
      te = te === null ? value : `${te}, ${value}`;
    } else if (lower === "connection") {
      connection += `,${value.toLowerCase()}`;
    }
    fields.push(name, value);
  }
  let chunked = false;
  if (te !== null) {
    if (contentLength !== null) {
      throw new BadRequest(400, "both Transfer-Encoding and Content-Length given");
    }
    if (te.trim().toLowerCase() !== "chunked") {
      throw new BadRequest(501, "only the chunked transfer coding is supported");
    }
    chunked = true;
  }
  if (contentLength !== null && !CONTENT_LENGTH_RE.test(contentLength)) {
    throw new BadRequest(400, "Content-Length is not a decimal number");
  }
  const tokens = connection.split(",").map((t) => t.trim());
  const keepAlive = http10 ? tokens.includes("keep-alive") : !tokens.includes("close");
  return {
    method: m[1],
    target: m[2],
    http10,
    fields,
    contentLength: contentLength === null ? null : Number(contentLength),
    chunked,
    keepAlive,
  };
}

/** Where a request body stands: bytes (or chunked framing) still to come. */
interface BodyState {
  /** Bytes of the current Content-Length body or chunk still unread. */
  remaining: number;
  chunked: boolean;
  /** The last chunk and trailers have been read (or the body was never chunked). */
  done: boolean;
  /** A chunk-size line has been read (so a chunk's CRLF precedes the next one). */
  started: boolean;
  failed: boolean;
  /** The framing error found while the handler read the body, answered instead of its response. */
  error: BadRequest | null;
}

/** Read the next chunk-size line of a chunked body (and trailers after the last). */
async function nextChunk(r: ConnReader, st: BodyState, timeoutMs: number): Promise<void> {
  const line = async (): Promise<string> => {
    for (;;) {
      const i = r.lineEnd();
      if (i >= 0) {
        const text = latin1String(r.peek().subarray(0, i));
        r.skip(i + 1);
        // RFC 9112 §7.1: chunk-size and trailer lines end with CRLF; a bare LF is
        // refused (front ends that accept it would frame the body differently).
        if (!text.endsWith("\r")) throw new BadRequest(400, "chunk line not ended by CRLF");
        return text.slice(0, -1);
      }
      if (r.buffered > MAX_CHUNK_LINE) throw new BadRequest(400, "chunk line too long");
      if (!(await r.fill(timeoutMs))) throw new BadRequest(400, "connection closed in a body");
    }
  };
  const size = (await line()).split(";")[0].trim();
  if (!/^[0-9a-fA-F]{1,12}$/.test(size)) throw new BadRequest(400, "malformed chunk size");
  st.remaining = parseInt(size, 16);
  if (st.remaining === 0) {
    // Trailer fields, up to the empty line; ignored.
    let count = 0;
    while ((await line()) !== "") {
      if (++count > MAX_HEADER_FIELDS) throw new BadRequest(431, "too many trailer fields");
    }
    st.done = true;
  }
}

/** Up to `max` bytes of the body (fewer if fewer are buffered); null at its end. */
async function readBodyPart(
  r: ConnReader,
  st: BodyState,
  max: number,
  timeoutMs: number,
): Promise<Uint8Array | null> {
  for (;;) {
    if (st.remaining === 0) {
      if (!st.chunked || st.done) {
        st.done = true;
        return null;
      }
      // The CRLF after a chunk's data, except before the first chunk.
      if (st.started) {
        while (r.buffered < 2) {
          if (!(await r.fill(timeoutMs))) throw new BadRequest(400, "connection closed in a body");
        }
        const p = r.peek();
        if (p[0] !== 13 || p[1] !== 10) throw new BadRequest(400, "malformed chunk");
        r.skip(2);
      }
      st.started = true;
      await nextChunk(r, st, timeoutMs);
      continue;
    }
    if (r.buffered === 0) {
      // Nothing buffered: take the wire's next chunk itself (no copy).
      const d = await r.direct(Math.min(st.remaining, max), timeoutMs);
      if (d === null) {
        throw new BadRequest(400, "the client closed the connection during the request body");
      }
      if (d.length > 0) {
        st.remaining -= d.length;
        return d;
      }
    }
    const n = Math.min(r.buffered, st.remaining, max);
    st.remaining -= n;
    return r.take(n);
  }
}

/** The body as a stream that reads the connection only when the handler pulls. */
function bodyStream(r: ConnReader, st: BodyState, timeoutMs: number): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const part = await readBodyPart(r, st, 1024 * 1024, timeoutMs);
        if (part === null) ctrl.close();
        else ctrl.enqueue(part);
      } catch (e) {
        st.failed = true;
        if (e instanceof BadRequest) st.error = e;
        ctrl.error(e instanceof Timeout ? new Error("request body timed out") : e);
      }
    },
    cancel() {
      st.failed = true;
    },
  }, { highWaterMark: 0 });
}

/** The response head; `framing` is the Content-Length, "chunked", or "none" (204, 304). */
function headBytes(
  status: number,
  headers: Headers,
  framing: number | "chunked" | "none",
  close: boolean,
): Uint8Array {
  let s = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}\r\n`;
  headers.forEach((v, k) => {
    if (k === "content-length" || k === "connection" || k === "transfer-encoding") return;
    s += `${k}: ${v}\r\n`;
  });
  if (typeof framing === "number") s += `content-length: ${framing}\r\n`;
  else if (framing === "chunked") s += "transfer-encoding: chunked\r\n";
  if (close) s += "connection: close\r\n";
  return encoder.encode(s + "\r\n");
}

function chunkFrame(data: Uint8Array): Uint8Array[] {
  return [encoder.encode(data.length.toString(16) + "\r\n"), data, encoder.encode("\r\n")];
}

/**
 * Write `response`: a body that ends within COLLECT_LIMIT bytes goes out with
 * the head in one write; a longer one streams (Content-Length from the
 * handler, else chunked), no write after the first under MIN_LATER_WRITE.
 * A body that fails midway cuts the connection (the client sees a truncated
 * response, never a short one): throws.
 */
async function writeResponse(
  conn: Wire,
  response: Response,
  close: boolean,
  headOnly: boolean,
): Promise<void> {
  const status = response.status;
  const noBody = status === 204 || status === 304 || !response.body;
  if (noBody || headOnly) {
    await response.body?.cancel().catch(() => {});
    // 204 and 304 carry neither Content-Length nor a body.
    const framing = status === 204 || status === 304 ? "none" : 0;
    await conn.write(headBytes(status, response.headers, framing, close));
    return;
  }
  const reader = response.body!.getReader();
  try {
    const first: Uint8Array[] = [];
    let size = 0;
    let done = false;
    while (size <= COLLECT_LIMIT) {
      const r = await reader.read();
      if (r.done) {
        done = true;
        break;
      }
      first.push(r.value);
      size += r.value.length;
    }
    if (done) {
      const head = headBytes(status, response.headers, size, close);
      await conn.write(concatBytes(head, ...first));
      return;
    }
    const declared = response.headers.get("content-length");
    const length = declared !== null && CONTENT_LENGTH_RE.test(declared) ? Number(declared) : null;
    const chunked = length === null;
    let sent = 0;
    // `held` is written once the next piece shows it is not followed by a small last one.
    let held: Uint8Array[] = [headBytes(status, response.headers, length ?? "chunked", close)];
    let heldSize = held[0].length;
    const add = (data: Uint8Array) => {
      sent += data.length;
      if (length !== null && sent > length) throw new Error("body longer than its Content-Length");
      const parts = chunked ? chunkFrame(data) : [data];
      for (const p of parts) {
        held.push(p);
        heldSize += p.length;
      }
    };
    for (const c of first) add(c);
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      if (r.value.length >= MIN_LATER_WRITE && heldSize >= MIN_LATER_WRITE) {
        await conn.write(held);
        held = [];
        heldSize = 0;
      }
      add(r.value);
    }
    if (length !== null && sent !== length) throw new Error("body shorter than its Content-Length");
    if (chunked) {
      const end = encoder.encode("0\r\n\r\n");
      held.push(end);
      heldSize += end.length;
    }
    await conn.write(held);
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  }
}

const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");

/** The value of the field `name` (lower case) among `fields`, or null. */
function fieldValue(fields: string[], name: string): string | null {
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].length === name.length && fields[i].toLowerCase() === name) return fields[i + 1];
  }
  return null;
}

function simpleResponse(status: number, message: string): Uint8Array {
  const body = encoder.encode(message + "\n");
  const head = encoder.encode(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Status"}\r\ncontent-type: text/plain\r\n` +
      `content-length: ${body.length}\r\nconnection: close\r\n\r\n`,
  );
  return concatBytes(head, body);
}

/** One connection: reads in the order bytes arrive, writes with backpressure. */
interface Wire {
  /** The next bytes received (the caller's to keep); null at end. */
  read(): Promise<Uint8Array | null>;
  /**
   * Resolves once `data` is handed to the socket and it can take more. An
   * array goes out as one gathered write (no copy into one buffer).
   */
  write(data: Uint8Array | Uint8Array[]): Promise<void>;
  /** Ends the connection now (a reset if the client is still sending). */
  close(): void;
  /**
   * Ends the connection gracefully after an answer: sends our end, then reads
   * and discards what the client still sends (a body we refused) for at most
   * `ms` or `maxBytes`, so the answer is not lost to a reset. Resolves once closed.
   */
  linger(ms: number, maxBytes: number): Promise<void>;
}

/** How long a closed connection keeps draining a client's unread request body (ms). */
const LINGER_MS = 2000;
/** At most this many bytes are drained from a closed connection before it is reset. */
const LINGER_BYTES = 16 * 1024 * 1024;

/** Bytes received and not yet read before the socket is paused (backpressure). */
const SOCKET_HIGH_WATER = 256 * 1024;

function socketWire(socket: TLSSocket): Wire {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let ended = false;
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  /** Reading stopped for backpressure (resumed once the queue is drained below the mark). */
  let stopped = false;
  /** Lingering: bytes still arriving are counted and dropped, past `dropLimit` the socket is reset. */
  let discarding = false;
  let dropped = 0;
  let dropLimit = Infinity;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  /** One read's bytes (`owned`: ours to keep; else a view valid only now). False: stop reading. */
  const receive = (d: Uint8Array, owned: boolean): boolean => {
    if (discarding) {
      dropped += d.length;
      if (dropped > dropLimit) socket.destroy();
      return true;
    }
    queue.push(owned ? d : d.slice());
    queued += d.length;
    notify();
    if (queued <= SOCKET_HIGH_WATER) return true;
    stopped = true;
    return false;
  };
  if (!(sharedReadsActive() && readIntoShared(socket, (view) => receive(view, false)))) {
    socket.on("data", (d: Uint8Array) => {
      if (!receive(d, true)) socket.pause();
    });
  }
  const end = () => {
    ended = true;
    notify();
  };
  socket.on("end", end);
  socket.on("close", end);
  socket.on("error", (e: Error) => {
    failure = e;
    notify();
  });
  return {
    async read() {
      for (;;) {
        const d = queue.shift();
        if (d) {
          queued -= d.length;
          if (stopped && queued <= SOCKET_HIGH_WATER) {
            stopped = false;
            socket.resume();
          }
          return d;
        }
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((res) => (wake = res));
      }
    },
    write(data) {
      if (socket.destroyed) return Promise.reject(new Error("connection closed"));
      let ok: boolean;
      if (data instanceof Uint8Array) ok = socket.write(data);
      else {
        socket.cork();
        ok = true;
        for (const part of data) ok = socket.write(part);
        socket.uncork();
      }
      if (ok) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const done = (e?: Error) => {
          socket.off("drain", onDrain);
          socket.off("close", onClose);
          if (e) reject(e);
          else resolve();
        };
        const onDrain = () => done();
        const onClose = () => done(new Error("connection closed"));
        socket.on("drain", onDrain);
        socket.on("close", onClose);
      });
    },
    close() {
      socket.destroy();
    },
    linger(ms, maxBytes) {
      return new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        discarding = true;
        dropLimit = maxBytes;
        queue.length = 0;
        queued = 0;
        const timer = setTimeout(() => socket.destroy(), ms);
        socket.once("close", () => {
          clearTimeout(timer);
          resolve();
        });
        stopped = false;
        socket.resume();
        socket.end();
      });
    },
  };
}

/**
 * The client address a connection counts against: an IPv4 address (IPv4-mapped
 * IPv6 included) as itself, an IPv6 address by its /64 prefix (one host
 * usually holds a whole /64, so counting single addresses would not bound it).
 */
export function connectionGroup(address: string): string {
  const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "").replace(/%.*$/, "");
  if (!a.includes(":")) return a;
  const [head, tail] = a.toLowerCase().split("::");
  const h = head ? head.split(":") : [];
  const t = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined
    ? h
    : [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill("0"), ...t];
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":") + "::/64";
}

type ListenNow = (address: string, port: number, family: number, backlog: number) => void;

/**
 * Serve `opts.handler` over HTTPS (node:tls with TCP_NODELAY). The address is
 * bound before this returns: a port in use throws Deno.errors.AddrInUse here,
 * and `addr` holds the bound port.
 */
export function serveHttps(opts: HttpsServerOptions): HttpsServer {
  const log = opts.log ?? ((l: string) => console.error(l));
  const idleMs = opts.idleTimeoutMs ?? 120_000;
  const headMs = opts.headTimeoutMs ?? 30_000;
  const bodyMs = opts.bodyTimeoutMs ?? 60_000;
  const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const maxConns = opts.maxConnections ?? MAX_CONNECTIONS;
  const maxPerAddress = opts.maxConnectionsPerAddress ?? MAX_CONNECTIONS_PER_ADDRESS;
  // A host name (not an IP literal) is resolved the way Deno.listen does it.
  let ip = opts.hostname;
  if (isIP(ip) === 0) {
    const probe = Deno.listen({ hostname: opts.hostname, port: opts.port });
    ip = (probe.addr as Deno.NetAddr).hostname;
    probe.close();
  }
  const origin = opts.origin ?? `https://${isIPv6(ip) ? `[${ip}]` : ip}`;
  const conns = new Map<Wire, { busy: boolean }>();
  let closing = false;
  let connsDone: (() => void) | null = null;
  let listenerClosed = false;
  let onListenerClosed: (() => void) | null = null;

  const server = tls.createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    ALPNProtocols: ["http/1.1"],
    noDelay: true,
  } as tls.TlsOptions, (socket: TLSSocket) => {
    // Handshake done in time: the connection is the HTTP layer's (its own timeouts) now.
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    clearTimeout(handshaking.get(key));
    handshaking.delete(key);
    socket.setNoDelay(true);
    void serveConn(socketWire(socket));
  });
  // Every TCP connection counts against the limits from its accept, before any TLS.
  const perAddress = new Map<string, number>();
  const handshaking = new Map<string, ReturnType<typeof setTimeout>>();
  let open = 0;
  let lastRefusalLog = 0;
  let refusedSinceLog = 0;
  server.on("connection", (raw: Socket) => {
    const address = connectionGroup(raw.remoteAddress ?? "unknown");
    const fromAddress = perAddress.get(address) ?? 0;
    if (open >= maxConns || fromAddress >= maxPerAddress) {
      raw.destroy();
      refusedSinceLog++;
      if (Date.now() - lastRefusalLog >= 10_000) {
        log(
          `storage server: refused ${refusedSinceLog} connection(s): ${
            open >= maxConns
              ? `${open} open (max_connections ${maxConns})`
              : `${fromAddress} open from ${address} (max_connections_per_address ${maxPerAddress})`
          }`,
        );
        lastRefusalLog = Date.now();
        refusedSinceLog = 0;
      }
      return;
    }
    open++;
    perAddress.set(address, fromAddress + 1);
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    handshaking.set(key, setTimeout(() => raw.destroy(), handshakeMs));
    raw.once("close", () => {
      clearTimeout(handshaking.get(key));
      handshaking.delete(key);
      open--;
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n <= 0) perAddress.delete(address);
      else perAddress.set(address, n);
    });
  });
  server.on("tlsClientError", () => {/* a failed handshake concerns that client only */});
  server.on("error", (e: Error) => log(`storage server: ${e.message}`));
  server.on("close", () => {
    listenerClosed = true;
    onListenerClosed?.();
  });
  // node's listen() binds only after an asynchronous address lookup, so a
  // client told the address at once could find nothing listening. _listen2
  // (what listen() calls after the lookup; node and Deno's node layer both
  // have it) binds the resolved address now.
  const listen2 = (server as unknown as { _listen2?: ListenNow })._listen2;
  let port: number;
  if (typeof listen2 === "function") {
    listen2.call(server, ip, opts.port, isIPv6(ip) ? 6 : 4, 511);
    const a = server.address();
    if (a === null || typeof a === "string") {
      // Not bound: raise the error Deno.listen gives for this address (AddrInUse, ...).
      Deno.listen({ hostname: ip, port: opts.port }).close();
      throw new Error(`cannot listen on ${ip}:${opts.port}`);
    }
    port = a.port;
  } else {
    // Without _listen2: learn the port (and any error) from a probe, then listen.
    const probe = Deno.listen({ hostname: ip, port: opts.port });
    port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    server.listen({ host: ip, port });
  }

  // Connections closed after an answer, still draining what their client sends.
  const lingering = new Set<Wire>();
  const settled = () => {
    if (closing && conns.size === 0 && lingering.size === 0) connsDone?.();
  };
  const closeConn = (conn: Wire, linger = false) => {
    if (!conns.delete(conn)) return;
    if (linger && !closing) {
      lingering.add(conn);
      void conn.linger(LINGER_MS, LINGER_BYTES).then(() => {
        lingering.delete(conn);
        settled();
      });
    } else conn.close();
    settled();
  };

  async function serveConn(conn: Wire): Promise<void> {
    const state = { busy: false };
    conns.set(conn, state);
    const r = new ConnReader(conn);
    try {
      for (;;) {
        // The request head.
        let end = r.headEnd(0);
        // The whole head must arrive within headMs of its first byte.
        let deadline = r.buffered > 0 ? Date.now() + headMs : 0;
        while (end < 0) {
          if (r.buffered > MAX_REQUEST_HEAD) {
            await conn.write(simpleResponse(431, "request head too large"));
            return;
          }
          if (closing && r.buffered === 0) return;
          const had = r.buffered;
          const wait = deadline === 0 ? idleMs : deadline - Date.now();
          if (wait <= 0 || !(await r.fill(wait))) return;
          if (deadline === 0) deadline = Date.now() + headMs;
          end = r.headEnd(had);
        }
        if (end > MAX_REQUEST_HEAD) {
          await conn.write(simpleResponse(431, "request head too large"));
          return;
        }
        state.busy = true;
        let head: RequestHead;
        try {
          head = parseHead(latin1String(r.peek().subarray(0, end)));
        } catch (e) {
          if (e instanceof BadRequest) {
            await conn.write(simpleResponse(e.status, e.message));
            return;
          }
          throw e;
        }
        r.skip(end + 4);
        if (!head.target.startsWith("/")) {
          await conn.write(simpleResponse(400, "the request target must be a path"));
          return;
        }
        const st: BodyState = {
          remaining: head.contentLength ?? 0,
          chunked: head.chunked,
          done: !head.chunked,
          started: false,
          failed: false,
          error: null,
        };
        const bodiless = head.method === "GET" || head.method === "HEAD";
        const hasBody = head.chunked || (head.contentLength ?? 0) > 0;
        if (bodiless && hasBody) {
          await conn.write(simpleResponse(400, `a ${head.method} request has no body`));
          return;
        }
        const expect = fieldValue(head.fields, "expect");
        if (expect !== null) {
          if (expect.toLowerCase() !== "100-continue") {
            await conn.write(simpleResponse(417, "only Expect: 100-continue is supported"));
            return;
          }
          // The client waits for this before sending its body.
          if (hasBody) await conn.write(CONTINUE);
        }
        let body: BodyInit | null = null;
        if (hasBody) {
          if (!head.chunked && st.remaining <= SMALL_BODY) {
            // Read before the handler (so before authorization): within the head's deadline.
            while (r.buffered < st.remaining) {
              const wait = Math.min(bodyMs, deadline - Date.now());
              if (wait <= 0 || !(await r.fill(wait))) return;
            }
            body = r.take(st.remaining) as Uint8Array<ArrayBuffer>;
            st.remaining = 0;
          } else body = bodyStream(r, st, bodyMs);
        }
        const aborter = new AbortController();
        let request: Request;
        try {
          request = new Request(origin + head.target, {
            method: head.method,
            body,
            signal: aborter.signal,
            duplex: "half",
          } as RequestInit);
        } catch {
          await conn.write(simpleResponse(400, "malformed request target or method"));
          return;
        }
        // Appended here rather than passed in: cheaper than converting a HeadersInit.
        try {
          const h = request.headers;
          for (let i = 0; i < head.fields.length; i += 2) {
            h.append(head.fields[i], head.fields[i + 1]);
          }
        } catch {
          await conn.write(simpleResponse(400, "malformed header field value"));
          return;
        }
        // A request whose body is in (every bodiless or small one: slot-watch long
        // polls) aborts when the client closes the connection meanwhile.
        let answered = false;
        if (st.remaining === 0 && st.done) {
          void r.watchClose(() => answered).then(() => {
            if (!answered && r.eof) aborter.abort();
          });
        }
        let response: Response;
        try {
          response = await opts.handler(request);
        } catch (e) {
          if (!st.error) log(`storage server: handler failed: ${(e as Error)?.message ?? e}`);
          response = new Response(null, { status: 500 });
        } finally {
          answered = true;
        }
        if (st.error) {
          // The body broke HTTP framing: that is the answer, whatever the handler made of it.
          await response.body?.cancel().catch(() => {});
          await conn.write(simpleResponse(st.error.status, st.error.message));
          return;
        }
        const bodyLeft = !(st.remaining === 0 && st.done) || st.failed;
        const close = bodyLeft || !head.keepAlive || closing ||
          response.headers.get("connection")?.toLowerCase() === "close";
        await writeResponse(conn, response, close, head.method === "HEAD");
        state.busy = false;
        if (close || r.eof) return;
      }
    } catch (e) {
      if (!(e instanceof Timeout) && !(e instanceof BadRequest)) {
        const msg = (e as Error)?.message ?? String(e);
        if (!/closed|reset|broken pipe|eof|connection/i.test(msg)) {
          log(`storage server: connection failed: ${msg}`);
        }
      }
    } finally {
      // A client may still be sending (a refused body): drain it so it reads our answer.
      closeConn(conn, true);
    }
  }

  const finished = (async () => {
    if (!listenerClosed) await new Promise<void>((res) => (onListenerClosed = res));
    if (conns.size > 0 || lingering.size > 0) {
      await new Promise<void>((res) => (connsDone = res));
    }
  })();

  return {
    addr: { hostname: ip, port },
    close() {
      if (closing) return;
      closing = true;
      server.close();
      for (const [c, s] of conns) if (!s.busy) closeConn(c);
      for (const c of lingering) c.close();
      settled();
    },
    closeAll() {
      for (const c of [...conns.keys()]) closeConn(c);
      for (const c of lingering) c.close();
    },
    finished,
    connections: () => conns.size,
  };
}
