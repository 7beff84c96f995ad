/**
 * Pinned TLS connections and a small HTTP/1.1 client over them.
 *
 * connectPinned() opens a node:tls connection without certificate-authority
 * checks, computes SHA-256 of the peer certificate's SubjectPublicKeyInfo on
 * `secureConnect` and compares it with the expected pin before a single byte
 * of application data is written; on mismatch the socket is destroyed.
 *
 * HttpConnection sends one request at a time (no pipelining) with a
 * Content-Length body (handed to the socket 64 KiB at a time) and parses the response: status line, headers, and a
 * body framed by Content-Length, chunked transfer coding, or connection close,
 * with limits on header and body size and an idle timeout. Every byte from the
 * network is treated as hostile.
 */
import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { timingSafeEqual } from "node:crypto";
import { pinFromCertDer } from "./tls.ts";
import { readIntoShared, sharedReadsActive } from "./tls_reads.ts";

/** Largest response head (status line + headers) accepted. */
export const MAX_RESPONSE_HEAD = 64 * 1024;
/** Longest chunk-size or trailer line accepted in a chunked body. */
const MAX_CHUNK_LINE = 4096;

/** The server at a location presented a key other than the pinned one; nothing was sent to it. */
export class PinMismatchAtLocation extends Error {
  override name = "PinMismatchAtLocation";
}

/** Connecting, the TLS handshake or a request timed out. */
export class HttpTimeoutError extends Error {
  override name = "HttpTimeoutError";
}

/** The connection failed or closed before a complete response arrived. */
export class ConnectionLostError extends Error {
  override name = "ConnectionLostError";
  /** True when not a single byte of the response had arrived. */
  readonly beforeResponse: boolean;
  constructor(message: string, beforeResponse: boolean) {
    super(message);
    this.beforeResponse = beforeResponse;
  }
}

/** The response broke HTTP/1.1 framing or a limit. */
export class HttpProtocolError extends Error {
  override name = "HttpProtocolError";
  /** Status of the response, when its head had been parsed (0 otherwise). */
  readonly status: number;
  /** "response-too-large" for a body above the limit, else "bad-response". */
  readonly code: string;
  constructor(message: string, status = 0, code = "bad-response") {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface PinnedConnectOptions {
  host: string;
  port: number;
  pin: Uint8Array;
  /** Time allowed for TCP connect plus TLS handshake. */
  timeoutMs: number;
  /** Send SNI (only meaningful for DNS names). */
  servername?: string;
}

/**
 * Open a TLS connection and verify the peer's SPKI pin before returning it.
 * Rejects with PinMismatchAtLocation (socket destroyed, nothing written),
 * HttpTimeoutError, or the socket's error.
 */
export function connectPinned(o: PinnedConnectOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const socket = tls.connect({
      host: o.host,
      port: o.port,
      servername: o.servername,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    };
    const timer = setTimeout(
      () => fail(new HttpTimeoutError(`no TLS connection within ${o.timeoutMs} ms`)),
      o.timeoutMs,
    );
    socket.once("error", (e: Error) => fail(e));
    socket.once(
      "close",
      () => fail(new ConnectionLostError("connection closed during TLS handshake", true)),
    );
    socket.once("secureConnect", () => {
      if (settled) return;
      let ok = false;
      try {
        const cert = socket.getPeerCertificate(true);
        if (cert && cert.raw) {
          const got = pinFromCertDer(new Uint8Array(cert.raw));
          ok = got.length === o.pin.length && timingSafeEqual(got, o.pin);
        }
      } catch {
        ok = false;
      }
      if (!ok) {
        fail(
          new PinMismatchAtLocation(
            "the server's TLS key does not match the pin in the storage URL",
          ),
        );
        return;
      }
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners("error");
      socket.removeAllListeners("close");
      resolve(socket);
    });
  });
}

export interface HttpRequest {
  method: string;
  /** Path and query, starting with "/". */
  path: string;
  /** Value of the Host header. */
  host: string;
  headers: [string, string][];
  body?: Uint8Array;
  /** Largest response body accepted. */
  maxResponseBytes: number;
  /**
   * A buffer for the response body: when the body's Content-Length fits, it is read into the
   * start of `into` and the response's body is a view of it (no buffer of its own). The
   * caller must not touch `into` until the request has settled.
   */
  into?: Uint8Array;
  /** Longest wait for response bytes (and for the request to be written). */
  timeoutMs: number;
}

export interface HttpResponse {
  status: number;
  /** Lowercased names; repeated headers joined with ", ". */
  headers: Map<string, string>;
  body: Uint8Array;
  /** Whether the connection may carry another request. */
  keepAlive: boolean;
}

const enc = new TextEncoder();
/** Bytes of a request handed to the TLS socket at once (see HttpConnection.#writePieces). */
const WRITE_PIECE = 64 * 1024;
const CRLFCRLF = [13, 10, 13, 10];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SAFE_VALUE = /^[\t\x20-\x7e]*$/;

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

type State =
  | "head"
  | "length"
  | "chunk-size"
  | "chunk-data"
  | "chunk-crlf"
  | "trailer"
  | "close"
  | "done";

/** Incremental parser for one HTTP/1.1 response. */
class ResponseParser {
  state: State = "head";
  status = 0;
  headers = new Map<string, string>();
  keepAlive = true;
  #max: number;
  #isHead: boolean;
  #line: Uint8Array = new Uint8Array(0);
  #body: Uint8Array | null = null;
  #bodyPos = 0;
  #parts: Uint8Array[] = [];
  #total = 0;
  #chunkLeft = 0;
  received = 0;

  #into: Uint8Array | undefined;

  constructor(maxBody: number, isHead: boolean, into?: Uint8Array) {
    this.#max = maxBody;
    this.#isHead = isHead;
    this.#into = into;
  }

  get body(): Uint8Array {
    if (this.#body) return this.#body;
    if (this.#parts.length === 1) return this.#parts[0];
    const out = new Uint8Array(this.#total);
    let o = 0;
    for (const p of this.#parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  #error(msg: string, code = "bad-response"): never {
    throw new HttpProtocolError(msg, this.status, code);
  }

  #appendLine(chunk: Uint8Array, limit: number, what: string): void {
    if (this.#line.length + chunk.length > limit) this.#error(`${what} longer than ${limit} bytes`);
    const n = new Uint8Array(this.#line.length + chunk.length);
    n.set(this.#line);
    n.set(chunk, this.#line.length);
    this.#line = n;
  }

  #addPart(p: Uint8Array): void {
    this.#total += p.length;
    if (this.#total > this.#max) {
      this.#error(`response body exceeds the limit of ${this.#max} bytes`, "response-too-large");
    }
    this.#parts.push(p.slice());
  }

  /** Feed bytes; returns the number consumed (the rest, if any, is beyond this response). */
  feed(chunk: Uint8Array): number {
    this.received += chunk.length;
    let pos = 0;
    while (pos < chunk.length && this.state !== "done") {
      switch (this.state) {
        case "head": {
          // Find CRLFCRLF across the carried prefix and this chunk.
          const prev = this.#line.length;
          const searchFrom = Math.max(0, prev - 3);
          this.#appendLine(chunk.subarray(pos), MAX_RESPONSE_HEAD + chunk.length, "response head");
          const buf = this.#line;
          let end = -1;
          for (let i = searchFrom; i + 3 < buf.length; i++) {
            if (
              buf[i] === CRLFCRLF[0] && buf[i + 1] === CRLFCRLF[1] && buf[i + 2] === CRLFCRLF[2] &&
              buf[i + 3] === CRLFCRLF[3]
            ) {
              end = i;
              break;
            }
          }
          if (end < 0) {
            if (buf.length > MAX_RESPONSE_HEAD) {
              this.#error(`response head longer than ${MAX_RESPONSE_HEAD} bytes`);
            }
            return chunk.length;
          }
          if (end > MAX_RESPONSE_HEAD) {
            this.#error(`response head longer than ${MAX_RESPONSE_HEAD} bytes`);
          }
          const consumedHere = end + 4 - prev;
          pos += consumedHere;
          const head = latin1(buf.subarray(0, end));
          this.#line = new Uint8Array(0);
          this.#parseHead(head);
          break;
        }
        case "length": {
          const n = Math.min(chunk.length - pos, this.#body!.length - this.#bodyPos);
          this.#body!.set(chunk.subarray(pos, pos + n), this.#bodyPos);
          this.#bodyPos += n;
          pos += n;
          if (this.#bodyPos === this.#body!.length) this.state = "done";
          break;
        }
        case "chunk-size":
        case "trailer": {
          const nl = chunk.indexOf(10, pos);
          const stop = nl < 0 ? chunk.length : nl + 1;
          this.#appendLine(chunk.subarray(pos, stop), MAX_CHUNK_LINE, "chunk line");
          pos = stop;
          if (nl < 0) break;
          const line = this.#line;
          this.#line = new Uint8Array(0);
          if (line.length < 2 || line[line.length - 2] !== 13) {
            this.#error("chunk line not ended by CRLF");
          }
          const text = latin1(line.subarray(0, line.length - 2));
          if (this.state === "trailer") {
            if (text === "") this.state = "done";
            break;
          }
          const m = /^([0-9A-Fa-f]{1,12})[ \t]*(;.*)?$/.exec(text);
          if (!m) this.#error("malformed chunk size");
          const size = parseInt(m[1], 16);
          if (size === 0) {
            this.state = "trailer";
          } else {
            if (this.#total + size > this.#max) {
              this.#error(
                `response body exceeds the limit of ${this.#max} bytes`,
                "response-too-large",
              );
            }
            this.#chunkLeft = size;
            this.state = "chunk-data";
          }
          break;
        }
        case "chunk-data": {
          const n = Math.min(chunk.length - pos, this.#chunkLeft);
          this.#addPart(chunk.subarray(pos, pos + n));
          this.#chunkLeft -= n;
          pos += n;
          if (this.#chunkLeft === 0) this.state = "chunk-crlf";
          break;
        }
        case "chunk-crlf": {
          const need = 2 - this.#line.length;
          const take = chunk.subarray(pos, pos + need);
          this.#appendLine(take, 2, "chunk terminator");
          pos += take.length;
          if (this.#line.length === 2) {
            if (this.#line[0] !== 13 || this.#line[1] !== 10) {
              this.#error("chunk data not followed by CRLF");
            }
            this.#line = new Uint8Array(0);
            this.state = "chunk-size";
          }
          break;
        }
        case "close": {
          this.#addPart(chunk.subarray(pos));
          pos = chunk.length;
          break;
        }
      }
    }
    return pos;
  }

  /** The connection ended: completes a close-delimited body, else the response is incomplete. */
  end(): boolean {
    if (this.state === "close") {
      this.state = "done";
      return true;
    }
    return this.state === "done";
  }

  #parseHead(head: string): void {
    const lines = head.split("\r\n");
    const m = /^HTTP\/1\.([01]) ([1-5][0-9]{2})(?: [^\r\n]*)?$/.exec(lines[0]);
    if (!m) this.#error("malformed HTTP status line");
    const minor = m[1];
    const status = Number(m[2]);
    this.status = status;
    const headers = new Map<string, string>();
    for (let i = 1; i < lines.length; i++) {
      const l = lines[i];
      const c = l.indexOf(":");
      if (c <= 0) this.#error("malformed response header line");
      const name = l.slice(0, c);
      if (!TOKEN.test(name)) this.#error("malformed response header name");
      const value = l.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, "");
      if (!SAFE_VALUE.test(value)) this.#error("response header value has control characters");
      const k = name.toLowerCase();
      const prev = headers.get(k);
      headers.set(k, prev === undefined ? value : `${prev}, ${value}`);
    }
    if (status >= 100 && status < 200) {
      // Interim response (e.g. 100 Continue): skip it, parse the next head.
      if (status === 101) this.#error("unexpected 101 Switching Protocols");
      this.headers = new Map();
      this.state = "head";
      return;
    }
    this.headers = headers;
    const conn = (headers.get("connection") ?? "").toLowerCase().split(/[ \t]*,[ \t]*/);
    this.keepAlive = minor === "1" ? !conn.includes("close") : conn.includes("keep-alive");
    const te = headers.get("transfer-encoding");
    const cl = headers.get("content-length");
    if (this.#isHead || status === 204 || status === 304) {
      this.#body = new Uint8Array(0);
      this.state = "done";
    } else if (te !== undefined) {
      if (cl !== undefined) this.#error("response has both Transfer-Encoding and Content-Length");
      const codings = te.toLowerCase().split(/[ \t]*,[ \t]*/);
      if (codings[codings.length - 1] !== "chunked" || codings.length !== 1) {
        this.#error(`unsupported Transfer-Encoding in response`);
      }
      this.state = "chunk-size";
    } else if (cl !== undefined) {
      const vals = cl.split(/[ \t]*,[ \t]*/);
      if (!vals.every((v) => v === vals[0]) || !/^[0-9]{1,15}$/.test(vals[0])) {
        this.#error("malformed Content-Length in response");
      }
      const n = Number(vals[0]);
      if (n > this.#max) {
        this.#error(
          `response body of ${n} bytes exceeds the limit of ${this.#max} bytes`,
          "response-too-large",
        );
      }
      this.#body = this.#into && n <= this.#into.length
        ? this.#into.subarray(0, n)
        : new Uint8Array(n);
      this.state = n === 0 ? "done" : "length";
    } else {
      this.keepAlive = false;
      this.state = "close";
    }
  }
}

/** One keep-alive HTTP/1.1 connection over an already verified socket. */
export class HttpConnection {
  readonly socket: TLSSocket;
  /** Requests completed on this connection. */
  requests = 0;
  /** HTTP bytes written (request heads and bodies) and read (responses) on this connection. */
  bytesSent = 0;
  bytesReceived = 0;
  #parser: ResponseParser | null = null;
  #resolve: ((r: HttpResponse) => void) | null = null;
  #reject: ((e: Error) => void) | null = null;
  #dead = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timeoutMs = 0;
  /** When the current request last made progress (performance.now()). */
  #progress = 0;
  /** Part of the current request's body is not yet handed to the socket. */
  #unsent = false;
  /** Called once when the connection becomes unusable (closed, errored, or protocol trouble). */
  onDead: (() => void) | null = null;
  /** Reads arrive through the shared buffer (tls_reads.ts), not `data` events. */
  #shared = false;
  readonly #onEvent = (d: Uint8Array) => this.#onData(d);

  constructor(socket: TLSSocket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", this.#onEvent);
    this.#readShared();
    socket.on("error", (e: Error) => this.#lost(`connection error: ${e.message}`));
    socket.on("end", () => this.#lost("the server closed the connection"));
    socket.on("close", () => this.#lost("the connection closed"));
  }

  /**
   * Between responses (nothing is read then), move the connection's reads from `data` events
   * to the shared buffer once the process's check has passed (sharedReadsReady: client
   * processes start it, and connections opened before it passed move at their next request).
   */
  #readShared(): void {
    if (this.#shared || !sharedReadsActive() || this.socket.destroyed) return;
    this.socket.removeListener("data", this.#onEvent);
    this.#shared = readIntoShared(this.socket, (view) => {
      this.#onData(view); // copies what it keeps (ResponseParser)
      return true;
    });
    if (!this.#shared) this.socket.on("data", this.#onEvent);
  }

  /** False once the connection has closed or failed. */
  get usable(): boolean {
    return !this.#dead && !this.socket.destroyed && this.socket.readyState === "open";
  }

  destroy(): void {
    this.#markDead();
    this.socket.destroy();
  }

  #markDead(): void {
    if (this.#dead) return;
    this.#dead = true;
    const cb = this.onDead;
    this.onDead = null;
    cb?.();
  }

  /**
   * Progress: (re)start the idle timeout, which fires when neither side made progress for
   * timeoutMs. One timer per request, which looks at the time of the last progress when it
   * fires (not a new timer for every chunk of a body).
   */
  #arm(): void {
    this.#progress = performance.now();
    if (this.#timer !== undefined) return;
    const fire = () => {
      const idle = performance.now() - this.#progress;
      if (idle < this.#timeoutMs) {
        this.#timer = setTimeout(fire, this.#timeoutMs - idle);
        return;
      }
      this.#timer = undefined;
      this.#finish(new HttpTimeoutError(`no response within ${this.#timeoutMs} ms`));
      this.destroy();
    };
    this.#timer = setTimeout(fire, this.#timeoutMs);
  }

  #finish(e: Error | null, r?: HttpResponse): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const res = this.#resolve;
    const rej = this.#reject;
    this.#resolve = this.#reject = null;
    this.#parser = null;
    if (e) rej?.(e);
    else res?.(r!);
  }

  #lost(why: string): void {
    const p = this.#parser;
    if (p && p.end()) {
      // Close-delimited body complete.
      this.#finish(null, { status: p.status, headers: p.headers, body: p.body, keepAlive: false });
    } else if (p) {
      this.#finish(new ConnectionLostError(why, p.received === 0));
    }
    this.#markDead();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  #onData(d: Uint8Array): void {
    // Nothing is parsed after destroy(): a request given up on (its deadline) may have lent
    // its caller's buffer (HttpRequest.into), which is the caller's again.
    if (this.#dead) return;
    const p = this.#parser;
    if (!p) {
      // Bytes while idle: the server is not speaking HTTP/1.1 as expected.
      this.destroy();
      return;
    }
    this.#arm();
    this.bytesReceived += d.length;
    let used: number;
    try {
      used = p.feed(d);
    } catch (e) {
      this.#finish(e as Error);
      this.destroy();
      return;
    }
    if (p.state === "done") {
      this.requests++;
      // A response before the whole request was handed to the socket (an early error): the
      // rest is not sent, so the server's framing of this connection is lost with it.
      const keep = p.keepAlive && used === d.length && !this.#unsent;
      this.#finish(null, { status: p.status, headers: p.headers, body: p.body, keepAlive: keep });
      if (!keep) this.destroy();
    }
  }

  /** Send one request and read its response. Only one request at a time. */
  request(req: HttpRequest): Promise<HttpResponse> {
    if (this.#parser) return Promise.reject(new Error("HttpConnection is busy"));
    if (!this.usable) {
      return Promise.reject(new ConnectionLostError("the connection is closed", true));
    }
    let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${req.host}\r\n`;
    for (const [k, v] of req.headers) {
      if (!TOKEN.test(k) || !SAFE_VALUE.test(v)) {
        return Promise.reject(new TypeError(`invalid request header ${k}`));
      }
      head += `${k}: ${v}\r\n`;
    }
    if (
      req.body !== undefined || req.method === "POST" || req.method === "PUT" ||
      req.method === "PATCH"
    ) {
      head += `Content-Length: ${req.body?.length ?? 0}\r\n`;
    }
    head += "\r\n";
    this.#readShared();
    return new Promise<HttpResponse>((resolve, reject) => {
      this.#parser = new ResponseParser(req.maxResponseBytes, req.method === "HEAD", req.into);
      this.#resolve = resolve;
      this.#reject = reject;
      this.#timeoutMs = req.timeoutMs;
      this.#arm();
      const p = this.#parser;
      const headBytes = enc.encode(head);
      const body = req.body ?? new Uint8Array(0);
      this.bytesSent += headBytes.length + body.length;
      // The head with the start of the body, then the rest WRITE_PIECE bytes at a time, each
      // written when the one before has gone out (writePieces).
      const first = Math.min(body.length, Math.max(0, WRITE_PIECE - headBytes.length));
      const all = new Uint8Array(headBytes.length + first);
      all.set(headBytes);
      all.set(body.subarray(0, first), headBytes.length);
      this.#writePieces(p, all, body, first);
    });
  }

  /**
   * Write `lead`, then `body` from `from` on in pieces of WRITE_PIECE bytes, each once the one
   * before has been written, while `p` is still this connection's response. The TLS layer
   * (Deno's node:tls over rustls) accepts about 64 KiB of plaintext per write and keeps a
   * fresh copy of the rest, again after every 64 KiB it sends: a 2 MiB write cost ~30 such
   * copies (docs/performance.md §9.7); a piece at a time costs none.
   */
  #writePieces(p: ResponseParser, lead: Uint8Array, body: Uint8Array, from: number): void {
    const s = this.socket;
    let off = from;
    this.#unsent = off < body.length;
    const next = (err?: Error | null) => {
      if (err || this.#parser !== p || s.destroyed) return;
      this.#arm();
      if (off >= body.length) return;
      const end = Math.min(body.length, off + WRITE_PIECE);
      const piece = body.subarray(off, end);
      off = end;
      if (off >= body.length) this.#unsent = false;
      s.write(piece, next);
    };
    s.write(lead, next);
  }
}
