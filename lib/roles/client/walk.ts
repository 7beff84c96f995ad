/**
 * Walking whole trees: every object reachable from some roots (directories
 * descended transitively, read-only links included, each storage index once so
 * a directory linked into itself or a cycle across directories ends), with the
 * storage calls batched (docs/leases-and-upkeep.md §5):
 *
 * - the directories of one level of the walk are mapped with one batch-read
 *   per server (`mapUpdateMany`, whole shares: a directory needs no second
 *   round trip), and their entries decoded from that;
 * - mutable files are mapped the same way (headers only);
 * - immutable files are located with `POST /batch-list`, one request per
 *   server per 1000 files.
 *
 * So checking N objects costs each server about (levels + N/1000) requests,
 * not N. Paths are for people (never a cap); caps stay in the objects.
 */
import { base32Encode, toHex } from "../../codec/mod.ts";
import {
  type Cap,
  capStorageIndexSync,
  isDirCap,
  isImmutableCap,
  parseCap,
  storageIndexFromFingerprint,
} from "../../crypto/mod.ts";
import {
  decodeDirectoryDoc,
  type DirEntry,
  type Grid,
  type GridServer,
  happinessOf,
  mapLimit,
  mapUpdateMany,
  type MutableHealth,
  mutableHealth,
  type MutableVerifyKeys,
  retrieve,
  serverKey,
  type Servermap,
  writeKeysFromSeed,
} from "../../grid/mod.ts";

export type ObjectKind = "directory" | "file" | "mutable-file";

export interface WalkRoot {
  cap: string;
  /** Printable name of the root (an alias path, `<DIR-W1 cap>`, or an upload's label). */
  path: string;
}

export interface WalkedObject {
  /** Printable path: the root's path, then `/name` per level (never a cap). */
  path: string;
  /** Path below the root ("" for the root itself). */
  rel: string;
  cap: string;
  parsed: Cap;
  kind: ObjectKind;
  storageIndex: Uint8Array;
  depth: number;
  /** Contents size in bytes when known (immutable caps carry it; mutable: the newest version). */
  size: number | null;
  /** Mutable objects: what every server holds. */
  servermap?: Servermap;
  /** Immutable objects after `locateImmutables`: server key -> share numbers. */
  holdings?: Map<string, Set<number>>;
  /** Directories: number of entries. */
  entries?: number;
  /** Why a directory could not be listed (its children were not reached). */
  problem?: string;
}

export interface WalkOptions {
  /** Called after each level with objects found so far. */
  onProgress?: (found: number) => void;
  signal?: AbortSignal;
}

/** Slots per batch (servers accept at least this many by default: maxBatchSlots 4096). */
const BATCH = 1000;
/** Directories per whole-share batch read (bounded response size). */
const DIR_BATCH = 64;

function kindOf(c: Cap): ObjectKind {
  return isDirCap(c) ? "directory" : isImmutableCap(c) ? "file" : "mutable-file";
}

function join(path: string, name: string): string {
  return path.endsWith(":") ? `${path}${name}` : `${path}/${name}`;
}

async function verifyKeysOf(c: Cap): Promise<MutableVerifyKeys | null> {
  switch (c.kind) {
    case "mutable-write":
    case "dir-write": {
      const k = await writeKeysFromSeed(c.seed);
      return { storageIndex: k.storageIndex, fingerprint: k.fingerprint };
    }
    case "mutable-read":
    case "dir-read":
      return {
        storageIndex: storageIndexFromFingerprint(c.fingerprint),
        fingerprint: c.fingerprint,
      };
    case "mutable-verify":
    case "dir-verify":
      return { storageIndex: c.storageIndex, fingerprint: c.fingerprint };
    default:
      return null;
  }
}

/** Map many mutable objects with batched reads; sets `servermap` and `size`. */
export async function mapMutables(
  grid: Grid,
  objs: WalkedObject[],
  initialReadSize: number | null,
  chunk: number,
): Promise<void> {
  const ctx = { servers: grid.servers.all(), leaseSecret: grid.leaseSecret };
  for (let i = 0; i < objs.length; i += chunk) {
    const part = objs.slice(i, i + chunk);
    const keys = await Promise.all(part.map((o) => verifyKeysOf(o.parsed)));
    const maps = await mapUpdateMany(ctx, keys as MutableVerifyKeys[], { initialReadSize });
    part.forEach((o, j) => {
      o.servermap = maps[j];
      o.size = maps[j].versions[0]?.prefix.dataLength ?? null;
    });
  }
}

async function listDir(grid: Grid, o: WalkedObject): Promise<DirEntry[]> {
  const c = o.parsed;
  if (c.kind !== "dir-write" && c.kind !== "dir-read") {
    throw new Error("a verify cap cannot list a directory");
  }
  if (o.servermap) {
    try {
      const keys = c.kind === "dir-write"
        ? await writeKeysFromSeed(c.seed)
        : { readkey: c.readkey, fingerprint: c.fingerprint };
      const writekey = "writekey" in keys ? keys.writekey : null;
      const r = await retrieve(grid.context(o.storageIndex), keys, { servermap: o.servermap });
      return (await decodeDirectoryDoc(r.contents, writekey)).entries;
    } catch { /* fall back to a fresh read below */ }
  }
  return (await grid.listDirectory(o.cap)).entries;
}

/**
 * Every object reachable from `roots`, breadth first (so each object's path is
 * a shortest one), each storage index once. Directories are mapped and listed;
 * mutable files mapped; immutable files are not yet located (`locateImmutables`).
 */
export async function walkTree(
  grid: Grid,
  roots: WalkRoot[],
  opts: WalkOptions = {},
): Promise<WalkedObject[]> {
  const seen = new Set<string>();
  const out: WalkedObject[] = [];
  let level: { cap: string; path: string; rel: string }[] = roots.map((r) => ({
    cap: r.cap,
    path: r.path,
    rel: "",
  }));
  for (let depth = 0; level.length; depth++) {
    if (opts.signal?.aborted) throw opts.signal.reason;
    const objs: WalkedObject[] = [];
    for (const x of level) {
      let parsed: Cap;
      try {
        parsed = parseCap(x.cap);
      } catch {
        continue; // directory entries are validated when decoded; nothing else to do
      }
      const si = capStorageIndexSync(parsed);
      const key = toHex(si);
      if (seen.has(key)) continue;
      seen.add(key);
      const kind = kindOf(parsed);
      const size = parsed.kind === "immutable-read" || parsed.kind === "immutable-verify"
        ? parsed.size
        : null;
      objs.push({ ...x, parsed, kind, storageIndex: si, depth, size });
    }
    out.push(...objs);
    const dirs = objs.filter((o) => o.kind === "directory");
    const files = objs.filter((o) => o.kind === "mutable-file");
    await mapMutables(grid, dirs, null, DIR_BATCH);
    await mapMutables(grid, files, 4096, BATCH);
    const next: typeof level = [];
    await mapLimit(dirs, 8, async (d) => {
      try {
        const entries = (await listDir(grid, d)).sort((a, b) =>
          a.name < b.name ? -1 : a.name > b.name ? 1 : 0
        );
        d.entries = entries.length;
        for (const e of entries) {
          next.push({
            cap: e.writecap ?? e.readcap,
            path: join(d.path, e.name),
            rel: d.rel ? `${d.rel}/${e.name}` : e.name,
          });
        }
      } catch (e) {
        d.problem = (e as Error).message;
      }
    });
    // Keep each level in a stable order (the parallel listing finished in any order).
    next.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    level = next;
    opts.onProgress?.(out.length);
  }
  return out;
}

/**
 * Where the shares of every immutable object are: one `batch-list` request
 * per server per 1000 objects. Sets `holdings`; returns the servers that
 * failed to answer (server key -> reason).
 */
export async function locateImmutables(
  grid: Grid,
  objs: WalkedObject[],
): Promise<Map<string, string>> {
  const imm = objs.filter((o) => o.kind === "file");
  for (const o of imm) o.holdings = new Map();
  const failed = new Map<string, string>();
  await mapLimit(grid.servers.all(), 16, async (server: GridServer) => {
    const key = serverKey(server.serverId);
    try {
      for (let i = 0; i < imm.length; i += BATCH) {
        const part = imm.slice(i, i + BATCH);
        const r = await server.storage.batchList(part.map((o) => o.storageIndex));
        part.forEach((o, j) => {
          const n = (o.parsed as { n: number }).n;
          const shares = r.entries[j].immutable.filter((sh) => sh < n);
          if (shares.length) o.holdings!.set(key, new Set(shares));
        });
      }
    } catch (e) {
      failed.set(key, (e as Error).message);
    }
  });
  return failed;
}

export interface Health {
  healthy: boolean;
  recoverable: boolean;
  k: number;
  n: number;
  sharesFound: number;
  happiness: number;
  /** Servers that answered. */
  reachable: number;
  /** Mutable objects: the newest version seen, and shares of other versions. */
  seqnum?: number | null;
  stale?: number;
}

/**
 * Health from what the batched calls found (no further request). Healthy:
 * all n shares present and servers-of-happiness at least min(happy, n,
 * servers that answered); for mutable objects also no share of an older
 * version on a server that answered. Unreachable servers are not counted
 * against an object (they are reported, and looked at again next time).
 */
export function healthOf(
  o: WalkedObject,
  happy: number,
  reachable: number,
): Health {
  if (o.kind === "file") {
    const c = o.parsed as { k: number; n: number };
    const holdings = o.holdings ?? new Map();
    const distinct = new Set([...holdings.values()].flatMap((s) => [...s])).size;
    const happiness = happinessOf(holdings);
    return {
      k: c.k,
      n: c.n,
      sharesFound: distinct,
      happiness,
      reachable,
      recoverable: distinct >= c.k,
      healthy: distinct === c.n && happiness >= Math.min(happy, c.n, Math.max(1, reachable)),
    };
  }
  const h: MutableHealth = mutableHealth(o.servermap!, happy);
  return {
    k: h.k,
    n: h.n,
    sharesFound: h.sharesFound,
    happiness: h.happiness,
    reachable: h.reachable,
    recoverable: h.recoverable,
    healthy: h.healthy,
    seqnum: h.seqnum,
    stale: h.stale,
  };
}

/** Servers that hold any share of the object (for lease renewal), from the batched calls. */
export function holdersOf(o: WalkedObject): Set<string> {
  if (o.kind === "file") return new Set(o.holdings?.keys() ?? []);
  return new Set(
    (o.servermap?.servers ?? []).filter((s) => s.shares.length > 0).map((s) =>
      serverKey(s.server.serverId)
    ),
  );
}

export function storageIndexText(o: WalkedObject): string {
  return base32Encode(o.storageIndex);
}
