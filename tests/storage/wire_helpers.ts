/**
 * Raw wire access for the storage hardening tests: a node:tls connection
 * (optionally from a chosen loopback source address) that writes bytes as
 * given and collects what the server sends (with a hand-written HTTP/1.1
 * request and response reader, so every byte and the connection's fate are
 * visible), and process memory readings.
 */
import net from "node:net";
import tls from "node:tls";

const enc = new TextEncoder();

/** One HTTP/1.1 response as read off the wire. */
export interface Reply {
  status: number;
  head: string;
  body: Uint8Array;
}

/** One TLS connection speaking whatever bytes the test writes. */
export class RawTls {
  #buf = new Uint8Array(0);
  #wake: (() => void) | null = null;
  ended = false;
  private constructor(readonly sock: tls.TLSSocket) {
    sock.on("data", (d: Uint8Array) => {
      const b = new Uint8Array(this.#buf.length + d.length);
      b.set(this.#buf);
      b.set(d, this.#buf.length);
      this.#buf = b;
      this.#wake?.();
    });
    const end = () => {
      this.ended = true;
      this.#wake?.();
    };
    sock.on("end", end);
    sock.on("close", end);
    sock.on("error", end);
  }

  static async open(
    port: number,
    opts: { host?: string; localAddress?: string; timeoutMs?: number } = {},
  ): Promise<RawTls> {
    const tcp = net.connect({
      host: opts.host ?? "127.0.0.1",
      port,
      localAddress: opts.localAddress,
    });
    tcp.setNoDelay(true);
    const sock = tls.connect({
      socket: tcp,
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    sock.setNoDelay(true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => {
          sock.destroy();
          reject(new Error("TLS handshake timed out"));
        }, opts.timeoutMs ?? 20_000);
        sock.once("secureConnect", () => resolve());
        sock.once("error", reject);
        sock.once("close", () => reject(new Error("closed during the handshake")));
      });
    } finally {
      clearTimeout(timer);
    }
    return new RawTls(sock);
  }

  /** A plain TCP connection (no TLS), e.g. to leave a handshake unstarted or half sent. */
  static async tcp(
    port: number,
    opts: { host?: string; localAddress?: string } = {},
  ): Promise<net.Socket> {
    const s = net.connect({
      host: opts.host ?? "127.0.0.1",
      port,
      localAddress: opts.localAddress,
    });
    await new Promise<void>((resolve, reject) => {
      s.once("connect", () => resolve());
      s.once("error", reject);
    });
    return s;
  }

  send(method: string, path: string, headers: Record<string, string> = {}, body?: Uint8Array) {
    let head = `${method} ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    if (body) head += `content-length: ${body.length}\r\n`;
    this.sock.write(enc.encode(head + "\r\n"));
    if (body) this.sock.write(body);
  }
  /** The next response (Content-Length or chunked body); null if the connection ended first. */
  async reply(): Promise<Reply | null> {
    for (;;) {
      const text = new TextDecoder("latin1").decode(this.#buf);
      const e = text.indexOf("\r\n\r\n");
      if (e >= 0) {
        const head = text.slice(0, e);
        const status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (cl && this.#buf.length >= e + 4 + Number(cl[1])) {
          const body = this.#buf.slice(e + 4, e + 4 + Number(cl[1]));
          this.#buf = this.#buf.slice(e + 4 + Number(cl[1]));
          return { status, head, body };
        }
        if (!cl && /transfer-encoding: *chunked/i.test(head)) {
          const parts: number[] = [];
          let p = e + 4;
          let complete = false;
          for (;;) {
            const crlf = text.indexOf("\r\n", p);
            if (crlf < 0) break;
            const n = parseInt(text.slice(p, crlf), 16);
            if (text.length < crlf + 2 + n + 2) break;
            if (n === 0) {
              complete = true;
              p = crlf + 4;
              break;
            }
            for (let i = 0; i < n; i++) parts.push(this.#buf[crlf + 2 + i]);
            p = crlf + 2 + n + 2;
          }
          if (complete) {
            this.#buf = this.#buf.slice(p);
            return { status, head, body: new Uint8Array(parts) };
          }
        }
        if (!cl && status === 204) {
          this.#buf = this.#buf.slice(e + 4);
          return { status, head, body: new Uint8Array(0) };
        }
      }
      if (this.ended) return null;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }
  /** The raw bytes received up to and including `marker` (latin1), consumed. */
  async rawUntil(marker: string): Promise<string> {
    for (;;) {
      const text = new TextDecoder("latin1").decode(this.#buf);
      const i = text.indexOf(marker);
      if (i >= 0) {
        this.#buf = this.#buf.slice(i + marker.length);
        return text.slice(0, i + marker.length);
      }
      if (this.ended) return text;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }
  write(text: string | Uint8Array): void {
    this.sock.write(typeof text === "string" ? enc.encode(text) : text);
  }

  /** Everything received and not yet consumed by `reply` or `rawUntil`, as latin1 text. */
  text(): string {
    return new TextDecoder("latin1").decode(this.#buf);
  }

  /** Wait until the received text contains `marker` or the connection ends (or `ms` pass). */
  async waitFor(marker: string, ms = 20_000): Promise<string> {
    const t = Date.now() + ms;
    while (!this.text().includes(marker) && !this.ended && Date.now() < t) {
      await new Promise<void>((r) => {
        this.#wake = r;
        setTimeout(r, 50);
      });
      this.#wake = null;
    }
    return this.text();
  }

  /** Resolves true once the server has closed the connection (false after `ms`). */
  async closedWithin(ms: number): Promise<boolean> {
    const t = Date.now() + ms;
    while (!this.ended && Date.now() < t) await new Promise((r) => setTimeout(r, 10));
    return this.ended;
  }

  close(): void {
    this.sock.destroy();
  }
}

/** A `key: value` figure of /proc/PID/status in kB (VmRSS, VmHWM, ...). */
export async function procStatusKb(pid: number, key: string): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text);
  if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
  return Number(m[1]);
}
