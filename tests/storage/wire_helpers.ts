/**
 * Raw wire access for the storage hardening tests: a node:tls connection
 * (optionally from a chosen loopback source address) that writes bytes as
 * given and collects what the server sends, and process memory readings.
 */
import net from "node:net";
import tls from "node:tls";

const enc = new TextEncoder();

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

  write(text: string | Uint8Array): void {
    this.sock.write(typeof text === "string" ? enc.encode(text) : text);
  }

  /** Everything received so far, as latin1 text. */
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
