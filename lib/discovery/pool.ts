/**
 * Storage clients for the servers discovery knows, one per server id, reused
 * across refreshes (keep-alive connections), with a count of requests and bytes.
 */
import { base32Encode, bytesEqual } from "../codec/mod.ts";
import type { GridServer, StorageApi } from "../grid/mod.ts";
import { StorageClient, type StorageUrl } from "../storage/mod.ts";

export interface PoolOptions {
  timeoutMs?: number;
}

export class ClientPool {
  #clients = new Map<string, { client: StorageClient; url: StorageUrl; server: GridServer }>();
  /** Storage requests made through this pool. */
  requests = 0;
  /** HTTP bytes (heads and bodies) sent and received through this pool. */
  bytesSent = 0;
  bytesReceived = 0;
  readonly options: PoolOptions;

  constructor(options: PoolOptions = {}) {
    this.options = options;
  }

  /** A grid server for this storage URL; a changed URL for a known server id replaces its client. */
  server(url: StorageUrl, nickname?: string): GridServer {
    const key = base32Encode(url.pin);
    const have = this.#clients.get(key);
    if (have && sameUrl(have.url, url)) {
      if (nickname) have.server.nickname = nickname;
      return have.server;
    }
    have?.client.close();
    const client = new StorageClient(url, {
      timeoutMs: this.options.timeoutMs,
      onWire: (sent, received) => {
        this.bytesSent += sent;
        this.bytesReceived += received;
      },
    });
    const server: GridServer = { serverId: url.pin, nickname, storage: this.#counting(client) };
    this.#clients.set(key, { client, url, server });
    return server;
  }

  /** Close and forget servers whose ids are not in `keep`. */
  retain(keep: Uint8Array[]): void {
    for (const [key, v] of this.#clients) {
      if (!keep.some((id) => bytesEqual(id, v.url.pin))) {
        v.client.close();
        this.#clients.delete(key);
      }
    }
  }

  /** Close every idle kept-open connection (as their idle timeouts would, later). */
  closeIdle(): void {
    for (const v of this.#clients.values()) v.client.closeIdle();
  }

  close(): void {
    for (const v of this.#clients.values()) v.client.close();
    this.#clients.clear();
  }

  #counting(client: StorageClient): StorageApi {
    return new Proxy(client, {
      get: (target, prop, receiver) => {
        const v = Reflect.get(target, prop, receiver);
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          this.requests++;
          return v.apply(target, args);
        };
      },
    }) as StorageApi;
  }
}

function sameUrl(a: StorageUrl, b: StorageUrl): boolean {
  return bytesEqual(a.pin, b.pin) && bytesEqual(a.swissnum, b.swissnum) &&
    a.locations.length === b.locations.length && a.locations.every((l, i) => l === b.locations[i]);
}
