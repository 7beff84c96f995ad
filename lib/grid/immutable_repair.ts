/**
 * Checking, verifying and repairing an immutable file (docs/immutable-files.md §6): which
 * servers hold which shares (headers, UEB and tree roots verified, or every block), and the
 * re-creation of missing shares from any k valid ones.
 */
import { bytesEqual } from "../codec/mod.ts";
import type { Cap } from "../crypto/mod.ts";
import { EncodePipeline, segmentPool } from "./workers/mod.ts";
import { GridError, UnrecoverableError } from "./errors.ts";
import {
  type CapInfo,
  capInfo,
  checkAbort,
  CONCURRENCY,
  CorruptShareError,
  describe,
  Encoder,
  fetchSegment,
  happinessOf,
  type ImmutableCheck,
  type ImmutableContext,
  type ImmutableShareStatus,
  locate,
  type Located,
  ShareReader,
  ShareSet,
  UploadSession,
} from "./immutable.ts";
import { type GridServer, mapLimit, permuteServers, serverKey } from "./servers.ts";

async function examine(
  ctx: ImmutableContext,
  info: CapInfo,
  verifyBlocks: boolean,
): Promise<{ check: ImmutableCheck; readers: ShareReader[]; located: Located[] }> {
  const servers = permuteServers(info.storageIndex, ctx.servers);
  const located = await locate(servers, info.storageIndex, true, info.k).all;
  const order = new Map(servers.map((s, i) => [serverKey(s.serverId), i]));
  located.sort((a, b) =>
    order.get(serverKey(a.server.serverId))! - order.get(serverKey(b.server.serverId))!
  );
  const readers: ShareReader[] = [];
  const entries = located.flatMap((loc) => loc.shares.map((sh) => ({ loc, sh })));
  const status = new Map<string, ImmutableShareStatus>();
  await mapLimit(entries, verifyBlocks ? 4 : CONCURRENCY, async ({ loc, sh }) => {
    const r = new ShareReader(loc.server, sh, info, loc.latency);
    const st: ImmutableShareStatus = { shareNumber: sh, ok: false };
    status.set(`${serverKey(loc.server.serverId)}:${sh}`, st);
    try {
      if (sh >= info.n) {
        throw new CorruptShareError(`share number ${sh} is not below n = ${info.n}`);
      }
      await r.open();
      if (verifyBlocks) {
        const l = r.layout;
        await mapLimit(Array.from({ length: l.numSegments }, (_, i) => i), 2, async (i) => {
          await r.block(i);
          await r.segmentLeaf(i);
        });
      }
      st.ok = true;
      readers.push(r);
    } catch (e) {
      st.problem = describe(e);
      if (e instanceof CorruptShareError) {
        loc.server.storage.reportCorruption("immutable", info.storageIndex, sh, st.problem).catch(
          () => {},
        );
      }
    }
  });
  const holdings = new Map<string, Set<number>>();
  for (const r of readers) {
    const key = serverKey(r.server.serverId);
    const set = holdings.get(key) ?? new Set<number>();
    set.add(r.shnum);
    holdings.set(key, set);
  }
  const distinct = new Set(readers.map((r) => r.shnum)).size;
  const check: ImmutableCheck = {
    storageIndex: info.storageIndex,
    k: info.k,
    n: info.n,
    size: info.size,
    sharesFound: distinct,
    happiness: happinessOf(holdings),
    recoverable: distinct >= info.k,
    healthy: distinct === info.n,
    verifiedBlocks: verifyBlocks,
    servers: located.map((loc) => ({
      serverId: loc.server.serverId,
      nickname: loc.server.nickname,
      error: loc.error,
      shares: loc.shares.map((sh) => status.get(`${serverKey(loc.server.serverId)}:${sh}`)!),
    })),
  };
  return { check, readers, located };
}

/** Which servers hold which shares, with headers, UEB and hash-tree roots verified (no block download). */
export async function checkImmutable(
  ctx: ImmutableContext,
  cap: string | Cap,
): Promise<ImmutableCheck> {
  return (await examine(ctx, capInfo(cap), false)).check;
}

/** Download and check every block of every share. */
export async function verifyImmutable(
  ctx: ImmutableContext,
  cap: string | Cap,
): Promise<ImmutableCheck> {
  return (await examine(ctx, capInfo(cap), true)).check;
}

export interface RepairImmutableOptions {
  happy?: number;
  /**
   * Download and check every block first (as verifyImmutable): a share with a
   * bad block then counts as missing and is re-created on another server.
   * Without it, shares are judged by their headers, UEB and hash-tree roots.
   */
  verify?: boolean;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface RepairImmutableResult {
  repaired: boolean;
  before: ImmutableCheck;
  after: ImmutableCheck;
}

/**
 * Re-create missing shares (from any k valid ones; a verify cap suffices) on
 * servers that hold none, in ring order, until every share exists and
 * happiness is at least `happy` (default: min(n, servers known)).
 */
export async function repairImmutable(
  ctx: ImmutableContext,
  cap: string | Cap,
  opts: RepairImmutableOptions = {},
): Promise<RepairImmutableResult> {
  const info = capInfo(cap);
  const { check: before, readers, located } = await examine(ctx, info, opts.verify ?? false);
  // Servers holding a bad copy of a share: it cannot be uploaded there again
  // (the server would answer that it already has it), so it goes elsewhere.
  const badCopy = new Map<number, Set<string>>();
  for (const srv of before.servers) {
    for (const st of srv.shares) {
      if (st.ok) continue;
      const key = serverKey(srv.serverId);
      badCopy.set(st.shareNumber, (badCopy.get(st.shareNumber) ?? new Set()).add(key));
    }
  }
  const holdsBadCopy = (s: GridServer) =>
    [...badCopy.values()].some((keys) => keys.has(serverKey(s.serverId)));
  const live = located.filter((l) => !l.error).map((l) => l.server);
  const happy = Math.min(opts.happy ?? info.n, info.n, Math.max(live.length, 1));
  if (before.healthy && before.happiness >= happy) {
    return { repaired: false, before, after: before };
  }
  if (!before.recoverable) {
    throw new UnrecoverableError(
      `cannot repair: only ${before.sharesFound} valid distinct share(s) found, ${info.k} needed`,
    );
  }
  const holdings = new Map<string, Set<number>>();
  for (const r of readers) {
    const key = serverKey(r.server.serverId);
    holdings.set(key, (holdings.get(key) ?? new Set()).add(r.shnum));
  }
  const have = new Set(readers.map((r) => r.shnum));
  const ring = permuteServers(info.storageIndex, live);
  const load = (s: GridServer, plan: Map<number, GridServer>) =>
    (holdings.get(serverKey(s.serverId))?.size ?? 0) +
    [...plan.values()].filter((x) => x === s).length;
  const plan = new Map<number, GridServer>();
  for (let sh = 0; sh < info.n; sh++) {
    if (have.has(sh)) continue;
    let best: GridServer | null = null;
    for (const s of ring) {
      if (badCopy.get(sh)?.has(serverKey(s.serverId))) continue;
      if (!best || load(s, plan) < load(best, plan)) best = s;
    }
    if (best) plan.set(sh, best);
  }
  // Still short of happiness: copy shares held only by crowded servers to empty ones.
  const planned = () => {
    const m = new Map<string, Set<number>>();
    for (const [k, v] of holdings) m.set(k, new Set(v));
    for (const [sh, s] of plan) {
      const key = serverKey(s.serverId);
      m.set(key, (m.get(key) ?? new Set()).add(sh));
    }
    return m;
  };
  const extra: [number, GridServer][] = [];
  for (const s of ring) {
    if (happinessOf(planned()) + extra.length >= happy) break;
    if (load(s, plan) > 0 || extra.some(([, x]) => x === s)) continue;
    const counts = new Map<number, number>();
    for (const set of planned().values()) {
      for (const sh of set) counts.set(sh, (counts.get(sh) ?? 0) + 1);
    }
    const crowded = [...planned().entries()].filter(([, set]) => set.size > 1).flatMap((
      [, set],
    ) => [...set]);
    const pick = crowded.find((sh) =>
      !extra.some(([x]) => x === sh) && !plan.has(sh) &&
      !badCopy.get(sh)?.has(serverKey(s.serverId))
    );
    if (pick !== undefined) extra.push([pick, s]);
  }
  const first = readers[0];
  const l = first.layout;
  const session = new UploadSession(info.storageIndex, l, ctx.leaseSecret, happy, holdings);
  const allPlan = new Map(plan);
  // Duplicate copies use a second session-level allocation round.
  try {
    // Shares a server refuses are re-placed, but never on a server holding a bad copy.
    await session.allocate(allPlan, ring.filter((s) => !holdsBadCopy(s)));
    for (const [sh, s] of extra) await session.allocate(new Map([[sh, s]]), [s]);
    const set = new ShareSet(info, located);
    const encoder = new Encoder(l);
    const pool = segmentPool(l);
    try {
      const pipe = await EncodePipeline.start(pool, l, null);
      for (let i = 0; i < l.numSegments; i++) {
        checkAbort(opts.signal);
        if (session.fatal) throw session.fatal;
        const ct = await fetchSegment(set, i, pool, null);
        const input = pipe.input();
        input.set(ct);
        pipe.push(i, input.subarray(0, ct.length));
        await pipe.next((j, blocks, size, d) => encoder.add(j, blocks, size, d, session));
        opts.onProgress?.(Math.min(l.size, (i + 1) * l.segmentSize), l.size);
        await session.room();
      }
    } finally {
      pool.close();
    }
    await session.drain();
    const fin = encoder.finish();
    if (!bytesEqual(fin.ueb, first.ueb)) {
      throw new GridError(
        "re-encoding the file did not reproduce its UEB; refusing to write repaired shares",
      );
    }
    await session.finalize(fin.front);
  } catch (e) {
    await session.abortAll();
    throw e;
  }
  const after = (await examine(ctx, info, opts.verify ?? false)).check;
  return { repaired: true, before, after };
}
