/**
 * A storage server's part in discovery: joining a grid, writing its own
 * announcement (GSA) with a share on every server it knows, and keeping it
 * current. docs/discovery.md §4 and §7.
 *
 *   D/private/introduction-text   the grid's introduction text (0600)
 *   D/private/gsa-writecap        this server's GSA writecap (0600); only this server can write its GSA
 *   D/private/servers.json        servers in the GSD, as last read (0600)
 */
import { sleep } from "../../sleep.ts";
import { base32Encode, bytesEqual } from "../../codec/mod.ts";
import {
  type Cap,
  capStorageIndex,
  formatCap,
  leaseSecrets,
  parseCap,
  randomBytes,
  readcapOf,
  storageIndexFromFingerprint,
} from "../../crypto/mod.ts";
import type { ShareStore } from "../../storage/mod.ts";
import {
  type Announcement,
  decodeAnnouncement,
  encodeAnnouncement,
  type RefreshOptions,
  type RefreshResult,
} from "../../discovery/mod.ts";
import { pushNewestVersion, writeKeysFromSeed } from "../../grid/mod.ts";
import { VERSION } from "../../version.ts";
import { GridNode, INTRODUCTION_FILE } from "../gridnode.ts";
import { exists, readTextOrNull, writePrivate } from "../nodefs.ts";
import { loadStorageNode, type StorageNode, storageUrlOf } from "./node.ts";

export const GSA_WRITECAP_FILE = "private/gsa-writecap";

export class AnnounceError extends Error {
  override name = "AnnounceError";
}

export async function gsaWritecap(dir: string): Promise<string | null> {
  const t = await readTextOrNull(`${dir}/${GSA_WRITECAP_FILE}`);
  return t === null ? null : t.trim();
}

/** The GSA readcap of a joined server (what the operator links). */
export async function announcementReadcap(dir: string): Promise<string> {
  const w = await gsaWritecap(dir);
  if (w === null) {
    throw new AnnounceError(
      `${dir} has not joined a grid; run 'shoal storage join --dir ${dir} --introducer-v3 TEXT'`,
    );
  }
  return formatCap(await readcapOf(parseCap(w)));
}

export function nicknameOf(node: StorageNode): string {
  return node.config.nickname || `storage-${base32Encode(node.pin).slice(0, 8)}`;
}

/** What this server announces now. */
export function currentAnnouncement(node: StorageNode, now: number): Announcement {
  return {
    nickname: nicknameOf(node),
    serverId: node.pin,
    software: `shoal/${VERSION}`,
    announced: now,
    storage: { type: "storage", storageUrls: [storageUrlOf(node)] },
    otherServices: [],
  };
}

/** An announcement's identity for comparisons: everything but its time. */
function announcementKey(a: Announcement): string {
  return base32Encode(encodeAnnouncement({ ...a, announced: 0 }));
}

function sameAnnouncement(a: Announcement, b: Announcement): boolean {
  return announcementKey(a) === announcementKey(b);
}

/**
 * What a running server last learned about its own GSA: the version
 * (sequence number and root hash, which the signature covers) that carries
 * the announcement with key `key`. A later check that finds that same version
 * newest need not read it again.
 */
export interface AnnouncementMemo {
  seqnum: number;
  rootHash: Uint8Array;
  key: string;
}

/** Record the introduction text and make (or keep) this server's GSA writecap. Returns the readcap. */
export async function joinGrid(dir: string, text: string): Promise<string> {
  await loadStorageNode(dir); // must be a storage node
  await GridNode.recordIntroduction(dir, text);
  if (await gsaWritecap(dir) === null) {
    await writePrivate(
      `${dir}/${GSA_WRITECAP_FILE}`,
      formatCap({ kind: "mutable-write", seed: randomBytes(32) }) + "\n",
    );
  }
  return await announcementReadcap(dir);
}

export interface PublishReport {
  /** Whether a new version was written. */
  published: boolean;
  seqnum: number | null;
  /** Why it was (re)published: "first", "changed", "N new server(s)"; null when not. */
  reason: string | null;
  /** Known servers (GSD members, the introduction text's, this one). */
  servers: number;
  /** Known servers holding the newest version after this pass (as far as it knows). */
  holding: number;
  /** Servers given the existing newest version (no new version signed). */
  pushed: number;
  /** Known servers that did not answer. */
  unreachable: number;
  /** Servers lacking the newest version that refused it earlier, waiting out their backoff. */
  backingOff: number;
  failures: string[];
  refresh: RefreshResult | null;
  refreshError: string | null;
}

/**
 * Servers that refused this server's GSA, and when to offer it again (exponential backoff,
 * from one refresh interval up to an hour). A refusal never causes a new version.
 */
export class RefusalBackoff {
  #until = new Map<string, { attempts: number; until: number }>();
  constructor(readonly baseMs: number, readonly maxMs = 3600_000) {}
  waiting(serverId: Uint8Array, now = Date.now()): boolean {
    const b = this.#until.get(base32Encode(serverId));
    return !!b && b.until > now;
  }
  refused(serverId: Uint8Array, now = Date.now()): void {
    const key = base32Encode(serverId);
    const attempts = (this.#until.get(key)?.attempts ?? 0) + 1;
    const delay = Math.min(this.maxMs, this.baseMs * 2 ** (attempts - 1));
    this.#until.set(key, { attempts, until: now + delay });
  }
  accepted(serverId: Uint8Array): void {
    this.#until.delete(base32Encode(serverId));
  }
}

/** This server first, then every other server it knows (its own URL wins for its own id). */
function targetUrls(node: StorageNode, grid: GridNode) {
  const self = storageUrlOf(node);
  return [self, ...grid.knownUrls().filter((u) => !bytesEqual(u.pin, self.pin))];
}

/**
 * Refresh the view of the grid, then make sure every known server holds the newest
 * version of this server's GSA, writing a new version only when what it says changed or a
 * new server cannot be given a share of the current one (docs/discovery.md §7):
 *
 *  - nothing published yet, or the announcement changed: a new version, on every server;
 *  - a server that answers but lacks the newest version (it was down, or refused it): the
 *    same version is copied to it (pushNewestVersion), no new signature;
 *  - a newcomer beyond the version's share count: a new version (the only way to add a share);
 *  - a server that refused is offered it again only after its backoff (`backoff`).
 */
export async function publishAnnouncement(
  node: StorageNode,
  grid: GridNode,
  opts: {
    now?: number;
    memo?: { last: AnnouncementMemo | null };
    backoff?: RefusalBackoff;
    /** Refresh options (a running server passes its retry policy; a GSD write asks itself first). */
    refresh?: RefreshOptions;
  } = {},
): Promise<PublishReport> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const writecap = await gsaWritecap(node.dir);
  if (writecap === null) throw new AnnounceError("this server has not joined a grid");
  let refresh: RefreshResult | null = null;
  let refreshError: string | null = null;
  try {
    refresh = await grid.refresh({ now, self: storageUrlOf(node), ...opts.refresh });
  } catch (e) {
    refreshError = (e as Error).message;
  }
  const targets = targetUrls(node, grid);
  const g = grid.grid(targets, "everywhere");
  const want = currentAnnouncement(node, now);
  const check = await g.checkMutable(writecap);
  const wantKey = announcementKey(want);
  const memo = opts.memo;
  const backoff = opts.backoff;
  let reason: string | null = null;
  const unreachable = check.servers.filter((s) => s.error).length;
  const report = (r: Partial<PublishReport>): PublishReport => ({
    published: false,
    seqnum: check.newest?.seqnum ?? null,
    reason: null,
    servers: targets.length,
    holding: check.servers.filter((s) => s.shares.some((sh) => sh.newest)).length,
    pushed: 0,
    unreachable,
    backingOff: 0,
    failures: [],
    refresh,
    refreshError,
    ...r,
  });
  if (!check.newest) reason = "first";
  else {
    const newest = check.newest;
    // A newest version already known to carry this announcement need not be read again.
    let carries = memo?.last?.key === wantKey && memo.last.seqnum === newest.seqnum &&
      bytesEqual(memo.last.rootHash, newest.rootHash);
    if (!carries) {
      try {
        carries = sameAnnouncement(
          decodeAnnouncement((await g.readMutable(writecap)).contents),
          want,
        );
      } catch { /* unreadable: republish */ }
    }
    if (!carries) reason = "changed";
    else if (memo) memo.last = { seqnum: newest.seqnum, rootHash: newest.rootHash, key: wantKey };
  }
  const failures: string[] = [];
  const short = (id: Uint8Array) => base32Encode(id).slice(0, 8);
  if (reason === null) {
    // Servers that answered and lack the newest version, and may be offered it now.
    const lackingAll = check.servers.filter((s) => !s.error && !s.shares.some((sh) => sh.newest));
    const lacking = lackingAll.filter((s) => !backoff?.waiting(s.serverId));
    const backingOff = lackingAll.length - lacking.length;
    if (lacking.length === 0) return report({ backingOff });
    const servers = g.servers.all();
    const lackingServers = servers.filter((sv) =>
      lacking.some((l) => bytesEqual(l.serverId, sv.serverId))
    );
    const keys = await writeKeysFromSeed(
      (parseCap(writecap) as Extract<Cap, { kind: "mutable-write" }>).seed,
    );
    let push;
    try {
      push = await pushNewestVersion(
        { servers, leaseSecret: grid.leaseSecret },
        keys,
        lackingServers,
      );
    } catch (e) {
      // The version could not be copied (unreadable here): sign the current one again.
      push = null;
      failures.push(`copying version ${check.newest!.seqnum}: ${(e as Error).message}`);
    }
    if (push) {
      for (const id of push.placed) backoff?.accepted(id);
      for (const f of push.failures) {
        backoff?.refused(f.serverId);
        failures.push(`${short(f.serverId)}: ${f.error}`);
      }
      if (push.noRoom.length === 0) {
        return report({
          pushed: push.placed.length,
          holding: report({}).holding + push.placed.length,
          backingOff,
          failures,
        });
      }
      reason = `${push.noRoom.length} new server(s)`;
    } else reason = "unreadable";
  }
  const res = await g.modifyMutable(writecap, () => encodeAnnouncement(want), {
    encoding: "everywhere",
  });
  if (memo && res) memo.last = { seqnum: res.seqnum, rootHash: res.rootHash, key: wantKey };
  for (const p of res?.placed ?? []) backoff?.accepted(p.serverId);
  for (const f of res?.failures ?? []) {
    backoff?.refused(f.serverId);
    failures.push(`${short(f.serverId)}: ${f.error}`);
  }
  return report({
    published: true,
    seqnum: res?.seqnum ?? null,
    reason,
    holding: res?.placed.length ?? 0,
    failures,
  });
}

/** How often a not-yet-joined running server looks for 'shoal storage join' (a file check). */
export const JOIN_POLL_MS = 500;

/**
 * While the server runs: publish the announcement at start, then refresh and
 * republish every refresh interval — and at once (after a short pause) when
 * the grid service directory is written to this server's own store, which is
 * how a server learns that the operator changed the grid. A server not yet
 * joined notices 'shoal storage join' within JOIN_POLL_MS.
 */
export async function runAnnouncer(
  node: StorageNode,
  store: ShareStore,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<void> {
  // Not joined yet: look again every JOIN_POLL_MS ('shoal storage join' may run while we serve).
  while (
    !signal.aborted &&
    (await gsaWritecap(node.dir) === null || !(await exists(`${node.dir}/${INTRODUCTION_FILE}`)))
  ) {
    await sleep(JOIN_POLL_MS, signal);
  }
  if (signal.aborted) return;
  const grid = await GridNode.load(node.dir);
  if (!grid) return;
  // On shutdown, close our connections at once so a request in flight fails now
  // instead of waiting for its timeout.
  const closeNow = () => grid.close();
  signal.addEventListener("abort", closeNow, { once: true });
  const gsdSi = storageIndexFromFingerprint(grid.intro.gsdReadcap.fingerprint);
  let wake: (() => void) | null = null;
  let pending = false;
  let gsdWritten = false;
  const unlisten = store.addMutableWriteListener((si) => {
    if (!bytesEqual(si, gsdSi)) return;
    pending = true;
    gsdWritten = true;
    wake?.();
  });
  let leasesRenewedAt = 0;
  const memo: { last: AnnouncementMemo | null } = { last: null };
  const backoff = new RefusalBackoff(node.config.refreshInterval * 1000);
  try {
    while (!signal.aborted) {
      pending = false;
      // A GSD write to our own store: read the GSD in full, asking ourselves first.
      const afterGsdWrite = gsdWritten;
      gsdWritten = false;
      try {
        // Re-read the config: a nickname or location hint edited since start is announced.
        const current = await loadStorageNode(node.dir).catch(() => node);
        // Leases first (cheap): the GSD and this GSA must outlive a slow cycle.
        // Renew daily, or four times per lease period when leases are shorter than four days.
        const every = Math.min(LEASE_RENEWAL_INTERVAL_MS, current.config.leaseDuration * 250);
        if (Date.now() - leasesRenewedAt >= every) {
          const l = await renewDiscoveryLeases(current, grid);
          leasesRenewedAt = Date.now();
          if (l.failedServers.length) {
            log(
              `lease renewal failed on ${l.failedServers.length} of ${l.servers} server(s): ${
                l.failedServers.slice(0, 3).join("; ")
              }`,
            );
          }
        }
        const r = await publishAnnouncement(current, grid, {
          memo,
          backoff,
          refresh: {
            retryMissing: "due",
            retryMaxSeconds: current.config.refreshInterval,
            ...(afterGsdWrite ? { quick: false, selfFirst: true } : {}),
          },
        });
        if (r.refreshError) log(`grid refresh failed: ${r.refreshError}`);
        if (r.published) {
          log(
            `announcement version ${r.seqnum} (${r.reason}) stored on ${r.holding} of ${r.servers} server(s)` +
              (r.failures.length ? `, refused by ${r.failures.length}` : "") +
              (r.unreachable ? `; ${r.unreachable} did not answer` : ""),
          );
        } else if (r.pushed) {
          log(
            `announcement version ${r.seqnum} copied to ${r.pushed} server(s) lacking it; ` +
              `now on ${r.holding} of ${r.servers}`,
          );
        }
        for (const f of r.failures) log(`announcement not stored on ${f}`);
      } catch (e) {
        log(`announcement failed: ${(e as Error).message}`);
      }
      if (pending || signal.aborted) continue;
      // A GSD write wakes us: wait a moment for the operator to finish writing every server.
      const missing = grid.state.missing ?? [];
      const untilRetry = missing.length
        ? Math.max(100, Math.min(...missing.map((m) => m.nextTry * 1000)) - Date.now())
        : Infinity;
      await sleep(Math.min(node.config.refreshInterval * 1000, untilRetry), signal, (done) => {
        wake = () => setTimeout(done, 300);
      });
      wake = null;
    }
  } finally {
    unlisten();
    grid.close();
  }
}

/** How often a running server renews its leases on the GSD and on its own GSA. */
export const LEASE_RENEWAL_INTERVAL_MS = 24 * 3600 * 1000;

/**
 * Add or renew this server's own lease on the GSD and on its GSA, on every
 * server it knows, so neither is garbage-collected while any server of the
 * grid runs (leases last 31 days by default; see docs/storage-node.md).
 */
export async function renewDiscoveryLeases(
  node: StorageNode,
  grid: GridNode,
): Promise<{ renewed: number; failures: string[]; servers: number; failedServers: string[] }> {
  const writecap = await gsaWritecap(node.dir);
  const slots = [storageIndexFromFingerprint(grid.intro.gsdReadcap.fingerprint)];
  if (writecap !== null) slots.push(await capStorageIndex(parseCap(writecap)));
  const servers = grid.grid(targetUrls(node, grid)).servers.all();
  let renewed = 0;
  const failures: string[] = [];
  await Promise.all(servers.flatMap((s) =>
    slots.map(async (si) => {
      const secrets = leaseSecrets(grid.leaseSecret, si, s.serverId);
      try {
        await s.storage.renewLease(si, { renew: secrets.renew, cancel: secrets.cancel });
        renewed++;
      } catch (e) {
        failures.push(`${base32Encode(s.serverId).slice(0, 8)}: ${(e as Error).message}`);
      }
    })
  ));
  // One line per server (a server failing for both slots is one failed server).
  const failedServers = [...new Set(failures.map((f) => f.slice(0, f.indexOf(":"))))];
  return { renewed, failures, servers: servers.length, failedServers };
}
