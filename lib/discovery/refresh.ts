/**
 * Joining and refreshing: from an introduction text (and the servers recorded
 * last time) to the current server list. docs/discovery.md §5.
 *
 *  1. connect to storage servers from the text or the recorded list;
 *  2. read the GSD (from up to `fanout` servers, newest valid version wins,
 *     never older than the version accepted before);
 *  3. read every linked GSA in one batch request per asked server;
 *  4. return the new server list, with what was added, removed and changed.
 *
 * An unchanged grid costs one small request to one server (rotating between
 * refreshes): a poll of the slot watch over the GSD and every recorded GSA
 * (docs/storage-protocol.md "Slot watches"), whose digest the client computes
 * from the checkstrings it recorded. With `wait`, the poll is a long poll that
 * answers as soon as any of those slots is written on that server. On a
 * mismatch the checkstrings are read (one batch request) so that only the
 * changed GSAs are fetched; a server without watches gets that batch read only.
 */
import { base32Encode, bytesEqual, fromHex, toHex } from "../codec/mod.ts";
import { storageIndexFromFingerprint } from "../crypto/mod.ts";
import {
  CHECKSTRING_SIZE,
  decodeDirectoryDoc,
  type GridServer,
  mapUpdateMany,
  type MutableVerifyKeys,
  retrieve,
  RollbackError,
  type Servermap,
  withinDeadline,
} from "../grid/mod.ts";
import {
  formatStorageUrl,
  parseStorageUrl,
  type StorageClient,
  StorageError,
  type StorageUrl,
  watchDigest,
  watchId,
} from "../storage/mod.ts";
import { type Announcement, decodeAnnouncement } from "./gsa.ts";
import { type Freshness, gsdFreshness, gsdLinks, type GsdMeta, parseGsdMeta } from "./gsd.ts";
import type { IntroductionText } from "./introduction.ts";
import type { ClientPool } from "./pool.ts";

export interface RecordedServer {
  petname: string;
  nickname: string;
  /** base32 of the server's pin. */
  serverId: string;
  storageUrls: string[];
  software: string;
  announced: number;
  gsaReadcap: string;
  gsaSeqnum: number;
  /** hex of the GSA version's checkstring. */
  gsaCheckstring: string;
  /** The server id its GSD entry is bound to (docs/discovery.md §3), if the entry names one. */
  boundServerId?: string | null;
}

/**
 * A GSD entry whose announcement could not be read (or was refused) yet: retried on every
 * refresh that is due, from every server that might hold it, with backoff (docs/discovery.md §5).
 */
export interface MissingAnnouncement {
  petname: string;
  gsaReadcap: string;
  /** The server id the entry is bound to (base32), if any. */
  serverId: string | null;
  /** Seconds since the epoch when it was first found missing. */
  since: number;
  /** Failed attempts so far. */
  attempts: number;
  /** Seconds since the epoch before which a running node does not try again. */
  nextTry: number;
  /** Why the last attempt failed (never a cap or URL). */
  problem: string;
}

export interface DiscoveryState {
  version: 1;
  gsd: (GsdMeta & { seqnum: number; checkstring: string }) | null;
  servers: RecordedServer[];
  /** GSD entries whose announcement is not held yet (absent in older files: none). */
  missing?: MissingAnnouncement[];
  /** Seconds since the epoch of the last successful refresh. */
  refreshedAt: number | null;
  /** Rotates the server asked on quick refreshes. */
  cursor: number;
}

export function emptyState(): DiscoveryState {
  return { version: 1, gsd: null, servers: [], missing: [], refreshedAt: null, cursor: 0 };
}

export interface RefreshResult {
  state: DiscoveryState;
  /** Whether a full read was needed (something changed, or nothing was known). */
  full: boolean;
  added: string[];
  removed: string[];
  updated: string[];
  problems: string[];
  freshness: Freshness | null;
  /**
   * How an unchanged grid was confirmed without a full read: "watch" (the slot
   * watch digest matched, after waiting when `wait` was given) or "batch" (the
   * checkstrings were read); null when a full read ran.
   */
  quick?: "watch" | "batch" | null;
}

export class DiscoveryError extends Error {
  override name = "DiscoveryError";
}

export interface RefreshOptions {
  now?: number;
  /** How many servers to read the GSD and GSAs from (default 2). */
  fanout?: number;
  /** Try the one-request unchanged check first (default true). */
  quick?: boolean;
  /** Seconds past expiry during which an expired GSD is still used. */
  expiryGrace?: number;
  /**
   * Long poll: wait up to this many seconds (at most 60) for a change on the
   * server asked before answering "unchanged" (default 0: answer at once).
   */
  wait?: number;
  /** Abandons a waiting poll; the refresh then throws DiscoveryError. */
  signal?: AbortSignal;
  /**
   * Missing announcements to retry: "all" (default: one-shot commands) or only those whose
   * backoff has passed ("due": running nodes).
   */
  retryMissing?: "all" | "due";
  /** Longest backoff between retries of a missing announcement, seconds (default 60). */
  retryMaxSeconds?: number;
  /**
   * This node's own storage URL, when it is a storage server: it is always used for its own
   * server id, whatever a GSA claims, and is a candidate too.
   */
  self?: StorageUrl;
  /** Ask `self` first (after a write of the GSD to this server's own store). */
  selfFirst?: boolean;
}

/** Registration bodies up to this size are sent at once; larger ones only after a 404. */
const REGISTER_FIRST_MAX_BYTES = 1024;
/** The watch id each storage API object is known to hold (registered by this process). */
const registeredWatch = new WeakMap<object, string>();

type WatchApi = Pick<StorageClient, "registerWatch" | "pollWatch">;

interface Candidate {
  url: StorageUrl;
  nickname?: string;
}

function candidates(
  intro: IntroductionText,
  state: DiscoveryState,
  self?: StorageUrl,
): Candidate[] {
  const seen = new Set<string>();
  const out: Candidate[] = [];
  const push = (url: StorageUrl, nickname?: string) => {
    const key = base32Encode(url.pin);
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ url, nickname });
  };
  if (self) push(self);
  for (const s of state.servers) {
    for (const u of s.storageUrls) {
      try {
        push(parseStorageUrl(u), s.nickname);
        break;
      } catch { /* a recorded URL we can no longer parse: skip */ }
    }
  }
  for (const u of intro.storageUrls) push(u);
  return out;
}

/** How long one quick check may take (plus its long-poll wait) before the next server is asked. */
export const QUICK_CHECK_DEADLINE_MS = 5000;

/**
 * Refreshes in a row that ask the same server first: 1, so a server that answers "unchanged"
 * with an old but validly signed view holds a running client back for one poll at most
 * (docs/discovery.md §5, "Rotation").
 */
export const ROTATE_EVERY = 1;

function rotate<T>(items: T[], by: number): T[] {
  if (items.length === 0) return items;
  const k = ((by % items.length) + items.length) % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function gsaKeys(readcapText: string): MutableVerifyKeys & { readkey: Uint8Array } {
  const { readkey, fingerprint } = parseReadcap(readcapText);
  return { readkey, fingerprint, storageIndex: storageIndexFromFingerprint(fingerprint) };
}

function parseReadcap(text: string): { readkey: Uint8Array; fingerprint: Uint8Array } {
  // Recorded readcaps were validated when recorded; gsdLinks validates new ones.
  const { links } = gsdLinks([{ name: "v1.x", readcap: text, metadata: {} }]);
  if (!links.length) throw new DiscoveryError("a recorded GSA readcap is malformed");
  return links[0].gsaReadcap;
}

/**
 * The one-request check: the checkstrings of the GSD and every recorded GSA,
 * as one server holds them. Returns what it saw (storage index hex →
 * checkstring hexes) and whether everything matches the recorded state.
 */
async function quickCheck(
  server: GridServer,
  gsdKeys: MutableVerifyKeys,
  state: DiscoveryState,
): Promise<{ unchanged: boolean; observed: Map<string, string[]> }> {
  const slots = watchedSlots(gsdKeys, state);
  const res = await server.storage.batchRead({
    slots: slots.map((s) => ({
      storageIndex: s.si,
      shares: null,
      ranges: [{ offset: 0, size: CHECKSTRING_SIZE }],
    })),
  });
  const observed = new Map<string, string[]>();
  for (const r of res.slots) {
    observed.set(
      toHex(r.storageIndex),
      r.shares.map((sh) => toHex(sh.data[0] ?? new Uint8Array(0))),
    );
  }
  const unchanged = slots.every((s) => {
    const got = observed.get(toHex(s.si));
    return !!got && got.length > 0 && got.every((c) => c === s.want);
  });
  return { unchanged, observed };
}

/**
 * The GSD sequence number a quick check saw, when every share of the GSD the server holds is
 * of a version older than recorded (the checkstring starts with the version byte and the
 * 8-byte sequence number); null otherwise. Unsigned data: a server that lies here only gets
 * itself skipped, as a stale one is.
 */
function olderGsd(
  observed: Map<string, string[]>,
  gsdKeys: MutableVerifyKeys,
  state: DiscoveryState,
): number | null {
  const seen = observed.get(toHex(gsdKeys.storageIndex)) ?? [];
  if (!state.gsd || seen.length === 0) return null;
  let newest = -1;
  for (const hex of seen) {
    const c = fromHex(hex);
    if (c.length < 9) return null;
    const seq = Number(new DataView(c.buffer, c.byteOffset + 1, 8).getBigUint64(0));
    newest = Math.max(newest, seq);
  }
  return newest < state.gsd.seqnum ? newest : null;
}

/** The slots a quick check covers, with the checkstring each is expected to hold. */
function watchedSlots(
  gsdKeys: MutableVerifyKeys,
  state: DiscoveryState,
): { si: Uint8Array; want: string }[] {
  return [
    { si: gsdKeys.storageIndex, want: state.gsd!.checkstring },
    ...state.servers.map((s) => ({
      si: gsaKeys(s.gsaReadcap).storageIndex,
      want: s.gsaCheckstring,
    })),
  ];
}

/**
 * The slot-watch check: true when the server's digest equals the one computed
 * from the recorded checkstrings (each slot holding exactly one share, as the
 * "everywhere" encoding places one share per server); with `wait`, only after
 * the server held the poll that long without a change. Returns null when the
 * server has no slot watches.
 */
async function watchCheck(
  server: GridServer,
  gsdKeys: MutableVerifyKeys,
  state: DiscoveryState,
  wait: number,
  signal: AbortSignal | undefined,
): Promise<boolean | null> {
  const api = server.storage as Partial<WatchApi>;
  if (typeof api.pollWatch !== "function" || typeof api.registerWatch !== "function") return null;
  const slots = watchedSlots(gsdKeys, state);
  const sis = slots.map((s) => s.si);
  const wid = watchId(sis);
  const expect = watchDigest(slots.map((s) => [fromHex(s.want)]));
  const register = async () => {
    const r = await api.registerWatch!(sis);
    registeredWatch.set(api, wid);
    return r.digest;
  };
  let digest: Uint8Array;
  let waited = false;
  try {
    if (registeredWatch.get(api) !== wid && sis.length * 16 <= REGISTER_FIRST_MAX_BYTES) {
      digest = await register();
    } else {
      try {
        digest = await api.pollWatch(wid, { expect, wait, signal });
        registeredWatch.set(api, wid);
        waited = true;
      } catch (e) {
        if (!(e instanceof StorageError && e.code === "unknown-watch")) throw e;
        digest = await register();
      }
    }
    if (!waited && wait > 0 && bytesEqual(digest, expect)) {
      digest = await api.pollWatch(wid, { expect, wait, signal });
    }
  } catch (e) {
    // Any other refusal (an older server: no such route): fall back to reading checkstrings.
    if (e instanceof StorageError && e.code !== "unknown-watch") return null;
    throw e;
  }
  return bytesEqual(digest, expect);
}

/** Read the GSD from up to `fanout` responsive servers; returns the servermap and who answered. */
async function readGsdMaps(
  pool: ClientPool,
  cands: Candidate[],
  gsdKeys: MutableVerifyKeys,
  fanout: number,
  minSeqnum = -1,
): Promise<{ map: Servermap; sources: GridServer[]; errors: string[] }> {
  const sources: GridServer[] = [];
  const maps: Servermap[] = [];
  const errors: string[] = [];
  let newest = -1;
  let i = 0;
  // Servers that answer with only older versions than recorded (they missed the operator's
  // last write) do not count: the next ones are asked, `fanout` at a time, until one holds
  // a version at least as new as recorded, or every candidate was asked.
  const fresh = () => newest >= minSeqnum;
  while ((sources.length < fanout || !fresh()) && i < cands.length) {
    const batch = cands.slice(i, i + Math.max(1, fanout - (fresh() ? sources.length : 0)));
    i += batch.length;
    const servers = batch.map((c) => pool.server(c.url, c.nickname));
    const [map] = await mapUpdateMany({ servers, leaseSecret: new Uint8Array(32) }, [gsdKeys], {
      initialReadSize: null,
    });
    for (const s of map.servers) {
      if (s.error) errors.push(`${base32Encode(s.server.serverId).slice(0, 8)}: ${s.error}`);
      else sources.push(s.server);
    }
    for (const v of map.versions) newest = Math.max(newest, v.prefix.seqnum);
    maps.push(map);
  }
  const merged: Servermap = {
    storageIndex: gsdKeys.storageIndex,
    servers: maps.flatMap((m) => m.servers),
    versions: [],
  };
  // Merge versions by key (holders from every map).
  const byKey = new Map<string, Servermap["versions"][number]>();
  for (const m of maps) {
    for (const v of m.versions) {
      const have = byKey.get(v.key);
      if (have) have.holders.push(...v.holders);
      else byKey.set(v.key, { ...v, holders: [...v.holders] });
    }
  }
  merged.versions = [...byKey.values()].sort((a, b) =>
    b.prefix.seqnum - a.prefix.seqnum || (a.key < b.key ? 1 : -1)
  );
  return { map: merged, sources, errors };
}

/** Seconds a running node waits before retrying a missing announcement for the n-th time. */
export function missingBackoff(attempts: number, maxSeconds = 60): number {
  return Math.min(maxSeconds, 2 ** Math.max(0, attempts - 1));
}

interface LinkLike {
  petname: string;
  gsaReadcapText: string;
  serverId: string | null;
}

type FetchOutcome =
  | { ok: true; rec: RecordedServer }
  | { ok: false; problem: string };

/**
 * Read the announcements behind `links` (one batch request per server), first from
 * `primary` (the servers that answered for the GSD), then whatever is still unread from
 * every other candidate that might hold it. Never older than recorded (`minSeqnum`).
 */
async function fetchAnnouncements(
  pool: ClientPool,
  links: LinkLike[],
  primary: GridServer[],
  others: Candidate[],
  recordedByCap: Map<string, RecordedServer>,
): Promise<Map<string, FetchOutcome>> {
  const out = new Map<string, FetchOutcome>();
  const attempt = async (servers: GridServer[], todo: LinkLike[]) => {
    if (!servers.length || !todo.length) return;
    const keys = todo.map((l) => gsaKeys(l.gsaReadcapText));
    const maps = await mapUpdateMany({ servers, leaseSecret: new Uint8Array(32) }, keys, {
      initialReadSize: null,
    });
    await Promise.all(todo.map(async (link, i) => {
      const old = recordedByCap.get(link.gsaReadcapText);
      try {
        const r = await retrieve({ servers, leaseSecret: new Uint8Array(32) }, keys[i], {
          servermap: maps[i],
          minSeqnum: old?.gsaSeqnum,
        });
        const a: Announcement = decodeAnnouncement(r.contents);
        if (!a.storage) throw new DiscoveryError("announces no storage service");
        out.set(link.gsaReadcapText, {
          ok: true,
          rec: {
            petname: link.petname,
            nickname: a.nickname,
            serverId: base32Encode(a.serverId),
            storageUrls: a.storage.storageUrls.map(formatStorageUrl),
            software: a.software,
            announced: a.announced,
            gsaReadcap: link.gsaReadcapText,
            gsaSeqnum: r.seqnum,
            gsaCheckstring: toHex(r.version.prefixBytes.subarray(0, CHECKSTRING_SIZE)),
          },
        });
      } catch (e) {
        const answered = maps[i].servers.filter((s) => !s.error).length;
        out.set(link.gsaReadcapText, {
          ok: false,
          problem: `${(e as Error).message} (${answered} of ${servers.length} server(s) answered)`,
        });
      }
    }));
  };
  await attempt(primary, links);
  const unread = links.filter((l) => !out.get(l.gsaReadcapText)?.ok);
  const asked = new Set(primary.map((s) => base32Encode(s.serverId)));
  const rest = others.filter((c) => !asked.has(base32Encode(c.url.pin)));
  if (unread.length && rest.length) {
    const servers = rest.map((c) => pool.server(c.url, c.nickname));
    const before = new Map(unread.map((l) => [l.gsaReadcapText, out.get(l.gsaReadcapText)]));
    await attempt(servers, unread);
    for (const l of unread) {
      const now = out.get(l.gsaReadcapText);
      const was = before.get(l.gsaReadcapText);
      if (now && !now.ok && was && !was.ok) {
        out.set(l.gsaReadcapText, {
          ok: false,
          problem: `not readable from any of the ${
            primary.length + servers.length
          } server(s) asked`,
        });
      }
    }
  }
  return out;
}

/**
 * From links and what was read, the new server list: each entry bound to a server id
 * keeps only a GSA claiming that id; several entries claiming one server id are all
 * dropped (unless exactly one is bound to it); unread entries keep their recorded
 * version or become missing.
 */
function assemble(
  links: LinkLike[],
  fetched: Map<string, FetchOutcome>,
  state: DiscoveryState,
  recordedByCap: Map<string, RecordedServer>,
  problems: string[],
  now: number,
  retryMax: number,
  self: StorageUrl | undefined,
): { servers: RecordedServer[]; missing: MissingAnnouncement[] } {
  const missingBefore = new Map((state.missing ?? []).map((m) => [m.gsaReadcap, m]));
  const missing: MissingAnnouncement[] = [];
  const markMissing = (link: LinkLike, problem: string) => {
    const m = missingBefore.get(link.gsaReadcapText);
    const attempts = (m?.attempts ?? 0) + 1;
    missing.push({
      petname: link.petname,
      gsaReadcap: link.gsaReadcapText,
      serverId: link.serverId,
      since: m?.since ?? now,
      attempts,
      nextTry: now + missingBackoff(attempts, retryMax),
      problem,
    });
  };
  const candidatesRecs: { link: LinkLike; rec: RecordedServer }[] = [];
  for (const link of links) {
    const old = recordedByCap.get(link.gsaReadcapText);
    const f = fetched.get(link.gsaReadcapText);
    let rec: RecordedServer | null = null;
    if (!f) rec = old ? { ...old, petname: link.petname } : null;
    else if (f.ok) {
      rec = f.rec;
      if (link.serverId !== null && rec.serverId !== link.serverId) {
        problems.push(
          `announcement '${link.petname}' claims server ${rec.serverId.slice(0, 8)} but was ` +
            `added for server ${link.serverId.slice(0, 8)}; refused`,
        );
        rec = old && old.serverId === link.serverId ? { ...old, petname: link.petname } : null;
        if (!rec) {
          markMissing(link, `claims another server id than the one it was added for`);
          continue;
        }
      }
    } else {
      problems.push(`announcement '${link.petname}': ${f.problem}`);
      rec = old ? { ...old, petname: link.petname } : null;
      if (!rec) {
        markMissing(link, f.problem);
        continue;
      }
    }
    if (!rec) {
      markMissing(link, "not read yet");
      continue;
    }
    candidatesRecs.push({ link, rec });
  }
  const byId = new Map<string, { link: LinkLike; rec: RecordedServer }[]>();
  for (const c of candidatesRecs) {
    const list = byId.get(c.rec.serverId) ?? [];
    list.push(c);
    byId.set(c.rec.serverId, list);
  }
  const servers: RecordedServer[] = [];
  for (const c of candidatesRecs) {
    const group = byId.get(c.rec.serverId)!;
    if (group.length > 1) {
      const bound = group.filter((g) => g.link.serverId === c.rec.serverId);
      if (bound.length === 1 && bound[0] === c) { /* the one bound entry wins */ }
      else {
        if (group[0] === c) {
          problems.push(
            `announcements ${group.map((g) => `'${g.link.petname}'`).join(", ")} all claim ` +
              `server ${c.rec.serverId.slice(0, 8)}; ` +
              (bound.length === 1
                ? `kept '${bound[0].link.petname}', the one added for it`
                : "ignored"),
          );
        }
        continue;
      }
    }
    // This node's own server id: always its own URL, whatever its GSA says.
    if (self && c.rec.serverId === base32Encode(self.pin)) {
      c.rec = { ...c.rec, storageUrls: [formatStorageUrl(self)] };
    }
    servers.push({ ...c.rec, boundServerId: c.link.serverId });
  }
  return { servers, missing };
}

function changes(before: DiscoveryState, servers: RecordedServer[]) {
  const oldById = new Map(before.servers.map((s) => [s.serverId, s]));
  const newIds = new Set(servers.map((s) => s.serverId));
  const added = servers.filter((s) => !oldById.has(s.serverId)).map((s) => s.nickname);
  const removed = before.servers.filter((s) => !newIds.has(s.serverId)).map((s) => s.nickname);
  const updated = servers.filter((s) => {
    const o = oldById.get(s.serverId);
    return o && (o.storageUrls.join(";") !== s.storageUrls.join(";") || o.nickname !== s.nickname ||
      o.petname !== s.petname);
  }).map((s) => s.nickname);
  return { added, removed, updated };
}

/** Join or refresh. Throws DiscoveryError when no GSD could be read at all. */
export async function refreshDiscovery(
  intro: IntroductionText,
  state: DiscoveryState,
  pool: ClientPool,
  opts: RefreshOptions = {},
): Promise<RefreshResult> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const fanout = Math.max(1, opts.fanout ?? 2);
  const retryMax = opts.retryMaxSeconds ?? 60;
  const gsdReadkey = intro.gsdReadcap.readkey;
  const gsdKeys = {
    storageIndex: storageIndexFromFingerprint(intro.gsdReadcap.fingerprint),
    fingerprint: intro.gsdReadcap.fingerprint,
    readkey: gsdReadkey,
  };
  // The first server asked moves on by one every refresh (ROTATE_EVERY), so no single
  // server can freeze the view for longer than one poll.
  const all = candidates(intro, state, opts.self);
  let cands = rotate(all, Math.floor(state.cursor / ROTATE_EVERY));
  if (opts.selfFirst && opts.self) {
    const selfId = base32Encode(opts.self.pin);
    cands = [
      ...cands.filter((c) => base32Encode(c.url.pin) === selfId),
      ...cands.filter((c) => base32Encode(c.url.pin) !== selfId),
    ];
  }
  let cursorNext = state.cursor + 1;
  if (cands.length === 0) {
    throw new DiscoveryError("no storage servers to ask: the introduction text lists none");
  }
  const problems: string[] = [];
  const recordedByCap = new Map(state.servers.map((s) => [s.gsaReadcap, s]));
  const dueMissing = (state.missing ?? []).filter((m) =>
    (opts.retryMissing ?? "all") === "all" || m.nextTry <= now
  );

  let observed: Map<string, string[]> | null = null;
  if ((opts.quick ?? true) && state.gsd) {
    const unchangedResult = async (quick: "watch" | "batch"): Promise<RefreshResult> => {
      const base: RefreshResult = {
        state: {
          ...state,
          refreshedAt: Math.max(now, Math.floor(Date.now() / 1000)),
          cursor: cursorNext,
        },
        full: false,
        added: [],
        removed: [],
        updated: [],
        problems,
        freshness: gsdFreshness(state.gsd!, now, opts.expiryGrace),
        quick,
      };
      if (!dueMissing.length) return base;
      // The GSD is unchanged, but some of its announcements are still missing: retry them
      // from every server that might hold them (docs/discovery.md §5, "Missing announcements").
      const links: LinkLike[] = [
        ...state.servers.map((s) => ({
          petname: s.petname,
          gsaReadcapText: s.gsaReadcap,
          serverId: s.boundServerId ?? null,
        })),
        ...(state.missing ?? []).map((m) => ({
          petname: m.petname,
          gsaReadcapText: m.gsaReadcap,
          serverId: m.serverId,
        })),
      ];
      const due = new Set(dueMissing.map((m) => m.gsaReadcap));
      const fetched = await fetchAnnouncements(
        pool,
        links.filter((l) => due.has(l.gsaReadcapText)),
        [],
        cands,
        recordedByCap,
      );
      const notDue = (state.missing ?? []).filter((m) => !due.has(m.gsaReadcap));
      const { servers, missing } = assemble(
        links.filter((l) => !notDue.some((m) => m.gsaReadcap === l.gsaReadcapText)),
        fetched,
        state,
        recordedByCap,
        problems,
        now,
        retryMax,
        opts.self,
      );
      const ch = changes(state, servers);
      return {
        ...base,
        state: { ...base.state, servers, missing: [...missing, ...notDue] },
        full: ch.added.length > 0,
        ...ch,
      };
    };
    // A dead server is skipped at once (and the next refresh starts after it).
    for (let i = 0; i < Math.min(2, cands.length); i++) {
      try {
        const server = pool.server(cands[i].url, cands[i].nickname);
        const wait = Math.min(Math.max(0, opts.wait ?? 0), 60);
        // A slow or trickling server must not hold the refresh: past this deadline,
        // the next server (or a full read) answers instead.
        const w = await withinDeadline(
          watchCheck(server, gsdKeys, state, wait, opts.signal),
          QUICK_CHECK_DEADLINE_MS + wait * 1000,
          "quick check",
        );
        cursorNext = state.cursor + i + 1;
        if (w === true) return await unchangedResult("watch");
        // Changed (or no watches): read the checkstrings to see which slots changed.
        const q = await withinDeadline(
          quickCheck(server, gsdKeys, state),
          QUICK_CHECK_DEADLINE_MS,
          "quick check",
        );
        if (q.unchanged) return await unchangedResult("batch");
        const older = olderGsd(q.observed, gsdKeys, state);
        if (older !== null) {
          // This server missed the operator's last write (it was down, or lies): a full read
          // from it would be refused as a rollback. Ask the next one instead.
          problems.push(
            `server ${
              base32Encode(server.serverId).slice(0, 8)
            } holds an older grid service directory (version ${older}, ` +
              `recorded ${state.gsd.seqnum}): asked the next server`,
          );
          cursorNext = state.cursor + i + 2;
          continue;
        }
        observed = q.observed;
        break;
      } catch (e) {
        if (opts.signal?.aborted) throw new DiscoveryError("the refresh was cancelled");
        problems.push(`quick check failed: ${(e as Error).message}`);
        cursorNext = state.cursor + i + 2;
      }
    }
  }

  // (2) the GSD
  const { map, sources, errors } = await readGsdMaps(
    pool,
    cands,
    gsdKeys,
    fanout,
    state.gsd?.seqnum,
  );
  if (sources.length === 0) {
    throw new DiscoveryError(
      `could not reach any of the ${cands.length} known storage servers (${
        errors.slice(0, 3).join("; ")
      })`,
    );
  }
  let gsd;
  try {
    gsd = await retrieve({ servers: sources, leaseSecret: new Uint8Array(32) }, gsdKeys, {
      servermap: map,
      minSeqnum: state.gsd?.seqnum,
    });
  } catch (e) {
    if (e instanceof RollbackError) {
      throw new DiscoveryError(`refused a stale grid service directory: ${e.message}`);
    }
    throw new DiscoveryError(`could not read the grid service directory: ${(e as Error).message}`);
  }
  for (const p of gsd.problems) {
    problems.push(
      `server ${base32Encode(p.serverId).slice(0, 8)} share ${p.shareNumber}: ${p.problem}`,
    );
  }
  const doc = await decodeDirectoryDoc(gsd.contents, null);
  const meta = parseGsdMeta(doc.meta);
  const freshness = gsdFreshness(meta, now, opts.expiryGrace);
  const gsdCheckstring = toHex(gsd.version.prefixBytes.subarray(0, CHECKSTRING_SIZE));
  if (freshness === "expired-past-grace") {
    problems.push(
      `the grid service directory expired at ${new Date(meta.expires * 1000).toISOString()}; ` +
        "keeping the last good server list until the operator re-signs it",
    );
    return {
      state: { ...state, cursor: cursorNext },
      full: true,
      added: [],
      removed: [],
      updated: [],
      problems,
      freshness,
      quick: null,
    };
  }
  const { links, problems: linkProblems } = gsdLinks(doc.entries);
  problems.push(...linkProblems);

  // (3) the GSAs that are new, changed or missing (all of them when nothing was observed):
  // one batch request per GSD source, then the unread ones from every other known server.
  const missingBefore = new Map((state.missing ?? []).map((m) => [m.gsaReadcap, m]));
  const unchanged = (text: string): RecordedServer | null => {
    const old = recordedByCap.get(text);
    if (!old || !observed) return null;
    const seen = observed.get(toHex(gsaKeys(text).storageIndex));
    return seen && seen.length > 0 && seen.every((c) => c === old.gsaCheckstring) ? old : null;
  };
  const toFetch = links.filter((l) => {
    if (unchanged(l.gsaReadcapText)) return false;
    const m = missingBefore.get(l.gsaReadcapText);
    return !m || dueMissing.includes(m);
  });
  const fetched = await fetchAnnouncements(pool, toFetch, sources, cands, recordedByCap);
  // Missing entries not due yet stay missing as they were.
  const waiting = links.filter((l) =>
    !fetched.has(l.gsaReadcapText) && missingBefore.has(l.gsaReadcapText) &&
    !recordedByCap.has(l.gsaReadcapText)
  );
  const { servers, missing } = assemble(
    links.filter((l) => !waiting.includes(l)),
    fetched,
    state,
    recordedByCap,
    problems,
    now,
    retryMax,
    opts.self,
  );
  for (const l of waiting) missing.push(missingBefore.get(l.gsaReadcapText)!);

  // (4) what changed
  const { added, removed, updated } = changes(state, servers);
  return {
    state: {
      version: 1,
      gsd: { ...meta, seqnum: gsd.seqnum, checkstring: gsdCheckstring },
      servers,
      missing,
      refreshedAt: now,
      cursor: cursorNext,
    },
    full: true,
    added,
    removed,
    updated,
    problems,
    freshness,
    quick: null,
  };
}

/** Parse a persisted state (JSON); throws DiscoveryError on anything malformed. */
export function parseDiscoveryState(json: string): DiscoveryState {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new DiscoveryError("recorded server list is not valid JSON");
  }
  const d = doc as DiscoveryState;
  if (!d || d.version !== 1 || !Array.isArray(d.servers)) {
    throw new DiscoveryError("recorded server list has an unknown format");
  }
  for (const s of d.servers) {
    if (
      typeof s.serverId !== "string" || !Array.isArray(s.storageUrls) ||
      typeof s.gsaReadcap !== "string"
    ) {
      throw new DiscoveryError("recorded server list has a malformed entry");
    }
  }
  if (d.gsd) fromHex(d.gsd.checkstring);
  const missing = Array.isArray(d.missing)
    ? d.missing.filter((m) => typeof m?.gsaReadcap === "string" && typeof m.petname === "string")
    : [];
  return { ...d, missing, cursor: Number.isSafeInteger(d.cursor) ? d.cursor : 0 };
}

/** Storage URLs of the recorded servers, parsed. */
export function recordedStorageUrls(
  state: DiscoveryState,
): { server: RecordedServer; url: StorageUrl }[] {
  const out: { server: RecordedServer; url: StorageUrl }[] = [];
  for (const s of state.servers) {
    try {
      out.push({ server: s, url: parseStorageUrl(s.storageUrls[0]) });
    } catch { /* skip unparseable */ }
  }
  return out;
}
