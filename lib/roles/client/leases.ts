/**
 * `shoal client renew-leases`: one renewal, by hand, of this node's leases on
 * every object reachable from some roots (default: everything the node holds —
 * its aliases and its recorded unlinked uploads). `shoal client run` does the
 * same by itself, spread over time (upkeep.ts, docs/leases-and-upkeep.md).
 *
 * Share locations come from the batched walk (walk.ts); a lease is renewed
 * only at servers that hold a share of the object.
 */
import { heldRoots } from "./upkeep.ts";
import type { FileSession } from "./files.ts";
import { renewObjectLeases } from "./deepcheck.ts";
import { locateImmutables, type WalkRoot, walkTree } from "./walk.ts";

export interface LeaseReport {
  /** Distinct objects (storage indexes) visited. */
  objects: number;
  /** Leases added or renewed, one per (object, server holding it). */
  renewed: number;
  /** Objects no server held. */
  missing: number;
  /** Directories that could not be listed (their children were not reached), and failed renewals. */
  problems: string[];
}

/**
 * Add or renew this node's lease on every object reachable from `roots`
 * (paths or caps; default: every alias and every recorded upload), descending
 * into directories.
 */
export async function renewLeases(session: FileSession, roots: string[]): Promise<LeaseReport> {
  const grid = await session.grid();
  const start: WalkRoot[] = roots.length
    ? await Promise.all(roots.map(async (r) => {
      const res = await session.resolve(r);
      return { cap: res.cap, path: res.display };
    }))
    : await heldRoots(session.node.dir);
  const objs = await walkTree(grid, start);
  await locateImmutables(grid, objs);
  const report: LeaseReport = { objects: objs.length, renewed: 0, missing: 0, problems: [] };
  for (const o of objs) {
    if (o.problem) report.problems.push(`${o.path}: ${o.problem}`);
  }
  let i = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (i < objs.length) {
      const o = objs[i++];
      const r = await renewObjectLeases(grid, o, (s, e) => {
        report.problems.push(`${o.path}: renewal on ${s.nickname || "a server"} failed: ${e}`);
      });
      report.renewed += r.renewed;
      if (r.renewed + r.failed === 0) report.missing++;
    }
  }));
  return report;
}
