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
  readonly #observe: ((e: HistoryEntry) => void) | null;
  #saving: Promise<void> = Promise.resolve();

  /** `observe` sees every refresh recorded (before runs collapse), e.g. to count it. */
  constructor(
    initial: HistoryEntry[] = [],
    persist?: (entries: HistoryEntry[]) => Promise<void>,
    observe?: (e: HistoryEntry) => void,
  ) {
    this.#entries = initial.slice(-HISTORY_MEMORY);
    this.#persist = persist ?? null;
    this.#observe = observe ?? null;
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
    this.#observe?.(e);
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
  /** From the server's version call (last answer): bytes it can still accept, its software. */
  availableSpace: number | null;
  /** From the version call: bytes of shares it stores (null: not reported). */
  used: number | null;
  protocolSoftware: string | null;
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
        const version = server.storage.version().catch(() => null);
        const [res, ver] = await Promise.race([
          Promise.all([
            server.storage.batchRead({
              slots: [{
                storageIndex: this.#opts.gsdStorageIndex,
                shares: null,
                ranges: [{ offset: 0, size: CHECKSTRING_SIZE }],
              }],
            }),
            version,
          ]),
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
          availableSpace: ver?.availableSpace ?? prev?.availableSpace ?? null,
          used: ver?.used ?? prev?.used ?? null,
          protocolSoftware: ver?.software ?? prev?.protocolSoftware ?? null,
          error: null,
        });
      } catch (e) {
        this.#info.set(s.serverId, {
          reachable: false,
          lastContact: prev?.lastContact ?? null,
          lastProbe: now(),
          gsdSeqnum: prev?.gsdSeqnum ?? null,
          availableSpace: prev?.availableSpace ?? null,
          used: prev?.used ?? null,
          protocolSoftware: prev?.protocolSoftware ?? null,
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
  /** Bytes the server can still accept (its version call, last answer); null: not known. */
  availableSpace: number | null;
  /** Bytes of shares the server stores (its version call, last answer); null: not known. */
  used: number | null;
  error: string | null;
}

/** One thing wrong, with what fixes it. */
export interface HealthProblem {
  /** "error": the grid is unusable for this node; "warning": degraded. */
  level: "error" | "warning";
  text: string;
  fix: string;
  /** The server it is about, when it is about one. */
  serverId?: string;
}

/** The dashboard's banner and problem list (docs/web-api.md §5). */
export interface Health {
  /** "checking": no probe has answered yet. */
  level: "ok" | "warning" | "error" | "checking";
  /** One line that tells the truth, e.g. "5 of 5 servers reachable". */
  banner: string;
  reachable: number;
  known: number;
  problems: HealthProblem[];
}

/** A server whose available space is below this is reported as nearly full. */
export const LOW_SPACE_BYTES = 64 * 1024 * 1024;

function bytesText(n: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function durationText(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  if (d >= 1) return d === 1 ? "1 day" : `${d} days`;
  const h = Math.floor(seconds / 3600);
  if (h >= 1) return h === 1 ? "1 hour" : `${h} hours`;
  const m = Math.floor(seconds / 60);
  if (m >= 1) return m === 1 ? "1 minute" : `${m} minutes`;
  const sec = Math.max(0, Math.floor(seconds));
  return sec === 1 ? "1 second" : `${sec} seconds`;
}

/** Add the upkeep's problems (lease renewals failing, objects unrecoverable) to a health. */
export function withUpkeep(h: Health, u: UpkeepStatus | null | undefined): Health {
  if (!u) return h;
  const problems = [...h.problems];
  let level = h.level;
  const c = u.lastCheck;
  if (c && c.unrecoverable > 0) {
    level = "error";
    problems.push({
      level: "error",
      text:
        `${c.unrecoverable} object(s) were unrecoverable at the last check (too few shares left)`,
      fix: "start the storage servers that are down; objects come back once k shares are reachable",
    });
  }
  if (c && c.repairFailed > 0) {
    if (level !== "error") level = "warning";
    problems.push({
      level: "warning",
      text: `${c.repairFailed} repair(s) failed at the last check`,
      fix: "start the storage servers that are down or free space on them; upkeep retries",
    });
  }
  if (u.failures.length > 0) {
    if (level !== "error") level = "warning";
    const f = u.failures[u.failures.length - 1];
    problems.push({
      level: "warning",
      text:
        `${u.failures.length} lease renewal(s) failing (latest: ${f.path} on ${f.server}: ${f.error})`,
      fix: "start that server or check the network; upkeep retries at the next renewal",
    });
  }
  return { ...h, level, problems };
}

/** "storage server X is unreachable (WHY)" says WHY once the sentence names the server. */
function reasonOf(error: string): string {
  const m = /^storage server \S+ is unreachable \((.*)\)$/.exec(error);
  return m ? m[1] : error;
}

/** The truthful banner and problems, from what a status report holds. */
export function healthOf(r: Omit<StatusReport, "health">): Health {
  const problems: HealthProblem[] = [];
  const known = r.servers.length;
  const probed = r.servers.filter((s) => s.reachable !== null);
  const reachable = r.servers.filter((s) => s.reachable === true).length;
  const name = (s: StatusServer) => s.nickname || s.petname || s.serverId.slice(0, 8);
  const headline: string[] = [];
  let level: Health["level"] = "ok";
  const worse = (l: "warning" | "error") => {
    if (level !== "error") level = l;
  };

  if (r.gsd === null) {
    worse("error");
    headline.push("the grid directory has not been read yet: no server answered");
    problems.push({
      level: "error",
      text: "the grid service directory has not been read yet",
      fix: "start the storage servers in the introduction text, or check the network",
    });
  } else if (known === 0) {
    worse("error");
    headline.push("the grid directory lists no storage server");
    problems.push({
      level: "error",
      text: "the grid directory lists no storage server",
      fix: "ask the operator to add announcements (`shoal operator add-announcement`)",
    });
  } else if (probed.length === 0) {
    level = "checking";
    headline.push(`checking ${known} server${known === 1 ? "" : "s"}…`);
  } else if (reachable === 0 && probed.length === known) {
    worse("error");
    headline.push("no server reachable: start them or check the network");
  } else {
    if (reachable < known) worse("warning");
    headline.push(`${reachable} of ${known} servers reachable`);
  }
  for (const s of r.servers) {
    if (s.reachable === false) {
      problems.push({
        level: reachable === 0 ? "error" : "warning",
        text: `${name(s)} is unreachable` + (s.error ? ` (${reasonOf(s.error)})` : "") +
          (s.lastContact === null
            ? ""
            : `; last contact ${durationText(r.now - s.lastContact)} ago`),
        fix: `start it (\`shoal storage run --dir DIR\` on its host) or check the network to ${
          s.locations.join(", ") || "it"
        }`,
        serverId: s.serverId,
      });
    }
    if (s.hasNewestGsd === false) {
      worse("warning");
      problems.push({
        level: "warning",
        text:
          `${name(s)} lacks the newest grid directory (holds version ${s.gsdSeqnum ?? "none"}, ` +
          `newest is ${r.gsd?.seqnum})`,
        fix: "ask the operator to run `shoal operator maintain --dir OP`",
        serverId: s.serverId,
      });
    }
    if (s.reachable === true && s.availableSpace !== null && s.availableSpace < LOW_SPACE_BYTES) {
      worse("warning");
      problems.push({
        level: "warning",
        text: `${name(s)} is nearly full (${bytesText(s.availableSpace)} available)`,
        fix: "free disk space on its host or lower storage.reserved_space in its shoal.toml",
        serverId: s.serverId,
      });
    }
  }
  if (r.gsd && r.gsd.freshness !== "fresh") {
    const past = r.gsd.freshness === "expired-past-grace";
    worse(past ? "error" : "warning");
    const msg = `the grid directory expired ${durationText(r.now - r.gsd.expires)} ago`;
    headline.push(`${msg}: ask the operator to run \`shoal operator maintain\``);
    problems.push({
      level: past ? "error" : "warning",
      text: msg + (past ? "; new servers in it are no longer trusted" : ""),
      fix: "ask the operator to run `shoal operator maintain --dir OP`",
    });
  }
  for (const m of r.missing) {
    worse("warning");
    problems.push({
      level: "warning",
      text: `the announcement of ${m.petname} is not read yet (${m.problem})`,
      fix: `start ${m.petname} so it republishes its announcement, or ask the operator to ` +
        "remove it (`shoal operator remove-announcement`)",
    });
  }
  const last = r.history[0];
  if (last && !last.ok) {
    worse("warning");
    problems.push({
      level: "warning",
      text: `the last refresh of the server list failed: ${last.error}`,
      fix: "start at least one storage server, or check the network",
    });
  }
  return { level, banner: headline.join("; "), reachable, known, problems };
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
  /** The banner and problems with their fixes. */
  health: Health;
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
      software: s.software || p?.protocolSoftware || "",
      gsaSeqnum: s.gsaSeqnum,
      announced: s.announced,
      reachable: p ? p.reachable : null,
      lastContact: p?.lastContact ?? null,
      gsdSeqnum: p?.gsdSeqnum ?? null,
      hasNewestGsd: p && newest !== null && (p.reachable || p.gsdSeqnum !== null)
        ? p.gsdSeqnum !== null && p.gsdSeqnum >= newest
        : null,
      availableSpace: p?.availableSpace ?? null,
      used: p?.used ?? null,
      error: p?.error ?? null,
    };
  });
  const report: Omit<StatusReport, "health"> = {
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
  return { ...report, health: healthOf(report) };
}
