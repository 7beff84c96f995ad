/**
 * Whole-tree operations behind `shoal client deep-check`, `manifest`, `stats`,
 * `du` and `ls -R` (docs/client-commands.md §4): each walks every object
 * reachable from one path with batched storage calls (walk.ts).
 */
import { base32Encode } from "../../codec/mod.ts";
import { formatCap, verifycapOf } from "../../crypto/mod.ts";
import { deepCheck, type DeepCheckOptions, type DeepCheckReport } from "./deepcheck.ts";
import type { FileSession } from "./files.ts";
import { type WalkedObject, type WalkRoot, walkTree } from "./walk.ts";

/** A counter for long walks on a terminal: "phase: N of M" redrawn in place (≤ 10 per second). */
export function objectProgress(
  write: (text: string) => void,
): { update(phase: string, done: number, total: number): void; finish(): void } {
  let last = 0;
  let drawn = false;
  return {
    update(phase, done, total) {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      drawn = true;
      write(`\r${phase}: ${done}${total ? ` of ${total}` : ""} object(s)\x1b[K`);
    },
    finish() {
      if (drawn) write("\r\x1b[K");
    },
  };
}

async function rootOf(session: FileSession, path: string): Promise<WalkRoot> {
  const r = await session.resolve(path);
  return { cap: r.cap, path: r.display };
}

/** Every object reachable from `path`. */
export async function walkPath(
  session: FileSession,
  path: string,
  onProgress?: (found: number) => void,
): Promise<WalkedObject[]> {
  const root = await rootOf(session, path);
  return await walkTree(await session.grid(), [root], { onProgress });
}

export async function deepCheckPath(
  session: FileSession,
  path: string,
  opts: Omit<DeepCheckOptions, "happy">,
): Promise<DeepCheckReport> {
  const root = await rootOf(session, path);
  return await deepCheck(await session.grid(), [root], {
    ...opts,
    happy: session.node.config.shares.happy,
  });
}

export interface ManifestRow {
  /** Path below PATH ("" for PATH itself). */
  path: string;
  type: WalkedObject["kind"];
  cap: string;
  storageIndex?: string;
  verifyCap?: string;
}

export async function manifest(
  session: FileSession,
  path: string,
  opts: { storageIndex?: boolean; verifyCap?: boolean; onProgress?: (n: number) => void } = {},
): Promise<ManifestRow[]> {
  const objs = await walkPath(session, path, opts.onProgress);
  return await Promise.all(objs.map(async (o) => {
    const row: ManifestRow = { path: o.rel, type: o.kind, cap: o.cap };
    if (opts.storageIndex) row.storageIndex = base32Encode(o.storageIndex);
    if (opts.verifyCap) row.verifyCap = formatCap(await verifycapOf(o.parsed));
    return row;
  }));
}

export interface TreeStats {
  objects: number;
  directories: number;
  immutableFiles: number;
  mutableFiles: number;
  /** Bytes of immutable files, of mutable files, and of directory contents. */
  immutableBytes: number;
  mutableBytes: number;
  directoryBytes: number;
  largestFile: number;
  /** Directory entries in all (links, including repeated ones). */
  links: number;
  /** Directories that could not be listed. */
  unlisted: number;
  /** Files by size: [low, high, count], low..high inclusive, in roughly ×√10 steps (as Tahoe). */
  histogram: [number, number, number][];
}

/** Bucket bounds 0, 1-3, 4-10, 11-31, 32-100, 101-316, ... (Tahoe's size histogram: ×√10 steps). */
function bucketOf(size: number): [number, number] {
  if (size === 0) return [0, 0];
  let low = 1;
  for (let i = 1;; i++) {
    const high = Math.floor(10 ** (i / 2));
    if (size <= high) return [low, high];
    low = high + 1;
  }
}

export function statsOf(objs: WalkedObject[]): TreeStats {
  const s: TreeStats = {
    objects: objs.length,
    directories: 0,
    immutableFiles: 0,
    mutableFiles: 0,
    immutableBytes: 0,
    mutableBytes: 0,
    directoryBytes: 0,
    largestFile: 0,
    links: 0,
    unlisted: 0,
    histogram: [],
  };
  const buckets = new Map<number, [number, number, number]>();
  for (const o of objs) {
    const size = o.size ?? 0;
    if (o.kind === "directory") {
      s.directories++;
      s.directoryBytes += size;
      s.links += o.entries ?? 0;
      if (o.problem) s.unlisted++;
      continue;
    }
    if (o.kind === "file") {
      s.immutableFiles++;
      s.immutableBytes += size;
    } else {
      s.mutableFiles++;
      s.mutableBytes += size;
    }
    s.largestFile = Math.max(s.largestFile, size);
    const [lo, hi] = bucketOf(size);
    const b = buckets.get(lo) ?? [lo, hi, 0];
    b[2]++;
    buckets.set(lo, b);
  }
  s.histogram = [...buckets.values()].sort((a, b) => a[0] - b[0]);
  return s;
}
