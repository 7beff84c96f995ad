/**
 * What the dashboard shows besides files: this node's refresh history
 * (bounded, in memory, last entries persisted by the caller) and a probe of
 * every recorded server (reachable, last successful contact, which GSD
 * version it holds). docs/web-api.md §5.
 */
import { sleep } from "../sleep.ts";
import { readU64be } from "../codec/mod.ts";
import {
  type ClientPool,
  type DiscoveryState,
  gsdFreshness,
  type RefreshResult,
} from "../discovery/mod.ts";
import { CHECKSTRING_SIZE, mapLimit } from "../grid/mod.ts";
import { parseStorageUrl } from "../storage/mod.ts";
import type { UpkeepStatus } from "../roles/client/upkeep.ts";

/** One refresh outcome; runs of unchanged quick refreshes collapse into one entry (`count`). */
export interface HistoryEntry {
  /** Seconds since the epoch of the first refresh this entry stands for. */
  time: number;
  /** Seconds since the epoch of the last refresh this entry stands for. */
  last: number;
  count: number;
  ok: boolean;
  /** A full read of the GSD (something changed or nothing was known), or the one-request check. */
  full: boolean;
  servers: number;
  gsdSeqnum: number | null;
  added: string[];
  removed: string[];
  updated: string[];
  problems: string[];
  /** Why the refresh failed (no secrets), when !ok. */
  error: string | null;
}

export const HISTORY_MEMORY = 200;
export const HISTORY_PERSISTED = 50;

export class RefreshHistory {
  #entries: HistoryEntry[];
  readonly #persist: ((entries: HistoryEntry[]) => Promise<void>) | null;
  #saving: Promise<void> = Promise.resolve();

  constructor(initial: HistoryEntry[] = [], persist?: (entries: HistoryEntry[]) => Promise<void>) {
    this.#entries = initial.slice(-HISTORY_MEMORY);
    this.#persist = persist ?? null;
  }

  /** Parse persisted entries; anything malformed yields an empty history. */
  static parse(json: string | null): HistoryEntry[] {
    if (json === null) return [];
    try {
      const d = JSON.parse(json);
      if (!Array.isArray(d?.entries)) return [];
      return (d.entries as HistoryEntry[]).filter((e) =>
        e && typeof e.time === "number" && typeof e.ok === "boolean" && Array.isArray(e.added) &&
        Array.isArray(e.removed) && Array.isArray(e.updated) && Array.isArray(e.problems)
      );
    } catch {
      return [];
    }
  }

  static serialize(entries: HistoryEntry[]): string {
    return JSON.stringify({ version: 1, entries: entries.slice(-HISTORY_PERSISTED) }, null, 1) +
      "\n";
  }

  entries(): HistoryEntry[] {
    return [...this.#entries];
  }

  recordResult(r: RefreshResult, state: DiscoveryState, now = Math.floor(Date.now() / 1000)): void {
    this.#add({
      time: now,
      last: now,
      count: 1,
      ok: true,
      full: r.full,
      servers: state.servers.length,
      gsdSeqnum: state.gsd?.seqnum ?? null,
      added: r.added,
      removed: r.removed,
      updated: r.updated,
      problems: r.problems,
      error: null,
    });
  }

  recordFailure(message: string, state: DiscoveryState, now = Math.floor(Date.now() / 1000)): void {
    this.#add({
      time: now,
      last: now,
      count: 1,
      ok: false,
      full: false,
      servers: state.servers.length,
      gsdSeqnum: state.gsd?.seqnum ?? null,
      added: [],
      removed: [],
      updated: [],
      problems: [],
      error: message,
    });
  }

  #add(e: HistoryEntry): void {
    const prev = this.#entries[this.#entries.length - 1];
    const quiet = (x: HistoryEntry) =>
      !x.added.length && !x.removed.length && !x.updated.length && !x.problems.length;
    if (
      prev && prev.ok === e.ok && prev.full === e.full && !e.full && quiet(prev) && quiet(e) &&
      prev.error === e.error && prev.servers === e.servers && prev.gsdSeqnum === e.gsdSeqnum
    ) {
      prev.count++;
      prev.last = e.time;
      return;
    }
    this.#entries.push(e);
    if (this.#entries.length > HISTORY_MEMORY) {
      this.#entries.splice(0, this.#entries.length - HISTORY_MEMORY);
    }
    if (this.#persist) {
      const snapshot = this.entries();
      this.#saving = this.#saving.then(() => this.#persist!(snapshot)).catch(() => {});
    }
  }

  /** Wait for pending writes. */
  flush(): Promise<void> {
    return this.#saving;
  }
}

/** What the probe last learned about one server. */
export interface ProbeInfo {
  reachable: boolean;
  /** Seconds since the epoch of the last successful contact (this process), or null. */
  lastContact: number | null;
  /** Seconds since the epoch of the last probe attempt. */
  lastProbe: number;
  /** Highest GSD sequence number among the shares this server holds (null: none or unknown). */
  gsdSeqnum: number | null;
  error: string | null;
}

export interface ProbeOptions {
  pool: ClientPool;
  gsdStorageIndex: Uint8Array;
  state: () => DiscoveryState;
  intervalMs: number;
  timeoutMs?: number;
  signal: AbortSignal;
}

/** Asks every recorded server for the GSD's checkstring once per interval. */
export class ServerProbe {
  readonly #info = new Map<string, ProbeInfo>();
  readonly #opts: ProbeOptions;
  #running: Promise<void> | null = null;
  #wake: (() => void) | null = null;

  constructor(opts: ProbeOptions) {
    this.#opts = opts;
  }

  info(serverId: string): ProbeInfo | undefined {
    return this.#info.get(serverId);
  }

  start(): void {
    if (this.#running) return;
    this.#running = this.#loop();
  }

  /** Probe again now (e.g. after a refresh changed the list). */
  poke(): void {
    this.#wake?.();
  }

  async stopped(): Promise<void> {
    await this.#running;
  }

  async #loop(): Promise<void> {
    const { signal } = this.#opts;
    while (!signal.aborted) {
      await this.probeOnce().catch(() => {});
      await sleep(this.#opts.intervalMs, signal, (done) => (this.#wake = done));
      this.#wake = null;
    }
  }

  async probeOnce(): Promise<void> {
    const st = this.#opts.state();
    const timeoutMs = this.#opts.timeoutMs ?? 5000;
    const ids = new Set(st.servers.map((s) => s.serverId));
    for (const k of [...this.#info.keys()]) if (!ids.has(k)) this.#info.delete(k);
    await mapLimit(st.servers, 16, async (s) => {
      const now = () => Math.floor(Date.now() / 1000);
      const prev = this.#info.get(s.serverId);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const server = this.#opts.pool.server(parseStorageUrl(s.storageUrls[0]), s.nickname);
        const res = await Promise.race([
          server.storage.batchRead({
            slots: [{
              storageIndex: this.#opts.gsdStorageIndex,
              shares: null,
              ranges: [{ offset: 0, size: CHECKSTRING_SIZE }],
            }],
          }),
          new Promise<never>((_, rej) => {
            timer = setTimeout(() => rej(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
            // Stopping the probe ends a probe in flight at once.
            this.#opts.signal.addEventListener("abort", () => rej(new Error("probe stopped")), {
              once: true,
            });
          }),
        ]);
        let seq: number | null = null;
        for (const slot of res.slots) {
          for (const sh of slot.shares) {
            const d = sh.data[0];
            if (d && d.length >= 9) seq = Math.max(seq ?? 0, readU64be(d, 1));
          }
        }
        const t = now();
        this.#info.set(s.serverId, {
          reachable: true,
          lastContact: t,
          lastProbe: t,
          gsdSeqnum: seq,
          error: null,
        });
      } catch (e) {
        this.#info.set(s.serverId, {
          reachable: false,
          lastContact: prev?.lastContact ?? null,
          lastProbe: now(),
          gsdSeqnum: prev?.gsdSeqnum ?? null,
          error: (e as Error).message,
        });
      } finally {
        clearTimeout(timer);
      }
    });
  }
}

export interface StatusServer {
  petname: string;
  nickname: string;
  serverId: string;
  locations: string[];
  software: string;
  gsaSeqnum: number;
  announced: number;
  /** null until the first probe has answered or failed. */
  reachable: boolean | null;
  lastContact: number | null;
  gsdSeqnum: number | null;
  /** Whether this server holds the newest GSD version this node knows. */
  hasNewestGsd: boolean | null;
  error: string | null;
}

export interface StatusReport {
  /** "client": the full gateway; "operator": the operator's status-only dashboard. */
  role: "client" | "operator";
  now: number;
  nickname: string;
  refreshInterval: number;
  refreshedAt: number | null;
  gsd: {
    seqnum: number;
    issued: number;
    expires: number;
    freshness: string;
    /** Server ids holding the newest copy (as last probed). */
    holders: string[];
    /** Server ids known (by probe) not to hold it. */
    lacking: string[];
  } | null;
  servers: StatusServer[];
  /** GSD entries whose announcement is not held yet (no cap). */
  missing: {
    petname: string;
    serverId: string | null;
    since: number;
    attempts: number;
    problem: string;
  }[];
  history: HistoryEntry[];
  /**
   * Client nodes: lease renewal and repair (docs/leases-and-upkeep.md §6) — the last and
   * next rounds, renewals still failing, recent decisions. Paths only, never a cap.
   */
  upkeep?: UpkeepStatus | null;
}

function locationsOf(url: string): string[] {
  try {
    return parseStorageUrl(url).locations;
  } catch {
    return [];
  }
}

/** The dashboard's JSON: never a storage URL (swissnum) or a cap. */
export function statusReport(
  state: DiscoveryState,
  probe: ServerProbe | null,
  history: RefreshHistory,
  node: { role: "client" | "operator"; nickname: string; refreshInterval: number },
  now = Math.floor(Date.now() / 1000),
): StatusReport {
  const newest = state.gsd?.seqnum ?? null;
  const servers: StatusServer[] = state.servers.map((s) => {
    const p = probe?.info(s.serverId);
    return {
      petname: s.petname,
      nickname: s.nickname,
      serverId: s.serverId,
      locations: locationsOf(s.storageUrls[0]),
      software: s.software,
      gsaSeqnum: s.gsaSeqnum,
      announced: s.announced,
      reachable: p ? p.reachable : null,
      lastContact: p?.lastContact ?? null,
      gsdSeqnum: p?.gsdSeqnum ?? null,
      hasNewestGsd: p && newest !== null && (p.reachable || p.gsdSeqnum !== null)
        ? p.gsdSeqnum !== null && p.gsdSeqnum >= newest
        : null,
      error: p?.error ?? null,
    };
  });
  return {
    role: node.role,
    now,
    nickname: node.nickname,
    refreshInterval: node.refreshInterval,
    refreshedAt: state.refreshedAt,
    gsd: state.gsd
      ? {
        seqnum: state.gsd.seqnum,
        issued: state.gsd.issued,
        expires: state.gsd.expires,
        freshness: gsdFreshness(state.gsd, now),
        holders: servers.filter((s) => s.hasNewestGsd === true).map((s) => s.serverId),
        lacking: servers.filter((s) => s.hasNewestGsd === false).map((s) => s.serverId),
      }
      : null,
    servers,
    missing: (state.missing ?? []).map((m) => ({
      petname: m.petname,
      serverId: m.serverId,
      since: m.since,
      attempts: m.attempts,
      problem: m.problem,
    })),
    history: history.entries().reverse(),
  };
}
