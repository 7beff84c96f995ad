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

// ---------------------------------------------------------------- stragglers

/**
 * How long a multi-server operation waits for stragglers once the servers
 * that answered are enough: max(STRAGGLER_GRACE_MIN_MS, STRAGGLER_GRACE_FACTOR ×
 * the time it took to have enough). Past that, a server that has not
 * answered is treated like one that is down (docs/security.md §3).
 */
export const STRAGGLER_GRACE_MIN_MS = 1000;
export const STRAGGLER_GRACE_FACTOR = 2;

export function stragglerGrace(elapsedMs: number): number {
  return Math.max(STRAGGLER_GRACE_MIN_MS, STRAGGLER_GRACE_FACTOR * elapsedMs);
}

export type Answer<R> =
  | { index: number; ok: true; value: R; ms: number }
  | { index: number; ok: false; error: unknown; ms: number };

export interface Gathered<R> {
  /** Answers in input order; undefined for items that had not answered when waiting stopped. */
  answers: (Answer<R> | undefined)[];
  /** Indices of the items given up on (still running; see `rest`). */
  late: number[];
  /** Every answer, once every item has finished (for work that goes on in the background). */
  rest: Promise<Answer<R>[]>;
}

export interface GatherOptions<R> {
  /**
   * True when the answers so far are enough to go on without the rest (it is
   * asked after every answer). Without it, every item is waited for.
   */
  enough?: (answered: Answer<R>[]) => boolean;
  /** Grace after `enough` (ms, from the time enough was reached); default stragglerGrace. */
  graceMs?: (elapsedMs: number) => number;
  /** Most items in flight at once (default: all). */
  limit?: number;
}

/**
 * Run `fn` over every item (a server, usually) in parallel and collect the
 * answers, but stop waiting once `enough` says the answers are enough and a
 * grace period has passed: whoever has not answered by then is "late" (its
 * call goes on; `rest` settles when it ends). With per-request deadlines
 * (lib/storage/client.ts) this bounds every multi-server operation, and no
 * single slow or silent server sets its pace. Never rejects: failures are answers.
 */
export function gather<T, R>(
  items: T[],
  fn: (item: T, index: number) => Promise<R>,
  opts: GatherOptions<R> = {},
): Promise<Gathered<R>> {
  const t0 = performance.now();
  const answers: (Answer<R> | undefined)[] = new Array(items.length).fill(undefined);
  const answered: Answer<R>[] = [];
  let resolveEarly!: () => void;
  const early = new Promise<void>((r) => (resolveEarly = r));
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const limit = Math.max(1, opts.limit ?? items.length);
  let next = 0;
  const one = async (i: number): Promise<void> => {
    let a: Answer<R>;
    try {
      a = { index: i, ok: true, value: await fn(items[i], i), ms: performance.now() - t0 };
    } catch (error) {
      a = { index: i, ok: false, error, ms: performance.now() - t0 };
    }
    answers[i] = a;
    answered.push(a);
    if (!stopped && timer === undefined && opts.enough && answered.length < items.length) {
      let ok = false;
      try {
        ok = opts.enough(answered);
      } catch {
        ok = false;
      }
      if (ok) {
        const elapsed = performance.now() - t0;
        timer = setTimeout(resolveEarly, (opts.graceMs ?? stragglerGrace)(elapsed));
      }
    }
  };
  const worker = async () => {
    while (next < items.length) await one(next++);
  };
  const all = Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rest = all.then(() => answers as Answer<R>[]);
  return Promise.race([all, early]).then(() => {
    stopped = true;
    clearTimeout(timer);
    const snapshot = [...answers];
    const late = snapshot.flatMap((a, i) => (a === undefined ? [i] : []));
    return { answers: snapshot, late, rest };
  });
}

/** The error a late server's answer is replaced with. */
export function lateError(waitedMs: number): string {
  return `no answer while the other servers had answered (gave up after ${
    Math.round(waitedMs)
  } ms; treated as down)`;
}

/** A call to one server did not answer within the deadline its caller gave it. */
export class ServerDeadlineError extends Error {
  override name = "ServerDeadlineError";
}

/**
 * `p`, or a ServerDeadlineError after `ms` (the call itself goes on and ends
 * at its request deadline). For single-server steps that have a cheaper
 * fallback than waiting, such as discovery's quick check.
 */
export function withinDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  p.catch(() => {});
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServerDeadlineError(`${what}: no answer within ${ms} ms`)),
        ms,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}
