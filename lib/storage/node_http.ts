/**
 * HTTPS for the storage server with `node:https`: an adapter from node's
 * IncomingMessage / ServerResponse to the Web Request -> Response handler of
 * server.ts, and the server itself with TCP_NODELAY on every accepted socket.
 *
 * Why not Deno.serve: over TLS it leaves Nagle's algorithm on, and a response
 * written in two or more writes (Deno.serve writes the head apart from any
 * body over ~400 bytes) waits for the client's delayed ACK, ~40 ms on Linux,
 * on every such response (docs/performance.md §5.1). Deno offers no way to set
 * TCP_NODELAY there; node:https `noDelay: true` sets it on accepted sockets.
 *
 * Request bodies declared (Content-Length) at most 64 KiB are read whole
 * before the handler runs (bounded, and cheaper per request); larger or
 * chunked ones stream into the handler with backpressure (the socket is paused
 * while the handler has 64 KiB unread), so the handler's limits apply while
 * reading. A response body that ends within 64 KiB (the handler's CBOR
 * answers, small share reads) goes out with Content-Length in one res.end();
 * longer ones stream out with backpressure ('drain'). A request whose body the
 * handler did not read to the end gets `Connection: close`.
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";

/** Bytes of a request body buffered ahead of the handler before the socket is paused. */
const REQUEST_HIGH_WATER = 64 * 1024;
/** A response body up to this size is collected and sent in one write with Content-Length. */
const COLLECT_LIMIT = 64 * 1024;

export type WebHandler = (req: Request) => Promise<Response>;

export interface NodeHttpsOptions {
  certPem: string;
  keyPem: string;
  handler: WebHandler;
  /** Scheme and authority given to request URLs (default https://127.0.0.1). */
  origin?: string;
  /** Where failures outside any one request's handler are reported (no secrets, no paths). */
  log?: (line: string) => void;
}

/** The request's body as a byte stream that pauses the socket while the reader is behind. */
function bodyStream(req: IncomingMessage): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(ctrl) {
      req.on("data", (d: Uint8Array) => {
        ctrl.enqueue(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
        if ((ctrl.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once("end", () => ctrl.close());
      req.once("error", (e) => ctrl.error(e));
      // A connection lost mid-body: the reader sees an error, not a short body.
      req.once("close", () => {
        if (!req.complete) {
          try {
            ctrl.error(new Error("the client closed the connection during the request body"));
          } catch { /* already closed */ }
        }
      });
    },
    pull() {
      if (req.isPaused()) req.resume();
    },
    cancel() {
      // The handler refused the body: stop reading; the response closes the connection.
      req.pause();
    },
  }, new ByteLengthQueuingStrategy({ highWaterMark: REQUEST_HIGH_WATER }));
}

/** Bodies declared (Content-Length) at most this size are read whole before the handler runs. */
const SMALL_BODY = 64 * 1024;

/** The whole body of `req` (declared `length` bytes, at most SMALL_BODY); null if cut short. */
function smallBody(req: IncomingMessage, length: number): Promise<Uint8Array | null> {
  return new Promise((resolve) => {
    const out = new Uint8Array(length);
    let got = 0;
    req.on("data", (d: Uint8Array) => {
      // node's parser never passes more than Content-Length; checked anyway.
      if (got + d.length <= length) out.set(d, got);
      got += d.length;
    });
    req.once("end", () => resolve(got === length ? out : null));
    req.once("error", () => resolve(null));
    req.once("close", () => resolve(req.complete && got === length ? out : null));
  });
}

/**
 * A Web Request for node's `req`: method, path, headers in order, body (none
 * for GET and HEAD; read whole when Content-Length declares at most 64 KiB,
 * otherwise streamed with backpressure), and a signal that aborts when the
 * client goes away. `origin` is the scheme and authority the URL is given (the
 * handler reads only the path). Resolves null for a request target that is not
 * a path, or a small body the client did not finish sending.
 */
export async function toWebRequest(
  req: IncomingMessage,
  origin: string,
  signal: AbortSignal,
): Promise<Request | null> {
  const target = req.url ?? "";
  if (!target.startsWith("/")) return null;
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
  const method = req.method ?? "GET";
  let body: BodyInit | null = null;
  if (method === "GET" || method === "HEAD") {
    req.resume(); // discard whatever a GET carries
  } else {
    const cl = req.headers["content-length"];
    const length = cl !== undefined && /^[0-9]{1,9}$/.test(cl) ? Number(cl) : -1;
    if (length >= 0 && length <= SMALL_BODY && req.headers["transfer-encoding"] === undefined) {
      if (length === 0) req.resume();
      else {
        const b = await smallBody(req, length);
        if (b === null) return null;
        body = b as Uint8Array<ArrayBuffer>;
      }
    } else body = bodyStream(req);
  }
  return new Request(origin + target, {
    method,
    headers,
    body,
    signal,
    duplex: "half",
  } as RequestInit);
}

/** Resolves true once `res` can take more bytes, false if the connection closed first. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      res.off("drain", onDrain);
      res.off("close", onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on("drain", onDrain);
    res.on("close", onClose);
  });
}

/**
 * Write `response` to `res`. A body that ends within COLLECT_LIMIT bytes goes
 * out with Content-Length in one write; a longer one streams (with the
 * handler's Content-Length, else chunked), waiting for 'drain' whenever the
 * socket is full. A body that fails midway cuts the connection, so the client
 * sees a truncated response rather than a short one.
 */
export async function sendWebResponse(
  res: ServerResponse,
  response: Response,
  closeAfter: boolean,
): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => (headers[k] = v));
  if (closeAfter) headers["connection"] = "close";
  const status = response.status;
  if (!response.body || status === 204 || status === 304) {
    await response.body?.cancel().catch(() => {});
    if (status !== 204 && status !== 304) headers["content-length"] = "0";
    res.writeHead(status, headers);
    res.end();
    return;
  }
  const reader = response.body.getReader();
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
      const body = first.length === 1 ? first[0] : concat(first, size);
      headers["content-length"] = String(body.length);
      res.writeHead(status, headers);
      res.end(body);
      return;
    }
    res.writeHead(status, headers);
    for (const c of first) {
      if (!res.write(c) && !(await drained(res))) throw new Error("connection closed");
    }
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      if (!res.write(r.value) && !(await drained(res))) throw new Error("connection closed");
    }
    res.end();
  } catch {
    await reader.cancel().catch(() => {});
    res.destroy();
  }
}

function concat(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A node:https server (HTTP/1.1 only, TCP_NODELAY, no idle or request time
 * limit, as Deno.serve) that answers every request with `handler`. Not
 * listening yet: call `listen` on it.
 */
export function createNodeHttpsServer(opts: NodeHttpsOptions): https.Server {
  const log = opts.log ?? ((l: string) => console.error(l));
  // The handler reads only the path of a request's URL; the origin is nominal.
  const origin = opts.origin ?? "https://127.0.0.1";
  const server = https.createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    noDelay: true,
    ALPNProtocols: ["http/1.1"],
    // Idle keep-alive connections stay open until the client closes them (the
    // storage client closes its idle connections after 15 s): a server-side
    // timeout would race with a client's next request on that connection.
    keepAliveTimeout: 0,
    requestTimeout: 0,
  }, (req, res) => {
    // Date is not needed by the protocol; leave it out (bytes on the wire).
    res.sendDate = false;
    const aborter = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) aborter.abort();
    });
    void (async () => {
      const request = await toWebRequest(req, origin, aborter.signal);
      if (!request) {
        if (!res.destroyed) {
          res.writeHead(400, { "content-length": "0", connection: "close" });
          res.end();
        }
        return;
      }
      let response: Response;
      try {
        response = await opts.handler(request);
      } catch (e) {
        log(`storage server: handler failed: ${(e as Error)?.message ?? e}`);
        res.destroy();
        return;
      }
      // A body the handler did not read to the end (a refusal): close the
      // connection after the response instead of reading the rest.
      const unread = !req.complete;
      await sendWebResponse(res, response, unread);
    })().catch((e) => {
      log(`storage server: response failed: ${(e as Error)?.message ?? e}`);
      res.destroy();
    });
  });
  server.on("clientError", (_e, socket) => {
    // Malformed HTTP: answer 400 if the socket can still take it, then close.
    try {
      if (socket.writable) {
        socket.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
      } else socket.destroy();
    } catch { /* gone */ }
  });
  server.on("tlsClientError", () => {/* a failed handshake concerns that client only */});
  return server;
}
