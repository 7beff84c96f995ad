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
  type RefreshResult,
} from "../../discovery/mod.ts";
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
  /** Why it was (re)published: "changed", "missing on N servers", "first". */
  reason: string | null;
  servers: number;
  failures: string[];
  refresh: RefreshResult | null;
  refreshError: string | null;
}

/**
 * Refresh the view of the grid, then republish the GSA when what it says
 * changed or when any known server (GSD members, the introduction text's,
 * this one) lacks its newest version.
 */
export async function publishAnnouncement(
  node: StorageNode,
  grid: GridNode,
  opts: { now?: number; memo?: { last: AnnouncementMemo | null } } = {},
): Promise<PublishReport> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const writecap = await gsaWritecap(node.dir);
  if (writecap === null) throw new AnnounceError("this server has not joined a grid");
  let refresh: RefreshResult | null = null;
  let refreshError: string | null = null;
  try {
    refresh = await grid.refresh({ now });
  } catch (e) {
    refreshError = (e as Error).message;
  }
  const targets = grid.knownUrls([storageUrlOf(node)]);
  const g = grid.grid(targets, "everywhere");
  const want = currentAnnouncement(node, now);
  const check = await g.checkMutable(writecap);
  const wantKey = announcementKey(want);
  const memo = opts.memo;
  let reason: string | null = null;
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
    else {
      if (memo) memo.last = { seqnum: newest.seqnum, rootHash: newest.rootHash, key: wantKey };
      if (!check.healthy) {
        const missing = check.servers.filter((s) => !s.shares.some((sh) => sh.newest)).length;
        reason = `missing on ${missing} server(s)`;
      }
    }
  }
  if (reason === null) {
    return {
      published: false,
      seqnum: check.newest!.seqnum,
      reason,
      servers: targets.length,
      failures: [],
      refresh,
      refreshError,
    };
  }
  const res = await g.modifyMutable(writecap, () => encodeAnnouncement(want), {
    encoding: "everywhere",
  });
  if (memo && res) memo.last = { seqnum: res.seqnum, rootHash: res.rootHash, key: wantKey };
  return {
    published: true,
    seqnum: res?.seqnum ?? null,
    reason,
    servers: targets.length,
    failures: (res?.failures ?? []).map((f) =>
      `${base32Encode(f.serverId).slice(0, 8)}: ${f.error}`
    ),
    refresh,
    refreshError,
  };
}

/**
 * While the server runs: publish the announcement at start, then refresh and
 * republish every refresh interval — and at once (after a short pause) when
 * the grid service directory is written to this server's own store, which is
 * how a server learns that the operator changed the grid.
 */
export async function runAnnouncer(
  node: StorageNode,
  store: ShareStore,
  signal: AbortSignal,
  log: (line: string) => void,
): Promise<void> {
  // Not joined yet: check again every interval ('shoal storage join' may run while we serve).
  while (
    !signal.aborted &&
    (await gsaWritecap(node.dir) === null || !(await exists(`${node.dir}/${INTRODUCTION_FILE}`)))
  ) {
    await sleep(node.config.refreshInterval * 1000, signal);
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
  const unlisten = store.addMutableWriteListener((si) => {
    if (!bytesEqual(si, gsdSi)) return;
    pending = true;
    wake?.();
  });
  let leasesRenewedAt = 0;
  const memo: { last: AnnouncementMemo | null } = { last: null };
  try {
    while (!signal.aborted) {
      pending = false;
      try {
        // Re-read the config: a nickname or location hint edited since start is announced.
        const current = await loadStorageNode(node.dir).catch(() => node);
        const r = await publishAnnouncement(current, grid, { memo });
        // Renew daily, or four times per lease period when leases are shorter than four days.
        const every = Math.min(LEASE_RENEWAL_INTERVAL_MS, current.config.leaseDuration * 250);
        if (Date.now() - leasesRenewedAt >= every) {
          const l = await renewDiscoveryLeases(current, grid);
          leasesRenewedAt = Date.now();
          if (l.failures.length) log(`lease renewal failed on ${l.failures.length} server(s)`);
        }
        if (r.refreshError) log(`grid refresh failed: ${r.refreshError}`);
        if (r.published) {
          log(`announcement version ${r.seqnum} published to ${r.servers} server(s) (${r.reason})`);
        }
        for (const f of r.failures) log(`announcement not stored on ${f}`);
      } catch (e) {
        log(`announcement failed: ${(e as Error).message}`);
      }
      if (pending || signal.aborted) continue;
      // A GSD write wakes us: wait a moment for the operator to finish writing every server.
      await sleep(node.config.refreshInterval * 1000, signal, (done) => {
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
): Promise<{ renewed: number; failures: string[] }> {
  const writecap = await gsaWritecap(node.dir);
  const slots = [storageIndexFromFingerprint(grid.intro.gsdReadcap.fingerprint)];
  if (writecap !== null) slots.push(await capStorageIndex(parseCap(writecap)));
  const servers = grid.grid(grid.knownUrls([storageUrlOf(node)])).servers.all();
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
  return { renewed, failures };
}
