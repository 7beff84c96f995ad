/**
 * What the parts of immutable-file handling share (lib/grid/immutable.ts is their public
 * entry): the PATCH size and the concurrency limit, the public option and result types, and
 * small helpers (describe, happinessOf, checkAbort).
 */
import { GridError } from "./errors.ts";
import type { GridServer } from "./servers.ts";

/**
 * Bytes of one PATCH (blocks of consecutive segments are joined up to this).
 * Servers spend much of their CPU per request rather than per byte: 2 MiB
 * instead of 1 MiB cut their CPU per uploaded MB by about a quarter
 * (docs/performance.md), for n · 1 MiB more pending memory.
 */
export const PATCH_CHUNK = 2 * 1024 * 1024;
export const CONCURRENCY = 32;

export interface UploadOptions {
  k: number;
  n: number;
  happy: number;
  /** 32 bytes, or null for a random key (--no-convergence). */
  convergenceSecret: Uint8Array | null;
  /** Target segment size (default 1 MiB), rounded up to a multiple of k. */
  segmentSize?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface UploadResult {
  cap: string;
  storageIndex: Uint8Array;
  size: number;
  placed: { serverId: Uint8Array; shares: number[] }[];
  /** Shares the servers already held (deduplicated, verified byte for byte). */
  alreadyHad: number;
}

export interface ImmutableShareStatus {
  shareNumber: number;
  ok: boolean;
  problem?: string;
}

export interface ImmutableCheck {
  storageIndex: Uint8Array;
  k: number;
  n: number;
  size: number;
  /** Distinct valid share numbers found. */
  sharesFound: number;
  /** Servers-of-happiness of the valid shares (maximum matching servers ↔ distinct shares). */
  happiness: number;
  /** At least k distinct valid shares. */
  recoverable: boolean;
  /** All n shares valid somewhere. */
  healthy: boolean;
  /** Whether every block was downloaded and checked (verify) or only headers (check). */
  verifiedBlocks: boolean;
  servers: {
    serverId: Uint8Array;
    nickname?: string;
    error?: string;
    shares: ImmutableShareStatus[];
  }[];
}

export interface ImmutableContext {
  /** Servers, any order: every operation orders them on the storage index's permuted ring. */
  servers: GridServer[];
  leaseSecret: Uint8Array;
}

export interface DownloadOptions {
  offset?: number;
  length?: number;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Maximum matching between servers and share numbers (Kuhn's algorithm). */
export function happinessOf(holdings: Map<string, Set<number>>): number {
  const shareOwner = new Map<number, string>();
  const servers = [...holdings.keys()];
  function tryAssign(s: string, seen: Set<number>): boolean {
    for (const sh of holdings.get(s)!) {
      if (seen.has(sh)) continue;
      seen.add(sh);
      const owner = shareOwner.get(sh);
      if (owner === undefined || tryAssign(owner, seen)) {
        shareOwner.set(sh, s);
        return true;
      }
    }
    return false;
  }
  let m = 0;
  for (const s of servers) if (tryAssign(s, new Set())) m++;
  return m;
}

export function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error
      ? signal.reason
      : new GridError("the operation was aborted");
  }
}
