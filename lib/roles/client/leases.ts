/**
 * Renewing leases on a client's files. Every share carries leases and is
 * garbage-collected when all of them have expired (31 days by default), so a
 * client keeps its data alive by renewing, from time to time, its lease on
 * every object reachable from its aliases (in the spirit of Tahoe-LAFS's
 * `deep-check --add-lease`). docs/client-commands.md.
 */
import { base32Encode } from "../../codec/mod.ts";
import { type Cap, capStorageIndex, isDirCap, leaseSecrets, parseCap } from "../../crypto/mod.ts";
import { loadAliases } from "./aliases.ts";
import type { FileSession } from "./files.ts";

export interface LeaseReport {
  /** Distinct objects (storage indexes) visited. */
  objects: number;
  /** Leases added or renewed, one per (object, server holding it). */
  renewed: number;
  /** Objects no server held. */
  missing: number;
  /** Directories that could not be listed (their children were not reached). */
  problems: string[];
}

/**
 * Add or renew this node's lease on every object reachable from `roots`
 * (paths or caps; default: every alias), descending into directories.
 */
export async function renewLeases(session: FileSession, roots: string[]): Promise<LeaseReport> {
  const grid = await session.grid();
  const servers = grid.servers.all();
  const start = roots.length
    ? await Promise.all(
      roots.map(async (r) => ({ cap: (await session.resolve(r)).parsed, name: r.split("/")[0] })),
    )
    : [...(await loadAliases(session.node.dir))].map(([name, cap]) => ({
      cap: parseCap(cap),
      name: `${name}:`,
    }));
  const seen = new Set<string>();
  const report: LeaseReport = { objects: 0, renewed: 0, missing: 0, problems: [] };
  const queue: { cap: Cap; name: string }[] = [...start];
  while (queue.length) {
    const batch = queue.splice(0, 16);
    await Promise.all(batch.map(async ({ cap, name }) => {
      const si = await capStorageIndex(cap);
      const key = base32Encode(si);
      if (seen.has(key)) return;
      seen.add(key);
      report.objects++;
      let held = 0;
      await Promise.all(servers.map(async (s) => {
        const l = leaseSecrets(grid.leaseSecret, si, s.serverId);
        try {
          await s.storage.renewLease(si, { renew: l.renew, cancel: l.cancel });
          held++;
        } catch { /* this server holds no share of it, or is down */ }
      }));
      report.renewed += held;
      if (held === 0) report.missing++;
      if (isDirCap(cap)) {
        try {
          for (const e of (await grid.listDirectory(cap)).entries) {
            queue.push({ cap: parseCap(e.writecap ?? e.readcap), name: `${name}/${e.name}` });
          }
        } catch (e) {
          report.problems.push(`${name}: ${(e as Error).message}`);
        }
      }
    }));
  }
  return report;
}
