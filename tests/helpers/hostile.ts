/**
 * A hostile-server harness: real storage server processes behind scriptable
 * misbehaviour, for tests of everything that talks to servers.
 *
 * HostileProxy terminates TLS with the real server's own key and certificate
 * (the test created the node directory, so it can read `tls-cert.pem` and
 * `private/tls-key.pem`), so clients that pin the server's key connect to the
 * proxy as if it were the server. It listens on its own loopback port;
 * `proxy.url` is the server's storage URL with that port as its only location
 * hint. Each HTTP/1.1 request is parsed, recorded (method, path, headers,
 * body) and, unless a rule says otherwise, forwarded over a pinned connection
 * to the real server; the response is sent back with a Content-Length body.
 *
 * Per request, `proxy.rule` (set and replace it at any time) chooses a Behaviour:
 *
 * | behaviour                      | effect |
 * | ------------------------------ | ------ |
 * | `{ drip: { intervalMs } }`     | forward, then write the response one byte per interval (default 1000 ms) |
 * | `{ stallAfter: n }`            | forward, write the first n bytes of the response, then nothing (socket left open) |
 * | `{ corrupt: (body) => body }`  | forward, replace the response body with what the function returns |
 * | `{ rewrite: (req) => req }`    | forward the request as rewritten (e.g. a body of garbage: the server stores it and acknowledges) |
 * | `{ respond: { status, ... } }` | do not forward; answer this (e.g. an older response captured earlier) |
 * | `{ withhold: true }`           | do not forward; share lists answer `[]` (CBOR), everything else 404 |
 * | `{ blackhole: true }`          | do not forward, never answer (the socket stays open) |
 * | `{ forward: false, ack }`      | do not forward; answer with `ack` (a server that acknowledges and stores nothing) |
 *
 * A rule may also return a Promise (e.g. to wait for a signal) and may look at
 * every recorded request so far (`proxy.requests`). `proxy.useIdentity(other)`
 * makes the proxy present another server's certificate (clients pinning this
 * server then refuse it). `send(target, request)` replays a recorded request
 * (its headers, e.g. a captured upload secret, and body) to another server
 * with that server's own Authorization, as a grid member that knows every
 * storage URL could.
 *
 * `tcpBlackhole()` is a listening TCP socket that accepts connections and
 * never says a byte (no TLS handshake): a server whose packets are dropped.
 *
 * Everything here runs in the test process; `close()` ends every socket and
 * timer it made.
 */
import tls from "node:tls";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { encodeCbor } from "../../lib/codec/mod.ts";
import { connectPinned, HttpConnection } from "../../lib/storage/http1.ts";
import {
  formatStorageUrl,
  parseLocationHint,
  parseStorageUrl,
  type StorageUrl,
} from "../../lib/storage/mod.ts";
import { base32Encode } from "../../lib/codec/mod.ts";
import { AUTH_SCHEME } from "../../lib/storage/protocol.ts";

export interface RecordedRequest {
  method: string;
  path: string;
  /** Lowercased names, in order. */
  headers: [string, string][];
  body: Uint8Array;
  /** The i-th request this proxy received (0-based). */
  index: number;
}

export interface CannedResponse {
  status: number;
  headers?: [string, string][];
  body?: Uint8Array;
}

export type Behaviour =
  | { drip: { intervalMs?: number } }
  | { stallAfter: number }
  | { corrupt: (body: Uint8Array, req: RecordedRequest) => Uint8Array }
  | { rewrite: (req: RecordedRequest) => RecordedRequest }
  | { respond: CannedResponse }
  | { withhold: true }
  | { blackhole: true }
  | { forward: false; ack: CannedResponse }
  | { pass: true };

export type Rule = (
  req: RecordedRequest,
  proxy: HostileProxy,
) => Behaviour | undefined | Promise<Behaviour | undefined>;

export interface Identity {
  certPem: string;
  keyPem: string;
}

/** The TLS identity of a storage node directory made by the test. */
export async function identityOf(nodeDir: string): Promise<Identity> {
  return {
    certPem: await Deno.readTextFile(`${nodeDir}/tls-cert.pem`),
    keyPem: await Deno.readTextFile(`${nodeDir}/private/tls-key.pem`),
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function findHeadEnd(b: Uint8Array): number {
  for (let i = 3; i < b.length; i++) {
    if (b[i - 3] === 13 && b[i - 2] === 10 && b[i - 1] === 13 && b[i] === 10) return i + 1;
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

const REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  204: "No Content",
  206: "Partial Content",
  404: "Not Found",
  502: "Bad Gateway",
};

function serialize(r: CannedResponse): Uint8Array {
  const body = r.body ?? new Uint8Array(0);
  let head = `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? "Status"}\r\n`;
  for (const [k, v] of r.headers ?? []) {
    const lk = k.toLowerCase();
    if (lk === "content-length" || lk === "transfer-encoding" || lk === "connection") continue;
    head += `${k}: ${v}\r\n`;
  }
  if (r.status !== 204) head += `Content-Length: ${body.length}\r\n`;
  head += "\r\n";
  return r.status === 204 ? enc.encode(head) : concat(enc.encode(head), body);
}

/** A pinned HTTP/1.1 connection to one real server (one request at a time). */
class Upstream {
  #conn: HttpConnection | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  constructor(readonly url: StorageUrl) {}

  request(req: { method: string; path: string; headers: [string, string][]; body?: Uint8Array }) {
    const run = this.#queue.then(async () => {
      if (!this.#conn || !this.#conn.usable) {
        const h = parseLocationHint(this.url.locations[0]);
        const socket = await connectPinned({
          host: h.host,
          port: h.port,
          pin: this.url.pin,
          timeoutMs: 10_000,
        });
        this.#conn = new HttpConnection(socket);
      }
      const headers = req.headers.filter(([k]) =>
        !["host", "content-length", "connection", "transfer-encoding"].includes(k)
      );
      return await this.#conn.request({
        method: req.method,
        path: req.path,
        host: this.url.locations[0],
        headers,
        body: req.body && req.body.length > 0 ? req.body : undefined,
        maxResponseBytes: 512 * 1024 * 1024,
        timeoutMs: 60_000,
      });
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  close(): void {
    this.#conn?.destroy();
    this.#conn = null;
  }
}

/** A TLS-terminating, misbehaving proxy in front of one real storage server. */
export class HostileProxy {
  readonly requests: RecordedRequest[] = [];
  rule: Rule | null = null;
  readonly port: number;
  /** The server's storage URL with the proxy's address as its only location hint. */
  readonly url: string;
  readonly upstreamUrl: StorageUrl;
  #server: tls.Server;
  #sockets = new Set<TLSSocket>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #upstreams: Upstream[] = [];
  #closed = false;

  private constructor(server: tls.Server, port: number, upstreamUrl: StorageUrl) {
    this.#server = server;
    this.port = port;
    this.upstreamUrl = upstreamUrl;
    this.url = formatStorageUrl({ ...upstreamUrl, locations: [`127.0.0.1:${port}`] });
  }

  /**
   * Put a proxy in front of the server whose node directory is `nodeDir` and URL is `url`
   * (the real server's address). `port`: listen there (default: a free port), e.g. the port
   * the server announces, after moving the real server to another one.
   */
  static async start(
    nodeDir: string,
    url: string,
    rule: Rule | null = null,
    opts: { port?: number } = {},
  ): Promise<HostileProxy> {
    const id = await identityOf(nodeDir);
    const upstreamUrl = parseStorageUrl(url);
    let self: HostileProxy | null = null;
    const server = tls.createServer(
      { key: id.keyPem, cert: id.certPem, ALPNProtocols: ["http/1.1"] },
      (socket: TLSSocket) => self!.#accept(socket),
    );
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(
        opts.port ?? 0,
        "127.0.0.1",
        () => resolve((server.address() as net.AddressInfo).port),
      );
    });
    self = new HostileProxy(server, port, upstreamUrl);
    self.rule = rule;
    return self;
  }

  /** Present another identity's certificate from now on (new connections). */
  useIdentity(id: Identity): void {
    this.#server.setSecureContext({ key: id.keyPem, cert: id.certPem });
  }

  /** Requests recorded so far whose path contains `part` (and method, if given). */
  recorded(part: string, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.includes(part) && (!method || r.method === method));
  }

  #accept(socket: TLSSocket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const upstream = new Upstream(this.upstreamUrl);
    this.#upstreams.push(upstream);
    socket.on("close", () => upstream.close());
    let buf: Uint8Array = new Uint8Array(0);
    let busy = false;
    const pump = async () => {
      if (busy) return;
      busy = true;
      try {
        for (;;) {
          const end = findHeadEnd(buf);
          if (end < 0) return;
          const lines = dec.decode(buf.subarray(0, end - 4)).split("\r\n");
          const [method, path] = lines[0].split(" ");
          const headers: [string, string][] = lines.slice(1).map((l) => {
            const i = l.indexOf(":");
            return [l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()];
          });
          const cl = Number(headers.find(([k]) => k === "content-length")?.[1] ?? 0);
          if (buf.length < end + cl) return;
          const body = buf.slice(end, end + cl);
          buf = buf.slice(end + cl);
          const req: RecordedRequest = {
            method,
            path,
            headers,
            body,
            index: this.requests.length,
          };
          this.requests.push(req);
          const keepGoing = await this.#handle(socket, upstream, req);
          if (!keepGoing) return;
        }
      } catch {
        socket.destroy();
      } finally {
        busy = false;
      }
    };
    socket.on("data", (d: Uint8Array) => {
      buf = concat(buf, new Uint8Array(d));
      pump();
    });
  }

  /** Answer one request; false when the connection should read nothing more. */
  async #handle(socket: TLSSocket, upstream: Upstream, req: RecordedRequest): Promise<boolean> {
    const b = (await this.rule?.(req, this)) ?? { pass: true as const };
    if ("blackhole" in b) return false;
    if ("respond" in b) return this.#write(socket, serialize(b.respond));
    if ("ack" in b) return this.#write(socket, serialize(b.ack));
    if ("withhold" in b) {
      const list = req.method === "GET" && req.path.endsWith("/shares");
      return this.#write(
        socket,
        serialize(
          list
            ? { status: 200, headers: [["Content-Type", "application/cbor"]], body: encodeCbor([]) }
            : {
              status: 404,
              headers: [["Content-Type", "application/cbor"]],
              body: encodeCbor({ error: "not-found", message: "no such share" }),
            },
        ),
      );
    }
    let res: CannedResponse;
    try {
      const r = await upstream.request("rewrite" in b ? b.rewrite(req) : req);
      res = { status: r.status, headers: [...r.headers], body: r.body };
    } catch {
      res = { status: 502 };
    }
    if ("corrupt" in b) res = { ...res, body: b.corrupt(res.body ?? new Uint8Array(0), req) };
    const bytes = serialize(res);
    if ("stallAfter" in b) {
      socket.write(bytes.subarray(0, b.stallAfter));
      return false;
    }
    if ("drip" in b) {
      await this.#drip(socket, bytes, b.drip.intervalMs ?? 1000);
      return true;
    }
    return this.#write(socket, bytes);
  }

  #write(socket: TLSSocket, bytes: Uint8Array): boolean {
    if (!socket.destroyed) socket.write(bytes);
    return true;
  }

  async #drip(socket: TLSSocket, bytes: Uint8Array, intervalMs: number): Promise<void> {
    for (let i = 0; i < bytes.length; i++) {
      if (socket.destroyed || this.#closed) return;
      socket.write(bytes.subarray(i, i + 1));
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          r();
        }, intervalMs);
        this.#timers.add(t);
      });
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    for (const u of this.#upstreams) u.close();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

/**
 * Send a recorded request to another server (its own swissnum in the
 * Authorization header, everything else as recorded). Resolves with status and body.
 */
export async function send(
  targetUrl: string,
  req: { method: string; path: string; headers: [string, string][]; body?: Uint8Array },
): Promise<{ status: number; body: Uint8Array }> {
  const url = parseStorageUrl(targetUrl);
  const up = new Upstream(url);
  try {
    const headers = req.headers.filter(([k]) => k !== "authorization");
    headers.unshift(["Authorization", `${AUTH_SCHEME} ${base32Encode(url.swissnum)}`]);
    const r = await up.request({ ...req, headers });
    return { status: r.status, body: r.body };
  } finally {
    up.close();
  }
}

/** A loopback TCP listener that accepts connections and never answers (no TLS handshake). */
export async function tcpBlackhole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port));
  });
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A storage URL whose only location hint is `port` on loopback (pin and swissnum from `url`). */
export function urlAt(url: string, port: number): string {
  return formatStorageUrl({ ...parseStorageUrl(url), locations: [`127.0.0.1:${port}`] });
}
