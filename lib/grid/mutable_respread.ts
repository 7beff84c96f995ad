/**
 * Repairing a mutable object *without a new version* (docs/leases-and-upkeep.md §4).
 *
 * `repair()` in mutable.ts republishes the contents as version seqnum+1, which
 * is right after an uncoordinated write but churns when nothing changed
 * (Tahoe-LAFS #1209: a file bumped every day because an intermittent server
 * was down at check time). Here the newest recoverable version is re-encoded
 * with its own salt, sequence number and encoding: encryption, erasure coding
 * and Ed25519 signatures are deterministic, so the shares come out byte for
 * byte as the publisher made them (checked against the signed prefix and the
 * signature before anything is written). They are then written, test-and-set,
 * where they are missing:
 *
 * - a share of an older version (a server that missed a publish) is
 *   overwritten by the same share number of the newest version;
 * - a share number no reachable server holds goes to the least-loaded
 *   reachable server in ring order (a server that joined since holds nothing,
 *   so it is chosen first);
 * - while servers-of-happiness is below `happy`, a share held by a crowded
 *   server is copied to a server holding none (re-spreading).
 *
 * Unreachable servers are left alone: they are neither a reason to act nor a
 * target. Nothing is written when the object is already as good as it can be.
 */
import { bytesEqual } from "../codec/mod.ts";
import {} from "../crypto/mod.ts";
import { GridError } from "./errors.ts";
import { happinessOf } from "./immutable.ts";
import {
  encodeVersion,
  type MutableContext,
  type MutableWriteKeys,
  retrieve,
  type Servermap,
} from "./mutable.ts";
import { shareVectors, testAndWrite } from "./mutable_write.ts";
import { type GridServer, mapLimit, permuteServers, serverKey } from "./servers.ts";

export interface MutableHealth {
  /** The newest version seen, or null when no valid share was found. */
  seqnum: number | null;
  k: number;
  n: number;
  /** Distinct share numbers of the newest version on reachable servers. */
  sharesFound: number;
  /** Servers-of-happiness of the newest version's shares. */
  happiness: number;
  /** Shares on reachable servers that are of an older version or invalid. */
  stale: number;
  /** Servers that answered. */
  reachable: number;
  recoverable: boolean;
  /**
   * Every share number of the newest version present, no stale share on a
   * reachable server, and happiness at least min(happy, n, reachable).
   */
  healthy: boolean;
}

/** Health of a mutable object from its servermap (no network). */
export function mutableHealth(map: Servermap, happy: number): MutableHealth {
  const live = map.servers.filter((s) => !s.error);
  const newest = map.versions[0] ?? null;
  if (!newest) {
    return {
      seqnum: null,
      k: 0,
      n: 0,
      sharesFound: 0,
      happiness: 0,
      stale: live.reduce((a, s) => a + s.shares.length, 0),
      reachable: live.length,
      recoverable: false,
      healthy: false,
    };
  }
  const { k, n, seqnum } = newest.prefix;
  const holdings = new Map<string, Set<number>>();
  let stale = 0;
  for (const s of live) {
    for (const sh of s.shares) {
      if (sh.version === newest.key && sh.shareNumber < n) {
        const key = serverKey(s.server.serverId);
        holdings.set(key, (holdings.get(key) ?? new Set()).add(sh.shareNumber));
      } else stale++;
    }
  }
  const distinct = new Set([...holdings.values()].flatMap((s) => [...s])).size;
  const happiness = happinessOf(holdings);
  const wanted = Math.min(happy, n, Math.max(1, live.length));
  return {
    seqnum,
    k,
    n,
    sharesFound: distinct,
    happiness,
    stale,
    reachable: live.length,
    recoverable: distinct >= k,
    healthy: distinct === n && stale === 0 && happiness >= wanted,
  };
}

export interface RespreadResult {
  /** Whether any share was written. */
  repaired: boolean;
  /** The version kept (unchanged). */
  seqnum: number;
  written: { serverId: Uint8Array; shares: number[] }[];
  failures: { serverId: Uint8Array; error: string }[];
}

/**
 * Bring the newest recoverable version of a mutable object to every share
 * number and to `happy` servers, keeping its sequence number. Returns null
 * when the version cannot be reproduced exactly (then only a republish, a new
 * version, can repair it).
 */
export async function respreadMutable(
  ctx: MutableContext,
  keys: MutableWriteKeys,
  map: Servermap,
  happy: number,
): Promise<RespreadResult | null> {
  const si = keys.storageIndex;
  const ring = permuteServers(si, ctx.servers);
  const got = await retrieve({ ...ctx, servers: ring }, keys, { servermap: map });
  const v = got.version;
  const p = v.prefix;
  const enc = await encodeVersion(keys, got.contents, p.seqnum, p.salt, p.k, p.n);
  if (!bytesEqual(enc.prefix, v.prefixBytes) || !bytesEqual(enc.signature, v.signature)) {
    return null;
  }
  const liveKeys = new Set(
    map.servers.filter((s) => !s.error).map((s) => serverKey(s.server.serverId)),
  );
  const live = ring.filter((s) => liveKeys.has(serverKey(s.serverId)));
  const seenBy = new Map(map.servers.map((s) => [serverKey(s.server.serverId), s]));
  const holdings = new Map<string, Set<number>>();
  const plan = new Map<string, Map<number, Uint8Array>>(); // server -> share -> specimen
  const add = (s: GridServer, sh: number, specimen: Uint8Array) => {
    const key = serverKey(s.serverId);
    const m = plan.get(key) ?? new Map<number, Uint8Array>();
    m.set(sh, specimen);
    plan.set(key, m);
    holdings.set(key, (holdings.get(key) ?? new Set()).add(sh));
  };
  const existing = (s: GridServer, sh: number): Uint8Array => {
    const seen = seenBy.get(serverKey(s.serverId))?.shares.find((x) => x.shareNumber === sh);
    return seen?.checkstring ?? new Uint8Array(0);
  };
  const deletions = new Map<string, Map<number, Uint8Array>>();
  for (const s of live) {
    const key = serverKey(s.serverId);
    for (const sh of seenBy.get(key)?.shares ?? []) {
      if (sh.version === v.key && sh.shareNumber < p.n) {
        holdings.set(key, (holdings.get(key) ?? new Set()).add(sh.shareNumber));
      }
    }
  }
  // Shares of another version (or invalid) on a reachable server: replace them.
  for (const s of live) {
    for (const sh of seenBy.get(serverKey(s.serverId))?.shares ?? []) {
      if (sh.version === v.key && sh.shareNumber < p.n) continue;
      if (sh.shareNumber < p.n) add(s, sh.shareNumber, sh.checkstring);
      else {
        const key = serverKey(s.serverId);
        const m = deletions.get(key) ?? new Map<number, Uint8Array>();
        m.set(sh.shareNumber, sh.checkstring);
        deletions.set(key, m);
      }
    }
  }
  const load = (s: GridServer) => holdings.get(serverKey(s.serverId))?.size ?? 0;
  const have = () => new Set([...holdings.values()].flatMap((x) => [...x]));
  // Share numbers nobody reachable holds: least-loaded server first, ring order breaks ties.
  for (let sh = 0; sh < p.n; sh++) {
    if (have().has(sh) || live.length === 0) continue;
    let best = live[0];
    for (const s of live) if (load(s) < load(best)) best = s;
    add(best, sh, existing(best, sh));
  }
  // Re-spread: copy a crowded server's share to a server holding none.
  const wanted = Math.min(happy, p.n, live.length);
  for (const s of live) {
    if (happinessOf(holdings) >= wanted) break;
    if (load(s) > 0) continue;
    const crowded = live.filter((x) => load(x) > 1).sort((a, b) => load(b) - load(a))[0];
    if (!crowded) break;
    const sh = [...holdings.get(serverKey(crowded.serverId))!].sort((a, b) => b - a)[0];
    add(s, sh, existing(s, sh));
  }
  const result: RespreadResult = {
    repaired: false,
    seqnum: p.seqnum,
    written: [],
    failures: [],
  };
  const targets = live.filter((s) =>
    plan.has(serverKey(s.serverId)) || deletions.has(serverKey(s.serverId))
  );
  await mapLimit(targets, 8, async (server) => {
    const key = serverKey(server.serverId);
    const mine = [...(plan.get(key) ?? new Map<number, Uint8Array>())];
    const vectors = shareVectors(
      mine.map(([share, specimen]) => ({ share, data: enc.share(share), specimen })),
      [...(deletions.get(key) ?? [])].map(([share, specimen]) => ({ share, specimen })),
    );
    try {
      const res = await testAndWrite(ctx.leaseSecret, keys, server, vectors);
      if (!res.success) {
        result.failures.push({
          serverId: server.serverId,
          error: "its shares changed since they were read (another writer?); left alone",
        });
      } else {
        result.written.push({ serverId: server.serverId, shares: mine.map(([sh]) => sh) });
      }
    } catch (e) {
      result.failures.push({ serverId: server.serverId, error: (e as Error).message });
    }
  });
  result.repaired = result.written.length > 0;
  if (!result.repaired && result.failures.length && targets.length) {
    throw new GridError(
      `re-spreading version ${p.seqnum} failed on every target server: ${
        result.failures.slice(0, 3).map((f) => f.error).join("; ")
      }`,
    );
  }
  return result;
}
