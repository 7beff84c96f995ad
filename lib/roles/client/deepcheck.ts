/**
 * Deep check of whole trees: health of every object reachable from some roots,
 * optionally verified block by block, repaired, and its leases renewed.
 * Shared by `shoal client deep-check` and the upkeep of `shoal client run`
 * (docs/client-commands.md, docs/leases-and-upkeep.md).
 *
 * Health comes from batched calls (walk.ts): one request per server per level
 * of directories and per 1000 files. `--verify` downloads every block, which
 * is one request per share by nature. Repair keeps a mutable object's version
 * when it can (mutable_respread.ts): an unchanged file is never republished.
 */
import { toHex } from "../../codec/mod.ts";
import { leaseSecrets } from "../../crypto/mod.ts";
import {
  type Grid,
  type GridServer,
  mapLimit,
  mapUpdate,
  respreadMutable,
  serverKey,
  writeKeysFromSeed,
} from "../../grid/mod.ts";
import {
  type Health,
  healthOf,
  holdersOf,
  locateImmutables,
  storageIndexText,
  type WalkedObject,
  type WalkRoot,
  walkTree,
} from "./walk.ts";

export type RepairOutcome =
  | "repaired"
  | "not-needed"
  | "failed"
  | "needs-writecap"
  | "unrecoverable";

export interface ObjectReport extends Health {
  path: string;
  kind: WalkedObject["kind"];
  /** Base32 storage index (not a secret). */
  storageIndex: string;
  size: number | null;
  /** Problems found (bad shares, unlistable directory, failed repair). */
  problems: string[];
  repair?: RepairOutcome;
  /** After a repair: the object's health again. */
  after?: Health;
  leases?: { renewed: number; failed: number };
}

export interface DeepCheckCounts {
  objects: number;
  directories: number;
  files: number;
  mutableFiles: number;
  healthy: number;
  /** Not healthy but recoverable. */
  unhealthy: number;
  unrecoverable: number;
  repaired: number;
  repairFailed: number;
  leasesRenewed: number;
  leaseFailures: number;
}

export interface DeepCheckReport {
  counts: DeepCheckCounts;
  objects: ObjectReport[];
  /** Servers that did not answer the batched calls. */
  unreachable: { server: string; error: string }[];
}

export interface DeepCheckOptions {
  /** Servers-of-happiness wanted (the node's shares.happy). */
  happy: number;
  verify?: boolean;
  repair?: boolean;
  addLease?: boolean;
  /** Progress of the long phases (objects done of total). */
  onProgress?: (phase: string, done: number, total: number) => void;
  /** Decisions and failures, one line each (never a cap). */
  log?: (line: string) => void;
  /** Awaited before each object's lease renewal (upkeep spreads them over time). */
  beforeLease?: (index: number, total: number) => Promise<void>;
  signal?: AbortSignal;
}

export function serverName(s: GridServer): string {
  return s.nickname || toHex(s.serverId).slice(0, 8);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function verdict(h: { healthy: boolean; recoverable: boolean }): string {
  return h.healthy ? "healthy" : h.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable";
}

export function describeHealth(h: Health): string {
  const v = h.seqnum !== undefined && h.seqnum !== null ? `version ${h.seqnum}, ` : "";
  const stale = h.stale ? `, ${h.stale} stale share(s)` : "";
  return `${v}${h.sharesFound} of ${h.n} shares (${h.k} needed) on ${h.happiness} server(s)${stale}`;
}

/** Renew this node's lease on `o` at every server that holds a share of it. */
export async function renewObjectLeases(
  grid: Grid,
  o: WalkedObject,
  onFailure: (server: GridServer, error: string) => void,
): Promise<{ renewed: number; failed: number }> {
  const holders = holdersOf(o);
  let renewed = 0;
  let failed = 0;
  await Promise.all(
    grid.servers.all().map(async (s) => {
      if (!holders.has(serverKey(s.serverId))) return;
      try {
        await s.storage.renewLease(
          o.storageIndex,
          leaseSecrets(grid.leaseSecret, o.storageIndex, s.serverId),
        );
        renewed++;
      } catch (e) {
        failed++;
        onFailure(s, describe(e));
      }
    }),
  );
  return { renewed, failed };
}

/** Check (and optionally verify, repair, renew) every object reachable from `roots`. */
export async function deepCheck(
  grid: Grid,
  roots: WalkRoot[],
  opts: DeepCheckOptions,
): Promise<DeepCheckReport> {
  const log = opts.log ?? (() => {});
  const objs = await walkTree(grid, roots, {
    signal: opts.signal,
    onProgress: (n) => opts.onProgress?.("walking", n, 0),
  });
  const failed = await locateImmutables(grid, objs);
  const byKey = new Map(grid.servers.all().map((s) => [serverKey(s.serverId), s]));
  const unreachable = new Map<string, string>();
  for (const [k, e] of failed) unreachable.set(k, e);
  for (const o of objs) {
    for (const s of o.servermap?.servers ?? []) {
      if (s.error) unreachable.set(serverKey(s.server.serverId), s.error);
    }
  }
  const reachable = grid.servers.size - failed.size;
  const reports: ObjectReport[] = objs.map((o) => {
    const h = healthOf(o, opts.happy, o.kind === "file" ? reachable : 0);
    const problems: string[] = [];
    if (o.problem) problems.push(`could not list the directory: ${o.problem}`);
    for (const s of o.servermap?.servers ?? []) {
      for (const sh of s.shares) {
        if (sh.problem) {
          problems.push(`${serverName(s.server)} share ${sh.shareNumber}: ${sh.problem}`);
        }
      }
    }
    return {
      path: o.path,
      kind: o.kind,
      storageIndex: storageIndexText(o),
      size: o.size,
      ...h,
      problems,
    };
  });

  if (opts.verify) {
    let done = 0;
    await mapLimit(objs, 4, async (o, i) => {
      if (opts.signal?.aborted) return;
      const r = reports[i];
      try {
        if (o.kind === "file") {
          const v = await grid.verifyImmutable(o.cap);
          Object.assign(r, {
            sharesFound: v.sharesFound,
            happiness: v.happiness,
            recoverable: v.recoverable,
            healthy: r.healthy && v.healthy,
          });
          for (const s of v.servers) {
            for (const sh of s.shares) {
              if (!sh.ok) {
                r.problems.push(
                  `${s.nickname ?? toHex(s.serverId).slice(0, 8)} share ${sh.shareNumber}: ${
                    sh.problem ?? "bad"
                  }`,
                );
              }
            }
          }
        } else if (!o.parsed.kind.endsWith("-verify") && r.recoverable) {
          const got = await grid.readMutable(o.cap);
          for (const p of got.problems) {
            r.problems.push(
              `${toHex(p.serverId).slice(0, 8)} share ${p.shareNumber}: ${p.problem}`,
            );
          }
          if (got.problems.length) r.healthy = false;
        }
      } catch (e) {
        r.problems.push(`verify failed: ${describe(e)}`);
        r.healthy = false;
      }
      opts.onProgress?.("verifying", ++done, objs.length);
    });
  }

  if (opts.repair) {
    const todo = objs.map((o, i) => ({ o, r: reports[i] })).filter((x) => !x.r.healthy);
    let done = 0;
    await mapLimit(todo, 4, async ({ o, r }) => {
      if (opts.signal?.aborted) return;
      try {
        r.repair = await repairOne(grid, o, r, opts);
      } catch (e) {
        r.repair = "failed";
        r.problems.push(`repair failed: ${describe(e)}`);
        log(`repair of ${o.path} failed: ${describe(e)}`);
      }
      opts.onProgress?.("repairing", ++done, todo.length);
    });
    for (const r of reports) r.repair ??= "not-needed";
  }

  if (opts.addLease) {
    let done = 0;
    for (let i = 0; i < objs.length; i++) {
      if (opts.signal?.aborted) break;
      await opts.beforeLease?.(i, objs.length);
      const o = objs[i];
      reports[i].leases = await renewObjectLeases(grid, o, (s, e) => {
        log(`lease renewal of ${o.path} on ${serverName(s)} failed: ${e}`);
      });
      opts.onProgress?.("renewing leases", ++done, objs.length);
    }
  }

  const counts: DeepCheckCounts = {
    objects: reports.length,
    directories: reports.filter((r) => r.kind === "directory").length,
    files: reports.filter((r) => r.kind === "file").length,
    mutableFiles: reports.filter((r) => r.kind === "mutable-file").length,
    healthy: 0,
    unhealthy: 0,
    unrecoverable: 0,
    repaired: reports.filter((r) => r.repair === "repaired").length,
    repairFailed: reports.filter((r) => r.repair === "failed").length,
    leasesRenewed: reports.reduce((a, r) => a + (r.leases?.renewed ?? 0), 0),
    leaseFailures: reports.reduce((a, r) => a + (r.leases?.failed ?? 0), 0),
  };
  for (const r of reports) {
    const h = r.after ?? r;
    if (h.healthy) counts.healthy++;
    else if (h.recoverable) counts.unhealthy++;
    else counts.unrecoverable++;
  }
  return {
    counts,
    objects: reports,
    unreachable: [...unreachable].map(([k, error]) => ({
      server: byKey.get(k) ? serverName(byKey.get(k)!) : k.slice(0, 8),
      error,
    })),
  };
}

async function repairOne(
  grid: Grid,
  o: WalkedObject,
  r: ObjectReport,
  opts: DeepCheckOptions,
): Promise<RepairOutcome> {
  const log = opts.log ?? (() => {});
  if (!r.recoverable) {
    log(`${o.path}: NOT recoverable (${describeHealth(r)}); nothing to repair from`);
    return "unrecoverable";
  }
  if (o.kind === "file") {
    const res = await grid.repairImmutable(o.cap, { happy: opts.happy, verify: opts.verify });
    const a = res.after;
    r.after = {
      healthy: a.healthy,
      recoverable: a.recoverable,
      k: a.k,
      n: a.n,
      sharesFound: a.sharesFound,
      happiness: a.happiness,
      reachable: r.reachable,
    };
    log(`${o.path}: repaired: ${describeHealth(r)} -> ${describeHealth(r.after)}`);
    return res.repaired ? "repaired" : "not-needed";
  }
  const c = o.parsed;
  if (c.kind !== "mutable-write" && c.kind !== "dir-write") {
    log(
      `${o.path}: ${verdict(r)} (${describeHealth(r)}), but only a read cap is held: not repaired`,
    );
    return "needs-writecap";
  }
  const keys = await writeKeysFromSeed(c.seed);
  const ctx = grid.context(o.storageIndex);
  const res = await respreadMutable(ctx, keys, o.servermap!, opts.happy);
  if (res === null) {
    const rep = await grid.repairMutable(o.cap);
    log(
      `${o.path}: the newest version could not be re-created exactly; republished as version ${rep.result?.seqnum}`,
    );
  } else {
    const where = res.written.map((w) => {
      const s = grid.servers.get(w.serverId);
      return `${s ? serverName(s) : toHex(w.serverId).slice(0, 8)}:${w.shares.join("+")}`;
    }).join(", ");
    log(`${o.path}: re-spread version ${res.seqnum} (kept) to ${where || "no server"}`);
    for (const f of res.failures) {
      const s = grid.servers.get(f.serverId);
      log(`${o.path}: could not write to ${s ? serverName(s) : "a server"}: ${f.error}`);
    }
  }
  const map = await mapUpdate(ctx, keys);
  const again: WalkedObject = { ...o, servermap: map };
  r.after = healthOf(again, opts.happy, 0);
  return "repaired";
}
