/**
 * Reading node:tls sockets through one shared buffer: the storage server's and
 * the storage client's receive path.
 *
 * Deno's node:tls hands every read to JavaScript as a fresh ArrayBuffer (zeroed,
 * then filled byte by byte) wrapped in a Buffer and a stream `data` event; a
 * bare receiver spent 6.7–9.3 ms of CPU and 363 page faults per MB on that
 * (docs/performance.md §9.10). Node's static-buffer reads (the `onread`
 * option: a buffer and a callback) avoid all of it: the TLS layer decrypts
 * straight into the buffer and calls the callback, which must use the bytes
 * before it returns. Here one buffer serves every socket of the process (a
 * callback always runs to completion before the next read is delivered).
 *
 * A server socket cannot be given `onread` (tls.createServer makes it), so the
 * two fields net.Socket keeps the option in are set on it directly, found by
 * their symbols' descriptions. Because that leans on the runtime's internals,
 * `sharedReadsReady()` first checks, once per process, over a loopback TLS
 * connection of its own in both directions, that the callback really receives
 * the bytes sent and in the shared buffer. Until that check has passed (or
 * wherever it fails) sockets are read through `data` events as before.
 */
import tls from "node:tls";
import type { TLSSocket } from "node:tls";
import { generateTlsIdentity } from "./tls.ts";

/** The shared buffer: the most one read delivers. */
const SHARED_SIZE = 256 * 1024;
/** The check gives up (and reads stay on `data` events) after this long. */
const PROBE_TIMEOUT_MS = 10_000;
const PROBE_BYTES = 200_000;

let shared: Uint8Array | null = null;
let verdict: boolean | undefined;
let probing: Promise<boolean> | null = null;
let forced: boolean | null = null;

/**
 * Called with each read's bytes: a view of the shared buffer, valid only until
 * the call returns. Return false to stop reading until the socket is resumed.
 */
export type OnBytes = (view: Uint8Array) => boolean;

/** For tests: force shared reads on (where the runtime has them) or off; null: the check decides. */
export function forceSharedReads(on: boolean | null): void {
  forced = on;
}

/** Whether shared reads are in use now (false until the check has passed). */
export function sharedReadsActive(): boolean {
  return forced ?? verdict === true;
}

/**
 * Resolves, once the once-per-process check is done, to whether sockets may be
 * read through the shared buffer. A storage server awaits this before it
 * listens; a client process starts it beside its command, and its connections
 * opened before it passed move over at their next request (http1.ts).
 */
export function sharedReadsReady(): Promise<boolean> {
  if (forced !== null) return Promise.resolve(forced);
  probing ??= probe().then((ok) => (verdict = ok), () => (verdict = false));
  return probing;
}

interface BufferedSocket {
  _handle?: { useUserBuffer?: (buf: Uint8Array) => void };
  [k: symbol]: unknown;
}

/**
 * Deliver `socket`'s reads to `onBytes` through the shared buffer, from now on.
 * Only for a socket that has read nothing yet (no `data` listener, nothing
 * buffered): bytes buffered before a switch could not be kept in order with the
 * reads after it. Returns false, changing nothing, for such a socket or where
 * the runtime lacks static-buffer reads; the caller then reads `data` events.
 */
export function readIntoShared(socket: TLSSocket, onBytes: OnBytes): boolean {
  if (socket.readableLength > 0 || socket.listenerCount("data") > 0) return false;
  const s = socket as unknown as BufferedSocket;
  const symbols = Object.getOwnPropertySymbols(s);
  const kBuffer = symbols.find((k) => k.description === "kBuffer");
  const kBufferCb = symbols.find((k) => k.description === "kBufferCb");
  const handle = s._handle;
  if (!kBuffer || !kBufferCb || typeof handle?.useUserBuffer !== "function") return false;
  shared ??= new Uint8Array(SHARED_SIZE);
  const buf = shared;
  s[kBuffer] = buf;
  s[kBufferCb] = (n: number, b: Uint8Array) => onBytes((b ?? buf).subarray(0, n));
  handle.useUserBuffer(buf);
  socket.resume(); // flowing, so that the end of the stream is reported
  return true;
}

/** The check: 200 kB each way over loopback, every byte compared, through the shared buffer. */
async function probe(): Promise<boolean> {
  const id = await generateTlsIdentity(["127.0.0.1"]);
  const pattern = (off: number, n: number) => {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = (off + i) % 251;
    return b;
  };
  const sockets: TLSSocket[] = [];
  const server = tls.createServer({ cert: id.certPem, key: id.keyPem });
  try {
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
      Deno.unrefTimer(timer);
      let sides = 0;
      const receiver = (socket: TLSSocket) => {
        let got = 0;
        let ok = true;
        const installed = readIntoShared(socket, (view) => {
          if (view.buffer !== shared?.buffer) ok = false;
          for (let i = 0; i < view.length && ok; i++) if (view[i] !== (got + i) % 251) ok = false;
          got += view.length;
          if (!ok || got > PROBE_BYTES) {
            clearTimeout(timer);
            resolve(false);
          } else if (got === PROBE_BYTES && ++sides === 2) {
            clearTimeout(timer);
            resolve(true);
          }
          return true;
        });
        if (!installed) {
          clearTimeout(timer);
          resolve(false);
        }
      };
      const send = (socket: TLSSocket) => {
        for (let off = 0; off < PROBE_BYTES; off += 70_001) {
          socket.write(pattern(off, Math.min(70_001, PROBE_BYTES - off)));
        }
      };
      server.on("secureConnection", (socket: TLSSocket) => {
        sockets.push(socket);
        socket.on("error", () => {});
        receiver(socket);
        send(socket);
      });
      server.on("error", () => resolve(false));
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as { port: number }).port;
        const client = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false });
        sockets.push(client);
        client.on("error", () => resolve(false));
        client.once("secureConnect", () => {
          receiver(client);
          send(client);
        });
      });
    });
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}
