/**
 * The grid's server list and share placement. For each storage index the
 * servers are ordered on a permuted ring: by taggedHash(permutedRing,
 * storageIndex, serverId), so every client agrees where shares belong
 * without talking to the others.
 */
import { bytesEqual, toHex } from "../codec/mod.ts";
import { taggedHash } from "../crypto/mod.ts";
import type { StorageClient } from "../storage/mod.ts";
import { GRID_TAGS } from "./tags.ts";

/** The storage calls the grid layer makes (a StorageClient provides them all). */
export type StorageApi = Pick<
  StorageClient,
  | "batchRead"
  | "readTestWrite"
  | "readMutable"
  | "listMutable"
  | "allocate"
  | "upload"
  | "abortUpload"
  | "listImmutable"
  | "readImmutable"
  | "reportCorruption"
  | "renewLease"
  | "batchList"
  | "version"
>;

export interface GridServer {
  /** The server's identity: the SHA-256 pin of its TLS public key (32 bytes). */
  serverId: Uint8Array;
  nickname?: string;
  storage: StorageApi;
}

export function serverKey(serverId: Uint8Array): string {
  return toHex(serverId);
}

/** A mutable set of servers, keyed by server id, with permuted-ring ordering. */
export class ServerList {
  #servers = new Map<string, GridServer>();

  constructor(servers: Iterable<GridServer> = []) {
    for (const s of servers) this.add(s);
  }

  add(server: GridServer): void {
    this.#servers.set(serverKey(server.serverId), server);
  }

  remove(serverId: Uint8Array): GridServer | undefined {
    const k = serverKey(serverId);
    const s = this.#servers.get(k);
    this.#servers.delete(k);
    return s;
  }

  get(serverId: Uint8Array): GridServer | undefined {
    return this.#servers.get(serverKey(serverId));
  }

  has(serverId: Uint8Array): boolean {
    return this.#servers.has(serverKey(serverId));
  }

  get size(): number {
    return this.#servers.size;
  }

  all(): GridServer[] {
    return [...this.#servers.values()];
  }

  /** Servers in permuted-ring order for this storage index. */
  permuted(storageIndex: Uint8Array): GridServer[] {
    return permuteServers(storageIndex, this.all());
  }
}

export function permuteServers(storageIndex: Uint8Array, servers: GridServer[]): GridServer[] {
  const keyed = servers.map((s) => ({
    s,
    k: taggedHash(GRID_TAGS.permutedRing, storageIndex, s.serverId),
  }));
  keyed.sort((a, b) => compareBytes(a.k, b.k));
  return keyed.map((x) => x.s);
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function sameServer(a: GridServer, b: GridServer): boolean {
  return bytesEqual(a.serverId, b.serverId);
}

/** Run `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
