/**
 * `shoal client check/verify/repair` on one object (docs/client-commands.md §4): the grid's
 * health results as report lines and JSON.
 */
import { base32Encode, toHex } from "../../codec/mod.ts";
import { capKindName, isImmutableCap, isVerifyCap, isWriteCap } from "../../crypto/mod.ts";
import type { Grid, ImmutableCheck } from "../../grid/mod.ts";
import { FilesError } from "./paths.ts";
import type { FileSession, Resolved } from "./files.ts";

export interface HealthReport {
  kind: string;
  healthy: boolean;
  recoverable: boolean;
  repaired?: boolean;
  /** Human-readable lines. */
  summary: string[];
  /** The grid layer's full result (bytes as hex), for --json. */
  detail: unknown;
}

/** JSON-safe copy: bytes become hex, server ids (`serverId`, lists of them) base32. */
export function jsonSafe(x: unknown, key?: string): unknown {
  // Server ids are base32 everywhere else (servers.json, 'client servers'); other bytes hex.
  if (x instanceof Uint8Array) return key === "serverId" ? base32Encode(x) : toHex(x);
  if (Array.isArray(x)) return x.map((v) => jsonSafe(v, key));
  if (x !== null && typeof x === "object") {
    return Object.fromEntries(
      Object.entries(x as Record<string, unknown>).map(([k, v]) => [k, jsonSafe(v, k)]),
    );
  }
  return x;
}

/** When no server answered a check, say so and what to do (after the per-server lines). */
function noServerLine(servers: { error?: string | null }[], dir: string): string[] {
  if (servers.length === 0 || !servers.every((s) => s.error)) return [];
  return [
    `no storage server is reachable: none of the ${servers.length} server(s) asked answered. ` +
    `Check that they are running ('shoal storage run'); 'shoal client servers --dir ${dir}' ` +
    "shows each server's status",
  ];
}

/** "PATH:" for a report line; an alias root ("home:") keeps its single colon. */
function labelOf(display: string): string {
  return display.endsWith(":") ? display : `${display}:`;
}

/** Check, verify or repair the object CAP|PATH names. */
export async function health(
  s: FileSession,
  arg: string,
  mode: "check" | "verify" | "repair",
  opts: { verify?: boolean } = {},
): Promise<HealthReport> {
  const r = await s.resolve(arg);
  const grid = await s.grid();
  const kind = capKindName(r.parsed);
  if (isImmutableCap(r.parsed)) {
    if (mode === "repair") {
      const { happy } = s.node.config.shares;
      const res = await s.guard(() => grid.repairImmutable(r.cap, { happy, verify: opts.verify }));
      return immutableReport(s.node.dir, r, kind, res.after, res.repaired, res);
    }
    const res = await s.guard(() =>
      mode === "verify" ? grid.verifyImmutable(r.cap) : grid.checkImmutable(r.cap)
    );
    return immutableReport(s.node.dir, r, kind, res, undefined, res);
  }
  if (mode === "repair") {
    if (!isWriteCap(r.parsed)) {
      throw new FilesError(
        `${r.display}: repairing a mutable file or directory needs its writecap; only a ${kind} cap is held`,
      );
    }
    const { happy } = s.node.config.shares;
    const res = await s.guard(() => grid.respreadMutable(r.cap, happy));
    const after = await s.guard(() => grid.checkMutable(r.cap, happy));
    const rep = mutableReport(s.node.dir, r, kind, after, []);
    rep.repaired = res.repaired;
    let line: string;
    if (res.republished) {
      const placed = res.republished.placed.length;
      const failed = res.republished.failures.length;
      line = `repaired: the newest version could not be re-created exactly; rewrote its ` +
        `contents (unchanged) as version ${res.republished.seqnum} on ${placed} server(s)` +
        (failed ? `; ${failed} server(s) could not be written` : "");
    } else if (res.respread) {
      const shares = res.respread.written.reduce((a, w) => a + w.shares.length, 0);
      const failed = res.respread.failures.length;
      line = res.repaired
        ? `repaired: rewrote ${shares} share(s) of version ${res.respread.seqnum} (kept) ` +
          `on ${res.respread.written.length} server(s)` +
          (failed ? `; ${failed} server(s) could not be written` : "")
        : `repair not possible: no share could be written` +
          (failed ? ` (${failed} server(s) failed)` : "");
    } else {
      line = "repair not needed: the newest version is healthy";
    }
    rep.summary.unshift(line);
    rep.detail = jsonSafe({ repaired: res.repaired, before: res.before, after });
    return rep;
  }
  const { happy } = s.node.config.shares;
  const res = await s.guard(() => grid.checkMutable(r.cap, happy));
  const problems: string[] = [];
  if (mode === "verify" && !isVerifyCap(r.parsed) && res.recoverable) {
    const got = await s.guard(() => grid.readMutable(r.cap));
    for (const p of got.problems) {
      problems.push(
        `server ${base32Encode(p.serverId).slice(0, 8)} share ${p.shareNumber}: ${p.problem}`,
      );
    }
  }
  return mutableReport(s.node.dir, r, kind, res, problems);
}

function mutableReport(
  dir: string,
  r: Resolved,
  kind: string,
  res: Awaited<ReturnType<Grid["checkMutable"]>>,
  problems: string[],
): HealthReport {
  const holders = res.servers.filter((s) => s.shares.some((sh) => sh.newest)).length;
  const healthy = res.healthy && problems.length === 0;
  const summary = [
    `${labelOf(r.display)} ${
      healthy ? "healthy" : res.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable"
    }`,
  ];
  if (res.newest) {
    summary.push(
      `version ${res.newest.seqnum}, ${res.newest.k}-of-${res.newest.n}; newest shares on ${holders} of ${res.servers.length} server(s)`,
    );
  }
  for (const s of res.servers) {
    const who = s.nickname ?? base32Encode(s.serverId).slice(0, 8);
    if (s.error) summary.push(`  ${who}: unreachable (${s.error})`);
    for (const sh of s.shares) {
      if (sh.problem) summary.push(`  ${who}: share ${sh.shareNumber}: ${sh.problem}`);
    }
  }
  for (const p of problems) summary.push(`  ${p}`);
  summary.push(...noServerLine(res.servers, dir));
  return {
    kind,
    healthy,
    recoverable: res.recoverable,
    summary,
    detail: jsonSafe({ ...res, problems }),
  };
}

function immutableReport(
  dir: string,
  r: Resolved,
  kind: string,
  res: ImmutableCheck,
  repaired: boolean | undefined,
  detail: unknown,
): HealthReport {
  const summary = [
    `${labelOf(r.display)} ${
      res.healthy ? "healthy" : res.recoverable ? "NOT healthy (recoverable)" : "NOT recoverable"
    }`,
    `${res.sharesFound} of ${res.n} shares found (${res.k} needed), on ${res.happiness} server(s)` +
    (res.verifiedBlocks ? "; every block verified" : ""),
  ];
  if (repaired !== undefined) {
    summary.unshift(repaired ? "repaired: missing shares re-created" : "repair not needed");
  }
  for (const s of res.servers) {
    const who = s.nickname ?? base32Encode(s.serverId).slice(0, 8);
    if (s.error) summary.push(`  ${who}: unreachable (${s.error})`);
    for (const sh of s.shares) {
      if (!sh.ok) summary.push(`  ${who}: share ${sh.shareNumber}: ${sh.problem ?? "bad"}`);
    }
  }
  summary.push(...noServerLine(res.servers, dir));
  return {
    kind,
    healthy: res.healthy,
    recoverable: res.recoverable,
    repaired,
    summary,
    detail: jsonSafe(detail),
  };
}
